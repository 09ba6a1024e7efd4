/* linear.c — fused linear log-probabilities: logits = hidden (N, D) @ weight (V, D)^T computed a
 * (token_chunk x vocab_chunk) block at a time and folded into each row's online softmax
 * (softmax_row.h), so N x V logits never exist at once. CPU: OpenBLAS cblas_sgemm per block
 * (bf16 operands are widened to f32 a block at a time); CUDA: kernels/loss.cu with cuBLAS.
 *
 * Forward, per token block i and vocabulary block j:   Z_ij = H_i W_j^T  ->  online softmax
 * Backward, per block: Z_ij again, dZ_ij from lse / entropy / grad_logp / grad_entropy
 * (segrl_logprobs_backward's formula), then   dH_i += dZ_ij W_j,   dW_j += dZ_ij^T H_i.
 * Working memory: the Z block, the widened operand blocks (bf16), the staged per-row outputs. */
#include "lp.h"
#include "softmax_row.h"

#include <cblas.h>
#include <float.h>

#define SG_LIN_TC_CPU 256
#define SG_LIN_VC_CPU 4096
#define SG_LIN_TC_CUDA 4096
#define SG_LIN_VC_CUDA 8192

static void sg_lin_chunks(segrl_device d, int64_t N, int64_t V, const segrl_logprob_opts *o,
                          int64_t *tc, int64_t *vc) {
    const int cuda = d.type == SEGRL_DEVICE_CUDA;
    *tc = o->token_chunk > 0 ? o->token_chunk : (cuda ? SG_LIN_TC_CUDA : SG_LIN_TC_CPU);
    *vc = o->vocab_chunk > 0 ? o->vocab_chunk : (cuda ? SG_LIN_VC_CUDA : SG_LIN_VC_CPU);
    if (*tc > N) *tc = N > 0 ? N : 1;
    if (*vc > V) *vc = V > 0 ? V : 1;
}

/* CPU workspace: [check][stage 5 N f32][row states tc][Z block tc*vc f32]
 *                [bf16 only: H block tc*D f32][W block vc*D f32] */
static size_t sg_lin_cpu_ws(int64_t N, int64_t D, int64_t tc, int64_t vc, int32_t dtype) {
    size_t b = SG_WS_CHECK_BYTES + sg_align((size_t)N * 5 * sizeof(float)) +
               sg_align((size_t)tc * (sizeof(sg_srow) + sizeof(float))) +
               sg_align((size_t)tc * vc * sizeof(float));
    if (dtype != SEGRL_DTYPE_F32)
        b += sg_align((size_t)tc * D * sizeof(float)) + sg_align((size_t)vc * D * sizeof(float));
    return b;
}

