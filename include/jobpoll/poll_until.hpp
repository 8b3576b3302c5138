#pragma once
// poll_until: limit -> poll -> classify -> wait, until a terminal state, the
// deadline, the retry budget or cancellation ends it. The decisions live in
// poll_schedule; this file only waits and calls.

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include <asio/associator.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/cancellation_state.hpp>
#include <asio/co_spawn.hpp>
#include <asio/error.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
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

namespace jobpoll {

/// Whether a failed attempt with this code is worth retrying by default:
/// network errors (reset, refused, aborted, timed out, unreachable, broken
/// pipe, end of stream) and jobpoll's own transient codes.
inline bool is_transient_error(const std::error_code& ec) noexcept {
  if (ec == errc::attempt_timeout || ec == errc::rate_limited || ec == errc::server_error) return true;
  if (ec == asio::error::eof) return true;
  for (std::errc e : {std::errc::connection_reset, std::errc::connection_refused, std::errc::connection_aborted,
                      std::errc::timed_out, std::errc::broken_pipe, std::errc::network_unreachable,
                      std::errc::network_down, std::errc::network_reset, std::errc::host_unreachable,
                      std::errc::not_connected, std::errc::resource_unavailable_try_again}) {
    if (ec == e) return true;
  }
  return false;
}

namespace detail {

template <class Status>
poll_status classify_error(Status& status, const std::error_code& ec, std::string what) {
  if constexpr (requires { { status.classify_error(ec) } -> std::convertible_to<poll_status>; }) {
    return status.classify_error(ec);
  } else {
    if (is_transient_error(ec)) return poll_status::transient(ec, std::move(what));
    return poll_status::permanent(ec, std::move(what));
  }
}

// One poll from start to end. Lives in the frame of the coroutine that runs
// it; its member coroutines are awaited directly, so `this` outlives them.
template <class Clock, class Poll, class Status>
class poll_loop {
 public:
  using response_type = poll_response_t<Poll>;
  using result_type = poll_result<response_type>;

  poll_loop(Poll poll, Status status, basic_poll_options<Clock> options)
      : poll_(std::move(poll)), status_policy_(std::move(status)), options_(std::move(options)) {}

  asio::awaitable<result_type> run() {
    start_ = Clock::now();
    if (auto why = options_.invalid_reason()) co_return finish(errc::invalid_argument, "invalid poll options: " + *why);
    cancel_state_ = co_await asio::this_coro::cancellation_state;
    std::error_code ec;
    try {
      ec = co_await loop();
    } catch (const std::system_error&) {
      // After a cancellation Asio throws from the next co_await; anything
      // else is a bug worth seeing.
      if (!cancelled()) throw;
      ec = asio::error::operation_aborted;
    }
    co_return finish(ec, {});
  }

 private:
  asio::awaitable<std::error_code> loop() {
    executor_ = co_await asio::this_coro::executor;
    timer_.emplace(executor_);
    schedule_.emplace(std::move(options_.interval), std::move(options_.backoff), options_.max_retries,
                      options_.deadline.budget_from(start_), options_.hints);
    poll_decision next = schedule_->start(options_.initial_delay);
    for (;;) {
      if (auto ec = co_await wait(next)) co_return ec;
      if (cancelled()) co_return asio::error::operation_aborted;
      if (options_.limiter) {
        if (auto ec = co_await acquire_limiter()) co_return ec;
      }
      co_await poll_once();
      if (cancelled()) co_return asio::error::operation_aborted;
      if (options_.hooks.on_poll) options_.hooks.on_poll({stats_.attempts, status_, elapsed()});
      if (options_.limiter && status_.state == job_state::transient_error && status_.retry_after)
        options_.limiter->pause_for(schedule_->bounded_hint(*status_.retry_after));
      next = schedule_->after_poll(status_, elapsed());
      if (next.finish) co_return next.error;
    }
  }

  asio::awaitable<std::error_code> wait(const poll_decision& d) {
    if (d.wait <= std::chrono::nanoseconds::zero()) {
      // Yield between polls even with a zero interval, so one poller cannot
      // starve everything else on its executor.
      if (stats_.attempts > 0) co_await asio::post(executor_, asio::use_awaitable);
      co_return std::error_code{};
    }
    if (options_.hooks.on_wait) options_.hooks.on_wait({stats_.attempts, d.reason, d.wait, d.clipped});
    timer_->expires_after(std::chrono::ceil<typename Clock::duration>(d.wait));
    std::error_code ec;
    co_await timer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    stats_.waited += d.wait;
    co_return ec;
  }

