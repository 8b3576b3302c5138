#pragma once
// Helpers shared by the rate limiter tests (limiter_test.cpp for what every
// limiter does, sliding_window_limiter_test.cpp and
// token_bucket_limiter_test.cpp for each algorithm) and the budget tests
// (limiter_budget_test.cpp): the grant times each algorithm promises, checks
// of its bound, reproducible demand, a fixture on the manual clock and a
// two-thread harness. Every time here is exact: manual clock, no sleeps.
// A permit the helpers drop at once (`static_cast<void>(co_await ...)`)
// counts its start at the grant, which is what these grant-time tests
// measure; the held-permit rules have tests of their own.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <jobpoll/detail/basic_limiter.hpp>
#include <jobpoll/testing/manual_clock.hpp>

namespace jobpoll_test {

using jobpoll::testing::manual_clock;

// ---------------------------------------------------------------------------
// Budgets and their bounds, for any time point (the budget tests use
// std::chrono::steady_clock's, the limiter tests manual_clock's).

/// A deterministic generator, so "random" demand repeats exactly.
struct lcg {
  std::uint64_t state;
  std::uint64_t next(std::uint64_t bound) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (state >> 33) % bound;
  }
};

/// One start: when it was asked for and when it was granted.
template <class TimePoint>
struct grant {
  TimePoint requested;
  TimePoint granted;
};

template <class TimePoint>
std::vector<TimePoint> granted_times(const std::vector<grant<TimePoint>>& grants) {
  std::vector<TimePoint> times;
  for (const auto& g : grants) times.push_back(g.granted);
  return times;
}

/// When the k-th start (from 0) of a backlog that began at time zero is
/// granted by a sliding window of `n` starts per `window`: `n` at once, then
/// `n` more as each window ends.
inline std::chrono::nanoseconds window_backlog_grant(std::size_t k, std::size_t n, std::chrono::nanoseconds window) {
  return static_cast<std::int64_t>(k / n) * window;
}

/// When the k-th start (from 0) of a backlog that began at time zero is
/// granted by a token bucket of `tokens` per `per` holding `burst`: the burst
/// at once, then one every per / tokens, rounded up to a whole nanosecond.
inline std::chrono::nanoseconds bucket_backlog_grant(std::size_t k, std::int64_t tokens, std::chrono::nanoseconds per,
                                                     std::int64_t burst) {
  const std::int64_t refills = static_cast<std::int64_t>(k) - burst + 1;
  if (refills <= 0) return {};
  return std::chrono::nanoseconds((refills * per.count() + tokens - 1) / tokens);
}

/// Every grant at exactly `expected(i)`.
template <class TimePoint, class Expected>
void expect_grants_at(const std::vector<TimePoint>& grants, Expected expected) {
  for (std::size_t i = 0; i < grants.size(); ++i) ASSERT_EQ(grants[i], expected(i)) << "grant " << i;
}

/// No window [t, t + window) holds more than `n` of the (sorted) starts.
template <class TimePoint>
void expect_window_respected(const std::vector<TimePoint>& starts, std::size_t n, typename TimePoint::duration window) {
  ASSERT_TRUE(std::is_sorted(starts.begin(), starts.end()));
  for (std::size_t i = 0; i + n < starts.size(); ++i) {
    ASSERT_GE(starts[i + n] - starts[i], window) << "starts " << i << " to " << i + n << " share one window";
  }
}

/// How much of a window's budget sorted arrivals use in steady state: the
/// rate of the arrivals after the first `n` (a full window's worth, which
/// arrive at once), from the first arrival to the last, as a fraction of
/// `n` per `window`. Edge effects of the span (whole batches counted in a
/// span that ends mid-cycle) do not inflate it.
template <class T, class Duration>
double window_use(const std::vector<T>& arrivals, std::size_t n, Duration window) {
  if (arrivals.size() <= n) return 0;
  const double span = std::chrono::duration<double>(arrivals.back() - arrivals.front()).count();
  const double rate = static_cast<double>(arrivals.size() - n) / span;
  return rate / (static_cast<double>(n) / std::chrono::duration<double>(window).count());
}

