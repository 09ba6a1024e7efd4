/* math.c — the MATH verifier (Hendrycks et al. 2021, arXiv 2103.03874), with the answer
 * normalization described for Minerva (Lewkowycz et al. 2022, arXiv 2206.14858, its appendix on
 * final-answer normalization) and the equivalence classes of PRM800K's grader (Lightman et al.
 * 2023, arXiv 2305.20050). Written for segrl from those descriptions; docs/rewards.md lists the
 * rules and where they differ.
 *
 * Extraction: the last \boxed{...} / \fbox{...} with balanced braces, else the text after the last
 * "final answer is" ($...$ or up to the end of the sentence), else the last number (a/b kept).
 * Normalization, in passes over a bounded buffer (answers over MATH_MAX bytes are rejected):
 *   A  \left \right \! \, \; \: \quad; \dfrac \tfrac -> \frac; ^\circ ^{\circ} \circ °; $ \$;
 *      % \%; \displaystyle; \cdot \times -> *; "a b/c" mixed numbers -> a\frac{b}{c}
 *   B  trailing units: a final \text{...} / \mbox{...} after something, unit words (cm, degrees...)
 *   C  \text{X} \textbf{X} \mbox{X} \mathrm{X} \mathbf{X} -> X; all spaces removed
 *   D  "x = v" (left side at most 2 characters) -> v; "x \in S" -> S
 *   E  \frac12 \frac1{2} \frac{1}2 -> \frac{1}{2}; \sqrt2 -> \sqrt{2}
 *   F  a/b (integers) -> \frac{a}{b}; leading "." -> "0."; trailing . , ; : ! \\ dropped;
 *      1,234,567 -> 1234567; redundant outer braces; (A) -> A
 * Equivalence: equal normalized strings; else equal numeric values (integers exactly, others
 * within a relative tolerance; + - * / ^, \frac, \sqrt, \sqrt[n], \pi, \infty, 1.5e3, mixed numbers
 * a\frac{b}{c} = a + b/c); else element-wise for matrices, tuples and intervals (ordered, same
 * brackets), sets \{...\} and bare comma lists (unordered), unions with \cup (ordered).
 * Every pass is linear; the evaluator and the element-wise comparison have depth limits. */
#include "rw.h"
#include "text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

enum { MATH_MAX = 8192, EVAL_DEPTH = 64, EQ_DEPTH = 4, MAX_ELEMS = 64 };

// ----------------------------------------------------------------------------
// a growing string

typedef struct sb {
    char *p;
    size_t n, cap;
    int oom;
} sb;

