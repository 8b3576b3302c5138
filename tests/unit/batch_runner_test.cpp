// batch_runner on the in-memory job API, the manual clock and a SQLite store
// file: the cap on jobs in flight, the shared limiter, per-job deadlines,
// resubmission lineage, skipping, the circuit breaker, stop/grace/abandon,
// resume from the store, submits settled after a crash, ownership and the
// history, asserted exactly in virtual time.

#include <chrono>
#include <filesystem>
#include <functional>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <algorithm>
#include <string>
#include <vector>

#include <jobpoll/asio.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <jobpoll/batch/audit_log.hpp>
#include <jobpoll/batch/batch_runner.hpp>
#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/sliding_window_limiter.hpp>
#include <jobpoll/store/sqlite.hpp>
#include <jobpoll/testing/manual_clock.hpp>

#include "memory_job_api.hpp"
#include "sqlite_fault_vfs.hpp"
#include "temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using jobpoll::batch_end;
using jobpoll::batch_job;
using jobpoll::batch_job_state;
using jobpoll::batch_status;
using jobpoll::testing::manual_clock;
using jobpoll_test::read_bytes;
using jobpoll_test::write_bytes;
using testing::ElementsAre;
using testing::HasSubstr;
using json = nlohmann::json;
using api_type = jobpoll_test::memory_job_api;
using status_type = jobpoll::field_status<jobpoll::json_codec>;
using client_type = jobpoll::job_client<api_type, jobpoll::json_codec, status_type>;
using runner_type = jobpoll::batch_runner<client_type, jobpoll::sqlite_store, manual_clock>;
using options_type = jobpoll::basic_batch_options<manual_clock>;
namespace fs = std::filesystem;

jobpoll::batch_entry entry(std::string name, int polls = 1, std::string outcome = "completed") {
  return jobpoll::job_params{{"name", std::move(name)}, {"polls", std::to_string(polls)}, {"outcome", std::move(outcome)}};
}

// `n` entries "e0".."e<n-1>", each answering running `polls` times.
std::vector<jobpoll::batch_entry> entries(std::size_t n, int polls = 1) {
  std::vector<jobpoll::batch_entry> out;
  for (std::size_t k = 0; k < n; ++k) out.push_back(entry("e" + std::to_string(k), polls));
  return out;
}

std::vector<batch_job_state> states(const std::vector<batch_job>& jobs) {
  std::vector<batch_job_state> out;
  for (const auto& j : jobs) out.push_back(j.state);
  return out;
}

class BatchRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override { manual_clock::reset(); }
  void TearDown() override {
    EXPECT_EQ(manual_clock::pending_waits(), 0u);
    EXPECT_EQ(api.in_flight(), 0u);
  }

  // Exact waits: 1 s interval, 1 s backoff, no jitter.
  options_type options() {
    options_type o;
    o.job.interval = jobpoll::fixed_interval{1s};
    o.job.backoff = jobpoll::fixed_interval{1s};
    o.max_in_flight = 2;
    return o;
  }

  // Runs the batch to its end on the manual clock.
  jobpoll::batch_report run(runner_type& runner, asio::cancellation_slot slot = {}) {
    std::optional<jobpoll::batch_report> report;
    std::exception_ptr failure;
    asio::co_spawn(ctx, runner.run(),
                   asio::bind_cancellation_slot(slot, [&](std::exception_ptr e, jobpoll::batch_report r) {
                     failure = e;
                     report = std::move(r);
                   }));
    manual_clock::run(ctx);
    if (failure) std::rethrow_exception(failure);
    EXPECT_TRUE(report.has_value()) << "the batch did not finish";
    return report.value_or(jobpoll::batch_report{});
  }

  // Calls `action` once `delay` of simulated time has passed (while `run` runs).
  void after(manual_clock::duration delay, std::function<void()> action) {
    asio::co_spawn(
        ctx,
        [delay, action = std::move(action)]() -> asio::awaitable<void> {
          manual_clock::timer t(co_await asio::this_coro::executor);
          t.expires_after(delay);
          co_await t.async_wait(asio::use_awaitable);
          action();
        },
        asio::detached);
  }

  // The store, opened on first use like a new process would, with the batch `es`.
  jobpoll::sqlite_store& store(const std::vector<jobpoll::batch_entry>& es) {
    if (!store_) store_.emplace(dir / "batch.db", "batch");
    store_->create(es);
    return *store_;
  }

  template <class OnResult = runner_type::result_handler>
  runner_type make(std::vector<jobpoll::batch_entry> es, options_type o, OnResult on_result = {}) {
    return runner_type(ctx.get_executor(), client, store(es), std::move(o), std::move(on_result));
  }
  runner_type make_with(client_type& c, std::vector<jobpoll::batch_entry> es, options_type o) {
    return runner_type(ctx.get_executor(), c, store(es), std::move(o));
  }

  // A client whose submits carry their key as `header`; `idempotent`: the
  // API deduplicates them (Idempotency-Key); `lookup`: it can find them (Client-Ref).
  client_type keyed_client(bool idempotent, bool lookup) {
    jobpoll::job_description d = jobpoll_test::memory_job_description();
    d.submit.headers.add(idempotent ? "Idempotency-Key" : "Client-Ref", "{job_key}");
    d.idempotent_submit = idempotent;
    if (lookup) d.lookup = jobpoll::job_lookup{{"GET", "http://jobs.test/lookup/{job_key}"}, "/jobs/0/id"};
    return client_type(api, std::move(d), jobpoll_test::memory_job_status());
  }

  // Leaves record `id` as a crash during its submit would: `submitting`, no handle.
  void crash_during_submit(std::size_t id) {
    batch_job job = *store_->job(id);
    job.state = batch_job_state::submitting;
    store_->update(job, batch_job_state::pending, "");
  }

  // Every record of the batch, in id order, as the store has it.
  std::vector<batch_job> jobs() const {
    std::vector<batch_job> out;
    store_->for_each_job([&](const batch_job& j) { out.push_back(j); });
    return out;
  }

  asio::io_context ctx;
  api_type api{ctx.get_executor()};
  client_type client{api, jobpoll_test::memory_job_description(), jobpoll_test::memory_job_status()};
  const jobpoll_test::temp_dir dir{"jobpoll-batch-"};
  std::optional<jobpoll::sqlite_store> store_;
};

