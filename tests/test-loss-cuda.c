/* test-loss-cuda.c — the loss area on CUDA against the same calls on the CPU.
 *
 *   policy loss: every mode x aggregation with KL / entropy / value terms, padded (u8 mask and a
 *     probability mask) and packed (i64 offsets), bf16 inputs: loss, stats and all gradients;
 *     bad input on the device (NaN at a valid token, zero valid tokens): status, outputs untouched.
 *   fused log-probs: f32 / bf16 / f16 logits (V = 5003 and 32000, -Inf columns, a negative
 *     target, temperature), forward outputs and the backward (also in place for bf16);
 *     target >= V and NaN logits: status, outputs untouched.
 *   fused linear: f32 and bf16, chunk sizes that do not divide N or V, forward and backward
 *     (dH, dW, accumulate) against the CPU path.
 * Seeded random inputs. Without a CUDA device it prints one line and exits 77 (skipped). */
#include "harness.h"
#include "cuda_harness.h"

#include <cuda_runtime_api.h>
#include <segrl/segrl.h>

#define OK(call)                                                                                  \
    do {                                                                                          \
        segrl_status st_ = (call);                                                                \
        CHECK(st_ == SEGRL_OK, "%s -> %s: %s", #call, segrl_status_str(st_), segrl_last_error()); \
    } while (0)

static uint16_t to_bf16(float f) {
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

/* |a - b| <= atol + rtol |b| for float arrays (b: the CPU) */
static void close_ff(const char *what, const float *got, const float *want, int64_t n, double atol,
                     double rtol) {
    double *w = h_alloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) w[i] = want[i];
    h_close_f(what, got, w, n, atol, rtol);
    free(w);
}

/* the five per-row outputs, k-th at base + k * N */
static segrl_logprob_out outs_at(float *base, int64_t N, segrl_device d) {
    segrl_logprob_out o;
    o.logp = segrl_view_1d(base, SEGRL_DTYPE_F32, d, N);
    o.entropy = segrl_view_1d(base + N, SEGRL_DTYPE_F32, d, N);
    o.lse = segrl_view_1d(base + 2 * N, SEGRL_DTYPE_F32, d, N);
    o.p_target = segrl_view_1d(base + 3 * N, SEGRL_DTYPE_F32, d, N);
    o.sum_p2 = segrl_view_1d(base + 4 * N, SEGRL_DTYPE_F32, d, N);
    return o;
}

/* a workspace on each side */
static void *ws_alloc(segrl_device d, size_t n) { return d.type == SEGRL_DEVICE_CUDA ? d_alloc(n) : h_alloc(n); }
static void ws_free(segrl_device d, void *p) {
    if (d.type == SEGRL_DEVICE_CUDA) d_free(p);
    else free(p);
}

// ----------------------------------------------------------------------------
// policy loss

typedef struct pcase {
    int packed;
    int64_t B, T, N; /* padded: N = B * T; packed: offsets */
    int64_t off[65];
    segrl_dtype dt;
    void *lp, *old, *A, *ref, *ent, *v, *ov, *R; /* host, dtype dt, N entries */
    uint8_t *m, *pm;
} pcase;

static float h_get(segrl_dtype dt, const void *p, int64_t i) {
    return dt == SEGRL_DTYPE_F32 ? ((const float *)p)[i] : from_bf16(((const uint16_t *)p)[i]);
}

static void h_put(segrl_dtype dt, void *p, int64_t i, float v) {
    if (dt == SEGRL_DTYPE_F32) ((float *)p)[i] = v;
    else ((uint16_t *)p)[i] = to_bf16(v);
}

static void *rand_tensor(segrl_dtype dt, int64_t n, float mean, float sd) {
    void *p = h_alloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) {
        const float v = mean + sd * h_normal();
        if (dt == SEGRL_DTYPE_F32) ((float *)p)[i] = v;
        else ((uint16_t *)p)[i] = to_bf16(v);
    }
    return p;
}

