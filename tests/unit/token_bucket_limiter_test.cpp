// What only the token-bucket limiter does, on the manual clock: the burst
// then the rate, refill while idle up to the burst only, an exact fractional
// rate without drift under a thousand pollers, grants at the first tick the
// bucket holds a token (the GCRA bound), a pause that holds starts but not the
// refill, its parameters. What every limiter does (FIFO, cancellation,
// pauses, destruction, threads, completion tokens) is in limiter_test.cpp.

#include "jobpoll/token_bucket_limiter.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "limiter_helpers.hpp"

namespace {

using namespace std::chrono_literals;
using namespace jobpoll_test;
using limiter = jobpoll::basic_token_bucket_limiter<manual_clock>;
using testing::ElementsAre;

class TokenBucketLimiter : public jobpoll_test::limiter_fixture {};

TEST_F(TokenBucketLimiter, GrantsTheBurstAtOnceThenOneTokenPerInterval) {
  limiter lim(ctx.get_executor(), 2, 1s, 3);
  EXPECT_EQ(lim.tokens(), 2u);
  EXPECT_EQ(lim.per(), 1s);
  EXPECT_EQ(lim.burst(), 3u);
  EXPECT_THAT(grant_times(lim, 6), ElementsAre(at(0s), at(0s), at(0s), at(500ms), at(1s), at(1500ms)));
  expect_nothing_left_behind();
}

TEST_F(TokenBucketLimiter, IdleTimeRefillsUpToTheBurstOnly) {
  limiter lim(ctx.get_executor(), 1, 1s, 3);
  expect_try_acquire(lim, {{0s, true}, {0s, true}, {0s, true}, {0s, false}});
  // Two seconds refill two tokens; an hour, only as many as the bucket holds.
  expect_try_acquire(lim, {{2s, true}, {2s, true}, {2s, false}});
  expect_try_acquire(lim, {{1h, true}, {1h, true}, {1h, true}, {1h, false}});
  expect_done(lim, 8, 0);
}

TEST_F(TokenBucketLimiter, ThousandPollersGetExactFractionalRateWithoutDrift) {
  // 3 tokens per second: one every 333'333'333 1/3 ns.
  limiter lim(ctx.get_executor(), 3, 1s, 2);
  const std::vector<time_point> grants = run_backlogged_pollers(lim, 1000, 3);
  ASSERT_EQ(grants.size(), 3000u);
  jobpoll_test::expect_grants_at(grants,
                                 [](std::size_t i) { return at(jobpoll_test::bucket_backlog_grant(i, 3, 1s, 2)); });
  jobpoll_test::expect_bucket_respected(grants, 3, 1s, 2);
  expect_done(lim, 3000, 0);
}

TEST_F(TokenBucketLimiter, IrregularDemandIsGrantedAtTheEarliestAllowedTimeInOrder) {
  limiter lim(ctx.get_executor(), 3, 2s, 5);
  const auto grants = run_irregular_pollers(lim, 1000, 3, 1'200'000ms);
  ASSERT_EQ(grants.size(), 3000u);
  jobpoll_test::expect_bucket_earliest(grants, 3, 2s, 5);
  jobpoll_test::expect_bucket_respected(jobpoll_test::granted_times(grants), 3, 2s, 5);
  expect_nothing_left_behind();
}

TEST_F(TokenBucketLimiter, PauseHoldsWaitersButNotTheRefill) {
  limiter lim(ctx.get_executor(), 1, 1s, 3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(lim.try_acquire());
  lim.pause_for(10s);
  std::vector<time_point> grants;
  start_waits(lim, 4, grants);
  manual_clock::run_for(ctx, 2s);
  lim.pause_for(1s);  // ends at 3 s: shorter, changes nothing
  run();
  EXPECT_THAT(grants, ElementsAre(at(10s), at(10s), at(10s), at(11s)));
  expect_nothing_left_behind();
}

TEST(TokenBucketLimiterArguments, RejectsInvalidParameters) {
  asio::io_context ctx;
  EXPECT_THROW(limiter(ctx.get_executor(), 0, 1s, 1), std::invalid_argument);
  EXPECT_THROW(limiter(ctx.get_executor(), 1, 0s, 1), std::invalid_argument);
  EXPECT_THROW(limiter(ctx.get_executor(), 1, 1s, 0), std::invalid_argument);
}

}  // namespace
