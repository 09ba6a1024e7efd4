/* segrl/segment.h — segment-level credit assignment: partitioners, segment reduce/scatter,
 * SPO-chain and VinePPO advantages, the probability mask, process-reward transforms, dense
 * segment rewards, PRIME implicit token rewards and RLOO returns.
 *
 * CUDA: the partitioners, segrl_segments_check, segrl_segment_reduce / _scatter,
 * segrl_spo_chain, segrl_vineppo and segrl_prob_mask run on CUDA views (every view on the same
 * device; exec->workspace: segrl_segment_workspace_size(device, B) bytes of device memory,
 * 16-byte aligned; content checks and the partitioners' count synchronize exec->stream).
 * A build without CUDA answers CUDA views with SEGRL_ERR_NO_DEVICE. The other calls (process
 * rewards, dense rewards, PRIME) are CPU only: a CUDA view returns SEGRL_ERR_UNSUPPORTED
 * ("<fn>: <arg>: CUDA views are not supported by this op yet (CPU only)").
 *
 * ---------------------------------------------------------------------------------------------
 * Segment spans (CSR per sequence)
 *
 *   segrl_segments { offsets, start, end }
 *     offsets: i32/i64 (B + 1), offsets[0] == 0, non-decreasing, offsets[B] == S:
 *              sequence b owns segments k in [offsets[b], offsets[b+1]).
 *     start:   i32/i64 (S): first token position of segment k, RELATIVE to its sequence.
 *     end:     i32/i64 (S): one past its last token position.
 *
 *   Positions are relative to the sequence (token t of sequence b), so the same spans describe
 *   a padded (B, T) batch and the packed (N) batch holding the same sequences. A valid set of
 *   spans has, within each sequence, 0 <= start[k] < end[k] <= len_b (len_b = T padded, or
 *   offsets[b+1] - offsets[b] of the layout when packed) and end[k] <= start[k+1] (sorted, not
 *   overlapping, non-empty). Gaps between spans are allowed. The three views may have different
 *   index dtypes. Every call that reads spans checks them (SEGRL_CHECKS_FULL) and returns
 *   SEGRL_ERR_INVALID naming "segments->offsets", "segments->start" or "segments->end"
 *   (the partitioners' outputs are "out->offsets", ...; dense reward sources
 *   "sources[j].spans->start", ...).
 *   Masked (invalid) tokens inside a span belong to it but are never read or written with a
 *   value: ops below use only the valid tokens of each span.
 *
 * Partitioners write spans into caller-allocated views; the number of segments is known only
 * after a pass over the data, so they follow a two-call pattern:
 *   1. call with out->start and out->end none: only out->offsets (B + 1) is written, and
 *      out->offsets[B] is S, the number of segments;
 *   2. allocate start/end of S (or more) entries and call again with them: out->offsets,
 *      out->start[0..S) and out->end[0..S) are written (entries past S are untouched).
 *   A start/end capacity smaller than S is SEGRL_ERR_INVALID (nothing written). Upper bounds
 *   that avoid the first call: segrl_partition_fixed with num_parts K: B * K; with every M:
 *   sum_b ceil(len_b / M) <= B * ceil(T / M) padded, <= N packed; any partitioner: the number
 *   of valid tokens (<= B * T or N).
 *   Partitioners cover each sequence contiguously from its first valid token to one past its
 *   last valid token: a segment ends where the next begins, so invalid tokens between two
 *   valid ones belong to the earlier segment; leading and trailing invalid tokens belong to no
 *   segment. A sequence without valid tokens has no segments.
 *
 * Common to every call: token tensors follow segrl_layout (padded or packed); masks are
 * u8/i32/i64/f32 (a token is valid when non-zero, none = all valid); float tensors are f32;
 * per-segment vectors are contiguous 1-D (S); per-sequence vectors are contiguous 1-D (B).
 * No call allocates; on the CPU only segrl_prime_returns needs a workspace (the others ignore
 * exec->workspace); on CUDA the calls above need segrl_segment_workspace_size() bytes. Outputs are written only when SEGRL_OK is returned. Content checks (spans,
 * offsets, group indices, NaN/Inf at valid tokens or in per-segment values) run under
 * SEGRL_CHECKS_FULL; under SEGRL_CHECKS_SHAPES they are skipped and bad spans are undefined
 * behaviour, as for the layout's offsets.
 * Statuses: SEGRL_OK; SEGRL_ERR_INVALID (message names the argument); SEGRL_ERR_UNSUPPORTED
 * (CUDA views of CPU-only calls); SEGRL_ERR_NO_DEVICE; SEGRL_ERR_WORKSPACE; SEGRL_ERR_CUDA.
 * See docs/segments.md for formulas, papers and worked examples. */
