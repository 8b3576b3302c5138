#pragma once
// The decisions behind jobpoll's rate limiters, apart from any waiting: given
// the starts so far, when may the next request start? Standard library only;
// the caller passes the time in, so tests drive these directly and exactly.

#include <algorithm>
#include <cassert>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "jobpoll/detail/invalid_argument.hpp"

namespace jobpoll {

/// A budget of request starts over time, as a limiter uses it:
/// `earliest(now)` is the earliest time >= `now` at which one more start
/// fits, `commit(t)` records a start at `t` (precondition: `t >= earliest(t)`,
/// and `t` not before an earlier commit), `pause_until(t)` makes `earliest`
/// never answer a time before `t`.
template <class B, class TimePoint>
concept start_budget = requires(B& b, const B& cb, TimePoint t) {
  { cb.earliest(t) } -> std::same_as<TimePoint>;
  b.commit(t);
  b.pause_until(t);
};

/// "Never more than `max_starts` starts in any window of length `window`",
/// exactly. A window is half-open: the window starting at `s` holds the starts
/// at `s <= t < s + window`, so starts at `t` and `t + window` never share a
/// window (with 1 start per 1 s, starts at 0 s and 1 s are both allowed).
/// The next start therefore fits at the `max_starts`-th most recent start plus
/// `window`. Keeps the last `max_starts` start times.
template <class TimePoint>
class sliding_window_budget {
 public:
  using time_point = TimePoint;
  using duration = typename TimePoint::duration;

  /// Throws `std::invalid_argument` if `max_starts` is 0 or `window` is not positive.
  sliding_window_budget(std::size_t max_starts, duration window) : max_starts_(max_starts), window_(window) {
    if (max_starts == 0) detail::throw_invalid("sliding_window_budget", "max_starts must be at least 1", "0");
    if (window <= duration::zero())
      detail::throw_invalid("sliding_window_budget", "window must be positive", detail::describe(window));
  }

  std::size_t max_starts() const noexcept { return max_starts_; }
  duration window() const noexcept { return window_; }

  /// The earliest time >= `now` at which one more start keeps every window
  /// within `max_starts`, and not before a pause ends.
  time_point earliest(time_point now) const {
    time_point t = std::max(now, paused_until_);
    if (starts_.size() == max_starts_) t = std::max(t, starts_[oldest_] + window_);
    return t;
  }

  /// Records a start at `t`. Precondition: `t >= earliest(t)` and `t` is not
  /// before the previous commit.
  void commit(time_point t) {
    assert(t >= earliest(t));
    if (starts_.size() < max_starts_) {
      starts_.push_back(t);
      return;
    }
    starts_[oldest_] = t;
    oldest_ = (oldest_ + 1) % max_starts_;
  }

  /// No start before `t`. A pause ending earlier than the current one changes nothing.
  void pause_until(time_point t) { paused_until_ = std::max(paused_until_, t); }

 private:
  std::size_t max_starts_;
  duration window_;
  std::vector<time_point> starts_;  // ring buffer of the last max_starts starts, oldest at oldest_
  std::size_t oldest_ = 0;
  time_point paused_until_ = time_point::min();
};

/// A token bucket holding up to `burst` tokens, full at first and refilled
/// continuously at `tokens` per `per`: each start takes one token, so up to
/// `burst` starts may happen at once, then one every `per / tokens`.
///
/// It is GCRA (virtual scheduling) on exact rational times, whole clock ticks
/// plus a fraction in 1/`tokens` of a tick, so there is no drift however long
/// it runs; `earliest` rounds up to the next whole tick. (With `burst` 1 the
/// bucket cannot hold that rounding, so each start may lose under one tick.)
/// A pause holds starts back but not the refill: the bucket may be full when
/// the pause ends.
template <class TimePoint>
class token_bucket_budget {
 public:
  using time_point = TimePoint;
  using duration = typename TimePoint::duration;
  static_assert(std::is_integral_v<typename duration::rep>, "token_bucket_budget needs an integral clock tick");

