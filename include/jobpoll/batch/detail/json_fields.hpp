#pragma once
// Detail of the batch records' JSON forms (<jobpoll/batch/batch_json.hpp>):
// UTC times with milliseconds, the bounded preview a message quotes, the
// guarded parse of one record, and `json_fields`, the reader of one JSON
// object's members with their types and ranges checked. Also used by the
// audit log and the stores.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

#include "jobpoll/batch/batch_job.hpp"
#include "jobpoll/codec/json.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/job_description.hpp"

namespace jobpoll::detail {

using wall_time = std::chrono::system_clock::time_point;

inline void put_digits(char* out, std::uint64_t value, int width) noexcept {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

/// `t` as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC), rounded down to the millisecond.
/// system_clock's nanoseconds span the years 1677 to 2262, so the year
/// always has four digits.
inline std::string format_utc_ms(wall_time t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t);
  const auto midnight = floor<days>(ms);
  const year_month_day date{midnight};
  const auto in_day = static_cast<std::uint64_t>((ms - midnight).count());
  std::string text = "0000-00-00T00:00:00.000Z";
  put_digits(text.data(), static_cast<std::uint64_t>(static_cast<int>(date.year())), 4);
  put_digits(text.data() + 5, static_cast<unsigned>(date.month()), 2);
  put_digits(text.data() + 8, static_cast<unsigned>(date.day()), 2);
  put_digits(text.data() + 11, in_day / 3'600'000, 2);
  put_digits(text.data() + 14, in_day / 60'000 % 60, 2);
  put_digits(text.data() + 17, in_day / 1000 % 60, 2);
  put_digits(text.data() + 20, in_day % 1000, 3);
  return text;
}

/// The time `text` names in exactly the form `format_utc_ms` writes, or none:
/// another layout, an invalid date or time of day (no leap second), or a
/// time system_clock cannot hold.
inline std::optional<wall_time> parse_utc_ms(std::string_view text) noexcept {
  using namespace std::chrono;
  static constexpr std::string_view shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (text.size() != shape.size()) return std::nullopt;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const bool ok = shape[i] == 'd' ? text[i] >= '0' && text[i] <= '9' : text[i] == shape[i];
    if (!ok) return std::nullopt;
  }
  const auto number = [text](std::size_t at, std::size_t width) {
    int value = 0;
    for (std::size_t i = at; i < at + width; ++i) value = value * 10 + (text[i] - '0');
    return value;
  };
  const year_month_day date{year{number(0, 4)}, month{static_cast<unsigned>(number(5, 2))},
                            day{static_cast<unsigned>(number(8, 2))}};
  const int h = number(11, 2), m = number(14, 2), s = number(17, 2);
  if (!date.ok() || h > 23 || m > 59 || s > 59) return std::nullopt;
  const milliseconds since_epoch =
      sys_days{date}.time_since_epoch() + hours{h} + minutes{m} + seconds{s} + milliseconds{number(20, 3)};
  // Truncation toward zero keeps both bounds inside the clock's range.
  if (since_epoch < duration_cast<milliseconds>(wall_time::duration::min()) ||
      since_epoch > duration_cast<milliseconds>(wall_time::duration::max()))
    return std::nullopt;
  return wall_time{duration_cast<wall_time::duration>(since_epoch)};
}

/// How much of a value a record's error message quotes, in bytes.
inline constexpr std::size_t record_preview_bytes = 100;

/// `value` for a record's error message: ASCII JSON cut after
/// `record_preview_bytes` with "...", built without serialising all of it.
inline std::string record_preview(const nlohmann::json& value) {
  return codec_preview(json_codec{}, value, record_preview_bytes);
}

/// `parse(text)` (a call of nlohmann's parser on `text`, the content of
/// `file` or its line `line`), with only `errc::invalid_checkpoint` escaping:
/// "<file>[:<line>]: not a JSON document: <the parser's message>", and
/// "<file>:<line>: nesting deeper than 512 levels at byte N" (checked before
/// parsing: the records are shallow, and deeper values could not be copied
/// or shown without deep recursion) or "...: number overflow parsing '1e999'
/// at byte N"; the line of a whole file is counted up to that byte.
template <class Parse>
nlohmann::json parse_json_record(std::string_view text, std::string_view file, std::optional<std::size_t> line,
                                 Parse parse) {
  const auto where = [&](std::optional<std::size_t> at) {
    std::string out(file);
    if (line) {
      out += ":" + std::to_string(*line);
    } else if (at) {
      out += ":" + std::to_string(1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(*at), '\n'));
    }
    return out + ": ";
  };
  static constexpr std::size_t max_depth = json_codec_options::default_max_depth;
  if (const auto at = json_too_deep_at(text, max_depth))
    throw std::system_error(errc::invalid_checkpoint, where(at) + too_deep_message(max_depth, *at));
  try {
    return parse(text);
  } catch (const nlohmann::json::parse_error& error) {
    throw std::system_error(errc::invalid_checkpoint,
                            where(std::nullopt) + "not a JSON document: " + json_error_reason(error));
  } catch (const nlohmann::json::exception& error) {
    // A number out of range (406), the only other failure of a parse.
    throw std::system_error(errc::invalid_checkpoint,
                            where(json_number_overflow_at(text)) + json_parse_failure(error, text));
  }
}

