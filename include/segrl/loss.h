/* segrl/loss.h — policy-gradient losses with exact gradients, and fused log-probabilities that
 * never materialize the full softmax.
 *
 *   segrl_policy_loss_forward / _backward   PPO / GSPO / CISPO / REINFORCE surrogate, KL to a
 *                                           reference policy, entropy bonus, clipped value loss,
 *                                           four aggregation modes, statistics
 *   segrl_logprobs_forward / _backward      log p(target), entropy, p(target), sum p^2 from
 *                                           logits (N, V) in one pass (online softmax)
 *   segrl_linear_logprobs_forward / _backward
 *                                           the same from hidden states (N, D) and the LM-head
 *                                           weight (V, D), logits computed a block at a time
 *
 * Every call: one entry for CPU and CUDA (dispatch on the views' device; every view of a call on
 * one device), outputs written only when SEGRL_OK is returned, a caller-provided workspace
 * (exec->workspace, on the views' device, 16-byte aligned, at least what the matching
 * _workspace_size query returned). Arithmetic is f32 per element with f32 or f64 accumulation
 * (f64 for every batch-wide sum of the policy loss).
 *
 * Errors common to all calls: SEGRL_ERR_INVALID (the message names the argument:
 * "<function>: <argument>: <problem>"), SEGRL_ERR_WORKSPACE, SEGRL_ERR_NO_DEVICE, SEGRL_ERR_CUDA;
 * the fused linear path on CUDA also SEGRL_ERR_UNSUPPORTED when libcublas cannot be loaded (it is
 * opened with dlopen on first use: libcublas.so.13, then libcublas.so; the message names it).
 * Formulas, papers and the option names of verl / TRL / Liger: docs/losses.md. */
#ifndef SEGRL_LOSS_H
#define SEGRL_LOSS_H

#include "segrl/core.h"
#include "segrl/advantage.h" /* segrl_kl_estimator */

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// policy loss

/* The surrogate. r_t is the importance ratio of token t, A_t its advantage, eps_l / eps_h the
 * clip range, c the dual-clip constant.
 *   PPO (Schulman et al. 2017, arXiv 1707.06347), asymmetric clip-higher (DAPO, arXiv 2503.14476),
 *   dual clip (Ye et al. 2019, arXiv 1912.09729):
 *       r_t  = exp(clamp(logp_t - old_logp_t, -log_ratio_clamp, log_ratio_clamp))
 *       l_t  = max(-A_t r_t, -A_t clip(r_t, 1 - eps_l, 1 + eps_h))
 *       if c > 0 and A_t < 0:  l_t = min(l_t, -A_t c)
 *   GSPO (Zheng et al. 2025, arXiv 2507.18071), token form: the ratio is the sequence's
 *       s_b = exp(clamp(mean over valid t of (logp_t - old_logp_t))) with the gradient of
 *       s_bt = sg(s_b) * exp(logp_t - sg(logp_t)); l_t as PPO with r_t = s_bt (no dual clip).
 *       With one advantage per sequence and SEQ_MEAN_TOKEN_MEAN this is GSPO's sequence objective.
 *   CISPO (MiniMax-M1, arXiv 2506.13585):
 *       l_t = -sg(min(r_t, 1 + eps_h)) * A_t * logp_t       (eps_l > 0 also bounds r_t below by
 *                                                            1 - eps_l; eps_l <= 0: no bound)
 *   REINFORCE: l_t = -A_t * logp_t (old_logp unused).
 * sg() is stop-gradient: the backward treats its argument as a constant. */
typedef enum segrl_pg_mode {
    SEGRL_PG_PPO = 0,
    SEGRL_PG_GSPO = 1,
    SEGRL_PG_CISPO = 2,
    SEGRL_PG_REINFORCE = 3,
} segrl_pg_mode;

/* How per-token terms l_t (valid tokens only) become the scalar loss: L = sum_t w_t l_t.
 * n_b is the number of valid tokens of sequence b; S the number of sequences with n_b > 0;
 * NT = sum_b n_b. `normalizer` (opts) replaces the batch-wide denominator when > 0, so that
 * micro-batches of one batch, each given the full batch's normalizer, sum to the full batch's
 * loss and gradient exactly (up to rounding). */
