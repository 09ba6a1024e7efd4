/* common.cu — CUDA backend plumbing: device count and selection, CUDA error messages, and the
 * content checks run under SEGRL_CHECKS_FULL (offsets monotone, group indices in range,
 * non-finite floats at valid tokens).
 *
 * Each content check is one small kernel: every offending element does an atomicMin of its index
 * into a 64-bit word of the caller's scratch (initialised to all ones), so the result is the
 * smallest offending index, as the CPU versions return. The word is then copied to the host and
 * the stream synchronized. */
#include "common.cuh"

segrl_status sg_cuda_error(cudaError_t e, const char *what) {
    (void)cudaGetLastError(); /* clear a non-sticky error so later calls do not report it */
    return sg_fail(SEGRL_ERR_CUDA, "segrl cuda: %s: %s", what, cudaGetErrorString(e));
}

int sg_cuda_device_count(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n;
}

segrl_status sg_cuda_set_device(int32_t device) {
    SG_CUDA_TRY(cudaSetDevice(device), "cudaSetDevice");
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// content checks

#define SG_NONE_FOUND 0xffffffffffffffffull

/* grid for a grid-stride loop over n elements */
static unsigned sg_check_grid(int64_t n) {
    int64_t g = (n + 255) / 256;
    if (g > 65536) g = 65536;
    return (unsigned)(g < 1 ? 1 : g);
}

static segrl_status sg_check_begin(void *scratch, cudaStream_t s) {
    if (!scratch) return sg_fail(SEGRL_ERR_WORKSPACE, "segrl cuda: content check: no workspace");
    SG_CUDA_TRY(cudaMemsetAsync(scratch, 0xff, sizeof(unsigned long long), s),
                "content check: cudaMemsetAsync");
    return SEGRL_OK;
}

/* copies the result word back and synchronizes the stream */
static segrl_status sg_check_end(void *scratch, cudaStream_t s, int64_t *out_bad) {
    unsigned long long h = SG_NONE_FOUND;
    SG_CUDA_TRY(cudaMemcpyAsync(&h, scratch, sizeof h, cudaMemcpyDeviceToHost, s),
                "content check: cudaMemcpyAsync");
    SG_CUDA_TRY(cudaStreamSynchronize(s), "content check: cudaStreamSynchronize");
    *out_bad = h == SG_NONE_FOUND ? -1 : (int64_t)h;
    return SEGRL_OK;
}

/* offsets[0] == 0, offsets[b - 1] <= offsets[b], offsets[B] == N */
__global__ void sg_bad_offset_kernel(sg_dgeom g, unsigned long long *bad) {
    for (int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; b <= g.B;
         b += (int64_t)gridDim.x * blockDim.x) {
        const int64_t o = sg_off_at(g, b);
        bool wrong = (b == 0 && o != 0) || (b > 0 && o < sg_off_at(g, b - 1)) ||
                     (b == g.B && o != g.N);
        if (wrong) atomicMin(bad, (unsigned long long)b);
    }
}

segrl_status sg_cuda_bad_offset(const void *offsets, int32_t dtype, int64_t B, int64_t N,
                                void *scratch, void *stream, int64_t *out_bad) {
    cudaStream_t s = (cudaStream_t)stream;
    sg_dgeom g;
    g.off = offsets;
    g.off64 = dtype == SEGRL_DTYPE_I64;
    g.packed = 1;
    g.B = B;
    g.T = 0;
    g.N = N;
    SG_TRY_ST(sg_check_begin(scratch, s));
    sg_bad_offset_kernel<<<sg_check_grid(B + 1), 256, 0, s>>>(g, (unsigned long long *)scratch);
    SG_TRY_ST(sg_cuda_launched("offsets check kernel"));
    return sg_check_end(scratch, s, out_bad);
}

__global__ void sg_bad_index_kernel(const void *idx, int is64, int64_t n, int64_t G,
                                    unsigned long long *bad) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t k = sg_index_at(idx, is64, i);
        if (k < 0 || k >= G) atomicMin(bad, (unsigned long long)i);
    }
}

segrl_status sg_cuda_bad_index(const void *idx, int32_t dtype, int64_t n, int64_t G,
                               void *scratch, void *stream, int64_t *out_bad) {
    cudaStream_t s = (cudaStream_t)stream;
    *out_bad = -1;
    if (n <= 0) return SEGRL_OK;
    SG_TRY_ST(sg_check_begin(scratch, s));
    sg_bad_index_kernel<<<sg_check_grid(n), 256, 0, s>>>(idx, dtype == SEGRL_DTYPE_I64, n, G,
                                                         (unsigned long long *)scratch);
    SG_TRY_ST(sg_cuda_launched("group index check kernel"));
    return sg_check_end(scratch, s, out_bad);
}

__global__ void sg_bad_float_kernel(const float *x, int64_t n, unsigned long long *bad) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        if (sg_nonfinite(x[i])) atomicMin(bad, (unsigned long long)i);
}

segrl_status sg_cuda_bad_float(const float *x, int64_t n, void *scratch, void *stream,
                               int64_t *out_bad) {
    cudaStream_t s = (cudaStream_t)stream;
    *out_bad = -1;
    if (n <= 0) return SEGRL_OK;
    SG_TRY_ST(sg_check_begin(scratch, s));
    sg_bad_float_kernel<<<sg_check_grid(n), 256, 0, s>>>(x, n, (unsigned long long *)scratch);
    SG_TRY_ST(sg_cuda_launched("float check kernel"));
    return sg_check_end(scratch, s, out_bad);
}

/* A walker: each lane keeps the smallest offending flat index it met (its tokens are visited in
 * increasing order, so that is its first one) and does one atomicMin at the end. */
template <typename M>
__global__ void __launch_bounds__(SG_WALK_THREADS)
    sg_bad_token_kernel(sg_dgeom g, const float *x, int64_t rs_x, const void *m, int64_t rs_m,
                        int64_t per, unsigned long long *bad) {
    int64_t f0, f1;
    sg_walk_range(g.N, per, &f0, &f1);
    const int lane = threadIdx.x & 31;
    unsigned long long first = SG_NONE_FOUND;
    sg_warp_walk(g, f0, f1, [&](int64_t b, int64_t fb, int64_t fe) {
        for (int64_t f = fb + lane; f < fe; f += 32) {
            const float v = x[sg_at(g, rs_x, b, f)];
            if (sg_nonfinite(v) && sg_valid<M>(m, sg_at(g, rs_m, b, f)) &&
                (unsigned long long)f < first)
                first = (unsigned long long)f;
        }
    });
    if (first != SG_NONE_FOUND) atomicMin(bad, first);
}

segrl_status sg_cuda_bad_token(const sg_geom *g, sg_tok x, sg_tok mask, void *scratch,
                               void *stream, int64_t *out_bad) {
    cudaStream_t s = (cudaStream_t)stream;
    *out_bad = -1;
    if (g->B <= 0 || g->N <= 0 || !x.data) return SEGRL_OK;
    const sg_dgeom dg = sg_make_dgeom(g);
    const sg_walk_cfg wc = sg_walk_config(g->N);
    SG_TRY_ST(sg_check_begin(scratch, s));
    SG_TRY_ST(sg_with_mask(mask, [&](auto tag) {
        using M = decltype(tag);
        sg_bad_token_kernel<M><<<wc.grid, SG_WALK_THREADS, 0, s>>>(
            dg, (const float *)x.data, x.row_stride, mask.data, mask.row_stride, wc.per,
            (unsigned long long *)scratch);
        return sg_cuda_launched("token check kernel");
    }));
    return sg_check_end(scratch, s, out_bad);
}
