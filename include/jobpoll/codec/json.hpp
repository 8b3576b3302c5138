#pragma once
// The JSON codec: jobpoll's `codec` concept on nlohmann::json. A leaf: only
// code that names `json_codec` pulls in nlohmann::json (CMake target jobpoll::json).

#include <cstddef>
#include <cstdint>
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
    const auto parsed = parse_pointer(pointer);
    try {
      return value.contains(parsed) ? &value.at(parsed) : nullptr;
    } catch (const nlohmann::json::out_of_range&) {
      // An array index too large for size_t: nothing can be there.
      return nullptr;
    }
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
  static nlohmann::json::json_pointer parse_pointer(std::string_view pointer) {
    try {
      return nlohmann::json::json_pointer(std::string{pointer});
    } catch (const nlohmann::json::parse_error& error) {
      detail::throw_invalid("json_codec", "malformed JSON pointer (" + detail::json_error_reason(error) + ")",
                            detail::in_quotes(pointer));
    }
  }

  void require_array(const value_type& value, std::string_view role) const {
    if (value.is_array()) return;
    detail::throw_invalid("json_codec", "append_elements expected an array as " + std::string{role},
                          std::string{value.type_name()} + ": " + body_preview(encode(value)));
  }
};

static_assert(codec<json_codec>);

}  // namespace jobpoll