TEST_F(BatchRunnerTest, RunsEveryJobOnceAndDeliversEveryResult) {
  std::vector<std::string> results;
  auto runner = make(entries(10), options(), [&](const batch_job& job, jobpoll::job_result<json>& r) {
    results.push_back(job.params.at("name") + "=" + r.value.at("name").get<std::string>());
  });
  const auto report = run(runner);
  EXPECT_EQ(report.end, batch_end::finished);
  EXPECT_EQ(report.reason, "no job left to run");
  EXPECT_EQ(report.summary.status, batch_status::completed);
  EXPECT_EQ(report.summary.counts[batch_job_state::completed], 10u);
  EXPECT_EQ(report.summary.fulfilled_entries, 10u);
  EXPECT_EQ(results.size(), 10u);
  EXPECT_EQ(std::set<std::string>(results.begin(), results.end()).size(), 10u);
  EXPECT_EQ(results.front(), "e0=e0");
  EXPECT_EQ(api.submits(), 10u);
  for (int k = 0; k < 10; ++k) EXPECT_EQ(api.submits_named("e" + std::to_string(k)), 1u) << k;
  for (const batch_job& j : jobs()) {
    ASSERT_TRUE(j.handle.has_value());
    EXPECT_EQ(j.handle->progress.attempts, 2u);  // running once, then completed
    EXPECT_TRUE(j.submitted.has_value());
    EXPECT_TRUE(j.ended.has_value());
    EXPECT_EQ(j.error, "");
  }
  // Two at a time, each job 1 s (two polls 1 s apart): five rounds.
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 5s);
}

TEST_F(BatchRunnerTest, CapOnJobsInFlightHoldsAtAllTimes) {
  auto es = entries(0);
  for (int k = 0; k < 30; ++k) es.push_back(entry("e" + std::to_string(k), k % 5));
  auto o = options();
  o.max_in_flight = 4;
  std::size_t most = 0;
  runner_type* self = nullptr;
  o.on_progress = [&](const jobpoll::batch_counts& counts, const batch_job&) {
    EXPECT_LE(counts.in_flight(), 4u);
    most = std::max(most, counts.in_flight());
    if (self) {
      EXPECT_LE(self->in_flight(), 4u);
    }
  };
  auto runner = make(es, o);
  self = &runner;
  const auto report = run(runner);
  EXPECT_EQ(report.summary.status, batch_status::completed);
  EXPECT_EQ(report.peak_in_flight, 4u);
  EXPECT_EQ(most, 4u);
  EXPECT_LE(api.max_in_flight(), 4u);
}

TEST_F(BatchRunnerTest, OneAtATimeRunsInEntryOrder) {
  auto o = options();
  o.max_in_flight = 1;
  std::vector<std::string> order;
  auto runner = make(entries(4), o, [&](const batch_job& job, auto&) { order.push_back(job.handle->id); });
  run(runner);
  EXPECT_THAT(order, ElementsAre("j1", "j2", "j3", "j4"));
  EXPECT_EQ(api.max_in_flight(), 1u);
}