static void sb_reserve(sb *b, size_t extra) {
    if (b->oom || b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = segrl_realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}
static void sb_put(sb *b, const char *s, size_t n) {
    sb_reserve(b, n);
    if (b->oom) return;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void sb_putc(sb *b, char c) { sb_put(b, &c, 1); }
static void sb_clear(sb *b) {
    b->n = 0;
    sb_reserve(b, 0);
    if (!b->oom) b->p[0] = '\0';
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* s[i..] starts with pat; with `word`, the next char is not a letter */
static int at(const char *s, size_t n, size_t i, const char *pat, int word) {
    if (i >= n || s[i] != pat[0] || (pat[0] && i + 1 < n && pat[1] && s[i + 1] != pat[1])) return 0;
    size_t m = strlen(pat);
    if (i + m > n || memcmp(s + i, pat, m) != 0) return 0;
    return !word || i + m >= n || !is_alpha(s[i + m]);
}

/* match[i] for every bracket char in "{}" : the partner's index, or -1. O(n) with a stack. */
static int32_t *brace_match(const char *s, size_t n) {
    int32_t *m = segrl_malloc((n ? n : 1) * sizeof *m);
    int32_t *st = segrl_malloc((n ? n : 1) * sizeof *st);
    if (!m || !st) {
        segrl_free(m);
        segrl_free(st);
        return NULL;
    }
    size_t top = 0;
    for (size_t i = 0; i < n; i++) {
        m[i] = -1;
        if (s[i] == '{') st[top++] = (int32_t)i;
        else if (s[i] == '}' && top > 0) {
            int32_t o = st[--top];
            m[o] = (int32_t)i;
            m[i] = o;
        }
    }
    segrl_free(st);
    return m;
}

// ----------------------------------------------------------------------------
// normalization passes

typedef struct subst {
    const char *pat, *rep;
    int word;
} subst;

static const subst SUBSTS[] = {
    {"\\left", "", 1},        {"\\right", "", 1},     {"\\!", "", 0},
    {"\\,", "", 0},           {"\\;", "", 0},         {"\\:", "", 0},
    {"\\ ", "", 0},           {"\\qquad", "", 1},     {"\\quad", "", 1},
    {"\\dfrac", "\\frac", 1}, {"\\tfrac", "\\frac", 1}, {"\\circ", "", 1},
    {"\\$", "", 0},           {"\\%", "", 0},         {"\\displaystyle", "", 1},
    {"\\cdot", "*", 1},       {"\\times", "*", 1},    {"\\le", "\\leq", 1},
    {"\\ge", "\\geq", 1},     {"\\varnothing", "\\emptyset", 1},
    {"\\lbrace", "\\{", 1},   {"\\rbrace", "\\}", 1}, {"\\lvert", "|", 1},
    {"\\rvert", "|", 1},      {"\\vert", "|", 1},     {"\\mid", "|", 1},
    {"\\neq", "\\ne", 1},     {"\\infinity", "\\infty", 1},
};

/* A: substitutions, $, %, degrees, whitespace to spaces, "a b/c" mixed numbers */
static void pass_a(const char *s, size_t n, sb *o) {
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == '\\' && i + 1 < n && s[i + 1] == '\\') { /* a row break, kept whole */
            sb_put(o, "\\\\", 2);
            i += 2;
            continue;
        }
        if (c == '\\' && (at(s, n, i, "\\text{", 0) || at(s, n, i, "\\mbox{", 0))) {
            /* "x = 2 \text{ or } x = -3", "1 \text{and} 2": a list */
            size_t j = i + 6; /* both commands are 6 bytes with the brace */
            while (j < n && s[j] == ' ') j++;
            size_t w = at(s, n, j, "and", 0) ? 3 : at(s, n, j, "or", 0) ? 2 : 0;
            if (w) {
                j += w;
                while (j < n && s[j] == ' ') j++;
                if (j < n && s[j] == '}') {
                    sb_putc(o, ',');
                    i = j + 1;
                    continue;
                }
            }
        }
        if (c == '\\') {
            int hit = 0;
            for (size_t k = 0; k < sizeof SUBSTS / sizeof SUBSTS[0]; k++)
                if (at(s, n, i, SUBSTS[k].pat, SUBSTS[k].word)) {
                    sb_put(o, SUBSTS[k].rep, strlen(SUBSTS[k].rep));
                    i += strlen(SUBSTS[k].pat);
                    hit = 1;
                    break;
                }
            if (hit) continue;
            sb_putc(o, c);
            i++;
            continue;
        }
        if (c == '{' && at(s, n, i, "{,}", 0)) { /* 1{,}000: LaTeX's thousands separator */
            sb_putc(o, ',');
            i += 3;
            continue;
        }
        if (c == '^' && at(s, n, i, "^{\\circ}", 0)) { i += 8; continue; }
        if (c == '^' && at(s, n, i, "^\\circ", 1)) { i += 6; continue; }
        if ((unsigned char)c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0xB0) { i += 2; continue; }
        if (c == '$' || c == '%') { i++; continue; }
        if (is_space(c) || c == '~') {
            /* "7 3/4" -> 7\frac{3}{4} */
            if (o->n > 0 && !o->oom && is_digit(o->p[o->n - 1])) {
                size_t j = i;
                while (j < n && s[j] == ' ') j++;
                size_t a = j;
                while (j < n && is_digit(s[j])) j++;
                size_t ae = j;
                if (ae > a && j < n && s[j] == '/') {
                    size_t b = ++j;
                    while (j < n && is_digit(s[j])) j++;
                    if (j > b && (j >= n || !is_digit(s[j]))) {
                        sb_put(o, "\\frac{", 6);
                        sb_put(o, s + a, ae - a);
                        sb_put(o, "}{", 2);
                        sb_put(o, s + b, j - b);
                        sb_putc(o, '}');
                        i = j;
                        continue;
                    }
                }
            }
            sb_putc(o, ' ');
            i++;
            continue;
        }
        sb_putc(o, c);
        i++;
    }
}

static const char *UNIT_CMDS[] = {"\\text", "\\mbox", "\\textbf", "\\mathrm", "\\textrm"};
static const char *UNIT_WORDS[] = {
    "square units", "sq units", "units", "unit", "square feet", "square inches", "square meters",
    "square centimeters", "sq ft", "degrees", "degree", "cm^2", "cm", "mm", "km", "meters", "meter",
    "inches", "inch", "feet", "foot", "ft", "miles", "mile", "mph", "yards", "yard", "hours",
    "hour", "minutes", "minute", "seconds", "second", "days", "day", "weeks", "years", "dollars",
    "dollar", "cents", "cent", "pounds", "ounces", "gallons", "liters", "grams", "kg", "points",
    "students", "people", "ways", "sq",
};

static size_t rtrim(const char *s, size_t n) {
    while (n > 0 && is_space(s[n - 1])) n--;
    return n;
}

/* B: trailing unit text and unit words (only after something that is not a unit) */
static size_t pass_b(const char *s, size_t n) {
    n = rtrim(s, n);
    for (int it = 0; it < 4 && n > 0; it++) {
        int cut = 0;
        /* a unit with an exponent: 5\text{ cm}^2, 5\text{ m}^{3} */
        size_t e = n;
        if (n >= 3 && s[n - 2] == '^' && (s[n - 1] == '2' || s[n - 1] == '3')) e = n - 2;
        else if (n >= 5 && s[n - 4] == '^' && s[n - 3] == '{' && (s[n - 2] == '2' || s[n - 2] == '3') &&
                 s[n - 1] == '}')
            e = n - 4;
        if (e < n && s[e - 1] != '}') e = n;
        if (s[e - 1] == '}') { /* the brace that closes at e-1, scanning back */
            size_t d = 0, i = e;
            while (i-- > 0) {
                if (s[i] == '}') d++;
                else if (s[i] == '{' && --d == 0) break;
            }
            if (d == 0 && i < e) {
                for (size_t k = 0; k < sizeof UNIT_CMDS / sizeof UNIT_CMDS[0]; k++) {
                    size_t m = strlen(UNIT_CMDS[k]);
                    if (i >= m && memcmp(s + i - m, UNIT_CMDS[k], m) == 0) {
                        size_t rest = rtrim(s, i - m);
                        /* keep "\text{(A)}" alone, and units after a non-number like "x \text{ or }" */
                        if (rest > 0 && (is_digit(s[rest - 1]) || s[rest - 1] == '}' ||
                                         s[rest - 1] == ')')) {
                            n = rest;
                            cut = 1;
                        }
                        break;
                    }
                }
            }
        }
        if (!cut) {
            for (size_t k = 0; k < sizeof UNIT_WORDS / sizeof UNIT_WORDS[0]; k++) {
                size_t m = strlen(UNIT_WORDS[k]);
                if (n > m && memcmp(s + n - m, UNIT_WORDS[k], m) == 0 && !is_alpha(s[n - m - 1])) {
                    size_t rest = rtrim(s, n - m);
                    if (rest > 0 && (is_digit(s[rest - 1]) || s[rest - 1] == '}')) {
                        n = rest;
                        cut = 1;
                    }
                    break;
                }
            }
        }
        if (!cut) break;
    }
    return n;
}

static const char *UNWRAP[] = {"\\textbf{", "\\textit{", "\\textrm{", "\\textnormal{",
                               "\\text{",   "\\mbox{",   "\\mathrm{", "\\mathbf{",
                               "\\mathit{", "\\boxed{",  "\\fbox{"};

/* C: unwrap text-like commands (their closing brace dropped), remove all spaces */
static int pass_c(const char *s, size_t n, sb *o) {
    unsigned char *st = segrl_malloc(n ? n : 1);
    if (!st) return -1;
    size_t top = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '\\') {
            int hit = 0;
            for (size_t k = 0; k < sizeof UNWRAP / sizeof UNWRAP[0]; k++)
                if (at(s, n, i, UNWRAP[k], 0)) {
                    st[top++] = 1;
                    i += strlen(UNWRAP[k]);
                    hit = 1;
                    break;
                }
            if (hit) continue;
            if (i + 1 < n && (s[i + 1] == '{' || s[i + 1] == '}')) { /* \{ \} are literal */
                sb_put(o, s + i, 2);
                i += 2;
                continue;
            }
        }
        if (s[i] == '{') {
            st[top++] = 0;
        } else if (s[i] == '}' && top > 0) {
            if (st[--top]) {
                i++;
                continue;
            }
        } else if (is_space(s[i])) {
            i++;
            continue;
        }
        sb_putc(o, s[i]);
        i++;
    }
    segrl_free(st);
    return 0;
}

