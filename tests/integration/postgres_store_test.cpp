// postgres_store on a real PostgreSQL (a cluster of this process, a fresh
// database per test): creating and reopening a batch, refusing other
// entries, other programs' schemas, newer schemas and bad connections;
// records, history and job configurations; several store objects sharing a
// batch (concurrent takes, leases that run out, takeover with history,
// fencing, release); the summary as `reconcile` and the SQL view compute
// it; corrupt rows; the server going away and coming back; a full disk.
// The tables are checked with SQL, not through the store.
//
// Then batch_runner on it, with the in-memory job API on steady_clock (the
// manual clock would jump while a store call is under way on the store's
// worker): one runner; several runners on one batch, each entry submitted
// once; a runner whose lease runs out, its running jobs finished by another
// by handle; a runner fenced off mid-run; PostgreSQL going down mid-run
// (the runner stops) and the next run finishing every job once.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <jobpoll/batch/audit_log.hpp>
#include <jobpoll/batch/batch_runner.hpp>
#include <jobpoll/batch/reconcile.hpp>
#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/store/postgres.hpp>

#include "memory_job_api.hpp"
#include "postgres_server.hpp"

namespace {

using namespace std::chrono_literals;
using jobpoll::batch_job;
using jobpoll::batch_job_state;
using jobpoll::postgres_store;
using jobpoll::postgres_store_options;
using jobpoll_test::postgres_database;
using testing::HasSubstr;
using testing::Not;

std::vector<jobpoll::batch_entry> entries(std::size_t n) {
  std::vector<jobpoll::batch_entry> out;
  for (std::size_t k = 0; k < n; ++k) out.emplace_back(jobpoll::job_params{{"n", std::to_string(k)}});
  return out;
}

std::string host() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

// The std::system_error `f` throws (a test failure if none).
template <class F>
std::system_error error_of(F f) {
  try {
    f();
  } catch (const std::system_error& e) {
    return e;
  }
  ADD_FAILURE() << "no exception";
  return std::system_error(jobpoll::error_code{});
}

// A record moved to `state` (with a handle when it has been submitted).
void move_to(postgres_store& store, batch_job& job, batch_job_state state, const std::string& note = "") {
  const batch_job_state previous = job.state;
  job.state = state;
  if (state == batch_job_state::running || jobpoll::is_terminal(state)) {
    job.handle = jobpoll::job_handle("h-" + std::to_string(job.id), job.params);
    job.submitted = std::chrono::system_clock::now();
  }
  if (jobpoll::is_terminal(state)) job.ended = std::chrono::system_clock::now();
  store.update(job, previous, note);
}

std::vector<std::size_t> ids_of(const std::vector<batch_job>& jobs) {
  std::vector<std::size_t> out;
  for (const auto& j : jobs) out.push_back(j.id);
  return out;
}

class PostgresStoreTest : public ::testing::Test {
 protected:
  postgres_database db;

  std::unique_ptr<postgres_store> open(const std::string& batch = "nightly", postgres_store_options options = {}) {
    return std::make_unique<postgres_store>(db.conninfo(), batch, std::move(options));
  }
  std::string sql(const std::string& statement) { return db.sql(statement).value_or("NULL"); }
};

TEST_F(PostgresStoreTest, CreatesABatchOnceAndReopensIt) {
  std::string uid;
  {
    auto store = open();
    EXPECT_FALSE(store->exists());
    const auto& info = store->create(entries(3));
    EXPECT_EQ(info.name, "nightly");
    EXPECT_EQ(info.entries, 3u);
    EXPECT_EQ(info.fingerprint, jobpoll::batch_fingerprint(entries(3)));
    EXPECT_EQ(info.uid.size(), 16u);
    uid = info.uid;
    EXPECT_EQ(store->counts()[batch_job_state::pending], 3u);
    EXPECT_THAT(store->origin(), HasSubstr("batch store postgresql://jobpoll@"));
    EXPECT_THAT(store->origin(), HasSubstr("/" + db.name() + " (schema \"jobpoll\")"));
  }
  auto again = open();
  ASSERT_TRUE(again->exists());
  EXPECT_EQ(again->create(entries(3)).uid, uid);  // the same batch: nothing created
  EXPECT_EQ(again->counts().total(), 3u);
  const auto job = again->job(2);
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->entry, 1u);
  EXPECT_EQ(job->params.at("n"), "1");
  EXPECT_EQ(job->key, uid + "-2");
  EXPECT_EQ(job->state, batch_job_state::pending);
  EXPECT_FALSE(again->job(4).has_value());
  EXPECT_EQ(sql("SELECT application || ' ' || version FROM jobpoll.schema_version"),
            "jobpoll batch store " + std::to_string(postgres_store::schema_version));
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.schema_version"), "1");
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.history"), "3");
  EXPECT_EQ(sql("SELECT params->>'n' FROM jobpoll.job_configurations WHERE config_id = 3"), "2");
}

TEST_F(PostgresStoreTest, ABatchWithOtherEntriesIsRefusedAndLeftUntouched) {
  open()->create(entries(3));
  auto other = entries(3);
  other[2].params["n"] = "two";
  auto store = open();
  const auto e = error_of([&] { store->create(other); });
  EXPECT_EQ(e.code(), jobpoll::errc::batch_mismatch);
  EXPECT_THAT(e.what(), HasSubstr(store->origin() + " holds batch \"nightly\" with 3 entries (fingerprint "));
  EXPECT_THAT(e.what(), HasSubstr("not these 3 entries"));
  EXPECT_EQ(store->job(3)->params.at("n"), "2");
  // Another name is another batch in the same schema.
  auto second = open("weekly");
  second->create(other);
  EXPECT_EQ(second->job(3)->params.at("n"), "two");
  EXPECT_NE(second->info().uid, store->info().uid);
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.jobs"), "6");
}

