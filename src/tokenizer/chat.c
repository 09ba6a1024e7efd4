/* chat.c — chat templates without a template engine: ChatML (Qwen2/2.5), Llama 3 and plain
 * prompts. A template is a list of parts, each a marker (a special token) or text; rendering
 * concatenates them, encoding maps markers to their ids and encodes each text part with special
 * tokens taken as text. Text parts are exactly the stretches between markers, so the ids equal
 * those of encoding the rendered text (added tokens split text the same way). */
#include "tok.h"

#include <string.h>

typedef struct tk_part {
    const char *marker; /* a special token, or NULL for text */
    const char *a, *b;  /* text: a then b (b may be NULL) */
    size_t an, bn;
} tk_part;

typedef struct tk_parts {
    tk_part *p;
    int64_t n, cap;
    int oom;
} tk_parts;

static void tk_add(tk_parts *v, const char *marker, const char *a, size_t an, const char *b,
                   size_t bn) {
    if (v->oom) return;
    if (v->n == v->cap) {
        int64_t cap = v->cap ? 2 * v->cap : 16;
        tk_part *p = segrl_realloc(v->p, (size_t)cap * sizeof *p);
        if (!p) {
            v->oom = 1;
            return;
        }
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = (tk_part){marker, a, b, an, bn};
}

static void tk_mark(tk_parts *v, const char *m) { tk_add(v, m, NULL, 0, NULL, 0); }
static void tk_text(tk_parts *v, const char *a, const char *b) {
    tk_add(v, NULL, a, strlen(a), b, b ? strlen(b) : 0);
}

/* Python's str.strip(): Unicode whitespace off both ends. */
static void tk_trim(const char *s, const char **out, size_t *out_n) {
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s), lo = 0, hi = n;
    while (lo < hi) {
        size_t adv;
        int32_t cp = tk_get_utf8(p + lo, hi - lo, &adv);
        if (cp < 0 || !tk_is_space((uint32_t)cp)) break;
        lo += adv;
    }
    while (hi > lo) {
        size_t k = 1;
        while (k < 4 && hi - k > lo && (p[hi - k] & 0xC0) == 0x80)
            k++;
        size_t adv;
        int32_t cp = tk_get_utf8(p + hi - k, k, &adv);
        if (cp < 0 || adv != k || !tk_is_space((uint32_t)cp)) break;
        hi -= k;
    }
    *out = s + lo;
    *out_n = hi - lo;
}

