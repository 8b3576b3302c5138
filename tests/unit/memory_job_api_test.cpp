// The in-memory job API on the manual clock: every route and answer, bad
// bodies, fail_next, latency and timeouts to the nanosecond, cancellation,
// the records, and job_client running jobs through it end to end.

#include "memory_job_api.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/testing/manual_clock.hpp>

#include "job_outcome.hpp"
#include "policy_helpers.hpp"
#include "transport_exchange.hpp"

namespace {

using namespace std::chrono_literals;
using jobpoll::http_request;
using jobpoll::http_response;
using jobpoll::testing::manual_clock;
using jobpoll_test::invalid_argument_message;
using jobpoll_test::memory_job_api;
using jobpoll_test::request_for;
using jobpoll_test::with_timeout;
using outcome = jobpoll_test::timed_outcome;
using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

static_assert(jobpoll::transport<memory_job_api>);
static_assert(jobpoll::transport<jobpoll_test::steady_memory_job_api>);

constexpr const char* jobs_url = "http://jobs.test/jobs";

http_request post(std::string body) { return request_for("POST", jobs_url, std::move(body)); }
http_request get(const std::string& id) { return request_for("GET", std::string(jobs_url) + "/" + id); }
http_request del(const std::string& id) { return request_for("DELETE", std::string(jobs_url) + "/" + id); }

/// The "error" member of an answer's body ("" if there is none).
std::string error_of(const outcome& o) {
  const json body = json::parse(o.response.body, nullptr, false);
  return body.is_object() && body.contains("error") ? body["error"].get<std::string>() : "";
}

class MemoryJobApi : public jobpoll_test::transport_exchange<memory_job_api> {
 protected:
  std::size_t requests_left() const override { return transport.in_flight(); }

  /// Submits `body` and returns the new job's id.
  std::string submit(const std::string& body) {
    const outcome o = exchange(post(body));
    EXPECT_EQ(o.response.status, 202) << o.response.body;
    return json::parse(o.response.body, nullptr, false).value("id", "");
  }

  /// The API under test (`transport`), by the name its tests read best with.
  memory_job_api& api = transport;
};

/// "j1 alpha polls=2 completed running cancelled=0": one record, readable in a diff.
std::string line(const memory_job_api::job_record& j) {
  return j.id + " " + j.name + " polls=" + std::to_string(j.polls) + " " + j.outcome + " " + j.status +
         " cancelled=" + std::to_string(j.cancelled);
}

std::vector<std::string> lines(const std::vector<memory_job_api::job_record>& jobs) {
  std::vector<std::string> out;
  for (const auto& j : jobs) out.push_back(line(j));
  return out;
}

// ---- POST /jobs ----

TEST_F(MemoryJobApi, SubmitAnswers202WithIdsInSubmissionOrderWhateverTheOrigin) {
  const outcome first = exchange(request_for("POST", "http://jobs.test/jobs", R"({"name":"a"})"));
  EXPECT_FALSE(first.ec);
  EXPECT_EQ(first.response.status, 202);
  EXPECT_EQ(first.response.body, R"({"id":"j1"})");
  EXPECT_TRUE(first.response.headers.empty());
  EXPECT_EQ(first.at, 0ns);

  EXPECT_EQ(exchange(request_for("POST", "https://other.test:8443/jobs?trace=1", R"({"name":"b"})")).response.body,
            R"({"id":"j2"})");
  EXPECT_EQ(exchange(request_for("POST", "/jobs", R"({"name":"c"})")).response.body, R"({"id":"j3"})");
  EXPECT_EQ(api.submits(), 3u);
}

TEST_F(MemoryJobApi, SubmitDefaultsToOneRunningPollAndCompleted) {
  submit(R"({"name":"plain"})");
  submit(R"({"name":"full","polls":0,"outcome":"failed"})");
  EXPECT_THAT(lines(api.jobs()), ElementsAre("j1 plain polls=1 completed running cancelled=0",
                                             "j2 full polls=0 failed running cancelled=0"));
}

TEST_F(MemoryJobApi, BadBodiesAre400WithWhatWasWrongAndWhatWasReceived) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "body must be a JSON object, got an empty body"},
      {R"({"name":)",
       R"(body must be a JSON object, got "{"name":" (not JSON: parse error at line 1, column 9: syntax error )"
       R"(while parsing value - unexpected end of input; expected '[', '{', or a literal))"},
      {"[1,2]", "body must be a JSON object, got array: [1,2]"},
      {R"("job")", R"(body must be a JSON object, got string: "job")"},
      {R"({"name":"a","poll":3})",
       R"(body has an unknown member "poll" (known: name, polls, outcome), got {"name":"a","poll":3})"},
      {"{}", R"("name" is required, got {})"},
      {R"({"polls":2})", R"("name" is required, got {"polls":2})"},
      {R"({"name":""})", R"("name" must be a non-empty string, got "")"},
      {R"({"name":7})", R"("name" must be a non-empty string, got 7)"},
      {R"({"name":null})", R"("name" must be a non-empty string, got null)"},
      {R"({"name":"a","polls":-1})", R"("polls" must be an integer >= 0, got -1)"},
      {R"({"name":"a","polls":1.5})", R"("polls" must be an integer >= 0, got 1.5)"},
      {R"({"name":"a","polls":2.0})", R"("polls" must be an integer >= 0, got 2.0)"},
      {R"({"name":"a","polls":"3"})", R"("polls" must be an integer >= 0, got "3")"},
      {R"({"name":"a","polls":true})", R"("polls" must be an integer >= 0, got true)"},
      {R"({"name":"a","outcome":"done"})", R"("outcome" must be "completed" or "failed", got "done")"},
      {R"({"name":"a","outcome":1})", R"("outcome" must be "completed" or "failed", got 1)"},
  };
  for (const auto& [body, message] : cases) {
    const outcome o = exchange(post(body));
    EXPECT_FALSE(o.ec);
    EXPECT_EQ(o.response.status, 400) << body;
    EXPECT_EQ(error_of(o), message) << body;
  }
  // The error is a JSON string: quotes and backslashes escaped.
  EXPECT_EQ(exchange(post(R"({"name":""})")).response.body, R"({"error":"\"name\" must be a non-empty string, got \"\""})");
  EXPECT_EQ(api.submits(), 0u) << "no bad body creates a job";
  EXPECT_EQ(api.requests(), cases.size() + 1);
  EXPECT_EQ(submit(R"({"name":"good"})"), "j1") << "numbering starts with the first job created";
}

