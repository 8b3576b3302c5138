#pragma once
// An HTTP transport on libcurl's multi-socket API, driven by Asio: curl's
// sockets and timer run on the caller's io_context, with no thread of its own.

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <curl/curl.h>

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/async_result.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/socket_base.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include "jobpoll/detail/invalid_argument.hpp"
#include "jobpoll/http.hpp"
#include "jobpoll/transport.hpp"
#include "jobpoll/transport/detail/curl_error.hpp"
#include "jobpoll/transport/detail/curl_request.hpp"

namespace jobpoll {

/// How a `curl_transport` talks to servers. Checked by the transport's
/// constructor, which throws `std::invalid_argument` naming a bad field.
struct curl_options {
  /// How long a whole request (connect, send, receive) may take when
  /// `http_request::timeout` is empty. Positive.
  std::chrono::nanoseconds default_timeout{std::chrono::seconds(30)};
  /// How long connecting (TCP and TLS) may take, within the request's timeout. Positive.
  std::chrono::nanoseconds connect_timeout{std::chrono::seconds(10)};
  /// Verify the server's certificate and host name. Turn off only for a
  /// server whose certificate you cannot check otherwise (prefer `ca_file`).
  bool verify_tls = true;
  /// A PEM file of CA certificates to verify servers with; empty: the system's default.
  std::string ca_file;
  /// Offer HTTP/2 over TLS (used when the server agrees, HTTP/1.1 otherwise);
  /// plain-text http:// always uses HTTP/1.1. False: HTTP/1.1 everywhere.
  bool http2 = true;
  /// At most this many connections to one host at a time; more requests
  /// queue inside curl (they count against their timeout). 0: no limit.
  long max_connections_per_host = 0;
  /// At most this many connections in all; 0: no limit.
  long max_total_connections = 0;
  /// The User-Agent header of every request that does not set its own.
  std::string user_agent = "jobpoll/0.1.0";
  /// The largest response body accepted, counted after content decoding
  /// (gzip, br, ...). A larger one fails the request with
  /// `std::errc::message_size` ("Message too long"). Positive.
  std::size_t max_response_bytes = std::size_t{64} << 20;
  /// Called with curl's own account of each failed request (CURLOPT_ERRORBUFFER,
  /// e.g. "Failed to connect to 127.0.0.1 port 9 after 0 ms: Couldn't connect
  /// to server"), which the `std::error_code` a request completes with cannot
  /// carry: log it to tell one refused connection from another. `error` is
  /// the code the request completes with; not called for cancelled requests.
  /// Runs on the transport's strand before the completion is posted; must not
  /// block, and must not throw (an exception terminates the program). Empty: no call.
  std::function<void(std::string_view method, std::string_view url, std::error_code error, std::string_view detail)>
      on_error;
};

/// The error category of libcurl's `CURLcode` values, named "curl"; a
/// code's message is `curl_easy_strerror`. Codes compare equal to the
/// `std::errc` conditions that say what kind of failure they are:
/// - couldn't connect: `connection_refused`; send/receive errors, an empty
///   reply, a truncated body, an HTTP/2 stream reset: `connection_reset`
///   (the core retries these);
/// - couldn't resolve host or proxy: no condition, so not transient: a
///   mistyped host name fails at once instead of being retried until the deadline;
/// - TLS: certificate verification `permission_denied`, handshake
///   `protocol_error`, unreadable local certificate files `invalid_argument`;
/// - malformed URL, unsupported scheme: `invalid_argument`.
inline const std::error_category& curl_category() noexcept { return detail::curl_category_instance(); }

namespace detail {

/// Calls `curl_global_init` once per process. `curl_global_cleanup` is never
/// called: it is not thread-safe against other libcurl users late in a
/// process's life.
inline void curl_global_init_once() {
  static std::once_flag flag;
  static CURLcode result = CURLE_OK;
  std::call_once(flag, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (result != CURLE_OK)
    throw std::system_error(std::error_code(result, curl_category_instance()), "jobpoll: curl_global_init failed");
}

inline curl_options validated(curl_options options) {
  using std::chrono::nanoseconds;
  if (options.default_timeout <= nanoseconds::zero())
    throw_invalid("curl_options", "default_timeout must be positive", describe(options.default_timeout));
  if (options.connect_timeout <= nanoseconds::zero())
    throw_invalid("curl_options", "connect_timeout must be positive", describe(options.connect_timeout));
  if (options.max_connections_per_host < 0)
    throw_invalid("curl_options", "max_connections_per_host must be 0 (no limit) or positive",
                  std::to_string(options.max_connections_per_host));
  if (options.max_total_connections < 0)
    throw_invalid("curl_options", "max_total_connections must be 0 (no limit) or positive",
                  std::to_string(options.max_total_connections));
  if (options.max_response_bytes == 0) throw_invalid("curl_options", "max_response_bytes must be positive", "0");
  if (options.user_agent.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
    throw_invalid("curl_options", "user_agent must not contain CR, LF or NUL", quote_for_message(options.user_agent));
  return options;
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
// Threading: every call into the multi handle, and every curl callback (all
// of them happen inside those calls), runs on `strand_`; the sockets and the
// timer have the strand as their executor. Only `start`, `cancel` (through
// the cancellation slot) and `in_flight` are called from other threads, and
// they only post to the strand and touch atomics.
class curl_multi : public std::enable_shared_from_this<curl_multi> {
 public:
  using executor_type = asio::any_io_executor;
  using strand_type = asio::strand<executor_type>;

  curl_multi(const executor_type& ex, curl_options options)
      : executor_(ex), strand_(asio::make_strand(ex)), timer_(strand_), options_(std::move(options)) {
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
  }

  curl_multi(const curl_multi&) = delete;
  curl_multi& operator=(const curl_multi&) = delete;

  // Runs on the strand, or while the execution context destroys the job
  // that held the last reference: requests still here never get their
  // handlers called (the context is going away), like any pending Asio operation.
  ~curl_multi() {
    closing_ = true;
    for (auto& [id, r] : active_) {
      curl_multi_remove_handle(multi_.get(), r->easy);
      curl_easy_cleanup(r->easy);
      in_flight_.fetch_sub(1);
      r->discard();
    }
    for (CURL* easy : idle_) curl_easy_cleanup(easy);
    multi_.reset();  // closes the cached connections through close_socket
    for (auto& [fd, e] : sockets_) forget(*e);
  }

  const executor_type& executor() const noexcept { return executor_; }
  const strand_type& strand() const noexcept { return strand_; }
  std::size_t in_flight() const noexcept { return in_flight_.load(); }
  std::uint64_t connections_opened() const noexcept { return connections_opened_.load(); }

  // Any thread. The request reaches the strand through a posted job; a
  // cancellation emitted before that is seen there.
  template <class Handler>
  void start(Handler handler, http_request request) {
    auto slot = asio::get_associated_cancellation_slot(handler);
    const std::chrono::nanoseconds timeout = request.timeout.value_or(options_.default_timeout);
    curl_request* r = curl_request_op<Handler, executor_type>::create(
        std::move(handler), executor_, std::move(request), timeout, options_.max_response_bytes, next_id_++);
    begin_job job(shared_from_this(), r);
    if (slot.is_connected()) slot.template emplace<cancel_handler>(weak_from_this(), strand_, r);
    asio::post(strand_, std::move(job));
  }

  // On the strand: completes every request with operation_aborted and stops
  // the timer. Requests posted afterwards are aborted when they arrive.
  void shutdown() {
    closing_ = true;
    timer_.cancel();
    while (!active_.empty()) {
      curl_request* r = active_.begin()->second;
      detach(*r);
      complete(*r, asio::error::operation_aborted);
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

    void operator()(const asio::error_code& ec) const {
      (direction == CURL_CSELECT_IN ? entry->reading : entry->writing) = false;
      const auto self = multi.lock();
      if (!self || entry->closed) return;
      // Aborted: curl asked to stop watching (REMOVE), or a later request
      // wants it again and arm() below picks that up.
      if (ec != asio::error::operation_aborted) self->act(entry->fd, ec ? CURL_CSELECT_ERR : direction);
      self->arm(entry);
    }
  };

  struct timer_waiter {
    std::weak_ptr<curl_multi> multi;

    void operator()(const asio::error_code& ec) const {
      if (ec == asio::error::operation_aborted) return;
      if (auto self = multi.lock()) self->act(CURL_SOCKET_TIMEOUT, 0);
    }
  };

  // --- requests (strand) ---------------------------------------------------

  void begin(curl_request& r) {
    if (closing_ || r.cancel_requested) return complete(r, asio::error::operation_aborted);
    if (r.timeout <= std::chrono::nanoseconds::zero()) {
      report(r, asio::error::timed_out, "the request's timeout had run out before it was sent");
      return complete(r, asio::error::timed_out);
    }
    CURL* easy = acquire_easy();
    if (easy == nullptr) return fail(r, CURLE_OUT_OF_MEMORY);
    if (const CURLcode rc = configure(easy, r); rc != CURLE_OK) {
      release_easy(easy);
      return fail(r, rc);
    }
    try {
      active_.emplace(r.id, &r);
    } catch (const std::bad_alloc&) {
      release_easy(easy);
      return fail(r, CURLE_OUT_OF_MEMORY);
    }
    r.easy = easy;
    if (const CURLMcode mc = curl_multi_add_handle(multi_.get(), easy); mc != CURLM_OK) {
      active_.erase(r.id);
      release_easy(std::exchange(r.easy, nullptr));
      return fail(r, mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT);
    }
  }

  CURLcode configure(CURL* easy, curl_request& r) {
    CURLcode rc = CURLE_OK;
    auto set = [&](CURLoption option, auto value) {
      if (rc == CURLE_OK) rc = curl_easy_setopt(easy, option, value);
    };
    set(CURLOPT_PRIVATE, static_cast<void*>(&r));
    set(CURLOPT_URL, r.url.c_str());
    set(CURLOPT_NOSIGNAL, 1L);
    set(CURLOPT_ERRORBUFFER, r.error_buffer);
    set(CURLOPT_ACCEPT_ENCODING, "");  // every encoding curl can decode
    set(CURLOPT_FOLLOWLOCATION, 0L);   // a job client reads Location itself
#if LIBCURL_VERSION_NUM >= 0x075500
    set(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    set(CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    set(CURLOPT_TIMEOUT_MS, to_curl_ms(r.timeout));
    set(CURLOPT_CONNECTTIMEOUT_MS, to_curl_ms(options_.connect_timeout));
    set(CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
    set(CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
    if (!options_.ca_file.empty()) set(CURLOPT_CAINFO, options_.ca_file.c_str());
    set(CURLOPT_HTTP_VERSION, static_cast<long>(options_.http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1));
    set(CURLOPT_USERAGENT, options_.user_agent.c_str());
    if (r.method != "HEAD") {  // a HEAD answer's Content-Length announces no body
      set(CURLOPT_MAXFILESIZE_LARGE,
          static_cast<curl_off_t>(std::min<std::size_t>(r.max_body, std::numeric_limits<curl_off_t>::max())));
    }
    set(CURLOPT_WRITEFUNCTION, &curl_request::on_body);
    set(CURLOPT_WRITEDATA, static_cast<void*>(&r));
    set(CURLOPT_HEADERFUNCTION, &curl_request::on_header);
    set(CURLOPT_HEADERDATA, static_cast<void*>(&r));
    // The multi handle, not the request: a connection and its socket outlive
    // the request that opened it, in the multi handle's connection cache.
    set(CURLOPT_OPENSOCKETFUNCTION, &curl_multi::open_socket_callback);
    set(CURLOPT_OPENSOCKETDATA, static_cast<void*>(this));
    set(CURLOPT_CLOSESOCKETFUNCTION, &curl_multi::close_socket_callback);
    set(CURLOPT_CLOSESOCKETDATA, static_cast<void*>(this));
    set(CURLOPT_HTTPHEADER, r.header_list.get());
    if (r.method == "HEAD") {
      set(CURLOPT_NOBODY, 1L);
    } else if (r.method == "GET" && !r.sends_body) {
      set(CURLOPT_HTTPGET, 1L);
    } else {
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
    const auto it = active_.find(id);
    if (it == active_.end()) return;  // already completed, or not begun (then begin() sees the flag)
    curl_request& r = *it->second;
    detach(r);
    complete(r, asio::error::operation_aborted);
  }

  // Takes the request out of the multi handle; curl keeps its connection
  // for reuse if the exchange had finished, and closes it otherwise.
  void detach(curl_request& r) noexcept {
    curl_multi_remove_handle(multi_.get(), r.easy);
    release_easy(std::exchange(r.easy, nullptr));
    active_.erase(r.id);
  }

  void complete(curl_request& r, std::error_code ec) {
    in_flight_.fetch_sub(1);
    r.post_completion(ec, ec ? http_response{} : std::move(r.response));
  }

  void fail(curl_request& r, CURLcode rc) {
    std::error_code ec;
    if (r.callback_error) {
      ec = r.callback_error;
    } else if (rc == CURLE_FILESIZE_EXCEEDED) {
      ec = std::make_error_code(std::errc::message_size);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
      ec = asio::error::timed_out;  // the transport contract's code, whoever timed out
    } else {
      ec = std::error_code(rc, curl_category_instance());
    }
    if (ec == std::errc::message_size) {
      report(r, ec, "the response body is larger than max_response_bytes (" + std::to_string(r.max_body) + ")");
    } else {
      report(r, ec, r.error_buffer[0] != '\0' ? std::string(r.error_buffer) : ec.message());
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
  }

  CURL* acquire_easy() noexcept {
    if (idle_.empty()) return curl_easy_init();
    CURL* easy = idle_.back();
    idle_.pop_back();
    return easy;
  }

  void release_easy(CURL* easy) noexcept {
    if (idle_.size() < pool_size) {
      curl_easy_reset(easy);
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
    asio::error_code ignored;
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
        asio::error_code ignored;
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
        asio::error_code ec;
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
        asio::error_code ignored;
        stale.socket.release(ignored);
        it->second = e;
      }
      asio::error_code ec;
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
  timer_type timer_;
  const curl_options options_;
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<std::uint64_t> connections_opened_{0};

  // Strand only.
  std::unique_ptr<CURLM, multi_deleter> multi_;
  std::unordered_map<std::uint64_t, curl_request*> active_;  // in the multi handle, by id
  std::unordered_map<curl_socket_t, std::shared_ptr<socket_entry>> sockets_;
  std::vector<CURL*> idle_;  // easy handles for reuse, reset
  bool closing_ = false;
  bool kick_posted_ = false;
};

}  // namespace detail

/// An HTTP(S) client for `jobpoll::transport`: libcurl's multi-socket API
/// with its sockets and timer on the io_context of the executor it is given,
/// no thread of its own. One multi handle per transport: requests to the
/// same host reuse connections (HTTP/1.1 keep-alive, HTTP/2 multiplexing),
/// easy handles come from a small pool. Redirects are not followed (a 3xx is
/// a response); every encoding curl can decode is accepted.
///
/// Thread safety: `async_request`, `in_flight` and `get_executor` may be
/// called from any thread; all work on the multi handle runs on one strand
/// of the executor. The transport must be destroyed before its execution context.
class curl_transport {
 public:
  using executor_type = asio::any_io_executor;

  /// A transport whose I/O runs on `ex`. Throws `std::invalid_argument` for
  /// bad options, `std::system_error` (curl category) if libcurl cannot be initialised.
  curl_transport(executor_type ex, curl_options options)
      : core_(std::make_shared<detail::curl_multi>(ex, detail::validated(std::move(options)))) {}
  /// With default options. Not a default argument: g++ 12 frees an aggregate
  /// default argument twice when the call sits in an expression with a
  /// co_await (`curl_transport t(co_await this_coro::executor);`).
  explicit curl_transport(executor_type ex) : curl_transport(std::move(ex), curl_options{}) {}

  curl_transport(const curl_transport&) = delete;
  curl_transport& operator=(const curl_transport&) = delete;

  /// A moved-from transport may only be destroyed or assigned to.
  curl_transport(curl_transport&& other) noexcept = default;
  curl_transport& operator=(curl_transport&& other) noexcept {
    if (this != &other) {
      curl_transport old(std::move(*this));
      core_ = std::move(other.core_);
    }
    return *this;
  }

  /// Every request in flight completes with `asio::error::operation_aborted`
  /// (posted to its handler's executor, once the strand gets to it), and its
  /// connection is closed; cached connections are closed. Socket and timer
  /// handlers still queued find the transport gone and do nothing.
  ~curl_transport() {
    if (!core_) return;
    const detail::curl_multi::strand_type strand = core_->strand();
    asio::post(strand, [core = std::move(core_)] { core->shutdown(); });
  }

  /// Sends `request` and completes with `void(std::error_code, http_response)`:
  /// - any status the server answers with, 4xx and 5xx included, is a
  ///   response with its headers (those of the final response, after any
  ///   1xx) and body; a 3xx is not followed;
  /// - the exchange must end within `request.timeout` (the options'
  ///   `default_timeout` when empty), else `asio::error::timed_out`; a zero or
  ///   negative timeout completes so without sending anything;
  /// - a body larger than `max_response_bytes`: `std::errc::message_size`;
  /// - other failures: a `curl_category()` code (see there for the `std::errc`
  ///   each is equivalent to);
  /// - cancellation through the token's cancellation slot (terminal, partial
  ///   or total) removes the request from curl at once and completes with
  ///   `asio::error::operation_aborted` (a response that completed first wins).
  /// The completion is always posted to the handler's associated executor
  /// (the transport's by default), never run inside this call. Headers are
  /// sent as given; curl adds Host, Accept, User-Agent, Content-Length and
  /// Accept-Encoding unless given, and never "Expect: 100-continue" or a
  /// guessed Content-Type. Throws `std::invalid_argument` for a method or
  /// header name that is not an HTTP token, a header value with CR, LF or
  /// NUL, or a HEAD request with a body (a bad URL is curl's
  /// `CURLE_URL_MALFORMAT`). Works with every completion token.
  template <class CompletionToken>
  auto async_request(http_request request, CompletionToken&& token) {
    detail::validate_request(request);
    return asio::async_initiate<CompletionToken, void(std::error_code, http_response)>(
        [core = core_.get()](auto handler, http_request r) { core->start(std::move(handler), std::move(r)); }, token,
        std::move(request));
  }

  /// Requests started and not completed yet (their completion not yet posted).
  std::size_t in_flight() const noexcept { return core_->in_flight(); }

  /// Sockets opened for connections so far (each attempt counts, e.g. both
  /// address families when a host has two). Requests that reuse a cached
  /// connection open none.
  std::uint64_t connections_opened() const noexcept { return core_->connections_opened(); }

  /// The executor given to the constructor: the I/O runs on a strand of it,
  /// and completions run on it unless their handler has its own.
  executor_type get_executor() const noexcept { return core_->executor(); }

 private:
  std::shared_ptr<detail::curl_multi> core_;
};

static_assert(transport<curl_transport>);

}  // namespace jobpoll
