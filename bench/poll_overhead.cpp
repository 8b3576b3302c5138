// The cost of one poll iteration of jobpoll::poll_until against the
// hand-written Asio loop it replaces, with nothing else in the way: a poll
// that is ready at once, a status policy that says "pending" N-1 times and
// then "succeeded", a zero interval, no deadline, no limiter. With a zero wait
// poll_until yields with `co_await asio::post(asio::use_awaitable)` between
// polls, so the baseline does exactly the same.
//
// async_poll_until: the composed operation with a callback; its awaitable
// poll is spawned as a coroutine per attempt. async_op_poll: the same with a
// poll that is an Asio asynchronous operation (a post completing at once).
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
#include <system_error>

#include <jobpoll/asio.hpp>
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

// A poll that is an Asio asynchronous operation completing at once with (error_code, 42).
struct ready_async_poll {
  template <class Token>
  auto operator()(Token&& token) const {
    return asio::async_initiate<Token, void(jobpoll::error_code, int)>(
        [](auto handler) {
          auto ex = asio::get_associated_executor(handler);
          asio::post(ex, jobpoll::asio_tokens::append(std::move(handler), jobpoll::error_code{}, 42));
        },
        token);
  }
};

// Starts one loop of `polls` polls on `ctx`; `done` gets the final response.
using starter = void (*)(asio::io_context&, int polls, int& response);

template <asio::awaitable<int> (*Loop)(int)>
void spawn_loop(asio::io_context& ctx, int polls, int& response) {
  asio::co_spawn(ctx, Loop(polls), [&response](std::exception_ptr e, int r) {
    if (e) std::rethrow_exception(e);
    response = r;
  });
}

template <class Poll>
void async_loop(asio::io_context& ctx, int polls, int& response) {
  jobpoll::poll_options opts;
  opts.interval = jobpoll::fixed_interval{std::chrono::seconds(0)};
  opts.deadline = jobpoll::deadline::none();
  jobpoll::async_poll_until(ctx.get_executor(), Poll{}, countdown_status{polls}, opts,
                            [&response](jobpoll::error_code ec, jobpoll::poll_result<int> r) {
                              if (ec) throw std::system_error(ec);
                              response = *r.response;
                            });
}

struct awaitable_poll {
  asio::awaitable<int> operator()() const { return ready_poll(); }
};

void run_loop(benchmark::State& state, starter start, bool reactor) {
  asio::io_context ctx;
  std::optional<asio::steady_timer> idle;
  if (reactor) idle.emplace(ctx);
  for (auto _ : state) {
    int response = 0;
    start(ctx, polls_per_run, response);
    ctx.restart();
    ctx.run();
    if (response != 42) state.SkipWithError("the loop did not end with the ready response");
  }
  state.SetItemsProcessed(state.iterations() * polls_per_run);
}

void baseline(benchmark::State& state) { run_loop(state, spawn_loop<hand_written_loop>, true); }
void jobpoll_poll_until(benchmark::State& state) { run_loop(state, spawn_loop<jobpoll_loop>, true); }
void jobpoll_async_poll_until(benchmark::State& state) { run_loop(state, async_loop<awaitable_poll>, true); }
void jobpoll_async_op_poll(benchmark::State& state) { run_loop(state, async_loop<ready_async_poll>, true); }
void baseline_no_reactor(benchmark::State& state) { run_loop(state, spawn_loop<hand_written_loop>, false); }
void jobpoll_poll_until_no_reactor(benchmark::State& state) { run_loop(state, spawn_loop<jobpoll_loop>, false); }
void jobpoll_async_poll_until_no_reactor(benchmark::State& state) { run_loop(state, async_loop<awaitable_poll>, false); }
void jobpoll_async_op_poll_no_reactor(benchmark::State& state) { run_loop(state, async_loop<ready_async_poll>, false); }

}  // namespace

BENCHMARK(baseline)->Name("poll_iteration/baseline");
BENCHMARK(jobpoll_poll_until)->Name("poll_iteration/poll_until");
BENCHMARK(jobpoll_async_poll_until)->Name("poll_iteration/async_poll_until");
BENCHMARK(jobpoll_async_op_poll)->Name("poll_iteration/async_op_poll");
BENCHMARK(baseline_no_reactor)->Name("poll_iteration_no_reactor/baseline");
BENCHMARK(jobpoll_poll_until_no_reactor)->Name("poll_iteration_no_reactor/poll_until");
BENCHMARK(jobpoll_async_poll_until_no_reactor)->Name("poll_iteration_no_reactor/async_poll_until");
BENCHMARK(jobpoll_async_op_poll_no_reactor)->Name("poll_iteration_no_reactor/async_op_poll");