#ifndef SEGRL_SEGMENT_H
#define SEGRL_SEGMENT_H

#include "segrl/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Workspace bytes of the CUDA segment calls for `batch` sequences on `device` (0 on the CPU;
 * the same for every call of this header that runs on CUDA). */
SEGRL_API segrl_status segrl_segment_workspace_size(segrl_device device, int64_t batch,
                                                    size_t *out_bytes);

typedef struct segrl_segments {
    segrl_view offsets; /* i32/i64 (B + 1) */
    segrl_view start;   /* i32/i64 (S), first position within the sequence */
    segrl_view end;     /* i32/i64 (S), one past the last position */
} segrl_segments;

// ----------------------------------------------------------------------------
// partitioners (two-call pattern above; out->offsets is required, start/end both or neither)

/* Fixed partition of each sequence's n_b valid tokens (ordinals j = 0 .. n_b - 1):
 *   num_parts K > 0 (every must be 0): K near-equal parts; valid token j is in part
 *     floor(((j + 1) * K - 1) / n_b), i.e. part k holds ordinals [floor(k n/K), floor((k+1) n/K));
 *     empty parts are dropped, so a sequence gets min(K, n_b) segments.
 *   every M > 0 (num_parts must be 0): a new segment at every M-th valid token (j % M == 0);
 *     ceil(n_b / M) segments.
 * mask: token tensor (required: it defines the geometry; pass all ones for "every token"). */
SEGRL_API segrl_status segrl_partition_fixed(const segrl_layout *layout, segrl_view mask,
                                             int64_t num_parts, int64_t every,
                                             const segrl_exec *exec, const segrl_segments *out);

typedef struct segrl_cutpoint_opts {
    float tau;            /* a valid token with p < tau is low-probability; SPO default 0.9 */
    int32_t k;            /* every k-th low-probability token starts a segment; SPO default 5 */
    int64_t max_segments; /* cap per sequence; 0 = no cap */
} segrl_cutpoint_opts;

/* tau 0.9, k 5, no cap. */
SEGRL_API segrl_cutpoint_opts segrl_cutpoint_opts_default(void);

/* Cutpoint partition (SPO, Guo et al. 2025, arXiv 2505.23564): with p_t the sampling-time
 * probability of token t, number the low-probability valid tokens (p_t < tau) 1, 2, 3, ...; the
 * k-th, 2k-th, 3k-th ... of them start a new segment (a cutpoint). The first segment starts at
 * the first valid token. With max_segments C > 0 a sequence gets at most C segments: cutpoints
 * after the (C - 1)-th are ignored (the last segment runs to the end).
 * probs: f32 token tensor of probabilities (exp of the old log-probs); finite at valid tokens.
 * mask: token tensor or none. tau finite; k >= 1; max_segments >= 0. opts NULL: defaults. */
SEGRL_API segrl_status segrl_partition_cutpoints(const segrl_layout *layout, segrl_view probs,
                                                 segrl_view mask,
                                                 const segrl_cutpoint_opts *opts,
                                                 const segrl_exec *exec,
                                                 const segrl_segments *out);

