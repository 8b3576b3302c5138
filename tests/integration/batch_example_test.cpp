// The batch example (examples/batch_run.cpp), run as a child process against
// the loopback job server: SIGTERM and resume, resubmission lineage, a second
// signal with remote cancel, refused stores, progress lines, usage errors,
// and each subcommand (status, results, history, resubmit, skip, adopt,
// release). What happened is read from the server's own records, the store
// (opened with sqlite_store, or through the subcommands) and the program's output.

#include <algorithm>
#include <csignal>
#include <cstddef>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sqlite3.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <jobpoll/batch/audit_log.hpp>
#include <jobpoll/store/sqlite.hpp>

#include "child_process.hpp"
#include "loopback_server.hpp"
#include "temp_dir.hpp"

#ifndef JOBPOLL_TEST_BATCH_EXAMPLE
#error "batch_example_test.cpp needs JOBPOLL_TEST_BATCH_EXAMPLE, the path of the built batch_run (tests/CMakeLists.txt sets it)"
#endif

namespace {

namespace fs = std::filesystem;
using jobpoll::batch_job_state;
using jobpoll::test::loopback_server;
using jobpoll_test::child_process;
using jobpoll_test::read_bytes;
using jobpoll_test::temp_dir;
using run_result = jobpoll_test::child_result;
using json = nlohmann::json;
using testing::HasSubstr;
using testing::StartsWith;

// batch_run's command line: its path, then `args`.
std::vector<std::string> batch_command(std::vector<std::string> args) {
  args.insert(args.begin(), JOBPOLL_TEST_BATCH_EXAMPLE);
  return args;
}

run_result run_batch(std::vector<std::string> args) { return jobpoll_test::run_child(batch_command(std::move(args))); }

// The store of a test: batch.db in its directory.
fs::path store_of(const temp_dir& dir) { return dir / "batch.db"; }

std::vector<std::string> batch_args(const loopback_server& server, const temp_dir& dir,
                                    std::initializer_list<std::string> more) {
  std::vector<std::string> args{"--server", server.base_url(), "--store", store_of(dir).string()};
  args.insert(args.end(), more);
  return args;
}

// A subcommand on the test's store: `batch_run --store <store> <more...>` (no server).
run_result run_sub(const temp_dir& dir, std::initializer_list<std::string> more) {
  std::vector<std::string> args{"--store", store_of(dir).string()};
  args.insert(args.end(), more);
  return run_batch(std::move(args));
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Every record of the batch `name` in the test's store, in id order.
std::vector<jobpoll::batch_job> records_of(const temp_dir& dir, const std::string& name = "batch_run") {
  jobpoll::sqlite_store store(store_of(dir), name);
  std::vector<jobpoll::batch_job> jobs;
  store.for_each_job([&](const jobpoll::batch_job& job) { jobs.push_back(job); });
  return jobs;
}

// `batch_run results`, one parsed line each.
std::vector<json> results_of(const temp_dir& dir) {
  const run_result r = run_sub(dir, {"results"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.empty() || r.out.back() == '\n');
  std::vector<json> results;
  for (const auto& line : lines_of(r.out)) results.push_back(json::parse(line));
  return results;
}

// How many times the server received POST /v1/jobs for each params.n.
std::map<int, int> posts_by_n(const json& log) {
  std::map<int, int> posts;
  for (const auto& entry : log)
    if (entry.at("method") == "POST" && entry.at("path") == "/v1/jobs")
      ++posts[json::parse(entry.at("body").get<std::string>()).at("params").at("n").get<int>()];
  return posts;
}

std::size_t count_requests(const json& log, std::string_view method, const std::string& path, std::size_t from = 0) {
  std::size_t n = 0;
  for (std::size_t i = from; i < log.size(); ++i)
    if (log[i].at("method") == method && log[i].at("path") == path) ++n;
  return n;
}

std::map<int, int> every_n_once(int jobs) {
  std::map<int, int> once;
  for (int n = 0; n < jobs; ++n) once[n] = 1;
  return once;
}

// The summary's job_status_counts: it names only the states with a record.
json status_counts(std::initializer_list<std::pair<const char*, std::size_t>> counts) {
  json out = json::object();
  for (const auto& [name, n] : counts)
    if (n > 0) out[name] = n;
  return out;
}

// The expected summary: `fields` and their job_status_counts.
json summary_of(std::string_view fields, json counts) {
  json summary = json::parse(fields);
  summary["job_status_counts"] = std::move(counts);
  return summary;
}

std::size_t count_state(const std::vector<jobpoll::batch_job>& jobs, batch_job_state state) {
  return static_cast<std::size_t>(std::count_if(jobs.begin(), jobs.end(), [state](const jobpoll::batch_job& j) {
    return !j.skipped && j.state == state;
  }));
}

// /_control/submissions: every POST /v1/jobs the server received.
json submissions_of(const loopback_server& server) { return server.control("GET", "/_control/submissions"); }

TEST(BatchExample, SigtermThenResumeRunsEveryJobOnce) {
  constexpr int jobs = 40;
  constexpr std::size_t concurrency = 6;
  constexpr int steps = 20;
  loopback_server server;
  temp_dir dir;
  const auto args = batch_args(server, dir,
                               {"--jobs", std::to_string(jobs), "--steps", std::to_string(steps), "--interval", "50ms",
                                "--concurrency", std::to_string(concurrency), "--grace", "0"});

  // SIGTERM once a second wave of jobs is being polled, each far from its
  // end: every worker then polls (none is submitting, which a stop would
  // leave for the next run to settle), and no job can end and free a worker
  // before the program handles the signal.
  child_process first(batch_command(args));
  first.wait_until(
      [&] {
        const json now = server.jobs();
        if (now.at("v1_jobs").get<int>() < 10) return false;
        std::size_t unfinished = 0;
        for (const auto& job : now.at("jobs")) {
          if (job.at("status") == "completed") continue;
          const int polls = job.at("polls").get<int>();
          if (polls < 1 || polls > steps / 2) return false;
          ++unfinished;
        }
        return unfinished == concurrency;
      },
      "second wave of jobs being polled");
  first.send(SIGTERM);
  const run_result stopped = first.finish();

  ASSERT_TRUE(stopped.exited) << "signal " << stopped.signal;
  EXPECT_EQ(stopped.exit_code, 2) << stopped.err;
  EXPECT_THAT(stopped.err, HasSubstr("batch_run: SIGTERM received: no new jobs; jobs in flight may finish within the "
                                     "grace period, then are left running for a resume (a second signal: at once)\n"));

  std::vector<jobpoll::batch_job> saved = records_of(dir);
  {
    jobpoll::sqlite_store store(store_of(dir), "batch_run");
    EXPECT_EQ(store.info().entries, static_cast<std::size_t>(jobs));
    EXPECT_FALSE(store.owner()) << "the stopped runner still owns the batch";
  }
  ASSERT_EQ(saved.size(), static_cast<std::size_t>(jobs));
  const std::size_t completed = count_state(saved, batch_job_state::completed);
  const std::size_t running = count_state(saved, batch_job_state::running);
  const std::size_t pending = count_state(saved, batch_job_state::pending);
  EXPECT_GE(completed, 4u);
  EXPECT_EQ(running, concurrency);
  EXPECT_GE(pending, 1u);
  EXPECT_EQ(completed + running + pending, static_cast<std::size_t>(jobs));

  // The store agrees with the server: its completed jobs are the server's
  // completed ones, its running jobs (by handle) the others, and its pending
  // jobs were never submitted.
  const json server_jobs = server.jobs();
  EXPECT_EQ(server_jobs.at("v1_jobs").get<std::size_t>(), completed + running);
  std::set<std::string> server_completed, server_unfinished, saved_completed, saved_running;
  for (const auto& job : server_jobs.at("jobs"))
    (job.at("status") == "completed" ? server_completed : server_unfinished).insert(job.at("id").get<std::string>());
  for (const auto& job : saved) {
    if (job.state == batch_job_state::pending) {
      EXPECT_FALSE(job.handle) << "job " << job.id;
      continue;
    }
    ASSERT_TRUE(job.handle) << "job " << job.id;
    (job.state == batch_job_state::completed ? saved_completed : saved_running).insert(job.handle->id);
  }
  EXPECT_EQ(saved_completed, server_completed);
  EXPECT_EQ(saved_running, server_unfinished);

  const json stopped_summary = json::parse(stopped.out);
  EXPECT_EQ(stopped_summary.at("status"), "ACTIVE");
  EXPECT_EQ(stopped_summary.at("end"), "stopped");
  EXPECT_EQ(stopped_summary.at("reason"), "SIGTERM received; " + std::to_string(running + pending) +
                                              " jobs left for a resume (" + std::to_string(running) + " running, " +
                                              std::to_string(pending) + " pending)");
  EXPECT_EQ(stopped_summary.at("total_configs"), jobs);
  EXPECT_EQ(stopped_summary.at("fulfilled_configs"), completed);
  EXPECT_EQ(stopped_summary.at("job_status_counts"),
            status_counts({{"COMPLETED", completed}, {"RUNNING", running}, {"PENDING", pending}}));
  EXPECT_EQ(stopped_summary.at("peak_in_flight"), concurrency);
  const std::size_t log_at_stop = server.log().size();

  const run_result resumed = run_batch(args);
  ASSERT_TRUE(resumed.exited) << "signal " << resumed.signal;
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_THAT(resumed.err, StartsWith("resuming: " + std::to_string(completed) + " completed, " +
                                      std::to_string(running) + " running, " + std::to_string(pending) +
                                      " pending\n"));
  const json summary = json::parse(resumed.out);
  EXPECT_EQ(summary, summary_of(R"json({"status": "COMPLETED", "end": "finished", "reason": "no job left to run",
      "total_configs": 40, "fulfilled_configs": 40, "total_jobs": 40, "failed_job_ids": [], "resumed": 6,
      "peak_in_flight": 6})json",
                                status_counts({{"COMPLETED", jobs}})));

  // The server's records: every entry submitted exactly once; every job
  // left running was polled again by its handle after the restart.
  const json log = server.log();
  EXPECT_EQ(count_requests(log, "POST", "/v1/jobs"), static_cast<std::size_t>(jobs));
  EXPECT_EQ(posts_by_n(log), every_n_once(jobs));
  for (const auto& id : saved_running)
    EXPECT_GT(count_requests(log, "GET", "/v1/jobs/" + id, log_at_stop), 0u) << id << " was not polled after the restart";
  const json final_jobs = server.jobs().at("jobs");
  ASSERT_EQ(final_jobs.size(), static_cast<std::size_t>(jobs));
  for (const auto& job : final_jobs) {
    EXPECT_EQ(job.at("status"), "completed") << job.dump();
    EXPECT_EQ(job.at("cancelled"), false) << job.dump();
  }

  // Every result once, as the server gave it, kept in the store.
  const std::vector<jobpoll::batch_job> done = records_of(dir);
  ASSERT_EQ(done.size(), static_cast<std::size_t>(jobs));
  const std::vector<json> results = results_of(dir);
  ASSERT_EQ(results.size(), static_cast<std::size_t>(jobs));
  for (std::size_t i = 0; i < results.size(); ++i) {
    const json& line = results[i];
    EXPECT_EQ(line.at("entry"), i) << "results in entry order";
    const jobpoll::batch_job& record = done[i];
    EXPECT_EQ(record.state, batch_job_state::completed);
    EXPECT_EQ(line.at("job"), record.id);
    ASSERT_TRUE(record.handle);
    EXPECT_EQ(line.at("handle"), record.handle->id);
    EXPECT_EQ(line.at("result"), json({{"tool", "batch"}, {"params", {{"n", i}}}}));
    EXPECT_EQ(json::parse(record.result), line.at("result"));
  }
  // Last, since a GET is a request of its own: the server's result for each handle.
  for (const json& line : results) {
    const auto answer = server.request("GET", "/v1/jobs/" + line.at("handle").get<std::string>());
    EXPECT_EQ(json::parse(answer.body).at("result"), line.at("result"));
  }
}

TEST(BatchExample, FailuresAreResubmittedWithLineage) {
  loopback_server server;
  temp_dir dir;
  // Entries 4 and 9 fail on the server, and so do their resubmissions.
  const run_result run = run_batch(batch_args(
      server, dir,
      {"--jobs", "10", "--steps", "1", "--interval", "0", "--concurrency", "3", "--fail-every", "5", "--resubmits", "1"}));

  ASSERT_TRUE(run.exited) << "signal " << run.signal;
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_EQ(json::parse(run.out), summary_of(R"json({"status": "FAILED", "end": "finished", "reason": "no job left to run",
      "total_configs": 10, "fulfilled_configs": 8, "total_jobs": 12, "failed_job_ids": [11, 12], "resumed": 0,
      "peak_in_flight": 3})json",
                                             status_counts({{"COMPLETED", 8}, {"FAILED", 2}, {"SKIPPED", 2}})));

  // Jobs 1..10 are the entries; 11 and 12 resubmit the failures of entries 4
  // and 9, in the order those failed.
  const std::vector<jobpoll::batch_job> saved = records_of(dir);
  ASSERT_EQ(saved.size(), 12u);
  std::set<std::size_t> parents;
  for (std::size_t id : {11u, 12u}) {
    const jobpoll::batch_job& child = saved[id - 1];
    ASSERT_TRUE(child.parent) << "job " << id;
    const jobpoll::batch_job& parent = saved[*child.parent - 1];
    parents.insert(parent.id);
    EXPECT_EQ(parent.id, parent.entry + 1);
    EXPECT_EQ(child.entry, parent.entry);
    EXPECT_EQ(child.attempt, 2u);
    EXPECT_EQ(child.state, batch_job_state::failed);
    EXPECT_FALSE(child.skipped);
    EXPECT_THAT(child.error, HasSubstr("status \"failed\": job failed"));
    EXPECT_EQ(parent.attempt, 1u);
    EXPECT_EQ(parent.state, batch_job_state::failed);
    EXPECT_TRUE(parent.skipped);
    EXPECT_EQ(parent.skip_reason, "resubmitted as job " + std::to_string(id));
    EXPECT_EQ(child.params, parent.params);
    EXPECT_EQ(child.params, (jobpoll::job_params{{"n", std::to_string(parent.entry)}, {"outcome", "failed"}}));
    EXPECT_NE(child.key, parent.key);
  }
  EXPECT_EQ(parents, (std::set<std::size_t>{5, 10}));

  std::map<int, int> expected_posts = every_n_once(10);
  expected_posts[4] = expected_posts[9] = 2;
  EXPECT_EQ(posts_by_n(server.log()), expected_posts);

  std::vector<int> with_result;
  for (const json& line : results_of(dir)) with_result.push_back(line.at("entry").get<int>());
  EXPECT_EQ(with_result, (std::vector<int>{0, 1, 2, 3, 5, 6, 7, 8}));
}

