#pragma once
// The batch store several runners share: one PostgreSQL database, reached
// through libpq, holding batches whose records runners on several machines
// take, run and hand over under leases. Link `jobpoll::postgres`.
//
// A documented bounded worker, not libpq's asynchronous API: each store
// object owns one connection and one thread (`worker_executor()`, an
// `asio::thread_pool` of one thread). Its members are plain synchronous
// calls on libpq's blocking API, serialised on a mutex, so they can be
// called from any thread (a command-line tool calls them directly); a batch
// runner sends each call to the worker and awaits the answer there, so its
// event loop never waits on a network round trip. One runner, one store
// object, one connection, one thread: the store is never the reason a
// runner's loop stalls, and a slow server holds at most one call of each
// runner. (The asynchronous API would save the thread, at the price of a
// state machine per statement.)
//
// Schema (version 1), in a PostgreSQL schema of its own (`jobpoll` unless
// `postgres_store_options::schema` says otherwise); the seed's batch/job
// lifecycle as tables a user can query:
//
//   schema_version(application = 'jobpoll batch store', version): the marker;
//        a schema without it that holds tables is another program's: refused
//   batches(batch_id, name UNIQUE, uid, fingerprint, entries, next_id, created)
//   job_configurations(batch_id, config_id, entry, params JSONB, skipped,
//        skip_reason, overridden, override_reason, created): an entry's
//        parameters (config_id = its first job's id), and each resubmission's
//        own parameters when they differ (overridden); a resubmission with
//        the same parameters shares its parent's
//   jobs(batch_id, id, entry, config_id, parent -> jobs, attempt,
//        override_reason, job_key UNIQUE, state, skipped, skip_reason,
//        handle JSONB (to_json of the job_handle), error, error_code, result,
//        created, submitted, ended, owner -> runners (the runner holding it),
//        run_rank (generated: 0 running, 1 submitting, 2 pending, not skipped;
//        NULL otherwise)); an index on (batch_id, run_rank, id) for the
//        records to run, one on owner for the held ones
//   runners(runner_id, batch_id, host, pid, started, lease_until): the
//        registered runners; a lease is live while lease_until > now() on
//        the server's clock (FUNCTION runner_is_live(runner_id))
//   history(seq, batch_id, job, at, state, previous, skipped, handle (its id),
//        error, note, runner): one row per change (the seed's tracking log)
//   reconciliations(seq, batch_id, at, runner, status, summary JSONB): the
//        seed's reconciliation log, a row per `record_reconciliation()`
//   VIEW batch_reconciliation(batch_id, name, total_entries,
//        fulfilled_entries, total_jobs, pending ... unknown, skipped,
//        failed_job_ids, status): `reconcile`'s rules in SQL, per batch
//
// Times are timestamptz (written with millisecond precision); states are
// their `to_string` names. A newer schema is refused; an older one is
// migrated when a store is opened, one version per transaction, under an
// advisory lock (two runners opening a new database at once migrate once).
//
// Sharing a batch: `claim()` registers the runner under a lease counted on
// the server's clock; `take(n)` makes it the holder of up to n runnable
// records no live runner holds (`FOR NO KEY UPDATE SKIP LOCKED`: concurrent
// takes never return the same record), with a history line naming the
// runner a record was taken over from; `update` is fenced (a record another
// live runner holds is refused with `errc::lease_lost`); a record leaving
// the runnable states is held by no one.

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <unistd.h>

#include "jobpoll/detail/asio_forward.hpp"
#if defined(JOBPOLL_USE_BOOST_ASIO)
#include <boost/asio/thread_pool.hpp>
#else
#include <asio/thread_pool.hpp>
#endif
#include <libpq-fe.h>
#include <nlohmann/json.hpp>

#include "jobpoll/batch/audit_log.hpp"
#include "jobpoll/batch/batch_fingerprint.hpp"
#include "jobpoll/batch/batch_job.hpp"
#include "jobpoll/batch/batch_json.hpp"
#include "jobpoll/batch/batch_store.hpp"
#include "jobpoll/batch/detail/batch_json.hpp"
#include "jobpoll/batch/reconcile.hpp"
#include "jobpoll/detail/invalid_argument.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/job_handle.hpp"
#include "jobpoll/job_description.hpp"
#include "jobpoll/store/detail/postgres.hpp"
#include "jobpoll/store/detail/stored_record.hpp"

