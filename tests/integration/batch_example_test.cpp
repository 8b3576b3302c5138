// The batch example (examples/batch_run.cpp), run as a child process against
// the loopback job server: SIGTERM and resume, resubmission lineage, a second
// signal with remote cancel, refused checkpoints, progress lines, usage
// errors. What happened is read from the server's own records, the state
// files and the program's output.

#include <algorithm>
#include <csignal>
#include <cstddef>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <jobpoll/batch/audit_log.hpp>
#include <jobpoll/batch/checkpoint.hpp>

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

std::vector<std::string> batch_args(const loopback_server& server, const temp_dir& state,
                                    std::initializer_list<std::string> more) {
  std::vector<std::string> args{"--server", server.base_url(), "--state-dir", state.path().string()};
  args.insert(args.end(), more);
  return args;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// results.ndjson, one parsed line each.
std::vector<json> results_of(const temp_dir& state) {
  const std::string text = read_bytes(state / "results.ndjson");
  EXPECT_TRUE(text.empty() || text.back() == '\n');
  std::vector<json> results;
  for (const auto& line : lines_of(text)) results.push_back(json::parse(line));
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

std::size_t count_state(const jobpoll::batch_checkpoint& c, batch_job_state state) {
  return static_cast<std::size_t>(std::count_if(c.jobs.begin(), c.jobs.end(), [state](const jobpoll::batch_job& j) {
    return !j.skipped && j.state == state;
  }));
}

TEST(BatchExample, SigtermThenResumeRunsEveryJobOnce) {
  constexpr int jobs = 40;
  constexpr std::size_t concurrency = 6;
  constexpr int steps = 20;
  loopback_server server;
  temp_dir state;
  const auto args = batch_args(server, state,
                               {"--jobs", std::to_string(jobs), "--steps", std::to_string(steps), "--interval", "50ms",
                                "--concurrency", std::to_string(concurrency), "--grace", "0"});

  // SIGTERM once a second wave of jobs is being polled, each far from its
  // end: every worker then polls (none is submitting, which a stop would cut
  // short and fail, since the server may have created that job), and no job
  // can end and free a worker before the program handles the signal.
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

  const jobpoll::batch_checkpoint saved = jobpoll::load_checkpoint(state / "checkpoint.json");
  EXPECT_EQ(saved.batch, "batch_run");
  EXPECT_EQ(saved.entries, static_cast<std::size_t>(jobs));
  ASSERT_EQ(saved.jobs.size(), static_cast<std::size_t>(jobs));
  const std::size_t completed = count_state(saved, batch_job_state::completed);
  const std::size_t running = count_state(saved, batch_job_state::running);
  const std::size_t pending = count_state(saved, batch_job_state::pending);
  EXPECT_GE(completed, 4u);
  EXPECT_EQ(running, concurrency);
  EXPECT_GE(pending, 1u);
  EXPECT_EQ(completed + running + pending, static_cast<std::size_t>(jobs));

  // The checkpoint agrees with the server: its completed jobs are the
  // server's completed ones, its running jobs (by handle) the others, and
  // its pending jobs were never submitted.
  const json server_jobs = server.jobs();
  EXPECT_EQ(server_jobs.at("v1_jobs").get<std::size_t>(), completed + running);
  std::set<std::string> server_completed, server_unfinished, saved_completed, saved_running;
  for (const auto& job : server_jobs.at("jobs"))
    (job.at("status") == "completed" ? server_completed : server_unfinished).insert(job.at("id").get<std::string>());
  for (const auto& job : saved.jobs) {
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

  // Every result once, as the server gave it; the audit log says the same.
  const jobpoll::batch_checkpoint done = jobpoll::load_checkpoint(state / "checkpoint.json");
  ASSERT_EQ(done.jobs.size(), static_cast<std::size_t>(jobs));
  const std::vector<json> results = results_of(state);
  ASSERT_EQ(results.size(), static_cast<std::size_t>(jobs));
  std::set<int> entries_seen;
  for (const json& line : results) {
    const int entry = line.at("entry").get<int>();
    EXPECT_TRUE(entries_seen.insert(entry).second) << "entry " << entry << " twice";
    ASSERT_GE(entry, 0);
    ASSERT_LT(entry, jobs);
    const jobpoll::batch_job& record = done.jobs[static_cast<std::size_t>(entry)];
    EXPECT_EQ(record.state, batch_job_state::completed);
    EXPECT_EQ(line.at("job"), record.id);
    ASSERT_TRUE(record.handle);
    EXPECT_EQ(line.at("handle"), record.handle->id);
    EXPECT_EQ(line.at("result"), json({{"tool", "batch"}, {"params", {{"n", entry}}}}));
  }
  const std::vector<jobpoll::batch_job> replayed = jobpoll::replay_audit_log(state / "audit.ndjson");
  ASSERT_EQ(replayed.size(), static_cast<std::size_t>(jobs));
  for (const auto& job : replayed) {
    EXPECT_EQ(job.state, batch_job_state::completed) << "job " << job.id;
    EXPECT_FALSE(job.skipped) << "job " << job.id;
    ASSERT_TRUE(job.handle) << "job " << job.id;
    EXPECT_EQ(job.handle->id, done.jobs[job.id - 1].handle->id);
  }
  // Last, since a GET is a request of its own: the server's result for each handle.
  for (const json& line : results) {
    const auto answer = server.request("GET", "/v1/jobs/" + line.at("handle").get<std::string>());
    EXPECT_EQ(json::parse(answer.body).at("result"), line.at("result"));
  }
}

TEST(BatchExample, FailuresAreResubmittedWithLineage) {
  loopback_server server;
  temp_dir state;
  // Entries 4 and 9 fail on the server, and so do their resubmissions.
  const run_result run = run_batch(batch_args(
      server, state,
      {"--jobs", "10", "--steps", "1", "--interval", "0", "--concurrency", "3", "--fail-every", "5", "--resubmits", "1"}));

  ASSERT_TRUE(run.exited) << "signal " << run.signal;
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_EQ(json::parse(run.out), summary_of(R"json({"status": "FAILED", "end": "finished", "reason": "no job left to run",
      "total_configs": 10, "fulfilled_configs": 8, "total_jobs": 12, "failed_job_ids": [11, 12], "resumed": 0,
      "peak_in_flight": 3})json",
                                             status_counts({{"COMPLETED", 8}, {"FAILED", 2}, {"SKIPPED", 2}})));

  // Jobs 1..10 are the entries; 11 and 12 resubmit the failures of entries 4
  // and 9, in the order those failed.
  const jobpoll::batch_checkpoint saved = jobpoll::load_checkpoint(state / "checkpoint.json");
  ASSERT_EQ(saved.jobs.size(), 12u);
  std::set<std::size_t> parents;
  for (std::size_t id : {11u, 12u}) {
    const jobpoll::batch_job& child = saved.jobs[id - 1];
    ASSERT_TRUE(child.parent) << "job " << id;
    const jobpoll::batch_job& parent = saved.jobs[*child.parent - 1];
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
  }
  EXPECT_EQ(parents, (std::set<std::size_t>{5, 10}));

  std::map<int, int> expected_posts = every_n_once(10);
  expected_posts[4] = expected_posts[9] = 2;
  EXPECT_EQ(posts_by_n(server.log()), expected_posts);

  std::set<int> with_result;
  for (const json& line : results_of(state)) with_result.insert(line.at("entry").get<int>());
  EXPECT_EQ(with_result, (std::set<int>{0, 1, 2, 3, 5, 6, 7, 8}));
}

TEST(BatchExample, SecondSignalCancelsAtOnceAndResumeSubmitsAgain) {
  loopback_server server;
  temp_dir state;
  // Jobs that never end and a grace period longer than the failure guard:
  // only the second signal can end this run.
  child_process batch(batch_command(batch_args(server, state,
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

  // In the checkpoint: those 4 cancelled by their handles, the rest pending.
  const jobpoll::batch_checkpoint saved = jobpoll::load_checkpoint(state / "checkpoint.json");
  ASSERT_EQ(saved.jobs.size(), 20u);
  std::set<std::string> cancelled_ids;
  for (const auto& job : saved.jobs) {
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
  const run_result again = run_batch(
      batch_args(server, state, {"--jobs", "20", "--steps", "1", "--interval", "0", "--concurrency", "4"}));
  ASSERT_TRUE(again.exited) << "signal " << again.signal;
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.err,
              StartsWith("resuming: 0 completed, 0 running, 16 pending, 4 cancelled at the stop (submitted again)\n"));
  EXPECT_EQ(json::parse(again.out), summary_of(R"json({"status": "COMPLETED", "end": "finished",
      "reason": "no job left to run", "total_configs": 20, "fulfilled_configs": 20, "total_jobs": 24,
      "failed_job_ids": [], "resumed": 0, "peak_in_flight": 4})json",
                                               status_counts({{"COMPLETED", 20}, {"SKIPPED", 4}})));
  const jobpoll::batch_checkpoint done = jobpoll::load_checkpoint(state / "checkpoint.json");
  ASSERT_EQ(done.jobs.size(), 24u);
  for (std::size_t parent = 1; parent <= 4; ++parent) {
    const jobpoll::batch_job& child = done.jobs[20 + parent - 1];
    EXPECT_EQ(child.parent, parent);
    EXPECT_EQ(child.entry, parent - 1);
    EXPECT_EQ(child.state, batch_job_state::completed);
    EXPECT_EQ(done.jobs[parent - 1].state, batch_job_state::cancelled);
    EXPECT_EQ(done.jobs[parent - 1].skip_reason, "resubmitted as job " + std::to_string(20 + parent));
  }
  std::map<int, int> expected_posts = every_n_once(20);
  for (int n = 0; n < 4; ++n) expected_posts[n] = 2;
  EXPECT_EQ(posts_by_n(server.log()), expected_posts);
  EXPECT_EQ(results_of(state).size(), 20u);
}

TEST(BatchExample, CorruptCheckpointIsRefusedAndKept) {
  loopback_server server;
  temp_dir state;
  const fs::path checkpoint = state / "checkpoint.json";
  const std::string garbage = "this is not a checkpoint\n";
  jobpoll_test::write_bytes(checkpoint, garbage);

  const run_result run = run_batch(batch_args(server, state, {"--jobs", "5"}));

  ASSERT_TRUE(run.exited) << "signal " << run.signal;
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_EQ(run.out, "");
  EXPECT_THAT(run.err, StartsWith("batch_run: " + checkpoint.string() + ": not a JSON document: "));
  EXPECT_EQ(read_bytes(checkpoint), garbage);
  EXPECT_EQ(state.files(), std::vector<std::string>{"checkpoint.json"});
  EXPECT_EQ(server.log(), json::array());
}

TEST(BatchExample, CheckpointOfAnotherBatchIsRefusedAndKept) {
  loopback_server server;
  temp_dir state;
  const run_result first = run_batch(batch_args(server, state, {"--jobs", "3", "--steps", "0", "--name", "nightly"}));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const fs::path checkpoint = state / "checkpoint.json";
  const std::string bytes = read_bytes(checkpoint);
  const std::size_t requests = server.log().size();

  const run_result run = run_batch(batch_args(server, state, {"--jobs", "3", "--steps", "0", "--name", "weekly"}));

  ASSERT_TRUE(run.exited) << "signal " << run.signal;
  EXPECT_EQ(run.exit_code, 3) << run.err;
  EXPECT_EQ(run.out, "");
  EXPECT_THAT(run.err, StartsWith("batch_run: " + checkpoint.string() + " is the checkpoint of batch \"nightly\" with 3 "
                                                                        "entries (fingerprint "));
  EXPECT_THAT(run.err, HasSubstr("), not of batch \"weekly\" with 3 entries (fingerprint "));
  EXPECT_THAT(run.err, HasSubstr("it was left untouched"));
  EXPECT_EQ(read_bytes(checkpoint), bytes);
  EXPECT_EQ(server.log().size(), requests);
}

TEST(BatchExample, ProgressIsPlainLinesWhenNotATerminal) {
  loopback_server server;
  temp_dir state;
  const run_result run = run_batch(
      // 0.15s: a fraction, as the jobpoll tool reads durations too.
      batch_args(server, state, {"--jobs", "6", "--steps", "2", "--interval", "0.15s", "--concurrency", "2"}));

  ASSERT_TRUE(run.exited) << "signal " << run.signal;
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.err.find('\r'), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find('\x1b'), std::string::npos) << run.err;
  ASSERT_FALSE(run.err.empty());
  EXPECT_EQ(run.err.back(), '\n');

  const std::regex counts_line(
      R"(\[ *([0-9]+\.[0-9])s\] [0-9]+ completed, [0-9]+ failed, [0-9]+ running, [0-9]+ pending, [0-9]+ skipped, [0-9]+ cancelled)");
  const std::vector<std::string> lines = lines_of(run.err);
  std::vector<double> times;
  for (const auto& line : lines) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, counts_line)) << "not a counts line: " << line;
    times.push_back(std::stod(m[1].str()));
  }
  // The jobs' own waits (3 waves of 2 x 150 ms) outlast the first 500 ms tick: a line then, and the final one.
  EXPECT_GE(lines.size(), 2u) << run.err;
  EXPECT_THAT(lines.back(), testing::EndsWith("] 6 completed, 0 failed, 0 running, 0 pending, 0 skipped, 0 cancelled"));
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
      {{"--server", "http://127.0.0.1:9", "--bogus"}, "batch_run: The following argument was not expected: --bogus\n"},
  };
  for (const auto& c : cases) {
    const run_result run = run_batch(c.args);
    ASSERT_TRUE(run.exited) << c.message;
    EXPECT_EQ(run.exit_code, 64) << run.err;
    EXPECT_EQ(run.out, "") << c.message;
    EXPECT_EQ(run.err, c.message + "Run with --help for more information.\n");
  }
}

}  // namespace
