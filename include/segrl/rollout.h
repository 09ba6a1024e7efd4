/* segrl/rollout.h — rollout orchestration: a generator interface and drivers that turn prompts
 * into training batches for group methods (GRPO, RLOO, REINFORCE++, PPO), SPO-chain, SPO-tree
 * (arXiv 2505.23564) and VinePPO (arXiv 2410.01679), with Monte Carlo boundary values (fixed K
 * or an adaptive budget) and a replay buffer of tree edges. Plain C, no model code: any
 * generator sits behind it.
 *
 * ---------------------------------------------------------------------------------------------
 * How a driver runs
 *
 * A driver (segrl_rollout) is a state machine over ROUNDS. Each round it publishes a list of
 * generation requests (segrl_gen_request: "sample n continuations of this prefix with at most
 * max_new_tokens new tokens"); the samples are handed back with segrl_rollout_put; then
 * segrl_rollout_advance scores what needs scoring (the segrl_score_fn callback) and plans the
 * next round, until no request is left (segrl_rollout_done). Two ways to drive it, with
 * identical results:
 *
 *   callback form:  segrl_rollout_run(r, generate, user) loops
 *                   pending -> generate(user, r, requests, n) -> advance  until done;
 *                   the callback hands its samples back with segrl_rollout_put.
 *   request/response form (an engine driven from outside, e.g. an inference server):
 *       while (!segrl_rollout_done(r)) {
 *           segrl_rollout_pending(r, &req, &n);      // take the requests
 *           ... send them out, receive samples ...
 *           segrl_rollout_put(r, i, j, tokens, logprobs, len, finished);  // each sample
 *           segrl_rollout_advance(r);
 *       }
 *
 * Every request carries a seed derived from the driver's seed, the round and the request's
 * position (config.seed_scope POSITION, the default) or its global prompt and rank
 * (SEED_PROMPT), so a deterministic generator gives the same batch whichever form drives it.
 *
 * ---------------------------------------------------------------------------------------------
 * Data-parallel shards (docs/rollout.md)
 *
 * A trainer that splits a global batch of P prompts into contiguous slices, one driver per
 * process, gets the SAME requests for each prompt (seed, prefix tokens, n, max_new_tokens)
 * under any split when every driver has seed_scope = SEGRL_ROLLOUT_SEED_PROMPT, the same seed
 * and the rest of the config, and prompt_base = the global index of its first prompt. With a
 * generator whose samples depend only on (prefix, seed, sample index) and a score callback that
 * depends only on the global prompt and the tokens, each prompt's rows of the batch are then
 * identical too. This holds for GROUP, SPO_CHAIN / VINEPPO with fixed K (mc_adaptive 0) and
 * SPO_TREE: their rounds are numbered alike in every shard (0: trajectories or tree level 0;
 * 1: the Monte Carlo round or level 1; ...), and all values and advantages the driver computes
 * are per sequence, per distinct prefix of one prompt or per tree (no batch-wide statistic).
 * What is NOT shard-invariant, and what a data-parallel caller does about it:
 *   - mc_adaptive = 1: the budget K x U is shared among the driver's OWN prefixes (and the
 *     number of rounds follows), so values change with the split. Use fixed K, or accept it.
 *   - Indices are local to the driver: segrl_gen_request.prompt, the score callback's prompt,
 *     batch.prompt (the group id), batch.num_groups (= P_local), tree node ids, prefix_id /
 *     parent_id and batch.seg_prefix. Global prompt = prompt_base + prompt (or pass global
 *     question_ids and use batch.question). A score callback must map a local prompt to its
 *     global data itself.
 *   - SPO_TREE batch rows are in node order, level by level across the driver's prompts, so
 *     concatenating the shards' batches permutes the rows of the one-process batch (each
 *     prompt's rows keep their order). GROUP / SPO_CHAIN / VINEPPO rows are prompt-major: the
 *     shards' batches concatenate to the one-process batch.
 *   - Statistics over the whole batch are the caller's: estimators applied to a GROUP batch
 *     that normalize batch-wide (REINFORCE++ whitening, segrl_whiten without group ids), loss
 *     normalizations by the global token count, segrl_rollout_stats (sum them; rounds: max).
 *
 * Tokens are int32 ids. Prompts are given packed (offsets + tokens) and copied. Sequences in
 * the output batch are FULL sequences (prompt, then generated tokens) in the packed layout of
 * core.h, with a mask of the tokens to train on, so they feed segrl_grpo / segrl_spo_chain /
 * the loss directly (segrl_layout_packed over an i64 view of batch.offsets).
 *
 * Ownership: every pointer a getter returns is BORROWED from the driver (or replay buffer) and
 * valid until the next call that changes it (advance / put / add) or until _free. Requests
 * (segrl_rollout_pending) are valid until the next segrl_rollout_advance. All memory goes
 * through the library's allocator hooks (segrl_malloc).
 *
 * Errors: every fallible call returns segrl_status; SEGRL_ERR_INVALID names the argument
 * ("segrl_rollout_put: logprobs: element 3 is nan"), SEGRL_ERR_ALLOC when the allocator
 * returned NULL. A failed call changes nothing: the driver stays in the state it was in (a
 * failed advance, e.g. a scoring callback error, may be retried). segrl_rollout_run is the
 * exception: samples its callback put before the failure stay put (the round can be finished
 * with put / advance). */
