#pragma once
// A batch's audit log: one NDJSON line per change of a job record, appended
// as it happens, from which the records can be rebuilt afterwards.
// POSIX (Linux) file calls.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "jobpoll/batch/batch_job.hpp"
#include "jobpoll/batch/batch_json.hpp"
#include "jobpoll/batch/detail/json_fields.hpp"
#include "jobpoll/codec/json.hpp"
#include "jobpoll/detail/posix_file.hpp"
#include "jobpoll/error.hpp"

namespace jobpoll {

namespace detail {

/// The audit line (without its newline) for `job` at `now`; see `audit_log::record`.
inline std::string audit_line(std::string_view batch, const batch_job& job, std::optional<batch_job_state> previous,
                              std::string_view note, wall_time now) {
  using line_json = nlohmann::ordered_json;  // members in the order written, "ts" first
  line_json line = line_json::object();
  line["ts"] = format_utc_ms(now);
  line["batch"] = std::string(batch);
  line["job"] = job.id;
  line["entry"] = job.entry;
  line["parent"] = job.parent ? line_json(*job.parent) : line_json(nullptr);
  line["attempt"] = job.attempt;
  line["state"] = std::string(to_string(job.state));
  line["previous"] = previous ? line_json(std::string(to_string(*previous))) : line_json(nullptr);
  line["skipped"] = job.skipped;
  if (job.skipped) line["skip_reason"] = job.skip_reason;
  if (!previous) {
    line_json params = line_json::object();
    for (const auto& [name, value] : job.params) params[name] = value;
    line["params"] = std::move(params);
    if (!job.override_reason.empty()) line["override_reason"] = job.override_reason;
  }
  if (job.handle) line["handle"] = job.handle->id;
  if (!job.error.empty()) line["error"] = job.error;
  if (!job.error_code.empty()) line["error_code"] = job.error_code;
  if (!note.empty()) line["note"] = std::string(note);
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// Cuts the file open as `fd` after its last newline: removes the start of
/// a line whose write was cut short. Throws as `posix_check`.
template <class Message>
void drop_torn_tail(int fd, const Message& message) {
  struct stat info {};
  posix_check(::fstat(fd, &info), message);
  char buffer[4096];
  off_t keep = 0;
  for (off_t end = info.st_size; end > 0;) {
    const off_t start = std::max<off_t>(0, end - static_cast<off_t>(sizeof buffer));
    const auto size = static_cast<std::size_t>(end - start);
    for (std::size_t got = 0; got < size;) {
      const auto n = ::pread(fd, buffer + got, size - got, start + static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (posix_check(n, message) == 0) return;  // it shrank meanwhile: not ours to cut
      got += static_cast<std::size_t>(n);
    }
    const auto newline = std::string_view(buffer, size).rfind('\n');
    if (newline != std::string_view::npos) {
      keep = start + static_cast<off_t>(newline) + 1;
      break;
    }
    end = start;
  }
  if (keep != info.st_size) posix_check(::ftruncate(fd, keep), message);
}

/// Rebuilds job records from audit lines, one line at a time.
class audit_replayer {
 public:
  explicit audit_replayer(std::string file) : file_(std::move(file)) {}

  void line(std::string_view text, std::size_t number) {
    const std::string prefix = file_ + ":" + std::to_string(number) + ": ";
    static constexpr std::string_view record_shape = "an audit record (a JSON object)";
    if (text.empty()) throw_invalid_field(prefix, "", record_shape, "an empty line");
    const nlohmann::json value =
        parse_json_record(text, file_, number, [](std::string_view json) { return nlohmann::json::parse(json); });
    const json_fields fields(value, prefix, "", record_shape);
    const wall_time ts = fields.time("ts");
    const std::string& batch = fields.string("batch");
    if (!batch_line_) {
      batch_ = batch;
      batch_line_ = number;
    } else if (batch != batch_) {
      fields.fail("batch", record_preview(batch_) + " (the batch of line " + std::to_string(*batch_line_) + ")",
                  record_preview(batch));
    }
    const std::size_t id = fields.count("job", 1);
    const std::size_t entry = fields.count("entry", 0);
    const std::optional<std::size_t> parent = fields.optional_count("parent", 1);
    const std::size_t attempt = fields.count("attempt", 1);
    const batch_job_state state = fields.state("state");
    const std::optional<batch_job_state> previous = fields.optional_state("previous");
    const bool skipped = fields.boolean("skipped");
    const std::string* skip_reason = skipped ? &fields.string("skip_reason") : nullptr;
    const std::string* handle = fields.optional_string("handle");
    if (handle && handle->empty()) fields.fail("handle", "a non-empty string", "\"\"");
    const std::string* error = fields.optional_string("error");
    const std::string* error_code = fields.optional_string("error_code");
    fields.optional_string("note");  // checked, not kept: the records have no note

    auto found = jobs_.find(id);
    if (!previous) {
      // A creation line for a known id starts that record afresh: a run that
      // resumed from a checkpoint older than the log (after a crash) created
      // it again, and its lines are the ones that count.
      if (found != jobs_.end()) jobs_.erase(found);
      replayed created{{}, number};
      created.job.id = id;
      created.job.entry = entry;
      created.job.parent = parent;
      created.job.attempt = attempt;
      created.job.params = fields.params("params");
      if (const auto* reason = fields.optional_string("override_reason")) created.job.override_reason = *reason;
      created.job.created = ts;
      found = jobs_.emplace(id, std::move(created)).first;
    } else {
      if (found == jobs_.end()) fields.fail("job", "the id of a job created on an earlier line", std::to_string(id));
      const replayed& known = found->second;
      const auto same = [&](const char* key, std::size_t then, std::size_t now) {
        if (then != now)
          fields.fail(key,
                      std::to_string(then) + " (job " + std::to_string(id) + "'s " + key +
                          " since its creation at line " + std::to_string(known.line) + ")",
                      std::to_string(now));
      };
      same("entry", known.job.entry, entry);
      same("attempt", known.job.attempt, attempt);
      if (known.job.parent != parent)
        fields.fail("parent",
                    (known.job.parent ? std::to_string(*known.job.parent) : std::string("null")) + " (job " +
                        std::to_string(id) + "'s parent since its creation at line " + std::to_string(known.line) + ")",
                    parent ? std::to_string(*parent) : std::string("null"));
    }

    batch_job& job = found->second.job;
    job.state = state;
    job.skipped = skipped;
    job.skip_reason = skip_reason ? *skip_reason : std::string();
    if (!handle) {
      job.handle.reset();
    } else if (!job.handle || job.handle->id != *handle) {
      job.handle = job_handle{*handle, job.params, {}, std::nullopt};
    }
    job.error = error ? *error : std::string();
    job.error_code = error_code ? *error_code : std::string();
    if (job.handle && !job.submitted) job.submitted = ts;
    if (is_terminal(state) && !job.ended) job.ended = ts;
  }

  std::vector<batch_job> jobs() && {
    std::vector<batch_job> out;
    out.reserve(jobs_.size());
    for (auto& [id, replayed] : jobs_) out.push_back(std::move(replayed.job));
    return out;
  }

 private:
  struct replayed {
    batch_job job;
    std::size_t line;  // of its creation
  };
  std::string file_;
  std::string batch_;
  std::optional<std::size_t> batch_line_;
  std::map<std::size_t, replayed> jobs_;
};

/// `replay_audit_log` of `text`, the content of the file `file` (named in messages).
inline std::vector<batch_job> replay_audit_text(std::string_view text, std::string file) {
  audit_replayer replayer(std::move(file));
  std::size_t number = 0;
  for (std::size_t start = 0;;) {
    const std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) break;  // the rest, if any, is a torn last line
    replayer.line(text.substr(start, end - start), ++number);
    start = end + 1;
  }
  return std::move(replayer).jobs();
}

}  // namespace detail

/// Appends one NDJSON line per change of a batch's job records to a file.
/// Each line is one JSON object, members in this order:
/// - "ts": when the line was written, ISO-8601 UTC with milliseconds;
/// - "batch": the batch's name; "job": the record's id; "entry";
///   "parent": its parent's id or null; "attempt";
/// - "state": the state's name; "previous": the state before the change,
///   null on the line that creates the record; "skipped": true or false;
/// - "skip_reason": only when skipped;
/// - "params" (always) and "override_reason" (when not empty): only on the
///   creation line;
/// - "handle": the handle's id, when the record has a handle;
/// - "error", "error_code", "note": each only when not empty.
/// Strings that are not valid UTF-8 are written with U+FFFD in place of the
/// bad bytes (the checkpoint, not the log, is what a resume reads).
///
/// Not thread-safe: one `record` at a time. Movable, not copyable; a
/// moved-from log may only be destroyed or assigned to.
class audit_log {
 public:
  /// Opens `path` for appending, creating it (mode 0666 less the umask).
  /// When the file ends with an unterminated line (the write of a line cut
  /// short by a crash, which `replay_audit_log` ignores), that fragment is
  /// cut off first, so that the next line does not continue it; nothing
  /// else already in the file is changed. Throws `std::system_error` with
  /// errno's code and "cannot open audit log <path>".
  explicit audit_log(std::filesystem::path path, std::string batch) : path_(std::move(path)), batch_(std::move(batch)) {
    const auto message = [this] { return "cannot open audit log " + path_.string(); };
    fd_ = detail::unique_fd(
        detail::posix_check(::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0666), message));
    detail::drop_torn_tail(fd_.get(), message);
  }

