# s3:// checkpoints against a real S3 server: Ceph's RADOS Gateway on
# loopback (scripts/s3-server.sh), started once for the run by the
# s3.server fixture. test_s3 needs no KVM; the cases that checkpoint
# virtines into a bucket through the tools are s3_ckpt_test.sh's
# (s3.ckpt_*). Included from tests/CMakeLists.txt.
add_executable(test_s3 ${CMAKE_CURRENT_LIST_DIR}/test_s3.c)
target_compile_options(test_s3 PRIVATE ${WASP_WARNINGS})
target_link_libraries(test_s3 PRIVATE wasp_static)

set(_s3_env "WASP_S3_SHARED=${CMAKE_CURRENT_BINARY_DIR}/s3-server;WASP_TEST_S3=$<TARGET_FILE:test_s3>")
add_test(NAME s3.server_start COMMAND ${CMAKE_CURRENT_LIST_DIR}/s3_test.sh start)
add_test(NAME s3.server_stop COMMAND ${CMAKE_CURRENT_LIST_DIR}/s3_test.sh stop)
set_tests_properties(s3.server_start PROPERTIES FIXTURES_SETUP s3 ENVIRONMENT "${_s3_env}"
  SKIP_RETURN_CODE 77 TIMEOUT 300)
set_tests_properties(s3.server_stop PROPERTIES FIXTURES_CLEANUP s3 ENVIRONMENT "${_s3_env}"
  TIMEOUT 120)

set(S3_CASES roundtrip abandon errors profiles changed parallel kill_writer server_killed)
foreach(c ${S3_CASES})
  add_test(NAME s3.${c} COMMAND ${CMAKE_CURRENT_LIST_DIR}/s3_test.sh ${c})
  set_tests_properties(s3.${c} PROPERTIES FIXTURES_REQUIRED s3 ENVIRONMENT "${_s3_env}"
    SKIP_RETURN_CODE 77 TIMEOUT 300)
endforeach()

set(S3_CKPT_CASES stop live run_path chain refused server_killed kill_writer many)
set(_s3_ckpt_env "${_s3_env}"
  "WASP_RUN=$<TARGET_FILE:wasp-run>"
  "WASP_CKPT=$<TARGET_FILE:wasp-ckpt>"
  "WASP_RESTORE=$<TARGET_FILE:wasp-restore>"
  "WASP_INSPECT=$<TARGET_FILE:wasp-inspect>"
  "GUEST_DIR=${CMAKE_BINARY_DIR}/guest"
  "TEST_GUEST_DIR=${CMAKE_BINARY_DIR}/tests/guests"
  "ASM_DIR=${CMAKE_BINARY_DIR}/tests/asm")
foreach(c ${S3_CKPT_CASES})
  add_test(NAME s3.ckpt_${c} COMMAND ${CMAKE_CURRENT_LIST_DIR}/s3_test.sh ckpt_${c})
  set_tests_properties(s3.ckpt_${c} PROPERTIES FIXTURES_REQUIRED s3 ENVIRONMENT "${_s3_ckpt_env}"
    SKIP_RETURN_CODE 77 TIMEOUT 300)
endforeach()
