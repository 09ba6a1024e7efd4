/* test-selfreward.c — IGPO turn rewards and advantages on a hand-computed three-turn example
 * (padded and packed), majority vote (ties, empty answers, unequal and empty groups, Co-Reward
 * pairing, the reward combinator over the GSM8K extractor, by name), pairwise accuracy on a
 * hand-written pair set, rank correlation and the STARC-style distance. */
#include "harness.h"

#include <segrl/segrl.h>

#define CPU segrl_cpu()
#define V1(p, dt, n) segrl_view_1d((p), (dt), CPU, (n))
#define NEAR(a, b, tol) (fabs((double)(a) - (double)(b)) <= (tol))

// ----------------------------------------------------------------------------
// IGPO

/* Two rollouts of one prompt (one group), padded (2, 8), gamma 0.9, eps 0:
 *   rollout 0: turns [0,2) [2,5) [5,8); p_0 = 0.1, p_1 = 0.2, p_2 = 0.5; outcome 1
 *              r = (0.2 - 0.1, 0.5 - 0.2, 1) = (0.1, 0.3, 1)
 *   rollout 1: turns [0,3) [3,6), tokens 6, 7 padding; p_0 = 0.1, p_1 = 0.05; outcome 0
 *              r = (0.05 - 0.1, 0) = (-0.05, 0)
 * group of 5 rewarded positions: mean = 1.35 / 5 = 0.27; deviations (-0.17, 0.03, 0.73, -0.32,
 * -0.27); sum of squares 0.738; population std = sqrt(0.1476).
 * r~ = deviation / std; A_3 = r~_3, A_2 = r~_2 + 0.9 A_3, A_1 = r~_1 + 0.9 A_2. */
