#pragma once
// A PostgreSQL cluster of a test (or benchmark) process: initdb and pg_ctl
// into a fresh temp dir, on a free loopback port and a unix socket in that
// dir, stopped and removed when the object goes, and also when the process
// dies without running destructors (a crash, SIGKILL): a watchdog process
// holds the read end of a pipe only this process writes to, and stops the
// cluster and removes the dir once that pipe closes.
//
// initdb refuses to run as root: as root the server tools run as the
// `postgres` user (runuser), in a dir chowned to it. Local (socket)
// connections are trusted; TCP ones need the password (scram-sha-256), so
// that a wrong password can be tested. `shared()` is the process's cluster
// (started on first use); `postgres_database` a fresh database for one test.

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "child_process.hpp"

namespace jobpoll_test {

/// How a cluster is started.
struct postgres_server_options {
  /// fsync of the WAL and data files: off for tests (fast; a server crash
  /// may then lose data, which no test here causes); on to measure durability's cost.
  bool fsync = false;
};

/// One PostgreSQL cluster for the lifetime of this object. Not copyable.
class postgres_server {
 public:
  static constexpr std::string_view superuser = "jobpoll";
  static constexpr std::string_view password = "jobpoll-test-password";

  /// The cluster of this process, started on first use, stopped at exit.
  static postgres_server& shared() {
    static postgres_server server;
    return server;
  }

  /// Starts a cluster. Throws std::runtime_error naming the step and its output.
  explicit postgres_server(postgres_server_options options = {}) : options_(options) {
    bin_ = find_bin();
    std::string pattern = (std::filesystem::temp_directory_path() / "jobpoll-pg-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw std::system_error(errno, std::generic_category(), "mkdtemp " + pattern);
    dir_ = pattern;
    as_postgres_ = ::geteuid() == 0;
    if (as_postgres_) {
      const passwd* user = ::getpwnam("postgres");
      if (user == nullptr) throw std::runtime_error("running as root, and there is no postgres user to run initdb as");
      if (::chown(dir_.c_str(), user->pw_uid, user->pw_gid) != 0)
        throw std::system_error(errno, std::generic_category(), "chown postgres " + dir_.string());
    }
    start_watchdog();
    try {
      init_and_start();
    } catch (...) {
      ::close(watchdog_fd_);  // the watchdog removes what was made
      int status = 0;
      ::waitpid(watchdog_, &status, 0);
      throw;
    }
  }

  postgres_server(const postgres_server&) = delete;
  postgres_server& operator=(const postgres_server&) = delete;

  /// Stops the cluster and removes its dir (the watchdog does both, now).
  ~postgres_server() {
    ::close(watchdog_fd_);
    int status = 0;
    while (::waitpid(watchdog_, &status, 0) < 0 && errno == EINTR) {
    }
  }

  int port() const noexcept { return port_; }
  const std::filesystem::path& dir() const noexcept { return dir_; }
  const std::filesystem::path& bin() const noexcept { return bin_; }

 private:
  void init_and_start() {
    {
      std::ofstream pw(dir_ / "pwfile");
      pw << password << '\n';
    }
    if (as_postgres_) {
      const passwd* user = ::getpwnam("postgres");
      if (::chown((dir_ / "pwfile").c_str(), user->pw_uid, user->pw_gid) != 0)
        throw std::system_error(errno, std::generic_category(), "chown postgres pwfile");
    }
    tool({(bin_ / "initdb").string(), "-D", data().string(), "--auth-local=trust", "--auth-host=scram-sha-256",
          "--pwfile=" + (dir_ / "pwfile").string(), "-U", std::string(superuser), "--no-sync", "-E", "UTF8",
          "--locale=C"},
         "initdb");
    // A free port may be taken between the probe and the start: a few tries.
    for (int attempt = 0;; ++attempt) {
      port_ = free_port();
      try {
        start();
        break;
      } catch (const std::runtime_error&) {
        if (attempt == 4) throw;
      }
    }
  }

 public:
  /// A libpq connection string for database `db`, through the unix socket (trusted).
  std::string conninfo(std::string_view db) const {
    return "host=" + dir_.string() + " port=" + std::to_string(port_) + " user=" + std::string(superuser) +
           " dbname=" + std::string(db);
  }
  /// A postgresql:// URI for database `db` over TCP, with the password.
  std::string uri(std::string_view db, std::string_view pass = password) const {
    return "postgresql://" + std::string(superuser) + ":" + std::string(pass) + "@127.0.0.1:" + std::to_string(port_) +
           "/" + std::string(db);
  }

  /// Starts the stopped cluster (on the same port).
  void start() {
    std::string settings = "-p " + std::to_string(port_) + " -k " + dir_.string() +
                           " -c listen_addresses=127.0.0.1 -c fsync=" + (options_.fsync ? "on" : "off") +
                           " -c max_connections=200";
    if (!options_.fsync) settings += " -c full_page_writes=off -c synchronous_commit=off";
    tool({(bin_ / "pg_ctl").string(), "-D", data().string(), "-o", settings, "-l", (dir_ / "log").string(), "-w", "-t",
          "30", "start"},
         "pg_ctl start");
  }
  /// Stops the cluster (fast: clients are disconnected, every commit is kept,
  /// even without fsync; an immediate stop would lose the last commits of
  /// synchronous_commit=off).
  void stop() { tool({(bin_ / "pg_ctl").string(), "-D", data().string(), "-m", "fast", "-w", "stop"}, "pg_ctl stop"); }

  /// Runs `statement` in database `db` as the superuser: the first column of
  /// the first row, if any. Throws std::runtime_error with the server's message.
  std::optional<std::string> sql(std::string_view db, const std::string& statement) const {
    PGconn* conn = PQconnectdb(conninfo(db).c_str());
    const auto fail = [&](const std::string& what) {
      const std::string message = what + ": " + PQerrorMessage(conn);
      PQfinish(conn);
      throw std::runtime_error(message);
    };
    if (PQstatus(conn) != CONNECTION_OK) fail("connecting to " + std::string(db));
    PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);  // "drop cascades to ..."
    PGresult* r = PQexec(conn, statement.c_str());
    const auto status = PQresultStatus(r);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      PQclear(r);
      fail(statement.substr(0, 200));
    }
    std::optional<std::string> out;
    if (PQntuples(r) > 0 && PQnfields(r) > 0 && !PQgetisnull(r, 0, 0)) out = PQgetvalue(r, 0, 0);
    PQclear(r);
    PQfinish(conn);
    return out;
  }

