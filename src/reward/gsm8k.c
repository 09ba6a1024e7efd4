/* gsm8k.c — the GSM8K verifier (Cobbe et al. 2021, arXiv 2110.14168).
 *
 * Final answer of a response, first rule that yields a number:
 *   1. the last "####": the first number after it on its line        (the dataset's own format)
 *   2. the last "The answer is" (any case): the first number after it on its line
 *   3. the last balanced \boxed{...}: the first number inside
 *   4. the last number anywhere in the response
 * A number is [-]digits with thousands commas and an optional fraction, so currency signs, units,
 * trailing periods and commas around it fall away. The reference is read the same way when it
 * holds "####" (a full solution), else its last number. Both are put in canonical decimal form;
 * two integers are equal when their digit strings are (exact, any length); otherwise
 * |a - b| <= tolerance * max(1, |b|).
 * SPO / VinePPO option: a response with more than one "####" scores multi_answer_score. */
#include "rw.h"
#include "text.h"

#include <string.h>

typedef struct gsm8k {
    segrl_gsm8k_opts o;
} gsm8k;

segrl_gsm8k_opts segrl_gsm8k_defaults(void) {
    segrl_gsm8k_opts o = {1.0f, 0.0f, 1e-4, 0, -1.0f};
    return o;
}

enum { CANON_CAP = 1024 };

/* first number on the line that starts at p */
static int number_on_line(const char *s, size_t n, size_t p, size_t *b, size_t *e) {
    size_t q = p;
    while (q < n && s[q] != '\n') q++;
    if (!rw_first_number(s + p, q - p, b, e)) return 0;
    *b += p;
    *e += p;
    return 1;
}

/* the answer span of a response by the four rules; 1 found, 0 none, -1 out of memory */
static int gsm8k_extract(const char *s, size_t n, size_t *b, size_t *e) {
    size_t p = (size_t)-1;
    for (size_t i = n; i >= 4; i--)
        if (memcmp(s + i - 4, "####", 4) == 0) {
            p = i;
            break;
        }
    if (p != (size_t)-1 && number_on_line(s, n, p, b, e)) return 1;
    p = rw_last_ci(s, n, "the answer is");
    if (p != (size_t)-1 && number_on_line(s, n, p, b, e)) return 1;
    size_t cb, ce;
    int r = rw_last_boxed(s, n, &cb, &ce);
    if (r < 0) return -1;
    if (r && rw_first_number(s + cb, ce - cb, b, e)) {
        *b += cb;
        *e += cb;
        return 1;
    }
    return rw_last_number(s, n, b, e);
}

static segrl_status gsm8k_score(void *user, const segrl_reward_sample *smp, int64_t n,
                                const segrl_reward_run *run, float *out,
                                segrl_reward_detail *det) {
    (void)run;
    const gsm8k *g = user;
    for (int64_t i = 0; i < n; i++) {
        const char *resp = smp[i].response ? smp[i].response : "";
        const char *ref = smp[i].answer ? smp[i].answer : "";
        size_t rn = strlen(resp), fn = strlen(ref);
        segrl_reward_detail d;
        memset(&d, 0, sizeof d);
        float sc = g->o.incorrect;
        char cref[CANON_CAP], cgot[CANON_CAP];
        int ref_int = 0, got_int = 0;
        double ref_v = 0, got_v = 0;
        size_t b, e;
        /* reference */
        int ok = 0;
        size_t hp = (size_t)-1;
        for (size_t k = fn; k >= 4; k--)
            if (memcmp(ref + k - 4, "####", 4) == 0) {
                hp = k;
                break;
            }
        if (hp != (size_t)-1) ok = number_on_line(ref, fn, hp, &b, &e);
        else ok = rw_last_number(ref, fn, &b, &e);
        if (ok) ok = rw_canon_number(ref + b, e - b, cref, sizeof cref, &ref_int, &ref_v) == 1;
        if (!ok) {
            d.reason = SEGRL_REWARD_BAD_REFERENCE;
        } else if (rn == 0) {
            d.reason = SEGRL_REWARD_EMPTY_RESPONSE;
        } else if (g->o.multi_answer_penalty && rw_count(resp, rn, "####") > 1) {
            d.reason = SEGRL_REWARD_MULTIPLE_ANSWERS;
            sc = g->o.multi_answer_score;
        } else {
            int r = gsm8k_extract(resp, rn, &b, &e);
            if (r < 0) return sg_fail(SEGRL_ERR_ALLOC, "gsm8k: out of memory");
            if (r == 0) {
                d.reason = SEGRL_REWARD_NO_ANSWER;
            } else if (rw_expired()) {
                d.reason = SEGRL_REWARD_TIMEOUT;
            } else {
                rw_text(d.extracted, resp + b, e - b);
                int c = rw_canon_number(resp + b, e - b, cgot, sizeof cgot, &got_int, &got_v);
                if (c < 0) {
                    d.reason = SEGRL_REWARD_TOO_LONG_INPUT;
                } else if (c == 0) {
                    d.reason = SEGRL_REWARD_NO_ANSWER;
                } else {
                    rw_text(d.normalized, cgot, strlen(cgot));
                    int eq = (ref_int && got_int) ? strcmp(cref, cgot) == 0
                                                  : (strcmp(cref, cgot) == 0 ||
                                                     rw_close(got_v, ref_v, g->o.tolerance));
                    d.reason = eq ? SEGRL_REWARD_OK : SEGRL_REWARD_WRONG;
                    sc = eq ? g->o.correct : g->o.incorrect;
                }
            }
        }
        out[i] = sc;
        if (det) det[i] = d;
    }
    return SEGRL_OK;
}

segrl_status segrl_reward_gsm8k(const segrl_gsm8k_opts *opts, segrl_reward **out) {
    static const char *fn = "segrl_reward_gsm8k";
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    segrl_gsm8k_opts o = opts ? *opts : segrl_gsm8k_defaults();
    SG_TRY(sg_check_finite_param(fn, "opts->correct", o.correct));
    SG_TRY(sg_check_finite_param(fn, "opts->incorrect", o.incorrect));
    SG_TRY(sg_check_finite_param(fn, "opts->multi_answer_score", o.multi_answer_score));
    if (!(o.tolerance >= 0) || o.tolerance > 1e300)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->tolerance: must be finite and >= 0", fn);
    gsm8k g = {o};
    return rw_new_copy(fn, "gsm8k", SEGRL_REWARD_PER_SAMPLE, gsm8k_score, &g, sizeof g, out);
}
