#pragma once
// What every batch store does with a stored record: times as integer
// milliseconds, the host a runner names itself by, and the stored JSON
// columns (params, handle) read back with the record parser's limits, a
// corrupt one named by store, batch, job and column. Shared by the SQLite
// and PostgreSQL stores; no database API here.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "jobpoll/batch/batch_json.hpp"
#include "jobpoll/batch/detail/batch_json.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/job_handle.hpp"
#include "jobpoll/job_description.hpp"

namespace jobpoll::detail {

inline std::int64_t to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
inline std::chrono::system_clock::time_point from_ms(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::milliseconds(ms)));
}

inline std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown-host";
  return name;
}

/// Reads a stored JSON column of job `job` named `column` with the record
/// parser's limits (depth, numbers); `what` names the store and batch.
/// Throws `errc::store_error` "<what> job <id>: <column>: <why>".
inline nlohmann::json read_stored_json(std::string_view text, const std::string& what, std::size_t job,
                                       std::string_view column) {
  const std::string where = what + " job " + std::to_string(job);
  try {
    return parse_json_record(text, where, std::nullopt, [](std::string_view t) { return nlohmann::json::parse(t); });
  } catch (const std::system_error& e) {
    // parse_json_record says "<where>: <why>" or "<where>:<line>: <why>", then
    // ": invalid batch record": a column has no lines, and it is named instead.
    std::string_view why = e.what();
    why.remove_prefix(std::min(why.size(), where.size()));
    why.remove_prefix(std::min(why.size(), why.find(": ") + 2));
    why = why.substr(0, why.rfind(": invalid batch record"));
    throw std::system_error(errc::store_error, where + ": " + std::string(column) + ": " + std::string(why));
  }
}

/// The params column of job `job`: a JSON object of strings.
inline job_params read_stored_params(std::string_view text, const std::string& what, std::size_t job) {
  const nlohmann::json value = read_stored_json(text, what, job, "params");
  const auto bad = [&](const std::string& why) {
    throw std::system_error(errc::store_error, what + " job " + std::to_string(job) + ": " + why);
  };
  if (!value.is_object()) bad("params: expected a JSON object of strings, got " + record_preview(value));
  job_params params;
  for (const auto& [name, v] : value.items()) {
    if (!v.is_string()) bad("params/" + name + ": expected a string, got " + record_preview(v));
    params.emplace(name, v.get<std::string>());
  }
  return params;
}

/// The handle column of job `job`, as `to_json(job_handle)` wrote it.
inline job_handle read_stored_handle(std::string_view text, const std::string& what, std::size_t job) {
  const nlohmann::json value = read_stored_json(text, what, job, "handle");
  try {
    return read_job_handle(value, what + " job " + std::to_string(job) + ": ", "handle");
  } catch (const std::system_error& e) {
    const std::string message = e.what();
    throw std::system_error(errc::store_error, message.substr(0, message.rfind(": invalid batch record")));
  }
}

}  // namespace jobpoll::detail
