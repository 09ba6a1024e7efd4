/* test-dist.c — the communicator and the estimators across ranks, run by mpirun, by the
 * torchrun-style launcher (test-dist-launch.c) or alone (a world of one).
 *
 *   test-dist collectives <backend>   all-reduce / all-gather(v) / broadcast / barrier against
 *                                     values every rank can compute; argument errors
 *   test-dist estimators              GRPO / RLOO / REINFORCE++-baseline / whitening / token counts
 *                                     / tree values on uneven slices of one global batch, against
 *                                     the single-process call on the whole batch
 *   test-dist stuck <timeout_s>       the last rank never joins an all-reduce: the others must
 *                                     fail with SEGRL_ERR_COMM within the timeout, then abort
 *   test-dist dies <timeout_s> closed|timeout
 *                                     the last rank exits before an all-reduce: the others must
 *                                     fail with SEGRL_ERR_COMM, at once when its connection is
 *                                     seen to close (TCP), else within the timeout (MPI)
 *   test-dist cuda                    CUDA views through NCCL (exit 77 without a GPU)
 *   test-dist bench                   all-reduce timings (docs/distributed.md), not a test
 * Every rank counts its checks; rank 0 prints the totals as the last line. */
#define _POSIX_C_SOURCE 200809L

#include "harness.h"

#include "segrl/dist.h"

#include <time.h>
#include <unistd.h>

static segrl_comm *comm;
static int rank_, size_;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* totals over the ranks; rank 0 prints them; the exit code is the same everywhere */
static int finish_all(void) {
    int64_t c[2] = {h_pass, h_fail};
    segrl_status st = segrl_comm_allreduce(comm, segrl_view_1d(c, SEGRL_DTYPE_I64, segrl_cpu(), 2),
                                           SEGRL_REDUCE_SUM, NULL,
                                           segrl_view_1d(c, SEGRL_DTYPE_I64, segrl_cpu(), 2));
    if (st != SEGRL_OK) {
        printf("rank %d: totals not reduced: %s\n", rank_, segrl_last_error());
        c[0] = h_pass;
        c[1] = h_fail + 1;
    }
    segrl_comm_free(comm);
    if (rank_ == 0 || st != SEGRL_OK) printf("%lld passed, %lld failed\n", (long long)c[0], (long long)c[1]);
    return c[1] ? 1 : 0;
}

static segrl_view v1(void *p, segrl_dtype dt, int64_t n) { return segrl_view_1d(p, dt, segrl_cpu(), n); }

// ----------------------------------------------------------------------------
// collectives

static void test_allreduce(void) {
    const int64_t sizes[] = {0, 1, 1000, 1 << 20};
    for (int si = 0; si < 4; si++) {
        const int64_t n = sizes[si];
        float *xf = h_alloc((size_t)n * 4 + 4), *of = h_alloc((size_t)n * 4 + 4);
        double *xd = h_alloc((size_t)n * 8 + 8);
        int32_t *xi = h_alloc((size_t)n * 4 + 4);
        int64_t *xl = h_alloc((size_t)n * 8 + 8);
        uint8_t *xu = h_alloc((size_t)n + 1);
        const int ops[3] = {SEGRL_REDUCE_SUM, SEGRL_REDUCE_MAX, SEGRL_REDUCE_MIN};
        for (int oi = 0; oi < 3; oi++) {
            const int op = ops[oi];
            for (int64_t i = 0; i < n; i++) {
                xf[i] = (float)(rank_ * 1000 + i % 977);
                xd[i] = 0.5 * rank_ - (double)(i % 13);
                xi[i] = (int32_t)(rank_ * 7 - (int32_t)(i % 5));
                xl[i] = (int64_t)rank_ * 10000000000LL + i;
                xu[i] = (uint8_t)(rank_ + i % 7);
            }
            segrl_status st = segrl_comm_allreduce(comm, v1(xf, SEGRL_DTYPE_F32, n), op, NULL,
                                                   v1(of, SEGRL_DTYPE_F32, n));
            CHECK(st == SEGRL_OK, "allreduce f32 n=%lld op %d: %s", (long long)n, op, segrl_last_error());
            st = segrl_comm_allreduce(comm, v1(xd, SEGRL_DTYPE_F64, n), op, NULL, v1(xd, SEGRL_DTYPE_F64, n));
            CHECK(st == SEGRL_OK, "allreduce f64: %s", segrl_last_error());
            st = segrl_comm_allreduce(comm, v1(xi, SEGRL_DTYPE_I32, n), op, NULL, v1(xi, SEGRL_DTYPE_I32, n));
            CHECK(st == SEGRL_OK, "allreduce i32: %s", segrl_last_error());
            st = segrl_comm_allreduce(comm, v1(xl, SEGRL_DTYPE_I64, n), op, NULL, v1(xl, SEGRL_DTYPE_I64, n));
            CHECK(st == SEGRL_OK, "allreduce i64: %s", segrl_last_error());
            st = segrl_comm_allreduce(comm, v1(xu, SEGRL_DTYPE_U8, n), op, NULL, v1(xu, SEGRL_DTYPE_U8, n));
            CHECK(st == SEGRL_OK, "allreduce u8: %s", segrl_last_error());
            int64_t bad = 0;
            for (int64_t i = 0; i < n; i++) {
                double ef = 0, ed = 0, ei = 0, el = 0, eu = 0;
                for (int r = 0; r < size_; r++) {
                    double f = r * 1000 + (double)(i % 977), d = 0.5 * r - (double)(i % 13);
                    double in = r * 7 - (double)(i % 5), l = r * 1e10 + (double)i, u = r + (double)(i % 7);
                    if (r == 0 || op == SEGRL_REDUCE_SUM) {
                        ef = r ? ef + f : f, ed = r ? ed + d : d, ei = r ? ei + in : in;
                        el = r ? el + l : l, eu = r ? eu + u : u;
                    } else if (op == SEGRL_REDUCE_MAX) {
                        ef = f > ef ? f : ef, ed = d > ed ? d : ed, ei = in > ei ? in : ei;
                        el = l > el ? l : el, eu = u > eu ? u : eu;
                    } else {
                        ef = f < ef ? f : ef, ed = d < ed ? d : ed, ei = in < ei ? in : ei;
                        el = l < el ? l : el, eu = u < eu ? u : eu;
                    }
                }
                bad += of[i] != (float)ef || xd[i] != ed || xi[i] != (int32_t)ei ||
                       xl[i] != (int64_t)el || xu[i] != (uint8_t)eu;
            }
            CHECK(bad == 0, "allreduce n=%lld op %d: %lld wrong elements", (long long)n, op, (long long)bad);
        }
        free(xf), free(of), free(xd), free(xi), free(xl), free(xu);
    }
}

