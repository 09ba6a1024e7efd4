/* synth.c — the synthetic GSM8K-format dataset of the CPU demo; see ex_synth.h. */
#define _POSIX_C_SOURCE 200809L
#include "ex_synth.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMES[] = {"Ann", "Ben", "Cal", "Dan", "Eva", "Fay", "Gus", "Ivy", "Jon",
                                    "Kim", "Lee", "Max", "Mia", "Ned", "Pam", "Sam", "Tom", "Zoe"};
static const char *const OBJS[] = {"apples", "pens",  "cards", "eggs",   "books", "cups",
                                   "balls",  "coins", "shells", "stamps", "nuts",  "beads"};
static const char *const BOXES[] = {"bags", "boxes", "packs", "jars"};
#define COUNT(a) ((int64_t)(sizeof(a) / sizeof((a)[0])))

ex_synth_opts ex_synth_opts_default(void) {
    ex_synth_opts o;
    o.seed = 1234;
    o.difficulty = 1;
    o.noise = 0;
    o.num_train = 20000;
    o.num_test = 500;
    return o;
}

// ----------------------------------------------------------------------------
// programs

static void set_step(ex_synth_problem *p, int i, char op, int32_t a_ref, int64_t a, int32_t b_ref,
                     int64_t b) {
    p->steps[i].op = op;
    p->steps[i].a_ref = a_ref;
    p->steps[i].a = a;
    p->steps[i].b_ref = b_ref;
    p->steps[i].b = b;
    if (i + 1 > p->num_steps) p->num_steps = i + 1;
}

static int64_t apply(char op, int64_t a, int64_t b) {
    switch (op) {
    case '+': return a + b;
    case '-': return a - b;
    case '*': return a * b;
    default: return b ? a / b : 0;
    }
}

/* Evaluates the program; with slip_step >= 0 that step's result is shifted by delta and later
 * steps use the shifted value. Writes the solution text when buf != NULL and each step's result
 * to r (EX_SYNTH_MAX_STEPS). Returns the final result. */
static int64_t run(const ex_synth_problem *p, int32_t slip_step, int64_t delta, char *buf,
                   size_t cap, int64_t *r) {
    size_t o = 0;
    for (int32_t i = 0; i < p->num_steps; i++) {
        const ex_synth_step *s = &p->steps[i];
        int64_t a = s->a_ref >= 0 ? r[s->a_ref] : s->a;
        int64_t b = s->b_ref >= 0 ? r[s->b_ref] : s->b;
        r[i] = apply(s->op, a, b) + (i == slip_step ? delta : 0);
        if (buf && o < cap)
            o += (size_t)snprintf(buf + o, cap - o, "%s%lld%c%lld=%lld.", i ? " " : "",
                                  (long long)a, s->op, (long long)b, (long long)r[i]);
    }
    int64_t final = r[p->num_steps - 1];
    if (buf && o < cap) snprintf(buf + o, cap - o, "\n#### %lld", (long long)final);
    return final;
}

static int64_t R(ex_rng *r, int64_t lo, int64_t hi) { return ex_rng_int(r, lo, hi); }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Fills question and program for template t of difficulty d; 0 when the draw is rejected (an
 * answer out of range), and the caller draws again. */
