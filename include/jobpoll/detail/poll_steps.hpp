#pragma once
// What both shells of the poll loop (the composed operation of poll_op.hpp
// and the coroutine of poll_coroutine.hpp) share: classifying what a poll
// gave, and the machine's settings taken from the options.

#include <chrono>
#include <concepts>
#include <exception>
#include <string>
#include <system_error>
#include <utility>

#include "jobpoll/error.hpp"
#include "jobpoll/poll_machine.hpp"
#include "jobpoll/observer.hpp"
#include "jobpoll/poll_options.hpp"
#include "jobpoll/poll_result.hpp"
#include "jobpoll/poll_status.hpp"

namespace jobpoll::detail {

// A policy may classify transport errors itself, from the code alone or
// with the exception's text.
template <class Status>
poll_status classify_error(Status& status, const std::error_code& ec, std::string what) {
  if constexpr (requires { { status.classify_error(ec, std::move(what)) } -> std::convertible_to<poll_status>; }) {
    return status.classify_error(ec, std::move(what));
  } else if constexpr (requires { { status.classify_error(ec) } -> std::convertible_to<poll_status>; }) {
    return status.classify_error(ec);
  } else {
    if (is_transient_error(ec)) return poll_status::transient(ec, std::move(what));
    return poll_status::permanent(ec, std::move(what));
  }
}

inline std::chrono::nanoseconds since(auto start, auto now) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(now - start);
}

// Classifies one answer; a throwing status policy is a permanent error and
// the response is kept.
template <class Status, class Response>
poll_status classify_response(Status& status, const Response& response) {
  try {
    return status(response);
  } catch (const std::exception& e) {
    return poll_status::permanent(errc::poll_exception, std::string("status policy threw: ") + e.what());
  }
}

template <class Status>
poll_status classify_exception(Status& status, const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    if (auto failure = system_failure_of(e)) return detail::classify_error(status, failure->code, failure->what);
    return poll_status::permanent(errc::poll_exception, e.what());
  } catch (...) {
    return poll_status::permanent(errc::poll_exception, "poll threw a non-standard exception");
  }
}

// The settings of the machine, taken from the options (the policies are
// moved); the deadline becomes its budget when the poll starts.
template <class Clock>
poll_machine::settings machine_settings(basic_poll_options<Clock>& o) {
  return {std::move(o.interval), std::move(o.backoff), o.max_retries,
          o.hints,               o.initial_delay,      o.attempt_timeout,
          static_cast<bool>(o.limiter), o.resume};
}

// The result of a poll whose options were refused (told to `on_end`).
template <class Response>
poll_result<Response> rejection(std::string why, const poll_hooks* hooks) {
  poll_result<Response> r;
  r.error = errc::invalid_argument;
  r.message = "invalid poll options: " + why;
  if (hooks && hooks->on_end) hooks->on_end({r.error, r.status, r.stats});
  return r;
}

}  // namespace jobpoll::detail
