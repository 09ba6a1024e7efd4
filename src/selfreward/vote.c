/* vote.c — majority-vote self-rewards: the answers a group's samples give vote, and a sample is
 * rewarded for agreeing with the majority (TTRL, Zuo et al. 2025, arXiv 2504.16084), optionally the
 * majority of a paired group sampled from a rephrased prompt (Co-Reward, arXiv 2508.00410).
 * segrl_majority_vote works on answer strings; segrl_reward_majority_vote wraps any verifier,
 * using its extractor's normalized answer, so it scores a batch like every other reward. */
#include "sr.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

segrl_vote_opts segrl_vote_opts_default(void) {
    segrl_vote_opts o = {.agree = 1.0f, .disagree = 0.0f, .no_answer = 0.0f, .miss = 0.0f,
                         .tie = SEGRL_VOTE_TIE_FIRST, .min_share = 0.0f};
    return o;
}

static int empty(const char *s) { return !s || !s[0]; }

/* first[i]: the lowest index of group [s0, s1) holding the same non-empty answer as i; then
 * the majority's first index, or -1 */
static int64_t group_majority(const char *const *ans, int64_t s0, int64_t s1, int64_t *first,
                              int64_t *count, const segrl_vote_opts *o) {
    int64_t voters = 0;
    for (int64_t i = s0; i < s1; i++) {
        count[i] = 0;
        first[i] = -1;
        if (empty(ans[i])) continue;
        voters++;
        first[i] = i;
        for (int64_t j = s0; j < i; j++)
            if (first[j] == j && strcmp(ans[j], ans[i]) == 0) {
                first[i] = j;
                break;
            }
        count[first[i]]++;
    }
    int64_t best = -1, tied = 0;
    for (int64_t i = s0; i < s1; i++) {
        if (first[i] != i) continue;
        if (best < 0 || count[i] > count[best]) best = i, tied = 0;
        else if (count[i] == count[best]) tied = 1;
    }
    if (best < 0) return -1;
    if (tied && o->tie == SEGRL_VOTE_TIE_NONE) return -1;
    if ((double)count[best] < (double)o->min_share * (double)voters) return -1;
    return best;
}

