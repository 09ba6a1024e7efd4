/* test-tree-cuda.c — tree values and tree advantages on CUDA against the same calls on the CPU.
 *
 * Seeded random batches: a deep chain of 10^5 nodes (with leaves hanging off the spine), wide
 * trees (levels of tens of thousands of nodes), a wide level above and below a deep chain (both
 * level-kernel paths in one call), many small trees, random forests; i32 and i64 parents, with
 * and without the depth array and spans, leaf rewards with ties and NaN at inner nodes (ignored).
 * Every value kind with leaf counts (none / i32 / i64), every advantage kind with biased and
 * unbiased stds, leaf GRPO and node masks of every dtype, drop_zero, out_advantages aliasing
 * values. Outputs start filled with a sentinel. Tolerance: |gpu - cpu| <= 1e-6 + 1e-5 |cpu|
 * (both accumulate in f64, in a different order); leaf counts and MAX values exactly.
 * Then bad input on the device (parent not before its child or out of range, wrong depth, bad
 * spans, NaN leaf reward, NaN values, mixed devices, short workspace): the CPU's status and
 * message, outputs untouched.
 *
 * Without a CUDA device it prints one line and exits 77 (ctest: skipped). */
#include "harness.h"
#include "cuda_harness.h"

#include <cuda_runtime_api.h>
#include <segrl/segrl.h>

#define SENTINEL 12345.0f
#define ATOL 1e-6
#define RTOL 1e-5


// ----------------------------------------------------------------------------
// device memory

/* a device buffer of n 8-byte words (or n floats) filled with the sentinel pattern */
static void *d_sentinel(int64_t n, size_t es) {
    size_t bytes = (size_t)(n > 0 ? n : 1) * es;
    void *h = h_alloc(bytes);
    if (es == 4)
        for (int64_t i = 0; i < n; i++) ((float *)h)[i] = SENTINEL;
    else
        memset(h, 0x5a, bytes);
    void *d = d_up(h, bytes);
    free(h);
    return d;
}

static int d_is_sentinel(const void *d, int64_t n, size_t es) {
    size_t bytes = (size_t)(n > 0 ? n : 1) * es;
    unsigned char *h = (unsigned char *)h_alloc(bytes);
    d_down(h, d, bytes);
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++) {
        if (es == 4) ok = ((float *)h)[i] == SENTINEL;
        else
            for (size_t b = 0; b < es; b++) ok &= h[(size_t)i * es + b] == 0x5a;
    }
    free(h);
    return ok;
}

// ----------------------------------------------------------------------------
// a batch of trees (host arrays and device copies)

typedef struct tcase {
    const char *name;
    int64_t M;
    int64_t *par, *dep, *s0, *s1, *kids;
    int32_t *par32, *dep32, *s032, *s132;
    float *R;
    int64_t ntok;
    int p64, with_dep, d64, with_spans, sp64;
    void *d_par, *d_dep, *d_s0, *d_s1;
    float *d_R;
} tcase;

/* fills dep, kids, spans and rewards from par */
static void finish_case(tcase *c, int p64, int with_dep, int with_spans) {
    const int64_t M = c->M;
    c->p64 = p64;
    c->with_dep = with_dep;
    c->d64 = !p64;
    c->with_spans = with_spans;
    c->sp64 = p64;
    c->par32 = (int32_t *)h_alloc((size_t)M * 4);
    c->dep = (int64_t *)h_alloc((size_t)M * 8);
    c->dep32 = (int32_t *)h_alloc((size_t)M * 4);
    c->s0 = (int64_t *)h_alloc((size_t)M * 8);
    c->s1 = (int64_t *)h_alloc((size_t)M * 8);
    c->s032 = (int32_t *)h_alloc((size_t)M * 4);
    c->s132 = (int32_t *)h_alloc((size_t)M * 4);
    c->kids = (int64_t *)h_alloc((size_t)M * 8);
    c->R = (float *)h_alloc((size_t)M * 4);
    int64_t at = 0;
    for (int64_t i = 0; i < M; i++) {
        int64_t p = c->par[i];
        c->par32[i] = (int32_t)p;
        c->dep[i] = p < 0 ? 0 : c->dep[p] + 1;
        c->dep32[i] = (int32_t)c->dep[i];
        if (p >= 0) c->kids[p]++;
        int64_t len = h_int(0, 3);
        c->s0[i] = at;
        c->s1[i] = at + len;
        at += len + (h_unif() < 0.1 ? 1 : 0);
        c->s032[i] = (int32_t)c->s0[i];
        c->s132[i] = (int32_t)c->s1[i];
    }
    c->ntok = at + 2;
    const int quant = h_unif() < 0.5;
    for (int64_t i = 0; i < M; i++) {
        if (c->kids[i] > 0) c->R[i] = h_unif() < 0.3 ? NAN : h_normal();
        else c->R[i] = quant ? 0.5f * (float)h_int(0, 2) : h_normal();
    }
    c->d_par = p64 ? d_up(c->par, (size_t)M * 8) : d_up(c->par32, (size_t)M * 4);
    c->d_dep = c->d64 ? d_up(c->dep, (size_t)M * 8) : d_up(c->dep32, (size_t)M * 4);
    c->d_s0 = c->sp64 ? d_up(c->s0, (size_t)M * 8) : d_up(c->s032, (size_t)M * 4);
    c->d_s1 = c->sp64 ? d_up(c->s1, (size_t)M * 8) : d_up(c->s132, (size_t)M * 4);
    c->d_R = (float *)d_up(c->R, (size_t)M * 4);
}

