// jobpoll: submits a REST job described by flags, polls it until it ends and
// prints its result as one line of JSON. `jobpoll --help` documents every
// flag, the exit codes and two worked examples.
//
// The flags become a `job_description`, a `field_status` policy and
// `poll_options`; a `job_client` on the libcurl transport does the rest.
// SIGINT and SIGTERM cancel the job through the coroutine's cancellation
// slot, which makes the client send the --cancel-url request first.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstddef>
#include <exception>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <jobpoll/asio.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <jobpoll/codec/json.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/interval.hpp>
#include <jobpoll/job_client.hpp>
#include <jobpoll/job_description.hpp>
#include <jobpoll/job_file.hpp>
#include <jobpoll/observer.hpp>
#include <jobpoll/phase_codecs.hpp>
#include <jobpoll/poll_options.hpp>
#include <jobpoll/redis_limiter.hpp>
#include <jobpoll/sliding_window_limiter.hpp>
#include <jobpoll/transport/curl.hpp>

#include "cli_values.hpp"

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

constexpr std::string_view footer_text = R"(Durations are a number and a unit: 500ms, 2s, 1.5s, 2m, 1h (0 needs none), at most 1000h.
Templates take {name} placeholders from --param (percent-encoded in URLs), {handle}
once the job is submitted, {offset} and {limit} in --page-url, and the --result-field
names in --result-url and --page-url; {+name} inserts a value as is (for a handle that
is itself a URL or path). A URL that starts with '/' is resolved against the origin of
--submit. {job_key} is the job's key: --param job_key=KEY, else made by a submit that uses it.
Codecs: json reads every answer as JSON; text reads it as one string (trimmed; the
pointer "" is the whole of it); auto reads text/* answers as text, others as JSON.

Exit codes:
  0   the job succeeded; its result is printed on stdout as one line of JSON
      (a text result as a JSON string)
  1   the job failed; its failure payload (the last poll answer) is printed on stdout
  2   timeout: the --timeout deadline passed or the --retries ran out
  3   any other error: HTTP error, undecodable answer, unknown status, expired handle,
      transport failure
  4   cancelled by SIGINT or SIGTERM (the --cancel-url request is sent first)
  64  usage error: an unknown flag, a bad value, a bad --describe file

Examples (a job server on http://127.0.0.1:PORT, e.g. tests/server/job_server.py):

  # A job API: POST /v1/jobs answers {"job_id": ...}; GET /v1/jobs/{job_id} until it
  # completes; Ctrl-C (or the deadline) sends DELETE to the same URL. (An API that
  # sends the job's URL in a Location header: --handle-header Location, whose --poll
  # and --cancel-url default to {+handle}; most job APIs send only the body.)
  jobpoll --submit http://127.0.0.1:PORT/v1/jobs \
      --data '{"tool": "blast", "params": {"query": "ACGT"}, "steps": 3}' \
      --handle-pointer /job_id --poll '/v1/jobs/{handle}' --cancel-url '/v1/jobs/{handle}' \
      --status-pointer /status --success completed --failure failed,cancelled \
      --pending pending,running --progress-pointer /progress --hint-pointer /eta_seconds \
      --failure-detail-pointer /error --result-pointer /result --interval 500ms --timeout 60s

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
      --first-page-in-poll --rate 20/15s --interval 2s --timeout 300s

  # A Google long-running operation: done false/true, and done with an error is a failure.
  jobpoll --submit http://127.0.0.1:PORT/v1/lro/operations --data '{"steps": 3}' \
      --handle-pointer /name --poll '/v1/lro/{+handle}' \
      --cancel-url '/v1/lro/{+handle}:cancel' --cancel-method POST \
      --status-pointer /done --success true --pending false --failure-if-present /error \
      --failure-detail-pointer /error/message --progress-pointer /metadata/progressPercent \
      --progress-scale 100 --result-pointer /response --interval 1s

  # An Azure asynchronous operation: the result is fetched from the resourceLocation
  # of the final answer.
  jobpoll --submit http://127.0.0.1:PORT/azure/resources/disk1 --method PUT --data '{}' \
      --handle-header Operation-Location --status-pointer /status --success Succeeded \
      --failure Failed,Canceled --pending NotStarted,Running \
      --progress-pointer /percentComplete --progress-scale 100 \
      --result-url '{+location}' --result-field location=/resourceLocation --interval 1s

  # An EBI-style dispatcher: a form submit, plain-text answers.
  jobpoll --submit http://127.0.0.1:PORT/ebi/run --form email=me@example.org \
      --form sequence=ACGTACGT --codec text --handle-pointer '' \
      --poll '/ebi/status/{handle}' --status-pointer '' --success FINISHED \
      --failure FAILURE --pending QUEUED,RUNNING --result-url '/ebi/result/{handle}/out' \
      --interval 1s)";

/// A combination of flags the tool cannot use; the message names the flags and values.
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// --- the command line ----------------------------------------------------------

using name_value = std::pair<std::string, std::string>;

// Every flag, read by the grammar of cli_values.hpp (a bad value is a CLI11
// ValidationError naming the flag); `make_plan` checks how they combine.
struct flags {
  std::string submit;
  std::string method = "POST";
  std::string data;
  std::vector<name_value> form;
  std::vector<name_value> headers;
  std::vector<name_value> params;
  bool idempotent_submit = false;
  std::string handle_pointer;
  std::string handle_header;
  std::string poll;
  std::string status_pointer;
  std::vector<std::string> success;
  std::vector<std::string> failure;
  std::vector<std::string> pending;
  std::vector<std::string> failure_if_present;
  std::vector<std::string> success_if_present;
  std::string unknown = "error";
  std::string progress_pointer;
  double progress_scale = 1;
  std::string hint_pointer;
  std::string failure_detail_pointer;
  std::string result_pointer;
  std::string result_url;
  std::vector<name_value> result_fields;
  std::string page_url;
  std::string items_pointer;
  std::string total_pointer;
  std::size_t page_size = 100;
  std::size_t first_offset = 0;
  bool first_page_in_poll = false;
  std::string cancel_url;
  std::string cancel_method = "DELETE";
  std::string codec = "json";
  std::string submit_codec;
  std::string poll_codec;
  std::string result_codec;
  std::chrono::nanoseconds interval{};
  std::chrono::nanoseconds timeout{};
  std::chrono::nanoseconds initial_delay{};
  std::optional<std::chrono::nanoseconds> attempt_timeout;
  std::size_t retries = 0;
  std::optional<cli_values::rate> rate;
  std::string rate_redis;
  std::string resume;
  std::string describe;
  bool insecure = false;
  bool quiet = false;
};

// A JSON pointer option, or a repeatable one into a vector.
template <class Target>
CLI::Option* add_pointer(CLI::App& app, const std::string& name, Target& target, const std::string& help) {
  return app.add_option(name, target, help)->type_name("POINTER")->check(cli_values::json_pointer());
}

// A repeatable NAME=VALUE option.
CLI::Option* add_pairs(CLI::App& app, const std::string& name, std::vector<name_value>& target,
                       const std::string& help, cli_values::name_rule rule, const std::string& form) {
  return cli_values::add_read_list(
             app, name, help,
             [rule, form](std::string_view text) { return cli_values::read_name_value(text, rule, form); },
             [&target](name_value pair) { target.push_back(std::move(pair)); })
      ->type_name(form);
}

// A comma-separated list of status values (repeatable: the lists add up).
CLI::Option* add_status_list(CLI::App& app, const std::string& name, std::vector<std::string>& target,
                             const std::string& help) {
  return cli_values::add_read_list(app, name, help, cli_values::read_status_list,
                                   [&target](std::vector<std::string> values) {
                                     target.insert(target.end(), values.begin(), values.end());
                                   })
      ->type_name("A,B");
}

CLI::Option* add_codec(CLI::App& app, const std::string& name, std::string& target, const std::string& help) {
  return app.add_option(name, target, help)
      ->type_name("json|text|auto")
      ->check(cli_values::one_of({"json", "text", "auto"}));
}

void define_flags(CLI::App& app, flags& f) {
  using cli_values::name_rule;
  app.footer(std::string(footer_text));
  app.get_formatter()->column_width(38);

  const std::string submit = "Submit";
  app.add_option("--submit", f.submit, "URL the job is submitted to (required unless --resume)")
      ->type_name("URL")
      ->check(cli_values::http_url())
      ->group(submit);
  app.add_option("--method", f.method, "HTTP method of the submit request")
      ->type_name("METHOD")
      ->check(cli_values::http_method())
      ->capture_default_str()
      ->group(submit);
  app.add_option("--data", f.data,
                 "submit body, or @FILE to read it from a file (sent as application/json unless a "
                 "--header sets Content-Type)")
      ->type_name("BODY|@FILE")
      ->group(submit);
  add_pairs(app, "--form", f.form,
            "a form field of the submit body, sent as application/x-www-form-urlencoded (repeatable, in order; "
            "not with --data)",
            name_rule::any, "NAME=VALUE")
      ->group(submit);
  cli_values::add_read_list(app, "-H,--header", "\"Name: value\" sent with every request (repeatable)",
                            cli_values::read_header, [&f](name_value h) { f.headers.push_back(std::move(h)); })
      ->type_name("HEADER")
      ->group(submit);
  add_pairs(app, "--param", f.params, "name=value for the {name} placeholders of URLs, body and headers (repeatable)",
            name_rule::placeholder, "name=value")
      ->type_name("NAME=VALUE")
      ->group(submit);
  app.add_flag("--idempotent-submit", f.idempotent_submit,
               "the server returns the same job for a repeated submit with the same {job_key} (e.g. -H "
               "'Idempotency-Key: {job_key}'): a submit whose answer was lost is sent again with that key")
      ->group(submit);

  const std::string handle = "Handle (exactly one, unless --resume)";
  add_pointer(app, "--handle-pointer", f.handle_pointer,
              "JSON pointer to the handle in the submit answer, e.g. /data/hash (\"\" with --codec text)")
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
  add_pointer(app, "--status-pointer", f.status_pointer,
              "JSON pointer to the job's status in each poll answer, e.g. /data/status (required unless "
              "--success-if-present)")
      ->group(status);
  add_status_list(app, "--success", f.success,
                  "status values that mean the job succeeded (required with --status-pointer)")
      ->group(status);
  add_status_list(app, "--failure", f.failure, "status values that mean the job failed")->group(status);
  add_status_list(app, "--pending", f.pending, "status values that mean the job is still running")->group(status);
  add_pointer(app, "--failure-if-present", f.failure_if_present,
              "a value (not null) at this pointer means the job failed, whatever its status, e.g. /error "
              "(repeatable; checked before the status and --success-if-present)")
      ->group(status);
  add_pointer(app, "--success-if-present", f.success_if_present,
              "a value (not null) at this pointer means the job succeeded, e.g. /response (repeatable; "
              "checked before the status)")
      ->group(status);
  app.add_option("--unknown", f.unknown, "what a status in none of the lists means: error (stop at once) or pending")
      ->type_name("error|pending")
      ->check(cli_values::one_of({"error", "pending"}))
      ->capture_default_str()
      ->group(status);
  add_pointer(app, "--progress-pointer", f.progress_pointer, "JSON pointer to the job's progress in pending answers")
      ->group(status);
  cli_values::add_read_option(
      app, "--progress-scale", "progress value that means done: 1 (a fraction) or 100 (a percentage)",
      [](std::string_view text) {
        return cli_values::read_positive_number(
            text, "a number > 0: 1 when progress is a fraction, 100 when it is a percentage");
      },
      [&f](double scale) { f.progress_scale = scale; })
      ->type_name("N")
      ->default_str("1")
      ->group(status);
  add_pointer(app, "--hint-pointer", f.hint_pointer,
              "JSON pointer to the server's estimate of seconds until the next poll; it replaces --interval")
      ->group(status);
  add_pointer(app, "--failure-detail-pointer", f.failure_detail_pointer,
              "JSON pointer to the failure reason, shown in the error message")
      ->group(status);

  const std::string result = "Result (default: the whole final poll answer)";
  add_pointer(app, "--result-pointer", f.result_pointer,
              "JSON pointer to the result in the final poll answer, or in the "
              "--result-url answer; \"\" is the whole answer")
      ->group(result);
  app.add_option("--result-url", f.result_url,
                 "URL template of a request that fetches the result, e.g. /v1/jobs/{handle}/result")
      ->type_name("TEMPLATE")
      ->group(result);
  cli_values::add_read_list(app, "--result-field",
                            "fills {NAME} of --result-url or --page-url with the value at POINTER in the final poll "
                            "answer, e.g. location=/resourceLocation with --result-url '{+location}' (repeatable)",
                            cli_values::read_name_pointer,
                            [&f](name_value field) { f.result_fields.push_back(std::move(field)); })
      ->type_name("NAME=POINTER")
      ->group(result);
  app.add_option("--page-url", f.page_url,
                 "URL template of one page of a paged result, with {offset} and {limit}; "
                 "the pages' items are printed as one array")
      ->type_name("TEMPLATE")
      ->group(result);
  add_pointer(app, "--items-pointer", f.items_pointer, "JSON pointer to a page's item array (required with --page-url)")
      ->group(result);
  add_pointer(app, "--total-pointer", f.total_pointer,
              "JSON pointer to the total item count (required with --page-url)")
      ->group(result);
  cli_values::add_count(app, "--page-size", f.page_size, "the {limit} of each page", 1)
      ->default_val("100")
      ->group(result);
  cli_values::add_count(app, "--first-offset", f.first_offset, "the {offset} of the first item", 0)
      ->default_val("0")
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
      ->check(cli_values::http_method())
      ->capture_default_str()
      ->group(cancel);

  const std::string codecs = "Codecs (how answers are read)";
  add_codec(app, "--codec", f.codec, "every answer: json, text, or auto (by its Content-Type)")
      ->capture_default_str()
      ->group(codecs);
  add_codec(app, "--submit-codec", f.submit_codec, "the submit answer (default: --codec)")->group(codecs);
  add_codec(app, "--poll-codec", f.poll_codec, "the poll answers (default: --codec)")->group(codecs);
  add_codec(app, "--result-codec", f.result_codec, "the --result-url or --page-url answers (default: --codec)")
      ->group(codecs);

  const std::string timing = "Timing";
  cli_values::add_duration(app, "--interval", f.interval, "wait between polls that say pending")
      ->default_val("2s")
      ->group(timing);
  cli_values::add_duration(app, "--timeout", f.timeout,
                           "deadline for the whole job, submit to result (at least one poll happens)")
      ->default_val("300s")
      ->group(timing);
  cli_values::add_duration(app, "--initial-delay", f.initial_delay, "wait before the first poll")
      ->default_val("0")
      ->group(timing);
  cli_values::add_duration(app, "--attempt-timeout", f.attempt_timeout,
                           "limit of one request; a poll that takes longer is retried (default: none)",
                           cli_values::zero_duration::refused)
      ->group(timing);
  cli_values::add_count(app, "--retries", f.retries,
                        "transient failures in a row tolerated (429, 5xx, connection reset, attempt timeout)", 0)
      ->default_val("5")
      ->group(timing);
  auto* rate = cli_values::add_rate(app, "--rate", f.rate,
                                   "at most N requests in any DURATION, shared by every request, e.g. 20/15s "
                                   "(default: no limit)")
                   ->group(timing);
  app.add_option("--rate-redis", f.rate_redis,
                 "a rate limit shared through Redis by every process that names the same key, e.g. "
                 "redis://127.0.0.1:6379/reporting-api?rate=20/15s or unix:///run/redis.sock?key=api&rate=20/15s "
                 "(bucket=N/DURATION&burst=B for a token bucket; while Redis is down nothing is sent, or "
                 "&fallback=F sends at F of the budget)")
      ->type_name("URL")
      ->excludes(rate)
      ->group(timing);

  const std::string file = "Description file";
  app.add_option("--describe", f.describe,
                 "read the job's description from a JSON file (e.g. examples/presets/*.json) instead of the "
                 "flags that describe it; --param, --header, the timing flags, --resume, --insecure and --quiet "
                 "still apply")
      ->type_name("FILE")
      ->group(file);

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
  jobpoll::phase_codecs<jobpoll::json_codec> codecs;
  jobpoll::poll_options options;
  std::optional<cli_values::rate> rate;
  bool insecure = false;
  bool quiet = false;
  std::optional<jobpoll::redis_limiter_options> rate_redis;
};

// Checks a request template before anything is sent: its placeholders all
// have values (so a typo in --poll cannot strand a job that was already
// submitted), and its URL is absolute, a path on the --submit origin, or a
// raw placeholder that holds one. The expansion is the job client's own, so
// this check and the requests sent later cannot disagree. `supplied` are the
// names jobpoll fills in itself ({handle}, a page's {offset}, --result-field's).
void check_template(std::string_view flag, const std::string& url, const jobpoll::job_params& params,
                    const std::vector<std::string>& supplied, bool has_origin) {
  const bool absolute = url.starts_with("http://") || url.starts_with("https://");
  if (!absolute && !url.starts_with("{+") && !url.starts_with('/'))
    throw usage_error(
        std::string(flag) + ": " +
        cli_values::expected("an http:// or https:// URL, a /path on the --submit origin, or {+handle}", url).message);
  if (url.starts_with('/') && !has_origin)
    throw usage_error(std::string(flag) + ": the path '" + url +
                      "' needs --submit for its origin (give a full URL or add --submit when resuming)");
  jobpoll::job_params values = params;
  for (const auto& name : supplied) values.emplace(name, "x");
  try {
    static_cast<void>(jobpoll::expand_template(url, values, jobpoll::template_part::url));
  } catch (const std::system_error& e) {
    throw usage_error(std::string(flag) + ": " + e.what() + "; give placeholders with --param NAME=VALUE");
  }
}

// A body or header template: its placeholders all have values.
void check_text_template(std::string_view flag, const std::string& text, const jobpoll::job_params& params,
                         jobpoll::template_part part) {
  try {
    static_cast<void>(jobpoll::expand_template(text, params, part));
  } catch (const std::system_error& e) {
    throw usage_error(std::string(flag) + ": " + e.what() + "; give placeholders with --param NAME=VALUE");
  }
}

std::string read_data(std::string_view flag, const std::string& text) {
  if (!text.starts_with('@')) return text;
  const std::string path = text.substr(1);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw usage_error(std::string(flag) + ": cannot read file '" + path + "' (from '" + text + "')");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// `name` passed the flag's check: "json", "text" or "auto".
jobpoll::json_codec codec_named(const std::string& name) {
  jobpoll::json_codec_options options;
  options.format = jobpoll::json_body_format_named(name).value_or(jobpoll::json_body_format::json);
  return jobpoll::json_codec(options);
}

// The status policy: status values at --status-pointer, or rules only
// (--success-if-present), and the rules of the --*-if-present flags.
json_status make_status(const CLI::App& app, const flags& f, const jobpoll::json_codec& codec) {
  auto given = [&](const char* name) { return app.count(name) > 0; };
  const bool by_status = given("--status-pointer");
  if (!by_status && !given("--success-if-present"))
    throw usage_error("--status-pointer is required: where each poll answer holds the job's status "
                      "(or --success-if-present, for an API whose answers have no status)");
  if (by_status && !given("--success"))
    throw usage_error("--success is required: the status values that mean the job succeeded");
  if (!by_status) {
    for (const char* flag : {"--success", "--failure", "--pending"})
      if (given(flag)) throw usage_error(std::string(flag) + " needs --status-pointer");
  }
  const std::pair<const char*, const std::vector<std::string>*> lists[] = {
      {"--success", &f.success}, {"--failure", &f.failure}, {"--pending", &f.pending}};
  for (std::size_t a = 0; a < std::size(lists); ++a)
    for (std::size_t b = a + 1; b < std::size(lists); ++b)
      for (const auto& v : *lists[b].second)
        if (std::find(lists[a].second->begin(), lists[a].second->end(), v) != lists[a].second->end())
          throw usage_error(std::string(lists[b].first) + ": '" + v + "' is also listed by " + lists[a].first);

  // A failure indicator wins over a success one: an answer with both (done,
  // with an error) is a failure.
  std::vector<jobpoll::field_rule> rules;
  for (const auto& pointer : f.failure_if_present)
    rules.push_back({{jobpoll::field_condition::present(pointer)}, jobpoll::rule_outcome::failed});
  for (const auto& pointer : f.success_if_present)
    rules.push_back({{jobpoll::field_condition::present(pointer)}, jobpoll::rule_outcome::succeeded});
  json_status status = by_status ? json_status(f.status_pointer, {f.success, f.failure, f.pending}, codec)
                                 : json_status::from_rules(rules, codec);
  if (by_status)
    for (auto& r : rules) status.rule(std::move(r));
  if (f.unknown == "pending") status.on_unknown(jobpoll::unknown_is::pending);
  if (given("--progress-pointer")) {
    status.progress_at(f.progress_pointer, f.progress_scale);
  } else if (given("--progress-scale")) {
    throw usage_error("--progress-scale needs --progress-pointer");
  }
  if (given("--hint-pointer")) status.hint_at(f.hint_pointer);
  if (given("--failure-detail-pointer")) status.failure_detail_at(f.failure_detail_pointer);
  return status;
}

// The names jobpoll fills itself: a --param or --result-field of the same name is refused.
bool reserved(std::string_view name) { return name == "handle" || name == "offset" || name == "limit"; }

// The job as the flags describe it.
plan plan_from_flags(const CLI::App& app, const flags& f, const jobpoll::job_params& params,
                     const jobpoll::http_headers& headers) {
  auto given = [&](const char* name) { return app.count(name) > 0; };
  const bool resuming = given("--resume");
  jobpoll::job_description d;
  const bool has_origin = given("--submit");
  if (!resuming && !has_origin)
    throw usage_error("--submit is required (or --resume HANDLE to poll an existing job)");
  if (!has_origin) {
    for (const char* flag : {"--method", "--data", "--form"})
      if (given(flag)) throw usage_error(std::string(flag) + " needs --submit");
  }
  if (has_origin) {
    check_template("--submit", f.submit, params, {}, true);
    if (given("--data") && given("--form"))
      throw usage_error("--data and --form: give one of them (the submit body is JSON text or a form), got both");
    d.submit = {f.method, f.submit, read_data("--data", f.data), headers};
    d.idempotent_submit = f.idempotent_submit;
    check_text_template("--data", d.submit.body, params, jobpoll::template_part::body);
    for (const auto& [name, value] : f.form) {
      check_text_template("--form", value, params, jobpoll::template_part::body);
      d.submit.form.emplace_back(name, value);
    }
  }

  if (given("--handle-pointer") && given("--handle-header"))
    throw usage_error("--handle-pointer and --handle-header: give one of them, got both ('" + f.handle_pointer +
                      "' and '" + f.handle_header + "')");
  if (given("--handle-header")) {
    if (f.handle_header.empty() || f.handle_header.find_first_of(" \t:") != std::string::npos)
      throw usage_error("--handle-header: " +
                        cli_values::expected("a header name like Location", f.handle_header).message);
    d.handle = jobpoll::handle_source::header(f.handle_header);
  } else if (given("--handle-pointer")) {
    d.handle = jobpoll::handle_source::body(f.handle_pointer);
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

  const auto codec_of = [&](const char* flag, const std::string& name) {
    return codec_named(given(flag) ? name : f.codec);
  };
  const jobpoll::phase_codecs<jobpoll::json_codec> codecs{codec_of("--submit-codec", f.submit_codec),
                                                          codec_of("--poll-codec", f.poll_codec),
                                                          codec_of("--result-codec", f.result_codec)};
  plan p{std::move(d), {}, {}, make_status(app, f, codecs.poll), codecs, {}, f.rate, f.insecure, f.quiet, {}};

  // The --result-field names fill placeholders of the result request.
  std::vector<std::string> result_names = {"handle"};
  std::map<std::string, std::string, std::less<>> from_answer;
  for (const auto& [name, pointer] : f.result_fields) {
    const std::string text = name + "=" + pointer;
    if (reserved(name) || params.contains(name))
      throw usage_error("--result-field: '" + name + "' is already " +
                        (reserved(name) ? "set by jobpoll itself" : "given by --param") + ", got '" + text + "'");
    if (!from_answer.emplace(name, pointer).second)
      throw usage_error("--result-field: '" + name + "' given twice, got '" + text + "'");
    result_names.push_back(name);
  }
  if (!from_answer.empty() && !given("--result-url") && !given("--page-url"))
    throw usage_error("--result-field needs --result-url or --page-url (the request whose placeholders it fills)");

  const char* paging_flags[] = {"--items-pointer", "--total-pointer", "--page-size", "--first-offset",
                                "--first-page-in-poll"};
  if (given("--page-url")) {
    if (given("--result-url")) throw usage_error("--result-url and --page-url: give one of them, got both");
    if (given("--result-pointer"))
      throw usage_error(
          "--result-pointer: not used with --page-url (the items of every page, at --items-pointer, are the result)");
    if (!given("--items-pointer") || !given("--total-pointer"))
      throw usage_error("--page-url needs --items-pointer and --total-pointer");
    std::vector<std::string> page_names = result_names;
    page_names.insert(page_names.end(), {"offset", "limit"});
    check_template("--page-url", f.page_url, params, page_names, has_origin);
    p.description.result = jobpoll::result_source::paged(
        {"GET", f.page_url, {}, headers},
        {f.items_pointer, f.total_pointer, f.page_size, f.first_offset, f.first_page_in_poll});
  } else {
    for (const char* flag : paging_flags)
      if (given(flag)) throw usage_error(std::string(flag) + " needs --page-url");
    if (given("--result-url")) {
      check_template("--result-url", f.result_url, params, result_names, has_origin);
      p.description.result = jobpoll::result_source::fetch({"GET", f.result_url, {}, headers}, f.result_pointer);
    } else {
      p.description.result = jobpoll::result_source::in_poll_answer(f.result_pointer);
    }
  }
  p.description.result.from_answer = std::move(from_answer);

  if (given("--cancel-url")) {
    check_template("--cancel-url", f.cancel_url, params, {"handle"}, has_origin);
    p.description.cancel = jobpoll::request_template{f.cancel_method, f.cancel_url, {}, headers};
  } else if (given("--cancel-method")) {
    throw usage_error("--cancel-method needs --cancel-url");
  }

  return p;
}

// The flags that describe the job, which --describe FILE describes instead.
constexpr const char* description_flags[] = {
    "--submit", "--method", "--data", "--form", "--idempotent-submit", "--handle-pointer", "--handle-header", "--poll", "--status-pointer",
    "--success", "--failure", "--pending", "--failure-if-present", "--success-if-present", "--unknown",
    "--progress-pointer", "--progress-scale", "--hint-pointer", "--failure-detail-pointer", "--result-pointer",
    "--result-url", "--result-field", "--page-url", "--items-pointer", "--total-pointer", "--page-size",
    "--first-offset", "--first-page-in-poll", "--cancel-url", "--cancel-method", "--codec", "--submit-codec",
    "--poll-codec", "--result-codec"};

// The job as the --describe file describes it, with the --header headers
// added to every request. Its templates are checked as the flags' are, the
// messages naming the file and the field.
plan plan_from_file(const CLI::App& app, const flags& f, const jobpoll::job_params& params,
                    const jobpoll::http_headers& headers) {
  for (const char* flag : description_flags)
    if (app.count(flag) > 0)
      throw usage_error(std::string(flag) + ": not with --describe: describe it in " + f.describe + " instead");
  jobpoll::job_file file = [&] {
    try {
      return jobpoll::load_job_file(f.describe);
    } catch (const std::system_error& e) {
      throw usage_error(std::string("--describe: ") + e.what());
    }
  }();
  jobpoll::job_description& d = file.description;
  const auto field = [&](std::string_view pointer) { return f.describe + ": " + std::string(pointer); };
  // The submit URL is the origin of the other URLs even when resuming.
  check_template(field("/submit/url"), d.submit.url, params, {}, true);
  if (app.count("--resume") == 0) {
    check_text_template(field("/submit/body"), d.submit.body, params, jobpoll::template_part::body);
    for (const auto& [name, value] : d.submit.form)
      check_text_template(field("/submit/form"), value, params, jobpoll::template_part::body);
  }
  check_template(field("/poll/url"), d.poll.url, params, {"handle"}, true);
  if (d.result.from != jobpoll::result_source::kind::poll_answer) {
    std::vector<std::string> names = {"handle", "offset", "limit"};
    for (const auto& entry : d.result.from_answer) names.push_back(entry.first);
    const bool fetch = d.result.from == jobpoll::result_source::kind::fetch;
    check_template(field(fetch ? "/result/fetch/url" : "/result/pages/url"), d.result.request.url, params, names,
                   true);
  }
  if (d.cancel) check_template(field("/cancel/url"), d.cancel->url, params, {"handle"}, true);
  for (jobpoll::request_template* request : {&d.submit, &d.poll, &d.result.request})
    for (const auto& h : headers) request->headers.add(h.name, h.value);
  if (d.cancel)
    for (const auto& h : headers) d.cancel->headers.add(h.name, h.value);
  return {std::move(file.description), {}, {}, std::move(file.status), std::move(file.codecs), {}, f.rate,
          f.insecure, f.quiet, {}};
}

plan make_plan(const CLI::App& app, const flags& f) {
  auto given = [&](const char* name) { return app.count(name) > 0; };

  jobpoll::job_params params;
  for (const auto& [name, value] : f.params) {
    const std::string text = name + "=" + value;
    if (reserved(name))
      throw usage_error("--param: '" + name +
                        "' is set by jobpoll itself (the job handle, and the offset and limit of a page), got '" +
                        text + "'");
    if (!params.emplace(name, value).second)
      throw usage_error("--param: '" + name + "' given twice, got '" + text + "'");
  }

  // The templates are checked with a {job_key} when a submit may make one; below, that it does.
  const bool resuming = given("--resume");
  jobpoll::job_params checked = params;
  if (!resuming) checked.emplace(jobpoll::job_key_name, "key");
  jobpoll::http_headers headers;
  for (const auto& [name, value] : f.headers) {
    check_text_template("--header", value, checked, jobpoll::template_part::header);
    headers.add(name, value);
  }
  if (resuming && f.resume.empty())
    throw usage_error("--resume: " + cli_values::expected("a job handle", f.resume).message);

  plan p = given("--describe") ? plan_from_file(app, f, checked, headers) : plan_from_flags(app, f, checked, headers);
  const jobpoll::job_description& d = p.description;
  const bool submit_keyed = jobpoll::uses_placeholder(d.submit, jobpoll::job_key_name);
  if (!resuming && !params.contains(jobpoll::job_key_name) && !submit_keyed) {
    for (const auto* r : {&d.poll, &d.result.request, d.cancel ? &*d.cancel : &d.poll})
      if (jobpoll::uses_placeholder(*r, jobpoll::job_key_name))
        throw usage_error("{job_key} in the request " + r->method + " " + r->url +
                          ": only a submit that uses {job_key} makes one; give --param job_key=KEY");
  }
  if (d.idempotent_submit && !submit_keyed)
    throw usage_error("--idempotent-submit: the submit request does not use {job_key}, e.g. -H 'Idempotency-Key: "
                      "{job_key}'; the server could not tell a repeated submit from a new job");
  p.options.interval = jobpoll::fixed_interval{f.interval};
  p.options.deadline = f.timeout;
  p.options.initial_delay = f.initial_delay;
  if (f.attempt_timeout) p.options.attempt_timeout = *f.attempt_timeout;
  p.options.max_retries = f.retries;
  p.params = params;
  if (resuming) p.resume = f.resume;
  if (given("--rate-redis")) {
    try {
      p.rate_redis = jobpoll::parse_redis_limit_url(f.rate_redis);
    } catch (const std::invalid_argument& e) {
      // "jobpoll::parse_redis_limit_url: <what>, got '<url>'" without the function's name.
      const std::string what = e.what();
      throw usage_error("--rate-redis: " + what.substr(what.find(": ") + 2));
    }
  }
  return p;
}

// --- running -------------------------------------------------------------------

using jobpoll::detail::format_seconds;

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

// The failure payload as one line of JSON: the answer as JSON if it is JSON
// (read with the codec's depth limit, so a hostile answer cannot exhaust the
// stack), else as a JSON string.
std::string payload_line(const jobpoll::http_response& response) {
  nlohmann::json payload;
  try {
    payload = jobpoll::json_codec{}.decode(response.body);
  } catch (const std::exception&) {
    payload = response.body;
  }
  return payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int exit_code_of(const jobpoll::error_code& ec) {
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
  std::optional<jobpoll::redis_limiter> shared_quota;
  if (p.rate) {
    quota.emplace(executor, p.rate->requests, p.rate->window);
    p.options.limiter = *quota;
  } else if (p.rate_redis) {
    // Outages are worth a line even with --quiet: nothing is sent meanwhile.
    p.rate_redis->on_event = [](const jobpoll::redis_limiter_event& e) {
      using kind = jobpoll::redis_limiter_event::kind;
      if (e.what == kind::down) std::cerr << "rate limit: Redis down (" << e.detail << "), waiting" << std::endl;
      if (e.what == kind::refused) std::cerr << "rate limit: Redis refused: " << e.detail << std::endl;
    };
    shared_quota.emplace(executor, std::move(*p.rate_redis));
    p.options.limiter = *shared_quota;
  }
  jobpoll::poll_hooks hooks;
  if (!p.quiet) {
    hooks.on_poll = [](const jobpoll::poll_event& e) { std::cerr << poll_line(e) << std::endl; };
    hooks.on_wait = [](const jobpoll::wait_event& e) { std::cerr << wait_line(e) << std::endl; };
  }
  p.options.hooks = &hooks;
  cli_client client(*transport, std::move(p.description), std::move(p.status), p.codecs);

  try {
    jobpoll::job_handle handle;
    if (p.resume) {
      handle.id = *p.resume;
      handle.params = std::move(p.params);
    } else {
      // Submit and poll apart, to print the handle in between. The handle
      // carries what is left of the deadline and the submit answer's
      // Retry-After, so `wait` goes on as `run` would.
      handle = co_await client.submit(std::move(p.params), p.options);
      std::cerr << "submitted: handle " << handle.id << std::endl;
      if (const auto key = handle.params.find(jobpoll::job_key_name); key != handle.params.end())
        std::cerr << "job key: " << key->second << std::endl;
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
  } catch (const std::exception& e) {
    // jobpoll's own system errors, and Asio's (a boost::system::system_error
    // on the Boost backend), exit by their code; anything else is an error.
    const auto failure = jobpoll::detail::system_failure_of(e);
    std::cerr << "jobpoll: " << (failure ? failure->what : e.what()) << std::endl;
    co_return failure ? exit_code_of(jobpoll::detail::to_error_code(failure->code)) : exit_error;
  }
}

// Re-arms itself: the first signal cancels the job (its cancel request is
// then sent), a second one abandons that cancel request too.
struct on_signal {
  asio::signal_set* signals;
  asio::cancellation_signal* cancel;

  void operator()(const jobpoll::error_code& ec, int number) const {
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
  } catch (const std::invalid_argument& e) {
    // The library refusing a value the flags' grammar let through.
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
