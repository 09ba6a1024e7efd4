/* tree.cu — CUDA kernels for rollout trees: the content checks of the node arrays, node values
 * (leaf mean, child mean, max, leaf counts) and node advantages (parent, parent-std, siblings,
 * leaf GRPO, node mask). Semantics of record: src/tree/tree.c.
 *
 * Checks (SEGRL_CHECKS_FULL): each is a kernel in which every offending node does an atomicMin
 * of its index into a word of the check scratch, so the smallest offending node is reported, as
 * the CPU's first-to-last loop does; the word and the few values the message needs are copied
 * back and the stream synchronized. The span check needs, for node i, the largest end of the
 * non-empty spans before i: an exclusive max-scan.
 *
 * Values: everything flows up the tree, so nodes are processed level by level, deepest first.
 *   1. depth: the given depth array, or pointer jumping (ceil(log2 M) rounds over all nodes:
 *      up[i] <- up[up[i]], d[i] <- d[i] + d[up[i]], ping-pong buffers);
 *   2. a counting sort of the nodes by depth: histogram (atomics), exclusive scan, scatter;
 *   3. levels from the deepest to 0: every node of the level finishes its own value (its
 *      children, one level deeper, are all done) and adds into its parent with f64 atomics
 *      (leaf-reward sum, leaf count, child-value sum; max through an order-preserving map of
 *      f64 bits to signed 64-bit integers and atomicMax).
 *   A level of more than SG_TREE_BIG nodes gets its own grid-wide launch; a run of consecutive
 *   smaller levels is processed by one single-block launch that loops over them with
 *   __syncthreads between levels. So a chain of 10^5 nodes is one launch (10^5 block barriers)
 *   and a wide shallow tree is a handful of full-GPU launches. The host reads the level offsets
 *   in chunks of SG_TREE_CHUNK levels (one small copy and stream synchronization each).
 * Advantages need no ordering: child sums (and squared deviations) per parent with f64
 * atomics, roots by pointer jumping for leaf GRPO with per-tree f64 atomics, then one kernel per
 * node. The advantages are staged in the workspace before being written, so out_advantages may
 * alias values as on the CPU.
 *
 * f64 atomics make the summation order vary from run to run: results agree with the CPU to
 * rounding of the f64 sums (then one f32 rounding), not bit for bit. */
#include "common.cuh"

#include <cstring>

#define SG_TREE_THREADS 256
#define SG_TREE_SCAN_THREADS 1024
#define SG_TREE_BIG 4096   /* levels with more nodes get their own multi-block launch */
#define SG_TREE_CHUNK 4096 /* level offsets read back per copy */
#define SG_NONE_FOUND_T 0xffffffffffffffffull

typedef unsigned long long sg_u64;

// ----------------------------------------------------------------------------
// helpers

__device__ __forceinline__ int64_t sg_tix(const void *p, int is64, int64_t i) {
    return is64 ? ((const int64_t *)p)[i] : (int64_t)((const int32_t *)p)[i];
}

__device__ __forceinline__ void sg_tix_put(void *p, int is64, int64_t i, int64_t v) {
    if (is64) ((int64_t *)p)[i] = v;
    else ((int32_t *)p)[i] = (int32_t)v;
}

__device__ __forceinline__ void sg_tmask_put(void *p, int32_t dt, int64_t i, int v) {
    switch (dt) {
    case SEGRL_DTYPE_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case SEGRL_DTYPE_I32: ((int32_t *)p)[i] = v; break;
    case SEGRL_DTYPE_I64: ((int64_t *)p)[i] = v; break;
    default: ((float *)p)[i] = (float)v; break;
    }
}

/* f64 -> i64 preserving order (finite values and infinities) */
__device__ __forceinline__ long long sg_ord_enc(double v) {
    long long b = __double_as_longlong(v);
    return b >= 0 ? b : b ^ 0x7fffffffffffffffll;
}
__device__ __forceinline__ double sg_ord_dec(long long b) {
    return __longlong_as_double(b >= 0 ? b : b ^ 0x7fffffffffffffffll);
}

__device__ __forceinline__ double sg_tstd(double m2, int64_t n, int unbiased) {
    if (n < 2) return 1.0;
    return sqrt(m2 / (double)(unbiased ? n - 1 : n));
}

