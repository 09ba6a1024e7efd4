/* outcome.cu — CUDA kernels of the trajectory-level estimators (GRPO, RLOO, REINFORCE++-baseline,
 * ReMax, OPO, GRPO pass@k, GPG). Semantics of record: src/advantage/outcome.c (sg_cpu_outcome),
 * with the same workspace carve (sg_outcome_ws) and the same group statistics layout:
 *
 *   ws.group[k * SG_GROUP_STATS + i]:
 *     0 n    1 sum R    2 sum (R - mean)^2    3 sum len*R    4 sum len
 *     5 max R    6 index of the first max    7 max R over the others
 *   ws.batch (this file's use): 0 sum R  1 sum (R - mean)^2  2 GPG count of A != 0
 *                               3 REINFORCE++ sum len  4 sum len*A  5 sum len*(A - mean)^2
 *
 * Steps, each a kernel on the caller's stream:
 *   1. R_b and len_b: scores (or 0) and the sequence length; when R comes from token rewards or a
 *      mask is given, a token walker adds the valid tokens' rewards / count per sequence (f64
 *      atomics, one per sequence piece per warp).
 *   2. group statistics, one thread per sequence with keyed atomics (block/warp aggregation when
 *      the keys agree): n, sum R, sum len*R, sum len; then sum of squared deviations from the
 *      group mean; batch mean and squared deviations for SEGRL_STD_BATCH.
 *      Pass@k: max R per group by atomicMax on an order-preserving int64 encoding of the double
 *      (exact), then the first (smallest) index whose R equals it by atomicMin, then the max over
 *      the other members; so ties for the best give r_max - r_second = 0, as on the CPU.
 *   3. A_b exactly as sg_seq_advantages (singletons, std scopes), out_seq; GPG: alpha from the
 *      count of A != 0; REINFORCE++-baseline: len-weighted mean and unbiased var of A.
 *   4. a token walker writes (float)((A_b - shift) * scale) at valid tokens and 0 elsewhere. */
#include "common.cuh"

#include <math.h>

#define SG_OC_THREADS 256

/* The per-sequence state of one call. */
struct sg_oc_params {
    int64_t B;
    int32_t op;
    const void *gidx; /* NULL: one group */
    int g64;
    const float *scores;   /* NULL: R from token rewards */
    const float *baseline; /* ReMax */
    double *R, *len, *A, *batch, *group;
    float eps;
    int32_t std_scope, unbiased, singleton;
};

__device__ __forceinline__ long long sg_oc_gid(const sg_oc_params &p, int64_t b) {
    return p.gidx ? (long long)sg_index_at(p.gidx, p.g64, b) : 0;
}

__device__ __forceinline__ double sg_oc_std(double m2, double n, int unbiased) {
    const double d = unbiased ? n - 1 : n;
    return d > 0 ? sqrt(m2 / d) : 0.0;
}

/* Order-preserving int64 encoding of a double (not NaN): a < b  <=>  key(a) < key(b).
 * -0 is folded into +0 so that equal values have equal keys. */
__device__ __forceinline__ long long sg_dkey(double x) {
    const long long i = __double_as_longlong(x + 0.0);
    return i >= 0 ? i : i ^ 0x7fffffffffffffffLL;
}
__device__ __forceinline__ double sg_dkey_value(long long k) {
    return __longlong_as_double(k >= 0 ? k : k ^ 0x7fffffffffffffffLL);
}

// ----------------------------------------------------------------------------
// 1. R and len

/* a / d, and 0 for d == 0: a constant group with eps = 0 has A = 0 / 0 (as the CPU) */
__device__ static inline double sg_div0(double a, double d) { return d > 0 ? a / d : 0.0; }

__global__ void sg_oc_seq_init_kernel(sg_oc_params p, sg_dgeom g, int has_mask) {
    const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= p.B) return;
    p.R[b] = p.scores ? (double)p.scores[b] : 0.0;
    p.len[b] = has_mask ? 0.0 : (double)(sg_row_end(g, b) - sg_row_beg(g, b));
}

