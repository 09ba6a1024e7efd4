/* common.cuh — private to kernels/: helpers shared by the CUDA backend.
 *
 *   host:   turning a cudaError_t into SEGRL_ERR_CUDA, checking launches, dispatching on the mask
 *           dtype, sizing "walker" launches
 *   device: the token geometry (padded rows or packed offsets), mask tests for every mask dtype,
 *           finding the sequence that holds a flat token index, walking a range of flat token
 *           indices sequence by sequence, and a block-wide keyed reduction into global
 *           accumulators (atomics, with block- and warp-level aggregation when the keys agree).
 *
 * Flat token index: padded: f = b * T + t; packed: f = offsets[b] + t. It is the number
 * sg_cpu_bad_token reports, and the unit the token-parallel kernels split work in. */
#ifndef SEGRL_KERNELS_COMMON_CUH
#define SEGRL_KERNELS_COMMON_CUH

#include "../src/internal.h"

#include <cuda_runtime.h>

#include <climits>
#include <stdint.h>

// ----------------------------------------------------------------------------
// host: errors

/* Records "<what>: <CUDA error string>" as SEGRL_ERR_CUDA and clears the runtime's last error. */
segrl_status sg_cuda_error(cudaError_t e, const char *what);

#define SG_CUDA_TRY(call, what)                                                                   \
    do {                                                                                          \
        cudaError_t sg_e_ = (call);                                                               \
        if (sg_e_ != cudaSuccess) return sg_cuda_error(sg_e_, what);                              \
    } while (0)

#define SG_TRY_ST(expr)                                                                           \
    do {                                                                                          \
        segrl_status sg_s_ = (expr);                                                              \
        if (sg_s_ != SEGRL_OK) return sg_s_;                                                      \
    } while (0)

/* After a kernel launch: a bad configuration (or an earlier asynchronous failure) shows here. */
static inline segrl_status sg_cuda_launched(const char *what) {
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? SEGRL_OK : sg_cuda_error(e, what);
}

// ----------------------------------------------------------------------------
// geometry

/* The token geometry as the kernels see it (a copy of sg_geom with device pointers only). */
struct sg_dgeom {
    const void *off; /* packed: B + 1 offsets (i32 or i64) */
    int off64;       /* offsets are i64 */
    int packed;
    int64_t B, T, N;
};

static inline sg_dgeom sg_make_dgeom(const sg_geom *g) {
    sg_dgeom d;
    d.off = g->offsets;
    d.off64 = g->offsets_dtype == SEGRL_DTYPE_I64;
    d.packed = g->packed;
    d.B = g->B;
    d.T = g->T;
    d.N = g->N;
    return d;
}

__device__ __forceinline__ int64_t sg_off_at(const sg_dgeom &g, int64_t b) {
    return g.off64 ? ((const int64_t *)g.off)[b] : (int64_t)((const int32_t *)g.off)[b];
}

/* first and one-past-last flat index of sequence b */
__device__ __forceinline__ int64_t sg_row_beg(const sg_dgeom &g, int64_t b) {
    return g.packed ? sg_off_at(g, b) : b * g.T;
}
__device__ __forceinline__ int64_t sg_row_end(const sg_dgeom &g, int64_t b) {
    return g.packed ? sg_off_at(g, b + 1) : (b + 1) * g.T;
}

/* Element offset of flat token f (in sequence b) in a tensor with row stride rs. */
__device__ __forceinline__ int64_t sg_at(const sg_dgeom &g, int64_t rs, int64_t b, int64_t f) {
    return g.packed ? f : b * rs + (f - b * g.T);
}

/* A group index vector entry (i32 or i64). */
__device__ __forceinline__ int64_t sg_index_at(const void *idx, int is64, int64_t b) {
    return is64 ? ((const int64_t *)idx)[b] : (int64_t)((const int32_t *)idx)[b];
}

// ----------------------------------------------------------------------------
// masks: a token is valid when its mask entry is non-zero; no mask: every token is valid

struct sg_no_mask {};

template <typename M> __device__ __forceinline__ bool sg_valid(const void *m, int64_t i) {
    return static_cast<const M *>(m)[i] != M(0);
}
template <> __device__ __forceinline__ bool sg_valid<sg_no_mask>(const void *, int64_t) {
    return true;
}