typedef enum segrl_loss_agg {
    SEGRL_AGG_TOKEN_MEAN = 0,              /* w = 1 / NT            normalizer replaces NT (DAPO) */
    SEGRL_AGG_SEQ_MEAN_TOKEN_MEAN = 1,     /* w = 1 / (S * n_b)     normalizer replaces S (GRPO) */
    SEGRL_AGG_SEQ_MEAN_TOKEN_SUM = 2,      /* w = 1 / S             normalizer replaces S */
    SEGRL_AGG_SEQ_MEAN_TOKEN_SUM_NORM = 3, /* w = 1 / C             (Dr.GRPO) normalizer is C;
                                            * 0: C = T (padded) or the longest sequence (packed) */
} segrl_loss_agg;

typedef struct segrl_policy_loss_opts {
    int32_t mode;          /* segrl_pg_mode; default PPO */
    float clip_low;        /* eps_l >= 0; default 0.2 */
    float clip_high;       /* eps_h >= 0; default 0.2 (DAPO: 0.28) */
    float clip_c;          /* dual-clip constant c > 1, or 0 (off, the default); PPO only */
    float log_ratio_clamp; /* > 0; default 20 (verl); GSPO clamps the sequence mean log-ratio */
    int32_t kl_type;       /* segrl_kl_estimator of logp vs ref_logp; default SEGRL_KL_NONE */
    float kl_coef;         /* beta: L += beta * agg(kl_t); 0 or kl_type NONE: off */
    float entropy_coef;    /* L -= entropy_coef * agg(entropy_t); 0: off */
    float value_coef;      /* L += value_coef * agg(0.5 * max((v - R)^2, (v_clip - R)^2)); 0: off */
    float value_clip;      /* v_clip = old_v + clamp(v - old_v, -value_clip, value_clip); <= 0: no
                            * clipping (the loss is 0.5 (v - R)^2) */
    int32_t agg;           /* segrl_loss_agg; default TOKEN_MEAN */
    double normalizer;     /* see segrl_loss_agg; 0: computed from this call's mask */
} segrl_policy_loss_opts;

/* PPO, clip 0.2 / 0.2, no dual clip, log_ratio_clamp 20, no KL / entropy / value terms,
 * TOKEN_MEAN, normalizer 0. */
SEGRL_API segrl_policy_loss_opts segrl_policy_loss_opts_default(void);

/* Token tensors of one call (segrl_layout: padded (B, T) or packed (N)); logp defines the
 * geometry. Float tensors may be f32, bf16 or f16 (each its own dtype); masks u8/i32/i64/f32. */
typedef struct segrl_policy_loss_inputs {
    segrl_view logp;       /* required: log pi_theta(token) */
    segrl_view old_logp;   /* PPO, GSPO, CISPO: required; REINFORCE: unused */
    segrl_view advantages; /* required */
    segrl_view ref_logp;   /* required when the KL term is on */
    segrl_view entropy;    /* required when entropy_coef != 0; else optional (stats only) */
    segrl_view values;     /* values, old_values, returns: required when value_coef != 0 */
    segrl_view old_values;
    segrl_view returns;
    segrl_view mask;       /* none: every token valid */
    segrl_view prob_mask;  /* none, or e.g. segrl_prob_mask's output: a token is valid when
                            * mask != 0 AND prob_mask != 0 (SPO applies it to every term) */
} segrl_policy_loss_inputs;

/* Forward statistics. Means are plain means over this call's valid tokens (not the aggregation
 * weights); num_tokens lets callers combine micro-batches. */
typedef struct segrl_policy_loss_stats {
    double loss;           /* the total L (also written to out_loss) */
    double pg_loss;        /* agg(l_t) */
    double kl_loss;        /* agg(kl_t), before kl_coef; 0 when off */
    double entropy_loss;   /* agg(entropy_t), before entropy_coef; 0 when entropy is none */
    double value_loss;     /* agg(value term), before value_coef; 0 when off */
    double clip_frac_low;  /* fraction of valid tokens with A < 0 and r < 1 - eps_l (clipped) */
    double clip_frac_high; /* fraction with A > 0 and r > 1 + eps_h (clipped) */
    double dual_clip_frac; /* fraction with A < 0 and r > c (PPO with c > 0) */
    double approx_kl;      /* mean(old_logp - logp) (verl ppo_kl); 0 for REINFORCE */
    double ratio_mean;     /* mean r_t (GSPO: s_b at each token); 1 for REINFORCE */
    double ratio_max;
    double ratio_min;
    double kl_mean;        /* mean kl_t of the chosen estimator (0 when off) */
    double entropy_mean;   /* mean entropy_t (0 when none) */
    double value_clip_frac;/* fraction where the clamp is active and the clipped term is larger */
    double num_tokens;     /* valid tokens in this call */
    double num_seqs;       /* sequences with at least one valid token in this call */
} segrl_policy_loss_stats;