TEST(BatchExample, SecondSignalCancelsAtOnceAndResumeSubmitsAgain) {
  loopback_server server;
  temp_dir dir;
  // Jobs that never end and a grace period longer than the failure guard:
  // only the second signal can end this run.
  child_process batch(batch_command(batch_args(server, dir,
                                               {"--jobs", "20", "--steps", "1000000", "--interval", "50ms",
                                                "--concurrency", "4", "--grace", "10m", "--cancel-on-stop"})));
  batch.wait_until(
      [&] {
        const json now = server.jobs();
        if (now.at("v1_jobs") != 4) return false;
        return std::all_of(now.at("jobs").begin(), now.at("jobs").end(),
                           [](const json& job) { return job.at("polls").get<int>() >= 1; });
      },
      "4 jobs being polled");
  batch.send(SIGTERM);
  // The second signal only once the first was handled: Asio would hand two
  // pending signals over in signal-number order, SIGINT first.
  const std::string first_note = "batch_run: SIGTERM received: no new jobs; jobs in flight may finish within the grace "
                                 "period, then are cancelled on the server (a second signal: at once)\n";
  batch.wait_until([&] { return batch.err().find(first_note) != std::string::npos; }, "note of the first signal");
  batch.send(SIGINT);
  const run_result run = batch.finish();

  ASSERT_TRUE(run.exited) << "signal " << run.signal;
  EXPECT_EQ(run.exit_code, 2) << run.err;
  EXPECT_THAT(run.err,
              HasSubstr("batch_run: SIGINT received again: stopping at once; jobs in flight are cancelled on the server\n"));
  EXPECT_EQ(json::parse(run.out), summary_of(R"json({"status": "ACTIVE", "end": "stopped",
      "reason": "SIGTERM received; 16 jobs left for a resume (0 running, 16 pending)",
      "total_configs": 20, "fulfilled_configs": 0, "total_jobs": 20, "failed_job_ids": [], "resumed": 0,
      "peak_in_flight": 4})json",
                                             status_counts({{"CANCELLED", 4}, {"PENDING", 16}})));

  // On the server: 4 jobs, each DELETEd once and cancelled; no other submit.
  const json log = server.log();
  EXPECT_EQ(count_requests(log, "POST", "/v1/jobs"), 4u);
  const json server_jobs = server.jobs().at("jobs");
  ASSERT_EQ(server_jobs.size(), 4u);
  std::set<std::string> server_ids;
  for (const auto& job : server_jobs) {
    const std::string id = job.at("id");
    server_ids.insert(id);
    EXPECT_EQ(job.at("cancelled"), true) << id;
    EXPECT_EQ(count_requests(log, "DELETE", "/v1/jobs/" + id), 1u) << id;
  }

  // In the store: those 4 cancelled by their handles, the rest pending.
  const std::vector<jobpoll::batch_job> saved = records_of(dir);
  ASSERT_EQ(saved.size(), 20u);
  std::set<std::string> cancelled_ids;
  for (const auto& job : saved) {
    if (job.state == batch_job_state::pending) {
      EXPECT_FALSE(job.handle) << "job " << job.id;
      continue;
    }
    EXPECT_EQ(job.state, batch_job_state::cancelled) << "job " << job.id;
    ASSERT_TRUE(job.handle) << "job " << job.id;
    cancelled_ids.insert(job.handle->id);
    EXPECT_THAT(job.error, HasSubstr("remote cancel sent (HTTP 200")) << "job " << job.id;
  }
  EXPECT_EQ(cancelled_ids, server_ids);
  EXPECT_EQ(count_state(saved, batch_job_state::pending), 16u);

  // The run again (short jobs this time: the steps are not part of the
  // batch's input) submits the cancelled entries again, as children.
  const run_result again =
      run_batch(batch_args(server, dir, {"--jobs", "20", "--steps", "1", "--interval", "0", "--concurrency", "4"}));
  ASSERT_TRUE(again.exited) << "signal " << again.signal;
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.err,
              StartsWith("resuming: 0 completed, 0 running, 16 pending, 4 cancelled at the stop (submitted again)\n"));
  EXPECT_EQ(json::parse(again.out), summary_of(R"json({"status": "COMPLETED", "end": "finished",
      "reason": "no job left to run", "total_configs": 20, "fulfilled_configs": 20, "total_jobs": 24,
      "failed_job_ids": [], "resumed": 0, "peak_in_flight": 4})json",
                                               status_counts({{"COMPLETED", 20}, {"SKIPPED", 4}})));
  const std::vector<jobpoll::batch_job> done = records_of(dir);
  ASSERT_EQ(done.size(), 24u);
  std::map<std::size_t, std::size_t> job_of_entry;  // the record whose result counts
  for (std::size_t parent = 1; parent <= 4; ++parent) {
    const jobpoll::batch_job& child = done[20 + parent - 1];
    EXPECT_EQ(child.parent, parent);
    EXPECT_EQ(child.entry, parent - 1);
    EXPECT_EQ(child.state, batch_job_state::completed);
    EXPECT_EQ(done[parent - 1].state, batch_job_state::cancelled);
    EXPECT_EQ(done[parent - 1].skip_reason, "resubmitted as job " + std::to_string(20 + parent));
    job_of_entry[parent - 1] = child.id;
  }
  std::map<int, int> expected_posts = every_n_once(20);
  for (int n = 0; n < 4; ++n) expected_posts[n] = 2;
  EXPECT_EQ(posts_by_n(server.log()), expected_posts);

  // `results`: in entry order, the resubmissions (jobs 21..24) where their entries are.
  const std::vector<json> results = results_of(dir);
  ASSERT_EQ(results.size(), 20u);
  for (std::size_t e = 0; e < results.size(); ++e) {
    EXPECT_EQ(results[e].at("entry"), e);
    EXPECT_EQ(results[e].at("job"), job_of_entry.contains(e) ? job_of_entry[e] : e + 1);
    EXPECT_EQ(results[e].at("result").at("params").at("n"), e);
  }
}

