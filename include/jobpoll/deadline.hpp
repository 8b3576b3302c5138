#pragma once
// The overall time budget of one poll: relative, absolute, or none.

#include <chrono>
#include <optional>
#include <variant>

namespace jobpoll {

/// A deadline on `Clock`: relative ("300 s after the poll starts"), absolute
/// ("at this time point") or none. Converts implicitly from a duration
/// (relative) and from a `Clock::time_point` (absolute), so
/// `options.deadline = 300s;` reads as it should.
///
/// Whatever the deadline, at least one poll happens: it is checked after a
/// poll, never before the first one.
template <class Clock>
class basic_deadline {
 public:
  using clock_type = Clock;
  using time_point = typename Clock::time_point;

  /// No deadline: polling ends only on a terminal state, the retry budget or cancellation.
  static basic_deadline none() noexcept { return basic_deadline{}; }

  /// The deadline lies `d` after the start of the poll.
  template <class Rep, class Period>
  static basic_deadline after(std::chrono::duration<Rep, Period> d) {
    return basic_deadline{d};
  }

  /// The deadline is the time point `t` (if it has passed, one poll still happens).
  static basic_deadline at(time_point t) noexcept { return basic_deadline{t}; }

  basic_deadline() noexcept = default;

  template <class Rep, class Period>
  basic_deadline(std::chrono::duration<Rep, Period> d)  // NOLINT(google-explicit-constructor)
      : value_(std::chrono::duration_cast<std::chrono::nanoseconds>(d)) {}

  basic_deadline(time_point t) noexcept  // NOLINT(google-explicit-constructor)
      : value_(t) {}

  bool is_none() const noexcept { return std::holds_alternative<std::monostate>(value_); }
  bool is_relative() const noexcept { return std::holds_alternative<std::chrono::nanoseconds>(value_); }
  bool is_absolute() const noexcept { return std::holds_alternative<time_point>(value_); }

  /// The relative length, if the deadline is relative (may be negative if set so).
  std::optional<std::chrono::nanoseconds> relative() const {
    if (auto* d = std::get_if<std::chrono::nanoseconds>(&value_)) return *d;
    return std::nullopt;
  }

  /// The time point the deadline falls on for something that starts at
  /// `start` (rounded up to the clock's tick); none when there is no
  /// deadline. The one place a job's end is computed: its phases (submit,
  /// polls, result) and a later resume all measure what is left against it.
  std::optional<time_point> end_from(time_point start) const {
    if (auto budget = budget_from(start)) return start + std::chrono::ceil<typename Clock::duration>(*budget);
    return std::nullopt;
  }

  /// The budget measured from `start`, never negative; none when there is no deadline.
  std::optional<std::chrono::nanoseconds> budget_from(time_point start) const {
    if (auto* d = std::get_if<std::chrono::nanoseconds>(&value_)) return *d < std::chrono::nanoseconds::zero() ? std::chrono::nanoseconds::zero() : *d;
    if (auto* t = std::get_if<time_point>(&value_)) {
      if (*t <= start) return std::chrono::nanoseconds::zero();
      return std::chrono::duration_cast<std::chrono::nanoseconds>(*t - start);
    }
    return std::nullopt;
  }

 private:
  std::variant<std::monostate, std::chrono::nanoseconds, time_point> value_;
};

/// The deadline type on the default clock.
using deadline = basic_deadline<std::chrono::steady_clock>;

}  // namespace jobpoll
