// State changes per second and CPU per change of the batch stores: the
// PostgreSQL store (a cluster this program starts, as the tests do, with
// fsync off and on) against the SQLite store (a file, without and with an
// fsync per commit), with 1 and 3 runners, each a thread with its own store
// object (its own connection).
//
// A change is what a batch runner saves as a job moves: `update` of one
// record with its history row, one transaction. Each runner moves every job
// it gets through pending -> submitting -> running -> completed (three
// changes). On PostgreSQL a runner gets its jobs as a shared runner does,
// with `take(16)` (its time counted, not counted as a change); on SQLite,
// where one runner owns a batch, the three runners split the records by id
// and write to the one file (SQLite serialises the writers).
//
// CPU: this process's (the stores' client side, every thread), and for
// PostgreSQL the server's (the postmaster and all its children, from
// /proc), both per change; latency per change (p50, p99) from each update's
// wall time. The batch is created before the clock starts.
//
// Usage: store_changes [--jobs N] [--fsync-jobs N]
//   --jobs N        jobs per configuration without fsync (default 3000)
//   --fsync-jobs N  jobs per configuration with an fsync per commit (default 1000)

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <unistd.h>

#include <jobpoll/store/postgres.hpp>
#include <jobpoll/store/sqlite.hpp>

#include "postgres_server.hpp"

