#include "jobpoll/jitter.hpp"
#include "jobpoll/backoff.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "policy_helpers.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "jobpoll/delay_policy.hpp"
#include "jobpoll/interval.hpp"

namespace {

using namespace jobpoll_test;

using namespace std::chrono_literals;
using std::chrono::nanoseconds;
using ::testing::ElementsAre;

using full_exponential = jobpoll::full_jitter<jobpoll::exponential_interval>;
using equal_fixed = jobpoll::equal_jitter<jobpoll::fixed_interval>;

static_assert(jobpoll::interval_policy<full_exponential>);
static_assert(jobpoll::backoff_policy<full_exponential>);
static_assert(jobpoll::interval_policy<equal_fixed>);
static_assert(jobpoll::backoff_policy<equal_fixed>);
static_assert(jobpoll::interval_policy<jobpoll::decorrelated_jitter>);
static_assert(jobpoll::backoff_policy<jobpoll::decorrelated_jitter>);
static_assert(jobpoll::backoff_policy<jobpoll::default_backoff>);
static_assert(jobpoll::backoff_policy<jobpoll::full_jitter<jobpoll::equal_jitter<jobpoll::schedule_interval>>>);
static_assert(std::is_convertible_v<jobpoll::default_backoff, jobpoll::any_delay>);
static_assert(std::is_convertible_v<jobpoll::decorrelated_jitter, jobpoll::any_delay>);
static_assert(!jobpoll::backoff_policy<int>);
// Only delay policies can be jittered.
template <class P>
concept full_jitterable = requires { typename jobpoll::full_jitter<P>; };
template <class P>
concept equal_jitterable = requires { typename jobpoll::equal_jitter<P>; };
static_assert(full_jitterable<jobpoll::fixed_interval> && !full_jitterable<int>);
static_assert(equal_jitterable<jobpoll::fixed_interval> && !equal_jitterable<nanoseconds>);
// Class template argument deduction from the inner policy.
static_assert(std::is_same_v<decltype(jobpoll::full_jitter{jobpoll::exponential_interval{1s, 2.0, 30s}, 42}),
                             full_exponential>);
static_assert(std::is_same_v<decltype(jobpoll::equal_jitter{jobpoll::fixed_interval{1s}}), equal_fixed>);
static_assert(std::is_same_v<jobpoll::default_backoff, full_exponential>);

constexpr int sample_count = 20'000;

/// A policy returning scripted waits (the last one repeated) that counts resets.
struct scripted_policy {
  std::vector<nanoseconds> waits;
  std::size_t index = 0;
  int resets = 0;

