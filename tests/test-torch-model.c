/* test-torch-model — the Llama/Qwen2 model of the ATen bridge, through the C headers only:
 *   logits agree with Hugging Face transformers (tests/fixtures/model/, make_fixtures.py) for a
 *   sharded untied Llama with linear RoPE scaling, a tied Qwen2 and a bf16 untied Qwen2 (MQA);
 *   left padding gives the unpadded logits; save -> load gives identical logits; parameters,
 *   names and gradients; value and score heads; deterministic random init; malformed model
 *   directories give clear errors. */
#define _POSIX_C_SOURCE 200809L

#include "harness.h"

#include "segrl/safetensors.h"
#include "segrl/core.h"
#include "segrl/torch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

typedef struct ref {
    int32_t B, T, V;
    int32_t *tokens, *mask;
    float *logits;
} ref;

static int read_ref(const char *dir, ref *r) {
    char path[1024];
    snprintf(path, sizeof path, "%s/reference.bin", dir);
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int32_t hdr[3];
    int ok = fread(hdr, 4, 3, f) == 3;
    r->B = hdr[0], r->T = hdr[1], r->V = hdr[2];
    size_t n = (size_t)r->B * r->T;
    r->tokens = h_alloc(4 * n);
    r->mask = h_alloc(4 * n);
    r->logits = h_alloc(4 * n * r->V);
    ok = ok && fread(r->tokens, 4, n, f) == n && fread(r->mask, 4, n, f) == n &&
         fread(r->logits, 4, n * r->V, f) == n * r->V;
    fclose(f);
    return ok;
}

static void free_ref(ref *r) {
    free(r->tokens);
    free(r->mask);
    free(r->logits);
}

/* logits (B, T, V) f32 on the host; *out must be freed */
static float *logits_of(segrl_model *m, const int32_t *tokens, const int32_t *mask, int64_t B,
                        int64_t T, int64_t V) {
    int64_t shape[2] = {B, T};
    segrl_tensor *tt, *mt = NULL, *lt;
    OK(segrl_tensor_from_host(tokens, SEGRL_DTYPE_I32, 2, shape, segrl_cpu(), &tt));
    if (mask) OK(segrl_tensor_from_host(mask, SEGRL_DTYPE_I32, 2, shape, segrl_cpu(), &mt));
    OK(segrl_model_forward(m, tt, mt, SEGRL_OUTPUT_LOGITS, &lt));
    int64_t sh[4];
    int32_t nd;
    OK(segrl_tensor_shape(lt, 4, sh, &nd));
    CHECK(nd == 3 && sh[0] == B && sh[1] == T && sh[2] == V, "logits shape");
    float *out = h_alloc(4 * (size_t)(B * T * V));
    OK(segrl_tensor_to_host(lt, out, 4 * (size_t)(B * T * V)));
    segrl_tensor_free(tt);
    segrl_tensor_free(mt);
    segrl_tensor_free(lt);
    return out;
}

static void compare_to_reference(segrl_model *m, const ref *r, const char *name, double tol) {
    float *got = logits_of(m, r->tokens, r->mask, r->B, r->T, r->V);
    int64_t bad = 0, n = 0;
    double worst = 0;
    for (int64_t i = 0; i < (int64_t)r->B * r->T; i++) {
        if (!r->mask[i]) continue;
        for (int64_t v = 0; v < r->V; v++) {
            double want = r->logits[i * r->V + v], d = fabs(got[i * r->V + v] - want);
            if (d > worst) worst = d;
            if (!(d <= tol + tol * fabs(want))) bad++;
            n++;
        }
    }
    CHECK(bad == 0, "%s: %lld of %lld logits differ from transformers (max |diff| %.3g)", name,
          (long long)bad, (long long)n, worst);
    printf("  %s: max |logit - transformers| = %.3g over %lld values\n", name, worst, (long long)n);
    free(got);
}

