/* segrl/likelihood.h — rewards from the policy's own likelihood of a reference answer
 * (libsegrl_torch; link segrl::torch). Works where no verifier exists (long-form answers).
 *
 * The reference answer a* is appended after the response and teacher-forced through the model
 * (segrl_model_forward); the reward of a sample with |a*| = m answer tokens is one of
 *   LOGPROB        sum_j log pi(a*_j | prompt, response, a*_<j)          (arXiv 2602.03979:
 *                                                                        the robust choice)
 *   MEAN_LOGPROB   (1/m) sum_j log pi(a*_j | ...)
 *   PROB           exp(sum_j log pi(a*_j | ...)) = pi(a* | ...)         (VeriFree, arXiv 2505.21493)
 *   MEAN_PROB      (1/m) sum_j pi(a*_j | ...)                           (per-token average prob.)
 * IGPO (arXiv 2510.14967) needs the mean log-probability of a* after each turn prefix of a
 * multi-turn rollout: segrl_likelihood_turn_means gives it in the layout segrl_igpo_turn_rewards
 * (segrl/selfreward.h) takes.
 *
 * Rows are teacher-forced in batches of `batch_size` rows, right-padded with a mask (the model's
 * positions come from the mask, so padding changes nothing). Only the hidden states of the
 * positions that predict answer tokens go through lm_head. Gradients are never recorded. A row
 * longer than the model's max_position_embeddings is cut from the left of its context (at least
 * one context token is kept); an answer that cannot fit is an error.
 * Statuses: SEGRL_OK; SEGRL_ERR_INVALID (message names the argument); SEGRL_ERR_ALLOC. */
#ifndef SEGRL_LIKELIHOOD_H
#define SEGRL_LIKELIHOOD_H

#include "segrl/core.h"
#include "segrl/reward.h"
#include "segrl/tokenizer.h"
#include "segrl/torch.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Values are appended only. */
typedef enum segrl_likelihood_kind {
    SEGRL_LIKELIHOOD_LOGPROB = 0,
    SEGRL_LIKELIHOOD_MEAN_LOGPROB = 1,
    SEGRL_LIKELIHOOD_PROB = 2,
    SEGRL_LIKELIHOOD_MEAN_PROB = 3,
} segrl_likelihood_kind;

/* Static name: "log_prob", "mean_log_prob", "prob", "mean_prob"; "unknown" otherwise. */
SEGRL_API const char *segrl_likelihood_kind_name(int32_t kind);

/* Teacher-forced log-probabilities of target tokens. Row i is context i (tokens
 * [context_offsets[i], context_offsets[i+1]) of context_tokens, >= 1 token) followed by target i
 * (tokens [target_offsets[i], target_offsets[i+1]) of target_tokens, may be empty);
 * out_logprobs[target_offsets[i] + j] = log pi(target_j | context, target_<j). Offsets: n + 1
 * entries from 0, non-decreasing; ids in [0, vocab_size). batch_size: rows per forward pass
 * (<= 0: 8). out_logprobs: target_offsets[n] floats. */
SEGRL_API segrl_status segrl_likelihood_logprobs(segrl_model *model, int64_t n,
                                                 const int32_t *context_tokens,
                                                 const int64_t *context_offsets,
                                                 const int32_t *target_tokens,
                                                 const int64_t *target_offsets, int32_t batch_size,
                                                 float *out_logprobs);

/* One reward value from m token log-probabilities (the formulas above); m == 0 gives 0 for the
 * log-probability kinds and 1 for PROB, 0 for MEAN_PROB (the empty product and mean). */
SEGRL_API segrl_status segrl_likelihood_reduce(const float *logprobs, int64_t m, int32_t kind,
                                               double *out);

