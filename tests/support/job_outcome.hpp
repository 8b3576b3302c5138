#pragma once
// How a test holds the end of a job client operation: its result or its
// job_error, whichever it was, for exact assertions on either.

#include <exception>
#include <optional>
#include <utility>
#include <variant>

#include <jobpoll/asio.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <jobpoll/job_client.hpp>

namespace jobpoll_test {

using job_result = jobpoll::job_result<nlohmann::json>;
using job_outcome = std::variant<job_result, jobpoll::job_error>;

/// A co_spawn completion handler (bound to `slot`) of an operation that
/// yields a T: stores its value or its job_error in `out` (an Outcome is made
/// from either); any other exception propagates.
template <class T, class Outcome>
auto store_end(std::optional<Outcome>& out, asio::cancellation_slot slot = {}) {
  return asio::bind_cancellation_slot(slot, [&out](std::exception_ptr e, T value) {
    if (!e) {
      out.emplace(std::move(value));
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const jobpoll::job_error& error) {
      out.emplace(error);
    }
  });
}

/// A co_spawn completion handler (bound to `slot`) that stores the
/// operation's result or job_error in `out`; any other exception propagates.
inline auto store_outcome(std::optional<job_outcome>& out, asio::cancellation_slot slot = {}) {
  return store_end<job_result>(out, slot);
}

/// The result; a test failure (with the error's message) if the job failed.
inline const job_result& success(const job_outcome& outcome) {
  if (const auto* e = std::get_if<jobpoll::job_error>(&outcome)) ADD_FAILURE() << "job failed: " << e->what();
  static const job_result none{};
  const auto* r = std::get_if<job_result>(&outcome);
  return r ? *r : none;
}

/// The error; a test failure if the job succeeded.
inline const jobpoll::job_error& failure(const job_outcome& outcome) {
  static const jobpoll::job_error none({}, "", {}, {}, jobpoll::job_phase::submit, {}, {});
  const auto* e = std::get_if<jobpoll::job_error>(&outcome);
  if (!e) ADD_FAILURE() << "the job succeeded";
  return e ? *e : none;
}

}  // namespace jobpoll_test
