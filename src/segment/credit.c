/* credit.c — segment advantages and rewards: SPO-chain, VinePPO, process-reward transforms,
 * dense (fine-grained) segment rewards. */
#include "common.h"

/* zero every slot of every sequence of token tensor o */
static void sg_zero_rows(const sg_geom *g, sg_tok o) {
    for (int64_t b = 0; b < g->B; b++) {
        int64_t n;
        float *r = sg_f32(o, sg_seq(g, o, b, &n));
        if (n > 0) memset(r, 0, (size_t)n * sizeof(float));
    }
}

/* o[t] = a at the valid tokens of [st, en) */
static void sg_fill_span(float *orow, sg_tok m, int64_t mb, int64_t st, int64_t en, float a) {
    for (int64_t t = st; t < en; t++)
        if (sg_valid(m, mb + t)) orow[t] = a;
}

/* validation shared by SPO-chain and VinePPO up to the per-segment vectors */
static segrl_status sg_adv_begin(sg_call *c, const char *fn, const segrl_layout *layout,
                                 segrl_view mask, const segrl_segments *segments,
                                 const segrl_exec *exec, segrl_view out_tok, sg_tok *m, sg_tok *o,
                                 sg_segs *s) {
    SG_TRY(sg_begin(c, fn, layout, out_tok, "out_advantages", exec));
    SG_TRY(sg_tok_view(c, out_tok, "out_advantages", SG_F32, 1, o));
    SG_TRY(sg_tok_view(c, mask, "mask", SG_MASK, 0, m));
    return sg_seg_views(c, segments, "segments", s);
}

// ----------------------------------------------------------------------------
// SPO-chain

