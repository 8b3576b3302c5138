// What sharing a budget through Redis costs, next to the in-process limiter:
// acquires per second, and the latency of one acquire (median and p99), in
// 1 process and in 4 processes at once. The budget never binds (10^9 per
// second in-process, 10^6 per second through Redis, both far above what
// each reaches), so what is measured is the limiter itself.
//
// - latency: one coroutine acquires, releases, acquires again; each acquire
//   is timed from the call to its completion. For the Redis limiter the
//   release of the previous permit is sent before the next ask (the driver
//   sends queued messages first), so this is the cost a sequential caller
//   sees per request: two round trips to Redis.
// - throughput: 64 coroutines per process acquire and release in a loop;
//   acquires completed per second (summed over the processes).
// In 4 processes the in-process limiters are four separate budgets (nothing
// shared: the baseline of the per-process cost); the Redis limiters share
// one key. Every configuration runs in fresh processes, against a
// redis-server the benchmark starts on a unix socket (tests/support/redis_server.hpp).
//
// Usage: redis_limiter_bench [--seconds=S]     (default 2 s per phase)
//        redis_limiter_bench --child KIND SOCKET SECONDS   (one process; prints key=value)

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <jobpoll/asio.hpp>

#include <jobpoll/redis_limiter.hpp>
#include <jobpoll/sliding_window_limiter.hpp>

#include "child_process.hpp"
#include "redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr std::size_t concurrency = 64;

template <class Limiter>
asio::awaitable<void> timed_loop(Limiter& limiter, clock_type::time_point end, std::vector<double>& latencies_us) {
  while (clock_type::now() < end) {
    const auto start = clock_type::now();
    jobpoll::limiter_permit permit = co_await limiter.async_acquire(asio::use_awaitable);
    latencies_us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - start).count());
    permit.release();
  }
}

template <class Limiter>
asio::awaitable<void> counting_loop(Limiter& limiter, clock_type::time_point end, std::size_t& count) {
  while (clock_type::now() < end) {
    jobpoll::limiter_permit permit = co_await limiter.async_acquire(asio::use_awaitable);
    ++count;
    permit.release();
  }
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// One process: the latency phase, then the throughput phase.
template <class Limiter>
void measure(asio::io_context& ctx, Limiter& limiter, double seconds) {
  const auto phase = std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  std::vector<double> latencies;
  asio::co_spawn(ctx, timed_loop(limiter, clock_type::now() + phase, latencies), asio::detached);
  ctx.run();
  ctx.restart();
  std::size_t count = 0;
  const auto start = clock_type::now();
  for (std::size_t i = 0; i < concurrency; ++i)
    asio::co_spawn(ctx, counting_loop(limiter, start + phase, count), asio::detached);
  ctx.run();
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  std::printf("acquires_per_s=%.1f latency_p50_us=%.2f latency_p99_us=%.2f latency_samples=%zu\n",
              static_cast<double>(count) / elapsed, percentile(latencies, 0.5), percentile(latencies, 0.99),
              latencies.size());
}

int child(std::string_view kind, const std::string& socket, double seconds) {
  asio::io_context ctx;
  if (kind == "inprocess") {
    jobpoll::sliding_window_limiter limiter(ctx.get_executor(), 1000, 1us);  // 10^9 per second
    measure(ctx, limiter, seconds);
    return 0;
  }
  auto options = jobpoll::parse_redis_limit_url("unix://" + socket + "?key=bench&rate=1000000/1s&cold_start=full");
  jobpoll::redis_limiter limiter(ctx.get_executor(), options);
  measure(ctx, limiter, seconds);
  const auto s = limiter.statistics();
  std::printf("outages=%llu\n", static_cast<unsigned long long>(s.outages));
  return s.outages == 0 ? 0 : 1;
}

// The figures of one child: "key=value" words of its stdout.
std::map<std::string, double> figures(const std::string& out) {
  std::map<std::string, double> m;
  for (std::size_t pos = 0; pos < out.size();) {
    const std::size_t end = std::min(out.find_first_of(" \n", pos), out.size());
    const std::string word = out.substr(pos, end - pos);
    if (const auto eq = word.find('='); eq != std::string::npos)
      m[word.substr(0, eq)] = std::atof(word.c_str() + eq + 1);
    pos = end + 1;
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string_view(argv[1]) == "--child") return child(argv[2], argv[3], std::atof(argv[4]));
  double seconds = 2;
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]).starts_with("--seconds=")) seconds = std::atof(argv[i] + 10);

  const jobpoll_test::redis_server redis;
  std::printf("%-22s %10s %16s %16s %18s\n", "limiter", "processes", "acquires/s", "p50 latency us",
              "p99 latency us");
  for (const char* kind : {"inprocess", "redis"}) {
    for (int processes : {1, 4}) {
      std::vector<std::unique_ptr<jobpoll_test::child_process>> children;
      for (int i = 0; i < processes; ++i)
        children.push_back(std::make_unique<jobpoll_test::child_process>(std::vector<std::string>{
            "/proc/self/exe", "--child", kind, redis.socket_path(), std::to_string(seconds)}));
      double rate = 0;
      double p50 = 0;
      double p99 = 0;
      for (auto& c : children) {
        const jobpoll_test::child_result r = c->finish();
        if (r.exit_code != 0) {
          std::fprintf(stderr, "child failed (%d): %s\n", r.exit_code, r.err.c_str());
          return 1;
        }
        const auto m = figures(r.out);
        rate += m.at("acquires_per_s");
        p50 += m.at("latency_p50_us") / processes;  // the processes' mean median
        p99 = std::max(p99, m.at("latency_p99_us"));  // the worst process's p99
      }
      std::printf("%-22s %10d %16.0f %16.1f %18.1f\n",
                  std::string_view(kind) == "redis" ? "redis_limiter" : "sliding_window_limiter", processes, rate,
                  p50, p99);
    }
  }
  return 0;
}