static void free_case(tcase *c) {
    free(c->par), free(c->par32), free(c->dep), free(c->dep32), free(c->s0), free(c->s1);
    free(c->s032), free(c->s132), free(c->kids), free(c->R);
    cudaFree(c->d_par), cudaFree(c->d_dep), cudaFree(c->d_s0), cudaFree(c->d_s1);
    cudaFree(c->d_R);
}

/* the host arrays' current contents to the device (after a test edits them) */
static void resync(tcase *c) {
    const int64_t M = c->M;
    for (int64_t i = 0; i < M; i++) {
        c->par32[i] = (int32_t)c->par[i], c->dep32[i] = (int32_t)c->dep[i];
        c->s032[i] = (int32_t)c->s0[i], c->s132[i] = (int32_t)c->s1[i];
    }
    d_put(c->d_par, c->p64 ? (void *)c->par : (void *)c->par32, (size_t)M * (c->p64 ? 8 : 4));
    d_put(c->d_dep, c->d64 ? (void *)c->dep : (void *)c->dep32, (size_t)M * (c->d64 ? 8 : 4));
    d_put(c->d_s0, c->sp64 ? (void *)c->s0 : (void *)c->s032, (size_t)M * (c->sp64 ? 8 : 4));
    d_put(c->d_s1, c->sp64 ? (void *)c->s1 : (void *)c->s132, (size_t)M * (c->sp64 ? 8 : 4));
    d_put(c->d_R, c->R, (size_t)M * 4);
}

static segrl_tree tree_of(const tcase *c, int gpu) {
    segrl_tree t;
    memset(&t, 0, sizeof t);
    segrl_device dv = gpu ? GPU : CPU;
    const segrl_dtype pdt = c->p64 ? SEGRL_DTYPE_I64 : SEGRL_DTYPE_I32;
    const segrl_dtype ddt = c->d64 ? SEGRL_DTYPE_I64 : SEGRL_DTYPE_I32;
    const segrl_dtype sdt = c->sp64 ? SEGRL_DTYPE_I64 : SEGRL_DTYPE_I32;
    t.parent = segrl_view_1d(gpu ? c->d_par : (c->p64 ? (void *)c->par : (void *)c->par32), pdt,
                             dv, c->M);
    t.leaf_reward = segrl_view_1d(gpu ? (void *)c->d_R : (void *)c->R, SEGRL_DTYPE_F32, dv, c->M);
    if (c->with_dep)
        t.depth = segrl_view_1d(gpu ? c->d_dep : (c->d64 ? (void *)c->dep : (void *)c->dep32), ddt,
                                dv, c->M);
    else
        t.depth = segrl_view_none();
    if (c->with_spans) {
        t.span_start = segrl_view_1d(gpu ? c->d_s0 : (c->sp64 ? (void *)c->s0 : (void *)c->s032),
                                     sdt, dv, c->M);
        t.span_end = segrl_view_1d(gpu ? c->d_s1 : (c->sp64 ? (void *)c->s1 : (void *)c->s132),
                                   sdt, dv, c->M);
        t.num_tokens = c->ntok;
    } else {
        t.span_start = t.span_end = segrl_view_none();
    }
    return t;
}