static void pcase_make(pcase *c, int packed, int64_t B, int64_t T, segrl_dtype dt) {
    memset(c, 0, sizeof *c);
    c->packed = packed, c->B = B, c->T = T, c->dt = dt;
    if (packed) {
        c->off[0] = 0;
        for (int64_t b = 0; b < B; b++) c->off[b + 1] = c->off[b] + (b == 1 ? 0 : h_int(1, T));
        c->N = c->off[B];
    } else {
        c->N = B * T;
    }
    const int64_t N = c->N;
    c->lp = rand_tensor(dt, N, -1.5f, 0.8f);
    c->old = h_alloc((size_t)N * 4);
    for (int64_t i = 0; i < N; i++) {
        if (dt == SEGRL_DTYPE_F32) ((float *)c->old)[i] = ((float *)c->lp)[i] + 0.3f * h_normal();
        else ((uint16_t *)c->old)[i] = to_bf16(from_bf16(((uint16_t *)c->lp)[i]) + 0.3f * h_normal());
    }
    c->A = rand_tensor(dt, N, 0.0f, 1.0f);
    c->ref = rand_tensor(dt, N, -1.5f, 0.8f);
    c->ent = rand_tensor(dt, N, 1.0f, 0.3f);
    c->v = rand_tensor(dt, N, 0.0f, 1.0f);
    c->ov = rand_tensor(dt, N, 0.0f, 1.0f);
    c->R = rand_tensor(dt, N, 0.0f, 1.0f);
    /* keep every token's ratio and value step away from the clip boundaries the cases use
     * (1-0.2, 1+0.2, 1+0.28, dual clip 3; value clip 0.2): a one-ulp difference between the CPU's
     * and the GPU's expf must not flip a clip decision and fail the comparison */
    for (int64_t i = 0; i < N; i++) {
        static const float bounds[] = {0.8f, 1.2f, 1.28f, 3.0f};
        for (int tries = 0; tries < 8; tries++) {
            const float r = expf(h_get(dt, c->lp, i) - h_get(dt, c->old, i));
            int near = 0;
            for (int k = 0; k < 4; k++) near |= fabsf(r - bounds[k]) < 2e-3f * bounds[k];
            if (!near) break;
            h_put(dt, c->old, i, h_get(dt, c->old, i) + 0.02f);
        }
        for (int tries = 0; tries < 8; tries++) {
            if (fabsf(fabsf(h_get(dt, c->v, i) - h_get(dt, c->ov, i)) - 0.2f) >= 2e-3f) break;
            h_put(dt, c->ov, i, h_get(dt, c->ov, i) + 0.02f);
        }
    }
    c->m = h_alloc((size_t)N), c->pm = h_alloc((size_t)N);
    for (int64_t i = 0; i < N; i++) c->m[i] = h_unif() < 0.85, c->pm[i] = h_unif() < 0.9;
    if (!packed && B > 2)
        for (int64_t t = 0; t < T; t++) c->m[2 * T + t] = 0; /* an all-masked row */
}

static void pcase_free(pcase *c) {
    free(c->lp), free(c->old), free(c->A), free(c->ref), free(c->ent), free(c->v), free(c->ov);
    free(c->R), free(c->m), free(c->pm);
}

typedef struct pside {
    segrl_device d;
    void *buf[8];
    uint8_t *m, *pm;
    int64_t *off;
    segrl_policy_loss_inputs in;
    segrl_layout lay;
} pside;

static segrl_view tokv(const pcase *c, void *p, segrl_dtype dt, segrl_device d) {
    return c->packed ? segrl_view_1d(p, dt, d, c->N) : segrl_view_2d(p, dt, d, c->B, c->T);
}

