# Component `json` of the installed jobpoll package: jobpoll::json, the
# nlohmann::json codec (<jobpoll/codec/json.hpp>). Included by
# jobpollConfig.cmake for find_package(jobpoll COMPONENTS json).
_jobpoll_find_component_dependency(json nlohmann_json 3.10 CONFIG)
if(nlohmann_json_FOUND)
  _jobpoll_include_component_targets(json)
endif()