TEST_F(BatchRunnerTest, EveryRequestGoesThroughTheSharedLimiter) {
  jobpoll::basic_sliding_window_limiter<manual_clock> limiter(ctx.get_executor(), 3, 10s);
  auto o = options();
  o.max_in_flight = 4;
  o.job.limiter = limiter;
  auto runner = make(entries(4), o);
  const auto report = run(runner);
  EXPECT_EQ(report.summary.status, batch_status::completed);
  // 4 submits + 8 polls = 12 requests, 3 per 10 s: the last starts at 30 s.
  EXPECT_EQ(limiter.statistics().granted, 12u);
  EXPECT_EQ(api.requests(), 12u);
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 30s);
}

TEST_F(BatchRunnerTest, PerJobDeadlineFailsTheJobAndCancelsItRemotely) {
  auto es = entries(2);
  es.push_back(entry("slow", 100));
  auto o = options();
  o.max_in_flight = 3;
  o.job.deadline = 5s;
  auto runner = make(es, o);
  const auto report = run(runner);
  EXPECT_EQ(report.end, batch_end::finished);
  EXPECT_EQ(report.summary.status, batch_status::failed);
  EXPECT_THAT(report.summary.failed_job_ids, ElementsAre(3u));
  const batch_job slow = jobs()[2];
  EXPECT_EQ(slow.state, batch_job_state::failed);
  EXPECT_EQ(slow.error_code, "jobpoll:1");  // errc::timeout
  EXPECT_THAT(slow.error, HasSubstr("deadline passed before the job finished"));
  EXPECT_THAT(slow.error, HasSubstr("remote cancel sent"));
  EXPECT_TRUE(api.cancelled("j3"));
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 5s);
}

TEST_F(BatchRunnerTest, FailedJobIsResubmittedAsAChildNamingItsParent) {
  std::vector<jobpoll::batch_entry> es{entry("ok"), entry("bad", 1, "failed")};
  auto o = options();
  o.max_resubmits = 1;
  o.resubmit = [](const batch_job& failed) {
    jobpoll::job_params fixed = failed.params;
    fixed["outcome"] = "completed";
    return std::optional<jobpoll::resubmission>({fixed, "outcome corrected after: " + failed.error_code});
  };
  auto runner = make(es, o);
  const auto report = run(runner);
  EXPECT_EQ(report.summary.status, batch_status::completed);
  ASSERT_EQ(jobs().size(), 3u);
  const batch_job parent = jobs()[1];
  const batch_job child = jobs()[2];
  EXPECT_EQ(parent.state, batch_job_state::failed);
  EXPECT_TRUE(parent.skipped);
  EXPECT_EQ(parent.skip_reason, "resubmitted as job 3");
  EXPECT_THAT(parent.error, HasSubstr("job failed"));
  EXPECT_EQ(child.entry, 1u);
  EXPECT_EQ(child.parent, 2u);
  EXPECT_EQ(child.attempt, 2u);
  EXPECT_EQ(child.params.at("outcome"), "completed");
  EXPECT_EQ(child.override_reason, "outcome corrected after: jobpoll:2");
  EXPECT_EQ(child.state, batch_job_state::completed);
  EXPECT_EQ(report.summary.total_jobs, 3u);
  EXPECT_EQ(report.summary.counts.skipped, 1u);
  EXPECT_EQ(api.submits_named("bad"), 2u);
}

TEST_F(BatchRunnerTest, ResubmissionsStopAfterTheBudget) {
  auto o = options();
  o.max_resubmits = 2;
  auto runner = make({entry("bad", 0, "failed")}, o);
  const auto report = run(runner);
  EXPECT_EQ(report.summary.status, batch_status::failed);
  ASSERT_EQ(jobs().size(), 3u);
  EXPECT_THAT(report.summary.failed_job_ids, ElementsAre(3u));  // parents are skipped
  EXPECT_EQ(jobs()[1].parent, 1u);
  EXPECT_EQ(jobs()[2].parent, 2u);
  EXPECT_EQ(jobs()[2].attempt, 3u);
  EXPECT_FALSE(jobs()[2].skipped);
  EXPECT_EQ(jobs()[2].override_reason, "");  // same parameters, no reason given
  EXPECT_EQ(api.submits_named("bad"), 3u);
}

