/* train.c — a small byte-level BPE trainer (Sennrich et al. 2016, arXiv 1508.07909, on bytes as
 * in GPT-2). The corpus is cut at special tokens, split into pieces by the Qwen2 regex, and the
 * distinct pieces ("words") are counted. Every word starts as its bytes; each step counts the
 * adjacent symbol pairs over all words (weighted by word count), merges the most frequent pair
 * everywhere and records it, until the vocabulary is full or no pair occurs twice. The result is
 * written as a Hugging Face tokenizer.json with cJSON. Pair counts are recomputed each step:
 * O(steps x symbols in distinct words), meant for small corpora and vocabularies. */
#define _POSIX_C_SOURCE 200809L
#include "tok.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct tr_word {
    int64_t off; /* symbols at sym[off, off + len) */
    int32_t len;
    int64_t count;
} tr_word;

/* (left, right) -> count, open addressing, cleared each step */
typedef struct tr_counts {
    uint64_t *key; /* (l << 32 | r) + 1 */
    int64_t *cnt;
    uint64_t cap, n;
} tr_counts;

static uint64_t tr_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int tr_counts_alloc(tr_counts *c, uint64_t cap) {
    c->key = segrl_malloc(cap * sizeof *c->key);
    c->cnt = segrl_malloc(cap * sizeof *c->cnt);
    if (!c->key || !c->cnt) return -1;
    memset(c->key, 0, cap * sizeof *c->key);
    c->cap = cap;
    c->n = 0;
    return 0;
}

static void tr_counts_free(tr_counts *c) {
    segrl_free(c->key);
    segrl_free(c->cnt);
    memset(c, 0, sizeof *c);
}

static int tr_counts_add(tr_counts *c, int32_t l, int32_t r, int64_t v) {
    if (2 * (c->n + 1) > c->cap) {
        tr_counts g = {0};
        if (tr_counts_alloc(&g, c->cap * 2) != 0) {
            tr_counts_free(&g);
            return -1;
        }
        for (uint64_t i = 0; i < c->cap; i++)
            if (c->key[i]) {
                uint64_t k = c->key[i], mask = g.cap - 1;
                uint64_t j = tr_mix(k) & mask;
                while (g.key[j])
                    j = (j + 1) & mask;
                g.key[j] = k;
                g.cnt[j] = c->cnt[i];
                g.n++;
            }
        tr_counts_free(c);
        *c = g;
    }
    uint64_t k = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1, mask = c->cap - 1;
    for (uint64_t i = tr_mix(k) & mask;; i = (i + 1) & mask) {
        if (!c->key[i]) {
            c->key[i] = k;
            c->cnt[i] = v;
            c->n++;
            return 0;
        }
        if (c->key[i] == k) {
            c->cnt[i] += v;
            return 0;
        }
    }
}

typedef struct tr_state {
    const char *fn;
    tk_arena arena;
    tk_map words_by_bytes; /* piece bytes -> word index */
    tr_word *words;
    int64_t nwords, capwords;
    int32_t *sym;
    int64_t nsym, capsym;
    /* tokens */
    const char **tb; /* bytes of token i */
    uint32_t *tl;
    int64_t ntok, captok;
    tk_map tok_by_bytes;
    int32_t (*merges)[2];
    int64_t nmerges;
} tr_state;

static segrl_status tr_oom(const tr_state *s) {
    return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", s->fn);
}

static int tr_add_token(tr_state *s, const char *bytes, uint32_t n, int in_map) {
    if (s->ntok == s->captok) {
        int64_t cap = s->captok ? 2 * s->captok : 512;
        const char **tb = segrl_realloc(s->tb, (size_t)cap * sizeof *tb);
        if (!tb) return -1;
        s->tb = tb;
        uint32_t *tl = segrl_realloc(s->tl, (size_t)cap * sizeof *tl);
        if (!tl) return -1;
        s->tl = tl;
        s->captok = cap;
    }
    char *p = tk_arena_dup(&s->arena, bytes, n);
    if (!p) return -1;
    s->tb[s->ntok] = p;
    s->tl[s->ntok] = n;
    if (in_map && tk_map_put(&s->tok_by_bytes, p, n, (int32_t)s->ntok) < 0) return -1;
    s->ntok++;
    return 0;
}

