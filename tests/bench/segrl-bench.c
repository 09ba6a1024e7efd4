/* segrl-bench — throughput of the advantage estimators against a memory-bandwidth baseline
 * measured in the same run.
 *
 *   segrl-bench advantage [--small] [--json FILE] [--device cpu|cuda|all] [--reps N]
 *
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
// buffers on one device (CPU: the host inputs themselves; CUDA: device copies)

typedef struct dev_bufs {
    int cuda;
    segrl_device dev;
    segrl_view rewards, values, logp, refp, mask, out_a, out_b;
    segrl_view scores, greedy, gidx, seq_out;
    segrl_layout packed;
    segrl_view p_rewards, p_values, p_mask, p_out_a, p_out_b;
    void *owned[32]; /* memory to release */
    int n_owned;
} dev_bufs;

static void *dev_alloc(dev_bufs *d, size_t bytes) {
    void *p = NULL;
    if (d->cuda) {
#ifdef SEGRL_BENCH_CUDA
        CUDA_OK(cudaMalloc(&p, bytes ? bytes : 256));
        CUDA_OK(cudaMemset(p, 0, bytes));
#endif
    } else {
        p = host_alloc(bytes);
        memset(p, 0, bytes); /* first touch outside the timed region */
    }
    if (d->n_owned == (int)(sizeof d->owned / sizeof d->owned[0]))
        die("dev_alloc", "too many buffers");
    d->owned[d->n_owned++] = p;
    return p;
}

/* a private copy of the input (each rotation set has its own) */
static void *dev_place(dev_bufs *d, const void *host, size_t bytes) {
    void *p = dev_alloc(d, bytes);
    if (!d->cuda) {
        memcpy(p, host, bytes);
        return p;
    }
#ifdef SEGRL_BENCH_CUDA
    CUDA_OK(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice));
#endif
    return p;
}

static void dev_bufs_make(dev_bufs *d, int cuda, const host_data *h) {
    memset(d, 0, sizeof *d);
    d->cuda = cuda;
    d->dev = cuda ? segrl_cuda(0) : segrl_cpu();
    const int64_t B = h->B, T = h->T, Np = h->Np;
    const size_t nf = (size_t)h->N * sizeof(float), pf = (size_t)Np * sizeof(float);
    d->rewards = segrl_view_2d(dev_place(d, h->rewards, nf), SEGRL_DTYPE_F32, d->dev, B, T);
    d->values = segrl_view_2d(dev_place(d, h->values, nf), SEGRL_DTYPE_F32, d->dev, B, T);
    d->logp = segrl_view_2d(dev_place(d, h->logp, nf), SEGRL_DTYPE_F32, d->dev, B, T);
    d->refp = segrl_view_2d(dev_place(d, h->refp, nf), SEGRL_DTYPE_F32, d->dev, B, T);
    d->mask = segrl_view_2d(dev_place(d, h->mask, (size_t)h->N), SEGRL_DTYPE_U8, d->dev, B, T);
    d->out_a = segrl_view_2d(dev_alloc(d, nf), SEGRL_DTYPE_F32, d->dev, B, T);
    d->out_b = segrl_view_2d(dev_alloc(d, nf), SEGRL_DTYPE_F32, d->dev, B, T);
    d->scores = segrl_view_1d(dev_place(d, h->scores, (size_t)B * 4), SEGRL_DTYPE_F32, d->dev, B);
    d->greedy = segrl_view_1d(dev_place(d, h->greedy, (size_t)B * 4), SEGRL_DTYPE_F32, d->dev, B);
    d->gidx = segrl_view_1d(dev_place(d, h->gidx, (size_t)B * 4), SEGRL_DTYPE_I32, d->dev, B);
    d->seq_out = segrl_view_1d(dev_alloc(d, (size_t)B * 4), SEGRL_DTYPE_F32, d->dev, B);
    d->packed = segrl_layout_packed(segrl_view_1d(
        dev_place(d, h->offsets, (size_t)(B + 1) * 4), SEGRL_DTYPE_I32, d->dev, B + 1));
    d->p_rewards = segrl_view_1d(dev_place(d, h->p_rewards, pf), SEGRL_DTYPE_F32, d->dev, Np);
    d->p_values = segrl_view_1d(dev_place(d, h->p_values, pf), SEGRL_DTYPE_F32, d->dev, Np);
    d->p_mask = segrl_view_1d(dev_place(d, h->p_mask, (size_t)Np), SEGRL_DTYPE_U8, d->dev, Np);
    d->p_out_a = segrl_view_1d(dev_alloc(d, pf), SEGRL_DTYPE_F32, d->dev, Np);
    d->p_out_b = segrl_view_1d(dev_alloc(d, pf), SEGRL_DTYPE_F32, d->dev, Np);
}

