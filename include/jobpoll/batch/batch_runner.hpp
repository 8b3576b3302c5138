#pragma once
// Runs the jobs of a batch through one job client: a cap on jobs in flight,
// the caller's limiter and per-job strategies, resubmission with lineage,
// skipping, a circuit breaker, a safe stop with a checkpoint, resume,
// reconciliation and an audit log.

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/error.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "jobpoll/batch/audit_log.hpp"
#include "jobpoll/batch/batch_job.hpp"
#include "jobpoll/batch/checkpoint.hpp"
#include "jobpoll/batch/circuit_breaker.hpp"
#include "jobpoll/batch/reconcile.hpp"
#include "jobpoll/clock.hpp"
#include "jobpoll/detail/invalid_argument.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/job_client.hpp"
#include "jobpoll/poll_options.hpp"

// As in poll_until.hpp: g++ 12 -O2's false -Wmismatched-new-delete on Asio's
// awaitable frames, silenced for this file's coroutines only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace jobpoll {

/// A job client a batch can drive: `submit(params, options)` gives a handle,
/// `wait(handle, options, on_cancel)` the result or a `job_error` carrying
/// the handle (as `job_client` does).
template <class C, class Clock>
concept batch_job_client = requires(C& c, job_params p, job_handle h, basic_poll_options<Clock> o) {
  typename C::value_type;
  { c.submit(std::move(p), o) } -> std::same_as<asio::awaitable<job_handle>>;
  { c.wait(std::move(h), o, on_cancel::keep_job) } -> std::same_as<asio::awaitable<job_result<typename C::value_type>>>;
};

/// How a failed job is submitted again: its parameters (the failed job's, or
/// changed ones) and why, recorded as the new job's `override_reason`.
struct resubmission {
  job_params params;
  std::string reason;
};

/// How a batch runs its jobs.
template <clock Clock>
struct basic_batch_options {
  /// Names the batch in its checkpoint and audit log; a checkpoint of
  /// another name is refused.
  std::string name = "batch";
  /// Jobs submitting or being polled at once (at least 1).
  std::size_t max_in_flight = 4;
  /// For every job: its deadline (covering submit, polls and result),
  /// interval, backoff, retry budget, attempt timeout, hooks, and the
  /// limiter every request of the batch goes through.
  basic_poll_options<Clock> job;
  /// Resubmissions per entry after a failure (each a new job naming its parent).
  std::size_t max_resubmits = 0;
  /// Decides a resubmission: none gives up on the job. Unset: the same parameters.
  std::function<std::optional<resubmission>(const batch_job& failed)> resubmit;
  /// Stops submitting when too many recent jobs failed (off by default).
  circuit_breaker_options breaker;
  /// After `request_stop`, how long jobs in flight may still finish.
  std::chrono::nanoseconds grace_period{};
  /// What happens to jobs still in flight when the grace period ends:
  /// kept running remotely (polled again on resume) or cancelled remotely.
  on_cancel when_stopped = on_cancel::keep_job;
  /// Where the batch's state is saved (atomically) and resumed from.
  std::optional<std::filesystem::path> checkpoint;
  /// Least time from the end of one checkpoint write to the start of the
  /// next while the batch runs (0: after every change). The state at the end of a run is always written. After a
  /// crash (not a stop) the jobs submitted since the last write are lost to
  /// the checkpoint and would be submitted again.
  std::chrono::nanoseconds checkpoint_interval = std::chrono::seconds(1);
  /// Where an NDJSON line is appended for every state change.
  std::optional<std::filesystem::path> audit_log;
  /// Called after every change with the counts per state and the job that
  /// changed; must not throw.
  std::function<void(const batch_counts&, const batch_job&)> on_progress;
};

using batch_options = basic_batch_options<std::chrono::steady_clock>;

/// Why a batch run ended.
enum class batch_end {
  finished,      ///< no job was left to run
  stopped,       ///< `request_stop` / `stop_now` (jobs may be left for a resume)
  breaker_open,  ///< the circuit breaker stopped new submissions
  cancelled,     ///< the awaiting coroutine was cancelled
};

