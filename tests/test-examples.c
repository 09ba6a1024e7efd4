/* test-examples.c — the example trainers' shared pieces (examples/common): RNG and timers, the
 * synthetic dataset, the GSM8K/MATH loaders, the config parser, the metrics writer, the progress
 * line and the gnuplot plots. Files go to a fresh folder under the working directory. */
#define _XOPEN_SOURCE 700
#include "harness.h"

#include "ex.h"

#include <segrl/reward.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static const char *tpath(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        printf("cannot write %s\n", path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *path, long *out_len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = h_alloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    b[n] = 0;
    fclose(f);
    if (out_len) *out_len = n;
    return b;
}

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle); }

// ----------------------------------------------------------------------------
// RNG and time

static void test_rng(void) {
    uint64_t st = 0;
    /* splitmix64's first output from state 0 (Vigna's reference implementation) */
    CHECK(ex_splitmix64(&st) == 0xe220a8397b1dcdafull, "splitmix64 reference value");
    ex_rng a, b, c;
    ex_rng_seed(&a, 42);
    ex_rng_seed(&b, 42);
    ex_rng_seed(&c, 43);
    int same = 1, diff = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = ex_rng_u64(&a), y = ex_rng_u64(&b), z = ex_rng_u64(&c);
        same &= x == y;
        diff += x != z;
    }
    CHECK(same, "same seed, same stream");
    CHECK(diff == 100, "another seed, another stream");
    ex_rng s1, s2;
    ex_rng_seed_stream(&s1, 42, 1);
    ex_rng_seed_stream(&s2, 42, 2);
    CHECK(ex_rng_u64(&s1) != ex_rng_u64(&s2), "streams differ");
    /* ex_rng_int: in range, every value of [0, 9] near 10% of 100000 draws */
    int bins[10] = {0}, bad = 0;
    for (int i = 0; i < 100000; i++) {
        int64_t v = ex_rng_int(&a, 0, 9);
        if (v < 0 || v > 9) bad++;
        else bins[v]++;
    }
    CHECK(bad == 0, "ex_rng_int out of range %d times", bad);
    int flat = 1;
    for (int i = 0; i < 10; i++) flat &= bins[i] > 9400 && bins[i] < 10600;
    CHECK(flat, "ex_rng_int roughly uniform");
    CHECK(ex_rng_int(&a, 5, 5) == 5 && ex_rng_int(&a, 7, 3) == 7, "degenerate ranges");
    double lo = 1, hi = 0, sum = 0, sq = 0;
    for (int i = 0; i < 100000; i++) {
        double u = ex_rng_uniform(&a);
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
        double z = ex_rng_normal(&a);
        sum += z;
        sq += z * z;
    }
    CHECK(lo >= 0 && hi < 1, "uniform in [0, 1)");
    CHECK(fabs(sum / 1e5) < 0.02 && fabs(sq / 1e5 - 1) < 0.03, "normal mean %g var %g", sum / 1e5,
          sq / 1e5);
    char hex[65];
    ex_rng saved = a, back;
    ex_rng_save(&a, hex);
    CHECK(strlen(hex) == 64 && ex_rng_load(&back, hex) == 0 && ex_rng_u64(&back) == ex_rng_u64(&saved),
          "rng state save/load");
    CHECK(ex_rng_load(&back, "12") == -1 && ex_rng_load(&back, "0000000000000000000000000000000000000000000000000000000000000000") == -1,
          "bad rng states refused");
    int64_t perm[50], seen[50] = {0};
    for (int i = 0; i < 50; i++) perm[i] = i;
    ex_rng_shuffle_i64(&a, perm, 50);
    int ok = 1, moved = 0;
    for (int i = 0; i < 50; i++) {
        if (perm[i] < 0 || perm[i] >= 50 || seen[perm[i]]++) ok = 0;
        moved += perm[i] != i;
    }
    CHECK(ok && moved > 10, "shuffle is a permutation");
}

static void test_sampler(void) {
    ex_sampler s, r;
    CHECK(ex_sampler_init(&s, 0, 1) == -1, "n = 0 refused");
    CHECK(ex_sampler_init(&s, 7, 5) == 0 && ex_sampler_init(&r, 7, 5) == 0, "init");
    int64_t a[30], b[30];
    ex_sampler_next(&s, 30, a);
    /* every epoch (7 indices) is a permutation; epochs differ */
    int ok = 1;
    for (int e = 0; e < 4; e++) {
        int seen[7] = {0};
        for (int i = 0; i < 7; i++) {
            int64_t v = a[e * 7 + i];
            if (v < 0 || v > 6 || seen[v]++) ok = 0;
        }
    }
    CHECK(ok, "epochs are permutations");
    CHECK(memcmp(a, a + 7, 7 * sizeof *a) != 0 || memcmp(a + 7, a + 14, 7 * sizeof *a) != 0,
          "epochs reshuffled");
    CHECK(ex_sampler_consumed(&s) == 30, "consumed");
    /* resume: seek to 11, the rest matches */
    ex_sampler_seek(&r, 11);
    ex_sampler_next(&r, 19, b);
    CHECK(memcmp(a + 11, b, 19 * sizeof *a) == 0, "seek restores the order");
    ex_sampler_seek(&r, 0);
    ex_sampler_next(&r, 30, b);
    CHECK(memcmp(a, b, 30 * sizeof *a) == 0, "seek back to 0");
    ex_sampler_free(&s);
    ex_sampler_free(&r);

    char *pr = ex_render_prompt("Q: {question}\nA: {question}!", "1+1?");
    CHECK(pr && strcmp(pr, "Q: 1+1?\nA: 1+1?!") == 0, "render prompt: %s", pr ? pr : "");
    free(pr);
    pr = ex_render_prompt("no slot", "x");
    CHECK(pr && strcmp(pr, "no slot") == 0, "template without slot");
    free(pr);
    CHECK(ex_make_dirs(tpath("a/b/c")) == 0 && ex_make_dirs(tpath("a/b/c")) == 0, "make dirs");
    struct stat sb;
    CHECK(stat(tpath("a/b/c"), &sb) == 0 && S_ISDIR(sb.st_mode), "dirs exist");
}

