/* loss.cu — CUDA kernels of the loss area: the policy loss (forward and backward), the fused
 * log-probabilities from logits, and the fused linear path with cuBLAS. Semantics of record:
 * src/loss/policy.c, src/loss/logprob.c, src/loss/linear.c (the per-token policy math is the very
 * same function, sg_pl_token in src/loss/loss_impl.h, compiled for the device).
 *
 * Policy loss: three kernels, one block per sequence.
 *   pl_seq:    n_b, mean log-ratio of sequence b (GSPO), batch counts (atomics), content checks
 *              (the first bad input in CPU order: key = flat token * 8 + argument, atomicMin)
 *   pl_tok:    the aggregation denominator from the counts (on the device: no host round trip
 *              without checks), the per-token terms, f64 block sums into the workspace, or the
 *              gradients (backward)
 *   pl_finish: the scalar loss
 * With SEGRL_CHECKS_FULL the host synchronizes once after pl_seq (bad input, zero valid tokens).
 *
 * Fused log-probs: one block per row, each thread an online softmax state (M, s, t, q) over a
 * strided slice of the row, merged across the block (see src/loss/softmax_row.h for the algebra);
 * results are staged in the workspace and copied to the outputs only when no row failed.
 *
 * Fused linear: for each token block and each vocabulary block, cublasGemmEx writes the f32
 * logits block Z, a fold kernel merges each row's block state into its running state; backward
 * recomputes Z, turns it into dZ in place (a bf16 copy when the operands are bf16), then two
 * GEMMs accumulate dH and dW. libcublas is opened with dlopen on first use (libcublas.so.13, then
 * libcublas.so) so libsegrl keeps loading on machines without the CUDA toolkit libraries; without
 * it the call returns SEGRL_ERR_UNSUPPORTED naming the library. */
#include "common.cuh"

extern "C" {
#include "../src/loss/loss_impl.h"
}

#include <cublas_v2.h> /* types and enums only: the functions come from dlopen */
#include <dlfcn.h>
#include <pthread.h>

#include <cfloat>
#include <climits>

#define SG_LT 256 /* threads per block of the loss kernels */

// ----------------------------------------------------------------------------
// block reductions

/* sums K doubles across the block; the result is valid in thread 0 */
template <int K> __device__ void sg_block_sum(double (&v)[K]) {
    __shared__ double part[K][SG_LT / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int k = 0; k < K; k++) v[k] = sg_warp_sum(v[k]);
    __syncthreads();
    if (lane == 0)
        for (int k = 0; k < K; k++) part[k][warp] = v[k];
    __syncthreads();
    if (threadIdx.x == 0)
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int w = 0; w < (int)(blockDim.x >> 5); w++) s += part[k][w];
            v[k] = s;
        }
}

// ----------------------------------------------------------------------------
// policy loss

struct sg_pl_dev {
    sg_dgeom g;
    sg_pl_args a;
    double *seq;                 /* 2 per sequence */
    double *st;                  /* SG_PL_NSTAT */
    unsigned long long *bad;     /* first bad (flat * 8 + arg) */
    long long *maxlen;
};

__device__ __forceinline__ int64_t pl_ix(const sg_dgeom &g, const sg_tok &x, int64_t b,
                                         int64_t base, int64_t t) {
    return g.packed ? base + t : b * x.row_stride + t;
}
__device__ __forceinline__ float pl_ld(const sg_dgeom &g, const sg_tok &x, int64_t b,
                                       int64_t base, int64_t t) {
    return x.data ? sg_ldf(x.data, x.dtype, pl_ix(g, x, b, base, t)) : 0.0f;
}
__device__ __forceinline__ bool pl_valid(const sg_dgeom &g, const sg_pl_args &a, int64_t b,
                                         int64_t base, int64_t t) {
    if (a.mask.data && !sg_mask_on(a.mask.data, a.mask.dtype, pl_ix(g, a.mask, b, base, t)))
        return false;
    if (a.pmask.data && !sg_mask_on(a.pmask.data, a.pmask.dtype, pl_ix(g, a.pmask, b, base, t)))
        return false;
    return true;
}
__device__ __forceinline__ int64_t pl_len(const sg_dgeom &g, int64_t b, int64_t *base) {
    if (!g.packed) {
        *base = 0;
        return g.T;
    }
    *base = sg_off_at(g, b);
    return sg_off_at(g, b + 1) - *base;
}

__global__ void pl_init_kernel(sg_pl_dev d) {
    for (int k = 0; k < SG_PL_NSTAT; k++) d.st[k] = 0.0;
    ((long long *)d.st)[SG_PL_RMAX] = LLONG_MIN;
    ((long long *)d.st)[SG_PL_RMIN] = LLONG_MAX;
    *d.bad = ~0ull;
    *d.maxlen = 0;
}

__global__ void pl_seq_kernel(sg_pl_dev d, int check) {
    const int64_t b = blockIdx.x;
    const sg_dgeom &g = d.g;
    const sg_pl_args &a = d.a;
    int64_t base;
    const int64_t len = pl_len(g, b, &base);
    const sg_tok xs[8] = {a.logp, a.old, a.adv, a.ref, a.ent, a.val, a.oldv, a.ret};
    double v[2] = {0, 0};
    for (int64_t t = threadIdx.x; t < len; t += blockDim.x) {
        if (!pl_valid(g, a, b, base, t)) continue;
        if (check)
            for (int k = 0; k < 8; k++) {
                if (!xs[k].data) continue;
                if (sg_nonfinite(pl_ld(g, xs[k], b, base, t))) {
                    const int64_t flat = g.packed ? base + t : b * g.T + t;
                    atomicMin(d.bad, (unsigned long long)flat * 8ull + (unsigned long long)k);
                }
            }
        v[0] += 1.0;
        if (a.old.data) v[1] += (double)pl_ld(g, a.logp, b, base, t) - pl_ld(g, a.old, b, base, t);
    }
    sg_block_sum<2>(v);
    if (threadIdx.x == 0) {
        d.seq[2 * b] = v[0];
        d.seq[2 * b + 1] = v[0] > 0 ? v[1] / v[0] : 0.0;
        if (v[0] > 0) {
            atomicAdd(&d.st[SG_PL_NT], v[0]);
            atomicAdd(&d.st[SG_PL_S], 1.0);
        }
        atomicMax(d.maxlen, (long long)len);
    }
}

