/* segrl/train.h — training utilities of the ATen bridge (libsegrl_torch): AdamW, gradient-norm
 * clipping, learning-rate schedules, gradient accumulation, and atomic, checksummed checkpoints.
 *
 * The last section wraps segrl's loss kernels (segrl/loss.h) as custom autograd functions: a
 * libtorch trainer gets differentiable log-probs and losses whose backward runs segrl's backward.
 *
 * Parameters are segrl_tensor handles (e.g. the borrowed ones segrl_model_parameters returns).
 * The optimizer keeps its own reference to each parameter tensor (it shares the storage, so an
 * update is seen by the model) and reads the gradient libtorch's autograd accumulated in it.
 * Everything here runs on the parameters' device with ATen ops (CPU, or CUDA with a CUDA
 * libtorch). Only pointers, integers and floats cross this header; every function returns
 * segrl_status and sets segrl_last_error() on failure; no C++ exception crosses it.
 * docs/torch-training.md has the formulas, the checkpoint layout and what a resume guarantees. */
#ifndef SEGRL_TRAIN_H
#define SEGRL_TRAIN_H

#include "segrl/core.h"
#include "segrl/loss.h"
#include "segrl/torch.h"

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// learning-rate schedules

/* Values are appended only. */
typedef enum segrl_lr_kind {
    SEGRL_LR_CONSTANT = 0,        /* lr(t) = base */
    SEGRL_LR_WARMUP_COSINE = 1,   /* linear warmup, then cosine decay to min_ratio * base */
    SEGRL_LR_WARMUP_CONSTANT = 2, /* linear warmup, then base */
} segrl_lr_kind;

/* lr(t) for the update with 0-based index t (the first update has t = 0), W = warmup_steps,
 * T = total_steps, r = min_ratio:
 *   t <  W:  base * (t + 1) / W                         (warmup: the first update is not wasted
 *                                                        at lr 0; update W-1 reaches base)
 *   t >= W:  constant:        base
 *            warmup_cosine:   p = min(1, (t - W) / max(1, T - W))
 *                             base * (r + (1 - r) * (1 + cos(pi * p)) / 2)
 *            (cosine reaches r * base at t = T and stays there; Loshchilov & Hutter 2017,
 *             arXiv 1608.03983, without restarts) */
typedef struct segrl_lr_schedule {
    int32_t kind;         /* segrl_lr_kind */
    int64_t warmup_steps; /* W >= 0 (ignored by SEGRL_LR_CONSTANT) */
    int64_t total_steps;  /* T >= W for warmup_cosine; ignored otherwise */
    double min_ratio;     /* r in [0, 1] for warmup_cosine; ignored otherwise */
} segrl_lr_schedule;

/* The learning rate of update `step` (>= 0) for base rate `base_lr` (finite, >= 0).
 * Errors: SEGRL_ERR_INVALID (names the field). */
SEGRL_API segrl_status segrl_lr_schedule_value(const segrl_lr_schedule *schedule, double base_lr,
                                               int64_t step, double *out_lr);

// ----------------------------------------------------------------------------
// gradient-norm clipping

/* Global L2 norm over the gradients of `n` parameters (those without a gradient are skipped),
 *   norm = sqrt(sum_i ||g_i||^2)      (each ||g_i|| in f32, the sum over parameters in f64)
 * and, when max_norm > 0 and norm > max_norm, every gradient is scaled in place by
 *   max_norm / (norm + 1e-6)          (the rule of torch.nn.utils.clip_grad_norm_).
 * *out_norm is the norm BEFORE clipping. When it is not finite (inf/nan: an overflowed or NaN
 * gradient) the gradients are left untouched and the call still returns SEGRL_OK, so the caller
 * can see it and skip the update. max_norm <= 0 only measures.
 * Errors: SEGRL_ERR_INVALID (a NULL parameter, mixed devices). */
SEGRL_API segrl_status segrl_clip_grad_norm(segrl_tensor *const *params, int64_t n,
                                            double max_norm, double *out_norm);

// ----------------------------------------------------------------------------
// AdamW

/* AdamW (Loshchilov & Hutter 2019, arXiv 1711.05101: Adam with decoupled weight decay), the
 * update of torch.optim.AdamW. For update t = 1, 2, ... with gradient g (already divided by the
 * step's grad_divisor and clipped), lr = schedule value at t - 1:
 *   p <- p * (1 - lr * wd)                  (wd = 0 for excluded parameters, see decay_1d)
 *   m <- b1 * m + (1 - b1) * g
 *   v <- b2 * v + (1 - b2) * g^2
 *   p <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * m and v are f32 whatever the parameter dtype. */
