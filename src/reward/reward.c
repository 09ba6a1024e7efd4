/* reward.c — the reward object, reason names, and the batch scorer: a pthread pool that hands
 * out small chunks of samples, gives each sample its own deadline (a thread-local the built-ins
 * poll), and turns timeouts and per-sample errors into the failure score with a reason. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep, sysconf */
#include "rw.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dlfcn.h>

// ----------------------------------------------------------------------------
// reasons, details, clock

const char *segrl_reward_reason_name(int32_t reason) {
    switch (reason) {
    case SEGRL_REWARD_OK: return "ok";
    case SEGRL_REWARD_WRONG: return "wrong";
    case SEGRL_REWARD_NO_ANSWER: return "no_answer";
    case SEGRL_REWARD_MULTIPLE_ANSWERS: return "multiple_answers";
    case SEGRL_REWARD_EMPTY_RESPONSE: return "empty_response";
    case SEGRL_REWARD_BAD_REFERENCE: return "bad_reference";
    case SEGRL_REWARD_FORMAT_MISMATCH: return "format_mismatch";
    case SEGRL_REWARD_OVERLONG: return "overlong";
    case SEGRL_REWARD_REPETITION: return "repetition";
    case SEGRL_REWARD_TIMEOUT: return "timeout";
    case SEGRL_REWARD_ERROR: return "error";
    case SEGRL_REWARD_TOO_LONG_INPUT: return "too_long_input";
    }
    return "unknown";
}

/* length of the valid UTF-8 sequence at s[0..n), 0 when invalid (overlong forms, surrogates and
 * code points past U+10FFFF are invalid) */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t k;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) k = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (n < k || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < k; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return k;
}

/* Detail texts are always valid UTF-8 (logs and JSON lines stay readable): invalid bytes become
 * '?', and a text too long is cut at a character boundary and ends in "...". */
void rw_text(char dst[SEGRL_REWARD_TEXT_MAX], const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    if (!s) len = 0;
    /* sanitizing never lengthens, so a short input always fits whole */
    size_t cap = len < SEGRL_REWARD_TEXT_MAX ? SEGRL_REWARD_TEXT_MAX - 1 : SEGRL_REWARD_TEXT_MAX - 4;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t k = utf8_seq(u + i, len - i);
        size_t w = k ? k : 1;
        if (o + w > cap) break;
        if (k) memcpy(dst + o, s + i, k);
        else dst[o] = '?';
        o += w;
        i += w;
    }
    if (i < len) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

double rw_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static _Thread_local double rw_deadline; /* 0: none */
static _Thread_local int rw_in_pool;      /* this thread is running a pool's samples */

int rw_expired(void) { return rw_deadline > 0 && rw_now() > rw_deadline; }
int segrl_reward_deadline_passed(void) { return rw_expired(); }

// ----------------------------------------------------------------------------
// the object

segrl_status rw_new(const segrl_reward_impl *impl, int kind, segrl_reward **out) {
    segrl_reward *r = segrl_malloc(sizeof *r);
    const char *nm = impl->name ? impl->name : "reward";
    size_t len = strlen(nm);
    char *name = segrl_malloc(len + 1);
    if (!r || !name) {
        segrl_free(r);
        segrl_free(name);
        return sg_fail(SEGRL_ERR_ALLOC, "segrl_reward: out of memory");
    }
    memcpy(name, nm, len + 1);
    memset(r, 0, sizeof *r);
    r->impl = *impl;
    r->impl.name = name;
    r->name = name;
    r->kind = kind;
    *out = r;
    return SEGRL_OK;
}

segrl_status rw_new_owned(const segrl_reward_impl *impl, int kind, segrl_reward **out) {
    segrl_status st = rw_new(impl, kind, out);
    if (st && impl->release) impl->release(impl->user);
    return st;
}

static void rw_free_state(void *user) { segrl_free(user); }

segrl_status rw_new_copy(const char *fn, const char *name, uint32_t flags,
                         segrl_reward_score_fn score, const void *state, size_t size,
                         segrl_reward **out) {
    void *copy = segrl_malloc(size);
    if (!copy) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    memcpy(copy, state, size);
    segrl_reward_impl impl = {SEGRL_REWARD_ABI_VERSION, flags, name, copy, score, NULL,
                              rw_free_state};
    return rw_new_owned(&impl, RW_KIND_OTHER, out);
}

