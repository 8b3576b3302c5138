// The batch audit log: one NDJSON line per change, written through at
// once, appended by any number of logs on one file, and replayed into the
// job records; a torn last line is ignored, any other bad line refused
// with its number.

#include <jobpoll/batch/audit_log.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using jobpoll::audit_log;
using jobpoll::batch_job;
using jobpoll::batch_job_state;
using jobpoll::job_handle;
using jobpoll_test::read_bytes;
using jobpoll_test::write_bytes;
using namespace std::chrono_literals;

constexpr std::string_view category_suffix = ": invalid batch record";

class AuditLogTest : public ::testing::Test {
 protected:
  /// The file's lines (each with its newline), each parsed with its members in file order.
  std::vector<nlohmann::ordered_json> lines() const {
    std::vector<nlohmann::ordered_json> out;
    std::istringstream in(read_bytes(file));
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::ordered_json::parse(line));
    return out;
  }

  /// The std::system_error `replay_audit_log(file)` throws; the file must be unchanged after it.
  std::system_error replay_error() const {
    return jobpoll_test::system_error_keeping(file, "replay_audit_log", [this] { jobpoll::replay_audit_log(file); });
  }
  std::string line_message(int line, const std::string& rest) const {
    return file.string() + ":" + std::to_string(line) + ": " + rest + std::string(category_suffix);
  }

  const jobpoll_test::temp_dir dir{"jobpoll-audit-"};
  const fs::path file = dir / "batch.audit.ndjson";
};

std::vector<std::string> keys(const nlohmann::ordered_json& object) {
  std::vector<std::string> out;
  for (const auto& item : object.items()) out.push_back(item.key());
  return out;
}

batch_job::wall_time parse_ts(const nlohmann::ordered_json& line) {
  const auto t = jobpoll::detail::parse_utc_ms(line.at("ts").get<std::string>());
  EXPECT_TRUE(t.has_value()) << line.dump();
  return t.value_or(batch_job::wall_time{});
}

batch_job new_job(std::size_t id, std::size_t entry) {
  batch_job job;
  job.id = id;
  job.entry = entry;
  job.params = {{"n", std::to_string(entry)}};
  job.created = std::chrono::system_clock::now();
  return job;
}

// --- writing ---------------------------------------------------------------------

TEST_F(AuditLogTest, EachRecordIsOneLineWithTheDocumentedMembers) {
  const auto before = std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
  {
    audit_log log(file, "nightly");
    EXPECT_EQ(log.path(), file);
    batch_job job = new_job(3, 1);
    job.parent = 1;
    job.attempt = 2;
    job.params = {{"site", "MAIN"}, {"size", "small"}};
    job.override_reason = "smaller size";
    log.record(job, std::nullopt);

    job.state = batch_job_state::running;
    job.handle = job_handle{"h-3", job.params, {}, std::nullopt};
    log.record(job, batch_job_state::submitting);

    job.state = batch_job_state::failed;
    job.error = "job \"h-3\" failed";
    job.error_code = "jobpoll:2";
    job.skipped = true;
    job.skip_reason = "resubmitted as job 4";
    log.record(job, batch_job_state::running, "resubmitted");

    batch_job plain = new_job(1, 0);
    plain.params = {};
    log.record(plain, std::nullopt);
  }
  const auto after = std::chrono::system_clock::now();

  auto got = lines();
  ASSERT_EQ(got.size(), 4u);
  for (auto& line : got) {
    const auto ts = parse_ts(line);
    EXPECT_GE(ts, before);
    EXPECT_LE(ts, after);
    line.erase("ts");
  }
  EXPECT_EQ(keys(got[0]), (std::vector<std::string>{"batch", "job", "entry", "parent", "attempt", "state", "previous",
                                                    "skipped", "params", "override_reason"}));
  EXPECT_EQ(got[0], nlohmann::ordered_json::parse(R"({"batch":"nightly","job":3,"entry":1,"parent":1,"attempt":2,
      "state":"pending","previous":null,"skipped":false,"params":{"site":"MAIN","size":"small"},
      "override_reason":"smaller size"})"));
  EXPECT_EQ(got[1], nlohmann::ordered_json::parse(R"({"batch":"nightly","job":3,"entry":1,"parent":1,"attempt":2,
      "state":"running","previous":"submitting","skipped":false,"handle":"h-3"})"));
  EXPECT_EQ(got[2], nlohmann::ordered_json::parse(R"({"batch":"nightly","job":3,"entry":1,"parent":1,"attempt":2,
      "state":"failed","previous":"running","skipped":true,"skip_reason":"resubmitted as job 4","handle":"h-3",
      "error":"job \"h-3\" failed","error_code":"jobpoll:2","note":"resubmitted"})"));
  EXPECT_EQ(got[3], nlohmann::ordered_json::parse(R"({"batch":"nightly","job":1,"entry":0,"parent":null,"attempt":1,
      "state":"pending","previous":null,"skipped":false,"params":{}})"));
  // "ts" comes first; each line ends with its newline.
  EXPECT_TRUE(read_bytes(file).starts_with("{\"ts\":\""));
  EXPECT_TRUE(read_bytes(file).ends_with("\"params\":{}}\n"));
}

