# tests/train.cmake — the example trainers end to end (label torch; built only with the ATen bridge):
#   test-train-estimators  a 2-step run of every estimator on a tiny model (every path executes,
#                          and each one's update moves the weights)
#   test-train-resume      a run killed after a checkpoint and resumed ends with the same weights
#                          and per-step metrics, bit for bit, as an uninterrupted run
if(TARGET segrl-gsm8k)
  foreach(t estimators resume)
    add_test(NAME test-train-${t}
      COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/test-train.sh ${t} $<TARGET_FILE:segrl-gsm8k>
              ${CMAKE_CURRENT_BINARY_DIR}/train-${t} ${PROJECT_SOURCE_DIR})
    set_tests_properties(test-train-${t} PROPERTIES LABELS torch TIMEOUT 300)
  endforeach()
endif()
