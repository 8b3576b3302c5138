#pragma once
// The machinery of redis_limiter: the local FIFO of waiters (the one of the
// in-process limiters, basic_limiter.hpp), a driver coroutine on a strand
// that alone talks to Redis, and the permits.
//
// Only the head of the local queue asks Redis, with the process's ticket
// (script.hpp: processes take turns). A grant goes to whoever is the head
// when the answer arrives; if nobody waits any more (cancelled meanwhile),
// the grant is given back unused, so a cancelled wait consumes nothing.
// Releases, pauses and the process's departure from the line are queued and
// sent before the next ask, and sent again after a lost connection (a
// release counted twice only counts it later, never less). Held permits are
// refreshed every third of the hold timeout, and again at once when the
// state was lost, so a restarted Redis holds them again.
//
// While Redis cannot be asked the driver retries with backoff and, under
// redis_down_rule::local_fallback, serves the queue from an in-process
// limiter with a fraction of the budget; the permits it granted are handed
// to Redis when it answers again. The driver runs only while there is
// something to do (waiters, permits to refresh, messages to send), so an idle
// limiter leaves its io_context free to return.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include <unistd.h>

#include "jobpoll/detail/asio_forward.hpp"

#include "jobpoll/detail/basic_limiter.hpp"
#include "jobpoll/detail/redis/connection.hpp"
#include "jobpoll/detail/redis/decisions.hpp"
#include "jobpoll/detail/redis/script.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/limiter_permit.hpp"
#include "jobpoll/rate_limiter.hpp"
#include "jobpoll/redis_limiter_options.hpp"
#include "jobpoll/sliding_window_limiter.hpp"
#include "jobpoll/token_bucket_limiter.hpp"

namespace jobpoll {

/// What a `redis_limiter` has done since it was constructed.
struct redis_limiter_statistics {
  std::uint64_t granted = 0;           ///< permits granted (by Redis or, while it was down, the local fallback)
  std::uint64_t released = 0;          ///< permits released
  std::uint64_t cancelled = 0;         ///< waits completed with `operation_aborted`
  std::uint64_t failed = 0;            ///< waits completed with an error because Redis refused the limiter
  std::uint64_t fallback_granted = 0;  ///< of `granted`, by the local fallback
  std::uint64_t returned = 0;          ///< grants given back unused (their waiter was gone)
  std::uint64_t asks = 0;              ///< asks for a grant sent to Redis (by the head of the queue)
  std::uint64_t calls = 0;             ///< script runs answered by Redis
  std::uint64_t connects = 0;          ///< connections made
  std::uint64_t outages = 0;           ///< times Redis went from answering to not answering (or never answered)
};

namespace detail::redis {

class limiter_core;

// What each permit gives its slot back to.
class permit_handle final : public permit_issuer {
 public:
  permit_handle(std::weak_ptr<limiter_core> core, std::uint64_t local) noexcept
      : core_(std::move(core)), local_(local) {}
  void release_permit() noexcept override;

 private:
  std::weak_ptr<limiter_core> core_;
  std::uint64_t local_;
};

// "<16 hex digits>-<pid>": this limiter object's name in Redis.
inline std::string new_process_id() {
  std::random_device device;
  const std::uint64_t value = (static_cast<std::uint64_t>(device()) << 32) ^ device();
  static constexpr char digits[] = "0123456789abcdef";
  std::string id;
  for (int shift = 60; shift >= 0; shift -= 4) id += digits[(value >> shift) & 0xf];
  return id + "-" + std::to_string(::getpid());
}

class limiter_core final : public std::enable_shared_from_this<limiter_core> {
 public:
  using executor_type = asio::any_io_executor;
  using clock = std::chrono::steady_clock;