TEST_F(BatchRunnerTest, ResubmitPolicyMayGiveUp) {
  auto o = options();
  o.max_resubmits = 5;
  o.resubmit = [](const batch_job&) { return std::optional<jobpoll::resubmission>(); };
  auto runner = make({entry("bad", 0, "failed")}, o);
  const auto report = run(runner);
  EXPECT_EQ(jobs().size(), 1u);
  EXPECT_EQ(report.summary.status, batch_status::failed);
}

TEST_F(BatchRunnerTest, SkippedJobsAreRecordedButNeverSubmitted) {
  auto es = entries(3);
  es[1].skip = true;
  es[1].skip_reason = "not needed this cycle";
  auto runner = make(es, options());
  runner.skip(3, "skipped by hand");
  const auto report = run(runner);
  EXPECT_EQ(report.summary.status, batch_status::completed);
  EXPECT_EQ(report.summary.counts.skipped, 2u);
  EXPECT_EQ(report.summary.fulfilled_entries, 3u);
  EXPECT_EQ(jobs()[1].skip_reason, "not needed this cycle");
  EXPECT_EQ(jobs()[2].skip_reason, "skipped by hand");
  EXPECT_EQ(jobs()[2].state, batch_job_state::pending);
  EXPECT_EQ(api.submits(), 1u);
  EXPECT_EQ(api.submits_named("e1"), 0u);
}

TEST_F(BatchRunnerTest, SkipAndResubmitRefuseBadIds) {
  auto runner = make(entries(2), options());
  EXPECT_THROW(runner.skip(0, "x"), std::invalid_argument);
  try {
    runner.skip(3, "x");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "jobpoll::batch_runner: skip needs the id of a job of the batch, got 3");
  }
  try {
    runner.resubmit(1, {});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "jobpoll::batch_runner: resubmit needs a failed, cancelled or unknown job, got job 1 pending");
  }
}

TEST_F(BatchRunnerTest, CircuitBreakerStopsNewSubmissionsAndSaysWhy) {
  std::vector<jobpoll::batch_entry> es;
  for (int k = 0; k < 10; ++k) es.push_back(entry("e" + std::to_string(k), 0, k < 5 ? "failed" : "completed"));
  auto o = options();
  o.max_in_flight = 1;
  o.max_resubmits = 3;
  o.breaker = {.window = 4, .failure_threshold = 0.5};
  auto runner = make(es, o);
  const auto report = run(runner);
  EXPECT_EQ(report.end, batch_end::breaker_open);
  EXPECT_EQ(report.reason,
            "circuit breaker open: 4 of the last 4 jobs failed (threshold 50%); 10 jobs left for a resume "
            "(0 running, 10 pending)");
  EXPECT_EQ(report.summary.status, batch_status::active);  // every failure has a pending resubmission
  // e0..e3 failed; their resubmissions queue behind e9 and wait for a
  // resume, like e4..e9: nothing more was submitted once the breaker opened.
  EXPECT_EQ(api.submits(), 4u);
  EXPECT_EQ(api.submits_named("e0"), 1u);
  ASSERT_EQ(jobs().size(), 14u);
  EXPECT_EQ(jobs()[13].parent, 4u);
  EXPECT_EQ(jobs()[13].state, batch_job_state::pending);
}

TEST_F(BatchRunnerTest, StopLetsJobsInFlightFinishWithinTheGracePeriod) {
  auto o = options();
  o.grace_period = 10s;
  auto runner = make(entries(6, 3), o);
  after(1500ms, [&] { runner.request_stop("SIGTERM received"); });
  const auto report = run(runner);
  EXPECT_EQ(report.end, batch_end::stopped);
  EXPECT_EQ(report.reason, "SIGTERM received; 4 jobs left for a resume (0 running, 4 pending)");
  EXPECT_EQ(report.summary.status, batch_status::active);
  EXPECT_EQ(jobpoll::to_json(report).dump(),
            R"({"status":"ACTIVE","total_configs":6,"fulfilled_configs":2,"total_jobs":6,)"
            R"("job_status_counts":{"PENDING":4,"COMPLETED":2},"failed_job_ids":[],"end":"stopped",)"
            R"x("reason":"SIGTERM received; 4 jobs left for a resume (0 running, 4 pending)","resumed":0,"peak_in_flight":2})x");
  EXPECT_THAT(states(jobs()),
              ElementsAre(batch_job_state::completed, batch_job_state::completed, batch_job_state::pending,
                          batch_job_state::pending, batch_job_state::pending, batch_job_state::pending));
  EXPECT_EQ(api.submits(), 2u);
  EXPECT_EQ(manual_clock::now().time_since_epoch(), 3s);
  }

