// The `jobpoll` command-line tool, run as a child process against the loopback
// job server: its exit codes, what it prints on stdout and stderr, and the
// requests the server received.

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "cli_runner.hpp"
#include "loopback_server.hpp"
#include "redis_server.hpp"
#include "temp_dir.hpp"

namespace {

using jobpoll::test::loopback_server;
using json = nlohmann::json;
using testing::HasSubstr;

using cli_run = jobpoll_test::child_result;
using jobpoll_test::child_process;

using jobpoll_test::cli_command;
using jobpoll_test::run_cli;
using jobpoll_test::with;
using jobpoll_test::request_lines;

// The /v1 job API of the server, a job of `body`; the handle from Location.
// The value of --data is at index 3.
std::vector<std::string> job_api_args(const loopback_server& server, const json& body, std::string interval = "0") {
  return with({"--submit", server.url("/v1/jobs"), "--data", body.dump(), "--interval", std::move(interval)},
              {"--handle-header", "Location", "--status-pointer", "/status", "--success", "completed", "--failure",
               "failed", "--pending", "pending,running", "--progress-pointer", "/progress", "--failure-detail-pointer",
               "/error", "--result-pointer", "/result", "--cancel-url", "{+handle}"});
}

TEST(Cli, JobApiWithLocationHandlePrintsResult) {
  loopback_server server;
  const json body = {{"tool", "blast"}, {"params", {{"n", 1}}}, {"steps", 2}};
  const cli_run run = run_cli(with(job_api_args(server, body), {"-H", "X-Api-Key: secret"}));

  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "{\"params\":{\"n\":1},\"tool\":\"blast\"}\n");
  EXPECT_THAT(run.err, HasSubstr("submitted: handle /v1/jobs/job-1\n"));
  EXPECT_THAT(run.err, HasSubstr("poll 1: pending 33% (status \"pending\")\n"));
  EXPECT_THAT(run.err, HasSubstr("poll 2: pending 67% (status \"running\")\n"));
  EXPECT_THAT(run.err, HasSubstr("poll 3: succeeded 100% (status \"completed\")\n"));

  const json log = server.log();
  EXPECT_EQ(request_lines(log), (std::vector<std::string>{"POST /v1/jobs", "GET /v1/jobs/job-1", "GET /v1/jobs/job-1",
                                                     "GET /v1/jobs/job-1"}));
  EXPECT_EQ(log.at(0).at("body"), body.dump());
  EXPECT_EQ(log.at(0).at("headers").at("Content-Type"), "application/json");
  for (const auto& entry : log) EXPECT_EQ(entry.at("headers").value("X-Api-Key", ""), "secret") << entry.dump();
}

TEST(Cli, ResultUrlFetchesTheResultWithTheBodyFromAFile) {
  loopback_server server;
  const jobpoll_test::temp_dir dir("jobpoll-cli-");
  const std::filesystem::path path = dir / "body.json";
  const std::string body = R"({"steps": 1, "items": 5})";
  jobpoll_test::write_bytes(path, body);
  std::vector<std::string> args = job_api_args(server, {});
  args[3] = "@" + path.string();  // --data @FILE
  // The result is now in the --result-url answer.
  *(std::find(args.begin(), args.end(), "--result-pointer") + 1) = "/items";
  const cli_run run = run_cli(with(args, {"--result-url", "{+handle}/result?limit=3"}));

  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "[{\"n\":0},{\"n\":1},{\"n\":2}]\n");
  const json log = server.log();
  EXPECT_EQ(request_lines(log), (std::vector<std::string>{"POST /v1/jobs", "GET /v1/jobs/job-1", "GET /v1/jobs/job-1",
                                                     "GET /v1/jobs/job-1/result?limit=3"}));
  EXPECT_EQ(log.at(0).at("body"), body);
}

TEST(Cli, LoadJobCollectsEveryPage) {
  loopback_server server;
  server.configure({{"total", 22}, {"page_limit", 10}});
  const cli_run run = run_cli({"--submit",
                               server.url("/transaction/load-job?startDate={start}&endDate={end}&site={site}"),
                               "--param",
                               "start=1591040159",
                               "--param",
                               "end=1591126559",
                               "--param",
                               "site=MAIN",
                               "--handle-pointer",
                               "/data/hash",
                               "--poll",
                               "/transaction/get-job-data?hash={handle}",
                               "--status-pointer",
                               "/data/status",
                               "--success",
                               "pass",
                               "--failure",
                               "fail",
                               "--pending",
                               "working",
                               "--page-url",
                               "/transaction/get-job-data?hash={handle}&offset={offset}&limit={limit}",
                               "--items-pointer",
                               "/data/data",
                               "--total-pointer",
                               "/data/total",
                               "--page-size",
                               "10",
                               "--first-page-in-poll",
                               "--rate",
                               "20/15s",
                               "--interval",
                               "0"});

  json items = json::array();
  for (int i = 0; i < 22; ++i)
    items.push_back({{"id", "tx-" + std::to_string(i)}, {"number", i}, {"type", "Sale"}, {"total", 10.5 + i}});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, items.dump() + "\n");

  const std::string hash = server.jobs().at("jobs").at(0).at("id");
  EXPECT_THAT(run.err, HasSubstr("submitted: handle " + hash + "\n"));
  const std::string poll = "GET /transaction/get-job-data?hash=" + hash;
  EXPECT_EQ(request_lines(server.log()),
            (std::vector<std::string>{"POST /transaction/load-job?startDate=1591040159&endDate=1591126559&site=MAIN",
                                      poll, poll, poll, poll + "&offset=10&limit=10", poll + "&offset=20&limit=10"}));
}

