// job_client on the scripted transport and the manual clock: every phase
// (submit, poll, result), every way a job ends, remote cancel and resume,
// asserted exactly, in virtual time.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/sliding_window_limiter.hpp>
#include <jobpoll/testing/manual_clock.hpp>
#include <jobpoll/transport/scripted.hpp>

#include "job_client_fixture.hpp"
#include "job_outcome.hpp"

namespace {

using namespace std::chrono_literals;
using namespace jobpoll_test;
using jobpoll::testing::manual_clock;
using testing::HasSubstr;
using json = nlohmann::json;
using transport_type = jobpoll::basic_scripted_transport<manual_clock>;
using status_type = jobpoll::field_status<jobpoll::json_codec>;
using client_type = jobpoll::job_client<transport_type, jobpoll::json_codec, status_type>;
using options = jobpoll::basic_poll_options<manual_clock>;

constexpr const char* base = "http://api.test";

// The load-job contract of the reporting API (seed 001).
jobpoll::job_description load_job() {
  jobpoll::job_description d;
  d.submit = {"POST", std::string(base) + "/transaction/load-job?site={site}"};
  d.handle = jobpoll::handle_source::body("/data/hash");
  d.poll = {"GET", std::string(base) + "/transaction/get-job-data?hash={handle}"};
  d.result = jobpoll::result_source::paged({"GET", "/transaction/get-job-data?hash={handle}&offset={offset}&limit={limit}"},
                                           {.items = "/data/data",
                                            .total = "/data/total",
                                            .page_size = 10,
                                            .first_offset = 0,
                                            .first_page_in_poll_answer = true});
  return d;
}

status_type load_job_status() {
  return status_type("/data/status", {.succeeded = {"pass"}, .failed = {"fail"}, .pending = {"working"}});
}

// The job API of seed 004: Location handle, DELETE to cancel.
jobpoll::job_description job_api() {
  jobpoll::job_description d;
  d.submit = {"POST", std::string(base) + "/v1/jobs", R"({"tool":"{tool}"})"};
  d.handle = jobpoll::handle_source::header("Location");
  d.poll = {"GET", "{+handle}"};
  d.result = jobpoll::result_source::in_poll_answer("/result");
  d.cancel = jobpoll::request_template{"DELETE", "{+handle}"};
  return d;
}

status_type job_api_status() {
  status_type s("/status", {.succeeded = {"completed"}, .failed = {"failed"}, .pending = {"pending", "running"}});
  s.progress_at("/progress").failure_detail_at("/error");
  return s;
}

std::string page_body(const std::string& status, int offset, int count, int total) {
  json items = json::array();
  for (int i = offset; i < offset + count; ++i) items.push_back({{"id", "tx-" + std::to_string(i)}});
  return json{{"data", {{"hash", "h1"}, {"status", status}, {"data", items}, {"offset", offset}, {"limit", 10}, {"total", total}}}}
      .dump();
}

std::string working() { return page_body("working", 0, 0, 0); }

// Every operation finish() runs here yields a job_result: it ends as a job_outcome.
template <class>
using outcome_of = job_outcome;

class JobClientTest : public job_client_fixture<outcome_of> {
 protected:
  jobpoll::job_handle finish_handle(asio::awaitable<jobpoll::job_handle> op) {
    std::optional<jobpoll::job_handle> out;
    asio::co_spawn(ctx, std::move(op), [&](std::exception_ptr e, jobpoll::job_handle h) {
      if (!e) out = std::move(h);
    });
    manual_clock::run(ctx);
    EXPECT_TRUE(out.has_value()) << "the submit failed";
    return out ? std::move(*out) : jobpoll::job_handle{};
  }

  job_outcome run(client_type& client, jobpoll::job_params params, options o) {
    return finish(client.run(std::move(params), std::move(o)));
  }

  std::vector<std::string> sent() const {
    std::vector<std::string> lines;
    for (const auto& r : transport.requests()) lines.push_back(r.method + " " + r.url);
    return lines;
  }
};

TEST_F(JobClientTest, LoadJobContractPollsThenCollectsEveryPage) {
  transport.on("POST", std::string(base) + "/transaction/load-job?site=MAIN").reply(200, R"({"data":{"hash":"h1"}})");
  transport.on("GET", std::string(base) + "/transaction/get-job-data?hash=h1")
      .reply(200, working())
      .reply(200, working())
      .reply(200, page_body("pass", 0, 10, 22));
  transport.on("GET", std::string(base) + "/transaction/get-job-data?hash=h1&offset=10&limit=10")
      .reply(200, page_body("pass", 10, 10, 22));
  transport.on("GET", std::string(base) + "/transaction/get-job-data?hash=h1&offset=20&limit=10")
      .reply(200, page_body("pass", 20, 2, 22));
  client_type client(transport, load_job(), load_job_status());

  jobpoll::job_params params{{"site", "MAIN"}};
  const auto out = run(client, params, exact());
  const auto outcome_r = out;
  const auto& r = success(outcome_r);
  ASSERT_EQ(r.value.size(), 22u);
  for (int i = 0; i < 22; ++i) EXPECT_EQ(r.value[static_cast<std::size_t>(i)]["id"], "tx-" + std::to_string(i));
  EXPECT_EQ(r.pages, 2u);
  EXPECT_EQ(r.stats.attempts, 3u);
  EXPECT_EQ(r.handle.id, "h1");
  EXPECT_EQ(r.handle.params.at("site"), "MAIN");
  EXPECT_EQ(r.last_poll.status, 200);
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 4s);  // two 2 s intervals
  EXPECT_THAT(sent(), testing::ElementsAre(
                          "POST http://api.test/transaction/load-job?site=MAIN",
                          "GET http://api.test/transaction/get-job-data?hash=h1",
                          "GET http://api.test/transaction/get-job-data?hash=h1",
                          "GET http://api.test/transaction/get-job-data?hash=h1",
                          "GET http://api.test/transaction/get-job-data?hash=h1&offset=10&limit=10",
                          "GET http://api.test/transaction/get-job-data?hash=h1&offset=20&limit=10"));
}

