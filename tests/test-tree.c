/* test-tree.c — rollout-tree credit assignment on the CPU: hand-computed trees (the SPO figure
 * style 5/9 -> 1 example; a depth-3 6-6-6 tree whose children finish early; ReST-MCTS* and ROSE
 * by hand), seeded random batches of trees up to 10^6 nodes against a plain RECURSIVE reference
 * written here (children lists + recursion, depth <= 50), edge and path episodes checked token
 * for token against the node advantages, and a bad-input table (status, message naming the
 * argument, outputs untouched). */
#include "harness.h"

#include <segrl/segrl.h>

#define DEV segrl_cpu()
#define GUARD 12345.0f

static segrl_view vec(void *p, segrl_dtype dt, int64_t n) { return segrl_view_1d(p, dt, DEV, n); }
static segrl_view f32(float *p, int64_t n) { return vec(p, SEGRL_DTYPE_F32, n); }
static segrl_view i64(int64_t *p, int64_t n) { return vec(p, SEGRL_DTYPE_I64, n); }

#define OK(call)                                                                                  \
    do {                                                                                          \
        segrl_status st_ = (call);                                                                \
        CHECK(st_ == SEGRL_OK, "%s -> %s: %s", #call, segrl_status_str(st_), segrl_last_error()); \
    } while (0)

static segrl_exec ws_for(int64_t M, void **mem) {
    size_t n = 0;
    OK(segrl_tree_workspace_size(DEV, M, &n));
    *mem = h_alloc(n + 16);
    segrl_exec e = {0};
    e.workspace = *mem;
    e.workspace_bytes = n;
    return e;
}

static segrl_tree mk_tree(int64_t *parent, float *reward, int64_t M) {
    segrl_tree t;
    memset(&t, 0, sizeof t);
    t.parent = i64(parent, M);
    t.leaf_reward = f32(reward, M);
    t.span_start = t.span_end = t.depth = segrl_view_none();
    return t;
}

// ----------------------------------------------------------------------------
// the recursive reference: children lists, then recursion from each root

typedef struct ref_tree {
    int64_t M;
    const int64_t *parent;
    const float *R;
    int64_t *cstart, *clist; /* CSR children */
} ref_tree;

static void ref_build(ref_tree *r, const int64_t *parent, const float *R, int64_t M) {
    r->M = M, r->parent = parent, r->R = R;
    r->cstart = h_alloc((size_t)(M + 1) * sizeof(int64_t));
    r->clist = h_alloc((size_t)(M ? M : 1) * sizeof(int64_t));
    int64_t *fill = h_alloc((size_t)(M + 1) * sizeof(int64_t));
    for (int64_t i = 0; i < M; i++)
        if (parent[i] >= 0) r->cstart[parent[i] + 1]++;
    for (int64_t i = 0; i < M; i++) r->cstart[i + 1] += r->cstart[i];
    for (int64_t i = 0; i < M; i++)
        if (parent[i] >= 0) r->clist[r->cstart[parent[i]] + fill[parent[i]]++] = i;
    free(fill);
}
static void ref_free(ref_tree *r) { free(r->cstart), free(r->clist); }
static int64_t nkids(const ref_tree *r, int64_t n) { return r->cstart[n + 1] - r->cstart[n]; }
static int64_t kid(const ref_tree *r, int64_t n, int64_t j) { return r->clist[r->cstart[n] + j]; }

/* fills V[n] for the subtree; returns the subtree's leaf count, *sum its leaf reward sum */
static int64_t ref_values(const ref_tree *r, int64_t n, int kind, double *V, int64_t *L, double *sum) {
    int64_t k = nkids(r, n);
    if (k == 0) {
        V[n] = r->R[n], L[n] = 1, *sum = r->R[n];
        return 1;
    }
    int64_t leaves = 0;
    double s = 0, cm = 0, mx = -INFINITY;
    for (int64_t j = 0; j < k; j++) {
        double cs;
        int64_t c = kid(r, n, j);
        leaves += ref_values(r, c, kind, V, L, &cs);
        s += cs;
        cm += V[c];
        if (V[c] > mx) mx = V[c];
    }
    V[n] = kind == SEGRL_TREE_VALUE_LEAF_MEAN ? s / leaves : kind == SEGRL_TREE_VALUE_CHILD_MEAN ? cm / k : mx;
    L[n] = leaves, *sum = s;
    return leaves;
}

/* advantages of n's children from the float values the library saw, then recurse */
static void ref_adv(const ref_tree *r, int64_t n, const float *V, int kind, int unbiased, double eps,
                    double *A) {
    int64_t k = nkids(r, n);
    double mean = 0, m2 = 0;
    for (int64_t j = 0; j < k; j++) mean += V[kid(r, n, j)];
    if (k) mean /= k;
    for (int64_t j = 0; j < k; j++) m2 += (V[kid(r, n, j)] - mean) * (V[kid(r, n, j)] - mean);
    double sd = k < 2 ? 1.0 : sqrt(m2 / (unbiased ? k - 1 : k));
    for (int64_t j = 0; j < k; j++) {
        int64_t c = kid(r, n, j);
        if (kind == SEGRL_TREE_ADV_PARENT) A[c] = (double)V[c] - V[n];
        else if (kind == SEGRL_TREE_ADV_PARENT_STD) A[c] = ((double)V[c] - V[n]) / (sd + eps);
        else if (k < 2) A[c] = 0;
        else {
            double o = 0;
            for (int64_t q = 0; q < k; q++)
                if (q != j) o += V[kid(r, n, q)];
            A[c] = V[c] - o / (k - 1);
        }
        ref_adv(r, c, V, kind, unbiased, eps, A);
    }
}

static void ref_collect_leaves(const ref_tree *r, int64_t n, int64_t *out, int64_t *cnt) {
    if (nkids(r, n) == 0) out[(*cnt)++] = n;
    for (int64_t j = 0; j < nkids(r, n); j++) ref_collect_leaves(r, kid(r, n, j), out, cnt);
}

/* ReST-MCTS*: nearest correct leaf / nearest leaf below n, in edges (-1: none) */
static void ref_dist(const ref_tree *r, int64_t n, double thr, int64_t *dc, int64_t *dl) {
    int64_t k = nkids(r, n);
    if (k == 0) {
        dl[n] = 0, dc[n] = r->R[n] >= thr ? 0 : -1;
        return;
    }
    dl[n] = -1, dc[n] = -1;
    for (int64_t j = 0; j < k; j++) {
        int64_t c = kid(r, n, j);
        ref_dist(r, c, thr, dc, dl);
        if (dl[n] < 0 || dl[c] + 1 < dl[n]) dl[n] = dl[c] + 1;
        if (dc[c] >= 0 && (dc[n] < 0 || dc[c] + 1 < dc[n])) dc[n] = dc[c] + 1;
    }
}
static void ref_rest(const ref_tree *r, int64_t n, double vp, const int64_t *dc, const int64_t *dl,
                     double *v) {
    double rr = dc[n] >= 0 ? 1 : -1, m = 1.0 + (double)(dc[n] >= 0 ? dc[n] : dl[n]);
    v[n] = fmax(0.0, vp + (1 - vp) * rr / m);
    for (int64_t j = 0; j < nkids(r, n); j++) ref_rest(r, kid(r, n, j), v[n], dc, dl, v);
}

// ----------------------------------------------------------------------------
// hand-computed trees

/* SPO figure style: the root has 3 children with 3 leaves each; 5 of the 9 leaves are correct.
 * V(root) = 5/9; child 1 has all three correct: V = 1, A = 1 - 5/9 = 4/9. */
static void test_spo_figure(void) {
    int64_t par[13] = {-1, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3};
    float R[13] = {NAN, NAN, NAN, NAN, 1, 1, 1, 1, 0, 0, 1, 0, 0};
    int64_t lc[13];
    float V[13], A[13], LA[13];
    uint8_t nm[13];
    void *mem;
    segrl_exec e = ws_for(13, &mem);
    segrl_tree t = mk_tree(par, R, 13);
    OK(segrl_tree_values(&t, SEGRL_TREE_VALUE_LEAF_MEAN, &e, f32(V, 13), i64(lc, 13)));
    double wantV[4] = {5.0 / 9, 1, 1.0 / 3, 1.0 / 3};
    h_close_f("spo V", V, wantV, 4, 1e-7, 0);
    CHECK(lc[0] == 9 && lc[1] == 3 && lc[4] == 1, "spo leaf counts %lld %lld %lld", (long long)lc[0],
          (long long)lc[1], (long long)lc[4]);
    /* child-mean gives the same here (equal branching) */
    float V2[13];
    OK(segrl_tree_values(&t, SEGRL_TREE_VALUE_CHILD_MEAN, &e, f32(V2, 13), segrl_view_none()));
    h_close_f("spo V child mean", V2, wantV, 4, 1e-7, 0);
    float V3[13];
    OK(segrl_tree_values(&t, SEGRL_TREE_VALUE_MAX, &e, f32(V3, 13), segrl_view_none()));
    double wantMax[4] = {1, 1, 1, 1};
    h_close_f("spo V max", V3, wantMax, 4, 0, 0);

    segrl_tree_adv_opts o = segrl_tree_adv_opts_default();
    o.drop_zero = 1;
    OK(segrl_tree_advantages(&t, f32(V, 13), &o, &e, f32(A, 13), f32(LA, 13),
                             vec(nm, SEGRL_DTYPE_U8, 13)));
    double wantA[7] = {0, 4.0 / 9, -2.0 / 9, -2.0 / 9, 0, 0, 0};
    h_close_f("spo A rloo", A, wantA, 7, 1e-7, 0);
    CHECK(nm[0] == 0 && nm[1] == 1 && nm[4] == 0 && nm[8] == 1, "spo node mask %d %d %d %d", nm[0],
          nm[1], nm[4], nm[8]);
    /* leaf GRPO: 5 ones and 4 zeros, mean 5/9, unbiased std sqrt(20/72) */
    double sd = sqrt((5 * (4.0 / 9) * (4.0 / 9) + 4 * (5.0 / 9) * (5.0 / 9)) / 8);
    double wantLA[2] = {(1 - 5.0 / 9) / (sd + 1e-6), -(5.0 / 9) / (sd + 1e-6)};
    CHECK(fabs(LA[4] - wantLA[0]) < 1e-6 && fabs(LA[8] - wantLA[1]) < 1e-6 && LA[1] == 0,
          "spo leaf grpo %g %g", LA[4], LA[8]);

    o.kind = SEGRL_TREE_ADV_PARENT_STD;
    OK(segrl_tree_advantages(&t, f32(V, 13), &o, &e, f32(A, 13), segrl_view_none(), segrl_view_none()));
    double s3 = sqrt(((4.0 / 9) * (4.0 / 9) + 2 * (2.0 / 9) * (2.0 / 9)) / 2); /* sqrt(12)/9 */
    CHECK(fabs(A[1] - (4.0 / 9) / (s3 + 1e-6)) < 1e-6 && fabs(A[1] - 2 / sqrt(3.0)) < 1e-5,
          "spo grpo A[1] = %g", A[1]);
    o.kind = SEGRL_TREE_ADV_SIBLINGS;
    OK(segrl_tree_advantages(&t, f32(V, 13), &o, &e, f32(A, 13), segrl_view_none(), segrl_view_none()));
    CHECK(fabs(A[1] - 2.0 / 3) < 1e-7 && fabs(A[2] + 1.0 / 3) < 1e-7, "spo siblings %g %g", A[1], A[2]);
    /* in place: out_advantages aliasing values */
    float Vc[13];
    memcpy(Vc, V, sizeof V);
    o.kind = SEGRL_TREE_ADV_PARENT;
    OK(segrl_tree_advantages(&t, f32(Vc, 13), &o, &e, f32(Vc, 13), segrl_view_none(), segrl_view_none()));
    h_close_f("spo A in place", Vc, wantA, 7, 1e-7, 0);
    free(mem);
}

/* Depth 3, branching 6-6-6, some children finish early:
 *   level 1: six nodes; node a0 is a leaf (reward 1), a1..a5 have six children each
 *   level 2: under a1, the first child is a leaf (reward 1); every other level-2 node has six
 *            leaves of reward 0.
 * child mean: V(a1) = (1 + 5 * 0) / 6 = 1/6, V(root) = (1 + 1/6) / 6 = 7/36
 * leaf mean:  a1 has 1 + 5 * 6 = 31 leaves, V = 1/31; the root 1 + 31 + 4 * 36 = 176, V = 2/176 */
static void test_666(void) {
    int64_t par[256];
    float R[256];
    int64_t M = 0, a[6];
    par[M] = -1, R[M++] = NAN;
    for (int i = 0; i < 6; i++) a[i] = M, par[M] = 0, R[M++] = i == 0 ? 1 : NAN;
    for (int i = 1; i < 6; i++)
        for (int j = 0; j < 6; j++) {
            int64_t b = M;
            par[M] = a[i], R[M++] = (i == 1 && j == 0) ? 1 : NAN;
            if (i == 1 && j == 0) continue;
            for (int k = 0; k < 6; k++) par[M] = b, R[M++] = 0;
        }
    CHECK(M == 1 + 6 + 30 + 29 * 6, "666 node count %lld", (long long)M);
    void *mem;
    segrl_exec e = ws_for(M, &mem);
    segrl_tree t = mk_tree(par, R, M);
    float V[256], A[256];
    int64_t L[256];
    OK(segrl_tree_values(&t, SEGRL_TREE_VALUE_CHILD_MEAN, &e, f32(V, M), i64(L, M)));
    CHECK(fabs(V[a[1]] - 1.0 / 6) < 1e-7 && fabs(V[0] - 7.0 / 36) < 1e-7 && V[a[0]] == 1 && V[a[2]] == 0,
          "666 child mean: root %g a1 %g", V[0], V[a[1]]);
    CHECK(L[0] == 176 && L[a[1]] == 31 && L[a[2]] == 36 && L[a[0]] == 1, "666 leaf counts %lld %lld",
          (long long)L[0], (long long)L[a[1]]);
    OK(segrl_tree_advantages(&t, f32(V, M), NULL, &e, f32(A, M), segrl_view_none(), segrl_view_none()));
    CHECK(fabs(A[a[0]] - (1 - 7.0 / 36)) < 1e-7 && fabs(A[a[1]] - (1.0 / 6 - 7.0 / 36)) < 1e-7,
          "666 child-mean advantages %g %g", A[a[0]], A[a[1]]);
    OK(segrl_tree_values(&t, SEGRL_TREE_VALUE_LEAF_MEAN, &e, f32(V, M), segrl_view_none()));
    CHECK(fabs(V[a[1]] - 1.0 / 31) < 1e-7 && fabs(V[0] - 1.0 / 88) < 1e-7, "666 leaf mean: root %g a1 %g",
          V[0], V[a[1]]);
    /* and the recursive reference agrees on every node, for all three kinds */
    ref_tree r;
    ref_build(&r, par, R, M);
    double *rv = h_alloc(sizeof(double) * M), s;
    int64_t *rl = h_alloc(sizeof(int64_t) * M);
    for (int kind = 0; kind < 3; kind++) {
        OK(segrl_tree_values(&t, kind, &e, f32(V, M), segrl_view_none()));
        ref_values(&r, 0, kind, rv, rl, &s);
        h_close_f("666 V vs recursive", V, rv, M, 1e-7, 1e-6);
    }
    ref_free(&r), free(rv), free(rl), free(mem);
}

/* ReST-MCTS*: 0 -> 1 -> {2 (correct leaf), 3 -> 4 (wrong leaf)}, v0 = 0:
 * v0 = 1/3 (m 3), v1 = 1/3 + (2/3)/2 = 2/3, v2 = 1, v3 = 2/3 - (1/3)/2 = 1/2, v4 = max(0, 0) = 0 */
static void test_rest_hand(void) {
    int64_t par[5] = {-1, 0, 1, 1, 3};
    float R[5] = {NAN, NAN, 1, NAN, 0}, v[5];
    void *mem;
    segrl_exec e = ws_for(5, &mem);
    segrl_tree t = mk_tree(par, R, 5);
    OK(segrl_tree_rest_values(&t, 1.0f, 0.0f, &e, f32(v, 5)));
    double want[5] = {1.0 / 3, 2.0 / 3, 1, 0.5, 0};
    h_close_f("rest hand", v, want, 5, 1e-7, 0);
    free(mem);
}

// ----------------------------------------------------------------------------
// random batches against the recursive reference

/* many trees; node i's parent is -1 (a new tree), i - 1 (deep chains) or a random earlier node
 * of the same tree, with depth <= 50 */
static void gen_tree(int64_t M, int64_t *par, float *R, int binary) {
    int64_t *dep = h_alloc(sizeof(int64_t) * (M ? M : 1)), root = 0;
    for (int64_t i = 0; i < M; i++) {
        double u = h_unif();
        int64_t p;
        if (i == 0 || u < 0.02) p = -1;
        else if (u < 0.4 && dep[i - 1] < 50) p = i - 1;
        else {
            p = h_int(root, i - 1);
            if (dep[p] >= 50) p = root;
        }
        if (p < 0) root = i;
        par[i] = p, dep[i] = p < 0 ? 0 : dep[p] + 1;
        R[i] = binary ? (float)(h_unif() < 0.4) : h_normal();
    }
    free(dep);
}

static void test_random(int64_t M, uint64_t seed, int binary) {
    h_seed(seed);
    int64_t *par = h_alloc(sizeof(int64_t) * M), *L = h_alloc(sizeof(int64_t) * M);
    int64_t *rl = h_alloc(sizeof(int64_t) * M);
    float *R = h_alloc(sizeof(float) * M), *V = h_alloc(sizeof(float) * M), *A = h_alloc(sizeof(float) * M);
    float *LA = h_alloc(sizeof(float) * M);
    uint8_t *nm = h_alloc(M);
    double *rv = h_alloc(sizeof(double) * M), *ra = h_alloc(sizeof(double) * M);
    gen_tree(M, par, R, binary);
    for (int64_t i = 0; i < M; i++) /* inner nodes' rewards are ignored: make them NaN */
        if (i + 1 < M && par[i + 1] == i) R[i] = NAN;
    ref_tree r;
    ref_build(&r, par, R, M);
    for (int64_t i = 0; i < M; i++)
        if (nkids(&r, i) == 0 && !isfinite(R[i])) R[i] = 0.5f;
    void *mem;
    segrl_exec e = ws_for(M, &mem);
    segrl_tree t = mk_tree(par, R, M);
    char what[96];
    for (int kind = 0; kind < 3; kind++) {
        OK(segrl_tree_values(&t, kind, &e, f32(V, M), i64(L, M)));
        double s;
        for (int64_t i = 0; i < M; i++)
            if (par[i] < 0) ref_values(&r, i, kind, rv, rl, &s);
        snprintf(what, sizeof what, "random M=%lld values kind %d", (long long)M, kind);
        h_close_f(what, V, rv, M, 1e-5, 1e-5);
        int64_t bad = 0;
        for (int64_t i = 0; i < M; i++) bad += L[i] != rl[i];
        CHECK(bad == 0, "random M=%lld leaf counts: %lld differ", (long long)M, (long long)bad);
        for (int ak = 0; ak < 3; ak++) {
            segrl_tree_adv_opts o = segrl_tree_adv_opts_default();
            o.kind = ak, o.drop_zero = 1, o.unbiased = ak != 1 || kind != 0;
            OK(segrl_tree_advantages(&t, f32(V, M), &o, &e, f32(A, M), f32(LA, M), vec(nm, SEGRL_DTYPE_U8, M)));
            for (int64_t i = 0; i < M; i++)
                if (par[i] < 0) ra[i] = 0, ref_adv(&r, i, V, ak, o.unbiased, o.eps, ra);
            snprintf(what, sizeof what, "random M=%lld adv kind %d values %d", (long long)M, ak, kind);
            h_close_f(what, A, ra, M, 1e-4, 1e-5);
            int64_t badm = 0;
            for (int64_t i = 0; i < M; i++) badm += nm[i] != (par[i] >= 0 && A[i] != 0.0f);
            CHECK(badm == 0, "random node mask: %lld differ", (long long)badm);
        }
    }
    /* leaf GRPO within each tree, from the recursive leaf lists */
    int64_t *leaves = h_alloc(sizeof(int64_t) * M);
    for (int64_t i = 0; i < M; i++) ra[i] = 0;
    for (int64_t i = 0; i < M; i++) {
        if (par[i] >= 0) continue;
        int64_t n = 0;
        ref_collect_leaves(&r, i, leaves, &n);
        double mean = 0, m2 = 0;
        for (int64_t j = 0; j < n; j++) mean += R[leaves[j]];
        mean /= n;
        for (int64_t j = 0; j < n; j++) m2 += (R[leaves[j]] - mean) * (R[leaves[j]] - mean);
        double sd = n < 2 ? 1 : sqrt(m2 / (n - 1));
        if (n < 2) mean = 0;
        for (int64_t j = 0; j < n; j++) ra[leaves[j]] = (R[leaves[j]] - mean) / (sd + 1e-6);
    }
    snprintf(what, sizeof what, "random M=%lld leaf grpo", (long long)M);
    h_close_f(what, LA, ra, M, 1e-4, 1e-5);
    /* ReST-MCTS* */
    int64_t *dc = rl, *dl = L;
    OK(segrl_tree_rest_values(&t, 0.5f, 0.1f, &e, f32(V, M)));
    for (int64_t i = 0; i < M; i++)
        if (par[i] < 0) ref_dist(&r, i, 0.5, dc, dl), ref_rest(&r, i, (double)0.1f, dc, dl, rv);
    snprintf(what, sizeof what, "random M=%lld rest", (long long)M);
    h_close_f(what, V, rv, M, 1e-5, 1e-5);
    ref_free(&r);
    free(par), free(L), free(rl), free(R), free(V), free(A), free(LA), free(nm), free(rv), free(ra);
    free(leaves), free(mem);
}


/* i32 node arrays and other output dtypes give the same results as i64 / u8 */
static void test_dtypes(void) {
    const int64_t M = 5000;
    h_seed(31);
    int64_t *par = h_alloc(sizeof(int64_t) * M), *lc64 = h_alloc(sizeof(int64_t) * M);
    int32_t *par32 = h_alloc(sizeof(int32_t) * M), *lc32 = h_alloc(sizeof(int32_t) * M);
    float *R = h_alloc(sizeof(float) * M), *V = h_alloc(sizeof(float) * M), *V32 = h_alloc(sizeof(float) * M);
    float *A = h_alloc(sizeof(float) * M), *A32 = h_alloc(sizeof(float) * M), *mf = h_alloc(sizeof(float) * M);
    uint8_t *mu = h_alloc(M);
    gen_tree(M, par, R, 1);
    for (int64_t i = 0; i < M; i++) par32[i] = (int32_t)par[i];
    void *mem;
    segrl_exec e = ws_for(M, &mem);
    segrl_tree t = mk_tree(par, R, M), t32 = t;
    t32.parent = vec(par32, SEGRL_DTYPE_I32, M);
    segrl_tree_adv_opts o = segrl_tree_adv_opts_default();
    o.kind = SEGRL_TREE_ADV_PARENT_STD, o.drop_zero = 1;
    OK(segrl_tree_values(&t, SEGRL_TREE_VALUE_CHILD_MEAN, &e, f32(V, M), i64(lc64, M)));
    OK(segrl_tree_values(&t32, SEGRL_TREE_VALUE_CHILD_MEAN, &e, f32(V32, M), vec(lc32, SEGRL_DTYPE_I32, M)));
    h_same_f("i32 parent values", V, V32, M);
    OK(segrl_tree_advantages(&t, f32(V, M), &o, &e, f32(A, M), segrl_view_none(), vec(mu, SEGRL_DTYPE_U8, M)));
    OK(segrl_tree_advantages(&t32, f32(V, M), &o, &e, f32(A32, M), segrl_view_none(), f32(mf, M)));
    h_same_f("i32 parent advantages", A, A32, M);
    int64_t bad = 0;
    for (int64_t i = 0; i < M; i++) bad += lc32[i] != lc64[i] || (float)mu[i] != mf[i];
    CHECK(bad == 0, "i32 leaf counts / f32 node mask: %lld differ", (long long)bad);
    free(par), free(lc64), free(par32), free(lc32), free(R), free(V), free(V32), free(A), free(A32);
    free(mf), free(mu), free(mem);
}

// ----------------------------------------------------------------------------
// episodes

/* random tree with spans (random lengths 0..5, random gaps), a random node mask; edge episodes
 * (with and without prefix) and path episodes (with a blend) checked token for token */
static void test_episodes(int64_t M, uint64_t seed) {
    h_seed(seed);
    int64_t *par = h_alloc(sizeof(int64_t) * M), *s0 = h_alloc(sizeof(int64_t) * M);
    int64_t *s1 = h_alloc(sizeof(int64_t) * M);
    int32_t *dep = h_alloc(sizeof(int32_t) * M);
    float *R = h_alloc(sizeof(float) * M), *V = h_alloc(sizeof(float) * M), *A = h_alloc(sizeof(float) * M);
    float *LA = h_alloc(sizeof(float) * M);
    uint8_t *nm = h_alloc(M);
    gen_tree(M, par, R, 1);
    int64_t pos = 0;
    for (int64_t i = 0; i < M; i++) {
        pos += h_int(0, 2);
        s0[i] = pos, pos += h_int(0, 5), s1[i] = pos;
        dep[i] = par[i] < 0 ? 0 : dep[par[i]] + 1;
    }
    const int64_t NT = pos + 3;
    int64_t *owner = h_alloc(sizeof(int64_t) * NT);
    for (int64_t j = 0; j < NT; j++) owner[j] = -1;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = s0[i]; j < s1[i]; j++) owner[j] = i;
    segrl_tree t = mk_tree(par, R, M);
    t.span_start = i64(s0, M), t.span_end = i64(s1, M), t.num_tokens = NT;
    t.depth = vec(dep, SEGRL_DTYPE_I32, M);
    void *mem;
    segrl_exec e = ws_for(M, &mem);
    OK(segrl_tree_values(&t, SEGRL_TREE_VALUE_LEAF_MEAN, &e, f32(V, M), segrl_view_none()));
    segrl_tree_adv_opts ao = segrl_tree_adv_opts_default();
    ao.drop_zero = 1;
    OK(segrl_tree_advantages(&t, f32(V, M), &ao, &e, f32(A, M), f32(LA, M), vec(nm, SEGRL_DTYPE_U8, M)));
    for (int64_t i = 0; i < M; i++) /* also drop a few non-zero nodes at random */
        if (h_unif() < 0.1) nm[i] = 0;
    char *isleaf = h_alloc(M);
    for (int64_t i = 0; i < M; i++) isleaf[i] = 1;
    for (int64_t i = 0; i < M; i++)
        if (par[i] >= 0) isleaf[par[i]] = 0;

    for (int mode = 0; mode < 3; mode++) { /* edge with prefix, edge without, path with blend */
        segrl_tree_episode_opts o = segrl_tree_episode_opts_default();
        o.kind = mode < 2 ? SEGRL_TREE_EPISODE_EDGE : SEGRL_TREE_EPISODE_PATH;
        o.include_prefix = mode == 0;
        o.traj_weight = mode == 2 ? 0.25f : 0.0f;
        int64_t E = -1, N = -1;
        OK(segrl_tree_episodes_size(&t, vec(nm, SEGRL_DTYPE_U8, M), &o, &e, &E, &N));
        int32_t *off = h_alloc(sizeof(int32_t) * (E + 1));
        int64_t *idx = h_alloc(sizeof(int64_t) * (N + 1)), *node = h_alloc(sizeof(int64_t) * (E + 1));
        float *adv = h_alloc(sizeof(float) * (N + 1));
        uint8_t *msk = h_alloc(N + 1);
        OK(segrl_tree_episodes(&t, f32(A, M), f32(LA, M), vec(nm, SEGRL_DTYPE_U8, M), &o, &e,
                               vec(off, SEGRL_DTYPE_I32, E + 1), i64(idx, N), f32(adv, N),
                               vec(msk, SEGRL_DTYPE_U8, N), i64(node, E)));
        /* expected: walk up from each episode's node collecting the path, then compare */
        int64_t bad = 0, e_want = 0, path[64];
        for (int64_t i = 0; i < M && bad < 5; i++) {
            int want_ep = mode < 2 ? (par[i] >= 0 && nm[i]) : isleaf[i];
            if (!want_ep) continue;
            int64_t ep = e_want++;
            if (ep >= E || node[ep] != i) {
                bad++;
                printf("  mode %d: episode %lld is node %lld, want %lld\n", mode, (long long)ep,
                       ep < E ? (long long)node[ep] : -1LL, (long long)i);
                continue;
            }
            int64_t np = 0;
            for (int64_t n = i; n >= 0; n = par[n]) path[np++] = n;
            int64_t k = off[ep];
            for (int64_t q = np - 1; q >= 0; q--) {
                int64_t n = path[q];
                if (mode == 1 && n != i) continue;
                for (int64_t j = s0[n]; j < s1[n]; j++, k++) {
                    double wa;
                    int wm;
                    if (mode < 2) wm = n == i, wa = wm ? A[n] : 0;
                    else {
                        wm = par[n] >= 0 && nm[n];
                        wa = wm ? 0.75 * A[n] + 0.25 * LA[i] : 0;
                    }
                    if (k >= off[ep + 1] || idx[k] != j || owner[idx[k]] != n || msk[k] != wm ||
                        fabs(adv[k] - wa) > 1e-6 * (1 + fabs(wa))) {
                        if (bad++ < 5)
                            printf("  mode %d episode %lld token %lld: idx %lld (want %lld) adv %g "
                                   "(want %g) mask %d (want %d)\n",
                                   mode, (long long)ep, (long long)k, (long long)idx[k], (long long)j,
                                   adv[k], wa, msk[k], wm);
                    }
                }
            }
            if (k != off[ep + 1]) bad++;
        }
        CHECK(bad == 0 && e_want == E && off[E] == N, "episodes mode %d: %lld bad, E %lld want %lld",
              mode, (long long)bad, (long long)E, (long long)e_want);
        /* the packed output feeds the token-level calls directly */
        if (E > 0) {
            float *wh = h_alloc(sizeof(float) * (N + 1));
            size_t wb = 0;
            OK(segrl_workspace_size(SEGRL_OP_WHITEN, DEV, E, N, 1, &wb));
            void *wm = h_alloc(wb + 16);
            segrl_exec we = {0};
            we.workspace = wm, we.workspace_bytes = wb;
            segrl_layout lay = segrl_layout_packed(vec(off, SEGRL_DTYPE_I32, E + 1));
            OK(segrl_whiten(&lay, f32(adv, N), vec(msk, SEGRL_DTYPE_U8, N), segrl_view_none(), 0, NULL,
                            &we, f32(wh, N)));
            free(wh), free(wm);
        }
        free(off), free(idx), free(node), free(adv), free(msk);
    }
    free(par), free(s0), free(s1), free(dep), free(R), free(V), free(A), free(LA), free(nm);
    free(owner), free(isleaf), free(mem);
}