static void test_gather_bcast(void) {
    /* equal sizes */
    int32_t x[5], out[5 * 16];
    for (int i = 0; i < 5; i++) x[i] = rank_ * 100 + i;
    segrl_status st = segrl_comm_allgather(comm, v1(x, SEGRL_DTYPE_I32, 5), NULL,
                                           v1(out, SEGRL_DTYPE_I32, 5 * size_));
    CHECK(st == SEGRL_OK, "allgather: %s", segrl_last_error());
    int bad = 0;
    for (int r = 0; r < size_; r++)
        for (int i = 0; i < 5; i++) bad += out[r * 5 + i] != r * 100 + i;
    CHECK(bad == 0, "allgather: %d wrong", bad);
    /* variable sizes: rank r gives (3 r) % 4 doubles (rank 0 none) */
    const int64_t mine = (3 * rank_) % 4;
    double xv[4], ov[64];
    int64_t total = 0, counts[16];
    for (int r = 0; r < size_; r++) total += (3 * r) % 4;
    for (int i = 0; i < mine; i++) xv[i] = rank_ + 0.25 * i;
    for (int i = 0; i < 64; i++) ov[i] = -1;
    st = segrl_comm_allgatherv(comm, v1(xv, SEGRL_DTYPE_F64, mine), NULL,
                               v1(ov, SEGRL_DTYPE_F64, total + 2), counts);
    CHECK(st == SEGRL_OK, "allgatherv: %s", segrl_last_error());
    bad = 0;
    int64_t k = 0;
    for (int r = 0; r < size_; r++) {
        bad += counts[r] != (3 * r) % 4;
        for (int i = 0; i < (3 * r) % 4; i++) bad += ov[k++] != r + 0.25 * i;
    }
    bad += ov[total] != -1 || ov[total + 1] != -1; /* the rest untouched */
    CHECK(bad == 0, "allgatherv: %d wrong", bad);
    /* a rank whose out is too small: every rank fails, naming it */
    if (size_ > 1) {
        const int64_t cap = rank_ == 1 ? total - 1 : total;
        st = segrl_comm_allgatherv(comm, v1(xv, SEGRL_DTYPE_F64, mine), NULL,
                                   v1(ov, SEGRL_DTYPE_F64, cap), NULL);
        CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "rank 1 gave"),
              "allgatherv small out: %d %s", st, segrl_last_error());
    }
    /* broadcast from every root */
    for (int root = 0; root < size_; root++) {
        int64_t b[300];
        for (int i = 0; i < 300; i++) b[i] = rank_ == root ? root * 1000 + i : -7;
        st = segrl_comm_broadcast(comm, v1(b, SEGRL_DTYPE_I64, 300), root, NULL);
        CHECK(st == SEGRL_OK, "broadcast root %d: %s", root, segrl_last_error());
        bad = 0;
        for (int i = 0; i < 300; i++) bad += b[i] != root * 1000 + i;
        CHECK(bad == 0, "broadcast root %d: %d wrong", root, bad);
    }
    /* bf16 may be gathered and broadcast on the CPU (moved, not reduced) */
    uint16_t h[3] = {(uint16_t)(rank_ + 1), 2, 3}, hg[48];
    st = segrl_comm_allgather(comm, v1(h, SEGRL_DTYPE_BF16, 3), NULL, v1(hg, SEGRL_DTYPE_BF16, 3 * size_));
    CHECK(st == SEGRL_OK && hg[3 * (size_ - 1)] == size_, "allgather bf16: %s", segrl_last_error());
    CHECK(segrl_comm_barrier(comm) == SEGRL_OK, "barrier: %s", segrl_last_error());
}

/* argument errors: found before any communication, so every rank can make them */
static void test_errors(void) {
    float x[8] = {0}, o[8];
    segrl_status st = segrl_comm_allreduce(comm, v1(x, SEGRL_DTYPE_F32, 8), 7, NULL, v1(o, SEGRL_DTYPE_F32, 8));
    CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "segrl_comm_allreduce: op:"),
          "bad op: %s", segrl_last_error());
    st = segrl_comm_allreduce(comm, v1(x, SEGRL_DTYPE_F32, 8), SEGRL_REDUCE_MEAN, NULL, v1(o, SEGRL_DTYPE_F32, 8));
    CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "op: 1"), "mean op: %s", segrl_last_error());
    int64_t sh[1] = {4}, strd[1] = {2};
    st = segrl_comm_allreduce(comm, segrl_view_nd(x, SEGRL_DTYPE_F32, segrl_cpu(), 1, sh, strd),
                              SEGRL_REDUCE_SUM, NULL, v1(o, SEGRL_DTYPE_F32, 4));
    CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "x: must be contiguous"),
          "strided: %s", segrl_last_error());
    st = segrl_comm_allreduce(comm, v1(x, SEGRL_DTYPE_F32, 8), SEGRL_REDUCE_SUM, NULL, v1(o, SEGRL_DTYPE_F32, 7));
    CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "out: 7 elements, x has 8"),
          "count: %s", segrl_last_error());
    st = segrl_comm_allreduce(comm, v1(x, SEGRL_DTYPE_F32, 8), SEGRL_REDUCE_SUM, NULL, v1(x + 1, SEGRL_DTYPE_F32, 8));
    CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "overlaps"), "overlap: %s", segrl_last_error());
    st = segrl_comm_allreduce(comm, v1(x, SEGRL_DTYPE_BF16, 8), SEGRL_REDUCE_SUM, NULL, v1(o, SEGRL_DTYPE_BF16, 8));
    CHECK(st == SEGRL_ERR_UNSUPPORTED, "bf16 CPU reduce: %s", segrl_last_error());
    st = segrl_comm_allreduce(comm, segrl_view_1d(x, SEGRL_DTYPE_F32, segrl_cuda(0), 8), SEGRL_REDUCE_SUM,
                              NULL, segrl_view_1d(o, SEGRL_DTYPE_F32, segrl_cuda(0), 8));
    CHECK(st == SEGRL_ERR_UNSUPPORTED && strstr(segrl_last_error(), "without a CUDA device"),
          "cuda view: %s", segrl_last_error());
    st = segrl_comm_broadcast(comm, v1(x, SEGRL_DTYPE_F32, 8), size_, NULL);
    CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "root:"), "root: %s", segrl_last_error());
    st = segrl_comm_allgather(comm, v1(x, SEGRL_DTYPE_F32, 2), NULL, v1(o, SEGRL_DTYPE_F32, 2 * size_ + 1));
    CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "out:"), "gather out: %s", segrl_last_error());
    st = segrl_comm_barrier(NULL);
    CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "comm: NULL"), "NULL comm");
    CHECK(segrl_comm_rank(NULL) == -1 && segrl_comm_size(NULL) == -1, "NULL getters");
    segrl_comm_opts bad = segrl_comm_opts_default();
    bad.timeout_s = 0;
    segrl_comm *c2 = NULL;
    st = segrl_comm_init(&bad, &c2);
    CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "opts->timeout_s") && !c2,
          "timeout 0: %s", segrl_last_error());
