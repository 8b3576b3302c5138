# Component `sqlite` of the installed jobpoll package: jobpoll::sqlite, the
# embedded batch store on SQLite 3 (<jobpoll/store/sqlite.hpp>). Included by
# jobpollConfig.cmake for find_package(jobpoll COMPONENTS sqlite). The store
# also reads and writes JSON: it links jobpoll::json's nlohmann_json too.
_jobpoll_find_component_dependency(sqlite SQLite3 3.24)
_jobpoll_find_component_dependency(sqlite nlohmann_json 3.10 CONFIG)
if(SQLite3_FOUND AND nlohmann_json_FOUND)
  include("${CMAKE_CURRENT_LIST_DIR}/jobpoll-sqlite-targets.cmake")
  set(jobpoll_sqlite_FOUND TRUE)
endif()
