/* test-segment.c — the segment area on the CPU: hand-computed partitions, reductions and
 * advantages (the SPO 5/9 -> 1 chain among them), seeded random batches against plain
 * references written here from the formulas, padded and packed layouts giving identical results,
 * and bad input: status, a message naming the argument, outputs untouched. */
#include "harness.h"

#include <segrl/segrl.h>

#define DEV segrl_cpu()
#define GUARD 12345.0f
#define IGUARD 777

static segrl_view f32v(float *p, int64_t B, int64_t T) { return segrl_view_2d(p, SEGRL_DTYPE_F32, DEV, B, T); }
static segrl_view u8v(uint8_t *p, int64_t B, int64_t T) { return segrl_view_2d(p, SEGRL_DTYPE_U8, DEV, B, T); }
static segrl_view vec(void *p, segrl_dtype dt, int64_t n) { return segrl_view_1d(p, dt, DEV, n); }
static segrl_view i64v(int64_t *p, int64_t n) { return vec(p, SEGRL_DTYPE_I64, n); }
static segrl_view f1(float *p, int64_t n) { return vec(p, SEGRL_DTYPE_F32, n); }

static segrl_segments segs(int64_t *off, int64_t B, int64_t *st, int64_t *en, int64_t S) {
    segrl_segments s = {i64v(off, B + 1), i64v(st, S), i64v(en, S)};
    return s;
}