TEST_F(JobClientTest, LocationHandleIsResolvedAgainstTheSubmitOriginAndBodyIsJson) {
  transport.on("POST", std::string(base) + "/v1/jobs")
      .reply(202, R"({"job_id":"job-1","status":"pending"})", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1")
      .reply(200, R"({"status":"running","progress":0.5})")
      .reply(200, R"({"status":"completed","progress":1.0,"result":{"answer":42}})");
  client_type client(transport, job_api(), job_api_status());

  std::vector<double> progress;
  jobpoll::poll_hooks hooks;
  hooks.on_poll = [&](const jobpoll::poll_event& e) { progress.push_back(e.status.progress.value_or(-1)); };
  options o = exact();
  o.hooks = &hooks;
  jobpoll::job_params params{{"tool", "blast"}};
  const auto outcome_r = run(client, params, o);
  const auto& r = success(outcome_r);
  EXPECT_EQ(r.value, json({{"answer", 42}}));
  EXPECT_EQ(r.handle.id, "/v1/jobs/job-1");
  EXPECT_THAT(progress, testing::ElementsAre(0.5, 1.0));
  const auto requests = transport.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].body, R"({"tool":"blast"})");
  EXPECT_EQ(requests[0].headers.find("Content-Type"), "application/json");
  EXPECT_EQ(requests[1].url, "http://api.test/v1/jobs/job-1");
}

TEST_F(JobClientTest, HandleIsPercentEncodedInAUrl) {
  transport.on("POST", std::string(base) + "/transaction/load-job?site=a%20b").reply(200, R"({"data":{"hash":"x/y z"}})");
  transport.on("GET", std::string(base) + "/transaction/get-job-data?hash=x%2Fy%20z").reply(200, page_body("pass", 0, 1, 1));
  client_type client(transport, load_job(), load_job_status());
  jobpoll::job_params params{{"site", "a b"}};
  const auto outcome_r = run(client, params, exact());
  const auto& r = success(outcome_r);
  EXPECT_EQ(r.value.size(), 1u);
  EXPECT_EQ(r.pages, 0u);
}

TEST_F(JobClientTest, SubmitIsRetriedAfter503HonouringRetryAfter) {
  transport.on("POST", std::string(base) + "/v1/jobs")
      .reply(503, "busy", {{"Retry-After", "3"}})
      .reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"completed","result":1})");
  client_type client(transport, job_api(), job_api_status());
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome_r = run(client, params, exact());
  const auto& r = success(outcome_r);
  EXPECT_EQ(r.value, 1);
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 3s);
  EXPECT_EQ(transport.count("POST", std::string(base) + "/v1/jobs"), 2u);
}

TEST_F(JobClientTest, SubmitIsNotRetriedAfterAResetBecauseTheJobMayExist) {
  transport.on("POST", std::string(base) + "/v1/jobs").fail(asio::error::connection_reset);
  client_type client(transport, job_api(), job_api_status());
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome_e = run(client, params, exact());
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), asio::error::connection_reset);
  EXPECT_EQ(e.phase(), jobpoll::job_phase::submit);
  EXPECT_FALSE(e.handle().has_value());
  EXPECT_THAT(e.what(), HasSubstr("submitting job: "));
  EXPECT_THAT(e.what(), HasSubstr("not retried: the server may have created the job"));
  EXPECT_EQ(transport.count("POST", std::string(base) + "/v1/jobs"), 1u);
}

TEST_F(JobClientTest, SubmitIsRetriedWhenTheConnectionWasRefused) {
  transport.on("POST", std::string(base) + "/v1/jobs")
      .fail(asio::error::connection_refused)
      .reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"completed","result":"ok"})");
  client_type client(transport, job_api(), job_api_status());
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome = run(client, params, exact());
  EXPECT_EQ(success(outcome).value, "ok");
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 1s);  // one backoff
}