static segrl_exec exec_for(int64_t M, int gpu, void **mem) {
    segrl_exec e;
    memset(&e, 0, sizeof e);
    size_t n = 0;
    segrl_status st = segrl_tree_workspace_size(gpu ? GPU : CPU, M, &n);
    CHECK(st == SEGRL_OK, "workspace size: %s", segrl_last_error());
    *mem = gpu ? d_alloc(n) : h_alloc(n);
    e.workspace = *mem;
    e.workspace_bytes = n;
    e.checks = SEGRL_CHECKS_FULL;
    return e;
}

// ----------------------------------------------------------------------------
// shapes

/* a spine of about M nodes, each node continuing it with probability 1 - leafy, else a leaf */
static void gen_chain(tcase *c, int64_t M, double leafy) {
    c->M = M;
    c->par = (int64_t *)h_alloc((size_t)M * 8);
    int64_t spine = 0;
    c->par[0] = -1;
    for (int64_t i = 1; i < M; i++) {
        c->par[i] = spine;
        if (h_unif() >= leafy) spine = i;
    }
}

/* roots, each with `width` children, a fraction of which get 1..3 children of their own */
static void gen_wide(tcase *c, int64_t roots, int64_t width) {
    int64_t cap = roots * width * 4 + roots, M = 0;
    c->par = (int64_t *)h_alloc((size_t)cap * 8);
    for (int64_t r = 0; r < roots; r++) {
        int64_t root = M;
        c->par[M++] = -1;
        int64_t first = M;
        for (int64_t j = 0; j < width; j++) c->par[M++] = root;
        int64_t last = M;
        for (int64_t j = first; j < last; j++)
            if (h_unif() < 0.3) {
                int64_t n = h_int(1, 3);
                for (int64_t q = 0; q < n; q++) c->par[M++] = j;
            }
    }
    c->M = M;
}

/* a wide level, a deep chain under one of its nodes, a wide level at the bottom of the chain */
static void gen_mixed(tcase *c, int64_t width, int64_t chain) {
    int64_t M = 0;
    c->par = (int64_t *)h_alloc((size_t)(2 * width + chain + 2) * 8);
    c->par[M++] = -1;
    for (int64_t j = 0; j < width; j++) c->par[M++] = 0;
    int64_t at = 1 + width / 2;
    for (int64_t j = 0; j < chain; j++) {
        c->par[M] = at;
        at = M++;
    }
    for (int64_t j = 0; j < width; j++) c->par[M++] = at;
    c->M = M;
}

/* many small trees of 1..maxn nodes, random shape */
static void gen_small(tcase *c, int64_t trees, int64_t maxn) {
    c->par = (int64_t *)h_alloc((size_t)(trees * maxn) * 8);
    int64_t M = 0;
    for (int64_t t = 0; t < trees; t++) {
        int64_t n = h_int(1, maxn), root = M;
        c->par[M++] = -1;
        for (int64_t j = 1; j < n; j++) {
            c->par[M] = h_int(root, M - 1);
            M++;
        }
    }
    c->M = M;
}

/* random forest: parent among the last `window` nodes, a new root with probability proot */
static void gen_forest(tcase *c, int64_t M, int64_t window, double proot) {
    c->M = M;
    c->par = (int64_t *)h_alloc((size_t)(M > 0 ? M : 1) * 8);
    for (int64_t i = 0; i < M; i++) {
        if (i == 0 || h_unif() < proot) c->par[i] = -1;
        else c->par[i] = h_int(i > window ? i - window : 0, i - 1);
    }
}

// ----------------------------------------------------------------------------
// comparisons

static void close_f(const char *what, const char *name, const float *got, const float *want,
                    int64_t n, int exact) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        /* NaN where the CPU gives NaN too (eps = 0 with a zero std: 0 / 0) */
        int ok = exact ? memcmp(&got[i], &want[i], 4) == 0 : d <= ATOL + RTOL * fabs(want[i]);
        if (isnan(got[i]) && isnan(want[i])) ok = 1;
        if (!ok) {
            if (bad < 5)
                printf("  %s %s[%lld]: gpu %.9g cpu %.9g\n", name, what, (long long)i, got[i],
                       want[i]);
            bad++;
        }
    }
    CHECK(bad == 0, "%s: %s: %lld of %lld differ", name, what, (long long)bad, (long long)n);
}

static int64_t ix_at(const void *p, int is64, int64_t i) {
    return is64 ? ((const int64_t *)p)[i] : (int64_t)((const int32_t *)p)[i];
}

