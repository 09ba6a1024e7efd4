/* token.cu — CUDA kernels of the token-level estimators: GAE, discounted returns with a KL
 * penalty, masked whitening. Semantics of record: src/advantage/token.c.
 *
 * GAE and returns: a parallel scan over each sequence
 * ----------------------------------------------------
 * Both walk a sequence backwards carrying a small state. For GAE the state is (nv, A): V of the
 * next valid token and the running advantage. Token t maps the state coming from its right to
 * the state it outputs:
 *
 *   valid t:    nv' = V_t
 *               A'  = gamma * nv + gamma * lambda * A + (r_t - V_t)
 *   invalid t:  (nv', A') = (nv, A)
 *
 * so adv_t = A-part of  f_t o f_{t+1} o ... o f_{n-1} (0, 0),  ret_t = adv_t + V_t.
 * Every f_t is affine, x -> M x + u with M = [[a, 0], [c, d]], and such maps are closed under
 * composition. a is 0 once a span holds a valid token and 1 otherwise, and a span without valid
 * tokens is the identity, so we store a map as
 *   identity, or  nv' = p,  A' = c * nv + d * A + q        (4 floats + a flag)
 * and composing "first g, then f" (f o g, neither the identity) gives
 *   c = f.d * g.c,  d = f.d * g.d,  p = f.p,  q = f.c * g.p + f.d * g.q + f.q.
 * A valid token is (c, d, p, q) = (gamma, gamma * lambda, V_t, r_t - V_t).
 * Returns carry one number: valid t: G' = gamma * G + (r_t - beta * kl_t), invalid: identity;
 * a map is (d, q): G' = d * G + q, and f o g = (f.d * g.d, f.d * g.q + f.q).
 *
 * Kernel layout: a group of LANES threads owns one sequence (64 groups of 4 lanes per
 * 256-thread block for the shortest sequences, up to the whole block from 513 tokens on); each
 * thread owns K = 4 consecutive tokens, so a tile is LANES * 4 tokens (16 ... 1024). Tiles are
 * processed right to left with the state carried between them. Per tile:
 *   1. coalesced loads (lane l reads tokens l, l + LANES, ...) into registers, then through
 *      shared memory each thread gets its K consecutive tokens (the staging makes both sides
 *      coalesced and, with one pad word per 32, free of bank conflicts). The next tile's loads
 *      are issued right after staging, so they are in flight while this tile is scanned;
 *   2. each thread composes its K maps (right to left, one pass);
 *   3. the group scans the per-thread maps right to left: warp shuffles (Kogge-Stone over the
 *      lanes of the group's warp segment), then, for groups of more than one warp, one map per
 *      warp through shared memory applied in order to the carried state; this gives each thread
 *      the state entering its K tokens from the right, and the state leaving the tile (the next
 *      tile's carry, computed identically by every thread of the group);
 *   4. each thread re-walks its K tokens with the plain serial recurrence (the CPU formula) from
 *      its incoming state and stages the outputs; coalesced stores.
 * A tile is read completely before any of it is written, so outputs may alias inputs.
 * All threads of a block run the same number of tiles (the block's longest sequence decides;
 * shorter ones run identity tiles) so __syncthreads and full-warp shuffles are always legal.
 * No workspace is needed (the CUDA workspace of GAE and returns is only the check scratch), so
 * a sequence is never split across blocks: long sequences with few rows (B = 1) use one block.
 *
 * Whitening: a walker kernel accumulates (count, sum, sum of squares) per group in f64 with
 * atomics (one set per group change within a warp's range; the last one merged per block), a
 * one-thread-per-group kernel turns them into mean and 1/sqrt(var + eps) as sg_cpu_whiten does,
 * and a walker kernel writes the output. */
#include "common.cuh"

#include <cstring>

// ----------------------------------------------------------------------------
// scan ops

#define SG_SCAN_THREADS 256

