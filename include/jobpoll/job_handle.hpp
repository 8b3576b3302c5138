#pragma once
// The job vocabulary: a submitted job's handle, a finished job's result, and
// the names job clients and batches share (phases, what a cancel does to the
// remote job). Plain data, no Asio coroutine machinery and no transport:
// batches, stores and checkpoints include this rather than job_client.hpp.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "jobpoll/http.hpp"
#include "jobpoll/job_description.hpp"
#include "jobpoll/observer.hpp"
#include "jobpoll/poll_schedule.hpp"

namespace jobpoll {

/// A submitted job: what is needed to poll it again later, in this process
/// or another, without submitting it a second time.
struct job_handle {
  // A constructor rather than an aggregate: brace-initialising the first
  // members stays warning-free as members are added.
  job_handle(std::string id = {}, job_params params = {}, poll_progress progress = {},
             std::optional<std::chrono::nanoseconds> remaining = {},
             std::optional<std::chrono::nanoseconds> first_poll_after = {})
      : id(std::move(id)),
        params(std::move(params)),
        progress(progress),
        remaining(remaining),
        first_poll_after(first_poll_after) {}

  std::string id;     ///< the handle as the server gave it (a hash, an id, a URL)
  job_params params;  ///< the placeholder values it was submitted with, its "job_key" included when it has one
  /// Where polling stopped: attempts made and transient failures in a row.
  poll_progress progress;
  /// Deadline budget left when the submit or the poll stopped; `wait` uses
  /// it instead of the options' deadline. None: no deadline.
  std::optional<std::chrono::nanoseconds> remaining;
  /// The wait the submit answer asked for before the first poll (its
  /// Retry-After); `wait` honours it, within the options' hint bounds, when
  /// nothing has been polled yet. Kept in memory only.
  std::optional<std::chrono::nanoseconds> first_poll_after;
};

/// The result of a job that succeeded.
template <class Value>
struct job_result {
  Value value;              ///< the result; a paged result is one array of every item
  job_handle handle;        ///< the job, with its final progress
  poll_stats stats;         ///< of the poll phase
  std::size_t pages = 0;    ///< result requests made after the poll (fetch: 1, paged: one per page fetched)
  http_response last_poll;  ///< the final poll answer, as received
};

/// Which step of a job a `job_error` comes from.
enum class job_phase {
  submit,  ///< creating the job (`job_client::submit`)
  poll,    ///< polling it until it ends
  result,  ///< fetching its result
  lookup,  ///< finding it by its job key (`job_client::find`)
};

/// What `job_client::wait` does with the remote job when its caller cancels
/// the wait (a timeout or exhausted retries always cancel it remotely).
enum class on_cancel {
  cancel_job,  ///< send the description's cancel request: the job is given up
  keep_job,    ///< leave it running: the handle in the error polls it again later
};

/// What happened to the remote cancel request when a job client gave up on a job.
enum class remote_cancel {
  not_applicable,  ///< the job ended, its handle expired, it was never submitted, or it was kept (`on_cancel::keep_job`)
  not_configured,  ///< the job description has no cancel request
  sent,            ///< the server accepted the cancel request (2xx, or 404/410: already gone)
  failed,          ///< it could not be sent or the server refused it (see the message)
};

inline std::string_view to_string(job_phase p) noexcept {
  switch (p) {
    case job_phase::submit: return "submit";
    case job_phase::poll: return "poll";
    case job_phase::result: return "result";
    case job_phase::lookup: return "lookup";
  }
  return "invalid";
}

inline std::string_view to_string(remote_cancel c) noexcept {
  switch (c) {
    case remote_cancel::not_applicable: return "not_applicable";
    case remote_cancel::not_configured: return "not_configured";
    case remote_cancel::sent: return "sent";
    case remote_cancel::failed: return "failed";
  }
  return "invalid";
}

}  // namespace jobpoll