#define OK(call)                                                                                  \
    do {                                                                                          \
        segrl_status st_ = (call);                                                                \
        CHECK(st_ == SEGRL_OK, "%s -> %s: %s", #call, segrl_status_str(st_), segrl_last_error()); \
    } while (0)

static int same_i64(const int64_t *a, const int64_t *b, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static void print_spans(const char *what, const int64_t *st, const int64_t *en, int64_t n) {
    printf("  %s:", what);
    for (int64_t i = 0; i < n; i++) printf(" [%lld,%lld)", (long long)st[i], (long long)en[i]);
    printf("\n");
}

/* expects the spans of one sequence */
static void expect_spans(const char *what, const int64_t *off, const int64_t *st, const int64_t *en,
                         const int64_t *wst, const int64_t *wen, int64_t n) {
    int ok = off[1] - off[0] == n && same_i64(st + off[0], wst, n) && same_i64(en + off[0], wen, n);
    if (!ok) {
        print_spans("got", st + off[0], en + off[0], off[1] - off[0]);
        print_spans("want", wst, wen, n);
    }
    CHECK(ok, "%s: spans differ", what);
}

// ----------------------------------------------------------------------------
// hand-computed partitions

static void test_partition_hand(void) {
    int64_t off[4], st[16], en[16];
    /* 7 valid tokens in 3 parts: ordinals [0,2) [2,4) [4,7); every 3: [0,3) [3,6) [6,7) */
    {
        uint8_t m[7] = {1, 1, 1, 1, 1, 1, 1};
        segrl_segments o = segs(off, 1, st, en, 16);
        OK(segrl_partition_fixed(NULL, u8v(m, 1, 7), 3, 0, NULL, &o));
        expect_spans("fixed K=3", off, st, en, (int64_t[]){0, 2, 4}, (int64_t[]){2, 4, 7}, 3);
        OK(segrl_partition_fixed(NULL, u8v(m, 1, 7), 0, 3, NULL, &o));
        expect_spans("every 3", off, st, en, (int64_t[]){0, 3, 6}, (int64_t[]){3, 6, 7}, 3);
    }
    /* holes and padding: valid slots 1 2 4 5 6 (n = 5); K = 2 -> ordinals {0,1} {2,3,4}; the
     * hole at slot 3 belongs to the first segment; K = 10 -> one segment per valid token; an
     * all-masked row has none */
    {
        uint8_t m[16] = {0, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        segrl_segments o = segs(off, 2, st, en, 16);
        OK(segrl_partition_fixed(NULL, u8v(m, 2, 8), 2, 0, NULL, &o));
        expect_spans("fixed K=2 holes", off, st, en, (int64_t[]){1, 4}, (int64_t[]){4, 7}, 2);
        CHECK(off[2] == 2, "empty row has no segments (offsets[2] = %lld)", (long long)off[2]);
        OK(segrl_partition_fixed(NULL, u8v(m, 2, 8), 10, 0, NULL, &o));
        expect_spans("fixed K=10", off, st, en, (int64_t[]){1, 2, 4, 5, 6},
                     (int64_t[]){2, 4, 5, 6, 7}, 5);
        CHECK(off[2] == 5, "offsets[2] = %lld", (long long)off[2]);
    }
    /* cutpoints: p < 0.9 at t = 1 2 4 5 6 8 9 (low ordinals 1..7) */
    {
        float p[10] = {0.95f, 0.5f, 0.3f, 0.99f, 0.2f, 0.8f, 0.1f, 0.97f, 0.4f, 0.05f};
        segrl_segments o = segs(off, 1, st, en, 16);
        segrl_cutpoint_opts co = segrl_cutpoint_opts_default();
        CHECK(co.tau == 0.9f && co.k == 5 && co.max_segments == 0, "cutpoint defaults");
        co.k = 2; /* the 2nd, 4th, 6th low tokens (t = 2, 5, 8) start segments */
        OK(segrl_partition_cutpoints(NULL, f32v(p, 1, 10), segrl_view_none(), &co, NULL, &o));
        expect_spans("cutpoints k=2", off, st, en, (int64_t[]){0, 2, 5, 8},
                     (int64_t[]){2, 5, 8, 10}, 4);
        co.max_segments = 2; /* only the first cutpoint kept */
        OK(segrl_partition_cutpoints(NULL, f32v(p, 1, 10), segrl_view_none(), &co, NULL, &o));
        expect_spans("cutpoints cap 2", off, st, en, (int64_t[]){0, 2}, (int64_t[]){2, 10}, 2);
        /* defaults (tau 0.9, k 5): the 5th low token is t = 6 */
        OK(segrl_partition_cutpoints(NULL, f32v(p, 1, 10), segrl_view_none(), NULL, NULL, &o));
        expect_spans("cutpoints default", off, st, en, (int64_t[]){0, 6}, (int64_t[]){6, 10}, 2);
        /* masking t = 4 drops one low token: the 5th is now t = 8 */
        uint8_t m[10] = {1, 1, 1, 1, 0, 1, 1, 1, 1, 1};
        OK(segrl_partition_cutpoints(NULL, f32v(p, 1, 10), u8v(m, 1, 10), NULL, NULL, &o));
        expect_spans("cutpoints masked", off, st, en, (int64_t[]){0, 8}, (int64_t[]){8, 10}, 2);
    }
    /* delimiters: id 13 ends a step */
    {
        int64_t ids[7] = {5, 7, 13, 8, 13, 13, 9};
        int32_t d[2] = {99, 13};
        segrl_segments o = segs(off, 1, st, en, 16);
        OK(segrl_partition_delimiters(NULL, segrl_view_2d(ids, SEGRL_DTYPE_I64, DEV, 1, 7),
                                      segrl_view_none(), vec(d, SEGRL_DTYPE_I32, 2), NULL, &o));
        expect_spans("delimiters", off, st, en, (int64_t[]){0, 3, 5, 6}, (int64_t[]){3, 5, 6, 7}, 4);
        int32_t ids2[4] = {1, 2, 3, 13}; /* ends on a delimiter: no empty tail */
        OK(segrl_partition_delimiters(NULL, segrl_view_2d(ids2, SEGRL_DTYPE_I32, DEV, 1, 4),
                                      segrl_view_none(), vec(d, SEGRL_DTYPE_I32, 2), NULL, &o));
        expect_spans("delimiters tail", off, st, en, (int64_t[]){0}, (int64_t[]){4}, 1);
    }
    /* two-call pattern: count, then fill; i32 outputs; a short capacity is refused untouched */
    {
        uint8_t m[6] = {1, 1, 1, 1, 1, 1};
        int32_t o32[3] = {IGUARD, IGUARD, IGUARD}, s32[8], e32[8];
        for (int i = 0; i < 8; i++) s32[i] = e32[i] = IGUARD;
        segrl_segments o = {vec(o32, SEGRL_DTYPE_I32, 3), segrl_view_none(), segrl_view_none()};
        OK(segrl_partition_fixed(NULL, u8v(m, 2, 3), 0, 2, NULL, &o));
        CHECK(o32[0] == 0 && o32[1] == 2 && o32[2] == 4, "count pass offsets %d %d %d", o32[0],
              o32[1], o32[2]);
        o.start = vec(s32, SEGRL_DTYPE_I32, 3), o.end = vec(e32, SEGRL_DTYPE_I32, 3);
        o32[2] = IGUARD;
        segrl_status st_ = segrl_partition_fixed(NULL, u8v(m, 2, 3), 0, 2, NULL, &o);
        CHECK(st_ == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "out->start") &&
                  o32[2] == IGUARD && s32[0] == IGUARD,
              "short capacity: %s", segrl_last_error());
        o.start = vec(s32, SEGRL_DTYPE_I32, 5), o.end = vec(e32, SEGRL_DTYPE_I32, 5);
        OK(segrl_partition_fixed(NULL, u8v(m, 2, 3), 0, 2, NULL, &o));
        CHECK(o32[2] == 4 && s32[0] == 0 && e32[0] == 2 && s32[1] == 2 && e32[1] == 3 &&
                  s32[2] == 0 && e32[3] == 3 && s32[4] == IGUARD && e32[4] == IGUARD,
              "fill pass");
    }
}

// ----------------------------------------------------------------------------
// hand-computed reduce / scatter / advantages / rewards

static void test_ops_hand(void) {
    /* x = 1..6, spans [0,2) and [3,6), slot 4 masked */
    float x[6] = {1, 2, 3, 4, 5, 6}, out[2], tok[6];
    uint8_t m[6] = {1, 1, 1, 1, 0, 1};
    int64_t off[2] = {0, 2}, st[2] = {0, 3}, en[2] = {2, 6};
    segrl_segments s = segs(off, 1, st, en, 2);
    const float want[5][2] = {{3, 10}, {1.5f, 5}, {1, 4}, {2, 6}, {2, 6}};
    for (int op = 0; op < 5; op++) {
        OK(segrl_segment_reduce(NULL, f32v(x, 1, 6), u8v(m, 1, 6), &s, op, NULL, f1(out, 2)));
        CHECK(out[0] == want[op][0] && out[1] == want[op][1], "reduce op %d: %g %g", op, out[0],
              out[1]);
    }
    float v[2] = {7, 9};
    OK(segrl_segment_scatter(NULL, f1(v, 2), u8v(m, 1, 6), &s, SEGRL_SCATTER_LAST, NULL, f32v(tok, 1, 6)));
    CHECK(tok[0] == 0 && tok[1] == 7 && tok[2] == 0 && tok[3] == 0 && tok[4] == 0 && tok[5] == 9,
          "scatter last");
    OK(segrl_segment_scatter(NULL, f1(v, 2), u8v(m, 1, 6), &s, SEGRL_SCATTER_BROADCAST, NULL, f32v(tok, 1, 6)));
    CHECK(tok[0] == 7 && tok[1] == 7 && tok[2] == 0 && tok[3] == 9 && tok[4] == 0 && tok[5] == 9,
          "scatter broadcast");

    /* SPO-chain, the paper's 5/9 -> 1 step: V_1 = 1/2 at the prompt, V_2 = 5/9 at the cutpoint,
     * R = 1: the first segment gets 5/9 - 1/2 = 1/18, the last 1 - 5/9 = 4/9 */
    {
        float V[2] = {0.5f, 5.0f / 9.0f}, R[1] = {1}, A[6], As[2];
        int64_t st2[2] = {0, 3}, en2[2] = {3, 6};
        segrl_segments c = segs(off, 1, st2, en2, 2);
        OK(segrl_spo_chain(NULL, segrl_view_none(), &c, f1(V, 2), f1(R, 1), segrl_view_none(),
                           NULL, f32v(A, 1, 6), f1(As, 2)));
        double w[6] = {1.0 / 18, 1.0 / 18, 1.0 / 18, 4.0 / 9, 4.0 / 9, 4.0 / 9};
        h_close_f("spo 5/9", A, w, 6, 1e-7, 1e-6);
        double ws[2] = {1.0 / 18, 4.0 / 9};
        h_close_f("spo 5/9 seg", As, ws, 2, 1e-7, 1e-6);
        /* the chain starts at a cutpoint (t = 2): the prefix gets 0, or V_1 - V_0 with V_0 */
        int64_t st3[2] = {2, 4}, en3[2] = {4, 6};
        segrl_segments c3 = segs(off, 1, st3, en3, 2);
        float V3[2] = {5.0f / 9.0f, 0.25f}, V0[1] = {0.5f};
        OK(segrl_spo_chain(NULL, segrl_view_none(), &c3, f1(V3, 2), f1(R, 1), segrl_view_none(),
                           NULL, f32v(A, 1, 6), segrl_view_none()));
        double w3[6] = {0, 0, 0.25 - 5.0 / 9, 0.25 - 5.0 / 9, 0.75, 0.75};
        h_close_f("spo prefix 0", A, w3, 6, 1e-7, 1e-6);
        OK(segrl_spo_chain(NULL, segrl_view_none(), &c3, f1(V3, 2), f1(R, 1), f1(V0, 1), NULL,
                           f32v(A, 1, 6), segrl_view_none()));
        w3[0] = w3[1] = 5.0 / 9 - 0.5;
        h_close_f("spo prefix V0", A, w3, 6, 1e-7, 1e-6);
    }
    /* VinePPO: V = 0.4, 0.7; r = 0, 1; gamma 1: A = 0.3, 0.3; gamma 0.5: 0.35 - 0.4, 0.3 */
    {
        float V[2] = {0.4f, 0.7f}, r[2] = {0, 1}, A[6], As[2];
        OK(segrl_vineppo(NULL, u8v(m, 1, 6), &s, f1(r, 2), f1(V, 2), 1.0f, NULL, f32v(A, 1, 6), f1(As, 2)));
        double w[6] = {0.3, 0.3, 0, 0.3, 0, 0.3};
        h_close_f("vineppo", A, w, 6, 1e-6, 0);
        OK(segrl_vineppo(NULL, u8v(m, 1, 6), &s, f1(r, 2), f1(V, 2), 0.5f, NULL, f32v(A, 1, 6), f1(As, 2)));
        double ws[2] = {0.35 - 0.4, 0.3};
        h_close_f("vineppo gamma", As, ws, 2, 1e-6, 0);
    }
    /* probability mask */
    {
        float p[6] = {0.95f, 0.5f, 0.89f, 0.9f, 0.1f, 0.2f};
        uint8_t o8[6];
        float of[6];
        OK(segrl_prob_mask(NULL, f32v(p, 1, 6), u8v(m, 1, 6), 0.9f, NULL, u8v(o8, 1, 6)));
        CHECK(o8[0] == 0 && o8[1] == 1 && o8[2] == 1 && o8[3] == 0 && o8[4] == 0 && o8[5] == 1,
              "prob mask u8");
        OK(segrl_prob_mask(NULL, f32v(p, 1, 6), segrl_view_none(), 0.9f, NULL, f32v(of, 1, 6)));
        CHECK(of[0] == 0 && of[1] == 1 && of[4] == 1 && of[3] == 0, "prob mask f32");
    }
    /* process-reward transforms: r = 0.2 0.9 0.5 | 0.1, eta 0.6 */
    {
        float r[4] = {0.2f, 0.9f, 0.5f, 0.1f}, o[4];
        int64_t so[3] = {0, 3, 4};
        segrl_prm_opts po = {SEGRL_PRM_CLIP, 0.6f};
        OK(segrl_prm_transform(i64v(so, 3), f1(r, 4), &po, NULL, f1(o, 4)));
        double wc[4] = {-0.4, 0, -0.1, -0.5};
        h_close_f("prm clip", o, wc, 4, 1e-6, 0);
        po.mode = SEGRL_PRM_DELTA;
        OK(segrl_prm_transform(i64v(so, 3), f1(r, 4), &po, NULL, f1(o, 4)));
        double wd[4] = {-0.7, 0.4, 0.5, 0.1};
        h_close_f("prm delta", o, wd, 4, 1e-6, 0);
        po.mode = SEGRL_PRM_BOTH;
        float rr[4];
        memcpy(rr, r, sizeof r);
        OK(segrl_prm_transform(i64v(so, 3), f1(rr, 4), &po, NULL, f1(rr, 4))); /* in place */
        double wb[4] = {-0.4, 0.1, -0.1, -0.5};
        h_close_f("prm both in place", rr, wb, 4, 1e-6, 0);
    }
    /* dense rewards: source A spans [0,3) [3,6) scores 1, 2, weight 0.5; source B span [0,6)
     * score 4, weight -1. Slot 5's valid end of [3,6) is 5; slot 4 masked. */
    {
        int64_t oa[2] = {0, 2}, sa[2] = {0, 3}, ea[2] = {3, 6}, ob[2] = {0, 1}, sb[1] = {0}, eb[1] = {5};
        float sca[2] = {1, 2}, scb[1] = {4}, o[6];
        segrl_reward_source src[2] = {{segs(oa, 1, sa, ea, 2), f1(sca, 2), 0.5f},
                                      {segs(ob, 1, sb, eb, 1), f1(scb, 1), -1.0f}};
        OK(segrl_dense_segment_rewards(NULL, u8v(m, 1, 6), src, 2, NULL, f32v(o, 1, 6)));
        /* source B's span [0,5): last valid token is 3 (4 masked) */
        double w[6] = {0, 0, 0.5, -4, 0, 1};
        h_close_f("dense", o, w, 6, 0, 0);
    }
    /* PRIME */
    {
        float lp[3] = {-1, -2, -0.5f}, rf[3] = {-1.5f, -1, -0.5f}, o[3];
        uint8_t mm[3] = {1, 1, 0};
        segrl_prime_opts po = segrl_prime_opts_default();
        CHECK(po.beta == 0.05f && po.max_return_norm == 0 && po.eps == 1e-6f, "prime defaults");
        OK(segrl_prime_token_rewards(NULL, f32v(lp, 1, 3), f32v(rf, 1, 3), u8v(mm, 1, 3), &po,
                                     NULL, f32v(o, 1, 3)));
        double w[3] = {0.025, -0.05, 0};
        h_close_f("prime", o, w, 3, 1e-7, 0);
        /* max-|return| normalization: returns -0.025, -0.05 -> divide by 0.05 + 1e-6 */
        po.max_return_norm = 1;
        OK(segrl_prime_token_rewards(NULL, f32v(lp, 1, 3), f32v(rf, 1, 3), u8v(mm, 1, 3), &po,
                                     NULL, f32v(o, 1, 3)));
        double wn[3] = {0.025 / 0.050001, -0.05 / 0.050001, 0};
        h_close_f("prime norm", o, wn, 3, 1e-6, 0);
    }
    /* PRIME returns: one group of 3; implicit rewards x (weight 1) and outcome scores 1 0 1
     * (weight 2). mu = 2 0 4, M = 6: x~ = 1.5 x - 3; scores: 1.5 s - 1 at the last token. */
    {
        float x[9] = {1, 2, 3, 0, 0, 0, 4, 4, 4}, sc[3] = {1, 0, 1}, G[9], r[9];
        int32_t gid[3] = {0, 0, 0};
        double ws[16];
        size_t need = 0;
        OK(segrl_prime_returns_workspace_size(3, 1, &need));
        CHECK(need <= sizeof ws, "workspace %zu", need);
        segrl_exec ex = {0};
        ex.workspace = ws, ex.workspace_bytes = sizeof ws;
        segrl_prime_source src[2] = {{f32v(x, 3, 3), segrl_view_none(), segrl_view_none(), 1.0f},
                                     {segrl_view_none(), segrl_view_none(), f1(sc, 3), 2.0f}};
        OK(segrl_prime_returns(NULL, segrl_view_none(), src, 2, vec(gid, SEGRL_DTYPE_I32, 3), 1,
                               &ex, f32v(G, 3, 3), f32v(r, 3, 3)));
        double wr[9] = {-1.5, 0, 2.5, -3, -3, -5, 3, 3, 4};
        double wg[9] = {1, 2.5, 2.5, -11, -8, -5, 10, 7, 4};
        h_close_f("prime rewards", r, wr, 9, 1e-6, 0);
        h_close_f("prime returns", G, wg, 9, 1e-6, 0);
        /* a singleton group gets no signal */
        int32_t gid2[3] = {0, 1, 1};
        OK(segrl_prime_returns(NULL, segrl_view_none(), src, 2, vec(gid2, SEGRL_DTYPE_I32, 3), 2,
                               &ex, f32v(G, 3, 3), segrl_view_none()));
        CHECK(G[0] == 0 && G[1] == 0 && G[2] == 0, "singleton group: %g %g %g", G[0], G[1], G[2]);
    }
    /* explicit spans check */
    {
        int64_t so[2] = {0, 2}, s1[2] = {0, 3}, e1[2] = {3, 6};
        segrl_segments e = segs(so, 1, s1, e1, 2);
        OK(segrl_segments_check(NULL, f32v(x, 1, 6), &e, NULL));
        e1[0] = 4;
        segrl_exec ex = {0};
        ex.checks = SEGRL_CHECKS_SHAPES; /* the check runs anyway */
        CHECK(segrl_segments_check(NULL, f32v(x, 1, 6), &e, &ex) == SEGRL_ERR_INVALID &&
                  strstr(segrl_last_error(), "segments->start"),
              "overlap: %s", segrl_last_error());
    }
}

// ----------------------------------------------------------------------------
// random batches: each sequence has a length L_b <= T, holes in its mask; the padded batch holds
// it in row b (mask 0 past L_b), the packed batch back to back

typedef struct batch {
    int64_t B, T, N;
    int64_t *len, *poff;
    uint8_t *m, *pm;     /* padded (B*T), packed (N) */
    float *x, *px;       // values / probabilities in (0, 1]
    int32_t *ids, *pids; // token ids in [0, 20)
} batch;

static batch make_batch(int64_t B, int64_t T, uint64_t seed) {
    h_seed(seed);
    batch z = {B, T, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    z.len = h_alloc(B * 8), z.poff = h_alloc((B + 1) * 8);
    z.m = h_alloc(B * T), z.x = h_alloc(B * T * 4), z.ids = h_alloc(B * T * 4);
    for (int64_t b = 0; b < B; b++) {
        z.len[b] = b % 9 == 4 ? 0 : h_int(0, T);
        int holes = h_int(0, 1);
        z.poff[b + 1] = z.poff[b] + z.len[b];
        for (int64_t t = 0; t < T; t++) {
            int64_t i = b * T + t;
            z.m[i] = t < z.len[b] && !(holes && h_int(0, 5) == 0);
            z.x[i] = (float)h_unif();
            if (h_int(0, 3) == 0) z.x[i] = 0.95f + 0.05f * (float)h_unif();
            z.ids[i] = (int32_t)h_int(0, 19);
        }
    }
    z.N = z.poff[B];
    z.pm = h_alloc(z.N), z.px = h_alloc(z.N * 4), z.pids = h_alloc(z.N * 4);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < z.len[b]; t++) {
            z.pm[z.poff[b] + t] = z.m[b * T + t];
            z.px[z.poff[b] + t] = z.x[b * T + t];
            z.pids[z.poff[b] + t] = z.ids[b * T + t];
        }
    return z;
}

static void free_batch(batch *z) {
    free(z->len), free(z->poff), free(z->m), free(z->x), free(z->ids);
    free(z->pm), free(z->px), free(z->pids);
}

enum { P_PARTS, P_EVERY, P_CUT, P_DELIM };

/* reference partition of one sequence (slots 0..L), from the definitions: the set of valid
 * ordinals that start a segment, then spans between consecutive starts */
static int64_t ref_partition(int kind, int64_t param, const uint8_t *m, const float *p,
                             const int32_t *ids, int64_t L, float tau, int64_t k, int64_t cap,
                             const int32_t *delim, int64_t D, int64_t *st, int64_t *en) {
    int64_t slot[4096], n = 0;
    for (int64_t t = 0; t < L; t++)
        if (m[t]) slot[n++] = t;
    if (n == 0) return 0;
    char start[4096] = {0};
    start[0] = 1;
    if (kind == P_PARTS) {
        int64_t K = param;
        for (int64_t q = 0; q < K; q++) {
            int64_t o = (int64_t)floor((double)q * (double)n / (double)K);
            if (o < n) start[o] = 1;
        }
    } else if (kind == P_EVERY) {
        for (int64_t o = 0; o < n; o += param) start[o] = 1;
    } else if (kind == P_CUT) {
        int64_t low = 0, nseg = 1;
        for (int64_t o = 0; o < n; o++)
            if (p[slot[o]] < tau) {
                low++;
                if (low % k == 0 && o > 0 && (cap == 0 || nseg < cap)) start[o] = 1, nseg++;
            }
    } else {
        for (int64_t o = 1; o < n; o++)
            for (int64_t d = 0; d < D; d++)
                if (ids[slot[o - 1]] == delim[d]) start[o] = 1;
    }
    int64_t c = 0;
    for (int64_t o = 0; o < n; o++)
        if (start[o]) {
            if (c > 0) en[c - 1] = slot[o];
            st[c++] = slot[o];
        }
    en[c - 1] = slot[n - 1] + 1;
    return c;
}

/* partition a batch padded and packed with every index dtype combination exercised, check
 * against the reference; returns the spans (i64) through off_o, st_o, en_o (caller frees) */
static int64_t run_partition(const batch *z, int kind, int64_t param, segrl_cutpoint_opts co,
                             const int32_t *delim, int64_t D, int64_t **off_o, int64_t **st_o,
                             int64_t **en_o) {
    const int64_t B = z->B, T = z->T;
    int64_t *roff = h_alloc((B + 1) * 8), *rst = h_alloc((B * T + 1) * 8), *ren = h_alloc((B * T + 1) * 8);
    for (int64_t b = 0; b < B; b++)
        roff[b + 1] = roff[b] + ref_partition(kind, param, z->m + b * T, z->x + b * T,
                                              z->ids + b * T, T, co.tau, co.k, co.max_segments,
                                              delim, D, rst + roff[b], ren + roff[b]);
    const int64_t S = roff[B];
    int64_t *off = h_alloc((B + 1) * 8), *st = h_alloc((S + 1) * 8), *en = h_alloc((S + 1) * 8);
    int32_t *off32 = h_alloc((B + 1) * 4), *st32 = h_alloc((S + 1) * 4), *en32 = h_alloc((S + 1) * 4);
    for (int pass = 0; pass < 2; pass++) {
        const int packed = pass == 1;
        segrl_layout lay = segrl_layout_packed(i64v(z->poff, B + 1));
        const segrl_layout *L = packed ? &lay : NULL;
        segrl_view mv = packed ? vec(z->pm, SEGRL_DTYPE_U8, z->N) : u8v(z->m, B, T);
        segrl_view xv = packed ? f1(z->px, z->N) : f32v(z->x, B, T);
        segrl_view iv = packed ? vec(z->pids, SEGRL_DTYPE_I32, z->N)
                               : segrl_view_2d(z->ids, SEGRL_DTYPE_I32, DEV, B, T);
        /* count pass (i32 offsets), then fill (i64 offsets, i32 start, i64 end) */
        segrl_segments cnt = {vec(off32, SEGRL_DTYPE_I32, B + 1), segrl_view_none(), segrl_view_none()};
        segrl_segments fill = {i64v(off, B + 1), vec(st32, SEGRL_DTYPE_I32, S), i64v(en, S)};
        for (int call = 0; call < 2; call++) {
            const segrl_segments *o = call ? &fill : &cnt;
            segrl_status s;
            switch (kind) {
            case P_PARTS: s = segrl_partition_fixed(L, mv, param, 0, NULL, o); break;
            case P_EVERY: s = segrl_partition_fixed(L, mv, 0, param, NULL, o); break;
            case P_CUT: s = segrl_partition_cutpoints(L, xv, mv, &co, NULL, o); break;
            default: s = segrl_partition_delimiters(L, iv, mv, vec((void *)delim, SEGRL_DTYPE_I32, D), NULL, o); break;
            }
            CHECK(s == SEGRL_OK, "partition kind %d: %s", kind, segrl_last_error());
        }
        for (int64_t i = 0; i < S; i++) st[i] = st32[i];
        int ok = off32[B] == S && same_i64(off, roff, B + 1) && same_i64(st, rst, S) &&
                 same_i64(en, ren, S);
        for (int64_t b = 0; b <= B; b++) ok = ok && off32[b] == roff[b];
        CHECK(ok, "partition kind %d param %lld %s: differs from the reference", kind,
              (long long)param, packed ? "packed" : "padded");
    }
    free(off32), free(st32), free(en32), free(off), free(st), free(en);
    *off_o = roff, *st_o = rst, *en_o = ren;
    return S;
}

/* reference token-level results (padded, double) */
static void ref_ops(const batch *z, const int64_t *off, const int64_t *st, const int64_t *en,
                    const float *vals, const float *vals2, const float *R, const float *V0,
                    double *red /* 5 x S */, double *sc_last, double *sc_bc, double *spo,
                    double *vine) {
    const int64_t B = z->B, T = z->T;
    for (int64_t i = 0; i < B * T; i++) sc_last[i] = sc_bc[i] = spo[i] = vine[i] = 0;
    const int64_t S = off[B];
    for (int64_t b = 0; b < B; b++) {
        const uint8_t *m = z->m + b * T;
        const float *x = z->x + b * T;
        for (int64_t k = off[b]; k < off[b + 1]; k++) {
            double s = 0, mn = 0, mx = 0, last = 0;
            int64_t n = 0, lastt = -1;
            for (int64_t t = st[k]; t < en[k]; t++) {
                if (!m[t]) continue;
                s += x[t];
                if (n == 0 || x[t] < mn) mn = x[t];
                if (n == 0 || x[t] > mx) mx = x[t];
                last = x[t], lastt = t, n++;
            }
            red[0 * S + k] = s, red[1 * S + k] = n ? s / n : 0, red[2 * S + k] = mn;
            red[3 * S + k] = mx, red[4 * S + k] = last;
            if (lastt >= 0) sc_last[b * T + lastt] = vals[k];
            double a = (k + 1 < off[b + 1] ? (double)vals[k + 1] : (double)R[b]) - vals[k];
            double va = (double)vals2[k] + 0.9 * (k + 1 < off[b + 1] ? (double)vals[k + 1] : 0.0) - vals[k];
            for (int64_t t = st[k]; t < en[k]; t++)
                if (m[t]) sc_bc[b * T + t] = vals[k], spo[b * T + t] = a, vine[b * T + t] = va;
        }
        if (off[b + 1] > off[b])
            for (int64_t t = 0; t < st[off[b]]; t++)
                if (m[t]) spo[b * T + t] = (double)vals[off[b]] - V0[b];
    }
}

/* unpack a packed token result into padded (B, T) with 0 elsewhere */
static void unpack(const batch *z, const float *p, float *out) {
    for (int64_t i = 0; i < z->B * z->T; i++) out[i] = 0;
    for (int64_t b = 0; b < z->B; b++)
        for (int64_t t = 0; t < z->len[b]; t++) out[b * z->T + t] = p[z->poff[b] + t];
}

static void test_random(int64_t B, int64_t T, uint64_t seed) {
    batch z = make_batch(B, T, seed);
    const int32_t delim[3] = {3, 7, 11};
    segrl_cutpoint_opts co[3] = {{0.9f, 5, 0}, {0.5f, 2, 3}, {0.99f, 1, 0}};
    int64_t *off, *st, *en, S = 0;
    for (int i = 0; i < 3; i++) {
        static const int64_t Ks[8] = {1, 2, 3, 5, 7, 9, 13, 50};
        for (int q = 0; q < 8; q++) {
            const int64_t K = Ks[q];
            S = run_partition(&z, P_PARTS, K, co[0], delim, 3, &off, &st, &en);
            free(off), free(st), free(en);
            S = run_partition(&z, P_EVERY, K + i, co[0], delim, 3, &off, &st, &en);
            free(off), free(st), free(en);
        }
        S = run_partition(&z, P_CUT, 0, co[i], delim, 3, &off, &st, &en);
        free(off), free(st), free(en);
    }
    S = run_partition(&z, P_DELIM, 0, co[0], delim, 3, &off, &st, &en);

    /* ops on the delimiter spans, padded vs packed vs reference */
    const int64_t N = B * T;
    float *vals = h_alloc((S + 1) * 4), *vals2 = h_alloc((S + 1) * 4), *R = h_alloc(B * 4), *V0 = h_alloc(B * 4);
    for (int64_t k = 0; k < S; k++) vals[k] = h_normal(), vals2[k] = h_normal();
    for (int64_t b = 0; b < B; b++) R[b] = (float)h_int(0, 1), V0[b] = (float)h_unif();
    double *red = h_alloc((5 * S + 1) * 8), *w_last = h_alloc(N * 8), *w_bc = h_alloc(N * 8);
    double *w_spo = h_alloc(N * 8), *w_vine = h_alloc(N * 8);
    ref_ops(&z, off, st, en, vals, vals2, R, V0, red, w_last, w_bc, w_spo, w_vine);
    segrl_segments sg = segs(off, B, st, en, S);
    float *o1 = h_alloc((S + 1) * 4), *o2 = h_alloc((S + 1) * 4), *pt = h_alloc(N * 4 + 4);
    float *pd = h_alloc(N * 4), *un = h_alloc(N * 4);
    segrl_layout lay = segrl_layout_packed(i64v(z.poff, B + 1));
    segrl_view mP = u8v(z.m, B, T), mK = vec(z.pm, SEGRL_DTYPE_U8, z.N);
    for (int op = 0; op < 5; op++) {
        OK(segrl_segment_reduce(NULL, f32v(z.x, B, T), mP, &sg, op, NULL, f1(o1, S)));
        OK(segrl_segment_reduce(&lay, f1(z.px, z.N), mK, &sg, op, NULL, f1(o2, S)));
        h_close_f("reduce", o1, red + op * S, S, 1e-6, 1e-6);
        h_same_f("reduce padded/packed", o1, o2, S);
    }
    /* token outputs: padded, packed (unpacked), reference */
#define TOK_CASE(what, want, CALL_PADDED, CALL_PACKED)                                            \
    do {                                                                                          \
        OK(CALL_PADDED);                                                                          \
        OK(CALL_PACKED);                                                                          \
        h_close_f(what, pd, want, N, 1e-6, 1e-6);                                                 \
        unpack(&z, pt, un);                                                                       \
        h_same_f(what " padded/packed", pd, un, N);                                               \
    } while (0)
    TOK_CASE("scatter last", w_last,
             segrl_segment_scatter(NULL, f1(vals, S), mP, &sg, SEGRL_SCATTER_LAST, NULL, f32v(pd, B, T)),
             segrl_segment_scatter(&lay, f1(vals, S), mK, &sg, SEGRL_SCATTER_LAST, NULL, f1(pt, z.N)));
    TOK_CASE("scatter broadcast", w_bc,
             segrl_segment_scatter(NULL, f1(vals, S), mP, &sg, SEGRL_SCATTER_BROADCAST, NULL, f32v(pd, B, T)),
             segrl_segment_scatter(&lay, f1(vals, S), mK, &sg, SEGRL_SCATTER_BROADCAST, NULL, f1(pt, z.N)));
    TOK_CASE("spo chain", w_spo,
             segrl_spo_chain(NULL, mP, &sg, f1(vals, S), f1(R, B), f1(V0, B), NULL, f32v(pd, B, T), segrl_view_none()),
             segrl_spo_chain(&lay, mK, &sg, f1(vals, S), f1(R, B), f1(V0, B), NULL, f1(pt, z.N), segrl_view_none()));
    TOK_CASE("vineppo", w_vine,
             segrl_vineppo(NULL, mP, &sg, f1(vals2, S), f1(vals, S), 0.9f, NULL, f32v(pd, B, T), segrl_view_none()),
             segrl_vineppo(&lay, mK, &sg, f1(vals2, S), f1(vals, S), 0.9f, NULL, f1(pt, z.N), segrl_view_none()));
    /* dense rewards: delimiter spans (weight 0.5) + a fixed partition (weight 2) */
    {
        int64_t *off2, *st2, *en2;
        int64_t S2 = run_partition(&z, P_EVERY, 4, co[0], delim, 3, &off2, &st2, &en2);
        float *sc2 = h_alloc((S2 + 1) * 4);
        for (int64_t k = 0; k < S2; k++) sc2[k] = h_normal();
        double *w = h_alloc(N * 8);
        for (int64_t i = 0; i < N; i++) w[i] = 0.5 * w_last[i];
        for (int64_t b = 0; b < B; b++)
            for (int64_t k = off2[b]; k < off2[b + 1]; k++)
                for (int64_t t = en2[k] - 1; t >= st2[k]; t--)
                    if (z.m[b * T + t]) {
                        w[b * T + t] += 2.0 * sc2[k];
                        break;
                    }
        segrl_reward_source src[2] = {{sg, f1(vals, S), 0.5f}, {segs(off2, B, st2, en2, S2), f1(sc2, S2), 2.0f}};
        TOK_CASE("dense rewards", w,
                 segrl_dense_segment_rewards(NULL, mP, src, 2, NULL, f32v(pd, B, T)),
                 segrl_dense_segment_rewards(&lay, mK, src, 2, NULL, f1(pt, z.N)));
        free(off2), free(st2), free(en2), free(sc2), free(w);
    }
    /* probability mask and PRIME */
    {
        double *w = h_alloc(N * 8);
        for (int64_t i = 0; i < N; i++) w[i] = z.m[i] && z.x[i] < 0.7f;
        TOK_CASE("prob mask", w,
                 segrl_prob_mask(NULL, f32v(z.x, B, T), mP, 0.7f, NULL, f32v(pd, B, T)),
                 segrl_prob_mask(&lay, f1(z.px, z.N), mK, 0.7f, NULL, f1(pt, z.N)));
        float *lp = h_alloc(N * 4), *plp = h_alloc(z.N * 4 + 4);
        for (int64_t i = 0; i < N; i++) lp[i] = -3.0f * z.x[i];
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < z.len[b]; t++) plp[z.poff[b] + t] = lp[b * T + t];
        for (int64_t i = 0; i < N; i++) w[i] = z.m[i] ? (double)(0.1f * (lp[i] - log1pf(-0.5f * z.x[i]))) : 0;
        /* ref_logprobs = log(1 - x/2): computed into a second buffer */
        float *rf = h_alloc(N * 4 + 4), *prf = h_alloc(z.N * 4 + 4);
        segrl_prime_opts po = {0.1f, 0, 1e-6f};
        for (int64_t i = 0; i < N; i++) rf[i] = log1pf(-0.5f * z.x[i]);
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < z.len[b]; t++) prf[z.poff[b] + t] = rf[b * T + t];
        TOK_CASE("prime", w,
                 segrl_prime_token_rewards(NULL, f32v(lp, B, T), f32v(rf, B, T), mP, &po, NULL, f32v(pd, B, T)),
                 segrl_prime_token_rewards(&lay, f1(plp, z.N), f1(prf, z.N), mK, &po, NULL, f1(pt, z.N)));
        /* max-|return| normalization */
        double mx = 0;
        for (int64_t b = 0; b < B; b++) {
            double G = 0;
            for (int64_t t = T - 1; t >= 0; t--)
                if (z.m[b * T + t]) G += (float)w[b * T + t], mx = fmax(mx, fabs(G));
        }
        for (int64_t i = 0; i < N; i++) w[i] = (double)(float)w[i] / (mx + 1e-6f);
        po.max_return_norm = 1;
        TOK_CASE("prime norm", w,
                 segrl_prime_token_rewards(NULL, f32v(lp, B, T), f32v(rf, B, T), mP, &po, NULL, f32v(pd, B, T)),
                 segrl_prime_token_rewards(&lay, f1(plp, z.N), f1(prf, z.N), mK, &po, NULL, f1(pt, z.N)));
        /* PRIME returns: implicit rewards (rf as a dense source with a sparse reward mask) and
         * outcome scores, groups of unequal size (some singletons) */
        {
            const int64_t G = B / 3 + 1;
            int32_t *gid = h_alloc(B * 4);
            int64_t *cnt = h_alloc(G * 8);
            for (int64_t b = 0; b < B; b++) gid[b] = (int32_t)h_int(0, G - 1), cnt[gid[b]]++;
            uint8_t *rm = h_alloc(N + 1), *prm = h_alloc(z.N + 1);
            for (int64_t i = 0; i < N; i++) rm[i] = h_int(0, 2) != 0;
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = 0; t < z.len[b]; t++) prm[z.poff[b] + t] = rm[b * T + t];
            float *sc = h_alloc(B * 4);
            for (int64_t b = 0; b < B; b++) sc[b] = (float)h_int(0, 1);
            double *mu = h_alloc(B * 8), *msum = h_alloc(G * 8), *wr = h_alloc(N * 8 + 8);
            for (int64_t i = 0; i < N; i++) wr[i] = 0;
            for (int src = 0; src < 2; src++) {
                for (int64_t k = 0; k < G; k++) msum[k] = 0;
                for (int64_t b = 0; b < B; b++) {
                    double s = 0, n = 0;
                    for (int64_t t = 0; t < T; t++) {
                        int64_t i = b * T + t;
                        if (src == 0 && z.m[i] && rm[i]) s += rf[i], n++;
                        if (src == 1 && z.m[i]) n = 1, s = sc[b];
                    }
                    mu[b] = n ? s / n : 0;
                    msum[gid[b]] += mu[b];
                }
                for (int64_t b = 0; b < B; b++) {
                    double n = (double)cnt[gid[b]];
                    if (n < 2) continue;
                    int64_t last = -1;
                    for (int64_t t = 0; t < T; t++) {
                        int64_t i = b * T + t;
                        if (src == 0 && z.m[i] && rm[i]) wr[i] += 0.5 * (rf[i] * n / (n - 1) - msum[gid[b]] / (n - 1));
                        if (z.m[i]) last = i;
                    }
                    if (src == 1 && last >= 0) wr[last] += -1.5 * (sc[b] * n / (n - 1) - msum[gid[b]] / (n - 1));
                }
            }
            double *wg = h_alloc(N * 8 + 8);
            for (int64_t b = 0; b < B; b++) {
                double acc = 0;
                for (int64_t t = T - 1; t >= 0; t--) {
                    if (z.m[b * T + t]) acc += wr[b * T + t];
                    wg[b * T + t] = t < z.len[b] ? acc : 0;
                }
            }
            size_t need = 0;
            OK(segrl_prime_returns_workspace_size(B, G, &need));
            void *wsm = h_alloc(need + 16);
            segrl_exec ex = {0};
            ex.workspace = wsm, ex.workspace_bytes = need;
            float *rr = h_alloc(N * 4 + 4), *prr = h_alloc(z.N * 4 + 4);
            segrl_prime_source s1[2] = {{f32v(rf, B, T), u8v(rm, B, T), segrl_view_none(), 0.5f},
                                        {segrl_view_none(), segrl_view_none(), f1(sc, B), -1.5f}};
            segrl_prime_source s2[2] = {{f1(prf, z.N), vec(prm, SEGRL_DTYPE_U8, z.N), segrl_view_none(), 0.5f},
                                        {segrl_view_none(), segrl_view_none(), f1(sc, B), -1.5f}};
            segrl_view gv = vec(gid, SEGRL_DTYPE_I32, B);
            TOK_CASE("prime returns", wg,
                     segrl_prime_returns(NULL, mP, s1, 2, gv, G, &ex, f32v(pd, B, T), f32v(rr, B, T)),
                     segrl_prime_returns(&lay, mK, s2, 2, gv, G, &ex, f1(pt, z.N), f1(prr, z.N)));
            for (int64_t b = 0; b < B; b++) /* trailing padding slots of rr are 0 by definition */
                for (int64_t t = z.len[b]; t < T; t++) wr[b * T + t] = 0;
            h_close_f("prime returns rewards", rr, wr, N, 1e-5, 1e-5);
            free(gid), free(cnt), free(rm), free(prm), free(sc), free(mu), free(msum), free(wr);
            free(wg), free(wsm), free(rr), free(prr);
        }
        free(w), free(lp), free(plp), free(rf), free(prf);
    }
    /* PRM transforms against the reference */
    for (int mode = 0; mode < 3; mode++) {
        segrl_prm_opts po = {mode, 0.3f};
        OK(segrl_prm_transform(i64v(off, B + 1), f1(vals, S), &po, NULL, f1(o1, S)));
        double *w = h_alloc((S + 1) * 8);
        for (int64_t b = 0; b < B; b++)
            for (int64_t k = off[b]; k < off[b + 1]; k++) {
                double c = mode != SEGRL_PRM_DELTA ? fmin((double)vals[k] - 0.3f, 0) : vals[k];
                double cn = 0;
                if (k + 1 < off[b + 1])
                    cn = mode != SEGRL_PRM_DELTA ? fmin((double)vals[k + 1] - 0.3f, 0) : vals[k + 1];
                w[k] = mode != SEGRL_PRM_CLIP ? c - cn : c;
            }
        h_close_f("prm transform", o1, w, S, 1e-6, 1e-6);
        free(w);
    }
