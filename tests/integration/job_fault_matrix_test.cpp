// The fault matrix: a job client on the libcurl transport against the real
// loopback job server, one fault per test, each with its exact outcome.
//
// Waits are real here, so they are kept short: intervals and backoff of a
// few milliseconds, and server hints bounded by `hints.ceiling`. What a test
// asserts about a hint is the hint as parsed (from `on_poll`), never how
// long anything took.

#include <chrono>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/retry_after.hpp>
#include <jobpoll/transport/curl.hpp>

#include "job_outcome.hpp"
#include "loopback_server.hpp"
#include "v1_job_api.hpp"

namespace {

using namespace std::chrono_literals;
using namespace jobpoll_test;
using testing::HasSubstr;
using json = nlohmann::json;
using status_type = jobpoll_test::v1_status;
using client_type = jobpoll::job_client<jobpoll::curl_transport, jobpoll::json_codec, status_type>;

class FaultMatrix : public ::testing::Test {
 protected:
  // Fast, exact strategies; hints are recorded as parsed but waited for at most 20 ms.
  jobpoll::poll_options fast() {
    jobpoll::poll_options o;
    o.interval = jobpoll::fixed_interval{1ms};
    o.backoff = jobpoll::fixed_interval{1ms};
    o.deadline = 30s;  // a guard only
    o.hints.ceiling = 20ms;
    hooks.on_poll = [this](const jobpoll::poll_event& e) { polls.push_back(e.status); };
    o.hooks = &hooks;
    return o;
  }

  job_outcome finish(asio::awaitable<job_result> op, asio::cancellation_slot slot = {}) {
    std::optional<job_outcome> out;
    asio::co_spawn(ctx, std::move(op), store_outcome(out, slot));
    ctx.run();
    ctx.restart();
    EXPECT_TRUE(out.has_value());
    return out ? std::move(*out) : job_outcome{};
  }

  job_outcome run_job(const json& body, jobpoll::poll_options o) {
    jobpoll::job_params params{{"body", body.dump()}};
    return finish(client.run(params, std::move(o)));
  }

  // Requests the server answered or cut, as "METHOD path" lines.
  std::vector<std::string> server_log() const {
    std::vector<std::string> lines;
    for (const auto& entry : server.log()) lines.push_back(entry["method"].get<std::string>() + " " + entry["path"].get<std::string>());
    return lines;
  }

  jobpoll::test::loopback_server server;
  asio::io_context ctx;
  jobpoll::curl_transport transport{ctx.get_executor()};
  client_type client{transport, v1_job_api(server), v1_job_status()};
  jobpoll::poll_hooks hooks;
  std::vector<jobpoll::poll_status> polls;
};

TEST_F(FaultMatrix, RateLimited429WithRetryAfterSecondsIsRetriedAfterTheHint) {
  server.script("GET", "/v1/jobs/job-1", json::array({{{"status", 429}, {"headers", {{"Retry-After", "7"}}}, {"body", "slow down"}}}));
  const auto outcome_r = run_job({{"steps", 0}, {"result", "done"}}, fast());
  const auto& r = success(outcome_r);
  EXPECT_EQ(r.value, "done");
  ASSERT_EQ(polls.size(), 2u);
  EXPECT_EQ(polls[0].state, jobpoll::job_state::transient_error);
  EXPECT_EQ(polls[0].error, jobpoll::errc::rate_limited);
  EXPECT_EQ(polls[0].retry_after, 7s);
  EXPECT_THAT(polls[0].detail, HasSubstr("HTTP 429, body: slow down"));
}

TEST_F(FaultMatrix, RateLimited429WithRetryAfterHttpDateIsRetriedAfterTheHint) {
  const auto in_two_minutes = std::chrono::system_clock::now() + 120s;
  const std::time_t t = std::chrono::system_clock::to_time_t(in_two_minutes);
  char date[64];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  server.script("GET", "/v1/jobs/job-1", json::array({{{"status", 429}, {"headers", {{"Retry-After", date}}}}}));
  const auto outcome_r = run_job({{"steps", 0}, {"result", 1}}, fast());
  const auto& r = success(outcome_r);
  EXPECT_EQ(r.value, 1);
  ASSERT_EQ(polls.size(), 2u);
  EXPECT_EQ(polls[0].error, jobpoll::errc::rate_limited);
  ASSERT_TRUE(polls[0].retry_after.has_value());
  // The date has whole seconds and a little time passed before it was read.
  EXPECT_GE(*polls[0].retry_after, 110s);
  EXPECT_LE(*polls[0].retry_after, 120s);
}

TEST_F(FaultMatrix, BurstOf503RecoversWithinTheRetryBudget) {
  const json unavailable = {{"status", 503}, {"body", "<html>maintenance</html>"}};
  server.script("GET", "/v1/jobs/job-1", json::array({unavailable, unavailable, unavailable}));
  const auto outcome_r = run_job({{"steps", 1}, {"result", "ok"}}, fast());
  const auto& r = success(outcome_r);
  EXPECT_EQ(r.value, "ok");
  EXPECT_EQ(r.stats.transient_failures, 3u);
  EXPECT_EQ(r.stats.attempts, 5u);  // three 503s, one running, one completed
  EXPECT_EQ(polls[0].error, jobpoll::errc::server_error);
}

TEST_F(FaultMatrix, Repeated500ExhaustsTheRetryBudgetAndCancelsTheJob) {
  const json broken = {{"status", 500}, {"body", "internal error"}};
  server.script("GET", "/v1/jobs/job-1", json::array({broken, broken, broken}));
  auto o = fast();
  o.max_retries = 2;
  const auto outcome_e = run_job({{"steps", 5}}, o);
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::retries_exhausted);
  EXPECT_THAT(e.what(), HasSubstr("HTTP 500, body: internal error"));
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::sent);
  EXPECT_EQ(server.jobs()["jobs"][0]["cancelled"], true);
}

