/* tree.c — rollout-tree credit assignment: validation of the node arrays and the CPU reference
 * (values, advantages, episode expansion, ReST-MCTS* targets, ROSE shaping). Parents precede
 * children, so everything that flows up the tree is one pass from the last node to the first and
 * everything that flows down is one pass from the first to the last: O(M), no recursion.
 * Scratch (per-node f64 and i64 arrays) comes from the caller's workspace. */
#include "../check.h"

#include <math.h>

/* workspace: SG_TREE_SLOTS arrays of M 8-byte elements */
#define SG_TREE_SLOTS 8

static inline int64_t sg_ix(const void *p, int32_t dt, int64_t i) {
    return dt == SEGRL_DTYPE_I32 ? (int64_t)((const int32_t *)p)[i] : ((const int64_t *)p)[i];
}
static inline void sg_ix_put(void *p, int32_t dt, int64_t i, int64_t v) {
    if (dt == SEGRL_DTYPE_I32) ((int32_t *)p)[i] = (int32_t)v;
    else ((int64_t *)p)[i] = v;
}
static inline int sg_mask_get(const void *p, int32_t dt, int64_t i) {
    if (!p) return 1;
    switch (dt) {
    case SEGRL_DTYPE_U8: return ((const uint8_t *)p)[i] != 0;
    case SEGRL_DTYPE_I32: return ((const int32_t *)p)[i] != 0;
    case SEGRL_DTYPE_I64: return ((const int64_t *)p)[i] != 0;
    default: return ((const float *)p)[i] != 0.0f;
    }
}
static inline void sg_mask_put(void *p, int32_t dt, int64_t i, int v) {
    switch (dt) {
    case SEGRL_DTYPE_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case SEGRL_DTYPE_I32: ((int32_t *)p)[i] = v; break;
    case SEGRL_DTYPE_I64: ((int64_t *)p)[i] = v; break;
    default: ((float *)p)[i] = (float)v; break;
    }
}

/* A validated tree. */
typedef struct sg_tree {
    int64_t M;
    const void *parent;
    int32_t parent_dt;
    const void *s0, *s1; /* span start / end, or NULL */
    int32_t s0_dt, s1_dt;
    int64_t num_tokens;
    const float *reward; /* or NULL */
    const void *dep;     /* or NULL */
    int32_t dep_dt;
    int cuda;            /* the views are on a CUDA device (values and advantages only) */
    /* workspace slots (CPU) */
    double *d[4];
    int64_t *k; /* child counts (filled by sg_tree_begin) */
    int64_t *x[3];
} sg_tree;

static inline int64_t sg_par(const sg_tree *t, int64_t i) { return sg_ix(t->parent, t->parent_dt, i); }
static inline int64_t sg_s0(const sg_tree *t, int64_t i) { return sg_ix(t->s0, t->s0_dt, i); }
static inline int64_t sg_len(const sg_tree *t, int64_t i) {
    return sg_ix(t->s1, t->s1_dt, i) - sg_ix(t->s0, t->s0_dt, i);
}

static int sg_full(const sg_call *c) { return c->exec.checks == SEGRL_CHECKS_FULL; }

/* Episodes and ReST-MCTS* targets are CPU only in this release: any view on a CUDA device is
 * unsupported. */
static segrl_status sg_cpu_only(const char *fn, segrl_view v, const char *name) {
    if (!segrl_view_is_none(v) && v.device.type == SEGRL_DEVICE_CUDA)
        return sg_fail(SEGRL_ERR_UNSUPPORTED,
                       "%s: %s: CUDA views are not supported by this op yet (CPU only)", fn, name);
    return SEGRL_OK;
}

static segrl_status sg_index_vec(const sg_call *c, segrl_view v, const char *name, int64_t n,
                                 int required, const void **out, int32_t *dt) {
    return sg_vec_view(c, v, name, n, SG_IDX, required, out, dt);
}

segrl_status segrl_tree_workspace_size(segrl_device device, int64_t num_nodes, size_t *out_bytes) {
    static const char *fn = "segrl_tree_workspace_size";
    if (!out_bytes) return sg_fail(SEGRL_ERR_INVALID, "%s: out_bytes: NULL", fn);
    if (device.type != SEGRL_DEVICE_CPU && device.type != SEGRL_DEVICE_CUDA)
        return sg_fail(SEGRL_ERR_INVALID, "%s: device: unknown device type %d", fn, device.type);
    if (num_nodes < 0 || (uint64_t)num_nodes > (uint64_t)SIZE_MAX / (SG_TREE_SLOTS * 8) - 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: num_nodes: %lld out of range", fn,
                       (long long)num_nodes);
    if (device.type == SEGRL_DEVICE_CUDA) /* kernels/tree.cu: [check scratch][8 slots of M + 2] */
        *out_bytes = SG_WS_CHECK_BYTES + (size_t)SG_TREE_SLOTS * sg_align(((size_t)num_nodes + 2) * 8);
    else
        *out_bytes = (size_t)num_nodes * SG_TREE_SLOTS * 8;
    return SEGRL_OK;
}

