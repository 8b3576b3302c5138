#pragma once
// The engine behind curl_transport: one libcurl multi handle driven by Asio
// (curl's sockets and timer on the caller's io_context, no thread of its
// own), a FIFO of requests in front of it, and the time limits of each request.

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <curl/curl.h>

#include "jobpoll/detail/asio_forward.hpp"
#if defined(JOBPOLL_USE_BOOST_ASIO)
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/socket_base.hpp>
#else
#include <asio/ip/tcp.hpp>
#include <asio/socket_base.hpp>
#endif

#include "jobpoll/error.hpp"
#include "jobpoll/http.hpp"
#include "jobpoll/transport/detail/curl_error.hpp"
#include "jobpoll/transport/curl_options.hpp"
#include "jobpoll/transport/detail/curl_queue.hpp"
#include "jobpoll/transport/detail/curl_request.hpp"

// CURLOPT_PREREQFUNCTION (7.80) is how the transport stops libcurl from
// re-sending a request on its own; without it the transport cannot keep its
// "sent at most once" contract.
#if LIBCURL_VERSION_NUM < 0x075000
#error "jobpoll's curl transport needs libcurl 7.80 or later (CURLOPT_PREREQFUNCTION)"
#endif

namespace jobpoll::detail {

inline void curl_global_init_once() {
  static std::once_flag flag;
  static CURLcode result = CURLE_OK;
  std::call_once(flag, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (result != CURLE_OK)
    throw std::system_error(std::error_code(result, curl_category_instance()), "jobpoll: curl_global_init failed");
}

// "2.5 s", for messages.
inline std::string seconds_text(std::chrono::nanoseconds d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", std::chrono::duration<double>(d).count());
  return text;
}

// A duration as curl's milliseconds: rounded up (a timeout is never
// shortened), at least 1 (0 means "no timeout" to curl), at most LONG_MAX.
inline long to_curl_ms(std::chrono::nanoseconds d) noexcept {
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(d).count();
  return static_cast<long>(std::clamp<std::chrono::milliseconds::rep>(ms, 1, LONG_MAX));
}

// The multi handle and everything it drives. Shared ownership lets socket
// and timer handlers, cancellation and pending starts outlive the transport:
// they hold weak references and do nothing once it is gone.
//
// A request is, on the strand, either queued (in `queue_`, no easy handle)
// or active (in the multi handle, `easy` set), and in `requests_` while it is
// either. At most `max_active_` are active; a slot that frees hands the
// oldest queued request to curl (`admit`). One timer (`queue_timer_`) ends
// the queued requests whose wait limit passes.
//
// Threading: every call into the multi handle, and every curl callback (all
// of them happen inside those calls), runs on `strand_`; the sockets and the
// timers have the strand as their executor. Only `start`, `cancel` (through
// the cancellation slot) and the counters are used from other threads, and
// they only post to the strand and touch atomics.
class curl_multi : public std::enable_shared_from_this<curl_multi> {
 public:
  using executor_type = asio::any_io_executor;
  using strand_type = asio::strand<executor_type>;
  using clock_type = std::chrono::steady_clock;

  curl_multi(const executor_type& ex, curl_options options)
      : executor_(ex),
        strand_(asio::make_strand(ex)),
        timer_(strand_),
        queue_timer_(strand_),
        options_(std::move(options)),
        max_active_(transfer_cap(options_, false)) {
    curl_global_init_once();
    multi_.reset(curl_multi_init());
    if (!multi_) throw std::bad_alloc();
    idle_.reserve(pool_size);
    CURLM* m = multi_.get();
    curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, &curl_multi::socket_callback);
    curl_multi_setopt(m, CURLMOPT_SOCKETDATA, static_cast<void*>(this));
    curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, &curl_multi::timer_callback);
    curl_multi_setopt(m, CURLMOPT_TIMERDATA, static_cast<void*>(this));
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, options_.max_connections_per_host);
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, options_.max_total_connections);
    curl_multi_setopt(m, CURLMOPT_MAX_CONCURRENT_STREAMS, options_.max_concurrent_streams);
    // Keep every connection the limits allow (or the transfer cap, without
    // one) open for reuse: libcurl's own cache size follows the handles it
    // holds, which the queue keeps few, so it would close and reopen them.
    const std::size_t keep = options_.max_total_connections > 0
                                 ? static_cast<std::size_t>(options_.max_total_connections)
                                 : transfer_cap(options_, false);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, static_cast<long>(std::min<std::size_t>(keep, LONG_MAX)));
  }

  curl_multi(const curl_multi&) = delete;
  curl_multi& operator=(const curl_multi&) = delete;

  // Runs on the strand, or while the execution context destroys the job
  // that held the last reference: requests still here never get their
  // handlers called (the context is going away), like any pending Asio operation.
  ~curl_multi() {
    closing_ = true;
    for (auto& [id, r] : requests_) {
      if (r->easy != nullptr) {
        curl_multi_remove_handle(multi_.get(), r->easy);
        curl_easy_cleanup(r->easy);
      }
      in_flight_.fetch_sub(1);
      r->discard();
    }
    // queue_ still points at the discarded requests; it only frees its index.
    for (CURL* easy : idle_) curl_easy_cleanup(easy);
    multi_.reset();  // closes the cached connections through close_socket
    for (auto& [fd, e] : sockets_) forget(*e);
  }

  const executor_type& executor() const noexcept { return executor_; }
  const strand_type& strand() const noexcept { return strand_; }
  std::size_t in_flight() const noexcept { return in_flight_.load(); }
  std::size_t queued() const noexcept { return queued_.load(std::memory_order_relaxed); }
  std::size_t active() const noexcept { return active_.load(std::memory_order_relaxed); }
  std::size_t max_active() const noexcept { return max_active_.load(std::memory_order_relaxed); }
  std::uint64_t connections_opened() const noexcept { return connections_opened_.load(); }
  std::size_t max_response_bytes() const noexcept { return options_.max_response_bytes; }
  std::size_t max_header_bytes() const noexcept { return options_.max_header_bytes; }

  // Any thread. The request reaches the strand through a posted job; a
  // cancellation emitted before that is seen there.
  template <class Handler>
  void start(Handler handler, http_request request) {
    auto slot = asio::get_associated_cancellation_slot(handler);
    const clock_type::time_point made = clock_type::now();
    const std::chrono::nanoseconds timeout = request.timeout.value_or(options_.default_timeout);
    curl_request* r = curl_request_op<Handler, executor_type>::create(
        std::move(handler), executor_, std::move(request), made, timeout, options_.max_response_bytes,
        options_.max_header_bytes, next_id_++);
    begin_job job(shared_from_this(), r);
    if (slot.is_connected()) slot.template emplace<cancel_handler>(weak_from_this(), strand_, r);
    asio::post(strand_, std::move(job));
  }

  // On the strand: completes every request with operation_aborted and stops
  // the timers. Requests posted afterwards are aborted when they arrive.
  void shutdown() {
    closing_ = true;
    timer_.cancel();
    queue_timer_.cancel();
    while (!queue_.empty()) complete(queue_.pop_front(), detail::asio_error(asio::error::operation_aborted));
    queued_.store(0, std::memory_order_relaxed);
    while (!requests_.empty()) {
      curl_request& r = *requests_.begin()->second;
      detach(r);
      complete(r, detail::asio_error(asio::error::operation_aborted));
    }
  }

 private:
  // Enough to keep a steady stream of requests from creating and freeing
  // easy handles; connections live in the multi handle's cache, not here.
  static constexpr std::size_t pool_size = 64;

  using socket_type = asio::ip::tcp::socket::rebind_executor<strand_type>::other;
  using timer_type = asio::steady_timer::rebind_executor<strand_type>::other;

  struct multi_deleter {
    void operator()(CURLM* m) const noexcept { curl_multi_cleanup(m); }
  };

  // One socket curl uses. Sockets curl opens for connections come through
  // open_socket and are closed here (close_socket); others (the threaded
  // resolver's wake-up socket) are only watched, and released on REMOVE.
  struct socket_entry {
    socket_entry(const strand_type& strand, curl_socket_t fd, bool owned) : socket(strand), fd(fd), owned(owned) {}
    socket_type socket;
    const curl_socket_t fd;
    const bool owned;
    bool closed = false;   // closed or released: wait for nothing more
    int wanted = 0;        // CURL_POLL_IN / _OUT / _INOUT, or 0
    bool reading = false;  // an async_wait(wait_read) is pending
    bool writing = false;  // an async_wait(wait_write) is pending
  };

  // Owns a request from start() until the strand takes it.
  class begin_job {
   public:
    begin_job(std::shared_ptr<curl_multi> self, curl_request* r) noexcept : self_(std::move(self)), request_(r) {
      self_->in_flight_.fetch_add(1);
    }
    begin_job(begin_job&& other) noexcept
        : self_(std::move(other.self_)), request_(std::exchange(other.request_, nullptr)) {}
    begin_job& operator=(begin_job&&) = delete;
    ~begin_job() {
      if (request_ == nullptr) return;
      self_->in_flight_.fetch_sub(1);
      request_->discard();
    }
    void operator()() { self_->begin(*std::exchange(request_, nullptr)); }

   private:
    std::shared_ptr<curl_multi> self_;
    curl_request* request_;
  };

  // Installed in a request's cancellation slot; every type but none cancels.
  // The request stays alive while the slot holds this (see handler_op::clear_slot).
  struct cancel_handler {
    cancel_handler(std::weak_ptr<curl_multi> m, strand_type s, curl_request* r) noexcept
        : multi(std::move(m)), strand(std::move(s)), request(r) {}

    std::weak_ptr<curl_multi> multi;
    strand_type strand;
    curl_request* request;

    void operator()(asio::cancellation_type type) const {
      if (type == asio::cancellation_type::none) return;
      request->cancel_requested = true;
      // The reference is taken on the strand, so the last one is always let go there.
      asio::post(strand, [multi = multi, id = request->id] {
        if (auto self = multi.lock()) self->cancel(id);
      });
    }
  };

  struct socket_waiter {
    std::weak_ptr<curl_multi> multi;
    std::shared_ptr<socket_entry> entry;
    int direction;  // CURL_CSELECT_IN or CURL_CSELECT_OUT

    void operator()(const error_code& ec) const {
      (direction == CURL_CSELECT_IN ? entry->reading : entry->writing) = false;
      const auto self = multi.lock();
      if (!self || entry->closed) return;
      // Aborted: curl asked to stop watching (REMOVE), or a later request
      // wants it again and arm() below picks that up.
      if (ec != detail::asio_error(asio::error::operation_aborted)) self->act(entry->fd, ec ? CURL_CSELECT_ERR : direction);
      self->arm(entry);
    }
  };

  struct timer_waiter {
    std::weak_ptr<curl_multi> multi;

    void operator()(const error_code& ec) const {
      if (ec == detail::asio_error(asio::error::operation_aborted)) return;
      if (auto self = multi.lock()) self->act(CURL_SOCKET_TIMEOUT, 0);
    }
  };

  struct queue_timer_waiter {
    std::weak_ptr<curl_multi> multi;

    void operator()(const error_code& ec) const {
      if (ec == detail::asio_error(asio::error::operation_aborted)) return;
      if (auto self = multi.lock()) {
        self->queue_timer_at_.reset();
        self->expire_queued();
      }
    }
  };

  // --- requests (strand) ---------------------------------------------------

  void begin(curl_request& r) {
    if (closing_ || r.cancel_requested) return complete(r, detail::asio_error(asio::error::operation_aborted));
    if (r.timeout <= std::chrono::nanoseconds::zero()) {
      report(r, detail::asio_error(asio::error::timed_out), "the request's timeout had run out before it was sent");
      return complete(r, detail::asio_error(asio::error::timed_out));
    }
    try {
      requests_.emplace(r.id, &r);
    } catch (const std::bad_alloc&) {
      return fail(r, CURLE_OUT_OF_MEMORY);
    }
    if (queue_.empty() && active() < max_active()) return hand_off(r, clock_type::now());
    try {
      queue_.push_back(r);
    } catch (const std::bad_alloc&) {
      return fail(r, CURLE_OUT_OF_MEMORY);
    }
    queue_changed();
  }

  // Gives the request to curl, unless its wait limit has passed. Its timeout
  // starts now; a deadline that comes first cuts it.
  void hand_off(curl_request& r, clock_type::time_point now) {
    if (now >= r.wait_limit) return not_sent(r, now);
    std::chrono::nanoseconds limit = r.timeout;
    if (r.deadline && *r.deadline - now < limit) {
      limit = *r.deadline - now;
      r.deadline_cut = true;
    }
    CURL* easy = acquire_easy();
    if (easy == nullptr) return fail(r, CURLE_OUT_OF_MEMORY);
    if (const CURLcode rc = configure(easy, r, limit); rc != CURLE_OK) {
      release_easy(easy);
      return fail(r, rc);
    }
    r.easy = easy;
    if (const CURLMcode mc = curl_multi_add_handle(multi_.get(), easy); mc != CURLM_OK) {
      release_easy(std::exchange(r.easy, nullptr));
      return fail(r, mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT);
    }
    active_.fetch_add(1, std::memory_order_relaxed);
  }

  // Hands queued requests to curl, oldest first, while it has room.
  void admit() {
    if (closing_ || queue_.empty()) return;
    const clock_type::time_point now = clock_type::now();
    while (!queue_.empty() && active() < max_active()) hand_off(queue_.pop_front(), now);
    queue_changed();
  }

  // Ends the queued requests whose wait limit has passed.
  void expire_queued() {
    const clock_type::time_point now = clock_type::now();
    while (curl_request* r = queue_.pop_expired(now)) not_sent(*r, now);
    queue_changed();
  }

  // After the queue changed: the count others read, and the timer set for the
  // earliest wait limit. A timer set for an earlier limit (of a request since
  // handed to curl) is left to fire early and find nothing: one timer wait
  // per expiry or per emptying, not one per request.
  void queue_changed() {
    queued_.store(queue_.size(), std::memory_order_relaxed);
    const std::optional<clock_type::time_point> next = queue_.next_limit();
    if (!next) {
      // Nothing left to wait for: an idle transport keeps no timer pending,
      // so its io_context's run() can return.
      if (queue_timer_at_) {
        queue_timer_.cancel();
        queue_timer_at_.reset();
      }
      return;
    }
    if (queue_timer_at_ && *queue_timer_at_ <= *next) return;
    queue_timer_.expires_at(*next);
    queue_timer_.async_wait(queue_timer_waiter{weak_from_this()});
    queue_timer_at_ = next;
  }

  void not_sent(curl_request& r, clock_type::time_point now) {
    report(r, errc::not_sent,
           "waited " + seconds_text(now - r.made) + " in the transport's queue for a connection, until " +
               (r.deadline ? "its deadline" : "its timeout (it has no deadline)") + "; never sent");
    complete(r, errc::not_sent);
  }

  // `limit`: how long curl may take over the exchange (CURLOPT_TIMEOUT_MS).
  // What every request of this transport shares: set once per easy handle,
  // which keeps them from one request to the next (no curl_easy_reset, which
  // would free and parse them all again for every request).
  CURLcode configure_handle(CURL* easy) {
    CURLcode rc = CURLE_OK;
    auto set = [&](CURLoption option, auto value) {
      if (rc == CURLE_OK) rc = curl_easy_setopt(easy, option, value);
    };
    set(CURLOPT_NOSIGNAL, 1L);
    set(CURLOPT_ACCEPT_ENCODING, "");  // every encoding curl can decode
    set(CURLOPT_FOLLOWLOCATION, 0L);   // a job client reads Location itself
#if LIBCURL_VERSION_NUM >= 0x075500
    set(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    set(CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    set(CURLOPT_CONNECTTIMEOUT_MS, to_curl_ms(options_.connect_timeout));
    set(CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
    set(CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
    if (!options_.ca_file.empty()) set(CURLOPT_CAINFO, options_.ca_file.c_str());
    set(CURLOPT_HTTP_VERSION, static_cast<long>(options_.http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1));
    set(CURLOPT_USERAGENT, options_.user_agent.c_str());
    set(CURLOPT_WRITEFUNCTION, &curl_request::on_body);
    set(CURLOPT_HEADERFUNCTION, &curl_request::on_header);
    set(CURLOPT_PREREQFUNCTION, &curl_request::on_prereq);
    // The multi handle, not the request: a connection and its socket outlive
    // the request that opened it, in the multi handle's connection cache.
    set(CURLOPT_OPENSOCKETFUNCTION, &curl_multi::open_socket_callback);
    set(CURLOPT_OPENSOCKETDATA, static_cast<void*>(this));
    set(CURLOPT_CLOSESOCKETFUNCTION, &curl_multi::close_socket_callback);
    set(CURLOPT_CLOSESOCKETDATA, static_cast<void*>(this));
    return rc;
  }

  // What is this request's own. Every option a request may set is set for
  // each one (the method's too), so nothing carries over from the last
  // request the handle made.
  CURLcode configure(CURL* easy, curl_request& r, std::chrono::nanoseconds limit) {
    CURLcode rc = CURLE_OK;
    auto set = [&](CURLoption option, auto value) {
      if (rc == CURLE_OK) rc = curl_easy_setopt(easy, option, value);
    };
    set(CURLOPT_PRIVATE, static_cast<void*>(&r));
    set(CURLOPT_URL, r.url.c_str());
    set(CURLOPT_ERRORBUFFER, r.error_buffer);
    set(CURLOPT_TIMEOUT_MS, to_curl_ms(limit));
    // A HEAD answer's Content-Length announces no body: no limit to apply.
    const bool head = r.method == "HEAD";
    set(CURLOPT_MAXFILESIZE_LARGE,
        head ? curl_off_t{0}
             : static_cast<curl_off_t>(std::min<std::size_t>(r.max_body, std::numeric_limits<curl_off_t>::max())));
    set(CURLOPT_WRITEDATA, static_cast<void*>(&r));
    set(CURLOPT_HEADERDATA, static_cast<void*>(&r));
    set(CURLOPT_PREREQDATA, static_cast<void*>(&r));
    set(CURLOPT_HTTPHEADER, r.header_list.get());
    // The method, from a clean slate: no body (setting POSTFIELDS, even to
    // null, also makes the method POST), no custom name, then HTTPGET, which
    // undoes POST and NOBODY; then what this request needs.
    set(CURLOPT_POSTFIELDS, static_cast<const char*>(nullptr));
    set(CURLOPT_CUSTOMREQUEST, static_cast<const char*>(nullptr));
    set(CURLOPT_HTTPGET, 1L);
    if (head) {
      set(CURLOPT_NOBODY, 1L);
    } else if (r.method != "GET" || r.sends_body) {
      if (r.method == "POST") {
        set(CURLOPT_POST, 1L);
      } else {
        set(CURLOPT_CUSTOMREQUEST, r.method.c_str());
      }
      if (r.sends_body) {
        set(CURLOPT_POSTFIELDS, r.body.data());
        set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
      }
    }
    return rc;
  }

  void cancel(std::uint64_t id) {
    const auto it = requests_.find(id);
    if (it == requests_.end()) return;  // already completed, or not begun (then begin() sees the flag)
    curl_request& r = *it->second;
    if (r.easy == nullptr) {
      queue_.erase(r);
      complete(r, detail::asio_error(asio::error::operation_aborted));
      queue_changed();
    } else {
      detach(r);
      complete(r, detail::asio_error(asio::error::operation_aborted));
      admit();
    }
  }

  // Takes an active request out of the multi handle; curl keeps its
  // connection for reuse if the exchange had finished, and closes it otherwise.
  void detach(curl_request& r) noexcept {
    curl_multi_remove_handle(multi_.get(), r.easy);
    release_easy(std::exchange(r.easy, nullptr));
    active_.fetch_sub(1, std::memory_order_relaxed);
  }

  // Ends a request that is neither queued nor active any more.
  void complete(curl_request& r, std::error_code ec) {
    requests_.erase(r.id);
    in_flight_.fetch_sub(1);
    r.post_completion(ec, ec ? http_response{} : std::move(r.response));
  }

  void fail(curl_request& r, CURLcode rc) {
    std::error_code ec;
    const bool headers_too_large = r.headers_too_large(rc);
    if (headers_too_large) {
      ec = std::make_error_code(std::errc::message_size);
    } else if (r.callback_error) {
      ec = r.callback_error;
    } else if (rc == CURLE_FILESIZE_EXCEEDED) {
      ec = std::make_error_code(std::errc::message_size);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
      ec = detail::asio_error(asio::error::timed_out);  // the transport contract's code, whoever timed out
    } else {
      ec = std::error_code(rc, curl_category_instance());
    }
    const std::string curl_says = r.error_buffer[0] != '\0' ? std::string(r.error_buffer) : ec.message();
    if (r.resend_refused()) {
      report(r, ec, "the server closed a reused connection (or refused the HTTP/2 stream) without answering; not re-sent");
    } else if (headers_too_large) {
      report(r, ec, "the response headers are larger than max_header_bytes (" + std::to_string(r.max_headers) +
                        ") or one header line is longer than libcurl's limit (100 KB)");
    } else if (ec == std::errc::message_size) {
      report(r, ec, "the response body is larger than max_response_bytes (" + std::to_string(r.max_body) + ")");
    } else if (ec == detail::asio_error(asio::error::timed_out) && r.deadline_cut && clock_type::now() >= *r.deadline) {
      // curl's clock and this one are both CLOCK_MONOTONIC, and curl's limit
      // (rounded up to whole ms) ends at the deadline or after it.
      report(r, ec, "the request's deadline ended the exchange " + seconds_text(clock_type::now() - r.made) +
                        " after the request was made (" + curl_says + ")");
    } else {
      report(r, ec, curl_says);
    }
    complete(r, ec);
  }

  void report(const curl_request& r, std::error_code ec, const std::string& detail) const noexcept {
    if (options_.on_error) options_.on_error(r.method, r.url, ec, detail);
  }

  // Completes every request curl has finished with.
  void drain() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      const CURLcode rc = msg->data.result;  // read before detach() frees msg
      char* p = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p);
      curl_request& r = *static_cast<curl_request*>(static_cast<void*>(p));
      if (rc == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        long version = 0;
        curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version);
        // A server that multiplexes can take more transfers than connections.
        if (version == CURL_HTTP_VERSION_2_0 && !multiplexing_) {
          multiplexing_ = true;
          max_active_.store(transfer_cap(options_, true), std::memory_order_relaxed);
        }
        try {
          r.take_response(static_cast<int>(status));
        } catch (const std::bad_alloc&) {
          r.callback_error = std::make_error_code(std::errc::not_enough_memory);
        }
      }
      detach(r);
      if (rc == CURLE_OK && !r.callback_error) {
        complete(r, {});
      } else {
        fail(r, rc);
      }
    }
    admit();
  }

  // A handle configured with what every request shares (configure_handle).
  CURL* acquire_easy() noexcept {
    if (!idle_.empty()) {
      CURL* easy = idle_.back();
      idle_.pop_back();
      return easy;
    }
    CURL* easy = curl_easy_init();
    if (easy != nullptr && configure_handle(easy) != CURLE_OK) {
      curl_easy_cleanup(easy);
      return nullptr;
    }
    return easy;
  }

  // Keeps the handle for the next request, as configured; it no longer
  // points at the request's header list and body (freed with the request).
  void release_easy(CURL* easy) noexcept {
    if (idle_.size() < pool_size) {
      curl_easy_setopt(easy, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, static_cast<const char*>(nullptr));
      idle_.push_back(easy);  // capacity reserved: no allocation
    } else {
      curl_easy_cleanup(easy);
    }
  }

  // --- curl's sockets and timer (strand, inside curl calls) ----------------

  // Lets curl act on `fd` (or on its timeouts), then completes what finished.
  // Per-transfer failures come back through curl_multi_info_read, so the
  // returned code (only ever a stray socket or out of memory) is not needed.
  void act(curl_socket_t fd, int events) {
    int running = 0;
    curl_multi_socket_action(multi_.get(), fd, events, &running);
    drain();
  }

  // Starts the waits curl asked for that are not pending yet.
  void arm(const std::shared_ptr<socket_entry>& e) {
    if (e->closed) return;
    if ((e->wanted & CURL_POLL_IN) != 0 && !e->reading) {
      e->socket.async_wait(asio::socket_base::wait_read, socket_waiter{weak_from_this(), e, CURL_CSELECT_IN});
      e->reading = true;
    }
    if ((e->wanted & CURL_POLL_OUT) != 0 && !e->writing) {
      e->socket.async_wait(asio::socket_base::wait_write, socket_waiter{weak_from_this(), e, CURL_CSELECT_OUT});
      e->writing = true;
    }
  }

  // Stops watching a socket: closes one of ours, hands curl's own back to it.
  static void forget(socket_entry& e) noexcept {
    e.closed = true;
    e.wanted = 0;
    error_code ignored;
    if (e.owned) {
      e.socket.close(ignored);
    } else {
      e.socket.release(ignored);
    }
  }

  static int socket_callback(CURL*, curl_socket_t fd, int what, void* self, void*) {
    return static_cast<curl_multi*>(self)->on_socket(fd, what);
  }

  int on_socket(curl_socket_t fd, int what) noexcept {
    auto it = sockets_.find(fd);
    if (what == CURL_POLL_REMOVE) {
      if (it == sockets_.end()) return 0;
      socket_entry& e = *it->second;
      e.wanted = 0;
      if (e.owned) {
        // Idle in the connection cache until reused or closed: no waits
        // pending, so an idle transport leaves its io_context free to return.
        error_code ignored;
        e.socket.cancel(ignored);
      } else {
        forget(e);  // curl reports REMOVE before it closes its own sockets
        sockets_.erase(it);
      }
      return 0;
    }
    try {
      if (it == sockets_.end()) {
        it = sockets_.emplace(fd, std::make_shared<socket_entry>(strand_, fd, false)).first;
        error_code ec;
        it->second->socket.assign(asio::ip::tcp::v4(), fd, ec);  // only waited on: the protocol is not used
        if (ec) {
          sockets_.erase(it);
          return -1;
        }
      }
      it->second->wanted = what;
      arm(it->second);
      return 0;
    } catch (const std::exception&) {
      return -1;  // curl fails the transfers of this multi handle
    }
  }

  static curl_socket_t open_socket_callback(void* self, curlsocktype purpose, curl_sockaddr* address) {
    return static_cast<curl_multi*>(self)->on_open_socket(purpose, *address);
  }

  curl_socket_t on_open_socket(curlsocktype purpose, const curl_sockaddr& address) noexcept {
    if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
    const curl_socket_t fd = ::socket(address.family, address.socktype | SOCK_CLOEXEC, address.protocol);
    if (fd == CURL_SOCKET_BAD) return CURL_SOCKET_BAD;
    try {
      auto e = std::make_shared<socket_entry>(strand_, fd, true);
      auto [it, inserted] = sockets_.try_emplace(fd, e);
      if (!inserted) {
        // A socket closed without telling us left its number behind: let go
        // of the number without closing it (it is the new socket's now).
        socket_entry& stale = *it->second;
        stale.closed = true;
        error_code ignored;
        stale.socket.release(ignored);
        it->second = e;
      }
      error_code ec;
      e->socket.assign(address.family == AF_INET6 ? asio::ip::tcp::v6() : asio::ip::tcp::v4(), fd, ec);
      if (!ec) {
        connections_opened_.fetch_add(1);
        return fd;
      }
      sockets_.erase(fd);
    } catch (const std::exception&) {
      sockets_.erase(fd);
    }
    ::close(fd);
    return CURL_SOCKET_BAD;
  }

  static int close_socket_callback(void* self, curl_socket_t fd) {
    return static_cast<curl_multi*>(self)->on_close_socket(fd);
  }

  int on_close_socket(curl_socket_t fd) noexcept {
    const auto it = sockets_.find(fd);
    if (it == sockets_.end() || !it->second->owned) return ::close(fd) == 0 ? 0 : 1;
    const std::shared_ptr<socket_entry> e = std::move(it->second);
    sockets_.erase(it);
    forget(*e);  // pending waits complete with operation_aborted and find it closed
    return 0;
  }

  static int timer_callback(CURLM*, long timeout_ms, void* self) {
    return static_cast<curl_multi*>(self)->on_timer(timeout_ms);
  }

  // curl must not be called from inside its callback: a zero timeout posts
  // the call (cheaper than a timer round trip), a positive one arms the timer.
  int on_timer(long timeout_ms) noexcept {
    if (closing_) return 0;
    try {
      if (timeout_ms > 0) {
        timer_.expires_after(std::chrono::milliseconds(timeout_ms));
        timer_.async_wait(timer_waiter{weak_from_this()});
        return 0;
      }
      timer_.cancel();
      if (timeout_ms == 0 && !kick_posted_) {
        asio::post(strand_, [multi = weak_from_this()] {
          if (auto self = multi.lock()) {
            self->kick_posted_ = false;
            self->act(CURL_SOCKET_TIMEOUT, 0);
          }
        });
        kick_posted_ = true;
      }
      return 0;
    } catch (const std::exception&) {
      return -1;  // curl fails the transfers of this multi handle
    }
  }

  const executor_type executor_;
  const strand_type strand_;
  timer_type timer_;        // curl's
  timer_type queue_timer_;  // the queue's earliest wait limit
  const curl_options options_;
  std::atomic<std::size_t> max_active_;  // written on the strand, read by others
  bool multiplexing_ = false;            // strand only: a server has answered over HTTP/2
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::size_t> queued_{0};  // mirrors queue_.size() for other threads
  std::atomic<std::size_t> active_{0};  // requests in the multi handle
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<std::uint64_t> connections_opened_{0};

  // Strand only.
  std::unique_ptr<CURLM, multi_deleter> multi_;
  std::unordered_map<std::uint64_t, curl_request*> requests_;  // queued or active, by id
  curl_queue queue_;
  std::optional<clock_type::time_point> queue_timer_at_;  // what queue_timer_ waits for, if anything
  std::unordered_map<curl_socket_t, std::shared_ptr<socket_entry>> sockets_;
  std::vector<CURL*> idle_;  // easy handles for reuse, reset
  bool closing_ = false;
  bool kick_posted_ = false;
};

}  // namespace jobpoll::detail