#undef TOK_CASE
    free(vals), free(vals2), free(R), free(V0), free(red), free(w_last), free(w_bc), free(w_spo);
    free(w_vine), free(o1), free(o2), free(pt), free(pd), free(un);
    free(off), free(st), free(en);
    free_batch(&z);
}

// ----------------------------------------------------------------------------
// bad input: every case breaks one argument of a valid call

#define EB 2
#define ET 5
#define EN (EB * ET)
#define ES 3

enum { FIXED, CUT, DELIM, SCHECK, REDUCE, SCATTER, SPO, VINE, PMASK, PRM, DENSE, PRIME, PRET };

typedef struct eargs {
    segrl_layout layout;
    segrl_view m, x, p, ids, delims, vals, vals2, R, V0, lp, rf;
    segrl_segments sg, out_sg, src2;
    segrl_segments *sgp, *outp;
    segrl_view src_scores2;
    float src_w2;
    segrl_view out_tok, out_vec, out_mask, prm_off, out_tok2, gidx, pscores_both;
    int32_t norm;
    int64_t G;
    size_t ws_bytes;
    int64_t num_parts, every;
    int32_t op, mode, n_sources;
    float gamma, tau, beta;
    segrl_cutpoint_opts co;
    segrl_prm_opts po;
    segrl_exec exec;
} eargs;

