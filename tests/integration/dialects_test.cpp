// The `jobpoll` tool against five job-API dialects of the loopback server,
// run as a process as a user would: the /v1 jobs API, Azure asynchronous
// operations, the reporting export of seed 001 (load-job / get-job-data),
// Google long-running operations and an EBI-style job dispatcher (form
// submit, plain-text answers). For each: success, failure, cancel on SIGINT
// and on timeout where the API has a cancel, progress where it has one, and
// the same job through the preset in examples/presets. Judged by the exit
// code, what the tool printed and what the server recorded.

#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "cli_runner.hpp"
#include "loopback_server.hpp"

namespace {

using jobpoll::test::loopback_server;
using jobpoll_test::child_process;
using jobpoll_test::child_result;
using jobpoll_test::cli_command;
using jobpoll_test::count_of;
using jobpoll_test::request_lines;
using jobpoll_test::run_cli;
using jobpoll_test::with;
using json = nlohmann::json;
using strings = std::vector<std::string>;
using testing::HasSubstr;
using testing::Not;

// Every run: quick polls, a deadline far away unless a test sets one.
const strings quick = {"--interval", "50ms"};

// The job ended by itself: the tool exited (no signal).
#define EXPECT_EXIT_CODE(run, code)                        \
  do {                                                     \
    EXPECT_TRUE((run).exited) << "signal " << (run).signal; \
    EXPECT_EQ((run).exit_code, code) << (run).err;         \
  } while (false)

// The last of `lines` ("" when there is none: the test fails, not crashes).
std::string last_of(const strings& lines) { return lines.empty() ? std::string() : lines.back(); }

// The cancel of a job ended by its deadline (`timeout` after the tool
// started) arrived at the server once the deadline had passed, and promptly:
// measured from the submit's arrival, which came a little after the start.
void expect_cancel_at_the_deadline(const json& log, const std::string& submit, const std::string& cancel,
                                   double timeout) {
  const double after = jobpoll_test::arrival_of(log, cancel) - jobpoll_test::arrival_of(log, submit);
  EXPECT_GE(after, timeout - 0.1) << log.dump();
  EXPECT_LT(after, timeout + 2.0) << log.dump();
}

std::string preset(const std::string& name) { return (jobpoll_test::presets_dir() / name).string(); }

// --- jobs: POST /v1/jobs -> {"job_id"}; GET /v1/jobs/{id}; DELETE ----------------

strings jobs_args(const loopback_server& server, const json& body) {
  return with({"--submit", server.url("/v1/jobs"), "--data", body.dump(), "--handle-pointer", "/job_id", "--poll",
               "/v1/jobs/{handle}", "--status-pointer", "/status", "--success", "completed", "--failure",
               "failed,cancelled", "--pending", "pending,running", "--progress-pointer", "/progress",
               "--failure-detail-pointer", "/error", "--result-pointer", "/result", "--cancel-url",
               "/v1/jobs/{handle}"},
              quick);
}

TEST(JobsDialect, SucceedsWithProgressAndOneSubmission) {
  loopback_server server;
  const child_result run = run_cli(jobs_args(server, {{"steps", 2}, {"result", {{"rows", 3}}}}));

  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "{\"rows\":3}\n");
  EXPECT_THAT(run.err, HasSubstr("submitted: handle job-1\n"));
  EXPECT_THAT(run.err, HasSubstr("poll 1: pending 33%"));
  EXPECT_THAT(run.err, HasSubstr("poll 2: pending 67%"));
  EXPECT_THAT(run.err, HasSubstr("poll 3: succeeded 100%"));
  EXPECT_EQ(request_lines(server.log()),
            (strings{"POST /v1/jobs", "GET /v1/jobs/job-1", "GET /v1/jobs/job-1", "GET /v1/jobs/job-1"}));
  EXPECT_EQ(server.jobs().at("v1_jobs"), 1);
}

