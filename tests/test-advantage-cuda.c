/* test-advantage-cuda.c — every estimator on CUDA against the same call on the CPU.
 *
 * Seeded random inputs in padded (with a row stride > T) and packed (i32 and i64 offsets) layouts,
 * u8 / i32 / i64 / f32 masks with holes and left padding (not right-padding), all-masked rows and
 * empty packed sequences, interleaved groups of unequal size with singletons and empty groups.
 * Shapes include B=1,T=65536, B=65536,T=16, B=37,T=1000 and one per scan-kernel configuration.
 * Outputs start filled with a sentinel on both sides, so slots neither side may write (the gap
 * between T and the row stride) must come back untouched. Then the error paths on the device:
 * NaN at a valid token, bad packed offsets, group index out of range (outputs untouched).
 *
 * Without a CUDA device it prints one line and exits 77 (ctest: skipped). */
#include "harness.h"
#include "cuda_harness.h"

#include <cuda_runtime_api.h>
#include <segrl/segrl.h>

#define SENTINEL 12345.0f

// ----------------------------------------------------------------------------
// a test case: geometry and inputs (host), and their device copies

typedef struct side {
    segrl_device dev;
    float *r, *v, *lp, *rf, *scores, *greedy;
    void *mask, *gid, *off;
} side;

typedef struct tcase {
    const char *name;
    int packed, off64;
    int64_t B, T, rs, N; /* padded: T columns, row stride rs; packed: N tokens */
    int64_t S;           /* storage floats of a token tensor: B * rs or N */
    int64_t *off;        /* B + 1 */
    int32_t *off32;
    float *r, *v, *lp, *rf, *scores, *qscores, *greedy;
    int mask_dt;  /* segrl_dtype or -1 (none) */
    void *mask;   /* S entries of mask_dt */
    uint8_t *ok;  /* S validity bytes (for the test's own use) */
    int32_t *gid; /* B */
    int64_t *gid64;
    int gid_is64;
    int64_t G; /* num_groups (some may be empty) */
    side h, d;
} tcase;

static size_t dt_size(int dt) { return dt < 0 ? 0 : segrl_dtype_size((segrl_dtype)dt); }

static int64_t row_len(const tcase *c, int64_t b) {
    return c->packed ? c->off[b + 1] - c->off[b] : c->T;
}
static int64_t row_at(const tcase *c, int64_t b) { return c->packed ? c->off[b] : b * c->rs; }

/* sizes: groups of 1..7 members (about 1 in 5 a singleton), shuffled so groups interleave, plus
 * two empty group ids */
static void make_groups(tcase *c) {
    int64_t B = c->B, k = 0, b = 0;
    c->gid = (int32_t *)h_alloc((size_t)B * 4);
    c->gid64 = (int64_t *)h_alloc((size_t)B * 8);
    while (b < B) {
        int64_t n = h_unif() < 0.2 ? 1 : h_int(2, 7);
        for (int64_t i = 0; i < n && b < B; i++) c->gid[b++] = (int32_t)k;
        k++;
    }
    for (int64_t i = B - 1; i > 0; i--) {
        int64_t j = h_int(0, i);
        int32_t t = c->gid[i];
        c->gid[i] = c->gid[j];
        c->gid[j] = t;
    }
    for (b = 0; b < B; b++) c->gid64[b] = c->gid[b];
    c->G = k + 2;
}

