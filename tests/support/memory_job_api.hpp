#pragma once
// An in-memory job API served through the jobpoll transport concept, for
// tests and benchmarks of code that runs many jobs (job clients, batches).
//
// The API (JSON bodies; the URL may carry any scheme and host, only its path
// counts, without the query):
//
//   POST /jobs  {"name": "a", "polls": 2, "outcome": "completed"}
//       name: a non-empty string (required); polls: an integer >= 0, how many
//       GETs answer "running" before the terminal answer (default 1);
//       outcome: "completed" or "failed" (default "completed").
//       -> 202 {"id":"j1"}  (j1, j2, ... in submission order)
//       -> 400 {"error":"<what was wrong>, got <what was received>"} for a body
//          that is not such an object (an unknown member included)
//   GET /jobs/{id}
//       -> 200 {"id":"j1","status":"running","progress":0.333...}
//          for the p-th GET while p <= polls (progress p/(polls+1)), then on
//          every later GET
//       -> 200 {"id":"j1","status":"completed","result":{"name":"a","value":1}}
//          (value: the submission number) or
//          200 {"id":"j1","status":"failed","error":"job a failed"};
//       -> 200 {"id":"j1","status":"cancelled"} once the job is cancelled
//       -> 404 {"error":"unknown job <id>"}
//   DELETE /jobs/{id}
//       -> 200 {"id":"j1","status":"cancelled"}: the job is cancelled, unless
//       -> 409 {"error":"job j1 already completed"} (or failed, cancelled):
//          the job was cancelled, or a GET has already answered its outcome
//       -> 404 {"error":"unknown job <id>"}
//   A POST /jobs with a header "Idempotency-Key: K" whose K created a job
//   already answers 202 with that job's id and creates nothing; a header
//   "Client-Ref: R" is kept with the job (not deduplicated) for the lookup:
//   GET /lookup/{R}
//       -> 200 {"jobs":[{"id":"j1"}, ...]}: the jobs submitted with Client-Ref R
//   anything else
//       -> 404 {"error":"no route for <METHOD> <path>"}
//
// Responses carry no headers, except those a `fail_next` reply was given.

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <jobpoll/asio.hpp>
#include <nlohmann/json.hpp>

#include <jobpoll/clock.hpp>
#include <jobpoll/codec/json.hpp>
#include <jobpoll/detail/invalid_argument.hpp>
#include <jobpoll/detail/request_op.hpp>
#include <jobpoll/detail/url_template.hpp>
#include <jobpoll/field_status.hpp>
#include <jobpoll/job_description.hpp>
#include <jobpoll/http.hpp>
#include <jobpoll/testing/manual_clock.hpp>
#include <jobpoll/transport.hpp>

namespace jobpoll_test {
namespace detail {

// A request in flight: its completion handler, counted in a shared
// in-flight count until the handler runs or is destroyed.
using request_op_ptr = jobpoll::detail::request_op_ptr;
using in_flight_count = jobpoll::detail::pending_count;
template <class Handler>
using request_op = jobpoll::detail::request_op_impl<Handler, asio::any_io_executor>;

/// Appends `text` as the inside of a JSON string: quotes, backslashes and
/// control characters escaped, every other byte as is.
inline void append_json_escaped(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20) {
      out += "\\u00";
      out += hex[byte >> 4];
      out += hex[byte & 0xf];
    } else {
      out += c;
    }
  }
}

inline void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  append_json_escaped(out, text);
  out += '"';
}

template <class Number>
void append_number(std::string& out, Number value) {
  char buffer[32];
  out.append(buffer, std::to_chars(buffer, buffer + sizeof buffer, value).ptr);
}

/// The path of `url` ("http://jobs.test/jobs?x=1" and "/jobs" give "/jobs"; "" is "/").
inline std::string_view url_path(std::string_view url) {
  url.remove_prefix(jobpoll::detail::url_origin(url).size());
  url = url.substr(0, url.find_first_of("?#"));
  return url.empty() ? std::string_view("/") : url;
}

/// `{"error":"<message>"}` with `status`.
inline jobpoll::http_response error_response(int status, std::string_view message) {
  jobpoll::http_response response{status, {}, {}};
  response.body.reserve(message.size() + 12);
  response.body += R"({"error":)";
  append_json_string(response.body, message);
  response.body += '}';
  return response;
}

/// A JSON value as a message shows it: compact, one printable line.
inline std::string shown(const nlohmann::json& value) { return jobpoll::body_preview(value.dump()); }