  limiter_core(const executor_type& ex, redis_limiter_options options)
      : executor_(ex),
        strand_(asio::make_strand(ex)),
        options_(std::move(options)),
        connection_(std::make_shared<connection>(strand_, options_)),
        wake_(strand_),
        backoff_timer_(strand_),
        ledger_(new_process_id()) {
    if (options_.when_down == redis_down_rule::local_fallback) {
      const redis_budget b = fallback_budget(options_.budget, options_.fallback_fraction);
      if (b.type == redis_budget::kind::sliding_window) {
        fallback_window_.emplace(ex, b.count, b.period);
        fallback_ = *fallback_window_;
      } else {
        fallback_bucket_.emplace(ex, b.count, b.period, b.burst);
        fallback_ = *fallback_bucket_;
      }
    }
  }

  limiter_core(const limiter_core&) = delete;
  limiter_core& operator=(const limiter_core&) = delete;

  const executor_type& executor() const noexcept { return executor_; }
  const redis_limiter_options& options() const noexcept { return options_; }

  template <class Handler>
  void start(Handler handler) {
    auto slot = asio::get_associated_cancellation_slot(handler);
    limiter_waiter* w = limiter_waiter_op<Handler, executor_type>::create(std::move(handler), executor_);
    if (slot.is_connected()) {
      try {
        slot.template emplace<waiter_cancel_handler<limiter_core>>(weak_from_this(), w);
      } catch (...) {
        w->discard();
        throw;
      }
    }
    std::lock_guard lock(mutex_);
    if (closing_) {
      w->state = waiter_state::aborted;
      ++statistics_.cancelled;
      w->post_completion(detail::asio_error(asio::error::operation_aborted), limiter_permit{});
      return;
    }
    queue_.push_back(w);
    kick();
  }

  // Never asks Redis (that would wait): a permit only from the local
  // fallback while Redis is down and nobody is queued.
  limiter_permit try_acquire() {
    std::lock_guard lock(mutex_);
    if (closing_ || !down_ || !fallback_ || !queue_.empty()) return {};
    limiter_permit inner = fallback_.try_acquire();
    if (!inner) return {};
    return grant_fallback(std::move(inner));
  }

  void pause_for(std::chrono::nanoseconds d) {
    if (d <= std::chrono::nanoseconds::zero()) return;
    {
      std::lock_guard lock(mutex_);
      if (closing_) return;
      outbox_.push_back({message::pause, {}, clock::now() + d});
      kick();
    }
    if (fallback_) fallback_.pause_for(d);
  }

  void release(std::uint64_t local) noexcept {
    limiter_permit inner;
    {
      std::lock_guard lock(mutex_);
      ++statistics_.released;
      if (auto it = fallback_permits_.find(local); it != fallback_permits_.end()) {
        inner = std::move(it->second);
        fallback_permits_.erase(it);
      }
      try {
        std::string id = ledger_.release(local, clock::now());
        if (!id.empty() && !closing_) {
          outbox_.push_back({message::release, std::move(id), {}});
          kick();
        }
      } catch (...) {
        // Out of memory: the hold expires after the hold timeout and counts then.
      }
    }
    inner.release();  // outside the mutex: the fallback limiter has its own
  }

  std::optional<std::chrono::nanoseconds> expected_wait() const {
    std::lock_guard lock(mutex_);
    if (!queue_.empty()) return std::nullopt;
    if (down_ && fallback_) return fallback_.expected_wait();
    const auto now = clock::now();
    if (!expected_at_ || *expected_at_ <= now) return std::nullopt;
    return *expected_at_ - now;
  }

  std::size_t waiting() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }

  std::size_t in_use() const {
    std::lock_guard lock(mutex_);
    return ledger_.held();
  }

  redis_limiter_statistics statistics() const {
    std::lock_guard lock(mutex_);
    return statistics_;
  }

  bool connected() const {
    std::lock_guard lock(mutex_);
    return !down_ && connected_;
  }

  std::string last_error() const {
    std::lock_guard lock(mutex_);
    return last_error_;
  }

