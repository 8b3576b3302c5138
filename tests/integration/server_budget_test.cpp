// The budget and the requests as the server counts them: job clients on the
// libcurl transport share one limiter against the real loopback job server,
// which logs the arrival time of every request. Every assertion is about
// what the server recorded, never about how long anything took.
//
// The unit tests (poll_limiter_test, limiter_budget_test) check the same
// guarantee on the manual clock over 60 s of simulated time; here a few
// seconds of real time show it holds with a real network stack, a real
// transport queue and a server whose latency jitters.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/sliding_window_limiter.hpp>
#include <jobpoll/token_bucket_limiter.hpp>
#include <jobpoll/transport/curl.hpp>

#include "loopback_server.hpp"
#include "v1_job_api.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using client_type = jobpoll::job_client<jobpoll::curl_transport, jobpoll::json_codec, jobpoll_test::v1_status>;

class ServerBudget : public ::testing::Test {
 protected:
  // What one job ended with.
  struct ended {
    jobpoll::error_code error;
    std::size_t poll_attempts = 0;  // of the poll phase
    std::string handle;
  };

  // One job to its end, into `out`.
  asio::awaitable<void> one_job(std::string body, jobpoll::poll_options options, ended& out, std::size_t& done) {
    // Not in the co_await expression: g++ 12 mishandles a braced initializer there.
    jobpoll::job_params params{{"body", std::move(body)}};
    try {
      auto r = co_await client.run(std::move(params), std::move(options));
      out = {{}, r.stats.attempts, r.handle.id};
    } catch (const jobpoll::job_error& e) {
      out = {e.code(), e.phase() == jobpoll::job_phase::submit ? 0 : e.stats().attempts,
             e.handle() ? e.handle()->id : std::string()};
    }
    ++done;
  }

