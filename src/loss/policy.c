/* policy.c — the policy loss: argument validation, the CPU reference (forward and backward) and
 * the dispatch to kernels/loss.cu. Formulas: include/segrl/loss.h, docs/losses.md.
 *
 * The CPU reference walks the batch twice:
 *   1. per sequence: n_b (valid tokens) and the sum of logp - old_logp (GSPO), plus the content
 *      checks, so that nothing is written before every input is known to be good;
 *   2. per token: the terms of sg_pl_token (loss_impl.h), weighted by w_t of the aggregation,
 *      summed in f64 (forward) or written as gradients (backward). */
#include "../check.h"
#include "loss_impl.h"

#include <float.h>

#define SG_FLOAT ((1u << SEGRL_DTYPE_F32) | (1u << SEGRL_DTYPE_BF16) | (1u << SEGRL_DTYPE_F16))

segrl_policy_loss_opts segrl_policy_loss_opts_default(void) {
    segrl_policy_loss_opts o;
    memset(&o, 0, sizeof o);
    o.mode = SEGRL_PG_PPO;
    o.clip_low = 0.2f;
    o.clip_high = 0.2f;
    o.clip_c = 0.0f;
    o.log_ratio_clamp = 20.0f;
    o.kl_type = SEGRL_KL_NONE;
    o.agg = SEGRL_AGG_TOKEN_MEAN;
    return o;
}

