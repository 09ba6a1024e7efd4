/* segrl/tree.h — credit assignment on batches of Monte-Carlo rollout trees (SPO-tree, TreeRL,
 * ReST-MCTS*, ROSE).
 *
 * Devices: segrl_tree_values and segrl_tree_advantages run on CUDA when the tree's views are on a
 * CUDA device (the device of tree->parent; every other view must be on the same one; a CPU-only
 * build returns SEGRL_ERR_NO_DEVICE). The episode expansion and ReST-MCTS* targets are CPU only:
 * a view on a CUDA device returns SEGRL_ERR_UNSUPPORTED
 * ("<fn>: <arg>: CUDA views are not supported by this op yet (CPU only)").
 *
 * Representation (segrl_tree): M nodes, numbered so that every node comes after its parent.
 *   parent[i]       i32/i64 (M): the parent's index, in [0, i); -1 for a root. Each root starts
 *                   one tree (one prompt); a batch holds any number of trees, of any branching
 *                   factor and depth. Because parents come first, cycles cannot be expressed.
 *   span_start[i],  i32/i64 (M): node i owns tokens [span_start[i], span_end[i]) of a token
 *   span_end[i]     buffer of num_tokens tokens. Spans lie in [0, num_tokens], are disjoint and
 *                   appear in node order (a non-empty span starts at or after the end of every
 *                   earlier node's span); empty spans are allowed anywhere. A root's span is
 *                   usually the prompt. Needed only for the episode expansion.
 *   leaf_reward[i]  f32 (M): the outcome reward of leaf i (a node without children); must be
 *                   finite at leaves, ignored (may be NaN) at inner nodes.
 *   depth[i]        i32/i64 (M), optional: checked to be 0 at roots and depth[parent] + 1.
 *
 * Every call: O(M) passes over the nodes, from last to first for what flows up the tree and from
 * first to last for what flows down (no recursion). Statistics are accumulated in f64; outputs
 * are written only when SEGRL_OK is returned. Scratch lives in the caller's workspace:
 * exec->workspace of at least segrl_tree_workspace_size() bytes, 16-byte aligned.
 * Under SEGRL_CHECKS_FULL (the default) the node arrays are checked: a parent not before its
 * child or out of range, spans out of range, overlapping or out of node order, a wrong depth, a
 * non-finite leaf reward or value: SEGRL_ERR_INVALID naming the argument and the node. Under
 * SEGRL_CHECKS_SHAPES such inputs are undefined behaviour.
 * See docs/trees.md for the formulas, papers and a worked example. */
#ifndef SEGRL_TREE_H
#define SEGRL_TREE_H

#include "segrl/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct segrl_tree {
    segrl_view parent;      /* i32/i64 (M), required */
    segrl_view span_start;  /* i32/i64 (M), or none (no tokens: episodes unavailable) */
    segrl_view span_end;    /* i32/i64 (M), given together with span_start */
    int64_t num_tokens;     /* size of the token buffer the spans index */
    segrl_view leaf_reward; /* f32 (M); required by the calls that read rewards */
    segrl_view depth;       /* i32/i64 (M), or none */
} segrl_tree;

/* Workspace bytes every tree call needs for M = num_nodes nodes (the same for all of them) on
 * `device`: 64 M on the CPU; on CUDA 8 arrays of M + 2 words plus 256 bytes of check scratch,
 * about 64 M + 2.3 KB, all device memory. */
SEGRL_API segrl_status segrl_tree_workspace_size(segrl_device device, int64_t num_nodes,
                                                 size_t *out_bytes);

// ----------------------------------------------------------------------------
// node values

typedef enum segrl_tree_value {
    /* V(n) = mean of the rewards of the leaves below n (each leaf weighs the same). */
    SEGRL_TREE_VALUE_LEAF_MEAN = 0,
    /* V(leaf) = R; V(n) = mean of the values of n's children (the SPO-tree code: a child that
     * finishes early, i.e. is a leaf, weighs as much as a whole subtree). */
    SEGRL_TREE_VALUE_CHILD_MEAN = 1,
    /* V(leaf) = R; V(n) = max of the children's values (= max leaf reward below n). */
    SEGRL_TREE_VALUE_MAX = 2,
} segrl_tree_value;