/* Counts one piece as a word. */
static int tr_add_piece(tr_state *s, const char *p, int64_t n, int32_t byte0) {
    if (n <= 0) return 0;
    int32_t w = tk_map_get(&s->words_by_bytes, p, (uint32_t)n);
    if (w >= 0) {
        s->words[w].count++;
        return 0;
    }
    if (s->nwords == s->capwords) {
        int64_t cap = s->capwords ? 2 * s->capwords : 1024;
        tr_word *nw = segrl_realloc(s->words, (size_t)cap * sizeof *nw);
        if (!nw) return -1;
        s->words = nw;
        s->capwords = cap;
    }
    if (s->nsym + n > s->capsym) {
        int64_t cap = s->capsym ? 2 * s->capsym : 4096;
        while (cap < s->nsym + n)
            cap *= 2;
        int32_t *ns = segrl_realloc(s->sym, (size_t)cap * sizeof *ns);
        if (!ns) return -1;
        s->sym = ns;
        s->capsym = cap;
    }
    char *key = tk_arena_dup(&s->arena, p, (size_t)n);
    if (!key || tk_map_put(&s->words_by_bytes, key, (uint32_t)n, (int32_t)s->nwords) < 0) return -1;
    tr_word *wd = &s->words[s->nwords++];
    wd->off = s->nsym;
    wd->len = (int32_t)n;
    wd->count = 1;
    for (int64_t i = 0; i < n; i++)
        s->sym[s->nsym++] = byte0 + (uint8_t)p[i];
    return 0;
}

/* A token's bytes in the byte-level alphabet (what tokenizer.json keys are). */
static char *tr_spell(const char *b, uint32_t n) {
    char *out = segrl_malloc((size_t)n * 2 + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        k += (size_t)tk_put_utf8(tk_byte_cp[(uint8_t)b[i]], out + k);
    out[k] = '\0';
    return out;
}

/* 1 when `b` spelled in the byte-level alphabet is one of the special tokens (the vocab would
 * hold one key twice). */
static int tr_collides(const char *b, uint32_t n, const char *const *specials, int64_t ns) {
    char *sp = tr_spell(b, n);
    int hit = 0;
    for (int64_t i = 0; sp && i < ns && !hit; i++)
        hit = strcmp(sp, specials[i]) == 0;
    segrl_free(sp);
    return hit;
}

static cJSON *tr_bytelevel(void) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddFalseToObject(o, "add_prefix_space");
    cJSON_AddFalseToObject(o, "trim_offsets");
    cJSON_AddFalseToObject(o, "use_regex");
    return o;
}

