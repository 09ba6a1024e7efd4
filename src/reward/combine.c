/* combine.c — transforms and combinators over other rewards:
 *   weighted sum        R = sum_j w_j R_j                      (each source logged per sample)
 *   ensemble            mean | median | min | mean - lambda * std  (Eisenstein et al. 2023,
 *                       arXiv 2312.09244: reward-model ensembles; std is the population standard
 *                       deviation over members)
 *   clip                clamp(R, lo, hi)
 *   PAR                 (1/M) sum_m sigmoid(k (R - r_ref,m))   (Fu et al. 2025, arXiv 2502.18770)
 *   LSC                 log sigmoid(R - r_ref)                 (Wang et al. 2024, arXiv 2402.00742)
 *   normalize           (R - mean) / (std + eps) with Welford's running mean and M2 (Welford 1962)
 * A combinator is per-sample (scored on the pool, one sample at a time) when all its parts are;
 * normalize is always whole-batch (its statistics see the batch first). A part's timeout or error
 * makes the combined sample a timeout / error with the failure score. */
#include "rw.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { C_SUM = 0, C_ENSEMBLE, C_CLIP, C_PAR, C_LSC, C_NORMALIZE };
enum { PAR_MAX_REFS = 1024 };

typedef struct comb {
    int op;
    int32_t k;
    segrl_reward **parts;
    float *w;
    int32_t agg;
    float lambda, lo, hi, kpar, ref, eps;
    char *ref_key;
    segrl_running_stats stats;
    pthread_mutex_t mu;
} comb;

// ----------------------------------------------------------------------------
// the pure transforms

static double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }
/* log sigmoid(x) = -log(1 + e^-x), stable for both signs */
static double log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float aggregate(const float *v, int32_t k, int32_t agg, float lambda, float *scratch) {
    double mean = 0;
    for (int32_t j = 0; j < k; j++) mean += v[j];
    mean /= k;
    switch (agg) {
    case SEGRL_ENSEMBLE_MEDIAN: {
        memcpy(scratch, v, (size_t)k * sizeof *v);
        qsort(scratch, (size_t)k, sizeof *scratch, cmp_f);
        return k % 2 ? scratch[k / 2] : 0.5f * (scratch[k / 2 - 1] + scratch[k / 2]);
    }
    case SEGRL_ENSEMBLE_MIN: {
        float m = v[0];
        for (int32_t j = 1; j < k; j++) m = v[j] < m ? v[j] : m;
        return m;
    }
    case SEGRL_ENSEMBLE_MEAN_MINUS_STD: {
        double var = 0;
        for (int32_t j = 0; j < k; j++) var += (v[j] - mean) * (v[j] - mean);
        return (float)(mean - lambda * sqrt(var / k));
    }
    default: return (float)mean;
    }
}

static segrl_status check_agg(const char *fn, int32_t agg, float lambda) {
    if (agg < SEGRL_ENSEMBLE_MEAN || agg > SEGRL_ENSEMBLE_MEAN_MINUS_STD)
        return sg_fail(SEGRL_ERR_INVALID, "%s: agg: %d is not a segrl_ensemble_agg", fn, agg);
    return sg_check_finite_param(fn, "lambda", lambda);
}

