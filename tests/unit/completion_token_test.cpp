// async_poll_until with every kind of Asio completion token.

#include <jobpoll/poll_until.hpp>

#include <future>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "poll_fixture.hpp"

using namespace std::chrono_literals;
using jobpoll::errc;
using namespace jobpoll_test;
using ::testing::HasSubstr;

namespace {

class CompletionToken : public jobpoll_test::poll_fixture {};

TEST_F(CompletionToken, Callback) {
  scripted_job job({{"working"}, {"pass"}});
  jobpoll::error_code got_ec = errc::timeout;
  std::optional<jobpoll::poll_result<response>> got;
  jobpoll::async_poll_until(ctx.get_executor(), job, seed_status{}, exact_options(),
                            [&](jobpoll::error_code ec, jobpoll::poll_result<response> r) {
                              got_ec = ec;
                              got = std::move(r);
                            });
  EXPECT_FALSE(got) << "must not complete inside the initiating call";
  manual_clock::run(ctx);
  ASSERT_TRUE(got);
  EXPECT_FALSE(got_ec);
  EXPECT_TRUE(*got);
  EXPECT_EQ(got->response->status, "pass");
}

TEST_F(CompletionToken, CallbackOnFailureStillGetsTheResult) {
  scripted_job job({{"fail"}});
  std::optional<jobpoll::poll_result<response>> got;
  jobpoll::error_code got_ec;
  jobpoll::async_poll_until(ctx.get_executor(), job, seed_status{}, exact_options(),
                            [&](jobpoll::error_code ec, jobpoll::poll_result<response> r) {
                              got_ec = ec;
                              got = std::move(r);
                            });
  manual_clock::run(ctx);
  ASSERT_TRUE(got);
  EXPECT_EQ(got_ec, errc::job_failed);
  EXPECT_FALSE(*got);
  EXPECT_EQ(got->response->status, "fail");
}

TEST_F(CompletionToken, UseFuture) {
  scripted_job job({{"working"}, {"pass"}});
  auto future = jobpoll::async_poll_until(ctx.get_executor(), job, seed_status{}, exact_options(), asio::use_future);
  manual_clock::run(ctx);
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
  auto r = future.get();
  EXPECT_EQ(r.response->status, "pass");
  EXPECT_EQ(r.stats.attempts, 2u);
}

TEST_F(CompletionToken, UseFutureThrowsTheErrorCode) {
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.deadline = 1s;
  auto future = jobpoll::async_poll_until(ctx.get_executor(), job, seed_status{}, o, asio::use_future);
  manual_clock::run(ctx);
  try {
    future.get();
    ADD_FAILURE() << "expected an exception";
  } catch (const jobpoll::system_error& e) {
    EXPECT_EQ(e.code(), errc::timeout);
  }
}

TEST_F(CompletionToken, Deferred) {
  scripted_job job({{"working"}, {"pass"}});
  auto op = jobpoll::async_poll_until(ctx.get_executor(), job, seed_status{}, exact_options(),
                                      jobpoll::asio_tokens::deferred);
  manual_clock::run(ctx);
  EXPECT_EQ(job.polls(), 0u) << "a deferred operation starts only when invoked";
  std::optional<jobpoll::poll_result<response>> got;
  std::move(op)([&](jobpoll::error_code, jobpoll::poll_result<response> r) { got = std::move(r); });
  manual_clock::run(ctx);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->response->status, "pass");
}

TEST_F(CompletionToken, DeferredAwaitedInACoroutine) {
  scripted_job job({{"pass"}});
  std::optional<jobpoll::poll_result<response>> got;
  auto o = exact_options();
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        auto op = jobpoll::async_poll_until(co_await asio::this_coro::executor, job, seed_status{}, o,
                                            jobpoll::asio_tokens::deferred);
        got = co_await std::move(op)(asio::use_awaitable);
      },
      asio::detached);
  manual_clock::run(ctx);
  ASSERT_TRUE(got);
  EXPECT_TRUE(*got);
}

TEST_F(CompletionToken, AsTupleAwaitableNeverThrows) {
  scripted_job job({{"working"}, {"http-400"}});
  std::optional<std::tuple<jobpoll::error_code, jobpoll::poll_result<response>>> got;
  auto o = exact_options();
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        got = co_await jobpoll::async_poll_until(co_await asio::this_coro::executor, job, seed_status{}, o,
                                                 jobpoll::asio_tokens::as_tuple(asio::use_awaitable));
      },
      asio::detached);
  manual_clock::run(ctx);
  ASSERT_TRUE(got);
  auto& [ec, r] = *got;
  EXPECT_EQ(ec, errc::http_error);
  EXPECT_THAT(r.message, HasSubstr("HTTP 400"));
  EXPECT_EQ(r.stats.attempts, 2u);
}

// With an executor that names a default completion token, the token may be
// left out (as with Asio's own operations).
TEST_F(CompletionToken, TheExecutorsDefaultTokenWhenNoneIsGiven) {
  scripted_job job({{"working"}, {"pass"}});
  std::optional<jobpoll::poll_result<response>> got;
  auto o = exact_options();
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        asio::use_awaitable_t<>::executor_with_default<asio::any_io_executor> ex(co_await asio::this_coro::executor);
        got = co_await jobpoll::async_poll_until(ex, job, seed_status{}, o);
      },
      asio::detached);
  manual_clock::run(ctx);
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->error);
  EXPECT_EQ(got->stats.attempts, 2u);
}

TEST_F(CompletionToken, UseAwaitableThrowsSystemError) {
  scripted_job job({{"http-400"}});
  jobpoll::error_code caught;
  auto o = exact_options();
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        try {
          co_await jobpoll::async_poll_until(co_await asio::this_coro::executor, job, seed_status{}, o,
                                             asio::use_awaitable);
        } catch (const jobpoll::system_error& e) {
          caught = e.code();
        }
      },
      asio::detached);
  manual_clock::run(ctx);
  EXPECT_EQ(caught, errc::http_error);
}

TEST_F(CompletionToken, HandlerRunsOnItsAssociatedExecutor) {
  scripted_job job({{"working"}, {"pass"}});
  auto strand = asio::make_strand(ctx);
  bool on_strand = false;
  jobpoll::async_poll_until(ctx.get_executor(), job, seed_status{}, exact_options(),
                            asio::bind_executor(strand, [&](jobpoll::error_code, jobpoll::poll_result<response>) {
                              on_strand = strand.running_in_this_thread();
                            }));
  manual_clock::run(ctx);
  EXPECT_TRUE(on_strand);
}

}  // namespace
