/* outcome.c — CPU reference of the trajectory-level estimators (GRPO, RLOO, REINFORCE++-baseline,
 * ReMax, OPO, GRPO pass@k, GPG). Per-sequence work is O(B); the token passes are one reduction
 * (when R comes from token rewards) and one broadcast. Formulas: docs/advantages.md.
 *
 * Group statistics, ws.group[k * SG_GROUP_STATS + i]:
 *   0 n    1 sum R    2 sum (R - mean)^2    3 sum len*R    4 sum len
 *   5 max R    6 index of the first max    7 max R over the others */
#include "seq.h"

#include <math.h>

static inline int64_t sg_gid(const sg_outcome_args *a, int64_t b) {
    if (!a->gidx) return 0;
    return a->gidx_dtype == SEGRL_DTYPE_I32 ? (int64_t)((const int32_t *)a->gidx)[b]
                                            : ((const int64_t *)a->gidx)[b];
}

/* R and len of every sequence. Sums of token rewards depend only on positions within the
 * sequence, so padded and packed layouts add in the same order and agree bit for bit. */
static void sg_outcome_inputs(const sg_geom *g, const sg_outcome_args *a, sg_outcome_ws ws) {
    /* only OPO's baseline and REINFORCE++'s token whitening weigh sequences by length */
    const int need_len = a->op == SEGRL_OP_OPO || a->op == SEGRL_OP_REINFORCE_PP_BASELINE;
    for (int64_t b = 0; b < g->B; b++) {
        int64_t n; /* the sequence length does not depend on the tensor asked */
        const int64_t s = sg_seq(g, a->token_rewards, b, &n);
        ws.len[b] = need_len ? (double)sg_count_valid(g, a->mask, b, n) : 0.0;
        if (a->scores) {
            ws.R[b] = (double)a->scores[b];
            continue;
        }
        const float *r = sg_f32(a->token_rewards, s);
        double acc[4] = {0, 0, 0, 0};
        /* blocks of 64 tokens summed in eight f32 lanes (t mod 8; vectorizes), each block added
         * to f64: the same order for padded and packed layouts */
        for (int64_t t0 = 0; t0 < n; t0 += 64) {
            const int64_t e = n - t0 < 64 ? n - t0 : 64;
            float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            SG_WITH_MASK(a->mask, sg_mask_slot(g, a->mask, b) + t0, P,
                         for (int64_t t = 0; t + 8 <= e; t += 8) for (int j = 0; j < 8; j++)
                             f[j] += P[t + j] != 0 ? r[t0 + t + j] : 0.0f;
                         for (int64_t t = e & ~(int64_t)7; t < e; t++)
                             f[t & 7] += P[t] != 0 ? r[t0 + t] : 0.0f,
                         for (int64_t t = 0; t + 8 <= e; t += 8) for (int j = 0; j < 8; j++)
                             f[j] += r[t0 + t + j];
                         for (int64_t t = e & ~(int64_t)7; t < e; t++) f[t & 7] += r[t0 + t])
            acc[(t0 >> 6) & 3] += ((double)f[0] + f[1]) + ((double)f[2] + f[3]) +
                                  (((double)f[4] + f[5]) + ((double)f[6] + f[7]));
        }
        ws.R[b] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
}

/* a / d, and 0 for d == 0: a constant group with eps = 0 has A = 0 / 0 */
static inline double sg_div0(double a, double d) { return d > 0 ? a / d : 0.0; }

static double sg_std(double m2, double n, int unbiased) {
    double d = unbiased ? n - 1 : n;
    return d > 0 ? sqrt(m2 / d) : 0.0;
}

static void sg_group_stats(const sg_geom *g, const sg_outcome_args *a, sg_outcome_ws ws) {
    const int64_t G = a->gidx ? a->G : 1;
    for (int64_t k = 0; k < G; k++) {
        double *s = ws.group + k * SG_GROUP_STATS;
        for (int i = 0; i < SG_GROUP_STATS; i++) s[i] = 0;
        s[5] = s[7] = -INFINITY;
        s[6] = -1;
    }
    for (int64_t b = 0; b < g->B; b++) {
        double *s = ws.group + sg_gid(a, b) * SG_GROUP_STATS;
        double R = ws.R[b];
        s[0] += 1;
        s[1] += R;
        s[3] += ws.len[b] * R;
        s[4] += ws.len[b];
        if (R > s[5]) {
            s[7] = s[5];
            s[5] = R;
            s[6] = (double)b;
        } else if (R > s[7]) {
            s[7] = R;
        }
    }
    for (int64_t b = 0; b < g->B; b++) {
        double *s = ws.group + sg_gid(a, b) * SG_GROUP_STATS;
        double d = ws.R[b] - s[1] / s[0];
        s[2] += d * d;
    }
    /* batch: 0 n, 1 mean R, 2 std R */
    double n = (double)g->B, sum = 0, m2 = 0;
    for (int64_t b = 0; b < g->B; b++) sum += ws.R[b];
    double mean = n > 0 ? sum / n : 0;
    for (int64_t b = 0; b < g->B; b++) m2 += (ws.R[b] - mean) * (ws.R[b] - mean);
    ws.batch[0] = n;
    ws.batch[1] = mean;
    ws.batch[2] = sg_std(m2, n, a->opts.unbiased);
}

/* A_b for every sequence (GPG: already scaled by alpha) */
static void sg_seq_advantages(const sg_geom *g, const sg_outcome_args *a, sg_outcome_ws ws) {
    const segrl_outcome_opts *o = &a->opts;
    for (int64_t b = 0; b < g->B; b++) {
        double R = ws.R[b], A;
        if (a->op == SEGRL_OP_REMAX) {
            ws.A[b] = R - (double)a->baseline[b];
            continue;
        }
        const double *s = ws.group + sg_gid(a, b) * SG_GROUP_STATS;
        const double n = s[0];
        const int single = n < 2;
        if (single && o->singleton == SEGRL_SINGLETON_ZERO) {
            ws.A[b] = 0;
            continue;
        }
        const double mean = single ? 0.0 : s[1] / n;
        double std = single ? 1.0 : sg_std(s[2], n, o->unbiased);
        if (o->std_scope == SEGRL_STD_BATCH) std = ws.batch[2];
        switch (a->op) {
        case SEGRL_OP_GRPO:
            A = R - mean;
            if (o->std_scope != SEGRL_STD_NONE) A = sg_div0(A, std + (double)o->eps);
            break;
        case SEGRL_OP_RLOO: A = single ? R : (R - mean) * n / (n - 1); break;
        case SEGRL_OP_OPO: A = R - (single || s[4] <= 0 ? 0.0 : s[3] / s[4]); break;
        case SEGRL_OP_GRPO_PASSK:
            if ((double)b != s[6]) {
                A = 0;
                break;
            }
            A = R - (single ? 0.0 : s[7]);
            if (o->std_scope != SEGRL_STD_NONE) A = sg_div0(A, std + (double)o->eps);
            break;
        default: /* REINFORCE++-baseline, GPG */ A = R - mean; break;
        }
        ws.A[b] = A;
    }
    if (a->op == SEGRL_OP_GPG) {
        int64_t nz = 0;
        for (int64_t b = 0; b < g->B; b++) nz += ws.A[b] != 0.0;
        double alpha = nz > 0 ? (double)g->B / (double)nz : 1.0;
        for (int64_t b = 0; b < g->B; b++) ws.A[b] *= alpha;
    }
}

void sg_cpu_outcome(const sg_geom *g, const sg_outcome_args *a, sg_outcome_ws ws, sg_tok out_tok,
                    float *out_seq) {
    sg_outcome_inputs(g, a, ws);
    if (a->op != SEGRL_OP_REMAX) sg_group_stats(g, a, ws);
    sg_seq_advantages(g, a, ws);
    /* REINFORCE++-baseline: whiten the broadcast advantages over all valid tokens of the batch.
     * The token-level mean and variance follow from A_b weighted by len_b. */
    double shift = 0, scale = 1;
    if (a->op == SEGRL_OP_REINFORCE_PP_BASELINE) {
        double cnt = 0, sum = 0, m2 = 0;
        for (int64_t b = 0; b < g->B; b++) {
            cnt += ws.len[b];
            sum += ws.len[b] * ws.A[b];
        }
        double mean = cnt > 0 ? sum / cnt : 0;
        for (int64_t b = 0; b < g->B; b++) m2 += ws.len[b] * (ws.A[b] - mean) * (ws.A[b] - mean);
        double var = cnt > 1 ? m2 / (cnt - 1) : 0;
        shift = mean;
        scale = 1.0 / sqrt(var + 1e-8);
    }
    if (out_seq)
        for (int64_t b = 0; b < g->B; b++) out_seq[b] = (float)ws.A[b];
    for (int64_t b = 0; b < g->B; b++) {
        int64_t n;
        float *o = sg_f32(out_tok, sg_seq(g, out_tok, b, &n));
        sg_fill_valid(g, a->mask, b, n, o, (float)((ws.A[b] - shift) * scale));
    }
}