/* Everything the scan kernels read; row strides are per tensor (padded), unused when packed. */
struct sg_scan_args {
    sg_dgeom g;
    const float *r;
    int64_t rs_r;
    const float *v; /* GAE values */
    int64_t rs_v;
    const float *lp; /* returns with a KL penalty */
    int64_t rs_lp;
    const float *rf;
    int64_t rs_rf;
    const void *m;
    int64_t rs_m;
    float *o1; /* GAE advantages, or returns */
    int64_t rs_o1;
    float *o2; /* GAE returns */
    int64_t rs_o2;
    float gamma;
    float gl;   /* GAE: gamma * lambda, as the CPU computes it */
    float beta; /* returns: KL coefficient, 0 when there is no penalty */
    int kl;     /* segrl_kl_estimator */
};

/* Row bases (element offsets of token 0 of the row) of every tensor. */
struct sg_row_bases {
    int64_t r, v, lp, rf, m, o1, o2;
};

__device__ __forceinline__ float sg_kl_value(int kind, float logp, float ref) {
    const float d = logp - ref;
    switch (kind) {
    case SEGRL_KL_K1: return d;
    case SEGRL_KL_ABS: return fabsf(d);
    case SEGRL_KL_K2: return 0.5f * d * d;
    case SEGRL_KL_K3: {
        const float k = expf(-d) + d - 1.0f;
        return k < -10.0f ? -10.0f : (k > 10.0f ? 10.0f : k);
    }
    default: return 0.0f;
    }
}

/* GAE: state (nv, A); map: identity, or nv' = p, A' = c * nv + d * A + q. */
struct sg_gae_op {
    struct State {
        float nv, A;
    };
    struct Map {
        float c, d, p, q;
        int id;
    };
    static constexpr bool kTwoArrays = true; /* stages r and V */

    static __device__ __forceinline__ State init() { return State{0.0f, 0.0f}; }
    static __device__ __forceinline__ Map identity() { return Map{0.0f, 1.0f, 0.0f, 0.0f, 1}; }
    /* f o g: g first, then f */
    static __device__ __forceinline__ Map compose(const Map &f, const Map &g) {
        if (g.id) return f;
        if (f.id) return g;
        Map h;
        h.c = f.d * g.c;
        h.d = f.d * g.d;
        h.p = f.p;
        h.q = f.c * g.p + f.d * g.q + f.q;
        h.id = 0;
        return h;
    }
    static __device__ __forceinline__ State apply(const Map &f, const State &s) {
        if (f.id) return s;
        return State{f.p, f.c * s.nv + f.d * s.A + f.q};
    }
    static __device__ __forceinline__ Map shfl_down(const Map &f, int delta, int width) {
        Map h;
        h.c = __shfl_down_sync(0xffffffffu, f.c, delta, width);
        h.d = __shfl_down_sync(0xffffffffu, f.d, delta, width);
        h.p = __shfl_down_sync(0xffffffffu, f.p, delta, width);
        h.q = __shfl_down_sync(0xffffffffu, f.q, delta, width);
        h.id = __shfl_down_sync(0xffffffffu, f.id, delta, width);
        return h;
    }
    static __device__ __forceinline__ Map shfl(const Map &f, int src, int width) {
        Map h;
        h.c = __shfl_sync(0xffffffffu, f.c, src, width);
        h.d = __shfl_sync(0xffffffffu, f.d, src, width);
        h.p = __shfl_sync(0xffffffffu, f.p, src, width);
        h.q = __shfl_sync(0xffffffffu, f.q, src, width);
        h.id = __shfl_sync(0xffffffffu, f.id, src, width);
        return h;
    }
    /* token t of the row (in range): x = r_t, y = V_t */
    static __device__ __forceinline__ void load(const sg_scan_args &a, const sg_row_bases &rb,
                                                int64_t t, float &x, float &y) {
        x = a.r[rb.r + t];
        y = a.v[rb.v + t];
    }
    static __device__ __forceinline__ Map token(const sg_scan_args &a, float x, float y, bool ok) {
        if (!ok) return identity();
        return Map{a.gamma, a.gl, y, x - y, 0};
    }
    /* the serial recurrence of sg_cpu_gae; outputs replace (x, y) with (adv, ret) */
    static __device__ __forceinline__ void step(const sg_scan_args &a, State &s, float &x,
                                                float &y, bool ok) {
        const float vt = y;
        if (ok) {
            s.A = x + a.gamma * s.nv - vt + a.gl * s.A;
            s.nv = vt;
        }
        x = s.A;
        y = s.A + vt;
    }
    static __device__ __forceinline__ void store(const sg_scan_args &a, const sg_row_bases &rb,
                                                 int64_t t, float x, float y) {
        a.o1[rb.o1 + t] = x;
        a.o2[rb.o2 + t] = y;
    }
};

