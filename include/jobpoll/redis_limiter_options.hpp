#pragma once
// What a `redis_limiter` is built from: where Redis is, the name and budget
// of the shared limit, and how it behaves when Redis cannot be asked; and the
// URL form of all that (`redis://host:port/key?rate=20/15s`), which the
// `jobpoll` tool takes. Standard library and jobpoll's delay policies only:
// no hiredis, so this header is usable (and tested) without Redis.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "jobpoll/delay_policy.hpp"
#include "jobpoll/detail/duration_text.hpp"
#include "jobpoll/detail/invalid_argument.hpp"
#include "jobpoll/interval.hpp"
#include "jobpoll/jitter.hpp"

namespace jobpoll {

/// The budget every process sharing a key draws from, as the server counts
/// it (arrivals; a slot held from the grant until the answer is known, see
/// limiter_budget.hpp). Every user of one key must name the same budget: a
/// limiter that names another one is refused with the budget the key holds.
struct redis_budget {
  enum class kind : unsigned char {
    sliding_window,  ///< never more than `count` requests in any window of `period`
    token_bucket,    ///< `count` per `period` on average, bursts of up to `burst` (GCRA)
  };

  kind type = kind::sliding_window;
  std::size_t count = 20;                                      ///< requests per period (1 to 2^20)
  std::chrono::nanoseconds period = std::chrono::seconds(15);  ///< the window, or the bucket's refill period
  std::size_t burst = 0;                                       ///< token bucket only: its size (1 to 2^20)

  /// `max_starts` per `window`, strictly: the sliding window of `sliding_window_limiter`.
  static redis_budget sliding_window(std::size_t max_starts, std::chrono::nanoseconds window) {
    return {kind::sliding_window, max_starts, window, 0};
  }

  /// `tokens` per `per`, bursts of `burst`: the bucket of `token_bucket_limiter`.
  static redis_budget token_bucket(std::size_t tokens, std::chrono::nanoseconds per, std::size_t burst) {
    return {kind::token_bucket, tokens, per, burst};
  }

  /// The period in whole microseconds (the unit of Redis's TIME), rounded up.
  std::int64_t period_us() const { return std::chrono::ceil<std::chrono::microseconds>(period).count(); }

  /// How the budget is written in Redis and checked against other users of
  /// the key: "sw:<count>:<period us>" or "gcra:<count>:<period us>:<burst>".
  std::string signature() const {
    std::string s = type == kind::sliding_window ? "sw:" : "gcra:";
    s += std::to_string(count) + ":" + std::to_string(period_us());
    if (type == kind::token_bucket) s += ":" + std::to_string(burst);
    return s;
  }

  /// How far back the budget remembers a request: the window, or the time
  /// the bucket takes to fill (`burst * period / count`).
  std::chrono::nanoseconds horizon() const {
    if (type == kind::sliding_window) return period;
    return std::chrono::nanoseconds(static_cast<std::int64_t>(
        static_cast<double>(period.count()) * static_cast<double>(burst) / static_cast<double>(count)));
  }

