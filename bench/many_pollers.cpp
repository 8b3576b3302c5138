// Many concurrent pollers on one io_context thread: wall time, and memory per
// poller at the moment every poller is pending, for jobpoll against
// hand-written coroutines (co_spawn + steady_timer + poll) doing the same polls,
// and against the floor of a poller that waits through a timer callback.
// Variants: baseline (hand-written coroutine), callback_floor, poll_until,
// async_poll_until (an awaitable poll, spawned per attempt), async_op_poll
// (async_poll_until with a poll that is an Asio asynchronous operation).
//
// Every poller polls a ready-at-once operation 4 times (3 "pending", then
// "succeeded") with a real 1 ms steady_timer wait between polls: steady_clock
// and Asio's own timers, the setting users run, rather than the manual clock,
// whose timer is a test double with its own costs.
//
// Memory: a replaced malloc counts the heap bytes in use (malloc_usable_size)
// and the allocations, read when every poller has polled once and waits on
// its timer; VmRSS and VmHWM come from /proc/self/status.
// The high-water mark cannot be reset, so each configuration runs in a fresh
// child process.
//
// Usage: many_pollers [--reps=R] [N...]   (default: 3 repetitions of 10000 100000 1000000)
//        many_pollers --child VARIANT N   (one run; prints key=value pairs)

#include <malloc.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <jobpoll/asio.hpp>

#include <jobpoll/jobpoll.hpp>

#include "child_run.hpp"

// --- counting allocator ---------------------------------------------------------
// The malloc family itself is replaced (glibc allows it), forwarding to glibc's
// implementation: Asio allocates coroutine frames and handlers with
// std::aligned_alloc, which a replaced operator new would not see.

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}