static void test_stats(void) {
    double x[] = {1e9 + 1, 1e9 + 2, 1e9 + 3, 1e9 + 4}, m, sd;
    ex_mean_std(x, 4, &m, &sd);
    CHECK(m == 1e9 + 2.5 && fabs(sd - sqrt(5.0 / 3.0)) < 1e-6, "mean %.17g std %.17g", m, sd);
    ex_mean_std(x, 1, &m, &sd);
    CHECK(m == 1e9 + 1 && sd == 0, "one value");
    double lo, hi;
    /* 15% of 200 (the calibration's test set): about +-5 points at 95% */
    ex_wilson_interval(30, 200, 1.96, &lo, &hi);
    CHECK(fabs(lo - 0.1071353) < 1e-6 && fabs(hi - 0.2060569) < 1e-6, "wilson [%g, %g]", lo, hi);
    ex_wilson_interval(0, 10, 1.96, &lo, &hi);
    CHECK(lo == 0 && hi > 0.27 && hi < 0.28, "wilson at 0: [%g, %g]", lo, hi);
    ex_wilson_interval(0, 0, 1.96, &lo, &hi);
    CHECK(lo == 0 && hi == 1, "wilson n = 0");
}

static void test_time(void) {
    char b[32];
    CHECK(strcmp(ex_format_duration(42.04, b, sizeof b), "42.0s") == 0, "got %s", b);
    CHECK(strcmp(ex_format_duration(187, b, sizeof b), "3m07s") == 0, "got %s", b);
    CHECK(strcmp(ex_format_duration(3720, b, sizeof b), "1h02m") == 0, "got %s", b);
    CHECK(strcmp(ex_format_duration(-1, b, sizeof b), "?") == 0, "got %s", b);
    ex_utc_timestamp(b, sizeof b);
    CHECK(strlen(b) == 20 && b[4] == '-' && b[19] == 'Z', "timestamp %s", b);
    ex_timer t;
    ex_timer_reset(&t);
    CHECK(ex_timer_stop(&t) == 0 && ex_timer_total(&t) == 0, "stopped timer");
    ex_timer_start(&t);
    while (ex_timer_total(&t) < 0.01) {
    }
    double d = ex_timer_stop(&t);
    ex_timer_start(&t);
    ex_timer_stop(&t);
    CHECK(d >= 0.01 && ex_timer_total(&t) >= d, "timer accumulates (%g)", d);
}

// ----------------------------------------------------------------------------
// synthetic dataset

/* Checks a worked solution independently of the generator: each "A op B=R." must hold, except
 * for slips. Returns the number of wrong equations (-1 when the text does not parse); the
 * "#### N" value in *final, the last equation's R in *last. */
