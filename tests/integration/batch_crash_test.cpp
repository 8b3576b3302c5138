// Rule 9 from the outside: examples/batch_run killed with SIGKILL at random
// moments, again and again, then resumed, must submit every entry once. Each
// case is judged by the server's own record of every POST /v1/jobs
// (/_control/submissions: a job was created by each entry with a job_id that
// was not replayed) and by the store (`batch_run results` and `status`, or
// the store opened with sqlite_store):
// - with an idempotency key, every entry is created exactly once;
// - with a lookup (the server without idempotency), no entry twice;
// - with neither, no entry twice, and the jobs whose submit a kill cut short
//   are unknown, listed by `status`, until `batch_run resubmit` settles them;
// - a second runner on a batch another one owns is refused before it sends
//   anything, and a third takes over once the owner is killed.
//
// The kill moments come from a seeded generator: the seed (JOBPOLL_CRASH_SEED
// to replay one) and the delays are printed and named in every failure. The
// first kill of each case is not random: it lands while the server holds the
// batch's first submit (a scripted delay), so that every case has a submit
// whose answer the runner never saw.

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <jobpoll/store/sqlite.hpp>

#include "child_process.hpp"
#include "loopback_server.hpp"
#include "temp_dir.hpp"

#ifndef JOBPOLL_TEST_BATCH_EXAMPLE
#error "batch_crash_test.cpp needs JOBPOLL_TEST_BATCH_EXAMPLE, the path of the built batch_run (tests/CMakeLists.txt sets it)"
#endif

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using jobpoll::batch_job_state;
using jobpoll::test::loopback_server;
using jobpoll_test::child_process;
using jobpoll_test::temp_dir;
using run_result = jobpoll_test::child_result;
using json = nlohmann::json;
using testing::HasSubstr;

constexpr int entries = 500;
constexpr int random_kills = 20;

std::vector<std::string> batch_command(std::vector<std::string> args) {
  args.insert(args.begin(), JOBPOLL_TEST_BATCH_EXAMPLE);
  return args;
}

run_result run_batch(std::vector<std::string> args) { return jobpoll_test::run_child(batch_command(std::move(args))); }

fs::path store_of(const temp_dir& dir) { return dir / "batch.db"; }

// A run of the crash cases: jobs of 4 polls 50 ms apart, 16 at a time: at
// least 150 ms a job, so the batch needs more than 4.5 s of running, longer
// than the 20 kills' delays add up to (3.3 s on average, 6 s at most, less
// each run's start): every kill lands while jobs are being submitted and polled.
std::vector<std::string> crash_args(const loopback_server& server, const temp_dir& dir, const std::string& key_mode) {
  return {"--server",      server.base_url(), "--store", store_of(dir).string(), "--jobs", std::to_string(entries),
          "--steps",       "3",               "--interval", "50ms",              "--concurrency", "16",
          "--submit-key",  key_mode,          "--grace", "0"};
}

// A subcommand on the test's store.
run_result run_sub(const temp_dir& dir, std::vector<std::string> more) {
  std::vector<std::string> args{"--store", store_of(dir).string()};
  args.insert(args.end(), more.begin(), more.end());
  return run_batch(std::move(args));
}

json submissions_of(const loopback_server& server) { return server.control("GET", "/_control/submissions"); }

// The jobs each entry (params.n) created at the server.
std::map<int, std::vector<std::string>> created_by_entry(const json& submissions) {
  std::map<int, std::vector<std::string>> created;
  for (const auto& s : submissions)
    if (!s.at("job_id").is_null() && !s.at("replayed").get<bool>())
      created[s.at("params").at("n").get<int>()].push_back(s.at("job_id").get<std::string>());
  return created;
}

// The entries created more than once, as "n: job-a job-b" lines ("" when none).
std::string created_twice(const std::map<int, std::vector<std::string>>& created) {
  std::string out;
  for (const auto& [n, jobs] : created) {
    if (jobs.size() < 2) continue;
    out += "entry " + std::to_string(n) + ":";
    for (const auto& id : jobs) out += " " + id;
    out += "\n";
  }
  return out;
}

// When and with what seed the runs are killed.
struct kill_plan {
  std::uint64_t seed = 0;
  std::vector<int> delays_ms;  // after each start, uniformly 30 to 300 ms

