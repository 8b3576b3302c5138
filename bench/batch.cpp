// The batch runner and its store against job_client alone, on the in-memory
// job API (tests/support/memory_job_api.hpp) and steady_clock: 100,000 and
// 1,000,000 jobs. Every job answers "running" P times, then "completed";
// polls are 0 s apart, with no latency and no jitter, so the figures are the
// cost of the client, the runner, the store and the API themselves.
//
// The ways, each run in a fresh child process:
//   baseline    job_client alone ("the runner without a store"): C coroutines
//               (co_spawn), each taking the next job from a shared counter and
//               awaiting `client.run(params, options)` (what a user writes
//               without the batch runner). Its parameters are a vector of N
//               job_params built before the run, part of its memory;
//   memory      batch_runner, max_in_flight C, on sqlite_store(":memory:");
//   file        the same on a sqlite_store file in a temp directory (WAL,
//               sqlite_durability::process_crash, the default: no fsync);
//   file-fsync  the same with sqlite_durability::power_loss (an fsync per
//               commit), at --fsync-jobs jobs (see Usage).
// and an "empty" child (the process and its io_context), whose peak RSS is
// subtracted to give the memory per job. The runner ways build the batch
// with `store.create(N, source)` from a batch_entry_source that makes entry
// k when asked: no vector of N entries anywhere. Every way hands each result
// to the same sink (a bit per job: the check below), not a vector.
//
// The store is wrapped in `timed_store`, which satisfies jobpoll::batch_store
// by forwarding every member and times each state change (`update`,
// `insert`: one transaction each) in wall time (steady_clock) and in the
// thread's CPU time (CLOCK_THREAD_CPUTIME_ID) into fixed histograms
// (0.25 us buckets up to 1 ms, 25 us buckets up to 100 ms, then one
// overflow bucket; its max kept): constant memory, in .bss. Percentiles are
// the upper edge of their bucket (at most the max). The clock reads around
// each store call (steady_clock and CLOCK_THREAD_CPUTIME_ID, before and
// after; the latter a system call) cost what the line after the tables
// prints (measured in each child): they are in the run's figures, mostly
// not in the change's.
//
// Columns, medians of R runs per way (each figure's median on its own):
//   wall ms, cpu ms  the run: the runner's constructor (claim, counts) + co_spawn
//                    + io_context::run, which ends with the runner's summary
//                    (SQL over the whole batch); CPU is CLOCK_PROCESS_CPUTIME_ID
//                    (user + system, the store's writes included)
//   sys%             of that CPU, the kernel's (getrusage): the store's writes
//   create ms/cpu    `store.create(N, source)` alone (one transaction), before
//                    the run; opening the store is in neither
//   rss MiB          the child's peak RSS: VmHWM from /proc/self/status at the
//                    end of the run (the high-water mark of the executed image
//                    alone; ru_maxrss would also count the parent's pages
//                    copied by fork before the exec), create included
//   us/job, cpu us/j the run's wall and CPU / N
//   B/job            (rss - empty child's rss) / N, in bytes
//   api B/job        of it, the heap the in-memory job API holds at the end
//                    (its job list and name index: the "server"), measured by
//                    destroying it after the run (mallinfo2)
// and for the store ways:
//   changes          updates + inserts (3 per job: submitting, running, completed)
//   chg wall/cpu us  p50, p99 and max of one change, wall and thread CPU
//   store cpu%       CPU spent inside every store call during the run
//                    (changes, page reads, counts, summary) / the run's CPU
//   summary ms       the runner's final `summary()` (within the run)
//   db B/job         the store's files (db + WAL) at the end of the run / N
//   written          bytes handed to write calls during the run, and the
//                    number of those calls, per change (/proc/self/io wchar,
//                    syscw): WAL frames, and the checkpoints' copies
// Ratio lines compare each store way with the baseline of the same N (run
// alone, then create + run), and flatness lines divide the CPU per change
// at the largest size by that at the smallest.
//
// A child checks, after its figures are taken, that every job completed
// exactly once: N results, each job's own (the result's name is its
// entry's), none twice, N submits to the API and one per name; for the
// store ways, the store's summary says COMPLETED with N jobs, N completed.
// A run that does not is an error, not a figure.
//
// Usage: batch_bench [--reps=R] [--large-reps=R] [--sizes=N,...] [--fsync-jobs=N]
//          medians of R fresh-process runs per way (default 3) for sizes up
//          to 100,000 jobs and of --large-reps (default 1) for larger ones;
//          sizes default to 100000,1000000; file-fsync runs at --fsync-jobs
//          (default 100000; 0: not at all): within that size's block, or in a
//          block of its own (baseline, file, file-fsync) when not a size
//        batch_bench --child WAY N P C   one run; prints key=value pairs
//          (WAY: empty, baseline, memory, file, file-fsync)