segrl_status segrl_linear_logprobs_workspace_size(segrl_device device, int64_t rows,
                                                  int64_t hidden_dim, int64_t vocab, int32_t dtype,
                                                  const segrl_logprob_opts *opts, int32_t backward,
                                                  size_t *out_bytes) {
    const char *fn = "segrl_linear_logprobs_workspace_size";
    if (!out_bytes) return sg_fail(SEGRL_ERR_INVALID, "%s: out_bytes: NULL", fn);
    segrl_logprob_opts o;
    SG_TRY(sg_lp_opts(fn, opts, &o));
    if (rows < 0 || hidden_dim < 0 || vocab < 0 || rows > ((int64_t)1 << 40) ||
        hidden_dim > ((int64_t)1 << 24) || vocab > ((int64_t)1 << 32))
        return sg_fail(SEGRL_ERR_INVALID, "%s: rows / hidden_dim / vocab: out of range", fn);
    if (dtype != SEGRL_DTYPE_F32 && dtype != SEGRL_DTYPE_BF16)
        return sg_fail(SEGRL_ERR_INVALID, "%s: dtype: %s, f32/bf16 required", fn,
                       segrl_dtype_name((segrl_dtype)dtype));
    if (backward != 0 && backward != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: backward: must be 0 or 1", fn);
    if (device.type != SEGRL_DEVICE_CPU && device.type != SEGRL_DEVICE_CUDA)
        return sg_fail(SEGRL_ERR_INVALID, "%s: device: unknown device type %d", fn, device.type);
    int64_t tc, vc;
    sg_lin_chunks(device, rows, vocab, &o, &tc, &vc);
    if (device.type == SEGRL_DEVICE_CUDA) {
#ifdef SEGRL_WITH_CUDA
        *out_bytes = sg_cuda_linear_ws(rows, hidden_dim, vocab, tc, vc, backward);
        return SEGRL_OK;
#endif
    }
    *out_bytes = sg_lin_cpu_ws(rows, hidden_dim, tc, vc, dtype);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// validation

typedef struct sg_lin_args {
    sg_mat H, W;
    const void *tgt;
    int32_t tdt;
    int64_t N, D, V, tc, vc;
    float inv_t;
    segrl_logprob_opts o;
} sg_lin_args;

static segrl_status sg_lin_validate(sg_call *c, const char *fn, segrl_view hidden,
                                    segrl_view weight, segrl_view targets,
                                    const segrl_logprob_opts *opts, const segrl_exec *exec,
                                    sg_lin_args *a) {
    memset(a, 0, sizeof *a);
    SG_TRY(sg_lp_opts(fn, opts, &a->o));
    SG_TRY(sg_call_start(c, fn, exec));
    if (segrl_view_is_none(hidden)) return sg_fail(SEGRL_ERR_INVALID, "%s: hidden: NULL (required)", fn);
    SG_TRY(sg_device_usable(fn, hidden.device, "hidden"));
    c->g.device = hidden.device;
    const unsigned fb = (1u << SEGRL_DTYPE_F32) | (1u << SEGRL_DTYPE_BF16);
    if (hidden.ndim != 2)
        return sg_fail(SEGRL_ERR_INVALID, "%s: hidden: must be 2-D (N, D), got %d-D", fn, hidden.ndim);
    SG_TRY(sg_lp_mat(c, hidden, "hidden", fb, -1, hidden.shape[1], &a->H));
    if (weight.ndim != 2)
        return sg_fail(SEGRL_ERR_INVALID, "%s: weight: must be 2-D (V, D), got %d-D", fn, weight.ndim);
    SG_TRY(sg_lp_mat(c, weight, "weight", fb, -1, a->H.cols, &a->W));
    if (a->W.dtype != a->H.dtype)
        return sg_fail(SEGRL_ERR_INVALID, "%s: weight: dtype %s but hidden is %s (must match)", fn,
                       segrl_dtype_name((segrl_dtype)a->W.dtype),
                       segrl_dtype_name((segrl_dtype)a->H.dtype));
    a->N = a->H.rows, a->D = a->H.cols, a->V = a->W.rows;
    if (a->V < 1) return sg_fail(SEGRL_ERR_INVALID, "%s: weight: V = 0 rows", fn);
    if (a->D < 1) return sg_fail(SEGRL_ERR_INVALID, "%s: hidden: D = 0 columns", fn);
    SG_TRY(sg_vec_view(c, targets, "targets", a->N, SG_IDX, 1, &a->tgt, &a->tdt));
    sg_lin_chunks(c->g.device, a->N, a->V, &a->o, &a->tc, &a->vc);
    a->inv_t = 1.0f / a->o.temperature;
    return SEGRL_OK;
}

static segrl_status sg_lin_target_check(const char *fn, const sg_lin_args *a) {
    const int64_t bt = sg_lp_bad_target(a->tgt, a->tdt, a->N, a->V);
    if (bt >= 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: targets: entry %lld is %lld, >= V = %lld", fn,
                       (long long)bt, (long long)sg_ld_index(a->tgt, a->tdt, bt), (long long)a->V);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// CPU blocks

/* rows [r0, r0 + n) of m as an f32 pointer with leading dimension *ld: m itself when f32, else
 * widened into buf (n x cols, ld = cols) */
static const float *sg_lin_block(sg_mat m, int64_t r0, int64_t n, float *buf, int64_t *ld) {
    if (m.dtype == SEGRL_DTYPE_F32) {
        *ld = m.ld;
        return (const float *)m.data + (size_t)r0 * m.ld;
    }
    const size_t es = segrl_dtype_size((segrl_dtype)m.dtype);
    for (int64_t r = 0; r < n; r++)
        sg_load_f32((const char *)m.data + (size_t)(r0 + r) * m.ld * es, m.dtype, m.cols,
                    buf + (size_t)r * m.cols);
    *ld = m.cols;
    return buf;
}

typedef struct sg_lin_ws {
    float *stage;
    sg_srow *rows;
    float *zy;
    float *Z, *Hb, *Wb;
} sg_lin_ws;

static sg_lin_ws sg_lin_carve(void *ws, const sg_lin_args *a) {
    sg_lin_ws w;
    char *p = (char *)ws + SG_WS_CHECK_BYTES;
    w.stage = (float *)p;
    p += sg_align((size_t)a->N * 5 * sizeof(float));
    w.rows = (sg_srow *)p;
    w.zy = (float *)(p + (size_t)a->tc * sizeof(sg_srow));
    p += sg_align((size_t)a->tc * (sizeof(sg_srow) + sizeof(float)));
    w.Z = (float *)p;
    p += sg_align((size_t)a->tc * a->vc * sizeof(float));
    w.Hb = w.Wb = NULL;
    if (a->H.dtype != SEGRL_DTYPE_F32) {
        w.Hb = (float *)p;
        p += sg_align((size_t)a->tc * a->D * sizeof(float));
        w.Wb = (float *)p;
    }
    return w;
}

/* Z (n x c, ld c) = H rows [i0, i0 + n) times W rows [j0, j0 + c) transposed */
static void sg_lin_gemm_z(const sg_lin_args *a, const float *Hb, int64_t ldh, const float *Wb,
                          int64_t ldw, int64_t n, int64_t c, float *Z) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)n, (blasint)c, (blasint)a->D,
                1.0f, Hb, (blasint)ldh, Wb, (blasint)ldw, 0.0f, Z, (blasint)c);
}

