# Hardening (issue 6): hostile guests in one process beside a good one
# (test_hostile), checkpoints under load (test_load), kill -9 while a
# checkpoint is written and truncated checkpoints (crash_test.sh).
# docs/hostile-guests.md lists every hostile guest and its outcome.
# Included from tests/CMakeLists.txt after the guest and asm images exist.

set(HARDEN_GUESTS ptwrite grow hcdenied sbxrace privops sparse)
foreach(name IN LISTS HARDEN_GUESTS)
	wasp_add_virtine(${name} SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/guests/${name}.c)
endforeach()
set(HARDEN_GUEST_DIR ${CMAKE_CURRENT_BINARY_DIR})

add_executable(test_hostile ${CMAKE_CURRENT_LIST_DIR}/test_hostile.c)
target_compile_options(test_hostile PRIVATE ${WASP_WARNINGS})
target_link_libraries(test_hostile PRIVATE wasp_static)
add_dependencies(test_hostile test_asm_images)
foreach(name IN LISTS HARDEN_GUESTS WASP_TEST_GUESTS)
	add_dependencies(test_hostile virtine_${name})
endforeach()
set(HOSTILE_CASES badptr escape sbxrace sparse denied hcdenied hcdenied_forever hcflood loop
	triple nullderef mmio ptwrite_probe ptwrite_far ptwrite_wreck ptwrite_tss grow_heap
	grow_touch grow_touch_3m grow_stack privops_hlt privops_rdmsr privops_wrmsr privops_cr3
	privops_lgdt privops_int3 privops_int80 privops_syscall privops_in privops_out80
	privops_out3f8 privops_cli concurrent ptwrite_ckpt flood_pause)
foreach(c ${HOSTILE_CASES})
	add_test(NAME hostile.${c} COMMAND test_hostile
		${CMAKE_CURRENT_BINARY_DIR}/guests ${HARDEN_GUEST_DIR} ${c})
	set_tests_properties(hostile.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endforeach()

set(CRASH_CASES kill_periodic kill_ckpt_tool sweep truncated files_rollback files_refuse)
foreach(c ${CRASH_CASES})
	add_test(NAME crash.${c} COMMAND ${CMAKE_CURRENT_LIST_DIR}/crash_test.sh ${c})
	set_tests_properties(crash.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
		ENVIRONMENT "WASP_RUN=$<TARGET_FILE:wasp-run>;WASP_CKPT=$<TARGET_FILE:wasp-ckpt>;WASP_RESTORE=$<TARGET_FILE:wasp-restore>;WASP_INSPECT=$<TARGET_FILE:wasp-inspect>;GUEST_DIR=${CMAKE_BINARY_DIR}/guest")
endforeach()

add_executable(test_load ${CMAKE_CURRENT_LIST_DIR}/test_load.c)
target_compile_options(test_load PRIVATE ${WASP_WARNINGS})
target_link_libraries(test_load PRIVATE wasp_static)
add_dependencies(test_load virtine_counter)
foreach(c concurrent64 cycles)
	add_test(NAME load.${c} COMMAND test_load ${CMAKE_BINARY_DIR}/guest ${c})
	set_tests_properties(load.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
endforeach()
