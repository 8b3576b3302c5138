#pragma once
// What a status policy says about one poll response.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "jobpoll/error.hpp"

namespace jobpoll {

/// The classification of one poll attempt.
enum class job_state {
  pending,          ///< the job is still running: wait the interval and poll again
  succeeded,        ///< terminal: the job is done, the response holds the result
  failed,           ///< terminal: the job failed, the response holds its payload
  transient_error,  ///< the attempt failed in a way worth retrying (429, 5xx, reset, attempt timeout)
  permanent_error,  ///< the attempt failed in a way retrying cannot fix (4xx, undecodable body)
};

/// The enumerator's name, e.g. "transient_error" (for logs and messages).
inline std::string_view to_string(job_state s) noexcept {
  switch (s) {
    case job_state::pending: return "pending";
    case job_state::succeeded: return "succeeded";
    case job_state::failed: return "failed";
    case job_state::transient_error: return "transient_error";
    case job_state::permanent_error: return "permanent_error";
  }
  return "invalid";
}

/// The verdict of a status policy on one response (or on one failed attempt).
///
/// `detail` says in words what was received ("status \"working\"", "HTTP 503:
/// <body start>") and ends up in error messages; `retry_after` is a server
/// hint for the next wait (Retry-After, an estimated-seconds field, ...).
struct poll_status {
  job_state state = job_state::pending;
  std::error_code error;                            ///< why, for failed / transient / permanent
  std::string detail;                               ///< what was received, for humans
  std::optional<double> progress;                   ///< 0..1 when the server reports it
  std::optional<std::chrono::nanoseconds> retry_after;  ///< server hint for the next wait

  static poll_status pending(std::optional<double> progress = {}, std::string detail = {}) {
    return {job_state::pending, {}, std::move(detail), progress, {}};
  }
  static poll_status succeeded(std::string detail = {}) {
    return {job_state::succeeded, {}, std::move(detail), 1.0, {}};
  }
  static poll_status failed(std::string detail = {}) {
    return {job_state::failed, errc::job_failed, std::move(detail), {}, {}};
  }
  static poll_status transient(std::error_code ec, std::string detail = {},
                               std::optional<std::chrono::nanoseconds> retry_after = {}) {
    return {job_state::transient_error, ec, std::move(detail), {}, retry_after};
  }
  static poll_status permanent(std::error_code ec, std::string detail = {}) {
    return {job_state::permanent_error, ec, std::move(detail), {}, {}};
  }

  /// Adds a server wait hint (chainable): `poll_status::pending().with_hint(5s)`.
  poll_status&& with_hint(std::chrono::nanoseconds hint) && {
    retry_after = hint;
    return std::move(*this);
  }

  bool terminal() const noexcept {
    return state == job_state::succeeded || state == job_state::failed ||
           state == job_state::permanent_error;
  }
};

}  // namespace jobpoll