#define SG_FOR_NODES(i, M)                                                                        \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (M);                     \
         i += (int64_t)gridDim.x * blockDim.x)

static unsigned sg_tgrid(int64_t n) {
    int64_t g = (n + SG_TREE_THREADS - 1) / SG_TREE_THREADS;
    if (g > 65536) g = 65536;
    return (unsigned)(g < 1 ? 1 : g);
}

/* workspace: [check scratch][SG_TREE_CUDA_SLOTS arrays of M + 2 8-byte words] */
static void *sg_slot(const sg_tree_dev *t, int s) {
    const size_t each = sg_align((size_t)(t->M + 2) * 8);
    return (char *)t->ws + SG_WS_CHECK_BYTES + (size_t)s * each;
}

// ----------------------------------------------------------------------------
// single-block scan (exclusive) of n 64-bit words: out[i] = init (+ or max) in[0..i); with
// write_total, out[n] = the whole reduction. in may equal out.

template <bool MAX> __device__ __forceinline__ long long sg_comb(long long a, long long b) {
    return MAX ? (a > b ? a : b) : a + b;
}

template <bool MAX>
__global__ void __launch_bounds__(SG_TREE_SCAN_THREADS)
    sg_tree_scan_kernel(const long long *in, long long *out, int64_t n, long long init,
                        int write_total) {
    __shared__ long long part[SG_TREE_SCAN_THREADS];
    const int64_t nt = blockDim.x;
    const int64_t per = (n + nt - 1) / nt;
    int64_t a = (int64_t)threadIdx.x * per, e = a + per;
    if (a > n) a = n;
    if (e > n) e = n;
    long long acc = MAX ? LLONG_MIN : 0;
    for (int64_t i = a; i < e; i++) acc = sg_comb<MAX>(acc, in[i]);
    part[threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        long long run = init;
        for (int j = 0; j < (int)nt; j++) {
            const long long x = part[j];
            part[j] = run;
            run = sg_comb<MAX>(run, x);
        }
    }
    __syncthreads();
    long long run = part[threadIdx.x];
    for (int64_t i = a; i < e; i++) {
        const long long x = in[i];
        out[i] = run;
        run = sg_comb<MAX>(run, x);
    }
    if (write_total && threadIdx.x == nt - 1) out[n] = run;
}

// ----------------------------------------------------------------------------
// content checks

__global__ void sg_tree_bad_parent_kernel(const void *par, int p64, int64_t M, sg_u64 *bad) {
    SG_FOR_NODES(i, M) {
        const int64_t p = sg_tix(par, p64, i);
        if (p < -1 || p >= M || p >= i) atomicMin(bad, (sg_u64)i);
    }
}

__global__ void sg_tree_bad_depth_kernel(const void *par, int p64, const void *dep, int d64,
                                         int64_t M, sg_u64 *bad) {
    SG_FOR_NODES(i, M) {
        const int64_t p = sg_tix(par, p64, i);
        const int64_t want = p < 0 ? 0 : sg_tix(dep, d64, p) + 1;
        if (sg_tix(dep, d64, i) != want) atomicMin(bad, (sg_u64)i);
    }
}

/* key[i] = span end when the span is non-empty, else 0 (the CPU's end_so_far starts at 0) */
__global__ void sg_tree_span_key_kernel(const void *s0, int s64, const void *s1, int e64,
                                        int64_t M, long long *key) {
    SG_FOR_NODES(i, M) {
        const int64_t s = sg_tix(s0, s64, i), e = sg_tix(s1, e64, i);
        key[i] = e > s ? (long long)e : 0;
    }
}

__global__ void sg_tree_bad_span_kernel(const void *s0, int s64, const void *s1, int e64,
                                        int64_t M, int64_t nt, const long long *before,
                                        sg_u64 *bad) {
    SG_FOR_NODES(i, M) {
        const int64_t s = sg_tix(s0, s64, i), e = sg_tix(s1, e64, i);
        const bool wrong = s < 0 || s > nt || e < s || e > nt || (e > s && s < before[i]);
        if (wrong) atomicMin(bad, (sg_u64)i);
    }
}

__global__ void sg_tree_child_count_kernel(const void *par, int p64, int64_t M, sg_u64 *k) {
    SG_FOR_NODES(i, M) {
        const int64_t p = sg_tix(par, p64, i);
        if (p >= 0) atomicAdd(k + p, 1ull);
    }
}