TEST(JobsDialect, FailureExits1WithTheFailureText) {
  loopback_server server;
  const child_result run =
      run_cli(jobs_args(server, {{"steps", 1}, {"outcome", "failed"}, {"error", "disk full on node 7"}}));

  EXPECT_EXIT_CODE(run, 1);
  EXPECT_THAT(run.out, HasSubstr("\"error\":\"disk full on node 7\""));
  EXPECT_THAT(run.err, HasSubstr("disk full on node 7"));
  EXPECT_EQ(request_lines(server.log()), (strings{"POST /v1/jobs", "GET /v1/jobs/job-1", "GET /v1/jobs/job-1"}));
}

TEST(JobsDialect, SigintCancelsTheJobAndExits4) {
  loopback_server server;
  child_process cli(cli_command(jobs_args(server, {{"steps", 100000}})));
  const child_result run = jobpoll_test::signal_after_polls(cli, server, "GET /v1/jobs/job-1", SIGINT);

  EXPECT_EXIT_CODE(run, 4);
  EXPECT_EQ(run.out, "");
  EXPECT_THAT(run.err, HasSubstr("SIGINT: cancelling the job"));
  const strings log = request_lines(server.log());
  EXPECT_EQ(count_of(log, "POST /v1/jobs"), 1);
  EXPECT_EQ(last_of(log), "DELETE /v1/jobs/job-1");
  EXPECT_EQ(count_of(log, "DELETE /v1/jobs/job-1"), 1);
  EXPECT_EQ(server.jobs().at("jobs").at(0).at("cancelled"), true);
}

TEST(JobsDialect, TimeoutCancelsTheJobAndExits2) {
  loopback_server server;
  const child_result run = run_cli(with(jobs_args(server, {{"steps", 100000}}), {"--timeout", "300ms"}));

  EXPECT_EXIT_CODE(run, 2);
  EXPECT_THAT(run.err, HasSubstr("remote cancel sent"));
  expect_cancel_at_the_deadline(server.log(), "POST /v1/jobs", "DELETE /v1/jobs/job-1", 0.3);
  const strings log = request_lines(server.log());
  EXPECT_EQ(count_of(log, "POST /v1/jobs"), 1);
  EXPECT_EQ(last_of(log), "DELETE /v1/jobs/job-1");
  EXPECT_EQ(server.jobs().at("jobs").at(0).at("cancelled"), true);
}

TEST(JobsDialect, Preset) {
  loopback_server server;
  // Its params: base, tool, params (a JSON object); the server's default of 2 steps.
  const child_result run = run_cli(with({"--describe", preset("jobs_api.json"), "--param", "base=" + server.base_url(),
                                         "--param", "tool=blast", "--param", R"(params={"query":"ACGT"})"},
                                        quick));

  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "{\"params\":{\"query\":\"ACGT\"},\"tool\":\"blast\"}\n");
  EXPECT_THAT(run.err, HasSubstr("poll 1: pending 33%"));
  const json log = server.log();
  EXPECT_EQ(request_lines(log),
            (strings{"POST /v1/jobs", "GET /v1/jobs/job-1", "GET /v1/jobs/job-1", "GET /v1/jobs/job-1"}));
  EXPECT_EQ(json::parse(log.at(0).at("body").get<std::string>()),
            json({{"tool", "blast"}, {"params", {{"query", "ACGT"}}}}));
}

// --- Azure: PUT -> 201 + Operation-Location + Retry-After; GET the operation --------

strings azure_args(const loopback_server& server, const json& body, const std::string& name = "r1") {
  return with({"--method", "PUT", "--submit", server.url("/azure/resources/" + name), "--data", body.dump(),
               "--handle-header", "Operation-Location", "--status-pointer", "/status", "--success", "Succeeded",
               "--failure", "Failed,Canceled", "--pending", "NotStarted,Running", "--progress-pointer",
               "/percentComplete", "--progress-scale", "100", "--failure-detail-pointer", "/error/message",
               "--result-url", "{+location}", "--result-field", "location=/resourceLocation", "--cancel-url",
               "{+handle}"},
              quick);
}

// Azure tests that are not about Retry-After do not wait for it.
void no_retry_after(const loopback_server& server) { server.configure({{"azure_retry_after", 0}}); }

