#pragma once
// An in-memory transport that answers from a script, for tests of code that
// sends its HTTP through a jobpoll transport: replies in order, delays and
// per-request timeouts on any clock (manual_clock in tests), failures,
// requests that never answer, and a record of every request received.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "jobpoll/detail/asio_forward.hpp"

#include "jobpoll/clock.hpp"
#include "jobpoll/detail/invalid_argument.hpp"
#include "jobpoll/detail/request_op.hpp"
#include "jobpoll/http.hpp"
#include "jobpoll/transport.hpp"

namespace jobpoll {
namespace detail {

template <clock Clock>
class scripted_core;

// One scripted answer: a response, an error, or nothing ever; after a delay.
template <class Duration>
struct scripted_reply {
  enum class kind : unsigned char { respond, fail, hang };
  kind what = kind::respond;
  http_response response;
  std::error_code error;
  Duration delay{};
};

// "Exact, or a trailing '*' for a prefix."
inline bool url_matches(std::string_view pattern, std::string_view url) noexcept {
  if (!pattern.empty() && pattern.back() == '*') return url.starts_with(pattern.substr(0, pattern.size() - 1));
  return url == pattern;
}

}  // namespace detail

/// The replies a `basic_scripted_transport` gives to requests that match one
/// method and URL pattern, as a FIFO: each matching request consumes the
/// front reply. Made by `basic_scripted_transport::on`, which owns it; every
/// member may be called from any thread, also while requests are in flight.
/// A member given a bad argument throws `std::invalid_argument` naming the
/// route, the rule and the value received.
template <clock Clock>
class basic_scripted_route {
 public:
  using duration = typename Clock::duration;

  basic_scripted_route(const basic_scripted_route&) = delete;
  basic_scripted_route& operator=(const basic_scripted_route&) = delete;

  /// Queues `response` (any status: 4xx and 5xx are responses, not errors).
  basic_scripted_route& reply(http_response response) {
    std::lock_guard lock(mutex_);
    push({reply_type::kind::respond, std::move(response), {}, {}});
    return *this;
  }

  /// Queues a response with `status` (100 to 599), `body` and `headers`.
  basic_scripted_route& reply(int status, std::string body, http_headers headers = {}) {
    if (status < 100 || status > 599) invalid("reply() needs an HTTP status from 100 to 599", std::to_string(status));
    return reply(http_response{status, std::move(headers), std::move(body)});
  }

  /// Queues a failure: the request completes with `ec` (for example
  /// `asio::error::connection_reset`) and an empty response. Throws if `ec`
  /// is not an error.
  basic_scripted_route& fail(error_code ec) {
    if (!ec) invalid("fail() needs an error code", "no error");
    std::lock_guard lock(mutex_);
    push({reply_type::kind::fail, {}, ec, {}});
    return *this;
  }

  /// Delays the reply queued next by `delay` on `Clock` (rounded up to its
  /// tick), counted from the request's start. Throws if `delay` is negative
  /// or a delay is already set for the next reply.
  template <class Rep, class Period>
  basic_scripted_route& after(std::chrono::duration<Rep, Period> delay) {
    if (delay < delay.zero()) invalid("after() needs a delay >= 0", detail::describe(delay));
    std::lock_guard lock(mutex_);
    if (next_delay_)
      invalid("after() was already called for the next reply (" + detail::describe(*next_delay_) + ")",
              detail::describe(delay));
    next_delay_ = std::chrono::ceil<duration>(delay);
    return *this;
  }

  /// Queues a reply that never comes: the request completes only when it is
  /// cancelled (`operation_aborted`), its `timeout` elapses (`timed_out`) or
  /// the transport is destroyed (`operation_aborted`). Throws after `after()`:
  /// a reply that never comes has no delay.
  basic_scripted_route& hang() {
    std::lock_guard lock(mutex_);
    if (next_delay_) invalid("hang() cannot be delayed: after() was called before it", detail::describe(*next_delay_));
    push({reply_type::kind::hang, {}, {}, {}});
    return *this;
  }

  /// From now on the route keeps its last reply: once it is the only one
  /// left, it answers every further request instead of being consumed. A
  /// reply queued later goes behind it and is kept in turn; a kept reply that
  /// has answered already then gives way to it, so a test can switch a route
  /// from "working" to "done". Throws if no reply is queued.
  basic_scripted_route& repeat() {
    std::lock_guard lock(mutex_);
    if (replies_.empty()) invalid("repeat() keeps the last reply, but none is queued", "an empty route");
    repeat_ = true;
    return *this;
  }