TEST_F(BatchRunnerTest, AfterTheGraceJobsAreKeptAndResumedByHandleNeverResubmitted) {
  auto o = options();
  o.grace_period = 2s;
  {
    auto runner = make(entries(5, 10), o);
    after(3500ms, [&] { runner.request_stop(); });
    const auto report = run(runner);
    EXPECT_EQ(report.end, batch_end::stopped);
    EXPECT_EQ(report.reason, "stop requested; 5 jobs left for a resume (2 running, 3 pending)");
    EXPECT_EQ(manual_clock::now().time_since_epoch(), 5500ms);  // 3.5 s + 2 s of grace
    EXPECT_FALSE(api.cancelled("j1"));
    EXPECT_EQ(api.polls("j1"), 6u);  // at 0..5 s
  }
  const auto saved = jobs();
  ASSERT_EQ(saved.size(), 5u);
  EXPECT_EQ(saved[0].state, batch_job_state::running);
  ASSERT_TRUE(saved[0].handle.has_value());
  EXPECT_EQ(saved[0].handle->id, "j1");
  EXPECT_EQ(saved[0].handle->progress.attempts, 6u);
  EXPECT_EQ(saved[2].state, batch_job_state::pending);

  auto resumed = make(entries(5, 10), o);
  EXPECT_EQ(resumed.counts()[batch_job_state::running], 2u);
  const auto report = run(resumed);
  EXPECT_EQ(report.end, batch_end::finished);
  EXPECT_EQ(report.resumed, 2u);
  EXPECT_EQ(report.summary.status, batch_status::completed);
  for (int k = 0; k < 5; ++k) EXPECT_EQ(api.submits_named("e" + std::to_string(k)), 1u) << k;
  EXPECT_EQ(api.polls("j1"), 11u);  // 10 running answers, then completed: none lost, none repeated
  EXPECT_EQ(jobs()[0].handle->progress.attempts, 11u);
}

TEST_F(BatchRunnerTest, AJobFailingDuringTheGracePeriodIsResubmittedOnResume) {
  auto o = options();
  o.grace_period = 10s;
  o.max_resubmits = 1;
  std::vector<jobpoll::batch_entry> es{entry("bad", 3, "failed"), entry("ok", 3)};
  {
    auto runner = make(es, o);
    after(1s, [&] { runner.request_stop(); });
    const auto report = run(runner);
    // "bad" failed at 3 s, within the grace period: its resubmission waits.
    ASSERT_EQ(jobs().size(), 3u);
    EXPECT_EQ(jobs()[2].parent, 1u);
    EXPECT_EQ(jobs()[2].state, batch_job_state::pending);
    EXPECT_EQ(report.reason, "stop requested; 1 job left for a resume (0 running, 1 pending)");
  }
  auto resumed = make(es, o);
  const auto report = run(resumed);
  EXPECT_EQ(jobs()[2].state, batch_job_state::failed);  // same parameters, fails again
  EXPECT_EQ(api.submits_named("bad"), 2u);
  EXPECT_EQ(api.submits_named("ok"), 1u);
  EXPECT_EQ(report.summary.status, batch_status::failed);
}

TEST_F(BatchRunnerTest, StopWithCancelJobsCancelsTheJobsInFlightRemotely) {
  auto o = options();
  o.when_stopped = jobpoll::on_cancel::cancel_job;
  auto runner = make(entries(3, 10), o);
  after(2500ms, [&] { runner.request_stop(); });
  const auto report = run(runner);
  EXPECT_THAT(states(jobs()),
              ElementsAre(batch_job_state::cancelled, batch_job_state::cancelled, batch_job_state::pending));
  EXPECT_TRUE(api.cancelled("j1"));
  EXPECT_TRUE(api.cancelled("j2"));
  EXPECT_THAT(jobs()[0].error, HasSubstr("remote cancel sent"));
  EXPECT_EQ(report.summary.status, batch_status::active);
  EXPECT_EQ(report.reason, "stop requested; 1 job left for a resume (0 running, 1 pending)");
}

TEST_F(BatchRunnerTest, EveryJobCancelledMakesTheBatchCancelled) {
  auto o = options();
  o.when_stopped = jobpoll::on_cancel::cancel_job;
  auto runner = make(entries(2, 10), o);
  after(1s, [&] { runner.stop_now(); });
  const auto report = run(runner);
  EXPECT_EQ(report.summary.status, batch_status::cancelled);
  EXPECT_EQ(report.end, batch_end::finished);  // nothing left to run
}

