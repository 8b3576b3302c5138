// The poll loop's rules, driven through poll_machine alone: events in,
// actions out. No Asio I/O, no clock, no timer: the tests are the shell.

#include <jobpoll/asio.hpp>
#include <jobpoll/backoff.hpp>
#include <jobpoll/interval.hpp>
#include <jobpoll/poll_machine.hpp>

#include <gtest/gtest.h>

#include <array>
#include <optional>

using namespace std::chrono_literals;
using jobpoll::errc;
using jobpoll::poll_action;
using jobpoll::poll_machine;
using jobpoll::poll_status;
using jobpoll::poll_step;
using jobpoll::wait_reason;

namespace {

poll_machine::settings basic() {
  poll_machine::settings s;
  s.interval = jobpoll::fixed_interval{2s};
  s.backoff = jobpoll::exponential_interval{1s, 2.0, 8s};
  s.max_retries = 2;
  return s;
}

void expect_step(const poll_action& a, poll_step step) {
  EXPECT_EQ(a.step, step) << "got " << jobpoll::to_string(a.step) << ", expected " << jobpoll::to_string(step);
}

void expect_wait(const poll_action& a, std::chrono::nanoseconds d, wait_reason why, bool clipped = false) {
  expect_step(a, poll_step::wait);
  EXPECT_EQ(a.duration, d);
  EXPECT_EQ(a.reason, why);
  EXPECT_EQ(a.clipped, clipped);
}

TEST(PollMachine, PollsAtOnceThenWaitsTheIntervalUntilTerminal) {
  poll_machine m(basic());
  expect_step(m.start(), poll_step::poll);
  EXPECT_EQ(m.attempts(), 1u) << "an attempt counts from the moment it is sent";
  expect_wait(m.answered(poll_status::pending(), 0s), 2s, wait_reason::interval);
  EXPECT_EQ(m.attempts(), 1u);
  expect_step(m.waited(), poll_step::poll);
  auto end = m.answered(poll_status::succeeded(), 2s);
  expect_step(end, poll_step::finish);
  EXPECT_FALSE(end.error);
  const auto stats = m.stats(2s);
  EXPECT_EQ(stats.attempts, 2u);
  EXPECT_EQ(stats.pending_polls, 1u);
  EXPECT_EQ(stats.waited, 2s);
  EXPECT_EQ(stats.elapsed, 2s);
}

TEST(PollMachine, InitialDelayComesFirstClippedToTheDeadline) {
  auto s = basic();
  s.initial_delay = 5s;
  poll_machine m(std::move(s));
  expect_wait(m.start(3s), 3s, wait_reason::initial_delay, true);
  expect_step(m.waited(), poll_step::poll);
}

TEST(PollMachine, ZeroWaitBetweenPollsYields) {
  auto s = basic();
  s.interval = jobpoll::fixed_interval{0s};
  poll_machine m(std::move(s));
  expect_step(m.start(), poll_step::poll);
  expect_step(m.answered(poll_status::pending(), 0s), poll_step::yield);
  expect_step(m.waited(), poll_step::poll);
}

TEST(PollMachine, TransientFailuresBackOffThenExhaustTheRetries) {
  poll_machine m(basic());
  m.start();
  expect_wait(m.answered(poll_status::transient(errc::server_error, "503"), 0s), 1s, wait_reason::backoff);
  m.waited();
  expect_wait(m.answered(poll_status::transient(errc::server_error, "503"), 1s), 2s, wait_reason::backoff);
  m.waited();
  auto end = m.answered(poll_status::transient(errc::server_error, "503"), 3s);
  expect_step(end, poll_step::finish);
  EXPECT_EQ(end.error, errc::retries_exhausted);
  EXPECT_EQ(m.stats(3s).consecutive_failures, 3u);
  EXPECT_EQ(m.last().detail, "503");
}

TEST(PollMachine, TheDeadlineEndsANonTerminalPollAndClipsTheLastWait) {
  poll_machine m(basic());
  m.start(3s);
  expect_wait(m.answered(poll_status::pending(), 2s), 1s, wait_reason::interval, true);
  m.waited();
  auto end = m.answered(poll_status::pending(), 3s);
  expect_step(end, poll_step::finish);
  EXPECT_EQ(end.error, errc::timeout);
}

TEST(PollMachine, AnAttemptTimeoutBoundsEachPollAndCountsAsTransient) {
  auto s = basic();
  s.attempt_timeout = 3s;
  poll_machine m(std::move(s));
  auto poll = m.start();
  expect_step(poll, poll_step::poll);
  EXPECT_TRUE(poll.bounded);
  EXPECT_EQ(poll.bound, 3s);
  expect_wait(m.attempt_timed_out(3s), 1s, wait_reason::backoff);
  EXPECT_EQ(m.last().error, errc::attempt_timeout);
  EXPECT_EQ(m.last().detail, "no answer within 3.000s");
}

TEST(PollMachine, ALimiterSlotComesBeforeEveryPoll) {
  auto s = basic();
  s.limited = true;
  poll_machine m(std::move(s));
  expect_step(m.start(), poll_step::try_acquire);
  expect_step(m.granted_now(), poll_step::poll);
  m.answered(poll_status::pending(), 0s);
  expect_step(m.waited(), poll_step::try_acquire);
  auto acquire = m.limiter_busy(2s, 4s);
  expect_step(acquire, poll_step::acquire);
  EXPECT_FALSE(acquire.bounded) << "no deadline, no bound";
  EXPECT_EQ(acquire.duration, 4s) << "the limiter's expected wait, for on_wait";
  EXPECT_EQ(acquire.reason, wait_reason::limiter);
  EXPECT_TRUE(m.acquiring());
  expect_step(m.granted(5s), poll_step::poll);
  EXPECT_FALSE(m.acquiring());
  EXPECT_EQ(m.stats(5s).limiter_waited, 3s);
}

TEST(PollMachine, TheFirstLimiterWaitIsNotHeldToTheDeadlineLaterOnesAre) {
  auto s = basic();
  s.limited = true;
  poll_machine m(std::move(s));
  m.start(10s);
  auto first = m.limiter_busy(0s, std::nullopt);
  EXPECT_FALSE(first.bounded) << "at least one poll happens, however long the limiter holds it";
  m.granted(20s);
  m.answered(poll_status::pending(), 20s);  // past the deadline: finishes
  poll_machine n([] {
    auto t = basic();
    t.limited = true;
    return t;
  }());
  n.start(10s);
  n.granted_now();
  n.answered(poll_status::pending(), 1s);
  n.waited();
  auto later = n.limiter_busy(3s, 30s);
  expect_step(later, poll_step::acquire);
  EXPECT_TRUE(later.bounded);
  EXPECT_EQ(later.bound, 7s);
  EXPECT_TRUE(later.clipped);
  EXPECT_EQ(later.duration, 7s);
  auto end = n.limiter_failed(errc::timeout);
  expect_step(end, poll_step::finish);
  EXPECT_EQ(end.error, errc::timeout);
}

TEST(PollMachine, ALimiterWaitAtTheDeadlineEndsWithoutWaiting) {
  auto s = basic();
  s.limited = true;
  s.interval = jobpoll::fixed_interval{0s};
  poll_machine m(std::move(s));
  m.start(2s);
  m.granted_now();
  m.answered(poll_status::pending(), 1s);
  m.waited();
  auto end = m.limiter_busy(2s, 1s);
  expect_step(end, poll_step::finish);
  EXPECT_EQ(end.error, errc::timeout);
}

TEST(PollMachine, AHintedTransientFailurePausesTheLimiterWithinTheHintBounds) {
  auto s = basic();
  s.limited = true;
  s.hints.ceiling = 30s;
  poll_machine m(std::move(s));
  m.start();
  m.granted_now();
  auto status = poll_status::transient(errc::rate_limited, "429");
  status.retry_after = 90s;
  auto pause = m.answered(std::move(status), 0s);
  expect_step(pause, poll_step::pause_limiter);
  EXPECT_EQ(pause.duration, 30s);
  EXPECT_EQ(m.attempts(), 1u);
  expect_wait(m.paused(), 30s, wait_reason::hint);
}

TEST(PollMachine, AHintWithoutALimiterOnlyReplacesTheWait) {
  poll_machine m(basic());
  m.start();
  auto status = poll_status::transient(errc::rate_limited, "429");
  status.retry_after = 5s;
  expect_wait(m.answered(std::move(status), 0s), 5s, wait_reason::hint);
}

TEST(PollMachine, CancellationEndsWithOperationAborted) {
  poll_machine m(basic());
  m.start();
  m.answered(poll_status::pending(), 0s);
  auto end = m.cancelled();
  expect_step(end, poll_step::finish);
  EXPECT_EQ(end.error, jobpoll::detail::asio_error(asio::error::operation_aborted));  // the machine holds std::error_code
  EXPECT_EQ(m.stats(1s).attempts, 1u);
}

TEST(PollMachine, AResumedPollCountsOnAndKeepsWhatWasLeftOfTheRetryBudget) {
  auto s = basic();
  s.resume = {4, 2};
  s.limited = true;
  poll_machine m(std::move(s));
  expect_step(m.start(10s), poll_step::try_acquire);
  EXPECT_FALSE(m.limiter_busy(0s, std::nullopt).bounded) << "its first poll is still a first poll";
  m.granted(0s);
  EXPECT_EQ(m.attempts(), 5u);
  auto end = m.answered(poll_status::transient(errc::server_error, "503"), 0s);
  EXPECT_EQ(end.error, errc::retries_exhausted) << "2 failures were left over, 1 more is the third";
}

TEST(PollMachine, TerminalAnswersFinishWithTheirCodes) {
  poll_machine failed(basic());
  failed.start();
  EXPECT_EQ(failed.answered(poll_status::failed("boom"), 0s).error, errc::job_failed);
  poll_machine permanent(basic());
  permanent.start();
  EXPECT_EQ(permanent.answered(poll_status::permanent(errc::decode_error, "x"), 0s).error, errc::decode_error);
}

TEST(PollMachine, NeedsTheTimeOnlyWithADeadlineGivenAtTheStart) {
  poll_machine unbounded(basic());
  unbounded.start();
  EXPECT_FALSE(unbounded.needs_time());
  poll_machine bounded(basic());
  bounded.start(1s);
  EXPECT_TRUE(bounded.needs_time());
}

// A seeded default backoff stored inline, copied with the machine's settings:
// two machines from equal settings draw the same waits.
TEST(PollMachine, PoliciesAreCopiedNotShared) {
  auto s = basic();
  s.backoff = jobpoll::make_default_backoff(7);
  poll_machine a(s);
  poll_machine b(s);
  a.start();
  b.start();
  auto wa = a.answered(poll_status::transient(errc::server_error, "x"), 0s);
  auto wb = b.answered(poll_status::transient(errc::server_error, "x"), 0s);
  EXPECT_EQ(wa.duration, wb.duration);
}

// any_delay keeps jobpoll's policies inline and larger ones on the heap;
// both behave alike through copies and moves.
struct large_policy {
  std::array<std::chrono::nanoseconds, 16> waits{};
  std::size_t at = 0;
  std::chrono::nanoseconds next() { return waits[at++ % waits.size()]; }
  void reset() { at = 0; }
};

TEST(AnyDelay, InlineAndHeapPoliciesCopyAndMoveAlike) {
  static_assert(sizeof(large_policy) > jobpoll::any_delay::inline_size);
  large_policy big;
  big.waits[0] = 1s;
  big.waits[1] = 2s;
  for (jobpoll::any_delay d : {jobpoll::any_delay(big), jobpoll::any_delay(jobpoll::exponential_interval{1s, 2.0, 8s})}) {
    EXPECT_EQ(d.next(), 1s);
    jobpoll::any_delay copy = d;
    EXPECT_EQ(copy.next(), 2s) << "a copy continues from the copied state";
    EXPECT_EQ(d.next(), 2s) << "and leaves the original where it was";
    jobpoll::any_delay moved = std::move(copy);
    moved.reset();
    EXPECT_EQ(moved.next(), 1s);
    copy = moved;  // assignment to a moved-from holder
    EXPECT_EQ(copy.next(), 2s);
    jobpoll::any_delay none;
    EXPECT_EQ(none.next(), 0s);
  }
}

}  // namespace
