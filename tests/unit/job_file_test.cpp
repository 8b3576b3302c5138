// Job description files: the presets shipped in examples/presets, every
// field of the schema, and every way a file can be wrong, each message
// naming the file and the field.
#include "jobpoll/job_file.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using jobpoll::job_state;
using jobpoll::json_body_format;
using jobpoll::json_codec;
using jobpoll::poll_status;
using json = nlohmann::json;

// The presets, found from this source file (tests/unit/ -> examples/presets/).
const std::filesystem::path presets =
    std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "examples" / "presets";

poll_status classify(const jobpoll::job_file& file, std::string_view body) {
  return file.status(file.codecs.poll.decode(body));
}

/// What `std::system_error` adds to the message of an `errc::invalid_argument`.
constexpr std::string_view code_suffix = ": invalid argument";

/// The message of the `std::system_error` with `errc::invalid_argument`
/// that `parse_job_file` throws for `text` from a file called "jobs.json",
/// without the code's own text.
std::string error_for(std::string_view text) {
  try {
    jobpoll::parse_job_file(text, "jobs.json");
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code(), jobpoll::errc::invalid_argument) << error.what();
    std::string what = error.what();
    EXPECT_TRUE(what.ends_with(code_suffix)) << what;
    return what.substr(0, what.size() - code_suffix.size());
  }
  ADD_FAILURE() << "no error for " << text;
  return {};
}

/// A valid file with `field` (a member of the top-level object, as JSON
/// text without braces) in place of the default one of that name.
std::string file_with(std::string_view field) {
  std::string members[][2] = {
      {"submit", R"("submit": {"method": "POST", "url": "{+base}/v1/jobs"})"},
      {"handle", R"("handle": {"pointer": "/job_id"})"},
      {"poll", R"("poll": {"url": "{+base}/v1/jobs/{handle}"})"},
      {"status", R"("status": {"pointer": "/status", "succeeded": ["done"], "pending": ["running"]})"},
  };
  std::string text = "{";
  bool replaced = false;
  for (const auto& [name, member] : members) {
    const bool mine = field.starts_with("\"" + name + "\"");
    replaced = replaced || mine;
    text += (text.size() > 1 ? ", " : "") + (mine ? std::string(field) : member);
  }
  if (!replaced && !field.empty()) text += ", " + std::string(field);
  return text + "}";
}

// --- presets ----------------------------------------------------------------------------

TEST(JobFilePresetTest, GoogleLongRunningOperations) {
  const jobpoll::job_file file = jobpoll::load_job_file(presets / "google_lro.json");
  const auto& d = file.description;
  EXPECT_EQ(d.submit.method, "POST");
  EXPECT_EQ(d.submit.url, "{+base}/v1/lro/operations");
  EXPECT_EQ(d.handle.from, jobpoll::handle_source::kind::body);
  EXPECT_EQ(d.handle.where, "/name");
  EXPECT_EQ(d.poll.method, "GET");
  EXPECT_EQ(d.poll.url, "{+base}/v1/lro/{+handle}");
  EXPECT_EQ(d.result.from, jobpoll::result_source::kind::poll_answer);
  EXPECT_EQ(d.result.pointer, "/response");
  ASSERT_TRUE(d.cancel.has_value());
  EXPECT_EQ(d.cancel->method, "POST");
  EXPECT_EQ(d.cancel->url, "{+base}/v1/lro/{+handle}:cancel");
  EXPECT_EQ(d.cancel_timeout, 10s);
  EXPECT_EQ(file.codecs.poll.settings().format, json_body_format::json);

  const poll_status running =
      classify(file, R"({"name":"operations/3","done":false,"metadata":{"progressPercent":25}})");
  EXPECT_EQ(running.state, job_state::pending);
  EXPECT_EQ(running.progress, 0.25);
  const poll_status succeeded = classify(file, R"({"name":"operations/3","done":true,"response":{"answer":42}})");
  EXPECT_EQ(succeeded.state, job_state::succeeded);
  const poll_status failed =
      classify(file, R"({"name":"operations/3","done":true,"error":{"code":3,"message":"bad input"}})");
  EXPECT_EQ(failed.state, job_state::failed);
  EXPECT_EQ(failed.detail, R"(/done "true" and /error present: bad input)");
}

