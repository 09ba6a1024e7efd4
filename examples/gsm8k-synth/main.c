/* gsm8k-synth — writes the synthetic GSM8K-format dataset of the CPU demo.
 *
 *   gsm8k-synth --out data/synth [--train 20000] [--test 500] [--seed 1234] [--difficulty 1]
 *               [--noise 0] [--show 5]
 *
 * Writes out/train.jsonl and out/test.jsonl ({"question", "answer"} lines, the answer a worked
 * solution ending in "#### N"), out/corpus.txt (the training text, for a tokenizer trainer) and
 * out/meta.json. Deterministic: the same flags give the same bytes. See examples/README.md. */
#define _POSIX_C_SOURCE 200809L
#include "ex.h"

#include <stdio.h>
#include <string.h>

static const ex_cfg_key KEYS[] = {
    {"out", EX_CFG_STRING, "data/gsm8k-synth", NULL, 0, 0, "output directory (created)"},
    {"train", EX_CFG_INT, "20000", NULL, 0, 1e8, "training problems"},
    {"test", EX_CFG_INT, "500", NULL, 0, 1e8, "test problems"},
    {"seed", EX_CFG_INT, "1234", NULL, 0, 9e15, "generator seed"},
    {"difficulty", EX_CFG_INT, "1", NULL, 0, 3,
     "0 one step, 1 two steps (calibrated easy), 2 two-three steps, 3 hard"},
    {"noise", EX_CFG_FLOAT, "0", NULL, 0, 1,
     "fraction of training solutions with one arithmetic slip"},
    {"show", EX_CFG_INT, "3", NULL, 0, 1000, "print this many training problems"},
};

int main(int argc, char **argv) {
    ex_config cfg;
    int setup = ex_config_setup(&cfg, KEYS, (int32_t)(sizeof KEYS / sizeof KEYS[0]), argc, argv,
                                "gsm8k-synth");
    if (setup) return setup == 1 ? 0 : 2;
    ex_synth_opts o = ex_synth_opts_default();
    o.num_train = ex_config_int(&cfg, "train");
    o.num_test = ex_config_int(&cfg, "test");
    o.seed = (uint64_t)ex_config_int(&cfg, "seed");
    o.difficulty = (int32_t)ex_config_int(&cfg, "difficulty");
    o.noise = ex_config_float(&cfg, "noise");
    const char *out = ex_config_str(&cfg, "out");
    int64_t show = ex_config_int(&cfg, "show");

    double t0 = ex_now();
    ex_synth_set set;
    if (ex_synth_generate(&o, &set) != SEGRL_OK) {
        fprintf(stderr, "gsm8k-synth: %s\n", segrl_last_error());
        ex_config_free(&cfg);
        return 1;
    }
    int rc = 0;
    if (ex_make_dirs(out) != 0) {
        fprintf(stderr, "gsm8k-synth: %s: cannot create the directory\n", out);
        rc = 1;
    } else if (ex_synth_write(&set, &o, out) != SEGRL_OK) {
        fprintf(stderr, "gsm8k-synth: %s\n", segrl_last_error());
        rc = 1;
    } else {
        for (int64_t i = 0; i < show && i < set.num_train; i++)
            printf("%s\n%s%s\n\n", set.train[i].question, set.train[i].solution,
                   set.train[i].noisy ? "   (noisy: true answer differs)" : "");
        printf("gsm8k-synth: %lld train (%lld noisy) + %lld test problems, difficulty %d, seed "
               "%llu, longest question+solution %lld chars, %.2fs -> %s/{train,test}.jsonl, "
               "corpus.txt, meta.json\n",
               (long long)set.num_train, (long long)set.num_noisy, (long long)set.num_test,
               (int)o.difficulty, (unsigned long long)o.seed, (long long)set.max_chars,
               ex_now() - t0, out);
    }
    ex_synth_set_free(&set);
    ex_config_free(&cfg);
    return rc;
}
