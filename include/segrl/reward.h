/* segrl/reward.h — rewards: a pluggable reward interface, a thread-pool batch scorer with a
 * per-sample time limit, GSM8K and MATH verifiers, format / overlong / repetition rewards,
 * transforms and combinators (weighted sum, ensembles, PAR, LSC, Welford normalization,
 * clipping), shared-object plugins and a remote HTTP reward model.
 *
 * A reward is an opaque `segrl_reward *`. Every constructor (built-in, combinator, plugin, HTTP,
 * custom callbacks) returns the same type, and `segrl_reward_create(name, options_json, &r)` builds
 * any of them by name from JSON options, so a trainer picks one from its config. Score a batch:
 *
 *     segrl_reward *r;
 *     segrl_reward_create("math", "{}", &r);             // or segrl_reward_math(NULL, &r)
 *     segrl_reward_sample s[B] = {{.prompt = p, .response = y, .answer = ref}, ...};
 *     segrl_reward_run run = {.threads = 8, .time_limit_s = 2.0, .failure_score = 0.0f};
 *     float scores[B]; segrl_reward_detail det[B];        // det may be NULL
 *     segrl_reward_score(r, s, B, &run, scores, det);
 *     segrl_reward_free(r);
 *
 * Texts are NUL-terminated byte strings (UTF-8 expected; invalid UTF-8 is read as bytes, never an
 * error). NULL texts read as "". Ownership: the library never keeps pointers into samples after a
 * call returns. Rewards are safe to score from several threads at once except the Welford
 * normalizer, whose running statistics are guarded by a mutex (its results then depend on order).
 *
 * Statuses: SEGRL_OK; SEGRL_ERR_INVALID (a bad argument or option, a plugin with the wrong ABI, a
 * remote server that failed or answered garbage — the message says which); SEGRL_ERR_ALLOC;
 * SEGRL_ERR_UNSUPPORTED (segment scoring asked of a reward without it).
 * See docs/rewards.md for the grading rules, formulas, papers, the plugin ABI and the HTTP protocol. */
#ifndef SEGRL_REWARD_H
#define SEGRL_REWARD_H

#include "segrl/core.h"

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// samples, details, reasons

/* One sample to score. Every pointer may be NULL (read as empty). */
typedef struct segrl_reward_sample {
    const char *prompt;           /* the prompt text */
    const char *response;         /* the model's response text */
    const int32_t *response_ids;  /* the response's token ids (length rewards, repetition) */
    int64_t num_response_ids;     /* entries in response_ids */
    const char *answer;           /* reference answer (verifiers) */
    const char *metadata_json;    /* a JSON object, e.g. {"ref_rewards": [0.1, 0.7]} (PAR, LSC) */
} segrl_reward_sample;

/* Why a sample got its score. Values are appended only. */
typedef enum segrl_reward_reason {
    SEGRL_REWARD_OK = 0,               /* scored normally (verifiers: the answer is correct) */
    SEGRL_REWARD_WRONG = 1,            /* an answer was found and is not equivalent */
    SEGRL_REWARD_NO_ANSWER = 2,        /* no answer could be extracted */
    SEGRL_REWARD_MULTIPLE_ANSWERS = 3, /* GSM8K with the SPO/VinePPO option: more than one "####" */
    SEGRL_REWARD_EMPTY_RESPONSE = 4,   /* the response is empty */
    SEGRL_REWARD_BAD_REFERENCE = 5,    /* the reference answer is empty */
    SEGRL_REWARD_FORMAT_MISMATCH = 6,  /* format reward: the pattern did not match */
    SEGRL_REWARD_OVERLONG = 7,         /* overlong penalty applied */
    SEGRL_REWARD_REPETITION = 8,       /* repetition penalty applied */
    SEGRL_REWARD_TIMEOUT = 9,          /* the per-sample time limit passed: failure_score */
    SEGRL_REWARD_ERROR = 10,           /* the reward failed (message in detail.message): failure_score */
    SEGRL_REWARD_TOO_LONG_INPUT = 11,  /* the answer/response exceeded an internal size bound */
} segrl_reward_reason;

/* Static name of a reason: "ok", "wrong", "no_answer", "multiple_answers", "empty_response",
 * "bad_reference", "format_mismatch", "overlong", "repetition", "timeout", "error",
 * "too_long_input"; "unknown" otherwise. */
SEGRL_API const char *segrl_reward_reason_name(int32_t reason);

#define SEGRL_REWARD_TEXT_MAX 128 /* bytes of each text field of a detail, NUL included */
#define SEGRL_REWARD_MAX_SOURCES 8 /* per-source scores a combinator logs in a detail */

