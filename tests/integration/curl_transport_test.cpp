// curl_transport against the loopback job server (tests/server/job_server.py):
// requests as the server logged them, responses as it sent them, network
// failures as error codes, no silent re-sends, the queue in front of libcurl,
// timeouts and deadlines, cancellation, destruction, concurrency.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <jobpoll/poll_until.hpp>
#include <jobpoll/transport/curl.hpp>

#include "curl_exchange.hpp"
#include "loopback_server.hpp"

namespace {

using namespace std::chrono_literals;
using jobpoll_test::curl_code;
using jobpoll_test::outcome;
using jobpoll::curl_category;
using jobpoll::errc;
using jobpoll::curl_options;
using jobpoll::curl_transport;
using jobpoll::http_request;
using jobpoll::http_response;
using json = nlohmann::json;
using ::testing::HasSubstr;

// A loopback port nothing listens on: bound, then closed.
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("bind() failed");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

class curl_transport_test : public ::testing::Test {
 protected:
  jobpoll::test::loopback_server server;
  asio::io_context ctx;

  http_request request(std::string method, std::string path, std::string body = {}) const {
    http_request r;
    r.method = std::move(method);
    r.url = server.url(path);
    r.body = std::move(body);
    return r;
  }

  // Runs the context until the server has logged `n` requests (a failure guard of 30 s).
  void run_until_logged(std::size_t n) {
    const auto guard = std::chrono::steady_clock::now() + 30s;
    ctx.restart();
    while (server.log().size() < n) {
      ctx.poll();
      ASSERT_LT(std::chrono::steady_clock::now(), guard) << "the server logged fewer than " << n << " requests";
    }
  }

  // Runs the context until it has nothing left to do (30 s: a guard against hanging).
  void run_until_out_of_work() {
    ctx.restart();
    ctx.run_for(30s);
    ASSERT_TRUE(ctx.stopped()) << "work left after 30 s";
  }

  // Options whose on_error appends curl's account of each failure to `details`.
  static curl_options collecting_details(std::vector<std::string>& details) {
    curl_options options;
    options.on_error = [&details](std::string_view, std::string_view, std::error_code, std::string_view detail) {
      details.emplace_back(detail);
    };
    return options;
  }

  outcome send(curl_transport& t, http_request r) { return jobpoll_test::send(ctx, t, std::move(r)); }

  // Starts `r`; its outcome lands in `out`.
  static void start(curl_transport& t, http_request r, std::optional<outcome>& out) {
    t.async_request(std::move(r), [&out](jobpoll::error_code ec, http_response response) {
      out = outcome{ec, std::move(response)};
    });
  }

  // The requests the server logged for `method` `path`.
  std::size_t logged(std::string_view method, std::string_view path) const {
    const json log = server.log();
    return static_cast<std::size_t>(std::count_if(log.begin(), log.end(), [&](const json& e) {
      return e["method"] == method && e["path"] == path;
    }));
  }
  void run_until(const std::function<bool()>& done) { jobpoll_test::run_until(ctx, done); }

  // One transfer at a time: what follows a slow request waits in the queue.
  static curl_options one_at_a_time(std::vector<std::string>& details) {
    curl_options options;
    options.on_error = [&details](std::string_view, std::string_view, std::error_code, std::string_view detail) {
      details.emplace_back(detail);
    };
    options.max_active_transfers = 1;
    return options;
  }

  // A request queued behind a 10 s exchange ends unsent once its deadline
  // passes, or without a deadline its timeout: the server never receives it.
  void expect_never_sent(std::optional<std::chrono::nanoseconds> deadline,
                           std::optional<std::chrono::nanoseconds> timeout, const std::string& detail_pattern) {
    server.script("GET", "/slow", json::array({{{"delay_ms", 10000}}}));
    std::vector<std::string> details;
    curl_transport t(ctx.get_executor(), one_at_a_time(details));
    std::optional<outcome> slow, queued;
    start(t, request("GET", "/slow"), slow);
    http_request r = request("GET", "/v1/jobs/none");
    r.deadline = deadline;
    r.timeout = timeout;
    start(t, std::move(r), queued);
    run_until([&] { return queued.has_value(); });

    EXPECT_EQ(queued->ec, errc::not_sent);
    EXPECT_TRUE(jobpoll::is_transient_error(queued->ec));
    ASSERT_EQ(details.size(), 1u);
    EXPECT_THAT(details[0], ::testing::MatchesRegex("waited [0-9.]+ s in the transport's queue for a connection, " +
                                                    detail_pattern));
    EXPECT_FALSE(slow.has_value());
    EXPECT_EQ(t.active(), 1u);
    EXPECT_EQ(t.queued(), 0u);
    EXPECT_EQ(logged("GET", "/v1/jobs/none"), 0u);
  }
};

// --- requests and responses ----------------------------------------------------

TEST_F(curl_transport_test, PostSendsMethodHeadersAndBodyAsGiven) {
  curl_transport t(ctx.get_executor());
  http_request r = request("POST", "/v1/jobs", R"({"tool":"export","steps":1})");
  r.headers.add("Content-Type", "application/json");
  r.headers.add("X-Trace", "abc 123");
  r.headers.add("X-Empty", "");
  const outcome o = send(t, std::move(r));

  ASSERT_EQ(o.ec, std::error_code());
  EXPECT_EQ(o.response.status, 202);
  EXPECT_EQ(o.response.headers.find("Location"), "/v1/jobs/job-1");
  EXPECT_EQ(o.response.headers.find("content-type"), "application/json");
  EXPECT_EQ(json::parse(o.response.body), (json{{"job_id", "job-1"}, {"status", "pending"}}));

  const json log = server.log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0]["method"], "POST");
  EXPECT_EQ(log[0]["path"], "/v1/jobs");
  EXPECT_EQ(log[0]["body"], R"({"tool":"export","steps":1})");
  const json& h = log[0]["headers"];
  EXPECT_EQ(h["Content-Type"], "application/json");
  EXPECT_EQ(h["X-Trace"], "abc 123");
  EXPECT_EQ(h["X-Empty"], "");
  EXPECT_EQ(h["Content-Length"], "27");
  EXPECT_EQ(h["User-Agent"], "jobpoll/0.1.0");
  EXPECT_FALSE(h.contains("Expect"));
}

