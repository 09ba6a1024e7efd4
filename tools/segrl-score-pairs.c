/* segrl-score-pairs.c — the reward-model evaluation modes of segrl-score (compiled into it by
 * tools/segrl-score-pairs.cmake; segrl-score.c hands over when --pairs or --agreement is given).
 *
 *   segrl-score --pairs PAIRS.jsonl --reward NAME [--options JSON] [--json OUT]
 *   segrl-score --agreement SAMPLES.jsonl --reward NAME [--options JSON]
 *               --reward2 NAME2 [--options2 JSON] [--json OUT]
 *   common: [--threads N] [--time-limit S] [--failure-score X]
 *           [--model DIR [--tokenizer FILE]]   (in-process model rewards: likelihood, log_prob,
 *                                               mean_log_prob, prob, mean_prob; needs libsegrl_torch)
 *
 * --pairs: one JSON object per line {"prompt", "chosen", "rejected", "subset"?, "answer"?,
 * "metadata"?}; the reward scores (prompt, chosen) and (prompt, rejected) and a pair is right when
 * the chosen response scores strictly higher (RewardBench, arXiv 2403.13787; a tie is wrong and
 * counted). Prints the accuracy per subset (in order of first appearance) and over all pairs.
 * --agreement: the samples of segrl-score's usual input ({"prompt", "response", "answer", ...})
 * scored by both rewards; prints Spearman's rho, Kendall's tau-b and the STARC-style distance
 * (segrl/selfreward.h: centered, unit-norm, L2; 0 = the same up to a positive affine map).
 * Rewards are built by name with segrl_selfreward_create (every segrl_reward_create name plus
 * majority_vote), or with --model by segrl_likelihood_reward_create. --json writes the figures.
 * Exit status: 0 ok, 1 error, 2 usage. */
#define _POSIX_C_SOURCE 200809L
#include <segrl/reward.h>
#include <segrl/selfreward.h>
#ifdef SEGRL_SCORE_WITH_TORCH
#include <segrl/likelihood.h>
#endif

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int segrl_score_pairs_main(int argc, char **argv, int *handled);

typedef struct sp_args {
    const char *pairs, *agreement, *reward, *options, *reward2, *options2, *json, *model, *tokenizer;
    segrl_reward_run run;
} sp_args;

static void sp_usage(void) {
    fprintf(stderr,
            "usage: segrl-score --pairs PAIRS.jsonl --reward NAME [--options JSON] [--json OUT]\n"
            "       segrl-score --agreement SAMPLES.jsonl --reward NAME [--options JSON]\n"
            "                   --reward2 NAME [--options2 JSON] [--json OUT]\n"
            "       [--threads N] [--time-limit S] [--failure-score X] [--model DIR [--tokenizer FILE]]\n");
}

static char *sp_dup(const char *s) {
    size_t n = strlen(s ? s : "") + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s ? s : "", n);
    return d;
}

/* a string field, trying alternative keys; NULL when absent */
static const char *sp_str(const cJSON *o, const char *const *keys) {
    for (; *keys; keys++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, *keys);
        if (cJSON_IsString(x)) return x->valuestring;
    }
    return NULL;
}

/* the model a likelihood reward borrows (kept until exit) */
#ifdef SEGRL_SCORE_WITH_TORCH
static segrl_model *sp_model;
static segrl_tokenizer *sp_tok;
#endif

static segrl_status sp_reward(const sp_args *a, const char *name, const char *options,
                              segrl_reward **out) {
#ifdef SEGRL_SCORE_WITH_TORCH
    if (a->model) {
        if (!sp_model) {
            segrl_status st = segrl_model_load(a->model, SEGRL_DTYPE_F32, segrl_cpu(), &sp_model);
            if (st) return st;
            char path[4096];
            if (a->tokenizer) snprintf(path, sizeof path, "%s", a->tokenizer);
            else snprintf(path, sizeof path, "%s/tokenizer.json", a->model);
            st = segrl_tokenizer_load(path, &sp_tok);
            if (st) return st;
        }
        return segrl_likelihood_reward_create(name, options, sp_model, sp_tok, out);
    }
#else
    if (a->model) {
        fprintf(stderr, "segrl-score: --model needs a segrl-score built with libsegrl_torch\n");
        return SEGRL_ERR_UNSUPPORTED;
    }
#endif
    return segrl_selfreward_create(name, options, out);
}