  bool operator==(const redis_budget&) const = default;
};

/// What a `redis_limiter` does while Redis cannot be asked (refused or lost
/// connection, no answer within `request_timeout`).
enum class redis_down_rule : unsigned char {
  /// Grants nothing until Redis answers again (the default): waiters wait,
  /// reconnection is retried with `reconnect_backoff`.
  wait,
  /// Grants from an in-process limiter with `fallback_fraction` of the
  /// budget (at least one request per period), still never an unlimited
  /// burst. Each process in fallback may add that much to what the server
  /// sees; permits it grants are handed to Redis when it answers again.
  local_fallback,
};

/// What a key's state created from nothing allows at first. Redis cannot
/// tell a first use from a state lost in a restart (without persistence) or
/// a flush, and the server may have counted up to a whole budget in the
/// last window: so by default a new state holds back one window.
enum class redis_cold_start : unsigned char {
  /// The default: a new sliding-window state grants nothing for one window;
  /// a new bucket starts empty (its first token after one interval).
  hold_back,
  /// A new state grants the whole budget at once. Only right when nothing
  /// else can have sent requests under the key in the last window.
  full_budget,
};

/// A change of the connection to Redis, as `redis_limiter_options::on_event` sees it.
struct redis_limiter_event {
  enum class kind : unsigned char {
    connected,     ///< Redis answers (again)
    down,          ///< a connection attempt failed, or the connection was lost or timed out
    refused,       ///< Redis answered the limiter's script with an error that retrying cannot fix
    state_reset,   ///< the key's state was created anew (first use, or lost with a restart or flush)
  };
  kind what;
  std::string detail;  ///< what happened, for a log line
};

/// Everything a `redis_limiter` is built from. The defaults suit a quota
/// like "20 requests per 15 s" shared by a few processes on one network.
struct redis_limiter_options {
  /// A TCP host (name, IPv4 or IPv6 address; resolved asynchronously) and port...
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  /// ...or, when not empty, the path of Redis's unix socket (host and port unused).
  std::string unix_path;
  /// Sent with AUTH after connecting when `password` is not empty (`user`
  /// empty: the one-argument AUTH of Redis before 6).
  std::string user;
  std::string password;

  /// The name of the shared limit: every process using the same key (and
  /// prefix) on the same Redis shares one budget. 1 to 200 printable
  /// characters, none of '{', '}' or space.
  std::string key = "default";
  /// Prepended to the Redis keys, which are `<prefix>{<key>}:<part>`.
  std::string key_prefix = "jobpoll:limit:";

  /// The shared budget; every user of the key must name the same one.
  redis_budget budget = redis_budget::sliding_window(20, std::chrono::seconds(15));

  /// A held permit whose process stops refreshing it (the process died or
  /// lost Redis) is reclaimed this long after its last refresh, and counted
  /// as a request answered then. Live processes refresh their permits every
  /// third of it, so a request may take longer.
  std::chrono::nanoseconds hold_timeout = std::chrono::seconds(30);
  /// A process's place in the queue of waiting processes is dropped this
  /// long after its last refresh (its process is gone); waiting processes
  /// refresh it every third of it.
  std::chrono::nanoseconds ticket_timeout = std::chrono::seconds(3);

  /// Longest wait for a connection (resolution included) and for one answer.
  /// No answer within `request_timeout` counts as Redis down.
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds(2);
  std::chrono::nanoseconds request_timeout = std::chrono::seconds(2);
  /// Waits between connection attempts while Redis is down; reset once connected.
  any_delay reconnect_backoff = equal_jitter<exponential_interval>{
      exponential_interval{std::chrono::milliseconds(100), 2.0, std::chrono::seconds(5)}};

  /// What happens while Redis cannot be asked (see `redis_down_rule`).
  redis_down_rule when_down = redis_down_rule::wait;
  /// With `redis_down_rule::local_fallback`: the share of the budget this
  /// process allows itself while Redis is down, in (0, 1].
  double fallback_fraction = 0.25;

  /// What a state created from nothing allows at first (see `redis_cold_start`).
  redis_cold_start cold_start = redis_cold_start::hold_back;

