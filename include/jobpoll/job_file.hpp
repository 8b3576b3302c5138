#pragma once
// A whole job kind as a JSON file: the requests and where their answers are
// read (`job_description`), the status policy (`field_status`) and the codec
// of each phase, so a job API is described once, outside the code, and
// shared by the library and `jobpoll --describe`. A leaf: it reads the file
// with nlohmann::json (CMake target jobpoll::json).
//
// The file is one JSON object. Every key is checked: an unknown key is an
// error (a typo must not pass silently), and so is a key given twice.
//
//     {
//       "about": "Google long-running operations",      (optional, for people)
//       "submit": {                                      (required: a request)
//         "method": "POST",                              (default "GET")
//         "url": "{+base}/v1/lro/operations",            (required)
//         "body": "{}",                                  (default "")
//         "headers": {"Accept": "application/json"},     (default none)
//         "form": [["email", "{email}"]]                 (form fields in order; no "body" then)
//       },
//       "handle": {"pointer": "/name"},                  (required: or {"header": "Location"})
//       "poll": {"url": "{+base}/v1/lro/{+handle}"},     (required: a request)
//       "status": {                                      (required)
//         "pointer": "/done",                            (the status value; omit for rules only)
//         "succeeded": ["true"],                         (with "pointer": at least one)
//         "failed": [],                                  (default none)
//         "pending": ["false"],                          (default none)
//         "rules": [                                     (checked first, in order)
//           {"when": [{"pointer": "/done", "equals": ["true"]},
//                     {"pointer": "/error", "present": true}],
//            "then": "failed",                           ("succeeded", "failed" or "pending")
//            "detail": "/error/message"}                 (optional)
//         ],
//         "progress": {"pointer": "/metadata/progressPercent", "scale": 100},  (scale default 1)
//         "hint": {"pointer": "/eta", "unit": "1s"},     (unit default "1s")
//         "failure_detail": "/error",
//         "unknown": "error"                             (or "pending"; default "error")
//       },
//       "result": {"pointer": "/response"},              (default {"pointer": ""}), or
//                 {"fetch": {request}, "pointer": "", "from_answer": {"location": "/resourceLocation"}}, or
//                 {"pages": {request}, "items": "/items", "total": "/total", "page_size": 100,
//                  "first_offset": 0, "first_page_in_poll_answer": false, "from_answer": {...}}
//       "cancel": {"method": "POST", "url": "{+base}/v1/lro/{+handle}:cancel"},  (optional)
//       "cancel_timeout": "10s",                         (default "10s")
//       "idempotent_submit": true,                       (default false; the submit must use {job_key})
//       "lookup": {"url": "{+base}/v1/jobs?client_ref={job_key}",    (optional: a request, and
//                  "handle": "/jobs/0/id"},                           where its answer holds the handle)
//       "codec": "json"                                  ("json", "text" or "auto", or per phase:
//                                                         {"submit": "text", "poll": "json", "result": "auto"})
//     }
//
// Values are what the types they fill say (see job_description.hpp and
// field_status.hpp): templates with {name} and {+name} placeholders, RFC 6901
// pointers, status values as `Codec::text` spells them ("true" for a JSON
// true), durations as a number and a unit (500ms, 10s, 1.5s, 2m, 1h; units
// ns, us, ms, s, m, h). A condition is {"pointer", "present": true | false}
// or {"pointer", "equals": [texts]}. The codec "text" reads a body as its
// trimmed text (a JSON string: pointer "" is all of it), "auto" reads text/*
// answers as text and any other as JSON (`json_body_format`).

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "jobpoll/codec/json.hpp"
#include "jobpoll/detail/duration_text.hpp"
#include "jobpoll/detail/posix_file.hpp"
#include "jobpoll/detail/url_template.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/field_status.hpp"
#include "jobpoll/http.hpp"
#include "jobpoll/job_description.hpp"
#include "jobpoll/phase_codecs.hpp"

namespace jobpoll {

/// A job kind as a description file gives it: everything a `job_client`
/// needs but the transport, the params and the timing options.
struct job_file {
  std::string about;                  ///< the file's "about" text, "" when it has none
  job_description description;
  field_status<json_codec> status;
  phase_codecs<json_codec> codecs;
};

namespace detail {

/// The largest description file read: a description is a few kilobytes,
/// and a file is never allowed to exhaust memory.
inline constexpr std::size_t job_file_max_bytes = 1024 * 1024;
/// The deepest nesting of arrays and objects read (a description needs 5).
inline constexpr std::size_t job_file_max_depth = 32;

/// The codec of one phase, as the file's "codec" names its body format.
inline json_codec job_file_codec(json_body_format format) {
  return json_codec{json_codec_options{.max_depth = json_codec_options::default_max_depth, .format = format}};
}

/// Reads one description file, throwing `errc::invalid_argument` messages
/// "<origin>: <pointer>: <what>" for the first thing wrong in it.
class job_file_reader {
 public:
  using json = nlohmann::json;

