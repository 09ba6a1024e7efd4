/* segrl-bench — throughput of the advantage estimators, the segment calls and the tree calls
 * against a memory-bandwidth baseline measured in the same run; the loss area's fused
 * log-probabilities against the straightforward passes (section "loss" below).
 *
 *   segrl-bench advantage|segment|tree|loss [--small] [--json FILE] [--device cpu|cuda|all]
 *               [--reps N]
 *
 * The three benchmarks share the machinery: deterministic inputs, rotating copies (pool_*),
 * timing one row on one device (bench_row: 2 warm-ups, median, CPU clock or CUDA events behind
 * the stream gate), the rows (table + JSON) and the baselines. `segment` and `tree` rows skip a
 * CUDA op that still answers SEGRL_ERR_UNSUPPORTED (printed as "skipped: no CUDA kernel"); their
 * byte formulas sit next to seg_bytes() and tree_bytes() below.
 *
 * advantage:
 * Every estimator should be memory bound (a few flops per token), so each row reports the bytes
 * a call must move at minimum divided by its median time (GB/s), and that figure over the
 * same-run baseline: a single-thread STREAM triad on the CPU (the library is single-threaded), a
 * device-to-device cudaMemcpyAsync on CUDA. docs/performance.md explains the formulas and holds
 * measured numbers.
 *
 * Inputs: padded (B, T) f32 tensors, a u8 response mask with right padding (response lengths
 * uniform in [T/2, T]), interleaved groups (group of sequence b = b % (B/8), 8 samples each, never
 * contiguous), 0/1 outcome scores; plus one packed-layout GAE row per shape (the same responses
 * concatenated, i32 offsets).
 *
 * Bytes moved per call (minimal traffic of the CPU reference; N = token slots: B*T padded, or the
 * packed length; masks are u8; O(B) terms use 4-byte scores, group indices and outputs):
 *   gae                      17 N               read rewards, values (4+4), mask (1); write
 *                                               advantages, returns (4+4)
 *   gae (packed)             17 N + 4 (B+1)     same, plus the i32 offsets
 *   gae+checks               17 N               as gae: the check pass shows as lower GB/s
 *   discounted_returns        9 N               read rewards (4), mask (1); write returns (4)
 *   discounted_returns+k3    17 N               + logprobs, ref_logprobs (4+4)
 *   whiten(global)           14 N               pass 1 reads x, mask (4+1); pass 2 reads them
 *                                               again and writes out (4+1+4)
 *   whiten(grouped)          14 N + 8 B         + the group index, read in both passes
 *   grpo, rloo, grpo_passk,   5 N + 12 B        read the mask for the broadcast (1), write the
 *   gpg (scores)                                token advantages (4); scores, group index,
 *                                               per-sequence advantages (4+4+4 per B)
 *   remax                     5 N + 12 B        greedy_scores instead of the group index
 *   opo, reinforce_pp_        6 N + 12 B        the mask a second time (1): these weigh
 *   baseline (scores)                           sequences by their lengths
 *   grpo(token_rewards)      10 N + 8 B         read token rewards + mask (4+1) for R, mask again
 *                                               for the broadcast (1), write (4); group index and
 *                                               per-sequence advantages (4+4 per B)
 * Baselines: triad a[i] = b[i] + s*c[i], 12 bytes per element (STREAM convention: the
 * write-allocate read of a[] is not counted); D2D copy, 2 * size bytes. */
#define _POSIX_C_SOURCE 200809L

#include "segrl/segrl.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef SEGRL_BENCH_CUDA
#include <cuda_runtime_api.h>
#include <stdatomic.h>
#endif

// ----------------------------------------------------------------------------
// failure handling: every call is checked; a failure ends the run with exit status 1

static void die(const char *what, const char *detail) {
    fprintf(stderr, "segrl-bench: %s: %s\n", what, detail);
    exit(1);
}

static void check_segrl(segrl_status st, const char *what) {
    if (st != SEGRL_OK) {
        const char *msg = segrl_last_error();
        fprintf(stderr, "segrl-bench: %s failed: %s (%s)\n", what, msg[0] ? msg : "(no message)",
                segrl_status_str(st));
        exit(1);
    }
}

#ifdef SEGRL_BENCH_CUDA
#define CUDA_OK(expr)                                                                             \
    do {                                                                                          \
        cudaError_t e_ = (expr);                                                                  \
        if (e_ != cudaSuccess) die(#expr, cudaGetErrorString(e_));                                \
    } while (0)
#endif

static void *host_alloc(size_t bytes) {
    size_t n = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, n ? n : 64);
    if (!p) die("aligned_alloc", "out of memory");
    return p;
}

// ----------------------------------------------------------------------------
// timing

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define WARMUP 2

// ----------------------------------------------------------------------------
// deterministic inputs

static uint64_t rng_state = 0x5e9c1u;

static uint64_t rng_next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_unit(void) { return (float)(rng_next() >> 40) * (1.0f / 16777216.0f); } /* [0,1) */

typedef struct host_data {
    int64_t B, T, N, G, Np; /* Np: packed length */
    float *rewards, *values, *logp, *refp; /* (B, T) */
    uint8_t *mask;                          /* (B, T) */
    float *scores, *greedy;                 /* (B) */
    int32_t *gidx;                          /* (B) */
    int32_t *offsets;                       /* (B + 1) */
    float *p_rewards, *p_values;            /* (Np) */
    uint8_t *p_mask;                        /* (Np), all 1 */
} host_data;

static void host_data_make(host_data *h, int64_t B, int64_t T) {
    memset(h, 0, sizeof *h);
    rng_state = 0x5e9c1u + (uint64_t)B * 1000003u + (uint64_t)T;
    h->B = B;
    h->T = T;
    h->N = B * T;
    h->G = B / 8 > 0 ? B / 8 : 1;
    const size_t nf = (size_t)h->N * sizeof(float);
    h->rewards = host_alloc(nf);
    h->values = host_alloc(nf);
    h->logp = host_alloc(nf);
    h->refp = host_alloc(nf);
    h->mask = host_alloc((size_t)h->N);
    h->scores = host_alloc((size_t)B * sizeof(float));
    h->greedy = host_alloc((size_t)B * sizeof(float));
    h->gidx = host_alloc((size_t)B * sizeof(int32_t));
    h->offsets = host_alloc((size_t)(B + 1) * sizeof(int32_t));
    for (int64_t i = 0; i < h->N; i++) {
        h->rewards[i] = 2.0f * rng_unit() - 1.0f;
        h->values[i] = 2.0f * rng_unit() - 1.0f;
        h->logp[i] = -3.0f * rng_unit();
        h->refp[i] = h->logp[i] + 0.2f * (rng_unit() - 0.5f);
    }
    int64_t np = 0;
    h->offsets[0] = 0;
    for (int64_t b = 0; b < B; b++) {
        const int64_t len = T / 2 + (int64_t)(rng_next() % (uint64_t)(T - T / 2 + 1));
        for (int64_t t = 0; t < T; t++) h->mask[b * T + t] = t < len;
        h->scores[b] = (float)(rng_next() & 1);
        h->greedy[b] = (float)(rng_next() & 1);
        h->gidx[b] = (int32_t)(b % h->G);
        np += len;
        h->offsets[b + 1] = (int32_t)np;
    }
    h->Np = np;
    h->p_rewards = host_alloc((size_t)np * sizeof(float));
    h->p_values = host_alloc((size_t)np * sizeof(float));
    h->p_mask = host_alloc((size_t)np);
    for (int64_t b = 0; b < B; b++) {
        const int64_t o = h->offsets[b], len = h->offsets[b + 1] - o;
        memcpy(h->p_rewards + o, h->rewards + b * T, (size_t)len * sizeof(float));
        memcpy(h->p_values + o, h->values + b * T, (size_t)len * sizeof(float));
        memset(h->p_mask + o, 1, (size_t)len);
    }
}

static void host_data_free(host_data *h) {
    void *ps[] = {h->rewards, h->values, h->logp,    h->refp,      h->mask,     h->scores,
                  h->greedy,  h->gidx,   h->offsets, h->p_rewards, h->p_values, h->p_mask};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) free(ps[i]);
    memset(h, 0, sizeof *h);
}

// ----------------------------------------------------------------------------
// memory on one device (CPU: host memory touched outside the timed region; CUDA: cudaMalloc)

typedef struct pool {
    int cuda;
    void **owned; /* memory to release */
    int n, cap;
} pool;

static void *pool_alloc(pool *p, size_t bytes) {
    void *m = NULL;
    if (p->cuda) {
#ifdef SEGRL_BENCH_CUDA
        CUDA_OK(cudaMalloc(&m, bytes ? bytes : 256));
        CUDA_OK(cudaMemset(m, 0, bytes));
#endif
    } else {
        m = host_alloc(bytes);
        memset(m, 0, bytes); /* first touch outside the timed region */
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 32;
        p->owned = realloc(p->owned, (size_t)p->cap * sizeof *p->owned);
        if (!p->owned) die("realloc", "out of memory");
    }
    p->owned[p->n++] = m;
    return m;
}

/* a private copy of the input (each rotation set has its own) */
static void *pool_place(pool *p, const void *host, size_t bytes) {
    void *m = pool_alloc(p, bytes);
    if (!p->cuda) {
        memcpy(m, host, bytes);
        return m;
    }
#ifdef SEGRL_BENCH_CUDA
    CUDA_OK(cudaMemcpy(m, host, bytes, cudaMemcpyHostToDevice));
#endif
    return m;
}

static void pool_free(pool *p) {
    for (int i = 0; i < p->n; i++) {
        if (p->cuda) {
#ifdef SEGRL_BENCH_CUDA
            CUDA_OK(cudaFree(p->owned[i]));
#endif
        } else {
            free(p->owned[i]);
        }
    }
    free(p->owned);
    memset(p, 0, sizeof *p);
}

static segrl_view vec_f32(pool *p, segrl_device dev, const float *host, int64_t n) {
    void *m = host ? pool_place(p, host, (size_t)n * 4) : pool_alloc(p, (size_t)n * 4);
    return segrl_view_1d(m, SEGRL_DTYPE_F32, dev, n);
}

static segrl_view vec_i32(pool *p, segrl_device dev, const int32_t *host, int64_t n) {
    void *m = host ? pool_place(p, host, (size_t)n * 4) : pool_alloc(p, (size_t)n * 4);
    return segrl_view_1d(m, SEGRL_DTYPE_I32, dev, n);
}

// ----------------------------------------------------------------------------
// advantage buffers on one device (CPU: private copies of the host inputs; CUDA: device copies)

typedef struct dev_bufs {
    int cuda;
    segrl_device dev;
    segrl_view rewards, values, logp, refp, mask, out_a, out_b;
    segrl_view scores, greedy, gidx, seq_out;
    segrl_layout packed;
    segrl_view p_rewards, p_values, p_mask, p_out_a, p_out_b;
    pool mem;
} dev_bufs;

static void dev_bufs_make(dev_bufs *d, int cuda, const host_data *h) {
    memset(d, 0, sizeof *d);
    d->cuda = cuda;
    d->mem.cuda = cuda;
    pool *m = &d->mem;
    d->dev = cuda ? segrl_cuda(0) : segrl_cpu();
    const int64_t B = h->B, T = h->T, Np = h->Np;
    const size_t nf = (size_t)h->N * sizeof(float);
    d->rewards = segrl_view_2d(pool_place(m, h->rewards, nf), SEGRL_DTYPE_F32, d->dev, B, T);
    d->values = segrl_view_2d(pool_place(m, h->values, nf), SEGRL_DTYPE_F32, d->dev, B, T);
    d->logp = segrl_view_2d(pool_place(m, h->logp, nf), SEGRL_DTYPE_F32, d->dev, B, T);
    d->refp = segrl_view_2d(pool_place(m, h->refp, nf), SEGRL_DTYPE_F32, d->dev, B, T);
    d->mask = segrl_view_2d(pool_place(m, h->mask, (size_t)h->N), SEGRL_DTYPE_U8, d->dev, B, T);
    d->out_a = segrl_view_2d(pool_alloc(m, nf), SEGRL_DTYPE_F32, d->dev, B, T);
    d->out_b = segrl_view_2d(pool_alloc(m, nf), SEGRL_DTYPE_F32, d->dev, B, T);
    d->scores = vec_f32(m, d->dev, h->scores, B);
    d->greedy = vec_f32(m, d->dev, h->greedy, B);
    d->gidx = vec_i32(m, d->dev, h->gidx, B);
    d->seq_out = vec_f32(m, d->dev, NULL, B);
    d->packed = segrl_layout_packed(vec_i32(m, d->dev, h->offsets, B + 1));
    d->p_rewards = vec_f32(m, d->dev, h->p_rewards, Np);
    d->p_values = vec_f32(m, d->dev, h->p_values, Np);
    d->p_mask = segrl_view_1d(pool_place(m, h->p_mask, (size_t)Np), SEGRL_DTYPE_U8, d->dev, Np);
    d->p_out_a = vec_f32(m, d->dev, NULL, Np);
    d->p_out_b = vec_f32(m, d->dev, NULL, Np);
}

static void dev_bufs_free(dev_bufs *d) { pool_free(&d->mem); }

// ----------------------------------------------------------------------------
// the benchmarked calls

enum {
    B_GAE,
    B_GAE_CHECKS,
    B_GAE_PACKED,
    B_RETURNS,
    B_RETURNS_K3,
    B_WHITEN,
    B_WHITEN_GROUPED,
    B_GRPO,
    B_GRPO_TOKEN,
    B_RLOO,
    B_RPP,
    B_REMAX,
    B_OPO,
    B_PASSK,
    B_GPG,
    B_COUNT
};

typedef struct op_spec {
    const char *name;
    segrl_op op;      /* for the workspace query */
    int grouped;      /* num_groups = G for the workspace query (else 1 / 0) */
    int packed;       /* packed layout */
    int full_checks;  /* SEGRL_CHECKS_FULL instead of SEGRL_CHECKS_SHAPES */
    double b_tok;     /* bytes per token slot */
    double b_seq;     /* bytes per sequence */
    double b_off;     /* bytes per offsets entry (B + 1 of them) */
} op_spec;

