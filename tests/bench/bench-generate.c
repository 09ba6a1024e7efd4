/* segrl-bench generate — tokens/s of batched sampling through the ATen bridge (segrl/torch.h).
 *
 *   segrl-bench generate [--small] [--json FILE] [--device cpu|cuda|all] [--reps N]
 *                        [--model DIR] [--threads N]
 *
 * CPU rows: the tiny model of the tests and the CPU demo (Llama, 4 layers, hidden 128, 4/2 heads,
 * intermediate 512, vocab 320, tied; random weights from seed 1, f32) — or the model in --model
 * DIR — at batch 128 with 16-token prompts and 64 new tokens (--small: batch 32, 16 new tokens).
 * CUDA rows (when this libtorch sees a GPU): a random bf16 model of Qwen2.5-0.5B's shape (24
 * layers, hidden 896, 14/2 heads, intermediate 4864, vocab 151936, tied, rope_theta 1e6) at
 * batch 64, 128-token prompts, 128 new tokens (--small: 2 layers, 32 new tokens).
 *
 * Rows (each timed end to end: prefill + sampling, median of --reps runs after one warm-up):
 *   sample           segrl_generate, B distinct prompts, temperature 1 (full-vocabulary sampling)
 *   sample-top-p     the same with top_p 0.9 and top_k 50 (a sort of the vocabulary per step)
 *   greedy           temperature 0
 *   fork-8           B/8 prompts x 8 samples each (prompt prefilled once, then forked)
 *   tree-4x4         segrl_gen_* states: B/16 prompts, 16 tokens, fork 4, 16 tokens, fork 4,
 *                    the rest (an SPO-tree-like rollout; counts every generated token)
 * items_per_s is generated tokens per second (B * new tokens when no row stops early: no stop
 * tokens are set, so every row runs to max_new_tokens); items_per_cpu_s the same per second of
 * the process's CPU time (CLOCK_PROCESS_CPUTIME_ID), which a loaded shared machine disturbs less;
 * with --threads 1 it is the single-core cost. */
#define _POSIX_C_SOURCE 200809L

#include "segrl/core.h"
#include "segrl/torch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_generate_main(int argc, char **argv);

typedef struct grow {
    char op[32], device[8], device_name[128], shape[96];
    double seconds, cpu_seconds, items, items_per_s, items_per_cpu_s;
    int reps;
} grow;

static grow g_rows[32];
static int g_n;

static void g_die(const char *what) {
    fprintf(stderr, "segrl-bench generate: %s: %s\n", what, segrl_last_error());
    exit(1);
}