segrl_status segrl_ensemble_apply(const float *scores, int32_t k, int64_t n, int32_t agg,
                                  float lambda, float *out) {
    static const char *fn = "segrl_ensemble_apply";
    if (k < 1) return sg_fail(SEGRL_ERR_INVALID, "%s: num_parts: %d < 1", fn, k);
    if (n < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: n: %lld < 0", fn, (long long)n);
    SG_TRY(check_agg(fn, agg, lambda));
    if (n > 0 && (!scores || !out))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL", fn, !scores ? "scores" : "out");
    for (int64_t i = 0; i < (int64_t)k * n; i++)
        if (!isfinite(scores[i]))
            return sg_fail(SEGRL_ERR_INVALID, "%s: scores: entry %lld not finite", fn, (long long)i);
    float *v = segrl_malloc(2 * (size_t)k * sizeof *v);
    if (!v) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    for (int64_t i = 0; i < n; i++) {
        for (int32_t j = 0; j < k; j++) v[j] = scores[(int64_t)j * n + i];
        out[i] = aggregate(v, k, agg, lambda, v + k);
    }
    segrl_free(v);
    return SEGRL_OK;
}

segrl_status segrl_par_apply(const float *r, const float *ref, int64_t n, int64_t m, float k,
                             float *out) {
    static const char *fn = "segrl_par_apply";
    if (n < 0 || m < 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s", fn, n < 0 ? "n: < 0" : "m: < 1");
    SG_TRY(sg_check_finite_param(fn, "k", k));
    if (n > 0 && (!r || !ref || !out))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL", fn, !r ? "r" : !ref ? "ref" : "out");
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(r[i])) return sg_fail(SEGRL_ERR_INVALID, "%s: r: entry %lld not finite", fn, (long long)i);
        for (int64_t j = 0; j < m; j++)
            if (!isfinite(ref[i * m + j]))
                return sg_fail(SEGRL_ERR_INVALID, "%s: ref: entry %lld not finite", fn, (long long)(i * m + j));
    }
    for (int64_t i = 0; i < n; i++) {
        double acc = 0;
        for (int64_t j = 0; j < m; j++) acc += sigmoid((double)k * ((double)r[i] - ref[i * m + j]));
        out[i] = (float)(acc / (double)m);
    }
    return SEGRL_OK;
}

segrl_status segrl_lsc_apply(const float *r, const float *ref, int64_t n, float *out) {
    static const char *fn = "segrl_lsc_apply";
    if (n < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: n: < 0", fn);
    if (n > 0 && (!r || !ref || !out))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL", fn, !r ? "r" : !ref ? "ref" : "out");
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(r[i]) || !isfinite(ref[i]))
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: entry %lld not finite", fn,
                           !isfinite(r[i]) ? "r" : "ref", (long long)i);
    for (int64_t i = 0; i < n; i++) out[i] = (float)log_sigmoid((double)r[i] - ref[i]);
    return SEGRL_OK;
}

void segrl_running_stats_update(segrl_running_stats *s, const float *x, int64_t n) {
    if (!s || !x) return;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        s->count++;
        double d = x[i] - s->mean;
        s->mean += d / (double)s->count;
        s->m2 += d * (x[i] - s->mean);
    }
}

double segrl_running_stats_std(const segrl_running_stats *s) {
    if (!s || s->count < 1) return 0.0;
    double v = s->m2 / (double)s->count;
    return v > 0 ? sqrt(v) : 0.0;
}

// ----------------------------------------------------------------------------
// the combinator reward

static void comb_release(void *user) {
    comb *c = user;
    for (int32_t j = 0; j < c->k; j++) segrl_reward_free(c->parts[j]);
    if (c->op == C_NORMALIZE) pthread_mutex_destroy(&c->mu);
    segrl_free(c->parts);
    segrl_free(c->w);
    segrl_free(c->ref_key);
    segrl_free(c);
}

static int bad_reason(int32_t r) { return r == SEGRL_REWARD_TIMEOUT || r == SEGRL_REWARD_ERROR; }

