#pragma once
// The asynchronous half shared by every jobpoll rate limiter: a FIFO of
// waiters in front of a start budget (limiter_budget.hpp), one timer for the
// head of the queue, cancellation through each waiter's cancellation slot,
// and the permits that hold a slot until their request is answered.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>

#include "jobpoll/detail/asio_forward.hpp"

#include "jobpoll/clock.hpp"
#include "jobpoll/detail/handler_op.hpp"
#include "jobpoll/limiter_budget.hpp"
#include "jobpoll/limiter_permit.hpp"

namespace jobpoll {

/// What a limiter has done since it was constructed.
struct limiter_statistics {
  std::uint64_t granted = 0;    ///< permits granted: successful `async_acquire` completions and `try_acquire` calls
  std::uint64_t released = 0;   ///< permits released (their requests counted against the budget)
  std::uint64_t cancelled = 0;  ///< waits completed with `operation_aborted` (cancelled, or the limiter was destroyed)
};

namespace detail {

enum class waiter_state : unsigned char { queued, granted, aborted };

// One pending async_acquire. Owned by the limiter's queue while queued, then
// by the completion posted to the handler's executor.
class limiter_waiter {
 public:
  limiter_waiter* next = nullptr;
  limiter_waiter* prev = nullptr;
  waiter_state state = waiter_state::queued;  // guarded by the limiter's mutex

  // Posts the completion to the handler's associated executor; called once.
  virtual void post_completion(std::error_code ec, limiter_permit permit) = 0;
  // Destroys the waiter without calling its handler.
  virtual void discard() noexcept = 0;

 protected:
  limiter_waiter() = default;
  limiter_waiter(const limiter_waiter&) = delete;
  limiter_waiter& operator=(const limiter_waiter&) = delete;
  ~limiter_waiter() = default;
};

// Intrusive FIFO of waiters: no allocation beyond the waiter itself.
class waiter_queue {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }
  limiter_waiter* front() const noexcept { return head_; }

  void push_back(limiter_waiter* w) noexcept {
    w->prev = tail_;
    w->next = nullptr;
    (tail_ ? tail_->next : head_) = w;
    tail_ = w;
    ++size_;
  }

  void erase(limiter_waiter* w) noexcept {
    (w->prev ? w->prev->next : head_) = w->next;
    (w->next ? w->next->prev : tail_) = w->prev;
    w->next = w->prev = nullptr;
    --size_;
  }

 private:
  limiter_waiter* head_ = nullptr;
  limiter_waiter* tail_ = nullptr;
  std::size_t size_ = 0;
};

// A waiter holding its completion handler.
template <class Handler, class IoExecutor>
using limiter_waiter_op = handler_op<limiter_waiter, Handler, IoExecutor, limiter_permit>;

// Installed in a waiter's cancellation slot by a limiter's shared state
// `Core` (which makes it a friend), calling `Core::cancel(waiter)`. Every
// cancellation type is honoured: a queued wait has had no effect yet, so it
// can always be undone. A weak reference: it does nothing once the core is gone.
template <class Core>
struct waiter_cancel_handler {
  waiter_cancel_handler(std::weak_ptr<Core> c, limiter_waiter* w) noexcept : core(std::move(c)), waiter(w) {}

  std::weak_ptr<Core> core;
  limiter_waiter* waiter;

  void operator()(asio::cancellation_type type) const {
    if (type == asio::cancellation_type::none) return;
    if (auto self = core.lock()) self->cancel(waiter);
  }
};

// The shared state of one limiter. Shared ownership lets the strand jobs, the
// timer handler and the cancellation handlers outlive the limiter object
// safely: they hold weak references and do nothing once it is gone.
template <clock Clock, start_budget<typename Clock::time_point> Budget>
class limiter_core final : public permit_issuer, public std::enable_shared_from_this<limiter_core<Clock, Budget>> {
 public:
  using time_point = typename Clock::time_point;
  using executor_type = asio::any_io_executor;

  limiter_core(const executor_type& ex, Budget budget)
      : executor_(ex), strand_(asio::make_strand(ex)), timer_(strand_), budget_(std::move(budget)) {}

  const executor_type& executor() const noexcept { return executor_; }

  template <class Handler>
  void start(Handler handler) {
    auto slot = asio::get_associated_cancellation_slot(handler);
    limiter_waiter* w = limiter_waiter_op<Handler, executor_type>::create(std::move(handler), executor_);
    if (slot.is_connected()) {
      try {
        slot.template emplace<waiter_cancel_handler<limiter_core>>(this->weak_from_this(), w);
      } catch (...) {
        w->discard();
        throw;
      }
    }
    std::lock_guard lock(mutex_);
    queue_.push_back(w);
    settle();
  }

  limiter_permit try_acquire() {
    std::lock_guard lock(mutex_);
    if (!queue_.empty()) return {};
    const time_point now = Clock::now();
    if (budget_.earliest(now) > now) return {};
    return grant();
  }