// ---- GET /jobs/{id} ----

TEST_F(MemoryJobApi, GetAnswersRunningWithProgressThenTheResultOnEveryLaterGet) {
  const std::string id = submit(R"({"name":"alpha","polls":3})");
  ASSERT_EQ(id, "j1");
  std::vector<std::string> bodies;
  for (int i = 0; i < 5; ++i) {
    const outcome o = exchange(get(id));
    EXPECT_FALSE(o.ec);
    EXPECT_EQ(o.response.status, 200);
    bodies.push_back(o.response.body);
  }
  EXPECT_THAT(bodies, ElementsAre(R"({"id":"j1","status":"running","progress":0.25})",
                                  R"({"id":"j1","status":"running","progress":0.5})",
                                  R"({"id":"j1","status":"running","progress":0.75})",
                                  R"({"id":"j1","status":"completed","result":{"name":"alpha","value":1}})",
                                  R"({"id":"j1","status":"completed","result":{"name":"alpha","value":1}})"));
  EXPECT_EQ(api.polls(id), 5u);
}

TEST_F(MemoryJobApi, ProgressIsTheShortestNumberThatReadsBackExactly) {
  const std::string id = submit(R"({"name":"thirds","polls":2})");
  const json first = json::parse(exchange(get(id)).response.body);
  const json second = json::parse(exchange(get(id)).response.body);
  EXPECT_EQ(first["progress"].get<double>(), 1.0 / 3.0);
  EXPECT_EQ(second["progress"].get<double>(), 2.0 / 3.0);
}

TEST_F(MemoryJobApi, ValueIsTheSubmissionNumberAndZeroPollsAnswersTerminalAtOnce) {
  submit(R"({"name":"first"})");
  const std::string id = submit(R"({"name":"second","polls":0})");
  EXPECT_EQ(exchange(get(id)).response.body, R"({"id":"j2","status":"completed","result":{"name":"second","value":2}})");
}

TEST_F(MemoryJobApi, AFailingJobAnswersFailedOnEveryGetAfterItsPolls) {
  const std::string id = submit(R"({"name":"beta","polls":1,"outcome":"failed"})");
  EXPECT_EQ(exchange(get(id)).response.body, R"({"id":"j1","status":"running","progress":0.5})");
  EXPECT_EQ(exchange(get(id)).response.body, R"({"id":"j1","status":"failed","error":"job beta failed"})");
  EXPECT_EQ(exchange(get(id)).response.body, R"({"id":"j1","status":"failed","error":"job beta failed"})");
  EXPECT_THAT(lines(api.jobs()), ElementsAre("j1 beta polls=1 failed failed cancelled=0"));
}

TEST_F(MemoryJobApi, NamesAreEscapedInAnswersAndReadBackUnchanged) {
  const std::string name = "say \"hi\"\\\t\xc3\xa9";
  const std::string id = submit(json{{"name", name}, {"polls", 0}}.dump());
  const outcome o = exchange(get(id));
  EXPECT_EQ(o.response.body, "{\"id\":\"j1\",\"status\":\"completed\",\"result\":{\"name\":\"say \\\"hi\\\"\\\\\\u0009\xc3\xa9\","
                             "\"value\":1}}");
  EXPECT_EQ(json::parse(o.response.body)["result"]["name"], name);
  EXPECT_EQ(api.submits_named(name), 1u);
  const std::string failing = submit(json{{"name", name}, {"polls", 0}, {"outcome", "failed"}}.dump());
  EXPECT_EQ(json::parse(exchange(get(failing)).response.body)["error"], "job " + name + " failed");
}