/* forward (grads all NULL): sums into st; backward: gradients scaled by *gl (NULL: 1) */
__global__ void pl_tok_kernel(sg_pl_dev d, const float *gl, sg_tok dlogp, sg_tok dent,
                              sg_tok dval) {
    const int64_t b = blockIdx.x;
    const sg_dgeom &g = d.g;
    const sg_pl_args &a = d.a;
    const segrl_policy_loss_opts &o = a.o;
    int64_t base;
    const int64_t len = pl_len(g, b, &base);
    const double D = sg_pl_denominator(&o, d.st[SG_PL_NT], d.st[SG_PL_S], (double)*d.maxlen,
                                       g.packed, g.T);
    const double nb = d.seq[2 * b];
    const double w = o.agg == SEGRL_AGG_SEQ_MEAN_TOKEN_MEAN ? (nb > 0 ? 1.0 / (D * nb) : 0.0)
                                                            : 1.0 / D;
    const float C = o.log_ratio_clamp;
    const float mlr = (float)d.seq[2 * b + 1];
    const float slr = sg_clampf(mlr, -C, C);
    const float gs = gl ? *gl : 1.0f;
    const bool bwd = dlogp.data || dent.data || dval.data;
    double v[12] = {0};
    long long rmax = LLONG_MIN, rmin = LLONG_MAX;
    for (int64_t t = threadIdx.x; t < len; t += blockDim.x) {
        if (!pl_valid(g, a, b, base, t)) {
            if (dlogp.data) sg_stf(dlogp.data, dlogp.dtype, pl_ix(g, dlogp, b, base, t), 0.0f);
            if (dent.data) sg_stf(dent.data, dent.dtype, pl_ix(g, dent, b, base, t), 0.0f);
            if (dval.data) sg_stf(dval.data, dval.dtype, pl_ix(g, dval, b, base, t), 0.0f);
            continue;
        }
        const float lp = pl_ld(g, a.logp, b, base, t), olp = pl_ld(g, a.old, b, base, t);
        sg_pl_tok k;
        sg_pl_token(&o, lp, olp, pl_ld(g, a.adv, b, base, t), slr, slr != mlr, a.kl_on,
                    pl_ld(g, a.ref, b, base, t), a.val_on, pl_ld(g, a.val, b, base, t),
                    pl_ld(g, a.oldv, b, base, t), pl_ld(g, a.ret, b, base, t), &k);
        const float e = pl_ld(g, a.ent, b, base, t);
        if (bwd) {
            if (dlogp.data)
                sg_stf(dlogp.data, dlogp.dtype, pl_ix(g, dlogp, b, base, t),
                       (float)(gs * w * ((double)k.dpg + (a.kl_on ? (double)o.kl_coef * k.dkl : 0.0))));
            if (dent.data)
                sg_stf(dent.data, dent.dtype, pl_ix(g, dent, b, base, t),
                       (float)(-(double)gs * w * o.entropy_coef));
            if (dval.data)
                sg_stf(dval.data, dval.dtype, pl_ix(g, dval, b, base, t),
                       a.val_on ? (float)(gs * w * (double)o.value_coef * k.dvl) : 0.0f);
            continue;
        }
        v[0] += w * k.pg, v[1] += w * k.kl, v[2] += w * e, v[3] += w * k.vl;
        v[4] += k.clip_low, v[5] += k.clip_high, v[6] += k.dual, v[7] += k.vclip;
        if (a.old.data) v[8] += (double)olp - lp;
        v[9] += k.ratio, v[10] += k.kl, v[11] += e;
        const long long rb = (long long)__float_as_int(k.ratio); /* ratio >= 0: bits are ordered */
        rmax = rb > rmax ? rb : rmax;
        rmin = rb < rmin ? rb : rmin;
    }
    if (bwd) return;
    sg_block_sum<12>(v);
    rmax = sg_warp_combine<sg_op_max>(rmax);
    rmin = sg_warp_combine<sg_op_min>(rmin);
    if ((threadIdx.x & 31) == 0 && rmax != LLONG_MIN) {
        atomicMax((long long *)&d.st[SG_PL_RMAX], rmax);
        atomicMin((long long *)&d.st[SG_PL_RMIN], rmin);
    }
    if (threadIdx.x == 0) {
        const int slot[12] = {SG_PL_PG,    SG_PL_KL,    SG_PL_ENT,     SG_PL_VAL,
                              SG_PL_CLIP_LO, SG_PL_CLIP_HI, SG_PL_DUAL, SG_PL_VCLIP,
                              SG_PL_LR,    SG_PL_RATIO, SG_PL_KLSUM,   SG_PL_ENTSUM};
        for (int k = 0; k < 12; k++)
            if (v[k] != 0.0) atomicAdd(&d.st[slot[k]], v[k]);
    }
}