/* adds the valid tokens' rewards (do_R) and their count (do_len) of each sequence piece */
template <typename M>
__global__ void __launch_bounds__(SG_WALK_THREADS)
    sg_oc_token_sums_kernel(sg_dgeom g, const float *r, int64_t rs_r, const void *m, int64_t rs_m,
                            int do_R, int do_len, double *R, double *len, int64_t per) {
    int64_t f0, f1;
    sg_walk_range(g.N, per, &f0, &f1);
    const int lane = threadIdx.x & 31;
    sg_warp_walk(g, f0, f1, [&](int64_t b, int64_t fb, int64_t fe) {
        double cnt = 0.0, sum = 0.0;
#pragma unroll 4
        for (int64_t f = fb + lane; f < fe; f += 32) {
            if (sg_valid<M>(m, sg_at(g, rs_m, b, f))) {
                cnt += 1.0;
                if (do_R) sum += (double)r[sg_at(g, rs_r, b, f)];
            }
        }
        cnt = sg_warp_sum(cnt);
        sum = sg_warp_sum(sum);
        if (lane == 0) {
            if (do_len) atomicAdd(len + b, cnt);
            if (do_R) atomicAdd(R + b, sum);
        }
    });
}

// ----------------------------------------------------------------------------
// 2. group and batch statistics

__global__ void sg_oc_group_init_kernel(double *group, int64_t G) {
    const int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= G) return;
    double *s = group + k * SG_GROUP_STATS;
    for (int i = 0; i < 5; i++) s[i] = 0.0;
    /* slots 5..7 hold int64 keys while the pass@k kernels run (see sg_oc_passk_finalize) */
    long long *q = (long long *)s;
    q[5] = LLONG_MIN; /* max key */
    q[6] = LLONG_MAX; /* first index of the max */
    q[7] = LLONG_MIN; /* max key over the others */
}

/* n, sum R, sum len * R, sum len */
__global__ void __launch_bounds__(SG_OC_THREADS) sg_oc_group_sums_kernel(sg_oc_params p) {
    const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    long long key = -1;
    double v[4] = {0.0, 0.0, 0.0, 0.0};
    if (b < p.B) {
        key = sg_oc_gid(p, b);
        const double R = p.R[b], len = p.len[b];
        v[0] = 1.0;
        v[1] = R;
        v[2] = len * R;
        v[3] = len;
    }
    const int slot[4] = {0, 1, 3, 4};
    sg_block_keyed<sg_op_add, 4>(key, v, p.group, SG_GROUP_STATS, slot);
}

/* sum (R - mean_g)^2 */
__global__ void __launch_bounds__(SG_OC_THREADS) sg_oc_group_m2_kernel(sg_oc_params p) {
    const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    long long key = -1;
    double v[1] = {0.0};
    if (b < p.B) {
        key = sg_oc_gid(p, b);
        const double *s = p.group + key * SG_GROUP_STATS;
        const double d = p.R[b] - s[1] / s[0];
        v[0] = d * d;
    }
    const int slot[1] = {2};
    sg_block_keyed<sg_op_add, 1>(key, v, p.group, SG_GROUP_STATS, slot);
}

/* batch sum R (pass 0) or sum (R - mean)^2 (pass 1) */
__global__ void __launch_bounds__(SG_OC_THREADS) sg_oc_batch_kernel(sg_oc_params p, int pass) {
    const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    long long key = -1;
    double v[1] = {0.0};
    if (b < p.B) {
        key = 0;
        if (pass == 0) {
            v[0] = p.R[b];
        } else {
            const double mean = p.batch[0] / (double)p.B;
            const double d = p.R[b] - mean;
            v[0] = d * d;
        }
    }
    const int slot[1] = {pass};
    sg_block_keyed<sg_op_add, 1>(key, v, p.batch, 0, slot);
}

