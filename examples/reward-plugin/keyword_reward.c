/* keyword_reward.c — an example segrl reward plugin.
 *
 * Scores a response by how often it uses a keyword (options {"keyword": "therefore", "cap": 3}):
 *   score = min(count, cap) / cap
 * and, as a process reward, each segment by the fraction of its span that is inside the response
 * (a toy: real plugins run a model or a checker here).
 *
 * Build it against an installed segrl (one file, no other dependency):
 *   cc -std=c11 -shared -fPIC keyword_reward.c -o libkeyword_reward.so $(pkg-config --cflags --libs segrl)
 * Use it:
 *   segrl_reward_create("plugin", "{\"path\": \"./libkeyword_reward.so\", \"options\": {\"keyword\": \"so\"}}", &r);
 *   segrl-score --reward plugin --options '{"path": "./libkeyword_reward.so"}' --in data.jsonl
 *
 * The two exported symbols are the whole ABI (docs/rewards.md, "Plugins"). */
#include <segrl/reward.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a test builds this file a second time with another value, to see it refused */
#ifndef KEYWORD_PLUGIN_ABI
#define KEYWORD_PLUGIN_ABI SEGRL_REWARD_ABI_VERSION
#endif

#if defined(__GNUC__)
#define PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define PLUGIN_EXPORT
#endif

PLUGIN_EXPORT const uint32_t segrl_reward_plugin_abi = KEYWORD_PLUGIN_ABI;

typedef struct keyword {
    char word[64];
    int cap;
} keyword;

static segrl_status kw_score(void *user, const segrl_reward_sample *s, int64_t n,
                             const segrl_reward_run *run, float *out, segrl_reward_detail *det) {
    (void)run;
    const keyword *k = user;
    size_t wl = strlen(k->word);
    for (int64_t i = 0; i < n; i++) {
        const char *r = s[i].response ? s[i].response : "";
        int count = 0;
        for (const char *p = strstr(r, k->word); p && count < k->cap; p = strstr(p + wl, k->word))
            count++;
        out[i] = (float)count / (float)k->cap;
        if (det) {
            det[i].reason = count ? SEGRL_REWARD_OK : SEGRL_REWARD_NO_ANSWER;
            strncpy(det[i].extracted, count ? k->word : "", SEGRL_REWARD_TEXT_MAX - 1);
        }
    }
    return SEGRL_OK;
}

static segrl_status kw_segments(void *user, const segrl_reward_sample *s, int64_t n,
                                const int64_t *off, const int64_t *st, const int64_t *en,
                                const segrl_reward_run *run, float *out) {
    (void)user, (void)run;
    for (int64_t b = 0; b < n; b++) {
        int64_t len = s[b].num_response_ids > 0 ? s[b].num_response_ids
                                                : (int64_t)strlen(s[b].response ? s[b].response : "");
        for (int64_t k = off[b]; k < off[b + 1]; k++) {
            int64_t e = en[k] < len ? en[k] : len;
            out[k] = e > st[k] ? (float)(e - st[k]) / (float)(en[k] - st[k]) : 0.0f;
        }
    }
    return SEGRL_OK;
}

/* the value of "key": "..." or "key": number in a flat JSON object (enough for this example) */
static const char *find_value(const char *json, const char *key) {
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(json, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ' || *p == ':') p++;
    return p;
}

PLUGIN_EXPORT segrl_status segrl_reward_plugin_init(const char *options_json, segrl_reward_impl *out) {
    keyword *k = calloc(1, sizeof *k);
    if (!k) return segrl_set_error(SEGRL_ERR_ALLOC, "keyword_reward: out of memory");
    strcpy(k->word, "therefore");
    k->cap = 3;
    const char *v = find_value(options_json, "keyword");
    if (v) {
        if (*v != '"') {
            free(k);
            return segrl_set_error(SEGRL_ERR_INVALID, "keyword_reward: options: \"keyword\" must be a string");
        }
        size_t i = 0;
        for (v++; *v && *v != '"' && i + 1 < sizeof k->word; v++) k->word[i++] = *v;
        k->word[i] = '\0';
        if (i == 0) {
            free(k);
            return segrl_set_error(SEGRL_ERR_INVALID, "keyword_reward: options: \"keyword\" is empty");
        }
    }
    v = find_value(options_json, "cap");
    if (v) {
        k->cap = atoi(v);
        if (k->cap < 1) {
            free(k);
            return segrl_set_error(SEGRL_ERR_INVALID, "keyword_reward: options: \"cap\" must be >= 1");
        }
    }
    out->abi_version = SEGRL_REWARD_ABI_VERSION;
    out->flags = SEGRL_REWARD_PER_SAMPLE;
    out->name = "keyword";
    out->user = k;
    out->score = kw_score;
    out->score_segments = kw_segments;
    out->release = free;
    return SEGRL_OK;
}
