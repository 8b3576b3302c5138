// expand_template on any template and any parameters: only its documented
// error (system_error with errc::invalid_argument) gets out.

#include <cstddef>
#include <string>
#include <system_error>

#include "fuzz_support.hpp"
#include "jobpoll/job_description.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  if (size == 0) return 0;
  // Byte 0: the template part; then the template, then name, value, name, value, ...
  const auto part = static_cast<jobpoll::template_part>(data[0] % 3);
  const auto fields = jobpoll_fuzz::split(jobpoll_fuzz::as_text(data + 1, size - 1), 9);
  jobpoll::job_params params;
  for (std::size_t i = 1; i + 1 < fields.size(); i += 2)
    params.emplace(std::string(fields[i]), std::string(fields[i + 1]));
  try {
    const std::string out = jobpoll::expand_template(fields[0], params, part);
    if (fields[0].find('{') == std::string_view::npos)
      jobpoll_fuzz::require(out == fields[0], "a template without placeholders changed");
  } catch (const std::system_error& error) {
    jobpoll_fuzz::require(error.code() == jobpoll::errc::invalid_argument,
                          "expand_template: an undocumented error code");
  }
  return 0;
}
