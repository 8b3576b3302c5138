// The batch runner against job_client alone, on the in-memory job API
// (tests/support/memory_job_api.hpp) and steady_clock: the seed's 100-job run
// and a 100,000-job run. Every job answers "running" P times, then
// "completed"; polls are 0 s apart, with no latency and no jitter, so the
// figures are the cost of the client, the runner and the API themselves.
//
// Three ways for each size, each run in a fresh child process:
//   baseline       job_client alone: C coroutines (co_spawn), each taking the
//                  next job from a shared counter and awaiting
//                  `client.run(params, options)`, results moved into a vector
//                  (what a user writes without the batch runner);
//   runner         batch_runner, max_in_flight C, results moved into a vector
//                  by the result handler; no checkpoint, no audit log;
//   runner+ckpt    the same with a checkpoint file (checkpoint_interval 1 s)
//                  and an NDJSON audit log, in a temp directory removed afterwards.
// and an "empty" child (the process and its io_context), whose peak RSS is
// subtracted to give the memory per job.
//
// Wall and CPU (CLOCK_PROCESS_CPUTIME_ID) time the constructor of the runner
// (which creates the job records and, with an audit log, writes their first
// lines) and io_context::run: not the process start, not the building of the
// entries. Peak RSS is the child's VmHWM from /proc/self/status at the end of
// the run: the high-water mark of the executed image alone (ru_maxrss would
// also count the pages of the parent copied by fork before the exec), before
// the checks, which allocate (reading the checkpoint back). A child checks that
// every job completed exactly once (N results, each name once, N submits to
// the API, one submit per name; with a checkpoint, N completed jobs in it):
// a run that does not is an error, not a figure.
//
// Usage: batch_bench [--reps=R] [--large-reps=R]
//          medians of R fresh-process runs per way (default 5) for 100 jobs and
//          of --large-reps (default: R) for 100,000 jobs
//        batch_bench --child WAY N P C   one run; prints key=value pairs
//          (WAY: empty, baseline, runner, runner+ckpt)

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <utility>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <jobpoll/batch/batch_runner.hpp>
#include <jobpoll/batch/checkpoint.hpp>
#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/job_client.hpp>

#include "child_run.hpp"

#include "memory_job_api.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using api_type = jobpoll_test::steady_memory_job_api;
using status_type = jobpoll::field_status<jobpoll::json_codec>;
using client_type = jobpoll::job_client<api_type, jobpoll::json_codec, status_type>;
using runner_type = jobpoll::batch_runner<client_type>;

constexpr std::array<std::string_view, 4> ways{"empty", "baseline", "runner", "runner+ckpt"};

jobpoll::poll_options job_options() {
  jobpoll::poll_options o;
  o.interval = jobpoll::fixed_interval{std::chrono::nanoseconds::zero()};
  return o;
}

std::string job_name(std::size_t k) { return "e" + std::to_string(k); }

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// VmHWM in bytes.
long peak_rss() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6) * 1024;
  throw std::runtime_error("no VmHWM in /proc/self/status");
}

// Throws unless `values` holds exactly the results of jobs e0..e<n-1>, once
// each, and the API created each of them once.
void check_every_job_once(const std::vector<json>& values, const api_type& api, std::size_t n) {
  if (values.size() != n)
    throw std::runtime_error(std::to_string(values.size()) + " results for " + std::to_string(n) + " jobs");
  if (api.submits() != n)
    throw std::runtime_error(std::to_string(api.submits()) + " submits for " + std::to_string(n) + " jobs");
  std::unordered_set<std::string> names;
  names.reserve(n);
  for (const json& v : values) {
    const std::string& name = v.at("name").get_ref<const std::string&>();
    if (!names.insert(name).second) throw std::runtime_error("two results for job " + name);
  }
  for (std::size_t k = 0; k < n; ++k) {
    const std::string name = job_name(k);
    if (!names.contains(name)) throw std::runtime_error("no result for job " + name);
    if (api.submits_named(name) != 1)
      throw std::runtime_error(std::to_string(api.submits_named(name)) + " submits of job " + name);
  }
}

// A directory of its own under the system's temp directory, removed when destroyed.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "jobpoll-batch-bench-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
    path_ = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const noexcept { return path_; }

 private:
  fs::path path_;
};

