/* prime.c — PRIME (arXiv 2502.01456): implicit token rewards with the optional max-|return|
 * batch normalization, and the RLOO-per-source returns. */
#include "common.h"

segrl_prime_opts segrl_prime_opts_default(void) {
    segrl_prime_opts o = {0.05f, 0, 1e-6f};
    return o;
}

segrl_status segrl_prime_token_rewards(const segrl_layout *layout, segrl_view logprobs,
                                       segrl_view ref_logprobs, segrl_view mask,
                                       const segrl_prime_opts *opts, const segrl_exec *exec,
                                       segrl_view out) {
    static const char *fn = "segrl_prime_token_rewards";
    sg_call c;
    sg_tok lp, rf, m, o;
    segrl_prime_opts op = opts ? *opts : segrl_prime_opts_default();
    SG_TRY(sg_seg_cpu_layout(fn, layout));
    SG_TRY(sg_seg_cpu_only(fn, "logprobs", logprobs));
    SG_TRY(sg_seg_cpu_only(fn, "ref_logprobs", ref_logprobs));
    SG_TRY(sg_seg_cpu_only(fn, "mask", mask));
    SG_TRY(sg_seg_cpu_only(fn, "out", out));
    SG_TRY(sg_begin(&c, fn, layout, logprobs, "logprobs", exec));
    SG_TRY(sg_tok_view(&c, logprobs, "logprobs", SG_F32, 1, &lp));
    SG_TRY(sg_tok_view(&c, ref_logprobs, "ref_logprobs", SG_F32, 1, &rf));
    SG_TRY(sg_tok_view(&c, mask, "mask", SG_MASK, 0, &m));
    SG_TRY(sg_tok_view(&c, out, "out", SG_F32, 1, &o));
    SG_TRY(sg_check_finite_param(fn, "opts->beta", op.beta));
    if (op.max_return_norm != 0 && op.max_return_norm != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->max_return_norm: %d, must be 0 or 1", fn,
                       op.max_return_norm);
    if (!(op.eps >= 0.0f) || !isfinite(op.eps))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->eps: must be finite and >= 0", fn);
    SG_TRY(sg_check_offsets(&c));
    SG_TRY(sg_check_finite_tok(&c, "logprobs", lp, m));
    SG_TRY(sg_check_finite_tok(&c, "ref_logprobs", rf, m));
    const sg_geom *g = &c.g;
    const float beta = op.beta;
    double maxg = 0;
    for (int64_t b = 0; b < g->B; b++) {
        const int64_t len = sg_seq_len(g, b);
        const float *a = sg_f32(lp, sg_base(g, lp, b)), *r = sg_f32(rf, sg_base(g, rf, b));
        float *w = sg_f32(o, sg_base(g, o, b));
        const int64_t mb = sg_base(g, m, b);
        for (int64_t t = 0; t < len; t++) w[t] = sg_valid(m, mb + t) ? beta * (a[t] - r[t]) : 0.0f;
        if (op.max_return_norm) {
            double G = 0;
            for (int64_t t = len - 1; t >= 0; t--)
                if (sg_valid(m, mb + t)) {
                    G += w[t];
                    if (fabs(G) > maxg) maxg = fabs(G);
                }
        }
    }
    if (op.max_return_norm) {
        const double den = maxg + (double)op.eps;
        if (den > 0)
            for (int64_t b = 0; b < g->B; b++) {
                const int64_t len = sg_seq_len(g, b);
                float *w = sg_f32(o, sg_base(g, o, b));
                for (int64_t t = 0; t < len; t++) w[t] = (float)((double)w[t] / den);
            }
    }
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// RLOO returns

segrl_status segrl_prime_returns_workspace_size(int64_t batch, int64_t num_groups,
                                                size_t *out_bytes) {
    static const char *fn = "segrl_prime_returns_workspace_size";
    if (!out_bytes) return sg_fail(SEGRL_ERR_INVALID, "%s: out_bytes: NULL", fn);
    if (batch < 0 || batch > INT64_MAX / 64)
        return sg_fail(SEGRL_ERR_INVALID, "%s: batch: %lld out of range", fn, (long long)batch);
    if (num_groups < 0 || num_groups > INT64_MAX / 64)
        return sg_fail(SEGRL_ERR_INVALID, "%s: num_groups: %lld out of range", fn,
                       (long long)num_groups);
    /* [mu: B doubles][per group: sum of mu, count] */
    *out_bytes = (size_t)(batch + 2 * num_groups) * sizeof(double);
    return SEGRL_OK;
}

typedef struct sg_psrc {
    sg_tok x, rm;       /* token rewards and reward mask (rm.data NULL: every valid token) */
    const float *score; /* (B) when x is absent */
    float w;
} sg_psrc;

#define SG_MAX_PRIME_SOURCES 64

segrl_status segrl_prime_returns(const segrl_layout *layout, segrl_view mask,
                                 const segrl_prime_source *sources, int32_t n_sources,
                                 segrl_view group_index, int64_t num_groups,
                                 const segrl_exec *exec, segrl_view out_returns,
                                 segrl_view out_rewards) {
    static const char *fn = "segrl_prime_returns";
    sg_call c;
    sg_tok m, oret, orew;
    sg_psrc src[SG_MAX_PRIME_SOURCES];
    char name[64];
    const void *gi, *p;
    int32_t gdt, dt;
    SG_TRY(sg_seg_cpu_layout(fn, layout));
    SG_TRY(sg_seg_cpu_only(fn, "mask", mask));
    if (n_sources < 1 || n_sources > SG_MAX_PRIME_SOURCES)
        return sg_fail(SEGRL_ERR_INVALID, "%s: n_sources: %d, must be in [1, %d]", fn, n_sources,
                       SG_MAX_PRIME_SOURCES);
    if (!sources) return sg_fail(SEGRL_ERR_INVALID, "%s: sources: NULL", fn);
    for (int32_t j = 0; j < n_sources; j++) {
        snprintf(name, sizeof name, "sources[%d].token_rewards", j);
        SG_TRY(sg_seg_cpu_only(fn, name, sources[j].token_rewards));
        snprintf(name, sizeof name, "sources[%d].reward_mask", j);
        SG_TRY(sg_seg_cpu_only(fn, name, sources[j].reward_mask));
        snprintf(name, sizeof name, "sources[%d].scores", j);
        SG_TRY(sg_seg_cpu_only(fn, name, sources[j].scores));
    }
    SG_TRY(sg_seg_cpu_only(fn, "group_index", group_index));
    SG_TRY(sg_seg_cpu_only(fn, "out_returns", out_returns));
    SG_TRY(sg_seg_cpu_only(fn, "out_rewards", out_rewards));
    SG_TRY(sg_begin(&c, fn, layout, out_returns, "out_returns", exec));
    SG_TRY(sg_tok_view(&c, out_returns, "out_returns", SG_F32, 1, &oret));
    SG_TRY(sg_tok_view(&c, out_rewards, "out_rewards", SG_F32, 0, &orew));
    if (orew.data && orew.data == oret.data)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out_rewards: is the same buffer as out_returns", fn);
    SG_TRY(sg_tok_view(&c, mask, "mask", SG_MASK, 0, &m));
    const int64_t B = c.g.B;
    for (int32_t j = 0; j < n_sources; j++) {
        const segrl_prime_source *s = &sources[j];
        sg_psrc *d = &src[j];
        memset(d, 0, sizeof *d);
        snprintf(name, sizeof name, "sources[%d].token_rewards", j);
        SG_TRY(sg_tok_view(&c, s->token_rewards, name, SG_F32, 0, &d->x));
        snprintf(name, sizeof name, "sources[%d].reward_mask", j);
        if (!d->x.data && !segrl_view_is_none(s->reward_mask))
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: only with token_rewards", fn, name);
        SG_TRY(sg_tok_view(&c, s->reward_mask, name, SG_MASK, 0, &d->rm));
        snprintf(name, sizeof name, "sources[%d].scores", j);
        if (d->x.data && !segrl_view_is_none(s->scores))
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: give token_rewards or scores, not both", fn,
                           name);
        SG_TRY(sg_vec_view(&c, s->scores, name, B, SG_F32, !d->x.data, &p, &dt));
        d->score = (const float *)p;
        snprintf(name, sizeof name, "sources[%d].weight", j);
        SG_TRY(sg_check_finite_param(fn, name, s->weight));
        d->w = s->weight;
    }
    for (int32_t j = 0; j < n_sources; j++)
        if (src[j].x.data && (src[j].x.data == oret.data || src[j].x.data == orew.data))
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: %s: is the same buffer as sources[%d].token_rewards", fn,
                           src[j].x.data == oret.data ? "out_returns" : "out_rewards", j);
    SG_TRY(sg_vec_view(&c, group_index, "group_index", B, SG_IDX, 1, &gi, &gdt));
    if (num_groups < 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: num_groups: %lld, must be >= 1", fn,
                       (long long)num_groups);
    size_t need = 0;
    SG_TRY(segrl_prime_returns_workspace_size(B, num_groups, &need));
    SG_TRY(sg_workspace(&c, need));
    SG_TRY(sg_check_offsets(&c));
    SG_TRY(sg_check_index(&c, "group_index", gi, gdt, B, num_groups));
    for (int32_t j = 0; j < n_sources; j++) {
        if (src[j].x.data) {
            snprintf(name, sizeof name, "sources[%d].token_rewards", j);
            SG_TRY(sg_check_finite_tok(&c, name, src[j].x, src[j].rm.data ? src[j].rm : m));
        } else {
            snprintf(name, sizeof name, "sources[%d].scores", j);
            SG_TRY(sg_check_finite_vec(&c, name, src[j].score, B));
        }
    }

    const sg_geom *g = &c.g;
    double *mu = (double *)c.exec.workspace, *gs = mu + B;
    sg_tok r = orew.data ? orew : oret; /* r_t lands here first */
    for (int64_t b = 0; b < B; b++) {
        int64_t n;
        float *row = sg_f32(r, sg_seq(g, r, b, &n));
        if (n > 0) memset(row, 0, (size_t)n * sizeof(float));
    }
    for (int32_t j = 0; j < n_sources; j++) {
        const sg_psrc *d = &src[j];
        memset(gs, 0, (size_t)(2 * num_groups) * sizeof(double));
        /* per-sequence mean over the reward positions, summed per group */
        for (int64_t b = 0; b < B; b++) {
            const int64_t len = sg_seq_len(g, b), mb = sg_base(g, m, b);
            double s = 0;
            int64_t n = 0;
            if (d->x.data) {
                const float *x = sg_f32(d->x, sg_base(g, d->x, b));
                const int64_t rb = sg_base(g, d->rm, b);
                for (int64_t t = 0; t < len; t++)
                    if (sg_valid(m, mb + t) && sg_valid(d->rm, rb + t)) s += x[t], n++;
            } else {
                for (int64_t t = 0; t < len && !n; t++) n = sg_valid(m, mb + t);
                s = n ? d->score[b] : 0;
            }
            mu[b] = n ? s / (double)n : 0.0;
            const int64_t k = sg_ix(gi, gdt, b);
            gs[2 * k] += mu[b];
            gs[2 * k + 1] += 1;
        }
        for (int64_t b = 0; b < B; b++) {
            const int64_t k = sg_ix(gi, gdt, b);
            const double n = gs[2 * k + 1];
            if (n < 2) continue;
            const double scale = n / (n - 1), base = gs[2 * k] / (n - 1), w = d->w;
            const int64_t len = sg_seq_len(g, b), mb = sg_base(g, m, b);
            float *row = sg_f32(r, sg_base(g, r, b));
            if (d->x.data) {
                const float *x = sg_f32(d->x, sg_base(g, d->x, b));
                const int64_t rb = sg_base(g, d->rm, b);
                for (int64_t t = 0; t < len; t++)
                    if (sg_valid(m, mb + t) && sg_valid(d->rm, rb + t))
                        row[t] += (float)(w * ((double)x[t] * scale - base));
            } else {
                for (int64_t t = len - 1; t >= 0; t--)
                    if (sg_valid(m, mb + t)) {
                        row[t] += (float)(w * ((double)d->score[b] * scale - base));
                        break;
                    }
            }
        }
    }
    /* G_t = sum of r over the valid s >= t (every slot) */
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = sg_seq_len(g, b), mb = sg_base(g, m, b);
        const float *row = sg_f32(r, sg_base(g, r, b));
        float *out = sg_f32(oret, sg_base(g, oret, b));
        double G = 0;
        for (int64_t t = len - 1; t >= 0; t--) {
            if (sg_valid(m, mb + t)) G += row[t];
            out[t] = (float)G;
        }
    }
    return SEGRL_OK;
}