static double mask_at(const void *p, int dt, int64_t i) {
    switch (dt) {
    case SEGRL_DTYPE_U8: return ((const uint8_t *)p)[i];
    case SEGRL_DTYPE_I32: return ((const int32_t *)p)[i];
    case SEGRL_DTYPE_I64: return (double)((const int64_t *)p)[i];
    default: return ((const float *)p)[i];
    }
}

// ----------------------------------------------------------------------------
// the calls

static float *g_vals; /* CHILD_MEAN values of the current case (CPU), input of advantages */

static void run_values(tcase *c) {
    const int64_t M = c->M;
    void *hw, *dw;
    segrl_exec he = exec_for(M, 0, &hw), de = exec_for(M, 1, &dw);
    segrl_tree ht = tree_of(c, 0), dt = tree_of(c, 1);
    float *hv = (float *)h_alloc((size_t)(M + 1) * 4), *gv = (float *)h_alloc((size_t)(M + 1) * 4);
    int64_t *hl = (int64_t *)h_alloc((size_t)(M + 1) * 8), *gl = (int64_t *)h_alloc((size_t)(M + 1) * 8);
    for (int kind = 0; kind < 3; kind++) {
        const int lc = (kind + (int)(M & 1)) % 3; /* 0 none, 1 i32, 2 i64 */
        const segrl_dtype ldt = lc == 1 ? SEGRL_DTYPE_I32 : SEGRL_DTYPE_I64;
        float *dv = (float *)d_sentinel(M + 1, 4);
        void *dl = d_sentinel(M + 1, 8);
        for (int64_t i = 0; i <= M; i++) hv[i] = SENTINEL;
        segrl_status hs = segrl_tree_values(&ht, kind, &he, segrl_view_1d(hv, SEGRL_DTYPE_F32, CPU, M),
                                            lc ? segrl_view_1d(hl, ldt, CPU, M) : segrl_view_none());
        CHECK(hs == SEGRL_OK, "%s: cpu values: %s", c->name, segrl_last_error());
        segrl_status gs = segrl_tree_values(&dt, kind, &de, segrl_view_1d(dv, SEGRL_DTYPE_F32, GPU, M),
                                            lc ? segrl_view_1d(dl, ldt, GPU, M) : segrl_view_none());
        CHECK(gs == SEGRL_OK, "%s: gpu values kind %d: %s", c->name, kind, segrl_last_error());
        d_down(gv, dv, (size_t)(M + 1) * 4);
        char what[64];
        snprintf(what, sizeof what, "values kind %d", kind);
        close_f(what, c->name, gv, hv, M, kind == SEGRL_TREE_VALUE_MAX);
        CHECK(gv[M] == SENTINEL, "%s: %s: wrote past the end", c->name, what);
        if (lc) {
            d_down(gl, dl, (size_t)(M + 1) * 8);
            int64_t bad = 0;
            for (int64_t i = 0; i < M; i++) bad += ix_at(gl, lc == 2, i) != ix_at(hl, lc == 2, i);
            CHECK(bad == 0, "%s: leaf counts (%s): %lld differ", c->name, lc == 2 ? "i64" : "i32",
                  (long long)bad);
        } else {
            CHECK(d_is_sentinel(dl, M, 8), "%s: absent leaf counts written", c->name);
        }
        if (kind == SEGRL_TREE_VALUE_CHILD_MEAN) memcpy(g_vals, hv, (size_t)M * 4);
        cudaFree(dv);
        cudaFree(dl);
    }
    free(hv), free(gv), free(hl), free(gl);
    free(hw);
    cudaFree(dw);
}