#include <malloc.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdarg>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <jobpoll/asio.hpp>
#include <nlohmann/json.hpp>

#include <jobpoll/batch/batch_runner.hpp>
#include <jobpoll/batch/batch_store.hpp>
#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/store/sqlite.hpp>

#include "child_run.hpp"

#include "memory_job_api.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using api_type = jobpoll_test::steady_memory_job_api;
using status_type = jobpoll::field_status<jobpoll::json_codec>;
using client_type = jobpoll::job_client<api_type, jobpoll::json_codec, status_type>;

constexpr std::array<std::string_view, 5> all_ways{"empty", "baseline", "memory", "file", "file-fsync"};

bool is_store_way(std::string_view way) { return way == "memory" || way == "file" || way == "file-fsync"; }

jobpoll::poll_options job_options() {
  jobpoll::poll_options o;
  o.interval = jobpoll::fixed_interval{std::chrono::nanoseconds::zero()};
  return o;
}

std::string job_name(std::size_t k) { return "e" + std::to_string(k); }

jobpoll::job_params job_params_of(std::size_t k, std::size_t polls) {
  return {{"name", job_name(k)}, {"polls", std::to_string(polls)}, {"outcome", "completed"}};
}

double seconds_of(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}
double cpu_seconds() { return seconds_of(CLOCK_PROCESS_CPUTIME_ID); }

std::int64_t thread_cpu_ns() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}
std::int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// VmHWM in bytes.
long peak_rss() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6) * 1024;
  throw std::runtime_error("no VmHWM in /proc/self/status");
}

// Bytes of the heap in use (small chunks and mmapped ones).
double heap_in_use() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<double>(m.uordblks) + static_cast<double>(m.hblkhd);
}

// --- the time of each state change ---------------------------------------------

// Durations in ns, in fixed buckets: 0.25 us wide up to 1 ms, 25 us wide up
// to 100 ms, then one overflow bucket; count, total and max kept exactly.
class latency_histogram {
 public:
  void add(std::int64_t ns) {
    const std::uint64_t v = ns < 0 ? 0 : static_cast<std::uint64_t>(ns);
    ++count_;
    total_ += v;
    max_ = std::max(max_, v);
    if (v < fine_limit)
      ++buckets_[v / fine_width];
    else if (v < coarse_limit)
      ++buckets_[fine_buckets + (v - fine_limit) / coarse_width];
    else
      ++buckets_[fine_buckets + coarse_buckets];
  }

  std::uint64_t count() const noexcept { return count_; }
  double mean() const noexcept { return count_ == 0 ? 0 : static_cast<double>(total_) / static_cast<double>(count_); }
  std::uint64_t max() const noexcept { return max_; }

  // The upper edge of the bucket holding the value of rank ceil(q * count)
  // (at most the max): 0 with no values.
  std::uint64_t quantile(double q) const noexcept {
    if (count_ == 0) return 0;
    const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(q * static_cast<double>(count_) + 0.999999));
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < buckets_.size(); ++b) {
      seen += buckets_[b];
      if (seen >= rank) return std::min(max_, upper_edge(b));
    }
    return max_;
  }

 private:
  static constexpr std::uint64_t fine_width = 250, fine_limit = 1'000'000;
  static constexpr std::uint64_t coarse_width = 25'000, coarse_limit = 100'000'000;
  static constexpr std::size_t fine_buckets = fine_limit / fine_width;
  static constexpr std::size_t coarse_buckets = (coarse_limit - fine_limit) / coarse_width;

  static std::uint64_t upper_edge(std::size_t b) noexcept {
    if (b < fine_buckets) return (b + 1) * fine_width;
    if (b < fine_buckets + coarse_buckets) return fine_limit + (b - fine_buckets + 1) * coarse_width;
    return UINT64_MAX;
  }

  std::uint64_t count_ = 0;
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
  std::array<std::uint64_t, fine_buckets + coarse_buckets + 1> buckets_{};
};

// Static: zero pages in .bss, resident only where a bucket was touched.
latency_histogram change_wall;
latency_histogram change_cpu;

// Total time inside a kind of store call.
struct call_time {
  std::uint64_t calls = 0;
  std::int64_t wall = 0;  // ns
  std::int64_t cpu = 0;   // ns of this thread
};

