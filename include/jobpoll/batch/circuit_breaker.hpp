#pragma once
// Stops a batch from feeding a failing service: the failure rate over the
// most recent job outcomes, against a threshold. No I/O, no clock.

#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "jobpoll/detail/invalid_argument.hpp"

namespace jobpoll {

/// When a batch stops submitting: `failure_threshold` or more of the last
/// `window` job outcomes were failures, once at least `min_outcomes` are
/// known. A `window` of 0 turns the breaker off.
struct circuit_breaker_options {
  std::size_t window = 0;          ///< outcomes looked at (the most recent ones)
  double failure_threshold = 0.5;  ///< in (0, 1]: the failure rate that opens the breaker
  std::size_t min_outcomes = 0;    ///< outcomes needed before it can open; 0 means `window`
};

/// A count-based circuit breaker: once open it stays open (a batch that
/// tripped it is stopped and reports why; a new run starts closed).
class circuit_breaker {
 public:
  /// Throws `std::invalid_argument` naming the option and its value for a
  /// threshold outside (0, 1] or `min_outcomes > window`.
  explicit circuit_breaker(circuit_breaker_options options = {}) : options_(options) {
    if (options_.window == 0) return;
    if (!(options_.failure_threshold > 0.0 && options_.failure_threshold <= 1.0))
      detail::throw_invalid("circuit_breaker", "failure_threshold must be in (0, 1]",
                            detail::describe(options_.failure_threshold));
    if (options_.min_outcomes > options_.window)
      detail::throw_invalid("circuit_breaker", "min_outcomes must not exceed window (" + std::to_string(options_.window) + ")",
                            std::to_string(options_.min_outcomes));
    if (options_.min_outcomes == 0) options_.min_outcomes = options_.window;
    recent_.assign(options_.window, 0);
  }

  bool enabled() const noexcept { return options_.window > 0; }
  bool open() const noexcept { return open_; }

  /// Records one job outcome; returns true when this outcome opened the breaker.
  bool record(bool failed) {
    if (!enabled() || open_) return false;
    if (seen_ == options_.window) failures_ -= recent_[next_];
    else ++seen_;
    recent_[next_] = failed ? 1 : 0;
    failures_ += recent_[next_];
    next_ = (next_ + 1) % options_.window;
    open_ = seen_ >= options_.min_outcomes &&
            static_cast<double>(failures_) >= options_.failure_threshold * static_cast<double>(seen_);
    return open_;
  }

  std::size_t failures() const noexcept { return failures_; }  ///< failures among the outcomes in the window
  std::size_t outcomes() const noexcept { return seen_; }      ///< outcomes in the window

  /// Why it opened, e.g. "circuit breaker open: 6 of the last 10 jobs failed (threshold 50%)"; "" while closed.
  std::string reason() const {
    if (!open_) return {};
    char threshold[16];
    std::snprintf(threshold, sizeof threshold, "%g%%", options_.failure_threshold * 100.0);
    return "circuit breaker open: " + std::to_string(failures_) + " of the last " + std::to_string(seen_) +
           " jobs failed (threshold " + threshold + ")";
  }

 private:
  circuit_breaker_options options_;
  std::vector<unsigned char> recent_;  // a ring of the last `window` outcomes (1 = failed)
  std::size_t next_ = 0, seen_ = 0, failures_ = 0;
  bool open_ = false;
};

}  // namespace jobpoll
