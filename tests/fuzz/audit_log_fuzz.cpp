// The audit-log replay on any file content: only invalid_checkpoint naming
// the file and line gets out, and every rebuilt record can be written.

#include <cstddef>
#include <string>
#include <system_error>

#include "fuzz_support.hpp"
#include "jobpoll/batch/audit_log.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  static const std::string file = "fuzz.audit.ndjson";
  try {
    for (const jobpoll::batch_job& job : jobpoll::detail::replay_audit_text(jobpoll_fuzz::as_text(data, size), file))
      static_cast<void>(jobpoll::to_json(job));
  } catch (const std::system_error& error) {
    jobpoll_fuzz::require(error.code() == jobpoll::errc::invalid_checkpoint, "an undocumented error code");
    jobpoll_fuzz::require(std::string_view(error.what()).starts_with(file + ":"),
                          "an error that does not name the file and line");
  }
  return 0;
}
