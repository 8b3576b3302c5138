#pragma once
// submit -> handle -> poll until terminal -> result, for any transport,
// codec and status policy, each phase a poll_until with the caller's
// strategies, limiter and deadline.

#include <chrono>
#include <concepts>
#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "jobpoll/detail/asio_forward.hpp"

#include "jobpoll/clock.hpp"
#include "jobpoll/codec.hpp"
#include "jobpoll/detail/url_template.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/http.hpp"
#include "jobpoll/http_status.hpp"
#include "jobpoll/job_description.hpp"
#include "jobpoll/job_handle.hpp"
#include "jobpoll/job_status_policy.hpp"
#include "jobpoll/phase_codecs.hpp"
#include "jobpoll/poll_options.hpp"
#include "jobpoll/poll_result.hpp"
#include "jobpoll/poll_until.hpp"
#include "jobpoll/retry_after.hpp"
#include "jobpoll/transport.hpp"

// The compiler workarounds this file's coroutines need (W1: g++ 12 -O2's false
// -Wmismatched-new-delete on Asio's awaitable frames), popped at its end.
#include "jobpoll/detail/workarounds_push.hpp"

namespace jobpoll {

template <transport Transport, codec Codec, job_status_policy<codec_value_t<Codec>> Status>
class job_client;

/// Thrown by job clients. `code()` says why (`job_failed`, `timeout`,
/// `expired_handle`, `decode_error`, `operation_aborted`, ...), `what()`
/// which job, which phase and what the server said; `last_response()` is the
/// last answer as received (a failed job's payload); `handle()` is the job
/// with its progress, to resume with `job_client::wait` (none if the submit
/// itself failed, and for a lookup).
class job_error : public poll_error {
 public:
  job_error(std::error_code ec, std::string message, poll_status last, poll_stats stats, job_phase phase,
            std::optional<job_handle> handle, std::optional<http_response> last_response)
      : poll_error(ec, std::move(message), std::move(last), stats),
        phase_(phase),
        handle_(std::move(handle)),
        last_response_(std::move(last_response)) {}

  job_phase phase() const noexcept { return phase_; }
  const std::optional<job_handle>& handle() const noexcept { return handle_; }
  const std::optional<http_response>& last_response() const noexcept { return last_response_; }
  remote_cancel cancel_state() const noexcept { return cancel_; }