typedef struct segrl_adamw_config {
    double lr;            /* base learning rate (the schedule scales it); default 1e-5 */
    double beta1, beta2;  /* default 0.9, 0.999 */
    double eps;           /* default 1e-8 */
    double weight_decay;  /* default 0.01 */
    int32_t decay_1d;     /* 0 (default): parameters with one dimension (norm weights, biases) get
                           * no weight decay, as Llama/Qwen trainers do; 1: decay every parameter */
    double max_grad_norm; /* > 0: segrl_optimizer_step clips to it (default 1.0); 0: no clipping */
    int32_t skip_nonfinite; /* 1 (default): a step whose gradient norm is inf/nan changes nothing
                             * (no update, step count unchanged, info->skipped = 1); 0: update
                             * anyway (NaN then reaches the parameters) */
    int32_t master_weights; /* 1 (default): for bf16/f16 parameters keep an f32 master copy; the
                             * update is applied to the master and rounded into the parameter.
                             * 0: the update is computed in f32 and rounded into the parameter
                             * from the parameter itself (small updates may round away). f32
                             * parameters never have a master copy. */
    segrl_lr_schedule schedule; /* default: constant */
} segrl_adamw_config;

/* The defaults listed above. */
SEGRL_API segrl_adamw_config segrl_adamw_default(void);

/* An optimizer over a fixed list of parameters. Opaque. */
typedef struct segrl_optimizer segrl_optimizer;

/* Creates AdamW over `n` >= 1 parameters. params[i] must be a floating tensor (f32, bf16, f16)
 * that requires grad; the optimizer takes its own reference to each (the handles may be freed or
 * borrowed ones). names: NULL (then "param.<i>") or `n` unique non-empty strings, copied; they
 * key the moments in checkpoints (use the model's parameter names). The moments (and master
 * copies) are allocated now, zero (masters: a copy of the parameter), on each parameter's device.
 * *out is written only on success; free with segrl_optimizer_free.
 * Errors: SEGRL_ERR_INVALID (names the field or parameter), SEGRL_ERR_ALLOC. */
SEGRL_API segrl_status segrl_adamw_create(segrl_tensor *const *params, const char *const *names,
                                          int64_t n, const segrl_adamw_config *config,
                                          segrl_optimizer **out);

/* Frees the optimizer and its moments (not the parameters). NULL does nothing. */
SEGRL_API void segrl_optimizer_free(segrl_optimizer *opt);

/* Drops every parameter's gradient (sets it to undefined, as zero_grad(set_to_none=True)): the
 * next backward starts a fresh sum. Call it once before the first micro-batch of each update. */
SEGRL_API segrl_status segrl_optimizer_zero_grad(segrl_optimizer *opt);

/* What one segrl_optimizer_step did. */
typedef struct segrl_step_info {
    double grad_norm; /* global L2 norm of the divided gradients, before clipping (inf/nan shown) */
    double lr;        /* the learning rate used (or that would have been used, when skipped) */
    int64_t step;     /* updates done after this call (segrl_optimizer_steps) */
    int32_t skipped;  /* 1 when the norm was not finite and skip_nonfinite left everything as is */
    int32_t clipped;  /* 1 when the gradients were scaled down to max_grad_norm */
} segrl_step_info;

/* One update from the gradients accumulated since the last zero_grad.
 * Gradient accumulation: run backward on K micro-batches (autograd sums their gradients), then
 * call step once with grad_divisor = the normalizer of the whole batch. With micro-batch losses
 * written as SUMS (e.g. token-sum losses) and grad_divisor = the total token count of the K
 * micro-batches, the update equals the one from a single backward of the full batch's mean loss
 * (up to float summation order); with each micro-batch loss a mean over equal-sized micro-batches,
 * grad_divisor = K. grad_divisor = 1 uses the gradients as they are. The division happens before
 * the norm is measured, so clipping sees the full-batch gradient.
 * Parameters without a gradient are skipped (their moments are not decayed either).
 * The gradients are left scaled (divided, clipped) after the call; zero_grad drops them.
 * info may be NULL. Errors: SEGRL_ERR_INVALID (grad_divisor not finite and > 0, a gradient whose
 * shape or device differs from its parameter). */
SEGRL_API segrl_status segrl_optimizer_step(segrl_optimizer *opt, double grad_divisor,
                                            segrl_step_info *info);

/* Updates done so far (t of the formula; restored by segrl_checkpoint_load). */
SEGRL_API int64_t segrl_optimizer_steps(const segrl_optimizer *opt);

/* The learning rate the next step will use. */
SEGRL_API double segrl_optimizer_lr(const segrl_optimizer *opt);

/* Number of parameters; their count is fixed at creation. */
SEGRL_API int64_t segrl_optimizer_count(const segrl_optimizer *opt);

/* Copies every bf16/f16 parameter into its f32 master (after the caller changed the parameters
 * outside the optimizer, e.g. loaded weights with another tool). No-op without masters. */
