/* segment.cu — CUDA backend of the segment area (src/segment/): span checks, segment reduce and
 * scatter, SPO-chain and VinePPO advantages, the probability mask, and the partitioners.
 *
 *   span checks:   one thread per span; the sequence holding span k is found by a binary search
 *                  of the spans' offsets; the smallest bad k is kept with an atomicMin, then one
 *                  thread recomputes what the CPU's message needs.
 *   reduce, scatter, SPO-chain, VinePPO: one warp per span (grid-stride over spans), lanes
 *                  striding over the span's tokens; sum/mean in f64 with a warp reduction, min,
 *                  max and "last valid token" by warp reductions. Token outputs are first zeroed
 *                  by a walker over every slot (as the CPU does), then the spans are filled.
 *   probability mask: a walker over every token slot.
 *   partitioners:  one warp per sequence, walking it 32 tokens at a time; the break decisions
 *                  of a chunk come from ballots and prefix popcounts (valid-token ordinals,
 *                  low-probability counts, the cutpoint rank under the cap, the previous valid
 *                  token being a delimiter). A counting pass stores per-sequence counts in the
 *                  workspace, one block scans them, the host reads S and checks capacity, then a
 *                  second pass writes offsets and spans. */
#include "common.cuh"

#define SG_SEG_THREADS 256

__device__ __forceinline__ int64_t sg_ix_at(const void *p, int32_t dt, int64_t i) {
    return dt == SEGRL_DTYPE_I64 ? ((const int64_t *)p)[i] : (int64_t)((const int32_t *)p)[i];
}
__device__ __forceinline__ void sg_ix_put(void *p, int32_t dt, int64_t i, int64_t v) {
    if (dt == SEGRL_DTYPE_I64) ((int64_t *)p)[i] = v;
    else ((int32_t *)p)[i] = (int32_t)v;
}

/* the sequence holding span k: the largest b in [0, B) with off[b] <= k */
__device__ __forceinline__ int64_t sg_span_row(const sg_dspans &s, int64_t B, int64_t k) {
    int64_t lo = 0, hi = B;
    while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (sg_ix_at(s.off, s.odt, mid) <= k) lo = mid;
        else hi = mid;
    }
    return lo;
}

__device__ __forceinline__ int64_t sg_len_of(const sg_dgeom &g, int64_t b) {
    return g.packed ? sg_off_at(g, b + 1) - sg_off_at(g, b) : g.T;
}

/* element offset of token t of sequence b in a tensor with row stride rs */
__device__ __forceinline__ int64_t sg_tok_at(const sg_dgeom &g, int64_t rs, int64_t b, int64_t t) {
    return g.packed ? sg_off_at(g, b) + t : b * rs + t;
}

static unsigned sg_warp_grid(int64_t items) {
    int64_t g = (items + SG_SEG_THREADS / 32 - 1) / (SG_SEG_THREADS / 32);
    if (g > 65535) g = 65535;
    return (unsigned)(g < 1 ? 1 : g);
}

__device__ __forceinline__ void sg_warp_ids(int64_t *w, int64_t *nw) {
    *w = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    *nw = ((int64_t)gridDim.x * blockDim.x) >> 5;
}

/* the largest valid position of the span over the warp (-1: none) */
__device__ __forceinline__ int64_t sg_warp_max_i64(int64_t v) {
    for (int o = 16; o > 0; o >>= 1) {
        const int64_t u = __shfl_xor_sync(0xffffffffu, v, o);
        if (u > v) v = u;
    }
    return v;
}

// ----------------------------------------------------------------------------
// span checks

__global__ void sg_span_check_kernel(sg_dgeom g, sg_dspans s, unsigned long long *bad) {
    for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < s.S;
         k += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = sg_span_row(s, g.B, k);
        const int64_t st = sg_ix_at(s.st, s.sdt, k), en = sg_ix_at(s.en, s.edt, k);
        const int64_t prev = k > sg_ix_at(s.off, s.odt, b) ? sg_ix_at(s.en, s.edt, k - 1) : 0;
        if (st < prev || en <= st || en > sg_len_of(g, b)) atomicMin(bad, (unsigned long long)k);
    }
}

