// poll_until on the manual clock: the seed's load-job scenarios and every
// rule of behaviour of the loop itself.

#include <jobpoll/poll_until.hpp>
#include <jobpoll/sliding_window_limiter.hpp>

#include <type_traits>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "poll_fixture.hpp"

using namespace std::chrono_literals;
using jobpoll::errc;
using jobpoll::job_state;
using jobpoll::wait_reason;
using namespace jobpoll_test;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {

// Every loop test runs through both shells over the one machine: the
// composed operation (async_poll_until) and the coroutine (try_poll_until).
class PollUntil : public jobpoll_test::poll_fixture, public ::testing::WithParamInterface<shell> {
 protected:
  PollUntil() { use = GetParam(); }
};

// ---- The seed's load_job() scenarios (submit, poll every 2 s, 300 s) ----

// A fake of the seed API: POST load-job returns a hash, get-job-data polls it.
struct fake_report_api {
  std::vector<std::string> statuses;
  int submitted = 0;
  std::vector<std::string> polled_hashes;

  asio::awaitable<std::string> load_job() {
    ++submitted;
    co_return "1aabac6d068eef6a7bad3fdf50a05cc8";
  }
  asio::awaitable<response> get_job_data(std::string hash) {
    polled_hashes.push_back(hash);
    const auto i = std::min(polled_hashes.size(), statuses.size()) - 1;
    co_return response{statuses[i], {}, -1, static_cast<int>(polled_hashes.size())};
  }
};

TEST_P(PollUntil, SeedSubmitThenPollWithTheReturnedHash) {
  fake_report_api api{{"working", "pass"}, 0, {}};
  std::optional<response> out;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        const std::string hash = co_await api.load_job();
        out = co_await jobpoll::poll_until([&] { return api.get_job_data(hash); }, seed_status{}, options{});
      },
      asio::detached);
  manual_clock::run(ctx);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, "pass");
  EXPECT_EQ(api.submitted, 1);
  EXPECT_THAT(api.polled_hashes, ElementsAre("1aabac6d068eef6a7bad3fdf50a05cc8", "1aabac6d068eef6a7bad3fdf50a05cc8"));
}

TEST_P(PollUntil, SeedImmediatePassPollsOnceAndReturnsAtOnce) {
  scripted_job job({{"pass"}});
  auto r = run(job, exact_options());
  ASSERT_FALSE(r.error) << r.message;
  EXPECT_EQ(r.response->status, "pass");
  EXPECT_EQ(job.polls(), 1u);
  EXPECT_EQ(r.stats.elapsed, 0s);
  EXPECT_TRUE(log.waits.empty());
}

TEST_P(PollUntil, SeedWorkingThenPassWaitsTheDefaultTwoSeconds) {
  scripted_job job({{"working"}, {"working"}, {"pass"}});
  auto r = run(job, options{});
  ASSERT_FALSE(r.error) << r.message;
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 2.0, 4.0));
  EXPECT_EQ(r.stats.attempts, 3u);
  EXPECT_EQ(r.stats.pending_polls, 2u);
  EXPECT_EQ(r.stats.waited, 4s);
  EXPECT_EQ(r.stats.elapsed, 4s);
}

TEST_P(PollUntil, SeedImmediateFailEndsWithJobFailedAndItsPayload) {
  scripted_job job({{"fail"}});
  auto r = run(job, exact_options());
  EXPECT_EQ(r.error, errc::job_failed);
  ASSERT_TRUE(r.response);
  EXPECT_EQ(r.response->status, "fail");
  EXPECT_EQ(job.polls(), 1u);
  EXPECT_THAT(r.message, HasSubstr("job failed after 1 attempt"));
  EXPECT_THAT(r.message, HasSubstr("status \"fail\""));
}

TEST_P(PollUntil, SeedWorkingThenFail) {
  scripted_job job({{"working"}, {"working"}, {"fail"}});
  auto r = run(job, exact_options());
  EXPECT_EQ(r.error, errc::job_failed);
  EXPECT_EQ(r.response->id, 3);
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 2.0, 4.0));
}

TEST_P(PollUntil, SeedTimeoutAfterOnePollWhenThePollItselfOutlastsTheDeadline) {
  scripted_job job({{"working", {}, 5s}});
  auto o = exact_options();
  o.deadline = 3s;
  auto r = run(job, o);
  EXPECT_EQ(r.error, errc::timeout);
  EXPECT_EQ(job.polls(), 1u);
  EXPECT_EQ(r.stats.elapsed, 5s);
  EXPECT_EQ(r.response->status, "working");
}