/* Bytes per call: see the table at the top of this file (and docs/performance.md). */
static const op_spec SPECS[B_COUNT] = {
    [B_GAE] = {"gae", SEGRL_OP_GAE, 0, 0, 0, 17, 0, 0},
    [B_GAE_CHECKS] = {"gae+checks", SEGRL_OP_GAE, 0, 0, 1, 17, 0, 0},
    [B_GAE_PACKED] = {"gae", SEGRL_OP_GAE, 0, 1, 0, 17, 0, 4},
    [B_RETURNS] = {"discounted_returns", SEGRL_OP_DISCOUNTED_RETURNS, 0, 0, 0, 9, 0, 0},
    [B_RETURNS_K3] = {"discounted_returns+k3", SEGRL_OP_DISCOUNTED_RETURNS, 0, 0, 0, 17, 0, 0},
    [B_WHITEN] = {"whiten(global)", SEGRL_OP_WHITEN, 0, 0, 0, 14, 0, 0},
    [B_WHITEN_GROUPED] = {"whiten(grouped)", SEGRL_OP_WHITEN, 1, 0, 0, 14, 8, 0},
    [B_GRPO] = {"grpo", SEGRL_OP_GRPO, 1, 0, 0, 5, 12, 0},
    [B_GRPO_TOKEN] = {"grpo(token_rewards)", SEGRL_OP_GRPO, 1, 0, 0, 10, 8, 0},
    [B_RLOO] = {"rloo", SEGRL_OP_RLOO, 1, 0, 0, 5, 12, 0},
    [B_RPP] = {"reinforce_pp_baseline", SEGRL_OP_REINFORCE_PP_BASELINE, 1, 0, 0, 6, 12, 0},
    [B_REMAX] = {"remax", SEGRL_OP_REMAX, 0, 0, 0, 5, 12, 0},
    [B_OPO] = {"opo", SEGRL_OP_OPO, 1, 0, 0, 6, 12, 0},
    [B_PASSK] = {"grpo_passk", SEGRL_OP_GRPO_PASSK, 1, 0, 0, 5, 12, 0},
    [B_GPG] = {"gpg", SEGRL_OP_GPG, 1, 0, 0, 5, 12, 0},
};

static double op_bytes(const op_spec *s, int64_t B, int64_t N) {
    return s->b_tok * (double)N + s->b_seq * (double)B + s->b_off * (double)(B + 1);
}

static segrl_status run_op(int which, const dev_bufs *d, int64_t G, const segrl_exec *ex) {
    segrl_outcome in;
    memset(&in, 0, sizeof in);
    in.scores = d->scores;
    in.token_rewards = segrl_view_none();
    in.mask = d->mask;
    in.group_index = d->gidx;
    in.num_groups = G;
    const segrl_outcome_opts oo = segrl_outcome_opts_default();
    switch (which) {
    case B_GAE:
    case B_GAE_CHECKS:
        return segrl_gae(NULL, d->rewards, d->values, d->mask, 0.99f, 0.95f, ex, d->out_a,
                         d->out_b);
    case B_GAE_PACKED:
        return segrl_gae(&d->packed, d->p_rewards, d->p_values, d->p_mask, 0.99f, 0.95f, ex,
                         d->p_out_a, d->p_out_b);
    case B_RETURNS: {
        segrl_returns_opts o = segrl_returns_opts_default();
        return segrl_discounted_returns(NULL, d->rewards, d->mask, segrl_view_none(),
                                        segrl_view_none(), &o, ex, d->out_a);
    }
    case B_RETURNS_K3: {
        segrl_returns_opts o = segrl_returns_opts_default();
        o.kl_coef = 0.05f;
        o.kl_estimator = SEGRL_KL_K3;
        return segrl_discounted_returns(NULL, d->rewards, d->mask, d->logp, d->refp, &o, ex,
                                        d->out_a);
    }
    case B_WHITEN: {
        segrl_whiten_opts o = segrl_whiten_opts_default();
        return segrl_whiten(NULL, d->rewards, d->mask, segrl_view_none(), 0, &o, ex, d->out_a);
    }
    case B_WHITEN_GROUPED: {
        segrl_whiten_opts o = segrl_whiten_opts_default();
        return segrl_whiten(NULL, d->rewards, d->mask, d->gidx, G, &o, ex, d->out_a);
    }
    case B_GRPO: return segrl_grpo(NULL, &in, &oo, ex, d->out_a, d->seq_out);
    case B_GRPO_TOKEN:
        in.scores = segrl_view_none();
        in.token_rewards = d->rewards;
        return segrl_grpo(NULL, &in, &oo, ex, d->out_a, d->seq_out);
    case B_RLOO: return segrl_rloo(NULL, &in, &oo, ex, d->out_a, d->seq_out);
    case B_RPP: return segrl_reinforce_pp_baseline(NULL, &in, &oo, ex, d->out_a, d->seq_out);
    case B_REMAX:
        in.group_index = segrl_view_none();
        in.num_groups = 0;
        return segrl_remax(NULL, &in, d->greedy, ex, d->out_a, d->seq_out);
    case B_OPO: return segrl_opo(NULL, &in, &oo, ex, d->out_a, d->seq_out);
    case B_PASSK: return segrl_grpo_passk(NULL, &in, &oo, ex, d->out_a, d->seq_out);
    case B_GPG: return segrl_gpg(NULL, &in, &oo, ex, d->out_a, d->seq_out);
    default: return SEGRL_ERR_INVALID;
    }
}

// ----------------------------------------------------------------------------
// result rows

typedef struct row {
    char bench[16], op[48], device[16], device_name[128], shape[48], baseline[48];
    double seconds, items, items_per_s, bytes, gb_per_s, baseline_gb_per_s, ratio;
    double work_bytes;  /* loss rows: working memory of the method (0: not reported) */
    double cpu_seconds; /* loss rows (CPU): median process CPU time per call (0: not reported) */
    int reps;
} row;

static row *rows = NULL;
static int op_width = 22; /* op column: 22 for advantage (as before), wider for segment/tree */
static int n_rows = 0, cap_rows = 0;

/* items: "tokens/s" (advantage, segment) or "nodes/s" (tree) */
static void print_header(const char *items) {
    printf("%-9s  %-*s  %-6s  %-20s  %12s  %12s  %8s  %-20s  %6s\n", "bench", op_width, "op",
           "device", "shape", "seconds", items, "GB/s", "baseline", "ratio");
}

static void add_row(const char *bench, const char *op, const char *device,
                    const char *device_name, const char *shape, double seconds, double items,
                    double bytes, const char *base_name, double base_gbps, int reps) {
    if (n_rows == cap_rows) {
        cap_rows = cap_rows ? 2 * cap_rows : 64;
        rows = realloc(rows, (size_t)cap_rows * sizeof *rows);
        if (!rows) die("realloc", "out of memory");
    }
    row *r = &rows[n_rows++];
    memset(r, 0, sizeof *r);
    snprintf(r->bench, sizeof r->bench, "%s", bench);
    snprintf(r->op, sizeof r->op, "%s", op);
    snprintf(r->device, sizeof r->device, "%s", device);
    snprintf(r->device_name, sizeof r->device_name, "%s", device_name);
    snprintf(r->shape, sizeof r->shape, "%s", shape);
    r->seconds = seconds;
    r->items = items;
    r->bytes = bytes;
    r->items_per_s = seconds > 0 ? items / seconds : 0;
    r->gb_per_s = seconds > 0 ? bytes / seconds * 1e-9 : 0;
    r->baseline_gb_per_s = base_gbps;
    r->ratio = base_gbps > 0 ? r->gb_per_s / base_gbps : 0;
    snprintf(r->baseline, sizeof r->baseline, "%s %.1f GB/s", base_name, base_gbps);
    r->reps = reps;
    printf("%-9s  %-*s  %-6s  %-20s  %12.6f  %12.4g  %8.2f  %-20s  %6.2f\n", r->bench, op_width,
           r->op, r->device, r->shape, r->seconds, r->items_per_s, r->gb_per_s, r->baseline,
           r->ratio);
    fflush(stdout);
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_number(FILE *f, double x) {
    if (isfinite(x)) fprintf(f, "%.9g", x);
    else fputs("null", f);
}

static void write_json(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) die(path, "cannot open for writing");
    fputs("[\n", f);
    for (int i = 0; i < n_rows; i++) {
        const row *r = &rows[i];
        fputs("  {\"bench\": ", f);
        json_string(f, r->bench);
        fputs(", \"op\": ", f);
        json_string(f, r->op);
        fputs(", \"device\": ", f);
        json_string(f, r->device);
        fputs(", \"device_name\": ", f);
        json_string(f, r->device_name);
        fputs(", \"shape\": ", f);
        json_string(f, r->shape);
        fputs(", \"seconds\": ", f);
        json_number(f, r->seconds);
        fputs(", \"items\": ", f);
        json_number(f, r->items);
        fputs(", \"items_per_s\": ", f);
        json_number(f, r->items_per_s);
        fputs(", \"bytes\": ", f);
        json_number(f, r->bytes);
        fputs(", \"gb_per_s\": ", f);
        json_number(f, r->gb_per_s);
        fputs(", \"baseline\": ", f);
        json_string(f, r->baseline);
        fputs(", \"baseline_gb_per_s\": ", f);
        json_number(f, r->baseline_gb_per_s);
        fputs(", \"ratio\": ", f);
        json_number(f, r->ratio);
        if (r->work_bytes > 0) {
            fputs(", \"work_bytes\": ", f);
            json_number(f, r->work_bytes);
        }
        if (r->cpu_seconds > 0) {
            fputs(", \"cpu_seconds\": ", f);
            json_number(f, r->cpu_seconds);
        }
        fprintf(f, ", \"reps\": %d}%s\n", r->reps, i + 1 < n_rows ? "," : "");
    }
    fputs("]\n", f);
    if (ferror(f) | fclose(f)) die(path, "write failed");
}

// ----------------------------------------------------------------------------
// CPU: triad baseline and the timed calls

static void cpu_model(char *out, size_t n) {
    snprintf(out, n, "cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p++;
                while (*p == ' ' || *p == '\t') p++;
                p[strcspn(p, "\n")] = 0;
                snprintf(out, n, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

/* STREAM-style triad over three 64 MiB f32 arrays, single thread: GB/s (12 B per element) */
static double cpu_triad(int reps) {
    const size_t n = (size_t)64 << 20 >> 2;
    float *a = host_alloc(n * 4), *b = host_alloc(n * 4), *c = host_alloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        a[i] = 0.0f;
        b[i] = 1.0f + (float)(i & 7);
        c[i] = 0.5f;
    }
    volatile float sv = 3.0f;
    const float s = sv;
    double *t = malloc((size_t)(reps + WARMUP) * sizeof *t);
    if (!t) die("malloc", "out of memory");
    for (int k = 0; k < reps + WARMUP; k++) {
        double t0 = now_s();
        for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
        t[k] = now_s() - t0;
    }
    volatile float sink = a[n / 3] + a[n - 1];
    (void)sink;
    double sec = median(t + WARMUP, reps);
    free(t);
    free(a);
    free(b);
    free(c);
    return 12.0 * (double)n / sec * 1e-9;
}

static void shape_name(char *buf, size_t n, const host_data *h, int packed) {
    if (packed) snprintf(buf, n, "N=%lld,packed", (long long)h->Np);
    else snprintf(buf, n, "B=%lld,T=%lld", (long long)h->B, (long long)h->T);
}

/* Copies of the inputs and outputs the timed calls rotate over: call k uses set k % nsets, so
 * with the full shapes no call finds its data in a cache (CPU last-level cache, GPU L2) left warm
 * by the call before: together the sets span >= ROTATE_BYTES. --small uses one set (in-cache
 * numbers; it is a smoke test). */
#define ROTATE_BYTES ((double)(512u << 20))
#define MAX_SETS 8

static int rotation_sets(const host_data *h, int small) {
    if (small) return 1;
    const double set = (double)h->N * (4 * 4 + 1 + 2 * 4) + (double)h->Np * (2 * 4 + 1 + 2 * 4) +
                       (double)h->B * 4 * 4 + (double)(h->B + 1) * 4;
    int n = (int)ceil(ROTATE_BYTES / set);
    return n < 1 ? 1 : (n > MAX_SETS ? MAX_SETS : n);
}

// ----------------------------------------------------------------------------
// CUDA: D2D copy baseline and the stream gate

#ifdef SEGRL_BENCH_CUDA
/* The stream gate: a host function that holds the stream until the host has queued
 * "event, call, event" (or 5 ms pass, so a call that synchronizes inside cannot deadlock), so the
 * first event is not timestamped while the host is still launching: the time measured is the
 * GPU's, not the launch latency. */
static atomic_int gate_open;

static void CUDART_CB gate_fn(void *arg) {
    (void)arg;
    const double t0 = now_s();
    while (!atomic_load(&gate_open) && now_s() - t0 < 5e-3) {
    }
}

static void gate_close(cudaStream_t st) {
    atomic_store(&gate_open, 0);
    CUDA_OK(cudaLaunchHostFunc(st, gate_fn, NULL));
}

static void gate_release(void) { atomic_store(&gate_open, 1); }

static double cuda_copy(cudaStream_t st, int reps) {
    const size_t bytes = (size_t)256 << 20;
    void *src, *dst;
    CUDA_OK(cudaMalloc(&src, bytes));
    CUDA_OK(cudaMalloc(&dst, bytes));
    CUDA_OK(cudaMemset(src, 1, bytes));
    CUDA_OK(cudaMemset(dst, 0, bytes));
    cudaEvent_t e0, e1;
    CUDA_OK(cudaEventCreate(&e0));
    CUDA_OK(cudaEventCreate(&e1));
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t) die("malloc", "out of memory");
    for (int k = 0; k < WARMUP; k++)
        CUDA_OK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st));
    CUDA_OK(cudaStreamSynchronize(st));
    for (int k = 0; k < reps; k++) {
        float ms = 0;
        gate_close(st);
        CUDA_OK(cudaEventRecord(e0, st));
        CUDA_OK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st));
        CUDA_OK(cudaEventRecord(e1, st));
        gate_release();
        CUDA_OK(cudaEventSynchronize(e1));
        CUDA_OK(cudaEventElapsedTime(&ms, e0, e1));
        t[k] = 1e-3 * (double)ms;
    }
    double sec = median(t, reps);
    free(t);
    CUDA_OK(cudaEventDestroy(e0));
    CUDA_OK(cudaEventDestroy(e1));
    CUDA_OK(cudaFree(src));
    CUDA_OK(cudaFree(dst));
    return 2.0 * (double)bytes / sec * 1e-9;
}
#endif

// ----------------------------------------------------------------------------
// timing one row on one device (shared by the three benchmarks)

