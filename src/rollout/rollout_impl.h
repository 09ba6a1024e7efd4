/* rollout_impl.h — private to src/rollout: owned arrays through the allocator hooks, the packed
 * batch every driver (and the replay buffer) hands out, and small helpers. */
#ifndef SEGRL_ROLLOUT_IMPL_H
#define SEGRL_ROLLOUT_IMPL_H

#include "../check.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

// ----------------------------------------------------------------------------
// memory

/* n elements of `elem` bytes, zeroed, through segrl_malloc; at least one element so that a
 * view over it is never NULL. NULL on overflow or allocation failure. */
void *ro_zalloc(int64_t n, size_t elem);

/* A growable array (count n, capacity cap elements). */
typedef struct ro_vec {
    void *p;
    int64_t n, cap;
} ro_vec;

/* Ensures cap >= need (existing content kept); SEGRL_ERR_ALLOC naming `fn` on failure (the
 * vector is then unchanged). */
segrl_status ro_reserve(ro_vec *v, int64_t need, size_t elem, const char *fn);
void ro_vec_free(ro_vec *v);

// ----------------------------------------------------------------------------
// the packed training batch (owned arrays behind segrl_rollout_batch)

typedef struct ro_batch {
    int64_t B, N, G, S;
    int64_t *offsets;  /* B + 1 */
    int32_t *tokens;   /* N */
    float *logprobs;   /* N */
    uint8_t *mask;     /* N */
    int64_t *ctx;      /* B */
    int64_t *prompt;   /* B */
    int64_t *question; /* B */
    float *rewards;    /* B */
    uint8_t *finished; /* B */
    float *adv;        /* N or NULL */
    uint8_t *pmask;    /* N or NULL */
    int64_t *seg_off, *seg_start, *seg_end, *seg_prefix, *seg_mc; /* or NULL */
    float *seg_val, *seg_adv;
} ro_batch;

/* Allocates the per-sequence and per-token arrays (not adv, pmask, segments) for B sequences
 * of N tokens; SEGRL_ERR_ALLOC (b left empty) on failure. */
segrl_status ro_batch_alloc(ro_batch *b, int64_t B, int64_t N, const char *fn);
void ro_batch_free(ro_batch *b);
void ro_batch_view(const ro_batch *b, segrl_rollout_batch *out);

// ----------------------------------------------------------------------------
// helpers

/* splitmix64 finalizer: request seeds. */
static inline uint64_t ro_mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Wilson score interval width for a mean p (clipped to [0, 1]) of n >= 1 Bernoulli draws. */
double ro_wilson_width(double p, double n, double z);

/* segrl_mc_allocate with a segrl_mc_rule (arguments already valid). */
segrl_status ro_mc_allocate(const float *mean, const int64_t *count, int64_t n, int64_t batch,
                            float z, int32_t rule, int64_t *out_add, const char *fn);

#endif /* SEGRL_ROLLOUT_IMPL_H */