static void run_advantages(tcase *c) {
    const int64_t M = c->M;
    void *hw, *dw;
    segrl_exec he = exec_for(M, 0, &hw), de = exec_for(M, 1, &dw);
    segrl_tree ht = tree_of(c, 0), dt = tree_of(c, 1);
    float *d_vals = (float *)d_up(g_vals, (size_t)(M > 0 ? M : 1) * 4);
    float *ha = (float *)h_alloc((size_t)(M + 1) * 4), *hl = (float *)h_alloc((size_t)(M + 1) * 4);
    float *ga = (float *)h_alloc((size_t)(M + 1) * 4), *gl = (float *)h_alloc((size_t)(M + 1) * 4);
    void *hm = h_alloc((size_t)(M + 1) * 8), *gm = h_alloc((size_t)(M + 1) * 8);
    static const segrl_dtype mdts[4] = {SEGRL_DTYPE_U8, SEGRL_DTYPE_I32, SEGRL_DTYPE_I64,
                                        SEGRL_DTYPE_F32};
    for (int v = 0; v < 6; v++) {
        segrl_tree_adv_opts o = segrl_tree_adv_opts_default();
        o.kind = v % 3;
        o.unbiased = v < 3;
        o.drop_zero = (v + 1) % 2;
        o.eps = v == 4 ? 0.0f : 1e-6f;
        const int want_leaf = v != 2, want_mask = v != 5;
        const segrl_dtype mdt = mdts[(v + (int)(M % 4)) % 4];
        float *da = (float *)d_sentinel(M + 1, 4), *dl = (float *)d_sentinel(M + 1, 4);
        void *dm = d_sentinel(M + 1, 8);
        segrl_status hs = segrl_tree_advantages(
            &ht, segrl_view_1d(g_vals, SEGRL_DTYPE_F32, CPU, M), &o, &he,
            segrl_view_1d(ha, SEGRL_DTYPE_F32, CPU, M),
            want_leaf ? segrl_view_1d(hl, SEGRL_DTYPE_F32, CPU, M) : segrl_view_none(),
            want_mask ? segrl_view_1d(hm, mdt, CPU, M) : segrl_view_none());
        CHECK(hs == SEGRL_OK, "%s: cpu advantages: %s", c->name, segrl_last_error());
        segrl_status gs = segrl_tree_advantages(
            &dt, segrl_view_1d(d_vals, SEGRL_DTYPE_F32, GPU, M), &o, &de,
            segrl_view_1d(da, SEGRL_DTYPE_F32, GPU, M),
            want_leaf ? segrl_view_1d(dl, SEGRL_DTYPE_F32, GPU, M) : segrl_view_none(),
            want_mask ? segrl_view_1d(dm, mdt, GPU, M) : segrl_view_none());
        CHECK(gs == SEGRL_OK, "%s: gpu advantages %d: %s", c->name, v, segrl_last_error());
        char what[64];
        snprintf(what, sizeof what, "advantages kind %d unbiased %d", o.kind, o.unbiased);
        d_down(ga, da, (size_t)(M + 1) * 4);
        close_f(what, c->name, ga, ha, M, o.kind == SEGRL_TREE_ADV_PARENT);
        CHECK(ga[M] == SENTINEL, "%s: %s: wrote past the end", c->name, what);
        if (want_leaf) {
            d_down(gl, dl, (size_t)(M + 1) * 4);
            close_f("leaf advantages", c->name, gl, hl, M, 0);
        } else {
            CHECK(d_is_sentinel(dl, M, 4), "%s: absent leaf advantages written", c->name);
        }
        if (want_mask) {
            /* the mask follows the GPU's own advantages exactly; it may differ from the CPU's
             * only where the CPU advantage is within rounding of 0 */
            d_down(gm, dm, (size_t)(M + 1) * 8);
            int64_t bad = 0, bad_cpu = 0;
            for (int64_t i = 0; i < M; i++) {
                double want = c->par[i] >= 0 && !(o.drop_zero && ga[i] == 0.0f);
                bad += mask_at(gm, mdt, i) != want;
                bad_cpu += mask_at(gm, mdt, i) != mask_at(hm, mdt, i) && fabs(ha[i]) > 1e-6;
            }
            CHECK(bad == 0 && bad_cpu == 0, "%s: node mask (dtype %d): %lld inconsistent, %lld vs cpu",
                  c->name, mdt, (long long)bad, (long long)bad_cpu);
        } else {
            CHECK(d_is_sentinel(dm, M, 8), "%s: absent node mask written", c->name);
        }
        cudaFree(da), cudaFree(dl), cudaFree(dm);
    }
    /* out_advantages aliasing values, as the CPU allows */
    {
        segrl_tree_adv_opts o = segrl_tree_adv_opts_default();
        o.kind = M % 2 ? SEGRL_TREE_ADV_SIBLINGS : SEGRL_TREE_ADV_PARENT;
        memcpy(ha, g_vals, (size_t)M * 4);
        segrl_view hv = segrl_view_1d(ha, SEGRL_DTYPE_F32, CPU, M);
        segrl_view gv = segrl_view_1d(d_vals, SEGRL_DTYPE_F32, GPU, M);
        CHECK(segrl_tree_advantages(&ht, hv, &o, &he, hv, segrl_view_none(), segrl_view_none()) ==
                  SEGRL_OK, "%s: cpu alias: %s", c->name, segrl_last_error());
        CHECK(segrl_tree_advantages(&dt, gv, &o, &de, gv, segrl_view_none(), segrl_view_none()) ==
                  SEGRL_OK, "%s: gpu alias: %s", c->name, segrl_last_error());
        d_down(ga, d_vals, (size_t)(M > 0 ? M : 1) * 4);
        close_f("aliased advantages", c->name, ga, ha, M, o.kind == SEGRL_TREE_ADV_PARENT);
    }
    cudaFree(d_vals);
    free(ha), free(hl), free(ga), free(gl), free(hm), free(gm);
    free(hw);
    cudaFree(dw);
}