static int check_solution(const char *s, int64_t *final, int64_t *last, int *n_eq) {
    int wrong = 0;
    *n_eq = 0;
    const char *p = s;
    while (*p && *p != '\n') {
        long long a, b, r;
        char op;
        int used = 0;
        if (sscanf(p, "%lld%c%lld=%lld.%n", &a, &op, &b, &r, &used) != 4 || used == 0) return -1;
        long long want = op == '+' ? a + b : op == '-' ? a - b : op == '*' ? a * b
                         : op == '/' && b ? (a % b == 0 ? a / b : -999999) : -999999;
        if (want == -999999) return -1;
        wrong += want != r;
        *last = r;
        (*n_eq)++;
        p += used;
        if (*p == ' ') p++;
    }
    if (strncmp(p, "\n#### ", 6) != 0) return -1;
    *final = strtoll(p + 6, NULL, 10);
    return wrong;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_synth(void) {
    ex_synth_opts o = ex_synth_opts_default();
    o.num_train = 3000;
    o.num_test = 500;
    o.noise = 0.1;
    o.seed = 7;
    ex_synth_set s;
    CHECK(ex_synth_generate(&o, &s) == SEGRL_OK, "generate: %s", segrl_last_error());
    if (s.num_train != 3000) return;
    int64_t parse_bad = 0, clean_bad = 0, noisy_bad = 0, noisy = 0, bounds_bad = 0, product_bad = 0;
    int64_t max_chars = 0;
    for (int split = 0; split < 2; split++) {
        ex_synth_problem *ps = split ? s.test : s.train;
        int64_t n = split ? s.num_test : s.num_train;
        for (int64_t i = 0; i < n; i++) {
            ex_synth_problem *p = &ps[i];
            int64_t final = -1, last = -2;
            int neq;
            int wrong = check_solution(p->solution, &final, &last, &neq);
            if (wrong < 0 || neq != 2) {
                if (parse_bad++ < 3) printf("  unparsed: %s\n", p->solution);
                continue;
            }
            if (final != last || final != p->written) parse_bad++;
            if (!p->noisy) {
                if (wrong != 0 || final != p->answer) clean_bad++;
            } else {
                noisy++;
                if (split == 1 || wrong != 1 || final == p->answer) noisy_bad++;
            }
            /* the calibrated easy task: answers <= 130, other operands <= 60 */
            if (p->answer < 0 || p->answer > 130) bounds_bad++;
            for (const char *q = p->question; *q; q++)
                if (*q >= '0' && *q <= '9' && (q == p->question || q[-1] < '0' || q[-1] > '9'))
                    if (strtol(q, NULL, 10) > 60) bounds_bad++;
            /* single-digit products: both factors of every '*' are <= 9 */
            /* (a slip may carry a wrong two-digit value into a product: clean ones only) */
            for (const char *q = p->solution; !p->noisy && (q = strchr(q, '*')) != NULL; q++) {
                const char *a = q;
                while (a > p->solution && a[-1] >= '0' && a[-1] <= '9') a--;
                if (strtol(a, NULL, 10) > 9 || strtol(q + 1, NULL, 10) > 9) product_bad++;
            }
            int64_t len = (int64_t)(strlen(p->question) + 1 + strlen(p->solution));
            if (len > max_chars) max_chars = len;
        }
    }
    CHECK(parse_bad == 0, "%lld solutions do not parse or end wrongly", (long long)parse_bad);
    CHECK(clean_bad == 0, "%lld clean solutions are wrong", (long long)clean_bad);
    CHECK(noisy_bad == 0, "%lld noisy solutions are not exactly one slip", (long long)noisy_bad);
    CHECK(noisy == s.num_noisy && noisy > 200 && noisy < 400, "noisy %lld of 3000 at noise 0.1",
          (long long)noisy);
    CHECK(bounds_bad == 0, "%lld numbers out of the easy bounds", (long long)bounds_bad);
    CHECK(product_bad == 0, "%lld products not single-digit", (long long)product_bad);
    CHECK(max_chars <= 112 && max_chars == s.max_chars, "longest problem %lld chars (set: %lld)",
          (long long)max_chars, (long long)s.max_chars);
    printf("  synth: 3000 train (%lld noisy) + 500 test, longest %lld chars\n", (long long)noisy,
           (long long)max_chars);

    /* distinct questions, no overlap between the splits */
    const char **all = h_alloc(3500 * sizeof *all);
    for (int64_t i = 0; i < 3000; i++) all[i] = s.train[i].question;
    for (int64_t i = 0; i < 500; i++) all[3000 + i] = s.test[i].question;
    qsort(all, 3500, sizeof *all, cmp_str);
    int dups = 0;
    for (int i = 1; i < 3500; i++) dups += strcmp(all[i - 1], all[i]) == 0;
    CHECK(dups == 0, "%d repeated questions across/within splits", dups);
    free(all);

    /* deterministic; the noise level does not change the questions; the seed does */
    ex_synth_set s2, s3;
    ex_synth_opts o2 = o;
    o2.noise = 0;
    CHECK(ex_synth_generate(&o2, &s2) == SEGRL_OK, "generate noise 0");
    int same_q = 1, clean = 1;
    for (int64_t i = 0; i < 3000; i++) {
        same_q &= strcmp(s.train[i].question, s2.train[i].question) == 0;
        clean &= !s2.train[i].noisy;
    }
    CHECK(same_q && clean && s2.num_noisy == 0, "noise changes only solutions");
    ex_synth_opts o3 = o;
    o3.seed = 8;
    CHECK(ex_synth_generate(&o3, &s3) == SEGRL_OK, "generate seed 8");
    CHECK(strcmp(s3.test[0].question, s.test[0].question) != 0 ||
              strcmp(s3.test[1].question, s.test[1].question) != 0,
          "another seed, other problems");
    ex_synth_set_free(&s2);
    ex_synth_set_free(&s3);

    /* other difficulties: every equation holds, step counts as documented */
    for (int d = 0; d <= 3; d++) {
        ex_synth_opts od = ex_synth_opts_default();
        od.difficulty = d;
        od.num_train = 400;
        od.num_test = 100;
        od.seed = 11;
        ex_synth_set sd;
        if (ex_synth_generate(&od, &sd) != SEGRL_OK) {
            CHECK(0, "difficulty %d: %s", d, segrl_last_error());
            continue;
        }
        int bad = 0, minst = 9, maxst = 0;
        for (int64_t i = 0; i < sd.num_train; i++) {
            int64_t final, last;
            int neq;
            int w = check_solution(sd.train[i].solution, &final, &last, &neq);
            if (w != 0 || final != sd.train[i].answer) bad++;
            minst = neq < minst ? neq : minst;
            maxst = neq > maxst ? neq : maxst;
        }
        int lo = d == 0 ? 1 : d == 3 ? 3 : 2, hi = d == 0 ? 1 : d == 1 ? 2 : 3;
        CHECK(bad == 0 && minst == lo && maxst == hi, "difficulty %d: %d bad, steps %d..%d", d,
              bad, minst, maxst);
        ex_synth_set_free(&sd);
    }
    ex_synth_opts ob = ex_synth_opts_default();
    ob.difficulty = 4;
    CHECK(ex_synth_generate(&ob, &s2) == SEGRL_ERR_INVALID && contains(segrl_last_error(),
                                                                        "difficulty"),
          "bad difficulty rejected");
    ob.difficulty = 1;
    ob.noise = -0.5;
    CHECK(ex_synth_generate(&ob, &s2) == SEGRL_ERR_INVALID && contains(segrl_last_error(),
                                                                        "noise"),
          "bad noise rejected");

    /* files: written, loaded back by the GSM8K loader, references are the written answers */
    CHECK(ex_synth_write(&s, &o, tmpdir) == SEGRL_OK, "write: %s", segrl_last_error());
    ex_dataset tr, te;
    CHECK(ex_dataset_load(tpath("train.jsonl"), EX_DATA_AUTO, 0, &tr) == SEGRL_OK, "load train: %s",
          segrl_last_error());
    CHECK(ex_dataset_load(tpath("test.jsonl"), EX_DATA_GSM8K, 0, &te) == SEGRL_OK, "load test: %s",
          segrl_last_error());
    if (tr.n == 3000 && te.n == 500) {
        int refs = 1;
        for (int64_t i = 0; i < 3000; i++)
            refs &= strtoll(tr.items[i].reference, NULL, 10) == s.train[i].written &&
                    strcmp(tr.items[i].question, s.train[i].question) == 0;
        for (int64_t i = 0; i < 500; i++)
            refs &= strtoll(te.items[i].reference, NULL, 10) == s.test[i].answer;
        CHECK(refs && tr.format == EX_DATA_GSM8K, "loaded references match");
    } else {
        CHECK(0, "loaded %lld / %lld problems", (long long)tr.n, (long long)te.n);
    }
    ex_dataset_free(&tr);
    ex_dataset_free(&te);
    long n = 0;
    char *corpus = read_text(tpath("corpus.txt"), &n);
    CHECK(corpus && n > 3000 * 60 && contains(corpus, s.train[2999].question) &&
              !contains(corpus, s.test[0].question),
          "corpus.txt holds the training text only (%ld bytes)", n);
    free(corpus);
    char *meta = read_text(tpath("meta.json"), NULL);
    cJSON *mj = cJSON_Parse(meta ? meta : "");
    CHECK(mj && cJSON_GetObjectItem(mj, "num_noisy") &&
              cJSON_GetObjectItem(mj, "num_noisy")->valuedouble == (double)s.num_noisy,
          "meta.json");
    cJSON_Delete(mj);
    free(meta);
    ex_synth_set_free(&s);
}

/* The demo's premise: segrl's GSM8K verifier, given the true answer, accepts every clean worked
 * solution and rejects every one with a slip. */
static void test_synth_verifier(void) {
    ex_synth_opts o = ex_synth_opts_default();
    o.num_train = 1000;
    o.num_test = 10;
    o.noise = 0.3;
    ex_synth_set s;
    if (ex_synth_generate(&o, &s) != SEGRL_OK) {
        CHECK(0, "generate: %s", segrl_last_error());
        return;
    }
    segrl_gsm8k_opts go = segrl_gsm8k_defaults();
    segrl_reward *rw = NULL;
    CHECK(segrl_reward_gsm8k(&go, &rw) == SEGRL_OK, "gsm8k reward: %s", segrl_last_error());
    segrl_reward_sample *smp = h_alloc(1000 * sizeof *smp);
    char(*ans)[24] = h_alloc(1000 * sizeof *ans);
    float *score = h_alloc(1000 * sizeof *score);
    for (int i = 0; i < 1000; i++) {
        snprintf(ans[i], sizeof ans[i], "%lld", (long long)s.train[i].answer);
        smp[i].prompt = s.train[i].question;
        smp[i].response = s.train[i].solution;
        smp[i].answer = ans[i];
    }
    segrl_reward_run run = {1, 1, -1, 0};
    if (rw && segrl_reward_score(rw, smp, 1000, &run, score, NULL) == SEGRL_OK) {
        int bad = 0, noisy = 0;
        for (int i = 0; i < 1000; i++) {
            noisy += s.train[i].noisy;
            bad += score[i] != (s.train[i].noisy ? 0.0f : 1.0f);
        }
        CHECK(bad == 0 && noisy > 200, "verifier disagrees on %d of 1000 (%d noisy)", bad, noisy);
    } else {
        CHECK(0, "score: %s", segrl_last_error());
    }
    segrl_reward_free(rw);
    free(smp);
    free(ans);
    free(score);
    ex_synth_set_free(&s);
}

// ----------------------------------------------------------------------------
// loaders

static void test_answers(void) {
    char *a = ex_gsm8k_final_answer("x\n#### 1,234 \n");
    CHECK(a && strcmp(a, "1234") == 0, "gsm8k answer %s", a ? a : "(null)");
    free(a);
    a = ex_gsm8k_final_answer("#### 1\n#### -7.5");
    CHECK(a && strcmp(a, "-7.5") == 0, "last ####");
    free(a);
    CHECK(ex_gsm8k_final_answer("no marker") == NULL && ex_gsm8k_final_answer("#### ") == NULL,
          "no answer");
    struct { const char *in, *want; } cases[] = {
        {"so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"},
        {"\\boxed{1} then \\boxed{2}", "2"},
        {"\\boxed{\\{1,2\\}}", "\\{1,2\\}"},
        {"\\boxed{3} and broken \\boxed{4", "3"},
        {"\\fbox{x^{2}}", "x^{2}"},
        {"is $\\boxed 5$", "5"},
        {"\\boxed{a{b{c}}d}", "a{b{c}}d"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *b = ex_math_last_boxed(cases[i].in);
        CHECK(b && strcmp(b, cases[i].want) == 0, "boxed(%s) = %s, want %s", cases[i].in,
              b ? b : "(null)", cases[i].want);
        free(b);
    }
    CHECK(ex_math_last_boxed("none here") == NULL && ex_math_last_boxed("\\boxed{") == NULL,
          "no boxed");
    /* UTF-8: bad bytes replaced, valid multi-byte kept, output valid */
    const char bad[] = "a\xff" "b\xe2\x82" "c\xc3\xa9\xed\xa0\x80\xf0\x9f\x98\x80";
    size_t len;
    int64_t fixed;
    char *u = ex_utf8_sanitize(bad, sizeof bad - 1, &len, &fixed);
    int64_t again;
    char *u2 = ex_utf8_sanitize(u, len, NULL, &again);
    CHECK(fixed == 6 && again == 0 && contains(u, "c\xc3\xa9") && contains(u, "\xf0\x9f\x98\x80"),
          "utf8 fixed %lld (want 6: ff, e2 82, ed a0 80), then %lld", (long long)fixed,
          (long long)again);
    free(u);
    free(u2);
}

static void test_loaders(void) {
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("g.jsonl"));
    write_text(p, "{\"question\":\"Q1\",\"answer\":\"1+1=2\\n#### 2\"}\r\n"
                  "\n"
                  "   \n"
                  "{\"question\":\"Q2\",\"answer\":\"x\\n#### 1,000\",\"extra\":1}\n"
                  "{\"question\":\"Q3 \xff\",\"answer\":\"#### 3\"}");
    ex_dataset d;
    CHECK(ex_dataset_load(p, EX_DATA_AUTO, 0, &d) == SEGRL_OK, "good gsm8k: %s", segrl_last_error());
    CHECK(d.n == 3 && d.format == EX_DATA_GSM8K && strcmp(d.items[1].reference, "1000") == 0 &&
              d.items[1].line == 4 && d.items[2].line == 5 && d.utf8_fixed == 1 &&
              strcmp(d.items[2].question, "Q3 \xef\xbf\xbd") == 0 && d.items[0].type == NULL,
          "gsm8k contents (n %lld)", (long long)d.n);
    ex_dataset_free(&d);

    struct { const char *text, *want; } bad[] = {
        {"{\"question\":\"a\",\"answer\":\"#### 1\"}\n{\"question\":\"b\",\"answer\":\"#### 2\"}\n"
         "{\"question\": oops}\n", "g-bad.jsonl:3: not valid JSON"},
        {"{\"question\":\"a\"}\n", "g-bad.jsonl:1: missing field \"answer\""},
        {"{\"question\":\"a\",\"answer\":5}\n", "g-bad.jsonl:1: field \"answer\" is not a string"},
        {"{\"question\":\"a\",\"answer\":\"no marker\"}\n", "g-bad.jsonl:1: no final answer"},
        {"[1,2]\n", "g-bad.jsonl:1: not a JSON object"},
        {"{\"text\":\"a\"}\n", "cannot tell the format"},
        {"\n\n", "no problems"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(tpath("g-bad.jsonl"), bad[i].text);
        memset(&d, 0x5a, sizeof d);
        segrl_status st = ex_dataset_load(tpath("g-bad.jsonl"), EX_DATA_AUTO, 0, &d);
        CHECK(st == SEGRL_ERR_INVALID && contains(segrl_last_error(), bad[i].want) &&
                  d.n == 0x5a5a5a5a5a5a5a5all,
              "bad case %zu: %s (want \"%s\"; outputs untouched)", i, segrl_last_error(),
              bad[i].want);
    }
    /* skip_bad: bad lines counted, the first one reported */
    write_text(tpath("g-skip.jsonl"), "{\"question\":\"a\",\"answer\":\"#### 1\"}\nnot json\n"
                                      "{\"question\":\"b\",\"answer\":\"nothing\"}\n"
                                      "{\"question\":\"c\",\"answer\":\"#### 3\"}\n");
    CHECK(ex_dataset_load(tpath("g-skip.jsonl"), EX_DATA_GSM8K, 1, &d) == SEGRL_OK &&
              d.n == 2 && d.skipped == 2 && contains(d.first_error, "g-skip.jsonl:2:"),
          "skip_bad: n %lld skipped %lld first \"%s\"", (long long)d.n, (long long)d.skipped,
          d.first_error);
    ex_dataset_free(&d);
    CHECK(ex_dataset_load(tpath("missing.jsonl"), EX_DATA_GSM8K, 0, &d) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "missing.jsonl: cannot open"),
          "missing file: %s", segrl_last_error());

    /* a 10^6-character line */
    size_t big = 1000000;
    char *q = h_alloc(big + 1);
    memset(q, 'x', big);
    FILE *f = fopen(tpath("g-big.jsonl"), "wb");
    fprintf(f, "{\"question\":\"%s\",\"answer\":\"#### 9\"}\n", q);
    fprintf(f, "{\"question\":\"small\",\"answer\":\"#### 10\"}\n");
    fclose(f);
    CHECK(ex_dataset_load(tpath("g-big.jsonl"), EX_DATA_GSM8K, 0, &d) == SEGRL_OK && d.n == 2 &&
              strlen(d.items[0].question) == big && strcmp(d.items[1].reference, "10") == 0,
          "long line: %s", segrl_last_error());
    ex_dataset_free(&d);
    free(q);

    /* MATH */
    write_text(tpath("m.jsonl"),
               "{\"problem\":\"P1\",\"solution\":\"so \\\\boxed{\\\\frac{1}{2}}.\",\"level\":\"Level 3\","
               "\"type\":\"Algebra\"}\n"
               "{\"problem\":\"P2\",\"solution\":\"s\",\"answer\":\"7\",\"level\":5,\"subject\":\"Geometry\"}\n"
               "{\"problem\":\"P3\",\"solution\":\"\\\\boxed{4}\",\"level\":\"Level ?\"}\n");
    CHECK(ex_dataset_load(tpath("m.jsonl"), EX_DATA_AUTO, 0, &d) == SEGRL_OK, "math: %s",
          segrl_last_error());
    CHECK(d.n == 3 && d.format == EX_DATA_MATH && strcmp(d.items[0].reference, "\\frac{1}{2}") == 0 &&
              d.items[0].level == 3 && strcmp(d.items[0].type, "Algebra") == 0 &&
              strcmp(d.items[1].reference, "7") == 0 && d.items[1].level == 5 &&
              strcmp(d.items[1].type, "Geometry") == 0 && d.items[2].level == 0 &&
              d.items[2].type == NULL && strcmp(d.items[2].reference, "4") == 0,
          "math contents");
    ex_dataset_free(&d);
    write_text(tpath("m-bad.jsonl"), "{\"problem\":\"P\",\"solution\":\"no box\"}\n");
    CHECK(ex_dataset_load(tpath("m-bad.jsonl"), EX_DATA_MATH, 0, &d) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "m-bad.jsonl:1: no final answer"),
          "math without boxed: %s", segrl_last_error());
    /* a GSM8K file read as MATH names the missing field */
    CHECK(ex_dataset_load(p, EX_DATA_MATH, 0, &d) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "missing field \"problem\""),
          "format mismatch: %s", segrl_last_error());
    CHECK(ex_data_format_from_name("math") == EX_DATA_MATH && ex_data_format_from_name("x") == -1 &&
              strcmp(ex_data_format_name(EX_DATA_GSM8K), "gsm8k") == 0,
          "format names");
}

