# Component `batch` of the installed jobpoll package: jobpoll::batch, batches
# of jobs (<jobpoll/batch.hpp>, <jobpoll/batch/*.hpp>: the runner,
# reconciliation, the store concept, the records' JSON forms, the audit log).
# Included by jobpollConfig.cmake for find_package(jobpoll COMPONENTS batch),
# and by the store components, which build on it. Its records are JSON: it
# links nlohmann_json.
_jobpoll_find_component_dependency(batch nlohmann_json 3.10 CONFIG)
if(nlohmann_json_FOUND)
  _jobpoll_include_component_targets(batch)
endif()