static int draw(ex_rng *r, int32_t d, ex_synth_problem *p, int64_t *max_answer) {
    const char *nm = NAMES[R(r, 0, COUNT(NAMES) - 1)];
    const char *ob = OBJS[R(r, 0, COUNT(OBJS) - 1)];
    const char *bx = BOXES[R(r, 0, COUNT(BOXES) - 1)];
    char *q = p->question;
    size_t qc = sizeof p->question;
    int64_t a, b, c, k, s, m;
    int t;
    p->num_steps = 0;
    switch (d) {
    case 0:
        *max_answer = 130;
        t = (int)R(r, 0, 2);
        p->template_id = t;
        if (t == 0) {
            a = R(r, 1, 60), b = R(r, 1, 60);
            snprintf(q, qc, "%s has %lld %s and gets %lld more. How many now?", nm,
                     (long long)a, ob, (long long)b);
            set_step(p, 0, '+', -1, a, -1, b);
        } else if (t == 1) {
            a = R(r, 2, 60), b = R(r, 1, a - 1);
            snprintf(q, qc, "%s has %lld %s and loses %lld. How many left?", nm,
                     (long long)a, ob, (long long)b);
            set_step(p, 0, '-', -1, a, -1, b);
        } else {
            a = R(r, 2, 9), b = R(r, 2, 9);
            snprintf(q, qc, "%s has %lld %s of %lld %s. How many %s?", nm, (long long)a, bx,
                     (long long)b, ob, ob);
            set_step(p, 0, '*', -1, a, -1, b);
        }
        return 1;
    case 1:
    case 2:
        *max_answer = d == 1 ? 130 : 200;
        t = (int)R(r, 0, d == 1 ? 5 : 8);
        p->template_id = 10 * d + t;
        switch (t) {
        case 0: /* a*b + c */
            a = R(r, 2, 9), b = R(r, 2, 9), m = a * b;
            c = R(r, 1, min64(60, *max_answer - m));
            snprintf(q, qc, "%s has %lld %s of %lld %s and %lld more. How many %s?", nm,
                     (long long)a, bx, (long long)b, ob, (long long)c, ob);
            set_step(p, 0, '*', -1, a, -1, b);
            set_step(p, 1, '+', 0, 0, -1, c);
            return 1;
        case 1: /* a*b - c */
            a = R(r, 2, 9), b = R(r, 2, 9), m = a * b;
            c = R(r, 1, min64(60, m - 1));
            snprintf(q, qc, "%s has %lld %s of %lld %s and gives away %lld. How many left?",
                     nm, (long long)a, bx, (long long)b, ob, (long long)c);
            set_step(p, 0, '*', -1, a, -1, b);
            set_step(p, 1, '-', 0, 0, -1, c);
            return 1;
        case 2: /* a + b - c */
            a = R(r, 5, 60), b = R(r, 1, 60), s = a + b;
            c = R(r, 1, min64(60, s - 1));
            snprintf(q, qc, "%s has %lld %s, finds %lld and loses %lld. How many now?", nm,
                     (long long)a, ob, (long long)b, (long long)c);
            set_step(p, 0, '+', -1, a, -1, b);
            set_step(p, 1, '-', 0, 0, -1, c);
            return 1;
        case 3: /* a - b + c */
            a = R(r, 10, 60), b = R(r, 1, a - 1), c = R(r, 1, 60);
            snprintf(q, qc, "%s had %lld %s, sold %lld and bought %lld. How many now?", nm,
                     (long long)a, ob, (long long)b, (long long)c);
            set_step(p, 0, '-', -1, a, -1, b);
            set_step(p, 1, '+', 0, 0, -1, c);
            return 1;
        case 4: /* (a + b) * k, a + b <= 9 */
            k = R(r, 2, 9), a = R(r, 1, 8), b = R(r, 1, 9 - a);
            snprintf(q, qc, "%s buys %lld red and %lld blue %s of %lld %s. How many %s?", nm,
                     (long long)a, (long long)b, bx, (long long)k, ob, ob);
            set_step(p, 0, '+', -1, a, -1, b);
            set_step(p, 1, '*', 0, 0, -1, k);
            return 1;
        case 5: /* (a - b) * k */
            a = R(r, 3, 9), b = R(r, 1, a - 1), k = R(r, 2, 9);
            snprintf(q, qc, "%s has %lld %s of %lld %s and gives away %lld %s. How many %s "
                     "left?", nm, (long long)a, bx, (long long)k, ob, (long long)b, bx, ob);
            set_step(p, 0, '-', -1, a, -1, b);
            set_step(p, 1, '*', 0, 0, -1, k);
            return 1;
        case 6: /* a*b + c*k */
            a = R(r, 2, 9), b = R(r, 2, 9), c = R(r, 2, 9), k = R(r, 2, 9);
            snprintf(q, qc, "%s buys %lld %s of %lld %s and %lld %s of %lld. How many %s?", nm,
                     (long long)a, bx, (long long)b, ob, (long long)c, bx, (long long)k, ob);
            set_step(p, 0, '*', -1, a, -1, b);
            set_step(p, 1, '*', -1, c, -1, k);
            set_step(p, 2, '+', 0, 0, 1, 0);
            return 1;
        case 7: /* a*b + c - k */
            a = R(r, 2, 9), b = R(r, 2, 9), c = R(r, 1, 60);
            k = R(r, 1, min64(60, a * b + c - 1));
            snprintf(q, qc, "%s has %lld %s of %lld %s, gets %lld and loses %lld. How many "
                     "now?", nm, (long long)a, bx, (long long)b, ob, (long long)c, (long long)k);
            set_step(p, 0, '*', -1, a, -1, b);
            set_step(p, 1, '+', 0, 0, -1, c);
            set_step(p, 2, '-', 1, 0, -1, k);
            return 1;
        default: /* (a*b) / a + c: sharing equally */
            a = R(r, 2, 9), b = R(r, 2, 9), c = R(r, 1, 60);
            snprintf(q, qc, "%s puts %lld %s into %lld equal %s and adds %lld to one. How many "
                     "in it?", nm, (long long)(a * b), ob, (long long)a, bx, (long long)c);
            set_step(p, 0, '/', -1, a * b, -1, a);
            set_step(p, 1, '+', 0, 0, -1, c);
            return 1;
        }
    default: /* 3: hard, three steps with two-digit x one-digit products */
        *max_answer = 999;
        t = (int)R(r, 0, 2);
        p->template_id = 30 + t;
        if (t == 0) {
            a = R(r, 2, 9), b = R(r, 10, 30), c = R(r, 2, 9), k = R(r, 10, 30);
            snprintf(q, qc, "%s buys %lld %s of %lld %s and %lld %s of %lld. How many %s?", nm,
                     (long long)a, bx, (long long)b, ob, (long long)c, bx, (long long)k, ob);
            set_step(p, 0, '*', -1, a, -1, b);
            set_step(p, 1, '*', -1, c, -1, k);
            set_step(p, 2, '+', 0, 0, 1, 0);
        } else if (t == 1) {
            a = R(r, 2, 9), b = R(r, 10, 30), m = a * b;
            c = R(r, 1, min64(99, m - 1)), k = R(r, 1, 99);
            snprintf(q, qc, "%s has %lld %s of %lld %s, sells %lld and buys %lld. How many "
                     "now?", nm, (long long)a, bx, (long long)b, ob, (long long)c, (long long)k);
            set_step(p, 0, '*', -1, a, -1, b);
            set_step(p, 1, '-', 0, 0, -1, c);
            set_step(p, 2, '+', 1, 0, -1, k);
        } else {
            a = R(r, 1, 8), b = R(r, 1, 9 - a), k = R(r, 10, 30), c = R(r, 1, 60);
            snprintf(q, qc, "%s buys %lld red and %lld blue %s of %lld %s and eats %lld. How "
                     "many left?", nm, (long long)a, (long long)b, bx, (long long)k, ob,
                     (long long)c);
            set_step(p, 0, '+', -1, a, -1, b);
            set_step(p, 1, '*', 0, 0, -1, k);
            set_step(p, 2, '-', 1, 0, -1, c);
        }
        return 1;
    }
}

