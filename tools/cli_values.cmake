# jobpoll_cli_values: the value grammar (cli_values.hpp) shared by the
# `jobpoll` tool and examples/batch_run. Header-only, on CLI11. Included by
# tools/ and examples/, so that each can be built without the other.
include_guard(GLOBAL)
find_package(CLI11 2.1 CONFIG REQUIRED)
add_library(jobpoll_cli_values INTERFACE)
target_include_directories(jobpoll_cli_values INTERFACE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(jobpoll_cli_values INTERFACE jobpoll::jobpoll${JOBPOLL_OWN} CLI11::CLI11)
