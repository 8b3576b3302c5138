// The checkpoint loader on any file content: only invalid_checkpoint naming
// the file gets out, and every record it accepts writes and reads back.

#include <cstddef>
#include <string>
#include <system_error>

#include "fuzz_support.hpp"
#include "jobpoll/batch/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  static const std::string file = "fuzz.checkpoint.json";
  try {
    const jobpoll::batch_checkpoint checkpoint =
        jobpoll::detail::parse_checkpoint(jobpoll_fuzz::as_text(data, size), file);
    for (const jobpoll::batch_job& job : checkpoint.jobs) {
      const jobpoll::batch_job again = jobpoll::batch_job_from_json(jobpoll::to_json(job), "");
      jobpoll_fuzz::require(again.id == job.id && again.state == job.state && again.params == job.params,
                            "a loaded record does not read back");
    }
  } catch (const std::system_error& error) {
    jobpoll_fuzz::require(error.code() == jobpoll::errc::invalid_checkpoint, "an undocumented error code");
    jobpoll_fuzz::require(std::string_view(error.what()).starts_with(file), "an error that does not name the file");
  }
  return 0;
}