/* ROSE by hand: root (prompt, 2 tokens) -> n1 (3 tokens) -> {n2 (2 tokens, correct),
 * n3 (5 tokens, correct)}; root -> n4 (4 tokens, wrong). s = n2 (L_s = 7); for n3 (L_b = 10)
 * the branch point is after n1: k_c = 5, so n3's tokens get A -= |A| (1 - (2/5)^lambda). */
static void test_rose_hand(void) {
    int64_t par[5] = {-1, 0, 1, 1, 0}, s0[5] = {0, 2, 5, 7, 12}, s1[5] = {2, 5, 7, 12, 16};
    float R[5] = {NAN, NAN, 1, 1, 0}, A[5] = {0, 0.3f, 0.5f, -0.5f, -1};
    segrl_tree t = mk_tree(par, R, 5);
    t.span_start = i64(s0, 5), t.span_end = i64(s1, 5), t.num_tokens = 16;
    void *mem;
    segrl_exec e = ws_for(5, &mem);
    segrl_tree_episode_opts o = segrl_tree_episode_opts_default();
    o.kind = SEGRL_TREE_EPISODE_PATH, o.rose = 1, o.rose_lambda = 2, o.correct_threshold = 1;
    int64_t E, N, off[4], idx[32], node[3];
    float adv[32];
    OK(segrl_tree_episodes_size(&t, segrl_view_none(), &o, &e, &E, &N));
    CHECK(E == 3 && N == 7 + 10 + 6, "rose sizes %lld %lld", (long long)E, (long long)N);
    OK(segrl_tree_episodes(&t, f32(A, 5), segrl_view_none(), segrl_view_none(), &o, &e, i64(off, 4),
                           i64(idx, N), f32(adv, N), segrl_view_none(), i64(node, 3)));
    double f = 1 - 0.4 * 0.4;
    double want[23] = {0, 0, 0.3, 0.3, 0.3, 0.5, 0.5,                          /* s: unchanged */
                       0, 0, 0.3, 0.3, 0.3,                                    /* shared prefix */
                       -0.5 - 0.5 * f, -0.5 - 0.5 * f, -0.5 - 0.5 * f, -0.5 - 0.5 * f, -0.5 - 0.5 * f,
                       0, 0, -1, -1, -1, -1};                                   /* wrong: unchanged */
    h_close_f("rose", adv, want, 23, 1e-6, 0);
    CHECK(node[0] == 2 && node[1] == 3 && node[2] == 4 && off[1] == 7 && off[2] == 17, "rose layout");
    A[3] = 0.5f; /* positive advantages shrink toward 0 */
    OK(segrl_tree_episodes(&t, f32(A, 5), segrl_view_none(), segrl_view_none(), &o, &e, i64(off, 4),
                           i64(idx, N), f32(adv, N), segrl_view_none(), segrl_view_none()));
    CHECK(fabs(adv[12] - 0.5 * (1 - f)) < 1e-6 && fabs(adv[11] - 0.3) < 1e-7, "rose positive %g", adv[12]);
    free(mem);
}

