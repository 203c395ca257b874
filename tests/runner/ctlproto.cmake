# The control socket's line format (migrate/control_proto.c), both halves
# at once: every message kind formatted, parsed back and compared field by
# field, exact lines for the wire text, malformed lines refused. No KVM.
# Included from tests/CMakeLists.txt.
add_executable(test_ctlproto ${CMAKE_CURRENT_LIST_DIR}/test_ctlproto.c)
target_include_directories(test_ctlproto PRIVATE ${CMAKE_SOURCE_DIR}/migrate)
target_compile_options(test_ctlproto PRIVATE ${WASP_WARNINGS})
target_link_libraries(test_ctlproto PRIVATE wasp_static)
set(CTLPROTO_CASES framing error ping checkpoint_request checkpoint_reply migrate_request
  progress migrate_reply)
foreach(c ${CTLPROTO_CASES})
  add_test(NAME ctlproto.${c} COMMAND test_ctlproto ${c})
  set_tests_properties(ctlproto.${c} PROPERTIES TIMEOUT 60)
endforeach()