#ifndef SEGRL_TEST_CUDA_BUILD
    /* a CUDA device asked of a CPU-only build: refused before any communication */
    bad = segrl_comm_opts_default();
    bad.cuda_device = SEGRL_COMM_LOCAL_RANK;
    st = segrl_comm_init(&bad, &c2);
    CHECK(st == SEGRL_ERR_UNSUPPORTED && strstr(segrl_last_error(), "opts->cuda_device") && !c2,
          "cuda opts: %d %s", st, segrl_last_error());
#else
    /* a CUDA build without a GPU (or without libnccl.so.2 on the library path): every rank fails
     * cleanly, naming the option. Not over TCP: that would be a second rendezvous. */
    if (segrl_cuda_device_count() == 0 && strcmp(segrl_comm_backend(comm), "tcp") != 0) {
        bad = segrl_comm_opts_default();
        bad.cuda_device = SEGRL_COMM_LOCAL_RANK;
        bad.timeout_s = bad.connect_timeout_s = 30;
        st = segrl_comm_init(&bad, &c2);
        CHECK((st == SEGRL_ERR_NO_DEVICE || st == SEGRL_ERR_CUDA) && !c2 &&
                  strstr(segrl_last_error(), "opts->cuda_device"),
              "cuda opts without a GPU: %d %s", st, segrl_last_error());
    }
#endif
}

// ----------------------------------------------------------------------------
// estimators: a global batch every rank can build, sliced unevenly over the ranks

enum { T_MAX = 37 };

typedef struct batch {
    int64_t B, G, N;
    float *scores, *rew_pad, *rew_pack, *x_pad, *x_pack;
    int64_t *gidx, *len, *off; /* off: packed offsets (B + 1) */
    uint8_t *mask_pad, *mask_pack;
    int64_t cut[17]; /* rank r: sequences [cut[r], cut[r+1]) */
} batch;

static void make_batch(batch *bt, uint64_t seed, int empty_rank) {
    h_seed(seed);
    int64_t G = 0, B = 0, gsz[64];
    G = h_int(5, 12);
    for (int64_t g = 0; g < G; g++) {
        gsz[g] = h_int(1, 6); /* singletons included */
        B += gsz[g];
    }
    bt->B = B, bt->G = G;
    bt->gidx = h_alloc((size_t)B * 8);
    int64_t k = 0;
    for (int64_t g = 0; g < G; g++)
        for (int64_t i = 0; i < gsz[g]; i++) bt->gidx[k++] = g;
    for (int64_t i = B - 1; i > 0; i--) { /* interleave the groups */
        int64_t j = h_int(0, i), t = bt->gidx[i];
        bt->gidx[i] = bt->gidx[j], bt->gidx[j] = t;
    }
    bt->scores = h_alloc((size_t)B * 4);
    bt->len = h_alloc((size_t)B * 8);
    bt->off = h_alloc((size_t)(B + 1) * 8);
    bt->rew_pad = h_alloc((size_t)B * T_MAX * 4);
    bt->x_pad = h_alloc((size_t)B * T_MAX * 4);
    bt->mask_pad = h_alloc((size_t)B * T_MAX);
    for (int64_t b = 0; b < B; b++) {
        bt->scores[b] = h_unif() < 0.3 ? (float)h_int(0, 1) : h_normal(); /* ties too */
        bt->len[b] = h_unif() < 0.05 ? 0 : h_int(1, T_MAX);
        bt->off[b + 1] = bt->off[b] + bt->len[b];
        for (int64_t t = 0; t < T_MAX; t++) {
            bt->rew_pad[b * T_MAX + t] = h_normal();
            bt->x_pad[b * T_MAX + t] = 2.0f * h_normal() + 0.5f;
            bt->mask_pad[b * T_MAX + t] = t < bt->len[b] && h_unif() > 0.15;
        }
    }
    bt->N = bt->off[B];
    bt->rew_pack = h_alloc((size_t)bt->N * 4 + 4);
    bt->x_pack = h_alloc((size_t)bt->N * 4 + 4);
    bt->mask_pack = h_alloc((size_t)bt->N + 1);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < bt->len[b]; t++) {
            bt->rew_pack[bt->off[b] + t] = bt->rew_pad[b * T_MAX + t];
            bt->x_pack[bt->off[b] + t] = bt->x_pad[b * T_MAX + t];
            bt->mask_pack[bt->off[b] + t] = bt->mask_pad[b * T_MAX + t];
        }
    /* uneven cut points; empty_rank (if in range) gets no sequence */
    bt->cut[0] = 0;
    for (int r = 1; r < size_; r++) bt->cut[r] = h_int(0, B);
    for (int r = 1; r < size_; r++) /* sort */
        for (int q = r + 1; q < size_; q++)
            if (bt->cut[q] < bt->cut[r]) {
                int64_t t = bt->cut[q];
                bt->cut[q] = bt->cut[r], bt->cut[r] = t;
            }
    bt->cut[size_] = B;
    if (empty_rank >= 0 && empty_rank < size_) bt->cut[empty_rank + 1] = bt->cut[empty_rank];
    for (int r = empty_rank + 2; empty_rank >= 0 && r <= size_; r++)
        if (bt->cut[r] < bt->cut[r - 1]) bt->cut[r] = bt->cut[r - 1];
    bt->cut[size_] = B;
}