/* D: "x=" prefix, "x\in" prefix; returns the start offset to keep */
static size_t pass_d(const char *s, size_t n) {
    size_t eq = 0, pos = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '=') eq++, pos = i;
    if (eq == 1 && pos <= 2 && pos + 1 < n) {
        int var = pos > 0;
        for (size_t i = 0; i < pos; i++) var &= is_alpha(s[i]) || is_digit(s[i]) || s[i] == '_';
        if (var && is_alpha(s[0])) return pos + 1;
    }
    for (size_t k = 1; k <= 2 && k < n; k++) {
        int var = 1;
        for (size_t i = 0; i < k; i++) var &= is_alpha(s[i]);
        if (var && at(s, n, k, "\\in", 1)) return k + 3;
    }
    return 0;
}

/* E: \frac and \sqrt shorthands */
static int pass_e(const char *s, size_t n, sb *o) {
    int32_t *m = brace_match(s, n);
    unsigned char *fix = segrl_malloc(n ? n : 1);
    if (!m || !fix) {
        segrl_free(m);
        segrl_free(fix);
        return -1;
    }
    memset(fix, 0, n ? n : 1);
    for (size_t i = 0; i < n;) {
        if (at(s, n, i, "\\frac", 1)) {
            sb_put(o, "\\frac", 5);
            i += 5;
            if (i < n && s[i] != '{' && s[i] != '\\') { /* first argument: one char */
                sb_putc(o, '{');
                sb_putc(o, s[i]);
                sb_putc(o, '}');
                i++;
                if (i < n && s[i] != '{' && s[i] != '\\') {
                    sb_putc(o, '{');
                    sb_putc(o, s[i]);
                    sb_putc(o, '}');
                    i++;
                }
            } else if (i < n && s[i] == '{' && m[i] >= 0) {
                fix[m[i]] = 1; /* its closing brace may need a braced second argument */
            }
            continue;
        }
        if (s[i] == '}' && fix[i]) {
            sb_putc(o, '}');
            i++;
            if (i < n && s[i] != '{' && s[i] != '\\') {
                sb_putc(o, '{');
                sb_putc(o, s[i]);
                sb_putc(o, '}');
                i++;
            }
            continue;
        }
        if (at(s, n, i, "\\sqrt", 1)) {
            sb_put(o, "\\sqrt", 5);
            i += 5;
            if (i < n && s[i] != '{' && s[i] != '[' && s[i] != '\\') {
                sb_putc(o, '{');
                sb_putc(o, s[i]);
                sb_putc(o, '}');
                i++;
            }
            continue;
        }
        sb_putc(o, s[i]);
        i++;
    }
    segrl_free(m);
    segrl_free(fix);
    return 0;
}

/* -?digits */
static int all_int(const char *s, size_t n) {
    size_t i = (n > 0 && s[0] == '-') ? 1 : 0;
    if (i >= n) return 0;
    for (; i < n; i++)
        if (!is_digit(s[i])) return 0;
    return 1;
}

