#pragma once
// A real redis-server for one test: started in a temp dir on a unix socket
// (and, when asked, a free loopback port), without persistence, and stopped
// when the test ends. Tests kill it (SIGKILL), stop it (SIGSTOP: a Redis
// that answers nothing) and start it again at the same address, and read
// its keys through hiredis's blocking API. Every wait has a guard, never a
// timing assumption.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <hiredis/hiredis.h>

#include <jobpoll/detail/redis/connection.hpp>
#include <jobpoll/detail/redis/reply.hpp>
#include <jobpoll/redis_limiter_options.hpp>

#include "child_process.hpp"
#include "temp_dir.hpp"

namespace jobpoll_test {

/// A free TCP port on 127.0.0.1 (bound and released: another program could
/// take it meanwhile, which a test would see as a failure to start).
inline int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

/// One redis-server process at a fixed address for the lifetime of this
/// object (across kill() and start()).
class redis_server {
 public:
  /// `tcp`: also listen on 127.0.0.1 and a free port (else the unix socket only).
  explicit redis_server(bool tcp = false) : port_(tcp ? free_loopback_port() : 0) { start(); }

  ~redis_server() {
    if (process_) {
      process_->send(SIGCONT);
      process_->send(SIGTERM);
      try {
        process_->finish();
      } catch (const std::exception&) {
        // finish() killed and reaped it
      }
    }
  }

  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  /// The unix socket's path.
  std::string socket_path() const { return (dir_ / "redis.sock").string(); }
  /// The TCP port (0: none).
  int port() const noexcept { return port_; }
  /// Its log file (with every restart appended), for failure messages.
  std::string log() const {
    try {
      return read_bytes(dir_ / "redis.log");
    } catch (const std::exception&) {
      return "(no log)";
    }
  }

  /// Limiter options for `key` on this server's unix socket, `budget`, and
  /// short timeouts (a test sees an outage within a fraction of a second).
  jobpoll::redis_limiter_options options(const std::string& key, jobpoll::redis_budget budget) const {
    jobpoll::redis_limiter_options o;
    o.unix_path = socket_path();
    o.key = key;
    o.budget = budget;
    o.connect_timeout = std::chrono::milliseconds(300);
    o.request_timeout = std::chrono::milliseconds(300);
    o.reconnect_backoff = jobpoll::fixed_interval{std::chrono::milliseconds(50)};
    return o;
  }

  /// Starts redis-server (again, after kill()) and waits until it answers
  /// PING: at most 10 s, a failure guard.
  void start() {
    std::vector<std::string> argv{"/usr/bin/redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                  "--unixsocket", socket_path(), "--unixsocketperm", "700", "--save", "",
                                  "--appendonly", "no", "--daemonize", "no", "--dir", dir_.path().string(),
                                  "--logfile", (dir_ / "redis.log").string()};
    process_.emplace(std::move(argv));
    const auto guard = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      try {
        if (command({"PING"}).text == "PONG") return;
      } catch (const std::exception&) {
        // not up yet
      }
      if (!process_->output_open() || std::chrono::steady_clock::now() > guard)
        throw std::runtime_error("redis-server did not answer PING within 10 s; its log:\n" + log());
      process_->pump(std::chrono::milliseconds(10));
    }
  }

  /// SIGKILL and reap: the data is gone (no persistence), the address stays.
  void kill() {
    if (!process_) return;
    process_->send(SIGCONT);
    process_->send(SIGKILL);
    static_cast<void>(process_->finish());
    process_.reset();
  }

  /// SIGSTOP: connections stay open, nothing is answered.
  void freeze() const { process_->send(SIGSTOP); }
  /// SIGCONT: answers again.
  void thaw() const { process_->send(SIGCONT); }

  /// One command on a fresh blocking connection; its reply. Throws
  /// std::runtime_error when the server cannot be reached.
  jobpoll::detail::redis::reply command(const std::vector<std::string>& args) const {
    timeval timeout{2, 0};
    std::unique_ptr<redisContext, decltype(&redisFree)> c(redisConnectUnixWithTimeout(socket_path().c_str(), timeout),
                                                          &redisFree);
    if (!c || c->err) throw std::runtime_error("cannot connect to redis: " + std::string(c ? c->errstr : "no memory"));
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(), lengths.data()));
    if (r == nullptr) throw std::runtime_error("redis command failed: " + std::string(c->errstr));
    jobpoll::detail::redis::reply copy = jobpoll::detail::redis::copy_reply(r);
    freeReplyObject(r);
    return copy;
  }

  /// Redis's clock (TIME) in microseconds.
  std::int64_t time_us() const {
    const auto r = command({"TIME"});
    return std::stoll(r.elements.at(0).text) * 1'000'000 + std::stoll(r.elements.at(1).text);
  }

 private:
  temp_dir dir_{"jobpoll-redis-"};
  int port_;
  std::optional<child_process> process_;
};

}  // namespace jobpoll_test
