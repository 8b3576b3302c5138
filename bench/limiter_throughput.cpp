// Acquires per second of the sliding-window and token-bucket limiters, next to
// what the same work costs without a limiter:
//
// - try_acquire_*: a budget that never binds (1000 starts per microsecond),
//   called in a tight loop from 1 or 2 threads; baseline: std::mutex + counter.
// - async_acquire_*: the same budget, `co_await async_acquire(use_awaitable)`
//   (the permit dropped at once)
//   in a loop by 8 coroutines on one io_context run by 1 or 2 threads; the
//   completion is always posted, so the baseline is `co_await asio::post`.
//   Both run on a context with a reactor (an idle timer), as any program
//   doing I/O has; the limiter's own timer, never needed here, lives on a
//   context of its own.
// - contended_manual_clock/*: 1000 waiters queue for a budget of 10 starts per
//   1 ms of manual-clock time, 10 acquires each, driven by manual_clock::run:
//   no OS timers, so the wall time is all CPU (limiter, timer, resumptions).
//   Baseline: the same coroutines doing a post round trip per acquire.
// - contended_steady_*: 1000 waiters, 100 starts per 1 ms on steady_clock,
//   io_context run by 1 or 2 threads. The budget sets the rate (100k/s); the
//   counter cpu_ns_per_grant says what each grant costs the process.

#include <time.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

#include <jobpoll/asio.hpp>
#include <benchmark/benchmark.h>

#include <jobpoll/sliding_window_limiter.hpp>
#include <jobpoll/testing/manual_clock.hpp>
#include <jobpoll/token_bucket_limiter.hpp>