static segrl_status comb_score(void *user, const segrl_reward_sample *s, int64_t n,
                               const segrl_reward_run *run, float *out, segrl_reward_detail *det) {
    comb *c = user;
    int32_t k = c->k;
    float *sc = segrl_malloc((size_t)k * (size_t)n * sizeof *sc + 2 * (size_t)k * sizeof *sc);
    segrl_reward_detail *pd = segrl_malloc((size_t)k * (size_t)n * sizeof *pd);
    double *refs = NULL;
    if (!sc || !pd) {
        segrl_free(sc);
        segrl_free(pd);
        return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", c->op == C_SUM ? "weighted_sum" : "combinator");
    }
    float *tmp = sc + (size_t)k * (size_t)n;
    segrl_status st = SEGRL_OK;
    for (int32_t j = 0; j < k && st == SEGRL_OK; j++)
        st = rw_score_inner(c->parts[j], s, n, run, sc + (size_t)j * n, pd + (size_t)j * n);
    if (st == SEGRL_OK && (c->op == C_PAR)) {
        refs = segrl_malloc(PAR_MAX_REFS * sizeof *refs);
        if (!refs) st = sg_fail(SEGRL_ERR_ALLOC, "par: out of memory");
    }
    if (st == SEGRL_OK && c->op == C_NORMALIZE) {
        /* the batch's scored samples update the running statistics, then the batch is normalized */
        pthread_mutex_lock(&c->mu);
        for (int64_t i = 0; i < n; i++)
            if (!bad_reason(pd[i].reason)) segrl_running_stats_update(&c->stats, &sc[i], 1);
        double mean = c->stats.mean, sd = segrl_running_stats_std(&c->stats);
        pthread_mutex_unlock(&c->mu);
        for (int64_t i = 0; i < n; i++) sc[i] = (float)((sc[i] - mean) / (sd + c->eps));
    }
    for (int64_t i = 0; i < n && st == SEGRL_OK; i++) {
        segrl_reward_detail d;
        memset(&d, 0, sizeof d);
        /* texts and reason: the first part with an extracted answer / a non-ok reason */
        int32_t reason = SEGRL_REWARD_OK;
        for (int32_t j = 0; j < k; j++) {
            const segrl_reward_detail *q = &pd[(size_t)j * n + i];
            if (!d.extracted[0] && q->extracted[0]) {
                memcpy(d.extracted, q->extracted, sizeof d.extracted);
                memcpy(d.normalized, q->normalized, sizeof d.normalized);
            }
            if (bad_reason(q->reason) && !bad_reason(reason)) {
                reason = q->reason;
                memcpy(d.message, q->message, sizeof d.message);
            } else if (reason == SEGRL_REWARD_OK && q->reason != SEGRL_REWARD_OK) {
                reason = q->reason;
                if (q->message[0]) memcpy(d.message, q->message, sizeof d.message);
            }
        }
        d.reason = reason;
        d.num_sources = k < SEGRL_REWARD_MAX_SOURCES ? k : SEGRL_REWARD_MAX_SOURCES;
        for (int32_t j = 0; j < d.num_sources; j++) d.sources[j] = sc[(size_t)j * n + i];
        float v = 0;
        double r = sc[i];
        switch (c->op) {
        case C_SUM: {
            double acc = 0;
            for (int32_t j = 0; j < k; j++) acc += (double)c->w[j] * sc[(size_t)j * n + i];
            v = (float)acc;
            break;
        }
        case C_ENSEMBLE:
            for (int32_t j = 0; j < k; j++) tmp[j] = sc[(size_t)j * n + i];
            v = aggregate(tmp, k, c->agg, c->lambda, tmp + k);
            break;
        case C_CLIP: v = (float)(r < c->lo ? c->lo : r > c->hi ? c->hi : r); break;
        case C_PAR: {
            int64_t m = rw_meta_numbers(s[i].metadata_json, c->ref_key, refs, PAR_MAX_REFS);
            if (m <= 0) {
                d.reason = SEGRL_REWARD_ERROR;
                snprintf(d.message, sizeof d.message, "par: metadata has no numbers under \"%s\"",
                         c->ref_key);
                v = run->failure_score;
                break;
            }
            double acc = 0;
            for (int64_t j = 0; j < m; j++) acc += sigmoid((double)c->kpar * (r - refs[j]));
            v = (float)(acc / (double)m);
            break;
        }
        case C_LSC: {
            double ref = c->ref;
            if (c->ref_key) {
                double x;
                if (rw_meta_numbers(s[i].metadata_json, c->ref_key, &x, 1) != 1) {
                    d.reason = SEGRL_REWARD_ERROR;
                    snprintf(d.message, sizeof d.message, "lsc: metadata has no number \"%s\"",
                             c->ref_key);
                    v = run->failure_score;
                    break;
                }
                ref = x;
            }
            v = (float)log_sigmoid(r - ref);
            break;
        }
        case C_NORMALIZE: v = (float)r; break;
        }
        if (bad_reason(d.reason)) v = run->failure_score;
        out[i] = v;
        if (det) det[i] = d;
    }
    segrl_free(refs);
    segrl_free(sc);
    segrl_free(pd);
    return st;
}