// A batch store that forwards every member to `Store` and times it: each
// change (update, insert) into the histograms above, every call into `all`,
// the summary into `summary` too.
template <jobpoll::batch_store Store>
class timed_store {
 public:
  explicit timed_store(Store& store) : store_(&store) {}

  const jobpoll::batch_info& create(std::size_t n, const jobpoll::batch_entry_source& source) {
    return timed(nullptr, [&]() -> const jobpoll::batch_info& { return store_->create(n, source); });
  }
  const jobpoll::batch_info& info() const {
    return timed(nullptr, [&]() -> const jobpoll::batch_info& { return store_->info(); });
  }
  void claim() {
    timed(nullptr, [&] { store_->claim(); });
  }
  void release() noexcept { store_->release(); }
  jobpoll::batch_counts counts() const {
    return timed(nullptr, [&] { return store_->counts(); });
  }
  void insert(jobpoll::batch_job& job) {
    timed(&changes_, [&] { store_->insert(job); });
  }
  void update(const jobpoll::batch_job& job, std::optional<jobpoll::batch_job_state> previous, std::string_view note) {
    timed(&changes_, [&] { store_->update(job, previous, note); });
  }
  std::optional<jobpoll::batch_job> job(std::size_t id) const {
    return timed(nullptr, [&] { return store_->job(id); });
  }
  std::vector<jobpoll::batch_job> jobs_in(jobpoll::batch_job_state state, std::size_t after, std::size_t limit) const {
    return timed(nullptr, [&] { return store_->jobs_in(state, after, limit); });
  }
  jobpoll::batch_summary summary() const {
    return timed(&summary_, [&] { return store_->summary(); });
  }

  const call_time& all() const noexcept { return all_; }
  const call_time& changes() const noexcept { return changes_; }
  const call_time& summaries() const noexcept { return summary_; }
  void clear_times() noexcept { all_ = changes_ = summary_ = {}; }

 private:
  // Calls `f`, adding its time to `all_` and to `*kind` if given; a change
  // (kind == &changes_) also goes to the histograms.
  template <class F>
  decltype(auto) timed(call_time* kind, F&& f) const {
    struct stopwatch {
      const timed_store* self;
      call_time* kind;
      std::int64_t wall0 = wall_ns();
      std::int64_t cpu0 = thread_cpu_ns();
      ~stopwatch() {
        const std::int64_t cpu = thread_cpu_ns() - cpu0;
        const std::int64_t wall = wall_ns() - wall0;
        for (call_time* t : {&self->all_, kind}) {
          if (!t) continue;
          ++t->calls;
          t->wall += wall;
          t->cpu += cpu;
        }
        if (kind == &self->changes_) {
          change_wall.add(wall);
          change_cpu.add(cpu);
        }
      }
    } watch{this, kind};
    return std::forward<F>(f)();
  }

  Store* store_;
  mutable call_time all_;
  mutable call_time changes_;
  mutable call_time summary_;
};

static_assert(jobpoll::batch_store<timed_store<jobpoll::sqlite_store>>);

using store_type = timed_store<jobpoll::sqlite_store>;
using runner_type = jobpoll::batch_runner<client_type, store_type>;

// The cost of the clock reads around a store call (one stopwatch), in ns.
double timer_overhead_ns() {
  constexpr int rounds = 20'000;
  std::int64_t sink = 0;
  const std::int64_t w0 = wall_ns();
  for (int i = 0; i < rounds; ++i) sink += wall_ns() + thread_cpu_ns() + thread_cpu_ns() + wall_ns();
  const std::int64_t w1 = wall_ns();
  if (sink == 42) std::puts("");  // keeps the loop
  return static_cast<double>(w1 - w0) / rounds;
}

// --- the exactly-once check ------------------------------------------------------

// Each result, by the number in its job's name "e<k>": a bit per job.
class result_sink {
 public:
  explicit result_sink(std::size_t n) : seen_(n, false) {}

  // Records the result of the job that ran entry `entry` (any entry when none).
  void add(const json& value, std::optional<std::size_t> entry) {
    const std::string& name = value.at("name").get_ref<const std::string&>();
    std::size_t k = 0;
    const char* end = name.data() + name.size();
    const bool ok = name.size() > 1 && name[0] == 'e' && std::from_chars(name.data() + 1, end, k).ptr == end;
    if (!ok || k >= seen_.size() || (entry && *entry != k)) {
      if (!problem_) problem_ = "a result named \"" + name + "\"" + (entry ? " for entry " + std::to_string(*entry) : "");
      return;
    }
    if (seen_[k]) {
      if (!problem_) problem_ = "two results for job " + name;
      return;
    }
    seen_[k] = true;
    ++count_;
  }