  // The limiter is going away: every queued wait ends with
  // operation_aborted now; the strand then closes the connection and stops
  // the driver. Permits still held are not released in Redis any more:
  // their holds expire after the hold timeout and count then.
  void shutdown() {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
      while (!queue_.empty()) abort(queue_.front(), detail::asio_error(asio::error::operation_aborted));
    }
    asio::post(strand_, [self = shared_from_this()] {
      self->connection_->close("limiter destroyed");
      self->wake_.cancel();
      self->backoff_timer_.cancel();
    });
  }

 private:
  // What the driver sends to Redis besides its asks.
  struct message {
    enum kind_type : unsigned char { release, unused, pause, leave } kind;
    std::string id;                  // release, unused, leave
    clock::time_point pause_until;  // pause
  };

  friend struct jobpoll::detail::waiter_cancel_handler<limiter_core>;

  // As in basic_limiter: cancelled or granted under the mutex, never both.
  void cancel(limiter_waiter* w) {
    std::lock_guard lock(mutex_);
    if (w->state != waiter_state::queued) return;
    abort(w, detail::asio_error(asio::error::operation_aborted));
    if (queue_.empty()) kick();  // leave the line
  }

  void abort(limiter_waiter* w, std::error_code ec) {
    queue_.erase(w);
    w->state = waiter_state::aborted;
    ++(ec == detail::asio_error(asio::error::operation_aborted) ? statistics_.cancelled : statistics_.failed);
    w->post_completion(ec, limiter_permit{});
  }

  limiter_permit make_permit(std::uint64_t local) {
    return limiter_permit(std::make_shared<permit_handle>(weak_from_this(), local));
  }

  // A permit of the fallback for the head of the queue or a try_acquire (mutex held).
  limiter_permit grant_fallback(limiter_permit inner) {
    const std::uint64_t local = ledger_.add_fallback();
    fallback_permits_.emplace(local, std::move(inner));
    ++statistics_.granted;
    ++statistics_.fallback_granted;
    return make_permit(local);
  }