static void free_batch(batch *bt) {
    free(bt->gidx), free(bt->scores), free(bt->len), free(bt->off), free(bt->rew_pad);
    free(bt->x_pad), free(bt->mask_pad), free(bt->rew_pack), free(bt->x_pack), free(bt->mask_pack);
}

/* |got - want| <= 1e-5 (1 + |want|) */
static int close_to(const char *what, const float *got, const float *want, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (!(fabsf(got[i] - want[i]) <= 1e-5f * (1.0f + fabsf(want[i])))) {
            if (bad < 3) printf("  rank %d %s[%lld]: %.9g, single process %.9g\n", rank_, what, (long long)i, got[i], want[i]);
            bad++;
        }
    CHECK(bad == 0, "%s: %lld of %lld differ from the single-process result", what, (long long)bad, (long long)n);
    return bad == 0;
}

typedef segrl_status (*single_fn)(const segrl_layout *, const segrl_outcome *, const segrl_outcome_opts *,
                                  const segrl_exec *, segrl_view, segrl_view);
typedef segrl_status (*dist_fn)(segrl_comm *, const segrl_layout *, const segrl_outcome *,
                                const segrl_outcome_opts *, segrl_view, segrl_view);

static void run_outcome(const batch *bt, const char *name, segrl_op op, single_fn one, dist_fn many,
                        const segrl_outcome_opts *opts, int packed, int use_scores) {
    const int64_t B = bt->B, lo = bt->cut[rank_], hi = bt->cut[rank_ + 1], Bl = hi - lo;
    char what[160];
    snprintf(what, sizeof what, "%s %s %s scope %d unbiased %d singleton %d (B %lld, local %lld)", name,
             packed ? "packed" : "padded", use_scores ? "scores" : "token rewards", opts->std_scope,
             opts->unbiased, opts->singleton, (long long)B, (long long)Bl);
    /* the single-process reference on the whole batch */
    const int64_t slots = packed ? bt->N : B * T_MAX;
    float *ref_tok = h_alloc((size_t)slots * 4 + 4), *ref_seq = h_alloc((size_t)B * 4 + 4);
    size_t ws_bytes = 0;
    segrl_workspace_size(op, segrl_cpu(), B, slots, bt->G, &ws_bytes);
    void *ws = h_alloc(ws_bytes + 16);
    segrl_exec ex = {NULL, ws, ws_bytes, SEGRL_CHECKS_FULL};
    segrl_layout lay_g = packed ? segrl_layout_packed(v1(bt->off, SEGRL_DTYPE_I64, B + 1)) : segrl_layout_padded();
    segrl_outcome in_g;
    memset(&in_g, 0, sizeof in_g);
    in_g.scores = use_scores ? v1(bt->scores, SEGRL_DTYPE_F32, B) : segrl_view_none();
    in_g.token_rewards = packed ? v1(bt->rew_pack, SEGRL_DTYPE_F32, bt->N)
                                : segrl_view_2d(bt->rew_pad, SEGRL_DTYPE_F32, segrl_cpu(), B, T_MAX);
    in_g.mask = packed ? v1(bt->mask_pack, SEGRL_DTYPE_U8, bt->N)
                       : segrl_view_2d(bt->mask_pad, SEGRL_DTYPE_U8, segrl_cpu(), B, T_MAX);
    in_g.group_index = v1(bt->gidx, SEGRL_DTYPE_I64, B);
    in_g.num_groups = bt->G;
    segrl_view rt = packed ? v1(ref_tok, SEGRL_DTYPE_F32, bt->N)
                           : segrl_view_2d(ref_tok, SEGRL_DTYPE_F32, segrl_cpu(), B, T_MAX);
    segrl_status st = one(&lay_g, &in_g, opts, &ex, rt, v1(ref_seq, SEGRL_DTYPE_F32, B));
    CHECK(st == SEGRL_OK, "%s: single process: %s", what, segrl_last_error());
    /* this rank's slice */
    int64_t *off_l = h_alloc((size_t)(Bl + 1) * 8);
    for (int64_t b = 0; b <= Bl; b++) off_l[b] = bt->off[lo + b] - bt->off[lo];
    const int64_t t0 = packed ? bt->off[lo] : lo * T_MAX, nl = packed ? off_l[Bl] : Bl * T_MAX;
    float *tok = h_alloc((size_t)nl * 4 + 4), *seq = h_alloc((size_t)Bl * 4 + 4);
    segrl_layout lay = packed ? segrl_layout_packed(v1(off_l, SEGRL_DTYPE_I64, Bl + 1)) : segrl_layout_padded();
    segrl_outcome in = in_g;
    in.scores = use_scores ? v1(bt->scores + lo, SEGRL_DTYPE_F32, Bl) : segrl_view_none();
    in.token_rewards = packed ? v1(bt->rew_pack + t0, SEGRL_DTYPE_F32, nl)
                              : segrl_view_2d(bt->rew_pad + t0, SEGRL_DTYPE_F32, segrl_cpu(), Bl, T_MAX);
    in.mask = packed ? v1(bt->mask_pack + t0, SEGRL_DTYPE_U8, nl)
                     : segrl_view_2d(bt->mask_pad + t0, SEGRL_DTYPE_U8, segrl_cpu(), Bl, T_MAX);
    in.group_index = v1(bt->gidx + lo, SEGRL_DTYPE_I64, Bl);
    segrl_view ot = packed ? v1(tok, SEGRL_DTYPE_F32, nl) : segrl_view_2d(tok, SEGRL_DTYPE_F32, segrl_cpu(), Bl, T_MAX);
    st = many(comm, &lay, &in, opts, ot, v1(seq, SEGRL_DTYPE_F32, Bl));
    CHECK(st == SEGRL_OK, "%s: distributed: %s", what, segrl_last_error());
    if (st == SEGRL_OK) {
        char w2[200];
        snprintf(w2, sizeof w2, "%s token", what);
        close_to(w2, tok, ref_tok + t0, nl);
        snprintf(w2, sizeof w2, "%s seq", what);
        close_to(w2, seq, ref_seq + lo, Bl);
    }
    free(ref_tok), free(ref_seq), free(ws), free(off_l), free(tok), free(seq);
}

