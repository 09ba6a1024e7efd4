/* partition.c — partitioners: fixed (K parts / every M tokens), SPO cutpoints, delimiters, and
 * the check of caller-given spans. Each runs a counting pass, then (capacity checked) writes
 * offsets and, when given, start/end: nothing is written on failure. CUDA views: the same two
 * passes as kernels (kernels/segment.cu), the counts in the caller's workspace. */
#include "common.h"

#include <stdint.h>

enum { SG_PART_PARTS, SG_PART_EVERY, SG_PART_CUT, SG_PART_DELIM };

typedef struct sg_part {
    int kind;
    int64_t K, M;       /* PARTS, EVERY */
    float tau;          /* CUT */
    int64_t k, cap;     /* CUT */
    sg_tok probs;       /* CUT */
    sg_tok ids;         /* DELIM */
    const void *delims; /* DELIM */
    int32_t ddt;
    int64_t D;
    sg_tok mask;
} sg_part;

static int sg_is_delim(const sg_part *p, int64_t id) {
    for (int64_t i = 0; i < p->D; i++)
        if (sg_ix(p->delims, p->ddt, i) == id) return 1;
    return 0;
}

/* Walks sequence b; returns its number of segments. With st/en non-NULL, writes segment i of
 * the sequence at entry base + i. */
static int64_t sg_part_seq(const sg_geom *g, const sg_part *p, int64_t b, void *st, int32_t sdt,
                           void *en, int32_t edt, int64_t base) {
    const int64_t len = sg_seq_len(g, b);
    const int64_t mb = sg_base(g, p->mask, b);
    int64_t n = 0, K = 0, next = -1, step = 0, extra = 0, rem = 0;
    if (p->kind == SG_PART_PARTS) {
        for (int64_t t = 0; t < len; t++) n += sg_valid(p->mask, mb + t);
        K = p->K < n ? p->K : n;
        /* part q starts at ordinal floor(q n / K), walked without forming q * n (no overflow):
         * floor((q+1) n / K) = floor(q n / K) + n / K + carry of the remainders. K <= n, so
         * every part is non-empty. */
        if (K > 0) step = n / K, extra = n % K, next = step, rem = extra;
    }
    const float *pr = p->kind == SG_PART_CUT ? sg_f32(p->probs, sg_base(g, p->probs, b)) : NULL;
    const int64_t ib = p->kind == SG_PART_DELIM ? sg_base(g, p->ids, b) : 0;
    /* countdowns instead of j % M and low % k: no division per token */
    int64_t j = 0, nseg = 0, cur = -1, last = -1, every = 1, until = p->k;
    int prev_delim = 0;
    for (int64_t t = 0; t < len; t++) {
        if (!sg_valid(p->mask, mb + t)) continue;
        int brk = j == 0;
        switch (p->kind) {
        case SG_PART_PARTS:
            if (j == next) {
                brk = 1;
                next += step;
                rem += extra;
                if (rem >= K) next++, rem -= K;
            }
            break;
        case SG_PART_EVERY: /* valid ordinals 0, M, 2M, ... */
            if (--every == 0) brk = 1, every = p->M;
            break;
        case SG_PART_CUT: /* every k-th low-probability token (k, 2k, ...) may start a segment */
            if (pr[t] < p->tau && --until == 0) {
                until = p->k;
                if (!brk && (p->cap == 0 || nseg < p->cap)) brk = 1;
            }
            break;
        default: {
            brk = brk || prev_delim;
            prev_delim = sg_is_delim(p, sg_ix(p->ids.data, p->ids.dtype, ib + t));
        } break;
        }
        if (brk) {
            if (cur >= 0 && st) {
                sg_ix_set(st, sdt, base + nseg - 1, cur);
                sg_ix_set(en, edt, base + nseg - 1, t);
            }
            cur = t;
            nseg++;
        }
        last = t;
        j++;
    }
    if (cur >= 0 && st) {
        sg_ix_set(st, sdt, base + nseg - 1, cur);
        sg_ix_set(en, edt, base + nseg - 1, last + 1);
    }
    return nseg;
}