static void test_fixture(const char *name, const char *tmp) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", SEGRL_FIXTURES_DIR, name);
    ref r;
    if (!read_ref(dir, &r)) {
        printf("FAIL %s: reference.bin unreadable\n", name);
        exit(1);
    }
    segrl_model *m;
    OK(segrl_model_load(dir, SEGRL_DTYPE_F32, segrl_cpu(), &m));
    segrl_model_config c;
    OK(segrl_model_config_get(m, &c));
    CHECK(c.vocab_size == r.V, "%s: vocab", name);
    compare_to_reference(m, &r, name, 1e-4);

    /* the left-padded last row equals the same tokens without padding */
    int64_t B = r.B, T = r.T, V = r.V, last = B - 1, pad = 0;
    while (!r.mask[last * T + pad]) pad++;
    float *full = logits_of(m, r.tokens, r.mask, B, T, V);
    float *alone = logits_of(m, r.tokens + last * T + pad, NULL, 1, T - pad, V);
    {
        double *want = h_alloc(8 * (size_t)((T - pad) * V));
        for (int64_t i = 0; i < (T - pad) * V; i++) want[i] = alone[i];
        h_close_f("left padding = unpadded", full + (last * T + pad) * V, want, (T - pad) * V,
                  1e-5, 1e-5);
        free(want);
    }
    free(alone);

    /* save -> load: identical logits */
    char out[1024];
    snprintf(out, sizeof out, "%s/%s-saved", tmp, name);
    OK(segrl_model_save(m, out));
    segrl_model *m2;
    OK(segrl_model_load(out, SEGRL_DTYPE_F32, segrl_cpu(), &m2));
    float *again = logits_of(m2, r.tokens, r.mask, B, T, V);
    h_same_f("save/load round trip", full, again, B * T * V);
    segrl_model_config c2;
    OK(segrl_model_config_get(m2, &c2));
    CHECK(memcmp(&c, &c2, sizeof c) == 0, "%s: config survives save/load", name);
    int64_t n1, n2;
    OK(segrl_model_parameters(m, 0, NULL, NULL, &n1));
    OK(segrl_model_parameters(m2, 0, NULL, NULL, &n2));
    CHECK(n1 == n2, "%s: parameter count survives save/load", name);
    free(again);
    free(full);
    segrl_model_free(m2);

    /* bf16 parameters: close to the f32 logits */
    segrl_model *mb;
    OK(segrl_model_load(dir, SEGRL_DTYPE_BF16, segrl_cpu(), &mb));
    float *lb = logits_of(mb, r.tokens, r.mask, B, T, V);
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < B * T; i++)
        if (r.mask[i])
            for (int64_t v = 0; v < V; v++) {
                worst = fmax(worst, fabs(lb[i * V + v] - r.logits[i * V + v]));
                scale = fmax(scale, fabs(r.logits[i * V + v]));
            }
    /* bf16 keeps 8 bits of mantissa: a few percent of the logits' range after two layers */
    CHECK(worst <= 0.05 * scale, "%s: bf16 logits within 5%% of the range %g (max diff %g)", name,
          scale, worst);
    free(lb);
    segrl_model_free(mb);
    segrl_model_free(m);
    free_ref(&r);
}

