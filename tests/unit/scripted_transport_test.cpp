// The scripted transport on the manual clock: replies in order, route
// matching, failures, delays and timeouts to the nanosecond, cancellation,
// the request record, completion tokens, threads, destruction, and
// poll_until polling through it.

#include <jobpoll/transport/scripted.hpp>

#include <future>
#include <latch>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <jobpoll/poll_until.hpp>
#include <jobpoll/testing/manual_clock.hpp>

#include "policy_helpers.hpp"
#include "poll_fixture.hpp"
#include "transport_exchange.hpp"

using namespace std::chrono_literals;
using jobpoll::http_request;
using jobpoll::http_response;
using jobpoll::testing::manual_clock;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAreArray;

namespace {

using jobpoll_test::invalid_argument_message;
using jobpoll_test::request_for;
using jobpoll_test::with_timeout;
using outcome = jobpoll_test::timed_outcome;
using transport_type = jobpoll::basic_scripted_transport<manual_clock>;

static_assert(jobpoll::transport<transport_type>);

constexpr const char* job_url = "http://api.test/jobs/7";

http_request get(std::string url = job_url) { return request_for("GET", std::move(url)); }

class ScriptedTransport : public jobpoll_test::transport_exchange<transport_type> {
 protected:
  std::size_t requests_left() const override { return transport.pending(); }
};

// ---- Replies and routes ----

TEST_F(ScriptedTransport, RepliesInOrderThenReportsTheUnmatchedRequest) {
  auto& route = transport.on("GET", job_url);
  route.reply(http_response{503, {{"Retry-After", "3"}}, "busy"}).reply(503, "still busy").reply(200, "done",
                                                                                                   {{"ETag", "v2"}});
  EXPECT_EQ(route.remaining(), 3u);

  const outcome first = exchange(get());
  EXPECT_FALSE(first.ec);
  EXPECT_EQ(first.response.status, 503);
  EXPECT_EQ(first.response.body, "busy");
  EXPECT_EQ(first.response.headers.find("retry-after"), "3");

  const outcome second = exchange(get());
  EXPECT_FALSE(second.ec);
  EXPECT_EQ(second.response.status, 503);
  EXPECT_EQ(second.response.body, "still busy");
  EXPECT_TRUE(second.response.headers.empty());

  const outcome third = exchange(get());
  EXPECT_FALSE(third.ec);
  EXPECT_EQ(third.response.status, 200);
  EXPECT_EQ(third.response.body, "done");
  EXPECT_EQ(third.response.headers.find("ETag"), "v2");
  EXPECT_EQ(route.remaining(), 0u);

  const outcome fourth = exchange(get());
  EXPECT_EQ(fourth.ec, std::make_error_code(std::errc::function_not_supported));
  EXPECT_EQ(fourth.response.status, 0);
  EXPECT_EQ(fourth.response.body, "");
  EXPECT_EQ(fourth.at, 0ns);
  EXPECT_THAT(transport.unmatched(), ElementsAre("GET http://api.test/jobs/7"));
  EXPECT_EQ(transport.count("GET", job_url), 4u);
}

TEST_F(ScriptedTransport, RepeatKeepsTheLastReplyForEveryFurtherRequest) {
  auto& route = transport.on("GET", job_url);
  route.reply(503, "busy").reply(202, "working").repeat();
  std::vector<int> statuses;
  for (int i = 0; i < 5; ++i) statuses.push_back(exchange(get()).response.status);
  EXPECT_THAT(statuses, ElementsAre(503, 202, 202, 202, 202));
  EXPECT_EQ(route.remaining(), 1u);
  EXPECT_TRUE(transport.unmatched().empty());
}

TEST_F(ScriptedTransport, AReplyQueuedBehindAKeptReplyThatAnsweredTakesOver) {
  auto& route = transport.on("GET", job_url);
  route.reply(202, "working").repeat();
  EXPECT_EQ(exchange(get()).response.body, "working");
  EXPECT_EQ(exchange(get()).response.body, "working");
  route.reply(200, "done");
  EXPECT_EQ(route.remaining(), 1u);
  EXPECT_EQ(exchange(get()).response.body, "done");
  EXPECT_EQ(exchange(get()).response.body, "done") << "the new last reply is kept in turn";
}

TEST_F(ScriptedTransport, AKeptReplyThatNeverAnsweredIsServedOnceBeforeTheNextOne) {
  auto& route = transport.on("GET", job_url);
  route.reply(202, "working").repeat().reply(200, "done");
  EXPECT_EQ(route.remaining(), 2u);
  EXPECT_EQ(exchange(get()).response.body, "working");
  EXPECT_EQ(exchange(get()).response.body, "done");
  EXPECT_EQ(exchange(get()).response.body, "done");
}

TEST_F(ScriptedTransport, RoutesMatchInOrderAndTheFirstWithAReplyWins) {
  transport.on("GET", "http://api.test/jobs/7").reply(200, "seven");
  transport.on("GET", "http://api.test/jobs/*").reply(404, "no such job").repeat();
  transport.on("GET", "http://api.test/jobs/9").reply(200, "nine");

  EXPECT_EQ(exchange(get("http://api.test/jobs/7")).response.body, "seven");
  EXPECT_EQ(exchange(get("http://api.test/jobs/7")).response.body, "no such job") << "the first route is used up";
  EXPECT_EQ(exchange(get("http://api.test/jobs/8")).response.body, "no such job");
  EXPECT_EQ(exchange(get("http://api.test/jobs/9")).response.body, "no such job")
      << "an earlier route with a reply wins over a later, more precise one";
  EXPECT_EQ(transport.count("GET", "http://api.test/jobs/*"), 4u);
  EXPECT_EQ(transport.count("GET", "http://api.test/jobs/7"), 2u);
}

TEST_F(ScriptedTransport, ARouteAddedLaterServesRequestsTheEarlierOnesNoLongerAnswer) {
  transport.on("POST", "http://api.test/jobs").reply(201, "created 1");
  EXPECT_EQ(exchange(request_for("POST", "http://api.test/jobs")).response.body, "created 1");
  EXPECT_EQ(exchange(request_for("POST", "http://api.test/jobs")).ec, std::errc::function_not_supported);
  transport.on("POST", "http://api.test/jobs").reply(201, "created 2");
  EXPECT_EQ(exchange(request_for("POST", "http://api.test/jobs")).response.body, "created 2");
  EXPECT_THAT(transport.unmatched(), ElementsAre("POST http://api.test/jobs"));
}

TEST_F(ScriptedTransport, MethodIsExactAndTheQueryStringIsPartOfTheUrl) {
  transport.on("GET", "http://api.test/jobs/7").reply(200, "exact").repeat();
  transport.on("GET", "http://api.test/jobs/7?*").reply(200, "with query").repeat();

  EXPECT_EQ(exchange(get("http://api.test/jobs/7?verbose=1")).response.body, "with query");
  EXPECT_EQ(exchange(get("http://api.test/jobs/7")).response.body, "exact");
  EXPECT_EQ(exchange(get("http://api.test/jobs/70")).ec, std::errc::function_not_supported);
  EXPECT_EQ(exchange(request_for("POST", "http://api.test/jobs/7")).ec, std::errc::function_not_supported);
  EXPECT_EQ(exchange(request_for("get", "http://api.test/jobs/7")).ec, std::errc::function_not_supported);

  EXPECT_THAT(transport.unmatched(),
              ElementsAre("GET http://api.test/jobs/70", "POST http://api.test/jobs/7", "get http://api.test/jobs/7"));
  EXPECT_EQ(transport.count("GET", "http://api.test/jobs/7*"), 3u);
  EXPECT_EQ(transport.count("GET", "http://api.test/jobs/7"), 1u);
  EXPECT_EQ(transport.count("POST", "*"), 1u);
  EXPECT_EQ(transport.count("DELETE", "*"), 0u);
}

TEST_F(ScriptedTransport, FailDeliversItsErrorAndAnEmptyResponse) {
  transport.on("GET", job_url).fail(asio::error::connection_reset).reply(200, "done");
  const outcome failed = exchange(get());
  EXPECT_EQ(failed.ec, asio::error::connection_reset);
  EXPECT_TRUE(jobpoll::is_transient_error(failed.ec));
  EXPECT_EQ(failed.response.status, 0);
  EXPECT_EQ(failed.response.body, "");
  EXPECT_EQ(exchange(get()).response.body, "done");
}

// ---- Time: delays and timeouts on the manual clock ----

TEST_F(ScriptedTransport, DelayIsExactOnTheClock) {
  transport.on("GET", job_url).after(1500ms).reply(200, "late");
  std::optional<outcome> out;
  send(get(), out);
  poll();
  EXPECT_FALSE(out);
  manual_clock::run_for(ctx, 1500ms - 1ns);
  EXPECT_FALSE(out) << "completed before its delay";
  EXPECT_EQ(transport.pending(), 1u);
  EXPECT_EQ(manual_clock::pending_waits(), 1u);
  manual_clock::run_for(ctx, 1ns);
  ASSERT_TRUE(out);
  EXPECT_FALSE(out->ec);
  EXPECT_EQ(out->response.body, "late");
  EXPECT_EQ(out->at, 1500ms);
}

TEST_F(ScriptedTransport, AfterDelaysOnlyTheNextReply) {
  transport.on("GET", job_url).after(1s).reply(200, "slow").reply(200, "fast").after(250ms).fail(
      asio::error::connection_refused);
  std::optional<outcome> slow, fast, refused;
  send(get(), slow);
  send(get(), fast);
  send(get(), refused);
  run();
  ASSERT_TRUE(slow && fast && refused);
  EXPECT_EQ(slow->response.body, "slow");
  EXPECT_EQ(slow->at, 1s);
  EXPECT_EQ(fast->response.body, "fast");
  EXPECT_EQ(fast->at, 0s);
  EXPECT_EQ(refused->ec, asio::error::connection_refused);
  EXPECT_EQ(refused->at, 250ms);
}

TEST_F(ScriptedTransport, TimeoutShorterThanTheDelayTimesOutAtTheTimeout) {
  auto& route = transport.on("GET", job_url);
  route.after(10s).reply(200, "too late").reply(200, "next");
  std::optional<outcome> out;
  send(with_timeout(get(), 2s), out);
  manual_clock::run_for(ctx, 2s - 1ns);
  EXPECT_FALSE(out);
  manual_clock::run_for(ctx, 1ns);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->ec, asio::error::timed_out);
  EXPECT_TRUE(jobpoll::error_is(out->ec, std::errc::timed_out));
  EXPECT_EQ(out->response.status, 0);
  EXPECT_EQ(out->at, 2s);
  EXPECT_EQ(manual_clock::pending_waits(), 0u) << "the 10 s reply must not stay armed";
  EXPECT_EQ(route.remaining(), 1u) << "the timed-out reply was consumed";