TEST(Cli, FailedJobExits1WithItsPayload) {
  loopback_server server;
  const cli_run run = run_cli(job_api_args(server, {{"steps", 0}, {"outcome", "failed"}, {"error", "disk full"}}));

  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_EQ(run.out, "{\"error\":\"disk full\",\"job_id\":\"job-1\",\"progress\":0.0,\"status\":\"failed\"}\n");
  EXPECT_THAT(run.err, HasSubstr("polling job \"/v1/jobs/job-1\": job failed after 1 attempt"));
  EXPECT_THAT(run.err, HasSubstr("last: failed (status \"failed\": disk full)"));
  EXPECT_EQ(request_lines(server.log()), (std::vector<std::string>{"POST /v1/jobs", "GET /v1/jobs/job-1"}));
}

TEST(Cli, ZeroTimeoutPollsOnceThenExits2AndCancels) {
  loopback_server server;
  const cli_run run = run_cli(with(job_api_args(server, {{"steps", 1000}}), {"--timeout", "0"}));

  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_EQ(run.out, "");
  EXPECT_THAT(run.err,
              HasSubstr("polling job \"/v1/jobs/job-1\": deadline passed before the job finished after 1 attempt"));
  EXPECT_THAT(run.err, HasSubstr("; remote cancel sent (HTTP 200"));
  EXPECT_EQ(request_lines(server.log()),
            (std::vector<std::string>{"POST /v1/jobs", "GET /v1/jobs/job-1", "DELETE /v1/jobs/job-1"}));
  EXPECT_EQ(server.jobs().at("jobs").at(0).at("cancelled"), true);
}

TEST(Cli, UnknownStatusExits3WithoutCancelling) {
  loopback_server server;
  std::vector<std::string> args = job_api_args(server, {{"steps", 3}});
  // No --pending: the first answer's "pending" is in no list.
  const auto pending = std::find(args.begin(), args.end(), "--pending");
  args.erase(pending, pending + 2);
  const cli_run run = run_cli(args);

  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_EQ(run.out, "");
  EXPECT_THAT(run.err, HasSubstr("unknown status \"pending\" at /status (expected one of: completed | failed)"));
  EXPECT_EQ(request_lines(server.log()), (std::vector<std::string>{"POST /v1/jobs", "GET /v1/jobs/job-1"}));
}

TEST(Cli, ResumePollsAnExistingHandleWithoutSubmitting) {
  loopback_server server;
  ASSERT_EQ(server.request("POST", "/v1/jobs", R"({"steps": 1, "result": {"rows": 3}})").status, 202);
  const cli_run run = run_cli({"--resume", "job-1", "--poll", server.url("/v1/jobs/{handle}"), "--status-pointer",
                               "/status", "--success", "completed", "--pending", "pending", "--result-pointer",
                               "/result", "--interval", "0", "--quiet"});

  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "{\"rows\":3}\n");
  EXPECT_EQ(run.err, "");  // --quiet: no progress lines; resuming: no "submitted:" line
  EXPECT_EQ(request_lines(server.log()),
            (std::vector<std::string>{"POST /v1/jobs", "GET /v1/jobs/job-1", "GET /v1/jobs/job-1"}));
}

