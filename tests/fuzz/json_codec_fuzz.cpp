// json_codec on any answer, in its three body formats, then its readers, its
// bounded preview and field_status classification on what it decoded. Only
// documented errors get out: decode_error from decode, std::invalid_argument
// for a malformed pointer. field_status runs with value lists and compound rules.

#include <array>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include "fuzz_support.hpp"
#include "jobpoll/codec/json.hpp"
#include "jobpoll/field_status.hpp"

namespace {

using jobpoll::json_codec;
using json = nlohmann::json;

void check_preview(const json_codec& codec, const json& value, std::size_t max_bytes) {
  const std::string preview = codec.preview(value, max_bytes);
  const std::string whole = value.dump(-1, ' ', true, json::error_handler_t::replace);
  if (whole.size() <= max_bytes) {
    jobpoll_fuzz::require(preview == whole, "preview: a short value is not its whole text");
  } else {
    jobpoll_fuzz::require(preview.size() == max_bytes + 3 && preview.ends_with("...") &&
                              whole.starts_with(std::string_view(preview).substr(0, max_bytes)),
                          "preview: a long value is not the start of its text and \"...\"");
  }
}

void read(const json_codec& codec, const json& value, std::string_view pointer, std::size_t max_bytes) {
  const bool well_formed = jobpoll::detail::pointer_syntax_error(pointer).empty();
  try {
    if (const json* at = codec.find(value, pointer)) {
      static_cast<void>(codec.text(*at));
      static_cast<void>(codec.number(*at));
      check_preview(codec, *at, max_bytes);
    }
    jobpoll_fuzz::require(well_formed, "find accepted a malformed pointer");
  } catch (const std::invalid_argument&) {
    jobpoll_fuzz::require(!well_formed, "find refused a well-formed pointer");
  }
  check_preview(codec, value, max_bytes);
  // What decode returns always encodes, and the encoding reads back the same.
  const std::string encoded = codec.encode(value);
  jobpoll_fuzz::require(json_codec{}.decode(encoded) == value, "encode/decode does not round-trip");

  try {
    jobpoll::field_status<json_codec> status(std::string(pointer), {{"done", "true"}, {"failed"}, {"running", "0"}},
                                             codec);
    status.progress_at("/progress").hint_at("/retry_after").failure_detail_at("/error");
    // Compound rules (Google LRO): done and /error present = failed, done = succeeded.
    using jobpoll::field_condition;
    using jobpoll::rule_outcome;
    status.rule({.when = {field_condition::equals("/done", {"true"}), field_condition::present("/error")},
                 .then = rule_outcome::failed,
                 .detail = "/error/message"});
    status.rule({.when = {field_condition::equals("/done", {"true"})}, .then = rule_outcome::succeeded});
    status.rule({.when = {field_condition::absent(std::string(pointer))}, .then = rule_outcome::pending});
    const jobpoll::poll_status outcome = status(value);
    static_cast<void>(outcome);
    jobpoll_fuzz::require(well_formed, "field_status accepted a malformed pointer");
  } catch (const std::invalid_argument&) {
    jobpoll_fuzz::require(!well_formed, "field_status refused a well-formed pointer");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  if (size == 0) return 0;
  // Byte 0: the depth limit and preview size; then body, pointer, Content-Type.
  const unsigned flags = data[0];
  const auto fields = jobpoll_fuzz::split(jobpoll_fuzz::as_text(data + 1, size - 1), 3);
  const std::string_view body = fields[0], pointer = fields[1], content_type = fields[2];
  const std::size_t max_depth = (flags & 0x80) ? json_codec::options::default_max_depth : 1 + (flags & 0x7);
  const std::size_t max_bytes = (flags >> 3) & 0xf;

  for (const auto format : {jobpoll::json_body_format::json, jobpoll::json_body_format::text,
                            jobpoll::json_body_format::by_content_type}) {
    const json_codec codec(json_codec::options{.max_depth = max_depth, .format = format});
    std::optional<json> value;
    try {
      value = jobpoll::detail::decode_answer(codec, body, content_type);
    } catch (const std::system_error& error) {
      jobpoll_fuzz::require(error.code() == jobpoll::errc::decode_error, "decode: an undocumented error code");
      continue;
    }
    if (format == jobpoll::json_body_format::text)
      jobpoll_fuzz::require(*value == json(std::string(jobpoll::detail::trim_ascii_whitespace(body))),
                            "text format: not the trimmed body");
    read(codec, *value, pointer, max_bytes);
  }
  return 0;
}
