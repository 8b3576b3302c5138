#pragma once
// A fixture for the tests of an in-memory transport that answers on the
// manual clock (the scripted transport, the in-memory job API): requests
// sent with a handler that records what they completed with and when,
// optionally cancellable through one signal; handlers and simulated time run
// until nothing is left; after each test, a check that nothing was left
// behind; and the cancellation types a cancellation test runs with.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include <jobpoll/asio.hpp>
#include <gtest/gtest.h>

#include <jobpoll/http.hpp>
#include <jobpoll/testing/manual_clock.hpp>

namespace jobpoll_test {

/// What one request completed with, and when (on the manual clock).
struct timed_outcome {
  jobpoll::error_code ec;
  jobpoll::http_response response;
  jobpoll::testing::manual_clock::duration at{};
};

/// A request of `method` to `url` with `body`, no headers and no timeout.
inline jobpoll::http_request request_for(std::string method, std::string url, std::string body = {}) {
  jobpoll::http_request r;
  r.method = std::move(method);
  r.url = std::move(url);
  r.body = std::move(body);
  return r;
}

/// `r` with its timeout set to `timeout`.
inline jobpoll::http_request with_timeout(jobpoll::http_request r, std::chrono::nanoseconds timeout) {
  r.timeout = timeout;
  return r;
}

/// The values of a test parameterised on how a request is cancelled:
/// terminal, partial and total (named by cancellation_type_name).
inline auto every_cancellation_type() {
  return ::testing::Values(asio::cancellation_type::terminal, asio::cancellation_type::partial,
                           asio::cancellation_type::total);
}

/// The name of a test instantiated with every_cancellation_type():
/// "terminal", "partial" or "total".
inline std::string cancellation_type_name(const ::testing::TestParamInfo<asio::cancellation_type>& info) {
  switch (info.param) {
    case asio::cancellation_type::terminal: return "terminal";
    case asio::cancellation_type::partial: return "partial";
    default: return "total";
  }
}

/// A test of `Transport`, constructed from the executor of `ctx`, on the
/// manual clock (reset before each test). After each test it expects no
/// timer wait, no request held by the transport (`requests_left()`), and
/// no queued handler or outstanding work in `ctx`.
template <class Transport>
class transport_exchange : public ::testing::Test {
 protected:
  using manual_clock = jobpoll::testing::manual_clock;

  void SetUp() override { manual_clock::reset(); }

  void TearDown() override {
    // Nothing left behind: no timer wait, no request, no queued handler, no work.
    EXPECT_EQ(manual_clock::pending_waits(), 0u);
    EXPECT_EQ(requests_left(), 0u);
    poll();
    EXPECT_TRUE(ctx.stopped()) << "the io_context still has outstanding work";
  }

  /// How many requests `transport` has taken whose handler has not run yet,
  /// by the transport's own count.
  virtual std::size_t requests_left() const = 0;

  /// Runs the handlers that are ready now; time does not move.
  void poll() {
    ctx.restart();
    ctx.poll();
  }

  /// Runs handlers and simulated time until nothing is left to do.
  void run() { manual_clock::run(ctx); }

  /// A handler that records its outcome into `out`; it must run once.
  static auto record(std::optional<timed_outcome>& out) {
    return [&out](jobpoll::error_code ec, jobpoll::http_response response) {
      EXPECT_FALSE(out) << "completed twice";
      out = timed_outcome{ec, std::move(response), manual_clock::now().time_since_epoch()};
    };
  }

  /// `record(out)`, cancellable through `signal`.
  auto record_cancellable(std::optional<timed_outcome>& out) {
    return asio::bind_cancellation_slot(signal.slot(), record(out));
  }

  /// Starts `request` with a recording handler.
  void send(jobpoll::http_request request, std::optional<timed_outcome>& out) {
    transport.async_request(std::move(request), record(out));
  }

  /// Sends `request` and runs until it has completed.
  timed_outcome exchange(jobpoll::http_request request) {
    std::optional<timed_outcome> out;
    send(std::move(request), out);
    run();
    EXPECT_TRUE(out) << "the request did not complete";
    return out.value_or(timed_outcome{});
  }

  // Declared first, destroyed last: a completion still queued in ctx when it
  // is destroyed clears its cancellation slot, so the signal must outlive ctx.
  asio::cancellation_signal signal;
  asio::io_context ctx;
  Transport transport{ctx.get_executor()};
};

}  // namespace jobpoll_test
