/* segrl-score — grade model outputs offline with any segrl reward.
 *
 *   segrl-score --reward math --in outputs.jsonl [--options JSON] [--out graded.jsonl]
 *               [--threads N] [--time-limit S] [--failure-score X] [--chunk N] [--quiet]
 *   segrl-score --generate gsm8k|math N FILE [--seed S] [--wrong P]
 *   segrl-score --pairs PAIRS.jsonl | --agreement SAMPLES.jsonl ...   (tools/segrl-score-pairs.c)
 *
 * Input: one JSON object per line with "response" and "answer" (the reference), optionally
 * "prompt", "metadata" (an object or a JSON string) and "response_ids" (an array of integers);
 * "completion" or "output" are read when "response" is absent, "ground_truth" or "reference"
 * when "answer" is.
 * Prints the number of lines, accuracy (the fraction whose reason is "ok": a correct answer for the
 * verifiers), the mean score, a count per reason, and the throughput of the scoring calls alone
 * and of the whole run (reading and parsing included), and the CPU time of the scoring calls.
 * --out writes one JSON line per input line:
 * {"score", "extracted", "normalized", "reason"} plus "message" and "sources" when present; a line
 * that is not valid JSON gets {"error": ...} and the reason "invalid_line".
 * --generate writes N synthetic GSM8K-style or MATH-style graded responses (a fraction P, default
 * 0.3, wrong) for tests and throughput measurements. Exit status: 0 ok, 1 error, 2 usage. */
#define _POSIX_C_SOURCE 200809L
#include <segrl/reward.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --pairs / --agreement (reward-model evaluation): tools/segrl-score-pairs.c */
int segrl_score_pairs_main(int argc, char **argv, int *handled);

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the whole process (all threads): with other jobs on the machine, samples per
 * CPU-second is the figure that does not depend on how much of the machine we got */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(void) {
    fprintf(stderr,
            "usage: segrl-score --reward NAME --in FILE.jsonl [--options JSON] [--out FILE]\n"
            "                   [--threads N] [--time-limit S] [--failure-score X] [--chunk N] [--quiet]\n"
            "       segrl-score --generate gsm8k|math N FILE [--seed S] [--wrong P]\n"
            "       segrl-score --pairs PAIRS.jsonl --reward NAME [--options JSON] [--model DIR]\n"
            "       segrl-score --agreement SAMPLES.jsonl --reward A --reward2 B [--options2 JSON]\n"
            "rewards: gsm8k math format overlong repetition weighted_sum ensemble clip normalize par\n"
            "         lsc plugin http (options: include/segrl/reward.h, segrl_reward_create)\n");
}

// ----------------------------------------------------------------------------
// synthetic data

