#pragma once
// The embedded batch store: one SQLite file (WAL), one row per job record,
// a history row per change, a versioned schema. Link `jobpoll::sqlite`.
//
// Schema (version 1; `PRAGMA user_version` is the version, `PRAGMA
// application_id` 0x6a6f6270 "jobp" marks the file as a jobpoll store):
//
//   batches(batch_id INTEGER PRIMARY KEY, name TEXT UNIQUE, uid TEXT,
//           fingerprint TEXT, entries INTEGER, created INTEGER,
//           owner_pid INTEGER, owner_host TEXT, owner_since INTEGER, owner_start INTEGER)
//   jobs(batch_id, id, entry, parent, attempt, params TEXT (a JSON object),
//        override_reason, job_key TEXT UNIQUE, state TEXT, skipped, skip_reason,
//        handle TEXT (to_json of the job_handle) , error, error_code, result,
//        created, submitted, ended; PRIMARY KEY(batch_id, id)); a partial index
//        on (batch_id, state, id) of the records a run reads (pending,
//        submitting, running, not skipped): a change touches few pages
//   history: no index but its sequence: it is read whole, in order
//   history(seq INTEGER PRIMARY KEY, batch_id, job, at, state, previous,
//           skipped, handle TEXT (its id), error, note)
//
// Times are integer milliseconds since 1970-01-01 UTC; states are their
// `to_string` names. A newer schema is refused; an older one is migrated in
// place, one version per transaction, when the store is opened.

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "jobpoll/batch/audit_log.hpp"
#include "jobpoll/batch/batch_fingerprint.hpp"
#include "jobpoll/batch/batch_job.hpp"
#include "jobpoll/batch/batch_json.hpp"
#include "jobpoll/batch/batch_store.hpp"
#include "jobpoll/batch/detail/batch_json.hpp"
#include "jobpoll/batch/reconcile.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/job_description.hpp"
#include "jobpoll/store/detail/sqlite.hpp"
#include "jobpoll/store/detail/stored_record.hpp"

namespace jobpoll {

/// What a commit survives.
enum class sqlite_durability {
  /// `synchronous = NORMAL`: a commit survives the process's crash (SIGKILL,
  /// an OOM kill) at once; a power cut or an OS crash may lose the last
  /// commits, never the file's consistency. No fsync per change.
  process_crash,
  /// `synchronous = FULL`: every commit is fsynced before it returns, so it
  /// survives a power cut; each change then costs a disk flush.
  power_loss,
};

/// How a `sqlite_store` opens its file.
struct sqlite_store_options {
  sqlite_durability durability = sqlite_durability::process_crash;
  /// How long a write waits for another connection's transaction (a
  /// reader of `status`, another runner's claim) before failing.
  std::chrono::milliseconds busy_timeout{5000};
  /// The SQLite VFS to open the file through ("" for the default): tests
  /// inject I/O errors with one.
  std::string vfs{};
  /// Whether a missing file is created; false: a missing file is an error
  /// (a reader such as `batch_run status` must not leave an empty store behind).
  bool create_if_missing = true;
};

namespace detail {

/// This process's start time in clock ticks since boot (/proc/<pid>/stat
/// field 22), 0 when unknown: with the pid it names a process even after
/// its pid is reused.
inline std::int64_t process_start(std::int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return 0;
  const auto close = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return 0;
  std::size_t field = 3, at = close + 1;  // `at`: the space before field `field`
  while (field < 22 && at < stat.size()) {
    at = stat.find(' ', at + 1);
    if (at == std::string::npos) return 0;
    ++field;
  }
  try {
    return std::stoll(stat.substr(at + 1));
  } catch (const std::exception&) {
    return 0;
  }
}

/// Whether the process `pid` that started at `start` (0: unknown) is alive on this host.
inline bool process_alive(std::int64_t pid, std::int64_t start) {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
  return start == 0 || process_start(pid) == 0 || process_start(pid) == start;
}

// Version N+1 of the schema is migrations[N] applied to version N.
inline constexpr std::array<std::string_view, 1> sqlite_migrations = {
    R"sql(
CREATE TABLE batches (
  batch_id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  uid TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  entries INTEGER NOT NULL CHECK (entries >= 0),
  created INTEGER NOT NULL,
  owner_pid INTEGER,
  owner_host TEXT,
  owner_since INTEGER,
  owner_start INTEGER
);
CREATE TABLE jobs (
  batch_id INTEGER NOT NULL REFERENCES batches(batch_id),
  id INTEGER NOT NULL CHECK (id >= 1),
  entry INTEGER NOT NULL CHECK (entry >= 0),
  parent INTEGER,
  attempt INTEGER NOT NULL CHECK (attempt >= 1),
  params TEXT NOT NULL,
  override_reason TEXT NOT NULL DEFAULT '',
  job_key TEXT NOT NULL UNIQUE,
  state TEXT NOT NULL CHECK (state IN ('pending','submitting','running','completed','failed','cancelled','unknown')),
  skipped INTEGER NOT NULL DEFAULT 0 CHECK (skipped IN (0, 1)),
  skip_reason TEXT NOT NULL DEFAULT '',
  handle TEXT,
  error TEXT NOT NULL DEFAULT '',
  error_code TEXT NOT NULL DEFAULT '',
  result TEXT NOT NULL DEFAULT '',
  created INTEGER NOT NULL,
  submitted INTEGER,
  ended INTEGER,
  PRIMARY KEY (batch_id, id)
) WITHOUT ROWID;
CREATE INDEX jobs_to_run ON jobs (batch_id, state, id) WHERE state IN ('pending', 'submitting', 'running') AND skipped = 0;
CREATE TABLE history (
  seq INTEGER PRIMARY KEY,
  batch_id INTEGER NOT NULL,
  job INTEGER NOT NULL,
  at INTEGER NOT NULL,
  state TEXT NOT NULL,
  previous TEXT,
  skipped INTEGER NOT NULL,
  handle TEXT,
  error TEXT,
  note TEXT
);
)sql",
};

}  // namespace detail