// ----------------------------------------------------------------------------
// config

static void test_config(void) {
    int32_t nk;
    const ex_cfg_key *keys = ex_trainer_keys(&nk);
    ex_config c;
    CHECK(ex_config_init(&c, keys, nk) == SEGRL_OK, "init: %s", segrl_last_error());
    CHECK(ex_config_int(&c, "algo.group_size") == 8 && ex_config_float(&c, "optim.lr") == 1e-4 &&
              strcmp(ex_config_str(&c, "algo.estimator"), "grpo") == 0 &&
              ex_config_bool(&c, "run.plot") == 1 &&
              ex_config_source(&c, "optim.lr") == EX_CFG_FROM_DEFAULT,
          "defaults");
    int64_t br[16];
    int32_t nb = 0;
    CHECK(ex_config_get_intlist(&c, "spo.tree_branching", br, 16, &nb) == SEGRL_OK && nb == 3 &&
              br[0] == 6 && br[2] == 6,
          "intlist default");

    write_text(tpath("c1.json"), "{\"optim\": {\"lr\": 3e-4, \"schedule\": \"warmup-cosine\"},\n"
                                 " \"algo.estimator\": \"spo-tree\", \"spo\": {\"tree_branching\": [4, 4]},\n"
                                 " \"reward\": {\"name\": \"math\", \"options\": {\"tolerance\": 1e-6}},\n"
                                 " \"run\": {\"plot\": false, \"steps\": 10}}");
    char *argv1[] = {"prog", "--algo.group-size", "4", "--optim.lr=5e-5", "--config",
                     (char *)tpath("c1.json"), "--data.skip_bad", "--no-run.progress-x",
                     NULL};
    /* --no-run.progress-x is not a key: unknown */
    int help = 0;
    CHECK(ex_config_parse_args(&c, 8, argv1, &help) == SEGRL_ERR_INVALID &&
              contains(ex_config_error(&c), "unknown key \"no-run.progress-x\"") &&
              contains(ex_config_error(&c), "valid keys: run.steps, run.seed"),
          "unknown flag: %s", ex_config_error(&c));
    ex_config_free(&c);
    ex_config_init(&c, keys, nk);
    char *argv2[] = {"prog", "--algo.group-size", "4", "--optim.lr=5e-5", "--config",
                     (char *)tpath("c1.json"), "--data.skip_bad", "--loss.kl_coef", "-0.5",
                     "--no-run.plot", "-h", NULL};
    CHECK(ex_config_parse_args(&c, 11, argv2, &help) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "loss.kl_coef") &&
              contains(segrl_last_error(), "outside"),
          "range: %s", segrl_last_error());
    ex_config_free(&c);
    ex_config_init(&c, keys, nk);
    argv2[8] = "0.05";
    CHECK(ex_config_parse_args(&c, 11, argv2, &help) == SEGRL_OK, "parse: %s", ex_config_error(&c));
    CHECK(help == 1, "-h reported");
    CHECK(ex_config_int(&c, "algo.group_size") == 4 && ex_config_float(&c, "optim.lr") == 5e-5 &&
              ex_config_source(&c, "optim.lr") == EX_CFG_FROM_FLAG,
          "flags override the file whatever their position");
    CHECK(strcmp(ex_config_str(&c, "optim.schedule"), "warmup-cosine") == 0 &&
              ex_config_enum(&c, "optim.schedule") == 2 &&
              strcmp(ex_config_str(&c, "algo.estimator"), "spo-tree") == 0 &&
              ex_config_enum(&c, "algo.estimator") == 7 &&
              ex_config_int(&c, "run.steps") == 10 &&
              ex_config_source(&c, "run.steps") == EX_CFG_FROM_FILE,
          "file values (nested and dotted)");
    CHECK(ex_config_get_intlist(&c, "spo.tree_branching", br, 16, &nb) == SEGRL_OK && nb == 2 &&
              br[0] == 4 && br[1] == 4 && strcmp(ex_config_str(&c, "spo.tree_branching"), "4-4") == 0,
          "intlist from a JSON array");
    CHECK(strcmp(ex_config_str(&c, "reward.options"), "{\"tolerance\":1e-06}") == 0,
          "json option kept whole: %s", ex_config_str(&c, "reward.options"));
    CHECK(ex_config_bool(&c, "data.skip_bad") == 1 && ex_config_bool(&c, "run.plot") == 0 &&
              ex_config_float(&c, "loss.kl_coef") == 0.05,
          "lone bool, negated bool");

    /* print, to_json, and back */
    FILE *f = fopen(tpath("print.txt"), "wb");
    ex_config_print(&c, f, 0);
    ex_config_print_help(&c, f, "prog");
    fclose(f);
    char *txt = read_text(tpath("print.txt"), NULL);
    CHECK(contains(txt, "optim.lr") && contains(txt, "5e-05  (flag)") &&
              contains(txt, "warmup-cosine  (file)") && contains(txt, "--spo.tree_branching"),
          "printed config");
    free(txt);
    CHECK(ex_config_write_json(&c, tpath("eff.json")) == SEGRL_OK, "write json");
    ex_config c2;
    ex_config_init(&c2, keys, nk);
    CHECK(ex_config_load_file(&c2, tpath("eff.json")) == SEGRL_OK, "reload: %s",
          ex_config_error(&c2));
    int same = 1;
    for (int32_t i = 0; i < nk; i++)
        if (strcmp(c.values[i].text, c2.values[i].text) != 0) {
            printf("  %s: %s vs %s\n", keys[i].key, c.values[i].text, c2.values[i].text);
            same = 0;
        }
    CHECK(same, "effective config round-trips through JSON");
    ex_config_free(&c2);

    /* errors */
    struct { const char *json, *want; } bad[] = {
        {"{\"optim\": {\"lrr\": 1}}", "unknown key \"optim.lrr\"; did you mean \"optim.lr\"?"},
        {"{\"algo\": {\"group_size\": \"8\"}}", "algo.group_size (int): expected an integer, got a string"},
        {"{\"algo\": {\"group_size\": 1.5}}", "expected an integer"},
        {"{\"algo\": {\"estimator\": \"ppo2\"}}", "\"ppo2\" is not one of grpo|dr-grpo"},
        {"{\"run\": {\"plot\": 1}}", "expected true or false"},
        {"{\"gen\": {\"top_p\": 1.5}}", "outside [0, 1]"},
        {"{\"reward\": {\"options\": 3}}", "expected a JSON object"},
        {"{\"spo\": {\"tree_branching\": \"6-x\"}}", "positive integers"},
        {"[1]", "not a JSON object"},
        {"{\"a\": ", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ex_config_init(&c2, keys, nk);
        CHECK(ex_config_load_json(&c2, bad[i].json, "bad.json") == SEGRL_ERR_INVALID &&
                  contains(ex_config_error(&c2), bad[i].want) &&
                  contains(segrl_last_error(), "bad.json"),
              "bad config %zu: %s (want \"%s\")", i, ex_config_error(&c2), bad[i].want);
        ex_config_free(&c2);
    }
    ex_config_init(&c2, keys, nk);
    char *argv3[] = {"prog", "--lr", "1"};
    CHECK(ex_config_parse_args(&c2, 3, argv3, NULL) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "did you mean") &&
              contains(segrl_last_error(), "\"optim.lr\"") &&
              contains(segrl_last_error(), "\"sft.lr\""),
          "short key hint: %s", segrl_last_error());
    char *argv4[] = {"prog", "stray"};
    CHECK(ex_config_parse_args(&c2, 2, argv4, NULL) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "unexpected argument \"stray\""),
          "positional: %s", segrl_last_error());
    char *argv5[] = {"prog", "--optim.lr"};
    CHECK(ex_config_parse_args(&c2, 2, argv5, NULL) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "needs a value"),
          "missing value: %s", segrl_last_error());
    char *argv6[] = {"prog", "--algo.group_size", "eight"};
    CHECK(ex_config_parse_args(&c2, 3, argv6, NULL) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "expected an integer, got \"eight\""),
          "bad int flag: %s", segrl_last_error());
    char *argv7[] = {"prog", "--config", (char *)tpath("nope.json")};
    CHECK(ex_config_parse_args(&c2, 3, argv7, NULL) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "nope.json: cannot open"),
          "missing config file: %s", segrl_last_error());
    int64_t iv;
    double dv;
    const char *sv;
    CHECK(ex_config_get_int(&c2, "optim.lr", &iv) == SEGRL_ERR_INVALID &&
              ex_config_get_float(&c2, "nope", &dv) == SEGRL_ERR_INVALID &&
              ex_config_get_str(&c2, "optim.lr", &sv) == SEGRL_OK &&
              ex_config_get_float(&c2, "algo.group_size", &dv) == SEGRL_OK && dv == 8,
          "checked getters");
    CHECK(ex_config_find(&c2, "algo.group-size") >= 0 && ex_config_find(&c2, "x") == -1,
          "find with '-'");
    ex_config_free(&c2);
    /* a schema bug is caught at init */
    ex_cfg_key dupe[] = {{"a.b", EX_CFG_INT, "1", NULL, 0, 0, ""},
                         {"a.b", EX_CFG_INT, "2", NULL, 0, 0, ""}};
    CHECK(ex_config_init(&c2, dupe, 2) == SEGRL_ERR_INVALID, "duplicate key in schema");
    ex_cfg_key baddef[] = {{"a.b", EX_CFG_INT, "x", NULL, 0, 0, ""}};
    CHECK(ex_config_init(&c2, baddef, 1) == SEGRL_ERR_INVALID, "bad default in schema");
    ex_config_free(&c);

    /* docs/training.md documents every key */
    char *doc = read_text(SEGRL_SOURCE_DIR "/docs/training.md", NULL);
    int missing = 0;
    for (int32_t i = 0; i < nk; i++) {
        char pat[160];
        snprintf(pat, sizeof pat, "| `%s` |", keys[i].key);
        if (!contains(doc, pat)) {
            if (missing++ < 5) printf("  docs/training.md lacks %s\n", keys[i].key);
        }
    }
    CHECK(doc && missing == 0, "%d keys missing from docs/training.md", missing);
    int32_t nm;
    const char *const *names = ex_metrics_names(&nm);
    missing = 0;
    for (int32_t i = 0; i < nm; i++) {
        char pat[160];
        snprintf(pat, sizeof pat, "| `%s` |", names[i]);
        if (!contains(doc, pat)) {
            if (missing++ < 5) printf("  docs/training.md lacks metric %s\n", names[i]);
        }
    }
    CHECK(doc && missing == 0, "%d metric names missing from docs/training.md", missing);
    free(doc);
}

