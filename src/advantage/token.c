/* token.c — CPU references of the token-level estimators: GAE, discounted returns with a KL
 * penalty, masked whitening. Formulas: docs/advantages.md. */
#include "seq.h"

#include <math.h>

// ----------------------------------------------------------------------------
// GAE
// Walk each sequence backwards in chunks of SG_CHUNK tokens; `nv` is V of the next valid token,
// `A` the running advantage. Invalid tokens leave both unchanged and output the carried A.

void sg_cpu_gae(const sg_geom *g, sg_tok rewards, sg_tok values, sg_tok mask, float gamma,
                float lambda, sg_tok adv, sg_tok ret) {
    const float gl = gamma * lambda;
    uint8_t m[SG_CHUNK];
    for (int64_t b = 0; b < g->B; b++) {
        int64_t n;
        const float *r = sg_f32(rewards, sg_seq(g, rewards, b, &n));
        const float *v = sg_f32(values, sg_seq(g, values, b, &n));
        float *a = sg_f32(adv, sg_seq(g, adv, b, &n));
        float *q = sg_f32(ret, sg_seq(g, ret, b, &n));
        float nv = 0.0f, A = 0.0f;
        for (int64_t end = n; end > 0; end -= SG_CHUNK) {
            int64_t beg = end > SG_CHUNK ? end - SG_CHUNK : 0;
            sg_mask_chunk(g, mask, b, beg, end - beg, m);
            for (int64_t t = end - 1; t >= beg; t--) {
                float vt = v[t];
                if (m[t - beg]) {
                    A = r[t] + gamma * nv - vt + gl * A;
                    nv = vt;
                }
                a[t] = A;
                q[t] = A + vt;
            }
        }
    }
}

// ----------------------------------------------------------------------------
// discounted returns with an optional KL penalty folded into the reward

static inline float sg_kl(int32_t kind, float logp, float ref) {
    float d = logp - ref;
    switch (kind) {
    case SEGRL_KL_K1: return d;
    case SEGRL_KL_ABS: return fabsf(d);
    case SEGRL_KL_K2: return 0.5f * d * d;
    case SEGRL_KL_K3: {
        /* e^(ref - logp) - (ref - logp) - 1, clamped as verl's low_var_kl */
        float k = expf(-d) + d - 1.0f;
        return k < -10.0f ? -10.0f : (k > 10.0f ? 10.0f : k);
    }
    default: return 0.0f;
    }
}

void sg_cpu_returns(const sg_geom *g, sg_tok rewards, sg_tok mask, sg_tok logp, sg_tok ref,
                    float gamma, float beta, int32_t kl, sg_tok out) {
    const int penalty = beta != 0.0f && kl != SEGRL_KL_NONE;
    uint8_t m[SG_CHUNK];
    for (int64_t b = 0; b < g->B; b++) {
        int64_t n;
        const float *r = sg_f32(rewards, sg_seq(g, rewards, b, &n));
        const float *lp = penalty ? sg_f32(logp, sg_seq(g, logp, b, &n)) : NULL;
        const float *rf = penalty ? sg_f32(ref, sg_seq(g, ref, b, &n)) : NULL;
        float *o = sg_f32(out, sg_seq(g, out, b, &n));
        float G = 0.0f;
        for (int64_t end = n; end > 0; end -= SG_CHUNK) {
            int64_t beg = end > SG_CHUNK ? end - SG_CHUNK : 0;
            sg_mask_chunk(g, mask, b, beg, end - beg, m);
            if (penalty) {
                for (int64_t t = end - 1; t >= beg; t--) {
                    if (m[t - beg]) G = (r[t] - beta * sg_kl(kl, lp[t], rf[t])) + gamma * G;
                    o[t] = G;
                }
            } else {
                for (int64_t t = end - 1; t >= beg; t--) {
                    if (m[t - beg]) G = r[t] + gamma * G;
                    o[t] = G;
                }
            }
        }
    }
}

// ----------------------------------------------------------------------------
// masked whitening
// stats[k * SG_GROUP_STATS + {0, 1, 2}] = count, sum, sum of squares of group k (k = G: unused).
// One pass for the statistics in f64, one pass to write.

static inline int64_t sg_group_of(const void *gidx, int32_t dt, int64_t b) {
    if (!gidx) return 0;
    return dt == SEGRL_DTYPE_I32 ? (int64_t)((const int32_t *)gidx)[b] : ((const int64_t *)gidx)[b];
}

void sg_cpu_whiten(const sg_geom *g, sg_tok x, sg_tok mask, const void *gidx, int32_t gidx_dtype,
                   int64_t G, const segrl_whiten_opts *o, double *stats, sg_tok out) {
    const int64_t ng = gidx ? G : 1;
    uint8_t m[SG_CHUNK];
    memset(stats, 0, (size_t)ng * SG_GROUP_STATS * sizeof(double));
    for (int64_t b = 0; b < g->B; b++) {
        int64_t n;
        const float *xs = sg_f32(x, sg_seq(g, x, b, &n));
        double *s = stats + sg_group_of(gidx, gidx_dtype, b) * SG_GROUP_STATS;
        double cnt = 0, sum = 0, sq = 0;
        for (int64_t beg = 0; beg < n; beg += SG_CHUNK) {
            int64_t len = n - beg < SG_CHUNK ? n - beg : SG_CHUNK;
            sg_mask_chunk(g, mask, b, beg, len, m);
            for (int64_t t = 0; t < len; t++) {
                double v = m[t] ? (double)xs[beg + t] : 0.0;
                cnt += m[t];
                sum += v;
                sq += v * v;
            }
        }
        s[0] += cnt;
        s[1] += sum;
        s[2] += sq;
    }
    /* per group: s[3] = mean, s[4] = 1 / sqrt(var + eps) */
    for (int64_t k = 0; k < ng; k++) {
        double *s = stats + k * SG_GROUP_STATS;
        double cnt = s[0], mean = cnt > 0 ? s[1] / cnt : 0.0;
        double var = cnt > 0 ? s[2] / cnt - mean * mean : 0.0;
        if (var < 0) var = 0;
        if (o->unbiased) var = cnt > 1 ? var * cnt / (cnt - 1) : 0.0;
        s[3] = mean;
        /* a constant group with eps = 0 whitens to 0 rather than 0 * inf */
        s[4] = var + (double)o->eps > 0 ? 1.0 / sqrt(var + (double)o->eps) : 0.0;
    }
    for (int64_t b = 0; b < g->B; b++) {
        int64_t n;
        const float *xs = sg_f32(x, sg_seq(g, x, b, &n));
        float *os = sg_f32(out, sg_seq(g, out, b, &n));
        const double *s = stats + sg_group_of(gidx, gidx_dtype, b) * SG_GROUP_STATS;
        const float mean = (float)s[3], inv = (float)s[4];
        const float add = o->shift_mean ? 0.0f : mean;
        for (int64_t beg = 0; beg < n; beg += SG_CHUNK) {
            int64_t len = n - beg < SG_CHUNK ? n - beg : SG_CHUNK;
            sg_mask_chunk(g, mask, b, beg, len, m);
            for (int64_t t = 0; t < len; t++)
                os[beg + t] = m[t] ? (xs[beg + t] - mean) * inv + add : 0.0f;
        }
    }
}
