// curl_transport over HTTP/2 against a real HTTP/2 server on loopback:
// tests/server/h2_server.py (hypercorn, TLS with ALPN h2 and http/1.1), with
// a private CA made by the `openssl` command (test_pki.hpp). The server logs
// each job request's HTTP version, the client's end of its connection (one
// port per connection) and how many job requests were in flight when it
// arrived; a "hold" keeps the first polls waiting until 50 of them are in
// flight at once, which over one connection means they were multiplexed.
//
// The server needs python3-hypercorn and python3-h2: JOBPOLL_TEST_PYTHON must
// be an interpreter that has them (Debian's /usr/bin/python3).

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/transport/curl.hpp>

#include "curl_exchange.hpp"
#include "job_outcome.hpp"
#include "tls_loopback.hpp"

#include "loopback_server.hpp"

namespace {

using namespace std::chrono_literals;
using namespace jobpoll_test;
using jobpoll::curl_options;
using jobpoll::curl_transport;
using jobpoll::http_request;
using json = nlohmann::json;
using status_type = jobpoll::field_status<jobpoll::json_codec>;
using client_type = jobpoll::job_client<jobpoll::curl_transport, jobpoll::json_codec, status_type>;

class http2_test : public ::testing::Test {
 protected:
  // h2_server.py, beside job_server.py.
  static void SetUpTestSuite() {
    tls_.start((std::filesystem::path(JOBPOLL_TEST_SERVER).parent_path() / "h2_server.py").string());
  }
  static void TearDownTestSuite() { tls_.stop(); }

  // Each test starts with a fresh server: no jobs, an empty log, no hold.
  void SetUp() override {
    ASSERT_EQ(tls_.error(), "") << "the test suite's certificates or server could not be set up";
    control("POST", "/_control/reset");
  }

  static std::string url(std::string_view path) {
    return "https://127.0.0.1:" + std::to_string(tls_.server().port()) + std::string(path);
  }

  // The options under test: the private CA, HTTP/2 offered or not, one connection at most.
  static curl_options options(bool http2) {
    curl_options o;
    o.ca_file = tls_.pki().ca_cert();
    o.http2 = http2;
    o.max_total_connections = 1;
    return o;
  }

  // A control request, on a transport of its own (control requests are not
  // logged); its JSON answer. Throws unless the server answers 200.
  json control(const std::string& method, const std::string& path, const json& body = nullptr) {
    curl_options o;
    o.ca_file = tls_.pki().ca_cert();
    curl_transport t(ctx.get_executor(), o);
    http_request r;
    r.method = method;
    r.url = url(path);
    if (!body.is_null()) {
      r.body = body.dump();
      r.headers.add("Content-Type", "application/json");
    }
    const outcome o2 = send(ctx, t, std::move(r));
    if (o2.ec || o2.response.status != 200) {
      throw std::runtime_error(method + " " + path + " failed: " +
                               (o2.ec ? o2.ec.message() : jobpoll::describe(o2.response)));
    }
    return json::parse(o2.response.body);
  }

  static jobpoll::job_description job_api() {
    jobpoll::job_description d;
    d.submit = {"POST", url("/v1/jobs"), "{body}"};
    d.handle = jobpoll::handle_source::body("/job_id");
    d.poll = {"GET", "/v1/jobs/{handle}"};
    d.result = jobpoll::result_source::in_poll_answer("/result");
    return d;
  }

  static status_type job_status() {
    return status_type("/status", {.succeeded = {"completed"}, .failed = {"failed"}, .pending = {"running"}});
  }

  static jobpoll::poll_options fast() {
    jobpoll::poll_options o;
    o.interval = jobpoll::fixed_interval{1ms};
    o.backoff = jobpoll::fixed_interval{1ms};
    o.deadline = 30s;  // a guard only
    return o;
  }

  static jobpoll::job_params job(int steps, const json& result) {
    return {{"body", json{{"steps", steps}, {"result", result}}.dump()}};
  }