TEST(Cli, BadFlagsExit64NamingTheFlagAndValue) {
  // A valid command line, each flag once, which each case changes in one place.
  const std::vector<std::pair<std::string, std::string>> valid = {{"--submit", "http://127.0.0.1:9/v1/jobs"},
                                                                  {"--handle-header", "Location"},
                                                                  {"--status-pointer", "/status"},
                                                                  {"--success", "completed"}};
  struct usage_case {
    std::vector<std::string> change;  // a flag and its value ("": drops a flag of `valid`, or adds it alone)
    std::string message;
  };
  const std::vector<usage_case> cases = {
      {{"--rate", "20per15"}, "jobpoll: --rate: expected N/DURATION like 20/15s, got '20per15'\n"},
      {{"--rate", "0/15s"}, "--rate: expected N/DURATION like 20/15s (N a positive integer), got '0/15s'"},
      {{"--interval", "2x"},
       "--interval: expected a duration like 500ms, 2s, 1.5s or 2m (units: ns, us, ms, s, m, h), got '2x'"},
      {{"--timeout", "soon"}, "--timeout: expected a duration like 500ms, 2s, 1.5s or 2m (units: ns, us, ms, s, m, h), got 'soon'"},
      {{"--retries", "many"}, "--retries: expected a non-negative integer, got 'many'"},
      {{"--unknown", "maybe"}, "--unknown: expected error or pending, got 'maybe'"},
      {{"--status-pointer", "status"}, "--status-pointer: expected a JSON pointer like /data/status"},
      {{"--header", "X-Key secret"}, "--header: expected \"Name: value\", got 'X-Key secret'"},
      {{"--param", "site"}, "--param: expected name=value, got 'site'"},
      {{"--progress-scale", "0"}, "--progress-scale: expected a number > 0"},
      {{"--data", "@/nonexistent/body.json"}, "--data: cannot read file '/nonexistent/body.json'"},
      {{"--submit", "ftp://host/jobs"}, "--submit: expected an http:// or https:// URL, got 'ftp://host/jobs'"},
      {{"--poll", "/jobs/{id}"}, "--poll: URL template \"/jobs/{id}\" uses {id}, which has no value"},
      {{"--pending", "completed"}, "--pending: 'completed' is also listed by --success"},
      {{"--status-pointer", ""}, "--status-pointer is required"},
      {{"--bogus", ""}, "jobpoll: The following argument was not expected: --bogus\n"},
      // The grammar shared with batch_run: durations, rates, counts.
      {{"--interval", "-1s"}, "--interval: expected a duration like 500ms, 2s, 1.5s or 2m (units: ns, us, ms, s, m, h), got '-1s'"},
      {{"--interval", "1.5"},
       "--interval: expected a duration like 500ms, 2s, 1.5s or 2m (units: ns, us, ms, s, m, h), got '1.5'"},
      {{"--interval", ".5s"}, "--interval: expected a duration like 500ms, 2s, 1.5s or 2m (units: ns, us, ms, s, m, h), got '.5s'"},
      {{"--timeout", "1001h"}, "--timeout: expected a duration of at most 1000h, got '1001h'"},
      {{"--initial-delay", "5 s"},
       "--initial-delay: expected a duration like 500ms, 2s, 1.5s or 2m (units: ns, us, ms, s, m, h), got '5 s'"},
      {{"--attempt-timeout", "0"}, "--attempt-timeout: expected a duration > 0 like 500ms or 2s, got '0'"},
      {{"--rate", "20/0"}, "--rate: expected N/DURATION like 20/15s (DURATION > 0 like 500ms, 15s or 1m), got '20/0'"},
      {{"--rate", "20/"}, "--rate: expected N/DURATION like 20/15s (DURATION > 0 like 500ms, 15s or 1m), got '20/'"},
      {{"--rate", "-2/1s"}, "--rate: expected N/DURATION like 20/15s (N a positive integer), got '-2/1s'"},
      {{"--retries", "-1"}, "--retries: expected a non-negative integer, got '-1'"},
      {{"--retries", "1.5"}, "--retries: expected a non-negative integer, got '1.5'"},
      {{"--retries", "99999999999999999999999"},
       "--retries: expected a non-negative integer of at most 18446744073709551615, got '99999999999999999999999'"},
      {{"--page-size", "0"}, "--page-size: expected a positive integer, got '0'"},
      {{"--first-offset", "x"}, "--first-offset: expected a non-negative integer, got 'x'"},
      {{"--success", "completed,,done"},
       "--success: expected a comma-separated list of status values like pass,done, got 'completed,,done'"},
      {{"--method", "PO ST"}, "--method: expected an HTTP method like GET, POST or DELETE, got 'PO ST'"},
      // The new flags.
      {{"--codec", "xml"}, "--codec: expected json, text or auto, got 'xml'"},
      {{"--poll-codec", "yaml"}, "--poll-codec: expected json, text or auto, got 'yaml'"},
      {{"--form", "=ACGT"}, "--form: expected NAME=VALUE with a non-empty name, got '=ACGT'"},
      {{"--form", "sequence"}, "--form: expected NAME=VALUE, got 'sequence'"},
      {{"--form", "q={query}"}, "--form: body template \"{query}\" uses {query}, which has no value"},
      {{"--failure-if-present", "error"}, "--failure-if-present: expected a JSON pointer like /data/status"},
      {{"--success-if-present", "~2"}, "--success-if-present: expected a JSON pointer like /data/status"},
      {{"--result-field", "location"}, "--result-field: expected NAME=POINTER, got 'location'"},
      {{"--result-field", "location=resourceLocation"},
       "--result-field: expected NAME=POINTER with a JSON pointer like /resourceLocation, got "
       "'location=resourceLocation'"},
      {{"--result-field", "1st=/a"}, "--result-field: expected NAME=POINTER with a name of letters"},
      {{"--result-field", "location=/resourceLocation"},
       "--result-field needs --result-url or --page-url (the request whose placeholders it fills)"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args;
    bool replaced = false;
    for (const auto& [flag, value] : valid) {
      if (flag == c.change[0]) {
        replaced = true;
        if (c.change[1].empty()) continue;
        args.insert(args.end(), {flag, c.change[1]});
      } else {
        args.insert(args.end(), {flag, value});
      }
    }
    if (!replaced) {
      args.push_back(c.change[0]);
      if (!c.change[1].empty()) args.push_back(c.change[1]);
    }
    const cli_run run = run_cli(args);
    EXPECT_EQ(run.exit_code, 64) << c.change[0] << " " << c.change[1] << ": " << run.err;
    EXPECT_EQ(run.out, "") << c.change[0];
    EXPECT_THAT(run.err, HasSubstr(c.message)) << c.change[0];
    EXPECT_THAT(run.err, HasSubstr("Run with --help for more information.")) << c.change[0];
  }
}

// Usage errors of flag combinations, each on a command line of its own.
TEST(Cli, NewFlagCombinationsExit64) {
  const std::vector<std::string> base = {"--submit",       "http://127.0.0.1:9/v1/jobs", "--handle-pointer", "/id",
                                         "--poll",         "/v1/jobs/{handle}"};
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--status-pointer", "/status", "--success", "done", "--data", "{}", "--form", "a=b"},
       "jobpoll: --data and --form: give one of them (the submit body is JSON text or a form), got both\n"},
      {{"--success-if-present", "/response", "--success", "done"}, "jobpoll: --success needs --status-pointer\n"},
      {{"--failure-if-present", "/error"}, "jobpoll: --status-pointer is required"},
      {{"--status-pointer", "/status", "--success", "done", "--param", "file=x", "--result-url", "/files/{file}",
        "--result-field", "file=/output_file_id"},
       "jobpoll: --result-field: 'file' is already given by --param, got 'file=/output_file_id'\n"},
      {{"--status-pointer", "/status", "--success", "done", "--result-url", "/{+offset}", "--result-field",
        "offset=/o"},
       "jobpoll: --result-field: 'offset' is already set by jobpoll itself, got 'offset=/o'\n"},
      {{"--status-pointer", "/status", "--success", "done", "--result-url", "{+location}", "--result-field",
        "location=/a", "--result-field", "location=/b"},
       "jobpoll: --result-field: 'location' given twice, got 'location=/b'\n"},
      {{"--status-pointer", "/status", "--success", "done", "--result-url", "{+location}"},
       "jobpoll: --result-url: URL template \"{+location}\" uses {+location}, which has no value"},
  };
  for (const auto& [more, message] : cases) {
    std::vector<std::string> args = base;
    args.insert(args.end(), more.begin(), more.end());
    const cli_run run = run_cli(args);
    EXPECT_EQ(run.exit_code, 64) << message << ": " << run.err;
    EXPECT_EQ(run.out, "") << message;
    EXPECT_THAT(run.err, HasSubstr(message));
  }
  // --form needs --submit, like --data.
  const cli_run resumed = run_cli({"--resume", "job-1", "--poll", "http://127.0.0.1:9/v1/jobs/{handle}",
                                   "--status-pointer", "/status", "--success", "done", "--form", "a=b"});
  EXPECT_EQ(resumed.exit_code, 64) << resumed.err;
  EXPECT_THAT(resumed.err, HasSubstr("jobpoll: --form needs --submit\n"));
}