  explicit job_file_reader(std::string_view origin) : origin_(origin) {}

  job_file read(std::string_view text) const {
    const json document = parse(text);
    const object root(*this, document, "", {"about", "submit", "handle", "poll", "status", "result", "cancel",
                                            "cancel_timeout", "idempotent_submit", "lookup", "codec"});
    job_description description;
    description.submit = request(root.need("submit", "a request object"), "/submit");
    description.handle = handle(root.need("handle", "an object with \"pointer\" or \"header\""), "/handle");
    description.poll = request(root.need("poll", "a request object"), "/poll");
    if (const json* result = root.find("result")) description.result = result_source_at(*result, "/result");
    if (const json* cancel = root.find("cancel")) description.cancel = request(*cancel, "/cancel");
    if (const json* timeout = root.find("cancel_timeout")) {
      description.cancel_timeout = duration(*timeout, "/cancel_timeout");
    }
    if (const json* idempotent = root.find("idempotent_submit")) {
      description.idempotent_submit = boolean(*idempotent, "/idempotent_submit");
      if (description.idempotent_submit && !uses_placeholder(description.submit, job_key_name)) {
        fail("/idempotent_submit",
             "true, but the submit request does not use {job_key} (in its URL, a header, the body or a form "
             "value), so the server could not tell a repeated submit from a new job");
      }
    }
    if (const json* lookup = root.find("lookup")) description.lookup = lookup_at(*lookup, "/lookup");
    return {root.find("about") ? string(*root.find("about"), "/about") : std::string{}, std::move(description),
            status(root.need("status", "a status object"), "/status"),
            root.find("codec") ? codecs(*root.find("codec"), "/codec") : phase_codecs<json_codec>{}};
  }

 private:
  /// The members of one JSON object, every key checked against `keys`.
  class object {
   public:
    object(const job_file_reader& reader, const json& value, std::string at,
           std::initializer_list<std::string_view> keys)
        : reader_(reader), value_(value), at_(std::move(at)) {
      if (!value.is_object()) reader.expected(at_, "an object", value);
      for (const auto& [key, member] : value.items()) {
        if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
        std::string known;
        for (const auto name : keys) known += (known.empty() ? "" : ", ") + std::string{name};
        reader.fail(at_ + "/" + pointer_token(key), "unknown key (expected one of: " + known + ")");
      }
    }

    const json* find(std::string_view key) const {
      const auto member = value_.find(key);
      return member == value_.end() ? nullptr : &*member;
    }

    /// The member `key`; missing, it is an error saying what was `expected`.
    const json& need(std::string_view key, std::string_view expected) const {
      if (const json* member = find(key)) return *member;
      reader_.fail(at(key), "missing, expected " + std::string{expected});
    }

    std::string at(std::string_view key) const { return at_ + "/" + pointer_token(key); }

   private:
    const job_file_reader& reader_;
    const json& value_;
    std::string at_;
  };

  [[noreturn]] void fail(const std::string& at, const std::string& what) const {
    throw std::system_error(errc::invalid_argument, origin_ + ": " + (at.empty() ? "" : at + ": ") + what);
  }

  [[noreturn]] void expected(const std::string& at, std::string_view what, const json& got) const {
    fail(at, "expected " + std::string{what} + ", got " + bounded_json_preview(got, 100));
  }

