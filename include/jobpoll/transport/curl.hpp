#pragma once
// An HTTP transport on libcurl's multi-socket API, driven by Asio: curl's
// sockets and timer run on the caller's io_context, with no thread of its own.
// The options are `curl_options` (transport/curl_options.hpp, included here);
// the engine is detail::curl_multi (transport/detail/curl_multi.hpp).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <system_error>
#include <utility>

#include "jobpoll/detail/asio_forward.hpp"

#include "jobpoll/http.hpp"
#include "jobpoll/transport.hpp"
#include "jobpoll/transport/curl_options.hpp"
#include "jobpoll/transport/detail/curl_error.hpp"
#include "jobpoll/transport/detail/curl_multi.hpp"
#include "jobpoll/transport/detail/curl_request.hpp"

namespace jobpoll {

/// The error category of libcurl's `CURLcode` values, named "curl"; a
/// code's message is `curl_easy_strerror`. Codes compare equal to the
/// `std::errc` conditions that say what kind of failure they are:
/// - couldn't connect: `connection_refused`; send/receive errors, an empty
///   reply, a truncated body, an HTTP/2 stream reset: `connection_reset`
///   (the core retries these);
/// - couldn't resolve host or proxy: no condition, so not transient: a
///   mistyped host name fails at once instead of being retried until the deadline;
/// - TLS: certificate verification `permission_denied`, handshake
///   `protocol_error`, unreadable local certificate files `invalid_argument`;
/// - malformed URL, unsupported scheme: `invalid_argument`.
inline const std::error_category& curl_category() noexcept { return detail::curl_category_instance(); }

/// An HTTP(S) client for `jobpoll::transport`: libcurl's multi-socket API
/// with its sockets and timer on the io_context of the executor it is given,
/// no thread of its own. One multi handle per transport: requests to the
/// same host reuse connections (HTTP/1.1 keep-alive, HTTP/2 multiplexing).
/// At most `curl_options::max_active_transfers` requests are handed to
/// libcurl at once; the others wait in the transport's own FIFO queue, at a
/// cost per request that does not grow with the queue, holding no libcurl
/// handle (easy handles exist only for active transfers, from a small pool).
/// Every request is sent at most once: libcurl's own re-send of a request on
/// a reused connection that turns out closed is refused (see `async_request`).
/// Redirects are not followed (a 3xx is a response); every encoding curl can
/// decode is accepted.
///
/// Thread safety: `async_request`, the counters and `get_executor` may be
/// called from any thread; all work on the multi handle runs on one strand
/// of the executor. The transport must be destroyed before its execution context.
class curl_transport {
 public:
  using executor_type = asio::any_io_executor;

  /// A transport whose I/O runs on `ex`. Throws `std::invalid_argument` for
  /// bad options, `std::system_error` (curl category) if libcurl cannot be initialised.
  curl_transport(executor_type ex, curl_options options)
      : core_(std::make_shared<detail::curl_multi>(ex, detail::validated(std::move(options)))) {}
  /// With default options. Not a default argument: g++ 12 frees an aggregate
  /// default argument twice when the call sits in an expression with a
  /// co_await (`curl_transport t(co_await this_coro::executor);`).
  explicit curl_transport(executor_type ex) : curl_transport(std::move(ex), curl_options{}) {}

  curl_transport(const curl_transport&) = delete;
  curl_transport& operator=(const curl_transport&) = delete;

  /// A moved-from transport may only be destroyed or assigned to.
  curl_transport(curl_transport&& other) noexcept = default;
  curl_transport& operator=(curl_transport&& other) noexcept {
    if (this != &other) {
      curl_transport old(std::move(*this));
      core_ = std::move(other.core_);
    }
    return *this;
  }

  /// Every request in flight completes with `asio::error::operation_aborted`
  /// (posted to its handler's executor, once the strand gets to it), and its
  /// connection is closed; cached connections are closed. Socket and timer
  /// handlers still queued find the transport gone and do nothing.
  ~curl_transport() {
    if (!core_) return;
    const detail::curl_multi::strand_type strand = core_->strand();
    asio::post(strand, [core = std::move(core_)] { core->shutdown(); });
  }

