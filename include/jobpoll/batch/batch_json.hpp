#pragma once
// JSON forms of a batch's records (`batch_job`, `job_handle`), shared by the
// checkpoint and the audit log: times as ISO-8601 UTC with milliseconds,
// durations as integer nanoseconds, an empty optional as null, and strict
// validation on the way in, with errors that name the field and quote the value.

#include <algorithm>
#include <cctype>
#include <charconv>
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
#include "jobpoll/batch/reconcile.hpp"
#include "jobpoll/codec/json.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/job_client.hpp"
#include "jobpoll/job_description.hpp"

namespace jobpoll {

namespace detail {

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

/// A record that is well-typed but inconsistent: which field, what it
/// should be, what it is.
struct record_problem {
  std::string field;  ///< relative to the record, e.g. "handle" or "handle/id"
  std::string expected;
  std::string got;
};

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

/// Appends `text` as a JSON string. Throws `nlohmann::json::type_error`
/// (316, "invalid UTF-8 byte at index ...") when it is not valid UTF-8.
inline void append_json_string(std::string& out, std::string_view text) {
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f || c == '"' || c == '\\') {
      // Escapes and the UTF-8 check are nlohmann's.
      out += nlohmann::json(text).dump();
      return;
    }
  }
  out += '"';
  out.append(text);
  out += '"';
}

template <class Integer>
void append_json_number(std::string& out, Integer n) {
  char digits[24];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, n).ptr);
}

inline void append_json_params(std::string& out, const job_params& params) {
  out += '{';
  bool first = true;
  for (const auto& [name, value] : params) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, name);
    out += ':';
    append_json_string(out, value);
  }
  out += '}';
}

/// Appends `value` with `append`, or null when it is empty.
template <class T, class Append>
void append_json_or_null(std::string& out, const std::optional<T>& value, Append append) {
  if (value) {
    append(out, *value);
  } else {
    out += "null";
  }
}

inline void append_json_time(std::string& out, const std::optional<wall_time>& t) {
  append_json_or_null(out, t, [](std::string& o, wall_time w) {
    o += '"';
    o += format_utc_ms(w);
    o += '"';
  });
}

/// Appends `to_json(handle)`'s text (compact, members in declaration order).
inline void append_json(std::string& out, const job_handle& handle) {
  out += "{\"id\":";
  append_json_string(out, handle.id);
  out += ",\"params\":";
  append_json_params(out, handle.params);
  out += ",\"progress\":{\"attempts\":";
  append_json_number(out, handle.progress.attempts);
  out += ",\"consecutive_failures\":";
  append_json_number(out, handle.progress.consecutive_failures);
  out += "},\"remaining_ns\":";
  append_json_or_null(out, handle.remaining,
                      [](std::string& o, std::chrono::nanoseconds d) { append_json_number(o, d.count()); });
  out += '}';
}

/// Appends `to_json(job)`'s text (compact, members in declaration order),
/// written without building a JSON tree.
inline void append_json(std::string& out, const batch_job& job) {
  out += "{\"id\":";
  append_json_number(out, job.id);
  out += ",\"entry\":";
  append_json_number(out, job.entry);
  out += ",\"parent\":";
  append_json_or_null(out, job.parent, [](std::string& o, std::size_t id) { append_json_number(o, id); });
  out += ",\"attempt\":";
  append_json_number(out, job.attempt);
  out += ",\"params\":";
  append_json_params(out, job.params);
  out += ",\"override_reason\":";
  append_json_string(out, job.override_reason);
  out += ",\"key\":";
  append_json_string(out, job.key);
  out += ",\"state\":\"";
  out += to_string(job.state);
  out += "\",\"skipped\":";
  out += job.skipped ? "true" : "false";
  out += ",\"skip_reason\":";
  append_json_string(out, job.skip_reason);
  out += ",\"handle\":";
  append_json_or_null(out, job.handle, [](std::string& o, const job_handle& h) { append_json(o, h); });
  out += ",\"error\":";
  append_json_string(out, job.error);
  out += ",\"error_code\":";
  append_json_string(out, job.error_code);
  out += ",\"result\":";
  append_json_string(out, job.result);
  out += ",\"created\":";
  append_json_time(out, job.created);
  out += ",\"submitted\":";
  append_json_time(out, job.submitted);
  out += ",\"ended\":";
  append_json_time(out, job.ended);
  out += '}';
}