TEST_F(MemoryJobApi, UnknownJobsAre404) {
  submit(R"({"name":"only"})");
  for (const std::string id : {"j2", "j0", "j01", "j-1", "j+1", "j", "1", "x1", "j1x", "j18446744073709551617"}) {
    const outcome o = exchange(get(id));
    EXPECT_EQ(o.response.status, 404) << id;
    EXPECT_EQ(o.response.body, R"({"error":"unknown job )" + id + R"("})");
  }
  const outcome deleted = exchange(del("j7"));
  EXPECT_EQ(deleted.response.status, 404);
  EXPECT_EQ(error_of(deleted), "unknown job j7");
  EXPECT_EQ(api.polls("j1"), 0u);
  EXPECT_EQ(api.cancels("j1"), 0u);
}

// ---- DELETE /jobs/{id} ----

TEST_F(MemoryJobApi, DeleteCancelsARunningJobWhoseGetsThenAnswerCancelled) {
  const std::string id = submit(R"({"name":"long","polls":10})");
  exchange(get(id));
  const outcome cancelled = exchange(del(id));
  EXPECT_FALSE(cancelled.ec);
  EXPECT_EQ(cancelled.response.status, 200);
  EXPECT_EQ(cancelled.response.body, R"({"id":"j1","status":"cancelled"})");
  EXPECT_EQ(exchange(get(id)).response.body, R"({"id":"j1","status":"cancelled"})");
  EXPECT_EQ(exchange(get(id)).response.body, R"({"id":"j1","status":"cancelled"})");
  EXPECT_TRUE(api.cancelled(id));
  EXPECT_EQ(api.cancels(id), 1u);
  EXPECT_EQ(api.polls(id), 3u);

  const outcome again = exchange(del(id));
  EXPECT_EQ(again.response.status, 409);
  EXPECT_EQ(again.response.body, R"({"error":"job j1 already cancelled"})");
  EXPECT_EQ(api.cancels(id), 2u) << "a refused DELETE is counted too";
  EXPECT_THAT(lines(api.jobs()), ElementsAre("j1 long polls=10 completed cancelled cancelled=1"));
}

TEST_F(MemoryJobApi, DeleteAfterTheTerminalAnswerIs409NamingTheStatus) {
  const std::string done = submit(R"({"name":"done","polls":0})");
  const std::string broken = submit(R"({"name":"broken","polls":0,"outcome":"failed"})");
  exchange(get(done));
  exchange(get(broken));
  const outcome a = exchange(del(done));
  EXPECT_EQ(a.response.status, 409);
  EXPECT_EQ(error_of(a), "job j1 already completed");
  const outcome b = exchange(del(broken));
  EXPECT_EQ(b.response.status, 409);
  EXPECT_EQ(error_of(b), "job j2 already failed");
  EXPECT_FALSE(api.cancelled(done));
  EXPECT_FALSE(api.cancelled(broken));
  EXPECT_EQ(exchange(get(done)).response.body, R"({"id":"j1","status":"completed","result":{"name":"done","value":1}})");
}

TEST_F(MemoryJobApi, AJobNobodyHasSeenEndCanStillBeCancelled) {
  const std::string id = submit(R"({"name":"quick","polls":0})");
  EXPECT_EQ(exchange(del(id)).response.status, 200) << "no GET has answered its terminal status yet";
  EXPECT_EQ(exchange(get(id)).response.body, R"({"id":"j1","status":"cancelled"})");
}

// ---- Other routes ----

TEST_F(MemoryJobApi, AnyOtherRouteIs404NamingMethodAndPath) {
  submit(R"({"name":"a"})");
  const std::vector<std::pair<http_request, std::string>> cases = {
      {request_for("GET", jobs_url), "no route for GET /jobs"},
      {request_for("PUT", jobs_url, "{}"), "no route for PUT /jobs"},
      {request_for("POST", "http://jobs.test/jobs/j1"), "no route for POST /jobs/j1"},
      {request_for("PATCH", "http://jobs.test/jobs/j1?x=1"), "no route for PATCH /jobs/j1"},
      {request_for("get", "http://jobs.test/jobs/j1"), "no route for get /jobs/j1"},
      {request_for("GET", "http://jobs.test/jobs/"), "no route for GET /jobs/"},
      {request_for("GET", "http://jobs.test/jobs/j1/result"), "no route for GET /jobs/j1/result"},
      {request_for("POST", "http://jobs.test/jobs/", R"({"name":"b"})"), "no route for POST /jobs/"},
      {request_for("GET", "http://jobs.test"), "no route for GET /"},
      {request_for("DELETE", "http://jobs.test/v2/jobs/j1"), "no route for DELETE /v2/jobs/j1"},
  };
  for (const auto& [request, message] : cases) {
    const outcome o = exchange(request);
    EXPECT_FALSE(o.ec);
    EXPECT_EQ(o.response.status, 404) << request.method << " " << request.url;
    EXPECT_EQ(error_of(o), message);
  }
  EXPECT_EQ(api.submits(), 1u);
  EXPECT_EQ(api.polls("j1"), 0u);
  EXPECT_EQ(api.cancels("j1"), 0u);
  EXPECT_EQ(api.requests(), cases.size() + 1);
}