#ifndef SEGRL_ROLLOUT_H
#define SEGRL_ROLLOUT_H

#include "segrl/core.h"
#include "segrl/segment.h"
#include "segrl/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// generator interface

/* One generation request: sample `n` continuations of `prefix`. */
typedef struct segrl_gen_request {
    int64_t index;          /* position in this round's list (the `request` of segrl_rollout_put) */
    int64_t prompt;         /* prompt index (0 .. num_prompts - 1) */
    int64_t prefix_id;      /* a key for this prefix, stable while the driver lives: the same id
                               always means the same tokens (tree: the node id; an engine with
                               prefix forking can cache its KV state under it) */
    int64_t parent_id;      /* SPO_TREE: the prefix_id this prefix extends by one node (the
                               node's parent), -1 at a root; -1 for the other methods */
    const int32_t *prefix;  /* prefix_len tokens: the prompt followed by tokens generated so far */
    int64_t prefix_len;
    int64_t prompt_len;     /* the first prompt_len tokens of prefix are the prompt */
    int32_t n;              /* number of independent continuations to sample (>= 1) */
    int32_t max_new_tokens; /* at most this many new tokens per continuation (>= 1) */
    uint64_t seed;          /* deterministic seed for this request (config.seed_scope) */
    const int32_t *stop;    /* stop token ids (the driver's config), n_stop of them; a sample */
    int32_t n_stop;         /* that ends with one of them (or EOS) is "finished" */
} segrl_gen_request;

typedef struct segrl_rollout segrl_rollout;

/* Callback form of a generator: sample every request of the list and hand each sample back with
 * segrl_rollout_put(r, requests[i].index, j, ...) for j in [0, requests[i].n). Returns SEGRL_OK,
 * or any other status to stop the run (its segrl_set_error message, if any, is kept). */
typedef segrl_status (*segrl_generate_fn)(void *user, segrl_rollout *r,
                                          const segrl_gen_request *requests, int64_t n_requests);

/* Scoring callback: the reward of the full token sequence `tokens` (n_tokens of them: the
 * prompt's prompt_len tokens, then the response) for prompt `prompt`. Write a finite float to
 * *out_reward and return SEGRL_OK. Called from segrl_rollout_advance, once per complete
 * sequence (trajectories, Monte Carlo continuations, tree leaves), in request order. */
typedef segrl_status (*segrl_score_fn)(void *user, int64_t prompt, const int32_t *tokens,
                                       int64_t n_tokens, int64_t prompt_len, float *out_reward);

// ----------------------------------------------------------------------------
// configuration