// ----------------------------------------------------------------------------
// bad input

#define BM 7
enum { VAL, ADV, EP, SIZE, REST };

typedef struct bad_args {
    int64_t par[BM], s0[BM], s1[BM], dep[BM];
    float R[BM], V[BM], A[BM];
    segrl_tree t;
    segrl_view values, nadv, ladv;
    segrl_view out_v, out_lc, out_a, out_la, out_nm, out_off, out_idx, out_adv, out_m, out_node;
    segrl_tree_adv_opts ao;
    segrl_tree_episode_opts eo;
    segrl_exec exec;
    int tree_null;
    int kind;
} bad_args;

static float g_v[BM + 8], g_a[BM + 8], g_la[BM + 8], g_adv[64];
static int64_t g_lc[BM + 8], g_off[16], g_idx[64], g_node[16];
static uint8_t g_nm[BM + 8], g_m[64];
static double g_ws[256];

/* 0 -> {1 -> {3, 4}, 2 -> {5, 6}}; every node 2 tokens, in node order */
static void bad_defaults(bad_args *a) {
    static const int64_t par[BM] = {-1, 0, 0, 1, 1, 2, 2};
    memset(a, 0, sizeof *a);
    for (int i = 0; i < BM; i++) {
        a->par[i] = par[i], a->s0[i] = 2 * i, a->s1[i] = 2 * i + 2;
        a->dep[i] = par[i] < 0 ? 0 : a->dep[par[i]] + 1;
        a->R[i] = i >= 3 ? (float)(i % 2) : NAN, a->V[i] = 0.5f, a->A[i] = 0.25f;
    }
    a->t.parent = i64(a->par, BM), a->t.span_start = i64(a->s0, BM), a->t.span_end = i64(a->s1, BM);
    a->t.num_tokens = 2 * BM, a->t.leaf_reward = f32(a->R, BM), a->t.depth = i64(a->dep, BM);
    a->values = f32(a->V, BM), a->nadv = f32(a->A, BM), a->ladv = f32(a->A, BM);
    a->out_v = f32(g_v, BM), a->out_lc = i64(g_lc, BM);
    a->out_a = f32(g_a, BM), a->out_la = f32(g_la, BM), a->out_nm = vec(g_nm, SEGRL_DTYPE_U8, BM);
    /* path episodes of this tree: 4 leaves x 6 tokens */
    a->out_off = i64(g_off, 5), a->out_idx = i64(g_idx, 24), a->out_adv = f32(g_adv, 24);
    a->out_m = vec(g_m, SEGRL_DTYPE_U8, 24), a->out_node = i64(g_node, 4);
    a->ao = segrl_tree_adv_opts_default();
    a->eo = segrl_tree_episode_opts_default();
    a->eo.kind = SEGRL_TREE_EPISODE_PATH, a->eo.traj_weight = 0.5f, a->eo.rose = 1;
    a->exec.workspace = g_ws, a->exec.workspace_bytes = sizeof g_ws;
    for (int i = 0; i < BM + 8; i++) g_v[i] = g_a[i] = g_la[i] = GUARD, g_lc[i] = 777, g_nm[i] = 77;
    for (int i = 0; i < 64; i++) g_adv[i] = GUARD, g_idx[i] = 777, g_m[i] = 77;
    for (int i = 0; i < 16; i++) g_off[i] = g_node[i] = 777;
}