__global__ void sg_tree_bad_reward_kernel(const float *R, const sg_u64 *k, int64_t M,
                                          sg_u64 *bad) {
    SG_FOR_NODES(i, M) {
        if (k[i] == 0 && sg_nonfinite(R[i])) atomicMin(bad, (sg_u64)i);
    }
}

static segrl_status sg_tree_bad_begin(sg_u64 *word, cudaStream_t s) {
    SG_CUDA_TRY(cudaMemsetAsync(word, 0xff, sizeof(sg_u64), s), "tree check: cudaMemsetAsync");
    return SEGRL_OK;
}

/* copies n bytes from src (device) to dst (host) and synchronizes */
static segrl_status sg_tree_fetch(void *dst, const void *src, size_t n, cudaStream_t s,
                                  const char *what) {
    SG_CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, s), what);
    SG_CUDA_TRY(cudaStreamSynchronize(s), what);
    return SEGRL_OK;
}

static segrl_status sg_tree_bad_end(sg_u64 *word, cudaStream_t s, int64_t *out) {
    sg_u64 h = SG_NONE_FOUND_T;
    SG_TRY_ST(sg_tree_fetch(&h, word, sizeof h, s, "tree check: copy"));
    *out = h == SG_NONE_FOUND_T ? -1 : (int64_t)h;
    return SEGRL_OK;
}

/* one index entry (i32/i64) of device memory */
static segrl_status sg_tree_fetch_ix(const void *p, int32_t dt, int64_t i, cudaStream_t s,
                                     int64_t *out) {
    if (dt == SEGRL_DTYPE_I32) {
        int32_t v = 0;
        SG_TRY_ST(sg_tree_fetch(&v, (const int32_t *)p + i, 4, s, "tree check: copy"));
        *out = v;
    } else {
        int64_t v = 0;
        SG_TRY_ST(sg_tree_fetch(&v, (const int64_t *)p + i, 8, s, "tree check: copy"));
        *out = v;
    }
    return SEGRL_OK;
}

