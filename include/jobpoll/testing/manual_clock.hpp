#pragma once
// A clock that only moves when a test moves it, and a timer that waits on it.
// With these, every wait of jobpoll (intervals, backoff, limiters, deadlines)
// runs instantly and exactly in tests: no sleeps, no OS timers.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

#include "jobpoll/detail/asio_forward.hpp"

namespace jobpoll::testing {

/// A steady clock whose `now()` starts at zero and changes only through
/// `advance`, `set` or `run`. State is process-wide (clocks have a static
/// `now()`) and thread-safe; call `reset()` at the start of each test.
class manual_clock {
 public:
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::duration<rep, period>;
  using time_point = std::chrono::time_point<manual_clock, duration>;
  static constexpr bool is_steady = true;

  class timer;
  using timer_type = timer;

  static time_point now() noexcept { return time_point{duration{ticks().load(std::memory_order_acquire)}}; }

  /// Moves time forward by `d`, firing every timer that falls due, in order of
  /// expiry, with `now()` equal to each timer's expiry as it fires. Handlers
  /// are posted to their executors, not run here.
  static void advance(duration d) { advance_to(now() + d); }

  /// Like `advance`, to an absolute point (never backwards).
  static void advance_to(time_point target);

  /// Back to time zero; pending timers are cancelled (operation_aborted).
  static void reset();

  /// Expiry of the earliest pending wait, or `time_point::max()` if none.
  static time_point next_expiry();

  /// Number of pending timer waits (for "nothing left behind" checks).
  static std::size_t pending_waits();

  /// Runs `ctx` and simulated time together: runs every ready handler, then
  /// jumps to the next timer expiry, and so on, until no handler is ready and
  /// no wait is pending, or the next expiry lies more than `limit` after the
  /// start. Returns the simulated time that passed.
  static duration run(asio::io_context& ctx, duration limit = std::chrono::hours(24 * 365));

  /// Like `run`, but stops at `now() + d` exactly (time ends there even if
  /// nothing was due).
  static void run_for(asio::io_context& ctx, duration d);

 private:
  struct waiter {
    virtual ~waiter() = default;
    // `clear_slot` is false when called from the cancellation handler itself,
    // which must not destroy itself while it runs.
    virtual void complete(std::error_code ec, bool clear_slot) = 0;
  };
  using key = std::pair<time_point, std::uint64_t>;

  struct state {
    std::mutex mutex;
    std::map<key, std::unique_ptr<waiter>> waits;
    std::uint64_t sequence = 0;
  };

  static std::atomic<rep>& ticks() noexcept {
    static std::atomic<rep> value{0};
    return value;
  }
  static state& shared() {
    static state s;
    return s;
  }
  // Fires the earliest wait if it is due at or before `limit`.
  static bool fire_earliest(time_point limit);
  static void poll_ready(asio::io_context& ctx) {
    ctx.restart();
    ctx.poll();
  }
};

/// A timer on `manual_clock` with the interface of `asio::basic_waitable_timer`
/// that jobpoll uses. Waits complete when the clock is advanced past their
/// expiry, with `operation_aborted` on `cancel()`, on a new expiry, on
/// destruction, or through the handler's cancellation slot.
class manual_clock::timer {
 public:
  using clock_type = manual_clock;
  using duration = manual_clock::duration;
  using time_point = manual_clock::time_point;
  using executor_type = asio::any_io_executor;

  explicit timer(const executor_type& ex) : executor_(ex) {}
  template <class ExecutionContext>
    requires std::convertible_to<ExecutionContext&, asio::execution_context&>
  explicit timer(ExecutionContext& ctx) : executor_(ctx.get_executor()) {}
  timer(const timer&) = delete;
  timer& operator=(const timer&) = delete;
  ~timer() { cancel(); }

  executor_type get_executor() const { return executor_; }
  time_point expiry() const { return expiry_; }

  std::size_t expires_at(time_point t) {
    std::size_t n = cancel();
    expiry_ = t;
    return n;
  }
  std::size_t expires_after(duration d) { return expires_at(manual_clock::now() + d); }

  /// Completes every pending wait of this timer with `operation_aborted`.
  std::size_t cancel() {
    std::size_t n = 0;
    auto& s = shared();
    std::unique_lock lock(s.mutex);
    // Only this timer's own keys: a process-wide scan would make many timers quadratic.
    for (const key& k : keys_) {
      auto it = s.waits.find(k);
      if (it == s.waits.end()) continue;  // already fired or cancelled
      auto w = std::move(it->second);
      s.waits.erase(it);
      w->complete(detail::asio_error(asio::error::operation_aborted), true);
      ++n;
    }
    keys_.clear();
    return n;
  }

