// Reconciliation of a batch by the seed's rules, and the counts it reports.

#include <jobpoll/batch/batch_json.hpp>
#include <jobpoll/batch/reconcile.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace {

using jobpoll::batch_job;
using jobpoll::batch_job_state;
using jobpoll::batch_status;
using jobpoll::reconcile;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Records numbered in order: {entry, state, skipped}.
struct spec {
  std::size_t entry;
  batch_job_state state;
  bool skipped = false;
};

std::vector<batch_job> jobs(std::initializer_list<spec> specs) {
  std::vector<batch_job> out;
  for (const spec& s : specs) {
    batch_job j;
    j.id = out.size() + 1;
    j.entry = s.entry;
    j.state = s.state;
    j.skipped = s.skipped;
    out.push_back(j);
  }
  return out;
}

constexpr auto pending = batch_job_state::pending;
constexpr auto running = batch_job_state::running;
constexpr auto completed = batch_job_state::completed;
constexpr auto failed = batch_job_state::failed;
constexpr auto cancelled = batch_job_state::cancelled;

TEST(BatchReconcile, CompletedWhenEveryEntryHasACompletedJob) {
  auto s = reconcile(jobs({{0, completed}, {1, completed}, {2, completed}}), 3);
  EXPECT_EQ(s.status, batch_status::completed);
  EXPECT_EQ(s.fulfilled_entries, 3u);
  EXPECT_EQ(s.total_entries, 3u);
  EXPECT_EQ(s.total_jobs, 3u);
  EXPECT_EQ(s.counts[completed], 3u);
  EXPECT_THAT(s.failed_job_ids, IsEmpty());
}

TEST(BatchReconcile, FailedWhenAnyUnskippedJobFailed) {
  auto s = reconcile(jobs({{0, completed}, {1, failed}, {2, running}}), 3);
  EXPECT_EQ(s.status, batch_status::failed);
  EXPECT_THAT(s.failed_job_ids, ElementsAre(2u));
  EXPECT_EQ(s.fulfilled_entries, 1u);
}

TEST(BatchReconcile, ASkippedFailureDoesNotFailTheBatch) {
  // The seed's resubmission: the failed parent is skipped, its child completed.
  auto s = reconcile(jobs({{0, completed}, {1, failed, true}, {1, completed}}), 2);
  EXPECT_EQ(s.status, batch_status::completed);
  EXPECT_EQ(s.counts.skipped, 1u);
  EXPECT_EQ(s.counts[failed], 0u);
  EXPECT_EQ(s.counts[completed], 2u);
  EXPECT_EQ(s.total_jobs, 3u);
  EXPECT_EQ(s.fulfilled_entries, 2u);
  EXPECT_THAT(s.failed_job_ids, IsEmpty());
}

TEST(BatchReconcile, CancelledWhenEveryUnskippedJobIsCancelled) {
  auto s = reconcile(jobs({{0, cancelled}, {1, cancelled}, {2, failed, true}}), 3);
  EXPECT_EQ(s.status, batch_status::cancelled);
}

TEST(BatchReconcile, CancelledWinsOnlyWhenAllAreCancelled) {
  EXPECT_EQ(reconcile(jobs({{0, cancelled}, {1, completed}}), 2).status, batch_status::active);
  EXPECT_EQ(reconcile(jobs({{0, cancelled}, {1, failed}}), 2).status, batch_status::failed);
}

TEST(BatchReconcile, ActiveWhileJobsArePendingOrRunning) {
  EXPECT_EQ(reconcile(jobs({{0, completed}, {1, running}}), 2).status, batch_status::active);
  EXPECT_EQ(reconcile(jobs({{0, pending}, {1, completed}}), 2).status, batch_status::active);
}

TEST(BatchReconcile, SkippedEntriesCountAsFulfilled) {
  auto s = reconcile(jobs({{0, completed}, {1, pending, true}}), 2);
  EXPECT_EQ(s.status, batch_status::completed);
  EXPECT_EQ(s.fulfilled_entries, 2u);
  EXPECT_EQ(s.counts.skipped, 1u);
  EXPECT_EQ(s.counts[pending], 0u);
}

TEST(BatchReconcile, AllSkippedOrEmptyIsCompleted) {
  EXPECT_EQ(reconcile(jobs({{0, pending, true}, {1, failed, true}}), 2).status, batch_status::completed);
  EXPECT_EQ(reconcile({}, 0).status, batch_status::completed);
}

TEST(BatchReconcile, AnEntryWithoutAnyJobIsNotFulfilled) {
  auto s = reconcile(jobs({{0, completed}}), 2);
  EXPECT_EQ(s.status, batch_status::active);
  EXPECT_EQ(s.fulfilled_entries, 1u);
}

TEST(BatchReconcile, ACompletedButSkippedJobStillFulfilsItsEntry) {
  auto s = reconcile(jobs({{0, completed, true}}), 1);
  EXPECT_EQ(s.status, batch_status::completed);
  EXPECT_EQ(s.fulfilled_entries, 1u);
}

TEST(BatchReconcile, FailedIdsAreSortedAndCountsMatchTheSeedExample) {
  // The seed's recon log: 10 configs, 12 jobs, COMPLETED 8, FAILED 2, RUNNING 1, SKIPPED 1.
  std::vector<batch_job> js = jobs({{0, completed}, {1, completed}, {2, completed}, {3, completed}, {4, failed},
                                    {5, completed}, {6, completed}, {7, failed}, {8, completed}, {9, running},
                                    {4, failed, true}, {0, completed}});
  std::swap(js[4], js[7]);  // any order in, ascending ids out
  auto s = reconcile(js, 10);
  EXPECT_EQ(s.status, batch_status::failed);
  EXPECT_EQ(s.total_entries, 10u);
  EXPECT_EQ(s.total_jobs, 12u);
  EXPECT_EQ(s.fulfilled_entries, 7u);
  EXPECT_EQ(s.counts[completed], 8u);
  EXPECT_EQ(s.counts[failed], 2u);
  EXPECT_EQ(s.counts[running], 1u);
  EXPECT_EQ(s.counts.skipped, 1u);
  EXPECT_EQ(s.counts.total(), 12u);
  EXPECT_THAT(s.failed_job_ids, ElementsAre(5u, 8u));
  // The seed's recon log entry, member for member.
  EXPECT_EQ(jobpoll::to_json(s).dump(),
            R"({"status":"FAILED","total_configs":10,"fulfilled_configs":7,"total_jobs":12,)"
            R"("job_status_counts":{"RUNNING":1,"COMPLETED":8,"FAILED":2,"SKIPPED":1},"failed_job_ids":[5,8]})");
}

TEST(BatchReconcile, StatusNames) {
  EXPECT_EQ(jobpoll::to_string(batch_status::active), "ACTIVE");
  EXPECT_EQ(jobpoll::to_string(batch_status::completed), "COMPLETED");
  EXPECT_EQ(jobpoll::to_string(batch_status::failed), "FAILED");
  EXPECT_EQ(jobpoll::to_string(batch_status::cancelled), "CANCELLED");
  for (std::size_t i = 0; i < jobpoll::batch_job_state_count; ++i) {
    const auto s = static_cast<batch_job_state>(i);
    EXPECT_EQ(jobpoll::parse_batch_job_state(jobpoll::to_string(s)), s);
  }
  EXPECT_EQ(jobpoll::parse_batch_job_state("done"), std::nullopt);
}

}  // namespace
