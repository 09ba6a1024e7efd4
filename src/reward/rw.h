/* rw.h — private to src/reward/: the reward object, detail helpers, the deadline, and the
 * built-ins' constructors that segrl_reward_create (create.c) dispatches to. */
#ifndef SEGRL_REWARD_RW_H
#define SEGRL_REWARD_RW_H

#include "../check.h"

#include <stddef.h>
#include <stdint.h>

/* kinds with state someone may ask for (segrl_reward_normalize_stats) */
enum { RW_KIND_OTHER = 0, RW_KIND_NORMALIZE = 1 };

struct segrl_reward {
    segrl_reward_impl impl;
    char *name;   /* owned copy of impl.name */
    void *dl;     /* plugins: the dlopen handle, closed after release */
    int kind;
};

/* Wraps an impl into a new reward (name copied). On failure impl->release is NOT called. */
segrl_status rw_new(const segrl_reward_impl *impl, int kind, segrl_reward **out);

/* rw_new for a built-in that hands its state over: on failure impl->release(impl->user) is
 * called (when set), so the caller owns nothing afterwards either way. */
segrl_status rw_new_owned(const segrl_reward_impl *impl, int kind, segrl_reward **out);

/* A built-in whose state is a plain copy of state[0..size) (freed with segrl_free on release):
 * copies it and wraps it with `score` and `flags` (no segment scores). `fn` names the
 * constructor in the "<fn>: out of memory" message. */
segrl_status rw_new_copy(const char *fn, const char *name, uint32_t flags,
                         segrl_reward_score_fn score, const void *state, size_t size,
                         segrl_reward **out);

/* Copies `len` bytes of `s` into a detail text field, truncating with "..." */
void rw_text(char dst[SEGRL_REWARD_TEXT_MAX], const char *s, size_t len);

/* Scores with `r` from inside another reward's score(): per-sample rewards are called directly
 * (the caller already is a pool worker with its deadline), others go through segrl_reward_score
 * with `run`. details may be NULL. */
segrl_status rw_score_inner(segrl_reward *r, const segrl_reward_sample *s, int64_t n,
                            const segrl_reward_run *run, float *scores,
                            segrl_reward_detail *details);

/* the current sample's deadline (monotonic seconds; 0: none) */
double rw_now(void);
int rw_expired(void);

/* A number from the sample's metadata JSON: `key` as a number (count 1) or an array of numbers
 * (up to cap). Returns the count found (0: missing), -1 on malformed metadata. */
int64_t rw_meta_numbers(const char *metadata_json, const char *key, double *vals, int64_t cap);

/* numbers in text (text.c) */
/* Parses a plain decimal number (sign, digits, '.', exponent) at s[0..len) exactly: 1 on success. */
int rw_parse_double(const char *s, size_t len, double *out);

#endif /* SEGRL_REWARD_RW_H */