static int64_t g_E, g_N;

static segrl_status bad_call(int fam, bad_args *a) {
    const segrl_tree *t = a->tree_null ? NULL : &a->t;
    switch (fam) {
    case VAL: return segrl_tree_values(t, a->kind, &a->exec, a->out_v, a->out_lc);
    case ADV: return segrl_tree_advantages(t, a->values, &a->ao, &a->exec, a->out_a, a->out_la, a->out_nm);
    case EP:
        return segrl_tree_episodes(t, a->nadv, a->ladv, segrl_view_none(), &a->eo, &a->exec, a->out_off,
                                   a->out_idx, a->out_adv, a->out_m, a->out_node);
    case SIZE: return segrl_tree_episodes_size(t, segrl_view_none(), &a->eo, &a->exec, &g_E, &g_N);
    default: return segrl_tree_rest_values(t, 1.0f, 0.0f, &a->exec, a->out_v);
    }
}

static int untouched(void) {
    for (int i = 0; i < BM + 8; i++)
        if (g_v[i] != GUARD || g_a[i] != GUARD || g_la[i] != GUARD || g_lc[i] != 777 || g_nm[i] != 77)
            return 0;
    for (int i = 0; i < 64; i++)
        if (g_adv[i] != GUARD || g_idx[i] != 777 || g_m[i] != 77) return 0;
    for (int i = 0; i < 16; i++)
        if (g_off[i] != 777 || g_node[i] != 777) return 0;
    return g_E == -5 && g_N == -5;
}