static void pside_make(pside *s, const pcase *c, segrl_device d, int use_pm) {
    memset(s, 0, sizeof *s);
    s->d = d;
    void *src[8] = {c->lp, c->old, c->A, c->ref, c->ent, c->v, c->ov, c->R};
    const size_t es = c->dt == SEGRL_DTYPE_F32 ? 4 : 2, n = (size_t)c->N;
    const int cuda = d.type == SEGRL_DEVICE_CUDA;
    for (int k = 0; k < 8; k++) s->buf[k] = cuda ? d_up(src[k], n * es) : src[k];
    s->m = cuda ? d_up(c->m, n) : c->m;
    s->pm = cuda ? d_up(c->pm, n) : c->pm;
    segrl_view *vs[8] = {&s->in.logp, &s->in.old_logp, &s->in.advantages, &s->in.ref_logp,
                         &s->in.entropy, &s->in.values, &s->in.old_values, &s->in.returns};
    for (int k = 0; k < 8; k++) *vs[k] = tokv(c, s->buf[k], c->dt, d);
    s->in.mask = tokv(c, s->m, SEGRL_DTYPE_U8, d);
    if (use_pm) s->in.prob_mask = tokv(c, s->pm, SEGRL_DTYPE_U8, d);
    s->lay = segrl_layout_padded();
    if (c->packed) {
        s->off = cuda ? d_up(c->off, (size_t)(c->B + 1) * 8) : (int64_t *)c->off;
        s->lay = segrl_layout_packed(segrl_view_1d(s->off, SEGRL_DTYPE_I64, d, c->B + 1));
    }
}

static void pside_free(pside *s) {
    if (s->d.type != SEGRL_DEVICE_CUDA) return;
    for (int k = 0; k < 8; k++) d_free(s->buf[k]);
    d_free(s->m), d_free(s->pm);
    if (s->off) d_free(s->off);
}

/* loss, stats and the three gradients on one side (host copies out) */
static void pl_run(const pcase *c, pside *s, const segrl_policy_loss_opts *o, float *loss,
                   segrl_policy_loss_stats *st, float *g) {
    const int cuda = s->d.type == SEGRL_DEVICE_CUDA;
    size_t wn = 0;
    OK(segrl_policy_loss_workspace_size(s->d, c->B, c->N, &wn));
    segrl_exec ex = {0};
    ex.workspace = ws_alloc(s->d, wn);
    ex.workspace_bytes = wn;
    const size_t n = (size_t)c->N;
    float *dl = cuda ? d_alloc(4) : loss;
    OK(segrl_policy_loss_forward(&s->lay, &s->in, o, &ex, segrl_view_1d(dl, SEGRL_DTYPE_F32, s->d, 1), st));
    float gl = 0.5f, *dgl = cuda ? d_up(&gl, 4) : &gl;
    float *gr = cuda ? d_alloc(3 * n * 4) : g;
    OK(segrl_policy_loss_backward(&s->lay, &s->in, o, segrl_view_1d(dgl, SEGRL_DTYPE_F32, s->d, 1),
                                  &ex, tokv(c, gr, SEGRL_DTYPE_F32, s->d),
                                  tokv(c, gr + n, SEGRL_DTYPE_F32, s->d),
                                  tokv(c, gr + 2 * n, SEGRL_DTYPE_F32, s->d)));
    if (cuda) {
        d_down(loss, dl, 4);
        d_down(g, gr, 3 * n * 4);
        d_free(dl), d_free(dgl), d_free(gr);
    }
    ws_free(s->d, ex.workspace);
}