  /// The document, depth and duplicate keys checked (nlohmann keeps the
  /// last of two equal keys: a pasted block would silently win).
  json parse(std::string_view text) const {
    if (text.empty()) fail("", "not JSON: the file is empty");
    if (const auto at = json_too_deep_at(text, job_file_max_depth)) fail("", too_deep_message(job_file_max_depth, *at));
    struct level {
      bool is_object;
      std::vector<std::string> keys;
      std::size_t index = 0;
    };
    std::vector<level> open;
    const auto path = [&] {
      std::string out;
      for (const auto& l : open) out += "/" + (l.is_object ? pointer_token(l.keys.back()) : std::to_string(l.index));
      return out;
    };
    const auto next_element = [&] {
      if (!open.empty() && !open.back().is_object) ++open.back().index;
    };
    using event = json::parse_event_t;
    const json::parser_callback_t check = [&](int, event e, json& parsed) {
      switch (e) {
        case event::object_start: open.push_back({true, {}}); break;
        case event::array_start: open.push_back({false, {}}); break;
        case event::key: {
          const auto& key = parsed.get_ref<const std::string&>();
          auto& keys = open.back().keys;
          const bool repeated = std::find(keys.begin(), keys.end(), key) != keys.end();
          keys.push_back(key);
          if (repeated) fail(path(), "duplicate key");
          break;
        }
        case event::object_end:
        case event::array_end:
          open.pop_back();
          next_element();
          break;
        case event::value: next_element(); break;
      }
      return true;
    };
    try {
      return json::parse(text, check);
    } catch (const json::exception& error) {
      fail("", "not JSON: " + json_parse_failure(error, text));
    }
  }

  std::string string(const json& value, const std::string& at) const {
    if (!value.is_string()) expected(at, "a string", value);
    return value.get<std::string>();
  }

  std::string pointer(const json& value, const std::string& at) const {
    if (!value.is_string()) expected(at, "a JSON pointer string", value);
    const std::string& text = value.get_ref<const std::string&>();
    if (const auto problem = pointer_syntax_error(text); !problem.empty()) {
      expected(at, "a JSON pointer (it " + std::string{problem} + ")", value);
    }
    return text;
  }

  std::vector<std::string> strings(const json& value, const std::string& at) const {
    if (!value.is_array()) expected(at, "an array of strings", value);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < value.size(); ++i) out.push_back(string(value[i], at + "/" + std::to_string(i)));
    return out;
  }

  bool boolean(const json& value, const std::string& at) const {
    if (!value.is_boolean()) expected(at, "true or false", value);
    return value.get<bool>();
  }

  std::size_t count(const json& value, const std::string& at, std::size_t least) const {
    const std::string shape = least == 0 ? "an integer >= 0" : "an integer >= " + std::to_string(least);
    // nlohmann reads every integer >= 0 as unsigned: a negative one is not.
    if (!value.is_number_unsigned() || value.get<std::uint64_t>() < least) expected(at, shape, value);
    return static_cast<std::size_t>(value.get<std::uint64_t>());
  }

  /// A duration > 0.
  std::chrono::nanoseconds duration(const json& value, const std::string& at) const {
    static constexpr std::string_view shape = "a duration > 0 such as \"500ms\", \"10s\", \"1.5s\", \"2m\"";
    if (!value.is_string()) expected(at, shape, value);
    const auto parsed = parse_duration(value.get_ref<const std::string&>());
    if (!parsed || *parsed <= std::chrono::nanoseconds::zero()) expected(at, shape, value);
    return *parsed;
  }

  /// An HTTP token (RFC 9110): a method or a header name.
  std::string token(const json& value, const std::string& at, std::string_view what) const {
    const std::string text = string(value, at);
    if (!is_http_token(text)) expected(at, what, value);
    return text;
  }

  request_template request(const json& value, const std::string& at) const {
    return request_fields(object(*this, value, at, {"method", "url", "body", "headers", "form"}));
  }

  /// A lookup: a request with the pointer to the handle in its answer.
  job_lookup lookup_at(const json& value, const std::string& at) const {
    const object fields(*this, value, at, {"method", "url", "body", "headers", "form", "handle"});
    request_template lookup_request = request_fields(fields);
    return {std::move(lookup_request),
            pointer(fields.need("handle", "a JSON pointer (where the lookup answer holds the job's handle)"),
                    fields.at("handle"))};
  }

  /// The request fields of an object whose keys were checked.
  request_template request_fields(const object& fields) const {
    request_template out;
    if (const json* method = fields.find("method")) {
      out.method = token(*method, fields.at("method"), "an HTTP method such as \"POST\"");
    }
    out.url = string(fields.need("url", "a string (the URL template)"), fields.at("url"));
    if (const json* body = fields.find("body")) out.body = string(*body, fields.at("body"));
    if (const json* headers = fields.find("headers")) {
      if (!headers->is_object()) expected(fields.at("headers"), "an object of header names and values", *headers);
      for (const auto& [name, line] : headers->items()) {
        const std::string where = fields.at("headers") + "/" + pointer_token(name);
        token(json(name), where, "a header name (an HTTP token)");
        const std::string text = string(line, where);
        if (text.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
          expected(where, "a header value without CR, LF or NUL", line);
        }
        out.headers.add(name, text);
      }
    }
    if (const json* form = fields.find("form")) {
      const std::string where = fields.at("form");
      if (!form->is_array()) expected(where, "an array of [name, value] pairs", *form);
      if (!out.body.empty()) fail(where, "a request has a body or a form, not both");
      for (std::size_t i = 0; i < form->size(); ++i) {
        const json& pair = (*form)[i];
        const std::string pair_at = where + "/" + std::to_string(i);
        if (!pair.is_array() || pair.size() != 2) expected(pair_at, "a [name, value] pair", pair);
        out.form.emplace_back(string(pair[0], pair_at + "/0"), string(pair[1], pair_at + "/1"));
      }
    }
    return out;
  }

