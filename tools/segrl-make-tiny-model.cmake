# segrl-make-tiny-model: a random-initialized Llama/Qwen2 model directory (config.json,
# model.safetensors, tokenizer.json) for tests and the CPU demo. Needs the ATen bridge.
if(TARGET segrl_torch)
  add_executable(segrl-make-tiny-model ${CMAKE_CURRENT_SOURCE_DIR}/segrl-make-tiny-model.c)
  target_link_libraries(segrl-make-tiny-model PRIVATE segrl::torch segrl::segrl)
  target_compile_options(segrl-make-tiny-model PRIVATE -Wall -Wextra -Werror)
  install(TARGETS segrl-make-tiny-model RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
