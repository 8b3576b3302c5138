# vcpkg overlay port for jobpoll (header-only).
#
#   vcpkg install jobpoll --overlay-ports=<jobpoll>/ports
#
# By default it packages the source tree this port lives in. To package a
# release tarball instead, replace the SOURCE_PATH line with:
#   vcpkg_from_github(OUT_SOURCE_PATH SOURCE_PATH
#     REPO <owner>/jobpoll REF "v${VERSION}" SHA512 <sha512 of the tarball> HEAD_REF main)
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

# Header-only: one (release) configuration is enough.
set(VCPKG_BUILD_TYPE release)

# The features standalone-asio (default) and boost-asio bring each backend;
# jobpoll's CMake installs the targets of every backend it finds
# (jobpoll::jobpoll, ... and jobpoll::jobpoll-boost-asio, ...).
# The features json, curl, batch, sqlite, redis and postgres bring
# nlohmann-json, curl, nlohmann-json, sqlite3, hiredis and libpq (the stores
# with the batch feature); jobpoll's CMake then finds them and installs the
# components jobpoll::json, jobpoll::curl, jobpoll::batch, jobpoll::sqlite,
# jobpoll::redis and jobpoll::postgres (jobpoll::batch whenever nlohmann-json
# is there, as the batch headers need nothing else).
vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    -DJOBPOLL_BUILD_TESTS=OFF
    -DJOBPOLL_BUILD_EXAMPLES=OFF
    -DJOBPOLL_BUILD_BENCH=OFF
    -DJOBPOLL_BUILD_TOOLS=OFF
    -DJOBPOLL_INSTALL=ON
)
vcpkg_cmake_install()
# Installed to share/cmake/jobpoll (cmake/JobpollInstall.cmake); vcpkg wants share/jobpoll.
vcpkg_cmake_config_fixup(PACKAGE_NAME jobpoll CONFIG_PATH share/cmake/jobpoll)

file(REMOVE_RECURSE
  "${CURRENT_PACKAGES_DIR}/debug"
  "${CURRENT_PACKAGES_DIR}/share/doc")  # the license goes to share/jobpoll/copyright instead
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