static int bad_setup(int id, bad_args *a, int *fam, segrl_status *want, const char **word) {
    segrl_view none = segrl_view_none();
    *want = SEGRL_ERR_INVALID;
    switch (id) {
    case 0: *fam = VAL, a->par[3] = 3, *word = "tree->parent: node 3 has parent 3, which is not before"; break;
    case 1: *fam = VAL, a->par[3] = 5, *word = "tree->parent: node 3"; break;
    case 2: *fam = ADV, a->par[1] = 2, a->par[2] = 1, *word = "tree->parent"; break; /* cycle */
    case 3: *fam = VAL, a->par[4] = -2, *word = "outside [-1, M"; break;
    case 4: *fam = EP, a->par[6] = BM, *word = "tree->parent"; break;
    case 5: *fam = VAL, a->t.parent = none, *word = "tree->parent"; break;
    case 6: *fam = VAL, a->t.parent.dtype = SEGRL_DTYPE_F32, *word = "tree->parent"; break;
    case 7: *fam = VAL, a->tree_null = 1, *word = "tree: NULL"; break;
    case 8: *fam = EP, a->s0[2] = 20, *word = "tree->span_start: node 2"; break;
    case 9: *fam = EP, a->s1[2] = 3, *word = "tree->span_end: node 2"; break;
    case 10: *fam = EP, a->s1[6] = 2 * BM + 1, *word = "tree->span_end"; break;
    case 11: *fam = EP, a->s0[3] = 5, *word = "overlaps"; break;
    case 12: *fam = SIZE, a->s0[5] = 0, a->s1[5] = 2, *word = "tree->span_start: node 5"; break; /* out of order */
    case 13: *fam = EP, a->s0[1] = -1, *word = "tree->span_start"; break;
    case 14: *fam = EP, a->t.span_end = none, *word = "tree->span_end"; break;
    case 15: *fam = EP, a->t.num_tokens = -1, *word = "tree->num_tokens"; break;
    case 16: *fam = VAL, a->R[4] = NAN, *word = "tree->leaf_reward: leaf 4"; break;
    case 17: *fam = REST, a->R[6] = INFINITY, *word = "tree->leaf_reward"; break;
    case 18: *fam = EP, a->R[3] = NAN, *word = "tree->leaf_reward"; break; /* ROSE reads rewards */
    case 19: *fam = ADV, a->R[5] = NAN, *word = "tree->leaf_reward"; break; /* leaf GRPO */
    case 20: *fam = VAL, a->t.leaf_reward = none, *word = "tree->leaf_reward"; break;
    case 21: *fam = ADV, a->V[2] = NAN, *word = "values"; break;
    case 22: *fam = EP, a->A[1] = INFINITY, *word = "node_advantages"; break;
    case 23: *fam = EP, a->ladv = none, *word = "leaf_advantages"; break;
    case 24: *fam = VAL, a->dep[4] = 3, *word = "tree->depth: node 4"; break;
    case 25: *fam = VAL, a->kind = 3, *word = "kind"; break;
    case 26: *fam = ADV, a->ao.kind = -1, *word = "opts->kind"; break;
    case 27: *fam = ADV, a->ao.eps = -1, *word = "opts->eps"; break;
    case 28: *fam = EP, a->eo.traj_weight = 1.5f, *word = "opts->traj_weight"; break;
    case 29: *fam = EP, a->eo.rose_lambda = NAN, *word = "opts->rose_lambda"; break;
    case 30: *fam = EP, a->eo.kind = 9, *word = "opts->kind"; break;
    case 31: *fam = VAL, a->out_v = f32(g_v, BM - 1), *word = "out_values"; break;
    case 32: *fam = VAL, a->out_lc.dtype = SEGRL_DTYPE_F32, *word = "out_leaf_counts"; break;
    case 33: *fam = ADV, a->out_a = none, *word = "out_advantages"; break;
    case 34: *fam = ADV, a->out_nm = f32(g_a, BM), *word = "out_node_mask"; break; /* aliases */
    case 35: *fam = EP, a->out_off = i64(g_off, 4), *word = "out_offsets"; break;
    case 36: *fam = EP, a->out_idx = i64(g_idx, 25), *word = "out_token_index"; break;
    case 37: *fam = EP, a->out_adv = f32(g_adv, 23), *word = "out_advantages"; break;
    case 38: *fam = EP, a->out_node = i64(g_node, 5), *word = "out_episode_node"; break;
    case 39: *fam = VAL, a->exec.checks = 5, *word = "exec"; break;
    case 40: *fam = VAL, a->exec.workspace = NULL, *want = SEGRL_ERR_WORKSPACE, *word = "exec->workspace"; break;
    case 41: *fam = EP, a->exec.workspace_bytes = 16, *want = SEGRL_ERR_WORKSPACE, *word = "exec->workspace"; break;
    case 42: /* a tree on CUDA: no device (or CPU-only build); with a GPU, the other views are on the CPU */
        *fam = VAL, a->t.parent.device = segrl_cuda(0);
        if (segrl_cuda_device_count() > 0) *word = "on cpu, expected cuda:0";
        else *want = SEGRL_ERR_NO_DEVICE, *word = "segrl_tree_values: tree->parent: on cuda:0 but";
        break;
    case 43: *fam = ADV, a->values.device = segrl_cuda(0), *word = "values: on cuda:0, expected cpu"; break;
    case 44: *fam = EP, a->out_adv.device = segrl_cuda(0), *want = SEGRL_ERR_UNSUPPORTED, *word = "out_advantages: CUDA"; break;
    case 45: *fam = REST, a->out_v.device = segrl_cuda(1), *want = SEGRL_ERR_UNSUPPORTED, *word = "out_values: CUDA"; break;
    case 46: *fam = SIZE, a->t.span_start.device = segrl_cuda(0), *want = SEGRL_ERR_UNSUPPORTED, *word = "tree->span_start"; break;
    case 47: *fam = VAL, a->t.parent = segrl_view_2d(a->par, SEGRL_DTYPE_I64, DEV, 1, BM), *word = "tree->parent"; break;
    case 48: *fam = ADV, a->values = f32(a->V, BM + 1), *word = "values"; break;
    case 49: *fam = EP, a->out_m = a->out_adv, *word = "out_mask"; break;
    default: return 0;
    }
    return 1;
}

