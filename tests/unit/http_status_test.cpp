// HTTP-status classification is a plain function of a response: its header
// comes first and alone, and must pull in neither Asio nor a JSON library.
#include "jobpoll/http_status.hpp"

#if defined(ASIO_VERSION)
#error "http_status.hpp must not include Asio"
#endif
#if defined(NLOHMANN_JSON_VERSION_MAJOR)
#error "http_status.hpp must not include nlohmann::json"
#endif

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <system_error>

namespace {

using namespace std::chrono;
using namespace std::chrono_literals;
using jobpoll::errc;
using jobpoll::http_response;
using jobpoll::job_state;
using jobpoll::poll_status;
using jobpoll::request_role;

constexpr request_role all_roles[] = {request_role::submit, request_role::poll, request_role::fetch,
                                      request_role::cancel};

/// 1994-11-06 08:49:00 UTC: 37 s before the date in RFC 9110's examples.
const system_clock::time_point now = sys_days{1994y / November / 6} + 8h + 49min;

std::optional<poll_status> classify(const http_response& response, request_role role) {
  return jobpoll::classify_http_status(response, role, now);
}

std::string role_name(request_role role) {
  switch (role) {
    case request_role::submit: return "submit";
    case request_role::poll: return "poll";
    case request_role::fetch: return "fetch";
    case request_role::cancel: return "cancel";
  }
  return "?";
}

void expect_status(const std::optional<poll_status>& status, job_state state, jobpoll::error_code error,
                   const std::string& detail, std::optional<nanoseconds> retry_after = std::nullopt) {
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->state, state);
  EXPECT_EQ(status->error, error);
  EXPECT_EQ(status->detail, detail);
  EXPECT_EQ(status->retry_after, retry_after);
  EXPECT_EQ(status->progress, std::nullopt);
}

// --- classes of status ---------------------------------------------------------------

TEST(HttpStatusTest, TwoHundredsAreLeftToTheBody) {
  for (const request_role role : all_roles) {
    for (const int code : {200, 201, 202, 204, 299}) {
      EXPECT_EQ(classify({code, {{"Retry-After", "5"}}, "{}"}, role), std::nullopt) << code << ' ' << role_name(role);
    }
  }
}

TEST(HttpStatusTest, TooManyRequestsIsTransientForEveryRole) {
  for (const request_role role : all_roles) {
    SCOPED_TRACE(role_name(role));
    expect_status(classify({429, {}, R"({"error":"slow down"})"}, role), job_state::transient_error,
                  errc::rate_limited, R"(HTTP 429, body: {"error":"slow down"})");
  }
}

TEST(HttpStatusTest, EveryFiveHundredIsTransientForEveryRole) {
  for (const request_role role : all_roles) {
    for (const int code : {500, 501, 502, 503, 504, 520, 599}) {
      SCOPED_TRACE(role_name(role) + " " + std::to_string(code));
      expect_status(classify({code, {}, ""}, role), job_state::transient_error, errc::server_error,
                    "HTTP " + std::to_string(code) + ", empty body");
    }
  }
}

TEST(HttpStatusTest, NotFoundAndGoneOnAPollMeanTheHandleExpired) {
  expect_status(classify({404, {}, R"({"error":"unknown hash"})"}, request_role::poll), job_state::permanent_error,
                errc::expired_handle, R"(HTTP 404, body: {"error":"unknown hash"})");
  expect_status(classify({410, {}, ""}, request_role::poll), job_state::permanent_error, errc::expired_handle,
                "HTTP 410, empty body");
}

TEST(HttpStatusTest, NotFoundAndGoneForTheOtherRolesAreHttpErrors) {
  for (const request_role role : {request_role::submit, request_role::fetch, request_role::cancel}) {
    for (const int code : {404, 410}) {
      SCOPED_TRACE(role_name(role) + " " + std::to_string(code));
      expect_status(classify({code, {}, "no such route"}, role), job_state::permanent_error, errc::http_error,
                    "HTTP " + std::to_string(code) + ", body: no such route");
    }
  }
}

TEST(HttpStatusTest, OtherFourHundredsArePermanentForEveryRole) {
  for (const request_role role : all_roles) {
    for (const int code : {400, 401, 403, 405, 408, 409, 422, 451, 499}) {
      SCOPED_TRACE(role_name(role) + " " + std::to_string(code));
      // A Retry-After on a permanent answer changes nothing.
      expect_status(classify({code, {{"Retry-After", "5"}}, R"({"detail":"bad"})"}, role),
                    job_state::permanent_error, errc::http_error,
                    "HTTP " + std::to_string(code) + R"(, body: {"detail":"bad"})");
    }
  }
}

TEST(HttpStatusTest, RedirectsAreNotFollowed) {
  for (const request_role role : all_roles) {
    SCOPED_TRACE(role_name(role));
    expect_status(classify({302, {{"Location", "https://login.example/sso"}}, ""}, role), job_state::permanent_error,
                  errc::http_error,
                  "unexpected HTTP 302 (redirects are not followed; Location: https://login.example/sso), empty body");
    expect_status(classify({301, {}, "<a>moved</a>"}, role), job_state::permanent_error, errc::http_error,
                  "unexpected HTTP 301 (redirects are not followed), body: <a>moved</a>");
    expect_status(classify({304, {}, ""}, role), job_state::permanent_error, errc::http_error,
                  "unexpected HTTP 304 (redirects are not followed), empty body");
  }
}

