// The decisions of redis_limiter that need no Redis: the limit URL, the
// options' rules, the budget's signature, what a script answer and an error
// reply mean, how long to wait before asking again, the fallback's budget,
// the ledger of held permits and the script's argument lists. (The script's
// own decisions are checked against limiter_budget.hpp on a real Redis in
// tests/integration/redis_limiter_test.cpp.)

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <jobpoll/detail/redis/decisions.hpp>
#include <jobpoll/detail/redis/reply.hpp>
#include <jobpoll/detail/redis/script.hpp>
#include <jobpoll/redis_limiter_options.hpp>

namespace {

using namespace std::chrono_literals;
using jobpoll::parse_redis_limit_url;
using jobpoll::redis_budget;
using jobpoll::redis_limiter_options;
using jobpoll::detail::redis::reply;
using testing::ElementsAre;
using testing::HasSubstr;

// The message of the std::invalid_argument `f` throws ("" and a failure if none).
template <class F>
std::string invalid(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  ADD_FAILURE() << "no std::invalid_argument";
  return {};
}

TEST(RedisLimitUrl, ReadsHostPortKeyAndASlidingWindow) {
  const redis_limiter_options o = parse_redis_limit_url("redis://10.0.0.5:6380/reporting-api?rate=20/15s");
  EXPECT_EQ(o.host, "10.0.0.5");
  EXPECT_EQ(o.port, 6380);
  EXPECT_TRUE(o.unix_path.empty());
  EXPECT_EQ(o.key, "reporting-api");
  EXPECT_EQ(o.budget, redis_budget::sliding_window(20, 15s));
  EXPECT_EQ(o.when_down, jobpoll::redis_down_rule::wait);
  EXPECT_EQ(o.cold_start, jobpoll::redis_cold_start::hold_back);
}

TEST(RedisLimitUrl, ReadsATokenBucketCredentialsIpv6AndEveryOption) {
  const redis_limiter_options o = parse_redis_limit_url(
      "redis://ops:s%40cret@[::1]/api%2Fv1?bucket=5/1s&burst=10&prefix=app:&hold=45s&ticket=2s&timeout=500ms"
      "&fallback=0.25&cold_start=full");
  EXPECT_EQ(o.user, "ops");
  EXPECT_EQ(o.password, "s@cret");
  EXPECT_EQ(o.host, "::1");
  EXPECT_EQ(o.port, 6379);
  EXPECT_EQ(o.key, "api/v1");
  EXPECT_EQ(o.budget, redis_budget::token_bucket(5, 1s, 10));
  EXPECT_EQ(o.key_prefix, "app:");
  EXPECT_EQ(o.hold_timeout, 45s);
  EXPECT_EQ(o.ticket_timeout, 2s);
  EXPECT_EQ(o.connect_timeout, 500ms);
  EXPECT_EQ(o.request_timeout, 500ms);
  EXPECT_EQ(o.when_down, jobpoll::redis_down_rule::local_fallback);
  EXPECT_DOUBLE_EQ(o.fallback_fraction, 0.25);
  EXPECT_EQ(o.cold_start, jobpoll::redis_cold_start::full_budget);
}

TEST(RedisLimitUrl, ReadsAUnixSocketWithItsKeyInTheQuery) {
  const redis_limiter_options o = parse_redis_limit_url("unix:///run/redis/redis.sock?key=quota&rate=100/1m");
  EXPECT_EQ(o.unix_path, "/run/redis/redis.sock");
  EXPECT_EQ(o.key, "quota");
  EXPECT_EQ(o.budget, redis_budget::sliding_window(100, 60s));
}

TEST(RedisLimitUrl, KeepsTheDefaultsItDoesNotSet) {
  redis_limiter_options defaults;
  defaults.request_timeout = 7s;
  defaults.key_prefix = "mine:";
  const auto o = parse_redis_limit_url("redis://h/k?rate=1/1s", defaults);
  EXPECT_EQ(o.request_timeout, 7s);
  EXPECT_EQ(o.key_prefix, "mine:");
}

TEST(RedisLimitUrl, SaysWhatIsWrongAndWhatWasReceived) {
  const auto error = [](const std::string& url) { return invalid([&] { parse_redis_limit_url(url); }); };
  EXPECT_EQ(error("http://h/k?rate=1/1s"),
            "jobpoll::parse_redis_limit_url: expected a URL starting with redis:// or unix://, got "
            "'http://h/k?rate=1/1s'");
  EXPECT_EQ(error("redis://h/k"),
            "jobpoll::parse_redis_limit_url: expected the budget: rate=N/DURATION (e.g. rate=20/15s) or "
            "bucket=N/DURATION&burst=B, got 'redis://h/k'");
  EXPECT_THAT(error("redis://h:99999/k?rate=1/1s"), HasSubstr("the port must be a number from 1 to 65535"));
  EXPECT_THAT(error("redis://h:/k?rate=1/1s"), HasSubstr("expected a port after ':'"));
  EXPECT_THAT(error("redis://h?rate=1/1s"), HasSubstr("expected the key as the path"));
  EXPECT_THAT(error("redis:///k?rate=1/1s"), HasSubstr("expected a host after redis://"));
  EXPECT_THAT(error("redis://h/a/b?rate=1/1s"), HasSubstr("found a '/' in it"));
  EXPECT_THAT(error("redis://h/k?rate=20per15"),
              HasSubstr("rate must be N/DURATION like 20/15s (N from 1 to 1048576), found '20per15'"));
  EXPECT_THAT(error("redis://h/k?rate=0/1s"), HasSubstr("found '0/1s'"));
  EXPECT_THAT(error("redis://h/k?rate=1/0"), HasSubstr("found '1/0'"));
  EXPECT_THAT(error("redis://h/k?bucket=5/1s"), HasSubstr("bucket= needs burst=B"));
  EXPECT_THAT(error("redis://h/k?rate=5/1s&bucket=5/1s&burst=1"), HasSubstr("not both"));
  EXPECT_THAT(error("redis://h/k?rate=5/1s&burst=2"), HasSubstr("burst= goes with bucket="));
  EXPECT_THAT(error("redis://h/k?rate=5/1s&fallback=2"), HasSubstr("fallback must be a fraction in (0, 1] or none"));
  EXPECT_THAT(error("redis://h/k?rate=5/1s&hold=soon"), HasSubstr("hold must be a duration > 0"));
  EXPECT_THAT(error("redis://h/k?rate=5/1s&colour=red"), HasSubstr("unknown option 'colour'"));
  EXPECT_THAT(error("redis://h/k?rate=5/1s&cold_start=maybe"), HasSubstr("cold_start must be hold or full"));
  EXPECT_THAT(error("redis://h/k%zz?rate=5/1s"), HasSubstr("malformed %-escape"));
  EXPECT_THAT(error("redis://h/k?key=x&rate=5/1s"), HasSubstr("key= is for unix:// URLs"));
  EXPECT_THAT(error("unix://relative.sock?key=k&rate=1/1s"), HasSubstr("expected unix:///absolute/path"));
  EXPECT_THAT(error("unix:///tmp/r.sock?rate=1/1s"), HasSubstr("expected the key"));
  EXPECT_THAT(error("redis://[::1/k?rate=1/1s"), HasSubstr("closing ']'"));
  EXPECT_THAT(error("redis://h/k%7Bx?rate=1/1s"), HasSubstr("key must be printable, without '{', '}' or spaces"));
  // Rules of validate() come through with the URL.
  EXPECT_THAT(error("redis://h/k?rate=1/1s&hold=1s&ticket=2s"),
              HasSubstr("hold_timeout must be longer than ticket_timeout"));
}

TEST(RedisLimitUrl, NeverShowsThePassword) {
  const std::string message = invalid([] { parse_redis_limit_url("redis://u:hunter2@h/k?rate=oops"); });
  EXPECT_THAT(message, HasSubstr("got 'redis://u:***@h/k?rate=oops'"));
  EXPECT_THAT(message, testing::Not(HasSubstr("hunter2")));
}

TEST(RedisLimiterOptions, ValidateNamesTheRuleAndTheValue) {
  const auto error = [](auto change) {
    redis_limiter_options o;
    change(o);
    return invalid([&] { jobpoll::validate(o); });
  };
  EXPECT_NO_THROW(jobpoll::validate(redis_limiter_options{}));
  EXPECT_EQ(error([](auto& o) { o.budget.count = 0; }),
            "jobpoll::redis_limiter_options: budget count must be 1 to 1048576, got 0");
  EXPECT_EQ(error([](auto& o) { o.budget.period = 0ns; }),
            "jobpoll::redis_limiter_options: budget period must be 1us to 366 days, got 0ns");
  EXPECT_EQ(error([](auto& o) { o.budget = redis_budget::token_bucket(1, 1s, 0); }),
            "jobpoll::redis_limiter_options: token bucket burst must be 1 to 1048576, got 0");
  EXPECT_EQ(error([](auto& o) { o.key = ""; }),
            "jobpoll::redis_limiter_options: key must have 1 to 200 characters, got ''");
  EXPECT_THAT(error([](auto& o) { o.key = "a b"; }), HasSubstr("got 'a b'"));
  EXPECT_THAT(error([](auto& o) { o.fallback_fraction = 0; }), HasSubstr("fallback_fraction must be in (0, 1], got 0"));
  EXPECT_THAT(error([](auto& o) { o.request_timeout = 0ns; }), HasSubstr("request_timeout must be"));
  EXPECT_THAT(error([](auto& o) { o.port = 0; }), HasSubstr("port must be 1 to 65535"));
  EXPECT_NO_THROW(jobpoll::validate([] {
    redis_limiter_options o;
    o.port = 0;
    o.unix_path = "/tmp/r.sock";  // a socket needs no port
    return o;
  }()));
}

TEST(RedisBudget, SignatureAndHorizon) {
  EXPECT_EQ(redis_budget::sliding_window(20, 15s).signature(), "sw:20:15000000");
  EXPECT_EQ(redis_budget::token_bucket(5, 1s, 10).signature(), "gcra:5:1000000:10");
  // Periods are whole microseconds, rounded up.
  EXPECT_EQ(redis_budget::sliding_window(1, 1500ns).signature(), "sw:1:2");
  EXPECT_EQ(redis_budget::sliding_window(20, 15s).horizon(), 15s);
  EXPECT_EQ(redis_budget::token_bucket(5, 1s, 10).horizon(), 2s);  // 10 tokens at 5 per second
}

reply answer(long long status, reply value, long long now = 1'000'000, long long fresh = 0) {
  return reply::of_array({reply::of_integer(status), std::move(value), reply::of_string("17"), reply::of_integer(now),
                          reply::of_integer(fresh)});
}

TEST(RedisScriptAnswer, ReadsAGrantAWaitAndADoneOp) {
  using jobpoll::detail::redis::read_answer;
  const auto grant = read_answer(answer(1, reply::of_string("p:1"), 5, 1));
  EXPECT_TRUE(grant.granted);
  EXPECT_EQ(grant.permit, "p:1");
  EXPECT_EQ(grant.epoch, "17");
  EXPECT_EQ(grant.server_now_us, 5);
  EXPECT_TRUE(grant.fresh);
  const auto wait = read_answer(answer(0, reply::of_integer(1'400'000)));
  EXPECT_FALSE(wait.granted);
  EXPECT_EQ(wait.not_before_us, 1'400'000);
  EXPECT_FALSE(wait.fresh);
  const auto done = read_answer(answer(2, reply::of_integer(0)));
  EXPECT_FALSE(done.granted);
}

TEST(RedisScriptAnswer, RefusesAnythingElseSayingWhatCame) {
  using jobpoll::detail::redis::protocol_error;
  using jobpoll::detail::redis::read_answer;
  const auto message = [](const reply& r) {
    try {
      read_answer(r);
    } catch (const protocol_error& e) {
      return std::string(e.what());
    }
    ADD_FAILURE() << "accepted " << describe(r);
    return std::string();
  };
  EXPECT_EQ(message(reply::of_status("OK")),
            "unexpected answer from Redis to the limiter script (expected an array of 5): +OK");
  EXPECT_THAT(message(answer(3, reply::of_integer(1))), HasSubstr("status must be 0, 1 or 2"));
  EXPECT_THAT(message(answer(1, reply::of_string(""))), HasSubstr("a grant must name its permit"));
  EXPECT_THAT(message(answer(0, reply::of_integer(1'000'000))), HasSubstr("a wait must end after now"));
  EXPECT_THAT(message(answer(0, reply::of_string("soon"))), HasSubstr("a wait must end after now"));
  EXPECT_THAT(message(answer(1, reply::of_string("p"), -1)), HasSubstr("server time must be a positive integer"));
  // A huge reply is described within bounds.
  std::vector<reply> many(100, reply::of_string(std::string(1000, 'x')));
  const std::string big = message(reply::of_array(std::move(many)));
  EXPECT_LT(big.size(), 2000u);
  EXPECT_THAT(big, HasSubstr("...(100 elements)"));
}

TEST(RedisErrorClass, NoScriptTransientOrRefused) {
  using jobpoll::detail::redis::classify_error;
  using jobpoll::detail::redis::error_class;
  EXPECT_EQ(classify_error("NOSCRIPT No matching script. Please use EVAL."), error_class::no_script);
  EXPECT_EQ(classify_error("LOADING Redis is loading the dataset in memory"), error_class::transient);
  EXPECT_EQ(classify_error("BUSY Redis is busy running a script."), error_class::transient);
  EXPECT_EQ(classify_error("OOM command not allowed when used memory > 'maxmemory'."), error_class::transient);
  EXPECT_EQ(classify_error("MASTERDOWN Link with MASTER is down"), error_class::transient);
  EXPECT_EQ(classify_error("BUSYKEY Target key name already exists."), error_class::refused);
  EXPECT_EQ(classify_error("WRONGPASS invalid username-password pair"), error_class::refused);
  EXPECT_EQ(classify_error("jobpoll budget mismatch: k holds sw:1:1, this limiter has sw:2:1"), error_class::refused);
  EXPECT_EQ(classify_error("WRONGTYPE Operation against a key holding the wrong kind of value"),
            error_class::refused);
}

TEST(RedisAskAgain, WaitsUntilTheServerTimeButKeepsTheTicketAlive) {
  using jobpoll::detail::redis::ask_again_in;
  jobpoll::detail::redis::script_answer a;
  a.server_now_us = 1'000'000;
  a.not_before_us = 1'250'000;
  EXPECT_EQ(ask_again_in(a, 3s), 250ms);
  a.not_before_us = 31'000'000;  // a 30 s pause: asked again every second
  EXPECT_EQ(ask_again_in(a, 3s), 1s);
  a.not_before_us = 900'000;  // a clock reading behind: at once
  EXPECT_EQ(ask_again_in(a, 3s), 0ns);
}

TEST(RedisFallbackBudget, AFractionNeverBelowOnePerPeriod) {
  using jobpoll::detail::redis::fallback_budget;
  EXPECT_EQ(fallback_budget(redis_budget::sliding_window(20, 15s), 0.25), redis_budget::sliding_window(5, 15s));
  EXPECT_EQ(fallback_budget(redis_budget::sliding_window(3, 1s), 0.25), redis_budget::sliding_window(1, 1s));
  EXPECT_EQ(fallback_budget(redis_budget::sliding_window(20, 15s), 1.0), redis_budget::sliding_window(20, 15s));
  // The bucket: the rate scaled by stretching the period, the burst scaled.
  EXPECT_EQ(fallback_budget(redis_budget::token_bucket(10, 1s, 8), 0.5), redis_budget::token_bucket(10, 2s, 4));
  EXPECT_EQ(fallback_budget(redis_budget::token_bucket(10, 1s, 1), 0.1), redis_budget::token_bucket(10, 10s, 1));
}

TEST(RedisPermitLedger, TicketsGrantsReleasesAndTheRefresh) {
  using time_point = std::chrono::steady_clock::time_point;
  jobpoll::detail::redis::permit_ledger<time_point> ledger("proc");
  const time_point t0{};

  // One ticket until it is used; then a new one (the back of the line).
  EXPECT_FALSE(ledger.has_ticket());
  const std::string first = ledger.ticket();
  EXPECT_EQ(first, "proc:1");
  EXPECT_EQ(ledger.ticket(), first);
  ledger.ticket_done();
  EXPECT_NE(ledger.ticket(), first);
  ledger.ticket_done();

  // A Redis grant is released in Redis under its id.
  const auto granted = ledger.add_granted("proc:1");
  EXPECT_TRUE(ledger.registered(granted));
  EXPECT_EQ(ledger.release(granted, t0), "proc:1");
  EXPECT_EQ(ledger.release(granted, t0), "") << "released once";

  // A fallback grant is unknown to Redis: nothing to send on release; the
  // refresh hands Redis the held ones (h) and the releases within the
  // horizon (r), counted there at its own time.
  const auto held = ledger.add_fallback();
  const auto gone = ledger.add_fallback();
  const auto old = ledger.add_fallback();
  EXPECT_FALSE(ledger.registered(held));
  EXPECT_EQ(ledger.release(old, t0), "");
  EXPECT_EQ(ledger.release(gone, t0 + 10s), "");
  EXPECT_EQ(ledger.held(), 1u);
  const auto entries = ledger.refresh_entries(t0 + 14s, 5s);  // `old` left the horizon
  EXPECT_THAT(entries, ElementsAre("hproc:f" + std::to_string(held), "rproc:f" + std::to_string(gone)));
  ledger.refreshed(entries);
  EXPECT_TRUE(ledger.registered(held));
  EXPECT_EQ(ledger.unregistered_releases(), 0u);
  EXPECT_EQ(ledger.release(held, t0 + 15s), "proc:f" + std::to_string(held)) << "now Redis's to release";
}

TEST(RedisPermitLedger, ARefreshRegistersOnlyWhatItCarried) {
  using time_point = std::chrono::steady_clock::time_point;
  jobpoll::detail::redis::permit_ledger<time_point> ledger("p");
  const auto a = ledger.add_fallback();
  const auto entries = ledger.refresh_entries(time_point{}, 1s);
  const auto b = ledger.add_fallback();  // granted while the refresh was under way
  ledger.refreshed(entries);
  EXPECT_TRUE(ledger.registered(a));
  EXPECT_FALSE(ledger.registered(b));
}

TEST(RedisScriptArguments, KeysInOneSlotBudgetAndTimeouts) {
  redis_limiter_options o;
  o.key = "api";
  o.budget = redis_budget::sliding_window(20, 15s);
  o.hold_timeout = 30s;
  o.ticket_timeout = 3s;
  EXPECT_THAT(jobpoll::detail::redis::limiter_keys(o),
              ElementsAre("jobpoll:limit:{api}:state", "jobpoll:limit:{api}:releases", "jobpoll:limit:{api}:held",
                          "jobpoll:limit:{api}:queue", "jobpoll:limit:{api}:tickets", "jobpoll:limit:{api}:granted"));
  const auto args = jobpoll::detail::redis::script_arguments(o, "acquire", {"t:1"});
  ASSERT_EQ(args.size(), 1u + 6 + 6 + 1);
  EXPECT_EQ(args[0], "6");
  EXPECT_THAT(std::vector<std::string>(args.begin() + 7, args.end()),
              ElementsAre("acquire", "sw:20:15000000", "30000000", "3000000", "hold", "86400000", "t:1"));
  o.cold_start = jobpoll::redis_cold_start::full_budget;
  o.budget = redis_budget::sliding_window(1, 24h * 7);
  const auto week = jobpoll::detail::redis::script_arguments(o, "leave", {"t:2"});
  EXPECT_EQ(week[11], "full");
  EXPECT_EQ(week[12], std::to_string(10LL * 7 * 86'400'000)) << "keys outlive ten windows";
}

}  // namespace
