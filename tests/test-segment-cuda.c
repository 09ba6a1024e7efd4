/* test-segment-cuda.c — the segment area on CUDA against the same calls on the CPU.
 *
 * Seeded random batches: padded (row stride > T) and packed (i32 / i64 offsets, empty
 * sequences), no mask or u8 / i32 / i64 / f32 masks with holes, left padding and all-masked
 * rows, NaN at masked tokens (never read), long sequences and many short ones; random spans
 * with gaps, spans holding only masked tokens, sequences without spans, mixed index dtypes.
 * Compared: the partitioners (offsets-only call and full call, entries past S untouched),
 * segments_check, reduce (sum / mean within 1e-6 relative, min / max / last identical),
 * scatter, SPO-chain, VinePPO and the probability mask (identical). Outputs start filled with
 * a sentinel on both sides, so slots neither side may write (between T and the row stride)
 * must come back untouched. Then bad input on the device: the CPU's status (and message, where
 * the CPU can name the same thing), outputs untouched.
 *
 * Without a CUDA device it prints one line and exits 77 (ctest: skipped). */
#include "harness.h"
#include "cuda_harness.h"

#include <cuda_runtime_api.h>
#include <segrl/segrl.h>

#define SENT 12345.0f
#define ISENT 0x5a


// ----------------------------------------------------------------------------
// index helpers

static size_t dsz(int dt) { return dt < 0 ? 0 : segrl_dtype_size((segrl_dtype)dt); }

static void put_ix(void *p, int dt, int64_t i, int64_t v) {
    if (dt == SEGRL_DTYPE_I32) ((int32_t *)p)[i] = (int32_t)v;
    else ((int64_t *)p)[i] = v;
}

// ----------------------------------------------------------------------------
// a test case

/* host arrays (h) and device copies (d) of the same inputs */
typedef struct arrs {
    void *off, *mask, *x, *p, *ids, *delims, *so, *st, *en, *V, *R, *V0, *r;
} arrs;

typedef struct tcase {
    const char *name;
    int packed, off64;
    int64_t B, T, rs, N, Z; /* Z: storage elements of a token tensor (B * rs or N) */
    int64_t *off;           /* B + 1 */
    int mask_dt, ids_dt, odt, sdt, edt, ddt;
    uint8_t *ok; /* Z validity bytes */
    int64_t S, D;
    int64_t *st64, *en64;
    arrs h, d;
    void *ws;
    size_t wsb;
} tcase;

static int64_t row_len(const tcase *c, int64_t b) { return c->packed ? c->off[b + 1] - c->off[b] : c->T; }
static int64_t row_at(const tcase *c, int64_t b) { return c->packed ? c->off[b] : b * c->rs; }