static void test_policy(void) {
    const segrl_device CPUd = CPU, GPUd = GPU;
    h_seed(101);
    for (int layout = 0; layout < 3; layout++) {
        pcase c;
        const segrl_dtype dt = layout == 2 ? SEGRL_DTYPE_BF16 : SEGRL_DTYPE_F32;
        if (layout == 1) pcase_make(&c, 1, 40, 300, dt);
        else pcase_make(&c, 0, 33, 257, dt);
        pside cs, gs;
        pside_make(&cs, &c, CPUd, layout != 1);
        pside_make(&gs, &c, GPUd, layout != 1);
        for (int mode = 0; mode < 4; mode++)
            for (int agg = 0; agg < 4; agg++) {
                segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
                o.mode = mode, o.agg = agg;
                o.clip_high = 0.28f;
                o.clip_c = mode == SEGRL_PG_PPO ? 3.0f : 0.0f;
                o.kl_type = 1 + (mode + agg) % 4, o.kl_coef = 0.05f;
                o.entropy_coef = 0.01f, o.value_coef = 0.5f, o.value_clip = 0.2f;
                float lc, lg;
                segrl_policy_loss_stats sc, sgs;
                const size_t n = (size_t)c.N;
                float *gc = h_alloc(3 * n * 4), *gg = h_alloc(3 * n * 4);
                pl_run(&c, &cs, &o, &lc, &sc, gc);
                pl_run(&c, &gs, &o, &lg, &sgs, gg);
                char what[96];
                snprintf(what, sizeof what, "layout %d mode %d agg %d", layout, mode, agg);
                CHECK(fabsf(lc - lg) <= 1e-5f * (1 + fabsf(lc)), "%s: loss cpu %.9g cuda %.9g", what, lc, lg);
                CHECK(fabs(sc.clip_frac_high - sgs.clip_frac_high) < 1e-12 &&
                          fabs(sc.clip_frac_low - sgs.clip_frac_low) < 1e-12 &&
                          sc.num_tokens == sgs.num_tokens && sc.num_seqs == sgs.num_seqs &&
                          fabs(sc.ratio_max - sgs.ratio_max) <= 1e-6 * sc.ratio_max &&
                          fabs(sc.ratio_mean - sgs.ratio_mean) <= 1e-6 * (1 + sc.ratio_mean) &&
                          fabs(sc.kl_mean - sgs.kl_mean) <= 1e-6 * (1 + fabs(sc.kl_mean)),
                      "%s: stats differ", what);
                close_ff(what, gg, gc, 3 * (int64_t)n, 1e-7, 1e-5);
                free(gc), free(gg);
            }
        pside_free(&gs);
        pcase_free(&c);
    }
    /* bad input on the device: NaN at a valid token; zero valid tokens; outputs untouched */
    {
        pcase c;
        pcase_make(&c, 0, 4, 16, SEGRL_DTYPE_F32);
        int valid = 0;
        while (!c.m[valid]) valid++;
        ((float *)c.A)[valid] = NAN;
        pside gs;
        pside_make(&gs, &c, GPU, 0);
        size_t wn = 0;
        OK(segrl_policy_loss_workspace_size(GPU, c.B, c.N, &wn));
        segrl_exec ex = {0};
        ex.workspace = d_alloc(wn), ex.workspace_bytes = wn;
        float sentinel = 321.0f, got = 0;
        float *dl = d_up(&sentinel, 4);
        segrl_status st = segrl_policy_loss_forward(NULL, &gs.in, NULL, &ex,
                                                    segrl_view_1d(dl, SEGRL_DTYPE_F32, GPU, 1), NULL);
        CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "in->advantages"),
              "cuda NaN advantage: %s (%s)", segrl_status_str(st), segrl_last_error());
        memset(c.m, 0, (size_t)c.N);
        d_put(gs.m, c.m, (size_t)c.N);
        st = segrl_policy_loss_forward(NULL, &gs.in, NULL, &ex, segrl_view_1d(dl, SEGRL_DTYPE_F32, GPU, 1), NULL);
        CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "no valid tokens"),
              "cuda zero valid tokens: %s (%s)", segrl_status_str(st), segrl_last_error());
        d_down(&got, dl, 4);
        CHECK(got == sentinel, "cuda: out_loss written by failing calls (%g)", got);
        d_free(dl), d_free(ex.workspace);
        pside_free(&gs);
        pcase_free(&c);
    }
}

// ----------------------------------------------------------------------------
// fused log-probs