  // Waits for the limiter; once a poll has happened, not past the deadline.
  asio::awaitable<std::error_code> acquire_limiter() {
    if (options_.limiter->try_acquire()) co_return std::error_code{};  // the common case: no wait at all
    const auto begin = Clock::now();
    const auto left = schedule_->remaining(elapsed());
    if (stats_.attempts == 0 || !left) {
      co_await options_.limiter->acquire();  // the first poll always happens
    } else {
      // At the deadline the final poll happens only if a start was free now.
      if (*left <= std::chrono::nanoseconds::zero()) co_return make_error_code(errc::timeout);
      timer_->expires_after(std::chrono::ceil<typename Clock::duration>(*left));
      auto [order, acquire_error, timer_error] =
          co_await asio::experimental::make_parallel_group(
              asio::co_spawn(executor_, options_.limiter->acquire(), asio::experimental::deferred),
              timer_->async_wait(asio::experimental::deferred))
              .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
      if (order[0] == 1 && !timer_error) co_return make_error_code(errc::timeout);
      if (acquire_error) std::rethrow_exception(acquire_error);
    }
    const auto waited = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - begin);
    stats_.limiter_waited += waited;
    if (waited > std::chrono::nanoseconds::zero() && options_.hooks.on_wait)
      options_.hooks.on_wait({stats_.attempts, wait_reason::limiter, waited, false});
    co_return std::error_code{};
  }

  // Makes one attempt and sets status_ (and response_ when one arrived).
  // Never throws for the attempt's own failure; cancellation is left for
  // the caller to see in the cancellation state.
  asio::awaitable<void> poll_once() {
    ++stats_.attempts;
    std::exception_ptr failure;
    bool answered = true;
    try {
      if (options_.attempt_timeout) {
        answered = co_await poll_with_timeout();
      } else {
        response_.emplace(co_await poll_());
      }
    } catch (...) {
      failure = std::current_exception();
    }
    if (cancelled()) co_return;
    if (failure) {
      status_ = classify_exception(failure);
    } else if (!answered) {
      status_ = poll_status::transient(errc::attempt_timeout,
                                       "no answer within " + format_seconds(*options_.attempt_timeout));
    } else {
      status_ = classify_response();
    }
  }

  // True when the poll answered in time (response_ is set), false on timeout.
  asio::awaitable<bool> poll_with_timeout() {
    timer_->expires_after(std::chrono::ceil<typename Clock::duration>(*options_.attempt_timeout));
    auto [order, poll_error, response, timer_error] =
        co_await asio::experimental::make_parallel_group(
            asio::co_spawn(
                executor_,
                [this]() -> asio::awaitable<std::optional<response_type>> { co_return co_await poll_(); },
                asio::experimental::deferred),
            timer_->async_wait(asio::experimental::deferred))
            .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
    if (order[0] == 1 && !timer_error) co_return false;
    if (poll_error) std::rethrow_exception(poll_error);
    response_ = std::move(response);
    co_return true;
  }

  poll_status classify_response() {
    try {
      return status_policy_(std::as_const(*response_));
    } catch (const std::exception& e) {
      return poll_status::permanent(errc::poll_exception, std::string("status policy threw: ") + e.what());
    }
  }

  poll_status classify_exception(const std::exception_ptr& failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::system_error& e) {
      return detail::classify_error(status_policy_, e.code(), e.what());
    } catch (const std::exception& e) {
      return poll_status::permanent(errc::poll_exception, e.what());
    } catch (...) {
      return poll_status::permanent(errc::poll_exception, "poll threw a non-standard exception");
    }
  }

  result_type finish(std::error_code ec, std::string message) {
    stats_.elapsed = elapsed();
    if (schedule_) {
      stats_.pending_polls = schedule_->pending_polls();
      stats_.transient_failures = schedule_->transient_failures();
    }
    result_type r;
    r.error = ec;
    if (ec && message.empty()) message = describe_end(ec, status_, stats_);
    r.message = std::move(message);
    r.stats = stats_;
    if (options_.hooks.on_end) options_.hooks.on_end({ec, status_, stats_});
    r.status = std::move(status_);
    r.response = std::move(response_);
    return r;
  }