static void make_case(tcase *c, const char *name, int packed, int off64, int64_t B, int64_t T,
                      int64_t rs, int64_t lmin, int64_t lmax, int mask_dt, double hole,
                      int64_t maxspan, uint64_t seed) {
    memset(c, 0, sizeof *c);
    h_seed(seed);
    c->name = name;
    c->packed = packed;
    c->off64 = off64;
    c->B = B;
    c->off = (int64_t *)h_alloc((size_t)(B + 1) * 8);
    if (packed) {
        for (int64_t b = 0; b < B; b++) {
            int64_t n = h_unif() < 0.08 ? 0 : h_int(lmin, lmax);
            c->off[b + 1] = c->off[b] + n;
        }
        c->N = c->Z = c->off[B];
        c->T = 0;
        c->rs = 0;
    } else {
        for (int64_t b = 0; b <= B; b++) c->off[b] = b * T;
        c->T = T;
        c->rs = rs;
        c->N = B * T;
        c->Z = B * rs;
    }
    c->mask_dt = mask_dt;
    c->ids_dt = h_unif() < 0.5 ? SEGRL_DTYPE_I32 : SEGRL_DTYPE_I64;
    c->odt = h_unif() < 0.5 ? SEGRL_DTYPE_I32 : SEGRL_DTYPE_I64;
    c->sdt = h_unif() < 0.5 ? SEGRL_DTYPE_I32 : SEGRL_DTYPE_I64;
    c->edt = h_unif() < 0.5 ? SEGRL_DTYPE_I32 : SEGRL_DTYPE_I64;
    c->ddt = h_unif() < 0.5 ? SEGRL_DTYPE_I32 : SEGRL_DTYPE_I64;
    const int64_t Z = c->Z;
    c->ok = (uint8_t *)h_alloc((size_t)Z);
    c->h.off = h_alloc((size_t)(B + 1) * 8);
    for (int64_t b = 0; b <= B; b++) put_ix(c->h.off, off64 ? SEGRL_DTYPE_I64 : SEGRL_DTYPE_I32, b, c->off[b]);
    c->h.mask = mask_dt >= 0 ? h_alloc((size_t)Z * dsz(mask_dt)) : NULL;
    c->h.x = h_alloc((size_t)Z * 4);
    c->h.p = h_alloc((size_t)Z * 4);
    c->h.ids = h_alloc((size_t)Z * 8);
    float *x = (float *)c->h.x, *p = (float *)c->h.p;
    for (int64_t i = 0; i < Z; i++) x[i] = p[i] = NAN; /* the padded gap and masked slots */
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = row_len(c, b), at = row_at(c, b);
        const int dead = mask_dt >= 0 && h_unif() < 0.1;
        const int64_t lead = mask_dt >= 0 && !packed && h_unif() < 0.3 ? h_int(0, len / 2) : 0;
        for (int64_t t = 0; t < len; t++) {
            const int v = mask_dt < 0 || (!dead && t >= lead && h_unif() >= hole);
            c->ok[at + t] = (uint8_t)v;
            if (v) {
                x[at + t] = h_normal();
                p[at + t] = h_unif() < 0.7 ? (float)(h_unif() * 0.9) : (float)(0.9 + 0.1 * h_unif());
            }
            const int64_t id = v ? h_int(0, 40) : 7; /* masked delimiters must be ignored */
            put_ix(c->h.ids, c->ids_dt, at + t, id);
            if (mask_dt >= 0) switch (mask_dt) {
                case SEGRL_DTYPE_U8: ((uint8_t *)c->h.mask)[at + t] = (uint8_t)(v ? 1 : 0); break;
                case SEGRL_DTYPE_I32: ((int32_t *)c->h.mask)[at + t] = v ? 3 : 0; break;
                case SEGRL_DTYPE_I64: ((int64_t *)c->h.mask)[at + t] = v ? -2 : 0; break;
                default: ((float *)c->h.mask)[at + t] = v ? 0.5f : 0.0f; break;
                }
        }
    }
    c->D = 2;
    c->h.delims = h_alloc(16);
    put_ix(c->h.delims, c->ddt, 0, 7);
    put_ix(c->h.delims, c->ddt, 1, 13);
    /* spans: random lengths and gaps, some sequences without */
    int64_t cap = 16;
    c->st64 = (int64_t *)h_alloc((size_t)cap * 8);
    c->en64 = (int64_t *)h_alloc((size_t)cap * 8);
    int64_t *so = (int64_t *)h_alloc((size_t)(B + 1) * 8);
    int64_t S = 0;
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = row_len(c, b);
        int64_t t = h_unif() < 0.5 ? 0 : h_int(0, 3);
        if (h_unif() < 0.1) t = len; /* no spans */
        while (t < len) {
            const int64_t e0 = t + h_int(1, maxspan), e = e0 > len ? len : e0;
            if (S == cap) {
                cap *= 2;
                c->st64 = (int64_t *)realloc(c->st64, (size_t)cap * 8);
                c->en64 = (int64_t *)realloc(c->en64, (size_t)cap * 8);
            }
            c->st64[S] = t, c->en64[S] = e, S++;
            t = e + (h_unif() < 0.6 ? 0 : h_int(1, 3));
        }
        so[b + 1] = S;
    }
    c->S = S;
    c->h.so = h_alloc((size_t)(B + 1) * 8);
    c->h.st = h_alloc((size_t)(S + 1) * 8);
    c->h.en = h_alloc((size_t)(S + 1) * 8);
    for (int64_t b = 0; b <= B; b++) put_ix(c->h.so, c->odt, b, so[b]);
    for (int64_t k = 0; k < S; k++) {
        put_ix(c->h.st, c->sdt, k, c->st64[k]);
        put_ix(c->h.en, c->edt, k, c->en64[k]);
    }
    free(so);
    c->h.V = h_alloc((size_t)(S + 1) * 4);
    c->h.r = h_alloc((size_t)(S + 1) * 4);
    c->h.R = h_alloc((size_t)B * 4 + 4);
    c->h.V0 = h_alloc((size_t)B * 4 + 4);
    for (int64_t k = 0; k < S; k++) ((float *)c->h.V)[k] = h_normal(), ((float *)c->h.r)[k] = h_normal();
    for (int64_t b = 0; b < B; b++) ((float *)c->h.R)[b] = h_normal(), ((float *)c->h.V0)[b] = h_normal();
    /* device copies */
    c->d.off = d_up(c->h.off, (size_t)(B + 1) * 8);
    c->d.mask = c->h.mask ? d_up(c->h.mask, (size_t)Z * dsz(mask_dt)) : NULL;
    c->d.x = d_up(c->h.x, (size_t)Z * 4);
    c->d.p = d_up(c->h.p, (size_t)Z * 4);
    c->d.ids = d_up(c->h.ids, (size_t)Z * 8);
    c->d.delims = d_up(c->h.delims, 16);
    c->d.so = d_up(c->h.so, (size_t)(B + 1) * 8);
    c->d.st = d_up(c->h.st, (size_t)(S + 1) * 8);
    c->d.en = d_up(c->h.en, (size_t)(S + 1) * 8);
    c->d.V = d_up(c->h.V, (size_t)(S + 1) * 4);
    c->d.r = d_up(c->h.r, (size_t)(S + 1) * 4);
    c->d.R = d_up(c->h.R, (size_t)B * 4 + 4);
    c->d.V0 = d_up(c->h.V0, (size_t)B * 4 + 4);
    size_t wsb = 0;
    segrl_status st = segrl_segment_workspace_size(GPU, B, &wsb);
    CHECK(st == SEGRL_OK && wsb > 0, "%s: workspace size", name);
    c->wsb = wsb;
    c->ws = d_alloc(wsb);
}

