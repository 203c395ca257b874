# The build as an embedder sees it: the installed tree compiles and runs
# the examples (install_test.sh), and libwasp.so exports the public
# headers' WASP_API functions and nothing else (exports_test.sh).
# Included from tests/CMakeLists.txt.

# Not in sanitizer builds: an ASan-built libwasp.so cannot be loaded by the
# plain example program.
if(NOT WASP_SANITIZE)
  add_test(NAME install.examples COMMAND ${CMAKE_CURRENT_LIST_DIR}/install_test.sh ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR})
  set_tests_properties(install.examples PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()
list(TRANSFORM WASP_PUBLIC_HEADERS PREPEND ${CMAKE_SOURCE_DIR}/ OUTPUT_VARIABLE _wasp_headers)
add_test(NAME build.exports COMMAND ${CMAKE_CURRENT_LIST_DIR}/exports_test.sh
  $<TARGET_FILE:wasp_shared> ${_wasp_headers})
set_tests_properties(build.exports PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 60)
