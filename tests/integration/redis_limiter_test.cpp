// redis_limiter against a real redis-server (tests/support/redis_server.hpp,
// one per test, on a unix socket in a temp dir): grants and holds, FIFO in
// one process, turns between processes, cancellation, a pause shared by two
// limiter objects, the budget at Redis's clock, Redis killed and restarted
// mid-run, Redis frozen (SIGSTOP: answers nothing) under each rule, a dead
// process's hold and ticket, a budget mismatch, a flushed script cache.
//
// Times asserted are Redis's (TIME), the clock the limiter decides on: a
// "request" in these tests arrives at Redis itself, reading TIME between its
// grant and its release. Waits are for conditions (a grant, a count, an
// event), each with a guard; no test sleeps to let something happen.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <jobpoll/detail/redis/script.hpp>
#include <jobpoll/error.hpp>
#include <jobpoll/limiter_budget.hpp>
#include <jobpoll/redis_limiter.hpp>

#include "limiter_helpers.hpp"
#include "redis_server.hpp"

namespace {

using namespace std::chrono_literals;
using jobpoll::limiter_permit;
using jobpoll::redis_budget;
using jobpoll::redis_limiter;
using jobpoll_test::redis_server;
using testing::HasSubstr;

// One async_acquire's end.
struct acquired {
  bool done = false;
  jobpoll::error_code ec;
  limiter_permit permit;
  std::int64_t at_us = 0;  // Redis's TIME when the completion ran
};

class RedisLimiter : public ::testing::Test {
 protected:
  // Runs the context until `done()` holds: a failure after `guard`.
  void run_until(const std::function<bool()>& done, const std::string& what,
                 std::chrono::seconds guard = std::chrono::seconds(15)) {
    const auto limit = std::chrono::steady_clock::now() + guard;
    while (!done()) {
      if (std::chrono::steady_clock::now() > limit) {
        FAIL() << "no " << what << " within " << guard.count() << " s";
        return;
      }
      ctx.restart();
      ctx.run_for(5ms);
    }
  }

  // Starts an async_acquire on `limiter` into `out` (cancellable through `signal` if given).
  void acquire(redis_limiter& limiter, acquired& out, asio::cancellation_signal* signal = nullptr) {
    auto handler = [this, &out](jobpoll::error_code ec, limiter_permit p) {
      out.done = true;
      out.ec = ec;
      out.permit = std::move(p);
      if (!ec) out.at_us = redis.time_us();
    };
    if (signal) {
      limiter.async_acquire(asio::bind_cancellation_slot(signal->slot(), handler));
    } else {
      limiter.async_acquire(handler);
    }
  }

  // Redis's sorted set `part` of the limit `key` (default prefix), as (member, score) pairs.
  std::vector<std::pair<std::string, std::int64_t>> zset(const std::string& key, const std::string& part) const {
    const auto r = redis.command({"ZRANGE", "jobpoll:limit:{" + key + "}:" + part, "0", "-1", "WITHSCORES"});
    std::vector<std::pair<std::string, std::int64_t>> out;
    for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2)
      out.emplace_back(r.elements[i].text, std::stoll(r.elements[i + 1].text));
    return out;
  }

  std::string state_field(const std::string& key, const std::string& field) const {
    return redis.command({"HGET", "jobpoll:limit:{" + key + "}:state", field}).text;
  }

  jobpoll::redis_limiter_options options(const std::string& key, redis_budget budget) const {
    auto o = redis.options(key, budget);
    o.cold_start = jobpoll::redis_cold_start::full_budget;  // each test's key is new: nothing came before
    return o;
  }

  redis_server redis;
  asio::io_context ctx;
};

// The most in any window of `window_us` among sorted `times`.
std::size_t most_in_window(std::vector<std::int64_t> times, std::int64_t window_us) {
  std::sort(times.begin(), times.end());
  std::size_t most = 0;
  for (std::size_t i = 0, j = 0; j < times.size(); ++j) {
    while (times[j] - times[i] >= window_us) ++i;
    most = std::max(most, j - i + 1);
  }
  return most;
}