/// A `batch_store` in one SQLite file (or `":memory:"`, private to the
/// object: for tests). Many batches may share a file, each under its name;
/// an object serves the batch it was opened with.
///
/// Every change is one small transaction (the record's row and its history
/// row); with `sqlite_durability::process_crash` a commit is a write to the
/// WAL without fsync (25–45 µs of CPU in bench/batch.cpp), with
/// `power_loss` one fsync more. A
/// change that throws (`errc::store_error`: disk full, an I/O error) was
/// not made and the file stays consistent.
///
/// Not thread-safe: use it from one thread (the runner's). Other processes
/// may read the file at any time (`batch_run status`).
class sqlite_store {
 public:
  /// The schema version this jobpoll writes and reads.
  static constexpr int schema_version = static_cast<int>(detail::sqlite_migrations.size());
  /// `PRAGMA application_id` of a jobpoll store ("jobp").
  static constexpr std::int32_t application_id = 0x6a6f6270;

  /// Opens (creating) the store at `path` for the batch named `batch`, and
  /// migrates an older schema. Throws `errc::store_error` naming the file:
  /// not a database ("file is not a database"), another program's database
  /// (its application_id and tables), a newer schema, or the OS's error.
  sqlite_store(std::filesystem::path path, std::string batch, sqlite_store_options options = {})
      : path_(std::move(path)),
        batch_name_(std::move(batch)),
        db_(path_.string(), options.vfs, options.create_if_missing, "batch store " + path_.string()) {
    const bool memory = path_ == ":memory:" || path_.empty();
    db_.exec("PRAGMA busy_timeout = " + std::to_string(options.busy_timeout.count()), "setting the busy timeout");
    migrate();
    if (!memory) db_.exec("PRAGMA journal_mode = WAL", "switching to WAL");
    db_.exec(options.durability == sqlite_durability::power_loss ? "PRAGMA synchronous = FULL"
                                                                 : "PRAGMA synchronous = NORMAL",
             "setting synchronous");
    prepare();
    load_info();
  }

  sqlite_store(const sqlite_store&) = delete;
  sqlite_store& operator=(const sqlite_store&) = delete;
  ~sqlite_store() { release(); }

  const std::filesystem::path& path() const noexcept { return path_; }
  /// Whether the batch exists (was created, in this run or an earlier one).
  bool exists() const noexcept { return info_.has_value(); }