static uint8_t e_m[EN];
static float e_x[EN], e_p[EN], e_lp[EN], e_rf[EN], e_vals[ES], e_vals2[ES], e_R[EB], e_V0[EB];
static int32_t e_ids[EN], e_delims[2] = {3, 9};
static int64_t e_off[EB + 1], e_st[ES], e_en[ES], e_poff[EB + 1], e_prmoff[EB + 1];
static int64_t e_off2[EB + 1], e_st2[2], e_en2[2];
static float e_sc2[2];
/* outputs and their guards */
static float g_tok[EN + 8], g_vec[ES + 8], g_tok2[EN + 8];
static int32_t e_gidx[EB] = {0, 0};
static double e_ws[64];
static uint8_t g_mask[EN + 8];
static int64_t g_off[EB + 8], g_st[16], g_en[16];

static void edefaults(eargs *a) {
    memset(a, 0, sizeof *a);
    static const uint8_t m[EN] = {1, 1, 1, 1, 0, 1, 1, 1, 0, 0};
    for (int i = 0; i < EN; i++) {
        e_m[i] = m[i], e_x[i] = (float)i * 0.5f, e_p[i] = (float)(i % 4) * 0.3f;
        e_lp[i] = -1.0f - (float)i, e_rf[i] = -2.0f, e_ids[i] = i % 5 == 2 ? 3 : 1;
    }
    for (int k = 0; k < ES; k++) e_vals[k] = 0.25f * (float)k, e_vals2[k] = 1.0f;
    e_R[0] = 1, e_R[1] = 0, e_V0[0] = 0.5f, e_V0[1] = 0.5f;
    int64_t off[EB + 1] = {0, 2, 3}, st[ES] = {0, 2, 0}, en[ES] = {2, 4, 3};
    memcpy(e_off, off, sizeof off), memcpy(e_st, st, sizeof st), memcpy(e_en, en, sizeof en);
    int64_t poff[EB + 1] = {0, 5, 10};
    memcpy(e_poff, poff, sizeof poff), memcpy(e_prmoff, off, sizeof off);
    int64_t off2[EB + 1] = {0, 1, 2}, st2[2] = {1, 0}, en2[2] = {3, 2};
    memcpy(e_off2, off2, sizeof off2), memcpy(e_st2, st2, sizeof st2), memcpy(e_en2, en2, sizeof en2);
    e_sc2[0] = 1, e_sc2[1] = -1;
    for (int i = 0; i < EN + 8; i++) g_tok[i] = g_tok2[i] = GUARD, g_mask[i] = 77;
    e_gidx[0] = e_gidx[1] = 0;
    for (int i = 0; i < ES + 8; i++) g_vec[i] = GUARD;
    for (int i = 0; i < EB + 8; i++) g_off[i] = IGUARD;
    for (int i = 0; i < 16; i++) g_st[i] = g_en[i] = IGUARD;

    a->layout = segrl_layout_padded();
    a->m = u8v(e_m, EB, ET), a->x = f32v(e_x, EB, ET), a->p = f32v(e_p, EB, ET);
    a->lp = f32v(e_lp, EB, ET), a->rf = f32v(e_rf, EB, ET);
    a->ids = segrl_view_2d(e_ids, SEGRL_DTYPE_I32, DEV, EB, ET);
    a->delims = vec(e_delims, SEGRL_DTYPE_I32, 2);
    a->vals = f1(e_vals, ES), a->vals2 = f1(e_vals2, ES), a->R = f1(e_R, EB), a->V0 = f1(e_V0, EB);
    a->sg = segs(e_off, EB, e_st, e_en, ES), a->sgp = &a->sg;
    a->out_sg = segs(g_off, EB, g_st, g_en, 16), a->outp = &a->out_sg;
    a->src2 = segs(e_off2, EB, e_st2, e_en2, 2), a->src_scores2 = f1(e_sc2, 2), a->src_w2 = 2.0f;
    a->out_tok = f32v(g_tok, EB, ET), a->out_vec = f1(g_vec, ES);
    a->out_mask = u8v(g_mask, EB, ET), a->prm_off = i64v(e_prmoff, EB + 1);
    a->num_parts = 2, a->op = SEGRL_REDUCE_MEAN, a->mode = SEGRL_SCATTER_LAST, a->n_sources = 2;
    a->gamma = 1, a->tau = 0.9f, a->beta = 0.05f;
    a->co = segrl_cutpoint_opts_default();
    a->out_tok2 = f32v(g_tok2, EB, ET), a->gidx = vec(e_gidx, SEGRL_DTYPE_I32, EB), a->G = 1;
    a->pscores_both = segrl_view_none(), a->ws_bytes = sizeof e_ws;
    a->po = (segrl_prm_opts){SEGRL_PRM_BOTH, 0.5f};
}

