#pragma once
// How to talk to one kind of job API: where to submit, where the handle is,
// how to poll, where the result is, how to cancel. Plain data, no I/O.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "jobpoll/detail/url_template.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/http.hpp"

namespace jobpoll {

/// Values for the placeholders of a job's request templates, e.g.
/// `{{"site", "MAIN"}, {"startDate", "1591040159"}}`.
using job_params = std::map<std::string, std::string, std::less<>>;

/// A request with placeholders. `{name}` is replaced by the value of `name`
/// (from the `job_params`, or `handle`, `offset`, `limit` where the client
/// supplies them), percent-encoded in the URL and as is in the body and
/// headers; `{+name}` inserts the value as is everywhere (for a handle that
/// is itself a path or URL, as `Location` headers are). Only braces around a
/// plain name are placeholders, so JSON bodies pass through untouched; a
/// placeholder without a value is an `invalid_argument` error naming it.
/// A URL that starts with '/' is resolved against the submit URL's origin.
struct request_template {
  request_template() = default;
  request_template(std::string method, std::string url, std::string body = {}, http_headers headers = {})
      : method(std::move(method)), url(std::move(url)), body(std::move(body)), headers(std::move(headers)) {}

  std::string method = "GET";
  std::string url;
  std::string body;        ///< sent with the codec's content type unless `headers` set one
  http_headers headers;
  /// Form fields, in order: when there are any the body is
  /// `application/x-www-form-urlencoded` (names and expanded values
  /// percent-encoded) and `body` must be empty.
  std::vector<std::pair<std::string, std::string>> form;
};

/// Which part of a request a template is: values are percent-encoded in a URL.
enum class template_part { url, body, header };

/// `text` with its placeholders replaced by `values`, as `request_template`
/// describes. Throws `std::system_error(errc::invalid_argument)` naming a
/// placeholder without a value, the template and the names that have one:
/// callers may check templates this way before sending anything.
inline std::string expand_template(std::string_view text, const job_params& values, template_part part) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const auto open = text.find('{', i);
    if (open == std::string_view::npos) break;
    const auto close = text.find('}', open + 1);
    if (close == std::string_view::npos) break;
    const std::string_view inside = text.substr(open + 1, close - open - 1);
    const bool raw = inside.starts_with('+');
    const std::string_view name = raw ? inside.substr(1) : inside;
    out.append(text.substr(i, open - i));
    if (!detail::is_placeholder_name(name)) {
      out += '{';
      i = open + 1;
      continue;
    }
    const auto found = values.find(name);
    if (found == values.end()) {
      std::string known;
      for (const auto& entry : values) known += (known.empty() ? "" : ", ") + entry.first;
      static constexpr std::string_view part_names[] = {"URL", "body", "header"};
      throw std::system_error(errc::invalid_argument,
                              std::string(part_names[static_cast<int>(part)]) + " template \"" + std::string(text) +
                                  "\" uses {" + std::string(inside) + "}, which has no value (known: " +
                                  (known.empty() ? "none" : known) + ")");
    }
    out += raw || part != template_part::url ? found->second : detail::percent_encode(found->second);
    i = close + 1;
  }
  out.append(text.substr(i));
  return out;
}

/// The placeholder name of a job's key: `{job_key}`, the value of
/// `job_params["job_key"]`.
inline constexpr std::string_view job_key_name = "job_key";

/// Whether `text` has a placeholder `{name}` or `{+name}`, read as
/// `expand_template` reads placeholders.
inline bool uses_placeholder(std::string_view text, std::string_view name) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto open = text.find('{', i);
    if (open == std::string_view::npos) return false;
    const auto close = text.find('}', open + 1);
    if (close == std::string_view::npos) return false;
    const std::string_view inside = text.substr(open + 1, close - open - 1);
    const std::string_view found = inside.starts_with('+') ? inside.substr(1) : inside;
    if (!detail::is_placeholder_name(found)) {
      i = open + 1;
      continue;
    }
    if (found == name) return true;
    i = close + 1;
  }
  return false;
}

/// Whether any part of `request` that is expanded (its URL, body, header
/// values or form values) has a placeholder `{name}` or `{+name}`.
inline bool uses_placeholder(const request_template& request, std::string_view name) {
  if (uses_placeholder(request.url, name) || uses_placeholder(request.body, name)) return true;
  for (const auto& h : request.headers)
    if (uses_placeholder(h.value, name)) return true;
  for (const auto& field : request.form)
    if (uses_placeholder(field.second, name)) return true;
  return false;
}