TEST(AzureDialect, SucceedsAndFetchesTheResourceAtResourceLocation) {
  loopback_server server;
  no_retry_after(server);
  const child_result run = run_cli(azure_args(server, {{"steps", 2}, {"size", 7}}));

  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "{\"name\":\"r1\",\"properties\":{\"provisioningState\":\"Succeeded\",\"size\":7}}\n");
  EXPECT_THAT(run.err, HasSubstr("submitted: handle " + server.url("/azure/operations/op-1") + "\n"));
  EXPECT_THAT(run.err, HasSubstr("poll 1: pending"));
  EXPECT_THAT(run.err, HasSubstr("poll 2: pending 50%"));
  EXPECT_THAT(run.err, HasSubstr("poll 3: succeeded 100%"));
  EXPECT_EQ(request_lines(server.log()),
            (strings{"PUT /azure/resources/r1", "GET /azure/operations/op-1", "GET /azure/operations/op-1",
                     "GET /azure/operations/op-1", "GET /azure/resources/r1"}));
  EXPECT_EQ(server.jobs().at("azure_jobs"), 1);
}

TEST(AzureDialect, TheFirstPollWaitsForTheSubmitAnswersRetryAfter) {
  loopback_server server;  // Retry-After: 1 (the server's default)
  const child_result run = run_cli(azure_args(server, {{"steps", 1}}));

  EXPECT_EXIT_CODE(run, 0);
  const json log = server.log();
  const double submitted = jobpoll_test::arrival_of(log, "PUT /azure/resources/r1");
  const double first_poll = jobpoll_test::arrival_of(log, "GET /azure/operations/op-1");
  // The interval is 50 ms: only the 201's Retry-After makes the wait 1 s.
  EXPECT_GE(first_poll - submitted, 1.0) << log.dump();
  EXPECT_LT(first_poll - submitted, 5.0) << log.dump();
  EXPECT_EQ(count_of(request_lines(log), "GET /azure/operations/op-1"), 2);
}

TEST(AzureDialect, FailureExits1WithTheErrorMessage) {
  loopback_server server;
  no_retry_after(server);
  const child_result run = run_cli(azure_args(server, {{"steps", 1}, {"outcome", "fail"}}));

  EXPECT_EXIT_CODE(run, 1);
  EXPECT_THAT(run.out, HasSubstr("\"status\":\"Failed\""));
  EXPECT_THAT(run.err, HasSubstr("simulated failure"));
  const strings log = request_lines(server.log());
  EXPECT_EQ(count_of(log, "GET /azure/resources/r1"), 0);  // no result fetched for a failed job
  EXPECT_EQ(count_of(log, "PUT /azure/resources/r1"), 1);
}

TEST(AzureDialect, SigintDeletesTheOperationAndExits4) {
  loopback_server server;
  no_retry_after(server);
  child_process cli(cli_command(azure_args(server, {{"steps", 100000}})));
  const child_result run = jobpoll_test::signal_after_polls(cli, server, "GET /azure/operations/op-1", SIGINT);

  EXPECT_EXIT_CODE(run, 4);
  EXPECT_EQ(run.out, "");
  const strings log = request_lines(server.log());
  EXPECT_EQ(count_of(log, "PUT /azure/resources/r1"), 1);
  EXPECT_EQ(last_of(log), "DELETE /azure/operations/op-1");
  EXPECT_EQ(server.jobs().at("jobs").at(0).at("status"), "Canceled");
}

TEST(AzureDialect, TimeoutDeletesTheOperationAndExits2) {
  loopback_server server;
  no_retry_after(server);
  const child_result run = run_cli(with(azure_args(server, {{"steps", 100000}}), {"--timeout", "300ms"}));

  EXPECT_EXIT_CODE(run, 2);
  EXPECT_THAT(run.err, HasSubstr("remote cancel sent (HTTP 202"));
  expect_cancel_at_the_deadline(server.log(), "PUT /azure/resources/r1", "DELETE /azure/operations/op-1", 0.3);
  const strings log = request_lines(server.log());
  EXPECT_EQ(last_of(log), "DELETE /azure/operations/op-1");
  EXPECT_EQ(server.jobs().at("jobs").at(0).at("status"), "Canceled");
}