#ifdef SEGRL_WITH_CUDA
static sg_tree_dev sg_tree_on_dev(const sg_call *c, const sg_tree *t) {
    sg_tree_dev d;
    memset(&d, 0, sizeof d);
    d.M = t->M;
    d.parent = t->parent;
    d.parent_dt = t->parent_dt;
    d.s0 = t->s0;
    d.s1 = t->s1;
    d.s0_dt = t->s0_dt;
    d.s1_dt = t->s1_dt;
    d.num_tokens = t->num_tokens;
    d.reward = t->reward;
    d.depth = t->dep;
    d.depth_dt = t->dep_dt;
    d.ws = c->exec.workspace;
    d.stream = c->exec.stream;
    return d;
}
#endif

/* The content checks on the device, with the CPU's messages. */
static segrl_status sg_tree_begin_cuda(sg_call *c, sg_tree *t, int need_reward) {
    if (!sg_full(c)) return SEGRL_OK;
#ifdef SEGRL_WITH_CUDA
    const char *fn = c->fn;
    const sg_tree_dev d = sg_tree_on_dev(c, t);
    sg_tree_bad b;
    SG_TRY(sg_cuda_tree_check(&d, need_reward, &b));
    const long long i = (long long)b.node;
    switch (b.what) {
    case SG_TREE_BAD_PARENT:
        if (b.a < -1 || b.a >= t->M)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: tree->parent: node %lld has parent %lld, outside [-1, M = %lld)",
                           fn, i, (long long)b.a, (long long)t->M);
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: tree->parent: node %lld has parent %lld, which is not before "
                       "it (parents must precede their children)",
                       fn, i, (long long)b.a);
    case SG_TREE_BAD_DEPTH:
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: tree->depth: node %lld has depth %lld, expected %lld", fn, i,
                       (long long)b.a, (long long)b.b);
    case SG_TREE_BAD_SPAN:
        if (b.a < 0 || b.a > t->num_tokens)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: tree->span_start: node %lld starts at %lld, outside "
                           "[0, num_tokens = %lld]",
                           fn, i, (long long)b.a, (long long)t->num_tokens);
        if (b.b < b.a || b.b > t->num_tokens)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: tree->span_end: node %lld ends at %lld, outside "
                           "[span_start = %lld, num_tokens = %lld]",
                           fn, i, (long long)b.b, (long long)b.a, (long long)t->num_tokens);
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: tree->span_start: node %lld span [%lld, %lld) overlaps "
                       "or precedes an earlier node's span (spans must be "
                       "disjoint and in node order)",
                       fn, i, (long long)b.a, (long long)b.b);
    case SG_TREE_BAD_REWARD:
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: tree->leaf_reward: leaf %lld has no finite reward (%g)", fn, i, b.r);
    default: break;
    }
    return SEGRL_OK;
#else
    (void)t;
    (void)need_reward;
    return sg_fail(SEGRL_ERR_NO_DEVICE, "%s: built without CUDA", c->fn);
#endif
}

/* Validates the tree (views, workspace, contents) and (CPU) fills the child counts.
 * need_reward: leaf_reward required and checked finite at leaves; need_spans: spans required;
 * cuda_ok: the op runs on CUDA (the tree's device is that of tree->parent), else CUDA views are
 * unsupported. */