struct timing {
  double wall = 0;
  double setup = 0;  // of `wall`, before io_context::run: the runner's constructor, co_spawn
  double cpu = 0;
  long rss = 0;  // peak, read at the end of the run: the checks that follow allocate too
};

// Times `setup()` then `ctx.run()`.
template <class Setup>
timing timed(asio::io_context& ctx, Setup setup) {
  const auto wall0 = std::chrono::steady_clock::now();
  const double cpu0 = cpu_seconds();
  setup();
  const auto wall1 = std::chrono::steady_clock::now();
  ctx.run();
  const double cpu = cpu_seconds() - cpu0;
  const auto wall2 = std::chrono::steady_clock::now();
  return {std::chrono::duration<double>(wall2 - wall0).count(), std::chrono::duration<double>(wall1 - wall0).count(),
          cpu, peak_rss()};
}

timing run_baseline(asio::io_context& ctx, client_type& client, std::size_t n, std::size_t polls, std::size_t c,
                    std::vector<json>& values) {
  std::vector<jobpoll::job_params> params;
  params.reserve(n);
  for (std::size_t k = 0; k < n; ++k) params.push_back({{"name", job_name(k)}, {"polls", std::to_string(polls)}, {"outcome", "completed"}});
  values.reserve(n);
  std::size_t next = 0;
  std::exception_ptr failure;
  const jobpoll::poll_options options = job_options();
  auto worker = [&]() -> asio::awaitable<void> {
    while (next < n) {
      const std::size_t k = next++;
      jobpoll::job_result<json> r = co_await client.run(std::move(params[k]), options);
      values.push_back(std::move(r.value));
    }
  };
  const timing t = timed(ctx, [&] {
    for (std::size_t w = 0; w < c; ++w)
      asio::co_spawn(ctx, worker(), [&failure](std::exception_ptr e) {
        if (e && !failure) failure = e;
      });
  });
  if (failure) std::rethrow_exception(failure);
  return t;
}

timing run_runner(asio::io_context& ctx, client_type& client, std::size_t n, std::size_t polls, std::size_t c,
                  const temp_dir* files, std::vector<json>& values) {
  std::vector<jobpoll::batch_entry> entries;
  entries.reserve(n);
  for (std::size_t k = 0; k < n; ++k) {
    jobpoll::batch_entry& e = entries.emplace_back();
    e.params = {{"name", job_name(k)}, {"polls", std::to_string(polls)}, {"outcome", "completed"}};
  }
  values.reserve(n);
  jobpoll::batch_options options;
  options.max_in_flight = c;
  options.job = job_options();
  if (files) {
    options.checkpoint = files->path() / "checkpoint.json";
    options.audit_log = files->path() / "audit.ndjson";
  }
  std::optional<runner_type> runner;
  std::optional<jobpoll::batch_report> report;
  std::exception_ptr failure;
  const timing t = timed(ctx, [&] {
    runner.emplace(ctx.get_executor(), client, std::move(entries), std::move(options),
                   [&values](const jobpoll::batch_job&, jobpoll::job_result<json>& r) {
                     values.push_back(std::move(r.value));
                   });
    asio::co_spawn(ctx, runner->run(), [&](std::exception_ptr e, jobpoll::batch_report r) {
      failure = e;
      report = std::move(r);
    });
  });
  if (failure) std::rethrow_exception(failure);
  if (!report) throw std::runtime_error("the batch run did not return");
  const std::size_t completed = report->summary.counts[jobpoll::batch_job_state::completed];
  if (report->end != jobpoll::batch_end::finished || report->summary.status != jobpoll::batch_status::completed ||
      completed != n)
    throw std::runtime_error("the batch did not complete: " + std::to_string(completed) + " of " + std::to_string(n) +
                             " jobs completed, batch " + std::string(jobpoll::to_string(report->summary.status)) +
                             ", run " + std::string(jobpoll::to_string(report->end)) + " (" + report->reason + ")");
  if (report->peak_in_flight != std::min(n, c))
    throw std::runtime_error("peak in flight " + std::to_string(report->peak_in_flight) + ", expected " +
                             std::to_string(std::min(n, c)));
  if (files) {
    const jobpoll::batch_checkpoint saved = jobpoll::load_checkpoint(files->path() / "checkpoint.json");
    const auto saved_completed = std::count_if(saved.jobs.begin(), saved.jobs.end(), [](const jobpoll::batch_job& j) {
      return j.state == jobpoll::batch_job_state::completed;
    });
    if (saved.jobs.size() != n || static_cast<std::size_t>(saved_completed) != n)
      throw std::runtime_error("the checkpoint holds " + std::to_string(saved_completed) + " completed jobs of " +
                               std::to_string(saved.jobs.size()) + ", expected " + std::to_string(n));
  }
  return t;
}