  const auto requests = transport.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].url, job_url);
  EXPECT_EQ(requests[0].timeout, 2s);
  EXPECT_EQ(exchange(get()).response.body, "next");
}

TEST_F(ScriptedTransport, TimeoutOnAHangTimesOutAtTheTimeout) {
  transport.on("GET", job_url).hang();
  const outcome out = exchange(with_timeout(get(), 3s));
  EXPECT_EQ(out.ec, asio::error::timed_out);
  EXPECT_EQ(out.at, 3s);
}

TEST_F(ScriptedTransport, TheShorterOfTimeoutAndDeadlineEndsAHang) {
  transport.on("GET", job_url).hang().hang();
  auto request = with_timeout(get(), 5s);
  request.deadline = 2s;
  const outcome cut_by_deadline = exchange(request);
  EXPECT_EQ(cut_by_deadline.ec, asio::error::timed_out);
  EXPECT_EQ(cut_by_deadline.at, 2s);
  request.deadline = 9s;
  const outcome cut_by_timeout = exchange(request);
  EXPECT_EQ(cut_by_timeout.ec, asio::error::timed_out);
  EXPECT_EQ(cut_by_timeout.at, 7s);
}

TEST_F(ScriptedTransport, TimeoutEqualToTheDelayLetsTheReplyThrough) {
  transport.on("GET", job_url).after(2s).reply(200, "just in time");
  const outcome out = exchange(with_timeout(get(), 2s));
  EXPECT_FALSE(out.ec);
  EXPECT_EQ(out.response.body, "just in time");
  EXPECT_EQ(out.at, 2s);
}