  /// See `batch_store`. Creating a batch of N entries is one transaction.
  /// Throws `errc::batch_mismatch` when the batch exists with other
  /// entries, `errc::invalid_argument` for a parameter that is not UTF-8.
  const batch_info& create(std::size_t entries, const batch_entry_source& source) {
    batch_fingerprinter fingerprint(entries);
    const auto same = [&]() -> const batch_info& {
      for (std::size_t e = 0; e < entries; ++e) fingerprint.add(source(e));
      check_same(entries, fingerprint.value());
      return *info_;
    };
    if (info_) return same();
    detail::sqlite_transaction tx(db_, true);
    load_info();  // another process may have created it since this store was opened
    if (info_) {
      tx.commit();
      return same();
    }
    batch_info info;
    info.name = batch_name_;
    info.uid = new_job_key().substr(0, 16);  // the key maker's random source, 64 bits
    info.entries = entries;
    info.created = std::chrono::system_clock::now();
    db_.prepare("INSERT INTO batches(name, uid, fingerprint, entries, created) VALUES (?, ?, '', ?, ?)")
        .bind(1, info.name)
        .bind(2, info.uid)
        .bind(3, static_cast<std::int64_t>(entries))
        .bind(4, detail::to_ms(info.created))
        .run();
    batch_id_ = sqlite3_last_insert_rowid(db_.get());
    info_ = info;
    next_id_ = 1;
    for (std::size_t e = 0; e < entries; ++e) {
      batch_entry entry = source(e);
      fingerprint.add(entry);
      batch_job job;
      job.entry = e;
      job.params = std::move(entry.params);
      job.skipped = entry.skip;
      job.skip_reason = std::move(entry.skip_reason);
      job.created = info.created;
      insert_row(job);
    }
    info_->fingerprint = fingerprint.value();
    db_.prepare("UPDATE batches SET fingerprint = ? WHERE batch_id = ?").bind(1, info_->fingerprint).bind(2, batch_id_).run();
    try {
      tx.commit();
    } catch (...) {
      info_.reset();
      throw;
    }
    return *info_;
  }
  /// `create` of a list of entries.
  const batch_info& create(std::span<const batch_entry> entries) {
    return create(entries.size(), [&](std::size_t i) { return entries[i]; });
  }

  /// See `batch_store`.
  const batch_info& info() const {
    if (!info_) throw std::system_error(errc::store_error, db_.origin() + " has no batch \"" + batch_name_ + "\"");
    return *info_;
  }

  /// The batch's owner, if any.
  std::optional<batch_owner> owner() const {
    auto& s = owner_stmt_;
    const auto scope = s.scope();
    s.bind(1, id());
    std::optional<batch_owner> out;
    if (s.step() && !s.is_null(0)) out = batch_owner{s.integer(0), s.text(1), detail::from_ms(s.integer(2))};
    return out;
  }

  /// See `batch_store`: refuses with `errc::batch_owned` ("<store>: batch
  /// \"name\" is owned by pid P on host H since T ...") while another live
  /// process owns the batch; takes over an owner on this host whose process
  /// is gone (or whose pid now names another process). An owner on another
  /// host cannot be checked and is refused: `release_owner` clears it.
  void claim() {
    detail::sqlite_transaction tx(db_, true);  // two claims at once are serialised here
    batch_owner current;
    std::int64_t start = 0;
    bool has_owner = false;
    {
      auto& s = owner_stmt_;
      const auto scope = s.scope();
      s.bind(1, id());
      has_owner = s.step() && !s.is_null(0);
      if (has_owner) {
        current = batch_owner{s.integer(0), s.text(1), detail::from_ms(s.integer(2))};
        start = s.integer(3);
      }
    }
    const std::int64_t self = ::getpid();
    const std::string host = detail::host_name();
    const std::int64_t self_start = detail::process_start(self);
    if (has_owner && !(current.pid == self && current.host == host && start == self_start)) {
      if (current.host != host || detail::process_alive(current.pid, start))
        throw std::system_error(
            errc::batch_owned,
            db_.origin() + ": batch \"" + batch_name_ + "\" is owned by pid " + std::to_string(current.pid) +
                " on host " + current.host + " since " + detail::format_utc_ms(current.since) +
                (current.host == host ? " (that process is running): stop it first"
                                      : ": stop that runner first; if it is dead, clear its ownership "
                                        "(batch_run release) and run again"));
      taken_over_ = current;
    }
    db_.prepare("UPDATE batches SET owner_pid = ?, owner_host = ?, owner_since = ?, owner_start = ? WHERE batch_id = ?")
        .bind(1, self)
        .bind(2, host)
        .bind(3, detail::to_ms(std::chrono::system_clock::now()))
        .bind(4, self_start)
        .bind(5, id())
        .run();
    tx.commit();
    owned_ = true;
  }

