/* check.c — argument validation for every public entry point, and the CPU content checks. */
#include "check.h"

#include <math.h>

#include <string.h>

static int sg_same_device(segrl_device a, segrl_device b) {
    return a.type == b.type && (a.type == SEGRL_DEVICE_CPU || a.index == b.index);
}

static const char *sg_dev_name(segrl_device d, char *buf, size_t n) {
    if (d.type == SEGRL_DEVICE_CPU) return "cpu";
    snprintf(buf, n, "cuda:%d", d.index);
    return buf;
}

/* "f32" or "u8/i32/i64/f32" for messages */
static const char *sg_dtypes_name(unsigned set) {
    if (set == SG_F32) return "f32";
    if (set == SG_IDX) return "i32/i64";
    if (set == SG_MASK) return "u8/i32/i64/f32";
    return "another dtype";
}

static segrl_status sg_common_view(const char *fn, segrl_view v, const char *name) {
    if (v.ndim < 0 || v.ndim > SEGRL_MAX_DIMS)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: ndim %d out of range", fn, name, v.ndim);
    if (segrl_dtype_size((segrl_dtype)v.dtype) == 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: unknown dtype %d", fn, name, v.dtype);
    for (int i = 0; i < v.ndim; i++) {
        if (v.shape[i] < 0)
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: negative shape[%d] = %lld", fn, name, i,
                           (long long)v.shape[i]);
        if (v.strides[i] < 0)
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: negative strides[%d]", fn, name, i);
    }
    return SEGRL_OK;
}

segrl_status sg_device_usable(const char *fn, segrl_device d, const char *name) {
    if (d.type == SEGRL_DEVICE_CPU) return SEGRL_OK;
    if (d.type != SEGRL_DEVICE_CUDA)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: unknown device type %d", fn, name, d.type);
#ifdef SEGRL_WITH_CUDA
    int n = sg_cuda_device_count();
    if (n == 0)
        return sg_fail(SEGRL_ERR_NO_DEVICE, "%s: %s: on cuda:%d but no CUDA device is available",
                       fn, name, d.index);
    if (d.index < 0 || d.index >= n)
        return sg_fail(SEGRL_ERR_NO_DEVICE, "%s: %s: on cuda:%d but %d CUDA device(s)", fn, name,
                       d.index, n);
    return sg_cuda_set_device(d.index);
#else
    return sg_fail(SEGRL_ERR_NO_DEVICE, "%s: %s: on cuda:%d but segrl was built without CUDA", fn,
                   name, d.index);
#endif
}

/* bytes spanned by n elements of `size` with largest offset `last`, guarding overflow */
static int sg_extent_ok(int64_t last, size_t size) {
    return last >= 0 && (uint64_t)last <= (uint64_t)INT64_MAX / (size ? size : 1);
}

segrl_status sg_call_start(sg_call *c, const char *fn, const segrl_exec *exec) {
    memset(c, 0, sizeof *c); /* device: CPU until a view says otherwise */
    c->fn = fn;
    if (exec) c->exec = *exec;
    if (c->exec.checks != SEGRL_CHECKS_FULL && c->exec.checks != SEGRL_CHECKS_SHAPES)
        return sg_fail(SEGRL_ERR_INVALID, "%s: exec: checks %d is not a segrl_checks value", fn,
                       c->exec.checks);
    return SEGRL_OK;
}

segrl_status sg_begin(sg_call *c, const char *fn, const segrl_layout *layout, segrl_view ref,
                      const char *ref_name, const segrl_exec *exec) {
    SG_TRY(sg_call_start(c, fn, exec));
    segrl_status st = sg_common_view(fn, ref, ref_name);
    if (st) return st;
    if (!ref.data && ref.ndim == 0) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL", fn, ref_name);
    st = sg_device_usable(fn, ref.device, ref_name);
    if (st) return st;
    sg_geom *g = &c->g;
    g->device = ref.device;
    segrl_view off = layout ? layout->offsets : segrl_view_none();
    if (segrl_view_is_none(off)) {
        if (ref.ndim != 2)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: %s: padded layout needs a 2-D (B, T) tensor, got %d-D", fn,
                           ref_name, ref.ndim);
        g->B = ref.shape[0];
        g->T = ref.shape[1];
        if (g->T > 0 && g->B > INT64_MAX / g->T)
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: B * T overflows", fn, ref_name);
        g->N = g->B * g->T;
        return SEGRL_OK;
    }
    st = sg_common_view(fn, off, "layout->offsets");
    if (st) return st;
    if (!off.data) return sg_fail(SEGRL_ERR_INVALID, "%s: layout->offsets: NULL data", fn);
    if (off.ndim != 1 || off.shape[0] < 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: layout->offsets: must be 1-D with B + 1 >= 1 entries",
                       fn);
    if (off.dtype != SEGRL_DTYPE_I32 && off.dtype != SEGRL_DTYPE_I64)
        return sg_fail(SEGRL_ERR_INVALID, "%s: layout->offsets: dtype %s, i32/i64 required", fn,
                       segrl_dtype_name((segrl_dtype)off.dtype));
    if (off.shape[0] > 1 && off.strides[0] != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: layout->offsets: must be contiguous", fn);
    if (!sg_same_device(off.device, ref.device)) {
        char a[24], b[24];
        return sg_fail(SEGRL_ERR_INVALID, "%s: layout->offsets: on %s but %s is on %s", fn,
                       sg_dev_name(off.device, a, sizeof a), ref_name,
                       sg_dev_name(ref.device, b, sizeof b));
    }
    if (ref.ndim != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: packed layout needs a 1-D (N) tensor, got %d-D",
                       fn, ref_name, ref.ndim);
    g->packed = 1;
    g->offsets = off.data;
    g->offsets_dtype = off.dtype;
    g->B = off.shape[0] - 1;
    g->T = 0;
    g->N = ref.shape[0];
    return SEGRL_OK;
}

