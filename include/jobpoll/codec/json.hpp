#pragma once
// The JSON codec: jobpoll's `codec` concept on nlohmann::json. A leaf: only
// code that names `json_codec` pulls in nlohmann::json (CMake target jobpoll::json).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

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

}  // namespace detail

/// The `codec` for JSON bodies, with nlohmann::json as the document type.
/// Stateless; every member is const and thread-safe.
class json_codec {
 public:
  using value_type = nlohmann::json;

  /// Parses `body` as one JSON text (RFC 8259; a UTF-8 BOM is skipped).
  /// Throws `std::system_error` with `errc::decode_error` when it is not one:
  /// an empty body ("empty body is not JSON"), a syntax error, ill-formed
  /// UTF-8, a number out of range or trailing text. The message says what
  /// the parser found where, quoting only the text around it: a caller that
  /// holds the whole response shows its body (see `describe`).
  value_type decode(std::string_view body) const {
    if (body.empty()) throw std::system_error(errc::decode_error, "empty body is not JSON");
    try {
      return value_type::parse(body);
    } catch (const nlohmann::json::exception& error) {
      throw std::system_error(errc::decode_error, "not JSON: " + detail::json_error_reason(error));
    }
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
    check_pointer(pointer);
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
  // RFC 6901: empty, or '/'-separated tokens in which '~' is followed by 0 or 1.
  static void check_pointer(std::string_view pointer) {
    if (!pointer.empty() && pointer.front() != '/')
      detail::throw_invalid("json_codec", "malformed JSON pointer (it must be empty or start with '/')",
                            detail::in_quotes(pointer));
    for (std::size_t i = 0; i < pointer.size(); ++i) {
      if (pointer[i] == '~' && (i + 1 == pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1')))
        detail::throw_invalid("json_codec", "malformed JSON pointer ('~' must be followed by '0' or '1')",
                              detail::in_quotes(pointer));
    }
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
                          std::string{value.type_name()} + ": " + body_preview(encode(value)));
  }
};

static_assert(codec<json_codec>);

}  // namespace jobpoll
