#pragma once
// A batch's checkpoint: every job record in one JSON file, replaced
// atomically (temp file, fsync, rename, fsync of the directory) so that a
// crash leaves the old checkpoint or the new one, never a torn file; and
// read back with every field and the lineage of the records checked.
// POSIX (Linux) file calls.

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "jobpoll/batch/batch_job.hpp"
#include "jobpoll/batch/batch_json.hpp"
#include "jobpoll/codec/json.hpp"
#include "jobpoll/detail/posix_file.hpp"
#include "jobpoll/error.hpp"

namespace jobpoll {

/// What a checkpoint holds: the batch's name, the fingerprint of its input
/// (`batch_fingerprint` of its entries, so a resume can refuse a
/// checkpoint of other input), how many entries the input has, and every
/// job record in id order.
struct batch_checkpoint {
  std::string batch;
  std::string fingerprint;
  std::size_t entries = 0;
  std::vector<batch_job> jobs;
};

namespace detail {

inline constexpr std::string_view checkpoint_format = "jobpoll-batch-checkpoint";
inline constexpr int checkpoint_version = 1;

/// FNV-1a, 64 bits.
class fnv1a64 {
 public:
  void bytes(std::string_view data) noexcept {
    for (const char c : data) {
      hash_ ^= static_cast<unsigned char>(c);
      hash_ *= 0x100000001b3ULL;
    }
  }
  /// `n` as 8 bytes, least significant first (the same on every machine).
  void number(std::uint64_t n) noexcept {
    char le[8];
    for (auto& b : le) {
      b = static_cast<char>(n & 0xff);
      n >>= 8;
    }
    bytes({le, sizeof le});
  }
  /// Its length, then its bytes: no two sequences of texts hash the same bytes.
  void text(std::string_view s) noexcept {
    number(s.size());
    bytes(s);
  }
  std::uint64_t value() const noexcept { return hash_; }

