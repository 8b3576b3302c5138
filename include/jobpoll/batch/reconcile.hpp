#pragma once
// A batch's status from its job records, by the rules of the batch lifecycle
// (seed 003): cancelled, failed, completed or still active.

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "jobpoll/batch/batch_job.hpp"

namespace jobpoll {

/// The status of a batch as a whole.
enum class batch_status {
  active,     ///< jobs are still to run or running
  completed,  ///< every entry that is not skipped has a completed job
  failed,     ///< a job that is not skipped failed
  cancelled,  ///< every job that is not skipped was cancelled
};

inline constexpr std::string_view to_string(batch_status s) noexcept {
  switch (s) {
    case batch_status::active: return "ACTIVE";
    case batch_status::completed: return "COMPLETED";
    case batch_status::failed: return "FAILED";
    case batch_status::cancelled: return "CANCELLED";
  }
  return "INVALID";
}

/// The outcome of `reconcile`: the status and what it was decided from.
struct batch_summary {
  batch_status status = batch_status::active;
  std::size_t total_entries = 0;      ///< entries (job configurations) of the batch
  std::size_t fulfilled_entries = 0;  ///< entries with a completed job, or all of whose jobs are skipped
  std::size_t total_jobs = 0;         ///< job records, resubmissions and skipped ones included
  batch_counts counts;                ///< records per state (skipped ones as `skipped`)
  std::vector<std::size_t> failed_job_ids;  ///< ids of the failed records that are not skipped, ascending
};

namespace detail {

/// The rules of `reconcile`, first match wins, from `live` records that are
/// not skipped (`live_cancelled` of them cancelled) and a summary whose
/// failed ids, fulfilled and total entries are known.
inline batch_status batch_status_of(std::size_t live, std::size_t live_cancelled, const batch_summary& s) noexcept {
  if (live > 0 && live_cancelled == live) return batch_status::cancelled;
  if (!s.failed_job_ids.empty()) return batch_status::failed;
  if (s.fulfilled_entries == s.total_entries) return batch_status::completed;
  return batch_status::active;
}

}  // namespace detail

/// Reconciles a batch of `entries` entries from its job records (any order).
///
/// The rules, first match wins:
/// - CANCELLED when there is a job that is not skipped and every such job is cancelled;
/// - FAILED when a job that is not skipped failed;
/// - COMPLETED when every entry has a completed job or only skipped jobs
///   (so a batch whose jobs are all skipped, or one without entries, is
///   COMPLETED; an entry without any job is not fulfilled);
/// - ACTIVE otherwise.
/// An entry is fulfilled by a completed job even when that job is skipped,
/// as in the seed ("at least one COMPLETED job, or skipped"). Jobs whose
/// `entry` is not below `entries` are counted but fulfil nothing.
inline batch_summary reconcile(std::span<const batch_job> jobs, std::size_t entries) {
  batch_summary s;
  s.total_entries = entries;
  s.total_jobs = jobs.size();
  // Per entry: has a job / a completed job / a job that is not skipped.
  std::vector<unsigned char> any(entries, 0), completed(entries, 0), unskipped(entries, 0);
  std::size_t live = 0, live_cancelled = 0;
  for (const batch_job& job : jobs) {
    s.counts.add(job);
    const bool known = job.entry < entries;
    if (known) any[job.entry] = 1;
    if (known && job.state == batch_job_state::completed) completed[job.entry] = 1;
    if (job.skipped) continue;
    if (known) unskipped[job.entry] = 1;
    ++live;
    if (job.state == batch_job_state::cancelled) ++live_cancelled;
    if (job.state == batch_job_state::failed) s.failed_job_ids.push_back(job.id);
  }
  std::sort(s.failed_job_ids.begin(), s.failed_job_ids.end());
  for (std::size_t e = 0; e < entries; ++e)
    if (completed[e] || (any[e] && !unskipped[e])) ++s.fulfilled_entries;

  s.status = detail::batch_status_of(live, live_cancelled, s);
  return s;
}

}  // namespace jobpoll
