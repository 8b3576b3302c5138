// Several runners on one batch, from the outside: three examples/batch_run
// processes run one PostgreSQL batch of 3,000 jobs against the loopback job
// server (with its idempotency: --submit-key key), and one of them is killed
// with SIGKILL mid-run, while it polls jobs it submitted. Judged by the
// server's own record of every POST /v1/jobs (/_control/submissions) and by
// the store's tables:
// - every entry was created at the server exactly once;
// - every entry has exactly one completed record, its result kept once;
// - the jobs the killed runner was polling were taken over by the others
//   once its lease (2 s) ran out, each with a "taken over" history line, and
//   finished by the handle it had saved: no submit of theirs after the kill.
// And the two pieces together, as the README's "Beyond one machine" shows
// them: three runners of one PostgreSQL batch sharing one Redis budget
// (--rate-redis), judged by the arrival times the server logged.

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <jobpoll/store/postgres.hpp>

#include "child_process.hpp"
#include "loopback_server.hpp"
#include "postgres_server.hpp"
#include "redis_server.hpp"

#ifndef JOBPOLL_TEST_BATCH_EXAMPLE
#error "postgres_runners_test.cpp needs JOBPOLL_TEST_BATCH_EXAMPLE, the path of the built batch_run"
#endif

namespace {

using namespace std::chrono_literals;
using jobpoll::batch_job_state;
using jobpoll::test::loopback_server;
using jobpoll_test::child_process;
using json = nlohmann::json;
using testing::HasSubstr;

constexpr int entries = 3000;
constexpr int runners = 3;
constexpr int killed = 1;  // the index of the runner killed

std::vector<std::string> batch_command(std::vector<std::string> args) {
  args.insert(args.begin(), JOBPOLL_TEST_BATCH_EXAMPLE);
  return args;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The runner id a batch_run prints on stderr ("batch_run: runner <id> on ..."), "" until then.
std::string runner_id_of(const std::string& err) {
  const std::string mark = "batch_run: runner ";
  const auto at = err.find(mark);
  if (at == std::string::npos) return "";
  const auto end = err.find(' ', at + mark.size());
  return end == std::string::npos ? "" : err.substr(at + mark.size(), end - at - mark.size());
}

// A record the killed runner was polling when it died.
struct held_record {
  std::size_t id = 0;
  int entry = 0;
  std::string handle;
};

TEST(PostgresRunners, ThreeRunnersOneKilledEveryEntryOnceAndTheDeadRunnersJobsFinishedByHandle) {
  loopback_server server;  // idempotency on: a resent submit with its key is replayed, not created again
  jobpoll_test::postgres_database db;
  // Over TCP with the password, as from another machine.
  const std::string store = db.server().uri(db.name());
  const std::vector<std::string> args{"--server",      server.base_url(),
                                      "--store",       store,
                                      "--jobs",        std::to_string(entries),
                                      "--steps",       "3",
                                      "--interval",    "20ms",
                                      "--concurrency", "16",
                                      "--lease",       "2s",
                                      "--grace",       "0"};

  std::vector<std::unique_ptr<child_process>> runs;
  for (int r = 0; r < runners; ++r) runs.push_back(std::make_unique<child_process>(batch_command(args)));
  std::vector<std::string> ids(runners);
  const auto pump_all = [&] {
    for (auto& run : runs)
      if (run->output_open()) run->pump(5ms);
  };
  const auto sql = [&](const std::string& statement) { return db.sql(statement).value_or(""); };
  const auto guard = std::chrono::steady_clock::now() + 240s;
  const auto check_guard = [&](const std::string& what) {
    ASSERT_LT(std::chrono::steady_clock::now(), guard) << "no " << what << " within 240 s; stderr of each runner:\n"
                                                       << runs[0]->err() << "\n---\n"
                                                       << runs[1]->err() << "\n---\n"
                                                       << runs[2]->err();
  };

  // Mid-run: once a fifth of the batch is done and the victim polls jobs of its own.
  std::vector<held_record> held;
  for (;;) {
    pump_all();
    for (int r = 0; r < runners; ++r)
      if (ids[r].empty()) ids[r] = runner_id_of(runs[r]->err());
    ASSERT_TRUE(runs[killed]->output_open()) << "the victim ended before it was killed: " << runs[killed]->err();
    ASSERT_NO_FATAL_FAILURE(check_guard("moment to kill"));
    if (ids[killed].empty()) continue;
    const std::string done = sql("SELECT count(*) FROM jobpoll.jobs WHERE state = 'completed'");
    if (done.empty() || std::stoi(done) < entries / 5) {
      std::this_thread::sleep_for(20ms);
      continue;
    }
    const std::string polling =
        sql("SELECT count(*) FROM jobpoll.jobs WHERE state = 'running' AND owner = '" + ids[killed] + "'");
    if (std::stoi(polling) >= 4) break;
  }
  runs[killed]->send(SIGKILL);
  const auto dead = runs[killed]->finish();
  EXPECT_EQ(dead.signal, SIGKILL);
  // What it held, as it left it (nothing changes it until its lease runs out).
  {
    PGconn* conn = PQconnectdb(db.conninfo().c_str());
    ASSERT_EQ(PQstatus(conn), CONNECTION_OK);
    PGresult* r = PQexec(conn, ("SELECT j.id, j.entry, j.handle->>'id' FROM jobpoll.jobs j WHERE j.state = 'running' "
                                "AND j.owner = '" +
                                ids[killed] + "' ORDER BY j.id")
                                   .c_str());
    ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQerrorMessage(conn);
    for (int i = 0; i < PQntuples(r); ++i)
      held.push_back({std::stoul(PQgetvalue(r, i, 0)), std::stoi(PQgetvalue(r, i, 1)), PQgetvalue(r, i, 2)});
    PQclear(r);
    PQfinish(conn);
  }
  ASSERT_GE(held.size(), 1u) << "the victim polled nothing when it died";
  const std::size_t submissions_at_kill = server.control("GET", "/_control/submissions").size();

  // The other two run to the end (their exit: the batch COMPLETED).
  while (runs[0]->output_open() || runs[2]->output_open()) {
    pump_all();
    ASSERT_NO_FATAL_FAILURE(check_guard("end of the two other runners"));
  }
  for (const int r : {0, 2}) {
    const auto end = runs[static_cast<std::size_t>(r)]->finish();
    ASSERT_TRUE(end.exited) << "runner " << r << " signal " << end.signal;
    EXPECT_EQ(end.exit_code, 0) << "runner " << r << ": " << end.out << end.err;
    EXPECT_EQ(json::parse(end.out).at("status"), "COMPLETED") << end.out;
  }

  // 1. Every entry created at the server once.
  const json submissions = server.control("GET", "/_control/submissions");
  std::map<int, std::vector<std::string>> created;  // by entry
  std::map<int, std::size_t> posts;                 // by entry, replays included
  for (const auto& s : submissions) {
    const int n = s.at("params").at("n").get<int>();
    ++posts[n];
    if (!s.at("job_id").is_null() && !s.at("replayed").get<bool>())
      created[n].push_back(s.at("job_id").get<std::string>());
  }
  EXPECT_EQ(created.size(), static_cast<std::size_t>(entries));
  std::string twice;
  for (const auto& [n, jobs] : created)
    if (jobs.size() != 1) twice += "entry " + std::to_string(n) + ": " + std::to_string(jobs.size()) + " jobs\n";
  EXPECT_EQ(twice, "");

  // 2. Every result collected once: one completed record per entry, with the
  //    result of the job the server created for it.
  const std::string completed_twice =
      sql("SELECT count(*) FROM (SELECT entry FROM jobpoll.jobs WHERE state = 'completed' AND NOT skipped "
          "GROUP BY entry HAVING count(*) <> 1) t");
  EXPECT_EQ(completed_twice, "0");
  EXPECT_EQ(sql("SELECT count(DISTINCT entry) FROM jobpoll.jobs WHERE state = 'completed' AND NOT skipped"),
            std::to_string(entries));
  const auto results = jobpoll_test::run_child(batch_command({"--store", store, "results"}));
  ASSERT_EQ(results.exit_code, 0) << results.err;
  const auto lines = lines_of(results.out);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(entries));
  for (int n = 0; n < entries; ++n) {
    const json line = json::parse(lines[static_cast<std::size_t>(n)]);
    ASSERT_EQ(line.at("entry"), n);
    EXPECT_EQ(line.at("result"), json({{"tool", "batch"}, {"params", {{"n", n}}}})) << line.dump();
    ASSERT_TRUE(created.contains(n));
    EXPECT_EQ(line.at("handle"), created.at(n).front()) << line.dump();
  }

  // 3. The dead runner's jobs: taken over once its lease ran out, finished by
  //    their saved handle by a live runner, never submitted again.
  for (const held_record& h : held) {
    SCOPED_TRACE("job " + std::to_string(h.id) + " (entry " + std::to_string(h.entry) + ")");
    EXPECT_EQ(posts[h.entry], 1u) << "the job was submitted again after the kill";
    EXPECT_EQ(
        sql("SELECT count(*) FROM jobpoll.history WHERE job = " + std::to_string(h.id) +
            " AND note LIKE 'taken over from runner " + ids[killed] + " (pid % on host %) whose lease ran out at %'"),
        "1");
    EXPECT_EQ(sql("SELECT state || ' ' || (handle->>'id') FROM jobpoll.jobs WHERE id = " + std::to_string(h.id)),
              "completed " + h.handle);
    const std::string finisher =
        sql("SELECT runner FROM jobpoll.history WHERE job = " + std::to_string(h.id) + " ORDER BY seq DESC LIMIT 1");
    EXPECT_TRUE(finisher == ids[0] || finisher == ids[2]) << "finished by " << finisher;
  }
  // At least those: a commit the victim sent just before SIGKILL (a submit's
  // handle: submitting -> running) may still land at the server after the
  // snapshot above, and that job is then taken over running too.
  EXPECT_GE(std::stoul(sql("SELECT count(*) FROM jobpoll.history WHERE state = 'running' AND note LIKE "
                           "'taken over from runner " +
                           ids[killed] + "%'")),
            held.size());
  // Every submit after the kill was an entry's first (or a replay of a cut one by its key).
  std::set<int> after_kill;
  for (std::size_t i = submissions_at_kill; i < submissions.size(); ++i)
    after_kill.insert(submissions[i].at("params").at("n").get<int>());
  for (const held_record& h : held) EXPECT_FALSE(after_kill.contains(h.entry)) << "entry " << h.entry;

  // The dead runner's registration is left, holding nothing; `release` removes it.
  EXPECT_EQ(sql("SELECT count(*) || ' ' || bool_and(lease_until < now()) FROM jobpoll.runners"), "1 true");
  const auto status = jobpoll_test::run_child(batch_command({"--store", store, "status"}));
  EXPECT_EQ(status.exit_code, 0) << status.err;
  const json runners_now = json::parse(status.out).at("runners");
  ASSERT_EQ(runners_now.size(), 1u) << status.out;
  EXPECT_EQ(runners_now[0].at("id"), ids[killed]);
  EXPECT_EQ(runners_now[0].at("live"), false);
  EXPECT_EQ(runners_now[0].at("held"), 0);
  const auto release = jobpoll_test::run_child(batch_command({"--store", store, "release"}));
  EXPECT_EQ(release.exit_code, 0) << release.err;
  EXPECT_THAT(release.out, HasSubstr("released runner " + ids[killed]));
  EXPECT_EQ(sql("SELECT count(*) FROM jobpoll.runners"), "0");
  std::cout << "[          ] " << held.size() << " jobs polled by the killed runner taken over; " << submissions.size()
            << " submits (" << submissions.size() - static_cast<std::size_t>(entries) << " replayed by key)"
            << std::endl;
}

TEST(PostgresRunners, ThreeRunnersShareOneRedisBudgetAsTheServerCountsIt) {
  constexpr int jobs = 60;
  constexpr std::size_t budget = 30;  // requests in any 1 s window, for the three runners together
  loopback_server server;
  jobpoll_test::postgres_database db;
  jobpoll_test::redis_server redis;
  const std::string store = db.server().uri(db.name());
  const std::vector<std::string> args{"--server",      server.base_url(),
                                      "--store",       store,
                                      "--jobs",        std::to_string(jobs),
                                      "--steps",       "1",
                                      "--interval",    "20ms",
                                      "--concurrency", "8",
                                      "--lease",       "5s",
                                      "--rate-redis",  "unix://" + redis.socket_path() + "?key=api&rate=" +
                                                           std::to_string(budget) + "/1s"};
  std::vector<std::unique_ptr<child_process>> runs;
  for (int r = 0; r < runners; ++r) runs.push_back(std::make_unique<child_process>(batch_command(args)));
  for (int r = 0; r < runners; ++r) {
    const auto end = runs[static_cast<std::size_t>(r)]->finish();
    ASSERT_TRUE(end.exited) << "runner " << r << " signal " << end.signal;
    ASSERT_EQ(end.exit_code, 0) << "runner " << r << ": " << end.out << end.err;
    EXPECT_EQ(json::parse(end.out).at("status"), "COMPLETED") << end.out;
  }

  // Every entry created once, and what the three sent together never more
  // than the budget in any 1 s window of the server's arrival times.
  std::map<int, int> created;
  for (const auto& s : server.control("GET", "/_control/submissions"))
    if (!s.at("job_id").is_null() && !s.at("replayed").get<bool>()) ++created[s.at("params").at("n").get<int>()];
  EXPECT_EQ(created.size(), static_cast<std::size_t>(jobs));
  for (const auto& [n, count] : created) EXPECT_EQ(count, 1) << "entry " << n;
  std::vector<double> arrived;
  for (const auto& request : server.control("GET", "/_control/log")) arrived.push_back(request.at("arrived"));
  std::sort(arrived.begin(), arrived.end());
  ASSERT_GT(arrived.size(), 2 * budget) << "too few requests to fill two windows";
  std::size_t most = 0;
  for (std::size_t first = 0, last = 0; first < arrived.size(); ++first) {
    while (last < arrived.size() && arrived[last] < arrived[first] + 1.0) ++last;
    most = std::max(most, last - first);
  }
  EXPECT_LE(most, budget) << arrived.size() << " requests";
  // Each runner did part of the batch.
  EXPECT_EQ(db.sql("SELECT count(DISTINCT runner) FROM jobpoll.history WHERE state = 'completed'").value_or(""),
            std::to_string(runners));
  std::cout << "[          ] " << arrived.size() << " requests, at most " << most << " in any 1 s window (budget "
            << budget << ")" << std::endl;
}

}  // namespace