TEST_F(JobClientTest, SubmitAnswerWithoutAHandleIsADecodeErrorShowingTheAnswer) {
  transport.on("POST", std::string(base) + "/transaction/load-job?site=S").reply(200, R"({"data":{}})");
  client_type client(transport, load_job(), load_job_status());
  jobpoll::job_params params{{"site", "S"}};
  const auto outcome_e = run(client, params, exact());
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::decode_error);
  EXPECT_THAT(e.what(), HasSubstr(R"(no job handle at /data/hash in the submit answer: HTTP 200, body: {"data":{}})"));
  ASSERT_TRUE(e.last_response().has_value());
  EXPECT_EQ(e.last_response()->body, R"({"data":{}})");
}

TEST_F(JobClientTest, FailedJobSurfacesItsPayloadAndIsNotCancelled) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  const std::string payload = R"({"status":"failed","error":"out of memory","progress":0.25})";
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, payload);
  client_type client(transport, job_api(), job_api_status());
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome_e = run(client, params, exact());
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::job_failed);
  EXPECT_EQ(e.phase(), jobpoll::job_phase::poll);
  EXPECT_THAT(e.what(), HasSubstr("out of memory"));
  EXPECT_THAT(e.what(), HasSubstr("polling job \"/v1/jobs/job-1\": job failed after 1 attempt"));
  ASSERT_TRUE(e.last_response().has_value());
  EXPECT_EQ(e.last_response()->body, payload);
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::not_applicable);
  EXPECT_EQ(transport.count("DELETE", "*"), 0u);
}

TEST_F(JobClientTest, ExpiredHandleEndsAtOnceWithoutCancel) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(404, R"({"error":"unknown job job-1"})");
  client_type client(transport, job_api(), job_api_status());
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome_e = run(client, params, exact());
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::expired_handle);
  EXPECT_THAT(e.what(), HasSubstr(R"(HTTP 404, body: {"error":"unknown job job-1"})"));
  EXPECT_EQ(e.stats().attempts, 1u);
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::not_applicable);
}

TEST_F(JobClientTest, UndecodablePollAnswerIsADecodeErrorWithStatusAndBodyStart) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, "<html>gateway</html>");
  client_type client(transport, job_api(), job_api_status());
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome_e = run(client, params, exact());
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::decode_error);
  EXPECT_THAT(e.what(), HasSubstr("undecodable answer ("));
  EXPECT_THAT(e.what(), HasSubstr("HTTP 200, body: <html>gateway</html>"));
  EXPECT_EQ(e.last_response()->body, "<html>gateway</html>");
}

TEST_F(JobClientTest, UnknownStatusValueEndsThePoll) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"complete"})");
  client_type client(transport, job_api(), job_api_status());
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome_e = run(client, params, exact());
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::unknown_status);
  EXPECT_THAT(e.what(), HasSubstr("\"complete\""));
}

TEST_F(JobClientTest, PendingAnswerRetryAfterHeaderSetsTheNextWait) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1")
      .reply(202, R"({"status":"running"})", {{"Retry-After", "7"}})
      .reply(200, R"({"status":"completed","result":true})");
  client_type client(transport, job_api(), job_api_status());
  std::vector<jobpoll::wait_reason> reasons;
  jobpoll::poll_hooks hooks;
  hooks.on_wait = [&](const jobpoll::wait_event& e) { reasons.push_back(e.reason); };
  options o = exact();
  o.hooks = &hooks;
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome = run(client, params, o);
  EXPECT_EQ(success(outcome).value, true);
  EXPECT_THAT(reasons, testing::ElementsAre(jobpoll::wait_reason::hint));
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 7s);
}

// Azure's accept answer: 201 with Operation-Location and Retry-After. The
// Retry-After is the wait before the first poll.
TEST_F(JobClientTest, AcceptAnswersRetryAfterIsTheWaitBeforeTheFirstPoll) {
  transport.on("PUT", std::string(base) + "/azure/resources/r1")
      .reply(201, R"({"status":"Accepted"})",
             {{"Operation-Location", "/azure/operations/op-1"}, {"Retry-After", "3"}});
  transport.on("GET", std::string(base) + "/azure/operations/op-1")
      .reply(200, R"({"status":"Running"})")
      .reply(200, R"({"status":"Succeeded","result":7})");
  jobpoll::job_description d;
  d.submit = {"PUT", std::string(base) + "/azure/resources/r1", "{}"};
  d.handle = jobpoll::handle_source::header("Operation-Location");
  d.poll = {"GET", "{+handle}"};
  d.result = jobpoll::result_source::in_poll_answer("/result");
  client_type client(transport, d, status_type("/status", {.succeeded = {"Succeeded"}, .failed = {}, .pending = {"Running"}}));
  std::vector<manual_clock::duration> polled_at;
  jobpoll::poll_hooks hooks;
  hooks.on_poll = [&](const jobpoll::poll_event&) { polled_at.push_back(manual_clock::now().time_since_epoch()); };
  options o = exact();
  o.hooks = &hooks;
  const auto outcome = run(client, {}, o);
  EXPECT_EQ(success(outcome).value, 7);
  EXPECT_THAT(polled_at, testing::ElementsAre(3s, 5s));  // then the 2 s interval
}

