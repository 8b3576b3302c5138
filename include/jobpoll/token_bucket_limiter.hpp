#pragma once
// A token-bucket rate limiter: bursts up to a size, then a steady rate.

#include <chrono>
#include <cstddef>

#include "jobpoll/clock.hpp"
#include "jobpoll/detail/basic_limiter.hpp"
#include "jobpoll/limiter_budget.hpp"

namespace jobpoll {

/// A rate limiter shared by many pollers that lets through up to `burst`
/// starts at once and `tokens` starts per `per` on average: a bucket of
/// `burst` tokens, full at first, refilled continuously (see
/// `token_bucket_budget`). Waiters are served in FIFO order, each as soon as a
/// token is there. See `detail::basic_limiter` for `async_acquire` (its
/// completion signature, per-operation cancellation and errors),
/// `try_acquire`, `pause_until`, `pause_for`, `waiting`, `in_use`, `statistics`.
///
/// 5 requests per second with bursts of up to 10:
/// \code
///   jobpoll::token_bucket_limiter bucket(ctx.get_executor(), 5, std::chrono::seconds(1), 10);
///   jobpoll::limiter_permit permit = co_await bucket.async_acquire(asio::use_awaitable);
///   co_await send_the_request();  // the permit is held until the answer is known
///   permit.release();
/// \endcode
template <clock Clock = std::chrono::steady_clock>
class basic_token_bucket_limiter
    : public detail::basic_limiter<Clock, token_bucket_budget<typename Clock::time_point>> {
  using base = detail::basic_limiter<Clock, token_bucket_budget<typename Clock::time_point>>;

 public:
  /// Throws `std::invalid_argument` if `tokens` or `burst` is 0, `per` is not
  /// positive, or `burst * per / tokens` does not fit in the clock's duration.
  basic_token_bucket_limiter(const typename base::executor_type& ex, std::size_t tokens,
                             typename Clock::duration per, std::size_t burst)
      : base(ex, token_bucket_budget<typename Clock::time_point>(tokens, per, burst)),
        tokens_(tokens),
        per_(per),
        burst_(burst) {}

  std::size_t tokens() const noexcept { return tokens_; }
  typename Clock::duration per() const noexcept { return per_; }
  std::size_t burst() const noexcept { return burst_; }

 private:
  std::size_t tokens_;
  typename Clock::duration per_;
  std::size_t burst_;
};

/// The token-bucket limiter on `std::chrono::steady_clock`.
using token_bucket_limiter = basic_token_bucket_limiter<>;

}  // namespace jobpoll
