// The batch circuit breaker: failure rate over the most recent outcomes.

#include <jobpoll/batch/circuit_breaker.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace {

using jobpoll::circuit_breaker;
using jobpoll::circuit_breaker_options;
using ::testing::HasSubstr;

TEST(CircuitBreaker, OffByDefault) {
  circuit_breaker b;
  EXPECT_FALSE(b.enabled());
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(b.record(true));
  EXPECT_FALSE(b.open());
  EXPECT_EQ(b.reason(), "");
}

TEST(CircuitBreaker, OpensWhenTheThresholdIsReachedOverAFullWindow) {
  circuit_breaker b({.window = 4, .failure_threshold = 0.5});
  EXPECT_FALSE(b.record(true));
  EXPECT_FALSE(b.record(true));  // 2 of 2, but fewer outcomes than the window
  EXPECT_FALSE(b.record(false));
  EXPECT_TRUE(b.record(false));  // 2 of 4 = 50%
  EXPECT_TRUE(b.open());
  EXPECT_EQ(b.reason(), "circuit breaker open: 2 of the last 4 jobs failed (threshold 50%)");
  EXPECT_FALSE(b.record(false));  // stays open, stops counting
  EXPECT_TRUE(b.open());
  EXPECT_EQ(b.outcomes(), 4u);
}

TEST(CircuitBreaker, OnlyTheRecentWindowCounts) {
  circuit_breaker b({.window = 4, .failure_threshold = 0.75});
  for (bool failed : {true, true, false, false, false, false, true, true}) EXPECT_FALSE(b.record(failed)) << failed;
  EXPECT_EQ(b.failures(), 2u);  // the first two failures left the window
  EXPECT_TRUE(b.record(true));  // the last 4: false, true, true, true
  EXPECT_EQ(b.failures(), 3u);
  EXPECT_EQ(b.reason(), "circuit breaker open: 3 of the last 4 jobs failed (threshold 75%)");
}

TEST(CircuitBreaker, MinOutcomesLetsItOpenBeforeTheWindowIsFull) {
  circuit_breaker b({.window = 10, .failure_threshold = 1.0, .min_outcomes = 3});
  EXPECT_FALSE(b.record(true));
  EXPECT_FALSE(b.record(true));
  EXPECT_TRUE(b.record(true));
  EXPECT_EQ(b.reason(), "circuit breaker open: 3 of the last 3 jobs failed (threshold 100%)");
}

TEST(CircuitBreaker, SuccessesKeepItClosed) {
  circuit_breaker b({.window = 3, .failure_threshold = 0.5});
  for (int i = 0; i < 50; ++i) {
    EXPECT_FALSE(b.record(i % 3 == 0));  // 1 failure in any 3
  }
  EXPECT_FALSE(b.open());
}

TEST(CircuitBreaker, BadOptionsAreRefusedNamingTheValue) {
  auto message = [](circuit_breaker_options o) {
    try {
      circuit_breaker b(o);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  EXPECT_EQ(message({.window = 5, .failure_threshold = 0.0}),
            "jobpoll::circuit_breaker: failure_threshold must be in (0, 1], got 0");
  EXPECT_EQ(message({.window = 5, .failure_threshold = 1.5}),
            "jobpoll::circuit_breaker: failure_threshold must be in (0, 1], got 1.5");
  EXPECT_EQ(message({.window = 5, .failure_threshold = 0.5, .min_outcomes = 6}),
            "jobpoll::circuit_breaker: min_outcomes must not exceed window (5), got 6");
  EXPECT_EQ(message({.window = 0, .failure_threshold = 7.0}), "no exception");  // off: nothing to check
}

}  // namespace