  /// Sends `request` and completes with `void(error_code, http_response)`:
  /// - any status the server answers with, 4xx and 5xx included, is a
  ///   response with its headers (those of the final response, after any
  ///   1xx) and body; a 3xx is not followed;
  /// - the request waits in the transport's queue (FIFO) while
  ///   `max_active_transfers` others are being exchanged;
  /// - the exchange must end within `request.timeout` (the options'
  ///   `default_timeout` when empty), counted from when the request leaves
  ///   the queue for libcurl, else `asio::error::timed_out`; a zero or
  ///   negative timeout completes so without sending anything;
  /// - `request.deadline`, counted from this call, bounds it all: a request
  ///   still queued then completes with `errc::not_sent` (never sent); one
  ///   being exchanged then fails with `asio::error::timed_out` (`on_error`
  ///   says the deadline ended it). Without a deadline, a request waits in the
  ///   queue at most its timeout, then completes with `errc::not_sent`;
  /// - sent at most once: when libcurl would re-send the request by itself (a
  ///   reused keep-alive connection closed without an answer, an HTTP/2
  ///   stream refused or a GOAWAY), the request fails instead with an error
  ///   equivalent to `std::errc::connection_reset` (the server may have seen
  ///   it), and the caller's retry rules decide;
  /// - a body larger than `max_response_bytes`, headers larger than
  ///   `max_header_bytes` or one header line over libcurl's 100 KB:
  ///   `std::errc::message_size`;
  /// - other failures: a `curl_category()` code (see there for the `std::errc`
  ///   each is equivalent to);
  /// - cancellation through the token's cancellation slot (terminal, partial
  ///   or total) removes the request from the queue (never sent) or from curl
  ///   at once and completes with `asio::error::operation_aborted` (a
  ///   response that completed first wins).
  /// The completion is always posted to the handler's associated executor
  /// (the transport's by default), never run inside this call. Headers are
  /// sent as given; curl adds Host, Accept, User-Agent, Content-Length and
  /// Accept-Encoding unless given, and never "Expect: 100-continue" or a
  /// guessed Content-Type. Throws `std::invalid_argument` for a method or
  /// header name that is not an HTTP token, a header value with CR, LF or
  /// NUL, or a HEAD request with a body (a bad URL is curl's
  /// `CURLE_URL_MALFORMAT`). Works with every completion token.
  ///
  /// @par Completion Signature
  /// `void(error_code, http_response)`; with `asio::use_awaitable`,
  /// `co_await` yields the `http_response` or throws `std::system_error`.
  ///
  /// @par Per-Operation Cancellation
  /// Terminal, partial and total, at any time until the completion is
  /// posted: `asio::error::operation_aborted`. A request still in the
  /// transport's queue is never sent. One handed to libcurl is removed from
  /// the multi handle and its connection closed unless its exchange had
  /// finished: the server may already have the request, or part of it, and
  /// acts on it as it will (a submit may create the job); nothing is sent to
  /// undo it. Emit the signal where the handler runs (its associated executor).
  ///
  /// @par Errors
  /// `asio::error::timed_out`, `errc::not_sent`, `std::errc::message_size`,
  /// `asio::error::operation_aborted` (cancelled, or the transport
  /// destroyed), a `connection_reset`-equivalent code for a refused re-send,
  /// and `curl_category()` codes; `std::invalid_argument` thrown from this
  /// call for a malformed request.
  ///
  /// No default completion token: the executor type is
  /// `asio::any_io_executor`, whose `asio::default_completion_token_t` is
  /// `void` in Asio 1.22.
  template <class CompletionToken>
  auto async_request(http_request request, CompletionToken&& token) {
    detail::validate_request(request);
    return asio::async_initiate<CompletionToken, void(error_code, http_response)>(
        [core = core_.get()](auto handler, http_request r) { core->start(std::move(handler), std::move(r)); }, token,
        std::move(request));
  }

  /// Requests started and not completed yet (their completion not yet posted).
  std::size_t in_flight() const noexcept { return core_->in_flight(); }

  /// Requests waiting in the transport's queue for libcurl to have room (a
  /// request counts once the transport's strand has taken it from
  /// `async_request`). A snapshot: other threads may change it at once.
  std::size_t queued() const noexcept { return core_->queued(); }

  /// Requests handed to libcurl and not finished: never more than
  /// `max_active_transfers()`. A snapshot, like `queued()`.
  std::size_t active() const noexcept { return core_->active(); }

  /// The cap on `active()` now: `curl_options::max_active_transfers`, or
  /// the value derived from the options when that is 0 (which grows to
  /// connections × streams once a server has answered over HTTP/2).
  std::size_t max_active_transfers() const noexcept { return core_->max_active(); }

  /// Sockets opened for connections so far (each attempt counts, e.g. both
  /// address families when a host has two). Requests that reuse a cached
  /// connection open none.
  std::uint64_t connections_opened() const noexcept { return core_->connections_opened(); }

  /// The largest response body accepted (`curl_options::max_response_bytes`).
  std::size_t max_response_bytes() const noexcept { return core_->max_response_bytes(); }
  /// The largest block of response headers accepted (`curl_options::max_header_bytes`).
  std::size_t max_header_bytes() const noexcept { return core_->max_header_bytes(); }

  /// The executor given to the constructor: the I/O runs on a strand of it,
  /// and completions run on it unless their handler has its own.
  executor_type get_executor() const noexcept { return core_->executor(); }

 private:
  std::shared_ptr<detail::curl_multi> core_;
};

static_assert(transport<curl_transport>);

}  // namespace jobpoll
