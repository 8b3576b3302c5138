#pragma once
// The JSON codec: jobpoll's `codec` concept on nlohmann::json. A leaf: only
// code that names `json_codec` pulls in nlohmann::json (CMake target jobpoll::json).

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "jobpoll/codec.hpp"
#include "jobpoll/detail/invalid_argument.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/http.hpp"

namespace jobpoll {

namespace detail {

/// An nlohmann exception's message without its "[json.exception.<id>] " tag,
/// as one printable line (the parser quotes raw body bytes in it).
inline std::string json_error_reason(const nlohmann::json::exception& error) {
  std::string_view reason = error.what();
  if (reason.starts_with("[json.exception.")) {
    if (const auto end = reason.find("] "); end != std::string_view::npos) reason.remove_prefix(end + 2);
  }
  return body_preview(reason, reason.size());
}

/// Calls `visit(i)` for each byte `text[i]` outside JSON strings (their
/// quotes count as inside) until `visit` returns true; returns that `i`, or
/// none. A cheap scan that trusts the parser to reject what is not JSON.
template <class Visit>
std::optional<std::size_t> find_outside_strings(std::string_view text, Visit visit) {
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (visit(i)) {
      return i;
    }
  }
  return std::nullopt;
}

/// The byte of the first '[' or '{' of `text` that opens a level deeper than
/// `max_depth`, or none. Looked for before parsing, so that no deeper
/// document is ever built: copying, comparing and dumping a nlohmann::json
/// recurse once per level.
inline std::optional<std::size_t> json_too_deep_at(std::string_view text, std::size_t max_depth) {
  std::size_t depth = 0;
  return find_outside_strings(text, [&](std::size_t i) {
    const char c = text[i];
    if (c == '[' || c == '{') return ++depth > max_depth;
    if ((c == ']' || c == '}') && depth > 0) --depth;
    return false;
  });
}

/// The byte where the first number of `text` that no double holds (1e999)
/// starts, or none: where nlohmann's "number overflow" happened.
inline std::optional<std::size_t> json_number_overflow_at(std::string_view text) {
  const auto in_number = [](char c) {
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
  };
  return find_outside_strings(text, [&](std::size_t i) {
    if (!in_number(text[i]) || (i > 0 && in_number(text[i - 1]))) return false;
    std::size_t end = i;
    while (end < text.size() && in_number(text[end])) ++end;
    double number = 0;
    return std::from_chars(text.data() + i, text.data() + end, number).ec == std::errc::result_out_of_range;
  });
}

/// "nesting deeper than <max_depth> levels at byte <at>".
inline std::string too_deep_message(std::size_t max_depth, std::size_t at) {
  return "nesting deeper than " + std::to_string(max_depth) + " levels at byte " + std::to_string(at);
}

/// Why nlohmann could not parse `text`: its message, and for a number out of
/// range (which nlohmann reports without a position) the byte where it starts.
inline std::string json_parse_failure(const nlohmann::json::exception& error, std::string_view text) {
  std::string reason = json_error_reason(error);
  if (dynamic_cast<const nlohmann::json::out_of_range*>(&error) != nullptr) {
    if (const auto at = json_number_overflow_at(text)) reason += " at byte " + std::to_string(*at);
  }
  return reason;
}

/// One JSON string for a preview: at most about `limit` bytes of `text`
/// (ASCII, escaped; invalid UTF-8 as U+FFFD), so a long string costs no more
/// than the preview shows.
inline void append_preview_string(std::string& out, std::string_view text, std::size_t limit) {
  const nlohmann::json cut(std::string(text.substr(0, limit)));
  out += cut.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

/// The compact ASCII JSON text of `value` cut after `max_bytes` bytes, with
/// "..." when cut. Iterative, and it stops writing once past `max_bytes`: its
/// cost is bounded by `max_bytes`, not by the size or the depth of `value`.
inline std::string bounded_json_preview(const nlohmann::json& value, std::size_t max_bytes) {
  struct level {
    const nlohmann::json* container;
    nlohmann::json::const_iterator next;
  };
  std::vector<level> open;
  std::string out;
  const auto left = [&] { return out.size() > max_bytes ? 0 : max_bytes - out.size() + 1; };
  const auto write = [&](const nlohmann::json& v) {
    if (v.is_structured()) {
      out += v.is_object() ? '{' : '[';
      open.push_back({&v, v.cbegin()});
    } else if (v.is_string()) {
      append_preview_string(out, v.get_ref<const std::string&>(), left());
    } else {
      out += v.dump();  // a number, a boolean or null: a few bytes
    }
  };
  write(value);
  while (!open.empty() && out.size() <= max_bytes) {
    level& top = open.back();
    if (top.next == top.container->cend()) {
      out += top.container->is_object() ? '}' : ']';
      open.pop_back();
      continue;
    }
    if (top.next != top.container->cbegin()) out += ',';
    const auto at = top.next++;
    if (top.container->is_object()) {
      append_preview_string(out, at.key(), left());
      out += ':';
    }
    write(*at);  // may grow `open`: `top` is not used after this
  }
  if (out.size() <= max_bytes) return out;
  out.resize(max_bytes);
  return out + "...";
}

}  // namespace detail

/// How `json_codec` reads a body.
enum class json_body_format {
  json,             ///< as one JSON text
  text,             ///< as text: the body trimmed of ASCII whitespace becomes a JSON string, so pointer "" is it
  by_content_type,  ///< per answer: text for text/*, JSON for anything else (application/json, */*+json, none)
};

/// The format a name gives it, as description files and the jobpoll tool
/// write it: "json", "text" or "auto" (`by_content_type`); none for any other.
constexpr std::optional<json_body_format> json_body_format_named(std::string_view name) noexcept {
  if (name == "json") return json_body_format::json;
  if (name == "text") return json_body_format::text;
  if (name == "auto") return json_body_format::by_content_type;
  return std::nullopt;
}

/// `json_codec`'s settings.
struct json_codec_options {
  /// The deepest nesting of arrays and objects `decode` accepts.
  static constexpr std::size_t default_max_depth = 512;

