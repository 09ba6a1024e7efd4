/* create.c — segrl_reward_create: any reward by name with JSON options (reward.h lists them),
 * so a trainer builds its reward, combinators included, from a config file. Unknown names, unknown
 * keys and keys of the wrong type are errors that name them. */
#include "rw.h"

#include <cjson/cJSON.h>
#include <string.h>

static const char *FN = "segrl_reward_create";
enum { CREATE_DEPTH = 16 };

/* every key of o must be in the NULL-terminated list */
static segrl_status known_keys(const char *name, const cJSON *o, const char *const *keys) {
    const cJSON *it;
    cJSON_ArrayForEach(it, o) {
        int ok = 0;
        for (const char *const *k = keys; *k && !ok; k++) ok = strcmp(*k, it->string) == 0;
        if (!ok) {
            char list[256] = "";
            for (const char *const *k = keys; *k; k++) {
                if (list[0]) strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, *k, sizeof list - strlen(list) - 1);
            }
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: unknown option \"%s\" (known: %s)", FN, name,
                           it->string, list);
        }
    }
    return SEGRL_OK;
}

static segrl_status num(const char *name, const cJSON *o, const char *key, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x) return SEGRL_OK;
    if (cJSON_IsBool(x)) {
        *v = cJSON_IsTrue(x) ? 1 : 0;
        return SEGRL_OK;
    }
    if (!cJSON_IsNumber(x))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: option \"%s\" must be a number", FN, name, key);
    *v = x->valuedouble;
    return SEGRL_OK;
}

static segrl_status str(const char *name, const cJSON *o, const char *key, const char **v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x) return SEGRL_OK;
    if (!cJSON_IsString(x))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: option \"%s\" must be a string", FN, name, key);
    *v = x->valuestring;
    return SEGRL_OK;
}

static segrl_status build(const char *name, const cJSON *o, int depth, segrl_reward **out);

/* {"name": ..., "options": {...}} */
static segrl_status build_spec(const char *ctx, const cJSON *spec, int depth, segrl_reward **out) {
    if (!cJSON_IsObject(spec))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: must be an object {\"name\":..., \"options\":{...}}",
                       FN, ctx);
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(spec, "name");
    if (!cJSON_IsString(nm))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: needs a string \"name\"", FN, ctx);
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(spec, "options");
    if (op && !cJSON_IsObject(op))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: \"options\" must be an object", FN, ctx);
    return build(nm->valuestring, op, depth + 1, out);
}

static segrl_status build_parts(const char *name, const cJSON *o, int depth, int with_w,
                                segrl_reward ***parts, float **w, int32_t *k) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "parts");
    int n = cJSON_GetArraySize(a);
    if (!cJSON_IsArray(a) || n < 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: option \"parts\" must be a non-empty array", FN,
                       name);
    *parts = segrl_malloc((size_t)n * sizeof **parts);
    *w = segrl_malloc((size_t)n * sizeof **w);
    if (!*parts || !*w) {
        segrl_free(*parts);
        segrl_free(*w);
        return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", FN);
    }
    int j = 0;
    const cJSON *spec;
    segrl_status st = SEGRL_OK;
    cJSON_ArrayForEach(spec, a) {
        double wt = 1;
        if (with_w) st = num(name, spec, "weight", &wt);
        if (!st) {
            char ctx[64];
            snprintf(ctx, sizeof ctx, "%s.parts[%d]", name, j);
            st = build_spec(ctx, spec, depth, &(*parts)[j]);
        }
        if (st) break;
        (*w)[j++] = (float)wt;
    }
    if (st) {
        for (int q = 0; q < j; q++) segrl_reward_free((*parts)[q]);
        segrl_free(*parts);
        segrl_free(*w);
        return st;
    }
    *k = n;
    return SEGRL_OK;
}

static segrl_status build_inner(const char *name, const cJSON *o, int depth, segrl_reward **inner) {
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "inner");
    if (!in) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: option \"inner\" is required", FN, name);
    char ctx[64];
    snprintf(ctx, sizeof ctx, "%s.inner", name);
    return build_spec(ctx, in, depth, inner);
}