inline constexpr std::string_view to_string(batch_end e) noexcept {
  switch (e) {
    case batch_end::finished: return "finished";
    case batch_end::stopped: return "stopped";
    case batch_end::breaker_open: return "breaker_open";
    case batch_end::cancelled: return "cancelled";
  }
  return "invalid";
}

/// What `batch_runner::run` returns.
struct batch_report {
  batch_end end = batch_end::finished;
  std::string reason;             ///< why it ended, in words
  batch_summary summary;          ///< the reconciliation after the run
  std::size_t peak_in_flight = 0; ///< most jobs in flight at once
  std::size_t resumed = 0;        ///< jobs polled again by a saved handle
};

/// `to_json(report.summary)` followed by "end", "reason", "resumed" and
/// "peak_in_flight": what a batch program prints when it ends.
inline nlohmann::ordered_json to_json(const batch_report& report) {
  nlohmann::ordered_json out = to_json(report.summary);
  out["end"] = std::string(to_string(report.end));
  out["reason"] = report.reason;
  out["resumed"] = report.resumed;
  out["peak_in_flight"] = report.peak_in_flight;
  return out;
}

/// Runs a batch: every `batch_entry` becomes a job record, submitted and
/// polled through `client` with `options.job`, at most `max_in_flight` at a
/// time, in entry order.
///
/// A failed job (failed, timed out, retries exhausted, not submittable) is
/// resubmitted up to `max_resubmits` times as a new record naming its parent;
/// the parent is then skipped ("resubmitted as job N"), as the seed's
/// lifecycle does; a resubmission made once the batch stops submitting (a
/// stop, the breaker) stays pending for a resume. A job whose submit may have
/// reached the server without an answer is never resubmitted. Skipped
/// entries are recorded and never submitted.
///
/// With `options.checkpoint` set, the constructor resumes from that file when
/// it exists: completed and failed jobs are kept, jobs that were in flight
/// are polled again by their saved handle (never submitted again), pending
/// ones are submitted. A file that is not a checkpoint of this batch (another
/// name, other entries, corrupt) is refused with `errc::invalid_checkpoint`
/// and left untouched.
///
/// Use it from one thread: `run`, `request_stop`, `stop_now`, `skip` and
/// `resubmit` must be called on the executor given to the constructor (a
/// strand, or an io_context run by one thread). The client and the runner
/// must outlive the run.
template <class Client, clock Clock = std::chrono::steady_clock>
  requires batch_job_client<Client, Clock>
class batch_runner {
 public:
  using value_type = typename Client::value_type;
  /// Receives each completed job's result (it may move the value out) before
  /// the job is recorded as completed; if it throws, the job is failed with
  /// the exception's message.
  using result_handler = std::function<void(const batch_job&, job_result<value_type>&)>;