/* shape: packed == 0: B x T with row stride rs; packed: lengths in [lmin, lmax] */
static void make_case(tcase *c, const char *name, int packed, int off64, int64_t B, int64_t T,
                      int64_t rs, int64_t lmin, int64_t lmax, int mask_dt, uint64_t seed) {
    memset(c, 0, sizeof *c);
    h_seed(seed);
    c->name = name;
    c->packed = packed;
    c->off64 = off64;
    c->B = B;
    c->off = (int64_t *)h_alloc((size_t)(B + 1) * 8);
    c->off32 = (int32_t *)h_alloc((size_t)(B + 1) * 4);
    if (packed) {
        for (int64_t b = 0; b < B; b++) {
            int64_t n = h_unif() < 0.05 ? 0 : h_int(lmin, lmax);
            c->off[b + 1] = c->off[b] + n;
        }
        c->N = c->off[B];
        c->S = c->N;
    } else {
        c->T = T;
        c->rs = rs;
        c->N = B * T;
        c->S = B * rs;
        for (int64_t b = 0; b <= B; b++) c->off[b] = b * T;
    }
    for (int64_t b = 0; b <= B; b++) c->off32[b] = (int32_t)c->off[b];
    const int64_t S = c->S;
    c->r = (float *)h_alloc((size_t)S * 4);
    c->v = (float *)h_alloc((size_t)S * 4);
    c->lp = (float *)h_alloc((size_t)S * 4);
    c->rf = (float *)h_alloc((size_t)S * 4);
    c->ok = (uint8_t *)h_alloc((size_t)S);
    /* every slot (gaps included) gets a finite value; the validity pattern per row: left
     * padding, holes, right padding, sometimes nothing valid */
    for (int64_t i = 0; i < S; i++) {
        c->r[i] = h_normal();
        c->v[i] = h_normal();
        c->lp[i] = -2.0f * (float)h_unif() - 0.01f;
        c->rf[i] = c->lp[i] + 0.3f * h_normal();
    }
    for (int64_t b = 0; b < B; b++) {
        const int64_t n = row_len(c, b), at = row_at(c, b);
        const int none = h_unif() < 0.05;
        const int64_t lpad = n > 4 && h_unif() < 0.5 ? h_int(0, n / 4) : 0;
        const int64_t rpad = n > 4 && h_unif() < 0.5 ? h_int(0, n / 4) : 0;
        for (int64_t t = 0; t < n; t++) {
            int ok = !none && t >= lpad && t < n - rpad && h_unif() >= 0.1;
            c->ok[at + t] = (uint8_t)ok;
        }
    }
    c->mask_dt = mask_dt;
    if (mask_dt >= 0) {
        c->mask = h_alloc((size_t)S * dt_size(mask_dt));
        for (int64_t i = 0; i < S; i++) {
            int ok = c->ok[i];
            switch (mask_dt) {
            case SEGRL_DTYPE_U8: ((uint8_t *)c->mask)[i] = (uint8_t)(ok ? 1 + h_int(0, 3) : 0); break;
            case SEGRL_DTYPE_I32: ((int32_t *)c->mask)[i] = ok ? 1 : 0; break;
            case SEGRL_DTYPE_I64: ((int64_t *)c->mask)[i] = ok ? -7 : 0; break;
            default: ((float *)c->mask)[i] = ok ? (h_unif() < 0.5 ? 1.0f : 0.5f) : 0.0f; break;
            }
        }
    } else {
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < row_len(c, b); t++) c->ok[row_at(c, b) + t] = 1;
    }
    c->scores = (float *)h_alloc((size_t)B * 4);
    c->qscores = (float *)h_alloc((size_t)B * 4);
    c->greedy = (float *)h_alloc((size_t)B * 4);
    for (int64_t b = 0; b < B; b++) {
        c->scores[b] = h_normal();
        c->qscores[b] = 0.5f * (float)h_int(0, 3); /* ties */
        c->greedy[b] = h_normal();
    }
    make_groups(c);
    c->gid_is64 = (seed & 1) != 0;

    c->h.dev = CPU;
    c->h.r = c->r;
    c->h.v = c->v;
    c->h.lp = c->lp;
    c->h.rf = c->rf;
    c->h.scores = c->scores;
    c->h.greedy = c->greedy;
    c->h.mask = c->mask;
    c->h.gid = c->gid_is64 ? (void *)c->gid64 : (void *)c->gid;
    c->h.off = c->off64 ? (void *)c->off : (void *)c->off32;

    c->d.dev = GPU;
    c->d.r = (float *)d_up_opt(c->r, (size_t)S * 4);
    c->d.v = (float *)d_up_opt(c->v, (size_t)S * 4);
    c->d.lp = (float *)d_up_opt(c->lp, (size_t)S * 4);
    c->d.rf = (float *)d_up_opt(c->rf, (size_t)S * 4);
    c->d.scores = (float *)d_up_opt(c->scores, (size_t)B * 4);
    c->d.greedy = (float *)d_up_opt(c->greedy, (size_t)B * 4);
    c->d.mask = d_up_opt(c->mask, (size_t)S * dt_size(mask_dt));
    c->d.gid = c->gid_is64 ? d_up_opt(c->gid64, (size_t)B * 8) : d_up_opt(c->gid, (size_t)B * 4);
    c->d.off = c->off64 ? d_up_opt(c->off, (size_t)(B + 1) * 8) : d_up_opt(c->off32, (size_t)(B + 1) * 4);
}

static void free_case(tcase *c) {
    d_free(c->d.r), d_free(c->d.v), d_free(c->d.lp), d_free(c->d.rf);
    d_free(c->d.scores), d_free(c->d.greedy), d_free(c->d.mask), d_free(c->d.gid);
    d_free(c->d.off);
    free(c->off), free(c->off32), free(c->r), free(c->v), free(c->lp), free(c->rf);
    free(c->scores), free(c->qscores), free(c->greedy), free(c->mask), free(c->ok);
    free(c->gid), free(c->gid64);
}

// ----------------------------------------------------------------------------
// views on either side

static segrl_view tok(const tcase *c, const side *s, void *p, int dt) {
    if (!p) return segrl_view_none();
    if (c->packed) return segrl_view_1d(p, (segrl_dtype)dt, s->dev, c->N);
    int64_t shape[2] = {c->B, c->T}, strides[2] = {c->rs, 1};
    return segrl_view_nd(p, (segrl_dtype)dt, s->dev, 2, shape, strides);
}
static segrl_view ftok(const tcase *c, const side *s, float *p) {
    return tok(c, s, p, SEGRL_DTYPE_F32);
}
static segrl_view mtok(const tcase *c, const side *s) { return tok(c, s, s->mask, c->mask_dt); }
static segrl_view vecf(const side *s, float *p, int64_t n) {
    return p ? segrl_view_1d(p, SEGRL_DTYPE_F32, s->dev, n) : segrl_view_none();
}
static segrl_view gidv(const tcase *c, const side *s) {
    return segrl_view_1d(s->gid, c->gid_is64 ? SEGRL_DTYPE_I64 : SEGRL_DTYPE_I32, s->dev, c->B);
}
static segrl_layout layout(const tcase *c, const side *s) {
    if (!c->packed) return segrl_layout_padded();
    return segrl_layout_packed(segrl_view_1d(
        s->off, c->off64 ? SEGRL_DTYPE_I64 : SEGRL_DTYPE_I32, s->dev, c->B + 1));
}