segrl_status segrl_reward_custom(const segrl_reward_impl *impl, segrl_reward **out) {
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "segrl_reward_custom: out: NULL");
    if (!impl) return sg_fail(SEGRL_ERR_INVALID, "segrl_reward_custom: impl: NULL");
    if (impl->abi_version != SEGRL_REWARD_ABI_VERSION)
        return sg_fail(SEGRL_ERR_INVALID,
                       "segrl_reward_custom: impl->abi_version: %u, this segrl expects %u",
                       (unsigned)impl->abi_version, (unsigned)SEGRL_REWARD_ABI_VERSION);
    if (!impl->score) return sg_fail(SEGRL_ERR_INVALID, "segrl_reward_custom: impl->score: NULL");
    if (impl->flags & ~(uint32_t)SEGRL_REWARD_PER_SAMPLE)
        return sg_fail(SEGRL_ERR_INVALID, "segrl_reward_custom: impl->flags: unknown bits 0x%x",
                       (unsigned)(impl->flags & ~(uint32_t)SEGRL_REWARD_PER_SAMPLE));
    return rw_new(impl, RW_KIND_OTHER, out);
}

void segrl_reward_free(segrl_reward *r) {
    if (!r) return;
    if (r->impl.release) r->impl.release(r->impl.user);
    if (r->dl) dlclose(r->dl);
    segrl_free(r->name);
    segrl_free(r);
}

const char *segrl_reward_name(const segrl_reward *r) { return r ? r->name : ""; }
int segrl_reward_has_segments(const segrl_reward *r) { return r && r->impl.score_segments; }

// ----------------------------------------------------------------------------
// the batch scorer

typedef struct rw_job {
    segrl_reward *r;
    const segrl_reward_sample *s;
    int64_t n;
    const segrl_reward_run *run; /* resolved */
    float *scores;
    segrl_reward_detail *det; /* may be NULL */
    atomic_llong next;
    atomic_int failed; /* fail_on_error: first failure wins */
    pthread_mutex_t mu;
    segrl_status err;
    char msg[512];
} rw_job;

enum { RW_CHUNK = 16 };

static void rw_one(rw_job *j, int64_t i) {
    const segrl_reward_run *run = j->run;
    segrl_reward_detail d;
    memset(&d, 0, sizeof d);
    float sc = 0.0f;
    double lim = run->time_limit_s;
    double t0 = rw_now();
    rw_deadline = lim > 0 ? t0 + lim : 0;
    segrl_status st = j->r->impl.score(j->r->impl.user, &j->s[i], 1, run, &sc, &d);
    double t1 = rw_now();
    rw_deadline = 0;
    if (st == SEGRL_OK && !isfinite(sc)) {
        st = sg_fail(SEGRL_ERR_INVALID, "segrl_reward_score: %s: non-finite score for sample %lld",
                     j->r->name, (long long)i);
    }
    if (st != SEGRL_OK) {
        if (run->fail_on_error) {
            int expect = 0;
            if (atomic_compare_exchange_strong(&j->failed, &expect, 1)) {
                j->err = st;
                snprintf(j->msg, sizeof j->msg, "%s", segrl_last_error());
            }
            return;
        }
        const char *m = segrl_last_error();
        memset(&d, 0, sizeof d);
        d.reason = SEGRL_REWARD_ERROR;
        rw_text(d.message, m, strlen(m));
        sc = run->failure_score;
    } else if (d.reason == SEGRL_REWARD_TIMEOUT || (lim > 0 && t1 - t0 > lim)) {
        d.reason = SEGRL_REWARD_TIMEOUT;
        snprintf(d.message, sizeof d.message, "scoring took longer than %g s", lim);
        sc = run->failure_score;
    }
    j->scores[i] = sc;
    if (j->det) j->det[i] = d;
}

static void *rw_worker(void *arg) {
    rw_job *j = arg;
    int was = rw_in_pool;
    rw_in_pool = 1;
    for (;;) {
        if (atomic_load(&j->failed)) break;
        int64_t b = atomic_fetch_add(&j->next, RW_CHUNK);
        if (b >= j->n) break;
        int64_t e = b + RW_CHUNK < j->n ? b + RW_CHUNK : j->n;
        for (int64_t i = b; i < e; i++) rw_one(j, i);
    }
    rw_in_pool = was;
    return NULL;
}

static int rw_cpus(void) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c < 1 ? 1 : c > 256 ? 256 : (int)c;
}