// ---- fail_next ----

TEST_F(MemoryJobApi, FailNextRepliesInOrderInsteadOfTheApiThenTheApiAnswers) {
  api.fail_next("POST", "/jobs", http_response{503, {{"Retry-After", "3"}}, "busy"});
  api.fail_next("POST", "/jobs", http_response{429, {{"Retry-After", "7"}}, R"({"error":"slow down"})"});

  const outcome first = exchange(post(R"({"name":"a"})"));
  EXPECT_FALSE(first.ec);
  EXPECT_EQ(first.response.status, 503);
  EXPECT_EQ(first.response.body, "busy");
  EXPECT_EQ(first.response.headers.find("Retry-After"), "3");
  const outcome second = exchange(post(R"({"name":"a"})"));
  EXPECT_EQ(second.response.status, 429);
  EXPECT_EQ(second.response.body, R"({"error":"slow down"})");
  EXPECT_EQ(second.response.headers.find("Retry-After"), "7");
  EXPECT_EQ(api.submits(), 0u) << "a faulted POST creates no job";

  const outcome third = exchange(post(R"({"name":"a"})"));
  EXPECT_EQ(third.response.status, 202);
  EXPECT_EQ(third.response.body, R"({"id":"j1"})");
  EXPECT_EQ(api.submits_named("a"), 1u);
  EXPECT_EQ(api.requests(), 3u);
}

TEST_F(MemoryJobApi, FailNextMatchesMethodAndPathPrefixAndTheEarliestQueuedWins) {
  submit(R"({"name":"one","polls":5})");
  submit(R"({"name":"two","polls":5})");
  api.fail_next("GET", "/jobs/j1", http_response{500, {}, "A"});
  api.fail_next("GET", "/jobs/", http_response{502, {}, "B"});
  api.fail_next("GET", "/jobs/j1", http_response{504, {}, "C"});

  EXPECT_EQ(exchange(del("j1")).response.status, 200) << "another method is not matched";
  EXPECT_EQ(exchange(get("j2")).response.body, "B");
  EXPECT_EQ(exchange(get("j1")).response.body, "A");
  EXPECT_EQ(exchange(get("j1?verbose=1")).response.body, "C") << "the query is not part of the path";
  EXPECT_EQ(exchange(get("j1")).response.body, R"({"id":"j1","status":"cancelled"})");
  EXPECT_EQ(exchange(get("j2")).response.body, R"({"id":"j2","status":"running","progress":0.16666666666666666})");
  EXPECT_EQ(api.polls("j1"), 1u) << "faulted GETs are not polls";
  EXPECT_EQ(api.polls("j2"), 1u);
  EXPECT_EQ(api.requests(), 8u);
}

TEST_F(MemoryJobApi, BadFailNextAndLatencyArgumentsAreRejected) {
  EXPECT_EQ(invalid_argument_message([&] { api.fail_next("", "/jobs", http_response{503, {}, ""}); }),
            "memory_job_api: fail_next() needs a method, got an empty one for \"/jobs\"");
  EXPECT_EQ(invalid_argument_message([&] { api.fail_next("POST", "http://jobs.test/jobs", http_response{503, {}, ""}); }),
            "memory_job_api: fail_next() needs a path prefix starting with '/', got \"http://jobs.test/jobs\"");
  EXPECT_EQ(invalid_argument_message([&] { api.fail_next("POST", "/jobs", http_response{42, {}, ""}); }),
            "memory_job_api: fail_next() needs an HTTP status from 100 to 599, got 42");
  EXPECT_EQ(invalid_argument_message([&] { api.set_latency(-1ns); }),
            "memory_job_api: set_latency() needs a latency >= 0, got -1ns");
  EXPECT_EQ(api.latency(), 0ns);
  EXPECT_EQ(exchange(post(R"({"name":"a"})")).response.status, 202) << "a rejected call queues nothing";
}

// ---- Latency and timeouts ----

