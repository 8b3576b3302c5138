#pragma once
// Error codes of jobpoll, the exception that carries them with context, and
// the helpers that compare and classify codes (Asio's included).

#include <string>
#include <system_error>
#include <type_traits>

#include "jobpoll/detail/asio_error.hpp"

namespace jobpoll {

/// Why a poll ended without success, or why one attempt failed.
/// Cancellation is not here: a cancelled poll reports
/// `asio::error::operation_aborted`, the code every Asio user already checks.
enum class errc {
  timeout = 1,        ///< the deadline passed before the job reached a terminal state
  job_failed,         ///< the job reached a failed state; its payload is the last response
  retries_exhausted,  ///< more consecutive transient failures than the retry budget allows
  rate_limited,       ///< the server answered "too many requests" (429)
  server_error,       ///< the server answered with a transient 5xx
  attempt_timeout,    ///< one poll did not answer within the per-attempt timeout
  decode_error,       ///< a response body could not be decoded
  unknown_status,     ///< the job reported a status value the status policy does not know
  http_error,         ///< the server answered with a permanent HTTP error (4xx other than 429)
  expired_handle,     ///< the job handle is unknown to the server (404/410 when polling)
  poll_exception,     ///< the poll operation threw an exception that is not a std::system_error
  permanent_error,    ///< a status policy called an attempt permanent without a more precise code
  invalid_argument,   ///< a poll option or argument was out of range
  invalid_checkpoint, ///< a batch record (an audit line, a stored job) is unreadable, corrupt or another batch's
  not_sent,           ///< the request ended before the transport sent it (its deadline passed in the transport's queue): the server never saw it
  store_error,        ///< a batch store failed: it cannot be opened or written (disk full, I/O error, corrupt, another program's file)
  batch_owned,        ///< the batch is owned by another runner (its pid, host and since are in the message)
  batch_mismatch,     ///< the store holds a batch of that name with other entries
  lease_lost,         ///< a shared batch store gave this runner's records to others: its lease ran out (it was taken for dead)
};

namespace detail {

class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "jobpoll"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::timeout: return "deadline passed before the job finished";
      case errc::job_failed: return "job failed";
      case errc::retries_exhausted: return "too many consecutive transient failures";
      case errc::rate_limited: return "rate limited by the server";
      case errc::server_error: return "transient server error";
      case errc::attempt_timeout: return "poll attempt timed out";
      case errc::decode_error: return "response could not be decoded";
      case errc::unknown_status: return "unknown job status";
      case errc::http_error: return "permanent HTTP error";
      case errc::expired_handle: return "job handle expired or unknown";
      case errc::poll_exception: return "poll operation threw an exception";
      case errc::permanent_error: return "permanent error";
      case errc::invalid_argument: return "invalid argument";
      case errc::invalid_checkpoint: return "invalid batch record";
      case errc::not_sent: return "request not sent: its deadline passed while it waited for a connection";
      case errc::store_error: return "batch store failed";
      case errc::batch_owned: return "batch owned by another runner";
      case errc::batch_mismatch: return "the store holds another batch of that name";
      case errc::lease_lost: return "this runner's lease on the batch ran out: other runners took its jobs";
    }
    return "unknown jobpoll error " + std::to_string(value);
  }

  std::error_condition default_error_condition(int value) const noexcept override {
    switch (static_cast<errc>(value)) {
      case errc::timeout:
      case errc::attempt_timeout: return std::errc::timed_out;
      case errc::invalid_argument: return std::errc::invalid_argument;
      default: return {value, *this};
    }
  }
};

}  // namespace detail

/// The `jobpoll` error category (a single instance, compared by address).
inline const std::error_category& error_category() noexcept {
  static const detail::error_category_impl instance;
  return instance;
}

/// Makes `errc` values usable wherever a `std::error_code` is expected.
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace jobpoll

template <>
struct std::is_error_code_enum<jobpoll::errc> : std::true_type {};

namespace jobpoll {

/// `ec == condition`, also for Asio's own system errors: Asio 1.22 maps
/// them to `std::errc` conditions only when ASIO_HAS_STD_ERROR_CODE is set
/// (never with g++ or clang on Linux), so `asio::error::connection_reset`
/// would otherwise not compare equal to `std::errc::connection_reset`.
inline bool error_is(const std::error_code& ec, std::errc condition) noexcept {
  if (ec == condition) return true;
  // Asio's system category carries errno values on POSIX.
  return ec.category() == detail::asio_system_category() &&
         std::error_code(ec.value(), std::generic_category()) == condition;
}

/// Whether a failed attempt with this code is worth retrying by default:
/// network errors (reset, refused, aborted, timed out, unreachable, broken
/// pipe, end of stream) and jobpoll's own transient codes (a request
/// `not_sent` included).
inline bool is_transient_error(const std::error_code& ec) noexcept {
  if (ec == errc::attempt_timeout || ec == errc::rate_limited || ec == errc::server_error || ec == errc::not_sent)
    return true;
  if (ec == detail::asio_error(asio::error::eof)) return true;
  for (std::errc e : {std::errc::connection_reset, std::errc::connection_refused, std::errc::connection_aborted,
                      std::errc::timed_out, std::errc::broken_pipe, std::errc::network_unreachable,
                      std::errc::network_down, std::errc::network_reset, std::errc::host_unreachable,
                      std::errc::not_connected, std::errc::resource_unavailable_try_again}) {
    if (error_is(ec, e)) return true;
  }
  return false;
}

#if defined(JOBPOLL_USE_BOOST_ASIO)
/// `error_is` for Boost's error_code (Boost.Asio's enumerations included).
inline bool error_is(const error_code& ec, std::errc condition) noexcept {
  return error_is(static_cast<std::error_code>(ec), condition);
}

/// `is_transient_error` for Boost's error_code.
inline bool is_transient_error(const error_code& ec) noexcept {
  return is_transient_error(static_cast<std::error_code>(ec));
}
#endif

}  // namespace jobpoll
