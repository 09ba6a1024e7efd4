/* segrl-gsm8k — RL on GSM8K-format data (the official JSONL, or the synthetic demo set) with any
 * of segrl's estimators; a thin wrapper of the trainer core (examples/train/trainer.c).
 *   build/examples/segrl-gsm8k --config examples/gsm8k/qwen2.5-0.5b-grpo.json \
 *       --model.path /models/Qwen2.5-0.5B-Instruct --data.train gsm8k/train.jsonl ...
 * With no arguments it trains the tiny demo model on the synthetic set. docs/training.md. */
#include "trainer.h"

int main(int argc, char **argv) {
    static const char *const presets[] = {"reward.name=gsm8k", "data.format=auto"};
    return trainer_main(argc, argv, "segrl-gsm8k", presets, 2);
}
