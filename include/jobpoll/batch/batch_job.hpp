#pragma once
// One job of a batch: its lineage, its state, its handle once submitted.
// Plain data, shared by the runner, reconciliation, checkpoints and the audit log.

#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "jobpoll/job_handle.hpp"
#include "jobpoll/job_description.hpp"

namespace jobpoll {

/// Where a batch job is in its life. Being skipped is a flag (`batch_job::skipped`),
/// not a state: a skipped job keeps the state it had.
enum class batch_job_state {
  pending,     ///< not submitted yet
  submitting,  ///< its submit request is under way
  running,     ///< submitted: it has a handle and is polled (or will be, after a resume)
  completed,   ///< it succeeded and its result was delivered
  failed,      ///< it failed, timed out or could not be submitted (see `batch_job::error`)
  cancelled,   ///< it was abandoned and cancelled remotely when the batch stopped
  /// Its submit may have reached the server (a crash or stop during the
  /// submit) and neither an idempotent submit nor a lookup can tell: it
  /// waits for the user to resubmit, skip or adopt it by its handle.
  unknown,
};

inline constexpr std::size_t batch_job_state_count = 7;

inline constexpr std::string_view to_string(batch_job_state s) noexcept {
  switch (s) {
    case batch_job_state::pending: return "pending";
    case batch_job_state::submitting: return "submitting";
    case batch_job_state::running: return "running";
    case batch_job_state::completed: return "completed";
    case batch_job_state::failed: return "failed";
    case batch_job_state::cancelled: return "cancelled";
    case batch_job_state::unknown: return "unknown";
  }
  return "invalid";
}

/// The state named `text` (as `to_string` writes it), or none.
inline std::optional<batch_job_state> parse_batch_job_state(std::string_view text) noexcept {
  for (std::size_t i = 0; i < batch_job_state_count; ++i) {
    const auto s = static_cast<batch_job_state>(i);
    if (to_string(s) == text) return s;
  }
  return std::nullopt;
}

/// True for the states a job does not leave.
inline constexpr bool is_terminal(batch_job_state s) noexcept {
  return s == batch_job_state::completed || s == batch_job_state::failed || s == batch_job_state::cancelled;
}

/// One item of a batch's input: the parameters of one job (the seed's "job
/// configuration"). A skipped entry is recorded but never submitted.
struct batch_entry {
  batch_entry() = default;
  /// An entry to run; implicit, so a `job_params` is an entry.
  batch_entry(job_params params) : params(std::move(params)) {}  // NOLINT(google-explicit-constructor)
  /// An entry recorded as skipped, with why.
  static batch_entry skipped(job_params params, std::string reason) {
    batch_entry e(std::move(params));
    e.skip = true;
    e.skip_reason = std::move(reason);
    return e;
  }

  job_params params;
  bool skip = false;
  std::string skip_reason;
};

/// One job record of a batch. Every submission is a record of its own: a
/// resubmission is a new record naming its `parent`, so the lineage of
/// every entry can be read from the records.
struct batch_job {
  using wall_time = std::chrono::system_clock::time_point;

  std::size_t id = 0;                 ///< 1, 2, ... in creation order; unique in the batch
  std::size_t entry = 0;              ///< index of the `batch_entry` it runs
  std::optional<std::size_t> parent;  ///< the record it resubmits
  std::size_t attempt = 1;            ///< 1, then 2 for the first resubmission, ...
  job_params params;                  ///< as submitted (a resubmission's may differ from the entry's)
  std::string override_reason;        ///< why a resubmission changed the parameters ("" if it did not)
  /// The job's key: sent as the `{job_key}` placeholder of its submit (and
  /// lookup), the same in every run; unique per record, so a resubmission
  /// is a new job to the server.
  std::string key;
  batch_job_state state = batch_job_state::pending;
  bool skipped = false;               ///< excluded from reconciliation, kept in the record
  std::string skip_reason;
  /// Set once submitted; polls the job again after a restart, with its
  /// progress and remaining deadline budget.
  std::optional<job_handle> handle;
  std::string error;       ///< why it failed or was cancelled (the job_error's message), "" otherwise
  std::string error_code;  ///< that error as "category:value", e.g. "jobpoll:2"; "" if none
  /// What the runner's result handler kept of a completed job's result (a
  /// store keeps it with the record), "" otherwise.
  std::string result;
  wall_time created{};
  std::optional<wall_time> submitted;  ///< when its handle arrived
  std::optional<wall_time> ended;      ///< when it reached a terminal state
};

/// How many records are in each state; skipped records count as `skipped`
/// only, whatever their state.
struct batch_counts {
  std::array<std::size_t, batch_job_state_count> by_state{};
  std::size_t skipped = 0;

  std::size_t operator[](batch_job_state s) const noexcept { return by_state[static_cast<std::size_t>(s)]; }
  /// Every record, skipped ones included.
  std::size_t total() const noexcept {
    std::size_t n = skipped;
    for (auto c : by_state) n += c;
    return n;
  }
  /// Jobs submitting or running (a resumed batch's running jobs count
  /// before they are polled again); `unknown` jobs wait for a decision.
  std::size_t in_flight() const noexcept {
    return (*this)[batch_job_state::submitting] + (*this)[batch_job_state::running];
  }

  void add(const batch_job& job) noexcept { ++slot(job); }
  /// Never below 0: a runner on a shared store counts from a snapshot that
  /// other runners' changes make stale.
  void remove(const batch_job& job) noexcept {
    if (std::size_t& n = slot(job); n > 0) --n;
  }

  friend bool operator==(const batch_counts&, const batch_counts&) = default;

 private:
  std::size_t& slot(const batch_job& job) noexcept {
    return job.skipped ? skipped : by_state[static_cast<std::size_t>(job.state)];
  }
};

}  // namespace jobpoll
