#pragma once
// The Asio shell around poll_machine: one heap block per poll holding the
// machine, the policies, the last response and the timer, driven by small
// handlers that carry a pointer to it. A waiting poll is that block plus its
// timer wait: no coroutine frame. The shell only carries out the machine's
// actions and reports their outcomes; every decision is poll_machine's.

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include "jobpoll/detail/asio_forward.hpp"

#include "jobpoll/clock.hpp"
#include "jobpoll/deadline.hpp"
#include "jobpoll/detail/poll_steps.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/observer.hpp"
#include "jobpoll/poll_machine.hpp"
#include "jobpoll/poll_options.hpp"
#include "jobpoll/poll_result.hpp"
#include "jobpoll/poll_status.hpp"
#include "jobpoll/rate_limiter.hpp"
#include "jobpoll/status_policy.hpp"

namespace jobpoll::detail {

// Which outcome of the shell's operations a handler reports.
enum class op_event { timer, yield, poll, acquire };

template <class Op, op_event Event>
struct op_handler {
  Op* op;
  template <class... Args>
  void operator()(Args&&... args) const {
    op->template on<Event>(std::forward<Args>(args)...);
  }
};

// Forwards the caller's cancellation slot to the poll in progress.
template <class Op>
struct op_cancel_handler {
  Op* op;
  void operator()(asio::cancellation_type type) const { op->cancel(type); }
};

// One poll in progress. Created by the initiation, destroyed (its memory
// freed) just before the completion handler is called.
template <class Handler, class Executor, class Poll, class Status, class Clock>
class poll_op {
 public:
  using response_type = poll_response_t<Poll>;
  using result_type = poll_result<response_type>;
  using allocator_type =
      typename std::allocator_traits<asio::associated_allocator_t<Handler>>::template rebind_alloc<poll_op>;

  poll_op(Handler&& handler, const Executor& ex, Poll&& poll, Status&& status, basic_poll_options<Clock>& options)
      : handler_(std::move(handler)),
        work_(asio::prefer(asio::get_associated_executor(handler_, ex), asio::execution::outstanding_work.tracked)),
        ex_(ex),
        poll_(std::move(poll)),
        status_(std::move(status)),
        machine_(machine_settings(options)),
        deadline_(options.deadline),
        limiter_(options.limiter),
        hooks_(options.hooks) {}

  // Allocates the operation with the handler's allocator and starts it on
  // `ex` (never inside the initiating function).
  static void launch(Handler handler, const Executor& ex, Poll poll, Status status, basic_poll_options<Clock> options) {
    allocator_type alloc(asio::get_associated_allocator(handler));
    poll_op* op = std::allocator_traits<allocator_type>::allocate(alloc, 1);
    try {
      std::allocator_traits<allocator_type>::construct(alloc, op, std::move(handler), ex, std::move(poll),
                                                       std::move(status), options);
    } catch (...) {
      std::allocator_traits<allocator_type>::deallocate(alloc, op, 1);
      throw;
    }
    auto slot = asio::get_associated_cancellation_slot(op->handler_);
    if (slot.is_connected()) {
      op->cancellable_ = true;
      slot.template emplace<op_cancel_handler<poll_op>>(op_cancel_handler<poll_op>{op});
    }
    asio::post(ex, op_handler<poll_op, op_event::yield>{op});
  }

  const Handler& handler() const noexcept { return handler_; }
  const Executor& executor() const noexcept { return ex_; }

  // The caller's cancellation, of any type, ends the poll: whatever is under
  // way is cancelled and the machine hears of it when it completes.
  void cancel(asio::cancellation_type type) {
    cancelled_ = true;
    if (timer_) timer_->cancel();
    // Terminal whatever the caller's type: a spawned poll's coroutine
    // listens to terminal cancellation only, and any type ends the poll.
    (void)type;
    if (racing_) attempt_.emit(asio::cancellation_type::terminal);
  }

  template <op_event Event, class... Args>
  void on(Args&&... args) {
    if constexpr (Event == op_event::yield) {
      if (!started_) {
        // The poll starts now: its deadline is measured from here.
        started_ = true;
        start_ = Clock::now();
        if (cancelled_) return advance(machine_.cancelled());
        poll_action first = machine_.start(deadline_.budget_from(start_));
        timed_ = machine_.needs_time() || hooks_;
        return advance(first);
      }
      return advance(cancelled_ ? machine_.cancelled() : machine_.waited());
    } else if constexpr (Event == op_event::timer) {
      on_timer(args...);
    } else if constexpr (Event == op_event::poll) {
      on_poll(std::forward<Args>(args)...);
    } else {
      on_acquire(std::forward<Args>(args)...);
    }
  }

 private:
  std::chrono::nanoseconds elapsed() const { return since(start_, Clock::now()); }
  std::chrono::nanoseconds elapsed_if_timed() const { return timed_ ? elapsed() : std::chrono::nanoseconds::zero(); }