/* Per-sample detail for logging. Text fields are NUL-terminated valid UTF-8 (invalid bytes of
 * the response become '?') and truncated at a character boundary to fit (a truncated field ends
 * in "..."); "" when not applicable. */
typedef struct segrl_reward_detail {
    int32_t reason;                              /* segrl_reward_reason */
    int32_t num_sources;                         /* combinators: entries of sources[] used */
    float sources[SEGRL_REWARD_MAX_SOURCES];     /* weighted sum / ensemble: each part's score */
    char extracted[SEGRL_REWARD_TEXT_MAX];       /* verifiers: the answer found in the response */
    char normalized[SEGRL_REWARD_TEXT_MAX];      /* verifiers: that answer after normalization */
    char message[SEGRL_REWARD_TEXT_MAX];         /* errors: the reward's error message */
} segrl_reward_detail;

// ----------------------------------------------------------------------------
// the interface a reward implements (custom rewards, plugins)

#define SEGRL_REWARD_ABI_VERSION 1

/* flags of a segrl_reward_impl */
enum {
    /* score() is a pure function of each sample and thread-safe: the batch scorer may split a
     * batch into single samples, run them on its thread pool and give each its time limit.
     * Without this flag score() gets the whole batch once, on the calling thread, with the run
     * options (a combinator passes them on to its parts; the HTTP reward batches requests). */
    SEGRL_REWARD_PER_SAMPLE = 1u << 0,
};

/* Scores samples[0..n) into out_scores[0..n). out_details (may be NULL) has n entries, zeroed
 * by the caller. `run` is never NULL. Returns SEGRL_OK, or a status with segrl_set_error(). A
 * per-sample reward may call segrl_reward_deadline_passed() in long loops and then return early
 * with reason SEGRL_REWARD_TIMEOUT. */
typedef struct segrl_reward_run segrl_reward_run;
typedef segrl_status (*segrl_reward_score_fn)(void *user, const segrl_reward_sample *samples,
                                              int64_t n, const segrl_reward_run *run,
                                              float *out_scores, segrl_reward_detail *out_details);
/* Process rewards: a score per segment. Sample b owns segments k in
 * [seg_offsets[b], seg_offsets[b+1]), spans [seg_starts[k], seg_ends[k]) in positions of
 * response_ids (or bytes of response when the sample has no token ids). out has
 * seg_offsets[n] entries. */
typedef segrl_status (*segrl_reward_segments_fn)(void *user, const segrl_reward_sample *samples,
                                                 int64_t n, const int64_t *seg_offsets,
                                                 const int64_t *seg_starts,
                                                 const int64_t *seg_ends,
                                                 const segrl_reward_run *run, float *out);

/* A reward's function table. name is copied; user is owned by the reward (release frees it). */
typedef struct segrl_reward_impl {
    uint32_t abi_version;                  /* SEGRL_REWARD_ABI_VERSION */
    uint32_t flags;                        /* SEGRL_REWARD_PER_SAMPLE, ... */
    const char *name;                      /* for messages and logs */
    void *user;
    segrl_reward_score_fn score;           /* required */
    segrl_reward_segments_fn score_segments; /* optional (NULL) */
    void (*release)(void *user);           /* optional (NULL) */
} segrl_reward_impl;

typedef struct segrl_reward segrl_reward;

/* A reward from callbacks (new reference, free with segrl_reward_free). The reward owns
 * impl->user from here on (release is called by segrl_reward_free; not on failure). */
SEGRL_API segrl_status segrl_reward_custom(const segrl_reward_impl *impl, segrl_reward **out);

/* Releases the reward (its user data, its parts, a plugin's library). NULL does nothing. */
SEGRL_API void segrl_reward_free(segrl_reward *reward);
/* Borrowed name ("gsm8k", "math", "weighted_sum", the plugin's name...). */
SEGRL_API const char *segrl_reward_name(const segrl_reward *reward);
/* 1 when segrl_reward_score_segments is supported. */
SEGRL_API int segrl_reward_has_segments(const segrl_reward *reward);

// ----------------------------------------------------------------------------
// batch scoring

/* Options of one scoring call. A zeroed struct (or NULL): one thread per online CPU, a 10 s
 * per-sample time limit, failure score 0, errors turned into failure scores. */
struct segrl_reward_run {
    int32_t threads;      /* worker threads; 0: one per online CPU (at most 256) */
    int32_t fail_on_error; /* 1: a reward error makes the call fail (outputs untouched) */
    double time_limit_s;  /* per sample; 0: 10 s; < 0: none */
    float failure_score;  /* the score of a sample that timed out or whose reward failed */
};

