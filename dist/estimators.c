/* estimators.c — group-aware estimators across ranks (CPU views).
 *
 * The global batch is every rank's local batch concatenated in rank order; group ids are global.
 * Each estimator is the single-process formula (src/advantage/outcome.c, token.c; docs/advantages.md)
 * with its sums split in two: every rank sums over its own sequences, the partial sums are
 * all-reduced, and every rank finishes its own sequences. Statistics that need a mean first (the
 * sum of squared deviations of GRPO's std, REINFORCE++'s token whitening) take a second round,
 * so the arithmetic is the same two-pass form as the single-process code:
 *   round 1: per group g: n_g, sum R           (+ the batch: B, sum R)
 *   round 2: per group g: sum (R - mean_g)^2   (+ the batch: sum (R - mean)^2)
 * Per-sequence R (sum of token rewards over valid tokens, or the given score) is computed here in
 * the same order as the single-process code (64-token blocks, eight f32 lanes, f64 totals), so R
 * agrees bit for bit and only the order of the cross-rank sums differs.
 *
 * Tree values: every rank holds the tree's node arrays; leaf rewards are spread over the ranks
 * (each leaf owned by one). Owned rewards and ownership counts are all-reduced, then the
 * single-process segrl_tree_values runs on the assembled tree. */
#define _POSIX_C_SOURCE 200809L

#include "dist-impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SD_TRY(expr)                                                                              \
    do {                                                                                          \
        segrl_status sd_st_ = (expr);                                                             \
        if (sd_st_ != SEGRL_OK) return sd_st_;                                                    \
    } while (0)

#define SD_MASK_DTYPES                                                                            \
    ((1u << SEGRL_DTYPE_U8) | (1u << SEGRL_DTYPE_I32) | (1u << SEGRL_DTYPE_I64) |                 \
     (1u << SEGRL_DTYPE_F32))
#define SD_IDX_DTYPES ((1u << SEGRL_DTYPE_I32) | (1u << SEGRL_DTYPE_I64))
#define SD_F32 (1u << SEGRL_DTYPE_F32)

// ----------------------------------------------------------------------------
// token geometry (padded (B, T) or packed (N) with offsets), CPU only

typedef struct sd_geom {
    int packed;
    int64_t B, T, N;
    const void *off;
    int32_t odt;
} sd_geom;

typedef struct sd_tok {
    char *data; /* NULL: absent */
    int32_t dtype;
    int64_t rs; /* padded: row stride in elements */
} sd_tok;

static inline int64_t sd_ix(const void *p, int32_t dt, int64_t i) {
    return dt == SEGRL_DTYPE_I32 ? (int64_t)((const int32_t *)p)[i] : ((const int64_t *)p)[i];
}

/* first element and length of sequence b of token tensor x */
static inline int64_t sd_seq(const sd_geom *g, const sd_tok *x, int64_t b, int64_t *n) {
    if (g->packed) {
        int64_t s = sd_ix(g->off, g->odt, b);
        *n = sd_ix(g->off, g->odt, b + 1) - s;
        return s;
    }
    *n = g->T;
    return b * x->rs;
}

static inline int sd_valid(const sd_tok *m, int64_t i) {
    if (!m->data) return 1;
    switch (m->dtype) {
    case SEGRL_DTYPE_U8: return ((const uint8_t *)m->data)[i] != 0;
    case SEGRL_DTYPE_I32: return ((const int32_t *)m->data)[i] != 0;
    case SEGRL_DTYPE_I64: return ((const int64_t *)m->data)[i] != 0;
    default: return ((const float *)m->data)[i] != 0.0f;
    }
}

static segrl_status sd_cpu_view(const char *fn, segrl_view v, const char *name) {
    if (v.device.type == SEGRL_DEVICE_CUDA)
        return SD_ERR(SEGRL_ERR_UNSUPPORTED,
                      "%s: %s: CUDA views are not supported by the distributed estimators yet "
                      "(CPU only; the statistics are small: copy them to the host)",
                      fn, name);
    if (v.device.type != SEGRL_DEVICE_CPU)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: unknown device type %d", fn, name,
                      v.device.type);
    return SEGRL_OK;
}

static segrl_status sd_dtype_in(const char *fn, segrl_view v, const char *name, unsigned set) {
    if (v.dtype < 0 || v.dtype > 31 || !(set & (1u << v.dtype)))
        return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: dtype %s not supported", fn, name,
                      segrl_dtype_name((segrl_dtype)v.dtype));
    return SEGRL_OK;
}

