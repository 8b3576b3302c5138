#pragma once
// One HTTP exchange as plain values: what every transport takes and returns,
// and how a response is described in error messages.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jobpoll {

/// One header line. Names compare case-insensitively (RFC 9110).
struct http_header {
  std::string name;
  std::string value;
};

namespace detail {
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

/// Whether `s` is an RFC 9110 token: what a method or a header name may be
/// (letters, digits and !#$%&'*+-.^_`|~, at least one).
inline bool is_http_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}
}  // namespace detail

/// Header lines in the order they were sent or received; a name may repeat.
class http_headers {
 public:
  http_headers() = default;
  http_headers(std::initializer_list<http_header> lines) : lines_(lines) {}

  /// Room for `n` lines without reallocating.
  void reserve(std::size_t n) { lines_.reserve(n); }

  /// Appends a line (keeps earlier lines of the same name).
  void add(std::string name, std::string value) { lines_.push_back({std::move(name), std::move(value)}); }

  /// Replaces every line named `name` with one line.
  void set(std::string name, std::string value) {
    erase(name);
    add(std::move(name), std::move(value));
  }

  /// Removes every line named `name`.
  void erase(std::string_view name) {
    std::erase_if(lines_, [&](const http_header& h) { return detail::iequals(h.name, name); });
  }

  /// The value of the first line named `name` (case-insensitive), if any.
  std::optional<std::string_view> find(std::string_view name) const noexcept {
    for (const auto& h : lines_)
      if (detail::iequals(h.name, name)) return std::string_view(h.value);
    return std::nullopt;
  }

  bool contains(std::string_view name) const noexcept { return find(name).has_value(); }
  auto begin() const noexcept { return lines_.begin(); }
  auto end() const noexcept { return lines_.end(); }
  std::size_t size() const noexcept { return lines_.size(); }
  bool empty() const noexcept { return lines_.empty(); }

 private:
  std::vector<http_header> lines_;
};

/// A request as a transport sends it.
struct http_request {
  std::string method = "GET";
  std::string url;  ///< absolute: scheme://host[:port]/path[?query]
  http_headers headers;
  std::string body;
  /// The exchange (connect, send, receive) must finish within this long
  /// from when the transport starts sending it, else it fails with
  /// `asio::error::timed_out`. Time spent waiting in the transport's own
  /// queue does not count. None: the transport's default.
  std::optional<std::chrono::nanoseconds> timeout;
  /// The latest the request may end, from the `async_request` call, queue
  /// included: a request still queued then completes with `errc::not_sent`
  /// (it never left the client, so it is safe to retry, even a submit); one
  /// being exchanged then fails with `asio::error::timed_out`. A job's
  /// deadline reaches the transport through this. None: no bound but `timeout`.
  std::optional<std::chrono::nanoseconds> deadline;
};

/// A response as a transport received it. Any status, 4xx and 5xx included,
/// is a response and not a transport error: status policies decide what it means.
struct http_response {
  int status = 0;
  http_headers headers;
  std::string body;

  /// 2xx.
  bool ok() const noexcept { return status >= 200 && status < 300; }
};

/// The start of a body for a message: at most `limit` bytes, control and
/// non-ASCII bytes as \xNN, and "... (N bytes)" when cut, so an HTML error
/// page or binary garbage stays one readable line.
inline std::string body_preview(std::string_view body, std::size_t limit = 200) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(body.size(), limit) + 24);
  for (std::size_t i = 0; i < body.size() && i < limit; ++i) {
    auto c = static_cast<unsigned char>(body[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    }
  }
  if (body.size() > limit) out += "... (" + std::to_string(body.size()) + " bytes)";
  return out;
}

namespace detail {
/// `text` in double quotes, as one printable line (see `body_preview`).
inline std::string in_quotes(std::string_view text, std::size_t limit = 200) {
  return '"' + body_preview(text, limit) + '"';
}
}  // namespace detail

/// "HTTP 503, body: <preview>" (or "HTTP 204, empty body"), for error messages.
inline std::string describe(const http_response& response, std::size_t limit = 200) {
  std::string out = "HTTP " + std::to_string(response.status);
  if (response.body.empty()) return out + ", empty body";
  return out + ", body: " + body_preview(response.body, limit);
}

}  // namespace jobpoll