/* reads JSONL into parsed objects (blank lines skipped); NULL on error */
static cJSON **sp_read(const char *path, int64_t *n_out) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "segrl-score: %s: cannot open\n", path);
        return NULL;
    }
    cJSON **v = NULL;
    int64_t n = 0, cap = 0, line = 0;
    char *buf = NULL;
    size_t bcap = 0;
    ssize_t len;
    int bad = 0;
    while ((len = getline(&buf, &bcap, f)) >= 0) {
        line++;
        size_t k = 0;
        while (k < (size_t)len && (buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\n' || buf[k] == '\r')) k++;
        if (k == (size_t)len) continue;
        cJSON *o = cJSON_Parse(buf);
        if (!cJSON_IsObject(o)) {
            fprintf(stderr, "segrl-score: %s:%lld: not a JSON object\n", path, (long long)line);
            cJSON_Delete(o);
            bad = 1;
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            cJSON **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                cJSON_Delete(o);
                bad = 1;
                break;
            }
            v = nv;
        }
        v[n++] = o;
    }
    free(buf);
    if (f != stdin) fclose(f);
    if (bad) {
        for (int64_t i = 0; i < n; i++) cJSON_Delete(v[i]);
        free(v);
        return NULL;
    }
    if (!v) v = malloc(sizeof *v); /* zero lines: a valid empty array */
    *n_out = n;
    return v;
}

static char *sp_metadata(const cJSON *o) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "metadata");
    if (cJSON_IsString(m)) return sp_dup(m->valuestring);
    if (cJSON_IsObject(m)) return cJSON_PrintUnformatted(m);
    return NULL;
}

static int sp_write_json(const char *path, cJSON *root) {
    char *s = cJSON_Print(root);
    FILE *f = s ? fopen(path, "w") : NULL;
    int ok = f && fputs(s, f) >= 0 && fputc('\n', f) != EOF;
    if (f) ok = fclose(f) == 0 && ok;
    cJSON_free(s);
    if (!ok) fprintf(stderr, "segrl-score: %s: cannot write\n", path);
    return ok ? 0 : 1;
}

// ----------------------------------------------------------------------------
// --pairs

