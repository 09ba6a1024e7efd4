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

# test-train-dist: the trainer data-parallel (issue 9) — mpirun with 2 and 3 processes, a resume
# on another process count and the torchrun-style launch end with one process's parameters; a
# rank that leaves makes the others stop with an error (tests/test-train-dist.sh)
if(TARGET segrl-gsm8k AND TARGET segrl_dist AND TARGET test-dist-launch)
  add_executable(st-diff st-diff.c)
  target_link_libraries(st-diff PRIVATE segrl::segrl m)
  target_compile_options(st-diff PRIVATE -Wall -Wextra -Werror)
  if(SEGRL_DIST_ORTE)
    set(SEGRL_TRAIN_DIST_ORTE 1)
  else()
    set(SEGRL_TRAIN_DIST_ORTE 0)
  endif()
  add_test(NAME test-train-dist
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/test-train-dist.sh $<TARGET_FILE:segrl-gsm8k>
            ${CMAKE_CURRENT_BINARY_DIR}/train-dist ${MPIEXEC_EXECUTABLE}
            $<TARGET_FILE:test-dist-launch> $<TARGET_FILE:st-diff> ${SEGRL_TRAIN_DIST_ORTE})
  set_tests_properties(test-train-dist PROPERTIES LABELS torch TIMEOUT 600)
endif()