segrl_status segrl_policy_loss_workspace_size(segrl_device device, int64_t batch, int64_t tokens,
                                              size_t *out_bytes) {
    const char *fn = "segrl_policy_loss_workspace_size";
    if (!out_bytes) return sg_fail(SEGRL_ERR_INVALID, "%s: out_bytes: NULL", fn);
    if (device.type != SEGRL_DEVICE_CPU && device.type != SEGRL_DEVICE_CUDA)
        return sg_fail(SEGRL_ERR_INVALID, "%s: device: unknown device type %d", fn, device.type);
    if (batch < 0 || batch > ((int64_t)1 << 40))
        return sg_fail(SEGRL_ERR_INVALID, "%s: batch: %lld out of range", fn, (long long)batch);
    if (tokens < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: tokens: %lld out of range", fn, (long long)tokens);
    *out_bytes = sg_pl_ws_size(batch);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// validation

/* the names of the token inputs, in sg_pl_args order (messages, CUDA's bad_arg) */
static const char *const sg_pl_names[] = {"in->logp",   "in->old_logp", "in->advantages",
                                          "in->ref_logp", "in->entropy", "in->values",
                                          "in->old_values", "in->returns"};

static segrl_status sg_pl_opts_check(const char *fn, const segrl_policy_loss_opts *o) {
    if (o->mode < SEGRL_PG_PPO || o->mode > SEGRL_PG_REINFORCE)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->mode: %d is not a segrl_pg_mode", fn, o->mode);
    if (!(o->clip_low >= 0.0f && o->clip_low < FLT_MAX))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->clip_low: must be finite and >= 0", fn);
    if (!(o->clip_high >= 0.0f && o->clip_high < FLT_MAX))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->clip_high: must be finite and >= 0", fn);
    if (!(o->clip_c == 0.0f || (o->clip_c > 1.0f && o->clip_c < FLT_MAX)))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->clip_c: must be 0 (off) or finite and > 1", fn);
    if (!(o->log_ratio_clamp > 0.0f && o->log_ratio_clamp < FLT_MAX))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->log_ratio_clamp: must be finite and > 0", fn);
    if (o->kl_type < SEGRL_KL_NONE || o->kl_type > SEGRL_KL_K3)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->kl_type: %d is not a segrl_kl_estimator", fn,
                       o->kl_type);
    SG_TRY(sg_check_finite_param(fn, "opts->kl_coef", o->kl_coef));
    SG_TRY(sg_check_finite_param(fn, "opts->entropy_coef", o->entropy_coef));
    SG_TRY(sg_check_finite_param(fn, "opts->value_coef", o->value_coef));
    SG_TRY(sg_check_finite_param(fn, "opts->value_clip", o->value_clip));
    if (o->agg < SEGRL_AGG_TOKEN_MEAN || o->agg > SEGRL_AGG_SEQ_MEAN_TOKEN_SUM_NORM)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->agg: %d is not a segrl_loss_agg", fn, o->agg);
    if (!(o->normalizer >= 0.0 && o->normalizer < DBL_MAX))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->normalizer: must be finite and >= 0", fn);
    return SEGRL_OK;
}

static segrl_status sg_pl_validate(sg_call *c, const char *fn, const segrl_layout *layout,
                                   const segrl_policy_loss_inputs *in,
                                   const segrl_policy_loss_opts *opts, const segrl_exec *exec,
                                   sg_pl_args *a) {
    memset(a, 0, sizeof *a);
    if (!in) return sg_fail(SEGRL_ERR_INVALID, "%s: in: NULL", fn);
    a->o = opts ? *opts : segrl_policy_loss_opts_default();
    SG_TRY(sg_call_start(c, fn, exec));
    SG_TRY(sg_pl_opts_check(fn, &a->o));
    SG_TRY(sg_begin(c, fn, layout, in->logp, "in->logp", exec));
    const segrl_policy_loss_opts *o = &a->o;
    const int ratio = o->mode != SEGRL_PG_REINFORCE;
    a->kl_on = o->kl_type != SEGRL_KL_NONE && o->kl_coef != 0.0f;
    a->val_on = o->value_coef != 0.0f;
    SG_TRY(sg_tok_view(c, in->logp, "in->logp", SG_FLOAT, 1, &a->logp));
    SG_TRY(sg_tok_view(c, in->old_logp, "in->old_logp", SG_FLOAT, ratio, &a->old));
    SG_TRY(sg_tok_view(c, in->advantages, "in->advantages", SG_FLOAT, 1, &a->adv));
    SG_TRY(sg_tok_view(c, in->ref_logp, "in->ref_logp", SG_FLOAT, a->kl_on, &a->ref));
    SG_TRY(sg_tok_view(c, in->entropy, "in->entropy", SG_FLOAT, o->entropy_coef != 0.0f, &a->ent));
    SG_TRY(sg_tok_view(c, in->values, "in->values", SG_FLOAT, a->val_on, &a->val));
    SG_TRY(sg_tok_view(c, in->old_values, "in->old_values", SG_FLOAT,
                       a->val_on && o->value_clip > 0.0f, &a->oldv));
    SG_TRY(sg_tok_view(c, in->returns, "in->returns", SG_FLOAT, a->val_on, &a->ret));
    SG_TRY(sg_tok_view(c, in->mask, "in->mask", SG_MASK, 0, &a->mask));
    SG_TRY(sg_tok_view(c, in->prob_mask, "in->prob_mask", SG_MASK, 0, &a->pmask));
    if (!ratio) a->old.data = NULL;
    if (!a->kl_on) a->ref.data = NULL;
    if (!a->val_on) a->val.data = a->oldv.data = a->ret.data = NULL;
    if (a->val_on && o->value_clip <= 0.0f) a->oldv.data = NULL;
    SG_TRY(sg_workspace(c, sg_pl_ws_size(c->g.B)));
    SG_TRY(sg_check_offsets(c));
    return SEGRL_OK;
}

/* a one-element f32 view on the call's device (out_loss, grad_loss) */
static segrl_status sg_scalar_view(const sg_call *c, segrl_view v, const char *name) {
    if (v.data == NULL)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL data", c->fn, name);
    if (v.dtype != SEGRL_DTYPE_F32)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: dtype %s, f32 required", c->fn, name,
                       segrl_dtype_name((segrl_dtype)v.dtype));
    int64_t n = 1;
    if (v.ndim < 0 || v.ndim > SEGRL_MAX_DIMS)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: ndim %d out of range", c->fn, name, v.ndim);
    for (int i = 0; i < v.ndim; i++) n *= v.shape[i];
    if (n != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: must hold exactly one element", c->fn, name);
    if (v.device.type != c->g.device.type ||
        (v.device.type == SEGRL_DEVICE_CUDA && v.device.index != c->g.device.index))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: on another device than in->logp", c->fn, name);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// the CPU reference

static inline int64_t sg_pl_len(const sg_geom *g, int64_t b, int64_t *base) {
    if (!g->packed) {
        *base = 0;
        return g->T;
    }
    *base = sg_ld_index(g->offsets, g->offsets_dtype, b);
    return sg_ld_index(g->offsets, g->offsets_dtype, b + 1) - *base;
}

/* slot of token t of sequence b in tensor x (base: packed offset of sequence b) */
static inline int64_t sg_pl_ix(const sg_geom *g, sg_tok x, int64_t b, int64_t base, int64_t t) {
    return g->packed ? base + t : b * x.row_stride + t;
}

static inline int sg_pl_valid(const sg_geom *g, const sg_pl_args *a, int64_t b, int64_t base,
                              int64_t t) {
    if (a->mask.data && !sg_mask_on(a->mask.data, a->mask.dtype, sg_pl_ix(g, a->mask, b, base, t)))
        return 0;
    if (a->pmask.data &&
        !sg_mask_on(a->pmask.data, a->pmask.dtype, sg_pl_ix(g, a->pmask, b, base, t)))
        return 0;
    return 1;
}

static inline float sg_pl_ld(const sg_geom *g, sg_tok x, int64_t b, int64_t base, int64_t t) {
    return x.data ? sg_ldf(x.data, x.dtype, sg_pl_ix(g, x, b, base, t)) : 0.0f;
}

/* Pass 1: per-sequence counts and log-ratio sums (seq: 2 doubles per sequence), the batch counts
 * into st, and (check) the first non-finite input at a valid token. */
static segrl_status sg_pl_cpu_pass1(const sg_call *c, const sg_pl_args *a, int check, double *seq,
                                    double *st) {
    const sg_geom *g = &c->g;
    const sg_tok *xs[8] = {&a->logp, &a->old, &a->adv, &a->ref, &a->ent, &a->val, &a->oldv, &a->ret};
    double NT = 0, S = 0, maxlen = 0;
    for (int64_t b = 0; b < g->B; b++) {
        int64_t base;
        const int64_t len = sg_pl_len(g, b, &base);
        double n = 0, lr = 0;
        for (int64_t t = 0; t < len; t++) {
            if (!sg_pl_valid(g, a, b, base, t)) continue;
            if (check)
                for (int k = 0; k < 8; k++) {
                    if (!xs[k]->data) continue;
                    if (!isfinite(sg_pl_ld(g, *xs[k], b, base, t)))
                        return sg_fail(SEGRL_ERR_INVALID,
                                       "%s: %s: non-finite value at valid token %lld of sequence %lld",
                                       c->fn, sg_pl_names[k], (long long)t, (long long)b);
                }
            n += 1;
            if (a->old.data)
                lr += (double)sg_pl_ld(g, a->logp, b, base, t) - sg_pl_ld(g, a->old, b, base, t);
        }
        seq[2 * b] = n;
        seq[2 * b + 1] = n > 0 ? lr / n : 0.0;
        NT += n;
        S += n > 0;
        if (len > maxlen) maxlen = (double)len;
    }
    st[SG_PL_NT] = NT;
    st[SG_PL_S] = S;
    st[SG_PL_MAXLEN] = maxlen;
    return SEGRL_OK;
}

/* Pass 2: the terms. Forward: sums into st. Backward (any grad output non-NULL): gradients
 * scaled by gscale, 0 at invalid tokens. */
static void sg_pl_cpu_pass2(const sg_geom *g, const sg_pl_args *a, const double *seq, double *st,
                            double D, float gscale, sg_tok dlogp, sg_tok dent, sg_tok dval) {
    const segrl_policy_loss_opts *o = &a->o;
    double pg = 0, kl = 0, ent = 0, val = 0, clo = 0, chi = 0, dual = 0, vclip = 0, lrs = 0;
    double rs = 0, rmax = -INFINITY, rmin = INFINITY, kls = 0, ents = 0;
    for (int64_t b = 0; b < g->B; b++) {
        int64_t base;
        const int64_t len = sg_pl_len(g, b, &base);
        const double nb = seq[2 * b];
        const double w = o->agg == SEGRL_AGG_SEQ_MEAN_TOKEN_MEAN ? (nb > 0 ? 1.0 / (D * nb) : 0.0)
                                                                 : 1.0 / D;
        const float C = o->log_ratio_clamp;
        const float mlr = (float)seq[2 * b + 1];
        const float slr = sg_clampf(mlr, -C, C);
        for (int64_t t = 0; t < len; t++) {
            const int valid = sg_pl_valid(g, a, b, base, t);
            if (!valid) {
                if (dlogp.data) sg_stf(dlogp.data, dlogp.dtype, sg_pl_ix(g, dlogp, b, base, t), 0.0f);
                if (dent.data) sg_stf(dent.data, dent.dtype, sg_pl_ix(g, dent, b, base, t), 0.0f);
                if (dval.data) sg_stf(dval.data, dval.dtype, sg_pl_ix(g, dval, b, base, t), 0.0f);
                continue;
            }
            const float lp = sg_pl_ld(g, a->logp, b, base, t);
            const float olp = sg_pl_ld(g, a->old, b, base, t);
            sg_pl_tok k;
            sg_pl_token(o, lp, olp, sg_pl_ld(g, a->adv, b, base, t), slr, slr != mlr, a->kl_on,
                        sg_pl_ld(g, a->ref, b, base, t), a->val_on, sg_pl_ld(g, a->val, b, base, t),
                        sg_pl_ld(g, a->oldv, b, base, t), sg_pl_ld(g, a->ret, b, base, t), &k);
            const float e = sg_pl_ld(g, a->ent, b, base, t);
            if (dlogp.data)
                sg_stf(dlogp.data, dlogp.dtype, sg_pl_ix(g, dlogp, b, base, t),
                       (float)(gscale * w * ((double)k.dpg + (a->kl_on ? (double)o->kl_coef * k.dkl : 0.0))));
            if (dent.data)
                sg_stf(dent.data, dent.dtype, sg_pl_ix(g, dent, b, base, t),
                       (float)(-(double)gscale * w * o->entropy_coef));
            if (dval.data)
                sg_stf(dval.data, dval.dtype, sg_pl_ix(g, dval, b, base, t),
                       a->val_on ? (float)(gscale * w * (double)o->value_coef * k.dvl) : 0.0f);
            pg += w * k.pg;
            kl += w * k.kl;
            ent += w * e;
            val += w * k.vl;
            clo += k.clip_low, chi += k.clip_high, dual += k.dual, vclip += k.vclip;
            if (a->old.data) lrs += (double)olp - lp;
            rs += k.ratio;
            if (k.ratio > rmax) rmax = k.ratio;
            if (k.ratio < rmin) rmin = k.ratio;
            kls += k.kl;
            ents += e;
        }
    }
    st[SG_PL_PG] = pg, st[SG_PL_KL] = kl, st[SG_PL_ENT] = ent, st[SG_PL_VAL] = val;
    st[SG_PL_CLIP_LO] = clo, st[SG_PL_CLIP_HI] = chi, st[SG_PL_DUAL] = dual;
    st[SG_PL_VCLIP] = vclip, st[SG_PL_LR] = lrs, st[SG_PL_RATIO] = rs;
    st[SG_PL_RMAX] = rmax, st[SG_PL_RMIN] = rmin, st[SG_PL_KLSUM] = kls, st[SG_PL_ENTSUM] = ents;
}

/* the loss and the stats struct from the sums */
static double sg_pl_finish(const sg_pl_args *a, const double *st, segrl_policy_loss_stats *s) {
    const segrl_policy_loss_opts *o = &a->o;
    const double NT = st[SG_PL_NT];
    double L = st[SG_PL_PG];
    if (a->kl_on) L += (double)o->kl_coef * st[SG_PL_KL];
    if (a->ent.data) L -= (double)o->entropy_coef * st[SG_PL_ENT];
    if (a->val_on) L += (double)o->value_coef * st[SG_PL_VAL];
    if (s) {
        memset(s, 0, sizeof *s);
        const double inv = NT > 0 ? 1.0 / NT : 0.0;
        s->loss = L;
        s->pg_loss = st[SG_PL_PG];
        s->kl_loss = a->kl_on ? st[SG_PL_KL] : 0.0;
        s->entropy_loss = a->ent.data ? st[SG_PL_ENT] : 0.0;
        s->value_loss = a->val_on ? st[SG_PL_VAL] : 0.0;
        s->clip_frac_low = st[SG_PL_CLIP_LO] * inv;
        s->clip_frac_high = st[SG_PL_CLIP_HI] * inv;
        s->dual_clip_frac = st[SG_PL_DUAL] * inv;
        s->approx_kl = st[SG_PL_LR] * inv;
        s->ratio_mean = NT > 0 ? st[SG_PL_RATIO] * inv : 0.0;
        s->ratio_max = NT > 0 ? st[SG_PL_RMAX] : 0.0;
        s->ratio_min = NT > 0 ? st[SG_PL_RMIN] : 0.0;
        s->kl_mean = a->kl_on ? st[SG_PL_KLSUM] * inv : 0.0;
        s->entropy_mean = a->ent.data ? st[SG_PL_ENTSUM] * inv : 0.0;
        s->value_clip_frac = st[SG_PL_VCLIP] * inv;
        s->num_tokens = NT;
        s->num_seqs = st[SG_PL_S];
    }
    return L;
}

static segrl_status sg_pl_need_tokens(const sg_call *c, const sg_pl_args *a, const double *st) {
    if (a->o.normalizer == 0.0 && st[SG_PL_NT] == 0)
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: in->mask: no valid tokens (pass opts->normalizer for an empty "
                       "micro-batch)",
                       c->fn);
    return SEGRL_OK;
}

#ifdef SEGRL_WITH_CUDA
static segrl_status sg_pl_cuda_bad(const sg_call *c, int bad_arg, int64_t bad_pos) {
    if (bad_arg == 100)
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: in->mask: no valid tokens (pass opts->normalizer for an empty "
                       "micro-batch)",
                       c->fn);
    if (c->g.packed)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: non-finite value at valid packed token %lld",
                       c->fn, sg_pl_names[bad_arg], (long long)bad_pos);
    return sg_fail(SEGRL_ERR_INVALID, "%s: %s: non-finite value at valid token %lld of sequence %lld",
                   c->fn, sg_pl_names[bad_arg], (long long)(c->g.T ? bad_pos % c->g.T : 0),
                   (long long)(c->g.T ? bad_pos / c->g.T : 0));
}
#endif

// ----------------------------------------------------------------------------
// public entries

segrl_status segrl_policy_loss_forward(const segrl_layout *layout,
                                       const segrl_policy_loss_inputs *in,
                                       const segrl_policy_loss_opts *opts, const segrl_exec *exec,
                                       segrl_view out_loss, segrl_policy_loss_stats *out_stats) {
    const char *fn = "segrl_policy_loss_forward";
    sg_call c;
    sg_pl_args a;
    SG_TRY(sg_pl_validate(&c, fn, layout, in, opts, exec, &a));
    const int want_loss = !segrl_view_is_none(out_loss);
    if (want_loss) SG_TRY(sg_scalar_view(&c, out_loss, "out_loss"));
    if (!want_loss && !out_stats)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out_loss: none and out_stats NULL: nothing to compute",
                       fn);
    const int check = c.exec.checks == SEGRL_CHECKS_FULL;
    if (c.g.device.type == SEGRL_DEVICE_CUDA) {
#ifdef SEGRL_WITH_CUDA
        double st[SG_PL_NSTAT];
        int bad_arg = -1;
        int64_t bad_pos = -1;
        sg_tok none = {0};
        SG_TRY(sg_cuda_policy_loss(&c.g, &a, check, c.exec.workspace, c.exec.stream,
                                   want_loss ? (float *)out_loss.data : NULL,
                                   out_stats ? st : NULL, NULL, none, none, none, &bad_arg,
                                   &bad_pos));
        if (bad_arg >= 0) return sg_pl_cuda_bad(&c, bad_arg, bad_pos);
        if (out_stats) sg_pl_finish(&a, st, out_stats);
        return SEGRL_OK;
#endif
    }
    char *ws = (char *)c.exec.workspace + SG_WS_CHECK_BYTES;
    double *seq = (double *)ws;
    double st[SG_PL_NSTAT];
    SG_TRY(sg_pl_cpu_pass1(&c, &a, check, seq, st));
    SG_TRY(sg_pl_need_tokens(&c, &a, st));
    const double D = sg_pl_denominator(&a.o, st[SG_PL_NT], st[SG_PL_S], st[SG_PL_MAXLEN],
                                       c.g.packed, c.g.T);
    sg_tok none = {0};
    sg_pl_cpu_pass2(&c.g, &a, seq, st, D, 1.0f, none, none, none);
    const double L = sg_pl_finish(&a, st, out_stats);
    if (want_loss) *(float *)out_loss.data = (float)L;
    return SEGRL_OK;
}

