#pragma once
// A strict sliding-window rate limiter: never more than N starts in any window W.

#include <chrono>
#include <cstddef>

#include "jobpoll/clock.hpp"
#include "jobpoll/detail/basic_limiter.hpp"
#include "jobpoll/limiter_budget.hpp"

namespace jobpoll {

/// A rate limiter shared by many pollers that lets at most `max_starts`
/// requests arrive at the server in any window of length `window`
/// (half-open windows, see `sliding_window_budget`), whatever their latency:
/// the quota of an API that counts requests over a rolling period. Waiters
/// are served in FIFO order, each at the earliest time the window allows. See `detail::basic_limiter` for `async_acquire` (its completion signature, per-operation cancellation and errors),
/// `try_acquire`, `pause_until`, `pause_for`, `waiting`, `in_use`, `statistics`.
///
/// 20 requests per 15 seconds, shared by every poll of one client:
/// \code
///   jobpoll::sliding_window_limiter quota(ctx.get_executor(), 20, std::chrono::seconds(15));
///   // in each poller, before each request:
///   jobpoll::limiter_permit permit = co_await quota.async_acquire(asio::use_awaitable);
///   co_await send_the_request();  // the permit is held until the answer is known
///   permit.release();
/// \endcode
template <clock Clock = std::chrono::steady_clock>
class basic_sliding_window_limiter
    : public detail::basic_limiter<Clock, sliding_window_budget<typename Clock::time_point>> {
  using base = detail::basic_limiter<Clock, sliding_window_budget<typename Clock::time_point>>;

 public:
  /// Throws `std::invalid_argument` if `max_starts` is 0 or `window` is not positive.
  basic_sliding_window_limiter(const typename base::executor_type& ex, std::size_t max_starts,
                               typename Clock::duration window)
      : base(ex, sliding_window_budget<typename Clock::time_point>(max_starts, window)),
        max_starts_(max_starts),
        window_(window) {}

  std::size_t max_starts() const noexcept { return max_starts_; }
  typename Clock::duration window() const noexcept { return window_; }

 private:
  std::size_t max_starts_;
  typename Clock::duration window_;
};

/// The sliding-window limiter on `std::chrono::steady_clock`.
using sliding_window_limiter = basic_sliding_window_limiter<>;

}  // namespace jobpoll