static void test_logprobs(void) {
    h_seed(202);
    const int64_t Ns[2] = {37, 9}, Vs[2] = {5003, 32000};
    for (int si = 0; si < 2; si++)
        for (int dti = 0; dti < 3; dti++) {
            const int64_t N = Ns[si], V = Vs[si];
            const segrl_dtype dt = dti == 0 ? SEGRL_DTYPE_F32 : dti == 1 ? SEGRL_DTYPE_BF16 : SEGRL_DTYPE_F16;
            const size_t es = dt == SEGRL_DTYPE_F32 ? 4 : 2, nb = (size_t)N * V * es;
            void *x = h_alloc(nb);
            for (int64_t i = 0; i < N * V; i++) {
                float v = 4.0f * h_normal();
                if (i % 997 == 3) v = -INFINITY;
                if (dt == SEGRL_DTYPE_F32) ((float *)x)[i] = v;
                else if (dt == SEGRL_DTYPE_BF16) ((uint16_t *)x)[i] = to_bf16(v);
                else {
                    _Float16 hv = (_Float16)v;
                    memcpy((uint16_t *)x + i, &hv, 2);
                }
            }
            int64_t *y = h_alloc((size_t)N * 8);
            for (int64_t i = 0; i < N; i++) y[i] = h_int(0, V - 1);
            y[1] = -1;
            segrl_logprob_opts o = segrl_logprob_opts_default();
            o.temperature = si ? 0.8f : 1.0f;
            float *hc = h_alloc((size_t)N * 5 * 4), *hg = h_alloc((size_t)N * 5 * 4);
            float *ga = h_alloc((size_t)N * 4), *gb = h_alloc((size_t)N * 4);
            for (int64_t i = 0; i < N; i++) ga[i] = h_normal(), gb[i] = h_normal();
            float *dxc = h_alloc((size_t)N * V * 4), *dxg = h_alloc((size_t)N * V * 4);
            for (int side = 0; side < 2; side++) {
                const segrl_device d = side ? GPU : CPU;
                void *X = side ? d_up(x, nb) : x;
                int64_t *Y = side ? d_up(y, (size_t)N * 8) : y;
                float *outs = side ? d_alloc((size_t)N * 5 * 4) : hc;
                float *G = side ? d_up(ga, (size_t)N * 4) : ga, *Hh = side ? d_up(gb, (size_t)N * 4) : gb;
                float *DX = side ? d_alloc((size_t)N * V * 4) : dxc;
                size_t wn;
                OK(segrl_logprobs_workspace_size(d, N, V, &wn));
                segrl_exec ex = {0};
                ex.workspace = ws_alloc(d, wn), ex.workspace_bytes = wn;
                segrl_logprob_out out = outs_at(outs, N, d);
                segrl_view XV = segrl_view_2d(X, dt, d, N, V), YV = segrl_view_1d(Y, SEGRL_DTYPE_I64, d, N);
                OK(segrl_logprobs_forward(XV, YV, &o, &ex, &out));
                OK(segrl_logprobs_backward(XV, YV, out.lse, out.entropy,
                                           segrl_view_1d(G, SEGRL_DTYPE_F32, d, N),
                                           segrl_view_1d(Hh, SEGRL_DTYPE_F32, d, N), &o, &ex,
                                           segrl_view_2d(DX, SEGRL_DTYPE_F32, d, N, V)));
                if (side) {
                    d_down(hg, outs, (size_t)N * 5 * 4);
                    d_down(dxg, DX, (size_t)N * V * 4);
                    d_free(X), d_free(Y), d_free(outs), d_free(G), d_free(Hh), d_free(DX);
                }
                ws_free(d, ex.workspace);
            }
            char what[64];
            snprintf(what, sizeof what, "log-probs %s V=%lld", segrl_dtype_name(dt), (long long)V);
            close_ff(what, hg, hc, N * 5, 2e-5, 2e-5);
            snprintf(what, sizeof what, "dlogits %s V=%lld", segrl_dtype_name(dt), (long long)V);
            close_ff(what, dxg, dxc, N * V, 1e-7, 1e-4);
            free(x), free(y), free(hc), free(hg), free(ga), free(gb), free(dxc), free(dxg);
        }
    /* bad input: target >= V, NaN logit; outputs untouched */
    {
        const int64_t N = 4, V = 100;
        float x[400];
        int32_t y[4] = {1, 2, 3, 4};
        for (int i = 0; i < 400; i++) x[i] = 0.01f * (float)i;
        float *X = d_up(x, sizeof x);
        int32_t *Y = d_up(y, sizeof y);
        float sent[4] = {7, 7, 7, 7}, back[4];
        float *LP = d_up(sent, sizeof sent);
        size_t wn;
        OK(segrl_logprobs_workspace_size(GPU, N, V, &wn));
        segrl_exec ex = {0};
        ex.workspace = d_alloc(wn), ex.workspace_bytes = wn;
        segrl_logprob_out out = {segrl_view_1d(LP, SEGRL_DTYPE_F32, GPU, N), segrl_view_none(),
                                 segrl_view_none(), segrl_view_none(), segrl_view_none()};
        y[2] = 100;
        d_put(Y, y, sizeof y);
        segrl_status st = segrl_logprobs_forward(segrl_view_2d(X, SEGRL_DTYPE_F32, GPU, N, V),
                                                 segrl_view_1d(Y, SEGRL_DTYPE_I32, GPU, N), NULL, &ex, &out);
        CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "targets: entry 2"),
              "cuda target >= V: %s (%s)", segrl_status_str(st), segrl_last_error());
        y[2] = 3;
        d_put(Y, y, sizeof y);
        x[250] = NAN;
        d_put(X, x, sizeof x);
        st = segrl_logprobs_forward(segrl_view_2d(X, SEGRL_DTYPE_F32, GPU, N, V),
                                    segrl_view_1d(Y, SEGRL_DTYPE_I32, GPU, N), NULL, &ex, &out);
        CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "logits: row 2"),
              "cuda NaN logit: %s (%s)", segrl_status_str(st), segrl_last_error());
        d_down(back, LP, sizeof back);
        CHECK(!memcmp(back, sent, sizeof sent), "cuda log-probs: outputs written by failing calls");
        d_free(X), d_free(Y), d_free(LP), d_free(ex.workspace);
    }
}