/* Validates `out`: offsets (B + 1) required, start/end both or neither, 1-D of equal length. */
static segrl_status sg_part_out(const sg_call *c, const segrl_segments *out, void **off,
                                int32_t *odt, void **st, int32_t *sdt, void **en, int32_t *edt,
                                int64_t *cap) {
    const char *fn = c->fn;
    const void *p;
    *st = *en = NULL;
    *cap = 0;
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    SG_TRY(sg_vec_view(c, out->offsets, "out->offsets", c->g.B + 1, SG_IDX, 1, &p, odt));
    *off = (void *)p;
    const int hs = !segrl_view_is_none(out->start), he = !segrl_view_is_none(out->end);
    if (hs != he)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: none while out->%s is given (pass both or neither)",
                       fn, hs ? "out->end" : "out->start", hs ? "start" : "end");
    if (!hs) return SEGRL_OK;
    if (out->start.ndim != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out->start: must be 1-D", fn);
    *cap = out->start.shape[0];
    SG_TRY(sg_vec_view(c, out->start, "out->start", *cap, SG_IDX, 1, &p, sdt));
    *st = (void *)p;
    SG_TRY(sg_vec_view(c, out->end, "out->end", *cap, SG_IDX, 1, &p, edt));
    *en = (void *)p;
    if (*cap > 0 && *st == *en)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out->end: is the same buffer as out->start", fn);
    if (*off == *st || *off == *en)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out->offsets: is the same buffer as out->%s", fn,
                       *off == *st ? "start" : "end");
    return SEGRL_OK;
}

/* counting pass, capacity and dtype checks, then the writes */
static segrl_status sg_part_run(const sg_call *c, const sg_part *p, const segrl_segments *out) {
    const char *fn = c->fn;
    const sg_geom *g = &c->g;
    void *off = NULL, *st = NULL, *en = NULL;
    int32_t odt = -1, sdt = -1, edt = -1;
    int64_t cap;
    SG_TRY(sg_part_out(c, out, &off, &odt, &st, &sdt, &en, &edt, &cap));
    SG_TRY(sg_seg_ws(c));
    SG_TRY(sg_check_offsets(c));
    int64_t S = 0, maxlen = 0;
#ifdef SEGRL_WITH_CUDA
    sg_dpart dp;
    memset(&dp, 0, sizeof dp);
    if (sg_seg_on_cuda(c)) {
        dp.kind = p->kind == SG_PART_PARTS ? SG_SPART_PARTS
                  : p->kind == SG_PART_EVERY ? SG_SPART_EVERY
                  : p->kind == SG_PART_CUT   ? SG_SPART_CUT
                                             : SG_SPART_DELIM;
        dp.K = p->K, dp.M = p->M, dp.tau = p->tau, dp.k = p->k, dp.cap = p->cap;
        dp.probs = p->probs, dp.ids = p->ids, dp.mask = p->mask;
        dp.delims = p->delims, dp.ddt = p->ddt, dp.D = p->D;
        SG_TRY(sg_cuda_part_count(g, &dp, c->exec.workspace, c->exec.stream, &S, &maxlen));
    }
#endif
    if (!sg_seg_on_cuda(c))
        for (int64_t b = 0; b < g->B; b++) {
            S += sg_part_seq(g, p, b, NULL, 0, NULL, 0, 0);
            const int64_t len = sg_seq_len(g, b);
            if (len > maxlen) maxlen = len;
        }
    if (odt == SEGRL_DTYPE_I32 && S > INT32_MAX)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out->offsets: i32 cannot hold %lld segments", fn,
                       (long long)S);
    if (st) {
        if (cap < S)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: out->start: holds %lld segments, %lld needed (call with start/end "
                           "none first: out->offsets[B] is the count)",
                           fn, (long long)cap, (long long)S);
        if ((sdt == SEGRL_DTYPE_I32 || edt == SEGRL_DTYPE_I32) && maxlen > INT32_MAX)
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: i32 cannot hold positions up to %lld", fn,
                           sdt == SEGRL_DTYPE_I32 ? "out->start" : "out->end", (long long)maxlen);
    }
#ifdef SEGRL_WITH_CUDA
    if (sg_seg_on_cuda(c))
        return sg_cuda_part_write(g, &dp, c->exec.workspace, off, odt, st, sdt, en, edt,
                                  c->exec.stream);
#endif
    int64_t base = 0;
    sg_ix_set(off, odt, 0, 0);
    for (int64_t b = 0; b < g->B; b++) {
        base += sg_part_seq(g, p, b, st, sdt, en, edt, base);
        sg_ix_set(off, odt, b + 1, base);
    }
    return SEGRL_OK;
}