TEST_F(MemoryJobApi, LatencyIsExactOnTheClockAndTheRequestTakesEffectOnArrival) {
  api.set_latency(1500ms);
  std::optional<outcome> out;
  send(post(R"({"name":"slow"})"), out);
  EXPECT_EQ(api.submits(), 1u) << "the job exists before its answer arrives";
  poll();
  EXPECT_FALSE(out);
  manual_clock::run_for(ctx, 1500ms - 1ns);
  EXPECT_FALSE(out) << "completed before its latency";
  EXPECT_EQ(api.in_flight(), 1u);
  EXPECT_EQ(manual_clock::pending_waits(), 1u);
  manual_clock::run_for(ctx, 1ns);
  ASSERT_TRUE(out);
  EXPECT_FALSE(out->ec);
  EXPECT_EQ(out->response.status, 202);
  EXPECT_EQ(out->response.body, R"({"id":"j1"})");
  EXPECT_EQ(out->at, 1500ms);
}

TEST_F(MemoryJobApi, LatencyDelaysEveryAnswerAndAChangeOnlyLaterRequests) {
  api.set_latency(2s);
  api.fail_next("GET", "/jobs", http_response{503, {}, "busy"});
  std::optional<outcome> faulted, unknown, no_route, bad, fast;
  send(get("j1"), faulted);
  send(get("j1"), unknown);
  send(request_for("GET", "http://jobs.test/"), no_route);
  send(post("[]"), bad);
  api.set_latency(1s);
  send(post(R"({"name":"a"})"), fast);
  run();
  ASSERT_TRUE(faulted && unknown && no_route && bad && fast);
  EXPECT_EQ(faulted->response.status, 503);
  EXPECT_EQ(faulted->at, 2s);
  EXPECT_EQ(unknown->response.status, 404);
  EXPECT_EQ(unknown->at, 2s);
  EXPECT_EQ(no_route->response.status, 404);
  EXPECT_EQ(no_route->at, 2s);
  EXPECT_EQ(bad->response.status, 400);
  EXPECT_EQ(bad->at, 2s);
  EXPECT_EQ(fast->response.status, 202);
  EXPECT_EQ(fast->at, 1s);
  EXPECT_EQ(api.latency(), 1s);
}

TEST_F(MemoryJobApi, ATimeoutShorterThanTheLatencyTimesOutAtTheTimeoutAfterTheRequestTookEffect) {
  api.set_latency(10s);
  std::optional<outcome> out;
  send(with_timeout(post(R"({"name":"lost"})"), 2s), out);
  manual_clock::run_for(ctx, 2s - 1ns);
  EXPECT_FALSE(out);
  manual_clock::run_for(ctx, 1ns);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->ec, asio::error::timed_out);
  EXPECT_EQ(out->response.status, 0);
  EXPECT_EQ(out->response.body, "");
  EXPECT_EQ(out->at, 2s);
  EXPECT_EQ(manual_clock::pending_waits(), 0u) << "the 10 s answer must not stay armed";
  EXPECT_EQ(api.submits_named("lost"), 1u) << "the server created the job; only the answer was lost";
}

TEST_F(MemoryJobApi, ATimeoutEqualToTheLatencyLetsTheAnswerThroughAndALongerOneLeavesNoTimer) {
  api.set_latency(2s);
  const outcome equal = exchange(with_timeout(post(R"({"name":"a"})"), 2s));
  EXPECT_FALSE(equal.ec);
  EXPECT_EQ(equal.response.status, 202);
  EXPECT_EQ(equal.at, 2s);
  const outcome longer = exchange(with_timeout(post(R"({"name":"b"})"), 30s));
  EXPECT_FALSE(longer.ec);
  EXPECT_EQ(longer.response.body, R"({"id":"j2"})");
  EXPECT_EQ(longer.at, 4s);
  EXPECT_EQ(manual_clock::pending_waits(), 0u);
}

TEST_F(MemoryJobApi, WithoutLatencyAZeroTimeoutStillGetsTheAnswer) {
  const outcome o = exchange(with_timeout(post(R"({"name":"a"})"), 0s));
  EXPECT_FALSE(o.ec);
  EXPECT_EQ(o.response.status, 202);
  api.set_latency(1ns);
  const outcome late = exchange(with_timeout(post(R"({"name":"b"})"), 0s));
  EXPECT_EQ(late.ec, asio::error::timed_out);
  EXPECT_EQ(late.at, 0s);
}

// ---- Cancellation ----

class MemoryJobApiCancellation : public MemoryJobApi, public ::testing::WithParamInterface<asio::cancellation_type> {};

TEST_P(MemoryJobApiCancellation, AnAnswerInItsLatencyIsAbandonedAtOnceAndItsTimerCancelled) {
  const std::string id = submit(R"({"name":"a","polls":3})");
  api.set_latency(5s);
  std::optional<outcome> out;
  api.async_request(get(id), record_cancellable(out));
  manual_clock::run_for(ctx, 1s);
  EXPECT_EQ(manual_clock::pending_waits(), 1u);
  signal.emit(GetParam());
  EXPECT_FALSE(out) << "the cancellation must post the completion, not run it";
  EXPECT_EQ(manual_clock::pending_waits(), 0u);
  poll();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->ec, asio::error::operation_aborted);
  EXPECT_EQ(out->response.status, 0);
  EXPECT_EQ(out->at, 1s);
  run();  // the abandoned answer never arrives (record() fails on a second completion)
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 1s);
  EXPECT_EQ(api.polls(id), 1u) << "the GET took effect on arrival";
}