static void test_parameters_and_grad(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/qwen2_tied", SEGRL_FIXTURES_DIR);
    segrl_model *m;
    OK(segrl_model_load(dir, SEGRL_DTYPE_F32, segrl_cpu(), &m));
    int64_t n;
    OK(segrl_model_parameters(m, 0, NULL, NULL, &n));
    /* embed + 2 layers * (2 norms + 4 proj + 3 biases + 3 mlp) + final norm; tied: no lm_head */
    CHECK(n == 1 + 2 * 12 + 1, "qwen2_tied parameter count %lld", (long long)n);
    segrl_tensor **p = h_alloc(sizeof(void *) * n);
    const char **names = h_alloc(sizeof(char *) * n);
    OK(segrl_model_parameters(m, n, p, names, &n));
    CHECK(!strcmp(names[0], "model.embed_tokens.weight"), "first name %s", names[0]);
    CHECK(!strcmp(names[2], "model.layers.0.self_attn.q_proj.weight"), "third name %s", names[2]);
    CHECK(!strcmp(names[n - 1], "model.norm.weight"), "last name %s", names[n - 1]);
    int32_t rg = 0;
    OK(segrl_tensor_requires_grad(p[0], &rg));
    CHECK(rg == 1, "parameters require grad");
    segrl_dtype dt;
    OK(segrl_tensor_dtype(p[0], &dt));
    CHECK(dt == SEGRL_DTYPE_F32, "f32 parameters");

    /* d(sum of logits * g)/d(params): every parameter gets a gradient, finite */
    int32_t toks[6] = {3, 14, 15, 92, 65, 35};
    int64_t sh[2] = {1, 6};
    segrl_tensor *tt, *lt, *g;
    OK(segrl_tensor_from_host(toks, SEGRL_DTYPE_I32, 2, sh, segrl_cpu(), &tt));
    OK(segrl_model_forward(m, tt, NULL, SEGRL_OUTPUT_LOGITS, &lt));
    int64_t lsh[3];
    int32_t nd;
    OK(segrl_tensor_shape(lt, 3, lsh, &nd));
    int64_t numel = lsh[0] * lsh[1] * lsh[2];
    float *gh = h_alloc(4 * numel);
    h_seed(5);
    for (int64_t i = 0; i < numel; i++) gh[i] = h_normal();
    OK(segrl_tensor_from_host(gh, SEGRL_DTYPE_F32, 3, lsh, segrl_cpu(), &g));
    OK(segrl_tensor_backward(lt, g));
    int with_grad = 0;
    for (int64_t i = 0; i < n; i++) {
        segrl_tensor *gr = NULL;
        OK(segrl_tensor_grad(p[i], &gr));
        if (gr) {
            int64_t k;
            OK(segrl_tensor_numel(gr, &k));
            float *h = h_alloc(4 * k);
            OK(segrl_tensor_to_host(gr, h, 4 * k));
            int finite = 1;
            for (int64_t j = 0; j < k; j++) finite &= isfinite(h[j]) != 0;
            with_grad += finite;
            free(h);
            segrl_tensor_free(gr);
        }
    }
    CHECK(with_grad == n, "%d of %lld parameters got finite gradients", with_grad, (long long)n);
    OK(segrl_tensor_zero_grad(p[0]));
    {
        segrl_tensor *gr;
        OK(segrl_tensor_grad(p[0], &gr));
        double s = 0;
        int64_t k;
        OK(segrl_tensor_numel(gr, &k));
        float *h = h_alloc(4 * k);
        OK(segrl_tensor_to_host(gr, h, 4 * k));
        for (int64_t j = 0; j < k; j++) s += fabs(h[j]);
        CHECK(s == 0, "zero_grad zeroes");
        free(h);
        segrl_tensor_free(gr);
    }
    /* no-grad scope: the output does not require grad */
    int32_t prev;
    OK(segrl_set_grad_enabled(0, &prev));
    CHECK(segrl_grad_enabled() == 0 && prev == 1, "no-grad scope opens");
    segrl_tensor *l2;
    OK(segrl_model_forward(m, tt, NULL, SEGRL_OUTPUT_LOGITS, &l2));
    OK(segrl_tensor_requires_grad(l2, &rg));
    CHECK(rg == 0, "no graph under no-grad");
    OK(segrl_set_grad_enabled(prev, NULL));
    CHECK(segrl_grad_enabled() == 1, "no-grad scope closes");
    CHECK(segrl_tensor_backward(l2, g) == SEGRL_ERR_INVALID, "backward without a graph fails");

    /* hidden states -> head == logits */
    segrl_tensor *hid, *lh;
    OK(segrl_model_forward(m, tt, NULL, SEGRL_OUTPUT_HIDDEN, &hid));
    OK(segrl_tensor_shape(hid, 3, lsh, &nd));
    CHECK(nd == 3 && lsh[2] == 32, "hidden (B, T, hidden)");
    OK(segrl_model_head(m, hid, NULL, SEGRL_OUTPUT_LOGITS, &lh));
    float *a = h_alloc(4 * numel), *b = h_alloc(4 * numel);
    OK(segrl_tensor_to_host(lh, a, 4 * numel));
    OK(segrl_tensor_to_host(l2, b, 4 * numel));
    h_same_f("head(hidden) = logits", a, b, numel);
    free(a);
    free(b);
    segrl_tensor_free(hid);
    segrl_tensor_free(lh);
    segrl_tensor_free(l2);
    segrl_tensor_free(tt);
    segrl_tensor_free(lt);
    segrl_tensor_free(g);
    free(gh);
    free(p);
    free(names);
    segrl_model_free(m);
}