  audit_log(audit_log&&) noexcept = default;
  audit_log& operator=(audit_log&&) noexcept = default;
  audit_log(const audit_log&) = delete;
  audit_log& operator=(const audit_log&) = delete;
  ~audit_log() = default;

  /// Appends the line for `job` as it is now (see the class comment):
  /// `previous` is its state before this change, none when `job` was just
  /// created; `note` says why, when the state alone does not. The line and
  /// its newline go to the file in one write(2) (continued if partial), so
  /// another reader sees it at once; it is not fsynced. Throws
  /// `std::system_error` with errno's code and "cannot write to audit log
  /// <path>" when the write fails; if part of the line was written, the next
  /// line starts on a line of its own, and the fragment stays in the file
  /// as a line that `replay_audit_log` refuses.
  void record(const batch_job& job, std::optional<batch_job_state> previous, std::string_view note = {}) {
    std::string line = detail::audit_line(batch_, job, previous, note, std::chrono::system_clock::now());
    line += '\n';
    if (torn_) line.insert(0, 1, '\n');
    std::size_t written = 0;
    try {
      detail::write_all(fd_.get(), line, written, [this] { return "cannot write to audit log " + path_.string(); });
    } catch (...) {
      if (written > 0) torn_ = line[written - 1] != '\n';
      throw;
    }
    torn_ = false;
  }

