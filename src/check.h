/* check.h — argument validation shared by every public entry point. Each function returns
 * SEGRL_OK or a status with a message "<fn>: <argument>: <what is wrong>". */
#ifndef SEGRL_CHECK_H
#define SEGRL_CHECK_H

#include "internal.h"

#include <stdio.h>
#include <string.h>

/* dtype sets, as bit masks of 1u << segrl_dtype */
#define SG_F32 (1u << SEGRL_DTYPE_F32)
#define SG_IDX ((1u << SEGRL_DTYPE_I32) | (1u << SEGRL_DTYPE_I64))
#define SG_MASK ((1u << SEGRL_DTYPE_U8) | (1u << SEGRL_DTYPE_I32) | (1u << SEGRL_DTYPE_I64) | SG_F32)

/* Returns from the calling function when `expr` is not SEGRL_OK. */
#define SG_TRY(expr)                                                                              \
    do {                                                                                          \
        segrl_status sg_st_ = (expr);                                                             \
        if (sg_st_ != SEGRL_OK) return sg_st_;                                                    \
    } while (0)

/* One public call being validated. */
typedef struct sg_call {
    const char *fn;
    sg_geom g;
    segrl_exec exec; /* resolved: never NULL */
} sg_call;

/* Starts validating a call: resets *c, copies *exec (NULL: defaults), checks exec->checks. */
segrl_status sg_call_start(sg_call *c, const char *fn, const segrl_exec *exec);

/* Resolves the geometry from `layout` and the reference token tensor `ref` (named `ref_name`):
 * checks the device is usable, the layout's offsets, and ref's shape and strides. */
segrl_status sg_begin(sg_call *c, const char *fn, const segrl_layout *layout, segrl_view ref,
                      const char *ref_name, const segrl_exec *exec);

/* A view's device can be used: CPU always; CUDA when built with CUDA and the device exists (made
 * current); otherwise SEGRL_ERR_NO_DEVICE naming `name`. */
segrl_status sg_device_usable(const char *fn, segrl_device d, const char *name);

/* A scalar parameter (gamma, lambda, a threshold...) must be finite. */
segrl_status sg_check_finite_param(const char *fn, const char *name, float x);

/* A token tensor with the call's geometry. required == 0 accepts none (out->data = NULL). */
segrl_status sg_tok_view(const sg_call *c, segrl_view v, const char *name, unsigned dtypes,
                         int required, sg_tok *out);

/* A contiguous 1-D vector of n elements on the call's device. */
segrl_status sg_vec_view(const sg_call *c, segrl_view v, const char *name, int64_t n,
                         unsigned dtypes, int required, const void **out, int32_t *out_dtype);

/* Workspace of at least `need` bytes on the call's device (need == 0: none required). */
segrl_status sg_workspace(const sg_call *c, size_t need);

/* Content checks (skipped under SEGRL_CHECKS_SHAPES). */
segrl_status sg_check_offsets(const sg_call *c);
segrl_status sg_check_index(const sg_call *c, const char *name, const void *idx, int32_t dtype,
                            int64_t n, int64_t G);
segrl_status sg_check_finite_tok(const sg_call *c, const char *name, sg_tok x, sg_tok mask);
segrl_status sg_check_finite_vec(const sg_call *c, const char *name, const float *x, int64_t n);

/* Index of token t of sequence b (padded: b * T + t); used in messages. */
void sg_token_pos(const sg_geom *g, int64_t flat, int64_t *b, int64_t *t);

#endif /* SEGRL_CHECK_H */
