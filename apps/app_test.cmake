# One run of a demo app for CTest (ddn_add_app_test in apps/CMakeLists.txt adds it):
#   cmake -DBINARY=path -DARGS="a|b|c" -DMODE=smoke|bad_input [-DEXPECT=regex] [-DWORKDIR=folder] -P app_test.cmake
# smoke:     the exit code must be 0 and stdout must match EXPECT.
# bad_input: the exit code must be exactly 2, stdout empty, stderr exactly one line (matching EXPECT if given);
#            the CLI contract of docs/design.md §2.
string(REPLACE "|" ";" args "${ARGS}")
if(NOT WORKDIR)
  set(WORKDIR .)
endif()
execute_process(COMMAND ${BINARY} ${args} WORKING_DIRECTORY ${WORKDIR}
                RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(MODE STREQUAL "smoke")
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "exit ${code}, expected 0; stderr: ${err}")
  endif()
  if(NOT out MATCHES "${EXPECT}")
    message(FATAL_ERROR "stdout does not match '${EXPECT}':\n${out}")
  endif()
elseif(MODE STREQUAL "bad_input")
  string(REGEX MATCHALL "\n" newlines "${err}")
  list(LENGTH newlines lines)
  if(NOT code EQUAL 2 OR NOT out STREQUAL "" OR NOT lines EQUAL 1)
    message(FATAL_ERROR "bad input: exit ${code} (expected 2), stdout '${out}' (expected none), "
                        "stderr of ${lines} lines (expected 1): '${err}'")
  endif()
  if(EXPECT AND NOT err MATCHES "${EXPECT}")
    message(FATAL_ERROR "stderr does not match '${EXPECT}': ${err}")
  endif()
else()
  message(FATAL_ERROR "MODE must be smoke or bad_input, got '${MODE}'")
endif()
