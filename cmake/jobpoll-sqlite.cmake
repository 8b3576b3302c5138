# Component `sqlite` of the installed jobpoll package: jobpoll::sqlite, the
# embedded batch store on SQLite 3 (<jobpoll/store/sqlite.hpp>). Included by
# jobpollConfig.cmake for find_package(jobpoll COMPONENTS sqlite). The store
# builds on the batch component (jobpoll::batch, on nlohmann_json: its records
# are JSON), which it brings along.
_jobpoll_find_component_dependency(sqlite SQLite3 3.24)
_jobpoll_find_component_dependency(sqlite nlohmann_json 3.10 CONFIG)
if(SQLite3_FOUND AND nlohmann_json_FOUND AND NOT jobpoll_batch_FOUND)
  include("${CMAKE_CURRENT_LIST_DIR}/jobpoll-batch.cmake")
endif()
if(SQLite3_FOUND AND jobpoll_batch_FOUND)
  _jobpoll_include_component_targets(sqlite)
endif()