  /// The dead owner the last `claim` took over, if it did.
  const std::optional<batch_owner>& taken_over() const noexcept { return taken_over_; }

  /// See `batch_store`.
  void release() noexcept {
    if (!owned_) return;
    owned_ = false;
    try {
      db_.prepare("UPDATE batches SET owner_pid = NULL, owner_host = NULL, owner_since = NULL, owner_start = NULL "
                  "WHERE batch_id = ? AND owner_pid = ?")
          .bind(1, id())
          .bind(2, static_cast<std::int64_t>(::getpid()))
          .run();
    } catch (const std::exception&) {
      // The next claim sees a dead owner on this host and takes over.
    }
  }

  /// Clears any owner, live or not: for an owner on another host known to
  /// be dead. Returns the owner it cleared.
  std::optional<batch_owner> release_owner() {
    std::optional<batch_owner> was = owner();
    db_.prepare("UPDATE batches SET owner_pid = NULL, owner_host = NULL, owner_since = NULL, owner_start = NULL "
                "WHERE batch_id = ?")
        .bind(1, id())
        .run();
    return was;
  }

  /// See `batch_store`.
  batch_counts counts() const {
    batch_counts c;
    auto s = db_.prepare("SELECT state, skipped, COUNT(*) FROM jobs WHERE batch_id = ? GROUP BY state, skipped");
    s.bind(1, id());
    while (s.step()) {
      batch_job probe;
      probe.state = parse_state(s.text(0), "state count");
      probe.skipped = s.integer(1) != 0;
      for (std::int64_t n = s.integer(2); n > 0; --n) c.add(probe);
    }
    return c;
  }

  /// See `batch_store`: gives `job` the next id and the key "<uid>-<id>".
  void insert(batch_job& job) {
    const std::size_t next = next_id_;
    detail::sqlite_transaction tx(db_);
    insert_row(job);
    try {
      tx.commit();
    } catch (...) {
      next_id_ = next;
      throw;
    }
  }

  /// See `batch_store`.
  void update(const batch_job& job, std::optional<batch_job_state> previous, std::string_view note) {
    std::string handle;
    if (job.handle) handle = handle_json(*job.handle, job.id);
    detail::sqlite_transaction tx(db_);
    auto& u = update_stmt_;
    const auto scope = u.scope();
    u.bind(1, to_string(job.state))
        .bind(2, std::int64_t{job.skipped})
        .bind(3, job.skip_reason)
        .bind(4, job.handle ? std::optional<std::string_view>(handle) : std::nullopt)
        .bind(5, job.error)
        .bind(6, job.error_code)
        .bind(7, job.result)
        .bind(8, job.submitted ? std::optional<std::int64_t>(detail::to_ms(*job.submitted)) : std::nullopt)
        .bind(9, job.ended ? std::optional<std::int64_t>(detail::to_ms(*job.ended)) : std::nullopt)
        .bind(10, id())
        .bind(11, static_cast<std::int64_t>(job.id));
    u.run();
    if (sqlite3_changes(db_.get()) != 1)
      throw std::system_error(errc::store_error, db_.origin() + ": batch \"" + batch_name_ + "\" has no job " +
                                                     std::to_string(job.id) + " to update");
    add_history(job, previous, note);
    tx.commit();
  }

  /// See `batch_store`.
  std::optional<batch_job> job(std::size_t id_) const {
    auto& s = job_stmt_;
    const auto scope = s.scope();
    s.bind(1, id()).bind(2, static_cast<std::int64_t>(id_));
    std::optional<batch_job> out;
    if (s.step()) out = read_row(s);
    return out;
  }

  /// See `batch_store`.
  std::vector<batch_job> jobs_in(batch_job_state state, std::size_t after, std::size_t limit) const {
    const bool to_run =
        state == batch_job_state::pending || state == batch_job_state::submitting || state == batch_job_state::running;
    auto& s = to_run ? to_run_stmt_ : state_stmt_;
    const auto scope = s.scope();
    s.bind(1, id()).bind(2, to_string(state)).bind(3, static_cast<std::int64_t>(after)).bind(4, static_cast<std::int64_t>(limit));
    std::vector<batch_job> out;
    while (s.step()) out.push_back(read_row(s));
    return out;
  }