namespace jobpoll {

/// How a `postgres_store` connects and shares its batch.
struct postgres_store_options {
  /// How long a runner's registration lasts without a `renew()`, on the
  /// server's clock: a runner that dies hands its records over this long
  /// after its last renewal. At least 1 ms.
  std::chrono::milliseconds lease{std::chrono::seconds(30)};
  /// How long connecting may take (libpq's connect_timeout, whole seconds, at least 2).
  std::chrono::seconds connect_timeout{10};
  /// How long one statement may run on the server (its statement_timeout; 0: no limit).
  std::chrono::milliseconds statement_timeout{std::chrono::seconds(60)};
  /// How long the network may leave a call unanswered before the connection
  /// is taken for broken (TCP_USER_TIMEOUT and keepalives on a TCP
  /// connection; 0: the system's): a call then fails instead of hanging.
  std::chrono::milliseconds io_timeout{std::chrono::seconds(30)};
  /// The PostgreSQL schema (namespace) the store's tables live in.
  std::string schema = "jobpoll";
  /// Whether a database without the store's schema gets it; false: it is an
  /// error (a reader such as `batch_run status` must leave nothing behind).
  bool create_if_missing = true;
};

/// A runner registered on a batch of a `postgres_store`.
struct postgres_runner {
  std::string id;    ///< unique across machines (random)
  std::string host;  ///< its host name
  std::int64_t pid = 0;
  std::chrono::system_clock::time_point started{};
  std::chrono::system_clock::time_point lease_until{};  ///< on the server's clock
  bool live = false;                                    ///< its lease had not run out when it was read
  std::size_t held = 0;                                 ///< records it holds
};

namespace detail {

/// "{s}" in `text` replaced by `schema` (a quoted identifier).
inline std::string with_schema(std::string_view text, const std::string& schema) {
  std::string out;
  out.reserve(text.size() + 16 * schema.size());
  for (std::size_t at = 0;;) {
    const std::size_t next = text.find("{s}", at);
    out.append(text.substr(at, next - at));
    if (next == std::string_view::npos) return out;
    out += schema;
    at = next + 3;
  }
}

// Version N+1 of the schema is postgres_migrations[N] applied to version N;
// "{s}" is the schema.
inline constexpr std::array<std::string_view, 1> postgres_migrations = {
    R"sql(
CREATE TABLE {s}.schema_version (
  application text NOT NULL,
  version integer NOT NULL
);
CREATE TABLE {s}.batches (
  batch_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL UNIQUE,
  uid text NOT NULL,
  fingerprint text NOT NULL,
  entries bigint NOT NULL CHECK (entries >= 0),
  next_id bigint NOT NULL CHECK (next_id >= 1),
  created timestamptz NOT NULL
);
CREATE TABLE {s}.runners (
  runner_id text PRIMARY KEY,
  batch_id bigint NOT NULL REFERENCES {s}.batches,
  host text NOT NULL,
  pid bigint NOT NULL,
  started timestamptz NOT NULL,
  lease_until timestamptz NOT NULL
);
CREATE INDEX runners_of_batch ON {s}.runners (batch_id);
-- Whether a runner's lease is live, read with a snapshot of its own (a
-- VOLATILE function takes a fresh one per statement under READ COMMITTED): a
-- statement that waited for a row another runner took sees that runner,
-- even one registered after the statement began.
CREATE FUNCTION {s}.runner_is_live(runner text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
  RETURN EXISTS (SELECT 1 FROM {s}.runners r WHERE r.runner_id = runner AND r.lease_until > now());
END
$fn$;
CREATE TABLE {s}.job_configurations (
  batch_id bigint NOT NULL REFERENCES {s}.batches,
  config_id bigint NOT NULL,
  entry bigint NOT NULL CHECK (entry >= 0),
  params jsonb NOT NULL,
  skipped boolean NOT NULL DEFAULT false,
  skip_reason text NOT NULL DEFAULT '',
  overridden boolean NOT NULL DEFAULT false,
  override_reason text NOT NULL DEFAULT '',
  created timestamptz NOT NULL,
  PRIMARY KEY (batch_id, config_id)
);
CREATE TABLE {s}.jobs (
  batch_id bigint NOT NULL,
  id bigint NOT NULL CHECK (id >= 1),
  entry bigint NOT NULL CHECK (entry >= 0),
  config_id bigint NOT NULL,
  parent bigint,
  attempt bigint NOT NULL CHECK (attempt >= 1),
  override_reason text NOT NULL DEFAULT '',
  job_key text NOT NULL UNIQUE,
  state text NOT NULL
    CHECK (state IN ('pending', 'submitting', 'running', 'completed', 'failed', 'cancelled', 'unknown')),
  skipped boolean NOT NULL DEFAULT false,
  skip_reason text NOT NULL DEFAULT '',
  handle jsonb,
  error text NOT NULL DEFAULT '',
  error_code text NOT NULL DEFAULT '',
  result text NOT NULL DEFAULT '',
  created timestamptz NOT NULL,
  submitted timestamptz,
  ended timestamptz,
  owner text REFERENCES {s}.runners ON DELETE SET NULL,
  run_rank smallint GENERATED ALWAYS AS (
    CASE WHEN skipped THEN NULL WHEN state = 'running' THEN 0 WHEN state = 'submitting' THEN 1
         WHEN state = 'pending' THEN 2 END) STORED,
  PRIMARY KEY (batch_id, id),
  FOREIGN KEY (batch_id, config_id) REFERENCES {s}.job_configurations,
  FOREIGN KEY (batch_id, parent) REFERENCES {s}.jobs
);
CREATE INDEX jobs_to_run ON {s}.jobs (batch_id, run_rank, id) WHERE run_rank IS NOT NULL;
CREATE INDEX jobs_held ON {s}.jobs (owner) WHERE owner IS NOT NULL;
CREATE TABLE {s}.history (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  batch_id bigint NOT NULL,
  job bigint NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  state text NOT NULL,
  previous text,
  skipped boolean NOT NULL,
  handle text,
  error text,
  note text,
  runner text
);
CREATE TABLE {s}.reconciliations (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  batch_id bigint NOT NULL REFERENCES {s}.batches,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  runner text,
  status text NOT NULL,
  summary jsonb NOT NULL
);
CREATE VIEW {s}.batch_reconciliation AS
SELECT b.batch_id, b.name, b.entries AS total_entries, f.fulfilled_entries, c.total_jobs,
       c.pending, c.submitting, c.running, c.completed, c.failed, c.cancelled, c.unknown, c.skipped,
       c.failed_job_ids,
       CASE WHEN c.live > 0 AND c.cancelled = c.live THEN 'CANCELLED'
            WHEN c.failed > 0 THEN 'FAILED'
            WHEN f.fulfilled_entries = b.entries THEN 'COMPLETED'
            ELSE 'ACTIVE' END AS status
FROM {s}.batches b
CROSS JOIN LATERAL (
  SELECT count(*) AS total_jobs,
         count(*) FILTER (WHERE NOT j.skipped) AS live,
         count(*) FILTER (WHERE NOT j.skipped AND j.state = 'pending') AS pending,
         count(*) FILTER (WHERE NOT j.skipped AND j.state = 'submitting') AS submitting,
         count(*) FILTER (WHERE NOT j.skipped AND j.state = 'running') AS running,
         count(*) FILTER (WHERE NOT j.skipped AND j.state = 'completed') AS completed,
         count(*) FILTER (WHERE NOT j.skipped AND j.state = 'failed') AS failed,
         count(*) FILTER (WHERE NOT j.skipped AND j.state = 'cancelled') AS cancelled,
         count(*) FILTER (WHERE NOT j.skipped AND j.state = 'unknown') AS unknown,
         count(*) FILTER (WHERE j.skipped) AS skipped,
         COALESCE(array_agg(j.id ORDER BY j.id) FILTER (WHERE NOT j.skipped AND j.state = 'failed'), '{}')
           AS failed_job_ids
  FROM {s}.jobs j WHERE j.batch_id = b.batch_id) c
CROSS JOIN LATERAL (
  SELECT count(*) AS fulfilled_entries
  FROM (SELECT bool_or(j.state = 'completed') AS done, bool_or(NOT j.skipped) AS live
        FROM {s}.jobs j WHERE j.batch_id = b.batch_id AND j.entry < b.entries GROUP BY j.entry) e
  WHERE e.done OR NOT e.live) f;
COMMENT ON TABLE {s}.batches IS 'jobpoll: one row per batch';
COMMENT ON TABLE {s}.job_configurations IS 'jobpoll: the parameters of each entry and of changed resubmissions';
COMMENT ON TABLE {s}.jobs IS 'jobpoll: one row per job record (a resubmission is a record naming its parent)';
COMMENT ON TABLE {s}.runners IS 'jobpoll: runners registered on a batch; live while lease_until > now()';
COMMENT ON TABLE {s}.history IS 'jobpoll: one row per change of a job record';
COMMENT ON TABLE {s}.reconciliations IS 'jobpoll: reconciliations recorded by runners (the seed''s recon log)';
COMMENT ON VIEW {s}.batch_reconciliation IS 'jobpoll: each batch reconciled as jobpoll::reconcile does';
)sql",
};

/// "postgresql://user@host:port/dbname" from a connection string, without
/// its password. Throws `errc::store_error` for a string libpq cannot read.
inline std::string postgres_location(const std::string& conninfo) {
  // A bare database name is one to libpq too (expand_dbname reads only strings with '=' or a URI prefix).
  if (conninfo.find('=') == std::string::npos && !conninfo.starts_with("postgres://") &&
      !conninfo.starts_with("postgresql://"))
    return "postgresql:///" + conninfo;
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    const std::string why = error != nullptr ? pg_one_line(error) : "out of memory";
    PQfreemem(error);
    throw std::system_error(errc::store_error, "batch store: the PostgreSQL connection string is not valid: " + why);
  }
  std::string host, port, user, database;
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string_view key = o->keyword;
    if (key == "host" || (key == "hostaddr" && host.empty())) host = o->val;
    if (key == "port") port = o->val;
    if (key == "user") user = o->val;
    if (key == "dbname") database = o->val;
  }
  PQconninfoFree(options);
  return "postgresql://" + (user.empty() ? std::string() : user + "@") + host + (port.empty() ? "" : ":" + port) + "/" +
         database;
}

}  // namespace detail

