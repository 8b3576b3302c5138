// jobpoll: submits a REST job described by flags, polls it until it ends and
// prints its result as one line of JSON. `jobpoll --help` documents every
// flag, the exit codes and two worked examples.
//
// The flags become a `job_description`, a `field_status` policy and
// `poll_options`; a `job_client` on the libcurl transport does the rest.
// SIGINT and SIGTERM cancel the job through the coroutine's cancellation
// slot, which makes the client send the --cancel-url request first.

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/this_coro.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <jobpoll/codec/json.hpp>
#include <jobpoll/detail/url_template.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/interval.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/job_description.hpp>
#include <jobpoll/observer.hpp>
#include <jobpoll/poll_options.hpp>
#include <jobpoll/sliding_window_limiter.hpp>
#include <jobpoll/transport/curl.hpp>

namespace {

using namespace std::chrono_literals;
using json_status = jobpoll::field_status<jobpoll::json_codec>;
using cli_client = jobpoll::job_client<jobpoll::curl_transport, jobpoll::json_codec, json_status>;

// The exit codes, as --help lists them.
constexpr int exit_succeeded = 0;
constexpr int exit_job_failed = 1;
constexpr int exit_timeout = 2;
constexpr int exit_error = 3;
constexpr int exit_cancelled = 4;
constexpr int exit_usage = 64;

constexpr std::string_view footer_text = R"(Durations are a number and a unit: 500ms, 2s, 1.5s, 2m, 1h (0 needs none).
Templates take {name} placeholders from --param (percent-encoded in URLs), {handle}
once the job is submitted, {offset} and {limit} in --page-url; {+name} inserts a value
as is (for a handle that is itself a URL or path). A URL that starts with '/' is
resolved against the origin of --submit.

Exit codes:
  0   the job succeeded; its result is printed on stdout as one line of JSON
  1   the job failed; its failure payload (the last poll answer) is printed on stdout
  2   timeout: the --timeout deadline passed or the --retries ran out
  3   any other error: HTTP error, undecodable answer, unknown status, expired handle,
      transport failure
  4   cancelled by SIGINT or SIGTERM (the --cancel-url request is sent first)
  64  usage error: an unknown flag or a bad value

Examples (a job server on http://127.0.0.1:PORT, e.g. tests/server/job_server.py):

  # A job API: POST /v1/jobs answers 202 with a Location; GET it until it completes;
  # Ctrl-C sends DELETE to the same URL.
  jobpoll --submit http://127.0.0.1:PORT/v1/jobs \
      --data '{"tool": "blast", "params": {"query": "ACGT"}, "steps": 3}' \
      --handle-header Location --status-pointer /status --success completed \
      --failure failed,cancelled --pending pending,running --progress-pointer /progress \
      --hint-pointer /eta_seconds --failure-detail-pointer /error \
      --result-pointer /result --cancel-url '{+handle}' --interval 500ms --timeout 60s

  # A reporting export: POST load-job gives a hash; get-job-data says working, then
  # pass with the first page of the result; the other pages are fetched after it.
  # At most 20 requests in any 15 s.
  jobpoll --submit 'http://127.0.0.1:PORT/transaction/load-job?startDate={start}&endDate={end}&site={site}' \
      --param start=1591040159 --param end=1591126559 --param site=MAIN \
      --handle-pointer /data/hash --poll '/transaction/get-job-data?hash={handle}' \
      --status-pointer /data/status --success pass --failure fail --pending working \
      --failure-detail-pointer /data/message \
      --page-url '/transaction/get-job-data?hash={handle}&offset={offset}&limit={limit}' \
      --items-pointer /data/data --total-pointer /data/total --page-size 10 \
      --first-page-in-poll --rate 20/15s --interval 2s --timeout 300s)";

/// A flag or value the tool cannot use; the message names the flag and the value.
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void bad_value(std::string_view flag, std::string_view expected, std::string_view got) {
  throw usage_error(std::string(flag) + ": expected " + std::string(expected) + ", got '" + std::string(got) + "'");
}

// --- values --------------------------------------------------------------------

std::chrono::nanoseconds parse_duration(std::string_view flag, std::string_view text) {
  constexpr std::string_view expected = "a duration like 500ms, 2s, 1.5s or 2m";
  if (text == "0") return 0ns;
  const auto unit_at = std::min(text.find_first_not_of("0123456789."), text.size());
  const std::string_view number = text.substr(0, unit_at);
  const std::string_view unit = text.substr(unit_at);
  double value = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value, std::chars_format::fixed);
  if (number.empty() || ec != std::errc{} || end != number.data() + number.size()) bad_value(flag, expected, text);
  double unit_ns = 0;
  if (unit == "ms") {
    unit_ns = 1e6;
  } else if (unit == "s") {
    unit_ns = 1e9;
  } else if (unit == "m") {
    unit_ns = 60e9;
  } else if (unit == "h") {
    unit_ns = 3600e9;
  } else {
    bad_value(flag, std::string(expected) + " (units: ms, s, m, h)", text);
  }
  const double ns = value * unit_ns;
  // 10^18 ns is about 31 years: anything longer is a typo, and would overflow.
  if (!(ns < 1e18)) bad_value(flag, "a duration shorter than 31 years", text);
  return std::chrono::nanoseconds(std::llround(ns));
}