namespace {

std::atomic<std::size_t> live_bytes{0};
std::atomic<std::size_t> live_blocks{0};
std::atomic<std::size_t> peak_bytes{0};

void* counted(void* p) noexcept {
  if (!p) return p;
  const std::size_t size = malloc_usable_size(p);
  const std::size_t now = live_bytes.fetch_add(size, std::memory_order_relaxed) + size;
  live_blocks.fetch_add(1, std::memory_order_relaxed);
  if (now > peak_bytes.load(std::memory_order_relaxed)) peak_bytes.store(now, std::memory_order_relaxed);
  return p;
}

void uncount(void* p) noexcept {
  if (!p) return;
  live_bytes.fetch_sub(malloc_usable_size(p), std::memory_order_relaxed);
  live_blocks.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace

extern "C" {
void* malloc(std::size_t n) { return counted(__libc_malloc(n)); }
void* calloc(std::size_t n, std::size_t size) { return counted(__libc_calloc(n, size)); }
void* realloc(void* p, std::size_t n) {
  uncount(p);
  void* q = __libc_realloc(p, n);
  if (!q && p && n != 0) return counted(p);  // failed: the old block is still there
  return counted(q);
}
void* memalign(std::size_t align, std::size_t n) { return counted(__libc_memalign(align, n)); }
void* aligned_alloc(std::size_t align, std::size_t n) { return counted(__libc_memalign(align, n)); }
int posix_memalign(void** out, std::size_t align, std::size_t n) {
  void* p = counted(__libc_memalign(align, n));
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
void free(void* p) {
  uncount(p);
  __libc_free(p);
}
}

namespace {

using namespace std::chrono_literals;

constexpr int polls_per_poller = 4;  // 3 pending, then succeeded
constexpr auto interval = 1ms;

std::size_t polls_made = 0;
std::size_t pollers_done = 0;

// The memory snapshot, taken when the last poller classifies its first
// answer: every other poller then waits on its timer, whatever number of
// executor hops a variant takes to get there (a snapshot posted after the
// spawns would see the pollers that need more hops half-way).
struct snapshot {
  std::size_t pollers = 0;  // the snapshot is taken at the pollers-th first answer
  std::size_t first_answers = 0;
  std::size_t bytes = 0, blocks = 0, polls = 0;
  long rss = 0;
  bool taken = false;
};
snapshot snap;
std::array<long, 2> rss();

// "pending" until the n-th answer, which is "succeeded".
struct countdown_status {
  int left;
  jobpoll::poll_status operator()(const int&) {
    if (left == polls_per_poller && ++snap.first_answers == snap.pollers) {
      snap.bytes = live_bytes.load();
      snap.blocks = live_blocks.load();
      snap.polls = polls_made;
      snap.rss = rss()[0];
      snap.taken = true;
    }
    return --left > 0 ? jobpoll::poll_status::pending() : jobpoll::poll_status::succeeded();
  }
};

asio::awaitable<int> ready_poll() {
  ++polls_made;
  co_return 42;
}

asio::awaitable<void> hand_written_poller() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  countdown_status status{polls_per_poller};
  for (;;) {
    const int response = co_await ready_poll();
    if (status(response).terminal()) co_return;
    timer.expires_after(interval);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

// The callback floor: a poller that waits through a timer callback, with
// no coroutine and no policy (what the issue measured as 2 blocks).
struct callback_poller {
  explicit callback_poller(asio::io_context& ctx) : timer(ctx) {}
  asio::steady_timer timer;
  countdown_status status{polls_per_poller};

  static void step(std::unique_ptr<callback_poller> self) {
    ++polls_made;  // the "poll": ready at once, as ready_poll is
    if (self->status(42).terminal()) {
      ++pollers_done;
      return;
    }
    callback_poller& p = *self;
    p.timer.expires_after(interval);
    p.timer.async_wait([self = std::move(self)](jobpoll::error_code ec) mutable {
      if (ec) throw std::system_error(ec);
      step(std::move(self));
    });
  }
};

// A poll that is an Asio asynchronous operation completing at once with
// (error_code, 42): async_poll_until then spawns no coroutine per attempt.
struct ready_async_poll {
  asio::io_context* ctx;
  template <class Token>
  auto operator()(Token&& token) const {
    return asio::async_initiate<Token, void(jobpoll::error_code, int)>(
        [ctx = ctx](auto handler) {
          ++polls_made;
          asio::post(*ctx, jobpoll::asio_tokens::append(std::move(handler), jobpoll::error_code{}, 42));
        },
        token);
  }
};

jobpoll::poll_options poller_options() {
  jobpoll::poll_options opts;
  opts.interval = jobpoll::fixed_interval{interval};
  opts.deadline = jobpoll::deadline::none();
  return opts;
}

void spawn(std::string_view variant, asio::io_context& ctx, const jobpoll::poll_options& opts) {
  if (variant == "baseline") {
    asio::co_spawn(ctx, hand_written_poller(), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
      ++pollers_done;
    });
  } else if (variant == "callback_floor") {
    asio::post(ctx, [&ctx] { callback_poller::step(std::make_unique<callback_poller>(ctx)); });
  } else if (variant == "async_op_poll") {
    jobpoll::async_poll_until(ctx.get_executor(), ready_async_poll{&ctx}, countdown_status{polls_per_poller}, opts,
                              [](jobpoll::error_code ec, const jobpoll::poll_result<int>&) {
                                if (ec) throw std::system_error(ec);
                                ++pollers_done;
                              });
  } else if (variant == "poll_until") {
    asio::co_spawn(ctx, jobpoll::poll_until(&ready_poll, countdown_status{polls_per_poller}, opts),
                   [](std::exception_ptr e, int) {
                     if (e) std::rethrow_exception(e);
                     ++pollers_done;
                   });
  } else {
    jobpoll::async_poll_until(ctx.get_executor(), &ready_poll, countdown_status{polls_per_poller}, opts,
                              [](jobpoll::error_code ec, const jobpoll::poll_result<int>&) {
                                if (ec) throw std::system_error(ec);
                                ++pollers_done;
                              });
  }
}

// VmRSS and VmHWM in bytes.
std::array<long, 2> rss() {
  std::ifstream status("/proc/self/status");
  std::array<long, 2> kb{0, 0};
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) kb[0] = std::atol(line.c_str() + 6);
    if (line.rfind("VmHWM:", 0) == 0) kb[1] = std::atol(line.c_str() + 6);
  }
  return {kb[0] * 1024, kb[1] * 1024};
}

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

int run_child(std::string_view variant, std::size_t n) {
  asio::io_context ctx;
  const jobpoll::poll_options opts = poller_options();
  const std::size_t bytes0 = live_bytes.load();
  const std::size_t blocks0 = live_blocks.load();
  const long rss0 = rss()[0];

  const auto wall0 = std::chrono::steady_clock::now();
  const double cpu0 = cpu_seconds();
  snap.pollers = n;
  for (std::size_t i = 0; i < n; ++i) spawn(variant, ctx, opts);
  ctx.run();
  const double cpu = cpu_seconds() - cpu0;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  const long hwm = rss()[1];

  if (!snap.taken || snap.polls < n || pollers_done != n || polls_made != n * polls_per_poller) {
    std::fprintf(stderr, "many_pollers: %.*s %zu: %zu polls at the snapshot, %zu done, %zu polls in all\n",
                 static_cast<int>(variant.size()), variant.data(), n, snap.polls, pollers_done, polls_made);
    return 1;
  }
  const double dn = static_cast<double>(n);
  std::printf("wall=%.6f cpu=%.6f heap=%.1f blocks=%.2f rss=%.1f hwm=%.1f peak=%.1f\n", wall, cpu,
              static_cast<double>(snap.bytes - bytes0) / dn, static_cast<double>(snap.blocks - blocks0) / dn,
              static_cast<double>(snap.rss - rss0) / dn, static_cast<double>(hwm - rss0) / dn,
              static_cast<double>(peak_bytes.load() - bytes0) / dn);
  return 0;
}

// --- driver ------------------------------------------------------------------------

using jobpoll_bench::measurement;

measurement run_in_child(const std::string& self, std::string_view variant, std::size_t n) {
  return jobpoll_bench::run_child("'" + self + "' --child " + std::string(variant) + " " + std::to_string(n));
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

int run_driver(int reps, std::vector<std::size_t> sizes) {
  std::array<char, 4096> path{};
  const ssize_t len = readlink("/proc/self/exe", path.data(), path.size() - 1);
  if (len <= 0) throw std::system_error(errno, std::generic_category(), "readlink /proc/self/exe");
  const std::string self(path.data(), static_cast<std::size_t>(len));
  const std::array<std::string_view, 5> variants{"baseline", "callback_floor", "poll_until", "async_poll_until",
                                                 "async_op_poll"};

  std::printf("many_pollers: one io_context thread, steady_clock, %d polls per poller (%d pending, then succeeded),\n"
              "1 ms wait between polls; median of %d runs, each in a fresh process, variants interleaved.\n"
              "heap = bytes in use (malloc_usable_size) per poller when all are pending; blocks = live\n"
              "allocations per poller; rss = VmRSS growth per poller at that moment; hwm = VmHWM growth per\n"
              "poller; peak = peak heap bytes per poller; ns/poll = wall time / (pollers * polls).\n\n",
              polls_per_poller, polls_per_poller - 1, reps);
  std::printf("%9s  %-17s %9s %9s %8s %8s %7s %8s %8s %8s\n", "pollers", "variant", "wall ms", "cpu ms", "ns/poll",
              "heap B", "blocks", "rss B", "hwm B", "peak B");
  std::vector<std::string> ratio_lines;
  for (std::size_t n : sizes) {
    std::map<std::string_view, std::map<std::string, std::vector<double>>> runs;
    for (int r = 0; r < reps; ++r) {
      for (std::string_view v : variants) {
        for (auto& [key, value] : run_in_child(self, v, n)) runs[v][key].push_back(value);
      }
    }
    std::map<std::string_view, measurement> med;
    for (std::string_view v : variants) {
      for (auto& [key, values] : runs[v]) med[v][key] = median(values);
      const measurement& m = med[v];
      std::printf("%9zu  %-17.*s %9.1f %9.1f %8.1f %8.1f %7.2f %8.1f %8.1f %8.1f\n", n, static_cast<int>(v.size()),
                  v.data(), m.at("wall") * 1e3, m.at("cpu") * 1e3,
                  m.at("wall") * 1e9 / (static_cast<double>(n) * polls_per_poller), m.at("heap"), m.at("blocks"),
                  m.at("rss"), m.at("hwm"), m.at("peak"));
    }
    const measurement& base = med["baseline"];
    for (std::size_t i = 1; i < variants.size(); ++i) {
      const std::string_view v = variants[i];
      const measurement& m = med[v];
      const double heap_ratio = m.at("heap") / base.at("heap");
      char line[256];
      // Issue 13's targets: async_poll_until <= 1.0x the hand-written loop, poll_until <= 1.1x.
      const double target = v == "poll_until" ? 1.1 : 1.0;
      std::snprintf(line, sizeof line, "%9zu  %-17.*s wall %.3f  cpu %.3f  heap/poller %.3f  rss/poller %.3f  blocks %.2f vs %.2f%s",
                    n, static_cast<int>(v.size()), v.data(), m.at("wall") / base.at("wall"), m.at("cpu") / base.at("cpu"),
                    heap_ratio, m.at("rss") / base.at("rss"), m.at("blocks"), base.at("blocks"),
                    v == "callback_floor" ? "" : (heap_ratio <= target ? "  (heap target met)" : "  (heap target NOT met)"));
      ratio_lines.emplace_back(line);
    }
  }
  std::printf("\nratios to the hand-written baseline (same N):\n");
  for (const std::string& line : ratio_lines) std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 4 && std::strcmp(argv[1], "--child") == 0) {
      const std::string_view variant = argv[2];
      if (variant != "baseline" && variant != "callback_floor" && variant != "poll_until" &&
          variant != "async_poll_until" && variant != "async_op_poll") {
        std::fprintf(stderr, "unknown variant '%s' (baseline, callback_floor, poll_until, async_poll_until, async_op_poll)\n",
                     argv[2]);
        return 2;
      }
      return run_child(variant, std::strtoull(argv[3], nullptr, 10));
    }
    int reps = 3;
    std::vector<std::size_t> sizes;
    for (int i = 1; i < argc; ++i) {
      if (std::strncmp(argv[i], "--reps=", 7) == 0) {
        reps = std::atoi(argv[i] + 7);
      } else {
        sizes.push_back(std::strtoull(argv[i], nullptr, 10));
      }
    }
    if (sizes.empty()) sizes = {10'000, 100'000, 1'000'000};
    if (reps < 1 || std::find(sizes.begin(), sizes.end(), 0) != sizes.end()) {
      std::fprintf(stderr, "usage: %s [--reps=R] [N...]\n", argv[0]);
      return 2;
    }
    return run_driver(reps, sizes);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "many_pollers: %s\n", e.what());
    return 1;
  }
}