static void run_whiten(const batch *bt, int grouped, const segrl_whiten_opts *o, int packed) {
    const int64_t B = bt->B, lo = bt->cut[rank_], hi = bt->cut[rank_ + 1], Bl = hi - lo;
    const int64_t slots = packed ? bt->N : B * T_MAX;
    float *ref = h_alloc((size_t)slots * 4 + 4);
    size_t ws_bytes = 0;
    segrl_workspace_size(SEGRL_OP_WHITEN, segrl_cpu(), B, slots, grouped ? bt->G : 1, &ws_bytes);
    void *ws = h_alloc(ws_bytes + 16);
    segrl_exec ex = {NULL, ws, ws_bytes, SEGRL_CHECKS_FULL};
    segrl_layout lay_g = packed ? segrl_layout_packed(v1(bt->off, SEGRL_DTYPE_I64, B + 1)) : segrl_layout_padded();
    segrl_view x = packed ? v1(bt->x_pack, SEGRL_DTYPE_F32, bt->N) : segrl_view_2d(bt->x_pad, SEGRL_DTYPE_F32, segrl_cpu(), B, T_MAX);
    segrl_view m = packed ? v1(bt->mask_pack, SEGRL_DTYPE_U8, bt->N) : segrl_view_2d(bt->mask_pad, SEGRL_DTYPE_U8, segrl_cpu(), B, T_MAX);
    segrl_view r = packed ? v1(ref, SEGRL_DTYPE_F32, bt->N) : segrl_view_2d(ref, SEGRL_DTYPE_F32, segrl_cpu(), B, T_MAX);
    segrl_status st = segrl_whiten(&lay_g, x, m, grouped ? v1(bt->gidx, SEGRL_DTYPE_I64, B) : segrl_view_none(),
                                   grouped ? bt->G : 0, o, &ex, r);
    CHECK(st == SEGRL_OK, "whiten single: %s", segrl_last_error());
    int64_t *off_l = h_alloc((size_t)(Bl + 1) * 8);
    for (int64_t b = 0; b <= Bl; b++) off_l[b] = bt->off[lo + b] - bt->off[lo];
    const int64_t t0 = packed ? bt->off[lo] : lo * T_MAX, nl = packed ? off_l[Bl] : Bl * T_MAX;
    float *out = h_alloc((size_t)nl * 4 + 4);
    segrl_layout lay = packed ? segrl_layout_packed(v1(off_l, SEGRL_DTYPE_I64, Bl + 1)) : segrl_layout_padded();
    segrl_view xl = packed ? v1(bt->x_pack + t0, SEGRL_DTYPE_F32, nl) : segrl_view_2d(bt->x_pad + t0, SEGRL_DTYPE_F32, segrl_cpu(), Bl, T_MAX);
    segrl_view ml = packed ? v1(bt->mask_pack + t0, SEGRL_DTYPE_U8, nl) : segrl_view_2d(bt->mask_pad + t0, SEGRL_DTYPE_U8, segrl_cpu(), Bl, T_MAX);
    segrl_view ol = packed ? v1(out, SEGRL_DTYPE_F32, nl) : segrl_view_2d(out, SEGRL_DTYPE_F32, segrl_cpu(), Bl, T_MAX);
    st = segrl_dist_whiten(comm, &lay, xl, ml, grouped ? v1(bt->gidx + lo, SEGRL_DTYPE_I64, Bl) : segrl_view_none(),
                           grouped ? bt->G : 0, o, ol);
    CHECK(st == SEGRL_OK, "whiten dist: %s", segrl_last_error());
    char what[120];
    snprintf(what, sizeof what, "whiten %s %s shift %d unbiased %d", grouped ? "grouped" : "global",
             packed ? "packed" : "padded", o->shift_mean, o->unbiased);
    if (st == SEGRL_OK) close_to(what, out, ref + t0, nl);
    /* token counts: the global number of valid tokens and sequences */
    int64_t ntok = -1, nseq = -1, want = 0;
    for (int64_t i = 0; i < slots; i++) want += packed ? bt->mask_pack[i] : bt->mask_pad[i];
    st = segrl_dist_token_count(comm, &lay, xl, ml, &ntok, &nseq);
    CHECK(st == SEGRL_OK && ntok == want && nseq == B, "token count: %lld/%lld vs %lld/%lld: %s",
          (long long)ntok, (long long)nseq, (long long)want, (long long)B, segrl_last_error());
    free(ref), free(ws), free(off_l), free(out);
}