TEST_F(PostgresStoreTest, TwoRunnersOpeningAndCreatingAtOnceGetOneBatch) {
  // Both open a database without the schema (one migrates), then create the
  // same batch of 2,000 entries at once: one creates it, the other gets it.
  constexpr std::size_t n = 2000;
  std::vector<std::string> uids(2);
  std::vector<std::string> failures(2);
  {
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < 2; ++i) {
      threads.emplace_back([&, i] {
        try {
          postgres_store store(db.conninfo(), "race");
          uids[i] = store.create(n, [](std::size_t k) { return jobpoll::batch_entry({{"n", std::to_string(k)}}); }).uid;
        } catch (const std::exception& e) {
          failures[i] = e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  EXPECT_EQ(failures, (std::vector<std::string>{"", ""}));
  EXPECT_EQ(uids[0], uids[1]);
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.batches"), "1");
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.jobs"), std::to_string(n));
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.schema_version"), "1");
}

TEST_F(PostgresStoreTest, ChangesAreSavedWithAHistoryRowEachAndResubmissionsKeepTheirLineage) {
  auto store = open();
  store->create(entries(2));
  batch_job job = *store->job(1);
  job.state = batch_job_state::submitting;
  store->update(job, batch_job_state::pending, "");
  job.handle = jobpoll::job_handle("h-1", {{"n", "0"}}, {3, 1}, std::chrono::seconds(5));
  job.submitted = std::chrono::system_clock::now();
  job.state = batch_job_state::running;
  store->update(job, batch_job_state::submitting, "");
  job.state = batch_job_state::failed;
  job.ended = std::chrono::system_clock::now();
  job.error = "job 1 failed";
  job.error_code = "jobpoll:2";
  job.result = R"({"rows":3})";
  store->update(job, batch_job_state::running, "done");

  const batch_job saved = *store->job(1);
  EXPECT_EQ(saved.state, batch_job_state::failed);
  ASSERT_TRUE(saved.handle.has_value());
  EXPECT_EQ(saved.handle->id, "h-1");
  EXPECT_EQ(saved.handle->progress.attempts, 3u);
  EXPECT_EQ(saved.handle->progress.consecutive_failures, 1u);
  EXPECT_EQ(saved.handle->remaining, std::chrono::seconds(5));
  EXPECT_EQ(saved.result, R"({"rows":3})");
  EXPECT_EQ(saved.error, "job 1 failed");
  EXPECT_EQ(saved.error_code, "jobpoll:2");
  ASSERT_TRUE(saved.ended.has_value());
  EXPECT_EQ(jobpoll::detail::to_ms(*saved.ended), jobpoll::detail::to_ms(*job.ended));
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.history WHERE job = 1"), "4");
  EXPECT_EQ(sql("SELECT note FROM jobpoll.history WHERE job = 1 ORDER BY seq DESC LIMIT 1"), "done");
  EXPECT_EQ(sql("SELECT handle FROM jobpoll.history WHERE job = 1 ORDER BY seq DESC LIMIT 1"), "h-1");
  EXPECT_EQ(sql("SELECT handle->>'id' FROM jobpoll.jobs WHERE id = 1"), "h-1");
  EXPECT_EQ(store->jobs_in(batch_job_state::pending, 0, 10).size(), 1u);
  EXPECT_EQ(store->jobs_in(batch_job_state::failed, 0, 10).size(), 1u);
  EXPECT_EQ(store->jobs_in(batch_job_state::failed, 1, 10).size(), 0u);

  // A resubmission with the same parameters shares its parent's configuration;
  // one with other parameters has its own, overridden, with the reason.
  batch_job same;
  same.entry = 0;
  same.parent = 1;
  same.attempt = 2;
  same.params = {{"n", "0"}};
  store->insert(same);
  EXPECT_EQ(same.id, 3u);
  EXPECT_EQ(same.key, store->info().uid + "-3");
  batch_job changed = same;
  changed.parent = 3;
  changed.attempt = 3;
  changed.params = {{"n", "0"}, {"threshold", "0.9"}};
  changed.override_reason = "threshold too high";
  store->insert(changed);
  EXPECT_EQ(changed.id, 4u);
  EXPECT_EQ(sql("SELECT config_id FROM jobpoll.jobs WHERE id = 3"), "1");
  EXPECT_EQ(sql("SELECT config_id FROM jobpoll.jobs WHERE id = 4"), "4");
  EXPECT_EQ(sql("SELECT overridden::text || ' ' || override_reason || ' ' || (params->>'threshold') FROM "
                "jobpoll.job_configurations WHERE config_id = 4"),
            "true threshold too high 0.9");
  const batch_job read = *store->job(4);
  EXPECT_EQ(read.parent, 3u);
  EXPECT_EQ(read.attempt, 3u);
  EXPECT_EQ(read.params.at("threshold"), "0.9");
  EXPECT_EQ(read.override_reason, "threshold too high");
  // The lineage, as a user would follow it in SQL.
  EXPECT_EQ(sql("WITH RECURSIVE line AS (SELECT id, parent FROM jobpoll.jobs WHERE id = 4 UNION ALL "
                "SELECT j.id, j.parent FROM jobpoll.jobs j JOIN line ON j.id = line.parent) "
                "SELECT string_agg(id::text, ' <- ' ORDER BY id DESC) FROM line"),
            "4 <- 3 <- 1");
  EXPECT_EQ(sql("SELECT owner IS NULL FROM jobpoll.jobs WHERE id = 4"), "t") << "an inserted record is held by no one";

  // The history as audit lines, one per row, oldest first.
  std::ostringstream history;
  store->export_history(history);
  std::vector<nlohmann::json> lines;
  std::istringstream in(history.str());
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(std::to_string(lines.size()), sql("SELECT count(*) FROM jobpoll.history"));
  EXPECT_EQ(lines.at(3).at("job"), 1);
  EXPECT_EQ(lines.at(3).at("previous"), "submitting");
  EXPECT_EQ(lines.at(3).at("handle"), "h-1");
  EXPECT_EQ(lines.back().at("params").at("threshold"), "0.9");
  EXPECT_EQ(lines.back().at("override_reason"), "threshold too high");
}

TEST_F(PostgresStoreTest, TheSummaryIsWhatReconcileAndTheViewSayOfTheSameRecords) {
  std::mt19937 random(20261202);
  for (int round = 0; round < 20; ++round) {
    const std::size_t n = 1 + random() % 8;
    const std::string name = "b" + std::to_string(round);
    auto store = open(name);
    store->create(entries(n));
    for (std::size_t extra = random() % 6; extra > 0; --extra) {
      batch_job child;
      child.entry = random() % n;
      child.parent = 1 + child.entry;
      child.attempt = 2;
      child.params = {{"n", std::to_string(child.entry)}};
      store->insert(child);
    }
    std::vector<batch_job> all;
    store->for_each_job([&](const batch_job& j) { all.push_back(j); });
    for (batch_job& j : all) {
      const auto previous = j.state;
      j.state = static_cast<batch_job_state>(random() % jobpoll::batch_job_state_count);
      j.skipped = random() % 4 == 0;
      if (j.state == batch_job_state::running || j.state == batch_job_state::completed)
        j.handle = jobpoll::job_handle("h");
      store->update(j, previous, "");
    }
    const auto expected = jobpoll::reconcile(all, n);
    const auto got = store->summary();
    EXPECT_EQ(got.status, expected.status) << round;
    EXPECT_EQ(got.fulfilled_entries, expected.fulfilled_entries) << round;
    EXPECT_EQ(got.total_jobs, expected.total_jobs) << round;
    EXPECT_EQ(got.counts, expected.counts) << round;
    EXPECT_EQ(got.failed_job_ids, expected.failed_job_ids) << round;
    EXPECT_EQ(got.counts, store->counts()) << round;
    // The view a user queries says the same.
    EXPECT_EQ(sql("SELECT status FROM jobpoll.batch_reconciliation WHERE name = '" + name + "'"),
              std::string(jobpoll::to_string(expected.status)))
        << round;
    EXPECT_EQ(sql("SELECT fulfilled_entries FROM jobpoll.batch_reconciliation WHERE name = '" + name + "'"),
              std::to_string(expected.fulfilled_entries))
        << round;
  }
}

TEST_F(PostgresStoreTest, TheSeedTablesCanBeQueriedWithSql) {
  auto store = open();
  store->create(entries(4));
  store->claim();
  auto jobs = store->take(4);
  ASSERT_EQ(jobs.size(), 4u);
  move_to(*store, jobs[0], batch_job_state::completed);
  move_to(*store, jobs[1], batch_job_state::failed);
  move_to(*store, jobs[2], batch_job_state::running);
  const auto recorded = store->record_reconciliation();
  EXPECT_EQ(recorded.status, jobpoll::batch_status::failed);

  // The reconciliation view, as the seed's recon_batch computes it.
  EXPECT_EQ(sql("SELECT format('%s %s/%s jobs=%s completed=%s failed=%s running=%s pending=%s failed_ids=%s', "
                "status, fulfilled_entries, total_entries, total_jobs, completed, failed, running, pending, "
                "failed_job_ids) FROM jobpoll.batch_reconciliation WHERE name = 'nightly'"),
            "FAILED 1/4 jobs=4 completed=1 failed=1 running=1 pending=1 failed_ids={2}");
  // The reconciliation log: the seed's recon_summary.
  EXPECT_EQ(
      sql("SELECT r.status || ' ' || (r.summary->>'fulfilled_configs') || ' ' || "
          "(r.summary->'job_status_counts'->>'RUNNING') || ' ' || (r.runner = '" +
          store->runner_id() +
          "')::text FROM jobpoll.reconciliations r JOIN jobpoll.batches b USING (batch_id) WHERE b.name = 'nightly'"),
      "FAILED 1 1 true");
  // Jobs with their configuration, owner and runner, and the tracking history.
  EXPECT_EQ(sql("SELECT string_agg(j.id || ':' || j.state || ':' || (c.params->>'n') || ':' || "
                "COALESCE(r.host, '-'), ' ' ORDER BY j.id) FROM jobpoll.jobs j JOIN jobpoll.job_configurations c "
                "USING (batch_id, config_id) LEFT JOIN jobpoll.runners r ON r.runner_id = j.owner"),
            "1:completed:0:- 2:failed:1:- 3:running:2:" + host() + " 4:pending:3:" + host());
  EXPECT_EQ(sql("SELECT string_agg(state, ' ' ORDER BY seq) FROM jobpoll.history WHERE job = 1"), "pending completed");
  EXPECT_EQ(
      sql("SELECT count(*) FROM jobpoll.runners WHERE lease_until > now() AND pid = " + std::to_string(::getpid())),
      "1");
}

TEST_F(PostgresStoreTest, ConcurrentTakesNeverReturnTheSameRecord) {
  constexpr std::size_t n = 600;
  open()->create(entries(n));
  {
    // Some records an earlier run left running or submitting: taken first.
    auto setup = open();
    for (std::size_t id : {500u, 7u}) {
      batch_job j = *setup->job(id);
      move_to(*setup, j, batch_job_state::running);
    }
    batch_job j = *setup->job(300);
    j.state = batch_job_state::submitting;
    setup->update(j, batch_job_state::pending, "");
  }
  constexpr int runners = 3;
  std::vector<std::vector<batch_job>> taken(runners);
  std::vector<std::string> failures(runners);
  std::vector<std::thread> threads;
  for (int r = 0; r < runners; ++r) {
    threads.emplace_back([&, r] {
      try {
        auto store = open();
        store->claim();
        for (;;) {
          auto page = store->take(7);
          if (page.empty()) break;
          for (auto& j : page) taken[static_cast<std::size_t>(r)].push_back(std::move(j));
        }
        // Held by this runner until it goes: a store left alive keeps them.
        failures[static_cast<std::size_t>(r)] = std::to_string(store->held_elsewhere());
        store.release();
      } catch (const std::exception& e) {
        failures[static_cast<std::size_t>(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::size_t> all;
  std::size_t total = 0;
  for (int r = 0; r < runners; ++r) {
    EXPECT_THAT(failures[static_cast<std::size_t>(r)], testing::MatchesRegex("[0-9]+")) << "runner " << r;
    total += taken[static_cast<std::size_t>(r)].size();
    for (const auto& j : taken[static_cast<std::size_t>(r)]) all.insert(j.id);
    EXPECT_GT(taken[static_cast<std::size_t>(r)].size(), 0u) << "runner " << r << " took nothing";
  }
  EXPECT_EQ(total, n) << "a record taken twice, or one never taken";
  EXPECT_EQ(all.size(), n);
  // The first records taken: running ones (in id order), then the submitting one.
  std::vector<std::size_t> first;
  for (const auto& per : taken)
    for (const auto& j : per)
      if (j.state != batch_job_state::pending) first.push_back(j.id);
  std::sort(first.begin(), first.end());
  EXPECT_EQ(first, (std::vector<std::size_t>{7, 300, 500}));
  for (const auto& per : taken) {
    bool pending_seen = false;
    for (const auto& j : per) {
      if (j.state == batch_job_state::pending) pending_seen = true;
      EXPECT_FALSE(pending_seen && j.state != batch_job_state::pending)
          << "job " << j.id << " taken after a pending one";
    }
  }
}

TEST_F(PostgresStoreTest, ARunnerWhoseLeaseRanOutIsTakenOverAndFenced) {
  open()->create(entries(6));
  auto a = open("nightly", {.lease = 30s});
  auto b = open("nightly", {.lease = 30s});
  a->claim();
  b->claim();
  ASSERT_NE(a->runner_id(), b->runner_id());
  auto held = a->take(3);
  ASSERT_EQ(ids_of(held), (std::vector<std::size_t>{1, 2, 3}));
  move_to(*a, held[0], batch_job_state::running);  // submitted: has a handle
  EXPECT_EQ(b->held_elsewhere(), 3u);
  EXPECT_EQ(a->held_elsewhere(), 0u);
  // B takes the others; A's are held by a live runner.
  EXPECT_EQ(ids_of(b->take(10)), (std::vector<std::size_t>{4, 5, 6}));
  EXPECT_TRUE(b->take(10).empty());

  // A's lease runs out (moved into the past on the server's clock).
  sql("UPDATE jobpoll.runners SET lease_until = now() - interval '1 second' WHERE runner_id = '" + a->runner_id() +
      "'");
  EXPECT_EQ(b->held_elsewhere(), 0u);
  const auto taken = b->take(10);
  ASSERT_EQ(ids_of(taken), (std::vector<std::size_t>{1, 2, 3})) << "running first, then pending";
  EXPECT_EQ(taken[0].state, batch_job_state::running);
  ASSERT_TRUE(taken[0].handle.has_value()) << "taken over by handle";
  EXPECT_EQ(taken[0].handle->id, "h-1");
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.jobs WHERE owner = '" + b->runner_id() + "'"), "6");
  const std::string note = sql("SELECT note FROM jobpoll.history WHERE job = 1 ORDER BY seq DESC LIMIT 1");
  EXPECT_THAT(
      note, testing::MatchesRegex("taken over from runner " + a->runner_id() + " \\(pid " + std::to_string(::getpid()) +
                                  " on host " + host() + "\\) whose lease ran out at [0-9-]+T[0-9:.]+Z"));
  EXPECT_EQ(sql("SELECT runner || ' ' || state || ' ' || previous FROM jobpoll.history WHERE job = 1 ORDER BY seq DESC "
                "LIMIT 1"),
            b->runner_id() + " running running");

  // A is fenced: its change is refused, naming B, and not made.
  batch_job late = held[0];
  late.state = batch_job_state::completed;
  const auto fenced = error_of([&] { a->update(late, batch_job_state::running, ""); });
  EXPECT_EQ(fenced.code(), jobpoll::errc::lease_lost);
  EXPECT_THAT(fenced.what(), HasSubstr("job 1 is held by runner " + b->runner_id() + " (pid "));
  EXPECT_THAT(fenced.what(), HasSubstr("not by runner " + a->runner_id()));
  EXPECT_EQ(b->job(1)->state, batch_job_state::running);
  const auto renewed = error_of([&] { a->renew(); });
  EXPECT_EQ(renewed.code(), jobpoll::errc::lease_lost);
  EXPECT_THAT(renewed.what(), HasSubstr("the lease of runner " + a->runner_id() + " ran out at "));
  EXPECT_EQ(error_of([&] { a->take(1); }).code(), jobpoll::errc::lease_lost);
  // A's release leaves B's records alone; B finishes the job by its handle.
  a->release();
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.jobs WHERE owner = '" + b->runner_id() + "'"), "6");
  batch_job done = taken[0];
  move_to(*b, done, batch_job_state::completed);
  EXPECT_EQ(b->job(1)->handle->id, "h-1");
  EXPECT_NO_THROW(b->renew());
}

// The race a fenced update must not lose: A (whose lease ran out) changes a
// record while runner B, registered after A's statement began, is taking it
// in a transaction not yet committed. A's update waits for B's row lock;
// once B commits, the record is B's, and B is live, though A's statement
// began before B existed: A is refused.
TEST_F(PostgresStoreTest, AnUpdateWaitingOnANewRunnersTakeOverIsFencedOff) {
  open()->create(entries(2));
  auto a = open();
  a->claim();
  batch_job job = a->take(1).at(0);
  sql("UPDATE jobpoll.runners SET lease_until = now() - interval '1 second' WHERE runner_id = '" + a->runner_id() + "'");
  // B, by hand: registered and taking job 1 in one open transaction.
  PGconn* b = PQconnectdb(db.conninfo().c_str());
  ASSERT_EQ(PQstatus(b), CONNECTION_OK);
  const auto exec = [&](const std::string& statement) {
    PGresult* r = PQexec(b, statement.c_str());
    EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQerrorMessage(b);
    PQclear(r);
  };
  exec("BEGIN");
  exec("INSERT INTO jobpoll.runners (runner_id, batch_id, host, pid, started, lease_until) "
       "SELECT 'runner-b', batch_id, 'b.example', 7, now(), now() + interval '1 hour' FROM jobpoll.batches");
  exec("UPDATE jobpoll.jobs SET owner = 'runner-b' WHERE id = 1");
  std::optional<std::system_error> refused;
  std::thread update([&] {
    job.state = batch_job_state::submitting;
    try {
      a->update(job, batch_job_state::pending, "");
    } catch (const std::system_error& e) {
      refused = e;
    }
  });
  // A's statement is waiting for B's row lock (a bounded wait for the server to say so).
  const auto guard = std::chrono::steady_clock::now() + 10s;
  while (sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()") !=
         "1") {
    ASSERT_LT(std::chrono::steady_clock::now(), guard) << "A's update never waited for B's lock";
    std::this_thread::sleep_for(10ms);
  }
  exec("COMMIT");
  update.join();
  PQfinish(b);
  ASSERT_TRUE(refused.has_value()) << "A overwrote a record runner B holds";
  EXPECT_EQ(refused->code(), jobpoll::errc::lease_lost);
  EXPECT_THAT(refused->what(), HasSubstr("job 1 is held by runner runner-b (pid 7 on host b.example"));
  EXPECT_EQ(sql("SELECT state || ' ' || owner FROM jobpoll.jobs WHERE id = 1"), "pending runner-b");
}

TEST_F(PostgresStoreTest, AShortLeaseRunsOutOnTheServersClockUnlessRenewed) {
  open()->create(entries(2));
  auto a = open("nightly", {.lease = 300ms});
  auto b = open("nightly");
  a->claim();
  b->claim();
  ASSERT_EQ(a->take(1).size(), 1u);
  // Renewed, the lease lasts another 300 ms from the server's now.
  a->renew();
  EXPECT_EQ(sql("SELECT lease_until > now() + interval '200 milliseconds' FROM jobpoll.runners WHERE runner_id = '" +
                a->runner_id() + "'"),
            "t");
  // Not renewed: the server says when it ran out (a bounded wait for its clock, not a sleep of a guessed length).
  const auto guard = std::chrono::steady_clock::now() + 5s;
  while (sql("SELECT lease_until <= now() FROM jobpoll.runners WHERE runner_id = '" + a->runner_id() + "'") != "t") {
    ASSERT_LT(std::chrono::steady_clock::now(), guard) << "the lease never ran out";
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(ids_of(b->take(5)), (std::vector<std::size_t>{1, 2}));
  EXPECT_EQ(error_of([&] { a->renew(); }).code(), jobpoll::errc::lease_lost);
  // Its registration stays (for the record) until removed.
  const auto runners = b->runners();
  ASSERT_EQ(runners.size(), 2u);
  const auto expired = b->release_expired();
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].id, a->runner_id());
  EXPECT_FALSE(expired[0].live);
  EXPECT_EQ(b->runners().size(), 1u);
  EXPECT_EQ(b->runners()[0].held, 2u);
}

TEST_F(PostgresStoreTest, ReleaseGivesTheRecordsBackAndInsertLeavesThemUnheld) {
  open()->create(entries(4));
  auto a = open();
  auto b = open();
  a->claim();
  b->claim();
  auto held = a->take(4);
  ASSERT_EQ(held.size(), 4u);
  move_to(*a, held[1], batch_job_state::running);
  EXPECT_TRUE(b->take(4).empty());
  // A failed record is held by no one, and its resubmission neither.
  move_to(*a, held[0], batch_job_state::failed);
  EXPECT_EQ(sql("SELECT owner IS NULL FROM jobpoll.jobs WHERE id = 1"), "t");
  batch_job child;
  child.entry = 0;
  child.parent = 1;
  child.attempt = 2;
  child.params = held[0].params;
  a->insert(child);
  EXPECT_EQ(ids_of(b->take(4)), (std::vector<std::size_t>{5}));
  const std::string a_id = a->runner_id();
  a->release();
  EXPECT_EQ(a->runner_id(), "");
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.runners WHERE runner_id = '" + a_id + "'"), "0");
  // Given back, not taken over: no such history line.
  EXPECT_EQ(ids_of(b->take(4)), (std::vector<std::size_t>{2, 3, 4}));
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.history WHERE note LIKE 'taken over%'"), "0");
  // A store that never claimed may still change a record no live runner holds (batch_run skip).
  auto reader = open();
  batch_job skipped = *reader->job(5);
  skipped.skipped = true;
  skipped.skip_reason = "by hand";
  EXPECT_EQ(error_of([&] { reader->update(skipped, skipped.state, "skipped"); }).code(), jobpoll::errc::lease_lost);
  b->release();
  reader->update(skipped, skipped.state, "skipped");
  EXPECT_TRUE(reader->job(5)->skipped);
}

TEST_F(PostgresStoreTest, MessagesThatAreNotUtf8AreKeptAndResultsThatAreNotAreRefused) {
  auto store = open();
  store->create(entries(1));
  batch_job job = *store->job(1);
  job.state = batch_job_state::failed;
  job.error = std::string("bad \xff byte and a NUL \0 here", 27);
  store->update(job, batch_job_state::pending, "");
  EXPECT_EQ(store->job(1)->error, "bad \xEF\xBF\xBD byte and a NUL \xEF\xBF\xBD here");
  job.result = "\xc3\x28";
  const auto e = error_of([&] { store->update(job, batch_job_state::failed, ""); });
  EXPECT_EQ(e.code(), jobpoll::errc::invalid_argument);
  EXPECT_THAT(e.what(), HasSubstr("job 1: its result is not UTF-8 text"));
  batch_job child;
  child.params = {{"n", std::string("a\0b", 3)}};
  EXPECT_EQ(error_of([&] { store->insert(child); }).code(), jobpoll::errc::invalid_argument);
  EXPECT_EQ(store->counts().total(), 1u);
}

TEST_F(PostgresStoreTest, ACorruptRowIsAClearErrorNamingTheJob) {
  open()->create(entries(3));
  sql("UPDATE jobpoll.job_configurations SET params = '[1, 2]' WHERE config_id = 2");
  sql("UPDATE jobpoll.job_configurations SET params = '{\"n\": 5}' WHERE config_id = 3");
  sql("UPDATE jobpoll.jobs SET handle = '{\"id\": 7}', state = 'running' WHERE id = 1");
  auto store = open();
  auto e = error_of([&] { store->job(2); });
  EXPECT_EQ(e.code(), jobpoll::errc::store_error);
  EXPECT_THAT(e.what(), HasSubstr("batch \"nightly\" job 2: params: expected a JSON object of strings, got [1,2]"));
  e = error_of([&] { store->jobs_in(batch_job_state::running, 0, 10); });
  EXPECT_EQ(e.code(), jobpoll::errc::store_error);
  EXPECT_THAT(e.what(), HasSubstr("job 1: handle/id: expected"));
  e = error_of([&] { store->job(3); });
  EXPECT_THAT(e.what(), HasSubstr("batch \"nightly\" job 3: params/n: expected a string, got 5"));
  // A number jsonb holds but a double cannot: the column is named.
  sql("UPDATE jobpoll.job_configurations SET params = '[1e999]' WHERE config_id = 3");
  e = error_of([&] { store->job(3); });
  EXPECT_THAT(e.what(), HasSubstr("batch \"nightly\" job 3: params: number overflow parsing '1000"));
  EXPECT_EQ(store->counts().total(), 3u);  // what does not need the bad rows still works
}

TEST_F(PostgresStoreTest, AnotherProgramsSchemaIsRefusedAndLeftUntouched) {
  db.sql("CREATE TABLE public.customers (id integer PRIMARY KEY, name text)");
  auto e = error_of([&] { open("b", {.schema = "public"}); });
  EXPECT_EQ(e.code(), jobpoll::errc::store_error);
  EXPECT_THAT(e.what(), HasSubstr("(schema \"public\") is not a jobpoll batch store: schema \"public\" holds 1 table "
                                  "(or views, sequences) and no jobpoll schema_version marker: it was left untouched"));
  // A table named like the marker, with other columns, is not the marker.
  db.sql("CREATE SCHEMA jobpoll; CREATE TABLE jobpoll.schema_version (major int, minor int)");
  e = error_of([&] { open(); });
  EXPECT_THAT(e.what(), HasSubstr("is not a jobpoll batch store: schema \"jobpoll\" holds 1 table"));
  EXPECT_EQ(sql("SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'jobpoll')"), "2");
  // A schema of its own in the same database is fine.
  auto store = open("b", {.schema = "batches"});
  store->create(entries(1));
  EXPECT_EQ(sql("SELECT count(*) FROM batches.jobs"), "1");
}

TEST_F(PostgresStoreTest, ANewerSchemaIsRefused) {
  open("b")->create(entries(1));
  sql("UPDATE jobpoll.schema_version SET version = 99");
  const auto e = error_of([&] { open("b"); });
  EXPECT_EQ(e.code(), jobpoll::errc::store_error);
  EXPECT_THAT(e.what(), HasSubstr("has schema version 99, newer than this jobpoll reads (1): use a newer jobpoll"));
}

TEST_F(PostgresStoreTest, AReaderNeverCreatesTheStore) {
  const auto e = error_of([&] { open("b", {.create_if_missing = false}); });
  EXPECT_EQ(e.code(), jobpoll::errc::store_error);
  EXPECT_THAT(e.what(), HasSubstr("holds no jobpoll batch store (no schema \"jobpoll\"): a run creates it"));
  EXPECT_EQ(sql("SELECT count(*) FROM pg_namespace WHERE nspname = 'jobpoll'"), "0");
  auto store = open("missing");
  const auto never = error_of([&] { store->counts(); });
  EXPECT_EQ(never.code(), jobpoll::errc::store_error);
  EXPECT_THAT(never.what(), HasSubstr(" has no batch \"missing\""));
}

TEST_F(PostgresStoreTest, ConnectionFailuresSayWhatWasWrongWithoutThePassword) {
  // Over TCP with the right password: a URI works.
  {
    postgres_store store(db.server().uri(db.name()), "b");
    store.create(entries(1));
    EXPECT_THAT(store.origin(), HasSubstr("batch store postgresql://jobpoll@127.0.0.1:"));
    EXPECT_THAT(store.origin(), Not(HasSubstr("password")));
  }
  auto e = error_of([&] { postgres_store store(db.server().uri(db.name(), "wrong-secret"), "b"); });
  EXPECT_EQ(e.code(), jobpoll::errc::store_error);
  EXPECT_THAT(e.what(), HasSubstr("cannot connect: "));
  EXPECT_THAT(e.what(), HasSubstr("password authentication failed for user \"jobpoll\""));
  EXPECT_THAT(e.what(), Not(HasSubstr("wrong-secret")));
  // A port where nothing listens.
  const int closed = [] {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof a;
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size);
    ::close(fd);
    return ntohs(a.sin_port);
  }();
  e = error_of([&] { postgres_store store("postgresql://jobpoll@127.0.0.1:" + std::to_string(closed) + "/x", "b"); });
  EXPECT_EQ(e.code(), jobpoll::errc::store_error);
  EXPECT_THAT(e.what(), HasSubstr("batch store postgresql://jobpoll@127.0.0.1:" + std::to_string(closed) +
                                  "/x (schema \"jobpoll\"): cannot connect: connection to server at \"127.0.0.1\""));
  EXPECT_THAT(e.what(), HasSubstr("Connection refused"));
  // A database that does not exist, and a connection string libpq cannot read.
  e = error_of([&] { postgres_store store(db.server().conninfo("no_such_db"), "b"); });
  EXPECT_THAT(e.what(), HasSubstr("database \"no_such_db\" does not exist"));
  e = error_of([&] { postgres_store store("host=/tmp nonsense", "b"); });
  EXPECT_EQ(e.code(), jobpoll::errc::store_error);
  EXPECT_THAT(e.what(), HasSubstr("the PostgreSQL connection string is not valid"));
  EXPECT_THROW(open("b", {.lease = 0ms}), std::invalid_argument);
}

TEST_F(PostgresStoreTest, AServerThatGoesAwayFailsCallsUntilItIsBack) {
  auto store = open();
  store->create(entries(2));
  batch_job job = *store->job(1);
  auto& server = db.server();
  server.stop();
  job.state = batch_job_state::submitting;
  auto e = error_of([&] { store->update(job, batch_job_state::pending, ""); });
  server.start();  // before any assertion: the other tests need it
  EXPECT_EQ(e.code(), jobpoll::errc::store_error);
  EXPECT_THAT(e.what(), HasSubstr(store->origin() + ": updating job 1 of batch \"nightly\": "));
  // The next call reconnects.
  store->update(job, batch_job_state::pending, "after the restart");
  EXPECT_EQ(store->job(1)->state, batch_job_state::submitting);
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.history WHERE job = 1"), "2");
}

TEST_F(PostgresStoreTest, TheWorkerRunsCallsOnOneThreadOfItsOwn) {
  auto store = open();
  store->create(entries(3));
  const auto here = std::this_thread::get_id();
  std::thread::id first, second;
  auto counted = asio::post(store->worker_executor(), asio::use_future([&] {
                              first = std::this_thread::get_id();
                              return store->counts().total();
                            }));
  EXPECT_EQ(counted.get(), 3u);
  asio::post(store->worker_executor(), asio::use_future([&] { second = std::this_thread::get_id(); })).get();
  EXPECT_NE(first, here);
  EXPECT_EQ(first, second);
}

// A real full disk: the store's tables in a tablespace on a 4 MiB tmpfs,
// filled up. Needs mount(2) (root with CAP_SYS_ADMIN); skipped otherwise.
TEST_F(PostgresStoreTest, ADiskFullLeavesTheRecordAsItWas) {
  const std::filesystem::path small = db.server().dir() / ("small-" + db.name());
  std::filesystem::create_directories(small);
  const passwd* owner = ::geteuid() == 0 ? ::getpwnam("postgres") : nullptr;
  const std::string mount_options = "size=4m,mode=0700,uid=" + std::to_string(owner ? owner->pw_uid : ::geteuid()) +
                                    ",gid=" + std::to_string(owner ? owner->pw_gid : ::getegid());
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, mount_options.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::filesystem::remove(small);
    GTEST_SKIP() << "cannot mount a tmpfs here (" << why << "): no full disk to test with";
  }
  struct unmount {
    std::filesystem::path at;
    ~unmount() {
      ::umount2(at.c_str(), MNT_DETACH);
      jobpoll::error_code ignored;
      std::filesystem::remove(at, ignored);
    }
  } cleanup{small};
  const std::string space = "small_" + db.name();
  db.sql("CREATE TABLESPACE " + space + " LOCATION '" + small.string() + "'");
  {
    postgres_store store(db.conninfo() + " options='-c default_tablespace=" + space + "'", "b");
    store.create(entries(50));
    // Fill the tablespace up.
    db.sql("SET default_tablespace = " + space + "; CREATE TABLE filler (pad text)");
    for (int i = 0; i < 1000; ++i) {
      try {
        db.sql("INSERT INTO filler SELECT repeat(md5(random()::text), 30) FROM generate_series(1, 200)");
      } catch (const std::runtime_error& e) {
        ASSERT_THAT(e.what(), HasSubstr("No space left on device"));
        break;
      }
    }
    // Change records (with text that does not compress) until one needs a page there is no room for.
    std::mt19937 random(7);
    std::optional<std::system_error> full;
    batch_job before;
    for (int round = 0; round < 100 && !full; ++round) {
      for (std::size_t id = 1; id <= 50 && !full; ++id) {
        batch_job job = *store.job(id);
        before = job;
        job.error.clear();
        for (int k = 0; k < 2000; ++k) job.error += static_cast<char>('a' + random() % 26);
        job.state = batch_job_state::failed;
        try {
          store.update(job, before.state, "filling the disk");
        } catch (const std::system_error& e) {
          full = e;
        }
      }
    }
    ASSERT_TRUE(full.has_value()) << "the disk never filled";
    EXPECT_EQ(full->code(), jobpoll::errc::store_error);
    EXPECT_THAT(full->what(), HasSubstr(store.origin() + ": updating job "));
    EXPECT_THAT(full->what(), HasSubstr("No space left on device"));
    EXPECT_THAT(full->what(), HasSubstr("[SQLSTATE 53100]"));
    const batch_job now = *store.job(before.id);
    EXPECT_EQ(now.error, before.error) << "the failed change was made";
    EXPECT_EQ(now.state, before.state);
    const std::string rows = sql("SELECT count(*) FROM jobpoll.history WHERE job = " + std::to_string(before.id));
    // Room again: the same change goes through.
    db.sql("DROP TABLE filler");
    batch_job job = now;
    job.state = batch_job_state::failed;
    job.error = "after the disk was freed";
    store.update(job, now.state, "");
    EXPECT_EQ(store.job(before.id)->error, "after the disk was freed");
    EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.history WHERE job = " + std::to_string(before.id)),
              std::to_string(std::stoi(rows) + 1));
  }
  db.sql("DROP SCHEMA jobpoll CASCADE");
  db.sql("DROP TABLESPACE " + space);
}

// --- batch_runner on postgres_store ---------------------------------------------

using api_type = jobpoll_test::steady_memory_job_api;
using status_type = jobpoll::field_status<jobpoll::json_codec>;
using client_type = jobpoll::job_client<api_type, jobpoll::json_codec, status_type>;
using runner_type = jobpoll::batch_runner<client_type, postgres_store>;
using json = nlohmann::json;

static_assert(jobpoll::shared_batch_store<postgres_store>);

// Entry k: job "e<k>" answering running `polls` times.
std::vector<jobpoll::batch_entry> job_entries(std::size_t n, int polls) {
  std::vector<jobpoll::batch_entry> out;
  for (std::size_t k = 0; k < n; ++k)
    out.emplace_back(jobpoll::job_params{
        {"name", "e" + std::to_string(k)}, {"polls", std::to_string(polls)}, {"outcome", "completed"}});
  return out;
}

class PostgresRunnerTest : public PostgresStoreTest {
 protected:
  jobpoll::batch_options options(std::size_t in_flight) {
    jobpoll::batch_options o;
    o.max_in_flight = in_flight;
    o.job.interval = jobpoll::fixed_interval{2ms};
    return o;
  }

  // Runs `runner` to its end on `ctx` (with whatever else was spawned there).
  static void spawn(asio::io_context& ctx, runner_type& runner, std::optional<jobpoll::batch_report>& report,
                    std::exception_ptr& failure) {
    asio::co_spawn(ctx, runner.run(), [&](std::exception_ptr e, jobpoll::batch_report r) {
      failure = e;
      if (!e) report = std::move(r);
    });
  }

  // Every entry submitted exactly once to `api`.
  static void expect_each_submitted_once(const api_type& api, std::size_t n) {
    EXPECT_EQ(api.submits(), n);
    for (std::size_t k = 0; k < n; ++k) EXPECT_EQ(api.submits_named("e" + std::to_string(k)), 1u) << "entry " << k;
  }

  asio::io_context ctx;
  api_type api{ctx.get_executor()};
  client_type client{api, jobpoll_test::memory_job_description(), jobpoll_test::memory_job_status()};
};

TEST_F(PostgresRunnerTest, OneRunnerRunsTheBatchAndKeepsEveryResult) {
  constexpr std::size_t n = 40;
  auto store = open("b");
  store->create(job_entries(n, 2));
  std::optional<jobpoll::batch_report> report;
  std::exception_ptr failure;
  {
    runner_type runner(ctx.get_executor(), client, *store, options(6),
                       [](const batch_job&, jobpoll::job_result<json>& r) { return r.value.dump(); });
    spawn(ctx, runner, report, failure);
    ctx.run();
  }
  ASSERT_FALSE(failure);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->end, jobpoll::batch_end::finished);
  EXPECT_EQ(report->summary.status, jobpoll::batch_status::completed);
  EXPECT_EQ(report->summary.counts[batch_job_state::completed], n);
  EXPECT_LE(report->peak_in_flight, 6u);
  expect_each_submitted_once(api, n);
  EXPECT_EQ(json::parse(store->job(5)->result).at("name"), "e4");
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.jobs WHERE owner IS NOT NULL"), "0");
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.runners"), "0") << "the runner released its registration";
  // pending, submitting, running, completed for each job.
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.history"), std::to_string(4 * n));
}

TEST_F(PostgresRunnerTest, ThreeRunnersOnOneBatchSubmitEachEntryOnce) {
  constexpr std::size_t n = 90;
  open("b")->create(job_entries(n, 3));
  std::vector<std::unique_ptr<postgres_store>> stores;
  std::vector<std::unique_ptr<runner_type>> runners;
  std::vector<std::optional<jobpoll::batch_report>> reports(3);
  std::vector<std::exception_ptr> failures(3);
  std::map<std::string, std::set<std::string>> ran_by;  // runner id -> job names
  for (std::size_t r = 0; r < 3; ++r) {
    // A short lease: a runner with nothing left to take waits half of it while others still run jobs.
    stores.push_back(open("b", {.lease = 1s}));
    auto o = options(4);
    const auto* store = stores.back().get();
    o.on_progress = [&ran_by, store](const jobpoll::batch_counts&, const batch_job& job) {
      if (job.state == batch_job_state::completed) ran_by[store->runner_id()].insert(job.params.at("name"));
    };
    runners.push_back(std::make_unique<runner_type>(ctx.get_executor(), client, *stores.back(), o));
  }
  for (std::size_t r = 0; r < 3; ++r) spawn(ctx, *runners[r], reports[r], failures[r]);
  ctx.run();
  for (std::size_t r = 0; r < 3; ++r) {
    ASSERT_FALSE(failures[r]) << "runner " << r;
    ASSERT_TRUE(reports[r].has_value());
    EXPECT_EQ(reports[r]->end, jobpoll::batch_end::finished) << reports[r]->reason;
    EXPECT_EQ(reports[r]->summary.counts[batch_job_state::completed], n) << "each report reconciles the whole batch";
  }
  expect_each_submitted_once(api, n);
  EXPECT_EQ(ran_by.size(), 3u) << "every runner ran some of the jobs";
  std::size_t total = 0;
  for (const auto& [id, names] : ran_by) total += names.size();
  EXPECT_EQ(total, n) << "a job completed by two runners";
}

TEST_F(PostgresRunnerTest, ADeadRunnersRunningJobsAreFinishedByAnotherByHandle) {
  constexpr std::size_t n = 8;
  open("b")->create(job_entries(n, 2));
  // Runner A took three records and submitted them, then died: its store is
  // never renewed again (a process that is gone), with a lease of 500 ms.
  auto dead = open("b", {.lease = 500ms});
  dead->claim();
  auto held = dead->take(3);
  ASSERT_EQ(held.size(), 3u);
  for (auto& job : held) {
    auto handle = asio::co_spawn(ctx, client.submit(job.params, jobpoll::poll_options{}), asio::use_future);
    ctx.run();
    ctx.restart();
    job.handle = handle.get();
    job.submitted = std::chrono::system_clock::now();
    job.state = batch_job_state::running;
    dead->update(job, batch_job_state::pending, "");
  }
  ASSERT_EQ(api.submits(), 3u);
  // Runner B (lease 1 s) runs the rest, waits while A's lease lasts, then takes A's jobs over.
  auto store = open("b", {.lease = 1s});
  std::optional<jobpoll::batch_report> report;
  std::exception_ptr failure;
  {
    runner_type runner(ctx.get_executor(), client, *store, options(4));
    spawn(ctx, runner, report, failure);
    ctx.run();
  }
  ASSERT_FALSE(failure);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->end, jobpoll::batch_end::finished);
  EXPECT_EQ(report->summary.counts[batch_job_state::completed], n);
  EXPECT_EQ(report->resumed, 3u) << "polled by their handles";
  expect_each_submitted_once(api, n);  // A's three never submitted again
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.history WHERE note LIKE 'taken over from runner " + dead->runner_id() +
                " (pid %) whose lease ran out at %'"),
            "3");
  for (std::size_t id = 1; id <= 3; ++id) EXPECT_EQ(store->job(id)->handle->id, held[id - 1].handle->id);
  EXPECT_EQ(error_of([&] { dead->renew(); }).code(), jobpoll::errc::lease_lost);
}

TEST_F(PostgresRunnerTest, ARunnerTakenForDeadIsFencedOffAndStopsWithLeaseLost) {
  constexpr std::size_t n = 6;
  open("b")->create(job_entries(n, 40));
  auto store_a = open("b", {.lease = 1s});
  auto store_b = open("b", {.lease = 1s});
  std::optional<jobpoll::batch_report> report_a, report_b;
  std::exception_ptr failure_a, failure_b;
  auto options_a = options(3);
  bool expired = false;
  std::string held_by_a;  // what A held when its lease ran out
  runner_type* b = nullptr;
  // Once A polls three jobs, its lease is made to run out and B starts: B
  // takes them over, and A's next save is refused.
  options_a.on_progress = [&](const jobpoll::batch_counts&, const batch_job& job) {
    if (expired || job.state != batch_job_state::running ||
        sql("SELECT count(*) FROM jobpoll.jobs WHERE state = 'running'") != "3")
      return;
    expired = true;
    held_by_a = sql("SELECT count(*) FROM jobpoll.jobs WHERE owner = '" + store_a->runner_id() + "'");
    sql("UPDATE jobpoll.runners SET lease_until = now() - interval '1 second' WHERE runner_id = '" +
        store_a->runner_id() + "'");
    spawn(ctx, *b, report_b, failure_b);
  };
  runner_type runner_a(ctx.get_executor(), client, *store_a, options_a);
  runner_type runner_b(ctx.get_executor(), client, *store_b, options(3));
  b = &runner_b;
  spawn(ctx, runner_a, report_a, failure_a);
  ctx.run();
  ASSERT_TRUE(expired);
  ASSERT_TRUE(failure_a) << "A ended without an error";
  try {
    std::rethrow_exception(failure_a);
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::lease_lost) << e.what();
    EXPECT_THAT(e.what(), HasSubstr("held by runner " + store_b->runner_id()));
  }
  ASSERT_FALSE(failure_b);
  ASSERT_TRUE(report_b.has_value());
  EXPECT_EQ(report_b->summary.counts[batch_job_state::completed], n);
  expect_each_submitted_once(api, n);
  // B took over everything A held (its three running jobs, by handle, and what it had taken to run next).
  EXPECT_GE(std::stoi(held_by_a), 3);
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.history WHERE note LIKE 'taken over from runner %'"), held_by_a);
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.history WHERE note LIKE 'taken over from runner %' AND state = 'running' "
                "AND handle IS NOT NULL"),
            "3");
}

