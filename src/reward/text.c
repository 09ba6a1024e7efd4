/* text.c — text scanning shared by the GSM8K and MATH verifiers: the last balanced \boxed{},
 * case-insensitive phrase search, number spans and their canonical form. All linear. */
#include "text.h"

#include "../internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* does the '{' at p belong to a \boxed / \fbox (up to 8 spaces between)? */
static int box_opener(const char *s, size_t p) {
    size_t q = p, k = 0;
    while (q > 0 && s[q - 1] == ' ' && k < 8) q--, k++;
    if (q >= 6 && memcmp(s + q - 6, "\\boxed", 6) == 0) return 1;
    if (q >= 5 && memcmp(s + q - 5, "\\fbox", 5) == 0) return 1;
    return 0;
}

int rw_last_boxed(const char *s, size_t n, size_t *ob, size_t *oe) {
    size_t opens = 0;
    for (size_t i = 0; i < n; i++) opens += s[i] == '{';
    size_t *stack = opens ? segrl_malloc(opens * sizeof *stack) : NULL;
    if (opens && !stack) return -1;
    size_t top = 0, best_b = 0, best_e = 0;
    int found = 0;
    size_t best_start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '{') {
            stack[top++] = i;
        } else if (s[i] == '}' && top > 0) {
            size_t p = stack[--top];
            if (box_opener(s, p) && (!found || p > best_start)) {
                found = 1;
                best_start = p;
                best_b = p + 1;
                best_e = i;
            }
        }
    }
    segrl_free(stack);
    /* "\boxed 5" (space form, as some solutions write it) after the last braced one */
    for (size_t i = n; i >= 7; i--) {
        size_t p = i - 7;
        if (s[p] != '\\' || memcmp(s + p, "\\boxed ", 7) != 0) continue;
        if (found && p < best_start) break;
        size_t b = p + 7;
        while (b < n && s[b] == ' ') b++;
        if (b >= n || s[b] == '{') continue;
        size_t e = b;
        while (e < n && s[e] != '$' && s[e] != ' ' && s[e] != '\n') e++;
        if (e > b) {
            *ob = b;
            *oe = e;
            return 1;
        }
    }
    if (found) {
        *ob = best_b;
        *oe = best_e;
    }
    return found;
}

size_t rw_last_ci(const char *s, size_t n, const char *pat) {
    size_t m = strlen(pat);
    if (m == 0 || m > n) return (size_t)-1;
    for (size_t i = n - m + 1; i-- > 0;) {
        size_t k = 0;
        while (k < m && tolower((unsigned char)s[i + k]) == tolower((unsigned char)pat[k])) k++;
        if (k == m) return i + m;
    }
    return (size_t)-1;
}

size_t rw_count(const char *s, size_t n, const char *pat) {
    size_t m = strlen(pat), c = 0;
    if (m == 0) return 0;
    for (size_t i = 0; i + m <= n; i++)
        if (s[i] == pat[0] && memcmp(s + i, pat, m) == 0) c++, i += m - 1;
    return c;
}

/* extends a span holding digit d at [b, e) to the whole number around it */
static void number_around(const char *s, size_t n, size_t *pb, size_t *pe) {
    size_t b = *pb, e = *pe;
    for (;;) { /* forward: digits, ',' or '.' followed by a digit */
        if (e < n && is_digit(s[e])) e++;
        else if (e + 1 < n && (s[e] == ',' || s[e] == '.') && is_digit(s[e + 1])) e++;
        else break;
    }
    for (;;) { /* backward */
        if (b > 0 && is_digit(s[b - 1])) b--;
        else if (b > 1 && (s[b - 1] == ',' || s[b - 1] == '.') && is_digit(s[b - 2])) b--;
        else break;
    }
    if (b > 0 && s[b - 1] == '.') b--; /* ".5" */
    /* a minus sign, not the hyphen of a range or a difference written without spaces (3-5) */
    if (b > 0 && s[b - 1] == '-' && !(b >= 2 && (is_digit(s[b - 2]) || isalpha((unsigned char)s[b - 2]))))
        b--;
    *pb = b;
    *pe = e;
}

int rw_last_number(const char *s, size_t n, size_t *b, size_t *e) {
    for (size_t i = n; i-- > 0;)
        if (is_digit(s[i])) {
            *b = i;
            *e = i + 1;
            number_around(s, n, b, e);
            return 1;
        }
    return 0;
}

int rw_first_number(const char *s, size_t n, size_t *b, size_t *e) {
    for (size_t i = 0; i < n; i++)
        if (is_digit(s[i])) {
            *b = i;
            *e = i + 1;
            number_around(s, n, b, e);
            return 1;
        }
    return 0;
}

int rw_canon_number(const char *s, size_t n, char *out, size_t cap, int *is_int, double *val) {
    size_t i = 0, o = 0;
    int neg = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
    /* integer digits (commas between digits dropped) */
    size_t ib = i;
    char *tmp = NULL;
    size_t need = n + 3;
    tmp = segrl_malloc(need);
    if (!tmp) return -1;
    size_t t = 0;
    if (neg) tmp[t++] = '-';
    size_t int_start = t;
    for (; i < n; i++) {
        if (is_digit(s[i])) tmp[t++] = s[i];
        else if (s[i] == ',' && i > ib && i + 1 < n && is_digit(s[i + 1])) continue;
        else break;
    }
    size_t int_digits = t - int_start;
    size_t frac_start = 0, frac_digits = 0;
    if (i < n && s[i] == '.') {
        i++;
        frac_start = t + 1;
        tmp[t++] = '.';
        while (i < n && is_digit(s[i])) tmp[t++] = s[i++];
        frac_digits = t - frac_start;
    }
    if (i != n || int_digits + frac_digits == 0) {
        segrl_free(tmp);
        return 0;
    }
    /* exponent-free canonical form */
    size_t a = int_start;
    while (a < int_start + int_digits && tmp[a] == '0') a++;
    size_t fe = frac_digits ? frac_start + frac_digits : 0;
    if (frac_digits) {
        while (fe > frac_start && tmp[fe - 1] == '0') fe--;
    }
    int zero = a == int_start + int_digits && (!frac_digits || fe == frac_start);
    size_t len = (zero ? 1 : 0) + (neg && !zero) + (int_start + int_digits - a) +
                 (frac_digits && fe > frac_start ? 1 + fe - frac_start : 0) +
                 (a == int_start + int_digits && !zero ? 1 : 0);
    if (len + 1 > cap) {
        segrl_free(tmp);
        return -1;
    }
    if (zero) {
        out[o++] = '0';
    } else {
        if (neg) out[o++] = '-';
        if (a == int_start + int_digits) out[o++] = '0';
        memcpy(out + o, tmp + a, int_start + int_digits - a);
        o += int_start + int_digits - a;
        if (frac_digits && fe > frac_start) {
            out[o++] = '.';
            memcpy(out + o, tmp + frac_start, fe - frac_start);
            o += fe - frac_start;
        }
    }
    out[o] = '\0';
    *is_int = !(frac_digits && fe > frac_start);
    *val = strtod(out, NULL);
    segrl_free(tmp);
    return 1;
}

int rw_close(double a, double b, double tol) {
    if (isnan(a) || isnan(b)) return 0;
    if (a == b) return 1;
    if (isinf(a) || isinf(b)) return 0;
    double m = fabs(b) > 1.0 ? fabs(b) : 1.0;
    return fabs(a - b) <= tol * m;
}