TEST_F(AuditLogTest, ALineIsInTheFileAsSoonAsRecordReturns) {
  audit_log log(file, "b");
  log.record(new_job(1, 0), std::nullopt);
  // A second reader, while the log is still open.
  std::ifstream reader(file);
  std::string line;
  ASSERT_TRUE(std::getline(reader, line));
  EXPECT_EQ(json::parse(line)["job"], 1);
  EXPECT_TRUE(read_bytes(file).ends_with("\n"));
  log.record(new_job(2, 1), std::nullopt);
  reader.clear();
  ASSERT_TRUE(std::getline(reader, line));
  EXPECT_EQ(json::parse(line)["job"], 2);
}

TEST_F(AuditLogTest, LogsOnOneFileAppend) {
  {
    audit_log first(file, "b");
    first.record(new_job(1, 0), std::nullopt);
  }
  {
    // A later run appends after what is there.
    audit_log second(file, "b");
    second.record(new_job(2, 1), std::nullopt);
    // Two logs open at once: lines interleave whole.
    audit_log third(file, "b");
    third.record(new_job(3, 2), std::nullopt);
    second.record(new_job(4, 3), std::nullopt);
  }
  const auto got = lines();
  ASSERT_EQ(got.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(got[i]["job"], i + 1);
}

TEST_F(AuditLogTest, AMovedLogWritesToTheSameFile) {
  audit_log first(file, "b");
  first.record(new_job(1, 0), std::nullopt);
  audit_log moved(std::move(first));
  EXPECT_EQ(moved.path(), file);
  moved.record(new_job(2, 1), std::nullopt);
  audit_log assigned(dir / "other.ndjson", "b");
  assigned = std::move(moved);
  EXPECT_EQ(assigned.path(), file);
  assigned.record(new_job(3, 2), std::nullopt);
  EXPECT_EQ(lines().size(), 3u);
  EXPECT_EQ(read_bytes(dir / "other.ndjson"), "");
}

TEST_F(AuditLogTest, AFileThatCannotBeOpenedIsAnErrorNamingIt) {
  fs::create_directory(file);
  try {
    audit_log log(file, "b");
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::is_a_directory);
    EXPECT_EQ(std::string(e.what()),
              "cannot open audit log " + file.string() + ": " + std::generic_category().message(EISDIR));
  }
  const fs::path nowhere = dir / "missing" / "log.ndjson";
  try {
    audit_log log(nowhere, "b");
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(std::string(e.what()),
              "cannot open audit log " + nowhere.string() + ": " + std::generic_category().message(ENOENT));
  }
}

