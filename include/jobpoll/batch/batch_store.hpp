#pragma once
// What a batch runner needs from the place a batch lives: its records, one
// small transaction per change with a history line, its owner, its counts.
// `sqlite_store` (jobpoll/store/sqlite.hpp) is the embedded default;
// `postgres_store` (jobpoll/store/postgres.hpp) is shared by several runners.

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jobpoll/detail/asio_forward.hpp"

#include "jobpoll/batch/batch_job.hpp"
#include "jobpoll/batch/reconcile.hpp"

namespace jobpoll {

/// A batch as a store holds it.
struct batch_info {
  std::string name;         ///< unique in its store
  std::string uid;          ///< 16 random hex digits made at creation: the prefix of its job keys
  std::string fingerprint;  ///< `batch_fingerprint` of its entries
  std::size_t entries = 0;  ///< how many entries it has
  std::chrono::system_clock::time_point created{};
};

/// The runner that owns a batch: its process, its host, since when.
struct batch_owner {
  std::int64_t pid = 0;
  std::string host;
  std::chrono::system_clock::time_point since{};
};

/// The entry at an index of a batch's input, asked for once per index in
/// order: a batch of a million entries never has to be held whole.
using batch_entry_source = std::function<batch_entry(std::size_t index)>;

/// Where a batch's records live, for one batch (named when the store is
/// opened). Every member throws `std::system_error` (`errc::store_error`,
/// naming the store and what failed) when the store cannot be read or
/// written; a change that throws was not made.
///
/// - `create(n, source)`: creates the batch with one record per entry
///   (pending, or skipped as the entry says), or, when it exists, checks
///   that it has the same entries (`errc::batch_mismatch` otherwise); the
///   batch's `info()` afterwards.
/// - `info()`: the batch (`errc::store_error` when it was never created).
/// - `claim()` makes this process the batch's only owner, or throws
///   `errc::batch_owned` naming the owner (a dead owner is taken over);
///   `release()` gives it up (no-throw).
/// - `counts()`: records per state.
/// - `insert(job)`: adds a record, giving it the next id and its key, with
///   a history line; `update(job, previous, note)`: saves a record's state,
///   skip, handle, error, result and times, with a history line (`previous`:
///   its state before, `note`: why, may be empty). Each is one transaction.
/// - `job(id)`: one record; `jobs_in(state, after, limit)`: at most `limit`
///   records in `state` that are not skipped, with ids above `after`, in id order.
/// - `summary()`: `reconcile` of every record.
template <class S>
concept batch_store = requires(S& s, const S& cs, std::size_t n, batch_entry_source source, batch_job& job,
                               const batch_job& saved, std::optional<batch_job_state> previous,
                               std::string_view note, batch_job_state state) {
  { s.create(n, source) } -> std::same_as<const batch_info&>;
  { cs.info() } -> std::same_as<const batch_info&>;
  { s.claim() } -> std::same_as<void>;
  { s.release() } noexcept -> std::same_as<void>;
  { cs.counts() } -> std::same_as<batch_counts>;
  { s.insert(job) } -> std::same_as<void>;
  { s.update(saved, previous, note) } -> std::same_as<void>;
  { cs.job(n) } -> std::same_as<std::optional<batch_job>>;
  { cs.jobs_in(state, n, n) } -> std::same_as<std::vector<batch_job>>;
  { cs.summary() } -> std::same_as<batch_summary>;
};

/// A store whose calls wait on a network round trip: it runs them on a
/// bounded worker of its own (`worker_executor()`: one thread, one
/// connection), where a batch runner sends each of its calls and awaits the
/// answer, so that the runner's event loop never waits on the network. Its
/// members stay callable from any thread (they serialise on its connection),
/// for offline use such as `batch_run status`.
template <class S>
concept remote_batch_store = batch_store<S> && requires(S& s) {
  { s.worker_executor() } -> std::convertible_to<asio::any_io_executor>;
};

/// A store on which several runners, in several processes on several
/// machines, run one batch at once, each through its own store object.
///
/// - `claim()` registers this runner under a lease of `lease()`, counted on
///   the store's server clock; it never refuses another runner.
///   `release()` gives back the records it holds and its registration.
/// - `renew()` extends the lease (a runner calls it every `lease() / 3`);
///   it throws `errc::lease_lost` once the lease has run out, since other
///   runners may then hold its records.
/// - `take(limit)` makes this runner the holder of at most `limit` records
///   that are runnable (running, submitting or pending, not skipped) and
///   held by no live runner (never held, given back, or held by a runner
///   whose lease ran out), running ones first, then submitting, then
///   pending, each in id order, and returns them. Concurrent `take`s never
///   return the same record.
/// - `held_elsewhere()`: runnable records other live runners hold. A runner
///   with nothing to take waits while this is not 0, as one of them may die.
/// - `update(job, ...)` of a record another live runner holds throws
///   `errc::lease_lost` and changes nothing (fencing: a runner taken for
///   dead never overwrites the runner that took its records over).
template <class S>
concept shared_batch_store = batch_store<S> && requires(S& s, const S& cs, std::size_t n) {
  { s.renew() } -> std::same_as<void>;
  { s.take(n) } -> std::same_as<std::vector<batch_job>>;
  { cs.held_elsewhere() } -> std::same_as<std::size_t>;
  { cs.lease() } -> std::convertible_to<std::chrono::nanoseconds>;
};

}  // namespace jobpoll