#define G_OK(expr)                      \
    do {                                \
        if ((expr) != SEGRL_OK) g_die(#expr); \
    } while (0)

static double g_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of the whole process (every thread): on a shared, loaded machine the wall clock
 * measures the other tenants too; with one libtorch thread this is the single-core cost */
static double g_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int g_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct gcase {
    segrl_model *m;
    int64_t B, prompt, new_tokens;
    int32_t *tokens; /* B prompts of `prompt` tokens */
    int64_t *offsets;
} gcase;

/* one run of a row; returns the generated tokens */
static double run_row(const gcase *c, const char *op) {
    segrl_sampling s = segrl_sampling_default();
    s.max_new_tokens = (int32_t)c->new_tokens;
    int64_t B = c->B, L = c->new_tokens;
    if (!strcmp(op, "tree-4x4")) {
        int64_t n = B / 16 > 0 ? B / 16 : 1, gen = 0;
        segrl_gen_state **st = malloc(sizeof(void *) * (size_t)(n * 16));
        G_OK(segrl_gen_create(c->m, n, c->tokens, c->offsets, NULL, st));
        int64_t l1 = L / 4, l2 = L / 4, l3 = L - l1 - l2;
        s.max_new_tokens = (int32_t)l1;
        G_OK(segrl_gen_extend(c->m, st, n, &s));
        gen += n * l1;
        segrl_gen_state **k1 = malloc(sizeof(void *) * (size_t)(n * 4));
        for (int64_t i = 0; i < n; i++) G_OK(segrl_gen_fork(st[i], 4, NULL, k1 + 4 * i));
        s.max_new_tokens = (int32_t)l2;
        G_OK(segrl_gen_extend(c->m, k1, n * 4, &s));
        gen += n * 4 * l2;
        segrl_gen_state **k2 = malloc(sizeof(void *) * (size_t)(n * 16));
        for (int64_t i = 0; i < n * 4; i++) G_OK(segrl_gen_fork(k1[i], 4, NULL, k2 + 4 * i));
        s.max_new_tokens = (int32_t)l3;
        G_OK(segrl_gen_extend(c->m, k2, n * 16, &s));
        gen += n * 16 * l3;
        for (int64_t i = 0; i < n; i++) segrl_gen_free(st[i]);
        for (int64_t i = 0; i < n * 4; i++) segrl_gen_free(k1[i]);
        for (int64_t i = 0; i < n * 16; i++) segrl_gen_free(k2[i]);
        free(st);
        free(k1);
        free(k2);
        return (double)gen;
    }
    int64_t n = B, k = 1;
    if (!strcmp(op, "fork-8")) n = B / 8 > 0 ? B / 8 : 1, k = 8;
    if (!strcmp(op, "sample-top-p")) s.top_p = 0.9f, s.top_k = 50;
    if (!strcmp(op, "greedy")) s.temperature = 0;
    int32_t *out = malloc(sizeof(int32_t) * (size_t)(n * k * L));
    int32_t *lens = malloc(sizeof(int32_t) * (size_t)(n * k));
    G_OK(segrl_generate(c->m, n, c->tokens, c->offsets, k, &s, 1, out, NULL, lens, NULL));
    double gen = 0;
    for (int64_t i = 0; i < n * k; i++) gen += lens[i];
    free(out);
    free(lens);
    return gen;
}

static void time_row(const gcase *c, const char *op, const char *device, const char *dname,
                     int reps) {
    double items = run_row(c, op); /* warm-up */
    double *t = malloc(sizeof(double) * (size_t)reps), *tc = malloc(sizeof(double) * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        double t0 = g_now(), c0 = g_cpu();
        items = run_row(c, op);
        t[r] = g_now() - t0;
        tc[r] = g_cpu() - c0;
    }
    qsort(t, (size_t)reps, sizeof(double), g_cmp);
    qsort(tc, (size_t)reps, sizeof(double), g_cmp);
    grow *g = &g_rows[g_n++];
    memset(g, 0, sizeof *g);
    snprintf(g->op, sizeof g->op, "%s", op);
    snprintf(g->device, sizeof g->device, "%s", device);
    snprintf(g->device_name, sizeof g->device_name, "%s", dname);
    snprintf(g->shape, sizeof g->shape, "B=%lld,prompt=%lld,new=%lld", (long long)c->B,
             (long long)c->prompt, (long long)c->new_tokens);
    g->seconds = t[reps / 2];
    g->items = items;
    g->cpu_seconds = tc[reps / 2];
    g->items_per_s = items / g->seconds;
    g->items_per_cpu_s = items / g->cpu_seconds;
    g->reps = reps;
    printf("generate  %-13s %-5s %-28s %9.4f s %10.0f tokens/s   cpu %9.4f s %10.0f tokens/cpu-s\n",
           g->op, g->device, g->shape, g->seconds, g->items_per_s, g->cpu_seconds,
           g->items_per_cpu_s);
    fflush(stdout);
    free(t);
    free(tc);
}

static void cpu_name(char *out, size_t n) {
    snprintf(out, n, "cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *p = strchr(line, ':');
            if (p) {
                p++;
                while (*p == ' ') p++;
                p[strcspn(p, "\n")] = 0;
                snprintf(out, n, "%s", p);
            }
            break;
        }
    fclose(f);
}

static void make_prompts(gcase *c, int64_t vocab) {
    c->tokens = malloc(sizeof(int32_t) * (size_t)(c->B * c->prompt));
    c->offsets = malloc(sizeof(int64_t) * (size_t)(c->B + 1));
    uint64_t x = 0x5eed;
    for (int64_t i = 0; i < c->B * c->prompt; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        c->tokens[i] = (int32_t)((x >> 33) % (uint64_t)vocab);
    }
    for (int64_t i = 0; i <= c->B; i++) c->offsets[i] = i * c->prompt;
}

static void write_json(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "segrl-bench generate: %s: cannot open for writing\n", path);
        exit(1);
    }
    fputs("[\n", f);
    for (int i = 0; i < g_n; i++) {
        const grow *r = &g_rows[i];
        fprintf(f,
                "  {\"bench\": \"generate\", \"op\": \"%s\", \"device\": \"%s\", \"device_name\": "
                "\"",
                r->op, r->device);
        for (const char *p = r->device_name; *p; p++)
            if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) fputc(*p, f);
        fprintf(f,
                "\", \"shape\": \"%s\", \"seconds\": %.9g, \"cpu_seconds\": %.9g, \"items\": %.9g, "
                "\"items_per_s\": %.9g, \"items_per_cpu_s\": %.9g, \"reps\": %d}%s\n",
                r->shape, r->seconds, r->cpu_seconds, r->items, r->items_per_s, r->items_per_cpu_s,
                r->reps, i + 1 < g_n ? "," : "");
    }
    fputs("]\n", f);
    if (ferror(f) | fclose(f)) {
        fprintf(stderr, "segrl-bench generate: %s: write failed\n", path);
        exit(1);
    }
}

