// expect: batch_job_client
// A batch runs jobs through a client that can submit, and wait with a choice
// of what a cancellation does to the remote job (as job_client does).
#include <jobpoll/batch/batch_runner.hpp>
#include <jobpoll/store/sqlite.hpp>

#include <chrono>

// Submits, but has no wait(handle, options, on_cancel): it could not keep a
// job running when the batch stops.
struct submit_only_client {
  using value_type = int;
  asio::awaitable<jobpoll::job_handle> submit(jobpoll::job_params, jobpoll::poll_options);
};

jobpoll::batch_runner<submit_only_client, jobpoll::sqlite_store, std::chrono::steady_clock>* runner;