  template <class CompletionToken>
  auto async_wait(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(error_code)>(
        [this](auto handler) { this->start_wait(std::move(handler)); }, token);
  }

 private:
  template <class Handler>
  struct handler_waiter final : waiter {
    handler_waiter(Handler h, const executor_type& timer_ex)
        : handler(std::move(h)),
          work(asio::prefer(asio::get_associated_executor(handler, timer_ex),
                            asio::execution::outstanding_work.tracked)) {}

    void complete(std::error_code ec, bool clear_slot) override {
      auto slot = asio::get_associated_cancellation_slot(handler);
      if (clear_slot && slot.is_connected()) slot.clear();
      auto ex = asio::get_associated_executor(handler, work);
      asio::post(ex, [h = std::move(handler), ec = detail::to_error_code(ec), w = std::move(work)]() mutable {
        std::move(h)(ec);
      });
    }

    Handler handler;
    asio::any_io_executor work;
  };

  template <class Handler>
  void start_wait(Handler handler) {
    auto slot = asio::get_associated_cancellation_slot(handler);
    auto w = std::make_unique<handler_waiter<Handler>>(std::move(handler), executor_);
    auto& s = shared();
    std::unique_lock lock(s.mutex);
    key k{expiry_, s.sequence++};
    if (expiry_ <= manual_clock::now()) {
      // Already due: complete through post, never inside the initiating call.
      w->complete({}, true);
      return;
    }
    if (slot.is_connected()) {
      slot.assign([k](asio::cancellation_type) {
        auto& st = shared();
        std::unique_lock l(st.mutex);
        auto it = st.waits.find(k);
        if (it == st.waits.end()) return;
        auto found = std::move(it->second);
        st.waits.erase(it);
        found->complete(detail::asio_error(asio::error::operation_aborted), false);
      });
    }
    s.waits.emplace(k, std::move(w));
    keys_.push_back(k);
  }

  executor_type executor_;
  time_point expiry_{};
  std::vector<key> keys_;  // waits started since the last cancel (some may have fired)
};

inline bool manual_clock::fire_earliest(time_point limit) {
  auto& s = shared();
  std::unique_lock lock(s.mutex);
  if (s.waits.empty() || s.waits.begin()->first.first > limit) return false;
  auto node = s.waits.extract(s.waits.begin());
  const auto due = node.key().first.time_since_epoch().count();
  if (due > ticks().load(std::memory_order_acquire)) ticks().store(due, std::memory_order_release);
  node.mapped()->complete({}, true);
  return true;
}

inline void manual_clock::advance_to(time_point target) {
  while (fire_earliest(target)) {
  }
  {
    // Under the mutex, so a wait armed on another thread meanwhile is either
    // already in `waits` (fired below) or sees the new time in start_wait.
    std::unique_lock lock(shared().mutex);
    if (target > now()) ticks().store(target.time_since_epoch().count(), std::memory_order_release);
  }
  while (fire_earliest(target)) {
  }
}

inline void manual_clock::reset() {
  auto& s = shared();
  std::unique_lock lock(s.mutex);
  while (!s.waits.empty()) {
    auto node = s.waits.extract(s.waits.begin());
    node.mapped()->complete(detail::asio_error(asio::error::operation_aborted), true);
  }
  ticks().store(0, std::memory_order_release);
}

inline manual_clock::time_point manual_clock::next_expiry() {
  auto& s = shared();
  std::unique_lock lock(s.mutex);
  return s.waits.empty() ? time_point::max() : s.waits.begin()->first.first;
}

inline std::size_t manual_clock::pending_waits() {
  auto& s = shared();
  std::unique_lock lock(s.mutex);
  return s.waits.size();
}

// Both runners fire one wait at a time and run what became ready before the
// next, so every handler sees time move exactly as it would in real time.
inline manual_clock::duration manual_clock::run(asio::io_context& ctx, duration limit) {
  const time_point start = now();
  do {
    poll_ready(ctx);
  } while (fire_earliest(start + limit));
  return now() - start;
}

inline void manual_clock::run_for(asio::io_context& ctx, duration d) {
  const time_point target = now() + d;
  do {
    poll_ready(ctx);
  } while (fire_earliest(target));
  if (target > now()) ticks().store(target.time_since_epoch().count(), std::memory_order_release);
  poll_ready(ctx);
}

}  // namespace jobpoll::testing