  /// Throws `std::invalid_argument` if `tokens` or `burst` is 0, `per` is not
  /// positive, or `burst * per / tokens` does not fit in the clock's duration.
  token_bucket_budget(std::size_t tokens, duration per, std::size_t burst)
      : tokens_(tokens), per_(per), burst_(burst) {
    if (tokens == 0) detail::throw_invalid("token_bucket_budget", "tokens must be at least 1", "0");
    if (per <= duration::zero())
      detail::throw_invalid("token_bucket_budget", "per must be positive", detail::describe(per));
    if (burst == 0) detail::throw_invalid("token_bucket_budget", "burst must be at least 1", "0");
    const auto per_ticks = static_cast<std::uint64_t>(per.count());
    interval_ = {per_ticks / tokens, per_ticks % tokens};
    const std::uint64_t extra = burst - 1;
    const std::uint64_t whole = checked_multiply(extra, interval_.whole, burst);
    const std::uint64_t fraction_sum = checked_multiply(extra, interval_.fraction, burst);
    const std::uint64_t carry = fraction_sum / tokens;
    if (carry > max_ticks || whole > max_ticks - carry) too_large(burst);
    tolerance_ = {whole + carry, fraction_sum % tokens};
  }

  std::size_t tokens() const noexcept { return tokens_; }
  duration per() const noexcept { return per_; }
  std::size_t burst() const noexcept { return burst_; }

  /// The earliest time >= `now` at which the bucket holds a token, and not
  /// before a pause ends.
  time_point earliest(time_point now) const {
    const rep conforming = allowed_.fraction > 0 ? allowed_.ticks + 1 : allowed_.ticks;
    return std::max({now, paused_until_, time_point(duration(conforming))});
  }

  /// Takes one token at `t`. Precondition: `t >= earliest(t)` and `t` is not
  /// before the previous commit.
  void commit(time_point t) {
    assert(t >= earliest(t));
    // GCRA: the theoretical arrival time moves to max(TAT, t) + interval; we
    // keep TAT - tolerance, the first conforming time, which is the same
    // update shifted by the tolerance.
    exact_time full_at_t = subtract({t.time_since_epoch().count(), 0}, tolerance_);
    allowed_ = add(std::max(allowed_, full_at_t), interval_);
  }

  /// No start before `t`. A pause ending earlier than the current one changes nothing.
  void pause_until(time_point t) { paused_until_ = std::max(paused_until_, t); }

 private:
  using rep = typename duration::rep;
  static constexpr std::uint64_t max_ticks = static_cast<std::uint64_t>(std::numeric_limits<rep>::max());

  // ticks + fraction / tokens_, with 0 <= fraction < tokens_.
  struct exact_time {
    rep ticks;
    std::uint64_t fraction;
    auto operator<=>(const exact_time&) const = default;
  };
  // whole + fraction / tokens_ ticks, with 0 <= fraction < tokens_.
  struct exact_duration {
    std::uint64_t whole;
    std::uint64_t fraction;
  };

  [[noreturn]] void too_large(std::size_t burst) const {
    throw std::invalid_argument("jobpoll::token_bucket_budget: burst * per / tokens does not fit in the clock's "
                                "duration (burst " +
                                std::to_string(burst) + ", per " + detail::describe(per_) + ", tokens " +
                                std::to_string(tokens_) + ")");
  }

  std::uint64_t checked_multiply(std::uint64_t a, std::uint64_t b, std::size_t burst) const {
    if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) too_large(burst);
    return a * b;
  }

  exact_time add(exact_time t, exact_duration d) const {
    t.ticks += static_cast<rep>(d.whole);
    t.fraction += d.fraction;
    if (t.fraction >= tokens_) {
      t.fraction -= tokens_;
      ++t.ticks;
    }
    return t;
  }

  exact_time subtract(exact_time t, exact_duration d) const {
    t.ticks -= static_cast<rep>(d.whole);
    if (t.fraction < d.fraction) {
      t.fraction += tokens_;
      --t.ticks;
    }
    t.fraction -= d.fraction;
    return t;
  }

  std::uint64_t tokens_;
  duration per_;
  std::size_t burst_;
  exact_duration interval_{};   // per / tokens: one token's refill time
  exact_duration tolerance_{};  // (burst - 1) * per / tokens: how far ahead of TAT a start may be
  exact_time allowed_{std::numeric_limits<rep>::min(), 0};  // TAT - tolerance; "ever" while the bucket is full
  time_point paused_until_ = time_point::min();
};

}  // namespace jobpoll