// A worker: acquire, "arrive" (read Redis's TIME), hold a little, release; `rounds` times.
asio::awaitable<void> worker(redis_limiter& limiter, const redis_server& redis, std::vector<std::int64_t>& arrivals,
                             std::size_t rounds, std::chrono::milliseconds hold, bool& stop) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (std::size_t i = 0; i < rounds && !stop; ++i) {
    limiter_permit permit = co_await limiter.async_acquire(asio::use_awaitable);
    for (;;) {
      try {
        arrivals.push_back(redis.time_us());
        break;
      } catch (const std::exception&) {
        // Redis restarting: the request "arrives" once it is back
      }
      timer.expires_after(10ms);
      co_await timer.async_wait(asio::use_awaitable);
    }
    timer.expires_after(hold);
    co_await timer.async_wait(asio::use_awaitable);
    permit.release();
  }
}

// The script's decisions against limiter_budget.hpp's: random acquires,
// releases and pauses run straight through EVAL, each also applied to the
// in-process budget at the server time the script answered with; every
// grant and every "not before" must agree (an all-held budget, which the
// in-process one answers "only a release can tell", the script answers
// with the earliest a release could allow: now + one window or interval).
template <class Budget>
void expect_script_decides_as(const redis_server& redis, const std::string& key, const redis_budget& budget,
                              Budget in_process) {
  using time_point = std::chrono::sys_time<std::chrono::microseconds>;
  auto o = redis.options(key, budget);
  o.cold_start = jobpoll::redis_cold_start::full_budget;
  o.hold_timeout = 60s;
  o.ticket_timeout = 30s;
  const auto run = [&](const std::string& op, const std::vector<std::string>& args) {
    std::vector<std::string> command{"EVAL", std::string(jobpoll::detail::redis::limiter_script)};
    for (auto& a : jobpoll::detail::redis::script_arguments(o, op, args)) command.push_back(a);
    return jobpoll::detail::redis::read_answer(redis.command(command));
  };
  const auto count = static_cast<std::int64_t>(budget.count);
  const std::int64_t all_held_wait = budget.type == redis_budget::kind::sliding_window
                                         ? budget.period_us()
                                         : (budget.period_us() + count - 1) / count;  // one interval, rounded up
  jobpoll_test::lcg random{42};
  std::vector<std::string> held;
  int ticket = 0;
  std::size_t grants = 0, waits = 0;
  // Until both answers were seen often enough (how often depends on how
  // fast Redis answers: the window is real time); a guard on the steps.
  for (int step = 0; (grants < 60 || waits < 60) && step < 50'000; ++step) {
    const auto choice = random.next(50);
    if (choice < 25) {
      const auto a = run("acquire", {"t" + std::to_string(ticket)});
      const time_point now{std::chrono::microseconds(a.server_now_us)};
      const time_point earliest = in_process.earliest(now);
      if (a.granted) {
        ASSERT_LE(earliest, now) << "step " << step << ": the script granted, the budget would not";
        in_process.hold();
        held.push_back(a.permit);
        ++ticket;
        ++grants;
      } else {
        const std::int64_t expected = earliest == time_point::max() ? a.server_now_us + all_held_wait
                                                                    : earliest.time_since_epoch().count();
        ASSERT_EQ(a.not_before_us, expected) << "step " << step;
        ++waits;
      }
    } else if (choice < 48 && !held.empty()) {
      const auto at = random.next(held.size());
      const auto a = run("release", {held[at], "used"});
      in_process.release(time_point{std::chrono::microseconds(a.server_now_us)});
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(at));
    } else if (choice >= 48) {
      const auto a = run("pause", {std::to_string(100 + random.next(1000))});
      in_process.pause_until(time_point{std::chrono::microseconds(a.not_before_us)});
    }
  }
  EXPECT_GE(grants, 60u);
  EXPECT_GE(waits, 60u);
}

TEST_F(RedisLimiter, TheScriptDecidesAsTheSlidingWindowBudget) {
  using time_point = std::chrono::sys_time<std::chrono::microseconds>;
  expect_script_decides_as(redis, "same-window", redis_budget::sliding_window(3, 2ms),
                           jobpoll::sliding_window_budget<time_point>(3, 2ms));
}