/* A contiguous 1-D CPU vector of n elements. */
static segrl_status sd_vec(const char *fn, segrl_view v, const char *name, int64_t n,
                           unsigned dtypes, int required, void **out, int32_t *out_dt) {
    *out = NULL;
    if (segrl_view_is_none(v)) {
        if (required) return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: required", fn, name);
        return SEGRL_OK;
    }
    SD_TRY(sd_cpu_view(fn, v, name));
    SD_TRY(sd_dtype_in(fn, v, name, dtypes));
    if (v.ndim != 1 || v.shape[0] != n)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: shape must be (%lld)", fn, name, (long long)n);
    if (n > 1 && v.strides[0] != 1)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: must be contiguous", fn, name);
    if (n > 0 && !v.data) return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: data is NULL", fn, name);
    *out = v.data;
    if (out_dt) *out_dt = v.dtype;
    return SEGRL_OK;
}

/* The geometry from the layout and a reference token tensor. */
static segrl_status sd_geometry(const char *fn, const segrl_layout *layout, segrl_view ref,
                                const char *ref_name, sd_geom *g) {
    memset(g, 0, sizeof *g);
    if (segrl_view_is_none(ref)) return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: required", fn, ref_name);
    SD_TRY(sd_cpu_view(fn, ref, ref_name));
    if (!layout || segrl_view_is_none(layout->offsets)) {
        if (ref.ndim != 2 || ref.shape[0] < 0 || ref.shape[1] < 0)
            return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: padded layout needs a 2-D (B, T) tensor", fn,
                          ref_name);
        g->B = ref.shape[0];
        g->T = ref.shape[1];
        g->N = g->B * g->T;
        return SEGRL_OK;
    }
    segrl_view o = layout->offsets;
    SD_TRY(sd_cpu_view(fn, o, "layout->offsets"));
    if (o.ndim != 1 || o.shape[0] < 1)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: layout->offsets: shape must be (B + 1)", fn);
    void *p;
    SD_TRY(sd_vec(fn, o, "layout->offsets", o.shape[0], SD_IDX_DTYPES, 1, &p, &g->odt));
    if (ref.ndim != 1)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: packed layout needs a 1-D (N) tensor", fn,
                      ref_name);
    g->packed = 1;
    g->off = p;
    g->B = o.shape[0] - 1;
    g->N = ref.shape[0];
    if (sd_ix(p, g->odt, 0) != 0)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: layout->offsets: offsets[0] must be 0", fn);
    for (int64_t b = 0; b < g->B; b++)
        if (sd_ix(p, g->odt, b + 1) < sd_ix(p, g->odt, b))
            return SD_ERR(SEGRL_ERR_INVALID, "%s: layout->offsets: decreasing at %lld", fn,
                          (long long)(b + 1));
    if (sd_ix(p, g->odt, g->B) != g->N)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: layout->offsets: offsets[B] = %lld, %s has %lld tokens",
                      fn, (long long)sd_ix(p, g->odt, g->B), ref_name, (long long)g->N);
    return SEGRL_OK;
}

/* A token tensor with the geometry g. */
static segrl_status sd_tokv(const char *fn, const sd_geom *g, segrl_view v, const char *name,
                            unsigned dtypes, int required, sd_tok *out) {
    memset(out, 0, sizeof *out);
    if (segrl_view_is_none(v)) {
        if (required) return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: required", fn, name);
        return SEGRL_OK;
    }
    SD_TRY(sd_cpu_view(fn, v, name));
    SD_TRY(sd_dtype_in(fn, v, name, dtypes));
    if (g->packed) {
        if (v.ndim != 1 || v.shape[0] != g->N)
            return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: shape must be (%lld)", fn, name,
                          (long long)g->N);
        if (g->N > 1 && v.strides[0] != 1)
            return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: must be contiguous", fn, name);
    } else {
        if (v.ndim != 2 || v.shape[0] != g->B || v.shape[1] != g->T)
            return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: shape must be (%lld, %lld)", fn, name,
                          (long long)g->B, (long long)g->T);
        if (g->T > 1 && v.strides[1] != 1)
            return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: innermost stride must be 1", fn, name);
        if (g->B > 1 && v.strides[0] < g->T)
            return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: row stride %lld < T = %lld", fn, name,
                          (long long)v.strides[0], (long long)g->T);
        out->rs = v.strides[0];
    }
    if (g->N > 0 && !v.data) return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: data is NULL", fn, name);
    out->data = (char *)v.data;
    out->dtype = v.dtype;
    return SEGRL_OK;
}

static segrl_status sd_check_index(const char *fn, const char *name, const void *p, int32_t dt,
                                   int64_t n, int64_t G) {
    for (int64_t i = 0; i < n; i++) {
        int64_t k = sd_ix(p, dt, i);
        if (k < 0 || k >= G)
            return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: [%lld] = %lld not in [0, %lld)", fn, name,
                          (long long)i, (long long)k, (long long)G);
    }
    return SEGRL_OK;
}