SEGRL_API segrl_status segrl_optimizer_sync_master(segrl_optimizer *opt);

/* The f32 first and second moments of parameter `index` in [0, count): NEW references to the
 * optimizer's own tensors (not copies: writing into them changes the optimizer). Either output
 * may be NULL. For inspection and tests. */
SEGRL_API segrl_status segrl_optimizer_moments(const segrl_optimizer *opt, int64_t index,
                                               segrl_tensor **out_exp_avg,
                                               segrl_tensor **out_exp_avg_sq);

// ----------------------------------------------------------------------------
// checkpoints

/* A checkpoint is a directory <root>/step-<12-digit step>/ holding
 *   model.safetensors      the parameters, under the names given (opens in other tools)
 *   optimizer.safetensors  f32 moments "exp_avg/<name>", "exp_avg_sq/<name>" and the f32 masters
 *                          "master/<name>" (only when an optimizer was saved)
 *   trainer_state.json     step, optimizer step and hyper-parameters, the schedule, torch's CPU
 *                          generator state, the caller's 64-bit RNG state, the caller's JSON, and
 *                          the CRC-32 and size of each file; its own CRC-32 is its last member
 * and <root>/latest holds the name of the newest complete checkpoint. Saving writes everything
 * into <root>/.tmp-step-<step>-<pid>/, fsyncs each file and the directory, renames it to its
 * final name, then replaces `latest` through latest.tmp + fsync + rename: a crash at any moment
 * leaves `latest` naming a complete, readable checkpoint (or absent before the first save). */

/* Saves a checkpoint of `n` parameters (names: `n` unique non-empty strings, the weights' names
 * in model.safetensors) and, when opt is not NULL, its moments and step under <root> (created
 * when missing, one level). step: the trainer's step (>= 0; names the directory; an existing
 * checkpoint of the same step is replaced, atomically). user_rng: any 64-bit state of the
 * caller's own RNG, returned by load. user_json: NULL or a JSON text stored under "user" and
 * returned by load (must parse). The torch CPU generator's state is saved too.
 * Errors: SEGRL_ERR_INVALID (arguments; file system errors with the OS message), SEGRL_ERR_ALLOC.
 * On failure the temporary directory is removed and `latest` is unchanged. */
SEGRL_API segrl_status segrl_checkpoint_save(const char *root, segrl_tensor *const *params,
                                             const char *const *names, int64_t n,
                                             const segrl_optimizer *opt, int64_t step,
                                             uint64_t user_rng, const char *user_json);

/* What segrl_checkpoint_load read besides the tensors. */
typedef struct segrl_checkpoint_info {
    int64_t step;           /* the trainer step given to save */
    int64_t optimizer_step; /* the optimizer's update count (-1 when no optimizer was saved) */
    uint64_t user_rng;      /* the caller's RNG state given to save */
    char *user_json;        /* NEW string (free with segrl_free), or NULL when none was saved */
} segrl_checkpoint_info;

/* Loads a checkpoint into `n` parameters (looked up by name in model.safetensors; shapes must
 * match, the dtype is converted when it differs; tensors of the file not asked for are ignored)
 * and, when opt is not NULL, the optimizer's moments, masters and step (opt's parameter names
 * and shapes must match the saved ones). The torch CPU generator's state is restored.
 * path: a checkpoint directory, or a root whose `latest` names one.
 * Every file's size and CRC-32 is verified, and every name and shape checked, BEFORE anything is
 * changed: on any error no parameter, moment, step or RNG state is touched. A corrupted file
 * gives SEGRL_ERR_INVALID "segrl_checkpoint_load: <file>: checksum mismatch (...)".
 * info may be NULL. Errors: SEGRL_ERR_INVALID, SEGRL_ERR_ALLOC. */
SEGRL_API segrl_status segrl_checkpoint_load(const char *path, segrl_tensor *const *params,
                                             const char *const *names, int64_t n,
                                             segrl_optimizer *opt, segrl_checkpoint_info *info);

/* The steps of the complete checkpoints under <root> ("step-*" directories with a
 * trainer_state.json), ascending. Writes min(count, capacity) steps into out_steps (may be NULL
 * when capacity is 0) and the total into *out_count. A missing root gives 0 checkpoints. */
SEGRL_API segrl_status segrl_checkpoint_list(const char *root, int64_t *out_steps,
                                             int64_t capacity, int64_t *out_count);

/* Keeps the `keep_last` (>= 1) newest checkpoints under <root> and the one `latest` names, and
 * removes the others and any leftover .tmp-* directory of an interrupted save (one whose process
 * is gone is not distinguished: do not prune while another process saves into the same root).
 * *out_removed (may be NULL): checkpoints removed. */
