#pragma once
// The Asio jobpoll runs on, for programs that build on either backend.
//
// jobpoll's headers name Asio as `jobpoll::asio`: `::asio` (standalone
// Asio, the default; CMake targets jobpoll::jobpoll, jobpoll::curl, ...) or
// `::boost::asio` (Boost.Asio: JOBPOLL_USE_BOOST_ASIO, which the targets
// jobpoll::jobpoll-boost-asio, jobpoll::curl-boost-asio, ... define). A
// program written for one backend includes that backend's headers and
// writes `asio::` or `boost::asio::` as usual; it does not need this header.
//
// This header is for code meant to build unchanged on both, as jobpoll's own
// examples, tests, tool and benchmarks are: it includes the Asio headers
// jobpoll uses plus a few every such program wants (detached, use_future,
// signal_set, bind_executor), and on the Boost backend declares
// `namespace asio = ::boost::asio;` at global scope, so `asio::` names the
// backend in both builds. (On the standalone backend `::asio` is Asio
// itself.) Do not include it in a program that also uses standalone Asio
// next to the Boost backend: the global name would clash.

#include "jobpoll/detail/asio_forward.hpp"

#if defined(JOBPOLL_USE_BOOST_ASIO)
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_future.hpp>

namespace asio = ::boost::asio;
#else
#include <asio/bind_executor.hpp>
#include <asio/detached.hpp>
#include <asio/signal_set.hpp>
#include <asio/use_future.hpp>
#endif