static segrl_status sd_check_finite_tok(const char *fn, const char *name, const sd_geom *g,
                                        const sd_tok *x, const sd_tok *m) {
    for (int64_t b = 0; b < g->B; b++) {
        int64_t n, n2;
        const float *xs = (const float *)x->data + sd_seq(g, x, b, &n);
        const int64_t ms = m->data ? sd_seq(g, m, b, &n2) : 0;
        for (int64_t t = 0; t < n; t++)
            if (sd_valid(m, ms + t) && !isfinite(xs[t]))
                return SD_ERR(SEGRL_ERR_INVALID,
                              "%s: %s: non-finite value %g at sequence %lld, token %lld", fn, name,
                              (double)xs[t], (long long)b, (long long)t);
    }
    return SEGRL_OK;
}

static segrl_status sd_alloc(const char *fn, size_t n, double **out) {
    *out = (double *)segrl_malloc((n ? n : 1) * sizeof(double));
    if (!*out) return SD_ERR(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    return SEGRL_OK;
}

static segrl_status sd_ready(segrl_comm *c, const char *fn) {
    if (!c) return SD_ERR(SEGRL_ERR_INVALID, "%s: comm: NULL", fn);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// outcome estimators

typedef struct sd_outcome {
    sd_geom g;
    sd_tok out, rew, mask;
    const float *scores;
    const void *gidx;
    int32_t gdt;
    int64_t G;
    float *seq;
    segrl_outcome_opts o;
} sd_outcome;

static segrl_status sd_outcome_args(const char *fn, const segrl_layout *layout,
                                    const segrl_outcome *in, const segrl_outcome_opts *opts,
                                    segrl_view out_tok, segrl_view out_seq, sd_outcome *a) {
    memset(a, 0, sizeof *a);
    a->o = opts ? *opts : segrl_outcome_opts_default();
    if (!in) return SD_ERR(SEGRL_ERR_INVALID, "%s: in: NULL", fn);
    SD_TRY(sd_geometry(fn, layout, out_tok, "out_token_advantages", &a->g));
    SD_TRY(sd_tokv(fn, &a->g, out_tok, "out_token_advantages", SD_F32, 1, &a->out));
    const int64_t B = a->g.B;
    void *p;
    SD_TRY(sd_vec(fn, in->scores, "in->scores", B, SD_F32, 0, &p, NULL));
    a->scores = (const float *)p;
    SD_TRY(sd_tokv(fn, &a->g, in->token_rewards, "in->token_rewards", SD_F32, !a->scores, &a->rew));
    SD_TRY(sd_tokv(fn, &a->g, in->mask, "in->mask", SD_MASK_DTYPES, 0, &a->mask));
    SD_TRY(sd_vec(fn, in->group_index, "in->group_index", B, SD_IDX_DTYPES, 1, &p, &a->gdt));
    a->gidx = p;
    if (in->num_groups < 1)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: in->num_groups: %lld, must be >= 1", fn,
                      (long long)in->num_groups);
    a->G = in->num_groups;
    SD_TRY(sd_vec(fn, out_seq, "out_seq_advantages", B, SD_F32, 0, &p, NULL));
    a->seq = (float *)p;
    if (!(a->o.eps >= 0.0f) || !isfinite(a->o.eps))
        return SD_ERR(SEGRL_ERR_INVALID, "%s: opts->eps: must be finite and >= 0", fn);
    if (a->o.std_scope < SEGRL_STD_GROUP || a->o.std_scope > SEGRL_STD_NONE)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: opts->std_scope: %d is not a segrl_std_scope", fn,
                      a->o.std_scope);
    if (a->o.singleton != SEGRL_SINGLETON_KEEP && a->o.singleton != SEGRL_SINGLETON_ZERO)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: opts->singleton: %d is not a segrl_singleton", fn,
                      a->o.singleton);
    if (a->seq && B > 0 && (void *)a->seq == (void *)a->out.data)
        return SD_ERR(SEGRL_ERR_INVALID,
                      "%s: out_seq_advantages: the same memory as out_token_advantages", fn);
    SD_TRY(sd_check_index(fn, "in->group_index", a->gidx, a->gdt, B, a->G));
    if (a->scores) {
        for (int64_t b = 0; b < B; b++)
            if (!isfinite(a->scores[b]))
                return SD_ERR(SEGRL_ERR_INVALID, "%s: in->scores: non-finite value %g at %lld", fn,
                              (double)a->scores[b], (long long)b);
    } else {
        SD_TRY(sd_check_finite_tok(fn, "in->token_rewards", &a->g, &a->rew, &a->mask));
    }
    return SEGRL_OK;
}