void ex_synth_one(ex_rng *r, int32_t difficulty, ex_synth_problem *out) {
    if (difficulty < 0) difficulty = 0;
    if (difficulty > 3) difficulty = 3;
    for (;;) {
        ex_synth_problem p;
        memset(&p, 0, sizeof p);
        int64_t max_answer = 0;
        if (!draw(r, difficulty, &p, &max_answer)) continue;
        int64_t res[EX_SYNTH_MAX_STEPS];
        p.answer = run(&p, -1, 0, p.solution, sizeof p.solution, res);
        if (p.answer < 0 || p.answer > max_answer) continue;
        p.written = p.answer;
        p.slip_step = -1;
        *out = p;
        return;
    }
}

void ex_synth_add_slip(ex_rng *r, ex_synth_problem *p) {
    static const int64_t deltas[] = {1, -1, 2, -2, 10, -10};
    for (int tries = 0; tries < 64; tries++) {
        int32_t s = (int32_t)ex_rng_int(r, 0, p->num_steps - 1);
        int64_t d = deltas[ex_rng_int(r, 0, COUNT(deltas) - 1)];
        /* the slipped step's result must stay >= 0 and the final answer must change */
        int64_t res[EX_SYNTH_MAX_STEPS];
        run(p, -1, 0, NULL, 0, res);
        if (res[s] + d < 0) continue;
        int64_t w = run(p, s, d, NULL, 0, res);
        if (w == p->answer || w < 0) continue;
        p->written = run(p, s, d, p->solution, sizeof p->solution, res);
        p->noisy = 1;
        p->slip_step = s;
        p->slip_delta = d;
        return;
    }
}