static segrl_status sg_lin_cpu_fwd(const char *fn, const sg_lin_args *a, void *ws, int check,
                                   const sg_lp_outs *oo) {
    sg_lin_ws w = sg_lin_carve(ws, a);
    const int64_t N = a->N, V = a->V;
    for (int64_t i0 = 0; i0 < N; i0 += a->tc) {
        const int64_t n = N - i0 < a->tc ? N - i0 : a->tc;
        int64_t ldh, ldw;
        const float *Hb = sg_lin_block(a->H, i0, n, w.Hb, &ldh);
        for (int64_t r = 0; r < n; r++) sg_srow_init(&w.rows[r]), w.zy[r] = 0.0f;
        for (int64_t j0 = 0; j0 < V; j0 += a->vc) {
            const int64_t c = V - j0 < a->vc ? V - j0 : a->vc;
            const float *Wb = sg_lin_block(a->W, j0, c, w.Wb, &ldw);
            sg_lin_gemm_z(a, Hb, ldh, Wb, ldw, n, c, w.Z);
            for (int64_t r = 0; r < n; r++) {
                const float *z = w.Z + (size_t)r * c;
                sg_srow_add_f32(&w.rows[r], z, c, a->inv_t);
                const int64_t y = sg_ld_index(a->tgt, a->tdt, i0 + r);
                if (y >= j0 && y < j0 + c) w.zy[r] = z[y - j0] * a->inv_t;
            }
        }
        for (int64_t r = 0; r < n; r++) {
            const int64_t i = i0 + r;
            float lse, ent, sp2;
            sg_srow_finish(&w.rows[r], &lse, &ent, &sp2);
            if (check && (w.rows[r].bad || !(lse > -FLT_MAX)))
                return sg_fail(SEGRL_ERR_INVALID,
                               "%s: hidden: row %lld gives a NaN or +Inf logit, or every logit "
                               "-Inf (hidden or weight not finite)",
                               fn, (long long)i);
            const int64_t y = sg_ld_index(a->tgt, a->tdt, i);
            const float lp = y >= 0 ? w.zy[r] - lse : 0.0f;
            w.stage[i] = lp;
            w.stage[N + i] = ent;
            w.stage[2 * N + i] = lse;
            w.stage[3 * N + i] = y >= 0 ? expf(lp) : 0.0f;
            w.stage[4 * N + i] = sp2;
        }
    }
    sg_lp_commit(w.stage, N, oo);
    return SEGRL_OK;
}