  /// A new, empty database; its name.
  std::string create_database() {
    const std::string name = "test_" + std::to_string(++databases_);
    sql("postgres", "CREATE DATABASE " + name);
    return name;
  }

  /// The server's log so far (for failure messages).
  std::string log() const {
    std::ifstream in(dir_ / "log");
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

 private:
  std::filesystem::path data() const { return dir_ / "data"; }

  static std::filesystem::path find_bin() {
    if (const char* bin = std::getenv("JOBPOLL_PG_BIN"); bin != nullptr && *bin != '\0') return bin;
    std::filesystem::path best;
    jobpoll::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
      const auto candidate = entry.path() / "bin";
      if (std::filesystem::exists(candidate / "initdb") &&
          (best.empty() ||
           std::stoi(entry.path().filename().string()) > std::stoi(best.parent_path().filename().string())))
        best = candidate;
    }
    if (best.empty())
      throw std::runtime_error(
          "no PostgreSQL server tools in /usr/lib/postgresql/*/bin (install postgresql, or set "
          "JOBPOLL_PG_BIN)");
    return best;
  }

  static int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
      if (fd >= 0) ::close(fd);
      throw std::system_error(errno, std::generic_category(), "finding a free port");
    }
    ::close(fd);
    return ntohs(address.sin_port);
  }

  // `argv` run as the postgres user when this process is root.
  std::vector<std::string> as_owner(std::vector<std::string> argv) const {
    if (as_postgres_) argv.insert(argv.begin(), {"/usr/sbin/runuser", "-u", "postgres", "--"});
    return argv;
  }

  void tool(std::vector<std::string> argv, const std::string& what) const {
    const child_result r = run_child(as_owner(std::move(argv)));
    if (r.exit_code != 0)
      throw std::runtime_error(what + " failed (exit " + std::to_string(r.exit_code) + "): " + r.out + r.err +
                               "\nserver log:\n" + log());
  }

  // The watchdog: `sh` waits for EOF on its stdin (the pipe whose write end
  // only this process holds, close-on-exec), then stops the cluster and
  // removes the dir.
  void start_watchdog() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    const std::string pg_ctl = (bin_ / "pg_ctl").string();
    const std::string stop = std::string(as_postgres_ ? "/usr/sbin/runuser -u postgres -- " : "") + "\"" + pg_ctl +
                             "\" -D \"$1/data\" -m immediate -w stop";
    std::vector<std::string> argv{"/bin/sh", "-c", "read -r _; " + stop + " >/dev/null 2>&1; rm -rf \"$1\"",
                                  "jobpoll-pg-watchdog", dir_.string()};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[0], STDIN_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    // Its own process group: a Ctrl-C meant for the tests must not end the cleanup.
    posix_spawnattr_setpgroup(&attributes, 0);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&watchdog_, args[0], &actions, &attributes, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    ::close(fds[0]);
    if (rc != 0) {
      ::close(fds[1]);
      throw std::system_error(rc, std::generic_category(), "starting the cluster's watchdog");
    }
    watchdog_fd_ = fds[1];
  }

  postgres_server_options options_;
  std::filesystem::path bin_;
  std::filesystem::path dir_;
  bool as_postgres_ = false;
  int port_ = 0;
  pid_t watchdog_ = -1;
  int watchdog_fd_ = -1;
  std::atomic<int> databases_{0};
};

/// A fresh database on the process's cluster, for one test.
class postgres_database {
 public:
  postgres_database() : server_(&postgres_server::shared()), name_(server_->create_database()) {}

  const std::string& name() const noexcept { return name_; }
  postgres_server& server() const noexcept { return *server_; }
  /// Its libpq connection string (unix socket).
  std::string conninfo() const { return server_->conninfo(name_); }
  /// See `postgres_server::sql`.
  std::optional<std::string> sql(const std::string& statement) const { return server_->sql(name_, statement); }

 private:
  postgres_server* server_;
  std::string name_;
};

}  // namespace jobpoll_test
