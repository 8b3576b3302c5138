#pragma once
// One Redis reply as a plain value, copied out of hiredis's reader (which
// frees its own reply when the callback returns), so the decisions that
// read replies are tested without hiredis or a server.

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace jobpoll::detail::redis {

struct reply {
  enum class kind : unsigned char { nil, integer, string, status, error, array };

  kind type = kind::nil;
  long long integer = 0;
  std::string text;            // string, status or error
  std::vector<reply> elements;  // array

  static reply nil() { return {}; }
  static reply of_integer(long long v) { return {kind::integer, v, {}, {}}; }
  static reply of_string(std::string s) { return {kind::string, 0, std::move(s), {}}; }
  static reply of_status(std::string s) { return {kind::status, 0, std::move(s), {}}; }
  static reply of_error(std::string s) { return {kind::error, 0, std::move(s), {}}; }
  static reply of_array(std::vector<reply> e) { return {kind::array, 0, {}, std::move(e)}; }

  bool is_error() const noexcept { return type == kind::error; }
};

// The reply as an error message shows it: bounded, whatever it holds.
inline std::string describe(const reply& r, std::size_t depth = 0) {
  constexpr std::size_t max_text = 120;
  constexpr std::size_t max_elements = 8;
  const auto shorten = [](const std::string& s) {
    return s.size() <= max_text ? s : s.substr(0, max_text) + "...(" + std::to_string(s.size()) + " bytes)";
  };
  switch (r.type) {
    case reply::kind::nil: return "nil";
    case reply::kind::integer: return std::to_string(r.integer);
    case reply::kind::string: return "\"" + shorten(r.text) + "\"";
    case reply::kind::status: return "+" + shorten(r.text);
    case reply::kind::error: return "-" + shorten(r.text);
    case reply::kind::array: {
      if (depth >= 3) return "[...]";
      std::string out = "[";
      for (std::size_t i = 0; i < r.elements.size() && i < max_elements; ++i)
        out += (i ? ", " : "") + describe(r.elements[i], depth + 1);
      if (r.elements.size() > max_elements) out += ", ...(" + std::to_string(r.elements.size()) + " elements)";
      return out + "]";
    }
  }
  return "?";
}

}  // namespace jobpoll::detail::redis