typedef enum segrl_rollout_method {
    /* G samples per prompt, scored: GRPO, Dr. GRPO, RLOO, REINFORCE++, PPO (G = 1) and the other
     * outcome estimators of advantage.h take the batch as it is (group id = prompt). */
    SEGRL_ROLLOUT_GROUP = 0,
    /* SPO-chain: G trajectories per prompt -> cutpoints -> Monte Carlo values at each cutpoint
     * prefix -> segrl_spo_chain token advantages + segrl_prob_mask. */
    SEGRL_ROLLOUT_SPO_CHAIN = 1,
    /* SPO-tree: one tree per prompt grown level by level -> segrl_tree_values /
     * segrl_tree_advantages -> edge or path episodes (segrl_tree_episodes). */
    SEGRL_ROLLOUT_SPO_TREE = 2,
    /* VinePPO: G trajectories per prompt -> steps at delimiter tokens -> Monte Carlo values at
     * each step start -> segrl_vineppo token advantages. */
    SEGRL_ROLLOUT_VINEPPO = 3,
} segrl_rollout_method;

/* How the adaptive budget picks the prefix for the next rollout (docs/rollout.md). */
typedef enum segrl_mc_rule {
    /* the largest drop of the squared Wilson width, w(p, n)^2 - w(p, n + 1)^2 (default) */
    SEGRL_MC_RULE_VARIANCE = 0,
    /* the widest Wilson interval, w(p, n) (measured worse than fixed K; kept for comparison) */
    SEGRL_MC_RULE_WIDEST = 1,
} segrl_mc_rule;

/* What a request's seed derives from (besides config.seed and the round number r).
 *   POSITION: seed = mix(mix(seed ^ mix(r)) + i), i = the request's position in the round
 *   PROMPT:   seed = mix(mix(mix(seed ^ mix(r)) ^ mix(~g)) + k), g = prompt_base + prompt, k =
 *             the request's rank among the round's requests for that prompt (0, 1, ...)
 * (mix: the splitmix64 finalizer.) See "Data-parallel shards" at the top of this file. */
typedef enum segrl_rollout_seed_scope {
    SEGRL_ROLLOUT_SEED_POSITION = 0, /* default: the request's position in its round (the
                                        behaviour so far) */
    SEGRL_ROLLOUT_SEED_PROMPT = 1,   /* the request's GLOBAL prompt (prompt_base + p) and its
                                        rank among that prompt's requests in the round: the same
                                        under any split of the batch into shards */
} segrl_rollout_seed_scope;

#define SEGRL_ROLLOUT_MAX_LEVELS 16

