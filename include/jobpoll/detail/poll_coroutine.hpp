#pragma once
// The coroutine shell around poll_machine, behind `poll_until` and
// `try_poll_until`: the caller is a coroutine already, so an awaitable poll is
// awaited in place (no coroutine spawned per attempt) and a waiting poll is
// this one frame plus its timer wait. It only carries out the machine's
// actions and reports their outcomes; every decision is poll_machine's.

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include "jobpoll/detail/asio_forward.hpp"

#include "jobpoll/clock.hpp"
#include "jobpoll/deadline.hpp"
#include "jobpoll/detail/poll_steps.hpp"
#include "jobpoll/observer.hpp"
#include "jobpoll/poll_machine.hpp"
#include "jobpoll/poll_result.hpp"
#include "jobpoll/rate_limiter.hpp"
#include "jobpoll/status_policy.hpp"

#include "jobpoll/detail/workarounds_push.hpp"

namespace jobpoll::detail {

template <bool Throw, class Response>
using poll_return_t = std::conditional_t<Throw, Response, poll_result<Response>>;

// One attempt of either kind of poll operation, as an awaitable; an error
// code of an asynchronous operation is thrown as std::system_error.
template <class Poll>
asio::awaitable<poll_response_t<Poll>> poll_once(Poll& poll) {
  if constexpr (awaitable_poll<Poll>) {
    co_return co_await poll();
  } else {
    auto [ec, response] = co_await poll(asio_tokens::as_tuple(asio::use_awaitable));
    if (ec) throw std::system_error(ec);
    co_return std::move(response);
  }
}

// Rarely taken paths live in coroutines of their own, so their state is only
// allocated while they run and the frame of a waiting poll stays small.

// `operation` raced against a timer of `bound`: none when the timer won (the
// operation is then cancelled and its outcome dropped: a limiter slot that
// came too late is released unused).
template <class Clock, class T>
asio::awaitable<std::optional<T>> race(asio::awaitable<T> operation, std::chrono::nanoseconds bound) {
  timer_for<Clock> timer(co_await asio::this_coro::executor);
  timer.expires_after(std::chrono::ceil<typename Clock::duration>(bound));
  auto [order, failure, value, timer_error] =
      co_await asio::experimental::make_parallel_group(
          asio::co_spawn(timer.get_executor(), std::move(operation), asio_tokens::deferred),
          timer.async_wait(asio_tokens::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  if (order[0] == 1 && !timer_error) co_return std::nullopt;
  if (failure) std::rethrow_exception(failure);
  co_return std::move(value);
}

// The `acquire` action: the machine's event for its outcome.
template <class Clock>
asio::awaitable<poll_action> acquire(poll_machine& machine, const poll_action& a, limiter_ref limiter,
                                     typename Clock::time_point start, limiter_permit& permit) {
  try {
    if (!a.bounded) {
      permit = co_await limiter.acquire();
    } else if (auto granted = co_await race<Clock>(limiter.acquire(), a.bound)) {
      permit = std::move(*granted);
    } else {
      co_return machine.limiter_failed(errc::timeout);
    }
  } catch (const std::exception& e) {
    const auto failure = system_failure_of(e);
    if (!failure) throw;
    co_return machine.limiter_failed(failure->code);
  }
  co_return machine.granted(since(start, Clock::now()));
}

// A bounded `poll` action: false when the bound passed first.
template <class Clock, class Poll>
asio::awaitable<bool> bounded_poll(Poll& poll, std::chrono::nanoseconds bound,
                                   std::optional<poll_response_t<Poll>>& response) {
  auto answer = co_await race<Clock>(poll_once(poll), bound);
  if (!answer) co_return false;
  response = std::move(answer);
  co_return true;
}

// The whole poll as one coroutine. A caller cancelled before the call (and
// running on with throw_if_cancelled(false)) gets a poll that ends before
// its first attempt.
template <bool Throw, class Response>
poll_return_t<Throw, Response> finish(poll_machine& machine, std::error_code ec, std::optional<Response>& response,
                                      std::chrono::nanoseconds elapsed, const poll_hooks* hooks) {
  poll_result<Response> r;
  r.error = to_error_code(ec);
  r.stats = machine.stats(elapsed);
  r.status = std::move(machine.last());
  r.response = std::move(response);
  if (hooks && hooks->on_end) hooks->on_end({r.error, r.status, r.stats});
  if constexpr (Throw) {
    if (!r.error) return std::move(*r.response);
  }
  if (r.error) r.message = describe_end(r.error, r.status, r.stats);
  if constexpr (Throw) {
    throw basic_poll_error<Response>(std::move(r));
  } else {
    return r;
  }
}

// What the coroutine needs of the options besides the machine's settings.
template <class Clock>
struct shell_inputs {
  basic_deadline<Clock> deadline;
  limiter_ref limiter;
  const poll_hooks* hooks;
};

// The whole poll as one coroutine; `poll_until` builds its machine, so the
// frame holds the machine and not the options it came from. A caller
// cancelled before the call (and running on with
// throw_if_cancelled(false)) gets a poll that ends before its first attempt.
template <bool Throw, class Clock, class Poll, class Status>
asio::awaitable<poll_return_t<Throw, poll_response_t<Poll>>> run_poll(Poll poll, Status status, poll_machine machine,
                                                                     shell_inputs<Clock> in) {
  const limiter_ref& limiter = in.limiter;
  const poll_hooks* const& hooks = in.hooks;
  const asio::cancellation_state cancel_state = co_await asio::this_coro::cancellation_state;
  const auto cancelled = [&] { return cancel_state.cancelled() != asio::cancellation_type::none; };
  // The poll starts now: its deadline is measured from here.
  const auto start = Clock::now();
  poll_action a = cancelled() ? machine.cancelled() : machine.start(in.deadline.budget_from(start));
  const bool timed = machine.needs_time() || hooks;
  std::optional<poll_response_t<Poll>> response;  // the last answer received
  std::optional<timer_for<Clock>> timer;          // created on the first real wait
  limiter_permit permit;                          // held from the limiter's grant to the poll's outcome
  try {
    while (a.step != poll_step::finish) {
      switch (a.step) {
        case poll_step::wait:
          if (hooks && hooks->on_wait) hooks->on_wait(a.wait_report(machine.attempts()));
          if (!timer) timer.emplace(co_await asio::this_coro::executor);
          timer->expires_after(std::chrono::ceil<typename Clock::duration>(a.duration));
          // A cancelled wait throws; the handler below turns that into operation_aborted.
          co_await timer->async_wait(asio::use_awaitable);
          a = cancelled() ? machine.cancelled() : machine.waited();
          break;
        case poll_step::yield:
          co_await asio::post(asio::use_awaitable);
          a = cancelled() ? machine.cancelled() : machine.waited();
          break;
        case poll_step::try_acquire:
          // A slot is held until the attempt's outcome is known, so the
          // request counts against the budget when the server has surely seen it.
          permit = limiter.try_acquire();
          a = permit ? machine.granted_now() : machine.limiter_busy(since(start, Clock::now()), limiter.expected_wait());
          break;
        case poll_step::acquire:
          if (hooks && hooks->on_wait) hooks->on_wait(a.wait_report(machine.attempts()));
          a = co_await acquire<Clock>(machine, a, limiter, start, permit);
          break;
        case poll_step::poll: {
          std::exception_ptr failure;
          bool answered = true;
          try {
            if (a.bounded) {
              answered = co_await bounded_poll<Clock>(poll, a.bound, response);
            } else if constexpr (awaitable_poll<Poll>) {
              response.emplace(co_await poll());
            } else {
              response.emplace(co_await poll_once(poll));
            }
          } catch (...) {
            failure = std::current_exception();
          }
          permit.release();
          if (cancelled()) {
            a = machine.cancelled();
            break;
          }
          const auto at = timed ? since(start, Clock::now()) : std::chrono::nanoseconds::zero();
          if (failure) {
            a = machine.answered(classify_exception(status, failure), at);
          } else if (!answered) {
            a = machine.attempt_timed_out(at);
          } else {
            a = machine.answered(classify_response(status, std::as_const(*response)), at);
          }
          if (hooks && hooks->on_poll) hooks->on_poll({machine.attempts(), machine.last(), at});
          break;
        }
        case poll_step::pause_limiter:
          limiter.pause_for(a.duration);
          a = machine.paused();
          break;
        case poll_step::finish:
          break;
      }
    }
  } catch (const std::exception& e) {
    // After a cancellation Asio throws from the next co_await; anything else
    // is a bug worth seeing.
    if (!system_failure_of(e) || !cancelled()) throw;
    a = machine.cancelled();
  }
  co_return finish<Throw>(machine, a.error, response, since(start, Clock::now()), hooks);
}

// Starts a poll: its machine is built here, before the coroutine.
template <bool Throw, class Clock, class Poll, class Status>
asio::awaitable<poll_return_t<Throw, poll_response_t<Poll>>> start_poll(Poll poll, Status status,
                                                                       basic_poll_options<Clock> options) {
  return run_poll<Throw>(std::move(poll), std::move(status), poll_machine(machine_settings(options)),
                         shell_inputs<Clock>{options.deadline, options.limiter, options.hooks});
}

// Options refused before the start end the poll in a coroutine of their own,
// so the frame of a real poll carries none of this.
template <bool Throw, class Response>
asio::awaitable<poll_return_t<Throw, Response>> rejected(std::string why, const poll_hooks* hooks) {
  poll_result<Response> r = rejection<Response>(std::move(why), hooks);
  if constexpr (Throw) {
    throw basic_poll_error<Response>(std::move(r));
  } else {
    co_return r;
  }
}

}  // namespace jobpoll::detail

#include "jobpoll/detail/workarounds_pop.hpp"