TEST_F(JobClientTest, AcceptAnswersRetryAfterIsBoundedAndSkippedOnResume) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}, {"Retry-After", "600"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"completed","result":1})").repeat();
  client_type client(transport, job_api(), job_api_status());
  options o = exact();
  o.hints.ceiling = 4s;
  const auto handle = finish_handle(client.submit({{"tool", "t"}}, o));
  ASSERT_TRUE(handle.first_poll_after);
  EXPECT_EQ(*handle.first_poll_after, 600s);
  static_cast<void>(success(finish(client.wait(handle, o))));
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 4s);  // lowered to the ceiling

  jobpoll::job_handle resumed = handle;
  resumed.progress.attempts = 3;  // polled before: the submit's hint is old news
  static_cast<void>(success(finish(client.wait(resumed, o))));
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 4s);
}

// Submit and wait called apart keep to one deadline: the handle carries what is left.
TEST_F(JobClientTest, SubmitHandsWhatIsLeftOfTheDeadlineToWait) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(503, "").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"running"})").repeat();
  transport.on("DELETE", std::string(base) + "/v1/jobs/job-1").reply(204, "");
  client_type client(transport, job_api(), job_api_status());
  options o = exact();
  o.deadline = 10s;
  const auto handle = finish_handle(client.submit({{"tool", "t"}}, o));
  ASSERT_TRUE(handle.remaining);
  EXPECT_EQ(*handle.remaining, 9s);  // one 1 s backoff spent on the 503
  const auto outcome = finish(client.wait(handle, o));
  EXPECT_EQ(failure(outcome).code(), jobpoll::errc::timeout);
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 10s);
}

// poll_until refuses a negative deadline; so does every job_client entry
// point, before a request and before the deadline becomes a time point.
TEST_F(JobClientTest, InvalidOptionsAreRefusedBeforeAnyRequest) {
  client_type client(transport, job_api(), job_api_status());
  options o = exact();
  o.deadline = -5s;
  const auto outcome = run(client, {{"tool", "t"}}, o);
  const auto& e = failure(outcome);
  EXPECT_EQ(e.code(), jobpoll::errc::invalid_argument);
  EXPECT_EQ(e.phase(), jobpoll::job_phase::submit);
  EXPECT_THAT(e.what(), HasSubstr("deadline must not be negative, got -5.000s"));
  const auto waited = finish(client.wait(jobpoll::job_handle{"/v1/jobs/job-1"}, o));
  EXPECT_EQ(failure(waited).code(), jobpoll::errc::invalid_argument);
  EXPECT_EQ(failure(waited).phase(), jobpoll::job_phase::poll);
  ASSERT_TRUE(failure(waited).handle());
  EXPECT_TRUE(transport.requests().empty());
}

// A 2xx submit answer without a handle: the job may exist; the message says
// so and shows the answer, and the submit is not repeated.
TEST_F(JobClientTest, AnAcceptedSubmitWithoutAHandleWarnsOfAnOrphanedJob) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(201, R"({"id":"job-9"})");
  client_type client(transport, job_api(), job_api_status());
  const auto outcome = run(client, {{"tool", "t"}}, exact());
  const auto& e = failure(outcome);
  EXPECT_EQ(e.code(), jobpoll::errc::decode_error);
  EXPECT_THAT(e.what(), HasSubstr("no Location header in the submit answer"));
  EXPECT_THAT(e.what(), HasSubstr(R"({"id":"job-9"})"));
  EXPECT_THAT(e.what(), HasSubstr("a job may exist on the server"));
  EXPECT_EQ(transport.requests().size(), 1u);

  transport.on("POST", std::string(base) + "/v1/jobs").reply(200, "<html>queued</html>");
  jobpoll::job_description body_handle = job_api();
  body_handle.handle = jobpoll::handle_source::body("/id");
  client_type by_body(transport, body_handle, job_api_status());
  const auto undecodable = run(by_body, {{"tool", "t"}}, exact());
  EXPECT_THAT(failure(undecodable).what(), HasSubstr("undecodable submit answer"));
  EXPECT_THAT(failure(undecodable).what(), HasSubstr("<html>queued</html>"));
  EXPECT_THAT(failure(undecodable).what(), HasSubstr("a job may exist on the server"));
}

