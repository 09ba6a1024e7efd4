/* tokenizer.c — byte-level BPE: loading tokenizer.json, encoding, decoding.
 *
 * Encoding follows Hugging Face `tokenizers` (the behaviour of record for these files):
 *   1. added tokens are cut out of the text first, leftmost match first and the longest among
 *      those starting at the same byte (lstrip / rstrip swallow the whitespace beside them);
 *   2. each remaining segment goes through the pre-tokenizer steps (ByteLevel's prefix space,
 *      Split regexes with behaviour Isolated) into pieces;
 *   3. each piece's bytes start as one symbol per byte (GPT-2's byte-to-unicode alphabet names
 *      them in the file) and the adjacent pair with the lowest merge rank is merged, the leftmost
 *      first among equal ranks, until no adjacent pair has a merge (Sennrich et al. 2016);
 *      with ignore_merges a piece that is itself a vocab entry is that token.
 * Decoding concatenates each token's bytes: its characters mapped back through the alphabet, or
 * the token's own UTF-8 when a character is outside it (added tokens such as "<|im_end|>"). */
#include "tok.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ----------------------------------------------------------------------------
// loading

void segrl_tokenizer_free(segrl_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->nsteps; i++)
        if (t->steps[i].re) pcre2_code_free(t->steps[i].re);
    tk_map_free(&t->by_str);
    tk_map_free(&t->by_bytes);
    tk_pairs_free(&t->merges);
    segrl_free(t->tok);
    segrl_free(t->added);
    tk_arena_free(&t->arena);
    segrl_free(t);
}

typedef struct tk_load_ctx {
    const char *fn, *where;
    segrl_tokenizer *t;
    int saw_bytelevel;
} tk_load_ctx;

#define TK_FAIL(ctx, st, ...) tk_fail_at((ctx), (st), __VA_ARGS__)

static segrl_status tk_fail_at(const tk_load_ctx *c, segrl_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static segrl_status tk_fail_at(const tk_load_ctx *c, segrl_status st, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sg_fail(st, "%s: %s: %s", c->fn, c->where, msg);
}

/* The bytes a token string stands for: every character through the byte-level alphabet, or,
 * when one is outside it, the string's own UTF-8 (what HF's ByteLevel decoder does). Writes
 * into out (at least n bytes) and returns the length; *mapped says which case it was. */
static size_t tk_token_bytes_of(const char *s, size_t n, char *out, int *mapped) {
    size_t k = 0, i = 0;
    while (i < n) {
        size_t adv;
        int32_t cp = tk_get_utf8((const uint8_t *)s + i, n - i, &adv);
        if (cp < 0 || cp >= 324 || tk_cp_byte[cp] < 0) {
            memcpy(out, s, n);
            *mapped = 0;
            return n;
        }
        out[k++] = (char)tk_cp_byte[cp];
        i += adv;
    }
    *mapped = 1;
    return k;
}

static int tk_json_id(const cJSON *j, int32_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0 && v < 2147483647.0) || v != (double)(int64_t)v) return 0;
    *out = (int32_t)v;
    return 1;
}

static int tk_json_true(const cJSON *obj, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

/* A string field that must be null/absent (or, with allow_empty, ""). */
static int tk_null_or_empty(const cJSON *obj, const char *key) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    return !j || cJSON_IsNull(j) || (cJSON_IsString(j) && j->valuestring[0] == '\0');
}

static segrl_status tk_add_step(tk_load_ctx *c, int kind, const char *pattern, int literal,
                                const char *field) {
    segrl_tokenizer *t = c->t;
    if (t->nsteps == TK_MAX_STEPS)
        return TK_FAIL(c, SEGRL_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizer steps", field,
                       TK_MAX_STEPS);
    tk_step *s = &t->steps[t->nsteps];
    s->kind = kind;
    s->re = NULL;
    if (kind == TK_STEP_SPLIT) {
        char msg[200];
        s->re = tk_compile(pattern, literal, msg, sizeof msg);
        if (!s->re)
            return TK_FAIL(c, SEGRL_ERR_INVALID, "%s: the regex does not compile: %s", field, msg);
    }
    t->nsteps++;
    return SEGRL_OK;
}

