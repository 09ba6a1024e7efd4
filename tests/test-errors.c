/* test-errors.c — bad input across the public API: each case must return the documented status,
 * a message naming the argument at fault, and leave every output untouched (guard values). */
#include "harness.h"

#include <segrl/segrl.h>

#define B 4
#define T 6
#define N (B * T)
#define GUARD 12345.0f

enum { GAE, RET, WHITEN, GRPO, REMAX, GPG };

/* every argument of every call, set to a valid default and then broken by one case */
typedef struct args {
    segrl_layout layout;
    segrl_view r, v, m, lp, rf, x, gidx, scores, trew, greedy;
    segrl_view out_a, out_q, out_seq;
    float gamma, lambda;
    int64_t G;
    segrl_returns_opts ropts;
    segrl_whiten_opts wopts;
    segrl_outcome_opts oopts;
    segrl_exec exec;
    int in_null;
} args;

static float r[N], v[N], lp[N], rf[N], scores[B], greedy[B];
static uint8_t m[N];
static int32_t gidx[B] = {0, 1, 0, 1};
static int64_t off[B + 1] = {0, 6, 10, 18, 24};
static float out_a[N + 8], out_q[N + 8], out_seq[B + 8];
static double ws[4096];

static segrl_view F(float *p, int64_t b, int64_t t) { return segrl_view_2d(p, SEGRL_DTYPE_F32, segrl_cpu(), b, t); }
static segrl_view V1(void *p, segrl_dtype dt, int64_t n) { return segrl_view_1d(p, dt, segrl_cpu(), n); }

static void defaults(args *a) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < N; i++) r[i] = 0.5f, v[i] = 0.25f, lp[i] = -1, rf[i] = -1.5f, m[i] = i % T < 4;
    for (int b = 0; b < B; b++) scores[b] = (float)(b % 2), greedy[b] = 0.5f;
    a->layout = segrl_layout_padded();
    a->r = F(r, B, T), a->v = F(v, B, T), a->m = segrl_view_2d(m, SEGRL_DTYPE_U8, segrl_cpu(), B, T);
    a->lp = F(lp, B, T), a->rf = F(rf, B, T), a->x = F(r, B, T);
    a->gidx = V1(gidx, SEGRL_DTYPE_I32, B), a->scores = V1(scores, SEGRL_DTYPE_F32, B);
    a->trew = segrl_view_none(), a->greedy = V1(greedy, SEGRL_DTYPE_F32, B);
    a->out_a = F(out_a, B, T), a->out_q = F(out_q, B, T), a->out_seq = V1(out_seq, SEGRL_DTYPE_F32, B);
    a->gamma = 1, a->lambda = 0.95f, a->G = 2;
    a->ropts = (segrl_returns_opts){1.0f, 0.1f, SEGRL_KL_K3};
    a->wopts = segrl_whiten_opts_default();
    a->oopts = segrl_outcome_opts_default();
    a->exec.workspace = ws, a->exec.workspace_bytes = sizeof ws;
    for (int i = 0; i < N + 8; i++) out_a[i] = out_q[i] = GUARD;
    for (int i = 0; i < B + 8; i++) out_seq[i] = GUARD;
}

static segrl_status call(int fam, args *a) {
    segrl_outcome in = {a->scores, a->trew, a->m, a->gidx, a->G};
    const segrl_outcome *pin = a->in_null ? NULL : &in;
    switch (fam) {
    case GAE: return segrl_gae(&a->layout, a->r, a->v, a->m, a->gamma, a->lambda, &a->exec, a->out_a, a->out_q);
    case RET: return segrl_discounted_returns(&a->layout, a->r, a->m, a->lp, a->rf, &a->ropts, &a->exec, a->out_a);
    case WHITEN: return segrl_whiten(&a->layout, a->x, a->m, a->gidx, a->G, &a->wopts, &a->exec, a->out_a);
    case GRPO: return segrl_grpo(&a->layout, pin, &a->oopts, &a->exec, a->out_a, a->out_seq);
    case REMAX: return segrl_remax(&a->layout, pin, a->greedy, &a->exec, a->out_a, a->out_seq);
    default: return segrl_gpg(&a->layout, pin, &a->oopts, &a->exec, a->out_a, a->out_seq);
    }
}

/* to packed layout: 1-D tensors of N tokens with offsets */
static void packed(args *a) {
    a->layout = segrl_layout_packed(V1(off, SEGRL_DTYPE_I64, B + 1));
    a->r = V1(r, SEGRL_DTYPE_F32, N), a->v = V1(v, SEGRL_DTYPE_F32, N), a->x = a->r;
    a->m = V1(m, SEGRL_DTYPE_U8, N), a->lp = V1(lp, SEGRL_DTYPE_F32, N), a->rf = V1(rf, SEGRL_DTYPE_F32, N);
    a->out_a = V1(out_a, SEGRL_DTYPE_F32, N), a->out_q = V1(out_q, SEGRL_DTYPE_F32, N);
}

