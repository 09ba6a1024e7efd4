/* seq.h — walking the sequences of a geometry on the CPU: pointer to token 0 of sequence b and
 * its length, and mask tests for every mask dtype. */
#ifndef SEGRL_SEQ_H
#define SEGRL_SEQ_H

#include "../internal.h"

#include <string.h>

static inline int64_t sg_off(const sg_geom *g, int64_t b) {
    return g->offsets_dtype == SEGRL_DTYPE_I32 ? (int64_t)((const int32_t *)g->offsets)[b]
                                               : ((const int64_t *)g->offsets)[b];
}

/* first slot of sequence b in tensor x, and the sequence's length */
static inline int64_t sg_seq(const sg_geom *g, sg_tok x, int64_t b, int64_t *len) {
    if (!g->packed) {
        *len = g->T;
        return b * x.row_stride;
    }
    int64_t s = sg_off(g, b);
    *len = sg_off(g, b + 1) - s;
    return s;
}

static inline float *sg_f32(sg_tok x, int64_t b0) { return (float *)x.data + b0; }

/* Mask values of slots [start, start + len) of tensor m converted to 0/1 bytes (an absent mask
 * gives all 1). Converting a chunk once keeps the hot loops free of dtype switches. */
static inline void sg_mask_span(sg_tok m, int64_t start, int64_t len, uint8_t *out) {
    if (!m.data) {
        memset(out, 1, (size_t)len);
        return;
    }
    switch (m.dtype) {
    case SEGRL_DTYPE_U8: {
        const uint8_t *p = (const uint8_t *)m.data + start;
        for (int64_t t = 0; t < len; t++) out[t] = p[t] != 0;
    } break;
    case SEGRL_DTYPE_I32: {
        const int32_t *p = (const int32_t *)m.data + start;
        for (int64_t t = 0; t < len; t++) out[t] = p[t] != 0;
    } break;
    case SEGRL_DTYPE_I64: {
        const int64_t *p = (const int64_t *)m.data + start;
        for (int64_t t = 0; t < len; t++) out[t] = p[t] != 0;
    } break;
    default: {
        const float *p = (const float *)m.data + start;
        for (int64_t t = 0; t < len; t++) out[t] = p[t] != 0.0f;
    } break;
    }
}

/* mask chunk [beg, beg + len) of sequence b */
static inline void sg_mask_chunk(const sg_geom *g, sg_tok m, int64_t b, int64_t beg, int64_t len,
                                 uint8_t *out) {
    int64_t n;
    sg_mask_span(m, m.data ? sg_seq(g, m, b, &n) + beg : 0, len, out);
}

/* Rows are processed in chunks of this many tokens so the converted mask lives on the stack. */
#define SG_CHUNK 2048

#endif /* SEGRL_SEQ_H */

/* Runs BODY with P bound to the mask of tensor m at slot s, typed by the mask's dtype (so each
 * loop compiles to a vectorized form per dtype); runs NONE when the mask is absent. Inside BODY a
 * token t is valid when P[t] != 0. */
#define SG_WITH_MASK(m, s, P, BODY, NONE)                                                        \
    switch ((m).data ? (m).dtype : -1) {                                                          \
    case SEGRL_DTYPE_U8: {                                                                        \
        const uint8_t *P = (const uint8_t *)(m).data + (s);                                       \
        BODY;                                                                                     \
    } break;                                                                                      \
    case SEGRL_DTYPE_I32: {                                                                       \
        const int32_t *P = (const int32_t *)(m).data + (s);                                       \
        BODY;                                                                                     \
    } break;                                                                                      \
    case SEGRL_DTYPE_I64: {                                                                       \
        const int64_t *P = (const int64_t *)(m).data + (s);                                       \
        BODY;                                                                                     \
    } break;                                                                                      \
    case SEGRL_DTYPE_F32: {                                                                       \
        const float *P = (const float *)(m).data + (s);                                           \
        BODY;                                                                                     \
    } break;                                                                                      \
    default: {                                                                                    \
        NONE;                                                                                     \
    } break;                                                                                      \
    }

/* first slot of sequence b in mask m (0 when the mask is absent) */
static inline int64_t sg_mask_slot(const sg_geom *g, sg_tok m, int64_t b) {
    int64_t n;
    return m.data ? sg_seq(g, m, b, &n) : 0;
}

/* number of valid tokens of sequence b, of length n */
static inline int64_t sg_count_valid(const sg_geom *g, sg_tok m, int64_t b, int64_t n) {
    int64_t c = 0;
    SG_WITH_MASK(m, sg_mask_slot(g, m, b), P,
                 for (int64_t t = 0; t < n; t++) c += P[t] != 0,
                 c = n)
    return c;
}

/* o[t] = valid ? value : 0 over sequence b (o: its first slot) */
static inline void sg_fill_valid(const sg_geom *g, sg_tok m, int64_t b, int64_t n, float *o,
                                 float value) {
    SG_WITH_MASK(m, sg_mask_slot(g, m, b), P,
                 for (int64_t t = 0; t < n; t++) o[t] = P[t] != 0 ? value : 0.0f,
                 for (int64_t t = 0; t < n; t++) o[t] = value)
}
