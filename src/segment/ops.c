/* ops.c — segment reduce and scatter, the probability mask. */
#include "common.h"

// ----------------------------------------------------------------------------
// reduce

static void sg_cpu_reduce(const sg_geom *g, sg_tok x, sg_tok m, const sg_segs *s, int32_t op,
                          float *out) {
    for (int64_t b = 0; b < g->B; b++) {
        const float *xr = sg_f32(x, sg_base(g, x, b));
        const int64_t mb = sg_base(g, m, b);
        const int64_t k1 = sg_ix(s->off, s->odt, b + 1);
        for (int64_t k = sg_ix(s->off, s->odt, b); k < k1; k++) {
            const int64_t st = sg_ix(s->st, s->sdt, k), en = sg_ix(s->en, s->edt, k);
            double acc = 0;
            float best = 0, lastv = 0;
            int64_t n = 0;
            for (int64_t t = st; t < en; t++) {
                if (!sg_valid(m, mb + t)) continue;
                const float v = xr[t];
                acc += v;
                if (n == 0 || (op == SEGRL_REDUCE_MIN ? v < best : v > best)) best = v;
                lastv = v;
                n++;
            }
            float r = 0;
            if (n > 0) switch (op) {
                case SEGRL_REDUCE_SUM: r = (float)acc; break;
                case SEGRL_REDUCE_MEAN: r = (float)(acc / (double)n); break;
                case SEGRL_REDUCE_LAST: r = lastv; break;
                default: r = best; break;
                }
            out[k] = r;
        }
    }
}

