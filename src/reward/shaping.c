/* shaping.c — rewards on the form of a response rather than its answer: a PCRE2 format reward,
 * DAPO's soft overlong punishment, and an n-gram repetition penalty. */
#include "rw.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

// ----------------------------------------------------------------------------
// format: match / miss on a PCRE2 pattern

typedef struct fmt {
    pcre2_code *code;
    float match, miss;
} fmt;

enum { FMT_MATCH_LIMIT = 1000000, FMT_DEPTH_LIMIT = 10000 };

static segrl_status fmt_score(void *user, const segrl_reward_sample *s, int64_t n,
                              const segrl_reward_run *run, float *out, segrl_reward_detail *det) {
    (void)run;
    const fmt *f = user;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(f->code, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    if (!md || !mc) {
        pcre2_match_data_free(md);
        pcre2_match_context_free(mc);
        return sg_fail(SEGRL_ERR_ALLOC, "format: out of memory");
    }
    pcre2_set_match_limit(mc, FMT_MATCH_LIMIT);
    pcre2_set_depth_limit(mc, FMT_DEPTH_LIMIT);
    for (int64_t i = 0; i < n; i++) {
        const char *r = s[i].response ? s[i].response : "";
        int rc = pcre2_match(f->code, (PCRE2_SPTR)r, strlen(r), 0, 0, md, mc);
        segrl_reward_detail d;
        memset(&d, 0, sizeof d);
        if (rc >= 0) {
            out[i] = f->match;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            rw_text(d.extracted, r + ov[0], ov[1] - ov[0]);
        } else {
            out[i] = f->miss;
            d.reason = SEGRL_REWARD_FORMAT_MISMATCH;
            if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
                rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT)
                snprintf(d.message, sizeof d.message, "match limit reached: counted as no match");
        }
        if (det) det[i] = d;
    }
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    return SEGRL_OK;
}

static void fmt_release(void *user) {
    fmt *f = user;
    pcre2_code_free(f->code);
    segrl_free(f);
}

segrl_status segrl_reward_format(const char *pattern, const char *flags, float match, float miss,
                                 segrl_reward **out) {
    static const char *fn = "segrl_reward_format";
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    if (!pattern) return sg_fail(SEGRL_ERR_INVALID, "%s: pattern: NULL", fn);
    SG_TRY(sg_check_finite_param(fn, "match", match));
    SG_TRY(sg_check_finite_param(fn, "miss", miss));
    uint32_t opt = 0;
    for (const char *c = flags ? flags : ""; *c; c++) {
        switch (*c) {
        case 'i': opt |= PCRE2_CASELESS; break;
        case 's': opt |= PCRE2_DOTALL; break;
        case 'm': opt |= PCRE2_MULTILINE; break;
        case 'x': opt |= PCRE2_EXTENDED; break;
        default:
            return sg_fail(SEGRL_ERR_INVALID, "%s: flags: unknown flag '%c' (i, s, m, x)", fn, *c);
        }
    }
    int err;
    PCRE2_SIZE off;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opt, &err, &off,
                                     NULL);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return sg_fail(SEGRL_ERR_INVALID, "%s: pattern: %s at offset %zu", fn, (const char *)msg,
                       (size_t)off);
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* the interpreter is used when JIT is absent */
    fmt *f = segrl_malloc(sizeof *f);
    if (!f) {
        pcre2_code_free(code);
        return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    }
    f->code = code;
    f->match = match;
    f->miss = miss;
    segrl_reward_impl impl = {SEGRL_REWARD_ABI_VERSION, SEGRL_REWARD_PER_SAMPLE, "format", f,
                              fmt_score, NULL, fmt_release};
    return rw_new_owned(&impl, RW_KIND_OTHER, out);
}

// ----------------------------------------------------------------------------
// DAPO soft overlong punishment

typedef struct overlong {
    int64_t max_len, cache;
} overlong;

static int64_t resp_len(const segrl_reward_sample *s) {
    if (s->num_response_ids > 0) return s->num_response_ids;
    return s->response ? (int64_t)strlen(s->response) : 0;
}

/* 0 for L <= Lmax - Lc; ((Lmax - Lc) - L) / Lc inside the cache; -1 beyond Lmax */
static float overlong_value(const overlong *o, int64_t L) {
    int64_t safe = o->max_len - o->cache;
    if (L <= safe) return 0.0f;
    if (L > o->max_len) return -1.0f;
    return (float)((double)(safe - L) / (double)o->cache);
}

static segrl_status overlong_score(void *user, const segrl_reward_sample *s, int64_t n,
                                   const segrl_reward_run *run, float *out,
                                   segrl_reward_detail *det) {
    (void)run;
    const overlong *o = user;
    for (int64_t i = 0; i < n; i++) {
        out[i] = overlong_value(o, resp_len(&s[i]));
        if (det) {
            memset(&det[i], 0, sizeof det[i]);
            det[i].reason = out[i] < 0 ? SEGRL_REWARD_OVERLONG : SEGRL_REWARD_OK;
        }
    }
    return SEGRL_OK;
}