static segrl_status comb_segments(void *user, const segrl_reward_sample *s, int64_t n,
                                  const int64_t *off, const int64_t *st, const int64_t *en,
                                  const segrl_reward_run *run, float *out) {
    comb *c = user;
    int64_t S = off[n];
    float *tmp = segrl_malloc((size_t)(S ? S : 1) * sizeof *tmp);
    if (!tmp) return sg_fail(SEGRL_ERR_ALLOC, "combinator: out of memory");
    segrl_status rs = SEGRL_OK;
    for (int64_t q = 0; q < S; q++) out[q] = 0;
    for (int32_t j = 0; j < c->k && rs == SEGRL_OK; j++) {
        segrl_reward *p = c->parts[j];
        rs = p->impl.score_segments(p->impl.user, s, n, off, st, en, run, tmp);
        for (int64_t q = 0; rs == SEGRL_OK && q < S; q++) {
            if (c->op == C_SUM) out[q] += c->w[j] * tmp[q];
            else out[q] = tmp[q] < c->lo ? c->lo : tmp[q] > c->hi ? c->hi : tmp[q];
        }
    }
    segrl_free(tmp);
    return rs;
}

static segrl_status comb_new(const char *fn, int op, segrl_reward *const *parts, const float *w,
                             int32_t k, comb **outc) {
    if (k < 1) return sg_fail(SEGRL_ERR_INVALID, "%s: num_parts: %d < 1", fn, k);
    if (!parts) return sg_fail(SEGRL_ERR_INVALID, "%s: parts: NULL", fn);
    for (int32_t j = 0; j < k; j++) {
        if (!parts[j]) return sg_fail(SEGRL_ERR_INVALID, "%s: parts[%d]: NULL", fn, j);
        for (int32_t q = 0; q < j; q++)
            if (parts[q] == parts[j])
                return sg_fail(SEGRL_ERR_INVALID, "%s: parts[%d]: same reward as parts[%d]", fn, j, q);
        if (w && !isfinite(w[j]))
            return sg_fail(SEGRL_ERR_INVALID, "%s: weights[%d]: not finite", fn, j);
    }
    comb *c = segrl_malloc(sizeof *c);
    if (c) memset(c, 0, sizeof *c);
    if (c) c->parts = segrl_malloc((size_t)k * sizeof *c->parts);
    if (c && w) c->w = segrl_malloc((size_t)k * sizeof *c->w);
    if (!c || !c->parts || (w && !c->w)) {
        if (c) segrl_free(c->parts), segrl_free(c->w);
        segrl_free(c);
        return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    }
    c->op = op;
    c->k = k;
    memcpy(c->parts, parts, (size_t)k * sizeof *parts);
    if (w) memcpy(c->w, w, (size_t)k * sizeof *w);
    *outc = c;
    return SEGRL_OK;
}

/* wraps c; on failure frees c without freeing the parts (the caller keeps them) */
static segrl_status comb_finish(comb *c, const char *name, int segments, segrl_reward **out) {
    uint32_t flags = SEGRL_REWARD_PER_SAMPLE;
    int seg = segments;
    for (int32_t j = 0; j < c->k; j++) {
        if (!(c->parts[j]->impl.flags & SEGRL_REWARD_PER_SAMPLE)) flags = 0;
        if (!c->parts[j]->impl.score_segments) seg = 0;
    }
    if (c->op == C_NORMALIZE) flags = 0;
    segrl_reward_impl impl = {SEGRL_REWARD_ABI_VERSION, flags, name, c, comb_score,
                              seg ? comb_segments : NULL, comb_release};
    segrl_status st = rw_new(&impl, c->op == C_NORMALIZE ? RW_KIND_NORMALIZE : RW_KIND_OTHER, out);
    if (st) {
        c->k = 0; /* the parts stay the caller's */
        comb_release(c);
    }
    return st;
}