__global__ void pl_finish_kernel(sg_pl_dev d, float *out) {
    const sg_pl_args &a = d.a;
    double L = d.st[SG_PL_PG];
    if (a.kl_on) L += (double)a.o.kl_coef * d.st[SG_PL_KL];
    if (a.ent.data) L -= (double)a.o.entropy_coef * d.st[SG_PL_ENT];
    if (a.val_on) L += (double)a.o.value_coef * d.st[SG_PL_VAL];
    *out = (float)L;
}

extern "C" segrl_status sg_cuda_policy_loss(const sg_geom *g, const sg_pl_args *a, int check,
                                            void *ws, void *stream, float *out_loss,
                                            double *host_stats, const float *grad_loss,
                                            sg_tok dlogp, sg_tok dent, sg_tok dval, int *bad_arg,
                                            int64_t *bad_pos) {
    cudaStream_t s = (cudaStream_t)stream;
    *bad_arg = -1;
    *bad_pos = -1;
    sg_pl_dev d;
    d.g = sg_make_dgeom(g);
    d.a = *a;
    d.bad = (unsigned long long *)ws;
    d.maxlen = (long long *)((char *)ws + 8);
    d.seq = (double *)((char *)ws + SG_WS_CHECK_BYTES);
    d.st = (double *)((char *)ws + SG_WS_CHECK_BYTES + sg_align((size_t)g->B * 2 * sizeof(double)));
    pl_init_kernel<<<1, 1, 0, s>>>(d);
    SG_TRY_ST(sg_cuda_launched("policy loss: init"));
    if (g->B > 0) {
        pl_seq_kernel<<<(unsigned)g->B, SG_LT, 0, s>>>(d, check);
        SG_TRY_ST(sg_cuda_launched("policy loss: sequences"));
    }
    if (check) {
        unsigned long long bad;
        double nt;
        SG_CUDA_TRY(cudaMemcpyAsync(&bad, d.bad, sizeof bad, cudaMemcpyDeviceToHost, s),
                    "policy loss: check copy");
        SG_CUDA_TRY(cudaMemcpyAsync(&nt, &d.st[SG_PL_NT], sizeof nt, cudaMemcpyDeviceToHost, s),
                    "policy loss: check copy");
        SG_CUDA_TRY(cudaStreamSynchronize(s), "policy loss: check");
        if (bad != ~0ull) {
            *bad_arg = (int)(bad & 7ull);
            *bad_pos = (int64_t)(bad >> 3);
            return SEGRL_OK;
        }
        if (nt == 0.0 && a->o.normalizer == 0.0) {
            *bad_arg = 100;
            return SEGRL_OK;
        }
    }
    const int bwd = dlogp.data || dent.data || dval.data;
    if (g->B > 0) {
        pl_tok_kernel<<<(unsigned)g->B, SG_LT, 0, s>>>(d, grad_loss, dlogp, dent, dval);
        SG_TRY_ST(sg_cuda_launched("policy loss: tokens"));
    }
    if (bwd) return SEGRL_OK;
    if (out_loss) {
        pl_finish_kernel<<<1, 1, 0, s>>>(d, out_loss);
        SG_TRY_ST(sg_cuda_launched("policy loss: finish"));
    }
    if (host_stats) {
        SG_CUDA_TRY(cudaMemcpyAsync(host_stats, d.st, SG_PL_NSTAT * sizeof(double),
                                    cudaMemcpyDeviceToHost, s),
                    "policy loss: stats copy");
        long long mx, mn;
        SG_CUDA_TRY(cudaMemcpyAsync(&mx, &d.st[SG_PL_RMAX], 8, cudaMemcpyDeviceToHost, s),
                    "policy loss: stats copy");
        SG_CUDA_TRY(cudaMemcpyAsync(&mn, &d.st[SG_PL_RMIN], 8, cudaMemcpyDeviceToHost, s),
                    "policy loss: stats copy");
        long long ml;
        SG_CUDA_TRY(cudaMemcpyAsync(&ml, d.maxlen, 8, cudaMemcpyDeviceToHost, s),
                    "policy loss: stats copy");
        SG_CUDA_TRY(cudaStreamSynchronize(s), "policy loss: stats");
        int32_t bx = (int32_t)mx, bn = (int32_t)mn;
        float fx, fn;
        memcpy(&fx, &bx, 4);
        memcpy(&fn, &bn, 4);
        host_stats[SG_PL_RMAX] = mx == LLONG_MIN ? 0.0 : (double)fx;
        host_stats[SG_PL_RMIN] = mn == LLONG_MAX ? 0.0 : (double)fn;
        host_stats[SG_PL_MAXLEN] = (double)ml;
    }
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// online softmax states

struct sg_sm {
    float M, s, t, q; /* see src/loss/softmax_row.h; s == 0: empty */
};

__device__ __forceinline__ sg_sm sm_merge(sg_sm a, sg_sm b) {
    if (a.s == 0.0f) return b;
    if (b.s == 0.0f) return a;
    const float M = fmaxf(a.M, b.M);
    const float da = a.M - M, db = b.M - M;
    const float ea = expf(da), eb = expf(db);
    sg_sm r;
    r.M = M;
    r.s = a.s * ea + b.s * eb;
    r.t = ea * (a.t + da * a.s) + eb * (b.t + db * b.s);
    r.q = ea * ea * a.q + eb * eb * b.q;
    return r;
}

/* adds z (already scaled) to a thread's state; flags NaN / +Inf */
__device__ __forceinline__ void sm_add(sg_sm &st, float z, int &bad) {
    if (z != z || z == INFINITY) {
        bad = 1;
        return;
    }
    if (z == -INFINITY) return;
    if (z > st.M || st.s == 0.0f) {
        if (st.s > 0.0f) {
            const float d = st.M - z, a = expf(d);
            st.t = a * (st.t + d * st.s);
            st.s *= a;
            st.q *= a * a;
        }
        st.M = z;
    }
    const float u = z - st.M, e = expf(u);
    st.s += e;
    st.t += e * u;
    st.q += e * e;
}

/* merges every thread's state; the result (and the OR of bad) is valid in thread 0 */
__device__ void sm_block_merge(sg_sm &st, int &bad) {
    __shared__ sg_sm part[SG_LT / 32];
    __shared__ int pbad[SG_LT / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        sg_sm other;
        other.M = __shfl_xor_sync(0xffffffffu, st.M, o);
        other.s = __shfl_xor_sync(0xffffffffu, st.s, o);
        other.t = __shfl_xor_sync(0xffffffffu, st.t, o);
        other.q = __shfl_xor_sync(0xffffffffu, st.q, o);
        st = sm_merge(st, other);
    }
    bad = __any_sync(0xffffffffu, bad);
    __syncthreads();
    if (lane == 0) part[warp] = st, pbad[warp] = bad;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++) {
            st = sm_merge(st, part[w]);
            bad |= pbad[w];
        }
    }
}