/* Calls f(tag) with a value of the mask's element type (sg_no_mask when absent). */
template <class F> static segrl_status sg_with_mask(sg_tok m, F &&f) {
    if (!m.data) return f(sg_no_mask{});
    switch (m.dtype) {
    case SEGRL_DTYPE_U8: return f(uint8_t{});
    case SEGRL_DTYPE_I32: return f(int32_t{});
    case SEGRL_DTYPE_I64: return f(int64_t{});
    case SEGRL_DTYPE_F32: return f(float{});
    default: break;
    }
    return sg_fail(SEGRL_ERR_UNSUPPORTED, "segrl cuda: mask dtype %d not supported", m.dtype);
}

/* exponent bits all ones: Inf or NaN (as sg_nonfinite on the CPU) */
__device__ __forceinline__ bool sg_nonfinite(float x) {
    return (__float_as_uint(x) & 0x7f800000u) == 0x7f800000u;
}

// ----------------------------------------------------------------------------
// walking flat token ranges
//
// A "walker" kernel gives each warp a contiguous range [f0, f1) of flat token indices, so work is
// balanced whatever the sequence lengths. The warp finds the sequence holding f0, then visits the
// range one sequence segment at a time; inside a segment lane l handles tokens fb + l, fb + l + 32,
// ... (coalesced). Everything below is warp-uniform: all 32 lanes call it with the same arguments.

#define SG_WALK_THREADS 256
#define SG_WALK_WARPS (SG_WALK_THREADS / 32)

struct sg_walk_cfg {
    int64_t per;   /* tokens per warp (a multiple of 32) */
    unsigned grid; /* blocks of SG_WALK_THREADS */
};

/* About 16K warps over N tokens, at least 256 tokens each. */
static inline sg_walk_cfg sg_walk_config(int64_t N) {
    sg_walk_cfg c;
    int64_t per = (N + 16383) / 16384;
    per = (per + 31) / 32 * 32;
    if (per < 256) per = 256;
    int64_t warps = (N + per - 1) / per;
    c.per = per;
    c.grid = (unsigned)((warps + SG_WALK_WARPS - 1) / SG_WALK_WARPS);
    if (c.grid == 0) c.grid = 1;
    return c;
}

/* The sequence holding flat index f < N: the largest b in [0, B) with row_beg(b) <= f (so empty
 * sequences are skipped). Packed: a 32-way search, each lane probing one offset per round. */
__device__ __forceinline__ int64_t sg_warp_find_row(const sg_dgeom &g, int64_t f) {
    if (!g.packed) return g.T > 0 ? f / g.T : 0;
    const int lane = threadIdx.x & 31;
    int64_t lo = 0, hi = g.B; /* invariant: offsets[lo] <= f, answer in [lo, hi) */
    while (hi - lo > 1) {
        const int64_t step = (hi - lo + 31) / 32;
        const int64_t p = lo + (int64_t)lane * step;
        const bool le = p < hi && sg_off_at(g, p) <= f; /* lane 0 probes lo: true */
        const unsigned ball = __ballot_sync(0xffffffffu, le);
        const int last = 31 - __clz((int)(ball | 1u));
        lo += (int64_t)last * step;
        if (lo + step < hi) hi = lo + step;
    }
    return lo;
}

/* Calls fn(b, fb, fe) for each non-empty piece [fb, fe) of sequence b inside [f0, f1), in order.
 * Warp-uniform. */
template <class Fn>
__device__ __forceinline__ void sg_warp_walk(const sg_dgeom &g, int64_t f0, int64_t f1, Fn &&fn) {
    if (f0 >= f1) return;
    int64_t b = sg_warp_find_row(g, f0);
    int64_t f = f0;
    while (f < f1 && b < g.B) {
        int64_t e = sg_row_end(g, b);
        if (e > f1) e = f1;
        if (e > f) {
            fn(b, f, e);
            f = e;
        }
        b++;
    }
}

