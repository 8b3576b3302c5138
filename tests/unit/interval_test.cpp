// The decision headers come first and alone: they must be self-contained and
// must not pull in Asio.
#include "jobpoll/interval.hpp"
#include "jobpoll/backoff.hpp"
#include "jobpoll/jitter.hpp"
#include "jobpoll/retry_after.hpp"

#if defined(ASIO_VERSION)
#error "the delay policies must not include Asio"
#endif

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "policy_helpers.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "jobpoll/delay_policy.hpp"

namespace {

using namespace jobpoll_test;

using namespace std::chrono_literals;
using std::chrono::nanoseconds;
using ::testing::ElementsAre;

static_assert(jobpoll::interval_policy<jobpoll::fixed_interval>);
static_assert(jobpoll::interval_policy<jobpoll::linear_interval>);
static_assert(jobpoll::interval_policy<jobpoll::exponential_interval>);
static_assert(jobpoll::interval_policy<jobpoll::schedule_interval>);
static_assert(jobpoll::backoff_policy<jobpoll::exponential_interval>);
static_assert(!jobpoll::interval_policy<int>);
static_assert(!jobpoll::interval_policy<nanoseconds>);
static_assert(std::is_convertible_v<jobpoll::schedule_interval, jobpoll::any_delay>);
// A bare duration must be named as a policy: no accidental conversions.
static_assert(!std::is_convertible_v<nanoseconds, jobpoll::fixed_interval>);

TEST(FixedIntervalTest, ReturnsTheSameWaitForever) {
  jobpoll::fixed_interval policy{2s};
  for (int i = 0; i < 10'000; ++i) ASSERT_EQ(policy.next(), 2s) << "call " << i;
  policy.reset();
  EXPECT_EQ(policy.next(), 2s);
  EXPECT_EQ(policy.interval(), 2s);
}

TEST(FixedIntervalTest, AcceptsAnyIntegralDurationAndZero) {
  EXPECT_EQ(jobpoll::fixed_interval{std::chrono::milliseconds(1500)}.next(), 1'500'000'000ns);
  EXPECT_EQ(jobpoll::fixed_interval{std::chrono::minutes(2)}.next(), 120s);
  EXPECT_EQ(jobpoll::fixed_interval{0s}.next(), 0ns);
}

TEST(FixedIntervalTest, RejectsANegativeIntervalNamingIt) {
  EXPECT_EQ(invalid_argument_message([] { jobpoll::fixed_interval{-1ns}; }),
            "jobpoll::fixed_interval: interval must be >= 0ns, got -1ns");
}

TEST(LinearIntervalTest, GrowsByStepUpToTheCap) {
  jobpoll::linear_interval policy{1s, 500ms, 3s};
  EXPECT_THAT(take(policy, 7), ElementsAre(1s, 1500ms, 2s, 2500ms, 3s, 3s, 3s));
  EXPECT_EQ(policy.initial(), 1s);
  EXPECT_EQ(policy.step(), 500ms);
  EXPECT_EQ(policy.cap(), 3s);
}

TEST(LinearIntervalTest, CapNotOnAStepBoundaryIsReachedExactly) {
  jobpoll::linear_interval policy{0s, 2s, 5s};
  EXPECT_THAT(take(policy, 5), ElementsAre(0s, 2s, 4s, 5s, 5s));
}

TEST(LinearIntervalTest, MatchesTheFormulaForTenThousandCalls) {
  jobpoll::linear_interval policy{7ns, 3ns, 20'000ns};
  for (std::int64_t n = 0; n < 10'000; ++n) {
    ASSERT_EQ(policy.next(), nanoseconds(std::min<std::int64_t>(7 + n * 3, 20'000))) << "n = " << n;
  }
}

TEST(LinearIntervalTest, SaturatesAtTheCapWithoutOverflow) {
  jobpoll::linear_interval policy{nanoseconds::max() - 1ns, nanoseconds::max(), nanoseconds::max()};
  EXPECT_EQ(policy.next(), nanoseconds::max() - 1ns);
  for (int i = 0; i < 10'000; ++i) ASSERT_EQ(policy.next(), nanoseconds::max());
}

TEST(LinearIntervalTest, ZeroStepAndInitialEqualToCapAreConstant) {
  jobpoll::linear_interval zero_step{1s, 0s, 10s};
  EXPECT_THAT(take(zero_step, 3), ElementsAre(1s, 1s, 1s));
  jobpoll::linear_interval at_cap{4s, 1s, 4s};
  EXPECT_THAT(take(at_cap, 3), ElementsAre(4s, 4s, 4s));
}

TEST(LinearIntervalTest, ResetRestartsAtInitial) {
  jobpoll::linear_interval policy{1s, 1s, 10s};
  take(policy, 4);
  policy.reset();
  EXPECT_THAT(take(policy, 3), ElementsAre(1s, 2s, 3s));
}

TEST(LinearIntervalTest, RejectsInvalidParametersNamingThem) {
  EXPECT_EQ(invalid_argument_message([] { jobpoll::linear_interval(-5ns, 1s, 2s); }),
            "jobpoll::linear_interval: initial must be >= 0ns, got -5ns");
  EXPECT_EQ(invalid_argument_message([] { jobpoll::linear_interval(1s, -1ms, 2s); }),
            "jobpoll::linear_interval: step must be >= 0ns, got -1000000ns");
  EXPECT_EQ(invalid_argument_message([] { jobpoll::linear_interval(1s, 1s, 500ms); }),
            "jobpoll::linear_interval: cap must be >= initial (1000000000ns), got 500000000ns");
}

TEST(ExponentialIntervalTest, DoublesUpToTheCap) {
  jobpoll::exponential_interval policy{1s, 2.0, 30s};
  EXPECT_THAT(take(policy, 8), ElementsAre(1s, 2s, 4s, 8s, 16s, 30s, 30s, 30s));
  EXPECT_EQ(policy.initial(), 1s);
  EXPECT_EQ(policy.factor(), 2.0);
  EXPECT_EQ(policy.cap(), 30s);
}

TEST(ExponentialIntervalTest, FractionalFactorRoundsEachTermFromTheExactPower) {
  // 1.5^n = 3^n / 2^n is exact in double while 3^n < 2^53, so every term can
  // be checked against round(1.5^n) and against hand-computed values.
  jobpoll::exponential_interval policy{1ns, 1.5, 1h};
  EXPECT_THAT(take(policy, 11), ElementsAre(1ns, 2ns, 2ns, 3ns, 5ns, 8ns, 11ns, 17ns, 26ns, 38ns, 58ns));
  policy.reset();
  for (int n = 0; n <= 33; ++n) {
    ASSERT_EQ(policy.next(), nanoseconds(std::llround(std::pow(1.5, n)))) << "n = " << n;
  }
}

TEST(ExponentialIntervalTest, SubSecondTermsAreExact) {
  jobpoll::exponential_interval policy{100ms, 1.5, 1s};
  EXPECT_THAT(take(policy, 7),
              ElementsAre(100ms, 150ms, 225ms, 337'500us, 506'250us, 759'375us, 1s));
}

TEST(ExponentialIntervalTest, FactorOneIsConstantAndZeroInitialStaysZero) {
  jobpoll::exponential_interval constant{3s, 1.0, 10s};
  EXPECT_THAT(take(constant, 3), ElementsAre(3s, 3s, 3s));
  jobpoll::exponential_interval zero{0s, 2.0, 10s};
  EXPECT_THAT(take(zero, 3), ElementsAre(0s, 0s, 0s));
}

TEST(ExponentialIntervalTest, SaturatesAtTheCapForTenThousandCalls) {
  jobpoll::exponential_interval policy{1ns, 10.0, nanoseconds::max()};
  std::int64_t expected = 1;  // 10^18 is the last power of ten below 2^63 - 1
  for (int n = 0; n <= 18; ++n) {
    ASSERT_EQ(policy.next(), nanoseconds(expected)) << "n = " << n;
    if (n < 18) expected *= 10;
  }
  for (int n = 19; n < 10'000; ++n) ASSERT_EQ(policy.next(), nanoseconds::max()) << "n = " << n;
}

TEST(ExponentialIntervalTest, HugeFactorJumpsStraightToTheCap) {
  jobpoll::exponential_interval policy{1s, std::numeric_limits<double>::max(), 1h};
  EXPECT_EQ(policy.next(), 1s);
  for (int n = 1; n < 10'000; ++n) ASSERT_EQ(policy.next(), 1h) << "n = " << n;
}

TEST(ExponentialIntervalTest, MaximalInitialIsTheCap) {
  jobpoll::exponential_interval policy{nanoseconds::max(), 2.0, nanoseconds::max()};
  EXPECT_THAT(take(policy, 3), ElementsAre(nanoseconds::max(), nanoseconds::max(), nanoseconds::max()));
}

TEST(ExponentialIntervalTest, ResetRestartsAtInitial) {
  jobpoll::exponential_interval policy{1s, 3.0, 1h};
  take(policy, 5);
  policy.reset();
  EXPECT_THAT(take(policy, 3), ElementsAre(1s, 3s, 9s));
}

TEST(ExponentialIntervalTest, RejectsInvalidParametersNamingThem) {
  EXPECT_EQ(invalid_argument_message([] { jobpoll::exponential_interval(1s, 0.5, 30s); }),
            "jobpoll::exponential_interval: factor must be >= 1, got 0.5");
  EXPECT_EQ(invalid_argument_message([] { jobpoll::exponential_interval(1s, -2.0, 30s); }),
            "jobpoll::exponential_interval: factor must be >= 1, got -2");
  EXPECT_EQ(invalid_argument_message(
                [] { jobpoll::exponential_interval(1s, std::numeric_limits<double>::quiet_NaN(), 30s); }),
            "jobpoll::exponential_interval: factor must be finite, got nan");
  EXPECT_EQ(invalid_argument_message(
                [] { jobpoll::exponential_interval(1s, std::numeric_limits<double>::infinity(), 30s); }),
            "jobpoll::exponential_interval: factor must be finite, got inf");
  EXPECT_EQ(invalid_argument_message([] { jobpoll::exponential_interval(-1s, 2.0, 30s); }),
            "jobpoll::exponential_interval: initial must be >= 0ns, got -1000000000ns");
  EXPECT_EQ(invalid_argument_message([] { jobpoll::exponential_interval(2s, 2.0, 1s); }),
            "jobpoll::exponential_interval: cap must be >= initial (2000000000ns), got 1000000000ns");
}

TEST(ScheduleIntervalTest, ListedWaitsThenTheLastForever) {
  jobpoll::schedule_interval policy{1s, 2s, 5s, 30s};
  EXPECT_THAT(take(policy, 4), ElementsAre(1s, 2s, 5s, 30s));
  for (int i = 0; i < 10'000; ++i) ASSERT_EQ(policy.next(), 30s);
  EXPECT_THAT(policy.waits(), ElementsAre(1s, 2s, 5s, 30s));
}

TEST(ScheduleIntervalTest, ConstructsFromMixedDurationsAVectorOrNestedBraces) {
  jobpoll::schedule_interval mixed{500ms, 1s, std::chrono::minutes(1)};
  EXPECT_THAT(take(mixed, 4), ElementsAre(500ms, 1s, 60s, 60s));
  jobpoll::schedule_interval from_vector{std::vector<nanoseconds>{3s, 1s}};
  EXPECT_THAT(take(from_vector, 3), ElementsAre(3s, 1s, 1s));
  jobpoll::schedule_interval nested{{1s, 2s}};
  EXPECT_THAT(take(nested, 3), ElementsAre(1s, 2s, 2s));
  jobpoll::schedule_interval single{4s};
  EXPECT_THAT(take(single, 3), ElementsAre(4s, 4s, 4s));
}

TEST(ScheduleIntervalTest, ResetRestartsAtTheFirstEntry) {
  jobpoll::schedule_interval policy{1s, 2s, 5s};
  take(policy, 10);
  policy.reset();
  EXPECT_THAT(take(policy, 2), ElementsAre(1s, 2s));
}

TEST(ScheduleIntervalTest, RejectsEmptyAndNegativeSchedulesNamingTheEntry) {
  EXPECT_EQ(invalid_argument_message([] { jobpoll::schedule_interval(std::vector<nanoseconds>{}); }),
            "jobpoll::schedule_interval: schedule must not be empty, got 0 entries");
  EXPECT_EQ(invalid_argument_message([] { jobpoll::schedule_interval{1s, -1ms, 2s}; }),
            "jobpoll::schedule_interval: schedule[1] must be >= 0ns, got -1000000ns");
}

TEST(IntervalCopyTest, ACopyContinuesIndependentlyFromWhereItWasTaken) {
  jobpoll::exponential_interval original{1s, 2.0, 1h};
  take(original, 2);
  auto copy = original;
  EXPECT_THAT(take(copy, 3), ElementsAre(4s, 8s, 16s));
  EXPECT_THAT(take(original, 3), ElementsAre(4s, 8s, 16s));
}

TEST(IntervalAnyDelayTest, TypeErasedPoliciesKeepTheirSequenceAndReset) {
  jobpoll::any_delay fixed = jobpoll::fixed_interval{1s};
  jobpoll::any_delay linear = jobpoll::linear_interval{1s, 1s, 2s};
  jobpoll::any_delay exponential = jobpoll::exponential_interval{1s, 4.0, 1min};
  jobpoll::any_delay schedule = jobpoll::schedule_interval{3s, 7s};
  EXPECT_THAT(take(fixed, 4), ElementsAre(1s, 1s, 1s, 1s));
  EXPECT_THAT(take(linear, 4), ElementsAre(1s, 2s, 2s, 2s));
  EXPECT_THAT(take(exponential, 4), ElementsAre(1s, 4s, 16s, 60s));
  EXPECT_THAT(take(schedule, 4), ElementsAre(3s, 7s, 7s, 7s));
  exponential.reset();
  EXPECT_EQ(exponential.next(), 1s);
}

}  // namespace