TEST_P(PollUntil, SeedTimeoutAfterSeveralPolls) {
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.deadline = 10s;
  auto r = run(job, o);
  EXPECT_EQ(r.error, errc::timeout);
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 2.0, 4.0, 6.0, 8.0, 10.0));
  EXPECT_EQ(r.stats.elapsed, 10s);
  EXPECT_THAT(r.message, HasSubstr("deadline passed before the job finished after 6 attempts in 10.000s"));
  EXPECT_THAT(r.message, HasSubstr("last: pending (status \"working\")"));
}

TEST_P(PollUntil, SeedZeroTimeoutStillPollsOnce) {
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.deadline = 0s;
  auto r = run(job, o);
  EXPECT_EQ(r.error, errc::timeout);
  EXPECT_EQ(job.polls(), 1u);
  EXPECT_EQ(r.stats.elapsed, 0s);
}

TEST_P(PollUntil, SeedZeroTimeoutReturnsAnImmediatePass) {
  scripted_job job({{"pass"}});
  auto o = exact_options();
  o.deadline = 0s;
  EXPECT_FALSE(run(job, o).error);
}

TEST_P(PollUntil, SeedCustomIntervalAndTimeout) {
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.interval = jobpoll::fixed_interval{500ms};
  o.deadline = 2s;
  auto r = run(job, o);
  EXPECT_EQ(r.error, errc::timeout);
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 0.5, 1.0, 1.5, 2.0));
}

TEST_P(PollUntil, SeedDefaultsAreTwoSecondsAndThreeHundredSeconds) {
  scripted_job job({{"working"}});
  auto r = run(job, options{});
  EXPECT_EQ(r.error, errc::timeout);
  EXPECT_EQ(job.polls(), 151u);  // 0, 2, ..., 300
  EXPECT_EQ(r.stats.elapsed, 300s);
  EXPECT_EQ(job.record().calls.back(), 300s);
}

// ---- Rule 1: deadline ----

TEST_P(PollUntil, LastWaitIsClippedSoTheFinalPollLandsOnTheDeadline) {
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.deadline = 5s;
  auto r = run(job, o);
  EXPECT_EQ(r.error, errc::timeout);
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 2.0, 4.0, 5.0));
  ASSERT_EQ(log.waits.size(), 3u);
  EXPECT_FALSE(log.waits[1].clipped_by_deadline);
  EXPECT_TRUE(log.waits[2].clipped_by_deadline);
  EXPECT_EQ(log.waits[2].duration, 1s);
}

TEST_P(PollUntil, AbsoluteDeadline) {
  manual_clock::advance(100s);
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.deadline = manual_clock::now() + 3s;
  auto r = run(job, o);
  EXPECT_EQ(r.error, errc::timeout);
  EXPECT_THAT(job.call_seconds(), ElementsAre(100.0, 102.0, 103.0));
}

TEST_P(PollUntil, AbsoluteDeadlineInThePastStillPollsOnce) {
  manual_clock::advance(100s);
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.deadline = manual_clock::now() - 50s;
  EXPECT_EQ(run(job, o).error, errc::timeout);
  EXPECT_EQ(job.polls(), 1u);
}

TEST_P(PollUntil, NoDeadlinePollsUntilTerminal) {
  std::vector<step> script(500, step{"working"});
  script.push_back({"pass"});
  scripted_job job(script);
  auto o = exact_options();
  o.deadline = jobpoll::basic_deadline<manual_clock>::none();
  auto r = run(job, o);
  EXPECT_FALSE(r.error);
  EXPECT_EQ(job.polls(), 501u);
  EXPECT_EQ(r.stats.elapsed, 1000s);
}

TEST_P(PollUntil, InitialDelayComesBeforeTheFirstPollAndIsSeparateFromTheInterval) {
  scripted_job job({{"working"}, {"pass"}});
  auto o = exact_options();
  o.initial_delay = 7s;
  auto r = run(job, o);
  EXPECT_FALSE(r.error);
  EXPECT_THAT(job.call_seconds(), ElementsAre(7.0, 9.0));
  EXPECT_EQ(log.waits.front().reason, wait_reason::initial_delay);
}