  handle_source handle(const json& value, const std::string& at) const {
    const object fields(*this, value, at, {"pointer", "header"});
    const json* from_body = fields.find("pointer");
    const json* from_header = fields.find("header");
    if ((from_body == nullptr) == (from_header == nullptr)) {
      expected(at, "one of \"pointer\" (into the submit answer) or \"header\"", value);
    }
    if (from_body) return handle_source::body(pointer(*from_body, fields.at("pointer")));
    return handle_source::header(token(*from_header, fields.at("header"), "a header name (an HTTP token)"));
  }

  result_source result_source_at(const json& value, const std::string& at) const {
    if (!value.is_object()) expected(at, "an object", value);
    const bool fetch = value.contains("fetch");
    const bool pages = value.contains("pages");
    if (fetch && pages) fail(at, "expected one of \"fetch\" or \"pages\", got both");
    if (fetch) {
      const object fields(*this, value, at, {"fetch", "pointer", "from_answer"});
      result_source out = result_source::fetch(request(*fields.find("fetch"), fields.at("fetch")));
      if (const json* p = fields.find("pointer")) out.pointer = pointer(*p, fields.at("pointer"));
      if (const json* names = fields.find("from_answer")) {
        out.from_answer = from_answer(*names, fields.at("from_answer"));
      }
      return out;
    }
    if (pages) {
      const object fields(*this, value, at, {"pages", "items", "total", "page_size", "first_offset",
                                             "first_page_in_poll_answer", "from_answer"});
      paging how;
      how.items = pointer(fields.need("items", "a JSON pointer (a page's array of items)"), fields.at("items"));
      how.total = pointer(fields.need("total", "a JSON pointer (the total item count)"), fields.at("total"));
      if (const json* size = fields.find("page_size")) how.page_size = count(*size, fields.at("page_size"), 1);
      if (const json* first = fields.find("first_offset")) {
        how.first_offset = count(*first, fields.at("first_offset"), 0);
      }
      if (const json* in_poll = fields.find("first_page_in_poll_answer")) {
        how.first_page_in_poll_answer = boolean(*in_poll, fields.at("first_page_in_poll_answer"));
      }
      result_source out = result_source::paged(request(*fields.find("pages"), fields.at("pages")), std::move(how));
      if (const json* names = fields.find("from_answer")) {
        out.from_answer = from_answer(*names, fields.at("from_answer"));
      }
      return out;
    }
    const object fields(*this, value, at, {"pointer", "fetch", "pages"});
    return result_source::in_poll_answer(fields.find("pointer") ? pointer(*fields.find("pointer"), fields.at("pointer"))
                                                                : std::string{});
  }

  std::map<std::string, std::string, std::less<>> from_answer(const json& value, const std::string& at) const {
    if (!value.is_object()) expected(at, "an object of placeholder names and pointers", value);
    std::map<std::string, std::string, std::less<>> out;
    for (const auto& [name, where] : value.items()) {
      const std::string name_at = at + "/" + pointer_token(name);
      if (!is_placeholder_name(name)) {
        fail(name_at, "expected a placeholder name (a letter or '_', then letters, digits, '_', '.', '-'), got " +
                          in_quotes(name, 100));
      }
      out.emplace(name, pointer(where, name_at));
    }
    return out;
  }

