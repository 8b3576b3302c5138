#pragma once
// A client process of the job_load benchmark, run to its end with its own
// resource usage (wait4: CPU time and peak RSS of that one process, not of
// every child so far), wall time and stdout. (Servers are started with
// tests/support/loopback_server.hpp.)

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "child_process.hpp"

namespace jobpoll_bench {

namespace detail {

inline std::string joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// posix_spawn of argv with stdin from `in_fd` (or /dev/null when -1) and stdout to `out_fd`.
inline pid_t spawn(std::vector<std::string> argv, int in_fd, int out_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (in_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, in_fd, STDIN_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
  std::vector<std::string> env = jobpoll_test::loopback_environment();
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start `" + joined(argv) + "`: " + std::strerror(rc));
  return pid;
}

}  // namespace detail

/// What one client process did.
struct client_run {
  int exit_code = -1;                 // 128 + N when signal N ended it
  double cpu_s = 0;                   // user + system time of that process
  double peak_rss_mb = 0;             // its ru_maxrss
  double wall_s = 0;                  // from spawn to its end
  std::map<std::string, double> out;  // every "key=value" it printed
};

/// Runs argv[0] (a path) to its end (stdin /dev/null, stdout read here,
/// stderr inherited) and measures it.
inline client_run run_client(std::vector<std::string> argv) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2: " + std::string(std::strerror(errno)));
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = -1;
  try {
    pid = detail::spawn(argv, -1, out[1]);
  } catch (...) {
    ::close(out[0]);
    ::close(out[1]);
    throw;
  }
  ::close(out[1]);
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(out[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  rusage usage{};
  while (::wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) throw std::runtime_error("wait4: " + std::string(std::strerror(errno)));
  }
  client_run r;
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.cpu_s = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
            static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  r.peak_rss_mb = static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t end = std::min(text.find_first_of(" \n", pos), text.size());
    const std::string word = text.substr(pos, end - pos);
    if (const std::size_t eq = word.find('='); eq != std::string::npos)
      r.out[word.substr(0, eq)] = std::atof(word.c_str() + eq + 1);
    pos = end + 1;
  }
  return r;
}

}  // namespace jobpoll_bench
