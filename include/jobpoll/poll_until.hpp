#pragma once
// poll_until: limit -> poll -> classify -> wait, until a terminal state, the
// deadline, the retry budget or cancellation ends it. The decisions live in
// poll_schedule; this file only waits and calls.

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associator.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/cancellation_state.hpp>
#include <asio/co_spawn.hpp>
#include <asio/error.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "jobpoll/clock.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/observer.hpp"
#include "jobpoll/poll_options.hpp"
#include "jobpoll/poll_result.hpp"
#include "jobpoll/poll_schedule.hpp"
#include "jobpoll/poll_status.hpp"
#include "jobpoll/status_policy.hpp"

// g++ 12 at -O2 reports -Wmismatched-new-delete where a coroutine of this
// file ends, pairing Asio's awaitable frame allocation with its matching
// operator delete: a false positive (ASIO-NOTES), silenced for this file's
// coroutines only (job_client.hpp does the same).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace jobpoll {

namespace detail {

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
  } catch (const std::system_error& e) {
    return detail::classify_error(status, e.code(), e.what());
  } catch (const std::exception& e) {
    return poll_status::permanent(errc::poll_exception, e.what());
  } catch (...) {
    return poll_status::permanent(errc::poll_exception, "poll threw a non-standard exception");
  }
}

// Rarely taken paths live in coroutines of their own, so their state is only
// allocated while they run and the frame of a waiting poll stays small.