static int sp_pairs(const sp_args *a) {
    int64_t n = 0;
    cJSON **rows = sp_read(a->pairs, &n);
    if (!rows) return 1;
    int rc = 1;
    segrl_reward *rw = NULL;
    segrl_reward_sample *smp = calloc((size_t)(2 * n + 1), sizeof *smp);
    char **meta = calloc((size_t)(n + 1), sizeof *meta);
    float *sc = malloc((size_t)(2 * n + 1) * sizeof *sc);
    int32_t *sub = malloc((size_t)(n + 1) * sizeof *sub);
    const char **names = malloc((size_t)(n + 1) * sizeof *names);
    int32_t ns = 0;
    if (!smp || !meta || !sc || !sub || !names) goto done;
    static const char *const kp[] = {"prompt", NULL}, *const kc[] = {"chosen", NULL},
                             *const kr[] = {"rejected", NULL}, *const ka[] = {"answer", "ground_truth", "reference", NULL},
                             *const ks[] = {"subset", NULL};
    for (int64_t i = 0; i < n; i++) {
        const char *c = sp_str(rows[i], kc), *r = sp_str(rows[i], kr);
        if (!c || !r) {
            fprintf(stderr, "segrl-score: %s: pair %lld: needs string \"chosen\" and \"rejected\"\n",
                    a->pairs, (long long)(i + 1));
            goto done;
        }
        meta[i] = sp_metadata(rows[i]);
        smp[i] = (segrl_reward_sample){.prompt = sp_str(rows[i], kp), .response = c,
                                       .answer = sp_str(rows[i], ka), .metadata_json = meta[i]};
        smp[n + i] = smp[i];
        smp[n + i].response = r;
        const char *s = sp_str(rows[i], ks);
        if (!s) s = "all";
        int32_t k = 0;
        while (k < ns && strcmp(names[k], s) != 0) k++;
        if (k == ns) names[ns++] = s;
        sub[i] = k;
    }
    if (sp_reward(a, a->reward, a->options, &rw)) {
        fprintf(stderr, "segrl-score: %s\n", segrl_last_error());
        goto done;
    }
    if (segrl_reward_score(rw, smp, 2 * n, &a->run, sc, NULL)) {
        fprintf(stderr, "segrl-score: %s\n", segrl_last_error());
        goto done;
    }
    int64_t *cnt = malloc((size_t)(3 * (ns + 1)) * sizeof *cnt);
    if (!cnt) goto done;
    int64_t *cor = cnt, *tie = cnt + ns + 1, *tot = cnt + 2 * (ns + 1);
    if (segrl_pairwise_accuracy(sc, sc + n, n, ns ? sub : NULL, ns, cor, tie, tot)) {
        fprintf(stderr, "segrl-score: %s\n", segrl_last_error());
        free(cnt);
        goto done;
    }
    cJSON *root = cJSON_CreateObject(), *subs = cJSON_AddObjectToObject(root, "subsets");
    printf("reward %s, %lld pairs\n", segrl_reward_name(rw), (long long)n);
    printf("%-24s %10s %10s %8s\n", "subset", "accuracy", "correct", "ties");
    for (int32_t k = 0; k <= ns; k++) {
        const char *nm = k < ns ? names[k] : "ALL";
        double acc = tot[k] ? (double)cor[k] / (double)tot[k] : 0.0;
        printf("%-24s %10.6f %5lld/%-5lld %7lld\n", nm, acc, (long long)cor[k], (long long)tot[k],
               (long long)tie[k]);
        cJSON *o = k < ns ? cJSON_AddObjectToObject(subs, nm) : cJSON_AddObjectToObject(root, "all");
        cJSON_AddNumberToObject(o, "accuracy", acc);
        cJSON_AddNumberToObject(o, "correct", (double)cor[k]);
        cJSON_AddNumberToObject(o, "ties", (double)tie[k]);
        cJSON_AddNumberToObject(o, "pairs", (double)tot[k]);
    }
    printf("accuracy %.6f\n", tot[ns] ? (double)cor[ns] / (double)tot[ns] : 0.0);
    free(cnt);
    rc = a->json ? sp_write_json(a->json, root) : 0;
    cJSON_Delete(root);
done:
    segrl_reward_free(rw);
    for (int64_t i = 0; i < n; i++) {
        cJSON_Delete(rows[i]);
        if (meta) free(meta[i]);
    }
    free(rows), free(smp), free(meta), free(sc), free(sub), free(names);
    return rc;
}

// ----------------------------------------------------------------------------
// --agreement