/* Scores samples[0..n) into out_scores[0..n) (f32 host memory) and, when out_details is not
 * NULL, out_details[0..n). Per-sample rewards run on a pool of run->threads threads (work handed
 * out in small chunks); each sample gets run->time_limit_s: a sample whose scoring reports the
 * deadline, or returns after it, gets run->failure_score and SEGRL_REWARD_TIMEOUT. A sample whose
 * scoring fails gets failure_score and SEGRL_REWARD_ERROR with the message (unless
 * run->fail_on_error). The built-in verifiers are linear in the input (and check the deadline
 * once they have extracted an answer), so hostile inputs (10^6-character responses, deep or unbalanced braces, huge numbers, invalid
 * UTF-8) end in bounded time and memory. Time limits are cooperative: a custom or plugin reward
 * that never returns cannot be interrupted (C threads cannot be killed safely).
 * Errors: SEGRL_ERR_INVALID (reward NULL, n < 0, samples/out_scores NULL with n > 0, bad run
 * options, or with fail_on_error the reward's own error), SEGRL_ERR_ALLOC. */
SEGRL_API segrl_status segrl_reward_score(segrl_reward *reward, const segrl_reward_sample *samples,
                                          int64_t n, const segrl_reward_run *run,
                                          float *out_scores, segrl_reward_detail *out_details);

/* Segment (process) scores; see segrl_reward_segments_fn for the span convention. Spans are
 * checked (0 <= start < end, seg_offsets non-decreasing from 0). SEGRL_ERR_UNSUPPORTED when the
 * reward has no segment scoring. */
SEGRL_API segrl_status segrl_reward_score_segments(segrl_reward *reward,
                                                   const segrl_reward_sample *samples, int64_t n,
                                                   const int64_t *seg_offsets,
                                                   const int64_t *seg_starts,
                                                   const int64_t *seg_ends,
                                                   const segrl_reward_run *run, float *out);

/* Inside a per-sample score() called by segrl_reward_score: 1 when this sample's time limit has
 * passed (0 outside a scoring call or without a limit). Cheap (a clock read). */
SEGRL_API int segrl_reward_deadline_passed(void);

// ----------------------------------------------------------------------------
// by name

/* Builds a reward by name with a JSON object of options (NULL or "" = defaults):
 *   "gsm8k"        {"correct":1, "incorrect":0, "tolerance":1e-4, "multi_answer_penalty":false,
 *                   "multi_answer_score":-1}
 *   "math"         {"correct":1, "incorrect":0, "tolerance":1e-6}
 *   "format"       {"pattern":"^<think>.*</think>", "match":1, "miss":0, "flags":"s"}
 *   "overlong"     {"max_length":4096, "cache_length":512}
 *   "repetition"   {"n":4, "weight":1, "min_ngrams":1}
 *   "weighted_sum" {"parts":[{"name":..., "options":{...}, "weight":1}, ...]}
 *   "ensemble"     {"parts":[...], "aggregate":"mean"|"median"|"min"|"mean_minus_std",
 *                   "lambda":0.5}
 *   "clip"         {"inner":{"name":..., "options":{...}}, "min":-1, "max":1}
 *   "normalize"    {"inner":{...}, "eps":1e-6}
 *   "par"          {"inner":{...}, "k":1, "ref_key":"ref_rewards"}
 *   "lsc"          {"inner":{...}, "ref":0 | "ref_key":"ref_reward"}
 *   "plugin"       {"path":"./libmyreward.so", "options":{...}}
 *   "http"         {"url":"http://...", "timeout_s":30, "connect_timeout_s":10, "retries":3,
 *                   "backoff_s":0.5, "batch_size":64, "concurrency":1, "segments":false}
 * Unknown names or options, and options of the wrong type, are SEGRL_ERR_INVALID naming them. */
SEGRL_API segrl_status segrl_reward_create(const char *name, const char *options_json,
                                           segrl_reward **out);

// ----------------------------------------------------------------------------
// verifiers

/* GSM8K: the final answer is taken from the last "#### N", else the last "The answer is N",
 * else the last \boxed{N}, else the last number in the response. Commas, currency signs,
 * units and trailing periods are removed; equal when |a - b| <= tolerance * max(1, |b|).
 * With multi_answer_penalty, a response with more than one "####" scores multi_answer_score
 * (reason SEGRL_REWARD_MULTIPLE_ANSWERS), the SPO / VinePPO convention. */
