# tokenizer: the test reads the committed Hugging Face fixtures (JSON, parsed with cJSON) from the
# source tree
if(TARGET test-tokenizer)
  target_compile_definitions(test-tokenizer PRIVATE
    SEGRL_TOK_FIXTURES="${CMAKE_CURRENT_SOURCE_DIR}/fixtures/tokenizer")
  if(TARGET PkgConfig::SEGRL_DEP_libcjson)
    target_link_libraries(test-tokenizer PRIVATE PkgConfig::SEGRL_DEP_libcjson)
  else()
    target_link_libraries(test-tokenizer PRIVATE cjson)
  endif()
endif()
if(TARGET test-tokenizer)
  target_link_libraries(test-tokenizer PRIVATE Threads::Threads) # encodes from several threads
endif()