segrl_status segrl_policy_loss_backward(const segrl_layout *layout,
                                        const segrl_policy_loss_inputs *in,
                                        const segrl_policy_loss_opts *opts, segrl_view grad_loss,
                                        const segrl_exec *exec, segrl_view out_grad_logp,
                                        segrl_view out_grad_entropy, segrl_view out_grad_values) {
    const char *fn = "segrl_policy_loss_backward";
    sg_call c;
    sg_pl_args a;
    SG_TRY(sg_pl_validate(&c, fn, layout, in, opts, exec, &a));
    const int have_g = !segrl_view_is_none(grad_loss);
    if (have_g) SG_TRY(sg_scalar_view(&c, grad_loss, "grad_loss"));
    sg_tok dlogp, dent, dval;
    SG_TRY(sg_tok_view(&c, out_grad_logp, "out_grad_logp", SG_FLOAT, 0, &dlogp));
    SG_TRY(sg_tok_view(&c, out_grad_entropy, "out_grad_entropy", SG_FLOAT, 0, &dent));
    SG_TRY(sg_tok_view(&c, out_grad_values, "out_grad_values", SG_FLOAT, 0, &dval));
    if (!dlogp.data && !dent.data && !dval.data && c.g.N > 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out_grad_logp: every gradient output is none", fn);
    const int check = c.exec.checks == SEGRL_CHECKS_FULL;
    if (c.g.device.type == SEGRL_DEVICE_CUDA) {
#ifdef SEGRL_WITH_CUDA
        int bad_arg = -1;
        int64_t bad_pos = -1;
        SG_TRY(sg_cuda_policy_loss(&c.g, &a, check, c.exec.workspace, c.exec.stream, NULL, NULL,
                                   have_g ? (const float *)grad_loss.data : NULL, dlogp, dent,
                                   dval, &bad_arg, &bad_pos));
        if (bad_arg >= 0) return sg_pl_cuda_bad(&c, bad_arg, bad_pos);
        return SEGRL_OK;
#endif
    }
    const float gscale = have_g ? *(const float *)grad_loss.data : 1.0f;
    char *ws = (char *)c.exec.workspace + SG_WS_CHECK_BYTES;
    double *seq = (double *)ws;
    double st[SG_PL_NSTAT];
    SG_TRY(sg_pl_cpu_pass1(&c, &a, check, seq, st));
    SG_TRY(sg_pl_need_tokens(&c, &a, st));
    const double D = sg_pl_denominator(&a.o, st[SG_PL_NT], st[SG_PL_S], st[SG_PL_MAXLEN],
                                       c.g.packed, c.g.T);
    sg_pl_cpu_pass2(&c.g, &a, seq, st, D, gscale, dlogp, dent, dval);
    return SEGRL_OK;
}