static segrl_status sg_tree_begin(sg_call *c, sg_tree *t, const char *fn, const segrl_tree *tree,
                                  const segrl_exec *exec, int need_reward, int need_spans,
                                  int cuda_ok) {
    memset(t, 0, sizeof *t);
    if (!tree) return sg_fail(SEGRL_ERR_INVALID, "%s: tree: NULL", fn);
    SG_TRY(sg_call_start(c, fn, exec));
    if (!cuda_ok) {
        SG_TRY(sg_cpu_only(fn, tree->parent, "tree->parent"));
        SG_TRY(sg_cpu_only(fn, tree->span_start, "tree->span_start"));
        SG_TRY(sg_cpu_only(fn, tree->span_end, "tree->span_end"));
        SG_TRY(sg_cpu_only(fn, tree->leaf_reward, "tree->leaf_reward"));
        SG_TRY(sg_cpu_only(fn, tree->depth, "tree->depth"));
    } else if (!segrl_view_is_none(tree->parent) &&
               tree->parent.device.type == SEGRL_DEVICE_CUDA) {
        SG_TRY(sg_device_usable(fn, tree->parent.device, "tree->parent"));
        c->g.device = tree->parent.device;
        t->cuda = 1;
    }
    if (segrl_view_is_none(tree->parent))
        return sg_fail(SEGRL_ERR_INVALID, "%s: tree->parent: NULL (required)", fn);
    if (tree->parent.ndim != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: tree->parent: must be 1-D (M), got %d-D", fn,
                       tree->parent.ndim);
    const int64_t M = tree->parent.shape[0];
    t->M = M;
    SG_TRY(sg_index_vec(c, tree->parent, "tree->parent", M, 1, &t->parent, &t->parent_dt));
    int has_spans = !segrl_view_is_none(tree->span_start) || !segrl_view_is_none(tree->span_end);
    if (need_spans || has_spans) {
        SG_TRY(sg_index_vec(c, tree->span_start, "tree->span_start", M, 1, &t->s0, &t->s0_dt));
        SG_TRY(sg_index_vec(c, tree->span_end, "tree->span_end", M, 1, &t->s1, &t->s1_dt));
        if (tree->num_tokens < 0)
            return sg_fail(SEGRL_ERR_INVALID, "%s: tree->num_tokens: %lld, must be >= 0", fn,
                           (long long)tree->num_tokens);
        t->num_tokens = tree->num_tokens;
    }
    if (need_reward) {
        const void *r;
        SG_TRY(sg_vec_view(c, tree->leaf_reward, "tree->leaf_reward", M, SG_F32, 1, &r, NULL));
        t->reward = (const float *)r;
    }
    const void *dep = NULL;
    int32_t dep_dt = -1;
    SG_TRY(sg_index_vec(c, tree->depth, "tree->depth", M, 0, &dep, &dep_dt));
    t->dep = dep;
    t->dep_dt = dep_dt;
    size_t need = 0;
    SG_TRY(segrl_tree_workspace_size(c->g.device, M, &need));
    SG_TRY(sg_workspace(c, need));
    if (t->cuda) return sg_tree_begin_cuda(c, t, need_reward);
    double *w = (double *)c->exec.workspace;
    for (int s = 0; s < 4; s++) t->d[s] = w + (size_t)s * M;
    int64_t *wi = (int64_t *)(w + (size_t)4 * M);
    t->k = wi;
    for (int s = 0; s < 3; s++) t->x[s] = wi + (size_t)(s + 1) * M;

    if (sg_full(c)) {
        for (int64_t i = 0; i < M; i++) {
            int64_t p = sg_par(t, i);
            if (p < -1 || p >= M)
                return sg_fail(SEGRL_ERR_INVALID,
                               "%s: tree->parent: node %lld has parent %lld, outside [-1, M = %lld)",
                               fn, (long long)i, (long long)p, (long long)M);
            if (p >= i)
                return sg_fail(SEGRL_ERR_INVALID,
                               "%s: tree->parent: node %lld has parent %lld, which is not before "
                               "it (parents must precede their children)",
                               fn, (long long)i, (long long)p);
        }
        if (dep)
            for (int64_t i = 0; i < M; i++) {
                int64_t p = sg_par(t, i);
                int64_t want = p < 0 ? 0 : sg_ix(dep, dep_dt, p) + 1;
                if (sg_ix(dep, dep_dt, i) != want)
                    return sg_fail(SEGRL_ERR_INVALID,
                                   "%s: tree->depth: node %lld has depth %lld, expected %lld", fn,
                                   (long long)i, (long long)sg_ix(dep, dep_dt, i), (long long)want);
            }
        if (t->s0) {
            int64_t end_so_far = 0;
            for (int64_t i = 0; i < M; i++) {
                int64_t s = sg_s0(t, i), e = sg_ix(t->s1, t->s1_dt, i);
                if (s < 0 || s > t->num_tokens)
                    return sg_fail(SEGRL_ERR_INVALID,
                                   "%s: tree->span_start: node %lld starts at %lld, outside "
                                   "[0, num_tokens = %lld]",
                                   fn, (long long)i, (long long)s, (long long)t->num_tokens);
                if (e < s || e > t->num_tokens)
                    return sg_fail(SEGRL_ERR_INVALID,
                                   "%s: tree->span_end: node %lld ends at %lld, outside "
                                   "[span_start = %lld, num_tokens = %lld]",
                                   fn, (long long)i, (long long)e, (long long)s,
                                   (long long)t->num_tokens);
                if (e > s) {
                    if (s < end_so_far)
                        return sg_fail(SEGRL_ERR_INVALID,
                                       "%s: tree->span_start: node %lld span [%lld, %lld) overlaps "
                                       "or precedes an earlier node's span (spans must be "
                                       "disjoint and in node order)",
                                       fn, (long long)i, (long long)s, (long long)e);
                    end_so_far = e;
                }
            }
        }
    }
    memset(t->k, 0, (size_t)M * sizeof *t->k);
    for (int64_t i = 0; i < M; i++) {
        int64_t p = sg_par(t, i);
        if (p >= 0) t->k[p]++;
    }
    if (need_reward && sg_full(c))
        for (int64_t i = 0; i < M; i++)
            if (t->k[i] == 0 && !isfinite(t->reward[i]))
                return sg_fail(SEGRL_ERR_INVALID,
                               "%s: tree->leaf_reward: leaf %lld has no finite reward (%g)", fn,
                               (long long)i, (double)t->reward[i]);
    return SEGRL_OK;
}

