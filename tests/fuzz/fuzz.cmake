# Fuzz targets (tests/fuzz/, docs/security.md). Each target's source is
# built twice:
#  * always, with the regular compiler, against replay_main.c: the ctest
#    tests fuzz.replay.<target> feed it every committed regression input
#    (tests/fuzz/regressions/<target>/) and the seeds fuzz.seeds makes from
#    real checkpoints, so each input that ever broke something stays fixed;
#  * with -DWASP_FUZZ=ON (clang; scripts/fuzz.sh does this in build-fuzz/),
#    as a libFuzzer binary fuzz_<target>, with the library instrumented.
# Included from tests/CMakeLists.txt.
option(WASP_FUZZ "Build the libFuzzer targets (needs clang)" OFF)

set(FUZZ_TARGETS ckpt_decode ckpt_restore stream_chunks http_listen hypercall files_bundle syscall)
set(FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
set(FUZZ_OUT ${CMAKE_CURRENT_BINARY_DIR}/fuzz)
set(FUZZ_SEEDS ${FUZZ_OUT}/seeds)
# The internal headers the targets reach below the public API through.
set(FUZZ_INCLUDES ${FUZZ_DIR} ${CMAKE_SOURCE_DIR}/vmm ${CMAKE_SOURCE_DIR}/ckpt
  ${CMAKE_SOURCE_DIR}/migrate)

# fuzz_hypercall's guest, beside the binaries.
add_custom_command(OUTPUT ${FUZZ_OUT}/hcseq.bin
  COMMAND ${CMAKE_COMMAND} -E make_directory ${FUZZ_OUT}
  COMMAND nasm -f bin -I${CMAKE_CURRENT_SOURCE_DIR}/asm/ -o ${FUZZ_OUT}/hcseq.bin ${FUZZ_DIR}/hcseq.asm
  DEPENDS ${FUZZ_DIR}/hcseq.asm ${CMAKE_CURRENT_SOURCE_DIR}/asm/longhdr.inc
  COMMENT "nasm hcseq.asm")
add_custom_target(fuzz_hcseq ALL DEPENDS ${FUZZ_OUT}/hcseq.bin)

add_executable(fuzz_make_seeds ${FUZZ_DIR}/make_seeds.c)
target_compile_options(fuzz_make_seeds PRIVATE ${WASP_WARNINGS})
target_link_libraries(fuzz_make_seeds PRIVATE wasp_static)
set_target_properties(fuzz_make_seeds PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${FUZZ_OUT})
add_dependencies(fuzz_make_seeds test_asm_images fuzz_hcseq virtine_hello virtine_exit3)
add_test(NAME fuzz.seeds COMMAND fuzz_make_seeds ${ASM_OUT} ${CMAKE_BINARY_DIR}/guest ${FUZZ_SEEDS})
set_tests_properties(fuzz.seeds PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
  FIXTURES_SETUP fuzz_seeds)

set(FUZZ_ALL fuzz_make_seeds)
foreach(t ${FUZZ_TARGETS})
  add_executable(fuzz_replay_${t} ${FUZZ_DIR}/fuzz_${t}.c ${FUZZ_DIR}/fuzz_common.c
    ${FUZZ_DIR}/replay_main.c)
  target_include_directories(fuzz_replay_${t} PRIVATE ${FUZZ_INCLUDES})
  target_compile_options(fuzz_replay_${t} PRIVATE ${WASP_WARNINGS})
  target_link_libraries(fuzz_replay_${t} PRIVATE wasp_static)
  set_target_properties(fuzz_replay_${t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${FUZZ_OUT})
  add_dependencies(fuzz_replay_${t} fuzz_hcseq)
  add_test(NAME fuzz.replay.${t} COMMAND fuzz_replay_${t} ${FUZZ_DIR}/regressions/${t}
    ${FUZZ_SEEDS}/${t})
  set_tests_properties(fuzz.replay.${t} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
    FIXTURES_REQUIRED fuzz_seeds)

  if(WASP_FUZZ)
    add_executable(fuzz_${t} ${FUZZ_DIR}/fuzz_${t}.c ${FUZZ_DIR}/fuzz_common.c)
    target_include_directories(fuzz_${t} PRIVATE ${FUZZ_INCLUDES})
    target_compile_options(fuzz_${t} PRIVATE ${WASP_WARNINGS} -fsanitize=fuzzer)
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(fuzz_${t} PRIVATE wasp_static)
    set_target_properties(fuzz_${t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${FUZZ_OUT})
    add_dependencies(fuzz_${t} fuzz_hcseq)
    list(APPEND FUZZ_ALL fuzz_${t})
  endif()
endforeach()

# fuzz_syscall loads a static Linux program (tests/linux/core.cmake builds it).
set(FUZZ_LX_PROG ${CMAKE_CURRENT_BINARY_DIR}/linux_core/counter-glibc)
target_compile_definitions(fuzz_replay_syscall PRIVATE FUZZ_LX_PROG="${FUZZ_LX_PROG}")
add_dependencies(fuzz_replay_syscall linux_core_progs)
if(WASP_FUZZ)
  target_compile_definitions(fuzz_syscall PRIVATE FUZZ_LX_PROG="${FUZZ_LX_PROG}")
  add_dependencies(fuzz_syscall linux_core_progs)
endif()

if(WASP_FUZZ)
  # Coverage feedback from the library too, not only from the targets.
  foreach(l vmm ckpt migrate)
    target_compile_options(wasp_${l}_objs PRIVATE -fsanitize=fuzzer-no-link)
  endforeach()
endif()
add_custom_target(fuzz_all DEPENDS ${FUZZ_ALL})
