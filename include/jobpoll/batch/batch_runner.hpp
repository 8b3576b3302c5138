#pragma once
// Runs the jobs of a batch a store holds through one job client: a cap on
// jobs in flight, the caller's limiter and per-job strategies, exactly-once
// submission across crashes, resubmission with lineage, skipping, a circuit
// breaker, a safe stop, resume and reconciliation.

#include <algorithm>
#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "jobpoll/detail/asio_forward.hpp"
#if defined(JOBPOLL_USE_BOOST_ASIO)
#include <boost/asio/use_future.hpp>
#else
#include <asio/use_future.hpp>
#endif

#include "jobpoll/batch/batch_job.hpp"
#include "jobpoll/batch/batch_json.hpp"
#include "jobpoll/batch/batch_store.hpp"
#include "jobpoll/batch/circuit_breaker.hpp"
#include "jobpoll/batch/reconcile.hpp"
#include "jobpoll/clock.hpp"
#include "jobpoll/detail/invalid_argument.hpp"
#include "jobpoll/error.hpp"
#include "jobpoll/job_client.hpp"
#include "jobpoll/poll_options.hpp"

// The compiler workarounds this file's coroutines need (W1: g++ 12 -O2's false
// -Wmismatched-new-delete on Asio's awaitable frames), popped at its end.
#include "jobpoll/detail/workarounds_push.hpp"

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

/// Runs the batch a store holds through one job client: its records are
/// submitted and polled with `options.job`, at most `max_in_flight` at a
/// time, jobs left running by an earlier run first, then the doubtful
/// submits of an earlier run, then pending jobs in id order.
///
/// Every change is saved to the store as it happens, one transaction each,
/// and the runner keeps in memory only the jobs in flight and a short page
/// of the next ones: the store, not the runner, holds the batch.
///
/// Submitting once (rule 9): a job's intent (state `submitting`, with its
/// parameters and key) is committed before its submit request leaves, its
/// handle as soon as it is known. A job found `submitting` when a run
/// starts (the last run crashed or stopped during its submit) is sent again
/// with the same `{job_key}` when the client's submit is idempotent, looked
/// up by its key when the client can find jobs (and sent again only if the
/// lookup does not find it), and otherwise marked `unknown`: never failed,
/// never sent twice. `resubmit`, `skip` and `adopt` settle an unknown job.
///
/// A failed job (failed, timed out, retries exhausted, refused) is
/// resubmitted up to `max_resubmits` times as a new record naming its
/// parent, with a key of its own; the parent is then skipped ("resubmitted
/// as job N"), as the seed's lifecycle does. A submit that may have reached
/// the server is never resubmitted as a new job. Skipped records are kept
/// and never submitted.
///
/// The runner owns the batch from construction to destruction
/// (`Store::claim`): a second runner on the same batch is refused with
/// `errc::batch_owned`. On a `shared_batch_store` several runners, in
/// several processes on several machines, run one batch: each takes the
/// records it runs from the store under a lease it renews every third of
/// it, and takes over (by handle: polled, never submitted again) the
/// records of a runner whose lease ran out; it ends when nothing is left to
/// take and no other live runner holds a runnable record. On a
/// `remote_batch_store` every store call of a run is made on the store's
/// worker and awaited, so the event loop never waits on the network; the
/// constructor, the destructor and `skip`/`resubmit`/`adopt` call the store
/// on the calling thread.
///
/// Use it from one thread: `run`, `request_stop`, `stop_now`, `skip`,
/// `resubmit` and `adopt` must be called on the executor given to the
/// constructor (a strand, or an io_context run by one thread). The client,
/// the store and the runner must outlive the run, and the store the runner
/// (its destructor releases the batch).
template <class Client, batch_store Store, clock Clock = std::chrono::steady_clock>
  requires batch_job_client<Client, Clock>
class batch_runner {
 public:
  using value_type = typename Client::value_type;
  /// Receives each completed job's result (it may move the value out) before
  /// the job is recorded as completed, and returns the text the store keeps
  /// with the record ("" for none); if it throws, the job is failed with the
  /// exception's message.
  using result_handler = std::function<std::string(const batch_job&, job_result<value_type>&)>;