/* an output buffer of n floats filled with the sentinel, on the side's device */
static float *out_new(const side *s, int64_t n) {
    float *h = (float *)h_alloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) h[i] = SENTINEL;
    if (s->dev.type == SEGRL_DEVICE_CPU) return h;
    float *d = (float *)d_up_opt(h, (size_t)n * 4);
    free(h);
    return d;
}
/* host copy of an output buffer (the buffer itself for the CPU side) */
static float *out_get(const side *s, float *p, int64_t n) {
    if (s->dev.type == SEGRL_DEVICE_CPU) return p;
    float *h = (float *)h_alloc((size_t)n * 4);
    d_down(h, p, (size_t)n * 4);
    return h;
}
static void out_free(const side *s, float *p) {
    if (s->dev.type == SEGRL_DEVICE_CPU) free(p);
    else d_free(p);
}

static segrl_exec exec_for(const side *s, segrl_op op, const tcase *c, int64_t G, void **mem) {
    size_t n = 0;
    segrl_exec e;
    memset(&e, 0, sizeof e);
    *mem = NULL;
    if (segrl_workspace_size(op, s->dev, c->B, c->N, G, &n) != SEGRL_OK) {
        CHECK(0, "workspace_size: %s", segrl_last_error());
        return e;
    }
    if (n == 0) return e;
    *mem = s->dev.type == SEGRL_DEVICE_CPU ? h_alloc(n) : d_alloc(n);
    e.workspace = *mem;
    e.workspace_bytes = n;
    return e;
}
static void exec_free(const side *s, void *mem) {
    if (!mem) return;
    if (s->dev.type == SEGRL_DEVICE_CPU) free(mem);
    else d_free(mem);
}

// ----------------------------------------------------------------------------
// comparison: |gpu - cpu| <= 1e-4 + 1e-4 |cpu| + row_rtol * (largest |cpu| of the row)

static void compare(const char *what, const tcase *c, const float *gpu, const float *cpu,
                    double row_rtol) {
    int64_t bad = 0;
    double *scale = (double *)h_alloc((size_t)c->S * sizeof(double));
    for (int64_t b = 0; b < c->B && row_rtol > 0; b++) {
        const int64_t n = row_len(c, b), at = row_at(c, b);
        double m = 0;
        for (int64_t t = 0; t < n; t++)
            if (fabs((double)cpu[at + t]) > m) m = fabs((double)cpu[at + t]);
        for (int64_t t = 0; t < n; t++) scale[at + t] = m;
    }
    for (int64_t i = 0; i < c->S; i++) {
        const double want = cpu[i], got = gpu[i];
        const double tol = 1e-4 + 1e-4 * fabs(want) + row_rtol * scale[i];
        if (!(fabs(got - want) <= tol)) {
            if (bad < 5) printf("  %s %s[%lld]: gpu %.9g cpu %.9g\n", c->name, what, (long long)i, got, want);
            bad++;
        }
    }
    free(scale);
    CHECK(bad == 0, "%s %s: %lld of %lld values differ", c->name, what, (long long)bad,
          (long long)c->S);
}

static void compare_vec(const char *what, const tcase *c, const float *gpu, const float *cpu,
                        int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const double want = cpu[i], got = gpu[i];
        if (!(fabs(got - want) <= 1e-4 + 1e-4 * fabs(want))) {
            if (bad < 5) printf("  %s %s[%lld]: gpu %.9g cpu %.9g\n", c->name, what, (long long)i, got, want);
            bad++;
        }
    }
    CHECK(bad == 0, "%s %s: %lld of %lld values differ", c->name, what, (long long)bad, (long long)n);
}

#define RUN_OK(call, what)                                                                        \
    do {                                                                                          \
        segrl_status st_ = (call);                                                                \
        CHECK(st_ == SEGRL_OK, "%s %s (%s): %s: %s", c->name, what,                               \
              s->dev.type == SEGRL_DEVICE_CPU ? "cpu" : "cuda", segrl_status_str(st_),            \
              segrl_last_error());                                                                \
    } while (0)

// ----------------------------------------------------------------------------
// token-level ops

/* row tolerance for the scans: reassociation; grows with the row length and gamma * lambda */
static double scan_row_rtol(const tcase *c) {
    int64_t longest = 0;
    for (int64_t b = 0; b < c->B; b++)
        if (row_len(c, b) > longest) longest = row_len(c, b);
    return longest > 4096 ? 2e-4 : 2e-5;
}

