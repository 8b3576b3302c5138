// expect: batch_store
// A batch runs on a store that saves every change: a type that keeps the
// records but cannot update one with its history is not a store.
#include <jobpoll/batch/batch_runner.hpp>
#include <jobpoll/job_client.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <vector>

struct client {
  using value_type = int;
  asio::awaitable<jobpoll::job_handle> submit(jobpoll::job_params, jobpoll::poll_options);
  asio::awaitable<jobpoll::job_result<int>> wait(jobpoll::job_handle, jobpoll::poll_options, jobpoll::on_cancel);
};

// No update(job, previous, note): a change could not be committed.
struct read_only_store {
  const jobpoll::batch_info& create(std::size_t, jobpoll::batch_entry_source);
  const jobpoll::batch_info& info() const;
  void claim();
  void release() noexcept;
  jobpoll::batch_counts counts() const;
  void insert(jobpoll::batch_job&);
  std::optional<jobpoll::batch_job> job(std::size_t) const;
  std::vector<jobpoll::batch_job> jobs_in(jobpoll::batch_job_state, std::size_t, std::size_t) const;
  jobpoll::batch_summary summary() const;
};

jobpoll::batch_runner<client, read_only_store, std::chrono::steady_clock>* runner;
