// The `jobpoll` tool, run as a process, against hostile answers from the
// loopback server (its /hostile routes): nesting 100,000 deep, numbers no
// double holds (1e999), huge and countless headers, an HTML error page with
// 200, a body over the tool's response limit, and submit answers that are
// 2xx but hold no handle or cannot be read. Each must end the tool with exit
// 3 and a bounded message that says what was wrong and shows what was
// received, never with a signal; a bad submit answer must say that a job may
// exist on the server.

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
using jobpoll_test::child_result;
using jobpoll_test::count_of;
using jobpoll_test::request_lines;
using jobpoll_test::run_cli;
using jobpoll_test::with;
using json = nlohmann::json;
using strings = std::vector<std::string>;
using testing::AnyOf;
using testing::ContainsRegex;
using testing::HasSubstr;

// However much the server sent, the tool says so in a few lines.
constexpr std::size_t max_stderr_bytes = 4096;

// A normal job whose poll step (GET of the 202's Location) is the hostile
// answer `kind`, sized by `sizes` (the submit body).
strings poll_kind_args(const loopback_server& server, const std::string& kind, const json& sizes = json::object()) {
  return {"--submit",
          server.url("/hostile/" + kind),
          "--data",
          sizes.dump(),
          "--handle-header",
          "Location",
          "--status-pointer",
          "/status",
          "--success",
          "completed",
          "--pending",
          "pending,running",
          "--progress-pointer",
          "/progress",
          "--result-pointer",
          "/result",
          "--interval",
          "50ms",
          "--timeout",
          "20s"};
}

// A submit whose answer is the hostile `kind`; the handle is expected at /job_id.
strings submit_kind_args(const loopback_server& server, const std::string& kind) {
  return {"--submit",   server.url("/hostile/" + kind),
          "--handle-pointer", "/job_id",
          "--poll",     "/hostile/" + kind + "/{handle}",
          "--status-pointer", "/status",
          "--success",  "completed",
          "--pending",  "pending",
          "--interval", "50ms",
          "--timeout",  "20s"};
}

// Exit 3 by exit(), never a signal; nothing on stdout; a bounded stderr.
void expect_clear_error(const child_result& run, const std::string& what) {
  EXPECT_TRUE(run.exited) << what << ": ended by signal " << run.signal << "; stderr: " << run.err.substr(0, 2000);
  EXPECT_EQ(run.signal, 0) << what;
  EXPECT_EQ(run.exit_code, 3) << what << ": " << run.err.substr(0, 2000);
  EXPECT_EQ(run.out, "") << what;
  EXPECT_LT(run.err.size(), max_stderr_bytes) << what << ": " << run.err.substr(0, 2000);
}

// What the tool said about the answer: stderr without the job's URL (whose
// kind, e.g. "huge-header", would match any word the message is checked for).
std::string said(const child_result& run, const std::string& kind) {
  std::string text = run.err;
  const std::string path = "/hostile/" + kind;
  for (auto at = text.find(path); at != std::string::npos; at = text.find(path, at)) text.erase(at, path.size());
  return text;
}

// The hostile job was polled exactly once after one submit: a permanent
// error, not retried, and nothing re-submitted.
void expect_one_submit_one_poll(const loopback_server& server, const std::string& kind) {
  const strings log = request_lines(server.log());
  EXPECT_EQ(log, (strings{"POST /hostile/" + kind, "GET /hostile/" + kind + "/hostile-1"})) << kind;
}

TEST(HostileAnswer, NestingHundredThousandDeepIsADecodeErrorNotACrash) {
  loopback_server server;
  const child_result run = run_cli(poll_kind_args(server, "deep"));

  expect_clear_error(run, "deep");
  EXPECT_THAT(run.err, HasSubstr("nesting deeper than"));
  EXPECT_THAT(run.err, HasSubstr("[[[[[[[["));  // what was received, cut short
  expect_one_submit_one_poll(server, "deep");
}

TEST(HostileAnswer, ADeepStatusValueIsADecodeErrorNotACrash) {
  loopback_server server;
  const child_result run = run_cli(poll_kind_args(server, "deep-status"));

  expect_clear_error(run, "deep-status");
  EXPECT_THAT(run.err, HasSubstr("nesting deeper than"));
  EXPECT_THAT(run.err, HasSubstr("{\"job_id\": \"hostile-1\", \"status\": [[[["));
  expect_one_submit_one_poll(server, "deep-status");
}

TEST(HostileAnswer, AStatusOf1e999IsANumberOverflowError) {
  loopback_server server;
  const child_result run = run_cli(poll_kind_args(server, "bignum-status"));

  expect_clear_error(run, "bignum-status");
  EXPECT_THAT(run.err, HasSubstr("number overflow"));
  EXPECT_THAT(run.err, HasSubstr("\"status\": 1e999"));
  expect_one_submit_one_poll(server, "bignum-status");
}

TEST(HostileAnswer, AProgressOf1e999IsANumberOverflowError) {
  loopback_server server;
  const child_result run = run_cli(poll_kind_args(server, "bignum-progress"));

  expect_clear_error(run, "bignum-progress");
  EXPECT_THAT(run.err, HasSubstr("number overflow"));
  EXPECT_THAT(run.err, HasSubstr("\"progress\": 1e999"));
  expect_one_submit_one_poll(server, "bignum-progress");
}

TEST(HostileAnswer, AHeaderLineOfAMebibyteIsRefusedSayingSo) {
  loopback_server server;
  const child_result run = run_cli(poll_kind_args(server, "huge-header"));

  expect_clear_error(run, "huge-header");
  EXPECT_THAT(said(run, "huge-header"), ContainsRegex("[Hh]eader"));
  expect_one_submit_one_poll(server, "huge-header");
}

