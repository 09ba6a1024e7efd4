/* token.c — CPU references of the token-level estimators: GAE, discounted returns with a KL
 * penalty, masked whitening. Formulas: docs/advantages.md. */
#include "scan.h"

#include <math.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define SG_SIMD 1

/* x[k] = lane k's 4 floats at p[k] + t0 ... + t0 + 3, transposed: out[j] = slot t0 + j of the
 * four lanes */
static inline void sg_load4t(float *const *p, int64_t t0, __m128 out[4]) {
    out[0] = _mm_loadu_ps(p[0] + t0), out[1] = _mm_loadu_ps(p[1] + t0);
    out[2] = _mm_loadu_ps(p[2] + t0), out[3] = _mm_loadu_ps(p[3] + t0);
    _MM_TRANSPOSE4_PS(out[0], out[1], out[2], out[3]);
}

static inline void sg_store4t(float *const *p, int64_t t0, __m128 in[4]) {
    _MM_TRANSPOSE4_PS(in[0], in[1], in[2], in[3]);
    _mm_storeu_ps(p[0] + t0, in[0]), _mm_storeu_ps(p[1] + t0, in[1]);
    _mm_storeu_ps(p[2] + t0, in[2]), _mm_storeu_ps(p[3] + t0, in[3]);
}

/* the 0/1 mask bytes of slots t0 .. t0 + 3 of four lanes, one 32-bit word per lane */
static inline __m128i sg_mask4(const uint8_t *const *m, int64_t t0) {
    uint32_t w[4];
    for (int i = 0; i < 4; i++) memcpy(&w[i], m[i] + t0, 4);
    return _mm_setr_epi32((int)w[0], (int)w[1], (int)w[2], (int)w[3]);
}

/* all-ones lanes where slot t0 + j is valid */
static inline __m128 sg_valid4(__m128i words, int j) {
    __m128i byte = _mm_and_si128(_mm_srli_epi32(words, 8 * j), _mm_set1_epi32(0xff));
    return _mm_castsi128_ps(
        _mm_xor_si128(_mm_cmpeq_epi32(byte, _mm_setzero_si128()), _mm_set1_epi32(-1)));
}

/* valid ? a : b */
static inline __m128 sg_select(__m128 valid, __m128 a, __m128 b) {
    return _mm_or_ps(_mm_and_ps(valid, a), _mm_andnot_ps(valid, b));
}
#endif

// ----------------------------------------------------------------------------
// the backward-scan driver (scan.h)

static inline int64_t sg_len(const sg_geom *g, int64_t b) {
    return g->packed ? sg_off(g, b + 1) - sg_off(g, b) : g->T;
}

/* steps [k0, k1) of one row (step k is slot len - 1 - k), in chunks from the end */
static void sg_scan_solo(const sg_geom *g, sg_tok mask, sg_chunk_fn fn, const void *ctx,
                         int64_t b, int64_t len, int64_t k0, int64_t k1, float (*st)[2],
                         uint8_t *mbuf) {
    const uint8_t *m[SG_LANES] = {mbuf, mbuf, mbuf, mbuf};
    for (int64_t end = len - k0; end > len - k1; end -= SG_CHUNK) {
        const int64_t beg = end - SG_CHUNK > len - k1 ? end - SG_CHUNK : len - k1;
        sg_mask_chunk(g, mask, b, beg, end - beg, mbuf);
        fn(g, ctx, 1, &b, &beg, end - beg, m, st);
    }
}

/* Each of the SG_LANES lanes owns one sequence at a time and takes the next one when it ends, so
 * all lanes stay busy until the last sequences whatever their lengths; a chunk runs until the
 * lane with the fewest steps left ends its sequence (or SG_CHUNK steps). For long sequences lane
 * i first runs (SG_LANES - 1 - i) * SG_SKEW steps alone so the lanes' current slots are apart:
 * rows of padded tensors are often a multiple of 4 KiB apart, and lanes at the same column would
 * put all their streams in the same L1 sets. Equal-length rows keep that offset across refills. */
#define SG_SKEW 72

typedef struct sg_lanes {
    int64_t b[SG_LANES], len[SG_LANES], done[SG_LANES];
    float st[SG_LANES][2];
    int64_t next; /* the next sequence to hand out */
} sg_lanes;

/* gives lane i the next non-empty sequence; 0 when none is left */
static int sg_lane_take(const sg_geom *g, sg_lanes *l, int i) {
    while (l->next < g->B) {
        const int64_t b = l->next++;
        const int64_t n = sg_len(g, b);
        if (n == 0) continue;
        l->b[i] = b, l->len[i] = n, l->done[i] = 0;
        l->st[i][0] = l->st[i][1] = 0;
        return 1;
    }
    return 0;
}

