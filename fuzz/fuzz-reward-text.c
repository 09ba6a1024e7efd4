/* fuzz-reward-text — GSM8K and MATH answer extraction (segrl_reward_score with the built-in
 * verifiers), LaTeX normalization (segrl_math_normalize) and equivalence
 * (segrl_math_equivalent). Input: response '\0' reference answer. */
#include "fuzz_util.h"

#include <math.h>
#include <segrl/reward.h>

static segrl_reward *g_gsm8k, *g_math;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    segrl_gsm8k_opts go = segrl_gsm8k_defaults();
    go.multi_answer_penalty = 1;
    if (segrl_reward_gsm8k(&go, &g_gsm8k) != SEGRL_OK) abort();
    if (segrl_reward_math(NULL, &g_math) != SEGRL_OK) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *resp, *ans;
    fz_split(data, size, 0, &resp, &ans);
    segrl_reward_sample s = {.prompt = "q", .response = resp, .answer = ans};
    /* no time limit: the verifiers must be linear on their own (libFuzzer's -timeout catches
     * anything that is not) */
    segrl_reward_run run = {.threads = 1, .time_limit_s = -1, .fail_on_error = 1};
    float score = -7;
    segrl_reward_detail det;
    if (segrl_reward_score(g_gsm8k, &s, 1, &run, &score, &det) != SEGRL_OK) abort();
    if (!isfinite(score)) abort();
    if (segrl_reward_score(g_math, &s, 1, &run, &score, &det) != SEGRL_OK) abort();
    if (!isfinite(score)) abort();

    char buf[256];
    size_t caps[] = {1, 7, sizeof buf};
    for (int i = 0; i < 3; i++) {
        memset(buf, 'x', sizeof buf);
        if (segrl_math_normalize(resp, buf, caps[i]) == SEGRL_OK && !memchr(buf, 0, caps[i]))
            abort(); /* not NUL-terminated inside cap */
    }
    int eq = -1;
    if (segrl_math_equivalent(resp, ans, 0, &eq) == SEGRL_OK && eq != 0 && eq != 1) abort();
    free(resp);
    return 0;
}