TEST_F(ScriptedTransport, TimeoutLongerThanTheDelayLeavesNoTimerBehind) {
  transport.on("GET", job_url).after(1s).reply(200, "on time");
  const outcome out = exchange(with_timeout(get(), 30s));
  EXPECT_FALSE(out.ec);
  EXPECT_EQ(out.at, 1s);
  EXPECT_EQ(manual_clock::pending_waits(), 0u);
}

TEST_F(ScriptedTransport, ZeroTimeoutTimesOutADelayedReplyAtOnceButNotAnImmediateOne) {
  transport.on("GET", job_url).after(1ns).reply(200, "delayed").reply(200, "immediate");
  const outcome delayed = exchange(with_timeout(get(), 0s));
  EXPECT_EQ(delayed.ec, asio::error::timed_out);
  EXPECT_EQ(delayed.at, 0s);
  const outcome immediate = exchange(with_timeout(get(), 0s));
  EXPECT_FALSE(immediate.ec);
  EXPECT_EQ(immediate.response.body, "immediate");
}

// ---- Cancellation ----

TEST_F(ScriptedTransport, HangCompletesOnlyWhenCancelled) {
  transport.on("GET", job_url).hang();
  std::optional<outcome> out;
  transport.async_request(get(), record_cancellable(out));
  run();
  manual_clock::advance(24h);
  poll();
  EXPECT_FALSE(out);
  EXPECT_EQ(transport.pending(), 1u);
  EXPECT_EQ(manual_clock::pending_waits(), 0u) << "a hang without a timeout arms no timer";

  signal.emit(asio::cancellation_type::terminal);
  EXPECT_FALSE(out) << "the cancellation must post the completion, not run it";
  poll();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->ec, asio::error::operation_aborted);
  EXPECT_EQ(out->at, 24h);
  EXPECT_EQ(manual_clock::pending_waits(), 0u);
}

