/* common.c — validation shared by the segment area: the CPU-only guard, the workspace query and
 * segment spans (checked on the CPU, or on the device for CUDA views). */
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
    SG_TRY(sg_call_start(c, fn, exec));
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

segrl_status segrl_segment_workspace_size(segrl_device device, int64_t batch,
                                          size_t *out_bytes) {
    static const char *fn = "segrl_segment_workspace_size";
    if (!out_bytes) return sg_fail(SEGRL_ERR_INVALID, "%s: out_bytes: NULL", fn);
    if (device.type != SEGRL_DEVICE_CPU && device.type != SEGRL_DEVICE_CUDA)
        return sg_fail(SEGRL_ERR_INVALID, "%s: device: unknown device type %d", fn, device.type);
    if (batch < 0 || batch > ((int64_t)1 << 40))
        return sg_fail(SEGRL_ERR_INVALID, "%s: batch: %lld out of range", fn, (long long)batch);
    *out_bytes = device.type == SEGRL_DEVICE_CUDA
                     ? SG_WS_CHECK_BYTES + sg_align((size_t)(batch + 1) * sizeof(int64_t))
                     : 0;
    return SEGRL_OK;
}

segrl_status sg_seg_ws(const sg_call *c) {
    if (!sg_seg_on_cuda(c)) return SEGRL_OK;
    size_t need = 0;
    SG_TRY(segrl_segment_workspace_size(c->g.device, c->g.B, &need));
    return sg_workspace(c, need);
}

#ifdef SEGRL_WITH_CUDA
sg_dspans sg_seg_dspans(const sg_segs *s) {
    sg_dspans d;
    d.off = s->off, d.st = s->st, d.en = s->en;
    d.odt = s->odt, d.sdt = s->sdt, d.edt = s->edt;
    d.S = s->S;
    return d;
}
#endif

/* the first bad span in (sequence, span) order, as the CPU walks them */
static void sg_cpu_span_bad(const sg_geom *g, const sg_segs *s, sg_span_bad_t *out) {
    memset(out, 0, sizeof *out);
    for (int64_t b = 0; b < g->B; b++) {
        const int64_t len = sg_seq_len(g, b);
        const int64_t k0 = sg_ix(s->off, s->odt, b), k1 = sg_ix(s->off, s->odt, b + 1);
        int64_t prev = 0;
        for (int64_t k = k0; k < k1; k++) {
            const int64_t st = sg_ix(s->st, s->sdt, k), en = sg_ix(s->en, s->edt, k);
            const int what = st < prev ? 1 : en <= st ? 2 : en > len ? 3 : 0;
            if (what) {
                out->what = what, out->k = k, out->b = b, out->st = st, out->en = en;
                out->prev = prev, out->len = len, out->first = k == k0;
                return;
            }
            prev = en;
        }
    }
}

segrl_status sg_seg_contents(const sg_call *c, const char *name, const sg_segs *s, int force) {
    if (c->exec.checks != SEGRL_CHECKS_FULL && !force) return SEGRL_OK;
    const sg_geom *g = &c->g;
    int64_t bad = -1;
    sg_span_bad_t d;
    memset(&d, 0, sizeof d);
    if (sg_seg_on_cuda(c)) {
#ifdef SEGRL_WITH_CUDA
        SG_TRY(sg_cuda_bad_offset(s->off, s->odt, g->B, s->S, c->exec.workspace, c->exec.stream,
                                  &bad));
        if (bad < 0) {
            const sg_dspans ds = sg_seg_dspans(s);
            sg_span_bad e;
            SG_TRY(sg_cuda_span_check(g, &ds, c->exec.workspace, c->exec.stream, &e));
            d.what = e.what, d.k = e.k, d.b = e.b, d.st = e.st, d.en = e.en, d.prev = e.prev;
            d.len = e.len, d.first = e.first;
        }
#endif
    } else {
        bad = sg_cpu_bad_offset(s->off, s->odt, g->B, s->S);
        if (bad < 0) sg_cpu_span_bad(g, s, &d);
    }
    if (bad >= 0)
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: %s->offsets: entry %lld breaks offsets[0] == 0 <= ... <= "
                       "offsets[B] == S = %lld (entries of start/end)",
                       c->fn, name, (long long)bad, (long long)s->S);
    switch (d.what) {
    case 1:
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: %s->start: segment %lld (sequence %lld) starts at %lld, "
                       "before %s %lld (spans must be sorted, not overlapping)",
                       c->fn, name, (long long)d.k, (long long)d.b, (long long)d.st,
                       d.first ? "position" : "the previous segment's end", (long long)d.prev);
    case 2:
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: %s->end: segment %lld (sequence %lld) ends at %lld, not "
                       "after its start %lld (spans must be non-empty)",
                       c->fn, name, (long long)d.k, (long long)d.b, (long long)d.en,
                       (long long)d.st);
    case 3:
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: %s->end: segment %lld (sequence %lld) ends at %lld, past "
                       "the sequence's length %lld",
                       c->fn, name, (long long)d.k, (long long)d.b, (long long)d.en,
                       (long long)d.len);
    default: return SEGRL_OK;
    }
}