// The names of --result-field fill the result URL: Azure's resourceLocation.
TEST(Cli, ResultFieldFetchesTheResultAtAUrlOfTheFinalAnswer) {
  loopback_server server;
  const cli_run run = run_cli({"--submit", server.url("/azure/resources/disk1"), "--method", "PUT", "--data",
                               R"({"steps": 1, "size": 7})", "--handle-header", "Operation-Location",
                               "--status-pointer", "/status", "--success", "Succeeded", "--failure",
                               "Failed,Canceled", "--pending", "NotStarted,Running", "--result-url", "{+location}",
                               "--result-field", "location=/resourceLocation", "--result-pointer",
                               "/properties/size", "--interval", "0", "--quiet"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "7\n");
  const auto log = request_lines(server.log());
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back(), "GET /azure/resources/disk1");
}

// A form submit and text answers (--codec text): the result is a JSON string.
TEST(Cli, FormSubmitWithTextCodecPrintsTheResultAsAJsonString) {
  loopback_server server;
  const cli_run run = run_cli({"--submit", server.url("/ebi/run"), "--form", "email=me@example.org", "--form",
                               "sequence={seq}", "--param", "seq=ACGT TT", "--form", "steps=1", "--codec", "text",
                               "--handle-pointer", "", "--poll", "/ebi/status/{handle}", "--status-pointer", "",
                               "--success", "FINISHED", "--failure", "FAILURE", "--pending", "QUEUED,RUNNING",
                               "--result-url", "/ebi/result/{handle}/out", "--interval", "0", "--quiet"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  const json result = json::parse(run.out);
  ASSERT_TRUE(result.is_string()) << run.out;
  EXPECT_THAT(result.get<std::string>(), HasSubstr("ACGT TT"));
  const json log = server.log();
  EXPECT_EQ(log.at(0).at("body"), "email=me%40example.org&sequence=ACGT%20TT&steps=1");
  EXPECT_EQ(log.at(0).at("headers").at("Content-Type"), "application/x-www-form-urlencoded");
}

// Google LRO: done true with an error is a failure (exit 1, the detail shown).
TEST(Cli, FailureIfPresentEndsADoneOperationWithAnErrorAsFailed) {
  loopback_server server;
  const cli_run run = run_cli({"--submit", server.url("/v1/lro/operations"), "--data",
                               R"({"steps": 1, "outcome": "fail"})", "--handle-pointer", "/name", "--poll",
                               "/v1/lro/{+handle}", "--status-pointer", "/done", "--success", "true", "--pending",
                               "false", "--failure-if-present", "/error", "--failure-detail-pointer",
                               "/error/message", "--result-pointer", "/response", "--interval", "0", "--quiet"});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_THAT(run.out, HasSubstr("\"error\":{\"code\":13"));
  EXPECT_THAT(run.err, HasSubstr("internal: simulated failure"));
}

// A rules-only status: --success-if-present without --status-pointer.
TEST(Cli, SuccessIfPresentAloneClassifiesWithRulesOnly) {
  loopback_server server;
  const cli_run run = run_cli({"--submit", server.url("/v1/lro/operations"), "--data", R"({"steps": 2})",
                               "--handle-pointer", "/name", "--poll", "/v1/lro/{+handle}", "--success-if-present",
                               "/response", "--failure-if-present", "/error", "--unknown", "pending",
                               "--result-pointer", "/response/result", "--interval", "0", "--quiet"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "\"result of operations/1\"\n");
}

// A fractional duration, as batch_run reads it too.
TEST(Cli, FractionalDurationsAreAccepted) {
  loopback_server server;
  const cli_run run = run_cli(with(job_api_args(server, {{"steps", 1}}, "0.05s"), {"--timeout", "1.5s"}));
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.err, HasSubstr("waiting 0.050s (interval)\n"));
}

// A description file for the /v1 job API of the server, with {base} and {steps}.
constexpr std::string_view job_api_file = R"json({
  "submit": {"method": "POST", "url": "{+base}/v1/jobs", "body": "{\"steps\": {steps}}"},
  "handle": {"pointer": "/job_id"},
  "poll": {"url": "{+base}/v1/jobs/{handle}"},
  "status": {"pointer": "/status", "succeeded": ["completed"], "failed": ["failed"],
             "pending": ["pending", "running"], "progress": {"pointer": "/progress"}},
  "result": {"pointer": "/result"},
  "cancel": {"method": "DELETE", "url": "{+base}/v1/jobs/{handle}"}
})json";

