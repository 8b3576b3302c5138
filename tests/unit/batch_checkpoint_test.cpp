// Batch records as JSON, the input fingerprint, and checkpoints: atomic
// saves, exact round trips, and corrupt or foreign files refused with the
// exact code and message, never modified.

#include <jobpoll/batch/batch_json.hpp>
#include <jobpoll/batch/checkpoint.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using jobpoll::batch_checkpoint;
using jobpoll::batch_entry;
using jobpoll::batch_job;
using jobpoll::batch_job_state;
using jobpoll::job_handle;
using jobpoll_test::read_bytes;
using jobpoll_test::write_bytes;
using namespace std::chrono_literals;

constexpr std::string_view category_suffix = ": invalid batch checkpoint";

/// 2026-11-22T16:00:00.123Z plus `later`.
batch_job::wall_time at(std::chrono::milliseconds later = {}) {
  using namespace std::chrono;
  return sys_days{year{2026} / November / 22} + 16h + 123ms + later;
}

void expect_same(const std::optional<job_handle>& a, const std::optional<job_handle>& b, const std::string& which) {
  ASSERT_EQ(a.has_value(), b.has_value()) << which;
  if (!a) return;
  EXPECT_EQ(a->id, b->id) << which;
  EXPECT_EQ(a->params, b->params) << which;
  EXPECT_EQ(a->progress.attempts, b->progress.attempts) << which;
  EXPECT_EQ(a->progress.consecutive_failures, b->progress.consecutive_failures) << which;
  EXPECT_EQ(a->remaining, b->remaining) << which;
}

void expect_same(const batch_job& a, const batch_job& b) {
  const std::string which = "job " + std::to_string(a.id);
  EXPECT_EQ(a.id, b.id) << which;
  EXPECT_EQ(a.entry, b.entry) << which;
  EXPECT_EQ(a.parent, b.parent) << which;
  EXPECT_EQ(a.attempt, b.attempt) << which;
  EXPECT_EQ(a.params, b.params) << which;
  EXPECT_EQ(a.override_reason, b.override_reason) << which;
  EXPECT_EQ(a.state, b.state) << which;
  EXPECT_EQ(a.skipped, b.skipped) << which;
  EXPECT_EQ(a.skip_reason, b.skip_reason) << which;
  expect_same(a.handle, b.handle, which);
  EXPECT_EQ(a.error, b.error) << which;
  EXPECT_EQ(a.error_code, b.error_code) << which;
  EXPECT_EQ(a.created, b.created) << which;
  EXPECT_EQ(a.submitted, b.submitted) << which;
  EXPECT_EQ(a.ended, b.ended) << which;
}

void expect_same(const batch_checkpoint& a, const batch_checkpoint& b) {
  EXPECT_EQ(a.batch, b.batch);
  EXPECT_EQ(a.fingerprint, b.fingerprint);
  EXPECT_EQ(a.entries, b.entries);
  ASSERT_EQ(a.jobs.size(), b.jobs.size());
  for (std::size_t i = 0; i < a.jobs.size(); ++i) expect_same(a.jobs[i], b.jobs[i]);
}

/// A first attempt with every optional empty and every text empty.
batch_job bare_job(std::size_t id, std::size_t entry) {
  batch_job job;
  job.id = id;
  job.entry = entry;
  job.created = at();
  return job;
}

