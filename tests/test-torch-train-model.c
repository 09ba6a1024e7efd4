/* test-torch-train-model.c — the training utilities on the bridge's Llama model, C API only:
 * parameters from segrl_model_parameters, a loss through the autograd wrappers (fused log-probs
 * from logits, or the fused linear path from hidden states and the LM-head weight), AdamW with
 * clipping and a schedule, and a checkpoint resume that must continue bit-identically.
 * A tiny random model (vocab 64, hidden 32, 2 layers) on CPU. */
#define _GNU_SOURCE /* mkdtemp */
#include "harness.h"

#include "segrl/safetensors.h"
#include "segrl/torch.h"
#include "segrl/train.h"

#include <stdlib.h>

enum { B = 2, T = 8, V = 64, MAXP = 64 };

typedef struct trainer {
    segrl_model *model;
    segrl_tensor *params[MAXP];
    const char *names[MAXP];
    int64_t n;
    segrl_optimizer *opt;
    uint64_t rng; /* the trainer's data RNG: picks each step's tokens */
} trainer;

static void die(const char *what) {
    printf("%s: %s\n", what, segrl_last_error());
    exit(2);
}

static void trainer_init(trainer *tr, uint64_t seed) {
    segrl_model_config c = segrl_model_config_default();
    c.vocab_size = V;
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.tie_word_embeddings = 0;
    c.initializer_range = 0.1f;
    if (segrl_model_init(&c, seed, SEGRL_DTYPE_F32, segrl_cpu(), &tr->model) != SEGRL_OK) die("model_init");
    if (segrl_model_parameters(tr->model, MAXP, tr->params, tr->names, &tr->n) != SEGRL_OK) die("parameters");
    if (tr->n > MAXP) die("too many parameters");
    segrl_adamw_config oc = segrl_adamw_default();
    oc.lr = 3e-3;
    oc.weight_decay = 0.01;
    oc.max_grad_norm = 1.0;
    oc.schedule = (segrl_lr_schedule){SEGRL_LR_WARMUP_COSINE, 3, 30, 0.1};
    if (segrl_adamw_create(tr->params, tr->names, tr->n, &oc, &tr->opt) != SEGRL_OK) die("adamw_create");
    tr->rng = seed * 31 + 7;
}

static void trainer_free(trainer *tr) {
    segrl_optimizer_free(tr->opt);
    segrl_model_free(tr->model);
}

static segrl_tensor *find_param(trainer *tr, const char *name) {
    for (int64_t i = 0; i < tr->n; i++)
        if (strcmp(tr->names[i], name) == 0) return tr->params[i];
    return NULL;
}

/* one update on a batch drawn from the trainer's RNG (fixed_batch: always the same batch):
 * REINFORCE with advantage 1 on every token, i.e. the mean negative log-likelihood of the
 * targets. linear: the fused linear path from the hidden states. Returns the loss. */
static double train_step(trainer *tr, int fixed_batch, int linear) {
    int64_t tok[B * T], tgt[B * T];
    float adv[B * T];
    uint64_t saved = h_state;
    h_seed(fixed_batch ? 4242 : tr->rng);
    for (int i = 0; i < B * T; i++) tok[i] = h_int(0, V - 1), tgt[i] = h_int(0, V - 1), adv[i] = 1.0f;
    if (!fixed_batch) tr->rng = h_next();
    h_state = saved;
    int64_t shape[2] = {B, T};
    segrl_tensor *tokens, *targets, *advs, *out, *logp, *loss;
    segrl_tensor_from_host(tok, SEGRL_DTYPE_I64, 2, shape, segrl_cpu(), &tokens);
    segrl_tensor_from_host(tgt, SEGRL_DTYPE_I64, 2, shape, segrl_cpu(), &targets);
    segrl_tensor_from_host(adv, SEGRL_DTYPE_F32, 2, shape, segrl_cpu(), &advs);
    segrl_optimizer_zero_grad(tr->opt);
    if (linear) {
        if (segrl_model_forward(tr->model, tokens, NULL, SEGRL_OUTPUT_HIDDEN, &out) != SEGRL_OK) die("forward");
        if (segrl_autograd_linear_logprobs(out, find_param(tr, "lm_head.weight"), targets, NULL, &logp, NULL) !=
            SEGRL_OK)
            die("linear_logprobs");
    } else {
        if (segrl_model_forward(tr->model, tokens, NULL, SEGRL_OUTPUT_LOGITS, &out) != SEGRL_OK) die("forward");
        if (segrl_autograd_logprobs(out, targets, NULL, &logp, NULL) != SEGRL_OK) die("logprobs");
    }
    segrl_autograd_policy_inputs in;
    memset(&in, 0, sizeof in);
    in.logp = logp;
    in.advantages = advs;
    segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
    o.mode = SEGRL_PG_REINFORCE;
    if (segrl_autograd_policy_loss(&in, &o, &loss, NULL) != SEGRL_OK) die("policy_loss");
    double L = 0;
    segrl_tensor_item(loss, &L);
    if (segrl_tensor_backward(loss, NULL) != SEGRL_OK) die("backward");
    if (segrl_optimizer_step(tr->opt, 1.0, NULL) != SEGRL_OK) die("step");
    segrl_tensor *all[6] = {tokens, targets, advs, out, logp, loss};
    for (int i = 0; i < 6; i++) segrl_tensor_free(all[i]);
    return L;
}

