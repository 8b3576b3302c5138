#pragma once
// The Asio backend's error vocabulary, and nothing else of Asio: the
// backend's `error_code` and `system_error`, the namespace alias
// `jobpoll::asio`, and the conversions between Asio's codes and the
// `std::error_code` jobpoll's decisions hold. Sans-io headers (error.hpp,
// observer.hpp, and through them the codecs and status policies) include
// this one rather than asio_forward.hpp, so they stay free of Asio's I/O
// machinery (<asio/error.hpp> only, as before the Boost backend).
// JOBPOLL_USE_BOOST_ASIO chooses the backend, as in asio_forward.hpp.
//
// error_code: standalone Asio uses std::error_code; Boost.Asio uses
// boost::system::error_code, which holds a std::error_code losslessly
// (Boost >= 1.78: same category, value and message) and compares equal to
// jobpoll::errc and std::errc values. jobpoll's completion signatures use
// jobpoll::error_code (the backend's), so asio::use_awaitable, as_tuple and
// redirect_error treat them as every other Asio operation; jobpoll's own
// decisions keep std::error_code.

#include <algorithm>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#if defined(JOBPOLL_USE_BOOST_ASIO)

#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

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

#include <asio/error.hpp>

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