TEST(JobFilePresetTest, AzureAsyncOperations) {
  const jobpoll::job_file file = jobpoll::load_job_file(presets / "azure_async.json");
  const auto& d = file.description;
  EXPECT_EQ(d.submit.method, "PUT");
  EXPECT_EQ(d.submit.url, "{+base}/azure/resources/{name}");
  EXPECT_EQ(d.handle.from, jobpoll::handle_source::kind::header);
  EXPECT_EQ(d.handle.where, "Operation-Location");
  EXPECT_EQ(d.poll.url, "{+handle}");
  EXPECT_EQ(d.result.from, jobpoll::result_source::kind::fetch);
  EXPECT_EQ(d.result.request.url, "{+location}");
  EXPECT_EQ(d.result.pointer, "");
  EXPECT_EQ(d.result.from_answer, (std::map<std::string, std::string, std::less<>>{{"location", "/resourceLocation"}}));
  ASSERT_TRUE(d.cancel.has_value());
  EXPECT_EQ(d.cancel->method, "DELETE");
  EXPECT_EQ(d.cancel->url, "{+handle}");

  EXPECT_EQ(classify(file, R"({"status":"NotStarted"})").state, job_state::pending);
  EXPECT_EQ(classify(file, R"({"status":"Running","percentComplete":60})").progress, 0.6);
  EXPECT_EQ(classify(file, R"({"status":"Succeeded","resourceLocation":"/azure/resources/r1"})").state,
            job_state::succeeded);
  const poll_status failed =
      classify(file, R"({"status":"Failed","error":{"code":"QuotaExceeded","message":"no capacity"}})");
  EXPECT_EQ(failed.state, job_state::failed);
  EXPECT_EQ(failed.detail, "status \"Failed\": no capacity");
  EXPECT_EQ(classify(file, R"({"status":"Canceled"})").state, job_state::failed);
}

TEST(JobFilePresetTest, TheSeedJobApi) {
  const jobpoll::job_file file = jobpoll::load_job_file(presets / "jobs_api.json");
  const auto& d = file.description;
  EXPECT_EQ(d.submit.method, "POST");
  EXPECT_EQ(d.submit.url, "{+base}/v1/jobs");
  EXPECT_EQ(jobpoll::expand_template(d.submit.body, {{"tool", "blast"}, {"params", R"({"query":"ACGT"})"}},
                                     jobpoll::template_part::body),
            R"({"tool": "blast", "params": {"query":"ACGT"}})");
  EXPECT_EQ(d.submit.headers.find("Accept"), "application/json");
  EXPECT_EQ(d.handle.where, "/job_id");
  EXPECT_EQ(d.poll.url, "{+base}/v1/jobs/{handle}");
  EXPECT_EQ(d.result.pointer, "/result");
  ASSERT_TRUE(d.cancel.has_value());
  EXPECT_EQ(d.cancel->method, "DELETE");
  EXPECT_EQ(d.cancel->url, "{+base}/v1/jobs/{handle}");

  // Answers as tests/server/job_server.py gives them.
  const poll_status running =
      classify(file, R"({"job_id":"job-1","status":"running","progress":0.667,"eta_seconds":2})");
  EXPECT_EQ(running.state, job_state::pending);
  EXPECT_EQ(running.progress, 0.667);
  EXPECT_EQ(running.retry_after, 2s);
  EXPECT_EQ(classify(file, R"({"job_id":"job-1","status":"completed","progress":1.0,"result":{}})").state,
            job_state::succeeded);
  EXPECT_EQ(classify(file, R"({"job_id":"job-1","status":"failed","error":"job failed","progress":0.5})").detail,
            "status \"failed\": job failed");
  EXPECT_EQ(classify(file, R"({"job_id":"job-1","status":"cancelled"})").state, job_state::failed);
}

TEST(JobFilePresetTest, TheReportingExportIsPaged) {
  const jobpoll::job_file file = jobpoll::load_job_file(presets / "reporting_export.json");
  const auto& d = file.description;
  EXPECT_EQ(d.submit.method, "POST");
  EXPECT_EQ(d.handle.where, "/data/hash");
  ASSERT_EQ(d.result.from, jobpoll::result_source::kind::paged);
  EXPECT_EQ(d.result.request.url, "{+base}/transaction/get-job-data?hash={handle}&offset={offset}&limit={limit}");
  EXPECT_EQ(d.result.pages.items, "/data/data");
  EXPECT_EQ(d.result.pages.total, "/data/total");
  EXPECT_EQ(d.result.pages.page_size, 10u);
  EXPECT_TRUE(d.result.pages.first_page_in_poll_answer);
  EXPECT_FALSE(d.cancel.has_value());
  EXPECT_EQ(classify(file, R"({"data":{"hash":"h","status":"working"}})").state, job_state::pending);
  EXPECT_EQ(classify(file, R"({"data":{"status":"fail","message":"report failed"}})").detail,
            "status \"fail\": report failed");
}