  /// Throws `std::invalid_argument` for bad options, `std::system_error`
  /// (`errc::invalid_checkpoint` or the OS error, naming the file) for a
  /// checkpoint that cannot be resumed or an audit log that cannot be opened.
  batch_runner(asio::any_io_executor executor, Client& client, std::vector<batch_entry> entries,
               basic_batch_options<Clock> options, result_handler on_result = {})
      : executor_(std::move(executor)),
        client_(&client),
        entries_(entries.size()),
        options_(std::move(options)),
        on_result_(std::move(on_result)),
        breaker_(options_.breaker),
        fingerprint_(batch_fingerprint(entries)),
        grace_timer_(executor_),
        checkpoint_timer_(executor_),
        all_done_(executor_) {
    if (options_.max_in_flight == 0) detail::throw_invalid("batch_runner", "max_in_flight must be at least 1", "0");
    if (options_.grace_period < std::chrono::nanoseconds::zero())
      detail::throw_invalid("batch_runner", "grace_period must not be negative", detail::describe(options_.grace_period));
    if (options_.checkpoint_interval < std::chrono::nanoseconds::zero())
      detail::throw_invalid("batch_runner", "checkpoint_interval must not be negative",
                            detail::describe(options_.checkpoint_interval));
    std::optional<batch_checkpoint> saved;
    if (options_.checkpoint) saved = load_checkpoint_if_present(*options_.checkpoint);
    if (saved) check_belongs_here(*saved);
    if (options_.audit_log) audit_.emplace(*options_.audit_log, options_.name);
    if (saved) {
      jobs_ = std::move(saved->jobs);
      for (const batch_job& job : jobs_) counts_.add(job);
      // A submit that was under way when the last run stopped (a crash) may
      // have created the job: it is failed rather than submitted twice.
      for (std::size_t i = 0; i < jobs_.size(); ++i)
        if (jobs_[i].state == batch_job_state::submitting)
          fail(i, make_error_code(errc::job_failed),
               "its submit request was under way when the previous run stopped; the server may have created the "
               "job, so it is not submitted again",
               resubmittable::no);
    } else {
      // The records keep the entries' parameters: the entries themselves are not kept.
      jobs_.reserve(entries_);
      for (std::size_t e = 0; e < entries_; ++e) {
        batch_job job;
        job.id = jobs_.size() + 1;
        job.entry = e;
        job.params = std::move(entries[e].params);
        job.skipped = entries[e].skip;
        job.skip_reason = std::move(entries[e].skip_reason);
        job.created = std::chrono::system_clock::now();
        add(std::move(job));
      }
    }
  }

  batch_runner(const batch_runner&) = delete;
  batch_runner& operator=(const batch_runner&) = delete;

  /// Runs the batch until no job is left to run, a stop, the circuit
  /// breaker, or cancellation; then writes the checkpoint (when configured)
  /// and returns the report. Call it once.
  ///
  /// Failed jobs do not throw: they are in the report. Cancellation through
  /// the awaiting coroutine's slot abandons the jobs in flight at once (as
  /// `when_stopped` says) and returns `batch_end::cancelled`. Throws
  /// `std::system_error` when the final checkpoint cannot be written (after
  /// every job in flight ended), what a progress callback or the audit log
  /// threw (the batch stops first, as `request_stop` does), and
  /// `std::logic_error` on a second call.
  asio::awaitable<batch_report> run() {
    if (started_) throw std::logic_error("jobpoll::batch_runner::run may be called once");
    started_ = true;
    running_ = true;
    for (std::size_t i = 0; i < jobs_.size(); ++i)
      if (!jobs_[i].skipped && jobs_[i].state == batch_job_state::running) {
        queue_.push_back(i);
        ++resumed_;
      }
    for (std::size_t i = 0; i < jobs_.size(); ++i)
      if (!jobs_[i].skipped && jobs_[i].state == batch_job_state::pending) queue_.push_back(i);

    if (!stop_requested_) {
      const std::size_t workers = std::min(options_.max_in_flight, queue_.size());
      for (std::size_t w = 0; w < workers; ++w) workers_.push_back(std::make_unique<worker>());
      workers_left_ = workers;
      for (std::size_t w = 0; w < workers; ++w) {
        asio::co_spawn(executor_, work(w),
                       asio::bind_cancellation_slot(workers_[w]->cancel.slot(), [this, w](std::exception_ptr e) {
                         worker_ended(w, e);
                       }));
      }
      while (workers_left_ > 0) {
        all_done_.expires_at(asio::steady_timer::time_point::max());
        std::error_code ec;
        co_await all_done_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
        if (workers_left_ > 0 && state.cancelled() != asio::cancellation_type::none) {
          cancelled_ = true;
          abandon_in_flight();
          // The caller's cancellation must not also interrupt the wait for the workers.
          co_await asio::this_coro::reset_cancellation_state();
        }
      }
    }
    running_ = false;
    grace_timer_.cancel();
    checkpoint_timer_.cancel();
    if (options_.checkpoint) save(*options_.checkpoint);
    if (worker_failure_) std::rethrow_exception(worker_failure_);
    co_return report();
  }