/* R and the valid-token count of every local sequence, in the single-process order. */
static void sd_outcome_inputs(const sd_outcome *a, double *R, double *len) {
    const sd_geom *g = &a->g;
    for (int64_t b = 0; b < g->B; b++) {
        int64_t n, n2;
        const int64_t ms = a->mask.data ? sd_seq(g, &a->mask, b, &n2) : 0;
        sd_seq(g, &a->out, b, &n);
        int64_t cnt = 0;
        for (int64_t t = 0; t < n; t++) cnt += sd_valid(&a->mask, ms + t);
        len[b] = (double)cnt;
        if (a->scores) {
            R[b] = (double)a->scores[b];
            continue;
        }
        const float *r = (const float *)a->rew.data + sd_seq(g, &a->rew, b, &n);
        /* blocks of 64 tokens in eight f32 lanes (t mod 8), each block added in f64 to one of
         * four accumulators: the order of the single-process segrl_grpo & co. */
        double acc[4] = {0, 0, 0, 0};
        for (int64_t t0 = 0; t0 < n; t0 += 64) {
            const int64_t e = n - t0 < 64 ? n - t0 : 64;
            float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int64_t t = 0; t + 8 <= e; t += 8)
                for (int j = 0; j < 8; j++)
                    f[j] += sd_valid(&a->mask, ms + t0 + t + j) ? r[t0 + t + j] : 0.0f;
            for (int64_t t = e & ~(int64_t)7; t < e; t++)
                f[t & 7] += sd_valid(&a->mask, ms + t0 + t) ? r[t0 + t] : 0.0f;
            acc[(t0 >> 6) & 3] += ((double)f[0] + f[1]) + ((double)f[2] + f[3]) +
                                  (((double)f[4] + f[5]) + ((double)f[6] + f[7]));
        }
        R[b] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
}

static double sd_std(double m2, double n, int unbiased) {
    double d = unbiased ? n - 1 : n;
    return d > 0 ? sqrt(m2 / d) : 0.0;
}

static inline double sd_div0(double a, double d) { return d > 0 ? a / d : 0.0; }

enum { SD_GRPO = 0, SD_RLOO = 1, SD_RPP = 2, SD_OPO = 3, SD_GPG = 4 };

