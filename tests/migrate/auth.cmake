# Where the migration token may go and how it is taken (auth_test.sh,
# docs/migration.md): redirects, plain http, verbose traces, token rules,
# the receiver's bind address and its failed-authentication limits; and
# the limiter itself on a simulated clock (test_auth). Included from
# tests/CMakeLists.txt.
set(AUTH_CASES token_rules listen_loopback redirect verbose plain_http auth_failures)
foreach(c ${AUTH_CASES})
  add_test(NAME auth.${c} COMMAND ${CMAKE_CURRENT_LIST_DIR}/auth_test.sh ${c})
  set_tests_properties(auth.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
    ENVIRONMENT "WASP_RUN=$<TARGET_FILE:wasp-run>;WASP_RESTORE=$<TARGET_FILE:wasp-restore>;WASP_MIGRATE=$<TARGET_FILE:wasp-migrate>;ASM_DIR=${CMAKE_BINARY_DIR}/tests/asm")
endforeach()

add_executable(test_auth ${CMAKE_CURRENT_LIST_DIR}/test_auth.c)
target_include_directories(test_auth PRIVATE ${CMAKE_SOURCE_DIR}/migrate)
target_compile_options(test_auth PRIVATE ${WASP_WARNINGS})
target_link_libraries(test_auth PRIVATE wasp_static)
set(AUTH_UNIT_CASES sender_trace free_then_turns burst_429 right_clears forget keys log_budget eviction)
foreach(c ${AUTH_UNIT_CASES})
  add_test(NAME auth.limit.${c} COMMAND test_auth ${c})
endforeach()
