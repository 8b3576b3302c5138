#pragma once
// poll_until: limit -> poll -> classify -> wait, until a terminal state, the
// deadline, the retry budget or cancellation ends it. The decisions are
// poll_machine's (poll_machine.hpp); two thin shells carry them out: a
// composed operation (detail/poll_op.hpp) for any completion token, and a
// coroutine (detail/poll_coroutine.hpp) for callers that are coroutines
// already, which awaits an awaitable poll in place.

#include <chrono>
#include <system_error>
#include <utility>

#include "jobpoll/detail/asio_forward.hpp"

#include "jobpoll/clock.hpp"
#include "jobpoll/detail/poll_coroutine.hpp"
#include "jobpoll/detail/poll_op.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/observer.hpp"
#include "jobpoll/poll_machine.hpp"
#include "jobpoll/poll_options.hpp"
#include "jobpoll/poll_result.hpp"
#include "jobpoll/poll_status.hpp"
#include "jobpoll/status_policy.hpp"

namespace jobpoll {

/// Polls until the job reaches a terminal state and returns the final response.
///
/// Each round: wait (initial delay, interval, backoff or server hint), take a
/// limiter slot if there is a limiter, poll once, classify the answer with
/// `status`; the rules are `poll_machine`'s. At least one poll always
/// happens; the deadline is checked after each poll and the last wait is
/// clipped so a final poll lands on the deadline. `poll` is an awaitable
/// poll or an Asio asynchronous operation (see `poll_operation`).
///
/// @par Completion Signature
/// `co_await` yields the `Response` that `status` called succeeded, or throws
/// `basic_poll_error<Response>` (a `poll_error`, a `std::system_error`;
/// `last_response()` holds the last answer) with:
/// - `errc::job_failed` (the failure payload is `last_response()`);
/// - `errc::timeout`: the deadline passed;
/// - `errc::retries_exhausted`: more transient failures in a row than `max_retries`;
/// - a permanent error's code (`decode_error`, `http_error`, `expired_handle`, ...);
/// - `errc::invalid_argument`: options refused before any attempt;
/// - `asio::error::operation_aborted`: cancelled.
///
/// @par Per-Operation Cancellation
/// Through the awaiting coroutine's cancellation state (e.g. `||` with a
/// timer): the types its filter lets through (terminal by default) end any
/// wait, limiter wait or poll in progress; the poll in progress is cancelled
/// (terminal) and its answer, if it comes, is not classified. Nothing is
/// sent to the server: a remote job keeps running (`job_client` decides
/// whether to cancel it remotely). In a coroutine that is already
/// cancelled, Asio throws a plain `std::system_error(operation_aborted)` at
/// the `co_await`, before the poll starts; with
/// `this_coro::throw_if_cancelled(false)` the poll starts and throws
/// `poll_error(operation_aborted)` before any attempt.
template <poll_operation Poll, status_policy<poll_response_t<Poll>> Status, clock Clock = std::chrono::steady_clock>
asio::awaitable<poll_response_t<Poll>> poll_until(Poll poll, Status status, basic_poll_options<Clock> options = {}) {
  if (auto why = options.invalid_reason())
    return detail::rejected<true, poll_response_t<Poll>>(std::move(*why), options.hooks);
  return detail::start_poll<true>(std::move(poll), std::move(status), std::move(options));
}

/// `poll_until` without exceptions for a poll that ends without success.
///
/// @par Completion Signature
/// `co_await` yields `poll_result<Response>`: `error` is empty on success
/// and otherwise holds the code `poll_until` would throw, with the last
/// response, status, stats and message in every case. Only a hook's
/// exception escapes.
///
/// @par Per-Operation Cancellation
/// As `poll_until`; a cancelled poll yields `error == operation_aborted`.
template <poll_operation Poll, status_policy<poll_response_t<Poll>> Status, clock Clock = std::chrono::steady_clock>
asio::awaitable<poll_result<poll_response_t<Poll>>> try_poll_until(Poll poll, Status status,
                                                                   basic_poll_options<Clock> options = {}) {
  if (auto why = options.invalid_reason())
    return detail::rejected<false, poll_response_t<Poll>>(std::move(*why), options.hooks);
  return detail::start_poll<false>(std::move(poll), std::move(status), std::move(options));
}

/// `poll_until` as an Asio asynchronous operation, for any completion token:
/// callbacks, `use_future`, `use_awaitable`, `experimental::deferred`,
/// `experimental::as_tuple(use_awaitable)`. A composed operation over
/// `poll_machine`: while it waits, the poll is one allocation (made with
/// the handler's associated allocator) and its timer wait; nothing runs
/// inside this call (the first step is posted to `ex`); its steps (the poll,
/// the status policy, the hooks) run on `ex`, the handler on its associated
/// executor (default: `ex`), which is kept busy until then.
/// With `use_future` and `use_awaitable` a failure becomes a
/// `std::system_error` holding only the code; take the callback or
/// `as_tuple` form (or `poll_until`) to keep the last response.
///
/// @par Completion Signature
/// `void(error_code, jobpoll::poll_result<Response>)`: the error is
/// empty on success and otherwise one of `poll_until`'s codes; the result
/// always carries the last response, status, stats and a message.
///
/// @par Per-Operation Cancellation
/// The token's cancellation slot cancels the poll (`operation_aborted`),
/// whether the signal is terminal, partial or total, also when it is
/// emitted after this call but before the first step runs (the poll then
/// ends before its first attempt). A poll in progress is cancelled
/// (terminal) and a limiter wait gives its slot back unused; nothing is sent
/// to the server. The handler leaves the slot cleared.
template <class Executor, poll_operation Poll, status_policy<poll_response_t<Poll>> Status, clock Clock,
          class CompletionToken = asio::default_completion_token_t<Executor>>
auto async_poll_until(const Executor& ex, Poll poll, Status status, basic_poll_options<Clock> options,
                      CompletionToken&& token = asio::default_completion_token_t<Executor>()) {
  return asio::async_initiate<CompletionToken, void(error_code, poll_result<poll_response_t<Poll>>)>(
      detail::initiate_poll_until<Executor>{ex}, token, std::move(poll), std::move(status), std::move(options));
}

}  // namespace jobpoll
