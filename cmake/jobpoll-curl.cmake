# Component `curl` of the installed jobpoll package: jobpoll::curl, the HTTP
# transport on libcurl (<jobpoll/transport/curl.hpp>). Included by
# jobpollConfig.cmake for find_package(jobpoll COMPONENTS curl).
_jobpoll_find_component_dependency(curl CURL 7.80)
if(CURL_FOUND)
  _jobpoll_include_component_targets(curl)
endif()
