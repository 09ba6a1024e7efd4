/* segrl/advantage.h — token- and trajectory-level advantage estimators.
 *
 * Every estimator: one call, CPU and CUDA (dispatch on the views' device), outputs written only
 * when SEGRL_OK is returned. Token-level tensors follow segrl_layout (padded (B,T) or packed (N)).
 * Float inputs and outputs are f32; arithmetic is f32 per token, group/batch statistics are
 * accumulated in f64. Masks may be u8, i32, i64 or f32; a token is valid when its mask is non-zero.
 * A "none" mask means every token is valid.
 *
 * Errors common to all calls: SEGRL_ERR_INVALID (the message names the argument),
 * SEGRL_ERR_WORKSPACE, SEGRL_ERR_NO_DEVICE, SEGRL_ERR_CUDA.
 * Non-finite policy (SEGRL_CHECKS_FULL, the default): a NaN or Inf reward, value, score or
 * log-probability at a valid token (or of a sequence) is SEGRL_ERR_INVALID naming the argument and
 * the position; values at invalid (masked) tokens are never inspected.
 * See docs/advantages.md for formulas, papers and the option names of verl / TRL / OpenRLHF. */
#ifndef SEGRL_ADVANTAGE_H
#define SEGRL_ADVANTAGE_H

#include "segrl/core.h"

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// token level

/* GAE — Generalized Advantage Estimation (Schulman et al. 2015, arXiv 1506.02438).
 *   delta_t = r_t + gamma * V_next(t) - V_t
 *   A_t     = delta_t + gamma * lambda * A_{t+1}
 * walking each sequence backwards. V_next(t) is V of the next valid token of the sequence (0 past
 * its end). Invalid (mask 0) tokens inside a sequence carry V_next and A unchanged and get the
 * carried A as their advantage (observation tokens of multi-turn rollouts are skipped), exactly
 * verl's compute_gae_advantage_return for 0/1 masks. returns_t = A_t + V_t at every token slot.
 * Advantages are not whitened: call segrl_whiten.
 *
 * rewards, values:              f32 token tensors
 * mask:                         u8/i32/i64/f32 token tensor, or none
 * out_advantages, out_returns:  f32 token tensors; may alias rewards/values exactly (in place)
 * Workspace: segrl_workspace_size(SEGRL_OP_GAE, ...) (0 on CPU). */
SEGRL_API segrl_status segrl_gae(const segrl_layout *layout, segrl_view rewards, segrl_view values,
                                 segrl_view mask, float gamma, float lambda,
                                 const segrl_exec *exec, segrl_view out_advantages,
                                 segrl_view out_returns);

typedef enum segrl_kl_estimator {
    SEGRL_KL_NONE = 0, /* no penalty */
    SEGRL_KL_K1 = 1,   /* d = logp - ref_logp                            (verl "kl", "k1") */
    SEGRL_KL_ABS = 2,  /* |d|                                            (verl "abs") */
    SEGRL_KL_K2 = 3,   /* d^2 / 2                                         (verl "mse", "k2") */
    SEGRL_KL_K3 = 4,   /* e^(-d) + d - 1, clamped to [-10, 10]            (verl "low_var_kl", "k3") */
} segrl_kl_estimator;

typedef struct segrl_returns_opts {
    float gamma;          /* discount, e.g. 1.0 */
    float kl_coef;        /* beta; the penalty is off when 0 or kl_estimator is SEGRL_KL_NONE */
    int32_t kl_estimator; /* segrl_kl_estimator */
} segrl_returns_opts;

/* gamma = 1, no KL penalty. */
SEGRL_API segrl_returns_opts segrl_returns_opts_default(void);

/* Discounted return-to-go (REINFORCE, REINFORCE++; Hu 2025, arXiv 2501.03262):
 *   r'_t = r_t - beta * kl_t                    (kl_t from logprobs, ref_logprobs; valid tokens)
 *   G_t  = r'_t + gamma * G_{t+1}
 * Invalid tokens inside a sequence carry G unchanged and get the carried G (as GAE does), so
 * G equals GAE with V = 0 and lambda = 1. G is 0 past the end of each sequence.
 *
 * rewards:                 f32 token tensor
 * mask:                    u8/i32/i64/f32 token tensor, or none
 * logprobs, ref_logprobs:  f32 token tensors; required when the KL penalty is on, else none
 * out_returns:             f32 token tensor; may alias rewards
 * Workspace: SEGRL_OP_DISCOUNTED_RETURNS (0 on CPU). */
