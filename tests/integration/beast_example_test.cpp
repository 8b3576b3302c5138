// The Boost.Beast example (examples/beast_client.cpp, built on the Boost.Asio
// backend), run as a child process against the loopback job server: a job
// polled to its end through Beast, a 503 retried, a hostile answer refused
// with words that name it, a usage error. What happened is read from the
// server's own log.

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "loopback_server.hpp"

#ifndef JOBPOLL_TEST_BEAST_EXAMPLE
#error "beast_example_test.cpp needs JOBPOLL_TEST_BEAST_EXAMPLE, the path of the built beast_client"
#endif

namespace {

using json = nlohmann::json;
using testing::HasSubstr;

class BeastExample : public ::testing::Test {
 protected:
  jobpoll_test::child_result run(std::vector<std::string> args) {
    args.insert(args.begin(), JOBPOLL_TEST_BEAST_EXAMPLE);
    return jobpoll_test::run_child(std::move(args));
  }

  // How many requests of `method` on `path` the server logged.
  std::size_t logged(const std::string& method, const std::string& path) const {
    std::size_t n = 0;
    for (const json& e : server.log())
      if (e.at("method") == method && e.at("path") == path) ++n;
    return n;
  }

  jobpoll::test::loopback_server server;
};

TEST_F(BeastExample, PollsTheJobToItsResult) {
  const auto r = run({std::to_string(server.port()), "3"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("submitted job-1"));
  EXPECT_THAT(r.out, HasSubstr("poll 4: succeeded"));
  EXPECT_THAT(r.out, HasSubstr("result {"));
  // The server's count: one submit, three pending answers and the terminal one.
  EXPECT_EQ(logged("POST", "/v1/jobs"), 1u);
  EXPECT_EQ(logged("GET", "/v1/jobs/job-1"), 4u);
}

TEST_F(BeastExample, AServerErrorIsRetriedAndCountedOnce) {
  server.script("GET", "/v1/jobs/job-1", json::array({{{"status", 503}, {"body", "busy"}}}));
  const auto r = run({std::to_string(server.port()), "1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("poll 1: transient_error"));
  // The 503, then one pending and one terminal answer: every request once.
  EXPECT_EQ(logged("GET", "/v1/jobs/job-1"), 3u);
}

TEST_F(BeastExample, AnHtmlPageIsRefusedNamingWhatCame) {
  server.script("GET", "/v1/jobs/job-1", json::array({{{"status", 200}, {"body", "<html>maintenance</html>"}}}));
  const auto r = run({std::to_string(server.port())});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("not a job status: <html>maintenance</html>"));
  EXPECT_EQ(logged("GET", "/v1/jobs/job-1"), 1u) << "a permanent error is not retried";
}

TEST_F(BeastExample, AWrongArgumentIsAUsageError) {
  const auto r = run({"not-a-port"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("got \"not-a-port\""));
  EXPECT_TRUE(server.log().empty());
}

}  // namespace