__device__ __forceinline__ void sm_finish(const sg_sm &st, float *lse, float *ent, float *sp2) {
    if (!(st.s > 0.0f)) {
        *lse = -INFINITY, *ent = 0.0f, *sp2 = 0.0f;
        return;
    }
    const float ls = logf(st.s);
    *lse = st.M + ls;
    *ent = ls - st.t / st.s;
    *sp2 = st.q / (st.s * st.s);
}

// ----------------------------------------------------------------------------
// fused log-probs

/* stage: 5 arrays of N floats; scratch: [0] first bad target row, [1] first bad logit row */
template <int DT>
__global__ void lp_fwd_kernel(const void *x, int64_t ld, int64_t V, const void *tgt, int t64,
                              float scale, float *stage, int64_t N,
                              unsigned long long *scratch) {
    const int64_t i = blockIdx.x;
    const char *row = (const char *)x + (size_t)i * ld * (DT == SEGRL_DTYPE_F32 ? 4 : 2);
    sg_sm st = {-INFINITY, 0.0f, 0.0f, 0.0f};
    int bad = 0;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x)
        sm_add(st, sg_ldf(row, DT, j) * scale, bad);
    sm_block_merge(st, bad);
    if (threadIdx.x != 0) return;
    float lse, ent, sp2;
    sm_finish(st, &lse, &ent, &sp2);
    int64_t y = t64 ? ((const int64_t *)tgt)[i] : (int64_t)((const int32_t *)tgt)[i];
    if (y >= V) {
        atomicMin(&scratch[0], (unsigned long long)i);
        y = -1;
    }
    if (bad || !(lse > -FLT_MAX)) atomicMin(&scratch[1], (unsigned long long)i);
    const float lp = y >= 0 ? sg_ldf(row, DT, y) * scale - lse : 0.0f;
    stage[i] = lp;
    stage[N + i] = ent;
    stage[2 * N + i] = lse;
    stage[3 * N + i] = y >= 0 ? expf(lp) : 0.0f;
    stage[4 * N + i] = sp2;
}

/* dz_j = g (delta_jy - p_j) - h p_j (log p_j + H), times scale; out may be x */
__global__ void lp_bwd_kernel(const void *x, int32_t xdt, int64_t ld, void *out, int32_t odt,
                              int64_t old_, int64_t V, const void *tgt, int t64, float scale,
                              const float *lse, const float *ent, const float *g, const float *h) {
    const int64_t i = blockIdx.x;
    const size_t xe = xdt == SEGRL_DTYPE_F32 ? 4 : 2, oe = odt == SEGRL_DTYPE_F32 ? 4 : 2;
    const char *row = (const char *)x + (size_t)i * ld * xe;
    char *orow = (char *)out + (size_t)i * old_ * oe;
    int64_t y = t64 ? ((const int64_t *)tgt)[i] : (int64_t)((const int32_t *)tgt)[i];
    if (y >= V) y = -1;
    const float gi = g && y >= 0 ? g[i] : 0.0f, hi = h ? h[i] : 0.0f, Hi = ent ? ent[i] : 0.0f;
    const float L = lse[i];
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
        float lp = sg_ldf(row, xdt, j) * scale - L;
        float p = 0.0f;
        if (lp > -100.0f) p = expf(lp);
        else lp = -100.0f;
        float d = -p * (gi + hi * (lp + Hi));
        if (j == y) d += gi;
        sg_stf(orow, odt, j, d * scale);
    }
}

__global__ void lp_target_check_kernel(const void *tgt, int t64, int64_t N, int64_t V,
                                       unsigned long long *scratch) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const int64_t y = t64 ? ((const int64_t *)tgt)[i] : (int64_t)((const int32_t *)tgt)[i];
    if (y >= V) atomicMin(&scratch[0], (unsigned long long)i);
}

extern "C" size_t sg_cuda_logprobs_ws(int64_t N) {
    return SG_WS_CHECK_BYTES + sg_align((size_t)N * 5 * sizeof(float));
}

/* copies the staged results to the outputs present */
static segrl_status lp_commit(const float *stage, int64_t N, float *logp, float *ent, float *lse,
                              float *pt, float *sp2, cudaStream_t s) {
    float *dst[5] = {logp, ent, lse, pt, sp2};
    for (int k = 0; k < 5; k++)
        if (dst[k] && N > 0)
            SG_CUDA_TRY(cudaMemcpyAsync(dst[k], stage + (size_t)k * N, (size_t)N * 4,
                                        cudaMemcpyDeviceToDevice, s),
                        "log-probs: output copy");
    return SEGRL_OK;
}