TEST(JobFilePresetTest, TheEbiDispatcherReadsText) {
  const jobpoll::job_file file = jobpoll::load_job_file(presets / "ebi_dispatcher.json");
  const auto& d = file.description;
  EXPECT_EQ(d.submit.method, "POST");
  EXPECT_EQ(d.submit.url, "{+base}/ebi/run");
  EXPECT_EQ(d.submit.body, "");
  EXPECT_EQ(d.submit.form, (std::vector<std::pair<std::string, std::string>>{{"email", "{email}"},
                                                                              {"sequence", "{sequence}"}}));
  EXPECT_EQ(d.handle.where, "");
  EXPECT_EQ(d.poll.url, "{+base}/ebi/status/{handle}");
  EXPECT_EQ(d.result.from, jobpoll::result_source::kind::fetch);
  EXPECT_EQ(d.result.request.url, "{+base}/ebi/result/{handle}/out");
  EXPECT_FALSE(d.cancel.has_value());
  for (const json_codec* codec : {&file.codecs.submit, &file.codecs.poll, &file.codecs.result}) {
    EXPECT_EQ(codec->settings().format, json_body_format::text);
  }
  // The job id and the status words are plain text.
  EXPECT_EQ(file.codecs.submit.decode("ncbiblast-R20260101-123456-0001-1\n"), json("ncbiblast-R20260101-123456-0001-1"));
  EXPECT_EQ(classify(file, "RUNNING\n").state, job_state::pending);
  EXPECT_EQ(classify(file, "FINISHED").state, job_state::succeeded);
  EXPECT_EQ(classify(file, "NOT_FOUND").state, job_state::failed);
  EXPECT_EQ(classify(file, "<html>").error, jobpoll::errc::unknown_status);
}

// --- every field --------------------------------------------------------------------------

TEST(JobFileSchemaTest, EveryFieldIsRead) {
  const jobpoll::job_file file = jobpoll::parse_job_file(R"({
    "about": "everything",
    "submit": {"method": "PATCH", "url": "https://api.example/jobs", "body": "{\"a\": 1}",
               "headers": {"X-Api-Key": "{key}", "Accept": "application/json"}},
    "handle": {"header": "Location"},
    "poll": {"method": "GET", "url": "{+handle}"},
    "status": {"pointer": "/s", "succeeded": ["ok"], "failed": ["bad"], "pending": ["wait"],
               "rules": [{"when": [{"pointer": "/x", "present": false}, {"pointer": "/y", "equals": ["1", "2"]}],
                          "then": "pending", "detail": "/why"}],
               "progress": {"pointer": "/p", "scale": 1000}, "hint": {"pointer": "/eta", "unit": "250ms"},
               "failure_detail": "/err", "unknown": "pending"},
    "result": {"pages": {"url": "{+handle}/items?offset={offset}&limit={limit}"}, "items": "/items",
               "total": "/total", "page_size": 25, "first_offset": 1, "first_page_in_poll_answer": true,
               "from_answer": {"file": "/output_file_id"}},
    "cancel": {"method": "DELETE", "url": "{+handle}"},
    "cancel_timeout": "1.5s",
    "codec": {"submit": "auto", "result": "text"}
  })", "all.json");
  EXPECT_EQ(file.about, "everything");
  const auto& d = file.description;
  EXPECT_EQ(d.submit.method, "PATCH");
  EXPECT_EQ(d.submit.body, R"({"a": 1})");
  EXPECT_EQ(d.submit.headers.size(), 2u);
  EXPECT_EQ(d.submit.headers.find("x-api-key"), "{key}");
  EXPECT_EQ(d.handle.from, jobpoll::handle_source::kind::header);
  EXPECT_EQ(d.handle.where, "Location");
  EXPECT_EQ(d.result.from, jobpoll::result_source::kind::paged);
  EXPECT_EQ(d.result.request.url, "{+handle}/items?offset={offset}&limit={limit}");
  EXPECT_EQ(d.result.pages.items, "/items");
  EXPECT_EQ(d.result.pages.total, "/total");
  EXPECT_EQ(d.result.pages.page_size, 25u);
  EXPECT_EQ(d.result.pages.first_offset, 1u);
  EXPECT_TRUE(d.result.pages.first_page_in_poll_answer);
  EXPECT_EQ(d.result.from_answer.at("file"), "/output_file_id");
  EXPECT_EQ(d.cancel_timeout, 1500ms);
  EXPECT_EQ(file.codecs.submit.settings().format, json_body_format::by_content_type);
  EXPECT_EQ(file.codecs.poll.settings().format, json_body_format::json);
  EXPECT_EQ(file.codecs.result.settings().format, json_body_format::text);

  const poll_status ruled = file.status(json{{"y", 2}, {"why", "queued"}, {"p", 500}, {"eta", 4}});
  EXPECT_EQ(ruled.state, job_state::pending);
  EXPECT_EQ(ruled.detail, R"(/x absent and /y "1" | "2": queued)");
  EXPECT_EQ(ruled.progress, 0.5);
  EXPECT_EQ(ruled.retry_after, 1s);
  EXPECT_EQ(file.status(json{{"s", "bad"}, {"err", "boom"}}).detail, "status \"bad\": boom");
  EXPECT_EQ(file.status(json{{"s", "new"}}).state, job_state::pending);  // "unknown": "pending"
}