TEST_F(curl_transport_test, GetAndDeleteReachTheJob) {
  server.request("POST", "/v1/jobs", R"({"steps":3})");
  curl_transport t(ctx.get_executor());

  const outcome got = send(t, request("GET", "/v1/jobs/job-1?verbose=1"));
  ASSERT_EQ(got.ec, std::error_code());
  EXPECT_EQ(got.response.status, 200);
  EXPECT_EQ(json::parse(got.response.body)["status"], "pending");

  const outcome deleted = send(t, request("DELETE", "/v1/jobs/job-1"));
  ASSERT_EQ(deleted.ec, std::error_code());
  EXPECT_EQ(deleted.response.status, 200);
  EXPECT_EQ(json::parse(deleted.response.body), (json{{"job_id", "job-1"}, {"status", "cancelled"}}));

  const json log = server.log();
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[1]["method"], "GET");
  EXPECT_EQ(log[1]["query"], "verbose=1");
  EXPECT_EQ(log[1]["body"], "");
  EXPECT_EQ(log[2]["method"], "DELETE");
  EXPECT_EQ(log[2]["path"], "/v1/jobs/job-1");
  EXPECT_EQ(log[2]["body"], "");
  EXPECT_FALSE(log[2]["headers"].contains("Content-Length"));
  EXPECT_EQ(server.jobs()["jobs"][0]["cancelled"], true);
}

TEST_F(curl_transport_test, CustomMethodWithABodyAndNoContentTypeGuess) {
  server.request("POST", "/v1/jobs");
  curl_transport t(ctx.get_executor());
  const outcome o = send(t, request("PATCH", "/v1/jobs/job-1", "name=x&y=1"));

  ASSERT_EQ(o.ec, std::error_code());
  EXPECT_EQ(o.response.status, 405);
  EXPECT_EQ(json::parse(o.response.body), (json{{"error", "method PATCH not allowed on /v1/jobs/job-1"}}));
  const json log = server.log();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[1]["method"], "PATCH");
  EXPECT_EQ(log[1]["body"], "name=x&y=1");
  EXPECT_EQ(log[1]["headers"]["Content-Length"], "10");
  EXPECT_FALSE(log[1]["headers"].contains("Content-Type"));  // not curl's form-urlencoded guess
}

// One easy handle serves every request in turn (one transfer at a time, and
// handles are kept configured between requests): nothing of one request's
// method or body carries over to the next. (No HEAD here: the server has no
// HEAD handler, and its 501 answer to one carries a body that spoils the
// connection for the next request.)
TEST_F(curl_transport_test, AReusedHandleSendsEachMethodAndBodyAsGiven) {
  curl_options one;
  one.max_active_transfers = 1;
  curl_transport t(ctx.get_executor(), one);
  const std::vector<std::pair<std::string, std::string>> sent{
      {"POST", R"({"steps":3})"}, {"GET", ""}, {"PUT", "put body"}, {"DELETE", ""},
      {"POST", ""},               {"GET", ""}, {"PATCH", "patch body"}, {"GET", ""}};
  for (const auto& [method, body] : sent) {
    const outcome o = send(t, request(method, method == "POST" ? "/v1/jobs" : "/v1/jobs/job-1", body));
    ASSERT_EQ(o.ec, std::error_code()) << method;
  }
  const json log = server.log();
  ASSERT_EQ(log.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(log[i]["method"], sent[i].first) << i;
    EXPECT_EQ(log[i]["body"], sent[i].second) << i;
    // Only a method that sends a body announces one.
    const bool with_body = sent[i].first == "POST" || !sent[i].second.empty();
    EXPECT_EQ(log[i]["headers"].contains("Content-Length"), with_body) << i << " " << log[i].dump();
  }
  EXPECT_EQ(t.connections_opened(), 1u);
}

TEST_F(curl_transport_test, HeadGetsHeadersWithoutABodyWhateverItsLength) {
  curl_options options;
  options.max_response_bytes = 10;  // smaller than the Content-Length the answer announces
  curl_transport t(ctx.get_executor(), options);
  const outcome o = send(t, request("HEAD", "/v1/jobs/job-1"));
  ASSERT_EQ(o.ec, std::error_code());
  EXPECT_EQ(o.response.status, 501);  // http.server has no HEAD handler here
  EXPECT_EQ(o.response.body, "");
  ASSERT_TRUE(o.response.headers.contains("Content-Length"));
  EXPECT_GT(std::stoul(std::string(*o.response.headers.find("Content-Length"))), 10u);
}

TEST_F(curl_transport_test, ErrorStatusesAreResponsesWithHeadersAndBody) {
  server.script("GET", "/v1/jobs/job-9",
                json::array({{{"status", 404}, {"body", "no such job"}},
                             {{"status", 503},
                              {"headers", {{"Retry-After", "7"}, {"X-Reason", "maintenance"}}},
                              {"body", "try later"}}}));
  curl_transport t(ctx.get_executor());

  const outcome not_found = send(t, request("GET", "/v1/jobs/job-9"));
  ASSERT_EQ(not_found.ec, std::error_code());
  EXPECT_EQ(not_found.response.status, 404);
  EXPECT_EQ(not_found.response.body, "no such job");

  const outcome unavailable = send(t, request("GET", "/v1/jobs/job-9"));
  ASSERT_EQ(unavailable.ec, std::error_code());
  EXPECT_EQ(unavailable.response.status, 503);
  EXPECT_EQ(unavailable.response.body, "try later");
  EXPECT_EQ(unavailable.response.headers.find("Retry-After"), "7");
  EXPECT_EQ(unavailable.response.headers.find("X-Reason"), "maintenance");
  EXPECT_EQ(unavailable.response.headers.find("Content-Length"), "9");
}