TEST_P(MemoryJobApiCancellation, ARequestWithATimeoutIsAbandonedAtOnce) {
  api.set_latency(5s);
  std::optional<outcome> out;
  api.async_request(with_timeout(post(R"({"name":"a"})"), 2s), record_cancellable(out));
  poll();
  signal.emit(GetParam());
  poll();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->ec, asio::error::operation_aborted);
  EXPECT_EQ(out->at, 0s);
  EXPECT_EQ(manual_clock::pending_waits(), 0u);
}

INSTANTIATE_TEST_SUITE_P(EveryType, MemoryJobApiCancellation, jobpoll_test::every_cancellation_type(),
                         jobpoll_test::cancellation_type_name);

TEST_F(MemoryJobApi, ACancellationAfterTheAnswerChangesNothing) {
  for (const auto latency : {0ns, 1000000000ns}) {
    api.set_latency(latency);
    std::optional<outcome> out;
    api.async_request(post(R"({"name":"a"})"), record_cancellable(out));
    if (latency == 0ns) signal.emit(asio::cancellation_type::terminal);  // the answer is already posted
    run();
    ASSERT_TRUE(out);
    signal.emit(asio::cancellation_type::terminal);
    poll();
    EXPECT_FALSE(out->ec);
    EXPECT_EQ(out->response.status, 202);
  }
  EXPECT_EQ(api.submits(), 2u);
}

TEST_F(MemoryJobApi, DestructionCompletesRequestsInTheirLatencyWithOperationAborted) {
  std::optional<outcome> cancellable, plain, answered;
  {
    memory_job_api local(ctx.get_executor());
    local.async_request(post(R"({"name":"a"})"), record(answered));
    local.set_latency(1s);
    local.async_request(post(R"({"name":"b"})"), record_cancellable(cancellable));
    local.async_request(post(R"({"name":"c"})"), record(plain));
    EXPECT_EQ(local.in_flight(), 3u);
    EXPECT_EQ(manual_clock::pending_waits(), 2u);
  }
  EXPECT_EQ(manual_clock::pending_waits(), 0u) << "destruction cancels the timers";
  signal.emit(asio::cancellation_type::terminal);  // finds the API gone: does nothing
  EXPECT_FALSE(cancellable);
  run();
  ASSERT_TRUE(cancellable && plain && answered);
  EXPECT_EQ(cancellable->ec, asio::error::operation_aborted);
  EXPECT_EQ(plain->ec, asio::error::operation_aborted);
  EXPECT_EQ(plain->at, 0s);
  EXPECT_FALSE(answered->ec) << "an answer already on its way is delivered";
  EXPECT_EQ(answered->response.body, R"({"id":"j1"})");
}

// ---- Completion and records ----

TEST_F(MemoryJobApi, NeverCompletesInsideAsyncRequest) {
  api.fail_next("GET", "/jobs/j1", http_response{503, {}, "busy"});
  const std::vector<http_request> requests = {
      post(R"({"name":"a"})"), post("nonsense"), get("j1"), get("j1"), get("j9"), del("j1"),
      request_for("PUT", jobs_url), with_timeout(get("j1"), 0s)};
  for (std::size_t i = 0; i < requests.size(); ++i) {
    bool returned = false;
    std::optional<bool> returned_when_called;
    api.async_request(requests[i], [&](jobpoll::error_code, http_response) { returned_when_called = returned; });
    returned = true;
    poll();
    ASSERT_TRUE(returned_when_called) << "request " << i;
    EXPECT_TRUE(*returned_when_called) << "request " << i << " completed inside async_request";
  }
  EXPECT_EQ(api.requests(), requests.size());
}

TEST_F(MemoryJobApi, InFlightCountsRequestsUntilTheirHandlerRunsAndMaxInFlightThePeak) {
  EXPECT_EQ(api.max_in_flight(), 0u);
  std::optional<outcome> a, b, c;
  send(post(R"({"name":"a"})"), a);
  send(post(R"({"name":"b"})"), b);
  send(post(R"({"name":"c"})"), c);
  EXPECT_EQ(api.in_flight(), 3u) << "a posted completion is still in flight";
  EXPECT_EQ(api.max_in_flight(), 3u);
  poll();
  EXPECT_EQ(api.in_flight(), 0u);

  api.set_latency(1s);
  std::optional<outcome> d, e;
  send(get("j1"), d);
  send(get("j2"), e);
  EXPECT_EQ(api.in_flight(), 2u);
  EXPECT_EQ(api.max_in_flight(), 3u);
  run();
  EXPECT_EQ(api.in_flight(), 0u);
  EXPECT_EQ(api.max_in_flight(), 3u);
  EXPECT_EQ(api.requests(), 5u);
}