typedef struct segrl_gsm8k_opts {
    float correct;              /* default 1 */
    float incorrect;            /* default 0 (also for no answer / empty) */
    double tolerance;           /* relative, default 1e-4 */
    int32_t multi_answer_penalty; /* default 0 */
    float multi_answer_score;   /* default -1 */
} segrl_gsm8k_opts;
SEGRL_API segrl_gsm8k_opts segrl_gsm8k_defaults(void);
/* NULL opts: defaults. New reference. */
SEGRL_API segrl_status segrl_reward_gsm8k(const segrl_gsm8k_opts *opts, segrl_reward **out);

/* MATH: the last \boxed{...} or \fbox{...} with balanced braces, else "final answer is ...",
 * else the last number; LaTeX normalization and equivalence by string, numeric value, and
 * element-wise for tuples, intervals, sets and matrices (docs/rewards.md lists the rules). */
typedef struct segrl_math_opts {
    float correct;     /* default 1 */
    float incorrect;   /* default 0 */
    double tolerance;  /* relative, default 1e-6 */
} segrl_math_opts;
SEGRL_API segrl_math_opts segrl_math_defaults(void);
SEGRL_API segrl_status segrl_reward_math(const segrl_math_opts *opts, segrl_reward **out);

/* The MATH verifier's pieces, for tests and offline grading. out_equal: 1 when `given` and
 * `reference` (two final answers, not whole responses) are equivalent. tolerance <= 0: 1e-6. */
SEGRL_API segrl_status segrl_math_equivalent(const char *given, const char *reference,
                                             double tolerance, int *out_equal);
/* The normalized form of a final answer (what equivalence by string compares) into buf (NUL-
 * terminated, truncated to cap). */
SEGRL_API segrl_status segrl_math_normalize(const char *answer, char *buf, size_t cap);

// ----------------------------------------------------------------------------
// shaping rewards

/* Format: `match` when the PCRE2 pattern matches the response, else `miss`
 * (reason SEGRL_REWARD_FORMAT_MISMATCH). flags: letters i (caseless), s (dot matches newline),
 * m (multiline), x (extended); NULL = "". The match has a PCRE2 match limit (no catastrophic
 * backtracking hang). */
SEGRL_API segrl_status segrl_reward_format(const char *pattern, const char *flags, float match,
                                           float miss, segrl_reward **out);

/* DAPO soft overlong punishment (Yu et al. 2025, arXiv 2503.14476), with L the response length
 * (num_response_ids when given, else bytes of response), L_max = max_length, L_c = cache_length:
 *   0                                  L <= L_max - L_c
 *   ((L_max - L_c) - L) / L_c          L_max - L_c < L <= L_max
 *   -1                                 L > L_max                                              */
SEGRL_API segrl_status segrl_reward_overlong(int64_t max_length, int64_t cache_length,
                                             segrl_reward **out);

/* Repetition penalty: -weight * (repeated n-grams / n-grams), where an n-gram (of token ids when
 * given, else of whitespace-separated words) is repeated when it occurred earlier in the same
 * response; 0 when the response has fewer than max(1, min_ngrams) n-grams. In [-weight, 0]. */
SEGRL_API segrl_status segrl_reward_repetition(int32_t n, float weight, int32_t min_ngrams,
                                               segrl_reward **out);

// ----------------------------------------------------------------------------
// combinators and transforms. Constructors taking `parts` / `inner` take ownership of them on
// success (segrl_reward_free of the result frees them); on failure the caller still owns them.

/* sum_j weights[j] * part_j; details carry each part's score in sources[] (first
 * SEGRL_REWARD_MAX_SOURCES parts) and the first part's extracted/normalized texts and reason. */
SEGRL_API segrl_status segrl_reward_weighted_sum(segrl_reward *const *parts, const float *weights,
                                                 int32_t num_parts, segrl_reward **out);

typedef enum segrl_ensemble_agg {
    SEGRL_ENSEMBLE_MEAN = 0,
    SEGRL_ENSEMBLE_MEDIAN = 1,
    SEGRL_ENSEMBLE_MIN = 2,
    SEGRL_ENSEMBLE_MEAN_MINUS_STD = 3, /* mean - lambda * std (population std), arXiv 2312.09244 */
} segrl_ensemble_agg;
SEGRL_API segrl_status segrl_reward_ensemble(segrl_reward *const *parts, int32_t num_parts,
                                             int32_t agg, float lambda, segrl_reward **out);