/* -?\d{1,3}(,\d{3})+(\.\d+)? */
static int thousands(const char *s, size_t n) {
    size_t i = (n > 0 && s[0] == '-') ? 1 : 0, d = 0;
    while (i < n && is_digit(s[i])) i++, d++;
    if (d < 1 || d > 3) return 0;
    int groups = 0;
    while (i < n && s[i] == ',') {
        if (i + 4 > n || !is_digit(s[i + 1]) || !is_digit(s[i + 2]) || !is_digit(s[i + 3])) return 0;
        i += 4;
        if (i < n && is_digit(s[i])) return 0;
        groups++;
    }
    if (groups == 0) return 0;
    if (i < n && s[i] == '.') {
        i++;
        size_t f = i;
        while (i < n && is_digit(s[i])) i++;
        if (i == f) return 0;
    }
    return i == n;
}

/* F: whole-string rewrites; writes into o */
static int pass_f(const char *s, size_t n, sb *o) {
    /* trailing punctuation and "\\" */
    for (;;) {
        if (n > 0 && (s[n - 1] == '.' || s[n - 1] == ',' || s[n - 1] == ';' || s[n - 1] == ':' ||
                      s[n - 1] == '!'))
            n--;
        else if (n >= 2 && s[n - 1] == '\\' && s[n - 2] == '\\')
            n -= 2;
        else
            break;
    }
    /* redundant outer braces */
    if (n >= 2 && s[0] == '{') {
        int32_t *m = brace_match(s, n);
        if (!m) return -1;
        size_t k = 0;
        while (k < n - 1 - k && s[k] == '{' && m[k] == (int32_t)(n - 1 - k)) k++;
        segrl_free(m);
        s += k;
        n -= 2 * k;
    }
    if (thousands(s, n)) {
        for (size_t i = 0; i < n; i++)
            if (s[i] != ',') sb_putc(o, s[i]);
        return 0;
    }
    /* a/b -> \frac{a}{b} */
    const char *sl = memchr(s, '/', n);
    if (sl) {
        size_t p = (size_t)(sl - s);
        if (all_int(s, p) && p + 1 < n && all_int(s + p + 1, n - p - 1) && s[p + 1] != '-') {
            size_t a = 0;
            if (s[0] == '-') sb_putc(o, '-'), a = 1;
            sb_put(o, "\\frac{", 6);
            sb_put(o, s + a, p - a);
            sb_put(o, "}{", 2);
            sb_put(o, s + p + 1, n - p - 1);
            sb_putc(o, '}');
            return 0;
        }
    }
    if (n == 3 && s[0] == '(' && s[2] == ')' && is_alpha(s[1])) {
        sb_putc(o, s[1]);
        return 0;
    }
    if (n > 0 && s[0] == '.') sb_putc(o, '0');
    else if (n > 1 && s[0] == '-' && s[1] == '.') {
        sb_put(o, "-0", 2);
        s++;
        n--;
    }
    sb_put(o, s, n);
    return 0;
}

/* Normalizes answer s[0..n) into out (NUL-terminated). 0 ok, -1 out of memory. */
static int math_norm(const char *s, size_t n, sb *out) {
    sb a = {0}, b = {0};
    /* an answer given as \boxed{...}: its content */
    size_t bb, be;
    int r = rw_last_boxed(s, n, &bb, &be);
    if (r < 0) return -1;
    if (r) {
        size_t i = 0;
        while (i < n && is_space(s[i])) i++;
        size_t e = rtrim(s, n);
        if ((i + 7 <= n && memcmp(s + i, "\\boxed{", 7) == 0 && bb == i + 7 && be + 1 == e) ||
            (i + 6 <= n && memcmp(s + i, "\\fbox{", 6) == 0 && bb == i + 6 && be + 1 == e)) {
            s += bb;
            n = be - bb;
        }
    }
    int st = 0;
    pass_a(s, n, &a);
    if (a.oom) st = -1;
    if (!st) {
        size_t m = pass_b(a.p ? a.p : "", a.n);
        if (pass_c(a.p ? a.p : "", m, &b) < 0 || b.oom) st = -1;
    }
    if (!st) {
        size_t k = pass_d(b.p ? b.p : "", b.n);
        sb_clear(&a);
        if (pass_e((b.p ? b.p : "") + k, b.n - k, &a) < 0 || a.oom) st = -1;
    }
    if (!st) {
        sb_clear(out);
        if (pass_f(a.p ? a.p : "", a.n, out) < 0 || out->oom) st = -1;
        if (!st && !out->p) sb_put(out, "", 0);
        if (out->oom) st = -1;
    }
    segrl_free(a.p);
    segrl_free(b.p);
    return st;
}

// ----------------------------------------------------------------------------
// numeric value of a normalized answer

typedef struct ev {
    const char *s;
    size_t n, i;
    int depth, bad, infty;
} ev;

static double ev_expr(ev *e);

static int ev_at(ev *e, const char *pat, int word) { return at(e->s, e->n, e->i, pat, word); }

/* braced group {expr}; a single char also accepted when `loose` */
static double ev_group(ev *e, int loose) {
    if (e->i < e->n && e->s[e->i] == '{') {
        e->i++;
        double v = ev_expr(e);
        if (e->i < e->n && e->s[e->i] == '}') e->i++;
        else e->bad = 1;
        return v;
    }
    if (loose && e->i < e->n && is_digit(e->s[e->i])) return (double)(e->s[e->i++] - '0');
    e->bad = 1;
    return 0;
}