TEST(Cli, DescribeRunsTheJobOfAFileWithParamsAndHeaders) {
  loopback_server server;
  const jobpoll_test::temp_dir dir("jobpoll-cli-");
  const std::filesystem::path file = dir / "jobs.json";
  jobpoll_test::write_bytes(file, std::string(job_api_file));
  const cli_run run = run_cli({"--describe", file.string(), "--param", "base=" + server.url(""), "--param",
                               "steps=1", "-H", "X-Api-Key: secret", "--interval", "0", "--quiet"});

  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "{\"params\":{},\"tool\":null}\n");
  const json log = server.log();
  EXPECT_EQ(request_lines(log), (std::vector<std::string>{"POST /v1/jobs", "GET /v1/jobs/job-1", "GET /v1/jobs/job-1"}));
  EXPECT_EQ(log.at(0).at("body"), "{\"steps\": 1}");
  for (const auto& entry : log) EXPECT_EQ(entry.at("headers").value("X-Api-Key", ""), "secret") << entry.dump();

  // Resuming needs no value for the submit body's placeholders.
  const cli_run resumed = run_cli({"--describe", file.string(), "--param", "base=" + server.url(""), "--resume",
                                   "job-1", "--interval", "0", "--quiet"});
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(resumed.out, run.out);
}

