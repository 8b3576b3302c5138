// sqlite_store on its own: creating and reopening a batch, refusing other
// input, other files and newer schemas, one owner per batch (live, dead and
// remote owners), records and history, the summary as `reconcile` computes
// it, corrupt rows and a disk that fills up. The file is checked with
// SQLite directly, not through the store.

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <jobpoll/batch/reconcile.hpp>
#include <jobpoll/store/sqlite.hpp>

#include "sqlite_fault_vfs.hpp"
#include "temp_dir.hpp"

namespace {

using jobpoll::batch_job;
using jobpoll::batch_job_state;
using jobpoll::sqlite_store;
using testing::HasSubstr;
namespace fs = std::filesystem;

std::vector<jobpoll::batch_entry> entries(std::size_t n) {
  std::vector<jobpoll::batch_entry> out;
  for (std::size_t k = 0; k < n; ++k) out.emplace_back(jobpoll::job_params{{"n", std::to_string(k)}});
  return out;
}

// Runs `sql` on the file with SQLite itself; returns the first column of the first row, if any.
std::optional<std::string> sql(const fs::path& path, const std::string& statement) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, statement.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::optional<std::string> out;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW && sqlite3_column_text(s, 0) != nullptr)
    out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  while (rc == SQLITE_ROW) rc = sqlite3_step(s);
  EXPECT_EQ(rc, SQLITE_DONE) << sqlite3_errmsg(db);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

std::string host() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

// The pid of a process that has ended (and been reaped).
pid_t dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  const jobpoll_test::temp_dir dir{"jobpoll-store-"};
  const fs::path path = dir / "batch.db";
};

TEST_F(SqliteStoreTest, CreatesABatchOnceAndReopensIt) {
  std::string uid;
  {
    sqlite_store store(path, "nightly");
    EXPECT_FALSE(store.exists());
    const auto& info = store.create(entries(3));
    EXPECT_EQ(info.name, "nightly");
    EXPECT_EQ(info.entries, 3u);
    EXPECT_EQ(info.fingerprint, jobpoll::batch_fingerprint(entries(3)));
    EXPECT_EQ(info.uid.size(), 16u);
    uid = info.uid;
    EXPECT_EQ(store.counts()[batch_job_state::pending], 3u);
  }
  sqlite_store again(path, "nightly");
  ASSERT_TRUE(again.exists());
  EXPECT_EQ(again.create(entries(3)).uid, uid);  // the same batch: nothing created
  EXPECT_EQ(again.counts().total(), 3u);
  const auto job = again.job(2);
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->entry, 1u);
  EXPECT_EQ(job->params.at("n"), "1");
  EXPECT_EQ(job->key, uid + "-2");
  EXPECT_EQ(job->state, batch_job_state::pending);
  EXPECT_FALSE(again.job(4).has_value());
  EXPECT_EQ(sql(path, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(sql(path, "PRAGMA user_version"), std::to_string(sqlite_store::schema_version));
  EXPECT_EQ(sql(path, "PRAGMA application_id"), std::to_string(sqlite_store::application_id));
}

TEST_F(SqliteStoreTest, ABatchWithOtherEntriesIsRefusedAndLeftUntouched) {
  sqlite_store(path, "nightly").create(entries(3));
  auto other = entries(3);
  other[2].params["n"] = "two";
  sqlite_store store(path, "nightly");
  try {
    store.create(other);
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::batch_mismatch);
    EXPECT_THAT(e.what(), HasSubstr(path.string() + " holds batch \"nightly\" with 3 entries (fingerprint "));
    EXPECT_THAT(e.what(), HasSubstr("not these 3 entries"));
  }
  EXPECT_EQ(store.job(3)->params.at("n"), "2");
  // Another name is another batch in the same file.
  sqlite_store second(path, "weekly");
  second.create(other);
  EXPECT_EQ(second.job(3)->params.at("n"), "two");
  EXPECT_NE(second.info().uid, store.info().uid);
  EXPECT_EQ(sql(path, "SELECT COUNT(*) FROM jobs"), "6");
}

TEST_F(SqliteStoreTest, AFileThatIsNotADatabaseIsRefusedAndLeftUntouched) {
  const std::string junk = "{\"format\": \"jobpoll-batch-checkpoint\"} and more text than a header";
  jobpoll_test::write_bytes(path, junk);
  try {
    sqlite_store store(path, "b");
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::store_error);
    EXPECT_THAT(e.what(), HasSubstr("batch store " + path.string()));
    EXPECT_THAT(e.what(), HasSubstr("file is not a database"));
  }
  EXPECT_EQ(jobpoll_test::read_bytes(path), junk);
}

TEST_F(SqliteStoreTest, AnotherProgramsDatabaseIsRefused) {
  sql(path, "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT)");
  try {
    sqlite_store store(path, "b");
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::store_error);
    EXPECT_THAT(e.what(), HasSubstr("is not a jobpoll batch store (application_id 0, 1 schema objects)"));
  }
  EXPECT_EQ(sql(path, "SELECT COUNT(*) FROM sqlite_master"), "1");
}