static void test_igpo(void) {
    int64_t off[3] = {0, 3, 5}, st[5] = {0, 2, 5, 0, 3}, en[5] = {2, 5, 8, 3, 6};
    float lp[5] = {logf(0.2f), logf(0.5f), logf(0.9f), logf(0.05f), logf(0.3f)};
    float prior[2] = {logf(0.1f), logf(0.1f)}, outcome[2] = {1.0f, 0.0f};
    float r[5];
    segrl_status s = segrl_igpo_turn_rewards(V1(off, SEGRL_DTYPE_I64, 3), V1(lp, SEGRL_DTYPE_F32, 5),
                                             V1(prior, SEGRL_DTYPE_F32, 2),
                                             V1(outcome, SEGRL_DTYPE_F32, 2), NULL,
                                             V1(r, SEGRL_DTYPE_F32, 5));
    CHECK(s == SEGRL_OK, "turn rewards: %s", segrl_last_error());
    double want_r[5] = {0.1, 0.3, 1.0, -0.05, 0.0};
    h_close_f("igpo turn rewards", r, want_r, 5, 1e-6, 0);

    double sd = sqrt(0.1476);
    double rt[5] = {-0.17 / sd, 0.03 / sd, 0.73 / sd, -0.32 / sd, -0.27 / sd};
    double A[5];
    A[2] = rt[2], A[1] = rt[1] + 0.9 * A[2], A[0] = rt[0] + 0.9 * A[1];
    A[4] = rt[4], A[3] = rt[3] + 0.9 * A[4];
    uint8_t mask[16];
    for (int t = 0; t < 16; t++) mask[t] = t < 14; /* row 1: tokens 6, 7 are padding */
    double want_adv[16], want_tr[16];
    int64_t tok_turn[16];
    for (int i = 0; i < 16; i++) tok_turn[i] = -1, want_adv[i] = 0, want_tr[i] = 0;
    for (int b = 0; b < 2; b++)
        for (int64_t k = off[b]; k < off[b + 1]; k++) {
            for (int64_t t = st[k]; t < en[k]; t++) tok_turn[b * 8 + t] = k, want_adv[b * 8 + t] = A[k];
            want_tr[b * 8 + en[k] - 1] = rt[k];
        }
    (void)tok_turn;
    segrl_segments seg = {V1(off, SEGRL_DTYPE_I64, 3), V1(st, SEGRL_DTYPE_I64, 5),
                          V1(en, SEGRL_DTYPE_I64, 5)};
    int32_t gi[2] = {0, 0};
    segrl_igpo_opts o = segrl_igpo_opts_default();
    o.gamma = 0.9f, o.eps = 0.0f;
    size_t ws_bytes = 0;
    CHECK(segrl_igpo_workspace_size(5, 1, &ws_bytes) == SEGRL_OK && ws_bytes > 0, "ws size");
    double ws_mem[1024];
    segrl_exec ex = {.workspace = ws_mem, .workspace_bytes = sizeof ws_mem};
    float adv[16], tr[16], ta[5];
    for (int i = 0; i < 16; i++) adv[i] = tr[i] = 99.0f;
    segrl_layout pad = segrl_layout_padded();
    s = segrl_igpo_advantages(&pad, segrl_view_2d(mask, SEGRL_DTYPE_U8, CPU, 2, 8), &seg,
                              V1(r, SEGRL_DTYPE_F32, 5), V1(gi, SEGRL_DTYPE_I32, 2), 1, &o, &ex,
                              segrl_view_2d(adv, SEGRL_DTYPE_F32, CPU, 2, 8),
                              segrl_view_2d(tr, SEGRL_DTYPE_F32, CPU, 2, 8),
                              V1(ta, SEGRL_DTYPE_F32, 5));
    CHECK(s == SEGRL_OK, "igpo advantages: %s", segrl_last_error());
    h_close_f("igpo turn advantages", ta, A, 5, 1e-5, 1e-5);
    h_close_f("igpo token advantages", adv, want_adv, 16, 1e-5, 1e-5);
    h_close_f("igpo token rewards", tr, want_tr, 16, 1e-5, 1e-5);
    /* spot values computed by hand: sd = 0.384187, A_3 = 0.73 / sd = 1.900116 */
    CHECK(NEAR(ta[2], 1.900116, 1e-4), "A_3 = %g", ta[2]);
    CHECK(NEAR(ta[4], -0.702780, 1e-4), "A(rollout 1, turn 2) = %g", ta[4]);

    /* packed: the same rollouts without the padding (lengths 8 and 6) give the same values */
    int64_t lay_off[3] = {0, 8, 14};
    segrl_layout packed = segrl_layout_packed(V1(lay_off, SEGRL_DTYPE_I64, 3));
    float padv[14];
    s = segrl_igpo_advantages(&packed, segrl_view_none(), &seg, V1(r, SEGRL_DTYPE_F32, 5),
                              V1(gi, SEGRL_DTYPE_I32, 2), 1, &o, &ex,
                              V1(padv, SEGRL_DTYPE_F32, 14), segrl_view_none(), segrl_view_none());
    CHECK(s == SEGRL_OK, "packed: %s", segrl_last_error());
    double want_p[14];
    for (int t = 0; t < 8; t++) want_p[t] = want_adv[t];
    for (int t = 0; t < 6; t++) want_p[8 + t] = want_adv[8 + t];
    h_close_f("igpo packed advantages", padv, want_p, 14, 1e-5, 1e-5);

    /* two groups of one rollout each: each group normalized alone */
    int32_t gi2[2] = {0, 1};
    s = segrl_igpo_advantages(&pad, segrl_view_2d(mask, SEGRL_DTYPE_U8, CPU, 2, 8), &seg,
                              V1(r, SEGRL_DTYPE_F32, 5), V1(gi2, SEGRL_DTYPE_I32, 2), 2, &o, &ex,
                              segrl_view_2d(adv, SEGRL_DTYPE_F32, CPU, 2, 8), segrl_view_none(),
                              V1(ta, SEGRL_DTYPE_F32, 5));
    CHECK(s == SEGRL_OK, "two groups: %s", segrl_last_error());
    {   /* rollout 1 alone: r = (-0.05, 0), mean -0.025, std 0.025: r~ = (-1, 1); A = (-1 + 0.9, 1) */
        double w[5];
        double m0 = 1.4 / 3, d0[3] = {0.1 - m0, 0.3 - m0, 1.0 - m0};
        double s0 = sqrt((d0[0] * d0[0] + d0[1] * d0[1] + d0[2] * d0[2]) / 3);
        w[2] = d0[2] / s0, w[1] = d0[1] / s0 + 0.9 * w[2], w[0] = d0[0] / s0 + 0.9 * w[1];
        w[4] = 1.0, w[3] = -1.0 + 0.9;
        h_close_f("igpo per-group advantages", ta, w, 5, 1e-4, 1e-4);
    }

    /* errors: no workspace, group index out of range, a span past the row; outputs untouched */
    for (int i = 0; i < 5; i++) ta[i] = 7.0f;
    segrl_exec nows = {0};
    s = segrl_igpo_advantages(&pad, segrl_view_none(), &seg, V1(r, SEGRL_DTYPE_F32, 5),
                              V1(gi, SEGRL_DTYPE_I32, 2), 1, &o, &nows,
                              segrl_view_2d(adv, SEGRL_DTYPE_F32, CPU, 2, 8), segrl_view_none(),
                              V1(ta, SEGRL_DTYPE_F32, 5));
    CHECK(s == SEGRL_ERR_WORKSPACE, "no workspace: %d", (int)s);
    s = segrl_igpo_advantages(&pad, segrl_view_none(), &seg, V1(r, SEGRL_DTYPE_F32, 5),
                              V1(gi2, SEGRL_DTYPE_I32, 2), 1, &o, &ex,
                              segrl_view_2d(adv, SEGRL_DTYPE_F32, CPU, 2, 8), segrl_view_none(),
                              V1(ta, SEGRL_DTYPE_F32, 5));
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "group_index"), "bad group: %s",
          segrl_last_error());
    en[2] = 9;
    s = segrl_igpo_advantages(&pad, segrl_view_none(), &seg, V1(r, SEGRL_DTYPE_F32, 5),
                              V1(gi, SEGRL_DTYPE_I32, 2), 1, &o, &ex,
                              segrl_view_2d(adv, SEGRL_DTYPE_F32, CPU, 2, 8), segrl_view_none(),
                              V1(ta, SEGRL_DTYPE_F32, 5));
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "segments->end"), "bad span: %s",
          segrl_last_error());
    en[2] = 8;
    CHECK(ta[0] == 7.0f && ta[4] == 7.0f, "outputs untouched on failure");
    lp[1] = NAN;
    s = segrl_igpo_turn_rewards(V1(off, SEGRL_DTYPE_I64, 3), V1(lp, SEGRL_DTYPE_F32, 5),
                                V1(prior, SEGRL_DTYPE_F32, 2), V1(outcome, SEGRL_DTYPE_F32, 2), NULL,
                                V1(r, SEGRL_DTYPE_F32, 5));
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "turn_logp_mean"), "NaN: %s",
          segrl_last_error());
    lp[1] = logf(0.5f);
    /* per-turn vectors are host memory: a CUDA view is refused by name */
    s = segrl_igpo_turn_rewards(V1(off, SEGRL_DTYPE_I64, 3), V1(lp, SEGRL_DTYPE_F32, 5),
                                V1(prior, SEGRL_DTYPE_F32, 2),
                                segrl_view_1d(outcome, SEGRL_DTYPE_F32, segrl_cuda(0), 2), NULL,
                                V1(r, SEGRL_DTYPE_F32, 5));
    CHECK(s == SEGRL_ERR_UNSUPPORTED && strstr(segrl_last_error(), "outcome"), "cuda: %s",
          segrl_last_error());
    /* a rollout without turns: its outcome is unused, the others unchanged */
    int64_t off0[4] = {0, 3, 3, 5};
    float prior3[3] = {logf(0.1f), 0.0f, logf(0.1f)}, out3[3] = {1.0f, 5.0f, 0.0f}, r3[5];
    s = segrl_igpo_turn_rewards(V1(off0, SEGRL_DTYPE_I64, 4), V1(lp, SEGRL_DTYPE_F32, 5),
                                V1(prior3, SEGRL_DTYPE_F32, 3), V1(out3, SEGRL_DTYPE_F32, 3), NULL,
                                V1(r3, SEGRL_DTYPE_F32, 5));
    CHECK(s == SEGRL_OK, "empty rollout: %s", segrl_last_error());
    h_close_f("igpo with a turnless rollout", r3, want_r, 5, 1e-6, 0);
}

