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
// - error_code: see asio_error.hpp, the part of this header sans-io
//   headers include.

#include "jobpoll/detail/asio_error.hpp"

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

#define JOBPOLL_ASIO_VERSION BOOST_ASIO_VERSION

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