/* The aggregation alone: scores is (num_parts, n) row-major; out (n). */
SEGRL_API segrl_status segrl_ensemble_apply(const float *scores, int32_t num_parts, int64_t n,
                                            int32_t agg, float lambda, float *out);

/* clamp(inner, lo, hi) */
SEGRL_API segrl_status segrl_reward_clip(segrl_reward *inner, float lo, float hi,
                                         segrl_reward **out);

/* PAR (Fu et al. 2025, arXiv 2502.18770): mean_m sigmoid(k * (r - r_ref,m)) with the reference
 * rewards r_ref,m read from the sample metadata's array `ref_key` (NULL: "ref_rewards"); a
 * sample without them gets SEGRL_REWARD_ERROR. */
SEGRL_API segrl_status segrl_reward_par(segrl_reward *inner, float k, const char *ref_key,
                                        segrl_reward **out);
/* The transform alone: r (n), ref (n, m) row-major, out (n). */
SEGRL_API segrl_status segrl_par_apply(const float *r, const float *ref, int64_t n, int64_t m,
                                       float k, float *out);

/* LSC (Wang et al. 2024, arXiv 2402.00742): log sigmoid(r - r_ref), r_ref from the metadata
 * number `ref_key` when ref_key is not NULL, else the constant `ref`. */
SEGRL_API segrl_status segrl_reward_lsc(segrl_reward *inner, float ref, const char *ref_key,
                                        segrl_reward **out);
SEGRL_API segrl_status segrl_lsc_apply(const float *r, const float *ref, int64_t n, float *out);

/* Running mean/std normalization (Welford 1962): each batch first updates the running count,
 * mean and M2 with its scores, then is normalized as (r - mean) / (sqrt(M2 / count) + eps). */
typedef struct segrl_running_stats {
    int64_t count;
    double mean;
    double m2;
} segrl_running_stats;
SEGRL_API void segrl_running_stats_update(segrl_running_stats *s, const float *x, int64_t n);
SEGRL_API double segrl_running_stats_std(const segrl_running_stats *s); /* population */
SEGRL_API segrl_status segrl_reward_normalize(segrl_reward *inner, float eps, segrl_reward **out);
/* Current statistics of a normalize reward (SEGRL_ERR_INVALID for another kind). */
SEGRL_API segrl_status segrl_reward_normalize_stats(const segrl_reward *reward,
                                                    segrl_running_stats *out);

// ----------------------------------------------------------------------------
// plugins

/* A plugin is a shared object exporting, with C linkage:
 *
 *   const uint32_t segrl_reward_plugin_abi = SEGRL_REWARD_ABI_VERSION;
 *   segrl_status segrl_reward_plugin_init(const char *options_json, segrl_reward_impl *out);
 *
 * The loader reads segrl_reward_plugin_abi first and refuses a different version without calling
 * anything ("segrl_reward_plugin: <path>: plugin ABI version 2, this segrl expects 1"); then
 * init fills *out (out->abi_version must match too). An init that fails frees what it allocated
 * (release is not called) and may say why with segrl_set_error; its message is passed on. The
 * library is dlclose'd when the reward is freed, after out->release. */
#define SEGRL_REWARD_PLUGIN_ABI_SYMBOL "segrl_reward_plugin_abi"
#define SEGRL_REWARD_PLUGIN_INIT_SYMBOL "segrl_reward_plugin_init"
typedef segrl_status (*segrl_reward_plugin_init_fn)(const char *options_json,
                                                    segrl_reward_impl *out);
SEGRL_API segrl_status segrl_reward_plugin(const char *path, const char *options_json,
                                           segrl_reward **out);

// ----------------------------------------------------------------------------
// remote reward model over HTTP

/* POSTs batches of samples as JSON to `url` and reads one score per sample (protocol in
 * docs/rewards.md). Zeroed fields take the defaults shown. */
typedef struct segrl_http_opts {
    const char *url;        /* required: http:// or https:// */
    double timeout_s;       /* whole request, default 30 */
    double connect_timeout_s; /* default 10 */
    int32_t retries;        /* extra attempts after a failure, default 3; < 0: none */
    double backoff_s;       /* first retry waits backoff_s, then doubles; default 0.5 */
    int32_t batch_size;     /* samples per request, default 64 */
    int32_t segments;       /* 1: the server also scores segments ("segments" requests) */
    int32_t concurrency;    /* requests in flight at once (batches on their own threads),
                             * default 1, at most 64 */
} segrl_http_opts;
SEGRL_API segrl_status segrl_reward_http(const segrl_http_opts *opts, segrl_reward **out);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_REWARD_H */
