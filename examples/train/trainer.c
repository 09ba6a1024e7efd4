/* trainer.c — the trainer core of the GSM8K / MATH example programs (see trainer.h).
 *
 * One run:
 *   1. configuration: ex_trainer_keys() plus this file's extra keys; presets of the program, then
 *      --config files, then flags; saved to <output_dir>/config.json
 *   2. data: GSM8K / MATH JSONL (data.train, data.test) or the synthetic set written into
 *      <output_dir>/data; every prompt and worked solution tokenized once
 *   3. model: a Hugging Face directory (model.path, with its tokenizer.json) or the tiny demo
 *      model: a byte-level BPE tokenizer trained on the training texts and a small Llama
 *   4. supervised warm-up (sft.steps > 0): next-token cross-entropy on the worked solutions
 *   5. RL (run.steps): prompts -> rollouts (segrl_rollout driver, generation through segrl_gen_*
 *      with prefix forking) -> rewards (segrl_reward) -> advantages (the estimator) -> log-probs
 *      recomputed with gradients -> segrl_autograd_policy_loss -> backward -> AdamW
 *   6. greedy pass@1 on the test split before, every eval.every steps and after; metrics JSONL,
 *      progress line, checkpoints every ckpt.every steps (--run.resume continues bit for bit on
 *      CPU), the final model in <output_dir>/model, PNG plots.
 *
 * Errors stop the program with "<program>: <what>: <segrl_last_error()>" (exit 1): this is an
 * example program, not a library, so it does not unwind. */
#define _GNU_SOURCE
#include "trainer.h"

#include "ex.h"

#include <segrl/segrl.h>
#include <segrl/torch.h>
#include <segrl/train.h>
#include <segrl/likelihood.h>
#ifdef SEGRL_TRAINER_DIST
#include <segrl/dist.h>
#endif

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Thread pools of libtorch (OpenMP) and OpenBLAS; weak so that a build without them still links. */
extern void omp_set_num_threads(int n) __attribute__((weak));
extern void openblas_set_num_threads(int n) __attribute__((weak));

// ----------------------------------------------------------------------------
// errors

static const char *g_program = "trainer";
static int g_rank = 0; /* this process's rank (data parallelism), for messages */
#ifdef SEGRL_TRAINER_DIST
static segrl_comm *g_comm; /* ended with the job by die() when there are several processes */
#endif

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s: ", g_program);
    if (g_rank > 0) fprintf(stderr, "rank %d: ", g_rank);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
#ifdef SEGRL_TRAINER_DIST
    /* the other processes would otherwise wait in their next collective until its timeout */
    if (g_comm && segrl_comm_size(g_comm) > 1) segrl_comm_abort(g_comm, 1);
#endif
    exit(1);
}

/* CK(call): a segrl call that must succeed. */
#define CK(expr)                                                                                  \
    do {                                                                                          \
        segrl_status st_ = (expr);                                                                \
        if (st_ != SEGRL_OK)                                                                      \
            die("%s (%s:%d): %s: %s", #expr, __FILE__, __LINE__, segrl_status_str(st_),          \
                segrl_last_error());                                                              \
    } while (0)

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) die("out of memory (%zu x %zu bytes)", n, size);
    return p;
}
static void *xrealloc(void *p, size_t size) {
    void *q = realloc(p, size ? size : 1);
    if (!q) die("out of memory (%zu bytes)", size);
    return q;
}
static char *xstrdup(const char *s) {
    char *d = strdup(s ? s : "");
    if (!d) die("out of memory");
    return d;
}

// ----------------------------------------------------------------------------
// the extra keys of this trainer (besides ex_trainer_keys)

static const ex_cfg_key extra_keys[] = {
    {"run.max_samples", EX_CFG_INT, "0", NULL, 0, 9e15, "stop RL once this many continuations were sampled (trajectories + Monte Carlo rollouts + tree segments; 0: no limit)"},
    {"run.max_gen_tokens", EX_CFG_INT, "0", NULL, 0, 9e15, "stop RL once this many tokens were generated for training (0: no limit): matched compute budgets"},
    {"run.device", EX_CFG_STRING, "cpu", NULL, 0, 0, "device of the model and the loss: cpu, cuda or cuda:N"},
    {"model.tiny_vocab", EX_CFG_INT, "384", NULL, 260, 1e6, "tiny model: byte-level BPE vocabulary trained on the training texts (256 bytes + specials + merges)"},
    {"model.tiny_ffn", EX_CFG_INT, "384", NULL, 0, 1e7, "tiny model: MLP width (0: the Llama rule)"},
    {"model.init_seed", EX_CFG_INT, "0", NULL, 0, 9e15, "tiny model: weight seed (0: run.seed)"},
    {"sft.warmup_steps", EX_CFG_INT, "20", NULL, 0, 1e9, "warm-up: linear learning-rate warm-up steps (then constant)"},
    {"sft.eval_every", EX_CFG_INT, "0", NULL, 0, 1e9, "warm-up: greedy pass@1 every N steps (0: only at the end)"},
    {"algo.micro_batch", EX_CFG_INT, "0", NULL, 0, 1e9, "sequences per forward/backward (gradients accumulate over a minibatch; 0: the whole minibatch)"},
    {"eval.batch", EX_CFG_INT, "100", NULL, 1, 1e6, "prompts per greedy-evaluation batch"},
    {"eval.seed", EX_CFG_INT, "0", NULL, 0, 9e15, "which test problems eval.size picks (0: the first eval.size)"},
    {"dist.timeout_s", EX_CFG_FLOAT, "300", NULL, 1e-3, 1e7, "data parallelism (mpirun / torchrun-style launch): seconds a collective waits for the other processes before the run stops with an error"},
    {"dist.bucket_mb", EX_CFG_FLOAT, "25", NULL, 1e-3, 1e5, "data parallelism: gradients are all-reduced in f32 buckets of this many MiB"},
    {"dist.log_all_ranks", EX_CFG_BOOL, "false", NULL, 0, 0, "data parallelism: every process prints its log (default: only rank 0)"},
};

static ex_cfg_key *g_schema;
static int32_t g_schema_n;

static const ex_cfg_key *trainer_schema(int32_t *out_n) {
    if (!g_schema) {
        int32_t n0;
        const ex_cfg_key *k0 = ex_trainer_keys(&n0);
        int32_t n1 = (int32_t)(sizeof extra_keys / sizeof extra_keys[0]);
        g_schema = xcalloc((size_t)(n0 + n1), sizeof *g_schema);
        /* keep the sections together: each extra key goes after the last key of its section */
        int32_t o = 0;
        for (int32_t i = 0; i < n0; i++) {
            g_schema[o++] = k0[i];
            const char *dot = strchr(k0[i].key, '.');
            size_t sl = dot ? (size_t)(dot - k0[i].key) : 0;
            int last_of_section = i + 1 == n0 || strncmp(k0[i + 1].key, k0[i].key, sl + 1) != 0;
            if (!last_of_section) continue;
            for (int32_t j = 0; j < n1; j++)
                if (strncmp(extra_keys[j].key, k0[i].key, sl + 1) == 0) g_schema[o++] = extra_keys[j];
        }
        /* extra keys of a section the common table does not have go last */
        for (int32_t j = 0; j < n1; j++) {
            int placed = 0;
            for (int32_t i = 0; i < o && !placed; i++) placed = g_schema[i].key == extra_keys[j].key;
            if (!placed) g_schema[o++] = extra_keys[j];
        }
        g_schema_n = o;
    }
    *out_n = g_schema_n;
    return g_schema;
}

// ----------------------------------------------------------------------------
// state

enum { EST_GRPO, EST_DRGRPO, EST_RLOO, EST_RPP, EST_PPO, EST_VINEPPO, EST_SPO_CHAIN, EST_SPO_TREE };

typedef struct tok_item {
    int32_t *prompt; /* prompt ids */
    int64_t prompt_len;
    int32_t *solution; /* worked solution ids + EOS */
    int64_t solution_len;
} tok_item;

typedef struct trainer {
    ex_config cfg;
    const char *out_dir;
    segrl_device device;
    uint64_t seed;
    int estimator;

    ex_dataset train, test;
    tok_item *train_tok, *test_tok;
    int64_t *eval_idx, eval_n;

    segrl_tokenizer *tok;
    int32_t stop_ids[4];
    int32_t n_stop;
    int32_t *delims;
    int32_t n_delims;
    segrl_model *model, *ref;
    int64_t ctx;
    segrl_tensor **params;
    const char **names;
    int64_t n_params;
    segrl_optimizer *opt;
    segrl_reward *reward;      /* the training reward (reward.name) */
    segrl_reward *eval_reward; /* the dataset's verifier, for pass@1; NULL: `reward` is it */
    int64_t reward_failures;   /* training samples whose reward failed or timed out (cumulative) */

    /* RL */
    ex_sampler rl_sampler;
    segrl_replay *replay;
    int64_t samples_total, tokens_total;
    int64_t *batch_items; /* dataset index of each prompt of the current batch */

    /* generation cache: states of the last round, keyed by their tokens (SPO-tree reuses the KV
     * cache of a node when its children are requested) */
    segrl_gen_state **cache;
    uint64_t *cache_hash;
    int64_t *cache_len;
    int64_t n_cache;

    ex_timer t_score;
    int64_t gen_tokens_step;
    ex_progress prog;

    /* data parallelism (a world of one without a launcher) */
    int32_t rank, world;
    int64_t batch_base; /* global index of this rank's first prompt in the current RL batch */
    int64_t reward_failures_step; /* this rank's failures in the current step */
    ex_timer t_comm;              /* time in the gradient all-reduce (this step) */
#ifdef SEGRL_TRAINER_DIST
    segrl_comm *comm;
#endif
} trainer;

static void dist_barrier(trainer *t);

static uint64_t mix64(uint64_t a, uint64_t b) {
    uint64_t s = a ^ (b * 0x9E3779B97F4A7C15ull);
    return ex_splitmix64(&s);
}

