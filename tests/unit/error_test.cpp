// The jobpoll error category and the messages users read.

#include <jobpoll/asio.hpp>
#include <jobpoll/error.hpp>
#include <jobpoll/poll_result.hpp>
#include <jobpoll/poll_until.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

using namespace std::chrono_literals;
using jobpoll::errc;
using ::testing::HasSubstr;

namespace {

TEST(ErrorCategory, NameAndMessages) {
  EXPECT_STREQ(jobpoll::error_category().name(), "jobpoll");
  std::error_code ec = errc::timeout;
  EXPECT_EQ(&ec.category(), &jobpoll::error_category());
  EXPECT_EQ(ec.message(), "deadline passed before the job finished");
  for (int v = static_cast<int>(errc::timeout); v <= static_cast<int>(errc::invalid_checkpoint); ++v) {
    std::error_code e(v, jobpoll::error_category());
    EXPECT_THAT(e.message(), ::testing::Not(HasSubstr("unknown jobpoll error"))) << v;
  }
  EXPECT_EQ(std::error_code(999, jobpoll::error_category()).message(), "unknown jobpoll error 999");
}

TEST(ErrorCategory, GenericConditions) {
  EXPECT_EQ(std::error_code(errc::timeout), std::errc::timed_out);
  EXPECT_EQ(std::error_code(errc::attempt_timeout), std::errc::timed_out);
  EXPECT_EQ(std::error_code(errc::invalid_argument), std::errc::invalid_argument);
  EXPECT_NE(std::error_code(errc::job_failed), std::errc::timed_out);
}

// jobpoll::error_code is the backend's: std::error_code, or with Boost.Asio
// boost::system::error_code, which holds jobpoll's std::error_code as it is.
// Either way the code reads and compares the same.
TEST(ErrorCategory, TheBackendsErrorCodeHoldsJobpollsCodesUnchanged) {
  const jobpoll::error_code ec = errc::not_sent;
  EXPECT_EQ(ec, errc::not_sent);
  EXPECT_NE(ec, errc::timeout);
  EXPECT_EQ(ec.message(), std::error_code(errc::not_sent).message());
  EXPECT_EQ(static_cast<std::error_code>(ec), std::error_code(errc::not_sent));
  EXPECT_EQ(&static_cast<std::error_code>(ec).category(), &jobpoll::error_category());
  const jobpoll::error_code timeout{std::error_code(errc::timeout)};
  EXPECT_EQ(timeout, std::errc::timed_out);  // the category's condition survives
  const jobpoll::error_code aborted = asio::error::operation_aborted;
  EXPECT_EQ(jobpoll::detail::asio_error(asio::error::operation_aborted), static_cast<std::error_code>(aborted));
  EXPECT_TRUE(jobpoll::error_is(aborted, std::errc::operation_canceled));
}

TEST(PollError, CarriesCodeMessageStatusAndResponse) {
  jobpoll::poll_result<std::string> r;
  r.error = errc::job_failed;
  r.response = "{\"status\":\"fail\",\"reason\":\"disk full\"}";
  r.status = jobpoll::poll_status::failed("status \"fail\"");
  r.stats.attempts = 3;
  r.stats.elapsed = 4s;
  r.message = jobpoll::detail::describe_end(r.error, r.status, r.stats);
  EXPECT_EQ(r.message, "job failed after 3 attempts in 4.000s; last: failed (status \"fail\")");
  jobpoll::basic_poll_error<std::string> e(r);
  const jobpoll::system_error& base = e;  // what the backend's use_awaitable throws
  EXPECT_EQ(base.code(), errc::job_failed);
  EXPECT_STREQ(e.what(), r.message.c_str());
  EXPECT_EQ(e.attempts(), 3u);
  EXPECT_THAT(*e.last_response(), HasSubstr("disk full"));
}

TEST(PollError, DescribesTheTransientReasonBehindRetriesExhausted) {
  jobpoll::poll_stats stats;
  stats.attempts = 1;
  auto m = jobpoll::detail::describe_end(errc::retries_exhausted,
                                         jobpoll::poll_status::transient(errc::server_error, "HTTP 503: busy"), stats);
  EXPECT_EQ(m, "too many consecutive transient failures after 1 attempt in 0.000s; last: transient_error "
               "[transient server error] (HTTP 503: busy)");
}

}  // namespace

// Asio 1.22 does not map its own system errors to std::errc conditions
// (ASIO_HAS_STD_ERROR_CODE is unset on Linux), so a real socket's reset
// would not be retried if the core compared codes naively.
TEST(TransientErrors, AsioSystemErrorsCountAsTheirErrnoConditions) {
  EXPECT_TRUE(jobpoll::error_is(asio::error::connection_reset, std::errc::connection_reset));
  EXPECT_TRUE(jobpoll::error_is(std::make_error_code(std::errc::connection_refused), std::errc::connection_refused));
  EXPECT_FALSE(jobpoll::error_is(asio::error::connection_reset, std::errc::connection_refused));
  for (jobpoll::error_code ec : {asio::error::connection_reset, asio::error::connection_refused, asio::error::timed_out,
                                 asio::error::broken_pipe, asio::error::network_unreachable, asio::error::host_unreachable}) {
    EXPECT_TRUE(jobpoll::is_transient_error(ec)) << ec.message();
  }
  EXPECT_FALSE(jobpoll::is_transient_error(asio::error::access_denied));
  EXPECT_FALSE(jobpoll::is_transient_error(asio::error::operation_not_supported));
}