static void free_case(tcase *c) {
    void **hp = (void **)&c->h, **dp = (void **)&c->d;
    for (size_t i = 0; i < sizeof(arrs) / sizeof(void *); i++) free(hp[i]), d_free(dp[i]);
    free(c->off), free(c->ok), free(c->st64), free(c->en64);
    d_free(c->ws);
}

// ----------------------------------------------------------------------------
// views of one side

static const arrs *side_of(const tcase *c, int gpu) { return gpu ? &c->d : &c->h; }

static segrl_view tokv(const tcase *c, int gpu, void *p, int dt) {
    if (!p) return segrl_view_none();
    const segrl_device dev = gpu ? GPU : CPU;
    if (c->packed) return segrl_view_1d(p, (segrl_dtype)dt, dev, c->N);
    int64_t shape[2] = {c->B, c->T}, strides[2] = {c->rs, 1};
    return segrl_view_nd(p, (segrl_dtype)dt, dev, 2, shape, strides);
}

static segrl_view vecv(int gpu, void *p, int dt, int64_t n) {
    return segrl_view_1d(p, (segrl_dtype)dt, gpu ? GPU : CPU, n);
}

static segrl_layout layout_of(const tcase *c, int gpu) {
    if (!c->packed) return segrl_layout_padded();
    return segrl_layout_packed(vecv(gpu, side_of(c, gpu)->off,
                                    c->off64 ? SEGRL_DTYPE_I64 : SEGRL_DTYPE_I32, c->B + 1));
}

static segrl_segments segs_of(const tcase *c, int gpu) {
    const arrs *a = side_of(c, gpu);
    segrl_segments s = {vecv(gpu, a->so, c->odt, c->B + 1), vecv(gpu, a->st, c->sdt, c->S),
                        vecv(gpu, a->en, c->edt, c->S)};
    return s;
}

static segrl_exec exec_of(const tcase *c, int gpu) {
    segrl_exec e = {NULL, gpu ? c->ws : NULL, gpu ? c->wsb : 0, SEGRL_CHECKS_FULL};
    return e;
}

static segrl_view maskv(const tcase *c, int gpu) {
    return tokv(c, gpu, side_of(c, gpu)->mask, c->mask_dt);
}

/* a float buffer of n on either side, filled with SENT */
static float *h_sent(int64_t n) {
    float *p = (float *)h_alloc((size_t)(n + 1) * 4);
    for (int64_t i = 0; i <= n; i++) p[i] = SENT;
    return p;
}

// ----------------------------------------------------------------------------
// the calls, on either side

enum { F_REDUCE, F_SCATTER, F_SPO, F_VINE, F_PMASK };

typedef struct callargs {
    int fam, op, with_v0, with_seg, out_dt;
    float gamma, tau;
    int checks;
} callargs;