static uint64_t hash_tokens(const int32_t *t, int64_t n) {
    uint64_t h = 1469598103934665603ull;
    for (int64_t i = 0; i < n; i++) {
        h ^= (uint32_t)t[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void set_threads(int n) {
    if (omp_set_num_threads) omp_set_num_threads(n);
    if (openblas_set_num_threads) openblas_set_num_threads(n);
}

static void path_join(char *buf, size_t cap, const char *a, const char *b) {
    int k = snprintf(buf, cap, "%s/%s", a, b);
    if (k < 0 || (size_t)k >= cap) die("path too long: %s/%s", a, b);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static char *read_file(const char *path, size_t *out_len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = xcalloc(cap, 1);
    for (;;) {
        if (n + 4096 >= cap) b = xrealloc(b, cap *= 2);
        size_t k = fread(b + n, 1, cap - n - 1, f);
        if (k == 0) break;
        n += k;
    }
    fclose(f);
    b[n] = 0;
    if (out_len) *out_len = n;
    return b;
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    char *b = read_file(from, &n);
    if (!b) die("cannot read %s: %s", from, strerror(errno));
    char tmp[4200];
    int k = snprintf(tmp, sizeof tmp, "%s.tmp", to);
    if (k < 0 || (size_t)k >= sizeof tmp) die("path too long: %s", to);
    FILE *f = fopen(tmp, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) die("cannot write %s", tmp);
    if (rename(tmp, to) != 0) die("cannot rename %s: %s", tmp, strerror(errno));
    free(b);
}

// ----------------------------------------------------------------------------
// tokens

static void encode(const trainer *t, const char *text, int32_t **ids, int64_t *n) {
    int32_t *raw;
    CK(segrl_tokenizer_encode(t->tok, text, strlen(text), 0, &raw, n));
    *ids = xcalloc((size_t)*n + 1, sizeof **ids);
    if (*n) memcpy(*ids, raw, (size_t)*n * sizeof **ids);
    segrl_free(raw);
}

static char *decode(const trainer *t, const int32_t *ids, int64_t n) {
    char *s;
    size_t len;
    CK(segrl_tokenizer_decode(t->tok, ids, n, SEGRL_TOK_SKIP_SPECIAL, &s, &len));
    char *r = xstrdup(s);
    segrl_free(s);
    return r;
}

static tok_item *tokenize_set(trainer *t, const ex_dataset *d) {
    const char *tmpl = ex_config_str(&t->cfg, "prompt.template");
    tok_item *out = xcalloc((size_t)d->n, sizeof *out);
    for (int64_t i = 0; i < d->n; i++) {
        char *p = ex_render_prompt(tmpl, d->items[i].question);
        if (!p) die("out of memory");
        encode(t, p, &out[i].prompt, &out[i].prompt_len);
        free(p);
        if (out[i].prompt_len < 1) die("problem %lld: empty prompt", (long long)i);
        int32_t *s;
        int64_t ns;
        encode(t, d->items[i].solution, &s, &ns);
        s = xrealloc(s, (size_t)(ns + 1) * sizeof *s);
        if (t->n_stop > 0) s[ns++] = t->stop_ids[0];
        out[i].solution = s;
        out[i].solution_len = ns;
    }
    return out;
}

// ----------------------------------------------------------------------------
// set-up: data, tokenizer, model

static void setup_data(trainer *t) {
    const char *train = ex_config_str(&t->cfg, "data.train");
    const char *test = ex_config_str(&t->cfg, "data.test");
    char tp[4096], sp[4096];
    if (!train[0]) {
        /* the synthetic set, written once into <output_dir>/data */
        char dir[4096];
        path_join(dir, sizeof dir, t->out_dir, "data");
        path_join(tp, sizeof tp, dir, "train.jsonl");
        path_join(sp, sizeof sp, dir, "test.jsonl");
        ex_synth_opts so = ex_synth_opts_default();
        so.seed = (uint64_t)ex_config_int(&t->cfg, "data.synth_seed");
        so.difficulty = (int32_t)ex_config_int(&t->cfg, "data.synth_difficulty");
        so.noise = ex_config_float(&t->cfg, "data.synth_noise");
        so.num_train = ex_config_int(&t->cfg, "data.synth_train");
        so.num_test = ex_config_int(&t->cfg, "data.synth_test");
        /* regenerate unless meta.json says the same options */
        char meta[4096], want[512];
        path_join(meta, sizeof meta, dir, "trainer-synth.txt");
        snprintf(want, sizeof want, "seed %llu difficulty %d noise %.17g train %lld test %lld\n",
                 (unsigned long long)so.seed, so.difficulty, so.noise, (long long)so.num_train,
                 (long long)so.num_test);
        char *have = read_file(meta, NULL);
        if (!have || strcmp(have, want) != 0 || !file_exists(tp) || !file_exists(sp)) {
            if (ex_make_dirs(dir) != 0) die("cannot create %s: %s", dir, strerror(errno));
            ex_synth_set set;
            CK(ex_synth_generate(&so, &set));
            CK(ex_synth_write(&set, &so, dir));
            printf("synthetic data: %lld train (%lld with a slip) + %lld test problems in %s\n",
                   (long long)set.num_train, (long long)set.num_noisy, (long long)set.num_test, dir);
            ex_synth_set_free(&set);
            FILE *f = fopen(meta, "w");
            if (f) {
                fputs(want, f);
                fclose(f);
            }
        }
        free(have);
        train = tp;
        if (!test[0]) test = sp;
    }
    int fmt = ex_data_format_from_name(ex_config_str(&t->cfg, "data.format"));
    int skip = ex_config_bool(&t->cfg, "data.skip_bad");
    CK(ex_dataset_load(train, (ex_data_format)fmt, skip, &t->train));
    if (test[0]) CK(ex_dataset_load(test, (ex_data_format)fmt, skip, &t->test));
    printf("data: %lld training problems (%s), %lld test problems\n", (long long)t->train.n,
           ex_data_format_name((ex_data_format)t->train.format), (long long)t->test.n);
    if (t->train.skipped || t->test.skipped)
        printf("data: skipped %lld + %lld bad lines (first: %s%s)\n", (long long)t->train.skipped,
               (long long)t->test.skipped, t->train.first_error, t->test.first_error);
}

/* The texts the tiny model's tokenizer is trained on: every prompt and solution. */
static char *training_corpus(trainer *t, size_t *out_len) {
    const char *tmpl = ex_config_str(&t->cfg, "prompt.template");
    size_t cap = 1 << 20, n = 0;
    char *b = xcalloc(cap, 1);
    for (int64_t i = 0; i < t->train.n; i++) {
        char *p = ex_render_prompt(tmpl, t->train.items[i].question);
        if (!p) die("out of memory");
        size_t need = strlen(p) + strlen(t->train.items[i].solution) + 4;
        while (n + need >= cap) b = xrealloc(b, cap *= 2);
        n += (size_t)sprintf(b + n, "%s%s\n\n", p, t->train.items[i].solution);
        free(p);
    }
    *out_len = n;
    return b;
}

static void collect_stop_ids(trainer *t, int32_t eos) {
    t->n_stop = 0;
    if (eos >= 0) t->stop_ids[t->n_stop++] = eos;
    const char *extra[] = {"<|endoftext|>", "<|im_end|>", "<|eot_id|>"};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        int32_t id = segrl_tokenizer_token_id(t->tok, extra[i]);
        int dup = 0;
        for (int32_t j = 0; j < t->n_stop; j++) dup |= t->stop_ids[j] == id;
        if (id >= 0 && !dup && t->n_stop < 4) t->stop_ids[t->n_stop++] = id;
    }
}

/* VinePPO's step delimiters: tokens whose text holds a newline or ends a sentence ('.'). */
static void collect_delimiters(trainer *t) {
    int64_t v = segrl_tokenizer_vocab_size(t->tok);
    t->delims = xcalloc((size_t)v, sizeof *t->delims);
    t->n_delims = 0;
    for (int64_t i = 0; i < v; i++) {
        const char *b;
        size_t n;
        if (segrl_tokenizer_token_bytes(t->tok, (int32_t)i, &b, &n) != SEGRL_OK || n == 0) continue;
        if (segrl_tokenizer_is_special(t->tok, (int32_t)i)) continue;
        int nl = memchr(b, '\n', n) != NULL;
        size_t e = n;
        while (e > 0 && b[e - 1] == ' ') e--;
        if (nl || (e > 0 && b[e - 1] == '.')) t->delims[t->n_delims++] = (int32_t)i;
    }
    if (t->n_delims == 0) t->delims[t->n_delims++] = 0;
    segrl_clear_error();
}

static void setup_model(trainer *t) {
    const char *path = ex_config_str(&t->cfg, "model.path");
    segrl_dtype dt = strcmp(ex_config_str(&t->cfg, "model.dtype"), "bf16") == 0 ? SEGRL_DTYPE_BF16
                                                                               : SEGRL_DTYPE_F32;
    char tp[4096];
    if (path[0]) {
        path_join(tp, sizeof tp, path, "tokenizer.json");
        CK(segrl_tokenizer_load(tp, &t->tok));
        CK(segrl_model_load(path, dt, t->device, &t->model));
    } else {
        /* the tiny demo model: BPE trained on the training texts, a small Llama */
        path_join(tp, sizeof tp, t->out_dir, "tokenizer.json");
        int64_t vocab = ex_config_int(&t->cfg, "model.tiny_vocab");
        if (!file_exists(tp)) {
            size_t n;
            char *corpus = training_corpus(t, &n);
            const char *special[] = {"<|endoftext|>"};
            double t0 = ex_now();
            CK(segrl_tokenizer_train(corpus, n, vocab, special, 1, tp));
            printf("tokenizer: BPE of %lld tokens trained on %zu bytes in %.1fs -> %s\n",
                   (long long)vocab, n, ex_now() - t0, tp);
            free(corpus);
        }
        CK(segrl_tokenizer_load(tp, &t->tok));
        segrl_model_config mc = segrl_model_config_default();
        mc.family = SEGRL_MODEL_LLAMA;
        mc.vocab_size = (int32_t)segrl_tokenizer_vocab_size(t->tok);
        mc.hidden_size = (int32_t)ex_config_int(&t->cfg, "model.tiny_dim");
        mc.num_hidden_layers = (int32_t)ex_config_int(&t->cfg, "model.tiny_layers");
        mc.num_attention_heads = (int32_t)ex_config_int(&t->cfg, "model.tiny_heads");
        mc.num_key_value_heads = mc.num_attention_heads;
        mc.head_dim = 0;
        mc.intermediate_size = (int32_t)ex_config_int(&t->cfg, "model.tiny_ffn");
        mc.max_position_embeddings = (int32_t)ex_config_int(&t->cfg, "model.tiny_ctx");
        mc.tie_word_embeddings = 1;
        mc.bos_token_id = -1;
        mc.eos_token_id = segrl_tokenizer_token_id(t->tok, "<|endoftext|>");
        mc.initializer_range = 0.02f;
        if (mc.hidden_size % mc.num_attention_heads != 0)
            die("model.tiny_dim (%d) must be a multiple of model.tiny_heads (%d)", mc.hidden_size,
                mc.num_attention_heads);
        uint64_t ms = (uint64_t)ex_config_int(&t->cfg, "model.init_seed");
        CK(segrl_model_init(&mc, ms ? ms : t->seed, dt, t->device, &t->model));
    }
    segrl_model_config mc;
    CK(segrl_model_config_get(t->model, &mc));
    t->ctx = mc.max_position_embeddings;
    collect_stop_ids(t, mc.eos_token_id);
    if (t->n_stop == 0) die("the model has no eos_token_id and the tokenizer no end-of-text token");
    collect_delimiters(t);
    if (t->estimator == EST_PPO) {
        segrl_tensor *probe = NULL;
        int64_t sh[2] = {1, 1};
        int64_t one = t->stop_ids[0];
        CK(segrl_tensor_from_host(&one, SEGRL_DTYPE_I64, 2, sh, t->device, &probe));
        int32_t prev;
        CK(segrl_set_grad_enabled(0, &prev));
        segrl_tensor *v = NULL;
        if (segrl_model_forward(t->model, probe, NULL, SEGRL_OUTPUT_VALUES, &v) != SEGRL_OK)
            CK(segrl_model_add_head(t->model, SEGRL_OUTPUT_VALUES, 0.02f, t->seed + 7));
        segrl_clear_error();
        segrl_tensor_free(v);
        CK(segrl_set_grad_enabled(prev, NULL));
        segrl_tensor_free(probe);
    }
    CK(segrl_model_parameters(t->model, 0, NULL, NULL, &t->n_params));
    t->params = xcalloc((size_t)t->n_params, sizeof *t->params);
    t->names = xcalloc((size_t)t->n_params, sizeof *t->names);
    CK(segrl_model_parameters(t->model, t->n_params, t->params, t->names, &t->n_params));
    int64_t total = 0;
    for (int64_t i = 0; i < t->n_params; i++) {
        int64_t k;
        CK(segrl_tensor_numel(t->params[i], &k));
        total += k;
    }
    printf("model: %s, %lld parameters (%lld tensors), vocab %d, d %d, %d layers, context %d, "
           "device %s\n",
           path[0] ? path : "tiny (built)", (long long)total, (long long)t->n_params, mc.vocab_size,
           mc.hidden_size, mc.num_hidden_layers, mc.max_position_embeddings,
           t->device.type == 0 ? "cpu" : "cuda");
}

static segrl_adamw_config adamw_from_config(const trainer *t, double lr, int sft) {
    segrl_adamw_config a = segrl_adamw_default();
    a.lr = lr;
    a.beta1 = ex_config_float(&t->cfg, "optim.beta1");
    a.beta2 = ex_config_float(&t->cfg, "optim.beta2");
    a.eps = ex_config_float(&t->cfg, "optim.eps");
    a.weight_decay = ex_config_float(&t->cfg, "optim.weight_decay");
    a.max_grad_norm = ex_config_float(&t->cfg, "optim.grad_clip");
    if (sft) {
        a.schedule.kind = SEGRL_LR_WARMUP_CONSTANT;
        a.schedule.warmup_steps = ex_config_int(&t->cfg, "sft.warmup_steps");
    } else {
        const char *s = ex_config_str(&t->cfg, "optim.schedule");
        a.schedule.kind = strcmp(s, "warmup-cosine") == 0     ? SEGRL_LR_WARMUP_COSINE
                          : strcmp(s, "warmup-constant") == 0 ? SEGRL_LR_WARMUP_CONSTANT
                                                              : SEGRL_LR_CONSTANT;
        a.schedule.warmup_steps = ex_config_int(&t->cfg, "optim.warmup_steps");
        a.schedule.total_steps = ex_config_int(&t->cfg, "run.steps") *
                                 ex_config_int(&t->cfg, "algo.ppo_epochs") *
                                 ex_config_int(&t->cfg, "algo.minibatches");
        if (a.schedule.total_steps < a.schedule.warmup_steps)
            a.schedule.total_steps = a.schedule.warmup_steps;
        a.schedule.min_ratio = ex_config_float(&t->cfg, "optim.min_lr_ratio");
    }
    return a;
}

/* Rank 0 writes; the others wait until the directory is complete (they may read it next). */
static void save_model(trainer *t, const char *dir) {
    if (t->rank != 0) {
        dist_barrier(t);
        return;
    }
    CK(segrl_model_save(t->model, dir));
    char a[4096], b[4096];
    const char *path = ex_config_str(&t->cfg, "model.path");
    if (path[0]) path_join(a, sizeof a, path, "tokenizer.json");
    else path_join(a, sizeof a, t->out_dir, "tokenizer.json");
    path_join(b, sizeof b, dir, "tokenizer.json");
    if (strcmp(a, b) != 0) copy_file(a, b);
    dist_barrier(t);
}

/* Where a metrics file goes: <output_dir>/name on rank 0, nowhere on the others. */
static void metrics_path(const trainer *t, const char *name, char *buf, size_t cap) {
    if (t->rank == 0) path_join(buf, cap, t->out_dir, name);
    else snprintf(buf, cap, "/dev/null");
}

// ----------------------------------------------------------------------------
// tensors

static segrl_tensor *tensor(const void *data, segrl_dtype dt, int64_t rows, int64_t cols,
                            segrl_device dev) {
    segrl_tensor *x;
    int64_t sh[2] = {rows, cols};
    CK(segrl_tensor_from_host(data, dt, cols > 0 ? 2 : 1, sh, dev, &x));
    return x;
}

static void to_host(const segrl_tensor *x, void *dst, size_t bytes) {
    CK(segrl_tensor_to_host(x, dst, bytes));
}

// ----------------------------------------------------------------------------
// data parallelism
//
// Under mpirun or a torchrun-style launch (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) the run is
// data-parallel over W processes through libsegrl_dist: every process holds the whole model and
// optimizer. Each step's global batch is the same list on every rank (the samplers are seeded
// alike) and is cut into contiguous slices — of prompts for RL (with their whole groups, trees or
// chains), of rows for the warm-up, of problems for the evaluation. Each rank generates, scores
// and backpropagates its slice; loss normalizers, group statistics and batch whitening are taken
// over the global batch; the gradients are summed over the ranks (bucketed all-reduce) and every
// rank takes the same optimizer step. W processes thus make the update one process makes with
// the same global batch (to floating-point rounding; tests/test-train-dist.sh). Rank 0 alone
// writes metrics, evaluations, checkpoints and models. docs/distributed.md.

/* The slice [lo, hi) of n items that belongs to this rank (uneven when W does not divide n). */
static void rank_slice(const trainer *t, int64_t n, int64_t *lo, int64_t *hi) {
    *lo = n * t->rank / t->world;
    *hi = n * (t->rank + 1) / t->world;
}

/* x[0..n) summed (or the maximum taken) over the ranks, in place. */
static void dist_reduce(trainer *t, double *x, int64_t n, int max) {
#ifdef SEGRL_TRAINER_DIST
    if (t->world > 1 && n > 0) {
        segrl_view v = segrl_view_1d(x, SEGRL_DTYPE_F64, segrl_cpu(), n);
        CK(segrl_comm_allreduce(t->comm, v, max ? SEGRL_REDUCE_MAX : SEGRL_REDUCE_SUM, NULL, v));
    }
#else
    (void)t, (void)x, (void)n, (void)max;
#endif
}

static void dist_barrier(trainer *t) {
#ifdef SEGRL_TRAINER_DIST
    if (t->world > 1) CK(segrl_comm_barrier(t->comm));
#else
    (void)t;
#endif
}

/* Every rank's bytes, concatenated in rank order (rank 0 writes them out); *n: the total. */
static char *dist_gather_bytes(trainer *t, const char *b, size_t nb, size_t *n) {
    double tot = (double)nb;
    dist_reduce(t, &tot, 1, 0);
    char *all = xcalloc((size_t)tot + 1, 1);
    if (t->world == 1) {
        memcpy(all, b, nb);
    } else {
#ifdef SEGRL_TRAINER_DIST
        segrl_view x = segrl_view_1d((void *)b, SEGRL_DTYPE_U8, segrl_cpu(), (int64_t)nb);
        segrl_view o = segrl_view_1d(all, SEGRL_DTYPE_U8, segrl_cpu(), (int64_t)tot);
        CK(segrl_comm_allgatherv(t->comm, x, NULL, o, NULL));
#endif
    }
    *n = (size_t)tot;
    return all;
}

#ifdef SEGRL_TRAINER_DIST
static float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint16_t f32_to_bf16(float f) { /* round to nearest even; NaN stays NaN */
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

typedef struct grad_piece {
    void *data; /* the gradient's memory */
    int32_t dtype;
    int64_t start, count, at; /* elements [start, start + count) sit at bucket[at] */
} grad_piece;

/* All-reduces bucket[0, used) and copies each piece back into its gradient. */
static void bucket_flush(trainer *t, float *bucket, int64_t used, grad_piece *pc, int64_t *npc) {
    segrl_view v = segrl_view_1d(bucket, SEGRL_DTYPE_F32, segrl_cpu(), used);
    CK(segrl_comm_allreduce(t->comm, v, SEGRL_REDUCE_SUM, NULL, v));
    for (int64_t k = 0; k < *npc; k++) {
        const grad_piece *g = &pc[k];
        if (g->dtype == SEGRL_DTYPE_F32)
            memcpy((float *)g->data + g->start, bucket + g->at, (size_t)g->count * sizeof(float));
        else
            for (int64_t e = 0; e < g->count; e++)
                ((uint16_t *)g->data)[g->start + e] = f32_to_bf16(bucket[g->at + e]);
    }
    *npc = 0;
}
#endif

/* Sums the parameters' gradients over the ranks (each rank's loss is already divided by the
 * global normalizer, so the sum is the global batch's gradient). A parameter with a gradient on
 * some rank gets a zero gradient where it has none first; one without a gradient anywhere keeps
 * none (the optimizer skips it, as in one process). CPU: the gradients are packed into f32
 * buckets of dist.bucket_mb and each bucket is one all-reduce (MPI, or the TCP star); CUDA: one
 * NCCL all-reduce per gradient, queued on the default stream, then waited for. The all-reduce
 * follows the last backward of the minibatch: the bridge exposes no per-gradient hooks, so it
 * does not overlap the backward pass. */
static void grads_allreduce(trainer *t) {
#ifdef SEGRL_TRAINER_DIST
    if (t->world <= 1) return;
    ex_timer_start(&t->t_comm);
    int64_t n = t->n_params;
    segrl_tensor **g = xcalloc((size_t)n, sizeof *g);
    double *has = xcalloc((size_t)n, sizeof *has);
    for (int64_t i = 0; i < n; i++) {
        CK(segrl_tensor_grad(t->params[i], &g[i]));
        has[i] = g[i] != NULL;
    }
    dist_reduce(t, has, n, 1);
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!has[i]) continue;
        if (!g[i]) {
            int64_t sh[8];
            int32_t nd;
            segrl_dtype dt;
            CK(segrl_tensor_shape(t->params[i], 8, sh, &nd));
            CK(segrl_tensor_dtype(t->params[i], &dt));
            CK(segrl_tensor_zeros(dt, nd, sh, t->device, &g[i]));
            CK(segrl_tensor_set_grad(t->params[i], g[i]));
        }
        int64_t k;
        CK(segrl_tensor_numel(g[i], &k));
        total += k;
    }
    if (t->device.type != SEGRL_DEVICE_CPU) {
        for (int64_t i = 0; i < n; i++) {
            if (!has[i]) continue;
            segrl_view v;
            CK(segrl_tensor_view(g[i], &v));
            CK(segrl_comm_allreduce(t->comm, v, SEGRL_REDUCE_SUM, NULL, v));
        }
        CK(segrl_comm_wait(t->comm, NULL));
    } else {
        int64_t cap = (int64_t)(ex_config_float(&t->cfg, "dist.bucket_mb") * 1048576.0 / 4.0);
        if (cap < 1024) cap = 1024;
        if (cap > total) cap = total > 0 ? total : 1;
        float *bucket = xcalloc((size_t)cap, sizeof *bucket);
        grad_piece *pc = xcalloc((size_t)(n + total / cap + 2), sizeof *pc);
        int64_t npc = 0, used = 0;
        for (int64_t i = 0; i < n; i++) {
            if (!has[i]) continue;
            segrl_view v;
            CK(segrl_tensor_view(g[i], &v));
            if (v.dtype != SEGRL_DTYPE_F32 && v.dtype != SEGRL_DTYPE_BF16)
                die("gradient all-reduce: parameter %s has dtype %d (f32 or bf16 expected)",
                    t->names[i], v.dtype);
            int64_t k;
            CK(segrl_tensor_numel(g[i], &k));
            for (int64_t done = 0; done < k;) {
                int64_t take = k - done < cap - used ? k - done : cap - used;
                if (v.dtype == SEGRL_DTYPE_F32)
                    memcpy(bucket + used, (float *)v.data + done, (size_t)take * sizeof(float));
                else
                    for (int64_t e = 0; e < take; e++)
                        bucket[used + e] = bf16_to_f32(((uint16_t *)v.data)[done + e]);
                pc[npc++] = (grad_piece){v.data, v.dtype, done, take, used};
                used += take;
                done += take;
                if (used == cap) {
                    bucket_flush(t, bucket, used, pc, &npc);
                    used = 0;
                }
            }
        }
        if (used > 0) bucket_flush(t, bucket, used, pc, &npc);
        free(bucket);
        free(pc);
    }
    for (int64_t i = 0; i < n; i++) segrl_tensor_free(g[i]);
    free(g);
    free(has);
    ex_timer_stop(&t->t_comm);
#else
    (void)t;
#endif
}

/* Rank 0's parameters on every rank (after loading or building the model: one consistent start
 * whatever each process read). */
static void params_broadcast(trainer *t) {
#ifdef SEGRL_TRAINER_DIST
    if (t->world <= 1) return;
    for (int64_t i = 0; i < t->n_params; i++) {
        segrl_view v;
        CK(segrl_tensor_view(t->params[i], &v));
        CK(segrl_comm_broadcast(t->comm, v, 0, NULL));
    }
    if (t->device.type != SEGRL_DEVICE_CPU) CK(segrl_comm_wait(t->comm, NULL));
#else
    (void)t;
#endif
}

// ----------------------------------------------------------------------------
// evaluation: greedy pass@1

/* A reward that fails or times out on a sample gives the scorer's failure score (0) and the
 * training goes on; such samples are counted in *failures (may be NULL) and reported as the
 * metric reward_failures. */
static float score_text(segrl_reward *reward, const char *prompt, const char *response,
                        const int32_t *ids, int64_t n_ids, const char *reference,
                        int64_t *failures) {
    segrl_reward_sample s;
    memset(&s, 0, sizeof s);
    s.prompt = prompt;
    s.response = response;
    s.response_ids = ids;
    s.num_response_ids = n_ids;
    s.answer = reference;
    float r = 0;
    segrl_reward_detail d;
    CK(segrl_reward_score(reward, &s, 1, NULL, &r, &d));
    if (failures && (d.reason == SEGRL_REWARD_TIMEOUT || d.reason == SEGRL_REWARD_ERROR))
        *failures += 1;
    return r;
}

/* Greedy responses to the evaluation problems; returns the fraction judged correct (reward >= 1,
 * the verifiers' "correct"). With several processes each rank answers its slice of the problems
 * and the counts are summed. When dump_path is not NULL, rank 0 writes every response there
 * (JSONL, in problem order). */
static double evaluate(trainer *t, const char *dump_path, int64_t *out_correct) {
    char *dbuf = NULL;
    size_t dlen = 0;
    FILE *dump = dump_path ? open_memstream(&dbuf, &dlen) : NULL;
    if (dump_path && !dump) die("open_memstream: %s", strerror(errno));
    int64_t e0, e1;
    rank_slice(t, t->eval_n, &e0, &e1);
    int64_t max_new = ex_config_int(&t->cfg, "eval.max_new_tokens");
    if (max_new <= 0) max_new = ex_config_int(&t->cfg, "gen.max_new_tokens");
    int64_t chunk = ex_config_int(&t->cfg, "eval.batch");
    segrl_sampling sp = segrl_sampling_default();
    sp.temperature = 0;
    sp.max_new_tokens = (int32_t)max_new;
    sp.stop_token_ids = t->stop_ids;
    sp.num_stop_token_ids = t->n_stop;
    int64_t correct = 0;
    int32_t *out = xcalloc((size_t)(chunk * max_new), sizeof *out);
    int32_t *lens = xcalloc((size_t)chunk, sizeof *lens);
    int64_t *offs = xcalloc((size_t)chunk + 1, sizeof *offs);
    int32_t *toks = NULL;
    size_t toks_cap = 0;
    int32_t prev;
    CK(segrl_set_grad_enabled(0, &prev));
    for (int64_t s = e0; s < e1; s += chunk) {
        int64_t nb = e1 - s < chunk ? e1 - s : chunk;
        offs[0] = 0;
        for (int64_t i = 0; i < nb; i++) {
            const tok_item *it = &t->test_tok[t->eval_idx[s + i]];
            int64_t pl = it->prompt_len;
            if (pl + max_new > t->ctx) pl = t->ctx - max_new > 1 ? t->ctx - max_new : 1;
            offs[i + 1] = offs[i] + pl;
            if ((size_t)offs[i + 1] > toks_cap) {
                toks_cap = (size_t)offs[i + 1] * 2;
                toks = xrealloc(toks, toks_cap * sizeof *toks);
            }
            memcpy(toks + offs[i], it->prompt + (it->prompt_len - pl), (size_t)pl * sizeof *toks);
        }
        CK(segrl_generate(t->model, nb, toks, offs, 1, &sp, t->seed, out, NULL, lens, NULL));
        for (int64_t i = 0; i < nb; i++) {
            const ex_problem *pb = &t->test.items[t->eval_idx[s + i]];
            char *resp = decode(t, out + i * max_new, lens[i]);
            float r = score_text(t->eval_reward ? t->eval_reward : t->reward, pb->question, resp,
                                 out + i * max_new, lens[i], pb->reference, NULL);
            correct += r >= 1.0f;
            if (dump) {
                fprintf(dump, "{\"index\":%lld,\"reward\":%g,\"reference\":\"",
                        (long long)t->eval_idx[s + i], r);
                for (const char *c = pb->reference; *c; c++)
                    fprintf(dump, (*c == '"' || *c == '\\') ? "\\%c" : "%c", *c);
                fputs("\",\"response\":\"", dump);
                for (const char *c = resp; *c; c++) {
                    if (*c == '\n') fputs("\\n", dump);
                    else if (*c == '"' || *c == '\\') fprintf(dump, "\\%c", *c);
                    else if ((unsigned char)*c < 0x20) fprintf(dump, "\\u%04x", *c);
                    else fputc(*c, dump);
                }
                fputs("\"}\n", dump);
            }
            free(resp);
        }
    }
    CK(segrl_set_grad_enabled(prev, NULL));
    free(out);
    free(lens);
    free(offs);
    free(toks);
    double c = (double)correct;
    dist_reduce(t, &c, 1, 0);
    correct = (int64_t)c;
    if (dump) {
        if (fclose(dump) != 0) die("evaluation dump: %s", strerror(errno));
        size_t n;
        char *all = dist_gather_bytes(t, dbuf, dlen, &n);
        FILE *f = t->rank == 0 ? fopen(dump_path, "w") : NULL;
        if (f) {
            if (fwrite(all, 1, n, f) != n) fprintf(stderr, "%s: cannot write %s\n", g_program, dump_path);
            fclose(f);
        }
        free(all);
        free(dbuf);
    }
    if (out_correct) *out_correct = correct;
    return t->eval_n ? (double)correct / (double)t->eval_n : 0.0;
}

static double eval_report(trainer *t, const char *when, int64_t step) {
    char path[4096], name[128];
    snprintf(name, sizeof name, "eval-%s.jsonl", when);
    path_join(path, sizeof path, t->out_dir, name);
    double t0 = ex_now();
    int64_t k;
    double acc = evaluate(t, path, &k);
    double lo, hi;
    ex_wilson_interval(k, t->eval_n, 1.96, &lo, &hi);
    ex_progress_log(&t->prog,
                    "eval %-10s step %5lld: test accuracy %.1f%% (%lld/%lld, 95%% CI %.1f-%.1f%%) "
                    "greedy, %.1fs",
                    when, (long long)step, 100 * acc, (long long)k, (long long)t->eval_n, 100 * lo,
                    100 * hi, ex_now() - t0);
    return acc;
}

// ----------------------------------------------------------------------------
// supervised warm-up

static void sft_run(trainer *t) {
    int64_t steps = ex_config_int(&t->cfg, "sft.steps");
    int64_t bs = ex_config_int(&t->cfg, "sft.batch_size");
    double max_s = ex_config_float(&t->cfg, "sft.max_seconds");
    int64_t eval_every = ex_config_int(&t->cfg, "sft.eval_every");
    segrl_adamw_config ac = adamw_from_config(t, ex_config_float(&t->cfg, "sft.lr"), 1);
    segrl_optimizer *opt;
    CK(segrl_adamw_create(t->params, t->names, t->n_params, &ac, &opt));
    ex_sampler smp;
    if (ex_sampler_init(&smp, t->train.n, mix64(t->seed, 101)) != 0) die("out of memory");
    char mpath[4096];
    metrics_path(t, "sft_metrics.jsonl", mpath, sizeof mpath);
    ex_metrics *m;
    CK(ex_metrics_open(mpath, -1, &m));
    int64_t *idx = xcalloc((size_t)bs, sizeof *idx);
    int64_t W = t->ctx;
    int64_t *tok = xcalloc((size_t)(bs * W), sizeof *tok);
    int64_t *tgt = xcalloc((size_t)(bs * W), sizeof *tgt);
    uint8_t *am = xcalloc((size_t)(bs * W), 1);
    float *g = xcalloc((size_t)(bs * W), sizeof *g);
    float *lp = xcalloc((size_t)(bs * W), sizeof *lp);
    ex_progress_init(&t->prog, stdout, "warm-up", 0, steps,
                     ex_config_enum(&t->cfg, "run.progress"), ex_config_int(&t->cfg, "run.log_every"));
    double t0 = ex_now();
    int64_t step = 0;
    segrl_lr_schedule sched = ac.schedule;
    for (step = 0; step < steps; step++) {
        if (max_s > 0 && ex_now() - t0 >= max_s) break;
        double ts = ex_now();
        ex_sampler_next(&smp, bs, idx);
        /* every rank draws the same global batch and trains on its slice of rows */
        int64_t g0, g1;
        rank_slice(t, bs, &g0, &g1);
        const int64_t *lidx = idx + g0;
        int64_t lb = g1 - g0 > 0 ? g1 - g0 : 0;
        int64_t w = 2, ntgt = 0;
        for (int64_t b = 0; b < lb; b++) {
            const tok_item *it = &t->train_tok[lidx[b]];
            int64_t L = it->prompt_len + it->solution_len;
            if (L > W) L = W;
            if (L > w) w = L;
        }
        /* rows: prompt + solution (+ EOS), right-padded; targets: the solution's tokens */
        memset(am, 0, (size_t)(lb * w));
        for (int64_t b = 0; b < lb; b++) {
            const tok_item *it = &t->train_tok[lidx[b]];
            for (int64_t j = 0; j < w; j++) {
                int64_t k = b * w + j;
                int64_t L = it->prompt_len + it->solution_len;
                if (L > W) L = W;
                tok[k] = 0;
                tgt[k] = -1;
                if (j < L) {
                    tok[k] = j < it->prompt_len ? it->prompt[j] : it->solution[j - it->prompt_len];
                    am[k] = 1;
                }
                if (j + 1 < L && j + 1 >= it->prompt_len) {
                    tgt[k] = it->solution[j + 1 - it->prompt_len];
                    ntgt++;
                }
            }
        }
        double gnt = (double)ntgt; /* the global number of targets: the loss's normalizer */
        dist_reduce(t, &gnt, 1, 0);
        for (int64_t k = 0; k < lb * w; k++) g[k] = tgt[k] >= 0 ? -1.0f / (float)gnt : 0.0f;
        segrl_tensor *tt = tensor(tok, SEGRL_DTYPE_I64, lb, w, t->device);
        segrl_tensor *mt = tensor(am, SEGRL_DTYPE_U8, lb, w, t->device);
        segrl_tensor *gt = tensor(tgt, SEGRL_DTYPE_I64, lb, w, t->device);
        segrl_tensor *gg = tensor(g, SEGRL_DTYPE_F32, lb, w, t->device);
        segrl_tensor *logits, *logp;
        CK(segrl_optimizer_zero_grad(opt));
        CK(segrl_model_forward(t->model, tt, mt, SEGRL_OUTPUT_LOGITS, &logits));
        CK(segrl_autograd_logprobs(logits, gt, NULL, &logp, NULL));
        CK(segrl_tensor_backward(logp, gg));
        to_host(logp, lp, (size_t)(lb * w) * sizeof *lp);
        grads_allreduce(t);
        segrl_step_info info;
        CK(segrl_optimizer_step(opt, 1.0, &info));
        double loss = 0;
        for (int64_t k = 0; k < lb * w; k++)
            if (tgt[k] >= 0) loss -= lp[k];
        dist_reduce(t, &loss, 1, 0);
        loss /= gnt > 0 ? gnt : 1;
        ntgt = (int64_t)gnt;
        segrl_tensor_free(tt);
        segrl_tensor_free(mt);
        segrl_tensor_free(gt);
        segrl_tensor_free(gg);
        segrl_tensor_free(logits);
        segrl_tensor_free(logp);
        double dt = ex_now() - ts;
        ex_metrics_set(m, "sft_loss", loss);
        ex_metrics_set(m, "lr", info.lr);
        ex_metrics_set(m, "grad_norm", info.grad_norm);
        ex_metrics_set(m, "tokens_per_s", (double)ntgt / (dt > 0 ? dt : 1e-9));
        if (eval_every > 0 && (step + 1) % eval_every == 0 && step + 1 < steps) {
            char when[32];
            snprintf(when, sizeof when, "sft-%lld", (long long)(step + 1));
            ex_metrics_set(m, "test_accuracy", eval_report(t, when, step + 1));
        }
        CK(ex_metrics_write(m, step + 1));
        if (max_s > 0) { /* a time limit: the bar and ETA follow the steps it leaves room for */
            double el = ex_now() - t0, per = el / (double)(step + 1);
            int64_t est = step + 1 + (int64_t)((max_s - el) / (per > 0 ? per : 1e-9)) + 1;
            t->prog.total = est < steps ? est : steps;
        }
        char extra[96];
        snprintf(extra, sizeof extra, "loss %.3f", loss);
        ex_progress_update(&t->prog, step + 1, extra);
    }
    ex_progress_finish(&t->prog);
    (void)sched;
    double secs = ex_now() - t0;
    printf("warm-up: %lld steps of %lld sequences in %.1fs\n", (long long)step, (long long)bs, secs);
    double acc = eval_report(t, "after-sft", step);
    ex_metrics_set(m, "test_accuracy", acc);
    ex_metrics_set(m, "sft_seconds", secs);
    CK(ex_metrics_write(m, step));
    ex_metrics_close(m);
    char sdir[4096];
    path_join(sdir, sizeof sdir, t->out_dir, "sft-model");
    save_model(t, sdir);
    printf("warm-up model saved to %s\n", sdir);
    if (ex_config_bool(&t->cfg, "run.plot") && t->rank == 0) {
        const char *keys[] = {"sft_loss", "test_accuracy", "tokens_per_s", "grad_norm"};
        char png[4096];
        path_join(png, sizeof png, t->out_dir, "sft_metrics.png");
        if (ex_plot_metrics(mpath, keys, 4, "step", png) != SEGRL_OK)
            printf("plot: %s\n", segrl_last_error());
    }
    segrl_optimizer_free(opt);
    ex_sampler_free(&smp);
    free(idx);
    free(tok);
    free(tgt);
    free(am);
    free(g);
    free(lp);
}

// ----------------------------------------------------------------------------
// rollouts: the generator and scoring callbacks

static segrl_status score_cb(void *user, int64_t prompt, const int32_t *tokens, int64_t n_tokens,
                             int64_t prompt_len, float *out_reward) {
    trainer *t = user;
    ex_timer_start(&t->t_score);
    const ex_problem *pb = &t->train.items[t->batch_items[t->batch_base + prompt]];
    char *resp = decode(t, tokens + prompt_len, n_tokens - prompt_len);
    *out_reward = score_text(t->reward, pb->question, resp, tokens + prompt_len,
                             n_tokens - prompt_len, pb->reference, &t->reward_failures_step);
    free(resp);
    ex_timer_stop(&t->t_score);
    return SEGRL_OK;
}

static void cache_clear(trainer *t) {
    for (int64_t i = 0; i < t->n_cache; i++) segrl_gen_free(t->cache[i]);
    free(t->cache);
    free(t->cache_hash);
    free(t->cache_len);
    t->cache = NULL;
    t->cache_hash = NULL;
    t->cache_len = NULL;
    t->n_cache = 0;
}

/* Samples every request: a request's prefix is taken from the last round's states when one holds
 * exactly those tokens (an SPO-tree node whose children are now asked for: its KV cache is
 * reused), else prefilled; it is forked into n children (sharing the cache), and all children
 * are extended together in batches. The children become the cache of the next round. */
static segrl_status gen_cb(void *user, segrl_rollout *r, const segrl_gen_request *req, int64_t n) {
    trainer *t = user;
    segrl_gen_state **base = xcalloc((size_t)n, sizeof *base);
    int64_t *need = xcalloc((size_t)n, sizeof *need), n_need = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t h = hash_tokens(req[i].prefix, req[i].prefix_len);
        for (int64_t c = 0; c < t->n_cache && !base[i]; c++) {
            if (!t->cache[c] || t->cache_hash[c] != h || t->cache_len[c] != req[i].prefix_len)
                continue;
            int32_t *tk = xcalloc((size_t)req[i].prefix_len, sizeof *tk);
            int64_t cnt;
            CK(segrl_gen_tokens(t->cache[c], req[i].prefix_len, tk, &cnt));
            if (cnt == req[i].prefix_len &&
                memcmp(tk, req[i].prefix, (size_t)cnt * sizeof *tk) == 0) {
                base[i] = t->cache[c];
                t->cache[c] = NULL; /* taken */
            }
            free(tk);
        }
        if (!base[i]) need[n_need++] = i;
    }
    if (n_need) {
        int64_t *offs = xcalloc((size_t)n_need + 1, sizeof *offs);
        for (int64_t k = 0; k < n_need; k++) offs[k + 1] = offs[k] + req[need[k]].prefix_len;
        int32_t *tk = xcalloc((size_t)offs[n_need], sizeof *tk);
        for (int64_t k = 0; k < n_need; k++)
            memcpy(tk + offs[k], req[need[k]].prefix, (size_t)req[need[k]].prefix_len * sizeof *tk);
        segrl_gen_state **made = xcalloc((size_t)n_need, sizeof *made);
        /* prefill in chunks (bounded memory) */
        for (int64_t s = 0; s < n_need; s += 256) {
            int64_t nb = n_need - s < 256 ? n_need - s : 256;
            int64_t *o2 = xcalloc((size_t)nb + 1, sizeof *o2);
            for (int64_t k = 0; k <= nb; k++) o2[k] = offs[s + k] - offs[s];
            CK(segrl_gen_create(t->model, nb, tk + offs[s], o2, NULL, made + s));
            free(o2);
        }
        for (int64_t k = 0; k < n_need; k++) base[need[k]] = made[k];
        free(made);
        free(tk);
        free(offs);
    }
    cache_clear(t);
    /* fork and extend */
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) total += req[i].n;
    segrl_gen_state **kids = xcalloc((size_t)total, sizeof *kids);
    int64_t *kid_req = xcalloc((size_t)total, sizeof *kid_req);
    int64_t o = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t *seeds = xcalloc((size_t)req[i].n, sizeof *seeds);
        for (int32_t j = 0; j < req[i].n; j++) seeds[j] = mix64(req[i].seed, (uint64_t)j);
        CK(segrl_gen_fork(base[i], req[i].n, seeds, kids + o));
        for (int32_t j = 0; j < req[i].n; j++) kid_req[o + j] = i;
        o += req[i].n;
        free(seeds);
        segrl_gen_free(base[i]);
    }
    free(base);
    free(need);
    segrl_sampling sp = segrl_sampling_default();
    sp.temperature = (float)ex_config_float(&t->cfg, "gen.temperature");
    sp.top_p = (float)ex_config_float(&t->cfg, "gen.top_p");
    sp.top_k = (int32_t)ex_config_int(&t->cfg, "gen.top_k");
    sp.stop_token_ids = t->stop_ids;
    sp.num_stop_token_ids = t->n_stop;
    /* batches of children with the same limit */
    segrl_gen_state **batch = xcalloc((size_t)total, sizeof *batch);
    uint8_t *done = xcalloc((size_t)total, 1);
    for (int64_t a = 0; a < total; a++) {
        if (done[a]) continue;
        int32_t lim = req[kid_req[a]].max_new_tokens;
        int64_t nb = 0;
        for (int64_t b = a; b < total && nb < 512; b++)
            if (!done[b] && req[kid_req[b]].max_new_tokens == lim) {
                batch[nb++] = kids[b];
                done[b] = 1;
            }
        sp.max_new_tokens = lim;
        CK(segrl_gen_extend(t->model, batch, nb, &sp));
    }
    free(batch);
    free(done);
    /* hand the samples back; keep the children as the next round's cache */
    int32_t *tk = NULL;
    float *lp = NULL;
    size_t cap = 0;
    t->cache = kids;
    t->cache_hash = xcalloc((size_t)total, sizeof *t->cache_hash);
    t->cache_len = xcalloc((size_t)total, sizeof *t->cache_len);
    t->n_cache = total;
    o = 0;
    for (int64_t i = 0; i < n; i++) {
        for (int32_t j = 0; j < req[i].n; j++, o++) {
            int64_t pl, tl, cnt;
            CK(segrl_gen_length(kids[o], &pl, &tl));
            if ((size_t)tl > cap) {
                cap = (size_t)tl * 2;
                tk = xrealloc(tk, cap * sizeof *tk);
                lp = xrealloc(lp, cap * sizeof *lp);
            }
            CK(segrl_gen_tokens(kids[o], (int64_t)cap, tk, &cnt));
            int64_t ng = tl - req[i].prefix_len;
            CK(segrl_gen_logprobs(kids[o], (int64_t)cap, lp, &cnt));
            /* the state's log-probs cover everything it generated since its prompt; this
             * request's new tokens are the last ng of them */
            segrl_finish fin;
            CK(segrl_gen_finish_reason(kids[o], &fin));
            int finished = fin == SEGRL_FINISH_STOP_TOKEN || fin == SEGRL_FINISH_STOP_STRING;
            segrl_status st = segrl_rollout_put(r, req[i].index, j, tk + req[i].prefix_len,
                                                lp + (cnt - ng), ng, finished);
            if (st != SEGRL_OK) {
                free(tk);
                free(lp);
                return st;
            }
            t->cache_hash[o] = hash_tokens(tk, tl);
            t->cache_len[o] = tl;
            t->gen_tokens_step += ng;
        }
    }
    free(tk);
    free(lp);
    free(kid_req);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// RL update