/* The device a benchmark runs on, with its same-run baseline. */
typedef struct bench_dev {
    const char *bench;     /* "advantage", "segment", "tree" */
    int cuda;
    segrl_device dev;
    const char *name;      /* CPU model or GPU name */
    const char *base_name; /* "triad" or "d2d-copy" */
    double base_gbps;
    int reps;
#ifdef SEGRL_BENCH_CUDA
    cudaStream_t stream;
    cudaEvent_t e0, e1;
#endif
} bench_dev;

/* One timed call: rotation set `set` of the data in ctx. */
typedef segrl_status (*call_fn)(const void *ctx, int set, const segrl_exec *ex);

typedef struct row_spec {
    const char *op, *shape;
    call_fn fn;
    const void *ctx;
    int nsets;
    size_t ws_bytes;   /* workspace, allocated on the device outside the timed region */
    int full_checks;   /* SEGRL_CHECKS_FULL instead of SEGRL_CHECKS_SHAPES */
    int ungated;       /* CUDA: the call may synchronize inside (no stream gate) */
    int may_be_unsupported; /* CUDA: SEGRL_ERR_UNSUPPORTED skips the row instead of failing */
    double items, bytes;
} row_spec;

/* Times rs on bd and adds its row: 2 warm-ups then the median of bd->reps calls, rotating over
 * rs->nsets data sets. Returns 0 when the row was skipped (a CUDA call answered
 * SEGRL_ERR_UNSUPPORTED and rs->may_be_unsupported); any other failure ends the run. */
static int bench_row(const bench_dev *bd, const row_spec *rs) {
    void *ws = NULL;
    if (rs->ws_bytes) {
        if (bd->cuda) {
#ifdef SEGRL_BENCH_CUDA
            CUDA_OK(cudaMalloc(&ws, rs->ws_bytes));
#endif
        } else {
            ws = host_alloc(rs->ws_bytes);
        }
    }
    segrl_exec ex;
    memset(&ex, 0, sizeof ex);
    ex.workspace = ws;
    ex.workspace_bytes = rs->ws_bytes;
    ex.checks = rs->full_checks ? SEGRL_CHECKS_FULL : SEGRL_CHECKS_SHAPES;
#ifdef SEGRL_BENCH_CUDA
    if (bd->cuda) ex.stream = (void *)bd->stream;
#endif
    int set = 0, ok = 1;
    for (int k = 0; k < WARMUP; k++, set = (set + 1) % rs->nsets) {
        segrl_status st = rs->fn(rs->ctx, set, &ex);
        if (k == 0 && bd->cuda && rs->may_be_unsupported && st == SEGRL_ERR_UNSUPPORTED) {
            const char *msg = segrl_last_error();
            printf("%-9s  %-*s  %-6s  %-20s  skipped: no CUDA kernel for this op yet (%s)\n",
                   bd->bench, op_width, rs->op, "cuda", rs->shape,
                   msg[0] ? msg : "SEGRL_ERR_UNSUPPORTED");
            fflush(stdout);
            ok = 0;
            break;
        }
        check_segrl(st, rs->op);
    }
    double *t = malloc((size_t)bd->reps * sizeof *t);
    if (!t) die("malloc", "out of memory");
    if (ok && !bd->cuda) {
        for (int k = 0; k < bd->reps; k++, set = (set + 1) % rs->nsets) {
            double t0 = now_s();
            segrl_status st = rs->fn(rs->ctx, set, &ex);
            t[k] = now_s() - t0;
            check_segrl(st, rs->op);
        }
    }
#ifdef SEGRL_BENCH_CUDA
    if (ok && bd->cuda) {
        /* full checks synchronize the stream inside the call: no gate (it would only wait) */
        const int gated = !rs->full_checks && !rs->ungated;
        CUDA_OK(cudaStreamSynchronize(bd->stream));
        for (int k = 0; k < bd->reps; k++, set = (set + 1) % rs->nsets) {
            float ms = 0;
            if (gated) gate_close(bd->stream);
            CUDA_OK(cudaEventRecord(bd->e0, bd->stream));
            segrl_status st = rs->fn(rs->ctx, set, &ex);
            CUDA_OK(cudaEventRecord(bd->e1, bd->stream));
            gate_release();
            check_segrl(st, rs->op);
            CUDA_OK(cudaEventSynchronize(bd->e1));
            CUDA_OK(cudaEventElapsedTime(&ms, bd->e0, bd->e1));
            t[k] = 1e-3 * (double)ms;
        }
        CUDA_OK(cudaGetLastError());
    }
#endif
    if (ok)
        add_row(bd->bench, rs->op, bd->cuda ? "cuda" : "cpu", bd->name, rs->shape,
                median(t, bd->reps), rs->items, rs->bytes, bd->base_name, bd->base_gbps,
                bd->reps);
    free(t);
    if (ws) {
        if (bd->cuda) {
#ifdef SEGRL_BENCH_CUDA
            CUDA_OK(cudaFree(ws));
#endif
        } else {
            free(ws);
        }
    }
    return ok;
}

// ----------------------------------------------------------------------------
// advantage: the estimators of segrl/advantage.h

typedef struct adv_ctx {
    int which;
    const dev_bufs *d; /* nsets of them */
    int64_t G;
} adv_ctx;

static segrl_status adv_call(const void *ctx, int set, const segrl_exec *ex) {
    const adv_ctx *c = ctx;
    return run_op(c->which, &c->d[set], c->G, ex);
}

static void bench_advantage(const bench_dev *bd, const host_data *h, int nsets) {
    dev_bufs d[MAX_SETS];
    for (int i = 0; i < nsets; i++) dev_bufs_make(&d[i], bd->cuda, h);
    for (int which = 0; which < B_COUNT; which++) {
        const op_spec *s = &SPECS[which];
        const int64_t ntok = s->packed ? h->Np : h->N;
        size_t ws_bytes = 0;
        check_segrl(segrl_workspace_size(s->op, bd->dev, h->B, ntok, s->grouped ? h->G : 1,
                                         &ws_bytes),
                    "segrl_workspace_size");
        char shape[48];
        shape_name(shape, sizeof shape, h, s->packed);
        const adv_ctx c = {which, d, h->G};
        row_spec rs;
        memset(&rs, 0, sizeof rs);
        rs.op = s->name;
        rs.shape = shape;
        rs.fn = adv_call;
        rs.ctx = &c;
        rs.nsets = nsets;
        rs.ws_bytes = ws_bytes;
        rs.full_checks = s->full_checks;
        rs.items = (double)ntok;
        rs.bytes = op_bytes(s, h->B, ntok);
        bench_row(bd, &rs);
    }
    for (int i = 0; i < nsets; i++) dev_bufs_free(&d[i]);
}

// ----------------------------------------------------------------------------
// segment: the calls of segrl/segment.h on the advantage benchmark's padded batch

/* Host inputs: the advantage batch (mask with right padding, f32 rewards as the reduced x,
 * logprobs/ref_logprobs, interleaved groups, 0/1 scores) plus sampling probabilities (15 % of
 * tokens below 0.9, so an SPO cutpoint (tau 0.9, k 5) every ~33 valid tokens), token ids with a
 * "newline" delimiter at ~1 in 40 tokens, and the spans both partitioners give on the CPU. */
typedef struct seg_host {
    const host_data *h;
    int64_t Nv;             /* valid tokens */
    float *probs;           /* (B, T) */
    int32_t *ids;           /* (B, T) */
    int32_t delims[2];
    int64_t S, Sd;          /* cutpoint spans, delimiter spans */
    int32_t *off, *start, *end;    /* cutpoint spans: (B + 1), (S), (S) */
    int32_t *doff, *dstart, *dend; /* delimiter spans */
    float *seg_values, *step_rewards; /* (S) */
    float *dscores;                   /* (Sd) */
} seg_host;

static void seg_host_make(seg_host *s, const host_data *h) {
    memset(s, 0, sizeof *s);
    s->h = h;
    const int64_t B = h->B, T = h->T, N = h->N;
    s->probs = host_alloc((size_t)N * 4);
    s->ids = host_alloc((size_t)N * 4);
    s->delims[0] = 13;
    s->delims[1] = 198;
    for (int64_t i = 0; i < N; i++) {
        s->probs[i] = rng_unit() < 0.15f ? 0.9f * rng_unit() : 0.9f + 0.1f * rng_unit();
        s->ids[i] = rng_unit() < 0.025f ? s->delims[rng_next() & 1]
                                        : 1000 + (int32_t)(rng_next() % 31000u);
        s->Nv += h->mask[i];
    }
    /* spans from the CPU partitioners (two-call pattern) */
    const segrl_device cpu = segrl_cpu();
    segrl_view probs = segrl_view_2d(s->probs, SEGRL_DTYPE_F32, cpu, B, T);
    segrl_view ids = segrl_view_2d(s->ids, SEGRL_DTYPE_I32, cpu, B, T);
    segrl_view mask = segrl_view_2d(h->mask, SEGRL_DTYPE_U8, cpu, B, T);
    segrl_view dl = segrl_view_1d(s->delims, SEGRL_DTYPE_I32, cpu, 2);
    s->off = host_alloc((size_t)(B + 1) * 4);
    s->doff = host_alloc((size_t)(B + 1) * 4);
    segrl_segments o = {segrl_view_1d(s->off, SEGRL_DTYPE_I32, cpu, B + 1), segrl_view_none(),
                        segrl_view_none()};
    segrl_segments od = {segrl_view_1d(s->doff, SEGRL_DTYPE_I32, cpu, B + 1), segrl_view_none(),
                         segrl_view_none()};
    check_segrl(segrl_partition_cutpoints(NULL, probs, mask, NULL, NULL, &o),
                "segrl_partition_cutpoints");
    check_segrl(segrl_partition_delimiters(NULL, ids, mask, dl, NULL, &od),
                "segrl_partition_delimiters");
    s->S = s->off[B];
    s->Sd = s->doff[B];
    s->start = host_alloc((size_t)s->S * 4);
    s->end = host_alloc((size_t)s->S * 4);
    s->dstart = host_alloc((size_t)s->Sd * 4);
    s->dend = host_alloc((size_t)s->Sd * 4);
    o.start = segrl_view_1d(s->start, SEGRL_DTYPE_I32, cpu, s->S);
    o.end = segrl_view_1d(s->end, SEGRL_DTYPE_I32, cpu, s->S);
    od.start = segrl_view_1d(s->dstart, SEGRL_DTYPE_I32, cpu, s->Sd);
    od.end = segrl_view_1d(s->dend, SEGRL_DTYPE_I32, cpu, s->Sd);
    check_segrl(segrl_partition_cutpoints(NULL, probs, mask, NULL, NULL, &o),
                "segrl_partition_cutpoints");
    check_segrl(segrl_partition_delimiters(NULL, ids, mask, dl, NULL, &od),
                "segrl_partition_delimiters");
    s->seg_values = host_alloc((size_t)s->S * 4);
    s->step_rewards = host_alloc((size_t)s->S * 4);
    s->dscores = host_alloc((size_t)s->Sd * 4);
    for (int64_t k = 0; k < s->S; k++) {
        s->seg_values[k] = rng_unit();
        s->step_rewards[k] = 2.0f * rng_unit() - 1.0f;
    }
    for (int64_t k = 0; k < s->Sd; k++) s->dscores[k] = 2.0f * rng_unit() - 1.0f;
}

static void seg_host_free(seg_host *s) {
    void *ps[] = {s->probs, s->ids,  s->off,    s->start,      s->end,          s->doff,
                  s->dstart, s->dend, s->seg_values, s->step_rewards, s->dscores};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) free(ps[i]);
    memset(s, 0, sizeof *s);
}

/* One rotation set on one device. */
typedef struct seg_set {
    segrl_view probs, ids, mask, x, logp, refp, delims;
    segrl_segments spans, dspans, part_out; /* part_out: partitioner output, capacity Nv */
    segrl_view seg_values, step_rewards, dscores, rewards, scores, gidx;
    segrl_view out, out_u8, out_seg, out_seg2;
    pool mem;
} seg_set;

static void seg_set_make(seg_set *d, int cuda, const seg_host *s) {
    memset(d, 0, sizeof *d);
    d->mem.cuda = cuda;
    pool *m = &d->mem;
    const segrl_device dev = cuda ? segrl_cuda(0) : segrl_cpu();
    const host_data *h = s->h;
    const int64_t B = h->B, T = h->T;
    const size_t nf = (size_t)h->N * 4;
    d->probs = segrl_view_2d(pool_place(m, s->probs, nf), SEGRL_DTYPE_F32, dev, B, T);
    d->ids = segrl_view_2d(pool_place(m, s->ids, nf), SEGRL_DTYPE_I32, dev, B, T);
    d->mask = segrl_view_2d(pool_place(m, h->mask, (size_t)h->N), SEGRL_DTYPE_U8, dev, B, T);
    d->x = segrl_view_2d(pool_place(m, h->rewards, nf), SEGRL_DTYPE_F32, dev, B, T);
    d->logp = segrl_view_2d(pool_place(m, h->logp, nf), SEGRL_DTYPE_F32, dev, B, T);
    d->refp = segrl_view_2d(pool_place(m, h->refp, nf), SEGRL_DTYPE_F32, dev, B, T);
    d->delims = vec_i32(m, dev, s->delims, 2);
    d->spans.offsets = vec_i32(m, dev, s->off, B + 1);
    d->spans.start = vec_i32(m, dev, s->start, s->S);
    d->spans.end = vec_i32(m, dev, s->end, s->S);
    d->dspans.offsets = vec_i32(m, dev, s->doff, B + 1);
    d->dspans.start = vec_i32(m, dev, s->dstart, s->Sd);
    d->dspans.end = vec_i32(m, dev, s->dend, s->Sd);
    const int64_t cap = s->Nv > 0 ? s->Nv : 1; /* any partitioner: at most one span per token */
    d->part_out.offsets = vec_i32(m, dev, NULL, B + 1);
    d->part_out.start = vec_i32(m, dev, NULL, cap);
    d->part_out.end = vec_i32(m, dev, NULL, cap);
    d->seg_values = vec_f32(m, dev, s->seg_values, s->S);
    d->step_rewards = vec_f32(m, dev, s->step_rewards, s->S);
    d->dscores = vec_f32(m, dev, s->dscores, s->Sd);
    d->rewards = vec_f32(m, dev, h->scores, B);
    d->scores = vec_f32(m, dev, h->scores, B);
    d->gidx = vec_i32(m, dev, h->gidx, B);
    d->out = segrl_view_2d(pool_alloc(m, nf), SEGRL_DTYPE_F32, dev, B, T);
    d->out_u8 = segrl_view_2d(pool_alloc(m, (size_t)h->N), SEGRL_DTYPE_U8, dev, B, T);
    d->out_seg = vec_f32(m, dev, NULL, s->S);
    d->out_seg2 = vec_f32(m, dev, NULL, s->S);
}