static int guards_intact(void) {
    for (int i = 0; i < EN + 8; i++)
        if (g_tok[i] != GUARD || g_tok2[i] != GUARD || g_mask[i] != 77) return 0;
    for (int i = 0; i < ES + 8; i++)
        if (g_vec[i] != GUARD) return 0;
    for (int i = 0; i < EB + 8; i++)
        if (g_off[i] != IGUARD) return 0;
    for (int i = 0; i < 16; i++)
        if (g_st[i] != IGUARD || g_en[i] != IGUARD) return 0;
    return 1;
}

static segrl_status ecall(int fam, eargs *a) {
    segrl_reward_source src[2] = {{a->sg, a->vals, 0.5f}, {a->src2, a->src_scores2, a->src_w2}};
    switch (fam) {
    case FIXED: return segrl_partition_fixed(&a->layout, a->m, a->num_parts, a->every, &a->exec, a->outp);
    case CUT: return segrl_partition_cutpoints(&a->layout, a->p, a->m, &a->co, &a->exec, a->outp);
    case DELIM: return segrl_partition_delimiters(&a->layout, a->ids, a->m, a->delims, &a->exec, a->outp);
    case SCHECK: return segrl_segments_check(&a->layout, a->x, a->sgp, &a->exec);
    case REDUCE: return segrl_segment_reduce(&a->layout, a->x, a->m, a->sgp, a->op, &a->exec, a->out_vec);
    case SCATTER: return segrl_segment_scatter(&a->layout, a->vals, a->m, a->sgp, a->mode, &a->exec, a->out_tok);
    case SPO: return segrl_spo_chain(&a->layout, a->m, a->sgp, a->vals, a->R, a->V0, &a->exec, a->out_tok, a->out_vec);
    case VINE: return segrl_vineppo(&a->layout, a->m, a->sgp, a->vals2, a->vals, a->gamma, &a->exec, a->out_tok, a->out_vec);
    case PMASK: return segrl_prob_mask(&a->layout, a->p, a->m, a->tau, &a->exec, a->out_mask);
    case PRM: return segrl_prm_transform(a->prm_off, a->vals, &a->po, &a->exec, a->out_vec);
    case DENSE: return segrl_dense_segment_rewards(&a->layout, a->m, src, a->n_sources, &a->exec, a->out_tok);
    case PRIME: {
        segrl_prime_opts po = {a->beta, a->norm, 1e-6f};
        return segrl_prime_token_rewards(&a->layout, a->lp, a->rf, a->m, &po, &a->exec, a->out_tok);
    }
    default: {
        segrl_prime_source ps[2] = {{a->lp, a->m, a->pscores_both, 1.0f}, {segrl_view_none(), segrl_view_none(), a->R, a->src_w2}};
        a->exec.workspace = e_ws, a->exec.workspace_bytes = a->ws_bytes;
        return segrl_prime_returns(&a->layout, a->m, ps, a->n_sources, a->gidx, a->G, &a->exec, a->out_tok, a->out_tok2);
    }
    }
}

