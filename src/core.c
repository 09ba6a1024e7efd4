/* core.c — version, status strings, the thread-local error message, views, layouts,
 * allocator hooks and the workspace size query. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// version

const char *segrl_version(void) { return SEGRL_VERSION_STRING; }
int segrl_version_number(void) { return SEGRL_VERSION_NUMBER; }

// ----------------------------------------------------------------------------
// status and errors

const char *segrl_status_str(segrl_status status) {
    switch (status) {
    case SEGRL_OK: return "ok";
    case SEGRL_ERR_INVALID: return "invalid argument";
    case SEGRL_ERR_NO_DEVICE: return "no CUDA device";
    case SEGRL_ERR_CUDA: return "CUDA error";
    case SEGRL_ERR_ALLOC: return "out of memory";
    case SEGRL_ERR_UNSUPPORTED: return "unsupported";
    case SEGRL_ERR_WORKSPACE: return "workspace too small";
    case SEGRL_ERR_COMM: return "communication failed";
    }
    return "unknown status";
}

static _Thread_local char sg_error_buf[512];

const char *segrl_last_error(void) { return sg_error_buf; }
void segrl_clear_error(void) { sg_error_buf[0] = '\0'; }

segrl_status sg_fail(segrl_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sg_error_buf, sizeof sg_error_buf, fmt, ap);
    va_end(ap);
    return status;
}

segrl_status segrl_set_error(segrl_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sg_error_buf, sizeof sg_error_buf, fmt, ap);
    va_end(ap);
    return status;
}

// ----------------------------------------------------------------------------
// dtypes and devices

size_t segrl_dtype_size(segrl_dtype dtype) {
    switch (dtype) {
    case SEGRL_DTYPE_F32: return 4;
    case SEGRL_DTYPE_F16: return 2;
    case SEGRL_DTYPE_BF16: return 2;
    case SEGRL_DTYPE_I32: return 4;
    case SEGRL_DTYPE_I64: return 8;
    case SEGRL_DTYPE_U8: return 1;
    case SEGRL_DTYPE_F64: return 8;
    }
    return 0;
}

const char *segrl_dtype_name(segrl_dtype dtype) {
    switch (dtype) {
    case SEGRL_DTYPE_F32: return "f32";
    case SEGRL_DTYPE_F16: return "f16";
    case SEGRL_DTYPE_BF16: return "bf16";
    case SEGRL_DTYPE_I32: return "i32";
    case SEGRL_DTYPE_I64: return "i64";
    case SEGRL_DTYPE_U8: return "u8";
    case SEGRL_DTYPE_F64: return "f64";
    }
    return "?";
}

segrl_device segrl_cpu(void) { return (segrl_device){SEGRL_DEVICE_CPU, 0}; }
segrl_device segrl_cuda(int32_t index) { return (segrl_device){SEGRL_DEVICE_CUDA, index}; }

int segrl_built_with_cuda(void) {
#ifdef SEGRL_WITH_CUDA
    return 1;
#else
    return 0;
#endif
}

int segrl_cuda_device_count(void) {
#ifdef SEGRL_WITH_CUDA
    return sg_cuda_device_count();
#else
    return 0;
#endif
}

// ----------------------------------------------------------------------------
// views and layouts

segrl_view segrl_view_none(void) {
    segrl_view v;
    memset(&v, 0, sizeof v);
    return v;
}

int segrl_view_is_none(segrl_view v) { return v.data == NULL && v.ndim == 0; }

segrl_view segrl_view_nd(void *data, segrl_dtype dtype, segrl_device device, int32_t ndim,
                         const int64_t *shape, const int64_t *strides) {
    segrl_view v = segrl_view_none();
    v.data = data;
    v.dtype = dtype;
    v.device = device;
    if (ndim < 0 || ndim > SEGRL_MAX_DIMS) {
        v.ndim = -1; /* rejected by every call: "ndim out of range" */
        return v;
    }
    v.ndim = ndim;
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        v.shape[i] = shape[i];
        v.strides[i] = strides ? strides[i] : stride;
        /* saturate instead of overflowing: such a view is then rejected by the extent checks */
        if (shape[i] > 0 && stride > INT64_MAX / shape[i]) stride = INT64_MAX;
        else if (shape[i] > 0) stride *= shape[i];
    }
    return v;
}

segrl_view segrl_view_1d(void *data, segrl_dtype dtype, segrl_device device, int64_t n) {
    return segrl_view_nd(data, dtype, device, 1, &n, NULL);
}

segrl_view segrl_view_2d(void *data, segrl_dtype dtype, segrl_device device, int64_t rows,
                         int64_t cols) {
    int64_t shape[2] = {rows, cols};
    return segrl_view_nd(data, dtype, device, 2, shape, NULL);
}