SEGRL_API segrl_status segrl_discounted_returns(const segrl_layout *layout, segrl_view rewards,
                                                segrl_view mask, segrl_view logprobs,
                                                segrl_view ref_logprobs,
                                                const segrl_returns_opts *opts,
                                                const segrl_exec *exec, segrl_view out_returns);

typedef struct segrl_whiten_opts {
    int32_t shift_mean; /* 1: (x - mu) / s. 0: (x - mu) / s + mu (verl shift_mean=False) */
    int32_t unbiased;   /* 1: var * n / (n - 1) (verl masked_var default); 0: population var */
    float eps;          /* s = sqrt(var + eps); verl uses 1e-8 */
} segrl_whiten_opts;

/* shift_mean = 1, unbiased = 1, eps = 1e-8. */
SEGRL_API segrl_whiten_opts segrl_whiten_opts_default(void);

/* Masked whitening. Statistics over the valid tokens of the whole batch (group_index none) or of
 * each group's sequences (group_index (B) i32/i64 in [0, num_groups)). Invalid tokens get 0.
 * A group (or batch) with one valid token has var 0; with none, nothing to do.
 *
 * x:    f32 token tensor;  out: f32 token tensor, may alias x
 * Workspace: SEGRL_OP_WHITEN with num_groups (1 when global). */
SEGRL_API segrl_status segrl_whiten(const segrl_layout *layout, segrl_view x, segrl_view mask,
                                    segrl_view group_index, int64_t num_groups,
                                    const segrl_whiten_opts *opts, const segrl_exec *exec,
                                    segrl_view out);

// ----------------------------------------------------------------------------
// trajectory (outcome) level

/* Inputs shared by the outcome estimators. Each sequence b has an outcome reward R_b, either
 * given (scores) or the sum of token_rewards over its valid tokens; sequence b belongs to group
 * group_index[b]. Groups may be interleaved and of unequal size. Sequences with no valid tokens
 * still count in their group's statistics (their token outputs are all 0). */
typedef struct segrl_outcome {
    segrl_view scores;        /* f32 (B): R per sequence; or none to use token_rewards */
    segrl_view token_rewards; /* f32 token tensor; used when scores is none */
    segrl_view mask;          /* token mask, or none (all valid) */
    segrl_view group_index;   /* i32/i64 (B) in [0, num_groups) */
    int64_t num_groups;       /* G >= 1 */
} segrl_outcome;

typedef enum segrl_std_scope {
    SEGRL_STD_GROUP = 0, /* divide by the group's std (GRPO; TRL scale_rewards="group") */
    SEGRL_STD_BATCH = 1, /* divide by the std of R over the batch (TRL scale_rewards="batch") */
    SEGRL_STD_NONE = 2,  /* no division (Dr.GRPO; verl norm_adv_by_std_in_grpo=False) */
} segrl_std_scope;

typedef enum segrl_singleton {
    /* A group of one sample uses baseline 0 and, under SEGRL_STD_GROUP, std 1: A = R
     * (GRPO: R / (1 + eps)), as verl. Under SEGRL_STD_BATCH it is divided by the batch std. */
    SEGRL_SINGLETON_KEEP = 0,
    /* A group of one sample gets advantage 0 (TRL, OpenRLHF behaviour: no signal). */
    SEGRL_SINGLETON_ZERO = 1,
} segrl_singleton;

typedef struct segrl_outcome_opts {
    float eps;         /* GRPO/pass@k: A = (R - mean) / (std + eps); default 1e-6 (verl).
                        * std + eps == 0 (a constant group with eps 0) gives A = 0 */
    int32_t std_scope; /* segrl_std_scope; GRPO and pass@k */
    int32_t unbiased;  /* std with n - 1 (torch.std, verl, TRL) when 1; with n when 0 */
    int32_t singleton; /* segrl_singleton */
} segrl_outcome_opts;

/* eps 1e-6, SEGRL_STD_GROUP, unbiased 1, SEGRL_SINGLETON_KEEP. */
SEGRL_API segrl_outcome_opts segrl_outcome_opts_default(void);

