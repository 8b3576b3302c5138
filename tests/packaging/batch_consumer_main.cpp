// The batch headers of a packaged jobpoll, on the batch component alone (no
// store, no transport): a record's JSON form reads back as the same record,
// and a batch of two entries reconciles as the seed's recon log says.

#include <jobpoll/batch.hpp>

#include <iostream>
#include <vector>

int main() {
  jobpoll::batch_job done;
  done.id = 1;
  done.params = {{"input", "a.csv"}};
  done.key = "k1";
  done.state = jobpoll::batch_job_state::completed;
  done.handle = jobpoll::job_handle("h-1", done.params);
  jobpoll::batch_job skipped;
  skipped.id = 2;
  skipped.entry = 1;
  skipped.key = "k2";
  skipped.skipped = true;
  skipped.skip_reason = "already done";

  const auto back = jobpoll::batch_job_from_json(jobpoll::to_json(done), "/jobs/0");
  const std::vector<jobpoll::batch_job> jobs = {done, skipped};
  const auto summary = jobpoll::reconcile(jobs, 2);
  std::cout << jobpoll::to_json(summary).dump() << "\n";
  const bool ok = back.handle && back.handle->id == "h-1" && back.state == done.state &&
                  summary.status == jobpoll::batch_status::completed && summary.fulfilled_entries == 2;
  return ok ? 0 : 1;
}