typedef struct upd_batch {
    int64_t B, W;      /* sequences, padded width (the longest sequence) */
    int64_t *len;      /* (B) tokens of each sequence */
    int64_t *tok;      /* (B, W) tokens, 0 padded */
    uint8_t *am;       /* (B, W) attention mask */
    int64_t *tgt;      /* (B, W) position t: the token t+1 when it is trained, else -1 */
    float *old_logp;   /* (B, W) shifted like tgt */
    float *adv;        /* (B, W) */
    uint8_t *lmask;    /* (B, W) loss mask (shifted) */
    uint8_t *pmask;    /* (B, W) SPO probability mask, or NULL */
    float *rewards;    /* (B) */
    int64_t *gprompt;  /* (B) global prompt index of each row (its group) */
    float *old_values; /* (B, W) ppo */
    float *returns;    /* (B, W) ppo */
} upd_batch;

static void upd_free(upd_batch *u) {
    free(u->len);
    free(u->tok);
    free(u->am);
    free(u->tgt);
    free(u->old_logp);
    free(u->adv);
    free(u->lmask);
    free(u->pmask);
    free(u->rewards);
    free(u->gprompt);
    free(u->old_values);
    free(u->returns);
    memset(u, 0, sizeof *u);
}

/* qsort order of row indices by their prompt, then by position (a stable sort) */
static const int64_t *g_sort_prompt;
static int by_prompt_cmp(const void *a, const void *b) {
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    int64_t pi = g_sort_prompt[i], pj = g_sort_prompt[j];
    return pi < pj ? -1 : pi > pj ? 1 : (i > j) - (i < j);
}