/// A `batch_store` in a PostgreSQL database, shared by several runners on
/// several machines (`shared_batch_store`), each through its own object; a
/// `remote_batch_store` whose calls a runner sends to `worker_executor()`.
/// Many batches may share a schema, each under its name; an object serves
/// the batch it was opened with.
///
/// Each change is one statement (the record's row and its history row in
/// one transaction); a change that throws was not made, except when the
/// connection broke while its commit was under way, when it may have been:
/// a runner then stops, and the next run reads the records as they are
/// stored (the write-ahead submission rule holds either way). A broken
/// connection is reconnected at the next call.
///
/// Text the server cannot hold: messages (errors, notes, reasons) are kept
/// with U+FFFD in place of bytes that are not UTF-8 or are NUL; parameters
/// and a handle that are not UTF-8 or hold a NUL, and such a result, are
/// refused with `errc::invalid_argument` naming the job.
///
/// Thread-safe: every member locks the object's mutex (for_each_job's
/// callback may call the store again). Other programs may read and query
/// the tables at any time.
class postgres_store {
 public:
  /// The schema version this jobpoll writes and reads.
  static constexpr int schema_version = static_cast<int>(detail::postgres_migrations.size());
  /// `schema_version.application` of a jobpoll store.
  static constexpr std::string_view application = "jobpoll batch store";

  /// Connects with `conninfo` (libpq's "host=... dbname=..." or a
  /// postgres:// or postgresql:// URI) for the batch named `batch`, creates
  /// or migrates the schema. Throws `std::invalid_argument` for bad options
  /// and `errc::store_error` naming the server and database (never the
  /// password): a connection string libpq cannot read, a server that cannot
  /// be reached or refuses the login (libpq's message), a schema that holds
  /// another program's tables, a newer schema, a missing store without
  /// `create_if_missing`, or the server's error.
  postgres_store(std::string conninfo, std::string batch, postgres_store_options options = {})
      : options_(checked(std::move(options))),
        batch_name_(std::move(batch)),
        schema_(detail::pg_identifier(options_.schema)),
        origin_("batch store " + detail::postgres_location(conninfo) + " (schema " + schema_ + ")"),
        db_(std::move(conninfo), connect_settings(options_), origin_) {
    migrate();
    prepare();
    load_info();
  }

  postgres_store(const postgres_store&) = delete;
  postgres_store& operator=(const postgres_store&) = delete;
  /// Waits for the call the worker runs, if any, then releases (see `release`).
  ~postgres_store() {
    pool_.stop();
    pool_.join();
    release();
  }

  /// "batch store postgresql://user@host:port/db (schema "jobpoll")": how messages name it.
  const std::string& origin() const noexcept { return origin_; }
  /// See `remote_batch_store`: one thread, where a runner runs its calls.
  asio::thread_pool::executor_type worker_executor() noexcept { return pool_.get_executor(); }

  /// Whether the batch exists (created in this run, an earlier one, or by another runner).
  bool exists() const {
    const std::lock_guard lock(mutex_);
    if (!info_) load_info();
    return info_.has_value();
  }

  /// See `batch_store`. Creating a batch of N entries is one transaction
  /// (the entries sent with COPY); two runners creating it at once both get
  /// the same batch. Throws `errc::batch_mismatch` when the batch exists
  /// with other entries, `errc::invalid_argument` for a parameter that is
  /// not UTF-8 or holds a NUL.
  const batch_info& create(std::size_t entries, const batch_entry_source& source) {
    const std::lock_guard lock(mutex_);
    batch_fingerprinter fingerprint(entries);
    const auto same = [&]() -> const batch_info& {
      for (std::size_t e = 0; e < entries; ++e) fingerprint.add(source(e));
      check_same(entries, fingerprint.value());
      return *info_;
    };
    if (info_) return same();
    detail::pg_transaction tx(db_);
    db_.exec("SET LOCAL statement_timeout = 0", "creating the batch");
    batch_info info;
    info.name = batch_name_;
    info.uid = new_job_key().substr(0, 16);  // the key maker's random source, 64 bits
    info.entries = entries;
    info.created = std::chrono::system_clock::now();
    const std::string created = detail::format_utc_ms(info.created);
    // A batch another runner is creating makes this insert wait for its
    // commit, then do nothing: the batch is then read back and compared.
    const detail::pg_result made = db_.query(
        sql("INSERT INTO {s}.batches (name, uid, fingerprint, entries, next_id, created) "
            "VALUES ($1, $2, '', $3::bigint, $3::bigint + 1, $4::timestamptz) ON CONFLICT (name) DO NOTHING "
            "RETURNING batch_id"),
        detail::pg_params().text(info.name).text(info.uid).integer(static_cast<std::int64_t>(entries)).text(created),
        "creating batch \"" + batch_name_ + "\"");
    if (made.rows() == 0) {
      tx.commit();
      load_info();
      if (!info_)
        throw std::system_error(errc::store_error,
                                origin_ + ": batch \"" + batch_name_ + "\" was created and removed by another program");
      return same();
    }
    const std::int64_t batch_id = made.integer(0, 0);
    {
      detail::pg_copy copy(db_,
                           sql("COPY {s}.job_configurations (batch_id, config_id, entry, params, skipped, "
                               "skip_reason, created) FROM STDIN"),
                           "writing the entries of batch \"" + batch_name_ + "\"");
      for (std::size_t e = 0; e < entries; ++e) {
        batch_entry entry = source(e);
        fingerprint.add(entry);
        copy.field(batch_id)
            .field(static_cast<std::int64_t>(e + 1))
            .field(static_cast<std::int64_t>(e))
            .field(params_json(entry.params, e + 1, e))
            .field(entry.skip ? "t" : "f")
            .field(detail::pg_message_text(entry.skip_reason))
            .field(created);
        copy.end_row();
      }
      copy.finish();
    }
    const detail::pg_params ids = detail::pg_params().integer(batch_id).text(info.uid);
    db_.query(
        sql("INSERT INTO {s}.jobs (batch_id, id, entry, config_id, attempt, job_key, state, skipped, "
            "skip_reason, created) SELECT batch_id, config_id, entry, config_id, 1, $2::text || '-' || config_id, "
            "'pending', skipped, skip_reason, created FROM {s}.job_configurations WHERE batch_id = $1"),
        ids, "creating the jobs of batch \"" + batch_name_ + "\"");
    db_.query(sql("INSERT INTO {s}.history (batch_id, job, state, skipped) "
                  "SELECT batch_id, id, state, skipped FROM {s}.jobs WHERE batch_id = $1 ORDER BY id"),
              detail::pg_params().integer(batch_id), "writing the history of batch \"" + batch_name_ + "\"");
    info.fingerprint = fingerprint.value();
    db_.query(sql("UPDATE {s}.batches SET fingerprint = $2 WHERE batch_id = $1"),
              detail::pg_params().integer(batch_id).text(info.fingerprint), "writing the batch's fingerprint");
    tx.commit();
    batch_id_ = batch_id;
    info_ = std::move(info);
    return *info_;
  }
  /// `create` of a list of entries.
  const batch_info& create(std::span<const batch_entry> entries) {
    return create(entries.size(), [&](std::size_t i) { return entries[i]; });
  }

  /// See `batch_store`.
  const batch_info& info() const {
    const std::lock_guard lock(mutex_);
    if (!info_) load_info();  // another runner may have created it since
    if (!info_) throw std::system_error(errc::store_error, origin_ + " has no batch \"" + batch_name_ + "\"");
    return *info_;
  }

  /// See `shared_batch_store`: registers this runner (a new random id, this
  /// host and pid) under a lease of `lease()` from now on the server's
  /// clock. Never refuses: other runners may run the batch too. A second
  /// call registers anew (the first registration is released).
  void claim() {
    const std::lock_guard lock(mutex_);
    release_locked();
    const std::string id = new_job_key().substr(0, 16);
    db_.ensure_open();
    db_.run(st_.claim,
            detail::pg_params()
                .text(id)
                .integer(batch_id())
                .text(detail::pg_message_text(detail::host_name()))
                .integer(static_cast<std::int64_t>(::getpid()))
                .integer(static_cast<std::int64_t>(options_.lease.count())),
            "registering a runner on batch \"" + batch_name_ + "\"");
    runner_id_ = id;
  }