  // Something changed (mutex held): start the driver, or wake it.
  void kick() {
    if (closing_) return;
    if (!running_) {
      running_ = true;
      // Posted, never run here: the caller holds the mutex.
      asio::post(strand_, [self = shared_from_this()] {
        asio::co_spawn(self->strand_, run(self), [self](std::exception_ptr e) { self->driver_ended(e); });
      });
      return;
    }
    if (wake_posted_) return;
    wake_posted_ = true;
    asio::post(strand_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->on_kick();
    });
  }

  void on_kick() {
    {
      std::lock_guard lock(mutex_);
      wake_posted_ = false;
    }
    dirty_ = true;
    wake_.cancel();
  }

  // A bug, not an outage: the waiters are told, the next waiter starts afresh.
  void driver_ended(std::exception_ptr e) {
    if (!e) return;
    std::string what = "unknown error";
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = x.what();
    } catch (...) {
    }
    std::lock_guard lock(mutex_);
    running_ = false;
    last_error_ = "redis_limiter: " + what;
    while (!queue_.empty()) abort(queue_.front(), make_error_code(errc::invalid_argument));
  }

  bool closing() const {
    std::lock_guard lock(mutex_);
    return closing_;
  }

  void emit(redis_limiter_event::kind what, std::string detail) {
    if (!options_.on_event || closing()) return;
    try {
      options_.on_event({what, std::move(detail)});
    } catch (...) {
      // A throwing observer must not stop the limiter.
    }
  }

  // --- the driver (strand) --------------------------------------------------

  static asio::awaitable<void> run(std::shared_ptr<limiter_core> self) {
    while (!self->closing()) {
      if (!self->connection_->connected()) {
        if (self->stop_if_idle(false)) co_return;
        if (!co_await self->connect()) co_await self->wait_while_down();
        continue;
      }
      try {
        co_await self->flush();
        const step next = self->next_step();
        if (next.what == step::ask) {
          co_await self->ask();
        } else if (next.what == step::refresh) {
          co_await self->refresh();
        } else if (next.what == step::wait) {
          co_await self->wait_until(next.at);
        } else if (self->stop_if_idle(true)) {
          co_return;
        }
      } catch (const unreachable& e) {
        self->went_down(e.what());
      } catch (const refused& e) {
        self->refuse(e.what());
      } catch (const protocol_error& e) {
        self->connection_->close(e.what());
        self->refuse(e.what());
      }
    }
  }

  // Nothing needs Redis: the driver stops (mutex held: a kick after this starts a new one).
  bool stop_if_idle(bool connected) {
    std::lock_guard lock(mutex_);
    const bool idle = queue_.empty() && outbox_.empty() && ledger_.held() == 0 &&
                      (!connected || ledger_.unregistered_releases() == 0);
    if (idle || closing_) running_ = false;
    return idle || closing_;
  }

  struct step {
    enum kind_type : unsigned char { ask, refresh, wait, idle } what;
    clock::time_point at{};
  };

  // What to do next while connected (the outbox is empty or being refilled).
  step next_step() {
    std::lock_guard lock(mutex_);
    const auto now = clock::now();
    const bool to_refresh = ledger_.held() > 0 || ledger_.unregistered_releases() > 0;
    if (to_refresh && refresh_at_ <= now) return {step::refresh};
    if (!outbox_.empty()) return {step::wait, now};
    if (!queue_.empty()) {
      if (ask_at_ <= now) return {step::ask};
      return {step::wait, to_refresh ? std::min(ask_at_, refresh_at_) : ask_at_};
    }
    if (ledger_.has_ticket()) {
      // Nobody waits any more: leave the line (a grant made for us is given back there).
      outbox_.push_back({message::leave, ledger_.ticket(), {}});
      ledger_.ticket_done();
      ask_at_ = now;
      return {step::wait, now};
    }
    if (to_refresh) return {step::wait, refresh_at_};
    return {step::idle};
  }

  // Waits until `t`, or until a kick.
  asio::awaitable<void> wait_until(clock::time_point t) {
    if (dirty_) {
      dirty_ = false;
      co_return;
    }
    if (t > clock::now()) {
      wake_.expires_at(t);
      error_code ec;
      co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    dirty_ = false;
  }

  asio::awaitable<void> wake_wait() {
    error_code ec;
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

  // Connects and loads the script; false when Redis is down or refuses.
  asio::awaitable<bool> connect() {
    try {
      co_await connection_->connect();
      // Not a braced list in the co_await expression: g++ 12 mishandles one there.
      std::vector<std::string> load{"SCRIPT", "LOAD", std::string(limiter_script)};
      const reply r = co_await connection_->command(std::move(load));
      if (r.is_error()) {
        connection_->close(r.text);
        if (classify_error(r.text) == error_class::transient) throw unreachable("Redis: " + r.text);
        throw refused("Redis refused to load the limiter script: " + r.text);
      }
      if (r.type != reply::kind::string || r.text.empty()) {
        connection_->close("unexpected SCRIPT LOAD answer");
        throw refused("unexpected answer to SCRIPT LOAD: " + describe(r));
      }
      sha_ = r.text;
    } catch (const unreachable& e) {
      went_down(e.what());
      co_return false;
    } catch (const refused& e) {
      refuse(e.what());
      co_return false;
    }
    const std::string where = options_.unix_path.empty() ? options_.host + ":" + std::to_string(options_.port)
                                                         : options_.unix_path;
    {
      std::lock_guard lock(mutex_);
      down_ = false;
      connected_ = true;
      ++statistics_.connects;
      ask_at_ = clock::now();
      refresh_at_ = clock::now();  // hold again what this process holds, hand over the fallback's
    }
    options_.reconnect_backoff.reset();
    emit(redis_limiter_event::kind::connected, "connected to Redis at " + where);
    co_return true;
  }

  void went_down(const std::string& why) {
    bool was_up = false;
    {
      std::lock_guard lock(mutex_);
      was_up = !down_ || !ever_down_;
      if (was_up) ++statistics_.outages;
      down_ = true;
      ever_down_ = true;
      connected_ = false;
      last_error_ = why;
      expected_at_.reset();
    }
    connection_->close(why);
    if (was_up) emit(redis_limiter_event::kind::down, why);
  }

  // Redis refused the limiter: the waiters are told (errc::invalid_argument;
  // last_error() says why), later waiters try again.
  void refuse(const std::string& why) {
    {
      std::lock_guard lock(mutex_);
      last_error_ = why;
      while (!queue_.empty()) abort(queue_.front(), make_error_code(errc::invalid_argument));
      if (ledger_.has_ticket()) ledger_.ticket_done();
    }
    emit(redis_limiter_event::kind::refused, why);
  }

  // Between connection attempts: the backoff, during which the fallback (if
  // any) serves the queue. Closing cancels the timers.
  asio::awaitable<void> wait_while_down() {
    const auto until = clock::now() + options_.reconnect_backoff.next();
    if (fallback_) {
      co_await serve_fallback(until);
      co_return;
    }
    backoff_timer_.expires_at(until);
    error_code ec;
    co_await backoff_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

  asio::awaitable<void> serve_fallback(clock::time_point until) {
    using namespace asio::experimental::awaitable_operators;
    while (!closing() && clock::now() < until) {
      bool waiters = false;
      {
        std::lock_guard lock(mutex_);
        waiters = !queue_.empty();
      }
      if (!waiters) {
        co_await wait_until(until);
        continue;
      }
      if (dirty_) {
        dirty_ = false;
        continue;
      }
      wake_.expires_at(until);
      // A kick (a cancelled waiter, a new one) or the deadline ends the wait
      // for a fallback permit, which a cancelled wait leaves untaken.
      auto won = co_await (fallback_.acquire() || wake_wait());
      dirty_ = false;
      if (won.index() != 0) continue;
      std::lock_guard lock(mutex_);
      if (closing_ || queue_.empty()) continue;  // the permit goes back to the fallback
      limiter_waiter* w = queue_.front();
      queue_.erase(w);
      w->state = waiter_state::granted;
      w->post_completion({}, grant_fallback(std::move(std::get<0>(won))));
    }
  }

  // Runs the script; error replies become exceptions: NOSCRIPT is answered by
  // EVAL with the whole script, transient errors are Redis down, others refused.
  asio::awaitable<script_answer> call(std::string_view op, const std::vector<std::string>& op_args) {
    std::vector<std::string> command{"EVALSHA", sha_};
    for (auto& a : script_arguments(options_, op, op_args)) command.push_back(std::move(a));
    reply r = co_await connection_->command(command);
    if (r.is_error() && classify_error(r.text) == error_class::no_script) {
      command[0] = "EVAL";
      command[1] = std::string(limiter_script);
      r = co_await connection_->command(std::move(command));
    }
    if (r.is_error()) {
      if (classify_error(r.text) == error_class::transient) throw unreachable("Redis: " + r.text);
      throw refused("Redis refused the limiter script: " + r.text);
    }
    script_answer a = read_answer(r);
    bool reset = false;
    {
      std::lock_guard lock(mutex_);
      ++statistics_.calls;
      if (a.epoch != epoch_) {
        // A new state: hold again at once what this process holds.
        reset = !epoch_.empty() || a.fresh;
        epoch_ = a.epoch;
        refresh_at_ = clock::now();
      }
    }
    if (reset) emit(redis_limiter_event::kind::state_reset, "the limit's state in Redis was created anew");
    co_return a;
  }

  // Sends the queued messages, oldest first; each leaves the outbox once
  // Redis has it. A refused message is dropped (retrying cannot help).
  asio::awaitable<void> flush() {
    for (;;) {
      message m;
      {
        std::lock_guard lock(mutex_);
        if (outbox_.empty()) co_return;
        m = outbox_.front();
      }
      try {
        std::vector<std::string> args;
        std::string_view op;
        switch (m.kind) {
          case message::release: op = "release", args = {m.id, "used"}; break;
          case message::unused: op = "release", args = {m.id, "unused"}; break;
          case message::leave: op = "leave", args = {m.id}; break;
          case message::pause: {
            const auto left = std::chrono::ceil<std::chrono::microseconds>(m.pause_until - clock::now());
            if (left.count() > 0) op = "pause", args = {std::to_string(left.count())};
            break;
          }
        }
        if (!op.empty()) co_await call(op, args);
      } catch (const refused& e) {
        emit(redis_limiter_event::kind::refused, e.what());
      } catch (const protocol_error& e) {
        emit(redis_limiter_event::kind::refused, e.what());
      }
      std::lock_guard lock(mutex_);
      outbox_.pop_front();
    }
  }

  asio::awaitable<void> refresh() {
    std::vector<std::string> entries;
    {
      std::lock_guard lock(mutex_);
      entries = ledger_.refresh_entries(clock::now(), options_.budget.horizon());
      refresh_at_ = clock::now() + options_.hold_timeout / 3;
    }
    if (!entries.empty()) co_await call("refresh", entries);
    std::lock_guard lock(mutex_);
    ledger_.refreshed(entries);
  }

  asio::awaitable<void> ask() {
    std::string ticket;
    {
      std::lock_guard lock(mutex_);
      ticket = ledger_.ticket();
      ++statistics_.asks;
    }
    script_answer a;
    const std::vector<std::string> args{ticket};
    try {
      a = co_await call("acquire", args);
    } catch (const unreachable&) {
      // The answer was lost: a grant made for it is given back unused (the
      // ticket keeps its place in the line if it was not granted).
      std::lock_guard lock(mutex_);
      outbox_.push_back({message::unused, ticket, {}});
      throw;
    }
    std::lock_guard lock(mutex_);
    const auto now = clock::now();
    if (!a.granted) {
      ask_at_ = now + ask_again_in(a, options_.ticket_timeout);
      expected_at_ = now + std::chrono::microseconds(a.not_before_us - a.server_now_us);
      co_return;
    }
    ledger_.ticket_done();
    ask_at_ = now;
    expected_at_.reset();
    if (closing_ || queue_.empty()) {
      ++statistics_.returned;
      outbox_.push_back({message::unused, std::move(a.permit), {}});
      co_return;
    }
    if (ledger_.held() == 0) refresh_at_ = now + options_.hold_timeout / 3;
    limiter_waiter* w = queue_.front();
    queue_.erase(w);
    w->state = waiter_state::granted;
    ++statistics_.granted;
    w->post_completion({}, make_permit(ledger_.add_granted(std::move(a.permit))));
  }

  const executor_type executor_;
  const asio::strand<executor_type> strand_;
  redis_limiter_options options_;
  std::shared_ptr<connection> connection_;  // strand only
  asio::steady_timer wake_;                 // the driver's timed wait; a kick cancels it
  asio::steady_timer backoff_timer_;        // between connection attempts
  std::string sha_;                         // strand only
  bool dirty_ = false;                      // strand only: a kick came since the last wait

  // The local fallback, while Redis is down (redis_down_rule::local_fallback).
  std::optional<sliding_window_limiter> fallback_window_;
  std::optional<token_bucket_limiter> fallback_bucket_;
  limiter_ref fallback_;

  mutable std::mutex mutex_;  // guards everything below
  waiter_queue queue_;
  permit_ledger<clock::time_point> ledger_;
  std::map<std::uint64_t, limiter_permit> fallback_permits_;  // the fallback's permits behind ours
  std::deque<message> outbox_;
  redis_limiter_statistics statistics_;
  std::string epoch_;
  std::string last_error_;
  clock::time_point ask_at_{};
  clock::time_point refresh_at_{};
  std::optional<clock::time_point> expected_at_;
  bool running_ = false;
  bool wake_posted_ = false;
  bool closing_ = false;
  bool down_ = false;
  bool ever_down_ = false;
  bool connected_ = false;
};

inline void permit_handle::release_permit() noexcept {
  if (auto core = core_.lock()) core->release(local_);
}

}  // namespace detail::redis
}  // namespace jobpoll
