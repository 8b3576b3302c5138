#pragma once
// The value grammar of jobpoll's command-line programs (the `jobpoll` tool
// and examples/batch_run), as CLI11 validators and option adders, so that a
// value means the same in both and every bad value is refused by CLI11 with
// the same words: "--flag: expected <what>, got '<value>'" (CLI11 puts the
// flag in front; its ParseError is the programs' usage error, exit 64).
//
//   durations  "500ms", "2s", "1.5s", "2m", "1h", or "0"; at most 1000h
//   counts     whole decimal numbers ("010" is ten, never octal)
//   rates      "N/DURATION": at most N requests in any DURATION, e.g. "20/15s"
//
// Each value has one reader (`read_duration`, `read_count`, `read_rate`)
// that says what is wrong with a text or gives its value. The validators
// are those readers' messages, and the `add_*` options store the readers'
// values. CLI11's own conversions are not used for these: they read
// integers with strtoull's base 0 ("010" is 8), and its AsNumberWithUnit
// hands on a fractional result printed with six significant digits.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <iterator>
#include <jobpoll/codec.hpp>
#include <jobpoll/detail/duration_text.hpp>
#include <jobpoll/detail/url_template.hpp>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace cli_values {

/// Why a text is not a value: the message after "--flag: ".
struct refusal {
  std::string message;
};

/// The value of a text, or why it is not one.
template <class T>
using reading = std::variant<T, refusal>;

inline refusal expected(std::string_view what, std::string_view got) {
  return {"expected " + std::string(what) + ", got '" + std::string(got) + "'"};
}

// A validator from a reader: the reader's message, or none.
template <class Reader>
CLI::Validator validator_of(Reader read) {
  return CLI::Validator(
      [read](std::string& text) {
        auto value = read(text);
        if (auto* refused = std::get_if<refusal>(&value)) return std::move(refused->message);
        return std::string();
      },
      "");
}

// Adds an option whose text `read` turns into the value `store` keeps. The
// check runs first, so `store` only ever sees a value the reader accepts.
template <class Reader, class Store>
CLI::Option* add_read_option(CLI::App& app, const std::string& name, const std::string& help, Reader read,
                             Store store) {
  return app
      .add_option_function<std::string>(
          name, [read, store](const std::string& text) { store(std::get<0>(read(text))); }, help)
      ->check(validator_of(read));
}

// The same for a repeatable option: `store` gets each value, in order.
template <class Reader, class Store>
CLI::Option* add_read_list(CLI::App& app, const std::string& name, const std::string& help, Reader read, Store store) {
  return app
      .add_option_function<std::vector<std::string>>(
          name,
          [read, store](const std::vector<std::string>& texts) {
            for (const auto& text : texts) store(std::get<0>(read(text)));
          },
          help)
      ->check(validator_of(read));
}

// --- durations -------------------------------------------------------------------

/// The longest duration: far beyond any use here, far below an overflow.
inline constexpr std::chrono::hours longest_duration{1000};

enum class zero_duration { allowed, refused };

/// "500ms", "2s", "1.5s", "2m", "1h", or "0" (the one duration without a
/// unit): the grammar of job description files (`jobpoll::detail::parse_duration`),
/// here at most `longest_duration`.
inline reading<std::chrono::nanoseconds> read_duration(std::string_view text,
                                                       zero_duration zero = zero_duration::allowed) {
  using namespace std::chrono_literals;
  constexpr std::string_view what = "a duration like 500ms, 2s, 1.5s or 2m (units: ns, us, ms, s, m, h)";
  const std::optional<std::chrono::nanoseconds> value = jobpoll::detail::parse_duration(text);
  if (!value) return expected(what, text);
  if (*value > longest_duration) return expected("a duration of at most 1000h", text);
  if (*value == 0ns && zero == zero_duration::refused) return expected("a duration > 0 like 500ms or 2s", text);
  return *value;
}

/// A DURATION option into `target`: a `std::chrono::nanoseconds`, or an
/// optional one that stays empty unless the option is given. Give it a
/// default with `->default_val("2s")`: the default passes the same check.
template <class Target>
CLI::Option* add_duration(CLI::App& app, const std::string& name, Target& target, const std::string& help,
                          zero_duration zero = zero_duration::allowed) {
  return add_read_option(
             app, name, help, [zero](std::string_view text) { return read_duration(text, zero); },
             [&target](std::chrono::nanoseconds value) { target = value; })
      ->type_name("DURATION")
      ->run_callback_for_default();
}

// --- counts ----------------------------------------------------------------------

/// A whole decimal number in [minimum, maximum].
inline reading<std::size_t> read_count(std::string_view text, std::size_t minimum,
                                       std::size_t maximum = std::numeric_limits<std::size_t>::max()) {
  const std::string what = minimum == 0   ? "a non-negative integer"
                           : minimum == 1 ? "a positive integer"
                                          : "an integer >= " + std::to_string(minimum);
  // Only digits: from_chars alone would take a leading '-' into an error of its own.
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos) return expected(what, text);
  std::size_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range || value > maximum)
    return expected(what + " of at most " + std::to_string(maximum), text);
  if (value < minimum) return expected(what, text);
  return value;
}

/// A count option into `target` (a std::size_t, or an optional one that
/// stays empty unless the option is given).
template <class Target>
CLI::Option* add_count(CLI::App& app, const std::string& name, Target& target, const std::string& help,
                       std::size_t minimum, std::size_t maximum = std::numeric_limits<std::size_t>::max()) {
  return add_read_option(
             app, name, help, [minimum, maximum](std::string_view text) { return read_count(text, minimum, maximum); },
             [&target](std::size_t value) { target = value; })
      ->type_name("N")
      ->run_callback_for_default();
}