enum {
    S_CUTPOINTS,
    S_FIXED,
    S_DELIMITERS,
    S_REDUCE_SUM,
    S_REDUCE_MEAN,
    S_SCATTER_BROADCAST,
    S_SCATTER_LAST,
    S_SPO_CHAIN,
    S_VINEPPO,
    S_PROB_MASK,
    S_PRM,
    S_DENSE,
    S_PRIME_TOKEN,
    S_PRIME_RETURNS,
    S_COUNT
};

#define SEG_FIXED_PARTS 8

/* segment and tree sets can be small (a chain of 10^5 nodes is 3.2 MB): up to this many copies,
 * so that together they still span ROTATE_BYTES */
#define BIG_MAX_SETS 256

static const char *const SEG_NAMES[S_COUNT] = {
    [S_CUTPOINTS] = "partition_cutpoints",
    [S_FIXED] = "partition_fixed(K=8)",
    [S_DELIMITERS] = "partition_delimiters",
    [S_REDUCE_SUM] = "segment_reduce(sum)",
    [S_REDUCE_MEAN] = "segment_reduce(mean)",
    [S_SCATTER_BROADCAST] = "segment_scatter(broadcast)",
    [S_SCATTER_LAST] = "segment_scatter(last)",
    [S_SPO_CHAIN] = "spo_chain",
    [S_VINEPPO] = "vineppo",
    [S_PROB_MASK] = "prob_mask",
    [S_PRM] = "prm_transform(both)",
    [S_DENSE] = "dense_segment_rewards",
    [S_PRIME_TOKEN] = "prime_token_rewards",
    [S_PRIME_RETURNS] = "prime_returns",
};

/* Bytes per call, the minimal traffic of the CPU reference. N = B*T token slots, Nv = valid
 * tokens (the spans cover exactly them), S = cutpoint spans, Sd = delimiter spans; i32 spans
 * (offsets 4 (B+1), start + end 8 per span), u8 mask, f32 values:
 *   partition_cutpoints    N + 4 Nv + 4 (B+1) + 8 S     mask (every slot), probs at valid
 *                                                        tokens; write offsets, start, end
 *   partition_fixed(K)    2 N + 4 (B+1) + 8 S_K         mask twice (count n_b, then place the
 *                                                        boundaries); S_K = sum min(K, n_b)
 *   partition_delimiters   N + 4 Nv + 4 (B+1) + 8 Sd    mask, token ids at valid tokens
 *   segment_reduce        5 Nv + 4 (B+1) + 12 S         x and mask inside spans; spans; out
 *   segment_scatter       4 N + Nv + 4 (B+1) + 12 S     broadcast: write every slot; mask
 *                                                        inside spans; spans; values
 *   segment_scatter       4 N + 4 (B+1) + 13 S          last: write every slot; spans, values;
 *                                                        the mask at each span's last token (1 S)
 *   spo_chain             4 N + Nv + 4 (B+1) + 12 S + 4 B   + values (S), rewards (B)
 *   vineppo               4 N + Nv + 4 (B+1) + 16 S     + values, step rewards (S each)
 *   prob_mask             2 N + 4 Nv                    mask, u8 out (every slot); probs at
 *                                                        valid tokens
 *   prm_transform          4 (B+1) + 8 S                read and write the step rewards
 *   dense_segment_rewards 4 N + sum_j (4 (B+1) + 13 S_j)   write every slot; per source
 *                                                        spans, scores and the mask at each
 *                                                        span's last token (two sources:
 *                                                        cutpoint and delimiter spans)
 *   prime_token_rewards   5 N + 8 Nv                    mask, write every slot; logprobs and
 *                                                        ref_logprobs at valid tokens
 *   prime_returns         6 N + 8 Nv + 12 B             two sources (implicit token rewards,
 *                                                        scores): pass 1 mask + token rewards
 *                                                        (the RLOO means), pass 2 both again +
 *                                                        write the returns; scores, group
 *                                                        index, per-sequence last-token (4 B) */
static double seg_bytes(int which, const seg_host *s, int64_t S_fixed) {
    const double N = (double)s->h->N, Nv = (double)s->Nv, B = (double)s->h->B, S = (double)s->S,
                 Sd = (double)s->Sd, off = 4.0 * (B + 1);
    switch (which) {
    case S_CUTPOINTS: return N + 4 * Nv + off + 8 * S;
    case S_FIXED: return 2 * N + off + 8 * (double)S_fixed;
    case S_DELIMITERS: return N + 4 * Nv + off + 8 * Sd;
    case S_REDUCE_SUM:
    case S_REDUCE_MEAN: return 5 * Nv + off + 12 * S;
    case S_SCATTER_BROADCAST: return 4 * N + Nv + off + 12 * S;
    case S_SCATTER_LAST: return 4 * N + off + 13 * S;
    case S_SPO_CHAIN: return 4 * N + Nv + off + 12 * S + 4 * B;
    case S_VINEPPO: return 4 * N + Nv + off + 16 * S;
    case S_PROB_MASK: return 2 * N + 4 * Nv;
    case S_PRM: return off + 8 * S;
    case S_DENSE: return 4 * N + off + 13 * S + off + 13 * Sd;
    case S_PRIME_TOKEN: return 5 * N + 8 * Nv;
    case S_PRIME_RETURNS: return 6 * N + 8 * Nv + 12 * B;
    default: return 0;
    }
}

typedef struct seg_ctx {
    int which;
    const seg_set *d; /* nsets of them */
    int64_t G;
} seg_ctx;

static segrl_status seg_call(const void *ctx, int set, const segrl_exec *ex) {
    const seg_ctx *c = ctx;
    const seg_set *d = &c->d[set];
    switch (c->which) {
    case S_CUTPOINTS:
        return segrl_partition_cutpoints(NULL, d->probs, d->mask, NULL, ex, &d->part_out);
    case S_FIXED:
        return segrl_partition_fixed(NULL, d->mask, SEG_FIXED_PARTS, 0, ex, &d->part_out);
    case S_DELIMITERS:
        return segrl_partition_delimiters(NULL, d->ids, d->mask, d->delims, ex, &d->part_out);
    case S_REDUCE_SUM:
        return segrl_segment_reduce(NULL, d->x, d->mask, &d->spans, SEGRL_REDUCE_SUM, ex,
                                    d->out_seg);
    case S_REDUCE_MEAN:
        return segrl_segment_reduce(NULL, d->x, d->mask, &d->spans, SEGRL_REDUCE_MEAN, ex,
                                    d->out_seg);
    case S_SCATTER_BROADCAST:
        return segrl_segment_scatter(NULL, d->seg_values, d->mask, &d->spans,
                                     SEGRL_SCATTER_BROADCAST, ex, d->out);
    case S_SCATTER_LAST:
        return segrl_segment_scatter(NULL, d->seg_values, d->mask, &d->spans,
                                     SEGRL_SCATTER_LAST, ex, d->out);
    case S_SPO_CHAIN:
        return segrl_spo_chain(NULL, d->mask, &d->spans, d->seg_values, d->rewards,
                               segrl_view_none(), ex, d->out, segrl_view_none());
    case S_VINEPPO:
        return segrl_vineppo(NULL, d->mask, &d->spans, d->step_rewards, d->seg_values, 1.0f, ex,
                             d->out, segrl_view_none());
    case S_PROB_MASK: return segrl_prob_mask(NULL, d->probs, d->mask, 0.9f, ex, d->out_u8);
    case S_PRM: {
        const segrl_prm_opts o = {SEGRL_PRM_BOTH, 0.0f};
        return segrl_prm_transform(d->spans.offsets, d->step_rewards, &o, ex, d->out_seg);
    }
    case S_DENSE: {
        const segrl_reward_source src[2] = {{d->spans, d->seg_values, 1.0f},
                                            {d->dspans, d->dscores, 0.5f}};
        return segrl_dense_segment_rewards(NULL, d->mask, src, 2, ex, d->out);
    }
    case S_PRIME_TOKEN: {
        const segrl_prime_opts o = segrl_prime_opts_default();
        return segrl_prime_token_rewards(NULL, d->logp, d->refp, d->mask, &o, ex, d->out);
    }
    case S_PRIME_RETURNS: {
        segrl_prime_source src[2];
        memset(src, 0, sizeof src);
        src[0].token_rewards = d->x; /* e.g. the implicit rewards */
        src[0].reward_mask = segrl_view_none();
        src[0].scores = segrl_view_none();
        src[0].weight = 1.0f;
        src[1].token_rewards = segrl_view_none();
        src[1].reward_mask = segrl_view_none();
        src[1].scores = d->scores;
        src[1].weight = 5.0f;
        return segrl_prime_returns(NULL, d->mask, src, 2, d->gidx, c->G, ex, d->out,
                                   segrl_view_none());
    }
    default: return SEGRL_ERR_INVALID;
    }
}

static int64_t seg_fixed_count(const seg_host *s) { /* S_K = sum_b min(K, n_b) */
    const host_data *h = s->h;
    int64_t n = 0;
    for (int64_t b = 0; b < h->B; b++) {
        int64_t nb = 0;
        for (int64_t t = 0; t < h->T; t++) nb += h->mask[b * h->T + t] != 0;
        n += nb < SEG_FIXED_PARTS ? nb : SEG_FIXED_PARTS;
    }
    return n;
}

static int seg_rotation_sets(const seg_host *s, int small) {
    if (small) return 1;
    const double set = (double)s->h->N * (6 * 4 + 2) + (double)s->Nv * 8 +
                       (double)(s->S * 6 + s->Sd * 3) * 4 + (double)s->h->B * 24;
    int n = (int)ceil(ROTATE_BYTES / set);
    return n < 1 ? 1 : (n > BIG_MAX_SETS ? BIG_MAX_SETS : n);
}

static void bench_segment(const bench_dev *bd, const seg_host *s, int nsets) {
    seg_set *d = calloc((size_t)nsets, sizeof *d);
    if (!d) die("calloc", "out of memory");
    for (int i = 0; i < nsets; i++) seg_set_make(&d[i], bd->cuda, s);
    char shape[48];
    shape_name(shape, sizeof shape, s->h, 0);
    const int64_t S_fixed = seg_fixed_count(s);
    for (int which = 0; which < S_COUNT; which++) {
        size_t ws_bytes = 0;
        if (which == S_PRIME_RETURNS)
            check_segrl(segrl_prime_returns_workspace_size(s->h->B, s->h->G, &ws_bytes),
                        "segrl_prime_returns_workspace_size");
        else /* the calls with a CUDA kernel need it on the device (0 on the CPU) */
            check_segrl(segrl_segment_workspace_size(bd->dev, s->h->B, &ws_bytes),
                        "segrl_segment_workspace_size");
        const seg_ctx c = {which, d, s->h->G};
        row_spec rs;
        memset(&rs, 0, sizeof rs);
        rs.op = SEG_NAMES[which];
        rs.shape = shape;
        rs.fn = seg_call;
        rs.ctx = &c;
        rs.nsets = nsets;
        rs.ws_bytes = ws_bytes;
        /* the partitioners may read the span count back to the host */
        rs.ungated = which == S_CUTPOINTS || which == S_FIXED || which == S_DELIMITERS;
        rs.may_be_unsupported = 1;
        rs.items = (double)s->h->N;
        rs.bytes = seg_bytes(which, s, S_fixed);
        bench_row(bd, &rs);
    }
    for (int i = 0; i < nsets; i++) pool_free(&d[i].mem);
    free(d);
}

// ----------------------------------------------------------------------------
// tree: the calls of segrl/tree.h on a batch of rollout trees

/* A forest of `ntrees` trees of up to `per_tree` nodes each, numbered breadth-first (parents
 * before children): a root with a 16-token prompt; each node taken from the queue gets 6 children
 * with probability 0.7 (otherwise it finishes early: a leaf) until the tree's node budget is
 * spent (the last expansion may get fewer children); the rest are leaves. Or (ntrees == 0) one
 * deep chain of `per_tree` nodes: a spine where every spine node has two children, the next spine
 * node and a leaf that finishes early. Non-root spans hold 1..8 tokens, in node order; leaf
 * rewards 0/1. */
typedef struct tree_host {
    int64_t M, ntok, leaves;
    int32_t *parent, *ss, *se;
    float *reward;
    char shape[48];
} tree_host;

static void tree_host_make(tree_host *t, int64_t ntrees, int64_t per_tree) {
    memset(t, 0, sizeof *t);
    rng_state = 0x7ee5u + (uint64_t)ntrees * 1000003u + (uint64_t)per_tree;
    const int64_t cap = ntrees ? ntrees * per_tree : per_tree;
    t->parent = host_alloc((size_t)cap * 4);
    t->ss = host_alloc((size_t)cap * 4);
    t->se = host_alloc((size_t)cap * 4);
    t->reward = host_alloc((size_t)cap * 4);
    int64_t M = 0;
    if (ntrees) {
        for (int64_t r = 0; r < ntrees; r++) {
            const int64_t base = M;
            t->parent[M++] = -1;
            for (int64_t q = base; q < M && M - base < per_tree; q++) {
                if (q != base && rng_unit() >= 0.7f) continue; /* finishes early */
                int64_t kids = per_tree - (M - base);
                if (kids > 6) kids = 6;
                for (int64_t k = 0; k < kids; k++) t->parent[M++] = (int32_t)q;
            }
        }
        snprintf(t->shape, sizeof t->shape, "trees=%lld,M=%lld", (long long)ntrees,
                 (long long)M);
    } else { /* spine 0, 1, 3, 5, ...; leaf 2k hangs off spine 2k - 1 */
        for (M = 0; M < per_tree; M++)
            t->parent[M] = M == 0 ? -1 : (M == 1 ? 0 : (M % 2 ? (int32_t)M - 2 : (int32_t)M - 1));
        snprintf(t->shape, sizeof t->shape, "chain,M=%lld", (long long)M);
    }
    t->M = M;
    uint8_t *has_child = calloc((size_t)M, 1);
    if (!has_child) die("calloc", "out of memory");
    for (int64_t i = 0; i < M; i++)
        if (t->parent[i] >= 0) has_child[t->parent[i]] = 1;
    int64_t tok = 0;
    for (int64_t i = 0; i < M; i++) {
        const int64_t len = t->parent[i] < 0 ? 16 : 1 + (int64_t)(rng_next() % 8u);
        t->ss[i] = (int32_t)tok;
        tok += len;
        t->se[i] = (int32_t)tok;
        t->reward[i] = (float)(rng_next() & 1);
        t->leaves += !has_child[i];
    }
    t->ntok = tok;
    free(has_child);
}