  // Throws unless every job's result came once and the API created each job once.
  void check(const api_type& api) const {
    const std::size_t n = seen_.size();
    if (problem_) throw std::runtime_error(*problem_);
    if (count_ != n) throw std::runtime_error(std::to_string(count_) + " results for " + std::to_string(n) + " jobs");
    if (api.submits() != n)
      throw std::runtime_error(std::to_string(api.submits()) + " submits for " + std::to_string(n) + " jobs");
    for (std::size_t k = 0; k < n; ++k) {
      const std::string name = job_name(k);
      if (api.submits_named(name) != 1)
        throw std::runtime_error(std::to_string(api.submits_named(name)) + " submits of job " + name);
    }
  }

 private:
  std::vector<bool> seen_;
  std::size_t count_ = 0;
  std::optional<std::string> problem_;
};

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
    jobpoll::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const noexcept { return path_; }

  // The bytes of the files in it.
  double bytes() const {
    double total = 0;
    for (const auto& f : fs::directory_iterator(path_))
      if (f.is_regular_file()) total += static_cast<double>(f.file_size());
    return total;
  }

 private:
  fs::path path_;
};

// --- the child -----------------------------------------------------------------

using jobpoll_bench::measurement;

// The process's system CPU time, in seconds.
double system_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_stime.tv_sec) + static_cast<double>(u.ru_stime.tv_usec) * 1e-6;
}

// From /proc/self/io: bytes handed to write calls and their number.
struct io_counts {
  double wchar = 0;
  double syscw = 0;
};
io_counts io_now() {
  std::ifstream in("/proc/self/io");
  io_counts c;
  for (std::string key; in >> key;) {
    double v = 0;
    in >> v;
    if (key == "wchar:") c.wchar = v;
    if (key == "syscw:") c.syscw = v;
  }
  return c;
}

struct timing {
  double wall = 0;
  double setup = 0;  // of `wall`, before io_context::run: the runner's constructor, co_spawn
  double cpu = 0;
  double sys = 0;     // of `cpu`, in the kernel
  io_counts io;       // written during the run
  long rss = 0;  // peak, read at the end of the run: the checks that follow allocate too
};

// Times `setup()` then `ctx.run()`.
template <class Setup>
timing timed_run(asio::io_context& ctx, Setup setup) {
  const io_counts io0 = io_now();
  const double sys0 = system_seconds();
  const auto wall0 = std::chrono::steady_clock::now();
  const double cpu0 = cpu_seconds();
  setup();
  const auto wall1 = std::chrono::steady_clock::now();
  ctx.run();
  const double cpu = cpu_seconds() - cpu0;
  const auto wall2 = std::chrono::steady_clock::now();
  const double sys = system_seconds() - sys0;
  const io_counts io1 = io_now();
  return {std::chrono::duration<double>(wall2 - wall0).count(),
          std::chrono::duration<double>(wall1 - wall0).count(),
          cpu,
          sys,
          {io1.wchar - io0.wchar, io1.syscw - io0.syscw},
          peak_rss()};
}

timing run_baseline(asio::io_context& ctx, client_type& client, std::size_t n, std::size_t polls, std::size_t c,
                    result_sink& results) {
  std::vector<jobpoll::job_params> params;
  params.reserve(n);
  for (std::size_t k = 0; k < n; ++k) params.push_back(job_params_of(k, polls));
  std::size_t next = 0;
  std::exception_ptr failure;
  const jobpoll::poll_options options = job_options();
  auto worker = [&]() -> asio::awaitable<void> {
    while (next < n) {
      const std::size_t k = next++;
      jobpoll::job_result<json> r = co_await client.run(std::move(params[k]), options);
      results.add(r.value, std::nullopt);
    }
  };
  const timing t = timed_run(ctx, [&] {
    for (std::size_t w = 0; w < c; ++w)
      asio::co_spawn(ctx, worker(), [&failure](std::exception_ptr e) {
        if (e && !failure) failure = e;
      });
  });
  if (failure) std::rethrow_exception(failure);
  return t;
}

