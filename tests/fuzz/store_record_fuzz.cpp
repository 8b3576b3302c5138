// A batch store's JSON columns on any content (a store edited by hand, a
// disk that returned garbage): the params and handle of a job record are
// read with only errc::store_error naming the store and the job getting out.

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

#include "fuzz_support.hpp"
#include "jobpoll/store/sqlite.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  static const std::string origin = "batch store fuzz.db: batch \"b\"";
  const std::string_view text = jobpoll_fuzz::as_text(data, size);
  // The params column, then after the first newline the handle column.
  const std::size_t split = text.find('\n');
  const std::string_view params = text.substr(0, split);
  const std::string_view handle = split == std::string_view::npos ? std::string_view() : text.substr(split + 1);
  const auto check = [](const std::system_error& error) {
    jobpoll_fuzz::require(error.code() == jobpoll::errc::store_error, "an undocumented error code");
    jobpoll_fuzz::require(std::string_view(error.what()).starts_with(origin + " job 7: "),
                          "an error that does not name the store and the job");
  };
  try {
    static_cast<void>(jobpoll::detail::read_stored_params(params, origin, 7));
  } catch (const std::system_error& error) {
    check(error);
  }
  try {
    static_cast<void>(jobpoll::detail::read_stored_handle(handle, origin, 7));
  } catch (const std::system_error& error) {
    check(error);
  }
  return 0;
}