/* The packed rollout batch as padded, shifted arrays: position t of row b predicts token t+1.
 * Rows are put in prompt order (SPO-tree's episodes come level by level), so that a prompt's
 * samples are adjacent and every rank's rows of a minibatch are one run. */
static void upd_build(upd_batch *u, const segrl_rollout_batch *b, const float *tok_adv,
                      int64_t prompt_base) {
    memset(u, 0, sizeof *u);
    u->B = b->num_seqs;
    u->W = 2;
    for (int64_t i = 0; i < u->B; i++) {
        int64_t L = b->offsets[i + 1] - b->offsets[i];
        if (L > u->W) u->W = L;
    }
    size_t BW = (size_t)(u->B * u->W);
    u->len = xcalloc((size_t)u->B, sizeof *u->len);
    u->tok = xcalloc(BW, sizeof *u->tok);
    u->am = xcalloc(BW, 1);
    u->tgt = xcalloc(BW, sizeof *u->tgt);
    u->old_logp = xcalloc(BW, sizeof *u->old_logp);
    u->adv = xcalloc(BW, sizeof *u->adv);
    u->lmask = xcalloc(BW, 1);
    if (b->prob_mask) u->pmask = xcalloc(BW, 1);
    u->rewards = xcalloc((size_t)u->B, sizeof *u->rewards);
    u->gprompt = xcalloc((size_t)u->B, sizeof *u->gprompt);
    int64_t *order = xcalloc((size_t)u->B, sizeof *order);
    for (int64_t i = 0; i < u->B; i++) order[i] = i;
    g_sort_prompt = b->prompt;
    qsort(order, (size_t)u->B, sizeof *order, by_prompt_cmp);
    for (int64_t row = 0; row < u->B; row++) {
        int64_t i = order[row];
        int64_t o = b->offsets[i], L = b->offsets[i + 1] - o;
        u->len[row] = L;
        u->rewards[row] = b->rewards[i];
        u->gprompt[row] = prompt_base + b->prompt[i];
        for (int64_t j = 0; j < u->W; j++) {
            int64_t k = row * u->W + j;
            u->tgt[k] = -1;
            if (j < L) {
                u->tok[k] = b->tokens[o + j];
                u->am[k] = 1;
            }
            if (j + 1 < L && b->mask[o + j + 1]) {
                u->tgt[k] = b->tokens[o + j + 1];
                u->old_logp[k] = b->logprobs[o + j + 1];
                u->adv[k] = tok_adv ? tok_adv[o + j + 1] : 0.0f;
                u->lmask[k] = 1;
                if (u->pmask) u->pmask[k] = b->prob_mask[o + j + 1];
            }
        }
    }
    free(order);
}