static void tree_host_free(tree_host *t) {
    free(t->parent);
    free(t->ss);
    free(t->se);
    free(t->reward);
    memset(t, 0, sizeof *t);
}

static segrl_tree tree_views(segrl_view parent, segrl_view ss, segrl_view se, segrl_view reward,
                             int64_t ntok) {
    segrl_tree tr;
    memset(&tr, 0, sizeof tr);
    tr.parent = parent;
    tr.span_start = ss;
    tr.span_end = se;
    tr.num_tokens = ntok;
    tr.leaf_reward = reward;
    tr.depth = segrl_view_none();
    return tr;
}

/* One rotation set on one device: the tree, node values and advantages as inputs (computed on the
 * CPU), node outputs. */
typedef struct tree_set {
    segrl_tree tree;
    segrl_view values, node_adv, out_values, out_adv;
    pool mem;
} tree_set;

static void tree_set_make(tree_set *d, int cuda, const tree_host *t, const float *values,
                          const float *node_adv) {
    memset(d, 0, sizeof *d);
    d->mem.cuda = cuda;
    pool *m = &d->mem;
    const segrl_device dev = cuda ? segrl_cuda(0) : segrl_cpu();
    d->tree = tree_views(vec_i32(m, dev, t->parent, t->M), vec_i32(m, dev, t->ss, t->M),
                         vec_i32(m, dev, t->se, t->M), vec_f32(m, dev, t->reward, t->M), t->ntok);
    d->values = vec_f32(m, dev, values, t->M);
    d->node_adv = vec_f32(m, dev, node_adv, t->M);
    d->out_values = vec_f32(m, dev, NULL, t->M);
    d->out_adv = vec_f32(m, dev, NULL, t->M);
}

/* Episode outputs (one copy, shared by the sets: they are larger than any cache). */
typedef struct episode_out {
    int64_t E, N;
    segrl_view offsets, token_index, adv, mask;
} episode_out;

enum {
    T_VALUES_LEAF_MEAN,
    T_VALUES_CHILD_MEAN,
    T_VALUES_MAX,
    T_ADV_PARENT,
    T_ADV_PARENT_STD,
    T_ADV_SIBLINGS,
    T_REST_VALUES,
    T_EPISODES_EDGE,
    T_EPISODES_PATH,
    T_COUNT
};

static const char *const TREE_NAMES[T_COUNT] = {
    [T_VALUES_LEAF_MEAN] = "tree_values(leaf_mean)",
    [T_VALUES_CHILD_MEAN] = "tree_values(child_mean)",
    [T_VALUES_MAX] = "tree_values(max)",
    [T_ADV_PARENT] = "tree_advantages(parent)",
    [T_ADV_PARENT_STD] = "tree_advantages(parent_std)",
    [T_ADV_SIBLINGS] = "tree_advantages(siblings)",
    [T_REST_VALUES] = "tree_rest_values",
    [T_EPISODES_EDGE] = "tree_episodes(edge)",
    [T_EPISODES_PATH] = "tree_episodes(path)",
};

typedef struct tree_ctx {
    int which;
    int include_prefix; /* EDGE */
    const tree_set *d;  /* nsets of them */
    const episode_out *eo;
} tree_ctx;

static segrl_tree_episode_opts tree_episode_opts(int which, int include_prefix) {
    segrl_tree_episode_opts o = segrl_tree_episode_opts_default();
    o.kind = which == T_EPISODES_PATH ? SEGRL_TREE_EPISODE_PATH : SEGRL_TREE_EPISODE_EDGE;
    o.include_prefix = include_prefix;
    return o;
}

static segrl_status tree_call(const void *ctx, int set, const segrl_exec *ex) {
    const tree_ctx *c = ctx;
    const tree_set *d = &c->d[set];
    const segrl_view none = segrl_view_none();
    segrl_tree_adv_opts ao = segrl_tree_adv_opts_default();
    switch (c->which) {
    case T_VALUES_LEAF_MEAN:
        return segrl_tree_values(&d->tree, SEGRL_TREE_VALUE_LEAF_MEAN, ex, d->out_values, none);
    case T_VALUES_CHILD_MEAN:
        return segrl_tree_values(&d->tree, SEGRL_TREE_VALUE_CHILD_MEAN, ex, d->out_values, none);
    case T_VALUES_MAX:
        return segrl_tree_values(&d->tree, SEGRL_TREE_VALUE_MAX, ex, d->out_values, none);
    case T_ADV_PARENT:
    case T_ADV_PARENT_STD:
    case T_ADV_SIBLINGS:
        ao.kind = c->which == T_ADV_PARENT       ? SEGRL_TREE_ADV_PARENT
                  : c->which == T_ADV_PARENT_STD ? SEGRL_TREE_ADV_PARENT_STD
                                                 : SEGRL_TREE_ADV_SIBLINGS;
        return segrl_tree_advantages(&d->tree, d->values, &ao, ex, d->out_adv, none, none);
    case T_REST_VALUES: return segrl_tree_rest_values(&d->tree, 1.0f, 0.0f, ex, d->out_values);
    case T_EPISODES_EDGE:
    case T_EPISODES_PATH: {
        const segrl_tree_episode_opts o = tree_episode_opts(c->which, c->include_prefix);
        return segrl_tree_episodes(&d->tree, d->node_adv, none, none, &o, ex, c->eo->offsets,
                                   c->eo->token_index, c->eo->adv, c->eo->mask, none);
    }
    default: return SEGRL_ERR_INVALID;
    }
}

/* Bytes per call, the minimal traffic of the CPU reference (M nodes, i32 indices, f32 values;
 * the f64 scratch in the workspace is not counted):
 *   tree_values (each kind), tree_rest_values   12 M     read parent, leaf_reward; write values
 *   tree_advantages (each kind)                  12 M     read parent, values; write advantages
 *   tree_episodes (edge, path)    16 M + 4 (E+1) + 9 Ntok  read parent, span start/end, node
 *                                 advantages; write offsets (E+1), and per output token its index
 *                                 (4), advantage (4), u8 mask (1) */
static double tree_bytes(int which, const tree_host *t, const episode_out *eo) {
    const double M = (double)t->M;
    if (which == T_EPISODES_EDGE || which == T_EPISODES_PATH)
        return 16 * M + 4 * (double)(eo->E + 1) + 9 * (double)eo->N;
    return 12 * M;
}

static int tree_rotation_sets(const tree_host *t, int small) {
    if (small) return 1;
    const double set = (double)t->M * 8 * 4;
    int n = (int)ceil(ROTATE_BYTES / set);
    return n < 1 ? 1 : (n > BIG_MAX_SETS ? BIG_MAX_SETS : n);
}

/* chain: the quadratic outputs are left out (path episodes; edge without the prefix) */
static void bench_tree(const bench_dev *bd, const tree_host *t, int chain, int nsets,
                       const float *values, const float *node_adv) {
    tree_set *d = calloc((size_t)nsets, sizeof *d);
    if (!d) die("calloc", "out of memory");
    for (int i = 0; i < nsets; i++) tree_set_make(&d[i], bd->cuda, t, values, node_adv);
    size_t ws_bytes = 0;
    segrl_status st = segrl_tree_workspace_size(bd->dev, t->M, &ws_bytes);
    check_segrl(st, "segrl_tree_workspace_size");
    for (int which = 0; which < T_COUNT; which++) {
        if (chain && which == T_EPISODES_PATH) continue;
        const int episodes = which == T_EPISODES_EDGE || which == T_EPISODES_PATH;
        const int include_prefix = !chain;
        episode_out eo;
        memset(&eo, 0, sizeof eo);
        pool epool;
        memset(&epool, 0, sizeof epool);
        epool.cuda = bd->cuda;
        char op[48];
        snprintf(op, sizeof op, "%s", TREE_NAMES[which]);
        if (episodes) { /* sizes from the CPU copy (same for any device) */
            if (!include_prefix) snprintf(op, sizeof op, "tree_episodes(edge,own)");
            const segrl_tree tr =
                tree_views(segrl_view_1d(t->parent, SEGRL_DTYPE_I32, segrl_cpu(), t->M),
                           segrl_view_1d(t->ss, SEGRL_DTYPE_I32, segrl_cpu(), t->M),
                           segrl_view_1d(t->se, SEGRL_DTYPE_I32, segrl_cpu(), t->M),
                           segrl_view_1d(t->reward, SEGRL_DTYPE_F32, segrl_cpu(), t->M),
                           t->ntok);
            const segrl_tree_episode_opts o = tree_episode_opts(which, include_prefix);
            size_t cpu_ws = 0;
            check_segrl(segrl_tree_workspace_size(segrl_cpu(), t->M, &cpu_ws),
                        "segrl_tree_workspace_size");
            void *w = cpu_ws ? host_alloc(cpu_ws) : NULL;
            segrl_exec ex;
            memset(&ex, 0, sizeof ex);
            ex.workspace = w;
            ex.workspace_bytes = cpu_ws;
            ex.checks = SEGRL_CHECKS_SHAPES;
            check_segrl(segrl_tree_episodes_size(&tr, segrl_view_none(), &o, &ex, &eo.E, &eo.N),
                        "segrl_tree_episodes_size");
            free(w);
            const segrl_device dev = bd->cuda ? segrl_cuda(0) : segrl_cpu();
            eo.offsets = vec_i32(&epool, dev, NULL, eo.E + 1);
            eo.token_index = vec_i32(&epool, dev, NULL, eo.N > 0 ? eo.N : 1);
            eo.adv = vec_f32(&epool, dev, NULL, eo.N > 0 ? eo.N : 1);
            eo.mask = segrl_view_1d(pool_alloc(&epool, (size_t)(eo.N > 0 ? eo.N : 1)),
                                    SEGRL_DTYPE_U8, dev, eo.N > 0 ? eo.N : 1);
        }
        const tree_ctx c = {which, include_prefix, d, &eo};
        row_spec rs;
        memset(&rs, 0, sizeof rs);
        rs.op = op;
        rs.shape = t->shape;
        rs.fn = tree_call;
        rs.ctx = &c;
        rs.nsets = nsets;
        rs.ws_bytes = ws_bytes;
        rs.ungated = episodes; /* the expansion may read sizes back to the host */
        rs.may_be_unsupported = 1;
        rs.items = (double)t->M;
        rs.bytes = tree_bytes(which, t, &eo);
        bench_row(bd, &rs);
        pool_free(&epool);
    }
    for (int i = 0; i < nsets; i++) pool_free(&d[i].mem);
    free(d);
}

/* Node values (leaf mean) and PARENT advantages on the CPU: the inputs of the advantage and
 * episode rows. */
static void tree_inputs(const tree_host *t, float *values, float *node_adv) {
    const segrl_device cpu = segrl_cpu();
    const segrl_tree tr = tree_views(segrl_view_1d(t->parent, SEGRL_DTYPE_I32, cpu, t->M),
                                     segrl_view_1d(t->ss, SEGRL_DTYPE_I32, cpu, t->M),
                                     segrl_view_1d(t->se, SEGRL_DTYPE_I32, cpu, t->M),
                                     segrl_view_1d(t->reward, SEGRL_DTYPE_F32, cpu, t->M),
                                     t->ntok);
    size_t ws_bytes = 0;
    check_segrl(segrl_tree_workspace_size(cpu, t->M, &ws_bytes), "segrl_tree_workspace_size");
    void *ws = ws_bytes ? host_alloc(ws_bytes) : NULL;
    segrl_exec ex;
    memset(&ex, 0, sizeof ex);
    ex.workspace = ws;
    ex.workspace_bytes = ws_bytes;
    ex.checks = SEGRL_CHECKS_FULL; /* the generated trees are valid: checked once here */
    const segrl_view v = segrl_view_1d(values, SEGRL_DTYPE_F32, cpu, t->M);
    check_segrl(segrl_tree_values(&tr, SEGRL_TREE_VALUE_LEAF_MEAN, &ex, v, segrl_view_none()),
                "segrl_tree_values");
    check_segrl(segrl_tree_advantages(&tr, v, NULL, &ex,
                                      segrl_view_1d(node_adv, SEGRL_DTYPE_F32, cpu, t->M),
                                      segrl_view_none(), segrl_view_none()),
                "segrl_tree_advantages");
    free(ws);
}

// ----------------------------------------------------------------------------
// loss: fused log-probabilities and the fused linear path of segrl/loss.h
//
// Rows (CPU; tokens/s = rows N per second). Bytes are the minimal traffic of each row's own method,
// so GB/s against the triad says how close a memory-bound pass gets to the bandwidth:
//   logprobs fused              4 N V + 20 N  one read of the f32 logits; logp, entropy, lse out
//   logprobs unfused(libm)     20 N V         the straightforward version, separate passes: row
//   logprobs unfused(vec-exp)  20 N V         max (4), sum of exp (4), log-softmax written (4 + 4),
//                                             gather (N), entropy -sum p log p over the stored
//                                             log-softmax (4). "libm": scalar expf; "vec-exp": the
//                                             same 8-lane exponential as the library, so the
//                                             fused/unfused ratio isolates fusion from vectorization
//   logprobs_backward fused     8 N V + 16 N  read logits, write dlogits
//   linear fwd fused /         4 (N + V) D    read hidden and weight once: compute bound (2 N D V
//   materialized                              flops per GEMM), so seconds are the figure of merit
//   linear fwd+bwd ...         same           fused: 4 GEMMs (Z, Z again, dH, dW); materialized:
//                                             3 GEMMs (Z, dH, dW) on the stored N x V logits
// After each group a line gives the working memory (also "work_bytes" in the JSON): the fused
// call's workspace, or the stored N x V buffer plus workspace of the straightforward one.

#include <cblas.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
/* compiled for the baseline and for AVX2 + FMA, the latter used when the CPU has both (as the
 * library does) */
#if defined(__x86_64__) && defined(__GNUC__)
#define BL_X86 1
#endif