/* reads the two scratch words after a synchronization */
static segrl_status lp_read_bad(unsigned long long *scratch, cudaStream_t s, int64_t *bad_row,
                                int *bad_kind) {
    unsigned long long h[2];
    SG_CUDA_TRY(cudaMemcpyAsync(h, scratch, sizeof h, cudaMemcpyDeviceToHost, s),
                "log-probs: check copy");
    SG_CUDA_TRY(cudaStreamSynchronize(s), "log-probs: check");
    if (h[0] != ~0ull) *bad_row = (int64_t)h[0], *bad_kind = 1;
    else if (h[1] != ~0ull) *bad_row = (int64_t)h[1], *bad_kind = 2;
    return SEGRL_OK;
}

extern "C" segrl_status sg_cuda_logprobs_fwd(sg_mat L, const void *tgt, int32_t tdt,
                                             float inv_temp, int check, void *ws, void *stream,
                                             float *logp, float *ent, float *lse, float *pt,
                                             float *sp2, int64_t *bad_row, int *bad_kind) {
    cudaStream_t s = (cudaStream_t)stream;
    *bad_row = -1;
    *bad_kind = 0;
    const int64_t N = L.rows;
    unsigned long long *scratch = (unsigned long long *)ws;
    float *stage = (float *)((char *)ws + SG_WS_CHECK_BYTES);
    SG_CUDA_TRY(cudaMemsetAsync(scratch, 0xff, 16, s), "log-probs: scratch");
    if (N > 0) {
        const int t64 = tdt == SEGRL_DTYPE_I64;
        switch (L.dtype) {
        case SEGRL_DTYPE_F32:
            lp_fwd_kernel<SEGRL_DTYPE_F32><<<(unsigned)N, SG_LT, 0, s>>>(
                L.data, L.ld, L.cols, tgt, t64, inv_temp, stage, N, scratch);
            break;
        case SEGRL_DTYPE_BF16:
            lp_fwd_kernel<SEGRL_DTYPE_BF16><<<(unsigned)N, SG_LT, 0, s>>>(
                L.data, L.ld, L.cols, tgt, t64, inv_temp, stage, N, scratch);
            break;
        default:
            lp_fwd_kernel<SEGRL_DTYPE_F16><<<(unsigned)N, SG_LT, 0, s>>>(
                L.data, L.ld, L.cols, tgt, t64, inv_temp, stage, N, scratch);
        }
        SG_TRY_ST(sg_cuda_launched("log-probs forward"));
    }
    if (check) {
        SG_TRY_ST(lp_read_bad(scratch, s, bad_row, bad_kind));
        if (*bad_kind) return SEGRL_OK;
    }
    return lp_commit(stage, N, logp, ent, lse, pt, sp2, s);
}

