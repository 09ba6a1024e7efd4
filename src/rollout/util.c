/* util.c — owned arrays for the rollout drivers, the packed batch, and the adaptive Monte Carlo
 * allocation rule (segrl_mc_allocate). */
#include "rollout_impl.h"

// ----------------------------------------------------------------------------
// memory

void *ro_zalloc(int64_t n, size_t elem) {
    if (n < 0 || elem == 0) return NULL;
    if (n == 0) n = 1;
    if ((uint64_t)n > SIZE_MAX / elem) return NULL;
    void *p = segrl_malloc((size_t)n * elem);
    if (p) memset(p, 0, (size_t)n * elem);
    return p;
}

segrl_status ro_reserve(ro_vec *v, int64_t need, size_t elem, const char *fn) {
    if (need <= v->cap) return SEGRL_OK;
    int64_t cap = v->cap ? v->cap : 16;
    while (cap < need) cap = cap > INT64_MAX / 2 ? need : cap * 2;
    if ((uint64_t)cap > SIZE_MAX / elem)
        return sg_fail(SEGRL_ERR_ALLOC, "%s: %lld elements do not fit in memory", fn,
                       (long long)cap);
    void *p = segrl_realloc(v->p, (size_t)cap * elem);
    if (!p) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory (%lld elements)", fn, (long long)cap);
    v->p = p;
    v->cap = cap;
    return SEGRL_OK;
}

void ro_vec_free(ro_vec *v) {
    segrl_free(v->p);
    memset(v, 0, sizeof *v);
}

// ----------------------------------------------------------------------------
// batch

void ro_batch_free(ro_batch *b) {
    void *ps[] = {b->offsets, b->tokens, b->logprobs, b->mask, b->ctx, b->prompt, b->question,
                  b->rewards, b->finished, b->adv, b->pmask, b->seg_off, b->seg_start,
                  b->seg_end, b->seg_prefix, b->seg_mc, b->seg_val, b->seg_adv};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) segrl_free(ps[i]);
    memset(b, 0, sizeof *b);
}

segrl_status ro_batch_alloc(ro_batch *b, int64_t B, int64_t N, const char *fn) {
    memset(b, 0, sizeof *b);
    b->B = B;
    b->N = N;
    b->offsets = ro_zalloc(B + 1, sizeof(int64_t));
    b->tokens = ro_zalloc(N, sizeof(int32_t));
    b->logprobs = ro_zalloc(N, sizeof(float));
    b->mask = ro_zalloc(N, 1);
    b->ctx = ro_zalloc(B, sizeof(int64_t));
    b->prompt = ro_zalloc(B, sizeof(int64_t));
    b->question = ro_zalloc(B, sizeof(int64_t));
    b->rewards = ro_zalloc(B, sizeof(float));
    b->finished = ro_zalloc(B, 1);
    if (!b->offsets || !b->tokens || !b->logprobs || !b->mask || !b->ctx || !b->prompt ||
        !b->question || !b->rewards || !b->finished) {
        ro_batch_free(b);
        return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory (batch of %lld sequences, %lld tokens)",
                       fn, (long long)B, (long long)N);
    }
    return SEGRL_OK;
}

void ro_batch_view(const ro_batch *b, segrl_rollout_batch *o) {
    memset(o, 0, sizeof *o);
    o->num_seqs = b->B;
    o->num_tokens = b->N;
    o->num_groups = b->G;
    o->offsets = b->offsets;
    o->tokens = b->tokens;
    o->logprobs = b->logprobs;
    o->mask = b->mask;
    o->context_len = b->ctx;
    o->prompt = b->prompt;
    o->question = b->question;
    o->rewards = b->rewards;
    o->finished = b->finished;
    o->advantages = b->adv;
    o->prob_mask = b->pmask;
    if (b->seg_off) {
        o->num_segments = b->S;
        o->seg_offsets = b->seg_off;
        o->seg_start = b->seg_start;
        o->seg_end = b->seg_end;
        o->seg_values = b->seg_val;
        o->seg_advantages = b->seg_adv;
        o->seg_prefix = b->seg_prefix;
        o->seg_mc_count = b->seg_mc;
    }
}

// ----------------------------------------------------------------------------
// adaptive Monte Carlo allocation