void sg_scan_rows(const sg_geom *g, sg_tok mask, sg_chunk_fn fn, const void *ctx) {
    uint8_t mbuf[SG_LANES][SG_CHUNK];
    const uint8_t *m[SG_LANES] = {mbuf[0], mbuf[1], mbuf[2], mbuf[3]};
    sg_lanes l;
    memset(&l, 0, sizeof l);
    int live = 0; /* lanes holding a sequence */
    while (live < SG_LANES && sg_lane_take(g, &l, live)) live++;
    if (live == SG_LANES) {
        const int64_t mean = g->N / (g->B ? g->B : 1);
        const int64_t S = mean >= 8 * SG_SKEW ? SG_SKEW : 0;
        for (int i = 0; i < SG_LANES; i++) {
            const int64_t e = (SG_LANES - 1 - i) * S;
            l.done[i] = e < l.len[i] ? e : l.len[i];
            sg_scan_solo(g, mask, fn, ctx, l.b[i], l.len[i], 0, l.done[i], &l.st[i], mbuf[0]);
        }
        for (;;) {
            int full = 1;
            for (int i = 0; i < SG_LANES && full; i++)
                if (l.done[i] == l.len[i] && !sg_lane_take(g, &l, i)) full = 0;
            if (!full) break;
            int64_t cl = SG_CHUNK, pos[SG_LANES];
            for (int i = 0; i < SG_LANES; i++)
                cl = l.len[i] - l.done[i] < cl ? l.len[i] - l.done[i] : cl;
            for (int i = 0; i < SG_LANES; i++) {
                pos[i] = l.len[i] - l.done[i] - cl;
                sg_mask_chunk(g, mask, l.b[i], pos[i], cl, mbuf[i]);
            }
            fn(g, ctx, SG_LANES, l.b, pos, cl, m, l.st);
            for (int i = 0; i < SG_LANES; i++) l.done[i] += cl;
        }
    }
    /* every sequence has been handed out; finish the ones the lanes still hold, one at a time */
    for (int i = 0; i < live; i++)
        if (l.done[i] < l.len[i])
            sg_scan_solo(g, mask, fn, ctx, l.b[i], l.len[i], l.done[i], l.len[i], &l.st[i],
                         mbuf[0]);
}

// ----------------------------------------------------------------------------
// GAE
// state: (nv, A) = V of the next valid token, running advantage. Invalid tokens leave both
// unchanged and output the carried A.

typedef struct gae_ctx {
    sg_tok r, v, a, q;
    float gamma, gl;
} gae_ctx;

