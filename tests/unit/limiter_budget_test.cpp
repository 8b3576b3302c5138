// The limiters' decisions, driven directly with explicit times: no limiter,
// no clock, no waiting.

#include "jobpoll/limiter_budget.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "limiter_helpers.hpp"
#include "policy_helpers.hpp"

namespace {

using namespace std::chrono_literals;
using time_point = std::chrono::steady_clock::time_point;
using jobpoll::sliding_window_budget;
using jobpoll::token_bucket_budget;
using jobpoll_test::invalid_argument_message;
using testing::AllOf;
using testing::HasSubstr;

static_assert(jobpoll::start_budget<sliding_window_budget<time_point>, time_point>);
static_assert(jobpoll::start_budget<token_bucket_budget<time_point>, time_point>);

time_point at(std::chrono::nanoseconds d) { return time_point(d); }

// Takes `count` starts at `t`, each of which the budget must allow right then.
template <class Budget>
void take_at(Budget& b, std::chrono::nanoseconds t, int count) {
  for (int i = 0; i < count; ++i) {
    EXPECT_EQ(b.earliest(at(t)), at(t)) << "start " << i << " at " << t.count() << "ns";
    b.commit(at(t));
  }
}

// A start at `start`, after which the next one fits at `next` at the earliest.
struct step {
  std::chrono::nanoseconds start;
  std::chrono::nanoseconds next;
};

template <class Budget>
void expect_steps(Budget& b, std::initializer_list<step> steps) {
  for (const step& s : steps) {
    b.commit(at(s.start));
    EXPECT_EQ(b.earliest(at(s.start)), at(s.next)) << "after the start at " << s.start.count() << "ns";
  }
}

// Reproducible random gaps between a start and the next request, under `max`.
auto random_gaps(std::uint64_t seed, std::chrono::milliseconds max) {
  return [rng = jobpoll_test::lcg{seed}, max]() mutable {
    return std::chrono::milliseconds(rng.next(static_cast<std::uint64_t>(max.count())));
  };
}

TEST(SlidingWindowBudget, AllowsMaxStartsAtOnceThenTheOldestPlusWindow) {
  sliding_window_budget<time_point> b(3, 10s);
  take_at(b, 0s, 3);
  EXPECT_EQ(b.earliest(at(0s)), at(10s));
  EXPECT_EQ(b.earliest(at(7s)), at(10s));
  EXPECT_EQ(b.earliest(at(12s)), at(12s));
}

TEST(SlidingWindowBudget, UsesTheNthMostRecentStart) {
  sliding_window_budget<time_point> b(3, 10s);
  expect_steps(b, {{0s, 0s}, {1s, 1s}, {2s, 10s}});
  EXPECT_EQ(b.earliest(at(3s)), at(10s));
  expect_steps(b, {{10s, 11s}, {11s, 12s}, {12s, 20s}});
}

TEST(SlidingWindowBudget, WindowIsHalfOpenSoStartsExactlyOneWindowApartAreAllowed) {
  sliding_window_budget<time_point> b(1, 1s);
  expect_steps(b, {{0s, 1s}});
  EXPECT_EQ(b.earliest(at(1s - 1ns)), at(1s));
  EXPECT_EQ(b.earliest(at(1s)), at(1s));
  expect_steps(b, {{1s, 2s}});
}

TEST(SlidingWindowBudget, FreshBudgetAllowsNow) {
  sliding_window_budget<time_point> b(5, 1min);
  EXPECT_EQ(b.earliest(at(42s)), at(42s));
}

TEST(SlidingWindowBudget, PauseHoldsStartsAndIsNeverShortened) {
  sliding_window_budget<time_point> b(2, 10s);
  b.pause_until(at(30s));
  EXPECT_EQ(b.earliest(at(0s)), at(30s));
  b.pause_until(at(5s));
  EXPECT_EQ(b.earliest(at(1s)), at(30s));
  take_at(b, 30s, 2);
  EXPECT_EQ(b.earliest(at(30s)), at(40s));
  b.pause_until(at(45s));
  EXPECT_EQ(b.earliest(at(30s)), at(45s));
  EXPECT_EQ(b.earliest(at(50s)), at(50s));
}

TEST(SlidingWindowBudget, CommittingAtEarliestNeverExceedsAnyWindowAndIsNeverLate) {
  sliding_window_budget<time_point> b(7, 15s);
  const auto starts = jobpoll_test::commit_at_earliest(b, 20'000, random_gaps(1, 4000ms));
  jobpoll_test::expect_window_earliest(starts, 7, 15s);
  jobpoll_test::expect_window_respected(jobpoll_test::granted_times(starts), 7, 15s);
}

TEST(SlidingWindowBudget, RejectsInvalidParametersNamingThem) {
  EXPECT_THAT(invalid_argument_message([] { sliding_window_budget<time_point>(0, 1s); }),
              AllOf(HasSubstr("max_starts"), HasSubstr("got 0")));
  EXPECT_THAT(invalid_argument_message([] { sliding_window_budget<time_point>(1, 0s); }),
              AllOf(HasSubstr("window"), HasSubstr("got 0ns")));
  EXPECT_THAT(invalid_argument_message([] { sliding_window_budget<time_point>(1, -5ms); }),
              AllOf(HasSubstr("window"), HasSubstr("got -5000000ns")));
}

TEST(TokenBucketBudget, StartsFullThenRefillsAtTheRate) {
  token_bucket_budget<time_point> b(2, 1s, 5);  // one token every 500 ms
  take_at(b, 0s, 5);
  EXPECT_EQ(b.earliest(at(0s)), at(500ms));
  expect_steps(b, {{500ms, 1s}});
  EXPECT_EQ(b.earliest(at(1200ms)), at(1200ms));
}

TEST(TokenBucketBudget, RefillsPartlyAfterAShortIdle) {
  token_bucket_budget<time_point> b(1, 1s, 4);
  take_at(b, 0s, 4);
  // Two and a half seconds later the bucket holds two tokens.
  take_at(b, 2500ms, 2);
  EXPECT_EQ(b.earliest(at(2500ms)), at(3s));
}

TEST(TokenBucketBudget, LongIdleRefillsOnlyUpToBurst) {
  token_bucket_budget<time_point> b(1, 1s, 3);
  take_at(b, 0s, 3);
  take_at(b, 1h, 3);
  EXPECT_EQ(b.earliest(at(1h)), at(1h + 1s));
}

TEST(TokenBucketBudget, FractionalIntervalsAreExactWithoutDrift) {
  // 3 tokens per second: one every 333'333'333 1/3 ns. Backlogged, start i
  // (from 0) is at ceil((i - burst + 1) * 1 s / 3) exactly, however far it runs.
  token_bucket_budget<time_point> b(3, 1s, 2);
  const auto starts = jobpoll_test::commit_at_earliest(b, 300'000, [] { return 0ns; });
  jobpoll_test::expect_grants_at(jobpoll_test::granted_times(starts),
                                 [](std::size_t i) { return at(jobpoll_test::bucket_backlog_grant(i, 3, 1s, 2)); });
}

TEST(TokenBucketBudget, BurstOfOneAllowsOneStartPerInterval) {
  token_bucket_budget<time_point> b(1, 10s, 1);
  // A late start resets the schedule: nothing is saved up beyond one token.
  expect_steps(b, {{0s, 10s}, {10s, 20s}, {35s, 45s}});
}

TEST(TokenBucketBudget, PauseHoldsStartsButNotTheRefill) {
  token_bucket_budget<time_point> b(1, 1s, 3);
  take_at(b, 0s, 3);
  b.pause_until(at(10s));
  b.pause_until(at(2s));
  EXPECT_EQ(b.earliest(at(0s)), at(10s));
  take_at(b, 10s, 3);
  EXPECT_EQ(b.earliest(at(10s)), at(11s));
}

TEST(TokenBucketBudget, CommittingAtEarliestNeverExceedsBurstPlusRefillAndIsNeverLate) {
  token_bucket_budget<time_point> b(7, 3s, 4);
  const auto starts = jobpoll_test::commit_at_earliest(b, 2'000, random_gaps(7, 800ms));
  jobpoll_test::expect_bucket_earliest(starts, 7, 3s, 4);
  jobpoll_test::expect_bucket_respected(jobpoll_test::granted_times(starts), 7, 3s, 4);
}

TEST(TokenBucketBudget, RejectsInvalidParametersNamingThem) {
  EXPECT_THAT(invalid_argument_message([] { token_bucket_budget<time_point>(0, 1s, 1); }),
              AllOf(HasSubstr("tokens"), HasSubstr("got 0")));
  EXPECT_THAT(invalid_argument_message([] { token_bucket_budget<time_point>(1, 0s, 1); }),
              AllOf(HasSubstr("per"), HasSubstr("got 0ns")));
  EXPECT_THAT(invalid_argument_message([] { token_bucket_budget<time_point>(1, -2s, 1); }),
              AllOf(HasSubstr("per"), HasSubstr("got -2000000000ns")));
  EXPECT_THAT(invalid_argument_message([] { token_bucket_budget<time_point>(1, 1s, 0); }),
              AllOf(HasSubstr("burst"), HasSubstr("got 0")));
  EXPECT_THAT(
      invalid_argument_message([] { token_bucket_budget<time_point>(1, std::chrono::hours(24 * 365), 1'000'000); }),
      AllOf(HasSubstr("burst * per / tokens"), HasSubstr("burst 1000000")));
}

// --- held slots: a request counts from when its answer is known -------------

TEST(SlidingWindowBudget, HeldSlotsCountAsNowAndAllHeldMeansNoStartUntilARelease) {
  sliding_window_budget<time_point> b(2, 10s);
  b.hold();
  EXPECT_EQ(b.held(), 1u);
  EXPECT_EQ(b.earliest(at(0s)), at(0s));
  b.hold();
  EXPECT_EQ(b.earliest(at(0s)), time_point::max());
  EXPECT_EQ(b.earliest(at(1h)), time_point::max());  // time alone never frees a held slot
  b.release(at(4s));  // the first answer came at 4 s: one slot counted from 4 s, one held
  EXPECT_EQ(b.held(), 1u);
  EXPECT_EQ(b.earliest(at(4s)), at(14s));
  b.release(at(6s));
  EXPECT_EQ(b.earliest(at(6s)), at(14s));  // two counted at 4 s and 6 s: the older one must leave
  EXPECT_EQ(b.earliest(at(15s)), at(15s));
}

TEST(SlidingWindowBudget, AReleaseOlderThanTheLastCountsAtTheLast) {
  sliding_window_budget<time_point> b(1, 10s);
  b.hold();
  b.release(at(5s));
  b.hold();
  b.release(at(3s));
  EXPECT_EQ(b.earliest(at(3s)), at(15s));
}

TEST(TokenBucketBudget, HeldSlotsTakeTheirTokensNowAndAllHeldMeansNoStartUntilARelease) {
  token_bucket_budget<time_point> b(1, 10s, 2);  // 1 token per 10 s, burst 2
  b.hold();
  EXPECT_EQ(b.earliest(at(0s)), at(0s));
  b.hold();
  EXPECT_EQ(b.earliest(at(0s)), time_point::max());
  b.release(at(3s));  // a token taken at 3 s; the other still held counts as taken now
  EXPECT_EQ(b.earliest(at(3s)), at(13s));
  b.release(at(5s));  // tokens taken at 3 s and 5 s: the next one refills at 13 s
  EXPECT_EQ(b.earliest(at(5s)), at(13s));
  b.hold();
  b.release(at(13s));
  EXPECT_EQ(b.earliest(at(13s)), at(23s));
}

// A saturated budget whose requests take `latency(i)` from grant to answer,
// each arriving at the server somewhere in between (`arrival(i)`): the
// grants each budget allows, and the arrival times the server sees.
template <class Budget, class Latency, class Arrival>
std::vector<time_point> saturated_arrivals(Budget& b, std::chrono::nanoseconds span, Latency latency,
                                           Arrival arrival) {
  // Answer times of the requests in flight.
  std::vector<time_point> answers;
  std::vector<time_point> arrivals;
  time_point now{};
  std::size_t i = 0;
  while (now < at(span)) {
    // Release every answer due by now, oldest first.
    std::sort(answers.begin(), answers.end());
    while (!answers.empty() && answers.front() <= now) {
      b.release(answers.front());
      answers.erase(answers.begin());
    }
    const time_point t = b.earliest(now);
    if (t <= now) {
      b.hold();
      const auto l = latency(i);
      arrivals.push_back(now + arrival(i, l));
      answers.push_back(now + l);
      ++i;
      continue;
    }
    // Nothing fits now: move to the next event (an answer, or the budget's time).
    time_point next = t;
    for (const time_point a : answers) next = std::min(next, a);
    now = next;
  }
  std::sort(arrivals.begin(), arrivals.end());
  return arrivals;
}

TEST(SlidingWindowBudget, ArrivalsAtTheServerStayWithinTheWindowWhateverTheLatency) {
  jobpoll_test::lcg rng{42};
  for (const auto arrive_late : {false, true}) {
    sliding_window_budget<time_point> b(20, 3s);
    std::vector<std::chrono::nanoseconds> latencies;
    const auto arrivals = saturated_arrivals(
        b, 60s,
        [&](std::size_t) { return latencies.emplace_back(std::chrono::milliseconds(rng.next(201))); },
        [&](std::size_t, std::chrono::nanoseconds l) {
          // The worst case for a grant-time count: arriving as late as possible.
          return arrive_late ? l : std::chrono::nanoseconds(rng.next(static_cast<std::uint64_t>(l.count()) + 1));
        });
    jobpoll_test::expect_window_respected(arrivals, 20, 3s);
    // Use, in steady state, against what the scheme can reach: a slot is
    // busy for the window plus the request's latency, W / (W + mean latency).
    double mean = 0;
    for (auto l : latencies) mean += std::chrono::duration<double>(l).count();
    mean /= static_cast<double>(latencies.size());
    const double reachable = 3.0 / (3.0 + mean);
    const double use = jobpoll_test::window_use(arrivals, 20, 3s);
    EXPECT_NEAR(use, reachable, 0.02 * reachable) << "mean latency " << mean << " s";
    ::testing::Test::RecordProperty(arrive_late ? "use_arriving_late" : "use_arriving_anywhere", std::to_string(use));
    ::testing::Test::RecordProperty("reachable", std::to_string(reachable));
  }
}

TEST(TokenBucketBudget, ArrivalsAtTheServerStayWithinBurstPlusRefillWhateverTheLatency) {
  jobpoll_test::lcg rng{7};
  token_bucket_budget<time_point> b(20, 3s, 5);
  const auto arrivals = saturated_arrivals(
      b, 60s, [&](std::size_t) { return std::chrono::nanoseconds(std::chrono::milliseconds(rng.next(201))); },
      [](std::size_t, std::chrono::nanoseconds l) { return l; });
  jobpoll_test::expect_bucket_respected(arrivals, 20, 3s, 5);
  // Latency well under the burst's worth of refill costs the bucket nothing:
  // 5 + 20 per 3 s over 60 s, less the refill of one latency at most.
  EXPECT_GE(arrivals.size(), 5u + 20u * 60u / 3u - 2u);
}

}  // namespace