static segrl_status tr_write(tr_state *s, const char *const *specials, int64_t ns,
                             const char *path) {
    const char *fn = s->fn;
    cJSON *root = cJSON_CreateObject();
    if (!root) return tr_oom(s);
    int ok = 1;
    ok &= cJSON_AddStringToObject(root, "version", "1.0") != NULL;
    ok &= cJSON_AddNullToObject(root, "truncation") != NULL;
    ok &= cJSON_AddNullToObject(root, "padding") != NULL;
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    ok &= added != NULL;
    for (int64_t i = 0; ok && i < ns; i++) {
        cJSON *a = cJSON_CreateObject();
        ok &= a != NULL;
        if (!ok) break;
        cJSON_AddItemToArray(added, a);
        ok &= cJSON_AddNumberToObject(a, "id", (double)i) != NULL;
        ok &= cJSON_AddStringToObject(a, "content", specials[i]) != NULL;
        cJSON_AddFalseToObject(a, "single_word");
        cJSON_AddFalseToObject(a, "lstrip");
        cJSON_AddFalseToObject(a, "rstrip");
        cJSON_AddFalseToObject(a, "normalized");
        ok &= cJSON_AddTrueToObject(a, "special") != NULL;
    }
    ok &= cJSON_AddNullToObject(root, "normalizer") != NULL;
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    ok &= pre != NULL;
    if (ok) {
        cJSON_AddStringToObject(pre, "type", "Sequence");
        cJSON *list = cJSON_AddArrayToObject(pre, "pretokenizers");
        cJSON *split = cJSON_CreateObject();
        cJSON_AddStringToObject(split, "type", "Split");
        cJSON *pat = cJSON_AddObjectToObject(split, "pattern");
        cJSON_AddStringToObject(pat, "Regex", tk_qwen2_pattern);
        cJSON_AddStringToObject(split, "behavior", "Isolated");
        cJSON_AddFalseToObject(split, "invert");
        cJSON_AddItemToArray(list, split);
        cJSON_AddItemToArray(list, tr_bytelevel());
    }
    ok &= cJSON_AddNullToObject(root, "post_processor") != NULL;
    cJSON_AddItemToObject(root, "decoder", tr_bytelevel());
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    ok &= model != NULL;
    cJSON *vocab = NULL, *merges = NULL;
    if (ok) {
        cJSON_AddStringToObject(model, "type", "BPE");
        cJSON_AddNullToObject(model, "dropout");
        cJSON_AddNullToObject(model, "unk_token");
        cJSON_AddNullToObject(model, "continuing_subword_prefix");
        cJSON_AddNullToObject(model, "end_of_word_suffix");
        cJSON_AddFalseToObject(model, "fuse_unk");
        cJSON_AddFalseToObject(model, "byte_fallback");
        cJSON_AddFalseToObject(model, "ignore_merges");
        vocab = cJSON_AddObjectToObject(model, "vocab");
        merges = cJSON_AddArrayToObject(model, "merges");
        ok &= vocab && merges;
    }
    for (int64_t i = 0; ok && i < s->ntok; i++) {
        if (i < ns) {
            ok &= cJSON_AddNumberToObject(vocab, specials[i], (double)i) != NULL;
            continue;
        }
        char *sp = tr_spell(s->tb[i], s->tl[i]);
        ok &= sp && cJSON_AddNumberToObject(vocab, sp, (double)i) != NULL;
        segrl_free(sp);
    }
    for (int64_t m = 0; ok && m < s->nmerges; m++) {
        int32_t l = s->merges[m][0], r = s->merges[m][1];
        char *a = tr_spell(s->tb[l], s->tl[l]), *b = tr_spell(s->tb[r], s->tl[r]);
        char *ab = a && b ? segrl_malloc(strlen(a) + strlen(b) + 2) : NULL;
        if (ab) {
            sprintf(ab, "%s %s", a, b); /* byte-level spellings never contain a space */
            ok &= cJSON_AddItemToArray(merges, cJSON_CreateString(ab));
        } else {
            ok = 0;
        }
        segrl_free(a);
        segrl_free(b);
        segrl_free(ab);
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return tr_oom(s);
    size_t n = strlen(text), pl = strlen(path);
    char *tmp = segrl_malloc(pl + 5);
    if (!tmp) {
        cJSON_free(text);
        return tr_oom(s);
    }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    segrl_status st = SEGRL_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        st = sg_fail(SEGRL_ERR_INVALID, "%s: out_path: cannot create %s: %s", fn, tmp,
                     strerror(errno));
    } else {
        size_t done = 0;
        int bad = 0;
        while (done < n && !bad) {
            ssize_t w = write(fd, text + done, n - done);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0)
                bad = 1;
            else
                done += (size_t)w;
        }
        if (!bad) bad = fsync(fd) != 0;
        int err = errno;
        if (close(fd) != 0 && !bad) bad = 1, err = errno;
        if (!bad && rename(tmp, path) != 0) bad = 1, err = errno;
        if (bad) {
            unlink(tmp);
            st = sg_fail(SEGRL_ERR_INVALID, "%s: out_path: cannot write %s: %s", fn, path,
                         strerror(err));
        }
    }
    segrl_free(tmp);
    cJSON_free(text);
    return st;
}

static void tr_free(tr_state *s) {
    tk_arena_free(&s->arena);
    tk_map_free(&s->words_by_bytes);
    tk_map_free(&s->tok_by_bytes);
    segrl_free(s->words);
    segrl_free(s->sym);
    segrl_free(s->tb);
    segrl_free(s->tl);
    segrl_free(s->merges);
}

