#pragma once
// The one place that chooses jobpoll's Asio: standalone Asio (the default)
// or Boost.Asio (when JOBPOLL_USE_BOOST_ASIO is defined; the CMake targets
// jobpoll::jobpoll-boost-asio and its components define it). Every jobpoll
// header reaches Asio through this one, as `asio::` inside namespace
// jobpoll, so one source builds on either backend. The headers listed here
// are those the library's headers use; the few that one header alone needs
// (sockets, a stream descriptor, a thread pool, use_future) are chosen
// where they are used, with the same macro.
//
// Version gates, each named here and nowhere else:
//   JOBPOLL_ASIO_VERSION  the backend's ASIO_VERSION / BOOST_ASIO_VERSION
//                         (1.22.1 on Debian 12: 102201; Boost 1.81: 102600).
// What differs between the two versions jobpoll supports, checked in both:
// - deferred, as_tuple and append (gate JOBPOLL_ASIO_VERSION >= 102400):
//   1.22 has them only under asio::experimental; 1.24 (Boost 1.80) moved
//   them to asio::, and keeps the experimental:: names only as deprecated
//   aliases that ASIO_NO_DEPRECATED removes (and never for the operation
//   type deferred returns). jobpoll::asio_tokens names them on both.
// - co_composed, cancel_after, the range form of make_parallel_group: 1.26+
//   only. jobpoll does not use them: its composed operation (poll_op.hpp)
//   is an explicit state machine on either version, measured against the
//   hand-written loop; a co_composed rewrite would only change its source.
// - error_code: standalone Asio uses std::error_code; Boost.Asio uses
//   boost::system::error_code, which holds a std::error_code losslessly
//   (Boost >= 1.78: same category, value and message) and compares equal to
//   jobpoll::errc and std::errc values. jobpoll's completion signatures use
//   jobpoll::error_code (the backend's), so asio::use_awaitable,
//   as_tuple and redirect_error treat them as every other Asio operation;
//   jobpoll's own decisions and exceptions keep std::error_code.

#include <algorithm>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#if defined(JOBPOLL_USE_BOOST_ASIO)

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/associator.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/version.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#define JOBPOLL_ASIO_VERSION BOOST_ASIO_VERSION

namespace jobpoll {
namespace asio = ::boost::asio;
/// The error code of the Asio backend, the first argument of every
/// completion signature of jobpoll: `boost::system::error_code` here.
using error_code = ::boost::system::error_code;
/// What the backend's use_awaitable and use_future throw for an error code:
/// `boost::system::system_error` here (not a `std::system_error`; jobpoll's
/// own exceptions, job_error and poll_error, stay `std::system_error`).
using system_error = ::boost::system::system_error;
}  // namespace jobpoll

#else

#include <asio/any_io_executor.hpp>
#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/associator.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/cancellation_state.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/co_spawn.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/execution_context.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/append.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/version.hpp>

#define JOBPOLL_ASIO_VERSION ASIO_VERSION

namespace jobpoll {
/// Standalone Asio (the default backend); with JOBPOLL_USE_BOOST_ASIO,
/// `::boost::asio`. jobpoll's headers name Asio through this alias.
namespace asio = ::asio;
/// The error code of the Asio backend, the first argument of every
/// completion signature of jobpoll: `std::error_code` here.
using error_code = std::error_code;
/// What the backend's use_awaitable and use_future throw for an error code:
/// `std::system_error` here (`boost::system::system_error` with Boost.Asio).
using system_error = std::system_error;
}  // namespace jobpoll

#endif

/// The completion tokens that moved out of `asio::experimental` after Asio
/// 1.22, under one name on either backend: `deferred` (and the
/// `deferred_async_operation` it makes), `as_tuple` and `append`.
namespace jobpoll::asio_tokens {
#if JOBPOLL_ASIO_VERSION >= 102400
using asio::append;
using asio::as_tuple;
using asio::deferred;
using asio::deferred_async_operation;
#else
using asio::experimental::append;
using asio::experimental::as_tuple;
using asio::experimental::deferred;
using asio::experimental::deferred_async_operation;
#endif
}  // namespace jobpoll::asio_tokens

namespace jobpoll::detail {


/// An Asio error value (`asio::error::operation_aborted`, `eof`, ...) as the
/// `std::error_code` jobpoll's decisions hold, on either backend (Boost's
/// enumerations convert to `boost::system::error_code` only).
template <class Enum>
std::error_code asio_error(Enum e) noexcept {
  return static_cast<std::error_code>(error_code(e));
}

/// A `std::error_code` as the backend's `error_code`, for a completion
/// handler. With Boost.Asio, boost::system::error_code would wrap a code of
/// the standard system or generic category as it is ("std:system:125"),
/// and that compares unequal to Boost's own (`asio::error::operation_aborted`
/// is "system:125"): those two categories become Boost's, every other code
/// (jobpoll's, curl's) is held as it is.
inline error_code to_error_code(const std::error_code& ec) noexcept {
#if defined(JOBPOLL_USE_BOOST_ASIO)
  if (ec.category() == std::system_category()) return error_code(ec.value(), ::boost::system::system_category());
  if (ec.category() == std::generic_category()) return error_code(ec.value(), ::boost::system::generic_category());
  return error_code(ec);
#else
  return ec;
#endif
}

/// The category Asio's system errors (errno values) have once held as a
/// `std::error_code`: Asio's own with standalone Asio 1.22, the standard
/// system category with Boost.Asio.
inline const std::error_category& asio_system_category() noexcept {
  return static_cast<std::error_code>(error_code(0, asio::error::get_system_category())).category();
}

/// What an exception that carries an error code says: its code and its
/// what() as `std::system_error` words it.
struct system_failure {
  std::error_code code;
  std::string what;
};

/// The code and words of an exception that carries a code: a
/// `std::system_error` (all of jobpoll's own, and what standalone Asio's
/// use_awaitable throws) or, on the Boost backend, a
/// `boost::system::system_error` (what Boost.Asio's throws), whose what()
/// loses its " [category:value]" suffix so that messages read the same on
/// both backends. Empty for any other exception.
inline std::optional<system_failure> system_failure_of(const std::exception& e) {
  if (const auto* s = dynamic_cast<const std::system_error*>(&e)) return system_failure{s->code(), s->what()};
#if defined(JOBPOLL_USE_BOOST_ASIO)
  if (const auto* b = dynamic_cast<const ::boost::system::system_error*>(&e)) {
    const error_code& ec = b->code();
    std::string what = b->what();
    const std::string full = ec.what();
    const std::string_view suffix = std::string_view(full).substr(std::min(full.size(), ec.message().size()));
    if (what.size() >= suffix.size() && std::string_view(what).substr(what.size() - suffix.size()) == suffix)
      what.resize(what.size() - suffix.size());
    return system_failure{static_cast<std::error_code>(ec), std::move(what)};
  }
#endif
  return std::nullopt;
}

}  // namespace jobpoll::detail