/* Rows [r0, r1) of a (B, W) array, cut to width w, as a new tensor. */
static segrl_tensor *rows_tensor(const void *a, segrl_dtype dt, int64_t W, int64_t r0, int64_t r1,
                                 int64_t w, segrl_device dev) {
    size_t es = segrl_dtype_size(dt);
    char *buf = xcalloc((size_t)((r1 - r0) * w), es);
    for (int64_t r = r0; r < r1; r++)
        memcpy(buf + (size_t)((r - r0) * w) * es, (const char *)a + (size_t)(r * W) * es,
               (size_t)w * es);
    segrl_tensor *x = tensor(buf, dt, r1 - r0, w, dev);
    free(buf);
    return x;
}

static int64_t rows_width(const upd_batch *u, int64_t r0, int64_t r1) {
    int64_t w = 2;
    for (int64_t r = r0; r < r1; r++)
        if (u->len[r] > w) w = u->len[r];
    return w;
}

/* Forward of rows [r0, r1): log-probs and entropies of the targets (and values for ppo). */
static void forward_rows(trainer *t, segrl_model *model, const upd_batch *u, int64_t r0, int64_t r1,
                         int want_values, segrl_tensor **logp, segrl_tensor **ent,
                         segrl_tensor **values) {
    int64_t w = rows_width(u, r0, r1);
    segrl_tensor *tt = rows_tensor(u->tok, SEGRL_DTYPE_I64, u->W, r0, r1, w, t->device);
    segrl_tensor *mt = rows_tensor(u->am, SEGRL_DTYPE_U8, u->W, r0, r1, w, t->device);
    segrl_tensor *gt = rows_tensor(u->tgt, SEGRL_DTYPE_I64, u->W, r0, r1, w, t->device);
    segrl_tensor *logits = NULL;
    if (want_values) {
        segrl_tensor *hid;
        CK(segrl_model_forward(model, tt, mt, SEGRL_OUTPUT_HIDDEN, &hid));
        CK(segrl_model_head(model, hid, mt, SEGRL_OUTPUT_LOGITS, &logits));
        CK(segrl_model_head(model, hid, mt, SEGRL_OUTPUT_VALUES, values));
        segrl_tensor_free(hid);
    } else {
        CK(segrl_model_forward(model, tt, mt, SEGRL_OUTPUT_LOGITS, &logits));
    }
    segrl_logprob_opts lo = segrl_logprob_opts_default();
    double temp = ex_config_float(&t->cfg, "gen.temperature");
    lo.temperature = temp > 0 ? (float)temp : 1.0f;
    CK(segrl_autograd_logprobs(logits, gt, &lo, logp, ent));
    segrl_tensor_free(logits);
    segrl_tensor_free(tt);
    segrl_tensor_free(mt);
    segrl_tensor_free(gt);
}

typedef struct upd_stats {
    double loss, pg_loss, kl, entropy, value_loss, clip_lo, clip_hi, dual, approx_kl, grad_norm, lr;
    double tokens, updates, active;
    double skipped_nonfinite; /* updates skipped: a non-finite loss or loss input */
    double skipped_grad;      /* updates the optimizer skipped: a non-finite gradient norm */
} upd_stats;

static segrl_policy_loss_opts loss_opts(const trainer *t) {
    segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
    static const int modes[] = {SEGRL_PG_PPO, SEGRL_PG_GSPO, SEGRL_PG_CISPO, SEGRL_PG_REINFORCE};
    o.mode = modes[ex_config_enum(&t->cfg, "loss.mode")];
    o.clip_low = (float)ex_config_float(&t->cfg, "loss.clip_eps_low");
    o.clip_high = (float)ex_config_float(&t->cfg, "loss.clip_eps_high");
    o.clip_c = (float)ex_config_float(&t->cfg, "loss.dual_clip_c");
    static const int kls[] = {SEGRL_KL_NONE, SEGRL_KL_K1, SEGRL_KL_ABS, SEGRL_KL_K2, SEGRL_KL_K3};
    o.kl_type = kls[ex_config_enum(&t->cfg, "loss.kl_type")];
    o.kl_coef = (float)ex_config_float(&t->cfg, "loss.kl_coef");
    if (o.kl_coef == 0) o.kl_type = SEGRL_KL_NONE;
    o.entropy_coef = (float)ex_config_float(&t->cfg, "loss.entropy_coef");
    static const int aggs[] = {SEGRL_AGG_TOKEN_MEAN, SEGRL_AGG_SEQ_MEAN_TOKEN_MEAN,
                               SEGRL_AGG_SEQ_MEAN_TOKEN_SUM, SEGRL_AGG_SEQ_MEAN_TOKEN_SUM_NORM};
    o.agg = aggs[ex_config_enum(&t->cfg, "loss.agg")];
    /* Dr. GRPO's aggregation unless the user chose one */
    if (t->estimator == EST_DRGRPO && ex_config_source(&t->cfg, "loss.agg") == EX_CFG_FROM_DEFAULT)
        o.agg = SEGRL_AGG_SEQ_MEAN_TOKEN_SUM_NORM;
    if (t->estimator == EST_PPO) {
        o.value_coef = (float)ex_config_float(&t->cfg, "loss.value_coef");
        o.value_clip = (float)ex_config_float(&t->cfg, "loss.value_clip");
    }
    return o;
}

/* The trained tokens and the sequences with at least one of them in rows [r0, r1) (a minibatch's
 * rows on this rank): summed over the ranks, the aggregation's normalizer, so that the
 * micro-batches of every rank add up to the minibatch's loss. */
static void loss_counts(const upd_batch *u, int64_t r0, int64_t r1, double *tokens, double *seqs) {
    double nt = 0, ns = 0;
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = 0;
        for (int64_t j = 0; j < u->W; j++)
            c += u->lmask[r * u->W + j] && (!u->pmask || u->pmask[r * u->W + j]);
        nt += (double)c;
        ns += c > 0;
    }
    *tokens = nt;
    *seqs = ns;
}

static double normalizer(const trainer *t, double tokens, double seqs, int agg) {
    switch (agg) {
    case SEGRL_AGG_TOKEN_MEAN: return tokens;
    case SEGRL_AGG_SEQ_MEAN_TOKEN_SUM_NORM:
        return (double)ex_config_int(&t->cfg, "gen.max_new_tokens"); /* Dr. GRPO's constant */
    default: return seqs;
    }
}

static void ppo_values_and_gae(trainer *t, upd_batch *u, int64_t micro) {
    size_t BW = (size_t)(u->B * u->W);
    u->old_values = xcalloc(BW, sizeof *u->old_values);
    u->returns = xcalloc(BW, sizeof *u->returns);
    int32_t prev;
    CK(segrl_set_grad_enabled(0, &prev));
    for (int64_t r0 = 0; r0 < u->B; r0 += micro) {
        int64_t r1 = r0 + micro < u->B ? r0 + micro : u->B;
        segrl_tensor *lp, *v;
        forward_rows(t, t->model, u, r0, r1, 1, &lp, NULL, &v);
        int64_t w = rows_width(u, r0, r1);
        float *h = xcalloc((size_t)((r1 - r0) * w), sizeof *h);
        to_host(v, h, (size_t)((r1 - r0) * w) * sizeof *h);
        for (int64_t r = r0; r < r1; r++)
            for (int64_t j = 0; j < w; j++)
                u->old_values[r * u->W + j] = u->lmask[r * u->W + j] ? h[(r - r0) * w + j] : 0.0f;
        free(h);
        segrl_tensor_free(lp);
        segrl_tensor_free(v);
    }
    CK(segrl_set_grad_enabled(prev, NULL));
    /* the outcome reward sits on each sequence's last trained token */
    float *rw = xcalloc(BW, sizeof *rw);
    for (int64_t r = 0; r < u->B; r++) {
        int64_t last = -1;
        for (int64_t j = 0; j < u->W; j++)
            if (u->lmask[r * u->W + j]) last = j;
        if (last >= 0) rw[r * u->W + last] = u->rewards[r];
    }
    segrl_layout lay = segrl_layout_padded();
    segrl_device cpu = segrl_cpu();
    segrl_view vr = segrl_view_2d(rw, SEGRL_DTYPE_F32, cpu, u->B, u->W);
    segrl_view vv = segrl_view_2d(u->old_values, SEGRL_DTYPE_F32, cpu, u->B, u->W);
    segrl_view vm = segrl_view_2d(u->lmask, SEGRL_DTYPE_U8, cpu, u->B, u->W);
    segrl_view va = segrl_view_2d(u->adv, SEGRL_DTYPE_F32, cpu, u->B, u->W);
    segrl_view vR = segrl_view_2d(u->returns, SEGRL_DTYPE_F32, cpu, u->B, u->W);
    size_t ws = 0, ws2 = 0;
    CK(segrl_workspace_size(SEGRL_OP_GAE, cpu, u->B, (int64_t)BW, 0, &ws));
    CK(segrl_workspace_size(SEGRL_OP_WHITEN, cpu, u->B, (int64_t)BW, 1, &ws2));
    if (ws2 > ws) ws = ws2;
    segrl_exec ex = {0};
    ex.workspace = ws ? xcalloc(ws, 1) : NULL;
    ex.workspace_bytes = ws;
    CK(segrl_gae(&lay, vr, vv, vm, (float)ex_config_float(&t->cfg, "algo.gamma"),
                 (float)ex_config_float(&t->cfg, "algo.lambda"), &ex, va, vR));
    segrl_whiten_opts wo = segrl_whiten_opts_default();
#ifdef SEGRL_TRAINER_DIST
    if (t->world > 1) /* the statistics of every rank's tokens */
        CK(segrl_dist_whiten(t->comm, &lay, va, vm, segrl_view_none(), 1, &wo, va));
    else
#endif
        CK(segrl_whiten(&lay, va, vm, segrl_view_none(), 1, &wo, &ex, va));
    free(ex.workspace);
    free(rw);
}