// ----------------------------------------------------------------------------
// sets

/* a set of question strings (open addressing on an FNV-1a hash) */
typedef struct qset {
    const char **slot;
    uint64_t cap;
} qset;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* 1 when q was added, 0 when it was there */
static int qset_add(qset *set, const char *q) {
    uint64_t i = fnv1a(q) & (set->cap - 1);
    while (set->slot[i]) {
        if (strcmp(set->slot[i], q) == 0) return 0;
        i = (i + 1) & (set->cap - 1);
    }
    set->slot[i] = q;
    return 1;
}

void ex_synth_set_free(ex_synth_set *s) {
    if (!s) return;
    free(s->train);
    free(s->test);
    memset(s, 0, sizeof *s);
}

segrl_status ex_synth_generate(const ex_synth_opts *opts, ex_synth_set *out) {
    const char *fn = "ex_synth_generate";
    if (!opts || !out) return segrl_set_error(SEGRL_ERR_INVALID, "%s: opts/out: NULL", fn);
    if (opts->difficulty < 0 || opts->difficulty > 3)
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: difficulty: %d is not in 0..3", fn,
                               (int)opts->difficulty);
    if (!(opts->noise >= 0 && opts->noise <= 1))
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: noise: %g is not in [0, 1]", fn, opts->noise);
    if (opts->num_train < 0 || opts->num_test < 0 || opts->num_train + opts->num_test < 1 ||
        opts->num_train + opts->num_test > 100000000)
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: num_train/num_test: need 1 .. 1e8 problems "
                               "in all", fn);
    ex_synth_set s;
    memset(&s, 0, sizeof s);
    s.train = calloc((size_t)(opts->num_train ? opts->num_train : 1), sizeof *s.train);
    s.test = calloc((size_t)(opts->num_test ? opts->num_test : 1), sizeof *s.test);
    qset set = {NULL, 1};
    while (set.cap < 2 * (uint64_t)(opts->num_train + opts->num_test)) set.cap *= 2;
    set.slot = calloc(set.cap, sizeof *set.slot);
    if (!s.train || !s.test || !set.slot) {
        free(set.slot);
        ex_synth_set_free(&s);
        return segrl_set_error(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    }
    /* separate streams: the questions do not depend on the noise level */
    ex_rng rq, rn;
    ex_rng_seed_stream(&rq, opts->seed, 1);
    ex_rng_seed_stream(&rn, opts->seed, 2);
    segrl_status st = SEGRL_OK;
    for (int split = 0; split < 2 && st == SEGRL_OK; split++) {
        int64_t want = split == 0 ? opts->num_test : opts->num_train;
        ex_synth_problem *dst = split == 0 ? s.test : s.train;
        int64_t got = 0, tries = 0, limit = 50 * want + 1000;
        while (got < want && tries++ < limit) {
            ex_synth_one(&rq, opts->difficulty, &dst[got]);
            if (!qset_add(&set, dst[got].question)) continue;
            if (split == 1 && ex_rng_uniform(&rn) < opts->noise) {
                ex_synth_add_slip(&rn, &dst[got]);
                s.num_noisy += dst[got].noisy;
            }
            int64_t len = (int64_t)(strlen(dst[got].question) + 1 + strlen(dst[got].solution));
            if (len > s.max_chars) s.max_chars = len;
            got++;
        }
        if (got < want)
            st = segrl_set_error(SEGRL_ERR_INVALID, "%s: num_%s: only %lld distinct problems "
                                 "found at difficulty %d (asked for %lld)", fn,
                                 split == 0 ? "test" : "train", (long long)got,
                                 (int)opts->difficulty, (long long)want);
    }
    free(set.slot);
    if (st != SEGRL_OK) {
        ex_synth_set_free(&s);
        return st;
    }
    s.num_train = opts->num_train;
    s.num_test = opts->num_test;
    *out = s;
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// files

static int write_jsonl(FILE *f, const ex_synth_problem *p, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddStringToObject(o, "question", p[i].question) ||
            !cJSON_AddStringToObject(o, "answer", p[i].solution)) {
            cJSON_Delete(o);
            return 0;
        }
        char *s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!s) return 0;
        int ok = fputs(s, f) >= 0 && fputc('\n', f) != EOF;
        free(s);
        if (!ok) return 0;
    }
    return 1;
}