TEST(AzureDialect, Preset) {
  loopback_server server;
  no_retry_after(server);
  // Its params: base, name; the body {} (the server's default of 3 steps).
  const child_result run = run_cli(with(
      {"--describe", preset("azure_async.json"), "--param", "base=" + server.base_url(), "--param", "name=disk1"},
      quick));

  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "{\"name\":\"disk1\",\"properties\":{\"provisioningState\":\"Succeeded\",\"size\":1}}\n");
  EXPECT_THAT(run.err, HasSubstr("poll 2: pending 33%"));
  EXPECT_EQ(request_lines(server.log()),
            (strings{"PUT /azure/resources/disk1", "GET /azure/operations/op-1", "GET /azure/operations/op-1",
                     "GET /azure/operations/op-1", "GET /azure/operations/op-1", "GET /azure/resources/disk1"}));
}

// --- the reporting export of seed 001: load-job -> hash; get-job-data, paged --------

strings export_args(const loopback_server& server) {
  return with({"--submit", server.url("/transaction/load-job?startDate={start}&endDate={end}&site={site}"),
               "--param", "start=1591040159", "--param", "end=1591126559", "--param", "site=MAIN",
               "--handle-pointer", "/data/hash", "--poll", "/transaction/get-job-data?hash={handle}",
               "--status-pointer", "/data/status", "--success", "pass", "--failure", "fail", "--pending", "working",
               "--failure-detail-pointer", "/data/message", "--page-url",
               "/transaction/get-job-data?hash={handle}&offset={offset}&limit={limit}", "--items-pointer",
               "/data/data", "--total-pointer", "/data/total", "--page-size", "10", "--first-page-in-poll",
               "--rate", "20/15s"},
              quick);
}

TEST(ExportDialect, CollectsEveryPageInOrder) {
  loopback_server server;
  server.configure({{"total", 35}, {"page_limit", 10}, {"working_polls", 2}});
  const child_result run = run_cli(export_args(server));

  json items = json::array();
  for (int i = 0; i < 35; ++i)
    items.push_back({{"id", "tx-" + std::to_string(i)}, {"number", i}, {"type", "Sale"}, {"total", 10.5 + i}});
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, items.dump() + "\n");
  const std::string hash = server.jobs().at("jobs").at(0).at("id");
  const std::string poll = "GET /transaction/get-job-data?hash=" + hash;
  EXPECT_EQ(request_lines(server.log()),
            (strings{"POST /transaction/load-job?startDate=1591040159&endDate=1591126559&site=MAIN", poll, poll, poll,
                     poll + "&offset=10&limit=10", poll + "&offset=20&limit=10", poll + "&offset=30&limit=10"}));
  EXPECT_EQ(server.jobs().at("load_jobs"), 1);
}

TEST(ExportDialect, ThePresetCollectsEveryPage) {
  loopback_server server;
  server.configure({{"total", 12}, {"page_limit", 10}, {"working_polls", 1}});
  const child_result run = run_cli(with({"--describe", preset("reporting_export.json"), "--param",
                                         "base=" + server.base_url(), "--param", "start=1591040159", "--param",
                                         "end=1591126559", "--param", "site=MAIN"},
                                        quick));
  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(json::parse(run.out).size(), 12u);
  EXPECT_EQ(server.jobs().at("load_jobs"), 1);
  EXPECT_EQ(request_lines(server.log()).size(), 4u);  // submit, two polls, the second page
}

TEST(ExportDialect, FailureExits1WithTheReportsMessage) {
  loopback_server server;
  server.configure({{"outcome", "fail"}, {"working_polls", 1}});
  const child_result run = run_cli(export_args(server));

  EXPECT_EXIT_CODE(run, 1);
  EXPECT_THAT(run.out, HasSubstr("\"message\":\"report failed\""));
  EXPECT_THAT(run.err, HasSubstr("report failed"));
  const strings log = request_lines(server.log());
  EXPECT_EQ(log.size(), 3u);  // the submit and two polls: no page after a failure
  EXPECT_EQ(server.jobs().at("load_jobs"), 1);
}

