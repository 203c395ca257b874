# Static Linux programs compared natively and in a virtine (issue 13,
# tests/linux/linux_test.sh). Included from tests/CMakeLists.txt.
#
# The programs in tests/linux/ are built with the system's compilers
# directly, not as CMake targets: they are what a user would build
# (`gcc -static`, `gcc -static-pie`, `musl-gcc -static`), so none of the
# project's own flags (sanitizers, -Werror, visibility) may reach them.
# Each (case, variant) is its own ctest, linux.CASE.VARIANT; a variant whose
# compiler or library is missing is still registered and skips, saying what
# to install.

set(LX_SRC ${CMAKE_CURRENT_LIST_DIR})
set(LX_BIN ${CMAKE_CURRENT_BINARY_DIR}/linux)
file(MAKE_DIRECTORY ${LX_BIN})

find_program(WASP_LX_GCC NAMES gcc)
find_program(WASP_LX_MUSL_GCC NAMES musl-gcc)
set(WASP_LX_LUA_LIB /usr/lib/x86_64-linux-gnu/liblua5.4.a CACHE FILEPATH "Static Lua 5.4 library for the Linux program tests")
set(WASP_LX_LUA_INCLUDE /usr/include/lua5.4 CACHE PATH "Lua 5.4 headers for the Linux program tests")

# A variant is usable when its compiler links a static hello world here;
# otherwise _lx_skip_<variant> says why.
function(_lx_probe variant)
	set(_src ${LX_BIN}/probe.c)
	file(WRITE ${_src} "#include <stdio.h>\nint main(void) { puts(\"probe\"); return 0; }\n")
	execute_process(COMMAND ${ARGN} ${_src} -o ${LX_BIN}/probe.${variant}
		RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_QUIET)
	if(NOT _rc EQUAL 0)
		set(_lx_skip_${variant} "'${ARGN}' cannot link a static program here" PARENT_SCOPE)
	endif()
	file(REMOVE ${LX_BIN}/probe.${variant})
endfunction()

set(_lx_cc_glibc ${WASP_LX_GCC} -static -O2)
set(_lx_cc_pie ${WASP_LX_GCC} -static-pie -O2)
set(_lx_cc_musl ${WASP_LX_MUSL_GCC} -static -O2)
if(WASP_LX_GCC)
	_lx_probe(glibc ${_lx_cc_glibc})
	_lx_probe(pie ${_lx_cc_pie})
else()
	set(_lx_skip_glibc "gcc is not installed")
	set(_lx_skip_pie "gcc is not installed")
endif()
if(WASP_LX_MUSL_GCC)
	_lx_probe(musl ${_lx_cc_musl})
else()
	set(_lx_skip_musl "musl-gcc is not installed (Debian: apt install musl-tools)")
endif()
foreach(v glibc pie musl)
	if(_lx_skip_${v})
		message(STATUS "Linux program tests, variant ${v}: skipped, ${_lx_skip_${v}}")
	endif()
endforeach()

# The programs; cases in linux_test.sh name which program each runs.
set(LX_PROGRAMS stdio files files2 heap qsort math time random args badopen abort segv exit3 cat hostile inodes
	limits)
set(LX_OUTPUTS)
foreach(v glibc pie musl)
	if(_lx_skip_${v})
		continue()
	endif()
	foreach(p ${LX_PROGRAMS})
		add_custom_command(OUTPUT ${LX_BIN}/${p}.${v}
			COMMAND ${_lx_cc_${v}} -Wall -Wextra -o ${LX_BIN}/${p}.${v} ${LX_SRC}/${p}.c -lm
			DEPENDS ${LX_SRC}/${p}.c ${LX_SRC}/lx_common.h
			COMMENT "${v}: ${p}.c (static)" VERBATIM)
		list(APPEND LX_OUTPUTS ${LX_BIN}/${p}.${v})
	endforeach()
endforeach()

# Lua: Debian's liblua5.4.a is built against glibc, so glibc variants only.
set(_lx_lua_skip "")
if(NOT EXISTS ${WASP_LX_LUA_LIB} OR NOT EXISTS ${WASP_LX_LUA_INCLUDE}/lua.h)
	set(_lx_lua_skip "${WASP_LX_LUA_LIB} is missing (Debian: apt install liblua5.4-dev)")
	message(STATUS "Linux program tests, lua: skipped, ${_lx_lua_skip}")
endif()
foreach(v glibc pie)
	if(_lx_skip_${v} OR _lx_lua_skip)
		continue()
	endif()
	# liblua5.4.a's loadlib.o calls dlopen: its link warning is silenced as
	# the workloads' are (examples/workloads/CMakeLists.txt).
	add_custom_command(OUTPUT ${LX_BIN}/lua.${v}
		COMMAND ${_lx_cc_${v}} -Wall -Wextra -I${WASP_LX_LUA_INCLUDE} -o ${LX_BIN}/lua.${v}
			${LX_SRC}/lua_main.c ${WASP_LX_LUA_LIB} -lm ${WASP_STATIC_LINK_QUIET}
		DEPENDS ${LX_SRC}/lua_main.c
		COMMENT "${v}: lua_main.c with liblua5.4.a (static)" VERBATIM)
	list(APPEND LX_OUTPUTS ${LX_BIN}/lua.${v})
endforeach()
add_custom_target(linux_test_programs ALL DEPENDS ${LX_OUTPUTS})

# case: differential, but hostile, hostile_pair, oom and stack run only in
# virtines (linux_test.sh).
set(LX_CASES stdio stdio_pipe files files2 inodes heap qsort math time random args badopen abort segv exit3 cat cat_pipe cat_eof
	hostile hostile_pair oom stack)
# Each run inside a case is bounded too (linux_test.sh), below the case's
# own TIMEOUT, and scaled with it on a slow host.
set(_lx_scale 1)
if(WASP_TEST_TIMEOUT_SCALE)
	set(_lx_scale ${WASP_TEST_TIMEOUT_SCALE})
endif()
math(EXPR _lx_run_timeout "50 * ${_lx_scale}")
set(_lx_env
	"LX_TIMEOUT=${_lx_run_timeout}"
	"WASP_RUN=$<TARGET_FILE:wasp-run>"
	"LX_BIN=${LX_BIN}"
	"LX_SRC=${LX_SRC}")
foreach(v glibc pie musl)
	set(_cases ${LX_CASES})
	if(NOT v STREQUAL musl)
		list(APPEND _cases lua)
	endif()
	foreach(c ${_cases})
		set(_skip "${_lx_skip_${v}}")
		if(c STREQUAL lua AND NOT _skip)
			set(_skip "${_lx_lua_skip}")
		endif()
		add_test(NAME linux.${c}.${v} COMMAND ${CMAKE_CURRENT_LIST_DIR}/linux_test.sh ${c} ${v})
		set_tests_properties(linux.${c}.${v} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
			ENVIRONMENT "${_lx_env};LX_SKIP=${_skip}")
	endforeach()
endforeach()