static void run_case(tcase *c) {
    printf("%s: M = %lld, parents %s, depth %s, spans %s\n", c->name, (long long)c->M,
           c->p64 ? "i64" : "i32", c->with_dep ? (c->d64 ? "i64" : "i32") : "none",
           c->with_spans ? (c->sp64 ? "i64" : "i32") : "none");
    g_vals = (float *)h_alloc((size_t)(c->M + 1) * 4);
    run_values(c);
    run_advantages(c);
    free(g_vals);
}

// ----------------------------------------------------------------------------
// bad input on the device

/* runs values (fam 0) or advantages (fam 1) on both sides; same status and message, GPU
 * outputs untouched */
static void bad_case(tcase *c, const char *label, int fam, const float *vals, int checks) {
    const int64_t M = c->M;
    void *hw, *dw;
    segrl_exec he = exec_for(M, 0, &hw), de = exec_for(M, 1, &dw);
    he.checks = de.checks = checks;
    segrl_tree ht = tree_of(c, 0), dt = tree_of(c, 1);
    float *h1 = (float *)h_alloc((size_t)M * 4), *h2 = (float *)h_alloc((size_t)M * 4);
    int64_t *h3 = (int64_t *)h_alloc((size_t)M * 8);
    float *d1 = (float *)d_sentinel(M, 4), *d2 = (float *)d_sentinel(M, 4);
    void *d3 = d_sentinel(M, 8);
    float *dvals = vals ? (float *)d_up(vals, (size_t)M * 4) : NULL;
    segrl_status hs, gs;
    char hmsg[512];
    if (fam == 0) {
        hs = segrl_tree_values(&ht, SEGRL_TREE_VALUE_LEAF_MEAN, &he,
                               segrl_view_1d(h1, SEGRL_DTYPE_F32, CPU, M),
                               segrl_view_1d(h3, SEGRL_DTYPE_I64, CPU, M));
        snprintf(hmsg, sizeof hmsg, "%s", segrl_last_error());
        gs = segrl_tree_values(&dt, SEGRL_TREE_VALUE_LEAF_MEAN, &de,
                               segrl_view_1d(d1, SEGRL_DTYPE_F32, GPU, M),
                               segrl_view_1d(d3, SEGRL_DTYPE_I64, GPU, M));
    } else {
        segrl_tree_adv_opts o = segrl_tree_adv_opts_default();
        o.kind = SEGRL_TREE_ADV_PARENT_STD;
        hs = segrl_tree_advantages(&ht, segrl_view_1d((void *)vals, SEGRL_DTYPE_F32, CPU, M), &o,
                                   &he, segrl_view_1d(h1, SEGRL_DTYPE_F32, CPU, M),
                                   segrl_view_1d(h2, SEGRL_DTYPE_F32, CPU, M),
                                   segrl_view_1d(h3, SEGRL_DTYPE_I64, CPU, M));
        snprintf(hmsg, sizeof hmsg, "%s", segrl_last_error());
        gs = segrl_tree_advantages(&dt, segrl_view_1d(dvals, SEGRL_DTYPE_F32, GPU, M), &o, &de,
                                   segrl_view_1d(d1, SEGRL_DTYPE_F32, GPU, M),
                                   segrl_view_1d(d2, SEGRL_DTYPE_F32, GPU, M),
                                   segrl_view_1d(d3, SEGRL_DTYPE_I64, GPU, M));
    }
    const char *gmsg = segrl_last_error();
    const int untouched = d_is_sentinel(d1, M, 4) && d_is_sentinel(d2, M, 4) &&
                          d_is_sentinel(d3, M, 8);
    if (hs == SEGRL_OK) {
        CHECK(gs == SEGRL_OK, "bad input %s: gpu %s (%s), cpu ok", label, segrl_status_str(gs), gmsg);
    } else {
        CHECK(gs == hs && strcmp(gmsg, hmsg) == 0 && untouched,
              "bad input %s: gpu %s \"%s\", cpu %s \"%s\", gpu outputs %s", label,
              segrl_status_str(gs), gmsg, segrl_status_str(hs), hmsg,
              untouched ? "untouched" : "WRITTEN");
    }
    free(h1), free(h2), free(h3), free(hw);
    cudaFree(d1), cudaFree(d2), cudaFree(d3), cudaFree(dw);
    if (dvals) cudaFree(dvals);
}

