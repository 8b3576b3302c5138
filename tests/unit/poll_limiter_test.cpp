// poll_until with a shared rate limiter (rules 2, 4 and 5): the budget holds
// across pollers, hints pause everyone, the deadline bounds limiter waits and
// a cancelled limiter wait consumes nothing.

#include <string>

#include <jobpoll/poll_until.hpp>
#include <jobpoll/sliding_window_limiter.hpp>
#include <jobpoll/token_bucket_limiter.hpp>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "limiter_helpers.hpp"
#include "poll_fixture.hpp"

using namespace std::chrono_literals;
using jobpoll::errc;
using jobpoll::wait_reason;
using namespace jobpoll_test;
using ::testing::ElementsAre;

namespace {

using window_limiter = jobpoll::basic_sliding_window_limiter<manual_clock>;
using bucket_limiter = jobpoll::basic_token_bucket_limiter<manual_clock>;

class PollLimiter : public jobpoll_test::poll_fixture {
 protected:
  // The server's view: 1,000 pollers share 20 per 3 s for 60 s; each request
  // takes 0-200 ms (reproducibly random) to be answered and reaches the server
  // at the last moment (the worst case for a count of grants). The server's
  // own log of arrivals never holds more than 20 in any 3 s, and the use is
  // within 2 % of what holding a slot until the answer can reach,
  // W / (W + mean latency).
  template <class Limiter, class Check>
  void share_with_latency(Limiter& limiter, Check check) {
    std::vector<manual_clock::duration> arrivals;  // the server's log
    std::vector<manual_clock::duration> latencies;
    jobpoll_test::lcg rng{2026};
    for (int i = 0; i < 1000; ++i) {
      auto poll = [&]() -> asio::awaitable<response> {
        const auto latency = std::chrono::milliseconds(rng.next(201));
        latencies.push_back(latency);
        manual_clock::timer answer(co_await asio::this_coro::executor);
        answer.expires_after(latency);
        co_await answer.async_wait(asio::use_awaitable);
        arrivals.push_back(manual_clock::now().time_since_epoch());
        co_return response{"working", {}, {}, 0};
      };
      options o;
      o.deadline = 60s;
      o.interval = jobpoll::fixed_interval{0s};
      o.limiter = limiter;
      jobpoll::async_poll_until(ctx.get_executor(), poll, seed_status{}, o, [](jobpoll::error_code, auto) {});
    }
    manual_clock::run(ctx);
    std::sort(arrivals.begin(), arrivals.end());
    double mean = 0;
    for (auto l : latencies) mean += std::chrono::duration<double>(l).count();
    mean /= static_cast<double>(latencies.size());
    check(arrivals, mean);
    EXPECT_EQ(limiter.in_use(), 0u);
  }
};

TEST_F(PollLimiter, ThousandPollersNeverExceedTheWindow) {
  window_limiter quota(ctx.get_executor(), 20, 15s);
  std::vector<manual_clock::duration> starts;
  int succeeded = 0;
  for (int i = 0; i < 1000; ++i) {
    scripted_job job({{"working"}, {"working"}, {"working"}, {"pass"}});
    auto poll = [job, &starts] {
      starts.push_back(manual_clock::now().time_since_epoch());
      return job();
    };
    options o;
    o.deadline = jobpoll::basic_deadline<manual_clock>::none();
    o.limiter = quota;
    jobpoll::async_poll_until(ctx.get_executor(), poll, seed_status{}, o,
                              [&](jobpoll::error_code ec, auto) { succeeded += !ec; });
  }
  manual_clock::run(ctx);
  EXPECT_EQ(succeeded, 1000);
  ASSERT_EQ(starts.size(), 4000u);
  std::sort(starts.begin(), starts.end());
  for (std::size_t i = 20; i < starts.size(); ++i)
    ASSERT_GE(starts[i] - starts[i - 20], 15s) << "21 starts within 15 s at index " << i;
  // Not lazier than the quota: 4000 starts at 20 per 15 s take 199 full windows.
  EXPECT_EQ(starts.back(), 199 * 15s);
  EXPECT_EQ(quota.statistics().granted, 4000u);
}

TEST_F(PollLimiter, LimiterWaitIsReportedInHooksAndStats) {
  window_limiter quota(ctx.get_executor(), 1, 10s);
  scripted_job job({{"working"}, {"pass"}});
  auto o = exact_options();
  o.limiter = quota;
  auto r = run(job, o);
  ASSERT_FALSE(r.error) << r.message;
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 10.0));
  EXPECT_EQ(r.stats.limiter_waited, 8s);  // 2 s interval, then 8 s more for the window
  EXPECT_EQ(r.stats.waited, 2s);
  ASSERT_EQ(log.waits.size(), 2u);
  EXPECT_EQ(log.waits[1].reason, wait_reason::limiter);
  EXPECT_EQ(log.waits[1].duration, 8s);
}

