#pragma once
// The codec concept: turns bodies into values and back, and reads values by
// pointer, so job clients and field matchers work with any document model.

#include <concepts>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

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

}  // namespace jobpoll