/* Case `id`: break one argument. Sets the family, the expected status and the word the message
 * must contain. Returns 0 past the last case. */
static int setup(int id, args *a, int *fam, segrl_status *want, const char **word) {
    segrl_view none = segrl_view_none();
    int64_t big[2] = {(int64_t)1 << 62, 8};
    int64_t s2[2] = {T * 2, 2};
    int64_t s_overlap[2] = {T - 1, 1};
    *want = SEGRL_ERR_INVALID;
    switch (id) {
    // GAE: presence, dtype, shape, strides, device
    case 0: *fam = GAE, a->r = none, *word = "rewards"; break;
    case 1: *fam = GAE, a->v = none, *word = "values"; break;
    case 2: *fam = GAE, a->out_a = none, *word = "out_advantages"; break;
    case 3: *fam = GAE, a->out_q = none, *word = "out_returns"; break;
    case 4: *fam = GAE, a->r.dtype = SEGRL_DTYPE_BF16, *word = "rewards"; break;
    case 5: *fam = GAE, a->v.dtype = SEGRL_DTYPE_I32, *word = "values"; break;
    case 6: *fam = GAE, a->m.dtype = SEGRL_DTYPE_F16, *word = "mask"; break;
    case 7: *fam = GAE, a->out_a.dtype = SEGRL_DTYPE_F16, *word = "out_advantages"; break;
    case 8: *fam = GAE, a->v = F(v, B, T - 1), *word = "values"; break;
    case 9: *fam = GAE, a->m = segrl_view_2d(m, SEGRL_DTYPE_U8, segrl_cpu(), B - 1, T), *word = "mask"; break;
    case 10: *fam = GAE, a->out_q = F(out_q, B + 1, T), *word = "out_returns"; break;
    case 11: *fam = GAE, a->r = V1(r, SEGRL_DTYPE_F32, N), *word = "rewards"; break;
    case 12: *fam = GAE, a->r = segrl_view_nd(r, SEGRL_DTYPE_F32, segrl_cpu(), 2, (int64_t[]){B, T / 2}, s2), a->v = F(v, B, T / 2), a->m = none, a->out_a = F(out_a, B, T / 2), a->out_q = F(out_q, B, T / 2), *word = "innermost stride"; break;
    case 13: *fam = GAE, a->v = segrl_view_nd(v, SEGRL_DTYPE_F32, segrl_cpu(), 2, (int64_t[]){B, T}, s_overlap), *word = "values"; break;
    case 14: *fam = GAE, a->r.ndim = 3, a->r.shape[2] = 1, a->r.strides[2] = 1, *word = "rewards"; break;
    case 15: *fam = GAE, a->r.shape[0] = -1, *word = "rewards"; break;
    case 16: *fam = GAE, a->v.device = segrl_cuda(0), *word = "values"; break;
    case 17: *fam = GAE, a->out_q.device = segrl_cuda(1), *word = "out_returns"; break;
    case 18: *fam = GAE, a->out_q = a->out_a, *word = "out_returns"; break;
    case 19: *fam = GAE, a->r.data = NULL, *word = "rewards"; break;
    case 20: *fam = GAE, a->gamma = NAN, *word = "gamma"; break;
    case 21: *fam = GAE, a->lambda = INFINITY, *word = "lambda"; break;
    case 22: *fam = GAE, a->exec.checks = 7, *word = "exec"; break;
    case 23: *fam = GAE, a->r.dtype = 42, *word = "rewards"; break;
    case 24: *fam = GAE, a->r = segrl_view_2d(r, SEGRL_DTYPE_F32, segrl_cpu(), big[0], big[1]), *word = "overflow"; break;
    // GAE: non-finite rewards / values at valid tokens
    case 25: *fam = GAE, r[7] = NAN, *word = "rewards"; break;
    case 26: *fam = GAE, v[13] = INFINITY, *word = "values"; break;
    case 27: *fam = GAE, r[0] = -INFINITY, *word = "sequence 0"; break;
    // packed layouts
    case 28: *fam = GAE, packed(a), off[2] = 5, *word = "layout->offsets"; break;
    case 29: *fam = GAE, packed(a), off[4] = 23, *word = "layout->offsets"; break;
    case 30: *fam = GAE, packed(a), off[0] = 1, *word = "layout->offsets"; break;
    case 31: *fam = GAE, packed(a), a->layout.offsets.dtype = SEGRL_DTYPE_F32, *word = "layout->offsets"; break;
    case 32: *fam = GAE, packed(a), a->layout.offsets.ndim = 2, a->layout.offsets.shape[1] = 1, *word = "layout->offsets"; break;
    case 33: *fam = GAE, packed(a), a->r = F(r, B, T), *word = "rewards"; break;
    case 34: *fam = GAE, packed(a), a->v = V1(v, SEGRL_DTYPE_F32, N - 1), *word = "values"; break;
    case 35: *fam = GAE, packed(a), a->layout.offsets.device = segrl_cuda(0), *word = "layout->offsets"; break;
    case 36: *fam = GAE, packed(a), a->layout.offsets.shape[0] = 0, *word = "layout->offsets"; break;
    case 37: *fam = GAE, packed(a), a->layout.offsets.data = NULL, *word = "layout->offsets"; break;
    case 38: *fam = GAE, packed(a), r[20] = NAN, *word = "sequence 3"; break;
    // returns
    case 39: *fam = RET, a->lp = none, *word = "logprobs"; break;
    case 40: *fam = RET, a->rf = none, *word = "ref_logprobs"; break;
    case 41: *fam = RET, a->ropts.kl_estimator = 9, *word = "opts->kl_estimator"; break;
    case 42: *fam = RET, a->ropts.gamma = NAN, *word = "opts->gamma"; break;
    case 43: *fam = RET, a->ropts.kl_coef = INFINITY, *word = "opts->kl_coef"; break;
    case 44: *fam = RET, lp[2] = NAN, *word = "logprobs"; break;
    case 45: *fam = RET, rf[3] = INFINITY, *word = "ref_logprobs"; break;
    case 46: *fam = RET, r[1] = NAN, *word = "rewards"; break;
    case 47: *fam = RET, a->lp = F(lp, B, T - 2), *word = "logprobs"; break;
    case 48: *fam = RET, a->out_a.dtype = SEGRL_DTYPE_I64, *word = "out_returns"; break;
    // whitening
    case 49: *fam = WHITEN, a->exec.workspace = NULL, *want = SEGRL_ERR_WORKSPACE, *word = "workspace"; break;
    case 50: *fam = WHITEN, a->exec.workspace_bytes = 16, *want = SEGRL_ERR_WORKSPACE, *word = "workspace"; break;
    case 51: *fam = WHITEN, gidx[2] = 2, *word = "group_index"; break;
    case 52: *fam = WHITEN, gidx[0] = -1, *word = "group_index"; break;
    case 53: *fam = WHITEN, a->gidx = V1(gidx, SEGRL_DTYPE_I32, B - 1), *word = "group_index"; break;
    case 54: *fam = WHITEN, a->gidx.dtype = SEGRL_DTYPE_F32, *word = "group_index"; break;
    case 55: *fam = WHITEN, a->G = 0, *word = "num_groups"; break;
    case 56: *fam = WHITEN, a->wopts.eps = -1, *word = "opts->eps"; break;
    case 57: *fam = WHITEN, a->wopts.eps = NAN, *word = "opts->eps"; break;
    case 58: *fam = WHITEN, a->x = none, *word = "x"; break;
    case 59: *fam = WHITEN, r[9] = NAN, *word = "x"; break;
    case 60: *fam = WHITEN, a->out_a = F(out_a, T, B), *word = "out"; break;
    case 61: *fam = WHITEN, a->exec.workspace = (char *)ws + 4, a->exec.workspace_bytes = 4000, *want = SEGRL_ERR_WORKSPACE, *word = "aligned"; break;
    // outcome estimators
    case 62: *fam = GRPO, a->in_null = 1, *word = "in"; break;
    case 63: *fam = GRPO, scores[1] = NAN, *word = "in->scores"; break;
    case 64: *fam = GRPO, scores[3] = INFINITY, *word = "entry 3"; break;
    case 65: *fam = GRPO, a->scores = none, *word = "in->token_rewards"; break;
    case 66: *fam = GRPO, a->scores = none, a->trew = F(r, B, T), r[2] = NAN, *word = "in->token_rewards"; break;
    case 67: *fam = GRPO, a->gidx = none, *word = "in->group_index"; break;
    case 68: *fam = GRPO, gidx[1] = 2, *word = "in->group_index"; break;
    case 69: *fam = GRPO, gidx[3] = -5, *word = "entry 3"; break;
    case 70: *fam = GRPO, a->G = 0, *word = "in->num_groups"; break;
    case 71: *fam = GRPO, a->out_seq = V1(out_seq, SEGRL_DTYPE_F32, B + 1), *word = "out_seq_advantages"; break;
    case 72: *fam = GRPO, a->oopts.std_scope = 3, *word = "opts->std_scope"; break;
    case 73: *fam = GRPO, a->oopts.singleton = -1, *word = "opts->singleton"; break;
    case 74: *fam = GRPO, a->oopts.eps = -0.5f, *word = "opts->eps"; break;
    case 75: *fam = GRPO, a->scores = V1(scores, SEGRL_DTYPE_F32, B - 1), *word = "in->scores"; break;
    case 76: *fam = GRPO, a->scores.dtype = SEGRL_DTYPE_BF16, *word = "in->scores"; break;
    case 77: *fam = GRPO, a->m = segrl_view_2d(m, SEGRL_DTYPE_U8, segrl_cpu(), B, T + 1), *word = "in->mask"; break;
    case 78: *fam = GRPO, a->out_a = none, *word = "out_token_advantages"; break;
    case 79: *fam = GRPO, a->exec.workspace_bytes = 64, *want = SEGRL_ERR_WORKSPACE, *word = "segrl_workspace_size"; break;
    case 80: *fam = GRPO, a->out_seq.data = out_a, *word = "out_seq_advantages"; break;
    case 81: *fam = GRPO, a->gidx.device = segrl_cuda(0), *word = "in->group_index"; break;
    case 82: *fam = GRPO, packed(a), off[1] = 30, *word = "layout->offsets"; break;
    case 83: *fam = REMAX, a->greedy = none, *word = "greedy_scores"; break;
    case 84: *fam = REMAX, greedy[2] = NAN, *word = "greedy_scores"; break;
    case 85: *fam = REMAX, a->greedy = V1(greedy, SEGRL_DTYPE_F32, 2), *word = "greedy_scores"; break;
    case 86: *fam = GPG, scores[0] = NAN, *word = "in->scores"; break;
    case 87: *fam = GPG, a->gidx = V1(gidx, SEGRL_DTYPE_U8, B), *word = "in->group_index"; break;
    case 89: *fam = GAE, a->v = segrl_view_nd(v, SEGRL_DTYPE_F32, segrl_cpu(), 2, (int64_t[]){B, T}, (int64_t[]){INT64_MAX - 3, 1}), *word = "values: extent overflows"; break;
    case 90: *fam = WHITEN, a->x = segrl_view_2d(r, SEGRL_DTYPE_F32, segrl_cpu(), 3, (int64_t)1 << 62), *word = "B * T overflows"; break;
    case 88: *fam = GAE, a->r.device = segrl_cuda(0), a->v.device = a->m.device = a->out_a.device = a->out_q.device = a->r.device, *want = SEGRL_ERR_NO_DEVICE, *word = "rewards"; break;
    default: return 0;
    }
    return 1;
}