/* a forest of random trees; leaf i is generated by rank owner(i) */
static void test_tree(uint64_t seed) {
    h_seed(seed);
    enum { MMAX = 400 };
    int64_t parent[MMAX], M = 0;
    float reward[MMAX];
    int ntrees = (int)h_int(2, 5);
    for (int t = 0; t < ntrees; t++) {
        int64_t root = M;
        parent[M++] = -1;
        int64_t n = h_int(3, 60);
        for (int64_t i = 0; i < n && M < MMAX; i++) parent[M] = h_int(root, M - 1), M++;
    }
    int children[MMAX] = {0};
    for (int64_t i = 0; i < M; i++)
        if (parent[i] >= 0) children[parent[i]]++;
    for (int64_t i = 0; i < M; i++) reward[i] = (float)h_int(0, 1) + 0.1f * h_normal();
    size_t ws_bytes = 0;
    segrl_tree_workspace_size(segrl_cpu(), M, &ws_bytes);
    void *ws = h_alloc(ws_bytes + 16);
    segrl_exec ex = {NULL, ws, ws_bytes, SEGRL_CHECKS_FULL};
    for (int kind = SEGRL_TREE_VALUE_LEAF_MEAN; kind <= SEGRL_TREE_VALUE_MAX; kind++) {
        segrl_tree tr;
        memset(&tr, 0, sizeof tr);
        tr.parent = v1(parent, SEGRL_DTYPE_I64, M);
        tr.leaf_reward = v1(reward, SEGRL_DTYPE_F32, M);
        float ref[MMAX], got[MMAX], mine[MMAX];
        int64_t rc[MMAX], gc[MMAX];
        uint8_t own[MMAX];
        segrl_status st = segrl_tree_values(&tr, kind, &ex, v1(ref, SEGRL_DTYPE_F32, M), v1(rc, SEGRL_DTYPE_I64, M));
        CHECK(st == SEGRL_OK, "tree single: %s", segrl_last_error());
        for (int64_t i = 0; i < M; i++) {
            own[i] = children[i] == 0 && (i * 7 + 3) % size_ == rank_;
            mine[i] = own[i] ? reward[i] : NAN; /* the others' leaves are unknown here */
        }
        tr.leaf_reward = v1(mine, SEGRL_DTYPE_F32, M);
        st = segrl_dist_tree_values(comm, &tr, v1(own, SEGRL_DTYPE_U8, M), kind, &ex,
                                    v1(got, SEGRL_DTYPE_F32, M), v1(gc, SEGRL_DTYPE_I64, M));
        CHECK(st == SEGRL_OK, "tree dist kind %d: %s", kind, segrl_last_error());
        if (st == SEGRL_OK) {
            char what[64];
            snprintf(what, sizeof what, "tree values kind %d", kind);
            h_same_f(what, got, ref, M);
            CHECK(memcmp(gc, rc, (size_t)M * 8) == 0, "tree leaf counts kind %d", kind);
        }
    }
    /* a leaf owned by every rank (size > 1) or by none: the same error everywhere */
    {
        segrl_tree tr;
        memset(&tr, 0, sizeof tr);
        tr.parent = v1(parent, SEGRL_DTYPE_I64, M);
        tr.leaf_reward = v1(reward, SEGRL_DTYPE_F32, M);
        uint8_t own[MMAX];
        float got[MMAX];
        for (int64_t i = 0; i < M; i++) own[i] = children[i] == 0 && (i * 7 + 3) % size_ == rank_;
        int64_t leaf = M - 1; /* the last node is always a leaf */
        own[leaf] = size_ > 1 ? 1 : 0;
        segrl_status st = segrl_dist_tree_values(comm, &tr, v1(own, SEGRL_DTYPE_U8, M), 0, &ex,
                                                 v1(got, SEGRL_DTYPE_F32, M), segrl_view_none());
        CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "leaf_owned: leaf"),
              "tree ownership: %d %s", st, segrl_last_error());
        /* node arrays that differ between ranks */
        if (size_ > 1) {
            int64_t p2[MMAX];
            memcpy(p2, parent, sizeof p2);
            if (rank_ == 1) p2[M - 1] = parent[M - 1] == 0 ? -1 : 0;
            tr.parent = v1(p2, SEGRL_DTYPE_I64, M);
            st = segrl_dist_tree_values(comm, &tr, v1(own, SEGRL_DTYPE_U8, M), 0, &ex,
                                        v1(got, SEGRL_DTYPE_F32, M), segrl_view_none());
            CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "differ between ranks"),
                  "tree topology: %d %s", st, segrl_last_error());
        }
    }
    free(ws);
}

static void test_estimators(void) {
    /* few collectives per test: on a loaded 2-core machine every collective waits for both ranks
     * to be scheduled (milliseconds each) */
    for (int rep = 0; rep < 3; rep++) {
        batch bt;
        make_batch(&bt, 1000 + (uint64_t)rep, rep % 3 == 1 ? 1 : -1); /* some splits leave rank 1 empty */
        for (int packed = 0; packed <= 1; packed++)
            for (int sc = 0; sc <= 1; sc++) {
                segrl_outcome_opts o = segrl_outcome_opts_default();
                for (int scope = 0; scope <= 2; scope++)
                    for (int unb = 0; unb <= 1; unb++)
                        for (int single = 0; single <= 1; single++) {
                            o.std_scope = scope, o.unbiased = unb, o.singleton = single;
                            run_outcome(&bt, "grpo", SEGRL_OP_GRPO, segrl_grpo, segrl_dist_grpo, &o, packed, sc);
                        }
                o = segrl_outcome_opts_default();
                for (int single = 0; single <= 1; single++) {
                    o.singleton = single;
                    run_outcome(&bt, "rloo", SEGRL_OP_RLOO, segrl_rloo, segrl_dist_rloo, &o, packed, sc);
                    run_outcome(&bt, "reinforce++-baseline", SEGRL_OP_REINFORCE_PP_BASELINE,
                                segrl_reinforce_pp_baseline, segrl_dist_reinforce_pp_baseline, &o, packed, sc);
                    run_outcome(&bt, "opo", SEGRL_OP_OPO, segrl_opo, segrl_dist_opo, &o, packed, sc);
                    run_outcome(&bt, "gpg", SEGRL_OP_GPG, segrl_gpg, segrl_dist_gpg, &o, packed, sc);
                }
            }
        for (int packed = 0; packed <= 1; packed++)
            for (int grouped = 0; grouped <= 1; grouped++)
                for (int v = 0; v < 3; v++) {
                    segrl_whiten_opts w = segrl_whiten_opts_default();
                    w.shift_mean = v != 1;
                    w.unbiased = v != 2;
                    run_whiten(&bt, grouped, &w, packed);
                }
        free_batch(&bt);
    }
    for (int rep = 0; rep < 2; rep++) test_tree(77 + (uint64_t)rep);
    /* an argument error names the call and the argument (found before communicating) */
    float o1[4];
    int64_t gi[1] = {5};
    float sc[1] = {1};
    segrl_outcome in;
    memset(&in, 0, sizeof in);
    in.scores = v1(sc, SEGRL_DTYPE_F32, 1);
    in.group_index = v1(gi, SEGRL_DTYPE_I64, 1);
    in.num_groups = 2;
    segrl_status st = segrl_dist_grpo(comm, NULL, &in, NULL, segrl_view_2d(o1, SEGRL_DTYPE_F32, segrl_cpu(), 1, 4),
                                      segrl_view_none());
    CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "segrl_dist_grpo: in->group_index: [0] = 5"),
          "group index error: %s", segrl_last_error());
    st = segrl_dist_rloo(comm, NULL, &in, NULL, segrl_view_2d(o1, SEGRL_DTYPE_F32, segrl_cuda(0), 1, 4),
                         segrl_view_none());
    CHECK(st == SEGRL_ERR_UNSUPPORTED && strstr(segrl_last_error(), "CPU only"), "cuda: %s", segrl_last_error());
}