/// Replies that complete after a wait on `Clock`, each cancellable through
/// its handler's cancellation slot. Shared ownership lets timer and
/// cancellation handlers outlive the owner: they hold weak references and do
/// nothing once it is gone.
template <jobpoll::clock Clock>
class delayed_replies : public std::enable_shared_from_this<delayed_replies<Clock>> {
 public:
  using duration = typename Clock::duration;

  explicit delayed_replies(asio::any_io_executor ex) : executor_(std::move(ex)) {}

  /// Completes `op` with `ec` and `response` after `wait` (> 0), or with
  /// operation_aborted as soon as `slot` is emitted (any type but none).
  template <class Slot>
  void add(request_op_ptr op, duration wait, jobpoll::error_code ec, jobpoll::http_response response, Slot slot) {
    const std::uint64_t id = next_id_++;
    entry& e = entries_.try_emplace(id, std::move(op), executor_, ec, std::move(response)).first->second;
    e.timer.expires_after(wait);
    e.timer.async_wait([owner = this->weak_from_this(), id](jobpoll::error_code wait_ec) {
      if (auto self = owner.lock()) self->on_timer(id, wait_ec);
    });
    if (slot.is_connected()) {
      slot.assign([owner = this->weak_from_this(), id](asio::cancellation_type type) {
        if (type == asio::cancellation_type::none) return;
        if (auto self = owner.lock()) self->abort(id);
      });
    }
  }

  /// Completes every reply still waiting with operation_aborted and cancels
  /// its timer.
  void abort_all() {
    for (auto& [id, e] : entries_) e.op.release()->post_completion(jobpoll::detail::asio_error(asio::error::operation_aborted), {});
    entries_.clear();
  }

 private:
  struct entry {
    entry(request_op_ptr o, const asio::any_io_executor& ex, jobpoll::error_code e, jobpoll::http_response r)
        : op(std::move(o)), timer(ex), ec(e), response(std::move(r)) {}
    request_op_ptr op;
    jobpoll::timer_for<Clock> timer;
    jobpoll::error_code ec;
    jobpoll::http_response response;
  };

  void on_timer(std::uint64_t id, jobpoll::error_code wait_ec) {
    auto node = entries_.extract(id);
    if (node.empty()) return;  // cancelled or aborted: the completion is posted already
    entry& e = node.mapped();
    // A wait aborted by someone else (manual_clock::reset) aborts the request.
    if (wait_ec) {
      e.op.release()->post_completion(wait_ec, {});
    } else {
      e.op.release()->post_completion(e.ec, std::move(e.response));
    }
  }

  void abort(std::uint64_t id) {
    auto node = entries_.extract(id);
    if (node.empty()) return;  // completed already
    node.mapped().op.release()->post_completion(jobpoll::detail::asio_error(asio::error::operation_aborted), {});
    // Destroying the node cancels its timer, whose handler then finds nothing.
  }

  const asio::any_io_executor executor_;
  std::unordered_map<std::uint64_t, entry> entries_;
  std::uint64_t next_id_ = 0;
};

}  // namespace detail

/// The job API described at the top of this file, as a `jobpoll::transport`.
///
/// `async_request(request, token)` completes with
/// `void(jobpoll::error_code, http_response)`:
/// - with the API's answer (any status is a response), or the front
///   `fail_next` reply that matches the request instead, after `latency()`
///   on `Clock`;
/// - with `asio::error::timed_out` at `request.timeout` when that is shorter
///   than the latency (a timeout equal to it lets the answer through);
/// - with `asio::error::operation_aborted` at once when cancelled through the
///   token's cancellation slot (terminal, partial or total) during the
///   latency, or when the API is destroyed; the timer is cancelled with it.
/// The API acts on a request when it arrives: the latency delays only the
/// answer, so a request that times out or is cancelled meanwhile has taken
/// effect all the same (a POST created its job, a GET counted as a poll).
/// The handler is never invoked inside `async_request`: with no latency the
/// completion is posted to the handler's associated executor (by default the
/// API's). Latency and timeouts use `timer_for<Clock>` on the API's
/// executor, so `testing::manual_clock` drives them exactly.
///
/// Use from one thread (the one running its executor). Every request costs
/// O(1) besides parsing a POST body and writing the answer; jobs are kept
/// by submission number. Like any Asio I/O object, the API must be
/// destroyed before its execution context.
template <jobpoll::clock Clock>
class basic_memory_job_api {
 public:
  using clock_type = Clock;
  using duration = typename Clock::duration;
  using executor_type = asio::any_io_executor;

