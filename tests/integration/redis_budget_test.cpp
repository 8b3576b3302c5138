// One budget shared through Redis by four processes, judged by what the
// server recorded: 4 processes × 250 pollers (job clients on the libcurl
// transport) share 20 requests per 3 s through one redis_limiter key for
// over 30 s, against the loopback job server whose every answer takes
// 0-200 ms (part of it before the request arrives). The server never counts
// more than 20 arrivals in any 3 s; the processes use at least 95 % of what
// the budget allows; each process gets its share; and a 429 with
// Retry-After seen by one process holds back all four (no arrival at the
// server until it has passed).
//
// The 1000 jobs are submitted by the test first (those requests carry no
// X-Child header and are not part of the shared budget); each poller then
// polls one of them, which never finishes. The processes are this test
// binary run again (/proc/self/exe) in child mode: JOBPOLL_REDIS_BUDGET_CHILD
// selects RedisBudget.ChildProcess, which is skipped otherwise. The parent
// waits on what the server has logged, and stops the children with SIGTERM.

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <jobpoll/codec/json.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/redis_limiter.hpp>
#include <jobpoll/transport/curl.hpp>

#include "child_process.hpp"
#include "loopback_server.hpp"
#include "redis_server.hpp"
#include "v1_job_api.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using client_type = jobpoll::job_client<jobpoll::curl_transport, jobpoll::json_codec, jobpoll_test::v1_status>;

constexpr int processes = 4;
constexpr int pollers = 250;
constexpr std::size_t budget = 20;
constexpr double window_s = 3.0;
constexpr int retry_after_s = 5;

// --- the child: one process's pollers ---------------------------------------

// Polls the job `id` (which never finishes) until cancelled.
asio::awaitable<void> poller(client_type& client, jobpoll::poll_options options, std::string id) {
  jobpoll::job_handle handle;
  handle.id = std::move(id);
  try {
    static_cast<void>(co_await client.wait(std::move(handle), options));
  } catch (const std::exception& e) {  // a job_error, or Asio's own on either backend
    const auto failure = jobpoll::detail::system_failure_of(e);
    if (!failure || failure->code != jobpoll::detail::asio_error(asio::error::operation_aborted)) throw;
  }
}

// Runs until SIGTERM, then prints "STATS <json>" with the limiter's statistics.
void run_child(int index, const std::string& server_url, const std::string& redis_socket) {
  asio::io_context ctx;
  jobpoll::curl_options transport_options;
  transport_options.http2 = false;
  jobpoll::curl_transport transport(ctx.get_executor(), transport_options);
  jobpoll::redis_limiter limiter(
      ctx.get_executor(),
      jobpoll::parse_redis_limit_url("unix://" + redis_socket + "?key=budget&rate=" + std::to_string(budget) +
                                     "/3s&cold_start=full"));
  // The v1 API, each request saying which process sent it; no cancel request.
  jobpoll::http_headers headers;
  headers.add("X-Child", std::to_string(index));
  jobpoll::job_description d;
  d.submit = {"POST", server_url + "/v1/jobs", "{body}", headers};
  d.handle = jobpoll::handle_source::body("/job_id");
  d.poll = {"GET", "/v1/jobs/{handle}", {}, headers};
  d.result = jobpoll::result_source::in_poll_answer("/result");
  client_type client(transport, std::move(d), jobpoll_test::v1_job_status());

  jobpoll::poll_options options;
  options.interval = jobpoll::fixed_interval{0ms};
  options.deadline = 600s;
  options.max_retries = 20;
  options.limiter = limiter;
  std::vector<asio::cancellation_signal> stops(pollers);
  for (int i = 0; i < pollers; ++i)
    asio::co_spawn(ctx, poller(client, options, "job-" + std::to_string(index * pollers + i + 1)),
                   asio::bind_cancellation_slot(stops[static_cast<std::size_t>(i)].slot(), [](std::exception_ptr e) {
                     if (e) std::rethrow_exception(e);
                   }));
  asio::signal_set sigterm(ctx, SIGTERM);
  sigterm.async_wait([&](jobpoll::error_code ec, int) {
    if (ec) return;
    for (auto& s : stops) s.emit(asio::cancellation_type::terminal);
  });
  ctx.run();
  const auto s = limiter.statistics();
  std::cout << "STATS "
            << json{{"granted", s.granted},   {"released", s.released},       {"cancelled", s.cancelled},
                    {"failed", s.failed},     {"fallback", s.fallback_granted}, {"returned", s.returned},
                    {"asks", s.asks},         {"calls", s.calls},             {"outages", s.outages}}
                   .dump()
            << std::endl;
}