// Creates the batch in `store` (timed into `m`), then runs it.
timing run_runner(asio::io_context& ctx, client_type& client, jobpoll::sqlite_store& sqlite, std::size_t n,
                  std::size_t polls, std::size_t c, result_sink& results, measurement& m) {
  store_type store(sqlite);
  const jobpoll::batch_entry_source source = [polls](std::size_t k) { return jobpoll::batch_entry(job_params_of(k, polls)); };
  const auto create_wall0 = std::chrono::steady_clock::now();
  const double create_cpu0 = cpu_seconds();
  const jobpoll::batch_info& info = store.create(n, source);
  m["create_cpu"] = cpu_seconds() - create_cpu0;
  m["create_wall"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - create_wall0).count();
  if (info.entries != n)
    throw std::runtime_error("the store created " + std::to_string(info.entries) + " entries of " + std::to_string(n));
  store.clear_times();

  jobpoll::batch_options options;
  options.max_in_flight = c;
  options.job = job_options();
  std::optional<runner_type> runner;
  std::optional<jobpoll::batch_report> report;
  std::exception_ptr failure;
  const timing t = timed_run(ctx, [&] {
    runner.emplace(ctx.get_executor(), client, store, std::move(options),
                   [&results](const jobpoll::batch_job& job, jobpoll::job_result<json>& r) {
                     results.add(r.value, job.entry);
                   });
    asio::co_spawn(ctx, runner->run(), [&](std::exception_ptr e, jobpoll::batch_report r) {
      failure = e;
      report = std::move(r);
    });
  });
  const call_time all = store.all(), changes = store.changes(), summaries = store.summaries();
  m["changes"] = static_cast<double>(change_wall.count());
  m["updates_inserts"] = static_cast<double>(changes.calls);
  m["store_cpu"] = static_cast<double>(all.cpu) * 1e-9;
  m["store_wall"] = static_cast<double>(all.wall) * 1e-9;
  m["summary_wall"] = static_cast<double>(summaries.wall) * 1e-9;
  m["chg_wall_p50"] = static_cast<double>(change_wall.quantile(0.5)) * 1e-3;
  m["chg_wall_p99"] = static_cast<double>(change_wall.quantile(0.99)) * 1e-3;
  m["chg_wall_max"] = static_cast<double>(change_wall.max()) * 1e-3;
  m["chg_wall_mean"] = change_wall.mean() * 1e-3;
  m["chg_cpu_p50"] = static_cast<double>(change_cpu.quantile(0.5)) * 1e-3;
  m["chg_cpu_p99"] = static_cast<double>(change_cpu.quantile(0.99)) * 1e-3;
  m["chg_cpu_max"] = static_cast<double>(change_cpu.max()) * 1e-3;
  m["chg_cpu_mean"] = change_cpu.mean() * 1e-3;

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
  // The store itself, read again: N jobs, N completed, the batch COMPLETED.
  const jobpoll::batch_summary saved = sqlite.summary();
  if (saved.status != jobpoll::batch_status::completed || saved.total_jobs != n ||
      saved.counts[jobpoll::batch_job_state::completed] != n || saved.fulfilled_entries != n)
    throw std::runtime_error("the store holds " + std::to_string(saved.counts[jobpoll::batch_job_state::completed]) +
                             " completed jobs of " + std::to_string(saved.total_jobs) + " (" +
                             std::to_string(saved.fulfilled_entries) + " entries fulfilled), batch " +
                             std::string(jobpoll::to_string(saved.status)) + ", expected " + std::to_string(n));
  if (change_wall.count() != 3 * n)
    throw std::runtime_error(std::to_string(change_wall.count()) + " changes for " + std::to_string(n) +
                             " jobs, expected 3 per job");
  return t;
}

int run_child(std::string_view way, std::size_t n, std::size_t polls, std::size_t c) {
  asio::io_context ctx;
  measurement m;
  timing t;
  t.rss = peak_rss();
  if (way != "empty") {
    m["timer_ns"] = timer_overhead_ns();
    std::optional<api_type> api(std::in_place, ctx.get_executor());
    client_type client(*api, jobpoll_test::memory_job_description(), jobpoll_test::memory_job_status());
    result_sink results(n);
    if (way == "baseline") {
      t = run_baseline(ctx, client, n, polls, c, results);
    } else {
      std::optional<temp_dir> files;
      if (way != "memory") files.emplace();
      jobpoll::sqlite_store_options options;
      options.durability =
          way == "file-fsync" ? jobpoll::sqlite_durability::power_loss : jobpoll::sqlite_durability::process_crash;
      jobpoll::sqlite_store store(files ? files->path() / "batch.db" : fs::path(":memory:"), "bench", options);
      t = run_runner(ctx, client, store, n, polls, c, results, m);
      if (files) m["db_bytes"] = files->bytes();
    }
    results.check(*api);
    // The API's own heap: its job list and name index.
    const double with_api = heap_in_use();
    api.reset();
    m["api_heap"] = with_api - heap_in_use();
  }
  m["wall"] = t.wall;
  m["setup"] = t.setup;
  m["cpu"] = t.cpu;
  m["sys"] = t.sys;
  m["wchar"] = t.io.wchar;
  m["syscw"] = t.io.syscw;
  m["rss"] = static_cast<double>(t.rss);
  for (const auto& [key, value] : m) std::printf("%s=%.9g\n", key.c_str(), value);
  return 0;
}