/// What is wrong with a well-typed handle: an empty id or a negative remaining budget.
inline std::optional<record_problem> handle_problem(const job_handle& handle) {
  if (handle.id.empty()) return record_problem{"id", "a non-empty string", "\"\""};
  if (handle.remaining && handle.remaining->count() < 0)
    return record_problem{"remaining_ns", "a non-negative integer (nanoseconds) or null",
                          std::to_string(handle.remaining->count())};
  return std::nullopt;
}

/// What is wrong with one record on its own (see `batch_job_from_json` for the rules).
inline std::optional<record_problem> job_problem(const batch_job& job) {
  if (job.id == 0) return record_problem{"id", "an integer >= 1", "0"};
  if (job.parent && (*job.parent == 0 || *job.parent >= job.id))
    return record_problem{"parent", "the id of an earlier job (1 to " + std::to_string(job.id - 1) + ") or null",
                          std::to_string(*job.parent)};
  if (!job.parent && job.attempt != 1)
    return record_problem{"attempt", "1 (a job without a parent is its entry's first attempt)",
                          std::to_string(job.attempt)};
  if (job.parent && job.attempt < 2)
    return record_problem{"attempt", "an integer >= 2 (a job with a parent is a resubmission)",
                          std::to_string(job.attempt)};
  if (!job.handle && job.state == batch_job_state::running)
    return record_problem{"handle", "a job handle (the job is running)", "null"};
  if (!job.handle && job.submitted)
    return record_problem{"handle", "a job handle (the job has a submitted time)", "null"};
  if (job.ended && !is_terminal(job.state))
    return record_problem{"ended",
                          "null (the job is " + std::string(to_string(job.state)) + ", not in a terminal state)",
                          '"' + format_utc_ms(*job.ended) + '"'};
  if (job.handle) {
    if (auto problem = handle_problem(*job.handle)) {
      problem->field.insert(0, "handle/");
      return problem;
    }
  }
  return std::nullopt;
}

/// `job_handle_from_json` with `prefix` before every message.
inline job_handle read_job_handle(const nlohmann::json& value, std::string_view prefix, std::string_view where) {
  const json_fields fields(value, prefix, where, "a job handle (a JSON object)");
  job_handle handle;
  handle.id = fields.string("id");
  handle.params = fields.params("params");
  const std::string progress_where = std::string(where) + "/progress";
  const json_fields progress(fields.at("progress", "a poll progress (a JSON object)"), prefix, progress_where,
                             "a poll progress (a JSON object)");
  handle.progress.attempts = progress.count("attempts", 0);
  handle.progress.consecutive_failures = progress.count("consecutive_failures", 0);
  handle.remaining = fields.optional_nanoseconds("remaining_ns");
  if (auto problem = handle_problem(handle)) fields.fail(problem->field, problem->expected, problem->got);
  return handle;
}

/// `batch_job_from_json` with `prefix` before every message.
inline batch_job read_batch_job(const nlohmann::json& value, std::string_view prefix, std::string_view where) {
  const json_fields fields(value, prefix, where, "a job record (a JSON object)");
  batch_job job;
  job.id = fields.count("id", 1);
  job.entry = fields.count("entry", 0);
  job.parent = fields.optional_count("parent", 1);
  job.attempt = fields.count("attempt", 1);
  job.params = fields.params("params");
  job.override_reason = fields.string("override_reason");
  job.key = fields.string("key");
  job.state = fields.state("state");
  job.skipped = fields.boolean("skipped");
  job.skip_reason = fields.string("skip_reason");
  if (const auto& handle = fields.at("handle", "a job handle (a JSON object) or null"); !handle.is_null())
    job.handle = read_job_handle(handle, prefix, std::string(where) + "/handle");
  job.error = fields.string("error");
  job.error_code = fields.string("error_code");
  job.result = fields.string("result");
  job.created = fields.time("created");
  job.submitted = fields.optional_time("submitted");
  job.ended = fields.optional_time("ended");
  if (auto problem = job_problem(job)) fields.fail(problem->field, problem->expected, problem->got);
  return job;
}

}  // namespace detail