TEST_F(FaultMatrix, ConnectionResetMidResponseIsTransient) {
  server.script("GET", "/v1/jobs/job-1", json::array({{{"action", "reset"}}}));
  const auto outcome_r = run_job({{"steps", 0}, {"result", "after reset"}}, fast());
  const auto& r = success(outcome_r);
  EXPECT_EQ(r.value, "after reset");
  ASSERT_EQ(polls.size(), 2u);
  EXPECT_EQ(polls[0].state, jobpoll::job_state::transient_error);
  EXPECT_EQ(polls[0].error, std::errc::connection_reset);
}

TEST_F(FaultMatrix, ResponseSlowerThanTheAttemptTimeoutIsAbandonedAndRetried) {
  server.script("GET", "/v1/jobs/job-1", json::array({{{"delay_ms", 10000}}}));
  auto o = fast();
  o.attempt_timeout = 300ms;
  const auto outcome_r = run_job({{"steps", 0}, {"result", "second try"}}, o);
  const auto& r = success(outcome_r);
  EXPECT_EQ(r.value, "second try");
  ASSERT_EQ(polls.size(), 2u);
  EXPECT_EQ(polls[0].state, jobpoll::job_state::transient_error);
  // The transport's own timeout and the poll's attempt timeout are both set
  // to 300 ms; whichever fires first, it is a timeout.
  EXPECT_EQ(polls[0].error, std::errc::timed_out);
}

TEST_F(FaultMatrix, MalformedJsonIsADecodeErrorWithTheStatusAndBodyStart) {
  server.script("GET", "/v1/jobs/job-1", json::array({{{"status", 200}, {"body", "{\"status\": \"runn"}}}));
  const auto outcome_e = run_job({{"steps", 3}}, fast());
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::decode_error);
  EXPECT_THAT(e.what(), HasSubstr("HTTP 200, body: {\"status\": \"runn"));
  ASSERT_TRUE(e.last_response().has_value());
  EXPECT_EQ(e.last_response()->body, "{\"status\": \"runn");
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::not_applicable);
}

TEST_F(FaultMatrix, UnknownStatusValueEndsThePollNamingIt) {
  server.script("GET", "/v1/jobs/job-1", json::array({{{"status", 200}, {"json", {{"status", "finished"}}}}}));
  const auto outcome_e = run_job({{"steps", 3}}, fast());
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::unknown_status);
  EXPECT_THAT(e.what(), HasSubstr("\"finished\""));
  EXPECT_EQ(e.stats().attempts, 1u);
}

TEST_F(FaultMatrix, ExpiredHandle404EndsThePoll) {
  jobpoll::job_handle gone{"job-99", {{"body", "{}"}}, {}, std::nullopt};
  const auto outcome_e = finish(client.wait(gone, fast()));
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::expired_handle);
  EXPECT_THAT(e.what(), HasSubstr(R"(HTTP 404, body: {"error": "unknown job job-99"})"));
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::not_applicable);
}

TEST_F(FaultMatrix, JobFailureSurfacesItsPayload) {
  const auto outcome_e = run_job({{"steps", 1}, {"outcome", "failed"}, {"error", "disk full"}}, fast());
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::job_failed);
  EXPECT_THAT(e.what(), HasSubstr("disk full"));
  ASSERT_TRUE(e.last_response().has_value());
  const json payload = json::parse(e.last_response()->body);
  EXPECT_EQ(payload["status"], "failed");
  EXPECT_EQ(payload["error"], "disk full");
  EXPECT_EQ(e.stats().attempts, 2u);
}