/* Per-turn mean log-probability of the answer for IGPO. Rollout b is tokens [token_offsets[b],
 * token_offsets[b+1]) (prompt then turns); its prompt is the first prompt_lens[b] >= 1 tokens; its
 * turns k are the spans seg_offsets[b] .. seg_offsets[b+1] - 1 with turn_ends[k] (positions
 * relative to the rollout, increasing, > prompt_lens[b], <= its length: a turn's prefix is
 * tokens [0, turn_ends[k])); its reference answer is answer_tokens [answer_offsets[b],
 * answer_offsets[b+1]) (>= 1 token). Writes
 *   out_prior[b]     = (1/m) sum_j log pi(a*_j | prompt, a*_<j)
 *   out_turn_mean[k] = (1/m) sum_j log pi(a*_j | tokens[0, turn_ends[k]), a*_<j)
 * (what segrl_igpo_turn_rewards takes as prior_logp_mean and turn_logp_mean). Every prefix is
 * one teacher-forced row (B + S rows, batch_size per pass). */
SEGRL_API segrl_status segrl_likelihood_turn_means(segrl_model *model, int64_t B,
                                                   const int32_t *tokens,
                                                   const int64_t *token_offsets,
                                                   const int64_t *prompt_lens,
                                                   const int64_t *seg_offsets,
                                                   const int64_t *turn_ends,
                                                   const int32_t *answer_tokens,
                                                   const int64_t *answer_offsets,
                                                   int32_t batch_size, float *out_prior,
                                                   float *out_turn_mean);

/* Options of the likelihood reward. segrl_likelihood_opts_default(): LOGPROB, batch_size 8,
 * separator "\n", target ANSWER. */
typedef enum segrl_likelihood_target {
    SEGRL_LIKELIHOOD_TARGET_ANSWER = 0,   /* context: prompt + response + separator; target: answer */
    SEGRL_LIKELIHOOD_TARGET_RESPONSE = 1, /* context: prompt; target: response (the model as an
                                           * implicit reward model, e.g. for segrl-score --pairs) */
} segrl_likelihood_target;

typedef struct segrl_likelihood_opts {
    int32_t kind;          /* segrl_likelihood_kind */
    int32_t batch_size;    /* rows per forward pass; <= 0: 8 */
    const char *separator; /* text between the response and the answer (copied); NULL: "" */
    int32_t target;        /* segrl_likelihood_target */
} segrl_likelihood_opts;

SEGRL_API segrl_likelihood_opts segrl_likelihood_opts_default(void);

/* The likelihood reward as a segrl_reward (new reference; free with segrl_reward_free), so it
 * plugs into segrl_reward_score and the combinators. It borrows `model` and `tokenizer`: both
 * must outlive the reward. Texts are encoded separately (context = prompt + response + separator
 * as one text, then the answer alone) and the ids concatenated, so every sample is scored on the
 * same answer tokens. An empty context starts with the model's bos_token_id; without one the
 * sample gets run->failure_score and reason error (with run->fail_on_error the call fails). A
 * sample with an empty target gets run->failure_score and reason bad_reference (empty_response
 * with TARGET_RESPONSE). Not per-sample: the whole batch is scored on the calling thread,
 * batch_size rows per pass (run->threads and run->time_limit_s do not apply). Details: reason
 * ok; message "m=<target tokens>". */
SEGRL_API segrl_status segrl_reward_likelihood(segrl_model *model,
                                               const segrl_tokenizer *tokenizer,
                                               const segrl_likelihood_opts *opts,
                                               segrl_reward **out);

/* By name, for trainers' configs: "likelihood" builds segrl_reward_likelihood with options
 *   {"kind": "log_prob" | "mean_log_prob" | "prob" | "mean_prob", "batch_size": 8,
 *    "separator": "\n", "target": "answer" | "response"}
 * and the shorthands "log_prob", "mean_log_prob", "prob" (VeriFree), "mean_prob" (the same with
 * that kind); `model` and `tokenizer` are borrowed as above. Every other name goes to
 * segrl_selfreward_create (majority_vote, then segrl_reward_create's names), where model and
 * tokenizer may be NULL. */
SEGRL_API segrl_status segrl_likelihood_reward_create(const char *name, const char *options_json,
                                                      segrl_model *model,
                                                      const segrl_tokenizer *tokenizer,
                                                      segrl_reward **out);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_LIKELIHOOD_H */
