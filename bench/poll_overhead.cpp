// The cost of one poll iteration of jobpoll::poll_until against the
// hand-written Asio loop it replaces, with nothing else in the way: a poll
// that is ready at once, a status policy that says "pending" N-1 times and
// then "succeeded", a zero interval, no deadline, no limiter. With a zero wait
// poll_until yields with `co_await asio::post(asio::use_awaitable)` between
// polls, so the baseline does exactly the same.
//
// poll_iteration/*: the context has a reactor (an idle timer), as any program
// whose polls do I/O has. Asio then runs the reactor (an epoll_wait syscall)
// once per pass over its handler queue, which with one poller is once per
// poll, in both loops alike.
// poll_iteration_no_reactor/*: no reactor in either (poll_until creates its
// timer only for its first non-zero wait), so per-poll work dominates.

#include <chrono>
#include <exception>
#include <optional>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <benchmark/benchmark.h>

#include <jobpoll/jobpoll.hpp>

namespace {

constexpr int polls_per_run = 10'000;

// "pending" until the n-th answer, which is "succeeded".
struct countdown_status {
  int left;
  jobpoll::poll_status operator()(const int&) {
    return --left > 0 ? jobpoll::poll_status::pending() : jobpoll::poll_status::succeeded();
  }
};

asio::awaitable<int> ready_poll() { co_return 42; }

asio::awaitable<int> hand_written_loop(int polls) {
  countdown_status status{polls};
  for (;;) {
    const int response = co_await ready_poll();
    if (status(response).terminal()) co_return response;
    co_await asio::post(asio::use_awaitable);
  }
}

asio::awaitable<int> jobpoll_loop(int polls) {
  jobpoll::poll_options opts;
  opts.interval = jobpoll::fixed_interval{std::chrono::seconds(0)};
  opts.deadline = jobpoll::deadline::none();
  co_return co_await jobpoll::poll_until(&ready_poll, countdown_status{polls}, opts);
}

template <class Loop>
void run_loop(benchmark::State& state, Loop loop, bool reactor) {
  asio::io_context ctx;
  std::optional<asio::steady_timer> idle;
  if (reactor) idle.emplace(ctx);
  for (auto _ : state) {
    int response = 0;
    asio::co_spawn(ctx, loop(polls_per_run), [&](std::exception_ptr e, int r) {
      if (e) std::rethrow_exception(e);
      response = r;
    });
    ctx.restart();
    ctx.run();
    if (response != 42) state.SkipWithError("the loop did not end with the ready response");
  }
  state.SetItemsProcessed(state.iterations() * polls_per_run);
}

void baseline(benchmark::State& state) { run_loop(state, hand_written_loop, true); }
void jobpoll_poll_until(benchmark::State& state) { run_loop(state, jobpoll_loop, true); }
void baseline_no_reactor(benchmark::State& state) { run_loop(state, hand_written_loop, false); }
void jobpoll_poll_until_no_reactor(benchmark::State& state) { run_loop(state, jobpoll_loop, false); }

}  // namespace

BENCHMARK(baseline)->Name("poll_iteration/baseline");
BENCHMARK(jobpoll_poll_until)->Name("poll_iteration/poll_until");
BENCHMARK(baseline_no_reactor)->Name("poll_iteration_no_reactor/baseline");
BENCHMARK(jobpoll_poll_until_no_reactor)->Name("poll_iteration_no_reactor/poll_until");