static segrl_status build(const char *name, const cJSON *o, int depth, segrl_reward **out) {
    static cJSON empty; /* a zeroed cJSON is an empty (invalid-type) item: no keys */
    if (depth > CREATE_DEPTH)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: rewards nested deeper than %d", FN, name,
                       CREATE_DEPTH);
    if (!o) o = &empty;
    segrl_status st;
    if (strcmp(name, "gsm8k") == 0) {
        static const char *const keys[] = {"correct", "incorrect", "tolerance",
                                           "multi_answer_penalty", "multi_answer_score", NULL};
        SG_TRY(known_keys(name, o, keys));
        segrl_gsm8k_opts g = segrl_gsm8k_defaults();
        double c = g.correct, i = g.incorrect, t = g.tolerance, p = 0, m = g.multi_answer_score;
        SG_TRY(num(name, o, "correct", &c));
        SG_TRY(num(name, o, "incorrect", &i));
        SG_TRY(num(name, o, "tolerance", &t));
        SG_TRY(num(name, o, "multi_answer_penalty", &p));
        SG_TRY(num(name, o, "multi_answer_score", &m));
        g.correct = (float)c, g.incorrect = (float)i, g.tolerance = t;
        g.multi_answer_penalty = p != 0, g.multi_answer_score = (float)m;
        return segrl_reward_gsm8k(&g, out);
    }
    if (strcmp(name, "math") == 0) {
        static const char *const keys[] = {"correct", "incorrect", "tolerance", NULL};
        SG_TRY(known_keys(name, o, keys));
        segrl_math_opts g = segrl_math_defaults();
        double c = g.correct, i = g.incorrect, t = g.tolerance;
        SG_TRY(num(name, o, "correct", &c));
        SG_TRY(num(name, o, "incorrect", &i));
        SG_TRY(num(name, o, "tolerance", &t));
        g.correct = (float)c, g.incorrect = (float)i, g.tolerance = t;
        return segrl_reward_math(&g, out);
    }
    if (strcmp(name, "format") == 0) {
        static const char *const keys[] = {"pattern", "flags", "match", "miss", NULL};
        SG_TRY(known_keys(name, o, keys));
        const char *pat = NULL, *fl = NULL;
        double m = 1, x = 0;
        SG_TRY(str(name, o, "pattern", &pat));
        SG_TRY(str(name, o, "flags", &fl));
        SG_TRY(num(name, o, "match", &m));
        SG_TRY(num(name, o, "miss", &x));
        if (!pat) return sg_fail(SEGRL_ERR_INVALID, "%s: format: option \"pattern\" is required", FN);
        return segrl_reward_format(pat, fl, (float)m, (float)x, out);
    }
    if (strcmp(name, "overlong") == 0) {
        static const char *const keys[] = {"max_length", "cache_length", NULL};
        SG_TRY(known_keys(name, o, keys));
        double m = 4096, c = 512;
        SG_TRY(num(name, o, "max_length", &m));
        SG_TRY(num(name, o, "cache_length", &c));
        return segrl_reward_overlong((int64_t)m, (int64_t)c, out);
    }
    if (strcmp(name, "repetition") == 0) {
        static const char *const keys[] = {"n", "weight", "min_ngrams", NULL};
        SG_TRY(known_keys(name, o, keys));
        double n = 4, w = 1, m = 1;
        SG_TRY(num(name, o, "n", &n));
        SG_TRY(num(name, o, "weight", &w));
        SG_TRY(num(name, o, "min_ngrams", &m));
        return segrl_reward_repetition((int32_t)n, (float)w, (int32_t)m, out);
    }
    if (strcmp(name, "weighted_sum") == 0 || strcmp(name, "ensemble") == 0) {
        int sum = name[0] == 'w';
        static const char *const skeys[] = {"parts", NULL};
        static const char *const ekeys[] = {"parts", "aggregate", "lambda", NULL};
        SG_TRY(known_keys(name, o, sum ? skeys : ekeys));
        int32_t agg = SEGRL_ENSEMBLE_MEAN;
        double lambda = 0.5;
        if (!sum) {
            const char *a = "mean";
            SG_TRY(str(name, o, "aggregate", &a));
            SG_TRY(num(name, o, "lambda", &lambda));
            if (strcmp(a, "mean") == 0) agg = SEGRL_ENSEMBLE_MEAN;
            else if (strcmp(a, "median") == 0) agg = SEGRL_ENSEMBLE_MEDIAN;
            else if (strcmp(a, "min") == 0) agg = SEGRL_ENSEMBLE_MIN;
            else if (strcmp(a, "mean_minus_std") == 0) agg = SEGRL_ENSEMBLE_MEAN_MINUS_STD;
            else
                return sg_fail(SEGRL_ERR_INVALID,
                               "%s: ensemble: aggregate \"%s\" (mean, median, min, mean_minus_std)",
                               FN, a);
        }
        segrl_reward **parts = NULL;
        float *w = NULL;
        int32_t k = 0;
        SG_TRY(build_parts(name, o, depth, sum, &parts, &w, &k));
        st = sum ? segrl_reward_weighted_sum(parts, w, k, out)
                 : segrl_reward_ensemble(parts, k, agg, (float)lambda, out);
        if (st)
            for (int32_t j = 0; j < k; j++) segrl_reward_free(parts[j]);
        segrl_free(parts);
        segrl_free(w);
        return st;
    }
    if (strcmp(name, "clip") == 0 || strcmp(name, "normalize") == 0 || strcmp(name, "par") == 0 ||
        strcmp(name, "lsc") == 0) {
        static const char *const ck[] = {"inner", "min", "max", NULL};
        static const char *const nk[] = {"inner", "eps", NULL};
        static const char *const pk[] = {"inner", "k", "ref_key", NULL};
        static const char *const lk[] = {"inner", "ref", "ref_key", NULL};
        const char *const *keys = name[0] == 'c' ? ck : name[0] == 'n' ? nk : name[0] == 'p' ? pk : lk;
        SG_TRY(known_keys(name, o, keys));
        double lo = -1, hi = 1, eps = 1e-6, kk = 1, ref = 0;
        const char *key = NULL;
        SG_TRY(num(name, o, "min", &lo));
        SG_TRY(num(name, o, "max", &hi));
        SG_TRY(num(name, o, "eps", &eps));
        SG_TRY(num(name, o, "k", &kk));
        SG_TRY(num(name, o, "ref", &ref));
        SG_TRY(str(name, o, "ref_key", &key));
        segrl_reward *inner;
        SG_TRY(build_inner(name, o, depth, &inner));
        switch (name[0]) {
        case 'c': st = segrl_reward_clip(inner, (float)lo, (float)hi, out); break;
        case 'n': st = segrl_reward_normalize(inner, (float)eps, out); break;
        case 'p': st = segrl_reward_par(inner, (float)kk, key, out); break;
        default: st = segrl_reward_lsc(inner, (float)ref, key, out); break;
        }
        if (st) segrl_reward_free(inner);
        return st;
    }
    if (strcmp(name, "plugin") == 0) {
        static const char *const keys[] = {"path", "options", NULL};
        SG_TRY(known_keys(name, o, keys));
        const char *path = NULL;
        SG_TRY(str(name, o, "path", &path));
        if (!path) return sg_fail(SEGRL_ERR_INVALID, "%s: plugin: option \"path\" is required", FN);
        const cJSON *po = cJSON_GetObjectItemCaseSensitive(o, "options");
        char *txt = po ? cJSON_PrintUnformatted(po) : NULL;
        st = segrl_reward_plugin(path, txt ? txt : "", out);
        cJSON_free(txt);
        return st;
    }
    if (strcmp(name, "http") == 0) {
        static const char *const keys[] = {"url", "timeout_s", "connect_timeout_s", "retries",
                                           "backoff_s", "batch_size", "concurrency", "segments", NULL};
        SG_TRY(known_keys(name, o, keys));
        segrl_http_opts h;
        memset(&h, 0, sizeof h);
        double t = 0, ct = 0, r = 0, b = 0, bs = 0, sg = 0, cc = 0;
        SG_TRY(str(name, o, "url", &h.url));
        SG_TRY(num(name, o, "timeout_s", &t));
        SG_TRY(num(name, o, "connect_timeout_s", &ct));
        SG_TRY(num(name, o, "retries", &r));
        SG_TRY(num(name, o, "backoff_s", &b));
        SG_TRY(num(name, o, "batch_size", &bs));
        SG_TRY(num(name, o, "segments", &sg));
        SG_TRY(num(name, o, "concurrency", &cc));
        h.timeout_s = t, h.connect_timeout_s = ct, h.backoff_s = b;
        h.retries = cJSON_GetObjectItemCaseSensitive(o, "retries") && r == 0 ? -1 : (int32_t)r;
        h.batch_size = (int32_t)bs, h.segments = sg != 0, h.concurrency = (int32_t)cc;
        return segrl_reward_http(&h, out);
    }
    return sg_fail(SEGRL_ERR_INVALID,
                   "%s: name: unknown reward \"%s\" (gsm8k, math, format, overlong, repetition, "
                   "weighted_sum, ensemble, clip, normalize, par, lsc, plugin, http)",
                   FN, name);
}

segrl_status segrl_reward_create(const char *name, const char *options_json, segrl_reward **out) {
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", FN);
    if (!name) return sg_fail(SEGRL_ERR_INVALID, "%s: name: NULL", FN);
    cJSON *o = NULL;
    if (options_json && *options_json) {
        o = cJSON_Parse(options_json);
        if (!o || !cJSON_IsObject(o)) {
            cJSON_Delete(o);
            return sg_fail(SEGRL_ERR_INVALID, "%s: options_json: not a JSON object", FN);
        }
    }
    segrl_status st = build(name, o, 0, out);
    cJSON_Delete(o);
    return st;
}