  /// One job as the API holds it.
  struct job_record {
    std::string id;       ///< "j1", "j2", ...
    std::string name;     ///< as submitted
    std::uint64_t polls;  ///< as submitted: the GETs that answer "running" first
    std::string outcome;  ///< as submitted: "completed" or "failed"
    /// What a GET has answered last: "running" until the terminal answer
    /// (also before the first GET), then `outcome`; "cancelled" once cancelled.
    std::string status;
    bool cancelled;

    friend bool operator==(const job_record&, const job_record&) = default;
  };

  /// An API with no jobs, no latency and no fault queued, whose latency and
  /// timeouts run on `ex`.
  explicit basic_memory_job_api(executor_type ex)
      : executor_(ex), delayed_(std::make_shared<detail::delayed_replies<Clock>>(ex)) {}

  basic_memory_job_api(const basic_memory_job_api&) = delete;
  basic_memory_job_api& operator=(const basic_memory_job_api&) = delete;

  /// Completes every request still waiting out its latency with
  /// `asio::error::operation_aborted` (posted) and cancels its timer.
  ~basic_memory_job_api() { delayed_->abort_all(); }

  executor_type get_executor() const noexcept { return executor_; }

  /// Sends `request` to the API (see the class comment for how it
  /// completes). Works with every completion token.
  template <class CompletionToken>
  auto async_request(jobpoll::http_request request, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(jobpoll::error_code, jobpoll::http_response)>(
        [this](auto handler, jobpoll::http_request r) { this->start(std::move(r), std::move(handler)); }, token,
        std::move(request));
  }

  /// Queues `response` for the next request whose method is `method`
  /// (case-sensitive) and whose path starts with `path_prefix` (e.g. "/jobs"
  /// matches every route, "/jobs/j2" one job): it is answered with
  /// `response`, after the latency, and the API does nothing else with it
  /// (no job created, no poll or cancel counted). Replies are consumed in the
  /// order they were queued: a request takes the earliest one that matches
  /// it. Throws `std::invalid_argument` for an empty method, a prefix that
  /// does not start with '/' or a status outside 100 to 599.
  void fail_next(std::string method, std::string path_prefix, jobpoll::http_response response) {
    if (method.empty()) invalid("fail_next() needs a method", "an empty one for \"" + path_prefix + "\"");
    if (!path_prefix.starts_with('/'))
      invalid("fail_next() needs a path prefix starting with '/'", jobpoll::detail::in_quotes(path_prefix));
    if (response.status < 100 || response.status > 599)
      invalid("fail_next() needs an HTTP status from 100 to 599", std::to_string(response.status));
    auto route = std::find_if(faults_.begin(), faults_.end(),
                              [&](const fault_route& r) { return r.method == method && r.prefix == path_prefix; });
    if (route == faults_.end()) route = faults_.insert(faults_.end(), {std::move(method), std::move(path_prefix), {}});
    route->replies.push_back({faults_queued_++, std::move(response)});
  }

  /// Every answer from now on completes `latency` after its request on
  /// `Clock` (requests already waiting keep theirs). Throws
  /// `std::invalid_argument` for a negative latency.
  void set_latency(duration latency) {
    if (latency < duration::zero()) invalid("set_latency() needs a latency >= 0", jobpoll::detail::describe(latency));
    latency_ = latency;
  }

  duration latency() const noexcept { return latency_; }

  /// Jobs created (POSTs answered 202).
  std::size_t submits() const noexcept { return jobs_.size(); }

  /// Jobs created with the name `name`.
  std::size_t submits_named(std::string_view name) const {
    const auto found = named_.find(name);
    return found == named_.end() ? 0 : found->second;
  }

  /// GETs the API answered for job `id` (not those answered by `fail_next`).
  /// Throws `std::invalid_argument` if no job has that id; so do `cancels`
  /// and `cancelled`.
  std::uint64_t polls(std::string_view id) const { return known(id, "polls").gets; }

  /// DELETEs the API answered for job `id`, refused ones (409) included.
  std::size_t cancels(std::string_view id) const { return known(id, "cancels").cancels; }

  /// Whether job `id` was cancelled.
  bool cancelled(std::string_view id) const { return known(id, "cancelled").cancelled; }