  std::size_t max_depth = default_max_depth;        ///< levels of [ and { (a flat array is 1)
  json_body_format format = json_body_format::json;  ///< how bodies are read
};

/// The `codec` for JSON bodies, with nlohmann::json as the document type.
/// Holds only its options; every member is const and thread-safe.
class json_codec {
 public:
  using value_type = nlohmann::json;
  using options = json_codec_options;

  /// JSON bodies, nested at most 512 levels deep.
  json_codec() = default;
  /// Bodies read as `settings` says. Throws `std::invalid_argument` when
  /// `settings.max_depth` is 0 (no document but a scalar would be accepted).
  explicit json_codec(options settings) : options_(settings) {
    if (options_.max_depth == 0) detail::throw_invalid("json_codec", "max_depth must be >= 1", "0");
  }

  /// The options it was made with.
  const options& settings() const noexcept { return options_; }

  /// Reads `body` as the format says; `by_content_type` without a
  /// Content-Type reads JSON. JSON: one JSON text (RFC 8259; a UTF-8 BOM is
  /// skipped), else throws `std::system_error` with `errc::decode_error`:
  /// an empty body ("empty body is not JSON"), arrays and objects nested
  /// deeper than `max_depth` ("nesting deeper than 512 levels at byte N",
  /// found before parsing, so a deep body costs one scan and no stack), a
  /// syntax error, ill-formed UTF-8, a number out of range ("... at byte N")
  /// or trailing text. The message says what the parser found where,
  /// quoting only the text around it: a caller that holds the whole response
  /// shows its body (see `describe`). Text: a JSON string of the body
  /// trimmed of ASCII whitespace; throws `errc::decode_error` when that is
  /// not valid UTF-8 (a JSON string is Unicode; `text_codec` takes any bytes).
  value_type decode(std::string_view body) const {
    return options_.format == json_body_format::text ? decode_text(body) : decode_json(body);
  }

  /// `decode(body)`, except that `by_content_type` reads text when
  /// `content_type`'s media type is text/* and JSON otherwise
  /// (application/json, application/problem+json, none or anything else);
  /// the media type is compared without parameters and case.
  value_type decode(std::string_view body, std::string_view content_type) const {
    if (options_.format != json_body_format::by_content_type) return decode(body);
    return is_text_media_type(content_type) ? decode_text(body) : decode_json(body);
  }

  /// The start of `value`'s compact JSON text for a message: at most
  /// `max_bytes` bytes, ASCII only (other characters as \uXXXX, bytes that
  /// are not UTF-8 as U+FFFD), then "..." when cut. Its cost is bounded by
  /// `max_bytes` whatever the size or depth of `value` (see `previewing_codec`).
  std::string preview(const value_type& value, std::size_t max_bytes) const {
    return detail::bounded_json_preview(value, max_bytes);
  }

  /// The compact JSON text of `value`. Throws nlohmann::json::type_error if a
  /// string in `value` is not valid UTF-8 (never the case for decoded values).
  std::string encode(const value_type& value) const { return value.dump(); }

  /// "application/json".
  std::string_view content_type() const noexcept { return "application/json"; }

  /// The value at the RFC 6901 pointer `pointer` ("" is `value` itself,
  /// "/data/items/0/id" walks object members and array indices, "~1" is '/'
  /// and "~0" is '~' inside a name), or nullptr when nothing is there: a
  /// missing member, an index past the end (or "-"), a step into a scalar.
  /// Throws `std::invalid_argument` naming `pointer` when it is malformed
  /// (does not start with '/', or has a '~' not followed by 0 or 1).
  const value_type* find(const value_type& value, std::string_view pointer) const {
    // Checked whole first, so a malformed pointer throws whatever the
    // document holds; then walked token by token without building a
    // json_pointer (this runs for every poll answer).
    detail::check_pointer("json_codec", pointer);
    const value_type* at = &value;
    std::string unescaped;
    while (!pointer.empty()) {
      pointer.remove_prefix(1);  // the '/'
      const std::size_t end = std::min(pointer.find('/'), pointer.size());
      std::string_view token = pointer.substr(0, end);
      pointer.remove_prefix(end);
      if (token.find('~') != std::string_view::npos) {
        unescaped.clear();
        for (std::size_t i = 0; i < token.size(); ++i) {
          if (token[i] == '~') {
            unescaped += token[++i] == '0' ? '~' : '/';
          } else {
            unescaped += token[i];
          }
        }
        token = unescaped;
      }
      if (at->is_object()) {
        const auto member = at->find(token);
        if (member == at->end()) return nullptr;
        at = &*member;
      } else if (at->is_array()) {
        const auto index = array_index(token);
        if (!index || *index >= at->size()) return nullptr;
        at = &(*at)[*index];
      } else {
        return nullptr;
      }
    }
    return at;
  }