// ----------------------------------------------------------------------------
// metrics, progress, plots

static void test_metrics(void) {
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("metrics.jsonl"));
    ex_metrics *m = NULL;
    CHECK(ex_metrics_open(p, -1, &m) == SEGRL_OK, "open: %s", segrl_last_error());
    if (!m) return;
    for (int s = 1; s <= 4; s++) {
        ex_metrics_set(m, "reward", 0.1 * s);
        ex_metrics_set(m, "loss", s == 2 ? NAN : 1.0 / s);
        ex_metrics_set(m, "reward", 0.2 * s); /* replaces */
        if (s % 2 == 0) ex_metrics_set(m, "accuracy", 0.25 * s);
        double got = 0;
        CHECK(ex_metrics_get(m, "reward", &got) && got == 0.2 * s && !ex_metrics_get(m, "x", NULL),
              "get");
        CHECK(ex_metrics_write(m, s) == SEGRL_OK, "write: %s", segrl_last_error());
    }
    /* reward metrics of 3 prompts x 2 samples: groups {1,1} {0,1} {0,0} */
    const float rw[6] = {1, 1, 0, 1, 0, 0};
    double v[4] = {0};
    CHECK(ex_metrics_set_rewards(m, rw, 3, 2, 1.0f) == SEGRL_OK &&
              ex_metrics_get(m, "reward_mean", &v[0]) && ex_metrics_get(m, "reward_std", &v[1]) &&
              ex_metrics_get(m, "accuracy", &v[2]) && ex_metrics_get(m, "mixed_groups", &v[3]) &&
              v[0] == 0.5 && v[1] == 0.5 && v[2] == 0.5 && fabs(v[3] - 1.0 / 3.0) < 1e-12,
          "reward metrics %g %g %g %g", v[0], v[1], v[2], v[3]);
    CHECK(ex_metrics_set_rewards(m, rw, 0, 2, 1.0f) == SEGRL_ERR_INVALID, "no prompts");
    CHECK(ex_metrics_set(m, "step", 1) == SEGRL_ERR_INVALID &&
              ex_metrics_set(m, "", 1) == SEGRL_ERR_INVALID,
          "reserved names");
    ex_metrics_close(m);
    char *txt = read_text(p, NULL);
    CHECK(contains(txt, "{\"step\":1,\"wall_s\":") && contains(txt, "\"loss\":null") &&
              contains(txt, "\"reward\":0.4,"),
          "jsonl text:\n%s", txt ? txt : "");
    int lines = 0;
    for (char *q = txt; q && *q; q++) lines += *q == '\n';
    CHECK(lines == 4, "4 lines, got %d", lines);
    free(txt);
    double *x = NULL, *y = NULL;
    int64_t n = 0;
    CHECK(ex_metrics_read_series(p, "step", "accuracy", &x, &y, &n) == SEGRL_OK && n == 2 &&
              x[0] == 2 && x[1] == 4 && y[1] == 1.0,
          "sparse series");
    free(x);
    free(y);
    CHECK(ex_metrics_read_series(p, "step", "loss", &x, &y, &n) == SEGRL_OK && n == 3,
          "null values skipped");
    free(x);
    free(y);

    /* resume after step 2 of a run that was killed mid-line at step 5 */
    FILE *f = fopen(p, "ab");
    fputs("{\"step\":5,\"wall_s\":9,\"rew", f);
    fclose(f);
    CHECK(ex_metrics_open(p, 2, &m) == SEGRL_OK, "reopen: %s", segrl_last_error());
    double w = ex_metrics_wall(m);
    ex_metrics_set(m, "reward", 1);
    ex_metrics_write(m, 3);
    ex_metrics_close(m);
    CHECK(ex_metrics_read_series(p, "step", "wall_s", &x, &y, &n) == SEGRL_OK && n == 3 &&
              x[0] == 1 && x[1] == 2 && x[2] == 3 && y[2] >= y[1] && w >= y[1],
          "resume keeps steps <= 2, wall time continues");
    free(x);
    free(y);
    write_text(tpath("bad-metrics.jsonl"), "{\"step\":1}\nnope\n");
    CHECK(ex_metrics_read_series(tpath("bad-metrics.jsonl"), "step", "x", &x, &y, &n) ==
                  SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "bad-metrics.jsonl:2"),
          "bad metrics line: %s", segrl_last_error());

    /* progress: log lines when not live, a \r line when live */
    f = fopen(tpath("progress.txt"), "w+b");
    ex_progress pr;
    ex_progress_init(&pr, f, "rl", 0, 5, EX_PROGRESS_OFF, 2);
    CHECK(ex_progress_eta(&pr, 0) < 0, "no ETA before the first step");
    for (int s = 1; s <= 5; s++) ex_progress_update(&pr, s, "reward 0.50");
    ex_progress_log(&pr, "eval: accuracy %.1f%%", 12.5);
    ex_progress_finish(&pr);
    CHECK(ex_progress_eta(&pr, 5) == 0, "ETA 0 at the end");
    ex_progress pl;
    ex_progress_init(&pl, f, "warmup", 10, 20, EX_PROGRESS_ON, 1);
    ex_progress_update(&pl, 15, NULL);
    ex_progress_log(&pl, "a message");
    ex_progress_update(&pl, 20, "done");
    ex_progress_finish(&pl);
    fclose(f);
    txt = read_text(tpath("progress.txt"), NULL);
    CHECK(contains(txt, "rl 2/5  40%") && contains(txt, "rl 4/5") && contains(txt, "rl 5/5 100%") &&
              !contains(txt, "rl 3/5") && contains(txt, "ETA") && contains(txt, "| reward 0.50") &&
              contains(txt, "eval: accuracy 12.5%"),
          "log lines:\n%s", txt ? txt : "");
    CHECK(contains(txt, "\r\033[Kwarmup [###############.....] 15/20  75%") &&
              contains(txt, "\r\033[Ka message\n") && contains(txt, "20/20 100%"),
          "live line");
    free(txt);
}

