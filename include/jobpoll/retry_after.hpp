#pragma once
// The Retry-After field (RFC 9110 §10.2.3) and HTTP-dates (RFC 9110 §5.6.7).
// Locale-independent: ASCII comparisons and <chrono> calendar arithmetic only.

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string_view>

namespace jobpoll {

/// The largest wait `parse_retry_after` returns: the whole seconds that fit in
/// std::chrono::nanoseconds (about 292 years), so the result always converts
/// to nanoseconds without overflow.
inline constexpr std::chrono::seconds max_retry_after =
    std::chrono::floor<std::chrono::seconds>(std::chrono::nanoseconds::max());

namespace detail {

inline constexpr std::array<std::string_view, 7> short_day_names{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
inline constexpr std::array<std::string_view, 7> long_day_names{"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                                "Thursday", "Friday", "Saturday"};
inline constexpr std::array<std::string_view, 12> month_names{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// The three HTTP-date forms, in the notation of `match_date`.
inline constexpr std::string_view imf_fixdate_format = "%a, %d %b %Y %T GMT";
inline constexpr std::string_view rfc850_date_format = "%A, %d-%b-%y %T GMT";
inline constexpr std::string_view asctime_date_format = "%a %b %e %T %Y";

/// Consumes text from the front; each read either succeeds and consumes, or fails.
class date_scanner {
 public:
  explicit constexpr date_scanner(std::string_view text) noexcept : rest_(text) {}

  constexpr bool literal(std::string_view expected) noexcept {
    if (!rest_.starts_with(expected)) return false;
    rest_.remove_prefix(expected.size());
    return true;
  }

  /// Exactly `count` ASCII digits.
  constexpr bool number(std::size_t count, int& value) noexcept {
    if (rest_.size() < count) return false;
    int result = 0;
    for (const char c : rest_.substr(0, count)) {
      if (c < '0' || c > '9') return false;
      result = result * 10 + (c - '0');
    }
    rest_.remove_prefix(count);
    value = result;
    return true;
  }

  /// One of `names` (case-sensitive); `index` is its position in `names`.
  template <std::size_t N>
  constexpr bool name(const std::array<std::string_view, N>& names, int& index) noexcept {
    for (std::size_t i = 0; i < N; ++i) {
      if (literal(names[i])) {
        index = static_cast<int>(i);
        return true;
      }
    }
    return false;
  }

  constexpr bool at_end() const noexcept { return rest_.empty(); }

 private:
  std::string_view rest_;
};

/// The fields of an HTTP-date, before calendar validation.
struct date_fields {
  int year = 0;  // two digits only for RFC 850 dates
  int month = 0;  // 1-12
  int day = 0;
  std::chrono::seconds time_of_day{};
};

/// Matches all of `text` against `format`, in which %a is a day name ("Sun"),
/// %A a long day name ("Sunday"), %d a 2-digit day, %e a day as 2 digits or a
/// space and a digit, %b a month name, %Y a 4-digit year, %y a 2-digit year,
/// %T hh:mm:ss (hour <= 23, minute <= 59, second <= 60 for a leap second);
/// any other character matches itself. Day names are checked for spelling
/// only, not against the date.
constexpr std::optional<date_fields> match_date(std::string_view text, std::string_view format) noexcept {
  date_scanner in{text};
  date_fields fields;
  for (std::size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      if (!in.literal(format.substr(i, 1))) return std::nullopt;
      continue;
    }
    int day_name = 0;
    int hour = 0;
    int minute = 0;
    int second = 0;
    bool ok = false;
    switch (format[++i]) {
      case 'a': ok = in.name(short_day_names, day_name); break;
      case 'A': ok = in.name(long_day_names, day_name); break;
      case 'd': ok = in.number(2, fields.day); break;
      case 'e': ok = in.literal(" ") ? in.number(1, fields.day) : in.number(2, fields.day); break;
      case 'b':
        ok = in.name(month_names, fields.month);
        ++fields.month;  // index 0 is January
        break;
      case 'Y': ok = in.number(4, fields.year); break;
      case 'y': ok = in.number(2, fields.year); break;
      case 'T':
        ok = in.number(2, hour) && in.literal(":") && in.number(2, minute) && in.literal(":") &&
             in.number(2, second) && hour <= 23 && minute <= 59 && second <= 60;
        fields.time_of_day = std::chrono::hours{hour} + std::chrono::minutes{minute} + std::chrono::seconds{second};
        break;
      default: break;
    }
    if (!ok) return std::nullopt;
  }
  if (!in.at_end()) return std::nullopt;
  return fields;
}

/// The instant of `fields`, or nullopt if they name no calendar date (Feb 30).
/// A leap second (23:59:60) is the first second of the next day.
constexpr std::optional<std::chrono::sys_seconds> to_sys_seconds(const date_fields& fields) noexcept {
  const std::chrono::year_month_day date{std::chrono::year{fields.year},
                                         std::chrono::month{static_cast<unsigned>(fields.month)},
                                         std::chrono::day{static_cast<unsigned>(fields.day)}};
  if (!date.ok()) return std::nullopt;
  return std::chrono::sys_days{date} + fields.time_of_day;
}

/// Replaces the 2-digit year of an RFC 850 date by the latest year with those
/// last two digits whose date is not more than 50 years after `now`
/// (RFC 9110 §5.6.7).
constexpr date_fields with_full_year(date_fields fields, std::chrono::sys_seconds now) noexcept {
  using namespace std::chrono;
  // Day 1 plus (day - 1) days is defined even past the month's end, so a
  // Feb 29 can be placed in time before its year is known to be a leap year.
  const auto instant_in = [&](int candidate) {
    return sys_days{year{candidate} / fields.month / 1} + days{fields.day - 1} + fields.time_of_day;
  };
  const auto limit = now + years{50};
  const int current_year = static_cast<int>(year_month_day{floor<days>(now)}.year());
  int candidate = current_year - current_year % 100 + fields.year;
  if (instant_in(candidate) > limit) {
    candidate -= 100;
  } else if (instant_in(candidate + 100) <= limit) {
    candidate += 100;
  }
  fields.year = candidate;
  return fields;
}

constexpr std::optional<std::chrono::sys_seconds> parse_http_date_seconds(std::string_view text,
                                                                          std::chrono::sys_seconds now) noexcept {
  if (const auto fields = match_date(text, imf_fixdate_format)) return to_sys_seconds(*fields);
  if (const auto fields = match_date(text, rfc850_date_format)) return to_sys_seconds(with_full_year(*fields, now));
  if (const auto fields = match_date(text, asctime_date_format)) return to_sys_seconds(*fields);
  return std::nullopt;
}

/// delay-seconds = 1*DIGIT, saturating at max_retry_after.
constexpr std::optional<std::chrono::seconds> parse_delay_seconds(std::string_view text) noexcept {
  if (text.empty()) return std::nullopt;
  constexpr auto limit = max_retry_after.count();
  std::chrono::seconds::rep value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const int digit = c - '0';
    value = value > (limit - digit) / 10 ? limit : value * 10 + digit;
  }
  return std::chrono::seconds{value};
}

constexpr std::string_view trim_ows(std::string_view text) noexcept {
  const auto is_ows = [](char c) { return c == ' ' || c == '\t'; };
  while (!text.empty() && is_ows(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_ows(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace detail

/// Parses an HTTP-date (RFC 9110 §5.6.7) in any of its three forms, exactly as
/// written (no surrounding whitespace; names case-sensitive):
///   IMF-fixdate  `Sun, 06 Nov 1994 08:49:37 GMT`
///   RFC 850      `Sunday, 06-Nov-94 08:49:37 GMT`: the two-digit year is the
///                latest one not more than 50 years after `now`
///   asctime      `Sun Nov  6 08:49:37 1994`
/// The day name must be spelt right but is not checked against the date.
/// Returns nullopt for anything else, for dates that do not exist (Feb 30,
/// hour 24, ...) and for dates outside system_clock::time_point's range.
inline std::optional<std::chrono::system_clock::time_point> parse_http_date(
    std::string_view value, std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) {
  using namespace std::chrono;
  const auto date = detail::parse_http_date_seconds(value, floor<seconds>(now));
  if (!date || *date < ceil<seconds>(system_clock::time_point::min()) ||
      *date > floor<seconds>(system_clock::time_point::max())) {
    return std::nullopt;
  }
  return time_point_cast<system_clock::duration>(*date);
}

/// Parses a Retry-After field value (RFC 9110 §10.2.3) into the wait it asks
/// for, measured from `now`. Surrounding spaces and tabs are ignored. The value
/// is either delay-seconds (1*DIGIT) or an HTTP-date (see parse_http_date); a
/// date gives the whole seconds from `now` to it, rounded up, and 0s if it is
/// not in the future. Waits saturate at max_retry_after. Returns nullopt for
/// anything else (signs, fractions, units, invalid dates, garbage).
inline std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                             std::chrono::system_clock::time_point now) {
  using namespace std::chrono;
  value = detail::trim_ows(value);
  if (const auto delay = detail::parse_delay_seconds(value)) return delay;
  const auto now_seconds = floor<seconds>(now);
  const auto date = detail::parse_http_date_seconds(value, now_seconds);
  if (!date) return std::nullopt;
  // The date is in whole seconds, so date - floor(now) is date - now rounded up.
  return std::clamp(*date - now_seconds, seconds::zero(), max_retry_after);
}

}  // namespace jobpoll
