/* segrl-make-tiny-model — writes a random-initialized Llama-style (or Qwen2) model directory that
 * Hugging Face transformers and segrl_model_load both open: config.json, model.safetensors and
 * tokenizer.json. For tests and the CPU demo.
 *
 *   segrl-make-tiny-model --out DIR [--layers 4] [--hidden 128] [--heads 4] [--kv-heads 2]
 *       [--intermediate 0 (Llama rule)] [--vocab 0 (the tokenizer's size)] [--seed 0]
 *       [--family llama|qwen2] [--untied] [--max-pos 2048] [--rope-theta 10000] [--std 0.02]
 *       [--dtype f32|bf16] [--corpus FILE]
 *
 * Tokenizer: a byte-level BPE (segrl_tokenizer_train) with the special tokens <|endoftext|>,
 * <|im_start|>, <|im_end|> (ids 0, 1, 2) and the 256 bytes (ids 3..258); with --corpus, merges
 * learnt from that file up to --vocab tokens; without, no merges (a plain byte-level tokenizer).
 * The model's vocab_size is --vocab, or the tokenizer's size when 0 (it must not be smaller than
 * the tokenizer's). eos_token_id is <|im_end|> (the end of a ChatML turn), bos_token_id none.
 * Weights: N(0, std^2) matrices, unit norms, zero biases, from --seed (segrl_model_init). */
#define _POSIX_C_SOURCE 200809L

#include "segrl/core.h"
#include "segrl/tokenizer.h"
#include "segrl/torch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: segrl-make-tiny-model --out DIR [--layers N] [--hidden N] [--heads N]\n"
            "         [--kv-heads N] [--intermediate N] [--vocab N] [--seed N]\n"
            "         [--family llama|qwen2] [--untied] [--max-pos N] [--rope-theta X]\n"
            "         [--std X] [--dtype f32|bf16] [--corpus FILE]\n");
}

static int die(const char *what) {
    fprintf(stderr, "segrl-make-tiny-model: %s: %s\n", what, segrl_last_error());
    return 1;
}

static int parse_long(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    fclose(f);
    if (buf) *len = n;
    return buf;
}