segrl_status sg_cuda_tree_check(const sg_tree_dev *t, int check_reward, sg_tree_bad *out) {
    cudaStream_t s = (cudaStream_t)t->stream;
    memset(out, 0, sizeof *out);
    out->node = -1;
    const int64_t M = t->M;
    if (M <= 0) return SEGRL_OK;
    sg_u64 *word = (sg_u64 *)t->ws;
    const unsigned grid = sg_tgrid(M);
    const int p64 = t->parent_dt == SEGRL_DTYPE_I64;
    int64_t bad = -1;

    SG_TRY_ST(sg_tree_bad_begin(word, s));
    sg_tree_bad_parent_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(t->parent, p64, M, word);
    SG_TRY_ST(sg_cuda_launched("tree parent check kernel"));
    SG_TRY_ST(sg_tree_bad_end(word, s, &bad));
    if (bad >= 0) {
        out->what = SG_TREE_BAD_PARENT;
        out->node = bad;
        return sg_tree_fetch_ix(t->parent, t->parent_dt, bad, s, &out->a);
    }
    if (t->depth) {
        const int d64 = t->depth_dt == SEGRL_DTYPE_I64;
        SG_TRY_ST(sg_tree_bad_begin(word, s));
        sg_tree_bad_depth_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(t->parent, p64, t->depth, d64,
                                                                  M, word);
        SG_TRY_ST(sg_cuda_launched("tree depth check kernel"));
        SG_TRY_ST(sg_tree_bad_end(word, s, &bad));
        if (bad >= 0) {
            int64_t p = -1, dp = -1;
            out->what = SG_TREE_BAD_DEPTH;
            out->node = bad;
            SG_TRY_ST(sg_tree_fetch_ix(t->depth, t->depth_dt, bad, s, &out->a));
            SG_TRY_ST(sg_tree_fetch_ix(t->parent, t->parent_dt, bad, s, &p));
            if (p >= 0) SG_TRY_ST(sg_tree_fetch_ix(t->depth, t->depth_dt, p, s, &dp));
            out->b = p < 0 ? 0 : dp + 1;
            return SEGRL_OK;
        }
    }
    if (t->s0) {
        const int s64 = t->s0_dt == SEGRL_DTYPE_I64, e64 = t->s1_dt == SEGRL_DTYPE_I64;
        long long *key = (long long *)sg_slot(t, 0);
        sg_tree_span_key_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(t->s0, s64, t->s1, e64, M, key);
        SG_TRY_ST(sg_cuda_launched("tree span key kernel"));
        sg_tree_scan_kernel<true><<<1, SG_TREE_SCAN_THREADS, 0, s>>>(key, key, M, 0, 0);
        SG_TRY_ST(sg_cuda_launched("tree span scan kernel"));
        SG_TRY_ST(sg_tree_bad_begin(word, s));
        sg_tree_bad_span_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(t->s0, s64, t->s1, e64, M,
                                                                 t->num_tokens, key, word);
        SG_TRY_ST(sg_cuda_launched("tree span check kernel"));
        SG_TRY_ST(sg_tree_bad_end(word, s, &bad));
        if (bad >= 0) {
            out->what = SG_TREE_BAD_SPAN;
            out->node = bad;
            SG_TRY_ST(sg_tree_fetch_ix(t->s0, t->s0_dt, bad, s, &out->a));
            return sg_tree_fetch_ix(t->s1, t->s1_dt, bad, s, &out->b);
        }
    }
    if (check_reward && t->reward) {
        sg_u64 *k = (sg_u64 *)sg_slot(t, 0);
        SG_CUDA_TRY(cudaMemsetAsync(k, 0, (size_t)M * 8, s), "tree check: cudaMemsetAsync");
        sg_tree_child_count_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(t->parent, p64, M, k);
        SG_TRY_ST(sg_cuda_launched("tree child count kernel"));
        SG_TRY_ST(sg_tree_bad_begin(word, s));
        sg_tree_bad_reward_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(t->reward, k, M, word);
        SG_TRY_ST(sg_cuda_launched("tree reward check kernel"));
        SG_TRY_ST(sg_tree_bad_end(word, s, &bad));
        if (bad >= 0) {
            float r = 0.0f;
            out->what = SG_TREE_BAD_REWARD;
            out->node = bad;
            SG_TRY_ST(sg_tree_fetch(&r, t->reward + bad, 4, s, "tree check: copy"));
            out->r = (double)r;
        }
    }
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// child counts, depths and roots

static segrl_status sg_tree_child_counts(const sg_tree_dev *t, sg_u64 *k, cudaStream_t s) {
    SG_CUDA_TRY(cudaMemsetAsync(k, 0, (size_t)t->M * 8, s), "tree: cudaMemsetAsync");
    sg_tree_child_count_kernel<<<sg_tgrid(t->M), SG_TREE_THREADS, 0, s>>>(
        t->parent, t->parent_dt == SEGRL_DTYPE_I64, t->M, k);
    return sg_cuda_launched("tree child count kernel");
}

__global__ void sg_tree_jump_init_kernel(const void *par, int p64, int64_t M, long long *up,
                                         long long *d) {
    SG_FOR_NODES(i, M) {
        const int64_t p = sg_tix(par, p64, i);
        up[i] = p < 0 ? i : p;
        if (d) d[i] = p < 0 ? 0 : 1;
    }
}

__global__ void sg_tree_jump_kernel(const long long *up0, const long long *d0, long long *up1,
                                    long long *d1, int64_t M) {
    SG_FOR_NODES(i, M) {
        const long long u = up0[i];
        up1[i] = up0[u];
        if (d1) d1[i] = d0[i] + d0[u];
    }
}

/* pointer jumping: on return *up_out[i] is the root of i and (with d) *d_out[i] its depth.
 * The four buffers are used in turn; the results are in one of each pair. */
static segrl_status sg_tree_jump(const sg_tree_dev *t, long long *upA, long long *upB,
                                 long long *dA, long long *dB, long long **up_out,
                                 long long **d_out, cudaStream_t s) {
    const int64_t M = t->M;
    const unsigned grid = sg_tgrid(M);
    sg_tree_jump_init_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(
        t->parent, t->parent_dt == SEGRL_DTYPE_I64, M, upA, dA);
    SG_TRY_ST(sg_cuda_launched("tree jump init kernel"));
    for (int64_t reach = 1; reach < M; reach *= 2) {
        sg_tree_jump_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(upA, dA, upB, dB, M);
        SG_TRY_ST(sg_cuda_launched("tree jump kernel"));
        long long *x = upA;
        upA = upB;
        upB = x;
        x = dA;
        dA = dB;
        dB = x;
    }
    *up_out = upA;
    if (d_out) *d_out = dA;
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// values

__global__ void sg_tree_depth_copy_kernel(const void *dep, int d64, int64_t M, long long *D) {
    SG_FOR_NODES(i, M) D[i] = sg_tix(dep, d64, i);
}

/* A depth outside [0, M) (only from bad input under SEGRL_CHECKS_SHAPES) leaves the node out
 * rather than writing outside the workspace. */
__device__ __forceinline__ bool sg_depth_ok(long long d, int64_t M) {
    return (unsigned long long)d < (unsigned long long)M;
}

__global__ void sg_tree_level_hist_kernel(const long long *D, int64_t M, sg_u64 *cnt) {
    SG_FOR_NODES(i, M) {
        if (sg_depth_ok(D[i], M)) atomicAdd(cnt + D[i], 1ull);
    }
}

__global__ void sg_tree_max_depth_kernel(const long long *D, int64_t M, long long *maxd) {
    long long m = 0;
    SG_FOR_NODES(i, M) m = D[i] > m && sg_depth_ok(D[i], M) ? D[i] : m;
    atomicMax(maxd, m);
}

__global__ void sg_tree_level_scatter_kernel(const long long *D, int64_t M, const long long *start,
                                             sg_u64 *cnt, long long *order) {
    SG_FOR_NODES(i, M) {
        const long long d = D[i];
        if (!sg_depth_ok(d, M)) continue;
        const sg_u64 c = atomicAdd(cnt + d, ~0ull); /* - 1 */
        order[start[d] + (long long)c - 1] = i;
    }
}

struct sg_tree_up {
    const void *par;
    int p64;
    const float *R;
    const sg_u64 *k;
    double *S;     /* leaf-reward sums */
    sg_u64 *L;     /* leaf counts */
    double *C;     /* child-value sums, or (MAX) order-encoded maxima */
    int32_t kind;
    float *out;
    void *lc;
    int lc64;
};

__global__ void sg_tree_up_init_kernel(sg_tree_up u, int64_t M) {
    const long long lo = LLONG_MIN; /* below every encoded value; every inner node has a child */
    SG_FOR_NODES(i, M) {
        u.S[i] = 0.0;
        u.L[i] = 0;
        if (u.kind == SEGRL_TREE_VALUE_MAX) ((long long *)u.C)[i] = lo;
        else u.C[i] = 0.0;
    }
}

/* node i: its subtree is complete; finish its value and push into its parent */
__device__ __forceinline__ void sg_tree_up_node(const sg_tree_up &u, int64_t i) {
    const sg_u64 k = u.k[i];
    double v, s;
    sg_u64 l;
    if (k == 0) {
        v = (double)u.R[i];
        s = v;
        l = 1;
    } else {
        /* written by other threads' atomics (L2) before the last barrier or launch: read
         * through L2 */
        s = __ldcg(u.S + i);
        l = __ldcg(u.L + i);
        if (u.kind == SEGRL_TREE_VALUE_LEAF_MEAN) v = s / (double)l;
        else if (u.kind == SEGRL_TREE_VALUE_CHILD_MEAN) v = __ldcg(u.C + i) / (double)k;
        else v = sg_ord_dec(__ldcg((const long long *)u.C + i));
    }
    u.out[i] = (float)v;
    if (u.lc) sg_tix_put(u.lc, u.lc64, i, (int64_t)l);
    const int64_t p = sg_tix(u.par, u.p64, i);
    if (p < 0) return;
    if (u.kind == SEGRL_TREE_VALUE_LEAF_MEAN) atomicAdd(u.S + p, s);
    if (u.kind == SEGRL_TREE_VALUE_LEAF_MEAN || u.lc) atomicAdd(u.L + p, l);
    if (u.kind == SEGRL_TREE_VALUE_MAX) atomicMax((long long *)u.C + p, sg_ord_enc(v));
    else if (u.kind == SEGRL_TREE_VALUE_CHILD_MEAN) atomicAdd(u.C + p, v);
}

/* one big level: order[lo, hi) */
__global__ void sg_tree_up_level_kernel(sg_tree_up u, const long long *order, int64_t lo,
                                        int64_t hi) {
    for (int64_t j = lo + (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < hi;
         j += (int64_t)gridDim.x * blockDim.x)
        sg_tree_up_node(u, order[j]);
}

/* levels d_hi down to d_lo, one block, a barrier between levels */
__global__ void __launch_bounds__(SG_TREE_THREADS)
    sg_tree_up_levels_kernel(sg_tree_up u, const long long *order, const long long *start,
                             int64_t d_lo, int64_t d_hi) {
    for (int64_t d = d_hi; d >= d_lo; d--) {
        const int64_t lo = start[d], hi = start[d + 1];
        for (int64_t j = lo + threadIdx.x; j < hi; j += blockDim.x) sg_tree_up_node(u, order[j]);
        __syncthreads();
    }
}

segrl_status sg_cuda_tree_values(const sg_tree_dev *t, int32_t kind, float *out, void *lc,
                                 int32_t lc_dt) {
    cudaStream_t s = (cudaStream_t)t->stream;
    const int64_t M = t->M;
    if (M <= 0) return SEGRL_OK;
    const unsigned grid = sg_tgrid(M);
    sg_u64 *k = (sg_u64 *)sg_slot(t, 0);
    long long *upA = (long long *)sg_slot(t, 1), *upB = (long long *)sg_slot(t, 2);
    long long *dA = (long long *)sg_slot(t, 3), *dB = (long long *)sg_slot(t, 4);
    sg_u64 *cnt = (sg_u64 *)sg_slot(t, 5);
    long long *start = (long long *)sg_slot(t, 6), *order = (long long *)sg_slot(t, 7);
    long long *maxd = (long long *)t->ws;

    SG_TRY_ST(sg_tree_child_counts(t, k, s));
    long long *D = dA, *Cslot = dB;
    if (t->depth) {
        sg_tree_depth_copy_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(
            t->depth, t->depth_dt == SEGRL_DTYPE_I64, M, D);
        SG_TRY_ST(sg_cuda_launched("tree depth copy kernel"));
    } else {
        long long *root = NULL;
        SG_TRY_ST(sg_tree_jump(t, upA, upB, dA, dB, &root, &D, s));
        Cslot = D == dA ? dB : dA;
    }
    /* the number of levels */
    SG_CUDA_TRY(cudaMemsetAsync(maxd, 0, 8, s), "tree: cudaMemsetAsync");
    sg_tree_max_depth_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(D, M, maxd);
    SG_TRY_ST(sg_cuda_launched("tree max depth kernel"));
    long long hmax = 0;
    SG_TRY_ST(sg_tree_fetch(&hmax, maxd, 8, s, "tree: copy max depth"));
    const int64_t nlev = (int64_t)hmax + 1;
    /* counting sort by depth */
    SG_CUDA_TRY(cudaMemsetAsync(cnt, 0, (size_t)nlev * 8, s), "tree: cudaMemsetAsync");
    sg_tree_level_hist_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(D, M, cnt);
    SG_TRY_ST(sg_cuda_launched("tree level histogram kernel"));
    sg_tree_scan_kernel<false><<<1, SG_TREE_SCAN_THREADS, 0, s>>>((const long long *)cnt, start,
                                                                  nlev, 0, 1);
    SG_TRY_ST(sg_cuda_launched("tree level scan kernel"));
    sg_tree_level_scatter_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(D, M, start, cnt, order);
    SG_TRY_ST(sg_cuda_launched("tree level scatter kernel"));
    /* accumulators: S and L reuse the jump buffers, C the depth buffer not holding D */
    sg_tree_up u;
    u.par = t->parent;
    u.p64 = t->parent_dt == SEGRL_DTYPE_I64;
    u.R = t->reward;
    u.k = k;
    u.S = (double *)upA;
    u.L = (sg_u64 *)upB;
    u.C = (double *)Cslot;
    u.kind = kind;
    u.out = out;
    u.lc = lc;
    u.lc64 = lc_dt == SEGRL_DTYPE_I64;
    sg_tree_up_init_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(u, M);
    SG_TRY_ST(sg_cuda_launched("tree values init kernel"));
    /* levels, deepest first, read back in chunks */
    long long st[SG_TREE_CHUNK + 1];
    int64_t run_hi = -1; /* a pending run of small levels [.., run_hi] */
    for (int64_t hi = nlev - 1; hi >= 0; hi -= SG_TREE_CHUNK) {
        const int64_t lo = hi - SG_TREE_CHUNK + 1 > 0 ? hi - SG_TREE_CHUNK + 1 : 0;
        SG_TRY_ST(sg_tree_fetch(st, start + lo, (size_t)(hi - lo + 2) * 8, s,
                                "tree: copy level offsets"));
        for (int64_t d = hi; d >= lo; d--) {
            const int64_t a = st[d - lo], b = st[d - lo + 1];
            if (b - a <= SG_TREE_BIG) {
                if (run_hi < 0) run_hi = d;
                continue;
            }
            if (run_hi >= 0) {
                sg_tree_up_levels_kernel<<<1, SG_TREE_THREADS, 0, s>>>(u, order, start, d + 1,
                                                                       run_hi);
                SG_TRY_ST(sg_cuda_launched("tree values levels kernel"));
                run_hi = -1;
            }
            sg_tree_up_level_kernel<<<sg_tgrid(b - a), SG_TREE_THREADS, 0, s>>>(u, order, a, b);
            SG_TRY_ST(sg_cuda_launched("tree values level kernel"));
        }
    }
    if (run_hi >= 0) {
        sg_tree_up_levels_kernel<<<1, SG_TREE_THREADS, 0, s>>>(u, order, start, 0, run_hi);
        SG_TRY_ST(sg_cuda_launched("tree values levels kernel"));
    }
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// advantages

__global__ void sg_tree_child_sum_kernel(const void *par, int p64, const float *V, int64_t M,
                                         double *Cs) {
    SG_FOR_NODES(i, M) {
        const int64_t p = sg_tix(par, p64, i);
        if (p >= 0) atomicAdd(Cs + p, (double)V[i]);
    }
}

__global__ void sg_tree_child_sq_kernel(const void *par, int p64, const float *V, int64_t M,
                                        const double *Cs, const sg_u64 *k, double *Cq) {
    SG_FOR_NODES(i, M) {
        const int64_t p = sg_tix(par, p64, i);
        if (p < 0) continue;
        const double d = (double)V[i] - Cs[p] / (double)k[p];
        atomicAdd(Cq + p, d * d);
    }
}

__global__ void sg_tree_leaf_sum_kernel(const float *R, const sg_u64 *k, const long long *root,
                                        int64_t M, double *Ls, sg_u64 *Ln) {
    SG_FOR_NODES(i, M) {
        if (k[i] != 0) continue;
        atomicAdd(Ls + root[i], (double)R[i]);
        atomicAdd(Ln + root[i], 1ull);
    }
}

__global__ void sg_tree_leaf_sq_kernel(const float *R, const sg_u64 *k, const long long *root,
                                       int64_t M, const double *Ls, const sg_u64 *Ln, double *Lq) {
    SG_FOR_NODES(i, M) {
        if (k[i] != 0) continue;
        const long long r = root[i];
        const double d = (double)R[i] - Ls[r] / (double)Ln[r];
        atomicAdd(Lq + r, d * d);
    }
}

__global__ void sg_tree_leaf_adv_kernel(const float *R, const sg_u64 *k, const long long *root,
                                        int64_t M, const double *Ls, const sg_u64 *Ln,
                                        const double *Lq, int unbiased, float eps, float *out) {
    SG_FOR_NODES(i, M) {
        if (k[i] != 0) {
            out[i] = 0.0f;
            continue;
        }
        const long long r = root[i];
        const int64_t n = (int64_t)Ln[r];
        const double mean = n < 2 ? 0.0 : Ls[r] / (double)n;
        const double sd = sg_tstd(Lq[r], n, unbiased);
        out[i] = (float)(((double)R[i] - mean) / (sd + (double)eps));
    }
}

__global__ void sg_tree_adv_kernel(const void *par, int p64, const float *V, int64_t M,
                                   const sg_u64 *k, const double *Cs, const double *Cq, int kind,
                                   int unbiased, float eps, float *A) {
    SG_FOR_NODES(i, M) {
        const int64_t p = sg_tix(par, p64, i);
        double a = 0.0;
        if (p >= 0) {
            const double v = (double)V[i];
            const int64_t kp = (int64_t)k[p];
            if (kind == SEGRL_TREE_ADV_PARENT) a = v - (double)V[p];
            else if (kind == SEGRL_TREE_ADV_PARENT_STD)
                a = (v - (double)V[p]) / (sg_tstd(Cq[p], kp, unbiased) + (double)eps);
            else a = kp < 2 ? 0.0 : v - (Cs[p] - v) / (double)(kp - 1);
        }
        A[i] = (float)a;
    }
}

__global__ void sg_tree_adv_out_kernel(const void *par, int p64, const float *A, int64_t M,
                                       int drop_zero, float *out, void *nm, int32_t nm_dt) {
    SG_FOR_NODES(i, M) {
        const float a = A[i];
        out[i] = a;
        if (nm) {
            const int64_t p = sg_tix(par, p64, i);
            sg_tmask_put(nm, nm_dt, i, p >= 0 && !(drop_zero && a == 0.0f));
        }
    }
}

segrl_status sg_cuda_tree_advantages(const sg_tree_dev *t, const float *V,
                                     const segrl_tree_adv_opts *o, float *out, float *leaf_out,
                                     void *nm, int32_t nm_dt) {
    cudaStream_t s = (cudaStream_t)t->stream;
    const int64_t M = t->M;
    if (M <= 0) return SEGRL_OK;
    const unsigned grid = sg_tgrid(M);
    const int p64 = t->parent_dt == SEGRL_DTYPE_I64;
    sg_u64 *k = (sg_u64 *)sg_slot(t, 0);
    double *Cs = (double *)sg_slot(t, 1), *Cq = (double *)sg_slot(t, 2);
    long long *upA = (long long *)sg_slot(t, 3), *upB = (long long *)sg_slot(t, 4);
    double *Ls = (double *)sg_slot(t, 5), *Lq = (double *)sg_slot(t, 6);
    float *A = (float *)sg_slot(t, 7);

    SG_TRY_ST(sg_tree_child_counts(t, k, s));
    SG_CUDA_TRY(cudaMemsetAsync(Cs, 0, (size_t)M * 8, s), "tree: cudaMemsetAsync");
    sg_tree_child_sum_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(t->parent, p64, V, M, Cs);
    SG_TRY_ST(sg_cuda_launched("tree child sum kernel"));
    if (o->kind == SEGRL_TREE_ADV_PARENT_STD) {
        SG_CUDA_TRY(cudaMemsetAsync(Cq, 0, (size_t)M * 8, s), "tree: cudaMemsetAsync");
        sg_tree_child_sq_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(t->parent, p64, V, M, Cs, k, Cq);
        SG_TRY_ST(sg_cuda_launched("tree child deviation kernel"));
    }
    if (leaf_out) {
        long long *root = NULL;
        SG_TRY_ST(sg_tree_jump(t, upA, upB, NULL, NULL, &root, NULL, s));
        sg_u64 *Ln = (sg_u64 *)(root == upA ? upB : upA);
        SG_CUDA_TRY(cudaMemsetAsync(Ls, 0, (size_t)M * 8, s), "tree: cudaMemsetAsync");
        SG_CUDA_TRY(cudaMemsetAsync(Lq, 0, (size_t)M * 8, s), "tree: cudaMemsetAsync");
        SG_CUDA_TRY(cudaMemsetAsync(Ln, 0, (size_t)M * 8, s), "tree: cudaMemsetAsync");
        sg_tree_leaf_sum_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(t->reward, k, root, M, Ls, Ln);
        SG_TRY_ST(sg_cuda_launched("tree leaf sum kernel"));
        sg_tree_leaf_sq_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(t->reward, k, root, M, Ls, Ln,
                                                                Lq);
        SG_TRY_ST(sg_cuda_launched("tree leaf deviation kernel"));
        sg_tree_leaf_adv_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(t->reward, k, root, M, Ls, Ln,
                                                                 Lq, o->unbiased, o->eps,
                                                                 leaf_out);
        SG_TRY_ST(sg_cuda_launched("tree leaf advantage kernel"));
    }
    sg_tree_adv_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(t->parent, p64, V, M, k, Cs, Cq, o->kind,
                                                        o->unbiased, o->eps, A);
    SG_TRY_ST(sg_cuda_launched("tree advantage kernel"));
    sg_tree_adv_out_kernel<<<grid, SG_TREE_THREADS, 0, s>>>(t->parent, p64, A, M, o->drop_zero,
                                                            out, nm, nm_dt);
    return sg_cuda_launched("tree advantage output kernel");
}