TEST(BatchExample, CorruptStoreIsRefusedAndKept) {
  loopback_server server;
  temp_dir dir;
  const fs::path store = store_of(dir);
  const std::string garbage = std::string(4096, 'x') + "this is not a batch store\n";
  jobpoll_test::write_bytes(store, garbage);

  const run_result run = run_batch(batch_args(server, dir, {"--jobs", "5"}));

  ASSERT_TRUE(run.exited) << "signal " << run.signal;
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_EQ(run.out, "");
  EXPECT_THAT(run.err, StartsWith("batch_run: "));
  EXPECT_THAT(run.err, HasSubstr(store.string()));
  EXPECT_THAT(run.err, HasSubstr("file is not a database"));
  EXPECT_EQ(read_bytes(store), garbage);
  EXPECT_EQ(dir.files(), std::vector<std::string>{"batch.db"});
  EXPECT_EQ(server.log(), json::array());

  // The subcommands refuse it the same way.
  const run_result status = run_sub(dir, {"status"});
  EXPECT_EQ(status.exit_code, 3) << status.err;
  EXPECT_THAT(status.err, HasSubstr("file is not a database"));
  EXPECT_EQ(read_bytes(store), garbage);
}

TEST(BatchExample, StoreHoldingOtherEntriesUnderTheNameIsRefusedAndKept) {
  loopback_server server;
  temp_dir dir;
  const run_result first = run_batch(batch_args(server, dir, {"--jobs", "3", "--steps", "0", "--name", "nightly"}));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const std::string history = run_sub(dir, {"--name", "nightly", "history"}).out;
  ASSERT_FALSE(history.empty());
  const std::size_t requests = server.log().size();

  // The same name with other entries: --jobs, then --fail-every.
  for (const auto& other : {std::vector<std::string>{"--jobs", "4"}, {"--jobs", "3", "--fail-every", "2"}}) {
    std::vector<std::string> args = batch_args(server, dir, {"--steps", "0", "--name", "nightly"});
    args.insert(args.end(), other.begin(), other.end());
    const run_result run = run_batch(args);
    ASSERT_TRUE(run.exited) << "signal " << run.signal;
    EXPECT_EQ(run.exit_code, 3) << run.err;
    EXPECT_EQ(run.out, "");
    EXPECT_THAT(run.err, StartsWith("batch_run: batch store " + store_of(dir).string() +
                                    " holds batch \"nightly\" with 3 entries (fingerprint "));
    EXPECT_THAT(run.err, HasSubstr("it was left untouched: give this batch another name or another store"));
  }
  EXPECT_EQ(run_sub(dir, {"--name", "nightly", "history"}).out, history);
  EXPECT_EQ(server.log().size(), requests);

  // Another name is another batch in the same store.
  const run_result weekly = run_batch(batch_args(server, dir, {"--jobs", "2", "--steps", "0", "--name", "weekly"}));
  EXPECT_EQ(weekly.exit_code, 0) << weekly.err;
  EXPECT_EQ(records_of(dir, "weekly").size(), 2u);
  EXPECT_EQ(records_of(dir, "nightly").size(), 3u);
}

