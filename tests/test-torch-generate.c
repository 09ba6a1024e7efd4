/* test-torch-generate — batched sampling with a KV cache and forkable generation states,
 * through the C headers only:
 *   the recorded log-probs equal a full recomputation (forward over the whole sequence) and
 *   greedy tokens are its argmax; a state's continuation does not depend on its batch; forked
 *   continuations equal independent ones with the same seeds (also forks of forks); extending
 *   in several calls equals one call; runs are deterministic; top_k = 1 is greedy; stop token
 *   ids, stop strings (with a trained tokenizer) and the context limit; segrl_generate equals
 *   create + fork + extend; bad arguments. */
#define _GNU_SOURCE

#include "harness.h"

#include "segrl/core.h"
#include "segrl/tokenizer.h"
#include "segrl/torch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SEGRL_FIXTURES_DIR
#error "SEGRL_FIXTURES_DIR must name tests/fixtures/model"
#endif

#define OK(expr)                                                                             \
    do {                                                                                     \
        segrl_status st_ = (expr);                                                           \
        if (st_ != SEGRL_OK) {                                                               \
            printf("FAIL %s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr,                  \
                   segrl_status_str(st_), segrl_last_error());                               \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

#define MAXT 256

typedef struct seq {
    int32_t tok[MAXT];
    float lp[MAXT];
    int64_t n, prompt, ngen;
    segrl_finish fin;
} seq;

static seq read_state(const segrl_gen_state *s) {
    seq r;
    memset(&r, 0, sizeof r);
    OK(segrl_gen_length(s, &r.prompt, &r.n));
    int64_t n;
    OK(segrl_gen_tokens(s, MAXT, r.tok, &n));
    OK(segrl_gen_logprobs(s, MAXT, r.lp, &r.ngen));
    OK(segrl_gen_finish_reason(s, &r.fin));
    CHECK(n == r.n && r.ngen == r.n - r.prompt, "lengths agree");
    return r;
}

/* generated tokens and log-probs equal (tokens exactly, log-probs within tol) */
static int same_continuation(const seq *a, const seq *b, double tol, const char *what) {
    int ok = a->ngen == b->ngen;
    for (int64_t i = 0; ok && i < a->ngen; i++)
        ok = a->tok[a->prompt + i] == b->tok[b->prompt + i] && fabs(a->lp[i] - b->lp[i]) <= tol;
    CHECK(ok, "%s: continuations differ (%lld vs %lld tokens)", what, (long long)a->ngen,
          (long long)b->ngen);
    return ok;
}

static segrl_model *load_fixture(const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", SEGRL_FIXTURES_DIR, name);
    segrl_model *m;
    OK(segrl_model_load(dir, SEGRL_DTYPE_F32, segrl_cpu(), &m));
    return m;
}

/* log softmax(logits / temp) of every position of one sequence, by a full forward */
static void full_logprobs(segrl_model *m, const int32_t *tok, int64_t n, float temp, int64_t V,
                          double *out /* n * V */) {
    int64_t sh[2] = {1, n};
    segrl_tensor *tt, *lt;
    OK(segrl_tensor_from_host(tok, SEGRL_DTYPE_I32, 2, sh, segrl_cpu(), &tt));
    OK(segrl_model_forward(m, tt, NULL, SEGRL_OUTPUT_LOGITS, &lt));
    float *l = h_alloc(4 * n * V);
    OK(segrl_tensor_to_host(lt, l, 4 * n * V));
    for (int64_t i = 0; i < n; i++) {
        double mx = -1e300, s = 0;
        for (int64_t v = 0; v < V; v++) mx = fmax(mx, l[i * V + v] / temp);
        for (int64_t v = 0; v < V; v++) s += exp(l[i * V + v] / temp - mx);
        for (int64_t v = 0; v < V; v++) out[i * V + v] = l[i * V + v] / temp - mx - log(s);
    }
    free(l);
    segrl_tensor_free(tt);
    segrl_tensor_free(lt);
}

/* the state's log-probs equal a full recomputation; greedy: tokens are the argmax */
static void check_against_full(segrl_model *m, const seq *s, float temp, int greedy,
                               const char *what) {
    int64_t V = 96;
    double *lp = h_alloc(8 * s->n * V);
    full_logprobs(m, s->tok, s->n, greedy ? 1.0f : temp, V, lp);
    int64_t bad = 0, notmax = 0;
    double worst = 0;
    for (int64_t i = 0; i < s->ngen; i++) {
        int64_t p = s->prompt + i - 1; /* the position that predicts token prompt + i */
        int32_t t = s->tok[s->prompt + i];
        double want = lp[p * V + t], d = fabs(want - s->lp[i]);
        worst = fmax(worst, d);
        if (d > 2e-5) bad++;
        if (greedy) {
            int64_t am = 0;
            for (int64_t v = 1; v < V; v++)
                if (lp[p * V + v] > lp[p * V + am]) am = v;
            notmax += am != t;
        }
    }
    CHECK(bad == 0, "%s: %lld of %lld log-probs differ from the full recomputation (max %g)",
          what, (long long)bad, (long long)s->ngen, worst);
    if (greedy) CHECK(notmax == 0, "%s: %lld greedy tokens are not the argmax", what, (long long)notmax);
    free(lp);
}

static segrl_sampling sampling(float temp, float top_p, int32_t top_k, int32_t max_new) {
    segrl_sampling s = segrl_sampling_default();
    s.temperature = temp;
    s.top_p = top_p;
    s.top_k = top_k;
    s.max_new_tokens = max_new;
    return s;
}

/* three prompts of lengths 1, 4, 7 */
static const int32_t P_TOK[12] = {5, 10, 20, 30, 40, 1, 2, 3, 4, 5, 6, 7};
static const int64_t P_OFF[4] = {0, 1, 5, 12};

static void test_cache_vs_full(segrl_model *m) {
    struct {
        float temp, top_p;
        int32_t top_k;
        const char *what;
    } cases[] = {{0.0f, 1.0f, 0, "greedy"},
                 {1.0f, 1.0f, 0, "T=1"},
                 {0.7f, 0.9f, 0, "T=0.7 top_p=0.9"},
                 {1.3f, 1.0f, 10, "T=1.3 top_k=10"},
                 {0.9f, 0.8f, 5, "T=0.9 top_p=0.8 top_k=5"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        segrl_gen_state *st[3];
        uint64_t seeds[3] = {11, 12, 13};
        OK(segrl_gen_create(m, 3, P_TOK, P_OFF, seeds, st));
        segrl_sampling s = sampling(cases[c].temp, cases[c].top_p, cases[c].top_k, 20);
        OK(segrl_gen_extend(m, st, 3, &s));
        for (int i = 0; i < 3; i++) {
            seq q = read_state(st[i]);
            CHECK(q.ngen == 20 && q.fin == SEGRL_FINISH_NONE, "%s: 20 tokens", cases[c].what);
            CHECK(memcmp(q.tok, P_TOK + P_OFF[i], 4 * (P_OFF[i + 1] - P_OFF[i])) == 0,
                  "prompt kept");
            check_against_full(m, &q, cases[c].temp, cases[c].temp == 0, cases[c].what);
            segrl_gen_free(st[i]);
        }
    }
}

static void test_top_k_one_is_greedy(segrl_model *m) {
    segrl_gen_state *a[3], *b[3];
    OK(segrl_gen_create(m, 3, P_TOK, P_OFF, NULL, a));
    OK(segrl_gen_create(m, 3, P_TOK, P_OFF, NULL, b));
    segrl_sampling g = sampling(0, 1, 0, 12), k1 = sampling(1.0f, 1.0f, 1, 12);
    OK(segrl_gen_extend(m, a, 3, &g));
    OK(segrl_gen_extend(m, b, 3, &k1));
    for (int i = 0; i < 3; i++) {
        seq x = read_state(a[i]), y = read_state(b[i]);
        int same = x.ngen == y.ngen && !memcmp(x.tok, y.tok, 4 * x.n);
        CHECK(same, "top_k=1 picks the greedy tokens (prompt %d)", i);
        segrl_gen_free(a[i]);
        segrl_gen_free(b[i]);
    }
}

static void test_batch_independence_and_determinism(segrl_model *m) {
    segrl_sampling s = sampling(1.0f, 0.95f, 0, 16);
    /* prompt 2 with seed 99: alone, and in a batch with the others */
    segrl_gen_state *alone, *batch[3], *again[3];
    int32_t p2[7];
    memcpy(p2, P_TOK + 5, sizeof p2);
    int64_t off[2] = {0, 7};
    uint64_t sd = 99, seeds[3] = {1, 2, 99};
    OK(segrl_gen_create(m, 1, p2, off, &sd, &alone));
    OK(segrl_gen_create(m, 3, P_TOK, P_OFF, seeds, batch));
    OK(segrl_gen_create(m, 3, P_TOK, P_OFF, seeds, again));
    OK(segrl_gen_extend(m, &alone, 1, &s));
    OK(segrl_gen_extend(m, batch, 3, &s));
    OK(segrl_gen_extend(m, again, 3, &s));
    seq a = read_state(alone), b = read_state(batch[2]);
    same_continuation(&a, &b, 1e-5, "alone vs in a batch");
    for (int i = 0; i < 3; i++) {
        seq x = read_state(batch[i]), y = read_state(again[i]);
        CHECK(x.ngen == y.ngen && !memcmp(x.tok, y.tok, 4 * x.n) && !memcmp(x.lp, y.lp, 4 * x.ngen),
              "same seeds, same run (bitwise)");
    }
    seq x0 = read_state(batch[0]), x1 = read_state(batch[1]);
    CHECK(memcmp(x0.tok + x0.prompt, x1.tok + x1.prompt, 4 * 16) != 0,
          "different seeds and prompts give different samples");
    /* other seed for the same prompt: another continuation */
    segrl_gen_state *other;
    sd = 100;
    OK(segrl_gen_create(m, 1, p2, off, &sd, &other));
    OK(segrl_gen_extend(m, &other, 1, &s));
    seq o = read_state(other);
    CHECK(memcmp(o.tok + o.prompt, a.tok + a.prompt, 4 * 16) != 0, "another seed differs");
    segrl_gen_free(other);
    segrl_gen_free(alone);
    for (int i = 0; i < 3; i++) {
        segrl_gen_free(batch[i]);
        segrl_gen_free(again[i]);
    }
}

static void test_multi_call(segrl_model *m) {
    segrl_sampling s8 = sampling(0.8f, 1.0f, 0, 8), s3 = sampling(0.8f, 1.0f, 0, 3),
                   s5 = sampling(0.8f, 1.0f, 0, 5);
    segrl_gen_state *a[3], *b[3];
    OK(segrl_gen_create(m, 3, P_TOK, P_OFF, NULL, a));
    OK(segrl_gen_create(m, 3, P_TOK, P_OFF, NULL, b));
    OK(segrl_gen_extend(m, a, 3, &s8));
    OK(segrl_gen_extend(m, b, 3, &s3));
    OK(segrl_gen_extend(m, b + 1, 2, &s5)); /* different batch compositions on the way */
    OK(segrl_gen_extend(m, b, 1, &s5));
    for (int i = 0; i < 3; i++) {
        seq x = read_state(a[i]), y = read_state(b[i]);
        same_continuation(&x, &y, 1e-5, "8 tokens at once vs 3 + 5");
        segrl_gen_free(a[i]);
        segrl_gen_free(b[i]);
    }
}

/* a rollout tree: root (prompt) -> 5 tokens -> fork 3 -> 6 tokens each -> fork child 1 into 2
 * -> 4 tokens each; every node's continuation equals an independent state created from the
 * node's tokens with the same seed */
static void test_fork(segrl_model *m) {
    segrl_sampling s5 = sampling(1.0f, 0.9f, 20, 5), s6 = sampling(1.0f, 0.9f, 20, 6),
                   s4 = sampling(1.0f, 0.9f, 20, 4);
    int64_t off[2] = {0, 4};
    uint64_t sd = 7;
    segrl_gen_state *root;
    OK(segrl_gen_create(m, 1, P_TOK + 1, off, &sd, &root));
    OK(segrl_gen_extend(m, &root, 1, &s5));
    seq r = read_state(root);
    segrl_gen_state *kids[3];
    uint64_t kseeds[3] = {100, 200, 300};
    OK(segrl_gen_fork(root, 3, kseeds, kids));
    seq rk = read_state(kids[0]);
    CHECK(rk.n == r.n && !memcmp(rk.tok, r.tok, 4 * r.n) && !memcmp(rk.lp, r.lp, 4 * r.ngen),
          "a fork starts with its parent's tokens and log-probs");
    OK(segrl_gen_extend(m, kids, 3, &s6));
    /* the parent is untouched and can still be extended (branched again later) */
    seq r2 = read_state(root);
    CHECK(r2.n == r.n, "forking leaves the parent as it was");
    segrl_gen_state *grand[2];
    uint64_t gseeds[2] = {1000, 2000};
    OK(segrl_gen_fork(kids[1], 2, gseeds, grand));
    OK(segrl_gen_extend(m, grand, 2, &s4));

    for (int k = 0; k < 3; k++) {
        /* independent: created from the root's tokens (prompt + 5) with the child's seed */
        segrl_gen_state *ind;
        int64_t o2[2] = {0, r.n};
        OK(segrl_gen_create(m, 1, r.tok, o2, &kseeds[k], &ind));
        OK(segrl_gen_extend(m, &ind, 1, &s6));
        seq a = read_state(kids[k]), b = read_state(ind);
        /* compare the 6 tokens after the fork point */
        int ok = a.n == b.n;
        for (int64_t i = 0; ok && i < 6; i++)
            ok = a.tok[r.n + i] == b.tok[r.n + i] && fabs(a.lp[r.ngen + i] - b.lp[i]) < 1e-5;
        CHECK(ok, "fork %d equals an independent state with its seed", k);
        check_against_full(m, &a, 1.0f, 0, "forked child vs full recomputation");
        segrl_gen_free(ind);
    }
    seq k1 = read_state(kids[1]);
    for (int g = 0; g < 2; g++) {
        segrl_gen_state *ind;
        int64_t o2[2] = {0, k1.n};
        OK(segrl_gen_create(m, 1, k1.tok, o2, &gseeds[g], &ind));
        OK(segrl_gen_extend(m, &ind, 1, &s4));
        seq a = read_state(grand[g]), b = read_state(ind);
        int ok = a.n == b.n;
        for (int64_t i = 0; ok && i < 4; i++)
            ok = a.tok[k1.n + i] == b.tok[k1.n + i] && fabs(a.lp[k1.ngen + i] - b.lp[i]) < 1e-5;
        CHECK(ok, "grandchild %d equals an independent state", g);
        check_against_full(m, &a, 1.0f, 0, "grandchild vs full recomputation");
        segrl_gen_free(ind);
    }
    /* free the parent first: the children keep the shared cache alive */
    segrl_gen_free(root);
    segrl_gen_free(kids[1]);
    OK(segrl_gen_extend(m, grand, 2, &s4));
    seq a = read_state(grand[0]);
    CHECK(a.ngen == r.ngen + 6 + 8, "a grandchild extends after its ancestors are freed");
    check_against_full(m, &a, 1.0f, 0, "after freeing ancestors");
    segrl_gen_free(kids[0]);
    segrl_gen_free(kids[2]);
    segrl_gen_free(grand[0]);
    segrl_gen_free(grand[1]);
}

static void test_stops(segrl_model *m) {
    segrl_sampling s = sampling(1.0f, 1.0f, 0, 20);
    segrl_gen_state *st[3];
    OK(segrl_gen_create(m, 3, P_TOK, P_OFF, NULL, st));
    OK(segrl_gen_extend(m, st, 3, &s));
    seq free_run[3];
    for (int i = 0; i < 3; i++) {
        free_run[i] = read_state(st[i]);
        segrl_gen_free(st[i]);
    }
    /* stop at the token prompt 1 sampled at step 6 (first occurrence) */
    int32_t stop = free_run[1].tok[free_run[1].prompt + 6];
    int64_t first = 0;
    while (free_run[1].tok[free_run[1].prompt + first] != stop) first++;
    s.stop_token_ids = &stop;
    s.num_stop_token_ids = 1;
    OK(segrl_gen_create(m, 3, P_TOK, P_OFF, NULL, st));
    OK(segrl_gen_extend(m, st, 3, &s));
    for (int i = 0; i < 3; i++) {
        seq q = read_state(st[i]);
        int64_t want = 20;
        for (int64_t j = 0; j < 20; j++)
            if (free_run[i].tok[free_run[i].prompt + j] == stop) {
                want = j + 1;
                break;
            }
        CHECK(q.ngen == want, "prompt %d stops after %lld tokens (got %lld)", i, (long long)want,
              (long long)q.ngen);
        CHECK(q.fin == (want < 20 || q.tok[q.n - 1] == stop ? SEGRL_FINISH_STOP_TOKEN
                                                            : SEGRL_FINISH_NONE),
              "finish reason %d", (int)q.fin);
        CHECK(!memcmp(q.tok, free_run[i].tok, 4 * q.n), "same tokens up to the stop");
        /* rows that stop leave the batch (compacted once half have): the rest is unchanged */
        check_against_full(m, &q, 1.0f, 0, "with stops");
    }
    /* a finished state is left alone by later extensions */
    seq before = read_state(st[1]);
    CHECK(before.fin == SEGRL_FINISH_STOP_TOKEN && before.ngen == first + 1, "stopped at %lld",
          (long long)first + 1);
    OK(segrl_gen_extend(m, st, 3, &s));
    seq after = read_state(st[1]);
    CHECK(after.n == before.n, "finished states do not grow");
    for (int i = 0; i < 3; i++) {
        /* open rows kept their caches through the compaction and went on */
        seq q = read_state(st[i]);
        check_against_full(m, &q, 1.0f, 0, "extended after a compacted run");
        segrl_gen_free(st[i]);
    }

    /* 16 rows, half of them stopping early (stop ids: the tokens 8 of the rows sampled at
     * step 2 in a free run): the batch is compacted mid-call; every row's log-probs match a
     * full recomputation, then and after a further extension */
    int32_t ptok[16 * 3];
    int64_t poff[17];
    for (int i = 0; i < 16; i++) {
        for (int j = 0; j < 3; j++) ptok[i * 3 + j] = (i * 7 + j * 13) % 96;
        poff[i] = i * 3;
    }
    poff[16] = 48;
    segrl_gen_state *many[16];
    segrl_sampling f = sampling(1.0f, 1.0f, 0, 12);
    OK(segrl_gen_create(m, 16, ptok, poff, NULL, many));
    OK(segrl_gen_extend(m, many, 16, &f));
    int32_t stops[8];
    for (int i = 0; i < 8; i++) {
        seq q = read_state(many[i]);
        stops[i] = q.tok[q.prompt + 2];
        segrl_gen_free(many[i]);
    }
    for (int i = 8; i < 16; i++) segrl_gen_free(many[i]);
    f.stop_token_ids = stops;
    f.num_stop_token_ids = 8;
    OK(segrl_gen_create(m, 16, ptok, poff, NULL, many));
    OK(segrl_gen_extend(m, many, 16, &f));
    int stopped = 0;
    for (int i = 0; i < 16; i++) {
        seq q = read_state(many[i]);
        stopped += q.fin == SEGRL_FINISH_STOP_TOKEN && q.ngen <= 3;
        check_against_full(m, &q, 1.0f, 0, "16 rows, early stops");
    }
    CHECK(stopped >= 8, "at least 8 of 16 rows stopped by step 3 (%d)", stopped);
    f.num_stop_token_ids = 0;
    OK(segrl_gen_extend(m, many, 16, &f));
    for (int i = 0; i < 16; i++) {
        seq q = read_state(many[i]);
        check_against_full(m, &q, 1.0f, 0, "16 rows, extended after the compaction");
        segrl_gen_free(many[i]);
    }
}

static void test_context_limit(void) {
    segrl_model_config c = segrl_model_config_default();
    c.vocab_size = 50;
    c.hidden_size = 32;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.max_position_embeddings = 12;
    segrl_model *m;
    OK(segrl_model_init(&c, 3, SEGRL_DTYPE_F32, segrl_cpu(), &m));
    segrl_gen_state *st[3];
    OK(segrl_gen_create(m, 3, P_TOK, P_OFF, NULL, st));
    segrl_sampling s = sampling(1.0f, 1.0f, 0, 30);
    OK(segrl_gen_extend(m, st, 3, &s));
    for (int i = 0; i < 3; i++) {
        seq q = read_state(st[i]);
        CHECK(q.n == 12 && q.fin == SEGRL_FINISH_CONTEXT, "prompt %d stops at the context (%lld)",
              i, (long long)q.n);
        segrl_gen_free(st[i]);
    }
    int32_t long_prompt[13] = {0};
    int64_t off[2] = {0, 13};
    segrl_gen_state *x = NULL;
    CHECK(segrl_gen_create(m, 1, long_prompt, off, NULL, &x) == SEGRL_ERR_INVALID && !x,
          "a prompt longer than the context is refused: %s", segrl_last_error());
    /* states of another model are refused */
    segrl_model *m2 = load_fixture("qwen2_tied");
    OK(segrl_gen_create(m2, 1, P_TOK, P_OFF, NULL, &x));
    CHECK(segrl_gen_extend(m, &x, 1, &s) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "another model"),
          "state of another model: %s", segrl_last_error());
    segrl_gen_free(x);
    segrl_model_free(m2);
    segrl_model_free(m);
}

/* stop strings: a model whose vocabulary is a trained tokenizer's */
static void test_stop_strings(void) {
    const char *corpus =
        "the cat sat on the mat. the dog sat on the log. a cat and a dog met on a mat.\n"
        "numbers: 12 + 30 = 42, 7 * 6 = 42. the answer is 42.\n";
    char path[] = "/tmp/segrl-test-torch-gen-XXXXXX";
    if (!mkdtemp(path)) {
        printf("mkdtemp failed\n");
        exit(2);
    }
    char tj[600];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", path);
    const char *special[1] = {"<|endoftext|>"};
    OK(segrl_tokenizer_train(corpus, strlen(corpus), 300, special, 1, tj));
    segrl_tokenizer *tok;
    OK(segrl_tokenizer_load(tj, &tok));
    segrl_model_config c = segrl_model_config_default();
    c.vocab_size = (int32_t)segrl_tokenizer_vocab_size(tok);
    c.hidden_size = 32;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.initializer_range = 0.5f;
    segrl_model *m;
    OK(segrl_model_init(&c, 4, SEGRL_DTYPE_F32, segrl_cpu(), &m));
    int32_t prompt[2] = {10, 20};
    int64_t off[2] = {0, 2};
    uint64_t sd = 5;
    segrl_gen_state *st;
    OK(segrl_gen_create(m, 1, prompt, off, &sd, &st));
    segrl_sampling s = sampling(1.0f, 1.0f, 0, 30);
    OK(segrl_gen_extend(m, &st, 1, &s));
    seq q = read_state(st);
    segrl_gen_free(st);
    /* the stop string: the text of generated tokens 8 and 9 joined, when non-empty */
    char *text;
    size_t len;
    OK(segrl_tokenizer_decode(tok, q.tok + q.prompt + 8, 2, 0, &text, &len));
    if (len > 0 && !memchr(text, 0, len)) {
        /* where does the stop string first end in the generated text? */
        char *full;
        size_t flen;
        int64_t want = -1;
        for (int64_t j = 1; j <= q.ngen && want < 0; j++) {
            OK(segrl_tokenizer_decode(tok, q.tok + q.prompt, j, 0, &full, &flen));
            if (flen >= len && memmem(full, flen, text, len)) want = j;
            segrl_free(full);
        }
        const char *stops[1] = {text};
        s.stop_strings = stops;
        s.num_stop_strings = 1;
        s.tokenizer = tok;
        OK(segrl_gen_create(m, 1, prompt, off, &sd, &st));
        OK(segrl_gen_extend(m, &st, 1, &s));
        seq r = read_state(st);
        CHECK(want > 0 && r.ngen == want && r.fin == SEGRL_FINISH_STOP_STRING,
              "stops where the stop string is complete (%lld tokens, want %lld, finish %d)",
              (long long)r.ngen, (long long)want, (int)r.fin);
        CHECK(!memcmp(r.tok, q.tok, 4 * r.n), "same tokens up to the stop string");
        segrl_gen_free(st);
        s.tokenizer = NULL;
        CHECK(segrl_gen_create(m, 1, prompt, off, &sd, &st) == SEGRL_OK &&
                  segrl_gen_extend(m, &st, 1, &s) == SEGRL_ERR_INVALID &&
                  strstr(segrl_last_error(), "need a tokenizer"),
              "stop strings without a tokenizer: %s", segrl_last_error());
        segrl_gen_free(st);
    } else {
        CHECK(0, "the generated tokens 8..9 decode to no usable text");
    }
    segrl_free(text);
    segrl_tokenizer_free(tok);
    segrl_model_free(m);
    unlink(tj);
    rmdir(path);
}

static void test_generate_call(segrl_model *m) {
    segrl_sampling s = sampling(0.9f, 0.95f, 0, 10);
    int32_t toks[3 * 4 * 10];
    float lps[3 * 4 * 10];
    int32_t lens[12], fin[12];
    OK(segrl_generate(m, 3, P_TOK, P_OFF, 4, &s, 1000, toks, lps, lens, fin));
    for (int i = 0; i < 3; i++) {
        segrl_gen_state *p, *kids[4];
        uint64_t seeds[4];
        for (int j = 0; j < 4; j++) seeds[j] = 1000 + (uint64_t)(i * 4 + j);
        int64_t off[2] = {0, P_OFF[i + 1] - P_OFF[i]};
        OK(segrl_gen_create(m, 1, P_TOK + P_OFF[i], off, NULL, &p));
        OK(segrl_gen_fork(p, 4, seeds, kids));
        OK(segrl_gen_extend(m, kids, 4, &s));
        for (int j = 0; j < 4; j++) {
            seq q = read_state(kids[j]);
            int r = i * 4 + j, ok = lens[r] == q.ngen && fin[r] == (int32_t)q.fin;
            for (int64_t t = 0; ok && t < q.ngen; t++)
                ok = toks[r * 10 + t] == q.tok[q.prompt + t] && fabsf(lps[r * 10 + t] - q.lp[t]) < 1e-5f;
            CHECK(ok, "segrl_generate row %d equals create + fork + extend", r);
            segrl_gen_free(kids[j]);
        }
        segrl_gen_free(p);
    }
    /* samples of one prompt differ from each other */
    CHECK(memcmp(toks, toks + 10, 40) != 0, "num_samples gives different samples");
}

static void test_errors(segrl_model *m) {
    segrl_gen_state *st;
    int64_t bad_off[3] = {0, 2, 1};
    CHECK(segrl_gen_create(m, 2, P_TOK, bad_off, NULL, &st) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "segrl_gen_create: offsets"),
          "decreasing offsets: %s", segrl_last_error());
    int32_t out_of_vocab[2] = {3, 96};
    int64_t off[2] = {0, 2};
    CHECK(segrl_gen_create(m, 1, out_of_vocab, off, NULL, &st) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "tokens[1] = 96 outside [0, 96)"),
          "token outside the vocabulary: %s", segrl_last_error());
    OK(segrl_gen_create(m, 1, P_TOK, off, NULL, &st));
    segrl_sampling s = sampling(-1.0f, 1.0f, 0, 4);
    CHECK(segrl_gen_extend(m, &st, 1, &s) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "temperature"),
          "negative temperature: %s", segrl_last_error());
    s = sampling(1.0f, 0.0f, 0, 4);
    CHECK(segrl_gen_extend(m, &st, 1, &s) == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "top_p"),
          "top_p 0: %s", segrl_last_error());
    s = sampling(1.0f, 1.0f, 0, 4);
    segrl_gen_state *twice[2] = {st, st};
    CHECK(segrl_gen_extend(m, twice, 2, &s) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "twice"),
          "a state twice: %s", segrl_last_error());
    seq q = read_state(st);
    CHECK(q.ngen == 0, "failed calls leave the state alone");
    CHECK(segrl_gen_fork(st, 0, NULL, twice) == SEGRL_ERR_INVALID, "fork into 0");
    segrl_gen_free(st);
}

int main(void) {
    segrl_model *m = load_fixture("qwen2_tied");
    test_cache_vs_full(m);
    test_top_k_one_is_greedy(m);
    test_batch_independence_and_determinism(m);
    test_multi_call(m);
    test_fork(m);
    test_stops(m);
    test_generate_call(m);
    test_errors(m);
    segrl_model_free(m);
    test_context_limit();
    test_stop_strings();
    return h_finish();
}
