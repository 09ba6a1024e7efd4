/* ex_synth.h — the synthetic GSM8K-format dataset of the CPU demo.
 *
 * Multi-step arithmetic word problems with worked solutions in GSM8K's format:
 *   {"question": "Ann has 4 bags of 7 pens and 12 more. How many pens?",
 *    "answer": "4*7=28. 28+12=40.\n#### 40"}
 * Deterministic given the seed. Short on purpose: a model of 0.8M parameters trained for minutes
 * on 2 CPU cores must learn it (see docs/training.md, "The demo task").
 *
 * Difficulty:
 *   0  one step: a+b, a-b, a*b (single-digit products)
 *   1  two steps (the calibrated "easy" task): single-digit products, other operands <= 60,
 *      answers <= 130, question + solution <= 112 characters
 *   2  two or three steps: adds a*b+c*d, a*b+c-d and sharing equally (division); answers <= 200
 *   3  three steps with two-digit x one-digit products (the calibration's "hard"); answers <= 999
 * Noise (training split only): a fraction of solutions contain one arithmetic slip — one step's
 * result is off by 1, 2 or 10 and the later steps carry the wrong value, so the final answer after
 * "####" is wrong while the text looks just as confident. Only a verifier can tell them apart.
 * The splits never share a question, and no question appears twice. */
#ifndef SEGRL_EX_SYNTH_H
#define SEGRL_EX_SYNTH_H

#include "ex_util.h"

#include <segrl/core.h>

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EX_SYNTH_TEXT_CAP 192
#define EX_SYNTH_MAX_STEPS 3

typedef struct ex_synth_opts {
    uint64_t seed;
    int32_t difficulty; /* 0..3, see above; default 1 */
    double noise;       /* fraction of training solutions with a slip, [0, 1]; default 0 */
    int64_t num_train;  /* default 20000 */
    int64_t num_test;   /* default 500 */
} ex_synth_opts;

ex_synth_opts ex_synth_opts_default(void);

/* One arithmetic step of a solution: lhs op rhs, each operand a literal or an earlier result. */
typedef struct ex_synth_step {
    char op;          /* '+', '-', '*', '/' */
    int32_t a_ref;    /* -1: the literal a; else the index of the earlier step giving it */
    int32_t b_ref;
    int64_t a, b;
} ex_synth_step;

typedef struct ex_synth_problem {
    char question[EX_SYNTH_TEXT_CAP];
    char solution[EX_SYNTH_TEXT_CAP]; /* worked solution ending in "\n#### <written answer>" */
    int64_t answer;                   /* the true answer */
    int64_t written;                  /* the answer after "####" (== answer unless noisy) */
    int32_t noisy;                    /* 1 when the solution contains a slip */
    int32_t slip_step;                /* the step with the slip (-1: none) */
    int64_t slip_delta;               /* the slip: written result - true result of that step */
    int32_t template_id;              /* 10 * difficulty + index of the template */
    int32_t num_steps;
    ex_synth_step steps[EX_SYNTH_MAX_STEPS];
} ex_synth_problem;

/* One clean problem drawn from r at the given difficulty (0..3; out of range: clamped). */
void ex_synth_one(ex_rng *r, int32_t difficulty, ex_synth_problem *out);
/* Gives p's solution one slip drawn from r (see above); p->noisy becomes 1. */
void ex_synth_add_slip(ex_rng *r, ex_synth_problem *p);

typedef struct ex_synth_set {
    ex_synth_problem *train; /* num_train */
    ex_synth_problem *test;  /* num_test */
    int64_t num_train, num_test;
    int64_t num_noisy;       /* training problems with a slip */
    int64_t max_chars;       /* longest question + "\n" + solution */
} ex_synth_set;

/* Generates both splits (test first, then train; distinct questions). Errors: bad options
 * (SEGRL_ERR_INVALID, naming the field), too few distinct problems at this difficulty
 * (SEGRL_ERR_INVALID), SEGRL_ERR_ALLOC. Free with ex_synth_set_free. */
segrl_status ex_synth_generate(const ex_synth_opts *opts, ex_synth_set *out);
void ex_synth_set_free(ex_synth_set *s);

/* Writes dir/train.jsonl, dir/test.jsonl (GSM8K format), dir/corpus.txt (every training question
 * and solution, a blank line between problems: input for a tokenizer trainer) and dir/meta.json
 * (options and counts). The directory must exist. */
segrl_status ex_synth_write(const ex_synth_set *s, const ex_synth_opts *opts, const char *dir);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_EX_SYNTH_H */