TEST(BatchExample, ProgressIsPlainLinesWhenNotATerminal) {
  loopback_server server;
  temp_dir dir;
  const run_result run = run_batch(
      // 0.15s: a fraction, as the jobpoll tool reads durations too.
      batch_args(server, dir, {"--jobs", "6", "--steps", "2", "--interval", "0.15s", "--concurrency", "2"}));

  ASSERT_TRUE(run.exited) << "signal " << run.signal;
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.err.find('\r'), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find('\x1b'), std::string::npos) << run.err;
  ASSERT_FALSE(run.err.empty());
  EXPECT_EQ(run.err.back(), '\n');

  const std::regex counts_line(
      R"(\[ *([0-9]+\.[0-9])s\] [0-9]+ completed, [0-9]+ failed, [0-9]+ running, [0-9]+ pending, )"
      R"([0-9]+ skipped, [0-9]+ cancelled, [0-9]+ unknown)");
  const std::vector<std::string> lines = lines_of(run.err);
  std::vector<double> times;
  for (const auto& line : lines) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, counts_line)) << "not a counts line: " << line;
    times.push_back(std::stod(m[1].str()));
  }
  // The jobs' own waits (3 waves of 2 x 150 ms) outlast the first 500 ms tick: a line then, and the final one.
  EXPECT_GE(lines.size(), 2u) << run.err;
  EXPECT_THAT(lines.back(),
              testing::EndsWith("] 6 completed, 0 failed, 0 running, 0 pending, 0 skipped, 0 cancelled, 0 unknown"));
  // Lines before the final one at least 500 ms apart: 0.4 s at least once both are rounded to 0.1 s.
  for (std::size_t i = 1; i + 1 < times.size(); ++i) EXPECT_GE(times[i] - times[i - 1], 0.4 - 1e-9) << run.err;
}