  field_status<json_codec> status(const json& value, const std::string& at) const {
    const object fields(*this, value, at, {"pointer", "succeeded", "failed", "pending", "rules", "progress", "hint",
                                           "failure_detail", "unknown"});
    std::vector<field_rule> rules;
    if (const json* list = fields.find("rules")) rules = rules_at(*list, fields.at("rules"));
    std::optional<field_status<json_codec>> policy;
    try {
      if (const json* status_pointer = fields.find("pointer")) {
        policy.emplace(pointer(*status_pointer, fields.at("pointer")), values(fields));
        for (auto& r : rules) policy->rule(std::move(r));
      } else {
        for (const std::string_view list : {"succeeded", "failed", "pending"}) {
          if (fields.find(list)) fail(fields.at(list), "a status list needs \"pointer\", the status value's pointer");
        }
        if (!fields.find("rules")) fail(fields.at("pointer"), "missing, expected a JSON pointer (or \"rules\" alone)");
        const auto succeeds = [](const field_rule& r) { return r.then == rule_outcome::succeeded; };
        if (std::none_of(rules.begin(), rules.end(), succeeds)) {
          fail(fields.at("rules"),
               "expected a rule whose \"then\" is \"succeeded\" (without \"pointer\" only rules decide)");
        }
        policy.emplace(field_status<json_codec>::from_rules(std::move(rules)));
      }
    } catch (const std::invalid_argument& error) {
      fail(at, error.what());  // a rule field_status enforces beyond the checks above
    }
    if (const json* progress = fields.find("progress")) {
      const object p(*this, *progress, fields.at("progress"), {"pointer", "scale"});
      double scale = 1.0;
      if (const json* s = p.find("scale")) {
        if (!s->is_number() || !(s->get<double>() > 0.0) || !std::isfinite(s->get<double>())) {
          expected(p.at("scale"), "a number > 0", *s);
        }
        scale = s->get<double>();
      }
      policy->progress_at(pointer(p.need("pointer", "a JSON pointer"), p.at("pointer")), scale);
    }
    if (const json* hint = fields.find("hint")) {
      const object h(*this, *hint, fields.at("hint"), {"pointer", "unit"});
      const std::chrono::nanoseconds unit =
          h.find("unit") ? duration(*h.find("unit"), h.at("unit")) : std::chrono::seconds{1};
      policy->hint_at(pointer(h.need("pointer", "a JSON pointer"), h.at("pointer")), unit);
    }
    if (const json* detail = fields.find("failure_detail")) {
      policy->failure_detail_at(pointer(*detail, fields.at("failure_detail")));
    }
    if (const json* unknown = fields.find("unknown")) {
      if (*unknown == "error") {
        policy->on_unknown(unknown_is::error);
      } else if (*unknown == "pending") {
        policy->on_unknown(unknown_is::pending);
      } else {
        expected(fields.at("unknown"), "\"error\" or \"pending\"", *unknown);
      }
    }
    return std::move(*policy);
  }

  /// The three status lists, each value in one list only.
  field_status<json_codec>::values values(const object& fields) const {
    field_status<json_codec>::values out;
    const std::pair<std::string_view, std::vector<std::string>*> lists[] = {
        {"succeeded", &out.succeeded}, {"failed", &out.failed}, {"pending", &out.pending}};
    for (const auto& [name, list] : lists) {
      if (const json* given = fields.find(name)) *list = strings(*given, fields.at(name));
    }
    if (out.succeeded.empty()) {
      if (const json* given = fields.find("succeeded")) {
        expected(fields.at("succeeded"), "at least one status value", *given);
      }
      fail(fields.at("succeeded"), "missing, expected an array of the status values that mean succeeded");
    }
    for (std::size_t a = 0; a < std::size(lists); ++a) {
      for (std::size_t b = a + 1; b < std::size(lists); ++b) {
        const auto& later = *lists[b].second;
        for (std::size_t i = 0; i < later.size(); ++i) {
          const auto& earlier = *lists[a].second;
          if (std::find(earlier.begin(), earlier.end(), later[i]) != earlier.end()) {
            fail(fields.at(lists[b].first) + "/" + std::to_string(i),
                 in_quotes(later[i], 100) + " is also in " + fields.at(lists[a].first) +
                     " (a value means one outcome)");
          }
        }
      }
    }
    return out;
  }

  std::vector<field_rule> rules_at(const json& value, const std::string& at) const {
    if (!value.is_array()) expected(at, "an array of rules", value);
    std::vector<field_rule> out;
    for (std::size_t i = 0; i < value.size(); ++i) {
      const object fields(*this, value[i], at + "/" + std::to_string(i), {"when", "then", "detail"});
      field_rule rule;
      const json& when = fields.need("when", "an array of conditions");
      if (!when.is_array() || when.empty()) expected(fields.at("when"), "a non-empty array of conditions", when);
      for (std::size_t c = 0; c < when.size(); ++c) {
        rule.when.push_back(condition(when[c], fields.at("when") + "/" + std::to_string(c)));
      }
      const json& then = fields.need("then", "\"succeeded\", \"failed\" or \"pending\"");
      if (then == "succeeded") {
        rule.then = rule_outcome::succeeded;
      } else if (then == "failed") {
        rule.then = rule_outcome::failed;
      } else if (then == "pending") {
        rule.then = rule_outcome::pending;
      } else {
        expected(fields.at("then"), "\"succeeded\", \"failed\" or \"pending\"", then);
      }
      if (const json* detail = fields.find("detail")) rule.detail = pointer(*detail, fields.at("detail"));
      out.push_back(std::move(rule));
    }
    return out;
  }

