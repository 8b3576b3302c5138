#pragma once
// One request as it travels through curl_transport: what curl reads (method,
// URL, header list, body), what it writes (header lines, body), its place in
// the transport's queue, its time limits, and the completion handler waiting
// for the response.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <curl/curl.h>

#include "jobpoll/detail/handler_op.hpp"
#include "jobpoll/detail/invalid_argument.hpp"
#include "jobpoll/http.hpp"

namespace jobpoll::detail {

inline std::string quote_for_message(std::string_view s) { return "\"" + body_preview(s, 80) + "\""; }

/// Throws `std::invalid_argument` naming the first part of `request` that
/// cannot be sent as it is: a method or header name that is not an HTTP
/// token, a header value with CR, LF or NUL (it would split the request), a
/// HEAD request with a body. The URL is curl's to judge (CURLE_URL_MALFORMAT).
inline void validate_request(const http_request& request) {
  if (!is_http_token(request.method))
    throw_invalid("curl_transport", "the method must be an HTTP token (letters, digits, !#$%&'*+-.^_`|~)",
                  quote_for_message(request.method));
  for (const http_header& h : request.headers) {
    if (!is_http_token(h.name))
      throw_invalid("curl_transport", "a header name must be an HTTP token (letters, digits, !#$%&'*+-.^_`|~)",
                    quote_for_message(h.name));
    if (h.value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
      throw_invalid("curl_transport", "the value of header \"" + h.name + "\" must not contain CR, LF or NUL",
                    quote_for_message(h.value));
  }
  if (request.method == "HEAD" && !request.body.empty())
    throw_invalid("curl_transport", "a HEAD request cannot carry a body",
                  "a body of " + std::to_string(request.body.size()) + " bytes");
}

struct curl_slist_deleter {
  void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
using curl_slist_ptr = std::unique_ptr<curl_slist, curl_slist_deleter>;

// `now + d` for a time limit: `now` when `d` is not positive (the limit has
// passed), the latest representable time when the sum would overflow (a
// deadline of nanoseconds::max() is "none" in effect, not undefined behaviour).
inline std::chrono::steady_clock::time_point saturating_add(std::chrono::steady_clock::time_point now,
                                                            std::chrono::nanoseconds d) noexcept {
  using time_point = std::chrono::steady_clock::time_point;
  if (d <= std::chrono::nanoseconds::zero()) return now;
  const auto room = std::chrono::duration_cast<std::chrono::nanoseconds>(time_point::max() - now);
  return d >= room ? time_point::max() : now + std::chrono::duration_cast<time_point::duration>(d);
}

class curl_request;
// When each queued request must stop waiting, earliest first (curl_queue.hpp).
using curl_wait_index = std::multimap<std::chrono::steady_clock::time_point, curl_request*>;

// The non-template part of a request. Built on the initiating thread, then
// touched only on the transport's strand until its completion is posted.
class curl_request {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  curl_request(const curl_request&) = delete;
  curl_request& operator=(const curl_request&) = delete;

  const std::uint64_t id;
  const std::string method;
  const std::string url;
  const std::string body;               // what CURLOPT_POSTFIELDS points into
  const bool sends_body;                // POST, PUT, PATCH, or any method with a body
  const curl_slist_ptr header_list;     // CURLOPT_HTTPHEADER
  const std::chrono::nanoseconds timeout;  // for the exchange, from the hand-off to curl
  const std::size_t max_body;
  const std::size_t max_headers;        // bytes of one header block, lines as received
  const time_point made;                // when async_request was called
  const std::optional<time_point> deadline;  // made + http_request::deadline
  // The latest it may wait in the queue: its deadline, or without one its
  // timeout (a request must not wait forever for a connection).
  const time_point wait_limit;

  // Set by the cancellation slot's handler, read on the strand: a cancel that
  // arrives before the request reaches the strand is seen there.
  std::atomic<bool> cancel_requested{false};

  // While queued (curl_queue): the FIFO links and the wait index entry.
  curl_request* next = nullptr;
  curl_request* prev = nullptr;
  curl_wait_index::iterator wait_entry;

  CURL* easy = nullptr;                 // while the request is in the multi handle
  bool deadline_cut = false;            // the deadline, not the timeout, bounds the exchange
  unsigned sends = 0;                   // times curl was about to send it (on_prereq)
  char error_buffer[CURL_ERROR_SIZE] = {};
  std::error_code callback_error;       // why a callback refused to go on
  http_response response;               // filled on success, before the completion is posted

  // Posts the handler's invocation with (ec, response) to its executor; once.
  virtual void post_completion(std::error_code ec, http_response response) = 0;
  // Destroys the request without calling its handler.
  virtual void discard() noexcept = 0;

  // CURLOPT_WRITEFUNCTION: appends to the body, up to max_body bytes.
  static std::size_t on_body(char* data, std::size_t size, std::size_t count, void* self) noexcept {
    auto& r = *static_cast<curl_request*>(self);
    const std::size_t n = size * count;
    if (r.body_.size() + n > r.max_body) {
      r.callback_error = std::make_error_code(std::errc::message_size);
      return 0;  // anything but n makes curl fail with CURLE_WRITE_ERROR
    }
    try {
      r.body_.append(data, n);
    } catch (const std::bad_alloc&) {
      r.callback_error = std::make_error_code(std::errc::not_enough_memory);
      return 0;
    }
    return n;
  }

  // CURLOPT_PREREQFUNCTION: curl calls it right before it sends the request,
  // on a new or reused connection. A second call is libcurl about to re-send
  // the request on its own (a reused connection closed before any answer, an
  // HTTP/2 stream refused, a send error on a reused connection): refused, so
  // that every request that leaves the client passes the caller's rate
  // limiter and retry rules, and a submit is never sent twice behind its back.
  static int on_prereq(void* self, char*, char*, int, int) noexcept {
    auto& r = *static_cast<curl_request*>(self);
    if (++r.sends == 1) return CURL_PREREQFUNC_OK;
    r.callback_error = std::make_error_code(std::errc::connection_reset);
    return CURL_PREREQFUNC_ABORT;  // the transfer fails with CURLE_ABORTED_BY_CALLBACK
  }

  // True once on_prereq has stopped a re-send.
  bool resend_refused() const noexcept { return sends > 1; }

  // CURLOPT_HEADERFUNCTION: one line at a time. A status line starts a new
  // header block (after "100 Continue", a proxy's CONNECT answer); the blank
  // line ends it; trailers after the body are not headers and are dropped.
  // A block larger than max_headers fails the request (message_size): memory
  // stays bounded below libcurl's own 300 KB limit, which it reports as a
  // receive error that would read as a transient network failure.
  static std::size_t on_header(char* data, std::size_t size, std::size_t count, void* self) noexcept {
    auto& r = *static_cast<curl_request*>(self);
    const std::size_t n = size * count;
    std::string_view line(data, n);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    try {
      if (line.starts_with("HTTP/")) {
        r.header_lines_.clear();
        r.header_lines_.reserve(8);  // a typical answer's headers, in one allocation
        r.in_header_block_ = true;
        r.header_bytes_ = n;
      } else if (line.empty()) {
        r.in_header_block_ = false;
      } else if (r.in_header_block_) {
        r.header_bytes_ += n;
        if (r.header_bytes_ > r.max_headers) {
          r.headers_too_large_ = true;
          r.callback_error = std::make_error_code(std::errc::message_size);
          return 0;
        }
        r.add_header_line(line);
      }
    } catch (const std::bad_alloc&) {
      r.callback_error = std::make_error_code(std::errc::not_enough_memory);
      return 0;
    }
    return n;
  }

  // Whether the headers broke a limit: ours (max_headers), or libcurl's on
  // one line (100 KB: it fails with "out of memory" while a header block is open).
  bool headers_too_large(CURLcode rc) const noexcept {
    return headers_too_large_ || (rc == CURLE_OUT_OF_MEMORY && in_header_block_);
  }

  // The received headers and body as a response with `status`.
  void take_response(int status) {
    response.status = status;
    response.headers.reserve(header_lines_.size());
    for (http_header& h : header_lines_) response.headers.add(std::move(h.name), std::move(h.value));
    response.body = std::move(body_);
  }

 protected:
  curl_request(http_request&& request, time_point made, std::chrono::nanoseconds timeout, std::size_t max_body,
               std::size_t max_headers, std::uint64_t id)
      : id(id),
        method(std::move(request.method)),
        url(std::move(request.url)),
        body(std::move(request.body)),
        sends_body(method != "HEAD" && (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")),
        header_list(make_header_list(request.headers, sends_body)),
        timeout(timeout),
        max_body(max_body),
        max_headers(max_headers),
        made(made),
        deadline(request.deadline ? std::optional<time_point>(saturating_add(made, *request.deadline)) : std::nullopt),
        wait_limit(deadline ? *deadline : saturating_add(made, timeout)) {}
  ~curl_request() = default;

 private:
  // "Name: value" lines; "Name;" is curl's way to send an empty value, and
  // "Name:" removes a header curl would add to a request with a body:
  // "Expect: 100-continue" (an extra round trip before large bodies) and,
  // without a Content-Type, curl's "application/x-www-form-urlencoded" guess.
  static curl_slist_ptr make_header_list(const http_headers& headers, bool sends_body) {
    curl_slist_ptr list;
    std::string line;
    auto append = [&](std::string_view name, std::string_view separator, std::string_view value) {
      line.assign(name).append(separator).append(value);
      curl_slist* grown = curl_slist_append(list.get(), line.c_str());
      if (grown == nullptr) throw std::bad_alloc();
      static_cast<void>(list.release());
      list.reset(grown);
    };
    for (const http_header& h : headers) {
      if (h.value.empty()) {
        append(h.name, ";", "");
      } else {
        append(h.name, ": ", h.value);
      }
    }
    if (sends_body && !headers.contains("Expect")) append("Expect", ":", "");
    if (sends_body && !headers.contains("Content-Type")) append("Content-Type", ":", "");
    return list;
  }

  void add_header_line(std::string_view line) {
    auto trim = [](std::string_view s) {
      while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
      while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
      return s;
    };
    if ((line.front() == ' ' || line.front() == '\t') && !header_lines_.empty()) {
      // Obsolete line folding (RFC 9112 section 5.2): continues the previous value.
      header_lines_.back().value.append(" ").append(trim(line));
      return;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return;  // not a header line
    header_lines_.push_back({std::string(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1)))});
  }

  std::vector<http_header> header_lines_;
  std::size_t header_bytes_ = 0;
  bool in_header_block_ = false;
  bool headers_too_large_ = false;
  std::string body_;
};

// A request holding its completion handler.
template <class Handler, class IoExecutor>
using curl_request_op = handler_op<curl_request, Handler, IoExecutor, http_response>;

}  // namespace jobpoll::detail
