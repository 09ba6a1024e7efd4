/* logprob.c — fused log-probabilities from logits (N, V): validation, the CPU path and the
 * dispatch to kernels/loss.cu. One pass over each row with an online softmax (softmax_row.h);
 * results are staged in the workspace and copied to the outputs only when every row is good.
 * Formulas: include/segrl/loss.h, docs/losses.md. */
#include "lp.h"
#include "softmax_row.h"

#include <float.h>

#define SG_LP_STAGE 5 /* logp, entropy, lse, p_target, sum p^2 */
#define SG_LP_BUF 2048

segrl_logprob_opts segrl_logprob_opts_default(void) {
    segrl_logprob_opts o;
    memset(&o, 0, sizeof o);
    o.temperature = 1.0f;
    return o;
}

// ----------------------------------------------------------------------------
// validation shared with linear.c (lp.h)

segrl_status sg_lp_opts(const char *fn, const segrl_logprob_opts *opts, segrl_logprob_opts *o) {
    *o = opts ? *opts : segrl_logprob_opts_default();
    if (!(o->temperature > 0.0f && o->temperature < FLT_MAX))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->temperature: must be finite and > 0", fn);
    if (o->vocab_chunk < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->vocab_chunk: negative", fn);
    if (o->token_chunk < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->token_chunk: negative", fn);
    if (o->accumulate != 0 && o->accumulate != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->accumulate: must be 0 or 1", fn);
    return SEGRL_OK;
}

static int sg_lp_same_device(segrl_device a, segrl_device b) {
    return a.type == b.type && (a.type == SEGRL_DEVICE_CPU || a.index == b.index);
}

segrl_status sg_lp_mat(const sg_call *c, segrl_view v, const char *name, unsigned dtypes,
                       int64_t rows, int64_t cols, sg_mat *out) {
    const char *fn = c->fn;
    memset(out, 0, sizeof *out);
    if (segrl_view_is_none(v)) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL (required)", fn, name);
    if (v.ndim != 2)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: must be 2-D, got %d-D", fn, name, v.ndim);
    if (v.dtype < 0 || v.dtype > SEGRL_DTYPE_U8 || !(dtypes & (1u << v.dtype)))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: dtype %s, %s required", fn, name,
                       segrl_dtype_name((segrl_dtype)v.dtype),
                       dtypes == SG_FLOAT ? "f32/bf16/f16"
                       : dtypes == (1u << SEGRL_DTYPE_F32) ? "f32" : "f32/bf16");
    if (!sg_lp_same_device(v.device, c->g.device))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: on another device than the other tensors", fn,
                       name);
    if (v.shape[0] < 0 || v.shape[1] < 0 || v.strides[0] < 0 || v.strides[1] < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: negative shape or stride", fn, name);
    if ((rows >= 0 && v.shape[0] != rows) || v.shape[1] != cols)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: shape (%lld, %lld), expected (%lld, %lld)", fn,
                       name, (long long)v.shape[0], (long long)v.shape[1],
                       (long long)(rows >= 0 ? rows : v.shape[0]), (long long)cols);
    if (cols > 1 && v.strides[1] != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: column stride must be 1", fn, name);
    const int64_t ld = v.shape[0] > 1 ? v.strides[0] : cols;
    if (ld < cols)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: row stride %lld < %lld columns (rows overlap)",
                       fn, name, (long long)ld, (long long)cols);
    if (v.shape[0] > 0 && cols > 0) {
        if (!v.data) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL data", fn, name);
        if (v.shape[0] - 1 > (INT64_MAX / 4 - cols) / (ld ? ld : 1))
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: extent overflows", fn, name);
    }
    out->data = v.data;
    out->dtype = v.dtype;
    out->rows = v.shape[0];
    out->cols = cols;
    out->ld = ld;
    return SEGRL_OK;
}

segrl_status sg_lp_outputs(const sg_call *c, const segrl_logprob_out *out, int64_t N,
                           sg_lp_outs *o) {
    memset(o, 0, sizeof *o);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", c->fn);
    const void *p;
    const unsigned f32 = 1u << SEGRL_DTYPE_F32;
    SG_TRY(sg_vec_view(c, out->logp, "out->logp", N, f32, 1, &p, NULL));
    o->logp = (float *)p;
    SG_TRY(sg_vec_view(c, out->entropy, "out->entropy", N, f32, 0, &p, NULL));
    o->ent = (float *)p;
    SG_TRY(sg_vec_view(c, out->lse, "out->lse", N, f32, 0, &p, NULL));
    o->lse = (float *)p;
    SG_TRY(sg_vec_view(c, out->p_target, "out->p_target", N, f32, 0, &p, NULL));
    o->pt = (float *)p;
    SG_TRY(sg_vec_view(c, out->sum_p2, "out->sum_p2", N, f32, 0, &p, NULL));
    o->sp2 = (float *)p;
    return SEGRL_OK;
}

int64_t sg_lp_bad_target(const void *tgt, int32_t dt, int64_t N, int64_t V) {
    for (int64_t i = 0; i < N; i++)
        if (sg_ld_index(tgt, dt, i) >= V) return i;
    return -1;
}

segrl_status sg_lp_bad_row(const char *fn, const char *name, const void *x, int32_t dt, int64_t V,
                           int64_t row) {
    for (int64_t j = 0; j < V; j++) {
        const float v = sg_ldf(x, dt, j);
        if (isnan(v) || (isinf(v) && v > 0))
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: %s at row %lld, column %lld", fn, name,
                           isnan(v) ? "NaN" : "+Inf", (long long)row, (long long)j);
    }
    return sg_fail(SEGRL_ERR_INVALID, "%s: %s: every logit of row %lld is -Inf", fn, name,
                   (long long)row);
}

