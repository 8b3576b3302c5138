# jobpoll_python_with(<out> <module>...): the first Python 3 interpreter that
# can import every <module>, into <out>: the one find_package(Python3) found,
# else Debian's /usr/bin/python3. The loopback servers and the Python peer of
# the benchmarks use Debian packages (python3-hypercorn, python3-aiohttp, ...,
# from scripts/deps.sh), which an interpreter found first on PATH (pyenv, a
# virtualenv) may not see. Fails naming the modules when none can.
function(jobpoll_python_with out)
  find_package(Python3 3.9 REQUIRED COMPONENTS Interpreter)
  set(imports "")
  foreach(module IN LISTS ARGN)
    string(APPEND imports "import ${module}\n")
  endforeach()
  foreach(candidate IN ITEMS "${Python3_EXECUTABLE}" /usr/bin/python3)
    if(EXISTS "${candidate}")
      execute_process(COMMAND "${candidate}" -c "${imports}" RESULT_VARIABLE missing OUTPUT_QUIET ERROR_QUIET)
      if(missing EQUAL 0)
        set(${out} "${candidate}" PARENT_SCOPE)
        return()
      endif()
    endif()
  endforeach()
  string(REPLACE ";" ", " names "${ARGN}")
  message(FATAL_ERROR "jobpoll needs a Python 3 that can import ${names} (Debian packages from scripts/deps.sh); "
    "neither ${Python3_EXECUTABLE} nor /usr/bin/python3 can. Set -DPython3_EXECUTABLE to one that does.")
endfunction()