static void test_gae(const tcase *c, float gamma, float lambda, int in_place) {
    char what[96];
    snprintf(what, sizeof what, "gae(%g,%g%s)", gamma, lambda, in_place ? ",in place" : "");
    float *res[2][2];
    for (int k = 0; k < 2; k++) {
        const side *s = k ? &c->d : &c->h;
        segrl_layout L = layout(c, s);
        void *mem;
        segrl_exec e = exec_for(s, SEGRL_OP_GAE, c, 0, &mem);
        float *a, *q;
        if (in_place && k == 1) { /* outputs over copies of the inputs */
            a = (float *)d_up_opt(c->r, (size_t)c->S * 4);
            q = (float *)d_up_opt(c->v, (size_t)c->S * 4);
            RUN_OK(segrl_gae(&L, ftok(c, s, a), ftok(c, s, q), mtok(c, s), gamma, lambda, &e,
                             ftok(c, s, a), ftok(c, s, q)),
                   what);
        } else {
            a = out_new(s, c->S);
            q = out_new(s, c->S);
            RUN_OK(segrl_gae(&L, ftok(c, s, s->r), ftok(c, s, s->v), mtok(c, s), gamma, lambda,
                             &e, ftok(c, s, a), ftok(c, s, q)),
                   what);
        }
        res[k][0] = out_get(s, a, c->S);
        res[k][1] = out_get(s, q, c->S);
        if (k == 1) out_free(s, a), out_free(s, q);
        exec_free(s, mem);
    }
    if (in_place) { /* the gaps hold the inputs, not the sentinel */
        for (int64_t i = 0; i < c->S; i++) {
            res[0][0][i] = res[1][0][i] == c->r[i] && res[0][0][i] == SENTINEL ? c->r[i] : res[0][0][i];
            res[0][1][i] = res[1][1][i] == c->v[i] && res[0][1][i] == SENTINEL ? c->v[i] : res[0][1][i];
        }
    }
    const double rt = scan_row_rtol(c);
    char w2[128];
    snprintf(w2, sizeof w2, "%s advantages", what);
    compare(w2, c, res[1][0], res[0][0], rt);
    snprintf(w2, sizeof w2, "%s returns", what);
    compare(w2, c, res[1][1], res[0][1], rt);
    for (int k = 0; k < 2; k++) free(res[k][0]), free(res[k][1]);
}

static void test_returns(const tcase *c, float gamma, float beta, int kl, int in_place) {
    char what[96];
    snprintf(what, sizeof what, "returns(gamma %g, beta %g, kl %d%s)", gamma, beta, kl,
             in_place ? ", in place" : "");
    segrl_returns_opts o = {gamma, beta, kl};
    const int penalty = beta != 0.0f && kl != SEGRL_KL_NONE;
    float *res[2];
    for (int k = 0; k < 2; k++) {
        const side *s = k ? &c->d : &c->h;
        segrl_layout L = layout(c, s);
        void *mem;
        segrl_exec e = exec_for(s, SEGRL_OP_DISCOUNTED_RETURNS, c, 0, &mem);
        segrl_view lp = penalty ? ftok(c, s, s->lp) : segrl_view_none();
        segrl_view rf = penalty ? ftok(c, s, s->rf) : segrl_view_none();
        float *g;
        if (in_place && k == 1) {
            g = (float *)d_up_opt(c->r, (size_t)c->S * 4);
            RUN_OK(segrl_discounted_returns(&L, ftok(c, s, g), mtok(c, s), lp, rf, &o, &e,
                                            ftok(c, s, g)),
                   what);
        } else {
            g = out_new(s, c->S);
            RUN_OK(segrl_discounted_returns(&L, ftok(c, s, s->r), mtok(c, s), lp, rf, &o, &e,
                                            ftok(c, s, g)),
                   what);
        }
        res[k] = out_get(s, g, c->S);
        if (k == 1) out_free(s, g);
        exec_free(s, mem);
    }
    if (in_place)
        for (int64_t i = 0; i < c->S; i++)
            if (res[0][i] == SENTINEL && res[1][i] == c->r[i]) res[0][i] = c->r[i];
    compare(what, c, res[1], res[0], scan_row_rtol(c));
    free(res[0]), free(res[1]);
}

static void test_whiten(const tcase *c, int grouped, int shift_mean, int unbiased, int in_place) {
    char what[96];
    snprintf(what, sizeof what, "whiten(%s, shift %d, unbiased %d%s)",
             grouped ? "grouped" : "global", shift_mean, unbiased, in_place ? ", in place" : "");
    segrl_whiten_opts o = {shift_mean, unbiased, 1e-8f};
    float *res[2];
    for (int k = 0; k < 2; k++) {
        const side *s = k ? &c->d : &c->h;
        segrl_layout L = layout(c, s);
        void *mem;
        segrl_exec e = exec_for(s, SEGRL_OP_WHITEN, c, grouped ? c->G : 1, &mem);
        segrl_view gi = grouped ? gidv(c, s) : segrl_view_none();
        float *x;
        if (in_place && k == 1) {
            x = (float *)d_up_opt(c->r, (size_t)c->S * 4);
            RUN_OK(segrl_whiten(&L, ftok(c, s, x), mtok(c, s), gi, grouped ? c->G : 0, &o, &e,
                                ftok(c, s, x)),
                   what);
        } else {
            x = out_new(s, c->S);
            RUN_OK(segrl_whiten(&L, ftok(c, s, s->r), mtok(c, s), gi, grouped ? c->G : 0, &o,
                                &e, ftok(c, s, x)),
                   what);
        }
        res[k] = out_get(s, x, c->S);
        if (k == 1) out_free(s, x);
        exec_free(s, mem);
    }
    if (in_place)
        for (int64_t i = 0; i < c->S; i++)
            if (res[0][i] == SENTINEL && res[1][i] == c->r[i]) res[0][i] = c->r[i];
    compare(what, c, res[1], res[0], 0.0);
    free(res[0]), free(res[1]);
}

