// What a Boost.Asio user writes, built by the packaging consumers against
// the Boost variant targets (jobpoll::jobpoll-boost-asio,
// jobpoll::json-boost-asio, jobpoll::curl-boost-asio): Boost's own headers
// and names only, no standalone Asio anywhere. A job that finishes on its
// third answer, one that never finishes (its deadline ends it with a
// boost::system::error_code that compares equal to jobpoll::errc::timeout),
// and a curl transport on Boost's io_context. No network.

#include <jobpoll/codec/json.hpp>
#include <jobpoll/jobpoll.hpp>
#include <jobpoll/transport/curl.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <exception>
#include <iostream>
#include <string>
#include <type_traits>

namespace net = boost::asio;

static_assert(std::is_same_v<jobpoll::error_code, boost::system::error_code>);

int main() {
  using namespace std::chrono_literals;
  net::io_context ctx;
  int polls = 0;
  auto poll = [&]() -> net::awaitable<int> { co_return ++polls; };
  auto status = [](const int& n) { return n < 3 ? jobpoll::poll_status::pending() : jobpoll::poll_status::succeeded(); };
  jobpoll::poll_options opts;
  opts.interval = jobpoll::fixed_interval{0ms};  // no real waiting in a test
  opts.deadline = 10s;
  int result = 0;
  net::co_spawn(ctx, jobpoll::poll_until(poll, status, opts), [&](std::exception_ptr e, int r) {
    if (e) std::rethrow_exception(e);
    result = r;
  });

  // A job that stays pending: the deadline ends it. Through as_tuple, the
  // code is Boost's error_code; through use_awaitable, a poll_error is a
  // boost::system::system_error like every other Boost.Asio failure.
  boost::system::error_code timed_out;
  std::string caught;
  auto idle = []() -> net::awaitable<int> { co_return 0; };  // its own: both jobs run at once
  auto never = [](const int&) { return jobpoll::poll_status::pending(); };
  jobpoll::poll_options short_deadline = opts;
  short_deadline.interval = jobpoll::fixed_interval{1ms};
  short_deadline.deadline = 20ms;
  net::co_spawn(
      ctx,
      [&]() -> net::awaitable<void> {
        auto [ec, r] = co_await jobpoll::async_poll_until(co_await net::this_coro::executor, idle, never,
                                                          short_deadline, net::as_tuple(net::use_awaitable));
        timed_out = ec;
        try {
          co_await jobpoll::poll_until(idle, never, short_deadline);
        } catch (const boost::system::system_error& e) {
          caught = e.code() == jobpoll::errc::timeout ? "timeout" : e.what();
        }
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  ctx.run();

  jobpoll::curl_transport transport(ctx.get_executor());
  const auto decoded = jobpoll::json_codec{}.decode(R"({"status":"done"})");
  std::cout << "polled to result " << result << "; deadline: " << timed_out.message() << " (" << caught
            << "); decoded " << decoded.dump() << '\n';
  return result == 3 && timed_out == jobpoll::errc::timeout && caught == "timeout" ? 0 : 1;
}
