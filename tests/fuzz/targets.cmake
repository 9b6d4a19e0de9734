# CONSENT_FUZZ_TARGETS: the target names listed in tests/fuzz/targets.txt.
file(STRINGS "${CMAKE_CURRENT_LIST_DIR}/targets.txt" _fuzz_lines REGEX "^fuzz_")
set(CONSENT_FUZZ_TARGETS "")
foreach(_line IN LISTS _fuzz_lines)
  string(REGEX MATCH "^[a-z_]+" _name "${_line}")
  list(APPEND CONSENT_FUZZ_TARGETS "${_name}")
endforeach()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${CMAKE_CURRENT_LIST_DIR}/targets.txt")
