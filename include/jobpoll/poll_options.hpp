#pragma once
// Everything that shapes one poll, as one plain aggregate.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "jobpoll/backoff.hpp"
#include "jobpoll/clock.hpp"
#include "jobpoll/deadline.hpp"
#include "jobpoll/delay_policy.hpp"
#include "jobpoll/interval.hpp"
#include "jobpoll/observer.hpp"
#include "jobpoll/poll_result.hpp"
#include "jobpoll/poll_schedule.hpp"
#include "jobpoll/rate_limiter.hpp"

namespace jobpoll {

/// Options of `poll_until` on `Clock`. The defaults are those of the
/// load-job contract the library grew from: poll every 2 s, give up after
/// 300 s, tolerate 5 transient failures in a row.
///
/// ```
/// jobpoll::poll_options opts;
/// opts.deadline = 60s;
/// opts.interval = jobpoll::exponential_interval{1s, 2.0, 10s};
/// ```
template <clock Clock = std::chrono::steady_clock>
struct basic_poll_options {
  // Deliberately not an aggregate: g++ 12 destroys an aggregate temporary
  // twice when it is an argument inside a co_await expression, and
  // `co_await poll_until(p, s, poll_options{...})` is exactly that shape.
  basic_poll_options() {}  // NOLINT(modernize-use-equals-default)

  /// Overall budget, relative to the start (a duration) or absolute (a time point).
  basic_deadline<Clock> deadline = std::chrono::seconds(300);
  /// Wait after each "pending" answer.
  any_delay interval = fixed_interval{std::chrono::seconds(2)};
  /// Wait before the first poll (clipped to the deadline).
  std::chrono::nanoseconds initial_delay{0};
  /// Wait after each transient failure (429, 5xx, connection reset, attempt timeout).
  any_delay backoff = make_default_backoff();
  /// Consecutive transient failures tolerated; the next one ends with `retries_exhausted`.
  std::size_t max_retries = 5;
  /// A poll that has not answered after this long is cancelled and counts as
  /// a transient failure (`errc::attempt_timeout`). None: no per-attempt limit.
  std::optional<std::chrono::nanoseconds> attempt_timeout;
  /// Bounds on server hints (Retry-After, estimated-time fields).
  hint_bounds hints;
  /// A limiter shared with other pollers (none when empty): a slot is
  /// acquired before every poll and held until the poll's answer (or
  /// failure, or attempt timeout) is known, so the request counts against
  /// the budget when the server has surely seen it. A transient failure with
  /// a server hint pauses it for everyone.
  limiter_ref limiter;
  /// Observability callbacks (none when null). One `poll_hooks` object is
  /// usually shared by many polls, so options hold only a pointer: it must
  /// outlive every poll that uses it.
  const poll_hooks* hooks = nullptr;
  /// Continue an earlier poll of the same job (from `poll_stats::progress()`
  /// of its result or error): attempts are counted on from there and only
  /// what was left of the retry budget remains. Give the time left as `deadline`.
  poll_progress resume;

  /// Why these options cannot be used (naming the field and the value
  /// received), or none when they are valid.
  std::optional<std::string> invalid_reason() const {
    using detail::format_seconds;
    if (auto d = deadline.relative(); d && *d < std::chrono::nanoseconds::zero())
      return "deadline must not be negative, got " + format_seconds(*d);
    if (initial_delay < std::chrono::nanoseconds::zero())
      return "initial_delay must not be negative, got " + format_seconds(initial_delay);
    if (attempt_timeout && *attempt_timeout <= std::chrono::nanoseconds::zero())
      return "attempt_timeout must be positive, got " + format_seconds(*attempt_timeout);
    if (hints.floor < std::chrono::nanoseconds::zero())
      return "hints.floor must not be negative, got " + format_seconds(hints.floor);
    if (hints.ceiling < hints.floor)
      return "hints.ceiling (" + format_seconds(hints.ceiling) + ") must not be below hints.floor (" +
             format_seconds(hints.floor) + ")";
    return std::nullopt;
  }
};

/// Options on `std::chrono::steady_clock`.
using poll_options = basic_poll_options<>;

}  // namespace jobpoll
