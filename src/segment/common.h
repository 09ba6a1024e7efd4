/* common.h — private helpers of the segment area (src/segment/): CPU-only guard, validated
 * segment spans (CSR per sequence), index reads/writes of either index dtype, mask tests. */
#ifndef SEGRL_SEGMENT_COMMON_H
#define SEGRL_SEGMENT_COMMON_H

#include "../check.h"
#include "../advantage/seq.h"

#include <math.h>

/* validated spans: offsets (B + 1), start/end (S entries at least) */
typedef struct sg_segs {
    const void *off, *st, *en;
    int32_t odt, sdt, edt;
    int64_t S; /* number of entries of start (== end) */
} sg_segs;

static inline int64_t sg_ix(const void *p, int32_t dt, int64_t i) {
    return dt == SEGRL_DTYPE_I32 ? (int64_t)((const int32_t *)p)[i] : ((const int64_t *)p)[i];
}

static inline void sg_ix_set(void *p, int32_t dt, int64_t i, int64_t v) {
    if (dt == SEGRL_DTYPE_I32) ((int32_t *)p)[i] = (int32_t)v;
    else ((int64_t *)p)[i] = v;
}

/* token slot `slot` of mask m valid? (absent mask: yes) */
static inline int sg_valid(sg_tok m, int64_t slot) {
    switch (m.data ? m.dtype : -1) {
    case SEGRL_DTYPE_U8: return ((const uint8_t *)m.data)[slot] != 0;
    case SEGRL_DTYPE_I32: return ((const int32_t *)m.data)[slot] != 0;
    case SEGRL_DTYPE_I64: return ((const int64_t *)m.data)[slot] != 0;
    case SEGRL_DTYPE_F32: return ((const float *)m.data)[slot] != 0.0f;
    default: return 1;
    }
}

/* length of sequence b under the call's geometry */
static inline int64_t sg_seq_len(const sg_geom *g, int64_t b) {
    return g->packed ? sg_off(g, b + 1) - sg_off(g, b) : g->T;
}

/* first slot of sequence b in token tensor x (0 when x is absent) */
static inline int64_t sg_base(const sg_geom *g, sg_tok x, int64_t b) {
    int64_t n;
    return x.data ? sg_seq(g, x, b, &n) : 0;
}

/* SEGRL_ERR_UNSUPPORTED when v is a CUDA view (this area is CPU only for now). */
segrl_status sg_seg_cpu_only(const char *fn, const char *name, segrl_view v);
/* the same for the layout's offsets and for the three views of a segrl_segments */
segrl_status sg_seg_cpu_layout(const char *fn, const segrl_layout *layout);
segrl_status sg_seg_cpu_spans(const char *fn, const char *name, const segrl_segments *s);

/* A call without token tensors (B from a CSR offsets vector): fills c for sg_vec_view. */
segrl_status sg_seg_begin_plain(sg_call *c, const char *fn, int64_t B, const segrl_exec *exec);

/* Views of `s` (named name->offsets, ...): offsets (B + 1), start and end (S) of equal length,
 * each i32/i64, contiguous, on the CPU. */
segrl_status sg_seg_views(const sg_call *c, const segrl_segments *s, const char *name,
                          sg_segs *out);

/* Content checks of validated spans: offsets 0 .. S non-decreasing, and within each sequence
 * 0 <= start < end <= len_b, end <= next start. Skipped under SEGRL_CHECKS_SHAPES unless force. */
segrl_status sg_seg_contents(const sg_call *c, const char *name, const sg_segs *s, int force);

/* the call's tensors live on a CUDA device */
static inline int sg_seg_on_cuda(const sg_call *c) { return c->g.device.type == SEGRL_DEVICE_CUDA; }

/* CUDA calls: exec->workspace of segrl_segment_workspace_size(device, B) bytes (CPU: none). */
segrl_status sg_seg_ws(const sg_call *c);

/* What sg_seg_contents reports: the first bad span (what 0: none). */
typedef struct sg_span_bad_t {
    int what; /* 1 start before the previous end (or 0), 2 empty, 3 past the length */
    int64_t k, b, st, en, prev, len;
    int first;
} sg_span_bad_t;

#ifdef SEGRL_WITH_CUDA
sg_dspans sg_seg_dspans(const sg_segs *s);
#endif


#endif /* SEGRL_SEGMENT_COMMON_H */