TEST(BatchExample, BadOptionsExit64NamingTheOptionAndValue) {
  struct usage_case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<usage_case> cases = {
      {{"--jobs", "3"}, "batch_run: --server is required\n"},
      {{"--server", "ftp://host"}, "batch_run: --server: expected an http:// or https:// URL, got 'ftp://host'\n"},
      {{"--server", "http://127.0.0.1:9", "--jobs", "0"}, "batch_run: --jobs: expected a positive integer, got '0'\n"},
      {{"--server", "http://127.0.0.1:9", "--jobs", "1000001"},
       "batch_run: --jobs: expected a positive integer of at most 1000000, got '1000001'\n"},
      {{"--server", "http://127.0.0.1:9", "--interval", "2x"},
       "batch_run: --interval: expected a duration like 500ms, 2s, 1.5s or 2m (units: ns, us, ms, s, m, h), got '2x'\n"},
      {{"--server", "http://127.0.0.1:9", "--interval", "-5s"},
       "batch_run: --interval: expected a duration like 500ms, 2s, 1.5s or 2m (units: ns, us, ms, s, m, h), got '-5s'\n"},
      {{"--server", "http://127.0.0.1:9", "--grace", "1001h"},
       "batch_run: --grace: expected a duration of at most 1000h, got '1001h'\n"},
      {{"--server", "http://127.0.0.1:9", "--rate", "20/15s"},
       "batch_run: --rate: expected a positive integer, got '20/15s'\n"},
      {{"--server", "http://127.0.0.1:9", "--rate", "20", "--rate-window", "0"},
       "batch_run: --rate-window: expected a duration > 0 like 500ms or 2s, got '0'\n"},
      {{"--server", "http://127.0.0.1:9", "--rate-window", "15s"}, "batch_run: --rate-window requires --rate\n"},
      {{"--server", "http://127.0.0.1:9", "--resubmits", "-1"},
       "batch_run: --resubmits: expected a non-negative integer, got '-1'\n"},
      {{"--server", "http://127.0.0.1:9", "--name", ""}, "batch_run: --name: expected a non-empty value, got ''\n"},
      {{"--server", "http://127.0.0.1:9", "--store", ""}, "batch_run: --store: expected a non-empty value, got ''\n"},
      {{"--server", "http://127.0.0.1:9", "--submit-key", "header"},
       "batch_run: --submit-key: expected key, lookup or none, got 'header'\n"},
      {{"--server", "http://127.0.0.1:9", "--state-dir", "x"},
       "batch_run: The following arguments were not expected: x --state-dir\n"},
      {{"--server", "http://127.0.0.1:9", "--bogus"}, "batch_run: The following argument was not expected: --bogus\n"},
      {{"resubmit"}, "batch_run: ID is required\n"},
      {{"resubmit", "0"}, "batch_run: ID: expected a positive integer, got '0'\n"},
      {{"skip", "3", "x"}, "batch_run: ID: expected a positive integer, got 'x'\n"},
      {{"adopt", "3"}, "batch_run: HANDLE is required\n"},
      {{"adopt", "3", ""}, "batch_run: HANDLE: expected a non-empty value, got ''\n"},
      {{"status", "extra"}, "batch_run: The following argument was not expected: extra\n"},
      {{"status", "results"}, "batch_run: The following argument was not expected: results\n"},
  };
  for (const auto& c : cases) {
    const run_result run = run_batch(c.args);
    ASSERT_TRUE(run.exited) << c.message;
    EXPECT_EQ(run.exit_code, 64) << run.err;
    EXPECT_EQ(run.out, "") << c.message;
    EXPECT_EQ(run.err, c.message + "Run with --help for more information.\n");
  }
}

