# wasp-cc end to end (tests/tools/cc_test.sh, docs/embedding.md). Included from
# tests/CMakeLists.txt; needs wasp-cc, which needs libclang.
if(WASP_HAVE_CC)
  set(CC_CASES virtines no_snapshot separate odd_paths two_files cmake_project plain_file
    bad_variadic bad_funcptr bad_voidptr bad_incomplete bad_ptrmember bad_retptr bad_hostcall
    bad_flexible bad_allow bad_policy libc libc_stdio libc_errors freestanding bad_nolibc)
  # A program wasp-cc links uses libwasp.so; an ASan-built one needs the
  # sanitizer runtime in the program too.
  set(_cc_flags "")
  if(WASP_SANITIZE)
    set(_cc_flags "-fsanitize=address,undefined")
  endif()
  foreach(c ${CC_CASES})
    add_test(NAME cc.${c} COMMAND ${CMAKE_CURRENT_LIST_DIR}/cc_test.sh ${c})
    set_tests_properties(cc.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
      ENVIRONMENT "WASP_CC=$<TARGET_FILE:wasp-cc>;CC_SRC=${CMAKE_CURRENT_LIST_DIR}/cc;CC_INCLUDE=${CMAKE_BINARY_DIR}/include;CC_LIB=$<TARGET_FILE_DIR:wasp_shared>;CC_LIBC=${WASP_CC_LIBC};CC_FLAGS=${_cc_flags}")
  endforeach()
endif()

# wasp-bench-cc (tests/bench/bench_cc.c): the keyword's cost per call,
# built by wasp-cc itself. Not run by ctest: time is measured, not asserted.
if(WASP_HAVE_CC AND NOT WASP_SANITIZE)
  set(_bench_cc ${CMAKE_BINARY_DIR}/bench/wasp-bench-cc)
  add_custom_command(OUTPUT ${_bench_cc}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/bench
    COMMAND $<TARGET_FILE:wasp-cc> -O2 -Wall -Wextra -Werror
            ${CMAKE_SOURCE_DIR}/tests/bench/bench_cc.c -o ${_bench_cc}
    DEPENDS wasp-cc wasp_shared wasp_guest_rt ${CMAKE_SOURCE_DIR}/tests/bench/bench_cc.c
            ${CMAKE_SOURCE_DIR}/vmm/virtine.h
    COMMENT "wasp-cc bench_cc.c")
  add_custom_target(wasp-bench-cc ALL DEPENDS ${_bench_cc})
endif()