namespace {

using namespace std::chrono_literals;
using jobpoll::batch_job;
using jobpoll::batch_job_state;

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// utime + stime of process `pid` in seconds (0 if it is gone).
double process_cpu(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return 0;
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string skip;
  for (int field = 3; field < 14; ++field) fields >> skip;  // state .. cmajflt
  long utime = 0, stime = 0;
  fields >> utime >> stime;
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// CPU of the postmaster of `data` and every process it started.
double server_cpu(const std::filesystem::path& data) {
  std::ifstream pidfile(data / "postmaster.pid");
  std::string postmaster;
  std::getline(pidfile, postmaster);
  double total = process_cpu(postmaster);
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(line.substr(close + 2));
    std::string state, parent;
    fields >> state >> parent;
    if (parent == postmaster) total += process_cpu(name);
  }
  return total;
}

std::vector<jobpoll::batch_entry> entries(std::size_t n) {
  std::vector<jobpoll::batch_entry> out;
  out.reserve(n);
  for (std::size_t k = 0; k < n; ++k)
    out.emplace_back(jobpoll::job_params{{"name", "e" + std::to_string(k)}, {"polls", "3"}, {"outcome", "completed"}});
  return out;
}

// Moves `job` pending -> submitting -> running -> completed, timing each update.
template <class Store>
void run_job(Store& store, batch_job job, std::vector<std::int64_t>& latencies) {
  const auto change = [&](batch_job_state to, const std::string_view note) {
    const batch_job_state from = job.state;
    job.state = to;
    if (to == batch_job_state::running) {
      job.handle = jobpoll::job_handle("job-" + std::to_string(job.id), job.params);
      job.submitted = std::chrono::system_clock::now();
    }
    if (to == batch_job_state::completed) {
      job.ended = std::chrono::system_clock::now();
      job.result = R"({"tool":"batch","rows":3})";
    }
    const auto t0 = std::chrono::steady_clock::now();
    store.update(job, from, note);
    latencies.push_back(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
  };
  change(batch_job_state::submitting, "");
  change(batch_job_state::running, "");
  change(batch_job_state::completed, "");
}

struct figures {
  std::string store;
  int runners = 0;
  std::size_t changes = 0;
  double wall = 0;
  double client_cpu = 0;
  double server_cpu = -1;  // < 0: no server
  std::vector<std::int64_t> latencies;
};

void print_header() {
  std::printf("%-34s %7s %8s %9s %11s %12s %12s %12s %9s %9s\n", "store", "runners", "changes", "wall s", "changes/s",
              "client us/ch", "server us/ch", "total us/ch", "p50 us", "p99 us");
}

void print(figures f) {
  std::sort(f.latencies.begin(), f.latencies.end());
  const auto at = [&](double q) {
    return f.latencies.empty()
               ? 0.0
               : static_cast<double>(
                     f.latencies[static_cast<std::size_t>(q * static_cast<double>(f.latencies.size() - 1))]) /
                     1000.0;
  };
  const double n = static_cast<double>(f.changes);
  char server[32] = "-";
  if (f.server_cpu >= 0) std::snprintf(server, sizeof server, "%.1f", f.server_cpu / n * 1e6);
  std::printf("%-34s %7d %8zu %9.2f %11.0f %12.1f %12s %12.1f %9.1f %9.1f\n", f.store.c_str(), f.runners, f.changes,
              f.wall, n / f.wall, f.client_cpu / n * 1e6, server,
              (f.client_cpu + std::max(0.0, f.server_cpu)) / n * 1e6, at(0.5), at(0.99));
  std::fflush(stdout);
}

figures bench_sqlite(const std::filesystem::path& dir, bool fsync, std::size_t jobs, int runners) {
  const auto path = dir / ("changes-" + std::to_string(fsync) + "-" + std::to_string(runners) + ".db");
  const jobpoll::sqlite_store_options options{
      .durability = fsync ? jobpoll::sqlite_durability::power_loss : jobpoll::sqlite_durability::process_crash,
      .busy_timeout = 60s};
  jobpoll::sqlite_store(path, "b", options).create(entries(jobs));
  std::vector<std::unique_ptr<jobpoll::sqlite_store>> stores;
  for (int r = 0; r < runners; ++r) stores.push_back(std::make_unique<jobpoll::sqlite_store>(path, "b", options));
  std::vector<std::vector<std::int64_t>> latencies(static_cast<std::size_t>(runners));
  std::barrier start(runners + 1);
  std::vector<std::thread> threads;
  for (int r = 0; r < runners; ++r) {
    threads.emplace_back([&, r] {
      auto& store = *stores[static_cast<std::size_t>(r)];
      auto& mine = latencies[static_cast<std::size_t>(r)];
      mine.reserve(3 * jobs);
      start.arrive_and_wait();
      for (std::size_t id = 1 + static_cast<std::size_t>(r); id <= jobs; id += static_cast<std::size_t>(runners))
        run_job(store, *store.job(id), mine);
    });
  }
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  start.arrive_and_wait();
  for (auto& t : threads) t.join();
  figures f;
  f.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  f.client_cpu = cpu_seconds() - cpu0;
  f.store = std::string("sqlite ") + (fsync ? "(fsync per commit: FULL)" : "(WAL, NORMAL: no fsync)");
  f.runners = runners;
  for (auto& l : latencies) f.latencies.insert(f.latencies.end(), l.begin(), l.end());
  f.changes = f.latencies.size();
  if (f.changes != 3 * jobs) throw std::runtime_error("sqlite: " + std::to_string(f.changes) + " changes");
  return f;
}

figures bench_postgres(jobpoll_test::postgres_server& server, bool fsync, std::size_t jobs, int runners) {
  const std::string db = server.create_database();
  const std::string conninfo = server.conninfo(db);
  jobpoll::postgres_store(conninfo, "b").create(entries(jobs));
  std::vector<std::unique_ptr<jobpoll::postgres_store>> stores;
  for (int r = 0; r < runners; ++r) {
    stores.push_back(std::make_unique<jobpoll::postgres_store>(conninfo, "b"));
    stores.back()->claim();
  }
  std::vector<std::vector<std::int64_t>> latencies(static_cast<std::size_t>(runners));
  std::barrier start(runners + 1);
  std::vector<std::thread> threads;
  for (int r = 0; r < runners; ++r) {
    threads.emplace_back([&, r] {
      auto& store = *stores[static_cast<std::size_t>(r)];
      auto& mine = latencies[static_cast<std::size_t>(r)];
      mine.reserve(3 * jobs);
      start.arrive_and_wait();
      for (;;) {
        std::vector<batch_job> page = store.take(16);
        if (page.empty()) break;
        for (batch_job& job : page) run_job(store, std::move(job), mine);
      }
    });
  }
  const auto data = server.dir() / "data";
  const double server0 = server_cpu(data);
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  start.arrive_and_wait();
  for (auto& t : threads) t.join();
  figures f;
  f.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  f.client_cpu = cpu_seconds() - cpu0;
  f.server_cpu = server_cpu(data) - server0;
  f.store = std::string("postgres ") + (fsync ? "(fsync on)" : "(fsync, sync commit off)");
  f.runners = runners;
  for (auto& l : latencies) f.latencies.insert(f.latencies.end(), l.begin(), l.end());
  f.changes = f.latencies.size();
  if (f.changes != 3 * jobs) throw std::runtime_error("postgres: " + std::to_string(f.changes) + " changes");
  for (auto& s : stores) s->release();
  return f;
}

std::size_t count_arg(int argc, char** argv, std::string_view name, std::size_t fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == name) return static_cast<std::size_t>(std::stoul(argv[i + 1]));
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::size_t jobs = count_arg(argc, argv, "--jobs", 3000);
    const std::size_t fsync_jobs = count_arg(argc, argv, "--fsync-jobs", 1000);
    std::string pattern = (std::filesystem::temp_directory_path() / "jobpoll-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp " + pattern);
    const std::filesystem::path dir = pattern;
    std::printf(
        "state changes (update + history row, one transaction each); %zu jobs x 3 changes (%zu with fsync); "
        "%u CPUs\n",
        jobs, fsync_jobs, std::thread::hardware_concurrency());
    print_header();
    for (const bool fsync : {false, true}) {
      const std::size_t n = fsync ? fsync_jobs : jobs;
      for (const int runners : {1, 3}) print(bench_sqlite(dir, fsync, n, runners));
      jobpoll_test::postgres_server server({.fsync = fsync});
      for (const int runners : {1, 3}) print(bench_postgres(server, fsync, n, runners));
    }
    std::filesystem::remove_all(dir);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "store_changes: %s\n", e.what());
    return 1;
  }
}