// --- the subcommands --------------------------------------------------------------

TEST(BatchExample, StatusPrintsTheBatchAndExitsAsIt) {
  loopback_server server;
  temp_dir dir;
  // No store yet: nothing is created.
  const run_result none = run_sub(dir, {"status"});
  EXPECT_EQ(none.exit_code, 3) << none.err;
  EXPECT_EQ(none.err, "batch_run: no batch store at " + store_of(dir).string() + " (--store): a run creates it\n");
  EXPECT_EQ(dir.files(), std::vector<std::string>{});

  const run_result run = run_batch(batch_args(
      server, dir,
      {"--jobs", "10", "--steps", "0", "--interval", "0", "--concurrency", "2", "--fail-every", "5", "--resubmits",
       "0"}));
  ASSERT_EQ(run.exit_code, 1) << run.err;

  const run_result status = run_sub(dir, {"status"});
  ASSERT_TRUE(status.exited);
  EXPECT_EQ(status.exit_code, 1) << status.err;
  EXPECT_EQ(status.err, "");
  json out = json::parse(status.out);
  ASSERT_EQ(out.at("failed").size(), 2u) << out.dump();
  const std::vector<jobpoll::batch_job> saved = records_of(dir);
  for (std::size_t i = 0; i < 2; ++i) {
    json& failed = out.at("failed")[i];
    const jobpoll::batch_job& record = saved[i == 0 ? 4 : 9];
    EXPECT_EQ(failed.at("key"), record.key);
    EXPECT_EQ(failed.at("error"), record.error);
    EXPECT_THAT(record.error, HasSubstr("job failed"));
    failed.erase("key");
    failed.erase("error");
  }
  EXPECT_EQ(out, json::parse(R"json({"batch": "batch_run", "store": ")json" + store_of(dir).string() +
                             R"json(", "status": "FAILED", "total_configs": 10, "fulfilled_configs": 8,
      "total_jobs": 10, "job_status_counts": {"COMPLETED": 8, "FAILED": 2}, "failed_job_ids": [5, 10],
      "counts": {"pending": 0, "submitting": 0, "running": 0, "completed": 8, "failed": 2, "cancelled": 0,
                 "unknown": 0, "skipped": 0},
      "owner": null,
      "failed": [{"id": 5, "entry": 4, "attempt": 1}, {"id": 10, "entry": 9, "attempt": 1}],
      "unknown": []})json"));

  // Another name in the same store: refused, and nothing is added.
  const run_result other = run_sub(dir, {"--name", "other", "status"});
  EXPECT_EQ(other.exit_code, 3);
  EXPECT_EQ(other.err, "batch_run: " + store_of(dir).string() + " holds no batch \"other\" (--name)\n");

  // The run's own command line with `status` after it reads the same batch.
  std::vector<std::string> same = batch_args(server, dir, {"--jobs", "10", "--fail-every", "5"});
  same.push_back("status");
  const run_result again = run_batch(same);
  EXPECT_EQ(again.exit_code, 1) << again.err;
  EXPECT_EQ(json::parse(again.out).at("failed_job_ids"), json::parse("[5, 10]"));
}

TEST(BatchExample, HistoryIsTheAuditOfEveryChange) {
  loopback_server server;
  temp_dir dir;
  const run_result run = run_batch(batch_args(
      server, dir,
      {"--jobs", "6", "--steps", "1", "--interval", "0", "--concurrency", "2", "--fail-every", "3", "--resubmits",
       "1"}));
  ASSERT_EQ(run.exit_code, 1) << run.err;

  const run_result history = run_sub(dir, {"history"});
  ASSERT_EQ(history.exit_code, 0) << history.err;
  const std::vector<std::string> lines = lines_of(history.out);
  // Each of the 8 records: created pending, then submitting, running, and its end.
  EXPECT_EQ(lines.size(), 8u * 4u + 2u) << history.out;  // + the 2 parents' "resubmitted" skips
  for (const auto& line : lines) EXPECT_EQ(json::parse(line).at("batch"), "batch_run") << line;
  // Replayed, it gives the records the store holds.
  jobpoll_test::write_bytes(dir / "history.ndjson", history.out);
  const std::vector<jobpoll::batch_job> replayed = jobpoll::replay_audit_log(dir / "history.ndjson");
  const std::vector<jobpoll::batch_job> saved = records_of(dir);
  ASSERT_EQ(replayed.size(), saved.size());
  for (std::size_t i = 0; i < saved.size(); ++i) {
    EXPECT_EQ(replayed[i].id, saved[i].id);
    EXPECT_EQ(replayed[i].entry, saved[i].entry);
    EXPECT_EQ(replayed[i].parent, saved[i].parent);
    EXPECT_EQ(replayed[i].state, saved[i].state) << "job " << saved[i].id;
    EXPECT_EQ(replayed[i].skipped, saved[i].skipped) << "job " << saved[i].id;
    EXPECT_EQ(replayed[i].params, saved[i].params) << "job " << saved[i].id;
    ASSERT_TRUE(replayed[i].handle && saved[i].handle) << "job " << saved[i].id;
    EXPECT_EQ(replayed[i].handle->id, saved[i].handle->id);
  }
}

