/* loss_impl.h — private to the loss area (the .c files of src/loss/ and kernels/loss.cu): float storage
 * conversions, the per-token policy-loss math shared by the CPU reference and the CUDA kernel,
 * validated argument bundles and the CUDA entry points.
 * Plain C; functions marked SG_HD are compiled for the device too when nvcc includes this. */
#ifndef SEGRL_LOSS_IMPL_H
#define SEGRL_LOSS_IMPL_H

#include "../internal.h"

#include <math.h>
#include <string.h>

#ifdef __CUDACC__
#define SG_HD __host__ __device__ __forceinline__
#else
#define SG_HD static inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// storage conversions: f32 / bf16 / f16 (IEEE binary16), round to nearest even

SG_HD float sg_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
SG_HD uint32_t sg_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

SG_HD float sg_bf16_to_f32(uint16_t h) { return sg_bits_f32((uint32_t)h << 16); }

SG_HD uint16_t sg_f32_to_bf16(float f) {
    uint32_t u = sg_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

SG_HD float sg_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) { /* zero or subnormal: m * 2^-24 */
        float v = (float)m * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (e == 31) return sg_bits_f32(sign | 0x7f800000u | (m << 13)); /* Inf / NaN */
    return sg_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

SG_HD uint16_t sg_f32_to_f16(float f) {
    uint32_t u = sg_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);   /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  /* rounds to >= 65520: Inf */
    if (a < 0x38800000u) {                                    /* below 2^-14: subnormal / zero */
        /* value * 2^24 rounded to nearest even */
        float v = sg_bits_f32(a) * 16777216.0f;
        uint32_t q = (uint32_t)v;
        float r = v - (float)q;
        if (r > 0.5f || (r == 0.5f && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = (a >> 23) - 112u, m = a & 0x7fffffu;
    uint32_t h = (e << 10) | (m >> 13);
    uint32_t rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

SG_HD float sg_ldf(const void *p, int32_t dt, int64_t i) {
    if (dt == SEGRL_DTYPE_F32) return ((const float *)p)[i];
    if (dt == SEGRL_DTYPE_BF16) return sg_bf16_to_f32(((const uint16_t *)p)[i]);
    return sg_f16_to_f32(((const uint16_t *)p)[i]);
}

SG_HD void sg_stf(void *p, int32_t dt, int64_t i, float v) {
    if (dt == SEGRL_DTYPE_F32) ((float *)p)[i] = v;
    else if (dt == SEGRL_DTYPE_BF16) ((uint16_t *)p)[i] = sg_f32_to_bf16(v);
    else ((uint16_t *)p)[i] = sg_f32_to_f16(v);
}

/* mask value non-zero (u8 / i32 / i64 / f32) */
SG_HD int sg_mask_on(const void *p, int32_t dt, int64_t i) {
    switch (dt) {
    case SEGRL_DTYPE_U8: return ((const uint8_t *)p)[i] != 0;
    case SEGRL_DTYPE_I32: return ((const int32_t *)p)[i] != 0;
    case SEGRL_DTYPE_I64: return ((const int64_t *)p)[i] != 0;
    default: return ((const float *)p)[i] != 0.0f;
    }
}

SG_HD int64_t sg_ld_index(const void *p, int32_t dt, int64_t i) {
    return dt == SEGRL_DTYPE_I32 ? (int64_t)((const int32_t *)p)[i] : ((const int64_t *)p)[i];
}

// ----------------------------------------------------------------------------
// the per-token policy-loss terms (formulas: include/segrl/loss.h, docs/losses.md)

/* One token's terms and their derivatives with respect to its own inputs. */
typedef struct sg_pl_tok {
    float pg, dpg;   /* surrogate l_t, dl_t / dlogp_t (stop-gradients applied) */
    float kl, dkl;   /* kl_t, dkl_t / dlogp_t */
    float vl, dvl;   /* value term, d / dvalues_t */
    float ratio;     /* r_t (GSPO: s_b) */
    int clip_low, clip_high, dual, vclip;
} sg_pl_tok;

SG_HD float sg_clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* seq_lr: GSPO only, the clamped mean log-ratio of the token's sequence; seq_clamped: the clamp
 * was active (no gradient then). */
SG_HD void sg_pl_token(const segrl_policy_loss_opts *o, float lp, float olp, float A, float seq_lr,
                       int seq_clamped, int kl_on, float ref, int val_on, float v, float ov,
                       float R, sg_pl_tok *t) {
    const float lo = 1.0f - o->clip_low, hi = 1.0f + o->clip_high;
    t->clip_low = t->clip_high = t->dual = t->vclip = 0;
    t->kl = t->dkl = t->vl = t->dvl = 0.0f;
    if (o->mode == SEGRL_PG_REINFORCE) {
        t->ratio = 1.0f;
        t->pg = -A * lp;
        t->dpg = -A;
    } else if (o->mode == SEGRL_PG_CISPO) {
        const float d = lp - olp, C = o->log_ratio_clamp;
        const float r = expf(sg_clampf(d, -C, C));
        float w = r;
        if (w > hi) w = hi, t->clip_high = 1;
        if (o->clip_low > 0.0f && w < lo) w = lo, t->clip_low = 1;
        t->ratio = r;
        t->pg = -w * A * lp;
        t->dpg = -w * A;
    } else {
        float r, dr;
        if (o->mode == SEGRL_PG_GSPO) {
            r = expf(seq_lr);
            dr = seq_clamped ? 0.0f : r; /* d/dlogp_t of sg(s_b) * exp(logp_t - sg(logp_t)) */
        } else {
            const float d = lp - olp, C = o->log_ratio_clamp;
            const float dc = sg_clampf(d, -C, C);
            r = expf(dc);
            dr = dc == d ? r : 0.0f;
        }
        t->ratio = r;
        const float l1 = -A * r, l2 = -A * sg_clampf(r, lo, hi);
        if (l2 > l1) { /* clipped: the max picks the constant branch */
            t->pg = l2;
            t->dpg = 0.0f;
            if (A > 0.0f) t->clip_high = 1;
            else t->clip_low = 1;
        } else {
            t->pg = l1;
            t->dpg = -A * dr;
        }
        if (o->mode == SEGRL_PG_PPO && o->clip_c > 0.0f && A < 0.0f && t->pg > -A * o->clip_c) {
            t->pg = -A * o->clip_c; /* dual clip: bounded by -c A */
            t->dpg = 0.0f;
            t->dual = 1;
        }
    }
    if (kl_on) {
        const float d = lp - ref;
        switch (o->kl_type) {
        case SEGRL_KL_K1: t->kl = d, t->dkl = 1.0f; break;
        case SEGRL_KL_ABS: t->kl = fabsf(d), t->dkl = d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f); break;
        case SEGRL_KL_K2: t->kl = 0.5f * d * d, t->dkl = d; break;
        default: { /* K3 */
            const float dc = sg_clampf(d, -20.0f, 20.0f), e = expf(-dc);
            float k = e + dc - 1.0f;
            float dk = dc == d ? 1.0f - e : 0.0f;
            if (k > 10.0f) k = 10.0f, dk = 0.0f;
            if (k < -10.0f) k = -10.0f, dk = 0.0f;
            t->kl = k, t->dkl = dk;
        }
        }
    }
    if (val_on) {
        const float e1 = v - R;
        if (o->value_clip > 0.0f) {
            const float dv = v - ov, dc = sg_clampf(dv, -o->value_clip, o->value_clip);
            const float e2 = (ov + dc) - R;
            if (e2 * e2 > e1 * e1) {
                /* the clipped branch is constant in v where the clamp is active; where it is not,
                 * ov + (v - ov) can still differ from v by an ulp and win the max: then it is
                 * v - R up to rounding and its derivative is e2 */
                const int active = dc != dv;
                t->vl = 0.5f * e2 * e2, t->dvl = active ? 0.0f : e2, t->vclip = active;
                return;
            }
        }
        t->vl = 0.5f * e1 * e1, t->dvl = e1;
    }
}

// ----------------------------------------------------------------------------
// validated arguments

/* The policy-loss call once validated (token tensors may be absent: data NULL). */
typedef struct sg_pl_args {
    sg_tok logp, old, adv, ref, ent, val, oldv, ret, mask, pmask;
    segrl_policy_loss_opts o;
    int kl_on, val_on;
} sg_pl_args;

/* Batch-wide results of the policy loss (f64 sums; CUDA accumulates them in the workspace). */
enum {
    SG_PL_NT = 0,   /* valid tokens */
    SG_PL_S,        /* sequences with a valid token */
    SG_PL_MAXLEN,   /* the longest sequence (slots) */
    SG_PL_PG,       /* sum w_t l_t */
    SG_PL_KL,       /* sum w_t kl_t */
    SG_PL_ENT,      /* sum w_t entropy_t */
    SG_PL_VAL,      /* sum w_t value_t */
    SG_PL_CLIP_LO,  /* counts */
    SG_PL_CLIP_HI,
    SG_PL_DUAL,
    SG_PL_VCLIP,
    SG_PL_LR,       /* sum (old_logp - logp) */
    SG_PL_RATIO,    /* sum r */
    SG_PL_RMAX,
    SG_PL_RMIN,
    SG_PL_KLSUM,    /* sum kl_t */
    SG_PL_ENTSUM,   /* sum entropy_t */
    SG_PL_NSTAT = 17
};

/* The aggregation denominator D of the call (see segrl_loss_agg) from NT, S, the longest
 * sequence and T; w_t = 1 / D, or 1 / (D * n_b) for SEQ_MEAN_TOKEN_MEAN. */
SG_HD double sg_pl_denominator(const segrl_policy_loss_opts *o, double NT, double S,
                               double maxlen, int packed, int64_t T) {
    if (o->normalizer > 0.0) return o->normalizer;
    switch (o->agg) {
    case SEGRL_AGG_TOKEN_MEAN: return NT;
    case SEGRL_AGG_SEQ_MEAN_TOKEN_SUM_NORM: return packed ? maxlen : (double)T;
    default: return S;
    }
}

/* Policy-loss workspace: [check scratch][per sequence: n_b, mean log-ratio (2 doubles)]
 * [SG_PL_NSTAT doubles] */
static inline size_t sg_pl_ws_size(int64_t B) {
    return SG_WS_CHECK_BYTES + sg_align((size_t)B * 2 * sizeof(double)) +
           sg_align(SG_PL_NSTAT * sizeof(double));
}

/* A validated logits-like (rows, cols) matrix: element (i, j) at data + i * ld + j. */
typedef struct sg_mat {
    void *data;
    int32_t dtype;
    int64_t rows, cols, ld;
} sg_mat;

#ifdef SEGRL_WITH_CUDA
/* The CUDA policy loss. ws: sg_pl_ws_size(B) bytes of device memory. Forward (grads all NULL):
 * leaves the SG_PL_NSTAT sums in host_stats (synchronizes) when host_stats is non-NULL and the
 * loss in out_loss (device f32) when non-NULL. Backward: writes the gradients (sg_tok data may be
 * NULL for absent ones); grad_loss device f32 or NULL. Returns the content-check failure as
 * *bad_arg (index into a fixed name list, -1 none) and *bad_pos. */
segrl_status sg_cuda_policy_loss(const sg_geom *g, const sg_pl_args *a, int check, void *ws,
                                 void *stream, float *out_loss, double *host_stats,
                                 const float *grad_loss, sg_tok dlogp, sg_tok dent, sg_tok dval,
                                 int *bad_arg, int64_t *bad_pos);

/* Fused log-probs on CUDA. Results staged in ws (5 * N floats after the check scratch), copied to
 * the outputs (NULL: skipped) only when no row failed; *bad_row / *bad_kind report the first
 * failure found (kind 1: target >= V, 2: non-finite logit row) after a synchronization when
 * check != 0. */
segrl_status sg_cuda_logprobs_fwd(sg_mat logits, const void *tgt, int32_t tdt, float inv_temp,
                                  int check, void *ws, void *stream, float *logp, float *ent,
                                  float *lse, float *pt, float *sp2, int64_t *bad_row,
                                  int *bad_kind);
segrl_status sg_cuda_logprobs_bwd(sg_mat logits, const void *tgt, int32_t tdt, float inv_temp,
                                  const float *lse, const float *ent, const float *g,
                                  const float *h, sg_mat out, int check, void *ws, void *stream,
                                  int64_t *bad_row);
size_t sg_cuda_logprobs_ws(int64_t N);

/* Fused linear on CUDA (cuBLAS through dlopen). */
size_t sg_cuda_linear_ws(int64_t N, int64_t D, int64_t V, int64_t tc, int64_t vc, int backward);
segrl_status sg_cuda_linear_fwd(sg_mat H, sg_mat W, const void *tgt, int32_t tdt, float inv_temp,
                                int64_t tc, int64_t vc, int check, void *ws, size_t ws_bytes,
                                void *stream, float *logp, float *ent, float *lse, float *pt,
                                float *sp2, int64_t *bad_row, int *bad_kind);
segrl_status sg_cuda_linear_bwd(sg_mat H, sg_mat W, const void *tgt, int32_t tdt, float inv_temp,
                                const float *lse, const float *ent, const float *g,
                                const float *h, int64_t tc, int64_t vc, int accumulate, void *ws,
                                size_t ws_bytes, void *stream, float *dH, int64_t ldh, float *dW,
                                int64_t ldw);
#endif

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_LOSS_IMPL_H */