// ----------------------------------------------------------------------------
// failures

/* the last rank never joins: the others time out with a clear error, then end the job */
static int test_stuck(double timeout) {
    float x[16] = {0};
    if (rank_ == size_ - 1) {
        sleep((unsigned)(timeout * 4 + 10)); /* ended by the abort of a peer */
        printf("rank %d: still alive, the job was not ended\n", rank_);
        return 1;
    }
    double t0 = now_s();
    segrl_status st = segrl_comm_allreduce(comm, v1(x, SEGRL_DTYPE_F32, 16), SEGRL_REDUCE_SUM, NULL,
                                           v1(x, SEGRL_DTYPE_F32, 16));
    double el = now_s() - t0;
    CHECK(st == SEGRL_ERR_COMM, "stuck: status %d", st);
    CHECK(strstr(segrl_last_error(), "segrl_comm_allreduce:") != NULL, "stuck: message %s", segrl_last_error());
    CHECK(el >= timeout * 0.9 && el < timeout + 5, "stuck: returned after %.2f s, timeout %.2f", el, timeout);
    /* the communicator is broken from now on */
    st = segrl_comm_barrier(comm);
    CHECK(st == SEGRL_ERR_COMM && strstr(segrl_last_error(), "earlier failure"), "broken: %s", segrl_last_error());
    printf("rank %d: %d passed, %d failed (%.2f s): %s\n", rank_, h_pass, h_fail, el, segrl_last_error());
    if (h_fail == 0) printf("dist-failure-ok rank %d\n", rank_);
    fflush(stdout);
    segrl_comm_abort(comm, h_fail ? 1 : 0);
    return 1;
}

/* the last rank exits (as a crash would) before an all-reduce. expect "closed": the others must
 * see its connection close at once (TCP); "timeout": they fail when their timeout expires (MPI
 * told not to end the job, so nothing else notices) */
static int test_dies(double timeout, const char *expect) {
    float x[16] = {0};
    if (rank_ == size_ - 1) _exit(3);
    double t0 = now_s();
    segrl_status st = segrl_comm_allreduce(comm, v1(x, SEGRL_DTYPE_F32, 16), SEGRL_REDUCE_SUM, NULL,
                                           v1(x, SEGRL_DTYPE_F32, 16));
    double el = now_s() - t0;
    CHECK(st == SEGRL_ERR_COMM, "dies: status %d", st);
    const char *msg = segrl_last_error();
    if (!strcmp(expect, "closed")) {
        char want[64];
        snprintf(want, sizeof want, "rank %d", size_ - 1);
        CHECK(strstr(msg, want) && strstr(msg, "closed"), "dies: message %s", msg);
        CHECK(el < 5.0, "dies: took %.2f s", el);
    } else {
        CHECK(strstr(msg, "segrl_comm_allreduce:") && (strstr(msg, "timed out") || strstr(msg, "failed")),
              "dies: message %s", msg);
        CHECK(el < timeout + 5.0, "dies: took %.2f s, timeout %.2f", el, timeout);
    }
    printf("rank %d: %.3f s: %s\n", rank_, el, msg);
    segrl_comm_free(comm);
    printf("%d passed, %d failed\n", h_pass, h_fail);
    if (h_fail == 0) printf("dist-failure-ok rank %d\n", rank_);
    return h_fail ? 1 : 0;
}

// ----------------------------------------------------------------------------
// CUDA views through NCCL (CUDA builds; exits 77 without a GPU). One GPU allows a world of one
// (NCCL refuses two ranks on one device), so this checks the NCCL plumbing (dlopen, the
// non-blocking communicator, enqueue, segrl_comm_wait, dtypes), not the cross-GPU arithmetic.

#ifdef SEGRL_TEST_CUDA_BUILD
#include <cuda_runtime.h>

static int test_cuda(void) {
    const int64_t n = 4099;
    float *h = h_alloc((size_t)n * 4), *back = h_alloc((size_t)n * 4 * 16);
    for (int64_t i = 0; i < n; i++) h[i] = (float)(i % 101) - 50.0f;
    float *d = NULL, *dg = NULL;
    uint16_t *db = NULL;
    CHECK(cudaMalloc((void **)&d, (size_t)n * 4) == cudaSuccess, "cudaMalloc");
    CHECK(cudaMalloc((void **)&dg, (size_t)n * 4 * size_) == cudaSuccess, "cudaMalloc");
    CHECK(cudaMalloc((void **)&db, (size_t)n * 2) == cudaSuccess, "cudaMalloc");
    cudaStream_t s;
    cudaStreamCreate(&s);
    cudaMemcpy(d, h, (size_t)n * 4, cudaMemcpyHostToDevice);
    cudaMemset(db, 0, (size_t)n * 2);
    const segrl_device dev = segrl_cuda(segrl_comm_local_rank(comm));
    segrl_view x = segrl_view_1d(d, SEGRL_DTYPE_F32, dev, n);
    const int ops[3] = {SEGRL_REDUCE_SUM, SEGRL_REDUCE_MAX, SEGRL_REDUCE_MIN};
    for (int oi = 0; oi < 3; oi++) {
        const int op = ops[oi];
        segrl_status st = segrl_comm_allreduce(comm, x, op, s, x);
        CHECK(st == SEGRL_OK, "cuda allreduce op %d: %s", op, segrl_last_error());
    }
    CHECK(segrl_comm_allreduce(comm, segrl_view_1d(db, SEGRL_DTYPE_BF16, dev, n), SEGRL_REDUCE_SUM, s,
                               segrl_view_1d(db, SEGRL_DTYPE_BF16, dev, n)) == SEGRL_OK,
          "cuda allreduce bf16: %s", segrl_last_error());
    CHECK(segrl_comm_allgather(comm, x, s, segrl_view_1d(dg, SEGRL_DTYPE_F32, dev, n * size_)) == SEGRL_OK,
          "cuda allgather: %s", segrl_last_error());
    CHECK(segrl_comm_broadcast(comm, x, 0, s) == SEGRL_OK, "cuda broadcast: %s", segrl_last_error());
    CHECK(segrl_comm_wait(comm, s) == SEGRL_OK, "cuda wait: %s", segrl_last_error());
    cudaMemcpy(back, d, (size_t)n * 4, cudaMemcpyDeviceToHost);
    /* sum over size ranks of the same data, then max and min of equal values */
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += back[i] != h[i] * (float)size_;
    CHECK(bad == 0, "cuda allreduce: %lld wrong", (long long)bad);
    cudaMemcpy(back, dg, (size_t)n * 4 * size_, cudaMemcpyDeviceToHost);
    bad = 0;
    for (int r = 0; r < size_; r++)
        for (int64_t i = 0; i < n; i++) bad += back[r * n + i] != h[i] * (float)size_;
    CHECK(bad == 0, "cuda allgather: %lld wrong", (long long)bad);
    /* a view on another device than the communicator's */
    segrl_status st = segrl_comm_allreduce(comm, segrl_view_1d(d, SEGRL_DTYPE_F32, segrl_cuda(dev.index + 1), n),
                                           SEGRL_REDUCE_SUM, s, segrl_view_1d(d, SEGRL_DTYPE_F32, segrl_cuda(dev.index + 1), n));
    CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "communicator's device"), "device: %s",
          segrl_last_error());
    cudaStreamDestroy(s);
    cudaFree(d), cudaFree(dg), cudaFree(db);
    free(h), free(back);
    return finish_all();
}
#endif