static void test_bad_input(void) {
    tcase c;
    h_seed(901);
    gen_forest(&c, 3000, 50, 0.01);
    finish_case(&c, 0, 1, 1);
    const int64_t M = c.M;
    float *vals = (float *)h_alloc((size_t)M * 4);
    for (int64_t i = 0; i < M; i++) vals[i] = h_normal();
    int64_t leaf1 = -1, leaf2 = -1;
    for (int64_t i = 100; i < M && leaf2 < 0; i++)
        if (c.kids[i] == 0) {
            if (leaf1 < 0) leaf1 = i;
            else if (i > leaf1 + 500) leaf2 = i;
        }

    bad_case(&c, "valid", 0, NULL, SEGRL_CHECKS_FULL);
    bad_case(&c, "valid advantages", 1, vals, SEGRL_CHECKS_FULL);
    for (int id = 0; id < 15; id++) {
        int64_t p_save = 0, q_save = 0, s_save = 0, e_save = 0, d_save = 0;
        float r_save = 0, r2_save = 0, v_save = 0;
        const char *label = "";
        int fam = id % 2;
        switch (id) {
        case 0: label = "parent == node"; p_save = c.par[1500], c.par[1500] = 1500;
            q_save = c.par[2500], c.par[2500] = 2600; break;
        case 1: label = "parent after node"; p_save = c.par[1500], c.par[1500] = 2000; break;
        case 2: label = "parent out of range"; p_save = c.par[1500], c.par[1500] = M + 7;
            q_save = c.par[2500], c.par[2500] = 2500; break;
        case 3: label = "parent < -1"; p_save = c.par[1200], c.par[1200] = -3; break;
        case 4: label = "wrong depth"; d_save = c.dep[1700], c.dep[1700] += 1; break;
        case 5: label = "span overlap"; s_save = c.s0[2100], c.s0[2100] = 0,
            e_save = c.s1[2100], c.s1[2100] = 1; break;
        case 6: label = "span start out of range"; s_save = c.s0[900], c.s0[900] = c.ntok + 1; break;
        case 7: label = "span end before start"; e_save = c.s1[1000], c.s1[1000] = c.s0[1000] - 1; break;
        case 8: label = "NaN leaf reward"; r_save = c.R[leaf2], c.R[leaf2] = NAN;
            r2_save = c.R[leaf1], c.R[leaf1] = NAN; break;
        case 9: label = "Inf leaf reward (leaf GRPO)"; r_save = c.R[leaf2], c.R[leaf2] = -INFINITY; break;
        case 10: label = "NaN leaf reward"; r_save = c.R[leaf2], c.R[leaf2] = NAN; break;
        case 11: label = "NaN value"; v_save = vals[2222], vals[2222] = NAN; break;
        case 12: label = "shapes only: NaN leaf reward"; r_save = c.R[leaf2], c.R[leaf2] = NAN; break;
        case 13: label = "shapes only: wrong depth"; d_save = c.dep[1700], c.dep[1700] += 1; break;
        case 14: label = "shapes only: parent == node"; p_save = c.par[1500], c.par[1500] = 1500;
            d_save = c.dep[1500], c.dep[1500] = M + 10; break;
        }
        resync(&c);
        bad_case(&c, label, fam, vals, id >= 12 ? SEGRL_CHECKS_SHAPES : SEGRL_CHECKS_FULL);
        switch (id) {
        case 0: c.par[1500] = p_save, c.par[2500] = q_save; break;
        case 1: c.par[1500] = p_save; break;
        case 2: c.par[1500] = p_save, c.par[2500] = q_save; break;
        case 3: c.par[1200] = p_save; break;
        case 4: case 13: c.dep[1700] = d_save; break;
        case 14: c.par[1500] = p_save, c.dep[1500] = d_save; break;
        case 5: c.s0[2100] = s_save, c.s1[2100] = e_save; break;
        case 6: c.s0[900] = s_save; break;
        case 7: c.s1[1000] = e_save; break;
        case 8: c.R[leaf2] = r_save, c.R[leaf1] = r2_save; break;
        case 9: case 10: case 12: c.R[leaf2] = r_save; break;
        case 11: vals[2222] = v_save; break;
        }
    }
    resync(&c);

    /* mixed devices, short workspace, an empty batch */
    void *dw;
    segrl_exec de = exec_for(M, 1, &dw);
    segrl_tree dt = tree_of(&c, 1);
    float *d1 = (float *)d_sentinel(M, 4), *h1 = (float *)h_alloc((size_t)M * 4);
    segrl_status st = segrl_tree_values(&dt, 0, &de, segrl_view_1d(h1, SEGRL_DTYPE_F32, CPU, M),
                                        segrl_view_none());
    CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "out_values: on cpu, expected cuda:0"),
          "mixed devices: %s %s", segrl_status_str(st), segrl_last_error());
    segrl_exec small = de;
    small.workspace_bytes = (size_t)M * 8;
    st = segrl_tree_values(&dt, 0, &small, segrl_view_1d(d1, SEGRL_DTYPE_F32, GPU, M),
                           segrl_view_none());
    CHECK(st == SEGRL_ERR_WORKSPACE && d_is_sentinel(d1, M, 4), "short workspace: %s %s",
          segrl_status_str(st), segrl_last_error());
    segrl_tree e0 = dt;
    e0.parent.shape[0] = e0.leaf_reward.shape[0] = 0;
    e0.depth = e0.span_start = e0.span_end = segrl_view_none();
    st = segrl_tree_values(&e0, 0, &de, segrl_view_1d(d1, SEGRL_DTYPE_F32, GPU, 0),
                           segrl_view_none());
    CHECK(st == SEGRL_OK, "empty batch: %s", segrl_last_error());
    cudaFree(d1), cudaFree(dw), free(h1), free(vals);
    free_case(&c);
}