segrl_status segrl_spo_chain(const segrl_layout *layout, segrl_view mask,
                             const segrl_segments *segments, segrl_view values,
                             segrl_view rewards, segrl_view prompt_values, const segrl_exec *exec,
                             segrl_view out_advantages, segrl_view out_segment_advantages) {
    static const char *fn = "segrl_spo_chain";
    sg_call c;
    sg_tok m, o;
    sg_segs s;
    const void *p;
    int32_t dt;
    SG_TRY(sg_adv_begin(&c, fn, layout, mask, segments, exec, out_advantages, &m, &o, &s));
    const int64_t B = c.g.B;
    SG_TRY(sg_vec_view(&c, values, "values", s.S, SG_F32, 1, &p, &dt));
    const float *V = (const float *)p;
    SG_TRY(sg_vec_view(&c, rewards, "rewards", B, SG_F32, 1, &p, &dt));
    const float *R = (const float *)p;
    SG_TRY(sg_vec_view(&c, prompt_values, "prompt_values", B, SG_F32, 0, &p, &dt));
    const float *V0 = (const float *)p;
    SG_TRY(sg_vec_view(&c, out_segment_advantages, "out_segment_advantages", s.S, SG_F32, 0, &p,
                       &dt));
    float *oseg = (float *)p;
    SG_TRY(sg_seg_ws(&c));
    SG_TRY(sg_check_offsets(&c));
    SG_TRY(sg_seg_contents(&c, "segments", &s, 0));
    SG_TRY(sg_check_finite_vec(&c, "values", V, s.S));
    SG_TRY(sg_check_finite_vec(&c, "rewards", R, B));
    SG_TRY(sg_check_finite_vec(&c, "prompt_values", V0, V0 ? B : 0));
    if (sg_seg_on_cuda(&c)) {
#ifdef SEGRL_WITH_CUDA
        const sg_dspans ds = sg_seg_dspans(&s);
        return sg_cuda_spo_chain(&c.g, m, &ds, V, R, V0, o, oseg, c.exec.stream);
#endif
    }
    const sg_geom *g = &c.g;
    sg_zero_rows(g, o);
    for (int64_t b = 0; b < B; b++) {
        float *orow = sg_f32(o, sg_base(g, o, b));
        const int64_t mb = sg_base(g, m, b);
        const int64_t k0 = sg_ix(s.off, s.odt, b), k1 = sg_ix(s.off, s.odt, b + 1);
        if (k0 == k1) continue;
        if (V0) sg_fill_span(orow, m, mb, 0, sg_ix(s.st, s.sdt, k0), V[k0] - V0[b]);
        for (int64_t k = k0; k < k1; k++) {
            const float a = (k + 1 < k1 ? V[k + 1] : R[b]) - V[k];
            sg_fill_span(orow, m, mb, sg_ix(s.st, s.sdt, k), sg_ix(s.en, s.edt, k), a);
            if (oseg) oseg[k] = a;
        }
    }
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// VinePPO

segrl_status segrl_vineppo(const segrl_layout *layout, segrl_view mask,
                           const segrl_segments *segments, segrl_view step_rewards,
                           segrl_view values, float gamma, const segrl_exec *exec,
                           segrl_view out_advantages, segrl_view out_step_advantages) {
    static const char *fn = "segrl_vineppo";
    sg_call c;
    sg_tok m, o;
    sg_segs s;
    const void *p;
    int32_t dt;
    SG_TRY(sg_adv_begin(&c, fn, layout, mask, segments, exec, out_advantages, &m, &o, &s));
    SG_TRY(sg_vec_view(&c, step_rewards, "step_rewards", s.S, SG_F32, 1, &p, &dt));
    const float *r = (const float *)p;
    SG_TRY(sg_vec_view(&c, values, "values", s.S, SG_F32, 1, &p, &dt));
    const float *V = (const float *)p;
    SG_TRY(sg_vec_view(&c, out_step_advantages, "out_step_advantages", s.S, SG_F32, 0, &p, &dt));
    float *ostep = (float *)p;
    SG_TRY(sg_check_finite_param(fn, "gamma", gamma));
    SG_TRY(sg_seg_ws(&c));
    SG_TRY(sg_check_offsets(&c));
    SG_TRY(sg_seg_contents(&c, "segments", &s, 0));
    SG_TRY(sg_check_finite_vec(&c, "step_rewards", r, s.S));
    SG_TRY(sg_check_finite_vec(&c, "values", V, s.S));
    if (sg_seg_on_cuda(&c)) {
#ifdef SEGRL_WITH_CUDA
        const sg_dspans ds = sg_seg_dspans(&s);
        return sg_cuda_vineppo(&c.g, m, &ds, r, V, gamma, o, ostep, c.exec.stream);
#endif
    }
    const sg_geom *g = &c.g;
    sg_zero_rows(g, o);
    for (int64_t b = 0; b < g->B; b++) {
        float *orow = sg_f32(o, sg_base(g, o, b));
        const int64_t mb = sg_base(g, m, b);
        const int64_t k1 = sg_ix(s.off, s.odt, b + 1);
        for (int64_t k = sg_ix(s.off, s.odt, b); k < k1; k++) {
            const double next = k + 1 < k1 ? (double)V[k + 1] : 0.0;
            const float a = (float)((double)r[k] + (double)gamma * next - (double)V[k]);
            sg_fill_span(orow, m, mb, sg_ix(s.st, s.sdt, k), sg_ix(s.en, s.edt, k), a);
            if (ostep) ostep[k] = a;
        }
    }
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// process-reward transforms

segrl_status segrl_prm_transform(segrl_view seg_offsets, segrl_view rewards,
                                 const segrl_prm_opts *opts, const segrl_exec *exec,
                                 segrl_view out) {
    static const char *fn = "segrl_prm_transform";
    sg_call c;
    const void *off, *p;
    int32_t odt, dt;
    segrl_prm_opts o = {SEGRL_PRM_CLIP, 0.0f};
    if (opts) o = *opts;
    SG_TRY(sg_seg_cpu_only(fn, "seg_offsets", seg_offsets));
    SG_TRY(sg_seg_cpu_only(fn, "rewards", rewards));
    SG_TRY(sg_seg_cpu_only(fn, "out", out));
    if (segrl_view_is_none(seg_offsets))
        return sg_fail(SEGRL_ERR_INVALID, "%s: seg_offsets: NULL (required)", fn);
    if (seg_offsets.ndim != 1 || seg_offsets.shape[0] < 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: seg_offsets: must be 1-D with B + 1 >= 1 entries",
                       fn);
    SG_TRY(sg_seg_begin_plain(&c, fn, seg_offsets.shape[0] - 1, exec));
    SG_TRY(sg_vec_view(&c, seg_offsets, "seg_offsets", c.g.B + 1, SG_IDX, 1, &off, &odt));
    if (segrl_view_is_none(rewards))
        return sg_fail(SEGRL_ERR_INVALID, "%s: rewards: NULL (required)", fn);
    if (rewards.ndim != 1) return sg_fail(SEGRL_ERR_INVALID, "%s: rewards: must be 1-D (S)", fn);
    const int64_t S = rewards.shape[0];
    SG_TRY(sg_vec_view(&c, rewards, "rewards", S, SG_F32, 1, &p, &dt));
    const float *r = (const float *)p;
    SG_TRY(sg_vec_view(&c, out, "out", S, SG_F32, 1, &p, &dt));
    float *w = (float *)p;
    if (o.mode < SEGRL_PRM_CLIP || o.mode > SEGRL_PRM_BOTH)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->mode: %d is not a segrl_prm_mode", fn, o.mode);
    SG_TRY(sg_check_finite_param(fn, "opts->eta", o.eta));
    if (c.exec.checks == SEGRL_CHECKS_FULL) {
        int64_t bad = sg_cpu_bad_offset(off, odt, c.g.B, S);
        if (bad >= 0)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: seg_offsets: entry %lld breaks offsets[0] == 0 <= ... <= "
                           "offsets[B] == S = %lld",
                           fn, (long long)bad, (long long)S);
    }
    SG_TRY(sg_check_finite_vec(&c, "rewards", r, S));
    const int clip = o.mode != SEGRL_PRM_DELTA, delta = o.mode != SEGRL_PRM_CLIP;
    const float eta = o.eta;
#define SG_CLIPPED(x) (clip ? fminf((x) - eta, 0.0f) : (x))
    for (int64_t b = 0; b < c.g.B; b++) {
        const int64_t k1 = sg_ix(off, odt, b + 1);
        /* forward walk: r[k + 1] is read before w[k + 1] is written (in place is safe) */
        for (int64_t k = sg_ix(off, odt, b); k < k1; k++) {
            const float cur = SG_CLIPPED(r[k]);
            w[k] = delta && k + 1 < k1 ? cur - SG_CLIPPED(r[k + 1]) : cur;
        }
    }
#undef SG_CLIPPED
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// dense segment rewards

segrl_status segrl_dense_segment_rewards(const segrl_layout *layout, segrl_view mask,
                                         const segrl_reward_source *sources, int32_t n_sources,
                                         const segrl_exec *exec, segrl_view out) {
    static const char *fn = "segrl_dense_segment_rewards";
    sg_call c;
    sg_tok m, o;
    char name[64];
    SG_TRY(sg_seg_cpu_layout(fn, layout));
    SG_TRY(sg_seg_cpu_only(fn, "mask", mask));
    SG_TRY(sg_seg_cpu_only(fn, "out", out));
    if (n_sources < 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: n_sources: %d, must be >= 1", fn, n_sources);
    if (!sources) return sg_fail(SEGRL_ERR_INVALID, "%s: sources: NULL", fn);
    for (int32_t j = 0; j < n_sources; j++) {
        snprintf(name, sizeof name, "sources[%d].spans", j);
        SG_TRY(sg_seg_cpu_spans(fn, name, &sources[j].spans));
        snprintf(name, sizeof name, "sources[%d].scores", j);
        SG_TRY(sg_seg_cpu_only(fn, name, sources[j].scores));
    }
    SG_TRY(sg_begin(&c, fn, layout, out, "out", exec));
    SG_TRY(sg_tok_view(&c, out, "out", SG_F32, 1, &o));
    SG_TRY(sg_tok_view(&c, mask, "mask", SG_MASK, 0, &m));
    /* shapes of every source, then contents of every source: nothing is written before */
    for (int32_t j = 0; j < n_sources; j++) {
        sg_segs s;
        const void *p;
        int32_t dt;
        snprintf(name, sizeof name, "sources[%d].spans", j);
        SG_TRY(sg_seg_views(&c, &sources[j].spans, name, &s));
        snprintf(name, sizeof name, "sources[%d].scores", j);
        SG_TRY(sg_vec_view(&c, sources[j].scores, name, s.S, SG_F32, 1, &p, &dt));
        snprintf(name, sizeof name, "sources[%d].weight", j);
        SG_TRY(sg_check_finite_param(fn, name, sources[j].weight));
    }
    SG_TRY(sg_check_offsets(&c));
    for (int32_t j = 0; j < n_sources; j++) {
        sg_segs s;
        const void *p;
        int32_t dt;
        snprintf(name, sizeof name, "sources[%d].spans", j);
        SG_TRY(sg_seg_views(&c, &sources[j].spans, name, &s));
        SG_TRY(sg_seg_contents(&c, name, &s, 0));
        snprintf(name, sizeof name, "sources[%d].scores", j);
        SG_TRY(sg_vec_view(&c, sources[j].scores, name, s.S, SG_F32, 1, &p, &dt));
        SG_TRY(sg_check_finite_vec(&c, name, (const float *)p, s.S));
    }
    const sg_geom *g = &c.g;
    sg_zero_rows(g, o);
    for (int32_t j = 0; j < n_sources; j++) {
        sg_segs s;
        const void *p;
        int32_t dt;
        sg_seg_views(&c, &sources[j].spans, "sources", &s);
        sg_vec_view(&c, sources[j].scores, "sources", s.S, SG_F32, 1, &p, &dt);
        const float *sc = (const float *)p;
        const float w = sources[j].weight;
        for (int64_t b = 0; b < g->B; b++) {
            float *orow = sg_f32(o, sg_base(g, o, b));
            const int64_t mb = sg_base(g, m, b);
            const int64_t k1 = sg_ix(s.off, s.odt, b + 1);
            for (int64_t k = sg_ix(s.off, s.odt, b); k < k1; k++) {
                const int64_t st = sg_ix(s.st, s.sdt, k);
                for (int64_t t = sg_ix(s.en, s.edt, k) - 1; t >= st; t--)
                    if (sg_valid(m, mb + t)) {
                        orow[t] += w * sc[k];
                        break;
                    }
            }
        }
    }
    return SEGRL_OK;
}
