/* test-torch-likelihood.c — likelihood rewards (segrl/likelihood.h) equal a direct computation
 * with the model's forward pass: one unpadded sequence at a time through segrl_model_forward
 * (LOGITS), log-softmax in double here, summed / averaged / exponentiated here. A tiny random
 * Llama (segrl_model_init) and a byte-level BPE trained in-process (segrl_tokenizer_train). */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <segrl/likelihood.h>
#include <segrl/selfreward.h>

#include <stdlib.h>
#include <unistd.h>

static segrl_model *model;
static segrl_tokenizer *tok;

/* log pi(ids[p] | ids[<p]) for p in [ctx, n) by one forward pass of the whole sequence */
static void direct(segrl_model *m, const int32_t *ids, int64_t n, int64_t ctx, double *out) {
    int64_t shape[2] = {1, n};
    segrl_tensor *t = NULL, *lg = NULL;
    segrl_tensor_from_host(ids, SEGRL_DTYPE_I32, 2, shape, segrl_cpu(), &t);
    segrl_status s = segrl_model_forward(m, t, NULL, SEGRL_OUTPUT_LOGITS, &lg);
    if (s) {
        printf("direct forward: %s\n", segrl_last_error());
        exit(1);
    }
    segrl_model_config c;
    segrl_model_config_get(m, &c);
    int64_t V = c.vocab_size;
    float *L = malloc((size_t)(n * V) * sizeof *L);
    segrl_tensor_to_host(lg, L, (size_t)(n * V) * sizeof *L);
    for (int64_t p = ctx; p < n; p++) {
        const float *row = L + (p - 1) * V;
        double mx = row[0], z = 0;
        for (int64_t v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
        for (int64_t v = 0; v < V; v++) z += exp((double)row[v] - mx);
        out[p - ctx] = (double)row[ids[p]] - mx - log(z);
    }
    free(L);
    segrl_tensor_free(t);
    segrl_tensor_free(lg);
}

static int32_t *enc(const char *s, int64_t *n) {
    int32_t *ids = NULL;
    if (segrl_tokenizer_encode(tok, s, strlen(s), 0, &ids, n)) {
        printf("encode: %s\n", segrl_last_error());
        exit(1);
    }
    return ids;
}

/* the reward of (context text, answer text) computed directly */
static double direct_reward(const char *context, const char *answer, int kind) {
    int64_t nc, na;
    int32_t *c = enc(context, &nc), *a = enc(answer, &na);
    int32_t *all = malloc((size_t)(nc + na) * sizeof *all);
    memcpy(all, c, (size_t)nc * sizeof *all);
    memcpy(all + nc, a, (size_t)na * sizeof *all);
    double lp[256], s = 0;
    direct(model, all, nc + na, nc, lp);
    for (int64_t j = 0; j < na; j++) s += kind == SEGRL_LIKELIHOOD_MEAN_PROB ? exp(lp[j]) : lp[j];
    if (kind == SEGRL_LIKELIHOOD_MEAN_LOGPROB || kind == SEGRL_LIKELIHOOD_MEAN_PROB) s /= (double)na;
    if (kind == SEGRL_LIKELIHOOD_PROB) s = exp(s);
    segrl_free(c), segrl_free(a), free(all);
    return s;
}

static void test_token_level(void) {
    /* five rows of different context / target lengths, padded into batches of 2 */
    h_seed(11);
    int64_t coff[6] = {0}, toff[6] = {0};
    int64_t clen[5] = {3, 9, 1, 5, 12}, tlen[5] = {4, 1, 6, 0, 3};
    int32_t ctx[64], tgt[64];
    for (int i = 0; i < 5; i++) coff[i + 1] = coff[i] + clen[i], toff[i + 1] = toff[i] + tlen[i];
    for (int64_t i = 0; i < coff[5]; i++) ctx[i] = (int32_t)h_int(0, 299);
    for (int64_t i = 0; i < toff[5]; i++) tgt[i] = (int32_t)h_int(0, 299);
    float got[64], got1[64];
    segrl_status s = segrl_likelihood_logprobs(model, 5, ctx, coff, tgt, toff, 2, got);
    CHECK(s == SEGRL_OK, "logprobs: %s", segrl_last_error());
    s = segrl_likelihood_logprobs(model, 5, ctx, coff, tgt, toff, 1, got1);
    CHECK(s == SEGRL_OK, "logprobs bs 1: %s", segrl_last_error());
    double want[64];
    for (int i = 0; i < 5; i++) {
        int32_t row[32];
        memcpy(row, ctx + coff[i], (size_t)clen[i] * sizeof *row);
        memcpy(row + clen[i], tgt + toff[i], (size_t)tlen[i] * sizeof *row);
        direct(model, row, clen[i] + tlen[i], clen[i], want + toff[i]);
    }
    h_close_f("batched logprobs vs forward", got, want, toff[5], 2e-5, 1e-5);
    h_close_f("batch size 1 vs forward", got1, want, toff[5], 2e-5, 1e-5);
    /* an empty context is refused; outputs untouched */
    got[0] = 42;
    int64_t bad[6] = {0, 3, 3, 4, 9, 21};
    s = segrl_likelihood_logprobs(model, 5, ctx, bad, tgt, toff, 2, got);
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "context") && got[0] == 42,
          "empty context: %s", segrl_last_error());
    tgt[0] = 300;
    s = segrl_likelihood_logprobs(model, 5, ctx, coff, tgt, toff, 2, got);
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "300"), "bad id: %s",
          segrl_last_error());
    double r;
    float lp3[3] = {-1.0f, -2.0f, -0.5f};
    segrl_likelihood_reduce(lp3, 3, SEGRL_LIKELIHOOD_MEAN_PROB, &r);
    CHECK(fabs(r - (exp(-1.0) + exp(-2.0) + exp(-0.5)) / 3) < 1e-7, "reduce mean_prob %g", r);
    segrl_likelihood_reduce(lp3, 3, SEGRL_LIKELIHOOD_PROB, &r);
    CHECK(fabs(r - exp(-3.5)) < 1e-7, "reduce prob %g", r);
}

