// The sans-io decisions, driven directly: no Asio, no clock.

#include <jobpoll/deadline.hpp>
#include <jobpoll/interval.hpp>
#include <jobpoll/poll_schedule.hpp>

#include <gtest/gtest.h>

using namespace std::chrono_literals;
using jobpoll::errc;
using jobpoll::poll_schedule;
using jobpoll::poll_status;
using jobpoll::wait_reason;

namespace {

poll_schedule make(std::optional<std::chrono::nanoseconds> budget, std::size_t max_retries = 3,
                   jobpoll::hint_bounds hints = {}) {
  return poll_schedule(jobpoll::fixed_interval{2s}, jobpoll::exponential_interval{1s, 2.0, 8s}, max_retries, budget,
                       hints);
}

TEST(PollSchedule, TerminalStatesFinishWhateverTheTime) {
  auto s = make(10s);
  auto d = s.after_poll(poll_status::succeeded(), 50s);
  EXPECT_TRUE(d.finish);
  EXPECT_FALSE(d.error);
  EXPECT_EQ(make(10s).after_poll(poll_status::failed("x"), 0s).error, errc::job_failed);
  EXPECT_EQ(make(10s).after_poll(poll_status::permanent(errc::decode_error, "x"), 0s).error, errc::decode_error);
  EXPECT_EQ(make(10s).after_poll(poll_status::permanent({}, "x"), 0s).error, errc::permanent_error);
}

TEST(PollSchedule, PendingWaitsTheInterval) {
  auto s = make(std::nullopt);
  auto d = s.after_poll(poll_status::pending(), 0s);
  EXPECT_FALSE(d.finish);
  EXPECT_EQ(d.wait, 2s);
  EXPECT_EQ(d.reason, wait_reason::interval);
  EXPECT_FALSE(d.clipped);
  EXPECT_EQ(s.attempts(), 1u);
  EXPECT_EQ(s.pending_polls(), 1u);
}

TEST(PollSchedule, DeadlineIsCheckedAfterThePollAndTheLastWaitIsClipped) {
  auto s = make(5s);
  EXPECT_EQ(s.after_poll(poll_status::pending(), 0s).wait, 2s);
  EXPECT_EQ(s.after_poll(poll_status::pending(), 2s).wait, 2s);
  auto d = s.after_poll(poll_status::pending(), 4s);
  EXPECT_EQ(d.wait, 1s);
  EXPECT_TRUE(d.clipped);
  auto end = s.after_poll(poll_status::pending(), 5s);
  EXPECT_TRUE(end.finish);
  EXPECT_EQ(end.error, errc::timeout);
}

TEST(PollSchedule, ZeroBudgetStillAllowsTheFirstPoll) {
  auto s = make(0s);
  EXPECT_EQ(s.start(0s).wait, 0s);
  EXPECT_EQ(s.after_poll(poll_status::pending(), 0s).error, errc::timeout);
}

TEST(PollSchedule, InitialDelayIsClippedToTheDeadline) {
  auto s = make(3s);
  auto d = s.start(10s);
  EXPECT_EQ(d.wait, 3s);
  EXPECT_TRUE(d.clipped);
  EXPECT_EQ(d.reason, wait_reason::initial_delay);
  EXPECT_EQ(make(std::nullopt).start(10s).wait, 10s);
  EXPECT_EQ(make(std::nullopt).start(-1s).wait, 0s);
}

TEST(PollSchedule, TransientFailuresUseTheBackoffSequence) {
  auto s = make(std::nullopt);
  EXPECT_EQ(s.after_poll(poll_status::transient(errc::server_error), 0s).wait, 1s);
  EXPECT_EQ(s.after_poll(poll_status::transient(errc::server_error), 1s).wait, 2s);
  auto d = s.after_poll(poll_status::transient(errc::server_error), 3s);
  EXPECT_EQ(d.wait, 4s);
  EXPECT_EQ(d.reason, wait_reason::backoff);
  EXPECT_EQ(s.consecutive_failures(), 3u);
}

TEST(PollSchedule, RetryBudgetEndsOnTheFailurePastIt) {
  auto s = make(std::nullopt, 2);
  EXPECT_FALSE(s.after_poll(poll_status::transient(errc::server_error), 0s).finish);
  EXPECT_FALSE(s.after_poll(poll_status::transient(errc::server_error), 0s).finish);
  auto d = s.after_poll(poll_status::transient(errc::server_error), 0s);
  EXPECT_TRUE(d.finish);
  EXPECT_EQ(d.error, errc::retries_exhausted);
}

TEST(PollSchedule, ATerminalAnswerEndsARunOfFailures) {
  for (auto end : {poll_status::succeeded(), poll_status::failed(), poll_status::permanent(errc::decode_error)}) {
    auto s = make(std::nullopt, 5);
    s.after_poll(poll_status::transient(errc::server_error), 0s);
    EXPECT_EQ(s.consecutive_failures(), 1u);
    EXPECT_TRUE(s.after_poll(end, 0s).finish);
    EXPECT_EQ(s.consecutive_failures(), 0u);
  }
}

TEST(PollSchedule, AGoodPollRestoresTheBudgetAndRestartsTheBackoff) {
  auto s = make(std::nullopt, 2);
  s.after_poll(poll_status::transient(errc::server_error), 0s);
  s.after_poll(poll_status::transient(errc::server_error), 0s);
  s.after_poll(poll_status::pending(), 0s);
  EXPECT_EQ(s.consecutive_failures(), 0u);
  EXPECT_EQ(s.after_poll(poll_status::transient(errc::server_error), 0s).wait, 1s);
  EXPECT_FALSE(s.after_poll(poll_status::transient(errc::server_error), 0s).finish);
  EXPECT_EQ(s.transient_failures(), 4u);
}

TEST(PollSchedule, HintReplacesIntervalAndBackoffWithinBounds) {
  auto s = make(std::nullopt, 3, {.floor = 1s, .ceiling = 30s});
  auto d = s.after_poll(poll_status::pending().with_hint(7s), 0s);
  EXPECT_EQ(d.wait, 7s);
  EXPECT_EQ(d.reason, wait_reason::hint);
  EXPECT_EQ(s.after_poll(poll_status::pending().with_hint(90s), 0s).wait, 30s);
  EXPECT_EQ(s.after_poll(poll_status::pending().with_hint(0s), 0s).wait, 1s);
  EXPECT_EQ(s.after_poll(poll_status::transient(errc::rate_limited, "429", 12s), 0s).wait, 12s);
  EXPECT_EQ(s.bounded_hint(-5s), 1s);
}

TEST(PollSchedule, HintNeverGoesPastTheDeadline) {
  auto s = make(20s);
  auto d = s.after_poll(poll_status::pending().with_hint(60s), 15s);
  EXPECT_EQ(d.wait, 5s);
  EXPECT_TRUE(d.clipped);
  EXPECT_EQ(d.reason, wait_reason::hint);
}

TEST(PollSchedule, RemainingBudget) {
  auto s = make(10s);
  EXPECT_EQ(s.remaining(4s), 6s);
  EXPECT_EQ(s.remaining(12s), 0s);
  EXPECT_FALSE(make(std::nullopt).remaining(4s));
}

TEST(PollSchedule, NegativeWaitsFromAPolicyBecomeZero) {
  struct backwards {
    std::chrono::nanoseconds next() { return -3s; }
    void reset() {}
  };
  poll_schedule s(backwards{}, backwards{}, 1, std::nullopt);
  EXPECT_EQ(s.after_poll(poll_status::pending(), 0s).wait, 0s);
}

TEST(Deadline, RelativeAbsoluteAndNone) {
  using clock = std::chrono::steady_clock;
  const clock::time_point start{100s};
  jobpoll::deadline rel = 30s;
  EXPECT_TRUE(rel.is_relative());
  EXPECT_EQ(rel.budget_from(start), 30s);
  jobpoll::deadline abs = start + 45s;
  EXPECT_TRUE(abs.is_absolute());
  EXPECT_EQ(abs.budget_from(start), 45s);
  EXPECT_EQ(jobpoll::deadline::at(start - 5s).budget_from(start), 0s);
  EXPECT_FALSE(jobpoll::deadline::none().budget_from(start));
  EXPECT_TRUE(jobpoll::deadline::none().is_none());
  EXPECT_EQ(jobpoll::deadline::after(std::chrono::milliseconds(1500)).budget_from(start), 1500ms);
  EXPECT_EQ(jobpoll::deadline(-3s).budget_from(start), 0s);
  EXPECT_EQ(jobpoll::deadline(-3s).relative(), -3s);
}

}  // namespace