// ----------------------------------------------------------------------------
// fused linear

static void test_linear(void) {
    h_seed(303);
    const int64_t N = 70, D = 48, V = 1000;
    for (int dti = 0; dti < 2; dti++) {
        const segrl_dtype dt = dti ? SEGRL_DTYPE_BF16 : SEGRL_DTYPE_F32;
        const size_t es = dti ? 2 : 4;
        void *H = h_alloc((size_t)N * D * es), *W = h_alloc((size_t)V * D * es);
        for (int64_t i = 0; i < N * D; i++) {
            const float v = h_normal();
            if (dti) ((uint16_t *)H)[i] = to_bf16(v);
            else ((float *)H)[i] = v;
        }
        for (int64_t i = 0; i < V * D; i++) {
            const float v = 0.3f * h_normal();
            if (dti) ((uint16_t *)W)[i] = to_bf16(v);
            else ((float *)W)[i] = v;
        }
        int64_t y[70];
        for (int i = 0; i < N; i++) y[i] = h_int(0, V - 1);
        float ga[70], gb[70];
        for (int i = 0; i < N; i++) ga[i] = h_normal(), gb[i] = h_normal();
        segrl_logprob_opts o = segrl_logprob_opts_default();
        o.token_chunk = 32, o.vocab_chunk = 300;
        float *outc = h_alloc(N * 5 * 4), *outg = h_alloc(N * 5 * 4);
        float *dHc = h_alloc(N * D * 4), *dHg = h_alloc(N * D * 4);
        float *dWc = h_alloc(V * D * 4), *dWg = h_alloc(V * D * 4);
        for (int side = 0; side < 2; side++) {
            const segrl_device d = side ? GPU : CPU;
            void *Hs = side ? d_up(H, (size_t)N * D * es) : H, *Ws = side ? d_up(W, (size_t)V * D * es) : W;
            int64_t *Y = side ? d_up(y, sizeof y) : y;
            float *outs = side ? d_alloc(N * 5 * 4) : outc;
            float *G = side ? d_up(ga, sizeof ga) : ga, *Hh = side ? d_up(gb, sizeof gb) : gb;
            float *dH = side ? d_alloc(N * D * 4) : dHc, *dW = side ? d_alloc(V * D * 4) : dWc;
            size_t wf, wb;
            OK(segrl_linear_logprobs_workspace_size(d, N, D, V, dt, &o, 0, &wf));
            OK(segrl_linear_logprobs_workspace_size(d, N, D, V, dt, &o, 1, &wb));
            segrl_exec ex = {0};
            ex.workspace_bytes = wf > wb ? wf : wb;
            ex.workspace = ws_alloc(d, ex.workspace_bytes);
            segrl_logprob_out out = outs_at(outs, N, d);
            segrl_view HV = segrl_view_2d(Hs, dt, d, N, D), WV = segrl_view_2d(Ws, dt, d, V, D);
            segrl_view YV = segrl_view_1d(Y, SEGRL_DTYPE_I64, d, N);
            segrl_status st = segrl_linear_logprobs_forward(HV, WV, YV, &o, &ex, &out);
            if (side && st == SEGRL_ERR_UNSUPPORTED) {
                printf("fused linear on CUDA unavailable: %s\n", segrl_last_error());
                CHECK(strstr(segrl_last_error(), "libcublas") != NULL, "unsupported without naming libcublas");
                return;
            }
            CHECK(st == SEGRL_OK, "linear forward: %s", segrl_last_error());
            o.accumulate = 0;
            OK(segrl_linear_logprobs_backward(HV, WV, YV, out.lse, out.entropy,
                                              segrl_view_1d(G, SEGRL_DTYPE_F32, d, N),
                                              segrl_view_1d(Hh, SEGRL_DTYPE_F32, d, N), &o, &ex,
                                              segrl_view_2d(dH, SEGRL_DTYPE_F32, d, N, D),
                                              segrl_view_2d(dW, SEGRL_DTYPE_F32, d, V, D)));
            o.accumulate = 1; /* twice the gradient */
            OK(segrl_linear_logprobs_backward(HV, WV, YV, out.lse, out.entropy,
                                              segrl_view_1d(G, SEGRL_DTYPE_F32, d, N),
                                              segrl_view_1d(Hh, SEGRL_DTYPE_F32, d, N), &o, &ex,
                                              segrl_view_2d(dH, SEGRL_DTYPE_F32, d, N, D),
                                              segrl_view_2d(dW, SEGRL_DTYPE_F32, d, V, D)));
            o.accumulate = 0;
            if (side) {
                d_down(outg, outs, N * 5 * 4);
                d_down(dHg, dH, N * D * 4);
                d_down(dWg, dW, V * D * 4);
                d_free(Hs), d_free(Ws), d_free(Y), d_free(outs), d_free(G), d_free(Hh);
                d_free(dH), d_free(dW);
            }
            ws_free(d, ex.workspace);
        }
        /* bf16 gradients: cuBLAS multiplies a bf16 copy of dZ (the CPU keeps f32): looser */
        const double rt = dti ? 2e-2 : 1e-4;
        close_ff(dti ? "linear bf16 forward" : "linear f32 forward", outg, outc, N * 5, 1e-4, 1e-4);
        close_ff(dti ? "linear bf16 dH" : "linear f32 dH", dHg, dHc, N * D, 1e-4, rt);
        close_ff(dti ? "linear bf16 dW" : "linear f32 dW", dWg, dWc, V * D, 1e-4, rt);
        free(H), free(W), free(outc), free(outg), free(dHc), free(dHg), free(dWc), free(dWg);
    }
}

int main(void) {
    if (segrl_cuda_device_count() == 0) {
        printf("test-loss-cuda: no CUDA device (built with CUDA: %d), skipped\n",
               segrl_built_with_cuda());
        return 77;
    }
    test_policy();
    test_logprobs();
    test_linear();
    return h_finish();
}