static segrl_status sd_outcome_run(segrl_comm *comm, const char *fn, int op,
                                   const segrl_layout *layout, const segrl_outcome *in,
                                   const segrl_outcome_opts *opts, segrl_view out_tok,
                                   segrl_view out_seq) {
    SD_TRY(sd_ready(comm, fn));
    sd_outcome a;
    SD_TRY(sd_outcome_args(fn, layout, in, opts, out_tok, out_seq, &a));
    const int64_t B = a.g.B, G = a.G;
    const segrl_outcome_opts *o = &a.o;
    /* round 1, K doubles per group: n, sum R (OPO also: sum len * R, sum len), then the batch's
     * n and sum R; round 2 (GRPO): sum of squared deviations per group, then the batch's */
    const int64_t K = op == SD_OPO ? 4 : 2, n1 = K * G + 2;
    double *R, *s1, *s2;
    SD_TRY(sd_alloc(fn, (size_t)(3 * B), &R));
    double *len = R + B, *A = R + 2 * B;
    segrl_status st = sd_alloc(fn, (size_t)(n1 + G + 1), &s1);
    if (st != SEGRL_OK) {
        segrl_free(R);
        return st;
    }
    s2 = s1 + n1;
    memset(s1, 0, (size_t)(n1 + G + 1) * sizeof(double));
    sd_outcome_inputs(&a, R, len);
    for (int64_t b = 0; b < B; b++) {
        double *sk = s1 + K * sd_ix(a.gidx, a.gdt, b);
        sk[0] += 1;
        sk[1] += R[b];
        if (K == 4) {
            sk[2] += len[b] * R[b];
            sk[3] += len[b];
        }
        s1[K * G + 1] += R[b];
    }
    s1[K * G] = (double)B;
    st = sd_cpu_allreduce(comm, fn, s1, s1, n1, SEGRL_DTYPE_F64, SEGRL_REDUCE_SUM);
    const double bn = s1[K * G], bmean = bn > 0 ? s1[K * G + 1] / bn : 0.0;
    double bstd = 0.0;
    if (st == SEGRL_OK && op == SD_GRPO) {
        /* round 2: squared deviations from the global means */
        for (int64_t b = 0; b < B; b++) {
            int64_t k = sd_ix(a.gidx, a.gdt, b);
            double d = R[b] - s1[K * k + 1] / s1[K * k];
            s2[k] += d * d;
            s2[G] += (R[b] - bmean) * (R[b] - bmean);
        }
        st = sd_cpu_allreduce(comm, fn, s2, s2, G + 1, SEGRL_DTYPE_F64, SEGRL_REDUCE_SUM);
        bstd = sd_std(s2[G], bn, o->unbiased);
    }
    for (int64_t b = 0; st == SEGRL_OK && b < B; b++) {
        const double *sk = s1 + K * sd_ix(a.gidx, a.gdt, b);
        const int64_t k = sd_ix(a.gidx, a.gdt, b);
        const double n = sk[0];
        const int single = n < 2;
        if (single && o->singleton == SEGRL_SINGLETON_ZERO) {
            A[b] = 0;
            continue;
        }
        const double mean = single ? 0.0 : sk[1] / n;
        if (op == SD_GRPO) {
            double std = single ? 1.0 : sd_std(s2[k], n, o->unbiased);
            if (o->std_scope == SEGRL_STD_BATCH) std = bstd;
            A[b] = R[b] - mean;
            if (o->std_scope != SEGRL_STD_NONE) A[b] = sd_div0(A[b], std + (double)o->eps);
        } else if (op == SD_RLOO) {
            A[b] = single ? R[b] : (R[b] - mean) * n / (n - 1);
        } else if (op == SD_OPO) {
            /* length-weighted baseline sum(len R) / sum(len); 0 without valid tokens */
            A[b] = R[b] - (single || sk[3] <= 0 ? 0.0 : sk[2] / sk[3]);
        } else { /* REINFORCE++-baseline, GPG */
            A[b] = R[b] - mean;
        }
    }
    /* GPG: alpha = B / (number of sequences with A != 0) over the global batch; 1 when none */
    if (st == SEGRL_OK && op == SD_GPG) {
        double nz = 0;
        for (int64_t b = 0; b < B; b++) nz += A[b] != 0.0;
        st = sd_cpu_allreduce(comm, fn, &nz, &nz, 1, SEGRL_DTYPE_F64, SEGRL_REDUCE_SUM);
        const double alpha = nz > 0 ? bn / nz : 1.0;
        for (int64_t b = 0; b < B; b++) A[b] *= alpha;
    }
    /* REINFORCE++-baseline: whiten A over the valid tokens of the global batch (unbiased var,
     * eps 1e-8 inside the sqrt); token moments follow from A_b weighted by len_b */
    double shift = 0.0, scale = 1.0;
    if (st == SEGRL_OK && op == SD_RPP) {
        double t[2] = {0, 0};
        for (int64_t b = 0; b < B; b++) {
            t[0] += len[b];
            t[1] += len[b] * A[b];
        }
        st = sd_cpu_allreduce(comm, fn, t, t, 2, SEGRL_DTYPE_F64, SEGRL_REDUCE_SUM);
        const double cnt = t[0], mean = cnt > 0 ? t[1] / cnt : 0.0;
        double m2 = 0.0;
        for (int64_t b = 0; b < B; b++) m2 += len[b] * (A[b] - mean) * (A[b] - mean);
        if (st == SEGRL_OK)
            st = sd_cpu_allreduce(comm, fn, &m2, &m2, 1, SEGRL_DTYPE_F64, SEGRL_REDUCE_SUM);
        const double var = cnt > 1 ? m2 / (cnt - 1) : 0.0;
        shift = mean;
        scale = 1.0 / sqrt(var + 1e-8);
    }
    if (st == SEGRL_OK) {
        if (a.seq)
            for (int64_t b = 0; b < B; b++) a.seq[b] = (float)A[b];
        for (int64_t b = 0; b < B; b++) {
            int64_t n, n2;
            float *os = (float *)a.out.data + sd_seq(&a.g, &a.out, b, &n);
            const int64_t ms = a.mask.data ? sd_seq(&a.g, &a.mask, b, &n2) : 0;
            const float v = (float)((A[b] - shift) * scale);
            for (int64_t t = 0; t < n; t++) os[t] = sd_valid(&a.mask, ms + t) ? v : 0.0f;
        }
    }
    segrl_free(s1);
    segrl_free(R);
    return st;
}

segrl_status segrl_dist_grpo(segrl_comm *comm, const segrl_layout *layout, const segrl_outcome *in,
                             const segrl_outcome_opts *opts, segrl_view out_token_advantages,
                             segrl_view out_seq_advantages) {
    return sd_outcome_run(comm, "segrl_dist_grpo", SD_GRPO, layout, in, opts,
                          out_token_advantages, out_seq_advantages);
}