/* Returns: state G; map G' = d * G + q (identity: d = 1, q = 0). */
struct sg_ret_op {
    struct State {
        float G;
    };
    struct Map {
        float d, q;
    };
    static constexpr bool kTwoArrays = false; /* stages the penalized reward only */

    static __device__ __forceinline__ State init() { return State{0.0f}; }
    static __device__ __forceinline__ Map identity() { return Map{1.0f, 0.0f}; }
    static __device__ __forceinline__ Map compose(const Map &f, const Map &g) {
        return Map{f.d * g.d, f.d * g.q + f.q};
    }
    static __device__ __forceinline__ State apply(const Map &f, const State &s) {
        return State{f.d * s.G + f.q};
    }
    static __device__ __forceinline__ Map shfl_down(const Map &f, int delta, int width) {
        return Map{__shfl_down_sync(0xffffffffu, f.d, delta, width),
                   __shfl_down_sync(0xffffffffu, f.q, delta, width)};
    }
    static __device__ __forceinline__ Map shfl(const Map &f, int src, int width) {
        return Map{__shfl_sync(0xffffffffu, f.d, src, width),
                   __shfl_sync(0xffffffffu, f.q, src, width)};
    }
    /* x = r_t - beta * kl_t (the penalty only when beta != 0; logprobs may be absent otherwise) */
    static __device__ __forceinline__ void load(const sg_scan_args &a, const sg_row_bases &rb,
                                                int64_t t, float &x, float &y) {
        x = a.r[rb.r + t];
        if (a.beta != 0.0f) x = x - a.beta * sg_kl_value(a.kl, a.lp[rb.lp + t], a.rf[rb.rf + t]);
        y = 0.0f;
    }
    static __device__ __forceinline__ Map token(const sg_scan_args &a, float x, float, bool ok) {
        if (!ok) return identity();
        return Map{a.gamma, x};
    }
    static __device__ __forceinline__ void step(const sg_scan_args &a, State &s, float &x, float &,
                                                bool ok) {
        if (ok) s.G = x + a.gamma * s.G;
        x = s.G;
    }
    static __device__ __forceinline__ void store(const sg_scan_args &a, const sg_row_bases &rb,
                                                 int64_t t, float x, float) {
        a.o1[rb.o1 + t] = x;
    }
};

// ----------------------------------------------------------------------------
// the scan kernel

/* shared-memory slot of staged item i: one pad word per 32 avoids bank conflicts when each
 * thread reads K consecutive items */
__device__ __forceinline__ int sg_pad(int i) { return i + (i >> 5); }

