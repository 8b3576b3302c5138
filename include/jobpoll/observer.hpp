#pragma once
// What a caller can watch during a poll (hooks) and read after it (stats).

#include <chrono>
#include <cstddef>
#include <functional>
#include <system_error>

#include "jobpoll/detail/asio_error.hpp"
#include "jobpoll/poll_schedule.hpp"
#include "jobpoll/poll_status.hpp"

namespace jobpoll {

/// Counters of one poll, readable from the result, the error and `on_end`.
struct poll_stats {
  std::size_t attempts = 0;                 ///< polls made (including failed attempts)
  std::size_t pending_polls = 0;            ///< polls that said "pending"
  std::size_t transient_failures = 0;       ///< transient failures over the whole poll
  std::size_t consecutive_failures = 0;     ///< transient failures in a row when it ended
  std::chrono::nanoseconds waited{};        ///< time spent in interval / backoff / hint / initial waits
  std::chrono::nanoseconds limiter_waited{};///< time spent waiting for the rate limiter
  std::chrono::nanoseconds elapsed{};       ///< from the start of the poll to its end

  /// Where this poll stopped, to resume it later (`poll_options::resume`).
  poll_progress progress() const noexcept { return {attempts, consecutive_failures}; }
};

/// Passed to `on_poll` after each attempt has been classified.
struct poll_event {
  std::size_t attempt;               ///< 1 for the first poll
  const poll_status& status;         ///< state, progress, detail, hint
  std::chrono::nanoseconds elapsed;  ///< since the start of the poll
};

/// Passed to `on_wait` before each wait. For a limiter wait, `duration` is
/// how long the limiter expects it to last if nothing else changes (0 when
/// it cannot tell: others are queued, or every slot is held until an
/// answer), shortened to the deadline once a poll has happened; the time
/// it really took is added to `poll_stats::limiter_waited`.
struct wait_event {
  std::size_t attempt;               ///< attempts made so far
  wait_reason reason;
  std::chrono::nanoseconds duration;
  bool clipped_by_deadline;          ///< shortened so the next poll lands on the deadline
};

/// Passed to `on_end` once, however the poll ends (cancellation included).
struct end_event {
  error_code error;                  ///< empty on success (the Asio backend's code, as poll_result's)
  const poll_status& last_status;    ///< the last classification (pending if no poll happened)
  const poll_stats& stats;
};

/// Optional callbacks, called on the poll's executor; an empty one is skipped.
/// Set `options.hooks = &hooks;` — one object can serve any number of polls.
/// They must not throw: an exception from a hook propagates out of the poll.
struct poll_hooks {
  std::function<void(const poll_event&)> on_poll;
  std::function<void(const wait_event&)> on_wait;
  std::function<void(const end_event&)> on_end;
};

}  // namespace jobpoll