/* Wilson score interval (Wilson 1927) for a Bernoulli mean p from n draws:
 *   center = (p + z^2 / 2n) / (1 + z^2 / n)
 *   half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))
 * The width 2 * half stays positive at p = 0 or 1 (z^2 / (n + z^2)), so a prefix whose first
 * draws all agree still gets more when every other prefix is already tight. */
double ro_wilson_width(double p, double n, double z) {
    if (p < 0) p = 0;
    if (p > 1) p = 1;
    double z2 = z * z;
    return 2.0 * z / (1.0 + z2 / n) * sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n));
}

/* What one more rollout at a prefix is worth: the drop of the squared Wilson width,
 *   g(p, n) = w(p, n)^2 - w(p, n + 1)^2.
 * w^2 is (up to z^2) the variance of the estimate, p (1 - p) / n, kept positive at p = 0 or 1 by
 * the z^2 terms; giving each rollout to the largest drop minimizes the sum of the variances
 * greedily (the marginal rule behind Neyman allocation, n_i proportional to sigma_i). Giving it to
 * the widest interval instead (equalizing the widths, n_i proportional to sigma_i^2) measured
 * worse than fixed K; see docs/rollout.md. */
static double ro_gain(double p, double n, double z, int32_t rule) {
    double w0 = ro_wilson_width(p, n, z);
    if (rule == SEGRL_MC_RULE_WIDEST) return w0;
    double w1 = ro_wilson_width(p, n + 1, z);
    return w0 * w0 - w1 * w1;
}

segrl_status segrl_mc_allocate(const float *mean, const int64_t *count, int64_t n, int64_t batch,
                               float z, int64_t *out_add) {
    static const char fn[] = "segrl_mc_allocate";
    if (n < 1) return sg_fail(SEGRL_ERR_INVALID, "%s: n: must be >= 1, got %lld", fn, (long long)n);
    if (!mean) return sg_fail(SEGRL_ERR_INVALID, "%s: mean: is NULL", fn);
    if (!count) return sg_fail(SEGRL_ERR_INVALID, "%s: count: is NULL", fn);
    if (!out_add) return sg_fail(SEGRL_ERR_INVALID, "%s: out_add: is NULL", fn);
    if (batch < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: batch: must be >= 0, got %lld", fn, (long long)batch);
    if (!(z > 0) || !isfinite(z))
        return sg_fail(SEGRL_ERR_INVALID, "%s: z: must be finite and > 0, got %g", fn, (double)z);
    for (int64_t i = 0; i < n; i++) {
        if (count[i] < 1)
            return sg_fail(SEGRL_ERR_INVALID, "%s: count: element %lld is %lld, must be >= 1", fn,
                           (long long)i, (long long)count[i]);
        if (!isfinite(mean[i]))
            return sg_fail(SEGRL_ERR_INVALID, "%s: mean: element %lld is not finite", fn,
                           (long long)i);
    }
    return ro_mc_allocate(mean, count, n, batch, z, SEGRL_MC_RULE_VARIANCE, out_add, fn);
}

segrl_status ro_mc_allocate(const float *mean, const int64_t *count, int64_t n, int64_t batch,
                            float z, int32_t rule, int64_t *out_add, const char *fn) {
    int64_t *add = ro_zalloc(n, sizeof(int64_t));
    double *w = ro_zalloc(n, sizeof(double));
    if (!add || !w) {
        segrl_free(add);
        segrl_free(w);
        return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory (n = %lld)", fn, (long long)n);
    }
    for (int64_t i = 0; i < n; i++) w[i] = ro_gain(mean[i], (double)count[i], z, rule);
    /* one rollout at a time to the largest gain; the mean stays, the count grows. A linear
     * scan per rollout: batch * n, small next to the generation it plans. */
    for (int64_t k = 0; k < batch; k++) {
        int64_t best = 0;
        for (int64_t i = 1; i < n; i++)
            if (w[i] > w[best]) best = i;
        add[best]++;
        w[best] = ro_gain(mean[best], (double)(count[best] + add[best]), z, rule);
    }
    memcpy(out_add, add, (size_t)n * sizeof(int64_t));
    segrl_free(add);
    segrl_free(w);
    return SEGRL_OK;
}