std::size_t parse_count(std::string_view flag, std::string_view text, std::size_t minimum) {
  std::size_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < minimum)
    bad_value(flag, minimum == 0 ? "a non-negative integer" : "a positive integer", text);
  return value;
}

double parse_scale(std::string_view flag, std::string_view text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(value) || value <= 0)
    bad_value(flag, "a number > 0: 1 when progress is a fraction, 100 when it is a percentage", text);
  return value;
}

// "20/15s": at most 20 requests in any 15 seconds.
std::pair<std::size_t, std::chrono::nanoseconds> parse_rate(std::string_view flag, std::string_view text) {
  constexpr std::string_view expected = "N/DURATION like 20/15s";
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) bad_value(flag, expected, text);
  const std::string_view count = text.substr(0, slash);
  std::size_t n = 0;
  const auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
  if (count.empty() || ec != std::errc{} || end != count.data() + count.size() || n == 0)
    bad_value(flag, std::string(expected) + " (N a positive integer)", text);
  std::chrono::nanoseconds window;
  try {
    window = parse_duration(flag, text.substr(slash + 1));
  } catch (const usage_error&) {
    bad_value(flag, std::string(expected) + " (DURATION like 500ms, 15s or 1m)", text);
  }
  if (window <= 0ns) bad_value(flag, std::string(expected) + " (DURATION > 0)", text);
  return {n, window};
}

// An RFC 6901 pointer: empty (the whole document) or "/a/b", '~' only as ~0 or ~1.
std::string check_pointer(std::string_view flag, std::string text) {
  bool ok = text.empty() || text.front() == '/';
  for (std::size_t i = 0; ok && i < text.size(); ++i)
    if (text[i] == '~') ok = i + 1 < text.size() && (text[i + 1] == '0' || text[i + 1] == '1');
  if (!ok) bad_value(flag, "a JSON pointer like /data/status (empty or starting with '/'; '~' only as ~0 or ~1)", text);
  return text;
}

std::vector<std::string> parse_list(std::string_view flag, std::string_view text) {
  std::vector<std::string> values;
  std::size_t start = 0;
  while (true) {
    const auto comma = std::min(text.find(',', start), text.size());
    if (comma == start) bad_value(flag, "a comma-separated list of status values like pass,done", text);
    values.emplace_back(text.substr(start, comma - start));
    if (comma == text.size()) return values;
    start = comma + 1;
  }
}

std::string check_method(std::string_view flag, std::string text) {
  const bool ok = !text.empty() && std::all_of(text.begin(), text.end(),
                                               [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); });
  if (!ok) bad_value(flag, "an HTTP method like GET, POST or DELETE", text);
  return text;
}

bool is_placeholder_name(std::string_view name) {
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  auto other = [&](char c) { return letter(c) || (c >= '0' && c <= '9') || c == '.' || c == '-'; };
  return !name.empty() && letter(name.front()) && std::all_of(name.begin(), name.end(), other);
}