static uint64_t rng = 0x5eed;
static uint64_t next_u64(void) {
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int rnd(int lo, int hi) { return lo + (int)(next_u64() % (uint64_t)(hi - lo + 1)); }
static double unif(void) { return (double)(next_u64() >> 11) * (1.0 / 9007199254740992.0); }

static const char *NAMES[] = {"Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Ken", "Alexis"};
static const char *ITEMS[] = {"clips", "apples", "dollars", "pages", "marbles", "cookies", "miles", "eggs"};

/* a GSM8K-like chain of arithmetic ending in one of several answer styles */
static void gen_gsm8k(FILE *f, int wrong) {
    char resp[2048], ref[64];
    int a = rnd(2, 500), b = rnd(2, 500), c = rnd(2, 20);
    long ans = (long)(a + b) * c;
    const char *nm = NAMES[rnd(0, 7)], *it = ITEMS[rnd(0, 7)];
    snprintf(ref, sizeof ref, "%ld", ans);
    long got = wrong ? ans + rnd(1, 9) * (rnd(0, 1) ? 1 : -1) : ans;
    int k = snprintf(resp, sizeof resp,
                     "%s has %d %s and buys %d more, so %s has %d + %d = <<%d+%d=%d>>%d %s. "
                     "Each of the %d boxes holds that many, so the total is %d * %d = <<%d*%d=%ld>>%ld %s. ",
                     nm, a, it, b, nm, a, b, a, b, a + b, a + b, it, c, a + b, c, a + b, c, ans, ans, it);
    for (int s = 0, ns = rnd(0, 3); s < ns; s++)
        k += snprintf(resp + k, sizeof resp - (size_t)k,
                      "We double-check the count of %s: %d groups of %d make sense. ", it, c, a + b);
    char num[32];
    if (got >= 1000 && rnd(0, 1)) snprintf(num, sizeof num, "%ld,%03ld", got / 1000, got % 1000);
    else snprintf(num, sizeof num, "%ld", got);
    switch (rnd(0, 3)) {
    case 0: snprintf(resp + k, sizeof resp - (size_t)k, "\n#### %s", num); break;
    case 1: snprintf(resp + k, sizeof resp - (size_t)k, "The answer is %s.", num); break;
    case 2: snprintf(resp + k, sizeof resp - (size_t)k, "So the answer is $\\boxed{%s}$.", num); break;
    default: snprintf(resp + k, sizeof resp - (size_t)k, "%s ends up with %s %s.", nm, num, it); break;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "prompt", "A word problem about counting.");
    cJSON_AddStringToObject(o, "response", resp);
    cJSON_AddStringToObject(o, "answer", ref);
    char *t = cJSON_PrintUnformatted(o);
    fprintf(f, "%s\n", t);
    cJSON_free(t);
    cJSON_Delete(o);
}

/* a MATH-like solution ending in \boxed{} with one of several answer types */
static void gen_math(FILE *f, int wrong) {
    char resp[3072], ref[256], ans[256];
    int p = rnd(1, 40), q = rnd(2, 40), r = rnd(2, 30);
    int d = wrong ? rnd(1, 3) : 0;
    switch (rnd(0, 7)) {
    case 0: snprintf(ref, sizeof ref, "\\frac{%d}{%d}", p, q);
            snprintf(ans, sizeof ans, "\\dfrac{%d}{%d}", p + d, q); break;
    case 1: snprintf(ref, sizeof ref, "%d\\sqrt{%d}", p, r);
            snprintf(ans, sizeof ans, "\\sqrt{%d}", p * p * r + d); break;
    case 2: snprintf(ref, sizeof ref, "(%d,%d)", p, -q);
            snprintf(ans, sizeof ans, "\\left( %d, %d \\right)", p, -q - d); break;
    case 3: snprintf(ref, sizeof ref, "[%d,%d)", -p, q);
            snprintf(ans, sizeof ans, "[%d, %d)", -p - d, q); break;
    case 4: snprintf(ref, sizeof ref, "%d^\\circ", p * 3);
            snprintf(ans, sizeof ans, "%d^{\\circ}", p * 3 + d); break;
    case 5: snprintf(ref, sizeof ref, "\\frac{%d\\pi}{%d}", p, q);
            snprintf(ans, sizeof ans, "\\frac{%d}{%d}\\pi", p + d, q); break;
    case 6: snprintf(ref, sizeof ref, "%d", p * q * r);
            snprintf(ans, sizeof ans, "%d", p * q * r + d); break;
    default: snprintf(ref, sizeof ref, "\\begin{pmatrix} %d \\\\ %d \\end{pmatrix}", p, q);
             snprintf(ans, sizeof ans, "\\begin{pmatrix}%d\\\\%d\\end{pmatrix}", p, q + d); break;
    }
    int k = snprintf(resp, sizeof resp,
                     "We start from the equation $x^2 - %dx + %d = 0$. By the quadratic formula, "
                     "$$x = \\frac{%d \\pm \\sqrt{%d^2 - 4 \\cdot %d}}{2}.$$ ",
                     p + q, p * q, p + q, p + q, p * q);
    for (int s = 0, ns = rnd(1, 4); s < ns; s++)
        k += snprintf(resp + k, sizeof resp - (size_t)k,
                      "Substituting $y = %d$ gives $\\left(%d + y\\right)^{2} = %d$, and "
                      "$\\frac{%d}{%d}$ simplifies accordingly. ",
                      r + s, s, (r + s) * (r + s), p, q);
    snprintf(resp + k, sizeof resp - (size_t)k, "Therefore the answer is $\\boxed{%s}$.", ans);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "prompt", "A competition problem.");
    cJSON_AddStringToObject(o, "response", resp);
    cJSON_AddStringToObject(o, "answer", ref);
    char *t = cJSON_PrintUnformatted(o);
    fprintf(f, "%s\n", t);
    cJSON_free(t);
    cJSON_Delete(o);
}