class ScriptedTransportCancellation : public ScriptedTransport,
                                      public ::testing::WithParamInterface<asio::cancellation_type> {};

TEST_P(ScriptedTransportCancellation, ADelayedReplyIsAbandonedAtOnceAndItsTimerCancelled) {
  transport.on("GET", job_url).after(5s).reply(200, "late").reply(200, "next");
  std::optional<outcome> out;
  transport.async_request(get(), record_cancellable(out));
  manual_clock::run_for(ctx, 1s);
  EXPECT_EQ(manual_clock::pending_waits(), 1u);
  signal.emit(GetParam());
  EXPECT_EQ(manual_clock::pending_waits(), 0u);
  poll();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->ec, asio::error::operation_aborted);
  EXPECT_EQ(out->response.status, 0);
  EXPECT_EQ(out->at, 1s);
  run();  // the abandoned reply never arrives (record() fails on a second completion)
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 1s);
  EXPECT_EQ(exchange(get()).response.body, "next") << "the abandoned reply was consumed";
}

TEST_P(ScriptedTransportCancellation, AHangWithATimeoutIsAbandonedAtOnce) {
  transport.on("GET", job_url).hang();
  std::optional<outcome> out;
  transport.async_request(with_timeout(get(), 10s), record_cancellable(out));
  poll();
  EXPECT_EQ(manual_clock::pending_waits(), 1u);
  signal.emit(GetParam());
  poll();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->ec, asio::error::operation_aborted);
  EXPECT_EQ(out->at, 0s);
  EXPECT_EQ(manual_clock::pending_waits(), 0u);
}

INSTANTIATE_TEST_SUITE_P(EveryType, ScriptedTransportCancellation, jobpoll_test::every_cancellation_type(),
                         jobpoll_test::cancellation_type_name);

TEST_F(ScriptedTransport, ACancellationAfterTheReplyChangesNothing) {
  transport.on("GET", job_url).after(1s).reply(200, "done");
  std::optional<outcome> out;
  transport.async_request(get(), record_cancellable(out));
  run();
  ASSERT_TRUE(out);
  signal.emit(asio::cancellation_type::terminal);
  poll();
  EXPECT_FALSE(out->ec);
  EXPECT_EQ(out->response.body, "done");
}