TEST(JobFileSchemaTest, DefaultsAndARulesOnlyStatus) {
  const jobpoll::job_file file = jobpoll::parse_job_file(R"({
    "submit": {"url": "/run"}, "handle": {"pointer": "/id"}, "poll": {"url": "/run/{handle}"},
    "status": {"rules": [{"when": [{"pointer": "/output", "present": true}], "then": "succeeded"},
                         {"when": [{"pointer": "/output", "present": false}], "then": "pending"}]}
  })", "min.json");
  EXPECT_EQ(file.about, "");
  EXPECT_EQ(file.description.submit.method, "GET");
  EXPECT_TRUE(file.description.submit.headers.empty());
  EXPECT_EQ(file.description.result.from, jobpoll::result_source::kind::poll_answer);
  EXPECT_EQ(file.description.result.pointer, "");
  EXPECT_FALSE(file.description.cancel.has_value());
  EXPECT_EQ(file.description.cancel_timeout, 10s);
  EXPECT_EQ(file.codecs.submit.settings().format, json_body_format::json);
  EXPECT_EQ(file.codecs.result.settings().max_depth, jobpoll::json_codec_options::default_max_depth);
  EXPECT_EQ(file.status(json{{"output", 1}}).state, job_state::succeeded);
  EXPECT_EQ(file.status(json::object()).detail, "/output absent");
}

// Exactly-once submission: a keyed, idempotent submit and a lookup by key.
TEST(JobFileSchemaTest, AnIdempotentSubmitAndALookup) {
  const jobpoll::job_file file = jobpoll::parse_job_file(R"({
    "submit": {"method": "POST", "url": "{+base}/v1/jobs", "headers": {"Idempotency-Key": "{job_key}"}},
    "handle": {"pointer": "/job_id"},
    "poll": {"url": "{+base}/v1/jobs/{handle}"},
    "status": {"pointer": "/status", "succeeded": ["done"]},
    "idempotent_submit": true,
    "lookup": {"url": "{+base}/v1/jobs?client_ref={job_key}", "headers": {"Accept": "application/json"},
               "handle": "/jobs/0/job_id"}
  })", "keyed.json");
  const auto& d = file.description;
  EXPECT_TRUE(d.idempotent_submit);
  ASSERT_TRUE(d.lookup.has_value());
  EXPECT_EQ(d.lookup->request.method, "GET");
  EXPECT_EQ(d.lookup->request.url, "{+base}/v1/jobs?client_ref={job_key}");
  EXPECT_EQ(d.lookup->request.headers.find("Accept"), "application/json");
  EXPECT_EQ(d.lookup->handle_pointer, "/jobs/0/job_id");

  // The key in a body or a form value counts too; false needs no key.
  const auto keyed_by = [](std::string_view submit) {
    return jobpoll::parse_job_file(file_with(std::string(R"("submit": )") + std::string(submit) +
                                             R"(, "idempotent_submit": true)"),
                                   "jobs.json")
        .description.idempotent_submit;
  };
  EXPECT_TRUE(keyed_by(R"({"method": "POST", "url": "/a", "body": "{\"ref\": \"{job_key}\"}"})"));
  EXPECT_TRUE(keyed_by(R"({"method": "POST", "url": "/a", "form": [["ref", "{job_key}"]]})"));
  EXPECT_TRUE(keyed_by(R"({"method": "PUT", "url": "/a/{+job_key}"})"));
  const auto plain = jobpoll::parse_job_file(file_with(R"("idempotent_submit": false)"), "jobs.json");
  EXPECT_FALSE(plain.description.idempotent_submit);
  EXPECT_FALSE(plain.description.lookup.has_value());
}