/// The token bucket bound: the starts i..j (sorted) never outnumber the burst
/// plus the tokens refilled between the first and the last of them.
template <class TimePoint>
void expect_bucket_respected(const std::vector<TimePoint>& starts, std::int64_t tokens,
                             typename TimePoint::duration per, std::int64_t burst) {
  ASSERT_TRUE(std::is_sorted(starts.begin(), starts.end()));
  for (std::size_t i = 0; i < starts.size(); ++i) {
    for (std::size_t j = i; j < starts.size(); ++j) {
      const std::int64_t refilled = (starts[j] - starts[i]).count() * tokens / per.count();
      ASSERT_LE(static_cast<std::int64_t>(j - i + 1), burst + refilled) << "starts " << i << " to " << j;
    }
  }
}

/// FIFO, and each start as soon as it is asked for, the previous one has been
/// granted and the window allows it (n starts back plus the window): never
/// late, never early.
template <class TimePoint>
void expect_window_earliest(const std::vector<grant<TimePoint>>& grants, std::size_t n,
                            typename TimePoint::duration window) {
  for (std::size_t i = 0; i < grants.size(); ++i) {
    TimePoint expected = grants[i].requested;
    if (i > 0) expected = std::max(expected, grants[i - 1].granted);
    if (i >= n) expected = std::max(expected, grants[i - n].granted + window);
    ASSERT_EQ(grants[i].granted, expected) << "grant " << i;
  }
}

/// FIFO, and each start at the first tick when the bucket holds a token: by
/// the token bucket (GCRA) bound, start i may not come before start j plus
/// (i - j - burst + 1) intervals, for every earlier j.
template <class TimePoint>
void expect_bucket_earliest(const std::vector<grant<TimePoint>>& grants, std::int64_t tokens,
                            typename TimePoint::duration per, std::int64_t burst) {
  for (std::size_t i = 0; i < grants.size(); ++i) {
    std::int64_t expected = grants[i].requested.time_since_epoch().count();
    if (i > 0) expected = std::max(expected, grants[i - 1].granted.time_since_epoch().count());
    const auto n = static_cast<std::int64_t>(i);
    for (std::int64_t j = 0; j + burst <= n; ++j) {
      const std::int64_t scaled =
          grants[j].granted.time_since_epoch().count() * tokens + (n - j - burst + 1) * per.count();
      expected = std::max(expected, (scaled + tokens - 1) / tokens);
    }
    ASSERT_EQ(grants[i].granted.time_since_epoch().count(), expected) << "grant " << i;
  }
}

/// Drives a budget alone from time zero: `count` requests, each `next_gap()`
/// after the previous start, each committed at the earliest time the budget
/// allows.
template <class Budget, class NextGap>
std::vector<grant<typename Budget::time_point>> commit_at_earliest(Budget& budget, std::size_t count,
                                                                   NextGap next_gap) {
  std::vector<grant<typename Budget::time_point>> grants;
  typename Budget::time_point now{};
  for (std::size_t i = 0; i < count; ++i) {
    now += next_gap();
    const auto t = budget.earliest(now);
    budget.commit(t);
    grants.push_back({now, t});
    now = t;
  }
  return grants;
}

// ---------------------------------------------------------------------------
// Limiters on the manual clock.

using time_point = manual_clock::time_point;

inline time_point at(manual_clock::duration d) { return time_point(d); }

inline void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

/// How a wait ended and the simulated time it ended at, once it has.
using outcome = std::optional<std::pair<jobpoll::error_code, time_point>>;

/// Matches an outcome: granted at `t`.
inline auto granted_at(manual_clock::duration t) {
  return ::testing::Optional(::testing::Pair(jobpoll::error_code{}, at(t)));
}

/// Matches an outcome: aborted (cancelled, or the limiter destroyed) at `t`.
inline auto aborted_at(manual_clock::duration t) {
  return ::testing::Optional(::testing::Pair(make_error_code(asio::error::operation_aborted), at(t)));
}

/// The clock moved to `time`, and what try_acquire should answer then.
struct try_step {
  manual_clock::duration time;
  bool granted;
};