static void test_bad_input(void) {
    int n = 0;
    for (int id = 0;; id++) {
        bad_args a;
        bad_defaults(&a);
        g_E = g_N = -5;
        int fam = 0;
        segrl_status want;
        const char *word;
        if (!bad_setup(id, &a, &fam, &want, &word)) break;
        segrl_clear_error();
        segrl_status st = bad_call(fam, &a);
        const char *msg = segrl_last_error();
        CHECK(st == want && strstr(msg, word) && untouched(),
              "bad case %d: status %s (want %s), message \"%s\" (want \"%s\"), outputs %s", id,
              segrl_status_str(st), segrl_status_str(want), msg, word, untouched() ? "untouched" : "WRITTEN");
        n++;
    }
    CHECK(n == 50, "bad-input cases run: %d", n);
    /* the defaults are valid for every call (so each case above breaks exactly one thing) */
    for (int fam = VAL; fam <= REST; fam++) {
        bad_args a;
        bad_defaults(&a);
        segrl_status st = bad_call(fam, &a);
        CHECK(st == SEGRL_OK, "bad-input defaults, family %d: %s", fam, segrl_last_error());
    }
    /* NaN rewards at inner nodes are ignored; SEGRL_CHECKS_SHAPES skips the content checks */
    bad_args a;
    bad_defaults(&a);
    a.R[1] = NAN, a.R[0] = INFINITY;
    CHECK(bad_call(VAL, &a) == SEGRL_OK, "inner NaN reward rejected: %s", segrl_last_error());
    bad_defaults(&a);
    a.V[2] = NAN, a.exec.checks = SEGRL_CHECKS_SHAPES;
    CHECK(bad_call(ADV, &a) == SEGRL_OK, "shapes-only checks: %s", segrl_last_error());
    /* an empty batch */
    bad_defaults(&a);
    a.t.parent = i64(a.par, 0), a.t.leaf_reward = f32(a.R, 0), a.t.depth = segrl_view_none();
    a.t.span_start = a.t.span_end = segrl_view_none();
    a.out_v = f32(g_v, 0), a.out_lc = segrl_view_none();
    CHECK(bad_call(VAL, &a) == SEGRL_OK, "empty batch: %s", segrl_last_error());
}

int main(void) {
    test_spo_figure();
    test_666();
    test_rest_hand();
    test_rose_hand();
    const int64_t sizes[] = {1, 2, 3, 50, 1000, 100000};
    for (int i = 0; i < 6; i++) {
        test_random(sizes[i], 100 + i, 1);
        test_random(sizes[i], 200 + i, 0);
    }
    test_random(1000000, 7, 1);
    test_dtypes();
    test_episodes(20, 11);
    test_episodes(3000, 12);
    test_episodes(200000, 13);
    test_bad_input();
    return h_finish();
}