/* packed layout over the same 10 tokens: two sequences of 5 */
static void epacked(eargs *a) {
    a->layout = segrl_layout_packed(i64v(e_poff, EB + 1));
    a->m = vec(e_m, SEGRL_DTYPE_U8, EN), a->x = f1(e_x, EN), a->p = f1(e_p, EN);
    a->lp = f1(e_lp, EN), a->rf = f1(e_rf, EN), a->ids = vec(e_ids, SEGRL_DTYPE_I32, EN);
    a->out_tok = f1(g_tok, EN), a->out_mask = vec(g_mask, SEGRL_DTYPE_U8, EN);
    a->out_tok2 = f1(g_tok2, EN);
}

static int esetup(int id, eargs *a, int *fam, segrl_status *want, const char **word) {
    segrl_view none = segrl_view_none();
    segrl_device cu = segrl_cuda(0);
    *want = SEGRL_ERR_INVALID;
    switch (id) {
    // partition_fixed
    case 0: *fam = FIXED, a->m = none, *word = "mask"; break;
    case 1: *fam = FIXED, a->num_parts = -1, *word = "num_parts"; break;
    case 2: *fam = FIXED, a->num_parts = 0, a->every = -2, *word = "every"; break;
    case 3: *fam = FIXED, a->num_parts = 0, *word = "num_parts"; break;
    case 4: *fam = FIXED, a->every = 3, *word = "num_parts"; break;
    case 5: *fam = FIXED, a->outp = NULL, *word = "out"; break;
    case 6: *fam = FIXED, a->out_sg.offsets = i64v(g_off, EB), *word = "out->offsets"; break;
    case 7: *fam = FIXED, a->out_sg.offsets.dtype = SEGRL_DTYPE_F32, *word = "out->offsets"; break;
    case 8: *fam = FIXED, a->out_sg.end = none, *word = "out->end"; break;
    case 9: *fam = FIXED, a->out_sg.end = a->out_sg.start, *word = "out->end"; break;
    case 10: *fam = FIXED, a->out_sg.start = i64v(g_st, 3), a->out_sg.end = i64v(g_en, 3), *word = "out->start"; break;
    case 11: *fam = FIXED, a->out_sg.offsets.device = cu, *word = "out->offsets: on cuda:0, expected cpu"; break;
    case 12: *fam = FIXED, a->out_sg.start.device = cu, *word = "out->start: on cuda:0"; break;
    case 13: *fam = FIXED, epacked(a), e_poff[1] = 11, *word = "layout->offsets"; break;
    case 14: *fam = FIXED, epacked(a), a->layout.offsets.device = cu, *word = "layout->offsets: on cuda:0"; break;
    case 15: *fam = FIXED, a->m.dtype = SEGRL_DTYPE_BF16, *word = "mask"; break;
    // cutpoints
    case 16: *fam = CUT, e_p[6] = NAN, *word = "probs: non-finite value at valid token 1 of sequence 1"; break;
    case 17: *fam = CUT, a->co.tau = NAN, *word = "opts->tau"; break;
    case 18: *fam = CUT, a->co.k = 0, *word = "opts->k"; break;
    case 19: *fam = CUT, a->co.max_segments = -1, *word = "opts->max_segments"; break;
    case 20: *fam = CUT, a->p.dtype = SEGRL_DTYPE_I32, *word = "probs"; break;
    case 21: *fam = CUT, a->m.device = cu, *word = "mask: on cuda:0"; break;
    case 22: *fam = CUT, a->p = f1(e_p, EN), *word = "probs: padded layout needs a 2-D"; break;
    case 23: *fam = CUT, a->m = u8v(e_m, EB + 1, ET - 2), *word = "mask"; break;
    // delimiters
    case 24: *fam = DELIM, a->delims = none, *word = "delimiters"; break;
    case 25: *fam = DELIM, a->delims.dtype = SEGRL_DTYPE_F32, *word = "delimiters"; break;
    case 26: *fam = DELIM, a->delims.shape[0] = 0, *word = "delimiters"; break;
    case 27: *fam = DELIM, a->ids.dtype = SEGRL_DTYPE_F32, *word = "token_ids"; break;
    case 28: *fam = DELIM, a->delims.device = cu, *word = "delimiters: on cuda:0"; break;
    // explicit spans
    case 29: *fam = SCHECK, e_st[1] = 1, *word = "segments->start"; break;
    case 30: *fam = SCHECK, e_en[2] = 6, *word = "segments->end"; break;
    case 31: *fam = SCHECK, e_en[0] = 0, *word = "segments->end"; break;
    case 32: *fam = SCHECK, e_st[0] = -1, *word = "segments->start"; break;
    case 33: *fam = SCHECK, e_off[1] = 4, *word = "segments->offsets"; break;
    case 34: *fam = SCHECK, e_off[2] = 2, *word = "segments->offsets"; break;
    case 35: *fam = SCHECK, a->sg.offsets = i64v(e_off, EB), *word = "segments->offsets"; break;
    case 36: *fam = SCHECK, a->sgp = NULL, *word = "segments"; break;
    case 37: *fam = SCHECK, a->sg.end = i64v(e_en, ES - 1), *word = "segments->end"; break;
    case 38: *fam = SCHECK, a->sg.start.dtype = SEGRL_DTYPE_U8, *word = "segments->start"; break;
    case 39: *fam = SCHECK, e_off[0] = 1, *word = "segments->offsets"; break;
    // reduce
    case 40: *fam = REDUCE, a->op = 9, *word = "op"; break;
    case 41: *fam = REDUCE, a->out_vec = f1(g_vec, ES + 1), *word = "out"; break;
    case 42: *fam = REDUCE, e_x[2] = INFINITY, *word = "x"; break;
    case 43: *fam = REDUCE, e_en[1] = 6, *word = "segments->end"; break;
    case 44: *fam = REDUCE, a->sg.start.device = cu, *word = "segments->start: on cuda:0"; break;
    case 45: *fam = REDUCE, a->out_vec.dtype = SEGRL_DTYPE_I64, *word = "out"; break;
    // scatter
    case 46: *fam = SCATTER, e_vals[1] = NAN, *word = "values: non-finite value at entry 1"; break;
    case 47: *fam = SCATTER, a->mode = 5, *word = "mode"; break;
    case 48: *fam = SCATTER, a->vals = f1(e_vals, ES - 1), *word = "values"; break;
    case 49: *fam = SCATTER, epacked(a), e_st[1] = 1, *word = "segments->start"; break;
    // SPO-chain
    case 50: *fam = SPO, e_vals[0] = NAN, *word = "values"; break;
    case 51: *fam = SPO, e_R[1] = NAN, *word = "rewards"; break;
    case 52: *fam = SPO, e_V0[0] = -INFINITY, *word = "prompt_values"; break;
    case 53: *fam = SPO, a->R = f1(e_R, EB + 1), *word = "rewards"; break;
    case 54: *fam = SPO, a->out_vec = f1(g_vec, 2), *word = "out_segment_advantages"; break;
    case 55: *fam = SPO, e_en[0] = 3, *word = "segments->start"; break;
    case 56: *fam = SPO, epacked(a), e_poff[1] = 3, e_st[1] = 2, e_en[1] = 4, *word = "segments->end: segment 1 (sequence 0) ends at 4, past"; break;
    case 57: *fam = SPO, a->vals.device = cu, *word = "values: on cuda:0"; break;
    case 58: *fam = SPO, a->vals = none, *word = "values"; break;
    case 59: *fam = SPO, a->out_vec = a->vals, a->out_vec.dtype = SEGRL_DTYPE_I32, *word = "out_segment_advantages"; break;
    // VinePPO
    case 60: *fam = VINE, a->gamma = NAN, *word = "gamma"; break;
    case 61: *fam = VINE, e_vals2[2] = NAN, *word = "step_rewards"; break;
    case 62: *fam = VINE, a->vals = none, *word = "values"; break;
    case 63: *fam = VINE, a->exec.checks = 9, *word = "exec"; break;
    // probability mask
    case 64: *fam = PMASK, a->tau = INFINITY, *word = "tau"; break;
    case 65: *fam = PMASK, a->out_mask.dtype = SEGRL_DTYPE_BF16, *word = "out"; break;
    case 66: *fam = PMASK, e_p[0] = NAN, *word = "probs"; break;
    case 67: *fam = PMASK, epacked(a), a->out_mask = u8v(g_mask, EB, ET), *word = "out"; break;
    // PRM transforms
    case 68: *fam = PRM, e_prmoff[1] = 4, *word = "seg_offsets"; break;
    case 69: *fam = PRM, e_vals[2] = NAN, *word = "rewards"; break;
    case 70: *fam = PRM, a->po.mode = 7, *word = "opts->mode"; break;
    case 71: *fam = PRM, a->po.eta = NAN, *word = "opts->eta"; break;
    case 72: *fam = PRM, a->out_vec = f1(g_vec, ES + 2), *word = "out"; break;
    case 73: *fam = PRM, a->prm_off = none, *word = "seg_offsets"; break;
    case 74: *fam = PRM, a->prm_off.device = cu, *want = SEGRL_ERR_UNSUPPORTED, *word = "seg_offsets: CUDA"; break;
    // dense rewards
    case 75: *fam = DENSE, a->n_sources = 0, *word = "n_sources"; break;
    case 76: *fam = DENSE, e_sc2[1] = NAN, *word = "sources[1].scores"; break;
    case 77: *fam = DENSE, a->src_w2 = NAN, *word = "sources[1].weight"; break;
    case 78: *fam = DENSE, e_st[1] = 1, *word = "sources[0].spans->start"; break;
    case 79: *fam = DENSE, a->src_scores2 = f1(e_sc2, 3), *word = "sources[1].scores"; break;
    case 80: *fam = DENSE, a->src2.start.device = cu, *want = SEGRL_ERR_UNSUPPORTED, *word = "sources[1].spans->start: CUDA"; break;
    case 81: *fam = DENSE, e_en2[1] = 6, *word = "sources[1].spans->end"; break;
    // PRIME
    case 82: *fam = PRIME, e_rf[5] = NAN, *word = "ref_logprobs"; break;
    case 83: *fam = PRIME, a->beta = NAN, *word = "beta"; break;
    case 84: *fam = PRIME, a->rf = none, *word = "ref_logprobs"; break;
    case 85: *fam = PRIME, e_lp[1] = NAN, *word = "logprobs"; break;
    case 86: *fam = PRIME, a->norm = 2, *word = "opts->max_return_norm"; break;
    // PRIME returns
    case 87: *fam = PRET, a->n_sources = 0, *word = "n_sources"; break;
    case 88: *fam = PRET, a->pscores_both = a->R, *word = "sources[0].scores: give token_rewards or scores"; break;
    case 89: *fam = PRET, e_gidx[1] = 1, *word = "group_index: entry 1"; break;
    case 90: *fam = PRET, a->G = 0, *word = "num_groups"; break;
    case 91: *fam = PRET, a->ws_bytes = 8, *want = SEGRL_ERR_WORKSPACE, *word = "exec->workspace"; break;
    case 92: *fam = PRET, e_lp[2] = NAN, *word = "sources[0].token_rewards"; break;
    case 93: *fam = PRET, e_R[0] = INFINITY, *word = "sources[1].scores"; break;
    case 94: *fam = PRET, a->out_tok2 = a->out_tok, *word = "out_rewards"; break;
    case 95: *fam = PRET, a->gidx = none, *word = "group_index"; break;
    case 96: *fam = PRET, a->out_tok = a->lp, *word = "out_returns: is the same buffer as sources[0].token_rewards"; break;
    case 97: *fam = PRET, a->gidx.device = cu, *want = SEGRL_ERR_UNSUPPORTED, *word = "group_index: CUDA"; break;
    case 98: *fam = PRET, a->src_w2 = NAN, *word = "sources[1].weight"; break;
    // CUDA views of the calls that run on CUDA: no device (skipped when one is present)
    case 99: *fam = FIXED, a->m.device = cu, a->out_sg.offsets.device = a->out_sg.start.device = a->out_sg.end.device = cu, *want = SEGRL_ERR_NO_DEVICE, *word = "mask: on cuda:0"; break;
    case 100: *fam = SPO, a->out_tok.device = cu, *want = SEGRL_ERR_NO_DEVICE, *word = "out_advantages: on cuda:0"; break;
    default: return 0;
    }
    return 1;
}