  std::string describe() const {
    std::string text = "kill plan: seed " + std::to_string(seed) + " (JOBPOLL_CRASH_SEED=" + std::to_string(seed) +
                       " replays it), delays in ms:";
    for (const int d : delays_ms) text += " " + std::to_string(d);
    return text;
  }
};

kill_plan make_plan(int kills) {
  kill_plan plan;
  if (const char* fixed = std::getenv("JOBPOLL_CRASH_SEED"); fixed != nullptr && *fixed != '\0') {
    plan.seed = std::stoull(fixed);
  } else {
    std::random_device device;
    plan.seed = (std::uint64_t{device()} << 32) ^ device();
  }
  std::mt19937_64 engine(plan.seed);
  std::uniform_int_distribution<int> delay(30, 300);
  for (int i = 0; i < kills; ++i) plan.delays_ms.push_back(delay(engine));
  std::cout << "[          ] " << plan.describe() << std::endl;
  return plan;
}

// Starts batch_run and kills it (SIGKILL) `delay` after the start unless it
// ended before; returns how it ended, once reaped.
run_result run_and_kill(const std::vector<std::string>& args, std::chrono::milliseconds delay) {
  child_process run(batch_command(args));
  const auto at = std::chrono::steady_clock::now() + delay;
  while (run.output_open()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    run.pump(std::min(left, std::chrono::milliseconds(10)));
  }
  run.send(SIGKILL);
  return run.finish();
}

// The first kill of a case: the server holds the batch's first submit
// (it creates the job 300 ms after it arrived); batch_run is killed while it
// waits for the answer, and the server then creates the job. Returns the
// params.n of that submit.
int kill_during_held_submit(const loopback_server& server, const std::vector<std::string>& args) {
  server.script("POST", "/v1/jobs", json::array({{{"delay_ms", 300}}}));
  child_process run(batch_command(args));
  run.wait_until([&] { return !submissions_of(server).empty(); }, "the first submit at the server");
  run.send(SIGKILL);
  const run_result killed = run.finish();
  EXPECT_EQ(killed.signal, SIGKILL) << killed.err;
  // Bounded: the server answers control requests while it holds the submit.
  for (int i = 0; i < 5000; ++i) {
    const json held = submissions_of(server).at(0);
    if (!held.at("job_id").is_null()) {
      EXPECT_EQ(held.at("scripted"), true);
      return held.at("params").at("n").get<int>();
    }
  }
  ADD_FAILURE() << "the server did not create the held job";
  return -1;
}