TEST(ExportDialect, SigintExits4WithoutACancelRequest) {
  loopback_server server;
  server.configure({{"working_polls", 100000}});
  child_process cli(cli_command(export_args(server)));
  cli.wait_until([&] { return request_lines(server.log()).size() >= 2 && cli.err().find("poll 1:") != std::string::npos; },
                 "the first get-job-data");
  cli.send(SIGINT);
  const child_result run = cli.finish();

  EXPECT_EXIT_CODE(run, 4);
  // The API has no cancel: nothing but the submit and the polls.
  const strings log = request_lines(server.log());
  for (std::size_t i = 1; i < log.size(); ++i)
    EXPECT_THAT(log[i], testing::StartsWith("GET /transaction/get-job-data?hash=")) << i;
}

// --- Google long-running operations: POST -> {"name", "done": false}; GET; :cancel ---

strings lro_args(const loopback_server& server, const json& body) {
  return with({"--submit", server.url("/v1/lro/operations"), "--data", body.dump(), "--handle-pointer", "/name",
               "--poll", "/v1/lro/{+handle}", "--status-pointer", "/done", "--success", "true", "--pending", "false",
               "--failure-if-present", "/error", "--failure-detail-pointer", "/error/message", "--progress-pointer",
               "/metadata/progressPercent", "--progress-scale", "100", "--result-pointer", "/response",
               "--cancel-url", "/v1/lro/{+handle}:cancel", "--cancel-method", "POST"},
              quick);
}

TEST(LroDialect, SucceedsWithProgress) {
  loopback_server server;
  const child_result run = run_cli(lro_args(server, {{"steps", 3}, {"result", "42 rows"}}));

  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "{\"result\":\"42 rows\"}\n");
  EXPECT_THAT(run.err, HasSubstr("submitted: handle operations/1\n"));
  EXPECT_THAT(run.err, HasSubstr("poll 1: pending 33%"));
  EXPECT_THAT(run.err, HasSubstr("poll 2: pending 66%"));
  EXPECT_THAT(run.err, HasSubstr("poll 3: succeeded 100%"));
  EXPECT_EQ(request_lines(server.log()), (strings{"POST /v1/lro/operations", "GET /v1/lro/operations/1",
                                                  "GET /v1/lro/operations/1", "GET /v1/lro/operations/1"}));
  EXPECT_EQ(server.jobs().at("lro_jobs"), 1);
}

TEST(LroDialect, DoneWithAnErrorIsAFailureThatExits1) {
  loopback_server server;
  const child_result run = run_cli(lro_args(server, {{"steps", 2}, {"outcome", "fail"}}));

  EXPECT_EXIT_CODE(run, 1);
  EXPECT_THAT(run.out, HasSubstr("\"error\":{\"code\":13,\"message\":\"internal: simulated failure\"}"));
  EXPECT_THAT(run.err, HasSubstr("internal: simulated failure"));
  EXPECT_THAT(run.err, Not(HasSubstr("has no result")));
  EXPECT_EQ(request_lines(server.log()),
            (strings{"POST /v1/lro/operations", "GET /v1/lro/operations/1", "GET /v1/lro/operations/1"}));
}

TEST(LroDialect, SigintPostsCancelAndExits4) {
  loopback_server server;
  child_process cli(cli_command(lro_args(server, {{"steps", 100000}})));
  const child_result run = jobpoll_test::signal_after_polls(cli, server, "GET /v1/lro/operations/1", SIGINT);

  EXPECT_EXIT_CODE(run, 4);
  EXPECT_EQ(run.out, "");
  EXPECT_THAT(run.err, HasSubstr("remote cancel sent (HTTP 200"));
  const strings log = request_lines(server.log());
  EXPECT_EQ(count_of(log, "POST /v1/lro/operations"), 1);
  EXPECT_EQ(last_of(log), "POST /v1/lro/operations/1:cancel");
  EXPECT_EQ(server.jobs().at("jobs").at(0).at("status"), "cancelled");
}