static segrl_status tk_parse_pretok(tk_load_ctx *c, const cJSON *p, const char *field, int depth) {
    if (depth > 4)
        return TK_FAIL(c, SEGRL_ERR_UNSUPPORTED, "%s: pre-tokenizers nested too deeply", field);
    if (!cJSON_IsObject(p))
        return TK_FAIL(c, SEGRL_ERR_UNSUPPORTED,
                       "%s: missing; byte-level BPE needs a ByteLevel pre-tokenizer", field);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
    if (!cJSON_IsString(type)) return TK_FAIL(c, SEGRL_ERR_INVALID, "%s: no \"type\"", field);
    const char *ty = type->valuestring;
    char sub[160];
    if (strcmp(ty, "ByteLevel") == 0) {
        c->saw_bytelevel = 1;
        if (tk_json_true(p, "add_prefix_space"))
            SG_TRY(tk_add_step(c, TK_STEP_PREFIX_SPACE, NULL, 0, field));
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
        if (!ur || cJSON_IsTrue(ur))
            SG_TRY(tk_add_step(c, TK_STEP_SPLIT, tk_gpt2_pattern, 0, field));
        return SEGRL_OK;
    }
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list))
            return TK_FAIL(c, SEGRL_ERR_INVALID, "%s: Sequence without \"pretokenizers\"", field);
        int i = 0;
        for (const cJSON *it = list->child; it; it = it->next, i++) {
            snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", field, i);
            SG_TRY(tk_parse_pretok(c, it, sub, depth + 1));
        }
        return SEGRL_OK;
    }
    if (strcmp(ty, "Split") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const cJSON *str = cJSON_GetObjectItemCaseSensitive(pat, "String");
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        if (!cJSON_IsString(rx) && !cJSON_IsString(str))
            return TK_FAIL(c, SEGRL_ERR_INVALID,
                           "%s: pattern must be {\"Regex\": ...} or "
                           "{\"String\": ...}",
                           field);
        if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0)
            return TK_FAIL(c, SEGRL_ERR_UNSUPPORTED, "%s: behavior '%s' (only Isolated)", field,
                           cJSON_IsString(beh) ? beh->valuestring : "?");
        if (tk_json_true(p, "invert"))
            return TK_FAIL(c, SEGRL_ERR_UNSUPPORTED, "%s: invert true", field);
        if (cJSON_IsString(rx)) return tk_add_step(c, TK_STEP_SPLIT, rx->valuestring, 0, field);
        return tk_add_step(c, TK_STEP_SPLIT, str->valuestring, 1, field);
    }
    return TK_FAIL(c, SEGRL_ERR_UNSUPPORTED, "%s: pre-tokenizer type '%s'", field, ty);
}