template <class Op, typename M, int LANES, int K>
__global__ void __launch_bounds__(SG_SCAN_THREADS, 4) sg_scan_kernel(sg_scan_args a) {
    typedef typename Op::State State;
    typedef typename Op::Map Map;
    constexpr int TILE = LANES * K;                   /* tokens per group per tile */
    constexpr int ITEMS = SG_SCAN_THREADS * K;        /* tokens per block per tile */
    constexpr int SLOTS = ITEMS + ITEMS / 32;         /* with the pad words */
    constexpr int RPB = SG_SCAN_THREADS / LANES;      /* sequences (groups) per block */
    constexpr int W = LANES < 32 ? LANES : 32;        /* scan width within a warp */
    constexpr int WPG = LANES < 32 ? 1 : LANES / 32;  /* warps per group */
    static_assert(SG_SCAN_THREADS % LANES == 0, "LANES must divide the block");

    __shared__ float s_x[SLOTS];
    __shared__ float s_y[Op::kTwoArrays ? SLOTS : 1];
    __shared__ unsigned char s_ok[SLOTS];
    __shared__ Map s_agg[SG_SCAN_THREADS / 32];
    __shared__ unsigned long long s_tiles;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int grp = tid / LANES, li = tid % LANES; /* group in block, lane in group */
    const int wl = lane % W;                       /* lane within the warp's scan segment */
    const sg_dgeom &g = a.g;
    const int64_t nrb = (g.B + RPB - 1) / RPB;

    for (int64_t blk = blockIdx.x; blk < nrb; blk += gridDim.x) {
        const int64_t b = blk * RPB + grp;
        int64_t n = 0;
        sg_row_bases rb = {0, 0, 0, 0, 0, 0, 0};
        if (b < g.B) {
            if (g.packed) {
                const int64_t beg = sg_off_at(g, b);
                n = sg_off_at(g, b + 1) - beg;
                rb = sg_row_bases{beg, beg, beg, beg, beg, beg, beg};
            } else {
                n = g.T;
                rb = sg_row_bases{b * a.rs_r,  b * a.rs_v,  b * a.rs_lp, b * a.rs_rf,
                                  b * a.rs_m,  b * a.rs_o1, b * a.rs_o2};
            }
        }
        const int64_t ntiles = (n + TILE - 1) / TILE;

        /* the block runs as many tiles as its longest sequence needs */
        __syncthreads(); /* the previous row block is done with shared memory */
        if (tid == 0) s_tiles = 0;
        __syncthreads();
        if (li == 0 && ntiles > 0) atomicMax(&s_tiles, (unsigned long long)ntiles);
        __syncthreads();
        const int64_t tiles = (int64_t)s_tiles;

        /* 1. coalesced loads of tile `it` (item j * LANES + li of the group's tile), into
         * registers; the next tile's loads are issued before this tile is scanned, so their
         * latency overlaps the work on this one */
        float px[K], py[K];
        bool pok[K];
        auto fetch = [&](int64_t it) {
            const int64_t tile = ntiles - 1 - it; /* < 0: an identity tile for this group */
#pragma unroll
            for (int j = 0; j < K; j++) {
                const int64_t t = tile * TILE + j * LANES + li;
                px[j] = 0.0f;
                py[j] = 0.0f;
                pok[j] = false;
                if (tile >= 0 && t < n) {
                    Op::load(a, rb, t, px[j], py[j]);
                    pok[j] = sg_valid<M>(a.m, rb.m + t);
                }
            }
        };
        if (tiles > 0) fetch(0);

        State carry = Op::init();
        for (int64_t it = 0; it < tiles; it++) {
            const int64_t tile = ntiles - 1 - it;
            const int64_t t0 = tile * TILE;
            float x[K], y[K];
            bool ok[K];

            __syncthreads(); /* the previous tile's stores have read the stage */
#pragma unroll
            for (int j = 0; j < K; j++) {
                const int p = sg_pad(grp * TILE + j * LANES + li);
                s_x[p] = px[j];
                if constexpr (Op::kTwoArrays) s_y[p] = py[j];
                s_ok[p] = pok[j];
            }
            __syncthreads();
            if (it + 1 < tiles) fetch(it + 1);

            /* 2. this thread's K consecutive tokens, composed right to left */
            Map F = Op::identity();
#pragma unroll
            for (int j = K - 1; j >= 0; j--) {
                const int p = sg_pad(tid * K + j);
                x[j] = s_x[p];
                if constexpr (Op::kTwoArrays) y[j] = s_y[p];
                else y[j] = 0.0f;
                ok[j] = s_ok[p] != 0;
                F = Op::compose(Op::token(a, x[j], y[j], ok[j]), F);
            }

            /* 3. inclusive suffix scan within the warp segment: F = f_l o f_{l+1} o ... */
#pragma unroll
            for (int o = 1; o < W; o <<= 1) {
                const Map r = Op::shfl_down(F, o, W);
                if (wl + o < W) F = Op::compose(F, r);
            }
            Map E = Op::shfl_down(F, 1, W); /* exclusive: the maps right of this thread */
            if (wl == W - 1) E = Op::identity();

            State enter = carry, next = carry; /* state entering this warp; after the tile */
            if (WPG > 1) {
                if (lane == 0) s_agg[warp] = F; /* the whole warp's map */
            }
            __syncthreads(); /* also: every thread has read its tokens from the stage */
            if (WPG > 1) {
                const int w0 = (warp / WPG) * WPG, wi = warp - w0;
                State s = carry;
                for (int w = WPG - 1; w >= 0; w--) {
                    if (w == wi) enter = s;
                    s = Op::apply(s_agg[w0 + w], s);
                }
                next = s;
            } else {
                next = Op::apply(Op::shfl(F, 0, W), carry);
            }

            /* 4. re-walk the K tokens serially from the incoming state; stage the outputs */
            State s = Op::apply(E, enter);
#pragma unroll
            for (int j = K - 1; j >= 0; j--) Op::step(a, s, x[j], y[j], ok[j]);
#pragma unroll
            for (int j = 0; j < K; j++) {
                const int p = sg_pad(tid * K + j);
                s_x[p] = x[j];
                if constexpr (Op::kTwoArrays) s_y[p] = y[j];
            }
            __syncthreads();
#pragma unroll
            for (int j = 0; j < K; j++) {
                const int64_t t = t0 + j * LANES + li;
                if (tile >= 0 && t < n) {
                    const int p = sg_pad(grp * TILE + j * LANES + li);
                    if constexpr (Op::kTwoArrays) Op::store(a, rb, t, s_x[p], s_y[p]);
                    else Op::store(a, rb, t, s_x[p], 0.0f);
                }
            }
            carry = next;
        }
    }
}