jobpoll::http_header parse_header(std::string_view flag, std::string_view text) {
  const auto colon = text.find(':');
  const std::string_view name = text.substr(0, std::min(colon, text.size()));
  const bool token = !name.empty() && name.find_first_of(" \t\r\n") == std::string_view::npos;
  if (colon == std::string_view::npos || !token) bad_value(flag, "\"Name: value\"", text);
  std::string_view value = text.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  return {std::string(name), std::string(value)};
}

void add_param(std::string_view flag, std::string_view text, jobpoll::job_params& params) {
  const auto equals = text.find('=');
  if (equals == std::string_view::npos) bad_value(flag, "name=value", text);
  const std::string name(text.substr(0, equals));
  if (!is_placeholder_name(name))
    bad_value(flag, "name=value with a name of letters, digits, '_', '.' and '-', starting with a letter or '_'", text);
  if (name == "handle" || name == "offset" || name == "limit")
    throw usage_error(std::string(flag) + ": '" + name +
                      "' is set by jobpoll itself (the job handle, and the offset and limit of a page), got '" +
                      std::string(text) + "'");
  if (!params.emplace(name, std::string(text.substr(equals + 1))).second)
    throw usage_error(std::string(flag) + ": '" + name + "' given twice, got '" + std::string(text) + "'");
}

