// The `jobpoll` command-line tool, run as a child process against the loopback
// job server: its exit codes, what it prints on stdout and stderr, and the
// requests the server received.

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <initializer_list>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "loopback_server.hpp"
#include "temp_dir.hpp"

#ifndef JOBPOLL_TEST_CLI
#error "cli_test.cpp needs JOBPOLL_TEST_CLI, the path of the built jobpoll tool (tests/CMakeLists.txt sets it)"
#endif

namespace {

using jobpoll::test::loopback_server;
using json = nlohmann::json;
using testing::HasSubstr;

using cli_run = jobpoll_test::child_result;
using jobpoll_test::child_process;

// The tool's command line: its path, then `args`.
std::vector<std::string> cli_command(std::vector<std::string> args) {
  args.insert(args.begin(), JOBPOLL_TEST_CLI);
  return args;
}

cli_run run_cli(std::vector<std::string> args) { return jobpoll_test::run_child(cli_command(std::move(args))); }

// "METHOD /path?query" of every request the server logged, in order.
std::vector<std::string> requests(const json& log) {
  std::vector<std::string> lines;
  for (const auto& entry : log) {
    std::string line = entry.at("method").get<std::string>() + " " + entry.at("path").get<std::string>();
    if (const auto& query = entry.at("query").get_ref<const std::string&>(); !query.empty()) line += "?" + query;
    lines.push_back(std::move(line));
  }
  return lines;
}

std::vector<std::string> with(std::vector<std::string> args, std::initializer_list<std::string> more) {
  args.insert(args.end(), more);
  return args;
}

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
  EXPECT_EQ(requests(log), (std::vector<std::string>{"POST /v1/jobs", "GET /v1/jobs/job-1", "GET /v1/jobs/job-1",
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
  EXPECT_EQ(requests(log), (std::vector<std::string>{"POST /v1/jobs", "GET /v1/jobs/job-1", "GET /v1/jobs/job-1",
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
  EXPECT_EQ(requests(server.log()),
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
  EXPECT_EQ(requests(server.log()), (std::vector<std::string>{"POST /v1/jobs", "GET /v1/jobs/job-1"}));
}

TEST(Cli, ZeroTimeoutPollsOnceThenExits2AndCancels) {
  loopback_server server;
  const cli_run run = run_cli(with(job_api_args(server, {{"steps", 1000}}), {"--timeout", "0"}));

  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_EQ(run.out, "");
  EXPECT_THAT(run.err,
              HasSubstr("polling job \"/v1/jobs/job-1\": deadline passed before the job finished after 1 attempt"));
  EXPECT_THAT(run.err, HasSubstr("; remote cancel sent (HTTP 200"));
  EXPECT_EQ(requests(server.log()),
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
  EXPECT_EQ(requests(server.log()), (std::vector<std::string>{"POST /v1/jobs", "GET /v1/jobs/job-1"}));
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
  EXPECT_EQ(requests(server.log()),
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
       "--interval: expected a duration like 500ms, 2s, 1.5s or 2m (units: ms, s, m, h), got '2x'"},
      {{"--timeout", "soon"}, "--timeout: expected a duration like 500ms, 2s, 1.5s or 2m, got 'soon'"},
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
                                       "--resume",
                                       "--insecure",
                                       "--quiet"};
  EXPECT_EQ(documented, flags);

  for (const char* with_default :
       {"--method METHOD=POST", "--unknown error|pending=error", "--progress-scale N=1", "--page-size N=100",
        "--first-offset N=0", "--cancel-method METHOD=DELETE", "--interval DURATION=2s", "--timeout DURATION=300s",
        "--initial-delay DURATION=0", "--retries N=5"})
    EXPECT_THAT(run.out, HasSubstr(with_default));
  for (const char* code : {"\n  0   the job succeeded", "\n  1   the job failed", "\n  2   timeout",
                           "\n  3   any other error", "\n  4   cancelled by SIGINT or SIGTERM", "\n  64  usage error"})
    EXPECT_THAT(run.out, HasSubstr(code));
  EXPECT_THAT(run.out, HasSubstr("jobpoll --submit http://127.0.0.1:PORT/v1/jobs"));
  EXPECT_THAT(run.out, HasSubstr("jobpoll --submit 'http://127.0.0.1:PORT/transaction/load-job?"));
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
  EXPECT_EQ(requests(server.log()),
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

TEST(Cli, SigtermWhilePollingCancelsTheJobAndExits4) {
  loopback_server server;
  child_process cli(cli_command(job_api_args(server, {{"steps", 1000000}}, "100ms")));

  // Signal only once the job is being polled: the server has seen a poll and
  // the tool has printed its answer (so the progress lines are known).
  const std::string first_poll = "poll 1: pending 0% (status \"pending\")\nwaiting 0.100s (interval)\n";
  cli.wait_until(
      [&] {
        const auto polls = requests(server.log());
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
  const auto log = requests(server.log());
  ASSERT_GE(log.size(), 3u);
  EXPECT_EQ(log.front(), "POST /v1/jobs");
  EXPECT_EQ(log.back(), "DELETE /v1/jobs/job-1");
  EXPECT_EQ(std::count(log.begin(), log.end(), "GET /v1/jobs/job-1"), static_cast<long>(log.size() - 2));
  EXPECT_EQ(server.jobs().at("jobs").at(0).at("cancelled"), true);
}

}  // namespace