  timer_for<Clock>& timer() {
    if (!timer_) timer_.emplace(ex_);
    return *timer_;
  }

  template <op_event Event>
  op_handler<poll_op, Event> next() noexcept {
    return {this};
  }

  // Runs the machine's actions until one has to wait.
  void advance(poll_action a) {
    for (;;) {
      switch (a.step) {
        case poll_step::wait:
          if (hooks_ && hooks_->on_wait) hooks_->on_wait(a.wait_report(machine_.attempts()));
          timer().expires_after(std::chrono::ceil<typename Clock::duration>(a.duration));
          return timer_->async_wait(next<op_event::timer>());
        case poll_step::yield:
          return asio::post(ex_, next<op_event::yield>());
        case poll_step::try_acquire:
          if ((permit_ = limiter_.try_acquire())) {
            a = machine_.granted_now();
          } else {
            a = machine_.limiter_busy(elapsed(), limiter_.expected_wait());
          }
          continue;
        case poll_step::acquire:
          if (hooks_ && hooks_->on_wait) hooks_->on_wait(a.wait_report(machine_.attempts()));
          return start_race(a, [this](auto handler) { asio::co_spawn(ex_, limiter_.acquire(), std::move(handler)); },
                            next<op_event::acquire>());
        case poll_step::poll:
          return start_race(a, [this](auto handler) { this->start_poll(std::move(handler)); }, next<op_event::poll>());
        case poll_step::pause_limiter:
          limiter_.pause_for(a.duration);
          a = machine_.paused();
          continue;
        case poll_step::finish:
          return complete(a.error);
      }
    }
  }

  template <class H>
  void start_poll(H handler) {
    if constexpr (detail::awaitable_poll<Poll>) {
      asio::co_spawn(ex_, poll_(), std::move(handler));
    } else {
      poll_(std::move(handler));
    }
  }

  // Starts `operation` and, when the action is bounded, the timer against
  // it; the outcome is known once both have completed. The operation listens
  // to `attempt_` when something may have to cancel it.
  template <class Start, class H>
  void start_race(const poll_action& a, Start operation, H handler) {
    racing_ = cancellable_ || a.bounded;
    timer_won_ = false;
    outstanding_ = a.bounded ? 2 : 1;
    if (a.bounded) {
      timer().expires_after(std::chrono::ceil<typename Clock::duration>(a.bound));
      timer_->async_wait(next<op_event::timer>());
    }
    if (racing_) {
      operation(asio::bind_cancellation_slot(attempt_.slot(), std::move(handler)));
    } else {
      operation(std::move(handler));
    }
  }

  void on_timer(std::error_code ec) {
    if (outstanding_ == 0) {  // a wait between polls
      if (cancelled_) return advance(machine_.cancelled());
      return advance(machine_.waited());
    }
    // The bound of a poll or limiter wait: passed first, it cancels the other side.
    if (!ec && outstanding_ == 2) {
      timer_won_ = true;
      attempt_.emit(asio::cancellation_type::terminal);
    }
    settle();
  }

  // A poll's outcome: an awaitable's (exception_ptr, response) or an
  // asynchronous operation's (error_code, response).
  template <class Failure>
  void on_poll(Failure failure, response_type response) {
    if (!timer_won_) {
      if (!failure) {
        response_.emplace(std::move(response));
      } else if constexpr (std::is_same_v<Failure, std::exception_ptr>) {
        failure_ = std::move(failure);
      } else {
        failure_code_ = failure;
      }
    }
    won_race();
  }

  void on_acquire(std::exception_ptr failure, limiter_permit permit) {
    if (!timer_won_) {
      if (failure) {
        failure_ = std::move(failure);
      } else {
        permit_ = std::move(permit);  // a grant that lost the race is released here, unused
      }
    }
    won_race();
  }

  void won_race() {
    if (outstanding_ == 2 && !timer_won_) timer_->cancel();
    settle();
  }

  // Called once per side of a race; the last one reports the outcome.
  void settle() {
    if (--outstanding_ > 0) return;
    if (racing_) attempt_.slot().clear();
    racing_ = false;
    if (machine_.acquiring()) return advance(settle_acquire());
    permit_.release();  // the poll's outcome is known: its request now counts
    if (cancelled_) return advance(machine_.cancelled());
    const auto at = elapsed_if_timed();
    poll_action next;
    if (timer_won_) {
      next = machine_.attempt_timed_out(at);
    } else if (failure_) {
      next = machine_.answered(classify_exception(status_, std::exchange(failure_, nullptr)), at);
    } else if (failure_code_) {
      const std::error_code ec = std::exchange(failure_code_, {});
      next = machine_.answered(detail::classify_error(status_, ec, ec.message()), at);
    } else {
      next = machine_.answered(classify_response(status_, std::as_const(*response_)), at);
    }
    if (hooks_ && hooks_->on_poll) hooks_->on_poll({machine_.attempts(), machine_.last(), at});
    advance(next);
  }