/// A resubmission with every field set.
batch_job full_job() {
  batch_job job;
  job.id = 2;
  job.entry = 1;
  job.parent = 1;
  job.attempt = 2;
  job.params = {{"site", "MAIN 2/3 \"é\""}, {"day", "2026-11-22"}};
  job.override_reason = "smaller date range";
  job.state = batch_job_state::failed;
  job.skipped = true;
  job.skip_reason = "resubmitted as job 3";
  job.handle = job_handle{"h-42", {{"site", "MAIN 2/3 \"é\""}}, {7, 2}, 1'500'000'001ns};
  job.error = "job \"h-42\" failed: HTTP 200, body: {\"status\":\"FAILED\"}";
  job.error_code = "jobpoll:2";
  job.created = at();
  job.submitted = at(1001ms);
  job.ended = at(86'400'000ms);
  return job;
}

batch_checkpoint full_checkpoint() {
  return {"nightly", "0123456789abcdef", 3, {bare_job(1, 1), full_job()}};
}

/// `file` in a fresh directory (temp_dir.hpp), removed with everything in it.
class CheckpointTest : public ::testing::Test {
 protected:
  /// The std::system_error `load_checkpoint(file)` throws; the file must be unchanged after it.
  std::system_error load_error() const {
    return jobpoll_test::system_error_keeping(file, "load_checkpoint", [this] { jobpoll::load_checkpoint(file); });
  }

  /// Saves the full checkpoint, then rewrites its JSON through `edit`.
  void write_edited(const std::function<void(json&)>& edit) {
    jobpoll::save_checkpoint(file, full_checkpoint());
    json document = json::parse(read_bytes(file));
    edit(document);
    write_bytes(file, document.dump());
  }

  /// The message `load_checkpoint` gives for an invalid field.
  std::string field_message(const std::string& rest) const {
    return file.string() + ": " + rest + std::string(category_suffix);
  }

  const jobpoll_test::temp_dir dir{"jobpoll-checkpoint-"};
  const fs::path file = dir / "batch.checkpoint.json";
};

// --- JSON forms ----------------------------------------------------------------

TEST(BatchJson, ARecordWithEveryFieldSet) {
  EXPECT_EQ(jobpoll::to_json(full_job()), json::parse(R"({
    "id": 2, "entry": 1, "parent": 1, "attempt": 2,
    "params": {"day": "2026-11-22", "site": "MAIN 2/3 \"é\""},
    "override_reason": "smaller date range",
    "state": "failed", "skipped": true, "skip_reason": "resubmitted as job 3",
    "handle": {"id": "h-42", "params": {"site": "MAIN 2/3 \"é\""},
               "progress": {"attempts": 7, "consecutive_failures": 2}, "remaining_ns": 1500000001},
    "error": "job \"h-42\" failed: HTTP 200, body: {\"status\":\"FAILED\"}", "error_code": "jobpoll:2",
    "created": "2026-11-22T16:00:00.123Z", "submitted": "2026-11-22T16:00:01.124Z",
    "ended": "2026-11-23T16:00:00.123Z"})"));
}

TEST(BatchJson, EmptyOptionalsAreNull) {
  EXPECT_EQ(jobpoll::to_json(bare_job(1, 0)), json::parse(R"({
    "id": 1, "entry": 0, "parent": null, "attempt": 1, "params": {}, "override_reason": "",
    "state": "pending", "skipped": false, "skip_reason": "", "handle": null,
    "error": "", "error_code": "", "created": "2026-11-22T16:00:00.123Z", "submitted": null, "ended": null})"));
  EXPECT_EQ(jobpoll::to_json(job_handle{"h", {}, {}, std::nullopt}),
            json::parse(R"({"id": "h", "params": {}, "progress": {"attempts": 0, "consecutive_failures": 0},
                            "remaining_ns": null})"));
}

TEST(BatchJson, ReadsBackWhatItWrites) {
  expect_same(jobpoll::batch_job_from_json(jobpoll::to_json(full_job()), "/jobs/1"), full_job());
  expect_same(jobpoll::batch_job_from_json(jobpoll::to_json(bare_job(1, 0)), "/jobs/0"), bare_job(1, 0));
  const job_handle handle{"h-1", {{"a", "b"}}, {3, 0}, 0ns};
  expect_same(jobpoll::job_handle_from_json(jobpoll::to_json(handle), "/h"), handle, "handle");
}

TEST(BatchJson, TimesAreUtcWithMillisecondsRoundedDown) {
  batch_job job = bare_job(1, 0);
  job.created = at() + 999us;
  EXPECT_EQ(jobpoll::to_json(job)["created"], "2026-11-22T16:00:00.123Z");
  job.created = batch_job::wall_time{} - 1ms;
  EXPECT_EQ(jobpoll::to_json(job)["created"], "1969-12-31T23:59:59.999Z");
  job.created = batch_job::wall_time{};
  EXPECT_EQ(jobpoll::to_json(job)["created"], "1970-01-01T00:00:00.000Z");

  json record = jobpoll::to_json(bare_job(1, 0));
  record["created"] = "2024-02-29T23:59:59.999Z";  // a leap day
  EXPECT_EQ(jobpoll::batch_job_from_json(record, "").created,
            std::chrono::sys_days{std::chrono::year{2024} / 2 / 29} + 24h - 1ms);
}

/// The what() of the std::system_error `batch_job_from_json` throws for `record`.
std::string from_json_error(const json& record) {
  try {
    jobpoll::batch_job_from_json(record, "/jobs/4");
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
    std::string what = e.what();
    EXPECT_TRUE(what.ends_with(category_suffix)) << what;
    return what.substr(0, what.size() - category_suffix.size());
  }
  ADD_FAILURE() << "no std::system_error for " << record.dump();
  return {};
}

TEST(BatchJson, TimesInAnyOtherFormAreRefusedNamingTheFieldAndTheText) {
  const std::string expected = "expected an ISO-8601 UTC time with milliseconds (YYYY-MM-DDTHH:MM:SS.mmmZ)";
  for (const char* text : {"2026-11-22 16:00:00.123Z", "2026-11-22T16:00:00Z", "2026-11-22T16:00:00.123+01:00",
                           "2026-11-22T16:00:00.123z", "2026-02-29T16:00:00.123Z", "2026-11-22T24:00:00.000Z",
                           "2026-11-22T16:60:00.000Z", "2026-11-22T16:00:60.000Z", "2263-01-01T00:00:00.000Z",
                           "1677-01-01T00:00:00.000Z", "２026-11-22T16:00:00.123Z", ""}) {
    json record = jobpoll::to_json(bare_job(1, 0));
    record["created"] = text;
    EXPECT_EQ(from_json_error(record), "/jobs/4/created: " + expected + ", got " + json(text).dump(-1, ' ', true));
  }
  json record = jobpoll::to_json(full_job());
  record["submitted"] = 1763827200123;
  EXPECT_EQ(from_json_error(record), "/jobs/4/submitted: " + expected + " or null, got 1763827200123");
}

TEST(BatchJson, EachFieldIsCheckedWithAMessageNamingItAndTheValue) {
  const auto with = [](const char* key, json value) {
    json record = jobpoll::to_json(full_job());
    record[key] = std::move(value);
    return record;
  };
  const auto without = [](const char* key) {
    json record = jobpoll::to_json(full_job());
    record.erase(key);
    return record;
  };
  EXPECT_EQ(from_json_error(with("id", 0)), "/jobs/4/id: expected an integer >= 1, got 0");
  EXPECT_EQ(from_json_error(with("id", -3)), "/jobs/4/id: expected an integer >= 1, got -3");
  EXPECT_EQ(from_json_error(with("id", 2.0)), "/jobs/4/id: expected an integer >= 1, got 2.0");
  EXPECT_EQ(from_json_error(with("id", "2")), "/jobs/4/id: expected an integer >= 1, got \"2\"");
  EXPECT_EQ(from_json_error(without("entry")), "/jobs/4/entry: expected a non-negative integer, got nothing");
  EXPECT_EQ(from_json_error(with("parent", 0)), "/jobs/4/parent: expected an integer >= 1 or null, got 0");
  EXPECT_EQ(from_json_error(with("attempt", 0)), "/jobs/4/attempt: expected an integer >= 1, got 0");
  EXPECT_EQ(from_json_error(with("params", json::array())), "/jobs/4/params: expected an object of strings, got []");
  EXPECT_EQ(from_json_error(with("params", {{"a/b~c", 5}})), "/jobs/4/params/a~1b~0c: expected a string, got 5");
  EXPECT_EQ(from_json_error(with("override_reason", nullptr)), "/jobs/4/override_reason: expected a string, got null");
  EXPECT_EQ(from_json_error(with("state", "runing")),
            "/jobs/4/state: expected a job state (pending, submitting, running, completed, failed or cancelled), "
            "got \"runing\"");
  EXPECT_EQ(from_json_error(with("skipped", 1)), "/jobs/4/skipped: expected true or false, got 1");
  EXPECT_EQ(from_json_error(without("handle")), "/jobs/4/handle: expected a job handle (a JSON object) or null, got nothing");
  EXPECT_EQ(from_json_error(with("handle", "h-42")), "/jobs/4/handle: expected a job handle (a JSON object), got \"h-42\"");
  EXPECT_EQ(from_json_error(without("created")),
            "/jobs/4/created: expected an ISO-8601 UTC time with milliseconds (YYYY-MM-DDTHH:MM:SS.mmmZ), got nothing");
  // A long value is cut after 100 bytes, without writing the rest.
  EXPECT_EQ(from_json_error(with("error", json::array({std::string(200, 'x')}))),
            "/jobs/4/error: expected a string, got [\"" + std::string(98, 'x') + "...");
  // Non-ASCII and control characters are escaped.
  EXPECT_EQ(from_json_error(with("state", "é\n")),
            "/jobs/4/state: expected a job state (pending, submitting, running, completed, failed or cancelled), "
            "got \"\\u00e9\\n\"");
  EXPECT_EQ(from_json_error(json::array({1})), "/jobs/4: expected a job record (a JSON object), got [1]");
}

TEST(BatchJson, TheHandleIsCheckedField) {
  const auto with = [](const char* key, json value) {
    json record = jobpoll::to_json(full_job());
    record["handle"][key] = std::move(value);
    return record;
  };
  EXPECT_EQ(from_json_error(with("id", "")), "/jobs/4/handle/id: expected a non-empty string, got \"\"");
  EXPECT_EQ(from_json_error(with("id", 42)), "/jobs/4/handle/id: expected a string, got 42");
  EXPECT_EQ(from_json_error(with("remaining_ns", -1)),
            "/jobs/4/handle/remaining_ns: expected a non-negative integer (nanoseconds) or null, got -1");
  EXPECT_EQ(from_json_error(with("remaining_ns", 9223372036854775808ULL)),
            "/jobs/4/handle/remaining_ns: expected a non-negative integer (nanoseconds) or null, got 9223372036854775808");
  EXPECT_EQ(from_json_error(with("progress", {{"attempts", 1}})),
            "/jobs/4/handle/progress/consecutive_failures: expected a non-negative integer, got nothing");
  EXPECT_EQ(from_json_error(with("progress", 3)),
            "/jobs/4/handle/progress: expected a poll progress (a JSON object), got 3");
}

TEST(BatchJson, ARecordMustBeConsistent) {
  const auto edited = [](const std::function<void(batch_job&)>& edit) {
    batch_job job = full_job();
    edit(job);
    return jobpoll::to_json(job);
  };
  EXPECT_EQ(from_json_error(edited([](batch_job& j) { j.parent = 2; })),
            "/jobs/4/parent: expected the id of an earlier job (1 to 1) or null, got 2");
  EXPECT_EQ(from_json_error(edited([](batch_job& j) { j.attempt = 1; })),
            "/jobs/4/attempt: expected an integer >= 2 (a job with a parent is a resubmission), got 1");
  EXPECT_EQ(from_json_error(edited([](batch_job& j) { j.parent.reset(); })),
            "/jobs/4/attempt: expected 1 (a job without a parent is its entry's first attempt), got 2");
  EXPECT_EQ(from_json_error(edited([](batch_job& j) {
              j.state = batch_job_state::running;
              j.ended.reset();
              j.handle.reset();
              j.submitted.reset();
            })),
            "/jobs/4/handle: expected a job handle (the job is running), got null");
  EXPECT_EQ(from_json_error(edited([](batch_job& j) { j.handle.reset(); })),
            "/jobs/4/handle: expected a job handle (the job has a submitted time), got null");
  EXPECT_EQ(from_json_error(edited([](batch_job& j) { j.state = batch_job_state::running; })),
            "/jobs/4/ended: expected null (the job is running, not in a terminal state), got "
            "\"2026-11-23T16:00:00.123Z\"");
  // What is not checked: a job submitting or pending without a handle, a
  // terminal job without an end time, a failed job with none.
  for (auto state : {batch_job_state::pending, batch_job_state::submitting, batch_job_state::failed}) {
    batch_job job = bare_job(1, 0);
    job.state = state;
    expect_same(jobpoll::batch_job_from_json(jobpoll::to_json(job), ""), job);
  }
}

// --- fingerprint -----------------------------------------------------------------

std::vector<batch_entry> some_entries() {
  return {batch_entry(jobpoll::job_params{{"site", "MAIN"}, {"day", "1"}}),
          batch_entry::skipped({{"site", "EAST"}, {"day", "2"}}, "closed"), batch_entry()};
}

TEST(BatchFingerprint, TheSameListGivesTheSameFingerprintEveryTime) {
  const auto a = some_entries();
  const auto b = some_entries();
  EXPECT_EQ(jobpoll::batch_fingerprint(a), jobpoll::batch_fingerprint(b));
  // Pinned: a change of the serialisation or the hash shows here (and would
  // make every saved checkpoint look like another batch's).
  EXPECT_EQ(jobpoll::batch_fingerprint(a), "cd0067f186c9de64");
  EXPECT_EQ(jobpoll::batch_fingerprint({}), "a8c7f832281a39c5");
}

TEST(BatchFingerprint, AnyChangeGivesAnotherFingerprint) {
  const auto base = jobpoll::batch_fingerprint(some_entries());
  std::vector<std::string> seen{base};
  const auto changed = [&](const std::function<void(std::vector<batch_entry>&)>& edit) {
    auto entries = some_entries();
    edit(entries);
    const auto fingerprint = jobpoll::batch_fingerprint(entries);
    EXPECT_EQ(fingerprint.size(), 16u);
    EXPECT_EQ(fingerprint.find_first_not_of("0123456789abcdef"), std::string::npos) << fingerprint;
    for (const auto& other : seen) EXPECT_NE(fingerprint, other);
    seen.push_back(fingerprint);
  };
  changed([](auto& e) { e[0].params["day"] = "2"; });                  // a value
  changed([](auto& e) { e[0].params.extract("day").key() = "days"; });  // a name (same value)
  changed([](auto& e) { std::swap(e[0], e[1]); });                       // the order
  changed([](auto& e) { e[1].skip = false; });                           // a skip flag
  changed([](auto& e) { e[1].skip_reason = "open"; });                   // a skip reason
  changed([](auto& e) { e.pop_back(); });                                // one entry fewer
  changed([](auto& e) { e[2].params["x"] = ""; });                       // an empty parameter
  // Lengths keep names and values apart: "ab"="c" is not "a"="bc".
  changed([](auto& e) { e[2].params = {{"ab", "c"}}; });
  changed([](auto& e) { e[2].params = {{"a", "bc"}}; });
}

// --- save and load -------------------------------------------------------------------

TEST_F(CheckpointTest, ARoundTripKeepsEveryField) {
  const batch_checkpoint saved = full_checkpoint();
  jobpoll::save_checkpoint(file, saved);
  expect_same(jobpoll::load_checkpoint(file), saved);
  const auto again = jobpoll::load_checkpoint_if_present(file);
  ASSERT_TRUE(again.has_value());
  expect_same(*again, saved);
  EXPECT_FALSE(fs::exists(dir / "batch.checkpoint.json.tmp"));
  // The format tag and version first, then one record per line, members in declaration order.
  const std::string text = read_bytes(file);
  EXPECT_TRUE(text.starts_with(R"({"format":"jobpoll-batch-checkpoint","version":1,"batch":"nightly",)"
                               R"("fingerprint":"0123456789abcdef","entries":3,"jobs":[)"
                               "\n{\"id\":1,\"entry\":1,\"parent\":null,"))
      << text;
  EXPECT_TRUE(text.ends_with("}\n]}\n")) << text;
  EXPECT_EQ(json::parse(text)["jobs"], json::array({jobpoll::to_json(saved.jobs[0]), jobpoll::to_json(saved.jobs[1])}));
}

TEST_F(CheckpointTest, ARoundTripWithEveryOptionalEmpty) {
  const batch_checkpoint saved{"", "ffffffffffffffff", 1, {bare_job(1, 0)}};
  jobpoll::save_checkpoint(file, saved);
  expect_same(jobpoll::load_checkpoint(file), saved);

  const batch_checkpoint empty{"b", "0000000000000000", 0, {}};
  jobpoll::save_checkpoint(file, empty);
  EXPECT_EQ(read_bytes(file),
            R"({"format":"jobpoll-batch-checkpoint","version":1,"batch":"b","fingerprint":"0000000000000000",)"
            "\"entries\":0,\"jobs\":[\n]}\n");
  expect_same(jobpoll::load_checkpoint(file), empty);
}

TEST_F(CheckpointTest, ASaveReplacesTheCheckpointAndAStaleTempFile) {
  jobpoll::save_checkpoint(file, full_checkpoint());
  write_bytes(dir / "batch.checkpoint.json.tmp", "stale half-written checkpoint");
  const batch_checkpoint second{"nightly", "0123456789abcdef", 3, {bare_job(1, 2)}};
  jobpoll::save_checkpoint(file, second);
  expect_same(jobpoll::load_checkpoint(file), second);
  EXPECT_FALSE(fs::exists(dir / "batch.checkpoint.json.tmp"));
}

TEST_F(CheckpointTest, AFailedSaveLeavesTheOldCheckpointIntact) {
  jobpoll::save_checkpoint(file, full_checkpoint());
  const std::string before = read_bytes(file);
  // The temp file cannot be created: a directory has its name.
  const fs::path temp = dir / "batch.checkpoint.json.tmp";
  fs::create_directory(temp);
  const batch_checkpoint second{"nightly", "0123456789abcdef", 3, {bare_job(1, 2)}};
  try {
    jobpoll::save_checkpoint(file, second);
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::is_a_directory);
    EXPECT_EQ(std::string(e.what()), "cannot save checkpoint " + file.string() + ": creating " + temp.string() +
                                         ": " + std::generic_category().message(EISDIR));
  }
  EXPECT_EQ(read_bytes(file), before);
  expect_same(jobpoll::load_checkpoint(file), full_checkpoint());
  EXPECT_TRUE(fs::is_directory(temp)) << "a directory it did not create was removed";
}