typedef struct segrl_rollout_config {
    int32_t method;         /* segrl_rollout_method */
    int32_t group_size;     /* G trajectories per prompt (GROUP, SPO_CHAIN, VINEPPO); default 8;
                               at most 65536 (as mc_samples and each branching[l]), and
                               num_prompts x G at most 2^24 */
    int32_t max_new_tokens; /* response length limit (all methods; the tree's total depth in
                               tokens); default 512 */
    uint64_t seed;          /* request seeds derive from it; default 0 */
    const int32_t *stop_ids; /* copied; handed to the generator in every request; may be NULL */
    int32_t n_stop;

    /* Monte Carlo boundary values (SPO_CHAIN, VINEPPO). V(prefix) = mean reward of the
     * continuations sampled from it; identical prefixes (same prompt, same tokens) are sampled
     * once and shared. */
    int32_t mc_samples;  /* K continuations per distinct prefix (SPO-chain's MC sample count,
                            VinePPO's K); with mc_adaptive the AVERAGE per prefix. Default 4 */
    int32_t mc_adaptive; /* 0: K each. 1: adaptive budget of K * U rollouts for U distinct
                            prefixes: mc_initial each, then rounds of mc_batch given where the
                            Wilson interval shrinks most (segrl_mc_allocate). Default 0 */
    int32_t mc_initial;  /* k0 >= 1, <= mc_samples; default 2 */
    int32_t mc_batch;    /* rollouts per adaptive round; 0: U (default) */
    float mc_z;          /* Wilson interval z of the rule; default 1.96 */
    int32_t mc_rule;     /* segrl_mc_rule; default SEGRL_MC_RULE_VARIANCE */

    /* SPO_CHAIN */
    segrl_cutpoint_opts cutpoints; /* tau 0.9, k 5 (SPO's cutpoint count), no cap */
    float prob_mask_tau;           /* probability mask threshold; default 0.9 */

    /* VINEPPO */
    const int32_t *delimiters; /* step delimiter token ids (e.g. newline), copied; >= 1 */
    int32_t n_delimiters;
    float gamma;               /* default 1 */

    /* SPO_TREE: levels L in [1, SEGRL_ROLLOUT_MAX_LEVELS]. Level l (l = 0 .. L-1) samples
     * branching[l] children of every open node at depth l; a child holds segment_len[l] new
     * tokens, except at the last level, whose children run to the end (max_new_tokens in all).
     * A child that finishes (EOS/stop) or reaches max_new_tokens is a leaf. SPO: L = 3,
     * branching 6-6-6, segment_len 30 (GSM8K). */
    int32_t tree_levels;                                 /* default 3 */
    int32_t branching[SEGRL_ROLLOUT_MAX_LEVELS];         /* default 6, 6, 6 */
    int32_t segment_len[SEGRL_ROLLOUT_MAX_LEVELS];       /* default 30, 30, (ignored) */
    int32_t tree_value;                    /* segrl_tree_value; default CHILD_MEAN (SPO code) */
    segrl_tree_adv_opts tree_adv;          /* default: segrl_tree_adv_opts_default() */
    segrl_tree_episode_opts tree_episodes; /* default: EDGE with the ancestors as context */

    /* data-parallel shards */
    int32_t seed_scope;  /* segrl_rollout_seed_scope; default POSITION */
    int64_t prompt_base; /* global index of this driver's first prompt (SEED_PROMPT); default 0;
                            >= 0, and prompt_base + num_prompts must fit in int64 */
} segrl_rollout_config;

/* Defaults for `method` (values above). */
SEGRL_API segrl_rollout_config segrl_rollout_config_default(int32_t method);

/* Prompts, packed: prompt p is tokens[offsets[p] .. offsets[p+1]). Copied by segrl_rollout_init. */
typedef struct segrl_rollout_prompts {
    int64_t num_prompts;           /* >= 1 */
    const int64_t *offsets;        /* (num_prompts + 1), offsets[0] == 0, non-decreasing */
    const int32_t *tokens;         /* (offsets[num_prompts]) */
    const int64_t *question_ids;   /* (num_prompts) caller's ids (dataset rows), or NULL: p */
} segrl_rollout_prompts;

// ----------------------------------------------------------------------------
// the driver

/* Creates a driver for one batch of prompts and plans its first round. *out is written only on
 * success; free it with segrl_rollout_free. score: required. */
SEGRL_API segrl_status segrl_rollout_init(const segrl_rollout_config *config,
                                          const segrl_rollout_prompts *prompts,
                                          segrl_score_fn score, void *score_user,
                                          segrl_rollout **out);
SEGRL_API void segrl_rollout_free(segrl_rollout *r);

/* 1 when every round is done and the batch is ready. */
SEGRL_API int segrl_rollout_done(const segrl_rollout *r);

/* This round's requests (borrowed, valid until the next advance); *out_n == 0 when done. */
SEGRL_API segrl_status segrl_rollout_pending(const segrl_rollout *r,
                                             const segrl_gen_request **out_requests,
                                             int64_t *out_n);

/* Hands back sample `sample` (0 .. n-1) of request `request` of this round: `len` new tokens
 * (0 <= len <= max_new_tokens), their log-probabilities (finite; NULL only when len == 0) and
 * whether the continuation finished (1: EOS/stop, 0: stopped at the limit). Copied. Each sample
 * exactly once. */