std::string read_data(std::string_view flag, const std::string& text) {
  if (!text.starts_with('@')) return text;
  const std::string path = text.substr(1);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw usage_error(std::string(flag) + ": cannot read file '" + path + "' (from '" + text + "')");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// --- the command line ----------------------------------------------------------

// Every flag as typed; `make_plan` turns them into checked values.
struct flags {
  std::string submit;
  std::string method = "POST";
  std::string data;
  std::vector<std::string> headers;
  std::vector<std::string> params;
  std::string handle_pointer;
  std::string handle_header;
  std::string poll;
  std::string status_pointer;
  std::string success;
  std::string failure;
  std::string pending;
  std::string unknown = "error";
  std::string progress_pointer;
  std::string progress_scale = "1";
  std::string hint_pointer;
  std::string failure_detail_pointer;
  std::string result_pointer;
  std::string result_url;
  std::string page_url;
  std::string items_pointer;
  std::string total_pointer;
  std::string page_size = "100";
  std::string first_offset = "0";
  bool first_page_in_poll = false;
  std::string cancel_url;
  std::string cancel_method = "DELETE";
  std::string interval = "2s";
  std::string timeout = "300s";
  std::string initial_delay = "0";
  std::string attempt_timeout;
  std::string retries = "5";
  std::string rate;
  std::string resume;
  bool insecure = false;
  bool quiet = false;
};

void define_flags(CLI::App& app, flags& f) {
  app.footer(std::string(footer_text));
  app.get_formatter()->column_width(38);

  const std::string submit = "Submit";
  app.add_option("--submit", f.submit, "URL the job is submitted to (required unless --resume)")
      ->type_name("URL")
      ->group(submit);
  app.add_option("--method", f.method, "HTTP method of the submit request")
      ->type_name("METHOD")
      ->capture_default_str()
      ->group(submit);
  app.add_option("--data", f.data,
                 "submit body, or @FILE to read it from a file (sent as application/json unless a "
                 "--header sets Content-Type)")
      ->type_name("BODY|@FILE")
      ->group(submit);
  app.add_option("-H,--header", f.headers, "\"Name: value\" sent with every request (repeatable)")
      ->type_name("HEADER")
      ->group(submit);
  app.add_option("--param", f.params, "name=value for the {name} placeholders of URLs, body and headers (repeatable)")
      ->type_name("NAME=VALUE")
      ->group(submit);

  const std::string handle = "Handle (exactly one, unless --resume)";
  app.add_option("--handle-pointer", f.handle_pointer,
                 "JSON pointer to the handle in the submit answer, e.g. /data/hash")
      ->type_name("POINTER")
      ->group(handle);
  app.add_option("--handle-header", f.handle_header, "header of the submit answer that holds the handle, e.g. Location")
      ->type_name("NAME")
      ->group(handle);

  const std::string poll = "Poll";
  app.add_option("--poll", f.poll,
                 "URL template of the poll request, e.g. /transaction/get-job-data?hash={handle} "
                 "(default with --handle-header: {+handle}; required otherwise)")
      ->type_name("TEMPLATE")
      ->group(poll);

  const std::string status = "Status";
  app.add_option("--status-pointer", f.status_pointer,
                 "JSON pointer to the job's status in each poll answer, e.g. /data/status (required)")
      ->type_name("POINTER")
      ->group(status);
  app.add_option("--success", f.success, "status values that mean the job succeeded (required)")
      ->type_name("A,B")
      ->group(status);
  app.add_option("--failure", f.failure, "status values that mean the job failed")->type_name("A,B")->group(status);
  app.add_option("--pending", f.pending, "status values that mean the job is still running")
      ->type_name("A,B")
      ->group(status);
  app.add_option("--unknown", f.unknown, "what a status in none of the lists means: error (stop at once) or pending")
      ->type_name("error|pending")
      ->capture_default_str()
      ->group(status);
  app.add_option("--progress-pointer", f.progress_pointer, "JSON pointer to the job's progress in pending answers")
      ->type_name("POINTER")
      ->group(status);
  app.add_option("--progress-scale", f.progress_scale,
                 "progress value that means done: 1 (a fraction) or 100 (a percentage)")
      ->type_name("N")
      ->capture_default_str()
      ->group(status);
  app.add_option("--hint-pointer", f.hint_pointer,
                 "JSON pointer to the server's estimate of seconds until the next poll; it replaces --interval")
      ->type_name("POINTER")
      ->group(status);
  app.add_option("--failure-detail-pointer", f.failure_detail_pointer,
                 "JSON pointer to the failure reason, shown in the error message")
      ->type_name("POINTER")
      ->group(status);

  const std::string result = "Result (default: the whole final poll answer)";
  app.add_option("--result-pointer", f.result_pointer,
                 "JSON pointer to the result in the final poll answer, or in the "
                 "--result-url answer; \"\" is the whole answer")
      ->type_name("POINTER")
      ->group(result);
  app.add_option("--result-url", f.result_url,
                 "URL template of a request that fetches the result, e.g. /v1/jobs/{handle}/result")
      ->type_name("TEMPLATE")
      ->group(result);
  app.add_option("--page-url", f.page_url,
                 "URL template of one page of a paged result, with {offset} and {limit}; "
                 "the pages' items are printed as one array")
      ->type_name("TEMPLATE")
      ->group(result);
  app.add_option("--items-pointer", f.items_pointer, "JSON pointer to a page's item array (required with --page-url)")
      ->type_name("POINTER")
      ->group(result);
  app.add_option("--total-pointer", f.total_pointer, "JSON pointer to the total item count (required with --page-url)")
      ->type_name("POINTER")
      ->group(result);
  app.add_option("--page-size", f.page_size, "the {limit} of each page")
      ->type_name("N")
      ->capture_default_str()
      ->group(result);
  app.add_option("--first-offset", f.first_offset, "the {offset} of the first item")
      ->type_name("N")
      ->capture_default_str()
      ->group(result);
  app.add_flag("--first-page-in-poll", f.first_page_in_poll,
               "the final poll answer holds the first page: use it and fetch the rest")
      ->group(result);

  const std::string cancel = "Cancel";
  app.add_option("--cancel-url", f.cancel_url,
                 "URL template of the request that cancels the job, e.g. "
                 "/v1/jobs/{handle}; sent on SIGINT/SIGTERM and when the deadline or the retries run out")
      ->type_name("TEMPLATE")
      ->group(cancel);
  app.add_option("--cancel-method", f.cancel_method, "HTTP method of the cancel request")
      ->type_name("METHOD")
      ->capture_default_str()
      ->group(cancel);

  const std::string timing = "Timing";
  app.add_option("--interval", f.interval, "wait between polls that say pending")
      ->type_name("DURATION")
      ->capture_default_str()
      ->group(timing);
  app.add_option("--timeout", f.timeout, "deadline for the whole job, submit to result (at least one poll happens)")
      ->type_name("DURATION")
      ->capture_default_str()
      ->group(timing);
  app.add_option("--initial-delay", f.initial_delay, "wait before the first poll")
      ->type_name("DURATION")
      ->capture_default_str()
      ->group(timing);
  app.add_option("--attempt-timeout", f.attempt_timeout,
                 "limit of one request; a poll that takes longer is retried (default: none)")
      ->type_name("DURATION")
      ->group(timing);
  app.add_option("--retries", f.retries,
                 "transient failures in a row tolerated (429, 5xx, connection reset, attempt timeout)")
      ->type_name("N")
      ->capture_default_str()
      ->group(timing);
  app.add_option("--rate", f.rate,
                 "at most N requests in any DURATION, shared by every request, e.g. 20/15s (default: no limit)")
      ->type_name("N/DURATION")
      ->group(timing);

  const std::string other = "Other";
  app.add_option("--resume", f.resume,
                 "poll this existing handle (printed as \"submitted: handle ...\") instead of submitting")
      ->type_name("HANDLE")
      ->group(other);
  app.add_flag("--insecure", f.insecure, "do not verify TLS certificates")->group(other);
  app.add_flag("--quiet", f.quiet, "no progress lines on stderr (the handle and errors are still printed)")
      ->group(other);
}

// What the flags describe, checked.
struct plan {
  jobpoll::job_description description;
  jobpoll::job_params params;
  std::optional<std::string> resume;
  json_status status;
  jobpoll::poll_options options;
  std::optional<std::pair<std::size_t, std::chrono::nanoseconds>> rate;
  bool insecure = false;
  bool quiet = false;
};

// Checks a request template before anything is sent: its placeholders all
// have values (so a typo in --poll cannot strand a job that was already
// submitted), and its URL is absolute, a path on the --submit origin, or a
// raw placeholder that holds one. The expansion is the job client's own, so
// this check and the requests sent later cannot disagree.
void check_template(std::string_view flag, const std::string& url, const jobpoll::job_params& params,
                    std::initializer_list<std::string_view> supplied, bool has_origin) {
  const bool absolute = url.starts_with("http://") || url.starts_with("https://");
  if (!absolute && !url.starts_with("{+") && !url.starts_with('/'))
    bad_value(flag, "an http:// or https:// URL, a /path on the --submit origin, or {+handle}", url);
  if (url.starts_with('/') && !has_origin)
    throw usage_error(std::string(flag) + ": the path '" + url +
                      "' needs --submit for its origin (give a full URL or add --submit when resuming)");
  jobpoll::job_params values = params;
  for (auto name : supplied) values.emplace(std::string(name), "x");
  try {
    static_cast<void>(jobpoll::expand_template(url, values, jobpoll::template_part::url));
  } catch (const std::system_error& e) {
    throw usage_error(std::string(flag) + ": " + e.what() + "; give placeholders with --param NAME=VALUE");
  }
}

plan make_plan(const CLI::App& app, const flags& f) {
  auto given = [&](const char* name) { return app.count(name) > 0; };
  jobpoll::job_params params;
  for (const auto& p : f.params) add_param("--param", p, params);

  const bool resuming = given("--resume");
  if (resuming && f.resume.empty()) bad_value("--resume", "a job handle", f.resume);
  if (!resuming && !given("--submit"))
    throw usage_error("--submit is required (or --resume HANDLE to poll an existing job)");
  if (!given("--submit")) {
    for (const char* flag : {"--method", "--data"})
      if (given(flag)) throw usage_error(std::string(flag) + " needs --submit");
  }

  jobpoll::job_description d;
  const bool has_origin = given("--submit");
  if (has_origin) {
    if (!f.submit.starts_with("http://") && !f.submit.starts_with("https://"))
      bad_value("--submit", "an http:// or https:// URL", f.submit);
    check_template("--submit", f.submit, params, {}, true);
    d.submit = {check_method("--method", f.method), f.submit, read_data("--data", f.data)};
    try {
      static_cast<void>(
          jobpoll::expand_template(d.submit.body, params, jobpoll::template_part::body));
    } catch (const std::system_error& e) {
      throw usage_error(std::string("--data: ") + e.what() + "; give placeholders with --param NAME=VALUE");
    }
  }
  jobpoll::http_headers headers;
  for (const auto& h : f.headers) {
    jobpoll::http_header header = parse_header("--header", h);
    try {
      static_cast<void>(
          jobpoll::expand_template(header.value, params, jobpoll::template_part::header));
    } catch (const std::system_error& e) {
      throw usage_error(std::string("--header: ") + e.what() + "; give placeholders with --param NAME=VALUE");
    }
    headers.add(std::move(header.name), std::move(header.value));
  }
  d.submit.headers = headers;

  if (given("--handle-pointer") && given("--handle-header"))
    throw usage_error("--handle-pointer and --handle-header: give one of them, got both ('" + f.handle_pointer +
                      "' and '" + f.handle_header + "')");
  if (given("--handle-header")) {
    if (f.handle_header.empty() || f.handle_header.find_first_of(" \t:") != std::string::npos)
      bad_value("--handle-header", "a header name like Location", f.handle_header);
    d.handle = jobpoll::handle_source::header(f.handle_header);
  } else if (given("--handle-pointer")) {
    d.handle = jobpoll::handle_source::body(check_pointer("--handle-pointer", f.handle_pointer));
  } else if (!resuming) {
    throw usage_error("--handle-pointer or --handle-header is required: where the submit answer holds the job handle");
  }

  std::string poll = f.poll;
  if (!given("--poll")) {
    if (!given("--handle-header"))
      throw usage_error("--poll is required unless --handle-header gives a URL (then it defaults to {+handle})");
    poll = "{+handle}";
  }
  check_template("--poll", poll, params, {"handle"}, has_origin);
  d.poll = {"GET", poll, {}, headers};

  if (!given("--status-pointer"))
    throw usage_error("--status-pointer is required: where each poll answer holds the job's status");
  if (!given("--success")) throw usage_error("--success is required: the status values that mean the job succeeded");
  json_status::values values{parse_list("--success", f.success),
                             given("--failure") ? parse_list("--failure", f.failure) : std::vector<std::string>{},
                             given("--pending") ? parse_list("--pending", f.pending) : std::vector<std::string>{}};
  const std::pair<const char*, const std::vector<std::string>*> lists[] = {
      {"--success", &values.succeeded}, {"--failure", &values.failed}, {"--pending", &values.pending}};
  for (std::size_t a = 0; a < std::size(lists); ++a)
    for (std::size_t b = a + 1; b < std::size(lists); ++b)
      for (const auto& v : *lists[b].second)
        if (std::find(lists[a].second->begin(), lists[a].second->end(), v) != lists[a].second->end())
          throw usage_error(std::string(lists[b].first) + ": '" + v + "' is also listed by " + lists[a].first);
  json_status status(check_pointer("--status-pointer", f.status_pointer), std::move(values));
  if (f.unknown == "pending") {
    status.on_unknown(jobpoll::unknown_is::pending);
  } else if (f.unknown != "error") {
    bad_value("--unknown", "error or pending", f.unknown);
  }
  const double scale = parse_scale("--progress-scale", f.progress_scale);
  if (given("--progress-pointer")) {
    status.progress_at(check_pointer("--progress-pointer", f.progress_pointer), scale);
  } else if (given("--progress-scale")) {
    throw usage_error("--progress-scale needs --progress-pointer");
  }
  if (given("--hint-pointer")) status.hint_at(check_pointer("--hint-pointer", f.hint_pointer));
  if (given("--failure-detail-pointer"))
    status.failure_detail_at(check_pointer("--failure-detail-pointer", f.failure_detail_pointer));

  const char* paging_flags[] = {"--items-pointer", "--total-pointer", "--page-size", "--first-offset",
                                "--first-page-in-poll"};
  if (given("--page-url")) {
    if (given("--result-url")) throw usage_error("--result-url and --page-url: give one of them, got both");
    if (given("--result-pointer"))
      throw usage_error(
          "--result-pointer: not used with --page-url (the items of every page, at --items-pointer, are the result)");
    if (!given("--items-pointer") || !given("--total-pointer"))
      throw usage_error("--page-url needs --items-pointer and --total-pointer");
    check_template("--page-url", f.page_url, params, {"handle", "offset", "limit"}, has_origin);
    jobpoll::paging pages{check_pointer("--items-pointer", f.items_pointer),
                          check_pointer("--total-pointer", f.total_pointer), parse_count("--page-size", f.page_size, 1),
                          parse_count("--first-offset", f.first_offset, 0), f.first_page_in_poll};
    d.result = jobpoll::result_source::paged({"GET", f.page_url, {}, headers}, std::move(pages));
  } else {
    for (const char* flag : paging_flags)
      if (given(flag)) throw usage_error(std::string(flag) + " needs --page-url");
    const std::string pointer = check_pointer("--result-pointer", f.result_pointer);
    if (given("--result-url")) {
      check_template("--result-url", f.result_url, params, {"handle"}, has_origin);
      d.result = jobpoll::result_source::fetch({"GET", f.result_url, {}, headers}, pointer);
    } else {
      d.result = jobpoll::result_source::in_poll_answer(pointer);
    }
  }

  if (given("--cancel-url")) {
    check_template("--cancel-url", f.cancel_url, params, {"handle"}, has_origin);
    d.cancel = jobpoll::request_template{check_method("--cancel-method", f.cancel_method), f.cancel_url, {}, headers};
  } else if (given("--cancel-method")) {
    throw usage_error("--cancel-method needs --cancel-url");
  }

  jobpoll::poll_options options;
  options.interval = jobpoll::fixed_interval{parse_duration("--interval", f.interval)};
  options.deadline = parse_duration("--timeout", f.timeout);
  options.initial_delay = parse_duration("--initial-delay", f.initial_delay);
  if (given("--attempt-timeout")) {
    const auto limit = parse_duration("--attempt-timeout", f.attempt_timeout);
    if (limit <= 0ns) bad_value("--attempt-timeout", "a duration > 0 like 10s", f.attempt_timeout);
    options.attempt_timeout = limit;
  }
  options.max_retries = parse_count("--retries", f.retries, 0);

  plan p{std::move(d), std::move(params), {}, std::move(status), std::move(options), {}, f.insecure, f.quiet};
  if (resuming) p.resume = f.resume;
  if (given("--rate")) p.rate = parse_rate("--rate", f.rate);
  return p;
}

// --- running -------------------------------------------------------------------

std::string format_seconds(std::chrono::nanoseconds d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3fs", std::chrono::duration<double>(d).count());
  return text;
}

// "poll 3: pending 40% (status "running")"
std::string poll_line(const jobpoll::poll_event& e) {
  std::string line = "poll " + std::to_string(e.attempt) + ": " + std::string(to_string(e.status.state));
  if (e.status.progress) line += " " + std::to_string(std::lround(*e.status.progress * 100)) + "%";
  if (!e.status.detail.empty()) line += " (" + e.status.detail + ")";
  return line;
}

// "waiting 2.000s (interval)"; a limiter wait, printed as it starts:
// "waiting 9.300s for the rate limit", "waiting up to 4.000s for the rate
// limit (the deadline)", or "waiting for the rate limit".
std::string wait_line(const jobpoll::wait_event& e) {
  if (e.reason == jobpoll::wait_reason::limiter) {
    if (e.duration == 0ns) return "waiting for the rate limit";
    if (e.clipped_by_deadline) return "waiting up to " + format_seconds(e.duration) + " for the rate limit (the deadline)";
    return "waiting " + format_seconds(e.duration) + " for the rate limit";
  }
  std::string line = "waiting " + format_seconds(e.duration) + " (" + std::string(to_string(e.reason));
  if (e.clipped_by_deadline) line += ", shortened to the deadline";
  return line + ")";
}

// The failure payload as one line of JSON (the raw body if it is not JSON).
std::string payload_line(const jobpoll::http_response& response) {
  try {
    return nlohmann::json::parse(response.body).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const nlohmann::json::exception&) {
    return response.body;
  }
}

int exit_code_of(const std::error_code& ec) {
  if (ec == jobpoll::errc::job_failed) return exit_job_failed;
  if (ec == jobpoll::errc::timeout || ec == jobpoll::errc::retries_exhausted) return exit_timeout;
  if (ec == asio::error::operation_aborted) return exit_cancelled;
  return exit_error;
}

// Submits (unless resuming), polls and prints; returns the exit code. Taken
// by value: the plan lives in the coroutine frame for the whole job.
asio::awaitable<int> run_job(plan p, jobpoll::curl_transport* transport) {
  const auto executor = co_await asio::this_coro::executor;
  std::optional<jobpoll::sliding_window_limiter> quota;
  if (p.rate) {
    quota.emplace(executor, p.rate->first, p.rate->second);
    p.options.limiter = *quota;
  }
  jobpoll::poll_hooks hooks;
  if (!p.quiet) {
    hooks.on_poll = [](const jobpoll::poll_event& e) { std::cerr << poll_line(e) << std::endl; };
    hooks.on_wait = [](const jobpoll::wait_event& e) { std::cerr << wait_line(e) << std::endl; };
  }
  p.options.hooks = &hooks;
  cli_client client(*transport, std::move(p.description), std::move(p.status));

  try {
    jobpoll::job_handle handle;
    if (p.resume) {
      handle.id = *p.resume;
      handle.params = std::move(p.params);
    } else {
      // Submit and poll apart, to print the handle in between: the deadline
      // covers both, as `run` would make it.
      const auto start = std::chrono::steady_clock::now();
      jobpoll::poll_options submitting = p.options;
      submitting.initial_delay = 0ns;  // the delay is before the first poll, not before the submit
      handle = co_await client.submit(std::move(p.params), std::move(submitting));
      std::cerr << "submitted: handle " << handle.id << std::endl;
      if (const auto budget = p.options.deadline.relative())
        handle.remaining = std::max(0ns, *budget - (std::chrono::steady_clock::now() - start));
    }
    auto result = co_await client.wait(std::move(handle), p.options);
    std::cout << result.value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    co_return exit_succeeded;
  } catch (const jobpoll::job_error& e) {
    if (e.code() == jobpoll::errc::job_failed && e.last_response())
      std::cout << payload_line(*e.last_response()) << std::endl;
    std::cerr << "jobpoll: " << (e.code() == asio::error::operation_aborted ? "cancelled: " : "") << e.what()
              << std::endl;
    co_return exit_code_of(e.code());
  } catch (const std::system_error& e) {
    std::cerr << "jobpoll: " << e.what() << std::endl;
    co_return exit_code_of(e.code());
  } catch (const std::exception& e) {
    std::cerr << "jobpoll: " << e.what() << std::endl;
    co_return exit_error;
  }
}

// Re-arms itself: the first signal cancels the job (its cancel request is
// then sent), a second one abandons that cancel request too.
struct on_signal {
  asio::signal_set* signals;
  asio::cancellation_signal* cancel;

  void operator()(const std::error_code& ec, int number) const {
    if (ec) return;  // the job ended and the set was cancelled
    std::cerr << "jobpoll: " << (number == SIGINT ? "SIGINT" : "SIGTERM") << ": cancelling the job" << std::endl;
    cancel->emit(asio::cancellation_type::terminal);
    signals->async_wait(*this);
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Submits a REST job, polls it until it ends and prints its result as one line of JSON.", "jobpoll"};
  flags f;
  define_flags(app, f);
  std::optional<plan> p;
  try {
    app.parse(argc, argv);
    p.emplace(make_plan(app, f));
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "jobpoll: " << e.what() << "\nRun with --help for more information." << std::endl;
    return exit_usage;
  } catch (const usage_error& e) {
    std::cerr << "jobpoll: " << e.what() << "\nRun with --help for more information." << std::endl;
    return exit_usage;
  }

  asio::io_context ctx;
  jobpoll::curl_options transport_options;
  transport_options.verify_tls = !p->insecure;
  jobpoll::curl_transport transport(ctx.get_executor(), transport_options);
  asio::signal_set signals(ctx, SIGINT, SIGTERM);
  asio::cancellation_signal cancel;
  signals.async_wait(on_signal{&signals, &cancel});

  int code = exit_error;
  asio::co_spawn(ctx, run_job(std::move(*p), &transport),
                 asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, int result) {
                   if (e) {
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& error) {
                       std::cerr << "jobpoll: " << error.what() << std::endl;
                     }
                   } else {
                     code = result;
                   }
                   signals.cancel();
                 }));
  ctx.run();
  return code;
}