static void test_reward(void) {
    segrl_reward_sample smp[4] = {
        {.prompt = "Q: 2+3? ", .response = "two plus three is five", .answer = "5"},
        {.prompt = "Q: capital of France? ", .response = "It is Paris.", .answer = "Paris"},
        {.prompt = "", .response = "the cat sat", .answer = "on the mat"},
        {.prompt = "Q: empty? ", .response = "yes", .answer = ""},
    };
    static const char *names[4] = {"log_prob", "mean_log_prob", "prob", "mean_prob"};
    for (int k = 0; k < 4; k++) {
        char opts[128];
        snprintf(opts, sizeof opts, "{\"kind\": \"%s\", \"batch_size\": 2}", names[k]);
        segrl_reward *rw = NULL;
        segrl_status s = segrl_likelihood_reward_create("likelihood", opts, model, tok, &rw);
        CHECK(s == SEGRL_OK, "create %s: %s", names[k], segrl_last_error());
        if (s) continue;
        float sc[4];
        segrl_reward_detail det[4];
        memset(det, 0, sizeof det);
        segrl_reward_run run = {.threads = 1, .failure_score = -7.0f};
        s = segrl_reward_score(rw, smp, 4, &run, sc, det);
        CHECK(s == SEGRL_OK, "score %s: %s", names[k], segrl_last_error());
        double want[3];
        for (int i = 0; i < 3; i++) {
            char ctx[256];
            snprintf(ctx, sizeof ctx, "%s%s\n", smp[i].prompt, smp[i].response);
            want[i] = direct_reward(ctx, smp[i].answer, k);
        }
        char what[64];
        snprintf(what, sizeof what, "likelihood %s", names[k]);
        h_close_f(what, sc, want, 3, 1e-5, 1e-4);
        CHECK(sc[3] == -7.0f && det[3].reason == SEGRL_REWARD_BAD_REFERENCE, "%s: empty answer %g %d",
              names[k], sc[3], det[3].reason);
        CHECK(det[0].reason == SEGRL_REWARD_OK && strncmp(det[0].message, "m=", 2) == 0,
              "%s: detail '%s'", names[k], det[0].message);
        segrl_reward_free(rw);
    }
    /* the shorthand name and target "response": log pi(response | prompt) */
    segrl_reward *rw = NULL;
    segrl_status s = segrl_likelihood_reward_create("mean_log_prob", "{\"target\": \"response\"}",
                                                    model, tok, &rw);
    CHECK(s == SEGRL_OK, "response target: %s", segrl_last_error());
    if (!s) {
        float sc[2];
        segrl_reward_run run = {.threads = 1};
        s = segrl_reward_score(rw, smp, 2, &run, sc, NULL);
        double want[2] = {direct_reward(smp[0].prompt, smp[0].response, SEGRL_LIKELIHOOD_MEAN_LOGPROB),
                          direct_reward(smp[1].prompt, smp[1].response, SEGRL_LIKELIHOOD_MEAN_LOGPROB)};
        h_close_f("likelihood target response", sc, want, 2, 1e-5, 1e-4);
        segrl_reward_free(rw);
    }
    /* other names pass through to the verifier rewards (no model needed); errors name options */
    s = segrl_likelihood_reward_create("gsm8k", NULL, NULL, NULL, &rw);
    CHECK(s == SEGRL_OK && strcmp(segrl_reward_name(rw), "gsm8k") == 0, "pass-through");
    if (!s) segrl_reward_free(rw);
    s = segrl_likelihood_reward_create("likelihood", "{\"kind\": \"max\"}", model, tok, &rw);
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "kind"), "bad kind: %s",
          segrl_last_error());
    s = segrl_likelihood_reward_create("likelihood", "{\"temperature\": 1}", model, tok, &rw);
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "temperature"), "unknown: %s",
          segrl_last_error());
    s = segrl_likelihood_reward_create("likelihood", NULL, NULL, tok, &rw);
    CHECK(s == SEGRL_ERR_INVALID, "no model");
}

