# The workloads (examples/workloads, docs/workloads.md): JavaScript, Lua,
# SQLite and crypto virtines, compared byte for byte with the same
# binaries run natively. Included from tests/CMakeLists.txt after
# linux.cmake (it reuses linux_test.sh's differential runs and
# linux_ckpt_test.sh's checkpoint and migration cases).
#
#   workload.CASE            linux_test.sh CASE workload: a script run
#                            natively and in a virtine
#   workload.pool.CASE       workloads_test.sh: pools, parked calls, AES
#                            chunks, SQLite checkpointed, crashed, restored
#   linux.ckpt.CASE.{lua,js} linux_ckpt_test.sh: a Lua and a JavaScript
#                            program checkpointed and migrated mid-run

set(_wl_dir ${CMAKE_BINARY_DIR}/examples)
set(_wl_src ${CMAKE_CURRENT_LIST_DIR})
set(_wl_tools
	"WASP_RUN=$<TARGET_FILE:wasp-run>"
	"WASP_CKPT=$<TARGET_FILE:wasp-ckpt>"
	"WASP_RESTORE=$<TARGET_FILE:wasp-restore>"
	"WASP_MIGRATE=$<TARGET_FILE:wasp-migrate>"
	"WASP_INSPECT=$<TARGET_FILE:wasp-inspect>"
	"WL_DIR=${_wl_dir}"
	"WL_SRC=${_wl_src}")

# The workload each case needs (its skip reason when it was not built).
set(_wl_of_js js)
set(_wl_of_js_error js)
set(_wl_of_lua_app lua)
set(_wl_of_lua_error lua)
set(_wl_of_sqlite sqlite)
set(_wl_of_sqlite_stdin sqlite)
set(_wl_of_sqlite_error sqlite)
set(_wl_of_crypto_sha crypto)
set(_wl_of_crypto_aes crypto)
set(_wl_of_crypto_aes_d crypto)
foreach(c js js_error lua_app lua_error sqlite sqlite_stdin sqlite_error crypto_sha crypto_aes crypto_aes_d)
	set(_w ${_wl_of_${c}})
	add_test(NAME workload.${c} COMMAND ${CMAKE_CURRENT_LIST_DIR}/../linux/linux_test.sh ${c} workload)
	set_tests_properties(workload.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
		ENVIRONMENT "${_lx_env};${_wl_tools};WL_SKIP=${WASP_WORKLOAD_${_w}_SKIP}")
endforeach()

set(_wl_of_serve_js js)
set(_wl_of_park_js js)
set(_wl_of_serve_lua lua)
set(_wl_of_serve_sqlite sqlite)
set(_wl_of_chunks crypto)
foreach(c serve_js park_js serve_lua serve_sqlite chunks sqlite_crash_none sqlite_crash_commits
		sqlite_crash_hot sqlite_copy sqlite_migrate)
	set(_w ${_wl_of_${c}})
	if(NOT _w)
		set(_w sqlite)
	endif()
	add_test(NAME workload.pool.${c} COMMAND ${CMAKE_CURRENT_LIST_DIR}/workloads_test.sh ${c})
	set_tests_properties(workload.pool.${c} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180
		ENVIRONMENT "${_wl_tools};WL_SKIP=${WASP_WORKLOAD_${_w}_SKIP}")
endforeach()

foreach(w lua js)
	foreach(c signal_kill every stop migrate netns)
		add_test(NAME linux.ckpt.${c}.${w} COMMAND ${CMAKE_CURRENT_LIST_DIR}/../linux/linux_ckpt_test.sh ${c} ${w})
		set_tests_properties(linux.ckpt.${c}.${w} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 180
			ENVIRONMENT "${_wl_tools};LXC_DIR=${LXC_OUT};WL_SKIP=${WASP_WORKLOAD_${w}_SKIP}")
	endforeach()
endforeach()