segrl_status segrl_partition_fixed(const segrl_layout *layout, segrl_view mask, int64_t num_parts,
                                   int64_t every, const segrl_exec *exec,
                                   const segrl_segments *out) {
    static const char *fn = "segrl_partition_fixed";
    sg_call c;
    sg_part p;
    memset(&p, 0, sizeof p);
    SG_TRY(sg_begin(&c, fn, layout, mask, "mask", exec));
    SG_TRY(sg_tok_view(&c, mask, "mask", SG_MASK, 1, &p.mask));
    if (num_parts < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: num_parts: %lld, must be >= 0", fn,
                       (long long)num_parts);
    if (every < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: every: %lld, must be >= 0", fn, (long long)every);
    if ((num_parts > 0) == (every > 0))
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: num_parts: exactly one of num_parts and every must be > 0 (got %lld "
                       "and %lld)",
                       fn, (long long)num_parts, (long long)every);
    p.kind = num_parts > 0 ? SG_PART_PARTS : SG_PART_EVERY;
    p.K = num_parts;
    p.M = every;
    return sg_part_run(&c, &p, out);
}

segrl_cutpoint_opts segrl_cutpoint_opts_default(void) {
    segrl_cutpoint_opts o = {0.9f, 5, 0};
    return o;
}

segrl_status segrl_partition_cutpoints(const segrl_layout *layout, segrl_view probs,
                                       segrl_view mask, const segrl_cutpoint_opts *opts,
                                       const segrl_exec *exec, const segrl_segments *out) {
    static const char *fn = "segrl_partition_cutpoints";
    sg_call c;
    sg_part p;
    memset(&p, 0, sizeof p);
    segrl_cutpoint_opts o = opts ? *opts : segrl_cutpoint_opts_default();
    SG_TRY(sg_begin(&c, fn, layout, probs, "probs", exec));
    SG_TRY(sg_tok_view(&c, probs, "probs", SG_F32, 1, &p.probs));
    SG_TRY(sg_tok_view(&c, mask, "mask", SG_MASK, 0, &p.mask));
    SG_TRY(sg_check_finite_param(fn, "opts->tau", o.tau));
    if (o.k < 1) return sg_fail(SEGRL_ERR_INVALID, "%s: opts->k: %d, must be >= 1", fn, o.k);
    if (o.max_segments < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->max_segments: %lld, must be >= 0", fn,
                       (long long)o.max_segments);
    SG_TRY(sg_seg_ws(&c));
    SG_TRY(sg_check_offsets(&c));
    SG_TRY(sg_check_finite_tok(&c, "probs", p.probs, p.mask));
    p.kind = SG_PART_CUT;
    p.tau = o.tau;
    p.k = o.k;
    p.cap = o.max_segments;
    return sg_part_run(&c, &p, out);
}

segrl_status segrl_partition_delimiters(const segrl_layout *layout, segrl_view token_ids,
                                        segrl_view mask, segrl_view delimiters,
                                        const segrl_exec *exec, const segrl_segments *out) {
    static const char *fn = "segrl_partition_delimiters";
    sg_call c;
    sg_part p;
    memset(&p, 0, sizeof p);
    SG_TRY(sg_begin(&c, fn, layout, token_ids, "token_ids", exec));
    SG_TRY(sg_tok_view(&c, token_ids, "token_ids", SG_IDX, 1, &p.ids));
    SG_TRY(sg_tok_view(&c, mask, "mask", SG_MASK, 0, &p.mask));
    if (segrl_view_is_none(delimiters))
        return sg_fail(SEGRL_ERR_INVALID, "%s: delimiters: NULL (required)", fn);
    if (delimiters.ndim != 1 || delimiters.shape[0] < 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: delimiters: must be 1-D with D >= 1 entries", fn);
    p.D = delimiters.shape[0];
    SG_TRY(sg_vec_view(&c, delimiters, "delimiters", p.D, SG_IDX, 1, &p.delims, &p.ddt));
    p.kind = SG_PART_DELIM;
    return sg_part_run(&c, &p, out);
}

segrl_status segrl_segments_check(const segrl_layout *layout, segrl_view tokens,
                                  const segrl_segments *segments, const segrl_exec *exec) {
    static const char *fn = "segrl_segments_check";
    sg_call c;
    sg_segs s;
    SG_TRY(sg_begin(&c, fn, layout, tokens, "tokens", exec));
    sg_tok t;
    SG_TRY(sg_tok_view(&c, tokens, "tokens", 0x3fu, 1, &t));
    SG_TRY(sg_seg_views(&c, segments, "segments", &s));
    SG_TRY(sg_seg_ws(&c));
    /* this call is the check: run it whatever exec->checks says */
    sg_call full = c;
    full.exec.checks = SEGRL_CHECKS_FULL;
    SG_TRY(sg_check_offsets(&full));
    return sg_seg_contents(&full, "segments", &s, 1);
}