  /// Calls `f` with every record of the batch, in id order.
  void for_each_job(const std::function<void(const batch_job&)>& f) const {
    auto s = db_.prepare(std::string(select_columns) + " WHERE batch_id = ? ORDER BY id");
    s.bind(1, id());
    while (s.step()) f(read_row(s));
  }

  /// See `batch_store`: the rules of `reconcile`, counted by SQLite.
  batch_summary summary() const {
    batch_summary s;
    s.total_entries = info().entries;
    s.counts = counts();
    s.total_jobs = s.counts.total();
    auto failed = db_.prepare("SELECT id FROM jobs WHERE batch_id = ? AND state = 'failed' AND skipped = 0 ORDER BY id");
    failed.bind(1, id());
    while (failed.step()) s.failed_job_ids.push_back(static_cast<std::size_t>(failed.integer(0)));
    auto fulfilled = db_.prepare(
        "SELECT COUNT(*) FROM (SELECT MAX(state = 'completed') AS done, MAX(skipped = 0) AS live FROM jobs "
        "WHERE batch_id = ? AND entry < ? GROUP BY entry) WHERE done = 1 OR live = 0");
    fulfilled.bind(1, id()).bind(2, static_cast<std::int64_t>(s.total_entries));
    if (fulfilled.step()) s.fulfilled_entries = static_cast<std::size_t>(fulfilled.integer(0));
    std::size_t live = 0;  // records that are not skipped
    for (std::size_t i = 0; i < batch_job_state_count; ++i) live += s.counts.by_state[i];
    s.status = detail::batch_status_of(live, s.counts[batch_job_state::cancelled], s);
    return s;
  }

  /// Writes the batch's history as NDJSON audit lines (the format of
  /// `audit_log`, which `replay_audit_log` reads back), oldest first.
  void export_history(std::ostream& out) const {
    auto s = db_.prepare(
        "SELECT h.at, h.state, h.previous, h.skipped, h.handle, h.error, h.note, j.id, j.entry, j.parent, j.attempt, "
        "j.params, j.override_reason, j.skip_reason, j.error_code FROM history h JOIN jobs j "
        "ON j.batch_id = h.batch_id AND j.id = h.job WHERE h.batch_id = ? ORDER BY h.seq");
    s.bind(1, id());
    while (s.step()) {
      batch_job job;
      job.state = parse_state(s.text(1), "history state");
      const std::optional<std::string> previous = s.optional_text(2);
      job.skipped = s.integer(3) != 0;
      if (auto handle = s.optional_text(4)) job.handle = job_handle(*handle);
      job.error = s.optional_text(5).value_or("");
      if (!job.error.empty()) job.error_code = s.text(14);
      job.id = static_cast<std::size_t>(s.integer(7));
      job.entry = static_cast<std::size_t>(s.integer(8));
      if (!s.is_null(9)) job.parent = static_cast<std::size_t>(s.integer(9));
      job.attempt = static_cast<std::size_t>(s.integer(10));
      if (!previous) job.params = detail::read_stored_params(s.text(11), record_origin(), job.id);
      job.override_reason = s.text(12);
      job.skip_reason = s.text(13);
      out << detail::audit_line(batch_name_, job,
                                previous ? std::optional<batch_job_state>(parse_state(*previous, "history previous"))
                                         : std::nullopt,
                                s.optional_text(6).value_or(""), detail::from_ms(s.integer(0)))
          << '\n';
    }
  }

 private:
  static constexpr std::string_view select_columns =
      "SELECT id, entry, parent, attempt, params, override_reason, job_key, state, skipped, skip_reason, handle, "
      "error, error_code, result, created, submitted, ended FROM jobs";

  std::int64_t id() const {
    if (!info_) info();  // throws: the batch was never created
    return batch_id_;
  }