typedef float bl_v8 __attribute__((vector_size(32)));
typedef int32_t bl_v8i __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) bl_v8 bl_splat(float c) {
    return (bl_v8){c, c, c, c, c, c, c, c};
}
static inline __attribute__((always_inline)) bl_v8 bl_sel(bl_v8i m, bl_v8 a, bl_v8 b) {
    return (bl_v8)((m & (bl_v8i)a) | (~m & (bl_v8i)b));
}
/* the library's exponential (src/loss/softmax_row.c), repeated here for the baseline */
static inline __attribute__((always_inline)) bl_v8 bl_exp(bl_v8 x) {
    const bl_v8 magic = bl_splat(12582912.0f);
    const bl_v8i under = x < bl_splat(-87.33f);
    x = bl_sel(x > bl_splat(88.0f), bl_splat(88.0f), x);
    x = bl_sel(under, bl_splat(-87.33f), x);
    const bl_v8 f = x * 1.44269504088896341f + magic;
    const bl_v8i n = (bl_v8i)f - (bl_v8i)magic;
    const bl_v8 nf = f - magic;
    const bl_v8 r = x - nf * 0.693145751953125f - nf * 1.428606765330187e-06f;
    bl_v8 p = bl_splat(1.0f / 720.0f);
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return bl_sel(under, bl_splat(0.0f), p * (bl_v8)((n + 127) << 23));
}
static inline __attribute__((always_inline)) bl_v8 bl_load(const float *p) {
    bl_v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The straightforward log-probs + entropy, one pass per step, the log-softmax stored (N x V).
 * vec: 8-lane exponential (V a multiple of 8 is not assumed: scalar tails). */
static inline __attribute__((always_inline)) void bl_unfused_body(const float *x, int64_t N,
                                                                   int64_t V, const int64_t *y,
                                                                   float *logsm, float *lp,
                                                                   float *H, int vec) {
    const int64_t Vv = vec ? V / 8 * 8 : 0;
    for (int64_t i = 0; i < N; i++) { /* log_softmax: max, sum of exp, write */
        const float *r = x + (size_t)i * V;
        float *o = logsm + (size_t)i * V;
        float m = -INFINITY;
        for (int64_t j = 0; j < V; j++) m = r[j] > m ? r[j] : m;
        double s = 0;
        if (vec) {
            bl_v8 acc = bl_splat(0.0f);
            for (int64_t j = 0; j < Vv; j += 8) acc += bl_exp(bl_load(r + j) - m);
            for (int k = 0; k < 8; k++) s += acc[k];
        }
        for (int64_t j = Vv; j < V; j++) s += expf(r[j] - m);
        const float lse = m + (float)log(s);
        for (int64_t j = 0; j < V; j++) o[j] = r[j] - lse;
    }
    for (int64_t i = 0; i < N; i++) lp[i] = logsm[(size_t)i * V + y[i]]; /* gather */
    for (int64_t i = 0; i < N; i++) { /* entropy over the stored log-softmax */
        const float *l = logsm + (size_t)i * V;
        double h = 0;
        if (vec) {
            bl_v8 acc = bl_splat(0.0f);
            for (int64_t j = 0; j < Vv; j += 8) {
                const bl_v8 v = bl_load(l + j);
                acc += bl_exp(v) * v;
            }
            for (int k = 0; k < 8; k++) h -= acc[k];
        }
        for (int64_t j = Vv; j < V; j++) h -= expf(l[j]) * l[j];
        H[i] = (float)h;
    }
}

static void bl_unfused_base(const float *x, int64_t N, int64_t V, const int64_t *y, float *logsm,
                            float *lp, float *H, int vec) {
    bl_unfused_body(x, N, V, y, logsm, lp, H, vec);
}
#ifdef BL_X86
__attribute__((target("avx2,fma"))) static void bl_unfused_avx2(const float *x, int64_t N,
                                                                int64_t V, const int64_t *y,
                                                                float *logsm, float *lp, float *H,
                                                                int vec) {
    bl_unfused_body(x, N, V, y, logsm, lp, H, vec);
}
#endif
static void bl_unfused(const float *x, int64_t N, int64_t V, const int64_t *y, float *logsm,
                       float *lp, float *H, int vec) {
#ifdef BL_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        bl_unfused_avx2(x, N, V, y, logsm, lp, H, vec);
        return;
    }
#endif
    bl_unfused_base(x, N, V, y, logsm, lp, H, vec);
}

enum { LP_FUSED, LP_UNFUSED_LIBM, LP_UNFUSED_VEC, LP_BACKWARD, LIN_FUSED, LIN_MAT,
       LIN_FUSED_FB, LIN_MAT_FB };

typedef struct loss_ctx {
    int kind;
    int64_t N, V, D;
    const float *x, *Hm, *W; /* logits (N, V); hidden (N, D), weight (V, D) */
    const int64_t *y;
    float *lp, *ent, *lse, *g, *h;
    float *big;              /* unfused: the log-softmax; materialized: the logits; backward: dx */
    float *dH, *dW;
    void *lin_ws;            /* fused linear forward / backward workspace */
    size_t lin_ws_bytes;
} loss_ctx;

static segrl_logprob_out loss_outs(const loss_ctx *c) {
    const segrl_device cpu = segrl_cpu();
    segrl_logprob_out o = {segrl_view_1d(c->lp, SEGRL_DTYPE_F32, cpu, c->N),
                           segrl_view_1d(c->ent, SEGRL_DTYPE_F32, cpu, c->N),
                           segrl_view_1d(c->lse, SEGRL_DTYPE_F32, cpu, c->N), segrl_view_none(),
                           segrl_view_none()};
    return o;
}

/* Process CPU time of each CPU loss call, so a row can also report it: on a shared machine the
 * wall time of a compute-bound call grows with the other processes' load, its CPU time much
 * less (with OpenBLAS on one thread the two agree on an idle machine). */
#define LOSS_MAX_CALLS 4096
static double loss_cpu_times[LOSS_MAX_CALLS];
static int loss_ncalls;

static double process_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static segrl_status loss_call_timed(const void *ctx, int set, const segrl_exec *ex);

static segrl_status loss_call(const void *ctx, int set, const segrl_exec *ex) {
    const double t0 = process_cpu_s();
    segrl_status st = loss_call_timed(ctx, set, ex);
    if (loss_ncalls < LOSS_MAX_CALLS) loss_cpu_times[loss_ncalls++] = process_cpu_s() - t0;
    return st;
}

static segrl_status loss_call_timed(const void *ctx, int set, const segrl_exec *ex) {
    const loss_ctx *c = ctx;
    (void)set;
    const segrl_device cpu = segrl_cpu();
    const segrl_view Y = segrl_view_1d((void *)c->y, SEGRL_DTYPE_I64, cpu, c->N);
    const segrl_view vN_lse = segrl_view_1d(c->lse, SEGRL_DTYPE_F32, cpu, c->N);
    const segrl_view vN_ent = segrl_view_1d(c->ent, SEGRL_DTYPE_F32, cpu, c->N);
    const segrl_view vN_g = segrl_view_1d(c->g, SEGRL_DTYPE_F32, cpu, c->N);
    const segrl_view vN_h = segrl_view_1d(c->h, SEGRL_DTYPE_F32, cpu, c->N);
    segrl_logprob_out out = loss_outs(c);
    segrl_exec lex = *ex;
    lex.workspace = c->lin_ws;
    lex.workspace_bytes = c->lin_ws_bytes;
    switch (c->kind) {
    case LP_FUSED:
        return segrl_logprobs_forward(segrl_view_2d((void *)c->x, SEGRL_DTYPE_F32, cpu, c->N, c->V),
                                      Y, NULL, ex, &out);
    case LP_UNFUSED_LIBM:
    case LP_UNFUSED_VEC:
        bl_unfused(c->x, c->N, c->V, c->y, c->big, c->lp, c->ent, c->kind == LP_UNFUSED_VEC);
        return SEGRL_OK;
    case LP_BACKWARD:
        return segrl_logprobs_backward(
            segrl_view_2d((void *)c->x, SEGRL_DTYPE_F32, cpu, c->N, c->V), Y, vN_lse, vN_ent, vN_g,
            vN_h, NULL, ex, segrl_view_2d(c->big, SEGRL_DTYPE_F32, cpu, c->N, c->V));
    default: break;
    }
    const segrl_view HV = segrl_view_2d((void *)c->Hm, SEGRL_DTYPE_F32, cpu, c->N, c->D);
    const segrl_view WV = segrl_view_2d((void *)c->W, SEGRL_DTYPE_F32, cpu, c->V, c->D);
    const segrl_view ZV = segrl_view_2d(c->big, SEGRL_DTYPE_F32, cpu, c->N, c->V);
    const segrl_view dHV = segrl_view_2d(c->dH, SEGRL_DTYPE_F32, cpu, c->N, c->D);
    const segrl_view dWV = segrl_view_2d(c->dW, SEGRL_DTYPE_F32, cpu, c->V, c->D);
    segrl_status st;
    if (c->kind == LIN_FUSED || c->kind == LIN_FUSED_FB) {
        st = segrl_linear_logprobs_forward(HV, WV, Y, NULL, &lex, &out);
        if (st || c->kind == LIN_FUSED) return st;
        return segrl_linear_logprobs_backward(HV, WV, Y, vN_lse, vN_ent, vN_g, vN_h, NULL, &lex,
                                              dHV, dWV);
    }
    /* materialized: Z = H W^T stored, then the fused log-probs on it; backward in place on Z and
     * two GEMMs */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->N, (int)c->V, (int)c->D, 1.0f,
                c->Hm, (int)c->D, c->W, (int)c->D, 0.0f, c->big, (int)c->V);
    st = segrl_logprobs_forward(ZV, Y, NULL, ex, &out);
    if (st || c->kind == LIN_MAT) return st;
    st = segrl_logprobs_backward(ZV, Y, vN_lse, vN_ent, vN_g, vN_h, NULL, ex, ZV);
    if (st) return st;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c->N, (int)c->D, (int)c->V, 1.0f,
                c->big, (int)c->V, c->W, (int)c->D, 0.0f, c->dH, (int)c->D);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)c->V, (int)c->D, (int)c->N, 1.0f,
                c->big, (int)c->V, c->Hm, (int)c->D, 0.0f, c->dW, (int)c->D);
    return SEGRL_OK;
}

static void loss_row(const bench_dev *bd, loss_ctx *c, const char *op, const char *shape,
                     size_t ws_bytes, double bytes, double work_bytes) {
    row_spec rs;
    memset(&rs, 0, sizeof rs);
    rs.op = op;
    rs.shape = shape;
    rs.fn = loss_call;
    rs.ctx = c;
    rs.nsets = 1;
    rs.ws_bytes = ws_bytes;
    rs.items = (double)c->N;
    rs.bytes = bytes;
    loss_ncalls = 0;
    if (bench_row(bd, &rs)) {
        row *r = &rows[n_rows - 1];
        r->work_bytes = work_bytes;
        const int k = loss_ncalls < bd->reps ? loss_ncalls : bd->reps; /* the timed calls */
        if (k > 0) r->cpu_seconds = median(loss_cpu_times + loss_ncalls - k, k);
        printf("    process CPU time per call: median %.6f s\n", r->cpu_seconds);
    }
}

static void loss_fill(float *p, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) p[i] = scale * (2.0f * rng_unit() - 1.0f);
}

#ifdef SEGRL_BENCH_CUDA
static segrl_status loss_cuda_call(const void *ctx, int set, const segrl_exec *ex);
/* one CUDA row; the fused linear row may be skipped when libsegrl cannot load cuBLAS */
static int loss_row_cuda(const bench_dev *bd, void *c, const char *op, const char *shape,
                         size_t ws_bytes, int64_t items, double bytes, double work_bytes) {
    row_spec rs;
    memset(&rs, 0, sizeof rs);
    rs.op = op;
    rs.shape = shape;
    rs.fn = loss_cuda_call;
    rs.ctx = c;
    rs.nsets = 1;
    rs.ws_bytes = ws_bytes;
    rs.ungated = 1; /* cuBLAS calls and the fused linear loop enqueue many launches */
    rs.may_be_unsupported = 1;
    rs.items = (double)items;
    rs.bytes = bytes;
    const int ok = bench_row(bd, &rs);
    if (ok) rows[n_rows - 1].work_bytes = work_bytes;
    return ok;
}
#endif

#ifdef SEGRL_BENCH_CUDA
// CUDA rows of `loss` (device buffers; cuBLAS linked into the benchmark itself for the
// materialized baseline, libsegrl opens its own with dlopen):
//   logprobs+entropy fused     4 N V e + 20 N   (e = 4 f32, 2 bf16) one read of the logits
//   logprobs backward fused    N V (e + 4)      read logits, write f32 dlogits
//   linear fwd+bwd fused       bf16 hidden and weight; forward, then backward (dH, dW)
//   linear fwd+bwd materialized
//                              cublasGemmEx logits (f32, N x V stored), segrl_logprobs_forward
//                              on them, segrl_logprobs_backward writing bf16 dlogits (N x V),
//                              two cublasGemmEx for dH and dW: "cuBLAS + the softmax on stored
//                              logits", the way an autograd graph without a fused head runs
// Items: tokens; the linear rows count 2 (N + V) D bf16 bytes read (GB/s is not their figure of
// merit: seconds and working memory are).
#include <cublas_v2.h>

enum { LC_LP_FWD, LC_LP_BWD, LC_LIN_FUSED, LC_LIN_MAT };

typedef struct loss_cuda_ctx {
    int kind;
    int64_t N, V, D;
    segrl_dtype dt;
    void *x;          /* logits (N, V) dt */
    int64_t *y;
    float *outs;      /* 5 N: logp, entropy, lse, p_target, sum_p2 */
    float *g, *h;
    float *dx;        /* (N, V) f32 */
    void *H, *W;      /* bf16 */
    float *Z;         /* materialized logits (N, V) f32 */
    uint16_t *Zb;     /* materialized bf16 dlogits (N, V) */
    float *dH, *dW;
    void *lin_ws;
    size_t lin_ws_bytes;
    cublasHandle_t blas;
} loss_cuda_ctx;

