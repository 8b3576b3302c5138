#pragma once
// The two things a user brings to `poll_until`: an operation that polls once,
// and a status policy that says what its answer means.

#include <concepts>
#include <functional>
#include <system_error>
#include <type_traits>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "jobpoll/poll_status.hpp"

namespace jobpoll {

namespace detail {
template <class T>
struct awaitable_value {};
template <class T>
struct awaitable_value<asio::awaitable<T, asio::any_io_executor>> {
  using type = T;
};
}  // namespace detail

/// A callable that starts one poll and returns `asio::awaitable<Response>`.
/// It is called once per attempt; an exception it throws is one failed
/// attempt (see `status_policy` for how it is classified). Cancellation
/// reaches it through the awaitable's cancellation state.
template <class P>
concept poll_operation = std::invocable<P&> && requires { typename detail::awaitable_value<std::invoke_result_t<P&>>::type; } &&
                         !std::is_void_v<typename detail::awaitable_value<std::invoke_result_t<P&>>::type>;

/// The response type of a poll operation.
template <poll_operation P>
using poll_response_t = typename detail::awaitable_value<std::invoke_result_t<P&>>::type;

/// Classifies one response: callable as `poll_status(const Response&)`.
///
/// Optionally, a member `poll_status classify_error(const std::error_code&)`
/// (or `classify_error(const std::error_code&, std::string what)`, which also
/// gets the exception's `what()`) classifies a poll that threw
/// `std::system_error`; without it, network
/// errors (reset, refused, aborted, timed out, unreachable, end of stream,
/// per-attempt timeout) are transient and the rest permanent.
template <class S, class Response>
concept status_policy = std::is_invocable_r_v<poll_status, S&, const Response&>;

}  // namespace jobpoll
