# wasp-bench-apps: the Wasp paper's application experiments on the
# workloads of examples/workloads (Fig. 14: JavaScript; Sec. 6.4: crypto)
# and a compute-bound Lua script against its native run. Included from
# tests/bench/CMakeLists.txt after examples/workloads, whose
# WASP_WORKLOAD_<name> (empty when its package is missing, the reason in
# WASP_WORKLOAD_<name>_SKIP) say which parts can be built; a part that
# cannot says why when the program runs.
add_executable(wasp-bench-apps bench_apps.c bench_floor.c bench_rows.c)
target_compile_options(wasp-bench-apps PRIVATE ${WASP_WARNINGS})
target_link_libraries(wasp-bench-apps PRIVATE wasp_static Threads::Threads)
set(_apps_defs WASP_BENCH_WASP_RUN="$<TARGET_FILE:wasp-run>")
add_dependencies(wasp-bench-apps wasp-run)

# Fig. 14. The virtine rows run fig14_js, a static program built as the
# workloads are (the system's gcc, none of the project's flags) with the
# same duktape.o; the native row links that duktape.o into this program.
if(WASP_WORKLOAD_js)
  set(WASP_BENCH_FIG14_JS ${CMAKE_CURRENT_BINARY_DIR}/fig14_js)
  add_custom_command(OUTPUT ${WASP_BENCH_FIG14_JS}
    COMMAND ${WL_CC} -static -O2 -Wall -Wextra -I${CMAKE_SOURCE_DIR}/guest -I${WL_DUKTAPE_SRC}
            -o ${WASP_BENCH_FIG14_JS} ${CMAKE_CURRENT_SOURCE_DIR}/fig14_js.c
            ${WASP_WORKLOAD_DUKTAPE_OBJ} -lm
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/fig14_js.c ${CMAKE_CURRENT_SOURCE_DIR}/fig14_js.h
            ${WASP_WORKLOAD_DUKTAPE_OBJ} ${CMAKE_SOURCE_DIR}/guest/wasp_linux.h
            ${CMAKE_SOURCE_DIR}/guest/wasp_abi.h
    COMMENT "static program bench/fig14_js (with Duktape)" VERBATIM)
  add_custom_target(bench_fig14_js DEPENDS ${WASP_BENCH_FIG14_JS})
  # duktape.o is made in examples/workloads: build that first.
  add_dependencies(bench_fig14_js workloads)
  add_dependencies(wasp-bench-apps bench_fig14_js)
  target_include_directories(wasp-bench-apps SYSTEM PRIVATE ${WL_DUKTAPE_SRC})
  target_link_libraries(wasp-bench-apps PRIVATE ${WASP_WORKLOAD_DUKTAPE_OBJ} m)
  set_property(TARGET wasp-bench-apps APPEND PROPERTY LINK_DEPENDS ${WASP_WORKLOAD_DUKTAPE_OBJ})
  list(APPEND _apps_defs WASP_BENCH_HAVE_DUKTAPE=1 WASP_BENCH_FIG14_JS="${WASP_BENCH_FIG14_JS}")
else()
  list(APPEND _apps_defs WASP_BENCH_HAVE_DUKTAPE=0 WASP_BENCH_JS_SKIP="${WASP_WORKLOAD_js_SKIP}")
endif()

# Sec. 6.4: the crypto workload, and libcrypto here for the native rows.
pkg_check_modules(BENCH_LIBCRYPTO IMPORTED_TARGET libcrypto>=3.0)
if(WASP_WORKLOAD_crypto AND BENCH_LIBCRYPTO_FOUND)
  target_link_libraries(wasp-bench-apps PRIVATE PkgConfig::BENCH_LIBCRYPTO)
  add_dependencies(wasp-bench-apps workloads)
  list(APPEND _apps_defs WASP_BENCH_HAVE_LIBCRYPTO=1 WASP_BENCH_CRYPTO="${WASP_WORKLOAD_crypto}")
elseif(WASP_WORKLOAD_crypto)
  set(_why "pkg-config finds no libcrypto 3 for the native rows; Debian: apt install libssl-dev")
  list(APPEND _apps_defs WASP_BENCH_HAVE_LIBCRYPTO=0 WASP_BENCH_CRYPTO_SKIP="${_why}")
else()
  list(APPEND _apps_defs WASP_BENCH_HAVE_LIBCRYPTO=0 WASP_BENCH_CRYPTO_SKIP="${WASP_WORKLOAD_crypto_SKIP}")
endif()

# Lua: the workload itself, the script in a directory of its own (the
# virtine's sandbox).
set(WASP_BENCH_LUA_DIR ${CMAKE_CURRENT_BINARY_DIR}/apps)
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/lua_compute.lua ${WASP_BENCH_LUA_DIR}/lua_compute.lua COPYONLY)
list(APPEND _apps_defs WASP_BENCH_LUA="${WASP_WORKLOAD_lua}" WASP_BENCH_LUA_DIR="${WASP_BENCH_LUA_DIR}"
  WASP_BENCH_LUA_SKIP="${WASP_WORKLOAD_lua_SKIP}")
if(WASP_WORKLOAD_lua)
  add_dependencies(wasp-bench-apps workloads)
endif()
target_compile_definitions(wasp-bench-apps PRIVATE ${_apps_defs})
