// Job description files on any content: only errc::invalid_argument naming
// the origin gets out, and an accepted file's status policy classifies
// without throwing.

#include <cstddef>
#include <string>
#include <system_error>

#include "fuzz_support.hpp"
#include "jobpoll/job_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  static const std::string origin = "fuzz.job.json";
  try {
    const jobpoll::job_file file = jobpoll::parse_job_file(jobpoll_fuzz::as_text(data, size), origin);
    static const nlohmann::json answer =
        nlohmann::json::parse(R"({"done":true,"error":{"message":"x"},"status":"RUNNING"})");
    static_cast<void>(file.status(answer));
  } catch (const std::system_error& error) {
    jobpoll_fuzz::require(error.code() == jobpoll::errc::invalid_argument, "an undocumented error code");
    jobpoll_fuzz::require(std::string_view(error.what()).starts_with(origin + ":"),
                          "an error that does not name the file");
  }
  return 0;
}