TEST_F(AuditLogTest, AFailedWriteIsAnErrorNamingTheFile) {
  audit_log log("/dev/full", "b");  // every write fails with ENOSPC
  try {
    log.record(new_job(1, 0), std::nullopt);
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_space_on_device);
    EXPECT_EQ(std::string(e.what()),
              "cannot write to audit log /dev/full: " + std::generic_category().message(ENOSPC));
  }
}

// --- replay ---------------------------------------------------------------------------

TEST_F(AuditLogTest, ReplayRebuildsTheRecordsOfARun) {
  {
    audit_log log(file, "nightly");
    std::vector<batch_job> jobs{new_job(1, 0), new_job(2, 1), new_job(3, 2)};
    for (const auto& job : jobs) log.record(job, std::nullopt);  // lines 1-3
    for (auto& job : jobs) {                                      // lines 4-9
      job.state = batch_job_state::submitting;
      log.record(job, batch_job_state::pending);
      job.handle = job_handle{"h-" + std::to_string(job.id), job.params, {}, 10s};
      job.state = batch_job_state::running;
      log.record(job, batch_job_state::submitting);
    }
    batch_job& failed = jobs[1];
    failed.state = batch_job_state::failed;
    failed.error = "job \"h-2\" failed: HTTP 200, body: {\"status\":\"FAILED\"}";
    failed.error_code = "jobpoll:2";
    log.record(failed, batch_job_state::running);  // line 10

    batch_job child = new_job(4, 1);
    child.parent = 2;
    child.attempt = 2;
    child.params = {{"n", "1"}, {"size", "small"}};
    child.override_reason = "smaller size";
    failed.skipped = true;
    failed.skip_reason = "resubmitted as job 4";
    log.record(failed, batch_job_state::failed, "resubmitted");  // line 11
    log.record(child, std::nullopt);                             // line 12
    child.state = batch_job_state::submitting;
    log.record(child, batch_job_state::pending);  // line 13
    child.handle = job_handle{"h-4", child.params, {}, std::nullopt};
    child.state = batch_job_state::running;
    log.record(child, batch_job_state::submitting);  // line 14
    child.state = batch_job_state::completed;
    log.record(child, batch_job_state::running);  // line 15
    for (auto* job : {&jobs[0], &jobs[2]}) {      // lines 16-17
      job->state = batch_job_state::completed;
      log.record(*job, batch_job_state::running);
    }
  }
  const auto got = lines();
  ASSERT_EQ(got.size(), 17u);
  const auto ts = [&](int line) { return parse_ts(got.at(line - 1)); };

  const auto jobs = jobpoll::replay_audit_log(file);
  ASSERT_EQ(jobs.size(), 4u);
  struct expected {
    std::size_t entry;
    std::optional<std::size_t> parent;
    std::size_t attempt;
    jobpoll::job_params params;
    std::string override_reason;
    batch_job_state state;
    bool skipped;
    std::string skip_reason;
    std::string handle;
    std::string error, error_code;
    int created_line, submitted_line, ended_line;
  };
  const std::vector<expected> want{
      {0, std::nullopt, 1, {{"n", "0"}}, "", batch_job_state::completed, false, "", "h-1", "", "", 1, 5, 16},
      {1, std::nullopt, 1, {{"n", "1"}}, "", batch_job_state::failed, true, "resubmitted as job 4", "h-2",
       "job \"h-2\" failed: HTTP 200, body: {\"status\":\"FAILED\"}", "jobpoll:2", 2, 7, 10},
      {2, std::nullopt, 1, {{"n", "2"}}, "", batch_job_state::completed, false, "", "h-3", "", "", 3, 9, 17},
      {1, 2, 2, {{"n", "1"}, {"size", "small"}}, "smaller size", batch_job_state::completed, false, "", "h-4", "", "",
       12, 14, 15},
  };
  for (std::size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE("job " + std::to_string(i + 1));
    const batch_job& job = jobs[i];
    const expected& w = want[i];
    EXPECT_EQ(job.id, i + 1);
    EXPECT_EQ(job.entry, w.entry);
    EXPECT_EQ(job.parent, w.parent);
    EXPECT_EQ(job.attempt, w.attempt);
    EXPECT_EQ(job.params, w.params);
    EXPECT_EQ(job.override_reason, w.override_reason);
    EXPECT_EQ(job.state, w.state);
    EXPECT_EQ(job.skipped, w.skipped);
    EXPECT_EQ(job.skip_reason, w.skip_reason);
    ASSERT_TRUE(job.handle.has_value());
    EXPECT_EQ(job.handle->id, w.handle);
    EXPECT_EQ(job.handle->params, w.params);
    EXPECT_EQ(job.handle->progress.attempts, 0u);
    EXPECT_EQ(job.handle->remaining, std::nullopt);
    EXPECT_EQ(job.error, w.error);
    EXPECT_EQ(job.error_code, w.error_code);
    EXPECT_EQ(job.created, ts(w.created_line));
    EXPECT_EQ(job.submitted, ts(w.submitted_line));
    EXPECT_EQ(job.ended, ts(w.ended_line));
  }
}

