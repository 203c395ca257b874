# Live migration end to end (migrate_test.sh): loopback and two network
# namespaces, every failure the commit protocol must survive, the round
# limit, incremental chains. Included from tests/CMakeLists.txt after the
# guest and asm images are known. Cases needing root (netns) or tools
# (python3, openssl) skip with 77 where those are missing.
set(MIGRATE_CASES loopback json stdout file fetch netns netns_cut kill_receiver cut
  wrong_token cpu not_listening busy lost_answer unanswered_refusal receiver_died
  round_limit cancel keep_listening keep_listening_term keep_listening_onward https incremental merge chain_errors)
set(_migrate_env
  "WASP_RUN=$<TARGET_FILE:wasp-run>"
  "WASP_RESTORE=$<TARGET_FILE:wasp-restore>"
  "WASP_CKPT=$<TARGET_FILE:wasp-ckpt>"
  "WASP_MIGRATE=$<TARGET_FILE:wasp-migrate>"
  "WASP_INSPECT=$<TARGET_FILE:wasp-inspect>"
  "GUEST_DIR=${CMAKE_BINARY_DIR}/guest"
  "ASM_DIR=${CMAKE_BINARY_DIR}/tests/asm")
foreach(c ${MIGRATE_CASES})
  add_test(NAME migrate.${c} COMMAND ${CMAKE_CURRENT_LIST_DIR}/migrate_test.sh ${c})
  set_tests_properties(migrate.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
    ENVIRONMENT "${_migrate_env}")
endforeach()