  /// A scalar as text: a string without quotes, an integer in decimal ("42"),
  /// a floating-point number as JSON writes it ("42.0", "0.5", "1e+300"),
  /// "true" or "false". None for null, arrays and objects.
  std::optional<std::string> text(const value_type& value) const {
    switch (value.type()) {
      case nlohmann::json::value_t::string: return value.get_ref<const std::string&>();
      case nlohmann::json::value_t::number_integer: return std::to_string(value.get<std::int64_t>());
      case nlohmann::json::value_t::number_unsigned: return std::to_string(value.get<std::uint64_t>());
      case nlohmann::json::value_t::number_float: return value.dump();
      case nlohmann::json::value_t::boolean: return value.get<bool>() ? "true" : "false";
      default: return std::nullopt;
    }
  }

  /// A JSON number (integer or floating-point) as a double; none for anything
  /// else, a string of digits included.
  std::optional<double> number(const value_type& value) const {
    if (!value.is_number()) return std::nullopt;
    return value.get<double>();
  }

  /// An empty JSON array, where `append_elements` collects pages.
  value_type empty_array() const { return value_type::array(); }

  /// Appends the elements of the array `from` to the array `array` (`from`
  /// may be `array` itself) and returns how many. Throws
  /// `std::invalid_argument` naming the type and showing the value when
  /// either is not an array; `array` is then unchanged.
  std::size_t append_elements(value_type& array, const value_type& from) const {
    require_array(array, "the target");
    require_array(from, "the source");
    const std::size_t count = from.size();
    // By index, with the count taken first: `from` may be `array`.
    for (std::size_t i = 0; i < count; ++i) array.push_back(from[i]);
    return count;
  }

 private:
  value_type decode_json(std::string_view body) const {
    if (body.empty()) throw std::system_error(errc::decode_error, "empty body is not JSON");
    if (const auto at = detail::json_too_deep_at(body, options_.max_depth))
      throw std::system_error(errc::decode_error, detail::too_deep_message(options_.max_depth, *at));
    try {
      return value_type::parse(body);
    } catch (const nlohmann::json::exception& error) {
      throw std::system_error(errc::decode_error, "not JSON: " + detail::json_parse_failure(error, body));
    }
  }

  static value_type decode_text(std::string_view body) {
    value_type text(std::string(detail::trim_ascii_whitespace(body)));
    try {
      // nlohmann checks UTF-8 when it writes a string, not when it stores one.
      static_cast<void>(text.dump());
    } catch (const nlohmann::json::exception& error) {
      throw std::system_error(errc::decode_error, "text body is not UTF-8: " + detail::json_error_reason(error));
    }
    return text;
  }

  // "text/plain; charset=utf-8" and "Text/CSV" are text; the rest is JSON.
  static bool is_text_media_type(std::string_view content_type) noexcept {
    const std::string_view type = detail::trim_ascii_whitespace(content_type.substr(0, content_type.find(';')));
    constexpr std::string_view text = "text/";
    if (type.size() < text.size()) return false;
    return std::equal(text.begin(), text.end(), type.begin(), [](char a, char b) {
      return a == (b >= 'A' && b <= 'Z' ? static_cast<char>(b - 'A' + 'a') : b);
    });
  }

  // An array index token: "0", or digits without a leading zero, that fits;
  // anything else ("-", "01", "x", too large) names no element.
  static std::optional<std::size_t> array_index(std::string_view token) noexcept {
    if (token.empty() || (token.size() > 1 && token.front() == '0')) return std::nullopt;
    std::size_t index = 0;
    for (char c : token) {
      if (c < '0' || c > '9') return std::nullopt;
      const auto digit = static_cast<std::size_t>(c - '0');
      if (index > (std::numeric_limits<std::size_t>::max() - digit) / 10) return std::nullopt;
      index = index * 10 + digit;
    }
    return index;
  }

  void require_array(const value_type& value, std::string_view role) const {
    if (value.is_array()) return;
    detail::throw_invalid("json_codec", "append_elements expected an array as " + std::string{role},
                          std::string{value.type_name()} + ": " + preview(value, detail::default_preview_bytes));
  }

  options options_;
};

static_assert(codec<json_codec>);
static_assert(content_type_aware_codec<json_codec>);
static_assert(previewing_codec<json_codec>);

}  // namespace jobpoll