  nanoseconds next() {
    const auto wait = waits[index];
    if (index + 1 < waits.size()) ++index;
    return wait;
  }
  void reset() {
    index = 0;
    ++resets;
  }
};
static_assert(jobpoll::delay_policy<scripted_policy>);

struct sample_stats {
  nanoseconds min = nanoseconds::max();
  nanoseconds max = nanoseconds::min();
  double mean_ns = 0;
};

/// Statistics of `count` calls of `draw`, each checked to lie in [low, high].
sample_stats sample(const std::function<nanoseconds()>& draw, nanoseconds low, nanoseconds high,
                    int count = sample_count) {
  sample_stats stats;
  double sum = 0;
  for (int i = 0; i < count; ++i) {
    const auto wait = draw();
    EXPECT_GE(wait, low) << "sample " << i;
    EXPECT_LE(wait, high) << "sample " << i;
    stats.min = std::min(stats.min, wait);
    stats.max = std::max(stats.max, wait);
    sum += static_cast<double>(wait.count());
  }
  stats.mean_ns = sum / count;
  return stats;
}

template <class P>
std::size_t count_differences(P a, P b, std::size_t count) {
  std::size_t differences = 0;
  for (std::size_t i = 0; i < count; ++i) differences += a.next() != b.next() ? 1 : 0;
  return differences;
}

// --- full_jitter ------------------------------------------------------------

TEST(FullJitterTest, UniformBetweenZeroAndTheInnerWait) {
  jobpoll::full_jitter policy{jobpoll::fixed_interval{1s}, 42};
  const auto stats = sample([&] { return policy.next(); }, 0s, 1s);
  EXPECT_NEAR(stats.mean_ns, 500e6, 0.02 * 500e6);
  EXPECT_LT(stats.min, 1ms);
  EXPECT_GT(stats.max, 999ms);
}

TEST(FullJitterTest, ReachesBothIntegerBoundsExactly) {
  for (std::int64_t v = 0; v <= 10; ++v) {
    jobpoll::full_jitter policy{jobpoll::fixed_interval{nanoseconds(v)}, 1};
    std::set<std::int64_t> seen;
    for (int i = 0; i < 500; ++i) seen.insert(policy.next().count());
    std::set<std::int64_t> all;
    for (std::int64_t w = 0; w <= v; ++w) all.insert(w);
    EXPECT_EQ(seen, all) << "v = " << v;
  }
}

TEST(FullJitterTest, EachWaitIsBoundedByTheInnerSequence) {
  jobpoll::full_jitter policy{jobpoll::exponential_interval{1ms, 2.0, 1s}, 7};
  jobpoll::exponential_interval bounds{1ms, 2.0, 1s};
  for (int n = 0; n < 10'000; ++n) {
    const auto bound = bounds.next();
    const auto wait = policy.next();
    ASSERT_GE(wait, 0ns) << "n = " << n;
    ASSERT_LE(wait, bound) << "n = " << n;
  }
}

TEST(FullJitterTest, ResetResetsTheInnerPolicy) {
  jobpoll::full_jitter policy{scripted_policy{{0ns, 1s}}, 3};
  EXPECT_EQ(policy.next(), 0ns);
  EXPECT_LE(policy.next(), 1s);
  policy.reset();
  EXPECT_EQ(policy.inner().resets, 1);
  EXPECT_EQ(policy.next(), 0ns);
}

TEST(FullJitterTest, ExtremeAndNegativeInnerWaits) {
  jobpoll::full_jitter huge{jobpoll::fixed_interval{nanoseconds::max()}, 5};
  const auto stats = sample([&] { return huge.next(); }, 0ns, nanoseconds::max(), 1'000);
  EXPECT_NEAR(stats.mean_ns, static_cast<double>(nanoseconds::max().count()) / 2,
              0.05 * static_cast<double>(nanoseconds::max().count()));
  jobpoll::full_jitter negative{scripted_policy{{-5ns}}, 5};
  EXPECT_THAT(take(negative, 3), ElementsAre(0ns, 0ns, 0ns));
}

// --- equal_jitter -----------------------------------------------------------

TEST(EqualJitterTest, UniformBetweenHalfAndAllOfTheInnerWait) {
  jobpoll::equal_jitter policy{jobpoll::fixed_interval{1s}, 42};
  const auto stats = sample([&] { return policy.next(); }, 500ms, 1s);
  EXPECT_NEAR(stats.mean_ns, 750e6, 0.02 * 750e6);
  EXPECT_LT(stats.min, 501ms);
  EXPECT_GT(stats.max, 999ms);
}

TEST(EqualJitterTest, ReachesBothIntegerBoundsExactlyForOddAndEvenWaits) {
  for (std::int64_t v = 0; v <= 11; ++v) {
    jobpoll::equal_jitter policy{jobpoll::fixed_interval{nanoseconds(v)}, 1};
    std::set<std::int64_t> seen;
    for (int i = 0; i < 500; ++i) seen.insert(policy.next().count());
    std::set<std::int64_t> all;
    for (std::int64_t w = v / 2; w <= v; ++w) all.insert(w);
    EXPECT_EQ(seen, all) << "v = " << v;
  }
}

TEST(EqualJitterTest, ResetResetsTheInnerPolicy) {
  jobpoll::equal_jitter policy{scripted_policy{{2ns, 1s}}, 3};
  EXPECT_GE(policy.next(), 1ns);
  EXPECT_GE(policy.next(), 500ms);
  policy.reset();
  EXPECT_EQ(policy.inner().resets, 1);
  EXPECT_LE(policy.next(), 2ns);
}

TEST(EqualJitterTest, ExtremeAndNegativeInnerWaits) {
  jobpoll::equal_jitter huge{jobpoll::fixed_interval{nanoseconds::max()}, 5};
  sample([&] { return huge.next(); }, nanoseconds::max() / 2, nanoseconds::max(), 1'000);
  jobpoll::equal_jitter negative{scripted_policy{{-5ns}}, 5};
  EXPECT_THAT(take(negative, 3), ElementsAre(0ns, 0ns, 0ns));
}

// --- decorrelated_jitter ----------------------------------------------------

TEST(DecorrelatedJitterTest, FirstWaitIsUniformBetweenBaseAndThreeBase) {
  jobpoll::decorrelated_jitter policy{100ms, 10s, 42};
  const auto stats = sample(
      [&] {
        policy.reset();
        return policy.next();
      },
      100ms, 300ms);
  EXPECT_NEAR(stats.mean_ns, 200e6, 0.02 * 200e6);
  EXPECT_LT(stats.min, 101ms);
  EXPECT_GT(stats.max, 299ms);
}

TEST(DecorrelatedJitterTest, CapAppliesAfterTheDraw) {
  // min(cap, U(base, 3·base)) with cap = 2·base: half the draws land on the cap.
  jobpoll::decorrelated_jitter policy{100ms, 200ms, 42};
  int at_cap = 0;
  const auto stats = sample(
      [&] {
        policy.reset();
        const auto wait = policy.next();
        at_cap += wait == 200ms ? 1 : 0;
        return wait;
      },
      100ms, 200ms);
  EXPECT_NEAR(static_cast<double>(at_cap) / sample_count, 0.5, 0.02);
  EXPECT_NEAR(stats.mean_ns, 175e6, 0.02 * 175e6);
}

TEST(DecorrelatedJitterTest, EachWaitIsUniformBetweenBaseAndThreeTimesThePrevious) {
  const nanoseconds base = 1ms;
  const nanoseconds cap = 10s;
  jobpoll::decorrelated_jitter policy{base, cap, 9};
  auto previous = base;
  double position_sum = 0;
  int uncapped = 0;
  for (int i = 0; i < sample_count; ++i) {
    const auto wait = policy.next();
    const auto high = 3 * previous;
    ASSERT_GE(wait, base) << "step " << i;
    ASSERT_LE(wait, std::min(cap, high)) << "step " << i;
    if (high <= cap) {
      position_sum += static_cast<double>((wait - base).count()) / static_cast<double>((high - base).count());
      ++uncapped;
    }
    previous = wait;
  }
  ASSERT_GT(uncapped, sample_count / 4);
  EXPECT_NEAR(position_sum / uncapped, 0.5, 0.01);
}

TEST(DecorrelatedJitterTest, ResetReturnsToBaseAndAccessorsReport) {
  jobpoll::decorrelated_jitter policy{1s, 1h, 11};
  for (int i = 0; i < 50; ++i) policy.next();
  policy.reset();
  const auto wait = policy.next();
  EXPECT_GE(wait, 1s);
  EXPECT_LE(wait, 3s);
  EXPECT_EQ(policy.base(), 1s);
  EXPECT_EQ(policy.cap(), 1h);
}

TEST(DecorrelatedJitterTest, SaturatesWithoutOverflowAndZeroBaseStaysZero) {
  jobpoll::decorrelated_jitter at_max{nanoseconds::max(), nanoseconds::max(), 1};
  for (int i = 0; i < 10'000; ++i) ASSERT_EQ(at_max.next(), nanoseconds::max());
  jobpoll::decorrelated_jitter large{nanoseconds::max() / 2, nanoseconds::max(), 1};
  sample([&] { return large.next(); }, nanoseconds::max() / 2, nanoseconds::max(), 10'000);
  jobpoll::decorrelated_jitter zero{0ns, 1s, 1};
  EXPECT_THAT(take(zero, 3), ElementsAre(0ns, 0ns, 0ns));
}

TEST(DecorrelatedJitterTest, RejectsInvalidParametersNamingThem) {
  EXPECT_EQ(invalid_argument_message([] { jobpoll::decorrelated_jitter(-1ms, 1s); }),
            "jobpoll::decorrelated_jitter: base must be >= 0ns, got -1000000ns");
  EXPECT_EQ(invalid_argument_message([] { jobpoll::decorrelated_jitter(2s, 1s); }),
            "jobpoll::decorrelated_jitter: cap must be >= base (2000000000ns), got 1000000000ns");
}

// --- seeding, shared by all three -------------------------------------------

TEST(JitterSeedTest, SameSeedGivesTheSameSequence) {
  EXPECT_EQ(count_differences(jobpoll::full_jitter{jobpoll::fixed_interval{1s}, 42},
                              jobpoll::full_jitter{jobpoll::fixed_interval{1s}, 42}, 1'000),
            0U);
  EXPECT_EQ(count_differences(jobpoll::equal_jitter{jobpoll::fixed_interval{1s}, 42},
                              jobpoll::equal_jitter{jobpoll::fixed_interval{1s}, 42}, 1'000),
            0U);
  EXPECT_EQ(count_differences(jobpoll::decorrelated_jitter{1ms, 1s, 42}, jobpoll::decorrelated_jitter{1ms, 1s, 42},
                              1'000),
            0U);
}

TEST(JitterSeedTest, DifferentSeedsGiveDifferentSequences) {
  EXPECT_GT(count_differences(jobpoll::full_jitter{jobpoll::fixed_interval{1s}, 42},
                              jobpoll::full_jitter{jobpoll::fixed_interval{1s}, 43}, 1'000),
            990U);
  EXPECT_GT(count_differences(jobpoll::equal_jitter{jobpoll::fixed_interval{1s}, 42},
                              jobpoll::equal_jitter{jobpoll::fixed_interval{1s}, 43}, 1'000),
            990U);
  // Decorrelated waits sit on the cap about a third of the time, so fewer differ.
  EXPECT_GT(count_differences(jobpoll::decorrelated_jitter{1ms, 1s, 42}, jobpoll::decorrelated_jitter{1ms, 1s, 43},
                              1'000),
            500U);
}

TEST(JitterSeedTest, DefaultSeedsDifferBetweenInstances) {
  EXPECT_GT(count_differences(jobpoll::full_jitter{jobpoll::fixed_interval{1s}},
                              jobpoll::full_jitter{jobpoll::fixed_interval{1s}}, 100),
            90U);
}

TEST(JitterSeedTest, ResetDoesNotReseedAndACopyContinuesTheSameSequence) {
  jobpoll::full_jitter policy{jobpoll::fixed_interval{1s}, 42};
  const auto first = take(policy, 5);
  policy.reset();
  EXPECT_NE(take(policy, 5), first);
  auto copy = policy;
  EXPECT_EQ(take(copy, 5), take(policy, 5));
}

TEST(JitterSeedTest, UnseededCopiesDrawFreshSeedsSoPollersFromOneOptionsSpreadOut) {
  const jobpoll::full_jitter original{jobpoll::fixed_interval{1s}};
  auto a = original;
  auto b = original;
  EXPECT_GT(count_differences(a, b, 100), 90U);
  const jobpoll::any_delay erased = jobpoll::make_default_backoff();
  jobpoll::any_delay c = erased;
  jobpoll::any_delay d = erased;
  int same = 0;
  for (int i = 0; i < 100; ++i) {
    c.reset();
    d.reset();
    same += c.next() == d.next();
  }
  EXPECT_LT(same, 10);
}

TEST(JitterSeedTest, SeededCopiesThroughAnyDelayStayReproducible) {
  const jobpoll::any_delay erased = jobpoll::make_default_backoff(42);
  jobpoll::any_delay c = erased;
  jobpoll::any_delay d = c;
  for (int i = 0; i < 100; ++i) EXPECT_EQ(c.next(), d.next());
}

// A poll in flight carries its policies: they must stay small.
static_assert(sizeof(jobpoll::default_backoff) <= 64);

// --- the default backoff ------------------------------------------------------

TEST(JitterDefaultBackoffTest, IsFullJitterOverHalfASecondDoublingToThirtySeconds) {
  const auto backoff = jobpoll::make_default_backoff(7);
  EXPECT_EQ(backoff.inner().initial(), 500ms);
  EXPECT_EQ(backoff.inner().factor(), 2.0);
  EXPECT_EQ(backoff.inner().cap(), 30s);
  EXPECT_EQ(count_differences(backoff, jobpoll::full_jitter{jobpoll::exponential_interval{500ms, 2.0, 30s}, 7}, 1'000),
            0U);
}

TEST(JitterDefaultBackoffTest, WaitsAreBoundedByTheExponentialAndUniformOnceCapped) {
  auto backoff = jobpoll::make_default_backoff(11);
  const std::vector<nanoseconds> bounds{500ms, 1s, 2s, 4s, 8s, 16s, 30s};
  for (std::size_t n = 0; n < bounds.size(); ++n) {
    const auto wait = backoff.next();
    EXPECT_GE(wait, 0s) << "n = " << n;
    EXPECT_LE(wait, bounds[n]) << "n = " << n;
  }
  const auto stats = sample([&] { return backoff.next(); }, 0s, 30s);
  EXPECT_NEAR(stats.mean_ns, 15e9, 0.02 * 15e9);
  EXPECT_GT(stats.max, 29'900ms);
}

TEST(JitterDefaultBackoffTest, ResetStartsAgainFromHalfASecond) {
  auto backoff = jobpoll::make_default_backoff(13);
  const auto stats = sample(
      [&] {
        for (int i = 0; i < 3; ++i) backoff.next();
        backoff.reset();
        return backoff.next();
      },
      0s, 500ms);
  EXPECT_NEAR(stats.mean_ns, 250e6, 0.02 * 250e6);
}

TEST(JitterDefaultBackoffTest, ExponentialBackoffFactory) {
  const auto custom = jobpoll::exponential_backoff(1s, 10s, 3.0, 5);
  static_assert(std::is_same_v<std::remove_const_t<decltype(custom)>, jobpoll::default_backoff>);
  EXPECT_EQ(custom.inner().initial(), 1s);
  EXPECT_EQ(custom.inner().factor(), 3.0);
  EXPECT_EQ(custom.inner().cap(), 10s);
  EXPECT_EQ(count_differences(custom, jobpoll::full_jitter{jobpoll::exponential_interval{1s, 3.0, 10s}, 5}, 1'000),
            0U);
  EXPECT_EQ(jobpoll::exponential_backoff(1s, 10s).inner().factor(), 2.0);
  EXPECT_EQ(invalid_argument_message([] { jobpoll::exponential_backoff(1s, 10s, 0.5); }),
            "jobpoll::exponential_interval: factor must be >= 1, got 0.5");
}

}  // namespace