TEST_F(BatchRunnerTest, SubmitInterruptedBeforeAnyRequestIsPendingAgain) {
  // The limiter holds the second submit; the stop comes while it waits.
  jobpoll::basic_sliding_window_limiter<manual_clock> limiter(ctx.get_executor(), 1, 60s);
  auto o = options();
  o.job.limiter = limiter;
  auto runner = make(entries(2, 0), o);
  after(10s, [&] { runner.stop_now(); });
  const auto report = run(runner);
  EXPECT_EQ(jobs()[1].state, batch_job_state::pending);
  EXPECT_EQ(api.submits(), 1u);
  EXPECT_EQ(report.end, batch_end::stopped);
}

TEST_F(BatchRunnerTest, SubmitInterruptedInFlightIsUnknownNeverSentTwice) {
  // This job API has neither an idempotent submit nor a lookup.
  api.set_latency(5s);
  auto o = options();
  o.max_resubmits = 1;  // not used for it: a resubmission could run the job twice
  auto runner = make(entries(1, 0), o);
  after(1s, [&] { runner.stop_now(); });
  const auto report = run(runner);
  const batch_job job = jobs()[0];
  EXPECT_EQ(job.state, batch_job_state::unknown);
  // Asio's words for it: "Operation aborted." (standalone), "Operation canceled" (Boost);
  // the description drops a final period.
  std::string aborted = jobpoll::error_code(asio::error::operation_aborted).message();
  if (!aborted.empty() && aborted.back() == '.') aborted.pop_back();
  EXPECT_THAT(job.error, HasSubstr(aborted + " after 1 attempt"));
  EXPECT_EQ(jobs().size(), 1u);
  EXPECT_EQ(report.summary.status, batch_status::active);
  EXPECT_THAT(report.reason, HasSubstr("1 job unknown (a submit that may have reached the server): resubmit, skip or adopt each"));
}

TEST_F(BatchRunnerTest, CancellingTheRunKeepsJobsForAResume) {
  auto o = options();
  auto runner = make(entries(3, 10), o);
  asio::cancellation_signal cancel;
  after(2s, [&] { cancel.emit(asio::cancellation_type::terminal); });
  const auto report = run(runner, cancel.slot());
  EXPECT_EQ(report.end, batch_end::cancelled);
  EXPECT_EQ(report.reason, "cancelled; 3 jobs left for a resume (2 running, 1 pending)");
  EXPECT_EQ(jobs()[1].handle->id, "j2");
  EXPECT_FALSE(api.cancelled("j1"));
}

TEST_F(BatchRunnerTest, AnAnswerLostAtAStopIsResentWithItsKeyAndTheServerKeepsOneJob) {
  // The job is created at once; its answer takes 5 s and the stop comes at 1 s.
  client_type keyed = keyed_client(true, false);
  api.set_latency(5s);
  {
    auto runner = make_with(keyed, entries(1, 0), options());
    after(1s, [&] { runner.stop_now(); });
    const auto report = run(runner);
    EXPECT_EQ(jobs()[0].state, batch_job_state::submitting);
    EXPECT_EQ(report.reason, "stopped at once; 1 job left for a resume (0 running, 1 with a submit to settle, 0 pending)");
  }
  api.set_latency(0s);
  auto runner = make_with(keyed, entries(1, 0), options());
  const auto report = run(runner);
  EXPECT_EQ(report.summary.status, batch_status::completed);
  EXPECT_EQ(api.submits(), 1u);  // one job at the server
  EXPECT_EQ(api.posts(), 2u);    // the second POST carried the same key
  EXPECT_EQ(jobs()[0].handle->id, "j1");
}

TEST_F(BatchRunnerTest, AnUnfinishedSubmitIsFoundByItsKeyWhenTheApiHasALookup) {
  client_type finding = keyed_client(false, true);
  api.set_latency(5s);
  {
    auto runner = make_with(finding, entries(2, 0), options());
    after(1s, [&] { runner.stop_now(); });
    run(runner);
  }
  api.set_latency(0s);
  auto runner = make_with(finding, entries(2, 0), options());
  const auto report = run(runner);
  EXPECT_EQ(report.summary.status, batch_status::completed);
  EXPECT_EQ(api.posts(), 2u);  // one per entry: both found, none sent again
  EXPECT_EQ(api.submits_named("e0"), 1u);
  EXPECT_EQ(api.submits_named("e1"), 1u);
}

TEST_F(BatchRunnerTest, AnUnfinishedSubmitTheLookupDoesNotFindIsSentOnce) {
  client_type finding = keyed_client(false, true);
  store(entries(2, 0));
  crash_during_submit(1);  // the crash came before the request left
  auto runner = make_with(finding, entries(2, 0), options());
  const auto report = run(runner);
  EXPECT_EQ(report.summary.status, batch_status::completed);
  EXPECT_EQ(api.posts(), 2u);
  EXPECT_EQ(api.submits_named("e0"), 1u);
}

