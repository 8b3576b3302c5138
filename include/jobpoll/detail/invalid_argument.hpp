#pragma once
// How jobpoll's policies and budgets reject a bad constructor argument:
// `std::invalid_argument("jobpoll::<type>: <rule>, got <value>")`, with
// durations in whole nanoseconds so no value is rounded away.

#include <charconv>
#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>

namespace jobpoll::detail {

template <class Rep, class Period>
std::string describe(std::chrono::duration<Rep, Period> value) {
  return std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(value).count()) + "ns";
}

inline std::string describe(double value) {
  char buffer[64];
  return {buffer, std::to_chars(buffer, buffer + sizeof buffer, value).ptr};
}

/// Throws `std::invalid_argument("jobpoll::<type>: <rule>, got <got>")`.
[[noreturn]] inline void throw_invalid(std::string_view type, std::string_view rule, const std::string& got) {
  std::string message{"jobpoll::"};
  message.append(type).append(": ").append(rule).append(", got ").append(got);
  throw std::invalid_argument(message);
}

}  // namespace jobpoll::detail
