// Rule 5: cancellation ends the poll promptly whatever it is waiting on, and
// leaves nothing behind (the fixture checks no timer wait and no handler is
// left; ASan checks memory).

#include <jobpoll/poll_until.hpp>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "poll_fixture.hpp"

using namespace std::chrono_literals;
using namespace jobpoll_test;
using ::testing::ElementsAre;

namespace {

class PollCancellation : public jobpoll_test::poll_fixture {
 protected:
  // Starts a poll bound to `signal`, runs until `at`, emits, runs to the end.
  jobpoll::poll_result<response> cancel_at(scripted_job job, options o, manual_clock::duration at,
                                           asio::cancellation_type type = asio::cancellation_type::terminal) {
    std::optional<jobpoll::poll_result<response>> out;
    jobpoll::async_poll_until(ctx.get_executor(), std::move(job), seed_status{}, std::move(o),
                              asio::bind_cancellation_slot(signal.slot(), [&](jobpoll::error_code, auto r) {
                                out = std::move(r);
                                finished_at = manual_clock::now().time_since_epoch();
                              }));
    manual_clock::run_for(ctx, at);
    EXPECT_FALSE(out) << "finished before the cancellation";
    signal.emit(type);
    manual_clock::run(ctx);
    EXPECT_TRUE(out);
    return out ? std::move(*out) : jobpoll::poll_result<response>{};
  }

  asio::cancellation_signal signal;
  manual_clock::duration finished_at{};
};

TEST_F(PollCancellation, DuringTheIntervalWait) {
  scripted_job job({{"working"}});
  auto r = cancel_at(job, exact_options(), 1s);
  EXPECT_EQ(r.error, asio::error::operation_aborted);
  EXPECT_EQ(finished_at, 1s);
  EXPECT_EQ(job.polls(), 1u);
  EXPECT_EQ(log.ends, 1);
  EXPECT_EQ(r.response->status, "working");  // the last answer is still reported
}

TEST_F(PollCancellation, DuringTheInitialDelay) {
  scripted_job job({{"pass"}});
  auto o = exact_options();
  o.initial_delay = 10s;
  auto r = cancel_at(job, o, 4s);
  EXPECT_EQ(r.error, asio::error::operation_aborted);
  EXPECT_EQ(finished_at, 4s);
  EXPECT_EQ(job.polls(), 0u);
  EXPECT_FALSE(r.response);
}

TEST_F(PollCancellation, DuringTheBackoffWait) {
  scripted_job job({{"http-503"}});
  auto o = exact_options();
  o.backoff = jobpoll::fixed_interval{30s};
  auto r = cancel_at(job, o, 5s);
  EXPECT_EQ(r.error, asio::error::operation_aborted);
  EXPECT_EQ(finished_at, 5s);
}

TEST_F(PollCancellation, DuringThePollItself) {
  scripted_job job({{"working", {}, 60s}});
  auto r = cancel_at(job, exact_options(), 3s);
  EXPECT_EQ(r.error, asio::error::operation_aborted);
  EXPECT_EQ(finished_at, 3s);
  EXPECT_EQ(job.record().cancelled, 1);  // the poll operation itself saw the cancellation
  EXPECT_EQ(job.record().completed, 0);
}

TEST_F(PollCancellation, DuringAPollUnderAnAttemptTimeout) {
  scripted_job job({{"working", {}, 60s}});
  auto o = exact_options();
  o.attempt_timeout = 30s;
  auto r = cancel_at(job, o, 3s);
  EXPECT_EQ(r.error, asio::error::operation_aborted);
  EXPECT_EQ(finished_at, 3s);
  EXPECT_EQ(job.record().cancelled, 1);
}

TEST_F(PollCancellation, PartialAndTotalCancellationAlsoEndTheWait) {
  for (auto type : {asio::cancellation_type::partial, asio::cancellation_type::total}) {
    scripted_job job({{"working"}});
    auto r = cancel_at(job, exact_options(), 1s, type);
    EXPECT_EQ(r.error, asio::error::operation_aborted);
  }
}

// Emitted after the call but before the io_context runs: the poll's coroutine
// has not started. Asio 1.22 would throw the cancellation out of run() and
// never call the handler; a partial one would be lost.
TEST_F(PollCancellation, BeforeThePollStartsEndsItWithoutAnAttempt) {
  for (auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                    asio::cancellation_type::total}) {
    manual_clock::reset();
    ctx.restart();
    scripted_job job({{"working"}});
    std::optional<jobpoll::poll_result<response>> out;
    jobpoll::async_poll_until(ctx.get_executor(), job, seed_status{}, exact_options(),
                              asio::bind_cancellation_slot(signal.slot(), [&](jobpoll::error_code, auto r) { out = std::move(r); }));
    signal.emit(type);
    EXPECT_NO_THROW(manual_clock::run(ctx));
    ASSERT_TRUE(out) << "the handler was never called";
    EXPECT_EQ(out->error, asio::error::operation_aborted);
    EXPECT_EQ(job.polls(), 0u);
    EXPECT_EQ(out->stats.attempts, 0u);
  }
  EXPECT_EQ(log.ends, 3);
}