int main(void) {
    int cases = 0;
    for (int id = 0;; id++) {
        args a;
        int fam = 0;
        segrl_status want;
        const char *word = "";
        defaults(&a);
        off[0] = 0, off[1] = 6, off[2] = 10, off[3] = 18, off[4] = 24;
        gidx[0] = 0, gidx[1] = 1, gidx[2] = 0, gidx[3] = 1;
        if (!setup(id, &a, &fam, &want, &word)) break;
        if (id == 88 && segrl_cuda_device_count() > 0) continue; /* a GPU is there */
        cases++;
        segrl_clear_error();
        segrl_status st = call(fam, &a);
        CHECK(st == want, "case %d: status %s, expected %s (%s)", id, segrl_status_str(st),
              segrl_status_str(want), segrl_last_error());
        CHECK(strstr(segrl_last_error(), word) != NULL, "case %d: message \"%s\" does not name %s",
              id, segrl_last_error(), word);
        int touched = 0;
        for (int i = 0; i < N + 8; i++) touched |= out_a[i] != GUARD || out_q[i] != GUARD;
        for (int i = 0; i < B + 8; i++) touched |= out_seq[i] != GUARD;
        CHECK(!touched, "case %d: outputs written on failure", id);
    }
    printf("%d bad-input cases\n", cases);

    /* the documented policy's other half: NaN at an invalid token is never inspected */
    args a;
    defaults(&a);
    r[T - 1] = NAN; /* mask is 0 at t = 4, 5 */
    CHECK(call(GAE, &a) == SEGRL_OK, "NaN at a masked token: %s", segrl_last_error());
    for (int i = 0; i < T - 2; i++) CHECK(isfinite(out_a[i]), "finite advantage at valid token %d", i);
    /* SEGRL_CHECKS_SHAPES skips the content checks: NaN propagates */
    defaults(&a);
    r[2] = NAN;
    a.exec.checks = SEGRL_CHECKS_SHAPES;
    CHECK(call(GAE, &a) == SEGRL_OK && isnan(out_a[0]), "CHECKS_SHAPES propagates NaN");
    /* the valid defaults of every family succeed (so the cases above fail for their one reason) */
    for (int fam = GAE; fam <= GPG; fam++) {
        defaults(&a);
        CHECK(call(fam, &a) == SEGRL_OK, "family %d default: %s", fam, segrl_last_error());
        defaults(&a);
        packed(&a);
        CHECK(call(fam, &a) == SEGRL_OK, "family %d packed default: %s", fam, segrl_last_error());
    }
    return h_finish();
}