  /// Called (on the limiter's strand) when the connection comes up or goes
  /// down, when Redis refuses the script and when the key's state is new.
  std::function<void(const redis_limiter_event&)> on_event;
};

namespace detail {

inline std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

// The largest period or timeout accepted: what the script's exact integer
// arithmetic (doubles below 2^53 microseconds) keeps exact, with room.
inline constexpr std::chrono::hours max_redis_period{24 * 366};

}  // namespace detail

/// Checks `o`; throws `std::invalid_argument("jobpoll::redis_limiter_options:
/// <rule>, got <value>")` for the first rule it breaks.
inline void validate(const redis_limiter_options& o) {
  constexpr std::string_view type = "redis_limiter_options";
  using std::chrono::nanoseconds;
  if (o.unix_path.empty() && o.host.empty()) detail::throw_invalid(type, "host must not be empty", "''");
  if (o.unix_path.empty() && o.port == 0) detail::throw_invalid(type, "port must be 1 to 65535", "0");
  if (o.key.empty() || o.key.size() > 200)
    detail::throw_invalid(type, "key must have 1 to 200 characters", detail::quoted(o.key));
  for (char c : o.key)
    if (c == '{' || c == '}' || static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      detail::throw_invalid(type, "key must be printable, without '{', '}' or spaces", detail::quoted(o.key));
  const redis_budget& b = o.budget;
  if (b.count == 0 || b.count > (1u << 20))
    detail::throw_invalid(type, "budget count must be 1 to 1048576", std::to_string(b.count));
  if (b.period < std::chrono::microseconds(1) || b.period > detail::max_redis_period)
    detail::throw_invalid(type, "budget period must be 1us to 366 days", detail::describe(b.period));
  if (b.type == redis_budget::kind::token_bucket) {
    if (b.burst == 0 || b.burst > (1u << 20))
      detail::throw_invalid(type, "token bucket burst must be 1 to 1048576", std::to_string(b.burst));
    // (burst - 1) * period must stay exact in the script's doubles.
    if (static_cast<double>(b.burst - 1) * static_cast<double>(b.period_us()) > 1e15)
      detail::throw_invalid(type, "token bucket burst * period must be below 1e15 microseconds",
                            std::to_string(b.burst) + " * " + detail::describe(b.period));
  }
  const auto check_duration = [&](std::string_view name, nanoseconds d, nanoseconds low) {
    if (d < low || d > detail::max_redis_period)
      detail::throw_invalid(type, std::string(name) + " must be " + detail::describe(low) + " to 366 days",
                            detail::describe(d));
  };
  check_duration("hold_timeout", o.hold_timeout, std::chrono::milliseconds(3));
  check_duration("ticket_timeout", o.ticket_timeout, std::chrono::milliseconds(3));
  check_duration("connect_timeout", o.connect_timeout, std::chrono::milliseconds(1));
  check_duration("request_timeout", o.request_timeout, std::chrono::milliseconds(1));
  if (o.hold_timeout <= o.ticket_timeout)
    detail::throw_invalid(type, "hold_timeout must be longer than ticket_timeout",
                          detail::describe(o.hold_timeout) + " <= " + detail::describe(o.ticket_timeout));
  if (!(o.fallback_fraction > 0.0 && o.fallback_fraction <= 1.0))
    detail::throw_invalid(type, "fallback_fraction must be in (0, 1]", detail::describe(o.fallback_fraction));
}

namespace detail {

// "%41" and friends decoded; none for a malformed escape.
inline std::optional<std::string> percent_decoded(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    int value = 0;
    for (std::size_t j = i + 1; j <= i + 2; ++j) {
      const char c = text[j];
      value *= 16;
      if (c >= '0' && c <= '9') {
        value += c - '0';
      } else if (c >= 'a' && c <= 'f') {
        value += c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        value += c - 'A' + 10;
      } else {
        return std::nullopt;
      }
    }
    out += static_cast<char>(value);
    i += 2;
  }
  return out;
}

// A decimal integer in [low, high]; none otherwise.
inline std::optional<std::uint64_t> parse_count(std::string_view text, std::uint64_t low, std::uint64_t high) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (value < low || value > high) return std::nullopt;
  return value;
}

// The URL as an error message may show it: a password replaced by "***".
inline std::string redacted_url(std::string_view url) {
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  const auto authority_end = url.find_first_of("/?#", scheme + 3);
  const std::string_view authority = url.substr(scheme + 3, authority_end == std::string_view::npos
                                                                ? std::string_view::npos
                                                                : authority_end - scheme - 3);
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  const auto colon = authority.find(':');
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  std::string out(url.substr(0, scheme + 3 + colon + 1));
  out += "***";
  out += url.substr(scheme + 3 + at);
  return out;
}

}  // namespace detail