static void lc_gemm(const loss_cuda_ctx *c, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
                    int64_t n, int64_t k, const void *A, int64_t lda, const void *B, int64_t ldb,
                    float *C, int64_t ldc) {
    const float one = 1.0f, zero = 0.0f;
    if (cublasGemmEx(c->blas, ta, tb, (int)m, (int)n, (int)k, &one, A, CUDA_R_16BF, (int)lda, B,
                     CUDA_R_16BF, (int)ldb, &zero, C, CUDA_R_32F, (int)ldc, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
        die("cublasGemmEx", "failed");
}

static segrl_status loss_cuda_call(const void *ctx, int set, const segrl_exec *ex) {
    const loss_cuda_ctx *c = ctx;
    (void)set;
    const segrl_device gpu = segrl_cuda(0);
    const int64_t N = c->N, V = c->V, D = c->D;
    const segrl_view Y = segrl_view_1d(c->y, SEGRL_DTYPE_I64, gpu, N);
    segrl_logprob_out out = {segrl_view_1d(c->outs, SEGRL_DTYPE_F32, gpu, N),
                             segrl_view_1d(c->outs + N, SEGRL_DTYPE_F32, gpu, N),
                             segrl_view_1d(c->outs + 2 * N, SEGRL_DTYPE_F32, gpu, N),
                             segrl_view_none(), segrl_view_none()};
    const segrl_view G = segrl_view_1d(c->g, SEGRL_DTYPE_F32, gpu, N);
    const segrl_view Hh = segrl_view_1d(c->h, SEGRL_DTYPE_F32, gpu, N);
    segrl_status st;
    switch (c->kind) {
    case LC_LP_FWD:
        return segrl_logprobs_forward(segrl_view_2d(c->x, c->dt, gpu, N, V), Y, NULL, ex, &out);
    case LC_LP_BWD:
        return segrl_logprobs_backward(segrl_view_2d(c->x, c->dt, gpu, N, V), Y, out.lse,
                                       out.entropy, G, Hh, NULL, ex,
                                       segrl_view_2d(c->dx, SEGRL_DTYPE_F32, gpu, N, V));
    case LC_LIN_FUSED: {
        segrl_exec lex = *ex;
        lex.workspace = c->lin_ws;
        lex.workspace_bytes = c->lin_ws_bytes;
        const segrl_view HV = segrl_view_2d(c->H, SEGRL_DTYPE_BF16, gpu, N, D);
        const segrl_view WV = segrl_view_2d(c->W, SEGRL_DTYPE_BF16, gpu, V, D);
        st = segrl_linear_logprobs_forward(HV, WV, Y, NULL, &lex, &out);
        if (st) return st;
        return segrl_linear_logprobs_backward(HV, WV, Y, out.lse, out.entropy, G, Hh, NULL, &lex,
                                              segrl_view_2d(c->dH, SEGRL_DTYPE_F32, gpu, N, D),
                                              segrl_view_2d(c->dW, SEGRL_DTYPE_F32, gpu, V, D));
    }
    default: break;
    }
    /* materialized: Z (row-major N x V) = H W^T, i.e. column-major Z^T = W H^T */
    if (cublasSetStream(c->blas, (cudaStream_t)ex->stream) != CUBLAS_STATUS_SUCCESS)
        die("cublasSetStream", "failed");
    lc_gemm(c, CUBLAS_OP_T, CUBLAS_OP_N, V, N, D, c->W, D, c->H, D, c->Z, V);
    const segrl_view ZV = segrl_view_2d(c->Z, SEGRL_DTYPE_F32, gpu, N, V);
    st = segrl_logprobs_forward(ZV, Y, NULL, ex, &out);
    if (st) return st;
    st = segrl_logprobs_backward(ZV, Y, out.lse, out.entropy, G, Hh, NULL, ex,
                                 segrl_view_2d(c->Zb, SEGRL_DTYPE_BF16, gpu, N, V));
    if (st) return st;
    lc_gemm(c, CUBLAS_OP_N, CUBLAS_OP_N, D, N, V, c->W, D, c->Zb, V, c->dH, D);  /* dH = dZ W */
    lc_gemm(c, CUBLAS_OP_N, CUBLAS_OP_T, D, V, N, c->H, D, c->Zb, V, c->dW, D);  /* dW = dZ^T H */
    return SEGRL_OK;
}

static void *lc_fill(size_t n, segrl_dtype dt, float scale) {
    const size_t es = dt == SEGRL_DTYPE_F32 ? 4 : 2;
    const size_t chunk = (size_t)1 << 24;
    void *hbuf = host_alloc(chunk * es), *d = NULL;
    CUDA_OK(cudaMalloc(&d, n * es));
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        const size_t m = n - i0 < chunk ? n - i0 : chunk;
        for (size_t i = 0; i < m; i++) {
            const float v = scale * (2.0f * rng_unit() - 1.0f);
            if (dt == SEGRL_DTYPE_F32) ((float *)hbuf)[i] = v;
            else {
                uint32_t u;
                memcpy(&u, &v, 4);
                ((uint16_t *)hbuf)[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
            }
        }
        CUDA_OK(cudaMemcpy((char *)d + i0 * es, hbuf, m * es, cudaMemcpyHostToDevice));
    }
    free(hbuf);
    return d;
}

static void *lc_alloc(size_t bytes) {
    void *p = NULL;
    CUDA_OK(cudaMalloc(&p, bytes ? bytes : 1));
    return p;
}

static void lc_common(loss_cuda_ctx *c) {
    const int64_t N = c->N;
    int64_t *y = host_alloc((size_t)N * 8);
    float *gh = host_alloc((size_t)N * 4);
    for (int64_t i = 0; i < N; i++) y[i] = (int64_t)(rng_next() % (uint64_t)c->V);
    c->y = lc_alloc((size_t)N * 8);
    CUDA_OK(cudaMemcpy(c->y, y, (size_t)N * 8, cudaMemcpyHostToDevice));
    for (int64_t i = 0; i < N; i++) gh[i] = 1.0f;
    c->g = lc_alloc((size_t)N * 4);
    CUDA_OK(cudaMemcpy(c->g, gh, (size_t)N * 4, cudaMemcpyHostToDevice));
    for (int64_t i = 0; i < N; i++) gh[i] = 0.01f;
    c->h = lc_alloc((size_t)N * 4);
    CUDA_OK(cudaMemcpy(c->h, gh, (size_t)N * 4, cudaMemcpyHostToDevice));
    c->outs = lc_alloc((size_t)N * 5 * 4);
    free(y);
    free(gh);
}

static void bench_loss_cuda(const bench_dev *bd, int small) {
    const segrl_device gpu = segrl_cuda(0);
    /* fused log-probs on stored logits, f32 and bf16 */
    const int64_t N = small ? 256 : 4096, V = small ? 32000 : 151936;
    for (int dti = 0; dti < 2; dti++) {
        loss_cuda_ctx c;
        memset(&c, 0, sizeof c);
        c.N = N, c.V = V, c.dt = dti ? SEGRL_DTYPE_BF16 : SEGRL_DTYPE_F32;
        c.x = lc_fill((size_t)N * V, c.dt, 8.0f);
        lc_common(&c);
        c.dx = lc_alloc((size_t)N * V * 4);
        size_t ws = 0;
        check_segrl(segrl_logprobs_workspace_size(gpu, N, V, &ws), "segrl_logprobs_workspace_size");
        char shape[48];
        snprintf(shape, sizeof shape, "N=%lld,V=%lld,%s", (long long)N, (long long)V,
                 dti ? "bf16" : "f32");
        const double NV = (double)N * (double)V, e = dti ? 2.0 : 4.0;
        c.kind = LC_LP_FWD;
        loss_row_cuda(bd, &c, "logprobs+entropy fused", shape, ws, N, e * NV + 20.0 * N,
                      (double)ws);
        c.kind = LC_LP_BWD;
        loss_row_cuda(bd, &c, "logprobs backward fused", shape, ws, N, (e + 4) * NV, (double)ws);
        CUDA_OK(cudaFree(c.x));
        CUDA_OK(cudaFree(c.dx));
        CUDA_OK(cudaFree(c.y));
        CUDA_OK(cudaFree(c.g));
        CUDA_OK(cudaFree(c.h));
        CUDA_OK(cudaFree(c.outs));
    }
    /* fused linear vs materialized, bf16 */
    loss_cuda_ctx c;
    memset(&c, 0, sizeof c);
    c.N = small ? 1024 : 16384, c.D = small ? 512 : 4096, c.V = small ? 32000 : 151936;
    c.H = lc_fill((size_t)c.N * c.D, SEGRL_DTYPE_BF16, 1.0f);
    c.W = lc_fill((size_t)c.V * c.D, SEGRL_DTYPE_BF16, 0.05f);
    lc_common(&c);
    c.dH = lc_alloc((size_t)c.N * c.D * 4);
    c.dW = lc_alloc((size_t)c.V * c.D * 4);
    size_t fws = 0, bws = 0, lws = 0;
    check_segrl(segrl_linear_logprobs_workspace_size(gpu, c.N, c.D, c.V, SEGRL_DTYPE_BF16, NULL, 0,
                                                     &fws),
                "segrl_linear_logprobs_workspace_size");
    check_segrl(segrl_linear_logprobs_workspace_size(gpu, c.N, c.D, c.V, SEGRL_DTYPE_BF16, NULL, 1,
                                                     &bws),
                "segrl_linear_logprobs_workspace_size");
    check_segrl(segrl_logprobs_workspace_size(gpu, c.N, c.V, &lws), "segrl_logprobs_workspace_size");
    c.lin_ws_bytes = fws > bws ? fws : bws;
    c.lin_ws = lc_alloc(c.lin_ws_bytes);
    char shape[48];
    snprintf(shape, sizeof shape, "N=%lld,D=%lld,V=%lld", (long long)c.N, (long long)c.D,
             (long long)c.V);
    const double rd = 2.0 * (double)(c.N + c.V) * (double)c.D;
    const double NV = (double)c.N * (double)c.V;
    bench_dev lbd = *bd;
    if (lbd.reps > 5) lbd.reps = 5;
    c.kind = LC_LIN_FUSED;
    const int fused_ok = loss_row_cuda(&lbd, &c, "linear fwd+bwd fused bf16", shape, 0, c.N, rd,
                                       (double)c.lin_ws_bytes);
    CUDA_OK(cudaFree(c.lin_ws));
    c.lin_ws = NULL;
    if (cublasCreate(&c.blas) != CUBLAS_STATUS_SUCCESS) die("cublasCreate", "failed");
    c.Z = lc_alloc((size_t)NV * 4);
    c.Zb = lc_alloc((size_t)NV * 2);
    c.kind = LC_LIN_MAT;
    loss_row_cuda(&lbd, &c, "linear fwd+bwd materialized bf16", shape, lws, c.N, rd,
                  NV * 6 + (double)lws);
    printf("  working memory %s: fused %.1f MiB (workspace)%s; materialized %.1f MiB (f32 logits + "
           "bf16 dlogits + workspace)\n",
           shape, (double)c.lin_ws_bytes / 1048576.0, fused_ok ? "" : " [fused row skipped]",
           (NV * 6 + (double)lws) / 1048576.0);
    cublasDestroy(c.blas);
    CUDA_OK(cudaFree(c.Z));
    CUDA_OK(cudaFree(c.Zb));
    CUDA_OK(cudaFree(c.H));
    CUDA_OK(cudaFree(c.W));
    CUDA_OK(cudaFree(c.dH));
    CUDA_OK(cudaFree(c.dW));
    CUDA_OK(cudaFree(c.y));
    CUDA_OK(cudaFree(c.g));
    CUDA_OK(cudaFree(c.h));
    CUDA_OK(cudaFree(c.outs));
}
#endif

static void bench_loss(const bench_dev *bd, int small) {
    if (bd->cuda) {
#ifdef SEGRL_BENCH_CUDA
        bench_loss_cuda(bd, small);
#endif
        return;
    }
    const segrl_device cpu = segrl_cpu();
    /* fused log-probs + entropy vs the straightforward passes */
    const int64_t N = small ? 64 : 4096;
    const int64_t Vs[2] = {32000, 151936};
    for (int vi = 0; vi < 2; vi++) {
        const int64_t V = Vs[vi];
        loss_ctx c;
        memset(&c, 0, sizeof c);
        c.N = N, c.V = V;
        float *x = host_alloc((size_t)N * V * 4);
        loss_fill(x, (size_t)N * V, 8.0f);
        int64_t *y = host_alloc((size_t)N * 8);
        for (int64_t i = 0; i < N; i++) y[i] = (int64_t)(rng_next() % (uint64_t)V);
        c.x = x, c.y = y;
        c.lp = host_alloc((size_t)N * 4), c.ent = host_alloc((size_t)N * 4);
        c.lse = host_alloc((size_t)N * 4), c.g = host_alloc((size_t)N * 4);
        c.h = host_alloc((size_t)N * 4);
        for (int64_t i = 0; i < N; i++) c.g[i] = 1.0f, c.h[i] = 0.01f;
        c.big = host_alloc((size_t)N * V * 4);
        size_t ws = 0;
        check_segrl(segrl_logprobs_workspace_size(cpu, N, V, &ws), "segrl_logprobs_workspace_size");
        char shape[48];
        snprintf(shape, sizeof shape, "N=%lld,V=%lld", (long long)N, (long long)V);
        const double NV = (double)N * (double)V;
        c.kind = LP_FUSED;
        loss_row(bd, &c, "logprobs+entropy fused", shape, ws, 4 * NV + 20.0 * N, (double)ws);
        c.kind = LP_UNFUSED_VEC;
        loss_row(bd, &c, "logprobs+entropy unfused(vec-exp)", shape, 0, 20 * NV, 4 * NV);
        c.kind = LP_UNFUSED_LIBM; /* slow: at most 3 timed runs */
        bench_dev sbd = *bd;
        if (sbd.reps > 3) sbd.reps = 3;
        loss_row(&sbd, &c, "logprobs+entropy unfused(libm)", shape, 0, 20 * NV, 4 * NV);
        c.kind = LP_BACKWARD;
        loss_row(bd, &c, "logprobs backward fused", shape, ws, 8 * NV + 16.0 * N, (double)ws);
        printf("  working memory N=%lld V=%lld: fused %.3f MiB (workspace), unfused %.1f MiB "
               "(stored log-softmax; N*V*4/16 = %.1f MiB)\n",
               (long long)N, (long long)V, (double)ws / 1048576.0, 4 * NV / 1048576.0,
               4 * NV / 16 / 1048576.0);
        free(x), free(y), free(c.lp), free(c.ent), free(c.lse), free(c.g), free(c.h), free(c.big);
    }
    /* fused linear vs materialized logits: at most 3 timed runs (seconds per call) */
    bench_dev lbd = *bd;
    if (lbd.reps > 3) lbd.reps = 3;
    const int64_t LN = small ? 128 : 2048, LD = small ? 256 : 1024, LV = small ? 8000 : 32000;
    loss_ctx c;
    memset(&c, 0, sizeof c);
    c.N = LN, c.D = LD, c.V = LV;
    float *Hm = host_alloc((size_t)LN * LD * 4), *W = host_alloc((size_t)LV * LD * 4);
    loss_fill(Hm, (size_t)LN * LD, 1.0f);
    loss_fill(W, (size_t)LV * LD, 0.1f);
    int64_t *y = host_alloc((size_t)LN * 8);
    for (int64_t i = 0; i < LN; i++) y[i] = (int64_t)(rng_next() % (uint64_t)LV);
    c.Hm = Hm, c.W = W, c.y = y;
    c.lp = host_alloc((size_t)LN * 4), c.ent = host_alloc((size_t)LN * 4);
    c.lse = host_alloc((size_t)LN * 4), c.g = host_alloc((size_t)LN * 4);
    c.h = host_alloc((size_t)LN * 4);
    for (int64_t i = 0; i < LN; i++) c.g[i] = 1.0f, c.h[i] = 0.01f;
    c.big = host_alloc((size_t)LN * LV * 4);
    c.dH = host_alloc((size_t)LN * LD * 4), c.dW = host_alloc((size_t)LV * LD * 4);
    size_t fws = 0, bws = 0, lws = 0;
    check_segrl(segrl_linear_logprobs_workspace_size(cpu, LN, LD, LV, SEGRL_DTYPE_F32, NULL, 0, &fws),
                "segrl_linear_logprobs_workspace_size");
    check_segrl(segrl_linear_logprobs_workspace_size(cpu, LN, LD, LV, SEGRL_DTYPE_F32, NULL, 1, &bws),
                "segrl_linear_logprobs_workspace_size");
    check_segrl(segrl_logprobs_workspace_size(cpu, LN, LV, &lws), "segrl_logprobs_workspace_size");
    c.lin_ws_bytes = fws > bws ? fws : bws;
    c.lin_ws = host_alloc(c.lin_ws_bytes);
    char shape[48];
    snprintf(shape, sizeof shape, "N=%lld,D=%lld,V=%lld", (long long)LN, (long long)LD, (long long)LV);
    const double rd = 4.0 * (double)(LN + LV) * (double)LD, NV4 = 4.0 * (double)LN * (double)LV;
    c.kind = LIN_FUSED;
    loss_row(&lbd, &c, "linear fwd fused", shape, 0, rd, (double)fws);
    c.kind = LIN_MAT;
    loss_row(&lbd, &c, "linear fwd materialized", shape, lws, rd, NV4 + (double)lws);
    c.kind = LIN_FUSED_FB;
    loss_row(&lbd, &c, "linear fwd+bwd fused", shape, 0, rd, (double)bws);
    c.kind = LIN_MAT_FB;
    loss_row(&lbd, &c, "linear fwd+bwd materialized", shape, lws, rd, NV4 + (double)lws);
    printf("  working memory %s: fused %.1f MiB forward, %.1f MiB backward (workspace); "
           "materialized %.1f MiB (N x V logits + workspace)\n",
           shape, (double)fws / 1048576.0, (double)bws / 1048576.0, (NV4 + (double)lws) / 1048576.0);
    free(Hm), free(W), free(y), free(c.lp), free(c.ent), free(c.lse), free(c.g), free(c.h);
    free(c.big), free(c.dH), free(c.dW), free(c.lin_ws);
}

// ----------------------------------------------------------------------------
// command line

static void usage(FILE *f) {
    fprintf(f,
            "usage: segrl-bench advantage|segment|tree|loss [--small] [--json FILE] "
            "[--device cpu|cuda|all] [--reps N]\n"
            "  advantage  the estimators of segrl/advantage.h (tokens/s)\n"
            "  segment    partitioners, reduce/scatter, SPO-chain, VinePPO, process rewards,\n"
            "             PRIME (tokens/s)\n"
            "  tree       tree values, advantages, ReST-MCTS* values, episodes (nodes/s)\n"
            "  loss       fused log-probs + entropy vs the straightforward passes (N=4096,\n"
            "             V=32000 and 151936), fused linear vs materialized logits (N=2048,\n"
            "             D=1024, V=32000), with working memory (tokens/s; CPU rows)\n"
            "  --small    advantage, segment: B=64,T=512 and B=256,T=256 instead of B=512,T=4096\n"
            "             and B=4096,T=1024; tree: 10^4 nodes (10 trees, chain of 10^4) instead\n"
            "             of 10^6 (1000 trees of 1000 nodes, chain of 10^5)\n"
            "  --json     also write the rows as a JSON array to FILE\n"
            "  --device   which rows to run (default all: CPU, and CUDA when a GPU is usable)\n"
            "  --reps     timed runs per row after 2 warm-ups (default 11 CPU, 50 CUDA; loss: 5,\n"
            "             at most 3 for the fused linear rows)\n"
            "  loss --small: N=64 log-prob rows; fused linear N=128, D=256, V=8000\n");
}

enum { BENCH_ADVANTAGE, BENCH_SEGMENT, BENCH_TREE, BENCH_LOSS };

/* Per shape: the rows of each device in bds (the CPU's, then CUDA's), as the advantage benchmark
 * always ran them. */
static void run_shapes(int bench, const bench_dev *bds, int nbd, int small) {
    static const int64_t full[2][2] = {{512, 4096}, {4096, 1024}};
    static const int64_t tiny[2][2] = {{64, 512}, {256, 256}};
    const int64_t(*shapes)[2] = small ? tiny : full;
    if (bench == BENCH_LOSS) {
        for (int k = 0; k < nbd; k++) bench_loss(&bds[k], small);
        return;
    }
    if (bench == BENCH_TREE) {
        /* forest, then the deep chain */
        for (int si = 0; si < 2; si++) {
            tree_host t;
            if (si == 0) tree_host_make(&t, small ? 10 : 1000, 1000);
            else tree_host_make(&t, 0, small ? 10000 : 100000);
            float *values = host_alloc((size_t)t.M * 4), *node_adv = host_alloc((size_t)t.M * 4);
            tree_inputs(&t, values, node_adv);
            for (int k = 0; k < nbd; k++)
                bench_tree(&bds[k], &t, si == 1, tree_rotation_sets(&t, small), values, node_adv);
            free(values);
            free(node_adv);
            tree_host_free(&t);
        }
        return;
    }
    for (int si = 0; si < 2; si++) {
        host_data h;
        host_data_make(&h, shapes[si][0], shapes[si][1]);
        if (bench == BENCH_ADVANTAGE) {
            for (int k = 0; k < nbd; k++) bench_advantage(&bds[k], &h, rotation_sets(&h, small));
        } else {
            seg_host s;
            seg_host_make(&s, &h);
            for (int k = 0; k < nbd; k++) bench_segment(&bds[k], &s, seg_rotation_sets(&s, small));
            seg_host_free(&s);
        }
        host_data_free(&h);
    }
}

#ifdef SEGRL_BENCH_TORCH
/* `segrl-bench generate ...`: batched sampling through the ATen bridge (bench-generate.c) */
int bench_generate_main(int argc, char **argv);
#endif

int main(int argc, char **argv) {
    int small = 0, want_cpu = 1, want_cuda = 1, reps = 0, bench = -1;
    const char *json = NULL;
    if (argc >= 2 && !strcmp(argv[1], "generate")) {
#ifdef SEGRL_BENCH_TORCH
        return bench_generate_main(argc - 1, argv + 1);
#else
        fprintf(stderr, "segrl-bench: generate: this build has no ATen bridge (libtorch was not "
                        "found when it was configured)\n");
        return 2;
#endif
    }
    if (argc >= 2) {
        if (!strcmp(argv[1], "advantage")) bench = BENCH_ADVANTAGE;
        else if (!strcmp(argv[1], "segment")) bench = BENCH_SEGMENT;
        else if (!strcmp(argv[1], "tree")) bench = BENCH_TREE;
        else if (!strcmp(argv[1], "loss")) bench = BENCH_LOSS;
    }
    if (bench < 0) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            usage(stdout);
            return 0;
        }
        usage(stderr);
        return 2;
    }
    static const char *const BENCH_NAMES[] = {"advantage", "segment", "tree", "loss"};
    const char *bname = BENCH_NAMES[bench];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--small")) {
            small = 1;
        } else if (!strcmp(a, "--json") && i + 1 < argc) {
            json = argv[++i];
        } else if (!strcmp(a, "--device") && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(v, "cpu")) want_cpu = 1, want_cuda = 0;
            else if (!strcmp(v, "cuda")) want_cpu = 0, want_cuda = 1;
            else if (!strcmp(v, "all")) want_cpu = 1, want_cuda = 1;
            else {
                fprintf(stderr, "segrl-bench: --device: '%s' is not cpu, cuda or all\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--reps") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 100000) {
                fprintf(stderr, "segrl-bench: --reps: '%s' is not a count in [1, 100000]\n",
                        argv[i]);
                return 2;
            }
            reps = (int)v;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "segrl-bench: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    const int cpu_reps = reps ? reps : (bench == BENCH_LOSS ? 5 : 11), cuda_reps = reps ? reps : 50;
    if (bench != BENCH_ADVANTAGE) op_width = bench == BENCH_LOSS ? 33 : 27;

    if (bench == BENCH_ADVANTAGE)
        printf("segrl-bench advantage: segrl %s, %s shapes, checks SHAPES unless \"+checks\"\n",
               segrl_version(), small ? "small" : "full");
    else if (bench == BENCH_LOSS)
        printf("segrl-bench loss: segrl %s, %s shapes, checks SHAPES; tokens/s = rows (tokens) per "
               "second; OpenBLAS as configured by the environment (OPENBLAS_NUM_THREADS)\n",
               segrl_version(), small ? "small" : "full");
    else if (bench == BENCH_SEGMENT)
        printf("segrl-bench segment: segrl %s, %s shapes, checks SHAPES; tokens/s = B*T token "
               "slots of the batch per second\n",
               segrl_version(), small ? "small" : "full");
    else
        printf("segrl-bench tree: segrl %s, %s batches (%s), checks SHAPES; nodes/s = tree nodes "
               "per second\n",
               segrl_version(), small ? "small" : "full",
               small ? "10 trees of 1000 nodes; a chain of 10^4"
                     : "1000 trees of 1000 nodes; a chain of 10^5");

    /* which CUDA rows can run */
    int run_cuda = 0;
    if (want_cuda) {
        const char *why = NULL;
#ifdef SEGRL_BENCH_CUDA
        if (!segrl_built_with_cuda()) why = "libsegrl was built without CUDA";
        else if (segrl_cuda_device_count() <= 0)
            why = "no usable CUDA device (segrl_cuda_device_count() == 0)";
#else
        why = segrl_built_with_cuda() ? "segrl-bench was built without SEGRL_BENCH_CUDA"
                                      : "libsegrl was built without CUDA";
#endif
        if (why) printf("CUDA rows skipped: %s\n", why);
        else run_cuda = 1;
    }

    char cpu_name[128];
    cpu_model(cpu_name, sizeof cpu_name);
    double triad = 0;
    if (want_cpu) {
        triad = cpu_triad(cpu_reps);
        printf("CPU: %s; baseline triad a[i] = b[i] + s*c[i], 3 x 64 MiB f32, 1 thread: %.2f GB/s "
               "(12 B/element; write-allocate traffic not counted, STREAM convention)\n",
               cpu_name, triad);
    }