TEST(Cli, DescribeRefusesTheFlagsThatDescribeTheJobAndBadFiles) {
  const jobpoll_test::temp_dir dir("jobpoll-cli-");
  const std::filesystem::path file = dir / "jobs.json";
  jobpoll_test::write_bytes(file, std::string(job_api_file));
  const std::vector<std::string> base = {"--describe", file.string(), "--param", "base=http://127.0.0.1:9",
                                         "--param", "steps=1"};
  // Each flag that describes the job, with a value its grammar accepts.
  const std::vector<std::vector<std::string>> flags = {
      {"--submit", "http://127.0.0.1:9/v1/jobs"}, {"--method", "PUT"}, {"--data", "{}"}, {"--form", "a=b"},
      {"--handle-pointer", "/id"}, {"--handle-header", "Location"}, {"--poll", "/x/{handle}"},
      {"--status-pointer", "/s"}, {"--success", "ok"}, {"--failure", "bad"}, {"--pending", "wait"},
      {"--failure-if-present", "/error"}, {"--success-if-present", "/response"}, {"--unknown", "pending"},
      {"--progress-pointer", "/p"}, {"--progress-scale", "100"}, {"--hint-pointer", "/eta"},
      {"--failure-detail-pointer", "/error"}, {"--result-pointer", "/r"}, {"--result-url", "/r"},
      {"--result-field", "a=/a"}, {"--page-url", "/p"}, {"--items-pointer", "/i"}, {"--total-pointer", "/t"},
      {"--page-size", "10"}, {"--first-offset", "1"}, {"--first-page-in-poll"}, {"--cancel-url", "/c"},
      {"--cancel-method", "POST"}, {"--codec", "text"}, {"--submit-codec", "text"}, {"--poll-codec", "text"},
      {"--result-codec", "text"}, {"--idempotent-submit"}};
  for (const auto& flag : flags) {
    std::vector<std::string> args = base;
    args.insert(args.end(), flag.begin(), flag.end());
    const cli_run run = run_cli(args);
    EXPECT_EQ(run.exit_code, 64) << flag[0] << ": " << run.err;
    EXPECT_THAT(run.err, HasSubstr("jobpoll: " + flag[0] + ": not with --describe: describe it in " + file.string() +
                                   " instead\n"));
  }

  const std::filesystem::path bad = dir / "bad.json";
  jobpoll_test::write_bytes(bad, R"({"submit": {"url": 5}})");
  const cli_run wrong = run_cli({"--describe", bad.string()});
  EXPECT_EQ(wrong.exit_code, 64) << wrong.err;
  EXPECT_THAT(wrong.err, HasSubstr("jobpoll: --describe: " + bad.string() + ": /submit/url: expected a string, got 5"));
  const cli_run missing = run_cli({"--describe", (dir / "none.json").string()});
  EXPECT_EQ(missing.exit_code, 64) << missing.err;
  EXPECT_THAT(missing.err, HasSubstr("cannot read job description " + (dir / "none.json").string()));
  // A placeholder without a value names the file and the field.
  const cli_run unfilled = run_cli({"--describe", file.string(), "--param", "base=http://127.0.0.1:9"});
  EXPECT_EQ(unfilled.exit_code, 64) << unfilled.err;
  EXPECT_THAT(unfilled.err, HasSubstr(file.string() + ": /submit/body: body template"));
  EXPECT_THAT(unfilled.err, HasSubstr("uses {steps}, which has no value"));
}

// {job_key}: made once by the submit that uses it, printed, sent on every
// request; --idempotent-submit needs it, and only a submit makes one.
TEST(Cli, AKeyedSubmitPrintsItsJobKeyAndIdempotentSubmitNeedsOne) {
  loopback_server server;
  const json body = {{"tool", "blast"}, {"steps", 1}};
  const cli_run run =
      run_cli(with(job_api_args(server, body), {"-H", "Idempotency-Key: {job_key}", "--idempotent-submit"}));
  EXPECT_EQ(run.exit_code, 0) << run.err;
  std::smatch key;
  ASSERT_TRUE(std::regex_search(run.err, key, std::regex("\njob key: ([0-9a-f]{32})\n"))) << run.err;
  const json log = server.log();
  ASSERT_FALSE(log.empty());
  for (const auto& entry : log) EXPECT_EQ(entry.at("headers").value("Idempotency-Key", ""), key[1].str()) << entry.dump();

  const std::vector<std::string> base = {"--submit",       "http://127.0.0.1:9/v1/jobs", "--handle-pointer", "/id",
                                         "--status-pointer", "/status", "--success", "done"};
  const cli_run unkeyed = run_cli(with(base, {"--poll", "/v1/jobs/{handle}", "--idempotent-submit"}));
  EXPECT_EQ(unkeyed.exit_code, 64) << unkeyed.err;
  EXPECT_THAT(unkeyed.err, HasSubstr("jobpoll: --idempotent-submit: the submit request does not use {job_key}"));
  const cli_run poll_only = run_cli(with(base, {"--poll", "/v1/jobs/{handle}?ref={job_key}"}));
  EXPECT_EQ(poll_only.exit_code, 64) << poll_only.err;
  EXPECT_THAT(poll_only.err, HasSubstr("jobpoll: {job_key} in the request GET /v1/jobs/{handle}?ref={job_key}: only "
                                       "a submit that uses {job_key} makes one; give --param job_key=KEY\n"));
}

