/* fuzz-segments — segment descriptors (CSR offsets, start, end) and packed layouts with fuzzed
 * offsets, through segrl_segments_check, reduce, scatter, SPO-chain, VinePPO and the three
 * partitioners (two-call pattern). Checked: no crash; outputs untouched on failure (guards);
 * finite outputs; every call that reads spans accepts exactly the spans segrl_segments_check
 * accepts; a partitioner's spans pass segrl_segments_check. */
#include "fuzz_reader.h"
#include "fuzz_util.h"

#include <segrl/segment.h>

#define GUARD (-5555.0f)
enum { MAXB = 6, MAXT = 12, MAXS = 40 };

static int guarded(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (x[i] != GUARD) return 0;
    return 1;
}
static int finite_then_guard(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return x[n] == GUARD;
}
static void fill(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = GUARD;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reader r = {data, size, 0};
    uint8_t hdr = fz_u8(&r);
    int packed = hdr & 1, wide = (hdr >> 1) & 1;
    int64_t B = fz_u8(&r) % (MAXB + 1), T = fz_u8(&r) % (MAXT + 1);
    segrl_device cpu = segrl_cpu();
    /* layout */
    int64_t loff[MAXB + 1];
    int64_t ntok = B * T;
    segrl_layout lay = segrl_layout_padded();
    if (packed) {
        loff[0] = 0;
        for (int64_t b = 0; b < B; b++) loff[b + 1] = loff[b] + fz_u8(&r) % 5;
        if (fz_u8(&r) == 1 && B > 0) loff[fz_u8(&r) % (B + 1)] = fz_index(&r);
        ntok = loff[B] >= 0 && loff[B] <= MAXB * MAXT ? loff[B] : 0;
        lay = segrl_layout_packed(segrl_view_1d(loff, SEGRL_DTYPE_I64, cpu, B + 1));
    }
    int64_t tshape[2] = {B, T};
    float x[MAXB * MAXT + 1], probs[MAXB * MAXT + 1];
    uint8_t mask[MAXB * MAXT + 1];
    int32_t ids[MAXB * MAXT + 1];
    for (int64_t i = 0; i < ntok; i++) {
        x[i] = fz_float(&r);
        probs[i] = (fz_u8(&r) % 101) / 100.0f;
        mask[i] = fz_u8(&r) % 4 != 0;
        ids[i] = fz_u8(&r) % 4;
    }
#define TOKV(p, dt) (packed ? segrl_view_1d(p, dt, cpu, ntok) : segrl_view_2d(p, dt, cpu, B, T))
    (void)tshape;
    segrl_view xv = TOKV(x, SEGRL_DTYPE_F32), mv = TOKV(mask, SEGRL_DTYPE_U8);
    segrl_view pv = TOKV(probs, SEGRL_DTYPE_F32), iv = TOKV(ids, SEGRL_DTYPE_I32);

    /* explicit spans: mostly sorted and in range, sometimes anything */
    int64_t off[MAXB + 1], st[MAXS], en[MAXS];
    int32_t off32[MAXB + 1], st32[MAXS], en32[MAXS];
    int64_t S = 0;
    off[0] = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t k = fz_u8(&r) % 4, p = 0;
        for (int64_t j = 0; j < k && S < MAXS; j++, S++) {
            uint8_t c = fz_u8(&r);
            if (c >= 240) {
                st[S] = fz_index(&r), en[S] = fz_index(&r);
            } else {
                st[S] = p + c % 3;
                en[S] = st[S] + 1 + (c >> 2) % 4;
                p = en[S];
            }
        }
        off[b + 1] = S;
    }
    if (fz_u8(&r) == 2) off[fz_u8(&r) % (B + 1)] = fz_index(&r);
    for (int64_t i = 0; i <= B; i++) off32[i] = (int32_t)off[i];
    for (int64_t i = 0; i < S; i++) st32[i] = (int32_t)st[i], en32[i] = (int32_t)en[i];
    segrl_dtype idt = wide ? SEGRL_DTYPE_I64 : SEGRL_DTYPE_I32;
    segrl_segments sg = {segrl_view_1d(wide ? (void *)off : (void *)off32, idt, cpu, B + 1),
                         segrl_view_1d(wide ? (void *)st : (void *)st32, idt, cpu, S),
                         segrl_view_1d(wide ? (void *)en : (void *)en32, idt, cpu, S)};
    segrl_exec ex = {.checks = SEGRL_CHECKS_FULL};
    segrl_status ok = segrl_segments_check(&lay, xv, &sg, &ex);

    float out[MAXS + 1], tok[MAXB * MAXT + 1], vals[MAXS], rew[MAXB + 1], sadv[MAXS + 1];
    for (int64_t i = 0; i < S; i++) vals[i] = fz_float(&r);
    for (int64_t b = 0; b < B; b++) rew[b] = fz_float(&r);
    int finite_in = 1, moderate = 1; /* moderate: |x| <= 1e6, so no arithmetic overflows */
    for (int64_t i = 0; i < S; i++) moderate &= fabsf(vals[i]) <= 1e6f;
    for (int64_t b = 0; b < B; b++) moderate &= fabsf(rew[b]) <= 1e6f;
    for (int64_t i = 0; i < S; i++) finite_in &= isfinite(vals[i]) != 0;
    for (int64_t b = 0; b < B; b++) finite_in &= isfinite(rew[b]) != 0;

    fill(out, S + 1);
    segrl_status s1 = segrl_segment_reduce(&lay, xv, mv, &sg, fz_u8(&r) % 5, &ex,
                                           segrl_view_1d(out, SEGRL_DTYPE_F32, cpu, S));
    if (s1 != SEGRL_OK && !guarded(out, S + 1)) abort();
    if ((s1 == SEGRL_OK) && ok != SEGRL_OK) abort(); /* reduce accepted spans check refused */

    fill(tok, ntok + 1);
    s1 = segrl_segment_scatter(&lay, segrl_view_1d(vals, SEGRL_DTYPE_F32, cpu, S), mv, &sg,
                               fz_u8(&r) % 2, &ex, xv.ndim == 2 ? segrl_view_2d(tok, SEGRL_DTYPE_F32, cpu, B, T)
                                                              : segrl_view_1d(tok, SEGRL_DTYPE_F32, cpu, ntok));
    if (s1 != SEGRL_OK ? !guarded(tok, ntok + 1) : !finite_then_guard(tok, ntok)) abort();
    if (s1 == SEGRL_OK && ok != SEGRL_OK) abort();

    fill(tok, ntok + 1), fill(sadv, S + 1);
    segrl_view tokv = packed ? segrl_view_1d(tok, SEGRL_DTYPE_F32, cpu, ntok)
                             : segrl_view_2d(tok, SEGRL_DTYPE_F32, cpu, B, T);
    s1 = segrl_spo_chain(&lay, mv, &sg, segrl_view_1d(vals, SEGRL_DTYPE_F32, cpu, S),
                         segrl_view_1d(rew, SEGRL_DTYPE_F32, cpu, B), segrl_view_none(), &ex, tokv,
                         segrl_view_1d(sadv, SEGRL_DTYPE_F32, cpu, S));
    if (s1 != SEGRL_OK ? (!guarded(tok, ntok + 1) || !guarded(sadv, S + 1))
                       : (moderate && !finite_then_guard(tok, ntok)))
        abort();
    if (s1 == SEGRL_OK && (ok != SEGRL_OK || !finite_in)) abort();

    fill(tok, ntok + 1), fill(sadv, S + 1);
    float gamma = fz_float(&r);
    s1 = segrl_vineppo(&lay, mv, &sg, segrl_view_1d(vals, SEGRL_DTYPE_F32, cpu, S),
                       segrl_view_1d(vals, SEGRL_DTYPE_F32, cpu, S), gamma, &ex, tokv,
                       segrl_view_1d(sadv, SEGRL_DTYPE_F32, cpu, S));
    if (s1 != SEGRL_OK ? (!guarded(tok, ntok + 1) || !guarded(sadv, S + 1))
                       : (moderate && fabsf(gamma) <= 1e6f && !finite_then_guard(tok, ntok))) {
        fprintf(stderr, "vineppo: status %d gamma %g\n", (int)s1, gamma);
        for (int64_t i = 0; i < S; i++) fprintf(stderr, "%g ", vals[i]);
        abort();
    }

    /* partitioners: count, then spans, then the spans pass the check */
    for (int which = 0; which < 3; which++) {
        int64_t poff[MAXB + 1], pst[MAXB * MAXT + 1], pen[MAXB * MAXT + 1];
        segrl_segments po = {segrl_view_1d(poff, SEGRL_DTYPE_I64, cpu, B + 1), segrl_view_none(),
                             segrl_view_none()};
        int64_t K = fz_u8(&r) % 5, every = K ? 0 : fz_u8(&r) % 4;
        if (fz_u8(&r) == 5) K = fz_index(&r);
        segrl_cutpoint_opts co = segrl_cutpoint_opts_default();
        co.tau = fz_float(&r);
        co.k = (int32_t)(fz_u8(&r) % 4);
        co.max_segments = fz_u8(&r) % 3;
        int32_t delims[2] = {fz_u8(&r) % 4, 1};
        segrl_view dv = segrl_view_1d(delims, SEGRL_DTYPE_I32, cpu, 1 + (fz_u8(&r) & 1));
        segrl_status a;
#define PART(o)                                                                                   \
    (which == 0   ? segrl_partition_fixed(&lay, mv, K, every, &ex, o)                              \
     : which == 1 ? segrl_partition_cutpoints(&lay, pv, mv, &co, &ex, o)                           \
                  : segrl_partition_delimiters(&lay, iv, mv, dv, &ex, o))
        a = PART(&po);
        if (a != SEGRL_OK) continue;
        int64_t PS = poff[B];
        if (PS < 0 || PS > ntok) abort(); /* at most one segment per valid token */
        po.start = segrl_view_1d(pst, SEGRL_DTYPE_I64, cpu, PS);
        po.end = segrl_view_1d(pen, SEGRL_DTYPE_I64, cpu, PS);
        if (PART(&po) != SEGRL_OK) abort(); /* the same call with room for the spans */
        if (poff[B] != PS) abort();
        if (segrl_segments_check(&lay, mv, &po, &ex) != SEGRL_OK) {
            fprintf(stderr, "partitioner %d: %s\n", which, segrl_last_error());
            abort();
        }
#undef PART
    }
    return 0;
}
