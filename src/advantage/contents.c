/* contents.c — CPU content checks: offsets, group indices, non-finite floats. */
#include "seq.h"

/* exponent bits all ones: Inf or NaN */
static inline int sg_nonfinite(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (u & 0x7f800000u) == 0x7f800000u;
}

int64_t sg_cpu_bad_offset(const void *offsets, int32_t dtype, int64_t B, int64_t N) {
    sg_geom g = {1, dtype, B, 0, N, offsets, {SEGRL_DEVICE_CPU, 0}};
    if (sg_off(&g, 0) != 0) return 0;
    for (int64_t b = 1; b <= B; b++)
        if (sg_off(&g, b) < sg_off(&g, b - 1)) return b;
    if (sg_off(&g, B) != N) return B;
    return -1;
}

int64_t sg_cpu_bad_index(const void *idx, int32_t dtype, int64_t n, int64_t G) {
    for (int64_t i = 0; i < n; i++) {
        int64_t k = dtype == SEGRL_DTYPE_I32 ? (int64_t)((const int32_t *)idx)[i]
                                             : ((const int64_t *)idx)[i];
        if (k < 0 || k >= G) return i;
    }
    return -1;
}

int64_t sg_cpu_bad_token(const sg_geom *g, sg_tok x, sg_tok mask) {
    for (int64_t b = 0; b < g->B; b++) {
        int64_t n;
        const float *xs = (const float *)x.data + sg_seq(g, x, b, &n);
        int bad = 0; /* a branch-free scan; the position is looked for only on failure */
        SG_WITH_MASK(mask, sg_mask_slot(g, mask, b), P,
                     for (int64_t t = 0; t < n; t++) bad |= (P[t] != 0) & sg_nonfinite(xs[t]),
                     for (int64_t t = 0; t < n; t++) bad |= sg_nonfinite(xs[t]))
        if (!bad) continue;
        for (int64_t t = 0; t < n; t++) {
            int valid = 1;
            SG_WITH_MASK(mask, sg_mask_slot(g, mask, b), P, valid = P[t] != 0, (void)0)
            if (valid && sg_nonfinite(xs[t])) return g->packed ? sg_off(g, b) + t : b * g->T + t;
        }
    }
    return -1;
}

int64_t sg_cpu_bad_float(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (sg_nonfinite(x[i])) return i;
    return -1;
}