TEST(Cli, HelpDocumentsEveryFlagTheExitCodesAndExamples) {
  const cli_run run = run_cli({"--help"});
  ASSERT_EQ(run.exit_code, 0) << run.err;

  // The option names at the start of each option line ("  -H,--header HEADER ...").
  std::set<std::string> documented;
  std::istringstream lines(run.out);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("  -")) continue;
    std::string names = line.substr(2, line.find(' ', 2) - 2);
    for (std::size_t start = 0; start <= names.size();) {
      const auto comma = std::min(names.find(',', start), names.size());
      documented.insert(names.substr(start, comma - start));
      start = comma + 1;
    }
  }
  const std::set<std::string> flags = {"-h",
                                       "--help",
                                       "--submit",
                                       "--method",
                                       "--data",
                                       "-H",
                                       "--header",
                                       "--param",
                                       "--handle-pointer",
                                       "--handle-header",
                                       "--poll",
                                       "--status-pointer",
                                       "--success",
                                       "--failure",
                                       "--pending",
                                       "--unknown",
                                       "--progress-pointer",
                                       "--progress-scale",
                                       "--hint-pointer",
                                       "--failure-detail-pointer",
                                       "--result-pointer",
                                       "--result-url",
                                       "--page-url",
                                       "--items-pointer",
                                       "--total-pointer",
                                       "--page-size",
                                       "--first-offset",
                                       "--first-page-in-poll",
                                       "--cancel-url",
                                       "--cancel-method",
                                       "--interval",
                                       "--timeout",
                                       "--initial-delay",
                                       "--attempt-timeout",
                                       "--retries",
                                       "--rate",
                                       "--rate-redis",
                                       "--resume",
                                       "--insecure",
                                       "--quiet",
                                       "--form",
                                       "--failure-if-present",
                                       "--success-if-present",
                                       "--result-field",
                                       "--codec",
                                       "--submit-codec",
                                       "--poll-codec",
                                       "--result-codec",
                                       "--describe",
                                       "--idempotent-submit"};
  EXPECT_EQ(documented, flags);

  for (const char* with_default :
       {"--method METHOD=POST", "--unknown error|pending=error", "--progress-scale N=1", "--page-size N=100",
        "--first-offset N=0", "--cancel-method METHOD=DELETE", "--interval DURATION=2s", "--timeout DURATION=300s",
        "--initial-delay DURATION=0", "--retries N=5", "--codec json|text|auto=json"})
    EXPECT_THAT(run.out, HasSubstr(with_default));
  for (const char* code : {"\n  0   the job succeeded", "\n  1   the job failed", "\n  2   timeout",
                           "\n  3   any other error", "\n  4   cancelled by SIGINT or SIGTERM", "\n  64  usage error"})
    EXPECT_THAT(run.out, HasSubstr(code));
  EXPECT_THAT(run.out, HasSubstr("jobpoll --submit http://127.0.0.1:PORT/v1/jobs"));
  EXPECT_THAT(run.out, HasSubstr("jobpoll --submit 'http://127.0.0.1:PORT/transaction/load-job?"));
}

// Every example of --help, run by a shell as printed (PORT the loopback
// server's, each --interval 0 to keep it quick), succeeds against the job
// server and prints a result.
TEST(Cli, HelpExamplesRunAgainstTheJobServer) {
  const cli_run help = run_cli({"--help"});
  ASSERT_EQ(help.exit_code, 0) << help.err;
  const std::string examples = help.out.substr(help.out.find("\nExamples"));
  std::vector<std::string> commands;
  for (std::size_t at = examples.find("\n  jobpoll "); at != std::string::npos;
       at = examples.find("\n  jobpoll ", at + 1))
    commands.push_back(examples.substr(at + 3, examples.find("\n\n", at) - at - 3));
  ASSERT_EQ(commands.size(), 5u) << examples;

  loopback_server server;
  const std::string origin = server.url("");
  for (std::string command : commands) {
    server.reset();
    command = std::regex_replace(command, std::regex("http://127\\.0\\.0\\.1:PORT"), origin);
    command = std::regex_replace(command, std::regex("--interval [0-9a-z.]+"), "--interval 0");
    command = std::string(JOBPOLL_TEST_CLI) + command.substr(std::string("jobpoll").size());
    const cli_run run = jobpoll_test::run_child({"/bin/sh", "-c", command});
    EXPECT_EQ(run.exit_code, 0) << command << "\n" << run.err;
    EXPECT_THAT(run.out, testing::EndsWith("\n")) << command;
    EXPECT_TRUE(json::accept(run.out)) << command << "\n" << run.out;
    // Ended cleanly: no job is left running on the server.
    const std::set<std::string> succeeded = {"completed", "pass", "succeeded", "Succeeded", "FINISHED"};
    const json jobs = server.jobs();  // held: a range-for keeps only the temporary's member alive, not it
    for (const auto& job : jobs.at("jobs"))
      EXPECT_TRUE(succeeded.contains(job.value("status", ""))) << command << "\n" << job.dump();
  }
}

TEST(Cli, TimeoutEndsAStalledAnswerAtTheDeadlineSayingItWasSlow) {
  loopback_server server;
  // The first poll's answer takes 20 s: the 1 s deadline must end it, not
  // the transport's 30 s default request timeout.
  server.script("GET", "/v1/jobs/job-1", json::array({{{"delay_ms", 20000}}}));
  const cli_run run = run_cli(with(job_api_args(server, {{"steps", 5}}), {"--timeout", "1s"}));

  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_THAT(run.err, HasSubstr("no complete answer to GET " + server.url("/v1/jobs/job-1") +
                                 " in time (the job's deadline): the answer was slow"));
  EXPECT_THAT(run.err, HasSubstr("; remote cancel sent"));
  EXPECT_EQ(request_lines(server.log()),
            (std::vector<std::string>{"POST /v1/jobs", "GET /v1/jobs/job-1", "DELETE /v1/jobs/job-1"}));
}