template <class Op, typename M, int LANES, int K>
static segrl_status sg_scan_launch(const sg_scan_args &a, cudaStream_t s, const char *what) {
    constexpr int RPB = SG_SCAN_THREADS / LANES;
    int64_t blocks = (a.g.B + RPB - 1) / RPB;
    if (blocks > (1 << 30)) blocks = 1 << 30; /* the kernel loops over the rest */
    sg_scan_kernel<Op, M, LANES, K><<<(unsigned)blocks, SG_SCAN_THREADS, 0, s>>>(a);
    return sg_cuda_launched(what);
}

/* Picks the group size from the sequence length (T, or the mean packed length): the smallest
 * tile that holds a whole sequence, up to 1024 tokens (the whole block); longer sequences loop
 * over tiles, with the next tile's loads in flight while one is scanned. K = 4 throughout keeps
 * the kernel at <= 64 registers (4 blocks of 256 threads per SM). */
template <class Op, typename M>
static segrl_status sg_scan_pick(const sg_scan_args &a, cudaStream_t s, const char *what) {
    const int64_t len = a.g.packed ? (a.g.N + a.g.B - 1) / a.g.B : a.g.T;
    if (len <= 16) return sg_scan_launch<Op, M, 4, 4>(a, s, what);
    if (len <= 32) return sg_scan_launch<Op, M, 8, 4>(a, s, what);
    if (len <= 64) return sg_scan_launch<Op, M, 16, 4>(a, s, what);
    if (len <= 128) return sg_scan_launch<Op, M, 32, 4>(a, s, what);
    if (len <= 256) return sg_scan_launch<Op, M, 64, 4>(a, s, what);
    if (len <= 512) return sg_scan_launch<Op, M, 128, 4>(a, s, what);
    return sg_scan_launch<Op, M, 256, 4>(a, s, what);
}

static sg_scan_args sg_scan_args_zero(const sg_geom *g) {
    sg_scan_args a;
    memset(&a, 0, sizeof a);
    a.g = sg_make_dgeom(g);
    return a;
}

segrl_status sg_cuda_gae(const sg_geom *g, sg_tok rewards, sg_tok values, sg_tok mask,
                         float gamma, float lambda, sg_tok adv, sg_tok ret, void *stream) {
    if (g->B <= 0 || g->N <= 0) return SEGRL_OK;
    sg_scan_args a = sg_scan_args_zero(g);
    a.r = (const float *)rewards.data;
    a.rs_r = rewards.row_stride;
    a.v = (const float *)values.data;
    a.rs_v = values.row_stride;
    a.m = mask.data;
    a.rs_m = mask.row_stride;
    a.o1 = (float *)adv.data;
    a.rs_o1 = adv.row_stride;
    a.o2 = (float *)ret.data;
    a.rs_o2 = ret.row_stride;
    a.gamma = gamma;
    a.gl = gamma * lambda;
    cudaStream_t s = (cudaStream_t)stream;
    return sg_with_mask(mask, [&](auto tag) {
        return sg_scan_pick<sg_gae_op, decltype(tag)>(a, s, "gae kernel");
    });
}

