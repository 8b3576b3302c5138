#pragma once
// What an HTTP status says about an answer before its body is read: 429 and
// 5xx are worth retrying (after the Retry-After wait, when there is one), a
// 404 or 410 on a poll means the job handle is gone, every other non-2xx is
// permanent. Plain functions of a response: no Asio, no codec.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "jobpoll/error.hpp"
#include "jobpoll/http.hpp"
#include "jobpoll/poll_status.hpp"
#include "jobpoll/retry_after.hpp"

namespace jobpoll {

/// Which request of a job's life a response answers.
enum class request_role {
  submit,  ///< the request that creates the job
  poll,    ///< a status request for an existing job handle
  fetch,   ///< a request for the result (or one page of it)
  cancel,  ///< the request that cancels the job
};

namespace detail {

/// describe(response) with " (note)" after the status: "HTTP 503 (note), body: ...".
inline std::string describe_with_note(const http_response& response, std::string_view note) {
  std::string out = jobpoll::describe(response);
  if (note.empty()) return out;
  const std::size_t status_end = std::string_view{"HTTP "}.size() + std::to_string(response.status).size();
  return out.insert(status_end, " (" + std::string{note} + ")");
}

}  // namespace detail

/// The wait the response's Retry-After header asks for (RFC 9110 §10.2.3:
/// delay-seconds, or an HTTP-date measured from `now`; see
/// `parse_retry_after`), whatever the status; none when there is no such
/// header or its value is neither. For a 2xx that says "not yet, come back
/// in N seconds" (a 202 with Retry-After).
inline std::optional<std::chrono::nanoseconds> retry_after_hint(
    const http_response& response, std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) {
  const auto value = response.headers.find("Retry-After");
  if (!value) return std::nullopt;
  const auto wait = parse_retry_after(*value, now);
  if (!wait) return std::nullopt;
  return std::chrono::nanoseconds{*wait};  // parse_retry_after saturates at a wait nanoseconds can hold
}

/// Classifies a response by its HTTP status alone, for a request in `role`:
///
/// - 2xx: none, the body decides;
/// - 429: transient `errc::rate_limited`;
/// - 5xx (every one, 500 included): transient `errc::server_error`;
/// - 404 and 410 to a poll: permanent `errc::expired_handle`;
/// - every other 4xx, and 404/410 to the other roles: permanent `errc::http_error`;
/// - 1xx and 3xx (redirects are not followed), and statuses outside
///   100-599: permanent `errc::http_error`, the detail saying why it was
///   unexpected.
///
/// The detail is `describe(response)` (status and body preview). On
/// transient results a Retry-After header (seconds, or an HTTP-date measured
/// from `now`) sets `retry_after`; an unparsable one is ignored and the
/// detail says so.
inline std::optional<poll_status> classify_http_status(
    const http_response& response, request_role role,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) {
  const int status = response.status;
  if (status >= 200 && status < 300) return std::nullopt;
  if (status == 429 || (status >= 500 && status < 600)) {
    const auto header = response.headers.find("Retry-After");
    const auto wait = retry_after_hint(response, now);
    std::string note;
    if (header && !wait) {
      note = "Retry-After \"" + body_preview(*header) + "\" ignored: neither seconds nor an HTTP-date";
    }
    return poll_status::transient(status == 429 ? errc::rate_limited : errc::server_error,
                                  detail::describe_with_note(response, note), wait);
  }
  if ((status == 404 || status == 410) && role == request_role::poll) {
    return poll_status::permanent(errc::expired_handle, describe(response));
  }
  if (status >= 400 && status < 500) return poll_status::permanent(errc::http_error, describe(response));
  if (status >= 300 && status < 400) {
    std::string note = "redirects are not followed";
    if (const auto location = response.headers.find("Location")) note += "; Location: " + body_preview(*location);
    return poll_status::permanent(errc::http_error, "unexpected " + detail::describe_with_note(response, note));
  }
  if (status >= 100 && status < 200) {
    return poll_status::permanent(
        errc::http_error, "unexpected " + detail::describe_with_note(response, "informational, not a final answer"));
  }
  return poll_status::permanent(errc::http_error,
                                "invalid " + detail::describe_with_note(response, "HTTP statuses are 100 to 599"));
}

}  // namespace jobpoll