extern "C" segrl_status sg_cuda_logprobs_bwd(sg_mat L, const void *tgt, int32_t tdt,
                                             float inv_temp, const float *lse, const float *ent,
                                             const float *g, const float *h, sg_mat out,
                                             int check, void *ws, void *stream,
                                             int64_t *bad_row) {
    cudaStream_t s = (cudaStream_t)stream;
    *bad_row = -1;
    const int64_t N = L.rows;
    const int t64 = tdt == SEGRL_DTYPE_I64;
    if (check && N > 0) {
        unsigned long long *scratch = (unsigned long long *)ws;
        SG_CUDA_TRY(cudaMemsetAsync(scratch, 0xff, 16, s), "log-probs backward: scratch");
        lp_target_check_kernel<<<sg_grid_for(N, 256), 256, 0, s>>>(tgt, t64, N, L.cols, scratch);
        SG_TRY_ST(sg_cuda_launched("log-probs backward: target check"));
        int kind = 0;
        SG_TRY_ST(lp_read_bad(scratch, s, bad_row, &kind));
        if (kind) return SEGRL_OK;
    }
    if (N > 0) {
        lp_bwd_kernel<<<(unsigned)N, SG_LT, 0, s>>>(L.data, L.dtype, L.ld, out.data, out.dtype,
                                                    out.ld, L.cols, tgt, t64, inv_temp, lse, ent,
                                                    g, h);
        SG_TRY_ST(sg_cuda_launched("log-probs backward"));
    }
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// cuBLAS through dlopen

typedef cublasStatus_t (*sg_cublas_create_fn)(cublasHandle_t *);
typedef cublasStatus_t (*sg_cublas_set_stream_fn)(cublasHandle_t, cudaStream_t);
typedef cublasStatus_t (*sg_cublas_gemm_ex_fn)(cublasHandle_t, cublasOperation_t,
                                               cublasOperation_t, int, int, int, const void *,
                                               const void *, cudaDataType, int, const void *,
                                               cudaDataType, int, const void *, void *,
                                               cudaDataType, int, cublasComputeType_t,
                                               cublasGemmAlgo_t);

#define SG_MAX_GPUS 64

static struct {
    pthread_mutex_t lock;
    int tried;
    void *lib;
    const char *name;
    sg_cublas_create_fn create;
    sg_cublas_set_stream_fn set_stream;
    sg_cublas_gemm_ex_fn gemm;
    cublasHandle_t handle[SG_MAX_GPUS];
} sg_blas = {PTHREAD_MUTEX_INITIALIZER, 0, NULL, NULL, NULL, NULL, NULL, {}};

/* Loads libcublas once; takes sg_blas.lock (released by sg_blas_unlock) and returns the current
 * device's handle bound to stream s. */
static segrl_status sg_blas_acquire(cudaStream_t s, const char *fn, cublasHandle_t *out) {
    pthread_mutex_lock(&sg_blas.lock);
    if (!sg_blas.tried) {
        sg_blas.tried = 1;
        static const char *const names[2] = {"libcublas.so.13", "libcublas.so"};
        for (int k = 0; k < 2 && !sg_blas.lib; k++) {
            sg_blas.lib = dlopen(names[k], RTLD_NOW | RTLD_LOCAL);
            if (sg_blas.lib) sg_blas.name = names[k];
        }
        if (sg_blas.lib) {
            sg_blas.create = (sg_cublas_create_fn)dlsym(sg_blas.lib, "cublasCreate_v2");
            sg_blas.set_stream = (sg_cublas_set_stream_fn)dlsym(sg_blas.lib, "cublasSetStream_v2");
            sg_blas.gemm = (sg_cublas_gemm_ex_fn)dlsym(sg_blas.lib, "cublasGemmEx");
        }
    }
    if (!sg_blas.lib) {
        pthread_mutex_unlock(&sg_blas.lock);
        return sg_fail(SEGRL_ERR_UNSUPPORTED,
                       "%s: cuBLAS: neither libcublas.so.13 nor libcublas.so could be loaded "
                       "(dlopen); the fused linear path on CUDA needs the CUDA toolkit's cuBLAS",
                       fn);
    }
    if (!sg_blas.create || !sg_blas.set_stream || !sg_blas.gemm) {
        pthread_mutex_unlock(&sg_blas.lock);
        return sg_fail(SEGRL_ERR_UNSUPPORTED,
                       "%s: cuBLAS: %s lacks cublasCreate_v2 / cublasSetStream_v2 / cublasGemmEx",
                       fn, sg_blas.name);
    }
    int dev = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess || dev < 0 || dev >= SG_MAX_GPUS) {
        pthread_mutex_unlock(&sg_blas.lock);
        return e != cudaSuccess ? sg_cuda_error(e, "cudaGetDevice")
                                : sg_fail(SEGRL_ERR_UNSUPPORTED, "%s: device %d", fn, dev);
    }
    if (!sg_blas.handle[dev] && sg_blas.create(&sg_blas.handle[dev]) != CUBLAS_STATUS_SUCCESS) {
        sg_blas.handle[dev] = NULL;
        pthread_mutex_unlock(&sg_blas.lock);
        return sg_fail(SEGRL_ERR_CUDA, "%s: cublasCreate failed (%s)", fn, sg_blas.name);
    }
    if (sg_blas.set_stream(sg_blas.handle[dev], s) != CUBLAS_STATUS_SUCCESS) {
        pthread_mutex_unlock(&sg_blas.lock);
        return sg_fail(SEGRL_ERR_CUDA, "%s: cublasSetStream failed", fn);
    }
    *out = sg_blas.handle[dev];
    return SEGRL_OK;
}

static void sg_blas_unlock(void) { pthread_mutex_unlock(&sg_blas.lock); }

/* column-major C (m x n, ldc, f32) = alpha op(A) op(B) + beta C, A and B of type ab */
static segrl_status sg_gemm(cublasHandle_t hd, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
                            int64_t n, int64_t k, const void *A, int64_t lda, const void *B,
                            int64_t ldb, float beta, float *C, int64_t ldc, cudaDataType ab,
                            const char *what) {
    const float alpha = 1.0f;
    cublasStatus_t st = sg_blas.gemm(hd, ta, tb, (int)m, (int)n, (int)k, &alpha, A, ab, (int)lda,
                                     B, ab, (int)ldb, &beta, C, CUDA_R_32F, (int)ldc,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS)
        return sg_fail(SEGRL_ERR_CUDA, "segrl cuda: %s: cublasGemmEx failed (status %d)", what,
                       (int)st);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// fused linear

/* Workspace: [check][stage 5 N f32][row states tc (M, s, t, q, zy, bad as 6 floats)]
 *            [Z block tc x vc f32][backward, bf16: dZ block tc x vc bf16] */
struct sg_lin_ws_dev {
    unsigned long long *scratch;
    float *stage;
    float *state;
    float *Z;
    uint16_t *dZb;
};

static sg_lin_ws_dev lin_carve(void *ws, int64_t N, int64_t tc, int64_t vc) {
    sg_lin_ws_dev w;
    char *p = (char *)ws;
    w.scratch = (unsigned long long *)p;
    p += SG_WS_CHECK_BYTES;
    w.stage = (float *)p;
    p += sg_align((size_t)N * 5 * sizeof(float));
    w.state = (float *)p;
    p += sg_align((size_t)tc * 6 * sizeof(float));
    w.Z = (float *)p;
    p += sg_align((size_t)tc * vc * sizeof(float));
    w.dZb = (uint16_t *)p;
    return w;
}

extern "C" size_t sg_cuda_linear_ws(int64_t N, int64_t D, int64_t V, int64_t tc, int64_t vc,
                                    int backward) {
    (void)D, (void)V;
    size_t b = SG_WS_CHECK_BYTES + sg_align((size_t)N * 5 * sizeof(float)) +
               sg_align((size_t)tc * 6 * sizeof(float)) + sg_align((size_t)tc * vc * sizeof(float));
    if (backward) b += sg_align((size_t)tc * vc * sizeof(uint16_t));
    return b;
}

__global__ void lin_state_init(float *state, int64_t n) {
    const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    float *s = state + 6 * r;
    s[0] = -INFINITY, s[1] = 0.0f, s[2] = 0.0f, s[3] = 0.0f, s[4] = 0.0f, s[5] = 0.0f;
}

/* one block per row r of the Z block (n x c): merges the block's values into state r */
__global__ void lin_fold_kernel(const float *Z, int64_t c, int64_t j0, float scale,
                                const void *tgt, int t64, int64_t i0, int64_t V, float *state) {
    const int64_t r = blockIdx.x;
    const float *z = Z + (size_t)r * c;
    sg_sm st = {-INFINITY, 0.0f, 0.0f, 0.0f};
    int bad = 0;
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) sm_add(st, z[j] * scale, bad);
    sm_block_merge(st, bad);
    if (threadIdx.x != 0) return;
    float *S = state + 6 * r;
    sg_sm cur = {S[0], S[1], S[2], S[3]};
    cur = sm_merge(cur, st);
    S[0] = cur.M, S[1] = cur.s, S[2] = cur.t, S[3] = cur.q;
    const int64_t y = t64 ? ((const int64_t *)tgt)[i0 + r] : (int64_t)((const int32_t *)tgt)[i0 + r];
    if (y >= j0 && y < j0 + c && y < V) S[4] = z[y - j0] * scale;
    if (bad) S[5] = 1.0f;
}