// ----------------------------------------------------------------------------
// timing (not a ctest): median all-reduce time per size, as nccl-tests reports it:
//   algbw = bytes / t,   busbw = algbw * 2 (W - 1) / W   (the bytes a ring moves per rank)

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int bench(void) {
    const int64_t sizes[] = {256, 4096, 65536, 1 << 20, 1 << 22, 1 << 24}; /* f32 elements */
    if (rank_ == 0)
        printf("# all-reduce (sum, f32) over %s, %d ranks: bytes, median us, algbw GB/s, busbw GB/s\n",
               segrl_comm_backend(comm), size_);
    for (int si = 0; si < 6; si++) {
        const int64_t n = sizes[si];
        float *x = h_alloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++) x[i] = (float)(i % 3);
        const int reps = n >= (1 << 22) ? 7 : 25;
        double t[25];
        for (int r = -2; r < reps; r++) { /* two warm-up calls */
            segrl_comm_barrier(comm);
            double t0 = now_s();
            segrl_status st = segrl_comm_allreduce(comm, v1(x, SEGRL_DTYPE_F32, n), SEGRL_REDUCE_SUM, NULL,
                                                   v1(x, SEGRL_DTYPE_F32, n));
            double el = now_s() - t0;
            /* the slowest rank's time */
            segrl_comm_allreduce(comm, v1(&el, SEGRL_DTYPE_F64, 1), SEGRL_REDUCE_MAX, NULL, v1(&el, SEGRL_DTYPE_F64, 1));
            if (st != SEGRL_OK) {
                printf("bench: %s\n", segrl_last_error());
                return 1;
            }
            if (r >= 0) t[r] = el;
        }
        qsort(t, (size_t)reps, sizeof(double), cmp_d);
        const double med = t[reps / 2], bytes = (double)n * 4;
        if (rank_ == 0)
            printf("%12.0f %12.1f %10.3f %10.3f\n", bytes, med * 1e6, bytes / med / 1e9,
                   bytes / med / 1e9 * 2.0 * (size_ - 1) / size_);
        free(x);
    }
    segrl_comm_free(comm);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "collectives";
    segrl_comm_opts o = segrl_comm_opts_default();
    if (!strcmp(mode, "cuda")) {
#ifdef SEGRL_TEST_CUDA_BUILD
        if (segrl_cuda_device_count() == 0) {
            printf("no CUDA device: skipped\n");
            return 77;
        }
        o.cuda_device = SEGRL_COMM_LOCAL_RANK;
#else
        printf("a CPU-only build: skipped\n");
        return 77;
#endif
    }
    o.timeout_s = 60;
    o.connect_timeout_s = 30;
    if (!strcmp(mode, "stuck")) o.timeout_s = argc > 2 ? atof(argv[2]) : 2.0;
    if (!strcmp(mode, "dies")) o.timeout_s = argc > 2 ? atof(argv[2]) : 20.0;
    segrl_status st = segrl_comm_init(&o, &comm);
    if (st != SEGRL_OK) {
        printf("segrl_comm_init: %s: %s\n", segrl_status_str(st), segrl_last_error());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    rank_ = segrl_comm_rank(comm), size_ = segrl_comm_size(comm);
    CHECK(rank_ >= 0 && rank_ < size_ && size_ <= 16, "rank %d size %d", rank_, size_);
    CHECK(segrl_comm_local_rank(comm) >= 0 && segrl_comm_local_rank(comm) < segrl_comm_local_size(comm),
          "local rank %d of %d", segrl_comm_local_rank(comm), segrl_comm_local_size(comm));
    if (!strcmp(mode, "collectives")) {
        const char *want = argc > 2 ? argv[2] : NULL;
        CHECK(!want || !strcmp(segrl_comm_backend(comm), want), "backend %s, expected %s",
              segrl_comm_backend(comm), want);
        test_allreduce();
        test_gather_bcast();
        test_errors();
        return finish_all();
    }
    if (!strcmp(mode, "estimators")) {
        test_estimators();
        return finish_all();
    }
    if (!strcmp(mode, "stuck")) return test_stuck(o.timeout_s);
    if (!strcmp(mode, "bench")) return bench();
#ifdef SEGRL_TEST_CUDA_BUILD
    if (!strcmp(mode, "cuda")) {
        CHECK(strstr(segrl_comm_backend(comm), "+nccl") != NULL, "backend %s", segrl_comm_backend(comm));
        return test_cuda();
    }
#endif
    if (!strcmp(mode, "dies")) return test_dies(o.timeout_s, argc > 3 ? argv[3] : "closed");
    printf("unknown mode %s\n0 passed, 1 failed\n", mode);
    return 1;
}