static segrl_status sg_out_index_range(const sg_call *c, const char *name, int32_t dt,
                                       int64_t maxval) {
    if (dt == SEGRL_DTYPE_I32 && maxval > INT32_MAX)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: values up to %lld do not fit i32", c->fn, name,
                       (long long)maxval);
    return SEGRL_OK;
}

static segrl_status sg_distinct(const char *fn, const char *a, const void *pa, const char *b,
                                const void *pb) {
    if (pa && pa == pb)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: is the same buffer as %s", fn, b, a);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// values

static void sg_cpu_tree_values(const sg_tree *t, int32_t kind, float *out, void *lc,
                               int32_t lc_dt) {
    const int64_t M = t->M;
    double *S = t->d[0], *C = t->d[1];
    int64_t *L = t->x[0];
    for (int64_t i = 0; i < M; i++) {
        S[i] = 0.0;
        C[i] = kind == SEGRL_TREE_VALUE_MAX ? -INFINITY : 0.0;
        L[i] = 0;
    }
    for (int64_t i = M - 1; i >= 0; i--) {
        double v;
        if (t->k[i] == 0) {
            v = (double)t->reward[i];
            S[i] = v;
            L[i] = 1;
        } else if (kind == SEGRL_TREE_VALUE_LEAF_MEAN) {
            v = S[i] / (double)L[i];
        } else if (kind == SEGRL_TREE_VALUE_CHILD_MEAN) {
            v = C[i] / (double)t->k[i];
        } else {
            v = C[i];
        }
        out[i] = (float)v;
        if (lc) sg_ix_put(lc, lc_dt, i, L[i]);
        int64_t p = sg_par(t, i);
        if (p >= 0) {
            S[p] += S[i];
            L[p] += L[i];
            if (kind == SEGRL_TREE_VALUE_MAX) C[p] = v > C[p] ? v : C[p];
            else C[p] += v;
        }
    }
}

segrl_status segrl_tree_values(const segrl_tree *tree, int32_t kind, const segrl_exec *exec,
                               segrl_view out_values, segrl_view out_leaf_counts) {
    static const char *fn = "segrl_tree_values";
    sg_call c;
    sg_tree t;
    SG_TRY(sg_tree_begin(&c, &t, fn, tree, exec, 1, 0, 1));
    if (kind < SEGRL_TREE_VALUE_LEAF_MEAN || kind > SEGRL_TREE_VALUE_MAX)
        return sg_fail(SEGRL_ERR_INVALID, "%s: kind: %d is not a segrl_tree_value", fn, kind);
    const void *ov, *lc;
    int32_t lc_dt;
    SG_TRY(sg_vec_view(&c, out_values, "out_values", t.M, SG_F32, 1, &ov, NULL));
    SG_TRY(sg_index_vec(&c, out_leaf_counts, "out_leaf_counts", t.M, 0, &lc, &lc_dt));
    SG_TRY(sg_out_index_range(&c, "out_leaf_counts", lc_dt, t.M));
    SG_TRY(sg_distinct(fn, "out_values", ov, "out_leaf_counts", lc));
    if (t.cuda) {
#ifdef SEGRL_WITH_CUDA
        const sg_tree_dev d = sg_tree_on_dev(&c, &t);
        return sg_cuda_tree_values(&d, kind, (float *)ov, (void *)lc, lc_dt);
#endif
    }
    sg_cpu_tree_values(&t, kind, (float *)ov, (void *)lc, lc_dt);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// advantages

segrl_tree_adv_opts segrl_tree_adv_opts_default(void) {
    segrl_tree_adv_opts o = {SEGRL_TREE_ADV_PARENT, 1e-6f, 1, 0};
    return o;
}

static double sg_tree_std(double m2, int64_t n, int unbiased) {
    if (n < 2) return 1.0;
    return sqrt(m2 / (double)(unbiased ? n - 1 : n));
}

static void sg_cpu_tree_advantages(const sg_tree *t, const float *V, const segrl_tree_adv_opts *o,
                                   float *out, float *leaf_out, void *nm, int32_t nm_dt) {
    const int64_t M = t->M;
    double *Cs = t->d[0], *Cq = t->d[1];
    for (int64_t i = 0; i < M; i++) Cs[i] = Cq[i] = 0.0;
    for (int64_t i = 0; i < M; i++) {
        int64_t p = sg_par(t, i);
        if (p >= 0) Cs[p] += (double)V[i];
    }
    if (o->kind == SEGRL_TREE_ADV_PARENT_STD)
        for (int64_t i = 0; i < M; i++) {
            int64_t p = sg_par(t, i);
            if (p < 0) continue;
            double d = (double)V[i] - Cs[p] / (double)t->k[p];
            Cq[p] += d * d;
        }
    if (leaf_out) { /* per-tree GRPO over the leaves; x[0] = root of each node */
        int64_t *root = t->x[0];
        double *Ls = t->d[2], *Lq = t->d[3];
        int64_t *Ln = t->x[1];
        for (int64_t i = 0; i < M; i++) {
            int64_t p = sg_par(t, i);
            root[i] = p < 0 ? i : root[p];
            Ls[i] = Lq[i] = 0.0;
            Ln[i] = 0;
        }
        for (int64_t i = 0; i < M; i++)
            if (t->k[i] == 0) Ls[root[i]] += (double)t->reward[i], Ln[root[i]]++;
        for (int64_t i = 0; i < M; i++)
            if (t->k[i] == 0) {
                double d = (double)t->reward[i] - Ls[root[i]] / (double)Ln[root[i]];
                Lq[root[i]] += d * d;
            }
        for (int64_t i = 0; i < M; i++) {
            if (t->k[i] != 0) {
                leaf_out[i] = 0.0f;
                continue;
            }
            int64_t r = root[i], n = Ln[r];
            double mean = n < 2 ? 0.0 : Ls[r] / (double)n;
            double sd = sg_tree_std(Lq[r], n, o->unbiased);
            leaf_out[i] = (float)(((double)t->reward[i] - mean) / (sd + (double)o->eps));
        }
    }
    /* last to first, so out may alias V: V[p] (p < i) and V[i] are read before A[i] is written */
    for (int64_t i = M - 1; i >= 0; i--) {
        int64_t p = sg_par(t, i);
        double A = 0.0;
        if (p >= 0) {
            double v = (double)V[i];
            int64_t k = t->k[p];
            if (o->kind == SEGRL_TREE_ADV_PARENT) {
                A = v - (double)V[p];
            } else if (o->kind == SEGRL_TREE_ADV_PARENT_STD) {
                A = (v - (double)V[p]) / (sg_tree_std(Cq[p], k, o->unbiased) + (double)o->eps);
            } else {
                A = k < 2 ? 0.0 : v - (Cs[p] - v) / (double)(k - 1);
            }
        }
        out[i] = (float)A;
        if (nm) sg_mask_put(nm, nm_dt, i, p >= 0 && !(o->drop_zero && out[i] == 0.0f));
    }
}

segrl_status segrl_tree_advantages(const segrl_tree *tree, segrl_view values,
                                   const segrl_tree_adv_opts *opts, const segrl_exec *exec,
                                   segrl_view out_advantages, segrl_view out_leaf_advantages,
                                   segrl_view out_node_mask) {
    static const char *fn = "segrl_tree_advantages";
    sg_call c;
    sg_tree t;
    segrl_tree_adv_opts o = opts ? *opts : segrl_tree_adv_opts_default();
    const int want_leaf = !segrl_view_is_none(out_leaf_advantages);
    SG_TRY(sg_tree_begin(&c, &t, fn, tree, exec, want_leaf, 0, 1));
    if (o.kind < SEGRL_TREE_ADV_PARENT || o.kind > SEGRL_TREE_ADV_SIBLINGS)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->kind: %d is not a segrl_tree_adv", fn, o.kind);
    if (!(o.eps >= 0.0f) || !isfinite(o.eps))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->eps: must be finite and >= 0", fn);
    const void *v, *oa, *ol, *nm;
    int32_t nm_dt;
    SG_TRY(sg_vec_view(&c, values, "values", t.M, SG_F32, 1, &v, NULL));
    SG_TRY(sg_vec_view(&c, out_advantages, "out_advantages", t.M, SG_F32, 1, &oa, NULL));
    SG_TRY(sg_vec_view(&c, out_leaf_advantages, "out_leaf_advantages", t.M, SG_F32, 0, &ol, NULL));
    SG_TRY(sg_vec_view(&c, out_node_mask, "out_node_mask", t.M, SG_MASK, 0, &nm, &nm_dt));
    SG_TRY(sg_distinct(fn, "out_advantages", oa, "out_leaf_advantages", ol));
    SG_TRY(sg_distinct(fn, "out_advantages", oa, "out_node_mask", nm));
    SG_TRY(sg_distinct(fn, "out_leaf_advantages", ol, "out_node_mask", nm));
    SG_TRY(sg_distinct(fn, "values", v, "out_leaf_advantages", ol));
    SG_TRY(sg_distinct(fn, "values", v, "out_node_mask", nm));
    SG_TRY(sg_check_finite_vec(&c, "values", (const float *)v, t.M));
    if (t.cuda) {
#ifdef SEGRL_WITH_CUDA
        const sg_tree_dev d = sg_tree_on_dev(&c, &t);
        return sg_cuda_tree_advantages(&d, (const float *)v, &o, (float *)oa, (float *)ol,
                                       (void *)nm, nm_dt);
#endif
    }
    sg_cpu_tree_advantages(&t, (const float *)v, &o, (float *)oa, (float *)ol, (void *)nm, nm_dt);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// episodes

segrl_tree_episode_opts segrl_tree_episode_opts_default(void) {
    segrl_tree_episode_opts o = {SEGRL_TREE_EPISODE_EDGE, 1, 0.0f, 0, 1.0f, 1.0f};
    return o;
}

/* Path token lengths P[i] (x[0]: tokens from the root through i) and the episode counts. */
static void sg_tree_plan(const sg_tree *t, const void *nm, int32_t nm_dt,
                         const segrl_tree_episode_opts *o, int64_t *E, int64_t *N) {
    int64_t *P = t->x[0];
    int64_t e = 0, n = 0;
    for (int64_t i = 0; i < t->M; i++) {
        int64_t p = sg_par(t, i);
        P[i] = (p < 0 ? 0 : P[p]) + sg_len(t, i);
        if (o->kind == SEGRL_TREE_EPISODE_EDGE) {
            if (p >= 0 && sg_mask_get(nm, nm_dt, i)) {
                e++;
                n += sg_len(t, i) + (o->include_prefix ? P[p] : 0);
            }
        } else if (t->k[i] == 0) {
            e++;
            n += P[i];
        }
    }
    *E = e;
    *N = n;
}

typedef struct sg_ep_out {
    void *off;
    int32_t off_dt;
    void *idx;
    int32_t idx_dt;
    float *adv;
    void *mask;
    int32_t mask_dt;
    void *node;
    int32_t node_dt;
} sg_ep_out;

/* writes node n's tokens at episode positions [base + P[n] - len(n), base + P[n]) */
static void sg_put_node(const sg_tree *t, const sg_ep_out *w, int64_t base, int64_t n, double a,
                        int m) {
    const int64_t len = sg_len(t, n), s = sg_s0(t, n);
    const int64_t at = base + t->x[0][n] - len;
    for (int64_t j = 0; j < len; j++) {
        sg_ix_put(w->idx, w->idx_dt, at + j, s + j);
        w->adv[at + j] = (float)a;
        if (w->mask) sg_mask_put(w->mask, w->mask_dt, at + j, m);
    }
}

static void sg_cpu_tree_episodes(const sg_tree *t, const float *A, const float *LA, const void *nm,
                                 int32_t nm_dt, const segrl_tree_episode_opts *o,
                                 const sg_ep_out *w) {
    const int64_t M = t->M;
    const int64_t *P = t->x[0];
    int64_t e = 0, pos = 0;
    sg_ix_put(w->off, w->off_dt, 0, 0);
    if (o->kind == SEGRL_TREE_EPISODE_EDGE) {
        for (int64_t i = 0; i < M; i++) {
            int64_t p = sg_par(t, i);
            if (p < 0 || !sg_mask_get(nm, nm_dt, i)) continue;
            int64_t base = o->include_prefix ? pos : pos - P[p];
            if (o->include_prefix)
                for (int64_t n = p; n >= 0; n = sg_par(t, n)) sg_put_node(t, w, base, n, 0.0, 0);
            sg_put_node(t, w, base, i, (double)A[i], 1);
            if (w->node) sg_ix_put(w->node, w->node_dt, e, i);
            pos = base + P[i];
            sg_ix_put(w->off, w->off_dt, ++e, pos);
        }
        return;
    }
    /* ROSE: x[1] = root of each node, x[2] = shortest correct leaf per root, d[0] = on its path */
    const int rose = o->rose && t->reward;
    int64_t *root = t->x[1], *best = t->x[2];
    double *on = t->d[0];
    if (rose) {
        for (int64_t i = 0; i < M; i++) {
            int64_t p = sg_par(t, i);
            root[i] = p < 0 ? i : root[p];
            best[i] = -1;
            on[i] = 0.0;
        }
        for (int64_t i = 0; i < M; i++)
            if (t->k[i] == 0 && t->reward[i] >= o->correct_threshold) {
                int64_t r = root[i];
                if (best[r] < 0 || P[i] < P[best[r]]) best[r] = i;
            }
        for (int64_t r = 0; r < M; r++)
            if (best[r] >= 0)
                for (int64_t n = best[r]; n >= 0; n = sg_par(t, n)) on[n] = 1.0;
    }
    const double wt = (double)o->traj_weight;
    for (int64_t l = 0; l < M; l++) {
        if (t->k[l] != 0) continue;
        const double la = wt > 0.0 ? (double)LA[l] : 0.0;
        /* ROSE factor for the nodes of this path below its branch point with s */
        double f = 0.0;
        int64_t lca = -1;
        if (rose && t->reward[l] >= o->correct_threshold && best[root[l]] != l &&
            best[root[l]] >= 0) {
            lca = l;
            while (lca >= 0 && on[lca] == 0.0) lca = sg_par(t, lca);
            const double kc = lca >= 0 ? (double)P[lca] : 0.0;
            const double Ls = (double)P[best[root[l]]], Lb = (double)P[l];
            if (Lb > kc) f = 1.0 - pow((Ls - kc) / (Lb - kc), (double)o->rose_lambda);
        }
        int below = f != 0.0;
        for (int64_t n = l; n >= 0; n = sg_par(t, n)) {
            if (n == lca) below = 0;
            int64_t p = sg_par(t, n);
            int m = p >= 0 && sg_mask_get(nm, nm_dt, n);
            double a = m ? (1.0 - wt) * (double)A[n] + wt * la : 0.0;
            if (below) a -= fabs(a) * f;
            sg_put_node(t, w, pos, n, a, m);
        }
        if (w->node) sg_ix_put(w->node, w->node_dt, e, l);
        pos += P[l];
        sg_ix_put(w->off, w->off_dt, ++e, pos);
    }
}

/* the checks shared by the size query and the expansion */
static segrl_status sg_episode_args(sg_call *c, sg_tree *t, const char *fn,
                                    const segrl_tree *tree, segrl_view node_mask,
                                    const segrl_tree_episode_opts *o, const segrl_exec *exec,
                                    const void **nm, int32_t *nm_dt) {
    SG_TRY(sg_cpu_only(fn, node_mask, "node_mask"));
    const int rose = o->kind == SEGRL_TREE_EPISODE_PATH && o->rose;
    SG_TRY(sg_tree_begin(c, t, fn, tree, exec, rose, 1, 0));
    if (o->kind != SEGRL_TREE_EPISODE_EDGE && o->kind != SEGRL_TREE_EPISODE_PATH)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->kind: %d is not a segrl_tree_episode", fn,
                       o->kind);
    if (!(o->traj_weight >= 0.0f && o->traj_weight <= 1.0f))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->traj_weight: must be in [0, 1]", fn);
    if (rose && (!(o->rose_lambda >= 0.0f) || !isfinite(o->rose_lambda)))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->rose_lambda: must be finite and >= 0", fn);
    if (rose) SG_TRY(sg_check_finite_param(fn, "opts->correct_threshold", o->correct_threshold));
    SG_TRY(sg_vec_view(c, node_mask, "node_mask", t->M, SG_MASK, 0, nm, nm_dt));
    return SEGRL_OK;
}

segrl_status segrl_tree_episodes_size(const segrl_tree *tree, segrl_view node_mask,
                                      const segrl_tree_episode_opts *opts, const segrl_exec *exec,
                                      int64_t *out_episodes, int64_t *out_tokens) {
    static const char *fn = "segrl_tree_episodes_size";
    sg_call c;
    sg_tree t;
    const void *nm;
    int32_t nm_dt;
    segrl_tree_episode_opts o = opts ? *opts : segrl_tree_episode_opts_default();
    SG_TRY(sg_episode_args(&c, &t, fn, tree, node_mask, &o, exec, &nm, &nm_dt));
    if (!out_episodes) return sg_fail(SEGRL_ERR_INVALID, "%s: out_episodes: NULL", fn);
    if (!out_tokens) return sg_fail(SEGRL_ERR_INVALID, "%s: out_tokens: NULL", fn);
    int64_t E, N;
    sg_tree_plan(&t, nm, nm_dt, &o, &E, &N);
    *out_episodes = E;
    *out_tokens = N;
    return SEGRL_OK;
}

segrl_status segrl_tree_episodes(const segrl_tree *tree, segrl_view node_advantages,
                                 segrl_view leaf_advantages, segrl_view node_mask,
                                 const segrl_tree_episode_opts *opts, const segrl_exec *exec,
                                 segrl_view out_offsets, segrl_view out_token_index,
                                 segrl_view out_advantages, segrl_view out_mask,
                                 segrl_view out_episode_node) {
    static const char *fn = "segrl_tree_episodes";
    sg_call c;
    sg_tree t;
    const void *nm, *a, *la;
    int32_t nm_dt;
    segrl_tree_episode_opts o = opts ? *opts : segrl_tree_episode_opts_default();
    SG_TRY(sg_cpu_only(fn, node_advantages, "node_advantages"));
    SG_TRY(sg_cpu_only(fn, leaf_advantages, "leaf_advantages"));
    SG_TRY(sg_cpu_only(fn, out_offsets, "out_offsets"));
    SG_TRY(sg_cpu_only(fn, out_token_index, "out_token_index"));
    SG_TRY(sg_cpu_only(fn, out_advantages, "out_advantages"));
    SG_TRY(sg_cpu_only(fn, out_mask, "out_mask"));
    SG_TRY(sg_cpu_only(fn, out_episode_node, "out_episode_node"));
    SG_TRY(sg_episode_args(&c, &t, fn, tree, node_mask, &o, exec, &nm, &nm_dt));
    const int blend = o.kind == SEGRL_TREE_EPISODE_PATH && o.traj_weight > 0.0f;
    SG_TRY(sg_vec_view(&c, node_advantages, "node_advantages", t.M, SG_F32, 1, &a, NULL));
    SG_TRY(sg_vec_view(&c, leaf_advantages, "leaf_advantages", t.M, SG_F32, blend, &la, NULL));
    SG_TRY(sg_check_finite_vec(&c, "node_advantages", (const float *)a, t.M));
    if (blend && sg_full(&c))
        for (int64_t i = 0; i < t.M; i++)
            if (t.k[i] == 0 && !isfinite(((const float *)la)[i]))
                return sg_fail(SEGRL_ERR_INVALID,
                               "%s: leaf_advantages: non-finite value at leaf %lld", fn,
                               (long long)i);
    int64_t E, N;
    sg_tree_plan(&t, nm, nm_dt, &o, &E, &N);
    sg_ep_out w;
    const void *p;
    memset(&w, 0, sizeof w);
    SG_TRY(sg_index_vec(&c, out_offsets, "out_offsets", E + 1, 1, &p, &w.off_dt));
    w.off = (void *)p;
    SG_TRY(sg_out_index_range(&c, "out_offsets", w.off_dt, N));
    SG_TRY(sg_index_vec(&c, out_token_index, "out_token_index", N, 1, &p, &w.idx_dt));
    w.idx = (void *)p;
    SG_TRY(sg_out_index_range(&c, "out_token_index", w.idx_dt, t.num_tokens));
    SG_TRY(sg_vec_view(&c, out_advantages, "out_advantages", N, SG_F32, 1, &p, NULL));
    w.adv = (float *)p;
    SG_TRY(sg_vec_view(&c, out_mask, "out_mask", N, SG_MASK, 0, &p, &w.mask_dt));
    w.mask = (void *)p;
    SG_TRY(sg_index_vec(&c, out_episode_node, "out_episode_node", E, 0, &p, &w.node_dt));
    w.node = (void *)p;
    SG_TRY(sg_out_index_range(&c, "out_episode_node", w.node_dt, t.M));
    const void *outs[5] = {w.off, w.idx, w.adv, w.mask, w.node};
    static const char *names[5] = {"out_offsets", "out_token_index", "out_advantages", "out_mask",
                                   "out_episode_node"};
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++) SG_TRY(sg_distinct(fn, names[i], outs[i], names[j], outs[j]));
    sg_cpu_tree_episodes(&t, (const float *)a, (const float *)la, nm, nm_dt, &o, &w);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// ReST-MCTS* value targets

segrl_status segrl_tree_rest_values(const segrl_tree *tree, float correct_threshold, float v0,
                                    const segrl_exec *exec, segrl_view out_values) {
    static const char *fn = "segrl_tree_rest_values";
    sg_call c;
    sg_tree t;
    const void *ov;
    SG_TRY(sg_cpu_only(fn, out_values, "out_values"));
    SG_TRY(sg_tree_begin(&c, &t, fn, tree, exec, 1, 0, 0));
    SG_TRY(sg_check_finite_param(fn, "correct_threshold", correct_threshold));
    SG_TRY(sg_check_finite_param(fn, "v0", v0));
    /* a value in [0, 1] keeps every v_n in [0, 1]; a huge v0 would overflow f32 */
    if (!(v0 >= 0.0f && v0 <= 1.0f))
        return sg_fail(SEGRL_ERR_INVALID, "%s: v0: %g not in [0, 1]", fn, (double)v0);
    SG_TRY(sg_vec_view(&c, out_values, "out_values", t.M, SG_F32, 1, &ov, NULL));
    float *out = (float *)ov;
    const int64_t M = t.M;
    int64_t *dc = t.x[0], *dl = t.x[1]; /* edges to the nearest correct leaf / any leaf below */
    double *v = t.d[0];
    const int64_t INF = INT64_MAX / 2;
    for (int64_t i = 0; i < M; i++) dc[i] = dl[i] = INF;
    for (int64_t i = M - 1; i >= 0; i--) {
        if (t.k[i] == 0) {
            dl[i] = 0;
            dc[i] = t.reward[i] >= correct_threshold ? 0 : INF;
        }
        int64_t p = sg_par(&t, i);
        if (p >= 0) {
            if (dl[i] + 1 < dl[p]) dl[p] = dl[i] + 1;
            if (dc[i] < INF && dc[i] + 1 < dc[p]) dc[p] = dc[i] + 1;
        }
    }
    for (int64_t i = 0; i < M; i++) {
        int64_t p = sg_par(&t, i);
        double vp = p < 0 ? (double)v0 : v[p];
        double r = dc[i] < INF ? 1.0 : -1.0;
        double m = 1.0 + (double)(dc[i] < INF ? dc[i] : dl[i]);
        double x = vp + (1.0 - vp) * r / m;
        v[i] = x > 0.0 ? x : 0.0;
        out[i] = (float)v[i];
    }
    return SEGRL_OK;
}
