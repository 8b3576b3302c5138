#pragma once
// The codec concept: turns bodies into values and back, and reads values by
// pointer, so job clients and field matchers work with any document model.

#include <concepts>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "jobpoll/detail/invalid_argument.hpp"
#include "jobpoll/http.hpp"

namespace jobpoll {

/// A document model for request and response bodies.
///
/// - `value_type`: the decoded document (e.g. `nlohmann::json`).
/// - `decode(std::string_view body)` returns a `value_type` or throws an
///   exception whose `what()` says what is wrong with the body.
/// - `encode(const value_type&)` returns the body text.
/// - `content_type()` the media type sent with encoded bodies.
/// - `find(const value_type&, std::string_view pointer)` the value at a
///   pointer (RFC 6901 syntax: "" is the whole document, "/data/hash"), or
///   nullptr when there is none there. A malformed pointer throws.
/// - `text(const value_type&)` a scalar as text: strings without quotes,
///   numbers and booleans in their usual spelling; none for null, arrays and
///   objects. This is how handles and status values are read.
/// - `number(const value_type&)` a number, none when it is not one.
/// - `append_elements(value_type& array, const value_type& from)` appends the
///   elements of the array `from` to `array` (which starts as
///   `empty_array()`) and returns how many; throws when `from` is not an array.
///
/// Two optional members, used when present (see `content_type_aware_codec`
/// and `previewing_codec`):
/// - `decode(std::string_view body, std::string_view content_type)` decodes
///   knowing the answer's Content-Type;
/// - `preview(const value_type&, std::size_t max_bytes)` the start of the
///   value's encoding for a message, built in time and memory bounded by
///   `max_bytes` rather than by the value's size.
template <class C>
concept codec = std::semiregular<typename C::value_type> &&
                requires(const C& c, std::string_view body, const typename C::value_type& v,
                         typename C::value_type& out) {
                  { c.decode(body) } -> std::same_as<typename C::value_type>;
                  { c.encode(v) } -> std::convertible_to<std::string>;
                  { c.content_type() } -> std::convertible_to<std::string_view>;
                  { c.find(v, body) } -> std::same_as<const typename C::value_type*>;
                  { c.text(v) } -> std::same_as<std::optional<std::string>>;
                  { c.number(v) } -> std::same_as<std::optional<double>>;
                  { c.empty_array() } -> std::same_as<typename C::value_type>;
                  { c.append_elements(out, v) } -> std::same_as<std::size_t>;
                };

/// The document type of a codec.
template <codec C>
using codec_value_t = typename C::value_type;

/// A codec whose decoding depends on the answer's Content-Type (the field
/// value as received, e.g. "text/plain; charset=utf-8", empty when the answer
/// has none): `decode(body, content_type)` returns a `value_type` or throws
/// as `decode(body)` does.
template <class C>
concept content_type_aware_codec =
    codec<C> && requires(const C& c, std::string_view body, std::string_view content_type) {
                  { c.decode(body, content_type) } -> std::same_as<typename C::value_type>;
                };

/// A codec with a bounded preview: `preview(value, max_bytes)` is one
/// printable line of at most about `max_bytes` bytes (plus a mark when cut)
/// showing the start of `value`'s encoding, produced without encoding the
/// whole value, so a huge or deep document costs no more than a small one.
template <class C>
concept previewing_codec = codec<C> && requires(const C& c, const typename C::value_type& v, std::size_t max_bytes) {
                                         { c.preview(v, max_bytes) } -> std::convertible_to<std::string>;
                                       };

namespace detail {

/// What `body_preview` shows of a body by default, in bytes.
inline constexpr std::size_t default_preview_bytes = 200;

/// `codec.decode(body, content_type)` when the codec reads Content-Types,
/// else `codec.decode(body)`: how a client decodes every answer.
template <codec C>
codec_value_t<C> decode_answer(const C& codec, std::string_view body, std::string_view content_type) {
  if constexpr (content_type_aware_codec<C>) {
    return codec.decode(body, content_type);
  } else {
    return codec.decode(body);
  }
}

/// `value` for a message: `codec.preview(value, max_bytes)` when the codec
/// has one, else `body_preview(codec.encode(value), max_bytes)`.
template <codec C>
std::string codec_preview(const C& codec, const codec_value_t<C>& value,
                          std::size_t max_bytes = default_preview_bytes) {
  if constexpr (previewing_codec<C>) {
    return codec.preview(value, max_bytes);
  } else {
    return body_preview(codec.encode(value), max_bytes);
  }
}

/// `text` without leading and trailing ASCII whitespace (space, \t, \n,
/// \v, \f, \r): how text bodies are read.
constexpr std::string_view trim_ascii_whitespace(std::string_view text) noexcept {
  constexpr std::string_view space = " \t\n\v\f\r";
  const auto first = text.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

/// `name` as one RFC 6901 reference token ('~' as "~0", '/' as "~1"): how
/// messages name an object member in a pointer to where a problem is.
inline std::string pointer_token(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (const char c : name) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

/// Why `pointer` is not an RFC 6901 pointer, or "" when it is one.
constexpr std::string_view pointer_syntax_error(std::string_view pointer) noexcept {
  if (!pointer.empty() && pointer.front() != '/') return "must be empty or start with '/'";
  for (std::size_t i = 0; i < pointer.size(); ++i) {
    if (pointer[i] == '~' && (i + 1 == pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1'))) {
      return "must follow every '~' with 0 or 1 (~0 is '~', ~1 is '/')";
    }
  }
  return {};
}

/// A pointer as messages show it ("" is the whole body).
inline std::string pointer_name(std::string_view pointer) {
  return pointer.empty() ? std::string{"\"\" (the whole body)"} : std::string{pointer};
}

/// Throws `std::invalid_argument("jobpoll::<codec_name>: malformed JSON
/// pointer ...")` unless `pointer` is an RFC 6901 pointer: empty, or
/// '/'-separated tokens in which every '~' is followed by 0 or 1.
inline void check_pointer(std::string_view codec_name, std::string_view pointer) {
  if (const auto problem = pointer_syntax_error(pointer); !problem.empty())
    throw_invalid(codec_name, "malformed JSON pointer (it " + std::string(problem) + ")", in_quotes(pointer));
}

}  // namespace detail

}  // namespace jobpoll