#ifdef SEGRL_BENCH_CUDA
    char gpu_name[256] = "cuda";
    double copy = 0;
    cudaStream_t stream = NULL;
    if (run_cuda) {
        struct cudaDeviceProp prop;
        int clock_khz = 0, bus_bits = 0;
        CUDA_OK(cudaSetDevice(0));
        CUDA_OK(cudaGetDeviceProperties(&prop, 0));
        snprintf(gpu_name, sizeof gpu_name, "%s", prop.name);
        CUDA_OK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, 0));
        CUDA_OK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0));
        CUDA_OK(cudaStreamCreate(&stream));
        copy = cuda_copy(stream, cuda_reps);
        /* double data rate: two transfers per memory clock */
        const double peak = 2.0 * (double)clock_khz * 1e3 * (double)bus_bits / 8.0 * 1e-9;
        printf("GPU: %s; memory clock %d MHz x %d-bit bus: theoretical peak %.0f GB/s (for "
               "information); baseline D2D cudaMemcpyAsync 256 MiB: %.1f GB/s (2 x size bytes)\n",
               gpu_name, clock_khz / 1000, bus_bits, peak, copy);
    }
#endif
    if (!want_cpu && !run_cuda) { /* --device cuda without a GPU: nothing to time */
        if (json) write_json(json);
        return 0;
    }
    printf("inputs: %s\n\n",
           small ? "one copy (the small shapes run in cache)"
                 : "rotating copies spanning >= 512 MiB, so no call finds its data in cache");
    print_header(bench == BENCH_TREE ? "nodes/s" : "tokens/s");

    bench_dev bds[2];
    int nbd = 0;
    memset(bds, 0, sizeof bds);
    if (want_cpu) {
        bench_dev *bd = &bds[nbd++];
        bd->bench = bname;
        bd->dev = segrl_cpu();
        bd->name = cpu_name;
        bd->base_name = "triad";
        bd->base_gbps = triad;
        bd->reps = cpu_reps;
    }
#ifdef SEGRL_BENCH_CUDA
    if (run_cuda) {
        bench_dev *bd = &bds[nbd++];
        bd->bench = bname;
        bd->cuda = 1;
        bd->dev = segrl_cuda(0);
        bd->name = gpu_name;
        bd->base_name = "d2d-copy";
        bd->base_gbps = copy;
        bd->reps = cuda_reps;
        bd->stream = stream;
        CUDA_OK(cudaEventCreate(&bd->e0));
        CUDA_OK(cudaEventCreate(&bd->e1));
    }
#endif
    run_shapes(bench, bds, nbd, small);
#ifdef SEGRL_BENCH_CUDA
    for (int k = 0; k < nbd; k++) {
        if (!bds[k].cuda) continue;
        CUDA_OK(cudaEventDestroy(bds[k].e0));
        CUDA_OK(cudaEventDestroy(bds[k].e1));
    }
    if (stream) CUDA_OK(cudaStreamDestroy(stream));
#endif
    (void)run_cuda;
    (void)cuda_reps;

    if (json) {
        write_json(json);
        printf("\nwrote %d rows to %s\n", n_rows, json);
    }
    free(rows);
    return 0;
}
