/* softmax_row.h — private to src/loss: the online softmax over one row of logits, a chunk at a
 * time, shared by the fused log-probs (logprob.c) and the fused linear path (linear.c).
 *
 * State of a row after some chunks, with z the logits already scaled by 1 / temperature and M the
 * largest z seen so far:
 *   s = sum e^(z - M),   t = sum e^(z - M) (z - M),   q = sum e^(2 (z - M))
 * A chunk with a larger maximum M' rescales the state first (a = e^(M - M'), d = M' - M):
 *   s <- a s,   t <- a (t - d s),   q <- a^2 q
 * and at the end: lse = M + log s,  entropy = log s - t / s,  sum p^2 = q / s^2.
 * (p_j = e^(z_j - M) / s, so -sum p log p = log s - t / s.) */
#ifndef SEGRL_LOSS_SOFTMAX_ROW_H
#define SEGRL_LOSS_SOFTMAX_ROW_H

#include <stdint.h>

typedef struct sg_srow {
    float M;     /* running maximum of z (-inf before the first finite value) */
    double s, t, q;
    int bad;     /* a NaN or +Inf was seen */
} sg_srow;

static inline void sg_srow_init(sg_srow *r) {
    r->M = -__builtin_inff();
    r->s = r->t = r->q = 0.0;
    r->bad = 0;
}

/* Adds x[0..n) (f32, scaled by `scale` = 1 / temperature) to the row state. Single pass over x
 * from memory (a chunk's maximum, then its exponentials, while it sits in L1). */
void sg_srow_add_f32(sg_srow *r, const float *x, int64_t n, float scale);

/* lse, entropy, sum p^2 of the finished row (lse = -inf when every z was -inf) */
void sg_srow_finish(const sg_srow *r, float *lse, float *ent, float *sp2);

/* d[j] = scale * (g (delta_jy - p_j) - h p_j (log p_j + H)) for z_j = scale * x[j], j in [0, n),
 * p_j = exp(z_j - lse); y is relative to x (outside [0, n): no delta term). */
void sg_srow_grad_f32(const float *x, int64_t n, float scale, float lse, float H, float g,
                      float h, int64_t y, float *d);

/* f32 <-> storage dtype for a contiguous run */
void sg_load_f32(const void *p, int32_t dt, int64_t n, float *out);
void sg_store_f32(void *p, int32_t dt, int64_t n, const float *in);

#endif /* SEGRL_LOSS_SOFTMAX_ROW_H */
