#pragma once
// What every fuzz target shares: cutting one input into fields, and
// stopping the run (so libFuzzer reports it) when an invariant breaks.

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace jobpoll_fuzz {

/// Separates the fields of one input: rare in bodies and headers, easy for
/// the fuzzer to insert.
inline constexpr char separator = '\x1f';

/// `input` cut at its first `fields - 1` separators, always `fields` parts
/// (the missing ones empty); the last part keeps any further separators.
inline std::vector<std::string_view> split(std::string_view input, std::size_t fields) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < fields) {
    const auto at = input.find(separator);
    if (at == std::string_view::npos) break;
    parts.push_back(input.substr(0, at));
    input.remove_prefix(at + 1);
  }
  parts.push_back(input);
  parts.resize(fields);
  return parts;
}

/// Aborts with `what` unless `ok`: an invariant of the code under test broke.
inline void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

/// The input as text.
inline std::string_view as_text(const unsigned char* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace jobpoll_fuzz