/* Bytes of exec->workspace the policy-loss calls need for `batch` sequences and `tokens` token
 * slots (B * T padded, N packed) on `device`. */
SEGRL_API segrl_status segrl_policy_loss_workspace_size(segrl_device device, int64_t batch,
                                                        int64_t tokens, size_t *out_bytes);

/* The scalar loss L = agg(l) + kl_coef * agg(kl) - entropy_coef * agg(entropy)
 *                     + value_coef * agg(value term)     (one aggregation, opts->agg, for all).
 * KL estimators (Schulman, "Approximating KL divergence", 2020), d = logp - ref_logp:
 *   K1 d;  ABS |d|;  K2 d^2 / 2;  K3 e^(-d) + d - 1 with d clamped to [-20, 20] and the value to
 *   [-10, 10] (verl low_var_kl); no gradient where a clamp is active.
 *
 * opts NULL: the defaults. out_loss: f32 view of one element on the views' device, or none.
 * out_stats: host struct, or NULL (on CUDA, asking for stats synchronizes exec->stream).
 * At least one of them must be given.
 * Content checks (SEGRL_CHECKS_FULL): every float input finite at valid tokens; offsets.
 * Zero valid tokens with opts->normalizer == 0 is SEGRL_ERR_INVALID ("in->mask: no valid
 * tokens"); with a normalizer > 0 the loss is 0 (an empty micro-batch). On CUDA that count is
 * read back only under SEGRL_CHECKS_FULL (one stream synchronization); under SEGRL_CHECKS_SHAPES
 * an empty batch gives loss 0 and zero gradients instead of the error. */
SEGRL_API segrl_status segrl_policy_loss_forward(const segrl_layout *layout,
                                                 const segrl_policy_loss_inputs *in,
                                                 const segrl_policy_loss_opts *opts,
                                                 const segrl_exec *exec, segrl_view out_loss,
                                                 segrl_policy_loss_stats *out_stats);

/* Gradients of L (as the forward defines it, stop-gradients included) times grad_loss:
 *   out_grad_logp     dL/dlogp_t        (f32/bf16/f16 token tensor, or none)
 *   out_grad_entropy  dL/dentropy_t = -entropy_coef * w_t        (or none)
 *   out_grad_values   dL/dvalues_t                                (or none)
 * Invalid tokens get 0. grad_loss: f32 one-element view on the views' device (the upstream
 * gradient), or none for 1. Same inputs, opts and checks as the forward; the outputs may not
 * alias the inputs. */
SEGRL_API segrl_status segrl_policy_loss_backward(const segrl_layout *layout,
                                                  const segrl_policy_loss_inputs *in,
                                                  const segrl_policy_loss_opts *opts,
                                                  segrl_view grad_loss, const segrl_exec *exec,
                                                  segrl_view out_grad_logp,
                                                  segrl_view out_grad_entropy,
                                                  segrl_view out_grad_values);

// ----------------------------------------------------------------------------
// fused log-probabilities

/* z = logits / temperature, per row (token) i with target y_i:
 *   lse_i     = log sum_j exp(z_ij)
 *   logp_i    = z_iy - lse_i
 *   entropy_i = lse_i - sum_j p_ij z_ij            (p = softmax(z))
 *   p_target  = exp(logp_i);  sum_p2 = sum_j p_ij^2
 * computed in one pass over the row with an online softmax over vocabulary chunks.
 * Backward: dz_ij = g_i (delta_jy - p_ij) - h_i p_ij (log p_ij + entropy_i),
 *           dlogits = dz / temperature        (g = grad_logp, h = grad_entropy).
 * Targets: i32/i64 (N); a negative id means "no target" (logp and p_target are 0 there, g is
 * ignored); an id >= V is SEGRL_ERR_INVALID naming targets and the row (on CUDA checked under
 * SEGRL_CHECKS_FULL, one synchronization; under SEGRL_CHECKS_SHAPES such a row is treated as having
 * no target).
 * Non-finite policy (SEGRL_CHECKS_FULL): a NaN or +Inf logit, or a row whose logits are all -Inf,
 * is SEGRL_ERR_INVALID naming logits (or hidden/weight for the fused linear path) and the row,
 * with nothing written; -Inf logits are allowed (masked vocabulary entries get p = 0). Under
 * SEGRL_CHECKS_SHAPES they propagate as IEEE arithmetic gives. Backward inputs are not checked
 * for finiteness. */