static segrl_status tk_parse_normalizer(tk_load_ctx *c, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return SEGRL_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(n, "type");
    if (!cJSON_IsString(type)) return TK_FAIL(c, SEGRL_ERR_INVALID, "normalizer: no \"type\"");
    /* NFC: accepted, not applied (text is taken as given; see the header) */
    if (strcmp(type->valuestring, "NFC") == 0) return SEGRL_OK;
    if (strcmp(type->valuestring, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (cJSON_IsArray(list) && cJSON_GetArraySize(list) == 0) return SEGRL_OK;
        if (cJSON_IsArray(list) && cJSON_GetArraySize(list) == 1)
            return tk_parse_normalizer(c, list->child);
    }
    return TK_FAIL(c, SEGRL_ERR_UNSUPPORTED, "normalizer: type '%s'", type->valuestring);
}

typedef struct tk_added_key {
    uint32_t len;
    int32_t id;
} tk_added_key;

/* longest content first, then by id */
static int tk_cmp_added(const void *a, const void *b) {
    const tk_added_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static segrl_status tk_load_tree(tk_load_ctx *c, const cJSON *root) {
    segrl_tokenizer *t = c->t;
    if (!cJSON_IsObject(root)) return TK_FAIL(c, SEGRL_ERR_INVALID, "not a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return TK_FAIL(c, SEGRL_ERR_INVALID, "no \"model\" object");
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (mtype && (!cJSON_IsString(mtype) || strcmp(mtype->valuestring, "BPE") != 0))
        return TK_FAIL(c, SEGRL_ERR_UNSUPPORTED, "model.type '%s' (only BPE)",
                       cJSON_IsString(mtype) ? mtype->valuestring : "?");
    if (tk_json_true(model, "byte_fallback"))
        return TK_FAIL(c, SEGRL_ERR_UNSUPPORTED, "model.byte_fallback true");
    if (!tk_null_or_empty(model, "continuing_subword_prefix") ||
        !tk_null_or_empty(model, "end_of_word_suffix"))
        return TK_FAIL(c, SEGRL_ERR_UNSUPPORTED,
                       "model.continuing_subword_prefix / end_of_word_suffix");
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (drop && !cJSON_IsNull(drop) && !(cJSON_IsNumber(drop) && drop->valuedouble == 0.0))
        return TK_FAIL(c, SEGRL_ERR_UNSUPPORTED, "model.dropout (BPE dropout)");
    t->ignore_merges = tk_json_true(model, "ignore_merges");

    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab))
        return TK_FAIL(c, SEGRL_ERR_INVALID, "model.vocab is not an object");
    if (!cJSON_IsArray(merges))
        return TK_FAIL(c, SEGRL_ERR_INVALID, "model.merges is not an array");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return TK_FAIL(c, SEGRL_ERR_INVALID, "added_tokens is not an array");

    /* ids */
    int64_t max_id = -1, nv = 0;
    for (const cJSON *it = vocab->child; it; it = it->next, nv++) {
        int32_t id;
        if (!tk_json_id(it, &id))
            return TK_FAIL(c, SEGRL_ERR_INVALID, "model.vocab['%s']: not an id in [0, 2^31-1)",
                           it->string ? it->string : "?");
        if (id > max_id) max_id = id;
    }
    int64_t na = 0;
    if (cJSON_IsArray(added))
        for (const cJSON *it = added->child; it; it = it->next, na++) {
            int32_t id;
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
            if (!tk_json_id(cJSON_GetObjectItemCaseSensitive(it, "id"), &id))
                return TK_FAIL(c, SEGRL_ERR_INVALID, "added_tokens[%lld].id: not an id",
                               (long long)na);
            if (!cJSON_IsString(content) || !content->valuestring[0])
                return TK_FAIL(c, SEGRL_ERR_INVALID, "added_tokens[%lld].content: missing or empty",
                               (long long)na);
            if (id > max_id) max_id = id;
        }
    if (max_id < 0) return TK_FAIL(c, SEGRL_ERR_INVALID, "model.vocab is empty");
    if (max_id >= (1 << 30))
        return TK_FAIL(c, SEGRL_ERR_INVALID, "ids up to %lld: too large", (long long)max_id);
    /* the id table has max_id + 1 entries: a few tokens with huge ids would make a small file
     * allocate gigabytes (found by fuzz/fuzz-tokenizer-json); real vocabularies are dense */
    if (max_id >= 4 * (nv + na) + 65536)
        return TK_FAIL(c, SEGRL_ERR_INVALID, "ids up to %lld for %lld tokens: too sparse",
                       (long long)max_id, (long long)(nv + na));
    t->vocab_size = max_id + 1;
    t->tok = segrl_malloc((size_t)t->vocab_size * sizeof *t->tok);
    if (!t->tok) return TK_FAIL(c, SEGRL_ERR_ALLOC, "out of memory");
    memset(t->tok, 0, (size_t)t->vocab_size * sizeof *t->tok);
    if (tk_map_init(&t->by_str, (uint64_t)(nv + na)) || tk_map_init(&t->by_bytes, (uint64_t)nv) ||
        tk_pairs_init(&t->merges, (uint64_t)cJSON_GetArraySize(merges)))
        return TK_FAIL(c, SEGRL_ERR_ALLOC, "out of memory");

    /* vocab */
    char *scratch = NULL;
    size_t scratch_cap = 0;
    segrl_status st = SEGRL_OK;
    for (const cJSON *it = vocab->child; it; it = it->next) {
        int32_t id = (int32_t)it->valuedouble;
        const char *key = it->string;
        size_t n = strlen(key);
        tk_token *tk = &t->tok[id];
        if (tk->flags & TK_PRESENT) {
            st = TK_FAIL(c, SEGRL_ERR_INVALID, "model.vocab: id %d given to '%s' and '%s'", id,
                         tk->str, key);
            break;
        }
        if (n + 1 > scratch_cap) {
            segrl_free(scratch);
            scratch_cap = 2 * n + 64;
            scratch = segrl_malloc(scratch_cap);
            if (!scratch) {
                st = TK_FAIL(c, SEGRL_ERR_ALLOC, "out of memory");
                break;
            }
        }
        int mapped;
        size_t bn = tk_token_bytes_of(key, n, scratch, &mapped);
        tk->str = tk_arena_dup(&t->arena, key, n);
        tk->bytes = tk_arena_dup(&t->arena, scratch, bn);
        if (!tk->str || !tk->bytes) {
            st = TK_FAIL(c, SEGRL_ERR_ALLOC, "out of memory");
            break;
        }
        tk->str_len = (uint32_t)n;
        tk->bytes_len = (uint32_t)bn;
        tk->flags = TK_PRESENT;
        int r = tk_map_put(&t->by_str, tk->str, tk->str_len, id);
        if (r == 1) {
            st = TK_FAIL(c, SEGRL_ERR_INVALID, "model.vocab: '%s' given twice", key);
            break;
        }
        if (r == 0 && mapped && bn > 0) r = tk_map_put(&t->by_bytes, tk->bytes, tk->bytes_len, id);
        if (r < 0) {
            st = TK_FAIL(c, SEGRL_ERR_ALLOC, "out of memory");
            break;
        }
    }
    segrl_free(scratch);
    if (st) return st;

    /* merges: rank = position in the list */
    int32_t rank = 0;
    for (const cJSON *it = merges->child; it; it = it->next, rank++) {
        const char *a = NULL, *b = NULL;
        size_t an = 0, bn = 0;
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return TK_FAIL(c, SEGRL_ERR_INVALID, "model.merges[%d]: '%s' is not \"a b\"", rank,
                               s);
            a = s;
            an = (size_t)(sp - s);
            b = sp + 1;
            bn = strlen(b);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
                   cJSON_IsString(it->child->next)) {
            a = it->child->valuestring;
            an = strlen(a);
            b = it->child->next->valuestring;
            bn = strlen(b);
        } else {
            return TK_FAIL(c, SEGRL_ERR_INVALID,
                           "model.merges[%d]: neither \"a b\" nor [\"a\", \"b\"]", rank);
        }
        int32_t ia = tk_map_get(&t->by_str, a, (uint32_t)an);
        int32_t ib = tk_map_get(&t->by_str, b, (uint32_t)bn);
        if (ia < 0 || ib < 0)
            return TK_FAIL(c, SEGRL_ERR_INVALID, "model.merges[%d]: '%.*s' is not in the vocab",
                           rank, (int)(ia < 0 ? an : bn), ia < 0 ? a : b);
        char stackbuf[256];
        char *ab = an + bn + 1 <= sizeof stackbuf ? stackbuf : segrl_malloc(an + bn + 1);
        if (!ab) return TK_FAIL(c, SEGRL_ERR_ALLOC, "out of memory");
        memcpy(ab, a, an);
        memcpy(ab + an, b, bn);
        int32_t im = tk_map_get(&t->by_str, ab, (uint32_t)(an + bn));
        if (ab != stackbuf) segrl_free(ab);
        if (im < 0)
            return TK_FAIL(c, SEGRL_ERR_INVALID,
                           "model.merges[%d]: '%.*s%.*s' (the merge) is not in the vocab", rank,
                           (int)an, a, (int)bn, b);
        if (tk_pairs_put(&t->merges, ia, ib, rank, im) < 0)
            return TK_FAIL(c, SEGRL_ERR_ALLOC, "out of memory"); /* a repeat keeps its first rank */
    }

    /* added tokens: their spelling wins over the vocab's for token_id and decode */
    if (na > 0) {
        t->added = segrl_malloc((size_t)na * sizeof *t->added);
        if (!t->added) return TK_FAIL(c, SEGRL_ERR_ALLOC, "out of memory");
    }
    int64_t k = 0;
    if (cJSON_IsArray(added))
        for (const cJSON *it = added->child; it; it = it->next, k++) {
            int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
            const char *content = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
            size_t n = strlen(content);
            tk_token *tk = &t->tok[id];
            if (tk->flags & TK_ADDED)
                return TK_FAIL(c, SEGRL_ERR_INVALID, "added_tokens[%lld]: id %d given twice",
                               (long long)k, id);
            char *bytes = segrl_malloc(n + 1);
            if (!bytes) return TK_FAIL(c, SEGRL_ERR_ALLOC, "out of memory");
            int mapped;
            size_t bn = tk_token_bytes_of(content, n, bytes, &mapped);
            tk->str = tk_arena_dup(&t->arena, content, n);
            tk->bytes = tk_arena_dup(&t->arena, bytes, bn);
            segrl_free(bytes);
            if (!tk->str || !tk->bytes) return TK_FAIL(c, SEGRL_ERR_ALLOC, "out of memory");
            tk->str_len = (uint32_t)n;
            tk->bytes_len = (uint32_t)bn;
            tk->flags = TK_PRESENT | TK_ADDED;
            if (tk_json_true(it, "special")) tk->flags |= TK_SPECIAL;
            if (tk_json_true(it, "lstrip")) tk->flags |= TK_LSTRIP;
            if (tk_json_true(it, "rstrip")) tk->flags |= TK_RSTRIP;
            if (tk_json_true(it, "single_word")) tk->flags |= TK_SINGLE_WORD;
            int32_t prev = tk_map_get(&t->by_str, content, (uint32_t)n);
            if (prev >= 0 && prev != id)
                return TK_FAIL(c, SEGRL_ERR_INVALID,
                               "added_tokens[%lld]: '%s' has id %d but the vocab gives it %d",
                               (long long)k, content, id, prev);
            if (prev < 0 && tk_map_put(&t->by_str, tk->str, tk->str_len, id) < 0)
                return TK_FAIL(c, SEGRL_ERR_ALLOC, "out of memory");
            t->added[t->nadded++] = id;
            t->added_first[(uint8_t)content[0]] = 1;
        }
    if (t->nadded > 1) {
        tk_added_key *keys = segrl_malloc((size_t)t->nadded * sizeof *keys);
        if (!keys) return TK_FAIL(c, SEGRL_ERR_ALLOC, "out of memory");
        for (int64_t i = 0; i < t->nadded; i++)
            keys[i] = (tk_added_key){t->tok[t->added[i]].str_len, t->added[i]};
        qsort(keys, (size_t)t->nadded, sizeof *keys, tk_cmp_added);
        for (int64_t i = 0; i < t->nadded; i++)
            t->added[i] = keys[i].id;
        segrl_free(keys);
    }

    for (int b = 0; b < 256; b++) {
        char ch = (char)b;
        t->byte_id[b] = tk_map_get(&t->by_bytes, &ch, 1);
    }
    t->unk_id = -1;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (cJSON_IsString(unk)) {
        t->unk_id = tk_map_get(&t->by_str, unk->valuestring, (uint32_t)strlen(unk->valuestring));
        if (t->unk_id < 0)
            return TK_FAIL(c, SEGRL_ERR_INVALID, "model.unk_token '%s' is not a token",
                           unk->valuestring);
    }

    SG_TRY(tk_parse_normalizer(c, cJSON_GetObjectItemCaseSensitive(root, "normalizer")));
    SG_TRY(tk_parse_pretok(c, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"),
                           "pre_tokenizer", 0));
    if (!c->saw_bytelevel)
        return TK_FAIL(c, SEGRL_ERR_UNSUPPORTED,
                       "pre_tokenizer: no ByteLevel step (only byte-level BPE is supported)");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (dec && !cJSON_IsNull(dec)) {
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(dec, "type");
        if (!cJSON_IsString(dt) || strcmp(dt->valuestring, "ByteLevel") != 0)
            return TK_FAIL(c, SEGRL_ERR_UNSUPPORTED, "decoder: type '%s' (only ByteLevel)",
                           cJSON_IsString(dt) ? dt->valuestring : "?");
    }
    return SEGRL_OK;
}