  // Runs `jobs` jobs of `body` at once through `options`, to their ends.
  std::vector<ended> run_jobs(std::size_t jobs, const json& body, const jobpoll::poll_options& options) {
    std::vector<ended> out(jobs);
    std::size_t done = 0;
    for (std::size_t i = 0; i < jobs; ++i) {
      json tagged = body;
      tagged["params"] = {{"tag", i}};
      asio::co_spawn(ctx, one_job(tagged.dump(), options, out[i], done), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
    }
    ctx.run();
    EXPECT_EQ(done, jobs);
    return out;
  }

  // The server's arrival times, sorted (seconds on its monotonic clock).
  std::vector<double> arrivals() const {
    std::vector<double> times;
    for (const json& e : server.log()) times.push_back(e.at("arrived").get<double>());
    std::sort(times.begin(), times.end());
    return times;
  }

  // Saturates `limiter`: 10 jobs polling as fast as it allows for 4 s,
  // against a server whose every answer takes 0-200 ms, part of it before
  // the request arrives. The server's arrival times, sorted.
  std::vector<double> saturate(jobpoll::limiter_ref limiter) {
    server.configure({{"latency_ms", {0, 200}}});
    jobpoll::poll_options o;
    o.interval = jobpoll::fixed_interval{0ms};
    o.deadline = 4s;
    o.limiter = limiter;
    run_jobs(10, {{"steps", 1000}}, o);
    return arrivals();
  }

  jobpoll::test::loopback_server server;
  asio::io_context ctx;
  jobpoll::curl_transport transport{ctx.get_executor(), [] {
                                      jobpoll::curl_options o;
                                      o.http2 = false;
                                      o.max_total_connections = 8;
                                      return o;
                                    }()};
  // Without a cancel request: a job given up at its deadline sends nothing more.
  client_type client{transport, jobpoll_test::v1_job_api(server, false), jobpoll_test::v1_job_status()};
};

// 10 requests per second: the server's own log never holds 11 arrivals
// within a second.
TEST_F(ServerBudget, TheSlidingWindowHoldsAtTheServerWhateverTheLatency) {
  jobpoll::sliding_window_limiter quota(ctx.get_executor(), 10, 1s);
  const std::vector<double> times = saturate(quota);
  ASSERT_GT(times.size(), 30u);
  for (std::size_t i = 10; i < times.size(); ++i)
    ASSERT_GE(times[i] - times[i - 10], 1.0) << "11 arrivals within 1 s, ending at arrival " << i;
  // Every request that left was granted and released once: what the server
  // counted is what the limiter counted.
  EXPECT_EQ(quota.statistics().granted, times.size());
  EXPECT_EQ(quota.statistics().released, times.size());
  EXPECT_EQ(quota.in_use(), 0u);
}

// 10 per second in bursts of 3: never more than the burst plus the refill
// between the first and the last of any run of arrivals.
TEST_F(ServerBudget, TheTokenBucketHoldsAtTheServerWhateverTheLatency) {
  jobpoll::token_bucket_limiter bucket(ctx.get_executor(), 10, 1s, 3);
  const std::vector<double> times = saturate(bucket);
  ASSERT_GT(times.size(), 30u);
  for (std::size_t i = 0; i < times.size(); ++i)
    for (std::size_t j = i; j < times.size(); ++j)
      ASSERT_LE(static_cast<double>(j - i + 1), 3.0 + (times[j] - times[i]) * 10.0)
          << "arrivals " << i << " to " << j;
  EXPECT_EQ(bucket.statistics().granted, times.size());
}

// A server that closes a fifth of the requests arriving on reused
// connections without answering (a keep-alive connection timed out just as
// it was reused): libcurl would silently send those again; the transport
// refuses, and the job client's own rules decide. What the server received
// equals what the limiter granted and what the clients counted; no submit
// arrives twice (a lost submit is not retried: the server may have it).
TEST_F(ServerBudget, EveryRequestThatLeavesIsCountedOnceAndNoSubmitArrivesTwice) {
  server.configure({{"close_reused", 0.2}});
  jobpoll::sliding_window_limiter quota(ctx.get_executor(), 100'000, 1s);  // counts, never binds
  jobpoll::poll_options o;
  o.interval = jobpoll::fixed_interval{1ms};
  o.backoff = jobpoll::fixed_interval{1ms};
  o.max_retries = 20;
  o.deadline = 30s;  // a guard only
  o.limiter = quota;
  constexpr std::size_t jobs = 60;
  const std::vector<ended> outcomes = run_jobs(jobs, {{"steps", 3}}, o);

  const json log = server.log();
  EXPECT_EQ(quota.statistics().granted, log.size());

  std::map<std::size_t, int> submits_per_tag;
  std::map<std::string, std::size_t> polls_per_job;
  std::size_t closed = 0;
  for (const json& e : log) {
    if (e.at("closed_reused") == true) ++closed;
    if (e.at("method") == "POST") {
      ++submits_per_tag[json::parse(e.at("body").get<std::string>()).at("params").at("tag").get<std::size_t>()];
    } else {
      ++polls_per_job[e.at("path").get<std::string>()];
    }
  }
  EXPECT_GT(closed, 0u);
  ASSERT_EQ(submits_per_tag.size(), jobs);
  for (const auto& [tag, n] : submits_per_tag) EXPECT_EQ(n, 1) << "submit of job " << tag;

  std::size_t lost_submits = 0;
  for (const ended& e : outcomes) {
    if (e.handle.empty()) {
      // The submit's connection was closed: reported, not re-sent.
      EXPECT_EQ(e.error, std::errc::connection_reset);
      ++lost_submits;
      continue;
    }
    EXPECT_FALSE(e.error) << e.error.message();
    // Every poll the client counted arrived, and nothing else did.
    EXPECT_EQ(polls_per_job["/v1/jobs/" + e.handle], e.poll_attempts) << e.handle;
  }
  EXPECT_EQ(server.jobs().at("v1_jobs"), static_cast<int>(jobs - lost_submits));
}

}  // namespace
