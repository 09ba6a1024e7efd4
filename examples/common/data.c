/* data.c — GSM8K / MATH JSONL loaders; see ex_data.h for the formats and the error rules. */
#include "ex_data.h"
#include "ex_util.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FN "ex_dataset_load"

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

// ----------------------------------------------------------------------------
// UTF-8

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid (RFC 3629: no overlong
 * forms, no surrogates U+D800..U+DFFF, nothing above U+10FFFF). */
static size_t utf8_valid_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) len = 3;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else return 0;
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

char *ex_utf8_sanitize(const char *s, size_t n, size_t *out_len, int64_t *out_fixed) {
    /* worst case: every byte becomes the 3-byte replacement character */
    char *out = malloc(3 * n + 1);
    if (!out) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    int64_t fixed = 0;
    while (i < n) {
        size_t l = utf8_valid_len(u + i, n - i);
        if (l) {
            memcpy(out + o, s + i, l);
            o += l;
            i += l;
        } else {
            out[o++] = (char)0xEF, out[o++] = (char)0xBF, out[o++] = (char)0xBD; /* U+FFFD */
            fixed++;
            i++; /* one replacement per bad byte: resynchronizes at the next lead byte */
        }
    }
    out[o] = 0;
    if (out_len) *out_len = o;
    if (out_fixed) *out_fixed = fixed;
    return out;
}

// ----------------------------------------------------------------------------
// final answers

char *ex_gsm8k_final_answer(const char *solution) {
    if (!solution) return NULL;
    const char *last = NULL;
    for (const char *p = strstr(solution, "####"); p; p = strstr(p + 4, "####")) last = p;
    if (!last) return NULL;
    const char *a = last + 4;
    while (*a && isspace((unsigned char)*a)) a++;
    size_t n = strlen(a);
    while (n && isspace((unsigned char)a[n - 1])) n--;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != ',') out[o++] = a[i];
    out[o] = 0;
    if (o == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* content of a \boxed / \fbox command whose name ends at p; NULL when malformed */
static char *boxed_content(const char *p) {
    if (*p == '{') {
        const char *start = ++p;
        int depth = 1;
        while (*p) {
            if (*p == '\\' && p[1]) { /* "\{", "\}" and other escapes are not structure */
                p += 2;
                continue;
            }
            if (*p == '{') depth++;
            else if (*p == '}' && --depth == 0) return dup_n(start, (size_t)(p - start));
            p++;
        }
        return NULL; /* unbalanced */
    }
    if (*p == ' ') { /* "\boxed 5": up to the end of math mode or whitespace */
        while (*p == ' ') p++;
        const char *start = p;
        while (*p && *p != '$' && !isspace((unsigned char)*p)) p++;
        return p > start ? dup_n(start, (size_t)(p - start)) : NULL;
    }
    return NULL;
}

char *ex_math_last_boxed(const char *s) {
    if (!s) return NULL;
    /* scan backwards over every occurrence, the last well-formed one wins */
    size_t n = strlen(s);
    for (size_t i = n; i-- > 0;) {
        if (s[i] != '\\') continue;
        const char *p = s + i + 1;
        size_t name = 0;
        if (strncmp(p, "boxed", 5) == 0) name = 5;
        else if (strncmp(p, "fbox", 4) == 0) name = 4;
        if (!name) continue;
        char *c = boxed_content(p + name);
        if (c) return c;
    }
    return NULL;
}

// ----------------------------------------------------------------------------
// loading

const char *ex_data_format_name(ex_data_format f) {
    switch (f) {
    case EX_DATA_AUTO: return "auto";
    case EX_DATA_GSM8K: return "gsm8k";
    case EX_DATA_MATH: return "math";
    }
    return "?";
}

int ex_data_format_from_name(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "auto") == 0) return EX_DATA_AUTO;
    if (strcmp(name, "gsm8k") == 0) return EX_DATA_GSM8K;
    if (strcmp(name, "math") == 0) return EX_DATA_MATH;
    return -1;
}

static void problem_free(ex_problem *p) {
    free(p->question);
    free(p->solution);
    free(p->reference);
    free(p->type);
    memset(p, 0, sizeof *p);
}