static segrl_status tk_load(const char *fn, const char *where, const char *json, size_t len,
                            segrl_tokenizer **out) {
    tk_alphabet_init();
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        long at = (e && e >= json && e <= json + len) ? (long)(e - json) : -1;
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: not valid JSON (near byte %ld)", fn, where, at);
    }
    segrl_tokenizer *t = segrl_malloc(sizeof *t);
    if (!t) {
        cJSON_Delete(root);
        return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    }
    memset(t, 0, sizeof *t);
    tk_load_ctx c = {fn, where, t, 0};
    segrl_status st = tk_load_tree(&c, root);
    cJSON_Delete(root);
    if (st) {
        segrl_tokenizer_free(t);
        return st;
    }
    *out = t;
    return SEGRL_OK;
}

segrl_status segrl_tokenizer_load_json(const char *json, size_t len, segrl_tokenizer **out) {
    const char *fn = "segrl_tokenizer_load_json";
    if (!json) return sg_fail(SEGRL_ERR_INVALID, "%s: json: NULL", fn);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    return tk_load(fn, "json", json, len, out);
}

segrl_status segrl_tokenizer_load(const char *path, segrl_tokenizer **out) {
    const char *fn = "segrl_tokenizer_load";
    if (!path) return sg_fail(SEGRL_ERR_INVALID, "%s: path: NULL", fn);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    tk_bytes name = {0};
    struct stat sb;
    tk_bytes_put(&name, path, strlen(path));
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) tk_bytes_put(&name, "/tokenizer.json", 15);
    if (name.oom) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    FILE *f = fopen(name.p, "rb");
    if (!f) {
        segrl_status st =
            sg_fail(SEGRL_ERR_INVALID, "%s: %s: cannot open: %s", fn, name.p, strerror(errno));
        tk_bytes_free(&name);
        return st;
    }
    tk_bytes text = {0};
    char chunk[1 << 16];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
        tk_bytes_put(&text, chunk, r);
    int bad = ferror(f);
    fclose(f);
    segrl_status st;
    if (text.oom)
        st = sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    else if (bad)
        st = sg_fail(SEGRL_ERR_INVALID, "%s: %s: read error", fn, name.p);
    else
        st = tk_load(fn, name.p, text.p ? text.p : "", text.n, out);
    tk_bytes_free(&text);
    tk_bytes_free(&name);
    return st;
}