static void gae_chunk(const sg_geom *g, const void *vctx, int nrows, const int64_t *b,
                      const int64_t *pos, int64_t len, const uint8_t *const *m, float (*st)[2]) {
    const gae_ctx *c = (const gae_ctx *)vctx;
    const float gamma = c->gamma, gl = c->gl;
    const float *r[SG_LANES], *v[SG_LANES];
    float *a[SG_LANES], *q[SG_LANES];
    for (int i = 0; i < nrows; i++) {
        int64_t n;
        r[i] = sg_f32(c->r, sg_seq(g, c->r, b[i], &n) + pos[i]);
        v[i] = sg_f32(c->v, sg_seq(g, c->v, b[i], &n) + pos[i]);
        a[i] = sg_f32(c->a, sg_seq(g, c->a, b[i], &n) + pos[i]);
        q[i] = sg_f32(c->q, sg_seq(g, c->q, b[i], &n) + pos[i]);
    }
    if (nrows == 1) {
        float nv = st[0][0], A = st[0][1];
        for (int64_t t = len - 1; t >= 0; t--) {
            const float vt = v[0][t];
            if (m[0][t]) {
                A = r[0][t] + gamma * nv - vt + gl * A;
                nv = vt;
            }
            a[0][t] = A;
            q[0][t] = A + vt;
        }
        st[0][0] = nv, st[0][1] = A;
        return;
    }
    float nv0 = st[0][0], A0 = st[0][1], nv1 = st[1][0], A1 = st[1][1];
    float nv2 = st[2][0], A2 = st[2][1], nv3 = st[3][0], A3 = st[3][1];
#define SG_GAE_LANE(i)                                                                            \
    {                                                                                             \
        const float vt = v[i][t];                                                                 \
        const float na = r[i][t] + gamma * nv##i - vt + gl * A##i;                                \
        const int mk = m[i][t];                                                                   \
        A##i = mk ? na : A##i;                                                                    \
        nv##i = mk ? vt : nv##i;                                                                  \
        a[i][t] = A##i;                                                                           \
        q[i][t] = A##i + vt;                                                                      \
    }
    int64_t t = len - 1;
#ifdef SG_SIMD
    /* four slots of the four lanes per iteration: transposed, the lanes are SIMD lanes and the
     * recurrence steps slot by slot, with the scalar code's operations in the scalar code's order */
    {
        __m128 NV = _mm_setr_ps(nv0, nv1, nv2, nv3), A = _mm_setr_ps(A0, A1, A2, A3);
        const __m128 vg = _mm_set1_ps(gamma), vgl = _mm_set1_ps(gl);
        for (; t >= 3; t -= 4) {
            __m128 R[4], V[4], OA[4], OQ[4];
            sg_load4t((float *const *)r, t - 3, R);
            sg_load4t((float *const *)v, t - 3, V);
            const __m128i M = sg_mask4(m, t - 3);
            for (int j = 3; j >= 0; j--) {
                const __m128 valid = sg_valid4(M, j);
                const __m128 na = _mm_add_ps(
                    _mm_sub_ps(_mm_add_ps(R[j], _mm_mul_ps(vg, NV)), V[j]), _mm_mul_ps(vgl, A));
                A = sg_select(valid, na, A);
                NV = sg_select(valid, V[j], NV);
                OA[j] = A;
                OQ[j] = _mm_add_ps(A, V[j]);
            }
            sg_store4t(a, t - 3, OA);
            sg_store4t(q, t - 3, OQ);
        }
        float s4[4];
        _mm_storeu_ps(s4, NV);
        nv0 = s4[0], nv1 = s4[1], nv2 = s4[2], nv3 = s4[3];
        _mm_storeu_ps(s4, A);
        A0 = s4[0], A1 = s4[1], A2 = s4[2], A3 = s4[3];
    }
#endif
    for (; t >= 0; t--) {
        SG_GAE_LANE(0) SG_GAE_LANE(1) SG_GAE_LANE(2) SG_GAE_LANE(3)
    }
#undef SG_GAE_LANE
    st[0][0] = nv0, st[0][1] = A0, st[1][0] = nv1, st[1][1] = A1;
    st[2][0] = nv2, st[2][1] = A2, st[3][0] = nv3, st[3][1] = A3;
}

void sg_cpu_gae(const sg_geom *g, sg_tok rewards, sg_tok values, sg_tok mask, float gamma,
                float lambda, sg_tok adv, sg_tok ret) {
    const gae_ctx c = {rewards, values, adv, ret, gamma, gamma * lambda};
    sg_scan_rows(g, mask, gae_chunk, &c);
}

// ----------------------------------------------------------------------------
// discounted returns with an optional KL penalty folded into the reward
// state: G, the running return.

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

typedef struct ret_ctx {
    sg_tok r, lp, rf, out;
    float gamma, beta;
    int32_t kl; /* SEGRL_KL_NONE: no penalty */
} ret_ctx;

static void ret_chunk(const sg_geom *g, const void *vctx, int nrows, const int64_t *b,
                      const int64_t *pos, int64_t len, const uint8_t *const *m, float (*st)[2]) {
    const ret_ctx *c = (const ret_ctx *)vctx;
    const float gamma = c->gamma, beta = c->beta;
    const float *r[SG_LANES], *lp[SG_LANES] = {0}, *rf[SG_LANES] = {0};
    float *o[SG_LANES];
    for (int i = 0; i < nrows; i++) {
        int64_t n;
        r[i] = sg_f32(c->r, sg_seq(g, c->r, b[i], &n) + pos[i]);
        o[i] = sg_f32(c->out, sg_seq(g, c->out, b[i], &n) + pos[i]);
        if (c->kl) {
            lp[i] = sg_f32(c->lp, sg_seq(g, c->lp, b[i], &n) + pos[i]);
            rf[i] = sg_f32(c->rf, sg_seq(g, c->rf, b[i], &n) + pos[i]);
        }
    }
    if (c->kl) { /* bounded by the KL arithmetic (expf): one row at a time is enough */
        for (int i = 0; i < nrows; i++) {
            float G = st[i][0];
            for (int64_t t = len - 1; t >= 0; t--) {
                if (m[i][t]) G = (r[i][t] - beta * sg_kl(c->kl, lp[i][t], rf[i][t])) + gamma * G;
                o[i][t] = G;
            }
            st[i][0] = G;
        }
        return;
    }
    if (nrows == 1) {
        float G = st[0][0];
        for (int64_t t = len - 1; t >= 0; t--) {
            if (m[0][t]) G = r[0][t] + gamma * G;
            o[0][t] = G;
        }
        st[0][0] = G;
        return;
    }
    float G0 = st[0][0], G1 = st[1][0], G2 = st[2][0], G3 = st[3][0];
#define SG_RET_LANE(i)                                                                            \
    {                                                                                             \
        const float ng = r[i][t] + gamma * G##i;                                                  \
        G##i = m[i][t] ? ng : G##i;                                                               \
        o[i][t] = G##i;                                                                           \
    }
    int64_t t = len - 1;
#ifdef SG_SIMD
    {
        __m128 G = _mm_setr_ps(G0, G1, G2, G3);
        const __m128 vg = _mm_set1_ps(gamma);
        for (; t >= 3; t -= 4) {
            __m128 R[4], O[4];
            sg_load4t((float *const *)r, t - 3, R);
            const __m128i M = sg_mask4(m, t - 3);
            for (int j = 3; j >= 0; j--) {
                G = sg_select(sg_valid4(M, j), _mm_add_ps(R[j], _mm_mul_ps(vg, G)), G);
                O[j] = G;
            }
            sg_store4t(o, t - 3, O);
        }
        float s4[4];
        _mm_storeu_ps(s4, G);
        G0 = s4[0], G1 = s4[1], G2 = s4[2], G3 = s4[3];
    }
#endif
    for (; t >= 0; t--) {
        SG_RET_LANE(0) SG_RET_LANE(1) SG_RET_LANE(2) SG_RET_LANE(3)
    }
#undef SG_RET_LANE
    st[0][0] = G0, st[1][0] = G1, st[2][0] = G2, st[3][0] = G3;
}