int run_child(std::string_view way, std::size_t n, std::size_t polls, std::size_t c) {
  asio::io_context ctx;
  timing t{0, 0, 0, peak_rss()};
  if (way != "empty") {
    api_type api(ctx.get_executor());
    client_type client(api, jobpoll_test::memory_job_description(), jobpoll_test::memory_job_status());
    std::vector<json> values;
    if (way == "baseline") {
      t = run_baseline(ctx, client, n, polls, c, values);
    } else {
      std::optional<temp_dir> files;
      if (way == "runner+ckpt") files.emplace();
      t = run_runner(ctx, client, n, polls, c, files ? &*files : nullptr, values);
    }
    check_every_job_once(values, api, n);
  }
  std::printf("wall=%.6f setup=%.6f cpu=%.6f rss=%ld\n", t.wall, t.setup, t.cpu, t.rss);
  return 0;
}

// --- driver ------------------------------------------------------------------------

using jobpoll_bench::measurement;

struct size_config {
  std::size_t jobs;
  std::size_t polls;      // "running" answers before "completed"
  std::size_t in_flight;  // C
  int reps;
};

measurement run_in_child(const std::string& self, std::string_view way, const size_config& s) {
  const std::string command = "'" + self + "' --child " + std::string(way) + " " + std::to_string(s.jobs) + " " +
                              std::to_string(s.polls) + " " + std::to_string(s.in_flight);
  measurement m = jobpoll_bench::run_child(command);
  for (const char* key : {"wall", "setup", "cpu", "rss"})
    if (!m.contains(key)) throw std::runtime_error("child printed no " + std::string(key) + ": " + command);
  return m;
}

// The first three fields of /proc/loadavg: other processes on the machine
// stretch the wall times (a child never blocks: it is only preempted).
std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