TEST_F(JobClientTest, FormFieldsAreSentUrlEncoded) {
  transport.on("POST", std::string(base) + "/ebi/run").reply(200, R"({"id":"run-1"})");
  transport.on("GET", std::string(base) + "/ebi/status/run-1").reply(200, R"({"status":"completed","result":1})");
  jobpoll::job_description d;
  d.submit = {"POST", std::string(base) + "/ebi/run"};
  d.submit.form = {{"email", "{email}"}, {"sequence", ">s1 a&b=c"}};
  d.handle = jobpoll::handle_source::body("/id");
  d.poll = {"GET", "/ebi/status/{handle}"};
  d.result = jobpoll::result_source::in_poll_answer("/result");
  client_type client(transport, d, job_api_status());
  static_cast<void>(success(run(client, {{"email", "a+b@example.org"}}, exact())));
  const auto requests = transport.requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests[0].body, "email=a%2Bb%40example.org&sequence=%3Es1%20a%26b%3Dc");
  EXPECT_EQ(requests[0].headers.find("Content-Type"), "application/x-www-form-urlencoded");

  d.submit.body = "{}";
  client_type both(transport, d, job_api_status());
  // Like a placeholder without a value: refused as invalid_argument, nothing sent.
  try {
    static_cast<void>(run(both, {{"email", "x"}}, exact()));
    ADD_FAILURE() << "a body and form fields together were accepted";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::invalid_argument);
    EXPECT_THAT(e.what(), HasSubstr("has both a body and form fields"));
  }
  EXPECT_EQ(transport.requests().size(), requests.size());
}

// Azure's result lives at the URL in the final answer's resourceLocation.
TEST_F(JobClientTest, ResultIsFetchedFromAUrlInTheFinalAnswer) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/azure/operations/op-1"}}).repeat();
  transport.on("GET", std::string(base) + "/azure/operations/op-1")
      .reply(200, R"({"status":"completed","resourceLocation":"/azure/resources/r%201"})")
      .reply(200, R"({"status":"completed"})");
  transport.on("GET", std::string(base) + "/azure/resources/r%201").reply(200, R"({"name":"r 1","size":3})");
  jobpoll::job_description d = job_api();
  d.cancel.reset();
  d.result = jobpoll::result_source::fetch({"GET", "{+location}"}, "/size");
  d.result.from_answer = {{"location", "/resourceLocation"}};
  client_type client(transport, d, job_api_status());
  const auto outcome = run(client, {{"tool", "t"}}, exact());
  EXPECT_EQ(success(outcome).value, 3);
  EXPECT_EQ(success(outcome).pages, 1u);

  // A final answer without it ends with decode_error naming the pointer and the placeholder.
  const auto missing = run(client, {{"tool", "t"}}, exact());
  EXPECT_EQ(failure(missing).code(), jobpoll::errc::decode_error);
  EXPECT_EQ(failure(missing).phase(), jobpoll::job_phase::result);
  EXPECT_THAT(failure(missing).what(), HasSubstr("no value at /resourceLocation for {location}"));
}

// The EBI dispatcher's shape: a text job id, text statuses, a text result,
// each phase read by its own codec; and a JSON answer to a text phase stays text.
TEST_F(JobClientTest, EachPhaseIsDecodedByItsOwnCodec) {
  transport.on("POST", std::string(base) + "/ebi/run").reply(200, "  run-7\n", {{"Content-Type", "text/plain"}});
  transport.on("GET", std::string(base) + "/ebi/status/run-7")
      .reply(200, "RUNNING\n", {{"Content-Type", "text/plain"}})
      .reply(200, "FINISHED\n", {{"Content-Type", "text/plain"}});
  transport.on("GET", std::string(base) + "/ebi/result/run-7/out").reply(200, "{\"looks\": \"like JSON\"}\n");
  jobpoll::job_description d;
  d.submit = {"POST", std::string(base) + "/ebi/run"};
  d.submit.form = {{"sequence", "ACGT"}};
  d.handle = jobpoll::handle_source::body("");
  d.poll = {"GET", "/ebi/status/{handle}"};
  d.result = jobpoll::result_source::fetch({"GET", "/ebi/result/{handle}/out"});
  const jobpoll::json_codec text(jobpoll::json_codec_options{.format = jobpoll::json_body_format::text});
  const jobpoll::json_codec by_type(jobpoll::json_codec_options{.format = jobpoll::json_body_format::by_content_type});
  client_type client(transport, d,
                     status_type("", {.succeeded = {"FINISHED"}, .failed = {"FAILURE"}, .pending = {"RUNNING"}}, text),
                     jobpoll::phase_codecs<jobpoll::json_codec>{by_type, by_type, text});
  const auto outcome = run(client, {}, exact());
  EXPECT_EQ(success(outcome).handle.id, "run-7");
  EXPECT_EQ(success(outcome).value, R"({"looks": "like JSON"})");
  EXPECT_EQ(success(outcome).stats.attempts, 2u);
}

TEST_F(JobClientTest, TimeoutSendsTheRemoteCancelAndKeepsTheHandle) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"running"})").repeat();
  transport.on("DELETE", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"cancelled"})");
  client_type client(transport, job_api(), job_api_status());
  options o = exact();
  o.deadline = 5s;
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome_e = run(client, params, o);
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::timeout);
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::sent);
  EXPECT_THAT(e.what(), HasSubstr(R"(; remote cancel sent (HTTP 200, body: {"status":"cancelled"}))"));
  ASSERT_TRUE(e.handle().has_value());
  EXPECT_EQ(e.handle()->id, "/v1/jobs/job-1");
  EXPECT_EQ(e.handle()->progress.attempts, 4u);  // at 0, 2, 4 and 5 s
  EXPECT_EQ(e.handle()->remaining, 0ns);
  EXPECT_EQ(transport.count("DELETE", "*"), 1u);
}

