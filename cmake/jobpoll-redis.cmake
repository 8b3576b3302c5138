# Component `redis` of the installed jobpoll package: jobpoll::redis, the rate
# limiter shared by every process through Redis (<jobpoll/redis_limiter.hpp>),
# on hiredis. Included by jobpollConfig.cmake for
# find_package(jobpoll COMPONENTS redis). hiredis is found through pkg-config:
# the CMake package file Debian's hiredis 0.14 ships is broken.
_jobpoll_find_component_dependency(redis PkgConfig)
if(PkgConfig_FOUND AND NOT TARGET PkgConfig::jobpoll_hiredis)
  if(jobpoll_FIND_REQUIRED_redis)
    pkg_check_modules(jobpoll_hiredis REQUIRED IMPORTED_TARGET GLOBAL hiredis>=0.14)
  else()
    pkg_check_modules(jobpoll_hiredis QUIET IMPORTED_TARGET GLOBAL hiredis>=0.14)
  endif()
endif()
if(TARGET PkgConfig::jobpoll_hiredis)
  _jobpoll_include_component_targets(redis)
else()
  set(jobpoll_redis_FOUND FALSE)
endif()