TEST_F(curl_transport_test, RedirectsAreResponsesNotFollowed) {
  server.script("GET", "/old", json::array({{{"status", 302}, {"headers", {{"Location", "/v1/jobs/job-1"}}}}}));
  curl_transport t(ctx.get_executor());
  const outcome o = send(t, request("GET", "/old"));
  ASSERT_EQ(o.ec, std::error_code());
  EXPECT_EQ(o.response.status, 302);
  EXPECT_EQ(o.response.headers.find("Location"), "/v1/jobs/job-1");
  EXPECT_EQ(server.log().size(), 1u);
}

TEST_F(curl_transport_test, SequentialRequestsReuseOneConnection) {
  server.request("POST", "/v1/jobs", R"({"steps":0})");
  curl_transport t(ctx.get_executor());
  for (int i = 0; i < 5; ++i) {
    const outcome o = send(t, request("GET", "/v1/jobs/job-1"));
    ASSERT_EQ(o.ec, std::error_code());
    EXPECT_EQ(o.response.status, 200);
  }
  EXPECT_EQ(t.connections_opened(), 1u);
  EXPECT_EQ(server.log().size(), 6u);
}

TEST_F(curl_transport_test, HostNamesAreResolved) {
  // A name rather than an address (libcurl 7.88 answers "localhost" itself;
  // AnUnknownHostIsNotTransient goes through its resolver thread).
  curl_transport t(ctx.get_executor());
  http_request r;
  r.url = "http://localhost:" + std::to_string(server.port()) + "/v1/jobs/none";
  const outcome o = send(t, std::move(r));
  ASSERT_EQ(o.ec, std::error_code());
  EXPECT_EQ(o.response.status, 404);
  EXPECT_EQ(server.log()[0]["headers"]["Host"], "localhost:" + std::to_string(server.port()));
  run_until_out_of_work();
}

TEST_F(curl_transport_test, AnIdleTransportLeavesItsContextFreeToReturn) {
  curl_transport t(ctx.get_executor());
  const outcome o = send(t, request("GET", "/v1/jobs/none"));
  ASSERT_EQ(o.ec, std::error_code());
  EXPECT_EQ(o.response.status, 404);
  // A cached connection and an idle multi handle leave no wait pending:
  // run() returns at once.
  run_until_out_of_work();
}

TEST_F(curl_transport_test, OneMegabyteBodiesBothWays) {
  const std::string big(1 << 20, 'x');
  curl_transport t(ctx.get_executor());
  const std::string job = json{{"steps", 0}, {"result", big}}.dump();
  const outcome submitted = send(t, request("POST", "/v1/jobs", job));
  ASSERT_EQ(submitted.ec, std::error_code());
  EXPECT_EQ(submitted.response.status, 202);
  EXPECT_EQ(server.log()[0]["body"].get<std::string>().size(), job.size());

  const outcome fetched = send(t, request("GET", "/v1/jobs/job-1"));
  ASSERT_EQ(fetched.ec, std::error_code());
  EXPECT_EQ(fetched.response.status, 200);
  const json answer = json::parse(fetched.response.body);
  EXPECT_EQ(answer["status"], "completed");
  EXPECT_EQ(answer["result"], big);
}

TEST_F(curl_transport_test, ABodyOverTheLimitFailsWithMessageSize) {
  server.script("GET", "/big",
                json::array({{{"status", 200}, {"body", std::string(100, 'a')}},
                             {{"status", 200}, {"body", std::string(101, 'b')}}}));
  std::vector<std::string> details;
  curl_options options;
  options.max_response_bytes = 100;
  options.on_error = [&](std::string_view method, std::string_view url, std::error_code ec, std::string_view detail) {
    details.push_back(std::string(method) + " " + std::string(url) + " " + ec.message() + ": " + std::string(detail));
  };
  curl_transport t(ctx.get_executor(), options);

  const outcome at_limit = send(t, request("GET", "/big"));
  ASSERT_EQ(at_limit.ec, std::error_code());
  EXPECT_EQ(at_limit.response.body, std::string(100, 'a'));

  const outcome over = send(t, request("GET", "/big"));
  EXPECT_EQ(over.ec, std::make_error_code(std::errc::message_size));
  EXPECT_EQ(over.ec.message(), "Message too long");
  EXPECT_EQ(over.response.status, 0);
  EXPECT_EQ(over.response.body, "");
  EXPECT_EQ(details, std::vector<std::string>{"GET " + server.url("/big") +
                                              " Message too long: the response body is larger than "
                                              "max_response_bytes (100)"});
}

// --- network failures ------------------------------------------------------------

TEST_F(curl_transport_test, ResetInTheMiddleOfTheResponseIsAConnectionReset) {
  server.script("GET", "/reset", json::array({{{"action", "reset"}}}));
  curl_transport t(ctx.get_executor());
  const outcome o = send(t, request("GET", "/reset"));
  EXPECT_EQ(o.ec, curl_code(CURLE_RECV_ERROR));
  EXPECT_EQ(o.ec, std::errc::connection_reset);
  EXPECT_TRUE(jobpoll::is_transient_error(o.ec));
  EXPECT_EQ(o.response.status, 0);
}

TEST_F(curl_transport_test, CloseWithoutAnswerIsAConnectionReset) {
  server.script("GET", "/close", json::array({{{"action", "close"}}}));
  curl_transport t(ctx.get_executor());
  const outcome o = send(t, request("GET", "/close"));
  EXPECT_EQ(o.ec, curl_code(CURLE_GOT_NOTHING));
  EXPECT_EQ(o.ec, std::errc::connection_reset);
  EXPECT_EQ(o.ec.message(), "Server returned nothing (no headers, no data)");
  EXPECT_TRUE(jobpoll::is_transient_error(o.ec));
}