static segrl_status rw_resolve_run(const char *fn, const segrl_reward_run *in,
                                   segrl_reward_run *run) {
    memset(run, 0, sizeof *run);
    if (in) *run = *in;
    if (run->threads < 0 || run->threads > 4096)
        return sg_fail(SEGRL_ERR_INVALID, "%s: run->threads: %d not in [0, 4096]", fn, run->threads);
    if (run->threads == 0) run->threads = rw_cpus();
    if (isnan(run->time_limit_s))
        return sg_fail(SEGRL_ERR_INVALID, "%s: run->time_limit_s: NaN", fn);
    if (run->time_limit_s == 0) run->time_limit_s = 10.0;
    if (!isfinite(run->failure_score))
        return sg_fail(SEGRL_ERR_INVALID, "%s: run->failure_score: not finite", fn);
    if (run->fail_on_error != 0 && run->fail_on_error != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: run->fail_on_error: %d, 0 or 1 expected", fn,
                       run->fail_on_error);
    return SEGRL_OK;
}

/* Runs the per-sample pool over [0, n) writing into scores/det. */
static segrl_status rw_pool(segrl_reward *r, const segrl_reward_sample *s, int64_t n,
                            const segrl_reward_run *run, float *scores, segrl_reward_detail *det) {
    rw_job j;
    memset(&j, 0, sizeof j);
    j.r = r;
    j.s = s;
    j.n = n;
    j.run = run;
    j.scores = scores;
    j.det = det;
    atomic_init(&j.next, 0);
    atomic_init(&j.failed, 0);
    int64_t chunks = (n + RW_CHUNK - 1) / RW_CHUNK;
    int nt = run->threads;
    if (nt > chunks) nt = (int)chunks;
    if (nt <= 1) {
        rw_worker(&j);
    } else {
        pthread_t tid[256];
        if (nt > 256) nt = 256;
        int started = 0;
        for (int t = 0; t < nt - 1; t++) {
            if (pthread_create(&tid[t], NULL, rw_worker, &j) != 0) break;
            started++;
        }
        rw_worker(&j); /* the calling thread works too */
        for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    }
    if (atomic_load(&j.failed)) return sg_fail(j.err, "%s", j.msg);
    return SEGRL_OK;
}

segrl_status rw_score_inner(segrl_reward *r, const segrl_reward_sample *s, int64_t n,
                            const segrl_reward_run *run, float *scores,
                            segrl_reward_detail *details) {
    if ((r->impl.flags & SEGRL_REWARD_PER_SAMPLE) && rw_in_pool) {
        if (details) memset(details, 0, (size_t)n * sizeof *details);
        segrl_status st = r->impl.score(r->impl.user, s, n, run, scores, details);
        if (st != SEGRL_OK) return st;
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(scores[i]))
                return sg_fail(SEGRL_ERR_INVALID, "%s: non-finite score for sample %lld", r->name,
                               (long long)i);
        return SEGRL_OK;
    }
    return segrl_reward_score(r, s, n, run, scores, details);
}

