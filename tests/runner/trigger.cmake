# Checkpoint triggers of a running virtine (SIGUSR1, trigger file, period,
# control socket via wasp-ckpt), driven by trigger_test.sh. Included from
# tests/CMakeLists.txt after the guest images are known.
set(TRIGGER_CASES sigusr1 sigusr1_no_path sigusr1_stop trigger_file trigger_at_start
  period timeout socket_pid socket_name default_output queue pipe terminal stop
  stop_restore spin errors killed dropped cancel name_collision cleanup run_args permission
  stop_pipe_refused stop_epipe stop_enospc stop_client_killed stop_runner_killed timeout_blocked
  planted_socket guessed_temp)
set(_trigger_env
  "WASP_RUN=$<TARGET_FILE:wasp-run>"
  "WASP_CKPT=$<TARGET_FILE:wasp-ckpt>"
  "GUEST_DIR=${CMAKE_BINARY_DIR}/guest"
  "TEST_GUEST_DIR=${CMAKE_BINARY_DIR}/tests/guests")
# stop_restore needs wasp-restore; without it the case skips (77).
if(TARGET wasp-restore)
  list(APPEND _trigger_env "WASP_RESTORE=$<TARGET_FILE:wasp-restore>")
endif()
foreach(c ${TRIGGER_CASES})
  add_test(NAME trigger.${c} COMMAND ${CMAKE_CURRENT_LIST_DIR}/trigger_test.sh ${c})
  set_tests_properties(trigger.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
    ENVIRONMENT "${_trigger_env}")
endforeach()