/* Runs one call on side gpu; outputs into tok (Z elements of out_dt or f32) and vec (S). */
static segrl_status run_call(const tcase *c, int gpu, const callargs *a, void *tok, float *vec,
                             int no_ws) {
    const arrs *s = side_of(c, gpu);
    segrl_layout L = layout_of(c, gpu);
    segrl_segments sg = segs_of(c, gpu);
    segrl_exec e = exec_of(c, gpu);
    e.checks = a->checks;
    if (no_ws) e.workspace = NULL, e.workspace_bytes = 0;
    segrl_view m = maskv(c, gpu);
    switch (a->fam) {
    case F_REDUCE:
        return segrl_segment_reduce(&L, tokv(c, gpu, s->x, SEGRL_DTYPE_F32), m, &sg, a->op, &e,
                                    vecv(gpu, vec, SEGRL_DTYPE_F32, c->S));
    case F_SCATTER:
        return segrl_segment_scatter(&L, vecv(gpu, s->V, SEGRL_DTYPE_F32, c->S), m, &sg, a->op, &e,
                                     tokv(c, gpu, tok, SEGRL_DTYPE_F32));
    case F_SPO:
        return segrl_spo_chain(&L, m, &sg, vecv(gpu, s->V, SEGRL_DTYPE_F32, c->S),
                               vecv(gpu, s->R, SEGRL_DTYPE_F32, c->B),
                               a->with_v0 ? vecv(gpu, s->V0, SEGRL_DTYPE_F32, c->B) : segrl_view_none(),
                               &e, tokv(c, gpu, tok, SEGRL_DTYPE_F32),
                               a->with_seg ? vecv(gpu, vec, SEGRL_DTYPE_F32, c->S) : segrl_view_none());
    case F_VINE:
        return segrl_vineppo(&L, m, &sg, vecv(gpu, s->r, SEGRL_DTYPE_F32, c->S),
                             vecv(gpu, s->V, SEGRL_DTYPE_F32, c->S), a->gamma, &e,
                             tokv(c, gpu, tok, SEGRL_DTYPE_F32),
                             a->with_seg ? vecv(gpu, vec, SEGRL_DTYPE_F32, c->S) : segrl_view_none());
    default:
        return segrl_prob_mask(&L, tokv(c, gpu, s->p, SEGRL_DTYPE_F32), m, a->tau, &e,
                               tokv(c, gpu, tok, a->out_dt));
    }
}

/* CPU and GPU on the same inputs; outputs compared (sum/mean with a tolerance). The GPU's
 * status must equal the CPU's; on failure its outputs stay untouched. */
static void compare_call(const tcase *c, const char *what, const callargs *a) {
    const int tdt = a->fam == F_PMASK ? a->out_dt : SEGRL_DTYPE_F32;
    const size_t tb = (size_t)c->Z * dsz(tdt);
    void *ht = h_alloc(tb + 8), *gt = h_alloc(tb + 8);
    memset(ht, ISENT, tb), memset(gt, ISENT, tb);
    if (tdt == SEGRL_DTYPE_F32) {
        for (int64_t i = 0; i < c->Z; i++) ((float *)ht)[i] = ((float *)gt)[i] = SENT;
    }
    float *hv = h_sent(c->S), *gv = h_sent(c->S);
    void *dt = d_up(gt, tb);
    float *dv = (float *)d_up(gv, (size_t)(c->S + 1) * 4);
    segrl_clear_error();
    const segrl_status sc = run_call(c, 0, a, ht, hv, 0);
    char cmsg[512];
    snprintf(cmsg, sizeof cmsg, "%s", segrl_last_error());
    segrl_clear_error();
    const segrl_status sgp = run_call(c, 1, a, dt, dv, 0);
    CHECK(sc == SEGRL_OK && sgp == SEGRL_OK, "%s %s: cpu %s (%s), cuda %s (%s)", c->name, what,
          segrl_status_str(sc), cmsg, segrl_status_str(sgp), segrl_last_error());
    d_down(gt, dt, tb);
    d_down(gv, dv, (size_t)(c->S + 1) * 4);
    char w[160];
    snprintf(w, sizeof w, "%s %s tokens", c->name, what);
    if (tdt == SEGRL_DTYPE_F32) h_same_f(w, (const float *)ht, (const float *)gt, c->Z);
    else CHECK(memcmp(ht, gt, tb) == 0, "%s: differ", w);
    snprintf(w, sizeof w, "%s %s per-span", c->name, what);
    if (a->fam == F_REDUCE && (a->op == SEGRL_REDUCE_SUM || a->op == SEGRL_REDUCE_MEAN)) {
        double *want = (double *)h_alloc((size_t)(c->S + 1) * 8);
        for (int64_t k = 0; k <= c->S; k++) want[k] = hv[k];
        h_close_f(w, gv, want, c->S + 1, 1e-6, 1e-6);
        free(want);
    } else {
        h_same_f(w, hv, gv, c->S + 1);
    }
    free(ht), free(gt), free(hv), free(gv);
    d_free(dt), d_free(dv);
}

