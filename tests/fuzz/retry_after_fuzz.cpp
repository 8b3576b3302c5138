// parse_retry_after and parse_http_date on any header value and any "now":
// they never throw, and a wait is within [0, max_retry_after].

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fuzz_support.hpp"
#include "jobpoll/retry_after.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  using namespace std::chrono;
  // The first 8 bytes pick "now" anywhere in system_clock's range; the rest is the value.
  std::int64_t ticks = 0;
  const std::size_t taken = size < sizeof ticks ? 0 : sizeof ticks;
  if (taken) std::memcpy(&ticks, data, sizeof ticks);
  const system_clock::time_point now = taken ? system_clock::time_point(system_clock::duration(ticks))
                                             : system_clock::time_point(sys_days{year{2026} / 11 / 22});
  const auto value = jobpoll_fuzz::as_text(data + taken, size - taken);

  const auto wait = jobpoll::parse_retry_after(value, now);
  jobpoll_fuzz::require(!wait || (*wait >= seconds::zero() && *wait <= jobpoll::max_retry_after),
                        "parse_retry_after: a wait outside [0, max_retry_after]");
  if (const auto date = jobpoll::parse_http_date(value, now)) {
    // A date that parses is a Retry-After too (it is one of its two forms).
    jobpoll_fuzz::require(jobpoll::parse_retry_after(value, now).has_value(),
                          "an HTTP-date that parse_retry_after refuses");
  }
  return 0;
}
