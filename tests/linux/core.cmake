# Static Linux programs through the library and the tools (docs/linux.md):
# tests/linux/test_linux.c (pool, in-memory checkpoint, hostile state) and
# tests/linux/linux_ckpt_test.sh (signal / wasp-ckpt / --checkpoint-at / kill -9 /
# restore / migration of a running program). The guest programs in
# tests/linux/core/ are built here with the system's compiler and
# musl-gcc (Debian's musl-tools) as static executables, never with the
# project's own flags (no sanitizers inside a virtine).
set(LXC_OUT ${CMAKE_CURRENT_BINARY_DIR}/linux_core)
file(MAKE_DIRECTORY ${LXC_OUT})
find_program(WASP_MUSL_GCC musl-gcc)
if(NOT WASP_MUSL_GCC)
  message(STATUS "musl-gcc not found (Debian: musl-tools): the musl variants of the Linux tests are not built")
endif()

set(LXC_PROGS)
foreach(prog serve counter)
  set(src ${CMAKE_CURRENT_LIST_DIR}/core/${prog}.c)
  add_custom_command(OUTPUT ${LXC_OUT}/${prog}-glibc
    COMMAND ${CMAKE_C_COMPILER} -static -O2 -g -I${CMAKE_SOURCE_DIR}/guest -o ${LXC_OUT}/${prog}-glibc ${src}
    DEPENDS ${src} ${CMAKE_SOURCE_DIR}/guest/wasp_linux.h
    COMMENT "static program ${prog}-glibc" VERBATIM)
  list(APPEND LXC_PROGS ${LXC_OUT}/${prog}-glibc)
  if(WASP_MUSL_GCC)
    add_custom_command(OUTPUT ${LXC_OUT}/${prog}-musl
      COMMAND ${WASP_MUSL_GCC} -static -O2 -g -I${CMAKE_SOURCE_DIR}/guest -o ${LXC_OUT}/${prog}-musl ${src}
      DEPENDS ${src} ${CMAKE_SOURCE_DIR}/guest/wasp_linux.h
      COMMENT "static program ${prog}-musl" VERBATIM)
    list(APPEND LXC_PROGS ${LXC_OUT}/${prog}-musl)
  endif()
endforeach()
add_custom_target(linux_core_progs ALL DEPENDS ${LXC_PROGS})

add_executable(test_linux ${CMAKE_CURRENT_LIST_DIR}/test_linux.c)
target_compile_options(test_linux PRIVATE ${WASP_WARNINGS})
target_link_libraries(test_linux PRIVATE wasp_static Threads::Threads)
add_dependencies(test_linux linux_core_progs)
set(LXC_CASES pool_glibc pool_memory ckpt_roundtrip bad_state)
if(WASP_MUSL_GCC)
  list(APPEND LXC_CASES pool_musl)
endif()
foreach(c ${LXC_CASES})
  add_test(NAME linux.lib.${c} COMMAND test_linux ${LXC_OUT}/serve-glibc ${LXC_OUT}/serve-musl
    ${LXC_OUT}/counter-glibc ${c})
  set_tests_properties(linux.lib.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endforeach()

set(LXC_VARIANTS glibc)
if(WASP_MUSL_GCC)
  list(APPEND LXC_VARIANTS musl)
endif()
foreach(v ${LXC_VARIANTS})
  foreach(c signal_kill every stop at migrate netns)
    add_test(NAME linux.ckpt.${c}.${v} COMMAND ${CMAKE_CURRENT_LIST_DIR}/linux_ckpt_test.sh ${c} ${v})
    set_tests_properties(linux.ckpt.${c}.${v} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180
      ENVIRONMENT "WASP_RUN=$<TARGET_FILE:wasp-run>;WASP_CKPT=$<TARGET_FILE:wasp-ckpt>;WASP_RESTORE=$<TARGET_FILE:wasp-restore>;WASP_MIGRATE=$<TARGET_FILE:wasp-migrate>;WASP_INSPECT=$<TARGET_FILE:wasp-inspect>;LXC_DIR=${LXC_OUT}")
  endforeach()
endforeach()