TEST_F(ScriptedTransport, RacedAgainstATimerWithOrTheTimerWinsAndTheRequestIsAbandoned) {
  using namespace asio::experimental::awaitable_operators;
  transport.on("GET", job_url).hang();
  std::optional<std::size_t> winner;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        manual_clock::timer timer(co_await asio::this_coro::executor);
        timer.expires_after(750ms);
        auto result = co_await (transport.async_request(get(), asio::use_awaitable) || timer.async_wait(asio::use_awaitable));
        winner = result.index();
      },
      asio::detached);
  run();
  ASSERT_TRUE(winner);
  EXPECT_EQ(*winner, 1u);
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 750ms);
  EXPECT_EQ(transport.count("GET", job_url), 1u);
}

// ---- Completion ----

TEST_F(ScriptedTransport, NeverCompletesInsideAsyncRequest) {
  transport.on("GET", job_url).reply(200, "done").fail(asio::error::connection_reset).after(0s).reply(200, "zero delay");
  // A reply, a failure, a zero delay and an unmatched request all complete later.
  for (int i = 0; i < 4; ++i) {
    bool returned = false;
    std::optional<bool> returned_when_called;
    transport.async_request(get(), [&](jobpoll::error_code, http_response) { returned_when_called = returned; });
    returned = true;
    poll();
    ASSERT_TRUE(returned_when_called) << "request " << i;
    EXPECT_TRUE(*returned_when_called) << "request " << i << " completed inside async_request";
  }
  EXPECT_EQ(transport.unmatched().size(), 1u);
}

TEST_F(ScriptedTransport, PendingCountsRequestsUntilTheirHandlerRuns) {
  transport.on("GET", job_url).reply(200, "now").after(1s).reply(200, "later");
  std::optional<outcome> now, later;
  send(get(), now);
  send(get(), later);
  EXPECT_EQ(transport.pending(), 2u) << "a posted completion is still pending";
  poll();
  EXPECT_TRUE(now);
  EXPECT_EQ(transport.pending(), 1u);
  run();
  EXPECT_TRUE(later);
  EXPECT_EQ(transport.pending(), 0u);
}

TEST_F(ScriptedTransport, RequestsRecordsMethodUrlHeadersBodyAndTimeoutInOrder) {
  transport.on("POST", "http://api.test/jobs").reply(201, "{\"id\":7}");
  transport.on("GET", "http://api.test/jobs/*").reply(200, "{\"state\":\"done\"}");

  http_request submit = request_for("POST", "http://api.test/jobs");
  submit.headers.add("Content-Type", "application/json");
  submit.headers.add("X-Trace", "a");
  submit.headers.add("X-Trace", "b");
  submit.body = "{\"report\":\"sales\"}";
  submit.timeout = 5s;
  exchange(submit);
  exchange(get("http://api.test/jobs/7?fields=state"));
  exchange(request_for("DELETE", "http://api.test/jobs/7"));

  const auto requests = transport.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].url, "http://api.test/jobs");
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& h : requests[0].headers) headers.emplace_back(h.name, h.value);
  EXPECT_THAT(headers, ElementsAre(std::pair<std::string, std::string>{"Content-Type", "application/json"},
                                   std::pair<std::string, std::string>{"X-Trace", "a"},
                                   std::pair<std::string, std::string>{"X-Trace", "b"}));
  EXPECT_EQ(requests[0].body, "{\"report\":\"sales\"}");
  EXPECT_EQ(requests[0].timeout, 5s);
  EXPECT_EQ(requests[1].method, "GET");
  EXPECT_EQ(requests[1].url, "http://api.test/jobs/7?fields=state");
  EXPECT_TRUE(requests[1].headers.empty());
  EXPECT_EQ(requests[1].body, "");
  EXPECT_EQ(requests[1].timeout, std::nullopt);
  EXPECT_EQ(requests[2].method, "DELETE");
  EXPECT_THAT(transport.unmatched(), ElementsAre("DELETE http://api.test/jobs/7"));
}

