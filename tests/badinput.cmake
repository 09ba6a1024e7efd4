# reliability: the bad-input table over the public C API (tests/test-badinput.c, docs/reliability.md)
segrl_test(test-badinput cpu)
target_compile_definitions(test-badinput PRIVATE
  SEGRL_BADINPUT_FIXTURES="${CMAKE_CURRENT_SOURCE_DIR}/fixtures")
