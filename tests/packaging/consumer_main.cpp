// What a user writes first, built by every packaging consumer (installed
// package, add_subdirectory, FetchContent): include the library and poll a
// job that finishes on its third answer.

#include <jobpoll/jobpoll.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <exception>
#include <iostream>

int main() {
  using namespace std::chrono_literals;
  asio::io_context ctx;
  int polls = 0;
  auto poll = [&]() -> asio::awaitable<int> { co_return ++polls; };
  auto status = [](const int& n) { return n < 3 ? jobpoll::poll_status::pending() : jobpoll::poll_status::succeeded(); };
  jobpoll::poll_options opts;
  opts.interval = jobpoll::fixed_interval{0ms};  // no real waiting in a test
  opts.deadline = 10s;
  int result = 0;
  asio::co_spawn(ctx, jobpoll::poll_until(poll, status, opts), [&](std::exception_ptr e, int r) {
    if (e) std::rethrow_exception(e);
    result = r;
  });
  ctx.run();
  std::cout << "polled " << polls << " times, result " << result << '\n';
  return result == 3 && polls == 3 ? 0 : 1;
}
