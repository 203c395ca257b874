# test_stream: the checkpoint stream layer (framing, checksum, memory chunks,
# decoder limits, atomic files, inspect). No KVM needed, so nothing skips.
# Included from tests/CMakeLists.txt.
add_executable(test_stream ${CMAKE_CURRENT_LIST_DIR}/test_stream.c)
target_compile_options(test_stream PRIVATE ${WASP_WARNINGS})
target_link_libraries(test_stream PRIVATE wasp_static)

# `test_stream bench` (speeds on 64 MiB) is run by hand, not by ctest.
set(STREAM_CASES crc roundtrip memory memory_subset memory_encoding memory_edges pb_tags pb_mappable
  truncate bitflip hostile short_reads bad_magic varint record_limit record_rules end_checks
  chunk_check applier writer_errors atomic memfd inspect decode_budget)
foreach(c ${STREAM_CASES})
  add_test(NAME stream.${c} COMMAND test_stream ${c})
  set_tests_properties(stream.${c} PROPERTIES TIMEOUT 300)
endforeach()