/* This warp's range of a walker launch. */
__device__ __forceinline__ void sg_walk_range(int64_t N, int64_t per, int64_t *f0, int64_t *f1) {
    const int64_t w = (int64_t)blockIdx.x * SG_WALK_WARPS + (threadIdx.x >> 5);
    int64_t a = w * per, e = a + per;
    if (a > N) a = N;
    if (e > N) e = N;
    *f0 = a;
    *f1 = e;
}

// ----------------------------------------------------------------------------
// warp reductions

template <typename T> __device__ __forceinline__ T sg_warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// ----------------------------------------------------------------------------
// keyed reduction into global accumulators
//
// Every thread of a block holds a key (a group number, or < 0 for "nothing") and NV values that
// are combined into dst[key * stride + slot[i]] with an atomic. When all keys in the block agree
// (one global group; contiguous groups) the block combines first and issues NV atomics; when a
// warp's keys agree the warp combines; otherwise each thread issues its own atomics (interleaved
// groups land on different addresses). Must be called by every thread of the block.

struct sg_op_add {
    typedef double T;
    static __device__ __forceinline__ T identity() { return 0.0; }
    static __device__ __forceinline__ T combine(T a, T b) { return a + b; }
    static __device__ __forceinline__ void atomic(T *p, T v) { atomicAdd(p, v); }
};
struct sg_op_max {
    typedef long long T;
    static __device__ __forceinline__ T identity() { return LLONG_MIN; }
    static __device__ __forceinline__ T combine(T a, T b) { return a > b ? a : b; }
    static __device__ __forceinline__ void atomic(T *p, T v) { atomicMax(p, v); }
};
struct sg_op_min {
    typedef long long T;
    static __device__ __forceinline__ T identity() { return LLONG_MAX; }
    static __device__ __forceinline__ T combine(T a, T b) { return a < b ? a : b; }
    static __device__ __forceinline__ void atomic(T *p, T v) { atomicMin(p, v); }
};

template <class Op, typename T> __device__ __forceinline__ T sg_warp_combine(T v) {
    for (int o = 16; o > 0; o >>= 1) v = Op::combine(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

template <class Op, int NV>
__device__ void sg_block_keyed(long long key, typename Op::T (&v)[NV], typename Op::T *dst,
                               int64_t stride, const int (&slot)[NV]) {
    typedef typename Op::T T;
    __shared__ long long s_key;
    __shared__ T s_part[NV][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nwarps = (blockDim.x + 31) >> 5;
    if (key < 0)
        for (int i = 0; i < NV; i++) v[i] = Op::identity();
    __syncthreads(); /* an earlier call may still be reading s_key / s_part */
    if (threadIdx.x == 0) s_key = key;
    __syncthreads();
    const long long k0 = s_key;
    if (__syncthreads_and(key == k0 || key < 0)) {
        /* one key for the whole block */
        for (int i = 0; i < NV; i++) {
            T w = sg_warp_combine<Op>(v[i]);
            if (lane == 0) s_part[i][warp] = w;
        }
        __syncthreads();
        if (threadIdx.x == 0 && k0 >= 0) {
            for (int i = 0; i < NV; i++) {
                T acc = s_part[i][0];
                for (int w = 1; w < nwarps; w++) acc = Op::combine(acc, s_part[i][w]);
                Op::atomic(dst + k0 * stride + slot[i], acc);
            }
        }
        return;
    }
    const long long kw = __shfl_sync(0xffffffffu, key, 0);
    if (__all_sync(0xffffffffu, key == kw || key < 0)) {
        for (int i = 0; i < NV; i++) {
            T w = sg_warp_combine<Op>(v[i]);
            if (lane == 0 && kw >= 0) Op::atomic(dst + kw * stride + slot[i], w);
        }
        return;
    }
    if (key >= 0)
        for (int i = 0; i < NV; i++) Op::atomic(dst + key * stride + slot[i], v[i]);
}

/* Blocks of 256 threads, one thread per item, for n items. */
static inline unsigned sg_grid_for(int64_t n, int threads) {
    int64_t g = (n + threads - 1) / threads;
    return (unsigned)(g < 1 ? 1 : g);
}

#endif /* SEGRL_KERNELS_COMMON_CUH */
