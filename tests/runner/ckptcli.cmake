# Checkpoint and restore end to end through the tools (wasp-run, wasp-ckpt,
# wasp-restore, wasp-inspect), driven by ckpt_test.sh: a virtine
# checkpointed at any moment and restored in another process ends exactly
# as an uninterrupted run. Included from tests/CMakeLists.txt after the
# guest images are known.
set(CKPTCLI_CASES moments stop_chain pipe mappable modes bad_input restore_again files_dir inspect_chain
  console_blocked mappable_truncate)
set(_ckptcli_env
  "WASP_RUN=$<TARGET_FILE:wasp-run>"
  "WASP_CKPT=$<TARGET_FILE:wasp-ckpt>"
  "WASP_RESTORE=$<TARGET_FILE:wasp-restore>"
  "WASP_INSPECT=$<TARGET_FILE:wasp-inspect>"
  "GUEST_DIR=${CMAKE_BINARY_DIR}/guest"
  "TEST_GUEST_DIR=${CMAKE_BINARY_DIR}/tests/guests")
foreach(c ${CKPTCLI_CASES})
  add_test(NAME ckptcli.${c} COMMAND ${CMAKE_CURRENT_LIST_DIR}/ckpt_test.sh ${c})
  set_tests_properties(ckptcli.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
    ENVIRONMENT "${_ckptcli_env}")
endforeach()