  /// Every job, in submission order.
  std::vector<job_record> jobs() const {
    std::vector<job_record> out;
    out.reserve(jobs_.size());
    for (std::size_t i = 0; i < jobs_.size(); ++i) {
      const job& j = jobs_[i];
      out.push_back({"j" + std::to_string(i + 1), j.name, j.polls, std::string(outcome_name(j)),
                     std::string(status_name(j)), j.cancelled});
    }
    return out;
  }

  /// Requests whose handler has not run yet (nor been destroyed).
  std::size_t in_flight() const noexcept { return in_flight_->load(std::memory_order_acquire); }

  /// The largest `in_flight()` so far.
  std::size_t max_in_flight() const noexcept { return max_in_flight_; }

  /// POSTs to /jobs the API answered itself (not `fail_next`), replays included.
  std::size_t posts() const noexcept { return posts_; }

  /// Every request received, whatever it was answered.
  std::size_t requests() const noexcept { return requests_; }

 private:
  struct job {
    std::string name;
    std::uint64_t polls;  // running answers before the terminal one
    bool fails;
    std::uint64_t gets = 0;
    std::size_t cancels = 0;
    bool cancelled = false;
  };

  // The replies queued by fail_next for one method and prefix, each with its
  // place in the order of every fail_next call.
  struct fault_route {
    std::string method;
    std::string prefix;
    std::deque<std::pair<std::uint64_t, jobpoll::http_response>> replies;  // never empty
  };

  [[noreturn]] static void invalid(std::string_view rule, const std::string& got) {
    throw std::invalid_argument("memory_job_api: " + std::string(rule) + ", got " + got);
  }

  static bool terminal(const job& j) noexcept { return j.cancelled || j.gets > j.polls; }
  static std::string_view outcome_name(const job& j) noexcept { return j.fails ? "failed" : "completed"; }
  static std::string_view status_name(const job& j) noexcept {
    if (j.cancelled) return "cancelled";
    return terminal(j) ? outcome_name(j) : "running";
  }

  template <class Handler>
  void start(jobpoll::http_request request, Handler handler) {
    auto slot = asio::get_associated_cancellation_slot(handler);
    detail::request_op_ptr op(detail::request_op<Handler>::create(std::move(handler), executor_, in_flight_));
    max_in_flight_ = std::max(max_in_flight_, in_flight());
    ++requests_;
    jobpoll::http_response response = answer(request);
    duration wait = latency_;
    jobpoll::error_code ec;
    if (request.timeout) {
      const auto timeout = std::max(std::chrono::ceil<duration>(*request.timeout), duration::zero());
      // The answer was sent; a timeout shorter than the latency overtakes it.
      if (timeout < wait) {
        wait = timeout;
        ec = asio::error::timed_out;
        response = {};
      }
    }
    if (wait == duration::zero()) {
      // Never inside the initiating call: the completion is posted.
      op.release()->post_completion(ec, std::move(response));
      return;
    }
    delayed_->add(std::move(op), wait, ec, std::move(response), slot);
  }

  jobpoll::http_response answer(const jobpoll::http_request& request) {
    const std::string_view method = request.method;
    const std::string_view path = detail::url_path(request.url);
    if (auto fault = take_fault(method, path)) return std::move(*fault);
    if (path == "/jobs") {
      if (method == "POST") return submit(request);
    } else if (path.starts_with("/lookup/") && method == "GET") {
      return lookup(path.substr(8));
    } else if (path.starts_with("/jobs/")) {
      const std::string_view id = path.substr(6);
      if (!id.empty() && id.find('/') == std::string_view::npos) {
        if (method == "GET") return poll(id);
        if (method == "DELETE") return cancel(id);
      }
    }
    return detail::error_response(404, "no route for " + jobpoll::body_preview(method) + " " + jobpoll::body_preview(path));
  }

  std::optional<jobpoll::http_response> take_fault(std::string_view method, std::string_view path) {
    auto earliest = faults_.end();
    for (auto r = faults_.begin(); r != faults_.end(); ++r) {
      if (r->method != method || !path.starts_with(r->prefix)) continue;
      if (earliest == faults_.end() || r->replies.front().first < earliest->replies.front().first) earliest = r;
    }
    if (earliest == faults_.end()) return std::nullopt;
    jobpoll::http_response response = std::move(earliest->replies.front().second);
    earliest->replies.pop_front();
    if (earliest->replies.empty()) faults_.erase(earliest);
    return response;
  }