/// A fresh manual clock and an io_context for each test.
class limiter_fixture : public ::testing::Test {
 protected:
  void SetUp() override { manual_clock::reset(); }

  void run() { manual_clock::run(ctx); }

  /// Runs only the handlers that are ready now; time does not move.
  void poll() {
    ctx.restart();
    ctx.poll();
  }

  /// No timer wait, no queued handler and no outstanding work remain.
  void expect_nothing_left_behind() {
    EXPECT_EQ(manual_clock::pending_waits(), 0u);
    poll();
    EXPECT_TRUE(ctx.stopped()) << "the io_context still has outstanding work";
  }

  /// For each step in turn: the clock moves to its time, and `try_acquire` answers as it says.
  template <class Limiter>
  static void expect_try_acquire(Limiter& limiter, std::initializer_list<try_step> steps) {
    for (const try_step& s : steps) {
      manual_clock::advance_to(at(s.time));
      EXPECT_EQ(static_cast<bool>(limiter.try_acquire()), s.granted) << "at " << s.time.count() << "ns";
    }
  }

  /// The limiter has granted `granted` starts and aborted `cancelled` waits,
  /// and nothing is left behind.
  template <class Limiter>
  void expect_done(const Limiter& limiter, std::uint64_t granted, std::uint64_t cancelled) {
    EXPECT_EQ(limiter.statistics().granted, granted);
    EXPECT_EQ(limiter.statistics().cancelled, cancelled);
    expect_nothing_left_behind();
  }

  /// A handler recording into `out`.
  static auto record(outcome& out) {
    return [&out](jobpoll::error_code ec, jobpoll::limiter_permit) { out.emplace(ec, manual_clock::now()); };
  }

  /// A handler recording into `out`, cancelled through `signal`.
  auto record_cancellable(outcome& out) { return asio::bind_cancellation_slot(signal.slot(), record(out)); }

  /// A handler that expects a grant and appends `(who, when)` to `order`.
  static auto record_as(std::vector<std::pair<int, time_point>>& order, int who) {
    return [&order, who](jobpoll::error_code ec, jobpoll::limiter_permit) {
      EXPECT_FALSE(ec);
      order.emplace_back(who, manual_clock::now());
    };
  }

  /// Starts `count` waits, each appending its grant time to `grants`.
  template <class Limiter>
  static void start_waits(Limiter& limiter, std::size_t count, std::vector<time_point>& grants) {
    for (std::size_t i = 0; i < count; ++i) {
      limiter.async_acquire([&grants](jobpoll::error_code ec, jobpoll::limiter_permit) {
        EXPECT_FALSE(ec);
        grants.push_back(manual_clock::now());
      });
    }
  }

  /// The grant times of `count` waits started at once (none may complete
  /// inside async_acquire), once everything has run.
  template <class Limiter>
  std::vector<time_point> grant_times(Limiter& limiter, std::size_t count) {
    std::vector<time_point> grants;
    start_waits(limiter, count, grants);
    EXPECT_TRUE(grants.empty()) << "a grant completed inside async_acquire";
    run();
    return grants;
  }

  /// `pollers` coroutines that each acquire `each` starts back to back: the
  /// grant times, in order, once everything has run.
  template <class Limiter>
  std::vector<time_point> run_backlogged_pollers(Limiter& limiter, int pollers, int each) {
    std::vector<time_point> grants;
    for (int p = 0; p < pollers; ++p) {
      asio::co_spawn(
          ctx,
          [&]() -> asio::awaitable<void> {
            for (int k = 0; k < each; ++k) {
              static_cast<void>(co_await limiter.async_acquire(asio::use_awaitable));
              grants.push_back(manual_clock::now());
            }
          },
          rethrow);
    }
    run();
    return grants;
  }