TEST(LroDialect, TimeoutPostsCancelAndExits2) {
  loopback_server server;
  const child_result run = run_cli(with(lro_args(server, {{"steps", 100000}}), {"--timeout", "300ms"}));

  EXPECT_EXIT_CODE(run, 2);
  expect_cancel_at_the_deadline(server.log(), "POST /v1/lro/operations", "POST /v1/lro/operations/1:cancel", 0.3);
  const strings log = request_lines(server.log());
  EXPECT_EQ(last_of(log), "POST /v1/lro/operations/1:cancel");
  EXPECT_EQ(count_of(log, "POST /v1/lro/operations/1:cancel"), 1);
  EXPECT_EQ(server.jobs().at("jobs").at(0).at("cancelled"), true);
}

TEST(LroDialect, Preset) {
  loopback_server server;
  // Its param: base; the body {} (the server's default of 3 steps).
  const child_result run =
      run_cli(with({"--describe", preset("google_lro.json"), "--param", "base=" + server.base_url()}, quick));

  EXPECT_EXIT_CODE(run, 0);
  EXPECT_EQ(run.out, "{\"result\":\"result of operations/1\"}\n");
  EXPECT_THAT(run.err, HasSubstr("poll 1: pending 33%"));
  EXPECT_EQ(request_lines(server.log()), (strings{"POST /v1/lro/operations", "GET /v1/lro/operations/1",
                                                  "GET /v1/lro/operations/1", "GET /v1/lro/operations/1"}));
}

// --- EBI: form POST /ebi/run -> text id; GET status -> text; GET result text --------

strings ebi_args(const loopback_server& server, const strings& form) {
  strings args = {"--submit", server.url("/ebi/run")};
  for (const auto& field : form) args.insert(args.end(), {"--form", field});
  return with(args, {"--codec", "text", "--handle-pointer", "", "--poll", "/ebi/status/{handle}", "--status-pointer",
                     "", "--success", "FINISHED", "--failure", "FAILURE,ERROR", "--pending", "QUEUED,RUNNING",
                     "--result-url", "/ebi/result/{handle}/out", "--interval", "50ms"});
}

// The job id the server gave its first EBI job.
std::string ebi_id(const loopback_server& server) { return server.jobs().at("jobs").at(0).at("id"); }

TEST(EbiDialect, FormSubmitTextStatusAndTextResult) {
  loopback_server server;
  const child_result run = run_cli(ebi_args(server, {"email=a@b.c", "sequence=ACGT", "steps=2"}));

  EXPECT_EXIT_CODE(run, 0);
  const std::string id = ebi_id(server);
  EXPECT_THAT(id, testing::MatchesRegex("ncbiblast-R[0-9]{8}-000001-0001-p1m"));
  EXPECT_THAT(run.err, HasSubstr("submitted: handle " + id + "\n"));
  EXPECT_THAT(run.err, HasSubstr("poll 1: pending (status \"QUEUED\")\n"));
  EXPECT_THAT(run.err, HasSubstr("poll 2: pending (status \"RUNNING\")\n"));
  EXPECT_THAT(run.err, HasSubstr("poll 3: succeeded"));
  EXPECT_THAT(run.err, HasSubstr("(status \"FINISHED\")\n"));
  const std::string result = jobpoll_test::text_result(run.out);
  EXPECT_THAT(result, HasSubstr("# ncbiblast result of " + id + "\n# query: ACGT (4 letters)\n"));
  EXPECT_THAT(result, HasSubstr("hit 2\tsp|P00002|EXAMPLE2"));

  const json log = server.log();
  EXPECT_EQ(request_lines(log), (strings{"POST /ebi/run", "GET /ebi/status/" + id, "GET /ebi/status/" + id,
                                         "GET /ebi/status/" + id, "GET /ebi/result/" + id + "/out"}));
  // '@' may be sent as is or percent-encoded: both are the same form.
  EXPECT_THAT(log.at(0).at("body").get<std::string>(), testing::MatchesRegex("email=a(%40|@)b\\.c&sequence=ACGT&steps=2"));
  EXPECT_THAT(log.at(0).at("headers").at("Content-Type").get<std::string>(),
              testing::StartsWith("application/x-www-form-urlencoded"));
  EXPECT_EQ(server.jobs().at("ebi_jobs"), 1);
}