// ----------------------------------------------------------------------------
// outcome estimators

static const struct {
    segrl_op op;
    const char *name;
} OUTCOME_OPS[] = {
    {SEGRL_OP_GRPO, "grpo"},   {SEGRL_OP_RLOO, "rloo"},
    {SEGRL_OP_REINFORCE_PP_BASELINE, "reinforce++-baseline"},
    {SEGRL_OP_REMAX, "remax"}, {SEGRL_OP_OPO, "opo"},
    {SEGRL_OP_GRPO_PASSK, "grpo-passk"}, {SEGRL_OP_GPG, "gpg"},
};

static segrl_status call_outcome(segrl_op op, const segrl_layout *L, const segrl_outcome *in,
                                 segrl_view greedy, const segrl_outcome_opts *o,
                                 const segrl_exec *e, segrl_view tok_out, segrl_view seq_out) {
    switch (op) {
    case SEGRL_OP_GRPO: return segrl_grpo(L, in, o, e, tok_out, seq_out);
    case SEGRL_OP_RLOO: return segrl_rloo(L, in, o, e, tok_out, seq_out);
    case SEGRL_OP_REINFORCE_PP_BASELINE: return segrl_reinforce_pp_baseline(L, in, o, e, tok_out, seq_out);
    case SEGRL_OP_REMAX: return segrl_remax(L, in, greedy, e, tok_out, seq_out);
    case SEGRL_OP_OPO: return segrl_opo(L, in, o, e, tok_out, seq_out);
    case SEGRL_OP_GRPO_PASSK: return segrl_grpo_passk(L, in, o, e, tok_out, seq_out);
    case SEGRL_OP_GPG: return segrl_gpg(L, in, o, e, tok_out, seq_out);
    default: return SEGRL_ERR_INVALID;
    }
}

/* src: 0 scores, 1 quantized scores (ties), 2 token rewards */
static void test_outcome(const tcase *c, int opi, int src, int scope, int singleton, int with_seq) {
    const segrl_op op = OUTCOME_OPS[opi].op;
    char what[128];
    snprintf(what, sizeof what, "%s(%s, scope %d, singleton %d)", OUTCOME_OPS[opi].name,
             src == 0 ? "scores" : (src == 1 ? "tied scores" : "token rewards"), scope, singleton);
    segrl_outcome_opts o = segrl_outcome_opts_default();
    o.std_scope = scope;
    o.singleton = singleton;
    float *res[2][2];
    float *qd = src == 1 ? (float *)d_up_opt(c->qscores, (size_t)c->B * 4) : NULL;
    for (int k = 0; k < 2; k++) {
        const side *s = k ? &c->d : &c->h;
        segrl_layout L = layout(c, s);
        void *mem;
        segrl_exec e = exec_for(s, op, c, op == SEGRL_OP_REMAX ? 1 : c->G, &mem);
        segrl_outcome in;
        memset(&in, 0, sizeof in);
        float *sc = src == 0 ? s->scores : (src == 1 ? (k ? qd : c->qscores) : NULL);
        in.scores = vecf(s, sc, c->B);
        in.token_rewards = src == 2 ? ftok(c, s, s->r) : segrl_view_none();
        in.mask = mtok(c, s);
        in.group_index = gidv(c, s);
        in.num_groups = c->G;
        float *t = out_new(s, c->S);
        float *q = with_seq ? out_new(s, c->B) : NULL;
        RUN_OK(call_outcome(op, &L, &in, vecf(s, s->greedy, c->B), &o, &e, ftok(c, s, t),
                            vecf(s, q, c->B)),
               what);
        res[k][0] = out_get(s, t, c->S);
        res[k][1] = q ? out_get(s, q, c->B) : NULL;
        if (k == 1) {
            out_free(s, t);
            if (q) out_free(s, q);
        }
        exec_free(s, mem);
    }
    d_free(qd);
    char w2[160];
    snprintf(w2, sizeof w2, "%s tokens", what);
    compare(w2, c, res[1][0], res[0][0], 0.0);
    if (with_seq) {
        snprintf(w2, sizeof w2, "%s sequences", what);
        compare_vec(w2, c, res[1][1], res[0][1], c->B);
    }
    for (int k = 0; k < 2; k++) free(res[k][0]), free(res[k][1]);
}

