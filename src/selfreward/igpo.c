/* igpo.c — information-gain turn rewards and advantages for multi-turn agents (IGPO, Wang et al.
 * 2025, arXiv 2510.14967). Turns are segment spans (segrl/segment.h): the spans are validated by
 * segrl_segments_check and the per-turn advantages are written to tokens by
 * segrl_segment_scatter, so padded and packed layouts work as for every segment estimator.
 *
 *   p_k  = exp(mean_j log pi(a*_j | prompt, turns 1..k, a*_<j)),  p_0 given the prompt alone
 *   r_k  = p_k - p_{k-1} (k < K),   r_K = outcome
 *   r~   = (r - mean_g) / (std_g + eps) over every turn of every rollout of group g
 *   A_k  = sum_{m >= k} gamma^(m-k) r~_m,  broadcast over turn k's tokens */
#include "sr.h"

#include <math.h>

segrl_igpo_opts segrl_igpo_opts_default(void) {
    segrl_igpo_opts o = {.gamma = 1.0f, .eps = 1e-6f, .unbiased = 0, .no_std = 0};
    return o;
}

// ----------------------------------------------------------------------------
// raw turn rewards

segrl_status segrl_igpo_turn_rewards(segrl_view seg_offsets, segrl_view turn_logp_mean,
                                     segrl_view prior_logp_mean, segrl_view outcome,
                                     const segrl_exec *exec, segrl_view out_turn_rewards) {
    static const char *FN = "segrl_igpo_turn_rewards";
    (void)exec;
    const void *off_p, *lp_p, *pr_p, *oc_p, *out_p;
    int64_t B = 0, S = 0;
    SG_TRY(sr_vec(FN, outcome, "outcome", -1, SG_F32, 1, &oc_p, &B));
    SG_TRY(sr_vec(FN, seg_offsets, "seg_offsets", B + 1, SG_IDX, 1, &off_p, NULL));
    SG_TRY(sr_vec(FN, prior_logp_mean, "prior_logp_mean", B, SG_F32, 1, &pr_p, NULL));
    int32_t odt = seg_offsets.dtype;
    if (sr_idx(off_p, odt, 0) != 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: seg_offsets: [0] must be 0", FN);
    for (int64_t b = 0; b < B; b++)
        if (sr_idx(off_p, odt, b + 1) < sr_idx(off_p, odt, b))
            return sg_fail(SEGRL_ERR_INVALID, "%s: seg_offsets: decreasing at [%lld]", FN,
                           (long long)(b + 1));
    S = sr_idx(off_p, odt, B);
    SG_TRY(sr_vec(FN, turn_logp_mean, "turn_logp_mean", S, SG_F32, 1, &lp_p, NULL));
    SG_TRY(sr_vec(FN, out_turn_rewards, "out_turn_rewards", S, SG_F32, 1, &out_p, NULL));
    const float *lp = lp_p, *pr = pr_p, *oc = oc_p;
    for (int64_t k = 0; k < S; k++)
        if (!isfinite(lp[k]))
            return sg_fail(SEGRL_ERR_INVALID, "%s: turn_logp_mean: not finite at [%lld]", FN,
                           (long long)k);
    for (int64_t b = 0; b < B; b++) {
        if (!isfinite(pr[b]))
            return sg_fail(SEGRL_ERR_INVALID, "%s: prior_logp_mean: not finite at [%lld]", FN,
                           (long long)b);
        if (!isfinite(oc[b]))
            return sg_fail(SEGRL_ERR_INVALID, "%s: outcome: not finite at [%lld]", FN,
                           (long long)b);
    }
    float *out = (float *)out_p;
    for (int64_t b = 0; b < B; b++) {
        int64_t s0 = sr_idx(off_p, odt, b), s1 = sr_idx(off_p, odt, b + 1);
        double prev = exp((double)pr[b]);
        for (int64_t k = s0; k < s1; k++) {
            double p = exp((double)lp[k]);
            out[k] = k == s1 - 1 ? oc[b] : (float)(p - prev);
            prev = p;
        }
    }
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// advantages

/* workspace: [normalized rewards: S floats][advantages: S floats][group sums: 3 G doubles] */
static size_t ws_bytes(int64_t S, int64_t G) {
    return sg_align((size_t)S * sizeof(float)) * 2 + sg_align((size_t)G * 3 * sizeof(double));
}

segrl_status segrl_igpo_workspace_size(int64_t num_turns, int64_t num_groups, size_t *out_bytes) {
    static const char *FN = "segrl_igpo_workspace_size";
    if (num_turns < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: num_turns: negative", FN);
    if (num_groups < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: num_groups: negative", FN);
    if (!out_bytes) return sg_fail(SEGRL_ERR_INVALID, "%s: out_bytes: NULL", FN);
    *out_bytes = ws_bytes(num_turns, num_groups);
    return SEGRL_OK;
}

/* out_token_rewards must look like out_advantages (checked before anything is written) */
static segrl_status same_token_view(const char *fn, segrl_view a, segrl_view ref) {
    if (a.dtype != SEGRL_DTYPE_F32)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out_token_rewards: must be f32", fn);
    if (a.device.type != ref.device.type || a.device.index != ref.device.index)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out_token_rewards: device differs from out_advantages",
                       fn);
    if (a.ndim != ref.ndim)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out_token_rewards: shape differs from out_advantages",
                       fn);
    for (int32_t d = 0; d < a.ndim; d++)
        if (a.shape[d] != ref.shape[d])
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: out_token_rewards: shape differs from out_advantages", fn);
    if (a.ndim >= 1 && a.shape[a.ndim - 1] > 1 && a.strides[a.ndim - 1] != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out_token_rewards: innermost stride must be 1", fn);
    if (!a.data && a.ndim > 0 && a.shape[0] > 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out_token_rewards: NULL data", fn);
    return SEGRL_OK;
}

segrl_status segrl_igpo_advantages(const segrl_layout *layout, segrl_view mask,
                                   const segrl_segments *segments, segrl_view turn_rewards,
                                   segrl_view group_index, int64_t num_groups,
                                   const segrl_igpo_opts *opts, const segrl_exec *exec,
                                   segrl_view out_advantages, segrl_view out_token_rewards,
                                   segrl_view out_turn_advantages) {
    static const char *FN = "segrl_igpo_advantages";
    segrl_igpo_opts o = opts ? *opts : segrl_igpo_opts_default();
    if (!segments) return sg_fail(SEGRL_ERR_INVALID, "%s: segments: NULL", FN);
    SG_TRY(sg_check_finite_param(FN, "opts->gamma", o.gamma));
    SG_TRY(sg_check_finite_param(FN, "opts->eps", o.eps));
    if (o.eps < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: opts->eps: negative", FN);
    if (num_groups < 1) return sg_fail(SEGRL_ERR_INVALID, "%s: num_groups: must be >= 1", FN);
    if (out_advantages.device.type != SEGRL_DEVICE_CPU)
        return sg_fail(SEGRL_ERR_UNSUPPORTED,
                       "%s: out_advantages: CUDA views are not supported by this op yet (CPU only)",
                       FN);
    segrl_exec ex = exec ? *exec : (segrl_exec){0};
    segrl_exec ex_nows = ex;
    ex_nows.workspace = NULL, ex_nows.workspace_bytes = 0;
    /* spans against the geometry of out_advantages (names segments->offsets/start/end) */
    SG_TRY(segrl_segments_check(layout, out_advantages, segments, &ex_nows));
    const void *off_p, *r_p, *g_p, *ota_p;
    int64_t B1 = 0;
    SG_TRY(sr_vec(FN, segments->offsets, "segments->offsets", -1, SG_IDX, 1, &off_p, &B1));
    int64_t B = B1 - 1;
    int32_t odt = segments->offsets.dtype;
    int64_t S = sr_idx(off_p, odt, B);
    SG_TRY(sr_vec(FN, turn_rewards, "turn_rewards", S, SG_F32, 1, &r_p, NULL));
    SG_TRY(sr_vec(FN, group_index, "group_index", B, SG_IDX, 1, &g_p, NULL));
    SG_TRY(sr_vec(FN, out_turn_advantages, "out_turn_advantages", S, SG_F32, 0, &ota_p, NULL));
    if (!segrl_view_is_none(out_token_rewards))
        SG_TRY(same_token_view(FN, out_token_rewards, out_advantages));
    const float *r = r_p;
    for (int64_t k = 0; k < S; k++)
        if (!isfinite(r[k]))
            return sg_fail(SEGRL_ERR_INVALID, "%s: turn_rewards: not finite at [%lld]", FN,
                           (long long)k);
    int32_t gdt = group_index.dtype;
    for (int64_t b = 0; b < B; b++) {
        int64_t g = sr_idx(g_p, gdt, b);
        if (g < 0 || g >= num_groups)
            return sg_fail(SEGRL_ERR_INVALID, "%s: group_index: [%lld] = %lld outside [0, %lld)", FN,
                           (long long)b, (long long)g, (long long)num_groups);
    }
    size_t need = ws_bytes(S, num_groups);
    if (!ex.workspace || ex.workspace_bytes < need)
        return sg_fail(SEGRL_ERR_WORKSPACE,
                       "%s: exec->workspace: %zu bytes given, %zu needed (segrl_igpo_workspace_size)",
                       FN, ex.workspace ? ex.workspace_bytes : (size_t)0, need);
    if ((uintptr_t)ex.workspace % 16)
        return sg_fail(SEGRL_ERR_WORKSPACE, "%s: exec->workspace: must be 16-byte aligned", FN);
    char *w = ex.workspace;
    float *rt = (float *)w;
    float *adv = (float *)(w + sg_align((size_t)S * sizeof(float)));
    double *gs = (double *)(w + 2 * sg_align((size_t)S * sizeof(float))); /* count, sum, sumsq */
    for (int64_t g = 0; g < 3 * num_groups; g++) gs[g] = 0;

    /* group mean over every turn (rewarded position) of the group's rollouts (f64 sums) */
    for (int64_t b = 0; b < B; b++) {
        int64_t g = sr_idx(g_p, gdt, b);
        for (int64_t k = sr_idx(off_p, odt, b); k < sr_idx(off_p, odt, b + 1); k++) {
            gs[3 * g] += 1;
            gs[3 * g + 1] += r[k];
        }
    }
    for (int64_t g = 0; g < num_groups; g++)
        if (gs[3 * g] > 0) gs[3 * g + 1] /= gs[3 * g]; /* now the mean */
    for (int64_t b = 0; b < B; b++) {
        int64_t g = sr_idx(g_p, gdt, b);
        for (int64_t k = sr_idx(off_p, odt, b); k < sr_idx(off_p, odt, b + 1); k++) {
            double d = r[k] - gs[3 * g + 1];
            gs[3 * g + 2] += d * d;
        }
    }
    for (int64_t b = 0; b < B; b++) {
        int64_t g = sr_idx(g_p, gdt, b);
        double n = gs[3 * g], mean = gs[3 * g + 1];
        double denom = n - (o.unbiased ? 1 : 0);
        double sd = denom > 0 ? sqrt(gs[3 * g + 2] / denom) : 0.0;
        for (int64_t k = sr_idx(off_p, odt, b); k < sr_idx(off_p, odt, b + 1); k++) {
            double c = r[k] - mean;
            if (o.no_std) rt[k] = (float)c;
            else rt[k] = (sd + o.eps) > 0 ? (float)(c / (sd + (double)o.eps)) : 0.0f;
        }
        /* discounted return-to-go over this rollout's turns */
        double acc = 0;
        for (int64_t k = sr_idx(off_p, odt, b + 1) - 1; k >= sr_idx(off_p, odt, b); k--) {
            acc = rt[k] + (double)o.gamma * acc;
            adv[k] = (float)acc;
        }
    }
    segrl_view adv_v = segrl_view_1d(adv, SEGRL_DTYPE_F32, segrl_cpu(), S);
    segrl_view rt_v = segrl_view_1d(rt, SEGRL_DTYPE_F32, segrl_cpu(), S);
    if (!segrl_view_is_none(out_token_rewards))
        SG_TRY(segrl_segment_scatter(layout, rt_v, mask, segments, SEGRL_SCATTER_LAST, &ex_nows,
                                     out_token_rewards));
    SG_TRY(segrl_segment_scatter(layout, adv_v, mask, segments, SEGRL_SCATTER_BROADCAST, &ex_nows,
                                 out_advantages));
    if (ota_p) memcpy((void *)ota_p, adv, (size_t)S * sizeof(float));
    return SEGRL_OK;
}