segrl_status sg_cuda_returns(const sg_geom *g, sg_tok rewards, sg_tok mask, sg_tok logp,
                             sg_tok ref, float gamma, float beta, int32_t kl, sg_tok out,
                             void *stream) {
    if (g->B <= 0 || g->N <= 0) return SEGRL_OK;
    const int penalty = beta != 0.0f && kl != SEGRL_KL_NONE && logp.data && ref.data;
    sg_scan_args a = sg_scan_args_zero(g);
    a.r = (const float *)rewards.data;
    a.rs_r = rewards.row_stride;
    a.m = mask.data;
    a.rs_m = mask.row_stride;
    if (penalty) {
        a.lp = (const float *)logp.data;
        a.rs_lp = logp.row_stride;
        a.rf = (const float *)ref.data;
        a.rs_rf = ref.row_stride;
    }
    a.o1 = (float *)out.data;
    a.rs_o1 = out.row_stride;
    a.gamma = gamma;
    a.beta = penalty ? beta : 0.0f;
    a.kl = kl;
    cudaStream_t s = (cudaStream_t)stream;
    return sg_with_mask(mask, [&](auto tag) {
        return sg_scan_pick<sg_ret_op, decltype(tag)>(a, s, "returns kernel");
    });
}

// ----------------------------------------------------------------------------
// masked whitening
// stats[k * SG_GROUP_STATS + {0, 1, 2, 3, 4}] = count, sum, sum of squares, mean, 1/sqrt(var+eps)

/* count, sum, sum of squares over valid tokens, per group, in f64 */
template <typename M>
__global__ void __launch_bounds__(SG_WALK_THREADS)
    sg_whiten_stats_kernel(sg_dgeom g, const float *x, int64_t rs_x, const void *m, int64_t rs_m,
                           const void *gidx, int gidx64, double *stats, int64_t per) {
    __shared__ long long s_key[SG_WALK_WARPS];
    __shared__ double s_val[SG_WALK_WARPS][3];
    int64_t f0, f1;
    sg_walk_range(g.N, per, &f0, &f1);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    long long cur = -1; /* group of the lane partials below */
    double cnt = 0.0, sum = 0.0, sq = 0.0;
    sg_warp_walk(g, f0, f1, [&](int64_t b, int64_t fb, int64_t fe) {
        const long long k = gidx ? (long long)sg_index_at(gidx, gidx64, b) : 0;
        if (k != cur) {
            if (cur >= 0) {
                const double c = sg_warp_sum(cnt), s = sg_warp_sum(sum), q = sg_warp_sum(sq);
                if (lane == 0) {
                    atomicAdd(stats + cur * SG_GROUP_STATS + 0, c);
                    atomicAdd(stats + cur * SG_GROUP_STATS + 1, s);
                    atomicAdd(stats + cur * SG_GROUP_STATS + 2, q);
                }
            }
            cur = k;
            cnt = sum = sq = 0.0;
        }
#pragma unroll 4
        for (int64_t f = fb + lane; f < fe; f += 32) {
            if (sg_valid<M>(m, sg_at(g, rs_m, b, f))) {
                const double v = (double)x[sg_at(g, rs_x, b, f)];
                cnt += 1.0;
                sum += v;
                sq += v * v;
            }
        }
    });
    /* the last partials: merge equal groups of the block's warps, then one atomic each */
    const double c = sg_warp_sum(cnt), s = sg_warp_sum(sum), q = sg_warp_sum(sq);
    if (lane == 0) {
        s_key[warp] = cur;
        s_val[warp][0] = c;
        s_val[warp][1] = s;
        s_val[warp][2] = q;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        long long k = -1;
        double a0 = 0.0, a1 = 0.0, a2 = 0.0;
        for (int w = 0; w <= SG_WALK_WARPS; w++) {
            const long long kw = w < SG_WALK_WARPS ? s_key[w] : -2;
            if (kw != k) {
                if (k >= 0) {
                    atomicAdd(stats + k * SG_GROUP_STATS + 0, a0);
                    atomicAdd(stats + k * SG_GROUP_STATS + 1, a1);
                    atomicAdd(stats + k * SG_GROUP_STATS + 2, a2);
                }
                k = kw;
                a0 = a1 = a2 = 0.0;
            }
            if (w < SG_WALK_WARPS) {
                a0 += s_val[w][0];
                a1 += s_val[w][1];
                a2 += s_val[w][2];
            }
        }
    }
}