// ----------------------------------------------------------------------------
// cases

static void token_suite(const tcase *c, int full) {
    test_gae(c, 0.99f, 0.95f, 0);
    test_gae(c, 1.0f, 1.0f, 0);
    test_returns(c, 0.99f, 0.0f, SEGRL_KL_NONE, 0);
    test_returns(c, 1.0f, 0.1f, SEGRL_KL_K3, 0);
    test_whiten(c, 0, 1, 1, 0);
    test_whiten(c, 1, 1, 1, 0);
    if (!full) return;
    test_gae(c, 0.9f, 0.0f, 0);
    test_gae(c, 0.99f, 0.95f, 1);
    test_returns(c, 1.0f, 0.05f, SEGRL_KL_K1, 0);
    test_returns(c, 0.95f, 0.05f, SEGRL_KL_ABS, 0);
    test_returns(c, 1.0f, 0.05f, SEGRL_KL_K2, 1);
    test_whiten(c, 0, 0, 0, 0);
    test_whiten(c, 1, 0, 1, 1);
    test_whiten(c, 1, 1, 0, 0);
}

static void outcome_suite(const tcase *c, int full) {
    const int nops = (int)(sizeof OUTCOME_OPS / sizeof OUTCOME_OPS[0]);
    for (int i = 0; i < nops; i++)
        for (int src = 0; src < 3; src++)
            for (int scope = SEGRL_STD_GROUP; scope <= (full ? SEGRL_STD_NONE : SEGRL_STD_BATCH); scope++)
                for (int single = 0; single < 2; single++)
                    test_outcome(c, i, src, scope, single, (scope + single + src) % 2 == 0 || full);
}

static void run_case(tcase *c, int token_full, int outcome, int outcome_full) {
    int before = h_fail;
    token_suite(c, token_full);
    if (outcome) outcome_suite(c, outcome_full);
    printf("%s: B=%lld N=%lld %s\n", c->name, (long long)c->B, (long long)c->N,
           h_fail == before ? "ok" : "FAILED");
    free_case(c);
}

// ----------------------------------------------------------------------------
// error paths on the device: nothing may be written

static int untouched(const float *d, int64_t n) {
    float *h = (float *)h_alloc((size_t)n * 4);
    d_down(h, d, (size_t)n * 4);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= h[i] == SENTINEL;
    free(h);
    return ok;
}

