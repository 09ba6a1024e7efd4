/* api.c — public entry points of the advantage estimators: validate every argument (nothing is
 * written on failure), run the content checks, then dispatch to the CPU reference or the CUDA
 * kernel on the views' device. */
#include "../check.h"

#include <math.h>

static int sg_cuda(const sg_call *c) { return c->g.device.type == SEGRL_DEVICE_CUDA; }

static segrl_status sg_need_ws(const sg_call *c, segrl_op op, int64_t G) {
    size_t need = 0;
    SG_TRY(segrl_workspace_size(op, c->g.device, c->g.B, c->g.N, G, &need));
    return sg_workspace(c, need);
}

static segrl_status sg_distinct(const char *fn, const char *a, const void *pa, const char *b,
                                const void *pb) {
    if (pa && pa == pb)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: is the same buffer as %s", fn, b, a);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// GAE

segrl_status segrl_gae(const segrl_layout *layout, segrl_view rewards, segrl_view values,
                       segrl_view mask, float gamma, float lambda, const segrl_exec *exec,
                       segrl_view out_advantages, segrl_view out_returns) {
    static const char *fn = "segrl_gae";
    sg_call c;
    sg_tok r, v, m, a, q;
    SG_TRY(sg_begin(&c, fn, layout, rewards, "rewards", exec));
    SG_TRY(sg_tok_view(&c, rewards, "rewards", SG_F32, 1, &r));
    SG_TRY(sg_tok_view(&c, values, "values", SG_F32, 1, &v));
    SG_TRY(sg_tok_view(&c, mask, "mask", SG_MASK, 0, &m));
    SG_TRY(sg_tok_view(&c, out_advantages, "out_advantages", SG_F32, 1, &a));
    SG_TRY(sg_tok_view(&c, out_returns, "out_returns", SG_F32, 1, &q));
    SG_TRY(sg_distinct(fn, "out_advantages", a.data, "out_returns", q.data));
    SG_TRY(sg_check_finite_param(fn, "gamma", gamma));
    SG_TRY(sg_check_finite_param(fn, "lambda", lambda));
    SG_TRY(sg_need_ws(&c, SEGRL_OP_GAE, 0));
    SG_TRY(sg_check_offsets(&c));
    SG_TRY(sg_check_finite_tok(&c, "rewards", r, m));
    SG_TRY(sg_check_finite_tok(&c, "values", v, m));
    if (sg_cuda(&c)) {
#ifdef SEGRL_WITH_CUDA
        return sg_cuda_gae(&c.g, r, v, m, gamma, lambda, a, q, c.exec.stream);
#endif
    }
    sg_cpu_gae(&c.g, r, v, m, gamma, lambda, a, q);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// discounted returns

segrl_returns_opts segrl_returns_opts_default(void) {
    segrl_returns_opts o = {1.0f, 0.0f, SEGRL_KL_NONE};
    return o;
}

segrl_status segrl_discounted_returns(const segrl_layout *layout, segrl_view rewards,
                                      segrl_view mask, segrl_view logprobs,
                                      segrl_view ref_logprobs, const segrl_returns_opts *opts,
                                      const segrl_exec *exec, segrl_view out_returns) {
    static const char *fn = "segrl_discounted_returns";
    sg_call c;
    sg_tok r, m, lp = {0}, rf = {0}, o;
    segrl_returns_opts op = opts ? *opts : segrl_returns_opts_default();
    SG_TRY(sg_begin(&c, fn, layout, rewards, "rewards", exec));
    SG_TRY(sg_tok_view(&c, rewards, "rewards", SG_F32, 1, &r));
    SG_TRY(sg_tok_view(&c, mask, "mask", SG_MASK, 0, &m));
    SG_TRY(sg_check_finite_param(fn, "opts->gamma", op.gamma));
    SG_TRY(sg_check_finite_param(fn, "opts->kl_coef", op.kl_coef));
    if (op.kl_estimator < SEGRL_KL_NONE || op.kl_estimator > SEGRL_KL_K3)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->kl_estimator: %d is not a segrl_kl_estimator",
                       fn, op.kl_estimator);
    const int penalty = op.kl_coef != 0.0f && op.kl_estimator != SEGRL_KL_NONE;
    SG_TRY(sg_tok_view(&c, logprobs, "logprobs", SG_F32, penalty, &lp));
    SG_TRY(sg_tok_view(&c, ref_logprobs, "ref_logprobs", SG_F32, penalty, &rf));
    SG_TRY(sg_tok_view(&c, out_returns, "out_returns", SG_F32, 1, &o));
    SG_TRY(sg_need_ws(&c, SEGRL_OP_DISCOUNTED_RETURNS, 0));
    SG_TRY(sg_check_offsets(&c));
    SG_TRY(sg_check_finite_tok(&c, "rewards", r, m));
    if (penalty) {
        SG_TRY(sg_check_finite_tok(&c, "logprobs", lp, m));
        SG_TRY(sg_check_finite_tok(&c, "ref_logprobs", rf, m));
    }
    if (sg_cuda(&c)) {
#ifdef SEGRL_WITH_CUDA
        return sg_cuda_returns(&c.g, r, m, lp, rf, op.gamma, penalty ? op.kl_coef : 0.0f,
                               op.kl_estimator, o, c.exec.stream);
#endif
    }
    sg_cpu_returns(&c.g, r, m, lp, rf, op.gamma, penalty ? op.kl_coef : 0.0f, op.kl_estimator, o);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// whitening

segrl_whiten_opts segrl_whiten_opts_default(void) {
    segrl_whiten_opts o = {1, 1, 1e-8f};
    return o;
}

segrl_status segrl_whiten(const segrl_layout *layout, segrl_view x, segrl_view mask,
                          segrl_view group_index, int64_t num_groups,
                          const segrl_whiten_opts *opts, const segrl_exec *exec, segrl_view out) {
    static const char *fn = "segrl_whiten";
    sg_call c;
    sg_tok xs, m, o;
    const void *gi = NULL;
    int32_t gdt = -1;
    segrl_whiten_opts op = opts ? *opts : segrl_whiten_opts_default();
    SG_TRY(sg_begin(&c, fn, layout, x, "x", exec));
    SG_TRY(sg_tok_view(&c, x, "x", SG_F32, 1, &xs));
    SG_TRY(sg_tok_view(&c, mask, "mask", SG_MASK, 0, &m));
    SG_TRY(sg_vec_view(&c, group_index, "group_index", c.g.B, SG_IDX, 0, &gi, &gdt));
    if (gi && num_groups < 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: num_groups: %lld, must be >= 1 with group_index",
                       fn, (long long)num_groups);
    if (!(op.eps >= 0.0f) || !isfinite(op.eps))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->eps: must be finite and >= 0", fn);
    SG_TRY(sg_tok_view(&c, out, "out", SG_F32, 1, &o));
    const int64_t G = gi ? num_groups : 1;
    SG_TRY(sg_need_ws(&c, SEGRL_OP_WHITEN, G));
    SG_TRY(sg_check_offsets(&c));
    SG_TRY(sg_check_index(&c, "group_index", gi, gdt, c.g.B, G));
    SG_TRY(sg_check_finite_tok(&c, "x", xs, m));
    double *stats = (double *)((char *)c.exec.workspace + SG_WS_CHECK_BYTES);
    if (sg_cuda(&c)) {
#ifdef SEGRL_WITH_CUDA
        return sg_cuda_whiten(&c.g, xs, m, gi, gdt, G, &op, stats, o, c.exec.stream);
#endif
    }
    sg_cpu_whiten(&c.g, xs, m, gi, gdt, G, &op, stats, o);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// outcome estimators: one shared validation path

segrl_outcome_opts segrl_outcome_opts_default(void) {
    segrl_outcome_opts o = {1e-6f, SEGRL_STD_GROUP, 1, SEGRL_SINGLETON_KEEP};
    return o;
}

static segrl_status sg_outcome(const char *fn, segrl_op opcode, const segrl_layout *layout,
                               const segrl_outcome *in, segrl_view baseline,
                               const segrl_outcome_opts *opts, const segrl_exec *exec,
                               segrl_view out_tok, segrl_view out_seq) {
    sg_call c;
    sg_outcome_args a;
    sg_tok o;
    memset(&a, 0, sizeof a);
    a.op = opcode;
    a.opts = opts ? *opts : segrl_outcome_opts_default();
    if (!in) return sg_fail(SEGRL_ERR_INVALID, "%s: in: NULL", fn);
    /* the output token tensor defines the geometry */
    SG_TRY(sg_begin(&c, fn, layout, out_tok, "out_token_advantages", exec));
    SG_TRY(sg_tok_view(&c, out_tok, "out_token_advantages", SG_F32, 1, &o));
    const int64_t B = c.g.B;
    const void *p;
    int32_t dt;
    SG_TRY(sg_vec_view(&c, in->scores, "in->scores", B, SG_F32, 0, &p, &dt));
    a.scores = (const float *)p;
    SG_TRY(sg_tok_view(&c, in->token_rewards, "in->token_rewards", SG_F32, !a.scores,
                       &a.token_rewards));
    if (a.scores) a.token_rewards.data = NULL; /* scores win; token rewards are not read */
    SG_TRY(sg_tok_view(&c, in->mask, "in->mask", SG_MASK, 0, &a.mask));
    const int grouped = opcode != SEGRL_OP_REMAX;
    SG_TRY(sg_vec_view(&c, in->group_index, "in->group_index", B, SG_IDX, grouped, &a.gidx,
                       &a.gidx_dtype));
    a.G = a.gidx ? in->num_groups : 1;
    if (a.gidx && in->num_groups < 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: in->num_groups: %lld, must be >= 1", fn,
                       (long long)in->num_groups);
    if (opcode == SEGRL_OP_REMAX) {
        SG_TRY(sg_vec_view(&c, baseline, "greedy_scores", B, SG_F32, 1, &p, &dt));
        a.baseline = (const float *)p;
        a.gidx = NULL; /* ReMax has no groups */
        a.G = 1;
    }
    float *seq = NULL;
    SG_TRY(sg_vec_view(&c, out_seq, "out_seq_advantages", B, SG_F32, 0, &p, &dt));
    seq = (float *)p;
    if (!(a.opts.eps >= 0.0f) || !isfinite(a.opts.eps))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->eps: must be finite and >= 0", fn);
    if (a.opts.std_scope < SEGRL_STD_GROUP || a.opts.std_scope > SEGRL_STD_NONE)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->std_scope: %d is not a segrl_std_scope", fn,
                       a.opts.std_scope);
    if (a.opts.singleton != SEGRL_SINGLETON_KEEP && a.opts.singleton != SEGRL_SINGLETON_ZERO)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->singleton: %d is not a segrl_singleton", fn,
                       a.opts.singleton);
    SG_TRY(sg_distinct(fn, "out_token_advantages", o.data, "out_seq_advantages", seq));
    SG_TRY(sg_need_ws(&c, opcode, a.G));
    SG_TRY(sg_check_offsets(&c));
    SG_TRY(sg_check_index(&c, "in->group_index", a.gidx, a.gidx_dtype, B, a.G));
    SG_TRY(sg_check_finite_vec(&c, "in->scores", a.scores, B));
    if (!a.scores) SG_TRY(sg_check_finite_tok(&c, "in->token_rewards", a.token_rewards, a.mask));
    SG_TRY(sg_check_finite_vec(&c, "greedy_scores", a.baseline, a.baseline ? B : 0));
    sg_outcome_ws ws = sg_outcome_ws_carve(c.exec.workspace, B, a.G);
    if (sg_cuda(&c)) {
#ifdef SEGRL_WITH_CUDA
        return sg_cuda_outcome(&c.g, &a, ws, o, seq, c.exec.stream);
#endif
    }
    sg_cpu_outcome(&c.g, &a, ws, o, seq);
    return SEGRL_OK;
}

#define SG_OUTCOME_ENTRY(name, opcode)                                                            \
    segrl_status segrl_##name(const segrl_layout *layout, const segrl_outcome *in,                \
                              const segrl_outcome_opts *opts, const segrl_exec *exec,             \
                              segrl_view out_token_advantages, segrl_view out_seq_advantages) {   \
        return sg_outcome("segrl_" #name, opcode, layout, in, segrl_view_none(), opts, exec,     \
                          out_token_advantages, out_seq_advantages);                              \
    }

SG_OUTCOME_ENTRY(grpo, SEGRL_OP_GRPO)
SG_OUTCOME_ENTRY(rloo, SEGRL_OP_RLOO)
SG_OUTCOME_ENTRY(reinforce_pp_baseline, SEGRL_OP_REINFORCE_PP_BASELINE)
SG_OUTCOME_ENTRY(opo, SEGRL_OP_OPO)
SG_OUTCOME_ENTRY(grpo_passk, SEGRL_OP_GRPO_PASSK)
SG_OUTCOME_ENTRY(gpg, SEGRL_OP_GPG)

segrl_status segrl_remax(const segrl_layout *layout, const segrl_outcome *in,
                         segrl_view greedy_scores, const segrl_exec *exec,
                         segrl_view out_token_advantages, segrl_view out_seq_advantages) {
    return sg_outcome("segrl_remax", SEGRL_OP_REMAX, layout, in, greedy_scores, NULL, exec,
                      out_token_advantages, out_seq_advantages);
}
