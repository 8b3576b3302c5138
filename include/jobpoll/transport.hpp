#pragma once
// The transport concept: sends one request, delivers one response.

#include <concepts>
#include <utility>

#include "jobpoll/detail/asio_forward.hpp"

#include "jobpoll/http.hpp"

namespace jobpoll {

/// Sends one HTTP request and delivers one response, asynchronously:
/// `t.async_request(http_request, token)` with completion signature
/// `void(error_code, http_response)`, usable at least with
/// `asio::use_awaitable`.
///
/// Contract that job clients rely on:
/// - any HTTP status is a response, not an error;
/// - a request that outlives `request.timeout` fails with
///   `asio::error::timed_out`; one whose `request.deadline` passes fails with
///   `asio::error::timed_out`, or with `errc::not_sent` when the transport
///   had not sent it yet (then the server surely never saw it);
/// - a request is sent at most once: a transport never re-sends it on its
///   own (e.g. on a reused connection that turns out closed); it fails
///   instead, and the caller's retry rules decide;
/// - network failures are error codes that `error_is` matches to the
///   `std::errc` values the core treats as transient (connection_refused,
///   connection_reset, ...), so `is_transient_error` classifies them without
///   knowing the transport (Asio's own codes compare equal to `std::errc`
///   conditions only through `error_is` in Asio 1.22);
/// - cancellation through the token's cancellation slot (terminal) abandons
///   the request at once and completes with `asio::error::operation_aborted`;
/// - the handler is never invoked from inside `async_request`.
///
/// @par Completion Signature
/// `void(error_code, http_response)`: an empty error with the response
/// (whatever its HTTP status), or an error with an empty response.
///
/// @par Per-Operation Cancellation
/// At least terminal (the type a coroutine's `co_spawn` filter lets
/// through, which is what jobpoll's loop relies on); jobpoll's own
/// transports honour terminal, partial and total. Completes with
/// `asio::error::operation_aborted`. What happens remotely: a request not
/// yet sent is never sent; one already (partly) sent may have reached the
/// server, and cancelling it does not undo what the server does with it:
/// the caller's retry rules (e.g. `job_client::submit`'s) decide what a
/// cancelled request means.
///
/// @par Errors
/// `asio::error::timed_out`, `errc::not_sent`, `asio::error::operation_aborted`
/// and network errors as above; the transport's own codes otherwise (see
/// each transport).
template <class T>
concept transport = requires(T& t, http_request request) {
  { t.async_request(std::move(request), asio::use_awaitable) } -> std::same_as<asio::awaitable<http_response>>;
};

}  // namespace jobpoll