/* The checks every view argument shares: presence, ndim/shape/stride signs, dtype, device.
 * *absent is set when the view is none and not required. */
static segrl_status sg_view_head(const sg_call *c, segrl_view v, const char *name,
                                 unsigned dtypes, int required, int *absent) {
    const char *fn = c->fn;
    *absent = 0;
    if (segrl_view_is_none(v)) {
        if (required) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL (required)", fn, name);
        *absent = 1;
        return SEGRL_OK;
    }
    segrl_status st = sg_common_view(fn, v, name);
    if (st) return st;
    if (!(dtypes & (1u << v.dtype)))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: dtype %s, %s required", fn, name,
                       segrl_dtype_name((segrl_dtype)v.dtype), sg_dtypes_name(dtypes));
    if (!sg_same_device(v.device, c->g.device)) {
        char a[24], b[24];
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: on %s, expected %s like the other tensors", fn,
                       name, sg_dev_name(v.device, a, sizeof a),
                       sg_dev_name(c->g.device, b, sizeof b));
    }
    return SEGRL_OK;
}

segrl_status sg_tok_view(const sg_call *c, segrl_view v, const char *name, unsigned dtypes,
                         int required, sg_tok *out) {
    const char *fn = c->fn;
    const sg_geom *g = &c->g;
    memset(out, 0, sizeof *out);
    int absent;
    segrl_status st = sg_view_head(c, v, name, dtypes, required, &absent);
    if (st || absent) return st;
    size_t es = segrl_dtype_size((segrl_dtype)v.dtype);
    if (!g->packed) {
        if (v.ndim != 2 || v.shape[0] != g->B || v.shape[1] != g->T)
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: shape must be (%lld, %lld) (padded layout)",
                           fn, name, (long long)g->B, (long long)g->T);
        if (g->B > 0 && g->T > 0 && !v.data)
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL data", fn, name);
        if (g->T > 1 && v.strides[1] != 1)
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: innermost stride must be 1", fn, name);
        int64_t rs = g->B > 1 ? v.strides[0] : g->T;
        if (rs < g->T)
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: row stride %lld < T = %lld (rows overlap)",
                           fn, name, (long long)rs, (long long)g->T);
        if (g->B > 0 && g->T > 0 &&
            (g->B - 1 > INT64_MAX / (rs ? rs : 1) || (g->B - 1) * rs > INT64_MAX - g->T ||
             !sg_extent_ok((g->B - 1) * rs + g->T, es)))
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: extent overflows", fn, name);
        out->row_stride = rs;
    } else {
        if (v.ndim != 1 || v.shape[0] != g->N)
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: shape must be (%lld) (packed layout)", fn,
                           name, (long long)g->N);
        if (g->N > 0 && !v.data) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL data", fn, name);
        if (g->N > 1 && v.strides[0] != 1)
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: must be contiguous (packed layout)", fn, name);
        if (!sg_extent_ok(g->N, es))
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: extent overflows", fn, name);
    }
    out->data = v.data;
    out->dtype = v.dtype;
    return SEGRL_OK;
}