TEST_F(BatchRunnerTest, WithoutKeyOrLookupAnUnfinishedSubmitIsUnknownUntilTheUserDecides) {
  auto o = options();
  o.max_resubmits = 3;  // not used for it: an unknown job is not failed
  store(entries(3, 0));
  crash_during_submit(1);
  crash_during_submit(2);
  {
    auto runner = make(entries(3, 0), o);
    const auto report = run(runner);
    EXPECT_EQ(report.summary.status, batch_status::active);
    EXPECT_EQ(report.summary.counts[batch_job_state::unknown], 2u);
    EXPECT_THAT(report.reason, HasSubstr("2 jobs unknown"));
    EXPECT_EQ(api.posts(), 1u);  // only entry 2
    EXPECT_THAT(jobs()[0].error, HasSubstr("resubmit it, skip it, or adopt it by its handle"));
    // The user knows job 1's handle (it did reach the server) and resubmits job 2.
    runner.adopt(1, "j1");
    EXPECT_EQ(runner.resubmit(2, {jobs()[1].params, "not on the server"}), 4u);
    EXPECT_THROW(runner.adopt(3, "j9"), std::invalid_argument);  // completed
  }
  auto runner = make(entries(3, 0), o);
  const auto report = run(runner);
  EXPECT_EQ(report.summary.status, batch_status::completed);
  EXPECT_EQ(jobs()[0].state, batch_job_state::completed);
  EXPECT_EQ(jobs()[0].handle->id, "j1");
  EXPECT_TRUE(jobs()[1].skipped);
  EXPECT_EQ(jobs()[3].parent, 2u);
  EXPECT_NE(jobs()[3].key, jobs()[1].key);  // a new job to the server
  EXPECT_EQ(api.submits_named("e1"), 1u);
}

TEST_F(BatchRunnerTest, EveryJobHasItsOwnKeySentAsJobKey) {
  client_type keyed = keyed_client(true, false);
  auto runner = make_with(keyed, entries(3, 0), options());
  run(runner);
  std::set<std::string> keys;
  for (const batch_job& j : jobs()) {
    EXPECT_EQ(j.key, store_->info().uid + "-" + std::to_string(j.id));
    EXPECT_EQ(j.handle->params.at("job_key"), j.key);
    keys.insert(j.key);
  }
  EXPECT_EQ(keys.size(), 3u);
  EXPECT_EQ(api.submits(), 3u);
}

TEST_F(BatchRunnerTest, TheHistoryExportReplaysToTheStoredRecords) {
  auto o = options();
  o.max_resubmits = 1;
  std::size_t changes = 0;
  o.on_progress = [&](const jobpoll::batch_counts&, const batch_job&) { ++changes; };
  auto es = entries(3);
  es.push_back(entry("bad", 0, "failed"));
  auto runner = make(es, o);
  run(runner);
  std::ostringstream history;
  store_->export_history(history);
  const std::string text = history.str();
  // created 4 (with the batch), then per job submitting/running/ended (5 jobs), the parent skipped, the child created.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 4 + 5 * 3 + 2);
  EXPECT_EQ(changes, 5u * 3u + 2u);
  const auto replayed = jobpoll::detail::replay_audit_text(text, "history");
  const auto stored = jobs();
  ASSERT_EQ(replayed.size(), stored.size());
  for (std::size_t i = 0; i < replayed.size(); ++i) {
    EXPECT_EQ(replayed[i].state, stored[i].state) << i;
    EXPECT_EQ(replayed[i].skipped, stored[i].skipped) << i;
    EXPECT_EQ(replayed[i].parent, stored[i].parent) << i;
    EXPECT_EQ(replayed[i].handle->id, stored[i].handle->id) << i;
    EXPECT_EQ(replayed[i].error, stored[i].error) << i;
  }
}