/* Cuts the corpus at special tokens (leftmost, longest) and counts the pieces of the rest. */
static segrl_status tr_count(tr_state *s, const char *corpus, size_t len,
                             const char *const *specials, int64_t ns, int32_t byte0) {
    char msg[200];
    tk_step step = {TK_STEP_SPLIT, tk_compile(tk_qwen2_pattern, 0, msg, sizeof msg)};
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    tk_bytes buf = {0};
    tk_pieces pa = {0}, pb = {0};
    segrl_status st = SEGRL_OK;
    if (!step.re || !md) {
        st = tr_oom(s);
        goto done;
    }
    size_t seg = 0, i = 0;
    while (seg <= len) {
        /* next special token at or after i */
        size_t at = len, sl = 0;
        for (; i < len && at == len; i++)
            for (int64_t k = 0; k < ns; k++) {
                size_t kl = strlen(specials[k]);
                if (kl <= len - i && kl > sl && memcmp(corpus + i, specials[k], kl) == 0) {
                    at = i;
                    sl = kl;
                }
            }
        buf.n = 0;
        tk_bytes_put(&buf, corpus + seg, at - seg);
        int r = buf.oom ? -2 : tk_pretokenize(&step, 1, &buf, 0, (int64_t)(at - seg), md, &pa, &pb);
        if (r == -1) {
            st = sg_fail(SEGRL_ERR_INVALID, "%s: corpus: the split regex failed", s->fn);
            goto done;
        }
        if (r != 0) {
            st = tr_oom(s);
            goto done;
        }
        for (int64_t p = 0; p < pa.n; p++)
            if (tr_add_piece(s, buf.p + pa.off[p], pa.len[p], byte0) != 0) {
                st = tr_oom(s);
                goto done;
            }
        if (at == len) break;
        seg = i = at + sl;
    }
done:
    if (step.re) pcre2_code_free(step.re);
    if (md) pcre2_match_data_free(md);
    tk_bytes_free(&buf);
    tk_pieces_free(&pa);
    tk_pieces_free(&pb);
    return st;
}

static int tr_banned(const uint64_t *b, int64_t n, uint64_t key) {
    for (int64_t i = 0; i < n; i++)
        if (b[i] == key) return 1;
    return 0;
}

