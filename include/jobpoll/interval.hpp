#pragma once
// Deterministic interval policies: the waits after a poll that said "pending".
// Each is a `delay_policy`: the n-th call of `next()` (n counted from 0 since
// construction or the last `reset()`) returns the wait given by its formula.
// Durations are taken as std::chrono::nanoseconds, so any integral duration
// (seconds, milliseconds, ...) converts implicitly.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jobpoll/detail/invalid_argument.hpp"

namespace jobpoll {

namespace detail {

inline std::chrono::nanoseconds require_non_negative(std::string_view type, std::string_view name,
                                                     std::chrono::nanoseconds value) {
  if (value < std::chrono::nanoseconds::zero()) {
    throw_invalid(type, std::string{name} + " must be >= 0ns", describe(value));
  }
  return value;
}

inline std::chrono::nanoseconds require_cap(std::string_view type, std::string_view lower_name,
                                            std::chrono::nanoseconds lower, std::chrono::nanoseconds cap) {
  if (cap < lower) {
    throw_invalid(type, "cap must be >= " + std::string{lower_name} + " (" + describe(lower) + ")", describe(cap));
  }
  return cap;
}

}  // namespace detail

/// The same wait every time: every call of `next()` returns `interval`.
/// Throws `std::invalid_argument` if `interval` < 0.
class fixed_interval {
 public:
  explicit fixed_interval(std::chrono::nanoseconds interval)
      : interval_(detail::require_non_negative("fixed_interval", "interval", interval)) {}

  /// Returns `interval()`.
  std::chrono::nanoseconds next() const noexcept { return interval_; }
  /// Does nothing: the sequence has no state.
  void reset() noexcept {}

  std::chrono::nanoseconds interval() const noexcept { return interval_; }

 private:
  std::chrono::nanoseconds interval_;
};

/// Waits growing by a constant step: the n-th wait is min(initial + n·step, cap),
/// computed without overflow for any n.
/// Throws `std::invalid_argument` if initial < 0, step < 0 or cap < initial.
class linear_interval {
 public:
  linear_interval(std::chrono::nanoseconds initial, std::chrono::nanoseconds step, std::chrono::nanoseconds cap)
      : initial_(detail::require_non_negative("linear_interval", "initial", initial)),
        step_(detail::require_non_negative("linear_interval", "step", step)),
        cap_(detail::require_cap("linear_interval", "initial", initial, cap)),
        current_(initial) {}

  /// Returns min(initial + n·step, cap) and advances n.
  std::chrono::nanoseconds next() noexcept {
    const auto wait = current_;
    // current_ <= cap_ always holds, so cap_ - current_ cannot overflow.
    current_ = (cap_ - current_ <= step_) ? cap_ : current_ + step_;
    return wait;
  }
  /// Restarts at n = 0.
  void reset() noexcept { current_ = initial_; }

  std::chrono::nanoseconds initial() const noexcept { return initial_; }
  std::chrono::nanoseconds step() const noexcept { return step_; }
  std::chrono::nanoseconds cap() const noexcept { return cap_; }

 private:
  std::chrono::nanoseconds initial_;
  std::chrono::nanoseconds step_;
  std::chrono::nanoseconds cap_;
  std::chrono::nanoseconds current_;
};

/// Waits growing geometrically: the n-th wait is min(cap, initial·factor^n),
/// with initial·factor^n kept as a running product in double (exact whenever
/// the product is representable) and rounded to the nearest nanosecond,
/// halves away from zero. Saturates at cap for any n: no integer overflow, no
/// inf or NaN.
/// Throws `std::invalid_argument` if initial < 0, factor < 1, factor is not
/// finite, or cap < initial.
class exponential_interval {
 public:
  exponential_interval(std::chrono::nanoseconds initial, double factor, std::chrono::nanoseconds cap)
      : initial_(detail::require_non_negative("exponential_interval", "initial", initial)),
        factor_(require_factor(factor)),
        cap_(detail::require_cap("exponential_interval", "initial", initial, cap)),
        scaled_(static_cast<double>(initial.count())) {}

  /// Returns min(cap, round(initial·factor^n)) and advances n.
  std::chrono::nanoseconds next() noexcept {
    if (scaled_ >= two_pow_63) return cap_;
    const auto wait = std::min(std::chrono::nanoseconds{std::llround(scaled_)}, cap_);
    // Clamped at 2^63, not multiplied past it, so scaled_ never becomes inf.
    scaled_ = scaled_ > two_pow_63 / factor_ ? two_pow_63 : scaled_ * factor_;
    return wait;
  }
  /// Restarts at n = 0.
  void reset() noexcept { scaled_ = static_cast<double>(initial_.count()); }

  std::chrono::nanoseconds initial() const noexcept { return initial_; }
  double factor() const noexcept { return factor_; }
  std::chrono::nanoseconds cap() const noexcept { return cap_; }

 private:
  // Above every nanoseconds value, hence above any cap; values below it round into int64.
  static constexpr double two_pow_63 = 9223372036854775808.0;

  static double require_factor(double factor) {
    if (!std::isfinite(factor)) detail::throw_invalid("exponential_interval", "factor must be finite", detail::describe(factor));
    if (!(factor >= 1.0)) detail::throw_invalid("exponential_interval", "factor must be >= 1", detail::describe(factor));
    return factor;
  }

  std::chrono::nanoseconds initial_;
  double factor_;
  std::chrono::nanoseconds cap_;
  double scaled_;  // initial·factor^n for the next call, clamped to 2^63
};

/// An explicit list of waits: the n-th wait is waits[min(n, size - 1)], i.e.
/// the listed waits in order, then the last one forever.
/// Throws `std::invalid_argument` if the list is empty or an entry is < 0.
class schedule_interval {
 public:
  explicit schedule_interval(std::vector<std::chrono::nanoseconds> waits) : waits_(require_valid(std::move(waits))) {}
  /// Any mix of integral durations, e.g. `schedule_interval{1s, 2s, 5s, 30s}`.
  schedule_interval(std::initializer_list<std::chrono::nanoseconds> waits)
      : schedule_interval(std::vector<std::chrono::nanoseconds>(waits)) {}

  /// Returns waits[min(n, size - 1)] and advances n.
  std::chrono::nanoseconds next() noexcept {
    const auto wait = waits_[index_];
    if (index_ + 1 < waits_.size()) ++index_;
    return wait;
  }
  /// Restarts at n = 0.
  void reset() noexcept { index_ = 0; }

  const std::vector<std::chrono::nanoseconds>& waits() const noexcept { return waits_; }

 private:
  static std::vector<std::chrono::nanoseconds> require_valid(std::vector<std::chrono::nanoseconds> waits) {
    if (waits.empty()) detail::throw_invalid("schedule_interval", "schedule must not be empty", "0 entries");
    for (std::size_t i = 0; i < waits.size(); ++i) {
      detail::require_non_negative("schedule_interval", "schedule[" + std::to_string(i) + "]", waits[i]);
    }
    return waits;
  }

  std::vector<std::chrono::nanoseconds> waits_;
  std::size_t index_ = 0;
};

}  // namespace jobpoll
