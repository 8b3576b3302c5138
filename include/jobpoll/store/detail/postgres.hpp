#pragma once
// A thin RAII layer over libpq's synchronous API for the PostgreSQL batch
// store: a connection (reconnected between transactions once it broke),
// results, parameterised statements prepared once per connection, COPY
// FROM STDIN, transactions. Every failure throws `std::system_error` with
// `errc::store_error` and a message naming the store, the step, the
// server's (or libpq's) message and the SQLSTATE.

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_set>
#include <utility>
#include <vector>

#include <libpq-fe.h>

#include "jobpoll/error.hpp"

namespace jobpoll::detail {

/// `text` on one line, without the trailing newline libpq messages end with
/// ("...failed: Connection refused\n\tIs the server running...?\n").
inline std::string pg_one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool space = false;
  for (const char c : text) {
    if (c == '\n' || c == '\r' || c == '\t') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

/// What went wrong with a statement: the server's primary message, its
/// detail, and the SQLSTATE, or libpq's own message (a broken connection).
inline std::string pg_error_text(PGconn* conn, const PGresult* result) {
  const char* primary = result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  if (primary == nullptr) {
    std::string message = pg_one_line(conn != nullptr ? PQerrorMessage(conn) : "out of memory");
    return message.empty() ? std::string("no answer from the server") : message;
  }
  std::string message(primary);
  if (const char* detail = PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL))
    message += " (" + pg_one_line(detail) + ")";
  if (const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE))
    message += " [SQLSTATE " + std::string(state) + "]";
  return message;
}

/// The length of the UTF-8 sequence at `text[at]` that PostgreSQL's text
/// accepts, 0 when it is not one (an invalid or overlong sequence, a
/// surrogate, a code point above U+10FFFF, or a NUL byte).
inline std::size_t pg_text_sequence(std::string_view text, std::size_t at) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(at);
  if (lead < 0x80) return lead == 0 ? 0 : 1;
  std::size_t n = 0;
  unsigned char low = 0x80, high = 0xBF;  // the bounds of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    n = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    n = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    n = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (at + n > text.size() || byte(at + 1) < low || byte(at + 1) > high) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (byte(at + k) < 0x80 || byte(at + k) > 0xBF) return 0;
  return n;
}

/// Whether PostgreSQL's text can hold `text` as it is (UTF-8, no NUL).
inline bool is_pg_text(std::string_view text) noexcept {
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t n = pg_text_sequence(text, at);
    if (n == 0) return false;
    at += n;
  }
  return true;
}

/// `text` with U+FFFD in place of each byte PostgreSQL's text cannot hold:
/// for messages (errors, notes, reasons), which must be kept, not refused.
inline std::string pg_message_text(std::string_view text) {
  if (is_pg_text(text)) return std::string(text);
  std::string out;
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t n = pg_text_sequence(text, at);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++at;
    } else {
      out.append(text.substr(at, n));
      at += n;
    }
  }
  return out;
}