  /// Replies not yet consumed (a kept reply counts as one).
  std::size_t remaining() const {
    std::lock_guard lock(mutex_);
    return replies_.size();
  }

  /// The method and the URL pattern this route answers, as given to `on`.
  const std::string& method() const noexcept { return method_; }
  const std::string& url_pattern() const noexcept { return url_pattern_; }

 private:
  using reply_type = detail::scripted_reply<duration>;
  friend class detail::scripted_core<Clock>;

  basic_scripted_route(std::mutex& mutex, std::string method, std::string url_pattern)
      : mutex_(mutex), method_(std::move(method)), url_pattern_(std::move(url_pattern)) {}

  [[noreturn]] void invalid(std::string_view rule, const std::string& got) const {
    detail::throw_invalid("scripted_route " + method_ + " " + url_pattern_, rule, got);
  }

  // Mutex held.
  void push(reply_type r) {
    r.delay = next_delay_.value_or(duration::zero());
    next_delay_.reset();
    if (kept_served_) replies_.pop_front();
    kept_served_ = false;
    replies_.push_back(std::move(r));
  }

  // Mutex held. The front reply if this route matches and has one.
  std::optional<reply_type> take(const http_request& request) {
    if (replies_.empty() || request.method != method_ || !detail::url_matches(url_pattern_, request.url))
      return std::nullopt;
    if (repeat_ && replies_.size() == 1) {
      kept_served_ = true;
      return replies_.front();
    }
    reply_type r = std::move(replies_.front());
    replies_.pop_front();
    return r;
  }

  std::mutex& mutex_;  // the transport's: routes are read while requests start
  const std::string method_;
  const std::string url_pattern_;
  std::deque<reply_type> replies_;
  std::optional<duration> next_delay_;
  bool repeat_ = false;
  bool kept_served_ = false;  // the front is the kept reply and has answered a request
};

namespace detail {

// The shared state of one scripted transport. Shared ownership lets timer and
// cancellation handlers outlive the transport safely: they hold weak
// references and do nothing once it is gone.
template <clock Clock>
class scripted_core : public std::enable_shared_from_this<scripted_core<Clock>> {
 public:
  using executor_type = asio::any_io_executor;
  using duration = typename Clock::duration;
  using route = basic_scripted_route<Clock>;

  explicit scripted_core(const executor_type& ex) : executor_(ex) {}

  const executor_type& executor() const noexcept { return executor_; }

  route& add_route(std::string method, std::string url_pattern) {
    if (method.empty())
      throw_invalid("scripted_transport", "on() needs a method", "an empty one for \"" + url_pattern + "\"");
    if (const auto star = url_pattern.find('*'); star != std::string::npos && star + 1 != url_pattern.size())
      throw_invalid("scripted_transport", "on() allows '*' only at the end of a URL pattern",
                    "\"" + url_pattern + "\"");
    std::lock_guard lock(mutex_);
    routes_.push_back(std::unique_ptr<route>(new route(mutex_, std::move(method), std::move(url_pattern))));
    return *routes_.back();
  }

  template <class Handler>
  void start(http_request request, Handler handler) {
    auto slot = asio::get_associated_cancellation_slot(handler);
    request_op_ptr op(request_op_impl<Handler, executor_type>::create(std::move(handler), executor_, pending_));
    std::lock_guard lock(mutex_);
    plan p = plan_for(std::move(request));
    if (p.wait && *p.wait == duration::zero()) {
      // Never inside the initiating call: the completion is posted.
      op.release()->post_completion(p.error, std::move(p.response));
      return;
    }
    const std::uint64_t id = next_id_++;
    auto& entry = in_flight_.emplace(id, in_flight{std::move(op), nullptr, p.error, std::move(p.response)})
                      .first->second;
    if (p.wait) {
      entry.timer = std::make_unique<timer_for<Clock>>(executor_);
      entry.timer->expires_after(*p.wait);
      entry.timer->async_wait([weak = this->weak_from_this(), id](std::error_code ec) {
        if (auto self = weak.lock()) self->on_timer(id, ec);
      });
    }
    if (slot.is_connected()) slot.template emplace<cancel_handler>(this->weak_from_this(), id);
  }

  std::vector<http_request> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

  std::vector<std::string> unmatched() const {
    std::lock_guard lock(mutex_);
    return unmatched_;
  }

  std::size_t count(std::string_view method, std::string_view url_pattern) const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& r : requests_)
      if (r.method == method && url_matches(url_pattern, r.url)) ++n;
    return n;
  }