TEST_F(JobClientTest, CallerCancellationSendsTheRemoteCancel) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"running"})").repeat();
  transport.on("DELETE", std::string(base) + "/v1/jobs/job-1").reply(204, "");
  client_type client(transport, job_api(), job_api_status());
  asio::cancellation_signal stop;
  jobpoll::poll_hooks hooks;
  hooks.on_poll = [&](const jobpoll::poll_event& e) {
    if (e.attempt == 2) stop.emit(asio::cancellation_type::terminal);
  };
  options o = exact();
  o.hooks = &hooks;
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome_e = finish(client.run(params, o), stop.slot());
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), asio::error::operation_aborted);
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::sent);
  EXPECT_EQ(e.handle()->progress.attempts, 2u);
  EXPECT_THAT(sent(), testing::ElementsAre("POST http://api.test/v1/jobs", "GET http://api.test/v1/jobs/job-1",
                                           "GET http://api.test/v1/jobs/job-1", "DELETE http://api.test/v1/jobs/job-1"));
}

TEST_F(JobClientTest, KeepJobCancellationSendsNothingAndReturnsAResumableHandle) {
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"running"})").repeat();
  client_type client(transport, job_api(), job_api_status());
  asio::cancellation_signal stop;
  jobpoll::poll_hooks hooks;
  hooks.on_poll = [&](const jobpoll::poll_event& e) {
    if (e.attempt == 3) stop.emit(asio::cancellation_type::terminal);
  };
  options o = exact();
  o.hooks = &hooks;
  o.deadline = 60s;
  jobpoll::job_handle handle{"/v1/jobs/job-1", {{"tool", "t"}}, {}, {}};
  const auto outcome_e = finish(client.wait(handle, o, jobpoll::on_cancel::keep_job), stop.slot());
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), asio::error::operation_aborted);
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::not_applicable);
  EXPECT_THAT(e.what(), testing::Not(HasSubstr("remote cancel")));
  ASSERT_TRUE(e.handle().has_value());
  EXPECT_EQ(e.handle()->id, "/v1/jobs/job-1");
  EXPECT_EQ(e.handle()->progress.attempts, 3u);
  EXPECT_EQ(e.handle()->remaining, 56s);  // polls at 0, 2 and 4 s of 60 s
  EXPECT_EQ(transport.count("DELETE", "*"), 0u);
}

TEST_F(JobClientTest, KeepJobStillCancelsRemotelyOnTimeout) {
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"running"})").repeat();
  transport.on("DELETE", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"cancelled"})");
  client_type client(transport, job_api(), job_api_status());
  options o = exact();
  o.deadline = 3s;
  jobpoll::job_handle handle{"/v1/jobs/job-1", {{"tool", "t"}}, {}, {}};
  const auto outcome_e = finish(client.wait(handle, o, jobpoll::on_cancel::keep_job));
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::timeout);
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::sent);
  EXPECT_EQ(transport.count("DELETE", "*"), 1u);
}

TEST_F(JobClientTest, RemoteCancelFailureIsReportedNotHidden) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"running"})").repeat();
  transport.on("DELETE", std::string(base) + "/v1/jobs/job-1").reply(403, "forbidden");
  client_type client(transport, job_api(), job_api_status());
  options o = exact();
  o.deadline = 1s;
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome_e = run(client, params, o);
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::timeout);
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::failed);
  EXPECT_THAT(e.what(), HasSubstr("; remote cancel failed: "));
  EXPECT_THAT(e.what(), HasSubstr("HTTP 403, body: forbidden"));
}

TEST_F(JobClientTest, RemoteCancelGivesUpWhenTheLimiterHoldsItPastTheCancelTimeout) {
  auto d = job_api();
  d.cancel_timeout = 3s;
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"running"})").repeat();
  jobpoll::basic_sliding_window_limiter<manual_clock> limiter(ctx.get_executor(), 2, 1h);
  client_type client(transport, d, job_api_status());
  options o = exact();
  o.deadline = 5s;
  o.limiter = limiter;
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome_e = run(client, params, o);
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::timeout);  // the second poll could not start before the deadline
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::failed);
  EXPECT_THAT(e.what(), HasSubstr("; remote cancel failed: no answer within 3.000s, limiter wait included"));
  EXPECT_EQ(transport.count("DELETE", "*"), 0u);
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 8s);  // the deadline, then the cancel timeout
}

TEST_F(JobClientTest, WithoutACancelRequestTheErrorSaysSo) {
  transport.on("POST", std::string(base) + "/transaction/load-job?site=S").reply(200, R"({"data":{"hash":"h1"}})");
  transport.on("GET", std::string(base) + "/transaction/get-job-data?hash=h1").reply(200, working()).repeat();
  client_type client(transport, load_job(), load_job_status());
  options o = exact();
  o.deadline = 0s;
  jobpoll::job_params params{{"site", "S"}};
  const auto outcome_e = run(client, params, o);
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::timeout);
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::not_configured);
  EXPECT_EQ(e.stats().attempts, 1u);  // at least one poll, even with no time
}