// --- driver ------------------------------------------------------------------------

struct size_config {
  std::size_t jobs;
  std::size_t polls;      // "running" answers before "completed"
  std::size_t in_flight;  // C
  int reps;
  std::vector<std::string_view> ways;
};

measurement run_in_child(const std::string& self, std::string_view way, const size_config& s) {
  const std::string command = "'" + self + "' --child " + std::string(way) + " " + std::to_string(s.jobs) + " " +
                              std::to_string(s.polls) + " " + std::to_string(s.in_flight);
  measurement m = jobpoll_bench::run_child(command);
  for (const char* key : {"wall", "setup", "cpu", "rss"})
    if (!m.contains(key)) throw std::runtime_error("child printed no " + std::string(key) + ": " + command);
  if (is_store_way(way))
    for (const char* key : {"create_wall", "create_cpu", "changes", "chg_cpu_p50", "store_cpu"})
      if (!m.contains(key)) throw std::runtime_error("child printed no " + std::string(key) + ": " + command);
  return m;
}

// The first three fields of /proc/loadavg: other processes on the machine
// stretch the wall times (a child never blocks, except on an fsync: it is
// only preempted).
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

__attribute__((format(printf, 1, 2))) std::string fmt(const char* format, ...) {
  char line[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(line, sizeof line, format, args);
  va_end(args);
  return line;
}

int run_driver(const std::vector<std::size_t>& sizes, int reps, int large_reps, std::size_t fsync_jobs) {
  std::array<char, 4096> path{};
  const ssize_t len = readlink("/proc/self/exe", path.data(), path.size() - 1);
  if (len <= 0) throw std::system_error(errno, std::generic_category(), "readlink /proc/self/exe");
  const std::string self(path.data(), static_cast<std::size_t>(len));

  constexpr std::size_t polls = 3, in_flight = 100;
  const auto reps_for = [&](std::size_t n) { return n > 100'000 ? large_reps : reps; };
  std::vector<size_config> blocks;
  for (std::size_t n : sizes) {
    size_config s{n, polls, in_flight, reps_for(n), {"empty", "baseline", "memory", "file"}};
    if (n == fsync_jobs) s.ways.push_back("file-fsync");
    blocks.push_back(std::move(s));
  }
  if (fsync_jobs != 0 && std::find(sizes.begin(), sizes.end(), fsync_jobs) == sizes.end())
    blocks.push_back({fsync_jobs, polls, in_flight, reps_for(fsync_jobs), {"empty", "baseline", "file", "file-fsync"}});

  std::printf(
      "batch_bench: batch_runner on sqlite_store against job_client alone on the in-memory job API,\n"
      "steady_clock, one io_context thread; each job: 1 submit, then GETs answering \"running\" P times\n"
      "and then \"completed\", 0 s apart (no latency, no jitter). Each run in a fresh process, ways\n"
      "interleaved; medians. wall, cpu (CLOCK_PROCESS_CPUTIME_ID): the runner's constructor +\n"
      "io_context::run (the final summary included); create: store.create(N, source) alone, before;\n"
      "rss: peak (VmHWM) of the child; B/job: (rss - empty rss) / N; api B/job: of that, the in-memory\n"
      "job API's heap. Changes (update/insert, one transaction each) timed one by one: wall\n"
      "(steady_clock) and thread CPU, p50/p99 to the upper edge of 0.25 us buckets. Store files in %s.\n",
      fs::temp_directory_path().c_str());
  std::printf("load average at the start: %s\n", load_average().c_str());
  std::vector<std::string> ratio_lines;
  std::map<std::size_t, std::map<std::string_view, measurement>> medians;  // by N, way
  double timer_ns = 0;
  for (const size_config& s : blocks) {
    std::map<std::string_view, std::map<std::string, std::vector<double>>> runs;
    for (int r = 0; r < s.reps; ++r)
      for (std::string_view way : s.ways)
        for (auto& [key, value] : run_in_child(self, way, s)) runs[way][key].push_back(value);
    std::map<std::string_view, measurement>& med = medians[s.jobs];
    for (std::string_view way : s.ways)
      for (auto& [key, values] : runs[way]) med[way][key] = median(values);
    if (med["baseline"].contains("timer_ns")) timer_ns = med["baseline"].at("timer_ns");

    const double n = static_cast<double>(s.jobs);
    const double empty_rss = med["empty"].at("rss");
    std::printf("\nN=%zu jobs, P=%zu, C=%zu in flight; median of %d run%s\n", s.jobs, s.polls, s.in_flight, s.reps,
                s.reps == 1 ? "" : "s");
    std::printf("%-10s %10s %21s %9s %10s %10s %5s %8s %8s %8s %7s %9s\n", "way", "wall ms", "(min - max)",
                "create ms", "create cpu", "cpu ms", "sys%", "rss MiB", "us/job", "cpu us/j", "B/job", "api B/job");
    for (std::string_view way : s.ways) {
      const measurement& m = med[way];
      const auto [lo, hi] = std::minmax_element(runs[way]["wall"].begin(), runs[way]["wall"].end());
      const std::string label(way);
      if (way == "empty") {
        std::printf("%-10s %10s %21s %9s %10s %10s %5s %8.1f\n", label.c_str(), "-", "", "-", "-", "-", "-",
                    m.at("rss") / 1048576.0);
        continue;
      }
      const std::string create_wall = m.contains("create_wall") ? fmt("%.1f", m.at("create_wall") * 1e3) : "-";
      const std::string create_cpu = m.contains("create_cpu") ? fmt("%.1f", m.at("create_cpu") * 1e3) : "-";
      std::printf("%-10s %10.1f   (%8.1f - %8.1f) %9s %10s %10.1f %5.0f %8.1f %8.2f %8.2f %7.0f %9.0f\n",
                  label.c_str(), m.at("wall") * 1e3, *lo * 1e3, *hi * 1e3, create_wall.c_str(), create_cpu.c_str(),
                  m.at("cpu") * 1e3, m.at("sys") * 100 / m.at("cpu"), m.at("rss") / 1048576.0, m.at("wall") * 1e6 / n, m.at("cpu") * 1e6 / n,
                  (m.at("rss") - empty_rss) / n, m.at("api_heap") / n);
    }
    std::printf("%-10s %9s %27s %27s %9s %10s %9s %10s\n", "", "changes", "change wall us p50/p99/max",
                "change cpu us p50/p99/max", "store cpu", "summary ms", "db B/job", "written");
    for (std::string_view way : s.ways) {
      if (!is_store_way(way)) continue;
      const measurement& m = med[way];
      const std::string label(way);
      const std::string db = m.contains("db_bytes") ? fmt("%.0f", m.at("db_bytes") / n) : "-";
      const std::string written =
          m.at("syscw") > 0 ? fmt("%.1f KiB/chg in %.1f writes", m.at("wchar") / m.at("changes") / 1024,
                                  m.at("syscw") / m.at("changes"))
                            : std::string("-");
      std::printf("%-10s %9.0f %27s %27s %8.1f%% %10.1f %9s %s\n", label.c_str(), m.at("changes"),
                  fmt("%.2f / %.2f / %.0f", m.at("chg_wall_p50"), m.at("chg_wall_p99"), m.at("chg_wall_max")).c_str(),
                  fmt("%.2f / %.2f / %.0f", m.at("chg_cpu_p50"), m.at("chg_cpu_p99"), m.at("chg_cpu_max")).c_str(),
                  m.at("store_cpu") * 100 / m.at("cpu"), m.at("summary_wall") * 1e3, db.c_str(), written.c_str());
    }
    const measurement& base = med["baseline"];
    for (std::string_view way : s.ways) {
      if (!is_store_way(way)) continue;
      const measurement& m = med[way];
      const double total_cpu = m.at("cpu") + m.at("create_cpu"), total_wall = m.at("wall") + m.at("create_wall");
      ratio_lines.push_back(fmt(
          "%8zu %-10s run: wall %.2f cpu %.2f  create+run: wall %.2f cpu %.2f  rss %.2f  per job: cpu %+.2f us "
          "(create+run %+.2f us), memory %+.0f B",
          s.jobs, std::string(way).c_str(), m.at("wall") / base.at("wall"), m.at("cpu") / base.at("cpu"),
          total_wall / base.at("wall"), total_cpu / base.at("cpu"), m.at("rss") / base.at("rss"),
          (m.at("cpu") - base.at("cpu")) * 1e6 / n, (total_cpu - base.at("cpu")) * 1e6 / n,
          (m.at("rss") - base.at("rss")) / n));
    }
  }
  std::printf("\nload average at the end: %s\n", load_average().c_str());
  std::printf("two clock reads around a change (steady_clock + CLOCK_THREAD_CPUTIME_ID, twice): %.0f ns\n", timer_ns);
  std::printf("\nratios to the baseline (job_client alone, same N); per job = (way - baseline) / N:\n");
  for (const std::string& line : ratio_lines) std::printf("%s\n", line.c_str());

  if (sizes.size() >= 2) {
    const std::size_t small = *std::min_element(sizes.begin(), sizes.end());
    const std::size_t large = *std::max_element(sizes.begin(), sizes.end());
    std::printf("\nflatness, CPU per change at %zu / at %zu jobs:\n", large, small);
    for (std::string_view way : {std::string_view("file"), std::string_view("memory")}) {
      const measurement& lo = medians[small][way];
      const measurement& hi = medians[large][way];
      std::printf("  %-8s p50 %.2f / %.2f us = %.2f   mean %.2f / %.2f us = %.2f   p99 %.2f / %.2f us = %.2f\n",
                  std::string(way).c_str(), hi.at("chg_cpu_p50"), lo.at("chg_cpu_p50"),
                  hi.at("chg_cpu_p50") / lo.at("chg_cpu_p50"), hi.at("chg_cpu_mean"), lo.at("chg_cpu_mean"),
                  hi.at("chg_cpu_mean") / lo.at("chg_cpu_mean"), hi.at("chg_cpu_p99"), lo.at("chg_cpu_p99"),
                  hi.at("chg_cpu_p99") / lo.at("chg_cpu_p99"));
    }
  }
  return 0;
}

// `text` as an integer from `least` to 1,000,000,000.
std::size_t count(std::string_view text, const char* what, std::size_t least = 1) {
  std::size_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty() || v < least || v > 1'000'000'000)
    throw std::invalid_argument(std::string(what) + " must be an integer from " + std::to_string(least) +
                                " to 1000000000, got \"" + std::string(text) + "\"");
  return v;
}

// "100000,1000000" as sizes, each at least 1.
std::vector<std::size_t> size_list(std::string_view text) {
  std::vector<std::size_t> out;
  for (std::size_t at = 0;;) {
    const std::size_t comma = text.find(',', at);
    out.push_back(count(text.substr(at, comma - at), "each of --sizes"));
    if (comma == std::string_view::npos) return out;
    at = comma + 1;
  }
}

constexpr const char* usage = "usage: batch_bench [--reps=R] [--large-reps=R] [--sizes=N,...] [--fsync-jobs=N]";

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 2 && std::strcmp(argv[1], "--child") == 0) {
      if (argc != 6) throw std::invalid_argument("--child needs WAY N P C");
      const std::string_view way = argv[2];
      if (std::find(all_ways.begin(), all_ways.end(), way) == all_ways.end())
        throw std::invalid_argument("unknown way \"" + std::string(way) +
                                    "\" (empty, baseline, memory, file, file-fsync)");
      return run_child(way, count(argv[3], "N"), count(argv[4], "P", 0), count(argv[5], "C"));
    }
    int reps = 3;
    int large_reps = 1;
    std::vector<std::size_t> sizes{100'000, 1'000'000};
    std::size_t fsync_jobs = 100'000;
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      if (arg.starts_with("--reps=")) {
        reps = static_cast<int>(count(arg.substr(7), "--reps"));
      } else if (arg.starts_with("--large-reps=")) {
        large_reps = static_cast<int>(count(arg.substr(13), "--large-reps"));
      } else if (arg.starts_with("--sizes=")) {
        sizes = size_list(arg.substr(8));
      } else if (arg.starts_with("--fsync-jobs=")) {
        fsync_jobs = count(arg.substr(13), "--fsync-jobs", 0);
      } else {
        throw std::invalid_argument("unknown argument \"" + std::string(arg) + "\" (" + usage + ")");
      }
    }
    return run_driver(sizes, reps, large_reps, fsync_jobs);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "batch_bench: %s\n", e.what());
    return 1;
  }
}
