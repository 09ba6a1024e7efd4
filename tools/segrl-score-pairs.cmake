# segrl-score --pairs / --agreement (tools/segrl-score-pairs.c): compiled into segrl-score, which is
# defined by segrl-score.cmake. That file sorts after this one, so the attachment is deferred to
# the end of this directory. With libsegrl_torch, segrl-score can also build in-process model
# rewards (--model DIR: likelihood, log_prob, ...).
function(segrl_score_pairs_attach)
  if(TARGET segrl-score)
    target_sources(segrl-score PRIVATE ${PROJECT_SOURCE_DIR}/tools/segrl-score-pairs.c)
    if(TARGET segrl_torch)
      target_link_libraries(segrl-score PRIVATE segrl::torch)
      target_compile_definitions(segrl-score PRIVATE SEGRL_SCORE_WITH_TORCH=1)
    endif()
  endif()
endfunction()
cmake_language(DEFER CALL segrl_score_pairs_attach)
