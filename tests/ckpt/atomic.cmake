# test_atomic: the one atomic-file writer (wasp_atomic_file) behind every
# checkpoint file, file:// migrations included. No KVM needed, so nothing
# skips. fsync and renameat are wrapped so the test sees their order and
# can make them fail. Included from tests/CMakeLists.txt.
add_executable(test_atomic ${CMAKE_CURRENT_LIST_DIR}/test_atomic.c)
target_compile_options(test_atomic PRIVATE ${WASP_WARNINGS})
target_link_libraries(test_atomic PRIVATE wasp_static)
target_link_options(test_atomic PRIVATE -Wl,--wrap=fsync,--wrap=renameat)

set(ATOMIC_CASES basics abort relative symlinks directory planted sync errors sweep xfer)
foreach(c ${ATOMIC_CASES})
  add_test(NAME atomic.${c} COMMAND test_atomic ${c})
  set_tests_properties(atomic.${c} PROPERTIES TIMEOUT 60)
endforeach()