/* d: [what, k, b, st, en, prev, len, first] */
__global__ void sg_span_detail_kernel(sg_dgeom g, sg_dspans s, unsigned long long *bad) {
    if (threadIdx.x != 0) return;
    long long *d = (long long *)bad + 1;
    d[0] = 0;
    if (*bad == 0xffffffffffffffffull) return;
    const int64_t k = (int64_t)*bad;
    const int64_t b = sg_span_row(s, g.B, k);
    const int64_t st = sg_ix_at(s.st, s.sdt, k), en = sg_ix_at(s.en, s.edt, k);
    const int first = k == sg_ix_at(s.off, s.odt, b);
    const int64_t prev = first ? 0 : sg_ix_at(s.en, s.edt, k - 1);
    const int64_t len = sg_len_of(g, b);
    d[0] = st < prev ? 1 : en <= st ? 2 : 3;
    d[1] = k, d[2] = b, d[3] = st, d[4] = en, d[5] = prev, d[6] = len, d[7] = first;
}

segrl_status sg_cuda_span_check(const sg_geom *g, const sg_dspans *s, void *scratch,
                                void *stream, sg_span_bad *out) {
    cudaStream_t cs = (cudaStream_t)stream;
    memset(out, 0, sizeof *out);
    if (s->S <= 0 || g->B <= 0) return SEGRL_OK;
    if (!scratch) return sg_fail(SEGRL_ERR_WORKSPACE, "segrl cuda: span check: no workspace");
    const sg_dgeom dg = sg_make_dgeom(g);
    unsigned long long *bad = (unsigned long long *)scratch;
    SG_CUDA_TRY(cudaMemsetAsync(bad, 0xff, sizeof *bad, cs), "span check: cudaMemsetAsync");
    int64_t grid = (s->S + 255) / 256;
    if (grid > 65536) grid = 65536;
    sg_span_check_kernel<<<(unsigned)grid, 256, 0, cs>>>(dg, *s, bad);
    SG_TRY_ST(sg_cuda_launched("span check kernel"));
    sg_span_detail_kernel<<<1, 32, 0, cs>>>(dg, *s, bad);
    SG_TRY_ST(sg_cuda_launched("span check detail kernel"));
    long long d[8];
    SG_CUDA_TRY(cudaMemcpyAsync(d, bad + 1, sizeof d, cudaMemcpyDeviceToHost, cs),
                "span check: cudaMemcpyAsync");
    SG_CUDA_TRY(cudaStreamSynchronize(cs), "span check: cudaStreamSynchronize");
    out->what = (int)d[0];
    if (out->what) {
        out->k = d[1], out->b = d[2], out->st = d[3], out->en = d[4], out->prev = d[5];
        out->len = d[6], out->first = (int)d[7];
    }
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// zeroing every slot of a token tensor (slots between T and the row stride untouched)

__global__ void __launch_bounds__(SG_WALK_THREADS)
    sg_seg_zero_kernel(sg_dgeom g, float *o, int64_t rs, int64_t per) {
    int64_t f0, f1;
    sg_walk_range(g.N, per, &f0, &f1);
    const int lane = threadIdx.x & 31;
    sg_warp_walk(g, f0, f1, [&](int64_t b, int64_t fb, int64_t fe) {
        for (int64_t f = fb + lane; f < fe; f += 32) o[sg_at(g, rs, b, f)] = 0.0f;
    });
}

static segrl_status sg_seg_zero(const sg_geom *g, sg_tok o, cudaStream_t cs) {
    if (g->B <= 0 || g->N <= 0) return SEGRL_OK;
    const sg_walk_cfg wc = sg_walk_config(g->N);
    sg_seg_zero_kernel<<<wc.grid, SG_WALK_THREADS, 0, cs>>>(sg_make_dgeom(g), (float *)o.data,
                                                            o.row_stride, wc.per);
    return sg_cuda_launched("segment zero kernel");
}

// ----------------------------------------------------------------------------
// reduce

template <typename M>
__global__ void __launch_bounds__(SG_SEG_THREADS)
    sg_seg_reduce_kernel(sg_dgeom g, sg_dspans s, const float *x, int64_t rsx, const void *m,
                         int64_t rsm, int op, float *out) {
    const int lane = threadIdx.x & 31;
    int64_t w, nw;
    sg_warp_ids(&w, &nw);
    for (int64_t k = w; k < s.S; k += nw) {
        const int64_t b = sg_span_row(s, g.B, k);
        const int64_t st = sg_ix_at(s.st, s.sdt, k), en = sg_ix_at(s.en, s.edt, k);
        const int64_t xb = sg_tok_at(g, rsx, b, 0), mb = sg_tok_at(g, rsm, b, 0);
        double acc = 0.0;
        long long n = 0;
        float best = op == SEGRL_REDUCE_MIN ? INFINITY : -INFINITY;
        int64_t lt = -1;
        float lv = 0.0f;
        for (int64_t t = st + lane; t < en; t += 32) {
            if (!sg_valid<M>(m, mb + t)) continue;
            const float v = x[xb + t];
            acc += (double)v;
            n++;
            if (op == SEGRL_REDUCE_MIN ? v < best : v > best) best = v;
            lt = t;
            lv = v;
        }
        acc = sg_warp_sum(acc);
        n = sg_warp_sum(n);
        for (int o = 16; o > 0; o >>= 1) {
            const float ob = __shfl_xor_sync(0xffffffffu, best, o);
            const int64_t ot = __shfl_xor_sync(0xffffffffu, lt, o);
            const float ov = __shfl_xor_sync(0xffffffffu, lv, o);
            if (op == SEGRL_REDUCE_MIN ? ob < best : ob > best) best = ob;
            if (ot > lt) lt = ot, lv = ov;
        }
        if (lane == 0) {
            float r = 0.0f;
            if (n > 0) switch (op) {
                case SEGRL_REDUCE_SUM: r = (float)acc; break;
                case SEGRL_REDUCE_MEAN: r = (float)(acc / (double)n); break;
                case SEGRL_REDUCE_LAST: r = lv; break;
                default: r = best; break;
                }
            out[k] = r;
        }
    }
}

segrl_status sg_cuda_seg_reduce(const sg_geom *g, sg_tok x, sg_tok m, const sg_dspans *s,
                                int32_t op, float *out, void *stream) {
    cudaStream_t cs = (cudaStream_t)stream;
    if (s->S <= 0 || g->B <= 0) return SEGRL_OK;
    const sg_dgeom dg = sg_make_dgeom(g);
    return sg_with_mask(m, [&](auto tag) {
        using M = decltype(tag);
        sg_seg_reduce_kernel<M><<<sg_warp_grid(s->S), SG_SEG_THREADS, 0, cs>>>(
            dg, *s, (const float *)x.data, x.row_stride, m.data, m.row_stride, op, out);
        return sg_cuda_launched("segment reduce kernel");
    });
}

// ----------------------------------------------------------------------------
// filling spans: scatter, SPO-chain, VinePPO

/* the valid tokens of [st, en) of sequence b get a (warp-uniform) */
template <typename M>
__device__ __forceinline__ void sg_warp_fill(const sg_dgeom &g, float *o, int64_t rso,
                                             const void *m, int64_t rsm, int64_t b, int64_t st,
                                             int64_t en, float a) {
    const int lane = threadIdx.x & 31;
    const int64_t ob = sg_tok_at(g, rso, b, 0), mb = sg_tok_at(g, rsm, b, 0);
    for (int64_t t = st + lane; t < en; t += 32)
        if (sg_valid<M>(m, mb + t)) o[ob + t] = a;
}

/* The span-filling launchers' common part: zeroes every slot of o (as the CPU does), then, when
 * there are spans, calls launch(tag, dg, cs) with the mask's element type as tag and checks the
 * launch. `what` names the kernel in the error message. */
template <typename F>
static segrl_status sg_span_fill_launch(const sg_geom *g, sg_tok m, const sg_dspans *s, sg_tok o,
                                        void *stream, const char *what, F &&launch) {
    cudaStream_t cs = (cudaStream_t)stream;
    SG_TRY_ST(sg_seg_zero(g, o, cs));
    if (s->S <= 0 || g->B <= 0) return SEGRL_OK;
    const sg_dgeom dg = sg_make_dgeom(g);
    return sg_with_mask(m, [&](auto tag) {
        launch(tag, dg, cs);
        return sg_cuda_launched(what);
    });
}

template <typename M>
__global__ void __launch_bounds__(SG_SEG_THREADS)
    sg_seg_scatter_kernel(sg_dgeom g, sg_dspans s, const float *v, const void *m, int64_t rsm,
                          int mode, float *o, int64_t rso) {
    const int lane = threadIdx.x & 31;
    int64_t w, nw;
    sg_warp_ids(&w, &nw);
    for (int64_t k = w; k < s.S; k += nw) {
        const int64_t b = sg_span_row(s, g.B, k);
        const int64_t st = sg_ix_at(s.st, s.sdt, k), en = sg_ix_at(s.en, s.edt, k);
        if (mode == SEGRL_SCATTER_BROADCAST) {
            sg_warp_fill<M>(g, o, rso, m, rsm, b, st, en, v[k]);
            continue;
        }
        const int64_t mb = sg_tok_at(g, rsm, b, 0);
        int64_t lt = -1;
        for (int64_t t = st + lane; t < en; t += 32)
            if (sg_valid<M>(m, mb + t)) lt = t;
        lt = sg_warp_max_i64(lt);
        if (lane == 0 && lt >= 0) o[sg_tok_at(g, rso, b, lt)] = v[k];
    }
}

segrl_status sg_cuda_seg_scatter(const sg_geom *g, const float *v, sg_tok m, const sg_dspans *s,
                                 int32_t mode, sg_tok o, void *stream) {
    return sg_span_fill_launch(g, m, s, o, stream, "segment scatter kernel",
                               [&](auto tag, const sg_dgeom &dg, cudaStream_t cs) {
        sg_seg_scatter_kernel<decltype(tag)><<<sg_warp_grid(s->S), SG_SEG_THREADS, 0, cs>>>(
            dg, *s, v, m.data, m.row_stride, mode, (float *)o.data, o.row_stride);
    });
}

/* SPO-chain and VinePPO: one warp per span k = [st, en) of sequence b, whose spans are
 * [k0, k1). a = step(k, b, k0, k1, st) is the span's (warp-uniform) advantage: its valid tokens
 * get a, and ospan[k] = a when ospan is given. step runs on every lane and may fill more. */
template <typename M, typename Step>
__device__ __forceinline__ void sg_span_advantages(const sg_dgeom &g, const sg_dspans &s,
                                                   const void *m, int64_t rsm, float *o,
                                                   int64_t rso, float *ospan, Step step) {
    const int lane = threadIdx.x & 31;
    int64_t w, nw;
    sg_warp_ids(&w, &nw);
    for (int64_t k = w; k < s.S; k += nw) {
        const int64_t b = sg_span_row(s, g.B, k);
        const int64_t k0 = sg_ix_at(s.off, s.odt, b), k1 = sg_ix_at(s.off, s.odt, b + 1);
        const int64_t st = sg_ix_at(s.st, s.sdt, k), en = sg_ix_at(s.en, s.edt, k);
        const float a = step(k, b, k0, k1, st);
        sg_warp_fill<M>(g, o, rso, m, rsm, b, st, en, a);
        if (ospan && lane == 0) ospan[k] = a;
    }
}

template <typename M>
__global__ void __launch_bounds__(SG_SEG_THREADS)
    sg_spo_chain_kernel(sg_dgeom g, sg_dspans s, const float *V, const float *R, const float *V0,
                        const void *m, int64_t rsm, float *o, int64_t rso, float *oseg) {
    sg_span_advantages<M>(g, s, m, rsm, o, rso, oseg,
                          [=](int64_t k, int64_t b, int64_t k0, int64_t k1, int64_t st) {
        const float a = (k + 1 < k1 ? V[k + 1] : R[b]) - V[k];
        if (V0 && k == k0) sg_warp_fill<M>(g, o, rso, m, rsm, b, 0, st, V[k0] - V0[b]);
        return a;
    });
}

segrl_status sg_cuda_spo_chain(const sg_geom *g, sg_tok m, const sg_dspans *s, const float *V,
                               const float *R, const float *V0, sg_tok o, float *oseg,
                               void *stream) {
    return sg_span_fill_launch(g, m, s, o, stream, "SPO-chain kernel",
                               [&](auto tag, const sg_dgeom &dg, cudaStream_t cs) {
        sg_spo_chain_kernel<decltype(tag)><<<sg_warp_grid(s->S), SG_SEG_THREADS, 0, cs>>>(
            dg, *s, V, R, V0, m.data, m.row_stride, (float *)o.data, o.row_stride, oseg);
    });
}

template <typename M>
__global__ void __launch_bounds__(SG_SEG_THREADS)
    sg_vineppo_kernel(sg_dgeom g, sg_dspans s, const float *r, const float *V, float gamma,
                      const void *m, int64_t rsm, float *o, int64_t rso, float *ostep) {
    sg_span_advantages<M>(g, s, m, rsm, o, rso, ostep,
                          [=](int64_t k, int64_t, int64_t, int64_t k1, int64_t) {
        const double next = k + 1 < k1 ? (double)V[k + 1] : 0.0;
        /* the CPU's f64 expression, rounded step by step (no fused multiply-add) */
        return (float)__dsub_rn(__dadd_rn((double)r[k], __dmul_rn((double)gamma, next)),
                                (double)V[k]);
    });
}

segrl_status sg_cuda_vineppo(const sg_geom *g, sg_tok m, const sg_dspans *s, const float *r,
                             const float *V, float gamma, sg_tok o, float *ostep, void *stream) {
    return sg_span_fill_launch(g, m, s, o, stream, "VinePPO kernel",
                               [&](auto tag, const sg_dgeom &dg, cudaStream_t cs) {
        sg_vineppo_kernel<decltype(tag)><<<sg_warp_grid(s->S), SG_SEG_THREADS, 0, cs>>>(
            dg, *s, r, V, gamma, m.data, m.row_stride, (float *)o.data, o.row_stride, ostep);
    });
}

// ----------------------------------------------------------------------------
// probability mask

template <typename M>
__global__ void __launch_bounds__(SG_WALK_THREADS)
    sg_prob_mask_kernel(sg_dgeom g, const float *p, int64_t rsp, const void *m, int64_t rsm,
                        float tau, void *o, int odt, int64_t rso, int64_t per) {
    int64_t f0, f1;
    sg_walk_range(g.N, per, &f0, &f1);
    const int lane = threadIdx.x & 31;
    sg_warp_walk(g, f0, f1, [&](int64_t b, int64_t fb, int64_t fe) {
        for (int64_t f = fb + lane; f < fe; f += 32) {
            const bool on = sg_valid<M>(m, sg_at(g, rsm, b, f)) && p[sg_at(g, rsp, b, f)] < tau;
            const int64_t i = sg_at(g, rso, b, f);
            switch (odt) {
            case SEGRL_DTYPE_U8: ((uint8_t *)o)[i] = (uint8_t)on; break;
            case SEGRL_DTYPE_I32: ((int32_t *)o)[i] = on; break;
            case SEGRL_DTYPE_I64: ((int64_t *)o)[i] = on; break;
            default: ((float *)o)[i] = on ? 1.0f : 0.0f; break;
            }
        }
    });
}

segrl_status sg_cuda_prob_mask(const sg_geom *g, sg_tok probs, sg_tok m, float tau, sg_tok o,
                               void *stream) {
    cudaStream_t cs = (cudaStream_t)stream;
    if (g->B <= 0 || g->N <= 0) return SEGRL_OK;
    const sg_dgeom dg = sg_make_dgeom(g);
    const sg_walk_cfg wc = sg_walk_config(g->N);
    return sg_with_mask(m, [&](auto tag) {
        using M = decltype(tag);
        sg_prob_mask_kernel<M><<<wc.grid, SG_WALK_THREADS, 0, cs>>>(
            dg, (const float *)probs.data, probs.row_stride, m.data, m.row_stride, tau, o.data,
            o.dtype, o.row_stride, wc.per);
        return sg_cuda_launched("probability mask kernel");
    });
}

// ----------------------------------------------------------------------------
// partitioners

/* the part of valid ordinal j of n among K parts: floor(((j + 1) K - 1) / n), without overflow */
__device__ __forceinline__ int64_t sg_part_of(int64_t j, int64_t K, int64_t n) {
    const unsigned __int128 q = ((unsigned __int128)(j + 1) * (unsigned __int128)K - 1u) /
                                (unsigned __int128)n;
    return (int64_t)q;
}

/* One warp per sequence. write == 0: pos[b] = the number of segments, *maxlen = longest
 * sequence; write == 1: pos[b] is the first segment's entry, spans written there. */
template <typename M>
__global__ void __launch_bounds__(SG_SEG_THREADS)
    sg_part_kernel(sg_dgeom g, sg_dpart p, long long *pos, int write, void *st, int32_t sdt,
                   void *en, int32_t edt, unsigned long long *maxlen) {
    const int lane = threadIdx.x & 31;
    const unsigned below = (1u << lane) - 1u;
    int64_t w, nw;
    sg_warp_ids(&w, &nw);
    const void *mk = p.mask.data;
    for (int64_t b = w; b < g.B; b += nw) {
        const int64_t len = sg_len_of(g, b);
        const int64_t mb = sg_tok_at(g, p.mask.row_stride, b, 0);
        int64_t n = 0, K = 0;
        if (p.kind == SG_SPART_PARTS) {
            for (int64_t c0 = 0; c0 < len; c0 += 32) {
                const int64_t t = c0 + lane;
                n += __popc(__ballot_sync(0xffffffffu, t < len && sg_valid<M>(mk, mb + t)));
            }
            K = p.K < n ? p.K : n;
        }
        const float *pr =
            p.kind == SG_SPART_CUT ? (const float *)p.probs.data +
                                         sg_tok_at(g, p.probs.row_stride, b, 0)
                                   : NULL;
        const int64_t ib = p.kind == SG_SPART_DELIM ? sg_tok_at(g, p.ids.row_stride, b, 0) : 0;
        const int64_t base = write ? (int64_t)pos[b] : 0;
        int64_t j = 0, low = 0, cand = 0, nseg = 0, last = -1;
        int prev_delim = 0;
        for (int64_t c0 = 0; c0 < len; c0 += 32) {
            const int64_t t = c0 + lane;
            const bool valid = t < len && sg_valid<M>(mk, mb + t);
            const unsigned vb = __ballot_sync(0xffffffffu, valid);
            const int64_t jj = j + __popc(vb & below);
            bool brk = valid && jj == 0;
            switch (p.kind) {
            case SG_SPART_PARTS:
                brk = valid && (jj == 0 || sg_part_of(jj, K, n) != sg_part_of(jj - 1, K, n));
                break;
            case SG_SPART_EVERY: brk = valid && jj % p.M == 0; break;
            case SG_SPART_CUT: {
                const bool lowp = valid && pr[t] < p.tau;
                const unsigned lb = __ballot_sync(0xffffffffu, lowp);
                const int64_t li = low + __popc(lb & below) + 1; /* this one's number */
                const bool cnd = lowp && jj != 0 && li % p.k == 0;
                const unsigned cb = __ballot_sync(0xffffffffu, cnd);
                const int64_t rank = cand + __popc(cb & below);
                if (cnd && (p.cap == 0 || rank < p.cap - 1)) brk = true;
                low += __popc(lb);
                cand += __popc(cb);
            } break;
            default: {
                bool isd = false;
                if (valid) {
                    const int64_t id = p.ids.dtype == SEGRL_DTYPE_I64
                                           ? ((const int64_t *)p.ids.data)[ib + t]
                                           : (int64_t)((const int32_t *)p.ids.data)[ib + t];
                    for (int64_t i = 0; i < p.D && !isd; i++) isd = sg_ix_at(p.delims, p.ddt, i) == id;
                }
                const unsigned db = __ballot_sync(0xffffffffu, isd);
                const unsigned pv = vb & below;
                const int pd = pv ? (int)((db >> (31 - __clz((int)pv))) & 1u) : prev_delim;
                if (valid && pd) brk = true;
                if (vb) prev_delim = (int)((db >> (31 - __clz((int)vb))) & 1u);
            } break;
            }
            const unsigned bb = __ballot_sync(0xffffffffu, brk);
            if (write && brk) {
                const int64_t idx = nseg + __popc(bb & below);
                sg_ix_put(st, sdt, base + idx, t);
                if (idx > 0) sg_ix_put(en, edt, base + idx - 1, t);
            }
            nseg += __popc(bb);
            j += __popc(vb);
            if (vb) last = c0 + 31 - __clz((int)vb);
        }
        if (lane == 0) {
            if (write) {
                if (nseg > 0) sg_ix_put(en, edt, base + nseg - 1, last + 1);
            } else {
                pos[b] = nseg;
                atomicMax(maxlen, (unsigned long long)len);
            }
        }
    }
}

/* one block: exclusive prefix of pos[0..B) into pos[0..B], in place */
__global__ void __launch_bounds__(1024) sg_part_scan_kernel(long long *pos, int64_t B) {
    __shared__ long long s_warp[32];
    __shared__ long long s_carry;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    if (threadIdx.x == 0) s_carry = 0;
    __syncthreads();
    for (int64_t c0 = 0; c0 < B; c0 += blockDim.x) {
        const int64_t i = c0 + threadIdx.x;
        const long long v = i < B ? pos[i] : 0;
        long long x = v; /* inclusive warp scan */
        for (int o = 1; o < 32; o <<= 1) {
            const long long y = __shfl_sync(0xffffffffu, x, lane >= o ? lane - o : lane);
            if (lane >= o) x += y;
        }
        if (lane == 31) s_warp[warp] = x;
        __syncthreads();
        if (warp == 0) {
            long long z = lane < nwarps ? s_warp[lane] : 0;
            for (int o = 1; o < 32; o <<= 1) {
                const long long y = __shfl_sync(0xffffffffu, z, lane >= o ? lane - o : lane);
                if (lane >= o) z += y;
            }
            if (lane < nwarps) s_warp[lane] = z; /* inclusive over warps */
        }
        __syncthreads();
        const long long carry = s_carry;
        const long long before = carry + (warp > 0 ? s_warp[warp - 1] : 0) + x - v;
        if (i < B) pos[i] = before;
        __syncthreads();
        if (threadIdx.x == 0) s_carry = carry + s_warp[nwarps - 1];
        __syncthreads();
    }
    if (threadIdx.x == 0) pos[B] = s_carry;
}

static segrl_status sg_part_launch(const sg_geom *g, const sg_dpart *p, long long *pos, int write,
                                   void *st, int32_t sdt, void *en, int32_t edt,
                                   unsigned long long *maxlen, cudaStream_t cs) {
    const sg_dgeom dg = sg_make_dgeom(g);
    return sg_with_mask(p->mask, [&](auto tag) {
        using M = decltype(tag);
        sg_part_kernel<M><<<sg_warp_grid(g->B), SG_SEG_THREADS, 0, cs>>>(dg, *p, pos, write, st,
                                                                          sdt, en, edt, maxlen);
        return sg_cuda_launched("partition kernel");
    });
}

segrl_status sg_cuda_part_count(const sg_geom *g, const sg_dpart *p, void *ws, void *stream,
                                int64_t *S, int64_t *maxlen) {
    cudaStream_t cs = (cudaStream_t)stream;
    *S = 0;
    *maxlen = 0;
    if (!ws) return sg_fail(SEGRL_ERR_WORKSPACE, "segrl cuda: partition: no workspace");
    unsigned long long *ml = (unsigned long long *)ws + 1;
    long long *pos = (long long *)((char *)ws + SG_WS_CHECK_BYTES);
    SG_CUDA_TRY(cudaMemsetAsync(ml, 0, sizeof *ml, cs), "partition: cudaMemsetAsync");
    if (g->B > 0) {
        SG_TRY_ST(sg_part_launch(g, p, pos, 0, NULL, 0, NULL, 0, ml, cs));
        sg_part_scan_kernel<<<1, 1024, 0, cs>>>(pos, g->B);
        SG_TRY_ST(sg_cuda_launched("partition scan kernel"));
    } else {
        SG_CUDA_TRY(cudaMemsetAsync(pos, 0, sizeof *pos, cs), "partition: cudaMemsetAsync");
    }
    long long h[2] = {0, 0};
    unsigned long long hm = 0;
    SG_CUDA_TRY(cudaMemcpyAsync(&h[0], pos + g->B, sizeof h[0], cudaMemcpyDeviceToHost, cs),
                "partition: cudaMemcpyAsync");
    SG_CUDA_TRY(cudaMemcpyAsync(&hm, ml, sizeof hm, cudaMemcpyDeviceToHost, cs),
                "partition: cudaMemcpyAsync");
    SG_CUDA_TRY(cudaStreamSynchronize(cs), "partition: cudaStreamSynchronize");
    *S = h[0];
    *maxlen = (int64_t)hm;
    return SEGRL_OK;
}

__global__ void sg_part_offsets_kernel(const long long *pos, int64_t n, void *off, int32_t odt) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        sg_ix_put(off, odt, i, pos[i]);
}

segrl_status sg_cuda_part_write(const sg_geom *g, const sg_dpart *p, void *ws, void *off,
                                int32_t odt, void *st, int32_t sdt, void *en, int32_t edt,
                                void *stream) {
    cudaStream_t cs = (cudaStream_t)stream;
    long long *pos = (long long *)((char *)ws + SG_WS_CHECK_BYTES);
    int64_t grid = (g->B + 1 + 255) / 256;
    if (grid > 65536) grid = 65536;
    sg_part_offsets_kernel<<<(unsigned)grid, 256, 0, cs>>>(pos, g->B + 1, off, odt);
    SG_TRY_ST(sg_cuda_launched("partition offsets kernel"));
    if (!st || g->B <= 0) return SEGRL_OK;
    return sg_part_launch(g, p, pos, 1, st, sdt, en, edt, (unsigned long long *)ws + 1, cs);
}