TEST_F(curl_transport_test, NothingListeningIsConnectionRefused) {
  const int port = closed_port();
  std::vector<std::string> details;
  curl_options options = collecting_details(details);
  curl_transport t(ctx.get_executor(), options);
  http_request r;
  r.url = "http://127.0.0.1:" + std::to_string(port) + "/v1/jobs";
  const outcome o = send(t, std::move(r));
  EXPECT_EQ(o.ec, curl_code(CURLE_COULDNT_CONNECT));
  EXPECT_EQ(o.ec, std::errc::connection_refused);
  // As held by the backend's error_code; on Boost.Asio that wraps the std::error_code it came as.
  EXPECT_EQ(static_cast<std::error_code>(o.ec).category().name(), std::string("curl"));
  EXPECT_EQ(o.ec.message(), "Couldn't connect to server");
  EXPECT_TRUE(jobpoll::is_transient_error(o.ec));
  ASSERT_EQ(details.size(), 1u);
  EXPECT_THAT(details[0], HasSubstr("127.0.0.1 port " + std::to_string(port)));
}

TEST_F(curl_transport_test, AnUnknownHostIsNotTransient) {
  // A reserved name (RFC 2606) no resolver knows; it goes through curl's
  // threaded resolver, whose wake-up socket the transport watches but never closes.
  std::vector<std::string> details;
  curl_options options = collecting_details(details);
  curl_transport t(ctx.get_executor(), options);
  http_request r;
  r.url = "http://jobpoll-test.invalid/v1/jobs";
  r.timeout = 120s;  // a guard: an offline resolver may take its own timeouts to answer
  const outcome o = send(t, std::move(r));
  EXPECT_EQ(o.ec, curl_code(CURLE_COULDNT_RESOLVE_HOST));
  EXPECT_FALSE(jobpoll::is_transient_error(o.ec));
  EXPECT_EQ(details, std::vector<std::string>{"Could not resolve host: jobpoll-test.invalid"});
  EXPECT_EQ(t.connections_opened(), 0u);
  run_until_out_of_work();
}

TEST_F(curl_transport_test, MalformedUrlAndOtherSchemesAreInvalidArguments) {
  curl_transport t(ctx.get_executor());
  http_request bad;
  bad.url = "http://exa mple.com:99999999/";
  const outcome malformed = send(t, std::move(bad));
  EXPECT_EQ(malformed.ec, curl_code(CURLE_URL_MALFORMAT));
  EXPECT_EQ(malformed.ec, std::errc::invalid_argument);
  EXPECT_FALSE(jobpoll::is_transient_error(malformed.ec));

  http_request file;
  file.url = "file:///etc/passwd";
  const outcome unsupported = send(t, std::move(file));
  EXPECT_EQ(unsupported.ec, curl_code(CURLE_UNSUPPORTED_PROTOCOL));
  EXPECT_EQ(unsupported.ec, std::errc::invalid_argument);
  EXPECT_EQ(unsupported.response.body, "");
}

// --- timeouts --------------------------------------------------------------------

TEST_F(curl_transport_test, ARequestOutlivingItsTimeoutFailsWithTimedOut) {
  server.script("GET", "/slow", json::array({{{"delay_ms", 10000}}}));
  curl_transport t(ctx.get_executor());
  http_request r = request("GET", "/slow");
  r.timeout = 200ms;
  const outcome o = send(t, std::move(r));
  EXPECT_EQ(o.ec, asio::error::timed_out);
  EXPECT_TRUE(jobpoll::is_transient_error(o.ec));
  EXPECT_EQ(t.in_flight(), 0u);
}

TEST_F(curl_transport_test, TheDefaultTimeoutAppliesWhenTheRequestHasNone) {
  server.script("GET", "/slow", json::array({{{"delay_ms", 10000}}}));
  curl_options options;
  options.default_timeout = 200ms;
  curl_transport t(ctx.get_executor(), options);
  const outcome o = send(t, request("GET", "/slow"));
  EXPECT_EQ(o.ec, asio::error::timed_out);
}

TEST_F(curl_transport_test, AZeroTimeoutFailsWithoutSending) {
  curl_transport t(ctx.get_executor());
  http_request r = request("GET", "/v1/jobs/job-1");
  r.timeout = 0ns;
  const outcome o = send(t, std::move(r));
  EXPECT_EQ(o.ec, asio::error::timed_out);
  EXPECT_EQ(server.log().size(), 0u);
}

// --- sent at most once ---------------------------------------------------------------

// libcurl 7.88 re-sends a request by itself when a reused keep-alive
// connection ends without a byte of answer (transfer.c, Curl_retry_request).
// The transport refuses that second send: the server sees the request once,
// for a GET as for a submit.
TEST_F(curl_transport_test, AReusedConnectionClosedWithoutAnAnswerIsNotResent) {
  std::vector<std::string> details;
  curl_transport t(ctx.get_executor(), collecting_details(details));
  struct exchange {
    std::string method, path, body;
    int answer;  // the status of the same request sent again afterwards
  };
  for (const exchange& x : {exchange{"GET", "/v1/jobs/none", "", 404},
                            exchange{"POST", "/v1/jobs", R"({"steps":0})", 202}}) {
    SCOPED_TRACE(x.method + " " + x.path);
    server.reset();
    details.clear();
    // Warm one keep-alive connection.
    ASSERT_EQ(send(t, request("GET", "/warm")).response.status, 404);
    server.script(x.method, x.path, json::array({{{"action", "close"}}}));
    const std::uint64_t opened = t.connections_opened();

    const outcome closed = send(t, request(x.method, x.path, x.body));
    EXPECT_EQ(closed.ec, std::errc::connection_reset) << closed.ec.message();
    EXPECT_TRUE(jobpoll::is_transient_error(closed.ec));
    EXPECT_EQ(details, std::vector<std::string>{"the server closed a reused connection (or refused the HTTP/2 "
                                                "stream) without answering; not re-sent"});
    json log = server.log();
    ASSERT_EQ(log.size(), 2u);  // the warm-up and the request, once: no second copy
    EXPECT_EQ(log[1]["method"], x.method);
    EXPECT_EQ(log[1]["reused"], true);
    EXPECT_EQ(log[1]["status"], nullptr);
    EXPECT_EQ(server.jobs()["v1_jobs"], 0);  // the submit created no job

    const outcome again = send(t, request(x.method, x.path, x.body));
    ASSERT_EQ(again.ec, std::error_code());
    EXPECT_EQ(again.response.status, x.answer);
    log = server.log();
    ASSERT_EQ(log.size(), 3u);
    EXPECT_EQ(log[2]["reused"], false);  // a fresh connection
    EXPECT_GT(t.connections_opened(), opened);
  }
}

