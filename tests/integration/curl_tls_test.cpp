// curl_transport over TLS against the loopback job server started with
// --tls-cert/--tls-key: verification is on by default, a private CA given as
// `ca_file` verifies, `verify_tls = false` accepts anything, a certificate for
// another name is refused; a job client runs a whole job over https.
//
// The certificates are made once per test suite with the `openssl` command:
// a private CA, a server certificate for 127.0.0.1 and localhost, and one for
// example.test only, all signed by that CA, in a temporary directory
// (test_pki.hpp).

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/poll_until.hpp>
#include <jobpoll/transport/curl.hpp>

#include "job_outcome.hpp"
#include "curl_exchange.hpp"
#include "loopback_server.hpp"
#include "tls_loopback.hpp"

namespace {

using namespace std::chrono_literals;
using namespace jobpoll_test;
using jobpoll::curl_category;
using jobpoll::curl_options;
using jobpoll::curl_transport;
using jobpoll::http_request;
using jobpoll::http_response;
using json = nlohmann::json;
using status_type = jobpoll::field_status<jobpoll::json_codec>;
using client_type = jobpoll::job_client<jobpoll::curl_transport, jobpoll::json_codec, status_type>;

// What `on_error` reported for one failed request.
struct report {
  std::error_code ec;  // as on_error reports it
  std::string detail;
};

class curl_tls_test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { tls_.start(); }
  static void TearDownTestSuite() { tls_.stop(); }

  // Each test starts with a fresh server: no jobs, an empty log.
  void SetUp() override {
    ASSERT_EQ(tls_.error(), "") << "the test suite's certificates or server could not be set up";
    control(tls_.server().port(), "POST", "/_control/reset");
  }

  static std::string https_url(std::string_view host, int port, std::string_view path) {
    return "https://" + std::string(host) + ":" + std::to_string(port) + std::string(path);
  }

  static http_request get(std::string url) {
    http_request r;
    r.method = "GET";
    r.url = std::move(url);
    return r;
  }

  outcome send(curl_transport& t, http_request r) { return jobpoll_test::send(ctx, t, std::move(r)); }

  // Default options, except that every failure `on_error` reports is appended to `reports`.
  curl_options reporting() {
    curl_options options;
    options.on_error = [this](std::string_view, std::string_view, std::error_code ec, std::string_view detail) {
      reports.push_back({ec, std::string(detail)});
    };
    return options;
  }

  // A control request to the TLS server on `port` (over https, certificate
  // not checked: it need not match the host); its JSON answer. Throws unless it answers 200.
  json control(int port, const std::string& method, const std::string& path) {
    curl_options options;
    options.verify_tls = false;
    curl_transport t(ctx.get_executor(), options);
    http_request r;
    r.method = method;
    r.url = https_url("127.0.0.1", port, path);
    const outcome o = send(t, std::move(r));
    if (o.ec || o.response.status != 200) {
      const std::string why = o.ec ? o.ec.message() : jobpoll::describe(o.response);
      throw std::runtime_error(method + " " + path + " failed: " + why);
    }
    return json::parse(o.response.body);
  }

  // Requests the server on `port` logged, as "METHOD path -> status" lines.
  std::vector<std::string> server_log(int port) {
    std::vector<std::string> lines;
    for (const auto& e : control(port, "GET", "/_control/log")) {
      lines.push_back(e["method"].get<std::string>() + " " + e["path"].get<std::string>() + " -> " +
                      e["status"].dump());
    }
    return lines;
  }

  static inline tls_loopback tls_;

  asio::io_context ctx;
  std::vector<report> reports;
};

const json unknown_job_body = {{"error", "unknown job nope"}};

TEST_F(curl_tls_test, DefaultOptionsRejectAPrivateCaCertificateBeforeAnyRequest) {
  curl_transport t(ctx.get_executor(), reporting());
  const outcome o = send(t, get(https_url("127.0.0.1", tls_.server().port(), "/v1/jobs/nope")));

  EXPECT_EQ(o.ec, curl_code(CURLE_PEER_FAILED_VERIFICATION)) << o.ec.message();
  EXPECT_EQ(o.ec, std::errc::permission_denied);
  EXPECT_FALSE(jobpoll::is_transient_error(o.ec));
  EXPECT_EQ(o.response.status, 0);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].ec, curl_code(CURLE_PEER_FAILED_VERIFICATION));
  // The system's CA bundle (ca-certificates) does not know the private CA.
  EXPECT_EQ(reports[0].detail, "SSL certificate problem: unable to get local issuer certificate");
  EXPECT_THAT(server_log(tls_.server().port()), ::testing::IsEmpty());
}

TEST_F(curl_tls_test, CaFileWithThePrivateCaVerifiesTheServer) {
  curl_options options = reporting();
  options.ca_file = tls_.pki().ca_cert();
  curl_transport t(ctx.get_executor(), options);
  const outcome o = send(t, get(https_url("127.0.0.1", tls_.server().port(), "/v1/jobs/nope")));

  ASSERT_EQ(o.ec, std::error_code()) << o.ec.message();
  EXPECT_EQ(o.response.status, 404);
  EXPECT_EQ(o.response.headers.find("Content-Type"), "application/json");
  EXPECT_EQ(json::parse(o.response.body), unknown_job_body);
  EXPECT_THAT(reports, ::testing::IsEmpty());
  EXPECT_THAT(server_log(tls_.server().port()), ::testing::ElementsAre("GET /v1/jobs/nope -> 404"));
}