TEST_F(FaultMatrix, PagedResultIsCollectedAcrossEveryPage) {
  server.configure({{"working_polls", 1}, {"total", 47}, {"page_limit", 10}});
  jobpoll::job_description d;
  d.submit = {"POST", server.url("/transaction/load-job?startDate={start}&endDate={end}&site={site}")};
  d.handle = jobpoll::handle_source::body("/data/hash");
  d.poll = {"GET", "/transaction/get-job-data?hash={handle}"};
  d.result = jobpoll::result_source::paged({"GET", "/transaction/get-job-data?hash={handle}&offset={offset}&limit={limit}"},
                                           {.items = "/data/data", .total = "/data/total", .page_size = 20,
                                            .first_offset = 0, .first_page_in_poll_answer = true});
  jobpoll::job_client export_client(transport, d, status_type("/data/status", {{"pass"}, {"fail"}, {"working"}}));
  jobpoll::job_params params{{"start", "1591040159"}, {"end", "1591126559"}, {"site", "MAIN"}};
  const auto outcome_r = finish(export_client.run(params, fast()));
  const auto& r = success(outcome_r);
  ASSERT_EQ(r.value.size(), 47u);
  for (std::size_t i = 0; i < 47; ++i) EXPECT_EQ(r.value[i]["id"], "tx-" + std::to_string(i));
  EXPECT_EQ(r.pages, 2u);  // 10 items in the final poll answer, then 20 + 17
  const json log = server.log();
  ASSERT_EQ(log.size(), 5u);
  EXPECT_EQ(log[0]["query"], "startDate=1591040159&endDate=1591126559&site=MAIN");
  EXPECT_EQ(log[3]["query"], "hash=" + r.handle.id + "&offset=10&limit=20");
  EXPECT_EQ(log[4]["query"], "hash=" + r.handle.id + "&offset=30&limit=20");
}

TEST_F(FaultMatrix, CancellationWhileARequestIsInFlightEndsAtOnceAndCancelsRemotely) {
  server.script("GET", "/v1/jobs/job-1", json::array({{{"delay_ms", 10000}}}));
  asio::cancellation_signal stop;
  bool submitted = false;
  bool done = false;  // the watch stops with the job, however it ends
  // Emit the cancellation once the poll request is in flight: a condition
  // checked every millisecond, not a sleep.
  asio::steady_timer check(ctx);
  std::function<void()> watch = [&] {
    check.expires_after(1ms);
    check.async_wait([&](jobpoll::error_code) {
      if (done) return;
      if (submitted && transport.in_flight() == 1) return stop.emit(asio::cancellation_type::terminal);
      watch();
    });
  };
  watch();
  const auto o = fast();
  auto job = [&]() -> asio::awaitable<job_result> {
    jobpoll::job_params params{{"body", json{{"steps", 3}}.dump()}};
    try {
      jobpoll::job_handle handle = co_await client.submit(params, o);
      submitted = true;
      auto result = co_await client.wait(handle, o);
      done = true;
      co_return result;
    } catch (...) {
      done = true;
      throw;
    }
  };
  const auto outcome_e = finish(job(), stop.slot());
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), asio::error::operation_aborted);
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::sent);
  EXPECT_EQ(e.stats().attempts, 1u);
  EXPECT_EQ(transport.in_flight(), 0u);
  EXPECT_EQ(server.jobs()["jobs"][0]["cancelled"], true);
  EXPECT_THAT(server_log(), testing::Contains("DELETE /v1/jobs/job-1"));
}

TEST_F(FaultMatrix, DeadlinePassingIssuesTheRemoteCancel) {
  auto o = fast();
  o.deadline = 100ms;
  o.interval = jobpoll::fixed_interval{10ms};
  const auto outcome_e = run_job({{"steps", 1000000}}, o);
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::timeout);
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::sent);
  EXPECT_THAT(e.what(), HasSubstr("remote cancel sent (HTTP 200"));
  EXPECT_EQ(server.jobs()["jobs"][0]["cancelled"], true);
  EXPECT_EQ(server_log().back(), "DELETE /v1/jobs/job-1");
}