TEST_F(ScriptedTransport, UseAwaitableReturnsTheResponseOrThrowsTheError) {
  transport.on("GET", job_url).after(1s).reply(200, "done").fail(asio::error::connection_aborted);
  std::optional<http_response> response;
  std::optional<jobpoll::error_code> thrown;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        response = co_await transport.async_request(get(), asio::use_awaitable);
        try {
          co_await transport.async_request(get(), asio::use_awaitable);
        } catch (const jobpoll::system_error& e) {
          thrown = e.code();
        }
      },
      asio::detached);
  run();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "done");
  EXPECT_EQ(thrown, asio::error::connection_aborted);
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 1s);
}

TEST_F(ScriptedTransport, UseFutureReturnsTheResponseOrThrowsTheError) {
  transport.on("GET", job_url).after(1s).reply(204, "");
  auto ok = transport.async_request(get(), asio::use_future);
  auto unmatched = transport.async_request(get("http://api.test/other"), asio::use_future);
  run();
  // use_future's handlers run on Asio's system executor, another thread: the
  // waits below are guards against a hang, not timing assertions.
  ASSERT_EQ(ok.wait_for(60s), std::future_status::ready);
  EXPECT_EQ(ok.get().status, 204);
  ASSERT_EQ(unmatched.wait_for(60s), std::future_status::ready);
  try {
    unmatched.get();
    ADD_FAILURE() << "expected an exception";
  } catch (const jobpoll::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::function_not_supported);
  }
  EXPECT_THAT(transport.unmatched(), ElementsAre("GET http://api.test/other"));
}

// ---- Threads and destruction ----

TEST_F(ScriptedTransport, TwoThreadsIssuingRequestsGetEveryReplyExactlyOnce) {
  constexpr int per_thread = 500;
  auto& now_route = transport.on("GET", "http://api.test/now");
  auto& later_route = transport.on("GET", "http://api.test/later");
  std::vector<std::string> expected;
  for (int i = 0; i < per_thread; ++i) {
    now_route.reply(200, "now " + std::to_string(i));
    later_route.after(1ms).reply(200, "later " + std::to_string(i));
    expected.push_back("now " + std::to_string(i));
    expected.push_back("later " + std::to_string(i));
  }

  std::mutex mutex;
  std::vector<std::string> bodies;
  int errors = 0;
  auto record_body = [&](jobpoll::error_code ec, http_response r) {
    std::lock_guard lock(mutex);
    if (ec) ++errors;
    bodies.push_back(std::move(r.body));
  };

  // The context runs on two threads while two other threads issue requests.
  auto work = asio::make_work_guard(ctx);
  std::thread runner_a([&] { ctx.run(); });
  std::thread runner_b([&] { ctx.run(); });
  std::latch go(2);
  auto issue = [&](const char* url) {
    go.arrive_and_wait();
    for (int i = 0; i < per_thread; ++i) transport.async_request(get(url), record_body);
  };
  std::thread issuer_a(issue, "http://api.test/now");
  std::thread issuer_b(issue, "http://api.test/later");
  issuer_a.join();
  issuer_b.join();
  // Every delayed reply is armed for 1 ms; this fires them all, and the two
  // runners complete them. The runners return once no request is left.
  manual_clock::advance(1ms);
  work.reset();
  runner_a.join();
  runner_b.join();

  EXPECT_EQ(errors, 0);
  EXPECT_THAT(bodies, UnorderedElementsAreArray(expected));
  EXPECT_EQ(transport.requests().size(), 2u * per_thread);
  EXPECT_EQ(transport.count("GET", "http://api.test/now"), std::size_t{per_thread});
  EXPECT_EQ(now_route.remaining(), 0u);
  EXPECT_EQ(later_route.remaining(), 0u);
  EXPECT_TRUE(transport.unmatched().empty());
}

