#pragma once
// The text codec: jobpoll's `codec` concept on plain text bodies (a job id,
// a status word such as RUNNING, a result file), for APIs that answer in
// text/plain. Needs only the standard library.

#include <charconv>
#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "jobpoll/codec.hpp"
#include "jobpoll/detail/invalid_argument.hpp"
#include "jobpoll/http.hpp"

namespace jobpoll {

/// The `codec` for text bodies: the document is the body as a string, with
/// no structure inside. Any bytes are accepted. Stateless; every member is
/// const and thread-safe.
class text_codec {
 public:
  using value_type = std::string;

  /// `body` without leading and trailing ASCII whitespace (a trailing
  /// newline is not part of a job id). Never throws but `std::bad_alloc`.
  value_type decode(std::string_view body) const { return std::string(detail::trim_ascii_whitespace(body)); }

  /// The text itself.
  std::string encode(const value_type& value) const { return value; }

  /// "text/plain; charset=utf-8".
  std::string_view content_type() const noexcept { return "text/plain; charset=utf-8"; }

  /// `&value` for the pointer "" (the whole text); nullptr for any other
  /// well-formed pointer (text has no members). Throws
  /// `std::invalid_argument` naming `pointer` when it is malformed, as
  /// `json_codec` does.
  const value_type* find(const value_type& value, std::string_view pointer) const {
    detail::check_pointer("text_codec", pointer);
    return pointer.empty() ? &value : nullptr;
  }

  /// The text itself.
  std::optional<std::string> text(const value_type& value) const { return value; }

  /// The text as a finite double when the whole text is a decimal number
  /// ("42", "-0.5", "1e3"); none otherwise ("", "42%", "0x1A", "inf", "1e999").
  std::optional<double> number(const value_type& value) const {
    double out = 0;
    const char* end = value.data() + value.size();
    const auto [stop, error] = std::from_chars(value.data(), end, out);
    if (error != std::errc{} || stop != end || !std::isfinite(out)) return std::nullopt;
    return out;
  }

  /// An empty text: text has no arrays, so nothing can be appended to it.
  value_type empty_array() const { return {}; }

  /// Always throws `std::invalid_argument`: text has no arrays, so a paged
  /// result cannot be collected with this codec.
  std::size_t append_elements(value_type&, const value_type& from) const {
    detail::throw_invalid("text_codec", "append_elements needs arrays and text has none",
                          detail::in_quotes(from, detail::default_preview_bytes));
  }

  /// `body_preview(value, max_bytes)`, without copying the text first.
  std::string preview(const value_type& value, std::size_t max_bytes) const { return body_preview(value, max_bytes); }
};

static_assert(codec<text_codec>);
static_assert(previewing_codec<text_codec>);

}  // namespace jobpoll