TEST_F(SqliteStoreTest, ANewerSchemaIsRefused) {
  sqlite_store(path, "b").create(entries(1));
  sql(path, "PRAGMA user_version = 99");
  try {
    sqlite_store store(path, "b");
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::store_error);
    EXPECT_THAT(e.what(), HasSubstr("has schema version 99, newer than this jobpoll reads (1)"));
  }
}

TEST_F(SqliteStoreTest, ALiveOwnerIsRefusedNamingIt) {
  sqlite_store store(path, "b");
  store.create(entries(1));
  // pid 1 runs on every Linux host: a live owner here.
  sql(path, "UPDATE batches SET owner_pid = 1, owner_host = '" + host() + "', owner_since = 1764658800000, owner_start = 0");
  try {
    store.claim();
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::batch_owned);
    EXPECT_THAT(e.what(), HasSubstr(path.string() + ": batch \"b\" is owned by pid 1 on host " + host() +
                                    " since 2025-12-02T07:00:00.000Z (that process is running)"));
  }
  EXPECT_EQ(sql(path, "SELECT owner_pid FROM batches"), "1");
}

TEST_F(SqliteStoreTest, ADeadOwnerOnThisHostIsTakenOver) {
  sqlite_store store(path, "b");
  store.create(entries(1));
  const pid_t dead = dead_pid();
  sql(path, "UPDATE batches SET owner_pid = " + std::to_string(dead) + ", owner_host = '" + host() +
                "', owner_since = 0, owner_start = 0");
  store.claim();
  ASSERT_TRUE(store.taken_over().has_value());
  EXPECT_EQ(store.taken_over()->pid, dead);
  EXPECT_EQ(sql(path, "SELECT owner_pid FROM batches"), std::to_string(::getpid()));
  store.release();
  EXPECT_EQ(sql(path, "SELECT owner_pid FROM batches"), std::nullopt);
}

TEST_F(SqliteStoreTest, APidReusedByAnotherProcessIsADeadOwner) {
  sqlite_store store(path, "b");
  store.create(entries(1));
  // Our own pid, with a start time that is not ours: the owner was an earlier process.
  sql(path, "UPDATE batches SET owner_pid = " + std::to_string(::getpid()) + ", owner_host = '" + host() +
                "', owner_since = 0, owner_start = 12345");
  EXPECT_NO_THROW(store.claim());
  EXPECT_TRUE(store.taken_over().has_value());
}

TEST_F(SqliteStoreTest, AnOwnerOnAnotherHostIsRefusedUntilReleased) {
  sqlite_store store(path, "b");
  store.create(entries(1));
  sql(path, "UPDATE batches SET owner_pid = 4242, owner_host = 'elsewhere.example', owner_since = 0, owner_start = 7");
  try {
    store.claim();
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::batch_owned);
    EXPECT_THAT(e.what(), HasSubstr("owned by pid 4242 on host elsewhere.example since 1970-01-01T00:00:00.000Z"));
    EXPECT_THAT(e.what(), HasSubstr("batch_run release"));
  }
  const auto was = store.release_owner();
  ASSERT_TRUE(was.has_value());
  EXPECT_EQ(was->host, "elsewhere.example");
  EXPECT_NO_THROW(store.claim());
  EXPECT_EQ(store.owner()->pid, ::getpid());
}

TEST_F(SqliteStoreTest, ChangesAreSavedWithAHistoryRowEach) {
  sqlite_store store(path, "b");
  store.create(entries(2));
  batch_job job = *store.job(1);
  job.state = batch_job_state::submitting;
  store.update(job, batch_job_state::pending, "");
  job.handle = jobpoll::job_handle("h-1", {{"n", "0"}}, {3, 1}, std::chrono::seconds(5));
  job.submitted = std::chrono::system_clock::now();
  job.state = batch_job_state::running;
  store.update(job, batch_job_state::submitting, "");
  job.state = batch_job_state::completed;
  job.ended = std::chrono::system_clock::now();
  job.result = R"({"rows":3})";
  store.update(job, batch_job_state::running, "done");

  const batch_job saved = *store.job(1);
  EXPECT_EQ(saved.state, batch_job_state::completed);
  ASSERT_TRUE(saved.handle.has_value());
  EXPECT_EQ(saved.handle->id, "h-1");
  EXPECT_EQ(saved.handle->progress.attempts, 3u);
  EXPECT_EQ(saved.handle->progress.consecutive_failures, 1u);
  EXPECT_EQ(saved.handle->remaining, std::chrono::seconds(5));
  EXPECT_EQ(saved.result, R"({"rows":3})");
  EXPECT_TRUE(saved.ended.has_value());
  EXPECT_EQ(sql(path, "SELECT COUNT(*) FROM history WHERE job = 1"), "4");
  EXPECT_EQ(sql(path, "SELECT note FROM history WHERE job = 1 ORDER BY seq DESC LIMIT 1"), "done");
  EXPECT_EQ(store.jobs_in(batch_job_state::pending, 0, 10).size(), 1u);
  EXPECT_EQ(store.jobs_in(batch_job_state::completed, 0, 10).size(), 1u);
  EXPECT_EQ(store.jobs_in(batch_job_state::completed, 1, 10).size(), 0u);

  batch_job child;
  child.entry = 0;
  child.parent = 1;
  child.attempt = 2;
  child.params = {{"n", "0"}};
  store.insert(child);
  EXPECT_EQ(child.id, 3u);
  EXPECT_EQ(child.key, store.info().uid + "-3");
}