/* number literal; *is_int when it is plain digits */
static double ev_number(ev *e, int *is_int) {
    size_t b = e->i, i = e->i;
    while (i < e->n && is_digit(e->s[i])) i++;
    *is_int = i > b;
    if (i < e->n && e->s[i] == '.') {
        *is_int = 0;
        i++;
        while (i < e->n && is_digit(e->s[i])) i++;
    }
    if (i < e->n && (e->s[i] == 'e' || e->s[i] == 'E')) {
        size_t j = i + 1;
        if (j < e->n && (e->s[j] == '+' || e->s[j] == '-')) j++;
        if (j < e->n && is_digit(e->s[j])) {
            while (j < e->n && is_digit(e->s[j])) j++;
            i = j;
            *is_int = 0;
        }
    }
    size_t len = i - b;
    if (len == 0 || (len == 1 && e->s[b] == '.')) {
        e->bad = 1;
        return 0;
    }
    char small[64];
    char *buf = len < sizeof small ? small : segrl_malloc(len + 1);
    if (!buf) {
        e->bad = 1;
        return 0;
    }
    memcpy(buf, e->s + b, len);
    buf[len] = '\0';
    double v = strtod(buf, NULL);
    if (buf != small) segrl_free(buf);
    e->i = i;
    return v;
}

/* atom; *kind: 1 plain integer literal, 2 \frac of two integer literals, 0 other */
static double ev_atom(ev *e, int *kind) {
    *kind = 0;
    if (e->bad || e->i >= e->n) {
        e->bad = 1;
        return 0;
    }
    char c = e->s[e->i];
    if (is_digit(c) || c == '.') {
        int is_int;
        double v = ev_number(e, &is_int);
        *kind = is_int;
        return v;
    }
    if (c == '(' || c == '{') {
        char close = c == '(' ? ')' : '}';
        e->i++;
        double v = ev_expr(e);
        if (e->i < e->n && e->s[e->i] == close) e->i++;
        else e->bad = 1;
        return v;
    }
    if (ev_at(e, "\\pi", 1)) {
        e->i += 3;
        return M_PI;
    }
    if ((unsigned char)c == 0xCF && e->i + 1 < e->n && (unsigned char)e->s[e->i + 1] == 0x80) {
        e->i += 2;
        return M_PI;
    }
    if (ev_at(e, "\\infty", 1)) {
        e->i += 6;
        e->infty = 1;
        return INFINITY;
    }
    if (ev_at(e, "\\frac", 1)) {
        e->i += 5;
        size_t b0 = e->i;
        double a = ev_group(e, 1);
        size_t b1 = e->i;
        double b = ev_group(e, 1);
        size_t b2 = e->i;
        /* both arguments plain integers: {digits}{digits} */
        int ia = b1 - b0 >= 3 && all_int(e->s + b0 + 1, b1 - b0 - 2) && e->s[b0 + 1] != '-';
        int ib = b2 - b1 >= 3 && all_int(e->s + b1 + 1, b2 - b1 - 2) && e->s[b1 + 1] != '-';
        if (ia && ib) *kind = 2;
        return a / b;
    }
    if (ev_at(e, "\\sqrt", 1)) {
        e->i += 5;
        double k = 2;
        if (e->i < e->n && e->s[e->i] == '[') {
            e->i++;
            k = ev_expr(e);
            if (e->i < e->n && e->s[e->i] == ']') e->i++;
            else e->bad = 1;
        }
        double x = ev_group(e, 1);
        if (k == 2) return sqrt(x);
        if (x < 0 && fmod(k, 2) == 1) return -pow(-x, 1.0 / k);
        return pow(x, 1.0 / k);
    }
    e->bad = 1; /* a variable or an unknown command: not a number */
    return 0;
}

static double ev_power(ev *e, int *kind) {
    double v = ev_atom(e, kind);
    if (!e->bad && e->i < e->n && e->s[e->i] == '^') {
        e->i++;
        *kind = 0;
        double x;
        if (e->i < e->n && e->s[e->i] == '{') {
            x = ev_group(e, 0);
        } else if (e->i < e->n && e->s[e->i] == '-') {
            e->i++;
            int k2;
            x = -ev_atom(e, &k2);
        } else if (e->i < e->n && is_digit(e->s[e->i])) {
            x = (double)(e->s[e->i++] - '0'); /* x^23 in LaTeX is x^2 * 3 */
        } else {
            int k2;
            x = ev_atom(e, &k2);
        }
        v = pow(v, x);
    }
    return v;
}

static double ev_unary(ev *e, int *kind) {
    double sign = 1;
    while (e->i < e->n && (e->s[e->i] == '-' || e->s[e->i] == '+')) {
        if (e->s[e->i] == '-') sign = -sign;
        e->i++;
    }
    return sign * ev_power(e, kind);
}

static int starts_atom(const ev *e) {
    if (e->i >= e->n) return 0;
    char c = e->s[e->i];
    return c == '(' || c == '{' || c == '\\' || is_digit(c) || (unsigned char)c == 0xCF;
}