// Options refused at the call: an early cancellation does not mask that.
TEST_F(PollCancellation, BeforeARejectedPollStartsTheRejectionStands) {
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.deadline = -1s;
  std::optional<jobpoll::error_code> got;
  jobpoll::async_poll_until(ctx.get_executor(), job, seed_status{}, o,
                            asio::bind_cancellation_slot(signal.slot(), [&](jobpoll::error_code ec, auto) { got = ec; }));
  signal.emit(asio::cancellation_type::terminal);
  EXPECT_NO_THROW(manual_clock::run(ctx));
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, jobpoll::errc::invalid_argument);
  EXPECT_EQ(job.polls(), 0u);
}

// Asio throws at any co_await of an already-cancelled coroutine: there
// poll_until cannot run. With throw_if_cancelled(false) it runs, makes no
// attempt and throws poll_error, as the README says. The coroutine is
// cancelled while it waits on a timer (emitting from inside the running
// coroutine itself terminates on Boost.Asio 1.26).
TEST_F(PollCancellation, InAnAlreadyCancelledCoroutine) {
  for (bool throw_if_cancelled : {true, false}) {
    manual_clock::reset();
    ctx.restart();
    scripted_job job({{"working"}});
    std::optional<jobpoll::error_code> code;
    bool was_poll_error = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
          co_await asio::this_coro::throw_if_cancelled(throw_if_cancelled);
          manual_clock::timer idle(co_await asio::this_coro::executor);
          idle.expires_after(1h);
          try {
            co_await idle.async_wait(asio::use_awaitable);
          } catch (const jobpoll::system_error&) {
          }
          try {
            co_await jobpoll::poll_until(job, seed_status{}, exact_options());
          } catch (const jobpoll::poll_error& e) {
            was_poll_error = true;
            code = e.code();
          } catch (const jobpoll::system_error& e) {
            code = e.code();
          }
        },
        asio::bind_cancellation_slot(signal.slot(), asio::detached));
    asio::post(ctx, [this] { signal.emit(asio::cancellation_type::terminal); });
    manual_clock::run(ctx);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, asio::error::operation_aborted);
    EXPECT_EQ(was_poll_error, !throw_if_cancelled);
    EXPECT_EQ(job.polls(), 0u);
  }
}

TEST_F(PollCancellation, OrWithATimerEndsThePoll) {
  using namespace asio::experimental::awaitable_operators;
  scripted_job job({{"working"}});
  std::optional<std::size_t> winner;
  auto o = exact_options();
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        manual_clock::timer give_up(co_await asio::this_coro::executor);
        give_up.expires_after(5s);
        auto v = co_await (jobpoll::poll_until(job, seed_status{}, o) || give_up.async_wait(asio::use_awaitable));
        winner = v.index();
        finished_at = manual_clock::now().time_since_epoch();
      },
      asio::detached);
  manual_clock::run(ctx);
  ASSERT_TRUE(winner);
  EXPECT_EQ(*winner, 1u);
  EXPECT_EQ(finished_at, 5s);
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 2.0, 4.0));
  EXPECT_EQ(log.ends, 1);
}

TEST_F(PollCancellation, OrWithATimerThatLosesLeavesTheResult) {
  using namespace asio::experimental::awaitable_operators;
  scripted_job job({{"working"}, {"pass"}});
  std::optional<response> got;
  auto o = exact_options();
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        manual_clock::timer give_up(co_await asio::this_coro::executor);
        give_up.expires_after(60s);
        auto v = co_await (jobpoll::poll_until(job, seed_status{}, o) || give_up.async_wait(asio::use_awaitable));
        if (v.index() == 0) got = std::get<0>(v);
      },
      asio::detached);
  manual_clock::run(ctx);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, "pass");
}

TEST_F(PollCancellation, ManyPollsCancelledTogetherLeaveNothingBehind) {
  std::vector<std::optional<jobpoll::error_code>> results(200);
  std::vector<std::unique_ptr<asio::cancellation_signal>> signals;
  for (std::size_t i = 0; i < results.size(); ++i) {
    // Polls caught in every state: waiting, mid-poll, mid-poll under a timeout.
    scripted_job job({{"working", {}, std::chrono::seconds(i % 4)}});
    auto o = exact_options();
    if (i % 2) o.attempt_timeout = 3s;
    signals.push_back(std::make_unique<asio::cancellation_signal>());
    jobpoll::async_poll_until(ctx.get_executor(), job, seed_status{}, o,
                              asio::bind_cancellation_slot(signals.back()->slot(), [&results, i](jobpoll::error_code ec, auto) {
                                results[i] = ec;
                              }));
  }
  manual_clock::run_for(ctx, 7s);
  for (auto& s : signals) s->emit(asio::cancellation_type::terminal);
  manual_clock::run(ctx);
  for (auto& r : results) {
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, asio::error::operation_aborted);
  }
}

}  // namespace
