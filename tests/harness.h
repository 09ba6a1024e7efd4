/* harness.h — the tests' few helpers: pass/fail counting, a seeded RNG, array comparison.
 * Every test program ends with h_finish(), whose line "N passed, N failed" ctest logs show. */
#ifndef SEGRL_TEST_HARNESS_H
#define SEGRL_TEST_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int h_pass, h_fail;

#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (cond) {                                                                               \
            h_pass++;                                                                             \
        } else {                                                                                  \
            h_fail++;                                                                             \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                           \
            printf(__VA_ARGS__);                                                                  \
            printf("\n");                                                                         \
        }                                                                                         \
    } while (0)

static inline int h_finish(void) {
    printf("%d passed, %d failed\n", h_pass, h_fail);
    return h_fail ? 1 : 0;
}

/* splitmix64: seeded, portable */
static uint64_t h_state = 0x5eed;
static inline void h_seed(uint64_t s) { h_state = s; }
static inline uint64_t h_next(void) {
    uint64_t z = (h_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline double h_unif(void) { return (double)(h_next() >> 11) * (1.0 / 9007199254740992.0); }
static inline float h_normal(void) {
    double u = h_unif() + 1e-300, v = h_unif();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}
static inline int64_t h_int(int64_t lo, int64_t hi) { /* [lo, hi] */
    return lo + (int64_t)(h_next() % (uint64_t)(hi - lo + 1));
}

/* |got - want| <= atol + rtol * |want| everywhere; prints the first mismatches */
static inline int h_close_f(const char *what, const float *got, const double *want, int64_t n,
                            double atol, double rtol) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * fabs(want[i]))) {
            if (bad < 5) printf("  %s[%lld]: got %.9g want %.9g\n", what, (long long)i, got[i], want[i]);
            bad++;
        }
    }
    CHECK(bad == 0, "%s: %lld of %lld values differ", what, (long long)bad, (long long)n);
    return bad == 0;
}

static inline int h_same_f(const char *what, const float *a, const float *b, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
            if (bad < 5) printf("  %s[%lld]: %.9g vs %.9g\n", what, (long long)i, a[i], b[i]);
            bad++;
        }
    CHECK(bad == 0, "%s: %lld of %lld values not identical", what, (long long)bad, (long long)n);
    return bad == 0;
}

static inline void *h_alloc(size_t n) {
    void *p = calloc(n ? n : 1, 1);
    if (!p) {
        printf("out of memory\n");
        exit(2);
    }
    return p;
}

#endif /* SEGRL_TEST_HARNESS_H */