static int generate(const char *kind, long n, const char *path, double pwrong) {
    int math = strcmp(kind, "math") == 0;
    if (!math && strcmp(kind, "gsm8k") != 0) {
        fprintf(stderr, "segrl-score: --generate: kind must be gsm8k or math\n");
        return 2;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return 1;
    }
    for (long i = 0; i < n; i++) {
        int wrong = unif() < pwrong;
        if (math) gen_math(f, wrong);
        else gen_gsm8k(f, wrong);
    }
    if (fclose(f) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// scoring

typedef struct line {
    cJSON *json;     /* NULL: invalid line */
    char *meta;      /* printed metadata object, owned */
    int32_t *ids;
    char err[96];
} line;

static void parse_line(char *text, size_t len, line *ln, segrl_reward_sample *s) {
    memset(ln, 0, sizeof *ln);
    memset(s, 0, sizeof *s);
    ln->json = cJSON_ParseWithLength(text, len);
    if (!ln->json || !cJSON_IsObject(ln->json)) {
        snprintf(ln->err, sizeof ln->err, "not a JSON object");
        cJSON_Delete(ln->json);
        ln->json = NULL;
        return;
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(ln->json, "prompt");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(ln->json, "response");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(ln->json, "answer");
    /* the names other dumps use: completion / output, ground_truth / reference */
    if (!r) r = cJSON_GetObjectItemCaseSensitive(ln->json, "completion");
    if (!r) r = cJSON_GetObjectItemCaseSensitive(ln->json, "output");
    if (!a) a = cJSON_GetObjectItemCaseSensitive(ln->json, "ground_truth");
    if (!a) a = cJSON_GetObjectItemCaseSensitive(ln->json, "reference");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(ln->json, "metadata");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(ln->json, "response_ids");
    if (!cJSON_IsString(r)) {
        snprintf(ln->err, sizeof ln->err, "\"response\" missing or not a string");
        cJSON_Delete(ln->json);
        ln->json = NULL;
        return;
    }
    s->response = r->valuestring;
    s->prompt = cJSON_IsString(p) ? p->valuestring : NULL;
    if (cJSON_IsString(a)) s->answer = a->valuestring;
    else if (cJSON_IsNumber(a)) { /* numeric answers: print them as text */
        char buf[64];
        snprintf(buf, sizeof buf, "%.17g", a->valuedouble);
        cJSON *txt = cJSON_CreateString(buf);
        cJSON_ReplaceItemInObjectCaseSensitive(ln->json, a->string, txt);
        s->answer = txt->valuestring;
    }
    if (cJSON_IsString(m)) s->metadata_json = m->valuestring;
    else if (cJSON_IsObject(m)) s->metadata_json = ln->meta = cJSON_PrintUnformatted(m);
    if (cJSON_IsArray(ids)) {
        int n = cJSON_GetArraySize(ids);
        ln->ids = malloc((size_t)(n ? n : 1) * sizeof *ln->ids);
        int k = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, ids) ln->ids[k++] = (int32_t)x->valuedouble;
        s->response_ids = ln->ids;
        s->num_response_ids = n;
    }
}

enum { NREASONS = 13 }; /* segrl_reward_reason values + invalid_line */

int main(int argc, char **argv) {
    int pairs_mode = 0;
    int pairs_rc = segrl_score_pairs_main(argc, argv, &pairs_mode);
    if (pairs_mode) return pairs_rc;
    const char *reward = NULL, *options = NULL, *in = NULL, *outp = NULL;
    segrl_reward_run run = {0, 0, 0, 0.0f};
    long chunk = 16384;
    int quiet = 0;
    double pwrong = 0.3;
    const char *gen_kind = NULL, *gen_path = NULL;
    long gen_n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (strcmp(a, "--reward") == 0 && more) reward = argv[++i];
        else if (strcmp(a, "--options") == 0 && more) options = argv[++i];
        else if (strcmp(a, "--in") == 0 && more) in = argv[++i];
        else if (strcmp(a, "--out") == 0 && more) outp = argv[++i];
        else if (strcmp(a, "--threads") == 0 && more) run.threads = atoi(argv[++i]);
        else if (strcmp(a, "--time-limit") == 0 && more) run.time_limit_s = atof(argv[++i]);
        else if (strcmp(a, "--failure-score") == 0 && more) run.failure_score = (float)atof(argv[++i]);
        else if (strcmp(a, "--chunk") == 0 && more) chunk = atol(argv[++i]);
        else if (strcmp(a, "--seed") == 0 && more) rng = strtoull(argv[++i], NULL, 10);
        else if (strcmp(a, "--wrong") == 0 && more) pwrong = atof(argv[++i]);
        else if (strcmp(a, "--quiet") == 0) quiet = 1;
        else if (strcmp(a, "--generate") == 0 && i + 3 < argc) {
            gen_kind = argv[++i];
            gen_n = atol(argv[++i]);
            gen_path = argv[++i];
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage();
            return 0;
        } else {
            fprintf(stderr, "segrl-score: unknown or incomplete argument %s\n", a);
            usage();
            return 2;
        }
    }
    if (gen_kind) return generate(gen_kind, gen_n, gen_path, pwrong);
    if (!reward || !in || chunk < 1) {
        usage();
        return 2;
    }
    segrl_reward *r;
    if (segrl_reward_create(reward, options, &r) != SEGRL_OK) {
        fprintf(stderr, "segrl-score: %s\n", segrl_last_error());
        return 1;
    }
    FILE *f = strcmp(in, "-") == 0 ? stdin : fopen(in, "r");
    if (!f) {
        perror(in);
        segrl_reward_free(r);
        return 1;
    }
    FILE *out = NULL;
    if (outp && !(out = fopen(outp, "w"))) {
        perror(outp);
        segrl_reward_free(r);
        return 1;
    }
    char **texts = calloc((size_t)chunk, sizeof *texts);
    size_t *caps = calloc((size_t)chunk, sizeof *caps);
    line *lines = calloc((size_t)chunk, sizeof *lines);
    segrl_reward_sample *smp = calloc((size_t)chunk, sizeof *smp);
    segrl_reward_sample *valid = calloc((size_t)chunk, sizeof *valid);
    float *scores = calloc((size_t)chunk, sizeof *scores);
    segrl_reward_detail *det = calloc((size_t)chunk, sizeof *det);
    if (!texts || !caps || !lines || !smp || !valid || !scores || !det) {
        fprintf(stderr, "segrl-score: out of memory\n");
        return 1;
    }
    long counts[NREASONS] = {0};
    long total = 0, lineno = 0;
    double sum = 0, t_score = 0, c_score = 0, t0 = now_s();
    int rc = 0, eof = 0;
    while (!eof && rc == 0) {
        long n = 0;
        ssize_t len;
        while (n < chunk) {
            len = getline(&texts[n], &caps[n], f);
            if (len < 0) {
                eof = 1;
                break;
            }
            lineno++;
            size_t l = (size_t)len;
            while (l > 0 && (texts[n][l - 1] == '\n' || texts[n][l - 1] == '\r')) l--;
            if (l == 0) continue; /* blank lines are skipped */
            parse_line(texts[n], l, &lines[n], &smp[n]);
            n++;
        }
        long nv = 0;
        for (long i = 0; i < n; i++)
            if (lines[i].json) valid[nv++] = smp[i];
        double ts = now_s(), cs = cpu_s();
        if (segrl_reward_score(r, valid, nv, &run, scores, det) != SEGRL_OK) {
            fprintf(stderr, "segrl-score: %s\n", segrl_last_error());
            rc = 1;
        }
        t_score += now_s() - ts;
        c_score += cpu_s() - cs;
        for (long i = 0, v = 0; i < n && rc == 0; i++) {
            total++;
            if (!lines[i].json) {
                counts[NREASONS - 1]++;
                if (out) {
                    cJSON *o = cJSON_CreateObject();
                    cJSON_AddStringToObject(o, "error", lines[i].err);
                    cJSON_AddStringToObject(o, "reason", "invalid_line");
                    char *t = cJSON_PrintUnformatted(o);
                    fprintf(out, "%s\n", t);
                    cJSON_free(t);
                    cJSON_Delete(o);
                }
                continue;
            }
            const segrl_reward_detail *d = &det[v];
            float sc = scores[v++];
            sum += sc;
            if (d->reason >= 0 && d->reason < NREASONS - 1) counts[d->reason]++;
            if (out) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "score", sc);
                cJSON_AddStringToObject(o, "extracted", d->extracted);
                cJSON_AddStringToObject(o, "normalized", d->normalized);
                cJSON_AddStringToObject(o, "reason", segrl_reward_reason_name(d->reason));
                if (d->message[0]) cJSON_AddStringToObject(o, "message", d->message);
                if (d->num_sources > 0) {
                    cJSON *a = cJSON_AddArrayToObject(o, "sources");
                    for (int j = 0; j < d->num_sources; j++)
                        cJSON_AddItemToArray(a, cJSON_CreateNumber(d->sources[j]));
                }
                char *t = cJSON_PrintUnformatted(o);
                fprintf(out, "%s\n", t);
                cJSON_free(t);
                cJSON_Delete(o);
            }
        }
        for (long i = 0; i < n; i++) {
            cJSON_Delete(lines[i].json);
            cJSON_free(lines[i].meta);
            free(lines[i].ids);
        }
    }
    double t_all = now_s() - t0;
    long scored = total - counts[NREASONS - 1];
    printf("reward %s, %ld lines (%ld scored)\n", segrl_reward_name(r), total, scored);
    printf("accuracy %.4f  mean score %.4f\n", scored ? (double)counts[0] / (double)scored : 0.0,
           scored ? sum / (double)scored : 0.0);
    for (int k = 0; k < NREASONS; k++)
        if (counts[k])
            printf("  %-18s %ld\n", k == NREASONS - 1 ? "invalid_line" : segrl_reward_reason_name(k),
                   counts[k]);
    if (!quiet) {
        printf("scoring %.3f s (%.0f samples/s), total %.3f s (%.0f lines/s)\n", t_score,
               t_score > 0 ? (double)scored / t_score : 0.0, t_all,
               t_all > 0 ? (double)total / t_all : 0.0);
        printf("scoring CPU %.3f s, all threads (%.0f samples per CPU-second)\n", c_score,
               c_score > 0 ? (double)scored / c_score : 0.0);
    }
    for (long i = 0; i < chunk; i++) free(texts[i]);
    free(texts), free(caps), free(lines), free(smp), free(valid), free(scores), free(det);
    if (f != stdin) fclose(f);
    if (out && fclose(out) != 0) {
        perror(outp);
        rc = 1;
    }
    segrl_reward_free(r);
    return rc;
}
