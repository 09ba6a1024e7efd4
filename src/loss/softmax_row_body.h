/* softmax_row_body.h — private to softmax_row.c, included once per vector width SG_W (4: SSE2 /
 * NEON baseline, 8: AVX2+FMA): the lane helpers, the exponential and the two row bodies, their
 * names suffixed with the width. 8 generic lanes on plain SSE2 compile to slow code (measured
 * 7.4 ns per logit against 2.2 ns with 4 lanes), hence two widths. */
#ifndef SG_W
#error "define SG_W (4 or 8) before including softmax_row_body.h"
#endif

#define SG_CAT_(a, b) a##b
#define SG_CAT(a, b) SG_CAT_(a, b)
#define SG_V SG_W
#define v8f SG_CAT(v8f_w, SG_W)
#define v8i SG_CAT(v8i_w, SG_W)
#define v8_splat SG_CAT(v8_splat_w, SG_W)
#define v8_sel SG_CAT(v8_sel_w, SG_W)
#define v8_max SG_CAT(v8_max_w, SG_W)
#define v8_load_tail SG_CAT(v8_load_tail_w, SG_W)
#define v8_load SG_CAT(v8_load_w, SG_W)
#define v8_exp_neg SG_CAT(v8_exp_neg_w, SG_W)
#define v8_exp SG_CAT(v8_exp_w, SG_W)
#define v8_hmax SG_CAT(v8_hmax_w, SG_W)
#define v8_hsum SG_CAT(v8_hsum_w, SG_W)
#define sg_srow_add_body SG_CAT(sg_srow_add_body_w, SG_W)
#define sg_srow_grad_body SG_CAT(sg_srow_grad_body_w, SG_W)

typedef float v8f __attribute__((vector_size(SG_W * 4)));
typedef int32_t v8i __attribute__((vector_size(SG_W * 4)));

static inline __attribute__((always_inline)) v8f v8_splat(float c) { return (v8f){0} + c; }
static inline __attribute__((always_inline)) v8f v8_sel(v8i m, v8f a, v8f b) { return (v8f)((m & (v8i)a) | (~m & (v8i)b)); }
static inline __attribute__((always_inline)) v8f v8_max(v8f a, v8f b) { return v8_sel(a > b, a, b); }
static inline __attribute__((always_inline)) v8f v8_load(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}
/* the first k < SG_V elements of p, the rest `fill` */
static inline __attribute__((always_inline)) v8f v8_load_tail(const float *p, int64_t k, float fill) {
    float b[SG_V];
    for (int i = 0; i < SG_V; i++) b[i] = i < k ? p[i] : fill;
    return v8_load(b);
}