segrl_status segrl_tokenizer_train(const char *corpus, size_t len, int64_t vocab_size,
                                   const char *const *special_tokens, int64_t n_special,
                                   const char *out_path) {
    const char *fn = "segrl_tokenizer_train";
    if (!corpus && len) return sg_fail(SEGRL_ERR_INVALID, "%s: corpus: NULL", fn);
    if (!out_path || !out_path[0]) return sg_fail(SEGRL_ERR_INVALID, "%s: out_path: NULL", fn);
    if (n_special < 0 || (n_special > 0 && !special_tokens))
        return sg_fail(SEGRL_ERR_INVALID, "%s: special_tokens: NULL or n_special < 0", fn);
    for (int64_t i = 0; i < n_special; i++) {
        if (!special_tokens[i] || !special_tokens[i][0])
            return sg_fail(SEGRL_ERR_INVALID, "%s: special_tokens[%lld]: NULL or empty", fn,
                           (long long)i);
        for (int64_t j = 0; j < i; j++)
            if (strcmp(special_tokens[i], special_tokens[j]) == 0)
                return sg_fail(SEGRL_ERR_INVALID, "%s: special_tokens[%lld]: '%s' given twice", fn,
                               (long long)i, special_tokens[i]);
    }
    if (vocab_size < n_special + 256 || vocab_size > (1 << 24))
        return sg_fail(SEGRL_ERR_INVALID, "%s: vocab_size: %lld not in [n_special + 256, 2^24]", fn,
                       (long long)vocab_size);
    tk_alphabet_init();

    tr_state s;
    memset(&s, 0, sizeof s);
    s.fn = fn;
    tr_counts pc = {0};
    uint64_t *banned = NULL;
    int64_t nbanned = 0;
    segrl_status st = SEGRL_OK;
    if (tk_map_init(&s.words_by_bytes, 1024) ||
        tk_map_init(&s.tok_by_bytes, (uint64_t)vocab_size) || tr_counts_alloc(&pc, 1024)) {
        st = tr_oom(&s);
        goto done;
    }
    s.merges = segrl_malloc((size_t)vocab_size * sizeof *s.merges);
    if (!s.merges) {
        st = tr_oom(&s);
        goto done;
    }
    for (int64_t i = 0; i < n_special; i++)
        if (tr_add_token(&s, special_tokens[i], (uint32_t)strlen(special_tokens[i]), 0) != 0) {
            st = tr_oom(&s);
            goto done;
        }
    int32_t byte0 = (int32_t)n_special;
    for (int b = 0; b < 256; b++) {
        char ch = (char)b;
        if (tr_collides(&ch, 1, special_tokens, n_special)) {
            st = sg_fail(SEGRL_ERR_INVALID, "%s: special_tokens: one is the spelling of byte %d",
                         fn, b);
            goto done;
        }
        if (tr_add_token(&s, &ch, 1, 1) != 0) {
            st = tr_oom(&s);
            goto done;
        }
    }
    st = tr_count(&s, corpus ? corpus : "", len, special_tokens, n_special, byte0);
    if (st) goto done;

    /* words that can still merge (two or more symbols) */
    int64_t live = 0;
    for (int64_t w = 0; w < s.nwords; w++)
        if (s.words[w].len >= 2) s.words[live++] = s.words[w];
    s.nwords = live;

    while (s.ntok < vocab_size && s.nmerges < vocab_size) {
        memset(pc.key, 0, pc.cap * sizeof *pc.key);
        pc.n = 0;
        for (int64_t w = 0; w < s.nwords; w++) {
            const int32_t *y = s.sym + s.words[w].off;
            for (int32_t i = 0; i + 1 < s.words[w].len; i++)
                if (tr_counts_add(&pc, y[i], y[i + 1], s.words[w].count) != 0) {
                    st = tr_oom(&s);
                    goto done;
                }
        }
        /* the most frequent pair; ties: smaller left id, then smaller right id */
        int64_t best = 1;
        int32_t bl = -1, br = -1;
        for (uint64_t i = 0; i < pc.cap; i++) {
            if (!pc.key[i] || tr_banned(banned, nbanned, pc.key[i])) continue;
            uint64_t k = pc.key[i] - 1;
            int32_t l = (int32_t)(k >> 32), r = (int32_t)(k & 0xffffffffu);
            int64_t c = pc.cnt[i];
            if (c > best || (c == best && bl >= 0 && (l < bl || (l == bl && r < br)))) {
                best = c;
                bl = l;
                br = r;
            }
        }
        if (bl < 0) break; /* no pair occurs twice */
        /* the merged token (a new one unless another merge already spelled these bytes) */
        uint32_t nl = s.tl[bl] + s.tl[br];
        char *joined = segrl_malloc(nl);
        if (!joined) {
            st = tr_oom(&s);
            goto done;
        }
        memcpy(joined, s.tb[bl], s.tl[bl]);
        memcpy(joined + s.tl[bl], s.tb[br], s.tl[br]);
        int32_t id = tk_map_get(&s.tok_by_bytes, joined, nl);
        if (id < 0 && tr_collides(joined, nl, special_tokens, n_special)) {
            /* spelled like a special token: never merge this pair */
            segrl_free(joined);
            uint64_t *nb = segrl_realloc(banned, (size_t)(nbanned + 1) * sizeof *nb);
            if (!nb) {
                st = tr_oom(&s);
                goto done;
            }
            banned = nb;
            banned[nbanned++] = (((uint64_t)(uint32_t)bl << 32) | (uint32_t)br) + 1;
            continue;
        }
        if (id < 0) {
            id = (int32_t)s.ntok;
            if (tr_add_token(&s, joined, nl, 1) != 0) {
                segrl_free(joined);
                st = tr_oom(&s);
                goto done;
            }
        }
        segrl_free(joined);
        s.merges[s.nmerges][0] = bl;
        s.merges[s.nmerges][1] = br;
        s.nmerges++;
        /* apply it everywhere, left to right */
        live = 0;
        for (int64_t w = 0; w < s.nwords; w++) {
            tr_word *wd = &s.words[w];
            int32_t *y = s.sym + wd->off, o = 0;
            for (int32_t i = 0; i < wd->len; i++) {
                if (i + 1 < wd->len && y[i] == bl && y[i + 1] == br) {
                    y[o++] = id;
                    i++;
                } else {
                    y[o++] = y[i];
                }
            }
            wd->len = o;
            if (o >= 2) s.words[live++] = *wd;
        }
        s.nwords = live;
    }
    st = tr_write(&s, special_tokens, n_special, out_path);
done:
    tr_counts_free(&pc);
    segrl_free(banned);
    tr_free(&s);
    return st;
}
