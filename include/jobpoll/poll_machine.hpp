#pragma once
// The poll loop as a state machine ("sans-io"): it takes events (the loop
// started, a wait ended, the limiter granted or refused, a poll answered or
// timed out, the caller cancelled) and returns the next action (wait, yield,
// take a limiter slot, poll, pause the limiter, finish). Every rule of the
// loop lives here; the Asio shells (`async_poll_until`, `poll_until`) only
// carry the actions out and report what happened. No Asio, no clock: time
// comes in as "elapsed since the start", so tests drive it directly.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "jobpoll/detail/asio_error.hpp"

#include "jobpoll/delay_policy.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/observer.hpp"
#include "jobpoll/poll_result.hpp"
#include "jobpoll/poll_schedule.hpp"
#include "jobpoll/poll_status.hpp"

namespace jobpoll {

/// What the shell does next.
enum class poll_step : unsigned char {
  wait,           ///< wait `duration` (`reason`, `clipped`), then report `waited()`
  yield,          ///< let other work on the executor run (a zero wait), then report `waited()`
  try_acquire,    ///< ask the limiter for a free slot now: `granted()` or `limiter_busy()`
  acquire,        ///< wait for a limiter slot, for at most `bound` when `bounded`:
                  ///< `granted()`, `limiter_failed(errc::timeout)` when the bound passes, or
                  ///< `limiter_failed(ec)` when the limiter aborts the wait
  poll,           ///< poll once, cancelled after `bound` when `bounded`:
                  ///< `answered()` with the classification, or `attempt_timed_out()`
  pause_limiter,  ///< hold back every user of the limiter for `duration`, then report `paused()`
  finish,         ///< the poll is over; `error` says why (empty: succeeded)
};

/// The name of a step, e.g. "acquire" (for logs and test messages).
inline const char* to_string(poll_step s) noexcept {
  switch (s) {
    case poll_step::wait: return "wait";
    case poll_step::yield: return "yield";
    case poll_step::try_acquire: return "try_acquire";
    case poll_step::acquire: return "acquire";
    case poll_step::poll: return "poll";
    case poll_step::pause_limiter: return "pause_limiter";
    case poll_step::finish: return "finish";
  }
  return "invalid";
}

/// One action of the machine; which fields mean something depends on `step`.
struct poll_action {
  /// wait and pause_limiter: their length; acquire: the wait to report to
  /// `on_wait` (the limiter's expected wait, or the time left when shorter).
  std::chrono::nanoseconds duration{};
  std::chrono::nanoseconds bound{};       ///< acquire: the time left to the deadline; poll: the attempt timeout
  std::error_code error;                  ///< finish: empty on success, else why
  poll_step step = poll_step::finish;
  bool bounded = false;                   ///< acquire/poll: `bound` limits it
  bool clipped = false;                   ///< wait/acquire: shortened to the deadline
  wait_reason reason = wait_reason::interval;  ///< wait/acquire: why (for `poll_hooks::on_wait`)

  /// The `poll_hooks::on_wait` event of a wait or acquire action.
  wait_event wait_report(std::size_t attempts) const noexcept { return {attempts, reason, duration, clipped}; }
};

/// The decisions of one poll, from its start to its end.
///
/// A shell calls `start()`, carries out each returned action, and reports its
/// outcome through the matching event function, until an action is `finish`.
/// Rules (the README's "The loop and its rules"):
/// - the initial delay comes first, clipped so the first poll happens no
///   later than the deadline; at least one poll always happens;
/// - with a limiter, every poll takes a slot first: a free one at once, else
///   a wait that, once a poll has happened, is bounded by the deadline;
/// - an attempt timeout bounds each poll; an attempt that passes it is a
///   transient failure (`errc::attempt_timeout`);
/// - a hinted transient failure (429 + Retry-After) pauses the limiter for
///   the hint, within the hint bounds, for everyone sharing it;
/// - waits, retries, hints and the deadline as `poll_schedule` decides them;
///   between two polls with no wait the poller yields, so it cannot starve
///   its executor;
/// - cancellation ends the poll with `operation_aborted`.
class poll_machine {
 public:
  /// Everything the machine decides from, but the time budget, which
  /// `start` takes.
  struct settings {
    any_delay interval;
    any_delay backoff;
    std::size_t max_retries = 5;
    hint_bounds hints;
    std::chrono::nanoseconds initial_delay{};
    std::optional<std::chrono::nanoseconds> attempt_timeout;
    bool limited = false;  ///< a limiter is shared with other pollers
    poll_progress resume;  ///< continue an earlier poll of the same job
  };

  explicit poll_machine(settings s)
      : schedule_(std::move(s.interval), std::move(s.backoff), s.max_retries, std::nullopt, s.hints),
        initial_delay_(s.initial_delay),
        attempt_timeout_(s.attempt_timeout),
        resumed_attempts_(s.resume.attempts),
        limited_(s.limited) {
    schedule_.resume(s.resume);
  }

  /// The first action: the initial wait, or the first poll's limiter slot or
  /// poll. `budget` is the time from now to the deadline (none: no
  /// deadline): the one conversion of the caller's deadline, made when the
  /// poll really starts; every later check measures elapsed time against it.
  poll_action start(std::optional<std::chrono::nanoseconds> budget = std::nullopt) {
    schedule_.set_budget(budget);
    return proceed(schedule_.start(initial_delay_));
  }

  /// A `wait` or `yield` action ended normally.
  poll_action waited() {
    waited_ += pending_wait_;
    pending_wait_ = {};
    return limited_ ? act(poll_step::try_acquire) : poll();
  }

