#pragma once
// The loopback job server's /v1 job API (tests/server/job_server.py) as a
// job description and status policy, for the integration tests that run
// job clients against it.

#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/job_description.hpp>

#include "loopback_server.hpp"

namespace jobpoll_test {

using v1_status = jobpoll::field_status<jobpoll::json_codec>;

/// POST /v1/jobs with the body `{body}` (a job_params value), the handle at
/// /job_id, polls at /v1/jobs/{handle}, the result in the final answer, and
/// DELETE as the cancel request when `cancellable`.
inline jobpoll::job_description v1_job_api(const jobpoll::test::loopback_server& server, bool cancellable = true) {
  jobpoll::job_description d;
  d.submit = {"POST", server.url("/v1/jobs"), "{body}"};
  d.handle = jobpoll::handle_source::body("/job_id");
  d.poll = {"GET", "/v1/jobs/{handle}"};
  d.result = jobpoll::result_source::in_poll_answer("/result");
  if (cancellable) d.cancel = jobpoll::request_template{"DELETE", "/v1/jobs/{handle}"};
  return d;
}

/// completed / failed or cancelled / pending or running, with progress and the failure text.
inline v1_status v1_job_status() {
  return v1_status("/status", {.succeeded = {"completed"}, .failed = {"failed", "cancelled"}, .pending = {"pending", "running"}})
      .progress_at("/progress")
      .failure_detail_at("/error");
}

}  // namespace jobpoll_test
