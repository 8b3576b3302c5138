# cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DPREFIX=... [-DCONFIG=...] -P install_and_check.cmake
#
# Installs the build tree BUILD_DIR into a fresh PREFIX and checks that the
# prefix holds exactly the expected files: every header of include/jobpoll,
# the package files and the license; no sources, no build files, no binaries.
foreach(var IN ITEMS BUILD_DIR SOURCE_DIR PREFIX)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "install_and_check.cmake: ${var} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE "${PREFIX}")
set(config_args)
if(CONFIG)
  set(config_args --config "${CONFIG}")
endif()
execute_process(
  COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}" ${config_args}
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "cmake --install failed: ${result}")
endif()

file(GLOB_RECURSE headers RELATIVE "${SOURCE_DIR}" "${SOURCE_DIR}/include/jobpoll/*.hpp")
set(package_dir share/cmake/jobpoll)
set(expected ${headers}
  ${package_dir}/jobpollConfig.cmake
  ${package_dir}/jobpollConfigVersion.cmake
  ${package_dir}/jobpollTargets.cmake
  ${package_dir}/jobpoll-boost-asio-targets.cmake
  ${package_dir}/JobpollAsio.cmake
  ${package_dir}/JobpollBoostAsio.cmake
  share/doc/jobpoll/LICENSE)
foreach(component IN ITEMS json curl batch sqlite redis postgres)
  list(APPEND expected ${package_dir}/jobpoll-${component}.cmake ${package_dir}/jobpoll-${component}-targets.cmake
    ${package_dir}/jobpoll-${component}-boost-asio-targets.cmake)
endforeach()
file(GLOB_RECURSE installed RELATIVE "${PREFIX}" "${PREFIX}/*")
# Per-configuration export files (jobpollTargets-<config>.cmake) only appear
# for targets with binaries; a header-only package has none.
list(SORT expected)
list(SORT installed)
set(missing ${expected})
list(REMOVE_ITEM missing ${installed})
set(unexpected ${installed})
list(REMOVE_ITEM unexpected ${expected})
if(missing OR unexpected)
  list(JOIN missing "\n  " missing_text)
  list(JOIN unexpected "\n  " unexpected_text)
  message(FATAL_ERROR "install layout differs from the expected one\nmissing:\n  ${missing_text}\nunexpected:\n  ${unexpected_text}")
endif()
list(LENGTH installed count)
message(STATUS "installed ${count} files into ${PREFIX}, as expected")