TEST(HttpStatusTest, InformationalAndOutOfRangeStatusesArePermanent) {
  for (const request_role role : all_roles) {
    SCOPED_TRACE(role_name(role));
    expect_status(classify({101, {}, ""}, role), job_state::permanent_error, errc::http_error,
                  "unexpected HTTP 101 (informational, not a final answer), empty body");
    expect_status(classify({0, {}, ""}, role), job_state::permanent_error, errc::http_error,
                  "invalid HTTP 0 (HTTP statuses are 100 to 599), empty body");
    expect_status(classify({600, {}, "x"}, role), job_state::permanent_error, errc::http_error,
                  "invalid HTTP 600 (HTTP statuses are 100 to 599), body: x");
  }
}

TEST(HttpStatusTest, TheDetailShowsTheStartOfALongOrBinaryBody) {
  const std::string page = "<html>\n<body>" + std::string(400, 'e') + "</body></html>";
  const auto status = classify({502, {}, page}, request_role::poll);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->detail, "HTTP 502, body: " + jobpoll::body_preview(page));
  EXPECT_TRUE(status->detail.starts_with("HTTP 502, body: <html>\\x0a<body>eee")) << status->detail;
  EXPECT_TRUE(status->detail.ends_with("... (427 bytes)")) << status->detail;
}

// --- Retry-After ---------------------------------------------------------------------

TEST(HttpStatusRetryAfterTest, SecondsSetTheWaitOfTransientAnswers) {
  expect_status(classify({429, {{"Retry-After", "120"}}, ""}, request_role::poll), job_state::transient_error,
                errc::rate_limited, "HTTP 429, empty body", 120s);
  expect_status(classify({503, {{"retry-after", " 7 "}}, "busy"}, request_role::submit), job_state::transient_error,
                errc::server_error, "HTTP 503, body: busy", 7s);
  expect_status(classify({503, {{"Retry-After", "0"}}, ""}, request_role::fetch), job_state::transient_error,
                errc::server_error, "HTTP 503, empty body", 0s);
}

TEST(HttpStatusRetryAfterTest, AnHttpDateIsMeasuredFromNow) {
  expect_status(classify({503, {{"Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT"}}, ""}, request_role::poll),
                job_state::transient_error, errc::server_error, "HTTP 503, empty body", 37s);
  expect_status(classify({429, {{"Retry-After", "Sunday, 06-Nov-94 08:50:00 GMT"}}, ""}, request_role::poll),
                job_state::transient_error, errc::rate_limited, "HTTP 429, empty body", 60s);
  // A date in the past: retry at once.
  expect_status(classify({503, {{"Retry-After", "Sun, 06 Nov 1994 08:00:00 GMT"}}, ""}, request_role::poll),
                job_state::transient_error, errc::server_error, "HTTP 503, empty body", 0s);
}

TEST(HttpStatusRetryAfterTest, AnUnparsableValueIsIgnoredAndMentioned) {
  expect_status(classify({503, {{"Retry-After", "soon"}}, "busy"}, request_role::poll), job_state::transient_error,
                errc::server_error,
                "HTTP 503 (Retry-After \"soon\" ignored: neither seconds nor an HTTP-date), body: busy");
  expect_status(classify({429, {{"Retry-After", "1.5"}}, ""}, request_role::submit), job_state::transient_error,
                errc::rate_limited, "HTTP 429 (Retry-After \"1.5\" ignored: neither seconds nor an HTTP-date), empty body");
  expect_status(classify({503, {{"Retry-After", "Sun, 31 Feb 1994 08:49:37 GMT"}}, ""}, request_role::poll),
                job_state::transient_error, errc::server_error,
                "HTTP 503 (Retry-After \"Sun, 31 Feb 1994 08:49:37 GMT\" ignored: neither seconds nor an HTTP-date), "
                "empty body");
  expect_status(classify({503, {{"Retry-After", "5\n"}}, ""}, request_role::poll), job_state::transient_error,
                errc::server_error,
                "HTTP 503 (Retry-After \"5\\x0a\" ignored: neither seconds nor an HTTP-date), empty body");
}

TEST(HttpStatusRetryAfterTest, TheFirstHeaderCounts) {
  expect_status(classify({503, {{"Retry-After", "3"}, {"Retry-After", "9"}}, ""}, request_role::poll),
                job_state::transient_error, errc::server_error, "HTTP 503, empty body", 3s);
}

TEST(RetryAfterHintTest, ReadsTheHeaderOfAnyAnswer) {
  EXPECT_EQ(jobpoll::retry_after_hint({202, {{"Retry-After", "5"}}, R"({"status":"working"})"}, now), 5s);
  EXPECT_EQ(jobpoll::retry_after_hint({202, {{"RETRY-AFTER", "\t5 "}}, ""}, now), 5s);
  EXPECT_EQ(jobpoll::retry_after_hint({200, {{"Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT"}}, ""}, now), 37s);
  EXPECT_EQ(jobpoll::retry_after_hint({503, {{"Retry-After", "2"}}, ""}, now), 2s);
  EXPECT_EQ(jobpoll::retry_after_hint({202, {{"Retry-After", "99999999999999999999"}}, ""}, now),
            duration_cast<nanoseconds>(jobpoll::max_retry_after));
}

TEST(RetryAfterHintTest, NoneWithoutAParsableHeader) {
  EXPECT_EQ(jobpoll::retry_after_hint({202, {}, ""}, now), std::nullopt);
  EXPECT_EQ(jobpoll::retry_after_hint({202, {{"Location", "/jobs/1"}}, ""}, now), std::nullopt);
  EXPECT_EQ(jobpoll::retry_after_hint({202, {{"Retry-After", "later"}}, ""}, now), std::nullopt);
  EXPECT_EQ(jobpoll::retry_after_hint({202, {{"Retry-After", ""}}, ""}, now), std::nullopt);
  EXPECT_EQ(jobpoll::retry_after_hint({202, {{"Retry-After", "-1"}}, ""}, now), std::nullopt);
}

}  // namespace
