/* segrl/selfreward.h — rewards without an external verifier: information-gain turn rewards for
 * multi-turn agents (IGPO), majority-vote self-rewards over a group's answers (test-time RL,
 * Co-Reward), and the statistics that evaluate a reward (pairwise accuracy, rank correlation,
 * STARC-style distance). The likelihood rewards that need the model live in segrl/likelihood.h
 * (libsegrl_torch); this header is the plain C part.
 *
 * IGPO works on turn spans: the segments of segrl/segment.h (one span per agent turn, CSR per
 * sequence), so token advantages come out in the same padded or packed layouts as every other
 * estimator. Per-turn and per-sequence vectors are host (CPU) memory: a CUDA view returns
 * SEGRL_ERR_UNSUPPORTED. Outputs are written only on SEGRL_OK.
 * Statuses: SEGRL_OK; SEGRL_ERR_INVALID (the message names the argument); SEGRL_ERR_ALLOC;
 * SEGRL_ERR_UNSUPPORTED; SEGRL_ERR_WORKSPACE.
 * See docs/rewards.md ("Rewards from the model and the group") for formulas and papers. */
#ifndef SEGRL_SELFREWARD_H
#define SEGRL_SELFREWARD_H

#include "segrl/core.h"
#include "segrl/reward.h"
#include "segrl/segment.h"

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// IGPO: information-gain turn rewards (Wang et al. 2025, arXiv 2510.14967)

/* Raw turn rewards. Sequence b has turns k = 1..K_b, the spans [seg_offsets[b],
 * seg_offsets[b+1]) in order. With L_{b,k} = turn_logp_mean[seg_offsets[b] + k - 1], the mean
 * over the reference answer's tokens of log pi(a*_j | prompt, turns 1..k, a*_<j), and
 * L_{b,0} = prior_logp_mean[b] (the same mean given the prompt alone):
 *   p_{b,k} = exp(L_{b,k})                          (length-normalized probability of a*)
 *   r_{b,k} = p_{b,k} - p_{b,k-1}                   for k < K_b   (information gain)
 *   r_{b,K_b} = outcome[b]                          (the final turn: the outcome reward)
 * A sequence without turns has no rewards (its outcome is unused).
 * seg_offsets: i32/i64 (B + 1), 0 .. S non-decreasing; turn_logp_mean: f32 (S), finite (means
 * of log-probabilities, so <= 0 in practice; not checked); prior_logp_mean, outcome: f32 (B),
 * finite; out_turn_rewards: f32 (S).
 * All CPU. B comes from outcome's length. */
SEGRL_API segrl_status segrl_igpo_turn_rewards(segrl_view seg_offsets, segrl_view turn_logp_mean,
                                               segrl_view prior_logp_mean, segrl_view outcome,
                                               const segrl_exec *exec,
                                               segrl_view out_turn_rewards);

typedef struct segrl_igpo_opts {
    float gamma;      /* discount over turns; default 1 */
    float eps;        /* z-normalization: (r - mean) / (std + eps); default 1e-6 */
    int32_t unbiased; /* 1: std with n - 1 (torch.std); 0 (default): with n */
    int32_t no_std;   /* 1: subtract the group mean only (no division) */
} segrl_igpo_opts;

/* gamma 1, eps 1e-6, population std. */
SEGRL_API segrl_igpo_opts segrl_igpo_opts_default(void);

/* Host workspace bytes of segrl_igpo_advantages for S turns and G groups. */
SEGRL_API segrl_status segrl_igpo_workspace_size(int64_t num_turns, int64_t num_groups,
                                                 size_t *out_bytes);

/* IGPO advantages. turn_rewards r (S) from segrl_igpo_turn_rewards; sequence b is in group
 * group_index[b] (the G rollouts of one prompt). Every turn of every sequence of group g is one
 * rewarded position (its turn's last token); over those n_g positions:
 *   r~_{b,k} = (r_{b,k} - mean_g) / (std_g + eps)   (std_g + eps == 0: r~ = 0; n_g == 1: std 0)
 *   A_{b,k}  = sum_{m >= k} gamma^(m - k) r~_{b,m}   (discounted return-to-go over turns)
 * A_{b,k} is broadcast over the valid tokens of turn k (segrl_segment_scatter BROADCAST); every
 * other slot of out_advantages gets 0. out_token_rewards (or none) receives r~ at each turn's last
 * valid token (segrl_segment_scatter LAST), for estimators that take token rewards.
 * layout, mask: as segment.h (mask: token tensor or none); segments: the turn spans (checked);
 * turn_rewards: f32 (S) CPU; group_index: i32/i64 (B) in [0, num_groups) CPU; out_advantages:
 * f32 token tensor (defines the geometry); out_turn_advantages: f32 (S) or none.
 * exec->workspace: segrl_igpo_workspace_size(S, num_groups) bytes of host memory, 16-byte
 * aligned. opts NULL: defaults. */
SEGRL_API segrl_status segrl_igpo_advantages(const segrl_layout *layout, segrl_view mask,
                                             const segrl_segments *segments,
                                             segrl_view turn_rewards, segrl_view group_index,
                                             int64_t num_groups, const segrl_igpo_opts *opts,
                                             const segrl_exec *exec, segrl_view out_advantages,
                                             segrl_view out_token_rewards,
                                             segrl_view out_turn_advantages);

// ----------------------------------------------------------------------------
// majority vote (TTRL, Zuo et al. 2025, arXiv 2504.16084; Co-Reward, arXiv 2508.00410)

typedef enum segrl_vote_tie {
    SEGRL_VOTE_TIE_FIRST = 0, /* among the most frequent answers, the one seen first in the group
                               * (lowest sample index) is the majority */
    SEGRL_VOTE_TIE_NONE = 1,  /* a tie for the most votes: no majority, every sample gets `miss` */
} segrl_vote_tie;

