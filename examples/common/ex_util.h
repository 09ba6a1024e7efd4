/* ex_util.h — small pieces every example trainer shares: a seedable RNG and timers.
 *
 * RNG: xoshiro256** (Blackman & Vigna 2018, "Scrambled linear pseudorandom number generators",
 * arXiv 1805.01407), its state filled from one 64-bit seed by splitmix64, as the authors advise.
 * The state is a plain struct: a trainer saves it in its checkpoint and a resumed run continues
 * the exact same stream.
 *
 * Timers: a monotonic clock in seconds and an accumulating stopwatch for per-phase times
 * (generation / scoring / advantages / update). */
#ifndef SEGRL_EX_UTIL_H
#define SEGRL_EX_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// RNG

typedef struct ex_rng {
    uint64_t s[4];
} ex_rng;

/* splitmix64 step: advances *state and returns the next output (also a good 64-bit hash mixer). */
uint64_t ex_splitmix64(uint64_t *state);
/* Seeds all 256 bits of state from `seed` through splitmix64 (any seed, 0 included, is fine). */
void ex_rng_seed(ex_rng *r, uint64_t seed);
/* An independent stream derived from (seed, stream): e.g. one per worker or per purpose
 * (data order, sampling, noise) so that changing one consumer does not shift the others. */
void ex_rng_seed_stream(ex_rng *r, uint64_t seed, uint64_t stream);
/* Next 64 random bits. */
uint64_t ex_rng_u64(ex_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double ex_rng_uniform(ex_rng *r);
/* Uniform integer in [lo, hi] (inclusive), unbiased (rejection); lo when hi <= lo. */
int64_t ex_rng_int(ex_rng *r, int64_t lo, int64_t hi);
/* Standard normal (Box-Muller; uses two uniforms per call). */
double ex_rng_normal(ex_rng *r);
/* Fisher-Yates shuffle of n int64 values in place. */
void ex_rng_shuffle_i64(ex_rng *r, int64_t *a, int64_t n);
/* The state as 64 hex digits (buf: at least 65 bytes), for checkpoints (JSON numbers cannot hold
 * 64-bit integers exactly), and back: ex_rng_load returns 0, or -1 (r untouched) when s is not
 * 64 hex digits or is all zero. */
char *ex_rng_save(const ex_rng *r, char *buf);
int ex_rng_load(ex_rng *r, const char *s);

// ----------------------------------------------------------------------------
// statistics for reports

/* Mean and sample standard deviation (n - 1 in the denominator; 0 when n < 2) of x[0..n). */
void ex_mean_std(const double *x, int64_t n, double *out_mean, double *out_std);
/* Wilson score interval for k successes in n trials at normal quantile z (1.96: 95%):
 *   c = (p + z^2/2n) / (1 + z^2/n),  h = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n),  [c-h, c+h]
 * (Wilson 1927). n == 0 gives [0, 1]. */
void ex_wilson_interval(int64_t k, int64_t n, double z, double *out_lo, double *out_hi);

// ----------------------------------------------------------------------------
// data order

/* An endless stream of dataset indices: each epoch is a fresh permutation of 0..n-1 drawn from
 * the stream (seed, epoch), so the position alone (the number of indices handed out) restores the
 * exact order after a resume: save ex_sampler_consumed(), later ex_sampler_seek() to it. */
typedef struct ex_sampler {
    int64_t n;
    uint64_t seed;
    int64_t epoch;  /* current epoch (0-based) */
    int64_t pos;    /* next position in perm */
    int64_t *perm;  /* n; the current epoch's order */
} ex_sampler;

/* Returns 0, or -1 when n < 1 or out of memory. */
int ex_sampler_init(ex_sampler *s, int64_t n, uint64_t seed);
void ex_sampler_free(ex_sampler *s);
/* Writes the next k indices to out (crossing into new epochs as needed). */
void ex_sampler_next(ex_sampler *s, int64_t k, int64_t *out);
/* Indices handed out since the start (epoch * n + pos). */
int64_t ex_sampler_consumed(const ex_sampler *s);
/* Moves to the state after `consumed` indices (>= 0) from the start. */
void ex_sampler_seek(ex_sampler *s, int64_t consumed);

// ----------------------------------------------------------------------------
// time

/* Monotonic time in seconds (CLOCK_MONOTONIC); differences only. */
double ex_now(void);
/* Wall-clock time now as "YYYY-MM-DDTHH:MM:SSZ" (UTC) in buf (cap >= 21). Returns buf. */
char *ex_utc_timestamp(char *buf, size_t cap);
/* Formats a duration: "42.0s", "3m07s", "1h02m". Negative or non-finite: "?". Returns buf. */
char *ex_format_duration(double seconds, char *buf, size_t cap);

/* An accumulating stopwatch: total seconds over any number of start/stop intervals. */
typedef struct ex_timer {
    double total; /* seconds accumulated by completed intervals */
    double t0;    /* start of the running interval */
    int running;
} ex_timer;

void ex_timer_reset(ex_timer *t);
void ex_timer_start(ex_timer *t);
/* Ends the running interval (no-op when not running) and returns its length in seconds. */
double ex_timer_stop(ex_timer *t);
/* Seconds accumulated, including the running interval so far. */
double ex_timer_total(const ex_timer *t);

// ----------------------------------------------------------------------------
// text files

/* Reads one line of any length from f into *buf (grown with realloc; *cap its size), without the
 * '\n' or "\r\n"; *len receives its length (it may hold NUL bytes). Returns 1 for a line, 0 at
 * end of file, -1 when out of memory. Free *buf with free() when done. */
int ex_read_line(FILE *f, char **buf, size_t *cap, size_t *len);

/* Creates a directory and its missing parents (mkdir -p, mode 0755). Returns 0 on success, -1
 * with errno set otherwise. */
int ex_make_dirs(const char *path);

/* The prompt for a question: tmpl with every "{question}" replaced by question. New string
 * (free()), NULL when out of memory. */
char *ex_render_prompt(const char *tmpl, const char *question);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_EX_UTIL_H */