static void test_heads(const char *tmp) {
    segrl_model_config c = segrl_model_config_default();
    c.vocab_size = 64;
    c.hidden_size = 32;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    segrl_model *m;
    OK(segrl_model_init(&c, 7, SEGRL_DTYPE_F32, segrl_cpu(), &m));
    int32_t toks[2 * 5] = {0, 0, 5, 6, 7, 9, 8, 5, 6, 7};
    int32_t mask[2 * 5] = {0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
    int64_t sh[2] = {2, 5};
    segrl_tensor *tt, *mt, *out;
    OK(segrl_tensor_from_host(toks, SEGRL_DTYPE_I32, 2, sh, segrl_cpu(), &tt));
    OK(segrl_tensor_from_host(mask, SEGRL_DTYPE_I32, 2, sh, segrl_cpu(), &mt));
    CHECK(segrl_model_forward(m, tt, mt, SEGRL_OUTPUT_VALUES, &out) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "no value head"),
          "values without a head: %s", segrl_last_error());
    OK(segrl_model_add_head(m, SEGRL_OUTPUT_VALUES, 0.5f, 1));
    OK(segrl_model_add_head(m, SEGRL_OUTPUT_SCORES, 0.5f, 2));
    CHECK(segrl_model_add_head(m, SEGRL_OUTPUT_SCORES, 0.5f, 2) == SEGRL_ERR_INVALID,
          "a second score head is refused");
    OK(segrl_model_forward(m, tt, mt, SEGRL_OUTPUT_VALUES, &out));
    int64_t osh[4];
    int32_t nd;
    OK(segrl_tensor_shape(out, 4, osh, &nd));
    CHECK(nd == 2 && osh[0] == 2 && osh[1] == 5, "values (B, T)");
    float v[10];
    OK(segrl_tensor_to_host(out, v, sizeof v));
    segrl_tensor_free(out);
    /* row 0 is "5 6 7" left-padded; row 1 ends with "5 6 7" after other tokens: row 0's values
     * at its valid positions equal those of the unpadded sequence */
    segrl_tensor *t3, *o3;
    int64_t sh3[2] = {1, 3};
    OK(segrl_tensor_from_host(toks + 2, SEGRL_DTYPE_I32, 2, sh3, segrl_cpu(), &t3));
    OK(segrl_model_forward(m, t3, NULL, SEGRL_OUTPUT_VALUES, &o3));
    float v3[3];
    OK(segrl_tensor_to_host(o3, v3, sizeof v3));
    double want[3] = {v3[0], v3[1], v3[2]};
    h_close_f("values with left padding", v + 2, want, 3, 1e-5, 1e-5);
    segrl_tensor_free(o3);
    OK(segrl_model_forward(m, t3, NULL, SEGRL_OUTPUT_SCORES, &o3));
    float s3;
    OK(segrl_tensor_to_host(o3, &s3, 4));
    segrl_tensor_free(o3);
    OK(segrl_model_forward(m, tt, mt, SEGRL_OUTPUT_SCORES, &out));
    OK(segrl_tensor_shape(out, 4, osh, &nd));
    CHECK(nd == 1 && osh[0] == 2, "scores (B)");
    float s[2];
    OK(segrl_tensor_to_host(out, s, sizeof s));
    segrl_tensor_free(out);
    CHECK(fabsf(s[0] - s3) < 1e-5f, "score of a left-padded row = unpadded (%g vs %g)", s[0], s3);
    CHECK(fabsf(s[0] - s[1]) > 1e-7f, "different sequences score differently");
    /* right padding: the score is taken at the last valid token */
    int32_t rtoks[5] = {5, 6, 7, 0, 0}, rmask[5] = {1, 1, 1, 0, 0};
    int64_t sh1[2] = {1, 5};
    segrl_tensor *rt, *rm;
    OK(segrl_tensor_from_host(rtoks, SEGRL_DTYPE_I32, 2, sh1, segrl_cpu(), &rt));
    OK(segrl_tensor_from_host(rmask, SEGRL_DTYPE_I32, 2, sh1, segrl_cpu(), &rm));
    OK(segrl_model_forward(m, rt, rm, SEGRL_OUTPUT_SCORES, &out));
    float sr;
    OK(segrl_tensor_to_host(out, &sr, 4));
    CHECK(fabsf(sr - s3) < 1e-5f, "score with right padding = unpadded (%g vs %g)", sr, s3);
    segrl_tensor_free(out);
    segrl_tensor_free(rt);
    segrl_tensor_free(rm);

    /* heads survive save/load; names as TRL / transformers spell them */
    char out_dir[1024];
    snprintf(out_dir, sizeof out_dir, "%s/heads", tmp);
    OK(segrl_model_save(m, out_dir));
    segrl_model *m2;
    OK(segrl_model_load(out_dir, SEGRL_DTYPE_F32, segrl_cpu(), &m2));
    OK(segrl_model_forward(m2, t3, NULL, SEGRL_OUTPUT_SCORES, &o3));
    float s4;
    OK(segrl_tensor_to_host(o3, &s4, 4));
    CHECK(s4 == s3, "score head survives save/load");
    segrl_tensor_free(o3);
    int64_t n;
    OK(segrl_model_parameters(m2, 0, NULL, NULL, &n));
    const char **names = h_alloc(sizeof(char *) * n);
    OK(segrl_model_parameters(m2, n, NULL, names, &n));
    int found = 0;
    for (int64_t i = 0; i < n; i++)
        found += !strcmp(names[i], "v_head.summary.weight") + !strcmp(names[i], "score.weight");
    CHECK(found == 2, "head parameter names");
    free(names);
    segrl_model_free(m2);

    /* the same seed gives the same weights; another seed others */
    segrl_model *a, *b, *d;
    OK(segrl_model_init(&c, 7, SEGRL_DTYPE_F32, segrl_cpu(), &a));
    OK(segrl_model_init(&c, 7, SEGRL_DTYPE_F32, segrl_cpu(), &b));
    OK(segrl_model_init(&c, 8, SEGRL_DTYPE_F32, segrl_cpu(), &d));
    segrl_tensor *pa, *pb, *pd;
    int64_t one = 1;
    OK(segrl_model_parameters(a, 1, &pa, NULL, &one));
    OK(segrl_model_parameters(b, 1, &pb, NULL, &one));
    OK(segrl_model_parameters(d, 1, &pd, NULL, &one));
    float *xa = h_alloc(4 * 64 * 32), *xb = h_alloc(4 * 64 * 32), *xd = h_alloc(4 * 64 * 32);
    OK(segrl_tensor_to_host(pa, xa, 4 * 64 * 32));
    OK(segrl_tensor_to_host(pb, xb, 4 * 64 * 32));
    OK(segrl_tensor_to_host(pd, xd, 4 * 64 * 32));
    CHECK(memcmp(xa, xb, 4 * 64 * 32) == 0, "same seed, same weights");
    CHECK(memcmp(xa, xd, 4 * 64 * 32) != 0, "other seed, other weights");
    double s2 = 0;
    for (int i = 0; i < 64 * 32; i++) s2 += (double)xa[i] * xa[i];
    double sd = sqrt(s2 / (64 * 32));
    CHECK(fabs(sd - 0.02) < 0.003, "init std %g ~ initializer_range 0.02", sd);
    free(xa);
    free(xb);
    free(xd);
    segrl_model_free(a);
    segrl_model_free(b);
    segrl_model_free(d);
    segrl_tensor_free(t3);
    segrl_tensor_free(tt);
    segrl_tensor_free(mt);
    segrl_model_free(m);
}