TEST_F(RedisLimiter, TheScriptDecidesAsTheTokenBucketBudget) {
  using time_point = std::chrono::sys_time<std::chrono::microseconds>;
  // 3 tokens per 2 ms (an interval of 666 2/3 us: exact fractions), bursts of 4.
  expect_script_decides_as(redis, "same-bucket", redis_budget::token_bucket(3, 2ms, 4),
                           jobpoll::token_bucket_budget<time_point>(3, 2ms, 4));
}

TEST_F(RedisLimiter, GrantsTheBudgetAtOnceThenHoldsASlotUntilItsRelease) {
  redis_limiter limiter(ctx.get_executor(), options("grants", redis_budget::sliding_window(3, 400ms)));
  acquired a[4];
  for (auto& x : a) acquire(limiter, x);
  run_until([&] { return a[0].done && a[1].done && a[2].done; }, "first three grants");
  EXPECT_FALSE(a[3].done);
  EXPECT_EQ(limiter.in_use(), 3u);
  EXPECT_EQ(zset("grants", "held").size(), 3u);

  // Held permits keep their slots well past the window: no fourth grant.
  asio::steady_timer t(ctx, 2 * 400ms);
  bool waited = false;
  t.async_wait([&](jobpoll::error_code) { waited = true; });
  run_until([&] { return waited; }, "two windows");
  EXPECT_FALSE(a[3].done);
  EXPECT_EQ(limiter.waiting(), 1u);

  // The release counts at Redis's time; the slot frees one window later.
  a[1].permit.release();
  std::vector<std::pair<std::string, std::int64_t>> released;
  run_until([&] { return !(released = zset("grants", "releases")).empty(); }, "the release in Redis");
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(zset("grants", "held").size(), 2u);
  run_until([&] { return a[3].done; }, "the fourth grant");
  ASSERT_FALSE(a[3].ec) << a[3].ec.message();
  EXPECT_GE(a[3].at_us - released[0].second, 400'000);
  EXPECT_LT(a[3].at_us - released[0].second, 400'000 + 300'000);
  for (auto& x : a) x.permit.release();
  run_until([&] { return zset("grants", "held").empty(); }, "releases in Redis");
  const auto s = limiter.statistics();
  EXPECT_EQ(s.granted, 4u);
  EXPECT_EQ(s.released, 4u);
  EXPECT_EQ(limiter.in_use(), 0u);
}

TEST_F(RedisLimiter, ServesTheWaitersOfOneProcessInOrder) {
  redis_limiter limiter(ctx.get_executor(), options("fifo", redis_budget::sliding_window(1, 50ms)));
  std::vector<int> order;
  constexpr int waiters = 8;
  for (int i = 0; i < waiters; ++i)
    limiter.async_acquire([&order, i](jobpoll::error_code ec, limiter_permit) {
      if (!ec) order.push_back(i);  // released at once
    });
  run_until([&] { return order.size() == waiters; }, "every grant");
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
}

// Two processes (two limiter objects, two connections): one with a long
// queue does not starve the other, which is served at its turn.
TEST_F(RedisLimiter, ProcessesTakeTurnsSoNoneStarves) {
  const auto budget = redis_budget::sliding_window(1, 60ms);
  redis_limiter busy(ctx.get_executor(), options("turns", budget));
  redis_limiter other(ctx.get_executor(), options("turns", budget));
  std::vector<std::string> order;
  for (int i = 0; i < 12; ++i)
    busy.async_acquire([&order](jobpoll::error_code ec, limiter_permit) {
      if (!ec) order.push_back("busy");
    });
  run_until([&] { return order.size() >= 2; }, "busy's first grants");
  other.async_acquire([&order](jobpoll::error_code ec, limiter_permit) {
    if (!ec) order.push_back("other");
  });
  run_until([&] { return order.size() == 13; }, "every grant");
  const auto at = std::find(order.begin(), order.end(), "other") - order.begin();
  // Its ticket is behind at most busy's current one: served within two grants.
  EXPECT_LE(at, 2 + 2) << testing::PrintToString(order);
}

TEST_F(RedisLimiter, ACancelledWaitConsumesNothing) {
  redis_limiter limiter(ctx.get_executor(), options("cancel", redis_budget::sliding_window(1, 300ms)));
  acquired held, first, second;
  acquire(limiter, held);
  run_until([&] { return held.done; }, "the first grant");
  asio::cancellation_signal cancel_first;
  acquire(limiter, first, &cancel_first);
  acquire(limiter, second);
  run_until([&] { return limiter.statistics().asks >= 2; }, "the queued ask");
  cancel_first.emit(asio::cancellation_type::terminal);
  run_until([&] { return first.done; }, "the cancellation");
  EXPECT_EQ(first.ec, asio::error::operation_aborted);
  EXPECT_FALSE(first.permit);

  held.permit.release();
  std::vector<std::pair<std::string, std::int64_t>> released;
  run_until([&] { return !(released = zset("cancel", "releases")).empty(); }, "the release in Redis");
  ASSERT_EQ(released.size(), 1u);
  run_until([&] { return second.done; }, "the next grant");
  ASSERT_FALSE(second.ec);
  // One window after the one release: the cancelled wait took no slot.
  EXPECT_LT(second.at_us - released[0].second, 300'000 + 250'000);
  EXPECT_EQ(limiter.statistics().cancelled, 1u);
  EXPECT_EQ(limiter.statistics().returned, 0u);
}

// The grant arrives from Redis after its waiter was cancelled: it goes back
// unused (nothing counted), since nobody else waits.
TEST_F(RedisLimiter, AGrantForACancelledWaiterGoesBackUnused) {
  auto o = options("in-flight", redis_budget::sliding_window(2, 1s));
  o.request_timeout = 5s;  // the frozen Redis must not look down
  redis_limiter limiter(ctx.get_executor(), o);
  acquired warm;
  acquire(limiter, warm);
  run_until([&] { return warm.done; }, "a first grant");
  warm.permit.release();
  run_until([&] { return zset("in-flight", "held").empty(); }, "its release in Redis");

  redis.freeze();
  asio::cancellation_signal cancel;
  acquired late;
  const auto asked = limiter.statistics().asks;
  acquire(limiter, late, &cancel);
  // The ask is written to the socket; Redis answers once thawed.
  run_until([&] { return limiter.statistics().asks > asked; }, "the ask");
  cancel.emit(asio::cancellation_type::terminal);
  run_until([&] { return late.done; }, "the cancellation");
  EXPECT_EQ(late.ec, asio::error::operation_aborted);
  redis.thaw();
  run_until([&] { return limiter.statistics().returned == 1 && zset("in-flight", "held").empty(); },
            "the grant given back");
  EXPECT_EQ(zset("in-flight", "releases").size(), 1u) << "only the first request counts";
}

// One limiter's pause (a 429 with Retry-After) holds back another process on
// the same key, on Redis's clock.
TEST_F(RedisLimiter, APauseHoldsBackEveryLimiterOnTheKey) {
  const auto budget = redis_budget::sliding_window(100, 1s);
  redis_limiter first(ctx.get_executor(), options("pause", budget));
  redis_limiter second(ctx.get_executor(), options("pause", budget));
  acquired warm;
  acquire(second, warm);
  run_until([&] { return warm.done; }, "a first grant");
  warm.permit.release();

  const std::int64_t before = redis.time_us();
  first.pause_for(700ms);
  run_until([&] { return std::stoll(state_field("pause", "pause")) > before; }, "the pause in Redis");
  const std::int64_t until = std::stoll(state_field("pause", "pause"));
  EXPECT_GE(until - before, 700'000);

  acquired held_back;
  acquire(second, held_back);
  run_until([&] { return held_back.done; }, "the grant after the pause");
  ASSERT_FALSE(held_back.ec);
  EXPECT_GE(held_back.at_us, until);
  EXPECT_LT(held_back.at_us, until + 300'000);

  // A shorter pause never shortens a longer one.
  second.pause_for(5s);
  first.pause_for(10ms);
  run_until([&] { return first.statistics().calls + second.statistics().calls >= 5; }, "both pauses sent");
  run_until([&] { return std::stoll(state_field("pause", "pause")) >= held_back.at_us + 4'500'000; },
            "the long pause");
}

// Two limiter objects, each with workers that "arrive" at Redis between
// grant and release: never more than the budget in any window of Redis's clock.
TEST_F(RedisLimiter, TheBudgetHoldsOnRedisClockAcrossTwoProcesses) {
  const auto budget = redis_budget::sliding_window(5, 300ms);
  redis_limiter a(ctx.get_executor(), options("budget", budget));
  redis_limiter b(ctx.get_executor(), options("budget", budget));
  std::vector<std::int64_t> arrivals;
  bool stop = false;
  for (int i = 0; i < 6; ++i) {
    asio::co_spawn(ctx, worker(i % 2 ? a : b, redis, arrivals, 8, std::chrono::milliseconds(i * 7), stop),
                   asio::detached);
  }
  run_until([&] { return arrivals.size() == 48 && a.in_use() + b.in_use() == 0; }, "48 requests");
  EXPECT_LE(most_in_window(arrivals, 300'000), 5u);
  // Close to the budget: 48 requests take at least 9 windows, and not much more.
  std::sort(arrivals.begin(), arrivals.end());
  EXPECT_GE(arrivals.back() - arrivals.front(), 9 * 300'000 - 1);
  EXPECT_LT(arrivals.back() - arrivals.front(), 9 * 300'000 + 9 * 100'000);
}

TEST_F(RedisLimiter, TheTokenBucketHoldsOnRedisClock) {
  // 10 per second, bursts of 3: at most 3 + 10 * (t_j - t_i) in [t_i, t_j].
  redis_limiter limiter(ctx.get_executor(), options("bucket", redis_budget::token_bucket(10, 1s, 3)));
  std::vector<std::int64_t> arrivals;
  bool stop = false;
  for (int i = 0; i < 4; ++i)
    asio::co_spawn(ctx, worker(limiter, redis, arrivals, 6, std::chrono::milliseconds(5 * i), stop), asio::detached);
  run_until([&] { return arrivals.size() == 24 && limiter.in_use() == 0; }, "24 requests");
  std::sort(arrivals.begin(), arrivals.end());
  for (std::size_t i = 0; i < arrivals.size(); ++i)
    for (std::size_t j = i; j < arrivals.size(); ++j)
      ASSERT_LE(static_cast<double>(j - i + 1), 3.0 + static_cast<double>(arrivals[j] - arrivals[i]) * 10 / 1e6)
          << "arrivals " << i << " to " << j;
  EXPECT_GT(arrivals.back() - arrivals.front(), 1'900'000);  // (24 - 3) / 10 s, less a little
}

// SIGKILL mid-run, then the same Redis started again, empty. Processes a
// and b (3 workers each) run until 8 requests arrived and every one was
// released and counted in Redis (none held: the processes would hold those
// again); then Redis is killed and started again, and a third process c
// (2 workers) joins at once; the run goes on for 8 more requests. The
// arrivals on Redis's clock, those before the kill, and a's events.
struct restart_run {
  std::vector<std::int64_t> arrivals;
  std::size_t before = 0;
  std::vector<std::string> events;
  jobpoll::redis_limiter_statistics a, b, c;
};

restart_run kill_and_restart(redis_server& redis, asio::io_context& ctx, jobpoll::redis_cold_start cold_start,
                             const std::function<void(const std::function<bool()>&, const std::string&)>& run_until,
                             const std::function<std::size_t()>& held_in_redis) {
  restart_run out;
  auto o = redis.options("restart", redis_budget::sliding_window(4, 1s));
  o.cold_start = cold_start;
  auto with_events = o;
  with_events.on_event = [&out](const jobpoll::redis_limiter_event& e) {
    using kind = jobpoll::redis_limiter_event::kind;
    out.events.push_back(e.what == kind::connected ? "connected"
                         : e.what == kind::down    ? "down"
                         : e.what == kind::refused ? "refused"
                                                   : "state_reset");
  };
  redis_limiter a(ctx.get_executor(), with_events);
  redis_limiter b(ctx.get_executor(), o);
  bool stop = false;
  for (int i = 0; i < 6; ++i)
    asio::co_spawn(ctx, worker(i % 2 ? a : b, redis, out.arrivals, 1000, std::chrono::milliseconds(20 + i * 10), stop),
                   asio::detached);
  run_until([&] { return out.arrivals.size() >= 8 && a.in_use() + b.in_use() == 0 && held_in_redis() == 0; },
            "8 requests, released and counted");
  redis.kill();
  out.before = out.arrivals.size();
  redis.start();
  redis_limiter c(ctx.get_executor(), o);
  for (int i = 0; i < 2; ++i)
    asio::co_spawn(ctx, worker(c, redis, out.arrivals, 1000, 20ms, stop), asio::detached);
  run_until([&] { return out.arrivals.size() >= out.before + 8; }, "8 requests after the restart");
  stop = true;
  run_until([&] { return a.in_use() + b.in_use() + c.in_use() == 0; }, "the last releases");
  out.a = a.statistics();
  out.b = b.statistics();
  out.c = c.statistics();
  return out;
}

// The default cold start holds the new state back one window: never more
// than the budget in any window, across the restart; the run goes on.
TEST_F(RedisLimiter, RedisKilledAndRestartedMidRunAllowsNoBurst) {
  const restart_run run = kill_and_restart(
      redis, ctx, jobpoll::redis_cold_start::hold_back,
      [this](const std::function<bool()>& done, const std::string& what) { run_until(done, what); },
      [this] { return zset("restart", "held").size(); });
  EXPECT_LE(most_in_window(run.arrivals, 1'000'000), 4u);
  EXPECT_GT(run.a.granted + run.b.granted, run.before) << "a and b go on after the restart";
  EXPECT_GT(run.c.granted, 0u);
  EXPECT_THAT(run.events, testing::IsSupersetOf({"connected", "state_reset"}));
  EXPECT_EQ(std::count(run.events.begin(), run.events.end(), "refused"), 0);
}

// What the hold-back prevents: with redis_cold_start::full_budget the new
// state grants a whole budget at once, on top of the window before the kill.
TEST_F(RedisLimiter, WithAFullBudgetColdStartARestartBursts) {
  const restart_run run = kill_and_restart(
      redis, ctx, jobpoll::redis_cold_start::full_budget,
      [this](const std::function<bool()>& done, const std::string& what) { run_until(done, what); },
      [this] { return zset("restart", "held").size(); });
  EXPECT_GT(most_in_window(run.arrivals, 1'000'000), 4u);
}

// A frozen Redis (SIGSTOP) answers nothing: past the request timeout the
// limiter takes it for down and, under the default rule, grants nothing
// until it answers again.
TEST_F(RedisLimiter, WhileRedisAnswersNothingTheWaitRuleGrantsNothing) {
  redis_limiter limiter(ctx.get_executor(), options("frozen", redis_budget::sliding_window(100, 1s)));
  acquired warm;
  acquire(limiter, warm);
  run_until([&] { return warm.done; }, "a first grant");
  warm.permit.release();

  redis.freeze();
  acquired waiting;
  acquire(limiter, waiting);
  run_until([&] { return limiter.statistics().outages == 1; }, "the outage");
  EXPECT_FALSE(waiting.done);
  EXPECT_FALSE(limiter.connected());
  EXPECT_THAT(limiter.last_error(), HasSubstr("no answer from Redis within 0.300s"));
  EXPECT_FALSE(limiter.try_acquire());
  redis.thaw();
  run_until([&] { return waiting.done; }, "the grant once Redis answers");
  EXPECT_FALSE(waiting.ec);
  EXPECT_EQ(limiter.statistics().fallback_granted, 0u);
  EXPECT_TRUE(limiter.connected());
}

// Nothing listening at the address: Redis is down (not a refusal), the
// wait goes on, and the error says where and why.
TEST_F(RedisLimiter, NothingListeningIsAnOutageAndTheWaitGoesOn) {
  auto o = options("nobody", redis_budget::sliding_window(1, 1s));
  o.unix_path = redis.socket_path() + ".missing";
  redis_limiter limiter(ctx.get_executor(), o);
  acquired waiting;
  acquire(limiter, waiting);
  run_until([&] { return limiter.statistics().outages == 1 && !limiter.last_error().empty(); }, "the outage");
  EXPECT_THAT(limiter.last_error(), HasSubstr("cannot connect to " + o.unix_path));
  EXPECT_FALSE(waiting.done);
  EXPECT_EQ(limiter.waiting(), 1u);
  EXPECT_EQ(limiter.statistics().failed, 0u);
}

// Under the fallback rule a frozen or dead Redis leaves the process a
// fraction of the budget, in-process; its permits are handed to Redis when
// it answers again.
TEST_F(RedisLimiter, WhileRedisIsDownTheFallbackGrantsAFractionOfTheBudget) {
  auto o = options("fallback", redis_budget::sliding_window(4, 400ms));
  o.when_down = jobpoll::redis_down_rule::local_fallback;
  o.fallback_fraction = 0.5;  // 2 per 400 ms
  redis_limiter limiter(ctx.get_executor(), o);
  acquired warm;
  acquire(limiter, warm);
  run_until([&] { return warm.done; }, "a first grant");
  warm.permit.release();

  redis.kill();
  std::vector<std::chrono::steady_clock::time_point> grants;
  std::vector<limiter_permit> kept;
  std::function<void()> next = [&] {
    limiter.async_acquire([&](jobpoll::error_code ec, limiter_permit p) {
      if (ec) return;
      grants.push_back(std::chrono::steady_clock::now());
      if (grants.size() == 7) {
        kept.push_back(std::move(p));  // held across the return of Redis
        return;
      }
      p.release();
      next();
    });
  };
  next();
  run_until([&] { return grants.size() == 7; }, "seven fallback grants");
  EXPECT_EQ(limiter.statistics().fallback_granted, 7u);
  for (std::size_t i = 2; i < grants.size(); ++i) EXPECT_GE(grants[i] - grants[i - 2], 400ms);

  // Redis answers again (the held permit keeps the limiter reconnecting):
  // the held fallback permit is held there too, and the ones released
  // within the last window are counted there.
  redis.start();
  run_until([&] { return limiter.connected(); }, "the reconnection");
  const auto fallback_held = [&] {
    const auto held = zset("fallback", "held");
    return std::any_of(held.begin(), held.end(), [](const auto& e) { return e.first.find(":f") != std::string::npos; });
  };
  run_until(fallback_held, "the fallback's permit held in Redis");
  EXPECT_FALSE(zset("fallback", "releases").empty());
  acquired after;
  acquire(limiter, after);
  run_until([&] { return after.done; }, "a grant from Redis again");
  ASSERT_FALSE(after.ec) << after.ec.message() << ": " << limiter.last_error();
  EXPECT_EQ(limiter.statistics().fallback_granted, 7u);
  kept.clear();
  run_until([&] { return zset("fallback", "held").size() == 1; }, "the fallback permit released in Redis");
}

// A process that dies holding a permit: its hold expires after the hold
// timeout and counts then; a process that dies waiting: its ticket expires
// and a grant made for it is given back uncounted.
TEST_F(RedisLimiter, ADeadProcessesHoldAndTicketExpire) {
  auto o = options("dead", redis_budget::sliding_window(1, 200ms));
  o.hold_timeout = 600ms;
  o.ticket_timeout = 150ms;
  auto dead = std::make_unique<redis_limiter>(ctx.get_executor(), o);
  acquired held;
  acquire(*dead, held);
  run_until([&] { return held.done; }, "the dead process's grant");
  const auto hold = zset("dead", "held");
  ASSERT_EQ(hold.size(), 1u);
  static_cast<void>(held.permit);
  // The permit outlives its limiter: its release does nothing any more.
  dead.reset();
  held.permit.release();

  redis_limiter alive(ctx.get_executor(), o);
  acquired next;
  acquire(alive, next);
  run_until([&] { return next.done; }, "a grant after the hold expired");
  ASSERT_FALSE(next.ec);
  // Held until its expiry (granted + 600 ms), counted then, free one window later.
  EXPECT_GE(next.at_us, hold[0].second + 200'000);

  // A dead waiter: its ticket is first in line, then gone.
  auto waiter = std::make_unique<redis_limiter>(ctx.get_executor(), o);
  acquired never;
  acquire(*waiter, never);
  run_until([&] { return waiter->statistics().calls >= 1; }, "the dead waiter's ticket");
  waiter.reset();
  run_until([&] { return never.done; }, "the dead waiter's abort");
  EXPECT_EQ(never.ec, asio::error::operation_aborted);
  next.permit.release();
  acquired after;
  acquire(alive, after);
  run_until([&] { return after.done; }, "a grant past the dead ticket");
  ASSERT_FALSE(after.ec);
  EXPECT_TRUE(zset("dead", "tickets").empty());
}

TEST_F(RedisLimiter, AnotherBudgetOnTheSameKeyIsRefused) {
  redis_limiter first(ctx.get_executor(), options("mismatch", redis_budget::sliding_window(5, 1s)));
  redis_limiter second(ctx.get_executor(), options("mismatch", redis_budget::sliding_window(6, 1s)));
  acquired a, b;
  acquire(first, a);
  run_until([&] { return a.done; }, "the first limiter's grant");
  acquire(second, b);
  run_until([&] { return b.done; }, "the refusal");
  EXPECT_EQ(b.ec, jobpoll::errc::invalid_argument);
  EXPECT_THAT(second.last_error(), HasSubstr("budget mismatch"));
  EXPECT_THAT(second.last_error(), HasSubstr("holds sw:5:1000000, this limiter has sw:6:1000000"));
  EXPECT_EQ(second.statistics().failed, 1u);
}

// SCRIPT FLUSH empties the script cache: EVALSHA answers NOSCRIPT, the
// limiter sends the whole script with EVAL.
TEST_F(RedisLimiter, AFlushedScriptCacheFallsBackToEval) {
  redis_limiter limiter(ctx.get_executor(), options("noscript", redis_budget::sliding_window(10, 1s)));
  acquired a, b;
  acquire(limiter, a);
  run_until([&] { return a.done; }, "a grant");
  ASSERT_EQ(redis.command({"SCRIPT", "FLUSH"}).text, "OK");
  acquire(limiter, b);
  run_until([&] { return b.done; }, "a grant after the flush");
  EXPECT_FALSE(b.ec);
  EXPECT_EQ(limiter.statistics().outages, 0u);
}

// Over TCP, by a host name: resolved, connected, granted.
TEST(RedisLimiterTcp, ConnectsByHostNameOverTcp) {
  redis_server redis(true);
  asio::io_context ctx;
  auto o = redis.options("tcp", redis_budget::sliding_window(2, 1s));
  o.unix_path.clear();
  o.host = "localhost";
  o.port = static_cast<std::uint16_t>(redis.port());
  o.cold_start = jobpoll::redis_cold_start::full_budget;
  o.connect_timeout = 5s;
  redis_limiter limiter(ctx.get_executor(), o);
  jobpoll::error_code result = asio::error::would_block;
  limiter.async_acquire([&](jobpoll::error_code ec, limiter_permit) { result = ec; });
  ctx.run();  // returns once idle: the limiter leaves nothing pending
  EXPECT_FALSE(result) << result.message() << " " << limiter.last_error();
  EXPECT_TRUE(limiter.connected());
  EXPECT_EQ(limiter.statistics().connects, 1u);
}

// A new state (a first use, or after a restart) holds back one window by default.
TEST(RedisLimiterColdStart, ANewStateHoldsBackOneWindow) {
  redis_server redis;
  asio::io_context ctx;
  redis_limiter limiter(ctx.get_executor(), redis.options("cold", redis_budget::sliding_window(3, 400ms)));
  const std::int64_t start = redis.time_us();
  std::int64_t granted_at = 0;
  limiter.async_acquire([&](jobpoll::error_code ec, limiter_permit) {
    if (!ec) granted_at = redis.time_us();
  });
  ctx.run();
  ASSERT_GT(granted_at, 0);
  EXPECT_GE(granted_at - start, 400'000);
}

// Destroying the limiter aborts its waiters and leaves nothing pending.
TEST(RedisLimiterLifetime, DestructionAbortsWaitersAndLeavesNothingBehind) {
  redis_server redis;
  asio::io_context ctx;
  std::vector<jobpoll::error_code> ends;
  {
    auto o = redis.options("lifetime", redis_budget::sliding_window(1, 10s));
    o.cold_start = jobpoll::redis_cold_start::full_budget;
    redis_limiter limiter(ctx.get_executor(), o);
    for (int i = 0; i < 3; ++i)
      limiter.async_acquire([&ends](jobpoll::error_code ec, limiter_permit) { ends.push_back(ec); });
    while (ends.empty()) ctx.run_one();
  }
  ctx.run();
  ASSERT_EQ(ends.size(), 3u);
  EXPECT_FALSE(ends[0]);
  EXPECT_EQ(ends[1], asio::error::operation_aborted);
  EXPECT_EQ(ends[2], asio::error::operation_aborted);
}

}  // namespace