TEST(BatchExample, ResubmitAndSkipSettleFailedJobs) {
  loopback_server server;
  temp_dir dir;
  const auto args = batch_args(
      server, dir,
      {"--jobs", "10", "--steps", "0", "--interval", "0", "--concurrency", "2", "--fail-every", "5", "--resubmits",
       "0"});
  ASSERT_EQ(run_batch(args).exit_code, 1);

  // Refusals, before anything changes: a completed job, an id out of range.
  const run_result completed = run_sub(dir, {"resubmit", "5", "1"});
  EXPECT_EQ(completed.exit_code, 3);
  EXPECT_EQ(completed.err, "batch_run: job 1 (entry 0) is completed: only a failed, cancelled or unknown job can be "
                           "resubmitted\n");
  const run_result missing = run_sub(dir, {"skip", "99"});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_EQ(missing.err, "batch_run: batch \"batch_run\" in " + store_of(dir).string() + " has no job 99\n");
  EXPECT_EQ(records_of(dir).size(), 10u);

  // Job 5 (entry 4) again, as job 11: the next run submits it (and it fails again: same outcome).
  const run_result resubmitted = run_sub(dir, {"resubmit", "5"});
  EXPECT_EQ(resubmitted.exit_code, 0) << resubmitted.err;
  EXPECT_EQ(resubmitted.out, "resubmitted job 5 (entry 4) as job 11\n");
  const run_result twice = run_sub(dir, {"resubmit", "5"});
  EXPECT_EQ(twice.exit_code, 3);
  EXPECT_EQ(twice.err, "batch_run: job 5 (entry 4) is failed and skipped (resubmitted as job 11): it cannot be "
                       "resubmitted\n");
  const std::size_t posts_before = posts_by_n(server.log())[4];
  const run_result rerun = run_batch(args);
  EXPECT_EQ(rerun.exit_code, 1) << rerun.err;
  EXPECT_EQ(posts_by_n(server.log())[4], posts_before + 1);
  std::vector<jobpoll::batch_job> saved = records_of(dir);
  ASSERT_EQ(saved.size(), 11u);
  EXPECT_EQ(saved[10].parent, 5u);
  EXPECT_EQ(saved[10].state, batch_job_state::failed);

  // Skip the two failures left: the batch is then COMPLETED (its status says so, exit 0).
  const run_result skipped = run_sub(dir, {"skip", "11", "10", "11", "--reason", "known bad input"});
  EXPECT_EQ(skipped.exit_code, 0) << skipped.err;
  EXPECT_EQ(skipped.out, "skipped job 11 (entry 4)\nskipped job 10 (entry 9)\n");
  saved = records_of(dir);
  EXPECT_TRUE(saved[10].skipped);
  EXPECT_EQ(saved[10].skip_reason, "known bad input");
  EXPECT_EQ(saved[9].skip_reason, "known bad input");
  const run_result status = run_sub(dir, {"status"});
  EXPECT_EQ(status.exit_code, 0) << status.out;
  EXPECT_EQ(json::parse(status.out).at("status"), "COMPLETED");
  const run_result final_run = run_batch(args);
  EXPECT_EQ(final_run.exit_code, 0) << final_run.err;
  EXPECT_EQ(results_of(dir).size(), 8u);
}

TEST(BatchExample, UnknownJobIsAdoptedByItsHandle) {
  loopback_server server;
  temp_dir dir;
  // Without a submit key, a run killed during a submit leaves a job whose
  // fate the next run cannot tell. The first submit is held by the server
  // (it creates the job after 300 ms); the runner is killed meanwhile.
  server.script("POST", "/v1/jobs", json::array({{{"delay_ms", 300}}}));
  const auto args = batch_args(
      server, dir, {"--jobs", "3", "--steps", "1", "--interval", "0", "--concurrency", "1", "--submit-key", "none"});
  {
    child_process first(batch_command(args));
    first.wait_until([&] { return submissions_of(server).size() == 1; }, "the first submit at the server");
    first.send(SIGKILL);
    const run_result killed = first.finish();
    ASSERT_EQ(killed.signal, SIGKILL);
  }
  // The server creates the job once the delay ends.
  std::string handle;
  for (int i = 0; i < 3000 && handle.empty(); ++i) {
    const json s = submissions_of(server);
    if (!s[0].at("job_id").is_null()) handle = s[0].at("job_id");
  }
  ASSERT_EQ(handle, "job-1");

  const run_result second = run_batch(args);
  EXPECT_EQ(second.exit_code, 2) << second.err;
  EXPECT_THAT(second.err, HasSubstr("batch_run: 1 job is unknown (job 1): the run ended during its submit"));
  EXPECT_THAT(second.err, HasSubstr("`batch_run resubmit ID` (a new job), `batch_run skip ID` or `batch_run adopt ID "
                                    "HANDLE` (the server's job)"));
  EXPECT_THAT(json::parse(second.out).at("reason").get<std::string>(), HasSubstr("1 job unknown"));
  const run_result status = run_sub(dir, {"status"});
  EXPECT_EQ(status.exit_code, 2);
  const json unknown = json::parse(status.out).at("unknown");
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_EQ(unknown[0].at("id"), 1);
  EXPECT_EQ(unknown[0].at("entry"), 0);
  EXPECT_THAT(unknown[0].at("error").get<std::string>(), HasSubstr("resubmit it, skip it, or adopt it"));

  // A completed job cannot be adopted; the unknown one can.
  EXPECT_EQ(run_sub(dir, {"adopt", "2", "job-9"}).exit_code, 3);
  const run_result adopted = run_sub(dir, {"adopt", "1", handle});
  EXPECT_EQ(adopted.exit_code, 0) << adopted.err;
  EXPECT_EQ(adopted.out, "adopted \"job-1\" as job 1 (entry 0): the next run polls it\n");
  const run_result last = run_batch(args);
  EXPECT_EQ(last.exit_code, 0) << last.err;
  EXPECT_EQ(json::parse(last.out).at("resumed"), 1);
  // Entry 0 ran once, as job-1: polled after the adoption, never submitted again.
  EXPECT_EQ(posts_by_n(server.log()), every_n_once(3));
  const std::vector<json> results = results_of(dir);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].at("handle"), "job-1");
}

