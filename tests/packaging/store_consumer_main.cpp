// The batch store of a packaged jobpoll: the sqlite component links and
// works (no file: a private in-memory store holds a batch of two entries).

#include <jobpoll/batch/batch_store.hpp>
#include <jobpoll/store/sqlite.hpp>

#include <iostream>
#include <vector>

static_assert(jobpoll::batch_store<jobpoll::sqlite_store>);

int main() {
  jobpoll::sqlite_store store(":memory:", "b");
  const std::vector<jobpoll::batch_entry> entries = {
      jobpoll::job_params{{"input", "a.csv"}},
      jobpoll::batch_entry::skipped(jobpoll::job_params{{"input", "b.csv"}}, "already done"),
  };
  const auto& info = store.create(entries);
  const auto counts = store.counts();
  std::cout << "batch " << info.name << ": " << counts.total() << " records, "
            << counts[jobpoll::batch_job_state::pending] << " pending, " << counts.skipped << " skipped\n";
  return counts.total() == 2 && counts[jobpoll::batch_job_state::pending] == 1 && counts.skipped == 1 ? 0 : 1;
}