static void test_plot(void) {
    char metrics[512];
    snprintf(metrics, sizeof metrics, "%s", tpath("metrics.jsonl"));
    char why[4096];
    int have = ex_plot_available(why, sizeof why);
    const char *keys[] = {"reward", "accuracy", "loss", "kl"};
    if (have) {
        const char *png = tpath("metrics.png");
        segrl_status st = ex_plot_metrics(metrics, keys, 4, "step", png);
        CHECK(st == SEGRL_OK, "plot: %s", segrl_last_error());
        long n = 0;
        char *img = read_text(png, &n);
        CHECK(img && n > 1000 && memcmp(img, "\x89PNG", 4) == 0, "PNG written (%ld bytes)", n);
        free(img);
        char *gp = read_text(tpath("metrics.gp"), NULL);
        CHECK(contains(gp, "$d0 << EOD") && contains(gp, "set multiplot layout 2,2") &&
                  !contains(gp, "'kl'"),
              "script beside the image, absent key left out");
        free(gp);
        ex_plot_series ser[2] = {{metrics, "run a", "step", "reward"},
                                 {metrics, "run b", "wall_s", "reward"}};
        CHECK(ex_plot_compare(ser, 2, "reward", "x", "reward", tpath("cmp.png")) == SEGRL_OK,
              "compare plot: %s", segrl_last_error());
        struct stat sb;
        CHECK(stat(tpath("cmp.png"), &sb) == 0 && sb.st_size > 1000, "compare PNG");
        const char *none[] = {"nothing"};
        CHECK(ex_plot_metrics(metrics, none, 1, "step", tpath("none.png")) == SEGRL_ERR_INVALID &&
                  contains(segrl_last_error(), "none of the 1 requested metrics"),
              "no data: %s", segrl_last_error());
    } else {
        printf("  gnuplot not installed (%s): PNG checks skipped\n", why);
    }
    /* without gnuplot on PATH: a clear message, nothing else */
    const char *old = getenv("PATH");
    char *saved = old ? strdup(old) : NULL;
    setenv("PATH", "/nonexistent-dir", 1);
    CHECK(!ex_plot_available(why, sizeof why) && contains(why, "gnuplot"), "unavailable");
    CHECK(ex_plot_metrics(metrics, keys, 4, "step", tpath("x.png")) == SEGRL_ERR_UNSUPPORTED &&
              contains(segrl_last_error(), "gnuplot is not on PATH"),
          "missing gnuplot: %s", segrl_last_error());
    struct stat sb;
    CHECK(stat(tpath("x.png"), &sb) != 0, "no image without gnuplot");
    if (saved) {
        setenv("PATH", saved, 1);
        free(saved);
    }
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "test-examples-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("cannot create a temporary folder\n");
        return 2;
    }
    printf("files in %s (removed when every check passes)\n", tmpdir);
    test_rng();
    test_time();
    test_sampler();
    test_stats();
    test_synth();
    test_synth_verifier();
    test_answers();
    test_loaders();
    test_config();
    test_metrics();
    test_plot();
    /* the files stay for a look when something failed */
    if (h_fail == 0) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return h_finish();
}