TEST(BatchExample, ActionsAreRefusedWhileARunnerOwnsTheBatch) {
  loopback_server server;
  temp_dir dir;
  child_process runner(batch_command(batch_args(
      server, dir, {"--jobs", "4", "--steps", "1000000", "--interval", "50ms", "--concurrency", "2", "--grace", "0"})));
  runner.wait_until([&] { return server.jobs().at("v1_jobs") == 2; }, "2 jobs submitted");
  const std::int64_t owner_pid = [&] {
    jobpoll::sqlite_store store(store_of(dir), "batch_run");
    return store.owner().value().pid;
  }();

  // Reading works, and shows the owner.
  const run_result status = run_sub(dir, {"status"});
  EXPECT_EQ(status.exit_code, 2) << status.err;
  EXPECT_EQ(json::parse(status.out).at("owner").at("pid"), owner_pid);
  // Changing does not.
  const std::string owned = "batch_run: batch store " + store_of(dir).string() +
                            ": batch \"batch_run\" is owned by pid " + std::to_string(owner_pid) + " on host ";
  for (const auto& action : {std::vector<std::string>{"skip", "3"}, {"resubmit", "1"}, {"adopt", "1", "job-1"}}) {
    std::vector<std::string> args{"--store", store_of(dir).string()};
    args.insert(args.end(), action.begin(), action.end());
    const run_result refused = run_batch(args);
    EXPECT_EQ(refused.exit_code, 3) << action[0];
    EXPECT_THAT(refused.err, StartsWith(owned)) << action[0];
    EXPECT_THAT(refused.err, HasSubstr("(that process is running): stop it first")) << action[0];
  }
  // Nor does releasing a live owner on this host.
  const run_result release = run_sub(dir, {"release"});
  EXPECT_EQ(release.exit_code, 3);
  EXPECT_THAT(release.err,
              HasSubstr("is owned by pid " + std::to_string(owner_pid) + " on this host, which is running"));
  EXPECT_EQ(records_of(dir)[2].skipped, false);

  runner.send(SIGTERM);
  EXPECT_EQ(runner.finish().exit_code, 2);
  // Once it stopped, the skip goes through.
  const run_result skip = run_sub(dir, {"skip", "3"});
  EXPECT_EQ(skip.exit_code, 0) << skip.err;
  EXPECT_TRUE(records_of(dir)[2].skipped);
}

TEST(BatchExample, ReleaseClearsAnOwnerOnAnotherHost) {
  loopback_server server;
  temp_dir dir;
  const auto args = batch_args(server, dir, {"--jobs", "2", "--steps", "0", "--interval", "0"});
  ASSERT_EQ(run_batch(args).exit_code, 0);
  // A runner on another host claimed it and died there: the store says so.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(store_of(dir).c_str(), &db), SQLITE_OK);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close)> owner(db, &sqlite3_close);
    ASSERT_EQ(sqlite3_exec(db,
                           "UPDATE batches SET owner_pid = 4242, owner_host = 'elsewhere.example', "
                           "owner_since = 1700000000000, owner_start = 7",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
  }
  const run_result refused = run_batch(args);
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_THAT(refused.err, HasSubstr("is owned by pid 4242 on host elsewhere.example since 2023-11-14T22:13:20.000Z: "
                                     "stop that runner first; if it is dead, clear its ownership (batch_run release)"));
  EXPECT_EQ(json::parse(run_sub(dir, {"status"}).out).at("owner"),
            json::parse(R"({"pid": 4242, "host": "elsewhere.example", "since": "2023-11-14T22:13:20Z"})"));

  const run_result released = run_sub(dir, {"release"});
  EXPECT_EQ(released.exit_code, 0) << released.err;
  EXPECT_EQ(released.out, "released batch \"batch_run\" in " + store_of(dir).string() +
                              " from pid 4242 on host elsewhere.example (owner since 2023-11-14T22:13:20Z)\n");
  EXPECT_EQ(json::parse(run_sub(dir, {"status"}).out).at("owner"), nullptr);
  const run_result again = run_sub(dir, {"release"});
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_EQ(again.out, "batch \"batch_run\" in " + store_of(dir).string() + " has no owner\n");
  EXPECT_EQ(run_batch(args).exit_code, 0);
}

}  // namespace
