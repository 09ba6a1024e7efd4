/* test-advantage.c — every estimator on the CPU: hand-computed cases, then seeded random inputs
 * against plain scalar references written here from the formulas (in double, verl-style), with
 * padding, holes in the mask, packed layout, interleaved and singleton groups, all-masked rows.
 * Padded and packed layouts must give identical results. */
#include "harness.h"

#include <segrl/segrl.h>

#define DEV segrl_cpu()

static segrl_view f32v(float *p, int64_t B, int64_t T) { return segrl_view_2d(p, SEGRL_DTYPE_F32, DEV, B, T); }
static segrl_view u8v(uint8_t *p, int64_t B, int64_t T) { return segrl_view_2d(p, SEGRL_DTYPE_U8, DEV, B, T); }
static segrl_view vec(void *p, segrl_dtype dt, int64_t n) { return segrl_view_1d(p, dt, DEV, n); }

/* a workspace owned by the test */
static segrl_exec h_exec(segrl_op op, int64_t B, int64_t N, int64_t G, void **mem) {
    size_t n = 0;
    segrl_status st = segrl_workspace_size(op, DEV, B, N, G, &n);
    CHECK(st == SEGRL_OK, "workspace_size: %s", segrl_last_error());
    *mem = h_alloc(n + 16);
    segrl_exec e = {0};
    e.workspace = *mem;
    e.workspace_bytes = n;
    return e;
}