TEST_F(BatchRunnerTest, ADiskFullStopsTheBatchWithTheStoresErrorAndAResumeSubmitsEachJobOnce) {
  auto& vfs = jobpoll_test::sqlite_fault_vfs::get();
  vfs.fail_writes(false);
  client_type keyed = keyed_client(true, false);
  const auto es = entries(6, 2);
  {
    store_.emplace(dir / "batch.db", "batch", jobpoll::sqlite_store_options{.vfs = vfs.name()});
    auto o = options();
    o.grace_period = 60s;
    std::size_t changes = 0;
    o.on_progress = [&](const jobpoll::batch_counts&, const batch_job&) {
      if (++changes == 5) vfs.fail_writes(true);  // mid-batch: submits and polls under way
    };
    auto runner = make_with(keyed, es, o);
    try {
      run(runner);
      FAIL() << "no exception";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), jobpoll::errc::store_error);
      EXPECT_THAT(e.what(), HasSubstr("database or disk is full"));
      EXPECT_THAT(e.what(), HasSubstr((dir / "batch.db").string()));
    }
    EXPECT_GT(vfs.refused(), 0u);
  }
  store_.reset();
  vfs.fail_writes(false);
  // The store is whole and resumes: every job exactly once at the server.
  {
    jobpoll::sqlite_store check(dir / "batch.db", "batch");
    EXPECT_EQ(check.counts().total(), 6u);
  }
  auto runner = make_with(keyed, es, options());
  const auto report = run(runner);
  EXPECT_EQ(report.summary.status, batch_status::completed);
  for (int k = 0; k < 6; ++k) EXPECT_EQ(api.submits_named("e" + std::to_string(k)), 1u) << k;
}

TEST_F(BatchRunnerTest, ManualResubmissionWithOverrideBetweenRuns) {
  auto o = options();
  std::vector<jobpoll::batch_entry> es{entry("a"), entry("b", 0, "failed")};
  {
    auto runner = make(es, o);
    EXPECT_EQ(run(runner).summary.status, batch_status::failed);
  }
  auto runner = make(es, o);
  jobpoll::job_params corrected = jobs()[1].params;
  corrected["outcome"] = "completed";
  EXPECT_EQ(runner.resubmit(2, {corrected, "threshold was too high"}), 3u);
  EXPECT_EQ(runner.summary().status, batch_status::active);
  try {
    runner.resubmit(2, {corrected, "again"});  // a second child could run entry b twice
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "jobpoll::batch_runner: resubmit needs a job that is not skipped, got job 2 skipped "
                           "(resubmitted as job 3)");
  }
  const auto report = run(runner);
  EXPECT_EQ(report.summary.status, batch_status::completed);
  EXPECT_EQ(jobs()[2].override_reason, "threshold was too high");
  EXPECT_EQ(jobs()[2].parent, 2u);
  EXPECT_EQ(api.submits_named("a"), 1u);
  EXPECT_EQ(api.submits_named("b"), 2u);
}

TEST_F(BatchRunnerTest, AThrowingResultHandlerFailsTheJobWithItsMessage) {
  auto runner = make(entries(1), options(), [](const batch_job&, auto&) { throw std::runtime_error("disk full"); });
  const auto report = run(runner);
  EXPECT_EQ(jobs()[0].state, batch_job_state::failed);
  EXPECT_EQ(jobs()[0].error, "the result handler threw: disk full");
  EXPECT_EQ(report.summary.status, batch_status::failed);
}

TEST_F(BatchRunnerTest, AnExceptionFromAWorkerStopsTheBatchAndIsRethrownOnceJobsInFlightEnded) {
  auto o = options();
  o.grace_period = 10s;
  o.on_progress = [](const jobpoll::batch_counts&, const batch_job& job) {
    if (job.id == 1 && job.state == batch_job_state::running) throw std::runtime_error("progress display broke");
  };
  auto runner = make(entries(4, 3), o);
  try {
    run(runner);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "progress display broke");
  }
  // Job 2 was in flight and finished within the grace period; nothing else
  // was submitted; job 1 is recorded running with its handle, for a resume.
  const auto saved = jobs();
  EXPECT_THAT(states(saved), ElementsAre(batch_job_state::running, batch_job_state::completed,
                                              batch_job_state::pending, batch_job_state::pending));
  EXPECT_EQ(saved[0].handle->id, "j1");
  EXPECT_EQ(api.submits(), 2u);
}

TEST_F(BatchRunnerTest, BadOptionsAreRefusedNamingTheValue) {
  auto o = options();
  o.max_in_flight = 0;
  try {
    make(entries(1), o);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "jobpoll::batch_runner: max_in_flight must be at least 1, got 0");
  }
  o = options();
  o.grace_period = -1s;
  EXPECT_THROW(make(entries(1), o), std::invalid_argument);
}

TEST_F(BatchRunnerTest, StopBeforeRunReturnsAtOnceWithEverythingPending) {
  auto runner = make(entries(3), options());
  runner.request_stop();
  const auto report = run(runner);
  EXPECT_EQ(report.end, batch_end::stopped);
  EXPECT_EQ(api.requests(), 0u);
  EXPECT_EQ(report.summary.counts[batch_job_state::pending], 3u);
}

}  // namespace