  // A permit's request is answered: it counts from now, and the slot it held
  // may let the head of the queue through. After shutdown the budget is
  // still kept, but nothing is posted: the execution context may be going away.
  void release_permit() noexcept override {
    std::lock_guard lock(mutex_);
    budget_.release(Clock::now());
    ++statistics_.released;
    if (!closing_) settle();
  }

  std::size_t in_use() const {
    std::lock_guard lock(mutex_);
    return budget_.held();
  }

  std::optional<std::chrono::nanoseconds> expected_wait() const {
    std::lock_guard lock(mutex_);
    if (!queue_.empty()) return std::nullopt;
    const time_point now = Clock::now();
    const time_point t = budget_.earliest(now);
    if (t == time_point::max()) return std::nullopt;
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t - now);
  }

  void pause_until(time_point t) {
    std::lock_guard lock(mutex_);
    budget_.pause_until(t);
    settle();
  }

  std::size_t waiting() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }

  limiter_statistics statistics() const {
    std::lock_guard lock(mutex_);
    return statistics_;
  }

  // Completes every queued waiter with operation_aborted. The timer is
  // destroyed with this object, when the limiter lets go of it or, if a strand
  // job holds it at that moment, when that job ends; the timer's pending wait
  // then completes with operation_aborted and finds nothing left to do.
  void shutdown() {
    std::lock_guard lock(mutex_);
    closing_ = true;
    while (!queue_.empty()) abort(queue_.front());
  }

 private:
  friend struct waiter_cancel_handler<limiter_core>;

  // A waiter is cancelled or granted under the mutex, never both: whichever
  // comes first changes its state and the other finds it no longer queued.
  void cancel(limiter_waiter* w) {
    std::lock_guard lock(mutex_);
    if (w->state != waiter_state::queued) return;
    abort(w);
    settle();
  }

  void abort(limiter_waiter* w) {
    queue_.erase(w);
    w->state = waiter_state::aborted;
    ++statistics_.cancelled;
    w->post_completion(detail::asio_error(asio::error::operation_aborted), limiter_permit{});
  }

  // Holds a slot for a request starting now (mutex held).
  limiter_permit grant() {
    budget_.hold();
    ++statistics_.granted;
    return limiter_permit(this->shared_from_this());
  }

  // Grants, in order, every waiter the budget allows at `now`.
  void grant_ready(time_point now) {
    while (!queue_.empty() && budget_.earliest(now) <= now) {
      limiter_waiter* w = queue_.front();
      queue_.erase(w);
      w->state = waiter_state::granted;
      w->post_completion({}, grant());
    }
  }

  // When the timer should fire: at the head's earliest start, or never when
  // nobody waits or only a release can let the head through. The earliest
  // start depends on the budget alone, so a cancelled head leaves it
  // unchanged for the next waiter.
  std::optional<time_point> wanted_expiry(time_point now) const {
    if (queue_.empty()) return std::nullopt;
    const time_point t = budget_.earliest(now);
    if (t == time_point::max()) return std::nullopt;
    return t;
  }

  // After any change (mutex held): grant what fits now, and have the strand
  // bring the timer in line with the queue.
  void settle() {
    const time_point now = Clock::now();
    grant_ready(now);
    if (wanted_expiry(now) != armed_ && !sync_posted_) {
      sync_posted_ = true;
      asio::post(strand_, [weak = this->weak_from_this()] {
        if (auto self = weak.lock()) self->sync_timer();
      });
    }
  }

  void sync_timer() {
    std::unique_lock lock(mutex_);
    sync_posted_ = false;
    rearm(lock);
  }

  void on_timer(std::uint64_t generation) {
    std::unique_lock lock(mutex_);
    if (generation != generation_) return;  // superseded by a later arm or cancel
    armed_.reset();
    rearm(lock);
  }

  // On the strand, mutex held on entry. The timer is touched only here, on
  // the strand, and outside the mutex; `armed_` is updated under the mutex
  // first, so a concurrent settle() sees the expiry the timer is getting.
  void rearm(std::unique_lock<std::mutex>& lock) {
    const time_point now = Clock::now();
    grant_ready(now);
    const std::optional<time_point> wanted = wanted_expiry(now);
    if (wanted == armed_) return;
    armed_ = wanted;
    const std::uint64_t generation = ++generation_;
    lock.unlock();
    if (!wanted) {
      timer_.cancel();
      return;
    }
    timer_.expires_at(*wanted);
    timer_.async_wait([weak = this->weak_from_this(), generation](std::error_code) {
      if (auto self = weak.lock()) self->on_timer(generation);
    });
  }

  const executor_type executor_;
  const asio::strand<executor_type> strand_;
  timer_for<Clock> timer_;  // runs its handlers on strand_

  mutable std::mutex mutex_;
  Budget budget_;
  waiter_queue queue_;
  limiter_statistics statistics_;
  std::optional<time_point> armed_;  // the expiry the timer is armed (or being armed) for
  std::uint64_t generation_ = 0;     // bumped on every arm or cancel of the timer
  bool sync_posted_ = false;
  bool closing_ = false;             // shut down: post nothing more
};

