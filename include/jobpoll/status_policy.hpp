#pragma once
// The two things a user brings to `poll_until`: an operation that polls once,
// and a status policy that says what its answer means.

#include <concepts>
#include <functional>
#include <system_error>
#include <type_traits>
#include <utility>

#include "jobpoll/detail/asio_forward.hpp"

#include "jobpoll/poll_status.hpp"

namespace jobpoll {

namespace detail {
template <class T>
struct awaitable_value {};
template <class T>
struct awaitable_value<asio::awaitable<T, asio::any_io_executor>> {
  using type = T;
};

// What an Asio asynchronous operation completes with, read from the
// deferred operation it returns for `asio_tokens::deferred`.
template <class T>
struct async_value {};
template <class R, class... Rest>
struct async_value<asio_tokens::deferred_async_operation<void(error_code, R), Rest...>> {
  using type = std::decay_t<R>;
};

template <class P>
concept awaitable_poll = std::invocable<P&> && requires { typename awaitable_value<std::invoke_result_t<P&>>::type; } &&
                         !std::is_void_v<typename awaitable_value<std::invoke_result_t<P&>>::type>;

template <class P>
concept async_poll = !awaitable_poll<P> && requires(P& p) {
  typename async_value<decltype(p(asio_tokens::deferred))>::type;
};

template <class P>
struct poll_value {
  using type = typename async_value<decltype(std::declval<P&>()(asio_tokens::deferred))>::type;
};
template <awaitable_poll P>
struct poll_value<P> {
  using type = typename awaitable_value<std::invoke_result_t<P&>>::type;
};
}  // namespace detail

/// Polls once per call, in one of two forms:
/// - a callable returning `asio::awaitable<Response>` (`poll()`); an
///   exception it throws is one failed attempt (see `status_policy` for how
///   it is classified), and cancellation reaches it through the awaitable's
///   cancellation state;
/// - an Asio asynchronous operation: a callable taking a completion token,
///   `poll(token)`, completing with `void(error_code, Response)`; an
///   error code is one failed attempt, and cancellation reaches it through
///   the handler's cancellation slot.
template <class P>
concept poll_operation = detail::awaitable_poll<P> || detail::async_poll<P>;

/// The response type of a poll operation.
template <poll_operation P>
using poll_response_t = typename detail::poll_value<P>::type;

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