  field_condition condition(const json& value, const std::string& at) const {
    const object fields(*this, value, at, {"pointer", "present", "equals"});
    std::string where = pointer(fields.need("pointer", "a JSON pointer"), fields.at("pointer"));
    const json* present = fields.find("present");
    const json* equals = fields.find("equals");
    if ((present == nullptr) == (equals == nullptr)) {
      expected(at, "one of \"present\": true | false or \"equals\": [values]", value);
    }
    if (present) {
      return boolean(*present, fields.at("present")) ? field_condition::present(std::move(where))
                                                     : field_condition::absent(std::move(where));
    }
    std::vector<std::string> texts = strings(*equals, fields.at("equals"));
    if (texts.empty()) expected(fields.at("equals"), "at least one value", *equals);
    return field_condition::equals(std::move(where), std::move(texts));
  }

  json_body_format body_format(const json& value, const std::string& at) const {
    if (value.is_string()) {
      if (const auto format = json_body_format_named(value.get_ref<const std::string&>())) return *format;
    }
    expected(at, "\"json\", \"text\" or \"auto\"", value);
  }

  phase_codecs<json_codec> codecs(const json& value, const std::string& at) const {
    if (!value.is_object()) return phase_codecs<json_codec>::all(job_file_codec(body_format(value, at)));
    const object fields(*this, value, at, {"submit", "poll", "result"});
    const auto phase = [&](std::string_view name) {
      const json* given = fields.find(name);
      return job_file_codec(given ? body_format(*given, fields.at(name)) : json_body_format::json);
    };
    return {phase("submit"), phase("poll"), phase("result")};
  }

  std::string origin_;
};

/// At most `job_file_max_bytes` of the file at `path`.
inline std::string read_job_file_text(const std::filesystem::path& path) {
  const auto message = [&] { return "cannot read job description " + path.string(); };
  const unique_fd file(posix_check(::open(path.c_str(), O_RDONLY | O_CLOEXEC), message));
  std::string text;
  char buffer[65536];
  for (;;) {
    const auto n = ::read(file.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (posix_check(n, message) == 0) return text;
    if (text.size() + static_cast<std::size_t>(n) > job_file_max_bytes) {
      throw std::system_error(errc::invalid_argument, path.string() + ": larger than " +
                                                          std::to_string(job_file_max_bytes) +
                                                          " bytes, too large for a job description");
    }
    text.append(buffer, static_cast<std::size_t>(n));
  }
}

}  // namespace detail

/// The job kind described by `text` (the file schema is at the top of this
/// header). `origin` names the text in messages, usually its file path.
/// Throws `std::system_error` with `errc::invalid_argument` and a message
/// "<origin>: <JSON pointer of the field>: <what is wrong>, got <the start
/// of the value>", e.g. "jobs.json: /status/succeeded/1: expected a string,
/// got 5", for the first thing wrong: a value of the wrong type or form (a
/// pointer, a duration, a codec, an HTTP method or header), an unknown key,
/// a key given twice, a missing required field ("<origin>: /submit/url:
/// missing, expected ..."), a status value in two lists; and
/// "<origin>: not JSON: <the parser's message with its position>" or
/// "<origin>: nesting deeper than 32 levels at byte N" for text that is not
/// a JSON description.
inline job_file parse_job_file(std::string_view text, std::string_view origin) {
  return detail::job_file_reader(origin).read(text);
}

/// `parse_job_file` of the file at `path`, with `path` as the origin.
/// Throws `std::system_error` with errno's code and "cannot read job
/// description <path>" when it cannot be opened or read (the OS's reason
/// follows in `what()`), with `errc::invalid_argument` when it is larger
/// than 1 MiB, and as `parse_job_file` does for its content.
inline job_file load_job_file(const std::filesystem::path& path) {
  return parse_job_file(detail::read_job_file_text(path), path.string());
}

}  // namespace jobpoll
