# wasp-bench-http: an HTTP/1.1 echo server whose handler runs natively or
# in a virtine per request (http_echo.c through a pool), against a load
# generator in the same program; the floor comes from bench_floor.c.
# Included from tests/bench/CMakeLists.txt; its runs are in the bench and
# bench-quick targets there.
wasp_add_virtine(http_echo SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/http_echo.c
  INCLUDE_DIRECTORIES ${CMAKE_CURRENT_SOURCE_DIR}
  DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/http_echo.h)

add_executable(wasp-bench-http bench_http.c bench_floor.c)
target_compile_options(wasp-bench-http PRIVATE ${WASP_WARNINGS})
target_compile_definitions(wasp-bench-http PRIVATE WASP_BENCH_HTTP_IMAGE="${http_echo_IMAGE}")
target_link_libraries(wasp-bench-http PRIVATE wasp_static Threads::Threads)
add_dependencies(wasp-bench-http virtine_http_echo)

# 100 requests in each mode, every answer checked; no timing.
add_test(NAME bench.http_selftest COMMAND wasp-bench-http --selftest)
set_tests_properties(bench.http_selftest PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
