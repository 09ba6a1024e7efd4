/* test-loss.c — the loss area on the CPU.
 *
 *   policy loss: every mode x every aggregation (with KL, entropy and value terms) against a
 *     double-precision reference written here from the formulas, and its gradients against
 *     central finite differences of that reference (stop-gradients held at the base point);
 *     known values (ratio 1, clipped tokens, dual clip, k3 >= 0, hand-computed aggregations,
 *     micro-batches with a passed-in normalizer, packed == padded, bf16/f16 inputs);
 *     bad input with guard values on the outputs.
 *   fused log-probs: f32/bf16/f16 logits against a double log-softmax, gradients against finite
 *     differences, in place == out of place, -Inf columns, negative targets, bad input.
 *   fused linear: equal to logits = H W^T followed by the fused log-probs (forward and backward,
 *     dH and dW), finite differences in double, chunk sizes that do not divide N or V,
 *     accumulation, workspace errors. */
#include "harness.h"

#include <float.h>
#include <segrl/segrl.h>

#define DEV segrl_cpu()

#define OK(call)                                                                                  \
    do {                                                                                          \
        segrl_status st_ = (call);                                                                \
        CHECK(st_ == SEGRL_OK, "%s -> %s: %s", #call, segrl_status_str(st_), segrl_last_error()); \
    } while (0)

/* a call that must fail with `want` and a message containing `needle` */
#define BAD(call, want, needle)                                                                   \
    do {                                                                                          \
        segrl_status st_ = (call);                                                                \
        CHECK(st_ == (want) && strstr(segrl_last_error(), (needle)) != NULL,                      \
              "%s -> %s (%s), wanted %s mentioning '%s'", #call, segrl_status_str(st_),           \
              segrl_last_error(), segrl_status_str(want), (needle));                              \
    } while (0)

static segrl_view f32v(float *p, int64_t B, int64_t T) { return segrl_view_2d(p, SEGRL_DTYPE_F32, DEV, B, T); }
static segrl_view vec(void *p, segrl_dtype dt, int64_t n) { return segrl_view_1d(p, dt, DEV, n); }

static uint16_t to_bf16(float f) { /* round to nearest even */
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint16_t to_f16(float f) {
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}
static float from_f16(uint16_t u) {
    _Float16 h;
    memcpy(&h, &u, 2);
    return (float)h;
}

// ----------------------------------------------------------------------------
// policy loss: problem, reference, finite differences

#define MAXB 8
#define MAXT 16
#define MAXN (MAXB * MAXT)

typedef struct prob {
    int64_t B, T;
    float lp[MAXN], old[MAXN], A[MAXN], ref[MAXN], ent[MAXN], v[MAXN], ov[MAXN], R[MAXN];
    uint8_t m[MAXN];
} prob;

static void prob_random(prob *P, int64_t B, int64_t T, double spread) {
    memset(P, 0, sizeof *P);
    P->B = B, P->T = T;
    for (int64_t i = 0; i < B * T; i++) {
        P->lp[i] = -(float)(h_unif() * 3.0 + 0.05);
        P->old[i] = P->lp[i] + (float)(spread * h_normal());
        P->A[i] = h_normal();
        P->ref[i] = P->lp[i] + 0.4f * h_normal();
        P->ent[i] = (float)(h_unif() * 2.0);
        P->v[i] = h_normal();
        P->ov[i] = P->v[i] + 0.3f * h_normal();
        P->R[i] = h_normal();
        P->m[i] = h_unif() < 0.8;
    }
    for (int64_t t = 0; t < T; t++) P->m[t] = 1; /* sequence 0 is full */
    if (B > 2)
        for (int64_t t = 0; t < T; t++) P->m[2 * T + t] = 0; /* sequence 2 is empty */
}

static double clampd(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* The loss in double from the formulas. lp: the live log-probs; lp0: the base point (what the
 * stop-gradients see); ent, v: live entropy and values. */
static double ref_loss(const prob *P, const segrl_policy_loss_opts *o, const double *lp,
                       const double *lp0, const double *ent, const double *v) {
    const int64_t B = P->B, T = P->T;
    double NT = 0, S = 0, nb[MAXB] = {0};
    for (int64_t b = 0; b < B; b++) {
        for (int64_t t = 0; t < T; t++) nb[b] += P->m[b * T + t];
        NT += nb[b];
        S += nb[b] > 0;
    }
    double D = o->normalizer > 0 ? o->normalizer
               : o->agg == SEGRL_AGG_TOKEN_MEAN ? NT
               : o->agg == SEGRL_AGG_SEQ_MEAN_TOKEN_SUM_NORM ? (double)T
                                                            : S;
    const double lo = 1.0 - o->clip_low, hi = 1.0 + o->clip_high, C = o->log_ratio_clamp;
    const int kl_on = o->kl_type != SEGRL_KL_NONE && o->kl_coef != 0;
    double L = 0;
    for (int64_t b = 0; b < B; b++) {
        double mlr0 = 0;
        for (int64_t t = 0; t < T; t++)
            if (P->m[b * T + t]) mlr0 += lp0[b * T + t] - P->old[b * T + t];
        mlr0 = nb[b] > 0 ? mlr0 / nb[b] : 0;
        for (int64_t t = 0; t < T; t++) {
            const int64_t i = b * T + t;
            if (!P->m[i]) continue;
            const double w = o->agg == SEGRL_AGG_SEQ_MEAN_TOKEN_MEAN ? 1.0 / (D * nb[b]) : 1.0 / D;
            const double A = P->A[i];
            double l;
            if (o->mode == SEGRL_PG_PPO) {
                const double r = exp(clampd(lp[i] - P->old[i], -C, C));
                l = fmax(-A * r, -A * clampd(r, lo, hi));
                if (o->clip_c > 0 && A < 0) l = fmin(l, -A * o->clip_c);
            } else if (o->mode == SEGRL_PG_GSPO) {
                const double mc = clampd(mlr0, -C, C);
                const double r = exp(mc) * (mc == mlr0 ? exp(lp[i] - lp0[i]) : 1.0);
                l = fmax(-A * r, -A * clampd(r, lo, hi));
            } else if (o->mode == SEGRL_PG_CISPO) {
                double wt = fmin(exp(clampd(lp0[i] - P->old[i], -C, C)), hi);
                if (o->clip_low > 0) wt = fmax(wt, lo);
                l = -wt * A * lp[i];
            } else {
                l = -A * lp[i];
            }
            L += w * l;
            if (kl_on) {
                const double d = lp[i] - P->ref[i];
                double k;
                switch (o->kl_type) {
                case SEGRL_KL_K1: k = d; break;
                case SEGRL_KL_ABS: k = fabs(d); break;
                case SEGRL_KL_K2: k = 0.5 * d * d; break;
                default: {
                    const double dc = clampd(d, -20, 20);
                    k = clampd(exp(-dc) + dc - 1, -10, 10);
                }
                }
                L += w * o->kl_coef * k;
            }
            if (o->entropy_coef != 0) L -= w * o->entropy_coef * ent[i];
            if (o->value_coef != 0) {
                const double e1 = v[i] - P->R[i];
                double vl = 0.5 * e1 * e1;
                if (o->value_clip > 0) {
                    const double vc = P->ov[i] + clampd(v[i] - P->ov[i], -o->value_clip, o->value_clip);
                    vl = 0.5 * fmax(e1 * e1, (vc - P->R[i]) * (vc - P->R[i]));
                }
                L += w * o->value_coef * vl;
            }
        }
    }
    return L;
}

static segrl_policy_loss_inputs prob_inputs(prob *P) {
    segrl_policy_loss_inputs in;
    memset(&in, 0, sizeof in);
    in.logp = f32v(P->lp, P->B, P->T);
    in.old_logp = f32v(P->old, P->B, P->T);
    in.advantages = f32v(P->A, P->B, P->T);
    in.ref_logp = f32v(P->ref, P->B, P->T);
    in.entropy = f32v(P->ent, P->B, P->T);
    in.values = f32v(P->v, P->B, P->T);
    in.old_values = f32v(P->ov, P->B, P->T);
    in.returns = f32v(P->R, P->B, P->T);
    in.mask = segrl_view_2d(P->m, SEGRL_DTYPE_U8, DEV, P->B, P->T);
    return in;
}

static segrl_exec pl_exec(int64_t B, int64_t N, void **mem) {
    size_t n = 0;
    OK(segrl_policy_loss_workspace_size(DEV, B, N, &n));
    *mem = h_alloc(n);
    segrl_exec e = {0};
    e.workspace = *mem;
    e.workspace_bytes = n;
    return e;
}

/* forward + backward of the library, then the reference and its finite differences */
static void pl_check(const char *what, prob *P, const segrl_policy_loss_opts *o) {
    const int64_t B = P->B, T = P->T, N = B * T;
    void *mem;
    segrl_exec ex = pl_exec(B, N, &mem);
    segrl_policy_loss_inputs in = prob_inputs(P);
    float loss = -1;
    segrl_policy_loss_stats st;
    OK(segrl_policy_loss_forward(NULL, &in, o, &ex, vec(&loss, SEGRL_DTYPE_F32, 1), &st));
    float dlp[MAXN], dent[MAXN], dv[MAXN];
    float g = 0.75f;
    OK(segrl_policy_loss_backward(NULL, &in, o, vec(&g, SEGRL_DTYPE_F32, 1), &ex, f32v(dlp, B, T),
                                  f32v(dent, B, T), f32v(dv, B, T)));
    double lp[MAXN], ent[MAXN], v[MAXN];
    for (int64_t i = 0; i < N; i++) lp[i] = P->lp[i], ent[i] = P->ent[i], v[i] = P->v[i];
    const double L = ref_loss(P, o, lp, lp, ent, v);
    CHECK(fabs(loss - L) <= 1e-5 + 1e-5 * fabs(L), "%s: loss %.9g, reference %.9g", what, loss, L);
    CHECK(fabs(st.loss - L) <= 1e-6 + 1e-6 * fabs(L), "%s: stats.loss %.12g, reference %.12g",
          what, st.loss, L);
    double fd_lp[MAXN], fd_ent[MAXN], fd_v[MAXN];
    const double h = 1e-6;
    double gmax = 0;
    for (int64_t i = 0; i < N; i++) {
        double x = lp[i];
        double base[MAXN];
        memcpy(base, lp, sizeof base);
        lp[i] = x + h;
        const double up = ref_loss(P, o, lp, base, ent, v);
        lp[i] = x - h;
        const double dn = ref_loss(P, o, lp, base, ent, v);
        lp[i] = x;
        fd_lp[i] = g * (up - dn) / (2 * h);
        x = ent[i];
        ent[i] = x + h;
        const double eu = ref_loss(P, o, lp, lp, ent, v);
        ent[i] = x - h;
        const double ed = ref_loss(P, o, lp, lp, ent, v);
        ent[i] = x;
        fd_ent[i] = g * (eu - ed) / (2 * h);
        x = v[i];
        v[i] = x + h;
        const double vu = ref_loss(P, o, lp, lp, ent, v);
        v[i] = x - h;
        const double vd = ref_loss(P, o, lp, lp, ent, v);
        v[i] = x;
        fd_v[i] = g * (vu - vd) / (2 * h);
        gmax = fmax(gmax, fabs(fd_lp[i]));
    }
    char name[160];
    snprintf(name, sizeof name, "%s dL/dlogp", what);
    h_close_f(name, dlp, fd_lp, N, 1e-6 + 2e-5 * gmax, 1e-4);
    snprintf(name, sizeof name, "%s dL/dentropy", what);
    h_close_f(name, dent, fd_ent, N, 1e-7, 1e-4);
    snprintf(name, sizeof name, "%s dL/dvalues", what);
    h_close_f(name, dv, fd_v, N, 1e-6, 1e-4);
    free(mem);
}

static void test_policy_gradcheck(void) {
    const int modes[] = {SEGRL_PG_PPO, SEGRL_PG_GSPO, SEGRL_PG_CISPO, SEGRL_PG_REINFORCE};
    const char *mode_names[] = {"ppo", "gspo", "cispo", "reinforce"};
    const char *agg_names[] = {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum",
                               "seq-mean-token-sum-norm"};
    h_seed(11);
    int variant = 0;
    for (int mi = 0; mi < 4; mi++)
        for (int agg = 0; agg < 4; agg++)
            for (int dual = 0; dual < (modes[mi] == SEGRL_PG_PPO ? 2 : 1); dual++) {
                prob P;
                prob_random(&P, 5, 11, 0.35);
                segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
                o.mode = modes[mi];
                o.agg = agg;
                o.clip_low = 0.2f;
                o.clip_high = 0.28f;
                o.clip_c = dual ? 3.0f : 0.0f;
                o.kl_type = 1 + variant % 4; /* K1, ABS, K2, K3 in turn */
                o.kl_coef = 0.05f;
                o.entropy_coef = 0.01f;
                o.value_coef = 0.5f;
                o.value_clip = variant % 2 ? 0.2f : 0.0f;
                if (dual) /* some tokens with A < 0 and a ratio above c */
                    for (int k = 0; k < 6; k++) {
                        P.A[k] = -fabsf(P.A[k]);
                        P.old[k] = P.lp[k] - 1.5f;
                    }
                char what[96];
                snprintf(what, sizeof what, "%s%s/%s", mode_names[mi], dual ? "+dual" : "",
                         agg_names[agg]);
                pl_check(what, &P, &o);
                variant++;
            }
    /* GSPO with a clamped sequence ratio, and a tiny log-ratio clamp in PPO */
    prob P;
    prob_random(&P, 4, 7, 0.3);
    segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
    o.mode = SEGRL_PG_GSPO;
    o.log_ratio_clamp = 0.05f;
    o.agg = SEGRL_AGG_SEQ_MEAN_TOKEN_MEAN;
    pl_check("gspo clamped", &P, &o);
    o.mode = SEGRL_PG_PPO;
    pl_check("ppo clamped", &P, &o);
}

// ----------------------------------------------------------------------------
// policy loss: known values

static void test_policy_known(void) {
    void *mem;
    segrl_exec ex = pl_exec(3, 12, &mem);
    /* ratio 1: loss = -mean(A) over valid tokens, gradient -A / NT */
    {
        prob P;
        h_seed(5);
        prob_random(&P, 3, 4, 0.0);
        double s = 0, n = 0;
        for (int i = 0; i < 12; i++) {
            P.old[i] = P.lp[i];
            if (P.m[i]) s += P.A[i], n++;
        }
        segrl_policy_loss_inputs in = prob_inputs(&P);
        segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
        float loss;
        segrl_policy_loss_stats st;
        OK(segrl_policy_loss_forward(NULL, &in, &o, &ex, vec(&loss, SEGRL_DTYPE_F32, 1), &st));
        CHECK(fabs(loss + s / n) < 1e-6, "ratio 1: loss %.9g, -mean(A) %.9g", loss, -s / n);
        CHECK(st.ratio_mean == 1.0 && st.ratio_max == 1.0 && st.clip_frac_high == 0 &&
                  st.num_tokens == n,
              "ratio 1: stats ratio_mean %g max %g clip %g tokens %g", st.ratio_mean, st.ratio_max,
              st.clip_frac_high, st.num_tokens);
        float d[12];
        OK(segrl_policy_loss_backward(NULL, &in, &o, segrl_view_none(), &ex, f32v(d, 3, 4),
                                      segrl_view_none(), segrl_view_none()));
        int bad = 0;
        for (int i = 0; i < 12; i++)
            bad += fabsf(d[i] - (P.m[i] ? (float)(-P.A[i] / n) : 0.0f)) > 1e-7f;
        CHECK(bad == 0, "ratio 1: gradient is not -A / NT (%d tokens)", bad);
    }
    /* gradients vanish exactly where clipping is active, and only there */
    {
        prob P;
        h_seed(6);
        prob_random(&P, 3, 4, 0.6);
        segrl_policy_loss_inputs in = prob_inputs(&P);
        segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
        float d[12];
        OK(segrl_policy_loss_backward(NULL, &in, &o, segrl_view_none(), &ex, f32v(d, 3, 4),
                                      segrl_view_none(), segrl_view_none()));
        int wrong = 0, clipped = 0, open = 0;
        for (int i = 0; i < 12; i++) {
            if (!P.m[i]) {
                wrong += d[i] != 0.0f;
                continue;
            }
            const double r = exp((double)P.lp[i] - P.old[i]);
            const int clip = (P.A[i] > 0 && r > 1.2) || (P.A[i] < 0 && r < 0.8);
            clipped += clip, open += !clip;
            wrong += clip ? d[i] != 0.0f : d[i] == 0.0f;
        }
        CHECK(wrong == 0 && clipped > 0 && open > 0,
              "clipping: %d tokens with a wrong zero / non-zero gradient (%d clipped, %d open)",
              wrong, clipped, open);
        segrl_policy_loss_stats st;
        OK(segrl_policy_loss_forward(NULL, &in, &o, &ex, segrl_view_none(), &st));
        CHECK(fabs((st.clip_frac_low + st.clip_frac_high) * st.num_tokens - clipped) < 1e-9,
              "clip fractions %g + %g of %g tokens, %d clipped", st.clip_frac_low,
              st.clip_frac_high, st.num_tokens, clipped);
    }
    /* dual clip: A < 0 and r = e^2 > c = 3 gives exactly -A c per token, zero gradient */
    {
        float lp[2] = {-1.0f, -1.0f}, old[2] = {-3.0f, -3.0f}, A[2] = {-0.5f, -2.0f};
        segrl_policy_loss_inputs in;
        memset(&in, 0, sizeof in);
        in.logp = f32v(lp, 1, 2), in.old_logp = f32v(old, 1, 2), in.advantages = f32v(A, 1, 2);
        segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
        o.clip_c = 3.0f;
        float loss, d[2] = {9, 9};
        segrl_policy_loss_stats st;
        OK(segrl_policy_loss_forward(NULL, &in, &o, &ex, vec(&loss, SEGRL_DTYPE_F32, 1), &st));
        CHECK(fabsf(loss - 0.5f * (0.5f * 3 + 2.0f * 3)) < 1e-6f && st.dual_clip_frac == 1.0,
              "dual clip: loss %.9g (want 3.75), dual fraction %g", loss, st.dual_clip_frac);
        OK(segrl_policy_loss_backward(NULL, &in, &o, segrl_view_none(), &ex, f32v(d, 1, 2),
                                      segrl_view_none(), segrl_view_none()));
        CHECK(d[0] == 0.0f && d[1] == 0.0f, "dual clip: gradient %g %g, want 0", d[0], d[1]);
        o.clip_c = 0.0f; /* without it the loss is -A r = 0.5 e^2 ... unbounded */
        OK(segrl_policy_loss_forward(NULL, &in, &o, &ex, vec(&loss, SEGRL_DTYPE_F32, 1), NULL));
        CHECK(fabsf(loss - 0.5f * (0.5f + 2.0f) * expf(2.0f)) < 1e-5f, "no dual clip: loss %.9g", loss);
    }
    /* value clip inactive but old_v + (v - old_v) != v in f32 (an ulp apart) and the larger:
     * that branch is still differentiated (d/dv = v_clip - R), not treated as clamped */
    {
        float lp[1] = {-1.0f}, A[1] = {0.0f}, v[1] = {0.3f}, ov[1] = {1000.0f}, R[1] = {1.0f};
        segrl_policy_loss_inputs in;
        memset(&in, 0, sizeof in);
        in.logp = f32v(lp, 1, 1), in.advantages = f32v(A, 1, 1), in.values = f32v(v, 1, 1);
        in.old_values = f32v(ov, 1, 1), in.returns = f32v(R, 1, 1);
        segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
        o.mode = SEGRL_PG_REINFORCE, o.value_coef = 1.0f, o.value_clip = 2000.0f;
        const float vc = ov[0] + (v[0] - ov[0]);
        float d = 0;
        segrl_policy_loss_stats st;
        OK(segrl_policy_loss_backward(NULL, &in, &o, segrl_view_none(), &ex, segrl_view_none(),
                                      segrl_view_none(), f32v(&d, 1, 1)));
        OK(segrl_policy_loss_forward(NULL, &in, &o, &ex, segrl_view_none(), &st));
        CHECK(vc != v[0] && fabsf(d - (vc - R[0])) < 1e-6f && st.value_clip_frac == 0.0,
              "inactive value clip at an ulp tie: d/dv %.9g, want %.9g (clip fraction %g)", d,
              vc - R[0], st.value_clip_frac);
    }
    /* k3 >= 0 everywhere, and k3 = 0 when logp == ref */
    {
        prob P;
        h_seed(7);
        prob_random(&P, 3, 4, 0.2);
        for (int i = 0; i < 12; i++) P.ref[i] = P.lp[i] + 3.0f * h_normal();
        segrl_policy_loss_inputs in = prob_inputs(&P);
        segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
        o.kl_type = SEGRL_KL_K3;
        o.kl_coef = 1.0f;
        segrl_policy_loss_stats st;
        OK(segrl_policy_loss_forward(NULL, &in, &o, &ex, segrl_view_none(), &st));
        CHECK(st.kl_loss >= 0 && st.kl_mean >= 0, "k3: kl_loss %g, kl_mean %g", st.kl_loss, st.kl_mean);
        for (int i = 0; i < 12; i++) P.ref[i] = P.lp[i];
        OK(segrl_policy_loss_forward(NULL, &in, &o, &ex, segrl_view_none(), &st));
        CHECK(st.kl_loss == 0 && st.kl_mean == 0, "k3 at ref: %g", st.kl_loss);
    }
    free(mem);
}

/* REINFORCE, l = -A logp = A (logp = -1), by hand:
 *   mask [[1 1 0] [1 0 0]], A [[1 2 .] [4 . .]]
 *   token-mean (1 + 2 + 4) / 3; seq-mean-token-mean ((1 + 2) / 2 + 4) / 2;
 *   seq-mean-token-sum (3 + 4) / 2; seq-mean-token-sum-norm (3 + 4) / 3 (T) or / 10 */
static void test_policy_agg_hand(void) {
    float lp[6] = {-1, -1, -1, -1, -1, -1}, A[6] = {1, 2, 100, 4, 100, 100};
    uint8_t m[6] = {1, 1, 0, 1, 0, 0};
    segrl_policy_loss_inputs in;
    memset(&in, 0, sizeof in);
    in.logp = f32v(lp, 2, 3), in.advantages = f32v(A, 2, 3);
    in.mask = segrl_view_2d(m, SEGRL_DTYPE_U8, DEV, 2, 3);
    void *mem;
    segrl_exec ex = pl_exec(2, 6, &mem);
    const double want[5] = {7.0 / 3, 5.5 / 2, 7.0 / 2, 7.0 / 3, 7.0 / 10};
    for (int k = 0; k < 5; k++) {
        segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
        o.mode = SEGRL_PG_REINFORCE;
        o.agg = k < 4 ? k : SEGRL_AGG_SEQ_MEAN_TOKEN_SUM_NORM;
        if (k == 4) o.normalizer = 10;
        float loss;
        OK(segrl_policy_loss_forward(NULL, &in, &o, &ex, vec(&loss, SEGRL_DTYPE_F32, 1), NULL));
        CHECK(fabs(loss - want[k]) < 1e-6, "aggregation %d by hand: %.9g, want %.9g", k, loss, want[k]);
    }
    /* the probability mask removes tokens like the mask */
    uint8_t pm[6] = {1, 0, 1, 1, 1, 1};
    in.prob_mask = segrl_view_2d(pm, SEGRL_DTYPE_U8, DEV, 2, 3);
    segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
    o.mode = SEGRL_PG_REINFORCE;
    float loss;
    OK(segrl_policy_loss_forward(NULL, &in, &o, &ex, vec(&loss, SEGRL_DTYPE_F32, 1), NULL));
    CHECK(fabs(loss - 5.0 / 2) < 1e-6, "prob_mask: %.9g, want 2.5", loss);
    free(mem);
}

/* micro-batches of sequences, each given the full batch's normalizer, add up to the full batch;
 * the packed layout gives the padded result */
static void test_policy_microbatch_packed(void) {
    h_seed(21);
    for (int agg = 0; agg < 4; agg++) {
        prob P;
        prob_random(&P, 6, 8, 0.3);
        segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
        o.agg = agg;
        o.kl_type = SEGRL_KL_K3, o.kl_coef = 0.1f, o.entropy_coef = 0.02f;
        void *mem;
        segrl_exec ex = pl_exec(6, 48, &mem);
        segrl_policy_loss_inputs in = prob_inputs(&P);
        float full, dfull[48], dpart[48];
        segrl_policy_loss_stats st;
        OK(segrl_policy_loss_forward(NULL, &in, &o, &ex, vec(&full, SEGRL_DTYPE_F32, 1), &st));
        OK(segrl_policy_loss_backward(NULL, &in, &o, segrl_view_none(), &ex, f32v(dfull, 6, 8),
                                      segrl_view_none(), segrl_view_none()));
        o.normalizer = agg == SEGRL_AGG_TOKEN_MEAN ? st.num_tokens
                       : agg == SEGRL_AGG_SEQ_MEAN_TOKEN_SUM_NORM ? 8
                                                                  : st.num_seqs;
        double sum = 0;
        for (int part = 0; part < 2; part++) {
            const int64_t b0 = part ? 4 : 0, nb = part ? 2 : 4; /* sequences 0-3, then 4-5 */
            prob Q = P;
            Q.B = nb;
            const size_t off = (size_t)b0 * 8;
            memcpy(Q.lp, P.lp + off, nb * 8 * 4), memcpy(Q.old, P.old + off, nb * 8 * 4);
            memcpy(Q.A, P.A + off, nb * 8 * 4), memcpy(Q.ref, P.ref + off, nb * 8 * 4);
            memcpy(Q.ent, P.ent + off, nb * 8 * 4), memcpy(Q.m, P.m + off, nb * 8);
            segrl_policy_loss_inputs qi = prob_inputs(&Q);
            float l;
            OK(segrl_policy_loss_forward(NULL, &qi, &o, &ex, vec(&l, SEGRL_DTYPE_F32, 1), NULL));
            OK(segrl_policy_loss_backward(NULL, &qi, &o, segrl_view_none(), &ex,
                                          f32v(dpart + off, nb, 8), segrl_view_none(),
                                          segrl_view_none()));
            sum += l;
        }
        CHECK(fabs(sum - full) < 1e-6, "micro-batches agg %d: %.9g + ... = %.9g, full %.9g", agg,
              sum, sum, full);
        double want[48];
        for (int i = 0; i < 48; i++) want[i] = dfull[i];
        h_close_f("micro-batch gradient", dpart, want, 48, 1e-9, 1e-6);
        /* packed: sequence b keeps its first len_b tokens; padded twin masks the rest */
        o.normalizer = agg == SEGRL_AGG_SEQ_MEAN_TOKEN_SUM_NORM ? 8 : 0;
        int64_t len[6] = {8, 3, 0, 8, 5, 1};
        int64_t off64[7] = {0};
        float plp[48], pold[48], pA[48], pref[48], pent[48];
        uint8_t pmk[48];
        prob W = P;
        int64_t n = 0;
        for (int b = 0; b < 6; b++) {
            for (int t = 0; t < 8; t++) {
                const int i = b * 8 + t;
                if (t >= len[b]) {
                    W.m[i] = 0;
                    continue;
                }
                plp[n] = P.lp[i], pold[n] = P.old[i], pA[n] = P.A[i], pref[n] = P.ref[i];
                pent[n] = P.ent[i], pmk[n] = P.m[i];
                n++;
            }
            off64[b + 1] = n;
        }
        segrl_policy_loss_inputs wi = prob_inputs(&W), pi;
        memset(&pi, 0, sizeof pi);
        pi.logp = vec(plp, SEGRL_DTYPE_F32, n), pi.old_logp = vec(pold, SEGRL_DTYPE_F32, n);
        pi.advantages = vec(pA, SEGRL_DTYPE_F32, n), pi.ref_logp = vec(pref, SEGRL_DTYPE_F32, n);
        pi.entropy = vec(pent, SEGRL_DTYPE_F32, n), pi.mask = vec(pmk, SEGRL_DTYPE_U8, n);
        segrl_layout lay = segrl_layout_packed(vec(off64, SEGRL_DTYPE_I64, 7));
        float lpad, lpk, dpad[48], dpk[48];
        OK(segrl_policy_loss_forward(NULL, &wi, &o, &ex, vec(&lpad, SEGRL_DTYPE_F32, 1), NULL));
        OK(segrl_policy_loss_forward(&lay, &pi, &o, &ex, vec(&lpk, SEGRL_DTYPE_F32, 1), NULL));
        CHECK(fabsf(lpad - lpk) <= 1e-6f * (1 + fabsf(lpad)), "packed agg %d: %.9g vs padded %.9g",
              agg, lpk, lpad);
        OK(segrl_policy_loss_backward(NULL, &wi, &o, segrl_view_none(), &ex, f32v(dpad, 6, 8),
                                      segrl_view_none(), segrl_view_none()));
        OK(segrl_policy_loss_backward(&lay, &pi, &o, segrl_view_none(), &ex,
                                      vec(dpk, SEGRL_DTYPE_F32, n), segrl_view_none(),
                                      segrl_view_none()));
        double wp[48];
        n = 0;
        for (int b = 0; b < 6; b++)
            for (int t = 0; t < len[b]; t++) wp[n++] = dpad[b * 8 + t];
        h_close_f("packed gradient", dpk, wp, n, 1e-9, 1e-6);
        free(mem);
    }
}

/* bf16 / f16 inputs and outputs equal the f32 path on the rounded values */
static void test_policy_dtypes(void) {
    h_seed(31);
    prob P;
    prob_random(&P, 4, 6, 0.3);
    for (int i = 0; i < 24; i++) /* round every input through bf16 so both paths see equal values */
        P.lp[i] = from_bf16(to_bf16(P.lp[i])), P.old[i] = from_bf16(to_bf16(P.old[i])),
        P.A[i] = from_bf16(to_bf16(P.A[i]));
    segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
    void *mem;
    segrl_exec ex = pl_exec(4, 24, &mem);
    segrl_policy_loss_inputs in = prob_inputs(&P);
    float want, d32[24];
    OK(segrl_policy_loss_forward(NULL, &in, &o, &ex, vec(&want, SEGRL_DTYPE_F32, 1), NULL));
    OK(segrl_policy_loss_backward(NULL, &in, &o, segrl_view_none(), &ex, f32v(d32, 4, 6),
                                  segrl_view_none(), segrl_view_none()));
    for (int k = 0; k < 2; k++) {
        const segrl_dtype dt = k ? SEGRL_DTYPE_F16 : SEGRL_DTYPE_BF16;
        uint16_t lp[24], old[24], A[24], d16[24];
        for (int i = 0; i < 24; i++) {
            lp[i] = k ? to_f16(P.lp[i]) : to_bf16(P.lp[i]);
            old[i] = k ? to_f16(P.old[i]) : to_bf16(P.old[i]);
            A[i] = k ? to_f16(P.A[i]) : to_bf16(P.A[i]);
        }
        segrl_policy_loss_inputs hi = in;
        hi.logp = segrl_view_2d(lp, dt, DEV, 4, 6);
        hi.old_logp = segrl_view_2d(old, dt, DEV, 4, 6);
        hi.advantages = segrl_view_2d(A, dt, DEV, 4, 6);
        float got;
        OK(segrl_policy_loss_forward(NULL, &hi, &o, &ex, vec(&got, SEGRL_DTYPE_F32, 1), NULL));
        /* bf16 values are exact in f16 here only approximately: compare loosely for f16 */
        CHECK(fabsf(got - want) <= (k ? 1e-2f : 1e-6f) * (1 + fabsf(want)), "%s inputs: %.9g vs %.9g",
              k ? "f16" : "bf16", got, want);
        OK(segrl_policy_loss_backward(NULL, &hi, &o, segrl_view_none(), &ex,
                                      segrl_view_2d(d16, dt, DEV, 4, 6), segrl_view_none(),
                                      segrl_view_none()));
        int bad = 0;
        for (int i = 0; i < 24; i++) {
            const float gv = k ? from_f16(d16[i]) : from_bf16(d16[i]);
            bad += fabsf(gv - d32[i]) > (k ? 2e-2f : 1e-2f) * fabsf(d32[i]) + 1e-6f;
        }
        CHECK(bad == 0, "%s gradient output: %d values off", k ? "f16" : "bf16", bad);
    }
    free(mem);
}

static void test_policy_bad(void) {
    prob P;
    h_seed(41);
    prob_random(&P, 3, 4, 0.3);
    void *mem;
    segrl_exec ex = pl_exec(3, 12, &mem);
    segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
    segrl_policy_loss_inputs in = prob_inputs(&P);
    float loss = 123.0f, d[12];
    for (int i = 0; i < 12; i++) d[i] = 77.0f;
    segrl_view L = vec(&loss, SEGRL_DTYPE_F32, 1);
    /* mismatched shapes */
    segrl_policy_loss_inputs b = in;
    b.old_logp = f32v(P.old, 4, 3);
    BAD(segrl_policy_loss_forward(NULL, &b, &o, &ex, L, NULL), SEGRL_ERR_INVALID, "in->old_logp: shape");
    BAD(segrl_policy_loss_backward(NULL, &b, &o, segrl_view_none(), &ex, f32v(d, 3, 4),
                                   segrl_view_none(), segrl_view_none()),
        SEGRL_ERR_INVALID, "in->old_logp");
    BAD(segrl_policy_loss_backward(NULL, &in, &o, segrl_view_none(), &ex, f32v(d, 4, 3),
                                   segrl_view_none(), segrl_view_none()),
        SEGRL_ERR_INVALID, "out_grad_logp: shape");
    /* missing inputs the options need */
    b = in;
    b.ref_logp = segrl_view_none();
    o.kl_type = SEGRL_KL_K1, o.kl_coef = 0.1f;
    BAD(segrl_policy_loss_forward(NULL, &b, &o, &ex, L, NULL), SEGRL_ERR_INVALID, "in->ref_logp: NULL");
    o = segrl_policy_loss_opts_default();
    o.clip_c = 0.5f;
    BAD(segrl_policy_loss_forward(NULL, &in, &o, &ex, L, NULL), SEGRL_ERR_INVALID, "opts->clip_c");
    o = segrl_policy_loss_opts_default();
    o.agg = 9;
    BAD(segrl_policy_loss_forward(NULL, &in, &o, &ex, L, NULL), SEGRL_ERR_INVALID, "opts->agg");
    o = segrl_policy_loss_opts_default();
    /* non-finite at a valid token: named; at a masked token: ignored */
    int valid = -1, masked = -1;
    for (int i = 0; i < 12; i++) {
        if (P.m[i] && valid < 0) valid = i;
        if (!P.m[i] && masked < 0) masked = i;
    }
    float keep = P.A[valid];
    P.A[valid] = NAN;
    BAD(segrl_policy_loss_forward(NULL, &in, &o, &ex, L, NULL), SEGRL_ERR_INVALID,
        "in->advantages: non-finite value at valid token");
    BAD(segrl_policy_loss_backward(NULL, &in, &o, segrl_view_none(), &ex, f32v(d, 3, 4),
                                   segrl_view_none(), segrl_view_none()),
        SEGRL_ERR_INVALID, "in->advantages");
    P.A[valid] = keep;
    P.lp[masked] = INFINITY;
    OK(segrl_policy_loss_forward(NULL, &in, &o, &ex, L, NULL));
    P.lp[masked] = -1.0f;
    loss = 123.0f;
    /* zero valid tokens */
    uint8_t zero[12] = {0};
    b = in;
    b.mask = segrl_view_2d(zero, SEGRL_DTYPE_U8, DEV, 3, 4);
    BAD(segrl_policy_loss_forward(NULL, &b, &o, &ex, L, NULL), SEGRL_ERR_INVALID,
        "in->mask: no valid tokens");
    BAD(segrl_policy_loss_backward(NULL, &b, &o, segrl_view_none(), &ex, f32v(d, 3, 4),
                                   segrl_view_none(), segrl_view_none()),
        SEGRL_ERR_INVALID, "in->mask: no valid tokens");
    int untouched = loss == 123.0f;
    for (int i = 0; i < 12; i++) untouched &= d[i] == 77.0f;
    CHECK(untouched, "outputs written by failing calls");
    /* ... but with a passed-in normalizer an empty micro-batch is a zero loss */
    o.normalizer = 10;
    OK(segrl_policy_loss_forward(NULL, &b, &o, &ex, L, NULL));
    CHECK(loss == 0.0f, "empty micro-batch: loss %g", loss);
    o.normalizer = 0;
    /* workspace */
    segrl_exec small = ex;
    small.workspace_bytes = 8;
    BAD(segrl_policy_loss_forward(NULL, &in, &o, &small, L, NULL), SEGRL_ERR_WORKSPACE,
        "exec->workspace");
    BAD(segrl_policy_loss_forward(NULL, &in, &o, &ex, segrl_view_none(), NULL), SEGRL_ERR_INVALID,
        "out_loss");
    free(mem);
}

// ----------------------------------------------------------------------------
// fused log-probs

/* log-softmax of one row in double: lse, logp(y), entropy, sum p^2 */
static void ref_row(const double *z, int64_t V, int64_t y, double *lse, double *lp, double *H,
                    double *sp2) {
    double m = -INFINITY;
    for (int64_t j = 0; j < V; j++) m = fmax(m, z[j]);
    double s = 0;
    for (int64_t j = 0; j < V; j++) s += exp(z[j] - m);
    *lse = m + log(s);
    double h = 0, q = 0;
    for (int64_t j = 0; j < V; j++) {
        if (z[j] == -INFINITY) continue;
        const double p = exp(z[j] - *lse);
        h -= p * (z[j] - *lse);
        q += p * p;
    }
    *H = h;
    *sp2 = q;
    *lp = y >= 0 ? z[y] - *lse : 0.0;
}

/* sum_i a_i logp_i + b_i H_i of logits x (N, V) / temp, in double */
static double ref_obj(const double *x, int64_t N, int64_t V, const int64_t *y, double temp,
                      const double *a, const double *b) {
    double F = 0, z[256];
    for (int64_t i = 0; i < N; i++) {
        for (int64_t j = 0; j < V; j++) z[j] = x[i * V + j] / temp;
        double lse, lp, H, q;
        ref_row(z, V, y[i], &lse, &lp, &H, &q);
        F += a[i] * lp + b[i] * H;
    }
    return F;
}

static segrl_exec lp_exec(int64_t N, int64_t V, void **mem) {
    size_t n = 0;
    OK(segrl_logprobs_workspace_size(DEV, N, V, &n));
    *mem = h_alloc(n);
    segrl_exec e = {0};
    e.workspace = *mem;
    e.workspace_bytes = n;
    return e;
}

static void test_logprobs_values(void) {
    h_seed(51);
    const int64_t N = 7, V = 5003; /* crosses the 2048-entry blocks, not a multiple of 8 */
    float *x = h_alloc(N * V * 4);
    uint16_t *xb = h_alloc(N * V * 2), *xh = h_alloc(N * V * 2);
    double *z = h_alloc(N * V * 8);
    int64_t y[7];
    for (int64_t i = 0; i < N * V; i++) x[i] = 3.0f * h_normal();
    x[2 * V + 17] = -INFINITY, x[2 * V + 4000] = -INFINITY; /* masked vocabulary entries */
    for (int64_t i = 0; i < N; i++) y[i] = h_int(0, V - 1);
    y[3] = -1; /* no target */
    for (int64_t i = 0; i < N * V; i++) xb[i] = to_bf16(x[i]), xh[i] = to_f16(x[i]);
    void *mem;
    segrl_exec ex = lp_exec(N, V, &mem);
    const float temps[2] = {1.0f, 0.7f};
    for (int k = 0; k < 3; k++)
        for (int ti = 0; ti < 2; ti++) {
            const segrl_dtype dt = k == 0 ? SEGRL_DTYPE_F32 : k == 1 ? SEGRL_DTYPE_BF16 : SEGRL_DTYPE_F16;
            void *data = k == 0 ? (void *)x : k == 1 ? (void *)xb : (void *)xh;
            double wl[7], wh[7], wlse[7], wpt[7], wq[7];
            for (int64_t i = 0; i < N; i++) {
                for (int64_t j = 0; j < V; j++) {
                    const float v = k == 0 ? x[i * V + j] : k == 1 ? from_bf16(xb[i * V + j])
                                                                   : from_f16(xh[i * V + j]);
                    z[j] = (double)v / temps[ti];
                }
                ref_row(z, V, y[i], &wlse[i], &wl[i], &wh[i], &wq[i]);
                wpt[i] = y[i] >= 0 ? exp(wl[i]) : 0.0;
            }
            float lp[7], H[7], lse[7], pt[7], q[7];
            segrl_logprob_out out = {vec(lp, SEGRL_DTYPE_F32, N), vec(H, SEGRL_DTYPE_F32, N),
                                     vec(lse, SEGRL_DTYPE_F32, N), vec(pt, SEGRL_DTYPE_F32, N),
                                     vec(q, SEGRL_DTYPE_F32, N)};
            segrl_logprob_opts o = segrl_logprob_opts_default();
            o.temperature = temps[ti];
            OK(segrl_logprobs_forward(segrl_view_2d(data, dt, DEV, N, V),
                                      vec(y, SEGRL_DTYPE_I64, N), &o, &ex, &out));
            char name[64];
            snprintf(name, sizeof name, "logp %s T=%.1f", segrl_dtype_name(dt), temps[ti]);
            h_close_f(name, lp, wl, N, 2e-5, 2e-6);
            snprintf(name, sizeof name, "entropy %s T=%.1f", segrl_dtype_name(dt), temps[ti]);
            h_close_f(name, H, wh, N, 2e-5, 2e-6);
            h_close_f("lse", lse, wlse, N, 2e-5, 2e-6);
            h_close_f("p_target", pt, wpt, N, 1e-7, 2e-5);
            h_close_f("sum_p2", q, wq, N, 1e-8, 2e-5);
            CHECK(lp[3] == 0.0f && pt[3] == 0.0f, "negative target: logp %g p %g", lp[3], pt[3]);
        }
    free(x), free(xb), free(xh), free(z), free(mem);
}

static void test_logprobs_grad(void) {
    h_seed(52);
    const int64_t N = 4, V = 37;
    float x[4 * 37];
    double xd[4 * 37], a[4], b[4], fd[4 * 37];
    int64_t y[4] = {0, 36, 5, -1};
    for (int i = 0; i < N * V; i++) xd[i] = x[i] = 2.0f * h_normal();
    x[1 * V + 3] = -INFINITY, xd[1 * V + 3] = -INFINITY;
    for (int i = 0; i < N; i++) a[i] = h_normal(), b[i] = h_normal();
    void *mem;
    segrl_exec ex = lp_exec(N, V, &mem);
    for (int ti = 0; ti < 2; ti++) {
        const double temp = ti ? 1.3 : 1.0;
        segrl_logprob_opts o = segrl_logprob_opts_default();
        o.temperature = (float)temp;
        float lp[4], H[4], lse[4], ga[4], gb[4], dx[4 * 37], dx2[4 * 37];
        for (int i = 0; i < N; i++) ga[i] = (float)a[i], gb[i] = (float)b[i];
        segrl_logprob_out out = {vec(lp, SEGRL_DTYPE_F32, N), vec(H, SEGRL_DTYPE_F32, N),
                                 vec(lse, SEGRL_DTYPE_F32, N), segrl_view_none(), segrl_view_none()};
        segrl_view X = segrl_view_2d(x, SEGRL_DTYPE_F32, DEV, N, V);
        segrl_view Y = vec(y, SEGRL_DTYPE_I64, N);
        OK(segrl_logprobs_forward(X, Y, &o, &ex, &out));
        OK(segrl_logprobs_backward(X, Y, vec(lse, SEGRL_DTYPE_F32, N), vec(H, SEGRL_DTYPE_F32, N),
                                   vec(ga, SEGRL_DTYPE_F32, N), vec(gb, SEGRL_DTYPE_F32, N), &o,
                                   &ex, segrl_view_2d(dx, SEGRL_DTYPE_F32, DEV, N, V)));
        double gmax = 0;
        for (int i = 0; i < N * V; i++) {
            if (xd[i] == -INFINITY) {
                fd[i] = 0;
                continue;
            }
            const double h = 1e-6, keep = xd[i];
            xd[i] = keep + h;
            const double up = ref_obj(xd, N, V, y, temp, a, b);
            xd[i] = keep - h;
            const double dn = ref_obj(xd, N, V, y, temp, a, b);
            xd[i] = keep;
            fd[i] = (up - dn) / (2 * h);
            gmax = fmax(gmax, fabs(fd[i]));
        }
        h_close_f(ti ? "dlogits (T=1.3) vs finite differences" : "dlogits vs finite differences",
                  dx, fd, N * V, 2e-6 * gmax + 1e-7, 1e-4);
        /* in place: the logits buffer receives the gradient */
        memcpy(dx2, x, sizeof x);
        segrl_view X2 = segrl_view_2d(dx2, SEGRL_DTYPE_F32, DEV, N, V);
        OK(segrl_logprobs_backward(X2, Y, vec(lse, SEGRL_DTYPE_F32, N), vec(H, SEGRL_DTYPE_F32, N),
                                   vec(ga, SEGRL_DTYPE_F32, N), vec(gb, SEGRL_DTYPE_F32, N), &o,
                                   &ex, X2));
        h_same_f("in-place backward", dx2, dx, N * V);
    }
    /* bf16 logits, bf16 gradient written in place */
    {
        uint16_t xb[4 * 37];
        float xr[4 * 37], lp[4], H[4], lse[4], ga[4] = {1, -1, 0.5f, 2}, dx[4 * 37];
        for (int i = 0; i < N * V; i++) xb[i] = to_bf16(x[i]), xr[i] = from_bf16(xb[i]);
        segrl_logprob_opts o = segrl_logprob_opts_default();
        segrl_logprob_out out = {vec(lp, SEGRL_DTYPE_F32, N), vec(H, SEGRL_DTYPE_F32, N),
                                 vec(lse, SEGRL_DTYPE_F32, N), segrl_view_none(), segrl_view_none()};
        segrl_view Y = vec(y, SEGRL_DTYPE_I64, N);
        segrl_view XB = segrl_view_2d(xb, SEGRL_DTYPE_BF16, DEV, N, V);
        OK(segrl_logprobs_forward(XB, Y, &o, &ex, &out));
        segrl_view XR = segrl_view_2d(xr, SEGRL_DTYPE_F32, DEV, N, V);
        OK(segrl_logprobs_backward(XR, Y, vec(lse, SEGRL_DTYPE_F32, N), segrl_view_none(),
                                   vec(ga, SEGRL_DTYPE_F32, N), segrl_view_none(), &o, &ex,
                                   segrl_view_2d(dx, SEGRL_DTYPE_F32, DEV, N, V)));
        OK(segrl_logprobs_backward(XB, Y, vec(lse, SEGRL_DTYPE_F32, N), segrl_view_none(),
                                   vec(ga, SEGRL_DTYPE_F32, N), segrl_view_none(), &o, &ex, XB));
        int bad = 0;
        for (int i = 0; i < N * V; i++)
            bad += fabsf(from_bf16(xb[i]) - dx[i]) > 4e-3f * fabsf(dx[i]) + 1e-30f;
        CHECK(bad == 0, "bf16 in-place backward: %d values off", bad);
    }
    free(mem);
}

static void test_logprobs_bad(void) {
    const int64_t N = 3, V = 10;
    float x[30], lp[3] = {5, 5, 5}, H[3] = {6, 6, 6};
    int32_t y[3] = {1, 2, 3};
    for (int i = 0; i < 30; i++) x[i] = (float)(i % 7) * 0.1f;
    void *mem;
    segrl_exec ex = lp_exec(N, V, &mem);
    segrl_logprob_out out = {vec(lp, SEGRL_DTYPE_F32, N), vec(H, SEGRL_DTYPE_F32, N),
                             segrl_view_none(), segrl_view_none(), segrl_view_none()};
    segrl_view X = segrl_view_2d(x, SEGRL_DTYPE_F32, DEV, N, V), Y = vec(y, SEGRL_DTYPE_I32, N);
    y[1] = 10;
    BAD(segrl_logprobs_forward(X, Y, NULL, &ex, &out), SEGRL_ERR_INVALID, "targets: entry 1 is 10");
    y[1] = 2;
    BAD(segrl_logprobs_forward(X, vec(y, SEGRL_DTYPE_I32, 2), NULL, &ex, &out), SEGRL_ERR_INVALID,
        "targets: shape");
    BAD(segrl_logprobs_forward(segrl_view_2d(x, SEGRL_DTYPE_I32, DEV, N, V), Y, NULL, &ex, &out),
        SEGRL_ERR_INVALID, "logits: dtype");
    x[2 * V + 4] = NAN;
    BAD(segrl_logprobs_forward(X, Y, NULL, &ex, &out), SEGRL_ERR_INVALID,
        "logits: NaN at row 2, column 4");
    x[2 * V + 4] = INFINITY;
    BAD(segrl_logprobs_forward(X, Y, NULL, &ex, &out), SEGRL_ERR_INVALID, "logits: +Inf at row 2");
    x[2 * V + 4] = 0.0f;
    for (int j = 0; j < V; j++) x[V + j] = -INFINITY;
    BAD(segrl_logprobs_forward(X, Y, NULL, &ex, &out), SEGRL_ERR_INVALID,
        "every logit of row 1 is -Inf");
    int untouched = 1;
    for (int i = 0; i < 3; i++) untouched &= lp[i] == 5.0f && H[i] == 6.0f;
    CHECK(untouched, "fused log-probs: outputs written by failing calls");
    /* SEGRL_CHECKS_SHAPES: propagated, no error */
    segrl_exec fast = ex;
    fast.checks = SEGRL_CHECKS_SHAPES;
    OK(segrl_logprobs_forward(X, Y, NULL, &fast, &out));
    CHECK(isnan(lp[1]) || isinf(lp[1]), "CHECKS_SHAPES: an all -Inf row gives %g", lp[1]);
    for (int j = 0; j < V; j++) x[V + j] = 0.1f;
    segrl_logprob_opts o = segrl_logprob_opts_default();
    o.temperature = 0.0f;
    BAD(segrl_logprobs_forward(X, Y, &o, &ex, &out), SEGRL_ERR_INVALID, "opts->temperature");
    segrl_exec small = ex;
    small.workspace_bytes = 16;
    BAD(segrl_logprobs_forward(X, Y, NULL, &small, &out), SEGRL_ERR_WORKSPACE, "exec->workspace");
    float lse[3] = {0}, dx[30];
    y[0] = 11;
    BAD(segrl_logprobs_backward(X, Y, vec(lse, SEGRL_DTYPE_F32, N), segrl_view_none(),
                                vec(lp, SEGRL_DTYPE_F32, N), segrl_view_none(), NULL, &ex,
                                segrl_view_2d(dx, SEGRL_DTYPE_F32, DEV, N, V)),
        SEGRL_ERR_INVALID, "targets: entry 0");
    y[0] = 1;
    BAD(segrl_logprobs_backward(X, Y, vec(lse, SEGRL_DTYPE_F32, N), segrl_view_none(),
                                vec(lp, SEGRL_DTYPE_F32, N), vec(lp, SEGRL_DTYPE_F32, N), NULL, &ex,
                                segrl_view_2d(dx, SEGRL_DTYPE_F32, DEV, N, V)),
        SEGRL_ERR_INVALID, "entropy: NULL");
    free(mem);
}

// ----------------------------------------------------------------------------
// fused linear

static segrl_exec lin_exec(int64_t N, int64_t D, int64_t V, segrl_dtype dt,
                           const segrl_logprob_opts *o, int bwd, void **mem) {
    size_t n = 0;
    OK(segrl_linear_logprobs_workspace_size(DEV, N, D, V, dt, o, bwd, &n));
    *mem = h_alloc(n);
    segrl_exec e = {0};
    e.workspace = *mem;
    e.workspace_bytes = n;
    return e;
}

static void test_linear(void) {
    h_seed(61);
    enum { N = 10, D = 16, V = 50 };
    float Hm[N * D], W[V * D], Z[N * V];
    uint16_t Hb[N * D], Wb[V * D];
    int64_t y[N];
    for (int i = 0; i < N * D; i++) Hm[i] = from_bf16(to_bf16(h_normal())), Hb[i] = to_bf16(Hm[i]);
    for (int i = 0; i < V * D; i++)
        W[i] = from_bf16(to_bf16(0.5f * h_normal())), Wb[i] = to_bf16(W[i]);
    for (int i = 0; i < N; i++) y[i] = h_int(0, V - 1);
    y[4] = -1;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < V; j++) {
            double s = 0;
            for (int k = 0; k < D; k++) s += (double)Hm[i * D + k] * W[j * D + k];
            Z[i * V + j] = (float)s;
        }
    float ga[N], gb[N];
    for (int i = 0; i < N; i++) ga[i] = h_normal(), gb[i] = h_normal();
    /* the composition: logits, fused log-probs, their backward, then dH = dZ W, dW = dZ^T H */
    void *lmem;
    segrl_exec lex = lp_exec(N, V, &lmem);
    float lp0[N], H0[N], lse0[N], pt0[N], q0[N], dZ[N * V];
    segrl_logprob_opts o = segrl_logprob_opts_default();
    o.temperature = 0.9f;
    segrl_logprob_out o0 = {vec(lp0, SEGRL_DTYPE_F32, N), vec(H0, SEGRL_DTYPE_F32, N),
                            vec(lse0, SEGRL_DTYPE_F32, N), vec(pt0, SEGRL_DTYPE_F32, N),
                            vec(q0, SEGRL_DTYPE_F32, N)};
    segrl_view Y = vec(y, SEGRL_DTYPE_I64, N);
    OK(segrl_logprobs_forward(segrl_view_2d(Z, SEGRL_DTYPE_F32, DEV, N, V), Y, &o, &lex, &o0));
    OK(segrl_logprobs_backward(segrl_view_2d(Z, SEGRL_DTYPE_F32, DEV, N, V), Y,
                               vec(lse0, SEGRL_DTYPE_F32, N), vec(H0, SEGRL_DTYPE_F32, N),
                               vec(ga, SEGRL_DTYPE_F32, N), vec(gb, SEGRL_DTYPE_F32, N), &o, &lex,
                               segrl_view_2d(dZ, SEGRL_DTYPE_F32, DEV, N, V)));
    double wdH[N * D], wdW[V * D], wl[N], wh[N], wlse[N], wpt[N], wq[N];
    for (int i = 0; i < N; i++) wl[i] = lp0[i], wh[i] = H0[i], wlse[i] = lse0[i], wpt[i] = pt0[i], wq[i] = q0[i];
    for (int i = 0; i < N; i++)
        for (int k = 0; k < D; k++) {
            double s = 0;
            for (int j = 0; j < V; j++) s += (double)dZ[i * V + j] * W[j * D + k];
            wdH[i * D + k] = s;
        }
    for (int j = 0; j < V; j++)
        for (int k = 0; k < D; k++) {
            double s = 0;
            for (int i = 0; i < N; i++) s += (double)dZ[i * V + j] * Hm[i * D + k];
            wdW[j * D + k] = s;
        }
    const int64_t chunks[3][2] = {{0, 0}, {3, 7}, {4, 16}};
    for (int dti = 0; dti < 2; dti++)
        for (int ci = 0; ci < 3; ci++) {
            const segrl_dtype dt = dti ? SEGRL_DTYPE_BF16 : SEGRL_DTYPE_F32;
            segrl_view HV = segrl_view_2d(dti ? (void *)Hb : (void *)Hm, dt, DEV, N, D);
            segrl_view WV = segrl_view_2d(dti ? (void *)Wb : (void *)W, dt, DEV, V, D);
            o.token_chunk = chunks[ci][0], o.vocab_chunk = chunks[ci][1];
            o.accumulate = 0;
            void *mem;
            segrl_exec ex = lin_exec(N, D, V, dt, &o, 0, &mem);
            float lp[N], H[N], lse[N], pt[N], q[N];
            segrl_logprob_out out = {vec(lp, SEGRL_DTYPE_F32, N), vec(H, SEGRL_DTYPE_F32, N),
                                     vec(lse, SEGRL_DTYPE_F32, N), vec(pt, SEGRL_DTYPE_F32, N),
                                     vec(q, SEGRL_DTYPE_F32, N)};
            OK(segrl_linear_logprobs_forward(HV, WV, Y, &o, &ex, &out));
            char name[96];
            snprintf(name, sizeof name, "fused linear %s chunks %lld x %lld: logp",
                     segrl_dtype_name(dt), (long long)o.token_chunk, (long long)o.vocab_chunk);
            h_close_f(name, lp, wl, N, 1e-5, 1e-5);
            h_close_f("fused linear entropy", H, wh, N, 1e-5, 1e-5);
            h_close_f("fused linear lse", lse, wlse, N, 1e-5, 1e-5);
            h_close_f("fused linear p_target", pt, wpt, N, 1e-6, 1e-5);
            h_close_f("fused linear sum_p2", q, wq, N, 1e-6, 1e-5);
            free(mem);
            ex = lin_exec(N, D, V, dt, &o, 1, &mem);
            float dH[N * D], dW[V * D];
            OK(segrl_linear_logprobs_backward(HV, WV, Y, vec(lse, SEGRL_DTYPE_F32, N),
                                              vec(H, SEGRL_DTYPE_F32, N), vec(ga, SEGRL_DTYPE_F32, N),
                                              vec(gb, SEGRL_DTYPE_F32, N), &o, &ex,
                                              segrl_view_2d(dH, SEGRL_DTYPE_F32, DEV, N, D),
                                              segrl_view_2d(dW, SEGRL_DTYPE_F32, DEV, V, D)));
            h_close_f("fused linear dH == composition", dH, wdH, N * D, 1e-5, 1e-4);
            h_close_f("fused linear dW == composition", dW, wdW, V * D, 1e-5, 1e-4);
            /* accumulate: a second call adds the same gradient */
            o.accumulate = 1;
            OK(segrl_linear_logprobs_backward(HV, WV, Y, vec(lse, SEGRL_DTYPE_F32, N),
                                              vec(H, SEGRL_DTYPE_F32, N), vec(ga, SEGRL_DTYPE_F32, N),
                                              vec(gb, SEGRL_DTYPE_F32, N), &o, &ex,
                                              segrl_view_2d(dH, SEGRL_DTYPE_F32, DEV, N, D),
                                              segrl_view_2d(dW, SEGRL_DTYPE_F32, DEV, V, D)));
            double w2[V * D];
            for (int i = 0; i < N * D; i++) w2[i] = 2 * wdH[i];
            h_close_f("accumulated dH", dH, w2, N * D, 2e-5, 1e-4);
            for (int i = 0; i < V * D; i++) w2[i] = 2 * wdW[i];
            h_close_f("accumulated dW", dW, w2, V * D, 2e-5, 1e-4);
            free(mem);
        }
    /* finite differences of sum a_i logp_i + b_i H_i in double through H and W (a few entries) */
    {
        o.token_chunk = 3, o.vocab_chunk = 7, o.accumulate = 0;
        void *mem;
        segrl_exec ex = lin_exec(N, D, V, SEGRL_DTYPE_F32, &o, 1, &mem);
        float dH[N * D], dW[V * D];
        OK(segrl_linear_logprobs_backward(segrl_view_2d(Hm, SEGRL_DTYPE_F32, DEV, N, D),
                                          segrl_view_2d(W, SEGRL_DTYPE_F32, DEV, V, D), Y,
                                          vec(lse0, SEGRL_DTYPE_F32, N), vec(H0, SEGRL_DTYPE_F32, N),
                                          vec(ga, SEGRL_DTYPE_F32, N), vec(gb, SEGRL_DTYPE_F32, N),
                                          &o, &ex, segrl_view_2d(dH, SEGRL_DTYPE_F32, DEV, N, D),
                                          segrl_view_2d(dW, SEGRL_DTYPE_F32, DEV, V, D)));
        static double Hd[N * D], Wd[V * D], Zd[N * V];
        double a[N], b[N];
        for (int i = 0; i < N; i++) a[i] = ga[i], b[i] = gb[i];
        for (int i = 0; i < N * D; i++) Hd[i] = Hm[i];
        for (int i = 0; i < V * D; i++) Wd[i] = W[i];
        int bad = 0, tried = 0;
        for (int trial = 0; trial < 24; trial++) {
            const int onW = trial % 2;
            const int idx = (int)h_int(0, onW ? V * D - 1 : N * D - 1);
            double *p = onW ? &Wd[idx] : &Hd[idx];
            double F[2];
            for (int s = 0; s < 2; s++) {
                const double keep = *p;
                *p = keep + (s ? -1e-6 : 1e-6);
                for (int i = 0; i < N; i++)
                    for (int j = 0; j < V; j++) {
                        double acc = 0;
                        for (int k = 0; k < D; k++) acc += Hd[i * D + k] * Wd[j * D + k];
                        Zd[i * V + j] = acc;
                    }
                F[s] = ref_obj(Zd, N, V, y, 0.9, a, b);
                *p = keep;
            }
            const double fd = (F[0] - F[1]) / 2e-6, got = onW ? dW[idx] : dH[idx];
            tried++;
            if (fabs(got - fd) > 1e-4 + 1e-3 * fabs(fd)) {
                bad++;
                printf("  fd %s[%d]: got %.9g want %.9g\n", onW ? "dW" : "dH", idx, got, fd);
            }
        }
        CHECK(bad == 0, "fused linear finite differences: %d of %d off", bad, tried);
        /* bad input */
        float lp[N];
        segrl_logprob_out out = {vec(lp, SEGRL_DTYPE_F32, N), segrl_view_none(), segrl_view_none(),
                                 segrl_view_none(), segrl_view_none()};
        BAD(segrl_linear_logprobs_forward(segrl_view_2d(Hm, SEGRL_DTYPE_F32, DEV, N, D),
                                          segrl_view_2d(W, SEGRL_DTYPE_F32, DEV, V, D - 1), Y, &o,
                                          &ex, &out),
            SEGRL_ERR_INVALID, "weight: shape");
        BAD(segrl_linear_logprobs_forward(segrl_view_2d(Hm, SEGRL_DTYPE_F32, DEV, N, D),
                                          segrl_view_2d(Wb, SEGRL_DTYPE_BF16, DEV, V, D), Y, &o,
                                          &ex, &out),
            SEGRL_ERR_INVALID, "weight: dtype bf16 but hidden is f32");
        const int64_t keep = y[2];
        y[2] = V;
        BAD(segrl_linear_logprobs_forward(segrl_view_2d(Hm, SEGRL_DTYPE_F32, DEV, N, D),
                                          segrl_view_2d(W, SEGRL_DTYPE_F32, DEV, V, D), Y, &o,
                                          &ex, &out),
            SEGRL_ERR_INVALID, "targets: entry 2");
        y[2] = keep;
        const float kh = Hm[3 * D + 1];
        Hm[3 * D + 1] = NAN;
        for (int i = 0; i < N; i++) lp[i] = 42.0f;
        BAD(segrl_linear_logprobs_forward(segrl_view_2d(Hm, SEGRL_DTYPE_F32, DEV, N, D),
                                          segrl_view_2d(W, SEGRL_DTYPE_F32, DEV, V, D), Y, &o,
                                          &ex, &out),
            SEGRL_ERR_INVALID, "hidden: row 3");
        int untouched = 1;
        for (int i = 0; i < N; i++) untouched &= lp[i] == 42.0f;
        CHECK(untouched, "fused linear: outputs written by a failing call");
        Hm[3 * D + 1] = kh;
        segrl_exec small = ex;
        small.workspace_bytes = 100;
        BAD(segrl_linear_logprobs_forward(segrl_view_2d(Hm, SEGRL_DTYPE_F32, DEV, N, D),
                                          segrl_view_2d(W, SEGRL_DTYPE_F32, DEV, V, D), Y, &o,
                                          &small, &out),
            SEGRL_ERR_WORKSPACE, "exec->workspace");
        free(mem);
    }
    /* the working memory is bounded by the chunks, not N x V */
    {
        size_t ws = 0;
        segrl_logprob_opts d = segrl_logprob_opts_default();
        OK(segrl_linear_logprobs_workspace_size(DEV, 16384, 4096, 151936, SEGRL_DTYPE_BF16, &d, 1, &ws));
        const double full = 16384.0 * 151936.0 * 4.0;
        CHECK(ws < full / 16, "fused linear workspace %zu bytes, N*V*4 = %.0f", ws, full);
    }
    free(lmem);
}

int main(void) {
    test_policy_gradcheck();
    test_policy_known();
    test_policy_agg_hand();
    test_policy_microbatch_packed();
    test_policy_dtypes();
    test_policy_bad();
    test_logprobs_values();
    test_logprobs_grad();
    test_logprobs_bad();
    test_linear();
    return h_finish();
}