struct attempt_counts {
  std::size_t attempts = 0;        // requests handed to the transport
  std::size_t submits_lost = 0;    // submits that failed: not retried (the server may have the job)
  std::size_t polls_retried = 0;   // polls that failed transiently and were sent again
  std::size_t jobs_done = 0;       // jobs polled to "completed"
  std::size_t unexpected = 0;      // anything else
};

// One job as a poller drives it: a submit, not retried when its fate is
// unknown, then polls until "completed", each transient failure retried.
asio::awaitable<void> submit_and_poll(curl_transport& t, const jobpoll::test::loopback_server& server, int tag,
                                      attempt_counts& counts) {
  http_request submit;
  submit.method = "POST";
  submit.url = server.url("/v1/jobs");
  submit.body = json{{"steps", 2}, {"params", {{"tag", tag}}}}.dump();
  ++counts.attempts;
  std::string job;
  try {
    const http_response r = co_await t.async_request(std::move(submit), asio::use_awaitable);
    job = json::parse(r.body)["job_id"];
  } catch (const jobpoll::system_error& e) {
    ++(e.code() == std::errc::connection_reset ? counts.submits_lost : counts.unexpected);
    co_return;
  }
  for (;;) {
    http_request poll;
    poll.url = server.url("/v1/jobs/" + job);
    ++counts.attempts;
    try {
      const http_response r = co_await t.async_request(std::move(poll), asio::use_awaitable);
      if (json::parse(r.body)["status"] == "completed") break;
    } catch (const jobpoll::system_error& e) {
      if (!jobpoll::is_transient_error(e.code())) {
        ++counts.unexpected;
        co_return;
      }
      ++counts.polls_retried;
    }
  }
  ++counts.jobs_done;
}

TEST_F(curl_transport_test, WithReusedConnectionsDroppedTheServerSeesEachAttemptOnce) {
  server.configure({{"close_reused", 0.2}});
  curl_options options;
  options.http2 = false;  // plain http: one request per connection at a time
  options.max_total_connections = 4;
  curl_transport t(ctx.get_executor(), options);
  ASSERT_EQ(t.max_active_transfers(), 4u);
  constexpr int jobs = 60;
  attempt_counts counts;
  for (int i = 0; i < jobs; ++i) asio::co_spawn(ctx, submit_and_poll(t, server, i, counts), asio::detached);
  run_until([&] { return counts.jobs_done + counts.submits_lost + counts.unexpected == jobs; });

  EXPECT_EQ(counts.unexpected, 0u);
  const json log = server.log();
  EXPECT_EQ(log.size(), counts.attempts);  // every request that left was sent once
  std::vector<int> submits_per_tag(jobs, 0);
  std::size_t dropped = 0;
  for (const json& e : log) {
    if (e["closed_reused"] == true) ++dropped;
    if (e["method"] == "POST") ++submits_per_tag[json::parse(e["body"].get<std::string>())["params"]["tag"].get<std::size_t>()];
  }
  EXPECT_EQ(submits_per_tag, std::vector<int>(jobs, 1));  // no submit received twice
  EXPECT_EQ(dropped, counts.submits_lost + counts.polls_retried);
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ(server.jobs()["v1_jobs"], jobs - static_cast<int>(counts.submits_lost));
}

// --- the queue in front of libcurl -----------------------------------------------------

TEST_F(curl_transport_test, TheTransferCapComesFromTheOptions) {
  auto cap = [&](curl_options o) { return curl_transport(ctx.get_executor(), std::move(o)).max_active_transfers(); };
  EXPECT_EQ(cap({}), curl_options::default_max_active_transfers);
  curl_options ten;
  ten.max_total_connections = 10;
  // One transfer per connection until a server is seen to multiplex (the
  // HTTP/2 test sees it grow to connections x streams).
  EXPECT_EQ(cap(ten), 10u);
  EXPECT_EQ(jobpoll::detail::transfer_cap(ten, true), 1000u);  // 10 connections x 100 HTTP/2 streams
  ten.max_concurrent_streams = 8;
  EXPECT_EQ(jobpoll::detail::transfer_cap(ten, true), 80u);
  ten.http2 = false;
  EXPECT_EQ(jobpoll::detail::transfer_cap(ten, true), 10u);
  ten.max_active_transfers = 3;
  EXPECT_EQ(cap(ten), 3u);
}

TEST_F(curl_transport_test, TenThousandRequestsNeverPutMoreThanTheCapIntoLibcurl) {
  curl_options options;
  options.max_active_transfers = 100;
  options.max_total_connections = 10;
  curl_transport t(ctx.get_executor(), options);
  constexpr std::size_t n = 10'000;
  std::size_t answered = 0;
  std::vector<jobpoll::error_code> errors;
  for (std::size_t i = 0; i < n; ++i) {
    t.async_request(request("GET", "/v1/jobs/none"), [&](jobpoll::error_code ec, http_response response) {
      if (ec || response.status != 404) errors.push_back(ec);
      ++answered;
    });
  }
  // Every handler the context runs (socket, timer, queue, completion) is
  // followed by a look at what libcurl holds.
  std::size_t most_active = 0;
  std::size_t most_queued = 0;
  ctx.restart();
  while (answered < n) {
    ASSERT_NE(ctx.run_one_for(30s), 0u) << "no handler ran for 30 s";
    most_active = std::max(most_active, t.active());
    most_queued = std::max(most_queued, t.queued());
  }
  EXPECT_THAT(errors, ::testing::IsEmpty());
  EXPECT_EQ(most_active, 100u);
  EXPECT_GE(most_queued, n - 100 - 100);  // the strand took nearly all before the first answer
  EXPECT_EQ(t.queued(), 0u);
  EXPECT_EQ(t.active(), 0u);
  EXPECT_LE(t.connections_opened(), 10u);
  EXPECT_EQ(server.log().size(), n);
}