TEST_F(ScriptedTransport, DestructionCompletesRequestsInFlightWithOperationAborted) {
  std::optional<outcome> hanging, delayed, answered;
  {
    transport_type local(ctx.get_executor());
    local.on("GET", job_url).hang().after(1s).reply(200, "late").reply(200, "now");
    local.async_request(get(), record_cancellable(hanging));
    local.async_request(get(), record(delayed));
    local.async_request(get(), record(answered));
    EXPECT_EQ(local.pending(), 3u);
    EXPECT_EQ(manual_clock::pending_waits(), 1u);
  }
  EXPECT_EQ(manual_clock::pending_waits(), 0u) << "destruction cancels the timers";
  signal.emit(asio::cancellation_type::terminal);  // finds the transport gone: does nothing
  EXPECT_FALSE(hanging);
  run();
  ASSERT_TRUE(hanging && delayed && answered);
  EXPECT_EQ(hanging->ec, asio::error::operation_aborted);
  EXPECT_EQ(delayed->ec, asio::error::operation_aborted);
  EXPECT_EQ(delayed->at, 0s);
  EXPECT_FALSE(answered->ec) << "a reply already on its way is delivered";
  EXPECT_EQ(answered->response.body, "now");
}

// ---- Bad scripts ----

TEST_F(ScriptedTransport, BadScriptsAreRejectedWithWhatWasWrong) {
  EXPECT_EQ(invalid_argument_message([&] { transport.on("", "http://api.test/x"); }),
            "jobpoll::scripted_transport: on() needs a method, got an empty one for \"http://api.test/x\"");
  EXPECT_EQ(invalid_argument_message([&] { transport.on("GET", "http://api.test/*/status"); }),
            "jobpoll::scripted_transport: on() allows '*' only at the end of a URL pattern, got "
            "\"http://api.test/*/status\"");

  auto& route = transport.on("GET", "http://api.test/x");
  const std::string prefix = "jobpoll::scripted_route GET http://api.test/x: ";
  EXPECT_EQ(invalid_argument_message([&] { route.after(-1s); }), prefix + "after() needs a delay >= 0, got -1000000000ns");
  EXPECT_EQ(invalid_argument_message([&] { route.reply(42, "x"); }),
            prefix + "reply() needs an HTTP status from 100 to 599, got 42");
  EXPECT_EQ(invalid_argument_message([&] { route.fail({}); }), prefix + "fail() needs an error code, got no error");
  EXPECT_EQ(invalid_argument_message([&] { route.repeat(); }),
            prefix + "repeat() keeps the last reply, but none is queued, got an empty route");
  route.after(1s);
  EXPECT_EQ(invalid_argument_message([&] { route.after(2s); }),
            prefix + "after() was already called for the next reply (1000000000ns), got 2000000000ns");
  EXPECT_EQ(invalid_argument_message([&] { route.hang(); }),
            prefix + "hang() cannot be delayed: after() was called before it, got 1000000000ns");
  EXPECT_EQ(route.remaining(), 0u) << "a rejected call queues nothing";
  route.reply(200, "kept the delay");
  const outcome out = exchange(get("http://api.test/x"));
  EXPECT_EQ(out.response.body, "kept the delay");
  EXPECT_EQ(out.at, 1s);
}

// ---- poll_until over the scripted transport ----

class ScriptedTransportPoll : public jobpoll_test::poll_fixture {
 protected:
  /// 200 with body "done" succeeded, other 200s pending, 503 transient,
  /// anything else permanent.
  struct http_status {
    jobpoll::poll_status operator()(const http_response& r) const {
      using jobpoll::poll_status;
      if (r.status == 200) return r.body == "done" ? poll_status::succeeded() : poll_status::pending();
      if (r.status == 503) return poll_status::transient(jobpoll::errc::server_error, jobpoll::describe(r));
      return poll_status::permanent(jobpoll::errc::http_error, jobpoll::describe(r));
    }
  };

  /// Polls `GET job_url` (with `request_timeout`, if any) through
  /// `transport` until `http_status` says done, with no backoff and
  /// `attempt_timeout`, if any.
  std::optional<jobpoll::poll_result<http_response>> poll_job(
      transport_type& transport, std::optional<std::chrono::nanoseconds> attempt_timeout = {},
      std::optional<std::chrono::nanoseconds> request_timeout = {}) {
    auto o = exact_options();
    o.backoff = jobpoll::fixed_interval{0s};
    o.attempt_timeout = attempt_timeout;
    std::optional<jobpoll::poll_result<http_response>> out;
    jobpoll::async_poll_until(
        ctx.get_executor(),
        [&transport, request_timeout] {
          http_request r = get();
          r.timeout = request_timeout;
          return transport.async_request(std::move(r), asio::use_awaitable);
        },
        http_status{}, o, [&](jobpoll::error_code, jobpoll::poll_result<http_response> r) { out = std::move(r); });
    manual_clock::run(ctx);
    return out;
  }
};