  /// See `shared_batch_store`. Throws `errc::lease_lost` (naming when it ran
  /// out, on the server's clock) when the lease had run out, or when the
  /// registration is gone (`release_expired` by another program); then
  /// other runners may hold this runner's records.
  void renew() {
    const std::lock_guard lock(mutex_);
    if (runner_id_.empty())
      throw std::system_error(errc::lease_lost,
                              origin_ + ": batch \"" + batch_name_ + "\": this runner is not registered (claim first)");
    db_.ensure_open();
    const detail::pg_result r = db_.run(
        st_.renew, detail::pg_params().text(runner_id_).integer(static_cast<std::int64_t>(options_.lease.count())),
        "renewing the lease of runner " + runner_id_);
    if (r.rows() == 1) return;
    const detail::pg_result why =
        db_.query(sql("SELECT " + ms("lease_until") + ", " + ms("now()") + " FROM {s}.runners WHERE runner_id = $1"),
                  detail::pg_params().text(runner_id_), "reading the lease of runner " + runner_id_);
    std::string message = origin_ + ": batch \"" + batch_name_ + "\": the lease of runner " + runner_id_;
    if (why.rows() == 0) {
      message += " is gone: its registration was removed (by `release_expired`, e.g. batch_run release)";
    } else {
      message += " ran out at " + detail::format_utc_ms(detail::from_ms(why.integer(0, 0))) +
                 " (the server's clock says " + detail::format_utc_ms(detail::from_ms(why.integer(0, 1))) + ")";
    }
    throw std::system_error(errc::lease_lost, message + ": other runners may hold its jobs now");
  }

  /// See `batch_store`: gives back the records this runner holds and removes
  /// its registration (no-throw: if the server cannot be reached, the lease
  /// runs out and other runners take the records then).
  void release() noexcept {
    const std::lock_guard lock(mutex_);
    release_locked();
  }

  /// See `shared_batch_store`: one statement; the records taken from a
  /// runner whose lease ran out get a history line "taken over from runner
  /// R (pid P on host H) whose lease ran out at T". Throws `errc::lease_lost`
  /// when this runner's own lease ran out (or it never claimed).
  std::vector<batch_job> take(std::size_t limit) {
    const std::lock_guard lock(mutex_);
    if (limit == 0) return {};
    if (runner_id_.empty())
      throw std::system_error(
          errc::lease_lost, origin_ + ": batch \"" + batch_name_ + "\": take needs a registered runner (claim first)");
    db_.ensure_open();
    const detail::pg_result r = db_.run(
        st_.take, detail::pg_params().integer(batch_id()).text(runner_id_).integer(static_cast<std::int64_t>(limit)),
        "taking jobs of batch \"" + batch_name_ + "\"");
    if (r.rows() == 0 || r.integer(0, 0) == 0)
      throw std::system_error(errc::lease_lost, origin_ + ": batch \"" + batch_name_ + "\": the lease of runner " +
                                                    runner_id_ +
                                                    " ran out (or its registration is gone): it takes no job");
    std::vector<batch_job> out;
    for (int row = 0; row < r.rows(); ++row)
      if (!r.is_null(row, 1)) out.push_back(read_row(r, row, 1));
    return out;
  }

  /// See `shared_batch_store`.
  std::size_t held_elsewhere() const {
    const std::lock_guard lock(mutex_);
    db_.ensure_open();
    const detail::pg_result r = db_.run(st_.held_elsewhere, detail::pg_params().integer(batch_id()).text(runner_id_),
                                        "counting the jobs other runners hold");
    return static_cast<std::size_t>(r.integer(0, 0));
  }

  /// See `shared_batch_store`.
  std::chrono::milliseconds lease() const noexcept { return options_.lease; }

  /// This runner's id since `claim` ("" before, and after `release`).
  std::string runner_id() const {
    const std::lock_guard lock(mutex_);
    return runner_id_;
  }

  /// The runners registered on the batch (live or not), oldest first.
  std::vector<postgres_runner> runners() const {
    const std::lock_guard lock(mutex_);
    db_.ensure_open();
    const detail::pg_result r =
        db_.query(sql("SELECT r.runner_id, r.host, r.pid, " + ms("r.started") + ", " + ms("r.lease_until") +
                      ", r.lease_until > now(), (SELECT count(*) FROM {s}.jobs j WHERE j.owner = r.runner_id) "
                      "FROM {s}.runners r WHERE r.batch_id = $1 ORDER BY r.started, r.runner_id"),
                  detail::pg_params().integer(batch_id()), "reading the runners of batch \"" + batch_name_ + "\"");
    return read_runners(r);
  }

  /// Removes the registrations of the batch's runners whose lease ran out
  /// (their records are free at once, with no "taken over" line); returns them.
  std::vector<postgres_runner> release_expired() {
    const std::lock_guard lock(mutex_);
    db_.ensure_open();
    const detail::pg_result r = db_.query(
        sql("DELETE FROM {s}.runners r WHERE r.batch_id = $1 AND r.lease_until <= now() RETURNING r.runner_id, "
            "r.host, r.pid, " +
            ms("r.started") + ", " + ms("r.lease_until") +
            ", false, (SELECT count(*) FROM {s}.jobs j WHERE j.owner = r.runner_id)"),
        detail::pg_params().integer(batch_id()), "removing runners whose lease ran out");
    return read_runners(r);
  }

  /// See `batch_store`.
  batch_counts counts() const {
    const std::lock_guard lock(mutex_);
    db_.ensure_open();
    const detail::pg_result r = db_.run(st_.counts, detail::pg_params().integer(batch_id()),
                                        "counting the jobs of batch \"" + batch_name_ + "\"");
    batch_counts c;
    for (int row = 0; row < r.rows(); ++row) {
      batch_job probe;
      probe.state = parse_state(r.text(row, 0), "state count");
      probe.skipped = r.boolean(row, 1);
      for (std::int64_t n = r.integer(row, 2); n > 0; --n) c.add(probe);
    }
    return c;
  }

  /// See `batch_store`: gives `job` the next id of the batch (a counter every
  /// runner shares) and the key "<uid>-<id>"; the record is held by no one.
  /// Its parameters make a job configuration of their own unless they are
  /// its parent's.
  void insert(batch_job& job) {
    const std::lock_guard lock(mutex_);
    const std::string params = params_json(job.params, 0, job.entry);
    db_.ensure_open();
    const detail::pg_result r =
        db_.run(st_.insert,
                detail::pg_params()
                    .integer(batch_id())
                    .integer(static_cast<std::int64_t>(job.entry))
                    .integer_or_null(job.parent ? std::optional<std::int64_t>(static_cast<std::int64_t>(*job.parent))
                                                : std::nullopt)
                    .integer(static_cast<std::int64_t>(job.attempt))
                    .text(params)
                    .text(detail::pg_message_text(job.override_reason))
                    .text(to_string(job.state))
                    .boolean(job.skipped)
                    .text(detail::pg_message_text(job.skip_reason))
                    .text(detail::format_utc_ms(job.created))
                    .text_or_null(runner())
                    .boolean(job.parent.has_value()),
                "inserting a job of batch \"" + batch_name_ + "\" (entry " + std::to_string(job.entry) + ")");
    job.id = static_cast<std::size_t>(r.integer(0, 0));
    job.key = r.text(0, 1);
  }