TEST_F(JobClientTest, SavedHandleResumesPollingWithoutASecondSubmit) {
  transport.on("POST", std::string(base) + "/transaction/load-job?site=S").reply(200, R"({"data":{"hash":"h1"}})");
  transport.on("GET", std::string(base) + "/transaction/get-job-data?hash=h1")
      .reply(200, working())
      .reply(200, working())
      .reply(200, working())
      .reply(200, page_body("pass", 0, 3, 3));
  client_type client(transport, load_job(), load_job_status());
  options o = exact();
  o.deadline = 2s;
  jobpoll::job_params params{{"site", "S"}};
  const auto outcome_first = run(client, params, o);
  const auto& first = failure(outcome_first);
  ASSERT_EQ(first.code(), jobpoll::errc::timeout);
  jobpoll::job_handle saved = *first.handle();
  EXPECT_EQ(saved.progress.attempts, 2u);
  EXPECT_EQ(saved.remaining, 0ns);

  // Later: a new budget, the same job.
  saved.remaining.reset();
  options later = exact();
  later.deadline = 60s;
  const auto outcome_r = finish(client.wait(saved, later));
  const auto& r = success(outcome_r);
  EXPECT_EQ(r.value.size(), 3u);
  EXPECT_EQ(r.stats.attempts, 4u);  // counted on from the saved progress
  EXPECT_EQ(transport.count("POST", "*"), 1u);
}

TEST_F(JobClientTest, ResumedPollKeepsOnlyWhatWasLeftOfTheRetryBudget) {
  transport.on("GET", std::string(base) + "/transaction/get-job-data?hash=h1").reply(503, "down").repeat();
  client_type client(transport, load_job(), load_job_status());
  jobpoll::job_handle saved{"h1", {{"site", "S"}}, {.attempts = 7, .consecutive_failures = 4}, std::nullopt};
  options o = exact();
  o.max_retries = 5;
  const auto outcome_e = finish(client.wait(saved, o));
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::retries_exhausted);
  EXPECT_EQ(e.stats().attempts, 9u);  // one retry left, so two more attempts
  EXPECT_EQ(e.handle()->progress.consecutive_failures, 6u);
}

TEST_F(JobClientTest, ResultFetchedFromAResultUrl) {
  auto d = job_api();
  d.result = jobpoll::result_source::fetch({"GET", "{+handle}/result"}, "/items/0");
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"completed"})");
  transport.on("GET", std::string(base) + "/v1/jobs/job-1/result")
      .reply(503, "", {{"Retry-After", "2"}})
      .reply(200, R"({"items":["first"]})");
  client_type client(transport, d, job_api_status());
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome_r = run(client, params, exact());
  const auto& r = success(outcome_r);
  EXPECT_EQ(r.value, "first");
  EXPECT_EQ(r.pages, 1u);
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 2s);  // the fetch honoured Retry-After
}

TEST_F(JobClientTest, InitialDelayIsOnlyTheWaitBeforeTheFirstPoll) {
  auto d = job_api();
  d.result = jobpoll::result_source::fetch({"GET", "{+handle}/result"});
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"completed"})");
  transport.on("GET", std::string(base) + "/v1/jobs/job-1/result").reply(200, "[1,2]");
  client_type client(transport, d, job_api_status());
  options o = exact();
  o.initial_delay = 5s;
  std::vector<manual_clock::duration> at;
  jobpoll::poll_hooks hooks;
  hooks.on_poll = [&](const jobpoll::poll_event&) { at.push_back(manual_clock::now().time_since_epoch()); };
  o.hooks = &hooks;
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome = run(client, params, o);
  EXPECT_EQ(success(outcome).value, json::array({1, 2}));
  EXPECT_THAT(at, testing::ElementsAre(5s));
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 5s);  // no delay before the submit or the fetch
}

TEST_F(JobClientTest, ResultMissingFromTheFinalAnswerIsADecodeError) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"completed"})");
  client_type client(transport, job_api(), job_api_status());
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome_e = run(client, params, exact());
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::decode_error);
  EXPECT_EQ(e.phase(), jobpoll::job_phase::result);
  EXPECT_THAT(e.what(), HasSubstr(R"(the job succeeded but its answer has no result at /result: HTTP 200, body: {"status":"completed"})"));
}

TEST_F(JobClientTest, PagesThatStopBeforeTheTotalAreAnErrorNotAShortResult) {
  transport.on("POST", std::string(base) + "/transaction/load-job?site=S").reply(200, R"({"data":{"hash":"h1"}})");
  transport.on("GET", std::string(base) + "/transaction/get-job-data?hash=h1").reply(200, page_body("pass", 0, 10, 25));
  transport.on("GET", std::string(base) + "/transaction/get-job-data?hash=h1&offset=10&limit=10")
      .reply(200, page_body("pass", 10, 0, 25));
  client_type client(transport, load_job(), load_job_status());
  jobpoll::job_params params{{"site", "S"}};
  const auto outcome_e = run(client, params, exact());
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::decode_error);
  EXPECT_THAT(e.what(), HasSubstr("page at offset 10 has no items, but 10 of 25 were collected"));
}