// ----------------------------------------------------------------------------
// majority vote

static void test_vote(void) {
    /* groups of sizes 3, 0, 5, 2 */
    const char *ans[10] = {"12", "12", "7", /* g0: majority 12 */
                           "5", "6", "", "6", "5", /* g2: tie 5 / 6, one empty */
                           "", NULL}; /* g3: no answers */
    int64_t goff[5] = {0, 3, 3, 8, 10};
    float r[10];
    int64_t maj[4];
    segrl_vote_opts o = segrl_vote_opts_default();
    o.no_answer = -1.0f, o.miss = -0.5f;
    segrl_status s = segrl_majority_vote(ans, 10, goff, 4, NULL, &o, r, maj);
    CHECK(s == SEGRL_OK, "vote: %s", segrl_last_error());
    double want[10] = {1, 1, 0, 1, 0, -1, 0, 1, -1, -1};
    h_close_f("vote (tie: first)", r, want, 10, 0, 0);
    CHECK(maj[0] == 0 && maj[1] == -1 && maj[2] == 3 && maj[3] == -1, "majority %lld %lld %lld %lld",
          (long long)maj[0], (long long)maj[1], (long long)maj[2], (long long)maj[3]);
    o.tie = SEGRL_VOTE_TIE_NONE;
    s = segrl_majority_vote(ans, 10, goff, 4, NULL, &o, r, maj);
    double want_none[10] = {1, 1, 0, -0.5, -0.5, -1, -0.5, -0.5, -1, -1};
    h_close_f("vote (tie: none)", r, want_none, 10, 0, 0);
    CHECK(s == SEGRL_OK && maj[2] == -1, "tie none: majority %lld", (long long)maj[2]);
    /* min_share: 2 of 3 votes is below 0.7 */
    o.tie = SEGRL_VOTE_TIE_FIRST, o.min_share = 0.7f;
    s = segrl_majority_vote(ans, 3, goff, 1, NULL, &o, r, maj);
    CHECK(s == SEGRL_OK && r[0] == -0.5f && r[2] == -0.5f && maj[0] == -1, "min_share");
    /* Co-Reward: g0 judged by g2's majority ("5") and g2 by g0's ("12") */
    o = segrl_vote_opts_default();
    int64_t judge[4] = {2, 1, 0, 3};
    s = segrl_majority_vote(ans, 10, goff, 4, judge, &o, r, NULL);
    double want_pair[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    h_close_f("vote (paired)", r, want_pair, 10, 0, 0);
    const char *ans2[4] = {"5", "12", "12", "5"};
    int64_t goff2[3] = {0, 2, 4}, judge2[2] = {1, 0};
    s = segrl_majority_vote(ans2, 4, goff2, 2, judge2, &o, r, maj);
    /* g0 = {5, 12}: tie, first = "5"; g1 = {12, 5}: tie, first = "12" */
    double want_pair2[4] = {0, 1, 0, 1};
    CHECK(s == SEGRL_OK, "paired 2: %s", segrl_last_error());
    h_close_f("vote (paired, ties)", r, want_pair2, 4, 0, 0);
    /* errors */
    int64_t bad[3] = {0, 3, 2};
    s = segrl_majority_vote(ans, 2, bad, 2, NULL, NULL, r, NULL);
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "group_offsets"), "bad offsets: %s",
          segrl_last_error());
    int64_t badj[2] = {0, 2};
    s = segrl_majority_vote(ans2, 4, goff2, 2, badj, NULL, r, NULL);
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "judge"), "bad judge: %s",
          segrl_last_error());
}

