# tests/examples.cmake — tests of the example trainers' shared pieces (examples/common) and of the
# synthetic dataset generator. Included by tests/CMakeLists.txt; needs examples/ to be built.
if(TARGET segrl_examples_common)
  add_executable(test-examples ${CMAKE_CURRENT_SOURCE_DIR}/test-examples.c)
  target_link_libraries(test-examples PRIVATE segrl_examples_common m)
  target_include_directories(test-examples PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_options(test-examples PRIVATE -Wall -Wextra -Werror)
  target_compile_definitions(test-examples PRIVATE SEGRL_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  add_test(NAME test-examples COMMAND test-examples WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(test-examples PROPERTIES LABELS cpu)

  # the generator program end to end: runs, and writes the same bytes twice for one seed
  add_test(NAME test-gsm8k-synth
    COMMAND ${CMAKE_COMMAND} -DSYNTH=$<TARGET_FILE:gsm8k-synth>
            -DWORK=${CMAKE_CURRENT_BINARY_DIR}/gsm8k-synth-test
            -P ${PROJECT_SOURCE_DIR}/examples/gsm8k-synth/check.cmake)
  set_tests_properties(test-gsm8k-synth PROPERTIES LABELS cpu)
endif()