static void test_ops(const tcase *c) {
    callargs a;
    memset(&a, 0, sizeof a);
    for (int op = SEGRL_REDUCE_SUM; op <= SEGRL_REDUCE_LAST; op++) {
        char w[32];
        snprintf(w, sizeof w, "reduce op %d", op);
        a.fam = F_REDUCE, a.op = op;
        compare_call(c, w, &a);
    }
    a.fam = F_SCATTER, a.op = SEGRL_SCATTER_LAST;
    compare_call(c, "scatter last", &a);
    a.op = SEGRL_SCATTER_BROADCAST;
    compare_call(c, "scatter broadcast", &a);
    a.checks = SEGRL_CHECKS_SHAPES;
    compare_call(c, "scatter broadcast (shapes only)", &a);
    a.checks = SEGRL_CHECKS_FULL;
    a.fam = F_SPO, a.with_v0 = 1, a.with_seg = 1;
    compare_call(c, "spo_chain with V0", &a);
    a.with_v0 = 0, a.with_seg = 0;
    compare_call(c, "spo_chain", &a);
    a.fam = F_VINE, a.gamma = 0.95f, a.with_seg = 1;
    compare_call(c, "vineppo 0.95", &a);
    a.gamma = 1.0f, a.with_seg = 0;
    compare_call(c, "vineppo 1", &a);
    const int dts[4] = {SEGRL_DTYPE_U8, SEGRL_DTYPE_I32, SEGRL_DTYPE_I64, SEGRL_DTYPE_F32};
    for (int i = 0; i < 4; i++) {
        a.fam = F_PMASK, a.out_dt = dts[i], a.tau = i == 2 ? 0.5f : 0.9f;
        compare_call(c, "prob_mask", &a);
    }
    /* explicit spans check */
    segrl_layout L = layout_of(c, 1);
    segrl_segments sg = segs_of(c, 1);
    segrl_exec e = exec_of(c, 1);
    segrl_status st = segrl_segments_check(&L, tokv(c, 1, c->d.x, SEGRL_DTYPE_F32), &sg, &e);
    CHECK(st == SEGRL_OK, "%s segments_check: %s", c->name, segrl_last_error());
}

// ----------------------------------------------------------------------------
// partitioners

enum { P_FIXED, P_EVERY, P_CUT, P_DELIM };

typedef struct partargs {
    int kind;
    int64_t n; /* K or M */
    segrl_cutpoint_opts co;
} partargs;

static segrl_status run_part(const tcase *c, int gpu, const partargs *p, void *off, void *st,
                             void *en, int64_t cap) {
    const arrs *s = side_of(c, gpu);
    segrl_layout L = layout_of(c, gpu);
    segrl_exec e = exec_of(c, gpu);
    segrl_segments out = {vecv(gpu, off, c->odt, c->B + 1),
                          st ? vecv(gpu, st, c->sdt, cap) : segrl_view_none(),
                          en ? vecv(gpu, en, c->edt, cap) : segrl_view_none()};
    segrl_view m = maskv(c, gpu);
    switch (p->kind) {
    case P_FIXED:
    case P_EVERY: {
        /* the fixed partitioner requires a mask: all ones when the case has none */
        segrl_view mm = m;
        if (segrl_view_is_none(mm)) mm = tokv(c, gpu, s->x, SEGRL_DTYPE_F32); /* x has no zeros */
        return segrl_partition_fixed(&L, mm, p->kind == P_FIXED ? p->n : 0,
                                     p->kind == P_EVERY ? p->n : 0, &e, &out);
    }
    case P_CUT: return segrl_partition_cutpoints(&L, tokv(c, gpu, s->p, SEGRL_DTYPE_F32), m, &p->co, &e, &out);
    default:
        return segrl_partition_delimiters(&L, tokv(c, gpu, s->ids, c->ids_dt), m,
                                          vecv(gpu, s->delims, c->ddt, c->D), &e, &out);
    }
}