/// The machinery of `basic_sliding_window_limiter` and
/// `basic_token_bucket_limiter`: an asynchronous, FIFO-fair, thread-safe gate
/// in front of a start budget.
///
/// Each grant is a `limiter_permit`: the slot stays held until the permit is
/// released, when the request's answer (or failure) is known, and the request
/// counts against the budget from then on. However long requests take, the
/// server never sees more than the budget (the proof and the utilisation
/// cost, W / (W + latency), are in limiter_budget.hpp).
///
/// Waiters are granted strictly in the order they called `async_acquire`, each
/// at the earliest time the budget allows; a later caller never overtakes a
/// queued one. Completions are always posted to the handler's associated
/// executor, never run inside `async_acquire`. All members may be called from
/// any thread. Like any Asio I/O object, the limiter must be destroyed before
/// its execution context.
template <clock Clock, start_budget<typename Clock::time_point> Budget>
class basic_limiter {
 public:
  using clock_type = Clock;
  using duration = typename Clock::duration;
  using time_point = typename Clock::time_point;
  using executor_type = asio::any_io_executor;

  /// A limiter whose timer runs on (a strand of) `ex`.
  basic_limiter(const executor_type& ex, Budget budget) : core_(std::make_shared<core>(ex, std::move(budget))) {}

  basic_limiter(const basic_limiter&) = delete;
  basic_limiter& operator=(const basic_limiter&) = delete;

  /// Completes every queued wait with `asio::error::operation_aborted` (posted
  /// to each handler's executor) and cancels the timer: no wait, timer or
  /// handler of the limiter outlives the run of its execution context.
  ~basic_limiter() { core_->shutdown(); }

  executor_type get_executor() const noexcept { return core_->executor(); }

  /// Waits for a slot for one request: queues behind every earlier waiter
  /// and completes, on the handler's associated executor (never inside this
  /// call), when the budget allows one more request and no pause is in force.
  ///
  /// @par Completion Signature
  /// `void(error_code, limiter_permit)`: success with a permit once every
  /// earlier waiter has been granted and the budget allows one more request;
  /// hold the permit until the request's answer is known.
  /// `asio::error::operation_aborted` with an empty permit if the wait is
  /// cancelled or the limiter is destroyed. With `asio::use_awaitable`,
  /// `co_await` yields the `limiter_permit` or throws
  /// `std::system_error(operation_aborted)`.
  ///
  /// @par Per-Operation Cancellation
  /// Terminal, partial and total: a queued wait has had no effect yet, so a
  /// cancelled one consumes nothing and the next waiter keeps its time. The
  /// limiter is local: no request has been sent, nothing happens remotely.
  /// As everywhere in Asio, emit the signal where the handler runs (its
  /// associated executor), not concurrently from another thread. Whichever
  /// comes first wins: a wait already granted completes with its permit.
  ///
  /// @par Errors
  /// Only `asio::error::operation_aborted` (`statistics().cancelled` counts them).
  ///
  /// Works with every completion token. No default completion token: the
  /// executor type is `asio::any_io_executor`, whose
  /// `asio::default_completion_token_t` is `void` in Asio 1.22 (a default
  /// would compile only to fail at the call); pass `asio::use_awaitable`,
  /// a callback, `asio::use_future`, ...
  template <class CompletionToken>
  auto async_acquire(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(error_code, limiter_permit)>(
        [c = core_.get()](auto handler) { c->start(std::move(handler)); }, token);
  }

  /// A permit now if nobody is queued and the budget allows one more
  /// request; an empty permit otherwise. Never waits.
  limiter_permit try_acquire() { return core_->try_acquire(); }

  /// Grants nothing, to queued or new waiters, before `t`. A pause that ends
  /// earlier than one already in force changes nothing.
  void pause_until(time_point t) { core_->pause_until(t); }

  /// `pause_until(Clock::now() + d)`, with `d` rounded up to the clock's tick.
  template <class Rep, class Period>
  void pause_for(std::chrono::duration<Rep, Period> d) {
    pause_until(Clock::now() + std::chrono::ceil<duration>(d));
  }

  /// How many `async_acquire` calls are queued.
  std::size_t waiting() const { return core_->waiting(); }

  /// How many permits are held now (granted and not released).
  std::size_t in_use() const { return core_->in_use(); }

  /// How long an `async_acquire` started now would wait if nothing else
  /// changed; none when that depends on others (waiters are queued, or every
  /// slot is held until an answer).
  std::optional<std::chrono::nanoseconds> expected_wait() const { return core_->expected_wait(); }

  /// Permits granted and released, and waits aborted, so far.
  limiter_statistics statistics() const { return core_->statistics(); }

 private:
  using core = limiter_core<Clock, Budget>;
  std::shared_ptr<core> core_;
};

}  // namespace detail
}  // namespace jobpoll