  poll_action settle_acquire() {
    if (timer_won_) return machine_.limiter_failed(errc::timeout);
    if (failure_) {
      try {
        std::rethrow_exception(std::exchange(failure_, nullptr));
      } catch (const std::exception& e) {
        const auto failure = system_failure_of(e);
        if (!failure) throw;
        return machine_.limiter_failed(failure->code);
      }
    }
    if (cancelled_) return machine_.cancelled();
    return machine_.granted(elapsed());
  }

  // Frees the operation, then calls the handler: the handler may start
  // another poll that reuses this memory.
  void complete(std::error_code ec) {
    result_type r;
    r.error = to_error_code(ec);
    r.stats = machine_.stats(elapsed());
    r.status = std::move(machine_.last());
    r.response = std::move(response_);
    if (hooks_ && hooks_->on_end) hooks_->on_end({r.error, r.status, r.stats});
    if (ec) r.message = describe_end(ec, r.status, r.stats);
    if (cancellable_) asio::get_associated_cancellation_slot(handler_).clear();
    Handler handler(std::move(handler_));
    work_type work(std::move(work_));
    allocator_type alloc(asio::get_associated_allocator(handler));
    std::allocator_traits<allocator_type>::destroy(alloc, this);
    std::allocator_traits<allocator_type>::deallocate(alloc, this, 1);
    const error_code code = r.error;
    asio::dispatch(work, asio_tokens::append(std::move(handler), code, std::move(r)));
  }

  // The handler's executor, kept busy until the handler runs there (its
  // context may be another than `ex`'s).
  using work_type = std::decay_t<decltype(asio::prefer(asio::get_associated_executor(std::declval<const Handler&>(),
                                                                                      std::declval<const Executor&>()),
                                                       asio::execution::outstanding_work.tracked))>;

  Handler handler_;
  work_type work_;
  Executor ex_;
  Poll poll_;
  Status status_;
  poll_machine machine_;
  basic_deadline<Clock> deadline_;
  typename Clock::time_point start_{};  // set by the first step
  limiter_ref limiter_;
  const poll_hooks* hooks_;
  std::optional<timer_for<Clock>> timer_;  // created for the first wait or bound
  std::optional<response_type> response_;  // the last answer received
  limiter_permit permit_;
  asio::cancellation_signal attempt_;  // cancels the poll or limiter wait in progress
  std::exception_ptr failure_;
  std::error_code failure_code_;
  unsigned char outstanding_ = 0;  // operations of the current race still to complete
  bool timed_ = false;
  bool cancellable_ = false;  // the caller's handler has a cancellation slot
  bool cancelled_ = false;
  bool started_ = false;
  bool racing_ = false;
  bool timer_won_ = false;
};

// Ends a poll whose options were refused, without starting it.
template <class Response, class Handler, class Executor>
void reject(Handler handler, const Executor& ex, std::string why, const poll_hooks* hooks) {
  poll_result<Response> r = rejection<Response>(std::move(why), hooks);
  const error_code ec = r.error;
  asio::post(ex, asio_tokens::append(std::move(handler), ec, std::move(r)));
}

// The initiation object of async_poll_until.
template <class Executor>
struct initiate_poll_until {
  Executor ex;

  using executor_type = Executor;
  const executor_type& get_executor() const noexcept { return ex; }

  template <class Handler, class Poll, class Status, class Clock>
  void operator()(Handler handler, Poll poll, Status status, basic_poll_options<Clock> options) const {
    using op = poll_op<std::decay_t<Handler>, Executor, Poll, Status, Clock>;
    if (auto why = options.invalid_reason())
      return reject<typename op::response_type>(std::move(handler), ex, std::move(*why), options.hooks);
    op::launch(std::move(handler), ex, std::move(poll), std::move(status), std::move(options));
  }
};

}  // namespace jobpoll::detail

// The shell's steps run on the operation's I/O executor with the completion
// handler's allocator; the caller's cancellation slot is not theirs (the
// shell binds its own where it needs one).
template <class Op, jobpoll::detail::op_event Event, class Executor1>
struct jobpoll::asio::associated_executor<jobpoll::detail::op_handler<Op, Event>, Executor1> {
  using type = std::decay_t<decltype(std::declval<const Op&>().executor())>;
  static type get(const jobpoll::detail::op_handler<Op, Event>& h, const Executor1& = Executor1()) noexcept {
    return h.op->executor();
  }
};

template <class Op, jobpoll::detail::op_event Event, class Allocator>
struct jobpoll::asio::associated_allocator<jobpoll::detail::op_handler<Op, Event>, Allocator> {
  using handler_type = std::decay_t<decltype(std::declval<const Op&>().handler())>;
  using type = asio::associated_allocator_t<handler_type, Allocator>;
  static type get(const jobpoll::detail::op_handler<Op, Event>& h, const Allocator& a = Allocator()) noexcept {
    return asio::get_associated_allocator(h.op->handler(), a);
  }
};
