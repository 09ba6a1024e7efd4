/* test-badinput.c — a table of bad inputs over the public C API (losses, segments, trees,
 * rewards, tokenizer, safetensors, rollout, and the advantage estimators test-errors.c does not
 * cover). Each CASE row: the documented status, a word the message must contain (the argument
 * at fault), and the call with one argument broken. Before each row every output buffer, output
 * pointer and output scalar is set to a guard value; after it, all of them must be unchanged
 * (nothing half-written). Every family first runs its valid call once (a control that must
 * succeed), so each row tests exactly the one thing it breaks. Regressions for the bugs the fuzz
 * targets found are rows here too. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <segrl/segrl.h>
#include <stdalign.h>
#include <unistd.h>

#ifndef SEGRL_BADINPUT_FIXTURES
#  define SEGRL_BADINPUT_FIXTURES "tests/fixtures"
#endif

#define GUARD (-31337.0f)
#define B 2
#define T 4
#define N (B * T)
#define HUGE32 ((int64_t)1 << 32) /* a length that equals the right one modulo 2^32 */

/* ---- guarded outputs ---- */
static float of1[64], of2[64], of3[64], of4[64], of5[64];
static int64_t oi1[64], oi2[64], oi3[64];
static uint8_t ou1[64];
static segrl_policy_loss_stats ostats;
static segrl_reward *o_rw;
static segrl_tokenizer *o_tok;
static segrl_safetensors *o_st;
static segrl_rollout *o_ro;
static segrl_replay *o_rb;
static int32_t *o_ids;
static char *o_txt;
static const char *o_cstr, *o_cstr2;
static int64_t o_n, o_n2;
static size_t o_len;
static int o_int;
static segrl_st_tensor o_tensor;
static char o_buf[64];
#define PSENT ((void *)(uintptr_t)0x5e5e5e50)

static void guards_set(void) {
    for (int i = 0; i < 64; i++) {
        of1[i] = of2[i] = of3[i] = of4[i] = of5[i] = GUARD;
        oi1[i] = oi2[i] = oi3[i] = -777;
        ou1[i] = 0xA5;
    }
    memset(&ostats, 0xA5, sizeof ostats);
    o_rw = PSENT, o_tok = PSENT, o_st = PSENT, o_ro = PSENT, o_rb = PSENT, o_ids = PSENT;
    o_txt = PSENT, o_cstr = PSENT, o_cstr2 = PSENT;
    o_n = o_n2 = -777, o_len = 777, o_int = -777;
    memset(&o_tensor, 0xA5, sizeof o_tensor);
    memset(o_buf, 'g', sizeof o_buf);
}

static int all_bytes(const void *p, size_t n, unsigned char v) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != v) return 0;
    return 1;
}

static const char *guards_broken(void) {
    for (int i = 0; i < 64; i++) {
        if (of1[i] != GUARD || of2[i] != GUARD || of3[i] != GUARD || of4[i] != GUARD ||
            of5[i] != GUARD)
            return "a float output";
        if (oi1[i] != -777 || oi2[i] != -777 || oi3[i] != -777) return "an index output";
        if (ou1[i] != 0xA5) return "a u8 output";
    }
    if (!all_bytes(&ostats, sizeof ostats, 0xA5)) return "out_stats";
    if (o_rw != PSENT || o_tok != PSENT || o_st != PSENT || o_ro != PSENT || o_rb != PSENT ||
        (void *)o_ids != PSENT || (void *)o_txt != PSENT || (const void *)o_cstr != PSENT ||
        (const void *)o_cstr2 != PSENT)
        return "an output pointer";
    if (o_n != -777 || o_n2 != -777 || o_len != 777 || o_int != -777) return "an output scalar";
    if (!all_bytes(&o_tensor, sizeof o_tensor, 0xA5)) return "an output tensor";
    if (!all_bytes(o_buf, sizeof o_buf, 'g')) return "an output buffer";
    return NULL;
}

static int n_cases;

static void run_case(int line, const char *expr, segrl_status want, const char *word,
                     segrl_status got) {
    n_cases++;
    const char *msg = segrl_last_error();
    const char *broken = guards_broken();
    CHECK(got == want, "line %d: %s: status %s, want %s (%s)", line, expr, segrl_status_str(got),
          segrl_status_str(want), msg);
    CHECK(got == SEGRL_OK || (msg && strstr(msg, word)),
          "line %d: %s: message \"%s\" does not name \"%s\"", line, expr, msg ? msg : "", word);
    CHECK(!broken, "line %d: %s: %s was written on failure", line, expr, broken);
    if (got == SEGRL_OK) guards_set(); /* a wrongly accepted call wrote its outputs */
}