TEST_F(AuditLogTest, ReplayTakesTimesFromTheLinesAndStateFromTheLastLine) {
  write_bytes(file,
              R"({"ts":"2026-11-22T16:00:00.001Z","batch":"b","job":1,"entry":0,"parent":null,"attempt":1,"state":"pending","previous":null,"skipped":false,"params":{"a":"b"}})"
              "\n"
              R"({"ts":"2026-11-22T16:00:01.002Z","batch":"b","job":1,"entry":0,"parent":null,"attempt":1,"state":"running","previous":"submitting","skipped":false,"handle":"h"})"
              "\n"
              R"({"ts":"2026-11-22T16:00:02.003Z","batch":"b","job":1,"entry":0,"parent":null,"attempt":1,"state":"running","previous":"running","skipped":true,"skip_reason":"by hand","handle":"h","error":"slow","note":"x","extra":1})"
              "\n"
              R"({"ts":"2026-11-22T16:00:03.004Z","batch":"b","job":1,"entry":0,"parent":null,"attempt":1,"state":"cancelled","previous":"running","skipped":false,"handle":"h2","error_code":"asio.system:125"})"
              "\n"
              R"({"ts":"2026-11-22T16:00:04.005Z","batch":"b","job":1,"entry":0,"parent":null,"attempt":1,"state":"failed","previous":"cancelled","skipped":false})"
              "\n");
  const auto jobs = jobpoll::replay_audit_log(file);
  ASSERT_EQ(jobs.size(), 1u);
  const batch_job& job = jobs[0];
  using std::chrono::sys_days;
  const auto day = sys_days{std::chrono::year{2026} / 11 / 22} + 16h;
  EXPECT_EQ(job.params, (jobpoll::job_params{{"a", "b"}}));
  EXPECT_EQ(job.state, batch_job_state::failed);
  EXPECT_FALSE(job.skipped);
  EXPECT_EQ(job.skip_reason, "");
  EXPECT_EQ(job.handle, std::nullopt);  // the last line has none
  EXPECT_EQ(job.error, "");
  EXPECT_EQ(job.error_code, "");
  EXPECT_EQ(job.created, day + 1ms);
  EXPECT_EQ(job.submitted, day + 1s + 2ms);
  EXPECT_EQ(job.ended, day + 3s + 4ms);  // the first terminal line
}

const std::string line_1 =
    R"({"ts":"2026-11-22T16:00:00.001Z","batch":"b","job":1,"entry":0,"parent":null,"attempt":1,"state":"pending","previous":null,"skipped":false,"params":{}})";
const std::string line_2 =
    R"({"ts":"2026-11-22T16:00:01.000Z","batch":"b","job":1,"entry":0,"parent":null,"attempt":1,"state":"submitting","previous":"pending","skipped":false})";