TEST(Cli, ALimiterWaitIsPrintedWhenItStarts) {
  loopback_server server;
  const cli_run run = run_cli(with(job_api_args(server, {{"steps", 1}}), {"--rate", "2/1s"}));

  EXPECT_EQ(run.exit_code, 0) << run.err;
  // Submit and first poll take the 2 starts; the second poll waits for the
  // window (1 s from the submit's answer, less the time since), and the line
  // says so between the first poll and the second.
  const auto first_poll = run.err.find("poll 1:");
  const auto wait = run.err.find("\nwaiting ", first_poll);
  const auto second_poll = run.err.find("poll 2:");
  ASSERT_NE(second_poll, std::string::npos) << run.err;
  EXPECT_LT(first_poll, wait) << run.err;
  EXPECT_LT(wait, second_poll) << run.err;
  const std::string line = run.err.substr(wait + 1, run.err.find('\n', wait + 1) - wait - 1);
  // At most the window (shown to the millisecond, so 1.000s when the poll
  // followed the submit's answer within half a millisecond).
  EXPECT_THAT(line, testing::MatchesRegex("waiting (0\\.[0-9]{3}|1\\.000)s for the rate limit"));
}

// Two tool processes share one budget through Redis: whatever each sends,
// the server never receives more than 3 requests from both in any second,
// and both jobs end with their results.
TEST(Cli, RateRedisSharesOneBudgetBetweenProcesses) {
  loopback_server server;
  const jobpoll_test::redis_server redis;
  const std::string url = "unix://" + redis.socket_path() + "?key=cli&rate=3/1s&cold_start=full";
  child_process first(cli_command(with(job_api_args(server, {{"steps", 4}}), {"--rate-redis", url})));
  child_process second(cli_command(with(job_api_args(server, {{"steps", 4}}), {"--rate-redis", url})));
  const cli_run a = first.finish();
  const cli_run b = second.finish();
  EXPECT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(b.exit_code, 0) << b.err;
  EXPECT_THAT(a.err, HasSubstr("for the rate limit")) << "the limiter's waits are printed";

  std::vector<double> times;
  for (const json& e : server.log()) times.push_back(e.at("arrived").get<double>());
  std::sort(times.begin(), times.end());
  ASSERT_EQ(times.size(), 12u) << "2 jobs, each a submit and 5 polls";
  for (std::size_t i = 3; i < times.size(); ++i)
    EXPECT_GE(times[i] - times[i - 3], 1.0) << "4 arrivals within 1 s, ending at arrival " << i;
}

TEST(Cli, RateRedisRefusesABadUrlAndTheInProcessRate) {
  loopback_server server;
  const cli_run no_budget = run_cli(with(job_api_args(server, {}), {"--rate-redis", "redis://127.0.0.1/api"}));
  EXPECT_EQ(no_budget.exit_code, 64);
  EXPECT_THAT(no_budget.err, HasSubstr("jobpoll: --rate-redis: expected the budget: rate=N/DURATION (e.g. "
                                       "rate=20/15s) or bucket=N/DURATION&burst=B, got 'redis://127.0.0.1/api'\n"));
  const cli_run both =
      run_cli(with(job_api_args(server, {}), {"--rate", "2/1s", "--rate-redis", "redis://127.0.0.1/api?rate=2/1s"}));
  EXPECT_EQ(both.exit_code, 64);
  EXPECT_THAT(both.err, HasSubstr("excludes"));
  EXPECT_TRUE(server.log().empty());
}

TEST(Cli, SigtermWhilePollingCancelsTheJobAndExits4) {
  loopback_server server;
  child_process cli(cli_command(job_api_args(server, {{"steps", 1000000}}, "100ms")));

  // Signal only once the job is being polled: the server has seen a poll and
  // the tool has printed its answer (so the progress lines are known).
  const std::string first_poll = "poll 1: pending 0% (status \"pending\")\nwaiting 0.100s (interval)\n";
  cli.wait_until(
      [&] {
        const auto polls = request_lines(server.log());
        return std::count(polls.begin(), polls.end(), "GET /v1/jobs/job-1") > 0 &&
               cli.err().find(first_poll) != std::string::npos;
      },
      "first poll");
  cli.send(SIGTERM);
  const cli_run run = cli.finish();

  EXPECT_EQ(run.exit_code, 4) << run.err;
  EXPECT_EQ(run.out, "");
  EXPECT_THAT(run.err, HasSubstr("jobpoll: SIGTERM: cancelling the job\n"));
  EXPECT_THAT(run.err, HasSubstr("; remote cancel sent (HTTP 200"));
  const auto log = request_lines(server.log());
  ASSERT_GE(log.size(), 3u);
  EXPECT_EQ(log.front(), "POST /v1/jobs");
  EXPECT_EQ(log.back(), "DELETE /v1/jobs/job-1");
  EXPECT_EQ(std::count(log.begin(), log.end(), "GET /v1/jobs/job-1"), static_cast<long>(log.size() - 2));
  EXPECT_EQ(server.jobs().at("jobs").at(0).at("cancelled"), true);
}

}  // namespace
