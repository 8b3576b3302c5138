#pragma once
// A private CA and a loopback server speaking TLS with a certificate of it,
// set up once per test suite (SetUpTestSuite) and torn down after it.

#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "loopback_server.hpp"
#include "test_pki.hpp"

namespace jobpoll_test {

/// Held as a static member of a fixture: `start` in SetUpTestSuite, `stop`
/// in TearDownTestSuite, and in SetUp `ASSERT_EQ(tls.error(), "")`. A
/// failure to start is kept, not thrown: thrown from SetUpTestSuite it
/// would make gtest skip every test, and ctest counts a skipped test as no
/// failure.
class tls_loopback {
 public:
  /// Makes the certificates and starts `script` (job_server.py when empty)
  /// with the server certificate.
  void start(const std::string& script = JOBPOLL_TEST_SERVER) {
    try {
      pki_ = std::make_unique<test_pki>();
      server_ = std::make_unique<jobpoll::test::loopback_server>(
          script, std::vector<std::string>{"--tls-cert", pki_->server_cert(), "--tls-key", pki_->server_key()});
    } catch (const std::exception& e) {
      error_ = e.what();
    }
  }

  void stop() {
    server_.reset();
    pki_.reset();
    error_.clear();
  }

  /// Why `start` failed; empty when it did not.
  const std::string& error() const noexcept { return error_; }
  const test_pki& pki() const { return *pki_; }
  const jobpoll::test::loopback_server& server() const { return *server_; }

 private:
  std::unique_ptr<test_pki> pki_;
  std::unique_ptr<jobpoll::test::loopback_server> server_;
  std::string error_;
};

}  // namespace jobpoll_test
