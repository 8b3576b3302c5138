#pragma once
// A program run as a child process by an integration test: its stdout and
// stderr on pipes, signals sent to it, its output collected while it runs,
// and its end (exit status or signal). Every wait has a 30 s failure guard,
// never a timing assumption; a child still running when the test leaves is
// killed and reaped.

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace jobpoll_test {

/// This process's environment with no_proxy=* (a proxy must never see
/// loopback traffic), for the programs the tests and benchmarks start.
inline std::vector<std::string> loopback_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (!entry.starts_with("no_proxy=") && !entry.starts_with("NO_PROXY=")) env.emplace_back(entry);
  }
  env.emplace_back("no_proxy=*");
  env.emplace_back("NO_PROXY=*");
  return env;
}

/// How a child process ended and what it printed.
struct child_result {
  bool exited = false;  // it called exit (WIFEXITED), rather than being ended by a signal
  int exit_code = -1;   // its exit status; 128 + N when signal N ended it, as a shell reports it
  int signal = 0;       // the signal that ended it (WTERMSIG), 0 when it exited
  std::string out;
  std::string err;
};

/// `argv[0]` (a path) run with the arguments `argv[1..]`: stdout and stderr
/// on pipes (so neither is a terminal), stdin /dev/null, default handling
/// and no mask for SIGINT, SIGTERM and SIGPIPE, and no_proxy=* (a proxy in
/// the environment must not see loopback requests). The constructor throws
/// std::runtime_error naming the program if it cannot be started; the
/// destructor kills (SIGKILL) and reaps a child that is still running.
class child_process {
 public:
  explicit child_process(std::vector<std::string> argv) {
    if (argv.empty()) throw std::invalid_argument("child_process needs a program to run, got an empty argv");
    name_ = std::filesystem::path(argv[0]).filename().string();
    int out[2];
    int err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    if (::pipe2(err, O_CLOEXEC) != 0) {
      ::close(out[0]);
      ::close(out[1]);
      throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    // The test runner may ignore or block these; the child must see the defaults.
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGPIPE);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

    std::vector<std::string> environment = loopback_environment();
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : environment) envp.push_back(e.data());
    envp.push_back(nullptr);

    const int rc = ::posix_spawn(&pid_, args[0], &actions, &attributes, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    ::close(out[1]);
    ::close(err[1]);
    fds_[0] = out[0];
    fds_[1] = err[0];
    if (rc != 0) {
      pid_ = -1;
      close_pipes();
      throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
    }
  }

  ~child_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      reap();
    }
    close_pipes();
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// Sends `signal` to the child (nothing once it has been reaped).
  void send(int signal) const {
    if (pid_ > 0) ::kill(pid_, signal);
  }

  /// Reads what the child has written, waiting at most `wait` for output, so
  /// that a chatty child never blocks on a full pipe. Throws
  /// std::runtime_error if poll fails.
  void pump(std::chrono::milliseconds wait) {
    pollfd watched[2];
    nfds_t count = 0;
    for (int fd : fds_)
      if (fd >= 0) watched[count++] = {fd, POLLIN, 0};
    if (count == 0) return;
    const int ready = ::poll(watched, count, static_cast<int>(wait.count()));
    if (ready < 0 && errno != EINTR) throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    for (nfds_t i = 0; ready > 0 && i < count; ++i) {
      if (watched[i].revents == 0) continue;
      const int which = watched[i].fd == fds_[0] ? 0 : 1;
      char buffer[4096];
      const ssize_t n = ::read(fds_[which], buffer, sizeof buffer);
      if (n > 0) {
        (which == 0 ? result_.out : result_.err).append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds_[which]);
        fds_[which] = -1;
      }
    }
  }

  /// Pumps the pipes until `done()` holds. A failure guard, never a timing
  /// assumption: after 30 s, or once the child has closed its output, it
  /// throws std::runtime_error naming the program, `what` and its stderr.
  void wait_until(const std::function<bool()>& done, const std::string& what) {
    const auto guard = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!done()) {
      if (!output_open()) throw std::runtime_error(name_ + " ended before " + what + "; stderr: " + result_.err);
      if (std::chrono::steady_clock::now() > guard)
        throw std::runtime_error("no " + what + " within 30 s; stderr so far: " + result_.err);
      pump(std::chrono::milliseconds(20));
    }
  }

  /// Reads both pipes to their end and reaps the child: at most 30 s, a
  /// failure guard (then the child is killed and reaped, and this throws
  /// std::runtime_error naming the program and its stderr).
  child_result finish() {
    const auto guard = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (output_open()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(guard - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        ::kill(pid_, SIGKILL);
        reap();
        throw std::runtime_error(name_ + " did not exit within 30 s; stderr so far: " + result_.err);
      }
      pump(left);
    }
    reap();
    return result_;
  }

  /// What the child has written to stderr so far.
  const std::string& err() const { return result_.err; }

  /// False once the child has closed both pipes (it has exited, or is exiting).
  bool output_open() const { return fds_[0] >= 0 || fds_[1] >= 0; }

 private:
  void reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    result_.exited = WIFEXITED(status);
    result_.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    result_.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + result_.signal;
  }

  void close_pipes() {
    for (int& fd : fds_) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  }

  std::string name_;
  pid_t pid_ = -1;
  int fds_[2] = {-1, -1};
  child_result result_;
};

/// Runs `argv` to its end (child_process::finish) and returns how it ended.
inline child_result run_child(std::vector<std::string> argv) { return child_process(std::move(argv)).finish(); }

}  // namespace jobpoll_test
