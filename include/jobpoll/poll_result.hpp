#pragma once
// How a poll ends: a result value for the error-code forms and an exception
// for the awaitable form, both carrying the last response and the stats.

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "jobpoll/observer.hpp"
#include "jobpoll/poll_status.hpp"

namespace jobpoll {

/// The outcome of one poll.
///
/// `response` is the last response received: the job's result on success,
/// the failure payload on `job_failed`, the last pending answer on `timeout`.
/// `message` says why it ended and what the server said, e.g.
/// `deadline passed before the job finished after 3 attempts in 4.000s; last: pending (status "working")`.
template <class Response>
struct poll_result {
  /// Empty on success, else why it ended: the Asio backend's error code
  /// (`std::error_code`, or `boost::system::error_code` holding the same
  /// code), so it compares with `asio::error::...` as with `jobpoll::errc`.
  error_code error;
  std::optional<Response> response;
  poll_status status;
  poll_stats stats;
  std::string message;

  /// True when the job succeeded.
  explicit operator bool() const noexcept { return !error; }
};

/// Thrown by `poll_until` when a poll ends without success. `code()` is the
/// reason (`errc::timeout`, `errc::job_failed`, ..., or
/// `asio::error::operation_aborted` on cancellation); `what()` the full message.
///
/// A `system_error` of the Asio backend (`std::system_error`, or
/// `boost::system::system_error` with Boost.Asio), as Asio's own
/// `use_awaitable` throws: `code()` compares with `asio::error::...` and
/// `jobpoll::errc` on either, and `what()` is the same on both.
class poll_error : public system_error {
 public:
  poll_error(std::error_code ec, std::string message, poll_status last, poll_stats stats)
      : system_error(detail::to_error_code(ec)), message_(std::move(message)), last_status_(std::move(last)), stats_(stats) {}

  /// The full message (system_error would append the code's message again).
  const char* what() const noexcept override { return message_.c_str(); }

  /// The last classification: state, detail (what the server said), progress.
  const poll_status& last_status() const noexcept { return last_status_; }
  const poll_stats& stats() const noexcept { return stats_; }
  std::size_t attempts() const noexcept { return stats_.attempts; }

 protected:
  /// For errors that learn more after the poll ended (a remote cancel's outcome).
  void append_to_message(std::string_view more) { message_ += more; }

 private:
  std::string message_;
  poll_status last_status_;
  poll_stats stats_;
};

/// `poll_error` with the last response itself (catch this to read a failed
/// job's payload; catch `poll_error` when the reason is enough).
template <class Response>
class basic_poll_error : public poll_error {
 public:
  explicit basic_poll_error(poll_result<Response> r)
      : poll_error(r.error, r.message, std::move(r.status), r.stats), last_response_(std::move(r.response)) {}

  /// The last response received, if any poll answered.
  const std::optional<Response>& last_response() const noexcept { return last_response_; }

 private:
  std::optional<Response> last_response_;
};

namespace detail {

inline std::string format_seconds(std::chrono::nanoseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3fs", std::chrono::duration<double>(d).count());
  return buf;
}

/// "<reason> after N attempts in T; last: <state> (<detail>)"
inline std::string describe_end(std::error_code ec, const poll_status& last, const poll_stats& stats) {
  std::string m = ec.message();
  if (m.ends_with('.')) m.pop_back();  // Asio's "Operation aborted." reads as a sentence
  m += " after " + std::to_string(stats.attempts) + (stats.attempts == 1 ? " attempt" : " attempts");
  m += " in " + format_seconds(stats.elapsed);
  if (stats.attempts > 0) {
    m += "; last: ";
    m += to_string(last.state);
    if (last.error && last.error != ec) m += " [" + last.error.message() + "]";
    if (!last.detail.empty()) m += " (" + last.detail + ")";
  }
  return m;
}

}  // namespace detail
}  // namespace jobpoll