TEST_F(AuditLogTest, ASecondCreationLineStartsTheRecordAfresh) {
  // Job 2 was created, failed and resubmitted; the run crashed before its
  // checkpoint had job 2, and the resumed run created job 2 again.
  write_bytes(file,
              line_1 + "\n" +
                  R"({"ts":"2026-11-22T16:00:01.000Z","batch":"b","job":2,"entry":0,"parent":1,"attempt":2,"state":"pending","previous":null,"skipped":false,"params":{"x":"1"}})"
                  "\n"
                  R"({"ts":"2026-11-22T16:00:02.000Z","batch":"b","job":2,"entry":0,"parent":1,"attempt":2,"state":"failed","previous":"running","skipped":false,"handle":"h1","error":"boom"})"
                  "\n"
                  R"({"ts":"2026-11-22T16:00:09.000Z","batch":"b","job":2,"entry":0,"parent":1,"attempt":2,"state":"pending","previous":null,"skipped":false,"params":{"x":"2"}})"
                  "\n");
  const auto jobs = jobpoll::replay_audit_log(file);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[1].state, batch_job_state::pending);
  EXPECT_EQ(jobs[1].params, (jobpoll::job_params{{"x", "2"}}));
  EXPECT_EQ(jobs[1].handle, std::nullopt);
  EXPECT_EQ(jobs[1].error, "");
  EXPECT_EQ(jobs[1].ended, std::nullopt);
}

