# tests/likelihood.cmake — likelihood rewards (torch/likelihood.cpp, include/segrl/likelihood.h):
# test-torch-likelihood compares them with direct forward passes of a tiny random model (label torch).
if(TARGET segrl_torch)
  add_executable(test-torch-likelihood test-torch-likelihood.c)
  target_link_libraries(test-torch-likelihood PRIVATE segrl::torch segrl::segrl m)
  target_include_directories(test-torch-likelihood PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_compile_options(test-torch-likelihood PRIVATE -Wall -Wextra -Werror)
  add_test(NAME test-torch-likelihood COMMAND test-torch-likelihood)
  set_tests_properties(test-torch-likelihood PROPERTIES LABELS torch SKIP_RETURN_CODE 77 TIMEOUT 600)
endif()
