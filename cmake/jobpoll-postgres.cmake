# Component `postgres` of the installed jobpoll package: jobpoll::postgres, the
# batch store several runners share (<jobpoll/store/postgres.hpp>), on libpq.
# Included by jobpollConfig.cmake for find_package(jobpoll COMPONENTS postgres).
# It builds on the batch component (jobpoll::batch, on nlohmann_json: its
# records are JSON), which it brings along.
_jobpoll_find_component_dependency(postgres PostgreSQL 12)
_jobpoll_find_component_dependency(postgres nlohmann_json 3.10 CONFIG)
if(PostgreSQL_FOUND AND nlohmann_json_FOUND AND NOT jobpoll_batch_FOUND)
  include("${CMAKE_CURRENT_LIST_DIR}/jobpoll-batch.cmake")
endif()
if(PostgreSQL_FOUND AND jobpoll_batch_FOUND)
  _jobpoll_include_component_targets(postgres)
endif()
