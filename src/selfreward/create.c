/* create.c — segrl_selfreward_create: the group self-rewards by name with JSON options, so a
 * trainer's config picks them like any reward; every other name goes to segrl_reward_create. */
#include "sr.h"

#include <cjson/cJSON.h>
#include <string.h>

static const char *FN = "segrl_selfreward_create";

static segrl_status get_num(const cJSON *o, const char *key, float *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x) return SEGRL_OK;
    if (cJSON_IsBool(x)) *v = cJSON_IsTrue(x) ? 1.0f : 0.0f;
    else if (cJSON_IsNumber(x)) *v = (float)x->valuedouble;
    else return sg_fail(SEGRL_ERR_INVALID, "%s: majority_vote: option \"%s\" must be a number", FN, key);
    return SEGRL_OK;
}

static segrl_status build_vote(const cJSON *o, segrl_reward **out) {
    static const char *const keys[] = {"inner", "agree", "disagree", "no_answer", "miss", "tie",
                                       "min_share", "paired", NULL};
    const cJSON *it;
    cJSON_ArrayForEach(it, o) {
        int ok = 0;
        for (const char *const *k = keys; *k && !ok; k++) ok = strcmp(*k, it->string) == 0;
        if (!ok)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: majority_vote: unknown option \"%s\" (known: inner, agree, disagree, "
                           "no_answer, miss, tie, min_share, paired)", FN, it->string);
    }
    segrl_vote_opts v = segrl_vote_opts_default();
    float paired = 0;
    SG_TRY(get_num(o, "agree", &v.agree));
    SG_TRY(get_num(o, "disagree", &v.disagree));
    SG_TRY(get_num(o, "no_answer", &v.no_answer));
    SG_TRY(get_num(o, "miss", &v.miss));
    SG_TRY(get_num(o, "min_share", &v.min_share));
    SG_TRY(get_num(o, "paired", &paired));
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(o, "tie");
    if (tie) {
        if (cJSON_IsString(tie) && strcmp(tie->valuestring, "first") == 0) v.tie = SEGRL_VOTE_TIE_FIRST;
        else if (cJSON_IsString(tie) && strcmp(tie->valuestring, "none") == 0) v.tie = SEGRL_VOTE_TIE_NONE;
        else return sg_fail(SEGRL_ERR_INVALID, "%s: majority_vote: option \"tie\" must be \"first\" or \"none\"", FN);
    }
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "inner");
    const char *iname = "math";
    char *iopts = NULL;
    if (in) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(in, "name");
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(in, "options");
        if (!cJSON_IsObject(in) || !cJSON_IsString(nm) || (op && !cJSON_IsObject(op)))
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: majority_vote: option \"inner\" must be {\"name\": ..., \"options\": {...}}", FN);
        iname = nm->valuestring;
        if (op && !(iopts = cJSON_PrintUnformatted(op)))
            return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", FN);
    }
    segrl_reward *inner = NULL;
    segrl_status st = segrl_selfreward_create(iname, iopts, &inner);
    cJSON_free(iopts);
    if (st) return st;
    st = segrl_reward_majority_vote(inner, &v, paired != 0, out);
    if (st) segrl_reward_free(inner);
    return st;
}

segrl_status segrl_selfreward_create(const char *name, const char *options_json,
                                     segrl_reward **out) {
    if (!name) return sg_fail(SEGRL_ERR_INVALID, "%s: name: NULL", FN);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", FN);
    if (strcmp(name, "majority_vote") != 0) return segrl_reward_create(name, options_json, out);
    cJSON *o = NULL;
    if (options_json && options_json[0]) {
        o = cJSON_Parse(options_json);
        if (!o || !cJSON_IsObject(o)) {
            cJSON_Delete(o);
            return sg_fail(SEGRL_ERR_INVALID, "%s: majority_vote: options are not a JSON object", FN);
        }
    }
    static cJSON none; /* zeroed: no keys */
    segrl_status st = build_vote(o ? o : &none, out);
    cJSON_Delete(o);
    return st;
}