segrl_status sg_vec_view(const sg_call *c, segrl_view v, const char *name, int64_t n,
                         unsigned dtypes, int required, const void **out, int32_t *out_dtype) {
    const char *fn = c->fn;
    *out = NULL;
    if (out_dtype) *out_dtype = -1;
    int absent;
    segrl_status st = sg_view_head(c, v, name, dtypes, required, &absent);
    if (st || absent) return st;
    if (v.ndim != 1 || v.shape[0] != n)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: shape must be (%lld)", fn, name, (long long)n);
    if (n > 1 && v.strides[0] != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: must be contiguous", fn, name);
    if (n > 0 && !v.data) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL data", fn, name);
    *out = v.data;
    if (out_dtype) *out_dtype = v.dtype;
    return SEGRL_OK;
}

segrl_status sg_workspace(const sg_call *c, size_t need) {
    if (need == 0) return SEGRL_OK;
    if (!c->exec.workspace || c->exec.workspace_bytes < need)
        return sg_fail(SEGRL_ERR_WORKSPACE,
                       "%s: exec->workspace: %zu bytes given, %zu needed (segrl_workspace_size)",
                       c->fn, c->exec.workspace ? c->exec.workspace_bytes : (size_t)0, need);
    if ((uintptr_t)c->exec.workspace % 16)
        return sg_fail(SEGRL_ERR_WORKSPACE, "%s: exec->workspace: must be 16-byte aligned", c->fn);
    return SEGRL_OK;
}

segrl_status sg_check_finite_param(const char *fn, const char *name, float x) {
    if (!isfinite(x)) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: not finite", fn, name);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// content checks

void sg_token_pos(const sg_geom *g, int64_t flat, int64_t *b, int64_t *t) {
    if (!g->packed) {
        *b = g->T ? flat / g->T : 0;
        *t = g->T ? flat % g->T : 0;
        return;
    }
    /* binary search the sequence holding packed index `flat` */
    int64_t lo = 0, hi = g->B;
    while (hi - lo > 1) {
        int64_t mid = (lo + hi) / 2;
        int64_t o = g->offsets_dtype == SEGRL_DTYPE_I32 ? ((const int32_t *)g->offsets)[mid]
                                                        : ((const int64_t *)g->offsets)[mid];
        if (o <= flat) lo = mid;
        else hi = mid;
    }
    int64_t o = g->offsets_dtype == SEGRL_DTYPE_I32 ? ((const int32_t *)g->offsets)[lo]
                                                    : ((const int64_t *)g->offsets)[lo];
    *b = lo;
    *t = flat - o;
}

static int sg_full(const sg_call *c) { return c->exec.checks == SEGRL_CHECKS_FULL; }
static int sg_on_cuda(const sg_call *c) { return c->g.device.type == SEGRL_DEVICE_CUDA; }

segrl_status sg_check_offsets(const sg_call *c) {
    const sg_geom *g = &c->g;
    if (!g->packed || !sg_full(c)) return SEGRL_OK;
    int64_t bad = -1;
    if (sg_on_cuda(c)) {
#ifdef SEGRL_WITH_CUDA
        segrl_status st = sg_cuda_bad_offset(g->offsets, g->offsets_dtype, g->B, g->N,
                                             c->exec.workspace, c->exec.stream, &bad);
        if (st) return st;
#endif
    } else {
        bad = sg_cpu_bad_offset(g->offsets, g->offsets_dtype, g->B, g->N);
    }
    if (bad >= 0)
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: layout->offsets: entry %lld breaks offsets[0] == 0 <= ... <= "
                       "offsets[B] == N = %lld",
                       c->fn, (long long)bad, (long long)g->N);
    return SEGRL_OK;
}

segrl_status sg_check_index(const sg_call *c, const char *name, const void *idx, int32_t dtype,
                            int64_t n, int64_t G) {
    if (!sg_full(c) || !idx) return SEGRL_OK;
    int64_t bad = -1;
    if (sg_on_cuda(c)) {
#ifdef SEGRL_WITH_CUDA
        segrl_status st =
            sg_cuda_bad_index(idx, dtype, n, G, c->exec.workspace, c->exec.stream, &bad);
        if (st) return st;
#endif
    } else {
        bad = sg_cpu_bad_index(idx, dtype, n, G);
    }
    if (bad >= 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: entry %lld is outside [0, num_groups = %lld)",
                       c->fn, name, (long long)bad, (long long)G);
    return SEGRL_OK;
}

segrl_status sg_check_finite_tok(const sg_call *c, const char *name, sg_tok x, sg_tok mask) {
    if (!sg_full(c) || !x.data) return SEGRL_OK;
    int64_t bad = -1;
    if (sg_on_cuda(c)) {
#ifdef SEGRL_WITH_CUDA
        segrl_status st =
            sg_cuda_bad_token(&c->g, x, mask, c->exec.workspace, c->exec.stream, &bad);
        if (st) return st;
#endif
    } else {
        bad = sg_cpu_bad_token(&c->g, x, mask);
    }
    if (bad < 0) return SEGRL_OK;
    if (sg_on_cuda(c) && c->g.packed) /* the offsets live on the device: report the slot */
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: non-finite value at valid packed token %lld",
                       c->fn, name, (long long)bad);
    int64_t b, t;
    sg_token_pos(&c->g, bad, &b, &t);
    return sg_fail(SEGRL_ERR_INVALID, "%s: %s: non-finite value at valid token %lld of sequence %lld",
                   c->fn, name, (long long)t, (long long)b);
}

segrl_status sg_check_finite_vec(const sg_call *c, const char *name, const float *x, int64_t n) {
    if (!sg_full(c) || !x) return SEGRL_OK;
    int64_t bad = -1;
    if (sg_on_cuda(c)) {
#ifdef SEGRL_WITH_CUDA
        segrl_status st = sg_cuda_bad_float(x, n, c->exec.workspace, c->exec.stream, &bad);
        if (st) return st;
#endif
    } else {
        bad = sg_cpu_bad_float(x, n);
    }
    if (bad >= 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: non-finite value at entry %lld", c->fn, name,
                       (long long)bad);
    return SEGRL_OK;
}