  std::size_t pending() const noexcept { return pending_->load(std::memory_order_acquire); }

  // Completes every request in flight with operation_aborted and destroys
  // their timers, whose waits then end with nothing left to do.
  void shutdown() {
    std::lock_guard lock(mutex_);
    for (auto& [id, entry] : in_flight_) {
      entry.timer.reset();
      entry.op.release()->post_completion(detail::asio_error(asio::error::operation_aborted), {});
    }
    in_flight_.clear();
  }

 private:
  // What a request will get, and when: after `wait` (none: never, until
  // cancelled), `error` and `response`.
  struct plan {
    std::optional<duration> wait;
    std::error_code error;
    http_response response;
  };

  struct in_flight {
    request_op_ptr op;
    std::unique_ptr<timer_for<Clock>> timer;  // none for a hang without a timeout
    std::error_code error;                    // what the timer delivers
    http_response response;
  };

  // Installed in a request's cancellation slot. Every cancellation type is
  // honoured: the request is abandoned whatever the server might still do.
  struct cancel_handler {
    cancel_handler(std::weak_ptr<scripted_core> c, std::uint64_t i) noexcept : core(std::move(c)), id(i) {}

    std::weak_ptr<scripted_core> core;
    std::uint64_t id;

    void operator()(asio::cancellation_type type) const {
      if (type == asio::cancellation_type::none) return;
      if (auto self = core.lock()) self->resolve(id, detail::asio_error(asio::error::operation_aborted));
    }
  };

  // Mutex held: records the request and takes its reply from the first
  // matching route that still has one.
  plan plan_for(http_request request) {
    requests_.push_back(request);
    std::optional<typename route::reply_type> reply;
    for (auto& r : routes_) {
      reply = r->take(request);
      if (reply) break;
    }
    if (!reply) {
      unmatched_.push_back(request.method + " " + request.url);
      return {duration::zero(), std::make_error_code(std::errc::function_not_supported), {}};
    }
    using kind = typename route::reply_type::kind;
    // Nothing is queued here, so a deadline bounds the exchange like a timeout.
    std::optional<duration> timeout;
    for (const auto& bound : {request.timeout, request.deadline}) {
      if (!bound) continue;
      const duration d = std::max(std::chrono::ceil<duration>(*bound), duration::zero());
      timeout = timeout ? std::min(*timeout, d) : d;
    }
    // The reply was sent; a timeout shorter than its delay overtakes it.
    if (reply->what == kind::hang) {
      if (!timeout) return {std::nullopt, {}, {}};
      return {*timeout, detail::asio_error(asio::error::timed_out), {}};
    }
    if (timeout && *timeout < reply->delay) return {*timeout, detail::asio_error(asio::error::timed_out), {}};
    return {reply->delay, reply->error, std::move(reply->response)};
  }

  void on_timer(std::uint64_t id, std::error_code ec) {
    std::lock_guard lock(mutex_);
    auto it = in_flight_.find(id);
    if (it == in_flight_.end()) return;  // cancelled, or the transport shut down
    in_flight entry = std::move(it->second);
    in_flight_.erase(it);
    entry.timer.reset();
    // A wait aborted by someone else (manual_clock::reset) aborts the request.
    if (ec) {
      entry.op.release()->post_completion(ec, {});
    } else {
      entry.op.release()->post_completion(entry.error, std::move(entry.response));
    }
  }

  void resolve(std::uint64_t id, std::error_code ec) {
    std::lock_guard lock(mutex_);
    auto it = in_flight_.find(id);
    if (it == in_flight_.end()) return;  // already completed
    in_flight entry = std::move(it->second);
    in_flight_.erase(it);
    entry.timer.reset();
    entry.op.release()->post_completion(ec, {});
  }

  const executor_type executor_;
  const pending_count pending_ = std::make_shared<std::atomic<std::size_t>>(0);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<route>> routes_;  // stable addresses: on() hands out references
  std::vector<http_request> requests_;
  std::vector<std::string> unmatched_;
  std::map<std::uint64_t, in_flight> in_flight_;
  std::uint64_t next_id_ = 0;
};

}  // namespace detail