  /// Stops submitting; jobs in flight may finish within `grace_period`,
  /// then are abandoned as `when_stopped` says. A job whose submit request
  /// was interrupted is pending again if no request reached the server, and
  /// failed (never submitted twice) if one may have. Before `run`, makes
  /// `run` return at once. Idempotent; `stop_now` shortens the grace.
  void request_stop(std::string reason = "stop requested") {
    if (stop_requested_) return;
    stop_requested_ = true;
    stop_reason_ = std::move(reason);
    if (!running_) return;
    if (options_.grace_period == std::chrono::nanoseconds::zero()) {
      abandon_in_flight();
      return;
    }
    grace_timer_.expires_after(std::chrono::ceil<typename Clock::duration>(options_.grace_period));
    grace_timer_.async_wait([this](std::error_code ec) {
      if (!ec) abandon_in_flight();  // a cancelled wait must not touch a runner that may be gone
    });
  }

  /// Stops submitting and abandons the jobs in flight at once (as a second Ctrl-C would).
  void stop_now(std::string reason = "stopped at once") {
    request_stop(std::move(reason));
    if (running_) abandon_in_flight();
  }

  /// Skips job `id` (excluded from reconciliation, never submitted, kept in
  /// the record with `reason`). Throws `std::invalid_argument` for an unknown
  /// id or a job in flight in this run.
  void skip(std::size_t id, std::string reason) {
    const std::size_t i = index_of(id, "skip");
    if (in_flight_here(i))
      detail::throw_invalid("batch_runner", "skip needs a job that is not in flight", "job " + std::to_string(id));
    if (jobs_[i].skipped) return;
    std::erase(queue_, i);
    const batch_job_state state = jobs_[i].state;
    counts_.remove(jobs_[i]);
    jobs_[i].skipped = true;
    jobs_[i].skip_reason = std::move(reason);
    counts_.add(jobs_[i]);
    changed(i, state, "skipped");
  }

  /// Resubmits the failed or cancelled job `id` as a new pending job naming
  /// it as parent (and skips it), outside the automatic `max_resubmits`
  /// budget: the seed's manual resubmission with an override. Returns the
  /// new job's id. Throws `std::invalid_argument` for an unknown id, a job
  /// that is neither failed nor cancelled, or a call during `run`.
  std::size_t resubmit(std::size_t id, resubmission how) {
    const std::size_t i = index_of(id, "resubmit");
    if (running_) detail::throw_invalid("batch_runner", "resubmit needs a batch that is not running", "a running batch");
    if (jobs_[i].state != batch_job_state::failed && jobs_[i].state != batch_job_state::cancelled)
      detail::throw_invalid("batch_runner", "resubmit needs a failed or cancelled job",
                            "job " + std::to_string(id) + " " + std::string(to_string(jobs_[i].state)));
    return jobs_[create_child(i, std::move(how))].id;
  }

  /// Every job record, in id order (resubmissions after the records they resubmit).
  const std::vector<batch_job>& jobs() const noexcept { return jobs_; }
  /// How many entries the batch has.
  std::size_t entries() const noexcept { return entries_; }
  const batch_counts& counts() const noexcept { return counts_; }
  /// Jobs this run is submitting or polling now (never more than `max_in_flight`).
  std::size_t in_flight() const noexcept { return busy_; }
  /// The reconciliation of the records as they are now.
  batch_summary summary() const { return reconcile(jobs_, entries_); }
  /// The state a checkpoint would hold now.
  batch_checkpoint checkpoint() const { return {options_.name, fingerprint_, entries_, jobs_}; }

 private:
  struct worker {
    asio::cancellation_signal cancel;
    std::optional<std::size_t> job;  // the record it works on
    bool done = false;
  };

  bool stopping() const noexcept { return stop_requested_ || cancelled_ || breaker_.open(); }

  asio::awaitable<void> work(std::size_t w) {
    while (!stopping() && !queue_.empty()) {
      const std::size_t i = queue_.front();
      queue_.pop_front();
      workers_[w]->job = i;
      peak_in_flight_ = std::max(peak_in_flight_, ++busy_);
      co_await run_job(i);
      --busy_;
      workers_[w]->job.reset();
    }
  }

