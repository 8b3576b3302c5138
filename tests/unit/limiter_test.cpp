// What every jobpoll rate limiter does, whatever its algorithm (the machinery
// of detail::basic_limiter), written once and run on each limiter on the
// manual clock: FIFO order, no overtaking, completions never inline,
// cancellation of every kind consuming nothing, cancellation racing a grant,
// pauses, destruction, every completion token form, two threads,
// limiter_ref, nothing left behind. What only one algorithm does is in
// sliding_window_limiter_test.cpp and token_bucket_limiter_test.cpp.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "jobpoll/rate_limiter.hpp"
#include "jobpoll/sliding_window_limiter.hpp"
#include "jobpoll/token_bucket_limiter.hpp"
#include "limiter_helpers.hpp"

namespace {

using namespace std::chrono_literals;
using namespace jobpoll_test;
using testing::ElementsAre;
using testing::Pair;

const jobpoll::error_code aborted = make_error_code(asio::error::operation_aborted);

// What differs between the limiters. Each test asks for a budget of "n starts
// at once, then one more after w": the sliding window n per w, the token
// bucket holding n tokens refilled one per w. With n = 1 the two agree on
// every grant; a backlog of more than n differs, as `backlog_grant` says.

struct sliding_window {
  template <class Clock>
  using limiter = jobpoll::basic_sliding_window_limiter<Clock>;
  static std::string name() { return "SlidingWindow"; }

  template <class Clock = manual_clock>
  static limiter<Clock> make(const asio::any_io_executor& ex, std::size_t n, typename Clock::duration w) {
    return limiter<Clock>(ex, n, w);
  }
  /// When the k-th start (from 0) of a backlog from time zero is granted.
  static time_point backlog_grant(std::size_t k, std::size_t n, manual_clock::duration w) {
    return at(jobpoll_test::window_backlog_grant(k, n, w));
  }
  static void expect_budget_respected(const std::vector<time_point>& grants, std::size_t n, manual_clock::duration w) {
    jobpoll_test::expect_window_respected(grants, n, w);
  }
};

struct token_bucket {
  template <class Clock>
  using limiter = jobpoll::basic_token_bucket_limiter<Clock>;
  static std::string name() { return "TokenBucket"; }

  template <class Clock = manual_clock>
  static limiter<Clock> make(const asio::any_io_executor& ex, std::size_t n, typename Clock::duration w) {
    return limiter<Clock>(ex, 1, w, n);
  }
  static time_point backlog_grant(std::size_t k, std::size_t n, manual_clock::duration w) {
    return at(jobpoll_test::bucket_backlog_grant(k, 1, w, static_cast<std::int64_t>(n)));
  }
  static void expect_budget_respected(const std::vector<time_point>& grants, std::size_t n, manual_clock::duration w) {
    jobpoll_test::expect_bucket_respected(grants, 1, w, static_cast<std::int64_t>(n));
  }
};

static_assert(jobpoll::rate_limiter<sliding_window::limiter<manual_clock>>);
static_assert(jobpoll::rate_limiter<jobpoll::sliding_window_limiter>);
static_assert(jobpoll::rate_limiter<token_bucket::limiter<manual_clock>>);
static_assert(jobpoll::rate_limiter<jobpoll::token_bucket_limiter>);

// Test names: Limiter/SlidingWindow.ServesWaitersInTheOrderTheyAsked, ...
struct by_name {
  template <class Traits>
  static std::string GetName(int) {
    return Traits::name();
  }
};

template <class Traits>
class Limiter : public jobpoll_test::limiter_fixture {
 protected:
  using limiter = typename Traits::template limiter<manual_clock>;

  /// A limiter on `ctx` with a budget of `n` starts at once, then one more after `w`.
  limiter make(std::size_t n, manual_clock::duration w) { return Traits::make(ctx.get_executor(), n, w); }

  /// Such a limiter, owned by the test, whose `n` starts are all taken now:
  /// the next one is due after `w`.
  limiter& used_up(std::size_t n, manual_clock::duration w) {
    used_up_.reset(new limiter(make(n, w)));
    for (std::size_t i = 0; i < n; ++i) EXPECT_TRUE(used_up_->try_acquire());
    return *used_up_;
  }

