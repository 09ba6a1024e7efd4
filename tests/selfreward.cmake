# tests/selfreward.cmake — the self-reward area (included by tests/CMakeLists.txt): test-selfreward
# (IGPO, majority vote, pairwise accuracy, rank correlation, STARC-style distance; label cpu).
segrl_test(test-selfreward cpu)

# segrl-score --pairs and --agreement (tools/segrl-score-pairs.c) on hand-written files:
#   pairs: GSM8K scores chosen/rejected; easy: 3 of 3 right; hard: wrong (chosen is wrong), tie
#   (both right: counted as wrong, 1 tie), right -> 1 of 3; all 4 of 6
#   agreement: GSM8K vs GSM8K with correct 2, incorrect -1 (a positive affine map): rank
#   correlations 1, STARC-style distance 0
if(TARGET segrl-score)
  add_test(NAME test-segrl-score-pairs
    COMMAND segrl-score --pairs ${PROJECT_SOURCE_DIR}/tests/fixtures/selfreward/pairs.jsonl
            --reward gsm8k --threads 1)
  set_tests_properties(test-segrl-score-pairs PROPERTIES LABELS cpu TIMEOUT 60
    PASS_REGULAR_EXPRESSION "easy +1\\.000000 +3/3 +0\n.*hard +0\\.333333 +1/3 +1\n.*accuracy 0\\.666667")
  add_test(NAME test-segrl-score-agreement
    COMMAND segrl-score --agreement ${PROJECT_SOURCE_DIR}/tests/fixtures/selfreward/samples.jsonl
            --reward gsm8k --reward2 gsm8k --options2 "{\"correct\": 2, \"incorrect\": -1}"
            --threads 1)
  set_tests_properties(test-segrl-score-agreement PROPERTIES LABELS cpu TIMEOUT 60
    PASS_REGULAR_EXPRESSION "spearman 1\\.000000\nkendall 1\\.000000\nstarc 0\\.000000")
endif()
