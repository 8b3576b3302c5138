#pragma once
// The library's default backoff: the waits after consecutive transient
// failures (429, 5xx, connection reset, per-attempt timeout). This header only
// decides how long to wait; how many consecutive transient failures a poll
// tolerates is the retry budget, `max_retries` in the poll options.

#include <chrono>
#include <cstdint>

#include "jobpoll/interval.hpp"
#include "jobpoll/jitter.hpp"

namespace jobpoll {

/// The type of the default backoff: full jitter over an exponential interval.
using default_backoff = full_jitter<exponential_interval>;

/// The default backoff, exactly `full_jitter{exponential_interval{500ms, 2.0, 30s}}`:
/// after the n-th consecutive transient failure (n from 0) the wait is uniform
/// in [0, min(30s, 500ms·2^n)]. Random per use (each copy draws a fresh seed).
inline default_backoff make_default_backoff() {
  using namespace std::chrono_literals;
  return default_backoff{exponential_interval{500ms, 2.0, 30s}};
}

/// The default backoff with a fixed `seed`: reproducible.
inline default_backoff make_default_backoff(std::uint64_t seed) {
  using namespace std::chrono_literals;
  return default_backoff{exponential_interval{500ms, 2.0, 30s}, seed};
}

/// Full jitter over `exponential_interval{initial, factor, cap}`: the n-th wait
/// is uniform in [0, min(cap, initial·factor^n)]. Random per use. Throws
/// `std::invalid_argument` on the conditions `exponential_interval` rejects.
inline default_backoff exponential_backoff(std::chrono::nanoseconds initial, std::chrono::nanoseconds cap,
                                           double factor = 2.0) {
  return default_backoff{exponential_interval{initial, factor, cap}};
}

/// `exponential_backoff` with a fixed `seed`: reproducible.
inline default_backoff exponential_backoff(std::chrono::nanoseconds initial, std::chrono::nanoseconds cap,
                                           double factor, std::uint64_t seed) {
  return default_backoff{exponential_interval{initial, factor, cap}, seed};
}

}  // namespace jobpoll