static void test_vote_reward(void) {
    /* GSM8K extraction, groups from metadata (unequal sizes, interleaved order) */
    segrl_reward_sample smp[7] = {
        {.prompt = "q1", .response = "so 3 + 4 = 7. #### 7", .metadata_json = "{\"group\": 1}"},
        {.prompt = "q2", .response = "The answer is 10", .metadata_json = "{\"group\": 2}"},
        {.prompt = "q1", .response = "#### 7.0", .metadata_json = "{\"group\": 1}"},
        {.prompt = "q1", .response = "#### 8", .metadata_json = "{\"group\": 1}"},
        {.prompt = "q2", .response = "", .metadata_json = "{\"group\": 2}"},
        {.prompt = "q2", .response = "#### 11", .metadata_json = "{\"group\": 2}"},
        {.prompt = "q1", .response = "I do not know", .metadata_json = "{\"group\": 1}"},
    };
    segrl_reward *g = NULL, *mv = NULL;
    CHECK(segrl_reward_gsm8k(NULL, &g) == SEGRL_OK, "gsm8k");
    CHECK(segrl_reward_majority_vote(g, NULL, 0, &mv) == SEGRL_OK, "mv: %s", segrl_last_error());
    float sc[7];
    segrl_reward_detail det[7];
    memset(det, 0, sizeof det);
    segrl_reward_run run = {.threads = 1, .fail_on_error = 1};
    segrl_status s = segrl_reward_score(mv, smp, 7, &run, sc, det);
    CHECK(s == SEGRL_OK, "score: %s", segrl_last_error());
    /* group 1: 7, 7 (7.0 normalized), 8, none -> majority 7; group 2: 10, empty, 11 -> tie, 10 */
    double want[7] = {1, 1, 1, 0, 0, 0, 0};
    h_close_f("majority_vote reward", sc, want, 7, 0, 0);
    CHECK(det[4].reason == SEGRL_REWARD_NO_ANSWER && det[0].reason == SEGRL_REWARD_OK &&
              det[3].reason == SEGRL_REWARD_WRONG && strcmp(det[0].normalized, "7") == 0,
          "details: %d %d %d '%s'", det[4].reason, det[0].reason, det[3].reason, det[0].normalized);
    CHECK(det[6].reason == SEGRL_REWARD_NO_ANSWER || det[6].extracted[0] == 0 || sc[6] == 0,
          "no number: reason %d", det[6].reason);
    segrl_reward_free(mv);

    /* by name; groups from runs of equal prompts; tie "none" */
    segrl_reward_sample smp2[5] = {
        {.prompt = "a", .response = "#### 3"}, {.prompt = "a", .response = "#### 4"},
        {.prompt = "b", .response = "#### 5"}, {.prompt = "b", .response = "#### 5"},
        {.prompt = "b", .response = "#### 6"},
    };
    s = segrl_selfreward_create("majority_vote",
                                "{\"inner\": {\"name\": \"gsm8k\"}, \"tie\": \"none\", \"miss\": -1}",
                                &mv);
    CHECK(s == SEGRL_OK, "by name: %s", segrl_last_error());
    if (s == SEGRL_OK) {
        s = segrl_reward_score(mv, smp2, 5, &run, sc, NULL);
        double w2[5] = {-1, -1, 1, 1, 0};
        CHECK(s == SEGRL_OK, "score 2: %s", segrl_last_error());
        h_close_f("majority_vote by name", sc, w2, 5, 0, 0);
        segrl_reward_free(mv);
    }
    /* paired by name (Co-Reward): group 0 is judged by group 1's majority and back */
    segrl_reward_sample smp3[4] = {
        {.response = "#### 3", .metadata_json = "{\"group\": 0, \"pair_group\": 1}"},
        {.response = "#### 3", .metadata_json = "{\"group\": 0, \"pair_group\": 1}"},
        {.response = "#### 3", .metadata_json = "{\"group\": 1, \"pair_group\": 0}"},
        {.response = "#### 9", .metadata_json = "{\"group\": 1, \"pair_group\": 0}"},
    };
    s = segrl_selfreward_create("majority_vote", "{\"inner\": {\"name\": \"gsm8k\"}, \"paired\": true}",
                                &mv);
    CHECK(s == SEGRL_OK, "paired by name: %s", segrl_last_error());
    if (s == SEGRL_OK) {
        s = segrl_reward_score(mv, smp3, 4, &run, sc, NULL);
        double w3[4] = {1, 1, 1, 0};
        CHECK(s == SEGRL_OK, "score 3: %s", segrl_last_error());
        h_close_f("majority_vote paired", sc, w3, 4, 0, 0);
        smp3[3].metadata_json = "{\"group\": 1}";
        s = segrl_reward_score(mv, smp3, 4, &run, sc, NULL);
        CHECK(s != SEGRL_OK && strstr(segrl_last_error(), "pair_group"), "missing pair: %s",
              segrl_last_error());
        segrl_reward_free(mv);
    }
    /* other names pass through; unknown options are errors */
    s = segrl_selfreward_create("math", NULL, &mv);
    CHECK(s == SEGRL_OK && strcmp(segrl_reward_name(mv), "math") == 0, "pass-through");
    if (s == SEGRL_OK) segrl_reward_free(mv);
    s = segrl_selfreward_create("majority_vote", "{\"tie\": \"last\"}", &mv);
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "tie"), "bad tie: %s",
          segrl_last_error());
    s = segrl_selfreward_create("majority_vote", "{\"inner\": {\"name\": \"oracle\"}}", &mv);
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "oracle"), "unknown inner: %s",
          segrl_last_error());
    s = segrl_selfreward_create("majority_vote", "{\"votes\": 3}", &mv);
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "votes"), "unknown key: %s",
          segrl_last_error());
}