/* Delimiter partition (steps, e.g. a newline token ends a reasoning step): a valid token whose id
 * is one of `delimiters` ends its segment; the next valid token starts a new one. The tail after
 * the last delimiter is a segment when it has valid tokens.
 * token_ids: i32/i64 token tensor; delimiters: i32/i64 (D), D >= 1; mask: token tensor or none. */
SEGRL_API segrl_status segrl_partition_delimiters(const segrl_layout *layout,
                                                  segrl_view token_ids, segrl_view mask,
                                                  segrl_view delimiters, const segrl_exec *exec,
                                                  const segrl_segments *out);

/* Explicit spans from the caller: validates `segments` against the batch geometry (the rules at
 * the top of this file). tokens: any token tensor of the batch (any dtype; only its shape is
 * read) defining the geometry with layout. Writes nothing. Runs the content checks even under
 * SEGRL_CHECKS_SHAPES (that is its purpose). */
SEGRL_API segrl_status segrl_segments_check(const segrl_layout *layout, segrl_view tokens,
                                            const segrl_segments *segments,
                                            const segrl_exec *exec);

// ----------------------------------------------------------------------------
// reduce and scatter

typedef enum segrl_reduce_op {
    SEGRL_REDUCE_SUM = 0,
    SEGRL_REDUCE_MEAN = 1,
    SEGRL_REDUCE_MIN = 2,
    SEGRL_REDUCE_MAX = 3,
    SEGRL_REDUCE_LAST = 4, /* value at the span's last valid token */
} segrl_reduce_op;

/* out[k] = op over the valid tokens t of span k of x[b, t] (sum and mean accumulated in f64).
 * A span with no valid token gives 0.
 * x: f32 token tensor (defines the geometry); mask: token tensor or none; out: f32 (S). */
SEGRL_API segrl_status segrl_segment_reduce(const segrl_layout *layout, segrl_view x,
                                            segrl_view mask, const segrl_segments *segments,
                                            int32_t op, const segrl_exec *exec, segrl_view out);

typedef enum segrl_scatter_mode {
    SEGRL_SCATTER_LAST = 0,      /* value at the span's last valid token, 0 at its other tokens */
    SEGRL_SCATTER_BROADCAST = 1, /* value at every valid token of the span */
} segrl_scatter_mode;

/* Token tensor from per-segment values: every slot of out is written; slots outside any span
 * and invalid tokens get 0.
 * values: f32 (S), finite; mask: token tensor or none; out: f32 token tensor (defines the
 * geometry). */
SEGRL_API segrl_status segrl_segment_scatter(const segrl_layout *layout, segrl_view values,
                                             segrl_view mask, const segrl_segments *segments,
                                             int32_t mode, const segrl_exec *exec,
                                             segrl_view out);

// ----------------------------------------------------------------------------
// segment advantages

/* SPO-chain advantages (SPO, arXiv 2505.23564). Sequence b has K = offsets[b+1] - offsets[b]
 * spans; span j (j = 1..K in order) starts at a cutpoint and values[offsets[b] + j - 1] = V_j is
 * the Monte Carlo value estimate of the state just before its first token (the prefix up to the
 * cutpoint). With R_b = rewards[b]:
 *   tokens of span j < K:          A = V_{j+1} - V_j
 *   tokens of the last span K:     A = R_b - V_K
 *   tokens before the first span:  A = V_1 - V_0 with V_0 = prompt_values[b], or 0 when
 *                                  prompt_values is none
 *   other tokens (gaps between spans, after the last span, invalid tokens): 0.
 * Spans from segrl_partition_cutpoints start at the first valid token, so V_1 is then the value
 * of the prompt and nothing precedes the first span. A sequence with no spans gets 0 everywhere.
 * mask: token tensor or none; values: f32 (S); rewards: f32 (B); prompt_values: f32 (B) or none;
 * out_advantages: f32 token tensor (defines the geometry); out_segment_advantages: f32 (S) or
 * none (receives each span's A). */