TEST_P(PollUntil, InitialDelayLongerThanTheDeadlinePollsOnceAtTheDeadline) {
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.initial_delay = 60s;
  o.deadline = 10s;
  EXPECT_EQ(run(job, o).error, errc::timeout);
  EXPECT_THAT(job.call_seconds(), ElementsAre(10.0));
}

// ---- Rule 2: server hints ----

TEST_P(PollUntil, PendingHintReplacesTheInterval) {
  scripted_job job({{"working", 7s}, {"pass"}});
  auto r = run(job, exact_options());
  EXPECT_FALSE(r.error);
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 7.0));
  EXPECT_EQ(log.waits[0].reason, wait_reason::hint);
}

TEST_P(PollUntil, HintNeverGoesPastTheDeadline) {
  scripted_job job({{"working", 100s}});
  auto o = exact_options();
  o.deadline = 30s;
  EXPECT_EQ(run(job, o).error, errc::timeout);
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 30.0));
}

TEST_P(PollUntil, HintIsBoundedByCeilingAndFloor) {
  scripted_job job({{"working", 100s}, {"working", 0s}, {"pass"}});
  auto o = exact_options();
  o.hints = {.floor = 3s, .ceiling = 20s};
  EXPECT_FALSE(run(job, o).error);
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 20.0, 23.0));
}

TEST_P(PollUntil, RetryAfterOnATransientFailureReplacesTheBackoff) {
  scripted_job job({{"http-429", 12s}, {"pass"}});
  auto r = run(job, exact_options());
  EXPECT_FALSE(r.error);
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 12.0));
  EXPECT_EQ(r.stats.transient_failures, 1u);
}

// ---- Rule 3: transient vs permanent, retry budget ----

TEST_P(PollUntil, TransientFailuresUseTheBackoff) {
  scripted_job job({{"http-503"}, {"http-503"}, {"pass"}});
  auto o = exact_options();
  o.backoff = jobpoll::exponential_interval{1s, 2.0, 60s};
  auto r = run(job, o);
  EXPECT_FALSE(r.error);
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 1.0, 3.0));
  EXPECT_EQ(log.waits[0].reason, wait_reason::backoff);
}

TEST_P(PollUntil, RetryBudgetCountsConsecutiveTransientFailures) {
  scripted_job job({{"http-503"}});
  auto o = exact_options();
  o.max_retries = 2;
  auto r = run(job, o);
  EXPECT_EQ(r.error, errc::retries_exhausted);
  EXPECT_EQ(job.polls(), 3u);
  EXPECT_EQ(r.status.error, errc::server_error);
  EXPECT_THAT(r.message, HasSubstr("too many consecutive transient failures after 3 attempts"));
  EXPECT_THAT(r.message, HasSubstr("HTTP 503"));
}

TEST_P(PollUntil, RetryBudgetResetsAfterAGoodPoll) {
  scripted_job job({{"http-503"}, {"http-503"}, {"working"}, {"http-503"}, {"http-503"}, {"working"}, {"pass"}});
  auto o = exact_options();
  o.max_retries = 2;
  auto r = run(job, o);
  EXPECT_FALSE(r.error) << r.message;
  EXPECT_EQ(r.stats.transient_failures, 4u);
}

// The answer that ended the poll was good: no failure in a row is left for a
// resume from these stats to start with.
TEST_P(PollUntil, ATerminalAnswerLeavesNoConsecutiveFailures) {
  for (const char* last : {"pass", "fail"}) {
    scripted_job job({{"http-503"}, {"working"}, {"http-503"}, {last}});
    auto r = run(job, exact_options());
    EXPECT_EQ(r.stats.transient_failures, 2u) << last;
    EXPECT_EQ(r.stats.consecutive_failures, 0u) << last;
    EXPECT_EQ(r.stats.progress().consecutive_failures, 0u) << last;
  }
}

TEST_P(PollUntil, BackoffRestartsAfterAGoodPoll) {
  scripted_job job({{"http-503"}, {"http-503"}, {"working"}, {"http-503"}, {"pass"}});
  auto o = exact_options();
  o.backoff = jobpoll::exponential_interval{1s, 2.0, 60s};
  EXPECT_FALSE(run(job, o).error);
  // 1 s, 2 s backoff, 2 s interval, then the backoff starts again at 1 s.
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 1.0, 3.0, 5.0, 6.0));
}