/* one table row: CASE(status, word the message must contain, call) */
#define CASE(want, word, call)                                                                    \
    do {                                                                                          \
        guards_set();                                                                             \
        segrl_clear_error();                                                                      \
        segrl_status s_ = (call);                                                                 \
        run_case(__LINE__, #call, (want), (word), s_);                                            \
    } while (0)
#define INV SEGRL_ERR_INVALID

/* a control: the valid call succeeds (outputs are then reset) */
#define CONTROL(call)                                                                             \
    do {                                                                                          \
        segrl_status s_ = (call);                                                                 \
        CHECK(s_ == SEGRL_OK, "line %d: control %s: %s", __LINE__, #call, segrl_last_error());    \
        guards_set();                                                                             \
    } while (0)

static segrl_device cpu;
static alignas(64) unsigned char ws[1 << 16];
static segrl_exec ex;

static segrl_view f2(float *p, int64_t b, int64_t t) { return segrl_view_2d(p, SEGRL_DTYPE_F32, cpu, b, t); }
static segrl_view v1(void *p, segrl_dtype dt, int64_t n) { return segrl_view_1d(p, dt, cpu, n); }
static segrl_view fv(float *p, int64_t n) { return segrl_view_1d(p, SEGRL_DTYPE_F32, cpu, n); }

// ----------------------------------------------------------------------------
// losses

static float lp[N], olp[N], adv[N], ref[N], ent[N], val[N], oval[N], ret[N];
static uint8_t msk[N];

static void loss_data(void) {
    for (int i = 0; i < N; i++) {
        lp[i] = -1.0f - 0.1f * (float)(i % 3), olp[i] = -1.05f, adv[i] = i % 2 ? 0.5f : -0.5f;
        ref[i] = -1.2f, ent[i] = 1.0f, val[i] = 0.3f, oval[i] = 0.25f, ret[i] = 0.5f;
        msk[i] = (i % T) < 3;
    }
}

static segrl_policy_loss_inputs loss_in(void) {
    segrl_policy_loss_inputs in = {f2(lp, B, T), f2(olp, B, T), f2(adv, B, T), f2(ref, B, T),
                                   f2(ent, B, T), f2(val, B, T), f2(oval, B, T), f2(ret, B, T),
                                   segrl_view_2d(msk, SEGRL_DTYPE_U8, cpu, B, T), segrl_view_none()};
    return in;
}
static segrl_policy_loss_opts loss_opts(void) {
    segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
    o.kl_type = SEGRL_KL_K3, o.kl_coef = 0.1f, o.entropy_coef = 0.01f, o.value_coef = 0.5f;
    o.value_clip = 0.2f;
    return o;
}

static segrl_status fwd(const segrl_layout *L, const segrl_policy_loss_inputs *in,
                        const segrl_policy_loss_opts *o) {
    return segrl_policy_loss_forward(L, in, o, &ex, fv(of1, 1), &ostats);
}
static segrl_status bwd(const segrl_layout *L, const segrl_policy_loss_inputs *in,
                        const segrl_policy_loss_opts *o) {
    return segrl_policy_loss_backward(L, in, o, segrl_view_none(), &ex, f2(of2, B, T),
                                      f2(of3, B, T), f2(of4, B, T));
}

static void test_loss(void) {
    loss_data();
    segrl_layout pad = segrl_layout_padded();
    segrl_policy_loss_inputs in = loss_in(), x;
    segrl_policy_loss_opts o = loss_opts(), y;
    size_t need = 0;
    CONTROL(segrl_policy_loss_workspace_size(cpu, B, N, &need));
    CHECK(need <= sizeof ws, "policy loss workspace %zu > %zu", need, sizeof ws);
    CONTROL(fwd(&pad, &in, &o));
    CONTROL(bwd(&pad, &in, &o));

    {
        /* NULL layout means padded (core.h); a packed layout with unusable offsets is refused */
        segrl_layout badl = segrl_layout_packed(fv(lp, B + 1));
        CASE(INV, "layout->offsets", fwd(&badl, &in, &o));
    }
    CASE(INV, "in", fwd(&pad, NULL, &o));
    CASE(INV, "out_loss", segrl_policy_loss_forward(&pad, &in, &o, &ex, segrl_view_none(), NULL));
    CASE(INV, "out_loss", segrl_policy_loss_forward(&pad, &in, &o, &ex,
                                                    v1(oi1, SEGRL_DTYPE_I64, 1), NULL));
    CASE(INV, "out_loss", segrl_policy_loss_forward(&pad, &in, &o, &ex, fv(of1, 2), NULL));
    x = in, x.logp = segrl_view_none();
    CASE(INV, "logp", fwd(&pad, &x, &o));
    x = in, x.old_logp = segrl_view_none();
    CASE(INV, "old_logp", fwd(&pad, &x, &o));
    x = in, x.advantages = segrl_view_none();
    CASE(INV, "advantages", fwd(&pad, &x, &o));
    x = in, x.ref_logp = segrl_view_none();
    CASE(INV, "ref_logp", fwd(&pad, &x, &o));
    x = in, x.entropy = segrl_view_none();
    CASE(INV, "entropy", fwd(&pad, &x, &o));
    x = in, x.values = segrl_view_none();
    CASE(INV, "values", fwd(&pad, &x, &o));
    x = in, x.returns = segrl_view_none();
    CASE(INV, "returns", bwd(&pad, &x, &o));
    /* wrong dtypes */
    x = in, x.logp.dtype = SEGRL_DTYPE_I32;
    CASE(INV, "logp", fwd(&pad, &x, &o));
    x = in, x.advantages.dtype = SEGRL_DTYPE_I64;
    CASE(INV, "advantages", fwd(&pad, &x, &o));
    x = in, x.mask.dtype = SEGRL_DTYPE_F16;
    CASE(INV, "mask", fwd(&pad, &x, &o));
    x = in, x.old_logp.dtype = 42;
    CASE(INV, "old_logp", bwd(&pad, &x, &o));
    /* mismatched shapes */
    x = in, x.advantages = f2(adv, B, T - 1);
    CASE(INV, "advantages", fwd(&pad, &x, &o));
    x = in, x.old_logp = f2(olp, B - 1, T);
    CASE(INV, "old_logp", fwd(&pad, &x, &o));
    x = in, x.mask = v1(msk, SEGRL_DTYPE_U8, N);
    CASE(INV, "mask", fwd(&pad, &x, &o));
    x = in, x.values = f2(val, B + HUGE32, T); /* equal to B modulo 2^32 */
    CASE(INV, "values", fwd(&pad, &x, &o));
    x = in, x.ref_logp = f2(ref, B, T + HUGE32);
    CASE(INV, "ref_logp", bwd(&pad, &x, &o));
    x = in, x.logp = f2(lp, (int64_t)1 << 62, 8); /* B * T overflows int64 */
    CASE(INV, "logp", fwd(&pad, &x, &o));
    /* wrong device: one view on CUDA among CPU views */
    x = in, x.advantages.device = segrl_cuda(0);
    CASE(INV, "advantages", fwd(&pad, &x, &o));
    /* NaN / Inf in every float input (at a valid token) */
    float *fin[8] = {lp, olp, adv, ref, ent, val, oval, ret};
    const char *fname[8] = {"logp", "old_logp", "advantages", "ref_logp",
                            "entropy", "values", "old_values", "returns"};
    for (int k = 0; k < 8; k++) {
        float keep = fin[k][1];
        fin[k][1] = NAN;
        CASE(INV, fname[k], fwd(&pad, &in, &o));
        fin[k][1] = k % 2 ? -INFINITY : INFINITY;
        CASE(INV, fname[k], bwd(&pad, &in, &o));
        fin[k][1] = keep;
    }
    /* zero valid tokens, empty batch */
    uint8_t zero[N] = {0};
    x = in, x.mask = segrl_view_2d(zero, SEGRL_DTYPE_U8, cpu, B, T);
    CASE(INV, "no valid tokens", fwd(&pad, &x, &o));
    x = in, x.prob_mask = segrl_view_2d(zero, SEGRL_DTYPE_U8, cpu, B, T);
    CASE(INV, "no valid tokens", bwd(&pad, &x, &o));
    x = in;
    x.logp = f2(lp, 0, T), x.old_logp = f2(olp, 0, T), x.advantages = f2(adv, 0, T);
    x.ref_logp = f2(ref, 0, T), x.entropy = f2(ent, 0, T), x.values = f2(val, 0, T);
    x.old_values = f2(oval, 0, T), x.returns = f2(ret, 0, T);
    x.mask = segrl_view_2d(msk, SEGRL_DTYPE_U8, cpu, 0, T);
    CASE(INV, "no valid tokens", fwd(&pad, &x, &o));
    /* options */
    y = o, y.clip_low = -0.1f;
    CASE(INV, "clip_low", fwd(&pad, &in, &y));
    y = o, y.clip_high = NAN;
    CASE(INV, "clip_high", fwd(&pad, &in, &y));
    y = o, y.clip_c = 0.5f;
    CASE(INV, "clip_c", fwd(&pad, &in, &y));
    y = o, y.log_ratio_clamp = 0;
    CASE(INV, "log_ratio_clamp", fwd(&pad, &in, &y));
    y = o, y.mode = 9;
    CASE(INV, "mode", fwd(&pad, &in, &y));
    y = o, y.agg = -1;
    CASE(INV, "agg", bwd(&pad, &in, &y));
    y = o, y.kl_type = 42;
    CASE(INV, "kl_type", fwd(&pad, &in, &y));
    y = o, y.kl_coef = INFINITY;
    CASE(INV, "kl_coef", fwd(&pad, &in, &y));
    y = o, y.entropy_coef = NAN;
    CASE(INV, "entropy_coef", fwd(&pad, &in, &y));
    y = o, y.value_coef = NAN;
    CASE(INV, "value_coef", bwd(&pad, &in, &y));
    y = o, y.value_clip = NAN;
    CASE(INV, "value_clip", fwd(&pad, &in, &y));
    y = o, y.normalizer = NAN;
    CASE(INV, "normalizer", fwd(&pad, &in, &y));
    y = o, y.normalizer = -2;
    CASE(INV, "normalizer", bwd(&pad, &in, &y));
    /* gradient outputs and the upstream gradient */
    CASE(INV, "out_grad_logp",
         segrl_policy_loss_backward(&pad, &in, &o, segrl_view_none(), &ex, f2(of2, B, T + 1),
                                    segrl_view_none(), segrl_view_none()));
    CASE(INV, "out_grad_values",
         segrl_policy_loss_backward(&pad, &in, &o, segrl_view_none(), &ex, f2(of2, B, T),
                                    segrl_view_none(), segrl_view_2d(oi1, SEGRL_DTYPE_I64, cpu, B, T)));
    CASE(INV, "grad_loss",
         segrl_policy_loss_backward(&pad, &in, &o, fv(of5, 3), &ex, f2(of2, B, T),
                                    segrl_view_none(), segrl_view_none()));
    /* packed layouts with bad offsets */
    int64_t offs[3][B + 1] = {{1, 4, 8}, {0, 5, 3}, {0, 4, 9}};
    const char *offw[3] = {"offsets", "offsets", "offsets"};
    for (int k = 0; k < 3; k++) {
        segrl_layout pk = segrl_layout_packed(v1(offs[k], SEGRL_DTYPE_I64, B + 1));
        x = in;
        x.logp = fv(lp, N), x.old_logp = fv(olp, N), x.advantages = fv(adv, N);
        x.ref_logp = fv(ref, N), x.entropy = fv(ent, N), x.values = fv(val, N);
        x.old_values = fv(oval, N), x.returns = fv(ret, N), x.mask = v1(msk, SEGRL_DTYPE_U8, N);
        CASE(INV, offw[k], fwd(&pk, &x, &o));
    }
    /* workspace */
    segrl_exec small = ex;
    small.workspace_bytes = 16;
    CASE(SEGRL_ERR_WORKSPACE, "workspace",
         segrl_policy_loss_forward(&pad, &in, &o, &small, fv(of1, 1), &ostats));
    /* size queries that overflow */
    CASE(INV, "batch", segrl_policy_loss_workspace_size(cpu, -1, N, &o_len));
    CASE(INV, "tokens", segrl_policy_loss_workspace_size(cpu, B, -1, &o_len));
    CASE(INV, "batch", segrl_policy_loss_workspace_size(cpu, INT64_MAX, N, &o_len));
    CASE(INV, "rows", segrl_logprobs_workspace_size(cpu, INT64_MAX / 2, 1000, &o_len));
    CASE(INV, "rows", segrl_linear_logprobs_workspace_size(cpu, (int64_t)1 << 62, (int64_t)1 << 40,
                                                           (int64_t)1 << 40, SEGRL_DTYPE_F32,
                                                           NULL, 1, &o_len));
}

/* ---- fused log-probabilities ---- */
#define R 3
#define V 5
#define D 4
static float logits[R * V], hid[R * D], wt[V * D], lse[R], lent[R], glp[R];
static int32_t tgt[R] = {0, 4, -1};

static segrl_status lpf(segrl_view lg, segrl_view tg, const segrl_logprob_opts *o) {
    segrl_logprob_out out = {fv(of1, R), fv(of2, R), fv(of3, R), segrl_view_none(),
                             segrl_view_none()};
    return segrl_logprobs_forward(lg, tg, o, &ex, &out);
}
static segrl_status lpb(segrl_view lg, segrl_view tg, segrl_view l, segrl_view e, segrl_view ge,
                        segrl_view outg) {
    return segrl_logprobs_backward(lg, tg, l, e, fv(glp, R), ge, NULL, &ex, outg);
}
static segrl_status llf(segrl_view h, segrl_view w, segrl_view tg) {
    segrl_logprob_out out = {fv(of1, R), fv(of2, R), fv(of3, R), segrl_view_none(),
                             segrl_view_none()};
    return segrl_linear_logprobs_forward(h, w, tg, NULL, &ex, &out);
}

static void test_logprobs(void) {
    for (int i = 0; i < R * V; i++) logits[i] = 0.1f * (float)(i % 7) - 0.3f;
    for (int i = 0; i < R * D; i++) hid[i] = 0.05f * (float)(i % 5);
    for (int i = 0; i < V * D; i++) wt[i] = 0.02f * (float)(i % 9) - 0.08f;
    for (int i = 0; i < R; i++) lse[i] = 2.0f, lent[i] = 1.0f, glp[i] = 1.0f;
    segrl_view L = f2(logits, R, V), tg = v1(tgt, SEGRL_DTYPE_I32, R);
    segrl_view H = f2(hid, R, D), W = f2(wt, V, D);
    size_t need = 0;
    CONTROL(segrl_logprobs_workspace_size(cpu, R, V, &need));
    CHECK(need <= sizeof ws, "logprobs workspace");
    CONTROL(lpf(L, tg, NULL));
    CONTROL(lpb(L, tg, fv(lse, R), fv(lent, R), fv(glp, R), f2(of4, R, V)));
    CONTROL(segrl_linear_logprobs_workspace_size(cpu, R, D, V, SEGRL_DTYPE_F32, NULL, 0, &need));
    CHECK(need <= sizeof ws, "linear logprobs workspace %zu", need);
    CONTROL(llf(H, W, tg));

    segrl_view x;
    CASE(INV, "logits", lpf(segrl_view_none(), tg, NULL));
    x = L, x.dtype = SEGRL_DTYPE_I32;
    CASE(INV, "logits", lpf(x, tg, NULL));
    x = L, x.strides[1] = 2;
    CASE(INV, "logits", lpf(x, tg, NULL));
    x = tg, x.device = segrl_cuda(0); /* one view on another device than the logits */
    CASE(INV, "targets", lpf(L, x, NULL));
    CASE(INV, "targets", lpf(L, fv((float *)tgt, R), NULL));
    CASE(INV, "targets", lpf(L, v1(tgt, SEGRL_DTYPE_I32, R - 1), NULL));
    CASE(INV, "targets", lpf(L, v1(tgt, SEGRL_DTYPE_I32, R + HUGE32), NULL));
    tgt[1] = V;
    CASE(INV, "targets", lpf(L, tg, NULL));
    CASE(INV, "targets", lpb(L, tg, fv(lse, R), fv(lent, R), segrl_view_none(), f2(of4, R, V)));
    tgt[1] = 4;
    logits[3] = NAN;
    CASE(INV, "logits", lpf(L, tg, NULL));
    logits[3] = INFINITY;
    CASE(INV, "logits", lpf(L, tg, NULL));
    logits[3] = 0;
    for (int j = 0; j < V; j++) logits[V + j] = -INFINITY;
    CASE(INV, "logits", lpf(L, tg, NULL));
    for (int j = 0; j < V; j++) logits[V + j] = 0.1f * (float)j;
    segrl_logprob_opts o = segrl_logprob_opts_default();
    o.temperature = 0;
    CASE(INV, "temperature", lpf(L, tg, &o));
    o.temperature = NAN;
    CASE(INV, "temperature", lpf(L, tg, &o));
    o = segrl_logprob_opts_default(), o.vocab_chunk = -3;
    CASE(INV, "vocab_chunk", lpf(L, tg, &o));
    CASE(INV, "out", segrl_logprobs_forward(L, tg, NULL, &ex, NULL));
    {
        segrl_logprob_out out = {segrl_view_none(), fv(of2, R), segrl_view_none(),
                                 segrl_view_none(), segrl_view_none()};
        CASE(INV, "logp", segrl_logprobs_forward(L, tg, NULL, &ex, &out));
        out.logp = fv(of1, R + 1);
        CASE(INV, "logp", segrl_logprobs_forward(L, tg, NULL, &ex, &out));
    }
    CASE(INV, "lse", lpb(L, tg, segrl_view_none(), fv(lent, R), segrl_view_none(), f2(of4, R, V)));
    CASE(INV, "entropy", lpb(L, tg, fv(lse, R), segrl_view_none(), fv(glp, R), f2(of4, R, V)));
    CASE(INV, "out_grad_logits", lpb(L, tg, fv(lse, R), fv(lent, R), segrl_view_none(),
                                     f2(of4, R, V - 1)));
    CASE(INV, "out_grad_logits", lpb(L, tg, fv(lse, R), fv(lent, R), segrl_view_none(),
                                     segrl_view_2d(oi1, SEGRL_DTYPE_I64, cpu, R, V)));
    /* fused linear */
    x = W, x.dtype = SEGRL_DTYPE_BF16;
    CASE(INV, "weight", llf(H, x, tg));
    CASE(INV, "weight", llf(H, f2(wt, V, D - 1), tg));
    CASE(INV, "hidden", llf(segrl_view_none(), W, tg));
    hid[2] = NAN;
    CASE(INV, "hidden", llf(H, W, tg));
    hid[2] = 0;
    wt[7] = INFINITY;
    CASE(INV, "weight", llf(H, W, tg));
    wt[7] = 0;
}

// ----------------------------------------------------------------------------
// segments

static float sx[N], sprob[N], svals[8], srew[B], sprompt[B];
static uint8_t smask[N];
static int32_t sids[N];
static int64_t soff[B + 1], sst[3], sen[3];

static void seg_data(void) {
    for (int i = 0; i < N; i++) {
        sx[i] = 0.1f * (float)i, sprob[i] = i % 3 ? 0.95f : 0.5f, smask[i] = 1;
        sids[i] = i % 3 == 2 ? 7 : 1;
    }
    for (int i = 0; i < 8; i++) svals[i] = 0.25f * (float)(i % 4);
    srew[0] = 1, srew[1] = 0, sprompt[0] = 0.5f, sprompt[1] = 0.5f;
    int64_t o[B + 1] = {0, 2, 3}, s[3] = {0, 2, 0}, e[3] = {2, 4, 3};
    memcpy(soff, o, sizeof o), memcpy(sst, s, sizeof s), memcpy(sen, e, sizeof e);
}

static segrl_segments segs(void) {
    segrl_segments g = {v1(soff, SEGRL_DTYPE_I64, B + 1), v1(sst, SEGRL_DTYPE_I64, 3),
                        v1(sen, SEGRL_DTYPE_I64, 3)};
    return g;
}

static void test_segments(void) {
    seg_data();
    segrl_layout pad = segrl_layout_padded();
    segrl_segments g = segs(), h;
    segrl_view X = f2(sx, B, T), M = segrl_view_2d(smask, SEGRL_DTYPE_U8, cpu, B, T);
    segrl_view P = f2(sprob, B, T), I = segrl_view_2d(sids, SEGRL_DTYPE_I32, cpu, B, T);
    segrl_view S3 = fv(svals, 3), RB = fv(srew, B);
    CONTROL(segrl_segments_check(&pad, X, &g, &ex));
    CONTROL(segrl_segment_reduce(&pad, X, M, &g, SEGRL_REDUCE_MEAN, &ex, fv(of1, 3)));
    CONTROL(segrl_segment_scatter(&pad, S3, M, &g, SEGRL_SCATTER_BROADCAST, &ex, f2(of1, B, T)));
    CONTROL(segrl_spo_chain(&pad, M, &g, S3, RB, fv(sprompt, B), &ex, f2(of1, B, T), fv(of2, 3)));
    CONTROL(segrl_vineppo(&pad, M, &g, S3, S3, 1.0f, &ex, f2(of1, B, T), fv(of2, 3)));
    CONTROL(segrl_prob_mask(&pad, P, M, 0.9f, &ex, segrl_view_2d(ou1, SEGRL_DTYPE_U8, cpu, B, T)));

    {
        int64_t lo[B + 1] = {0, 4, 8};
        segrl_layout badl = segrl_layout_packed(v1(lo, SEGRL_DTYPE_I64, B)); /* B offsets, not B + 1 */
        CASE(INV, "offsets", segrl_segments_check(&badl, fv(sx, N), &g, &ex));
    }
    CASE(INV, "segments", segrl_segments_check(&pad, X, NULL, &ex));
    soff[0] = 1;
    CASE(INV, "segments->offsets", segrl_segments_check(&pad, X, &g, &ex));
    soff[0] = 0, soff[1] = 4;
    CASE(INV, "segments->offsets", segrl_segments_check(&pad, X, &g, &ex));
    soff[1] = 2, soff[2] = 2;
    CASE(INV, "segments->offsets", segrl_segments_check(&pad, X, &g, &ex));
    soff[2] = 3;
    sst[1] = 2, sen[1] = 2; /* empty span */
    CASE(INV, "segments->", segrl_segment_reduce(&pad, X, M, &g, 0, &ex, fv(of1, 3)));
    sen[1] = 5; /* past T */
    CASE(INV, "segments->end", segrl_segments_check(&pad, X, &g, &ex));
    sen[1] = 4, sst[1] = 1; /* overlaps the previous span */
    CASE(INV, "segments->start", segrl_segments_check(&pad, X, &g, &ex));
    sst[1] = -1;
    CASE(INV, "segments->start", segrl_spo_chain(&pad, M, &g, S3, RB, segrl_view_none(), &ex,
                                                 f2(of1, B, T), segrl_view_none()));
    sst[1] = 2;
    h = g, h.offsets.dtype = SEGRL_DTYPE_F32;
    CASE(INV, "segments->offsets", segrl_segments_check(&pad, X, &h, &ex));
    h = g, h.offsets = v1(soff, SEGRL_DTYPE_I64, B);
    CASE(INV, "segments->offsets", segrl_segments_check(&pad, X, &h, &ex));
    h = g, h.offsets = v1(soff, SEGRL_DTYPE_I64, B + 1 + HUGE32);
    CASE(INV, "segments->offsets", segrl_segments_check(&pad, X, &h, &ex));
    h = g, h.start = v1(sst, SEGRL_DTYPE_I64, 2); /* S is start's length: end disagrees */
    CASE(INV, "segments->end", segrl_segments_check(&pad, X, &h, &ex));
    h = g, h.end = v1(sen, SEGRL_DTYPE_I64, 3 + HUGE32);
    CASE(INV, "segments->end", segrl_segments_check(&pad, X, &h, &ex));
    /* reduce / scatter */
    CASE(INV, "op", segrl_segment_reduce(&pad, X, M, &g, 9, &ex, fv(of1, 3)));
    CASE(INV, "out", segrl_segment_reduce(&pad, X, M, &g, 0, &ex, fv(of1, 2)));
    CASE(INV, "out", segrl_segment_reduce(&pad, X, M, &g, 0, &ex, v1(oi1, SEGRL_DTYPE_I64, 3)));
    CASE(INV, "mask", segrl_segment_reduce(&pad, X, f2(sx, B, T + 1), &g, 0, &ex, fv(of1, 3)));
    sx[1] = NAN;
    CASE(INV, "x", segrl_segment_reduce(&pad, X, M, &g, 0, &ex, fv(of1, 3)));
    sx[1] = 0.1f;
    CASE(INV, "mode", segrl_segment_scatter(&pad, S3, M, &g, 7, &ex, f2(of1, B, T)));
    CASE(INV, "values", segrl_segment_scatter(&pad, fv(svals, 4), M, &g, 0, &ex, f2(of1, B, T)));
    svals[2] = INFINITY;
    CASE(INV, "values", segrl_segment_scatter(&pad, S3, M, &g, 0, &ex, f2(of1, B, T)));
    /* SPO-chain / VinePPO */
    CASE(INV, "values", segrl_spo_chain(&pad, M, &g, S3, RB, segrl_view_none(), &ex,
                                        f2(of1, B, T), fv(of2, 3)));
    svals[2] = 0.5f;
    srew[1] = NAN;
    CASE(INV, "rewards", segrl_spo_chain(&pad, M, &g, S3, RB, segrl_view_none(), &ex,
                                         f2(of1, B, T), fv(of2, 3)));
    srew[1] = 0;
    sprompt[0] = -INFINITY;
    CASE(INV, "prompt_values", segrl_spo_chain(&pad, M, &g, S3, RB, fv(sprompt, B), &ex,
                                               f2(of1, B, T), fv(of2, 3)));
    sprompt[0] = 0.5f;
    CASE(INV, "rewards", segrl_spo_chain(&pad, M, &g, S3, fv(srew, B + 1), segrl_view_none(),
                                         &ex, f2(of1, B, T), fv(of2, 3)));
    CASE(INV, "out_segment_advantages",
         segrl_spo_chain(&pad, M, &g, S3, RB, segrl_view_none(), &ex, f2(of1, B, T), fv(of2, 4)));
    CASE(INV, "gamma", segrl_vineppo(&pad, M, &g, S3, S3, NAN, &ex, f2(of1, B, T), fv(of2, 3)));
    svals[0] = NAN;
    CASE(INV, "step_rewards", segrl_vineppo(&pad, M, &g, S3, fv(svals + 4, 3), 1.0f, &ex,
                                            f2(of1, B, T), fv(of2, 3)));
    CASE(INV, "values", segrl_vineppo(&pad, M, &g, fv(svals + 4, 3), S3, 1.0f, &ex,
                                      f2(of1, B, T), fv(of2, 3)));
    svals[0] = 0;
    /* probability mask */
    CASE(INV, "tau", segrl_prob_mask(&pad, P, M, NAN, &ex, segrl_view_2d(ou1, SEGRL_DTYPE_U8, cpu, B, T)));
    sprob[2] = NAN;
    CASE(INV, "probs", segrl_prob_mask(&pad, P, M, 0.9f, &ex, segrl_view_2d(ou1, SEGRL_DTYPE_U8, cpu, B, T)));
    sprob[2] = 0.5f;
    CASE(INV, "out", segrl_prob_mask(&pad, P, M, 0.9f, &ex, segrl_view_2d(ou1, SEGRL_DTYPE_F16, cpu, B, T)));
    /* partitioners */
    segrl_segments po = {v1(oi1, SEGRL_DTYPE_I64, B + 1), segrl_view_none(), segrl_view_none()};
    CONTROL(segrl_partition_fixed(&pad, M, 2, 0, &ex, &po));
    CASE(INV, "num_parts", segrl_partition_fixed(&pad, M, 0, 0, &ex, &po));
    CASE(INV, "num_parts", segrl_partition_fixed(&pad, M, 2, 3, &ex, &po));
    CASE(INV, "every", segrl_partition_fixed(&pad, M, 0, -1, &ex, &po));
    CASE(INV, "out", segrl_partition_fixed(&pad, M, 2, 0, &ex, NULL));
    po.start = v1(oi2, SEGRL_DTYPE_I64, 8);
    CASE(INV, "out->end", segrl_partition_fixed(&pad, M, 2, 0, &ex, &po));
    po.end = v1(oi3, SEGRL_DTYPE_I64, 2); /* 4 segments need 4 */
    po.start = v1(oi2, SEGRL_DTYPE_I64, 2);
    CASE(INV, "out->start", segrl_partition_fixed(&pad, M, 2, 0, &ex, &po));
    po.start = po.end = segrl_view_none();
    po.offsets = v1(oi1, SEGRL_DTYPE_I64, B);
    CASE(INV, "out->offsets", segrl_partition_fixed(&pad, M, 2, 0, &ex, &po));
    po.offsets = v1(oi1, SEGRL_DTYPE_I64, B + 1);
    segrl_cutpoint_opts co = segrl_cutpoint_opts_default();
    CONTROL(segrl_partition_cutpoints(&pad, P, M, &co, &ex, &po));
    co.k = 0;
    CASE(INV, "k", segrl_partition_cutpoints(&pad, P, M, &co, &ex, &po));
    co = segrl_cutpoint_opts_default(), co.tau = NAN;
    CASE(INV, "tau", segrl_partition_cutpoints(&pad, P, M, &co, &ex, &po));
    co = segrl_cutpoint_opts_default(), co.max_segments = -1;
    CASE(INV, "max_segments", segrl_partition_cutpoints(&pad, P, M, &co, &ex, &po));
    co = segrl_cutpoint_opts_default();
    sprob[5] = INFINITY;
    CASE(INV, "probs", segrl_partition_cutpoints(&pad, P, M, &co, &ex, &po));
    sprob[5] = 0.95f;
    int32_t delim[1] = {7};
    CONTROL(segrl_partition_delimiters(&pad, I, M, v1(delim, SEGRL_DTYPE_I32, 1), &ex, &po));
    CASE(INV, "delimiters", segrl_partition_delimiters(&pad, I, M, v1(delim, SEGRL_DTYPE_I32, 0), &ex, &po));
    CASE(INV, "token_ids", segrl_partition_delimiters(&pad, X, M, v1(delim, SEGRL_DTYPE_I32, 1), &ex, &po));
    /* process rewards */
    segrl_prm_opts pm = {SEGRL_PRM_BOTH, 0.5f};
    CONTROL(segrl_prm_transform(v1(soff, SEGRL_DTYPE_I64, B + 1), S3, &pm, &ex, fv(of1, 3)));
    pm.mode = 7;
    CASE(INV, "mode", segrl_prm_transform(v1(soff, SEGRL_DTYPE_I64, B + 1), S3, &pm, &ex, fv(of1, 3)));
    pm.mode = SEGRL_PRM_CLIP, pm.eta = NAN;
    CASE(INV, "eta", segrl_prm_transform(v1(soff, SEGRL_DTYPE_I64, B + 1), S3, &pm, &ex, fv(of1, 3)));
    pm.eta = 0.5f;
    svals[1] = NAN;
    CASE(INV, "rewards", segrl_prm_transform(v1(soff, SEGRL_DTYPE_I64, B + 1), S3, &pm, &ex, fv(of1, 3)));
    svals[1] = 0.25f;
    int64_t badoff[B + 1] = {0, 3, 2};
    CASE(INV, "seg_offsets", segrl_prm_transform(v1(badoff, SEGRL_DTYPE_I64, B + 1), S3, &pm, &ex, fv(of1, 3)));
    /* dense segment rewards */
    segrl_reward_source src[1] = {{g, S3, 1.0f}};
    CONTROL(segrl_dense_segment_rewards(&pad, M, src, 1, &ex, f2(of1, B, T)));
    CASE(INV, "n_sources", segrl_dense_segment_rewards(&pad, M, src, 0, &ex, f2(of1, B, T)));
    CASE(INV, "sources", segrl_dense_segment_rewards(&pad, M, NULL, 1, &ex, f2(of1, B, T)));
    src[0].weight = NAN;
    CASE(INV, "sources[0].weight", segrl_dense_segment_rewards(&pad, M, src, 1, &ex, f2(of1, B, T)));
    src[0].weight = 1, svals[0] = INFINITY;
    CASE(INV, "sources[0].scores", segrl_dense_segment_rewards(&pad, M, src, 1, &ex, f2(of1, B, T)));
    svals[0] = 0, sen[0] = 9;
    CASE(INV, "sources[0].spans->end", segrl_dense_segment_rewards(&pad, M, src, 1, &ex, f2(of1, B, T)));
    sen[0] = 2;
    /* PRIME */
    segrl_prime_opts pr = segrl_prime_opts_default();
    CONTROL(segrl_prime_token_rewards(&pad, X, X, M, &pr, &ex, f2(of1, B, T)));
    pr.beta = NAN;
    CASE(INV, "beta", segrl_prime_token_rewards(&pad, X, X, M, &pr, &ex, f2(of1, B, T)));
    pr = segrl_prime_opts_default();
    CASE(INV, "ref_logprobs", segrl_prime_token_rewards(&pad, X, f2(sx, B, T - 1), M, &pr, &ex, f2(of1, B, T)));
    sx[0] = NAN;
    CASE(INV, "logprobs", segrl_prime_token_rewards(&pad, X, f2(sprob, B, T), M, &pr, &ex, f2(of1, B, T)));
    sx[0] = 0;
    int32_t gi[B] = {0, 1};
    segrl_prime_source ps[1] = {{segrl_view_none(), segrl_view_none(), RB, 1.0f}};
    size_t pneed = 0;
    CONTROL(segrl_prime_returns_workspace_size(B, 2, &pneed));
    CHECK(pneed <= sizeof ws, "prime workspace");
    CONTROL(segrl_prime_returns(&pad, M, ps, 1, v1(gi, SEGRL_DTYPE_I32, B), 2, &ex, f2(of1, B, T), f2(of2, B, T)));
    CASE(INV, "n_sources", segrl_prime_returns(&pad, M, ps, 0, v1(gi, SEGRL_DTYPE_I32, B), 2, &ex, f2(of1, B, T), f2(of2, B, T)));
    CASE(INV, "num_groups", segrl_prime_returns(&pad, M, ps, 1, v1(gi, SEGRL_DTYPE_I32, B), 0, &ex, f2(of1, B, T), f2(of2, B, T)));
    gi[1] = 2;
    CASE(INV, "group_index", segrl_prime_returns(&pad, M, ps, 1, v1(gi, SEGRL_DTYPE_I32, B), 2, &ex, f2(of1, B, T), f2(of2, B, T)));
    gi[1] = 1, srew[0] = NAN;
    CASE(INV, "sources[0].scores", segrl_prime_returns(&pad, M, ps, 1, v1(gi, SEGRL_DTYPE_I32, B), 2, &ex, f2(of1, B, T), f2(of2, B, T)));
    srew[0] = 1;
    CASE(INV, "batch", segrl_prime_returns_workspace_size(INT64_MAX, 2, &o_len));
    CASE(INV, "batch", segrl_segment_workspace_size(cpu, -1, &o_len));
}

// ----------------------------------------------------------------------------
// trees

enum { TM = 5 };
static int64_t tpar[TM], tss[TM], tse[TM], tdep[TM];
static float trew[TM], tvals[TM], tadv[TM];

static segrl_tree tree(void) {
    int64_t p[TM] = {-1, 0, 0, 1, 1}, s[TM] = {0, 2, 4, 6, 7}, e[TM] = {2, 4, 6, 7, 9};
    int64_t d[TM] = {0, 1, 1, 2, 2};
    float r[TM] = {NAN, NAN, 1, 0, 1}; /* inner nodes' rewards are ignored */
    memcpy(tpar, p, sizeof p), memcpy(tss, s, sizeof s), memcpy(tse, e, sizeof e);
    memcpy(tdep, d, sizeof d), memcpy(trew, r, sizeof r);
    for (int i = 0; i < TM; i++) tvals[i] = 0.5f, tadv[i] = 0.1f * (float)i;
    segrl_tree t = {v1(tpar, SEGRL_DTYPE_I64, TM), v1(tss, SEGRL_DTYPE_I64, TM),
                    v1(tse, SEGRL_DTYPE_I64, TM), 9, fv(trew, TM), v1(tdep, SEGRL_DTYPE_I64, TM)};
    return t;
}

static void test_trees(void) {
    segrl_tree t = tree(), u;
    size_t need = 0;
    CONTROL(segrl_tree_workspace_size(cpu, TM, &need));
    CHECK(need <= sizeof ws, "tree workspace");
    segrl_view OV = fv(of1, TM);
    CONTROL(segrl_tree_values(&t, SEGRL_TREE_VALUE_LEAF_MEAN, &ex, OV, v1(oi1, SEGRL_DTYPE_I64, TM)));
    CONTROL(segrl_tree_advantages(&t, fv(tvals, TM), NULL, &ex, OV, fv(of2, TM), fv(of3, TM)));
    segrl_tree_episode_opts eo = segrl_tree_episode_opts_default();
    CONTROL(segrl_tree_episodes_size(&t, segrl_view_none(), &eo, &ex, &o_n, &o_n2));
    CONTROL(segrl_tree_rest_values(&t, 1.0f, 0.0f, &ex, OV));

    CASE(INV, "tree", segrl_tree_values(NULL, 0, &ex, OV, segrl_view_none()));
    u = t, u.parent = segrl_view_none();
    CASE(INV, "parent", segrl_tree_values(&u, 0, &ex, OV, segrl_view_none()));
    u = t, u.parent.dtype = SEGRL_DTYPE_F32;
    CASE(INV, "parent", segrl_tree_values(&u, 0, &ex, OV, segrl_view_none()));
    tpar[1] = 1;
    CASE(INV, "parent", segrl_tree_values(&t, 0, &ex, OV, segrl_view_none()));
    tpar[1] = 0, tpar[2] = 7;
    CASE(INV, "parent", segrl_tree_advantages(&t, fv(tvals, TM), NULL, &ex, OV, segrl_view_none(), segrl_view_none()));
    tpar[2] = 0, tdep[3] = 1;
    CASE(INV, "depth", segrl_tree_values(&t, 0, &ex, OV, segrl_view_none()));
    tdep[3] = 2;
    trew[3] = NAN;
    CASE(INV, "leaf_reward", segrl_tree_values(&t, 0, &ex, OV, segrl_view_none()));
    trew[3] = INFINITY;
    CASE(INV, "leaf_reward", segrl_tree_rest_values(&t, 1.0f, 0.0f, &ex, OV));
    trew[3] = 0;
    u = t, u.leaf_reward = fv(trew, TM - 1);
    CASE(INV, "leaf_reward", segrl_tree_values(&u, 0, &ex, OV, segrl_view_none()));
    u = t, u.leaf_reward = fv(trew, TM + HUGE32);
    CASE(INV, "leaf_reward", segrl_tree_values(&u, 0, &ex, OV, segrl_view_none()));
    CASE(INV, "kind", segrl_tree_values(&t, 5, &ex, OV, segrl_view_none()));
    CASE(INV, "out_values", segrl_tree_values(&t, 0, &ex, v1(oi1, SEGRL_DTYPE_I64, TM), segrl_view_none()));
    CASE(INV, "out_values", segrl_tree_values(&t, 0, &ex, fv(of1, TM + 1), segrl_view_none()));
    CASE(INV, "out_leaf_counts", segrl_tree_values(&t, 0, &ex, OV, fv(of2, TM)));
    segrl_exec small = ex;
    small.workspace_bytes = 8;
    CASE(SEGRL_ERR_WORKSPACE, "workspace", segrl_tree_values(&t, 0, &small, OV, segrl_view_none()));
    CASE(INV, "num_nodes", segrl_tree_workspace_size(cpu, INT64_MAX / 8, &o_len));
    /* advantages */
    tvals[4] = NAN;
    CASE(INV, "values", segrl_tree_advantages(&t, fv(tvals, TM), NULL, &ex, OV, segrl_view_none(), segrl_view_none()));
    tvals[4] = 0.5f;
    segrl_tree_adv_opts ao = segrl_tree_adv_opts_default();
    ao.kind = 9;
    CASE(INV, "kind", segrl_tree_advantages(&t, fv(tvals, TM), &ao, &ex, OV, segrl_view_none(), segrl_view_none()));
    ao = segrl_tree_adv_opts_default(), ao.eps = -1;
    CASE(INV, "eps", segrl_tree_advantages(&t, fv(tvals, TM), &ao, &ex, OV, segrl_view_none(), segrl_view_none()));
    CASE(INV, "out_node_mask", segrl_tree_advantages(&t, fv(tvals, TM), NULL, &ex, OV, segrl_view_none(),
                                                     v1(ou1, SEGRL_DTYPE_F16, TM)));
    /* episodes */
    u = t, u.span_start = u.span_end = segrl_view_none();
    CASE(INV, "span", segrl_tree_episodes_size(&u, segrl_view_none(), &eo, &ex, &o_n, &o_n2));
    tss[2] = 3; /* overlaps node 1's span */
    CASE(INV, "span", segrl_tree_episodes_size(&t, segrl_view_none(), &eo, &ex, &o_n, &o_n2));
    tss[2] = 4, tse[4] = 10; /* past num_tokens */
    CASE(INV, "span_end", segrl_tree_episodes_size(&t, segrl_view_none(), &eo, &ex, &o_n, &o_n2));
    tse[4] = 9;
    eo.kind = 3;
    CASE(INV, "kind", segrl_tree_episodes_size(&t, segrl_view_none(), &eo, &ex, &o_n, &o_n2));
    eo = segrl_tree_episode_opts_default(), eo.kind = SEGRL_TREE_EPISODE_PATH, eo.traj_weight = 2;
    CASE(INV, "traj_weight", segrl_tree_episodes_size(&t, segrl_view_none(), &eo, &ex, &o_n, &o_n2));
    eo.traj_weight = 0, eo.rose = 1, eo.rose_lambda = -1;
    CASE(INV, "rose_lambda", segrl_tree_episodes_size(&t, segrl_view_none(), &eo, &ex, &o_n, &o_n2));
    eo = segrl_tree_episode_opts_default();
    CASE(INV, "out_episodes", segrl_tree_episodes_size(&t, segrl_view_none(), &eo, &ex, NULL, &o_n2));
    {
        int64_t E = 0, Nn = 0;
        CONTROL(segrl_tree_episodes_size(&t, segrl_view_none(), &eo, &ex, &E, &Nn));
        CHECK(E + 1 <= 64 && Nn <= 64, "episodes %lld %lld", (long long)E, (long long)Nn);
        CASE(INV, "out_offsets",
             segrl_tree_episodes(&t, fv(tadv, TM), segrl_view_none(), segrl_view_none(), &eo, &ex,
                                 v1(oi1, SEGRL_DTYPE_I64, E), v1(oi2, SEGRL_DTYPE_I64, Nn),
                                 fv(of1, Nn), segrl_view_none(), segrl_view_none()));
        tadv[2] = NAN;
        CASE(INV, "node_advantages",
             segrl_tree_episodes(&t, fv(tadv, TM), segrl_view_none(), segrl_view_none(), &eo, &ex,
                                 v1(oi1, SEGRL_DTYPE_I64, E + 1), v1(oi2, SEGRL_DTYPE_I64, Nn),
                                 fv(of1, Nn), segrl_view_none(), segrl_view_none()));
        tadv[2] = 0.2f;
        eo.kind = SEGRL_TREE_EPISODE_PATH, eo.traj_weight = 0.5f;
        CASE(INV, "leaf_advantages",
             segrl_tree_episodes(&t, fv(tadv, TM), segrl_view_none(), segrl_view_none(), &eo, &ex,
                                 v1(oi1, SEGRL_DTYPE_I64, E + 1), v1(oi2, SEGRL_DTYPE_I64, Nn),
                                 fv(of1, Nn), segrl_view_none(), segrl_view_none()));
        eo = segrl_tree_episode_opts_default();
    }
    /* ReST-MCTS* (v0 outside [0, 1] overflowed f32: found by fuzz/fuzz-tree) */
    CASE(INV, "v0", segrl_tree_rest_values(&t, 1.0f, NAN, &ex, OV));
    CASE(INV, "v0", segrl_tree_rest_values(&t, 1.0f, 3e38f, &ex, OV));
    CASE(INV, "v0", segrl_tree_rest_values(&t, 1.0f, -0.5f, &ex, OV));
    CASE(INV, "correct_threshold", segrl_tree_rest_values(&t, INFINITY, 0.0f, &ex, OV));
}

// ----------------------------------------------------------------------------
// rewards

static segrl_status noop_score(void *user, const segrl_reward_sample *s, int64_t n,
                               const segrl_reward_run *run, float *out, segrl_reward_detail *det) {
    (void)user, (void)s, (void)run, (void)det;
    for (int64_t i = 0; i < n; i++) out[i] = 1;
    return SEGRL_OK;
}

static void test_rewards(void) {
    segrl_reward *g = NULL, *g2 = NULL;
    CONTROL(segrl_reward_gsm8k(NULL, &g));
    segrl_reward_sample s[2] = {{"q", "so #### 4", NULL, 0, "4", NULL},
                                {"q", "no", NULL, 0, "3", NULL}};
    segrl_reward_run run = {.threads = 1};
    CONTROL(segrl_reward_score(g, s, 2, &run, of1, NULL));

    CASE(INV, "reward", segrl_reward_score(NULL, s, 2, &run, of1, NULL));
    CASE(INV, "n", segrl_reward_score(g, s, -1, &run, of1, NULL));
    CASE(INV, "samples", segrl_reward_score(g, NULL, 2, &run, of1, NULL));
    CASE(INV, "out_scores", segrl_reward_score(g, s, 2, &run, NULL, NULL));
    run.threads = -1;
    CASE(INV, "threads", segrl_reward_score(g, s, 2, &run, of1, NULL));
    run.threads = 1, run.time_limit_s = NAN;
    CASE(INV, "time_limit_s", segrl_reward_score(g, s, 2, &run, of1, NULL));
    run.time_limit_s = 0, run.failure_score = NAN;
    CASE(INV, "failure_score", segrl_reward_score(g, s, 2, &run, of1, NULL));
    run.failure_score = 0;
    int64_t so[3] = {0, 1, 2}, ss[2] = {0, 0}, se[2] = {2, 1};
    CASE(SEGRL_ERR_UNSUPPORTED, "gsm8k", segrl_reward_score_segments(g, s, 2, so, ss, se, &run, of1));
    /* constructors */
    CASE(INV, "out", segrl_reward_gsm8k(NULL, NULL));
    segrl_gsm8k_opts go = segrl_gsm8k_defaults();
    go.tolerance = -1;
    CASE(INV, "tolerance", segrl_reward_gsm8k(&go, &o_rw));
    go = segrl_gsm8k_defaults(), go.correct = NAN;
    CASE(INV, "correct", segrl_reward_gsm8k(&go, &o_rw));
    segrl_math_opts mo = segrl_math_defaults();
    mo.tolerance = NAN;
    CASE(INV, "tolerance", segrl_reward_math(&mo, &o_rw));
    mo = segrl_math_defaults(), mo.incorrect = INFINITY;
    CASE(INV, "incorrect", segrl_reward_math(&mo, &o_rw));
    CASE(INV, "name", segrl_reward_create(NULL, NULL, &o_rw));
    CASE(INV, "no-such-reward", segrl_reward_create("no-such-reward", NULL, &o_rw));
    CASE(INV, "options_json", segrl_reward_create("gsm8k", "{not json", &o_rw));
    CASE(INV, "out", segrl_reward_create("gsm8k", NULL, NULL));
    /* (NULL texts read as "", reward.h: not errors) */
    CASE(INV, "out_equal", segrl_math_equivalent("1", "1", 0, NULL));
    CASE(INV, "tolerance", segrl_math_equivalent("1", "1", NAN, &o_int));
    CASE(INV, "buf", segrl_math_normalize("1", NULL, 8));
    CASE(INV, "cap", segrl_math_normalize("1", o_buf, 0));
    CASE(INV, "pattern", segrl_reward_format(NULL, "", 1, 0, &o_rw));
    CASE(INV, "pattern", segrl_reward_format("(unclosed", "", 1, 0, &o_rw));
    CASE(INV, "flags", segrl_reward_format("a", "z", 1, 0, &o_rw));
    CASE(INV, "match", segrl_reward_format("a", "", NAN, 0, &o_rw));
    CASE(INV, "miss", segrl_reward_format("a", "", 1, -INFINITY, &o_rw));
    CASE(INV, "max_length", segrl_reward_overlong(0, 0, &o_rw));
    CASE(INV, "cache_length", segrl_reward_overlong(100, 200, &o_rw));
    CASE(INV, "cache_length", segrl_reward_overlong(100, -1, &o_rw));
    CASE(INV, "n", segrl_reward_repetition(0, 1, 0, &o_rw));
    CASE(INV, "weight", segrl_reward_repetition(3, NAN, 0, &o_rw));
    CASE(INV, "min_ngrams", segrl_reward_repetition(3, 1, -1, &o_rw));
    CONTROL(segrl_reward_math(NULL, &g2));
    segrl_reward *parts[2] = {g, g2}, *nullpart[2] = {g, NULL};
    float wts[2] = {1, 0.5f}, badw[2] = {1, NAN};
    CASE(INV, "parts", segrl_reward_weighted_sum(NULL, wts, 2, &o_rw));
    CASE(INV, "num_parts", segrl_reward_weighted_sum(parts, wts, 0, &o_rw));
    CASE(INV, "weights", segrl_reward_weighted_sum(parts, badw, 2, &o_rw));
    CASE(INV, "parts[1]", segrl_reward_weighted_sum(nullpart, wts, 2, &o_rw));
    CASE(INV, "agg", segrl_reward_ensemble(parts, 2, 9, 0, &o_rw));
    CASE(INV, "lambda", segrl_reward_ensemble(parts, 2, SEGRL_ENSEMBLE_MEAN_MINUS_STD, NAN, &o_rw));
    float sc[4] = {1, 2, NAN, 4};
    CASE(INV, "scores", segrl_ensemble_apply(NULL, 2, 2, 0, 0, of1));
    CASE(INV, "num_parts", segrl_ensemble_apply(sc, 0, 2, 0, 0, of1));
    CASE(INV, "n", segrl_ensemble_apply(sc, 2, -2, 0, 0, of1));
    CASE(INV, "scores", segrl_ensemble_apply(sc, 2, 2, 0, 0, of1));
    CASE(INV, "inner", segrl_reward_clip(NULL, 0, 1, &o_rw));
    CASE(INV, "lo", segrl_reward_clip(g, 2, 1, &o_rw));
    CASE(INV, "hi", segrl_reward_clip(g, 0, NAN, &o_rw));
    CASE(INV, "k", segrl_reward_par(g, NAN, NULL, &o_rw));
    CASE(INV, "m", segrl_par_apply(sc, sc, 1, 0, 1, of1));
    CASE(INV, "r", segrl_par_apply(sc + 1, sc, 2, 1, 1, of1));
    CASE(INV, "ref", segrl_lsc_apply(sc, sc + 1, 2, of1));
    CASE(INV, "inner", segrl_reward_lsc(NULL, 0, NULL, &o_rw));
    CASE(INV, "eps", segrl_reward_normalize(g, -1, &o_rw));
    CASE(INV, "reward", segrl_reward_normalize_stats(g, NULL)); /* not a normalizer */
    {
        segrl_reward *g3 = NULL, *nz = NULL;
        CONTROL(segrl_reward_gsm8k(NULL, &g3));
        CONTROL(segrl_reward_normalize(g3, 1e-6f, &nz));
        CASE(INV, "out", segrl_reward_normalize_stats(nz, NULL));
        segrl_reward_free(nz);
    }
    CASE(INV, "path", segrl_reward_plugin(NULL, NULL, &o_rw));
    CASE(INV, "/nonexistent/plugin.so", segrl_reward_plugin("/nonexistent/plugin.so", NULL, &o_rw));
    segrl_http_opts ho = {.url = NULL};
    CASE(INV, "url", segrl_reward_http(&ho, &o_rw));
    ho.url = "ftp://x";
    CASE(INV, "url", segrl_reward_http(&ho, &o_rw));
    ho.url = "http://127.0.0.1:1/", ho.timeout_s = NAN;
    CASE(INV, "timeout_s", segrl_reward_http(&ho, &o_rw));
    ho.timeout_s = 0, ho.concurrency = 100;
    CASE(INV, "concurrency", segrl_reward_http(&ho, &o_rw));
    ho.concurrency = 0, ho.batch_size = -1;
    CASE(INV, "batch_size", segrl_reward_http(&ho, &o_rw));
    CASE(INV, "opts", segrl_reward_http(NULL, &o_rw));
    segrl_reward_impl im = {SEGRL_REWARD_ABI_VERSION, 0, "x", NULL, noop_score, NULL, NULL};
    CASE(INV, "impl", segrl_reward_custom(NULL, &o_rw));
    im.abi_version = 99;
    CASE(INV, "abi_version", segrl_reward_custom(&im, &o_rw));
    im.abi_version = SEGRL_REWARD_ABI_VERSION, im.score = NULL;
    CASE(INV, "score", segrl_reward_custom(&im, &o_rw));
    segrl_reward_free(g);
    segrl_reward_free(g2);
}

// ----------------------------------------------------------------------------
// tokenizer

static void test_tokenizer(void) {
    segrl_tokenizer *tk = NULL;
    CONTROL(segrl_tokenizer_load(SEGRL_BADINPUT_FIXTURES "/tokenizer/gpt2.json", &tk));
    if (!tk) return;
    {
        int32_t *ids0 = NULL;
        int64_t n0 = 0;
        CONTROL(segrl_tokenizer_encode(tk, "hi", 2, 0, &ids0, &n0));
        segrl_free(ids0);
    }
    CASE(INV, "path", segrl_tokenizer_load(NULL, &o_tok));
    CASE(INV, "/nonexistent/tok.json", segrl_tokenizer_load("/nonexistent/tok.json", &o_tok));
    CASE(INV, "out", segrl_tokenizer_load(SEGRL_BADINPUT_FIXTURES "/tokenizer/gpt2.json", NULL));
    static const struct {
        segrl_status st;
        const char *word, *json;
    } bad[] = {
        {INV, "JSON", "{\"model\": "},
        {INV, "JSON", "[1, 2]"},
        {INV, "model", "{}"},
        {SEGRL_ERR_UNSUPPORTED, "model.type", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}"},
        {INV, "model.vocab", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}"},
        {INV, "model.vocab", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1.5}, \"merges\": []}}"},
        {INV, "model.vocab", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}"},
        /* a few huge ids would allocate gigabytes: found by fuzz/fuzz-tokenizer-json */
        {INV, "too sparse", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 130000000}, \"merges\": []}}"},
        {INV, "too large", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 2000000000}, \"merges\": []}}"},
        {INV, "added_tokens", "{\"added_tokens\": 5, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}"},
        {INV, "model.merges", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": 3}}"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CASE(bad[i].st, bad[i].word, segrl_tokenizer_load_json(bad[i].json, strlen(bad[i].json), &o_tok));
    CASE(INV, "json", segrl_tokenizer_load_json(NULL, 10, &o_tok));
    CASE(INV, "tok", segrl_tokenizer_encode(NULL, "a", 1, 0, &o_ids, &o_n));
    CASE(INV, "text", segrl_tokenizer_encode(tk, NULL, 3, 0, &o_ids, &o_n));
    CASE(INV, "out_ids", segrl_tokenizer_encode(tk, "a", 1, 0, NULL, &o_n));
    CASE(INV, "out_n", segrl_tokenizer_encode(tk, "a", 1, 0, &o_ids, NULL));
    int32_t ids[3] = {5, 6, 7};
    int64_t vs = segrl_tokenizer_vocab_size(tk);
    CASE(INV, "ids", segrl_tokenizer_decode(tk, NULL, 3, 0, &o_txt, &o_len));
    CASE(INV, "n", segrl_tokenizer_decode(tk, ids, -1, 0, &o_txt, &o_len));
    CASE(INV, "out_text", segrl_tokenizer_decode(tk, ids, 3, 0, NULL, &o_len));
    ids[1] = (int32_t)vs;
    CASE(INV, "ids[1]", segrl_tokenizer_decode(tk, ids, 3, 0, &o_txt, &o_len));
    ids[1] = -1;
    CASE(INV, "ids[1]", segrl_tokenizer_decode(tk, ids, 3, 0, &o_txt, &o_len));
    ids[1] = INT32_MIN;
    CASE(INV, "ids[1]", segrl_tokenizer_decode(tk, ids, 3, 0, &o_txt, &o_len));
    CASE(INV, "id", segrl_tokenizer_token_bytes(tk, (int32_t)vs, &o_cstr, &o_len));
    CASE(INV, "id", segrl_tokenizer_token_bytes(tk, -5, &o_cstr, &o_len));
    segrl_chat_message msgs[2] = {{"user", "hello"}, {"assistant", NULL}};
    CASE(INV, "format", segrl_chat_render(9, msgs, 1, 1, &o_txt, &o_len));
    CASE(INV, "messages", segrl_chat_render(SEGRL_CHAT_CHATML, NULL, 1, 1, &o_txt, &o_len));
    CASE(INV, "n", segrl_chat_render(SEGRL_CHAT_CHATML, msgs, -1, 1, &o_txt, &o_len));
    CASE(INV, "messages[1]", segrl_chat_render(SEGRL_CHAT_CHATML, msgs, 2, 1, &o_txt, &o_len));
    CASE(INV, "<|begin_of_text|>",
         segrl_tokenizer_encode_chat(tk, SEGRL_CHAT_LLAMA3, msgs, 1, 1, &o_ids, &o_n));
    CASE(INV, "vocab_size", segrl_tokenizer_train("abc", 3, 10, NULL, 0, "/tmp/never-written.json"));
    CASE(INV, "out_path", segrl_tokenizer_train("abc", 3, 300, NULL, 0, NULL));
    segrl_tokenizer_free(tk);
}

// ----------------------------------------------------------------------------
// safetensors

static char st_dir[256];

/* writes [8-byte length][header][data bytes] to st_dir/name and returns the path */
static const char *st_file(const char *name, const char *header, size_t data_bytes,
                           uint64_t fake_len) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", st_dir, name);
    FILE *f = fopen(path, "wb");
    uint64_t n = fake_len ? fake_len : strlen(header);
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(n >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
    fclose(f);
    return path;
}

static void test_safetensors(void) {
    snprintf(st_dir, sizeof st_dir, "/tmp/segrl-badinput-%ld", (long)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", st_dir);
    CHECK(system(cmd) == 0, "mkdir");
    segrl_safetensors *st = NULL;
    const char *good = st_file("good.safetensors",
                               "{\"__metadata__\":{\"a\":\"b\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
                               "\"data_offsets\":[0,8]}}", 8, 0);
    CONTROL(segrl_safetensors_open(good, &st));
    if (!st) return;
    CASE(INV, "path", segrl_safetensors_open(NULL, &o_st));
    CASE(INV, "/nonexistent/x.safetensors", segrl_safetensors_open("/nonexistent/x.safetensors", &o_st));
    CASE(INV, "out", segrl_safetensors_open(good, NULL));
    static const struct {
        const char *file, *word, *header;
        size_t data;
        uint64_t fake;
    } bad[] = {
        {"short", "short", "", 0, 0},
        {"hlen", "header", "{}", 0, 1000},
        {"huge", "header", "{}", 0, (uint64_t)1 << 40},
        {"json", "header", "{\"w\": ", 0, 0},
        {"dtype", "w", "{\"w\":{\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0},
        {"shape", "w", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, 0},
        {"ovf", "w", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                     "\"data_offsets\":[0,8]}}", 8, 0},
        {"size", "w", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0},
        {"past", "w", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8, 0},
        {"order", "w", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, 0},
        {"overlap", "v", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"v\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, 0},
        {"dims", "w", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, 0},
        {"meta", "__metadata__", "{\"__metadata__\":{\"a\":1}}", 0, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CASE(INV, bad[i].word, segrl_safetensors_open(st_file(bad[i].file, bad[i].header, bad[i].data,
                                                                  bad[i].fake), &o_st));
    CASE(INV, "index", segrl_safetensors_get(st, -1, &o_tensor));
    CASE(INV, "index", segrl_safetensors_get(st, 1, &o_tensor));
    CASE(INV, "st", segrl_safetensors_get(NULL, 0, &o_tensor));
    CASE(INV, "out", segrl_safetensors_get(st, 0, NULL));
    CASE(INV, "not found", segrl_safetensors_find(st, "nope", &o_tensor));
    CASE(INV, "name", segrl_safetensors_find(st, NULL, &o_tensor));
    CASE(INV, "index", segrl_safetensors_metadata_at(st, 1, &o_cstr, &o_cstr2));
    segrl_safetensors_close(st);
    CASE(INV, "dir", segrl_safetensors_open_dir(NULL, &o_st));
    CASE(INV, "/nonexistent-dir", segrl_safetensors_open_dir("/nonexistent-dir", &o_st));
    {
        char ip[512];
        snprintf(ip, sizeof ip, "%s/model.safetensors.index.json", st_dir);
        FILE *f = fopen(ip, "w");
        fputs("{\"weight_map\": {\"w\": \"../escape.safetensors\"}}", f);
        fclose(f);
        CASE(INV, "escape.safetensors", segrl_safetensors_open_dir(st_dir, &o_st));
        remove(ip);
    }
    /* writer */
    char wpath[512];
    snprintf(wpath, sizeof wpath, "%s/out.safetensors", st_dir);
    float data[4] = {1, 2, 3, 4};
    segrl_st_tensor t[2] = {{"a", SEGRL_ST_F32, 1, {4}, data, 0}, {"b", SEGRL_ST_F32, 1, {2}, data, 0}};
    CONTROL(segrl_safetensors_write(wpath, t, 2, NULL, NULL, 0));
    segrl_st_tensor u[2];
    CASE(INV, "path", segrl_safetensors_write(NULL, t, 2, NULL, NULL, 0));
    CASE(INV, "tensors", segrl_safetensors_write(wpath, NULL, 2, NULL, NULL, 0));
    CASE(INV, "n", segrl_safetensors_write(wpath, t, -1, NULL, NULL, 0));
    memcpy(u, t, sizeof u), u[1].name = "a";
    CASE(INV, "a", segrl_safetensors_write(wpath, u, 2, NULL, NULL, 0));
    memcpy(u, t, sizeof u), u[1].name = "";
    CASE(INV, "name", segrl_safetensors_write(wpath, u, 2, NULL, NULL, 0));
    memcpy(u, t, sizeof u), u[1].name = "__metadata__";
    CASE(INV, "__metadata__", segrl_safetensors_write(wpath, u, 2, NULL, NULL, 0));
    memcpy(u, t, sizeof u), u[1].dtype = 99;
    CASE(INV, "b", segrl_safetensors_write(wpath, u, 2, NULL, NULL, 0));
    memcpy(u, t, sizeof u), u[1].ndim = 9;
    CASE(INV, "b", segrl_safetensors_write(wpath, u, 2, NULL, NULL, 0));
    memcpy(u, t, sizeof u), u[1].shape[0] = -2;
    CASE(INV, "b", segrl_safetensors_write(wpath, u, 2, NULL, NULL, 0));
    memcpy(u, t, sizeof u), u[1].ndim = 3, u[1].shape[0] = u[1].shape[1] = u[1].shape[2] = (int64_t)1 << 30;
    CASE(INV, "b", segrl_safetensors_write(wpath, u, 2, NULL, NULL, 0));
    memcpy(u, t, sizeof u), u[1].data = NULL;
    CASE(INV, "b", segrl_safetensors_write(wpath, u, 2, NULL, NULL, 0));
    CASE(INV, "meta_keys", segrl_safetensors_write(wpath, t, 2, NULL, NULL, 1));
    /* the refused writes left the earlier file whole */
    segrl_safetensors *back = NULL;
    CHECK(segrl_safetensors_open(wpath, &back) == SEGRL_OK && segrl_safetensors_count(back) == 2,
          "the file written by the control was damaged by a refused write");
    segrl_safetensors_close(back);
    snprintf(cmd, sizeof cmd, "rm -rf %s", st_dir);
    CHECK(system(cmd) == 0, "rm");
}

// ----------------------------------------------------------------------------
// rollout

static segrl_status score_one(void *user, int64_t prompt, const int32_t *tokens, int64_t n,
                              int64_t prompt_len, float *out) {
    (void)user, (void)prompt, (void)tokens, (void)n, (void)prompt_len;
    *out = 1;
    return SEGRL_OK;
}

static void test_rollout(void) {
    int64_t po[3] = {0, 2, 3};
    int32_t ptok[3] = {5, 6, 7};
    segrl_rollout_prompts pr = {2, po, ptok, NULL}, q;
    segrl_rollout_config c = segrl_rollout_config_default(SEGRL_ROLLOUT_GROUP), d;
    c.group_size = 2, c.max_new_tokens = 4;
    segrl_rollout *r = NULL;
    CONTROL(segrl_rollout_init(&c, &pr, score_one, NULL, &r));
    CASE(INV, "config", segrl_rollout_init(NULL, &pr, score_one, NULL, &o_ro));
    CASE(INV, "prompts", segrl_rollout_init(&c, NULL, score_one, NULL, &o_ro));
    CASE(INV, "score", segrl_rollout_init(&c, &pr, NULL, NULL, &o_ro));
    CASE(INV, "out", segrl_rollout_init(&c, &pr, score_one, NULL, NULL));
    d = c, d.method = 9;
    CASE(INV, "method", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = c, d.group_size = 0;
    CASE(INV, "group_size", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    /* G * P overflows 32 bits; it used to be counted in 64 and allocated (and zeroed) tens of
     * gigabytes before failing with SEGRL_ERR_ALLOC: now refused up front */
    d = c, d.group_size = INT32_MAX;
    CASE(INV, "group_size", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_CHAIN), d.mc_samples = 1 << 20;
    CASE(INV, "mc_samples", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_TREE), d.branching[0] = INT32_MAX;
    CASE(INV, "branching[0]", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = c, d.max_new_tokens = 0;
    CASE(INV, "max_new_tokens", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = c, d.n_stop = 1, d.stop_ids = NULL;
    CASE(INV, "stop_ids", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = c, d.n_stop = -1;
    CASE(INV, "n_stop", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = c, d.seed_scope = 2;
    CASE(INV, "seed_scope", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = c, d.prompt_base = -1;
    CASE(INV, "prompt_base", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = c, d.prompt_base = INT64_MAX;
    CASE(INV, "prompt_base", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    q = pr, q.num_prompts = 0;
    CASE(INV, "num_prompts", segrl_rollout_init(&c, &q, score_one, NULL, &o_ro));
    q = pr, q.offsets = NULL;
    CASE(INV, "offsets", segrl_rollout_init(&c, &q, score_one, NULL, &o_ro));
    int64_t badpo[3] = {0, 2, 1};
    q = pr, q.offsets = badpo;
    CASE(INV, "offsets", segrl_rollout_init(&c, &q, score_one, NULL, &o_ro));
    q = pr, q.tokens = NULL;
    CASE(INV, "tokens", segrl_rollout_init(&c, &q, score_one, NULL, &o_ro));
    d = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_CHAIN), d.mc_samples = 0;
    CASE(INV, "mc_samples", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_CHAIN), d.mc_adaptive = 1, d.mc_z = NAN;
    CASE(INV, "mc_z", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_CHAIN), d.prob_mask_tau = NAN;
    CASE(INV, "prob_mask_tau", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_CHAIN), d.cutpoints.k = 0;
    CASE(INV, "k", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = segrl_rollout_config_default(SEGRL_ROLLOUT_VINEPPO);
    CASE(INV, "delimiters", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    int32_t nl = 3;
    d.delimiters = &nl, d.n_delimiters = 1, d.gamma = NAN;
    CASE(INV, "gamma", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_TREE), d.tree_levels = 0;
    CASE(INV, "tree_levels", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_TREE), d.tree_levels = SEGRL_ROLLOUT_MAX_LEVELS + 1;
    CASE(INV, "tree_levels", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    d = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_TREE), d.branching[1] = 0;
    CASE(INV, "branching", segrl_rollout_init(&d, &pr, score_one, NULL, &o_ro));
    if (r) {
        int32_t toks[4] = {1, 2, 3, 4};
        float lps[4] = {-1, -1, NAN, -1};
        CASE(INV, "request", segrl_rollout_put(r, 99, 0, toks, NULL, 2, 1));
        CASE(INV, "request", segrl_rollout_put(r, -1, 0, toks, NULL, 2, 1));
        CASE(INV, "len", segrl_rollout_put(r, 0, 0, toks, NULL, -1, 1));
        CASE(INV, "len", segrl_rollout_put(r, 0, 0, toks, NULL, 5, 1));
        CASE(INV, "tokens", segrl_rollout_put(r, 0, 0, NULL, NULL, 2, 1));
        CASE(INV, "logprobs", segrl_rollout_put(r, 0, 0, toks, lps, 4, 1));
        segrl_rollout_free(r);
    }
    float mean[2] = {0.5f, NAN};
    int64_t cnt[2] = {2, 2}, badcnt[2] = {2, -1};
    CASE(INV, "mean", segrl_mc_allocate(mean, cnt, 2, 4, 1.96f, oi1));
    mean[1] = 0.5f;
    CASE(INV, "count", segrl_mc_allocate(mean, badcnt, 2, 4, 1.96f, oi1));
    CASE(INV, "z", segrl_mc_allocate(mean, cnt, 2, 4, NAN, oi1));
    CASE(INV, "n", segrl_mc_allocate(mean, cnt, -1, 4, 1.96f, oi1));
    CASE(INV, "batch", segrl_mc_allocate(mean, cnt, 2, -4, 1.96f, oi1));
    CASE(INV, "out_add", segrl_mc_allocate(mean, cnt, 2, 4, 1.96f, NULL));
    CASE(INV, "max_age", segrl_replay_init(-1, 4, &o_rb));
    CASE(INV, "out", segrl_replay_init(2, 4, NULL));
}

// ----------------------------------------------------------------------------
// the advantage estimators test-errors.c leaves out (RLOO, REINFORCE++, OPO, pass@k)

typedef segrl_status (*outcome_fn)(const segrl_layout *, const segrl_outcome *,
                                   const segrl_outcome_opts *, const segrl_exec *, segrl_view,
                                   segrl_view);

static void test_outcome(void) {
    static float sc[4] = {1, 0, 1, 1};
    static int32_t gi[4] = {0, 0, 1, 1};
    static uint8_t m[4 * T];
    for (int i = 0; i < 4 * T; i++) m[i] = 1;
    segrl_layout pad = segrl_layout_padded();
    segrl_outcome in = {fv(sc, 4), segrl_view_none(), segrl_view_2d(m, SEGRL_DTYPE_U8, cpu, 4, T),
                        v1(gi, SEGRL_DTYPE_I32, 4), 2}, x;
    const struct {
        outcome_fn f;
        const char *name;
    } fns[4] = {{segrl_rloo, "rloo"}, {segrl_reinforce_pp_baseline, "reinforce"},
                {segrl_opo, "opo"}, {segrl_grpo_passk, "passk"}};
    segrl_view OT = f2(of1, 4, T), OS = fv(of2, 4);
    for (int k = 0; k < 4; k++) {
        outcome_fn f = fns[k].f;
        CONTROL(f(&pad, &in, NULL, &ex, OT, OS));
        CASE(INV, "in", f(&pad, NULL, NULL, &ex, OT, OS));
        sc[2] = NAN;
        CASE(INV, "scores", f(&pad, &in, NULL, &ex, OT, OS));
        sc[2] = 1;
        x = in, x.num_groups = 0;
        CASE(INV, "num_groups", f(&pad, &x, NULL, &ex, OT, OS));
        gi[3] = 2;
        CASE(INV, "group_index", f(&pad, &in, NULL, &ex, OT, OS));
        gi[3] = 1;
        x = in, x.scores = fv(sc, 3);
        CASE(INV, "scores", f(&pad, &x, NULL, &ex, OT, OS));
        CASE(INV, "out_seq_advantages", f(&pad, &in, NULL, &ex, OT, fv(of2, 4 + HUGE32)));
    }
    segrl_outcome_opts oo = segrl_outcome_opts_default();
    oo.eps = NAN;
    CASE(INV, "eps", segrl_grpo_passk(&pad, &in, &oo, &ex, OT, OS));
    oo = segrl_outcome_opts_default(), oo.std_scope = 9;
    CASE(INV, "std_scope", segrl_grpo_passk(&pad, &in, &oo, &ex, OT, OS));
}

int main(void) {
    cpu = segrl_cpu();
    ex.workspace = ws, ex.workspace_bytes = sizeof ws, ex.checks = SEGRL_CHECKS_FULL;
    static const struct {
        const char *name;
        void (*fn)(void);
    } fam[] = {{"losses", test_loss},          {"log-probs", test_logprobs},
               {"segments", test_segments},    {"trees", test_trees},
               {"rewards", test_rewards},      {"tokenizer", test_tokenizer},
               {"safetensors", test_safetensors}, {"rollout", test_rollout},
               {"outcome estimators", test_outcome}};
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        int before = n_cases;
        fam[i].fn();
        printf("%-20s %d cases\n", fam[i].name, n_cases - before);
    }
    printf("%d bad-input cases\n", n_cases);
    CHECK(n_cases >= 150, "only %d cases", n_cases);
    return h_finish();
}