static inline __attribute__((always_inline)) v8f v8_exp(v8f x) {
    const v8f lo = v8_splat(-87.33f), hi = v8_splat(88.0f);
    const v8f magic = v8_splat(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    const v8i under = x < lo;
    x = v8_sel(x > hi, hi, x);
    x = v8_sel(under, lo, x);
    const v8f f = x * 1.44269504088896341f + magic;
    const v8i n = (v8i)f - (v8i)magic;
    const v8f nf = f - magic;
    const v8f r = x - nf * 0.693145751953125f - nf * 1.428606765330187e-06f;
    v8f p = v8_splat(1.0f / 720.0f);
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const v8i bits = (n + 127) << 23;
    return v8_sel(under, v8_splat(0.0f), p * (v8f)bits);
}

/* e^x for x <= 0 (softmax exponents relative to the running maximum): no overflow clamp, and
 * x below -87.33 gives e^-87.33 ~ 1e-38 instead of 0, invisible next to the row's sum >= 1 */
static inline __attribute__((always_inline)) v8f v8_exp_neg(v8f x) {
    const v8f magic = v8_splat(12582912.0f);
    x = v8_max(x, v8_splat(-87.33f));
    const v8f f = x * 1.44269504088896341f + magic;
    const v8i n = (v8i)f - (v8i)magic;
    const v8f nf = f - magic;
    const v8f r = x - nf * 0.693145751953125f - nf * 1.428606765330187e-06f;
    v8f p = v8_splat(1.0f / 720.0f);
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return p * (v8f)((n + 127) << 23);
}

static inline __attribute__((always_inline)) float v8_hmax(v8f v) {
    float m = v[0];
    for (int i = 1; i < SG_V; i++) m = v[i] > m ? v[i] : m;
    return m;
}
static inline __attribute__((always_inline)) double v8_hsum(v8f v) {
    double s = 0;
    for (int i = 0; i < SG_V; i++) s += v[i];
    return s;
}

SG_BODY void sg_srow_add_body(sg_srow *r, const float *x, int64_t n, float scale) {
    const float ninf = -__builtin_inff();
    for (int64_t b0 = 0; b0 < n; b0 += SG_BLOCK) {
        const int64_t m = n - b0 < SG_BLOCK ? n - b0 : SG_BLOCK;
        const float *xb = x + b0;
        const int64_t mv = m / SG_V * SG_V;
        /* 1. the block's maximum, and NaN / +Inf detection */
        v8f vmax = v8_splat(ninf);
        v8i vbad = (v8i){0};
        const v8f pinf = v8_splat(__builtin_inff());
        for (int64_t j = 0; j < mv; j += SG_V) {
            const v8f v = v8_load(xb + j);
            vmax = v8_max(vmax, v);
            vbad |= (v != v) | (v == pinf);
        }
        if (mv < m) {
            const v8f v = v8_load_tail(xb + mv, m - mv, ninf);
            vmax = v8_max(vmax, v);
            vbad |= (v != v) | (v == pinf);
        }
        for (int i = 0; i < SG_V; i++) r->bad |= vbad[i] != 0;
        const float bmax = v8_hmax(vmax) * scale;
        if (!(bmax > ninf)) continue; /* every entry -inf (or NaN: flagged above) */
        if (bmax > r->M) {
            if (r->s > 0.0) {
                const double d = (double)bmax - r->M, a = exp(-d);
                r->t = a * (r->t - d * r->s);
                r->s *= a;
                r->q *= a * a;
            }
            r->M = bmax;
        }
        /* 2. exponentials relative to the running maximum */
        const v8f M = v8_splat(r->M), floor_u = v8_splat(-100.0f);
        /* two sets of accumulators: the adds of one iteration do not wait on the previous */
        v8f S = v8_splat(0.0f), T = S, Q = S, S2 = S, T2 = S, Q2 = S;
        int64_t j = 0;
        const float *next = b0 + SG_BLOCK < n ? xb + SG_BLOCK : xb; /* prefetch the next block */
        for (; j + 2 * SG_V <= mv; j += 2 * SG_V) {
            __builtin_prefetch(next + j);
            const v8f u = v8_max(v8_load(xb + j) * scale - M, floor_u);
            const v8f u2 = v8_max(v8_load(xb + j + SG_V) * scale - M, floor_u);
            const v8f e = v8_exp_neg(u), e2 = v8_exp_neg(u2);
            S += e, S2 += e2;
            T += e * u, T2 += e2 * u2;
            Q += e * e, Q2 += e2 * e2;
        }
        for (; j < mv; j += SG_V) {
            const v8f u = v8_max(v8_load(xb + j) * scale - M, floor_u);
            const v8f e = v8_exp_neg(u);
            S += e;
            T += e * u;
            Q += e * e;
        }
        S += S2, T += T2, Q += Q2;
        if (mv < m) {
            const v8f u = v8_max(v8_load_tail(xb + mv, m - mv, ninf) * scale - M, floor_u);
            const v8f e = v8_sel(u > floor_u, v8_exp_neg(u), v8_splat(0.0f)); /* padding: 0 */
            S += e;
            T += e * u;
            Q += e * e;
        }
        r->s += v8_hsum(S);
        r->t += v8_hsum(T);
        r->q += v8_hsum(Q);
    }
}

SG_BODY void sg_srow_grad_body(const float *x, int64_t n, float scale, float lse,
                                        float H, float g, float h, int64_t y, float *d) {
    const int64_t nv = n / SG_V * SG_V;
    const v8f L = v8_splat(lse), floor_u = v8_splat(-100.0f);
    for (int64_t j = 0; j < nv; j += SG_V) {
        const v8f lp = v8_max(v8_load(x + j) * scale - L, floor_u); /* log p_j */
        const v8f p = v8_exp(lp);
        const v8f v = -p * (g + h * (lp + H)) * scale;
        memcpy(d + j, &v, sizeof v);
    }
    for (int64_t j = nv; j < n; j++) {
        float lp = x[j] * scale - lse;
        if (lp < -100.0f) lp = -100.0f;
        const float p = lp < -87.33f ? 0.0f : expf(lp);
        d[j] = -p * (g + h * (lp + H)) * scale;
    }
    if (y >= 0 && y < n) d[y] += g * scale;
}

#undef v8f
#undef v8i
#undef v8_splat
#undef v8_sel
#undef v8_max
#undef v8_load_tail
#undef v8_load
#undef v8_exp_neg
#undef v8_exp
#undef v8_hmax
#undef v8_hsum
#undef sg_srow_add_body
#undef sg_srow_grad_body
#undef SG_V
#undef SG_CAT
#undef SG_CAT_