static void update(trainer *t, upd_batch *u, upd_stats *st) {
    int64_t epochs = ex_config_int(&t->cfg, "algo.ppo_epochs");
    int64_t mbs = ex_config_int(&t->cfg, "algo.minibatches");
    int64_t P = ex_config_int(&t->cfg, "algo.batch_prompts");
    if (mbs > P) mbs = P;
    int64_t micro = ex_config_int(&t->cfg, "algo.micro_batch");
    if (micro <= 0) micro = u->B > 0 ? u->B : 1;
    segrl_policy_loss_opts lo = loss_opts(t);
    int ppo = t->estimator == EST_PPO;
    if (ppo) ppo_values_and_gae(t, u, micro);
    memset(st, 0, sizeof *st);
    /* Minibatches and their normalizers are fixed on the whole (global) batch. A minibatch is the
     * samples of a contiguous range of the batch's prompts, [P mb / mbs, P (mb + 1) / mbs): a
     * group never straddles two minibatches, and a rank's rows of minibatch mb are a contiguous
     * run of its rows (its prompts are a contiguous range too). Rows that do not come in prompt
     * order (a replay batch) are cut by row count instead.
     * When the loss is the policy term alone (no KL, entropy or value term), a sequence whose
     * advantages are all 0 adds exactly 0 to the loss and the gradient: it is left out of the
     * forward/backward (in GRPO most groups have equal rewards), which changes nothing but the
     * time and the statistics (kl, entropy, clip fractions are then over the sequences with a
     * signal). */
    int64_t *mb_lo = xcalloc((size_t)mbs + 1, sizeof *mb_lo);
    int64_t *mb_hi = xcalloc((size_t)mbs + 1, sizeof *mb_hi);
    double *mb_norm = xcalloc((size_t)mbs + 1, sizeof *mb_norm);
    double *cnt = xcalloc((size_t)mbs * 3 + 1, sizeof *cnt); /* tokens, seqs, rows per minibatch */
    int by_prompt = 1;
    for (int64_t r = 0; r < u->B && by_prompt; r++)
        by_prompt = u->gprompt[r] >= 0 && u->gprompt[r] < P &&
                    (r == 0 || u->gprompt[r] >= u->gprompt[r - 1]);
    for (int64_t mb = 0, r = 0; mb < mbs; mb++) {
        if (by_prompt) {
            mb_lo[mb] = r;
            while (r < u->B && u->gprompt[r] * mbs / P == mb) r++;
            mb_hi[mb] = r;
        } else {
            mb_lo[mb] = u->B * mb / mbs;
            mb_hi[mb] = u->B * (mb + 1) / mbs;
        }
        loss_counts(u, mb_lo[mb], mb_hi[mb], &cnt[3 * mb], &cnt[3 * mb + 1]);
    }
    int skip_zero = !ppo && !t->ref && lo.entropy_coef == 0;
    if (skip_zero) {
        int64_t *kept_before = xcalloc((size_t)u->B + 1, sizeof *kept_before);
        int64_t o = 0;
        for (int64_t r = 0; r < u->B; r++) {
            kept_before[r] = o;
            int any = 0;
            for (int64_t j = 0; j < u->W && !any; j++)
                any = u->lmask[r * u->W + j] && u->adv[r * u->W + j] != 0.0f;
            if (!any) continue;
            if (o != r) { /* move row r to row o */
                size_t W = (size_t)u->W;
                memmove(u->tok + o * W, u->tok + r * W, W * sizeof *u->tok);
                memmove(u->am + o * W, u->am + r * W, W);
                memmove(u->tgt + o * W, u->tgt + r * W, W * sizeof *u->tgt);
                memmove(u->old_logp + o * W, u->old_logp + r * W, W * sizeof *u->old_logp);
                memmove(u->adv + o * W, u->adv + r * W, W * sizeof *u->adv);
                memmove(u->lmask + o * W, u->lmask + r * W, W);
                if (u->pmask) memmove(u->pmask + o * W, u->pmask + r * W, W);
                u->len[o] = u->len[r];
                u->rewards[o] = u->rewards[r];
                u->gprompt[o] = u->gprompt[r];
            }
            o++;
        }
        kept_before[u->B] = o;
        for (int64_t mb = 0; mb < mbs; mb++) {
            mb_lo[mb] = kept_before[mb_lo[mb]];
            mb_hi[mb] = kept_before[mb_hi[mb]];
        }
        st->active = (double)o;
        u->B = o;
        free(kept_before);
    } else {
        st->active = (double)u->B;
    }
    /* the global counts: every rank takes the same decisions (skip a minibatch, its normalizer) */
    for (int64_t mb = 0; mb < mbs; mb++) cnt[3 * mb + 2] = (double)(mb_hi[mb] - mb_lo[mb]);
    dist_reduce(t, cnt, 3 * mbs, 0);
    for (int64_t mb = 0; mb < mbs; mb++)
        mb_norm[mb] = normalizer(t, cnt[3 * mb], cnt[3 * mb + 1], lo.agg);
    for (int64_t e = 0; e < epochs; e++) {
        for (int64_t mb = 0; mb < mbs; mb++) {
            int64_t m0 = mb_lo[mb], m1 = mb_hi[mb];
            if (cnt[3 * mb + 2] == 0) continue; /* no sequence with a signal: no update */
            lo.normalizer = mb_norm[mb];
            if (lo.normalizer <= 0) continue; /* nothing to train on */
            CK(segrl_optimizer_zero_grad(t->opt));
            double mloss = 0;
            int nonfinite = 0;
            for (int64_t r0 = m0; r0 < m1 && !nonfinite; r0 += micro) {
                int64_t r1 = r0 + micro < m1 ? r0 + micro : m1;
                int64_t w = rows_width(u, r0, r1);
                segrl_tensor *logp, *ent, *vals = NULL, *ref_logp = NULL;
                forward_rows(t, t->model, u, r0, r1, ppo, &logp, &ent, ppo ? &vals : NULL);
                if (t->ref) {
                    int32_t prev;
                    segrl_tensor *rent;
                    CK(segrl_set_grad_enabled(0, &prev));
                    forward_rows(t, t->ref, u, r0, r1, 0, &ref_logp, &rent, NULL);
                    CK(segrl_set_grad_enabled(prev, NULL));
                    segrl_tensor_free(rent);
                }
                segrl_tensor *old = rows_tensor(u->old_logp, SEGRL_DTYPE_F32, u->W, r0, r1, w, t->device);
                segrl_tensor *adv = rows_tensor(u->adv, SEGRL_DTYPE_F32, u->W, r0, r1, w, t->device);
                segrl_tensor *msk = rows_tensor(u->lmask, SEGRL_DTYPE_U8, u->W, r0, r1, w, t->device);
                segrl_tensor *pm = u->pmask ? rows_tensor(u->pmask, SEGRL_DTYPE_U8, u->W, r0, r1, w, t->device) : NULL;
                segrl_tensor *ov = NULL, *ret = NULL;
                if (ppo) {
                    ov = rows_tensor(u->old_values, SEGRL_DTYPE_F32, u->W, r0, r1, w, t->device);
                    ret = rows_tensor(u->returns, SEGRL_DTYPE_F32, u->W, r0, r1, w, t->device);
                }
                segrl_autograd_policy_inputs in;
                memset(&in, 0, sizeof in);
                in.logp = logp;
                in.old_logp = old;
                in.advantages = adv;
                in.ref_logp = ref_logp;
                in.entropy = ent;
                in.values = vals;
                in.old_values = ov;
                in.returns = ret;
                in.mask = msk;
                in.prob_mask = pm;
                segrl_tensor *loss = NULL;
                segrl_policy_loss_stats ps;
                /* a non-finite loss input (the loss's content check) or loss skips this update:
                 * reported, never applied */
                segrl_status ls = segrl_autograd_policy_loss(&in, &lo, &loss, &ps);
                if (ls != SEGRL_OK && !strstr(segrl_last_error(), "non-finite"))
                    die("segrl_autograd_policy_loss: %s: %s", segrl_status_str(ls),
                        segrl_last_error());
                if (ls != SEGRL_OK || !isfinite(ps.loss)) {
                    fprintf(stderr, "update: non-finite loss (%s): update skipped\n",
                            ls != SEGRL_OK ? segrl_last_error() : "loss value");
                    nonfinite = 1;
                    segrl_tensor *fr[] = {loss, logp, ent, vals, ref_logp, old, adv, msk, pm, ov, ret};
                    for (size_t k = 0; k < sizeof fr / sizeof fr[0]; k++) segrl_tensor_free(fr[k]);
                    break;
                }
                CK(segrl_tensor_backward(loss, NULL));
                mloss += ps.loss;
                double nt = ps.num_tokens;
                st->pg_loss += ps.pg_loss;
                st->kl += ps.kl_mean * nt;
                st->entropy += ps.entropy_mean * nt;
                st->value_loss += ps.value_loss;
                st->clip_lo += ps.clip_frac_low * nt;
                st->clip_hi += ps.clip_frac_high * nt;
                st->dual += ps.dual_clip_frac * nt;
                st->approx_kl += ps.approx_kl * nt;
                st->tokens += nt;
                segrl_tensor *fr[] = {loss, logp, ent, vals, ref_logp, old, adv, msk, pm, ov, ret};
                for (size_t k = 0; k < sizeof fr / sizeof fr[0]; k++) segrl_tensor_free(fr[k]);
            }
            double bad = nonfinite; /* any rank's: every rank skips this update */
            dist_reduce(t, &bad, 1, 1);
            if (bad > 0) {
                CK(segrl_optimizer_zero_grad(t->opt)); /* drop what earlier micro-batches added */
                st->skipped_nonfinite += 1;
                continue;
            }
            grads_allreduce(t);
            segrl_step_info info;
            CK(segrl_optimizer_step(t->opt, 1.0, &info));
            if (info.skipped) st->skipped_grad += 1;
            st->loss += mloss;
            st->grad_norm += info.grad_norm;
            st->lr = info.lr;
            st->updates += 1;
        }
    }
    free(mb_lo);
    free(mb_hi);
    free(mb_norm);
    free(cnt);
    /* the additive statistics over the ranks (the loss terms are each rank's share of the
     * minibatch's loss; kl ... approx_kl are token-weighted sums until divided below) */
    double sums[] = {st->loss, st->pg_loss, st->value_loss, st->kl, st->entropy, st->clip_lo,
                     st->clip_hi, st->dual, st->approx_kl, st->tokens, st->active};
    dist_reduce(t, sums, (int64_t)(sizeof sums / sizeof sums[0]), 0);
    st->loss = sums[0], st->pg_loss = sums[1], st->value_loss = sums[2], st->kl = sums[3];
    st->entropy = sums[4], st->clip_lo = sums[5], st->clip_hi = sums[6], st->dual = sums[7];
    st->approx_kl = sums[8], st->tokens = sums[9], st->active = sums[10];
    if (st->updates > 0) {
        st->loss /= st->updates;
        st->pg_loss /= st->updates;
        st->value_loss /= st->updates;
        st->grad_norm /= st->updates;
    }
    if (st->tokens > 0) {
        st->kl /= st->tokens;
        st->entropy /= st->tokens;
        st->clip_lo /= st->tokens;
        st->clip_hi /= st->tokens;
        st->dual /= st->tokens;
        st->approx_kl /= st->tokens;
    }
}

// ----------------------------------------------------------------------------
// one RL step

static segrl_rollout_config rollout_config(trainer *t, int64_t step) {
    static const int methods[] = {SEGRL_ROLLOUT_GROUP,   SEGRL_ROLLOUT_GROUP,     SEGRL_ROLLOUT_GROUP,
                                  SEGRL_ROLLOUT_GROUP,   SEGRL_ROLLOUT_GROUP,     SEGRL_ROLLOUT_VINEPPO,
                                  SEGRL_ROLLOUT_SPO_CHAIN, SEGRL_ROLLOUT_SPO_TREE};
    segrl_rollout_config rc = segrl_rollout_config_default(methods[t->estimator]);
    rc.group_size = (int32_t)ex_config_int(&t->cfg, "algo.group_size");
    rc.max_new_tokens = (int32_t)ex_config_int(&t->cfg, "gen.max_new_tokens");
    rc.seed = mix64(t->seed, 1000003ull + (uint64_t)step);
    rc.stop_ids = t->stop_ids;
    rc.n_stop = t->n_stop;
    rc.mc_samples = (int32_t)ex_config_int(&t->cfg, "spo.mc_samples");
    rc.mc_adaptive = ex_config_bool(&t->cfg, "spo.mc_adaptive");
    rc.mc_initial = (int32_t)ex_config_int(&t->cfg, "spo.mc_initial");
    if (rc.mc_initial > rc.mc_samples) rc.mc_initial = rc.mc_samples;
    rc.mc_batch = (int32_t)ex_config_int(&t->cfg, "spo.mc_batch");
    rc.mc_z = (float)ex_config_float(&t->cfg, "spo.mc_z");
    rc.cutpoints.tau = (float)ex_config_float(&t->cfg, "spo.cutpoint_tau");
    rc.cutpoints.k = (int32_t)ex_config_int(&t->cfg, "spo.cutpoints");
    rc.cutpoints.max_segments = ex_config_int(&t->cfg, "spo.max_segments");
    rc.prob_mask_tau = (float)ex_config_float(&t->cfg, "spo.prob_mask_tau");
    rc.delimiters = t->delims;
    rc.n_delimiters = t->n_delims;
    rc.gamma = (float)ex_config_float(&t->cfg, "algo.gamma");
    int64_t br[SEGRL_ROLLOUT_MAX_LEVELS];
    int32_t nl = 0;
    CK(ex_config_get_intlist(&t->cfg, "spo.tree_branching", br, SEGRL_ROLLOUT_MAX_LEVELS, &nl));
    if (nl < 1) die("spo.tree_branching: at least one level");
    rc.tree_levels = nl;
    for (int32_t l = 0; l < nl; l++) {
        rc.branching[l] = (int32_t)br[l];
        rc.segment_len[l] = (int32_t)ex_config_int(&t->cfg, "spo.segment_len");
    }
    return rc;
}

static void outcome_advantages(trainer *t, const segrl_rollout_batch *b, float *out) {
    segrl_device cpu = segrl_cpu();
    segrl_layout lay = segrl_layout_packed(segrl_view_1d((void *)b->offsets, SEGRL_DTYPE_I64, cpu, b->num_seqs + 1));
    segrl_outcome in;
    memset(&in, 0, sizeof in);
    in.scores = segrl_view_1d((void *)b->rewards, SEGRL_DTYPE_F32, cpu, b->num_seqs);
    in.token_rewards = segrl_view_none();
    in.mask = segrl_view_1d((void *)b->mask, SEGRL_DTYPE_U8, cpu, b->num_tokens);
    in.group_index = segrl_view_1d((void *)b->prompt, SEGRL_DTYPE_I64, cpu, b->num_seqs);
    in.num_groups = b->num_groups;
    segrl_outcome_opts oo = segrl_outcome_opts_default();
    segrl_op op = SEGRL_OP_GRPO;
    if (t->estimator == EST_DRGRPO) oo.std_scope = SEGRL_STD_NONE;
    if (t->estimator == EST_RLOO) op = SEGRL_OP_RLOO;
    if (t->estimator == EST_RPP) op = SEGRL_OP_REINFORCE_PP_BASELINE;
    size_t ws = 0;
    CK(segrl_workspace_size(op, cpu, b->num_seqs, b->num_tokens, b->num_groups, &ws));
    segrl_exec ex = {0};
    ex.workspace = ws ? xcalloc(ws, 1) : NULL;
    ex.workspace_bytes = ws;
    segrl_view vo = segrl_view_1d(out, SEGRL_DTYPE_F32, cpu, b->num_tokens);
#ifdef SEGRL_TRAINER_DIST
    if (t->world > 1) {
        /* groups are the global prompts; group and batch statistics over every rank */
        int64_t *gid = xcalloc((size_t)b->num_seqs, sizeof *gid);
        for (int64_t i = 0; i < b->num_seqs; i++) gid[i] = t->batch_base + b->prompt[i];
        in.group_index = segrl_view_1d(gid, SEGRL_DTYPE_I64, cpu, b->num_seqs);
        in.num_groups = ex_config_int(&t->cfg, "algo.batch_prompts");
        if (op == SEGRL_OP_RLOO) CK(segrl_dist_rloo(t->comm, &lay, &in, &oo, vo, segrl_view_none()));
        else if (op == SEGRL_OP_REINFORCE_PP_BASELINE)
            CK(segrl_dist_reinforce_pp_baseline(t->comm, &lay, &in, &oo, vo, segrl_view_none()));
        else CK(segrl_dist_grpo(t->comm, &lay, &in, &oo, vo, segrl_view_none()));
        free(gid);
        free(ex.workspace);
        return;
    }
#endif
    if (op == SEGRL_OP_RLOO) CK(segrl_rloo(&lay, &in, &oo, &ex, vo, segrl_view_none()));
    else if (op == SEGRL_OP_REINFORCE_PP_BASELINE)
        CK(segrl_reinforce_pp_baseline(&lay, &in, &oo, &ex, vo, segrl_view_none()));
    else CK(segrl_grpo(&lay, &in, &oo, &ex, vo, segrl_view_none()));
    free(ex.workspace);
}