int bench_generate_main(int argc, char **argv) {
    int small = 0, reps = 0, want_cpu = 1, want_cuda = 1, threads = 0;
    const char *json = NULL, *model_dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--small")) small = 1;
        else if (!strcmp(a, "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(a, "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--model") && i + 1 < argc) model_dir = argv[++i];
        else if (!strcmp(a, "--device") && i + 1 < argc) {
            const char *d = argv[++i];
            want_cpu = !strcmp(d, "cpu") || !strcmp(d, "all");
            want_cuda = !strcmp(d, "cuda") || !strcmp(d, "all");
            if (!want_cpu && !want_cuda) {
                fprintf(stderr, "segrl-bench generate: --device cpu|cuda|all\n");
                return 2;
            }
        } else {
            fprintf(stderr,
                    "usage: segrl-bench generate [--small] [--json FILE] [--device cpu|cuda|all] "
                    "[--reps N] [--model DIR] [--threads N]\n");
            return 2;
        }
    }
    if (threads > 0) G_OK(segrl_torch_set_num_threads(threads));
    printf("segrl-bench generate: libtorch CPU threads %d\n", segrl_torch_num_threads());
    if (want_cpu) {
        char dname[128];
        cpu_name(dname, sizeof dname);
        gcase c;
        memset(&c, 0, sizeof c);
        if (model_dir) {
            G_OK(segrl_model_load(model_dir, SEGRL_DTYPE_F32, segrl_cpu(), &c.m));
        } else {
            segrl_model_config cfg = segrl_model_config_default();
            cfg.vocab_size = 320;
            cfg.intermediate_size = 512;
            G_OK(segrl_model_init(&cfg, 1, SEGRL_DTYPE_F32, segrl_cpu(), &c.m));
        }
        segrl_model_config cfg;
        G_OK(segrl_model_config_get(c.m, &cfg));
        c.B = small ? 32 : 128;
        c.prompt = 16;
        c.new_tokens = small ? 16 : 64;
        make_prompts(&c, cfg.vocab_size);
        printf("cpu model: %d layers, hidden %d, heads %d/%d, vocab %d\n", cfg.num_hidden_layers,
               cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.vocab_size);
        const char *ops[5] = {"sample", "sample-top-p", "greedy", "fork-8", "tree-4x4"};
        for (int o = 0; o < 5; o++) time_row(&c, ops[o], "cpu", dname, reps > 0 ? reps : 5);
        segrl_model_free(c.m);
        free(c.tokens);
        free(c.offsets);
    }
    if (want_cuda) {
        if (!segrl_torch_cuda_available(0)) {
            printf("cuda rows skipped: this libtorch sees no CUDA device\n");
        } else {
            gcase c;
            memset(&c, 0, sizeof c);
            segrl_model_config cfg = segrl_model_config_default();
            cfg.family = SEGRL_MODEL_QWEN2;
            cfg.vocab_size = 151936;
            cfg.hidden_size = 896;
            cfg.intermediate_size = 4864;
            cfg.num_hidden_layers = small ? 2 : 24;
            cfg.num_attention_heads = 14;
            cfg.num_key_value_heads = 2;
            cfg.max_position_embeddings = 32768;
            cfg.rope_theta = 1000000.0f;
            cfg.rms_norm_eps = 1e-6f;
            cfg.tie_word_embeddings = 1;
            G_OK(segrl_model_init(&cfg, 1, SEGRL_DTYPE_BF16, segrl_cuda(0), &c.m));
            c.B = 64;
            c.prompt = 128;
            c.new_tokens = small ? 32 : 128;
            make_prompts(&c, cfg.vocab_size);
            printf("cuda model: Qwen2.5-0.5B shape, %d layers, bf16\n", cfg.num_hidden_layers);
            const char *ops[4] = {"sample", "sample-top-p", "greedy", "fork-8"};
            for (int o = 0; o < 4; o++) time_row(&c, ops[o], "cuda", "cuda:0", reps > 0 ? reps : 3);
            segrl_model_free(c.m);
            free(c.tokens);
            free(c.offsets);
        }
    }
    if (json) {
        write_json(json);
        printf("wrote %d rows to %s\n", g_n, json);
    }
    return 0;
}