SEGRL_API segrl_status segrl_checkpoint_prune(const char *root, int64_t keep_last,
                                              int64_t *out_removed);

// ----------------------------------------------------------------------------
// autograd-aware losses

/* Each call runs the segrl forward kernel on the inputs' device and returns NEW tensors that are
 * part of libtorch's autograd graph (when an input requires grad): a later backward (e.g.
 * segrl_tensor_backward on a loss built from them) calls the matching segrl backward kernel and
 * sends the gradients on to the inputs. Inputs are borrowed for the call; the graph keeps its own
 * references to what the backward needs (libtorch's saved-tensor version checks apply: changing
 * a saved input in place before the backward is an error there). The forward validates contents
 * (SEGRL_CHECKS_FULL); the backward checks shapes only. The calls take the inputs as they are
 * (a non-contiguous input is copied first) and never change them. Workspaces are allocated
 * through libtorch's allocator on the inputs' device. On CUDA the kernels run on the current
 * libtorch stream (libtorch 2.x; with older versions the default stream). */

/* Fused log-probabilities from logits (segrl_logprobs_forward / _backward):
 *   z = logits / T,  logp = z[target] - logsumexp(z),  entropy = logsumexp(z) - sum softmax(z) z
 * logits: (..., V) f32/bf16/f16. targets: i32/i64 with logits' leading shape (a negative id: no
 * target, logp 0 and no gradient there). opts: NULL for the defaults (temperature 1).
 * out_logp (required) and out_entropy (NULL: not returned): NEW f32 tensors of targets' shape,
 * both differentiable w.r.t. logits:
 *   dlogits = (g (onehot(target) - p) - h p (log p + entropy)) / T   (g, h their upstream grads)
 * Errors: SEGRL_ERR_INVALID (shapes, dtypes, a target >= V, non-finite logits: the kernel's
 * message), SEGRL_ERR_ALLOC, SEGRL_ERR_NO_DEVICE / SEGRL_ERR_CUDA from the kernels. */
SEGRL_API segrl_status segrl_autograd_logprobs(const segrl_tensor *logits,
                                               const segrl_tensor *targets,
                                               const segrl_logprob_opts *opts,
                                               segrl_tensor **out_logp,
                                               segrl_tensor **out_entropy);

/* The same from hidden states and the LM-head weight without materializing the logits
 * (segrl_linear_logprobs_forward / _backward; logits = hidden @ weight^T):
 * hidden: (..., D), weight: (V, D), both f32 or both bf16; targets: hidden's leading shape.
 * Differentiable w.r.t. hidden and weight (gradients in their dtype; the kernels accumulate in
 * f32). opts->accumulate is ignored (autograd accumulates). */
SEGRL_API segrl_status segrl_autograd_linear_logprobs(const segrl_tensor *hidden,
                                                      const segrl_tensor *weight,
                                                      const segrl_tensor *targets,
                                                      const segrl_logprob_opts *opts,
                                                      segrl_tensor **out_logp,
                                                      segrl_tensor **out_entropy);

/* The tensors of segrl_autograd_policy_loss: segrl_policy_loss_inputs with tensors, NULL for an
 * absent one. Token tensors are (B, T) (padded) or, with `offsets`, (N) (packed). */
typedef struct segrl_autograd_policy_inputs {
    const segrl_tensor *logp;       /* required; differentiable */
    const segrl_tensor *old_logp;
    const segrl_tensor *advantages; /* required */
    const segrl_tensor *ref_logp;
    const segrl_tensor *entropy;    /* differentiable (the entropy bonus) */
    const segrl_tensor *values;     /* differentiable (the value loss) */
    const segrl_tensor *old_values;
    const segrl_tensor *returns;
    const segrl_tensor *mask;
    const segrl_tensor *prob_mask;
    const segrl_tensor *offsets;    /* NULL: padded; else i32/i64 (B + 1): packed */
} segrl_autograd_policy_inputs;

/* The policy loss of segrl_policy_loss_forward (PPO / GSPO / CISPO / REINFORCE, KL, entropy,
 * value terms, the four aggregations; opts NULL: the defaults) as a NEW 0-dim f32 tensor,
 * differentiable w.r.t. logp, entropy and values; its backward is segrl_policy_loss_backward.
 * out_stats (may be NULL): the forward's statistics. With opts->normalizer set to the full
 * batch's normalizer, the losses of micro-batches sum to the full batch's loss, and so do
 * their gradients (segrl_optimizer_step with grad_divisor 1). */
SEGRL_API segrl_status segrl_autograd_policy_loss(const segrl_autograd_policy_inputs *in,
                                                  const segrl_policy_loss_opts *opts,
                                                  segrl_tensor **out_loss,
                                                  segrl_policy_loss_stats *out_stats);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_TRAIN_H */
