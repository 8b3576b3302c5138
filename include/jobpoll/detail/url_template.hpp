#pragma once
// Percent-encoding for template values, and resolution of a path-only URL
// against the origin of another.

#include <cctype>
#include <string>
#include <string_view>

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

// A plain name: what may stand between braces as a placeholder.
inline bool is_placeholder_name(std::string_view name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (unsigned char c : name)
    if (!(std::isalnum(c) || c == '_' || c == '.' || c == '-')) return false;
  return true;
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