/// Throws `std::system_error(code, "<prefix><location>: expected <expected>, got <got>")`;
/// without a location, "<prefix>expected ...".
[[noreturn]] inline void throw_invalid_field(std::string_view prefix, std::string_view location,
                                             std::string_view expected, std::string_view got,
                                             std::error_code code = errc::invalid_checkpoint) {
  std::string message{prefix};
  if (!location.empty()) message.append(location).append(": ");
  message.append("expected ").append(expected).append(", got ").append(got);
  throw std::system_error(code, message);
}

inline constexpr std::string_view state_names =
    "a job state (pending, submitting, running, completed, failed, cancelled or unknown)";
inline constexpr std::string_view time_shape = "an ISO-8601 UTC time with milliseconds (YYYY-MM-DDTHH:MM:SS.mmmZ)";

/// The members of one JSON object, read with their types and ranges checked.
/// Every failure throws `errc::invalid_checkpoint` with
/// "<prefix><where>/<key>: expected <what>, got <the value, or nothing>".
/// `prefix` and `where` must outlive the reader.
class json_fields {
 public:
  /// Fails with "<prefix><where>: expected <what>, got ..." unless `object` is a JSON object.
  json_fields(const nlohmann::json& object, std::string_view prefix, std::string_view where, std::string_view what)
      : object_(object), prefix_(prefix), where_(where) {
    if (!object.is_object()) throw_invalid_field(prefix_, where_, what, record_preview(object));
  }

  [[noreturn]] void fail(std::string_view key, std::string_view expected, std::string_view got) const {
    std::string location{where_};
    location.append("/").append(key);
    throw_invalid_field(prefix_, location, expected, got);
  }

  /// The member `key`, or nullptr when there is none.
  const nlohmann::json* find(const char* key) const {
    const auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }

  /// The member `key`; fails ("got nothing") when there is none.
  const nlohmann::json& at(const char* key, std::string_view expected) const {
    const auto* value = find(key);
    if (!value) fail(key, expected, "nothing");
    return *value;
  }

  /// An integer >= `min`.
  std::size_t count(const char* key, std::size_t min) const {
    return count_in(at(key, count_shape(min, false)), key, min, false);
  }

  /// An integer >= `min`, or null.
  std::optional<std::size_t> optional_count(const char* key, std::size_t min) const {
    const auto& value = at(key, count_shape(min, true));
    if (value.is_null()) return std::nullopt;
    return count_in(value, key, min, true);
  }

