# test_files: the guest's files on the host side (written-file records,
# restore after a crash, the sandbox quota), called as the hypercall
# dispatcher calls them. No KVM needed, so nothing skips. The same
# behaviour end to end, on real KVM: crash.files_* and hostile.sparse.
# Included from tests/CMakeLists.txt.
add_executable(test_files ${CMAKE_CURRENT_LIST_DIR}/test_files.c)
target_compile_options(test_files PRIVATE ${WASP_WARNINGS})
target_link_libraries(test_files PRIVATE wasp_static)
target_include_directories(test_files PRIVATE ${CMAKE_SOURCE_DIR}/vmm ${CMAKE_SOURCE_DIR}/ckpt)

foreach(c rollback rewrite refuse unseen hostile incremental quota)
  add_test(NAME files.${c} COMMAND test_files ${c})
  set_tests_properties(files.${c} PROPERTIES TIMEOUT 120)
endforeach()