__global__ void lin_finish_kernel(const float *state, int64_t n, int64_t i0, const void *tgt,
                                  int t64, int64_t V, float *stage, int64_t N,
                                  unsigned long long *scratch) {
    const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    const float *S = state + 6 * r;
    const sg_sm st = {S[0], S[1], S[2], S[3]};
    float lse, ent, sp2;
    sm_finish(st, &lse, &ent, &sp2);
    const int64_t i = i0 + r;
    int64_t y = t64 ? ((const int64_t *)tgt)[i] : (int64_t)((const int32_t *)tgt)[i];
    if (y >= V) {
        atomicMin(&scratch[0], (unsigned long long)i);
        y = -1;
    }
    if (S[5] != 0.0f || !(lse > -FLT_MAX)) atomicMin(&scratch[1], (unsigned long long)i);
    const float lp = y >= 0 ? S[4] - lse : 0.0f;
    stage[i] = lp;
    stage[N + i] = ent;
    stage[2 * N + i] = lse;
    stage[3 * N + i] = y >= 0 ? expf(lp) : 0.0f;
    stage[4 * N + i] = sp2;
}

/* Z block (n x c) -> dZ in place (and a bf16 copy when dZb != NULL) */
__global__ void lin_grad_kernel(float *Z, uint16_t *dZb, int64_t c, int64_t j0, int64_t i0,
                                float scale, const void *tgt, int t64, int64_t V,
                                const float *lse, const float *ent, const float *g,
                                const float *h) {
    const int64_t r = blockIdx.x, i = i0 + r;
    float *z = Z + (size_t)r * c;
    int64_t y = t64 ? ((const int64_t *)tgt)[i] : (int64_t)((const int32_t *)tgt)[i];
    if (y >= V) y = -1;
    const float gi = g && y >= 0 ? g[i] : 0.0f, hi = h ? h[i] : 0.0f, Hi = ent ? ent[i] : 0.0f;
    const float L = lse[i];
    for (int64_t j = threadIdx.x; j < c; j += blockDim.x) {
        float lp = z[j] * scale - L;
        float p = 0.0f;
        if (lp > -100.0f) p = expf(lp);
        else lp = -100.0f;
        float d = -p * (gi + hi * (lp + Hi));
        if (j0 + j == y) d += gi;
        d *= scale;
        z[j] = d;
        if (dZb) dZb[(size_t)r * c + j] = sg_f32_to_bf16(d);
    }
}

extern "C" segrl_status sg_cuda_linear_fwd(sg_mat H, sg_mat W, const void *tgt, int32_t tdt,
                                           float inv_temp, int64_t tc, int64_t vc, int check,
                                           void *ws, size_t ws_bytes, void *stream, float *logp,
                                           float *ent, float *lse, float *pt, float *sp2,
                                           int64_t *bad_row, int *bad_kind) {
    (void)ws_bytes;
    cudaStream_t s = (cudaStream_t)stream;
    *bad_row = -1;
    *bad_kind = 0;
    const int64_t N = H.rows, D = H.cols, V = W.rows;
    const int t64 = tdt == SEGRL_DTYPE_I64;
    const cudaDataType ab = H.dtype == SEGRL_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    const size_t es = H.dtype == SEGRL_DTYPE_BF16 ? 2 : 4;
    sg_lin_ws_dev w = lin_carve(ws, N, tc, vc);
    SG_CUDA_TRY(cudaMemsetAsync(w.scratch, 0xff, 16, s), "fused linear: scratch");
    if (N > 0) {
        cublasHandle_t hd;
        SG_TRY_ST(sg_blas_acquire(s, "segrl_linear_logprobs_forward", &hd));
        segrl_status st = SEGRL_OK;
        for (int64_t i0 = 0; i0 < N && st == SEGRL_OK; i0 += tc) {
            const int64_t n = N - i0 < tc ? N - i0 : tc;
            lin_state_init<<<sg_grid_for(n, 256), 256, 0, s>>>(w.state, n);
            st = sg_cuda_launched("fused linear: state init");
            for (int64_t j0 = 0; j0 < V && st == SEGRL_OK; j0 += vc) {
                const int64_t c = V - j0 < vc ? V - j0 : vc;
                /* Z^T (c x n, col-major) = W_j (col-major D x c)^T  H_i (col-major D x n) */
                st = sg_gemm(hd, CUBLAS_OP_T, CUBLAS_OP_N, c, n, D,
                             (const char *)W.data + (size_t)j0 * W.ld * es, W.ld,
                             (const char *)H.data + (size_t)i0 * H.ld * es, H.ld, 0.0f, w.Z, c,
                             ab, "fused linear forward");
                if (st) break;
                lin_fold_kernel<<<(unsigned)n, SG_LT, 0, s>>>(w.Z, c, j0, inv_temp, tgt, t64, i0,
                                                              V, w.state);
                st = sg_cuda_launched("fused linear: fold");
            }
            if (st) break;
            lin_finish_kernel<<<sg_grid_for(n, 256), 256, 0, s>>>(w.state, n, i0, tgt, t64, V,
                                                                 w.stage, N, w.scratch);
            st = sg_cuda_launched("fused linear: finish");
        }
        sg_blas_unlock();
        if (st) return st;
    }
    if (check) {
        SG_TRY_ST(lp_read_bad(w.scratch, s, bad_row, bad_kind));
        if (*bad_kind) return SEGRL_OK;
    }
    return lp_commit(w.stage, N, logp, ent, lse, pt, sp2, s);
}

