# reliability: the bad-input table over the public C API (tests/test-badinput.c, docs/reliability.md)
segrl_test(test-badinput cpu)
target_compile_definitions(test-badinput PRIVATE
  SEGRL_BADINPUT_FIXTURES="${CMAKE_CURRENT_SOURCE_DIR}/fixtures")
# one row asks for an absurd allocation (a rollout of 2 x 2^31 samples) and expects
# SEGRL_ERR_ALLOC: under AddressSanitizer malloc must return NULL instead of aborting
set_tests_properties(test-badinput PROPERTIES ENVIRONMENT
  "ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1:abort_on_error=1")