// ----------------------------------------------------------------------------
// evaluation statistics

static void test_pairs(void) {
    /* six hand-written pairs in two subsets: subset 0 right, wrong, right; subset 1 tie, right,
     * wrong -> subset 0: 2/3, subset 1: 1/3 (one tie), all: 3/6 */
    float ch[6] = {0.9f, 0.1f, 2.0f, 0.5f, 3.0f, -1.0f};
    float rj[6] = {0.2f, 0.4f, 1.0f, 0.5f, -3.0f, 1.0f};
    int32_t sub[6] = {0, 0, 0, 1, 1, 1};
    int64_t c[3], t[3], n[3];
    segrl_status s = segrl_pairwise_accuracy(ch, rj, 6, sub, 2, c, t, n);
    CHECK(s == SEGRL_OK, "pairs: %s", segrl_last_error());
    CHECK(c[0] == 2 && n[0] == 3 && t[0] == 0, "subset 0: %lld/%lld", (long long)c[0], (long long)n[0]);
    CHECK(c[1] == 1 && n[1] == 3 && t[1] == 1, "subset 1: %lld/%lld ties %lld", (long long)c[1],
          (long long)n[1], (long long)t[1]);
    CHECK(c[2] == 3 && n[2] == 6 && t[2] == 1, "all: %lld/%lld", (long long)c[2], (long long)n[2]);
    s = segrl_pairwise_accuracy(ch, rj, 6, NULL, 0, c, t, n);
    CHECK(s == SEGRL_OK && c[0] == 3 && n[0] == 6, "no subsets");
    sub[2] = 2;
    s = segrl_pairwise_accuracy(ch, rj, 6, sub, 2, c, t, n);
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "subset"), "bad subset: %s",
          segrl_last_error());

    /* x = 1..5, y = (5, 6, 7, 8, 7): ranks of y (1, 2, 3.5, 5, 3.5), rho = 8 / sqrt(10 * 9.5);
     * pairs: 8 concordant, 1 discordant, 1 tied in y: tau_b = 7 / sqrt(9 * 10) */
    float x[5] = {1, 2, 3, 4, 5}, y[5] = {5, 6, 7, 8, 7};
    double rho = 0, tau = 0;
    s = segrl_rank_correlation(x, y, 5, &rho, &tau);
    CHECK(s == SEGRL_OK && NEAR(rho, 8.0 / sqrt(95.0), 1e-12) && NEAR(tau, 7.0 / sqrt(90.0), 1e-12),
          "rank correlation rho %.9f tau %.9f", rho, tau);
    float yr[5] = {50, 40, 30, 20, 10};
    s = segrl_rank_correlation(x, yr, 5, &rho, &tau);
    CHECK(s == SEGRL_OK && NEAR(rho, -1, 1e-12) && NEAR(tau, -1, 1e-12), "reversed %g %g", rho, tau);

    /* STARC-style: affine maps 0; negation 2; constant vs anything 1; e1 vs e2 in R^3 sqrt(3) */
    float ax[5], nx[5], cst[5] = {4, 4, 4, 4, 4};
    for (int i = 0; i < 5; i++) ax[i] = 2 * x[i] + 3, nx[i] = -x[i];
    double d = -1;
    CHECK(segrl_starc_distance(x, ax, 5, &d) == SEGRL_OK && NEAR(d, 0, 1e-7), "affine %g", d);
    CHECK(segrl_starc_distance(x, nx, 5, &d) == SEGRL_OK && NEAR(d, 2, 1e-7), "negated %g", d);
    CHECK(segrl_starc_distance(x, cst, 5, &d) == SEGRL_OK && NEAR(d, 1, 1e-7), "constant %g", d);
    float e1[3] = {1, 0, 0}, e2[3] = {0, 1, 0};
    CHECK(segrl_starc_distance(e1, e2, 3, &d) == SEGRL_OK && NEAR(d, sqrt(3.0), 1e-7), "e1 e2 %g", d);
    CHECK(segrl_starc_distance(e1, e2, 0, &d) == SEGRL_ERR_INVALID, "n 0");
}

int main(void) {
    test_igpo();
    test_vote();
    test_vote_reward();
    test_pairs();
    return h_finish();
}
