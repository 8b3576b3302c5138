#pragma once
// JSON forms of a batch's records (`batch_job`, `job_handle`), shared by the
// checkpoint and the audit log: times as ISO-8601 UTC with milliseconds,
// durations as integer nanoseconds, an empty optional as null, and strict
// validation on the way in, with errors that name the field and quote the value.

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "jobpoll/batch/batch_job.hpp"
#include "jobpoll/batch/detail/batch_json.hpp"
#include "jobpoll/batch/reconcile.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/job_handle.hpp"

namespace jobpoll {

/// The JSON form of a job handle:
/// `{"id": "...", "params": {"name": "value", ...},
///   "progress": {"attempts": 3, "consecutive_failures": 0}, "remaining_ns": 1500000000}`,
/// with `remaining_ns` (integer nanoseconds) null when the handle has no
/// remaining budget. Throws `nlohmann::json::type_error` when a string is
/// not valid UTF-8.
inline nlohmann::json to_json(const job_handle& handle) {
  std::string text;
  detail::append_json(text, handle);
  return nlohmann::json::parse(text);
}

/// The JSON form of a batch job record: an object with every member of
/// `batch_job` under its own name (`handle` as `to_json(job_handle)`), the
/// state by name ("running"), times as ISO-8601 UTC with milliseconds
/// ("2026-11-22T16:00:00.123Z", rounded down to the millisecond), and every
/// empty optional (`parent`, `handle`, `submitted`, `ended`) written as null:
/// every record has every member. Throws `nlohmann::json::type_error` when a
/// string is not valid UTF-8.
inline nlohmann::json to_json(const batch_job& job) {
  std::string text;
  detail::append_json(text, job);
  return nlohmann::json::parse(text);
}

/// Reads a job handle written by `to_json(job_handle)`. Every member must be
/// present with its type: `id` a non-empty string, `params` an object of
/// strings, `progress.attempts` and `progress.consecutive_failures`
/// non-negative integers, `remaining_ns` a non-negative integer or null.
/// Other members are ignored. Throws `std::system_error` with
/// `errc::invalid_checkpoint` and "<where>/<field>: expected <what>, got
/// <the value as JSON, cut after 100 bytes, or nothing>"; `where` is the
/// handle's location for that message (a JSON pointer such as "/jobs/3/handle").
inline job_handle job_handle_from_json(const nlohmann::json& value, std::string_view where) {
  return detail::read_job_handle(value, {}, where);
}

/// Reads a record written by `to_json(batch_job)`, checking every member's
/// type and value, and the record's consistency:
/// - `id` an integer >= 1, `entry` a non-negative integer, `attempt` an
///   integer >= 1, `parent` an integer between 1 and `id - 1`, or null;
/// - `attempt` 1 without a parent, at least 2 with one;
/// - `state` a state name (`parse_batch_job_state`), `skipped` a boolean,
///   `params` an object of strings, the other texts strings;
/// - `handle` null or a valid handle (`job_handle_from_json`), and present
///   when the job is running or has a `submitted` time;
/// - `created` a time, `submitted` and `ended` a time or null, `ended` null
///   unless the state is terminal; a time is exactly "YYYY-MM-DDTHH:MM:SS.mmmZ".
/// Other members are ignored. Throws `std::system_error` with
/// `errc::invalid_checkpoint` and "<where>/<field>: expected <what>, got
/// <the value as JSON, cut after 100 bytes, or nothing>" for the first
/// problem; `where` is the record's location for that message ("/jobs/3").
inline batch_job batch_job_from_json(const nlohmann::json& value, std::string_view where) {
  return detail::read_batch_job(value, {}, where);
}

/// The reconciliation in the shape of the seed's recon log entry (an entry
/// is the seed's "job configuration"):
/// `{"status": "FAILED", "total_configs": 10, "fulfilled_configs": 8,
///   "total_jobs": 12, "job_status_counts": {"COMPLETED": 8, "FAILED": 2,
///   "RUNNING": 1, "SKIPPED": 1}, "failed_job_ids": [5, 8]}`;
/// `job_status_counts` names only the states some record is in.
inline nlohmann::ordered_json to_json(const batch_summary& summary) {
  nlohmann::ordered_json counts = nlohmann::ordered_json::object();
  const auto count = [&counts](std::string_view state, std::size_t n) {
    if (n == 0) return;
    std::string name(state);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    counts[name] = n;
  };
  for (std::size_t i = 0; i < batch_job_state_count; ++i) {
    const auto state = static_cast<batch_job_state>(i);
    count(to_string(state), summary.counts[state]);
  }
  count("skipped", summary.counts.skipped);
  return {{"status", std::string(to_string(summary.status))},
          {"total_configs", summary.total_entries},
          {"fulfilled_configs", summary.fulfilled_entries},
          {"total_jobs", summary.total_jobs},
          {"job_status_counts", std::move(counts)},
          {"failed_job_ids", summary.failed_job_ids}};
}

}  // namespace jobpoll
