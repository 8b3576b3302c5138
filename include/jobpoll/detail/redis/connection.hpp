#pragma once
// One hiredis asynchronous connection, driven by the caller's io_context:
// no thread of its own. hiredis's event hooks (addRead, delRead, addWrite,
// delWrite, cleanup) become waits on an asio::posix::stream_descriptor over
// hiredis's socket; when one completes, hiredis reads or writes the socket
// itself (redisAsyncHandleRead/Write) and its reader parses RESP. The
// descriptor is released, never closed, before hiredis closes the socket.
//
// A read wait is pending only while replies are awaited, so an idle
// connection leaves its io_context free to return (like an idle curl
// transport); a connection the server closed meanwhile is noticed before
// the next command is written. All members run on one strand.

#include <poll.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "jobpoll/detail/asio_forward.hpp"
#if defined(JOBPOLL_USE_BOOST_ASIO)
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#else
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/posix/stream_descriptor.hpp>
#endif

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "jobpoll/detail/redis/reply.hpp"
#include "jobpoll/poll_result.hpp"
#include "jobpoll/redis_limiter_options.hpp"

namespace jobpoll::detail::redis {

/// Redis cannot be asked: the connection was refused, lost or timed out.
/// The limiter treats it as Redis down.
class unreachable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Redis answered with an error that retrying cannot fix (authentication,
/// a budget mismatch, a key of another type).
class refused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// hiredis's reply copied out (it frees its own when the callback returns).
// Bounded: the limiter's own replies are small and flat.
inline reply copy_reply(const redisReply* r, std::size_t depth = 0) {
  switch (r->type) {
    case REDIS_REPLY_STRING: return reply::of_string(std::string(r->str, r->len));
    case REDIS_REPLY_STATUS: return reply::of_status(std::string(r->str, r->len));
    case REDIS_REPLY_ERROR: return reply::of_error(std::string(r->str, r->len));
    case REDIS_REPLY_INTEGER: return reply::of_integer(r->integer);
    case REDIS_REPLY_ARRAY: {
      constexpr std::size_t max_depth = 4;
      constexpr std::size_t max_elements = 256;
      if (depth >= max_depth || r->elements > max_elements)
        return reply::of_error("jobpoll: reply too large (" + std::to_string(r->elements) + " elements at depth " +
                               std::to_string(depth) + ")");
      std::vector<reply> elements;
      elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) elements.push_back(copy_reply(r->element[i], depth + 1));
      return reply::of_array(std::move(elements));
    }
    default: return reply::nil();
  }
}

class connection : public std::enable_shared_from_this<connection> {
 public:
  using strand_type = asio::strand<asio::any_io_executor>;

  connection(const strand_type& strand, const redis_limiter_options& options)
      : strand_(strand),
        descriptor_(strand),
        event_(strand),
        options_(options) {}

  // Frees the hiredis context: pending commands end with "closed".
  ~connection() { close("connection destroyed"); }

  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  bool connected() const noexcept { return context_ != nullptr && connected_; }

  // Why the last connection ended or failed.
  const std::string& last_error() const noexcept { return last_error_; }

  // Connects (ending any connection first): a host name is resolved with
  // Asio's resolver, each of its addresses tried in turn, the whole within
  // the connect timeout; then AUTH when there is a password. Throws
  // `unreachable`, or `refused` when Redis refuses the credentials.
  asio::awaitable<void> connect() {
    close("reconnecting");
    const auto deadline = std::chrono::steady_clock::now() + options_.connect_timeout;
    if (!options_.unix_path.empty()) {
      co_await connect_to(redisAsyncConnectUnix(options_.unix_path.c_str()), deadline, options_.unix_path);
    } else {
      std::vector<std::string> addresses;
      error_code ec;
      const auto numeric = asio::ip::make_address(options_.host, ec);
      if (!ec) {
        addresses.push_back(numeric.to_string());
      } else {
        asio::ip::tcp::resolver resolver(strand_);
        asio::steady_timer guard(strand_);
        guard.expires_at(deadline);
        guard.async_wait([&resolver](std::error_code timer_ec) {
          if (!timer_ec) resolver.cancel();
        });
        auto results = co_await resolver.async_resolve(options_.host, std::to_string(options_.port),
                                                       asio::redirect_error(asio::use_awaitable, ec));
        guard.cancel();
        if (ec) throw unreachable("cannot resolve " + options_.host + ": " + ec.message());
        for (const auto& entry : results) addresses.push_back(entry.endpoint().address().to_string());
      }
      std::string failures;
      for (std::size_t i = 0; i < addresses.size(); ++i) {
        const std::string name = addresses[i] + ":" + std::to_string(options_.port);
        try {
          co_await connect_to(redisAsyncConnect(addresses[i].c_str(), options_.port), deadline, name);
          break;
        } catch (const unreachable& e) {
          failures += (failures.empty() ? "" : "; ") + std::string(e.what());
          if (i + 1 == addresses.size()) throw unreachable(failures);
        }
      }
    }
    if (!options_.password.empty()) {
      std::vector<std::string> auth{"AUTH"};
      if (!options_.user.empty()) auth.push_back(options_.user);
      auth.push_back(options_.password);
      const reply r = co_await command(std::move(auth));
      if (r.is_error()) {
        close("AUTH refused");
        throw refused("Redis refused AUTH: " + r.text);
      }
    }
  }

