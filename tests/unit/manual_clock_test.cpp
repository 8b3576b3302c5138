// The manual clock and its timer: exact, instant, and cancellable like Asio's.

#include <jobpoll/testing/manual_clock.hpp>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <jobpoll/clock.hpp>

using namespace std::chrono_literals;
using jobpoll::testing::manual_clock;
using ::testing::ElementsAre;

namespace {

static_assert(jobpoll::clock<manual_clock>);
static_assert(jobpoll::clock<std::chrono::steady_clock>);
static_assert(std::is_same_v<jobpoll::timer_for<manual_clock>, manual_clock::timer>);
static_assert(std::is_same_v<jobpoll::timer_for<std::chrono::steady_clock>, asio::steady_timer>);

class ManualClock : public ::testing::Test {
 protected:
  void SetUp() override { manual_clock::reset(); }
  void TearDown() override { EXPECT_EQ(manual_clock::pending_waits(), 0u); }
  double now_s() const { return std::chrono::duration<double>(manual_clock::now().time_since_epoch()).count(); }
  asio::io_context ctx;
};

TEST_F(ManualClock, StartsAtZeroAndMovesOnlyWhenAdvanced) {
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 0s);
  manual_clock::advance(90s);
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 90s);
  manual_clock::advance_to(manual_clock::time_point{10s});  // never backwards
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 90s);
}

TEST_F(ManualClock, TimersFireInExpiryOrderAtTheirExactTime) {
  std::vector<double> fired;
  manual_clock::timer a(ctx), b(ctx), c(ctx);
  a.expires_after(3s);
  b.expires_after(1s);
  c.expires_after(2s);
  for (auto* t : {&a, &b, &c})
    t->async_wait([&](jobpoll::error_code ec) {
      EXPECT_FALSE(ec);
      fired.push_back(now_s());
    });
  EXPECT_EQ(manual_clock::pending_waits(), 3u);
  EXPECT_EQ(manual_clock::run(ctx), 3s);
  EXPECT_THAT(fired, ElementsAre(1.0, 2.0, 3.0));
}

TEST_F(ManualClock, AnExpiredWaitCompletesThroughPostNotInline) {
  manual_clock::timer t(ctx);
  t.expires_at(manual_clock::now());
  bool done = false;
  t.async_wait([&](jobpoll::error_code ec) { done = !ec; });
  EXPECT_FALSE(done);
  ctx.poll();
  EXPECT_TRUE(done);
}

TEST_F(ManualClock, RunForStopsExactlyAtTheTarget) {
  manual_clock::timer t(ctx);
  t.expires_after(10s);
  jobpoll::error_code got = asio::error::would_block;
  t.async_wait([&](jobpoll::error_code ec) { got = ec; });
  manual_clock::run_for(ctx, 4s);
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 4s);
  EXPECT_EQ(got, asio::error::would_block);
  manual_clock::run_for(ctx, 6s);
  EXPECT_FALSE(got);
}

TEST_F(ManualClock, CancelNewExpiryAndDestructionAbortWaits) {
  std::vector<jobpoll::error_code> got;
  auto record = [&](jobpoll::error_code ec) { got.push_back(ec); };
  {
    manual_clock::timer t(ctx);
    t.expires_after(5s);
    t.async_wait(record);
    EXPECT_EQ(t.cancel(), 1u);
    t.async_wait(record);
    EXPECT_EQ(t.expires_after(1s), 1u);
    t.async_wait(record);
  }
  ctx.poll();
  EXPECT_THAT(got, ElementsAre(asio::error::operation_aborted, asio::error::operation_aborted,
                               asio::error::operation_aborted));
}

TEST_F(ManualClock, CancellationSlotAbortsOneWait) {
  manual_clock::timer t(ctx);
  t.expires_after(5s);
  asio::cancellation_signal signal;
  jobpoll::error_code got;
  t.async_wait(asio::bind_cancellation_slot(signal.slot(), [&](jobpoll::error_code ec) { got = ec; }));
  manual_clock::run_for(ctx, 1s);
  signal.emit(asio::cancellation_type::terminal);
  ctx.poll();
  EXPECT_EQ(got, asio::error::operation_aborted);
  EXPECT_EQ(manual_clock::pending_waits(), 0u);
}

TEST_F(ManualClock, CoroutinesSleepExactly) {
  std::vector<double> woke;
  for (int i = 1; i <= 3; ++i) {
    asio::co_spawn(
        ctx,
        [&, i]() -> asio::awaitable<void> {
          manual_clock::timer t(co_await asio::this_coro::executor);
          for (int k = 0; k < 2; ++k) {
            t.expires_after(std::chrono::seconds(i));
            co_await t.async_wait(asio::use_awaitable);
            woke.push_back(now_s());
          }
        },
        asio::detached);
  }
  manual_clock::run(ctx);
  EXPECT_THAT(woke, ElementsAre(1.0, 2.0, 2.0, 3.0, 4.0, 6.0));
}

TEST_F(ManualClock, RunStopsAtTheLimit) {
  manual_clock::timer t(ctx);
  t.expires_after(48h);
  t.async_wait([](jobpoll::error_code) {});
  EXPECT_EQ(manual_clock::run(ctx, 24h), 0s);
  EXPECT_EQ(manual_clock::pending_waits(), 1u);
  manual_clock::reset();  // aborts the wait
  ctx.poll();
}

}  // namespace
