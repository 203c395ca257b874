# The migration receiver against hostile or unlucky peers (test_listen.c,
# docs/migration.md): a files PUT outliving its migration, slow headers
# from one and from many addresses, replayed checkpoints. A listener in the
# test's own process, so the ASan build sees every access. Included from
# tests/CMakeLists.txt.
add_executable(test_listen ${CMAKE_CURRENT_LIST_DIR}/test_listen.c)
target_include_directories(test_listen PRIVATE ${CMAKE_SOURCE_DIR}/migrate)
target_compile_options(test_listen PRIVATE ${WASP_WARNINGS})
target_link_libraries(test_listen PRIVATE wasp_static Threads::Threads)
add_dependencies(test_listen test_asm_images)

set(LISTEN_CASES files_after_trim header_deadline slow_one_address slow_many_addresses
  replay replay_allowed replay_after_refusal)
foreach(c ${LISTEN_CASES})
  add_test(NAME listen.${c} COMMAND test_listen ${ASM_OUT} ${c})
  set_tests_properties(listen.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180)
endforeach()