static segrl_status write_file(const char *dir, const char *name, const ex_synth_set *s,
                               const ex_synth_opts *o, int what) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return segrl_set_error(SEGRL_ERR_INVALID, "ex_synth_write: %s: cannot write", path);
    int ok = 1;
    if (what == 0) ok = write_jsonl(f, s->train, s->num_train);
    else if (what == 1) ok = write_jsonl(f, s->test, s->num_test);
    else if (what == 2) {
        for (int64_t i = 0; ok && i < s->num_train; i++)
            ok = fprintf(f, "%s\n%s\n\n", s->train[i].question, s->train[i].solution) > 0;
    } else {
        ok = fprintf(f, "{\"generator\": \"gsm8k-synth\", \"seed\": %llu, \"difficulty\": %d, "
                        "\"noise\": %.17g, \"num_train\": %lld, \"num_test\": %lld, "
                        "\"num_noisy\": %lld, \"max_chars\": %lld}\n",
                     (unsigned long long)o->seed, (int)o->difficulty, o->noise,
                     (long long)s->num_train, (long long)s->num_test, (long long)s->num_noisy,
                     (long long)s->max_chars) > 0;
    }
    if (fclose(f) != 0) ok = 0;
    if (!ok) return segrl_set_error(SEGRL_ERR_INVALID, "ex_synth_write: %s: write failed", path);
    return SEGRL_OK;
}

segrl_status ex_synth_write(const ex_synth_set *s, const ex_synth_opts *opts, const char *dir) {
    if (!s || !opts || !dir)
        return segrl_set_error(SEGRL_ERR_INVALID, "ex_synth_write: s/opts/dir: NULL");
    static const char *const names[] = {"train.jsonl", "test.jsonl", "corpus.txt", "meta.json"};
    for (int i = 0; i < 4; i++) {
        segrl_status st = write_file(dir, names[i], s, opts, i);
        if (st != SEGRL_OK) return st;
    }
    return SEGRL_OK;
}