static int sp_agreement(const sp_args *a) {
    int64_t n = 0;
    cJSON **rows = sp_read(a->agreement, &n);
    if (!rows) return 1;
    int rc = 1;
    segrl_reward *r1 = NULL, *r2 = NULL;
    segrl_reward_sample *smp = calloc((size_t)(n + 1), sizeof *smp);
    char **meta = calloc((size_t)(n + 1), sizeof *meta);
    float *s1 = malloc((size_t)(n + 1) * sizeof *s1), *s2 = malloc((size_t)(n + 1) * sizeof *s2);
    if (!smp || !meta || !s1 || !s2) goto done;
    static const char *const kp[] = {"prompt", NULL},
                             *const ky[] = {"response", "completion", "output", NULL},
                             *const ka[] = {"answer", "ground_truth", "reference", NULL};
    for (int64_t i = 0; i < n; i++) {
        meta[i] = sp_metadata(rows[i]);
        smp[i] = (segrl_reward_sample){.prompt = sp_str(rows[i], kp), .response = sp_str(rows[i], ky),
                                       .answer = sp_str(rows[i], ka), .metadata_json = meta[i]};
    }
    if (n < 2) {
        fprintf(stderr, "segrl-score: %s: --agreement needs at least 2 samples\n", a->agreement);
        goto done;
    }
    if (sp_reward(a, a->reward, a->options, &r1) || sp_reward(a, a->reward2, a->options2, &r2) ||
        segrl_reward_score(r1, smp, n, &a->run, s1, NULL) ||
        segrl_reward_score(r2, smp, n, &a->run, s2, NULL)) {
        fprintf(stderr, "segrl-score: %s\n", segrl_last_error());
        goto done;
    }
    double rho = 0, tau = 0, d = 0;
    if (segrl_rank_correlation(s1, s2, n, &rho, &tau) || segrl_starc_distance(s1, s2, n, &d)) {
        fprintf(stderr, "segrl-score: %s\n", segrl_last_error());
        goto done;
    }
    printf("rewards %s vs %s, %lld samples\n", segrl_reward_name(r1), segrl_reward_name(r2),
           (long long)n);
    printf("spearman %.6f\nkendall %.6f\nstarc %.6f\n", rho, tau, d);
    rc = 0;
    if (a->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddNumberToObject(root, "samples", (double)n);
        cJSON_AddNumberToObject(root, "spearman", rho);
        cJSON_AddNumberToObject(root, "kendall", tau);
        cJSON_AddNumberToObject(root, "starc_distance", d);
        rc = sp_write_json(a->json, root);
        cJSON_Delete(root);
    }
done:
    segrl_reward_free(r1);
    segrl_reward_free(r2);
    for (int64_t i = 0; i < n; i++) {
        cJSON_Delete(rows[i]);
        if (meta) free(meta[i]);
    }
    free(rows), free(smp), free(meta), free(s1), free(s2);
    return rc;
}

/* Handles the command line when it asks for --pairs or --agreement (*handled = 1, returns the
 * exit status); otherwise *handled = 0 and segrl-score's own modes run. */
int segrl_score_pairs_main(int argc, char **argv, int *handled) {
    *handled = 0;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--pairs") == 0 || strcmp(argv[i], "--agreement") == 0) *handled = 1;
    if (!*handled) return 0;
    sp_args a;
    memset(&a, 0, sizeof a);
    a.run.fail_on_error = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int more = i + 1 < argc;
        if (!more) {
            sp_usage();
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(s, "--pairs") == 0) a.pairs = v;
        else if (strcmp(s, "--agreement") == 0) a.agreement = v;
        else if (strcmp(s, "--reward") == 0) a.reward = v;
        else if (strcmp(s, "--options") == 0) a.options = v;
        else if (strcmp(s, "--reward2") == 0) a.reward2 = v;
        else if (strcmp(s, "--options2") == 0) a.options2 = v;
        else if (strcmp(s, "--json") == 0) a.json = v;
        else if (strcmp(s, "--model") == 0) a.model = v;
        else if (strcmp(s, "--tokenizer") == 0) a.tokenizer = v;
        else if (strcmp(s, "--threads") == 0) a.run.threads = atoi(v);
        else if (strcmp(s, "--time-limit") == 0) a.run.time_limit_s = atof(v);
        else if (strcmp(s, "--failure-score") == 0) a.run.failure_score = (float)atof(v);
        else {
            fprintf(stderr, "segrl-score: unknown argument %s\n", s);
            sp_usage();
            return 2;
        }
    }
    if (!a.reward || (a.pairs && a.agreement) || (a.agreement && !a.reward2)) {
        sp_usage();
        return 2;
    }
    int rc = a.pairs ? sp_pairs(&a) : sp_agreement(&a);
#ifdef SEGRL_SCORE_WITH_TORCH
    segrl_model_free(sp_model);
    segrl_tokenizer_free(sp_tok);
#endif
    return rc;
}