segrl_status segrl_segment_reduce(const segrl_layout *layout, segrl_view x, segrl_view mask,
                                  const segrl_segments *segments, int32_t op,
                                  const segrl_exec *exec, segrl_view out) {
    static const char *fn = "segrl_segment_reduce";
    sg_call c;
    sg_tok xs, m;
    sg_segs s;
    const void *p;
    int32_t dt;
    SG_TRY(sg_begin(&c, fn, layout, x, "x", exec));
    SG_TRY(sg_tok_view(&c, x, "x", SG_F32, 1, &xs));
    SG_TRY(sg_tok_view(&c, mask, "mask", SG_MASK, 0, &m));
    SG_TRY(sg_seg_views(&c, segments, "segments", &s));
    if (op < SEGRL_REDUCE_SUM || op > SEGRL_REDUCE_LAST)
        return sg_fail(SEGRL_ERR_INVALID, "%s: op: %d is not a segrl_reduce_op", fn, op);
    SG_TRY(sg_vec_view(&c, out, "out", s.S, SG_F32, 1, &p, &dt));
    SG_TRY(sg_seg_ws(&c));
    SG_TRY(sg_check_offsets(&c));
    SG_TRY(sg_seg_contents(&c, "segments", &s, 0));
    SG_TRY(sg_check_finite_tok(&c, "x", xs, m));
    if (sg_seg_on_cuda(&c)) {
#ifdef SEGRL_WITH_CUDA
        const sg_dspans ds = sg_seg_dspans(&s);
        return sg_cuda_seg_reduce(&c.g, xs, m, &ds, op, (float *)p, c.exec.stream);
#endif
    }
    sg_cpu_reduce(&c.g, xs, m, &s, op, (float *)p);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// scatter

/* zero every slot of every sequence of out */
static void sg_zero_tok(const sg_geom *g, sg_tok o) {
    for (int64_t b = 0; b < g->B; b++) {
        int64_t n;
        float *r = sg_f32(o, sg_seq(g, o, b, &n));
        if (n > 0) memset(r, 0, (size_t)n * sizeof(float));
    }
}

static void sg_cpu_scatter(const sg_geom *g, const float *v, sg_tok m, const sg_segs *s,
                           int32_t mode, sg_tok o) {
    sg_zero_tok(g, o);
    for (int64_t b = 0; b < g->B; b++) {
        float *orow = sg_f32(o, sg_base(g, o, b));
        const int64_t mb = sg_base(g, m, b);
        const int64_t k1 = sg_ix(s->off, s->odt, b + 1);
        for (int64_t k = sg_ix(s->off, s->odt, b); k < k1; k++) {
            const int64_t st = sg_ix(s->st, s->sdt, k), en = sg_ix(s->en, s->edt, k);
            if (mode == SEGRL_SCATTER_BROADCAST) {
                for (int64_t t = st; t < en; t++)
                    if (sg_valid(m, mb + t)) orow[t] = v[k];
            } else {
                for (int64_t t = en - 1; t >= st; t--)
                    if (sg_valid(m, mb + t)) {
                        orow[t] = v[k];
                        break;
                    }
            }
        }
    }
}

segrl_status segrl_segment_scatter(const segrl_layout *layout, segrl_view values,
                                   segrl_view mask, const segrl_segments *segments, int32_t mode,
                                   const segrl_exec *exec, segrl_view out) {
    static const char *fn = "segrl_segment_scatter";
    sg_call c;
    sg_tok m, o;
    sg_segs s;
    const void *p;
    int32_t dt;
    SG_TRY(sg_begin(&c, fn, layout, out, "out", exec));
    SG_TRY(sg_tok_view(&c, out, "out", SG_F32, 1, &o));
    SG_TRY(sg_tok_view(&c, mask, "mask", SG_MASK, 0, &m));
    SG_TRY(sg_seg_views(&c, segments, "segments", &s));
    SG_TRY(sg_vec_view(&c, values, "values", s.S, SG_F32, 1, &p, &dt));
    if (mode != SEGRL_SCATTER_LAST && mode != SEGRL_SCATTER_BROADCAST)
        return sg_fail(SEGRL_ERR_INVALID, "%s: mode: %d is not a segrl_scatter_mode", fn, mode);
    SG_TRY(sg_seg_ws(&c));
    SG_TRY(sg_check_offsets(&c));
    SG_TRY(sg_seg_contents(&c, "segments", &s, 0));
    SG_TRY(sg_check_finite_vec(&c, "values", (const float *)p, s.S));
    if (sg_seg_on_cuda(&c)) {
#ifdef SEGRL_WITH_CUDA
        const sg_dspans ds = sg_seg_dspans(&s);
        return sg_cuda_seg_scatter(&c.g, (const float *)p, m, &ds, mode, o, c.exec.stream);
#endif
    }
    sg_cpu_scatter(&c.g, (const float *)p, m, &s, mode, o);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// probability mask

segrl_status segrl_prob_mask(const segrl_layout *layout, segrl_view probs, segrl_view mask,
                             float tau, const segrl_exec *exec, segrl_view out) {
    static const char *fn = "segrl_prob_mask";
    sg_call c;
    sg_tok pr, m, o;
    SG_TRY(sg_begin(&c, fn, layout, probs, "probs", exec));
    SG_TRY(sg_tok_view(&c, probs, "probs", SG_F32, 1, &pr));
    SG_TRY(sg_tok_view(&c, mask, "mask", SG_MASK, 0, &m));
    SG_TRY(sg_tok_view(&c, out, "out", SG_MASK, 1, &o));
    SG_TRY(sg_check_finite_param(fn, "tau", tau));
    if (o.data == pr.data && o.dtype != SEGRL_DTYPE_F32)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out: aliases probs with another dtype", fn);
    SG_TRY(sg_seg_ws(&c));
    SG_TRY(sg_check_offsets(&c));
    SG_TRY(sg_check_finite_tok(&c, "probs", pr, m));
    if (sg_seg_on_cuda(&c)) {
#ifdef SEGRL_WITH_CUDA
        return sg_cuda_prob_mask(&c.g, pr, m, tau, o, c.exec.stream);
#endif
    }
    const sg_geom *g = &c.g;
    for (int64_t b = 0; b < g->B; b++) {
        const int64_t len = sg_seq_len(g, b);
        const float *p = sg_f32(pr, sg_base(g, pr, b));
        const int64_t mb = sg_base(g, m, b), ob = sg_base(g, o, b);
        for (int64_t t = 0; t < len; t++) {
            const int on = sg_valid(m, mb + t) && p[t] < tau;
            switch (o.dtype) {
            case SEGRL_DTYPE_U8: ((uint8_t *)o.data)[ob + t] = (uint8_t)on; break;
            case SEGRL_DTYPE_I32: ((int32_t *)o.data)[ob + t] = on; break;
            case SEGRL_DTYPE_I64: ((int64_t *)o.data)[ob + t] = on; break;
            default: ((float *)o.data)[ob + t] = on ? 1.0f : 0.0f; break;
            }
        }
    }
    return SEGRL_OK;
}
