/* common.c — validation shared by the segment area: the CPU-only guard and segment spans. */
#include "common.h"

segrl_status sg_seg_cpu_only(const char *fn, const char *name, segrl_view v) {
    if (segrl_view_is_none(v) || v.device.type != SEGRL_DEVICE_CUDA) return SEGRL_OK;
    return sg_fail(SEGRL_ERR_UNSUPPORTED,
                   "%s: %s: CUDA views are not supported by this op yet (CPU only)", fn, name);
}

segrl_status sg_seg_cpu_layout(const char *fn, const segrl_layout *layout) {
    return layout ? sg_seg_cpu_only(fn, "layout->offsets", layout->offsets) : SEGRL_OK;
}

segrl_status sg_seg_cpu_spans(const char *fn, const char *name, const segrl_segments *s) {
    char buf[96];
    if (!s) return SEGRL_OK; /* reported as NULL by sg_seg_views */
    snprintf(buf, sizeof buf, "%s->offsets", name);
    SG_TRY(sg_seg_cpu_only(fn, buf, s->offsets));
    snprintf(buf, sizeof buf, "%s->start", name);
    SG_TRY(sg_seg_cpu_only(fn, buf, s->start));
    snprintf(buf, sizeof buf, "%s->end", name);
    return sg_seg_cpu_only(fn, buf, s->end);
}

segrl_status sg_seg_begin_plain(sg_call *c, const char *fn, int64_t B, const segrl_exec *exec) {
    memset(c, 0, sizeof *c);
    c->fn = fn;
    if (exec) c->exec = *exec;
    if (c->exec.checks != SEGRL_CHECKS_FULL && c->exec.checks != SEGRL_CHECKS_SHAPES)
        return sg_fail(SEGRL_ERR_INVALID, "%s: exec: checks %d is not a segrl_checks value", fn,
                       c->exec.checks);
    c->g.device = segrl_cpu();
    c->g.B = B;
    return SEGRL_OK;
}

segrl_status sg_seg_views(const sg_call *c, const segrl_segments *s, const char *name,
                          sg_segs *out) {
    char bo[96], bs[96], be[96];
    memset(out, 0, sizeof *out);
    if (!s) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL", c->fn, name);
    snprintf(bo, sizeof bo, "%s->offsets", name);
    snprintf(bs, sizeof bs, "%s->start", name);
    snprintf(be, sizeof be, "%s->end", name);
    SG_TRY(sg_vec_view(c, s->offsets, bo, c->g.B + 1, SG_IDX, 1, &out->off, &out->odt));
    /* S comes from start; end must match it */
    if (!segrl_view_is_none(s->start) && s->start.ndim != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: must be 1-D (S)", c->fn, bs);
    int64_t S = segrl_view_is_none(s->start) ? 0 : s->start.shape[0];
    SG_TRY(sg_vec_view(c, s->start, bs, S, SG_IDX, 1, &out->st, &out->sdt));
    SG_TRY(sg_vec_view(c, s->end, be, S, SG_IDX, 1, &out->en, &out->edt));
    out->S = S;
    return SEGRL_OK;
}

segrl_status sg_seg_contents(const sg_call *c, const char *name, const sg_segs *s, int force) {
    if (c->exec.checks != SEGRL_CHECKS_FULL && !force) return SEGRL_OK;
    const sg_geom *g = &c->g;
    int64_t bad = sg_cpu_bad_offset(s->off, s->odt, g->B, s->S);
    if (bad >= 0)
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: %s->offsets: entry %lld breaks offsets[0] == 0 <= ... <= "
                       "offsets[B] == S = %lld (entries of start/end)",
                       c->fn, name, (long long)bad, (long long)s->S);
    for (int64_t b = 0; b < g->B; b++) {
        const int64_t len = sg_seq_len(g, b);
        const int64_t k1 = sg_ix(s->off, s->odt, b + 1);
        int64_t prev = 0;
        for (int64_t k = sg_ix(s->off, s->odt, b); k < k1; k++) {
            const int64_t st = sg_ix(s->st, s->sdt, k), en = sg_ix(s->en, s->edt, k);
            if (st < prev)
                return sg_fail(SEGRL_ERR_INVALID,
                               "%s: %s->start: segment %lld (sequence %lld) starts at %lld, "
                               "before %s %lld (spans must be sorted, not overlapping)",
                               c->fn, name, (long long)k, (long long)b, (long long)st,
                               k > sg_ix(s->off, s->odt, b) ? "the previous segment's end"
                                                            : "position",
                               (long long)prev);
            if (en <= st)
                return sg_fail(SEGRL_ERR_INVALID,
                               "%s: %s->end: segment %lld (sequence %lld) ends at %lld, not "
                               "after its start %lld (spans must be non-empty)",
                               c->fn, name, (long long)k, (long long)b, (long long)en,
                               (long long)st);
            if (en > len)
                return sg_fail(SEGRL_ERR_INVALID,
                               "%s: %s->end: segment %lld (sequence %lld) ends at %lld, past "
                               "the sequence's length %lld",
                               c->fn, name, (long long)k, (long long)b, (long long)en,
                               (long long)len);
            prev = en;
        }
    }
    return SEGRL_OK;
}

segrl_status sg_seg_finite(const char *fn, const char *name, float x) {
    if (!isfinite(x)) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: not finite", fn, name);
    return SEGRL_OK;
}