 private:
  std::uint64_t hash_ = 0xcbf29ce484222325ULL;
};

inline bool is_fingerprint(std::string_view text) noexcept {
  if (text.size() != 16) return false;
  for (const char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

[[noreturn]] inline void throw_invalid_checkpoint(const std::string& message) {
  throw std::system_error(errc::invalid_checkpoint, message);
}

/// The checkpoint in `text` (the content of `path`); see `load_checkpoint`.
inline batch_checkpoint parse_checkpoint(std::string_view text, const std::filesystem::path& path) {
  using event = nlohmann::json::parse_event_t;
  const std::string file = path.string();
  const std::string prefix = file + ": ";
  if (text.empty()) throw_invalid_checkpoint(file + ": not a JSON document: the file is empty");
  const auto is_format = [](const nlohmann::json& v) {
    return v.is_string() && v.get_ref<const std::string&>() == checkpoint_format;
  };
  const auto is_version = [](const nlohmann::json& v) {
    return v.is_number_integer() && v.get<std::int64_t>() == checkpoint_version;
  };

  // Once the format and the version are known good (`save_checkpoint`
  // writes them first), each job record is read as soon as the parser has
  // it and dropped from the tree: a large checkpoint is never held twice.
  std::vector<batch_job> streamed_jobs;
  bool streamed = false;
  bool format_ok = false;
  bool version_ok = false;
  bool in_jobs = false;
  std::string member;  // the top-level member being parsed
  const auto read_early = [&](int depth, event e, nlohmann::json& parsed) {
    if (depth == 1) {
      if (e == event::key) {
        member = parsed.get<std::string>();
      } else if (e == event::value) {
        if (member == "format") format_ok = is_format(parsed);
        if (member == "version") version_ok = is_version(parsed);
      } else if (e == event::array_start) {
        in_jobs = member == "jobs" && format_ok && version_ok;
        streamed = streamed || in_jobs;
      } else if (e == event::array_end) {
        in_jobs = false;
      }
      return true;
    }
    if (depth == 2 && in_jobs && (e == event::value || e == event::object_end || e == event::array_end)) {
      streamed_jobs.push_back(read_batch_job(parsed, prefix, "/jobs/" + std::to_string(streamed_jobs.size())));
      return false;
    }
    return true;
  };
  const nlohmann::json document = parse_json_record(
      text, file, std::nullopt, [&](std::string_view json) { return nlohmann::json::parse(json, read_early); });

  const std::string foreign = file + " is not a jobpoll batch checkpoint (";
  if (!document.is_object())
    throw_invalid_checkpoint(foreign + "expected a JSON object with \"format\": \"" + std::string(checkpoint_format) +
                             "\", got " + record_preview(document) + ")");
  const auto format = document.find("format");
  if (format == document.end() || !is_format(*format))
    throw_invalid_checkpoint(
        foreign + "format: expected \"" + std::string(checkpoint_format) + "\", got " +
        (format == document.end() ? std::string("no \"format\" member") : record_preview(*format)) + ")");

  const json_fields fields(document, prefix, "", "a JSON object");
  static const std::string version_shape =
      std::to_string(checkpoint_version) + " (the checkpoint version this jobpoll reads)";
  if (const auto& version = fields.at("version", version_shape); !is_version(version))
    fields.fail("version", version_shape, record_preview(version));

  batch_checkpoint checkpoint;
  checkpoint.batch = fields.string("batch");
  checkpoint.fingerprint = fields.string("fingerprint");
  if (!is_fingerprint(checkpoint.fingerprint))
    fields.fail("fingerprint", "16 lowercase hex digits", record_preview(checkpoint.fingerprint));
  checkpoint.entries = fields.count("entries", 0);
  const auto& jobs = fields.at("jobs", "an array of job records");
  if (!jobs.is_array()) fields.fail("jobs", "an array of job records", record_preview(jobs));
  if (streamed) {
    checkpoint.jobs = std::move(streamed_jobs);
  } else {
    checkpoint.jobs.reserve(jobs.size());
    for (std::size_t i = 0; i < jobs.size(); ++i)
      checkpoint.jobs.push_back(read_batch_job(jobs[i], prefix, "/jobs/" + std::to_string(i)));
  }
  if (auto problem = lineage_problem(checkpoint.jobs, checkpoint.entries))
    throw_invalid_field(prefix, "/jobs/" + std::to_string(problem->first) + "/" + problem->second.field,
                        problem->second.expected, problem->second.got);
  return checkpoint;
}

}  // namespace detail

/// The fingerprint of a batch's input: 16 lowercase hex digits, the 64-bit
/// FNV-1a hash of the number of entries, then of each entry in order its
/// parameters (their count, then each name and value, each as its length
/// and its bytes, in name order), its skip flag (0 or 1) and its skip
/// reason; every integer as 8 bytes, least significant first. Two
/// different entry lists differ (short of a hash collision: this guards
/// against a resume with changed input, not against forgery); the same
/// list gives the same fingerprint in every run and on every machine.
inline std::string batch_fingerprint(std::span<const batch_entry> entries) {
  detail::fnv1a64 hash;
  hash.number(entries.size());
  for (const batch_entry& entry : entries) {
    hash.number(entry.params.size());
    for (const auto& [name, value] : entry.params) {
      hash.text(name);
      hash.text(value);
    }
    hash.number(entry.skip ? 1 : 0);
    hash.text(entry.skip_reason);
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(16, '0');
  std::uint64_t value = hash.value();
  for (std::size_t i = 16; i-- > 0; value >>= 4) out[i] = hex[value & 0xf];
  return out;
}

/// Writes the checkpoint of batch `batch` (its input's `fingerprint`, its
/// number of `entries`, its `jobs` in id order) to `path`, replacing any
/// file there atomically: the
/// JSON (`{"format": "jobpoll-batch-checkpoint", "version": 1, "batch": ...,
/// "fingerprint": ..., "entries": N, "jobs": [...]}` with one `to_json`
/// record per line) goes to "<path>.tmp" in the same directory, which is
/// written in full, fsynced, closed and renamed over `path`, then the
/// directory is fsynced. A crash at any point leaves the old checkpoint or
/// the new one, and at worst a stale "<path>.tmp" (the next save overwrites it).
///
/// First checks the checkpoint as `load_checkpoint` would (each record as
/// `batch_job_from_json` does, the lineage of the records, a fingerprint of
/// 16 lowercase hex digits) so that it never writes a checkpoint it could not
/// resume from: `std::system_error` with `errc::invalid_argument` and
/// "cannot save checkpoint <path>: /jobs/<i>/<field>: expected ..., got ...",
/// or "...: /jobs/<i>: <nlohmann's message>" for a string that is not UTF-8.
/// A failing system call throws `std::system_error` with errno's code and
/// "cannot save checkpoint <path>: <step> <file>" (steps: creating,
/// writing, syncing, closing, renaming <temp> to <path>, opening directory,
/// syncing directory). Up to the rename, `path` is untouched and a temp file
/// this call created is removed; a failure on the directory comes after
/// the rename: the new checkpoint is in place but may not survive a crash.
inline void save_checkpoint(const std::filesystem::path& path, std::string_view batch, std::string_view fingerprint,
                            std::size_t entries, std::span<const batch_job> jobs) {
  const std::string what = "cannot save checkpoint " + path.string();
  const auto refuse = [&](std::string_view location, std::string_view expected, std::string_view got) {
    detail::throw_invalid_field(what + ": ", location, expected, got, errc::invalid_argument);
  };
  if (!detail::is_fingerprint(fingerprint))
    refuse("/fingerprint", "16 lowercase hex digits", detail::record_preview(fingerprint));
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (auto problem = detail::job_problem(jobs[i]))
      refuse("/jobs/" + std::to_string(i) + "/" + problem->field, problem->expected, problem->got);
  }
  if (auto problem = detail::lineage_problem(jobs, entries))
    refuse("/jobs/" + std::to_string(problem->first) + "/" + problem->second.field, problem->second.expected,
           problem->second.got);

  // Written straight to text, record by record: no JSON tree of the whole batch.
  const auto not_utf8 = [&](const std::string& where, const nlohmann::json::exception& error) {
    throw std::system_error(errc::invalid_argument, what + ": " + where + ": " + detail::json_error_reason(error));
  };
  std::string text = "{\"format\":\"" + std::string(detail::checkpoint_format) +
                     "\",\"version\":" + std::to_string(detail::checkpoint_version) + ",\"batch\":";
  try {
    detail::append_json_string(text, batch);
  } catch (const nlohmann::json::type_error& error) {
    not_utf8("/batch", error);
  }
  text += ",\"fingerprint\":\"" + std::string(fingerprint) + "\",\"entries\":" + std::to_string(entries) +
          ",\"jobs\":[";
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    text += i == 0 ? "\n" : ",\n";
    try {
      detail::append_json(text, jobs[i]);
    } catch (const nlohmann::json::type_error& error) {
      not_utf8("/jobs/" + std::to_string(i), error);
    }
  }
  text += "\n]}\n";
  detail::replace_file(path, text, what);
}

/// `save_checkpoint` of a `batch_checkpoint`.
inline void save_checkpoint(const std::filesystem::path& path, const batch_checkpoint& checkpoint) {
  save_checkpoint(path, checkpoint.batch, checkpoint.fingerprint, checkpoint.entries, checkpoint.jobs);
}

/// Reads the checkpoint at `path` and checks it whole; never modifies the
/// file. Throws `std::system_error`:
/// - errno's code and "cannot read checkpoint <path>" when it cannot be
///   opened or read (ENOENT included: see `load_checkpoint_if_present`);
/// - `errc::invalid_checkpoint` with a message that starts with the path:
///   "<path>: not a JSON document: the file is empty" or "...: <the
///   parser's message>" (a truncated or non-JSON file); "<path>:<line>:
///   nesting deeper than 512 levels at byte N" (refused before parsing) and
///   "<path>:<line>: number overflow parsing '1e999' at byte N"; "<path> is not a
///   jobpoll batch checkpoint (format: expected \"jobpoll-batch-checkpoint\",
///   got <the value or no \"format\" member>)"; "<path>: /version: expected 1
///   (...), got 2"; and "<path>: /<field>: expected ..., got ..." for a
///   bad member: `batch` a string, `fingerprint` 16 lowercase hex digits,
///   `entries` a non-negative integer, each of `jobs` as
///   `batch_job_from_json` reads it ("/jobs/3/state"), then the records as a
///   whole: ids 1, 2, ... in order, each `entry` below `entries`, a parent of
///   the job's own entry (and a smaller id) whose attempt is one less.
/// Whether the checkpoint belongs to the caller's batch (its name and
/// fingerprint) is for the caller to check.
inline batch_checkpoint load_checkpoint(const std::filesystem::path& path) {
  return detail::parse_checkpoint(*detail::read_file(path, false, "cannot read checkpoint"), path);
}

/// None when nothing exists at `path` (ENOENT: a first run); otherwise
/// exactly `load_checkpoint(path)`.
inline std::optional<batch_checkpoint> load_checkpoint_if_present(const std::filesystem::path& path) {
  auto text = detail::read_file(path, true, "cannot read checkpoint");
  if (!text) return std::nullopt;
  return detail::parse_checkpoint(*text, path);
}

}  // namespace jobpoll
