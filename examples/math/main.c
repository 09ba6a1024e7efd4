/* segrl-math — RL on MATH-format data (problem / solution with \boxed{...}) graded by the MATH
 * verifier; a thin wrapper of the trainer core (examples/train/trainer.c). docs/training.md.
 *   build/examples/segrl-math --config examples/math/qwen2.5-math-1.5b-grpo.json \
 *       --model.path /models/Qwen2.5-Math-1.5B --data.train MATH/train.jsonl --data.test MATH-500.jsonl */
#include "trainer.h"

int main(int argc, char **argv) {
    static const char *const presets[] = {"reward.name=math", "data.format=auto",
                                          "gen.max_new_tokens=1024"};
    return trainer_main(argc, argv, "segrl-math", presets, 3);
}
