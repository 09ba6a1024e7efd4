# Tests of the ATen bridge (label torch), built when the segrl_torch target exists: C programs
# that use only the C headers (segrl/torch.h), the model fixtures of tests/fixtures/model/, and
# the generation benchmark's smoke run.
if(TARGET segrl_torch)
  foreach(t tensor model generate)
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test-torch-${t}.c)
      add_executable(test-torch-${t} test-torch-${t}.c)
      target_link_libraries(test-torch-${t} PRIVATE segrl::torch segrl::segrl m)
      target_include_directories(test-torch-${t} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
      target_compile_options(test-torch-${t} PRIVATE -Wall -Wextra -Werror)
      target_compile_definitions(test-torch-${t} PRIVATE
        SEGRL_FIXTURES_DIR="${CMAKE_CURRENT_SOURCE_DIR}/fixtures/model")
      add_test(NAME test-torch-${t} COMMAND test-torch-${t})
      set_tests_properties(test-torch-${t} PROPERTIES LABELS torch SKIP_RETURN_CODE 77
        TIMEOUT 600)
    endif()
  endforeach()
  # the tiny-model maker writes a model directory (tokenizer trained on README.md), which the
  # generation benchmark then loads and samples from
  if(TARGET segrl-make-tiny-model)
    add_test(NAME tiny-model-smoke
      COMMAND segrl-make-tiny-model --out ${PROJECT_BINARY_DIR}/tiny-model-smoke
              --corpus ${PROJECT_SOURCE_DIR}/README.md --vocab 320 --layers 2 --hidden 64
              --heads 4 --kv-heads 2 --seed 3)
    set_tests_properties(tiny-model-smoke PROPERTIES LABELS torch
      FIXTURES_SETUP segrl_tiny_model)
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench-generate.c)
      add_test(NAME tiny-model-generate
        COMMAND segrl-bench generate --small --reps 1 --device cpu
                --model ${PROJECT_BINARY_DIR}/tiny-model-smoke)
      set_tests_properties(tiny-model-generate PROPERTIES LABELS torch TIMEOUT 300
        FIXTURES_REQUIRED segrl_tiny_model)
    endif()
  endif()
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/bench/bench-generate.c)
    add_test(NAME bench-generate-smoke
      COMMAND segrl-bench generate --small --reps 2
              --json ${PROJECT_BINARY_DIR}/bench-generate-smoke.json)
    set_tests_properties(bench-generate-smoke PROPERTIES LABELS torch TIMEOUT 300
      FIXTURES_SETUP segrl_bench_generate_json)
    find_package(Python3 COMPONENTS Interpreter QUIET)
    if(Python3_Interpreter_FOUND)
      add_test(NAME bench-generate-smoke-json
        COMMAND ${Python3_EXECUTABLE} -m json.tool ${PROJECT_BINARY_DIR}/bench-generate-smoke.json)
      set_tests_properties(bench-generate-smoke-json PROPERTIES LABELS torch
        FIXTURES_REQUIRED segrl_bench_generate_json)
    endif()
  endif()
endif()