static void sg_lin_cpu_bwd(const sg_lin_args *a, void *ws, const float *lse, const float *ent,
                           const float *g, const float *h, sg_mat dH, sg_mat dW) {
    sg_lin_ws w = sg_lin_carve(ws, a);
    const int64_t N = a->N, V = a->V, D = a->D;
    if (!a->o.accumulate) {
        if (dH.data)
            for (int64_t i = 0; i < N; i++) memset((float *)dH.data + (size_t)i * dH.ld, 0, (size_t)D * 4);
        if (dW.data)
            for (int64_t j = 0; j < V; j++) memset((float *)dW.data + (size_t)j * dW.ld, 0, (size_t)D * 4);
    }
    for (int64_t i0 = 0; i0 < N; i0 += a->tc) {
        const int64_t n = N - i0 < a->tc ? N - i0 : a->tc;
        int64_t ldh, ldw;
        const float *Hb = sg_lin_block(a->H, i0, n, w.Hb, &ldh);
        for (int64_t j0 = 0; j0 < V; j0 += a->vc) {
            const int64_t c = V - j0 < a->vc ? V - j0 : a->vc;
            const float *Wb = sg_lin_block(a->W, j0, c, w.Wb, &ldw);
            sg_lin_gemm_z(a, Hb, ldh, Wb, ldw, n, c, w.Z);
            for (int64_t r = 0; r < n; r++) {
                const int64_t i = i0 + r, y = sg_ld_index(a->tgt, a->tdt, i);
                float *z = w.Z + (size_t)r * c;
                sg_srow_grad_f32(z, c, a->inv_t, lse[i], ent ? ent[i] : 0.0f,
                                 g && y >= 0 ? g[i] : 0.0f, h ? h[i] : 0.0f, y - j0, z);
            }
            if (dH.data) /* dH_i += dZ W_j */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)n, (blasint)D,
                            (blasint)c, 1.0f, w.Z, (blasint)c, Wb, (blasint)ldw, 1.0f,
                            (float *)dH.data + (size_t)i0 * dH.ld, (blasint)dH.ld);
            if (dW.data) /* dW_j += dZ^T H_i */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)c, (blasint)D,
                            (blasint)n, 1.0f, w.Z, (blasint)c, Hb, (blasint)ldh, 1.0f,
                            (float *)dW.data + (size_t)j0 * dW.ld, (blasint)dW.ld);
        }
    }
}

// ----------------------------------------------------------------------------
// public entries

