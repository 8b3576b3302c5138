#pragma once
// The loopback job server (tests/server/job_server.py) for one test: the
// constructor starts it on a free port, the destructor stops it, and blocking
// libcurl helpers drive its /_control endpoints. The server's docstring is the
// reference for its endpoints and scripted replies.

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <jobpoll/http.hpp>

#if !defined(JOBPOLL_TEST_PYTHON) || !defined(JOBPOLL_TEST_SERVER)
#error "loopback_server.hpp needs JOBPOLL_TEST_PYTHON and JOBPOLL_TEST_SERVER (set for tests/integration)"
#endif

extern char** environ;

namespace jobpoll::test {

/// A blocking request that got no HTTP response (refused, reset, closed,
/// timed out): the libcurl code says which.
class curl_failure : public std::runtime_error {
 public:
  curl_failure(CURLcode code, const std::string& what) : std::runtime_error(what), code_(code) {}
  CURLcode code() const noexcept { return code_; }

 private:
  CURLcode code_;
};

namespace detail {

inline void init_curl_once() {
  // curl_global_init is not thread-safe in every libcurl build: run it once, first.
  [[maybe_unused]] static const CURLcode done = curl_global_init(CURL_GLOBAL_DEFAULT);
}

inline std::size_t append_body(char* data, std::size_t size, std::size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

inline std::size_t append_header(char* data, std::size_t size, std::size_t count, void* out) {
  auto& headers = *static_cast<http_headers*>(out);
  std::string_view line(data, size * count);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.starts_with("HTTP/")) {
    headers = {};  // a new status line (after a 100 Continue) starts a new header block
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    auto value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    headers.add(std::string(line.substr(0, colon)), std::string(value));
  }
  return size * count;
}

}  // namespace detail

/// One job_server.py process (or another server script of tests/server with
/// the same start-up contract) on 127.0.0.1 and a free port, for the
/// lifetime of this object. Non-copyable, non-movable (the process belongs
/// to one owner).
class loopback_server {
 public:
  /// Starts `JOBPOLL_TEST_PYTHON JOBPOLL_TEST_SERVER --port 0 <extra_args>` and
  /// waits for its "PORT <n>" line. Throws std::runtime_error naming the
  /// command and what it printed if it cannot start, exits early, prints
  /// something else, or prints nothing within 30 s.
  explicit loopback_server(std::vector<std::string> extra_args = {})
      : loopback_server(JOBPOLL_TEST_SERVER, std::move(extra_args)) {}

  /// The same with the server script `script` (e.g. tests/server/h2_server.py).
  loopback_server(const std::string& script, std::vector<std::string> extra_args)
      : loopback_server(with_python(script, std::move(extra_args))) {}

  /// Any server program with the same contract (prints "PORT <n>" once
  /// bound, exits on SIGTERM and on stdin EOF), started as `argv` (the
  /// benchmarks' C++ job server, for one).
  struct command_line {
    std::vector<std::string> argv;
  };
  explicit loopback_server(command_line command) {
    detail::init_curl_once();  // before any test thread makes a curl handle of its own
    std::vector<std::string>& args = command.argv;
    for (const auto& a : args) command_ += (command_.empty() ? "" : " ") + a;
    spawn(args);
    try {
      port_ = read_port();
    } catch (...) {
      stop();
      throw;
    }
  }

  /// Stops the server: SIGTERM, stdin closed, waitpid (no zombie, no orphan).
  ~loopback_server() { stop(); }

  loopback_server(const loopback_server&) = delete;
  loopback_server& operator=(const loopback_server&) = delete;

  int port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }
  /// "http://127.0.0.1:<port>".
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  /// base_url() + path; `path` starts with '/' and may carry a query.
  std::string url(std::string_view path) const { return base_url() + std::string(path); }