static void rl_step(trainer *t, int64_t step, ex_metrics *m) {
    int64_t P = ex_config_int(&t->cfg, "algo.batch_prompts");
    int64_t maxnew = ex_config_int(&t->cfg, "gen.max_new_tokens");
    /* every rank draws the same P prompts and rolls out its slice [p0, p0 + LP) of them */
    ex_sampler_next(&t->rl_sampler, P, t->batch_items);
    int64_t p0, p1;
    rank_slice(t, P, &p0, &p1);
    int64_t LP = p1 - p0;
    t->batch_base = p0;
    const int64_t *items = t->batch_items + p0;
    int64_t *offs = xcalloc((size_t)LP + 1, sizeof *offs);
    for (int64_t p = 0; p < LP; p++) {
        const tok_item *it = &t->train_tok[items[p]];
        int64_t pl = it->prompt_len;
        if (pl + maxnew > t->ctx) pl = t->ctx - maxnew > 1 ? t->ctx - maxnew : 1;
        offs[p + 1] = offs[p] + pl;
    }
    int32_t *ptok = xcalloc((size_t)offs[LP], sizeof *ptok);
    for (int64_t p = 0; p < LP; p++) {
        const tok_item *it = &t->train_tok[items[p]];
        int64_t pl = offs[p + 1] - offs[p];
        memcpy(ptok + offs[p], it->prompt + (it->prompt_len - pl), (size_t)pl * sizeof *ptok);
    }
    segrl_rollout_prompts pr = {LP, offs, ptok, items};
    segrl_rollout_config rc = rollout_config(t, step);
    /* request seeds from the global prompt index: a prompt is sampled alike on any rank layout */
    rc.seed_scope = SEGRL_ROLLOUT_SEED_PROMPT;
    rc.prompt_base = p0;
    segrl_rollout *r;
    CK(segrl_rollout_init(&rc, &pr, score_cb, t, &r));
    ex_timer_reset(&t->t_score);
    t->gen_tokens_step = 0;
    t->reward_failures_step = 0;
    ex_timer_reset(&t->t_comm);
    double t0 = ex_now();
    CK(segrl_rollout_run(r, gen_cb, t));
    cache_clear(t);
    double t_roll = ex_now() - t0;
    double t_score = ex_timer_total(&t->t_score);
    double t_gen = t_roll - t_score;
    /* advantages */
    double ta = ex_now();
    segrl_rollout_batch b;
    CK(segrl_rollout_batch_get(r, &b));
    segrl_rollout_stats rs;
    CK(segrl_rollout_stats_get(r, &rs));
    /* reward metrics over the trajectories (tree: the leaves) */
    if (t->estimator == EST_SPO_TREE) {
        segrl_rollout_tree tr;
        CK(segrl_rollout_tree_get(r, &tr));
        double sum = 0, sum2 = 0, nleaf = 0, ncorrect = 0, mixed = 0, len = 0;
        for (int64_t p = 0; p < LP; p++) {
            float first = NAN;
            int mix = 0;
            for (int64_t k = 0; k < tr.num_nodes; k++) {
                if (!tr.is_leaf[k] || tr.prompt[k] != p || tr.parent[k] < 0) continue;
                float v = tr.leaf_reward[k];
                sum += v;
                sum2 += (double)v * v;
                nleaf += 1;
                ncorrect += v >= 1.0f;
                if (first != first) first = v;
                else if (v != first) mix = 1;
                /* response length: tokens from the root to the leaf */
                int64_t L = 0;
                for (int64_t a = k; a >= 0 && tr.parent[a] >= 0; a = tr.parent[a])
                    L += tr.span_end[a] - tr.span_start[a];
                len += (double)L;
            }
            mixed += mix;
        }
        double tot[] = {sum, sum2, nleaf, ncorrect, mixed, len};
        dist_reduce(t, tot, 6, 0);
        sum = tot[0], sum2 = tot[1], nleaf = tot[2], ncorrect = tot[3], mixed = tot[4], len = tot[5];
        double mean = nleaf ? sum / nleaf : 0;
        ex_metrics_set(m, "reward_mean", mean);
        ex_metrics_set(m, "reward_std", nleaf ? sqrt(fmax(0, sum2 / nleaf - mean * mean)) : 0);
        ex_metrics_set(m, "accuracy", nleaf ? ncorrect / nleaf : 0);
        ex_metrics_set(m, "mixed_groups", mixed / (double)P);
        ex_metrics_set(m, "response_len", nleaf ? len / nleaf : 0);
    } else {
        /* every rank's trajectories: G per prompt, in prompt order */
        size_t nbytes;
        char *all = dist_gather_bytes(t, (const char *)b.rewards, (size_t)b.num_seqs * sizeof(float),
                                      &nbytes);
        int64_t nseq = (int64_t)(nbytes / sizeof(float));
        CK(ex_metrics_set_rewards(m, (const float *)all, P, nseq / P, 1.0f));
        free(all);
        double len[2] = {0, (double)b.num_seqs};
        for (int64_t i = 0; i < b.num_seqs; i++)
            len[0] += (double)(b.offsets[i + 1] - b.offsets[i] - b.context_len[i]);
        dist_reduce(t, len, 2, 0);
        ex_metrics_set(m, "response_len", len[1] > 0 ? len[0] / len[1] : 0);
    }
    const segrl_rollout_batch *train_b = &b;
    segrl_rollout_batch rb;
    if (t->replay) {
        CK(segrl_replay_add(t->replay, &b, step));
        CK(segrl_replay_batch_get(t->replay, &rb));
        train_b = &rb;
    }
    float *tok_adv = NULL;
    if (!train_b->advantages && t->estimator != EST_PPO) {
        tok_adv = xcalloc((size_t)train_b->num_tokens, sizeof *tok_adv);
        outcome_advantages(t, train_b, tok_adv);
    }
    upd_batch u;
    upd_build(&u, train_b, train_b->advantages ? train_b->advantages : tok_adv, t->batch_base);
    free(tok_adv);
    /* fault injection for tests/test-train.sh: a NaN advantage at this step must make the update
     * skip (and be reported), never be applied */
    const char *fault = getenv("SEGRL_TRAIN_FAULT_NAN_STEP");
    if (fault && strtoll(fault, NULL, 10) == step)
        for (int64_t j = 0; j < u.B * u.W; j++)
            if (u.lmask[j]) {
                u.adv[j] = NAN;
                break;
            }
    double t_adv = ex_now() - ta;
    /* update (ppo: the value pass and GAE are inside, counted as update time) */
    double tu = ex_now();
    upd_stats us;
    update(t, &u, &us);
    double t_upd = ex_now() - tu;
    upd_free(&u);
    /* counts summed and times maximized over the ranks (every rank keeps the same totals, so the
     * sample budgets stop them at the same step) */
    double cnts[] = {(double)rs.samples, (double)rs.tokens, (double)rs.mc_rollouts,
                     (double)t->reward_failures_step, (double)train_b->num_seqs};
    dist_reduce(t, cnts, 5, 0);
    double times[] = {t_gen, t_score, t_adv, t_upd, ex_timer_total(&t->t_comm)};
    dist_reduce(t, times, 5, 1);
    t_gen = times[0], t_score = times[1], t_adv = times[2], t_upd = times[3];
    rs.samples = (int64_t)cnts[0];
    rs.tokens = (int64_t)cnts[1];
    rs.mc_rollouts = (int64_t)cnts[2];
    t->reward_failures += (int64_t)cnts[3];
    int64_t train_seqs = (int64_t)cnts[4];
    t->samples_total += rs.samples;
    t->tokens_total += rs.tokens;
    ex_metrics_set(m, "loss", us.loss);
    ex_metrics_set(m, "pg_loss", us.pg_loss);
    ex_metrics_set(m, "kl", us.kl);
    ex_metrics_set(m, "entropy", us.entropy);
    if (t->estimator == EST_PPO) ex_metrics_set(m, "value_loss", us.value_loss);
    ex_metrics_set(m, "clip_frac_low", us.clip_lo);
    ex_metrics_set(m, "clip_frac_high", us.clip_hi);
    ex_metrics_set(m, "dual_clip_frac", us.dual);
    ex_metrics_set(m, "approx_kl", us.approx_kl);
    ex_metrics_set(m, "grad_norm", us.grad_norm);
    ex_metrics_set(m, "lr", us.lr);
    ex_metrics_set(m, "updates_skipped_nonfinite", us.skipped_nonfinite);
    ex_metrics_set(m, "updates_skipped_grad", us.skipped_grad);
    ex_metrics_set(m, "reward_failures", (double)t->reward_failures);
    ex_metrics_set(m, "tokens_per_s", t_gen > 0 ? (double)rs.tokens / t_gen : 0);
    ex_metrics_set(m, "samples", (double)t->samples_total);
    ex_metrics_set(m, "gen_tokens", (double)t->tokens_total);
    ex_metrics_set(m, "train_seqs", (double)train_seqs);
    ex_metrics_set(m, "active_seqs", us.active);
    if (rs.mc_rollouts) ex_metrics_set(m, "mc_rollouts", (double)rs.mc_rollouts);
    ex_metrics_set(m, "time_gen_s", t_gen);
    ex_metrics_set(m, "time_score_s", t_score);
    ex_metrics_set(m, "time_adv_s", t_adv);
    ex_metrics_set(m, "time_update_s", t_upd);
    if (t->world > 1) ex_metrics_set(m, "time_allreduce_s", times[4]);
    segrl_rollout_free(r);
    free(offs);
    free(ptok);
}

// ----------------------------------------------------------------------------
// checkpoints

/* Rank 0 writes the checkpoint (every rank holds the same state); the others wait for it. */
static void ckpt_save(trainer *t, int64_t step) {
    if (t->rank != 0) {
        dist_barrier(t);
        return;
    }
    char root[4096], user[512], rng[80];
    path_join(root, sizeof root, t->out_dir, "checkpoints");
    ex_rng r;
    ex_rng_seed(&r, t->seed);
    snprintf(user, sizeof user,
             "{\"phase\":\"rl\",\"consumed\":%lld,\"samples\":%lld,\"tokens\":%lld,"
             "\"reward_failures\":%lld,\"rng\":\"%s\"}",
             (long long)ex_sampler_consumed(&t->rl_sampler), (long long)t->samples_total,
             (long long)t->tokens_total, (long long)t->reward_failures, ex_rng_save(&r, rng));
    CK(segrl_checkpoint_save(root, t->params, t->names, t->n_params, t->opt, step, t->seed, user));
    int64_t keep = ex_config_int(&t->cfg, "ckpt.keep");
    if (keep > 0) CK(segrl_checkpoint_prune(root, keep, NULL));
    dist_barrier(t);
}

static int64_t json_int(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = json ? strstr(json, pat) : NULL;
    return p ? strtoll(p + strlen(pat), NULL, 10) : 0;
}

/* Returns the step to continue from (0 for a fresh run). */
static int64_t ckpt_resume(trainer *t) {
    const char *res = ex_config_str(&t->cfg, "run.resume");
    if (!res[0]) return 0;
    char path[4096];
    if (strcmp(res, "auto") == 0) {
        path_join(path, sizeof path, t->out_dir, "checkpoints");
        int64_t n = 0;
        CK(segrl_checkpoint_list(path, NULL, 0, &n));
        if (n == 0) {
            printf("resume: no checkpoint in %s, starting fresh\n", path);
            return 0;
        }
    } else {
        snprintf(path, sizeof path, "%s", res);
    }
    segrl_checkpoint_info info;
    CK(segrl_checkpoint_load(path, t->params, t->names, t->n_params, t->opt, &info));
    ex_sampler_seek(&t->rl_sampler, json_int(info.user_json, "consumed"));
    t->samples_total = json_int(info.user_json, "samples");
    t->tokens_total = json_int(info.user_json, "tokens");
    t->reward_failures = json_int(info.user_json, "reward_failures");
    segrl_free(info.user_json);
    printf("resume: %s at step %lld (optimizer step %lld)\n", path, (long long)info.step,
           (long long)info.optimizer_step);
    return info.step;
}

// ----------------------------------------------------------------------------
// main

static void pick_eval(trainer *t) {
    int64_t n = ex_config_int(&t->cfg, "eval.size");
    if (n <= 0 || n > t->test.n) n = t->test.n;
    t->eval_n = n;
    t->eval_idx = xcalloc((size_t)(t->test.n ? t->test.n : 1), sizeof *t->eval_idx);
    for (int64_t i = 0; i < t->test.n; i++) t->eval_idx[i] = i;
    uint64_t es = (uint64_t)ex_config_int(&t->cfg, "eval.seed");
    if (es && t->test.n) {
        ex_rng r;
        ex_rng_seed(&r, es);
        ex_rng_shuffle_i64(&r, t->eval_idx, t->test.n);
    }
}

