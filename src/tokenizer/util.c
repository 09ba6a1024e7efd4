/* util.c — the tokenizer's plumbing: the byte-level alphabet, UTF-8, growable buffers, hash
 * maps, an arena for token strings, and the pre-tokenizer pipeline (PCRE2 splits). */
#include "tok.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

// ----------------------------------------------------------------------------
// alphabet

uint16_t tk_byte_cp[256];
int16_t tk_cp_byte[324];
static pthread_once_t tk_once = PTHREAD_ONCE_INIT;

static void tk_alphabet_build(void) {
    int extra = 0;
    for (int i = 0; i < 324; i++)
        tk_cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        tk_byte_cp[b] = (uint16_t)(printable ? b : 256 + extra++);
        tk_cp_byte[tk_byte_cp[b]] = (int16_t)b;
    }
}

void tk_alphabet_init(void) { pthread_once(&tk_once, tk_alphabet_build); }

int tk_put_utf8(uint32_t cp, char *p) {
    if (cp < 0x80) {
        p[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        p[0] = (char)(0xC0 | (cp >> 6));
        p[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        p[0] = (char)(0xE0 | (cp >> 12));
        p[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        p[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    p[0] = (char)(0xF0 | (cp >> 18));
    p[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    p[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    p[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int32_t tk_get_utf8(const uint8_t *s, size_t n, size_t *adv) {
    *adv = 1;
    if (n == 0) return -1;
    uint8_t c = s[0];
    if (c < 0x80) return c;
    int len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0)
        len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return -1;
    if ((size_t)len > n) return -1;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    *adv = (size_t)len;
    return (int32_t)cp;
}

int tk_is_space(uint32_t cp) {
    return (cp >= 9 && cp <= 13) || cp == 32 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

// ----------------------------------------------------------------------------
// buffers

void tk_bytes_put(tk_bytes *b, const void *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = segrl_realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n && s) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void tk_bytes_free(tk_bytes *b) {
    segrl_free(b->p);
    memset(b, 0, sizeof *b);
}

void tk_ids_push(tk_ids *v, int32_t id) {
    if (v->oom) return;
    if (v->n == v->cap) {
        int64_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = segrl_realloc(v->p, (size_t)cap * sizeof *p);
        if (!p) {
            v->oom = 1;
            return;
        }
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = id;
}

static void tk_pieces_push(tk_pieces *p, int64_t off, int64_t len) {
    if (p->oom) return;
    if (p->n == p->cap) {
        int64_t cap = p->cap ? p->cap * 2 : 64;
        int64_t *o = segrl_realloc(p->off, (size_t)cap * sizeof *o);
        if (!o) {
            p->oom = 1;
            return;
        }
        p->off = o;
        int64_t *l = segrl_realloc(p->len, (size_t)cap * sizeof *l);
        if (!l) {
            p->oom = 1;
            return;
        }
        p->len = l;
        p->cap = cap;
    }
    p->off[p->n] = off;
    p->len[p->n] = len;
    p->n++;
}

void tk_pieces_free(tk_pieces *p) {
    segrl_free(p->off);
    segrl_free(p->len);
    memset(p, 0, sizeof *p);
}

// ----------------------------------------------------------------------------
// arena

typedef struct tk_chunk {
    struct tk_chunk *next;
    size_t used, cap;
    char data[];
} tk_chunk;

char *tk_arena_dup(tk_arena *a, const char *s, size_t n) {
    tk_chunk *c = a->head;
    if (!c || c->cap - c->used < n + 1) {
        size_t cap = n + 1 > (1u << 20) ? n + 1 : (1u << 20);
        c = segrl_malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    char *p = c->data + c->used;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    c->used += n + 1;
    return p;
}

void tk_arena_free(tk_arena *a) {
    for (tk_chunk *c = a->head; c;) {
        tk_chunk *next = c->next;
        segrl_free(c);
        c = next;
    }
    a->head = NULL;
}

// ----------------------------------------------------------------------------
// maps

static uint64_t tk_hash(const char *s, uint32_t n) { /* FNV-1a */
    uint64_t h = 1469598103934665603ull;
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t tk_cap_for(uint64_t expect) {
    uint64_t cap = 64;
    while (cap < 2 * expect + 16)
        cap *= 2;
    return cap;
}

int tk_map_init(tk_map *m, uint64_t expect) {
    memset(m, 0, sizeof *m);
    m->cap = tk_cap_for(expect);
    m->key = segrl_malloc(m->cap * sizeof *m->key);
    m->klen = segrl_malloc(m->cap * sizeof *m->klen);
    m->val = segrl_malloc(m->cap * sizeof *m->val);
    if (!m->key || !m->klen || !m->val) return -1;
    for (uint64_t i = 0; i < m->cap; i++)
        m->key[i] = NULL;
    return 0;
}

void tk_map_free(tk_map *m) {
    segrl_free(m->key);
    segrl_free(m->klen);
    segrl_free(m->val);
    memset(m, 0, sizeof *m);
}

static int tk_map_grow(tk_map *m) {
    tk_map g;
    if (tk_map_init(&g, m->cap) != 0) {
        tk_map_free(&g);
        return -1;
    }
    for (uint64_t i = 0; i < m->cap; i++)
        if (m->key[i]) tk_map_put(&g, m->key[i], m->klen[i], m->val[i]);
    tk_map_free(m);
    *m = g;
    return 0;
}

int tk_map_put(tk_map *m, const char *key, uint32_t klen, int32_t val) {
    if (2 * (m->n + 1) > m->cap && tk_map_grow(m) != 0) return -1;
    uint64_t mask = m->cap - 1;
    for (uint64_t i = tk_hash(key, klen) & mask;; i = (i + 1) & mask) {
        if (!m->key[i]) {
            m->key[i] = key;
            m->klen[i] = klen;
            m->val[i] = val;
            m->n++;
            return 0;
        }
        if (m->klen[i] == klen && memcmp(m->key[i], key, klen) == 0) return 1;
    }
}

int32_t tk_map_get(const tk_map *m, const char *key, uint32_t klen) {
    if (!m->cap) return -1;
    uint64_t mask = m->cap - 1;
    for (uint64_t i = tk_hash(key, klen) & mask;; i = (i + 1) & mask) {
        if (!m->key[i]) return -1;
        if (m->klen[i] == klen && memcmp(m->key[i], key, klen) == 0) return m->val[i];
    }
}

static uint64_t tk_mix(uint64_t z) { /* splitmix64's finaliser */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int tk_pairs_init(tk_pairs *m, uint64_t expect) {
    memset(m, 0, sizeof *m);
    m->cap = tk_cap_for(expect);
    m->key = segrl_malloc(m->cap * sizeof *m->key);
    m->rank = segrl_malloc(m->cap * sizeof *m->rank);
    m->merged = segrl_malloc(m->cap * sizeof *m->merged);
    if (!m->key || !m->rank || !m->merged) return -1;
    memset(m->key, 0, m->cap * sizeof *m->key);
    return 0;
}

void tk_pairs_free(tk_pairs *m) {
    segrl_free(m->key);
    segrl_free(m->rank);
    segrl_free(m->merged);
    memset(m, 0, sizeof *m);
}

static int tk_pairs_grow(tk_pairs *m) {
    tk_pairs g;
    if (tk_pairs_init(&g, m->cap) != 0) {
        tk_pairs_free(&g);
        return -1;
    }
    for (uint64_t i = 0; i < m->cap; i++)
        if (m->key[i]) {
            uint64_t k = m->key[i] - 1;
            tk_pairs_put(&g, (int32_t)(k >> 32), (int32_t)(k & 0xffffffffu), m->rank[i],
                         m->merged[i]);
        }
    tk_pairs_free(m);
    *m = g;
    return 0;
}

int tk_pairs_put(tk_pairs *m, int32_t l, int32_t r, int32_t rank, int32_t merged) {
    if (2 * (m->n + 1) > m->cap && tk_pairs_grow(m) != 0) return -1;
    uint64_t k = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1, mask = m->cap - 1;
    for (uint64_t i = tk_mix(k) & mask;; i = (i + 1) & mask) {
        if (!m->key[i]) {
            m->key[i] = k;
            m->rank[i] = rank;
            m->merged[i] = merged;
            m->n++;
            return 0;
        }
        if (m->key[i] == k) return 1;
    }
}

int32_t tk_pairs_get(const tk_pairs *m, int32_t l, int32_t r, int32_t *merged) {
    if (!m->cap) return -1;
    uint64_t k = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1, mask = m->cap - 1;
    for (uint64_t i = tk_mix(k) & mask;; i = (i + 1) & mask) {
        if (!m->key[i]) return -1;
        if (m->key[i] == k) {
            *merged = m->merged[i];
            return m->rank[i];
        }
    }
}

// ----------------------------------------------------------------------------
// pre-tokenizer

/* GPT-2 (HF ByteLevel with use_regex) */
const char *const tk_gpt2_pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
/* Qwen2 (tokenizer.json of Qwen2/2.5): contractions, words with one leading non-letter, single
 * digits, punctuation runs, newline runs, whitespace */
const char *const tk_qwen2_pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

pcre2_code *tk_compile(const char *pattern, int literal, char *msg, size_t msg_len) {
    int err = 0;
    PCRE2_SIZE at = 0;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &err, &at, NULL);
    if (!re) {
        PCRE2_UCHAR buf[160];
        pcre2_get_error_message(err, buf, sizeof buf);
        snprintf(msg, msg_len, "%s at offset %zu", (const char *)buf, (size_t)at);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: the interpreter is used without it */
    return re;
}

/* Isolated split of buf[off, off + len) by re: every match and every gap between matches
 * becomes a piece. Returns 0, or -1 on a PCRE2 error other than "no match". */
static int tk_split(const pcre2_code *re, const tk_bytes *buf, int64_t off, int64_t len,
                    pcre2_match_data *md, tk_pieces *out) {
    const uint8_t *s = (const uint8_t *)buf->p + off;
    size_t n = (size_t)len, start = 0, last = 0;
    while (start < n) {
        int rc = pcre2_match(re, s, n, start, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return -1;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* an empty match: move on one character */
            size_t adv;
            tk_get_utf8(s + ms, n - ms, &adv);
            start = ms + adv;
            continue;
        }
        if (ms > last) tk_pieces_push(out, off + (int64_t)last, (int64_t)(ms - last));
        tk_pieces_push(out, off + (int64_t)ms, (int64_t)(me - ms));
        last = start = me;
    }
    if (last < n) tk_pieces_push(out, off + (int64_t)last, (int64_t)(n - last));
    return 0;
}

int tk_pretokenize(const tk_step *steps, int nsteps, tk_bytes *buf, int64_t off, int64_t len,
                   pcre2_match_data *md, tk_pieces *out, tk_pieces *tmp) {
    out->n = 0;
    tk_pieces_push(out, off, len);
    for (int k = 0; k < nsteps; k++) {
        tmp->n = 0;
        for (int64_t i = 0; i < out->n; i++) {
            int64_t po = out->off[i], pl = out->len[i];
            if (steps[k].kind == TK_STEP_PREFIX_SPACE) {
                if (pl > 0 && buf->p[po] == ' ') {
                    tk_pieces_push(tmp, po, pl);
                } else {
                    /* grow first: the copy's source is inside buf */
                    int64_t at = (int64_t)buf->n;
                    tk_bytes_put(buf, NULL, (size_t)pl + 1);
                    if (buf->oom) return -2;
                    buf->p[at] = ' ';
                    memmove(buf->p + at + 1, buf->p + po, (size_t)pl);
                    tk_pieces_push(tmp, at, pl + 1);
                }
            } else if (tk_split(steps[k].re, buf, po, pl, md, tmp) != 0) {
                return -1;
            }
        }
        tk_pieces t = *out;
        *out = *tmp;
        *tmp = t;
        if (out->oom || buf->oom) return -2;
    }
    return out->oom || buf->oom ? -2 : 0;
}