SEGRL_API segrl_status segrl_rollout_put(segrl_rollout *r, int64_t request, int32_t sample,
                                         const int32_t *tokens, const float *logprobs,
                                         int64_t len, int32_t finished);

/* Ends the round (every sample must have been put): scores, computes values and advantages
 * where the method is complete, and plans the next round. */
SEGRL_API segrl_status segrl_rollout_advance(segrl_rollout *r);

/* Callback form: pending -> generate -> advance until done. On a callback error the run stops
 * with it; the samples already put stay. */
SEGRL_API segrl_status segrl_rollout_run(segrl_rollout *r, segrl_generate_fn generate,
                                         void *user);

// ----------------------------------------------------------------------------
// results

/* The training batch, packed: sequence b is tokens [offsets[b], offsets[b+1]).
 *   GROUP, SPO_CHAIN, VINEPPO: one sequence per trajectory, in prompt order, G per prompt;
 *     context_len = the prompt's length.
 *   SPO_TREE: one episode per segrl_tree_episodes (EDGE: per non-root node in node order, its
 *     context = prompt + ancestors' tokens; PATH: per leaf, context = the prompt). */
typedef struct segrl_rollout_batch {
    int64_t num_seqs;            /* B */
    int64_t num_tokens;          /* N */
    int64_t num_groups;          /* number of prompts (group ids are prompt indices) */
    const int64_t *offsets;      /* (B + 1) */
    const int32_t *tokens;       /* (N) full sequences: context, then the trained tokens */
    const float *logprobs;       /* (N) sampling-time log-probs; 0 at context tokens */
    const uint8_t *mask;         /* (N) 1 at the generated tokens to train on, 0 at context */
    const int64_t *context_len;  /* (B) leading tokens that are context (mask 0) */
    const int64_t *prompt;       /* (B) prompt index = group id */
    const int64_t *question;     /* (B) the prompt's question id */
    const float *rewards;        /* (B) trajectory reward; tree EDGE: V(node); PATH: leaf reward */
    const uint8_t *finished;     /* (B) 1: the generated part ended with EOS/stop */
    const float *advantages;     /* (N) token advantages (0 where mask is 0); NULL for GROUP,
                                    whose advantages come from the trainer's estimator */
    const uint8_t *prob_mask;    /* (N) SPO_CHAIN: segrl_prob_mask (mask and p < tau); else NULL */
    /* SPO_CHAIN (cutpoint segments) and VINEPPO (steps); 0 / NULL otherwise. Segment positions
     * are relative to the full sequence (segment.h's convention). */
    int64_t num_segments;        /* S */
    const int64_t *seg_offsets;  /* (B + 1) */
    const int64_t *seg_start;    /* (S) */
    const int64_t *seg_end;      /* (S) */
    const float *seg_values;     /* (S) Monte Carlo V of the prefix before the segment */
    const float *seg_advantages; /* (S) the segment's advantage */
    const int64_t *seg_prefix;   /* (S) distinct-prefix id of the boundary (dedup key) */
    const int64_t *seg_mc_count; /* (S) continuations behind seg_values (shared when deduped) */
} segrl_rollout_batch;

/* The batch (borrowed). SEGRL_ERR_INVALID when the driver is not done. */
SEGRL_API segrl_status segrl_rollout_batch_get(const segrl_rollout *r,
                                               segrl_rollout_batch *out);

/* SPO_TREE: the grown forest as segrl_tree arrays (borrowed), M nodes in level order (parents
 * first; roots 0 .. P-1 are the prompts). Node n owns tokens [span_start[n], span_end[n]) of
 * `tokens` / `logprobs` (roots: the prompt, logprob 0). */