// One attempt raced against `timeout`: true with `response` set when the poll
// answered in time, false when the timer won (the poll is then cancelled).
template <class Clock, class Poll, class Response>
asio::awaitable<bool> poll_with_timeout(Poll& poll, std::chrono::nanoseconds timeout, std::optional<Response>& response) {
  timer_for<Clock> timer(co_await asio::this_coro::executor);
  timer.expires_after(std::chrono::ceil<typename Clock::duration>(timeout));
  auto [order, poll_error, answer, timer_error] =
      co_await asio::experimental::make_parallel_group(
          asio::co_spawn(
              timer.get_executor(), [&poll]() -> asio::awaitable<std::optional<Response>> { co_return co_await poll(); },
              asio::experimental::deferred),
          timer.async_wait(asio::experimental::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  if (order[0] == 1 && !timer_error) co_return false;
  if (poll_error) std::rethrow_exception(poll_error);
  response = std::move(answer);
  co_return true;
}

// Waits for a limiter slot that was not free at once, puts it in `permit`,
// and accounts for the wait. Once a poll has happened the wait is bounded by
// the deadline: it ends with `timeout` if the deadline comes first, and the
// abandoned wait takes nothing. A wait the limiter aborts (cancelled, or the
// limiter destroyed under it) ends with `operation_aborted`.
template <class Clock>
asio::awaitable<std::error_code> wait_for_limiter(limiter_ref limiter, const poll_schedule& schedule,
                                                  typename Clock::time_point start, bool polled, poll_stats& stats,
                                                  const poll_hooks* hooks, limiter_permit& permit) {
  const auto begin = Clock::now();
  const auto left = polled ? schedule.remaining(since(start, begin)) : std::nullopt;
  if (left && *left <= std::chrono::nanoseconds::zero()) co_return make_error_code(errc::timeout);
  if (hooks && hooks->on_wait) {
    // Told before the wait, so a user sees why nothing happens meanwhile.
    auto expected = limiter.expected_wait().value_or(std::chrono::nanoseconds::zero());
    const bool clipped = left && (expected == std::chrono::nanoseconds::zero() || *left < expected);
    hooks->on_wait({stats.attempts, wait_reason::limiter, clipped ? *left : expected, clipped});
  }
  try {
    if (!left) {
      permit = co_await limiter.acquire();
    } else {
      timer_for<Clock> timer(co_await asio::this_coro::executor);
      timer.expires_after(std::chrono::ceil<typename Clock::duration>(*left));
      auto [order, acquire_error, granted, timer_error] =
          co_await asio::experimental::make_parallel_group(
              asio::co_spawn(timer.get_executor(), limiter.acquire(), asio::experimental::deferred),
              timer.async_wait(asio::experimental::deferred))
              .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
      // A grant that raced the timer and lost is released at once, unused.
      if (order[0] == 1 && !timer_error) co_return make_error_code(errc::timeout);
      if (acquire_error) std::rethrow_exception(acquire_error);
      permit = std::move(granted);
    }
  } catch (const std::system_error& e) {
    co_return e.code();
  }
  stats.limiter_waited += since(begin, Clock::now());
  co_return std::error_code{};
}

template <bool Throw, class Response>
using poll_return_t = std::conditional_t<Throw, Response, poll_result<Response>>;

// Ends a poll: notifies `on_end`, then returns the result, or (Throw) the
// response on success and throws basic_poll_error otherwise.
template <bool Throw, class Response>
poll_return_t<Throw, Response> finish(std::error_code ec, std::string message, std::optional<Response>& response,
                                      poll_status& status, const poll_stats& stats, const poll_hooks* hooks) {
  if (hooks && hooks->on_end) hooks->on_end({ec, status, stats});
  if constexpr (Throw) {
    if (!ec) return std::move(*response);
  }
  poll_result<Response> r;
  r.error = ec;
  r.message = ec && message.empty() ? describe_end(ec, status, stats) : std::move(message);
  r.response = std::move(response);
  r.status = std::move(status);
  r.stats = stats;
  if constexpr (Throw) {
    throw basic_poll_error<Response>(std::move(r));
  } else {
    return r;
  }
}

// Options that fail validation end the poll before it starts, in a coroutine
// of their own so the frame of a real poll carries none of this.
template <bool Throw, class Response>
asio::awaitable<poll_return_t<Throw, Response>> reject(std::string why, const poll_hooks* hooks) {
  std::optional<Response> none;
  poll_status status;
  co_return finish<Throw>(errc::invalid_argument, "invalid poll options: " + why, none, status, poll_stats{}, hooks);
}

// Sits in the slot of an `async_poll_until` completion handler between the
// call and the start of the poll's coroutine. A cancellation emitted in that
// gap must neither reach the coroutine's first co_await (Asio 1.22 throws
// it out of co_spawn's entry point, past the handler, out of run()) nor be
// lost: it is kept here and ends the poll before its first attempt. Once
// the poll runs, every emission is forwarded to it.
struct cancel_gate {
  asio::cancellation_signal forward;  // the slot the spawned coroutine is bound to
  asio::cancellation_type early = asio::cancellation_type::none;
  bool started = false;

  // The poll has started: forward from now on; returns what came before.
  asio::cancellation_type open() noexcept {
    started = true;
    return early;
  }
};

// The handler installed in the caller's slot; the gate is shared with the
// completion handler, which outlives every emission it forwards.
struct cancel_gate_handler {
  std::shared_ptr<cancel_gate> gate;
  void operator()(asio::cancellation_type type) const {
    if (gate->started) {
      gate->forward.emit(type);
    } else {
      gate->early |= type;
    }
  }
};

// The whole poll as one coroutine, so a poll waiting between attempts holds
// one frame (plus its timer wait) and nothing else. The decisions are
// poll_schedule's; this only waits, calls and reports.
template <bool Throw, class Clock, class Poll, class Status>
asio::awaitable<poll_return_t<Throw, poll_response_t<Poll>>> run_poll(Poll poll, Status status,
                                                                     basic_poll_options<Clock> options,
                                                                     cancel_gate* gate) {
  const auto start = Clock::now();
  std::optional<poll_response_t<Poll>> response;  // the last answer received
  poll_status last;                               // the last classification
  poll_stats stats;
  const poll_hooks* const hooks = options.hooks;
  // Only an entry point (it has a gate) may widen its filter: in a nested
  // call the cancellation state is the caller's.
  bool cancelled_early = false;
  if (gate) {
    co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
    cancelled_early = gate->open() != asio::cancellation_type::none;
  }
  const asio::cancellation_state cancel_state = co_await asio::this_coro::cancellation_state;
  const auto cancelled = [&] { return cancelled_early || cancel_state.cancelled() != asio::cancellation_type::none; };

  poll_schedule schedule(std::move(options.interval), std::move(options.backoff), options.max_retries,
                         options.deadline.budget_from(start), options.hints);
  schedule.resume(options.resume);
  stats.attempts = options.resume.attempts;
  // Read the clock after each poll only when someone needs the time.
  const bool timed = schedule.remaining(std::chrono::nanoseconds::zero()) || hooks;
  std::optional<timer_for<Clock>> timer;  // created on the first real wait
  std::error_code ec;
  try {
    poll_decision next = schedule.start(options.initial_delay);
    for (;;) {
      if (next.wait > std::chrono::nanoseconds::zero()) {
        if (hooks && hooks->on_wait) hooks->on_wait({stats.attempts, next.reason, next.wait, next.clipped});
        if (!timer) timer.emplace(co_await asio::this_coro::executor);
        timer->expires_after(std::chrono::ceil<typename Clock::duration>(next.wait));
        // A cancelled wait throws; the handler below turns that into operation_aborted.
        co_await timer->async_wait(asio::use_awaitable);
        stats.waited += next.wait;
      } else if (stats.attempts > options.resume.attempts) {
        // Yield even with a zero wait, so one poller cannot starve its executor.
        co_await asio::post(asio::use_awaitable);
      }
      if (cancelled()) {
        ec = asio::error::operation_aborted;
        break;
      }

      // The slot is held until the attempt's outcome is known, so the
      // request counts against the budget when the server has surely seen it.
      limiter_permit permit;
      if (options.limiter && !(permit = options.limiter.try_acquire())) {
        ec = co_await wait_for_limiter<Clock>(options.limiter, schedule, start,
                                             stats.attempts > options.resume.attempts, stats, hooks, permit);
        if (ec) break;
      }

      ++stats.attempts;
      std::exception_ptr failure;
      bool answered = true;
      try {
        if (options.attempt_timeout) {
          answered = co_await poll_with_timeout<Clock>(poll, *options.attempt_timeout, response);
        } else {
          response.emplace(co_await poll());
        }
      } catch (...) {
        failure = std::current_exception();
      }
      permit.release();
      if (cancelled()) {
        ec = asio::error::operation_aborted;
        break;
      }
      if (failure) {
        last = classify_exception(status, failure);
      } else if (!answered) {
        last = poll_status::transient(errc::attempt_timeout,
                                            "no answer within " + format_seconds(*options.attempt_timeout));
      } else {
        last = classify_response(status, std::as_const(*response));
      }

      const auto elapsed = timed ? since(start, Clock::now()) : std::chrono::nanoseconds::zero();
      if (hooks && hooks->on_poll) hooks->on_poll({stats.attempts, last, elapsed});
      if (options.limiter && last.state == job_state::transient_error && last.retry_after)
        options.limiter.pause_for(schedule.bounded_hint(*last.retry_after));
      next = schedule.after_poll(last, elapsed);
      if (next.finish) {
        ec = next.error;
        break;
      }
    }
  } catch (const std::system_error&) {
    // After a cancellation Asio throws from the next co_await; anything else
    // is a bug worth seeing.
    if (!cancelled()) throw;
    ec = asio::error::operation_aborted;
  }
  stats.elapsed = since(start, Clock::now());
  stats.pending_polls = schedule.pending_polls();
  stats.transient_failures = schedule.transient_failures();
  stats.consecutive_failures = schedule.consecutive_failures();
  co_return finish<Throw>(ec, {}, response, last, stats, hooks);
}

// Adapts co_spawn's `void(std::exception_ptr, poll_result<R>)` to the public
// `void(std::error_code, poll_result<R>)`, keeping the handler's associations.
template <class Handler, class Response>
struct result_handler {
  Handler handler;
  std::shared_ptr<cancel_gate> gate;  // set when the handler has a cancellation slot
  void operator()(std::exception_ptr e, poll_result<Response> r) {
    // The operation is over: its handler leaves the caller's slot, as Asio's own operations' do.
    if (gate) asio::get_associated_cancellation_slot(handler).clear();
    if (e) std::rethrow_exception(e);  // only a hook's or the runtime's exception gets here
    const std::error_code ec = r.error;
    std::move(handler)(ec, std::move(r));
  }
};

}  // namespace detail

/// Polls until the job reaches a terminal state and returns the final response.
///
/// Each round: wait (initial delay, interval, backoff or server hint), acquire
/// the limiter if any, call `poll()`, classify its response with `status`.
/// At least one poll always happens; the deadline is checked after each poll
/// and the last wait is clipped so a final poll lands on the deadline.
///
/// Returns an `asio::awaitable<Response>` giving the response that `status`
/// called succeeded. Throws
/// `basic_poll_error<Response>` (a `poll_error`, a `std::system_error`) with
/// `errc::job_failed` (the failure payload is `last_response()`),
/// `errc::timeout`, `errc::retries_exhausted`, a permanent error code
/// (`decode_error`, `http_error`, ...), `errc::invalid_argument` for bad
/// options, or `asio::error::operation_aborted` when cancelled.
///
/// @par Per-Operation Cancellation
/// Terminal, through the awaiting coroutine's cancellation slot (e.g. `||`
/// with a timer): ends any wait, limiter wait or poll in progress. In a
/// coroutine that is already cancelled, Asio itself throws a plain
/// `std::system_error(operation_aborted)` at the `co_await`, before the poll
/// starts; with `this_coro::throw_if_cancelled(false)` the poll starts and
/// throws `poll_error(operation_aborted)` before any attempt.
template <poll_operation Poll, status_policy<poll_response_t<Poll>> Status, clock Clock = std::chrono::steady_clock>
auto poll_until(Poll poll, Status status, basic_poll_options<Clock> options = {}) {
  if (auto why = options.invalid_reason()) return detail::reject<true, poll_response_t<Poll>>(std::move(*why), options.hooks);
  return detail::run_poll<true>(std::move(poll), std::move(status), std::move(options), nullptr);
}

/// `poll_until` without exceptions for a poll that ends without success:
/// returns an `asio::awaitable<poll_result<Response>>` whose `error` is empty
/// on success and otherwise says why (the same codes `poll_until` throws),
/// with the last response, status, stats and message in every case. Only a
/// hook's exception escapes. Cancelled as `poll_until` is.
template <poll_operation Poll, status_policy<poll_response_t<Poll>> Status, clock Clock = std::chrono::steady_clock>
auto try_poll_until(Poll poll, Status status, basic_poll_options<Clock> options = {}) {
  if (auto why = options.invalid_reason()) return detail::reject<false, poll_response_t<Poll>>(std::move(*why), options.hooks);
  return detail::run_poll<false>(std::move(poll), std::move(status), std::move(options), nullptr);
}

/// `poll_until` for any Asio completion token: the poll runs as a coroutine
/// spawned on `ex`, and the handler receives
/// `void(std::error_code, poll_result<Response>)`: the error is empty on
/// success, and the result always carries the last response, status, stats
/// and a message. Works with callbacks, `use_future`, `use_awaitable`,
/// `experimental::deferred` and `experimental::as_tuple(use_awaitable)`.
/// With `use_future` and `use_awaitable` a failure becomes a
/// `std::system_error` holding only the code; take the callback or
/// `as_tuple` form (or `poll_until`) to keep the last response.
///
/// @par Completion Signature
/// `void(std::error_code, jobpoll::poll_result<Response>)`
///
/// @par Per-Operation Cancellation
/// The token's cancellation slot cancels the poll (`operation_aborted`),
/// whether the signal is terminal, partial or total, and also when it is
/// emitted after this call but before the poll's coroutine first runs (the
/// poll then ends before its first attempt). The handler leaves the slot
/// cleared.
template <class Executor, poll_operation Poll, status_policy<poll_response_t<Poll>> Status, clock Clock,
          class CompletionToken>
auto async_poll_until(const Executor& ex, Poll poll, Status status, basic_poll_options<Clock> options,
                      CompletionToken&& token) {
  using response_type = poll_response_t<Poll>;
  return asio::async_initiate<CompletionToken, void(std::error_code, poll_result<response_type>)>(
      [](auto handler, const Executor& ex, Poll poll, Status status, basic_poll_options<Clock> options) {
        auto slot = asio::get_associated_cancellation_slot(handler);
        if (!slot.is_connected()) {
          detail::result_handler<decltype(handler), response_type> done{std::move(handler), nullptr};
          if (auto why = options.invalid_reason()) {
            asio::co_spawn(ex, detail::reject<false, response_type>(std::move(*why), options.hooks), std::move(done));
          } else {
            asio::co_spawn(ex, detail::run_poll<false>(std::move(poll), std::move(status), std::move(options), nullptr),
                           std::move(done));
          }
          return;
        }
        // The coroutine listens to the gate, never to the caller's slot directly (see cancel_gate).
        auto gate = std::make_shared<detail::cancel_gate>();
        slot.template emplace<detail::cancel_gate_handler>(detail::cancel_gate_handler{gate});
        auto forward = gate->forward.slot();
        detail::cancel_gate* const opened = gate.get();
        auto done = asio::bind_cancellation_slot(
            forward, detail::result_handler<decltype(handler), response_type>{std::move(handler), std::move(gate)});
        if (auto why = options.invalid_reason()) {
          asio::co_spawn(ex, detail::reject<false, response_type>(std::move(*why), options.hooks), std::move(done));
        } else {
          asio::co_spawn(ex, detail::run_poll<false>(std::move(poll), std::move(status), std::move(options), opened),
                         std::move(done));
        }
      },
      token, ex, std::move(poll), std::move(status), std::move(options));
}

}  // namespace jobpoll

template <template <class, class> class Associator, class Handler, class Response, class DefaultCandidate>
struct asio::associator<Associator, jobpoll::detail::result_handler<Handler, Response>, DefaultCandidate> {
  using type = typename Associator<Handler, DefaultCandidate>::type;
  static type get(const jobpoll::detail::result_handler<Handler, Response>& h,
                  const DefaultCandidate& c = DefaultCandidate()) noexcept {
    return Associator<Handler, DefaultCandidate>::get(h.handler, c);
  }
};

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