TEST(JobFileErrorTest, AnIdempotentSubmitAndALookupAreChecked) {
  EXPECT_EQ(error_for(file_with(R"("idempotent_submit": "yes")")),
            R"(jobs.json: /idempotent_submit: expected true or false, got "yes")");
  EXPECT_EQ(error_for(file_with(R"("idempotent_submit": true)")),
            "jobs.json: /idempotent_submit: true, but the submit request does not use {job_key} (in its URL, a "
            "header, the body or a form value), so the server could not tell a repeated submit from a new job");
  EXPECT_EQ(error_for(file_with(R"("lookup": "/v1/jobs?client_ref={job_key}")")),
            R"(jobs.json: /lookup: expected an object, got "/v1/jobs?client_ref={job_key}")");
  EXPECT_EQ(error_for(file_with(R"("lookup": {"url": "/v1/jobs?ref={job_key}"})")),
            "jobs.json: /lookup/handle: missing, expected a JSON pointer (where the lookup answer holds the job's "
            "handle)");
  EXPECT_EQ(error_for(file_with(R"("lookup": {"handle": "/id"})")),
            "jobs.json: /lookup/url: missing, expected a string (the URL template)");
  EXPECT_EQ(error_for(file_with(R"("lookup": {"url": "/v1/jobs", "handle": "jobs/0/id"})")),
            R"(jobs.json: /lookup/handle: expected a JSON pointer (it must be empty or start with '/'), got "jobs/0/id")");
  EXPECT_EQ(error_for(file_with(R"("lookup": {"url": "/v1/jobs", "handle": 3})")),
            "jobs.json: /lookup/handle: expected a JSON pointer string, got 3");
  EXPECT_EQ(error_for(file_with(R"("lookup": {"url": "/v1/jobs", "method": "GE T", "handle": "/id"})")),
            R"(jobs.json: /lookup/method: expected an HTTP method such as "POST", got "GE T")");
  EXPECT_EQ(error_for(file_with(R"("lookup": {"url": "/v1/jobs", "handle": "/id", "pointer": "/id"})")),
            "jobs.json: /lookup/pointer: unknown key (expected one of: method, url, body, headers, form, handle)");
  EXPECT_EQ(error_for(file_with(R"("lookup": {"url": "/v1/jobs", "handle": "/id", "handle": "/x"})")),
            "jobs.json: /lookup/handle: duplicate key");
  // A plain request has no "handle".
  EXPECT_EQ(error_for(file_with(R"("cancel": {"url": "/v1/jobs/{handle}", "handle": "/id"})")),
            "jobs.json: /cancel/handle: unknown key (expected one of: method, url, body, headers, form)");
}