/* Every outcome estimator writes the per-token advantage (A_b at each valid token of sequence b,
 * 0 at invalid tokens) to out_token_advantages (f32 token tensor, required) and, when not none,
 * the per-sequence A_b to out_seq_advantages (f32 (B)). opts NULL means the defaults.
 * Workspace: segrl_workspace_size(SEGRL_OP_<NAME>, device, B, tokens, G). */

/* GRPO (Shao et al. 2024, arXiv 2402.03300): A = (R - mean_g) / (std + eps), std per
 * opts->std_scope. */
SEGRL_API segrl_status segrl_grpo(const segrl_layout *layout, const segrl_outcome *in,
                                  const segrl_outcome_opts *opts, const segrl_exec *exec,
                                  segrl_view out_token_advantages, segrl_view out_seq_advantages);

/* RLOO (Ahmadian et al. 2024, arXiv 2402.14740): A = n / (n - 1) * (R - mean_g), i.e. R minus the
 * mean of the other n - 1 samples. Uses opts->singleton only. */
SEGRL_API segrl_status segrl_rloo(const segrl_layout *layout, const segrl_outcome *in,
                                  const segrl_outcome_opts *opts, const segrl_exec *exec,
                                  segrl_view out_token_advantages, segrl_view out_seq_advantages);

/* REINFORCE++-baseline (Hu 2025, arXiv 2501.03262): A = R - mean_g broadcast to the valid tokens,
 * then whitened over all valid tokens of the batch (unbiased var, eps 1e-8 inside the sqrt, as
 * verl). out_seq_advantages receives R - mean_g (before whitening). */
SEGRL_API segrl_status segrl_reinforce_pp_baseline(const segrl_layout *layout,
                                                   const segrl_outcome *in,
                                                   const segrl_outcome_opts *opts,
                                                   const segrl_exec *exec,
                                                   segrl_view out_token_advantages,
                                                   segrl_view out_seq_advantages);

/* ReMax (Li et al. 2023, arXiv 2310.10505): A = R - R_greedy, with greedy_scores f32 (B) the
 * reward of each prompt's greedy response. Group fields of `in` are not used (group_index may be
 * none). */
SEGRL_API segrl_status segrl_remax(const segrl_layout *layout, const segrl_outcome *in,
                                   segrl_view greedy_scores, const segrl_exec *exec,
                                   segrl_view out_token_advantages, segrl_view out_seq_advantages);

/* OPO (Hao et al. 2025, "On-Policy RL with Optimal Reward Baseline"): A = R - b_g with the
 * length-weighted baseline b_g = sum(len_i R_i) / sum(len_i) over the group, len = number of valid
 * tokens. b_g = 0 when the group has no valid tokens. Uses opts->singleton. */
SEGRL_API segrl_status segrl_opo(const segrl_layout *layout, const segrl_outcome *in,
                                 const segrl_outcome_opts *opts, const segrl_exec *exec,
                                 segrl_view out_token_advantages, segrl_view out_seq_advantages);

/* GRPO pass@k (Chen et al. 2025, arXiv 2508.10751; verl compute_grpo_passk_outcome_advantage):
 * in each group only the best sample (the first in batch order among ties) gets
 * r_max - r_second, divided by (std_g + eps) unless opts->std_scope is SEGRL_STD_NONE; the others
 * get 0. Ties for the best give 0. Singletons follow opts->singleton (KEEP: r_second = 0). */
SEGRL_API segrl_status segrl_grpo_passk(const segrl_layout *layout, const segrl_outcome *in,
                                        const segrl_outcome_opts *opts, const segrl_exec *exec,
                                        segrl_view out_token_advantages,
                                        segrl_view out_seq_advantages);

/* GPG (Chu et al. 2025, arXiv 2504.02546): A = alpha * (R - mean_g) with
 * alpha = B / (number of sequences whose R - mean_g != 0); alpha = 1 when there are none.
 * Uses opts->singleton. */
SEGRL_API segrl_status segrl_gpg(const segrl_layout *layout, const segrl_outcome *in,
                                 const segrl_outcome_opts *opts, const segrl_exec *exec,
                                 segrl_view out_token_advantages, segrl_view out_seq_advantages);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_ADVANTAGE_H */