static void compare_part(const tcase *c, const char *what, const partargs *p) {
    const size_t ob = (size_t)(c->B + 1) * dsz(c->odt);
    uint8_t *ho = (uint8_t *)h_alloc(ob), *go = (uint8_t *)h_alloc(ob);
    memset(ho, ISENT, ob), memset(go, ISENT, ob);
    void *dof = d_up(go, ob);
    /* first call: offsets only */
    segrl_status sc = run_part(c, 0, p, ho, NULL, NULL, 0);
    segrl_status sgp = run_part(c, 1, p, dof, NULL, NULL, 0);
    CHECK(sc == SEGRL_OK && sgp == SEGRL_OK, "%s %s count: %s %s (%s)", c->name, what,
          segrl_status_str(sc), segrl_status_str(sgp), segrl_last_error());
    d_down(go, dof, ob);
    CHECK(memcmp(ho, go, ob) == 0, "%s %s: offsets differ", c->name, what);
    const int64_t S = c->odt == SEGRL_DTYPE_I32 ? ((int32_t *)ho)[c->B] : ((int64_t *)ho)[c->B];
    /* second call with room for S + 3 */
    const int64_t cap = S + 3;
    const size_t sb = (size_t)cap * dsz(c->sdt), eb = (size_t)cap * dsz(c->edt);
    uint8_t *hs = (uint8_t *)h_alloc(sb), *he = (uint8_t *)h_alloc(eb);
    uint8_t *gs = (uint8_t *)h_alloc(sb), *ge = (uint8_t *)h_alloc(eb);
    memset(hs, ISENT, sb), memset(he, ISENT, eb), memset(gs, ISENT, sb), memset(ge, ISENT, eb);
    memset(go, ISENT, ob);
    d_free(dof);
    dof = d_up(go, ob);
    void *dst = d_up(gs, sb), *den = d_up(ge, eb);
    sc = run_part(c, 0, p, ho, hs, he, cap);
    sgp = run_part(c, 1, p, dof, dst, den, cap);
    CHECK(sc == SEGRL_OK && sgp == SEGRL_OK, "%s %s spans: %s %s (%s)", c->name, what,
          segrl_status_str(sc), segrl_status_str(sgp), segrl_last_error());
    d_down(go, dof, ob), d_down(gs, dst, sb), d_down(ge, den, eb);
    CHECK(memcmp(ho, go, ob) == 0, "%s %s: offsets differ (full call)", c->name, what);
    CHECK(memcmp(hs, gs, sb) == 0, "%s %s: start differs", c->name, what);
    CHECK(memcmp(he, ge, eb) == 0, "%s %s: end differs", c->name, what);
    /* too small: the CPU's status, nothing written */
    if (S > 0) {
        memset(go, ISENT, ob), memset(gs, ISENT, sb), memset(ge, ISENT, eb);
        cudaMemcpy(dof, go, ob, cudaMemcpyHostToDevice);
        cudaMemcpy(dst, gs, sb, cudaMemcpyHostToDevice);
        cudaMemcpy(den, ge, eb, cudaMemcpyHostToDevice);
        sgp = run_part(c, 1, p, dof, dst, den, S - 1);
        CHECK(sgp == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "out->start"),
              "%s %s small capacity: %s (%s)", c->name, what, segrl_status_str(sgp),
              segrl_last_error());
        uint8_t *t = (uint8_t *)h_alloc(ob + sb + eb);
        d_down(t, dof, ob), d_down(t + ob, dst, sb), d_down(t + ob + sb, den, eb);
        int untouched = 1;
        for (size_t i = 0; i < ob + sb + eb; i++) untouched &= t[i] == ISENT;
        CHECK(untouched, "%s %s small capacity: output written", c->name, what);
        free(t);
    }
    free(ho), free(go), free(hs), free(he), free(gs), free(ge);
    d_free(dof), d_free(dst), d_free(den);
}

static void test_parts(const tcase *c) {
    partargs p;
    memset(&p, 0, sizeof p);
    const int64_t Ks[3] = {1, 3, 7}, Ms[2] = {1, 4};
    for (int i = 0; i < 3; i++) {
        p.kind = P_FIXED, p.n = Ks[i];
        compare_part(c, "partition_fixed K", &p);
    }
    for (int i = 0; i < 2; i++) {
        p.kind = P_EVERY, p.n = Ms[i];
        compare_part(c, "partition_fixed every", &p);
    }
    const segrl_cutpoint_opts cos[4] = {{0.9f, 5, 0}, {0.5f, 1, 3}, {0.99f, 2, 0}, {0.9f, 3, 1}};
    for (int i = 0; i < 4; i++) {
        p.kind = P_CUT, p.co = cos[i];
        compare_part(c, "partition_cutpoints", &p);
    }
    p.kind = P_DELIM;
    compare_part(c, "partition_delimiters", &p);
}

// ----------------------------------------------------------------------------
// bad input on the device