static void dev_bufs_free(dev_bufs *d) {
    for (int i = 0; i < d->n_owned; i++) {
        if (d->cuda) {
#ifdef SEGRL_BENCH_CUDA
            CUDA_OK(cudaFree(d->owned[i]));
#endif
        } else {
            free(d->owned[i]);
        }
    }
    d->n_owned = 0;
}

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
    char op[48], device[16], device_name[128], shape[48], baseline[48];
    double seconds, items, items_per_s, bytes, gb_per_s, baseline_gb_per_s, ratio;
    int reps;
} row;

static row *rows = NULL;
static int n_rows = 0, cap_rows = 0;

static void print_header(void) {
    printf("%-9s  %-22s  %-6s  %-20s  %12s  %12s  %8s  %-20s  %6s\n", "bench", "op", "device",
           "shape", "seconds", "tokens/s", "GB/s", "baseline", "ratio");
}

static void add_row(const char *op, const char *device, const char *device_name,
                    const char *shape, double seconds, double items, double bytes,
                    const char *base_name, double base_gbps, int reps) {
    if (n_rows == cap_rows) {
        cap_rows = cap_rows ? 2 * cap_rows : 64;
        rows = realloc(rows, (size_t)cap_rows * sizeof *rows);
        if (!rows) die("realloc", "out of memory");
    }
    row *r = &rows[n_rows++];
    memset(r, 0, sizeof *r);
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
    printf("%-9s  %-22s  %-6s  %-20s  %12.6f  %12.4g  %8.2f  %-20s  %6.2f\n", "advantage", r->op,
           r->device, r->shape, r->seconds, r->items_per_s, r->gb_per_s, r->baseline, r->ratio);
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
        fputs("  {\"bench\": \"advantage\", \"op\": ", f);
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

static void bench_cpu(const host_data *h, int nsets, int reps, double triad, const char *name) {
    dev_bufs d[MAX_SETS];
    for (int i = 0; i < nsets; i++) dev_bufs_make(&d[i], 0, h);
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t) die("malloc", "out of memory");
    for (int which = 0; which < B_COUNT; which++) {
        const op_spec *s = &SPECS[which];
        const int64_t ntok = s->packed ? h->Np : h->N;
        size_t ws_bytes = 0;
        check_segrl(segrl_workspace_size(s->op, segrl_cpu(), h->B, ntok, s->grouped ? h->G : 1,
                                         &ws_bytes),
                    "segrl_workspace_size");
        void *ws = ws_bytes ? host_alloc(ws_bytes) : NULL;
        segrl_exec ex;
        memset(&ex, 0, sizeof ex);
        ex.workspace = ws;
        ex.workspace_bytes = ws_bytes;
        ex.checks = s->full_checks ? SEGRL_CHECKS_FULL : SEGRL_CHECKS_SHAPES;
        int set = 0;
        for (int k = 0; k < WARMUP; k++, set = (set + 1) % nsets)
            check_segrl(run_op(which, &d[set], h->G, &ex), s->name);
        for (int k = 0; k < reps; k++, set = (set + 1) % nsets) {
            double t0 = now_s();
            segrl_status st = run_op(which, &d[set], h->G, &ex);
            t[k] = now_s() - t0;
            check_segrl(st, s->name);
        }
        char shape[48];
        shape_name(shape, sizeof shape, h, s->packed);
        add_row(s->name, "cpu", name, shape, median(t, reps), (double)ntok,
                op_bytes(s, h->B, ntok), "triad", triad, reps);
        free(ws);
    }
    free(t);
    for (int i = 0; i < nsets; i++) dev_bufs_free(&d[i]);
}

// ----------------------------------------------------------------------------
// CUDA: D2D copy baseline and the timed calls (cudaEvents on a stream)

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