  jobpoll::http_response submit(const jobpoll::http_request& http) {
    const std::optional<std::string_view> key = http.headers.find("Idempotency-Key");
    ++posts_;
    if (key) {
      if (const auto done = keyed_.find(*key); done != keyed_.end()) return created(done->second);
    }
    jobpoll::http_response response = create(http.body);
    if (response.status == 202) {
      if (key) keyed_.emplace(std::string(*key), jobs_.size());
      if (auto ref = http.headers.find("Client-Ref")) referenced_[std::string(*ref)].push_back(jobs_.size());
    }
    return response;
  }

  jobpoll::http_response lookup(std::string_view ref) {
    jobpoll::http_response response{200, {}, R"({"jobs":[)"};
    if (const auto found = referenced_.find(ref); found != referenced_.end()) {
      for (std::size_t i = 0; i < found->second.size(); ++i) {
        response.body += i == 0 ? R"({"id":"j)" : R"(,{"id":"j)";
        detail::append_number(response.body, found->second[i]);
        response.body += R"("})";
      }
    }
    response.body += "]}";
    return response;
  }

  static jobpoll::http_response created(std::size_t n) {
    jobpoll::http_response response{202, {}, {}};
    response.body += R"({"id":"j)";
    detail::append_number(response.body, n);
    response.body += R"("})";
    return response;
  }

  jobpoll::http_response create(std::string_view body) {
    if (body.empty()) return bad_request("body must be a JSON object", "an empty body");
    nlohmann::json request;
    try {
      request = nlohmann::json::parse(body);
    } catch (const nlohmann::json::exception& e) {
      return bad_request("body must be a JSON object",
                         jobpoll::detail::in_quotes(body) + " (not JSON: " + jobpoll::detail::json_error_reason(e) + ")");
    }
    if (!request.is_object())
      return bad_request("body must be a JSON object", std::string(request.type_name()) + ": " + detail::shown(request));
    for (const auto& [key, value] : request.items()) {
      if (key != "name" && key != "polls" && key != "outcome")
        return bad_request("body has an unknown member " + jobpoll::detail::in_quotes(key) +
                               " (known: name, polls, outcome)",
                           detail::shown(request));
    }

    const auto name = request.find("name");
    if (name == request.end()) return bad_request("\"name\" is required", detail::shown(request));
    if (!name->is_string() || name->get_ref<const std::string&>().empty())
      return bad_request("\"name\" must be a non-empty string", detail::shown(*name));

    std::uint64_t polls = 1;
    if (const auto p = request.find("polls"); p != request.end()) {
      if (p->is_number_unsigned()) {
        polls = p->get<std::uint64_t>();
      } else {
        // Parsed non-negative integers are unsigned: anything else is wrong.
        return bad_request("\"polls\" must be an integer >= 0", detail::shown(*p));
      }
    }

    bool fails = false;
    if (const auto o = request.find("outcome"); o != request.end()) {
      if (*o == "failed") {
        fails = true;
      } else if (*o != "completed") {
        return bad_request("\"outcome\" must be \"completed\" or \"failed\"", detail::shown(*o));
      }
    }

    jobs_.push_back({std::move(name->get_ref<std::string&>()), polls, fails});
    ++named_[jobs_.back().name];  // a view of the job's own name: a deque never moves its elements
    return created(jobs_.size());
  }

  jobpoll::http_response poll(std::string_view id) {
    const std::size_t n = number_of(id);
    if (n == 0) return unknown_job(id);
    job& j = jobs_[n - 1];
    ++j.gets;
    jobpoll::http_response response = job_answer(n, status_name(j), 64 + 2 * j.name.size());
    std::string& body = response.body;
    if (j.cancelled) {
      body += '}';
      return response;
    }
    if (j.gets <= j.polls) {
      body += R"(,"progress":)";
      detail::append_number(body, static_cast<double>(j.gets) / (static_cast<double>(j.polls) + 1.0));
    } else if (j.fails) {
      body += R"(,"error":"job )";
      detail::append_json_escaped(body, j.name);
      body += R"( failed")";
    } else {
      body += R"(,"result":{"name":)";
      detail::append_json_string(body, j.name);
      body += R"(,"value":)";
      detail::append_number(body, n);
      body += '}';
    }
    body += '}';
    return response;
  }

  jobpoll::http_response cancel(std::string_view id) {
    const std::size_t n = number_of(id);
    if (n == 0) return unknown_job(id);
    job& j = jobs_[n - 1];
    ++j.cancels;
    if (terminal(j))
      return detail::error_response(409, "job " + std::string(id) + " already " + std::string(status_name(j)));
    j.cancelled = true;
    jobpoll::http_response response = job_answer(n, "cancelled", 40);
    response.body += '}';
    return response;
  }

  // 200 with `{"id":"j<n>","status":"<status>"`, room reserved for `size` bytes.
  static jobpoll::http_response job_answer(std::size_t n, std::string_view status, std::size_t size) {
    jobpoll::http_response response{200, {}, {}};
    response.body.reserve(size);
    response.body += R"({"id":"j)";
    detail::append_number(response.body, n);
    response.body += R"(","status":")";
    response.body += status;
    response.body += '"';
    return response;
  }

  static jobpoll::http_response bad_request(std::string_view rule, std::string_view got) {
    return detail::error_response(400, std::string(rule) + ", got " + std::string(got));
  }

  static jobpoll::http_response unknown_job(std::string_view id) {
    return detail::error_response(404, "unknown job " + jobpoll::body_preview(id));
  }

  // The submission number of the job with id "j<n>" (no leading zero), or 0 if there is none.
  std::size_t number_of(std::string_view id) const noexcept {
    if (id.size() < 2 || id[0] != 'j' || id[1] == '0') return 0;
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(id.data() + 1, id.data() + id.size(), n);
    if (ec != std::errc{} || end != id.data() + id.size() || n > jobs_.size()) return 0;
    return n;
  }

  const job& known(std::string_view id, std::string_view accessor) const {
    if (const std::size_t n = number_of(id)) return jobs_[n - 1];
    invalid(std::string(accessor) + "() needs the id of a submitted job (" +
                (jobs_.empty() ? std::string("none yet") : "j1 to j" + std::to_string(jobs_.size())) + ")",
            jobpoll::detail::in_quotes(id));
  }

  const executor_type executor_;
  const std::shared_ptr<detail::delayed_replies<Clock>> delayed_;
  const detail::in_flight_count in_flight_ = std::make_shared<std::atomic<std::size_t>>(0);
  std::size_t max_in_flight_ = 0;
  std::size_t requests_ = 0;
  duration latency_ = duration::zero();
  std::deque<job> jobs_;                                   // job j<n> at n - 1
  std::unordered_map<std::string_view, std::size_t> named_;  // views of the jobs' names
  std::size_t posts_ = 0;
  std::map<std::string, std::size_t, std::less<>> keyed_;  // Idempotency-Key -> job number
  std::map<std::string, std::vector<std::size_t>, std::less<>> referenced_;  // Client-Ref -> job numbers
  std::vector<fault_route> faults_;                        // in the order of their first fail_next
  std::uint64_t faults_queued_ = 0;
};