/* status and (when same_msg) message of the CPU; GPU outputs untouched */
static void expect_same_fail(const tcase *c, const char *what, const callargs *a, int same_msg) {
    const size_t tb = (size_t)c->Z * 4;
    float *ht = h_sent(c->Z), *gt = h_sent(c->Z), *hv = h_sent(c->S), *gv = h_sent(c->S);
    float *dt = (float *)d_up(gt, tb + 4), *dv = (float *)d_up(gv, (size_t)(c->S + 1) * 4);
    segrl_clear_error();
    const segrl_status sc = run_call(c, 0, a, ht, hv, 0);
    char cmsg[512];
    snprintf(cmsg, sizeof cmsg, "%s", segrl_last_error());
    segrl_clear_error();
    const segrl_status sgp = run_call(c, 1, a, dt, dv, 0);
    CHECK(sc == SEGRL_ERR_INVALID && sgp == sc, "%s %s: cpu %s, cuda %s (%s)", c->name, what,
          segrl_status_str(sc), segrl_status_str(sgp), segrl_last_error());
    if (same_msg)
        CHECK(strcmp(cmsg, segrl_last_error()) == 0, "%s %s: messages differ: \"%s\" vs \"%s\"",
              c->name, what, cmsg, segrl_last_error());
    d_down(gt, dt, tb + 4), d_down(gv, dv, (size_t)(c->S + 1) * 4);
    int untouched = 1;
    for (int64_t i = 0; i <= c->Z; i++) untouched &= gt[i] == SENT;
    for (int64_t i = 0; i <= c->S; i++) untouched &= gv[i] == SENT;
    CHECK(untouched, "%s %s: output written on failure", c->name, what);
    free(ht), free(gt), free(hv), free(gv);
    d_free(dt), d_free(dv);
}

/* set entry i of an index array (host and device copies) */
static void poke_ix(void *h, void *d, int dt, int64_t i, int64_t v) {
    put_ix(h, dt, i, v);
    cudaMemcpy((char *)d + (size_t)i * dsz(dt), (char *)h + (size_t)i * dsz(dt), dsz(dt),
               cudaMemcpyHostToDevice);
}
static void poke_f(void *h, void *d, int64_t i, float v) {
    ((float *)h)[i] = v;
    cudaMemcpy((float *)d + i, (float *)h + i, 4, cudaMemcpyHostToDevice);
}
static int64_t get_ix(const void *h, int dt, int64_t i) {
    return dt == SEGRL_DTYPE_I32 ? ((const int32_t *)h)[i] : ((const int64_t *)h)[i];
}

static void test_errors(tcase *c) {
    callargs a;
    memset(&a, 0, sizeof a);
    const int fams[4] = {F_REDUCE, F_SCATTER, F_SPO, F_VINE};
    /* a span in the middle: overlapping, empty, past the end; broken span offsets */
    const int64_t k = c->S / 2;
    const int64_t st0 = get_ix(c->h.st, c->sdt, k), en0 = get_ix(c->h.en, c->edt, k);
    struct {
        const char *what;
        int64_t st, en;
    } bad[4] = {{"overlap", -1, en0}, {"empty", st0, st0}, {"past end", st0, 1 << 30},
                {"one past end", st0, 0}};
    int64_t kb = 0;
    while (get_ix(c->h.so, c->odt, kb + 1) <= k) kb++;
    bad[3].en = row_len(c, kb) + 1;
    for (int i = 0; i < 4; i++) {
        poke_ix(c->h.st, c->d.st, c->sdt, k, bad[i].st);
        poke_ix(c->h.en, c->d.en, c->edt, k, bad[i].en);
        for (int f = 0; f < 4; f++) {
            a.fam = fams[f], a.op = 0, a.gamma = 1.0f;
            expect_same_fail(c, bad[i].what, &a, 1);
        }
        segrl_layout L = layout_of(c, 1);
        segrl_segments sg = segs_of(c, 1);
        segrl_exec e = exec_of(c, 1);
        e.checks = SEGRL_CHECKS_SHAPES; /* segments_check checks anyway */
        segrl_status st = segrl_segments_check(&L, tokv(c, 1, c->d.x, SEGRL_DTYPE_F32), &sg, &e);
        CHECK(st == SEGRL_ERR_INVALID, "%s segments_check %s: %s", c->name, bad[i].what,
              segrl_status_str(st));
    }
    poke_ix(c->h.st, c->d.st, c->sdt, k, st0);
    poke_ix(c->h.en, c->d.en, c->edt, k, en0);
    const int64_t o1 = get_ix(c->h.so, c->odt, 1);
    poke_ix(c->h.so, c->d.so, c->odt, 1, c->S + 1);
    a.fam = F_SPO;
    expect_same_fail(c, "span offsets", &a, 1);
    poke_ix(c->h.so, c->d.so, c->odt, 1, o1);
    /* non-finite per-span values and valid tokens */
    const float v0 = ((float *)c->h.V)[k];
    poke_f(c->h.V, c->d.V, k, NAN);
    a.fam = F_SPO;
    expect_same_fail(c, "NaN value", &a, 1);
    a.fam = F_SCATTER;
    expect_same_fail(c, "NaN value", &a, 1);
    poke_f(c->h.V, c->d.V, k, v0);
    int64_t vi = -1;
    for (int64_t i = c->Z - 1; i >= 0 && vi < 0; i--)
        if (c->ok[i] && (c->packed || i % c->rs < c->T)) vi = i;
    if (vi >= 0) {
        const float x0 = ((float *)c->h.x)[vi];
        poke_f(c->h.x, c->d.x, vi, INFINITY);
        a.fam = F_REDUCE;
        expect_same_fail(c, "Inf at a valid token", &a, !c->packed);
        poke_f(c->h.x, c->d.x, vi, x0);
        const float p0 = ((float *)c->h.p)[vi];
        poke_f(c->h.p, c->d.p, vi, NAN);
        a.fam = F_PMASK, a.out_dt = SEGRL_DTYPE_F32, a.tau = 0.9f;
        expect_same_fail(c, "NaN prob", &a, !c->packed);
        /* cutpoints: the same status, offsets untouched */
        partargs p = {P_CUT, 0, {0.9f, 5, 0}};
        uint8_t *go = (uint8_t *)h_alloc((size_t)(c->B + 1) * 8);
        memset(go, ISENT, (size_t)(c->B + 1) * 8);
        void *dof = d_up(go, (size_t)(c->B + 1) * 8);
        segrl_status st = run_part(c, 1, &p, dof, NULL, NULL, 0);
        d_down(go, dof, (size_t)(c->B + 1) * 8);
        int untouched = 1;
        for (int64_t i = 0; i < (c->B + 1) * 8; i++) untouched &= go[i] == ISENT;
        CHECK(st == SEGRL_ERR_INVALID && untouched, "%s cutpoints NaN prob: %s", c->name,
              segrl_status_str(st));
        free(go), d_free(dof);
        poke_f(c->h.p, c->d.p, vi, p0);
    }
    /* broken layout offsets (packed) */
    if (c->packed && c->B > 2) {
        const int odt = c->off64 ? SEGRL_DTYPE_I64 : SEGRL_DTYPE_I32;
        const int64_t o = get_ix(c->h.off, odt, 1);
        poke_ix(c->h.off, c->d.off, odt, 1, c->N + 5);
        a.fam = F_SCATTER, a.op = SEGRL_SCATTER_BROADCAST;
        expect_same_fail(c, "layout offsets", &a, 1);
        poke_ix(c->h.off, c->d.off, odt, 1, o);
    }
    /* no workspace */
    a.fam = F_REDUCE;
    float *dv = (float *)d_alloc((size_t)(c->S + 1) * 4);
    segrl_status st = run_call(c, 1, &a, NULL, dv, 1);
    CHECK(st == SEGRL_ERR_WORKSPACE, "%s no workspace: %s", c->name, segrl_status_str(st));
    d_free(dv);
}

