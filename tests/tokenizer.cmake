# tokenizer: the test reads the committed Hugging Face fixtures from the source tree
if(TARGET test-tokenizer)
  target_compile_definitions(test-tokenizer PRIVATE
    SEGRL_TOK_FIXTURES="${CMAKE_CURRENT_SOURCE_DIR}/fixtures/tokenizer")
endif()