TEST_P(PollUntil, ZeroRetriesEndsOnTheFirstTransientFailure) {
  scripted_job job({{"http-503"}});
  auto o = exact_options();
  o.max_retries = 0;
  EXPECT_EQ(run(job, o).error, errc::retries_exhausted);
  EXPECT_EQ(job.polls(), 1u);
}

TEST_P(PollUntil, PermanentFailureEndsAtOnceWithItsCode) {
  scripted_job job({{"working"}, {"http-400"}});
  auto r = run(job, exact_options());
  EXPECT_EQ(r.error, errc::http_error);
  EXPECT_EQ(job.polls(), 2u);
  EXPECT_THAT(r.message, HasSubstr("HTTP 400: bad hash"));
}

TEST_P(PollUntil, UnknownStatusValueEndsAtOnceSayingWhatWasReceived) {
  scripted_job job({{"wroking"}});
  auto r = run(job, exact_options());
  EXPECT_EQ(r.error, errc::unknown_status);
  EXPECT_EQ(job.polls(), 1u);
  EXPECT_THAT(r.message, HasSubstr("status \"wroking\""));
}

TEST_P(PollUntil, NetworkErrorsThrownByThePollAreTransient) {
  scripted_job job({{"", {}, 0s, std::make_error_code(std::errc::connection_reset)}, {"pass"}});
  auto r = run(job, exact_options());
  EXPECT_FALSE(r.error) << r.message;
  EXPECT_EQ(r.stats.transient_failures, 1u);
  EXPECT_EQ(log.polls[0].second.state, job_state::transient_error);
}

TEST_P(PollUntil, OtherErrorsThrownByThePollArePermanent) {
  scripted_job job({{"", {}, 0s, std::make_error_code(std::errc::permission_denied)}});
  auto r = run(job, exact_options());
  EXPECT_EQ(r.error, std::errc::permission_denied);
  EXPECT_THAT(r.message, HasSubstr("scripted poll failure"));
}

TEST_P(PollUntil, StatusPolicyCanClassifyErrorsItself) {
  struct strict : seed_status {
    jobpoll::poll_status classify_error(const jobpoll::error_code& ec) const {
      return jobpoll::poll_status::permanent(ec, "strict: " + ec.message());
    }
  };
  scripted_job job({{"", {}, 0s, std::make_error_code(std::errc::connection_reset)}});
  auto r = run_with(job, strict{}, exact_options());
  EXPECT_EQ(r.error, std::errc::connection_reset);
  EXPECT_THAT(r.message, HasSubstr("strict:"));
}

TEST_P(PollUntil, NonSystemExceptionFromThePollIsAPermanentPollException) {
  auto poll = []() -> asio::awaitable<response> {
    throw std::runtime_error("parser exploded");
    co_return response{};
  };
  std::optional<jobpoll::poll_result<response>> out;
  jobpoll::async_poll_until(ctx.get_executor(), poll, seed_status{}, exact_options(),
                            [&](jobpoll::error_code, jobpoll::poll_result<response> r) { out = std::move(r); });
  manual_clock::run(ctx);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error, errc::poll_exception);
  EXPECT_FALSE(out->response);
  EXPECT_THAT(out->message, HasSubstr("parser exploded"));
}

TEST_P(PollUntil, ThrowingStatusPolicyIsAPermanentErrorNamingIt) {
  auto policy = [](const response&) -> jobpoll::poll_status { throw std::out_of_range("no field /status"); };
  scripted_job job({{"pass"}});
  auto r = run_with(job, policy, exact_options());
  EXPECT_EQ(r.error, errc::poll_exception);
  EXPECT_THAT(r.message, HasSubstr("status policy threw: no field /status"));
  ASSERT_TRUE(r.response);  // what the server said is kept
}

// ---- Per-attempt timeout ----

