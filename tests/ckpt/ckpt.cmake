# ckpt/: checkpoint and restore through the library (test_ckpt): state
# compared right after restore, chains, each entry mode, SSE/AVX, bad
# streams. Included from tests/CMakeLists.txt after the asm images exist.
add_executable(test_ckpt ${CMAKE_CURRENT_LIST_DIR}/test_ckpt.c)
target_compile_options(test_ckpt PRIVATE ${WASP_WARNINGS})
target_link_libraries(test_ckpt PRIVATE wasp_static)
add_dependencies(test_ckpt test_asm_images)
set(CKPT_CASES paused_while_stepping pending_triple_fault paused_on_breakpoint live_no_exits mappable cpuid_subset callbacks_and_files incremental_chain live chain real_mode protected_mode long_mode sse avx bad_streams not_a_checkpoint)
foreach(c ${CKPT_CASES})
  add_test(NAME ckpt.${c} COMMAND test_ckpt ${ASM_OUT} ${CMAKE_BINARY_DIR}/guest ${c})
  set_tests_properties(ckpt.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endforeach()