TEST_F(CheckpointTest, ASaveInAMissingDirectoryFailsNamingIt) {
  const fs::path nowhere = dir / "missing" / "c.json";
  try {
    jobpoll::save_checkpoint(nowhere, full_checkpoint());
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(std::string(e.what()), "cannot save checkpoint " + nowhere.string() + ": creating " + nowhere.string() +
                                         ".tmp: " + std::generic_category().message(ENOENT));
  }
}

TEST_F(CheckpointTest, ACheckpointThatCouldNotBeResumedIsNotWritten) {
  jobpoll::save_checkpoint(file, full_checkpoint());
  const std::string before = read_bytes(file);
  const auto save_error = [&](const batch_checkpoint& checkpoint) -> std::string {
    try {
      jobpoll::save_checkpoint(file, checkpoint);
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), jobpoll::errc::invalid_argument);
      return e.what();
    }
    ADD_FAILURE() << "no exception";
    return {};
  };
  const std::string prefix = "cannot save checkpoint " + file.string() + ": ";
  const std::string suffix = ": invalid argument";

  batch_checkpoint running = full_checkpoint();
  running.jobs[0].state = batch_job_state::running;
  EXPECT_EQ(save_error(running), prefix + "/jobs/0/handle: expected a job handle (the job is running), got null" + suffix);

  batch_checkpoint out_of_order = full_checkpoint();
  std::swap(out_of_order.jobs[0].id, out_of_order.jobs[1].id);
  out_of_order.jobs[1].parent.reset();
  out_of_order.jobs[1].attempt = 1;
  EXPECT_EQ(save_error(out_of_order), prefix + "/jobs/0/id: expected 1 (ids are 1, 2, ... in order), got 2" + suffix);

  batch_checkpoint fingerprint = full_checkpoint();
  fingerprint.fingerprint = "0123456789ABCDEF";
  EXPECT_EQ(save_error(fingerprint),
            prefix + "/fingerprint: expected 16 lowercase hex digits, got \"0123456789ABCDEF\"" + suffix);

  batch_checkpoint not_utf8 = full_checkpoint();
  not_utf8.jobs[1].params["site"] = "\xff";
  EXPECT_EQ(save_error(not_utf8), prefix + "/jobs/1: invalid UTF-8 byte at index 0: 0xFF" + suffix);

  EXPECT_EQ(read_bytes(file), before);
  EXPECT_FALSE(fs::exists(dir / "batch.checkpoint.json.tmp"));
}

