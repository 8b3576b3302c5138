#pragma once
// Runs one poll to its end on the manual clock and hands back the result,
// with everything the hooks saw.

#include <optional>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gtest/gtest.h>

#include <jobpoll/poll_until.hpp>
#include <jobpoll/testing/manual_clock.hpp>

#include "scripted_job.hpp"

namespace jobpoll_test {

using options = jobpoll::basic_poll_options<manual_clock>;

/// Which shell of the loop `run` drives: the composed operation
/// (`async_poll_until`) or the coroutine (`try_poll_until`).
enum class shell { composed, coroutine };

inline const char* to_string(shell s) { return s == shell::composed ? "composed_operation" : "coroutine"; }

struct seen {
  std::vector<jobpoll::wait_event> waits;
  std::vector<std::pair<std::size_t, jobpoll::poll_status>> polls;
  int ends = 0;
};

class poll_fixture : public ::testing::Test {
 protected:
  void SetUp() override { manual_clock::reset(); }
  void TearDown() override {
    // Nothing may be left behind: no pending timer waits, no queued handlers.
    EXPECT_EQ(manual_clock::pending_waits(), 0u);
    ctx.restart();
    EXPECT_EQ(ctx.poll(), 0u);
  }

  /// Options with exact (jitter-free) waits and hooks that record into `log`.
  options exact_options() {
    options o;
    o.backoff = jobpoll::fixed_interval{std::chrono::seconds(1)};
    watch(o);
    return o;
  }

  void watch(options& o) {
    hooks.on_wait = [this](const jobpoll::wait_event& e) { log.waits.push_back(e); };
    hooks.on_poll = [this](const jobpoll::poll_event& e) { log.polls.emplace_back(e.attempt, e.status); };
    hooks.on_end = [this](const jobpoll::end_event&) { ++log.ends; };
    o.hooks = &hooks;
  }

  template <class Job = scripted_job>
  jobpoll::poll_result<response> run(Job job, options o) {
    return run_with(std::move(job), seed_status{}, std::move(o));
  }

  template <class Status, class Job = scripted_job>
  jobpoll::poll_result<response> run_with(Job job, Status status, options o) {
    std::optional<jobpoll::poll_result<response>> out;
    if (use == shell::coroutine) {
      asio::co_spawn(ctx, jobpoll::try_poll_until(std::move(job), std::move(status), std::move(o)),
                     [&](std::exception_ptr e, jobpoll::poll_result<response> r) {
                       if (e) std::rethrow_exception(e);
                       out = std::move(r);
                     });
    } else {
      jobpoll::async_poll_until(ctx.get_executor(), std::move(job), std::move(status), std::move(o),
                                [&](jobpoll::error_code ec, jobpoll::poll_result<response> r) {
                                  EXPECT_EQ(ec, r.error);
                                  out = std::move(r);
                                });
    }
    manual_clock::run(ctx);
    EXPECT_TRUE(out.has_value()) << "poll did not finish";
    return out ? std::move(*out) : jobpoll::poll_result<response>{};
  }

  asio::io_context ctx;
  shell use = shell::composed;
  seen log;
  jobpoll::poll_hooks hooks;
};

}  // namespace jobpoll_test