TEST_F(curl_tls_test, VerifyTlsFalseAcceptsTheServerWithoutAnyCa) {
  curl_options options = reporting();
  options.verify_tls = false;
  curl_transport t(ctx.get_executor(), options);
  const outcome o = send(t, get(https_url("127.0.0.1", tls_.server().port(), "/v1/jobs/nope")));

  ASSERT_EQ(o.ec, std::error_code()) << o.ec.message();
  EXPECT_EQ(o.response.status, 404);
  EXPECT_EQ(json::parse(o.response.body), unknown_job_body);
  EXPECT_THAT(reports, ::testing::IsEmpty());
  EXPECT_THAT(server_log(tls_.server().port()), ::testing::ElementsAre("GET /v1/jobs/nope -> 404"));
}

TEST_F(curl_tls_test, HostNameMustBeInTheCertificate) {
  // localhost is in the server certificate's subjectAltName: it verifies.
  curl_options options = reporting();
  options.ca_file = tls_.pki().ca_cert();
  curl_transport t(ctx.get_executor(), options);
  const outcome by_name = send(t, get(https_url("localhost", tls_.server().port(), "/v1/jobs/nope")));
  ASSERT_EQ(by_name.ec, std::error_code()) << by_name.ec.message();
  EXPECT_EQ(by_name.response.status, 404);
  EXPECT_EQ(json::parse(by_name.response.body), unknown_job_body);

  // A certificate from the same CA for example.test only: the chain
  // verifies, the host name 127.0.0.1 does not match.
  jobpoll::test::loopback_server other({"--tls-cert", tls_.pki().other_cert(), "--tls-key", tls_.pki().other_key()});
  const outcome o = send(t, get(https_url("127.0.0.1", other.port(), "/v1/jobs/nope")));

  EXPECT_EQ(o.ec, curl_code(CURLE_PEER_FAILED_VERIFICATION)) << o.ec.message();
  EXPECT_EQ(o.ec, std::errc::permission_denied);
  EXPECT_FALSE(jobpoll::is_transient_error(o.ec));
  EXPECT_EQ(o.response.status, 0);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].ec, curl_code(CURLE_PEER_FAILED_VERIFICATION));
  EXPECT_EQ(reports[0].detail, "SSL: no alternative certificate subject name matches target host name '127.0.0.1'");
  EXPECT_THAT(server_log(other.port()), ::testing::IsEmpty());
  EXPECT_THAT(server_log(tls_.server().port()), ::testing::ElementsAre("GET /v1/jobs/nope -> 404"));
}

TEST_F(curl_tls_test, UnreadableCaFileIsAnInvalidArgumentNotARetry) {
  const std::string missing = tls_.pki().dir() + "/no-such-ca.pem";
  curl_options options = reporting();
  options.ca_file = missing;
  curl_transport t(ctx.get_executor(), options);
  const outcome o = send(t, get(https_url("127.0.0.1", tls_.server().port(), "/v1/jobs/nope")));

  EXPECT_EQ(o.ec, curl_code(CURLE_SSL_CACERT_BADFILE)) << o.ec.message();
  EXPECT_EQ(o.ec, std::errc::invalid_argument);
  EXPECT_FALSE(jobpoll::is_transient_error(o.ec));
  EXPECT_EQ(o.response.status, 0);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].ec, curl_code(CURLE_SSL_CACERT_BADFILE));
  EXPECT_EQ(reports[0].detail, "error setting certificate file: " + missing);
  EXPECT_THAT(server_log(tls_.server().port()), ::testing::IsEmpty());
}

TEST_F(curl_tls_test, JobClientRunsAJobOverHttps) {
  const std::string base = https_url("127.0.0.1", tls_.server().port(), "");
  jobpoll::job_description d;
  d.submit = {"POST", base + "/v1/jobs", "{body}"};
  d.handle = jobpoll::handle_source::body("/job_id");
  d.poll = {"GET", "/v1/jobs/{handle}"};
  d.result = jobpoll::result_source::in_poll_answer("/result");
  d.cancel = jobpoll::request_template{"DELETE", "/v1/jobs/{handle}"};
  const status_type status = status_type("/status", {.succeeded = {"completed"},
                                                     .failed = {"failed", "cancelled"},
                                                     .pending = {"pending", "running"}})
                                 .failure_detail_at("/error");
  curl_options options = reporting();
  options.ca_file = tls_.pki().ca_cert();
  curl_transport t(ctx.get_executor(), options);
  client_type client(t, d, status);
  jobpoll::poll_options o;
  o.interval = jobpoll::fixed_interval{1ms};
  o.backoff = jobpoll::fixed_interval{1ms};
  o.deadline = 30s;  // a guard only

  std::optional<job_outcome> out;
  jobpoll::job_params params{{"body", json{{"steps", 1}, {"result", "tls"}}.dump()}};
  asio::co_spawn(ctx, client.run(std::move(params), std::move(o)), store_outcome(out));
  ctx.restart();
  ctx.run();
  ASSERT_TRUE(out.has_value());

  const auto& r = success(*out);
  EXPECT_EQ(r.value, "tls");
  EXPECT_EQ(r.stats.attempts, 2u);  // "pending", then "completed"
  EXPECT_THAT(reports, ::testing::IsEmpty());
  EXPECT_EQ(t.connections_opened(), 1u);  // one TLS connection, kept alive for all three requests
  EXPECT_THAT(server_log(tls_.server().port()),
              ::testing::ElementsAre("POST /v1/jobs -> 202", "GET /v1/jobs/job-1 -> 200", "GET /v1/jobs/job-1 -> 200"));
}

}  // namespace