// --- timeouts and deadlines with a queue -----------------------------------------------

TEST_F(curl_transport_test, AQueuedRequestWhoseDeadlinePassesIsNeverSent) {
  expect_never_sent(300ms, std::nullopt, "until its deadline; never sent");
}

TEST_F(curl_transport_test, WithoutADeadlineAQueuedRequestWaitsAtMostItsTimeout) {
  expect_never_sent(std::nullopt, 200ms, "until its timeout \\(it has no deadline\\); never sent");
}

TEST_F(curl_transport_test, ADeadlineEndsAStalledExchange) {
  server.script("GET", "/stalled", json::array({{{"delay_ms", 10000}}}));
  std::vector<std::string> details;
  curl_transport t(ctx.get_executor(), collecting_details(details));
  http_request r = request("GET", "/stalled");
  r.deadline = 300ms;  // the timeout, 30 s by default, would wait for the answer
  const auto began = std::chrono::steady_clock::now();
  const outcome o = send(t, std::move(r));
  EXPECT_EQ(o.ec, asio::error::timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - began, 5s);  // not the server's 10 s
  ASSERT_EQ(details.size(), 1u);
  EXPECT_THAT(details[0], ::testing::StartsWith("the request's deadline ended the exchange"));
  EXPECT_EQ(logged("GET", "/stalled"), 1u);
}

TEST_F(curl_transport_test, TheTimeoutCountsFromTheHandOffNotFromTheQueue) {
  // /first holds the only transfer slot for 400 ms; /second then takes 250 ms
  // to answer: 650 ms from the call, within its 500 ms timeout from the hand-off.
  server.script("GET", "/first", json::array({{{"delay_ms", 400}}}));
  server.script("GET", "/second", json::array({{{"delay_ms", 250}, {"status", 200}, {"body", "ok"}}}));
  std::vector<std::string> details;
  curl_transport t(ctx.get_executor(), one_at_a_time(details));
  std::optional<outcome> first, second;
  start(t, request("GET", "/first"), first);
  http_request r = request("GET", "/second");
  r.timeout = 500ms;
  start(t, std::move(r), second);
  run_until([&] { return first.has_value() && second.has_value(); });

  EXPECT_EQ(first->ec, std::error_code());
  ASSERT_EQ(second->ec, std::error_code()) << details.front();
  EXPECT_EQ(second->response.body, "ok");
}

TEST_F(curl_transport_test, CancellingAQueuedRequestAbortsItUnsent) {
  server.script("GET", "/slow", json::array({{{"delay_ms", 10000}}}));
  std::vector<std::string> details;
  curl_transport t(ctx.get_executor(), one_at_a_time(details));
  std::optional<outcome> slow, queued;
  start(t, request("GET", "/slow"), slow);
  asio::cancellation_signal signal;
  t.async_request(request("GET", "/v1/jobs/none"),
                  asio::bind_cancellation_slot(signal.slot(), [&](jobpoll::error_code ec, http_response response) {
                    queued = outcome{ec, std::move(response)};
                  }));
  run_until_logged(1);  // /slow is at the server: the other one waits in the queue
  run_until([&] { return t.queued() == 1; });
  signal.emit(asio::cancellation_type::terminal);
  run_until([&] { return queued.has_value(); });

  EXPECT_EQ(queued->ec, asio::error::operation_aborted);
  EXPECT_EQ(t.queued(), 0u);
  EXPECT_EQ(t.active(), 1u);
  EXPECT_EQ(t.in_flight(), 1u);
  EXPECT_THAT(details, ::testing::IsEmpty());
  EXPECT_EQ(logged("GET", "/v1/jobs/none"), 0u);
}

// --- cancellation and destruction ---------------------------------------------

TEST_F(curl_transport_test, CancellingARequestInFlightAbortsIt) {
  server.script("GET", "/slow", json::array({{{"delay_ms", 10000}}}));
  curl_transport t(ctx.get_executor());
  asio::cancellation_signal signal;
  std::optional<outcome> out;
  t.async_request(request("GET", "/slow"),
                  asio::bind_cancellation_slot(signal.slot(), [&](jobpoll::error_code ec, http_response response) {
                    out = outcome{ec, std::move(response)};
                  }));
  EXPECT_EQ(t.in_flight(), 1u);
  run_until_logged(1);  // the request is at the server, which holds it for 10 s
  ASSERT_FALSE(out.has_value());
  signal.emit(asio::cancellation_type::terminal);
  run_until([&] { return out.has_value(); });
  EXPECT_EQ(out->ec, asio::error::operation_aborted);
  EXPECT_EQ(out->response.status, 0);
  EXPECT_EQ(t.in_flight(), 0u);

  // The transport carries on: a new connection for the next request.
  const outcome next = send(t, request("GET", "/v1/jobs/none"));
  EXPECT_EQ(next.ec, std::error_code());
  EXPECT_EQ(next.response.status, 404);
  EXPECT_EQ(t.connections_opened(), 2u);
}

TEST_F(curl_transport_test, EveryCancellationTypeAbortsARequestBeforeItIsSent) {
  curl_transport t(ctx.get_executor());
  for (auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                    asio::cancellation_type::total}) {
    asio::cancellation_signal signal;
    std::optional<outcome> out;
    t.async_request(request("GET", "/v1/jobs/none"),
                    asio::bind_cancellation_slot(signal.slot(), [&](jobpoll::error_code ec, http_response response) {
                      out = outcome{ec, std::move(response)};
                    }));
    signal.emit(type);  // before the context ran: the request has not reached curl
    run_until([&] { return out.has_value(); });
    EXPECT_EQ(out->ec, asio::error::operation_aborted);
  }
  EXPECT_EQ(t.in_flight(), 0u);
  EXPECT_EQ(server.log().size(), 0u);
  EXPECT_EQ(t.connections_opened(), 0u);
}

