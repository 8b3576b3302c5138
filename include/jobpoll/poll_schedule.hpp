#pragma once
// The decisions of the poll loop, kept apart from the waiting ("sans-io"):
// given what the last poll said and how much time has passed, what happens
// next and why. No Asio, no clock: tests drive it directly.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string_view>
#include <system_error>

#include "jobpoll/delay_policy.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/poll_status.hpp"

namespace jobpoll {

/// Why the loop waits.
enum class wait_reason {
  initial_delay,  ///< the wait before the first poll
  interval,       ///< after a pending response, from the interval policy
  backoff,        ///< after a transient failure, from the backoff policy
  hint,           ///< a server hint (Retry-After, a body field) replaced the computed wait
  limiter,        ///< the shared rate limiter held the poll back
};

/// The enumerator's name, e.g. "backoff" (for logs and hooks).
inline std::string_view to_string(wait_reason r) noexcept {
  switch (r) {
    case wait_reason::initial_delay: return "initial_delay";
    case wait_reason::interval: return "interval";
    case wait_reason::backoff: return "backoff";
    case wait_reason::hint: return "hint";
    case wait_reason::limiter: return "limiter";
  }
  return "invalid";
}

/// Bounds applied to a server hint before it replaces the computed wait: a
/// hint below `floor` is raised to it (a "Retry-After: 0" must not turn the
/// loop into a busy loop), one above `ceiling` is lowered to it.
struct hint_bounds {
  std::chrono::nanoseconds floor{0};
  std::chrono::nanoseconds ceiling{std::chrono::hours(1)};

  /// `hint` raised to `floor` and lowered to `ceiling` (a ceiling below the
  /// floor counts as the floor).
  std::chrono::nanoseconds bound(std::chrono::nanoseconds hint) const {
    return std::clamp(hint, floor, std::max(floor, ceiling));
  }
};

/// Where an earlier poll of the same job stopped. A poll resumed from it (a
/// saved handle polled again later) continues its counts: attempts go on from
/// `attempts`, and only what was left of the retry budget remains.
struct poll_progress {
  std::size_t attempts = 0;              ///< polls made before
  std::size_t consecutive_failures = 0;  ///< transient failures in a row when it stopped
};

/// What the loop does next.
struct poll_decision {
  bool finish = false;             ///< stop polling; `error` says why (empty: succeeded)
  std::error_code error;           ///< when finishing: empty on success, else the reason
  std::chrono::nanoseconds wait{}; ///< when continuing: how long to wait before the next poll
  wait_reason reason = wait_reason::interval;
  bool clipped = false;            ///< the wait was shortened so the next poll lands on the deadline

  static poll_decision finished(std::error_code ec) { return {true, ec, {}, {}, false}; }
};

/// The state machine of one poll: counts attempts and consecutive transient
/// failures, draws waits from the interval and backoff policies, applies
/// server hints within their bounds, and enforces the deadline.
///
/// Time is passed in as "elapsed since the poll started", so the schedule
/// never reads a clock.
class poll_schedule {
 public:
  /// `budget` is the time from the start to the deadline (none: no deadline).
  /// `max_retries` is how many consecutive transient failures are tolerated;
  /// one more ends the poll with `errc::retries_exhausted`.
  poll_schedule(any_delay interval, any_delay backoff, std::size_t max_retries,
                std::optional<std::chrono::nanoseconds> budget, hint_bounds hints = {})
      : interval_(std::move(interval)),
        backoff_(std::move(backoff)),
        max_retries_(max_retries),
        budget_(budget),
        hints_(hints) {}

  /// Sets the time from the start to the deadline (none: no deadline), for a
  /// schedule made before its poll starts (before the first decision).
  void set_budget(std::optional<std::chrono::nanoseconds> budget) noexcept { budget_ = budget; }

  /// Continues the counts of an earlier poll of the same job (before the first poll).
  void resume(poll_progress from) noexcept {
    attempts_ = from.attempts;
    consecutive_failures_ = from.consecutive_failures;
  }