TEST(RedisBudget, ChildProcess) {
  const char* index = std::getenv("JOBPOLL_REDIS_BUDGET_CHILD");
  if (index == nullptr) GTEST_SKIP() << "a child process of FourProcessesShareOneBudgetAtTheServer";
  run_child(std::atoi(index), std::getenv("JOBPOLL_REDIS_BUDGET_SERVER"), std::getenv("JOBPOLL_REDIS_BUDGET_REDIS"));
}

// --- the parent --------------------------------------------------------------

// The arrivals of `times` (sorted) within [from, to).
std::vector<double> between(const std::vector<double>& times, double from, double to) {
  std::vector<double> out;
  for (double t : times)
    if (t >= from && t < to) out.push_back(t);
  return out;
}

// The requests the children sent (not the test's own submits).
json children_requests(const json& log) {
  json out = json::array();
  for (const json& e : log)
    if (e.at("headers").contains("X-Child")) out.push_back(e);
  return out;
}

TEST(RedisBudget, FourProcessesShareOneBudgetAtTheServer) {
  if (std::getenv("JOBPOLL_REDIS_BUDGET_CHILD") != nullptr) GTEST_SKIP() << "the child runs ChildProcess only";
  jobpoll::test::loopback_server server;
  for (int i = 0; i < processes * pollers; ++i)
    ASSERT_EQ(server.request("POST", "/v1/jobs", R"({"steps": 1000000})").status, 202);
  server.configure({{"latency_ms", {0, 200}}});
  const jobpoll_test::redis_server redis;

  std::vector<std::unique_ptr<jobpoll_test::child_process>> children;
  ::setenv("JOBPOLL_REDIS_BUDGET_SERVER", server.base_url().c_str(), 1);
  ::setenv("JOBPOLL_REDIS_BUDGET_REDIS", redis.socket_path().c_str(), 1);
  for (int i = 0; i < processes; ++i) {
    ::setenv("JOBPOLL_REDIS_BUDGET_CHILD", std::to_string(i).c_str(), 1);
    children.push_back(std::make_unique<jobpoll_test::child_process>(
        std::vector<std::string>{"/proc/self/exe", "--gtest_filter=RedisBudget.ChildProcess"}));
  }
  ::unsetenv("JOBPOLL_REDIS_BUDGET_CHILD");

  // Waits (reading the children's output meanwhile) until the server's log
  // spans `seconds`; a failure guard after `guard`.
  json log;
  const auto wait_for_span = [&](double seconds, std::chrono::seconds guard) {
    const auto limit = std::chrono::steady_clock::now() + guard;
    for (;;) {
      log = children_requests(server.log());
      if (log.size() > 1 && log.back().at("arrived").get<double>() - log.front().at("arrived").get<double>() >= seconds)
        return true;
      for (auto& c : children) {
        if (!c->output_open()) {
          ADD_FAILURE() << "a child ended early: " << c->err();
          return false;
        }
        c->pump(50ms);
      }
      if (std::chrono::steady_clock::now() > limit) {
        ADD_FAILURE() << "the server's log did not span " << seconds << " s within " << guard.count() << " s";
        return false;
      }
    }
  };
  // Mid-run, the next poll of any job is answered 429 with Retry-After.
  ASSERT_TRUE(wait_for_span(14.0, 60s));
  server.script("GET", "/v1/jobs/*",
                json::array({{{"status", 429},
                              {"headers", {{"Retry-After", std::to_string(retry_after_s)}}},
                              {"json", {{"error", "too many requests"}}}}}));
  ASSERT_TRUE(wait_for_span(32.5, 60s));
  for (auto& c : children) c->send(SIGTERM);
  std::vector<json> stats;
  for (auto& c : children) {
    const jobpoll_test::child_result r = c->finish();
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
      if (line.starts_with("STATS ")) stats.push_back(json::parse(line.substr(6)));
  }
  ASSERT_EQ(stats.size(), static_cast<std::size_t>(processes));
  log = children_requests(server.log());

  // What the server recorded.
  std::vector<double> times;
  std::map<int, std::size_t> per_child;
  std::map<int, std::size_t> per_child_steady;  // after the first window (the first process up takes the first 20)
  std::optional<double> rejected_at;
  int rejected_child = -1;
  for (const json& e : log) {
    const double t = e.at("arrived").get<double>();
    times.push_back(t);
    const int child = std::stoi(e.at("headers").at("X-Child").get<std::string>());
    ++per_child[child];
    if (t >= log.front().at("arrived").get<double>() + window_s + 1.0) ++per_child_steady[child];
    if (e.at("status") == 429) {
      ASSERT_FALSE(rejected_at) << "one 429 only";
      rejected_at = t;
      rejected_child = child;
    }
  }
  std::sort(times.begin(), times.end());
  ASSERT_GE(times.back() - times.front(), 30.0);
  ASSERT_TRUE(rejected_at) << "the scripted 429 was not sent";

  // 1. Never more than 20 in any 3 s window at the server.
  for (std::size_t i = budget; i < times.size(); ++i)
    ASSERT_GE(times[i] - times[i - budget], window_s) << budget + 1 << " arrivals within 3 s, ending at arrival " << i;

  // 2. The 429 held back every process: no arrival from its answer (plus
  // the latency of requests already under way) until Retry-After passed,
  // a gap the budget alone never makes (at most a window plus a latency);
  // then the others went on.
  const double pause_end = *rejected_at + retry_after_s;
  const auto held_back = between(times, *rejected_at + 0.6, pause_end - 0.1);
  EXPECT_TRUE(held_back.empty()) << held_back.size() << " arrivals during the pause, the first "
                                 << held_back.front() - *rejected_at << " s after the 429";
  std::set<int> resumed;
  for (const json& e : log) {
    const double t = e.at("arrived").get<double>();
    const int child = std::stoi(e.at("headers").at("X-Child").get<std::string>());
    if (t >= pause_end - 0.1 && t < pause_end + 4.0 && child != rejected_child) resumed.insert(child);
  }
  EXPECT_GE(resumed.size(), 2u) << "other processes went on after the pause";

  // 3. At least 95 % of the budget: W over the mean time between each
  // arrival and the 20th before it, before the 429 and after the pause.
  double gaps = 0;
  std::size_t counted = 0;
  for (const auto& part :
       {between(times, times.front(), *rejected_at), between(times, pause_end - 0.1, times.back() + 1)}) {
    for (std::size_t i = budget; i < part.size(); ++i) {
      gaps += part[i] - part[i - budget];
      ++counted;
    }
  }
  ASSERT_GT(counted, 100u);
  const double utilisation = window_s * static_cast<double>(counted) / gaps;
  EXPECT_GE(utilisation, 0.95) << counted << " gaps";
  std::cout << "arrivals " << times.size() << " over " << times.back() - times.front() << " s, utilisation "
            << utilisation << ", per process";
  for (const auto& [child, n] : per_child) std::cout << " " << n;
  std::cout << ", after the first window";
  for (const auto& [child, n] : per_child_steady) std::cout << " " << n;
  std::cout << std::endl;

  // 4. Every process got its share (processes take turns: after the first
  // window, when all four wait, a quarter each), and what each limiter
  // granted is what the server received from it (a grant whose request was
  // cut short by SIGTERM may not have arrived).
  std::size_t steady = 0;
  for (const auto& [child, n] : per_child_steady) steady += n;
  for (int i = 0; i < processes; ++i) {
    const double share = static_cast<double>(per_child_steady[i]) / static_cast<double>(steady);
    EXPECT_GT(share, 0.20) << "process " << i;
    EXPECT_LT(share, 0.30) << "process " << i;
    const json& s = stats[static_cast<std::size_t>(i)];
    EXPECT_EQ(s.at("outages"), 0) << s.dump();
    EXPECT_EQ(s.at("fallback"), 0) << s.dump();
    EXPECT_EQ(s.at("granted"), s.at("released")) << s.dump();
  }
  std::size_t granted = 0;
  for (const json& s : stats) granted += s.at("granted").get<std::size_t>();
  EXPECT_GE(granted, times.size());
  EXPECT_LE(granted, times.size() + budget);
}

}  // namespace