segrl_status segrl_linear_logprobs_forward(segrl_view hidden, segrl_view weight,
                                           segrl_view targets, const segrl_logprob_opts *opts,
                                           const segrl_exec *exec, const segrl_logprob_out *out) {
    const char *fn = "segrl_linear_logprobs_forward";
    sg_call c;
    sg_lin_args a;
    SG_TRY(sg_lin_validate(&c, fn, hidden, weight, targets, opts, exec, &a));
    sg_lp_outs oo;
    SG_TRY(sg_lp_outputs(&c, out, a.N, &oo));
    size_t need;
    SG_TRY(segrl_linear_logprobs_workspace_size(c.g.device, a.N, a.D, a.V, a.H.dtype, &a.o, 0,
                                                &need));
    SG_TRY(sg_workspace(&c, need));
    const int check = c.exec.checks == SEGRL_CHECKS_FULL;
    if (c.g.device.type == SEGRL_DEVICE_CUDA) {
#ifdef SEGRL_WITH_CUDA
        int64_t bad_row = -1;
        int bad_kind = 0;
        SG_TRY(sg_cuda_linear_fwd(a.H, a.W, a.tgt, a.tdt, a.inv_t, a.tc, a.vc, check,
                                  c.exec.workspace, c.exec.workspace_bytes, c.exec.stream, oo.logp,
                                  oo.ent, oo.lse, oo.pt, oo.sp2, &bad_row, &bad_kind));
        if (bad_kind == 1)
            return sg_fail(SEGRL_ERR_INVALID, "%s: targets: entry %lld is >= V = %lld", fn,
                           (long long)bad_row, (long long)a.V);
        if (bad_kind == 2)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: hidden: row %lld gives a NaN or +Inf logit, or every logit -Inf "
                           "(hidden or weight not finite)",
                           fn, (long long)bad_row);
        return SEGRL_OK;
#endif
    }
    SG_TRY(sg_lin_target_check(fn, &a));
    return sg_lin_cpu_fwd(fn, &a, c.exec.workspace, check, &oo);
}

segrl_status segrl_linear_logprobs_backward(segrl_view hidden, segrl_view weight,
                                            segrl_view targets, segrl_view lse, segrl_view entropy,
                                            segrl_view grad_logp, segrl_view grad_entropy,
                                            const segrl_logprob_opts *opts, const segrl_exec *exec,
                                            segrl_view out_grad_hidden,
                                            segrl_view out_grad_weight) {
    const char *fn = "segrl_linear_logprobs_backward";
    sg_call c;
    sg_lin_args a;
    SG_TRY(sg_lin_validate(&c, fn, hidden, weight, targets, opts, exec, &a));
    const unsigned f32 = 1u << SEGRL_DTYPE_F32;
    const void *p;
    SG_TRY(sg_vec_view(&c, lse, "lse", a.N, f32, 1, &p, NULL));
    const float *lse_p = (const float *)p;
    SG_TRY(sg_vec_view(&c, grad_logp, "grad_logp", a.N, f32, 0, &p, NULL));
    const float *g = (const float *)p;
    SG_TRY(sg_vec_view(&c, grad_entropy, "grad_entropy", a.N, f32, 0, &p, NULL));
    const float *h = (const float *)p;
    SG_TRY(sg_vec_view(&c, entropy, "entropy", a.N, f32, h != NULL, &p, NULL));
    const float *ent = (const float *)p;
    sg_mat dH = {0}, dW = {0};
    if (!segrl_view_is_none(out_grad_hidden))
        SG_TRY(sg_lp_mat(&c, out_grad_hidden, "out_grad_hidden", f32, a.N, a.D, &dH));
    if (!segrl_view_is_none(out_grad_weight))
        SG_TRY(sg_lp_mat(&c, out_grad_weight, "out_grad_weight", f32, a.V, a.D, &dW));
    if (!dH.data && !dW.data)
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: out_grad_hidden: both out_grad_hidden and out_grad_weight are none", fn);
    size_t need;
    SG_TRY(segrl_linear_logprobs_workspace_size(c.g.device, a.N, a.D, a.V, a.H.dtype, &a.o, 1,
                                                &need));
    SG_TRY(sg_workspace(&c, need));
    if (c.g.device.type == SEGRL_DEVICE_CUDA) {
#ifdef SEGRL_WITH_CUDA
        return sg_cuda_linear_bwd(a.H, a.W, a.tgt, a.tdt, a.inv_t, lse_p, ent, g, h, a.tc, a.vc,
                                  a.o.accumulate, c.exec.workspace, c.exec.workspace_bytes,
                                  c.exec.stream, (float *)dH.data, dH.ld, (float *)dW.data, dW.ld);
#endif
    }
    SG_TRY(sg_lin_target_check(fn, &a));
    sg_lin_cpu_bwd(&a, c.exec.workspace, lse_p, ent, g, h, dH, dW);
    return SEGRL_OK;
}