namespace {

using namespace std::chrono_literals;
using jobpoll::testing::manual_clock;

// A budget nobody reaches: 1000 starts per microsecond, bursts of 1000.
template <class Limiter>
Limiter make_unbounded(const asio::any_io_executor& ex) {
  if constexpr (requires { &Limiter::max_starts; }) {
    return Limiter(ex, 1000, std::chrono::microseconds(1));
  } else {
    return Limiter(ex, 1000, std::chrono::microseconds(1), 1000);
  }
}

// glibc takes locks without atomic instructions until a process creates its
// first thread. Create one up front, so that every benchmark, whatever the
// order they run in, sees the locking a multi-threaded program gets.
[[maybe_unused]] const bool multi_threaded = [] {
  std::thread([] {}).join();
  return true;
}();

// --- try_acquire ----------------------------------------------------------------

std::mutex baseline_mutex;
std::uint64_t baseline_count = 0;

void try_acquire_baseline(benchmark::State& state) {
  for (auto _ : state) {
    std::lock_guard lock(baseline_mutex);
    benchmark::DoNotOptimize(++baseline_count);
  }
  state.SetItemsProcessed(state.iterations());
}

// Shared by the threads of a multi-threaded run; built before main.
asio::io_context limiter_context;
jobpoll::sliding_window_limiter shared_sliding_window = make_unbounded<jobpoll::sliding_window_limiter>(limiter_context.get_executor());
jobpoll::token_bucket_limiter shared_token_bucket = make_unbounded<jobpoll::token_bucket_limiter>(limiter_context.get_executor());

template <class Limiter>
void try_acquire(benchmark::State& state, Limiter& limiter) {
  std::int64_t refused = 0;
  for (auto _ : state) {
    if (!limiter.try_acquire()) ++refused;
  }
  if (refused) state.SkipWithError("the budget bound: try_acquire refused");
  state.SetItemsProcessed(state.iterations());
}

void try_acquire_sliding_window(benchmark::State& state) { try_acquire(state, shared_sliding_window); }
void try_acquire_token_bucket(benchmark::State& state) { try_acquire(state, shared_token_bucket); }

// --- async_acquire without waiting ---------------------------------------------------

constexpr int acquirers = 8;
constexpr int acquires_each = 5'000;

// Runs `acquirers` copies of `body` on a fresh context with a reactor, run by
// `threads` threads.
template <class Body>
void run_acquirers(benchmark::State& state, int threads, Body body) {
  for (auto _ : state) {
    asio::io_context ctx(threads);
    asio::steady_timer reactor(ctx);
    for (int i = 0; i < acquirers; ++i) {
      asio::co_spawn(ctx, body(ctx.get_executor()), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
    }
    std::thread helper;
    if (threads == 2) helper = std::thread([&] { ctx.run(); });
    ctx.run();
    if (helper.joinable()) helper.join();
  }
  state.SetItemsProcessed(state.iterations() * acquirers * acquires_each);
}

void async_acquire_baseline(benchmark::State& state) {
  run_acquirers(state, static_cast<int>(state.range(0)), [](asio::any_io_executor ex) -> asio::awaitable<void> {
    for (int i = 0; i < acquires_each; ++i) co_await asio::post(ex, asio::use_awaitable);
  });
}

template <class Limiter>
void async_acquire(benchmark::State& state) {
  asio::io_context limiter_ctx;
  Limiter limiter = make_unbounded<Limiter>(limiter_ctx.get_executor());
  run_acquirers(state, static_cast<int>(state.range(0)), [&](asio::any_io_executor) -> asio::awaitable<void> {
    for (int i = 0; i < acquires_each; ++i) static_cast<void>(co_await limiter.async_acquire(asio::use_awaitable));
  });
  if (limiter.statistics().granted != static_cast<std::uint64_t>(state.iterations()) * acquirers * acquires_each)
    state.SkipWithError("not every acquire was granted");
}

// --- contended, manual clock -----------------------------------------------------

constexpr int waiters = 1000;
constexpr int contended_acquires_each = 10;

template <class Limiter>
Limiter make_contended(const asio::any_io_executor& ex, std::size_t per_ms) {
  if constexpr (requires { &Limiter::max_starts; }) {
    return Limiter(ex, per_ms, std::chrono::milliseconds(1));
  } else {
    return Limiter(ex, per_ms, std::chrono::milliseconds(1), per_ms);
  }
}

void contended_manual_baseline(benchmark::State& state) {
  for (auto _ : state) {
    manual_clock::reset();
    asio::io_context ctx;
    for (int i = 0; i < waiters; ++i) {
      asio::co_spawn(ctx, [ex = ctx.get_executor()]() -> asio::awaitable<void> {
        for (int k = 0; k < contended_acquires_each; ++k) co_await asio::post(ex, asio::use_awaitable);
      }, [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
    }
    manual_clock::run(ctx);
  }
  state.SetItemsProcessed(state.iterations() * waiters * contended_acquires_each);
}

template <class Limiter>
void contended_manual(benchmark::State& state) {
  manual_clock::duration simulated{};
  for (auto _ : state) {
    manual_clock::reset();
    asio::io_context ctx;
    Limiter limiter = make_contended<Limiter>(ctx.get_executor(), 10);
    for (int i = 0; i < waiters; ++i) {
      asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
        for (int k = 0; k < contended_acquires_each; ++k)
          static_cast<void>(co_await limiter.async_acquire(asio::use_awaitable));
      }, [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
    }
    simulated = manual_clock::run(ctx);
    if (limiter.statistics().granted != waiters * contended_acquires_each) state.SkipWithError("grants missing");
  }
  // 10000 grants at 10 per ms: the last batch is granted at 999 ms.
  state.counters["simulated_ms"] = std::chrono::duration<double, std::milli>(simulated).count();
  state.SetItemsProcessed(state.iterations() * waiters * contended_acquires_each);
}

// --- contended, steady clock, 1 or 2 threads -------------------------------------

constexpr int steady_acquires_each = 5;  // 5000 grants at 100 per ms: ~50 ms

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

template <class Limiter>
void contended_steady(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  double cpu = 0;
  for (auto _ : state) {
    asio::io_context ctx(threads);
    Limiter limiter = make_contended<Limiter>(ctx.get_executor(), 100);
    for (int i = 0; i < waiters; ++i) {
      asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
        for (int k = 0; k < steady_acquires_each; ++k)
          static_cast<void>(co_await limiter.async_acquire(asio::use_awaitable));
      }, [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
    }
    const double cpu0 = process_cpu_seconds();
    std::thread helper;
    if (threads == 2) helper = std::thread([&] { ctx.run(); });
    ctx.run();
    if (helper.joinable()) helper.join();
    cpu += process_cpu_seconds() - cpu0;
    if (limiter.statistics().granted != waiters * steady_acquires_each) state.SkipWithError("grants missing");
  }
  const double grants = static_cast<double>(state.iterations()) * waiters * steady_acquires_each;
  state.counters["cpu_ns_per_grant"] = cpu * 1e9 / grants;
  state.SetItemsProcessed(static_cast<std::int64_t>(grants));
}

}  // namespace

BENCHMARK(try_acquire_baseline)->Name("try_acquire_1thread/baseline");
BENCHMARK(try_acquire_sliding_window)->Name("try_acquire_1thread/sliding_window");
BENCHMARK(try_acquire_token_bucket)->Name("try_acquire_1thread/token_bucket");
BENCHMARK(try_acquire_baseline)->Name("try_acquire_2threads/baseline")->Threads(2)->UseRealTime();
BENCHMARK(try_acquire_sliding_window)->Name("try_acquire_2threads/sliding_window")->Threads(2)->UseRealTime();
BENCHMARK(try_acquire_token_bucket)->Name("try_acquire_2threads/token_bucket")->Threads(2)->UseRealTime();

BENCHMARK(async_acquire_baseline)->Name("async_acquire_1thread/baseline")->Arg(1)->UseRealTime();
BENCHMARK_TEMPLATE(async_acquire, jobpoll::sliding_window_limiter)->Name("async_acquire_1thread/sliding_window")->Arg(1)->UseRealTime();
BENCHMARK_TEMPLATE(async_acquire, jobpoll::token_bucket_limiter)->Name("async_acquire_1thread/token_bucket")->Arg(1)->UseRealTime();
BENCHMARK(async_acquire_baseline)->Name("async_acquire_2threads/baseline")->Arg(2)->UseRealTime();
BENCHMARK_TEMPLATE(async_acquire, jobpoll::sliding_window_limiter)->Name("async_acquire_2threads/sliding_window")->Arg(2)->UseRealTime();
BENCHMARK_TEMPLATE(async_acquire, jobpoll::token_bucket_limiter)->Name("async_acquire_2threads/token_bucket")->Arg(2)->UseRealTime();

BENCHMARK(contended_manual_baseline)->Name("contended_manual_clock/baseline")->UseRealTime();
BENCHMARK_TEMPLATE(contended_manual, jobpoll::basic_sliding_window_limiter<manual_clock>)->Name("contended_manual_clock/sliding_window")->UseRealTime();
BENCHMARK_TEMPLATE(contended_manual, jobpoll::basic_token_bucket_limiter<manual_clock>)->Name("contended_manual_clock/token_bucket")->UseRealTime();

BENCHMARK_TEMPLATE(contended_steady, jobpoll::sliding_window_limiter)->Name("contended_steady_1thread/sliding_window")->Arg(1)->UseRealTime()->Iterations(4);
BENCHMARK_TEMPLATE(contended_steady, jobpoll::token_bucket_limiter)->Name("contended_steady_1thread/token_bucket")->Arg(1)->UseRealTime()->Iterations(4);
BENCHMARK_TEMPLATE(contended_steady, jobpoll::sliding_window_limiter)->Name("contended_steady_2threads/sliding_window")->Arg(2)->UseRealTime()->Iterations(4);
BENCHMARK_TEMPLATE(contended_steady, jobpoll::token_bucket_limiter)->Name("contended_steady_2threads/token_bucket")->Arg(2)->UseRealTime()->Iterations(4);