TEST_F(MemoryJobApi, RecordsCountWhatTheApiDidPerJobAndName) {
  submit(R"({"name":"a","polls":0})");
  submit(R"({"name":"b","polls":2,"outcome":"failed"})");
  submit(R"({"name":"a"})");
  exchange(post("{}"));
  exchange(get("j1"));
  exchange(get("j2"));
  exchange(del("j2"));
  exchange(del("j2"));
  exchange(get("j9"));
  api.fail_next("DELETE", "/jobs/j3", http_response{503, {}, ""});
  exchange(del("j3"));

  EXPECT_EQ(api.submits(), 3u);
  EXPECT_EQ(api.submits_named("a"), 2u);
  EXPECT_EQ(api.submits_named("b"), 1u);
  EXPECT_EQ(api.submits_named("c"), 0u);
  EXPECT_EQ(api.polls("j1"), 1u);
  EXPECT_EQ(api.polls("j2"), 1u);
  EXPECT_EQ(api.polls("j3"), 0u);
  EXPECT_EQ(api.cancels("j1"), 0u);
  EXPECT_EQ(api.cancels("j2"), 2u);
  EXPECT_EQ(api.cancels("j3"), 0u) << "the faulted DELETE never reached the job";
  EXPECT_FALSE(api.cancelled("j1"));
  EXPECT_TRUE(api.cancelled("j2"));
  EXPECT_FALSE(api.cancelled("j3"));
  EXPECT_EQ(api.requests(), 10u);
  EXPECT_THAT(lines(api.jobs()), ElementsAre("j1 a polls=0 completed completed cancelled=0",
                                             "j2 b polls=2 failed cancelled cancelled=1",
                                             "j3 a polls=1 completed running cancelled=0"));
  const auto jobs = api.jobs();
  EXPECT_EQ(jobs[0], (memory_job_api::job_record{"j1", "a", 0, "completed", "completed", false}));

  EXPECT_EQ(invalid_argument_message([&] { api.polls("j4"); }),
            "memory_job_api: polls() needs the id of a submitted job (j1 to j3), got \"j4\"");
  EXPECT_EQ(invalid_argument_message([&] { api.cancels("x"); }),
            "memory_job_api: cancels() needs the id of a submitted job (j1 to j3), got \"x\"");
  memory_job_api empty(ctx.get_executor());
  EXPECT_EQ(invalid_argument_message([&] { empty.cancelled("j1"); }),
            "memory_job_api: cancelled() needs the id of a submitted job (none yet), got \"j1\"");
  EXPECT_TRUE(empty.jobs().empty());
}

TEST(SteadyMemoryJobApi, AnswersWithoutLatencyOnTheSteadyClock) {
  asio::io_context ctx;
  jobpoll_test::steady_memory_job_api api(ctx.get_executor());
  std::vector<std::string> bodies;
  auto keep = [&](jobpoll::error_code ec, http_response r) {
    EXPECT_FALSE(ec);
    bodies.push_back(std::move(r.body));
  };
  api.async_request(post(R"({"name":"s","polls":0})"), keep);
  api.async_request(get("j1"), keep);
  ctx.run();  // no latency: nothing waits on the clock
  EXPECT_THAT(bodies, ElementsAre(R"({"id":"j1"})", R"({"id":"j1","status":"completed","result":{"name":"s","value":1}})"));
  EXPECT_EQ(api.in_flight(), 0u);
}

// ---- job_client over the API ----

using status_type = jobpoll::field_status<jobpoll::json_codec>;
using client_type = jobpoll::job_client<memory_job_api, jobpoll::json_codec, status_type>;
using options = jobpoll::basic_poll_options<manual_clock>;
using jobpoll_test::failure;
using jobpoll_test::job_outcome;
using jobpoll_test::success;

jobpoll::job_params job(std::string name, int polls, std::string outcome = "completed") {
  return {{"name", std::move(name)}, {"polls", std::to_string(polls)}, {"outcome", std::move(outcome)}};
}

class MemoryJobApiClient : public MemoryJobApi {
 protected:
  // 2 s interval, 1 s backoff, no jitter.
  static options exact() {
    options o;
    o.interval = jobpoll::fixed_interval{2s};
    o.backoff = jobpoll::fixed_interval{1s};
    return o;
  }

  job_outcome run_job(jobpoll::job_params params, options o) {
    std::optional<job_outcome> out;
    asio::co_spawn(ctx, client.run(std::move(params), std::move(o)), jobpoll_test::store_outcome(out));
    manual_clock::run(ctx);
    EXPECT_TRUE(out.has_value()) << "the job did not finish";
    return out ? std::move(*out) : job_outcome{};
  }

  client_type client{api, jobpoll_test::memory_job_description(), jobpoll_test::memory_job_status()};
};