segrl_status segrl_majority_vote(const char *const *answers, int64_t n,
                                 const int64_t *group_offsets, int64_t num_groups,
                                 const int64_t *judge, const segrl_vote_opts *opts,
                                 float *out_rewards, int64_t *out_majority) {
    static const char *FN = "segrl_majority_vote";
    segrl_vote_opts o = opts ? *opts : segrl_vote_opts_default();
    if (n < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: n: negative", FN);
    if (num_groups < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: num_groups: negative", FN);
    if (n > 0 && !answers) return sg_fail(SEGRL_ERR_INVALID, "%s: answers: NULL", FN);
    if (!group_offsets) return sg_fail(SEGRL_ERR_INVALID, "%s: group_offsets: NULL", FN);
    if (n > 0 && !out_rewards) return sg_fail(SEGRL_ERR_INVALID, "%s: out_rewards: NULL", FN);
    if (o.tie != SEGRL_VOTE_TIE_FIRST && o.tie != SEGRL_VOTE_TIE_NONE)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->tie: unknown value %d", FN, (int)o.tie);
    SG_TRY(sg_check_finite_param(FN, "opts->agree", o.agree));
    SG_TRY(sg_check_finite_param(FN, "opts->disagree", o.disagree));
    SG_TRY(sg_check_finite_param(FN, "opts->no_answer", o.no_answer));
    SG_TRY(sg_check_finite_param(FN, "opts->miss", o.miss));
    SG_TRY(sg_check_finite_param(FN, "opts->min_share", o.min_share));
    if (group_offsets[0] != 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: group_offsets: [0] must be 0", FN);
    for (int64_t g = 0; g < num_groups; g++)
        if (group_offsets[g + 1] < group_offsets[g])
            return sg_fail(SEGRL_ERR_INVALID, "%s: group_offsets: decreasing at [%lld]", FN,
                           (long long)(g + 1));
    if (group_offsets[num_groups] != n)
        return sg_fail(SEGRL_ERR_INVALID, "%s: group_offsets: [%lld] = %lld, must equal n = %lld",
                       FN, (long long)num_groups, (long long)group_offsets[num_groups],
                       (long long)n);
    if (judge)
        for (int64_t g = 0; g < num_groups; g++)
            if (judge[g] < 0 || judge[g] >= num_groups)
                return sg_fail(SEGRL_ERR_INVALID, "%s: judge: [%lld] = %lld outside [0, %lld)", FN,
                               (long long)g, (long long)judge[g], (long long)num_groups);
    size_t bytes = (size_t)(2 * n + num_groups + 1) * sizeof(int64_t);
    int64_t *scratch = segrl_malloc(bytes);
    if (!scratch) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory (%zu bytes)", FN, bytes);
    int64_t *first = scratch, *count = scratch + n, *maj = scratch + 2 * n;
    for (int64_t g = 0; g < num_groups; g++)
        maj[g] = group_majority(answers, group_offsets[g], group_offsets[g + 1], first, count, &o);
    for (int64_t g = 0; g < num_groups; g++) {
        int64_t m = maj[judge ? judge[g] : g];
        for (int64_t i = group_offsets[g]; i < group_offsets[g + 1]; i++) {
            if (empty(answers[i])) out_rewards[i] = o.no_answer;
            else if (m < 0) out_rewards[i] = o.miss;
            else out_rewards[i] = strcmp(answers[i], answers[m]) == 0 ? o.agree : o.disagree;
        }
    }
    if (out_majority)
        for (int64_t g = 0; g < num_groups; g++) out_majority[g] = maj[g];
    segrl_free(scratch);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// the reward combinator

typedef struct vote_reward {
    segrl_reward *inner;
    segrl_vote_opts o;
    int32_t paired;
} vote_reward;

/* metadata number `key` of a sample: 1 found, 0 absent, -1 malformed */
static int meta_number(const char *meta, const char *key, double *v) {
    if (empty(meta)) return 0;
    cJSON *j = cJSON_Parse(meta);
    if (!j) return -1;
    int r = 0;
    const cJSON *x = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, key) : NULL;
    if (!cJSON_IsObject(j)) r = -1;
    else if (x && cJSON_IsNumber(x)) *v = x->valuedouble, r = 1;
    else if (x) r = -1;
    cJSON_Delete(j);
    return r;
}

typedef struct vote_item {
    double group;
    int64_t idx;
} vote_item;

static int cmp_item(const void *a, const void *b) {
    const vote_item *x = a, *y = b;
    if (x->group != y->group) return x->group < y->group ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static segrl_status vote_score(void *user, const segrl_reward_sample *s, int64_t n,
                               const segrl_reward_run *run, float *out_scores,
                               segrl_reward_detail *out_details) {
    static const char *FN = "majority_vote";
    vote_reward *v = user;
    if (n == 0) return SEGRL_OK;
    segrl_status st = SEGRL_OK;
    /* buffers: inner samples, inner scores and details, answers, grouping */
    segrl_reward_sample *is = segrl_malloc((size_t)n * sizeof *is);
    float *isc = segrl_malloc((size_t)n * sizeof *isc);
    segrl_reward_detail *idt = segrl_malloc((size_t)n * sizeof *idt);
    const char **ans = segrl_malloc((size_t)n * sizeof *ans);
    vote_item *items = segrl_malloc((size_t)n * sizeof *items);
    double *pair = segrl_malloc((size_t)n * sizeof *pair);
    int64_t *order = segrl_malloc((size_t)n * sizeof *order);
    int64_t *goff = segrl_malloc((size_t)(n + 1) * sizeof *goff);
    int64_t *judge = segrl_malloc((size_t)n * sizeof *judge);
    float *r = segrl_malloc((size_t)n * sizeof *r);
    if (!is || !isc || !idt || !ans || !items || !pair || !order || !goff || !judge || !r) {
        st = sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", FN);
        goto done;
    }
    memset(idt, 0, (size_t)n * sizeof *idt);
    for (int64_t i = 0; i < n; i++) {
        is[i] = s[i];
        if (empty(s[i].answer)) is[i].answer = "0"; /* a reference the verifiers accept */
    }
    st = segrl_reward_score(v->inner, is, n, run, isc, idt);
    if (st) goto done;
    /* groups: metadata "group" numbers, else runs of equal prompts */
    int64_t with_group = 0;
    for (int64_t i = 0; i < n; i++) {
        double gv = 0;
        int k = meta_number(s[i].metadata_json, "group", &gv);
        if (k < 0) {
            st = sg_fail(SEGRL_ERR_INVALID, "%s: sample %lld: malformed metadata or non-number \"group\"",
                         FN, (long long)i);
            goto done;
        }
        with_group += k;
        items[i].group = gv;
        items[i].idx = i;
        pair[i] = 0;
        if (v->paired) {
            k = meta_number(s[i].metadata_json, "pair_group", &pair[i]);
            if (k != 1) {
                st = sg_fail(SEGRL_ERR_INVALID, "%s: sample %lld: paired voting needs a metadata number "
                             "\"pair_group\"", FN, (long long)i);
                goto done;
            }
        }
    }
    if (with_group != 0 && with_group != n) {
        st = sg_fail(SEGRL_ERR_INVALID, "%s: %lld of %lld samples have a metadata \"group\": all or none",
                     FN, (long long)with_group, (long long)n);
        goto done;
    }
    if (v->paired && with_group == 0) {
        st = sg_fail(SEGRL_ERR_INVALID, "%s: paired voting needs metadata \"group\" numbers", FN);
        goto done;
    }
    if (with_group == 0) { /* runs of consecutive equal prompts */
        double g = 0;
        for (int64_t i = 0; i < n; i++) {
            const char *p = s[i].prompt ? s[i].prompt : "";
            const char *q = i ? (s[i - 1].prompt ? s[i - 1].prompt : "") : NULL;
            if (i && strcmp(p, q) != 0) g += 1;
            items[i].group = g;
        }
    }
    qsort(items, (size_t)n, sizeof *items, cmp_item); /* stable by index within a group */
    int64_t G = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i == 0 || items[i].group != items[i - 1].group) goff[G++] = i;
        order[i] = items[i].idx;
        const segrl_reward_detail *d = &idt[items[i].idx];
        ans[i] = d->normalized[0] ? d->normalized : d->extracted;
    }
    goff[G] = n;
    for (int64_t g = 0; g < G; g++) {
        judge[g] = g;
        if (!v->paired) continue;
        double want = pair[items[goff[g]].idx];
        int64_t found = -1;
        for (int64_t h = 0; h < G && found < 0; h++)
            if (items[goff[h]].group == want) found = h;
        if (found < 0) {
            st = sg_fail(SEGRL_ERR_INVALID, "%s: group %g: its pair_group %g is not in the batch", FN,
                         items[goff[g]].group, want);
            goto done;
        }
        for (int64_t i = goff[g]; i < goff[g + 1]; i++)
            if (pair[items[i].idx] != want) {
                st = sg_fail(SEGRL_ERR_INVALID, "%s: group %g: samples name different pair_groups", FN,
                             items[goff[g]].group);
                goto done;
            }
        judge[g] = found;
    }
    st = segrl_majority_vote(ans, n, goff, G, judge, &v->o, r, NULL);
    if (st) goto done;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = order[i];
        out_scores[k] = r[i];
        if (out_details) {
            segrl_reward_detail *d = &out_details[k];
            memcpy(d->extracted, idt[k].extracted, sizeof d->extracted);
            memcpy(d->normalized, idt[k].normalized, sizeof d->normalized);
            d->num_sources = 1;
            d->sources[0] = isc[k];
            d->reason = empty(ans[i]) ? SEGRL_REWARD_NO_ANSWER
                        : r[i] == v->o.agree && v->o.agree != v->o.disagree ? SEGRL_REWARD_OK
                                                                            : SEGRL_REWARD_WRONG;
        }
    }
done:
    segrl_free(is), segrl_free(isc), segrl_free(idt), segrl_free(ans), segrl_free(items);
    segrl_free(pair), segrl_free(order), segrl_free(goff), segrl_free(judge), segrl_free(r);
    return st;
}

static void vote_release(void *user) {
    vote_reward *v = user;
    segrl_reward_free(v->inner);
    segrl_free(v);
}

segrl_status segrl_reward_majority_vote(segrl_reward *inner, const segrl_vote_opts *opts,
                                        int32_t paired, segrl_reward **out) {
    static const char *FN = "segrl_reward_majority_vote";
    if (!inner) return sg_fail(SEGRL_ERR_INVALID, "%s: inner: NULL", FN);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", FN);
    segrl_vote_opts o = opts ? *opts : segrl_vote_opts_default();
    if (o.tie != SEGRL_VOTE_TIE_FIRST && o.tie != SEGRL_VOTE_TIE_NONE)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->tie: unknown value %d", FN, (int)o.tie);
    float vals[5] = {o.agree, o.disagree, o.no_answer, o.miss, o.min_share};
    for (int i = 0; i < 5; i++)
        if (!isfinite(vals[i]))
            return sg_fail(SEGRL_ERR_INVALID, "%s: opts: a value is not finite", FN);
    vote_reward *v = segrl_malloc(sizeof *v);
    if (!v) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", FN);
    v->inner = inner, v->o = o, v->paired = paired != 0;
    segrl_reward_impl impl = {.abi_version = SEGRL_REWARD_ABI_VERSION, .flags = 0,
                              .name = "majority_vote", .user = v, .score = vote_score,
                              .release = vote_release};
    segrl_status st = segrl_reward_custom(&impl, out);
    if (st) segrl_free(v); /* the caller keeps inner */
    return st;
}
