# tests/selfreward.cmake — the self-reward area (included by tests/CMakeLists.txt): test-selfreward
# (IGPO, majority vote, pairwise accuracy, rank correlation, STARC-style distance; label cpu).
segrl_test(test-selfreward cpu)