TEST_F(curl_transport_test, DestructionAbortsEveryRequestInFlight) {
  server.script("GET", "/slow", json::array({{{"delay_ms", 10000}}, {{"delay_ms", 10000}}, {{"delay_ms", 10000}}}));
  std::vector<jobpoll::error_code> results;
  {
    curl_transport t(ctx.get_executor());
    for (int i = 0; i < 3; ++i)
      t.async_request(request("GET", "/slow"), [&](jobpoll::error_code ec, http_response) { results.push_back(ec); });
    run_until_logged(3);
    EXPECT_EQ(t.in_flight(), 3u);
    EXPECT_TRUE(results.empty());
  }
  run_until([&] { return results.size() == 3; });
  EXPECT_EQ(results, std::vector<jobpoll::error_code>(3, asio::error::operation_aborted));
  // Sockets and timer are gone with the transport: nothing is left to run.
  run_until_out_of_work();
}

TEST_F(curl_transport_test, DestroyedWithAContextThatNeverRunsAgainLeaksNothing) {
  server.script("GET", "/slow", json::array({{{"delay_ms", 10000}}, {{"delay_ms", 10000}}}));
  auto witness = std::make_shared<int>(0);
  bool called = false;
  {
    asio::io_context own;
    curl_transport t(own.get_executor());
    for (int i = 0; i < 2; ++i)
      t.async_request(request("GET", "/slow"), [&, w = witness](jobpoll::error_code, http_response) { called = true; });
    const auto guard = std::chrono::steady_clock::now() + 30s;
    while (server.log().size() < 2) {
      own.poll();
      ASSERT_LT(std::chrono::steady_clock::now(), guard) << "the server logged fewer than 2 requests";
    }
    EXPECT_EQ(witness.use_count(), 3);
  }  // the transport, then the context: the handlers are destroyed, never called
  EXPECT_FALSE(called);
  EXPECT_EQ(witness.use_count(), 1);
}

// --- concurrency and completion tokens -------------------------------------------

TEST_F(curl_transport_test, HundredConcurrentRequestsAreAllAnswered) {
  server.request("POST", "/v1/jobs", R"({"steps":0})");
  curl_transport t(ctx.get_executor());
  std::vector<int> statuses;
  std::vector<jobpoll::error_code> errors;
  for (int i = 0; i < 100; ++i) {
    t.async_request(request("GET", "/v1/jobs/job-1"), [&](jobpoll::error_code ec, http_response response) {
      if (ec) errors.push_back(ec);
      statuses.push_back(response.status);
    });
  }
  EXPECT_EQ(t.in_flight(), 100u);
  run_until([&] { return statuses.size() == 100; });
  EXPECT_THAT(errors, ::testing::IsEmpty());
  EXPECT_EQ(statuses, std::vector<int>(100, 200));
  EXPECT_EQ(t.in_flight(), 0u);
  EXPECT_EQ(server.log().size(), 101u);
}

TEST_F(curl_transport_test, UsableFromSeveralThreads) {
  server.request("POST", "/v1/jobs", R"({"steps":0})");
  auto work = asio::make_work_guard(ctx);
  std::vector<std::thread> runners;
  for (int i = 0; i < 2; ++i) runners.emplace_back([this] { ctx.run(); });
  std::vector<int> statuses(100);
  {
    curl_transport t(ctx.get_executor());
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; ++c) {
      clients.emplace_back([&, c] {
        std::vector<std::future<http_response>> answers;
        for (int i = 0; i < 25; ++i) answers.push_back(t.async_request(request("GET", "/v1/jobs/job-1"), asio::use_future));
        for (int i = 0; i < 25; ++i) statuses[static_cast<std::size_t>(c * 25 + i)] = answers[static_cast<std::size_t>(i)].get().status;
      });
    }
    for (auto& c : clients) c.join();
    EXPECT_EQ(t.in_flight(), 0u);
  }
  work.reset();
  for (auto& r : runners) r.join();
  EXPECT_EQ(statuses, std::vector<int>(100, 200));
}

asio::awaitable<int> status_of(curl_transport* t, http_request r) {
  http_response response = co_await t->async_request(std::move(r), asio::use_awaitable);
  co_return response.status;
}

