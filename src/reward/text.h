/* text.h — private to src/reward/: the text scanning that the verifiers share. Every function is
 * linear in its input and allocates at most O(n) (the brace stack). */
#ifndef SEGRL_REWARD_TEXT_H
#define SEGRL_REWARD_TEXT_H

#include <stddef.h>

/* Content span [*b, *e) of the last \boxed{...} / \fbox{...} whose braces balance (the one that
 * starts last), or of the last "\boxed x" (space form). 1 when found, 0 when not, -1 when out of
 * memory. */
int rw_last_boxed(const char *s, size_t n, size_t *b, size_t *e);

/* Position just after the last case-insensitive occurrence of `pat` (ASCII), or (size_t)-1. */
size_t rw_last_ci(const char *s, size_t n, const char *pat);
/* Number of occurrences of `pat` (exact). */
size_t rw_count(const char *s, size_t n, const char *pat);

/* The last / first number in s[0..n): optional '-', digits with thousands commas, optional
 * '.digits'. Span [*b, *e). 1 when found. */
int rw_last_number(const char *s, size_t n, size_t *b, size_t *e);
int rw_first_number(const char *s, size_t n, size_t *b, size_t *e);

/* Canonical decimal form of a number span (commas dropped, '+' dropped, leading zeros and
 * trailing fractional zeros removed, "-0" -> "0") into out (cap bytes). Sets *is_int and *val.
 * 1 on success, 0 when the span is not a number, -1 when it does not fit in cap. */
int rw_canon_number(const char *s, size_t n, char *out, size_t cap, int *is_int, double *val);

/* |a - b| <= tol * max(1, |b|) (equal infinities are equal; NaN never). */
int rw_close(double a, double b, double tol);

#endif /* SEGRL_REWARD_TEXT_H */