/// `name` as a quoted SQL identifier.
inline std::string pg_identifier(std::string_view name) {
  std::string out = "\"";
  for (const char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

/// Appends `value` as one field of COPY's text format (no delimiter).
inline void append_copy_field(std::string& out, std::string_view value) {
  for (const char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += c;
    }
  }
}

/// The values bound to a statement's $1, $2, ... as text (libpq's text
/// format), or SQL NULL. A value holding a NUL byte is refused
/// (`errc::invalid_argument`): libpq's text parameters end at the first NUL,
/// so it would be cut silently.
class pg_params {
 public:
  pg_params& text(std::string_view v) {
    if (v.find('\0') != std::string_view::npos)
      throw std::system_error(errc::invalid_argument, "parameter $" + std::to_string(values_.size() + 1) +
                                                          " holds a NUL byte, which PostgreSQL text cannot hold");
    values_.emplace_back(std::string(v));
    return *this;
  }
  pg_params& integer(std::int64_t v) {
    char digits[24];
    values_.emplace_back(std::string(digits, std::to_chars(digits, digits + sizeof digits, v).ptr));
    return *this;
  }
  pg_params& boolean(bool v) {
    values_.emplace_back(std::string(v ? "t" : "f"));
    return *this;
  }
  pg_params& null() {
    values_.emplace_back(std::nullopt);
    return *this;
  }
  pg_params& text_or_null(const std::optional<std::string>& v) { return v ? text(*v) : null(); }
  pg_params& integer_or_null(const std::optional<std::int64_t>& v) { return v ? integer(*v) : null(); }

  int size() const noexcept { return static_cast<int>(values_.size()); }
  /// Pointers for libpq, valid while this object is neither changed nor destroyed.
  std::vector<const char*> pointers() const {
    std::vector<const char*> out;
    out.reserve(values_.size());
    for (const auto& v : values_) out.push_back(v ? v->c_str() : nullptr);
    return out;
  }

 private:
  std::vector<std::optional<std::string>> values_;
};

/// One result (rows in libpq's text format).
class pg_result {
 public:
  pg_result() = default;
  explicit pg_result(PGresult* r) noexcept : r_(r) {}
  pg_result(pg_result&& other) noexcept : r_(std::exchange(other.r_, nullptr)) {}
  pg_result& operator=(pg_result&& other) noexcept {
    std::swap(r_, other.r_);
    return *this;
  }
  pg_result(const pg_result&) = delete;
  pg_result& operator=(const pg_result&) = delete;
  ~pg_result() { PQclear(r_); }

  PGresult* get() const noexcept { return r_; }
  int rows() const noexcept { return r_ == nullptr ? 0 : PQntuples(r_); }
  bool is_null(int row, int col) const noexcept { return PQgetisnull(r_, row, col) != 0; }
  std::string_view view(int row, int col) const noexcept {
    return {PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col))};
  }
  std::string text(int row, int col) const { return std::string(view(row, col)); }
  std::optional<std::string> optional_text(int row, int col) const {
    if (is_null(row, col)) return std::nullopt;
    return text(row, col);
  }
  /// An integer column (0 for NULL). Throws `errc::store_error` for text
  /// that is not one: the schema's columns always are.
  std::int64_t integer(int row, int col) const {
    const std::string_view v = view(row, col);
    std::int64_t out = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc() || end != v.data() + v.size())
      throw std::system_error(errc::store_error, "column " + std::string(PQfname(r_, col)) +
                                                     ": expected an integer, got \"" + std::string(v.substr(0, 40)) +
                                                     "\"");
    return out;
  }
  bool boolean(int row, int col) const noexcept { return view(row, col) == "t"; }

 private:
  PGresult* r_ = nullptr;
};

/// A statement this layer prepares on a connection the first time it runs
/// there (and again after a reconnection), under `name`.
struct pg_statement {
  std::string name;
  std::string sql;
};

/// How to reach the server, beyond the connection string.
struct pg_connect_settings {
  std::chrono::seconds connect_timeout{10};
  /// `statement_timeout` of the session (0: the server's).
  std::chrono::milliseconds statement_timeout{0};
  /// How long sent data may stay unacknowledged before the connection is
  /// taken for dead (TCP_USER_TIMEOUT), and keepalives: a peer that
  /// vanished fails a call instead of hanging it. 0: the system's.
  std::chrono::milliseconds tcp_user_timeout{0};
};