void ex_dataset_free(ex_dataset *d) {
    if (!d) return;
    for (int64_t i = 0; i < d->n; i++) problem_free(&d->items[i]);
    free(d->items);
    memset(d, 0, sizeof *d);
}

static const char *str_field(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Parses one line's object into *p. Returns NULL on success or a static-ish message in msg. */
static segrl_status parse_problem(const cJSON *o, int format, ex_problem *p, char *msg,
                                  size_t cap) {
    const char *qk = format == EX_DATA_GSM8K ? "question" : "problem";
    const char *sk = format == EX_DATA_GSM8K ? "answer" : "solution";
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, qk);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, sk);
    if (!q || !s) {
        snprintf(msg, cap, "missing field \"%s\" (a %s line needs \"%s\" and \"%s\")",
                 !q ? qk : sk, format == EX_DATA_GSM8K ? "GSM8K" : "MATH", qk, sk);
        return SEGRL_ERR_INVALID;
    }
    if (!cJSON_IsString(q) || !cJSON_IsString(s)) {
        snprintf(msg, cap, "field \"%s\" is not a string", !cJSON_IsString(q) ? qk : sk);
        return SEGRL_ERR_INVALID;
    }
    memset(p, 0, sizeof *p);
    if (format == EX_DATA_GSM8K) {
        p->reference = ex_gsm8k_final_answer(s->valuestring);
        if (!p->reference) {
            snprintf(msg, cap, "no final answer: \"answer\" has no \"#### <number>\"");
            return SEGRL_ERR_INVALID;
        }
    } else {
        const char *a = str_field(o, "answer");
        p->reference = a ? dup_n(a, strlen(a)) : ex_math_last_boxed(s->valuestring);
        if (!p->reference) {
            snprintf(msg, cap, "no final answer: no \"answer\" field and no \\boxed{...} in "
                               "\"solution\"");
            return SEGRL_ERR_INVALID;
        }
        const cJSON *lv = cJSON_GetObjectItemCaseSensitive(o, "level");
        /* levels outside [0, 1000] read as absent (a huge number cast to int32 is undefined
         * behaviour: found by fuzz/fuzz-jsonl) */
        if (cJSON_IsNumber(lv)) {
            double d = lv->valuedouble;
            p->level = d >= 0 && d <= 1000 ? (int32_t)d : 0;
        } else if (cJSON_IsString(lv)) {
            const char *t = lv->valuestring;
            while (*t && !isdigit((unsigned char)*t)) t++;
            long v = *t ? strtol(t, NULL, 10) : 0;
            p->level = v >= 0 && v <= 1000 ? (int32_t)v : 0;
        }
        const char *ty = str_field(o, "type");
        if (!ty) ty = str_field(o, "subject");
        if (ty) p->type = dup_n(ty, strlen(ty));
    }
    p->question = dup_n(q->valuestring, strlen(q->valuestring));
    p->solution = dup_n(s->valuestring, strlen(s->valuestring));
    if (!p->question || !p->solution) {
        problem_free(p);
        snprintf(msg, cap, "out of memory");
        return SEGRL_ERR_ALLOC;
    }
    return SEGRL_OK;
}