  // Runs every job in `params` at once through one client on `t`; their outcomes, in order.
  std::vector<job_outcome> run_all(curl_transport& t, std::vector<jobpoll::job_params> params) {
    client_type client(t, job_api(), job_status());
    std::vector<std::optional<job_outcome>> outs(params.size());
    for (std::size_t i = 0; i < params.size(); ++i)
      asio::co_spawn(ctx, client.run(std::move(params[i]), fast()), store_outcome(outs[i]));
    run_until(ctx, [&] { return std::all_of(outs.begin(), outs.end(), [](const auto& o) { return o.has_value(); }); });
    std::vector<job_outcome> done;
    for (auto& o : outs) done.push_back(o ? std::move(*o) : job_outcome{});
    return done;
  }

  // What the server logged about the job requests so far.
  struct log_summary {
    std::size_t requests = 0;
    std::size_t posts = 0;
    std::size_t gets = 0;
    std::set<std::string> versions;  // http_version of every request
    std::set<int> client_ports;      // one per connection
    int max_in_flight = 0;
  };
  log_summary summary() {
    log_summary s;
    for (const auto& e : control("GET", "/_control/log")) {
      ++s.requests;
      s.posts += e["method"] == "POST";
      s.gets += e["method"] == "GET";
      s.versions.insert(e["http_version"].get<std::string>());
      s.client_ports.insert(e["client"][1].get<int>());
      s.max_in_flight = std::max(s.max_in_flight, e["in_flight"].get<int>());
    }
    return s;
  }

  static inline tls_loopback tls_;

  asio::io_context ctx;
};

TEST_F(http2_test, FiftyConcurrentPollsAreMultiplexedOnOneConnection) {
  constexpr int n = 50;
  // The first 50 polls are answered only once all 50 are in flight at once
  // (a 20 s guard ends the hold otherwise, and then max_in_flight says so).
  control("POST", "/_control/hold", {{"count", n}, {"timeout", 20}});
  curl_transport t(ctx.get_executor(), options(true));
  std::vector<jobpoll::job_params> params;
  for (int i = 0; i < n; ++i) params.push_back(job(1, i));

  const std::vector<job_outcome> outs = run_all(t, std::move(params));

  for (int i = 0; i < n; ++i) {
    const auto& r = success(outs[static_cast<std::size_t>(i)]);
    EXPECT_EQ(r.value, i);
    EXPECT_EQ(r.stats.attempts, 2u);  // "running", then "completed"
  }
  const log_summary s = summary();
  EXPECT_EQ(s.posts, std::size_t{n});
  EXPECT_EQ(s.gets, std::size_t{2 * n});
  EXPECT_THAT(s.versions, ::testing::ElementsAre("2"));
  EXPECT_EQ(s.client_ports.size(), 1u);  // one connection for all 150 requests
  EXPECT_EQ(s.max_in_flight, n);         // 50 polls at once on it: multiplexed
  EXPECT_EQ(t.connections_opened(), 1u);
}

TEST_F(http2_test, JobClientRunsAJobOverHttp2) {
  curl_transport t(ctx.get_executor(), options(true));

  const std::vector<job_outcome> outs = run_all(t, {job(2, "h2")});

  const auto& r = success(outs.at(0));
  EXPECT_EQ(r.value, "h2");
  EXPECT_EQ(r.stats.attempts, 3u);  // "running" twice, then "completed"
  const log_summary s = summary();
  EXPECT_EQ(s.posts, 1u);
  EXPECT_EQ(s.gets, 3u);
  EXPECT_THAT(s.versions, ::testing::ElementsAre("2"));
  EXPECT_EQ(s.client_ports.size(), 1u);
  EXPECT_EQ(t.connections_opened(), 1u);
}

// The same server, HTTP/2 not offered: the log tells the protocols apart.
TEST_F(http2_test, Http2OffUsesHttp11WithTheSameServer) {
  curl_transport t(ctx.get_executor(), options(false));

  const std::vector<job_outcome> outs = run_all(t, {job(1, "h1")});

  EXPECT_EQ(success(outs.at(0)).value, "h1");
  const log_summary s = summary();
  EXPECT_EQ(s.requests, 3u);
  EXPECT_THAT(s.versions, ::testing::ElementsAre("1.1"));
  EXPECT_EQ(s.client_ports.size(), 1u);
  EXPECT_EQ(t.connections_opened(), 1u);
}

}  // namespace