  // Sends one command and waits for its reply (an error reply is a reply).
  // Throws `unreachable` when not connected, when the connection is lost,
  // or when no reply comes within the request timeout (the connection is
  // then closed: Redis is slow or stopped).
  asio::awaitable<reply> command(std::vector<std::string> args) {
    if (!connected()) throw unreachable("not connected to Redis" + (last_error_.empty() ? "" : ": " + last_error_));
    if (awaiting_ == 0 && peer_closed()) {
      close("Redis closed the connection");
      throw unreachable(last_error_);
    }
    auto pending = std::make_shared<pending_command>(strand_);
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    auto holder = std::make_unique<std::shared_ptr<pending_command>>(pending);
    if (redisAsyncCommandArgv(context_, &on_reply, holder.get(), static_cast<int>(argv.size()), argv.data(),
                              lengths.data()) != REDIS_OK) {
      const std::string why = context_->errstr[0] ? context_->errstr : "hiredis refused the command";
      close(why);
      throw unreachable(why);
    }
    static_cast<void>(holder.release());  // on_reply owns it now: hiredis calls it exactly once
    ++awaiting_;
    arm_read();
    pending->event.expires_after(options_.request_timeout);
    error_code ec;
    co_await pending->event.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!pending->done) close("no answer from Redis within " + format_seconds(options_.request_timeout));
    if (pending->failed) throw unreachable(pending->error);
    co_return std::move(pending->result);
  }

  // Ends the connection now: hiredis frees its context, completing every
  // pending command as failed with `why`. Never called from inside a hiredis callback.
  void close(const std::string& why) noexcept {
    if (context_ == nullptr) return;
    close_reason_ = why;
    last_error_ = why;
    redisAsyncFree(context_);  // runs the callbacks, then cleanup (detach), then closes the socket
    context_ = nullptr;
    connected_ = false;
  }

 private:
  struct pending_command {
    explicit pending_command(const strand_type& strand) : event(strand) {}
    asio::steady_timer event;  // cancelled when the reply (or the failure) is in
    bool done = false;
    bool failed = false;
    reply result;
    std::string error;
  };

  enum class connect_state : unsigned char { waiting, succeeded, failed };

  asio::awaitable<void> connect_to(redisAsyncContext* context, std::chrono::steady_clock::time_point deadline,
                                   const std::string& name) {
    if (context == nullptr) throw unreachable("cannot connect to " + name + ": out of memory");
    if (context->err) {
      const std::string why = context->errstr;
      redisAsyncFree(context);
      throw unreachable("cannot connect to " + name + ": " + why);
    }
    if (const std::error_code ec = attach(context)) {
      close("cannot watch the socket: " + ec.message());
      throw unreachable("cannot connect to " + name + ": " + last_error_);
    }
    state_ = connect_state::waiting;
    redisAsyncSetDisconnectCallback(context, &on_disconnect);
    redisAsyncSetConnectCallback(context, &on_connect);  // asks for a write wait: the connect's completion
    event_.expires_at(deadline);
    error_code ec;
    co_await event_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (state_ == connect_state::succeeded && context_ != nullptr) {
      connected_ = true;
      co_return;
    }
    const std::string why = state_ == connect_state::failed
                                ? connect_error_
                                : "no connection within " + format_seconds(options_.connect_timeout);
    close(why);
    last_error_ = "cannot connect to " + name + ": " + why;
    throw unreachable(last_error_);
  }

  std::error_code attach(redisAsyncContext* context) {
    context_ = context;
    context->data = this;
    context->ev.data = this;
    context->ev.addRead = [](void* self) { static_cast<connection*>(self)->want_read(true); };
    context->ev.delRead = [](void* self) { static_cast<connection*>(self)->want_read(false); };
    context->ev.addWrite = [](void* self) { static_cast<connection*>(self)->want_write(true); };
    context->ev.delWrite = [](void* self) { static_cast<connection*>(self)->want_write(false); };
    context->ev.cleanup = [](void* self) { static_cast<connection*>(self)->detach(); };
    ++generation_;
    reading_ = writing_ = read_wanted_ = write_wanted_ = false;
    awaiting_ = 0;
    error_code ec;
    descriptor_.assign(context->c.fd, ec);
    return ec;
  }