  // An exception out of a worker (a progress callback's, an audit log that
  // cannot be written) stops the batch; `run` rethrows it after the checkpoint.
  void worker_ended(std::size_t w, std::exception_ptr e) {
    workers_[w]->done = true;
    if (e && !worker_failure_) {
      worker_failure_ = e;
      request_stop("stopped after an error");
    }
    if (--workers_left_ == 0) all_done_.cancel();
  }

  // Record `i` from submit (unless it has a handle) to its end.
  asio::awaitable<void> run_job(std::size_t i) {
    if (!jobs_[i].handle) {
      set_state(i, batch_job_state::submitting);
      std::optional<job_error> failure;
      // The handle carries what the submit left of the job's deadline to the poll.
      std::optional<job_handle> handle = co_await step(i, client_->submit(jobs_[i].params, options_.job), &failure);
      if (failure) submit_failed(i, *failure);
      if (!handle) co_return;
      jobs_[i].handle = std::move(handle);
      jobs_[i].submitted = std::chrono::system_clock::now();
      set_state(i, batch_job_state::running);
    }

    std::optional<job_error> failure;
    std::optional<job_result<value_type>> result =
        co_await step(i, client_->wait(*jobs_[i].handle, options_.job, options_.when_stopped), &failure);
    if (failure) wait_failed(i, *failure);
    if (!result) co_return;
    jobs_[i].handle = result->handle;
    if (on_result_) {
      try {
        on_result_(jobs_[i], *result);
      } catch (const std::exception& e) {
        fail(i, errc::poll_exception, std::string("the result handler threw: ") + e.what());
        co_return;
      }
    }
    set_state(i, batch_job_state::completed);
    breaker_.record(false);
  }

  // Awaits the submit or the wait of job `i`. A job_error goes to `failure`
  // for the caller to sort out; any other exception fails the job at once (a
  // template placeholder without a value, a status policy that threw).
  template <class T>
  asio::awaitable<std::optional<T>> step(std::size_t i, asio::awaitable<T> op, std::optional<job_error>* failure) {
    try {
      co_return co_await std::move(op);
    } catch (const job_error& e) {
      failure->emplace(e);
    } catch (const std::system_error& e) {
      fail(i, e.code(), e.what());
    } catch (const std::exception& e) {
      fail(i, errc::poll_exception, e.what());
    }
    co_return std::nullopt;
  }

  void submit_failed(std::size_t i, const job_error& e) {
    if (e.code() != asio::error::operation_aborted) {
      fail(i, e.code(), e.what());
      return;
    }
    // Interrupted by a stop. Every attempt but one still under way failed
    // transiently, i.e. surely without creating the job (job_client retries
    // a submit only then); an attempt under way may have reached the server.
    const poll_stats& s = e.stats();
    if (s.attempts > s.transient_failures) {
      fail(i, e.code(),
           std::string(e.what()) + "; the submit request was under way, so the server may have created the job: "
                                   "it is not submitted again",
           resubmittable::no);
      return;
    }
    set_state(i, batch_job_state::pending, "submit interrupted before any request reached the server");
  }

  void wait_failed(std::size_t i, const job_error& e) {
    if (e.handle()) jobs_[i].handle = *e.handle();
    if (e.code() != asio::error::operation_aborted) {
      fail(i, e.code(), e.what());
      return;
    }
    if (e.cancel_state() == remote_cancel::sent) {
      record_error(i, e.code(), e.what());
      set_state(i, batch_job_state::cancelled);
      return;
    }
    // Kept running (or the cancel request failed): a resume polls it again by its handle.
    const std::string note = e.cancel_state() == remote_cancel::not_applicable
                                 ? std::string("left running at stop; a resume polls it by its handle")
                                 : std::string(e.what()) + "; left running, a resume polls it by its handle";
    changed(i, batch_job_state::running, note);
  }

  // `no` when a new job could run the same work twice: a submit that may have reached the server.
  enum class resubmittable { yes, no };