/* Node values (SPO-tree, arXiv 2505.23564: Monte-Carlo value of a node of the
 * rollout tree), in one reverse pass over the nodes.
 *   kind:             segrl_tree_value
 *   tree:             parent, leaf_reward required
 *   out_values:       f32 (M), required
 *   out_leaf_counts:  i32/i64 (M), optional: number of leaves below each node (1 at a leaf)
 * Statuses: SEGRL_OK, SEGRL_ERR_INVALID, SEGRL_ERR_WORKSPACE, SEGRL_ERR_NO_DEVICE,
 * SEGRL_ERR_CUDA. */
SEGRL_API segrl_status segrl_tree_values(const segrl_tree *tree, int32_t kind,
                                         const segrl_exec *exec, segrl_view out_values,
                                         segrl_view out_leaf_counts);

// ----------------------------------------------------------------------------
// node advantages

typedef enum segrl_tree_adv {
    /* A(n) = V(n) - V(parent)                                         (SPO-tree "rloo") */
    SEGRL_TREE_ADV_PARENT = 0,
    /* A(n) = (V(n) - V(parent)) / (std_p + eps), std_p the std of the values of the parent's
     * children; std_p = 1 when the parent has one child                (SPO-tree "grpo") */
    SEGRL_TREE_ADV_PARENT_STD = 1,
    /* A(n) = V(n) - mean of V over n's siblings (the parent's other children); 0 without
     * siblings. With CHILD_MEAN values this is k/(k-1) * (V(n) - V(parent)). */
    SEGRL_TREE_ADV_SIBLINGS = 2,
} segrl_tree_adv;

typedef struct segrl_tree_adv_opts {
    int32_t kind;      /* segrl_tree_adv */
    float eps;         /* PARENT_STD and leaf GRPO: divide by std + eps; default 1e-6 */
    int32_t unbiased;  /* stds with n - 1 (1, default) or n (0) */
    int32_t drop_zero; /* out_node_mask: 0 also at nodes whose advantage is exactly 0 */
} segrl_tree_adv_opts;

/* kind PARENT, eps 1e-6, unbiased 1, drop_zero 0. */
SEGRL_API segrl_tree_adv_opts segrl_tree_adv_opts_default(void);

/* Node advantages from node values (segrl_tree_values, or any caller estimate).
 * Roots get A = 0.
 *   values:               f32 (M), finite
 *   out_advantages:       f32 (M), required
 *   out_leaf_advantages:  f32 (M), optional: trajectory-level GRPO advantage of each leaf within
 *                         its tree, (R - mean) / (std + eps) over the tree's leaves (a tree with
 *                         one leaf: R / (1 + eps), as segrl_grpo's singleton KEEP); 0 at inner
 *                         nodes. Needs tree->leaf_reward. Blend it in with segrl_tree_episodes.
 *   out_node_mask:        u8/i32/i64/f32 (M), optional: 1 at nodes to train on, 0 at roots and,
 *                         with drop_zero, at nodes with A == 0 (give it to segrl_tree_episodes)
 * opts NULL: the defaults. Statuses as segrl_tree_values. */
SEGRL_API segrl_status segrl_tree_advantages(const segrl_tree *tree, segrl_view values,
                                             const segrl_tree_adv_opts *opts,
                                             const segrl_exec *exec, segrl_view out_advantages,
                                             segrl_view out_leaf_advantages,
                                             segrl_view out_node_mask);

// ----------------------------------------------------------------------------
// expansion into training sequences

typedef enum segrl_tree_episode {
    /* One episode per non-root node with node_mask != 0, in node order: (with include_prefix)
     * the tokens of its ancestors from the root down, mask 0 and advantage 0, then its own
     * tokens, mask 1 and advantage A(n) each (SPO-tree trains this way). */
    SEGRL_TREE_EPISODE_EDGE = 0,
    /* One episode per leaf, in node order: the tokens of every node on the root-to-leaf path;
     * a token of node n gets (1 - w) * A(n) + w * A_leaf(leaf) and mask 1, except the tokens of
     * the root and of nodes with node_mask == 0 (advantage 0, mask 0)  (TreeRL / ROSE style). */
    SEGRL_TREE_EPISODE_PATH = 1,
} segrl_tree_episode;