  /// The limiter had no free slot at `elapsed` (`expected`: how long it
  /// thinks the wait will be, when it can tell).
  poll_action limiter_busy(std::chrono::nanoseconds elapsed, std::optional<std::chrono::nanoseconds> expected) {
    busy_since_ = elapsed;
    acquiring_ = true;
    poll_action a = act(poll_step::acquire);
    a.reason = wait_reason::limiter;
    a.duration = expected.value_or(std::chrono::nanoseconds::zero());
    // Before the first poll the deadline is not checked, so neither is the wait bounded.
    if (auto left = polled() ? schedule_.remaining(elapsed) : std::nullopt) {
      if (*left <= std::chrono::nanoseconds::zero()) return limiter_failed(errc::timeout);
      a.bounded = true;
      a.bound = *left;
      a.clipped = a.duration == std::chrono::nanoseconds::zero() || *left < a.duration;
      if (a.clipped) a.duration = *left;
    }
    return a;
  }

  /// `try_acquire` got a slot at once.
  poll_action granted_now() { return poll(); }

  /// The `acquire` wait got a slot at `elapsed`.
  poll_action granted(std::chrono::nanoseconds elapsed) {
    limiter_waited_ += elapsed - busy_since_;
    acquiring_ = false;
    return poll();
  }

  /// The `acquire` wait ended without a slot: `errc::timeout` when its bound
  /// passed, `operation_aborted` when the limiter aborted it.
  poll_action limiter_failed(std::error_code ec) {
    acquiring_ = false;
    return finish(ec);
  }

  /// Between an `acquire` action and its outcome.
  bool acquiring() const noexcept { return acquiring_; }

  /// The poll answered (or failed) and was classified as `status`, at `elapsed`.
  poll_action answered(poll_status&& status, std::chrono::nanoseconds elapsed) {
    last_ = std::move(status);
    elapsed_ = elapsed;
    if (limited_ && last_.state == job_state::transient_error && last_.retry_after)
      return act(poll_step::pause_limiter, schedule_.bounded_hint(*last_.retry_after));
    return decide();
  }

  /// The poll did not answer within the attempt timeout (it was cancelled), at `elapsed`.
  poll_action attempt_timed_out(std::chrono::nanoseconds elapsed) {
    return answered(poll_status::transient(errc::attempt_timeout,
                                           "no answer within " + detail::format_seconds(attempt_timeout_.value_or(
                                                                     std::chrono::nanoseconds::zero()))),
                    elapsed);
  }

  /// The `pause_limiter` action was carried out.
  poll_action paused() { return decide(); }

  /// The caller cancelled the poll (checked by the shell after each wait and poll).
  poll_action cancelled() { return finish(detail::asio_error(asio::error::operation_aborted)); }

  /// Polls made, counting those of the poll this one resumes.
  std::size_t attempts() const noexcept { return schedule_.attempts() + in_flight_; }
  /// The last classification (pending before any poll).
  const poll_status& last() const noexcept { return last_; }
  poll_status& last() noexcept { return last_; }
  /// Whether the shell needs to read the clock after each poll (a deadline to
  /// check; hooks to tell are the shell's own reason), once started.
  bool needs_time() const noexcept { return schedule_.remaining(std::chrono::nanoseconds::zero()).has_value(); }

  /// The counts of the poll so far, with `elapsed` as its length.
  poll_stats stats(std::chrono::nanoseconds elapsed) const noexcept {
    poll_stats s;
    s.attempts = attempts();
    s.pending_polls = schedule_.pending_polls();
    s.transient_failures = schedule_.transient_failures();
    s.consecutive_failures = schedule_.consecutive_failures();
    s.waited = waited_;
    s.limiter_waited = limiter_waited_;
    s.elapsed = elapsed;
    return s;
  }

 private:
  bool polled() const noexcept { return attempts() > resumed_attempts_; }

  poll_action poll() {
    in_flight_ = 1;  // counted from the moment it is sent, as hooks and messages report it
    poll_action a = act(poll_step::poll);
    if (attempt_timeout_) {
      a.bounded = true;
      a.bound = *attempt_timeout_;
    }
    return a;
  }

  poll_action decide() {
    in_flight_ = 0;
    return proceed(schedule_.after_poll(last_, elapsed_));
  }

  // Turns the schedule's decision into the next action.
  poll_action proceed(const poll_decision& d) {
    if (d.finish) return finish(d.error);
    if (d.wait > std::chrono::nanoseconds::zero()) {
      pending_wait_ = d.wait;
      poll_action a = act(poll_step::wait, d.wait);
      a.reason = d.reason;
      a.clipped = d.clipped;
      return a;
    }
    if (polled()) return act(poll_step::yield);
    return limited_ ? act(poll_step::try_acquire) : poll();
  }

  static poll_action act(poll_step step, std::chrono::nanoseconds duration = {}) {
    poll_action a;
    a.step = step;
    a.duration = duration;
    return a;
  }

  static poll_action finish(std::error_code ec) {
    poll_action a = act(poll_step::finish);
    a.error = ec;
    return a;
  }

  poll_schedule schedule_;
  std::chrono::nanoseconds initial_delay_;
  std::optional<std::chrono::nanoseconds> attempt_timeout_;
  std::size_t resumed_attempts_;
  std::size_t in_flight_ = 0;  // 1 from a poll action to its outcome
  bool limited_;
  bool acquiring_ = false;
  poll_status last_;
  std::chrono::nanoseconds elapsed_{};
  std::chrono::nanoseconds pending_wait_{};
  std::chrono::nanoseconds waited_{};
  std::chrono::nanoseconds limiter_waited_{};
  std::chrono::nanoseconds busy_since_{};
};

}  // namespace jobpoll