/// A `transport` that answers from a script instead of the network, for
/// tests: `on(method, url_pattern)` returns a route to queue replies on, and
/// every request is recorded.
///
/// `async_request(request, token)` completes with
/// `void(error_code, http_response)`:
/// - with the front reply of the first route (in the order `on` added them)
///   that matches the request and still has a reply, after that reply's delay
///   on `Clock`: its response with an empty error, or its `fail()` error;
/// - with `asio::error::timed_out` when `request.timeout` (or
///   `request.deadline`, the shorter of the two) is shorter than the reply's
///   delay, or the reply hangs, once the timeout elapses on `Clock`
///   (the reply is consumed all the same: it was sent; a timeout equal to the
///   delay lets the reply through);
/// - with `std::errc::function_not_supported` at once when no route matches
///   or every matching route is used up; `unmatched()` then says which
///   request it was ("GET http://..."), since an error code carries no text;
/// - with `asio::error::operation_aborted` at once when cancelled through the
///   token's cancellation slot (terminal, partial or total), or when the
///   transport is destroyed; its timer is cancelled, so nothing is left
///   pending on the clock.
/// The handler is never invoked inside `async_request`: completions are
/// posted to the handler's associated executor (by default the transport's).
/// Delays and timeouts use `timer_for<Clock>` on the transport's executor, so
/// `testing::manual_clock` drives them exactly.
///
/// Every member may be called from any thread. Like any Asio I/O object, the
/// transport must be destroyed before its execution context, and a
/// cancellation signal should be emitted where the handler runs.
template <clock Clock = std::chrono::steady_clock>
class basic_scripted_transport {
 public:
  using clock_type = Clock;
  using executor_type = asio::any_io_executor;
  using route = basic_scripted_route<Clock>;

  /// A transport whose delays and timeouts run on `ex`.
  explicit basic_scripted_transport(asio::any_io_executor ex) : core_(std::make_shared<core>(ex)) {}

  basic_scripted_transport(const basic_scripted_transport&) = delete;
  basic_scripted_transport& operator=(const basic_scripted_transport&) = delete;

  /// Completes every request in flight with `asio::error::operation_aborted`
  /// (posted to each handler's executor) and cancels their timers.
  ~basic_scripted_transport() { core_->shutdown(); }

  executor_type get_executor() const noexcept { return core_->executor(); }

  /// A new route for requests whose method equals `method` (case-sensitive)
  /// and whose URL equals `url_pattern`, or starts with it when it ends in
  /// '*' (the query string is part of the URL). The reference stays valid as
  /// long as the transport. Throws `std::invalid_argument` for an empty
  /// method or a '*' anywhere but at the end.
  route& on(std::string method, std::string url_pattern) {
    return core_->add_route(std::move(method), std::move(url_pattern));
  }

  /// Sends `request` to the script (see the class comment for how it
  /// completes). Works with every completion token.
  ///
  /// @par Completion Signature
  /// `void(error_code, http_response)`; with `asio::use_awaitable`,
  /// `co_await` yields the `http_response` or throws `std::system_error`.
  ///
  /// @par Per-Operation Cancellation
  /// Terminal, partial and total: completes at once with
  /// `asio::error::operation_aborted` and cancels the request's timer. The
  /// request stays recorded (`requests()`), and the reply it matched stays
  /// consumed, as a request that reached a server would be.
  ///
  /// @par Errors
  /// `asio::error::timed_out`, `std::errc::function_not_supported` (no
  /// route), a reply's `fail()` error, `asio::error::operation_aborted`
  /// (cancelled, or the transport destroyed).
  ///
  /// No default completion token: the executor type is
  /// `asio::any_io_executor`, whose `asio::default_completion_token_t` is
  /// `void` in Asio 1.22.
  template <class CompletionToken>
  auto async_request(http_request request, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(error_code, http_response)>(
        [c = core_.get()](auto handler, http_request r) { c->start(std::move(r), std::move(handler)); }, token,
        std::move(request));
  }

  /// Every request received, in the order `async_request` was called
  /// (matched or not), as a copy.
  std::vector<http_request> requests() const { return core_->requests(); }

  /// How many recorded requests have method `method` and a URL matching
  /// `url_pattern` (as in `on`).
  std::size_t count(std::string_view method, std::string_view url_pattern) const {
    return core_->count(method, url_pattern);
  }

  /// "METHOD URL" of each request that completed with
  /// `function_not_supported` because no route had a reply for it, in order.
  std::vector<std::string> unmatched() const { return core_->unmatched(); }

  /// Requests started whose handler has not run yet.
  std::size_t pending() const noexcept { return core_->pending(); }

 private:
  using core = detail::scripted_core<Clock>;
  std::shared_ptr<core> core_;
};

/// The scripted transport on `std::chrono::steady_clock`.
using scripted_transport = basic_scripted_transport<>;

static_assert(transport<scripted_transport>);

}  // namespace jobpoll