TEST(HostileAnswer, TwentyThousandHeadersAreRefusedSayingSo) {
  loopback_server server;
  const child_result run = run_cli(poll_kind_args(server, "many-headers"));

  expect_clear_error(run, "many-headers");
  EXPECT_THAT(said(run, "many-headers"), ContainsRegex("[Hh]eader"));
  expect_one_submit_one_poll(server, "many-headers");
}

TEST(HostileAnswer, A16KibHeaderLineIsWithinBoundsAndTheJobSucceeds) {
  loopback_server server;
  // Larger than most servers send (nginx and Apache stop at 8 KiB), well
  // below any bound a client should set.
  const child_result run = run_cli(poll_kind_args(server, "huge-header", {{"bytes", 16 * 1024}}));

  EXPECT_TRUE(run.exited) << "signal " << run.signal;
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "{\"ok\":true}\n");
  expect_one_submit_one_poll(server, "huge-header");
}

TEST(HostileAnswer, AnHtmlErrorPageWith200IsShownNotParsedAsAStatus) {
  loopback_server server;
  const child_result run = run_cli(poll_kind_args(server, "html"));

  expect_clear_error(run, "html");
  EXPECT_THAT(run.err, HasSubstr("HTTP 200"));
  EXPECT_THAT(run.err, HasSubstr("<!DOCTYPE html>"));
  EXPECT_THAT(run.err, HasSubstr("502 Bad Gateway"));
  expect_one_submit_one_poll(server, "html");
}

TEST(HostileAnswer, AnHtmlErrorPageIsAnErrorWithCodecAutoToo) {
  loopback_server server;
  // By Content-Type the page is text: a string, with no /status in it.
  const child_result run = run_cli(with(poll_kind_args(server, "html"), {"--codec", "auto"}));

  expect_clear_error(run, "html, --codec auto");
  EXPECT_THAT(run.err, AnyOf(HasSubstr("<!DOCTYPE html>"), HasSubstr("502 Bad Gateway")));
  expect_one_submit_one_poll(server, "html");
}

TEST(HostileAnswer, ABodyOverTheResponseLimitIsRefusedNamingTheLimit) {
  loopback_server server;
  const child_result run = run_cli(poll_kind_args(server, "oversized"));

  expect_clear_error(run, "oversized");
  EXPECT_THAT(run.err, HasSubstr("larger than"));
  EXPECT_THAT(run.err, HasSubstr("67108864 bytes"));
  expect_one_submit_one_poll(server, "oversized");
}

// --- submit answers: 2xx, but no handle can be read ----------------------------------

// The one request is the submit: nothing polled, nothing re-sent, and the
// server did create the job the message warns about.
void expect_one_submit_and_a_job(const loopback_server& server, const std::string& kind) {
  EXPECT_EQ(request_lines(server.log()), (strings{"POST /hostile/" + kind})) << kind;
  EXPECT_EQ(server.jobs().at("hostile_jobs"), 1) << kind;
}

TEST(HostileSubmit, NoHandleInA202SaysAJobMayExist) {
  loopback_server server;
  const child_result run = run_cli(submit_kind_args(server, "submit-no-handle"));

  expect_clear_error(run, "submit-no-handle");
  EXPECT_THAT(run.err, HasSubstr("a job may exist on the server"));
  EXPECT_THAT(run.err, HasSubstr("/job_id"));
  EXPECT_THAT(run.err, HasSubstr("job queued"));  // the answer's start
  expect_one_submit_and_a_job(server, "submit-no-handle");
}

TEST(HostileSubmit, AnUndecodable202SaysAJobMayExist) {
  loopback_server server;
  const child_result run = run_cli(submit_kind_args(server, "submit-undecodable"));

  expect_clear_error(run, "submit-undecodable");
  EXPECT_THAT(run.err, HasSubstr("a job may exist on the server"));
  EXPECT_THAT(run.err, HasSubstr("{\"job_id\": \"hostile-1\", \"status\": \"pend"));
  expect_one_submit_and_a_job(server, "submit-undecodable");
}

TEST(HostileSubmit, AnHtml202SaysAJobMayExist) {
  loopback_server server;
  const child_result run = run_cli(submit_kind_args(server, "submit-html"));

  expect_clear_error(run, "submit-html");
  EXPECT_THAT(run.err, HasSubstr("a job may exist on the server"));
  EXPECT_THAT(run.err, HasSubstr("Accepted: your job is queued."));
  expect_one_submit_and_a_job(server, "submit-html");
}

TEST(HostileSubmit, ADeep202IsADecodeErrorThatSaysAJobMayExist) {
  loopback_server server;
  const child_result run = run_cli(submit_kind_args(server, "submit-deep"));

  expect_clear_error(run, "submit-deep");
  EXPECT_THAT(run.err, HasSubstr("a job may exist on the server"));
  EXPECT_THAT(run.err, HasSubstr("nesting deeper than"));
  expect_one_submit_and_a_job(server, "submit-deep");
}

TEST(HostileSubmit, TheHandleHeaderMissingFromA202SaysAJobMayExist) {
  loopback_server server;
  strings args = submit_kind_args(server, "submit-no-handle");
  // --handle-header instead of --handle-pointer, and its default poll URL.
  args.erase(args.begin() + 2, args.begin() + 6);
  args.insert(args.begin() + 2, {"--handle-header", "Location"});
  const child_result run = run_cli(args);

  expect_clear_error(run, "submit-no-handle, --handle-header");
  EXPECT_THAT(run.err, HasSubstr("a job may exist on the server"));
  EXPECT_THAT(run.err, HasSubstr("Location"));
  expect_one_submit_and_a_job(server, "submit-no-handle");
}

}  // namespace