extern "C" segrl_status sg_cuda_linear_bwd(sg_mat H, sg_mat W, const void *tgt, int32_t tdt,
                                           float inv_temp, const float *lse, const float *ent,
                                           const float *g, const float *h, int64_t tc, int64_t vc,
                                           int accumulate, void *ws, size_t ws_bytes,
                                           void *stream, float *dH, int64_t ldh, float *dW,
                                           int64_t ldw) {
    (void)ws_bytes;
    cudaStream_t s = (cudaStream_t)stream;
    const int64_t N = H.rows, D = H.cols, V = W.rows;
    const int t64 = tdt == SEGRL_DTYPE_I64;
    const int bf = H.dtype == SEGRL_DTYPE_BF16;
    const cudaDataType ab = bf ? CUDA_R_16BF : CUDA_R_32F;
    const size_t es = bf ? 2 : 4;
    sg_lin_ws_dev w = lin_carve(ws, N, tc, vc);
    /* targets >= V: checked on the device like the forward (one synchronization) */
    if (N > 0) {
        SG_CUDA_TRY(cudaMemsetAsync(w.scratch, 0xff, 16, s), "fused linear backward: scratch");
        lp_target_check_kernel<<<sg_grid_for(N, 256), 256, 0, s>>>(tgt, t64, N, V, w.scratch);
        SG_TRY_ST(sg_cuda_launched("fused linear backward: target check"));
        int64_t bad_row = -1;
        int kind = 0;
        SG_TRY_ST(lp_read_bad(w.scratch, s, &bad_row, &kind));
        if (kind)
            return sg_fail(SEGRL_ERR_INVALID,
                           "segrl_linear_logprobs_backward: targets: entry %lld is >= V = %lld",
                           (long long)bad_row, (long long)V);
    }
    if (!accumulate) {
        if (dH && N > 0)
            SG_CUDA_TRY(cudaMemset2DAsync(dH, (size_t)ldh * 4, 0, (size_t)D * 4, (size_t)N, s),
                        "fused linear backward: zero dH");
        if (dW && V > 0)
            SG_CUDA_TRY(cudaMemset2DAsync(dW, (size_t)ldw * 4, 0, (size_t)D * 4, (size_t)V, s),
                        "fused linear backward: zero dW");
    }
    if (N == 0) return SEGRL_OK;
    cublasHandle_t hd;
    SG_TRY_ST(sg_blas_acquire(s, "segrl_linear_logprobs_backward", &hd));
    segrl_status st = SEGRL_OK;
    for (int64_t i0 = 0; i0 < N && st == SEGRL_OK; i0 += tc) {
        const int64_t n = N - i0 < tc ? N - i0 : tc;
        const char *Hi = (const char *)H.data + (size_t)i0 * H.ld * es;
        for (int64_t j0 = 0; j0 < V && st == SEGRL_OK; j0 += vc) {
            const int64_t c = V - j0 < vc ? V - j0 : vc;
            const char *Wj = (const char *)W.data + (size_t)j0 * W.ld * es;
            st = sg_gemm(hd, CUBLAS_OP_T, CUBLAS_OP_N, c, n, D, Wj, W.ld, Hi, H.ld, 0.0f, w.Z, c,
                         ab, "fused linear backward: logits");
            if (st) break;
            lin_grad_kernel<<<(unsigned)n, SG_LT, 0, s>>>(w.Z, bf ? w.dZb : NULL, c, j0, i0,
                                                          inv_temp, tgt, t64, V, lse, ent, g, h);
            st = sg_cuda_launched("fused linear: dZ");
            if (st) break;
            const void *dZ = bf ? (const void *)w.dZb : (const void *)w.Z;
            if (dH) /* dH_i^T (D x n) += W_j^T (D x c) dZ^T (c x n) */
                st = sg_gemm(hd, CUBLAS_OP_N, CUBLAS_OP_N, D, n, c, Wj, W.ld, dZ, c, 1.0f,
                             dH + (size_t)i0 * ldh, ldh, ab, "fused linear backward: dH");
            if (st) break;
            if (dW) /* dW_j^T (D x c) += H_i^T (D x n) dZ (n x c) */
                st = sg_gemm(hd, CUBLAS_OP_N, CUBLAS_OP_T, D, c, n, Hi, H.ld, dZ, c, 1.0f,
                             dW + (size_t)j0 * ldw, ldw, ab, "fused linear backward: dW");
        }
    }
    sg_blas_unlock();
    return st;
}
