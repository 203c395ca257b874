# vmm/: the virtine API through the library (test_vmm): exits, hypercalls,
# guest pointers, faults, timeouts, pause, the file sandbox. Included from
# tests/CMakeLists.txt after the asm images exist.
add_executable(test_vmm ${CMAKE_CURRENT_LIST_DIR}/test_vmm.c)
target_compile_options(test_vmm PRIVATE ${WASP_WARNINGS})
target_link_libraries(test_vmm PRIVATE wasp_static)
add_dependencies(test_vmm test_asm_images)

set(VMM_CASES exit3 exit_code allow_deny custom_hypercall hypercall_exits gpa
  bad_pointers args_ret faults timeout pause create_destroy_1000 bad_config
  real_mode_args sandbox big_image)
foreach(c ${VMM_CASES})
  add_test(NAME vmm.${c} COMMAND test_vmm ${ASM_OUT} ${c})
  set_tests_properties(vmm.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endforeach()
