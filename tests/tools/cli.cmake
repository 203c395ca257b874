# tools/: wasp-run and the guest images, driven from a shell script
# (cli_test.sh). Included from tests/CMakeLists.txt.
set(CLI_CASES help no_image missing_image bad_mem bad_allow bad_timeout bad_mode
  bad_option extra_arg bad_dir oversized_image exit3 exit7 timeout fault
  hello hello_real fib16 fib32 fib64 counter filecopy badptr escape denied
  triple nullderef mmio loop_timeout sse hcflood stats rtcheck argret)
foreach(c ${CLI_CASES})
  add_test(NAME cli.${c} COMMAND ${CMAKE_CURRENT_LIST_DIR}/cli_test.sh ${c})
  set_tests_properties(cli.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
    ENVIRONMENT "WASP_RUN=$<TARGET_FILE:wasp-run>;GUEST_DIR=${CMAKE_BINARY_DIR}/guest;TEST_GUEST_DIR=${CMAKE_CURRENT_BINARY_DIR}/guests;ASM_DIR=${ASM_OUT}")
endforeach()