typedef struct segrl_tree_episode_opts {
    int32_t kind;           /* segrl_tree_episode */
    int32_t include_prefix; /* EDGE: 1 (default) includes the ancestors' tokens as context */
    float traj_weight;      /* PATH: w in [0, 1]; needs leaf_advantages when > 0. Default 0 */
    /* PATH, ROSE length-aware shaping (arXiv 2601.05053) when rose != 0: in each tree, with s
     * the shortest correct leaf (reward >= correct_threshold; the first in node order on ties)
     * and, for every other correct leaf b, k_c the token length of the path to the deepest
     * node b shares with s, each token t in [k_c, L_b) of b's episode gets
     *   A_t -= |A_t| * (1 - ((L_s - k_c) / (L_b - k_c))^rose_lambda).
     * Needs tree->leaf_reward. */
    int32_t rose;
    float rose_lambda;       /* >= 0; default 1 */
    float correct_threshold; /* default 1 */
} segrl_tree_episode_opts;

/* EDGE, include_prefix 1, traj_weight 0, rose 0, rose_lambda 1, correct_threshold 1. */
SEGRL_API segrl_tree_episode_opts segrl_tree_episode_opts_default(void);

/* Size query for segrl_tree_episodes: the number of episodes E and of tokens N they hold, for
 * these spans, node_mask (none: every node) and opts. Runs the same checks. */
SEGRL_API segrl_status segrl_tree_episodes_size(const segrl_tree *tree, segrl_view node_mask,
                                                const segrl_tree_episode_opts *opts,
                                                const segrl_exec *exec, int64_t *out_episodes,
                                                int64_t *out_tokens);

/* Expands node advantages into training sequences in the packed layout: episode e is tokens
 * [out_offsets[e], out_offsets[e+1]) of the outputs, so segrl_layout_packed(out_offsets) with
 * out_advantages and out_mask feeds the loss and advantage calls directly.
 *   tree:                  parent and spans required (leaf_reward for ROSE)
 *   node_advantages:       f32 (M), finite (segrl_tree_advantages)
 *   leaf_advantages:       f32 (M) or none; finite at leaves; used when traj_weight > 0
 *   node_mask:             u8/i32/i64/f32 (M) or none (all 1)
 *   out_offsets:           i32/i64 (E + 1), required
 *   out_token_index:       i32/i64 (N), required: position of each token in the token buffer
 *                          (gather token ids, log-probabilities... with it)
 *   out_advantages:        f32 (N), required
 *   out_mask:              u8/i32/i64/f32 (N), optional: 1 at tokens to train on
 *   out_episode_node:      i32/i64 (E), optional: the node (EDGE) or leaf (PATH) of each episode
 * E and N from segrl_tree_episodes_size. Statuses: SEGRL_OK,
 * SEGRL_ERR_INVALID, SEGRL_ERR_WORKSPACE, SEGRL_ERR_UNSUPPORTED (CUDA views). */
SEGRL_API segrl_status segrl_tree_episodes(const segrl_tree *tree, segrl_view node_advantages,
                                           segrl_view leaf_advantages, segrl_view node_mask,
                                           const segrl_tree_episode_opts *opts,
                                           const segrl_exec *exec, segrl_view out_offsets,
                                           segrl_view out_token_index, segrl_view out_advantages,
                                           segrl_view out_mask, segrl_view out_episode_node);

// ----------------------------------------------------------------------------
// ReST-MCTS* value targets

/* Process-reward value targets (ReST-MCTS*), in the form
 *   v_n = max(0, v_p + (1 - v_p) * r_n / m_n)          v_p = v0 for a root
 * r_n = +1 when a correct leaf (reward >= correct_threshold) lies below n (n included), else -1;
 * m_n = 1 + the number of edges from n to the nearest correct leaf below it (r_n = +1) or to the
 * nearest leaf below it (r_n = -1). A correct leaf gets 1; an incorrect one max(0, 2 v_p - 1).
 *   out_values: f32 (M), required. tree: parent, leaf_reward required. v0 in [0, 1] (so every
 *   v_n is in [0, 1]); anything else is SEGRL_ERR_INVALID naming "v0". */
SEGRL_API segrl_status segrl_tree_rest_values(const segrl_tree *tree, float correct_threshold,
                                              float v0, const segrl_exec *exec,
                                              segrl_view out_values);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_TREE_H */