segrl_status segrl_reward_weighted_sum(segrl_reward *const *parts, const float *weights,
                                       int32_t num_parts, segrl_reward **out) {
    static const char *fn = "segrl_reward_weighted_sum";
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    if (!weights) return sg_fail(SEGRL_ERR_INVALID, "%s: weights: NULL", fn);
    comb *c;
    SG_TRY(comb_new(fn, C_SUM, parts, weights, num_parts, &c));
    return comb_finish(c, "weighted_sum", 1, out);
}

segrl_status segrl_reward_ensemble(segrl_reward *const *parts, int32_t num_parts, int32_t agg,
                                   float lambda, segrl_reward **out) {
    static const char *fn = "segrl_reward_ensemble";
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    SG_TRY(check_agg(fn, agg, lambda));
    comb *c;
    SG_TRY(comb_new(fn, C_ENSEMBLE, parts, NULL, num_parts, &c));
    c->agg = agg;
    c->lambda = lambda;
    return comb_finish(c, "ensemble", 0, out);
}

segrl_status segrl_reward_clip(segrl_reward *inner, float lo, float hi, segrl_reward **out) {
    static const char *fn = "segrl_reward_clip";
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    if (!inner) return sg_fail(SEGRL_ERR_INVALID, "%s: inner: NULL", fn);
    SG_TRY(sg_check_finite_param(fn, "lo", lo));
    SG_TRY(sg_check_finite_param(fn, "hi", hi));
    if (lo > hi) return sg_fail(SEGRL_ERR_INVALID, "%s: lo: %g > hi = %g", fn, lo, hi);
    comb *c;
    SG_TRY(comb_new(fn, C_CLIP, &inner, NULL, 1, &c));
    c->lo = lo;
    c->hi = hi;
    return comb_finish(c, "clip", 1, out);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = segrl_malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

segrl_status segrl_reward_par(segrl_reward *inner, float k, const char *ref_key,
                              segrl_reward **out) {
    static const char *fn = "segrl_reward_par";
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    if (!inner) return sg_fail(SEGRL_ERR_INVALID, "%s: inner: NULL", fn);
    SG_TRY(sg_check_finite_param(fn, "k", k));
    comb *c;
    SG_TRY(comb_new(fn, C_PAR, &inner, NULL, 1, &c));
    c->kpar = k;
    c->ref_key = dup_str(ref_key ? ref_key : "ref_rewards");
    if (!c->ref_key) {
        c->k = 0;
        comb_release(c);
        return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    }
    return comb_finish(c, "par", 0, out);
}

segrl_status segrl_reward_lsc(segrl_reward *inner, float ref, const char *ref_key,
                              segrl_reward **out) {
    static const char *fn = "segrl_reward_lsc";
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    if (!inner) return sg_fail(SEGRL_ERR_INVALID, "%s: inner: NULL", fn);
    SG_TRY(sg_check_finite_param(fn, "ref", ref));
    comb *c;
    SG_TRY(comb_new(fn, C_LSC, &inner, NULL, 1, &c));
    c->ref = ref;
    if (ref_key && !(c->ref_key = dup_str(ref_key))) {
        c->k = 0;
        comb_release(c);
        return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    }
    return comb_finish(c, "lsc", 0, out);
}

segrl_status segrl_reward_normalize(segrl_reward *inner, float eps, segrl_reward **out) {
    static const char *fn = "segrl_reward_normalize";
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    if (!inner) return sg_fail(SEGRL_ERR_INVALID, "%s: inner: NULL", fn);
    if (!isfinite(eps) || eps < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: eps: must be finite and >= 0", fn);
    comb *c;
    SG_TRY(comb_new(fn, C_NORMALIZE, &inner, NULL, 1, &c));
    c->eps = eps;
    pthread_mutex_init(&c->mu, NULL);
    return comb_finish(c, "normalize", 0, out);
}

segrl_status segrl_reward_normalize_stats(const segrl_reward *r, segrl_running_stats *out) {
    static const char *fn = "segrl_reward_normalize_stats";
    if (!r || r->kind != RW_KIND_NORMALIZE)
        return sg_fail(SEGRL_ERR_INVALID, "%s: reward: not a normalize reward", fn);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    comb *c = r->impl.user;
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
    return SEGRL_OK;
}