 private:
  template <transport Transport, codec Codec, job_status_policy<codec_value_t<Codec>> Status>
  friend class job_client;
  job_phase phase_;
  std::optional<job_handle> handle_;
  std::optional<http_response> last_response_;
  remote_cancel cancel_ = remote_cancel::not_applicable;
};

namespace detail {

// One answer of a job API, decoded when it could be.
template <class Value>
struct decoded_answer {
  http_response http;
  std::optional<Value> value;
  std::string decode_failure;  // why `value` is empty
};

// Whether a decoded value is null: by its own is_null() when it has one (as
// nlohmann::json does), else by equality with a default-constructed value.
template <class Value>
bool is_null_value(const Value& v) {
  if constexpr (requires { { v.is_null() } -> std::convertible_to<bool>; }) {
    return v.is_null();
  } else if constexpr (std::equality_comparable<Value>) {
    return v == Value{};
  } else {
    return false;
  }
}

// Whether a decoded scalar that is not a number is a string: by its own
// is_string() when it has one (so a boolean is not taken for a handle), else yes.
template <class Value>
bool is_string_value(const Value& v) {
  if constexpr (requires { { v.is_string() } -> std::convertible_to<bool>; }) {
    return v.is_string();
  } else {
    return true;
  }
}

// "42", "-7": an integer as a codec's text() spells it.
inline bool is_integer_text(std::string_view text) noexcept {
  if (text.starts_with('-')) text.remove_prefix(1);
  if (text.empty()) return false;
  for (const char c : text)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace detail

/// Runs jobs of one kind (a `job_description`) over a transport, decoding
/// with a codec (or one per phase: `phase_codecs`) and classifying poll
/// answers with a status policy.
///
/// Every request (submit, polls, result pages, cancel, lookup) goes through
/// `options.limiter` when set, with the options' backoff, retry budget,
/// Retry-After handling and attempt timeout (also sent as the request's
/// timeout); one deadline covers the whole job. `options.hooks` see the poll
/// phase. The client holds the transport by pointer: the transport must
/// outlive the client, and the client the operations it starts. Copying a
/// client is cheap.
///
/// Every operation is an `asio::awaitable` run inside the caller's
/// coroutine, so it is cancelled through that coroutine's cancellation
/// state (e.g. `||` with a timer, or the slot bound to the `co_spawn`).
/// Which cancellation types get through is the caller's choice: terminal
/// only by default (Asio's `co_spawn` filter), partial and total as well
/// after `co_await asio::this_coro::reset_cancellation_state(asio::enable_total_cancellation())`;
/// the client does not widen the filter itself. In a coroutine already
/// cancelled, Asio throws a plain `std::system_error(operation_aborted)` at
/// the `co_await` of an operation, before it starts (unless
/// `this_coro::throw_if_cancelled(false)`). There are no completion-token
/// (`async_*`) forms, so no default completion tokens.
template <transport Transport, codec Codec, job_status_policy<codec_value_t<Codec>> Status>
class job_client {
 public:
  using value_type = codec_value_t<Codec>;
  using answer = detail::decoded_answer<value_type>;

  job_client(Transport& transport, job_description description, Status status, Codec codec = {})
      : job_client(transport, std::move(description), std::move(status), phase_codecs<Codec>::all(codec)) {}

  /// Each phase's answers decoded by its own codec, e.g. JSON polls and a
  /// text result.
  job_client(Transport& transport, job_description description, Status status, phase_codecs<Codec> codecs)
      : transport_(&transport),
        description_(std::move(description)),
        status_(std::move(status)),
        codecs_(std::move(codecs)),
        submit_uses_key_(uses_placeholder(description_.submit, job_key_name)) {}

  const job_description& description() const noexcept { return description_; }

  /// Whether a submit whose answer was lost is sent again: the description
  /// says the server returns the same job for a repeated submit with the
  /// same {job_key} (`idempotent_submit`) and its submit request uses
  /// {job_key}. When false, a submit is re-sent only when the server surely
  /// did not take it.
  bool submit_is_idempotent() const noexcept { return description_.idempotent_submit && submit_uses_key_; }

  /// Whether `find` can look a job up by its key: the description has a
  /// lookup request.
  bool can_find() const noexcept { return description_.lookup.has_value(); }

  /// Submits, polls until the job ends and fetches its result: `submit`,
  /// then `wait(handle, options, on_cancel::cancel_job)`.
  ///
  /// @par Completion Signature
  /// `co_await` yields `job_result<value_type>` (the value, the handle with
  /// its final progress, the poll stats, the final poll answer), or throws.
  ///
  /// @par Per-Operation Cancellation
  /// The types the awaiting coroutine's state lets through (terminal by
  /// default; see the class comment). Throws `job_error(operation_aborted)`.
  /// What happens to the remote job depends on the phase: during the submit,
  /// as `submit` says (the job may or may not exist; nothing is sent to
  /// cancel it; its key settles it); once submitted, as `wait` with
  /// `on_cancel::cancel_job` says (the description's cancel request is sent,
  /// when it has one); during the result fetch, nothing (the job has succeeded).
  ///
  /// @par Errors
  /// `job_error` when a phase fails, with the codes `submit` and `wait` list
  /// (`job_failed`, `timeout`, `retries_exhausted`, `expired_handle`,
  /// `decode_error`, `unknown_status`, `http_error`, a transport error,
  /// `operation_aborted`, `invalid_argument` for refused options), and
  /// `std::system_error(errc::invalid_argument)` for a template placeholder
  /// without a value.
  template <clock Clock>
  asio::awaitable<job_result<value_type>> run(job_params params, basic_poll_options<Clock> options) {
    job_handle handle = co_await submit(std::move(params), options);
    co_return co_await wait(std::move(handle), std::move(options));
  }
  /// `run(params, poll_options{})`: the default options on steady_clock.
  asio::awaitable<job_result<value_type>> run(job_params params = {}) {
    return run(std::move(params), poll_options{});
  }

  /// Submits the job and returns its handle, without polling. The handle
  /// carries what is left of `options.deadline` (`remaining`), so a `wait`
  /// on it keeps to the same deadline, and the submit answer's Retry-After
  /// (`first_poll_after`).
  ///
  /// The job key: when the submit request uses {job_key} and `params` has
  /// no "job_key", a new one is made (`new_job_key()`: 32 lowercase hex
  /// digits), once per call, so every retry of this submit sends the same
  /// key; a "job_key" in `params` is used as is. The returned handle's
  /// `params` hold the key used. To know the key even when the submit
  /// fails, pass your own.
  ///
  /// 429 and 5xx answers, a refused connection and a request that never
  /// left the client (`errc::not_sent`) are retried with the backoff
  /// (honouring Retry-After); any other transport error, a timeout
  /// included, is not, because the server may have created the job already
  /// and a second submit could run it twice. When `submit_is_idempotent()`
  /// (the description's `idempotent_submit`), the doubtful failures are
  /// retried too, with the same key: a reset after sending, a lost answer,
  /// an attempt or request timeout (every `is_transient_error`), within the
  /// backoff and retry budget. Throws `job_error` (phase `submit`, no
  /// handle; the message names the job key): that transport error,
  /// `retries_exhausted`, `timeout`, `http_error` for other non-2xx
  /// answers, `decode_error` when the answer holds no handle where the
  /// description says (the message then warns that a job may exist on the
  /// server, and shows the answer), and `invalid_argument`, before any
  /// request, for options `poll_until` would refuse or an
  /// `idempotent_submit` description whose submit request does not use
  /// {job_key}.
  ///
  /// @par Completion Signature
  /// `co_await` yields the `job_handle` (id, params with the job key used,
  /// `remaining` budget, `first_poll_after`), or throws `job_error` (phase
  /// `submit`, no handle).
  ///
  /// @par Per-Operation Cancellation
  /// The types the awaiting coroutine's state lets through (terminal by
  /// default; see the class comment), whether the submit is waiting (the
  /// limiter, a backoff, a Retry-After) or its request is in flight (the
  /// transport abandons it): throws `job_error(operation_aborted)`.
  /// What happens to the remote job: a request that was in flight may
  /// already have reached the server and created the job, so a cancelled
  /// submit may or may not have created one. The client cannot tell: it
  /// has no handle, so it sends no cancel request, and it does not look the
  /// job up itself. The error's `stats()` tell whether it can be: for a
  /// submit that is not idempotent, `attempts > transient_failures` means
  /// an attempt was under way when the cancellation came; otherwise every
  /// attempt failed in a way that surely did not reach the server (only
  /// those are retried). To settle a doubtful submit, use its job key (the
  /// message names it; pass your own "job_key" in `params` to know it
  /// beforehand): `find(params)` when `can_find()`, or the same submit again
  /// with the same key when `submit_is_idempotent()`. `batch_runner` does
  /// this: it keeps such a job `submitting` for its next run to resend by
  /// key or look up, and marks it `unknown` when the job API allows neither.
  ///
  /// @par Errors
  /// As listed above: a transport error, `retries_exhausted`, `timeout`,
  /// `http_error`, `decode_error`, `operation_aborted` (each a `job_error`),
  /// `invalid_argument` (a `job_error`, before any request; a placeholder
  /// without a value: `std::system_error`).
  template <clock Clock>
  asio::awaitable<job_handle> submit(job_params params, basic_poll_options<Clock> options) {
    check_options(options, job_phase::submit, nullptr);
    if (description_.idempotent_submit && !submit_uses_key_)
      throw invalid_call(job_phase::submit,
                         "the description says the submit is idempotent (idempotent_submit), but its request does "
                         "not use {job_key} (in the URL, a header, the body or a form value), so the server could "
                         "not tell a repeated submit from a new job");
    if (submit_uses_key_ && !params.contains(job_key_name)) params.emplace(std::string(job_key_name), new_job_key());
    const auto end = options.deadline.end_from(Clock::now());
    job_handle handle = co_await submit_until(std::move(params), options, end);
    handle.remaining = left_until<Clock>(end);
    co_return handle;
  }
  /// `submit(params, poll_options{})`.
  asio::awaitable<job_handle> submit(job_params params = {}) { return submit(std::move(params), poll_options{}); }

  /// Finds the job that a submit carrying `params["job_key"]` created, with
  /// the description's lookup request: after a submit whose outcome is not
  /// known (its answer was lost, the process stopped), this tells whether
  /// the server has the job, without submitting it again. `params` are the
  /// job's params as submitted, its "job_key" included.
  ///
  /// Returns the job's handle when a 2xx answer holds a non-empty string or
  /// an integer (as text) at the lookup's `handle_pointer`: the id, `params`,
  /// and what is left of `options.deadline` in `remaining`, as `submit`
  /// returns it. Returns none (no such job) for a 2xx answer with nothing or
  /// null there, and for a 404. The request goes through `options.limiter`
  /// with the options' backoff, retry budget, attempt timeout and deadline,
  /// as a poll does: 429, 5xx and transient transport errors are retried.
  /// Throws `job_error` (phase `lookup`, no handle): `http_error` for other
  /// non-2xx answers, `decode_error` for an undecodable answer or another
  /// value at the pointer, `retries_exhausted`, `timeout`, a permanent
  /// transport error, `operation_aborted` when cancelled; and
  /// `invalid_argument`, before any request, when the description has no
  /// lookup or a malformed `handle_pointer`, `params` has no "job_key", or
  /// the options are ones `poll_until` would refuse. A placeholder without
  /// a value throws `std::system_error(errc::invalid_argument)`, as in `run`.
  ///
  /// @par Completion Signature
  /// `co_await` yields `std::optional<job_handle>`: the job, or none when
  /// the server has no job with that key; or throws `job_error` (phase `lookup`).
  ///
  /// @par Per-Operation Cancellation
  /// The types the awaiting coroutine's state lets through (terminal by
  /// default; see the class comment), during a wait or the request: throws
  /// `job_error(operation_aborted)`. The remote job is not touched: a lookup
  /// only reads, and a cancelled one may simply be asked again.
  ///
  /// @par Errors
  /// As listed above: `http_error`, `decode_error`, `retries_exhausted`,
  /// `timeout`, a permanent transport error, `operation_aborted`,
  /// `invalid_argument`.
  template <clock Clock>
  asio::awaitable<std::optional<job_handle>> find(job_params params, basic_poll_options<Clock> options) {
    check_options(options, job_phase::lookup, nullptr);
    if (!description_.lookup) throw invalid_call(job_phase::lookup, "the job description has no lookup request");
    if (const auto problem = detail::pointer_syntax_error(description_.lookup->handle_pointer); !problem.empty())
      throw invalid_call(job_phase::lookup, "the lookup's handle pointer " +
                                                detail::in_quotes(description_.lookup->handle_pointer) + " " +
                                                std::string(problem));
    const auto key = params.find(job_key_name);
    if (key == params.end())
      throw invalid_call(job_phase::lookup,
                         "the params have no \"job_key\": a lookup finds the job that a submit with that key created");
    const std::string context = "looking up job with key " + detail::in_quotes(key->second);
    const auto end = options.deadline.end_from(Clock::now());
    http_request request = make_request(description_.lookup->request, params, nullptr, {}, options, codecs_.poll);
    auto looked = co_await try_poll_until(exchange<Clock>(std::move(request), end, codecs_.poll), lookup_policy{this},
                                          phase_options(options, end));
    if (looked.error) throw to_job_error(std::move(looked), job_phase::lookup, std::nullopt, context);
    if (looked.response->http.status == 404) co_return std::nullopt;
    std::optional<std::string> id = lookup_in(*looked.response).id;
    if (!id) co_return std::nullopt;
    job_handle handle{std::move(*id), std::move(params)};
    handle.remaining = left_until<Clock>(end);
    co_return handle;
  }
  /// `find(params, poll_options{})`.
  asio::awaitable<std::optional<job_handle>> find(job_params params) {
    return find(std::move(params), poll_options{});
  }

  /// Polls a submitted job until it ends, then fetches its result.
  ///
  /// A handle saved from an earlier poll resumes it: attempts and the retry
  /// budget continue from `handle.progress`, and `handle.remaining` (when
  /// set) replaces `options.deadline`. Throws `job_error` (phase `poll` or
  /// `result`, with the handle and its progress for a later resume):
  /// `job_failed` with the failure payload in `last_response()`, `timeout`,
  /// `retries_exhausted`, `expired_handle` (404/410), `decode_error`
  /// (undecodable answer, no result where the description says, pages
  /// that stop before `total`), `unknown_status` (from the status policy),
  /// `http_error`, or `operation_aborted` when cancelled. On cancellation,
  /// timeout and exhausted retries the description's cancel request is sent
  /// first, once, within `cancel_timeout` (`cancel_state()` says how it
  /// went); a second cancellation abandons it. With `on_cancel::keep_job` a
  /// cancellation sends nothing: the job keeps running and the error's
  /// handle (progress and remaining budget included) resumes it. Options
  /// `poll_until` would refuse throw `invalid_argument` before any request.
  ///
  /// @par Completion Signature
  /// `co_await` yields `job_result<value_type>`, or throws `job_error`
  /// (phase `poll` or `result`, with the handle).
  ///
  /// @par Per-Operation Cancellation
  /// The types the awaiting coroutine's state lets through (terminal by
  /// default; see the class comment), during a wait, a limiter wait or a
  /// request: throws `job_error(operation_aborted)` with the handle and its
  /// progress. What happens to the remote job:
  /// - `on_cancel::cancel_job` (the overloads without `when_cancelled`), in
  ///   the poll phase: the description's cancel request is sent once,
  ///   bounded by `cancel_timeout` (limiter wait included), before the
  ///   error is thrown; `cancel_state()` is `sent` (2xx, 404 or 410),
  ///   `failed` (refused, no answer in time, or a second cancellation
  ///   abandoned it) or `not_configured` (the description has no cancel
  ///   request: the job keeps running). To let that request run, `wait`
  ///   resets the awaiting coroutine's cancellation state
  ///   (`this_coro::reset_cancellation_state()`: not cancelled, Asio's
  ///   default terminal-only filter), which the caller keeps afterwards;
  /// - `on_cancel::keep_job`: nothing is sent; the job keeps running and
  ///   the error's handle resumes it (`cancel_state()` is `not_applicable`);
  /// - in the result phase (the job has succeeded): nothing is sent.
  ///
  /// @par Errors
  /// As listed above: `job_failed`, `timeout`, `retries_exhausted`,
  /// `expired_handle`, `decode_error`, `unknown_status`, `http_error`, a
  /// transport error, `operation_aborted` (each a `job_error`; on
  /// `timeout` and `retries_exhausted` the cancel request is sent too), and
  /// `invalid_argument` before any request.
  template <clock Clock>
  asio::awaitable<job_result<value_type>> wait(job_handle handle, basic_poll_options<Clock> options,
                                               on_cancel when_cancelled) {
    check_options(options, job_phase::poll, &handle);
    if (handle.remaining) options.deadline = *handle.remaining;
    const auto end = options.deadline.end_from(Clock::now());
    basic_poll_options<Clock> polling = phase_options(options, end);
    polling.hooks = options.hooks;
    polling.resume = handle.progress;
    polling.initial_delay = options.initial_delay;
    // The submit answer's Retry-After is the wait before the first poll.
    if (handle.first_poll_after && handle.progress.attempts == 0)
      polling.initial_delay = std::max(polling.initial_delay, options.hints.bound(*handle.first_poll_after));

    http_request request = make_request(description_.poll, handle.params, &handle.id, {}, options, codecs_.poll);
    auto polled = co_await try_poll_until(exchange<Clock>(std::move(request), end, codecs_.poll), poll_policy{this},
                                          std::move(polling));
    handle.progress = polled.stats.progress();
    handle.remaining = left_until<Clock>(end);
    if (polled.error) {
      job_error failure = to_job_error(std::move(polled), job_phase::poll, handle, "polling job " + detail::in_quotes(handle.id));
      const auto ec = failure.code();
      const bool aborted = ec == detail::asio_error(asio::error::operation_aborted);
      if ((aborted && when_cancelled == on_cancel::cancel_job) || ec == errc::timeout || ec == errc::retries_exhausted) {
        if (description_.cancel) {
          // A fresh cancellation state: the caller's cancellation ended the
          // poll and must not also stop the cancel request (Asio would throw
          // at the next co_await); a new cancellation still can.
          co_await asio::this_coro::reset_cancellation_state();
          co_await cancel_remotely(failure, handle, options);
        } else {
          failure.cancel_ = remote_cancel::not_configured;
        }
      }
      throw failure;
    }

    job_result<value_type> result{{}, std::move(handle), polled.stats, 0, std::move(polled.response->http)};
    co_await collect_result(result, std::move(*polled.response->value), options, end);
    co_return result;
  }
  /// `wait(handle, options, on_cancel::cancel_job)`.
  template <clock Clock>
  asio::awaitable<job_result<value_type>> wait(job_handle handle, basic_poll_options<Clock> options) {
    return wait(std::move(handle), std::move(options), on_cancel::cancel_job);
  }
  /// `wait(handle, poll_options{})`.
  asio::awaitable<job_result<value_type>> wait(job_handle handle) { return wait(std::move(handle), poll_options{}); }

 private:
  // The status policy of the poll phase: HTTP first, then the body, then the user's policy.
  struct poll_policy {
    job_client* client;
    poll_status operator()(const answer& a) const { return client->classify_poll(a); }
    poll_status classify_error(const std::error_code& ec) const
      requires requires(Status& s) { { s.classify_error(ec) } -> std::convertible_to<poll_status>; }
    {
      return client->status_.classify_error(ec);
    }
  };

  // The submit answer is good when it is 2xx and holds a handle. Only a
  // refused connection and a request the transport never sent surely never
  // reached the server, so only those transport errors are retried; an
  // idempotent submit (the same key gets the same job) also retries the
  // doubtful ones: a reset after sending, a lost answer, a timeout.
  struct submit_policy {
    job_client* client;
    bool idempotent;
    poll_status operator()(const answer& a) const {
      if (auto s = classify_http_status(a.http, request_role::submit, std::chrono::system_clock::now())) return *s;
      std::string why;
      if (auto id = client->handle_in(a, why)) return poll_status::succeeded("handle " + detail::in_quotes(*id));
      return poll_status::permanent(errc::decode_error, std::move(why));
    }
    poll_status classify_error(const std::error_code& ec, std::string what) const {
      if (error_is(ec, std::errc::connection_refused) || ec == errc::not_sent || (idempotent && is_transient_error(ec)))
        return poll_status::transient(ec, std::move(what));
      return poll_status::permanent(ec, std::move(what) + "; not retried: the server may have created the job");
    }
  };

  // The lookup answer is good when it is 2xx and holds a handle or says
  // there is no such job, or when it is a 404 (no such job). Transport
  // errors are classified as a poll's are: a lookup changes nothing.
  struct lookup_policy {
    job_client* client;
    poll_status operator()(const answer& a) const {
      if (a.http.status == 404) return poll_status::succeeded("no such job: " + describe(a.http));
      if (auto s = classify_http_status(a.http, request_role::fetch, std::chrono::system_clock::now())) return *s;
      lookup_answer found = client->lookup_in(a);
      if (!found.problem.empty()) return poll_status::permanent(errc::decode_error, std::move(found.problem));
      return poll_status::succeeded(found.id ? "handle " + detail::in_quotes(*found.id) : "no such job");
    }
  };

  // What a 2xx lookup answer says: the job's handle, no such job (neither
  // set), or what is wrong with it.
  struct lookup_answer {
    std::optional<std::string> id;
    std::string problem;
  };

  lookup_answer lookup_in(const answer& a) const {
    const std::string& where = description_.lookup->handle_pointer;
    if (!a.value) return {std::nullopt, "undecodable lookup answer (" + a.decode_failure + "): " + describe(a.http)};
    const Codec& codec = codecs_.poll;
    const value_type* at = codec.find(*a.value, where);
    if (!at || detail::is_null_value(*at)) return {};
    std::optional<std::string> text = codec.text(*at);
    const bool is_number = codec.number(*at).has_value();
    if (text && !text->empty() && (is_number ? detail::is_integer_text(*text) : detail::is_string_value(*at)))
      return {std::move(text), {}};
    return {std::nullopt, "expected a job handle (a non-empty string or an integer) or null at " +
                              detail::pointer_name(where) + " in the lookup answer: " + describe(a.http)};
  }

  // A result or page request is good when it is 2xx and decodes.
  struct fetch_policy {
    poll_status operator()(const answer& a) const {
      if (auto s = classify_http_status(a.http, request_role::fetch, std::chrono::system_clock::now())) return *s;
      if (!a.value) return undecodable(a);
      return poll_status::succeeded("HTTP " + std::to_string(a.http.status));
    }
  };

  // The cancel request is good when it is 2xx, or 404/410: the job is gone either way.
  struct cancel_policy {
    poll_status operator()(const answer& a) const {
      if (a.http.ok() || a.http.status == 404 || a.http.status == 410) return poll_status::succeeded(describe(a.http));
      if (auto s = classify_http_status(a.http, request_role::cancel, std::chrono::system_clock::now())) return *s;
      return poll_status::succeeded(describe(a.http));
    }
  };

  static poll_status undecodable(const answer& a) {
    return poll_status::permanent(errc::decode_error, "undecodable answer (" + a.decode_failure + "): " + describe(a.http));
  }

  poll_status classify_poll(const answer& a) {
    const auto now = std::chrono::system_clock::now();
    if (auto s = classify_http_status(a.http, request_role::poll, now)) return *s;
    if (!a.value) return undecodable(a);
    poll_status s = status_(*a.value);
    if (s.state == job_state::pending && !s.retry_after) s.retry_after = retry_after_hint(a.http, now);
    return s;
  }

  // The handle in a submit answer, or none with `why` saying what was there
  // instead. The answer was a success, so the server may well have created
  // a job that nothing here can poll or cancel: the message says so.
  std::optional<std::string> handle_in(const answer& a, std::string& why) const {
    const std::string& where = description_.handle.where;
    constexpr std::string_view orphan =
        "; the server accepted the submit, so a job may exist on the server that this client cannot poll or cancel";
    if (description_.handle.from == handle_source::kind::header) {
      if (auto v = a.http.headers.find(where); v && !v->empty()) return std::string(*v);
      why = "no " + where + " header in the submit answer: " + describe(a.http) + std::string(orphan);
      return std::nullopt;
    }
    if (!a.value) {
      why = "undecodable submit answer (" + a.decode_failure + "): " + describe(a.http) + std::string(orphan);
      return std::nullopt;
    }
    if (const auto* at = codecs_.submit.find(*a.value, where)) {
      if (auto text = codecs_.submit.text(*at); text && !text->empty()) return text;
    }
    why = "no job handle at " + detail::pointer_name(where) + " in the submit answer: " + describe(a.http) +
          std::string(orphan);
    return std::nullopt;
  }

  // `options` is a reference: both callers co_await this at once, from a
  // frame that holds them, so the phase copy below is the only copy.
  template <class Clock>
  asio::awaitable<job_handle> submit_until(job_params params, const basic_poll_options<Clock>& options,
                                           std::optional<typename Clock::time_point> end) {
    basic_poll_options<Clock> submitting = phase_options(options, end);
    const bool idempotent = submit_is_idempotent();
    // Unless the submit is idempotent, the attempt timeout goes to the
    // transport only: a submit that timed out is not retried.
    if (!idempotent) submitting.attempt_timeout.reset();
    http_request request = make_request(description_.submit, params, nullptr, {}, options, codecs_.submit);
    auto submitted = co_await try_poll_until(exchange<Clock>(std::move(request), end, codecs_.submit),
                                             submit_policy{this, idempotent}, std::move(submitting));
    if (submitted.error) {
      const auto key = params.find(job_key_name);
      throw to_job_error(std::move(submitted), job_phase::submit, std::nullopt,
                         key == params.end() ? std::string("submitting job")
                                             : "submitting job with key " + detail::in_quotes(key->second));
    }
    std::string why;
    job_handle handle{*handle_in(*submitted.response, why), std::move(params)};
    handle.first_poll_after = retry_after_hint(submitted.response->http, std::chrono::system_clock::now());
    co_return handle;
  }

  template <class Clock>
  asio::awaitable<void> collect_result(job_result<value_type>& result, value_type final_answer,
                                       const basic_poll_options<Clock>& options,
                                       std::optional<typename Clock::time_point> end) {
    const result_source& source = description_.result;
    const job_handle& handle = result.handle;
    const std::string context = "fetching the result of job " + detail::in_quotes(handle.id);
    if (source.from == result_source::kind::poll_answer) {
      result.value = value_at(codecs_.poll, final_answer, source.pointer, result.last_poll, handle);
      co_return;
    }
    const job_params answer_values = values_from(final_answer, result.last_poll, handle);
    if (source.from == result_source::kind::fetch) {
      answer fetched = co_await fetch(source.request, handle, answer_values, options, end, context);
      ++result.pages;
      result.value = value_at(codecs_.result, *fetched.value, source.pointer, fetched.http, handle);
      co_return;
    }

    const paging& how = source.pages;
    value_type items = codecs_.result.empty_array();
    std::size_t collected = 0;
    std::optional<std::size_t> total;
    auto take_page = [&](const Codec& codec, const value_type& page, const http_response& http) {
      const value_type* page_items = codec.find(page, how.items);
      const value_type* page_total = codec.find(page, how.total);
      const auto count = page_total ? codec.number(*page_total) : std::nullopt;
      if (!page_items || !count || *count < 0)
        throw result_error(errc::decode_error,
                           "page has no item array at " + how.items + " or no count at " + how.total + ": " + describe(http),
                           http, handle);
      total = static_cast<std::size_t>(*count);
      try {
        return codec.append_elements(items, *page_items);
      } catch (const std::exception& e) {
        throw result_error(errc::decode_error, std::string("page items at ") + how.items + ": " + e.what(), http, handle);
      }
    };
    if (how.first_page_in_poll_answer) collected += take_page(codecs_.poll, final_answer, result.last_poll);
    while (!total || collected < *total) {
      job_params page = answer_values;
      page.insert_or_assign("offset", std::to_string(how.first_offset + collected));
      page.insert_or_assign("limit", std::to_string(how.page_size));
      answer fetched = co_await fetch(source.request, handle, page, options, end, context);
      ++result.pages;
      const std::size_t added = take_page(codecs_.result, *fetched.value, fetched.http);
      collected += added;
      if (added == 0 && collected < *total)
        throw result_error(errc::decode_error,
                           "page at offset " + std::to_string(how.first_offset + collected - added) +
                               " has no items, but " + std::to_string(collected) + " of " + std::to_string(*total) +
                               " were collected: " + describe(fetched.http),
                           fetched.http, handle);
    }
    result.value = std::move(items);
  }

  // One result request, retried as the options say; throws job_error (phase result).
  template <class Clock>
  asio::awaitable<answer> fetch(const request_template& what, const job_handle& handle, const job_params& extra,
                                const basic_poll_options<Clock>& options, std::optional<typename Clock::time_point> end,
                                const std::string& context) {
    http_request request = make_request(what, handle.params, &handle.id, extra, options, codecs_.result);
    auto fetched = co_await try_poll_until(exchange<Clock>(std::move(request), end, codecs_.result), fetch_policy{},
                                           phase_options(options, end));
    if (fetched.error) throw to_job_error(std::move(fetched), job_phase::result, handle, context);
    co_return std::move(*fetched.response);
  }

  // Sends the description's cancel request for a job given up on, and records how it went in `failure`.
  template <class Clock>
  asio::awaitable<void> cancel_remotely(job_error& failure, const job_handle& handle,
                                        const basic_poll_options<Clock>& options) {
    basic_poll_options<Clock> cancelling = phase_options(options, std::optional<typename Clock::time_point>{});
    cancelling.deadline = description_.cancel_timeout;
    cancelling.attempt_timeout = description_.cancel_timeout;
    cancelling.max_retries = 0;
    std::optional<http_request> request;
    std::string outcome;
    try {
      request = make_request(*description_.cancel, handle.params, &handle.id, {}, cancelling, codecs_.poll);
    } catch (const std::system_error& e) {
      outcome = e.what();
    }
    failure.cancel_ = remote_cancel::failed;
    if (request) {
      // Bounded as a whole: a poll's first limiter wait is not held to its
      // deadline, but a cancel must not wait out a long limiter pause.
      auto send = [&] {
        return try_poll_until(exchange<Clock>(*request, std::nullopt, codecs_.poll), cancel_policy{}, cancelling);
      };
      timer_for<Clock> timer(co_await asio::this_coro::executor);
      timer.expires_after(std::chrono::ceil<typename Clock::duration>(description_.cancel_timeout));
      using namespace asio::experimental::awaitable_operators;
      auto first = co_await (send() || timer.async_wait(asio::use_awaitable));
      if (first.index() == 1) {
        outcome = "no answer within " + detail::format_seconds(description_.cancel_timeout) + ", limiter wait included";
      } else {
        const poll_result<answer>& cancelled = std::get<0>(first);
        outcome = cancelled.error ? cancelled.message : cancelled.status.detail;
        if (!cancelled.error) failure.cancel_ = remote_cancel::sent;
      }
    }
    failure.append_to_message(failure.cancel_ == remote_cancel::sent ? "; remote cancel sent (" + outcome + ")"
                                                                     : "; remote cancel failed: " + outcome);
  }

  static value_type value_at(const Codec& codec, const value_type& document, const std::string& pointer,
                             const http_response& http, const job_handle& handle) {
    if (const auto* found = codec.find(document, pointer)) return *found;
    throw result_error(errc::decode_error,
                       "the job succeeded but its answer has no result at " + detail::pointer_name(pointer) + ": " +
                           describe(http),
                       http, handle);
  }

  // The result request's placeholders read from the final poll answer (`result_source::from_answer`).
  job_params values_from(const value_type& final_answer, const http_response& http, const job_handle& handle) const {
    job_params values;
    for (const auto& [name, pointer] : description_.result.from_answer) {
      const value_type* at = codecs_.poll.find(final_answer, pointer);
      std::optional<std::string> text = at ? codecs_.poll.text(*at) : std::nullopt;
      if (!text)
        throw result_error(errc::decode_error,
                           "the job succeeded but its final answer has no " + (at ? std::string("scalar ") : "") +
                               "value at " + detail::pointer_name(pointer) + " for {" + name + "} of the result request: " +
                               describe(http),
                           http, handle);
      values.emplace(name, std::move(*text));
    }
    return values;
  }

  static job_error result_error(errc code, std::string why, const http_response& http, const job_handle& handle) {
    poll_status status = poll_status::permanent(code, why);
    return job_error(code, "fetching the result of job " + detail::in_quotes(handle.id) + ": " + why, std::move(status), {},
                     job_phase::result, handle, http);
  }

  template <class Clock>
  http_request make_request(const request_template& what, const job_params& params, const std::string* handle,
                            const job_params& extra, const basic_poll_options<Clock>& options, const Codec& codec) const {
    job_params values = params;
    if (handle) values.insert_or_assign("handle", *handle);
    for (const auto& [name, value] : extra) values.insert_or_assign(name, value);
    http_request request;
    request.method = what.method;
    request.url = expand_template(what.url, values, template_part::url);
    if (request.url.starts_with('/'))
      request.url = detail::resolve_url(std::move(request.url),
                                        expand_template(description_.submit.url, values, template_part::url));
    for (const auto& h : what.headers)
      request.headers.add(h.name, expand_template(h.value, values, template_part::header));
    if (!what.form.empty()) {
      if (!what.body.empty())
        throw std::system_error(errc::invalid_argument, "request to " + what.url + " has both a body and form fields");
      for (const auto& [name, value] : what.form) {
        if (!request.body.empty()) request.body += '&';
        request.body += detail::percent_encode(name) + '=' +
                        detail::percent_encode(expand_template(value, values, template_part::body));
      }
      if (!request.headers.contains("Content-Type"))
        request.headers.add("Content-Type", "application/x-www-form-urlencoded");
    } else {
      request.body = expand_template(what.body, values, template_part::body);
    }
    if (!request.body.empty() && !request.headers.contains("Content-Type"))
      request.headers.add("Content-Type", std::string(codec.content_type()));
    if (!request.headers.contains("Accept")) request.headers.add("Accept", std::string(codec.content_type()));
    request.timeout = options.attempt_timeout;
    return request;
  }

  // The poll operation for one request: sends it, bounded by the job's
  // deadline `end` (a request sent at or after it still gets
  // final_request_grace, so the one poll rule 1 promises can be answered),
  // and decodes a 2xx body. A transport failure the caller cannot read from
  // the code alone is rethrown saying what happened.
  template <class Clock>
  auto exchange(http_request request, std::optional<typename Clock::time_point> end, const Codec& codec) {
    return [this, request = std::move(request), end, codec = &codec]() -> asio::awaitable<answer> {
      http_request sent = request;
      if (end) {
        sent.deadline =
            std::max<std::chrono::nanoseconds>(*end - Clock::now(), final_request_grace);
      }
      // Not `answer a{co_await ...}`: g++ 12 miscompiles a co_await inside an aggregate initializer.
      answer a;
      auto [ec, http] =
          co_await transport_->async_request(std::move(sent), asio_tokens::as_tuple(asio::use_awaitable));
      if (ec) throw_described(ec, request, end.has_value(), response_limit());
      a.http = std::move(http);
      if (a.http.ok()) {
        try {
          a.value.emplace(detail::decode_answer(*codec, a.http.body, a.http.headers.find("Content-Type").value_or("")));
        } catch (const std::exception& e) {
          a.decode_failure = e.what();
        }
      }
      co_return a;
    };
  }

  // Why a request failed, in words its code alone cannot give: a slow answer
  // says it was slow and which bound cut it; other failures pass unchanged.
  [[noreturn]] static void throw_described(const std::error_code& ec, const http_request& request, bool bounded,
                                           const std::string& limit) {
    using detail::format_seconds;
    if (error_is(ec, std::errc::timed_out)) {
      std::string what = "no complete answer to " + request.method + " " + request.url + " in time (";
      if (request.timeout) what += "request timeout " + format_seconds(*request.timeout);
      if (request.timeout && bounded) what += ", ";
      if (bounded) what += "the job's deadline";
      if (!request.timeout && !bounded) what += "the transport's default timeout";
      throw std::system_error(ec, what + "): the answer was slow");
    }
    if (ec == errc::not_sent)
      throw std::system_error(ec, request.method + " " + request.url + " never left the client");
    if (error_is(ec, std::errc::message_size))
      throw std::system_error(ec, "the answer to " + request.method + " " + request.url +
                                      " is larger than the transport's size limits" + limit);
    throw std::system_error(ec);
  }

  // " (body N bytes, headers M bytes)": the size limits the transport tells.
  std::string response_limit() const {
    std::string limits;
    if constexpr (requires(const Transport& t) { { t.max_response_bytes() } -> std::convertible_to<std::size_t>; })
      limits = "body " + std::to_string(transport_->max_response_bytes()) + " bytes";
    if constexpr (requires(const Transport& t) { { t.max_header_bytes() } -> std::convertible_to<std::size_t>; })
      limits += (limits.empty() ? "" : ", ") + std::string("headers ") + std::to_string(transport_->max_header_bytes()) +
                " bytes";
    return limits.empty() ? limits : " (" + limits + ")";
  }

  template <class Clock>
  static basic_poll_options<Clock> phase_options(const basic_poll_options<Clock>& options,
                                                 std::optional<typename Clock::time_point> end) {
    basic_poll_options<Clock> phase = options;
    phase.deadline = end ? basic_deadline<Clock>(*end) : basic_deadline<Clock>::none();
    phase.hooks = nullptr;
    phase.resume = {};
    phase.initial_delay = std::chrono::nanoseconds::zero();  // only the poll phase waits before its first request
    return phase;
  }

  // Options poll_until would refuse end the call before any request, and
  // before their deadline is turned into a time point.
  template <class Clock>
  static void check_options(const basic_poll_options<Clock>& options, job_phase phase, const job_handle* handle) {
    auto why = options.invalid_reason();
    if (!why) return;
    throw invalid_call(phase, "invalid poll options: " + *why, handle);
  }

  // An `invalid_argument` job_error for a call refused before any request.
  static job_error invalid_call(job_phase phase, const std::string& why, const job_handle* handle = nullptr) {
    return job_error(errc::invalid_argument, std::string(doing(phase)) + ": " + why,
                     poll_status::permanent(errc::invalid_argument, why), {}, phase,
                     handle ? std::optional<job_handle>(*handle) : std::nullopt, std::nullopt);
  }

  // What a phase does, as messages begin.
  static std::string_view doing(job_phase phase) noexcept {
    switch (phase) {
      case job_phase::submit: return "submitting job";
      case job_phase::poll: return "polling job";
      case job_phase::result: return "fetching the result";
      case job_phase::lookup: return "looking up job";
    }
    return "job";
  }

  template <class Clock>
  static std::optional<std::chrono::nanoseconds> left_until(std::optional<typename Clock::time_point> end) {
    if (!end) return std::nullopt;
    return std::max(std::chrono::nanoseconds(*end - Clock::now()), std::chrono::nanoseconds::zero());
  }

  static job_error to_job_error(poll_result<answer> r, job_phase phase, std::optional<job_handle> handle,
                                const std::string& context) {
    std::optional<http_response> last;
    if (r.response) last = std::move(r.response->http);
    return job_error(r.error, context + ": " + r.message, std::move(r.status), r.stats, phase, std::move(handle),
                     std::move(last));
  }

  // See exchange().
  static constexpr std::chrono::nanoseconds final_request_grace = std::chrono::seconds(1);

  Transport* transport_;
  job_description description_;
  Status status_;
  phase_codecs<Codec> codecs_;
  bool submit_uses_key_;  // the submit request uses {job_key}
};

/// `job_client(transport, description, field_status<json_codec>(...))`:
/// the codec is the status policy's when it names one (`codec_type`).
template <class Transport, class Status>
  requires requires { typename Status::codec_type; }
job_client(Transport&, job_description, Status) -> job_client<Transport, typename Status::codec_type, Status>;

template <class Transport, class Status, class Codec>
job_client(Transport&, job_description, Status, Codec) -> job_client<Transport, Codec, Status>;

template <class Transport, class Status, class Codec>
job_client(Transport&, job_description, Status, phase_codecs<Codec>) -> job_client<Transport, Codec, Status>;

}  // namespace jobpoll

#include "jobpoll/detail/workarounds_pop.hpp"