typedef struct segrl_vote_opts {
    float agree;       /* reward of a sample whose answer is the majority answer; default 1 */
    float disagree;    /* another non-empty answer; default 0 */
    float no_answer;   /* an empty answer (it never votes); default 0 */
    float miss;        /* a non-empty answer when the judging group has no majority; default 0 */
    int32_t tie;       /* segrl_vote_tie; default FIRST */
    float min_share;   /* the majority needs votes >= min_share * (non-empty answers); default 0 */
} segrl_vote_opts;

SEGRL_API segrl_vote_opts segrl_vote_opts_default(void);

/* Majority vote over answers (already extracted and normalized: compared byte for byte; NULL or
 * "" is an empty answer). Group g is samples [group_offsets[g], group_offsets[g+1]) (sizes may
 * differ, a group may be empty). The majority of group g is the non-empty answer with the most
 * votes in g (ties by opts->tie; no non-empty answer or a share below min_share: none).
 * A sample of group g is judged against the majority of group judge[g] (judge NULL: g itself;
 * Co-Reward pairs a prompt's group with its rephrased prompt's group, judge[g] = partner):
 *   no_answer (empty), miss (judging group has no majority), agree, or disagree.
 * answers: n entries; group_offsets: num_groups + 1 (0 .. n, non-decreasing); judge:
 * num_groups entries in [0, num_groups) or NULL; out_rewards: n; out_majority (or NULL):
 * num_groups entries, the index of the first sample carrying group g's majority answer, or -1. */
SEGRL_API segrl_status segrl_majority_vote(const char *const *answers, int64_t n,
                                           const int64_t *group_offsets, int64_t num_groups,
                                           const int64_t *judge, const segrl_vote_opts *opts,
                                           float *out_rewards, int64_t *out_majority);

/* Majority-vote self-reward as a reward combinator over any verifier's answer extractor (new
 * reference; takes ownership of `inner` on success). The inner reward scores the batch with
 * details (each sample's reference answer, or "0" when it has none, so a verifier runs its
 * extractor); a sample's answer is detail.normalized, else detail.extracted, else empty.
 * Groups: samples with the same metadata number "group" (when any sample has it, every sample
 * must), else runs of consecutive samples with the same prompt. With `paired` (Co-Reward) each
 * sample's metadata has "pair_group": the "group" id whose majority judges it.
 * Details: reason ok (agrees), wrong (disagrees or no majority), no_answer; extracted/normalized
 * from the inner; sources[0] = the inner's own score. Not a per-sample reward (it needs the
 * group): segrl_reward_score hands it the whole batch. */
SEGRL_API segrl_status segrl_reward_majority_vote(segrl_reward *inner,
                                                  const segrl_vote_opts *opts, int32_t paired,
                                                  segrl_reward **out);

/* By name, for trainers' configs: builds "majority_vote" here and passes every other name to
 * segrl_reward_create. Options of "majority_vote":
 *   {"inner": {"name": "math", "options": {...}}, "agree": 1, "disagree": 0, "no_answer": 0,
 *    "miss": 0, "tie": "first" | "none", "min_share": 0, "paired": false}
 * ("inner" defaults to {"name": "math"}). The model-based rewards are built by
 * segrl_likelihood_reward_create (segrl/likelihood.h), which passes other names here. */
SEGRL_API segrl_status segrl_selfreward_create(const char *name, const char *options_json,
                                               segrl_reward **out);

// ----------------------------------------------------------------------------
// evaluating a reward

/* Pairwise accuracy (RewardBench, Lambert et al. 2024, arXiv 2403.13787): pair i is right when
 * chosen[i] > rejected[i] (strictly; a tie is wrong and counted in out_ties). subset (or NULL)
 * puts pair i in subset[i] in [0, num_subsets); out_correct/out_ties/out_total get
 * num_subsets + 1 entries: each subset's counts, then all pairs. num_subsets >= 0 (0 with
 * subset NULL: only the total). Non-finite scores are SEGRL_ERR_INVALID. */
SEGRL_API segrl_status segrl_pairwise_accuracy(const float *chosen, const float *rejected,
                                               int64_t n, const int32_t *subset,
                                               int32_t num_subsets, int64_t *out_correct,
                                               int64_t *out_ties, int64_t *out_total);

/* Rank agreement of two rewards on the same n >= 2 samples:
 *   Spearman rho: the Pearson correlation of the ranks (ties get their average rank);
 *   Kendall tau-b: (C - D) / sqrt((C + D + Tx) (C + D + Ty)), Tx/Ty the pairs tied only in x/y.
 * A constant input gives 0 for both (undefined correlation). O(n^2) for Kendall: meant for
 * evaluation sets, n <= 10^5. out_spearman / out_kendall may be NULL. */
SEGRL_API segrl_status segrl_rank_correlation(const float *x, const float *y, int64_t n,
                                              double *out_spearman, double *out_kendall);

/* STARC-style distance (Skalse et al. 2023, arXiv 2309.15257) between two rewards on a fixed set
 * of n >= 1 samples treated as the whole space: canonicalize by subtracting the mean (the only
 * shaping-invariant part left without transitions), scale to unit L2 norm (a zero vector stays
 * zero), then the L2 distance of the two:  d = || c(x)/||c(x)|| - c(y)/||c(y)|| ||_2, in [0, 2];
 * 0 when the rewards differ only by a positive affine map. */
SEGRL_API segrl_status segrl_starc_distance(const float *x, const float *y, int64_t n,
                                            double *out_distance);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_SELFREWARD_H */