  void migrate() {
    const auto version_now = [&] { return db_.integer("PRAGMA user_version"); };
    if (version_now() == schema_version && db_.integer("PRAGMA application_id") == application_id) return;
    detail::sqlite_transaction tx(db_, true);  // one process migrates; the others then see the new version
    const std::int64_t app = db_.integer("PRAGMA application_id");
    std::int64_t version = version_now();
    const std::int64_t tables = db_.integer("SELECT COUNT(*) FROM sqlite_master");
    if (app != application_id && !(app == 0 && tables == 0 && version == 0))
      throw std::system_error(errc::store_error,
                              db_.origin() + " is not a jobpoll batch store (application_id " + std::to_string(app) +
                                  ", " + std::to_string(tables) +
                                  " schema objects): it was left untouched; give the batch a file of its own");
    if (version > schema_version)
      throw std::system_error(errc::store_error, db_.origin() + " has schema version " + std::to_string(version) +
                                                     ", newer than this jobpoll reads (" +
                                                     std::to_string(schema_version) + "): use a newer jobpoll");
    for (; version < schema_version; ++version) {
      db_.exec(detail::sqlite_migrations[static_cast<std::size_t>(version)],
               "migrating the schema to version " + std::to_string(version + 1));
    }
    db_.exec("PRAGMA application_id = " + std::to_string(application_id), "marking the file");
    db_.exec("PRAGMA user_version = " + std::to_string(schema_version), "recording the schema version");
    tx.commit();
  }