#define OK(call)                                                                                  \
    do {                                                                                          \
        segrl_status st_ = (call);                                                                \
        CHECK(st_ == SEGRL_OK, "%s -> %s: %s", #call, segrl_status_str(st_), segrl_last_error()); \
    } while (0)

// ----------------------------------------------------------------------------
// references (double, straight from the formulas)

/* verl compute_gae_advantage_return, with the arithmetic blend of the mask */
static void ref_gae(const float *r, const float *v, const uint8_t *m, int64_t B, int64_t T,
                    double gamma, double lam, double *adv, double *ret) {
    for (int64_t b = 0; b < B; b++) {
        double nextv = 0, last = 0;
        for (int64_t t = T - 1; t >= 0; t--) {
            int64_t i = b * T + t;
            double mk = m ? m[i] : 1;
            double delta = r[i] + gamma * nextv - v[i];
            double l = delta + gamma * lam * last;
            nextv = v[i] * mk + (1 - mk) * nextv;
            last = l * mk + (1 - mk) * last;
            adv[i] = last;
            ret[i] = last + v[i];
        }
    }
}

static double ref_kl(int kind, double lp, double rf) {
    double d = lp - rf;
    switch (kind) {
    case SEGRL_KL_K1: return d;
    case SEGRL_KL_ABS: return fabs(d);
    case SEGRL_KL_K2: return 0.5 * d * d;
    case SEGRL_KL_K3: {
        double k = exp(rf - lp) - (rf - lp) - 1;
        return k < -10 ? -10 : k > 10 ? 10 : k;
    }
    }
    return 0;
}

static void ref_returns(const float *r, const uint8_t *m, const float *lp, const float *rf,
                        int64_t B, int64_t T, double gamma, double beta, int kl, double *out) {
    for (int64_t b = 0; b < B; b++) {
        double G = 0;
        for (int64_t t = T - 1; t >= 0; t--) {
            int64_t i = b * T + t;
            if (!m || m[i]) G = r[i] - (kl ? beta * ref_kl(kl, lp[i], rf[i]) : 0) + gamma * G;
            out[i] = G;
        }
    }
}

/* per-group mean / var over valid tokens; out 0 at invalid tokens */
static void ref_whiten(const float *x, const uint8_t *m, const int32_t *gid, int64_t G, int64_t B,
                       int64_t T, int shift, int unbiased, double eps, double *out) {
    for (int64_t k = 0; k < (gid ? G : 1); k++) {
        double n = 0, s = 0, q = 0;
        for (int64_t b = 0; b < B; b++) {
            if (gid && gid[b] != k) continue;
            for (int64_t t = 0; t < T; t++)
                if (m[b * T + t]) n++, s += x[b * T + t];
        }
        double mean = n ? s / n : 0;
        for (int64_t b = 0; b < B; b++) {
            if (gid && gid[b] != k) continue;
            for (int64_t t = 0; t < T; t++)
                if (m[b * T + t]) q += (x[b * T + t] - mean) * (x[b * T + t] - mean);
        }
        double var = n ? q / n : 0;
        if (unbiased) var = n > 1 ? q / (n - 1) : 0;
        double inv = var + eps > 0 ? 1 / sqrt(var + eps) : 0;
        for (int64_t b = 0; b < B; b++) {
            if (gid && gid[b] != k) continue;
            for (int64_t t = 0; t < T; t++) {
                int64_t i = b * T + t;
                out[i] = m[i] ? (x[i] - mean) * inv + (shift ? 0 : mean) : 0;
            }
        }
    }
}

/* outcome estimators: per-sequence advantages from R, group ids, lengths */
static void ref_outcome(segrl_op op, const double *R, const double *len, const int32_t *gid,
                        int64_t B, const float *greedy, segrl_outcome_opts o,
                        double *A) {
    double bm = 0, bq = 0;
    for (int64_t b = 0; b < B; b++) bm += R[b];
    bm /= B;
    for (int64_t b = 0; b < B; b++) bq += (R[b] - bm) * (R[b] - bm);
    double bstd = sqrt(bq / (o.unbiased ? B - 1 : B));
    for (int64_t b = 0; b < B; b++) {
        if (op == SEGRL_OP_REMAX) {
            A[b] = R[b] - greedy[b];
            continue;
        }
        int64_t k = gid[b];
        double n = 0, s = 0, q = 0, lr = 0, l = 0;
        for (int64_t j = 0; j < B; j++)
            if (gid[j] == k) n++, s += R[j], lr += len[j] * R[j], l += len[j];
        double mean = s / n;
        for (int64_t j = 0; j < B; j++)
            if (gid[j] == k) q += (R[j] - mean) * (R[j] - mean);
        double std = n > 1 ? sqrt(q / (o.unbiased ? n - 1 : n)) : 1;
        if (n == 1) {
            if (o.singleton == SEGRL_SINGLETON_ZERO) {
                A[b] = 0;
                continue;
            }
            mean = 0;
        }
        if (o.std_scope == SEGRL_STD_BATCH) std = bstd;
        double div = o.std_scope == SEGRL_STD_NONE ? 1 : std + o.eps;
        switch (op) {
        case SEGRL_OP_GRPO: A[b] = (R[b] - mean) / div; break;
        case SEGRL_OP_RLOO: {
            /* R minus the mean of the others */
            A[b] = n > 1 ? R[b] - (s - R[b]) / (n - 1) : R[b];
        } break;
        case SEGRL_OP_OPO: A[b] = R[b] - (n > 1 && l > 0 ? lr / l : 0); break;
        case SEGRL_OP_GRPO_PASSK: {
            int64_t best = -1;
            double second = n > 1 ? -INFINITY : 0;
            for (int64_t j = 0; j < B; j++)
                if (gid[j] == k && (best < 0 || R[j] > R[best])) best = j;
            for (int64_t j = 0; j < B; j++)
                if (gid[j] == k && j != best && R[j] > second) second = R[j];
            A[b] = b == best ? (R[b] - second) / div : 0;
        } break;
        default: A[b] = R[b] - mean; break;
        }
    }
    if (op == SEGRL_OP_GPG) {
        int64_t nz = 0;
        for (int64_t b = 0; b < B; b++) nz += A[b] != 0;
        for (int64_t b = 0; b < B; b++) A[b] *= nz ? (double)B / nz : 1;
    }
}

// ----------------------------------------------------------------------------
// random batches: right padding, holes, all-masked rows

typedef struct batch {
    int64_t B, T;
    float *r, *v, *lp, *rf, *score, *greedy;
    uint8_t *m;
    int32_t *gid;
    int64_t G;
} batch;

static batch make_batch(int64_t B, int64_t T, int64_t G, uint64_t seed) {
    h_seed(seed);
    batch x = {B, T, 0, 0, 0, 0, 0, 0, 0, 0, G};
    x.r = h_alloc(B * T * 4), x.v = h_alloc(B * T * 4), x.lp = h_alloc(B * T * 4);
    x.rf = h_alloc(B * T * 4), x.score = h_alloc(B * 4), x.greedy = h_alloc(B * 4);
    x.m = h_alloc(B * T), x.gid = h_alloc(B * 4);
    for (int64_t b = 0; b < B; b++) {
        int64_t len = h_int(0, T);
        int holes = h_int(0, 2) == 0;
        if (b % 7 == 3) len = 0; /* all-masked rows */
        for (int64_t t = 0; t < T; t++) {
            int64_t i = b * T + t;
            x.m[i] = t < len && !(holes && h_int(0, 4) == 0);
            x.r[i] = h_normal();
            x.v[i] = h_normal();
            x.lp[i] = -fabsf(h_normal()) - 0.01f;
            x.rf[i] = -fabsf(h_normal()) - 0.01f;
        }
        x.score[b] = (float)h_int(0, 2) * 0.5f;
        x.greedy[b] = (float)h_int(0, 1);
        x.gid[b] = (int32_t)h_int(0, G - 1); /* interleaved, unequal, some singletons */
    }
    return x;
}

static void free_batch(batch *x) {
    free(x->r), free(x->v), free(x->lp), free(x->rf), free(x->score), free(x->greedy);
    free(x->m), free(x->gid);
}

/* packed copy of the first L_b tokens of each row, L_b = last valid token + 1 */
typedef struct packed {
    int64_t N;
    int64_t *off;
    int64_t *row_len;
} packed;

static packed make_packed(const batch *x) {
    packed p;
    p.off = h_alloc((x->B + 1) * 8);
    p.row_len = h_alloc(x->B * 8);
    p.off[0] = 0;
    for (int64_t b = 0; b < x->B; b++) {
        int64_t L = 0;
        for (int64_t t = 0; t < x->T; t++)
            if (x->m[b * x->T + t]) L = t + 1;
        p.row_len[b] = L;
        p.off[b + 1] = p.off[b] + L;
    }
    p.N = p.off[x->B];
    return p;
}

static void *pack(const packed *p, const batch *x, const void *src, size_t es) {
    char *dst = h_alloc(p->N * es);
    for (int64_t b = 0; b < x->B; b++)
        memcpy(dst + p->off[b] * es, (const char *)src + b * x->T * es, p->row_len[b] * es);
    return dst;
}

/* compare the packed result with the padded one at the packed positions: identical bits */
static void same_as_padded(const char *what, const packed *p, const batch *x, const float *pk,
                           const float *pad) {
    int64_t bad = 0;
    for (int64_t b = 0; b < x->B; b++)
        for (int64_t t = 0; t < p->row_len[b]; t++)
            if (memcmp(&pk[p->off[b] + t], &pad[b * x->T + t], 4)) bad++;
    CHECK(bad == 0, "%s: packed differs from padded at %lld tokens", what, (long long)bad);
}

// ----------------------------------------------------------------------------
// hand-computed cases

static void test_hand(void) {
    /* GAE with gamma = lambda = 1 is reward-to-go minus value */
    {
        float r[3] = {0, 0, 1}, v[3] = {1, 2, 3}, a[3], q[3];
        OK(segrl_gae(NULL, f32v(r, 1, 3), f32v(v, 1, 3), segrl_view_none(), 1, 1, NULL,
                     f32v(a, 1, 3), f32v(q, 1, 3)));
        double wa[3] = {0, -1, -2}, wq[3] = {1, 1, 1};
        h_close_f("gae(1,1).adv", a, wa, 3, 1e-6, 0);
        h_close_f("gae(1,1).ret", q, wq, 3, 1e-6, 0);
    }
    {   /* gamma 0.9, lambda 0.8: delta_1 = 2 - 1 = 1; delta_0 = 1 + 0.9 - 0.5 = 1.4; A_0 = 1.4 + 0.72 */
        float r[2] = {1, 2}, v[2] = {0.5f, 1}, a[2], q[2];
        OK(segrl_gae(NULL, f32v(r, 1, 2), f32v(v, 1, 2), segrl_view_none(), 0.9f, 0.8f, NULL,
                     f32v(a, 1, 2), f32v(q, 1, 2)));
        double wa[2] = {2.12, 1}, wq[2] = {2.62, 2};
        h_close_f("gae(.9,.8).adv", a, wa, 2, 1e-6, 0);
        h_close_f("gae(.9,.8).ret", q, wq, 2, 1e-6, 0);
    }
    {   /* an observation token in the middle is skipped: V_next and A carried over it */
        float r[3] = {0, 5, 1}, v[3] = {1, 9, 2}, a[3], q[3];
        uint8_t m[3] = {1, 0, 1};
        OK(segrl_gae(NULL, f32v(r, 1, 3), f32v(v, 1, 3), u8v(m, 1, 3), 1, 1, NULL, f32v(a, 1, 3),
                     f32v(q, 1, 3)));
        double wa[3] = {0, -1, -1}, wq[3] = {1, 8, 1};
        h_close_f("gae(hole).adv", a, wa, 3, 1e-6, 0);
        h_close_f("gae(hole).ret", q, wq, 3, 1e-6, 0);
    }
    {   /* discounted returns, gamma 0.5 */
        float r[3] = {1, 2, 4}, g[3];
        segrl_returns_opts o = segrl_returns_opts_default();
        o.gamma = 0.5f;
        OK(segrl_discounted_returns(NULL, f32v(r, 1, 3), segrl_view_none(), segrl_view_none(),
                                    segrl_view_none(), &o, NULL, f32v(g, 1, 3)));
        double w[3] = {3, 4, 4};
        h_close_f("returns(.5)", g, w, 3, 1e-6, 0);
    }
    /* outcome estimators on one 3-sample group, R = (1, 0, 0) */
    float score[3] = {1, 0, 0};
    int32_t gid[3] = {0, 0, 0};
    float tok[3 * 2], seq[3];
    segrl_outcome in = {vec(score, SEGRL_DTYPE_F32, 3), segrl_view_none(), segrl_view_none(),
                        vec(gid, SEGRL_DTYPE_I32, 3), 1};
    void *mem;
    segrl_exec e = h_exec(SEGRL_OP_GRPO, 3, 6, 1, &mem);
    {   /* mean 1/3, unbiased std sqrt(1/3) */
        OK(segrl_grpo(NULL, &in, NULL, &e, f32v(tok, 3, 2), vec(seq, SEGRL_DTYPE_F32, 3)));
        double s = sqrt(1.0 / 3) + 1e-6;
        double w[3] = {(2.0 / 3) / s, (-1.0 / 3) / s, (-1.0 / 3) / s};
        h_close_f("grpo(3)", seq, w, 3, 1e-6, 1e-6);
        double wt[6] = {w[0], w[0], w[1], w[1], w[2], w[2]};
        h_close_f("grpo(3).tokens", tok, wt, 6, 1e-6, 1e-6);
    }
    {   /* Dr.GRPO: no std */
        segrl_outcome_opts o = segrl_outcome_opts_default();
        o.std_scope = SEGRL_STD_NONE;
        OK(segrl_grpo(NULL, &in, &o, &e, f32v(tok, 3, 2), vec(seq, SEGRL_DTYPE_F32, 3)));
        double w[3] = {2.0 / 3, -1.0 / 3, -1.0 / 3};
        h_close_f("drgrpo(3)", seq, w, 3, 1e-6, 0);
    }
    {   /* a constant group with eps = 0: 0 / 0 is defined as 0, never NaN */
        float same[3] = {0.5f, 0.5f, 0.5f};
        segrl_outcome in2 = in;
        in2.scores = vec(same, SEGRL_DTYPE_F32, 3);
        segrl_outcome_opts o = segrl_outcome_opts_default();
        o.eps = 0;
        OK(segrl_grpo(NULL, &in2, &o, &e, f32v(tok, 3, 2), vec(seq, SEGRL_DTYPE_F32, 3)));
        double z[3] = {0, 0, 0};
        h_close_f("grpo(constant, eps 0)", seq, z, 3, 0, 0);
    }
    {   /* RLOO: R minus the mean of the other two */
        OK(segrl_rloo(NULL, &in, NULL, &e, f32v(tok, 3, 2), vec(seq, SEGRL_DTYPE_F32, 3)));
        double w[3] = {1, -0.5, -0.5};
        h_close_f("rloo(3)", seq, w, 3, 1e-6, 0);
    }
    {   /* pass@k: only the best gets r_max - r_second = 1, / (std + eps) */
        float s2[3] = {0.2f, 0.9f, 0.5f};
        segrl_outcome in2 = in;
        in2.scores = vec(s2, SEGRL_DTYPE_F32, 3);
        segrl_outcome_opts o = segrl_outcome_opts_default();
        o.std_scope = SEGRL_STD_NONE;
        OK(segrl_grpo_passk(NULL, &in2, &o, &e, f32v(tok, 3, 2), vec(seq, SEGRL_DTYPE_F32, 3)));
        double w[3] = {0, 0.4, 0};
        h_close_f("passk(3)", seq, w, 3, 1e-6, 0);
        float s3[3] = {1, 1, 0}; /* a tie for the best gives 0 to everyone */
        in2.scores = vec(s3, SEGRL_DTYPE_F32, 3);
        OK(segrl_grpo_passk(NULL, &in2, &o, &e, f32v(tok, 3, 2), vec(seq, SEGRL_DTYPE_F32, 3)));
        double z[3] = {0, 0, 0};
        h_close_f("passk(tie)", seq, z, 3, 0, 0);
    }
    {   /* OPO: lengths 2 and 4, R 1 and 0: baseline 2/6 */
        float s2[2] = {1, 0};
        uint8_t m[2 * 4] = {1, 1, 0, 0, 1, 1, 1, 1};
        segrl_outcome in2 = {vec(s2, SEGRL_DTYPE_F32, 2), segrl_view_none(), u8v(m, 2, 4),
                             vec(gid, SEGRL_DTYPE_I32, 2), 1};
        float t2[8];
        OK(segrl_opo(NULL, &in2, NULL, &e, f32v(t2, 2, 4), vec(seq, SEGRL_DTYPE_F32, 2)));
        double w[2] = {2.0 / 3, -1.0 / 3};
        h_close_f("opo", seq, w, 2, 1e-6, 0);
        double wt[8] = {w[0], w[0], 0, 0, w[1], w[1], w[1], w[1]};
        h_close_f("opo.tokens", t2, wt, 8, 1e-6, 0);
    }
    {   /* GPG: two groups, one with equal rewards (A = 0): alpha = 4 / 2 */
        float s2[4] = {1, 0, 1, 1};
        int32_t g2[4] = {0, 0, 1, 1};
        segrl_outcome in2 = {vec(s2, SEGRL_DTYPE_F32, 4), segrl_view_none(), segrl_view_none(),
                             vec(g2, SEGRL_DTYPE_I32, 4), 2};
        float t2[4], s4[4];
        void *m2;
        segrl_exec e2 = h_exec(SEGRL_OP_GPG, 4, 4, 2, &m2);
        OK(segrl_gpg(NULL, &in2, NULL, &e2, f32v(t2, 4, 1), vec(s4, SEGRL_DTYPE_F32, 4)));
        double w[4] = {1, -1, 0, 0};
        h_close_f("gpg", s4, w, 4, 1e-6, 0);
        free(m2);
    }
    {   /* singleton groups: verl keeps R / (1 + eps); ZERO gives 0 */
        float s1[2] = {0.75f, 0.25f};
        int32_t g1[2] = {0, 1};
        segrl_outcome in2 = {vec(s1, SEGRL_DTYPE_F32, 2), segrl_view_none(), segrl_view_none(),
                             vec(g1, SEGRL_DTYPE_I32, 2), 2};
        float t2[2];
        void *m2;
        segrl_exec e2 = h_exec(SEGRL_OP_GRPO, 2, 2, 2, &m2);
        OK(segrl_grpo(NULL, &in2, NULL, &e2, f32v(t2, 2, 1), segrl_view_none()));
        double w[2] = {0.75 / (1 + 1e-6), 0.25 / (1 + 1e-6)};
        h_close_f("grpo(singleton keep)", t2, w, 2, 1e-7, 0);
        segrl_outcome_opts o = segrl_outcome_opts_default();
        o.singleton = SEGRL_SINGLETON_ZERO;
        OK(segrl_grpo(NULL, &in2, &o, &e2, f32v(t2, 2, 1), segrl_view_none()));
        double z[2] = {0, 0};
        h_close_f("grpo(singleton zero)", t2, z, 2, 0, 0);
        free(m2);
    }
    {   /* ReMax */
        float s2[2] = {1, 0}, gr[2] = {0.5f, 0.5f}, t2[2];
        segrl_outcome in2 = {vec(s2, SEGRL_DTYPE_F32, 2), segrl_view_none(), segrl_view_none(),
                             segrl_view_none(), 0};
        OK(segrl_remax(NULL, &in2, vec(gr, SEGRL_DTYPE_F32, 2), &e, f32v(t2, 2, 1),
                       segrl_view_none()));
        double w[2] = {0.5, -0.5};
        h_close_f("remax", t2, w, 2, 0, 0);
    }
    free(mem);
}

// ----------------------------------------------------------------------------
// random inputs against the references

static void test_gae_random(int64_t B, int64_t T, uint64_t seed) {
    batch x = make_batch(B, T, 4, seed);
    int64_t n = B * T;
    float *a = h_alloc(n * 4), *q = h_alloc(n * 4);
    double *wa = h_alloc(n * 8), *wq = h_alloc(n * 8);
    const float gamma = 0.99f, lam = 0.95f;
    OK(segrl_gae(NULL, f32v(x.r, B, T), f32v(x.v, B, T), u8v(x.m, B, T), gamma, lam, NULL,
                 f32v(a, B, T), f32v(q, B, T)));
    ref_gae(x.r, x.v, x.m, B, T, gamma, lam, wa, wq);
    h_close_f("gae.adv", a, wa, n, 1e-4, 1e-4);
    h_close_f("gae.ret", q, wq, n, 1e-4, 1e-4);

    /* every mask dtype gives the same bits */
    int32_t *m32 = h_alloc(n * 4);
    int64_t *m64 = h_alloc(n * 8);
    float *mf = h_alloc(n * 4), *a2 = h_alloc(n * 4), *q2 = h_alloc(n * 4);
    for (int64_t i = 0; i < n; i++) m32[i] = x.m[i] ? -3 : 0, m64[i] = x.m[i] * 7, mf[i] = x.m[i] * 0.5f;
    segrl_view masks[3] = {segrl_view_2d(m32, SEGRL_DTYPE_I32, DEV, B, T),
                           segrl_view_2d(m64, SEGRL_DTYPE_I64, DEV, B, T),
                           segrl_view_2d(mf, SEGRL_DTYPE_F32, DEV, B, T)};
    for (int k = 0; k < 3; k++) {
        OK(segrl_gae(NULL, f32v(x.r, B, T), f32v(x.v, B, T), masks[k], gamma, lam, NULL,
                     f32v(a2, B, T), f32v(q2, B, T)));
        h_same_f("gae(mask dtype)", a2, a, n);
    }

    /* packed layout: identical at every packed token, i32 and i64 offsets */
    packed p = make_packed(&x);
    float *pr = pack(&p, &x, x.r, 4), *pv = pack(&p, &x, x.v, 4);
    uint8_t *pm = pack(&p, &x, x.m, 1);
    float *pa = h_alloc(p.N * 4 + 4), *pq = h_alloc(p.N * 4 + 4);
    int32_t *off32 = h_alloc((B + 1) * 4);
    for (int64_t b = 0; b <= B; b++) off32[b] = (int32_t)p.off[b];
    segrl_layout lay[2] = {segrl_layout_packed(vec(p.off, SEGRL_DTYPE_I64, B + 1)),
                           segrl_layout_packed(vec(off32, SEGRL_DTYPE_I32, B + 1))};
    for (int k = 0; k < 2; k++) {
        memset(pa, 0, p.N * 4);
        OK(segrl_gae(&lay[k], vec(pr, SEGRL_DTYPE_F32, p.N), vec(pv, SEGRL_DTYPE_F32, p.N),
                     vec(pm, SEGRL_DTYPE_U8, p.N), gamma, lam, NULL, vec(pa, SEGRL_DTYPE_F32, p.N),
                     vec(pq, SEGRL_DTYPE_F32, p.N)));
        same_as_padded("gae.packed.adv", &p, &x, pa, a);
        same_as_padded("gae.packed.ret", &p, &x, pq, q);
    }

    /* rows inside a wider buffer (row stride > T) */
    int64_t S = T + 5;
    float *wr = h_alloc(B * S * 4), *wv = h_alloc(B * S * 4), *wo = h_alloc(B * S * 4), *wo2 = h_alloc(B * S * 4);
    for (int64_t b = 0; b < B; b++)
        memcpy(wr + b * S, x.r + b * T, T * 4), memcpy(wv + b * S, x.v + b * T, T * 4);
    int64_t shp[2] = {B, T}, str[2] = {S, 1};
    OK(segrl_gae(NULL, segrl_view_nd(wr, SEGRL_DTYPE_F32, DEV, 2, shp, str),
                 segrl_view_nd(wv, SEGRL_DTYPE_F32, DEV, 2, shp, str), u8v(x.m, B, T), gamma, lam,
                 NULL, segrl_view_nd(wo, SEGRL_DTYPE_F32, DEV, 2, shp, str),
                 segrl_view_nd(wo2, SEGRL_DTYPE_F32, DEV, 2, shp, str)));
    int64_t bad = 0;
    for (int64_t b = 0; b < B; b++) bad += memcmp(wo + b * S, a + b * T, T * 4) != 0;
    CHECK(bad == 0, "gae with row stride: %lld rows differ", (long long)bad);

    /* in place: advantages over rewards, returns over values */
    float *ir = h_alloc(n * 4), *iv = h_alloc(n * 4);
    memcpy(ir, x.r, n * 4), memcpy(iv, x.v, n * 4);
    OK(segrl_gae(NULL, f32v(ir, B, T), f32v(iv, B, T), u8v(x.m, B, T), gamma, lam, NULL,
                 f32v(ir, B, T), f32v(iv, B, T)));
    h_same_f("gae(in place).adv", ir, a, n);
    h_same_f("gae(in place).ret", iv, q, n);

    /* returns == GAE with V = 0, lambda = 1 */
    float *zero = h_alloc(n * 4), *g = h_alloc(n * 4);
    OK(segrl_gae(NULL, f32v(x.r, B, T), f32v(zero, B, T), u8v(x.m, B, T), gamma, 1.0f, NULL,
                 f32v(a2, B, T), f32v(q2, B, T)));
    segrl_returns_opts ro = segrl_returns_opts_default();
    ro.gamma = gamma;
    OK(segrl_discounted_returns(NULL, f32v(x.r, B, T), u8v(x.m, B, T), segrl_view_none(),
                                segrl_view_none(), &ro, NULL, f32v(g, B, T)));
    double *wd = h_alloc(n * 8);
    for (int64_t i = 0; i < n; i++) wd[i] = a2[i];
    h_close_f("returns == gae(V=0, lambda=1)", g, wd, n, 1e-6, 1e-6);

    free(a), free(q), free(wa), free(wq), free(m32), free(m64), free(mf), free(a2), free(q2);
    free(pr), free(pv), free(pm), free(pa), free(pq), free(off32), free(p.off), free(p.row_len);
    free(wr), free(wv), free(wo), free(wo2), free(ir), free(iv), free(zero), free(g), free(wd);
    free_batch(&x);
}

static void test_returns_random(int64_t B, int64_t T, uint64_t seed) {
    batch x = make_batch(B, T, 4, seed);
    int64_t n = B * T;
    float *g = h_alloc(n * 4);
    double *w = h_alloc(n * 8);
    packed p = make_packed(&x);
    float *pr = pack(&p, &x, x.r, 4), *plp = pack(&p, &x, x.lp, 4), *prf = pack(&p, &x, x.rf, 4);
    uint8_t *pm = pack(&p, &x, x.m, 1);
    float *pg = h_alloc(p.N * 4 + 4);
    segrl_layout lay = segrl_layout_packed(vec(p.off, SEGRL_DTYPE_I64, B + 1));
    for (int kl = SEGRL_KL_NONE; kl <= SEGRL_KL_K3; kl++) {
        segrl_returns_opts o = {0.97f, kl ? 0.1f : 0.0f, kl};
        OK(segrl_discounted_returns(NULL, f32v(x.r, B, T), u8v(x.m, B, T), f32v(x.lp, B, T),
                                    f32v(x.rf, B, T), &o, NULL, f32v(g, B, T)));
        ref_returns(x.r, x.m, x.lp, x.rf, B, T, o.gamma, o.kl_coef, kl, w);
        char name[64];
        snprintf(name, sizeof name, "returns(kl=%d)", kl);
        h_close_f(name, g, w, n, 1e-4, 1e-4);
        OK(segrl_discounted_returns(&lay, vec(pr, SEGRL_DTYPE_F32, p.N), vec(pm, SEGRL_DTYPE_U8, p.N),
                                    vec(plp, SEGRL_DTYPE_F32, p.N), vec(prf, SEGRL_DTYPE_F32, p.N),
                                    &o, NULL, vec(pg, SEGRL_DTYPE_F32, p.N)));
        same_as_padded(name, &p, &x, pg, g);
    }
    free(g), free(w), free(pr), free(plp), free(prf), free(pm), free(pg), free(p.off), free(p.row_len);
    free_batch(&x);
}

static void test_whiten_random(int64_t B, int64_t T, int64_t G, uint64_t seed) {
    batch x = make_batch(B, T, G, seed);
    int64_t n = B * T;
    float *o = h_alloc(n * 4);
    double *w = h_alloc(n * 8);
    void *mem;
    segrl_exec e = h_exec(SEGRL_OP_WHITEN, B, n, G, &mem);
    for (int grouped = 0; grouped < 2; grouped++)
        for (int shift = 0; shift < 2; shift++)
            for (int unb = 0; unb < 2; unb++) {
                segrl_whiten_opts op = {shift, unb, 1e-8f};
                OK(segrl_whiten(NULL, f32v(x.r, B, T), u8v(x.m, B, T),
                                grouped ? vec(x.gid, SEGRL_DTYPE_I32, B) : segrl_view_none(), G,
                                &op, &e, f32v(o, B, T)));
                ref_whiten(x.r, x.m, grouped ? x.gid : NULL, G, B, T, shift, unb, 1e-8, w);
                char name[64];
                snprintf(name, sizeof name, "whiten(g=%d,shift=%d,unb=%d)", grouped, shift, unb);
                h_close_f(name, o, w, n, 1e-5, 1e-5);
            }
    /* packed == padded */
    packed p = make_packed(&x);
    float *px = pack(&p, &x, x.r, 4), *po = h_alloc(p.N * 4 + 4);
    uint8_t *pm = pack(&p, &x, x.m, 1);
    segrl_layout lay = segrl_layout_packed(vec(p.off, SEGRL_DTYPE_I64, B + 1));
    segrl_whiten_opts op = segrl_whiten_opts_default();
    OK(segrl_whiten(NULL, f32v(x.r, B, T), u8v(x.m, B, T), vec(x.gid, SEGRL_DTYPE_I32, B), G, &op,
                    &e, f32v(o, B, T)));
    OK(segrl_whiten(&lay, vec(px, SEGRL_DTYPE_F32, p.N), vec(pm, SEGRL_DTYPE_U8, p.N),
                    vec(x.gid, SEGRL_DTYPE_I32, B), G, &op, &e, vec(po, SEGRL_DTYPE_F32, p.N)));
    same_as_padded("whiten.packed", &p, &x, po, o);
    free(o), free(w), free(mem), free(px), free(po), free(pm), free(p.off), free(p.row_len);
    free_batch(&x);
}

static void test_outcome_random(int64_t B, int64_t T, int64_t G, uint64_t seed) {
    static const struct {
        segrl_op op;
        const char *name;
    } ops[] = {{SEGRL_OP_GRPO, "grpo"}, {SEGRL_OP_RLOO, "rloo"},
               {SEGRL_OP_REINFORCE_PP_BASELINE, "reinforce_pp_baseline"},
               {SEGRL_OP_REMAX, "remax"}, {SEGRL_OP_OPO, "opo"},
               {SEGRL_OP_GRPO_PASSK, "grpo_passk"}, {SEGRL_OP_GPG, "gpg"}};
    batch x = make_batch(B, T, G, seed);
    int64_t n = B * T;
    double *R = h_alloc(B * 8), *len = h_alloc(B * 8), *A = h_alloc(B * 8), *wt = h_alloc(n * 8);
    float *tok = h_alloc(n * 4), *seq = h_alloc(B * 4), *tok2 = h_alloc(n * 4);
    float *rsum = h_alloc(B * 4);
    /* token rewards: only at the last valid token, so sum == score */
    float *trew = h_alloc(n * 4);
    for (int64_t b = 0; b < B; b++) {
        double l = 0;
        int64_t last = -1;
        for (int64_t t = 0; t < T; t++)
            if (x.m[b * T + t]) l++, last = t;
        len[b] = l;
        if (last >= 0) trew[b * T + last] = x.score[b];
        rsum[b] = last >= 0 ? x.score[b] : 0;
        /* garbage at invalid tokens must be ignored */
        for (int64_t t = 0; t < T; t++)
            if (!x.m[b * T + t]) trew[b * T + t] = 100.0f;
    }
    void *mem;
    segrl_exec e = h_exec(SEGRL_OP_GRPO, B, n, G, &mem);
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        for (int variant = 0; variant < 6; variant++) {
            segrl_outcome_opts o = segrl_outcome_opts_default();
            o.std_scope = variant % 3;
            o.singleton = variant / 3 ? SEGRL_SINGLETON_ZERO : SEGRL_SINGLETON_KEEP;
            if (variant == 4) o.unbiased = 0;
            segrl_outcome in = {vec(x.score, SEGRL_DTYPE_F32, B), segrl_view_none(), u8v(x.m, B, T),
                                vec(x.gid, SEGRL_DTYPE_I32, B), G};
            segrl_status st;
            segrl_view ot = f32v(tok, B, T), os = vec(seq, SEGRL_DTYPE_F32, B);
            switch (ops[k].op) {
            case SEGRL_OP_GRPO: st = segrl_grpo(NULL, &in, &o, &e, ot, os); break;
            case SEGRL_OP_RLOO: st = segrl_rloo(NULL, &in, &o, &e, ot, os); break;
            case SEGRL_OP_REINFORCE_PP_BASELINE:
                st = segrl_reinforce_pp_baseline(NULL, &in, &o, &e, ot, os);
                break;
            case SEGRL_OP_REMAX:
                st = segrl_remax(NULL, &in, vec(x.greedy, SEGRL_DTYPE_F32, B), &e, ot, os);
                break;
            case SEGRL_OP_OPO: st = segrl_opo(NULL, &in, &o, &e, ot, os); break;
            case SEGRL_OP_GRPO_PASSK: st = segrl_grpo_passk(NULL, &in, &o, &e, ot, os); break;
            default: st = segrl_gpg(NULL, &in, &o, &e, ot, os); break;
            }
            CHECK(st == SEGRL_OK, "%s: %s", ops[k].name, segrl_last_error());
            for (int64_t b = 0; b < B; b++) R[b] = x.score[b];
            ref_outcome(ops[k].op, R, len, x.gid, B, x.greedy, o, A);
            char name[96];
            snprintf(name, sizeof name, "%s(variant %d).seq", ops[k].name, variant);
            h_close_f(name, seq, A, B, 1e-5, 1e-5);
            /* tokens: A_b at valid tokens (REINFORCE++: whitened over valid tokens) */
            double shift = 0, scale = 1;
            if (ops[k].op == SEGRL_OP_REINFORCE_PP_BASELINE) {
                double c = 0, s = 0, q = 0;
                for (int64_t i = 0; i < n; i++)
                    if (x.m[i]) c++, s += A[i / T];
                for (int64_t i = 0; i < n; i++)
                    if (x.m[i]) q += (A[i / T] - s / c) * (A[i / T] - s / c);
                shift = s / c, scale = 1 / sqrt(q / (c - 1) + 1e-8);
            }
            for (int64_t i = 0; i < n; i++) wt[i] = x.m[i] ? (A[i / T] - shift) * scale : 0;
            snprintf(name, sizeof name, "%s(variant %d).tokens", ops[k].name, variant);
            h_close_f(name, tok, wt, n, 1e-5, 1e-5);

            /* the same from token rewards (sum over valid tokens) */
            if (variant == 0 && ops[k].op == SEGRL_OP_GRPO) {
                segrl_outcome in2 = in;
                in2.scores = segrl_view_none();
                in2.token_rewards = f32v(trew, B, T);
                OK(segrl_grpo(NULL, &in2, &o, &e, f32v(tok2, B, T), segrl_view_none()));
                for (int64_t b = 0; b < B; b++) R[b] = rsum[b];
                ref_outcome(ops[k].op, R, len, x.gid, B, x.greedy, o, A);
                for (int64_t i = 0; i < n; i++) wt[i] = x.m[i] ? A[i / T] : 0;
                h_close_f("grpo(token_rewards).tokens", tok2, wt, n, 1e-5, 1e-5);
            }
            /* packed == padded */
            if (variant == 0) {
                packed p = make_packed(&x);
                uint8_t *pm = pack(&p, &x, x.m, 1);
                float *pt = h_alloc(p.N * 4 + 4);
                segrl_layout lay = segrl_layout_packed(vec(p.off, SEGRL_DTYPE_I64, B + 1));
                segrl_outcome in3 = in;
                in3.mask = vec(pm, SEGRL_DTYPE_U8, p.N);
                segrl_view pv = vec(pt, SEGRL_DTYPE_F32, p.N);
                switch (ops[k].op) {
                case SEGRL_OP_GRPO: st = segrl_grpo(&lay, &in3, &o, &e, pv, segrl_view_none()); break;
                case SEGRL_OP_RLOO: st = segrl_rloo(&lay, &in3, &o, &e, pv, segrl_view_none()); break;
                case SEGRL_OP_REINFORCE_PP_BASELINE:
                    st = segrl_reinforce_pp_baseline(&lay, &in3, &o, &e, pv, segrl_view_none());
                    break;
                case SEGRL_OP_REMAX:
                    st = segrl_remax(&lay, &in3, vec(x.greedy, SEGRL_DTYPE_F32, B), &e, pv,
                                     segrl_view_none());
                    break;
                case SEGRL_OP_OPO: st = segrl_opo(&lay, &in3, &o, &e, pv, segrl_view_none()); break;
                case SEGRL_OP_GRPO_PASSK:
                    st = segrl_grpo_passk(&lay, &in3, &o, &e, pv, segrl_view_none());
                    break;
                default: st = segrl_gpg(&lay, &in3, &o, &e, pv, segrl_view_none()); break;
                }
                CHECK(st == SEGRL_OK, "%s packed: %s", ops[k].name, segrl_last_error());
                same_as_padded(ops[k].name, &p, &x, pt, tok);
                free(pm), free(pt), free(p.off), free(p.row_len);
            }
        }
    free(R), free(len), free(A), free(wt), free(tok), free(seq), free(tok2), free(rsum), free(trew);
    free(mem);
    free_batch(&x);
}

static void test_empty(void) {
    /* B = 0 and T = 0 are valid and write nothing */
    float r = 7, v = 7, a = 7, q = 7;
    OK(segrl_gae(NULL, f32v(&r, 0, 5), f32v(&v, 0, 5), segrl_view_none(), 1, 1, NULL,
                 f32v(&a, 0, 5), f32v(&q, 0, 5)));
    OK(segrl_gae(NULL, f32v(&r, 3, 0), f32v(&v, 3, 0), segrl_view_none(), 1, 1, NULL,
                 f32v(&a, 3, 0), f32v(&q, 3, 0)));
    CHECK(a == 7 && q == 7, "empty batch wrote data");
}

int main(void) {
    test_hand();
    test_empty();
    test_gae_random(37, 61, 1);
    test_gae_random(3, 5000, 2); /* longer than one CPU chunk */
    test_returns_random(29, 47, 3);
    test_whiten_random(41, 33, 6, 4);
    test_outcome_random(53, 24, 9, 5);  /* several singletons */
    test_outcome_random(64, 16, 8, 6);
    return h_finish();
}
