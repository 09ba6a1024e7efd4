/* trainer_keys.c — the configuration keys of the GSM8K / MATH example trainers, with defaults.
 * The defaults are the CPU demo's (`make demo`): a tiny model on the synthetic dataset; the JSON
 * files beside each trainer set the values for real models. docs/training.md holds this table
 * (ex_config_print_markdown prints it); tests/test-examples.c checks that every key is there. */
#include "ex_config.h"

#define B EX_CFG_BOOL
#define I EX_CFG_INT
#define F EX_CFG_FLOAT
#define S EX_CFG_STRING
#define E EX_CFG_ENUM
#define L EX_CFG_INTLIST
#define J EX_CFG_JSON

static const ex_cfg_key keys[] = {
    /* ---- run ---- */
    {"run.steps", I, "200", NULL, 0, 1e9, "RL steps (one policy update of batch_prompts prompts each)"},
    {"run.seed", I, "1", NULL, 0, 9e15, "seed of every random choice (data order, sampling, init)"},
    {"run.threads", I, "1", NULL, 1, 1024, "compute threads for libtorch and BLAS (1 is fastest on 2 cores)"},
    {"run.output_dir", S, "runs/demo", NULL, 0, 0, "metrics.jsonl, config.json, plots and checkpoints go here"},
    {"run.resume", S, "", NULL, 0, 0, "\"\": fresh run; \"auto\": latest checkpoint in output_dir if any; else a checkpoint directory"},
    {"run.max_seconds", F, "0", NULL, 0, 1e9, "stop RL after this much wall time (0: no limit)"},
    {"run.log_every", I, "1", NULL, 1, 1e9, "plain log line every N steps (when stdout is not a terminal)"},
    {"run.progress", E, "auto", "auto|on|off", 0, 0, "live progress line: auto = only when stdout is a terminal"},
    {"run.plot", B, "true", NULL, 0, 0, "write PNG plots of the metrics with gnuplot at the end"},

    /* ---- model ---- */
    {"model.path", S, "", NULL, 0, 0, "Hugging Face model directory (config.json, *.safetensors, tokenizer.json); \"\": build the tiny demo model"},
    {"model.dtype", E, "f32", "f32|bf16", 0, 0, "parameter dtype"},
    {"model.tiny_dim", I, "128", NULL, 8, 65536, "tiny model: width d_model"},
    {"model.tiny_layers", I, "4", NULL, 1, 1024, "tiny model: transformer layers"},
    {"model.tiny_heads", I, "4", NULL, 1, 1024, "tiny model: attention heads"},
    {"model.tiny_ctx", I, "128", NULL, 16, 1048576, "tiny model: context length in tokens"},

    /* ---- data ---- */
    {"data.train", S, "", NULL, 0, 0, "training JSONL (GSM8K or MATH); \"\": generate the synthetic set into output_dir/data"},
    {"data.test", S, "", NULL, 0, 0, "test JSONL for evaluation; \"\": the synthetic test split"},
    {"data.format", E, "auto", "auto|gsm8k|math", 0, 0, "JSONL schema; auto: \"question\" -> gsm8k, \"problem\" -> math"},
    {"data.skip_bad", B, "false", NULL, 0, 0, "skip (and count) malformed lines instead of stopping"},
    {"data.synth_train", I, "20000", NULL, 1, 1e8, "synthetic set: training problems"},
    {"data.synth_test", I, "500", NULL, 1, 1e8, "synthetic set: test problems"},
    {"data.synth_difficulty", I, "1", NULL, 0, 3, "synthetic set: 0 one step, 1 two steps (calibrated easy), 2 two-three steps, 3 hard"},
    {"data.synth_noise", F, "0", NULL, 0, 1, "synthetic set: fraction of training solutions with one arithmetic slip"},
    {"data.synth_seed", I, "1234", NULL, 0, 9e15, "synthetic set: generator seed"},
    {"prompt.template", S, "{question}\n", NULL, 0, 0, "prompt text; {question} is replaced by the problem"},

    /* ---- supervised warm-up ---- */
    {"sft.steps", I, "0", NULL, 0, 1e9, "supervised warm-up steps on the worked solutions before RL (0: none)"},
    {"sft.batch_size", I, "32", NULL, 1, 1e6, "warm-up sequences per step"},
    {"sft.lr", F, "0.001", NULL, 0, 1, "warm-up learning rate"},
    {"sft.max_seconds", F, "0", NULL, 0, 1e9, "stop the warm-up after this much wall time (0: no limit)"},

    /* ---- algorithm ---- */
    {"algo.estimator", E, "grpo", "grpo|dr-grpo|rloo|reinforce++|ppo|vineppo|spo-chain|spo-tree", 0, 0, "advantage estimator"},
    {"algo.group_size", I, "8", NULL, 1, 4096, "samples per prompt (G)"},
    {"algo.batch_prompts", I, "16", NULL, 1, 1e6, "prompts per step"},
    {"algo.ppo_epochs", I, "1", NULL, 1, 1000, "optimization passes over each batch"},
    {"algo.minibatches", I, "1", NULL, 1, 1e6, "optimizer steps per pass (the batch is split)"},
    {"algo.gamma", F, "1", NULL, 0, 1, "discount (ppo GAE, vineppo)"},
    {"algo.lambda", F, "1", NULL, 0, 1, "GAE lambda (ppo)"},

    /* ---- generation ---- */
    {"gen.max_new_tokens", I, "48", NULL, 1, 1048576, "response length limit in tokens"},
    {"gen.temperature", F, "1", NULL, 0, 100, "sampling temperature (0: greedy)"},
    {"gen.top_p", F, "1", NULL, 0, 1, "nucleus sampling mass (1: off)"},
    {"gen.top_k", I, "0", NULL, 0, 1e9, "top-k sampling (0: off)"},

    /* ---- optimizer ---- */
    {"optim.lr", F, "0.0001", NULL, 0, 1, "AdamW learning rate"},
    {"optim.schedule", E, "constant", "constant|warmup-constant|warmup-cosine", 0, 0, "learning-rate schedule"},
    {"optim.warmup_steps", I, "0", NULL, 0, 1e9, "linear warm-up steps of the schedule"},
    {"optim.min_lr_ratio", F, "0", NULL, 0, 1, "warmup-cosine: final lr as a fraction of optim.lr"},
    {"optim.weight_decay", F, "0.01", NULL, 0, 10, "AdamW decoupled weight decay"},
    {"optim.grad_clip", F, "1", NULL, 0, 1e9, "max global gradient norm (0: no clipping)"},
    {"optim.beta1", F, "0.9", NULL, 0, 1, "AdamW beta1"},
    {"optim.beta2", F, "0.999", NULL, 0, 1, "AdamW beta2"},
    {"optim.eps", F, "1e-08", NULL, 0, 1, "AdamW epsilon"},

    /* ---- loss ---- */
    {"loss.mode", E, "ppo", "ppo|gspo|cispo|reinforce", 0, 0, "policy-gradient loss (segrl_pg_mode)"},
    {"loss.clip_eps_low", F, "0.2", NULL, 0, 10, "ratio clip below: 1 - eps_low"},
    {"loss.clip_eps_high", F, "0.2", NULL, 0, 10, "ratio clip above: 1 + eps_high (DAPO clip-higher: 0.28)"},
    {"loss.dual_clip_c", F, "0", NULL, 0, 1e6, "dual-clip constant c > 1 for negative advantages (0: off)"},
    {"loss.kl_type", E, "none", "none|k1|abs|k2|k3", 0, 0, "KL estimator against the reference policy (k3 = verl low_var_kl)"},
    {"loss.kl_coef", F, "0", NULL, 0, 1e6, "KL penalty coefficient beta (0: off, no reference model kept)"},
    {"loss.entropy_coef", F, "0", NULL, -1e6, 1e6, "entropy bonus coefficient"},
    {"loss.agg", E, "token-mean", "token-mean|seq-mean-token-mean|seq-mean-token-sum|seq-mean-token-sum-norm", 0, 0, "how token terms become the loss (seq-mean-token-sum-norm = Dr. GRPO)"},
    {"loss.value_coef", F, "0.5", NULL, 0, 1e6, "ppo: value-loss coefficient"},
    {"loss.value_clip", F, "0.2", NULL, 0, 1e6, "ppo: value clip range (<= 0: none)"},

    /* ---- SPO / VinePPO ---- */
    {"spo.cutpoint_tau", F, "0.9", NULL, 0, 1, "spo-chain: a token with p < tau is low-probability"},
    {"spo.cutpoints", I, "5", NULL, 1, 1e6, "spo-chain: every k-th low-probability token starts a segment (k)"},
    {"spo.max_segments", I, "0", NULL, 0, 1e6, "spo-chain: at most this many segments per response (0: no cap)"},
    {"spo.mc_samples", I, "4", NULL, 1, 4096, "spo-chain, vineppo: Monte Carlo continuations per boundary (K)"},
    {"spo.mc_adaptive", B, "false", NULL, 0, 0, "spend K x boundaries rollouts where the value is most uncertain (Wilson interval)"},
    {"spo.mc_initial", I, "2", NULL, 1, 4096, "adaptive budget: rollouts every boundary gets first"},
    {"spo.mc_batch", I, "0", NULL, 0, 1e9, "adaptive budget: rollouts per allocation round (0: one per boundary)"},
    {"spo.mc_z", F, "1.96", NULL, 0.01, 10, "adaptive budget: Wilson interval z"},
    {"spo.prob_mask_tau", F, "0.9", NULL, 0, 1, "spo-chain: probability mask threshold"},
    {"spo.tree_branching", L, "6-6-6", NULL, 0, 0, "spo-tree: children per node at each level"},
    {"spo.segment_len", I, "30", NULL, 1, 1048576, "spo-tree: tokens per tree segment (the last level runs to the end)"},
    {"spo.replay_max_age", I, "0", NULL, 0, 1e9, "spo-tree: replay tree edges up to this many steps old (0: no replay)"},
    {"spo.replay_per_question", I, "0", NULL, 0, 1e9, "spo-tree: replayed edges per question at most (0: no cap)"},

    /* ---- reward ---- */
    {"reward.name", S, "gsm8k", NULL, 0, 0, "reward (segrl_reward_create name): gsm8k, math, plugin, http, ..."},
    {"reward.options", J, "{}", NULL, 0, 0, "the reward's options, a JSON object (e.g. {\"path\": \"./libmy.so\"} for plugin)"},

    /* ---- evaluation and checkpoints ---- */
    {"eval.every", I, "20", NULL, 0, 1e9, "greedy pass@1 on the test split every N steps (0: only before and after)"},
    {"eval.size", I, "500", NULL, 0, 1e9, "test problems evaluated (0: the whole split)"},
    {"eval.max_new_tokens", I, "0", NULL, 0, 1048576, "evaluation response limit (0: gen.max_new_tokens)"},
    {"ckpt.every", I, "50", NULL, 0, 1e9, "checkpoint every N steps (0: only at the end)"},
    {"ckpt.keep", I, "2", NULL, 0, 1e6, "checkpoints kept (older ones deleted; 0: keep all)"},
};

const ex_cfg_key *ex_trainer_keys(int32_t *out_num_keys) {
    if (out_num_keys) *out_num_keys = (int32_t)(sizeof keys / sizeof keys[0]);
    return keys;
}