TEST_F(SqliteStoreTest, TheSummaryIsWhatReconcileSaysOfTheSameRecords) {
  std::mt19937 random(20261202);
  for (int round = 0; round < 30; ++round) {
    const std::size_t n = 1 + random() % 8;
    sqlite_store store(":memory:", "b");
    store.create(entries(n));
    for (std::size_t extra = random() % 6; extra > 0; --extra) {
      batch_job child;
      child.entry = random() % n;
      child.parent = 1 + child.entry;
      child.attempt = 2;
      store.insert(child);
    }
    std::vector<batch_job> all;
    store.for_each_job([&](const batch_job& j) { all.push_back(j); });
    for (batch_job& j : all) {
      const auto previous = j.state;
      j.state = static_cast<batch_job_state>(random() % jobpoll::batch_job_state_count);
      j.skipped = random() % 4 == 0;
      if (j.state == batch_job_state::running || j.state == batch_job_state::completed) j.handle = jobpoll::job_handle("h");
      store.update(j, previous, "");
    }
    const auto expected = jobpoll::reconcile(all, n);
    const auto got = store.summary();
    EXPECT_EQ(got.status, expected.status) << round;
    EXPECT_EQ(got.fulfilled_entries, expected.fulfilled_entries) << round;
    EXPECT_EQ(got.total_jobs, expected.total_jobs) << round;
    EXPECT_EQ(got.counts, expected.counts) << round;
    EXPECT_EQ(got.failed_job_ids, expected.failed_job_ids) << round;
  }
}

TEST_F(SqliteStoreTest, ACorruptRowIsAClearErrorNamingTheJob) {
  sqlite_store(path, "b").create(entries(3));
  sql(path, "UPDATE jobs SET params = '[1, 2' WHERE id = 2");
  sql(path, "UPDATE jobs SET params = '[1, 2]' WHERE id = 3");
  sql(path, "UPDATE jobs SET handle = '{\"id\": 7}', state = 'running' WHERE id = 1");
  sqlite_store store(path, "b");
  try {
    store.job(2);
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::store_error);
    EXPECT_THAT(e.what(), HasSubstr("batch \"b\" job 2: params: not a JSON document: parse error"));
  }
  try {
    store.jobs_in(batch_job_state::running, 0, 10);
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::store_error);
    EXPECT_THAT(e.what(), HasSubstr("job 1: handle/id: expected"));
  }
  try {
    store.job(3);
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("batch \"b\" job 3: params: expected a JSON object of strings, got [1,2]"));
  }
  // A number out of range: the column is named, not a line of it.
  sql(path, "UPDATE jobs SET params = '[1e999]' WHERE id = 3");
  try {
    store.job(3);
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("batch \"b\" job 3: params: number overflow parsing '1e999' at byte 1"));
  }
  EXPECT_EQ(store.counts().total(), 3u);  // what does not need the bad rows still works
}

TEST_F(SqliteStoreTest, ADiskFullLeavesTheRecordAsItWasAndTheFileWhole) {
  auto& vfs = jobpoll_test::sqlite_fault_vfs::get();
  vfs.fail_writes(false);
  {
    sqlite_store store(path, "b", {.vfs = vfs.name()});
    store.create(entries(2));
    batch_job job = *store.job(1);
    job.state = batch_job_state::submitting;
    vfs.fail_writes(true);
    try {
      store.update(job, batch_job_state::pending, "");
      FAIL() << "no exception";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), jobpoll::errc::store_error);
      EXPECT_THAT(e.what(), HasSubstr("database or disk is full"));
    }
    vfs.fail_writes(false);
    EXPECT_EQ(store.job(1)->state, batch_job_state::pending);
    store.update(job, batch_job_state::pending, "after the disk was freed");
    EXPECT_EQ(store.job(1)->state, batch_job_state::submitting);
  }
  EXPECT_EQ(sql(path, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(sql(path, "SELECT COUNT(*) FROM history WHERE job = 1"), "2");
}

TEST_F(SqliteStoreTest, WithoutCreateIfMissingAMissingFileIsAnErrorAndStaysMissing) {
  try {
    sqlite_store store(path, "b", {.create_if_missing = false});
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::store_error);
    EXPECT_THAT(e.what(), HasSubstr("batch store " + path.string() + ": cannot open: unable to open database file"));
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(SqliteStoreTest, ABatchThatWasNeverCreatedIsAClearError) {
  sqlite_store store(path, "missing");
  try {
    store.counts();
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::store_error);
    EXPECT_THAT(e.what(), HasSubstr(path.string() + " has no batch \"missing\""));
  }
}

}  // namespace
