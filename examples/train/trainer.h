/* trainer.h — the trainer core shared by the GSM8K and MATH example programs (examples/gsm8k,
 * examples/math): supervised warm-up and RL with any of segrl's estimators on a Llama/Qwen2 model
 * through the ATen bridge (segrl/torch.h, segrl/train.h), rollouts through segrl/rollout.h,
 * rewards through segrl/reward.h. docs/training.md documents the keys, metrics and outputs.
 *
 *   trainer_main(argc, argv, "segrl-gsm8k", presets, n)   runs a whole program: parse the config
 *   (presets are key=value defaults of the program, applied before --config files and flags),
 *   load or build model, tokenizer and data, warm up, train, evaluate, checkpoint, plot.
 * Exit status: 0 success, 1 a runtime error (message on stderr), 2 a configuration error. */
#ifndef SEGRL_EXAMPLES_TRAINER_H
#define SEGRL_EXAMPLES_TRAINER_H

#ifdef __cplusplus
extern "C" {
#endif

int trainer_main(int argc, char **argv, const char *program, const char *const *presets,
                 int num_presets);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_EXAMPLES_TRAINER_H */
