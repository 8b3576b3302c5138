#pragma once
// The decisions behind jobpoll's rate limiters, apart from any waiting: given
// the requests so far, when may the next one start? Standard library only;
// the caller passes the time in, so tests drive these directly and exactly.
//
// Why a request is charged when its answer is known, not when it is granted:
// a server counts *arrivals*, and a request arrives somewhere between its
// grant g and the moment r its answer (or failure) is known. Budgets that
// counted grants let latency bunch requests granted W apart into less than
// W at the server. So a grant only *holds* a slot, and the request is
// counted from r on; while held, a slot counts as if its request were
// counted right now. Proof that the server then never sees more than the
// budget, for any latencies: take the arrivals of any window [s, s + W) (or
// any interval, for the bucket) and among them the request k granted last.
// Every other request i of them was granted before k (g_i <= g_k) and, as it
// arrived at a_i >= s, is answered at r_i >= a_i >= s > a_k - W >= g_k - W.
// So at g_k each of them was either still held or counted less than W
// before g_k: all of them were counted at g_k, and the budget let k through
// only if they and k fit. The cost: a slot is busy for W plus the request's
// latency L, so a saturated sliding window serves N per (W + L), a fraction
// W / (W + L) of the nominal rate (0.96 for W = 3 s and L = 0-200 ms; 0.9999
// for 15 s at loopback latency). The one arrival the proof cannot bound: a
// request the client gave up on (timeout, cancellation) is released then,
// and a server that reads it from its socket buffer later counts it later.

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

/// A budget of requests over time, as a limiter uses it:
/// `earliest(now)` is the earliest time >= `now` at which one more request
/// may start, or `TimePoint::max()` while every slot is held (only a
/// `release` can change that); `hold()` starts a request now (precondition:
/// `earliest(now) <= now`); `release(t)` says a held request's answer (or
/// failure) is known at `t`, from when it counts against the budget (`t` not
/// before an earlier release); `pause_until(t)` makes `earliest` never
/// answer a time before `t`; `held()` is how many are held.
template <class B, class TimePoint>
concept start_budget = requires(B& b, const B& cb, TimePoint t) {
  { cb.earliest(t) } -> std::same_as<TimePoint>;
  b.hold();
  b.release(t);
  b.pause_until(t);
  { cb.held() } -> std::convertible_to<std::size_t>;
};

/// "Never more than `max_starts` requests in any window of length `window`",
/// exactly, as the server counts them. A window is half-open: the window
/// starting at `s` holds the requests counted at `s <= t < s + window`, so
/// requests counted at `t` and `t + window` never share a window (with 1 per
/// 1 s, requests counted at 0 s and 1 s are both allowed). A request is
/// counted when it is released (its answer known) and, while held, as if
/// counted now: with `h` held, the next request fits once the
/// `(max_starts - h)`-th most recent release is `window` old, and never while
/// all `max_starts` are held. Keeps the last `max_starts` release times.
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

  /// The earliest time >= `now` at which one more request keeps every
  /// window within `max_starts`, and not before a pause ends;
  /// `time_point::max()` while all `max_starts` slots are held.
  time_point earliest(time_point now) const {
    if (held_ >= max_starts_) return time_point::max();
    time_point t = std::max(now, paused_until_);
    // The (max_starts - held)-th most recent release must have left the window.
    const std::size_t back = max_starts_ - held_;
    if (releases_.size() >= back) t = std::max(t, releases_[(oldest_ + releases_.size() - back) % max_starts_] + window_);
    return t;
  }

  /// Holds a slot for a request starting now. Precondition: `earliest(now) <= now`.
  void hold() {
    assert(held_ < max_starts_);
    ++held_;
  }

  /// A held request's answer is known at `t`: it counts in every window
  /// holding `t`. A `t` before the previous release counts as that release's time.
  void release(time_point t) {
    assert(held_ > 0);
    --held_;
    if (!releases_.empty()) t = std::max(t, releases_[(oldest_ + releases_.size() - 1) % max_starts_]);
    if (releases_.size() < max_starts_) {
      releases_.push_back(t);
      return;
    }
    releases_[oldest_] = t;
    oldest_ = (oldest_ + 1) % max_starts_;
  }

  /// `hold()` then `release(t)`: a request answered the moment it started.
  /// Precondition: `t >= earliest(t)` and `t` is not before the previous release.
  void commit(time_point t) {
    assert(t >= earliest(t));
    hold();
    release(t);
  }

  /// Slots held by requests whose answers are not known yet.
  std::size_t held() const noexcept { return held_; }

  /// No start before `t`. A pause ending earlier than the current one changes nothing.
  void pause_until(time_point t) { paused_until_ = std::max(paused_until_, t); }

 private:
  std::size_t max_starts_;
  duration window_;
  std::vector<time_point> releases_;  // ring buffer of the last max_starts releases, oldest at oldest_
  std::size_t oldest_ = 0;
  std::size_t held_ = 0;
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
///
/// A request takes its token when it is released (its answer known), the
/// time the server has surely seen it; while held, it counts as a token taken
/// now. With `h` held, the next request fits once the bucket would still
/// hold a token after `h + 1` are taken at once, and never while `burst`
/// are held. (For any set of arrivals between `s` and `t`, that keeps their
/// number within `burst` plus the refill from `s` to `t`: the proof in the
/// file's opening comment, with the bucket's bound for the window's.)
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

  /// The earliest time >= `now` at which the bucket holds a token beyond
  /// those of the held requests, and not before a pause ends;
  /// `time_point::max()` while `burst` requests are held.
  time_point earliest(time_point now) const {
    if (held_ >= burst_) return time_point::max();
    // Each held request is a token taken now: the first conforming time
    // moves on by one interval each. held_ < burst_, so this fits (checked
    // for burst - 1 intervals by the constructor).
    const exact_time allowed = add(allowed_, {interval_.whole * held_ + interval_.fraction * held_ / tokens_,
                                              interval_.fraction * held_ % tokens_});
    const rep conforming = allowed.fraction > 0 ? allowed.ticks + 1 : allowed.ticks;
    return std::max({now, paused_until_, time_point(duration(conforming))});
  }

  /// Holds a slot for a request starting now. Precondition: `earliest(now) <= now`.
  void hold() {
    assert(held_ < burst_);
    ++held_;
  }

  /// A held request's answer is known at `t`: it takes its token at `t`.
  void release(time_point t) {
    assert(held_ > 0);
    --held_;
    // GCRA: the theoretical arrival time moves to max(TAT, t) + interval; we
    // keep TAT - tolerance, the first conforming time, which is the same
    // update shifted by the tolerance.
    exact_time full_at_t = subtract({t.time_since_epoch().count(), 0}, tolerance_);
    allowed_ = add(std::max(allowed_, full_at_t), interval_);
  }

  /// `hold()` then `release(t)`: a request answered the moment it started.
  /// Precondition: `t >= earliest(t)` and `t` is not before the previous release.
  void commit(time_point t) {
    assert(t >= earliest(t));
    hold();
    release(t);
  }

  /// Slots held by requests whose answers are not known yet.
  std::size_t held() const noexcept { return held_; }

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
  std::uint64_t held_ = 0;
  time_point paused_until_ = time_point::min();
};

}  // namespace jobpoll
