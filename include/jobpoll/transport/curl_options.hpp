#pragma once
// curl_options, the settings of curl_transport, and how the transport checks
// them and derives its transfer cap. Apart from curl.hpp so that the engine
// (detail/curl_multi.hpp) and the public class can both see them.

#include <chrono>
#include <cstddef>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>

#include "jobpoll/detail/invalid_argument.hpp"
#include "jobpoll/transport/detail/curl_request.hpp"

namespace jobpoll {

/// How a `curl_transport` talks to servers. Checked by the transport's
/// constructor, which throws `std::invalid_argument` naming a bad field.
struct curl_options {
  /// How long the exchange of a request (connect, send, receive) may take
  /// when `http_request::timeout` is empty, counted from when the request
  /// leaves the transport's queue for libcurl. Positive.
  std::chrono::nanoseconds default_timeout{std::chrono::seconds(30)};
  /// How long connecting (TCP and TLS) may take, within the request's timeout. Positive.
  std::chrono::nanoseconds connect_timeout{std::chrono::seconds(10)};
  /// Verify the server's certificate and host name. Turn off only for a
  /// server whose certificate you cannot check otherwise (prefer `ca_file`).
  bool verify_tls = true;
  /// A PEM file of CA certificates to verify servers with; empty: the system's default.
  std::string ca_file;
  /// Offer HTTP/2 over TLS (used when the server agrees, HTTP/1.1 otherwise);
  /// plain-text http:// always uses HTTP/1.1. False: HTTP/1.1 everywhere.
  bool http2 = true;
  /// At most this many connections to one host at a time; 0: no limit.
  /// Transfers beyond a host's connections wait inside libcurl (their timeout
  /// runs there): keep `max_active_transfers` within what the host's
  /// connections can carry.
  long max_connections_per_host = 0;
  /// At most this many connections in all; 0: no limit. Also sets the
  /// derived `max_active_transfers`.
  long max_total_connections = 0;
  /// HTTP/2: at most this many requests at once on one connection
  /// (CURLMOPT_MAX_CONCURRENT_STREAMS; a server may allow fewer). Positive.
  long max_concurrent_streams = 100;
  /// At most this many requests are handed to libcurl at once; the others
  /// wait in the transport's own FIFO queue, where they hold no libcurl
  /// handle, cost O(1) each, and their `timeout` does not run yet. 0:
  /// derived, so that libcurl never has to queue a transfer itself (its
  /// pending list costs O(length) per request): `max_total_connections`
  /// when that is set, and once a server has answered over HTTP/2 (with
  /// `http2` on) `max_total_connections` × `max_concurrent_streams`; without
  /// a connection limit, `default_max_active_transfers`. Whether a server
  /// multiplexes is only known once it answers, hence the growth: plain
  /// http:// is always HTTP/1.1 and one transfer per connection.
  std::size_t max_active_transfers = 0;
  /// The User-Agent header of every request that does not set its own.
  std::string user_agent = "jobpoll/0.1.0";
  /// The largest response body accepted, counted after content decoding
  /// (gzip, br, ...). A larger one fails the request with
  /// `std::errc::message_size` ("Message too long"). Positive.
  std::size_t max_response_bytes = std::size_t{64} << 20;
  /// The largest block of response headers accepted (status line and
  /// header lines as received); one line may in any case not exceed
  /// libcurl's 100 KB. More fails the request with `std::errc::message_size`,
  /// a permanent error, rather than libcurl's own 300 KB limit's receive
  /// error, which would be retried. Positive.
  std::size_t max_header_bytes = std::size_t{64} << 10;
  /// Called with an account of each failed request that the
  /// `std::error_code` it completes with cannot carry: curl's own
  /// (CURLOPT_ERRORBUFFER, e.g. "Failed to connect to 127.0.0.1 port 9 after
  /// 0 ms: Couldn't connect to server") or the transport's (how long a
  /// request waited before its deadline left it unsent, that a deadline cut
  /// an exchange, that a reused connection closed and the request was not
  /// re-sent, the body limit): log it to tell one failure from another.
  /// `error` is the code the request completes with; not called for
  /// cancelled requests. Runs on the transport's strand before the
  /// completion is posted; must not block, and must not throw (an exception
  /// terminates the program). Empty: no call.
  std::function<void(std::string_view method, std::string_view url, std::error_code error, std::string_view detail)>
      on_error;

  /// The transfer cap when neither `max_active_transfers` nor
  /// `max_total_connections` sets one: enough for a busy host, few enough
  /// that libcurl's per-transfer costs stay flat.
  static constexpr std::size_t default_max_active_transfers = 256;
};

namespace detail {

inline curl_options validated(curl_options options) {
  using std::chrono::nanoseconds;
  if (options.default_timeout <= nanoseconds::zero())
    throw_invalid("curl_options", "default_timeout must be positive", describe(options.default_timeout));
  if (options.connect_timeout <= nanoseconds::zero())
    throw_invalid("curl_options", "connect_timeout must be positive", describe(options.connect_timeout));
  if (options.max_connections_per_host < 0)
    throw_invalid("curl_options", "max_connections_per_host must be 0 (no limit) or positive",
                  std::to_string(options.max_connections_per_host));
  if (options.max_total_connections < 0)
    throw_invalid("curl_options", "max_total_connections must be 0 (no limit) or positive",
                  std::to_string(options.max_total_connections));
  if (options.max_concurrent_streams <= 0 || options.max_concurrent_streams > std::numeric_limits<int>::max())
    throw_invalid("curl_options", "max_concurrent_streams must be positive (at most 2^31 - 1)",
                  std::to_string(options.max_concurrent_streams));
  if (options.max_response_bytes == 0) throw_invalid("curl_options", "max_response_bytes must be positive", "0");
  if (options.max_header_bytes == 0) throw_invalid("curl_options", "max_header_bytes must be positive", "0");
  if (options.user_agent.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
    throw_invalid("curl_options", "user_agent must not contain CR, LF or NUL", quote_for_message(options.user_agent));
  return options;
}

// How many transfers the transport hands to libcurl at once (see
// curl_options::max_active_transfers), before and after a server has been
// seen to multiplex.
inline std::size_t transfer_cap(const curl_options& options, bool multiplexing) noexcept {
  if (options.max_active_transfers > 0) return options.max_active_transfers;
  if (options.max_total_connections == 0) return curl_options::default_max_active_transfers;
  const auto connections = static_cast<std::size_t>(options.max_total_connections);
  const auto streams =
      options.http2 && multiplexing ? static_cast<std::size_t>(options.max_concurrent_streams) : std::size_t{1};
  // Both are below 2^63 and 2^31: saturate rather than wrap.
  return connections > std::numeric_limits<std::size_t>::max() / streams ? std::numeric_limits<std::size_t>::max()
                                                                          : connections * streams;
}

}  // namespace detail
}  // namespace jobpoll