  /// Takes the batch `store` holds (created with `Store::create`) and makes
  /// this runner its owner. `on_result` may return `void` (nothing kept) or
  /// something convertible to `std::string`. Throws `std::invalid_argument`
  /// for bad options, `std::system_error` with `errc::batch_owned` when
  /// another runner owns the batch, `errc::store_error` when the store has
  /// no batch or cannot be read.
  template <class OnResult = result_handler>
  batch_runner(asio::any_io_executor executor, Client& client, Store& store, basic_batch_options<Clock> options,
               OnResult on_result = {})
      : executor_(std::move(executor)),
        client_(&client),
        store_(&store),
        options_(std::move(options)),
        on_result_(wrap_handler(std::move(on_result))),
        breaker_(options_.breaker),
        grace_timer_(executor_),
        heartbeat_timer_(executor_),
        all_done_(executor_) {
    if (options_.max_in_flight == 0) detail::throw_invalid("batch_runner", "max_in_flight must be at least 1", "0");
    if (options_.grace_period < std::chrono::nanoseconds::zero())
      detail::throw_invalid("batch_runner", "grace_period must not be negative", detail::describe(options_.grace_period));
    store_->info();
    store_->claim();
    counts_ = store_->counts();
  }

  batch_runner(const batch_runner&) = delete;
  batch_runner& operator=(const batch_runner&) = delete;
  ~batch_runner() { store_->release(); }