// ----------------------------------------------------------------------------
// malformed model directories

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        printf("cannot write %s\n", path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static const char *good_config =
    "{\"model_type\": \"llama\", \"vocab_size\": 8, \"hidden_size\": 4, \"intermediate_size\": 8,"
    " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
    " \"tie_word_embeddings\": true, \"hidden_act\": \"silu\"}";

/* the weights of good_config (tied), all values 0.1; skip names `skip`, reshape `bad` */
static void write_weights(const char *dir, const char *skip, const char *bad) {
    static float buf[64];
    for (int i = 0; i < 64; i++) buf[i] = 0.1f;
    struct {
        const char *name;
        int64_t r, c;
    } w[] = {{"model.embed_tokens.weight", 8, 4},
             {"model.layers.0.input_layernorm.weight", 4, 0},
             {"model.layers.0.self_attn.q_proj.weight", 4, 4},
             {"model.layers.0.self_attn.k_proj.weight", 2, 4},
             {"model.layers.0.self_attn.v_proj.weight", 2, 4},
             {"model.layers.0.self_attn.o_proj.weight", 4, 4},
             {"model.layers.0.post_attention_layernorm.weight", 4, 0},
             {"model.layers.0.mlp.gate_proj.weight", 8, 4},
             {"model.layers.0.mlp.up_proj.weight", 8, 4},
             {"model.layers.0.mlp.down_proj.weight", 4, 8},
             {"model.norm.weight", 4, 0}};
    segrl_st_tensor t[16];
    int n = 0;
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        if (skip && !strcmp(w[i].name, skip)) continue;
        memset(&t[n], 0, sizeof t[n]);
        t[n].name = w[i].name;
        t[n].dtype = SEGRL_ST_F32;
        t[n].ndim = w[i].c ? 2 : 1;
        t[n].shape[0] = w[i].r;
        t[n].shape[1] = w[i].c;
        if (bad && !strcmp(w[i].name, bad)) t[n].shape[0] = w[i].r / 2;
        t[n].data = buf;
        n++;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    OK(segrl_safetensors_write(path, t, n, NULL, NULL, 0));
}

static void expect_load_error(const char *dir, segrl_status want, const char *needle,
                              const char *what) {
    segrl_model *m = (segrl_model *)0x1;
    segrl_status st = segrl_model_load(dir, SEGRL_DTYPE_F32, segrl_cpu(), &m);
    CHECK(st == want && strstr(segrl_last_error(), needle) && m == (segrl_model *)0x1,
          "%s: got %s \"%s\", want \"%s\"", what, segrl_status_str(st), segrl_last_error(),
          needle);
}

static void test_malformed(const char *tmp) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/bad", tmp);
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/config.json", dir);

    expect_load_error(dir, SEGRL_ERR_INVALID, "config.json: cannot open", "no config.json");
    write_text(path, "{\"model_type\": \"llama\",");
    expect_load_error(dir, SEGRL_ERR_INVALID, "not a JSON object", "truncated JSON");
    write_text(path, "{\"model_type\": \"gpt2\", \"vocab_size\": 8}");
    expect_load_error(dir, SEGRL_ERR_UNSUPPORTED, "model_type \"gpt2\"", "other family");
    write_text(path, "{\"model_type\": \"llama\", \"vocab_size\": 8}");
    expect_load_error(dir, SEGRL_ERR_INVALID, "\"hidden_size\" is missing", "missing field");
    write_text(path, "{\"model_type\": \"llama\", \"vocab_size\": 8, \"hidden_size\": \"four\","
                     " \"intermediate_size\": 8, \"num_hidden_layers\": 1, "
                     "\"num_attention_heads\": 2}");
    expect_load_error(dir, SEGRL_ERR_INVALID, "\"hidden_size\" is not a number", "string field");
    write_text(path, "{\"model_type\": \"llama\", \"vocab_size\": 8, \"hidden_size\": 5,"
                     " \"intermediate_size\": 8, \"num_hidden_layers\": 1, "
                     "\"num_attention_heads\": 2}");
    expect_load_error(dir, SEGRL_ERR_INVALID, "not divisible", "hidden not divisible by heads");
    write_text(path, "{\"model_type\": \"llama\", \"vocab_size\": 8, \"hidden_size\": 4,"
                     " \"intermediate_size\": 8, \"num_hidden_layers\": 1,"
                     " \"num_attention_heads\": 2, \"rope_scaling\": {\"type\": \"yarn\","
                     " \"factor\": 4}}");
    expect_load_error(dir, SEGRL_ERR_UNSUPPORTED, "\"yarn\"", "unsupported rope scaling");
    write_text(path, good_config);
    expect_load_error(dir, SEGRL_ERR_INVALID, "model.safetensors", "no weights");
    write_weights(dir, "model.layers.0.mlp.up_proj.weight", NULL);
    expect_load_error(dir, SEGRL_ERR_INVALID, "\"model.layers.0.mlp.up_proj.weight\" is missing",
                      "missing tensor");
    write_weights(dir, NULL, "model.layers.0.self_attn.k_proj.weight");
    expect_load_error(dir, SEGRL_ERR_INVALID, "has shape (1, 4), the config needs (2, 4)",
                      "wrong shape");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_text(path, "\x10\0\0\0\0\0\0\0{\"a\":1}");
    expect_load_error(dir, SEGRL_ERR_INVALID, "model.safetensors", "corrupt safetensors");
    write_weights(dir, NULL, NULL);
    segrl_model *m;
    OK(segrl_model_load(dir, SEGRL_DTYPE_F32, segrl_cpu(), &m));
    segrl_model_config c;
    OK(segrl_model_config_get(m, &c));
    CHECK(c.head_dim == 2 && c.num_key_value_heads == 1 && c.tie_word_embeddings == 1,
          "derived config fields");

    /* forward arguments */
    int32_t toks[3] = {1, 2, 8};
    int64_t sh[2] = {1, 3};
    segrl_tensor *tt, *out = NULL;
    OK(segrl_tensor_from_host(toks, SEGRL_DTYPE_I32, 2, sh, segrl_cpu(), &tt));
    CHECK(segrl_model_forward(m, tt, NULL, SEGRL_OUTPUT_LOGITS, &out) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "tokens: id 8 outside [0, 8)") && !out,
          "token id out of range: %s", segrl_last_error());
    segrl_tensor_free(tt);
    int64_t sh1[1] = {3};
    OK(segrl_tensor_from_host(toks, SEGRL_DTYPE_I32, 1, sh1, segrl_cpu(), &tt));
    CHECK(segrl_model_forward(m, tt, NULL, SEGRL_OUTPUT_LOGITS, &out) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "segrl_model_forward: tokens: must be (B, T)"),
          "1-D tokens: %s", segrl_last_error());
    segrl_tensor_free(tt);
    CHECK(segrl_model_load(NULL, SEGRL_DTYPE_F32, segrl_cpu(), &m) == SEGRL_ERR_INVALID,
          "NULL dir");
    segrl_model_free(m);
}

int main(void) {
    char tmp[] = "/tmp/segrl-test-torch-model-XXXXXX";
    if (!mkdtemp(tmp)) {
        printf("mkdtemp failed\n");
        return 2;
    }
    test_fixture("llama_untied", tmp);
    test_fixture("qwen2_tied", tmp);
    test_fixture("qwen2_untied_bf16", tmp);
    test_parameters_and_grad();
    test_heads(tmp);
    test_malformed(tmp);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) printf("(could not remove %s)\n", tmp);
    return h_finish();
}