static double ev_term(ev *e) {
    int kind;
    int neg = e->i < e->n && e->s[e->i] == '-';
    double v = ev_unary(e, &kind);
    int first = 1;
    while (!e->bad && e->i < e->n) {
        char c = e->s[e->i];
        if (c == '*' || c == '/') {
            e->i++;
            int k2;
            double x = ev_unary(e, &k2);
            v = c == '*' ? v * x : v / x;
        } else if (starts_atom(e) && c != '\\' ? 1 : (c == '\\' && !ev_at(e, "\\infty", 1))) {
            int k2;
            size_t save = e->i;
            double x = ev_power(e, &k2);
            if (e->bad) {
                e->i = save;
                break;
            }
            /* mixed number: an integer literal directly followed by \frac{int}{int} */
            if (first && kind == 1 && k2 == 2) v = neg ? v - x : v + x;
            else v *= x;
        } else {
            break;
        }
        first = 0;
    }
    return v;
}

static double ev_expr(ev *e) {
    if (++e->depth > EVAL_DEPTH) {
        e->bad = 1;
        return 0;
    }
    double v = ev_term(e);
    while (!e->bad && e->i < e->n && (e->s[e->i] == '+' || e->s[e->i] == '-')) {
        char c = e->s[e->i];
        double x = ev_term(e); /* the sign is read as a unary minus by the term */
        (void)c;
        v += x;
    }
    e->depth--;
    return v;
}

/* 1 and *v when s[0..n) is a number expression */
static int math_value(const char *s, size_t n, double *v) {
    if (n == 0) return 0;
    ev e = {s, n, 0, 0, 0, 0};
    double x = ev_expr(&e);
    if (e.bad || e.i != n || isnan(x)) return 0;
    if (isinf(x) && !e.infty) return 0; /* overflow, not a value */
    *v = x;
    return 1;
}

// ----------------------------------------------------------------------------
// compound answers

typedef struct parts {
    int kind; /* 'M' matrix, 'S' set, 'T' tuple/interval, 'U' union, 'L' bare list, 0 none */
    char open, close;
    int rows;
    int k;
    size_t b[MAX_ELEMS], e[MAX_ELEMS];
} parts;

static int opener(char c) { return c == '(' || c == '[' || c == '{'; }
static int closer(char c) { return c == ')' || c == ']' || c == '}'; }

/* splits s[b..e) at top-level `sep` (a string); 0 when too many pieces */
static int split_top(const char *s, size_t b, size_t e, const char *sep, parts *p) {
    size_t m = strlen(sep), d = 0, start = b;
    for (size_t i = b; i < e; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < e && (s[i + 1] == '{' || s[i + 1] == '}')) {
            if (s[i + 1] == '{') d++;
            else if (d > 0) d--;
            i++;
            continue;
        }
        if (opener(c)) d++;
        else if (closer(c) && d > 0) d--;
        else if (d == 0 && i + m <= e && memcmp(s + i, sep, m) == 0) {
            if (p->k >= MAX_ELEMS) return 0;
            p->b[p->k] = start;
            p->e[p->k] = i;
            p->k++;
            start = i + m;
            i += m - 1;
        }
    }
    if (p->k >= MAX_ELEMS) return 0;
    p->b[p->k] = start;
    p->e[p->k] = e;
    p->k++;
    return 1;
}

/* the bracket at s[b] closes exactly at e-1 (any bracket kinds, for intervals) */
static int wraps(const char *s, size_t b, size_t e) {
    size_t d = 0;
    for (size_t i = b; i < e; i++) {
        if (opener(s[i])) d++;
        else if (closer(s[i])) {
            if (d == 0) return 0;
            if (--d == 0 && i != e - 1) return 0;
        }
    }
    return d == 0;
}

static int math_parts(const char *s, size_t n, parts *p) {
    memset(p, 0, sizeof *p);
    static const char *envs[] = {"pmatrix", "bmatrix", "vmatrix", "matrix", "array"};
    if (n > 8 && memcmp(s, "\\begin{", 7) == 0) {
        for (size_t k = 0; k < sizeof envs / sizeof envs[0]; k++) {
            size_t m = strlen(envs[k]);
            if (7 + m + 1 <= n && memcmp(s + 7, envs[k], m) == 0 && s[7 + m] == '}') {
                size_t b = 8 + m, e = n;
                char tail[32];
                int tl = snprintf(tail, sizeof tail, "\\end{%s}", envs[k]);
                if (e < b + (size_t)tl || memcmp(s + e - tl, tail, (size_t)tl) != 0) return 0;
                e -= (size_t)tl;
                if (k == 4 && b < e && s[b] == '{') { /* array column spec */
                    while (b < e && s[b] != '}') b++;
                    b++;
                }
                /* rows by \\, then columns by & */
                parts rows;
                memset(&rows, 0, sizeof rows);
                if (!split_top(s, b, e, "\\\\", &rows)) return 0;
                if (rows.k > 1 && rows.e[rows.k - 1] == rows.b[rows.k - 1]) rows.k--;
                p->kind = 'M';
                p->rows = rows.k;
                for (int r = 0; r < rows.k; r++)
                    if (!split_top(s, rows.b[r], rows.e[r], "&", p)) return 0;
                return 1;
            }
        }
        return 0;
    }
    if (n >= 4 && memcmp(s, "\\{", 2) == 0 && memcmp(s + n - 2, "\\}", 2) == 0) {
        p->kind = 'S';
        return split_top(s, 2, n - 2, ",", p);
    }
    parts u;
    memset(&u, 0, sizeof u);
    if (split_top(s, 0, n, "\\cup", &u) && u.k > 1) {
        *p = u;
        p->kind = 'U';
        return 1;
    }
    if (n >= 2 && (s[0] == '(' || s[0] == '[') && (s[n - 1] == ')' || s[n - 1] == ']') &&
        wraps(s, 0, n)) {
        parts t;
        memset(&t, 0, sizeof t);
        if (split_top(s, 1, n - 1, ",", &t) && t.k > 1) {
            *p = t;
            p->kind = 'T';
            p->open = s[0];
            p->close = s[n - 1];
            return 1;
        }
        return 0;
    }
    parts l;
    memset(&l, 0, sizeof l);
    if (split_top(s, 0, n, ",", &l) && l.k > 1) {
        *p = l;
        p->kind = 'L';
        return 1;
    }
    return 0;
}

