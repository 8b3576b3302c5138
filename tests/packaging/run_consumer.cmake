# cmake -DSOURCE=... -DBINARY=... -DEXECUTABLE=... -DGENERATOR=... -DCXX_COMPILER=...
#       [-DMAKE_PROGRAM=...] [-DGENERATOR_PLATFORM=...] [-DGENERATOR_TOOLSET=...]
#       [-DCXX_FLAGS=...] [-DCXX_FLAGS_CONFIG=...] [-DCONFIG=...] [-DMULTI_CONFIG=ON|OFF]
#       [-DWERROR=ON|OFF] [-DCONSUMER_OPTIONS=-Da=1|-Db=2] -P run_consumer.cmake
#
# Configures the consumer project SOURCE from scratch in BINARY with the
# given toolchain (CXX_FLAGS_CONFIG: the flags of build type CONFIG), builds
# the programs EXECUTABLE names and runs them. EXECUTABLE and CONSUMER_OPTIONS
# are "|"-separated lists (a ";" would be split by add_test).
foreach(var IN ITEMS SOURCE BINARY EXECUTABLE GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: ${var} is not set")
  endif()
endforeach()

function(run step)
  message(STATUS "${step}: ${ARGN}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${step} failed (${result})")
  endif()
endfunction()

file(REMOVE_RECURSE "${BINARY}")
set(configure_args -S "${SOURCE}" -B "${BINARY}" -G "${GENERATOR}"
  "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
  "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
  "-DCONSUMER_WERROR=${WERROR}")
if(GENERATOR_PLATFORM)
  list(APPEND configure_args -A "${GENERATOR_PLATFORM}")
endif()
if(GENERATOR_TOOLSET)
  list(APPEND configure_args -T "${GENERATOR_TOOLSET}")
endif()
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
set(build_config_args)
if(MULTI_CONFIG)
  if(CONFIG)
    set(build_config_args --config "${CONFIG}")
  endif()
else()
  list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${CONFIG}")
  if(CONFIG AND CXX_FLAGS_CONFIG)
    string(TOUPPER "${CONFIG}" config_upper)
    list(APPEND configure_args "-DCMAKE_CXX_FLAGS_${config_upper}=${CXX_FLAGS_CONFIG}")
  endif()
endif()
if(CONSUMER_OPTIONS)
  string(REPLACE "|" ";" consumer_options "${CONSUMER_OPTIONS}")
  list(APPEND configure_args ${consumer_options})
endif()

string(REPLACE "|" ";" executables "${EXECUTABLE}")
run(configure "${CMAKE_COMMAND}" ${configure_args})
run(build "${CMAKE_COMMAND}" --build "${BINARY}" ${build_config_args} --target ${executables})

# Each program EXECUTABLE names must exist and succeed.
foreach(executable IN LISTS executables)
  set(found OFF)
  set(candidates "${BINARY}/${executable}" "${BINARY}/${CONFIG}/${executable}"
    "${BINARY}/${executable}.exe" "${BINARY}/${CONFIG}/${executable}.exe")
  foreach(candidate IN LISTS candidates)
    if(NOT found AND EXISTS "${candidate}" AND NOT IS_DIRECTORY "${candidate}")
      run(run "${candidate}")
      set(found ON)
    endif()
  endforeach()
  if(NOT found)
    message(FATAL_ERROR "built, but found no ${executable} in ${BINARY}")
  endif()
endforeach()