void sg_cpu_returns(const sg_geom *g, sg_tok rewards, sg_tok mask, sg_tok logp, sg_tok ref,
                    float gamma, float beta, int32_t kl, sg_tok out) {
    const int penalty = beta != 0.0f && kl != SEGRL_KL_NONE;
    const ret_ctx c = {rewards, logp, ref, out, gamma, beta, penalty ? kl : SEGRL_KL_NONE};
    sg_scan_rows(g, mask, ret_chunk, &c);
}

// ----------------------------------------------------------------------------
// masked whitening
// stats[k * SG_GROUP_STATS + {0, 1, 2}] = count, sum, sum of squares of group k.
// One pass for the statistics in f64, one pass to write.

static inline int64_t sg_group_of(const void *gidx, int32_t dt, int64_t b) {
    if (!gidx) return 0;
    return dt == SEGRL_DTYPE_I32 ? (int64_t)((const int32_t *)gidx)[b] : ((const int64_t *)gidx)[b];
}

/* count, sum and sum of squares of the valid tokens of one sequence: four f64 accumulators by
 * position mod 4 (independent chains, and the same order for padded and packed layouts) */
static void sg_row_moments(const float *x, sg_tok m, int64_t ms, int64_t n, double out[3]) {
    double s[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0};
    int64_t c = 0;
    SG_WITH_MASK(m, ms, P,
                 for (int64_t t = 0; t < n; t++) {
                     const int ok = P[t] != 0;
                     const double v = ok ? (double)x[t] : 0.0;
                     c += ok;
                     s[t & 3] += v;
                     q[t & 3] += v * v;
                 },
                 for (int64_t t = 0; t < n; t++) {
                     const double v = (double)x[t];
                     s[t & 3] += v;
                     q[t & 3] += v * v;
                 } c = n)
    out[0] = (double)c;
    out[1] = (s[0] + s[1]) + (s[2] + s[3]);
    out[2] = (q[0] + q[1]) + (q[2] + q[3]);
}

void sg_cpu_whiten(const sg_geom *g, sg_tok x, sg_tok mask, const void *gidx, int32_t gidx_dtype,
                   int64_t G, const segrl_whiten_opts *o, double *stats, sg_tok out) {
    const int64_t ng = gidx ? G : 1;
    memset(stats, 0, (size_t)ng * SG_GROUP_STATS * sizeof(double));
    for (int64_t b = 0; b < g->B; b++) {
        int64_t n;
        const float *xs = sg_f32(x, sg_seq(g, x, b, &n));
        double *s = stats + sg_group_of(gidx, gidx_dtype, b) * SG_GROUP_STATS, row[3];
        sg_row_moments(xs, mask, sg_mask_slot(g, mask, b), n, row);
        s[0] += row[0];
        s[1] += row[1];
        s[2] += row[2];
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
        SG_WITH_MASK(mask, sg_mask_slot(g, mask, b), P,
                     for (int64_t t = 0; t < n; t++) os[t] =
                         P[t] != 0 ? (xs[t] - mean) * inv + add : 0.0f,
                     for (int64_t t = 0; t < n; t++) os[t] = (xs[t] - mean) * inv + add)
    }
}