/* mean and 1/sqrt(var + eps) per group, exactly as sg_cpu_whiten (no FMA contraction) */
__global__ void sg_whiten_finalize_kernel(double *stats, int64_t ng, int unbiased, float eps) {
    const int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= ng) return;
    double *s = stats + k * SG_GROUP_STATS;
    const double cnt = s[0], mean = cnt > 0 ? s[1] / cnt : 0.0;
    double var = cnt > 0 ? __dsub_rn(s[2] / cnt, __dmul_rn(mean, mean)) : 0.0;
    if (var < 0) var = 0;
    if (unbiased) var = cnt > 1 ? __dmul_rn(var, cnt) / (cnt - 1) : 0.0;
    s[3] = mean;
    const double ve = __dadd_rn(var, (double)eps);
    s[4] = ve > 0 ? 1.0 / sqrt(ve) : 0.0;
}

template <typename M>
__global__ void __launch_bounds__(SG_WALK_THREADS)
    sg_whiten_write_kernel(sg_dgeom g, const float *x, int64_t rs_x, const void *m, int64_t rs_m,
                           const void *gidx, int gidx64, const double *stats, int shift_mean,
                           float *out, int64_t rs_o, int64_t per) {
    int64_t f0, f1;
    sg_walk_range(g.N, per, &f0, &f1);
    const int lane = threadIdx.x & 31;
    sg_warp_walk(g, f0, f1, [&](int64_t b, int64_t fb, int64_t fe) {
        const int64_t k = gidx ? sg_index_at(gidx, gidx64, b) : 0;
        const double *s = stats + k * SG_GROUP_STATS;
        const float mean = (float)s[3], inv = (float)s[4];
        const float add = shift_mean ? 0.0f : mean;
#pragma unroll 4
        for (int64_t f = fb + lane; f < fe; f += 32) {
            const int64_t ix = sg_at(g, rs_x, b, f);
            const bool ok = sg_valid<M>(m, sg_at(g, rs_m, b, f));
            const float v = ok ? __fadd_rn(__fmul_rn(x[ix] - mean, inv), add) : 0.0f;
            out[sg_at(g, rs_o, b, f)] = v;
        }
    });
}

segrl_status sg_cuda_whiten(const sg_geom *g, sg_tok x, sg_tok mask, const void *gidx,
                            int32_t gidx_dtype, int64_t G, const segrl_whiten_opts *o,
                            double *stats, sg_tok out, void *stream) {
    if (g->B <= 0 || g->N <= 0) return SEGRL_OK; /* no token to write */
    cudaStream_t s = (cudaStream_t)stream;
    const int64_t ng = gidx ? G : 1;
    const int g64 = gidx_dtype == SEGRL_DTYPE_I64;
    const sg_dgeom dg = sg_make_dgeom(g);
    const sg_walk_cfg wc = sg_walk_config(g->N);
    SG_CUDA_TRY(cudaMemsetAsync(stats, 0, (size_t)ng * SG_GROUP_STATS * sizeof(double), s),
                "whiten: cudaMemsetAsync");
    SG_TRY_ST(sg_with_mask(mask, [&](auto tag) {
        sg_whiten_stats_kernel<decltype(tag)><<<wc.grid, SG_WALK_THREADS, 0, s>>>(
            dg, (const float *)x.data, x.row_stride, mask.data, mask.row_stride, gidx, g64, stats,
            wc.per);
        return sg_cuda_launched("whiten statistics kernel");
    }));
    sg_whiten_finalize_kernel<<<sg_grid_for(ng, 256), 256, 0, s>>>(stats, ng, o->unbiased,
                                                                   o->eps);
    SG_TRY_ST(sg_cuda_launched("whiten finalize kernel"));
    return sg_with_mask(mask, [&](auto tag) {
        sg_whiten_write_kernel<decltype(tag)><<<wc.grid, SG_WALK_THREADS, 0, s>>>(
            dg, (const float *)x.data, x.row_stride, mask.data, mask.row_stride, gidx, g64, stats,
            o->shift_mean, (float *)out.data, out.row_stride, wc.per);
        return sg_cuda_launched("whiten write kernel");
    });
}