  /// `pollers` coroutines that each, `each` times, work for a reproducible
  /// random time under `max_work` and then acquire a start: every request and
  /// grant, in the order of the grants, once everything has run.
  template <class Limiter>
  std::vector<grant<time_point>> run_irregular_pollers(Limiter& limiter, std::uint64_t pollers, int each,
                                                       std::chrono::milliseconds max_work) {
    std::vector<grant<time_point>> grants;
    for (std::uint64_t p = 0; p < pollers; ++p) {
      asio::co_spawn(
          ctx,
          [&, p]() -> asio::awaitable<void> {
            lcg rng{p + 1};
            manual_clock::timer work(ctx);
            for (int k = 0; k < each; ++k) {
              work.expires_after(std::chrono::milliseconds(rng.next(static_cast<std::uint64_t>(max_work.count()))));
              co_await work.async_wait(asio::use_awaitable);
              const time_point requested = manual_clock::now();
              static_cast<void>(co_await limiter.async_acquire(asio::use_awaitable));
              grants.push_back({requested, manual_clock::now()});
            }
          },
          rethrow);
    }
    run();
    return grants;
  }

  // Declared first, destroyed last: a completion still queued in ctx when a
  // test ends clears its slot on destruction, so the signal must outlive ctx.
  asio::cancellation_signal signal;
  asio::io_context ctx;
};

// ---------------------------------------------------------------------------
// One limiter shared by pollers on two threads.

struct threaded_run {
  std::vector<time_point> grants;
  jobpoll::limiter_statistics statistics;
  bool finished = false;
  bool try_acquire_refused = true;
};

constexpr std::size_t threaded_total = 1000;  // 100 pollers, 10 starts each

/// The limiter `make(home.get_executor())` on `home`, 100 pollers on `pollers`
/// (the same context, run by two threads, or two contexts, one thread each).
/// Time moves only from this thread, to the time the next start is due
/// (`expected(k)` for the k-th), and only once every earlier start has been
/// granted, so every grant time is known exactly. Each time, and at the end,
/// `try_acquire` must be refused: the budget is used up at that moment.
template <class MakeLimiter, class Expected>
threaded_run run_on_two_threads(asio::io_context& home, asio::io_context& pollers, MakeLimiter make,
                                Expected expected) {
  threaded_run out;
  auto home_work = asio::make_work_guard(home);
  auto pollers_work = asio::make_work_guard(pollers);
  auto limiter = make(home.get_executor());
  std::mutex mutex;
  std::condition_variable granted;
  for (int p = 0; p < 100; ++p) {
    asio::co_spawn(
        pollers,
        [&]() -> asio::awaitable<void> {
          for (int k = 0; k < 10; ++k) {
            static_cast<void>(co_await limiter.async_acquire(asio::use_awaitable));
            {
              std::lock_guard lock(mutex);
              out.grants.push_back(manual_clock::now());
            }
            granted.notify_all();
          }
        },
        asio::detached);
  }
  std::thread first([&] { home.run(); });
  std::thread second([&] { pollers.run(); });
  out.finished = true;
  for (std::size_t k = 0; k <= threaded_total; ++k) {
    const bool last = k == threaded_total;
    if (!last && expected(k) <= manual_clock::now()) continue;
    std::unique_lock lock(mutex);
    // A guard against a hang, not a timing assertion: the grants need no real time.
    if (!granted.wait_for(lock, std::chrono::seconds(60), [&] { return out.grants.size() >= k; })) {
      out.finished = false;
      break;
    }
    lock.unlock();
    out.try_acquire_refused = out.try_acquire_refused && !limiter.try_acquire();
    if (!last) manual_clock::advance_to(expected(k));
  }
  if (!out.finished) {
    home.stop();
    pollers.stop();
  }
  home_work.reset();
  pollers_work.reset();
  first.join();
  second.join();
  out.statistics = limiter.statistics();
  return out;
}

/// Every start of a run_on_two_threads granted at exactly `expected(k)`.
template <class Expected>
void expect_threaded_run_exact(const threaded_run& r, Expected expected) {
  ASSERT_TRUE(r.finished);
  ASSERT_EQ(r.grants.size(), threaded_total);
  expect_grants_at(r.grants, expected);
  EXPECT_TRUE(r.try_acquire_refused);
  EXPECT_EQ(r.statistics.granted, threaded_total);
  EXPECT_EQ(r.statistics.cancelled, 0u);
  EXPECT_EQ(manual_clock::pending_waits(), 0u);
}

}  // namespace jobpoll_test