  /// 100 pollers on `pollers` share one limiter on `home` (20 starts at once,
  /// then one more after 15 s): every grant at its exact time.
  void expect_exact_on_two_threads(asio::io_context& home, asio::io_context& pollers) {
    const auto expected = [](std::size_t k) { return Traits::backlog_grant(k, 20, 15s); };
    const jobpoll_test::threaded_run r = jobpoll_test::run_on_two_threads(
        home, pollers, [](const asio::any_io_executor& ex) { return Traits::make(ex, 20, 15s); }, expected);
    jobpoll_test::expect_threaded_run_exact(r, expected);
    Traits::expect_budget_respected(r.grants, 20, 15s);
  }

 private:
  std::unique_ptr<limiter> used_up_;  // destroyed before ctx
};

using limiter_kinds = testing::Types<sliding_window, token_bucket>;
TYPED_TEST_SUITE(Limiter, limiter_kinds, by_name);

TYPED_TEST(Limiter, GrantsABacklogAtTheBudgetsTimesAndNeverInsideAsyncAcquire) {
  auto lim = this->make(3, 10s);
  const std::vector<time_point> grants = this->grant_times(lim, 7);
  ASSERT_EQ(grants.size(), 7u);
  jobpoll_test::expect_grants_at(grants, [](std::size_t k) { return TypeParam::backlog_grant(k, 3, 10s); });
  this->expect_done(lim, 7, 0);
}

TYPED_TEST(Limiter, ServesWaitersInTheOrderTheyAsked) {
  auto lim = this->make(1, 10s);
  std::vector<std::pair<int, time_point>> order;
  for (int id = 0; id < 5; ++id) lim.async_acquire(this->record_as(order, id));
  EXPECT_EQ(lim.waiting(), 4u);
  this->run();
  EXPECT_THAT(order,
              ElementsAre(Pair(0, at(0s)), Pair(1, at(10s)), Pair(2, at(20s)), Pair(3, at(30s)), Pair(4, at(40s))));
  EXPECT_EQ(lim.waiting(), 0u);
}

TYPED_TEST(Limiter, LateCallerNeverOvertakesQueuedWaiters) {
  auto lim = this->make(1, 10s);
  std::vector<std::pair<int, time_point>> order;
  lim.async_acquire(this->record_as(order, 0));
  manual_clock::run_for(this->ctx, 1s);
  lim.async_acquire(this->record_as(order, 1));
  lim.async_acquire(this->record_as(order, 2));
  this->poll();
  EXPECT_EQ(manual_clock::next_expiry(), at(10s));
  // Waiter 1's start is due at 10 s, but the limiter has not run yet: a
  // caller arriving now must still queue behind 1 and 2.
  manual_clock::advance_to(at(10s));
  EXPECT_FALSE(lim.try_acquire());
  lim.async_acquire(this->record_as(order, 3));
  this->run();
  EXPECT_THAT(order, ElementsAre(Pair(0, at(0s)), Pair(1, at(10s)), Pair(2, at(20s)), Pair(3, at(30s))));
  this->expect_nothing_left_behind();
}

TYPED_TEST(Limiter, TryAcquireTakesAStartOnlyWhenOneIsFreeNow) {
  auto lim = this->make(2, 10s);
  this->expect_try_acquire(lim, {{0s, true}, {0s, true}, {0s, false}, {10s - 1ns, false}, {10s, true}});
  this->expect_done(lim, 3, 0);
}

// Every cancellation type on every limiter: the type list is the product.
template <class Traits, asio::cancellation_type Type>
struct cancelled_by : Traits {
  static constexpr asio::cancellation_type type = Type;
  static std::string name() {
    switch (Type) {
      case asio::cancellation_type::terminal: return Traits::name() + "_terminal";
      case asio::cancellation_type::partial: return Traits::name() + "_partial";
      default: return Traits::name() + "_total";
    }
  }
};

template <class Traits>
class LimiterCancellation : public Limiter<Traits> {};

using cancellation_kinds = testing::Types<cancelled_by<sliding_window, asio::cancellation_type::terminal>,
                                          cancelled_by<sliding_window, asio::cancellation_type::partial>,
                                          cancelled_by<sliding_window, asio::cancellation_type::total>,
                                          cancelled_by<token_bucket, asio::cancellation_type::terminal>,
                                          cancelled_by<token_bucket, asio::cancellation_type::partial>,
                                          cancelled_by<token_bucket, asio::cancellation_type::total>>;
TYPED_TEST_SUITE(LimiterCancellation, cancellation_kinds, by_name);

TYPED_TEST(LimiterCancellation, CancelledWaiterCompletesAtOnceAndConsumesNothing) {
  auto& lim = this->used_up(1, 10s);
  outcome cancelled, next;
  lim.async_acquire(this->record_cancellable(cancelled));
  lim.async_acquire(this->record(next));
  manual_clock::run_for(this->ctx, 3s);
  ASSERT_FALSE(cancelled);
  this->signal.emit(TypeParam::type);
  EXPECT_FALSE(cancelled) << "completed inside the cancellation handler";
  this->poll();
  EXPECT_THAT(cancelled, aborted_at(3s));
  EXPECT_EQ(lim.waiting(), 1u);
  this->signal.emit(TypeParam::type);  // a second emit after completion is harmless
  this->run();
  // The next waiter gets the start at 10 s, when the cancelled one would have.
  EXPECT_THAT(next, granted_at(10s));
  this->expect_done(lim, 2, 1);
}

TYPED_TEST(Limiter, CancelledMiddleWaiterGivesItsPlaceToTheNext) {
  auto& lim = this->used_up(1, 10s);
  outcome first, middle, last;
  lim.async_acquire(this->record(first));
  lim.async_acquire(this->record_cancellable(middle));
  lim.async_acquire(this->record(last));
  manual_clock::run_for(this->ctx, 5s);
  this->signal.emit(asio::cancellation_type::terminal);
  this->run();
  EXPECT_THAT(first, granted_at(10s));
  EXPECT_THAT(middle, aborted_at(5s));
  EXPECT_THAT(last, granted_at(20s));
  this->expect_nothing_left_behind();
}

TYPED_TEST(Limiter, CancellingTheOnlyWaiterLeavesNoTimerBehind) {
  auto& lim = this->used_up(1, 1h);
  outcome cancelled;
  lim.async_acquire(this->record_cancellable(cancelled));
  this->poll();
  EXPECT_EQ(manual_clock::pending_waits(), 1u);
  this->signal.emit(asio::cancellation_type::terminal);
  this->poll();
  EXPECT_THAT(cancelled, aborted_at(0s));
  this->expect_nothing_left_behind();
  EXPECT_EQ(manual_clock::now(), at(0s));
}

TYPED_TEST(Limiter, CancellationThroughAwaitableOperatorsConsumesNothing) {
  using namespace asio::experimental::awaitable_operators;
  auto& lim = this->used_up(1, 10s);
  std::optional<std::pair<std::size_t, time_point>> raced;
  std::optional<time_point> next;
  asio::co_spawn(
      this->ctx,
      [&]() -> asio::awaitable<void> {
        manual_clock::timer timeout(this->ctx);
        timeout.expires_after(4s);
        auto winner = co_await (lim.async_acquire(asio::use_awaitable) || timeout.async_wait(asio::use_awaitable));
        raced.emplace(winner.index(), manual_clock::now());
      },
      rethrow);
  asio::co_spawn(
      this->ctx,
      [&]() -> asio::awaitable<void> {
        static_cast<void>(co_await lim.async_acquire(asio::use_awaitable));
        next = manual_clock::now();
      },
      rethrow);
  this->run();
  EXPECT_THAT(raced, testing::Optional(Pair(1u, at(4s))));
  EXPECT_EQ(next, at(10s));
  this->expect_done(lim, 2, 1);
}

TYPED_TEST(Limiter, CancellationAfterTheGrantLosesTheRace) {
  auto& lim = this->used_up(1, 10s);
  outcome result;
  lim.async_acquire(this->record_cancellable(result));
  this->poll();
  manual_clock::advance_to(at(10s));
  this->ctx.restart();
  while (lim.waiting() != 0) this->ctx.run_one();  // the grant happens; its completion is still queued
  ASSERT_FALSE(result);
  this->signal.emit(asio::cancellation_type::terminal);
  this->run();
  EXPECT_THAT(result, granted_at(10s));
  this->expect_done(lim, 2, 0);
}

TYPED_TEST(Limiter, CancellationBeforeTheGrantWinsAndTheNextWaiterGetsTheStart) {
  auto& lim = this->used_up(1, 10s);
  outcome cancelled, next;
  lim.async_acquire(this->record_cancellable(cancelled));
  lim.async_acquire(this->record(next));
  this->poll();
  manual_clock::advance_to(at(10s));  // the timer is due but the limiter has not run yet
  this->signal.emit(asio::cancellation_type::terminal);
  this->run();
  EXPECT_THAT(cancelled, aborted_at(10s));
  EXPECT_THAT(next, granted_at(10s));
  this->expect_done(lim, 2, 1);
}

TYPED_TEST(Limiter, PauseHoldsQueuedWaiters) {
  auto& lim = this->used_up(1, 10s);
  outcome waiter;
  lim.async_acquire(this->record(waiter));
  manual_clock::run_for(this->ctx, 5s);
  lim.pause_for(20s);
  this->run();
  EXPECT_THAT(waiter, granted_at(25s));
  this->expect_nothing_left_behind();
}

TYPED_TEST(Limiter, PauseHoldsEveryoneAndALaterShorterPauseNeverShortensIt) {
  auto lim = this->make(2, 10s);
  lim.pause_for(30s);
  EXPECT_FALSE(lim.try_acquire());
  std::vector<time_point> grants;
  this->start_waits(lim, 3, grants);
  manual_clock::run_for(this->ctx, 1s);
  lim.pause_for(5s);
  manual_clock::run_for(this->ctx, 10s);
  EXPECT_TRUE(grants.empty());
  this->run();
  EXPECT_THAT(grants, ElementsAre(at(30s), at(30s), at(40s)));
  this->expect_nothing_left_behind();
}

TYPED_TEST(Limiter, WorksThroughLimiterRef) {
  auto lim = this->make(1, 10s);
  jobpoll::limiter_ref ref(lim);
  ref.pause_for(7s);
  std::vector<time_point> grants;
  asio::co_spawn(
      this->ctx,
      [&]() -> asio::awaitable<void> {
        static_cast<void>(co_await ref.acquire());
        grants.push_back(manual_clock::now());
        static_cast<void>(co_await ref.acquire());
        grants.push_back(manual_clock::now());
      },
      rethrow);
  this->run();
  EXPECT_THAT(grants, ElementsAre(at(7s), at(17s)));
  this->expect_nothing_left_behind();
}

TYPED_TEST(Limiter, DestroyingTheLimiterAbortsWaitersAndLeavesNothingBehind) {
  std::vector<jobpoll::error_code> results;
  {
    auto lim = this->make(1, 10s);
    ASSERT_TRUE(lim.try_acquire());
    for (int i = 0; i < 3; ++i) lim.async_acquire([&](jobpoll::error_code ec, jobpoll::limiter_permit) { results.push_back(ec); });
    this->poll();
    EXPECT_EQ(manual_clock::pending_waits(), 1u);
  }
  EXPECT_TRUE(results.empty());
  this->run();
  EXPECT_THAT(results, ElementsAre(aborted, aborted, aborted));
  EXPECT_EQ(manual_clock::now(), at(0s));
  this->expect_nothing_left_behind();
}

TYPED_TEST(Limiter, DestroyingTheLimiterFailsAnAwaitingCoroutine) {
  std::optional<jobpoll::error_code> thrown;
  {
    auto lim = this->make(1, 10s);
    ASSERT_TRUE(lim.try_acquire());
    asio::co_spawn(
        this->ctx,
        [&]() -> asio::awaitable<void> {
          try {
            static_cast<void>(co_await lim.async_acquire(asio::use_awaitable));
          } catch (const jobpoll::system_error& e) {
            thrown = e.code();
          }
        },
        rethrow);
    this->poll();
  }
  this->run();
  EXPECT_EQ(thrown, aborted);
  this->expect_nothing_left_behind();
}

TYPED_TEST(Limiter, CompletesThroughUseFuture) {
  auto lim = this->make(1, 10s);
  std::future<jobpoll::limiter_permit> first = lim.async_acquire(asio::use_future);
  std::future<jobpoll::limiter_permit> second = lim.async_acquire(asio::use_future);
  std::future<jobpoll::limiter_permit> cancelled =
      lim.async_acquire(asio::bind_cancellation_slot(this->signal.slot(), asio::use_future));
  this->poll();
  EXPECT_TRUE(first.get());  // a held permit, released here at 0 s
  this->signal.emit(asio::cancellation_type::terminal);
  this->run();
  EXPECT_TRUE(second.get());
  try {
    static_cast<void>(cancelled.get());
    ADD_FAILURE() << "the cancelled future did not throw";
  } catch (const jobpoll::system_error& e) {
    EXPECT_EQ(e.code(), asio::error::operation_aborted);
  }
  EXPECT_EQ(manual_clock::now(), at(10s));
  this->expect_nothing_left_behind();
}

TYPED_TEST(Limiter, DeferredStartsOnlyWhenLaunched) {
  auto& lim = this->used_up(1, 10s);
  auto op = lim.async_acquire(jobpoll::asio_tokens::deferred);
  EXPECT_EQ(lim.waiting(), 0u);
  outcome result;
  std::move(op)(this->record(result));
  EXPECT_EQ(lim.waiting(), 1u);
  this->run();
  EXPECT_THAT(result, granted_at(10s));
  this->expect_nothing_left_behind();
}

TYPED_TEST(Limiter, AsTupleReportsGrantsAndCancellationWithoutThrowing) {
  auto lim = this->make(1, 10s);
  std::vector<std::pair<jobpoll::error_code, time_point>> results;
  auto acquire_twice = [&]() -> asio::awaitable<void> {
    for (int i = 0; i < 2; ++i) {
      auto [ec, permit] = co_await lim.async_acquire(jobpoll::asio_tokens::as_tuple(asio::use_awaitable));
      EXPECT_EQ(static_cast<bool>(permit), !ec);
      results.emplace_back(ec, manual_clock::now());
      if (ec) co_return;
    }
  };
  asio::co_spawn(this->ctx, acquire_twice, asio::bind_cancellation_slot(this->signal.slot(), rethrow));
  manual_clock::run_for(this->ctx, 2s);
  this->signal.emit(asio::cancellation_type::terminal);
  this->run();
  EXPECT_THAT(results, ElementsAre(Pair(jobpoll::error_code{}, at(0s)), Pair(aborted, at(2s))));
  EXPECT_EQ(manual_clock::now(), at(2s));
  this->expect_done(lim, 1, 1);
}

TYPED_TEST(Limiter, EveryCompletionTokenFormWaitsInTheSameQueue) {
  auto lim = this->make(1, 10s);
  std::future<jobpoll::limiter_permit> future = lim.async_acquire(asio::use_future);
  auto deferred = lim.async_acquire(jobpoll::asio_tokens::deferred);
  outcome deferred_result, tuple_result;
  std::move(deferred)(this->record(deferred_result));
  asio::co_spawn(
      this->ctx,
      [&]() -> asio::awaitable<void> {
        auto [ec, permit] = co_await lim.async_acquire(jobpoll::asio_tokens::as_tuple(asio::use_awaitable));
        tuple_result.emplace(ec, manual_clock::now());
      },
      rethrow);
  this->poll();
  EXPECT_TRUE(future.get());  // granted at 0 s and released at once
  this->run();
  EXPECT_THAT(deferred_result, granted_at(10s));
  EXPECT_THAT(tuple_result, granted_at(20s));
  this->expect_nothing_left_behind();
}

TYPED_TEST(Limiter, OneContextRunByTwoThreadsSharesOneLimiter) {
  this->expect_exact_on_two_threads(this->ctx, this->ctx);
}

TYPED_TEST(Limiter, PollersOnAnotherContextAndThreadShareOneLimiter) {
  asio::io_context pollers;
  this->expect_exact_on_two_threads(this->ctx, pollers);
}

TYPED_TEST(Limiter, OnTheSteadyClockGrantsAtOnceAndCancelsItsTimerOnDestruction) {
  asio::io_context steady;
  int granted = 0;
  std::optional<jobpoll::error_code> third;
  {
    auto lim = TypeParam::template make<std::chrono::steady_clock>(steady.get_executor(), 2, 1h);
    for (int i = 0; i < 2; ++i) lim.async_acquire([&](jobpoll::error_code ec, jobpoll::limiter_permit) { granted += ec ? 0 : 1; });
    lim.async_acquire([&](jobpoll::error_code ec, jobpoll::limiter_permit) { third = ec; });
    steady.poll();
    EXPECT_EQ(granted, 2);
    EXPECT_FALSE(third);
    EXPECT_FALSE(lim.try_acquire());
  }
  steady.restart();
  steady.run();  // returns at once: the hour-long timer wait was cancelled
  EXPECT_EQ(third, aborted);
}

TYPED_TEST(Limiter, AHeldPermitKeepsItsSlotUntilReleasedAndCountsFromThen) {
  auto lim = this->make(1, 10s);
  jobpoll::limiter_permit held = lim.try_acquire();
  ASSERT_TRUE(held);
  EXPECT_EQ(lim.in_use(), 1u);
  outcome next;
  lim.async_acquire(this->record(next));
  manual_clock::run_for(this->ctx, 30s);  // time alone does not free a held slot
  EXPECT_FALSE(next);
  EXPECT_FALSE(lim.try_acquire());
  held.release();  // the answer came at 30 s: the request counts from 30 s
  held.release();  // idempotent
  EXPECT_FALSE(held);
  this->run();
  EXPECT_THAT(next, granted_at(40s));
  EXPECT_EQ(lim.statistics().granted, 2u);
  EXPECT_EQ(lim.statistics().released, 2u);
  EXPECT_EQ(lim.in_use(), 0u);
  this->expect_nothing_left_behind();
}

TYPED_TEST(Limiter, APermitMovedOrDestroyedReleasesOnce) {
  auto lim = this->make(2, 10s);
  {
    jobpoll::limiter_permit a = lim.try_acquire();
    jobpoll::limiter_permit b = std::move(a);
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): a moved-from permit is empty
    EXPECT_TRUE(b);
    a = lim.try_acquire();
    a = std::move(b);  // releases what `a` held
    EXPECT_EQ(lim.in_use(), 1u);
  }
  EXPECT_EQ(lim.in_use(), 0u);
  EXPECT_EQ(lim.statistics().released, 2u);
}

TYPED_TEST(Limiter, APermitMayOutliveItsLimiter) {
  jobpoll::limiter_permit outlives;
  {
    auto lim = this->make(1, 10s);
    outlives = lim.try_acquire();
    ASSERT_TRUE(outlives);
  }
  outlives.release();  // does nothing, crashes nothing
  this->expect_nothing_left_behind();
}

TYPED_TEST(Limiter, ExpectedWaitIsKnownOnlyWhenNothingElseDecides) {
  auto lim = this->make(1, 10s);
  EXPECT_EQ(lim.expected_wait(), 0ns);
  jobpoll::limiter_permit held = lim.try_acquire();
  EXPECT_EQ(lim.expected_wait(), std::nullopt);  // only the held request's answer can free the slot
  manual_clock::advance_to(at(2s));
  held.release();
  EXPECT_EQ(lim.expected_wait(), 10s);
  outcome queued;
  lim.async_acquire(this->record(queued));
  EXPECT_EQ(lim.expected_wait(), std::nullopt);  // behind a waiter: depends on what it does
  this->run();
  EXPECT_THAT(queued, granted_at(12s));
  this->expect_nothing_left_behind();
}

}  // namespace