int run_driver(int reps, int large_reps) {
  std::array<char, 4096> path{};
  const ssize_t len = readlink("/proc/self/exe", path.data(), path.size() - 1);
  if (len <= 0) throw std::system_error(errno, std::generic_category(), "readlink /proc/self/exe");
  const std::string self(path.data(), static_cast<std::size_t>(len));
  const std::array<size_config, 2> sizes{{{100, 3, 10, reps}, {100'000, 3, 100, large_reps}}};

  std::printf(
      "batch_bench: the batch runner against job_client alone on the in-memory job API, steady_clock,\n"
      "one io_context thread; each job: 1 submit, then GETs answering \"running\" P times and then\n"
      "\"completed\", 0 s apart (no latency, no jitter). Each run in a fresh process, ways interleaved;\n"
      "medians. wall, cpu (CLOCK_PROCESS_CPUTIME_ID): the runner's constructor + io_context::run;\n"
      "setup: the constructor (and co_spawn) alone; rss: peak (VmHWM) of the child; us/job: time\n"
      "per job; job KiB: (rss - empty rss) / N. Checkpoint (interval 1 s) and audit log in %s.\n",
      fs::temp_directory_path().c_str());
  std::printf("load average at the start: %s\n", load_average().c_str());
  std::vector<std::string> ratio_lines;
  for (const size_config& s : sizes) {
    std::map<std::string_view, std::map<std::string, std::vector<double>>> runs;
    for (int r = 0; r < s.reps; ++r)
      for (std::string_view way : ways)
        for (auto& [key, value] : run_in_child(self, way, s)) runs[way][key].push_back(value);
    std::map<std::string_view, measurement> med;
    for (std::string_view way : ways)
      for (auto& [key, values] : runs[way]) med[way][key] = median(values);

    const double n = static_cast<double>(s.jobs);
    const double empty_rss = med["empty"].at("rss");
    std::printf("\nN=%zu jobs, P=%zu, C=%zu in flight; median of %d runs\n", s.jobs, s.polls, s.in_flight, s.reps);
    std::printf("%-12s %10s %19s %9s %10s %9s %8s %8s %8s\n", "way", "wall ms", "(min - max)", "setup ms", "cpu ms",
                "rss MiB", "us/job", "cpu us/j", "job KiB");
    for (std::string_view way : ways) {
      const measurement& m = med[way];
      const auto [lo, hi] = std::minmax_element(runs[way]["wall"].begin(), runs[way]["wall"].end());
      if (way == "empty") {
        std::printf("%-12.*s %10s %19s %9s %10s %9.1f\n", static_cast<int>(way.size()), way.data(), "-", "", "-", "-",
                    m.at("rss") / 1048576.0);
        continue;
      }
      std::printf("%-12.*s %10.2f   (%7.2f - %7.2f) %9.2f %10.2f %9.1f %8.2f %8.2f %8.3f\n",
                  static_cast<int>(way.size()), way.data(), m.at("wall") * 1e3, *lo * 1e3, *hi * 1e3,
                  m.at("setup") * 1e3, m.at("cpu") * 1e3, m.at("rss") / 1048576.0, m.at("wall") * 1e6 / n,
                  m.at("cpu") * 1e6 / n, (m.at("rss") - empty_rss) / n / 1024.0);
    }
    const measurement& base = med["baseline"];
    for (std::string_view way : {std::string_view("runner"), std::string_view("runner+ckpt")}) {
      const measurement& m = med[way];
      char line[320];
      std::snprintf(line, sizeof line,
                    "%7zu %-12.*s wall %.3f  cpu %.3f  rss %.3f  overhead/job: wall %+.2f us, cpu %+.2f us, "
                    "memory %+.3f KiB",
                    s.jobs, static_cast<int>(way.size()), way.data(), m.at("wall") / base.at("wall"),
                    m.at("cpu") / base.at("cpu"), m.at("rss") / base.at("rss"),
                    (m.at("wall") - base.at("wall")) * 1e6 / n, (m.at("cpu") - base.at("cpu")) * 1e6 / n,
                    (m.at("rss") - base.at("rss")) / n / 1024.0);
      ratio_lines.emplace_back(line);
    }
  }
  std::printf("\nload average at the end: %s\n", load_average().c_str());
  std::printf("\nratios to the baseline (job_client alone, same N), overhead per job = (way - baseline) / N:\n");
  for (const std::string& line : ratio_lines) std::printf("%s\n", line.c_str());
  return 0;
}

// `text` as an integer from `least` to 1,000,000,000.
std::size_t count(const char* text, const char* what, std::size_t least = 1) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < least || v > 1'000'000'000)
    throw std::invalid_argument(std::string(what) + " must be an integer from " + std::to_string(least) +
                                " to 1000000000, got \"" + text + "\"");
  return static_cast<std::size_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 2 && std::strcmp(argv[1], "--child") == 0) {
      if (argc != 6) throw std::invalid_argument("--child needs WAY N P C");
      const std::string_view way = argv[2];
      if (std::find(ways.begin(), ways.end(), way) == ways.end())
        throw std::invalid_argument("unknown way \"" + std::string(way) + "\" (empty, baseline, runner, runner+ckpt)");
      return run_child(way, count(argv[3], "N"), count(argv[4], "P", 0), count(argv[5], "C"));
    }
    std::optional<int> reps;
    std::optional<int> large_reps;
    for (int i = 1; i < argc; ++i) {
      if (std::strncmp(argv[i], "--reps=", 7) == 0) {
        reps = static_cast<int>(count(argv[i] + 7, "--reps"));
      } else if (std::strncmp(argv[i], "--large-reps=", 13) == 0) {
        large_reps = static_cast<int>(count(argv[i] + 13, "--large-reps"));
      } else {
        throw std::invalid_argument(std::string("unknown argument \"") + argv[i] +
                                    "\" (usage: batch_bench [--reps=R] [--large-reps=R])");
      }
    }
    return run_driver(reps.value_or(5), large_reps.value_or(reps.value_or(5)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "batch_bench: %s\n", e.what());
    return 1;
  }
}
