#pragma once
// Detail of <jobpoll/batch/batch_json.hpp>: the writers of a record's
// compact JSON text (`append_json`, without building a JSON tree), the
// consistency rules of a record (`job_problem`, `handle_problem`) and the
// readers behind `job_handle_from_json` / `batch_job_from_json`. The stores
// use them with their own message prefixes.

#include <charconv>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "jobpoll/batch/batch_job.hpp"
#include "jobpoll/batch/detail/json_fields.hpp"
#include "jobpoll/job_description.hpp"
#include "jobpoll/job_handle.hpp"

namespace jobpoll::detail {

/// A record that is well-typed but inconsistent: which field, what it
/// should be, what it is.
struct record_problem {
  std::string field;  ///< relative to the record, e.g. "handle" or "handle/id"
  std::string expected;
  std::string got;
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

}  // namespace jobpoll::detail