/* The communicator's end (MPI_Finalize under mpirun): every rank calls it once done. */
static void dist_end(trainer *t) {
#ifdef SEGRL_TRAINER_DIST
    fflush(stdout);
    segrl_comm_free(t->comm);
    t->comm = NULL;
    g_comm = NULL;
#else
    (void)t;
#endif
}

int trainer_main(int argc, char **argv, const char *program, const char *const *presets,
                 int num_presets) {
    g_program = program;
    setvbuf(stdout, NULL, _IOLBF, 0);
    trainer T;
    memset(&T, 0, sizeof T);
    trainer *t = &T;
    int32_t nk;
    const ex_cfg_key *keys = trainer_schema(&nk);
    if (argc == 2 && strcmp(argv[1], "--keys-markdown") == 0) {
        /* docs/training.md's table of keys */
        ex_config_print_markdown(keys, nk, stdout);
        return 0;
    }
    /* presets are the program's defaults: set them as defaults, then parse the command line */
    CK(ex_config_init(&t->cfg, keys, nk));
    for (int i = 0; i < num_presets; i++) {
        const char *eq = strchr(presets[i], '=');
        if (!eq) die("bad preset %s", presets[i]);
        char k[128];
        snprintf(k, sizeof k, "%.*s", (int)(eq - presets[i]), presets[i]);
        CK(ex_config_set(&t->cfg, k, eq + 1, EX_CFG_FROM_DEFAULT));
    }
    int help = 0;
    if (ex_config_parse_args(&t->cfg, argc, argv, &help) != SEGRL_OK) {
        fprintf(stderr, "%s: %s\n", program, ex_config_error(&t->cfg));
        return 2;
    }
    if (help) {
        printf("usage: %s [--config FILE.json] [--key value ...]\n"
               "Trains a policy on GSM8K / MATH-style data with segrl (docs/training.md).\n\n",
               program);
        ex_config_print_help(&t->cfg, stdout, program);
        return 0;
    }
    t->out_dir = ex_config_str(&t->cfg, "run.output_dir");
    if (ex_make_dirs(t->out_dir) != 0) die("cannot create %s: %s", t->out_dir, strerror(errno));
    t->seed = (uint64_t)ex_config_int(&t->cfg, "run.seed");
    t->estimator = ex_config_enum(&t->cfg, "algo.estimator");
    set_threads((int)ex_config_int(&t->cfg, "run.threads"));
    const char *dev = ex_config_str(&t->cfg, "run.device");
    int cuda_index_given = strncmp(dev, "cuda:", 5) == 0;
    if (strcmp(dev, "cpu") == 0) t->device = segrl_cpu();
    else if (strncmp(dev, "cuda", 4) == 0) t->device = segrl_cuda(dev[4] == ':' ? atoi(dev + 5) : 0);
    else die("run.device: \"%s\" is not cpu, cuda or cuda:N", dev);
    /* data parallelism: a world of one unless started by mpirun or a torchrun-style launcher */
    t->rank = 0;
    t->world = 1;
#ifdef SEGRL_TRAINER_DIST
    {
        segrl_comm_opts co = segrl_comm_opts_default();
        co.timeout_s = ex_config_float(&t->cfg, "dist.timeout_s");
        if (t->device.type == SEGRL_DEVICE_CUDA)
            co.cuda_device = cuda_index_given ? t->device.index : SEGRL_COMM_LOCAL_RANK;
        CK(segrl_comm_init(&co, &t->comm));
        g_comm = t->comm;
        t->rank = segrl_comm_rank(t->comm);
        t->world = segrl_comm_size(t->comm);
        g_rank = t->rank;
        /* "cuda" without an index: one GPU per process of a machine */
        if (t->device.type == SEGRL_DEVICE_CUDA && !cuda_index_given)
            t->device = segrl_cuda(segrl_comm_local_rank(t->comm));
        if (t->world > 1 && t->rank > 0 && !ex_config_bool(&t->cfg, "dist.log_all_ranks") &&
            !freopen("/dev/null", "w", stdout))
            die("cannot silence stdout: %s", strerror(errno));
    }
#else
    (void)cuda_index_given;
#endif
    if (t->world > 1) {
        /* each rank needs at least one prompt (row) of every global batch */
        int64_t P = ex_config_int(&t->cfg, "algo.batch_prompts");
        int64_t bs = ex_config_int(&t->cfg, "sft.batch_size");
        if (P < t->world)
            die("algo.batch_prompts (%lld) must be at least the number of processes (%d)",
                (long long)P, t->world);
        if (ex_config_int(&t->cfg, "sft.steps") > 0 && bs < t->world)
            die("sft.batch_size (%lld) must be at least the number of processes (%d)",
                (long long)bs, t->world);
    }
    char cpath[4096];
    path_join(cpath, sizeof cpath, t->out_dir, "config.json");
    if (t->rank == 0) CK(ex_config_write_json(&t->cfg, cpath));
    printf("%s: segrl %s; configuration (changed keys):\n", program, segrl_version());
    ex_config_print(&t->cfg, stdout, 1);
#ifdef SEGRL_TRAINER_DIST
    if (t->world > 1)
        printf("data-parallel: %d processes (%s), %d on this machine; global batch %lld prompts\n",
               t->world, segrl_comm_backend(t->comm), segrl_comm_local_size(t->comm),
               (long long)ex_config_int(&t->cfg, "algo.batch_prompts"));
#endif

    /* rank 0 writes what the others read (synthetic data, the tiny model's tokenizer) first */
    if (t->rank == 0) {
        setup_data(t);
        setup_model(t);
    }
    dist_barrier(t);
    if (t->rank != 0) {
        setup_data(t);
        setup_model(t);
    }
    params_broadcast(t);
    t->train_tok = tokenize_set(t, &t->train);
    t->test_tok = tokenize_set(t, &t->test);
    pick_eval(t);
    /* reward.name: any name of segrl_reward_create, the self rewards (majority_vote) and the
     * likelihood rewards (likelihood, log_prob, mean_log_prob, prob, mean_prob: the policy's own
     * probability of the reference answer, through this model and tokenizer). Evaluation (pass@1)
     * always grades with the dataset's verifier. */
    const char *rname = ex_config_str(&t->cfg, "reward.name");
    CK(segrl_likelihood_reward_create(rname, ex_config_str(&t->cfg, "reward.options"), t->model,
                                      t->tok, &t->reward));
    const char *vname = t->train.format == EX_DATA_MATH ? "math" : "gsm8k";
    if (strcmp(rname, vname)) CK(segrl_reward_create(vname, "{}", &t->eval_reward));
    ex_progress_init(&t->prog, stdout, "", 0, 1, EX_PROGRESS_OFF, 1);

    int64_t steps = ex_config_int(&t->cfg, "run.steps");
    int resuming = ex_config_str(&t->cfg, "run.resume")[0] != 0;
    /* warm-up (skipped when resuming an RL run) */
    if (ex_config_int(&t->cfg, "sft.steps") > 0 && !resuming) sft_run(t);

    int64_t P = ex_config_int(&t->cfg, "algo.batch_prompts");
    t->batch_items = xcalloc((size_t)P, sizeof *t->batch_items);
    if (ex_sampler_init(&t->rl_sampler, t->train.n, mix64(t->seed, 202)) != 0) die("out of memory");
    segrl_adamw_config ac = adamw_from_config(t, ex_config_float(&t->cfg, "optim.lr"), 0);
    CK(segrl_adamw_create(t->params, t->names, t->n_params, &ac, &t->opt));
    if (ex_config_float(&t->cfg, "loss.kl_coef") > 0 && ex_config_enum(&t->cfg, "loss.kl_type") != 0) {
        char rdir[4096];
        path_join(rdir, sizeof rdir, t->out_dir, "ref-model");
        double need = !resuming || !file_exists(rdir); /* rank 0 and the others decide alike */
        dist_reduce(t, &need, 1, 1);
        if (need > 0) save_model(t, rdir);
        CK(segrl_model_load(rdir, SEGRL_DTYPE_F32, t->device, &t->ref));
    }
    int64_t replay_age = ex_config_int(&t->cfg, "spo.replay_max_age");
    if (t->estimator == EST_SPO_TREE && replay_age > 0)
        CK(segrl_replay_init(replay_age, ex_config_int(&t->cfg, "spo.replay_per_question"), &t->replay));
    int64_t start = ckpt_resume(t);
    if (steps == 0) {
        char mdir[4096];
        path_join(mdir, sizeof mdir, t->out_dir, "model");
        save_model(t, mdir);
        printf("model saved to %s\n", mdir);
        dist_end(t);
        return 0;
    }
    char mpath[4096];
    metrics_path(t, "metrics.jsonl", mpath, sizeof mpath);
    ex_metrics *m;
    CK(ex_metrics_open(mpath, start > 0 && t->rank == 0 ? start : -1, &m));
    int64_t eval_every = ex_config_int(&t->cfg, "eval.every");
    int64_t ckpt_every = ex_config_int(&t->cfg, "ckpt.every");
    double max_s = ex_config_float(&t->cfg, "run.max_seconds");
    int64_t max_samples = ex_config_int(&t->cfg, "run.max_samples");
    int64_t max_tokens = ex_config_int(&t->cfg, "run.max_gen_tokens");
    double acc0 = -1, acc1 = -1;
    if (start == 0 && t->eval_n > 0) {
        acc0 = eval_report(t, "before-rl", 0);
        ex_metrics_set(m, "test_accuracy", acc0);
        ex_metrics_set(m, "samples", 0);
        ex_metrics_set(m, "gen_tokens", 0);
        CK(ex_metrics_write(m, 0));
    }
    ex_progress_init(&t->prog, stdout, "rl", start, steps, ex_config_enum(&t->cfg, "run.progress"),
                     ex_config_int(&t->cfg, "run.log_every"));
    double t0 = ex_now();
    int64_t step = start;
    double last_acc = acc0;
    while (step < steps) {
        /* rank 0's clock decides for everyone (the ranks must stop at the same step) */
        double out_of_time = t->rank == 0 && max_s > 0 && ex_now() - t0 >= max_s;
        dist_reduce(t, &out_of_time, 1, 1);
        if (out_of_time > 0) {
            ex_progress_log(&t->prog, "run.max_seconds reached after %lld steps", (long long)step);
            break;
        }
        if ((max_samples > 0 && t->samples_total >= max_samples) ||
            (max_tokens > 0 && t->tokens_total >= max_tokens)) {
            ex_progress_log(&t->prog, "sample budget reached after %lld steps (%lld samples, %lld tokens)",
                            (long long)step, (long long)t->samples_total, (long long)t->tokens_total);
            break;
        }
        /* fault injection for tests/test-train-dist.sh: rank R leaves the job at step S
         * (SEGRL_TRAIN_FAULT_EXIT="R,S"); the other ranks must stop with an error, not hang */
        const char *fx = getenv("SEGRL_TRAIN_FAULT_EXIT");
        if (fx && atoi(fx) == t->rank && strchr(fx, ',') && atoll(strchr(fx, ',') + 1) == step) {
            fprintf(stderr, "%s: rank %d: leaving at step %lld (SEGRL_TRAIN_FAULT_EXIT)\n",
                    g_program, t->rank, (long long)step);
            _exit(3);
        }
        rl_step(t, step, m);
        step++;
        int evals = t->eval_n > 0 && eval_every > 0 && step % eval_every == 0 && step < steps;
        if (evals) {
            char when[32];
            snprintf(when, sizeof when, "step-%lld", (long long)step);
            last_acc = eval_report(t, when, step);
            ex_metrics_set(m, "test_accuracy", last_acc);
        }
        double rm = 0, acc = 0;
        ex_metrics_get(m, "reward_mean", &rm);
        ex_metrics_get(m, "accuracy", &acc);
        CK(ex_metrics_write(m, step));
        if (ckpt_every > 0 && step % ckpt_every == 0 && step < steps) ckpt_save(t, step);
        if (max_s > 0) { /* a time limit: the bar and ETA follow the steps it leaves room for */
            double el = ex_now() - t0, per = el / (double)(step - start);
            int64_t est = step + (int64_t)((max_s - el) / (per > 0 ? per : 1e-9)) + 1;
            t->prog.total = est < steps ? est : steps;
        }
        char extra[128];
        snprintf(extra, sizeof extra, "reward %.3f acc %.3f%s", rm, acc, "");
        if (last_acc >= 0)
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " test %.3f", last_acc);
        ex_progress_update(&t->prog, step, extra);
    }
    ex_progress_finish(&t->prog);
    double rl_s = ex_now() - t0;
    ckpt_save(t, step);
    if (t->eval_n > 0) {
        acc1 = eval_report(t, "after-rl", step);
        ex_metrics_set(m, "test_accuracy", acc1);
        ex_metrics_set(m, "samples", (double)t->samples_total);
        ex_metrics_set(m, "gen_tokens", (double)t->tokens_total);
        /* the final evaluation is its own line at the last step (the step's metrics came first) */
        CK(ex_metrics_write(m, step));
    }
    ex_metrics_close(m);
    char mdir[4096];
    path_join(mdir, sizeof mdir, t->out_dir, "model");
    save_model(t, mdir);
    printf("rl: %lld steps in %.1fs; model saved to %s\n", (long long)(step - start), rl_s, mdir);
    if (acc0 >= 0 && acc1 >= 0)
        printf("test accuracy (greedy, %lld problems): before RL %.1f%%, after RL %.1f%%\n",
               (long long)t->eval_n, 100 * acc0, 100 * acc1);
    char summary[4096];
    path_join(summary, sizeof summary, t->out_dir, "summary.json");
    FILE *f = t->rank == 0 ? fopen(summary, "w") : NULL;
    if (f) {
        fprintf(f, "{\"steps\":%lld,\"rl_seconds\":%.3f,\"test_accuracy_before\":%.6f,"
                   "\"test_accuracy_after\":%.6f,\"eval_size\":%lld,\"samples\":%lld}\n",
                (long long)step, rl_s, acc0, acc1, (long long)t->eval_n, (long long)t->samples_total);
        fclose(f);
    }
    if (ex_config_bool(&t->cfg, "run.plot") && t->rank == 0) {
        int32_t nk2;
        const char *const *pk = ex_metrics_plot_keys(&nk2);
        char png[4096];
        path_join(png, sizeof png, t->out_dir, "metrics.png");
        if (ex_plot_metrics(mpath, pk, nk2, "step", png) != SEGRL_OK)
            printf("plot: %s\n", segrl_last_error());
        else
            printf("plot: %s\n", png);
    }
    dist_end(t);
    return 0;
}
