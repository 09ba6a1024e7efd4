# tests/reward.cmake — the reward area's extra tests (included by tests/CMakeLists.txt):
#   the example plugin (examples/reward-plugin) built as a shared object, and a copy claiming ABI
#   version 999; test-reward-remote loads both and runs the HTTP reward against its own local server;
#   the segrl-score smoke test on a generated JSONL file.
# test-reward (made by tests/CMakeLists.txt) runs several caller threads
target_link_libraries(test-reward PRIVATE Threads::Threads)

set(SEGRL_REWARD_PLUGIN_SRC ${PROJECT_SOURCE_DIR}/examples/reward-plugin/keyword_reward.c)
add_library(keyword_reward_plugin MODULE ${SEGRL_REWARD_PLUGIN_SRC})
add_library(keyword_reward_plugin_bad_abi MODULE ${SEGRL_REWARD_PLUGIN_SRC})
target_compile_definitions(keyword_reward_plugin_bad_abi PRIVATE KEYWORD_PLUGIN_ABI=999)
foreach(t keyword_reward_plugin keyword_reward_plugin_bad_abi)
  target_link_libraries(${t} PRIVATE segrl::segrl)
  target_compile_options(${t} PRIVATE -Wall -Wextra -Werror)
endforeach()

add_executable(test-reward-remote test-reward-remote.c)
target_link_libraries(test-reward-remote PRIVATE segrl::segrl cjson Threads::Threads m)
target_include_directories(test-reward-remote PRIVATE ${PROJECT_SOURCE_DIR}/tests)
target_compile_options(test-reward-remote PRIVATE -Wall -Wextra -Werror)
target_compile_definitions(test-reward-remote PRIVATE
  PLUGIN_PATH="$<TARGET_FILE:keyword_reward_plugin>"
  PLUGIN_BAD_ABI_PATH="$<TARGET_FILE:keyword_reward_plugin_bad_abi>"
  SEGRL_LIB_PATH="$<TARGET_FILE:segrl>")
add_dependencies(test-reward-remote keyword_reward_plugin keyword_reward_plugin_bad_abi)
add_test(NAME test-reward-remote COMMAND test-reward-remote)
set_tests_properties(test-reward-remote PROPERTIES LABELS cpu TIMEOUT 60)

if(TARGET segrl-score)
  add_test(NAME test-segrl-score
    COMMAND ${CMAKE_COMMAND} -DSCORE=$<TARGET_FILE:segrl-score>
            -DWORK=${CMAKE_CURRENT_BINARY_DIR}/segrl-score-smoke
            -P ${PROJECT_SOURCE_DIR}/tests/fixtures/reward/score_smoke.cmake)
  set_tests_properties(test-segrl-score PROPERTIES LABELS cpu TIMEOUT 120)
endif()