segrl_status segrl_dist_rloo(segrl_comm *comm, const segrl_layout *layout, const segrl_outcome *in,
                             const segrl_outcome_opts *opts, segrl_view out_token_advantages,
                             segrl_view out_seq_advantages) {
    return sd_outcome_run(comm, "segrl_dist_rloo", SD_RLOO, layout, in, opts,
                          out_token_advantages, out_seq_advantages);
}

segrl_status segrl_dist_opo(segrl_comm *comm, const segrl_layout *layout, const segrl_outcome *in,
                            const segrl_outcome_opts *opts, segrl_view out_token_advantages,
                            segrl_view out_seq_advantages) {
    return sd_outcome_run(comm, "segrl_dist_opo", SD_OPO, layout, in, opts, out_token_advantages,
                          out_seq_advantages);
}

segrl_status segrl_dist_gpg(segrl_comm *comm, const segrl_layout *layout, const segrl_outcome *in,
                            const segrl_outcome_opts *opts, segrl_view out_token_advantages,
                            segrl_view out_seq_advantages) {
    return sd_outcome_run(comm, "segrl_dist_gpg", SD_GPG, layout, in, opts, out_token_advantages,
                          out_seq_advantages);
}

segrl_status segrl_dist_reinforce_pp_baseline(segrl_comm *comm, const segrl_layout *layout,
                                              const segrl_outcome *in,
                                              const segrl_outcome_opts *opts,
                                              segrl_view out_token_advantages,
                                              segrl_view out_seq_advantages) {
    return sd_outcome_run(comm, "segrl_dist_reinforce_pp_baseline", SD_RPP, layout, in, opts,
                          out_token_advantages, out_seq_advantages);
}

// ----------------------------------------------------------------------------
// whitening

segrl_status segrl_dist_whiten(segrl_comm *comm, const segrl_layout *layout, segrl_view x,
                               segrl_view mask, segrl_view group_index, int64_t num_groups,
                               const segrl_whiten_opts *opts, segrl_view out) {
    static const char *fn = "segrl_dist_whiten";
    SD_TRY(sd_ready(comm, fn));
    const segrl_whiten_opts op = opts ? *opts : segrl_whiten_opts_default();
    sd_geom g;
    sd_tok xs, m, os;
    void *gi = NULL;
    int32_t gdt = -1;
    SD_TRY(sd_geometry(fn, layout, x, "x", &g));
    SD_TRY(sd_tokv(fn, &g, x, "x", SD_F32, 1, &xs));
    SD_TRY(sd_tokv(fn, &g, mask, "mask", SD_MASK_DTYPES, 0, &m));
    SD_TRY(sd_vec(fn, group_index, "group_index", g.B, SD_IDX_DTYPES, 0, &gi, &gdt));
    if (gi && num_groups < 1)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: num_groups: %lld, must be >= 1 with group_index",
                      fn, (long long)num_groups);
    if (!(op.eps >= 0.0f) || !isfinite(op.eps))
        return SD_ERR(SEGRL_ERR_INVALID, "%s: opts->eps: must be finite and >= 0", fn);
    SD_TRY(sd_tokv(fn, &g, out, "out", SD_F32, 1, &os));
    const int64_t G = gi ? num_groups : 1;
    if (gi) SD_TRY(sd_check_index(fn, "group_index", gi, gdt, g.B, G));
    SD_TRY(sd_check_finite_tok(fn, "x", &g, &xs, &m));
    double *s;
    SD_TRY(sd_alloc(fn, (size_t)(3 * G), &s));
    memset(s, 0, (size_t)(3 * G) * sizeof(double));
    /* count, sum and sum of squares per sequence with four f64 accumulators by position mod 4
     * (the single-process order), added per group */
    for (int64_t b = 0; b < g.B; b++) {
        int64_t n, n2;
        const float *xv = (const float *)xs.data + sd_seq(&g, &xs, b, &n);
        const int64_t ms = m.data ? sd_seq(&g, &m, b, &n2) : 0;
        double su[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0};
        int64_t c = 0;
        for (int64_t t = 0; t < n; t++) {
            const int ok = sd_valid(&m, ms + t);
            const double v = ok ? (double)xv[t] : 0.0;
            c += ok;
            su[t & 3] += v;
            q[t & 3] += v * v;
        }
        double *sk = s + 3 * (gi ? sd_ix(gi, gdt, b) : 0);
        sk[0] += (double)c;
        sk[1] += (su[0] + su[1]) + (su[2] + su[3]);
        sk[2] += (q[0] + q[1]) + (q[2] + q[3]);
    }
    segrl_status st = sd_cpu_allreduce(comm, fn, s, s, 3 * G, SEGRL_DTYPE_F64, SEGRL_REDUCE_SUM);
    if (st == SEGRL_OK) {
        /* per group: s[1] = mean, s[2] = 1 / sqrt(var + eps) */
        for (int64_t k = 0; k < G; k++) {
            double *sk = s + 3 * k;
            double cnt = sk[0], mean = cnt > 0 ? sk[1] / cnt : 0.0;
            double var = cnt > 0 ? sk[2] / cnt - mean * mean : 0.0;
            if (var < 0) var = 0;
            if (op.unbiased) var = cnt > 1 ? var * cnt / (cnt - 1) : 0.0;
            sk[1] = mean;
            sk[2] = var + (double)op.eps > 0 ? 1.0 / sqrt(var + (double)op.eps) : 0.0;
        }
        for (int64_t b = 0; b < g.B; b++) {
            int64_t n, n2;
            const float *xv = (const float *)xs.data + sd_seq(&g, &xs, b, &n);
            float *ov = (float *)os.data + sd_seq(&g, &os, b, &n);
            const int64_t ms = m.data ? sd_seq(&g, &m, b, &n2) : 0;
            const double *sk = s + 3 * (gi ? sd_ix(gi, gdt, b) : 0);
            const float mean = (float)sk[1], inv = (float)sk[2];
            const float add = op.shift_mean ? 0.0f : mean;
            for (int64_t t = 0; t < n; t++)
                ov[t] = sd_valid(&m, ms + t) ? (xv[t] - mean) * inv + add : 0.0f;
        }
    }
    segrl_free(s);
    return st;
}