int main(void) {
    if (segrl_cuda_device_count() == 0) {
        printf("test-tree-cuda: no CUDA device (built with CUDA: %d), skipped\n",
               segrl_built_with_cuda());
        return 77;
    }
    tcase c;
    /* deep chains of 10^5 nodes */
    h_seed(1), gen_chain(&c, 100000, 0.0), c.name = "chain 1e5", finish_case(&c, 0, 0, 0);
    run_case(&c), free_case(&c);
    h_seed(2), gen_chain(&c, 100000, 0.3), c.name = "chain 1e5 with leaves", finish_case(&c, 1, 1, 1);
    run_case(&c), free_case(&c);
    /* wide trees */
    h_seed(3), gen_wide(&c, 1, 60000), c.name = "wide 1 x 60000", finish_case(&c, 1, 0, 1);
    run_case(&c), free_case(&c);
    h_seed(4), gen_wide(&c, 8, 5000), c.name = "wide 8 x 5000", finish_case(&c, 0, 1, 0);
    run_case(&c), free_case(&c);
    h_seed(5), gen_mixed(&c, 20000, 30000), c.name = "wide / chain / wide", finish_case(&c, 0, 0, 1);
    run_case(&c), free_case(&c);
    /* many small trees */
    h_seed(6), gen_small(&c, 30000, 8), c.name = "30000 small trees", finish_case(&c, 1, 0, 0);
    run_case(&c), free_case(&c);
    h_seed(7), gen_small(&c, 5000, 1), c.name = "5000 single nodes", finish_case(&c, 0, 1, 1);
    run_case(&c), free_case(&c);
    /* random forests */
    const int64_t sizes[] = {1, 2, 33, 1000, 70000};
    for (int i = 0; i < 5; i++) {
        h_seed(10 + (uint64_t)i), gen_forest(&c, sizes[i], i % 2 ? 5 : 2000, 0.001);
        c.name = "random forest";
        finish_case(&c, i % 2, i % 3 == 0, i % 2 == 0);
        run_case(&c), free_case(&c);
    }
    test_bad_input();
    return h_finish();
}