  /// Non-negative integer nanoseconds, or null.
  std::optional<std::chrono::nanoseconds> optional_nanoseconds(const char* key) const {
    static constexpr std::string_view shape = "a non-negative integer (nanoseconds) or null";
    const auto& value = at(key, shape);
    if (value.is_null()) return std::nullopt;
    const auto n = non_negative(value);
    if (!n || !std::in_range<std::chrono::nanoseconds::rep>(*n)) fail(key, shape, record_preview(value));
    return std::chrono::nanoseconds(static_cast<std::chrono::nanoseconds::rep>(*n));
  }

  const std::string& string(const char* key) const {
    const auto& value = at(key, "a string");
    if (!value.is_string()) fail(key, "a string", record_preview(value));
    return value.get_ref<const std::string&>();
  }

  /// A string, or nullptr when the member is absent.
  const std::string* optional_string(const char* key) const {
    const auto* value = find(key);
    if (!value) return nullptr;
    if (!value->is_string()) fail(key, "a string", record_preview(*value));
    return &value->get_ref<const std::string&>();
  }

  bool boolean(const char* key) const {
    const auto& value = at(key, "true or false");
    if (!value.is_boolean()) fail(key, "true or false", record_preview(value));
    return value.get<bool>();
  }

  /// An object whose members are all strings.
  job_params params(const char* key) const {
    const auto& value = at(key, "an object of strings");
    if (!value.is_object()) fail(key, "an object of strings", record_preview(value));
    job_params out;
    for (const auto& [name, text] : value.items()) {
      if (!text.is_string()) fail(std::string(key) + "/" + pointer_token(name), "a string", record_preview(text));
      out.emplace_hint(out.end(), name, text.get_ref<const std::string&>());
    }
    return out;
  }

  wall_time time(const char* key) const {
    const auto& value = at(key, time_shape);
    return time_in(value, key, time_shape);
  }

  std::optional<wall_time> optional_time(const char* key) const {
    static const std::string shape = std::string(time_shape) + " or null";
    const auto& value = at(key, shape);
    if (value.is_null()) return std::nullopt;
    return time_in(value, key, shape);
  }

  batch_job_state state(const char* key) const { return state_in(at(key, state_names), key, state_names); }

  std::optional<batch_job_state> optional_state(const char* key) const {
    static const std::string shape = std::string(state_names) + " or null";
    const auto& value = at(key, shape);
    if (value.is_null()) return std::nullopt;
    return state_in(value, key, shape);
  }

 private:
  static std::string count_shape(std::size_t min, bool nullable) {
    std::string shape = min == 0 ? "a non-negative integer" : "an integer >= " + std::to_string(min);
    return nullable ? shape + " or null" : shape;
  }

  static std::optional<std::uint64_t> non_negative(const nlohmann::json& value) {
    if (value.is_number_unsigned()) return value.get<std::uint64_t>();
    if (value.is_number_integer() && value.get<std::int64_t>() >= 0)
      return static_cast<std::uint64_t>(value.get<std::int64_t>());
    return std::nullopt;
  }

  std::size_t count_in(const nlohmann::json& value, const char* key, std::size_t min, bool nullable) const {
    const auto n = non_negative(value);
    if (!n || !std::in_range<std::size_t>(*n) || *n < min) fail(key, count_shape(min, nullable), record_preview(value));
    return static_cast<std::size_t>(*n);
  }

  wall_time time_in(const nlohmann::json& value, const char* key, std::string_view shape) const {
    if (value.is_string()) {
      if (auto t = parse_utc_ms(value.get_ref<const std::string&>())) return *t;
    }
    fail(key, shape, record_preview(value));
  }

  batch_job_state state_in(const nlohmann::json& value, const char* key, std::string_view shape) const {
    if (value.is_string()) {
      if (auto s = parse_batch_job_state(value.get_ref<const std::string&>())) return *s;
    }
    fail(key, shape, record_preview(value));
  }

  const nlohmann::json& object_;
  std::string_view prefix_;
  std::string_view where_;
};

}  // namespace jobpoll::detail