void sg_lp_commit(const float *stage, int64_t N, const sg_lp_outs *o) {
    float *dst[SG_LP_STAGE] = {o->logp, o->ent, o->lse, o->pt, o->sp2};
    for (int k = 0; k < SG_LP_STAGE; k++)
        if (dst[k]) memcpy(dst[k], stage + (size_t)k * N, (size_t)N * sizeof(float));
}

// ----------------------------------------------------------------------------
// public entries

segrl_status segrl_logprobs_workspace_size(segrl_device device, int64_t rows, int64_t vocab,
                                           size_t *out_bytes) {
    const char *fn = "segrl_logprobs_workspace_size";
    if (!out_bytes) return sg_fail(SEGRL_ERR_INVALID, "%s: out_bytes: NULL", fn);
    if (rows < 0 || rows > ((int64_t)1 << 40))
        return sg_fail(SEGRL_ERR_INVALID, "%s: rows: %lld out of range", fn, (long long)rows);
    if (vocab < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: vocab: negative", fn);
    if (device.type == SEGRL_DEVICE_CPU) {
        *out_bytes = SG_WS_CHECK_BYTES + sg_align((size_t)rows * SG_LP_STAGE * sizeof(float));
        return SEGRL_OK;
    }
    if (device.type != SEGRL_DEVICE_CUDA)
        return sg_fail(SEGRL_ERR_INVALID, "%s: device: unknown device type %d", fn, device.type);
#ifdef SEGRL_WITH_CUDA
    *out_bytes = sg_cuda_logprobs_ws(rows);
#else
    *out_bytes = SG_WS_CHECK_BYTES + sg_align((size_t)rows * SG_LP_STAGE * sizeof(float));
#endif
    return SEGRL_OK;
}

/* the call's device from `v` (checked usable) */
static segrl_status sg_lp_start(sg_call *c, const char *fn, const segrl_exec *exec, segrl_view v,
                                const char *name) {
    SG_TRY(sg_call_start(c, fn, exec));
    if (segrl_view_is_none(v)) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL (required)", fn, name);
    SG_TRY(sg_device_usable(fn, v.device, name));
    c->g.device = v.device;
    return SEGRL_OK;
}

segrl_status segrl_logprobs_forward(segrl_view logits, segrl_view targets,
                                    const segrl_logprob_opts *opts, const segrl_exec *exec,
                                    const segrl_logprob_out *out) {
    const char *fn = "segrl_logprobs_forward";
    sg_call c;
    segrl_logprob_opts o;
    SG_TRY(sg_lp_opts(fn, opts, &o));
    SG_TRY(sg_lp_start(&c, fn, exec, logits, "logits"));
    if (logits.ndim != 2)
        return sg_fail(SEGRL_ERR_INVALID, "%s: logits: must be 2-D (N, V), got %d-D", fn,
                       logits.ndim);
    sg_mat L;
    SG_TRY(sg_lp_mat(&c, logits, "logits", SG_FLOAT, -1, logits.shape[1], &L));
    const int64_t N = L.rows, V = L.cols;
    if (V < 1) return sg_fail(SEGRL_ERR_INVALID, "%s: logits: V = 0 columns", fn);
    const void *tgt;
    int32_t tdt;
    SG_TRY(sg_vec_view(&c, targets, "targets", N, SG_IDX, 1, &tgt, &tdt));
    sg_lp_outs oo;
    SG_TRY(sg_lp_outputs(&c, out, N, &oo));
    size_t need;
    SG_TRY(segrl_logprobs_workspace_size(c.g.device, N, V, &need));
    SG_TRY(sg_workspace(&c, need));
    const float inv_t = 1.0f / o.temperature;
    const int check = c.exec.checks == SEGRL_CHECKS_FULL;
    if (c.g.device.type == SEGRL_DEVICE_CUDA) {
#ifdef SEGRL_WITH_CUDA
        int64_t bad_row = -1;
        int bad_kind = 0;
        SG_TRY(sg_cuda_logprobs_fwd(L, tgt, tdt, inv_t, check, c.exec.workspace, c.exec.stream,
                                    oo.logp, oo.ent, oo.lse, oo.pt, oo.sp2, &bad_row, &bad_kind));
        if (bad_kind == 1)
            return sg_fail(SEGRL_ERR_INVALID, "%s: targets: entry %lld is >= V = %lld", fn,
                           (long long)bad_row, (long long)V);
        if (bad_kind == 2)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: logits: row %lld has a NaN or +Inf logit, or every logit -Inf", fn,
                           (long long)bad_row);
        return SEGRL_OK;
#endif
    }
    const int64_t bt = sg_lp_bad_target(tgt, tdt, N, V);
    if (bt >= 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: targets: entry %lld is %lld, >= V = %lld", fn,
                       (long long)bt, (long long)sg_ld_index(tgt, tdt, bt), (long long)V);
    float *stage = (float *)((char *)c.exec.workspace + SG_WS_CHECK_BYTES);
    const size_t es = segrl_dtype_size((segrl_dtype)L.dtype);
    float buf[SG_LP_BUF];
    for (int64_t i = 0; i < N; i++) {
        const char *row = (const char *)L.data + (size_t)i * L.ld * es;
        sg_srow r;
        sg_srow_init(&r);
        if (L.dtype == SEGRL_DTYPE_F32) {
            sg_srow_add_f32(&r, (const float *)row, V, inv_t);
        } else {
            for (int64_t j = 0; j < V; j += SG_LP_BUF) {
                const int64_t n = V - j < SG_LP_BUF ? V - j : SG_LP_BUF;
                sg_load_f32(row + (size_t)j * es, L.dtype, n, buf);
                sg_srow_add_f32(&r, buf, n, inv_t);
            }
        }
        float lse, ent, sp2;
        sg_srow_finish(&r, &lse, &ent, &sp2);
        if (check && (r.bad || !(lse > -FLT_MAX))) return sg_lp_bad_row(fn, "logits", row, L.dtype, V, i);
        const int64_t y = sg_ld_index(tgt, tdt, i);
        const float lp = y >= 0 ? sg_ldf(row, L.dtype, y) * inv_t - lse : 0.0f;
        stage[i] = lp;
        stage[N + i] = ent;
        stage[2 * N + i] = lse;
        stage[3 * N + i] = y >= 0 ? expf(lp) : 0.0f;
        stage[4 * N + i] = sp2;
    }
    sg_lp_commit(stage, N, &oo);
    return SEGRL_OK;
}