// For both kinds of poll operation: an awaitable is cancelled through its
// coroutine, an asynchronous operation through its handler's slot.
TEST_P(PollUntil, SlowAttemptIsCancelledAndCountsAsTransient) {
  auto check = [&](auto job) {
    manual_clock::reset();
    log = {};
    auto o = exact_options();
    o.attempt_timeout = 3s;
    auto r = run(job, o);
    EXPECT_FALSE(r.error) << r.message;
    EXPECT_EQ(job.record().cancelled, 1);
    EXPECT_EQ(log.polls[0].second.error, errc::attempt_timeout);
    EXPECT_THAT(log.polls[0].second.detail, HasSubstr("no answer within 3.000s"));
    // timed out at 3 s, backoff 1 s, second poll at 4 s.
    EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 4.0));
  };
  check(scripted_job({{"working", {}, 10s}, {"pass"}}));
  check(scripted_async_job({{"working", {}, 10s}, {"pass"}}));
}

// A poll operation may be an Asio asynchronous operation (a callable taking
// a completion token, completing with (error_code, Response)) instead of a
// callable returning an awaitable.
static_assert(jobpoll::poll_operation<scripted_async_job>);
static_assert(std::is_same_v<jobpoll::poll_response_t<scripted_async_job>, response>);
static_assert(!jobpoll::poll_operation<int>);

TEST_P(PollUntil, AnAsynchronousOperationIsPolledUntilTerminal) {
  scripted_async_job job({{"working"}, {"working"}, {"pass"}});
  auto r = run(job, exact_options());
  EXPECT_FALSE(r.error) << r.message;
  ASSERT_TRUE(r.response);
  EXPECT_EQ(r.response->id, 3);
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 2.0, 4.0));
  EXPECT_EQ(r.stats.attempts, 3u);
}

TEST_P(PollUntil, AnAsynchronousOperationsErrorCodeIsAFailedAttempt) {
  scripted_async_job job({{"", {}, 0s, std::make_error_code(std::errc::connection_reset)}, {"pass"}});
  auto r = run(job, exact_options());
  EXPECT_FALSE(r.error) << r.message;
  ASSERT_EQ(log.polls.size(), 2u);
  EXPECT_EQ(log.polls[0].second.state, job_state::transient_error);
  EXPECT_TRUE(jobpoll::error_is(log.polls[0].second.error, std::errc::connection_reset));
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 1.0));

  scripted_async_job denied({{"", {}, 0s, std::make_error_code(std::errc::permission_denied)}});
  auto end = run(denied, exact_options());
  EXPECT_EQ(end.error, std::errc::permission_denied);
  EXPECT_EQ(denied.polls(), 1u);
}

TEST_P(PollUntil, FastAttemptUnderATimeoutIsUnaffected) {
  scripted_job job({{"working", {}, 1s}, {"pass", {}, 1s}});
  auto o = exact_options();
  o.attempt_timeout = 3s;
  auto r = run(job, o);
  EXPECT_FALSE(r.error);
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 3.0));
  EXPECT_EQ(r.stats.elapsed, 4s);
}

TEST_P(PollUntil, ErrorThrownQuicklyUnderAnAttemptTimeoutIsReportedAsItself) {
  scripted_job job({{"", {}, 0s, std::make_error_code(std::errc::permission_denied)}});
  auto o = exact_options();
  o.attempt_timeout = 30s;
  auto r = run(job, o);
  EXPECT_EQ(r.error, std::errc::permission_denied);
  EXPECT_EQ(r.stats.elapsed, 0s);
}

TEST_P(PollUntil, RepeatedAttemptTimeoutsExhaustTheRetryBudget) {
  scripted_job job({{"working", {}, 1h}});
  auto o = exact_options();
  o.attempt_timeout = 2s;
  o.max_retries = 1;
  auto r = run(job, o);
  EXPECT_EQ(r.error, errc::retries_exhausted);
  EXPECT_EQ(r.status.error, errc::attempt_timeout);
  EXPECT_EQ(job.record().cancelled, 2);
}

// ---- Bad arguments ----

TEST_P(PollUntil, InvalidOptionsFailWithoutPollingAndNameTheField) {
  scripted_job job({{"pass"}});
  auto o = exact_options();
  o.attempt_timeout = 0s;
  auto r = run(job, o);
  EXPECT_EQ(r.error, errc::invalid_argument);
  EXPECT_EQ(job.polls(), 0u);
  EXPECT_EQ(r.message, "invalid poll options: attempt_timeout must be positive, got 0.000s");
}