/// One connection to a PostgreSQL server.
class pg_connection {
 public:
  /// Connects with `conninfo` (keyword=value pairs or a postgres:// URI, as
  /// libpq reads them). `origin` names the store in every message. Throws
  /// `errc::store_error` "<origin>: cannot connect: <libpq's message>".
  pg_connection(std::string conninfo, pg_connect_settings settings, std::string origin)
      : conninfo_(std::move(conninfo)), settings_(settings), origin_(std::move(origin)) {
    const std::string timeout = std::to_string(std::max<std::int64_t>(2, settings_.connect_timeout.count()));
    const std::string user_timeout = std::to_string(settings_.tcp_user_timeout.count());
    // The store's settings first: what the connection string says wins,
    // except the encoding, which the store's text relies on.
    std::vector<const char*> keys{"connect_timeout", "fallback_application_name", "keepalives", "dbname"};
    std::vector<const char*> values{timeout.c_str(), "jobpoll", "1", conninfo_.c_str()};
    if (settings_.tcp_user_timeout.count() > 0) {
      keys.insert(keys.begin(), "tcp_user_timeout");
      values.insert(values.begin(), user_timeout.c_str());
    }
    keys.push_back("client_encoding");
    values.push_back("UTF8");
    keys.push_back(nullptr);
    values.push_back(nullptr);
    conn_ = PQconnectdbParams(keys.data(), values.data(), 1);
    if (conn_ == nullptr) throw std::system_error(errc::store_error, origin_ + ": cannot connect: out of memory");
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string message = pg_one_line(PQerrorMessage(conn_));
      PQfinish(conn_);
      conn_ = nullptr;
      throw std::system_error(errc::store_error, origin_ + ": cannot connect: " + message);
    }
    set_up();
  }
  pg_connection(const pg_connection&) = delete;
  pg_connection& operator=(const pg_connection&) = delete;
  ~pg_connection() { PQfinish(conn_); }

  PGconn* get() const noexcept { return conn_; }
  const std::string& origin() const noexcept { return origin_; }

  /// Reconnects a connection that broke (the server restarted, the network
  /// failed), between transactions: call it before a call's first statement. Throws `errc::store_error` when the
  /// server still cannot be reached.
  void ensure_open() {
    if (PQstatus(conn_) == CONNECTION_OK && !broken_) return;
    broken_ = false;
    PQreset(conn_);
    prepared_.clear();
    if (PQstatus(conn_) != CONNECTION_OK)
      throw std::system_error(errc::store_error, origin_ + ": the connection broke and reconnecting failed: " +
                                                     pg_one_line(PQerrorMessage(conn_)));
    set_up();
  }

  /// Runs `sql` without parameters (one statement or several); the last result.
  pg_result exec(std::string_view sql, std::string_view step) {
    const std::string text(sql);
    return check(pg_result(PQexec(conn_, text.c_str())), step);
  }

  /// Runs `sql` with `params`, unprepared.
  pg_result query(std::string_view sql, const pg_params& params, std::string_view step) {
    const std::string text(sql);
    const auto values = params.pointers();
    return check(
        pg_result(PQexecParams(conn_, text.c_str(), params.size(), nullptr, values.data(), nullptr, nullptr, 0)), step);
  }

  /// Runs `statement` with `params`, preparing it first on this connection.
  pg_result run(const pg_statement& statement, const pg_params& params, std::string_view step) {
    if (!prepared_.contains(statement.name)) {
      check(pg_result(PQprepare(conn_, statement.name.c_str(), statement.sql.c_str(), 0, nullptr)), step);
      prepared_.insert(statement.name);
    }
    const auto values = params.pointers();
    return check(
        pg_result(PQexecPrepared(conn_, statement.name.c_str(), params.size(), values.data(), nullptr, nullptr, 0)),
        step);
  }

  /// Whether a transaction is open (or failed and not yet rolled back).
  bool in_transaction() const noexcept {
    const auto s = PQtransactionStatus(conn_);
    return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
  }

  /// Throws `errc::store_error` "<origin>: <step>: <why>" unless `r` succeeded.
  pg_result check(pg_result r, std::string_view step) const {
    const auto status = r.get() == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(r.get());
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_COPY_IN) return r;
    // libpq may still say CONNECTION_OK after the server went away: an
    // error of libpq's own (no SQLSTATE), a connection exception (08) or a
    // shutdown (57P) marks the connection for a reset at the next call.
    const char* state = r.get() != nullptr ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
    const std::string_view code = state != nullptr ? state : "";
    if (code.empty() || code.starts_with("08") || code.starts_with("57P")) broken_ = true;
    throw std::system_error(errc::store_error,
                            origin_ + ": " + std::string(step) + ": " + pg_error_text(conn_, r.get()));
  }

 private:
  void set_up() {
    // NOTICEs ("schema ... already exists, skipping") are not the store's output.
    PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);
    // READ COMMITTED whatever the server's default: the store's fencing relies on its fresh snapshots.
    exec("SET statement_timeout = " + std::to_string(settings_.statement_timeout.count()) +
             "; SET default_transaction_isolation = 'read committed'",
         "setting up the session");
  }

  std::string conninfo_;
  pg_connect_settings settings_;
  std::string origin_;
  PGconn* conn_ = nullptr;
  std::unordered_set<std::string> prepared_;  // statements prepared on this connection
  mutable bool broken_ = false;               // reset it before the next call
};