typedef struct segrl_rollout_tree {
    int64_t num_nodes;         /* M */
    int64_t num_tokens;
    const int64_t *parent;     /* (M), -1 at roots */
    const int64_t *depth;      /* (M) */
    const int64_t *prompt;     /* (M) */
    const int64_t *span_start; /* (M) */
    const int64_t *span_end;   /* (M) */
    const int32_t *tokens;     /* (num_tokens) */
    const float *logprobs;     /* (num_tokens) */
    const uint8_t *finished;   /* (M) 1: the node's continuation ended with EOS/stop */
    const uint8_t *is_leaf;    /* (M) */
    const float *leaf_reward;  /* (M) reward at leaves, NaN at inner nodes */
    const float *values;       /* (M) segrl_tree_values(config.tree_value) */
    const float *advantages;   /* (M) segrl_tree_advantages(config.tree_adv) */
    const float *leaf_advantages; /* (M) trajectory GRPO advantage of each leaf, 0 elsewhere */
} segrl_rollout_tree;

/* SEGRL_ERR_INVALID when the method is not SPO_TREE or the driver is not done. */
SEGRL_API segrl_status segrl_rollout_tree_get(const segrl_rollout *r, segrl_rollout_tree *out);

typedef struct segrl_rollout_stats {
    int64_t rounds;          /* rounds completed */
    int64_t requests;        /* requests issued */
    int64_t samples;         /* continuations sampled (sum of n) */
    int64_t tokens;          /* tokens generated */
    int64_t scored;          /* score callback calls */
    int64_t mc_boundaries;   /* boundaries needing a value (SPO_CHAIN, VINEPPO) */
    int64_t mc_prefixes;     /* distinct prefixes among them (each sampled once) */
    int64_t mc_rollouts;     /* Monte Carlo continuations sampled */
} segrl_rollout_stats;

SEGRL_API segrl_status segrl_rollout_stats_get(const segrl_rollout *r,
                                               segrl_rollout_stats *out);

// ----------------------------------------------------------------------------
// adaptive Monte Carlo budget

/* One allocation step of the adaptive budget (docs/rollout.md): prefix i has count[i] >= 1
 * rewards with mean[i] (clipped to [0, 1] for the rule). With the Wilson score interval width
 *   w(p, n) = 2 z sqrt(p (1 - p) / n + z^2 / (4 n^2)) / (1 + z^2 / n)
 * each of `batch` rollouts goes, one at a time, to the prefix whose squared width one more
 * rollout would shrink the most, g = w(p, n)^2 - w(p, n + 1)^2 (a greedy cut of the summed
 * variance of the estimates), with n = count[i] + (rollouts already given to i in this step)
 * and p = mean[i] held; ties to the lowest i.
 * out_add: (n) rollouts given to each prefix (sums to batch). n >= 1, batch >= 0, z > 0. */
SEGRL_API segrl_status segrl_mc_allocate(const float *mean, const int64_t *count, int64_t n,
                                         int64_t batch, float z, int64_t *out_add);

// ----------------------------------------------------------------------------
// replay buffer of tree edges (SPO-tree)

/* Keeps training episodes of past steps: an episode added at step s stays while
 * step - s <= max_age, and each question keeps at most per_question_cap episodes (the newest
 * steps first; within a step, the batch order). */
typedef struct segrl_replay segrl_replay;

/* max_age >= 0 (0: only the latest step), per_question_cap >= 0 (0: no cap). */
SEGRL_API segrl_status segrl_replay_init(int64_t max_age, int64_t per_question_cap,
                                         segrl_replay **out);
SEGRL_API void segrl_replay_free(segrl_replay *rb);

/* Adds the episodes of `batch` with mask != 0 somewhere (copied) at `step` (>= the last step
 * added), then evicts by age and cap. batch: from segrl_rollout_batch_get (any method with
 * advantages) or segrl_replay_batch_get. */
SEGRL_API segrl_status segrl_replay_add(segrl_replay *rb, const segrl_rollout_batch *batch,
                                        int64_t step);

/* The buffer's episodes as a batch (borrowed until the next add/free), newest step first;
 * num_groups = the number of distinct questions held, prompt[b] = the dense index (0 ..
 * num_groups - 1, in order of first appearance) of question[b]; no segments, no prob_mask. */
SEGRL_API segrl_status segrl_replay_batch_get(const segrl_replay *rb, segrl_rollout_batch *out);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_ROLLOUT_H */