  /// See `batch_store` and `shared_batch_store`: one statement, conditional
  /// on the record being held by this runner or by no live one. Throws
  /// `errc::lease_lost` naming the runner that holds it otherwise (nothing
  /// changed), `errc::invalid_argument` for a handle or result PostgreSQL
  /// cannot hold (see the class). A record left runnable stays held by this
  /// runner if it held it; any other is held by no one.
  void update(const batch_job& job, std::optional<batch_job_state> previous, std::string_view note) {
    const std::lock_guard lock(mutex_);
    std::optional<std::string> handle, handle_id;
    if (job.handle) {
      handle = handle_json(*job.handle, job.id);
      handle_id = detail::pg_message_text(job.handle->id);
    }
    if (!detail::is_pg_text(job.result))
      throw std::system_error(
          errc::invalid_argument,
          origin_ + ": batch \"" + batch_name_ + "\" job " + std::to_string(job.id) +
              ": its result is not UTF-8 text without NUL bytes, which PostgreSQL text cannot hold");
    const std::string error = detail::pg_message_text(job.error);
    const detail::pg_params params =
        detail::pg_params()
            .integer(batch_id())
            .integer(static_cast<std::int64_t>(job.id))
            .text(to_string(job.state))
            .boolean(job.skipped)
            .text(detail::pg_message_text(job.skip_reason))
            .text_or_null(handle)
            .text(error)
            .text(detail::pg_message_text(job.error_code))
            .text(job.result)
            .text_or_null(job.submitted ? std::optional<std::string>(detail::format_utc_ms(*job.submitted))
                                        : std::nullopt)
            .text_or_null(job.ended ? std::optional<std::string>(detail::format_utc_ms(*job.ended)) : std::nullopt)
            .text_or_null(previous ? std::optional<std::string>(std::string(to_string(*previous))) : std::nullopt)
            .text_or_null(note.empty() ? std::nullopt : std::optional<std::string>(detail::pg_message_text(note)))
            .text_or_null(runner())
            .text_or_null(handle_id);
    const std::string step = "updating job " + std::to_string(job.id) + " of batch \"" + batch_name_ + "\"";
    db_.ensure_open();
    // Twice at most: a holder whose lease runs out between the update and
    // the look at who holds it no longer stands in the way.
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (db_.run(st_.update, params, step).integer(0, 0) == 1) return;
      const detail::pg_result holder =
          db_.query(sql("SELECT j.owner, r.host, r.pid, " + ms("r.lease_until") +
                        ", r.lease_until > now() FROM {s}.jobs j LEFT JOIN {s}.runners r ON r.runner_id = j.owner "
                        "WHERE j.batch_id = $1 AND j.id = $2"),
                    detail::pg_params().integer(batch_id()).integer(static_cast<std::int64_t>(job.id)), step);
      if (holder.rows() == 0)
        throw std::system_error(errc::store_error, origin_ + ": batch \"" + batch_name_ + "\" has no job " +
                                                       std::to_string(job.id) + " to update");
      if (holder.is_null(0, 0) || holder.is_null(0, 1) || !holder.boolean(0, 4)) continue;
      throw std::system_error(
          errc::lease_lost,
          origin_ + ": batch \"" + batch_name_ + "\" job " + std::to_string(job.id) + " is held by runner " +
              holder.text(0, 0) + " (pid " + holder.text(0, 2) + " on host " + holder.text(0, 1) + ", lease until " +
              detail::format_utc_ms(detail::from_ms(holder.integer(0, 3))) + "), not by " +
              (runner_id_.empty() ? std::string("this unregistered runner") : "runner " + runner_id_) +
              ": its lease ran out and the job was taken over; the change was not made");
    }
    throw std::system_error(errc::store_error, origin_ + ": " + step + ": the job's holder kept changing");
  }

  /// See `batch_store`.
  std::optional<batch_job> job(std::size_t id) const {
    const std::lock_guard lock(mutex_);
    db_.ensure_open();
    const detail::pg_result r =
        db_.run(st_.job, detail::pg_params().integer(batch_id()).integer(static_cast<std::int64_t>(id)),
                "reading job " + std::to_string(id) + " of batch \"" + batch_name_ + "\"");
    if (r.rows() == 0) return std::nullopt;
    return read_row(r, 0, 0);
  }

  /// See `batch_store`.
  std::vector<batch_job> jobs_in(batch_job_state state, std::size_t after, std::size_t limit) const {
    const std::lock_guard lock(mutex_);
    db_.ensure_open();
    const auto rank = run_rank(state);
    detail::pg_params params = detail::pg_params().integer(batch_id());
    if (rank) {
      params.integer(*rank);
    } else {
      params.text(to_string(state));
    }
    params.integer(static_cast<std::int64_t>(after))
        .integer(static_cast<std::int64_t>(std::min<std::size_t>(limit, std::numeric_limits<std::int64_t>::max())));
    const detail::pg_result r =
        db_.run(rank ? st_.to_run : st_.in_state, params,
                "reading the " + std::string(to_string(state)) + " jobs of batch \"" + batch_name_ + "\"");
    std::vector<batch_job> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int row = 0; row < r.rows(); ++row) out.push_back(read_row(r, row, 0));
    return out;
  }

  /// Calls `f` with every record of the batch, in id order, read a page at a time.
  void for_each_job(const std::function<void(const batch_job&)>& f) const {
    const std::lock_guard lock(mutex_);
    for (std::int64_t after = 0;;) {
      db_.ensure_open();
      const detail::pg_result r =
          db_.run(st_.page, detail::pg_params().integer(batch_id()).integer(after).integer(page_size),
                  "reading the jobs of batch \"" + batch_name_ + "\"");
      if (r.rows() == 0) return;
      for (int row = 0; row < r.rows(); ++row) {
        const batch_job job = read_row(r, row, 0);
        after = static_cast<std::int64_t>(job.id);
        f(job);
      }
    }
  }

  /// See `batch_store`: the `batch_reconciliation` view's counts, the status
  /// decided by the rules `reconcile` uses.
  batch_summary summary() const {
    const std::lock_guard lock(mutex_);
    db_.ensure_open();
    const detail::pg_result r = db_.query(
        sql("SELECT total_entries, fulfilled_entries, total_jobs, pending, submitting, running, completed, failed, "
            "cancelled, unknown, skipped, array_to_string(failed_job_ids, ',') FROM {s}.batch_reconciliation "
            "WHERE batch_id = $1"),
        detail::pg_params().integer(batch_id()), "reconciling batch \"" + batch_name_ + "\"");
    if (r.rows() == 0) throw std::system_error(errc::store_error, origin_ + " has no batch \"" + batch_name_ + "\"");
    batch_summary s;
    s.total_entries = static_cast<std::size_t>(r.integer(0, 0));
    s.fulfilled_entries = static_cast<std::size_t>(r.integer(0, 1));
    s.total_jobs = static_cast<std::size_t>(r.integer(0, 2));
    std::size_t live = 0;
    for (std::size_t i = 0; i < batch_job_state_count; ++i) {
      s.counts.by_state[i] = static_cast<std::size_t>(r.integer(0, 3 + static_cast<int>(i)));
      live += s.counts.by_state[i];
    }
    s.counts.skipped = static_cast<std::size_t>(r.integer(0, 10));
    const std::string ids = r.text(0, 11);
    for (std::size_t at = 0; at < ids.size();) {
      const std::size_t comma = std::min(ids.find(',', at), ids.size());
      s.failed_job_ids.push_back(static_cast<std::size_t>(std::stoull(ids.substr(at, comma - at))));
      at = comma + 1;
    }
    s.status = detail::batch_status_of(live, s.counts[batch_job_state::cancelled], s);
    return s;
  }

  /// Appends the batch's reconciliation to the `reconciliations` table (the
  /// seed's reconciliation log: status and `to_json(summary)`, with this
  /// runner's id) and returns it.
  batch_summary record_reconciliation() {
    const std::lock_guard lock(mutex_);
    const batch_summary s = summary();
    db_.query(sql("INSERT INTO {s}.reconciliations (batch_id, runner, status, summary) VALUES ($1, $2, $3, $4::jsonb)"),
              detail::pg_params()
                  .integer(batch_id())
                  .text_or_null(runner())
                  .text(to_string(s.status))
                  .text(to_json(s).dump()),
              "recording the reconciliation of batch \"" + batch_name_ + "\"");
    return s;
  }

  /// Writes the batch's history as NDJSON audit lines (the format of
  /// `audit_log`, which `replay_audit_log` reads back), oldest first.
  void export_history(std::ostream& out) const {
    const std::lock_guard lock(mutex_);
    for (std::int64_t after = 0;;) {
      db_.ensure_open();
      const detail::pg_result r =
          db_.run(st_.history, detail::pg_params().integer(batch_id()).integer(after).integer(page_size),
                  "reading the history of batch \"" + batch_name_ + "\"");
      if (r.rows() == 0) return;
      for (int row = 0; row < r.rows(); ++row) {
        after = r.integer(row, 0);
        batch_job job;
        job.state = parse_state(r.text(row, 2), "history state");
        const std::optional<std::string> previous = r.optional_text(row, 3);
        job.skipped = r.boolean(row, 4);
        if (auto handle = r.optional_text(row, 5)) job.handle = job_handle(*handle);
        job.error = r.optional_text(row, 6).value_or("");
        if (!job.error.empty()) job.error_code = r.text(row, 15);
        job.id = static_cast<std::size_t>(r.integer(row, 8));
        job.entry = static_cast<std::size_t>(r.integer(row, 9));
        if (!r.is_null(row, 10)) job.parent = static_cast<std::size_t>(r.integer(row, 10));
        job.attempt = static_cast<std::size_t>(r.integer(row, 11));
        if (!previous) job.params = detail::read_stored_params(r.view(row, 12), record_origin(), job.id);
        job.override_reason = r.text(row, 13);
        job.skip_reason = r.text(row, 14);
        out << detail::audit_line(
                   batch_name_, job,
                   previous ? std::optional<batch_job_state>(parse_state(*previous, "history previous")) : std::nullopt,
                   r.optional_text(row, 7).value_or(""), detail::from_ms(r.integer(row, 1)))
            << '\n';
      }
    }
  }

 private:
  // Rows one read of a page brings in (for_each_job, export_history).
  static constexpr std::int64_t page_size = 1000;

  struct statements {
    detail::pg_statement info, claim, renew, take, held_elsewhere, counts, insert, update, job, to_run, in_state, page,
        history;
  };

  static postgres_store_options checked(postgres_store_options o) {
    if (o.lease < std::chrono::milliseconds(1))
      detail::throw_invalid("postgres_store", "lease must be at least 1ms", detail::describe(o.lease));
    if (o.schema.empty() || o.schema.size() > 63 || o.schema.find('\0') != std::string::npos)
      detail::throw_invalid("postgres_store", "schema must be a name of 1 to 63 bytes", "\"" + o.schema + "\"");
    if (o.statement_timeout < std::chrono::milliseconds::zero() || o.io_timeout < std::chrono::milliseconds::zero())
      detail::throw_invalid("postgres_store", "timeouts must not be negative",
                            detail::describe(std::min(o.statement_timeout, o.io_timeout)));
    return o;
  }

  static detail::pg_connect_settings connect_settings(const postgres_store_options& o) {
    return {o.connect_timeout, o.statement_timeout, o.io_timeout};
  }

  std::string sql(std::string_view text) const { return detail::with_schema(text, schema_); }

  // `column` (timestamptz) as integer milliseconds since 1970 (exact: to_ms's unit).
  static std::string ms(std::string_view column) {
    return "(extract(epoch FROM " + std::string(column) + ") * 1000)::bigint";
  }

  // The columns read_row reads, from jobs `j` and job_configurations `c`.
  static std::string job_columns(std::string_view j, std::string_view c) {
    const std::string p = std::string(j) + ".";
    return p + "id, " + p + "entry, " + p + "parent, " + p + "attempt, " + std::string(c) + ".params::text, " + p +
           "override_reason, " + p + "job_key, " + p + "state, " + p + "skipped, " + p + "skip_reason, " + p +
           "handle::text, " + p + "error, " + p + "error_code, " + p + "result, " + ms(p + "created") + ", " +
           ms(p + "submitted") + ", " + ms(p + "ended");
  }

  static std::optional<std::int64_t> run_rank(batch_job_state state) {
    switch (state) {
      case batch_job_state::running:
        return 0;
      case batch_job_state::submitting:
        return 1;
      case batch_job_state::pending:
        return 2;
      default:
        return std::nullopt;
    }
  }

  void migrate() {
    // The fast path, without a lock: the schema is at this version.
    if (probe().version == schema_version) return;
    for (;;) {
      detail::pg_transaction tx(db_);
      // One opener migrates; the others wait here and then see the new version.
      db_.query("SELECT pg_advisory_xact_lock(1785684592, hashtext($1))", detail::pg_params().text(options_.schema),
                "locking the schema for its migration");
      const schema_state state = probe();
      if (state.version == schema_version) {
        tx.commit();
        return;
      }
      if (!options_.create_if_missing)
        throw std::system_error(
            errc::store_error, origin_ + " holds no jobpoll batch store (no schema " + schema_ + "): a run creates it");
      if (!state.exists) db_.exec("CREATE SCHEMA " + schema_, "creating the schema");
      const auto version = static_cast<std::size_t>(state.version);
      db_.exec(sql(detail::postgres_migrations[version]),
               "migrating the schema to version " + std::to_string(version + 1));
      db_.query(sql(version == 0 ? "INSERT INTO {s}.schema_version (application, version) VALUES ($1, $2::integer)"
                                 : "UPDATE {s}.schema_version SET version = $2::integer WHERE application = $1"),
                detail::pg_params().text(std::string(application)).integer(static_cast<std::int64_t>(version + 1)),
                "recording the schema version");
      tx.commit();
    }
  }

  struct schema_state {
    bool exists = false;
    int version = 0;  // 0: no store yet
  };

  // The schema as it stands; throws for another program's schema and a newer version.
  schema_state probe() {
    const detail::pg_result r = db_.query(
        "SELECT n.oid IS NOT NULL, (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid AND "
        "c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S')), to_regclass(quote_ident($1) || '.schema_version') IS NOT NULL "
        "FROM (SELECT 1) AS one LEFT JOIN pg_namespace n ON n.nspname = $1",
        detail::pg_params().text(options_.schema), "reading the schema");
    schema_state state;
    state.exists = r.boolean(0, 0);
    const std::int64_t relations = r.integer(0, 1);
    const bool marked = r.boolean(0, 2);
    std::optional<std::int64_t> version;
    if (marked) {
      // As JSON: a table of that name with other columns is another program's, not an error here.
      const detail::pg_result v = db_.query(sql("SELECT to_jsonb(v)::text FROM {s}.schema_version v"),
                                            detail::pg_params(), "reading the schema version");
      if (v.rows() == 1) {
        const nlohmann::json row = nlohmann::json::parse(v.view(0, 0), nullptr, false);
        if (row.is_object() && row.value("application", "") == application && row.contains("version") &&
            row["version"].is_number_integer())
          version = row["version"].get<std::int64_t>();
      }
    }
    if (!version && relations > 0)
      throw std::system_error(errc::store_error,
                              origin_ + " is not a jobpoll batch store: schema " + schema_ + " holds " +
                                  std::to_string(relations) + (relations == 1 ? " table" : " tables") +
                                  " (or views, sequences) and no jobpoll schema_version marker: it was left "
                                  "untouched; give the store a schema of its own (postgres_store_options::schema)");
    if (version && *version > schema_version)
      throw std::system_error(errc::store_error, origin_ + " has schema version " + std::to_string(*version) +
                                                     ", newer than this jobpoll reads (" +
                                                     std::to_string(schema_version) + "): use a newer jobpoll");
    state.version = version ? static_cast<int>(*version) : 0;
    return state;
  }

  void prepare() {
    const std::string select = "SELECT " + job_columns("j", "c") +
                               " FROM {s}.jobs j JOIN {s}.job_configurations c ON c.batch_id = j.batch_id AND "
                               "c.config_id = j.config_id";
    const auto statement = [&](std::string name, std::string_view text) {
      return detail::pg_statement{"jobpoll_" + std::move(name), sql(text)};
    };
    st_.info = statement(
        "info", "SELECT batch_id, uid, fingerprint, entries, " + ms("created") + " FROM {s}.batches WHERE name = $1");
    st_.claim = statement("claim",
                          "INSERT INTO {s}.runners (runner_id, batch_id, host, pid, started, lease_until) VALUES "
                          "($1, $2::bigint, $3, $4::bigint, now(), now() + $5::bigint * interval '1 millisecond')");
    st_.renew = statement("renew",
                          "UPDATE {s}.runners SET lease_until = now() + $2::bigint * interval '1 millisecond' "
                          "WHERE runner_id = $1 AND lease_until > now() RETURNING runner_id");
    // The rows are locked in the index's order. A row another runner took
    // while this statement ran is re-checked as it is now, but the runners
    // subquery still reads this statement's snapshot: a runner registered
    // since would look dead. So a record that had an owner is taken only if
    // runner_is_live (a fresh snapshot) agrees.
    st_.take = statement(
        "take",
        "WITH me AS (SELECT count(*) AS live FROM {s}.runners WHERE runner_id = $2::text AND lease_until > now()), "
        "picked AS (SELECT j.batch_id, j.id, j.owner AS was FROM {s}.jobs j "
        "  WHERE j.batch_id = $1::bigint AND j.run_rank IS NOT NULL AND j.owner IS DISTINCT FROM $2::text "
        "    AND (j.owner IS NULL OR NOT EXISTS (SELECT 1 FROM {s}.runners r "
        "                                        WHERE r.runner_id = j.owner AND r.lease_until > now())) "
        "    AND (SELECT live FROM me) > 0 "
        "  ORDER BY j.run_rank, j.id LIMIT $3::bigint FOR NO KEY UPDATE OF j SKIP LOCKED), "
        "taken AS (UPDATE {s}.jobs j SET owner = $2::text FROM picked "
        "  WHERE j.batch_id = picked.batch_id AND j.id = picked.id "
        "    AND (picked.was IS NULL OR NOT {s}.runner_is_live(picked.was)) RETURNING j.*, picked.was), "
        "noted AS (INSERT INTO {s}.history (batch_id, job, state, previous, skipped, handle, error, note, runner) "
        "  SELECT t.batch_id, t.id, t.state, t.state, t.skipped, t.handle ->> 'id', NULLIF(t.error, ''), "
        "    'taken over from runner ' || t.was || COALESCE(' (pid ' || r.pid || ' on host ' || r.host || ')', '') || "
        "    ' whose lease ran out' || COALESCE(' at ' || to_char(r.lease_until AT TIME ZONE 'UTC', "
        "      'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), ''), $2::text "
        "  FROM taken t LEFT JOIN {s}.runners r ON r.runner_id = t.was WHERE t.was IS NOT NULL) "
        "SELECT m.live, " + job_columns("t", "c") +
            " FROM me m LEFT JOIN (taken t JOIN {s}.job_configurations c "
            "  ON c.batch_id = t.batch_id AND c.config_id = t.config_id) ON true ORDER BY t.run_rank, t.id");
    st_.held_elsewhere = statement(
        "held_elsewhere",
        "SELECT count(*) FROM {s}.jobs j JOIN {s}.runners r ON r.runner_id = j.owner WHERE j.batch_id = $1::bigint "
        "AND j.run_rank IS NOT NULL AND j.owner <> COALESCE($2::text, '') AND r.lease_until > now()");
    st_.counts = statement("counts",
                           "SELECT state, skipped, count(*) FROM {s}.jobs WHERE batch_id = $1 GROUP BY state, skipped");
    // The batch's id counter is one row every runner updates: ids stay
    // unique and dense across runners. Same parameters as the parent's: its configuration.
    st_.insert = statement(
        "insert",
        "WITH n AS (UPDATE {s}.batches SET next_id = next_id + 1 WHERE batch_id = $1::bigint "
        "  RETURNING next_id - 1 AS id, uid), "
        "reuse AS (SELECT c.config_id FROM {s}.jobs p JOIN {s}.job_configurations c "
        "  ON c.batch_id = p.batch_id AND c.config_id = p.config_id "
        "  WHERE p.batch_id = $1::bigint AND p.id = $3::bigint AND c.params = $5::jsonb), "
        "made AS (INSERT INTO {s}.job_configurations (batch_id, config_id, entry, params, overridden, "
        "  override_reason, created) SELECT $1::bigint, n.id, $2::bigint, $5::jsonb, $12::boolean, $6::text, "
        "  $10::timestamptz FROM n WHERE NOT EXISTS (SELECT 1 FROM reuse) RETURNING config_id), "
        "j AS (INSERT INTO {s}.jobs (batch_id, id, entry, config_id, parent, attempt, override_reason, job_key, "
        "  state, skipped, skip_reason, created) SELECT $1::bigint, n.id, $2::bigint, "
        "  COALESCE((SELECT config_id FROM reuse), (SELECT config_id FROM made)), $3::bigint, $4::bigint, $6::text, "
        "  n.uid || '-' || n.id, $7::text, $8::boolean, $9::text, $10::timestamptz FROM n "
        "  RETURNING id, job_key, state, skipped), "
        "h AS (INSERT INTO {s}.history (batch_id, job, state, skipped, runner) "
        "  SELECT $1::bigint, j.id, j.state, j.skipped, $11::text FROM j) "
        "SELECT id, job_key FROM j");
    // Fenced: held by this runner ($14), by no one, or by a runner whose
    // lease ran out (runner_is_live: see take).
    st_.update = statement(
        "update",
        "WITH u AS (UPDATE {s}.jobs j SET state = $3::text, skipped = $4::boolean, skip_reason = $5::text, "
        "  handle = $6::jsonb, error = $7::text, error_code = $8::text, result = $9::text, "
        "  submitted = $10::timestamptz, ended = $11::timestamptz, "
        "  owner = CASE WHEN j.owner = $14::text AND NOT $4::boolean "
        "                    AND $3::text IN ('pending', 'submitting', 'running') THEN j.owner END "
        "  WHERE j.batch_id = $1::bigint AND j.id = $2::bigint AND (j.owner IS NULL OR j.owner = $14::text "
        "    OR NOT {s}.runner_is_live(j.owner)) "
        "  RETURNING j.id), "
        "h AS (INSERT INTO {s}.history (batch_id, job, state, previous, skipped, handle, error, note, runner) "
        "  SELECT $1::bigint, u.id, $3::text, $12::text, $4::boolean, $15::text, NULLIF($7::text, ''), $13::text, "
        "    $14::text FROM u) "
        "SELECT count(*) FROM u");
    st_.job = statement("job", select + " WHERE j.batch_id = $1 AND j.id = $2");
    st_.to_run = statement("to_run", select +
                                         " WHERE j.batch_id = $1 AND j.run_rank = $2::smallint AND j.id > $3 "
                                         "ORDER BY j.id LIMIT $4");
    st_.in_state = statement("in_state", select +
                                             " WHERE j.batch_id = $1 AND j.state = $2 AND NOT j.skipped "
                                             "AND j.id > $3 ORDER BY j.id LIMIT $4");
    st_.page = statement("page", select + " WHERE j.batch_id = $1 AND j.id > $2 ORDER BY j.id LIMIT $3");
    st_.history = statement(
        "history",
        "SELECT h.seq, " + ms("h.at") +
            ", h.state, h.previous, h.skipped, h.handle, h.error, h.note, j.id, j.entry, "
            "j.parent, j.attempt, c.params::text, j.override_reason, j.skip_reason, j.error_code FROM {s}.history h "
            "JOIN {s}.jobs j ON j.batch_id = h.batch_id AND j.id = h.job "
            "JOIN {s}.job_configurations c ON c.batch_id = j.batch_id AND c.config_id = j.config_id "
            "WHERE h.batch_id = $1 AND h.seq > $2 ORDER BY h.seq LIMIT $3");
  }

  void load_info() const {
    db_.ensure_open();
    const detail::pg_result r =
        db_.run(st_.info, detail::pg_params().text(batch_name_), "reading batch \"" + batch_name_ + "\"");
    if (r.rows() == 0) return;
    batch_id_ = r.integer(0, 0);
    info_ = batch_info{batch_name_, r.text(0, 1), r.text(0, 2), static_cast<std::size_t>(r.integer(0, 3)),
                       detail::from_ms(r.integer(0, 4))};
  }

  std::int64_t batch_id() const {
    if (!info_) load_info();
    if (!info_) throw std::system_error(errc::store_error, origin_ + " has no batch \"" + batch_name_ + "\"");
    return batch_id_;
  }

  // This runner's id for history rows and fencing, none before `claim`.
  std::optional<std::string> runner() const {
    return runner_id_.empty() ? std::nullopt : std::optional<std::string>(runner_id_);
  }

  void release_locked() noexcept {
    if (runner_id_.empty()) return;
    const std::string id = std::exchange(runner_id_, std::string());
    try {
      db_.ensure_open();
      // Its records' owner becomes NULL (ON DELETE SET NULL).
      db_.query(sql("DELETE FROM {s}.runners WHERE runner_id = $1"), detail::pg_params().text(id),
                "releasing runner " + id);
    } catch (const std::exception&) {
      // The lease runs out; other runners take the records then.
    }
  }

  void check_same(std::size_t entries, const std::string& fingerprint) const {
    if (info_->entries == entries && info_->fingerprint == fingerprint) return;
    throw std::system_error(errc::batch_mismatch,
                            origin_ + " holds batch \"" + batch_name_ + "\" with " + std::to_string(info_->entries) +
                                " entries (fingerprint " + info_->fingerprint + "), not these " +
                                std::to_string(entries) + " entries (fingerprint " + fingerprint +
                                "); it was left untouched: give this batch another name or another store");
  }

  // The params as JSON text for a jsonb column; `job` 0: not known yet.
  std::string params_json(const job_params& params, std::size_t job, std::size_t entry) const {
    const std::string who =
        (job == 0 ? std::string("a new job") : "job " + std::to_string(job)) + " (entry " + std::to_string(entry) + ")";
    for (const auto& [name, value] : params)
      if (name.find('\0') != std::string::npos || value.find('\0') != std::string::npos)
        throw std::system_error(errc::invalid_argument,
                                origin_ + ": " + who + ": parameter \"" + detail::pg_message_text(name) +
                                    "\" holds a NUL character, which PostgreSQL's jsonb cannot hold");
    std::string text;
    try {
      detail::append_json_params(text, params);
    } catch (const nlohmann::json::exception& e) {
      throw std::system_error(errc::invalid_argument, origin_ + ": " + who + ": a parameter is not UTF-8: " + e.what());
    }
    return text;
  }

  std::string handle_json(const job_handle& handle, std::size_t job) const {
    bool nul = handle.id.find('\0') != std::string::npos;
    for (const auto& [name, value] : handle.params)
      nul = nul || name.find('\0') != std::string::npos || value.find('\0') != std::string::npos;
    if (nul)
      throw std::system_error(errc::invalid_argument, origin_ + ": job " + std::to_string(job) +
                                                          ": its handle holds a NUL character, which PostgreSQL's "
                                                          "jsonb cannot hold");
    std::string text;
    try {
      detail::append_json(text, handle);
    } catch (const nlohmann::json::exception& e) {
      throw std::system_error(errc::invalid_argument,
                              origin_ + ": job " + std::to_string(job) + ": its handle is not UTF-8: " + e.what());
    }
    return text;
  }

  batch_job_state parse_state(const std::string& text, std::string_view what) const {
    if (auto s = parse_batch_job_state(text)) return *s;
    throw std::system_error(errc::store_error, origin_ + ": " + std::string(what) + ": expected " +
                                                   std::string(detail::state_names) + ", got \"" + text.substr(0, 40) +
                                                   "\"");
  }

  std::string record_origin() const { return origin_ + ": batch \"" + batch_name_ + "\""; }

  // The job at `row`, its columns from `col` on (job_columns' order).
  batch_job read_row(const detail::pg_result& r, int row, int col) const {
    const auto at = [col](int i) { return col + i; };
    batch_job job;
    job.id = static_cast<std::size_t>(r.integer(row, at(0)));
    job.entry = static_cast<std::size_t>(r.integer(row, at(1)));
    if (!r.is_null(row, at(2))) job.parent = static_cast<std::size_t>(r.integer(row, at(2)));
    job.attempt = static_cast<std::size_t>(r.integer(row, at(3)));
    job.params = detail::read_stored_params(r.view(row, at(4)), record_origin(), job.id);
    job.override_reason = r.text(row, at(5));
    job.key = r.text(row, at(6));
    job.state = parse_state(r.text(row, at(7)), "job " + std::to_string(job.id) + " state");
    job.skipped = r.boolean(row, at(8));
    job.skip_reason = r.text(row, at(9));
    if (!r.is_null(row, at(10))) job.handle = detail::read_stored_handle(r.view(row, at(10)), record_origin(), job.id);
    job.error = r.text(row, at(11));
    job.error_code = r.text(row, at(12));
    job.result = r.text(row, at(13));
    job.created = detail::from_ms(r.integer(row, at(14)));
    if (!r.is_null(row, at(15))) job.submitted = detail::from_ms(r.integer(row, at(15)));
    if (!r.is_null(row, at(16))) job.ended = detail::from_ms(r.integer(row, at(16)));
    return job;
  }

  static std::vector<postgres_runner> read_runners(const detail::pg_result& r) {
    std::vector<postgres_runner> out;
    for (int row = 0; row < r.rows(); ++row) {
      out.push_back({r.text(row, 0), r.text(row, 1), r.integer(row, 2), detail::from_ms(r.integer(row, 3)),
                     detail::from_ms(r.integer(row, 4)), r.boolean(row, 5),
                     static_cast<std::size_t>(r.integer(row, 6))});
    }
    return out;
  }

  postgres_store_options options_;
  std::string batch_name_;
  std::string schema_;  // quoted
  std::string origin_;
  mutable std::recursive_mutex mutex_;  // recursive: for_each_job's callback may call the store
  mutable detail::pg_connection db_;
  statements st_;
  mutable std::optional<batch_info> info_;
  mutable std::int64_t batch_id_ = 0;
  std::string runner_id_;
  asio::thread_pool pool_{1};  // the bounded worker: constructed last, stopped first
};

static_assert(batch_store<postgres_store>);
static_assert(remote_batch_store<postgres_store>);
static_assert(shared_batch_store<postgres_store>);

}  // namespace jobpoll
