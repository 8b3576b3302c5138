// text_codec on any answer: decode never fails, find refuses only malformed
// pointers (std::invalid_argument), append_elements always refuses, and the
// preview is bounded.

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "jobpoll/codec/text.hpp"
#include "jobpoll/field_status.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  const auto fields = jobpoll_fuzz::split(jobpoll_fuzz::as_text(data, size), 2);
  const jobpoll::text_codec codec;
  const std::string value = codec.decode(fields[0]);
  jobpoll_fuzz::require(value == jobpoll::detail::trim_ascii_whitespace(value), "decode: the text is not trimmed");
  jobpoll_fuzz::require(codec.encode(value) == value && codec.text(value) == value, "encode/text: not the text");
  if (const auto number = codec.number(value)) jobpoll_fuzz::require(std::isfinite(*number), "number: not finite");

  const bool well_formed = jobpoll::detail::pointer_syntax_error(fields[1]).empty();
  try {
    const std::string* at = codec.find(value, fields[1]);
    jobpoll_fuzz::require(well_formed && (at == &value) == fields[1].empty(),
                          "find: wrong value or accepted a malformed pointer");
  } catch (const std::invalid_argument&) {
    jobpoll_fuzz::require(!well_formed, "find refused a well-formed pointer");
  }

  std::string all = codec.empty_array();
  try {
    codec.append_elements(all, value);
    jobpoll_fuzz::require(false, "append_elements appended to text");
  } catch (const std::invalid_argument&) {
  }
  const std::string preview = jobpoll::detail::codec_preview(codec, value, 16);
  jobpoll_fuzz::require(preview.size() <= 16 * 4 + 32, "preview: not bounded");

  try {
    jobpoll::field_status<jobpoll::text_codec> status(std::string(fields[1]), {{"FINISHED"}, {"FAILURE"}, {"RUNNING"}});
    static_cast<void>(status(value));
  } catch (const std::invalid_argument&) {
    jobpoll_fuzz::require(!well_formed, "field_status refused a well-formed pointer");
  }
  return 0;
}