static segrl_status tk_build(const char *fn, int32_t format, const segrl_chat_message *m, int64_t n,
                             int gen, tk_parts *v) {
    if (n < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: n: %lld < 0", fn, (long long)n);
    if (n > 0 && !m) return sg_fail(SEGRL_ERR_INVALID, "%s: messages: NULL", fn);
    for (int64_t i = 0; i < n; i++)
        if (!m[i].role || !m[i].content)
            return sg_fail(SEGRL_ERR_INVALID, "%s: messages[%lld]: NULL role or content", fn,
                           (long long)i);
    switch (format) {
    case SEGRL_CHAT_PLAIN:
        for (int64_t i = 0; i < n; i++) {
            if (i) tk_text(v, "\n", NULL);
            tk_text(v, m[i].content, NULL);
        }
        break;
    case SEGRL_CHAT_CHATML:
        for (int64_t i = 0; i < n; i++) {
            tk_mark(v, "<|im_start|>");
            tk_add(v, NULL, m[i].role, strlen(m[i].role), NULL, 0);
            tk_text(v, "\n", m[i].content);
            tk_mark(v, "<|im_end|>");
            tk_text(v, "\n", NULL);
        }
        if (gen) {
            tk_mark(v, "<|im_start|>");
            tk_text(v, "assistant\n", NULL);
        }
        break;
    case SEGRL_CHAT_LLAMA3:
        tk_mark(v, "<|begin_of_text|>");
        for (int64_t i = 0; i < n; i++) {
            const char *c;
            size_t cn;
            tk_trim(m[i].content, &c, &cn);
            tk_mark(v, "<|start_header_id|>");
            tk_text(v, m[i].role, NULL);
            tk_mark(v, "<|end_header_id|>");
            tk_add(v, NULL, "\n\n", 2, c, cn);
            tk_mark(v, "<|eot_id|>");
        }
        if (gen) {
            tk_mark(v, "<|start_header_id|>");
            tk_text(v, "assistant", NULL);
            tk_mark(v, "<|end_header_id|>");
            tk_text(v, "\n\n", NULL);
        }
        break;
    default:
        return sg_fail(SEGRL_ERR_INVALID, "%s: format: %d is not a segrl_chat_format", fn, format);
    }
    /* adjacent text parts (a role, then "\n" and the content) form one stretch of text */
    if (v->oom) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    return SEGRL_OK;
}

segrl_status segrl_chat_render(int32_t format, const segrl_chat_message *messages, int64_t n,
                               int add_generation_prompt, char **out_text, size_t *out_len) {
    const char *fn = "segrl_chat_render";
    if (!out_text) return sg_fail(SEGRL_ERR_INVALID, "%s: out_text: NULL", fn);
    tk_parts v = {0};
    segrl_status st = tk_build(fn, format, messages, n, add_generation_prompt, &v);
    tk_bytes b = {0};
    tk_bytes_put(&b, NULL, 0);
    for (int64_t i = 0; !st && i < v.n; i++) {
        const tk_part *p = &v.p[i];
        if (p->marker)
            tk_bytes_put(&b, p->marker, strlen(p->marker));
        else {
            tk_bytes_put(&b, p->a, p->an);
            if (p->b) tk_bytes_put(&b, p->b, p->bn);
        }
    }
    segrl_free(v.p);
    if (!st && b.oom) st = sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    if (st) {
        tk_bytes_free(&b);
        return st;
    }
    *out_text = b.p;
    if (out_len) *out_len = b.n;
    return SEGRL_OK;
}

segrl_status segrl_tokenizer_encode_chat(const segrl_tokenizer *tok, int32_t format,
                                         const segrl_chat_message *messages, int64_t n,
                                         int add_generation_prompt, int32_t **out_ids,
                                         int64_t *out_n) {
    const char *fn = "segrl_tokenizer_encode_chat";
    if (!tok) return sg_fail(SEGRL_ERR_INVALID, "%s: tok: NULL", fn);
    if (!out_ids || !out_n) return sg_fail(SEGRL_ERR_INVALID, "%s: out_ids/out_n: NULL", fn);
    tk_parts v = {0};
    segrl_status st = tk_build(fn, format, messages, n, add_generation_prompt, &v);
    tk_ids ids = {0};
    tk_bytes text = {0};
    int64_t i = 0;
    while (!st && i < v.n) {
        const tk_part *p = &v.p[i];
        if (p->marker) {
            int32_t id = segrl_tokenizer_token_id(tok, p->marker);
            if (id < 0) {
                st = sg_fail(SEGRL_ERR_INVALID, "%s: tok: has no token %s, which format %d needs",
                             fn, p->marker, format);
                break;
            }
            tk_ids_push(&ids, id);
            i++;
            continue;
        }
        /* one stretch of text: every text part up to the next marker */
        text.n = 0;
        tk_bytes_put(&text, NULL, 0);
        for (; i < v.n && !v.p[i].marker; i++) {
            tk_bytes_put(&text, v.p[i].a, v.p[i].an);
            if (v.p[i].b) tk_bytes_put(&text, v.p[i].b, v.p[i].bn);
        }
        if (text.oom)
            st = sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
        else
            st = tk_encode(tok, fn, text.p, text.n, 1, &ids);
    }
    segrl_free(v.p);
    tk_bytes_free(&text);
    if (!st && ids.oom) st = sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    if (st) {
        segrl_free(ids.p);
        return st;
    }
    *out_ids = ids.p;
    *out_n = ids.n;
    return SEGRL_OK;
}