int main(void) {
    if (segrl_cuda_device_count() == 0) {
        printf("no CUDA device: test-segment-cuda skipped\n");
        return 77;
    }
    struct {
        const char *name;
        int packed, off64;
        int64_t B, T, rs, lmin, lmax;
        int mask_dt;
        double hole;
        int64_t maxspan;
    } cases[] = {
        {"padded u8", 0, 0, 37, 300, 310, 0, 0, SEGRL_DTYPE_U8, 0.2, 40},
        {"padded none", 0, 0, 9, 130, 130, 0, 0, -1, 0.0, 70},
        {"padded f32 long", 0, 0, 2, 6000, 6003, 0, 0, SEGRL_DTYPE_F32, 0.1, 3000},
        {"padded i64 short", 0, 0, 700, 6, 9, 0, 0, SEGRL_DTYPE_I64, 0.3, 3},
        {"packed i32 offsets, i32 mask", 1, 0, 120, 0, 0, 0, 250, SEGRL_DTYPE_I32, 0.25, 60},
        {"packed i64 offsets, no mask", 1, 1, 60, 0, 0, 1, 400, -1, 0.0, 90},
        {"packed many short", 1, 1, 1500, 0, 0, 0, 5, SEGRL_DTYPE_U8, 0.2, 2},
        {"packed long", 1, 0, 3, 0, 0, 5000, 9000, SEGRL_DTYPE_F32, 0.05, 2500},
        {"padded one long row", 0, 1, 1, 65536, 65536, 0, 0, SEGRL_DTYPE_U8, 0.02, 20000},
        {"packed 20000 short", 1, 1, 20000, 0, 0, 0, 12, SEGRL_DTYPE_I32, 0.15, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tcase c;
        make_case(&c, cases[i].name, cases[i].packed, cases[i].off64, cases[i].B, cases[i].T,
                  cases[i].rs, cases[i].lmin, cases[i].lmax, cases[i].mask_dt, cases[i].hole,
                  cases[i].maxspan, 1000 + i);
        test_ops(&c);
        test_parts(&c);
        if (c.S > 0) test_errors(&c);
        free_case(&c);
    }
    return h_finish();
}