static void test_errors(void) {
    tcase c0, *c = &c0;
    make_case(c, "errors padded", 0, 0, 37, 1000, 1003, 0, 0, SEGRL_DTYPE_U8, 901);
    const side *s = &c->d;
    segrl_layout L = layout(c, s);
    void *mem;
    segrl_exec e = exec_for(s, SEGRL_OP_GAE, c, 0, &mem);
    float *a = out_new(s, c->S), *q = out_new(s, c->S);

    /* NaN reward at a valid token; the same message as the CPU's */
    int64_t bad = -1, hole = -1;
    for (int64_t i = c->S / 2; i < c->S && (bad < 0 || hole < 0); i++) {
        if (i % c->rs >= c->T) continue;
        if (c->ok[i] && bad < 0) bad = i;
        if (!c->ok[i] && hole < 0) hole = i;
    }
    float nanv = NAN, keep = c->r[bad];
    c->r[bad] = nanv;
    cudaMemcpy(c->d.r + bad, &nanv, 4, cudaMemcpyHostToDevice);
    segrl_status st = segrl_gae(&L, ftok(c, s, s->r), ftok(c, s, s->v), mtok(c, s), 0.99f, 0.95f,
                                &e, ftok(c, s, a), ftok(c, s, q));
    char gpu_msg[512];
    snprintf(gpu_msg, sizeof gpu_msg, "%s", segrl_last_error());
    CHECK(st == SEGRL_ERR_INVALID, "NaN reward at a valid token: %s", segrl_status_str(st));
    CHECK(untouched(a, c->S) && untouched(q, c->S), "NaN reward: outputs were written");
    {
        float *ha = out_new(&c->h, c->S), *hq = out_new(&c->h, c->S);
        segrl_layout HL = layout(c, &c->h);
        segrl_status hs = segrl_gae(&HL, ftok(c, &c->h, c->r), ftok(c, &c->h, c->v),
                                    mtok(c, &c->h), 0.99f, 0.95f, NULL, ftok(c, &c->h, ha),
                                    ftok(c, &c->h, hq));
        CHECK(hs == SEGRL_ERR_INVALID && strcmp(gpu_msg, segrl_last_error()) == 0,
              "NaN reward: cuda says \"%s\", cpu \"%s\"", gpu_msg, segrl_last_error());
        free(ha), free(hq);
    }
    /* the same NaN under SEGRL_CHECKS_SHAPES is not looked for */
    {
        segrl_exec e2 = e;
        e2.checks = SEGRL_CHECKS_SHAPES;
        st = segrl_gae(&L, ftok(c, s, s->r), ftok(c, s, s->v), mtok(c, s), 0.99f, 0.95f, &e2,
                       ftok(c, s, a), ftok(c, s, q));
        CHECK(st == SEGRL_OK, "CHECKS_SHAPES with a NaN: %s", segrl_last_error());
    }
    c->r[bad] = keep;
    cudaMemcpy(c->d.r + bad, &keep, 4, cudaMemcpyHostToDevice);
    /* a NaN at a masked token is never inspected */
    cudaMemcpy(c->d.r + hole, &nanv, 4, cudaMemcpyHostToDevice);
    st = segrl_gae(&L, ftok(c, s, s->r), ftok(c, s, s->v), mtok(c, s), 0.99f, 0.95f, &e,
                   ftok(c, s, a), ftok(c, s, q));
    CHECK(st == SEGRL_OK, "NaN at a masked token: %s", segrl_last_error());
    cudaMemcpy(c->d.r + hole, &c->r[hole], 4, cudaMemcpyHostToDevice);
    /* a NaN log-probability at a valid token with the KL penalty on */
    {
        float *g = out_new(s, c->S);
        segrl_returns_opts o = {1.0f, 0.1f, SEGRL_KL_K3};
        cudaMemcpy(c->d.lp + bad, &nanv, 4, cudaMemcpyHostToDevice);
        st = segrl_discounted_returns(&L, ftok(c, s, s->r), mtok(c, s), ftok(c, s, s->lp),
                                      ftok(c, s, s->rf), &o, &e, ftok(c, s, g));
        CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "logprobs"),
              "NaN logprob: %s %s", segrl_status_str(st), segrl_last_error());
        CHECK(untouched(g, c->S), "NaN logprob: output written");
        cudaMemcpy(c->d.lp + bad, &c->lp[bad], 4, cudaMemcpyHostToDevice);
        out_free(s, g);
    }
    exec_free(s, mem);

    /* group index out of range (and negative): whiten and GRPO */
    {
        void *wm, *om;
        segrl_exec we = exec_for(s, SEGRL_OP_WHITEN, c, c->G, &wm);
        segrl_exec oe = exec_for(s, SEGRL_OP_GRPO, c, c->G, &om);
        float *t = out_new(s, c->S), *sq = out_new(s, c->B);
        const int64_t vals[2] = {c->G, -1};
        for (int k = 0; k < 2; k++) {
            const int64_t at = c->B / 2;
            if (c->gid_is64) cudaMemcpy((int64_t *)c->d.gid + at, &vals[k], 8, cudaMemcpyHostToDevice);
            else {
                int32_t v32 = (int32_t)vals[k];
                cudaMemcpy((int32_t *)c->d.gid + at, &v32, 4, cudaMemcpyHostToDevice);
            }
            st = segrl_whiten(&L, ftok(c, s, s->r), mtok(c, s), gidv(c, s), c->G, NULL, &we,
                              ftok(c, s, t));
            CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "group_index"),
                  "whiten group index %lld: %s %s", (long long)vals[k], segrl_status_str(st),
                  segrl_last_error());
            segrl_outcome in;
            memset(&in, 0, sizeof in);
            in.scores = vecf(s, s->scores, c->B);
            in.mask = mtok(c, s);
            in.group_index = gidv(c, s);
            in.num_groups = c->G;
            st = segrl_grpo(&L, &in, NULL, &oe, ftok(c, s, t), vecf(s, sq, c->B));
            CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "group_index"),
                  "grpo group index %lld: %s %s", (long long)vals[k], segrl_status_str(st),
                  segrl_last_error());
            CHECK(untouched(t, c->S) && untouched(sq, c->B), "bad group index: outputs written");
        }
        /* a NaN score */
        if (c->gid_is64) cudaMemcpy(c->d.gid, c->gid64, (size_t)c->B * 8, cudaMemcpyHostToDevice);
        else cudaMemcpy(c->d.gid, c->gid, (size_t)c->B * 4, cudaMemcpyHostToDevice);
        cudaMemcpy(c->d.scores + 3, &nanv, 4, cudaMemcpyHostToDevice);
        segrl_outcome in;
        memset(&in, 0, sizeof in);
        in.scores = vecf(s, s->scores, c->B);
        in.group_index = gidv(c, s);
        in.num_groups = c->G;
        st = segrl_grpo(&L, &in, NULL, &oe, ftok(c, s, t), vecf(s, sq, c->B));
        CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "scores"), "NaN score: %s %s",
              segrl_status_str(st), segrl_last_error());
        CHECK(untouched(t, c->S) && untouched(sq, c->B), "NaN score: outputs written");
        /* no workspace */
        segrl_exec none;
        memset(&none, 0, sizeof none);
        cudaMemcpy(c->d.scores + 3, &c->scores[3], 4, cudaMemcpyHostToDevice);
        st = segrl_grpo(&L, &in, NULL, &none, ftok(c, s, t), vecf(s, sq, c->B));
        CHECK(st == SEGRL_ERR_WORKSPACE, "grpo without workspace: %s", segrl_status_str(st));
        out_free(s, t), out_free(s, sq);
        exec_free(s, wm), exec_free(s, om);
    }
    out_free(s, a), out_free(s, q);
    free_case(c);

    /* packed: offsets not monotone, offsets[B] != N, offsets[0] != 0 */
    make_case(c, "errors packed", 1, 1, 20, 0, 0, 1, 50, SEGRL_DTYPE_F32, 902);
    s = &c->d;
    L = layout(c, s);
    e = exec_for(s, SEGRL_OP_GAE, c, 0, &mem);
    a = out_new(s, c->S), q = out_new(s, c->S);
    for (int k = 0; k < 3; k++) {
        int64_t *o = (int64_t *)h_alloc((size_t)(c->B + 1) * 8);
        memcpy(o, c->off, (size_t)(c->B + 1) * 8);
        if (k == 0) o[5] = o[6] + 1; /* offsets[6] < offsets[5] */
        else if (k == 1) o[c->B] = c->N + 1; /* offsets[B] != N */
        else o[0] = 1;                       /* offsets[0] != 0 */
        cudaMemcpy(c->d.off, o, (size_t)(c->B + 1) * 8, cudaMemcpyHostToDevice);
        st = segrl_gae(&L, ftok(c, s, s->r), ftok(c, s, s->v), mtok(c, s), 0.99f, 0.95f, &e,
                       ftok(c, s, a), ftok(c, s, q));
        CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "offsets"),
              "bad offsets %d: %s %s", k, segrl_status_str(st), segrl_last_error());
        CHECK(untouched(a, c->S) && untouched(q, c->S), "bad offsets %d: outputs written", k);
        free(o);
    }
    cudaMemcpy(c->d.off, c->off, (size_t)(c->B + 1) * 8, cudaMemcpyHostToDevice);
    st = segrl_gae(&L, ftok(c, s, s->r), ftok(c, s, s->v), mtok(c, s), 0.99f, 0.95f, &e,
                   ftok(c, s, a), ftok(c, s, q));
    CHECK(st == SEGRL_OK, "restored offsets: %s", segrl_last_error());
    out_free(s, a), out_free(s, q);
    exec_free(s, mem);
    free_case(c);
}

