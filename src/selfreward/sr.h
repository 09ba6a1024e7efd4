/* sr.h — private to src/selfreward/: checks of the host vectors the self-reward calls take. */
#ifndef SEGRL_SELFREWARD_SR_H
#define SEGRL_SELFREWARD_SR_H

#include "../check.h"

/* A contiguous 1-D CPU vector of n elements (n < 0: any length, returned in *out_n) with a dtype
 * in `dtypes`; required == 0 accepts none (*out = NULL). */
static inline segrl_status sr_vec(const char *fn, segrl_view v, const char *name, int64_t n,
                                  unsigned dtypes, int required, const void **out,
                                  int64_t *out_n) {
    *out = NULL;
    if (segrl_view_is_none(v)) {
        if (required) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: required", fn, name);
        return SEGRL_OK;
    }
    if (v.device.type != SEGRL_DEVICE_CPU)
        return sg_fail(SEGRL_ERR_UNSUPPORTED,
                       "%s: %s: CUDA views are not supported by this op yet (CPU only)", fn, name);
    if (v.dtype < 0 || v.dtype > 31 || !(dtypes & (1u << v.dtype)))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: dtype %s not accepted", fn, name,
                       segrl_dtype_name((segrl_dtype)v.dtype));
    if (v.ndim != 1 || (n >= 0 && v.shape[0] != n))
        return n >= 0 ? sg_fail(SEGRL_ERR_INVALID, "%s: %s: shape must be (%lld)", fn, name,
                                (long long)n)
                      : sg_fail(SEGRL_ERR_INVALID, "%s: %s: must be 1-D", fn, name);
    if (v.shape[0] > 1 && v.strides[0] != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: must be contiguous", fn, name);
    if (v.shape[0] > 0 && !v.data) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL data", fn, name);
    if (out_n) *out_n = v.shape[0];
    *out = v.data;
    return SEGRL_OK;
}

/* element i of an i32/i64 vector */
static inline int64_t sr_idx(const void *p, int32_t dtype, int64_t i) {
    return dtype == SEGRL_DTYPE_I32 ? (int64_t)((const int32_t *)p)[i] : ((const int64_t *)p)[i];
}

#endif /* SEGRL_SELFREWARD_SR_H */