  // A resubmission made during a stop stays pending: the checkpoint keeps it and a resume submits it.
  void fail(std::size_t i, std::error_code ec, std::string message, resubmittable may = resubmittable::yes) {
    record_error(i, ec, std::move(message));
    set_state(i, batch_job_state::failed);
    breaker_.record(true);
    if (may == resubmittable::no || jobs_[i].attempt > options_.max_resubmits) return;
    std::optional<resubmission> how =
        options_.resubmit ? options_.resubmit(jobs_[i]) : std::optional<resubmission>(resubmission{jobs_[i].params, {}});
    if (!how) return;
    const std::size_t child = create_child(i, std::move(*how));
    if (running_) queue_.push_back(child);  // before a run, `run` queues every pending job
  }
  void fail(std::size_t i, errc code, std::string message) { fail(i, make_error_code(code), std::move(message)); }

  void record_error(std::size_t i, std::error_code ec, std::string message) {
    jobs_[i].error = std::move(message);
    jobs_[i].error_code = std::string(ec.category().name()) + ":" + std::to_string(ec.value());
  }

  // A new pending record resubmitting record `i`, which is skipped; returns its index.
  std::size_t create_child(std::size_t i, resubmission how) {
    batch_job child;
    child.id = jobs_.size() + 1;
    child.entry = jobs_[i].entry;
    child.parent = jobs_[i].id;
    child.attempt = jobs_[i].attempt + 1;
    child.override_reason = how.params != jobs_[i].params || !how.reason.empty() ? std::move(how.reason) : std::string();
    child.params = std::move(how.params);
    child.created = std::chrono::system_clock::now();
    const std::size_t id = child.id;
    const batch_job_state state = jobs_[i].state;
    counts_.remove(jobs_[i]);
    jobs_[i].skipped = true;
    jobs_[i].skip_reason = "resubmitted as job " + std::to_string(id);
    counts_.add(jobs_[i]);
    changed(i, state, "resubmitted");
    add(std::move(child));
    return jobs_.size() - 1;
  }

  void add(batch_job job) {
    counts_.add(job);
    jobs_.push_back(std::move(job));
    changed(jobs_.size() - 1, std::nullopt, {});
  }

  void set_state(std::size_t i, batch_job_state state, std::string_view note = {}) {
    batch_job& job = jobs_[i];
    const batch_job_state previous = job.state;
    counts_.remove(job);
    job.state = state;
    if (is_terminal(state)) job.ended = std::chrono::system_clock::now();
    counts_.add(job);
    changed(i, previous, note);
  }

  // After every change: the audit line, the progress callback, the checkpoint.
  void changed(std::size_t i, std::optional<batch_job_state> previous, std::string_view note) {
    if (audit_) audit_->record(jobs_[i], previous, note);
    if (options_.on_progress) options_.on_progress(counts_, jobs_[i]);
    if (running_) checkpoint_soon();
  }

  void checkpoint_soon() {
    if (!options_.checkpoint || checkpoint_armed_) return;
    const auto now = Clock::now();
    const auto interval = std::chrono::ceil<typename Clock::duration>(options_.checkpoint_interval);
    if (!last_write_ || now - *last_write_ >= interval) {
      write_checkpoint();
      return;
    }
    checkpoint_armed_ = true;
    checkpoint_timer_.expires_at(*last_write_ + interval);
    checkpoint_timer_.async_wait([this](std::error_code ec) {
      if (ec) return;  // cancelled at the end of the run: the runner may be gone
      checkpoint_armed_ = false;
      write_checkpoint();
    });
  }

  // Writes the checkpoint during a run; a failure stops the batch (the final
  // write at the end of `run` reports it if it persists). The interval runs
  // from the end of a write: with a write slower than the interval, timing
  // from its start would make every later change write again at once.
  void write_checkpoint() {
    try {
      save(*options_.checkpoint);
    } catch (const std::exception& e) {
      request_stop(std::string("the checkpoint could not be written: ") + e.what());
    }
    last_write_ = Clock::now();
  }

  void save(const std::filesystem::path& path) const {
    save_checkpoint(path, options_.name, fingerprint_, entries_, jobs_);
  }

