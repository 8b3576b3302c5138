#pragma once
// A rate limit shared by every process that uses one key on one Redis: the
// `rate_limiter` concept backed by Redis (target jobpoll::redis, on hiredis).

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "jobpoll/detail/asio_forward.hpp"

#include "jobpoll/detail/redis/limiter_core.hpp"
#include "jobpoll/limiter_permit.hpp"
#include "jobpoll/rate_limiter.hpp"
#include "jobpoll/redis_limiter_options.hpp"

namespace jobpoll {

/// A rate limiter whose budget is shared through Redis by every process (on
/// any machine) that names the same key: one quota such as "20 requests per
/// 15 s per API key", kept for a cron job, a web app and a batch worker at
/// once, as the server counts it.
///
/// The guarantees of the in-process limiters hold across processes: a
/// grant holds a slot until the permit is released (the request's answer
/// known), and the request counts from then on (limiter_budget.hpp's
/// server-true accounting, so no window at the server holds more than the
/// budget whatever the latency); every decision is one Lua script run in
/// Redis, on Redis's clock (client clocks may disagree); a pause (a 429 with
/// Retry-After seen by one process) holds back every process; waiters of one
/// process are served in FIFO order and processes take turns, so none
/// starves; a cancelled wait consumes nothing. Redis down: by default nothing
/// is granted until it answers again (`redis_down_rule`); a state lost with
/// a restart holds back one window (`redis_cold_start`). The design and the
/// keys are in detail/redis/script.hpp.
///
/// `try_acquire()` cannot ask Redis without waiting: it returns an empty
/// permit, except from the local fallback while Redis is down. A host name
/// is resolved with Asio's resolver (which has its own thread); a numeric
/// address or a unix socket needs no thread besides the caller's.
///
/// All members may be called from any thread. Like any Asio I/O object, the
/// limiter must be destroyed before its execution context. An idle limiter
/// (nobody waiting, no permit held) keeps nothing pending on the context.
///
/// \code
///   jobpoll::redis_limiter quota(ctx.get_executor(),
///       jobpoll::parse_redis_limit_url("redis://127.0.0.1:6379/reporting-api?rate=20/15s"));
///   jobpoll::poll_options options;
///   options.limiter = quota;  // every poll of every process on the key shares 20 per 15 s
/// \endcode
class redis_limiter {
 public:
  using executor_type = asio::any_io_executor;

  /// A limiter on `ex` (its strand runs the connection). Connects on first
  /// use. Throws `std::invalid_argument` for options `validate` refuses.
  redis_limiter(const executor_type& ex, redis_limiter_options options)
      : core_(make_core(ex, std::move(options))) {}

  redis_limiter(const redis_limiter&) = delete;
  redis_limiter& operator=(const redis_limiter&) = delete;

  /// Completes every queued wait with `asio::error::operation_aborted` and
  /// closes the connection. Permits still held are no longer released in
  /// Redis: their holds expire after `hold_timeout` and count then.
  ~redis_limiter() { core_->shutdown(); }

  executor_type get_executor() const noexcept { return core_->executor(); }

  /// The options the limiter was built with.
  const redis_limiter_options& options() const noexcept { return core_->options(); }

  /// Waits for a slot of the shared budget for one request.
  ///
  /// @par Completion Signature
  /// `void(error_code, limiter_permit)`: success with a permit once the
  /// earlier waiters of this process have been served, this process's turn
  /// has come among the waiting processes and the budget allows one more
  /// request at Redis's time; hold the permit until the request's answer is
  /// known. `asio::error::operation_aborted` with an empty permit if the wait
  /// is cancelled or the limiter destroyed. `jobpoll::errc::invalid_argument`
  /// if Redis refuses the limiter (the key holds another budget, AUTH failed,
  /// the keys hold other data): `last_error()` says what Redis answered.
  /// While Redis cannot be asked, the wait goes on (or, with
  /// `redis_down_rule::local_fallback`, is served by the fallback).
  ///
  /// @par Per-Operation Cancellation
  /// Terminal, partial and total: a queued wait has taken nothing, so a
  /// cancelled one consumes nothing; a grant that arrives for it from Redis
  /// goes to the next waiter, or back to Redis unused. Emit the signal where
  /// the handler runs (its associated executor).
  ///
  /// @par Errors
  /// `asio::error::operation_aborted` (cancelled, or the limiter destroyed)
  /// and `jobpoll::errc::invalid_argument` (Redis refuses the limiter), as
  /// above. With `asio::use_awaitable`, `co_await` yields the
  /// `limiter_permit` or throws `std::system_error` with that code.
  ///
  /// Works with every completion token. No default completion token: the
  /// executor type is `asio::any_io_executor`, whose
  /// `asio::default_completion_token_t` is `void` in Asio 1.22.
  template <class CompletionToken>
  auto async_acquire(CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(error_code, limiter_permit)>(
        [c = core_.get()](auto handler) { c->start(std::move(handler)); }, token);
  }

  /// An empty permit: deciding needs Redis, and this never waits. While
  /// Redis is down under `redis_down_rule::local_fallback`, a permit of the
  /// fallback if nobody is queued and it has a slot now.
  limiter_permit try_acquire() { return core_->try_acquire(); }

  /// Grants nothing, in any process using the key, for `d` from now on
  /// Redis's clock (a shorter pause never shortens a longer one). Sent to
  /// Redis before this process asks again; kept and sent when Redis answers
  /// again (for what is left of `d`).
  template <class Rep, class Period>
  void pause_for(std::chrono::duration<Rep, Period> d) {
    core_->pause_for(std::chrono::ceil<std::chrono::nanoseconds>(d));
  }

  /// How many `async_acquire` calls of this object are queued.
  std::size_t waiting() const { return core_->waiting(); }

  /// How many permits of this object are held (granted and not released).
  std::size_t in_use() const { return core_->in_use(); }

  /// How long a wait started now would last, as Redis last said; none when
  /// waiters are queued or nothing is known.
  std::optional<std::chrono::nanoseconds> expected_wait() const { return core_->expected_wait(); }

  /// What the limiter has done so far.
  redis_limiter_statistics statistics() const { return core_->statistics(); }

  /// True while Redis answers.
  bool connected() const { return core_->connected(); }

  /// Why Redis last failed or refused (empty if it never did).
  std::string last_error() const { return core_->last_error(); }

 private:
  static std::shared_ptr<detail::redis::limiter_core> make_core(const executor_type& ex,
                                                                redis_limiter_options options) {
    validate(options);
    return std::make_shared<detail::redis::limiter_core>(ex, std::move(options));
  }

  std::shared_ptr<detail::redis::limiter_core> core_;
};

static_assert(rate_limiter<redis_limiter>);

}  // namespace jobpoll