TEST_F(AuditLogTest, ATornLastLineIsIgnoredByReplayAndCutByTheNextLog) {
  const std::string whole = line_1 + "\n" + line_2 + "\n";
  // A crash in the middle of the third line's write; then one that lost only its newline.
  for (const std::string& torn : {std::string(R"({"ts":"2026-11-22T16:00:0)"), line_2}) {
    SCOPED_TRACE(torn);
    write_bytes(file, whole + torn);
    const auto jobs = jobpoll::replay_audit_log(file);
    ASSERT_EQ(jobs.size(), 1u);
    EXPECT_EQ(jobs[0].state, batch_job_state::submitting);
    EXPECT_EQ(read_bytes(file), whole + torn) << "replay changed the file";

    {
      audit_log log(file, "b");
      EXPECT_EQ(read_bytes(file), whole);
      batch_job job = new_job(1, 0);
      job.state = batch_job_state::failed;
      log.record(job, batch_job_state::submitting);
    }
    const auto after = jobpoll::replay_audit_log(file);
    ASSERT_EQ(after.size(), 1u);
    EXPECT_EQ(after[0].state, batch_job_state::failed);
    EXPECT_EQ(lines().size(), 3u);
  }
  // A file that is nothing but a torn line.
  write_bytes(file, std::string(5000, 'x'));
  EXPECT_TRUE(jobpoll::replay_audit_log(file).empty());
  audit_log log(file, "b");
  EXPECT_EQ(read_bytes(file), "");
}

TEST_F(AuditLogTest, ANumberOutOfRangeIsRefusedNamingTheLineAndByte) {
  for (const std::string member : {"\"job\":1", "\"attempt\":1", "\"entry\":0"}) {
    std::string second = line_2;
    const std::size_t number = second.find(member) + member.size() - 1;
    second.replace(number, 1, "1e999");
    write_bytes(file, line_1 + "\n" + second + "\n");
    const auto e = replay_error();
    EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
    EXPECT_EQ(std::string(e.what()),
              line_message(2, "number overflow parsing '1e999' at byte " + std::to_string(number)));
  }
}

TEST_F(AuditLogTest, NestingDeeperThan512LevelsIsRefusedBeforeParsing) {
  // 511 levels in a member the replay does not read are 512 with the line's object: accepted.
  const std::string shallow_enough = "{\"x\":" + std::string(511, '[') + std::string(511, ']') + "," + line_1.substr(1);
  write_bytes(file, shallow_enough + "\n" + line_2 + "\n");
  EXPECT_EQ(jobpoll::replay_audit_log(file).size(), 1u);

  for (const std::string& deep : {"{\"x\":" + std::string(100'000, '[') + std::string(100'000, ']') + "}",
                                 "{\"x\":" + std::string(100'000, '{')}) {
    write_bytes(file, line_1 + "\n" + deep + "\n" + line_2 + "\n");
    const auto e = replay_error();
    EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
    EXPECT_EQ(std::string(e.what()), line_message(2, "nesting deeper than 512 levels at byte 516"));
  }
}

TEST_F(AuditLogTest, ABadLineBeforeTheLastIsRefusedWithItsNumber) {
  const std::string state_names = "a job state (pending, submitting, running, completed, failed, cancelled or unknown)";
  struct refusal {
    std::string second_line;
    std::string message;
  };
  const std::vector<refusal> refusals{
      {R"({"ts":"2026-11-22T16:00:0)",
       "not a JSON document: parse error at line 1, column 26: syntax error while parsing value - invalid string: "
       "missing closing quote; last read: '\"2026-11-22T16:00:0'"},
      {"", "expected an audit record (a JSON object), got an empty line"},
      {"[1]", "expected an audit record (a JSON object), got [1]"},
      {R"({"ts":"2026-11-22T16:00:01.000Z","batch":"b","job":1,"entry":0,"parent":null,"attempt":1,"previous":"pending","skipped":false})",
       "/state: expected " + state_names + ", got nothing"},
      {R"({"ts":"2026-11-22T16:00:01.000Z","batch":"b","job":1,"entry":0,"parent":null,"attempt":1,"state":"done","previous":"pending","skipped":false})",
       "/state: expected " + state_names + ", got \"done\""},
      {R"({"ts":"2026-11-22 16:00:01","batch":"b","job":1,"entry":0,"parent":null,"attempt":1,"state":"running","previous":"pending","skipped":false})",
       "/ts: expected an ISO-8601 UTC time with milliseconds (YYYY-MM-DDTHH:MM:SS.mmmZ), got \"2026-11-22 16:00:01\""},
      {R"({"ts":"2026-11-22T16:00:01.000Z","batch":"c","job":1,"entry":0,"parent":null,"attempt":1,"state":"running","previous":"pending","skipped":false})",
       "/batch: expected \"b\" (the batch of line 1), got \"c\""},
      {R"({"ts":"2026-11-22T16:00:01.000Z","batch":"b","job":2,"entry":0,"parent":null,"attempt":1,"state":"running","previous":"pending","skipped":false})",
       "/job: expected the id of a job created on an earlier line, got 2"},
      {R"({"ts":"2026-11-22T16:00:01.000Z","batch":"b","job":1,"entry":5,"parent":null,"attempt":1,"state":"running","previous":"pending","skipped":false})",
       "/entry: expected 0 (job 1's entry since its creation at line 1), got 5"},
      {R"({"ts":"2026-11-22T16:00:01.000Z","batch":"b","job":1,"entry":0,"parent":null,"attempt":1,"state":"running","previous":"pending","skipped":true})",
       "/skip_reason: expected a string, got nothing"},
      {R"({"ts":"2026-11-22T16:00:01.000Z","batch":"b","job":2,"entry":0,"parent":null,"attempt":1,"state":"pending","previous":null,"skipped":false})",
       "/params: expected an object of strings, got nothing"},
  };
  for (const auto& [second, message] : refusals) {
    write_bytes(file, line_1 + "\n" + second + "\n" + line_2 + "\n");
    const auto e = replay_error();
    EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
    EXPECT_EQ(std::string(e.what()), line_message(2, message));
  }
}

TEST_F(AuditLogTest, ReplayOfAMissingFileIsAnOsError) {
  try {
    jobpoll::replay_audit_log(file);
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(std::string(e.what()),
              "cannot read audit log " + file.string() + ": " + std::generic_category().message(ENOENT));
  }
}

}  // namespace