  void prepare() {
    owner_stmt_ = db_.prepare("SELECT owner_pid, owner_host, owner_since, owner_start FROM batches WHERE batch_id = ?");
    insert_stmt_ = db_.prepare(
        "INSERT INTO jobs(batch_id, id, entry, parent, attempt, params, override_reason, job_key, state, skipped, "
        "skip_reason, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    update_stmt_ = db_.prepare(
        "UPDATE jobs SET state = ?, skipped = ?, skip_reason = ?, handle = ?, error = ?, error_code = ?, result = ?, "
        "submitted = ?, ended = ? WHERE batch_id = ? AND id = ?");
    history_stmt_ = db_.prepare(
        "INSERT INTO history(batch_id, job, at, state, previous, skipped, handle, error, note) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    job_stmt_ = db_.prepare(std::string(select_columns) + " WHERE batch_id = ? AND id = ?");
    // The states a run reads are in the partial index; it is only used when
    // the query says so in its text (a bound parameter proves nothing).
    to_run_stmt_ = db_.prepare(std::string(select_columns) +
                               " WHERE batch_id = ? AND state = ? AND state IN ('pending', 'submitting', 'running') "
                               "AND skipped = 0 AND id > ? ORDER BY id LIMIT ?");
    state_stmt_ = db_.prepare(std::string(select_columns) +
                              " WHERE batch_id = ? AND state = ? AND skipped = 0 AND id > ? ORDER BY id LIMIT ?");
  }

  void load_info() {
    auto s = db_.prepare("SELECT batch_id, uid, fingerprint, entries, created FROM batches WHERE name = ?");
    s.bind(1, batch_name_);
    if (!s.step()) return;
    batch_id_ = s.integer(0);
    info_ = batch_info{batch_name_, s.text(1), s.text(2), static_cast<std::size_t>(s.integer(3)),
                       detail::from_ms(s.integer(4))};
    next_id_ = static_cast<std::size_t>(
                   db_.integer("SELECT COALESCE(MAX(id), 0) FROM jobs WHERE batch_id = " + std::to_string(batch_id_))) +
               1;
  }

  void check_same(std::size_t entries, const std::string& fingerprint) const {
    if (info_->entries == entries && info_->fingerprint == fingerprint) return;
    throw std::system_error(errc::batch_mismatch,
                            db_.origin() + " holds batch \"" + batch_name_ + "\" with " +
                                std::to_string(info_->entries) + " entries (fingerprint " + info_->fingerprint +
                                "), not these " + std::to_string(entries) + " entries (fingerprint " + fingerprint +
                                "); it was left untouched: give this batch another name or another store");
  }

  // Inside a transaction: the row and its creation history line.
  void insert_row(batch_job& job) {
    job.id = next_id_;
    job.key = info_->uid + "-" + std::to_string(job.id);
    std::string params;
    try {
      detail::append_json_params(params, job.params);
    } catch (const nlohmann::json::exception& e) {
      throw std::system_error(errc::invalid_argument, db_.origin() + ": job " + std::to_string(job.id) + " (entry " +
                                                          std::to_string(job.entry) +
                                                          "): a parameter is not UTF-8: " + e.what());
    }
    auto& s = insert_stmt_;
    const auto scope = s.scope();
    s.bind(1, batch_id_)
        .bind(2, static_cast<std::int64_t>(job.id))
        .bind(3, static_cast<std::int64_t>(job.entry))
        .bind(4, job.parent ? std::optional<std::int64_t>(static_cast<std::int64_t>(*job.parent)) : std::nullopt)
        .bind(5, static_cast<std::int64_t>(job.attempt))
        .bind(6, params)
        .bind(7, job.override_reason)
        .bind(8, job.key)
        .bind(9, to_string(job.state))
        .bind(10, std::int64_t{job.skipped})
        .bind(11, job.skip_reason)
        .bind(12, detail::to_ms(job.created));
    s.run();
    add_history(job, std::nullopt, {});
    ++next_id_;
  }

  void add_history(const batch_job& job, std::optional<batch_job_state> previous, std::string_view note) {
    auto& h = history_stmt_;
    const auto scope = h.scope();
    h.bind(1, batch_id_)
        .bind(2, static_cast<std::int64_t>(job.id))
        .bind(3, detail::to_ms(std::chrono::system_clock::now()))
        .bind(4, to_string(job.state))
        .bind(5, previous ? std::optional<std::string_view>(to_string(*previous)) : std::nullopt)
        .bind(6, std::int64_t{job.skipped})
        .bind(7, job.handle ? std::optional<std::string_view>(job.handle->id) : std::nullopt)
        .bind(8, job.error.empty() ? std::nullopt : std::optional<std::string_view>(job.error))
        .bind(9, note.empty() ? std::nullopt : std::optional<std::string_view>(note));
    h.run();
  }

  std::string handle_json(const job_handle& handle, std::size_t job) const {
    std::string text;
    try {
      detail::append_json(text, handle);
    } catch (const nlohmann::json::exception& e) {
      throw std::system_error(errc::invalid_argument,
                              db_.origin() + ": job " + std::to_string(job) + ": its handle is not UTF-8: " + e.what());
    }
    return text;
  }

  batch_job_state parse_state(const std::string& text, std::string_view what) const {
    if (auto s = parse_batch_job_state(text)) return *s;
    throw std::system_error(errc::store_error, db_.origin() + ": " + std::string(what) + ": expected " +
                                                   std::string(detail::state_names) + ", got \"" +
                                                   text.substr(0, 40) + "\"");
  }

  std::string record_origin() const { return db_.origin() + ": batch \"" + batch_name_ + "\""; }

  batch_job read_row(const detail::sqlite_statement& s) const {
    batch_job job;
    job.id = static_cast<std::size_t>(s.integer(0));
    job.entry = static_cast<std::size_t>(s.integer(1));
    if (!s.is_null(2)) job.parent = static_cast<std::size_t>(s.integer(2));
    job.attempt = static_cast<std::size_t>(s.integer(3));
    job.params = detail::read_stored_params(s.text(4), record_origin(), job.id);
    job.override_reason = s.text(5);
    job.key = s.text(6);
    job.state = parse_state(s.text(7), "job " + std::to_string(job.id) + " state");
    job.skipped = s.integer(8) != 0;
    job.skip_reason = s.text(9);
    if (auto handle = s.optional_text(10)) job.handle = detail::read_stored_handle(*handle, record_origin(), job.id);
    job.error = s.text(11);
    job.error_code = s.text(12);
    job.result = s.text(13);
    job.created = detail::from_ms(s.integer(14));
    if (!s.is_null(15)) job.submitted = detail::from_ms(s.integer(15));
    if (!s.is_null(16)) job.ended = detail::from_ms(s.integer(16));
    return job;
  }

  std::filesystem::path path_;
  std::string batch_name_;
  mutable detail::sqlite_connection db_;
  std::optional<batch_info> info_;
  std::int64_t batch_id_ = 0;
  std::size_t next_id_ = 1;
  bool owned_ = false;
  std::optional<batch_owner> taken_over_;

  mutable detail::sqlite_statement owner_stmt_, insert_stmt_, update_stmt_, history_stmt_, job_stmt_, to_run_stmt_,
      state_stmt_;
};

static_assert(batch_store<sqlite_store>);

}  // namespace jobpoll