int main(void) {
    if (segrl_cuda_device_count() == 0) {
        printf("test-advantage-cuda: no CUDA device (built with CUDA: %d), skipped\n",
               segrl_built_with_cuda());
        return 77;
    }
    tcase c;

    /* the shapes of record */
    make_case(&c, "padded 37x1000 stride 1003 u8", 0, 0, 37, 1000, 1003, 0, 0, SEGRL_DTYPE_U8, 1);
    run_case(&c, 1, 1, 1);
    make_case(&c, "padded 37x1000 f32", 0, 0, 37, 1000, 1000, 0, 0, SEGRL_DTYPE_F32, 2);
    run_case(&c, 1, 1, 0);
    make_case(&c, "packed 37 x [1,2000] i64 u8", 1, 1, 37, 0, 0, 1, 2000, SEGRL_DTYPE_U8, 3);
    run_case(&c, 1, 1, 1);
    make_case(&c, "packed 500 x [1,40] i32 f32", 1, 0, 500, 0, 0, 1, 40, SEGRL_DTYPE_F32, 4);
    run_case(&c, 1, 1, 0);
    make_case(&c, "packed 300 x [1,300] i32 no mask", 1, 0, 300, 0, 0, 1, 300, -1, 5);
    run_case(&c, 0, 1, 0);
    make_case(&c, "padded 1x65536 u8", 0, 0, 1, 65536, 65536, 0, 0, SEGRL_DTYPE_U8, 6);
    run_case(&c, 1, 1, 0);
    make_case(&c, "padded 65536x16 f32", 0, 0, 65536, 16, 16, 0, 0, SEGRL_DTYPE_F32, 7);
    run_case(&c, 1, 1, 0);
    make_case(&c, "packed 65536 x [1,31] i64 u8", 1, 1, 65536, 0, 0, 1, 31, SEGRL_DTYPE_U8, 8);
    run_case(&c, 0, 1, 0);

    /* one padded shape per scan configuration (and multi-tile rows), each mask dtype */
    static const int64_t Ts[] = {1, 3, 16, 17, 31, 64, 100, 250, 512, 700, 1024, 1500, 2048,
                                 3000, 4096, 4097, 9000};
    static const int masks[] = {-1, SEGRL_DTYPE_I32, SEGRL_DTYPE_I64, SEGRL_DTYPE_U8,
                                SEGRL_DTYPE_F32};
    for (int i = 0; i < (int)(sizeof Ts / sizeof Ts[0]); i++) {
        char name[64];
        const int mk = masks[i % 5];
        snprintf(name, sizeof name, "padded 9x%lld mask %d", (long long)Ts[i], mk);
        make_case(&c, name, 0, 0, 9, Ts[i], Ts[i] + (i % 3), 0, 0, mk, 100 + (uint64_t)i);
        run_case(&c, 0, 0, 0);
    }
    /* a long packed tail in a block of short sequences (identity tiles for the others) */
    make_case(&c, "packed 200 x [0,5000] i64 i32", 1, 1, 200, 0, 0, 0, 5000, SEGRL_DTYPE_I32, 9);
    run_case(&c, 0, 1, 0);

    test_errors();
    return h_finish();
}