// Kills batch_run at every delay of `plan`, resuming each time. Returns how
// many runs the kill ended (a run may end by itself first).
int kill_repeatedly(const std::vector<std::string>& args, const kill_plan& plan) {
  int landed = 0;
  for (std::size_t i = 0; i < plan.delays_ms.size(); ++i) {
    const run_result r = run_and_kill(args, std::chrono::milliseconds(plan.delays_ms[i]));
    if (r.signal == SIGKILL) {
      ++landed;
      continue;
    }
    // Only a refusal would be wrong here: a run that ended by itself ended the batch.
    EXPECT_TRUE(r.exited && (r.exit_code == 0 || r.exit_code == 2)) << "run " << i << ": " << r.exit_code << "\n"
                                                                     << r.err;
  }
  return landed;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// `batch_run results`: one line per entry, in entry order, each the result
// of a job the server created for that entry.
void expect_one_result_per_entry(const temp_dir& dir, const std::map<int, std::vector<std::string>>& created) {
  const run_result r = run_sub(dir, {"results"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(entries));
  for (int n = 0; n < entries; ++n) {
    const json line = json::parse(lines[static_cast<std::size_t>(n)]);
    ASSERT_EQ(line.at("entry"), n) << lines[static_cast<std::size_t>(n)];
    EXPECT_EQ(line.at("result"), json({{"tool", "batch"}, {"params", {{"n", n}}}})) << line.dump();
    const auto jobs = created.find(n);
    ASSERT_NE(jobs, created.end()) << "entry " << n << " has a result but no job at the server";
    EXPECT_THAT(jobs->second, testing::Contains(line.at("handle").get<std::string>())) << line.dump();
  }
}

// `batch_run status`: exits as the batch, and says what it holds.
json status_of(const temp_dir& dir, int expected_exit) {
  const run_result r = run_sub(dir, {"status"});
  EXPECT_EQ(r.exit_code, expected_exit) << r.out << r.err;
  return json::parse(r.out);
}

// The store's records that are not skipped, by state.
std::map<batch_job_state, std::vector<jobpoll::batch_job>> live_records(const temp_dir& dir) {
  jobpoll::sqlite_store store(store_of(dir), "batch_run");
  std::map<batch_job_state, std::vector<jobpoll::batch_job>> by_state;
  store.for_each_job([&](const jobpoll::batch_job& job) {
    if (!job.skipped) by_state[job.state].push_back(job);
  });
  return by_state;
}

// A crash case up to its own assertions: the server offers what `mode`
// (--submit-key) relies on and nothing more; batch_run is killed while the
// server holds its first submit, then at every delay of a new kill plan, then
// run to its end, which must exit `expected_exit`.
struct crash_run {
  kill_plan plan;
  // Names the plan in every failure while the crash_run is in scope.
  std::optional<testing::ScopedTrace> trace;
  std::vector<std::string> args;
  int held = -1;    // the params.n of the held submit
  int landed = 0;   // the kills that ended a run
  run_result last;  // the run to the end
  json submissions;
  std::map<int, std::vector<std::string>> created;  // by entry (no entry twice)
};

void crash_and_resume(loopback_server& server, const temp_dir& dir, const std::string& mode, int expected_exit,
                      crash_run& run) {
  if (mode == "lookup") server.configure({{"idempotency", false}});
  if (mode == "none") server.configure({{"idempotency", false}, {"lookup", false}});
  run.plan = make_plan(random_kills);
  run.trace.emplace(__FILE__, __LINE__, run.plan.describe());
  run.args = crash_args(server, dir, mode);

  run.held = kill_during_held_submit(server, run.args);
  run.landed = kill_repeatedly(run.args, run.plan);
  EXPECT_GE(run.landed, random_kills) << "kills that landed while batch_run ran";
  run.last = run_batch(run.args);
  ASSERT_TRUE(run.last.exited) << "signal " << run.last.signal;
  ASSERT_EQ(run.last.exit_code, expected_exit) << run.last.out << run.last.err;

  run.submissions = submissions_of(server);
  run.created = created_by_entry(run.submissions);
  EXPECT_EQ(created_twice(run.created), "");
}

// The end of a finished batch: one result per entry, `status` exits 0 with no unknown job. Returns the status.
json expect_finished(const temp_dir& dir, const std::map<int, std::vector<std::string>>& created) {
  expect_one_result_per_entry(dir, created);
  json status = status_of(dir, 0);
  EXPECT_EQ(status.at("counts").at("unknown"), 0);
  return status;
}

TEST(BatchCrash, IdempotencyKeyCreatesEveryEntryOnceAcrossKills) {
  loopback_server server;
  temp_dir dir;
  crash_run run;
  ASSERT_NO_FATAL_FAILURE(crash_and_resume(server, dir, "key", 0, run));
  const auto& created = run.created;
  EXPECT_EQ(created.size(), static_cast<std::size_t>(entries));
  // The held submit was sent again with its key after the kill and answered with the job it had created.
  std::size_t replayed_held = 0, replayed = 0;
  for (const auto& s : run.submissions) {
    if (!s.at("replayed").get<bool>()) continue;
    ++replayed;
    EXPECT_EQ(s.at("job_id"), created.at(s.at("params").at("n").get<int>()).at(0)) << s.dump();
    if (s.at("params").at("n") == run.held) ++replayed_held;
  }
  EXPECT_EQ(replayed_held, 1u);
  std::cout << "[          ] " << run.landed << " kills landed; " << run.submissions.size() << " submits, " << replayed
            << " of them replayed by their key" << std::endl;

  const json status = expect_finished(dir, created);
  EXPECT_EQ(status.at("status"), "COMPLETED");
  EXPECT_EQ(status.at("counts").at("completed"), entries);
  EXPECT_EQ(status.at("counts").at("failed"), 0);
  EXPECT_EQ(status.at("failed"), json::array());
  EXPECT_EQ(status.at("unknown"), json::array());
}

TEST(BatchCrash, LookupFindsEveryCutSubmitAcrossKills) {
  loopback_server server;
  temp_dir dir;
  crash_run run;
  ASSERT_NO_FATAL_FAILURE(crash_and_resume(server, dir, "lookup", 0, run));
  EXPECT_EQ(run.created.size(), static_cast<std::size_t>(entries));
  for (const auto& s : run.submissions) EXPECT_EQ(s.at("replayed"), false) << "the server's idempotency is off";
  // The held submit's job was found by its client_ref, not submitted again.
  const json log = server.log();
  std::size_t lookups = 0;
  for (const auto& request : log)
    if (request.at("method") == "GET" && request.at("path") == "/v1/jobs") ++lookups;
  EXPECT_GE(lookups, 1u);
  EXPECT_EQ(run.created.at(run.held).size(), 1u);
  std::cout << "[          ] " << run.landed << " kills landed; " << run.submissions.size() << " submits, " << lookups
            << " lookups" << std::endl;

  const json status = expect_finished(dir, run.created);
  EXPECT_EQ(status.at("counts").at("failed"), 0);
}

TEST(BatchCrash, WithoutKeyOrLookupCutSubmitsAreUnknownUntilResubmitted) {
  loopback_server server;
  temp_dir dir;
  crash_run run;
  // Unknown jobs (the held one at least) leave the batch unfinished.
  ASSERT_NO_FATAL_FAILURE(crash_and_resume(server, dir, "none", 2, run));
  EXPECT_THAT(run.last.err, HasSubstr("unknown"));
  EXPECT_THAT(run.last.err, HasSubstr("`batch_run resubmit ID` (a new job), `batch_run skip ID` or `batch_run adopt ID "
                                      "HANDLE` (the server's job)"));
  const auto& created = run.created;

  // Every entry is completed or unknown; `status` lists exactly the unknown ones.
  auto records = live_records(dir);
  const auto& completed = records[batch_job_state::completed];
  const auto& unknown = records[batch_job_state::unknown];
  EXPECT_EQ(completed.size() + unknown.size(), static_cast<std::size_t>(entries));
  for (const auto& [state, jobs] : records)
    if (state != batch_job_state::completed && state != batch_job_state::unknown)
      ADD_FAILURE() << jobs.size() << " records " << jobpoll::to_string(state);
  std::set<std::size_t> unknown_ids, unknown_entries;
  for (const auto& job : unknown) {
    unknown_ids.insert(job.id);
    unknown_entries.insert(job.entry);
  }
  EXPECT_TRUE(unknown_entries.contains(static_cast<std::size_t>(run.held)));
  const json status = status_of(dir, 2);
  EXPECT_EQ(status.at("counts").at("unknown"), unknown.size());
  std::set<std::size_t> listed;
  for (const auto& job : status.at("unknown")) listed.insert(job.at("id").get<std::size_t>());
  EXPECT_EQ(listed, unknown_ids);
  // For the record: an unknown entry may or may not have a job at the server.
  std::size_t with_job = 0;
  for (const std::size_t e : unknown_entries) with_job += created.contains(static_cast<int>(e)) ? 1 : 0;
  EXPECT_GE(with_job, 1u) << "the held submit created its job";
  std::cout << "[          ] " << run.landed << " kills landed; " << unknown.size() << " unknown jobs, " << with_job
            << " of them with a job at the server" << std::endl;

  // Settled by resubmission: each a new job of its own; then the batch completes.
  std::vector<std::string> resubmit{"resubmit"};
  for (const std::size_t id : unknown_ids) resubmit.push_back(std::to_string(id));
  const run_result resubmitted = run_sub(dir, resubmit);
  ASSERT_EQ(resubmitted.exit_code, 0) << resubmitted.err;
  EXPECT_EQ(lines_of(resubmitted.out).size(), unknown_ids.size());
  const run_result finished = run_batch(run.args);
  ASSERT_EQ(finished.exit_code, 0) << finished.out << finished.err;

  const auto after = created_by_entry(submissions_of(server));
  EXPECT_EQ(after.size(), static_cast<std::size_t>(entries));
  for (int n = 0; n < entries; ++n) {
    const std::size_t before = created.contains(n) ? created.at(n).size() : 0;
    const std::size_t expected = unknown_entries.contains(static_cast<std::size_t>(n)) ? before + 1 : before;
    EXPECT_EQ(after.contains(n) ? after.at(n).size() : 0, expected) << "entry " << n;
  }
  const json done = expect_finished(dir, after);
  EXPECT_EQ(done.at("counts").at("skipped"), unknown.size());
}

// The pid of the batch_run child of this process whose command line names `store`, 0 if none.
pid_t batch_run_pid(const fs::path& store) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmdline(entry.path() / "cmdline", std::ios::binary);
    const std::string args{std::istreambuf_iterator<char>(cmdline), std::istreambuf_iterator<char>()};
    if (!args.starts_with(std::string(JOBPOLL_TEST_BATCH_EXAMPLE) + '\0')) continue;
    if (args.find('\0' + store.string() + '\0') == std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(line.substr(close + 2));
    std::string state;
    pid_t parent = 0;
    fields >> state >> parent;
    if (parent == ::getpid()) return static_cast<pid_t>(std::stol(name));
  }
  return 0;
}

TEST(BatchCrash, SecondRunnerIsRefusedAndAThirdTakesOverAfterAKill) {
  loopback_server server;
  temp_dir dir;
  constexpr int jobs = 6;
  // As many slots as entries: A submits every entry at once, then only
  // polls, so any later POST would be B's. Each job needs 30 polls 50 ms apart.
  const std::vector<std::string> args{"--server",      server.base_url(), "--store", store_of(dir).string(),
                                      "--jobs",        std::to_string(jobs), "--steps", "30",
                                      "--interval",    "50ms",            "--concurrency", std::to_string(jobs),
                                      "--grace",       "0"};
  child_process a(batch_command(args));
  a.wait_until(
      [&] {
        const json s = submissions_of(server);
        return s.size() == jobs &&
               std::all_of(s.begin(), s.end(), [](const json& one) { return !one.at("job_id").is_null(); });
      },
      "A's submits of every entry");
  const pid_t a_pid = batch_run_pid(store_of(dir));
  ASSERT_NE(a_pid, 0) << "A's pid, from /proc";
  {
    jobpoll::sqlite_store store(store_of(dir), "batch_run");
    ASSERT_TRUE(store.owner());
    EXPECT_EQ(store.owner()->pid, a_pid);
  }

  const std::size_t before = submissions_of(server).size();
  const std::size_t requests_before = server.log().size();
  const run_result b = run_batch(args);
  ASSERT_TRUE(b.exited) << "signal " << b.signal;
  EXPECT_EQ(b.exit_code, 3) << b.err;
  EXPECT_EQ(b.out, "");
  EXPECT_THAT(b.err, HasSubstr(store_of(dir).string()));
  EXPECT_THAT(b.err, HasSubstr("owned by pid " + std::to_string(a_pid) + " on host "));
  EXPECT_THAT(b.err, HasSubstr("(that process is running): stop it first"));
  EXPECT_EQ(submissions_of(server).size(), before) << "B sent a submit";
  // Nor any other request of B's: A's are polls of its own jobs.
  const json log = server.log();
  for (std::size_t i = requests_before; i < log.size(); ++i)
    EXPECT_EQ(log[i].at("method"), "GET") << log[i].dump();

  a.send(SIGKILL);
  const run_result killed = a.finish();
  EXPECT_EQ(killed.signal, SIGKILL);
  std::size_t left_running = 0;
  {
    jobpoll::sqlite_store store(store_of(dir), "batch_run");
    EXPECT_EQ(store.owner().value().pid, a_pid) << "a killed runner cannot give the batch up";
    left_running = store.counts()[batch_job_state::running];
  }

  const run_result c = run_batch(args);
  ASSERT_TRUE(c.exited) << "signal " << c.signal;
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_THAT(c.err, HasSubstr("batch_run: took the batch over from pid " + std::to_string(a_pid) + " on host "));
  EXPECT_EQ(json::parse(c.out).at("resumed"), left_running);

  const auto created = created_by_entry(submissions_of(server));
  EXPECT_EQ(created.size(), static_cast<std::size_t>(jobs));
  EXPECT_EQ(created_twice(created), "");
  const json status = status_of(dir, 0);
  EXPECT_EQ(status.at("owner"), nullptr);
  EXPECT_EQ(status.at("counts").at("completed"), jobs);
}

}  // namespace