segrl_status segrl_reward_score(segrl_reward *r, const segrl_reward_sample *s, int64_t n,
                                const segrl_reward_run *run_in, float *out_scores,
                                segrl_reward_detail *out_details) {
    static const char *fn = "segrl_reward_score";
    if (!r) return sg_fail(SEGRL_ERR_INVALID, "%s: reward: NULL", fn);
    if (n < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: n: %lld < 0", fn, (long long)n);
    if (n > 0 && !s) return sg_fail(SEGRL_ERR_INVALID, "%s: samples: NULL", fn);
    if (n > 0 && !out_scores) return sg_fail(SEGRL_ERR_INVALID, "%s: out_scores: NULL", fn);
    if ((uint64_t)n > SIZE_MAX / sizeof(segrl_reward_detail))
        return sg_fail(SEGRL_ERR_INVALID, "%s: n: %lld too large", fn, (long long)n);
    segrl_reward_run run;
    SG_TRY(rw_resolve_run(fn, run_in, &run));
    if (n == 0) return SEGRL_OK;

    /* with fail_on_error the outputs are written only on success: score into scratch */
    float *sc = out_scores;
    segrl_reward_detail *det = out_details;
    if (run.fail_on_error) {
        sc = segrl_malloc((size_t)n * sizeof *sc);
        det = out_details ? segrl_malloc((size_t)n * sizeof *det) : NULL;
        if (!sc || (out_details && !det)) {
            segrl_free(sc);
            segrl_free(det);
            return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory for %lld samples", fn, (long long)n);
        }
    }
    segrl_status st;
    if (r->impl.flags & SEGRL_REWARD_PER_SAMPLE) {
        st = rw_pool(r, s, n, &run, sc, det);
    } else {
        if (det) memset(det, 0, (size_t)n * sizeof *det);
        st = r->impl.score(r->impl.user, s, n, &run, sc, det);
        for (int64_t i = 0; st == SEGRL_OK && i < n; i++)
            if (!isfinite(sc[i]))
                st = sg_fail(SEGRL_ERR_INVALID, "%s: %s: non-finite score for sample %lld", fn,
                             r->name, (long long)i);
        if (st != SEGRL_OK && !run.fail_on_error) {
            /* the whole batch failed: every sample gets the failure score and the message */
            const char *m = segrl_last_error();
            for (int64_t i = 0; i < n; i++) {
                sc[i] = run.failure_score;
                if (det) {
                    memset(&det[i], 0, sizeof det[i]);
                    det[i].reason = SEGRL_REWARD_ERROR;
                    rw_text(det[i].message, m, strlen(m));
                }
            }
            st = SEGRL_OK;
        }
    }
    if (run.fail_on_error) {
        if (st == SEGRL_OK) {
            memcpy(out_scores, sc, (size_t)n * sizeof *sc);
            if (out_details) memcpy(out_details, det, (size_t)n * sizeof *det);
        }
        segrl_free(sc);
        segrl_free(det);
    }
    return st;
}

segrl_status segrl_reward_score_segments(segrl_reward *r, const segrl_reward_sample *s, int64_t n,
                                         const int64_t *off, const int64_t *st, const int64_t *en,
                                         const segrl_reward_run *run_in, float *out) {
    static const char *fn = "segrl_reward_score_segments";
    if (!r) return sg_fail(SEGRL_ERR_INVALID, "%s: reward: NULL", fn);
    if (!r->impl.score_segments)
        return sg_fail(SEGRL_ERR_UNSUPPORTED, "%s: reward: %s has no segment scoring", fn, r->name);
    if (n < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: n: %lld < 0", fn, (long long)n);
    if (n > 0 && !s) return sg_fail(SEGRL_ERR_INVALID, "%s: samples: NULL", fn);
    if (!off) return sg_fail(SEGRL_ERR_INVALID, "%s: seg_offsets: NULL", fn);
    if (off[0] != 0) return sg_fail(SEGRL_ERR_INVALID, "%s: seg_offsets: [0] must be 0", fn);
    for (int64_t b = 0; b < n; b++)
        if (off[b + 1] < off[b])
            return sg_fail(SEGRL_ERR_INVALID, "%s: seg_offsets: decreasing at entry %lld", fn,
                           (long long)(b + 1));
    int64_t S = off[n];
    if (S > 0 && (!st || !en || !out))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL", fn,
                       !st ? "seg_starts" : !en ? "seg_ends" : "out");
    for (int64_t k = 0; k < S; k++)
        if (st[k] < 0 || en[k] <= st[k])
            return sg_fail(SEGRL_ERR_INVALID, "%s: seg_starts/seg_ends: segment %lld is [%lld, %lld)",
                           fn, (long long)k, (long long)st[k], (long long)en[k]);
    segrl_reward_run run;
    SG_TRY(rw_resolve_run(fn, run_in, &run));
    if (n == 0 || S == 0) return SEGRL_OK;
    float *tmp = segrl_malloc((size_t)S * sizeof *tmp);
    if (!tmp) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    segrl_status rs = r->impl.score_segments(r->impl.user, s, n, off, st, en, &run, tmp);
    for (int64_t k = 0; rs == SEGRL_OK && k < S; k++)
        if (!isfinite(tmp[k]))
            rs = sg_fail(SEGRL_ERR_INVALID, "%s: %s: non-finite score for segment %lld", fn,
                         r->name, (long long)k);
    if (rs == SEGRL_OK) memcpy(out, tmp, (size_t)S * sizeof *tmp);
    segrl_free(tmp);
    return rs;
}

// ----------------------------------------------------------------------------
// metadata

int64_t rw_meta_numbers(const char *meta, const char *key, double *vals, int64_t cap) {
    if (!meta || !*meta) return 0;
    cJSON *root = cJSON_Parse(meta);
    if (!root) return -1;
    int64_t cnt = 0;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -1;
    }
    cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (cJSON_IsNumber(v)) {
        if (cap > 0) vals[0] = v->valuedouble;
        cnt = 1;
    } else if (cJSON_IsArray(v)) {
        cJSON *e;
        cJSON_ArrayForEach(e, v) {
            if (!cJSON_IsNumber(e)) {
                cnt = -1;
                break;
            }
            if (cnt < cap) vals[cnt] = e->valuedouble;
            cnt++;
        }
        if (cnt > cap) cnt = cap;
    } else if (v) {
        cnt = -1;
    }
    cJSON_Delete(root);
    return cnt;
}