segrl_status segrl_reward_overlong(int64_t max_length, int64_t cache_length, segrl_reward **out) {
    static const char *fn = "segrl_reward_overlong";
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    if (max_length <= 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: max_length: %lld must be > 0", fn,
                       (long long)max_length);
    if (cache_length <= 0 || cache_length > max_length)
        return sg_fail(SEGRL_ERR_INVALID, "%s: cache_length: %lld not in [1, max_length = %lld]",
                       fn, (long long)cache_length, (long long)max_length);
    overlong o = {max_length, cache_length};
    return rw_new_copy(fn, "overlong", SEGRL_REWARD_PER_SAMPLE, overlong_score, &o, sizeof o, out);
}

// ----------------------------------------------------------------------------
// repetition penalty: -weight * repeated n-grams / n-grams

typedef struct repet {
    int32_t n, min_ngrams;
    float weight;
} repet;

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* counts n-grams whose hash was seen earlier; units[] are per-unit hashes */
static int repeated_fraction(const uint64_t *u, int64_t m, int32_t n, int64_t *grams,
                             int64_t *rep) {
    *grams = m >= n ? m - n + 1 : 0;
    *rep = 0;
    if (*grams == 0) return 0;
    size_t cap = 16;
    while (cap < (size_t)*grams * 2) cap *= 2;
    uint64_t *tab = segrl_malloc(cap * sizeof *tab);
    if (!tab) return -1;
    memset(tab, 0, cap * sizeof *tab);
    for (int64_t i = 0; i < *grams; i++) {
        uint64_t h = 0x5eed;
        for (int32_t k = 0; k < n; k++) h = mix64(h ^ u[i + k]) + (uint64_t)k;
        if (h == 0) h = 1; /* 0 marks an empty slot */
        size_t p = (size_t)h & (cap - 1);
        for (;;) {
            if (tab[p] == 0) {
                tab[p] = h;
                break;
            }
            if (tab[p] == h) {
                (*rep)++;
                break;
            }
            p = (p + 1) & (cap - 1);
        }
    }
    segrl_free(tab);
    return 0;
}

static segrl_status repet_score(void *user, const segrl_reward_sample *s, int64_t n,
                                const segrl_reward_run *run, float *out,
                                segrl_reward_detail *det) {
    (void)run;
    const repet *r = user;
    for (int64_t i = 0; i < n; i++) {
        uint64_t *u = NULL;
        int64_t m = 0;
        if (s[i].num_response_ids > 0 && s[i].response_ids) {
            m = s[i].num_response_ids;
            u = segrl_malloc((size_t)m * sizeof *u);
            if (!u) return sg_fail(SEGRL_ERR_ALLOC, "repetition: out of memory");
            for (int64_t k = 0; k < m; k++) u[k] = mix64((uint64_t)(uint32_t)s[i].response_ids[k]);
        } else {
            const char *t = s[i].response ? s[i].response : "";
            size_t len = strlen(t);
            u = segrl_malloc((len / 2 + 1) * sizeof *u);
            if (!u) return sg_fail(SEGRL_ERR_ALLOC, "repetition: out of memory");
            for (size_t k = 0; k < len;) { /* words: maximal runs of non-space bytes */
                while (k < len && (t[k] == ' ' || t[k] == '\n' || t[k] == '\t' || t[k] == '\r'))
                    k++;
                if (k >= len) break;
                uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
                while (k < len && !(t[k] == ' ' || t[k] == '\n' || t[k] == '\t' || t[k] == '\r'))
                    h = (h ^ (unsigned char)t[k++]) * 0x100000001b3ull;
                u[m++] = h;
            }
        }
        int64_t grams, rep;
        int rc = repeated_fraction(u, m, r->n, &grams, &rep);
        segrl_free(u);
        if (rc < 0) return sg_fail(SEGRL_ERR_ALLOC, "repetition: out of memory");
        int64_t need = r->min_ngrams > 1 ? r->min_ngrams : 1;
        float v = grams >= need ? -r->weight * (float)((double)rep / (double)grams) : 0.0f;
        out[i] = v == 0.0f ? 0.0f : v;
        if (det) {
            memset(&det[i], 0, sizeof det[i]);
            det[i].reason = rep > 0 && grams >= need ? SEGRL_REWARD_REPETITION : SEGRL_REWARD_OK;
            snprintf(det[i].message, sizeof det[i].message, "%lld of %lld %d-grams repeated",
                     (long long)rep, (long long)grams, r->n);
        }
    }
    return SEGRL_OK;
}

segrl_status segrl_reward_repetition(int32_t n, float weight, int32_t min_ngrams,
                                     segrl_reward **out) {
    static const char *fn = "segrl_reward_repetition";
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    if (n < 1 || n > 64) return sg_fail(SEGRL_ERR_INVALID, "%s: n: %d not in [1, 64]", fn, n);
    SG_TRY(sg_check_finite_param(fn, "weight", weight));
    if (min_ngrams < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: min_ngrams: %d < 0", fn, min_ngrams);
    repet r = {n, min_ngrams, weight};
    return rw_new_copy(fn, "repetition", SEGRL_REWARD_PER_SAMPLE, repet_score, &r, sizeof r, out);
}
