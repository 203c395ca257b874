# The receiver's limits and transport errors (limits_test.sh,
# docs/security.md): oversized, chunked-oversized, stalled, trickling,
# garbage and cut streams against a real wasp-restore --listen, the same
# limit on files and stdin, a certificate outside the trusted CA, and
# plain HTTP to a TLS port. Included from tests/CMakeLists.txt.
set(LIMITS_CASES length chunked file bloat idle slow garbage cut tls_wrong_ca http_to_tls)
foreach(c ${LIMITS_CASES})
  add_test(NAME limits.${c} COMMAND ${CMAKE_CURRENT_LIST_DIR}/limits_test.sh ${c})
  set_tests_properties(limits.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
    ENVIRONMENT "WASP_RUN=$<TARGET_FILE:wasp-run>;WASP_RESTORE=$<TARGET_FILE:wasp-restore>;WASP_CKPT=$<TARGET_FILE:wasp-ckpt>;WASP_MIGRATE=$<TARGET_FILE:wasp-migrate>;WASP_INSPECT=$<TARGET_FILE:wasp-inspect>;TEST_STREAM=$<TARGET_FILE:test_stream>;ASM_DIR=${CMAKE_BINARY_DIR}/tests/asm")
endforeach()