TEST_F(MemoryJobApiClient, ACompletingJobReturnsItsResult) {
  std::vector<double> progress;
  jobpoll::poll_hooks hooks;
  hooks.on_poll = [&](const jobpoll::poll_event& e) { progress.push_back(e.status.progress.value_or(-1)); };
  options o = exact();
  o.hooks = &hooks;
  const job_outcome out = run_job(job("alpha", 2), o);
  const auto& r = success(out);
  EXPECT_EQ(r.value, json({{"name", "alpha"}, {"value", 1}}));
  EXPECT_EQ(r.handle.id, "j1");
  EXPECT_EQ(r.stats.attempts, 3u);
  EXPECT_EQ(r.last_poll.body, R"({"id":"j1","status":"completed","result":{"name":"alpha","value":1}})");
  EXPECT_THAT(progress, ElementsAre(1.0 / 3.0, 2.0 / 3.0, 1.0));
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 4s);  // two 2 s intervals
  EXPECT_EQ(api.submits_named("alpha"), 1u);
  EXPECT_EQ(api.polls("j1"), 3u);
  EXPECT_EQ(api.requests(), 4u);
  EXPECT_THAT(lines(api.jobs()), ElementsAre("j1 alpha polls=2 completed completed cancelled=0"));
}

TEST_F(MemoryJobApiClient, AFailingJobThrowsJobFailedWithItsPayload) {
  const job_outcome out = run_job(job("beta", 1, "failed"), exact());
  const auto& e = failure(out);
  EXPECT_EQ(e.code(), jobpoll::errc::job_failed);
  EXPECT_EQ(e.phase(), jobpoll::job_phase::poll);
  EXPECT_THAT(e.what(), HasSubstr(R"(polling job "j1": job failed after 2 attempts)"));
  EXPECT_THAT(e.what(), HasSubstr(R"(status "failed": job beta failed)"));
  ASSERT_TRUE(e.last_response().has_value());
  EXPECT_EQ(e.last_response()->body, R"({"id":"j1","status":"failed","error":"job beta failed"})");
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::not_applicable);
  EXPECT_EQ(api.cancels("j1"), 0u);
  EXPECT_EQ(api.polls("j1"), 2u);
}

TEST_F(MemoryJobApiClient, ADeadlineSendsTheDeleteAndTheJobIsCancelled) {
  options o = exact();
  o.deadline = 5s;
  const job_outcome out = run_job(job("long", 100), o);
  const auto& e = failure(out);
  EXPECT_EQ(e.code(), jobpoll::errc::timeout);
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::sent);
  EXPECT_THAT(e.what(), HasSubstr(R"(; remote cancel sent (HTTP 200, body: {"id":"j1","status":"cancelled"}))"));
  EXPECT_EQ(e.handle()->progress.attempts, 4u);  // at 0, 2, 4 and 5 s
  EXPECT_EQ(api.polls("j1"), 4u);
  EXPECT_EQ(api.cancels("j1"), 1u);
  EXPECT_TRUE(api.cancelled("j1"));
  EXPECT_THAT(lines(api.jobs()), ElementsAre("j1 long polls=100 completed cancelled cancelled=1"));
}

TEST_F(MemoryJobApiClient, AnInjected503OnSubmitIsRetriedAfterItsRetryAfter) {
  api.fail_next("POST", "/jobs", http_response{503, {{"Retry-After", "3"}}, "busy"});
  const job_outcome out = run_job(job("retried", 0), exact());
  EXPECT_EQ(success(out).value, json({{"name", "retried"}, {"value", 1}}));
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 3s);
  EXPECT_EQ(api.submits(), 1u);
  EXPECT_EQ(api.requests(), 3u);  // the 503, the submit, one poll
}

TEST_F(MemoryJobApiClient, ConcurrentJobsWithLatencyAreNumberedInSubmissionOrder) {
  api.set_latency(100ms);
  std::optional<job_outcome> a, b, c;
  asio::co_spawn(ctx, client.run(job("a", 1), exact()), jobpoll_test::store_outcome(a));
  asio::co_spawn(ctx, client.run(job("b", 0, "failed"), exact()), jobpoll_test::store_outcome(b));
  asio::co_spawn(ctx, client.run(job("c", 2), exact()), jobpoll_test::store_outcome(c));
  manual_clock::run(ctx);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(success(*a).value, json({{"name", "a"}, {"value", 1}}));
  EXPECT_EQ(failure(*b).code(), jobpoll::errc::job_failed);
  EXPECT_EQ(success(*c).value, json({{"name", "c"}, {"value", 3}}));
  // c: submitted at 0, polled at 0.1, 2.2 and 4.3 s (each 2 s after the
  // previous answer), each request answered 0.1 s later.
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 4400ms);
  EXPECT_EQ(api.max_in_flight(), 3u);
  EXPECT_EQ(api.requests(), 3u + 2u + 4u);  // a submit and its GETs for each job
}

}  // namespace