static int math_eq(const char *a, size_t an, const char *b, size_t bn, double tol, int depth);

static int elem_eq(const char *a, size_t ab, size_t ae, const char *b, size_t bb, size_t be,
                   double tol, int depth) {
    /* elements are normalized again: "x=1" inside a list, outer braces */
    sb x = {0}, y = {0};
    int r = 0;
    if (math_norm(a + ab, ae - ab, &x) == 0 && math_norm(b + bb, be - bb, &y) == 0)
        r = math_eq(x.p, x.n, y.p, y.n, tol, depth);
    segrl_free(x.p);
    segrl_free(y.p);
    return r;
}

static int math_eq(const char *a, size_t an, const char *b, size_t bn, double tol, int depth) {
    if (an == bn && memcmp(a, b, an) == 0) return 1;
    if (depth > EQ_DEPTH) return 0;
    double va, vb;
    if (math_value(a, an, &va) && math_value(b, bn, &vb)) {
        if (all_int(a, an) && all_int(b, bn)) { /* integers: exact, any length */
            char ca[MATH_MAX + 8], cb[MATH_MAX + 8];
            int ia, ib;
            double xa, xb;
            if (rw_canon_number(a, an, ca, sizeof ca, &ia, &xa) == 1 &&
                rw_canon_number(b, bn, cb, sizeof cb, &ib, &xb) == 1)
                return strcmp(ca, cb) == 0;
            return 0;
        }
        return rw_close(va, vb, tol);
    }
    parts *pa = segrl_malloc(sizeof *pa), *pb = segrl_malloc(sizeof *pb);
    int r = 0;
    if (pa && pb && math_parts(a, an, pa) && math_parts(b, bn, pb) && pa->kind == pb->kind &&
        pa->k == pb->k && pa->open == pb->open && pa->close == pb->close &&
        pa->rows == pb->rows) {
        if (pa->kind == 'S' || pa->kind == 'L') { /* unordered: greedy one-to-one matching */
            unsigned char used[MAX_ELEMS] = {0};
            r = 1;
            for (int i = 0; i < pa->k && r; i++) {
                int found = 0;
                for (int j = 0; j < pb->k && !found; j++)
                    if (!used[j] && elem_eq(a, pa->b[i], pa->e[i], b, pb->b[j], pb->e[j], tol,
                                            depth + 1))
                        used[j] = 1, found = 1;
                r = found;
            }
        } else {
            r = 1;
            for (int i = 0; i < pa->k && r; i++)
                r = elem_eq(a, pa->b[i], pa->e[i], b, pb->b[i], pb->e[i], tol, depth + 1);
        }
    }
    segrl_free(pa);
    segrl_free(pb);
    return r;
}

// ----------------------------------------------------------------------------
// public pieces

segrl_status segrl_math_normalize(const char *answer, char *buf, size_t cap) {
    static const char *fn = "segrl_math_normalize";
    if (!buf || cap == 0) return sg_fail(SEGRL_ERR_INVALID, "%s: buf: NULL or cap 0", fn);
    const char *s = answer ? answer : "";
    size_t n = strlen(s);
    if (n > MATH_MAX)
        return sg_fail(SEGRL_ERR_INVALID, "%s: answer: %zu bytes, at most %d", fn, n, MATH_MAX);
    sb o = {0};
    if (math_norm(s, n, &o) < 0) {
        segrl_free(o.p);
        return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    }
    size_t k = o.n < cap - 1 ? o.n : cap - 1;
    if (k) memcpy(buf, o.p, k);
    buf[k] = '\0';
    segrl_free(o.p);
    return SEGRL_OK;
}

/* 1 equal, 0 not, -1 oom, -2 too long */
static int math_equiv_raw(const char *g, size_t gn, const char *r, size_t rn, double tol, sb *ng) {
    if (gn > MATH_MAX || rn > MATH_MAX) return -2;
    sb nr = {0};
    int st = 0;
    if (math_norm(g, gn, ng) < 0 || math_norm(r, rn, &nr) < 0) st = -1;
    if (!st) st = math_eq(ng->p, ng->n, nr.p, nr.n, tol, 0);
    segrl_free(nr.p);
    return st;
}