  // hiredis is about to free the context and close the socket.
  void detach() noexcept {
    ++generation_;
    read_wanted_ = write_wanted_ = reading_ = writing_ = false;
    if (descriptor_.is_open()) static_cast<void>(descriptor_.release());  // cancels the waits, closes nothing
  }

  void want_read(bool on) {
    read_wanted_ = on;
    arm_read();
  }
  void want_write(bool on) {
    write_wanted_ = on;
    arm_write();
  }

  // Not while hiredis handles an event: it asks for reads again before it
  // runs the reply callbacks, so whether a reply is still awaited is known
  // only afterwards (on_ready arms then).
  void arm_read() {
    if (context_ == nullptr || handling_ || !read_wanted_ || reading_ || awaiting_ == 0) return;
    reading_ = true;
    descriptor_.async_wait(asio::posix::stream_descriptor::wait_read,
                           [weak = weak_from_this(), generation = generation_](std::error_code ec) {
                             if (auto self = weak.lock()) self->on_ready(true, generation, ec);
                           });
  }
  void arm_write() {
    if (context_ == nullptr || handling_ || !write_wanted_ || writing_) return;
    writing_ = true;
    descriptor_.async_wait(asio::posix::stream_descriptor::wait_write,
                           [weak = weak_from_this(), generation = generation_](std::error_code ec) {
                             if (auto self = weak.lock()) self->on_ready(false, generation, ec);
                           });
  }

  void on_ready(bool read, std::uint64_t generation, std::error_code ec) {
    if (generation != generation_) return;  // a wait of an earlier socket
    (read ? reading_ : writing_) = false;
    if (ec || context_ == nullptr) return;
    handling_ = true;
    if (read && read_wanted_) {
      redisAsyncHandleRead(context_);  // may free the context (EOF, error): then detach() ran
    } else if (!read && write_wanted_) {
      redisAsyncHandleWrite(context_);
    }
    handling_ = false;
    if (generation != generation_) {
      context_ = nullptr;
      connected_ = false;
      return;
    }
    arm_read();
    arm_write();
  }

  // With no reply awaited, anything readable (EOF included) means the
  // server closed the connection (a restart, a timeout): writing to it could
  // raise SIGPIPE, so it is closed before a command is written.
  bool peer_closed() const noexcept {
    pollfd p{context_->c.fd, POLLIN | POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && p.revents != 0;
  }

  static void on_connect(const redisAsyncContext* context, int status) {
    auto* self = static_cast<connection*>(context->data);
    if (status == REDIS_OK) {
      self->state_ = connect_state::succeeded;
    } else {
      self->state_ = connect_state::failed;
      self->connect_error_ = context->errstr[0] ? context->errstr : "connection failed";
      // hiredis frees the context when this returns (detach() runs then).
      self->context_ = nullptr;
    }
    self->event_.cancel();
  }

  static void on_disconnect(const redisAsyncContext* context, int status) {
    auto* self = static_cast<connection*>(context->data);
    if (status != REDIS_OK && context->errstr[0]) self->last_error_ = context->errstr;
    self->context_ = nullptr;
    self->connected_ = false;
  }

  static void on_reply(redisAsyncContext* context, void* r, void* privdata) {
    std::unique_ptr<std::shared_ptr<pending_command>> holder(static_cast<std::shared_ptr<pending_command>*>(privdata));
    pending_command& p = **holder;
    auto* self = static_cast<connection*>(context->data);
    if (self != nullptr && self->awaiting_ > 0) --self->awaiting_;
    p.done = true;
    if (r != nullptr) {
      try {
        p.result = copy_reply(static_cast<const redisReply*>(r));
      } catch (const std::exception&) {
        p.failed = true;
        p.error = "out of memory copying a reply";
      }
    } else {
      p.failed = true;
      p.error = context->err && context->errstr[0] ? std::string(context->errstr)
                : self != nullptr && !self->close_reason_.empty() ? self->close_reason_
                                                                 : std::string("connection closed");
    }
    p.event.cancel();
  }

  strand_type strand_;
  asio::posix::stream_descriptor descriptor_;  // hiredis's socket, only waited on
  asio::steady_timer event_;                    // the connect's completion and timeout
  redis_limiter_options options_;
  redisAsyncContext* context_ = nullptr;
  bool connected_ = false;
  connect_state state_ = connect_state::waiting;
  std::string connect_error_;
  std::string close_reason_;
  std::string last_error_;
  std::uint64_t generation_ = 0;  // one per socket: stale waits are recognised
  std::size_t awaiting_ = 0;      // replies awaited
  bool read_wanted_ = false;      // hiredis's addRead/delRead
  bool write_wanted_ = false;     // hiredis's addWrite/delWrite
  bool reading_ = false;          // an async_wait(wait_read) is pending
  bool writing_ = false;          // an async_wait(wait_write) is pending
  bool handling_ = false;         // inside redisAsyncHandleRead/Write
};

}  // namespace jobpoll::detail::redis