TEST_P(PollUntil, EachInvalidOptionIsReported) {
  auto reason = [](auto change) {
    options o;
    change(o);
    return o.invalid_reason().value_or("valid");
  };
  EXPECT_EQ(reason([](options& o) { o.deadline = -1s; }), "deadline must not be negative, got -1.000s");
  EXPECT_EQ(reason([](options& o) { o.initial_delay = -2s; }), "initial_delay must not be negative, got -2.000s");
  EXPECT_EQ(reason([](options& o) { o.hints.floor = -1s; }), "hints.floor must not be negative, got -1.000s");
  EXPECT_EQ(reason([](options& o) { o.hints = {.floor = 5s, .ceiling = 1s}; }),
            "hints.ceiling (1.000s) must not be below hints.floor (5.000s)");
  EXPECT_EQ(reason([](options&) {}), "valid");
}

// ---- Rule 6 and observability ----

TEST_P(PollUntil, HooksSeeEveryPollWaitAndTheEnd) {
  scripted_job job({{"working", {}, 0s, {}, 0.25}, {"http-503"}, {"working", 5s, 0s, {}, 0.5}, {"pass"}});
  auto r = run(job, exact_options());
  ASSERT_FALSE(r.error);
  ASSERT_EQ(log.polls.size(), 4u);
  EXPECT_EQ(log.polls[0].first, 1u);
  EXPECT_EQ(log.polls[0].second.progress, 0.25);
  EXPECT_EQ(log.polls[1].second.state, job_state::transient_error);
  EXPECT_EQ(log.polls[2].second.progress, 0.5);
  EXPECT_EQ(log.polls[3].second.state, job_state::succeeded);
  ASSERT_EQ(log.waits.size(), 3u);
  EXPECT_EQ(log.waits[0].reason, wait_reason::interval);
  EXPECT_EQ(log.waits[0].duration, 2s);
  EXPECT_EQ(log.waits[1].reason, wait_reason::backoff);
  EXPECT_EQ(log.waits[1].duration, 1s);
  EXPECT_EQ(log.waits[2].reason, wait_reason::hint);
  EXPECT_EQ(log.waits[2].duration, 5s);
  EXPECT_EQ(log.ends, 1);
  EXPECT_EQ(r.stats.attempts, 4u);
  EXPECT_EQ(r.stats.pending_polls, 2u);
  EXPECT_EQ(r.stats.transient_failures, 1u);
  EXPECT_EQ(r.stats.waited, 8s);
  EXPECT_EQ(r.stats.limiter_waited, 0s);
  EXPECT_EQ(r.stats.elapsed, 8s);
}

TEST_P(PollUntil, AwaitableFormThrowsPollErrorWithTheLastResponse) {
  scripted_job job({{"working"}, {"fail"}});
  std::exception_ptr caught;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        try {
          co_await jobpoll::poll_until(job, seed_status{}, exact_options());
        } catch (...) {
          caught = std::current_exception();
        }
      },
      asio::detached);
  manual_clock::run(ctx);
  ASSERT_TRUE(caught);
  try {
    std::rethrow_exception(caught);
  } catch (const jobpoll::basic_poll_error<response>& e) {
    EXPECT_EQ(e.code(), errc::job_failed);
    EXPECT_EQ(e.attempts(), 2u);
    ASSERT_TRUE(e.last_response());
    EXPECT_EQ(e.last_response()->status, "fail");
    EXPECT_EQ(e.last_status().state, job_state::failed);
    EXPECT_THAT(e.what(), HasSubstr("job failed after 2 attempts in 2.000s"));
  }
}

TEST_P(PollUntil, PollErrorIsCatchableAsItsBaseAndAsSystemError) {
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.deadline = 0s;
  int caught_as_base = 0;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        try {
          co_await jobpoll::poll_until(job, seed_status{}, o);
        } catch (const jobpoll::poll_error& e) {
          caught_as_base += e.code() == errc::timeout;
          caught_as_base += e.code() == std::errc::timed_out;  // generic condition
        }
      },
      asio::detached);
  manual_clock::run(ctx);
  EXPECT_EQ(caught_as_base, 2);
}

}  // namespace

// ---- Resuming a poll, and the form that returns instead of throwing ----