TEST_F(ScriptedTransportPoll, RetriesThroughTwo503sToSuccess) {
  transport_type transport(ctx.get_executor());
  transport.on("GET", job_url).reply(503, "busy").reply(503, "busy").reply(200, "done");
  const auto r = poll_job(transport);
  ASSERT_TRUE(r);
  ASSERT_FALSE(r->error) << r->message;
  EXPECT_EQ(r->response->body, "done");
  EXPECT_EQ(r->stats.attempts, 3u);
  EXPECT_EQ(r->stats.transient_failures, 2u);
  EXPECT_EQ(r->stats.elapsed, 0s);
  EXPECT_EQ(transport.count("GET", job_url), 3u);
  ASSERT_EQ(log.polls.size(), 3u);
  EXPECT_EQ(log.polls[0].second.state, jobpoll::job_state::transient_error);
  EXPECT_EQ(log.polls[0].second.error, jobpoll::errc::server_error);
  EXPECT_EQ(log.polls[1].second.state, jobpoll::job_state::transient_error);
  EXPECT_EQ(log.polls[2].second.state, jobpoll::job_state::succeeded);
}

TEST_F(ScriptedTransportPoll, AnAttemptTimeoutCancelsAHangingRequestAndTheNextPollSucceeds) {
  transport_type transport(ctx.get_executor());
  transport.on("GET", job_url).reply(503, "busy").hang().reply(200, "done");
  const auto r = poll_job(transport, 1500ms);
  ASSERT_TRUE(r);
  ASSERT_FALSE(r->error) << r->message;
  EXPECT_EQ(r->response->body, "done");
  EXPECT_EQ(r->stats.attempts, 3u);
  EXPECT_EQ(r->stats.transient_failures, 2u);
  EXPECT_EQ(r->stats.elapsed, 1500ms) << "the hanging attempt took its whole attempt timeout";
  EXPECT_EQ(transport.pending(), 0u) << "the hanging request was cancelled, not left behind";
  ASSERT_EQ(log.polls.size(), 3u);
  EXPECT_EQ(log.polls[0].second.error, jobpoll::errc::server_error);
  EXPECT_EQ(log.polls[1].second.error, jobpoll::errc::attempt_timeout);
  EXPECT_EQ(log.polls[2].second.state, jobpoll::job_state::succeeded);
}

TEST_F(ScriptedTransportPoll, ResetAndRequestTimeoutAreTransientFailures) {
  transport_type transport(ctx.get_executor());
  transport.on("GET", job_url).fail(asio::error::connection_reset).hang().reply(200, "done");
  const auto r = poll_job(transport, std::nullopt, 1500ms);
  ASSERT_TRUE(r);
  ASSERT_FALSE(r->error) << r->message;
  EXPECT_EQ(r->response->body, "done");
  EXPECT_EQ(r->stats.attempts, 3u);
  EXPECT_EQ(r->stats.transient_failures, 2u);
  EXPECT_EQ(r->stats.elapsed, 1500ms) << "the hanging request took its whole timeout";
  ASSERT_EQ(log.polls.size(), 3u);
  EXPECT_EQ(log.polls[0].second.state, jobpoll::job_state::transient_error);
  EXPECT_EQ(log.polls[0].second.error, jobpoll::detail::asio_error(asio::error::connection_reset));
  EXPECT_EQ(log.polls[1].second.state, jobpoll::job_state::transient_error);
  EXPECT_EQ(log.polls[1].second.error, jobpoll::detail::asio_error(asio::error::timed_out));
  EXPECT_EQ(log.polls[2].second.state, jobpoll::job_state::succeeded);
}

}  // namespace
