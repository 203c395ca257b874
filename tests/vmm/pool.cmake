# The virtine pool, snapshot starts and wasp_call() (docs/pool.md):
# tests/vmm/test_pool.c with its guest tests/guests/pool_guest.c and
# tests/asm/pool_count.asm (assembled with the other tests/asm images).
# The example guest/examples/pool_fib.c is built here too, for the
# benchmark (tests/bench/bench_pool.c).
wasp_add_virtine(pool_guest SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/guests/pool_guest.c)
wasp_add_virtine(pool_fib SOURCES ${CMAKE_SOURCE_DIR}/guest/examples/pool_fib.c)

add_executable(test_pool ${CMAKE_CURRENT_LIST_DIR}/test_pool.c)
target_compile_options(test_pool PRIVATE ${WASP_WARNINGS})
target_compile_definitions(test_pool PRIVATE
  POOL_GUEST_IMAGE="${pool_guest_IMAGE}"
  ARGRET_IMAGE="${argret_IMAGE}"
  POOL_FIB_IMAGE="${pool_fib_IMAGE}"
  ASM_DIR="${ASM_OUT}")
target_link_libraries(test_pool PRIVATE wasp_static Threads::Threads)
add_dependencies(test_pool test_asm_images virtine_pool_guest virtine_argret virtine_pool_fib)

set(POOL_CASES calls secret fast_arg no_snapshot threads faults real_mode no_snapshot_point
  destroy_outstanding host_state bad_config)
foreach(c ${POOL_CASES})
  add_test(NAME pool.${c} COMMAND test_pool ${c})
  set_tests_properties(pool.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endforeach()