static int same_params(trainer *a, trainer *b) {
    int same = a->n == b->n;
    for (int64_t i = 0; same && i < a->n; i++) {
        int64_t n = 0;
        segrl_tensor_numel(a->params[i], &n);
        float *x = h_alloc((size_t)n * 4), *y = h_alloc((size_t)n * 4);
        segrl_tensor_to_host(a->params[i], x, (size_t)n * 4);
        segrl_tensor_to_host(b->params[i], y, (size_t)n * 4);
        same = memcmp(x, y, (size_t)n * 4) == 0;
        if (!same) printf("  %s differs\n", a->names[i]);
        free(x);
        free(y);
    }
    return same;
}

int main(void) {
    h_seed(99);
    /* the loss goes down on a fixed batch, through either path */
    for (int linear = 0; linear < 2; linear++) {
        trainer tr;
        trainer_init(&tr, 1);
        double first = train_step(&tr, 1, linear), last = first;
        for (int s = 0; s < 25; s++) last = train_step(&tr, 1, linear);
        printf("  %s: NLL %.4f -> %.4f after 26 steps (log V = %.4f)\n",
               linear ? "fused linear from hidden" : "fused log-probs from logits", first, last, log((double)V));
        CHECK(last < first - 0.5, "%s: the loss decreases (%g -> %g)", linear ? "linear" : "logits", first, last);
        trainer_free(&tr);
    }

    /* resume: N steps, save, M steps  ==  load into another model, M steps (bit for bit) */
    char tmpl[] = "/tmp/segrl-train-model-XXXXXX";
    char *root = mkdtemp(tmpl);
    if (!root) return 2;
    const int N = 4, M = 5;
    trainer a, b;
    trainer_init(&a, 1);
    for (int s = 0; s < N; s++) train_step(&a, 0, s % 2);
    CHECK(segrl_checkpoint_save(root, a.params, a.names, a.n, a.opt, N, a.rng, "{\"run\":\"a\"}") == SEGRL_OK,
          "save: %s", segrl_last_error());
    for (int s = 0; s < M; s++) train_step(&a, 0, s % 2);
    trainer_init(&b, 2);
    segrl_checkpoint_info info;
    CHECK(segrl_checkpoint_load(root, b.params, b.names, b.n, b.opt, &info) == SEGRL_OK, "load: %s",
          segrl_last_error());
    segrl_free(info.user_json);
    b.rng = info.user_rng;
    for (int s = 0; s < M; s++) train_step(&b, 0, s % 2);
    CHECK(same_params(&a, &b), "resumed model training is bit-identical to the uninterrupted run");
    CHECK(segrl_optimizer_steps(b.opt) == N + M, "optimizer steps %lld", (long long)segrl_optimizer_steps(b.opt));

    /* the weights file carries the model's Hugging Face names */
    char path[400];
    snprintf(path, sizeof path, "%s/step-%012d/model.safetensors", root, N);
    segrl_safetensors *st = NULL;
    CHECK(segrl_safetensors_open(path, &st) == SEGRL_OK && segrl_safetensors_count(st) == a.n &&
              segrl_safetensors_index(st, "model.embed_tokens.weight") >= 0 &&
              segrl_safetensors_index(st, "lm_head.weight") >= 0 &&
              strcmp(segrl_safetensors_metadata(st, "format"), "pt") == 0,
          "model.safetensors: %lld tensors under the model's names", (long long)segrl_safetensors_count(st));
    segrl_safetensors_close(st);
    trainer_free(&a);
    trainer_free(&b);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) printf("could not remove %s\n", root);
    return h_finish();
}
