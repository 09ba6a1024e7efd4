/* util.c — RNG (splitmix64 + xoshiro256**) and timers for the example trainers; see ex_util.h. */
#define _POSIX_C_SOURCE 200809L
#include "ex_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

// ----------------------------------------------------------------------------
// RNG

uint64_t ex_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void ex_rng_seed(ex_rng *r, uint64_t seed) {
    uint64_t sm = seed;
    for (int i = 0; i < 4; i++) r->s[i] = ex_splitmix64(&sm);
    /* xoshiro's state must not be all zero; splitmix64 never gives four zeros, but be explicit */
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
}

void ex_rng_seed_stream(ex_rng *r, uint64_t seed, uint64_t stream) {
    /* mix the stream id into the seed through one splitmix64 round so that nearby (seed, stream)
     * pairs give unrelated states */
    uint64_t h = stream * 0xd1b54a32d192ed03ull + 0x8bb84b93962eacc9ull;
    uint64_t mixed = seed ^ ex_splitmix64(&h);
    ex_rng_seed(r, mixed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ex_rng_u64(ex_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ex_rng_uniform(ex_rng *r) { return (double)(ex_rng_u64(r) >> 11) * 0x1.0p-53; }

int64_t ex_rng_int(ex_rng *r, int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    uint64_t span = (uint64_t)hi - (uint64_t)lo + 1u; /* 0 means the full 2^64 range */
    if (span == 0) return (int64_t)ex_rng_u64(r);
    /* reject the top partial block so every value is equally likely */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % span);
    uint64_t x;
    do x = ex_rng_u64(r);
    while (x >= limit);
    return (int64_t)((uint64_t)lo + x % span);
}

double ex_rng_normal(ex_rng *r) {
    double u = ex_rng_uniform(r), v = ex_rng_uniform(r);
    return sqrt(-2.0 * log1p(-u)) * cos(6.283185307179586 * v); /* 1 - u is in (0, 1] */
}

void ex_rng_shuffle_i64(ex_rng *r, int64_t *a, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = ex_rng_int(r, 0, i);
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

char *ex_rng_save(const ex_rng *r, char *buf) {
    for (int i = 0; i < 4; i++) snprintf(buf + 16 * i, 17, "%016llx", (unsigned long long)r->s[i]);
    return buf;
}

int ex_rng_load(ex_rng *r, const char *s) {
    if (!s || strlen(s) != 64) return -1;
    ex_rng t;
    for (int i = 0; i < 4; i++) {
        uint64_t v = 0;
        for (int j = 0; j < 16; j++) {
            char c = s[16 * i + j];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) return -1;
            v = v << 4 | (uint64_t)d;
        }
        t.s[i] = v;
    }
    if (!(t.s[0] | t.s[1] | t.s[2] | t.s[3])) return -1;
    *r = t;
    return 0;
}

// ----------------------------------------------------------------------------
// statistics

void ex_mean_std(const double *x, int64_t n, double *out_mean, double *out_std) {
    double m = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) { /* Welford's update: stable for any offset */
        double d = x[i] - m;
        m += d / (double)(i + 1);
        ss += d * (x[i] - m);
    }
    if (out_mean) *out_mean = n > 0 ? m : 0;
    if (out_std) *out_std = n > 1 ? sqrt(ss / (double)(n - 1)) : 0;
}

void ex_wilson_interval(int64_t k, int64_t n, double z, double *out_lo, double *out_hi) {
    if (n <= 0) {
        *out_lo = 0;
        *out_hi = 1;
        return;
    }
    double p = (double)k / (double)n, z2 = z * z, nn = (double)n;
    double den = 1 + z2 / nn;
    double c = (p + z2 / (2 * nn)) / den;
    double h = z * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / den;
    *out_lo = c - h < 0 ? 0 : c - h;
    *out_hi = c + h > 1 ? 1 : c + h;
}

// ----------------------------------------------------------------------------
// data order

static void sampler_shuffle(ex_sampler *s) {
    ex_rng r;
    ex_rng_seed_stream(&r, s->seed, (uint64_t)s->epoch);
    for (int64_t i = 0; i < s->n; i++) s->perm[i] = i;
    ex_rng_shuffle_i64(&r, s->perm, s->n);
}

int ex_sampler_init(ex_sampler *s, int64_t n, uint64_t seed) {
    memset(s, 0, sizeof *s);
    if (n < 1) return -1;
    s->perm = malloc((size_t)n * sizeof *s->perm);
    if (!s->perm) return -1;
    s->n = n;
    s->seed = seed;
    sampler_shuffle(s);
    return 0;
}

void ex_sampler_free(ex_sampler *s) {
    free(s->perm);
    memset(s, 0, sizeof *s);
}

void ex_sampler_next(ex_sampler *s, int64_t k, int64_t *out) {
    for (int64_t i = 0; i < k; i++) {
        if (s->pos == s->n) {
            s->epoch++;
            s->pos = 0;
            sampler_shuffle(s);
        }
        out[i] = s->perm[s->pos++];
    }
}

int64_t ex_sampler_consumed(const ex_sampler *s) { return s->epoch * s->n + s->pos; }

void ex_sampler_seek(ex_sampler *s, int64_t consumed) {
    if (consumed < 0) consumed = 0;
    int64_t e = consumed / s->n;
    if (e != s->epoch) {
        s->epoch = e;
        sampler_shuffle(s);
    }
    s->pos = consumed % s->n;
}

// ----------------------------------------------------------------------------
// time

double ex_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *ex_utc_timestamp(char *buf, size_t cap) {
    time_t t = time(NULL);
    struct tm tm;
    if (cap == 0) return buf;
    if (!gmtime_r(&t, &tm) || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) buf[0] = 0;
    return buf;
}

char *ex_format_duration(double s, char *buf, size_t cap) {
    if (cap == 0) return buf;
    if (!isfinite(s) || s < 0) {
        snprintf(buf, cap, "?");
    } else if (s < 60) {
        snprintf(buf, cap, "%.1fs", s);
    } else if (s < 3600) {
        long t = (long)(s + 0.5);
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    } else {
        long t = (long)(s / 60 + 0.5);
        snprintf(buf, cap, "%ldh%02ldm", t / 60, t % 60);
    }
    return buf;
}

void ex_timer_reset(ex_timer *t) {
    t->total = 0;
    t->t0 = 0;
    t->running = 0;
}

void ex_timer_start(ex_timer *t) {
    t->t0 = ex_now();
    t->running = 1;
}

double ex_timer_stop(ex_timer *t) {
    if (!t->running) return 0;
    double d = ex_now() - t->t0;
    t->total += d;
    t->running = 0;
    return d;
}

double ex_timer_total(const ex_timer *t) {
    return t->total + (t->running ? ex_now() - t->t0 : 0);
}

// ----------------------------------------------------------------------------
// lines

/* Reads one line (without '\n', '\r\n') of any length into *buf. 1: a line, 0: end of file,
 * -1: out of memory. */
int ex_read_line(FILE *f, char **buf, size_t *cap, size_t *len) {
    size_t n = 0;
    int c, any = 0;
    while ((c = getc(f)) != EOF) {
        any = 1;
        if (c == '\n') break;
        if (n + 2 > *cap) {
            size_t nc = *cap ? *cap * 2 : 4096;
            char *nb = realloc(*buf, nc);
            if (!nb) return -1;
            *buf = nb;
            *cap = nc;
        }
        (*buf)[n++] = (char)c;
    }
    if (!any) return 0;
    if (!*buf) { /* an empty last line */
        *buf = malloc(1);
        if (!*buf) return -1;
        *cap = 1;
    }
    if (n && (*buf)[n - 1] == '\r') n--;
    (*buf)[n] = 0;
    *len = n;
    return 1;
}


int ex_make_dirs(const char *path) {
    size_t n = strlen(path);
    char *buf = malloc(n + 1);
    if (!buf) return -1;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            free(buf);
            return -1;
        }
        *p = '/';
    }
    int rc = mkdir(buf, 0755) == 0 || errno == EEXIST ? 0 : -1;
    free(buf);
    return rc;
}

char *ex_render_prompt(const char *tmpl, const char *question) {
    static const char key[] = "{question}";
    size_t kl = sizeof key - 1, ql = strlen(question), n = 0;
    for (const char *p = tmpl; (p = strstr(p, key)) != NULL; p += kl) n++;
    size_t len = strlen(tmpl) + n * ql - n * kl;
    char *out = malloc(len + 1);
    if (!out) return NULL;
    char *o = out;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, key, kl) == 0) {
            memcpy(o, question, ql);
            o += ql;
            p += kl;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}