static void bench_cuda(const host_data *h, int nsets, int reps, double copy, const char *name,
                       cudaStream_t stream) {
    dev_bufs d[MAX_SETS];
    for (int i = 0; i < nsets; i++) dev_bufs_make(&d[i], 1, h);
    cudaEvent_t e0, e1;
    CUDA_OK(cudaEventCreate(&e0));
    CUDA_OK(cudaEventCreate(&e1));
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t) die("malloc", "out of memory");
    for (int which = 0; which < B_COUNT; which++) {
        const op_spec *s = &SPECS[which];
        const int64_t ntok = s->packed ? h->Np : h->N;
        size_t ws_bytes = 0;
        check_segrl(segrl_workspace_size(s->op, segrl_cuda(0), h->B, ntok,
                                         s->grouped ? h->G : 1, &ws_bytes),
                    "segrl_workspace_size");
        void *ws = NULL;
        if (ws_bytes) CUDA_OK(cudaMalloc(&ws, ws_bytes));
        segrl_exec ex;
        memset(&ex, 0, sizeof ex);
        ex.stream = (void *)stream;
        ex.workspace = ws;
        ex.workspace_bytes = ws_bytes;
        ex.checks = s->full_checks ? SEGRL_CHECKS_FULL : SEGRL_CHECKS_SHAPES;
        /* full checks synchronize the stream inside the call: no gate (it would only wait) */
        const int gated = !s->full_checks;
        int set = 0;
        for (int k = 0; k < WARMUP; k++, set = (set + 1) % nsets)
            check_segrl(run_op(which, &d[set], h->G, &ex), s->name);
        CUDA_OK(cudaStreamSynchronize(stream));
        for (int k = 0; k < reps; k++, set = (set + 1) % nsets) {
            float ms = 0;
            if (gated) gate_close(stream);
            CUDA_OK(cudaEventRecord(e0, stream));
            segrl_status st = run_op(which, &d[set], h->G, &ex);
            CUDA_OK(cudaEventRecord(e1, stream));
            gate_release();
            check_segrl(st, s->name);
            CUDA_OK(cudaEventSynchronize(e1));
            CUDA_OK(cudaEventElapsedTime(&ms, e0, e1));
            t[k] = 1e-3 * (double)ms;
        }
        CUDA_OK(cudaGetLastError());
        char shape[48];
        shape_name(shape, sizeof shape, h, s->packed);
        add_row(s->name, "cuda", name, shape, median(t, reps), (double)ntok,
                op_bytes(s, h->B, ntok), "d2d-copy", copy, reps);
        if (ws) CUDA_OK(cudaFree(ws));
    }
    free(t);
    CUDA_OK(cudaEventDestroy(e0));
    CUDA_OK(cudaEventDestroy(e1));
    for (int i = 0; i < nsets; i++) dev_bufs_free(&d[i]);
}
#endif

// ----------------------------------------------------------------------------
// command line

static void usage(FILE *f) {
    fprintf(f,
            "usage: segrl-bench advantage [--small] [--json FILE] [--device cpu|cuda|all] "
            "[--reps N]\n"
            "  --small   B=64,T=512 and B=256,T=256 instead of B=512,T=4096 and B=4096,T=1024\n"
            "  --json    also write the rows as a JSON array to FILE\n"
            "  --device  which rows to run (default all: CPU, and CUDA when a GPU is usable)\n"
            "  --reps    timed runs per row after 2 warm-ups (default 11 CPU, 50 CUDA)\n");
}

int main(int argc, char **argv) {
    int small = 0, want_cpu = 1, want_cuda = 1, reps = 0;
    const char *json = NULL;
    if (argc < 2 || strcmp(argv[1], "advantage") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            usage(stdout);
            return 0;
        }
        usage(stderr);
        return 2;
    }
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
    const int cpu_reps = reps ? reps : 11, cuda_reps = reps ? reps : 50;
    static const int64_t full[2][2] = {{512, 4096}, {4096, 1024}};
    static const int64_t tiny[2][2] = {{64, 512}, {256, 256}};
    const int64_t(*shapes)[2] = small ? tiny : full;

    printf("segrl-bench advantage: segrl %s, %s shapes, checks SHAPES unless \"+checks\"\n",
           segrl_version(), small ? "small" : "full");

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
    print_header();

    for (int si = 0; si < 2; si++) {
        host_data h;
        host_data_make(&h, shapes[si][0], shapes[si][1]);
        const int nsets = rotation_sets(&h, small);
        if (want_cpu) bench_cpu(&h, nsets, cpu_reps, triad, cpu_name);
#ifdef SEGRL_BENCH_CUDA
        if (run_cuda) bench_cuda(&h, nsets, cuda_reps, copy, gpu_name, stream);
#endif
        host_data_free(&h);
    }
#ifdef SEGRL_BENCH_CUDA
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
