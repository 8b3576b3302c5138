#pragma once
// The fixture of the job_client tests on the scripted transport and the
// manual clock: each test starts at virtual time 0 and must end with no wait
// pending, no scripted reply left unused and no request unmatched.

#include <chrono>
#include <optional>
#include <utility>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <jobpoll/interval.hpp>
#include <jobpoll/poll_options.hpp>
#include <jobpoll/testing/manual_clock.hpp>
#include <jobpoll/transport/scripted.hpp>

#include "job_outcome.hpp"

namespace jobpoll_test {

/// `Ending<T>` is what finish() returns for an operation that yields a T:
/// it is made from the T or from the job_error the operation ended with, and
/// made empty ({}) when the operation did not end.
template <template <class> class Ending>
class job_client_fixture : public ::testing::Test {
 protected:
  using manual_clock = jobpoll::testing::manual_clock;
  using transport_type = jobpoll::basic_scripted_transport<manual_clock>;
  using options = jobpoll::basic_poll_options<manual_clock>;

  void SetUp() override { manual_clock::reset(); }
  void TearDown() override {
    EXPECT_EQ(manual_clock::pending_waits(), 0u);
    EXPECT_EQ(transport.pending(), 0u);
    EXPECT_THAT(transport.unmatched(), ::testing::IsEmpty());
  }

  // Options with exact waits: 2 s interval, 1 s backoff, no jitter.
  static options exact() {
    using namespace std::chrono_literals;
    options o;
    o.interval = jobpoll::fixed_interval{2s};
    o.backoff = jobpoll::fixed_interval{1s};
    return o;
  }

  // Runs `op` (cancelled through `slot`) to its end on the manual clock: its
  // value or its job_error.
  template <class T>
  Ending<T> finish(asio::awaitable<T> op, asio::cancellation_slot slot = {}) {
    std::optional<Ending<T>> out;
    asio::co_spawn(ctx, std::move(op), store_end<T>(out, slot));
    manual_clock::run(ctx);
    EXPECT_TRUE(out.has_value()) << "the operation did not finish";
    return out ? std::move(*out) : Ending<T>{};
  }

  asio::io_context ctx;
  transport_type transport{ctx.get_executor()};
};

}  // namespace jobpoll_test