TEST_F(PollLimiter, RetryAfterOnATransientFailurePausesEveryoneSharingTheLimiter) {
  window_limiter quota(ctx.get_executor(), 100, 1s);
  scripted_job throttled({{"http-429", 30s}, {"pass"}});
  scripted_job bystander({{"working"}, {"pass"}});
  auto o = exact_options();
  o.limiter = quota;
  std::optional<jobpoll::poll_result<response>> a, b;
  jobpoll::async_poll_until(ctx.get_executor(), throttled, seed_status{}, o, [&](auto, auto r) { a = r; });
  manual_clock::run_for(ctx, 1s);
  jobpoll::async_poll_until(ctx.get_executor(), bystander, seed_status{}, o, [&](auto, auto r) { b = r; });
  manual_clock::run(ctx);
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(a->error);
  EXPECT_FALSE(b->error);
  EXPECT_THAT(throttled.call_seconds(), ElementsAre(0.0, 30.0));
  // The bystander's first poll also waits out the server's Retry-After.
  EXPECT_THAT(bystander.call_seconds(), ElementsAre(30.0, 32.0));
}

TEST_F(PollLimiter, PauseIsBoundedByTheHintCeiling) {
  window_limiter quota(ctx.get_executor(), 100, 1s);
  scripted_job throttled({{"http-429", 1h}, {"pass"}});
  auto o = exact_options();
  o.limiter = quota;
  o.hints.ceiling = 20s;
  EXPECT_FALSE(run(throttled, o).error);
  EXPECT_THAT(throttled.call_seconds(), ElementsAre(0.0, 20.0));
}

TEST_F(PollLimiter, LimiterWaitPastTheDeadlineEndsWithTimeoutAndConsumesNothing) {
  window_limiter quota(ctx.get_executor(), 1, 60s);
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.deadline = 10s;
  o.limiter = quota;
  auto r = run(job, o);
  EXPECT_EQ(r.error, errc::timeout);
  EXPECT_EQ(job.polls(), 1u);
  EXPECT_EQ(r.stats.elapsed, 10s);
  EXPECT_EQ(quota.statistics().granted, 1u);
  EXPECT_EQ(quota.statistics().cancelled, 1u);
  EXPECT_EQ(quota.waiting(), 0u);
  // The abandoned wait took nothing: the next start is free at 60 s exactly.
  manual_clock::advance_to(manual_clock::time_point{60s});
  EXPECT_TRUE(quota.try_acquire());
}

TEST_F(PollLimiter, FinalPollAtTheDeadlineIsSkippedWhenTheLimiterIsBusy) {
  window_limiter quota(ctx.get_executor(), 2, 100s);
  scripted_job job({{"working"}});
  auto o = exact_options();
  o.deadline = 3s;  // polls at 0, 2, then 3 (the deadline) would need a third start
  o.limiter = quota;
  auto r = run(job, o);
  EXPECT_EQ(r.error, errc::timeout);
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 2.0));
  EXPECT_EQ(r.stats.elapsed, 3s);
}

TEST_F(PollLimiter, FirstPollWaitsForTheLimiterEvenPastTheDeadline) {
  window_limiter quota(ctx.get_executor(), 1, 60s);
  ASSERT_TRUE(quota.try_acquire());  // someone else took the only start
  scripted_job job({{"pass"}});
  auto o = exact_options();
  o.deadline = 5s;
  o.limiter = quota;
  auto r = run(job, o);
  EXPECT_FALSE(r.error);
  EXPECT_THAT(job.call_seconds(), ElementsAre(60.0));
}

TEST_F(PollLimiter, CancellationDuringALimiterWaitIsPromptAndTakesNothing) {
  window_limiter quota(ctx.get_executor(), 1, 60s);
  ASSERT_TRUE(quota.try_acquire());
  scripted_job job({{"pass"}});
  auto o = exact_options();
  o.limiter = quota;
  asio::cancellation_signal signal;
  std::optional<jobpoll::error_code> got;
  jobpoll::async_poll_until(ctx.get_executor(), job, seed_status{}, o,
                            asio::bind_cancellation_slot(signal.slot(), [&](jobpoll::error_code ec, auto) { got = ec; }));
  manual_clock::run_for(ctx, 5s);
  EXPECT_EQ(quota.waiting(), 1u);
  signal.emit(asio::cancellation_type::terminal);
  manual_clock::run_for(ctx, 0s);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, asio::error::operation_aborted);
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 5s);
  EXPECT_EQ(job.polls(), 0u);
  EXPECT_EQ(quota.waiting(), 0u);
  EXPECT_EQ(quota.statistics().cancelled, 1u);
  manual_clock::run(ctx);
}