static void test_turn_means(void) {
    /* two rollouts: 4 prompt tokens + turns ending at 7, 10, 13; 2 prompt tokens + one turn to 6 */
    h_seed(5);
    int32_t toks[19], ans[5];
    for (int i = 0; i < 19; i++) toks[i] = (int32_t)h_int(0, 299);
    for (int i = 0; i < 5; i++) ans[i] = (int32_t)h_int(0, 299);
    int64_t toff[3] = {0, 13, 19}, plen[2] = {4, 2}, soff[3] = {0, 3, 4}, ends[4] = {7, 10, 13, 6};
    int64_t aoff[3] = {0, 3, 5};
    float prior[2], tm[4];
    segrl_status s = segrl_likelihood_turn_means(model, 2, toks, toff, plen, soff, ends, ans, aoff, 3,
                                                 prior, tm);
    CHECK(s == SEGRL_OK, "turn means: %s", segrl_last_error());
    double wp[2], wt[4];
    for (int b = 0; b < 2; b++) {
        int64_t m = aoff[b + 1] - aoff[b];
        int64_t cuts[4] = {plen[b]}, nc = 1;
        for (int64_t k = soff[b]; k < soff[b + 1]; k++) cuts[nc++] = ends[k];
        for (int64_t c = 0; c < nc; c++) {
            int32_t row[32];
            memcpy(row, toks + toff[b], (size_t)cuts[c] * sizeof *row);
            memcpy(row + cuts[c], ans + aoff[b], (size_t)m * sizeof *row);
            double lp[8], mean = 0;
            direct(model, row, cuts[c] + m, cuts[c], lp);
            for (int64_t j = 0; j < m; j++) mean += lp[j] / (double)m;
            if (c == 0) wp[b] = mean;
            else wt[soff[b] + c - 1] = mean;
        }
    }
    h_close_f("prior mean log-prob", prior, wp, 2, 2e-5, 1e-5);
    h_close_f("turn mean log-probs", tm, wt, 4, 2e-5, 1e-5);
    /* into IGPO's turn rewards: r = exp(L_k) - exp(L_{k-1}), final turn the outcome */
    float outc[2] = {1.0f, 0.0f}, r[4];
    s = segrl_igpo_turn_rewards(segrl_view_1d(soff, SEGRL_DTYPE_I64, segrl_cpu(), 3),
                                segrl_view_1d(tm, SEGRL_DTYPE_F32, segrl_cpu(), 4),
                                segrl_view_1d(prior, SEGRL_DTYPE_F32, segrl_cpu(), 2),
                                segrl_view_1d(outc, SEGRL_DTYPE_F32, segrl_cpu(), 2), NULL,
                                segrl_view_1d(r, SEGRL_DTYPE_F32, segrl_cpu(), 4));
    double wr[4] = {exp(wt[0]) - exp(wp[0]), exp(wt[1]) - exp(wt[0]), 1.0, 0.0};
    CHECK(s == SEGRL_OK, "igpo: %s", segrl_last_error());
    h_close_f("igpo rewards from the model", r, wr, 4, 1e-6, 1e-4);
    ends[1] = 7; /* not increasing */
    s = segrl_likelihood_turn_means(model, 2, toks, toff, plen, soff, ends, ans, aoff, 3, prior, tm);
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "turn_ends"), "bad ends: %s",
          segrl_last_error());
}