TEST_F(PostgresRunnerTest, PostgresGoingDownStopsTheRunnerAndTheNextRunFinishesEachJobOnce) {
  constexpr std::size_t n = 30;
  open("b")->create(job_entries(n, 20));
  // Submits carry their key, which the API deduplicates: a cut submit is sent again safely.
  jobpoll::job_description keyed = jobpoll_test::memory_job_description();
  keyed.submit.headers.add("Idempotency-Key", "{job_key}");
  keyed.idempotent_submit = true;
  client_type keyed_client(api, keyed, jobpoll_test::memory_job_status());
  auto& server = db.server();
  std::exception_ptr failure;
  {
    auto store = open("b", {.lease = 1s});
    std::optional<jobpoll::batch_report> report;
    auto o = options(6);
    bool stopped = false;
    o.on_progress = [&](const jobpoll::batch_counts& counts, const batch_job&) {
      if (stopped || counts[batch_job_state::completed] < 5) return;
      stopped = true;
      server.stop();  // mid-run: jobs are being submitted and polled
    };
    runner_type runner(ctx.get_executor(), keyed_client, *store, o);
    spawn(ctx, runner, report, failure);
    ctx.run();
    ctx.restart();
  }
  server.start();  // before any assertion: the other tests need it
  ASSERT_TRUE(failure) << "the runner went on without its store";
  try {
    std::rethrow_exception(failure);
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), jobpoll::errc::store_error) << e.what();
    EXPECT_THAT(e.what(), HasSubstr("batch store postgresql://jobpoll@"));
  }
  // The next run (another store object: the first one's registration is left
  // behind and runs out) finishes the batch, each entry created once.
  auto store = open("b", {.lease = 1s});
  std::optional<jobpoll::batch_report> report;
  failure = nullptr;
  {
    runner_type runner(ctx.get_executor(), keyed_client, *store, options(6));
    spawn(ctx, runner, report, failure);
    ctx.run();
  }
  ASSERT_FALSE(failure);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->summary.counts[batch_job_state::completed], n) << report->reason;
  expect_each_submitted_once(api, n);
}

}  // namespace