/* pass@k, pass 0: max key; 1: first index holding it; 2: max key over the others */
__global__ void __launch_bounds__(SG_OC_THREADS) sg_oc_passk_kernel(sg_oc_params p, int pass) {
    const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    long long key = -1;
    long long v[1] = {0};
    long long *q = (long long *)p.group;
    if (b < p.B) {
        const long long k = sg_oc_gid(p, b);
        const long long rk = sg_dkey(p.R[b]);
        if (pass == 0) {
            key = k;
            v[0] = rk;
        } else if (pass == 1) {
            if (rk == q[k * SG_GROUP_STATS + 5]) {
                key = k;
                v[0] = b;
            }
        } else {
            if ((long long)b != q[k * SG_GROUP_STATS + 6]) {
                key = k;
                v[0] = rk;
            }
        }
    }
    const int slot[1] = {pass == 0 ? 5 : (pass == 1 ? 6 : 7)};
    if (pass == 1) sg_block_keyed<sg_op_min, 1>(key, v, q, SG_GROUP_STATS, slot);
    else sg_block_keyed<sg_op_max, 1>(key, v, q, SG_GROUP_STATS, slot);
}

/* keys back to doubles: slot 5 max R, 6 its first index (-1 none), 7 max R over the others */
__global__ void sg_oc_passk_finalize_kernel(double *group, int64_t G) {
    const int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= G) return;
    double *s = group + k * SG_GROUP_STATS;
    const long long *q = (const long long *)s;
    const long long k5 = q[5], k6 = q[6], k7 = q[7];
    s[5] = k5 == LLONG_MIN ? -INFINITY : sg_dkey_value(k5);
    s[6] = k6 == LLONG_MAX ? -1.0 : (double)k6;
    s[7] = k7 == LLONG_MIN ? -INFINITY : sg_dkey_value(k7);
}

// ----------------------------------------------------------------------------
// 3. per-sequence advantages

__global__ void __launch_bounds__(SG_OC_THREADS)
    sg_oc_seq_adv_kernel(sg_oc_params p, float *out_seq) {
    const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    long long key = -1;
    double A = 0.0;
    if (b < p.B) {
        key = 0;
        const double R = p.R[b];
        if (p.op == SEGRL_OP_REMAX) {
            A = R - (double)p.baseline[b];
        } else {
            const double *s = p.group + sg_oc_gid(p, b) * SG_GROUP_STATS;
            const double n = s[0];
            const bool single = n < 2;
            if (single && p.singleton == SEGRL_SINGLETON_ZERO) {
                A = 0.0;
            } else {
                const double mean = single ? 0.0 : s[1] / n;
                double sd = single ? 1.0 : sg_oc_std(s[2], n, p.unbiased);
                if (p.std_scope == SEGRL_STD_BATCH) sd = sg_oc_std(p.batch[1], (double)p.B, p.unbiased);
                switch (p.op) {
                case SEGRL_OP_GRPO:
                    A = R - mean;
                    if (p.std_scope != SEGRL_STD_NONE) A = sg_div0(A, sd + (double)p.eps);
                    break;
                case SEGRL_OP_RLOO: A = single ? R : (R - mean) * n / (n - 1); break;
                case SEGRL_OP_OPO: A = R - (single || s[4] <= 0 ? 0.0 : s[3] / s[4]); break;
                case SEGRL_OP_GRPO_PASSK:
                    if ((double)b != s[6]) {
                        A = 0.0;
                        break;
                    }
                    A = R - (single ? 0.0 : s[7]);
                    if (p.std_scope != SEGRL_STD_NONE) A = sg_div0(A, sd + (double)p.eps);
                    break;
                default: /* REINFORCE++-baseline, GPG */ A = R - mean; break;
                }
            }
        }
        p.A[b] = A;
        if (out_seq && p.op != SEGRL_OP_GPG) out_seq[b] = (float)A;
    }
    if (p.op == SEGRL_OP_GPG) {
        double v[1] = {A != 0.0 ? 1.0 : 0.0};
        const int slot[1] = {2};
        sg_block_keyed<sg_op_add, 1>(key, v, p.batch, 0, slot);
    } else if (p.op == SEGRL_OP_REINFORCE_PP_BASELINE) {
        const double len = key >= 0 ? p.len[b] : 0.0;
        double v[2] = {len, len * A};
        const int slot[2] = {3, 4};
        sg_block_keyed<sg_op_add, 2>(key, v, p.batch, 0, slot);
    }
}