static void test_errors(void) {
    int n = 0;
    for (int id = 0;; id++) {
        eargs a;
        edefaults(&a);
        int fam = 0;
        segrl_status want;
        const char *word = "";
        if (!esetup(id, &a, &fam, &want, &word)) break;
        if (want == SEGRL_ERR_NO_DEVICE && segrl_cuda_device_count() > 0) continue; /* a GPU */
        segrl_clear_error();
        segrl_status got = ecall(fam, &a);
        const char *msg = segrl_last_error();
        CHECK(got == want, "case %d: status %s, want %s (%s)", id, segrl_status_str(got),
              segrl_status_str(want), msg);
        CHECK(strstr(msg, word) != NULL, "case %d: message \"%s\" lacks \"%s\"", id, msg, word);
        CHECK(strncmp(msg, "segrl_", 6) == 0 && strstr(msg, ": ") != NULL,
              "case %d: message \"%s\" not in the <fn>: <argument>: form", id, msg);
        CHECK(strstr(msg, "not implemented") == NULL, "case %d: %s", id, msg);
        CHECK(guards_intact(), "case %d: an output was written on failure (%s)", id, msg);
        n++;
    }
    /* every family succeeds with its defaults, and a NaN at a masked token is not inspected */
    for (int fam = FIXED; fam <= PRET; fam++) {
        eargs a;
        edefaults(&a);
        e_x[4] = NAN, e_p[9] = NAN, e_lp[8] = NAN, e_rf[4] = NAN; /* masked tokens */
        if (fam == SCHECK) e_x[4] = 0;
        segrl_status got = ecall(fam, &a);
        CHECK(got == SEGRL_OK, "family %d defaults: %s", fam, segrl_last_error());
        edefaults(&a);
        epacked(&a);
        got = ecall(fam, &a);
        CHECK(got == SEGRL_OK, "family %d packed defaults: %s", fam, segrl_last_error());
    }
    /* SEGRL_CHECKS_SHAPES skips the content checks (NaN propagates) */
    {
        eargs a;
        edefaults(&a);
        a.exec.checks = SEGRL_CHECKS_SHAPES;
        e_vals[1] = NAN;
        CHECK(ecall(SPO, &a) == SEGRL_OK, "shapes-only checks: %s", segrl_last_error());
    }
    printf("  %d bad-input cases\n", n);
}

int main(void) {
    test_partition_hand();
    test_ops_hand();
    test_random(37, 50, 1);
    test_random(64, 200, 2);
    test_random(5, 1, 3);
    test_random(1, 0, 4);
    test_errors();
    return h_finish();
}