TEST_F(curl_transport_test, WorksWithAwaitableFutureAndCallback) {
  curl_transport t(ctx.get_executor());

  std::future<int> by_coroutine = asio::co_spawn(ctx, status_of(&t, request("GET", "/v1/jobs/a")), asio::use_future);
  std::future<http_response> by_future = t.async_request(request("GET", "/v1/jobs/b"), asio::use_future);
  std::optional<int> by_callback;
  t.async_request(request("GET", "/v1/jobs/c"),
                  [&](jobpoll::error_code ec, http_response response) { by_callback = ec ? -1 : response.status; });
  run_until_out_of_work();
  // use_future completions run on the system executor's thread, not ctx's.
  ASSERT_EQ(by_coroutine.wait_for(30s), std::future_status::ready);
  ASSERT_EQ(by_future.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(by_coroutine.get(), 404);
  EXPECT_EQ(by_future.get().status, 404);
  EXPECT_EQ(by_callback, 404);
}

TEST_F(curl_transport_test, AwaitableFailuresThrowTheErrorCode) {
  server.script("GET", "/close", json::array({{{"action", "close"}}}));
  curl_transport t(ctx.get_executor());
  std::future<int> f = asio::co_spawn(ctx, status_of(&t, request("GET", "/close")), asio::use_future);
  run_until_out_of_work();
  ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
  try {
    f.get();
    ADD_FAILURE() << "no exception";
  } catch (const jobpoll::system_error& e) {
    EXPECT_EQ(e.code(), curl_code(CURLE_GOT_NOTHING));
  }
}

TEST_F(curl_transport_test, TheCompletionIsNeverInvokedInsideAsyncRequest) {
  curl_transport t(ctx.get_executor());
  bool called = false;
  http_request r = request("GET", "/v1/jobs/x");
  r.timeout = 0ns;  // completes without any I/O
  t.async_request(std::move(r), [&](jobpoll::error_code, http_response) { called = true; });
  EXPECT_FALSE(called);
  run_until([&] { return called; });
}

// --- bad input ----------------------------------------------------------------------

template <class F>
std::string thrown_message(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

TEST_F(curl_transport_test, RequestsThatCannotBeSentAsGivenThrow) {
  curl_transport t(ctx.get_executor());
  auto send_now = [&](http_request r) { t.async_request(std::move(r), [](jobpoll::error_code, http_response) {}); };

  http_request bad_method = request("GE T", "/");
  EXPECT_EQ(thrown_message([&] { send_now(bad_method); }),
            "jobpoll::curl_transport: the method must be an HTTP token (letters, digits, !#$%&'*+-.^_`|~), "
            "got \"GE T\"");
  http_request bad_name = request("GET", "/");
  bad_name.headers.add("X Bad", "1");
  EXPECT_EQ(thrown_message([&] { send_now(bad_name); }),
            "jobpoll::curl_transport: a header name must be an HTTP token (letters, digits, !#$%&'*+-.^_`|~), "
            "got \"X Bad\"");
  http_request split = request("GET", "/");
  split.headers.add("X-Ok", "1\r\nX-Injected: 2");
  EXPECT_EQ(thrown_message([&] { send_now(split); }),
            "jobpoll::curl_transport: the value of header \"X-Ok\" must not contain CR, LF or NUL, "
            "got \"1\\x0d\\x0aX-Injected: 2\"");
  http_request head = request("HEAD", "/", "body");
  EXPECT_EQ(thrown_message([&] { send_now(head); }),
            "jobpoll::curl_transport: a HEAD request cannot carry a body, got a body of 4 bytes");
  EXPECT_EQ(t.in_flight(), 0u);
}

TEST_F(curl_transport_test, BadOptionsThrowNamingTheField) {
  auto make = [&](curl_options o) { curl_transport t(ctx.get_executor(), std::move(o)); };
  curl_options zero_timeout;
  zero_timeout.default_timeout = 0ms;
  EXPECT_EQ(thrown_message([&] { make(zero_timeout); }),
            "jobpoll::curl_options: default_timeout must be positive, got 0ns");
  curl_options negative_connect;
  negative_connect.connect_timeout = -1ms;
  EXPECT_EQ(thrown_message([&] { make(negative_connect); }),
            "jobpoll::curl_options: connect_timeout must be positive, got -1000000ns");
  curl_options negative_hosts;
  negative_hosts.max_connections_per_host = -2;
  EXPECT_EQ(thrown_message([&] { make(negative_hosts); }),
            "jobpoll::curl_options: max_connections_per_host must be 0 (no limit) or positive, got -2");
  curl_options no_streams;
  no_streams.max_concurrent_streams = 0;
  EXPECT_EQ(thrown_message([&] { make(no_streams); }),
            "jobpoll::curl_options: max_concurrent_streams must be positive (at most 2^31 - 1), got 0");
  curl_options no_body;
  no_body.max_response_bytes = 0;
  EXPECT_EQ(thrown_message([&] { make(no_body); }), "jobpoll::curl_options: max_response_bytes must be positive, got 0");
  curl_options split_agent;
  split_agent.user_agent = "a\nb";
  EXPECT_EQ(thrown_message([&] { make(split_agent); }),
            "jobpoll::curl_options: user_agent must not contain CR, LF or NUL, got \"a\\x0ab\"");
}

// --- the error category ---------------------------------------------------------

TEST(curl_category, NamesCodesAndMapsThemToConditions) {
  EXPECT_EQ(curl_category().name(), std::string("curl"));
  EXPECT_EQ(curl_code(CURLE_COULDNT_CONNECT).message(), curl_easy_strerror(CURLE_COULDNT_CONNECT));
  EXPECT_EQ(curl_code(CURLE_COULDNT_CONNECT), std::errc::connection_refused);
  for (CURLcode c : {CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_HTTP2_STREAM}) {
    EXPECT_EQ(curl_code(c), std::errc::connection_reset) << c;
    EXPECT_TRUE(jobpoll::is_transient_error(curl_code(c))) << c;
  }
  EXPECT_EQ(curl_code(CURLE_OPERATION_TIMEDOUT), std::errc::timed_out);
  EXPECT_EQ(curl_code(CURLE_URL_MALFORMAT), std::errc::invalid_argument);
  EXPECT_EQ(curl_code(CURLE_UNSUPPORTED_PROTOCOL), std::errc::invalid_argument);
  EXPECT_EQ(curl_code(CURLE_PEER_FAILED_VERIFICATION), std::errc::permission_denied);
  EXPECT_EQ(curl_code(CURLE_SSL_CONNECT_ERROR), std::errc::protocol_error);
  EXPECT_EQ(curl_code(CURLE_FILESIZE_EXCEEDED), std::errc::message_size);
  // Not retried: a DNS typo, TLS failures, malformed requests.
  for (CURLcode c : {CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_PEER_FAILED_VERIFICATION,
                     CURLE_SSL_CONNECT_ERROR, CURLE_SSL_CACERT_BADFILE, CURLE_URL_MALFORMAT}) {
    EXPECT_FALSE(jobpoll::is_transient_error(curl_code(c))) << c;
  }
  EXPECT_EQ(curl_code(CURLE_COULDNT_RESOLVE_HOST).default_error_condition(),
            std::error_condition(CURLE_COULDNT_RESOLVE_HOST, curl_category()));
}

}  // namespace