/* GPG: A *= B / count(A != 0) (1 when none), then out_seq */
__global__ void sg_oc_gpg_scale_kernel(sg_oc_params p, float *out_seq) {
    const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= p.B) return;
    const double nz = p.batch[2];
    const double alpha = nz > 0 ? (double)p.B / nz : 1.0;
    const double A = p.A[b] * alpha;
    p.A[b] = A;
    if (out_seq) out_seq[b] = (float)A;
}

/* REINFORCE++-baseline: sum len * (A - mean)^2 with the len-weighted mean */
__global__ void __launch_bounds__(SG_OC_THREADS) sg_oc_rpp_m2_kernel(sg_oc_params p) {
    const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    long long key = -1;
    double v[1] = {0.0};
    if (b < p.B) {
        key = 0;
        const double cnt = p.batch[3], sum = p.batch[4];
        const double mean = cnt > 0 ? sum / cnt : 0.0;
        const double A = p.A[b];
        v[0] = p.len[b] * (A - mean) * (A - mean);
    }
    const int slot[1] = {5};
    sg_block_keyed<sg_op_add, 1>(key, v, p.batch, 0, slot);
}

// ----------------------------------------------------------------------------
// 4. broadcast to the tokens

template <typename M>
__global__ void __launch_bounds__(SG_WALK_THREADS)
    sg_oc_broadcast_kernel(sg_dgeom g, const double *A, const double *batch, int rpp,
                           const void *m, int64_t rs_m, float *out, int64_t rs_o, int64_t per) {
    int64_t f0, f1;
    sg_walk_range(g.N, per, &f0, &f1);
    const int lane = threadIdx.x & 31;
    double shift = 0.0, scale = 1.0;
    if (rpp) {
        const double cnt = batch[3], sum = batch[4], m2 = batch[5];
        const double mean = cnt > 0 ? sum / cnt : 0.0;
        const double var = cnt > 1 ? m2 / (cnt - 1) : 0.0;
        shift = mean;
        scale = 1.0 / sqrt(var + 1e-8);
    }
    sg_warp_walk(g, f0, f1, [&](int64_t b, int64_t fb, int64_t fe) {
        const float v = (float)((A[b] - shift) * scale);
#pragma unroll 4
        for (int64_t f = fb + lane; f < fe; f += 32)
            out[sg_at(g, rs_o, b, f)] = sg_valid<M>(m, sg_at(g, rs_m, b, f)) ? v : 0.0f;
    });
}

// ----------------------------------------------------------------------------
// host

