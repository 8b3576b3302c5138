# Boost.Asio, the second backend: finds Boost's headers (Debian:
# libboost1.81-dev, through its BoostConfig.cmake) and wraps them in the
# imported target jobpoll::boost_asio, the Boost counterpart of
# jobpoll::asio (cmake/JobpollAsio.cmake).
#
# Used by the build tree (CMakeLists.txt) and, installed next to it, by
# jobpollConfig.cmake. Expects Threads::Threads to exist. Never fails by
# itself: when Boost is missing, jobpoll::boost_asio is not created and
# JOBPOLL_BOOST_ASIO_NOT_FOUND_MESSAGE says why.
#
# 1.81 is the oldest Boost jobpoll is tested with (Debian 12's). Boost.Asio
# needs no link library since Boost 1.69 (Boost.System is header-only).
#
# No include_guard, for the same reason as JobpollAsio.cmake.
if(NOT TARGET jobpoll::boost_asio)
  set(JOBPOLL_BOOST_MIN_VERSION 1.81)
  unset(JOBPOLL_BOOST_ASIO_NOT_FOUND_MESSAGE)
  find_package(Boost ${JOBPOLL_BOOST_MIN_VERSION} CONFIG QUIET)
  if(NOT Boost_FOUND OR NOT TARGET Boost::headers)
    string(CONCAT JOBPOLL_BOOST_ASIO_NOT_FOUND_MESSAGE
      "jobpoll's Boost.Asio backend needs Boost >= ${JOBPOLL_BOOST_MIN_VERSION} "
      "(Debian: apt-get install libboost1.81-dev); set Boost_DIR to the directory holding BoostConfig.cmake")
  else()
    add_library(jobpoll::boost_asio INTERFACE IMPORTED)
    # Unlike standalone Asio 1.22 (workaround W3), Boost 1.81's Asio enables
    # coroutines for clang >= 14 from <coroutine>: no definition needed.
    set_target_properties(jobpoll::boost_asio PROPERTIES
      INTERFACE_LINK_LIBRARIES "Boost::headers;Threads::Threads")
  endif()
endif()