TEST_F(PollLimiter, DestroyingTheLimiterUnderAWaitingPollEndsItAsAborted) {
  std::optional<jobpoll::poll_result<response>> out;
  scripted_job job({{"pass"}});
  {
    window_limiter quota(ctx.get_executor(), 1, 60s);
    ASSERT_TRUE(quota.try_acquire());
    auto o = exact_options();
    o.limiter = quota;
    jobpoll::async_poll_until(ctx.get_executor(), job, seed_status{}, o, [&](jobpoll::error_code, auto r) { out = r; });
    manual_clock::run_for(ctx, 5s);
    EXPECT_EQ(quota.waiting(), 1u);
  }
  manual_clock::run(ctx);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error, asio::error::operation_aborted);
  EXPECT_EQ(job.polls(), 0u);
  EXPECT_EQ(log.ends, 1);
}

TEST_F(PollLimiter, TokenBucketWorksTheSameWay) {
  bucket_limiter bucket(ctx.get_executor(), 1, 5s, 2);  // 1 token per 5 s, burst 2
  scripted_job job({{"working"}, {"working"}, {"working"}, {"pass"}});
  auto o = exact_options();
  o.interval = jobpoll::fixed_interval{0s};
  o.limiter = bucket;
  auto r = run(job, o);
  EXPECT_FALSE(r.error);
  EXPECT_THAT(job.call_seconds(), ElementsAre(0.0, 0.0, 5.0, 10.0));
}

TEST_F(PollLimiter, TheServerNeverCountsMoreThanTheWindowWhateverTheLatency) {
  window_limiter quota(ctx.get_executor(), 20, 3s);
  share_with_latency(quota, [](const std::vector<manual_clock::duration>& arrivals, double mean) {
    for (std::size_t i = 20; i < arrivals.size(); ++i)
      ASSERT_GE(arrivals[i] - arrivals[i - 20], 3s) << "21 arrivals within 3 s at index " << i;
    // In steady state, within 2 % of what holding a slot until the answer can
    // reach: W / (W + mean latency).
    const double use = jobpoll_test::window_use(arrivals, 20, 3s);
    const double reachable = 3.0 / (3.0 + mean);
    EXPECT_NEAR(use, reachable, 0.02 * reachable) << "use " << use << ", reachable " << reachable;
    RecordProperty("use", std::to_string(use));
    RecordProperty("reachable", std::to_string(reachable));
  });
}

TEST_F(PollLimiter, TheServerNeverCountsMoreThanTheBucketWhateverTheLatency) {
  bucket_limiter bucket(ctx.get_executor(), 20, 3s, 5);
  share_with_latency(bucket, [](const std::vector<manual_clock::duration>& arrivals, double) {
    std::vector<manual_clock::time_point> times;
    for (auto a : arrivals) times.emplace_back(a);
    jobpoll_test::expect_bucket_respected(times, 20, manual_clock::duration(3s), 5);
    // The bucket's own rate, 5 at once then 20 per 3 s, less at most two
    // refills lost to latency.
    const auto in_span = std::count_if(arrivals.begin(), arrivals.end(), [](auto t) { return t < 60s; });
    EXPECT_GE(in_span, 5 + 400 - 2);
  });
}

TEST_F(PollLimiter, APollHoldsItsSlotUntilItsAnswerArrives) {
  window_limiter quota(ctx.get_executor(), 1, 10s);
  std::vector<double> sent;
  auto slow_poll = [&]() -> asio::awaitable<response> {
    sent.push_back(std::chrono::duration<double>(manual_clock::now().time_since_epoch()).count());
    manual_clock::timer answer(co_await asio::this_coro::executor);
    answer.expires_after(2s);  // every answer takes 2 s
    co_await answer.async_wait(asio::use_awaitable);
    co_return response{sent.size() < 3 ? "working" : "pass", {}, {}, 0};
  };
  auto o = exact_options();
  o.interval = jobpoll::fixed_interval{0s};
  o.limiter = quota;
  std::optional<jobpoll::error_code> ended;
  jobpoll::async_poll_until(ctx.get_executor(), slow_poll, seed_status{}, o,
                            [&](jobpoll::error_code ec, auto) { ended = ec; });
  manual_clock::run(ctx);
  EXPECT_EQ(ended, jobpoll::error_code{});
  // Each poll's window starts at its answer: 0 (answered 2), 12 (answered 14), 24.
  EXPECT_THAT(sent, ElementsAre(0.0, 12.0, 24.0));
  EXPECT_EQ(quota.statistics().released, 3u);
}

}  // namespace