segrl_status segrl_logprobs_backward(segrl_view logits, segrl_view targets, segrl_view lse,
                                     segrl_view entropy, segrl_view grad_logp,
                                     segrl_view grad_entropy, const segrl_logprob_opts *opts,
                                     const segrl_exec *exec, segrl_view out_grad_logits) {
    const char *fn = "segrl_logprobs_backward";
    sg_call c;
    segrl_logprob_opts o;
    SG_TRY(sg_lp_opts(fn, opts, &o));
    SG_TRY(sg_lp_start(&c, fn, exec, logits, "logits"));
    if (logits.ndim != 2)
        return sg_fail(SEGRL_ERR_INVALID, "%s: logits: must be 2-D (N, V), got %d-D", fn,
                       logits.ndim);
    sg_mat L, Out;
    SG_TRY(sg_lp_mat(&c, logits, "logits", SG_FLOAT, -1, logits.shape[1], &L));
    const int64_t N = L.rows, V = L.cols;
    if (V < 1) return sg_fail(SEGRL_ERR_INVALID, "%s: logits: V = 0 columns", fn);
    SG_TRY(sg_lp_mat(&c, out_grad_logits, "out_grad_logits", SG_FLOAT, N, V, &Out));
    if (Out.data == L.data && (Out.dtype != L.dtype || Out.ld != L.ld))
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: out_grad_logits: in place needs the dtype and strides of logits", fn);
    const void *tgt, *p;
    int32_t tdt;
    const unsigned f32 = 1u << SEGRL_DTYPE_F32;
    SG_TRY(sg_vec_view(&c, targets, "targets", N, SG_IDX, 1, &tgt, &tdt));
    SG_TRY(sg_vec_view(&c, lse, "lse", N, f32, 1, &p, NULL));
    const float *lse_p = (const float *)p;
    SG_TRY(sg_vec_view(&c, grad_logp, "grad_logp", N, f32, 0, &p, NULL));
    const float *g = (const float *)p;
    SG_TRY(sg_vec_view(&c, grad_entropy, "grad_entropy", N, f32, 0, &p, NULL));
    const float *h = (const float *)p;
    SG_TRY(sg_vec_view(&c, entropy, "entropy", N, f32, h != NULL, &p, NULL));
    const float *ent = (const float *)p;
    const float inv_t = 1.0f / o.temperature;
    if (c.g.device.type == SEGRL_DEVICE_CUDA) {
#ifdef SEGRL_WITH_CUDA
        size_t need;
        SG_TRY(segrl_logprobs_workspace_size(c.g.device, N, V, &need));
        SG_TRY(sg_workspace(&c, need));
        int64_t bad_row = -1;
        SG_TRY(sg_cuda_logprobs_bwd(L, tgt, tdt, inv_t, lse_p, ent, g, h, Out,
                                    c.exec.checks == SEGRL_CHECKS_FULL, c.exec.workspace,
                                    c.exec.stream, &bad_row));
        if (bad_row >= 0)
            return sg_fail(SEGRL_ERR_INVALID, "%s: targets: entry %lld is >= V = %lld", fn,
                           (long long)bad_row, (long long)V);
        return SEGRL_OK;
#endif
    }
    const int64_t bt = sg_lp_bad_target(tgt, tdt, N, V);
    if (bt >= 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: targets: entry %lld is %lld, >= V = %lld", fn,
                       (long long)bt, (long long)sg_ld_index(tgt, tdt, bt), (long long)V);
    const size_t es = segrl_dtype_size((segrl_dtype)L.dtype);
    const size_t eo = segrl_dtype_size((segrl_dtype)Out.dtype);
    float buf[SG_LP_BUF], dbuf[SG_LP_BUF];
    for (int64_t i = 0; i < N; i++) {
        const char *row = (const char *)L.data + (size_t)i * L.ld * es;
        char *orow = (char *)Out.data + (size_t)i * Out.ld * eo;
        const int64_t y = sg_ld_index(tgt, tdt, i);
        const float gi = g && y >= 0 ? g[i] : 0.0f, hi = h ? h[i] : 0.0f;
        const float Hi = ent ? ent[i] : 0.0f;
        if (L.dtype == SEGRL_DTYPE_F32 && Out.dtype == SEGRL_DTYPE_F32) {
            sg_srow_grad_f32((const float *)row, V, inv_t, lse_p[i], Hi, gi, hi, y, (float *)orow);
            continue;
        }
        for (int64_t j = 0; j < V; j += SG_LP_BUF) {
            const int64_t n = V - j < SG_LP_BUF ? V - j : SG_LP_BUF;
            sg_load_f32(row + (size_t)j * es, L.dtype, n, buf);
            sg_srow_grad_f32(buf, n, inv_t, lse_p[i], Hi, gi, hi, y - j, dbuf);
            sg_store_f32(orow + (size_t)j * eo, Out.dtype, n, dbuf);
        }
    }
    return SEGRL_OK;
}
