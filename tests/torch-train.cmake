# Tests of the ATen bridge's training utilities and autograd losses (label torch): built only when
# libsegrl_torch is (CMake found Torch).
if(TARGET segrl_torch)
  foreach(t test-torch-train test-torch-train-model)
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${t}.c)
      add_executable(${t} ${t}.c)
      target_link_libraries(${t} PRIVATE segrl::torch m)
      target_include_directories(${t} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
      target_compile_options(${t} PRIVATE -Wall -Wextra -Werror)
      add_test(NAME ${t} COMMAND ${t})
      set_tests_properties(${t} PROPERTIES LABELS torch SKIP_RETURN_CODE 77)
    endif()
  endforeach()
endif()

# the autograd wrappers against libtorch's own autograd: C++, since the reference formulas are
# written with ATen ops (the wrappers themselves are called through the C API)
if(TARGET segrl_torch AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/test-torch-autograd.cpp)
  find_package(Torch QUIET)
  enable_language(CXX)
  add_executable(test-torch-autograd test-torch-autograd.cpp)
  set_target_properties(test-torch-autograd PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
  target_link_libraries(test-torch-autograd PRIVATE segrl::torch ${TORCH_LIBRARIES})
  target_include_directories(test-torch-autograd PRIVATE ${PROJECT_SOURCE_DIR}/tests
                             ${PROJECT_SOURCE_DIR}/torch)
  target_compile_options(test-torch-autograd PRIVATE -Wall -Wextra)
  add_test(NAME test-torch-autograd COMMAND test-torch-autograd)
  set_tests_properties(test-torch-autograd PROPERTIES LABELS torch SKIP_RETURN_CODE 77)
endif()
