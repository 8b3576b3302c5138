// What only the sliding-window limiter does, on the manual clock: the exact
// window invariant under a thousand pollers, grants at the earliest time the
// window allows, the half-open window, its parameters. What every limiter
// does (FIFO, cancellation, pauses, destruction, threads, completion tokens)
// is in limiter_test.cpp.

#include "jobpoll/sliding_window_limiter.hpp"

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gtest/gtest.h>

#include "limiter_helpers.hpp"

namespace {

using namespace std::chrono_literals;
using namespace jobpoll_test;
using limiter = jobpoll::basic_sliding_window_limiter<manual_clock>;

class SlidingWindowLimiter : public jobpoll_test::limiter_fixture {};

TEST_F(SlidingWindowLimiter, ThousandPollersNeverExceedTheWindowAndAreNeverLate) {
  limiter lim(ctx.get_executor(), 20, 15s);
  const std::vector<time_point> grants = run_backlogged_pollers(lim, 1000, 3);
  ASSERT_EQ(grants.size(), 3000u);
  jobpoll_test::expect_window_respected(grants, 20, 15s);
  // Demand never stops, so every window is used in full the moment it opens.
  jobpoll_test::expect_grants_at(grants,
                                 [](std::size_t i) { return at(jobpoll_test::window_backlog_grant(i, 20, 15s)); });
  expect_done(lim, 3000, 0);
}

TEST_F(SlidingWindowLimiter, IrregularDemandIsGrantedAtTheEarliestAllowedTimeInOrder) {
  limiter lim(ctx.get_executor(), 20, 15s);
  const auto grants = run_irregular_pollers(lim, 1000, 4, 1'500'000ms);
  ASSERT_EQ(grants.size(), 4000u);
  // FIFO: the i-th grant goes to the i-th request, as soon as it is the head
  // of the queue (the previous grant) and the window allows it.
  jobpoll_test::expect_window_earliest(grants, 20, 15s);
  jobpoll_test::expect_window_respected(jobpoll_test::granted_times(grants), 20, 15s);
  expect_nothing_left_behind();
}

TEST_F(SlidingWindowLimiter, WindowIsHalfOpenAndSlides) {
  limiter lim(ctx.get_executor(), 2, 10s);
  EXPECT_EQ(lim.max_starts(), 2u);
  EXPECT_EQ(lim.window(), 10s);
  // The start at 0 s leaves the window at 10 s exactly, the one at 5 s at 15 s.
  expect_try_acquire(lim, {{0s, true}, {5s, true}, {10s - 1ns, false}, {10s, true}, {15s - 1ns, false}, {15s, true}});
  expect_done(lim, 4, 0);
}

TEST(SlidingWindowLimiterArguments, RejectsInvalidParameters) {
  asio::io_context ctx;
  EXPECT_THROW(limiter(ctx.get_executor(), 0, 1s), std::invalid_argument);
  EXPECT_THROW(limiter(ctx.get_executor(), 1, 0s), std::invalid_argument);
}

}  // namespace