  bool cancelled() const noexcept { return cancel_state_.cancelled() != asio::cancellation_type::none; }
  std::chrono::nanoseconds elapsed() const { return Clock::now() - start_; }

  Poll poll_;
  Status status_policy_;
  basic_poll_options<Clock> options_;
  typename Clock::time_point start_{};
  asio::any_io_executor executor_;
  asio::cancellation_state cancel_state_;
  std::optional<timer_for<Clock>> timer_;
  std::optional<poll_schedule> schedule_;
  std::optional<response_type> response_;
  poll_status status_;
  poll_stats stats_;
};

template <class Clock, class Poll, class Status>
asio::awaitable<poll_result<poll_response_t<Poll>>> run_poll(Poll poll, Status status,
                                                             basic_poll_options<Clock> options) {
  poll_loop<Clock, Poll, Status> loop(std::move(poll), std::move(status), std::move(options));
  co_return co_await loop.run();
}

// The entry point of a spawned poll: unlike a plain co_spawn, it accepts
// partial and total cancellation too, since stopping a poll has no side
// effect on the job.
template <class Clock, class Poll, class Status>
asio::awaitable<poll_result<poll_response_t<Poll>>> spawned_poll(Poll poll, Status status,
                                                                 basic_poll_options<Clock> options) {
  co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation());
  co_return co_await run_poll(std::move(poll), std::move(status), std::move(options));
}

// Adapts co_spawn's `void(std::exception_ptr, poll_result<R>)` to the public
// `void(std::error_code, poll_result<R>)`, keeping the handler's associations.
template <class Handler, class Response>
struct result_handler {
  Handler handler;
  void operator()(std::exception_ptr e, poll_result<Response> r) {
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
/// Returns the response that `status` called succeeded. Throws
/// `basic_poll_error<Response>` (a `poll_error`, a `std::system_error`) with
/// `errc::job_failed` (the failure payload is `last_response()`),
/// `errc::timeout`, `errc::retries_exhausted`, a permanent error code
/// (`decode_error`, `http_error`, ...), `errc::invalid_argument` for bad
/// options, or `asio::error::operation_aborted` when cancelled. Cancellation
/// (terminal, through the awaiting coroutine's cancellation slot, e.g. `||`
/// with a timer) ends any wait, limiter wait or poll in progress.
template <poll_operation Poll, status_policy<poll_response_t<Poll>> Status, clock Clock = std::chrono::steady_clock>
asio::awaitable<poll_response_t<Poll>> poll_until(Poll poll, Status status, basic_poll_options<Clock> options = {}) {
  auto result = co_await detail::run_poll(std::move(poll), std::move(status), std::move(options));
  if (result.error) throw basic_poll_error<poll_response_t<Poll>>(std::move(result));
  co_return std::move(*result.response);
}

/// `poll_until` for any Asio completion token: the poll runs as a coroutine
/// spawned on `ex`, and the handler receives
/// `void(std::error_code, poll_result<Response>)`: the error is empty on
/// success, and the result always carries the last response, status, stats
/// and a message. Works with callbacks, `use_future`, `use_awaitable`,
/// `experimental::deferred` and `experimental::as_tuple(use_awaitable)`.
/// With `use_future` and `use_awaitable` a failure becomes a
/// `std::system_error` holding only the code; take the callback or
/// `as_tuple` form (or `poll_until`) to keep the last response. The token's
/// cancellation slot cancels the poll (`operation_aborted`), whether the
/// signal is terminal, partial or total.
template <class Executor, poll_operation Poll, status_policy<poll_response_t<Poll>> Status, clock Clock,
          class CompletionToken>
auto async_poll_until(const Executor& ex, Poll poll, Status status, basic_poll_options<Clock> options,
                      CompletionToken&& token) {
  using response_type = poll_response_t<Poll>;
  return asio::async_initiate<CompletionToken, void(std::error_code, poll_result<response_type>)>(
      [](auto handler, const Executor& ex, Poll poll, Status status, basic_poll_options<Clock> options) {
        asio::co_spawn(ex, detail::spawned_poll(std::move(poll), std::move(status), std::move(options)),
                       detail::result_handler<decltype(handler), response_type>{std::move(handler)});
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