/// A new job key: 32 lowercase hex digits, 128 bits from
/// `std::random_device`, so two submits never share a key by chance. Pass
/// one as `job_params["job_key"]` (and keep it) to know a job's key before
/// its submit leaves; `job_client::submit` makes one itself when the submit
/// uses `{job_key}` and the params have none. Throws what
/// `std::random_device` throws when no random source is available.
inline std::string new_job_key() {
  static constexpr char hex[] = "0123456789abcdef";
  std::random_device source;
  std::string key;
  key.reserve(32);
  for (int word = 0; word < 4; ++word) {
    const auto bits = static_cast<std::uint32_t>(source());  // random_device yields (at least) 32 bits
    for (int shift = 28; shift >= 0; shift -= 4) key += hex[(bits >> shift) & 0xfu];
  }
  return key;
}

/// Where the answer to the submit request carries the job's handle.
struct handle_source {
  enum class kind { body, header };
  kind from = kind::body;
  std::string where;  ///< a pointer into the decoded body, or a header name

  /// The text at `pointer` in the decoded body, e.g. "/data/hash" or "/job_id".
  static handle_source body(std::string pointer) { return {kind::body, std::move(pointer)}; }
  /// The value of a header, e.g. "Location" or "Operation-Location".
  static handle_source header(std::string name) { return {kind::header, std::move(name)}; }
};

/// How a paged result is read: every page is fetched until `total` items
/// have been collected, and the items of all pages are returned as one array.
struct paging {
  std::string items;               ///< pointer to a page's array of items, e.g. "/data/data"
  std::string total;               ///< pointer to the total item count, e.g. "/data/total"
  std::size_t page_size = 100;     ///< the value of {limit}
  std::size_t first_offset = 0;    ///< the value of {offset} for the first item
  /// The final poll answer already holds the first page (as the load-job
  /// contract's does): it is used, and fetching starts after its items.
  bool first_page_in_poll_answer = false;
};

/// Where the job's result is once the job has succeeded.
struct result_source {
  enum class kind { poll_answer, fetch, paged };
  kind from = kind::poll_answer;
  std::string pointer;            ///< where the result is in the answer ("" is the whole document)
  request_template request;       ///< for fetch and paged; placeholders {handle}, {offset}, {limit}
  paging pages;                   ///< for paged
  /// For fetch and paged: placeholders of `request` read from the final poll answer: name ->
  /// pointer, e.g. {"location", "/resourceLocation"} for a `request` whose
  /// URL is "{+location}", or {"file", "/output_file_id"}. A pointer with no
  /// scalar there ends the job with `decode_error` naming it.
  std::map<std::string, std::string, std::less<>> from_answer;

  /// The result is in the final poll answer, at `pointer`.
  static result_source in_poll_answer(std::string pointer = "") {
    return {kind::poll_answer, std::move(pointer), {}, {}, {}};
  }
  /// The result is fetched with `request` (e.g. GET .../jobs/{handle}/result), at `pointer`.
  static result_source fetch(request_template request, std::string pointer = "") {
    return {kind::fetch, std::move(pointer), std::move(request), {}, {}};
  }
  /// The result is every page of `request`, read as `how` says.
  static result_source paged(request_template request, paging how) {
    return {kind::paged, {}, std::move(request), std::move(how), {}};
  }
};

/// How to find the job that a submit carrying a `{job_key}` created, on a
/// server that lists jobs by a client reference (e.g. GET
/// /v1/jobs?client_ref={job_key}): after a submit whose answer was lost, the
/// job is looked up instead of submitted again.
struct job_lookup {
  request_template request;    ///< placeholders: the job_params, {job_key} included
  /// Where a 2xx answer holds the job's handle (a non-empty string or an
  /// integer): an RFC 6901 pointer into the answer, decoded with the poll
  /// phase's codec, e.g. "/jobs/0/id". Nothing (or null) there: no such job.
  std::string handle_pointer;
};

/// One kind of job API, described as data.
///
/// ```
/// jobpoll::job_description export_job;
/// export_job.submit = {"POST", base + "/transaction/load-job?site={site}"};
/// export_job.handle = jobpoll::handle_source::body("/data/hash");
/// export_job.poll = {"GET", base + "/transaction/get-job-data?hash={handle}"};
/// ```
struct job_description {
  request_template submit;  ///< placeholders: the job_params
  handle_source handle;
  request_template poll;    ///< placeholders: the job_params and {handle}
  result_source result = result_source::in_poll_answer();
  /// Sent once when the caller cancels the poll or its deadline or retry
  /// budget runs out (never after the job ended or its handle expired).
  std::optional<request_template> cancel;
  /// How long the cancel request may take, limiter wait included.
  std::chrono::nanoseconds cancel_timeout = std::chrono::seconds(10);
  /// The server returns the same job for a repeated submit carrying the same
  /// {job_key} (an `Idempotency-Key: {job_key}` header, a client reference in
  /// the body): a submit whose answer was lost (a reset after sending, a
  /// timeout) is then sent again with the same key instead of failing. The
  /// submit request must use {job_key}.
  bool idempotent_submit = false;
  /// Finds the job a submit carrying {job_key} created, when the server lists
  /// jobs by a client reference (`job_client::find`).
  std::optional<job_lookup> lookup;
};

}  // namespace jobpoll