segrl_status ex_dataset_load(const char *path, ex_data_format format, int skip_bad,
                             ex_dataset *out) {
    if (!path) return segrl_set_error(SEGRL_ERR_INVALID, FN ": path: NULL");
    if (!out) return segrl_set_error(SEGRL_ERR_INVALID, FN ": out: NULL");
    if (format != EX_DATA_AUTO && format != EX_DATA_GSM8K && format != EX_DATA_MATH)
        return segrl_set_error(SEGRL_ERR_INVALID, FN ": format: unknown value %d", (int)format);
    FILE *f = fopen(path, "rb");
    if (!f) return segrl_set_error(SEGRL_ERR_INVALID, FN ": %s: cannot open for reading", path);

    ex_dataset d;
    memset(&d, 0, sizeof d);
    int fmt = format;
    int64_t cap_items = 0, lineno = 0;
    char *buf = NULL;
    size_t bcap = 0, blen = 0;
    segrl_status st = SEGRL_OK;
    char msg[400];
    int r;
    while ((r = ex_read_line(f, &buf, &bcap, &blen)) == 1) {
        lineno++;
        size_t k = 0;
        while (k < blen && isspace((unsigned char)buf[k])) k++;
        if (k == blen) continue; /* blank */
        int64_t fixed = 0;
        size_t clen = 0;
        char *clean = ex_utf8_sanitize(buf, blen, &clen, &fixed);
        if (!clean) {
            st = segrl_set_error(SEGRL_ERR_ALLOC, FN ": %s:%lld: out of memory", path,
                                 (long long)lineno);
            break;
        }
        d.utf8_fixed += fixed;
        msg[0] = 0;
        segrl_status lst = SEGRL_OK;
        ex_problem p;
        cJSON *o = cJSON_ParseWithLength(clean, clen);
        if (!o) {
            const char *ep = cJSON_GetErrorPtr();
            long col = (ep && ep >= clean && ep <= clean + clen) ? (long)(ep - clean) + 1 : 0;
            snprintf(msg, sizeof msg, "not valid JSON (near column %ld)", col);
            lst = SEGRL_ERR_INVALID;
        } else if (!cJSON_IsObject(o)) {
            snprintf(msg, sizeof msg, "not a JSON object");
            lst = SEGRL_ERR_INVALID;
        } else {
            if (fmt == EX_DATA_AUTO) {
                if (cJSON_GetObjectItemCaseSensitive(o, "question")) fmt = EX_DATA_GSM8K;
                else if (cJSON_GetObjectItemCaseSensitive(o, "problem")) fmt = EX_DATA_MATH;
            }
            if (fmt == EX_DATA_AUTO) {
                snprintf(msg, sizeof msg, "cannot tell the format: neither \"question\" (GSM8K) "
                                          "nor \"problem\" (MATH) is present");
                lst = SEGRL_ERR_INVALID;
            } else {
                lst = parse_problem(o, fmt, &p, msg, sizeof msg);
            }
        }
        cJSON_Delete(o);
        free(clean);
        if (lst == SEGRL_ERR_ALLOC) {
            st = segrl_set_error(lst, FN ": %s:%lld: %s", path, (long long)lineno, msg);
            break;
        }
        if (lst != SEGRL_OK) {
            if (!skip_bad) {
                st = segrl_set_error(lst, FN ": %s:%lld: %s", path, (long long)lineno, msg);
                break;
            }
            if (d.skipped++ == 0)
                snprintf(d.first_error, sizeof d.first_error, "%s:%lld: %s", path,
                         (long long)lineno, msg);
            continue;
        }
        p.line = lineno;
        if (d.n == cap_items) {
            int64_t nc = cap_items ? cap_items * 2 : 256;
            ex_problem *ni = realloc(d.items, (size_t)nc * sizeof *ni);
            if (!ni) {
                problem_free(&p);
                st = segrl_set_error(SEGRL_ERR_ALLOC, FN ": %s:%lld: out of memory", path,
                                     (long long)lineno);
                break;
            }
            d.items = ni;
            cap_items = nc;
        }
        d.items[d.n++] = p;
    }
    if (st == SEGRL_OK && r < 0)
        st = segrl_set_error(SEGRL_ERR_ALLOC, FN ": %s:%lld: out of memory (line too long?)", path,
                             (long long)lineno + 1);
    if (st == SEGRL_OK && ferror(f))
        st = segrl_set_error(SEGRL_ERR_INVALID, FN ": %s:%lld: read error", path,
                             (long long)lineno + 1);
    if (st == SEGRL_OK && d.n == 0)
        st = segrl_set_error(SEGRL_ERR_INVALID, FN ": %s: no problems in the file%s%s", path,
                             d.skipped ? "; first bad line: " : "", d.first_error);
    free(buf);
    fclose(f);
    if (st != SEGRL_OK) {
        ex_dataset_free(&d);
        return st;
    }
    d.format = fmt;
    *out = d;
    return SEGRL_OK;
}
