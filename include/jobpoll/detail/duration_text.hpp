#pragma once
// Durations as people write them in files and on command lines ("500ms",
// "1.5s", "2m"): one grammar for job description files and the jobpoll tool.

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>

namespace jobpoll::detail {

/// The duration `text` names: digits, an optional fraction and a unit (ns,
/// us, ms, s, m, h), or "0"; none for anything else or beyond
/// nanoseconds::max(). Exact to the nanosecond for whole numbers of units.
inline std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  if (text == "0") return std::chrono::nanoseconds::zero();
  std::size_t i = 0;
  std::int64_t whole = 0;
  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    if (whole > (max - (text[i] - '0')) / 10) return std::nullopt;
    whole = whole * 10 + (text[i] - '0');
  }
  if (i == 0) return std::nullopt;
  double fraction = 0.0;
  if (i < text.size() && text[i] == '.') {
    const std::size_t first = ++i;
    double scale = 0.1;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, scale /= 10) fraction += (text[i] - '0') * scale;
    if (i == first) return std::nullopt;
  }
  static constexpr std::pair<std::string_view, std::int64_t> units[] = {
      {"ns", 1}, {"us", 1'000}, {"ms", 1'000'000},
      {"s", 1'000'000'000}, {"m", 60'000'000'000}, {"h", 3'600'000'000'000}};
  const std::string_view unit = text.substr(i);
  for (const auto& [name, nanoseconds] : units) {
    if (unit != name) continue;
    if (whole > max / nanoseconds) return std::nullopt;
    const auto part = static_cast<std::int64_t>(std::llround(fraction * static_cast<double>(nanoseconds)));
    if (whole * nanoseconds > max - part) return std::nullopt;
    return std::chrono::nanoseconds{whole * nanoseconds + part};
  }
  return std::nullopt;
}

}  // namespace jobpoll::detail
