# Install rules and the CMake package (find_package(jobpoll CONFIG)).
#
# Installed layout (header-only, architecture-independent):
#   <prefix>/include/jobpoll/**.hpp                 the headers, nothing else
#   <prefix>/share/cmake/jobpoll/jobpollConfig.cmake
#   <prefix>/share/cmake/jobpoll/jobpollConfigVersion.cmake
#   <prefix>/share/cmake/jobpoll/jobpollTargets.cmake   jobpoll::jobpoll
#   <prefix>/share/cmake/jobpoll/JobpollAsio.cmake      re-creates jobpoll::asio
#   <prefix>/share/doc/jobpoll/LICENSE
# tests/packaging/install_and_check.cmake checks exactly this list, and the
# vcpkg port (ports/jobpoll) and conanfile.py rely on it.
#
# Components, each a leaf target with its own third-party dependency, add
#   <prefix>/share/cmake/jobpoll/jobpoll-<name>.cmake           finds the dependency
#   <prefix>/share/cmake/jobpoll/jobpoll-<name>-targets.cmake   jobpoll::<name>
# for users of find_package(jobpoll CONFIG REQUIRED COMPONENTS json curl batch sqlite redis postgres):
#   json: jobpoll::json on nlohmann_json; curl: jobpoll::curl on CURL;
#   batch: jobpoll::batch (batches: runner, records, audit log) on nlohmann_json;
#   sqlite: jobpoll::sqlite (the batch store) on SQLite3 and jobpoll::batch;
#   redis: jobpoll::redis (the shared rate limiter) on hiredis (pkg-config);
#   postgres: jobpoll::postgres (the shared batch store) on libpq and jobpoll::batch.
# The store components load the batch component themselves.
include(CMakePackageConfigHelpers)

# The core of each backend built: jobpollTargets.cmake (standalone Asio),
# jobpoll-boost-asio-targets.cmake (Boost.Asio).
if(TARGET jobpoll)
  install(TARGETS jobpoll EXPORT jobpollTargets)
  install(EXPORT jobpollTargets
    NAMESPACE jobpoll::
    FILE jobpollTargets.cmake
    DESTINATION "${JOBPOLL_INSTALL_CMAKEDIR}")
endif()
if(TARGET jobpoll_boost_asio)
  install(TARGETS jobpoll_boost_asio EXPORT jobpoll-boost-asio-targets)
  install(EXPORT jobpoll-boost-asio-targets
    NAMESPACE jobpoll::
    FILE jobpoll-boost-asio-targets.cmake
    DESTINATION "${JOBPOLL_INSTALL_CMAKEDIR}")
endif()
# Headers one by one rather than install(DIRECTORY): no empty directories
# (vcpkg rejects them) and nothing but *.hpp.
file(GLOB_RECURSE _jobpoll_headers CONFIGURE_DEPENDS
  RELATIVE "${jobpoll_SOURCE_DIR}/include"
  "${jobpoll_SOURCE_DIR}/include/jobpoll/*.hpp")
foreach(_jobpoll_header IN LISTS _jobpoll_headers)
  get_filename_component(_jobpoll_header_dir "${_jobpoll_header}" DIRECTORY)
  install(FILES "${jobpoll_SOURCE_DIR}/include/${_jobpoll_header}"
    DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/${_jobpoll_header_dir}")
endforeach()

configure_package_config_file(
  "${jobpoll_SOURCE_DIR}/cmake/jobpollConfig.cmake.in"
  "${jobpoll_BINARY_DIR}/jobpollConfig.cmake"
  INSTALL_DESTINATION "${JOBPOLL_INSTALL_CMAKEDIR}"
  NO_SET_AND_CHECK_MACRO)
# ARCH_INDEPENDENT: header-only, so a 32-bit consumer may use a package
# installed from a 64-bit build (the version file would otherwise compare
# CMAKE_SIZEOF_VOID_P).
write_basic_package_version_file(
  "${jobpoll_BINARY_DIR}/jobpollConfigVersion.cmake"
  VERSION "${jobpoll_VERSION}"
  COMPATIBILITY SameMajorVersion
  ARCH_INDEPENDENT)
install(FILES
  "${jobpoll_BINARY_DIR}/jobpollConfig.cmake"
  "${jobpoll_BINARY_DIR}/jobpollConfigVersion.cmake"
  "${jobpoll_SOURCE_DIR}/cmake/JobpollAsio.cmake"
  "${jobpoll_SOURCE_DIR}/cmake/JobpollBoostAsio.cmake"
  DESTINATION "${JOBPOLL_INSTALL_CMAKEDIR}")
# Not CMAKE_INSTALL_DOCDIR: that cache variable names the top-level project.
install(FILES "${jobpoll_SOURCE_DIR}/LICENSE" DESTINATION "${CMAKE_INSTALL_DATAROOTDIR}/doc/jobpoll")

# --- components -------------------------------------------------------------------
foreach(_jobpoll_component IN ITEMS json curl batch sqlite redis postgres)
  set(_jobpoll_component_installed OFF)
  foreach(_jobpoll_suffix IN ITEMS "" _boost_asio)
    string(REPLACE "_" "-" _jobpoll_export_suffix "${_jobpoll_suffix}")
    if(TARGET jobpoll_${_jobpoll_component}${_jobpoll_suffix})
      install(TARGETS jobpoll_${_jobpoll_component}${_jobpoll_suffix}
        EXPORT jobpoll-${_jobpoll_component}${_jobpoll_export_suffix}-targets)
      install(EXPORT jobpoll-${_jobpoll_component}${_jobpoll_export_suffix}-targets
        NAMESPACE jobpoll::
        FILE jobpoll-${_jobpoll_component}${_jobpoll_export_suffix}-targets.cmake
        DESTINATION "${JOBPOLL_INSTALL_CMAKEDIR}")
      set(_jobpoll_component_installed ON)
    endif()
  endforeach()
  if(_jobpoll_component_installed)
    install(FILES "${jobpoll_SOURCE_DIR}/cmake/jobpoll-${_jobpoll_component}.cmake"
      DESTINATION "${JOBPOLL_INSTALL_CMAKEDIR}")
  endif()
endforeach()
