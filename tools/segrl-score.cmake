# segrl-score: grade a JSONL file of {prompt, response, answer} with any segrl reward
# (tools/segrl-score.c; smoke test in tests/reward.cmake).
add_executable(segrl-score ${CMAKE_CURRENT_SOURCE_DIR}/segrl-score.c)
target_link_libraries(segrl-score PRIVATE segrl::segrl cjson)
target_compile_options(segrl-score PRIVATE -Wall -Wextra -Werror)
install(TARGETS segrl-score RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