TEST_F(FaultMatrix, ASavedHandleResumesInANewClientWithoutASecondSubmit) {
  const auto d = v1_job_api(server, false);  // an interrupted poll leaves the job running
  client_type first(transport, d, v1_job_status());
  auto o = fast();
  o.deadline = 0s;  // one poll, then give up
  jobpoll::job_params params{{"body", json{{"steps", 4}, {"result", "resumed"}}.dump()}};
  const auto outcome_e = finish(first.run(params, o));
  const auto& e = failure(outcome_e);
  ASSERT_EQ(e.code(), jobpoll::errc::timeout);
  ASSERT_TRUE(e.handle().has_value());
  jobpoll::job_handle saved = *e.handle();
  EXPECT_EQ(saved.id, "job-1");
  EXPECT_EQ(saved.progress.attempts, 1u);

  // A new client, as another process would build it from a checkpoint.
  saved.remaining.reset();
  client_type second(transport, d, v1_job_status());
  const auto outcome_r = finish(second.wait(saved, fast()));
  const auto& r = success(outcome_r);
  EXPECT_EQ(r.value, "resumed");
  EXPECT_EQ(r.stats.attempts, 5u);
  const json jobs = server.jobs();
  EXPECT_EQ(jobs["v1_jobs"], 1);
  EXPECT_EQ(jobs["jobs"][0]["polls"], 5);
}

TEST_F(FaultMatrix, AnOversizedAnswerIsAnErrorNamingTheLimit) {
  jobpoll::curl_options small;
  small.max_response_bytes = 64;
  jobpoll::curl_transport tight(ctx.get_executor(), small);
  client_type c(tight, v1_job_api(server), v1_job_status());
  server.script("GET", "/v1/jobs/job-1", json::array({{{"status", 200}, {"body", std::string(1000, 'x')}}}));
  auto o = fast();
  o.max_retries = 0;
  const auto outcome_e = finish(c.run({{"body", json{{"steps", 0}}.dump()}}, o));
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), std::errc::message_size);
  EXPECT_THAT(e.what(), HasSubstr("the answer to GET " + server.url("/v1/jobs/job-1") +
                                  " is larger than the transport's size limits (body 64 bytes, headers 65536 bytes)"));
}

// Headers count too: past max_header_bytes the answer is refused at once, a
// permanent error (libcurl's own 300 KB limit would read as a reset, retried).
TEST_F(FaultMatrix, AnswerHeadersPastTheLimitAreAnErrorNotRetried) {
  jobpoll::curl_options small;
  small.max_header_bytes = 1024;
  jobpoll::curl_transport tight(ctx.get_executor(), small);
  client_type c(tight, v1_job_api(server), v1_job_status());
  json headers = json::object();
  for (int i = 0; i < 40; ++i) headers["X-Filler-" + std::to_string(i)] = std::string(40, 'h');
  server.script("GET", "/v1/jobs/job-1",
                json::array({{{"status", 200}, {"body", R"({"status":"completed"})"}, {"headers", headers}}}));
  const auto outcome_e = finish(c.run({{"body", json{{"steps", 0}}.dump()}}, fast()));
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), std::errc::message_size);
  EXPECT_THAT(e.what(), HasSubstr("headers 1024 bytes"));
  EXPECT_EQ(e.stats().attempts, 1u);
  int polls = 0;  // as the server counts them
  for (const auto& entry : server.log()) polls += entry["method"] == "GET" && entry["path"] == "/v1/jobs/job-1";
  EXPECT_EQ(polls, 1);
}

// With no deadline the queue wait of a request is bounded by its timeout: a
// submit stuck behind a slow request times out in the transport's queue,
// never having left, and is retried until it gets through; it arrives once.
TEST_F(FaultMatrix, ASubmitThatTimedOutInTheTransportQueueIsRetriedAndArrivesOnce) {
  jobpoll::curl_options one;
  one.max_active_transfers = 1;
  jobpoll::curl_transport narrow(ctx.get_executor(), one);
  client_type c(narrow, v1_job_api(server), v1_job_status());
  server.script("GET", "/slow", json::array({{{"delay_ms", 1500}, {"status", 200}}}));
  std::optional<jobpoll::error_code> slow;
  jobpoll::http_request occupy;
  occupy.url = server.url("/slow");
  narrow.async_request(occupy, [&](jobpoll::error_code ec, jobpoll::http_response) { slow = ec; });
  auto o = fast();
  o.deadline = jobpoll::deadline::none();
  o.attempt_timeout = 200ms;
  o.backoff = jobpoll::fixed_interval{10ms};
  o.max_retries = 50;
  const auto outcome_r = finish(c.run({{"body", json{{"steps", 0}, {"result", "ok"}}.dump()}}, o));
  EXPECT_EQ(success(outcome_r).value, "ok");
  EXPECT_EQ(slow, jobpoll::error_code{});
  const auto log = server_log();
  EXPECT_EQ(std::count(log.begin(), log.end(), "POST /v1/jobs"), 1);
}

}  // namespace