  /// The wait before the first poll: `initial_delay`, clipped so that the
  /// first poll happens no later than the deadline.
  poll_decision start(std::chrono::nanoseconds initial_delay) const {
    return clip({false, {}, std::max(initial_delay, std::chrono::nanoseconds::zero()), wait_reason::initial_delay, false},
                std::chrono::nanoseconds::zero());
  }

  /// Decides after a poll that ended `elapsed` after the start with `status`.
  ///
  /// - succeeded: finish with no error; failed: finish with `job_failed`;
  ///   permanent error: finish with the status' code (`permanent_error` if none).
  /// - pending: the retry budget is restored (backoff reset), wait the interval.
  /// - transient error: one more consecutive failure; past `max_retries`,
  ///   finish with `retries_exhausted`; else wait the backoff.
  /// - a server hint replaces the computed wait, within the hint bounds.
  /// - non-terminal at or past the deadline: finish with `timeout`; else the
  ///   wait is clipped so the next poll lands on the deadline.
  poll_decision after_poll(const poll_status& status, std::chrono::nanoseconds elapsed) {
    ++attempts_;
    // Only transient failures continue a run of failures: an answer that
    // ends the poll leaves none behind for a resume to inherit.
    if (status.state != job_state::transient_error) consecutive_failures_ = 0;
    poll_decision d;
    switch (status.state) {
      case job_state::succeeded:
        return poll_decision::finished({});
      case job_state::failed:
        return poll_decision::finished(errc::job_failed);
      case job_state::permanent_error:
        return poll_decision::finished(status.error ? status.error : make_error_code(errc::permanent_error));
      case job_state::pending:
        ++pending_;
        backoff_.reset();
        d = {false, {}, interval_.next(), wait_reason::interval, false};
        break;
      case job_state::transient_error:
        ++transient_total_;
        if (++consecutive_failures_ > max_retries_) return poll_decision::finished(errc::retries_exhausted);
        d = {false, {}, backoff_.next(), wait_reason::backoff, false};
        break;
    }
    if (status.retry_after) {
      d.wait = bounded_hint(*status.retry_after);
      d.reason = wait_reason::hint;
    }
    if (budget_ && elapsed >= *budget_) return poll_decision::finished(errc::timeout);
    d.wait = std::max(d.wait, std::chrono::nanoseconds::zero());
    return clip(d, elapsed);
  }

  /// A server hint raised to the floor and lowered to the ceiling of the hint bounds.
  std::chrono::nanoseconds bounded_hint(std::chrono::nanoseconds hint) const { return hints_.bound(hint); }

  /// Polls decided on so far.
  std::size_t attempts() const noexcept { return attempts_; }
  /// Polls that said "pending".
  std::size_t pending_polls() const noexcept { return pending_; }
  /// Transient failures in a row right now (0 after any good poll).
  std::size_t consecutive_failures() const noexcept { return consecutive_failures_; }
  /// Transient failures over the whole poll.
  std::size_t transient_failures() const noexcept { return transient_total_; }
  /// Time left before the deadline at `elapsed` (none without a deadline).
  std::optional<std::chrono::nanoseconds> remaining(std::chrono::nanoseconds elapsed) const {
    if (!budget_) return std::nullopt;
    return std::max(*budget_ - elapsed, std::chrono::nanoseconds::zero());
  }

 private:
  poll_decision clip(poll_decision d, std::chrono::nanoseconds elapsed) const {
    if (auto left = remaining(elapsed); left && d.wait > *left) {
      d.wait = *left;
      d.clipped = true;
    }
    return d;
  }

  any_delay interval_;
  any_delay backoff_;
  std::size_t max_retries_;
  std::optional<std::chrono::nanoseconds> budget_;
  hint_bounds hints_;
  std::size_t attempts_ = 0;
  std::size_t pending_ = 0;
  std::size_t consecutive_failures_ = 0;
  std::size_t transient_total_ = 0;
};

}  // namespace jobpoll
