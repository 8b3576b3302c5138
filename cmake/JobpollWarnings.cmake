# Warning and sanitizer flags for jobpoll's own tests, examples and benchmarks
# (never forced on users of the library target).
include_guard(GLOBAL)
add_library(jobpoll_build_flags INTERFACE)
target_compile_options(jobpoll_build_flags INTERFACE -Wall -Wextra -Wpedantic
  $<$<BOOL:${JOBPOLL_WERROR}>:-Werror>)
# jobpoll itself uses no deprecated Asio API; users may, so this is not part
# of jobpoll::jobpoll's usage requirements.
target_compile_definitions(jobpoll_build_flags INTERFACE ASIO_NO_DEPRECATED BOOST_ASIO_NO_DEPRECATED)
if(JOBPOLL_SANITIZE)
  target_compile_options(jobpoll_build_flags INTERFACE -fsanitize=${JOBPOLL_SANITIZE} -fno-omit-frame-pointer
    -fno-sanitize-recover=all
    # clang's function sanitizer cannot compile coroutines (see ASIO-NOTES).
    $<$<CXX_COMPILER_ID:Clang>:-fno-sanitize=function>)
  target_link_options(jobpoll_build_flags INTERFACE -fsanitize=${JOBPOLL_SANITIZE})
endif()