  /// Sends one request on a fresh connection and waits for the whole response
  /// (at most 30 s, a failure guard). Any HTTP status is a response. A body
  /// without a Content-Type header is sent as application/json; a POST always
  /// carries a Content-Length. Throws curl_failure when no response arrives.
  http_response request(std::string_view method, std::string_view path, std::string_view body = {},
                        const http_headers& headers = {}) const {
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
    if (!curl) throw std::runtime_error("curl_easy_init failed");
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> lines(nullptr, &curl_slist_free_all);
    auto add_line = [&](const std::string& line) {
      curl_slist* grown = curl_slist_append(lines.get(), line.c_str());
      if (!grown) throw std::runtime_error("curl_slist_append failed");
      static_cast<void>(lines.release());  // `grown` is the same list, one line longer
      lines.reset(grown);
    };
    for (const auto& h : headers) add_line(h.name + ": " + h.value);
    if (!body.empty() && !headers.contains("Content-Type")) add_line("Content-Type: application/json");

    const std::string target = url(path);
    const std::string verb(method);
    http_response response;
    char error_text[CURL_ERROR_SIZE] = {};
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, target.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, verb.c_str());
    if (!body.empty() || verb == "POST") {
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      // Never a null pointer: libcurl would then read the body from stdin.
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.empty() ? "" : body.data());
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, lines.get());
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");  // an http_proxy in the environment must not see loopback
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_text);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &detail::append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &response.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &detail::append_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &response.headers);
    if (CURLcode rc = curl_easy_perform(c); rc != CURLE_OK) {
      throw curl_failure(rc, verb + " " + target + " failed: " + curl_easy_strerror(rc) +
                                 (error_text[0] ? std::string(" (") + error_text + ")" : std::string()));
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    response.status = static_cast<int>(status);
    return response;
  }

  /// A control request (`body` null: none); the decoded JSON answer. Throws
  /// std::runtime_error with the status and body on a non-2xx answer.
  nlohmann::json control(std::string_view method, std::string_view path,
                         const nlohmann::json& body = nullptr) const {
    http_response r = request(method, path, body.is_null() ? std::string() : body.dump());
    if (!r.ok()) throw std::runtime_error(std::string(method) + " " + std::string(path) + " answered " + describe(r));
    return nlohmann::json::parse(r.body);
  }

  /// Queues scripted `responses` (a JSON array) for the next `method` `path`
  /// requests (`path` may end in '*': prefix match).
  void script(std::string_view method, std::string_view path, nlohmann::json responses) const {
    control("POST", "/_control/script", {{"method", method}, {"path", path}, {"responses", std::move(responses)}});
  }

  /// Changes the server config (working_polls, outcome, total, page_limit,
  /// quota); returns the resulting config.
  nlohmann::json configure(const nlohmann::json& changes) const { return control("POST", "/_control/config", changes); }

  /// Every non-control request so far, in arrival order.
  nlohmann::json log() const { return control("GET", "/_control/log"); }

  /// {"jobs": [...], "load_jobs": n, "v1_jobs": n}.
  nlohmann::json jobs() const { return control("GET", "/_control/jobs"); }

  /// Back to a fresh server: no jobs, scripts or log, startup config.
  void reset() const { control("POST", "/_control/reset"); }

 private:
  static command_line with_python(const std::string& script, std::vector<std::string> extra_args) {
    command_line c{{JOBPOLL_TEST_PYTHON, script, "--port", "0"}};
    c.argv.insert(c.argv.end(), extra_args.begin(), extra_args.end());
    return c;
  }

  void spawn(std::vector<std::string>& args) {
    int in[2];
    int out[2];
    // Close-on-exec: only the dup2'ed ends reach the server, so a second
    // server cannot keep this one's stdin open.
    if (pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed: " + std::string(std::strerror(errno)));
    if (pipe2(out, O_CLOEXEC) != 0) {
      int e = errno;
      ::close(in[0]);
      ::close(in[1]);
      throw std::runtime_error("pipe2 failed: " + std::string(std::strerror(e)));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = posix_spawnp(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    stdout_ = out[0];
    if (rc != 0) {
      pid_ = -1;
      stop();
      throw std::runtime_error("cannot start `" + command_ + "`: " + std::strerror(rc));
    }
  }

  int read_port() {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::seconds(30);
    std::string seen;
    auto fail = [&](const std::string& why) {
      return std::runtime_error("`" + command_ + "` " + why + "; its stdout so far: \"" + body_preview(seen) + "\"");
    };
    while (seen.find('\n') == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
      if (left <= 0) throw fail("printed no \"PORT <n>\" line within 30 s");
      pollfd p{stdout_, POLLIN, 0};
      int ready = ::poll(&p, 1, static_cast<int>(left));
      if (ready < 0 && errno != EINTR) throw fail("could not be watched: " + std::string(std::strerror(errno)));
      if (ready <= 0) continue;
      char buffer[256];
      ssize_t n = ::read(stdout_, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw fail("could not be read: " + std::string(std::strerror(errno)));
      if (n == 0) throw fail("exited before printing \"PORT <n>\"" + exit_description());
      seen.append(buffer, static_cast<std::size_t>(n));
    }
    std::string line = seen.substr(0, seen.find('\n'));
    if (!line.starts_with("PORT ")) throw fail("printed something other than \"PORT <n>\"");
    try {
      std::size_t used = 0;
      int port = std::stoi(line.substr(5), &used);
      if (used == line.size() - 5 && port > 0 && port < 65536) return port;
    } catch (const std::logic_error&) {
      // falls through to the error below
    }
    throw fail("printed a malformed PORT line");
  }

  // ", exit status N" or ", killed by signal N" once the process has ended (reaps it).
  std::string exit_description() {
    int status = 0;
    pid_t r;
    do r = ::waitpid(pid_, &status, 0);
    while (r < 0 && errno == EINTR);
    if (r != pid_) return "";
    pid_ = -1;
    if (WIFEXITED(status)) return ", exit status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return ", killed by signal " + std::to_string(WTERMSIG(status));
    return "";
  }

  void stop() noexcept {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
    }
    if (stdin_ >= 0) ::close(stdin_);  // EOF: the server exits even if the signal were lost
    stdin_ = -1;
    if (pid_ > 0) {
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
    if (stdout_ >= 0) ::close(stdout_);
    stdout_ = -1;
  }

  std::string command_;
  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  int port_ = 0;
};

}  // namespace jobpoll::test