segrl_status sg_cuda_outcome(const sg_geom *g, const sg_outcome_args *a, sg_outcome_ws ws,
                             sg_tok out_tok, float *out_seq, void *stream) {
    const int64_t B = g->B;
    if (B <= 0) return SEGRL_OK;
    if (B > (int64_t)INT_MAX * SG_OC_THREADS)
        return sg_fail(SEGRL_ERR_UNSUPPORTED, "segrl cuda: outcome: batch %lld too large",
                       (long long)B);
    cudaStream_t s = (cudaStream_t)stream;
    const int op = a->op;
    const int64_t G = a->gidx ? a->G : 1;
    const unsigned gb = sg_grid_for(B, SG_OC_THREADS), gg = sg_grid_for(G, SG_OC_THREADS);
    const sg_dgeom dg = sg_make_dgeom(g);
    const sg_walk_cfg wc = sg_walk_config(g->N);

    sg_oc_params p;
    p.B = B;
    p.op = op;
    p.gidx = a->gidx;
    p.g64 = a->gidx_dtype == SEGRL_DTYPE_I64;
    p.scores = a->scores;
    p.baseline = a->baseline;
    p.R = ws.R;
    p.len = ws.len;
    p.A = ws.A;
    p.batch = ws.batch;
    p.group = ws.group;
    p.eps = a->opts.eps;
    p.std_scope = a->opts.std_scope;
    p.unbiased = a->opts.unbiased;
    p.singleton = a->opts.singleton;

    /* 1. R and len */
    SG_CUDA_TRY(cudaMemsetAsync(ws.batch, 0, 8 * sizeof(double), s), "outcome: cudaMemsetAsync");
    sg_oc_seq_init_kernel<<<gb, SG_OC_THREADS, 0, s>>>(p, dg, a->mask.data != NULL);
    SG_TRY_ST(sg_cuda_launched("outcome: init kernel"));
    const int do_R = a->scores == NULL, do_len = a->mask.data != NULL;
    if (g->N > 0 && (do_R || do_len)) {
        SG_TRY_ST(sg_with_mask(a->mask, [&](auto tag) {
            sg_oc_token_sums_kernel<decltype(tag)><<<wc.grid, SG_WALK_THREADS, 0, s>>>(
                dg, (const float *)a->token_rewards.data, a->token_rewards.row_stride,
                a->mask.data, a->mask.row_stride, do_R, do_len, ws.R, ws.len, wc.per);
            return sg_cuda_launched("outcome: token sums kernel");
        }));
    }

    /* 2. statistics */
    if (op != SEGRL_OP_REMAX) {
        sg_oc_group_init_kernel<<<gg, SG_OC_THREADS, 0, s>>>(ws.group, G);
        SG_TRY_ST(sg_cuda_launched("outcome: group init kernel"));
        sg_oc_group_sums_kernel<<<gb, SG_OC_THREADS, 0, s>>>(p);
        SG_TRY_ST(sg_cuda_launched("outcome: group sums kernel"));
        const int uses_std = op == SEGRL_OP_GRPO || op == SEGRL_OP_GRPO_PASSK;
        if (uses_std) {
            sg_oc_group_m2_kernel<<<gb, SG_OC_THREADS, 0, s>>>(p);
            SG_TRY_ST(sg_cuda_launched("outcome: group m2 kernel"));
        }
        if (uses_std && a->opts.std_scope == SEGRL_STD_BATCH) {
            for (int pass = 0; pass < 2; pass++) {
                sg_oc_batch_kernel<<<gb, SG_OC_THREADS, 0, s>>>(p, pass);
                SG_TRY_ST(sg_cuda_launched("outcome: batch statistics kernel"));
            }
        }
        if (op == SEGRL_OP_GRPO_PASSK) {
            for (int pass = 0; pass < 3; pass++) {
                sg_oc_passk_kernel<<<gb, SG_OC_THREADS, 0, s>>>(p, pass);
                SG_TRY_ST(sg_cuda_launched("outcome: pass@k kernel"));
            }
        }
        sg_oc_passk_finalize_kernel<<<gg, SG_OC_THREADS, 0, s>>>(ws.group, G);
        SG_TRY_ST(sg_cuda_launched("outcome: group finalize kernel"));
    }

    /* 3. A per sequence */
    sg_oc_seq_adv_kernel<<<gb, SG_OC_THREADS, 0, s>>>(p, out_seq);
    SG_TRY_ST(sg_cuda_launched("outcome: advantage kernel"));
    if (op == SEGRL_OP_GPG) {
        sg_oc_gpg_scale_kernel<<<gb, SG_OC_THREADS, 0, s>>>(p, out_seq);
        SG_TRY_ST(sg_cuda_launched("outcome: gpg scale kernel"));
    } else if (op == SEGRL_OP_REINFORCE_PP_BASELINE) {
        sg_oc_rpp_m2_kernel<<<gb, SG_OC_THREADS, 0, s>>>(p);
        SG_TRY_ST(sg_cuda_launched("outcome: reinforce++ variance kernel"));
    }

    /* 4. tokens */
    if (g->N <= 0) return SEGRL_OK;
    const int rpp = op == SEGRL_OP_REINFORCE_PP_BASELINE;
    return sg_with_mask(a->mask, [&](auto tag) {
        sg_oc_broadcast_kernel<decltype(tag)><<<wc.grid, SG_WALK_THREADS, 0, s>>>(
            dg, ws.A, ws.batch, rpp, a->mask.data, a->mask.row_stride, (float *)out_tok.data,
            out_tok.row_stride, wc.per);
        return sg_cuda_launched("outcome: broadcast kernel");
    });
}