  /// The file it writes to.
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
  std::string batch_;
  detail::unique_fd fd_;
  bool torn_ = false;  // the last write stopped inside a line
};

/// Rebuilds every job record from the audit log at `path`, ordered by id:
/// lineage (id, entry, parent, attempt), params and override reason (from
/// the creation line), then state, skipped and skip reason, handle id, error
/// and error code as the job's last line has them; `created` is the time of
/// its creation line, `submitted` of its first line with a handle, `ended`
/// of its first line in a terminal state. A rebuilt handle has the job's
/// params, no progress and no remaining budget (the log does not hold them).
///
/// A second creation line for an id starts that record afresh: a run resumed
/// after a crash from a checkpoint older than the log creates again the
/// records the checkpoint lacks, and the later lines are the ones that count.
///
/// A line is complete only with its newline: an unterminated last line is
/// the trace of a write cut short (a crash) and is ignored. Any other line
/// must be a valid record: throws `std::system_error` with
/// `errc::invalid_checkpoint` and "<path>:<line number>: ..." for an empty
/// line, a line that is not JSON ("not a JSON document: <the parser's
/// message>"), nested deeper than 512 levels ("nesting deeper than 512
/// levels at byte N", N counted in the line) or holding a number out of
/// range ("number overflow parsing '1e999' at byte N"), and a missing or ill-typed member ("/state: expected ...,
/// got ..."), a batch other than the first line's, a change of a job with
/// no creation line before it, or an
/// entry, parent or attempt other than the creation line's. Throws errno's
/// code and "cannot read audit log <path>" when the file cannot be read.
/// Never modifies the file.
inline std::vector<batch_job> replay_audit_log(const std::filesystem::path& path) {
  return detail::replay_audit_text(*detail::read_file(path, false, "cannot read audit log"), path.string());
}

}  // namespace jobpoll
