# Standalone Asio has no CMake package on Debian: find its header and wrap it
# in the imported target jobpoll::asio.
#
# Used by the build tree (CMakeLists.txt) and, installed next to it, by
# jobpollConfig.cmake. Expects Threads::Threads to exist (the caller runs
# find_package(Threads) / find_dependency(Threads) first). Never fails by
# itself: when Asio is missing, jobpoll::asio is not created and
# JOBPOLL_ASIO_NOT_FOUND_MESSAGE says why, so that a build fails loudly and
# find_package(jobpoll) reports "not found" the way find_package should.
#
# No include_guard: imported targets are scoped to the directory that creates
# them, so two sibling directories that each call find_package(jobpoll) must
# each get their own jobpoll::asio.
if(NOT TARGET jobpoll::asio)
  set(JOBPOLL_ASIO_MIN_VERSION 1.22.0)
  find_path(JOBPOLL_ASIO_INCLUDE_DIR asio.hpp
    DOC "Directory holding standalone Asio's asio.hpp (Debian: libasio-dev)")
  unset(JOBPOLL_ASIO_NOT_FOUND_MESSAGE)
  unset(JOBPOLL_ASIO_VERSION)
  if(NOT JOBPOLL_ASIO_INCLUDE_DIR OR NOT EXISTS "${JOBPOLL_ASIO_INCLUDE_DIR}/asio/version.hpp")
    string(CONCAT JOBPOLL_ASIO_NOT_FOUND_MESSAGE
      "jobpoll needs standalone Asio >= ${JOBPOLL_ASIO_MIN_VERSION} (Debian: apt-get install libasio-dev); "
      "set JOBPOLL_ASIO_INCLUDE_DIR to the directory holding asio.hpp")
  else()
    file(STRINGS "${JOBPOLL_ASIO_INCLUDE_DIR}/asio/version.hpp" _jobpoll_asio_version_line
      REGEX "^#define ASIO_VERSION [0-9]+")
    string(REGEX REPLACE "^#define ASIO_VERSION ([0-9]+).*" "\\1" _jobpoll_asio_version_number
      "${_jobpoll_asio_version_line}")
    math(EXPR _jobpoll_asio_major "${_jobpoll_asio_version_number} / 100000")
    math(EXPR _jobpoll_asio_minor "${_jobpoll_asio_version_number} / 100 % 1000")
    math(EXPR _jobpoll_asio_patch "${_jobpoll_asio_version_number} % 100")
    set(JOBPOLL_ASIO_VERSION "${_jobpoll_asio_major}.${_jobpoll_asio_minor}.${_jobpoll_asio_patch}")
    if(JOBPOLL_ASIO_VERSION VERSION_LESS JOBPOLL_ASIO_MIN_VERSION)
      set(JOBPOLL_ASIO_NOT_FOUND_MESSAGE
        "jobpoll needs standalone Asio >= ${JOBPOLL_ASIO_MIN_VERSION}, found ${JOBPOLL_ASIO_VERSION} in ${JOBPOLL_ASIO_INCLUDE_DIR}")
    else()
      add_library(jobpoll::asio INTERFACE IMPORTED)
      # An imported target's include directories are SYSTEM for its users
      # (Asio's headers trip g++ 12 false positives under -Werror); say so
      # explicitly too, in case a user sets NO_SYSTEM_FROM_IMPORTED.
      set_target_properties(jobpoll::asio PROPERTIES
        INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${JOBPOLL_ASIO_INCLUDE_DIR}"
        INTERFACE_INCLUDE_DIRECTORIES "${JOBPOLL_ASIO_INCLUDE_DIR}"
        # clang 14 with libstdc++ only enables Asio's coroutines when told to
        # (harmless with libc++, where Asio would enable them itself).
        # (ASIO_NO_DEPRECATED is for jobpoll's own targets only, see
        # JobpollWarnings.cmake: forcing it on users would break their code.)
        INTERFACE_COMPILE_DEFINITIONS "ASIO_STANDALONE;$<$<CXX_COMPILER_ID:Clang>:ASIO_HAS_CO_AWAIT=1>"
        INTERFACE_LINK_LIBRARIES Threads::Threads)
    endif()
    unset(_jobpoll_asio_version_line)
    unset(_jobpoll_asio_version_number)
    unset(_jobpoll_asio_major)
    unset(_jobpoll_asio_minor)
    unset(_jobpoll_asio_patch)
  endif()
endif()
