#pragma once
// A thin RAII layer over SQLite's C API for the SQLite batch store: a
// connection, prepared statements, transactions. Every failure throws
// `std::system_error` with `errc::store_error` and a message naming the
// file, the step and SQLite's own message and code.

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <sqlite3.h>

#include "jobpoll/error.hpp"

namespace jobpoll::detail {

/// "<what>: <sqlite's message> (SQLITE_FULL)" as `errc::store_error`.
[[noreturn]] inline void throw_sqlite(sqlite3* db, int rc, std::string_view what) {
  std::string message(what);
  message += ": ";
  message += db != nullptr && sqlite3_errcode(db) == rc ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  message += " (SQLite error ";
  message += std::to_string(rc);
  message += ")";
  throw std::system_error(errc::store_error, message);
}

/// One prepared statement; `reset` after each use keeps it for the next.
class sqlite_statement {
 public:
  sqlite_statement() = default;
  sqlite_statement(sqlite3* db, std::string_view sql, const std::string* origin) : db_(db), origin_(origin) {
    const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                      &stmt_, nullptr);
    if (rc != SQLITE_OK) throw_sqlite(db, rc, *origin + ": preparing \"" + std::string(sql.substr(0, 60)) + "\"");
  }
  sqlite_statement(sqlite_statement&& other) noexcept
      : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)), origin_(other.origin_) {}
  sqlite_statement& operator=(sqlite_statement&& other) noexcept {
    std::swap(db_, other.db_);
    std::swap(stmt_, other.stmt_);
    std::swap(origin_, other.origin_);
    return *this;
  }
  ~sqlite_statement() { sqlite3_finalize(stmt_); }

  sqlite_statement& bind(int i, std::int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
  sqlite_statement& bind(int i, std::string_view v) {
    return check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  sqlite_statement& bind_null(int i) { return check(sqlite3_bind_null(stmt_, i)); }
  template <class T>
  sqlite_statement& bind(int i, const std::optional<T>& v) {
    return v ? bind(i, *v) : bind_null(i);
  }

  /// Steps once: true with a row, false when done. Throws on an error.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    const std::string sql = sqlite3_sql(stmt_) != nullptr ? std::string(sqlite3_sql(stmt_)).substr(0, 60) : "";
    sqlite3_reset(stmt_);
    throw_sqlite(db_, rc, *origin_ + ": \"" + sql + "...\"");
  }
  /// Steps to the end (a statement without rows), then resets.
  void run() {
    while (step()) {
    }
    reset();
  }
  void reset() noexcept {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  /// Resets the statement when the scope ends, however it ends: a kept
  /// statement left mid-step by an exception could not be bound again.
  class reset_guard {
   public:
    explicit reset_guard(sqlite_statement& s) noexcept : s_(&s) {}
    reset_guard(const reset_guard&) = delete;
    reset_guard& operator=(const reset_guard&) = delete;
    ~reset_guard() { s_->reset(); }

   private:
    sqlite_statement* s_;
  };
  [[nodiscard]] reset_guard scope() noexcept { return reset_guard(*this); }

  bool is_null(int col) const noexcept { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::int64_t integer(int col) const noexcept { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p == nullptr ? std::string() : std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  std::optional<std::string> optional_text(int col) const {
    if (is_null(col)) return std::nullopt;
    return text(col);
  }

 private:
  sqlite_statement& check(int rc) {
    if (rc != SQLITE_OK) throw_sqlite(db_, rc, *origin_ + ": binding a value");
    return *this;
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  const std::string* origin_ = nullptr;  // the store's name for messages; outlives the statement
};

/// An open SQLite database.
class sqlite_connection {
 public:
  /// Opens `path` ("" or ":memory:" for a private in-memory database),
  /// creating it if `create`, through the VFS `vfs` ("" for the default).
  sqlite_connection(const std::string& path, const std::string& vfs, bool create, std::string origin)
      : origin_(std::move(origin)) {
    const int flags =
        SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, vfs.empty() ? nullptr : vfs.c_str());
    if (rc != SQLITE_OK) {
      const std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw std::system_error(errc::store_error, origin_ + ": cannot open: " + message);
    }
  }
  sqlite_connection(const sqlite_connection&) = delete;
  sqlite_connection& operator=(const sqlite_connection&) = delete;
  ~sqlite_connection() {
    transactions_.clear();  // finalized before the close
    sqlite3_close_v2(db_);
  }

  sqlite3* get() const noexcept { return db_; }
  const std::string& origin() const noexcept { return origin_; }

  /// Runs `sql` (one or more statements without results).
  void exec(std::string_view sql, std::string_view step) {
    const std::string text(sql);
    char* error = nullptr;
    const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
    if (rc != SQLITE_OK) {
      std::string message = origin_ + ": " + std::string(step) + ": " + (error != nullptr ? error : sqlite3_errstr(rc)) +
                            " (SQLite error " + std::to_string(rc) + ")";
      sqlite3_free(error);
      throw std::system_error(errc::store_error, message);
    }
  }
  sqlite_statement prepare(std::string_view sql) { return sqlite_statement(db_, sql, &origin_); }
  /// One of "BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK", prepared on first use.
  sqlite_statement& transaction_statement(std::string_view sql) {
    for (auto& [text, statement] : transactions_)
      if (text == sql) return statement;
    return transactions_.emplace_back(std::string(sql), prepare(sql)).second;
  }
  /// The one integer `sql` answers (a PRAGMA, a COUNT).
  std::int64_t integer(std::string_view sql) {
    sqlite_statement s = prepare(sql);
    if (!s.step()) return 0;
    return s.integer(0);
  }

 private:
  std::string origin_;
  sqlite3* db_ = nullptr;
  std::list<std::pair<std::string, sqlite_statement>> transactions_;  // a list: references stay valid
};

/// A transaction: committed by `commit`, rolled back if destroyed before.
/// `immediate` takes the write lock at once (no upgrade deadlock between two
/// writers). Its statements are prepared once per connection: a change is
/// a transaction, and parsing "BEGIN"/"COMMIT" each time showed in profiles.
class sqlite_transaction {
 public:
  explicit sqlite_transaction(sqlite_connection& db, bool immediate = false) : db_(&db) {
    db.transaction_statement(immediate ? "BEGIN IMMEDIATE" : "BEGIN").run();
  }
  sqlite_transaction(const sqlite_transaction&) = delete;
  sqlite_transaction& operator=(const sqlite_transaction&) = delete;
  ~sqlite_transaction() {
    // After a failed COMMIT (disk full) SQLite may have rolled back already.
    if (db_ != nullptr && sqlite3_get_autocommit(db_->get()) == 0) {
      try {
        db_->transaction_statement("ROLLBACK").run();
      } catch (const std::exception&) {
        // Nothing more to do: the connection's next transaction reports the problem.
      }
    }
  }
  void commit() {
    db_->transaction_statement("COMMIT").run();
    db_ = nullptr;
  }

 private:
  sqlite_connection* db_;
};

}  // namespace jobpoll::detail