segrl_layout segrl_layout_padded(void) {
    segrl_layout l;
    l.offsets = segrl_view_none();
    return l;
}

segrl_layout segrl_layout_packed(segrl_view offsets) {
    segrl_layout l;
    l.offsets = offsets;
    return l;
}

// ----------------------------------------------------------------------------
// allocator hooks

static void *sg_default_malloc(size_t n, void *u) { (void)u; return malloc(n); }
static void *sg_default_realloc(void *p, size_t n, void *u) { (void)u; return realloc(p, n); }
static void sg_default_free(void *p, void *u) { (void)u; free(p); }

static segrl_allocator sg_alloc = {sg_default_malloc, sg_default_realloc, sg_default_free, NULL};

void segrl_set_allocator(const segrl_allocator *a) {
    sg_alloc.malloc_fn = a && a->malloc_fn ? a->malloc_fn : sg_default_malloc;
    sg_alloc.realloc_fn = a && a->realloc_fn ? a->realloc_fn : sg_default_realloc;
    sg_alloc.free_fn = a && a->free_fn ? a->free_fn : sg_default_free;
    sg_alloc.user = a ? a->user : NULL;
}

void *segrl_malloc(size_t size) { return sg_alloc.malloc_fn(size, sg_alloc.user); }
void *segrl_realloc(void *p, size_t size) { return sg_alloc.realloc_fn(p, size, sg_alloc.user); }
void segrl_free(void *p) {
    if (p) sg_alloc.free_fn(p, sg_alloc.user);
}

// ----------------------------------------------------------------------------
// workspace

size_t sg_outcome_ws_size(int64_t B, int64_t G) {
    return SG_WS_CHECK_BYTES + 3 * sg_align((size_t)B * sizeof(double)) +
           sg_align(8 * sizeof(double)) + sg_align((size_t)G * SG_GROUP_STATS * sizeof(double));
}

sg_outcome_ws sg_outcome_ws_carve(void *ws, int64_t B, int64_t G) {
    (void)G;
    char *p = (char *)ws;
    sg_outcome_ws w;
    size_t vb = sg_align((size_t)B * sizeof(double));
    w.check = p;
    p += SG_WS_CHECK_BYTES;
    w.R = (double *)p;
    p += vb;
    w.len = (double *)p;
    p += vb;
    w.A = (double *)p;
    p += vb;
    w.batch = (double *)p;
    p += sg_align(8 * sizeof(double));
    w.group = (double *)p;
    return w;
}

size_t sg_whiten_ws_size(int64_t G) {
    return SG_WS_CHECK_BYTES + sg_align((size_t)(G + 1) * SG_GROUP_STATS * sizeof(double));
}

segrl_status segrl_workspace_size(segrl_op op, segrl_device device, int64_t batch,
                                  int64_t tokens, int64_t num_groups, size_t *out_bytes) {
    static const char *fn = "segrl_workspace_size";
    if (!out_bytes) return sg_fail(SEGRL_ERR_INVALID, "%s: out_bytes: NULL", fn);
    if (device.type != SEGRL_DEVICE_CPU && device.type != SEGRL_DEVICE_CUDA)
        return sg_fail(SEGRL_ERR_INVALID, "%s: device: unknown device type %d", fn, device.type);
    /* 2^40 sequences or groups would need terabytes of workspace: reject before overflowing */
    const int64_t lim = (int64_t)1 << 40;
    if (batch < 0 || batch > lim)
        return sg_fail(SEGRL_ERR_INVALID, "%s: batch: %lld out of range", fn, (long long)batch);
    if (tokens < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: tokens: %lld < 0", fn, (long long)tokens);
    if (num_groups < 0 || num_groups > lim)
        return sg_fail(SEGRL_ERR_INVALID, "%s: num_groups: %lld out of range", fn,
                       (long long)num_groups);
    int cuda = device.type == SEGRL_DEVICE_CUDA;
    size_t n;
    switch (op) {
    case SEGRL_OP_GAE:
    case SEGRL_OP_DISCOUNTED_RETURNS: n = cuda ? SG_WS_CHECK_BYTES : 0; break;
    case SEGRL_OP_WHITEN: n = sg_whiten_ws_size(num_groups > 0 ? num_groups : 1); break;
    case SEGRL_OP_GRPO:
    case SEGRL_OP_RLOO:
    case SEGRL_OP_REINFORCE_PP_BASELINE:
    case SEGRL_OP_REMAX:
    case SEGRL_OP_OPO:
    case SEGRL_OP_GRPO_PASSK:
    case SEGRL_OP_GPG: n = sg_outcome_ws_size(batch, num_groups > 0 ? num_groups : 1); break;
    default: return sg_fail(SEGRL_ERR_INVALID, "%s: op: unknown op %d", fn, (int)op);
    }
    *out_bytes = n;
    return SEGRL_OK;
}