namespace {

INSTANTIATE_TEST_SUITE_P(Shells, PollUntil, ::testing::Values(shell::composed, shell::coroutine),
                         [](const auto& info) { return std::string(to_string(info.param)); });

class PollStart : public jobpoll_test::poll_fixture {};

// The deadline is turned into a budget when the poll starts (the machine's
// start event), not when the awaitable or the operation is created.
TEST_F(PollStart, TheDeadlineCountsFromTheStartNotFromTheCall) {
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.deadline = 5s;
  std::optional<jobpoll::poll_result<response>> out;
  auto awaitable = jobpoll::try_poll_until(job, seed_status{}, o);
  manual_clock::advance(10s);  // created at 0 s, started at 10 s
  asio::co_spawn(ctx, std::move(awaitable), [&](std::exception_ptr e, jobpoll::poll_result<response> r) {
    if (e) std::rethrow_exception(e);
    out = std::move(r);
  });
  manual_clock::run(ctx);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error, errc::timeout);
  EXPECT_THAT(job.call_seconds(), ElementsAre(10.0, 12.0, 14.0, 15.0));
  EXPECT_EQ(out->stats.elapsed, 5s);
}

class ResumedPoll : public jobpoll_test::poll_fixture {};

TEST_F(ResumedPoll, CountsOnFromTheSavedAttempts) {
  scripted_job job({{"working"}, {"pass"}});
  auto o = exact_options();
  o.resume = {.attempts = 6, .consecutive_failures = 0};
  auto r = run(job, o);
  ASSERT_FALSE(r.error) << r.message;
  EXPECT_EQ(r.stats.attempts, 8u);
  EXPECT_EQ(job.polls(), 2u);
  ASSERT_EQ(log.polls.size(), 2u);
  EXPECT_EQ(log.polls[0].first, 7u);  // hooks see the continued count
}

TEST_F(ResumedPoll, KeepsOnlyWhatWasLeftOfTheRetryBudget) {
  scripted_job job({{"", {}, 0s, std::make_error_code(std::errc::connection_reset)}});
  auto o = exact_options();
  o.max_retries = 3;
  o.resume = {.attempts = 4, .consecutive_failures = 3};
  auto r = run(job, o);
  EXPECT_EQ(r.error, errc::retries_exhausted);
  EXPECT_EQ(job.polls(), 1u);  // the budget was spent before the interruption
  EXPECT_EQ(r.stats.attempts, 5u);
  EXPECT_EQ(r.stats.consecutive_failures, 4u);
  EXPECT_EQ(r.stats.progress().consecutive_failures, 4u);
}

TEST_F(ResumedPoll, FirstPollOfAResumedRunIsNotHeldToTheDeadlineByTheLimiter) {
  // A resumed poll with no time left still polls once, as any first poll does.
  jobpoll::basic_sliding_window_limiter<manual_clock> limiter(ctx.get_executor(), 1, 10s);
  ASSERT_TRUE(limiter.try_acquire());
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.deadline = 0s;
  o.limiter = limiter;
  o.resume = {.attempts = 3, .consecutive_failures = 0};
  auto r = run(job, o);
  EXPECT_EQ(r.error, errc::timeout);
  EXPECT_EQ(job.polls(), 1u);
  EXPECT_EQ(r.stats.limiter_waited, 10s);
}

TEST_F(ResumedPoll, TryPollUntilReturnsTheResultInsteadOfThrowing) {
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.deadline = 3s;
  std::optional<jobpoll::poll_result<response>> out;
  asio::co_spawn(
      ctx, [&]() -> asio::awaitable<void> { out = co_await jobpoll::try_poll_until(job, seed_status{}, o); },
      asio::detached);
  manual_clock::run(ctx);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->error, errc::timeout);
  EXPECT_EQ(out->stats.attempts, 3u);  // at 0, 2 and 3 s
  ASSERT_TRUE(out->response.has_value());
  EXPECT_EQ(out->response->status, "working");
  EXPECT_THAT(out->message, HasSubstr("deadline passed before the job finished after 3 attempts"));
}

TEST_F(ResumedPoll, TryPollUntilRejectsInvalidOptionsAsAResult) {
  scripted_job job({{"pass"}});
  auto o = exact_options();
  o.initial_delay = -1s;
  std::optional<jobpoll::poll_result<response>> out;
  asio::co_spawn(
      ctx, [&]() -> asio::awaitable<void> { out = co_await jobpoll::try_poll_until(job, seed_status{}, o); },
      asio::detached);
  manual_clock::run(ctx);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->error, errc::invalid_argument);
  EXPECT_THAT(out->message, HasSubstr("initial_delay must not be negative"));
  EXPECT_EQ(job.polls(), 0u);
}

}  // namespace