TEST_F(JobClientTest, PlaceholderWithoutAValueIsAnInvalidArgumentNamingIt) {
  client_type client(transport, load_job(), load_job_status());
  std::optional<std::string> what;
  asio::co_spawn(ctx, client.run({}, exact()), [&](std::exception_ptr e, job_result) {
    try {
      std::rethrow_exception(e);
    } catch (const std::system_error& error) {
      EXPECT_EQ(error.code(), jobpoll::errc::invalid_argument);
      what = error.what();
    }
  });
  manual_clock::run(ctx);
  ASSERT_TRUE(what.has_value());
  EXPECT_THAT(*what, HasSubstr("uses {site}, which has no value"));
  EXPECT_TRUE(transport.requests().empty());
}

TEST_F(JobClientTest, EveryRequestOfAJobGoesThroughTheSharedLimiter) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1")
      .reply(200, R"({"status":"running"})")
      .reply(200, R"({"status":"completed","result":1})");
  jobpoll::basic_sliding_window_limiter<manual_clock> limiter(ctx.get_executor(), 2, 10s);
  client_type client(transport, job_api(), job_api_status());
  options o = exact();
  o.interval = jobpoll::fixed_interval{0s};
  o.limiter = limiter;
  jobpoll::job_params params{{"tool", "t"}};
  const auto outcome_r = run(client, params, o);
  const auto& r = success(outcome_r);
  EXPECT_EQ(r.value, 1);
  // Submit and first poll at 0 s; the second poll had to wait for the window.
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 10s);
  EXPECT_EQ(r.stats.limiter_waited, 10s);
}

TEST_F(JobClientTest, SubmitThatNeverLeftTheClientIsRetried) {
  transport.on("POST", std::string(base) + "/v1/jobs")
      .fail(jobpoll::errc::not_sent)
      .reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"completed","result":"ok"})");
  client_type client(transport, job_api(), job_api_status());
  const auto outcome = run(client, {{"tool", "t"}}, exact());
  EXPECT_EQ(success(outcome).value, "ok");
  EXPECT_EQ(transport.count("POST", std::string(base) + "/v1/jobs"), 2u);
}

TEST_F(JobClientTest, TheDeadlineEndsAStalledPollAndSaysTheAnswerWasSlow) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").after(1s).reply(200, R"({"status":"running"})").hang();
  transport.on("DELETE", std::string(base) + "/v1/jobs/job-1").reply(200, R"({"status":"cancelled"})");
  client_type client(transport, job_api(), job_api_status());
  options o = exact();
  o.deadline = 5s;  // no attempt timeout: only the deadline bounds the stalled answer
  const auto outcome_e = run(client, {{"tool", "t"}}, o);
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), jobpoll::errc::timeout);
  EXPECT_THAT(e.what(), HasSubstr("no complete answer to GET http://api.test/v1/jobs/job-1 in time (the job's deadline)"));
  EXPECT_THAT(e.what(), HasSubstr("the answer was slow"));
  EXPECT_EQ(e.cancel_state(), jobpoll::remote_cancel::sent);
  // The first poll answered at 1 s, the second was sent at 3 s and cut at 5 s.
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 5s);
}

TEST_F(JobClientTest, ASlowSubmitAnswerSaysItWasSlowAndIsNotRetried) {
  transport.on("POST", std::string(base) + "/v1/jobs").hang();
  client_type client(transport, job_api(), job_api_status());
  options o = exact();
  o.deadline = 3s;
  o.attempt_timeout = 2s;
  const auto outcome_e = run(client, {{"tool", "t"}}, o);
  const auto& e = failure(outcome_e);
  EXPECT_EQ(e.code(), asio::error::timed_out);
  EXPECT_THAT(e.what(), HasSubstr("no complete answer to POST http://api.test/v1/jobs in time (request timeout 2.000s, "
                                  "the job's deadline): the answer was slow"));
  EXPECT_THAT(e.what(), HasSubstr("not retried: the server may have created the job"));
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 2s);
  EXPECT_EQ(transport.count("POST", "*"), 1u);
}

TEST_F(JobClientTest, APollSentAtTheDeadlineStillGetsTimeToAnswer) {
  transport.on("POST", std::string(base) + "/v1/jobs").reply(202, "{}", {{"Location", "/v1/jobs/job-1"}});
  transport.on("GET", std::string(base) + "/v1/jobs/job-1").after(500ms).reply(200, R"({"status":"completed","result":1})");
  client_type client(transport, job_api(), job_api_status());
  options o = exact();
  o.deadline = 0s;  // rule 1: at least one poll, and its answer is waited for
  const auto outcome = run(client, {{"tool", "t"}}, o);
  EXPECT_EQ(success(outcome).value, 1);
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 500ms);
}

}  // namespace
