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

/* the lane helpers (softmax_row_body.h) are always inlined: no vector crosses a call boundary */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#define SG_BLOCK 2048 /* elements handled per max+exp round: 8 KiB of f32, stays in L1 */

#define SG_W 4
#include "softmax_row_body.h"
#undef SG_W
#ifdef SG_X86
#define SG_W 8
#include "softmax_row_body.h"
#undef SG_W
#endif

static void sg_srow_add_base(sg_srow *r, const float *x, int64_t n, float scale) {
    sg_srow_add_body_w4(r, x, n, scale);
}
#ifdef SG_X86
SG_AVX2 static void sg_srow_add_avx2(sg_srow *r, const float *x, int64_t n, float scale) {
    sg_srow_add_body_w8(r, x, n, scale);
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

static void sg_srow_grad_base(const float *x, int64_t n, float scale, float lse, float H,
                              float g, float h, int64_t y, float *d) {
    sg_srow_grad_body_w4(x, n, scale, lse, H, g, h, y, d);
}
#ifdef SG_X86
SG_AVX2 static void sg_srow_grad_avx2(const float *x, int64_t n, float scale, float lse, float H,
                                      float g, float h, int64_t y, float *d) {
    sg_srow_grad_body_w8(x, n, scale, lse, H, g, h, y, d);
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