int64_t segrl_tokenizer_vocab_size(const segrl_tokenizer *t) { return t ? t->vocab_size : 0; }

// ----------------------------------------------------------------------------
// BPE over one piece

typedef struct tk_sym {
    int32_t id, prev, next;
} tk_sym;

typedef struct tk_cand {
    int32_t rank, pos, left, right;
} tk_cand;

/* min-heap on (rank, pos) */
static int tk_less(const tk_cand *a, const tk_cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void tk_heap_push(tk_cand *h, int64_t *n, tk_cand c) {
    int64_t i = (*n)++;
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!tk_less(&c, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static tk_cand tk_heap_pop(tk_cand *h, int64_t *n) {
    tk_cand top = h[0], last = h[--(*n)];
    int64_t i = 0;
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;
        const tk_cand *best = &last;
        if (l < *n && tk_less(&h[l], best)) m = l, best = &h[l];
        if (r < *n && tk_less(&h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n > 0) h[i] = last;
    return top;
}

typedef struct tk_scratch {
    tk_sym *sym;
    tk_cand *heap;
    int64_t cap;
    int oom;
} tk_scratch;

static int tk_scratch_fit(tk_scratch *s, int64_t n) {
    if (n <= s->cap) return 1;
    int64_t cap = s->cap ? s->cap : 64;
    while (cap < n)
        cap *= 2;
    tk_sym *a = segrl_realloc(s->sym, (size_t)cap * sizeof *a);
    if (a) s->sym = a;
    tk_cand *b = a ? segrl_realloc(s->heap, (size_t)(3 * cap) * sizeof *b) : NULL;
    if (b) s->heap = b;
    if (!a || !b) {
        s->oom = 1;
        return 0;
    }
    s->cap = cap;
    return 1;
}

static void tk_try_pair(const segrl_tokenizer *t, tk_scratch *s, int64_t *hn, int32_t pos) {
    int32_t nx = s->sym[pos].next;
    if (pos < 0 || nx < 0) return;
    int32_t merged;
    int32_t rank = tk_pairs_get(&t->merges, s->sym[pos].id, s->sym[nx].id, &merged);
    if (rank < 0) return;
    tk_cand c = {rank, pos, s->sym[pos].id, s->sym[nx].id};
    tk_heap_push(s->heap, hn, c);
}

static void tk_bpe(const segrl_tokenizer *t, const uint8_t *p, int64_t n, tk_scratch *s,
                   tk_ids *out) {
    if (n <= 0) return;
    if (t->ignore_merges) { /* a piece that is a vocab entry is that token */
        int32_t whole = tk_map_get(&t->by_bytes, (const char *)p, (uint32_t)n);
        if (whole >= 0) {
            tk_ids_push(out, whole);
            return;
        }
    }
    if (!tk_scratch_fit(s, n)) return;
    int32_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[p[i]];
        if (id < 0) id = t->unk_id;
        if (id < 0) continue; /* no token for this byte and no unk: dropped, as HF does */
        s->sym[m].id = id;
        s->sym[m].prev = m - 1;
        s->sym[m].next = -1;
        if (m > 0) s->sym[m - 1].next = m;
        m++;
    }
    if (m == 0) return;
    int64_t hn = 0;
    for (int32_t i = 0; i + 1 < m; i++)
        tk_try_pair(t, s, &hn, i);
    /* at most n - 1 first candidates and two more per merge (at most n - 1 merges): the heap
     * never holds more than 3 * n */
    while (hn > 0) {
        tk_cand c = tk_heap_pop(s->heap, &hn);
        tk_sym *a = &s->sym[c.pos];
        if (a->id != c.left || a->next < 0) continue;
        tk_sym *b = &s->sym[a->next];
        if (b->id != c.right) continue;
        int32_t merged;
        tk_pairs_get(&t->merges, c.left, c.right, &merged);
        a->id = merged;
        b->id = -1; /* dead */
        a->next = b->next;
        if (b->next >= 0) s->sym[b->next].prev = c.pos;
        if (a->prev >= 0) tk_try_pair(t, s, &hn, a->prev);
        tk_try_pair(t, s, &hn, c.pos);
    }
    for (int32_t i = 0; i >= 0; i = s->sym[i].next)
        tk_ids_push(out, s->sym[i].id);
}

// ----------------------------------------------------------------------------
// encode

/* A per-call cache of short pieces' encodings (words repeat: most pieces of a long text were
 * seen before). Direct-mapped; only for texts long enough to repay its allocation. */
#define TK_CACHE_MAX 16 /* bytes per cached piece */
#define TK_CACHE_MIN_TEXT 4096

typedef struct tk_centry {
    uint32_t hash;
    uint8_t len, nids;
    char bytes[TK_CACHE_MAX];
    int32_t ids[TK_CACHE_MAX];
} tk_centry;

typedef struct tk_work {
    tk_bytes buf;
    pcre2_match_data *md;
    tk_pieces pa, pb;
    tk_scratch sc;
    tk_centry *cache; /* or NULL */
    uint32_t cmask;
} tk_work;

static uint32_t tk_piece_hash(const uint8_t *p, int64_t n) {
    uint32_t h = 2166136261u;
    for (int64_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* BPE of one piece through the cache. */
static void tk_piece(const segrl_tokenizer *t, tk_work *w, const uint8_t *p, int64_t n,
                     tk_ids *out) {
    if (!w->cache || n > TK_CACHE_MAX) {
        tk_bpe(t, p, n, &w->sc, out);
        return;
    }
    uint32_t h = tk_piece_hash(p, n);
    tk_centry *e = &w->cache[h & w->cmask];
    if (e->len == n && e->hash == h && memcmp(e->bytes, p, (size_t)n) == 0) {
        for (int i = 0; i < e->nids; i++)
            tk_ids_push(out, e->ids[i]);
        return;
    }
    int64_t before = out->n;
    tk_bpe(t, p, n, &w->sc, out);
    int64_t k = out->n - before;
    if (out->oom || k > TK_CACHE_MAX) return;
    e->hash = h;
    e->len = (uint8_t)n;
    e->nids = (uint8_t)k;
    memcpy(e->bytes, p, (size_t)n);
    memcpy(e->ids, out->p + before, (size_t)k * sizeof *e->ids);
}

static void tk_work_free(tk_work *w) {
    tk_bytes_free(&w->buf);
    if (w->md) pcre2_match_data_free(w->md);
    tk_pieces_free(&w->pa);
    tk_pieces_free(&w->pb);
    segrl_free(w->sc.sym);
    segrl_free(w->sc.heap);
    segrl_free(w->cache);
}

static segrl_status tk_segment(const segrl_tokenizer *t, const char *fn, const char *text,
                               size_t len, tk_work *w, tk_ids *out) {
    if (len == 0) return SEGRL_OK;
    w->buf.n = 0;
    tk_bytes_put(&w->buf, text, len);
    int r = tk_pretokenize(t->steps, t->nsteps, &w->buf, 0, (int64_t)len, w->md, &w->pa, &w->pb);
    if (r == -1) return sg_fail(SEGRL_ERR_INVALID, "%s: text: the split regex failed to match", fn);
    if (r != 0) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    for (int64_t i = 0; i < w->pa.n; i++)
        tk_piece(t, w, (const uint8_t *)w->buf.p + w->pa.off[i], w->pa.len[i], out);
    if (w->sc.oom || out->oom) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    return SEGRL_OK;
}

static int tk_word_byte(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c >= 0x80;
}

/* The whitespace character ending just before position i (its start), or -1. */
static int64_t tk_space_before(const uint8_t *s, int64_t lo, int64_t i) {
    for (int64_t k = 1; k <= 4 && i - k >= lo; k++) {
        uint8_t c = s[i - k];
        if (k == 1 && c < 0x80) return tk_is_space(c) ? i - 1 : -1;
        if ((c & 0xC0) != 0x80) {
            size_t adv;
            int32_t cp = tk_get_utf8(s + i - k, (size_t)k, &adv);
            return (cp >= 0 && (int64_t)adv == k && tk_is_space((uint32_t)cp)) ? i - k : -1;
        }
    }
    return -1;
}

segrl_status tk_encode(const segrl_tokenizer *t, const char *fn, const char *text, size_t len,
                       int special_as_text, tk_ids *out) {
    tk_work w;
    memset(&w, 0, sizeof w);
    w.md = pcre2_match_data_create(4, NULL);
    if (!w.md) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    if (len >= TK_CACHE_MIN_TEXT) { /* about one slot per 16 bytes of text, at most 8192 */
        uint32_t slots = 256;
        while (slots < 8192 && slots * 16 < len)
            slots *= 2;
        w.cache = segrl_malloc(slots * sizeof *w.cache);
        if (w.cache) { /* without it: slower, same result */
            memset(w.cache, 0, slots * sizeof *w.cache);
            w.cmask = slots - 1;
        }
    }
    const uint8_t *s = (const uint8_t *)text;
    int64_t n = (int64_t)len, seg = 0, i = 0;
    segrl_status st = SEGRL_OK;
    while (i < n && t->nadded > 0) {
        if (!t->added_first[s[i]]) {
            i++;
            continue;
        }
        int32_t hit = -1;
        for (int64_t k = 0; k < t->nadded; k++) { /* longest first */
            const tk_token *tk = &t->tok[t->added[k]];
            if (special_as_text && (tk->flags & TK_SPECIAL)) continue;
            if ((int64_t)tk->str_len > n - i || memcmp(s + i, tk->str, tk->str_len) != 0) continue;
            if ((tk->flags & TK_SINGLE_WORD) &&
                ((i > 0 && tk_word_byte(s[i - 1])) ||
                 (i + (int64_t)tk->str_len < n && tk_word_byte(s[i + tk->str_len]))))
                continue;
            hit = t->added[k];
            break;
        }
        if (hit < 0) {
            i++;
            continue;
        }
        const tk_token *tk = &t->tok[hit];
        int64_t ms = i, me = i + tk->str_len;
        if (tk->flags & TK_LSTRIP)
            for (int64_t b; (b = tk_space_before(s, seg, ms)) >= 0;)
                ms = b;
        if (tk->flags & TK_RSTRIP)
            while (me < n) {
                size_t adv;
                int32_t cp = tk_get_utf8(s + me, (size_t)(n - me), &adv);
                if (cp < 0 || !tk_is_space((uint32_t)cp)) break;
                me += (int64_t)adv;
            }
        st = tk_segment(t, fn, text + seg, (size_t)(ms - seg), &w, out);
        if (st) break;
        tk_ids_push(out, hit);
        seg = i = me;
    }
    if (!st) st = tk_segment(t, fn, text + seg, (size_t)(n - seg), &w, out);
    if (!st && out->oom) st = sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    tk_work_free(&w);
    return st;
}

segrl_status segrl_tokenizer_encode(const segrl_tokenizer *t, const char *text, size_t len,
                                    uint32_t flags, int32_t **out_ids, int64_t *out_n) {
    const char *fn = "segrl_tokenizer_encode";
    if (!t) return sg_fail(SEGRL_ERR_INVALID, "%s: tok: NULL", fn);
    if (!text && len) return sg_fail(SEGRL_ERR_INVALID, "%s: text: NULL", fn);
    if (!out_ids || !out_n) return sg_fail(SEGRL_ERR_INVALID, "%s: out_ids/out_n: NULL", fn);
    if (flags & ~(uint32_t)(SEGRL_TOK_SPECIAL_AS_TEXT | SEGRL_TOK_SKIP_SPECIAL))
        return sg_fail(SEGRL_ERR_INVALID, "%s: flags: unknown bits 0x%x", fn, flags);
    tk_ids ids = {0};
    segrl_status st =
        tk_encode(t, fn, text ? text : "", len, (flags & SEGRL_TOK_SPECIAL_AS_TEXT) != 0, &ids);
    if (st) {
        segrl_free(ids.p);
        return st;
    }
    *out_ids = ids.p;
    *out_n = ids.n;
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// decode and lookups

segrl_status segrl_tokenizer_decode(const segrl_tokenizer *t, const int32_t *ids, int64_t n,
                                    uint32_t flags, char **out_text, size_t *out_len) {
    const char *fn = "segrl_tokenizer_decode";
    if (!t) return sg_fail(SEGRL_ERR_INVALID, "%s: tok: NULL", fn);
    if (n < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: n: %lld < 0", fn, (long long)n);
    if (n > 0 && !ids) return sg_fail(SEGRL_ERR_INVALID, "%s: ids: NULL", fn);
    if (!out_text) return sg_fail(SEGRL_ERR_INVALID, "%s: out_text: NULL", fn);
    if (flags & ~(uint32_t)(SEGRL_TOK_SPECIAL_AS_TEXT | SEGRL_TOK_SKIP_SPECIAL))
        return sg_fail(SEGRL_ERR_INVALID, "%s: flags: unknown bits 0x%x", fn, flags);
    tk_bytes b = {0};
    tk_bytes_put(&b, NULL, 0);
    for (int64_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->vocab_size || !(t->tok[id].flags & TK_PRESENT)) {
            tk_bytes_free(&b);
            return sg_fail(SEGRL_ERR_INVALID, "%s: ids[%lld]: %d is not a token id (vocab %lld)",
                           fn, (long long)i, id, (long long)t->vocab_size);
        }
        const tk_token *tk = &t->tok[id];
        if ((flags & SEGRL_TOK_SKIP_SPECIAL) && (tk->flags & TK_SPECIAL)) continue;
        tk_bytes_put(&b, tk->bytes, tk->bytes_len);
    }
    if (b.oom) {
        tk_bytes_free(&b);
        return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    }
    *out_text = b.p;
    if (out_len) *out_len = b.n;
    return SEGRL_OK;
}

int32_t segrl_tokenizer_token_id(const segrl_tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    return tk_map_get(&t->by_str, token, (uint32_t)strlen(token));
}

segrl_status segrl_tokenizer_token_bytes(const segrl_tokenizer *t, int32_t id,
                                         const char **out_bytes, size_t *out_len) {
    const char *fn = "segrl_tokenizer_token_bytes";
    if (!t) return sg_fail(SEGRL_ERR_INVALID, "%s: tok: NULL", fn);
    if (!out_bytes || !out_len)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out_bytes/out_len: NULL", fn);
    if (id < 0 || id >= t->vocab_size || !(t->tok[id].flags & TK_PRESENT))
        return sg_fail(SEGRL_ERR_INVALID, "%s: id: %d is not a token id", fn, id);
    *out_bytes = t->tok[id].bytes;
    *out_len = t->tok[id].bytes_len;
    return SEGRL_OK;
}

int segrl_tokenizer_is_special(const segrl_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->vocab_size && (t->tok[id].flags & TK_SPECIAL) != 0;
}
