#pragma once
// A private CA and a server certificate for 127.0.0.1 and localhost, made
// with the `openssl` command (OpenSSL 3) in a new temporary directory, for
// TLS servers on loopback in tests and benchmarks. P-256 keys: generated at
// once, unlike RSA; `req -x509 -CA` makes and signs a certificate in one
// command. The same approach as tests/integration/curl_tls_test.cpp.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

extern char** environ;

namespace jobpoll_test {

/// Runs `openssl args...` (stdin and stdout /dev/null, stderr to `err_path`).
/// Throws std::runtime_error naming the command, with its stderr, unless it exits with status 0.
inline void run_openssl(std::vector<std::string> args, const std::string& err_path) {
  args.insert(args.begin(), "openssl");
  std::string command;
  for (const auto& a : args) command += (command.empty() ? "" : " ") + a;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start `" + command + "`: " + std::strerror(rc));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waitpid for `" + command + "` failed: " + std::strerror(errno));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  std::ifstream err(err_path, std::ios::binary);
  const std::string text{std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>()};
  const std::string how = WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                            : "was killed by signal " + std::to_string(WTERMSIG(status));
  throw std::runtime_error("`" + command + "` " + how + "; its stderr: " + text);
}

/// A private CA and two server certificates signed by it (one for the
/// loopback addresses, one for another name), in a temporary directory that
/// the destructor removes. Non-copyable.
class test_pki {
 public:
  /// Makes the directory (/tmp/jobpoll-pki-XXXXXX) and the files. Throws
  /// std::runtime_error saying what failed.
  test_pki() {
    char dir_template[] = "/tmp/jobpoll-pki-XXXXXX";
    if (::mkdtemp(dir_template) == nullptr)
      throw std::runtime_error("mkdtemp(/tmp/jobpoll-pki-XXXXXX) failed: " + std::string(std::strerror(errno)));
    dir_ = dir_template;
    try {
      make();
    } catch (...) {
      remove();
      throw;
    }
  }
  ~test_pki() { remove(); }
  test_pki(const test_pki&) = delete;
  test_pki& operator=(const test_pki&) = delete;

  const std::string& dir() const noexcept { return dir_; }
  /// The private CA (self-signed, CA:TRUE): give it to clients as their CA file.
  std::string ca_cert() const { return dir_ + "/ca.pem"; }
  /// SAN IP:127.0.0.1, DNS:localhost; signed by the CA.
  std::string server_cert() const { return dir_ + "/server.pem"; }
  /// The server certificate's unencrypted key.
  std::string server_key() const { return dir_ + "/server.key"; }
  /// SAN DNS:example.test only; signed by the CA: a valid certificate for the wrong name.
  std::string other_cert() const { return dir_ + "/other.pem"; }
  std::string other_key() const { return dir_ + "/other.key"; }

 private:
  void make() const {
    const std::string d = dir_ + "/";
    const std::string err = d + "openssl.err";
    run_openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                 d + "ca.key", "-out", ca_cert(), "-days", "2", "-subj", "/CN=jobpoll test CA", "-addext",
                 "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"},
                err);
    const auto leaf = [&](const std::string& cert, const std::string& key, const std::string& cn,
                          const std::string& san) {
      run_openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                   key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn, "-CA", ca_cert(), "-CAkey", d + "ca.key",
                   "-addext", "subjectAltName=" + san, "-addext", "basicConstraints=critical,CA:FALSE", "-addext",
                   "extendedKeyUsage=serverAuth"},
                  err);
    };
    leaf(server_cert(), server_key(), "jobpoll loopback", "IP:127.0.0.1,DNS:localhost");
    leaf(other_cert(), other_key(), "example.test", "DNS:example.test");
  }

  void remove() noexcept {
    if (dir_.empty()) return;
    jobpoll::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    dir_.clear();
  }

  std::string dir_;
};

}  // namespace jobpoll_test