TEST_F(CheckpointTest, TenThousandRecordsRoundTrip) {
  batch_checkpoint big{"big", "0123456789abcdef", 10'000, {}};
  big.jobs.reserve(10'000);
  for (std::size_t i = 0; i < 10'000; ++i) {
    batch_job job = bare_job(i + 1, i);
    job.params = {{"n", std::to_string(i)}};
    if (i % 2 == 0) {
      job.state = batch_job_state::running;
      job.handle = job_handle{"h" + std::to_string(i), job.params, {i, 0}, 1s};
      job.submitted = at(1ms);
    }
    big.jobs.push_back(std::move(job));
  }
  jobpoll::save_checkpoint(file, big);
  const batch_checkpoint loaded = jobpoll::load_checkpoint(file);
  ASSERT_EQ(loaded.jobs.size(), 10'000u);
  expect_same(loaded.jobs.front(), big.jobs.front());
  expect_same(loaded.jobs[7'777], big.jobs[7'777]);
  expect_same(loaded.jobs.back(), big.jobs.back());
}

TEST_F(CheckpointTest, MembersInAnyOrderLoadTheSame) {
  // Records are read while parsing only after "format" and "version"; a
  // file with "jobs" first (sorted members, as nlohmann writes them) is read
  // from the whole tree instead, with the same result.
  write_edited([](json&) {});
  const std::string text = read_bytes(file);
  EXPECT_LT(text.find("\"jobs\""), text.find("\"version\""));
  expect_same(jobpoll::load_checkpoint(file), full_checkpoint());
}

// --- refused files ----------------------------------------------------------------------

TEST_F(CheckpointTest, AMissingFileIsAnOsErrorOrNoCheckpoint) {
  EXPECT_FALSE(jobpoll::load_checkpoint_if_present(file).has_value());
  try {
    jobpoll::load_checkpoint(file);
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(std::string(e.what()),
              "cannot read checkpoint " + file.string() + ": " + std::generic_category().message(ENOENT));
  }
  EXPECT_FALSE(fs::exists(file));
}

TEST_F(CheckpointTest, AnUnreadableFileIsAnOsError) {
  fs::create_directory(file);
  for (const bool if_present : {false, true}) {
    try {
      if (if_present) {
        jobpoll::load_checkpoint_if_present(file);
      } else {
        jobpoll::load_checkpoint(file);
      }
      ADD_FAILURE() << "no exception";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::is_a_directory);
      EXPECT_EQ(std::string(e.what()),
                "cannot read checkpoint " + file.string() + ": " + std::generic_category().message(EISDIR));
    }
  }
}

TEST_F(CheckpointTest, AnEmptyFileIsRefused) {
  write_bytes(file, "");
  const auto e = load_error();
  EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
  EXPECT_EQ(std::string(e.what()), file.string() + ": not a JSON document: the file is empty" + std::string(category_suffix));
  try {
    jobpoll::load_checkpoint_if_present(file);
    ADD_FAILURE() << "no exception";
  } catch (const std::system_error& e2) {
    EXPECT_STREQ(e2.what(), e.what());
  }
}

TEST_F(CheckpointTest, ATruncatedFileIsRefused) {
  jobpoll::save_checkpoint(file, full_checkpoint());
  const std::string whole = read_bytes(file);
  write_bytes(file, whole.substr(0, whole.size() - 30));  // inside the last record
  const auto e = load_error();
  EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
  EXPECT_EQ(std::string(e.what()),
            file.string() +
                ": not a JSON document: parse error at line 3, column 522: syntax error while parsing value - invalid "
                "string: missing closing quote; last read: '\"'" +
                std::string(category_suffix));
}

/// "<file>:<line>: " for the byte `at` of `text`, the content of `file`.
std::string file_line(const fs::path& file, const std::string& text, std::size_t at) {
  const auto newlines = std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n');
  return file.string() + ":" + std::to_string(1 + newlines) + ": ";
}

TEST_F(CheckpointTest, ANumberOutOfRangeIsRefusedNamingTheFileLineAndByte) {
  jobpoll::save_checkpoint(file, full_checkpoint());
  const std::string whole = read_bytes(file);
  // In the header, and in a job record (read while the parser streams the jobs).
  for (const std::string member : {"\"entries\":3", "\"attempt\":1"}) {
    std::string text = whole;
    const std::size_t at = text.find(member);
    ASSERT_NE(at, std::string::npos) << member;
    const std::size_t number = at + member.size() - 1;
    text.replace(number, 1, "1e999");
    write_bytes(file, text);
    const auto e = load_error();
    EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
    EXPECT_EQ(std::string(e.what()), file_line(file, text, number) + "number overflow parsing '1e999' at byte " +
                                         std::to_string(number) + std::string(category_suffix));
  }
  // A negative one, and one inside a string (a text, not a number: the record reads it as text).
  std::string text = whole;
  const std::size_t at = text.find("\"entries\":3") + 10;
  text.replace(at, 1, "-1e400");
  write_bytes(file, text);
  EXPECT_EQ(std::string(load_error().what()), file_line(file, text, at) + "number overflow parsing '-1e400' at byte " +
                                                  std::to_string(at) + std::string(category_suffix));
}

TEST_F(CheckpointTest, NestingDeeperThan512LevelsIsRefusedBeforeParsing) {
  jobpoll::save_checkpoint(file, full_checkpoint());
  const std::string whole = read_bytes(file);
  ASSERT_EQ(whole.front(), '{');
  const auto with_extra = [&](std::size_t levels) {
    return "{\"extra\":" + std::string(levels, '[') + std::string(levels, ']') + "," + whole.substr(1);
  };
  // 511 levels in an ignored member are 512 with the document's own object: accepted.
  write_bytes(file, with_extra(511));
  EXPECT_EQ(jobpoll::load_checkpoint(file).jobs.size(), 2u);

  for (const std::size_t levels : {512u, 100'000u}) {
    write_bytes(file, with_extra(levels));
    const auto e = load_error();
    EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
    EXPECT_EQ(std::string(e.what()),
              file.string() + ":1: nesting deeper than 512 levels at byte 520" + std::string(category_suffix));
  }
  // Unclosed, as a cut or hostile file would be.
  write_bytes(file, std::string(100'000, '['));
  EXPECT_EQ(std::string(load_error().what()),
            file.string() + ":1: nesting deeper than 512 levels at byte 512" + std::string(category_suffix));
}

TEST_F(CheckpointTest, AFileInAnotherFormatIsRefused) {
  write_bytes(file, R"({"hello":1})");
  auto e = load_error();
  EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
  EXPECT_EQ(std::string(e.what()), file.string() +
                                       " is not a jobpoll batch checkpoint (format: expected "
                                       "\"jobpoll-batch-checkpoint\", got no \"format\" member)" +
                                       std::string(category_suffix));

  write_bytes(file, R"({"format":"jobpoll-batch-checkpoint-v0","version":1})");
  e = load_error();
  EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
  EXPECT_EQ(std::string(e.what()), file.string() +
                                       " is not a jobpoll batch checkpoint (format: expected "
                                       "\"jobpoll-batch-checkpoint\", got \"jobpoll-batch-checkpoint-v0\")" +
                                       std::string(category_suffix));

  write_bytes(file, "[1, 2]");
  e = load_error();
  EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
  EXPECT_EQ(std::string(e.what()), file.string() +
                                       " is not a jobpoll batch checkpoint (expected a JSON object with \"format\": "
                                       "\"jobpoll-batch-checkpoint\", got [1,2])" +
                                       std::string(category_suffix));
}

TEST_F(CheckpointTest, AnotherVersionIsRefused) {
  write_edited([](json& d) { d["version"] = 2; });
  auto e = load_error();
  EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
  EXPECT_EQ(std::string(e.what()),
            field_message("/version: expected 1 (the checkpoint version this jobpoll reads), got 2"));

  write_edited([](json& d) { d.erase("version"); });
  e = load_error();
  EXPECT_EQ(std::string(e.what()),
            field_message("/version: expected 1 (the checkpoint version this jobpoll reads), got nothing"));
}

TEST_F(CheckpointTest, BadMembersAreRefusedNamingThem) {
  struct refusal {
    std::function<void(json&)> edit;
    std::string message;
  };
  const std::vector<refusal> refusals{
      {[](json& d) { d["jobs"][1]["state"] = "runing"; },
       "/jobs/1/state: expected a job state (pending, submitting, running, completed, failed or cancelled), "
       "got \"runing\""},
      {[](json& d) {
         d["jobs"][1]["state"] = "running";
         d["jobs"][1]["ended"] = nullptr;
         d["jobs"][1]["submitted"] = nullptr;
         d["jobs"][1]["handle"] = nullptr;
       },
       "/jobs/1/handle: expected a job handle (the job is running), got null"},
      {[](json& d) { d["batch"] = 7; }, "/batch: expected a string, got 7"},
      {[](json& d) { d["fingerprint"] = "0123"; }, "/fingerprint: expected 16 lowercase hex digits, got \"0123\""},
      {[](json& d) { d["entries"] = -1; }, "/entries: expected a non-negative integer, got -1"},
      {[](json& d) { d["jobs"] = json::object(); }, "/jobs: expected an array of job records, got {}"},
      {[](json& d) { d.erase("jobs"); }, "/jobs: expected an array of job records, got nothing"},
  };
  for (const auto& [edit, message] : refusals) {
    write_edited(edit);
    const auto e = load_error();
    EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
    EXPECT_EQ(std::string(e.what()), field_message(message));
  }
}

TEST_F(CheckpointTest, BadRecordsAreRefusedAlsoInTheLayoutSaveWrites) {
  // Edited in place, so "format" and "version" still come first and the
  // records are read as they are parsed.
  const auto edit_text = [&](const std::string& from, const std::string& to) {
    jobpoll::save_checkpoint(file, full_checkpoint());
    std::string text = read_bytes(file);
    const auto at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    write_bytes(file, text);
  };
  edit_text("\"state\":\"failed\"", "\"state\":\"runing\"");
  auto e = load_error();
  EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
  EXPECT_EQ(std::string(e.what()),
            field_message("/jobs/1/state: expected a job state (pending, submitting, running, completed, failed or "
                          "cancelled), got \"runing\""));

  edit_text("\"jobs\":[\n", "\"jobs\":[\n5,");
  e = load_error();
  EXPECT_EQ(std::string(e.what()), field_message("/jobs/0: expected a job record (a JSON object), got 5"));

  edit_text("\"id\":2,", "\"id\":3,");
  e = load_error();
  EXPECT_EQ(std::string(e.what()), field_message("/jobs/1/id: expected 2 (ids are 1, 2, ... in order), got 3"));
}

TEST_F(CheckpointTest, RecordsThatDoNotFormALineageAreRefused) {
  struct refusal {
    std::function<void(json&)> edit;
    std::string message;
  };
  const std::vector<refusal> refusals{
      // ids out of order
      {[](json& d) { std::swap(d["jobs"][0], d["jobs"][1]); },
       "/jobs/0/id: expected 1 (ids are 1, 2, ... in order), got 2"},
      {[](json& d) { d["jobs"][1]["id"] = 3; }, "/jobs/1/id: expected 2 (ids are 1, 2, ... in order), got 3"},
      // a parent of another entry
      {[](json& d) { d["jobs"][0]["entry"] = 0; }, "/jobs/1/parent: expected a job of entry 1 (its own entry), got 1 (a job of entry 0)"},
      // an entry past the input
      {[](json& d) { d["entries"] = 1; },
       "/jobs/0/entry: expected an entry index below 1 (the batch's entries), got 1"},
      // an attempt that is not the parent's + 1
      {[](json& d) { d["jobs"][1]["attempt"] = 3; }, "/jobs/1/attempt: expected 2 (its parent's attempt + 1), got 3"},
      // a parent that is not earlier
      {[](json& d) { d["jobs"][1]["parent"] = 2; },
       "/jobs/1/parent: expected the id of an earlier job (1 to 1) or null, got 2"},
  };
  for (const auto& [edit, message] : refusals) {
    write_edited(edit);
    const auto e = load_error();
    EXPECT_EQ(e.code(), jobpoll::errc::invalid_checkpoint);
    EXPECT_EQ(std::string(e.what()), field_message(message));
  }
}

}  // namespace