segrl_status segrl_math_equivalent(const char *given, const char *reference, double tolerance,
                                   int *out_equal) {
    static const char *fn = "segrl_math_equivalent";
    if (!out_equal) return sg_fail(SEGRL_ERR_INVALID, "%s: out_equal: NULL", fn);
    if (!(tolerance <= 1e300) || isnan(tolerance))
        return sg_fail(SEGRL_ERR_INVALID, "%s: tolerance: not finite", fn);
    if (tolerance <= 0) tolerance = 1e-6;
    const char *g = given ? given : "", *r = reference ? reference : "";
    sb ng = {0};
    int st = math_equiv_raw(g, strlen(g), r, strlen(r), tolerance, &ng);
    segrl_free(ng.p);
    if (st == -1) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    if (st == -2)
        return sg_fail(SEGRL_ERR_INVALID, "%s: given/reference: longer than %d bytes", fn, MATH_MAX);
    *out_equal = st;
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// the reward

typedef struct mathr {
    segrl_math_opts o;
} mathr;

segrl_math_opts segrl_math_defaults(void) {
    segrl_math_opts o = {1.0f, 0.0f, 1e-6};
    return o;
}

/* the final answer's span in a response; 1 found, 0 none, -1 oom */
static int math_extract(const char *s, size_t n, size_t *ob, size_t *oe) {
    int r = rw_last_boxed(s, n, ob, oe);
    if (r != 0) return r;
    size_t p = rw_last_ci(s, n, "final answer is");
    if (p != (size_t)-1) {
        while (p < n && (s[p] == ' ' || s[p] == ':')) p++;
        size_t b = p, e;
        if (p < n && s[p] == '$') {
            while (b < n && s[b] == '$') b++;
            e = b;
            while (e < n && s[e] != '$') e++;
        } else {
            e = b;
            while (e < n && s[e] != '\n' && !(s[e] == '.' && (e + 1 >= n || is_space(s[e + 1]))))
                e++;
        }
        while (e > b && is_space(s[e - 1])) e--;
        if (e > b) {
            *ob = b;
            *oe = e;
            return 1;
        }
    }
    size_t b, e;
    if (!rw_last_number(s, n, &b, &e)) return 0;
    if (b >= 2 && s[b - 1] == '/' && is_digit(s[b - 2])) { /* keep a/b */
        size_t b2, e2;
        if (rw_last_number(s, b - 1, &b2, &e2) && e2 == b - 1) b = b2;
    }
    *ob = b;
    *oe = e;
    return 1;
}

static segrl_status math_score(void *user, const segrl_reward_sample *smp, int64_t n,
                               const segrl_reward_run *run, float *out,
                               segrl_reward_detail *det) {
    (void)run;
    const mathr *m = user;
    for (int64_t i = 0; i < n; i++) {
        const char *resp = smp[i].response ? smp[i].response : "";
        const char *ref = smp[i].answer ? smp[i].answer : "";
        size_t rn = strlen(resp), fn = strlen(ref);
        segrl_reward_detail d;
        memset(&d, 0, sizeof d);
        float sc = m->o.incorrect;
        size_t b = 0, e = 0;
        size_t fb = 0, fe = fn;
        while (fb < fe && is_space(ref[fb])) fb++;
        fe = rtrim(ref, fe);
        if (fe == fb) {
            d.reason = SEGRL_REWARD_BAD_REFERENCE;
        } else if (rn == 0) {
            d.reason = SEGRL_REWARD_EMPTY_RESPONSE;
        } else {
            int r = math_extract(resp, rn, &b, &e);
            if (r < 0) return sg_fail(SEGRL_ERR_ALLOC, "math: out of memory");
            if (r == 0 || e == b) {
                d.reason = SEGRL_REWARD_NO_ANSWER;
            } else if (rw_expired()) {
                d.reason = SEGRL_REWARD_TIMEOUT;
            } else {
                rw_text(d.extracted, resp + b, e - b);
                /* a reference holding a whole solution: its boxed answer */
                size_t rb, re;
                int rr = rw_last_boxed(ref, fn, &rb, &re);
                if (rr < 0) return sg_fail(SEGRL_ERR_ALLOC, "math: out of memory");
                if (!rr) rb = fb, re = fe;
                sb ng = {0};
                int eq = math_equiv_raw(resp + b, e - b, ref + rb, re - rb, m->o.tolerance, &ng);
                if (eq == -1) {
                    segrl_free(ng.p);
                    return sg_fail(SEGRL_ERR_ALLOC, "math: out of memory");
                }
                if (eq == -2) {
                    d.reason = SEGRL_REWARD_TOO_LONG_INPUT;
                } else {
                    rw_text(d.normalized, ng.p, ng.n);
                    d.reason = eq ? SEGRL_REWARD_OK : SEGRL_REWARD_WRONG;
                    sc = eq ? m->o.correct : m->o.incorrect;
                }
                segrl_free(ng.p);
            }
        }
        out[i] = sc;
        if (det) det[i] = d;
    }
    return SEGRL_OK;
}

segrl_status segrl_reward_math(const segrl_math_opts *opts, segrl_reward **out) {
    static const char *fn = "segrl_reward_math";
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    segrl_math_opts o = opts ? *opts : segrl_math_defaults();
    SG_TRY(sg_check_finite_param(fn, "opts->correct", o.correct));
    SG_TRY(sg_check_finite_param(fn, "opts->incorrect", o.incorrect));
    if (!(o.tolerance >= 0) || o.tolerance > 1e300)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->tolerance: must be finite and >= 0", fn);
    if (o.tolerance == 0) o.tolerance = 1e-6;
    mathr m = {o};
    return rw_new_copy(fn, "math", SEGRL_REWARD_PER_SAMPLE, math_score, &m, sizeof m, out);
}
