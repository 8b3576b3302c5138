#pragma once
// Randomised delay policies, so that many pollers started together do not
// poll (or retry) in lock-step. A policy given a seed is reproducible: the
// same seed gives the same sequence, and a copy continues the sequence of its
// original. A policy built without a seed is random per use: each copy
// (options are copied into every poll) draws a fresh seed, so pollers started
// from one options object still spread out.
// Random waits are drawn by integer uniform distributions over whole
// nanoseconds, so both bounds are reachable and never crossed.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <utility>

#include "jobpoll/delay_policy.hpp"
#include "jobpoll/interval.hpp"

namespace jobpoll {

namespace detail {

/// A 64-bit seed from std::random_device (which yields 32 bits per call).
inline std::uint64_t random_seed() {
  std::random_device device;
  const std::uint64_t high = device();
  return (high << 32) ^ device();
}

/// A distinct seed per call, cheap enough to take one per poll: a process-wide
/// counter (started from std::random_device) run through the splitmix64 mix.
inline std::uint64_t fresh_seed() noexcept {
  static std::atomic<std::uint64_t> counter{random_seed()};
  std::uint64_t z = counter.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// The random engine of the jitter policies: splitmix64, 8 bytes of state
/// (a std::mt19937_64 would add 2.5 KB to every poll in flight). Seeded, it
/// is reproducible and copies continue its sequence; unseeded, every copy
/// starts from a fresh seed.
class jitter_engine {
 public:
  using result_type = std::uint64_t;
  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return ~result_type{0}; }

  jitter_engine() noexcept : state_(fresh_seed()), reproducible_(false) {}
  explicit jitter_engine(std::uint64_t seed) noexcept : state_(seed), reproducible_(true) {}
  jitter_engine(const jitter_engine& other) noexcept
      : state_(other.reproducible_ ? other.state_ : fresh_seed()), reproducible_(other.reproducible_) {}
  jitter_engine& operator=(const jitter_engine& other) noexcept {
    state_ = other.reproducible_ ? other.state_ : fresh_seed();
    reproducible_ = other.reproducible_;
    return *this;
  }
  ~jitter_engine() = default;

  result_type operator()() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  std::uint64_t state_;
  bool reproducible_;
};

/// Uniform over the whole nanoseconds in [low, high]; requires low <= high.
inline std::chrono::nanoseconds uniform_between(jitter_engine& engine, std::chrono::nanoseconds low,
                                                std::chrono::nanoseconds high) {
  return std::chrono::nanoseconds{std::uniform_int_distribution<std::chrono::nanoseconds::rep>{low.count(), high.count()}(engine)};
}

/// The next wait of a wrapped policy; a negative wait counts as zero.
template <delay_policy P>
std::chrono::nanoseconds next_non_negative(P& policy) {
  const std::chrono::nanoseconds wait = policy.next();
  return std::max(wait, std::chrono::nanoseconds::zero());
}

}  // namespace detail

namespace detail {

// What full and equal jitter share: the wrapped policy and the engine.
template <delay_policy P>
class jitter_over {
 public:
  /// Resets the inner policy; it does not reseed.
  void reset() { inner_.reset(); }
  const P& inner() const noexcept { return inner_; }

 protected:
  explicit jitter_over(P inner) : inner_(std::move(inner)) {}
  jitter_over(P inner, std::uint64_t seed) : inner_(std::move(inner)), engine_(seed) {}

  P inner_;
  jitter_engine engine_;
};

}  // namespace detail

/// "Full jitter" over any delay policy: with v = inner.next() (negative counts
/// as 0), the wait is uniform in [0, v].
/// `reset()` resets the inner policy; it does not reseed.
template <delay_policy P>
class full_jitter : public detail::jitter_over<P> {
 public:
  /// Random per use: every copy draws a fresh seed.
  explicit full_jitter(P inner) : detail::jitter_over<P>(std::move(inner)) {}
  /// Reproducible: `seed` fixes the sequence.
  full_jitter(P inner, std::uint64_t seed) : detail::jitter_over<P>(std::move(inner), seed) {}

  /// Returns a wait uniform in [0, inner.next()].
  std::chrono::nanoseconds next() {
    return detail::uniform_between(this->engine_, std::chrono::nanoseconds::zero(),
                                   detail::next_non_negative(this->inner_));
  }
};

/// "Equal jitter" over any delay policy: with v = inner.next() (negative
/// counts as 0), the wait is ⌊v/2⌋ + uniform in [0, v - ⌊v/2⌋], i.e. uniform
/// in [⌊v/2⌋, v]: always at least half of v.
/// `reset()` resets the inner policy; it does not reseed.
template <delay_policy P>
class equal_jitter : public detail::jitter_over<P> {
 public:
  /// Random per use: every copy draws a fresh seed.
  explicit equal_jitter(P inner) : detail::jitter_over<P>(std::move(inner)) {}
  /// Reproducible: `seed` fixes the sequence.
  equal_jitter(P inner, std::uint64_t seed) : detail::jitter_over<P>(std::move(inner), seed) {}

  /// Returns a wait uniform in [⌊v/2⌋, v] where v = inner.next().
  std::chrono::nanoseconds next() {
    const auto wait = detail::next_non_negative(this->inner_);
    return detail::uniform_between(this->engine_, wait / 2, wait);
  }
};

/// "Decorrelated jitter" from the AWS "Exponential Backoff And Jitter"
/// analysis: starting from sleep = base, each call sets
/// sleep = min(cap, uniform in [base, 3·sleep]) and returns it (3·sleep
/// saturates at nanoseconds::max()). Every wait lies in [base, cap].
/// `reset()` returns sleep to base; it does not reseed.
/// Throws `std::invalid_argument` if base < 0 or cap < base.
class decorrelated_jitter {
 public:
  /// Random per use: every copy draws a fresh seed.
  decorrelated_jitter(std::chrono::nanoseconds base, std::chrono::nanoseconds cap)
      : base_(detail::require_non_negative("decorrelated_jitter", "base", base)),
        cap_(detail::require_cap("decorrelated_jitter", "base", base, cap)),
        sleep_(base) {}
  /// Reproducible: `seed` fixes the sequence.
  decorrelated_jitter(std::chrono::nanoseconds base, std::chrono::nanoseconds cap, std::uint64_t seed)
      : decorrelated_jitter(base, cap) {
    engine_ = detail::jitter_engine(seed);
  }

  /// Sets sleep = min(cap, uniform in [base, 3·sleep]) and returns it.
  std::chrono::nanoseconds next() {
    const auto high = sleep_ > std::chrono::nanoseconds::max() / 3 ? std::chrono::nanoseconds::max() : sleep_ * 3;
    sleep_ = std::min(cap_, detail::uniform_between(engine_, base_, high));
    return sleep_;
  }
  /// Returns sleep to base.
  void reset() noexcept { sleep_ = base_; }

  std::chrono::nanoseconds base() const noexcept { return base_; }
  std::chrono::nanoseconds cap() const noexcept { return cap_; }

 private:
  std::chrono::nanoseconds base_;
  std::chrono::nanoseconds cap_;
  std::chrono::nanoseconds sleep_;
  detail::jitter_engine engine_;
};

}  // namespace jobpoll