// --- rates -----------------------------------------------------------------------

/// At most `requests` requests in any `window`.
struct rate {
  std::size_t requests = 0;
  std::chrono::nanoseconds window{};
};

/// "20/15s": a positive count, '/', a duration > 0.
inline reading<rate> read_rate(std::string_view text) {
  constexpr std::string_view what = "N/DURATION like 20/15s";
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) return expected(what, text);
  const auto requests = read_count(text.substr(0, slash), 1);
  if (requests.index() != 0) return expected(std::string(what) + " (N a positive integer)", text);
  const auto window = read_duration(text.substr(slash + 1), zero_duration::refused);
  if (window.index() != 0) return expected(std::string(what) + " (DURATION > 0 like 500ms, 15s or 1m)", text);
  return rate{std::get<0>(requests), std::get<0>(window)};
}

inline CLI::Option* add_rate(CLI::App& app, const std::string& name, std::optional<rate>& target,
                             const std::string& help) {
  return add_read_option(app, name, help, read_rate, [&target](rate value) { target = value; })
      ->type_name("N/DURATION");
}

// --- URLs ------------------------------------------------------------------------

/// An http:// or https:// URL.
inline reading<std::string> read_http_url(std::string_view text) {
  if (!text.starts_with("http://") && !text.starts_with("https://"))
    return expected("an http:// or https:// URL", text);
  return std::string(text);
}

inline CLI::Validator http_url() { return validator_of(read_http_url); }

// --- the jobpoll tool's other values ----------------------------------------------

/// A number > 0 (e.g. a progress scale); `what` says which.
inline reading<double> read_positive_number(std::string_view text, std::string_view what) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(value) || value <= 0)
    return expected(what, text);
  return value;
}

/// One of `choices`, e.g. "error" or "pending".
inline CLI::Validator one_of(std::vector<std::string> choices) {
  return validator_of([choices = std::move(choices)](std::string_view text) -> reading<std::string> {
    std::string what;
    for (std::size_t i = 0; i < choices.size(); ++i) {
      if (choices[i] == text) return std::string(text);
      what += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
    }
    return expected(what, text);
  });
}

/// An RFC 6901 JSON pointer: empty (the whole document) or "/a/b", '~' only as ~0 or ~1.
inline reading<std::string> read_pointer(std::string_view text) {
  if (!jobpoll::detail::pointer_syntax_error(text).empty()) return expected("a JSON pointer like /data/status (empty or starting with '/'; '~' only as ~0 or ~1)", text);
  return std::string(text);
}

inline CLI::Validator json_pointer() { return validator_of(read_pointer); }

/// An HTTP method: letters only, e.g. GET, POST or DELETE.
inline CLI::Validator http_method() {
  return validator_of([](std::string_view text) -> reading<std::string> {
    const bool ok = !text.empty() && text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") ==
                                         std::string_view::npos;
    if (!ok) return expected("an HTTP method like GET, POST or DELETE", text);
    return std::string(text);
  });
}

/// "pass,done": status values, none empty (CLI11's own delimiter would drop
/// the empty item of "pass,,done" silently).
inline reading<std::vector<std::string>> read_status_list(std::string_view text) {
  std::vector<std::string> values;
  for (std::size_t start = 0;;) {
    const auto comma = std::min(text.find(',', start), text.size());
    if (comma == start) return expected("a comma-separated list of status values like pass,done", text);
    values.emplace_back(text.substr(start, comma - start));
    if (comma == text.size()) return values;
    start = comma + 1;
  }
}

/// "Name: value", split at the first ':', the value without its leading blanks.
inline reading<std::pair<std::string, std::string>> read_header(std::string_view text) {
  const auto colon = text.find(':');
  const std::string_view name = text.substr(0, std::min(colon, text.size()));
  if (colon == std::string_view::npos || name.empty() || name.find_first_of(" \t\r\n") != std::string_view::npos)
    return expected("\"Name: value\"", text);
  const std::string_view value = text.substr(std::min(text.find_first_not_of(" \t", colon + 1), text.size()));
  return std::pair{std::string(name), std::string(value)};
}

/// What the name of a NAME=VALUE must be.
enum class name_rule {
  placeholder,  ///< a template placeholder: letters, digits, '_', '.', '-', starting with a letter or '_'
  any,          ///< anything but empty (e.g. a form field)
};

/// "name=value", split at the first '='; `form` is how --help writes it
/// ("name=value", "NAME=POINTER").
inline reading<std::pair<std::string, std::string>> read_name_value(std::string_view text, name_rule rule,
                                                                    std::string_view form = "name=value") {
  const auto equals = text.find('=');
  if (equals == std::string_view::npos) return expected(form, text);
  const std::string_view name = text.substr(0, equals);
  if (rule == name_rule::placeholder && !jobpoll::detail::is_placeholder_name(name))
    return expected(
        std::string(form) + " with a name of letters, digits, '_', '.' and '-', starting with a letter or '_'", text);
  if (name.empty()) return expected(std::string(form) + " with a non-empty name", text);
  return std::pair{std::string(name), std::string(text.substr(equals + 1))};
}

/// "name=/pointer": a placeholder filled from the value at a JSON pointer.
inline reading<std::pair<std::string, std::string>> read_name_pointer(std::string_view text) {
  auto named = read_name_value(text, name_rule::placeholder, "NAME=POINTER");
  if (auto* pair = std::get_if<0>(&named); pair && read_pointer(pair->second).index() != 0)
    return expected("NAME=POINTER with a JSON pointer like /resourceLocation", text);
  return named;
}

}  // namespace cli_values