SEGRL_API segrl_status segrl_spo_chain(const segrl_layout *layout, segrl_view mask,
                                       const segrl_segments *segments, segrl_view values,
                                       segrl_view rewards, segrl_view prompt_values,
                                       const segrl_exec *exec, segrl_view out_advantages,
                                       segrl_view out_segment_advantages);

/* VinePPO step advantages (Kazemnejad et al. 2024, arXiv 2410.01679). Span j of sequence b is
 * step j; values V_j (S) are the Monte Carlo values of the state before step j, step_rewards r_j
 * (S) its reward (the outcome reward usually on the last step, 0 elsewhere):
 *   A_j = r_j + gamma * V_{j+1} - V_j,  V_{K+1} = 0 (terminal)
 * broadcast over the valid tokens of step j; all other slots 0. VinePPO uses gamma = 1.
 * out_step_advantages: f32 (S) or none. */
SEGRL_API segrl_status segrl_vineppo(const segrl_layout *layout, segrl_view mask,
                                     const segrl_segments *segments, segrl_view step_rewards,
                                     segrl_view values, float gamma, const segrl_exec *exec,
                                     segrl_view out_advantages,
                                     segrl_view out_step_advantages);

/* Probability mask (SPO, arXiv 2505.23564): out_t = 1 when token t is valid and p_t < tau, else
 * 0. SPO restricts the policy-gradient and KL terms to these tokens; pass out as the loss mask.
 * probs: f32 token tensor (defines the geometry), finite at valid tokens; mask: token tensor or
 * none; tau finite; out: u8/i32/i64/f32 token tensor (1 / 1.0f and 0). */
SEGRL_API segrl_status segrl_prob_mask(const segrl_layout *layout, segrl_view probs,
                                       segrl_view mask, float tau, const segrl_exec *exec,
                                       segrl_view out);

// ----------------------------------------------------------------------------
// process rewards

typedef enum segrl_prm_mode {
    SEGRL_PRM_CLIP = 0,  /* r~_k = min(r_k - eta, 0) */
    SEGRL_PRM_DELTA = 1, /* r~_k = r_k - r_{k+1} for k < K; r~_K = r_K */
    SEGRL_PRM_BOTH = 2,  /* clip, then delta of the clipped rewards */
} segrl_prm_mode;

typedef struct segrl_prm_opts {
    int32_t mode; /* segrl_prm_mode */
    float eta;    /* clip threshold (CLIP, BOTH) */
} segrl_prm_opts;

/* Process-reward transforms (Gao et al. 2024, arXiv 2410.15115), per sequence over its K step
 * rewards in span order (steps k = 1..K = the segments of the sequence, CSR by seg_offsets).
 * seg_offsets: i32/i64 (B + 1), 0 .. S non-decreasing; rewards: f32 (S), finite;
 * out: f32 (S), may alias rewards exactly. opts NULL: CLIP with eta 0. The token rewards for GAE
 * or returns come from segrl_segment_scatter(SEGRL_SCATTER_LAST). */
SEGRL_API segrl_status segrl_prm_transform(segrl_view seg_offsets, segrl_view rewards,
                                           const segrl_prm_opts *opts, const segrl_exec *exec,
                                           segrl_view out);

/* One reward source of dense segment rewards. */
typedef struct segrl_reward_source {
    segrl_segments spans; /* this source's spans (e.g. sentences for one, sub-sentences for another) */
    segrl_view scores;    /* f32 (S_j): one score per span */
    float weight;         /* w_j */
} segrl_reward_source;

/* Dense segment rewards (fine-grained RLHF, Wu et al. 2023, arXiv 2306.01693):
 *   r_t = sum over sources j, spans k of source j whose last valid token is t: w_j * score_{j,k}
 * (token rewards at span ends; 0 elsewhere), ready for segrl_gae / segrl_discounted_returns.
 * sources: n_sources >= 1 entries; mask: token tensor or none; out: f32 token tensor (defines
 * the geometry). Every slot of out is written. */