typedef struct segrl_logprob_opts {
    float temperature;   /* > 0; default 1 */
    int64_t vocab_chunk; /* vocabulary entries per block; 0: the default (CPU 2048, CUDA: the
                          * kernel's own; fused linear 4096) */
    int64_t token_chunk; /* fused linear: tokens per block; 0: the default (CPU 256, CUDA 4096) */
    int32_t accumulate;  /* fused linear backward: 1 adds into out_grad_hidden / out_grad_weight
                          * (micro-batch accumulation), 0 overwrites them */
} segrl_logprob_opts;

/* temperature 1, default chunks, accumulate 0. */
SEGRL_API segrl_logprob_opts segrl_logprob_opts_default(void);

/* Outputs of the forward, each f32 (N) or none; logp is required. lse is what the backward
 * needs; entropy too when a grad_entropy will be given. */
typedef struct segrl_logprob_out {
    segrl_view logp;
    segrl_view entropy;
    segrl_view lse;
    segrl_view p_target;
    segrl_view sum_p2;
} segrl_logprob_out;

/* Workspace bytes for segrl_logprobs_forward / _backward with N rows on `device` (a few f32 per
 * row: outputs are staged there so nothing is written on failure). */
SEGRL_API segrl_status segrl_logprobs_workspace_size(segrl_device device, int64_t rows,
                                                     int64_t vocab, size_t *out_bytes);

/* logits: f32/bf16/f16 (N, V), row stride >= V, unit column stride. targets: i32/i64 (N).
 * opts NULL: defaults. */
SEGRL_API segrl_status segrl_logprobs_forward(segrl_view logits, segrl_view targets,
                                              const segrl_logprob_opts *opts,
                                              const segrl_exec *exec, const segrl_logprob_out *out);

/* lse: f32 (N) from the forward, required. entropy: f32 (N) from the forward, required when
 * grad_entropy is given. grad_logp, grad_entropy: f32 (N) or none (zero). out_grad_logits:
 * same shape as logits, f32/bf16/f16; it may be logits itself (same data, dtype and strides:
 * computed in place). Workspace: none on CPU; on CUDA what segrl_logprobs_workspace_size returned
 * (the target check's scratch). */
SEGRL_API segrl_status segrl_logprobs_backward(segrl_view logits, segrl_view targets,
                                               segrl_view lse, segrl_view entropy,
                                               segrl_view grad_logp, segrl_view grad_entropy,
                                               const segrl_logprob_opts *opts,
                                               const segrl_exec *exec, segrl_view out_grad_logits);

/* Fused linear: logits = hidden @ weight^T (no bias), computed token_chunk x vocab_chunk at a time
 * (OpenBLAS sgemm on CPU, cuBLAS on CUDA) and reduced as above; never N x V at once.
 * hidden: (N, D), weight: (V, D), both f32 or both bf16, unit column stride.
 * Workspace bytes for forward (backward == 0) or backward (1): the bounded working memory
 * (a logits block, the f32 staging of bf16 operand blocks on CPU, per-row outputs). */
SEGRL_API segrl_status segrl_linear_logprobs_workspace_size(segrl_device device, int64_t rows,
                                                            int64_t hidden_dim, int64_t vocab,
                                                            int32_t dtype,
                                                            const segrl_logprob_opts *opts,
                                                            int32_t backward, size_t *out_bytes);

SEGRL_API segrl_status segrl_linear_logprobs_forward(segrl_view hidden, segrl_view weight,
                                                     segrl_view targets,
                                                     const segrl_logprob_opts *opts,
                                                     const segrl_exec *exec,
                                                     const segrl_logprob_out *out);

/* dH = dlogits @ W, dW = dlogits^T @ H with dlogits as in segrl_logprobs_backward, a block at a
 * time. out_grad_hidden (N, D) and out_grad_weight (V, D): f32, or either none (not computed);
 * opts->accumulate adds into them. */
SEGRL_API segrl_status segrl_linear_logprobs_backward(segrl_view hidden, segrl_view weight,
                                                      segrl_view targets, segrl_view lse,
                                                      segrl_view entropy, segrl_view grad_logp,
                                                      segrl_view grad_entropy,
                                                      const segrl_logprob_opts *opts,
                                                      const segrl_exec *exec,
                                                      segrl_view out_grad_hidden,
                                                      segrl_view out_grad_weight);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_LOSS_H */