TEST(JobFileSchemaTest, DurationsAreANumberAndAUnit) {
  using jobpoll::detail::parse_duration;
  EXPECT_EQ(parse_duration("500ms"), 500ms);
  EXPECT_EQ(parse_duration("10s"), 10s);
  EXPECT_EQ(parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(parse_duration("2m"), 2min);
  EXPECT_EQ(parse_duration("1h"), 1h);
  EXPECT_EQ(parse_duration("7ns"), 7ns);
  EXPECT_EQ(parse_duration("0.25us"), 250ns);
  EXPECT_EQ(parse_duration("0"), 0ns);
  EXPECT_EQ(parse_duration("9223372036854775807ns"), std::chrono::nanoseconds::max());
  for (const std::string_view bad : {"", "s", "10", "1.s", ".5s", "-1s", "1 s", "1S", "1sec", "1.5.5s",
                                     "9223372036854775808ns", "2562048h", "1e3s"}) {
    EXPECT_EQ(parse_duration(bad), std::nullopt) << bad;
  }
}

// --- errors -----------------------------------------------------------------------------------

TEST(JobFileErrorTest, AValueOfTheWrongTypeNamesTheFieldAndShowsIt) {
  EXPECT_EQ(error_for(file_with(R"("status": {"pointer": "/s", "succeeded": ["ok", 5]})")),
            "jobs.json: /status/succeeded/1: expected a string, got 5");
  EXPECT_EQ(error_for(file_with(R"("submit": {"url": ["/a"]})")),
            R"(jobs.json: /submit/url: expected a string, got ["/a"])");
  EXPECT_EQ(error_for(file_with(R"("poll": "GET /x")")), R"(jobs.json: /poll: expected an object, got "GET /x")");
  EXPECT_EQ(error_for(file_with(R"("submit": {"url": "/a", "method": "PO ST"})")),
            R"(jobs.json: /submit/method: expected an HTTP method such as "POST", got "PO ST")");
  EXPECT_EQ(error_for(file_with(R"("submit": {"url": "/a", "headers": {"X-A": "1\r\nX-B: 2"}})")),
            R"(jobs.json: /submit/headers/X-A: expected a header value without CR, LF or NUL, got "1\r\nX-B: 2")");
  EXPECT_EQ(error_for(file_with(R"("submit": {"url": "/a", "form": [["email"]]})")),
            R"(jobs.json: /submit/form/0: expected a [name, value] pair, got ["email"])");
  EXPECT_EQ(error_for(file_with(R"("submit": {"url": "/a", "body": "x", "form": []})")),
            "jobs.json: /submit/form: a request has a body or a form, not both");
  EXPECT_EQ(error_for(file_with(R"("result": {"pages": {"url": "/p"}, "items": "/i", "total": "/t", "page_size": 0})")),
            "jobs.json: /result/page_size: expected an integer >= 1, got 0");
  EXPECT_EQ(error_for(file_with(R"("result": {"pages": {"url": "/p"}, "items": "/i", )"
                                R"("total": "/t", "first_offset": -1})")),
            "jobs.json: /result/first_offset: expected an integer >= 0, got -1");
  EXPECT_EQ(error_for(file_with(R"("status": {"pointer": "/s", "succeeded": ["ok"], )"
                                R"("progress": {"pointer": "/p", "scale": 0}})")),
            "jobs.json: /status/progress/scale: expected a number > 0, got 0");
  EXPECT_EQ(error_for(file_with(R"("status": {"pointer": "/s", "succeeded": ["ok"], "unknown": "ignore"})")),
            R"(jobs.json: /status/unknown: expected "error" or "pending", got "ignore")");
  EXPECT_EQ(error_for(file_with(R"("status": {"rules": [{"when": [{"pointer": "/a", )"
                                R"("present": true}], "then": "done"}]})")),
            R"(jobs.json: /status/rules/0/then: expected "succeeded", "failed" or "pending", got "done")");
  EXPECT_EQ(error_for(file_with(R"("status": {"rules": [{"when": [{"pointer": "/a", )"
                                R"("present": "yes"}], "then": "succeeded"}]})")),
            R"(jobs.json: /status/rules/0/when/0/present: expected true or false, got "yes")");
  EXPECT_EQ(error_for(file_with(R"("status": {"rules": [{"when": [{"pointer": "/a", "present": true, )"
                                R"("equals": ["1"]}], "then": "succeeded"}]})")),
            R"(jobs.json: /status/rules/0/when/0: expected one of "present": true | false or "equals": [values], got {"equals":["1"],"pointer":"/a","present":true})");
  EXPECT_EQ(error_for(file_with(R"("status": {"rules": [{"when": [], "then": "succeeded"}]})")),
            "jobs.json: /status/rules/0/when: expected a non-empty array of conditions, got []");
  EXPECT_EQ(error_for(file_with(R"("handle": {"pointer": "/id", "header": "Location"})")),
            R"(jobs.json: /handle: expected one of "pointer" (into the submit answer) or "header", got {"header":"Location","pointer":"/id"})");
  EXPECT_EQ(error_for(file_with(R"("result": {"fetch": {"url": "/r"}, "pages": {"url": "/p"}})")),
            R"(jobs.json: /result: expected one of "fetch" or "pages", got both)");
  EXPECT_EQ(error_for(file_with(R"("result": {"fetch": {"url": "{+u}"}, "from_answer": {"the url": "/u"}})")),
            R"(jobs.json: /result/from_answer/the url: expected a placeholder name (a letter or '_', )"
            R"(then letters, digits, '_', '.', '-'), got "the url")");
  EXPECT_EQ(error_for("[1, 2]"), "jobs.json: expected an object, got [1,2]");
}

TEST(JobFileErrorTest, ALongValueIsShownByItsStart) {
  const std::string message = error_for(file_with(R"("poll": {"url": ")" + std::string(5000, 'x') + R"(", "method": 1})"));
  EXPECT_EQ(message, "jobs.json: /poll/method: expected a string, got 1");
  const std::string long_value = error_for(file_with(R"("cancel_timeout": ")" + std::string(5000, '9') + R"(")"));
  EXPECT_TRUE(long_value.starts_with("jobs.json: /cancel_timeout: expected a duration > 0")) << long_value;
  EXPECT_LT(long_value.size(), 250u) << long_value;
  EXPECT_TRUE(long_value.ends_with("...")) << long_value;
}

TEST(JobFileErrorTest, AnUnknownKeyIsAnErrorNamingTheKnownOnes) {
  EXPECT_EQ(error_for(file_with(R"("status": {"pointer": "/s", "succeded": ["ok"]})")),
            "jobs.json: /status/succeded: unknown key (expected one of: pointer, succeeded, failed, pending, rules, "
            "progress, hint, failure_detail, unknown)");
  EXPECT_EQ(error_for(file_with(R"("timeout": "10s")")),
            "jobs.json: /timeout: unknown key (expected one of: about, submit, handle, poll, status, result, cancel, "
            "cancel_timeout, idempotent_submit, lookup, codec)");
  EXPECT_EQ(error_for(file_with(R"("result": {"pointer": "/r", "from_answer": {}})")),
            "jobs.json: /result/from_answer: unknown key (expected one of: pointer, fetch, pages)");
  EXPECT_EQ(error_for(file_with(R"("handle": {"pointer": "/id", "a/b~": 1})")),
            "jobs.json: /handle/a~1b~0: unknown key (expected one of: pointer, header)");
}

TEST(JobFileErrorTest, AKeyGivenTwiceIsAnError) {
  EXPECT_EQ(error_for(file_with(R"("status": {"pointer": "/s", "succeeded": ["ok"], "pointer": "/t"})")),
            "jobs.json: /status/pointer: duplicate key");
  EXPECT_EQ(error_for(file_with(R"("submit": {"url": "/a", "form": [["a", "b"], {"x": 1, "x": 2}]})")),
            "jobs.json: /submit/form/1/x: duplicate key");
}

TEST(JobFileErrorTest, AMissingFieldIsNamed) {
  EXPECT_EQ(error_for(R"({"handle": {"pointer": "/id"}})"), "jobs.json: /submit: missing, expected a request object");
  EXPECT_EQ(error_for(file_with(R"("submit": {"method": "POST"})")),
            "jobs.json: /submit/url: missing, expected a string (the URL template)");
  EXPECT_EQ(error_for(file_with(R"("status": {"pointer": "/s", "failed": ["x"]})")),
            "jobs.json: /status/succeeded: missing, expected an array of the status values that mean succeeded");
  EXPECT_EQ(error_for(file_with(R"("status": {"pointer": "/s", "succeeded": []})")),
            "jobs.json: /status/succeeded: expected at least one status value, got []");
  EXPECT_EQ(error_for(file_with(R"("status": {})")),
            R"(jobs.json: /status/pointer: missing, expected a JSON pointer (or "rules" alone))");
  EXPECT_EQ(error_for(file_with(R"("status": {"succeeded": ["ok"]})")),
            R"(jobs.json: /status/succeeded: a status list needs "pointer", the status value's pointer)");
  EXPECT_EQ(error_for(file_with(R"("result": {"pages": {"url": "/p"}, "items": "/i"})")),
            "jobs.json: /result/total: missing, expected a JSON pointer (the total item count)");
  EXPECT_EQ(error_for(file_with(R"("status": {"pointer": "/s", "succeeded": ["ok"], "hint": {"unit": "1s"}})")),
            "jobs.json: /status/hint/pointer: missing, expected a JSON pointer");
}

TEST(JobFileErrorTest, StatusRulesThatCannotWorkAreNamed) {
  EXPECT_EQ(error_for(file_with(R"("status": {"pointer": "/s", "succeeded": ["ok"], "failed": ["no", "ok"]})")),
            R"(jobs.json: /status/failed/1: "ok" is also in /status/succeeded (a value means one outcome))");
  EXPECT_EQ(error_for(file_with(R"("status": {"pointer": "/s", "succeeded": ["ok"], )"
                                R"("failed": ["x"], "pending": ["x"]})")),
            R"(jobs.json: /status/pending/0: "x" is also in /status/failed (a value means one outcome))");
  EXPECT_EQ(error_for(file_with(R"("status": {"rules": [{"when": [{"pointer": "/e", )"
                                R"("present": true}], "then": "failed"}]})")),
            R"(jobs.json: /status/rules: expected a rule whose "then" is "succeeded" (without "pointer" only rules decide))");
  EXPECT_EQ(error_for(file_with(R"("status": {"rules": [{"when": [{"pointer": "/e", )"
                                R"("equals": []}], "then": "succeeded"}]})")),
            "jobs.json: /status/rules/0/when/0/equals: expected at least one value, got []");
}

TEST(JobFileErrorTest, AMalformedPointerIsNamed) {
  EXPECT_EQ(error_for(file_with(R"("handle": {"pointer": "id"})")),
            R"(jobs.json: /handle/pointer: expected a JSON pointer (it must be empty or start with '/'), got "id")");
  EXPECT_EQ(error_for(file_with(R"("status": {"pointer": "/s~2", "succeeded": ["ok"]})")),
            "jobs.json: /status/pointer: expected a JSON pointer (it must follow every '~' with 0 or 1 (~0 is '~', ~1 "
            "is '/')), got \"/s~2\"");
  EXPECT_EQ(error_for(file_with(R"("status": {"rules": [{"when": [{"pointer": "done", )"
                                R"("equals": ["true"]}], "then": "succeeded"}]})")),
            R"(jobs.json: /status/rules/0/when/0/pointer: expected a JSON pointer (it must be empty or start with '/'), got "done")");
  EXPECT_EQ(error_for(file_with(R"("status": {"rules": [{"when": [{"pointer": "/e", "present": true}], )"
                                R"("then": "succeeded", "detail": "msg"}]})")),
            R"(jobs.json: /status/rules/0/detail: expected a JSON pointer (it must be empty or start with '/'), got "msg")");
  EXPECT_EQ(error_for(file_with(R"("result": {"fetch": {"url": "{+u}"}, "from_answer": {"u": "x"}})")),
            R"(jobs.json: /result/from_answer/u: expected a JSON pointer (it must be empty or start with '/'), got "x")");
  EXPECT_EQ(error_for(file_with(R"("status": {"pointer": "/s", "succeeded": ["ok"], "failure_detail": 3})")),
            "jobs.json: /status/failure_detail: expected a JSON pointer string, got 3");
}

TEST(JobFileErrorTest, ABadDurationIsNamed) {
  EXPECT_EQ(error_for(file_with(R"("cancel_timeout": "10 s")")),
            R"(jobs.json: /cancel_timeout: expected a duration > 0 such as "500ms", "10s", "1.5s", "2m", got "10 s")");
  EXPECT_EQ(error_for(file_with(R"("cancel_timeout": 10)")),
            R"(jobs.json: /cancel_timeout: expected a duration > 0 such as "500ms", "10s", "1.5s", "2m", got 10)");
  EXPECT_EQ(error_for(file_with(R"("cancel_timeout": "0")")),
            R"(jobs.json: /cancel_timeout: expected a duration > 0 such as "500ms", "10s", "1.5s", "2m", got "0")");
  EXPECT_EQ(error_for(file_with(R"("status": {"pointer": "/s", "succeeded": ["ok"], )"
                                R"("hint": {"pointer": "/e", "unit": "1x"}})")),
            R"(jobs.json: /status/hint/unit: expected a duration > 0 such as "500ms", "10s", "1.5s", "2m", got "1x")");
}

TEST(JobFileErrorTest, ABadCodecIsNamed) {
  EXPECT_EQ(error_for(file_with(R"("codec": "xml")")),
            R"(jobs.json: /codec: expected "json", "text" or "auto", got "xml")");
  EXPECT_EQ(error_for(file_with(R"("codec": {"poll": "JSON"})")),
            R"(jobs.json: /codec/poll: expected "json", "text" or "auto", got "JSON")");
  EXPECT_EQ(error_for(file_with(R"("codec": {"status": "json"})")),
            "jobs.json: /codec/status: unknown key (expected one of: submit, poll, result)");
  EXPECT_EQ(error_for(file_with(R"("codec": ["json"])")),
            R"(jobs.json: /codec: expected "json", "text" or "auto", got ["json"])");
}

TEST(JobFileErrorTest, TextThatIsNotJsonNamesTheFileAndThePosition) {
  EXPECT_EQ(error_for(""), "jobs.json: not JSON: the file is empty");
  EXPECT_EQ(error_for("{\n  \"submit\": {\"url\": \"/a\"},\n  \"handle\" {}\n}"),
            "jobs.json: not JSON: parse error at line 3, column 12: syntax error while parsing object separator - "
            "unexpected '{'; expected ':'");
  EXPECT_EQ(error_for(R"({"cancel_timeout": 1e999})"),
            "jobs.json: not JSON: number overflow parsing '1e999' at byte 19");
  EXPECT_EQ(error_for(std::string(100'000, '[') + std::string(100'000, ']')),
            "jobs.json: nesting deeper than 32 levels at byte 32");
}

TEST(JobFileErrorTest, AFileThatCannotBeReadNamesThePathAndTheReason) {
  const jobpoll_test::temp_dir dir;
  const auto message = [](const std::filesystem::path& path) -> std::optional<std::system_error> {
    try {
      jobpoll::load_job_file(path);
    } catch (const std::system_error& error) {
      return error;
    }
    return std::nullopt;
  };
  const auto missing = message(dir / "missing.json");
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->code(), std::errc::no_such_file_or_directory);
  EXPECT_EQ(std::string(missing->what()),
            "cannot read job description " + (dir / "missing.json").string() + ": No such file or directory");

  const auto directory = message(dir.path());
  ASSERT_TRUE(directory.has_value());
  EXPECT_EQ(directory->code(), std::errc::is_a_directory);
  EXPECT_EQ(std::string(directory->what()),
            "cannot read job description " + dir.path().string() + ": Is a directory");

  const auto big = dir / "big.json";
  std::ofstream(big) << file_with(R"("about": ")" + std::string(2 * 1024 * 1024, 'a') + R"(")");
  const auto too_large = message(big);
  ASSERT_TRUE(too_large.has_value());
  EXPECT_EQ(too_large->code(), jobpoll::errc::invalid_argument);
  EXPECT_EQ(std::string(too_large->what()),
            big.string() + ": larger than 1048576 bytes, too large for a job description" + std::string(code_suffix));
}

TEST(JobFileErrorTest, AFileOnDiskIsNamedByItsPath) {
  const jobpoll_test::temp_dir dir;
  const auto path = dir / "typo.json";
  std::ofstream(path) << file_with(R"("cancel": {"url": "/c", "methd": "DELETE"})");
  try {
    jobpoll::load_job_file(path);
    ADD_FAILURE() << "no error";
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code(), jobpoll::errc::invalid_argument);
    EXPECT_EQ(std::string(error.what()),
              path.string() + ": /cancel/methd: unknown key (expected one of: method, url, body, headers, form)" +
                  std::string(code_suffix));
  }
}

}  // namespace
