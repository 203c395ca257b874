# Tracing and checkpoints at chosen points, end to end through wasp-run,
# wasp-restore and wasp-inspect, driven by trace_test.sh. Included from
# tests/CMakeLists.txt after the guest images are known.
set(TRACE_CASES fib_hypercalls steps steps_real steps_bound steps_fault all_events inspect
  trace_off at_third_call restore_on_point at_continue after_exits after_hypercalls point_at_end
  usr1_with_breakpoint
  bad_event bad_regs bad_mem bad_addr bad_symbol bad_count needs_path)
set(_trace_env
  "WASP_RUN=$<TARGET_FILE:wasp-run>"
  "WASP_RESTORE=$<TARGET_FILE:wasp-restore>"
  "WASP_INSPECT=$<TARGET_FILE:wasp-inspect>"
  "GUEST_DIR=${CMAKE_BINARY_DIR}/guest"
  "TEST_GUEST_DIR=${CMAKE_BINARY_DIR}/tests/guests"
  "ASM_DIR=${CMAKE_BINARY_DIR}/tests/asm")
foreach(c ${TRACE_CASES})
  add_test(NAME trace.${c} COMMAND ${CMAKE_CURRENT_LIST_DIR}/trace_test.sh ${c})
  set_tests_properties(trace.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
    ENVIRONMENT "${_trace_env}")
endforeach()