/// The in-memory job API on the manual clock, for unit tests.
using memory_job_api = basic_memory_job_api<jobpoll::testing::manual_clock>;

/// The in-memory job API on `std::chrono::steady_clock`, for benchmarks.
using steady_memory_job_api = basic_memory_job_api<std::chrono::steady_clock>;

static_assert(jobpoll::transport<memory_job_api>);
static_assert(jobpoll::transport<steady_memory_job_api>);

/// The API above as a job description: each job's name, polls and outcome
/// come from its parameters `name`, `polls` and `outcome`; the result is the
/// final answer's "result"; DELETE cancels.
inline jobpoll::job_description memory_job_description() {
  jobpoll::job_description d;
  d.submit = {"POST", "http://jobs.test/jobs", R"({"name":"{name}","polls":{polls},"outcome":"{outcome}"})"};
  d.handle = jobpoll::handle_source::body("/id");
  d.poll = {"GET", "/jobs/{handle}"};
  d.result = jobpoll::result_source::in_poll_answer("/result");
  d.cancel = jobpoll::request_template{"DELETE", "/jobs/{handle}"};
  return d;
}

/// Its status policy: "completed", "failed", "running", with the progress and the failure's "error".
inline jobpoll::field_status<jobpoll::json_codec> memory_job_status() {
  jobpoll::field_status<jobpoll::json_codec> s("/status",
                                               {.succeeded = {"completed"}, .failed = {"failed"}, .pending = {"running"}});
  s.progress_at("/progress").failure_detail_at("/error");
  return s;
}

}  // namespace jobpoll_test