/// A transaction: committed by `commit`, rolled back if destroyed before.
class pg_transaction {
 public:
  explicit pg_transaction(pg_connection& db) : db_(&db) {
    db.ensure_open();
    db.exec("BEGIN", "beginning a transaction");
  }
  pg_transaction(const pg_transaction&) = delete;
  pg_transaction& operator=(const pg_transaction&) = delete;
  ~pg_transaction() {
    if (db_ == nullptr || !db_->in_transaction()) return;
    PQclear(PQexec(db_->get(), "ROLLBACK"));  // a broken connection rolled back already
  }
  void commit() {
    db_->exec("COMMIT", "committing");
    db_ = nullptr;
  }

 private:
  pg_connection* db_;
};

/// COPY ... FROM STDIN in text format: rows are appended with `field` and
/// `end_row`, and sent in chunks; `finish` ends it. Destroyed before
/// `finish` (an exception), it aborts the COPY: the transaction fails.
class pg_copy {
 public:
  pg_copy(pg_connection& db, std::string_view sql, std::string step) : db_(&db), step_(std::move(step)) {
    db.exec(sql, step_);
  }
  pg_copy(const pg_copy&) = delete;
  pg_copy& operator=(const pg_copy&) = delete;
  ~pg_copy() {
    if (db_ == nullptr) return;
    PQputCopyEnd(db_->get(), "aborted by the client");
    while (PGresult* r = PQgetResult(db_->get())) PQclear(r);
  }

  /// A field (tab-separated from the previous one), or NULL.
  pg_copy& field(std::string_view value) {
    separate();
    append_copy_field(buffer_, value);
    return *this;
  }
  pg_copy& field(std::int64_t value) {
    separate();
    char digits[24];
    buffer_.append(digits, std::to_chars(digits, digits + sizeof digits, value).ptr);
    return *this;
  }
  pg_copy& null() {
    separate();
    buffer_ += "\\N";
    return *this;
  }
  void end_row() {
    buffer_ += '\n';
    first_ = true;
    if (buffer_.size() >= 64 * 1024) flush();
  }

  void finish() {
    flush();
    pg_connection* db = std::exchange(db_, nullptr);
    if (PQputCopyEnd(db->get(), nullptr) != 1) fail(db);
    // COPY's own result, then none.
    pg_result r(PQgetResult(db->get()));
    while (PGresult* more = PQgetResult(db->get())) PQclear(more);
    db->check(std::move(r), step_);
  }

 private:
  void separate() {
    if (!first_) buffer_ += '\t';
    first_ = false;
  }
  void flush() {
    if (buffer_.empty()) return;
    if (PQputCopyData(db_->get(), buffer_.data(), static_cast<int>(buffer_.size())) != 1) fail(db_);
    buffer_.clear();
  }
  [[noreturn]] void fail(pg_connection* db) {
    throw std::system_error(errc::store_error, db->origin() + ": " + step_ + ": " + pg_error_text(db->get(), nullptr));
  }

  pg_connection* db_;
  std::string step_;
  std::string buffer_;
  bool first_ = true;
};

}  // namespace jobpoll::detail