SEGRL_API segrl_status segrl_dense_segment_rewards(const segrl_layout *layout, segrl_view mask,
                                                   const segrl_reward_source *sources,
                                                   int32_t n_sources, const segrl_exec *exec,
                                                   segrl_view out);

typedef struct segrl_prime_opts {
    float beta;              /* implicit-reward scale; default 0.05 */
    int32_t max_return_norm; /* 1: divide every r_t by (max |return| over the batch + eps) */
    float eps;               /* default 1e-6 */
} segrl_prime_opts;

/* beta 0.05, max_return_norm 0, eps 1e-6. */
SEGRL_API segrl_prime_opts segrl_prime_opts_default(void);

/* PRIME implicit process rewards (Cui et al. 2025, arXiv 2502.01456):
 *   r_t = beta * (logp_t - ref_logp_t) at valid tokens, 0 elsewhere,
 * with logp the implicit PRM's log-probabilities and ref_logp the reference model's.
 * With max_return_norm: G_t = sum of r_s over the valid s >= t of the sequence, and every r_t is
 * divided by (max over all valid tokens of the batch of |G_t|) + eps.
 * logprobs, ref_logprobs: f32 token tensors (finite at valid tokens; logprobs defines the
 * geometry); out: f32 token tensor, may alias either input exactly. opts NULL: defaults. */
SEGRL_API segrl_status segrl_prime_token_rewards(const segrl_layout *layout,
                                                 segrl_view logprobs, segrl_view ref_logprobs,
                                                 segrl_view mask, const segrl_prime_opts *opts,
                                                 const segrl_exec *exec, segrl_view out);

/* One reward source of PRIME's RLOO returns: token rewards with the positions they live at, or
 * one score per sequence placed at its last valid token. */
typedef struct segrl_prime_source {
    segrl_view token_rewards; /* f32 token tensor (e.g. the implicit rewards), or none */
    segrl_view reward_mask;   /* token mask of the reward positions (and-ed with the call's
                                 mask), or none: every valid token; only with token_rewards */
    segrl_view scores;        /* f32 (B), used when token_rewards is none (outcome reward) */
    float weight;             /* w_j */
} segrl_prime_source;

/* PRIME returns (arXiv 2502.01456): a leave-one-out (RLOO) baseline per reward source, the
 * weighted sum of the sources, then undiscounted returns. For source j, P_j(i) are the reward
 * positions of sequence i (its valid tokens in reward_mask; with scores: its last valid token,
 * x = scores[i]); mu_i = mean of x over P_j(i) (0 when empty). In group g of n sequences
 * (group_index) with M_g = sum of mu_i over the group:
 *   x~_t = x_t * n / (n - 1) - M_g / (n - 1)   at t in P_j(i)       (= x_t - mean of the others'
 *                                                                    mu when x is constant)
 *   x~_t = 0                                   elsewhere, and for every t when n == 1
 *   r_t  = sum_j w_j x~^j_t;   G_t = sum of r_s over valid s >= t (every slot written)
 * Whitening (as PRIME does next) is a separate call: segrl_whiten.
 * mask: token tensor or none; sources: n_sources >= 1; group_index: i32/i64 (B) in
 * [0, num_groups); out_returns: f32 token tensor (defines the geometry); out_rewards: f32 token
 * tensor (r_t) or none.
 * Workspace: segrl_prime_returns_workspace_size(B, num_groups) bytes of host memory. */
SEGRL_API segrl_status segrl_prime_returns(const segrl_layout *layout, segrl_view mask,
                                           const segrl_prime_source *sources, int32_t n_sources,
                                           segrl_view group_index, int64_t num_groups,
                                           const segrl_exec *exec, segrl_view out_returns,
                                           segrl_view out_rewards);

/* Workspace bytes segrl_prime_returns needs for `batch` sequences and `num_groups` groups. */
SEGRL_API segrl_status segrl_prime_returns_workspace_size(int64_t batch, int64_t num_groups,
                                                          size_t *out_bytes);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_SEGMENT_H */