  /// Runs the batch until no job is left to run, a stop, the circuit
  /// breaker, or cancellation, and returns the report. Call it once.
  ///
  /// Failed jobs do not throw: they are in the report. Cancellation through
  /// the awaiting coroutine's slot abandons the jobs in flight at once (as
  /// `when_stopped` says) and returns `batch_end::cancelled`. Throws what
  /// the store, a progress callback or the result path threw (the batch
  /// stops first, as `request_stop` does, and every job in flight ends),
  /// `errc::lease_lost` when a shared store's lease ran out, and
  /// `std::logic_error` on a second call.
  ///
  /// @par Completion Signature
  /// `co_await` yields the `batch_report` (how the run ended and why, the
  /// reconciliation after it, peak in flight, jobs resumed), or throws.
  ///
  /// @par Per-Operation Cancellation
  /// The types the awaiting coroutine's cancellation state lets through:
  /// terminal only by default (Asio's `co_spawn` filter); the runner does
  /// not widen it. A cancellation while jobs are in flight abandons them at
  /// once, as `stop_now` does (each job's coroutine gets a terminal
  /// cancellation), waits for every one of them to be recorded, and returns
  /// `batch_end::cancelled`; nothing new is submitted. To wait for them the
  /// runner resets the awaiting coroutine's cancellation state
  /// (`this_coro::reset_cancellation_state()`), which the caller keeps
  /// afterwards. What happens to each remote job:
  /// - being polled: as `when_stopped` says. `on_cancel::cancel_job`: the
  ///   job description's cancel request is sent (`job_client::wait`); the
  ///   job is recorded `cancelled` when the server accepted it, and stays
  ///   `running` (polled again by its handle on the next run) when it could
  ///   not be sent or the description has none. `on_cancel::keep_job`:
  ///   nothing is sent; it stays `running` for the next run;
  /// - being submitted: no cancel request (there is no handle). If no
  ///   attempt was under way (every attempt failed in a way that surely did
  ///   not reach the server) it is `pending` again; otherwise the server may
  ///   have created it, so it stays `submitting` for the next run to resend
  ///   with its job key (idempotent submit) or look up (`job_client::find`),
  ///   or becomes `unknown` when the job API allows neither (resubmit, skip
  ///   or adopt it by hand);
  /// - with its result being fetched: the job has succeeded remotely and
  ///   nothing is sent; it stays `running`, and the next run polls it again
  ///   by its handle and fetches the result.
  /// A coroutine already cancelled when it calls `run` may instead get
  /// `std::system_error(operation_aborted)` (Asio's `throw_if_cancelled`
  /// check) before anything is submitted.
  ///
  /// @par Errors
  /// Failed jobs are in the report, not thrown. Throws what the store
  /// threw (`std::system_error` with `errc::store_error`, `errc::lease_lost`
  /// on a shared store whose lease ran out, ...), what a progress callback
  /// threw, and `std::logic_error` on a second call.
  asio::awaitable<batch_report> run() {
    if (started_) throw std::logic_error("jobpoll::batch_runner::run may be called once");
    started_ = true;
    running_ = true;
    std::exception_ptr failure;
    try {
      if constexpr (!shared) co_await settle_doubtful_submits();
    } catch (...) {
      failure = std::current_exception();
    }
    const std::size_t runnable =
        counts_[batch_job_state::pending] + counts_[batch_job_state::submitting] + counts_[batch_job_state::running];
    if (!stop_requested_ && !failure) {
      const std::size_t workers = std::min(options_.max_in_flight, runnable);
      for (std::size_t w = 0; w < workers; ++w) workers_.push_back(std::make_unique<worker>(executor_));
      workers_left_ = workers;
      for (std::size_t w = 0; w < workers; ++w) {
        asio::co_spawn(executor_, work(w),
                       asio::bind_cancellation_slot(workers_[w]->cancel.slot(), [this, w](std::exception_ptr e) {
                         worker_ended(w, e);
                       }));
      }
      if constexpr (shared) {
        if (workers > 0) {
          heartbeat_running_ = true;
          asio::co_spawn(executor_, heartbeat(), [this](std::exception_ptr e) {
            heartbeat_running_ = false;
            if (e) stop_after(e);
            all_done_.cancel();
          });
        }
      }
      while (workers_left_ > 0 || heartbeat_running_) {
        if (workers_left_ == 0) heartbeat_timer_.cancel();
        all_done_.expires_at(asio::steady_timer::time_point::max());
        error_code ec;
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
    if (failure) std::rethrow_exception(failure);
    if (worker_failure_) std::rethrow_exception(worker_failure_);
    batch_summary summary = co_await on_store([this] { return store_->summary(); });
    co_return report(std::move(summary));
  }

  /// Stops submitting; jobs in flight may finish within `grace_period`,
  /// then are abandoned as `when_stopped` says. A job whose submit request
  /// was interrupted is pending again if no request reached the server, and
  /// stays `submitting` for the next run to settle if one may have. Before
  /// `run`, makes `run` return at once. Idempotent; `stop_now` shortens the grace.
  ///
  /// Not an asynchronous operation: it returns at once and `run` completes
  /// (with `batch_end::stopped`) when the jobs in flight have ended. Each
  /// abandoned job gets a terminal cancellation, with the effects on the
  /// remote job that `run`'s "Per-Operation Cancellation" lists. Like every
  /// member, call it on the runner's executor (see the class comment).
  void request_stop(std::string reason = "stop requested") {
    if (stop_requested_) return;
    stop_requested_ = true;
    stop_reason_ = std::move(reason);
    if (!running_) return;
    for (const auto& w : workers_) w->idle.cancel();  // a runner waiting for other runners' jobs ends now
    if (options_.grace_period == std::chrono::nanoseconds::zero()) {
      abandon_in_flight();
      return;
    }
    grace_timer_.expires_after(std::chrono::ceil<typename Clock::duration>(options_.grace_period));
    grace_timer_.async_wait([this](std::error_code ec) {
      if (!ec) abandon_in_flight();  // a cancelled wait must not touch a runner that may be gone
    });
  }

  /// Stops submitting and abandons the jobs in flight at once (as a second
  /// Ctrl-C would), as `request_stop` with no grace period does.
  void stop_now(std::string reason = "stopped at once") {
    request_stop(std::move(reason));
    if (running_) abandon_in_flight();
  }

  /// Skips job `id` (excluded from reconciliation, never submitted, kept in
  /// the record with `reason`). Throws `std::invalid_argument` for an unknown
  /// id or a job in flight in this run. Waits for the store on the calling
  /// thread (these settling calls are for a batch at rest, or a rare manual step).
  void skip(std::size_t id, std::string reason) { run_here(skip_job(id, std::move(reason))); }

  /// Resubmits the failed, cancelled or unknown job `id` as a new pending
  /// job (with a key of its own) naming it as parent, and skips it, outside
  /// the automatic `max_resubmits` budget: the seed's manual resubmission
  /// with an override. Returns the new job's id. Throws
  /// `std::invalid_argument` for an unknown id, a skipped job (one already
  /// resubmitted included), a job in another state, or a call during `run`.
  std::size_t resubmit(std::size_t id, resubmission how) { return run_here(resubmit_job(id, std::move(how))); }

  /// Adopts the job the server knows as `handle` for the unknown (or
  /// doubtful `submitting`) job `id`: it becomes running and the next run
  /// polls it. Throws `std::invalid_argument` for an unknown id, a skipped
  /// job, a job in another state, an empty handle, or a call during `run`.
  void adopt(std::size_t id, std::string handle) { run_here(adopt_job(id, std::move(handle))); }

  /// The store the batch lives in.
  Store& store() const noexcept { return *store_; }
  /// Records per state as this runner sees them: the store's counts when it
  /// started (and, on a shared store, at every lease renewal) plus its own changes.
  const batch_counts& counts() const noexcept { return counts_; }
  /// Jobs this run is submitting or polling now (never more than `max_in_flight`).
  std::size_t in_flight() const noexcept { return busy_; }
  /// The reconciliation of the records as they are now (read on the calling thread).
  batch_summary summary() const { return store_->summary(); }

 private:
  static constexpr bool shared = shared_batch_store<Store>;

  struct worker {
    explicit worker(const asio::any_io_executor& ex) : idle(ex) {}
    asio::cancellation_signal cancel;
    std::optional<std::size_t> job;  // the id of the record it works on
    bool done = false;
    timer_for<Clock> idle;  // on a shared store: waits while other runners hold every runnable record
  };

  // How many records one read of the store brings in.
  static constexpr std::size_t page_size = 64;

  template <class OnResult>
  static result_handler wrap_handler(OnResult f) {
    if constexpr (std::is_same_v<OnResult, result_handler>) {
      return f;
    } else if constexpr (std::is_void_v<std::invoke_result_t<OnResult&, const batch_job&, job_result<value_type>&>>) {
      return [f = std::move(f)](const batch_job& job, job_result<value_type>& r) mutable {
        f(job, r);
        return std::string();
      };
    } else {
      return [f = std::move(f)](const batch_job& job, job_result<value_type>& r) mutable {
        return std::string(f(job, r));
      };
    }
  }

  static constexpr bool client_can_find = requires(Client& c, job_params p, basic_poll_options<Clock> o) {
    { c.find(std::move(p), o) } -> std::same_as<asio::awaitable<std::optional<job_handle>>>;
    { c.can_find() } -> std::convertible_to<bool>;
  };

  bool idempotent() const {
    if constexpr (requires(const Client& c) { { c.submit_is_idempotent() } -> std::convertible_to<bool>; })
      return client_->submit_is_idempotent();
    else
      return false;
  }
  bool can_find() const {
    if constexpr (client_can_find)
      return client_->can_find();
    else
      return false;
  }

  bool stopping() const noexcept { return stop_requested_ || cancelled_ || breaker_.open(); }

  // Calls `f` (which uses the store) where the store wants its calls: on its
  // worker for a remote store, whose calls wait on the network, and resumes
  // on the runner's executor; right here for a local one.
  template <class F>
  asio::awaitable<std::invoke_result_t<F&>> on_store(F f) {
    using result = std::invoke_result_t<F&>;
    if constexpr (remote_batch_store<Store>) {
      // Not cancellable: a store call runs to its end once on the worker, and
      // `f` lives in this frame until then. An empty slot also keeps co_spawn
      // from installing its cancellation handler, which Boost.Asio 1.26 posts
      // to the worker where it can outlive the call (a use after free seen
      // under a runner stopped while a call was on the worker).
      co_return co_await asio::co_spawn(
          store_->worker_executor(), [&f]() -> asio::awaitable<result> { co_return f(); },
          asio::bind_cancellation_slot(asio::cancellation_slot(), asio::use_awaitable));
    } else {
      co_return f();
    }
  }

  // Runs one of the settling operations to its end on the calling thread,
  // on an io_context of its own: they are called outside `run`, or for a
  // single record during it.
  template <class T>
  T run_here(asio::awaitable<T> op) {
    asio::io_context here;
    std::future<T> done = asio::co_spawn(here, std::move(op), asio::use_future);
    here.run();
    return done.get();
  }

  // The job's parameters with its key as `{job_key}`.
  static job_params with_key(const batch_job& job) {
    job_params params = job.params;
    params.insert_or_assign("job_key", job.key);
    return params;
  }

  static constexpr std::string_view unsettled_message =
      "its submit was under way when an earlier run ended, so the server may have created the job; "
      "the job API has neither an idempotent submit nor a lookup: resubmit it, skip it, or adopt it by its handle";

  // Jobs an earlier run left `submitting` that neither a resend nor a lookup
  // can settle become unknown before anything is sent. (On a shared store
  // the records another runner is submitting look the same: there each
  // taken record is settled as it comes, in `run_job`.)
  asio::awaitable<void> settle_doubtful_submits() {
    if (idempotent() || can_find()) co_return;
    for (std::size_t after = 0;;) {
      std::vector<batch_job> page =
          co_await on_store([&] { return store_->jobs_in(batch_job_state::submitting, after, page_size); });
      if (page.empty()) co_return;
      after = page.back().id;
      for (batch_job& job : page) co_await settle_as_unknown(job);
    }
  }

  asio::awaitable<void> settle_as_unknown(batch_job& job) {
    job.error = std::string(unsettled_message);
    job.error_code.clear();
    co_await set_state(job, batch_job_state::unknown, "submit unfinished in an earlier run");
  }

  // The next record for worker `w`: running ones (an earlier run left them),
  // then doubtful submits, then pending ones; a page at a time from the
  // store. On a shared store, records this runner takes over (see `take`);
  // while other live runners hold every runnable record, it waits and asks
  // again, as one of them may die and leave its records to take over.
  asio::awaitable<std::optional<batch_job>> next_job(std::size_t w) {
    if constexpr (shared) {
      while (next_.empty()) {
        if (stopping()) co_return std::nullopt;
        // Take about what the idle workers need, so that records stay free for the other runners.
        const std::size_t idle = options_.max_in_flight - std::min(options_.max_in_flight, busy_);
        const std::size_t want = std::clamp<std::size_t>(idle > taking_ ? idle - taking_ : 1, 1, page_size);
        taking_ += want;
        std::vector<batch_job> page;
        try {
          page = co_await on_store([&] { return store_->take(want); });
        } catch (...) {
          taking_ -= want;
          throw;
        }
        taking_ -= want;
        if (!page.empty()) {
          for (batch_job& job : page) next_.push_back(std::move(job));
          break;
        }
        if (!next_.empty()) break;
        if (co_await on_store([this] { return store_->held_elsewhere(); }) == 0) co_return std::nullopt;
        if (stopping()) co_return std::nullopt;
        // Records come free when a holder's lease runs out or it gives them
        // back at its end; asking every second (at most) ends a batch soon
        // after its last holder does.
        timer_for<Clock>& idle_timer = workers_[w]->idle;
        const std::chrono::nanoseconds idle_wait =
            std::min<std::chrono::nanoseconds>(store_->lease() / 2, std::chrono::seconds(1));
        idle_timer.expires_after(std::chrono::ceil<typename Clock::duration>(idle_wait));
        error_code ec;
        co_await idle_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
    } else {
      static constexpr std::array<batch_job_state, 3> order = {batch_job_state::running, batch_job_state::submitting,
                                                               batch_job_state::pending};
      while (next_.empty()) {
        const std::size_t phase = phase_;
        const std::size_t after = after_[phase];
        std::vector<batch_job> page =
            co_await on_store([&] { return store_->jobs_in(order[phase], after, page_size); });
        // Another worker's read, answered first, moved the cursor: this page is stale.
        if (phase_ != phase || after_[phase] != after) continue;
        if (page.empty()) {
          // Pending is the last phase and stays open: resubmissions made later come after the cursor.
          if (phase + 1 == order.size()) co_return std::nullopt;
          ++phase_;
          continue;
        }
        after_[phase] = page.back().id;
        for (batch_job& job : page) next_.push_back(std::move(job));
      }
    }
    batch_job job = std::move(next_.front());
    next_.pop_front();
    if (job.state == batch_job_state::running) ++resumed_;
    co_return job;
  }

  asio::awaitable<void> work(std::size_t w) {
    // A stop cancels the job in flight, and its record must still be saved
    // afterwards: Asio must not throw at the store's `co_await`s. The job
    // client's operations check the cancellation themselves (and throw a
    // job_error saying how far the job got).
    co_await asio::this_coro::throw_if_cancelled(false);
    while (!stopping()) {
      std::optional<batch_job> job = co_await next_job(w);
      if (!job) break;
      workers_[w]->job = job->id;
      peak_in_flight_ = std::max(peak_in_flight_, ++busy_);
      co_await run_job(*job);
      --busy_;
      workers_[w]->job.reset();
    }
  }

  // On a shared store: renews the lease every third of it, and refreshes
  // the counts (other runners change them too), until the workers end.
  asio::awaitable<void> heartbeat() {
    if constexpr (shared) {
      for (;;) {
        heartbeat_timer_.expires_after(std::chrono::ceil<typename Clock::duration>(store_->lease() / 3));
        error_code ec;
        co_await heartbeat_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        if (workers_left_ == 0) co_return;
        co_await on_store([this] { store_->renew(); });
        counts_ = co_await on_store([this] { return store_->counts(); });
      }
    }
  }

  // An exception out of a worker (the store, a progress callback) or the
  // heartbeat stops the batch; `run` rethrows it once every job in flight ended.
  void stop_after(std::exception_ptr e) {
    if (worker_failure_) return;
    worker_failure_ = e;
    request_stop("stopped after an error");
  }

  void worker_ended(std::size_t w, std::exception_ptr e) {
    workers_[w]->done = true;
    if (e) stop_after(e);
    if (--workers_left_ == 0) all_done_.cancel();
  }

  // One record from submit (unless it has a handle) to its end.
  asio::awaitable<void> run_job(batch_job& job) {
    if (!job.handle) {
      std::string note;
      if (job.state == batch_job_state::submitting && !idempotent() && !can_find()) {
        // Taken from a shared store: left by a runner that died during its submit.
        co_await settle_as_unknown(job);
        co_return;
      }
      if (job.state == batch_job_state::submitting && !idempotent()) {
        // An earlier run's submit may have created it: look for it by its key first.
        std::optional<job_error> failure;
        std::optional<std::optional<job_handle>> found = co_await step(job, find(job), &failure);
        if (failure) {
          co_await doubtful(job, *failure, "the lookup of its unfinished submit failed");
          co_return;
        }
        if (!found) co_return;
        if (*found) {
          job.handle = std::move(**found);
          job.submitted = std::chrono::system_clock::now();
          co_await set_state(job, batch_job_state::running, "found by its job key after an unfinished submit");
        } else {
          note = "not found by its job key after an unfinished submit: submitted again";
        }
      } else if (job.state == batch_job_state::submitting) {
        note = "submitted again with its job key after an unfinished submit";
      }
      if (!job.handle) {
        // The intent is committed before the request leaves.
        co_await set_state(job, batch_job_state::submitting, note);
        std::optional<job_error> failure;
        // The handle carries what the submit left of the job's deadline to the poll.
        std::optional<job_handle> handle = co_await step(job, client_->submit(with_key(job), options_.job), &failure);
        if (failure) co_await submit_failed(job, *failure);
        if (!handle) co_return;
        job.handle = std::move(handle);
        job.submitted = std::chrono::system_clock::now();
        co_await set_state(job, batch_job_state::running);
      }
    }

    std::optional<job_error> failure;
    std::optional<job_result<value_type>> result =
        co_await step(job, client_->wait(*job.handle, options_.job, options_.when_stopped), &failure);
    if (failure) co_await wait_failed(job, *failure);
    if (!result) co_return;
    job.handle = result->handle;
    if (on_result_) {
      std::optional<std::string> thrown;
      try {
        job.result = on_result_(job, *result);
      } catch (const std::exception& e) {
        thrown = std::string("the result handler threw: ") + e.what();
      }
      if (thrown) {
        co_await fail(job, make_error_code(errc::poll_exception), std::move(*thrown));
        co_return;
      }
    }
    co_await set_state(job, batch_job_state::completed);
    breaker_.record(false);
  }

  asio::awaitable<std::optional<job_handle>> find(const batch_job& job) {
    if constexpr (client_can_find) co_return co_await client_->find(with_key(job), options_.job);
    co_return std::nullopt;  // unreachable: `can_find()` is false
  }

  // Awaits a step of job `job`. A job_error goes to `failure` for the
  // caller to sort out; any other exception but the store's fails the job
  // at once (a template placeholder without a value, a status policy that
  // threw).
  template <class T>
  asio::awaitable<std::optional<T>> step(batch_job& job, asio::awaitable<T> op, std::optional<job_error>* failure) {
    std::optional<std::pair<std::error_code, std::string>> thrown;
    try {
      co_return co_await std::move(op);
    } catch (const job_error& e) {
      failure->emplace(e);
    } catch (const std::exception& e) {
      if (auto failure = detail::system_failure_of(e)) {
        thrown.emplace(failure->code, std::move(failure->what));
      } else {
        thrown.emplace(make_error_code(errc::poll_exception), e.what());
      }
    }
    if (thrown) co_await fail(job, thrown->first, std::move(thrown->second));
    co_return std::nullopt;
  }

  // Whether a submit that failed with `e` may have created the job: no HTTP
  // answer said otherwise (a transport error, the deadline during an attempt).
  bool may_have_reached(const job_error& e) const {
    const std::error_code ec = e.code();
    if (ec.category() != error_category()) return true;
    if (ec == errc::timeout) return e.stats().attempts > e.stats().transient_failures;
    return idempotent() && (ec == errc::retries_exhausted || ec == errc::attempt_timeout);
  }

  asio::awaitable<void> submit_failed(batch_job& job, const job_error& e) {
    if (e.code() == detail::asio_error(asio::error::operation_aborted)) {
      // Interrupted by a stop. Every attempt but one still under way failed
      // transiently, i.e. surely without creating the job (job_client retries
      // a non-idempotent submit only then); an attempt under way may have reached the server.
      const poll_stats& s = e.stats();
      if (s.attempts > s.transient_failures) {
        co_await doubtful(job, e, "stopped while its submit request was under way");
        co_return;
      }
      co_await set_state(job, batch_job_state::pending, "submit interrupted before any request reached the server");
      co_return;
    }
    if (may_have_reached(e)) {
      co_await doubtful(job, e, "its submit may have reached the server");
      co_return;
    }
    co_await fail(job, e.code(), e.what());
  }

  // A submit that may have created the job: left `submitting` for the next
  // run to resend with its key or look up, or unknown when neither can.
  asio::awaitable<void> doubtful(batch_job& job, const job_error& e, std::string_view why) {
    record_error(job, e.code(), e.what());
    if (idempotent() || can_find()) {
      co_await save(job, batch_job_state::submitting, std::string(why) + ": the next run settles it by its job key");
      co_return;
    }
    co_await set_state(job, batch_job_state::unknown,
                       std::string(why) + ": resubmit it, skip it, or adopt it by its handle");
  }

  asio::awaitable<void> wait_failed(batch_job& job, const job_error& e) {
    if (e.handle()) job.handle = *e.handle();
    if (e.code() != detail::asio_error(asio::error::operation_aborted)) {
      co_await fail(job, e.code(), e.what());
      co_return;
    }
    if (e.cancel_state() == remote_cancel::sent) {
      record_error(job, e.code(), e.what());
      co_await set_state(job, batch_job_state::cancelled);
      co_return;
    }
    // Kept running (or the cancel request failed): a resume polls it again by its handle.
    const std::string note = e.cancel_state() == remote_cancel::not_applicable
                                 ? std::string("left running at stop; a resume polls it by its handle")
                                 : std::string(e.what()) + "; left running, a resume polls it by its handle";
    co_await save(job, batch_job_state::running, note);
  }

  // A resubmission made during a stop stays pending: a resume submits it.
  asio::awaitable<void> fail(batch_job& job, std::error_code ec, std::string message) {
    record_error(job, ec, std::move(message));
    co_await set_state(job, batch_job_state::failed);
    breaker_.record(true);
    if (job.attempt > options_.max_resubmits) co_return;
    std::optional<resubmission> how =
        options_.resubmit ? options_.resubmit(job) : std::optional<resubmission>(resubmission{job.params, {}});
    if (how) co_await create_child(job, std::move(*how));
  }

  static void record_error(batch_job& job, std::error_code ec, std::string message) {
    job.error = std::move(message);
    job.error_code = std::string(ec.category().name()) + ":" + std::to_string(ec.value());
  }

  // A new pending record resubmitting `parent`, which is skipped; returns its id.
  asio::awaitable<std::size_t> create_child(batch_job& parent, resubmission how) {
    batch_job child;
    child.entry = parent.entry;
    child.parent = parent.id;
    child.attempt = parent.attempt + 1;
    child.override_reason = how.params != parent.params || !how.reason.empty() ? std::move(how.reason) : std::string();
    child.params = std::move(how.params);
    child.created = std::chrono::system_clock::now();
    co_await on_store([&] { store_->insert(child); });
    counts_.add(child);
    if (options_.on_progress) options_.on_progress(counts_, child);
    counts_.remove(parent);
    parent.skipped = true;
    parent.skip_reason = "resubmitted as job " + std::to_string(child.id);
    counts_.add(parent);
    co_await save(parent, parent.state, "resubmitted");
    co_return child.id;
  }

  asio::awaitable<void> set_state(batch_job& job, batch_job_state state, std::string_view note = {}) {
    const batch_job_state previous = job.state;
    counts_.remove(job);
    job.state = state;
    if (is_terminal(state)) job.ended = std::chrono::system_clock::now();
    counts_.add(job);
    co_await save(job, previous, note);
  }

  // Saves the record (one transaction) and reports the change.
  asio::awaitable<void> save(const batch_job& job, batch_job_state previous, std::string_view note) {
    co_await on_store([&] { store_->update(job, previous, note); });
    if (options_.on_progress) options_.on_progress(counts_, job);
  }

  asio::awaitable<batch_job> load(std::size_t id, std::string_view what) {
    std::optional<batch_job> job;
    if (id != 0) job = co_await on_store([&] { return store_->job(id); });
    if (!job)
      detail::throw_invalid("batch_runner", std::string(what) + " needs the id of a job of the batch",
                            std::to_string(id));
    co_return std::move(*job);
  }

  asio::awaitable<void> skip_job(std::size_t id, std::string reason) {
    batch_job job = co_await load(id, "skip");
    if (in_flight_here(id))
      detail::throw_invalid("batch_runner", "skip needs a job that is not in flight", "job " + std::to_string(id));
    if (job.skipped) co_return;
    std::erase_if(next_, [id](const batch_job& j) { return j.id == id; });
    counts_.remove(job);
    job.skipped = true;
    job.skip_reason = std::move(reason);
    counts_.add(job);
    co_await save(job, job.state, "skipped");
  }

  asio::awaitable<std::size_t> resubmit_job(std::size_t id, resubmission how) {
    batch_job job = co_await load(id, "resubmit");
    if (running_) detail::throw_invalid("batch_runner", "resubmit needs a batch that is not running", "a running batch");
    // A skipped job is settled (or was resubmitted already): a second child could run its entry twice.
    if (job.skipped)
      detail::throw_invalid("batch_runner", "resubmit needs a job that is not skipped",
                            "job " + std::to_string(id) + " skipped (" + job.skip_reason + ")");
    if (job.state != batch_job_state::failed && job.state != batch_job_state::cancelled &&
        job.state != batch_job_state::unknown)
      detail::throw_invalid("batch_runner", "resubmit needs a failed, cancelled or unknown job",
                            "job " + std::to_string(id) + " " + std::string(to_string(job.state)));
    co_return co_await create_child(job, std::move(how));
  }

  asio::awaitable<void> adopt_job(std::size_t id, std::string handle) {
    batch_job job = co_await load(id, "adopt");
    if (running_) detail::throw_invalid("batch_runner", "adopt needs a batch that is not running", "a running batch");
    if (job.skipped)
      detail::throw_invalid("batch_runner", "adopt needs a job that is not skipped",
                            "job " + std::to_string(id) + " skipped (" + job.skip_reason + ")");
    if (job.state != batch_job_state::unknown && job.state != batch_job_state::submitting)
      detail::throw_invalid("batch_runner", "adopt needs an unknown job (or one left submitting)",
                            "job " + std::to_string(id) + " " + std::string(to_string(job.state)));
    if (handle.empty()) detail::throw_invalid("batch_runner", "adopt needs a job handle", "\"\"");
    job.handle = job_handle(std::move(handle), with_key(job));
    job.submitted = std::chrono::system_clock::now();
    job.error.clear();
    job.error_code.clear();
    co_await set_state(job, batch_job_state::running, "adopted by its handle");
  }

  void abandon_in_flight() {
    for (const auto& w : workers_) {
      w->idle.cancel();
      if (!w->done) w->cancel.emit(asio::cancellation_type::terminal);
    }
  }

  bool in_flight_here(std::size_t id) const {
    return std::any_of(workers_.begin(), workers_.end(), [id](const auto& w) { return !w->done && w->job == id; });
  }

  batch_report report(batch_summary summary) const {
    batch_report r;
    r.summary = std::move(summary);
    r.peak_in_flight = peak_in_flight_;
    r.resumed = resumed_;
    const auto& c = r.summary.counts;
    const std::size_t left = c[batch_job_state::pending] + c[batch_job_state::submitting] + c[batch_job_state::running];
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
      // A submit that may have reached the server is left for the next run to settle.
      r.reason = left == 0 ? "no job left to run" : "every job this run could run has ended";
    }
    if (left > 0)
      r.reason += "; " + std::to_string(left) + (left == 1 ? " job" : " jobs") + " left for a resume (" +
                  std::to_string(c[batch_job_state::running]) + " running, " +
                  (c[batch_job_state::submitting] > 0
                       ? std::to_string(c[batch_job_state::submitting]) + " with a submit to settle, "
                       : std::string()) +
                  std::to_string(c[batch_job_state::pending]) + " pending)";
    if (const std::size_t unknown = c[batch_job_state::unknown]; unknown > 0)
      r.reason += "; " + std::to_string(unknown) + (unknown == 1 ? " job" : " jobs") +
                  " unknown (a submit that may have reached the server): resubmit, skip or adopt each";
    return r;
  }

  asio::any_io_executor executor_;
  Client* client_;
  Store* store_;
  basic_batch_options<Clock> options_;
  result_handler on_result_;
  circuit_breaker breaker_;

  batch_counts counts_;
  std::deque<batch_job> next_;  // the next records to run, read a page at a time
  std::size_t phase_ = 0;       // which state next_job reads: running, submitting, pending
  std::array<std::size_t, 3> after_{};  // per phase, the last id read
  std::size_t taking_ = 0;  // on a shared store: records asked for by `take` calls under way
  std::vector<std::unique_ptr<worker>> workers_;  // stable: each owns the signal its coroutine's slot is bound to
  std::size_t busy_ = 0;  // workers with a job
  std::size_t workers_left_ = 0;
  bool heartbeat_running_ = false;
  std::exception_ptr worker_failure_;
  std::size_t peak_in_flight_ = 0;
  std::size_t resumed_ = 0;

  bool started_ = false;
  bool running_ = false;
  bool stop_requested_ = false;
  bool cancelled_ = false;  // the awaiting coroutine cancelled `run`
  std::string stop_reason_;

  timer_for<Clock> grace_timer_;
  timer_for<Clock> heartbeat_timer_;
  asio::steady_timer all_done_;  // never expires: cancelled when the last worker (or the heartbeat) ends
};

/// `batch_runner(executor, client, store, options[, on_result])`.
template <class Client, batch_store Store, clock Clock>
batch_runner(asio::any_io_executor, Client&, Store&, basic_batch_options<Clock>) -> batch_runner<Client, Store, Clock>;
template <class Client, batch_store Store, clock Clock, class Handler>
batch_runner(asio::any_io_executor, Client&, Store&, basic_batch_options<Clock>, Handler)
    -> batch_runner<Client, Store, Clock>;

}  // namespace jobpoll

#include "jobpoll/detail/workarounds_pop.hpp"