TEST(EbiDialect, FailureExits1WithTheStatusText) {
  loopback_server server;
  const child_result run = run_cli(ebi_args(server, {"email=a@b.c", "sequence=ACGT", "steps=1", "outcome=failure"}));

  EXPECT_EXIT_CODE(run, 1);
  EXPECT_THAT(run.out, HasSubstr("FAILURE"));
  EXPECT_THAT(run.err, HasSubstr("FAILURE"));
  const std::string id = ebi_id(server);
  EXPECT_EQ(request_lines(server.log()), (strings{"POST /ebi/run", "GET /ebi/status/" + id, "GET /ebi/status/" + id}));
}

TEST(EbiDialect, AMissingFieldIsRefusedAndSaysWhich) {
  loopback_server server;
  const child_result run = run_cli(ebi_args(server, {"email=a@b.c"}));

  EXPECT_EXIT_CODE(run, 3);
  EXPECT_THAT(run.err, HasSubstr("missing field: sequence"));
  EXPECT_EQ(request_lines(server.log()), (strings{"POST /ebi/run"}));
  EXPECT_EQ(server.jobs().at("jobs").size(), 0u);
}

TEST(EbiDialect, AJsonBodyIsRefusedAsNotAForm) {
  loopback_server server;
  strings args = ebi_args(server, {});
  args.insert(args.begin() + 2, {"--data", R"({"email": "a@b.c", "sequence": "ACGT"})"});
  const child_result run = run_cli(args);

  EXPECT_EXIT_CODE(run, 3);
  EXPECT_THAT(run.err, HasSubstr("expected a form (Content-Type application/x-www-form-urlencoded)"));
  EXPECT_EQ(request_lines(server.log()), (strings{"POST /ebi/run"}));
  EXPECT_EQ(server.jobs().at("jobs").size(), 0u);
}

TEST(EbiDialect, SigintExits4WithoutACancelRequest) {
  loopback_server server;
  child_process cli(cli_command(ebi_args(server, {"email=a@b.c", "sequence=ACGT", "steps=100000"})));
  cli.wait_until([&] { return request_lines(server.log()).size() >= 2 && cli.err().find("poll 1:") != std::string::npos; },
                 "the first status request");
  cli.send(SIGINT);
  const child_result run = cli.finish();

  EXPECT_EXIT_CODE(run, 4);
  const strings log = request_lines(server.log());
  EXPECT_EQ(count_of(log, "POST /ebi/run"), 1);
  for (std::size_t i = 1; i < log.size(); ++i) EXPECT_THAT(log[i], testing::StartsWith("GET /ebi/status/")) << i;
}

TEST(EbiDialect, Preset) {
  loopback_server server;
  const child_result run =
      run_cli(with({"--describe", preset("ebi_dispatcher.json"), "--param", "base=" + server.base_url(), "--param",
                    "email=a@b.c", "--param", "sequence=ACGT"},
                   quick));

  EXPECT_EXIT_CODE(run, 0);
  const std::string id = ebi_id(server);
  EXPECT_THAT(jobpoll_test::text_result(run.out), HasSubstr("# ncbiblast result of " + id + "\n# query: ACGT"));
  // The server's default of 2 steps: QUEUED, RUNNING, FINISHED.
  EXPECT_EQ(request_lines(server.log()), (strings{"POST /ebi/run", "GET /ebi/status/" + id, "GET /ebi/status/" + id,
                                                  "GET /ebi/status/" + id, "GET /ebi/result/" + id + "/out"}));
}

}  // namespace