// ----------------------------------------------------------------------------
// loss normalizers

segrl_status segrl_dist_token_count(segrl_comm *comm, const segrl_layout *layout, segrl_view ref,
                                    segrl_view mask, int64_t *out_tokens,
                                    int64_t *out_sequences) {
    static const char *fn = "segrl_dist_token_count";
    SD_TRY(sd_ready(comm, fn));
    if (!out_tokens) return SD_ERR(SEGRL_ERR_INVALID, "%s: out_tokens: NULL", fn);
    sd_geom g;
    sd_tok m, r;
    SD_TRY(sd_geometry(fn, layout, ref, "ref", &g));
    SD_TRY(sd_tokv(fn, &g, ref, "ref", 0xffffffffu, 1, &r));
    SD_TRY(sd_tokv(fn, &g, mask, "mask", SD_MASK_DTYPES, 0, &m));
    int64_t c[2] = {0, g.B};
    for (int64_t b = 0; b < g.B; b++) {
        int64_t n;
        const int64_t ms = sd_seq(&g, m.data ? &m : &r, b, &n);
        for (int64_t t = 0; t < n; t++) c[0] += sd_valid(&m, ms + t);
    }
    SD_TRY(sd_cpu_allreduce(comm, fn, c, c, 2, SEGRL_DTYPE_I64, SEGRL_REDUCE_SUM));
    *out_tokens = c[0];
    if (out_sequences) *out_sequences = c[1];
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// tree values

/* FNV-1a over the node arrays that must agree across ranks, kept to 62 bits */
static uint64_t sd_hash(uint64_t h, int64_t v) {
    for (int i = 0; i < 8; i++) {
        h ^= (uint64_t)((v >> (8 * i)) & 0xff);
        h *= 1099511628211ull;
    }
    return h;
}

segrl_status segrl_dist_tree_values(segrl_comm *comm, const segrl_tree *tree,
                                    segrl_view leaf_owned, int32_t kind, const segrl_exec *exec,
                                    segrl_view out_values, segrl_view out_leaf_counts) {
    static const char *fn = "segrl_dist_tree_values";
    SD_TRY(sd_ready(comm, fn));
    if (!tree) return SD_ERR(SEGRL_ERR_INVALID, "%s: tree: NULL", fn);
    if (segrl_view_is_none(tree->parent))
        return SD_ERR(SEGRL_ERR_INVALID, "%s: tree->parent: required", fn);
    if (tree->parent.ndim != 1)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: tree->parent: must be 1-D (M)", fn);
    const int64_t M = tree->parent.shape[0];
    void *par, *dep, *rew, *own;
    int32_t pdt, ddt = -1, odt;
    SD_TRY(sd_vec(fn, tree->parent, "tree->parent", M, SD_IDX_DTYPES, 1, &par, &pdt));
    SD_TRY(sd_vec(fn, tree->depth, "tree->depth", M, SD_IDX_DTYPES, 0, &dep, &ddt));
    SD_TRY(sd_vec(fn, tree->leaf_reward, "tree->leaf_reward", M, SD_F32, 1, &rew, NULL));
    SD_TRY(sd_vec(fn, leaf_owned, "leaf_owned", M, SD_MASK_DTYPES, 1, &own, &odt));
    SD_TRY(sd_cpu_view(fn, out_values, "out_values"));
    for (int64_t i = 0; i < M; i++) {
        int64_t p = sd_ix(par, pdt, i);
        if (p < -1 || p >= i)
            return SD_ERR(SEGRL_ERR_INVALID, "%s: tree->parent: node %lld has parent %lld, not in "
                          "[-1, %lld)", fn, (long long)i, (long long)p, (long long)i);
    }
    /* the node arrays must be the same on every rank: max over ranks of (h, -h) gives both the
     * largest and the smallest hash */
    uint64_t h = 1469598103934665603ull;
    h = sd_hash(h, M);
    for (int64_t i = 0; i < M; i++) h = sd_hash(h, sd_ix(par, pdt, i));
    if (dep)
        for (int64_t i = 0; i < M; i++) h = sd_hash(h, sd_ix(dep, ddt, i));
    int64_t hv[2] = {(int64_t)(h >> 2), -(int64_t)(h >> 2)};
    SD_TRY(sd_cpu_allreduce(comm, fn, hv, hv, 2, SEGRL_DTYPE_I64, SEGRL_REDUCE_MAX));
    if (hv[0] != -hv[1])
        return SD_ERR(SEGRL_ERR_INVALID,
                      "%s: tree->parent: the node arrays (parent, depth) differ between ranks; "
                      "every rank must give the same tree",
                      fn);
    /* leaves: nodes without children; owned rewards and ownership counts, summed over ranks */
    double *acc;
    SD_TRY(sd_alloc(fn, (size_t)(2 * M), &acc));
    memset(acc, 0, (size_t)(2 * M) * sizeof(double));
    char *inner = (char *)segrl_malloc((size_t)(M ? M : 1));
    float *assembled = (float *)segrl_malloc((size_t)(M ? M : 1) * sizeof(float));
    segrl_status st = SEGRL_OK;
    if (!inner || !assembled) st = SD_ERR(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    if (st == SEGRL_OK) {
        memset(inner, 0, (size_t)M);
        for (int64_t i = 0; i < M; i++) {
            int64_t p = sd_ix(par, pdt, i);
            if (p >= 0) inner[p] = 1;
        }
        sd_tok ot = {(char *)own, odt, 0};
        for (int64_t i = 0; i < M; i++)
            if (!inner[i] && sd_valid(&ot, i)) {
                float r = ((const float *)rew)[i];
                if (!isfinite(r)) {
                    st = SD_ERR(SEGRL_ERR_INVALID,
                                "%s: tree->leaf_reward: owned leaf %lld has no finite reward (%g)",
                                fn, (long long)i, (double)r);
                    break;
                }
                acc[2 * i] = (double)r;
                acc[2 * i + 1] = 1.0;
            }
    }
    /* a rank that failed above still joins the all-reduce with what it has, then every rank
     * agrees on the failure through an extra flag */
    double bad = st == SEGRL_OK ? 0.0 : 1.0;
    if (inner && assembled) {
        segrl_status cs = sd_cpu_allreduce(comm, fn, acc, acc, 2 * M, SEGRL_DTYPE_F64,
                                           SEGRL_REDUCE_SUM);
        if (cs == SEGRL_OK)
            cs = sd_cpu_allreduce(comm, fn, &bad, &bad, 1, SEGRL_DTYPE_F64, SEGRL_REDUCE_MAX);
        if (cs != SEGRL_OK) st = cs;
        else if (st == SEGRL_OK && bad > 0)
            st = SD_ERR(SEGRL_ERR_INVALID, "%s: tree->leaf_reward: another rank's owned leaves "
                        "failed the checks (see its error)", fn);
    }
    for (int64_t i = 0; st == SEGRL_OK && i < M; i++) {
        if (inner[i]) {
            assembled[i] = 0.0f;
            continue;
        }
        if (acc[2 * i + 1] != 1.0) {
            st = SD_ERR(SEGRL_ERR_INVALID, "%s: leaf_owned: leaf %lld is owned by %.0f ranks, "
                        "must be exactly 1", fn, (long long)i, acc[2 * i + 1]);
            break;
        }
        assembled[i] = (float)acc[2 * i];
    }
    if (st == SEGRL_OK) {
        segrl_tree t = *tree;
        t.leaf_reward = segrl_view_1d(assembled, SEGRL_DTYPE_F32, segrl_cpu(), M);
        st = segrl_tree_values(&t, kind, exec, out_values, out_leaf_counts);
        if (st != SEGRL_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", segrl_last_error());
            SD_ERR(st, "%s: %s", fn, msg); /* keeps the core's message, names this call first */
        }
    }
    segrl_free(assembled);
    segrl_free(inner);
    segrl_free(acc);
    return st;
}