  void abandon_in_flight() {
    for (const auto& w : workers_)
      if (!w->done) w->cancel.emit(asio::cancellation_type::terminal);
  }

  bool in_flight_here(std::size_t i) const {
    return std::any_of(workers_.begin(), workers_.end(), [i](const auto& w) { return !w->done && w->job == i; });
  }

  std::size_t index_of(std::size_t id, std::string_view what) const {
    if (id == 0 || id > jobs_.size())
      detail::throw_invalid("batch_runner", std::string(what) + " needs the id of a job of the batch (1 to " +
                                                std::to_string(jobs_.size()) + ")",
                            std::to_string(id));
    return id - 1;
  }

  void check_belongs_here(const batch_checkpoint& saved) const {
    if (saved.batch == options_.name && saved.fingerprint == fingerprint_ && saved.entries == entries_) return;
    throw std::system_error(
        errc::invalid_checkpoint,
        options_.checkpoint->string() + " is the checkpoint of batch \"" + saved.batch + "\" with " +
            std::to_string(saved.entries) + " entries (fingerprint " + saved.fingerprint + "), not of batch \"" +
            options_.name + "\" with " + std::to_string(entries_) + " entries (fingerprint " + fingerprint_ +
            "); it was left untouched: remove it to start afresh, or give this batch its own checkpoint file");
  }

  batch_report report() const {
    batch_report r;
    r.summary = summary();
    r.peak_in_flight = peak_in_flight_;
    r.resumed = resumed_;
    const std::size_t left = r.summary.counts[batch_job_state::pending] + r.summary.counts[batch_job_state::running];
    if (cancelled_) {
      r.end = batch_end::cancelled;
      r.reason = "cancelled";
    } else if (breaker_.open()) {
      r.end = batch_end::breaker_open;
      r.reason = breaker_.reason();
    } else if (stop_requested_ && left > 0) {
      r.end = batch_end::stopped;
      r.reason = stop_reason_;
    } else {
      r.end = batch_end::finished;
      r.reason = "no job left to run";
    }
    if (left > 0 && r.end != batch_end::finished)
      r.reason += "; " + std::to_string(left) + (left == 1 ? " job" : " jobs") + " left for a resume (" +
                  std::to_string(r.summary.counts[batch_job_state::running]) + " running, " +
                  std::to_string(r.summary.counts[batch_job_state::pending]) + " pending)";
    return r;
  }

  asio::any_io_executor executor_;
  Client* client_;
  std::size_t entries_;
  basic_batch_options<Clock> options_;
  result_handler on_result_;
  circuit_breaker breaker_;
  std::string fingerprint_;
  std::optional<audit_log> audit_;

  std::vector<batch_job> jobs_;
  batch_counts counts_;
  std::deque<std::size_t> queue_;  // indices of the records to run, in order
  std::vector<std::unique_ptr<worker>> workers_;  // stable: each owns the signal its coroutine's slot is bound to
  std::size_t busy_ = 0;  // workers with a job
  std::size_t workers_left_ = 0;
  std::exception_ptr worker_failure_;
  std::size_t peak_in_flight_ = 0;
  std::size_t resumed_ = 0;

  bool started_ = false;
  bool running_ = false;
  bool stop_requested_ = false;
  bool cancelled_ = false;  // the awaiting coroutine cancelled `run`
  std::string stop_reason_;

  timer_for<Clock> grace_timer_;
  timer_for<Clock> checkpoint_timer_;
  bool checkpoint_armed_ = false;
  std::optional<typename Clock::time_point> last_write_;
  asio::steady_timer all_done_;  // never expires: cancelled when the last worker ends
};

/// `batch_runner(executor, client, entries, options[, on_result])`.
template <class Client, clock Clock>
batch_runner(asio::any_io_executor, Client&, std::vector<batch_entry>, basic_batch_options<Clock>)
    -> batch_runner<Client, Clock>;
template <class Client, clock Clock, class Handler>
batch_runner(asio::any_io_executor, Client&, std::vector<batch_entry>, basic_batch_options<Clock>, Handler)
    -> batch_runner<Client, Clock>;

}  // namespace jobpoll

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
