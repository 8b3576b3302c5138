#pragma once
// Placeholder expansion for job request templates, and resolution of a
// path-only URL against the origin of another.

#include <cctype>
#include <map>
#include <string>
#include <string_view>

#include "jobpoll/error.hpp"

namespace jobpoll::detail {

// Percent-encodes everything but RFC 3986's unreserved characters, so a
// value is one path segment or one query value whatever it contains.
inline std::string percent_encode(std::string_view value) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0xf];
    }
  }
  return out;
}

inline bool is_placeholder_name(std::string_view name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (unsigned char c : name)
    if (!(std::isalnum(c) || c == '_' || c == '.' || c == '-')) return false;
  return true;
}

enum class expansion { url, body };

// Replaces `{name}` by the value of `name` (percent-encoded in a URL, as is
// in a body) and `{+name}` by the value as is everywhere (RFC 6570's
// reserved expansion: for a handle that is itself a path or URL). Only
// braces around a plain name are placeholders, so JSON bodies such as
// {"tool":"x"} pass through untouched. A placeholder without a value throws
// system_error(invalid_argument) naming it and the template.
inline std::string expand_template(std::string_view text, const std::map<std::string, std::string, std::less<>>& values,
                                   expansion where, std::string_view what) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const auto open = text.find('{', i);
    if (open == std::string_view::npos) break;
    const auto close = text.find('}', open + 1);
    if (close == std::string_view::npos) break;
    std::string_view inside = text.substr(open + 1, close - open - 1);
    const bool raw = !inside.empty() && inside[0] == '+';
    const std::string_view name = raw ? inside.substr(1) : inside;
    out.append(text.substr(i, open - i));
    if (!is_placeholder_name(name)) {
      out += '{';
      i = open + 1;
      continue;
    }
    const auto found = values.find(name);
    if (found == values.end()) {
      std::string known;
      for (const auto& [key, value] : values) known += (known.empty() ? "" : ", ") + key;
      throw std::system_error(errc::invalid_argument, std::string(what) + " template \"" + std::string(text) +
                                                          "\" uses {" + std::string(inside) +
                                                          "}, which has no value (known: " + known + ")");
    }
    out += raw || where == expansion::body ? found->second : percent_encode(found->second);
    i = close + 1;
  }
  out.append(text.substr(i));
  return out;
}

// "scheme://authority" of an absolute URL, empty when `url` has none.
inline std::string_view url_origin(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return {};
  const auto path = url.find_first_of("/?#", scheme_end + 3);
  return url.substr(0, path);
}

// A URL that starts with '/' (a path, as Location headers often are) is
// resolved against the origin of `base`; any other is returned as is.
inline std::string resolve_url(std::string url, std::string_view base) {
  if (url.starts_with('/') && !url.starts_with("//")) {
    const auto origin = url_origin(base);
    if (!origin.empty()) return std::string(origin) + url;
  }
  return url;
}

}  // namespace jobpoll::detail
