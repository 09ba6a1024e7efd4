/* softmax_row.c — the online softmax of one row (softmax_row.h), written with GCC/Clang vector
 * extensions (8 lanes) so the compiler emits SSE2 or, on x86-64 CPUs that have them, AVX2+FMA
 * (chosen per call, see SG_DISPATCH). The exponential is a Cody-Waite range reduction and a degree-6 Taylor
 * polynomial: |relative error| < 2e-7 on [-87, 88], 0 below -87.3 (f32 underflow anyway).
 * The grad body's scalar tail uses expf. */
#include "softmax_row.h"

#include "loss_impl.h"

#include <math.h>
#include <string.h>

/* x86-64: each hot function is compiled twice, for the baseline (SSE2) and for AVX2 + FMA, and
 * the AVX2 one is called when the CPU has both (checked per call: a cached cpuid bit).
 * (target_clones("arch=haswell") would test for an Intel Haswell model, not the features.) */
#if defined(__x86_64__) && defined(__GNUC__)
#define SG_X86 1
#define SG_AVX2 __attribute__((target("avx2,fma")))
static int sg_have_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#define SG_DISPATCH(name, args)                                                                   \
    do {                                                                                          \
        if (sg_have_avx2()) name##_avx2 args;                                                     \
        else name##_base args;                                                                    \
    } while (0)
#else
#define SG_DISPATCH(name, args) name##_base args
#endif
#define SG_BODY static inline __attribute__((always_inline))

/* the polynomial and the accumulations may use fused multiply-adds (the project builds with
 * -std=c11, which otherwise turns contraction off) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

/* the 8-lane helpers below are always inlined: no vector crosses a call boundary */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

#define SG_V 8
#define SG_BLOCK 2048 /* elements handled per max+exp round: 8 KiB of f32, stays in L1 */

static inline __attribute__((always_inline)) v8f v8_splat(float c) { return (v8f){c, c, c, c, c, c, c, c}; }
static inline __attribute__((always_inline)) v8f v8_sel(v8i m, v8f a, v8f b) { return (v8f)((m & (v8i)a) | (~m & (v8i)b)); }
static inline __attribute__((always_inline)) v8f v8_max(v8f a, v8f b) { return v8_sel(a > b, a, b); }
static inline __attribute__((always_inline)) v8f v8_load(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}
/* the first k < 8 elements of p, the rest `fill` */
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

static void sg_srow_add_base(sg_srow *r, const float *x, int64_t n, float scale) {
    sg_srow_add_body(r, x, n, scale);
}
#ifdef SG_X86
SG_AVX2 static void sg_srow_add_avx2(sg_srow *r, const float *x, int64_t n, float scale) {
    sg_srow_add_body(r, x, n, scale);
}
#endif

void sg_srow_add_f32(sg_srow *r, const float *x, int64_t n, float scale) {
    SG_DISPATCH(sg_srow_add, (r, x, n, scale));
}

void sg_srow_finish(const sg_srow *r, float *lse, float *ent, float *sp2) {
    if (!(r->s > 0.0)) {
        *lse = -__builtin_inff();
        *ent = 0.0f;
        *sp2 = 0.0f;
        return;
    }
    const double ls = log(r->s);
    *lse = (float)(r->M + ls);
    *ent = (float)(ls - r->t / r->s);
    *sp2 = (float)(r->q / (r->s * r->s));
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

static void sg_srow_grad_base(const float *x, int64_t n, float scale, float lse, float H,
                              float g, float h, int64_t y, float *d) {
    sg_srow_grad_body(x, n, scale, lse, H, g, h, y, d);
}
#ifdef SG_X86
SG_AVX2 static void sg_srow_grad_avx2(const float *x, int64_t n, float scale, float lse, float H,
                                      float g, float h, int64_t y, float *d) {
    sg_srow_grad_body(x, n, scale, lse, H, g, h, y, d);
}
#endif

void sg_srow_grad_f32(const float *x, int64_t n, float scale, float lse, float H, float g,
                      float h, int64_t y, float *d) {
    SG_DISPATCH(sg_srow_grad, (x, n, scale, lse, H, g, h, y, d));
}

SG_BODY void sg_load_body(const void *p, int32_t dt, int64_t n, float *out) {
    if (dt == SEGRL_DTYPE_F32) {
        memcpy(out, p, (size_t)n * sizeof(float));
    } else if (dt == SEGRL_DTYPE_BF16) {
        const uint16_t *h = (const uint16_t *)p;
        for (int64_t j = 0; j < n; j++) {
            const uint32_t u = (uint32_t)h[j] << 16;
            memcpy(&out[j], &u, 4);
        }
    } else {
        const uint16_t *h = (const uint16_t *)p;
        for (int64_t j = 0; j < n; j++) out[j] = sg_f16_to_f32(h[j]);
    }
}

static void sg_load_base(const void *p, int32_t dt, int64_t n, float *out) {
    sg_load_body(p, dt, n, out);
}
#ifdef SG_X86
SG_AVX2 static void sg_load_avx2(const void *p, int32_t dt, int64_t n, float *out) {
    sg_load_body(p, dt, n, out);
}
#endif

void sg_load_f32(const void *p, int32_t dt, int64_t n, float *out) {
    SG_DISPATCH(sg_load, (p, dt, n, out));
}

void sg_store_f32(void *p, int32_t dt, int64_t n, const float *in) {
    if (dt == SEGRL_DTYPE_F32) {
        memmove(p, in, (size_t)n * sizeof(float));
        return;
    }
    for (int64_t j = 0; j < n; j++) sg_stf(p, dt, j, in[j]);
}