int main(int argc, char **argv) {
    segrl_model_config c = segrl_model_config_default();
    c.vocab_size = 0;
    c.intermediate_size = 0;
    const char *out = NULL, *corpus = NULL;
    long long seed = 0, v;
    segrl_dtype dtype = SEGRL_DTYPE_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int need = 1, ok = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--untied")) {
            c.tie_word_embeddings = 0;
            need = 0;
        } else if (!val) {
            ok = 0;
        } else if (!strcmp(a, "--out")) {
            out = val;
        } else if (!strcmp(a, "--corpus")) {
            corpus = val;
        } else if (!strcmp(a, "--layers")) {
            ok = parse_long(val, 0, 4096, &v), c.num_hidden_layers = (int32_t)v;
        } else if (!strcmp(a, "--hidden")) {
            ok = parse_long(val, 1, 1 << 20, &v), c.hidden_size = (int32_t)v;
        } else if (!strcmp(a, "--heads")) {
            ok = parse_long(val, 1, 4096, &v), c.num_attention_heads = (int32_t)v;
        } else if (!strcmp(a, "--kv-heads")) {
            ok = parse_long(val, 1, 4096, &v), c.num_key_value_heads = (int32_t)v;
        } else if (!strcmp(a, "--intermediate")) {
            ok = parse_long(val, 0, 1 << 20, &v), c.intermediate_size = (int32_t)v;
        } else if (!strcmp(a, "--vocab")) {
            ok = parse_long(val, 0, 1 << 24, &v), c.vocab_size = (int32_t)v;
        } else if (!strcmp(a, "--seed")) {
            ok = parse_long(val, 0, INT64_MAX, &seed);
        } else if (!strcmp(a, "--max-pos")) {
            ok = parse_long(val, 1, INT32_MAX, &v), c.max_position_embeddings = (int32_t)v;
        } else if (!strcmp(a, "--rope-theta")) {
            c.rope_theta = strtof(val, NULL);
            ok = c.rope_theta > 0;
        } else if (!strcmp(a, "--std")) {
            c.initializer_range = strtof(val, NULL);
            ok = c.initializer_range > 0;
        } else if (!strcmp(a, "--family")) {
            if (!strcmp(val, "llama"))
                c.family = SEGRL_MODEL_LLAMA;
            else if (!strcmp(val, "qwen2"))
                c.family = SEGRL_MODEL_QWEN2;
            else
                ok = 0;
        } else if (!strcmp(a, "--dtype")) {
            if (!strcmp(val, "f32"))
                dtype = SEGRL_DTYPE_F32;
            else if (!strcmp(val, "bf16"))
                dtype = SEGRL_DTYPE_BF16;
            else
                ok = 0;
        } else {
            fprintf(stderr, "segrl-make-tiny-model: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "segrl-make-tiny-model: bad or missing value for %s\n", a);
            return 2;
        }
        i += need;
    }
    if (!out) {
        usage(stderr);
        return 2;
    }
    if (c.num_key_value_heads > c.num_attention_heads) c.num_key_value_heads = c.num_attention_heads;
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "segrl-make-tiny-model: %s: %s\n", out, strerror(errno));
        return 1;
    }

    /* the tokenizer first: it fixes the smallest vocabulary */
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", out);
    const char *special[3] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    size_t len = 0;
    char *text = NULL;
    if (corpus) {
        text = read_all(corpus, &len);
        if (!text) {
            fprintf(stderr, "segrl-make-tiny-model: %s: %s\n", corpus, strerror(errno));
            return 1;
        }
    }
    int64_t want = c.vocab_size > 0 ? c.vocab_size : (corpus ? 512 : 259);
    if (want < 259) want = 259;
    if (segrl_tokenizer_train(text ? text : "", len, want, special, 3, path) != SEGRL_OK)
        return die("training the tokenizer");
    free(text);
    segrl_tokenizer *tok;
    if (segrl_tokenizer_load(path, &tok) != SEGRL_OK) return die("loading the tokenizer back");
    int64_t tv = segrl_tokenizer_vocab_size(tok);
    c.eos_token_id = segrl_tokenizer_token_id(tok, "<|im_end|>");
    c.bos_token_id = -1;
    segrl_tokenizer_free(tok);
    if (c.vocab_size == 0) c.vocab_size = (int32_t)tv;
    if (c.vocab_size < tv) {
        fprintf(stderr,
                "segrl-make-tiny-model: --vocab %d is below the tokenizer's %lld tokens (the "
                "specials and the 256 bytes need 259)\n",
                c.vocab_size, (long long)tv);
        return 2;
    }

    segrl_model *m;
    if (segrl_model_init(&c, (uint64_t)seed, dtype, segrl_cpu(), &m) != SEGRL_OK)
        return die("initializing the model");
    if (segrl_model_save(m, out) != SEGRL_OK) return die("saving the model");
    segrl_model_config r;
    segrl_model_config_get(m, &r);
    int64_t np = 0, total = 0;
    segrl_model_parameters(m, 0, NULL, NULL, &np);
    segrl_tensor **p = malloc(sizeof(void *) * (size_t)np);
    if (p && segrl_model_parameters(m, np, p, NULL, &np) == SEGRL_OK)
        for (int64_t i = 0; i < np; i++) {
            int64_t n = 0;
            segrl_tensor_numel(p[i], &n);
            total += n;
        }
    free(p);
    printf("%s: %s, %d layers, hidden %d, heads %d/%d (head_dim %d), intermediate %d, vocab %d "
           "(tokenizer %lld), %s embeddings, %lld parameters\n",
           out, r.family == SEGRL_MODEL_QWEN2 ? "qwen2" : "llama", r.num_hidden_layers,
           r.hidden_size, r.num_attention_heads, r.num_key_value_heads, r.head_dim,
           r.intermediate_size, r.vocab_size, (long long)tv, r.tie_word_embeddings ? "tied" : "untied",
           (long long)total);
    segrl_model_free(m);
    return 0;
}