/// The options a limit URL describes, on top of `defaults`:
///
///     redis://[[user]:password@]host[:port]/KEY?rate=N/DURATION[&option=value...]
///     unix:///path/to/redis.sock?key=KEY&rate=N/DURATION[&option=value...]
///
/// The budget is required: `rate=N/DURATION` (a strict sliding window, N
/// per DURATION, e.g. `rate=20/15s`) or `bucket=N/DURATION&burst=B` (a token
/// bucket). Options: `prefix=TEXT` (the Redis key prefix), `hold=DURATION`
/// (hold_timeout), `ticket=DURATION` (ticket_timeout), `timeout=DURATION`
/// (connect and request timeouts), `fallback=F` (redis_down_rule::local_fallback
/// with fraction F in (0, 1]; `fallback=none` is the wait rule),
/// `cold_start=hold|full`. The port defaults to 6379; an IPv6 host is
/// written in brackets; the user, password and key are percent-decoded.
/// Durations are written as elsewhere in jobpoll: 500ms, 15s, 1.5m.
///
/// Throws `std::invalid_argument("jobpoll::parse_redis_limit_url: <what was
/// wrong>, got '<url>'")` (the password shown as ***), also for options that
/// `validate` refuses.
inline redis_limiter_options parse_redis_limit_url(std::string_view url, redis_limiter_options defaults = {}) {
  const std::string shown = "'" + detail::redacted_url(url) + "'";
  const auto fail = [&](const std::string& what) -> void {
    detail::throw_invalid("parse_redis_limit_url", what, shown);
  };
  redis_limiter_options o = std::move(defaults);
  std::string_view rest;
  bool is_unix = false;
  if (url.starts_with("redis://")) {
    rest = url.substr(8);
  } else if (url.starts_with("unix://")) {
    rest = url.substr(7);
    is_unix = true;
  } else {
    fail("expected a URL starting with redis:// or unix://");
  }
  if (const auto hash = rest.find('#'); hash != std::string_view::npos) fail("a limit URL has no #fragment");
  std::string_view query;
  if (const auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }

  std::optional<std::string> key;
  if (is_unix) {
    if (!rest.starts_with('/')) fail("expected unix:///absolute/path/to/redis.sock");
    auto path = detail::percent_decoded(rest);
    if (!path || path->size() < 2) fail("expected unix:///absolute/path/to/redis.sock");
    o.unix_path = *path;
  } else {
    const auto slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
      const std::string_view credentials = authority.substr(0, at);
      authority = authority.substr(at + 1);
      const auto colon = credentials.find(':');
      if (colon == std::string_view::npos) fail("expected user:password@ or :password@ before the host");
      auto user = detail::percent_decoded(credentials.substr(0, colon));
      auto password = detail::percent_decoded(credentials.substr(colon + 1));
      if (!user || !password || password->empty()) fail("expected user:password@ with a non-empty password");
      o.user = *user;
      o.password = *password;
    }
    std::string_view port_text;
    if (authority.starts_with('[')) {
      const auto close = authority.find(']');
      if (close == std::string_view::npos) fail("an IPv6 host needs its closing ']'");
      o.host = std::string(authority.substr(1, close - 1));
      const std::string_view after = authority.substr(close + 1);
      if (!after.empty()) {
        if (!after.starts_with(':')) fail("expected :PORT after the IPv6 host");
        port_text = after.substr(1);
        if (port_text.empty()) fail("expected a port after ':'");
      }
    } else if (const auto colon = authority.find(':'); colon != std::string_view::npos) {
      o.host = std::string(authority.substr(0, colon));
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) fail("expected a port after ':'");
    } else {
      o.host = std::string(authority);
    }
    if (o.host.empty()) fail("expected a host after redis://");
    o.port = 6379;
    if (!port_text.empty()) {
      const auto port = detail::parse_count(port_text, 1, 65535);
      if (!port) fail("the port must be a number from 1 to 65535");
      o.port = static_cast<std::uint16_t>(*port);
    }
    o.unix_path.clear();
    if (path.empty()) fail("expected the key as the path, e.g. redis://127.0.0.1:6379/reporting-api");
    if (path.find('/') != std::string_view::npos) fail("expected one path segment (the key), found a '/' in it");
    key = detail::percent_decoded(path);
    if (!key) fail("the key has a malformed %-escape");
  }

  std::optional<std::string_view> rate;
  std::optional<std::string_view> bucket;
  std::optional<std::string_view> burst;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos) fail("expected name=value in the query, found '" + std::string(pair) + "'");
    const std::string_view name = pair.substr(0, eq);
    const std::string_view value = pair.substr(eq + 1);
    const auto duration = [&]() {
      auto d = detail::parse_duration(value);
      if (!d || *d <= std::chrono::nanoseconds::zero())
        fail(std::string(name) + " must be a duration > 0 like 500ms, 15s or 1m, found '" + std::string(value) + "'");
      return *d;
    };
    if (name == "rate") {
      rate = value;
    } else if (name == "bucket") {
      bucket = value;
    } else if (name == "burst") {
      burst = value;
    } else if (name == "key") {
      if (!is_unix) fail("key= is for unix:// URLs; a redis:// URL names the key in its path");
      key = detail::percent_decoded(value);
      if (!key) fail("the key has a malformed %-escape");
    } else if (name == "prefix") {
      auto prefix = detail::percent_decoded(value);
      if (!prefix) fail("the prefix has a malformed %-escape");
      o.key_prefix = *prefix;
    } else if (name == "hold") {
      o.hold_timeout = duration();
    } else if (name == "ticket") {
      o.ticket_timeout = duration();
    } else if (name == "timeout") {
      o.connect_timeout = o.request_timeout = duration();
    } else if (name == "fallback") {
      if (value == "none") {
        o.when_down = redis_down_rule::wait;
        continue;
      }
      double f = 0;
      std::size_t used = 0;
      try {
        f = std::stod(std::string(value), &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != value.size() || !(f > 0.0 && f <= 1.0))
        fail("fallback must be a fraction in (0, 1] or none, found '" + std::string(value) + "'");
      o.when_down = redis_down_rule::local_fallback;
      o.fallback_fraction = f;
    } else if (name == "cold_start") {
      if (value == "hold") {
        o.cold_start = redis_cold_start::hold_back;
      } else if (value == "full") {
        o.cold_start = redis_cold_start::full_budget;
      } else {
        fail("cold_start must be hold or full, found '" + std::string(value) + "'");
      }
    } else {
      fail("unknown option '" + std::string(name) +
           "' (known: rate, bucket, burst, key, prefix, hold, ticket, timeout, fallback, cold_start)");
    }
  }
  if (!key) fail("expected the key: unix:///path/to/redis.sock?key=NAME&rate=N/DURATION");
  o.key = *key;

  const auto read_rate = [&](std::string_view name, std::string_view text) {
    const auto slash = text.find('/');
    const auto n = detail::parse_count(text.substr(0, slash), 1, std::uint64_t{1} << 20);
    const auto d = slash == std::string_view::npos ? std::nullopt : detail::parse_duration(text.substr(slash + 1));
    if (!n || !d || *d <= std::chrono::nanoseconds::zero())
      fail(std::string(name) + " must be N/DURATION like 20/15s (N from 1 to 1048576), found '" + std::string(text) +
           "'");
    return std::pair<std::size_t, std::chrono::nanoseconds>(static_cast<std::size_t>(*n), *d);
  };
  if (rate && bucket) fail("give rate= (a sliding window) or bucket= (a token bucket), not both");
  if (rate) {
    if (burst) fail("burst= goes with bucket=, not rate=");
    const auto [n, d] = read_rate("rate", *rate);
    o.budget = redis_budget::sliding_window(n, d);
  } else if (bucket) {
    if (!burst) fail("bucket= needs burst=B, the largest burst");
    const auto [n, d] = read_rate("bucket", *bucket);
    const auto b = detail::parse_count(*burst, 1, std::uint64_t{1} << 20);
    if (!b) fail("burst must be a number from 1 to 1048576, found '" + std::string(*burst) + "'");
    o.budget = redis_budget::token_bucket(n, d, static_cast<std::size_t>(*b));
  } else {
    fail("expected the budget: rate=N/DURATION (e.g. rate=20/15s) or bucket=N/DURATION&burst=B");
  }
  try {
    validate(o);
  } catch (const std::invalid_argument& e) {
    fail(std::string(e.what()).substr(std::string_view("jobpoll::").size()));
  }
  return o;
}

}  // namespace jobpoll
