/* lp.h — private to src/loss: validation shared by the fused log-prob calls (logprob.c) and the
 * fused linear calls (linear.c). */
#ifndef SEGRL_LOSS_LP_H
#define SEGRL_LOSS_LP_H

#include "../check.h"
#include "loss_impl.h"

#define SG_FLOAT ((1u << SEGRL_DTYPE_F32) | (1u << SEGRL_DTYPE_BF16) | (1u << SEGRL_DTYPE_F16))

/* The validated per-row outputs (f32 (N) each, NULL when none). */
typedef struct sg_lp_outs {
    float *logp, *ent, *lse, *pt, *sp2;
} sg_lp_outs;

/* opts (NULL: defaults) checked and copied */
segrl_status sg_lp_opts(const char *fn, const segrl_logprob_opts *opts, segrl_logprob_opts *o);

/* A 2-D (rows, cols) matrix view with unit column stride on the call's device; name in messages.
 * rows < 0: any number of rows (taken from the view). */
segrl_status sg_lp_mat(const sg_call *c, segrl_view v, const char *name, unsigned dtypes,
                       int64_t rows, int64_t cols, sg_mat *out);

/* out->logp required, the rest optional; each f32 (N), contiguous */
segrl_status sg_lp_outputs(const sg_call *c, const segrl_logprob_out *out, int64_t N,
                           sg_lp_outs *o);

/* The first row whose target is >= V (CPU data), or -1. */
int64_t sg_lp_bad_target(const void *tgt, int32_t dt, int64_t N, int64_t V);

/* "row i: NaN/+Inf at column j" / "every logit is -Inf" message for a bad row of CPU logits
 * (f32/bf16/f16 row x of V entries). */
segrl_status sg_lp_bad_row(const char *fn, const char *name, const void *x, int32_t dt, int64_t V,
                           int64_t row);

/* Copies the staged per-row results (5 arrays of N floats: logp, ent, lse, pt, sp2) to the
 * outputs that are present (CPU). */
void sg_lp_commit(const float *stage, int64_t N, const sg_lp_outs *o);

#endif /* SEGRL_LOSS_LP_H */