/// The JSON form of a job handle:
/// `{"id": "...", "params": {"name": "value", ...},
///   "progress": {"attempts": 3, "consecutive_failures": 0}, "remaining_ns": 1500000000}`,
/// with `remaining_ns` (integer nanoseconds) null when the handle has no
/// remaining budget. Throws `nlohmann::json::type_error` when a string is
/// not valid UTF-8.
inline nlohmann::json to_json(const job_handle& handle) {
  std::string text;
  detail::append_json(text, handle);
  return nlohmann::json::parse(text);
}

/// The JSON form of a batch job record: an object with every member of
/// `batch_job` under its own name (`handle` as `to_json(job_handle)`), the
/// state by name ("running"), times as ISO-8601 UTC with milliseconds
/// ("2026-11-22T16:00:00.123Z", rounded down to the millisecond), and every
/// empty optional (`parent`, `handle`, `submitted`, `ended`) written as null:
/// every record has every member. Throws `nlohmann::json::type_error` when a
/// string is not valid UTF-8.
inline nlohmann::json to_json(const batch_job& job) {
  std::string text;
  detail::append_json(text, job);
  return nlohmann::json::parse(text);
}

/// Reads a job handle written by `to_json(job_handle)`. Every member must be
/// present with its type: `id` a non-empty string, `params` an object of
/// strings, `progress.attempts` and `progress.consecutive_failures`
/// non-negative integers, `remaining_ns` a non-negative integer or null.
/// Other members are ignored. Throws `std::system_error` with
/// `errc::invalid_checkpoint` and "<where>/<field>: expected <what>, got
/// <the value as JSON, cut after 100 bytes, or nothing>"; `where` is the
/// handle's location for that message (a JSON pointer such as "/jobs/3/handle").
inline job_handle job_handle_from_json(const nlohmann::json& value, std::string_view where) {
  return detail::read_job_handle(value, {}, where);
}

/// Reads a record written by `to_json(batch_job)`, checking every member's
/// type and value, and the record's consistency:
/// - `id` an integer >= 1, `entry` a non-negative integer, `attempt` an
///   integer >= 1, `parent` an integer between 1 and `id - 1`, or null;
/// - `attempt` 1 without a parent, at least 2 with one;
/// - `state` a state name (`parse_batch_job_state`), `skipped` a boolean,
///   `params` an object of strings, the other texts strings;
/// - `handle` null or a valid handle (`job_handle_from_json`), and present
///   when the job is running or has a `submitted` time;
/// - `created` a time, `submitted` and `ended` a time or null, `ended` null
///   unless the state is terminal; a time is exactly "YYYY-MM-DDTHH:MM:SS.mmmZ".
/// Other members are ignored. Throws `std::system_error` with
/// `errc::invalid_checkpoint` and "<where>/<field>: expected <what>, got
/// <the value as JSON, cut after 100 bytes, or nothing>" for the first
/// problem; `where` is the record's location for that message ("/jobs/3").
inline batch_job batch_job_from_json(const nlohmann::json& value, std::string_view where) {
  return detail::read_batch_job(value, {}, where);
}

/// The reconciliation in the shape of the seed's recon log entry (an entry
/// is the seed's "job configuration"):
/// `{"status": "FAILED", "total_configs": 10, "fulfilled_configs": 8,
///   "total_jobs": 12, "job_status_counts": {"COMPLETED": 8, "FAILED": 2,
///   "RUNNING": 1, "SKIPPED": 1}, "failed_job_ids": [5, 8]}`;
/// `job_status_counts` names only the states some record is in.
inline nlohmann::ordered_json to_json(const batch_summary& summary) {
  nlohmann::ordered_json counts = nlohmann::ordered_json::object();
  const auto count = [&counts](std::string_view state, std::size_t n) {
    if (n == 0) return;
    std::string name(state);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    counts[name] = n;
  };
  for (std::size_t i = 0; i < batch_job_state_count; ++i) {
    const auto state = static_cast<batch_job_state>(i);
    count(to_string(state), summary.counts[state]);
  }
  count("skipped", summary.counts.skipped);
  return {{"status", std::string(to_string(summary.status))},
          {"total_configs", summary.total_entries},
          {"fulfilled_configs", summary.fulfilled_entries},
          {"total_jobs", summary.total_jobs},
          {"job_status_counts", std::move(counts)},
          {"failed_job_ids", summary.failed_job_ids}};
}

}  // namespace jobpoll