static void test_truncation(void) {
    /* max_position_embeddings 16: a 20-token context is cut to its last 16 - 3 tokens */
    segrl_model_config c = segrl_model_config_default();
    c.vocab_size = 300, c.hidden_size = 32, c.num_hidden_layers = 1, c.num_attention_heads = 4;
    c.num_key_value_heads = 2, c.max_position_embeddings = 16;
    segrl_model *small = NULL;
    segrl_status s = segrl_model_init(&c, 3, SEGRL_DTYPE_F32, segrl_cpu(), &small);
    CHECK(s == SEGRL_OK, "small model: %s", segrl_last_error());
    if (s) return;
    int32_t ctx[20], tgt[3] = {5, 6, 7};
    for (int i = 0; i < 20; i++) ctx[i] = 10 + i;
    int64_t coff[2] = {0, 20}, toff[2] = {0, 3};
    float got[3];
    s = segrl_likelihood_logprobs(small, 1, ctx, coff, tgt, toff, 4, got);
    CHECK(s == SEGRL_OK, "truncated: %s", segrl_last_error());
    int32_t row[16];
    memcpy(row, ctx + 7, 13 * sizeof *row);
    memcpy(row + 13, tgt, 3 * sizeof *row);
    double want[3];
    direct(small, row, 16, 13, want);
    h_close_f("left-truncated context", got, want, 3, 2e-5, 1e-5);
    int32_t long_tgt[16] = {0};
    int64_t toff2[2] = {0, 16};
    float g2[16];
    s = segrl_likelihood_logprobs(small, 1, ctx, coff, long_tgt, toff2, 4, g2);
    CHECK(s == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "fit"), "answer too long: %s",
          segrl_last_error());
    segrl_model_free(small);
}

int main(void) {
    segrl_torch_set_num_threads(1);
    segrl_model_config c = segrl_model_config_default();
    c.vocab_size = 300, c.hidden_size = 48, c.num_hidden_layers = 2, c.num_attention_heads = 4;
    c.num_key_value_heads = 2, c.max_position_embeddings = 128, c.initializer_range = 0.2f;
    segrl_status s = segrl_model_init(&c, 7, SEGRL_DTYPE_F32, segrl_cpu(), &model);
    if (s) {
        printf("model: %s\n", segrl_last_error());
        return 1;
    }
    char dir[] = "/tmp/segrl-lik-XXXXXX", path[256];
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    const char *corpus = "the cat sat on the mat. the answer is 5. Paris is the capital of France. "
                         "two plus three is five. Q: what is it? It is the answer.";
    const char *special[1] = {"<|endoftext|>"};
    s = segrl_tokenizer_train(corpus, strlen(corpus), 290, special, 1, path);
    if (!s) s = segrl_tokenizer_load(path, &tok);
    remove(path);
    rmdir(dir);
    if (s) {
        printf("tokenizer: %s\n", segrl_last_error());
        return 1;
    }
    test_token_level();
    test_reward();
    test_turn_means();
    test_truncation();
    segrl_tokenizer_free(tok);
    segrl_model_free(model);
    return h_finish();
}
