/* rollout.c — the rollout drivers: a state machine over rounds of generation requests.
 *
 *   GROUP       round 0: G samples per prompt; scored; done.
 *   SPO_CHAIN   round 0: G trajectories per prompt; scored; cutpoints (segrl_partition_cutpoints
 *               on the sampling probabilities exp(logprob)); each segment's start is a boundary
 *               whose prefix (prompt + response up to it) needs a value. Identical prefixes of
 *               the same prompt are one distinct prefix u. Rounds 1..: Monte Carlo continuations
 *               of every u (K each, or the adaptive budget); V(u) = mean reward. Then
 *               segrl_spo_chain (A_j = V_{j+1} - V_j, last segment R - V_K) and segrl_prob_mask.
 *   VINEPPO     as SPO_CHAIN with steps from segrl_partition_delimiters and segrl_vineppo
 *               (A_j = r_j + gamma V_{j+1} - V_j, r_K = R, V_{K+1} = 0).
 *   SPO_TREE    round l expands the open nodes of depth l (branching[l] children of
 *               segment_len[l] tokens, the last level to the end); finished children are leaves
 *               and scored; after the last level segrl_tree_values / segrl_tree_advantages /
 *               segrl_tree_episodes give the batch.
 *
 * Every advance builds the next state in locals and commits it only when every step succeeded,
 * so a failed call leaves the driver as it was. */
#include "rollout_impl.h"

/* limits on what one init may ask for (rollout.h) */
#define RO_MAX_PER_REQUEST (1 << 16)       /* group_size, mc_samples, branching[l] */
#define RO_MAX_SAMPLES ((int64_t)1 << 24) /* num_prompts x group_size */

#include <stdlib.h>

enum { RO_TRAJ = 0, RO_MC = 1, RO_TREE = 2, RO_DONE = 3 };

/* One round: its requests and the slots their samples are put into. */
typedef struct ro_round {
    segrl_gen_request *req;
    int64_t n;
    int32_t *tok;   /* tree: materialized prefixes, else NULL */
    int64_t *key;   /* MC: distinct prefix u of each request; tree: the node; else prompt */
    int64_t *slot0; /* (n + 1): request i owns slots [slot0[i], slot0[i+1]) */
    int64_t *s_off, *s_len;
    uint8_t *s_fin, *s_given;
    int64_t n_given;
    ro_vec s_tok, s_lp; /* the samples' tokens and log-probabilities, appended by put */
} ro_round;

struct segrl_rollout {
    segrl_rollout_config cfg;
    int32_t *stop, *delims;
    int64_t P;
    int64_t *p_off;
    int32_t *p_tok;
    int64_t *qid;
    segrl_score_fn score;
    void *score_user;
    int phase;
    int32_t level;  /* tree: the level the pending round expands */
    ro_round rd;    /* the pending round */
    ro_batch batch; /* trajectories, then the result */
    /* Monte Carlo over distinct prefixes u: batch.tokens[offsets[u_seq[u]] ..+ u_len[u]) */
    int64_t U;
    int64_t *u_seq, *u_len, *u_cnt;
    double *u_sum;
    int64_t mc_total, mc_spent;
    /* tree (level order) */
    int64_t M, lvl_lo, lvl_hi; /* nodes of the pending level's depth: [lvl_lo, lvl_hi) */
    ro_vec t_parent, t_depth, t_prompt, t_s0, t_s1, t_glen; /* int64 */
    ro_vec t_fin, t_leaf;                                   /* uint8 */
    ro_vec t_reward;                                        /* float */
    ro_vec t_tok;                                           /* int32 */
    ro_vec t_lp;                                            /* float */
    float *t_val, *t_adv, *t_ladv;
    segrl_rollout_stats st;
};

// ----------------------------------------------------------------------------
// configuration

segrl_rollout_config segrl_rollout_config_default(int32_t method) {
    segrl_rollout_config c;
    memset(&c, 0, sizeof c);
    c.method = method;
    c.group_size = 8;
    c.max_new_tokens = 512;
    c.mc_samples = 4;
    c.mc_initial = 2;
    c.mc_z = 1.96f;
    c.cutpoints = segrl_cutpoint_opts_default();
    c.prob_mask_tau = 0.9f;
    c.gamma = 1.0f;
    c.tree_levels = 3;
    for (int l = 0; l < 3; l++) {
        c.branching[l] = 6;
        c.segment_len[l] = 30;
    }
    c.tree_value = SEGRL_TREE_VALUE_CHILD_MEAN;
    c.tree_adv = segrl_tree_adv_opts_default();
    c.tree_episodes = segrl_tree_episode_opts_default();
    c.seed_scope = SEGRL_ROLLOUT_SEED_POSITION;
    c.prompt_base = 0;
    return c;
}

static segrl_status check_config(const char *fn, const segrl_rollout_config *c) {
    if (!c) return sg_fail(SEGRL_ERR_INVALID, "%s: config: is NULL", fn);
    if (c->method < SEGRL_ROLLOUT_GROUP || c->method > SEGRL_ROLLOUT_VINEPPO)
        return sg_fail(SEGRL_ERR_INVALID, "%s: config->method: unknown method %d", fn, c->method);
    int tree = c->method == SEGRL_ROLLOUT_SPO_TREE;
    int mc = c->method == SEGRL_ROLLOUT_SPO_CHAIN || c->method == SEGRL_ROLLOUT_VINEPPO;
    /* samples per request are capped: a huge count would allocate (and zero) gigabytes before
     * anything fails (group_size 2^31 did; test-badinput) */
    if (!tree && (c->group_size < 1 || c->group_size > RO_MAX_PER_REQUEST))
        return sg_fail(SEGRL_ERR_INVALID, "%s: config->group_size: must be in [1, %d], got %d", fn,
                       RO_MAX_PER_REQUEST, c->group_size);
    if (c->max_new_tokens < 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: config->max_new_tokens: must be >= 1, got %d", fn,
                       c->max_new_tokens);
    if (c->seed_scope != SEGRL_ROLLOUT_SEED_POSITION && c->seed_scope != SEGRL_ROLLOUT_SEED_PROMPT)
        return sg_fail(SEGRL_ERR_INVALID, "%s: config->seed_scope: unknown scope %d", fn,
                       c->seed_scope);
    if (c->prompt_base < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: config->prompt_base: must be >= 0, got %lld", fn,
                       (long long)c->prompt_base);
    if (c->n_stop < 0 || (c->n_stop > 0 && !c->stop_ids))
        return sg_fail(SEGRL_ERR_INVALID, "%s: config->stop_ids: NULL with n_stop = %d", fn,
                       c->n_stop);
    if (mc) {
        if (c->mc_samples < 1 || c->mc_samples > RO_MAX_PER_REQUEST)
            return sg_fail(SEGRL_ERR_INVALID, "%s: config->mc_samples: must be in [1, %d], got %d",
                           fn, RO_MAX_PER_REQUEST, c->mc_samples);
        if (c->mc_adaptive != 0 && c->mc_adaptive != 1)
            return sg_fail(SEGRL_ERR_INVALID, "%s: config->mc_adaptive: must be 0 or 1, got %d",
                           fn, c->mc_adaptive);
        if (c->mc_adaptive) {
            if (c->mc_initial < 1 || c->mc_initial > c->mc_samples)
                return sg_fail(SEGRL_ERR_INVALID,
                               "%s: config->mc_initial: must be in [1, mc_samples = %d], got %d",
                               fn, c->mc_samples, c->mc_initial);
            if (c->mc_batch < 0)
                return sg_fail(SEGRL_ERR_INVALID, "%s: config->mc_batch: must be >= 0, got %d",
                               fn, c->mc_batch);
            if (!(c->mc_z > 0) || !isfinite(c->mc_z))
                return sg_fail(SEGRL_ERR_INVALID, "%s: config->mc_z: must be finite and > 0", fn);
            if (c->mc_rule != SEGRL_MC_RULE_VARIANCE && c->mc_rule != SEGRL_MC_RULE_WIDEST)
                return sg_fail(SEGRL_ERR_INVALID, "%s: config->mc_rule: unknown rule %d", fn,
                               c->mc_rule);
        }
    }
    if (c->method == SEGRL_ROLLOUT_SPO_CHAIN) {
        if (!isfinite(c->cutpoints.tau))
            return sg_fail(SEGRL_ERR_INVALID, "%s: config->cutpoints.tau: not finite", fn);
        if (c->cutpoints.k < 1)
            return sg_fail(SEGRL_ERR_INVALID, "%s: config->cutpoints.k: must be >= 1, got %d", fn,
                           c->cutpoints.k);
        if (c->cutpoints.max_segments < 0)
            return sg_fail(SEGRL_ERR_INVALID, "%s: config->cutpoints.max_segments: must be >= 0",
                           fn);
        if (!isfinite(c->prob_mask_tau))
            return sg_fail(SEGRL_ERR_INVALID, "%s: config->prob_mask_tau: not finite", fn);
    }
    if (c->method == SEGRL_ROLLOUT_VINEPPO) {
        if (c->n_delimiters < 1 || !c->delimiters)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: config->delimiters: at least one step delimiter token required", fn);
        if (!isfinite(c->gamma))
            return sg_fail(SEGRL_ERR_INVALID, "%s: config->gamma: not finite", fn);
    }
    if (tree) {
        int L = c->tree_levels;
        if (L < 1 || L > SEGRL_ROLLOUT_MAX_LEVELS)
            return sg_fail(SEGRL_ERR_INVALID, "%s: config->tree_levels: must be in [1, %d], got %d",
                           fn, SEGRL_ROLLOUT_MAX_LEVELS, L);
        for (int l = 0; l < L; l++) {
            if (c->branching[l] < 1 || c->branching[l] > RO_MAX_PER_REQUEST)
                return sg_fail(SEGRL_ERR_INVALID,
                               "%s: config->branching[%d]: must be in [1, %d], got %d", fn, l,
                               RO_MAX_PER_REQUEST, c->branching[l]);
            if (l < L - 1 && c->segment_len[l] < 1)
                return sg_fail(SEGRL_ERR_INVALID,
                               "%s: config->segment_len[%d]: must be >= 1, got %d", fn, l,
                               c->segment_len[l]);
        }
        if (c->tree_value < SEGRL_TREE_VALUE_LEAF_MEAN || c->tree_value > SEGRL_TREE_VALUE_MAX)
            return sg_fail(SEGRL_ERR_INVALID, "%s: config->tree_value: unknown kind %d", fn,
                           c->tree_value);
        if (c->tree_adv.kind < SEGRL_TREE_ADV_PARENT || c->tree_adv.kind > SEGRL_TREE_ADV_SIBLINGS)
            return sg_fail(SEGRL_ERR_INVALID, "%s: config->tree_adv.kind: unknown kind %d", fn,
                           c->tree_adv.kind);
        if (c->tree_episodes.kind != SEGRL_TREE_EPISODE_EDGE &&
            c->tree_episodes.kind != SEGRL_TREE_EPISODE_PATH)
            return sg_fail(SEGRL_ERR_INVALID, "%s: config->tree_episodes.kind: unknown kind %d", fn,
                           c->tree_episodes.kind);
        if (c->tree_episodes.kind == SEGRL_TREE_EPISODE_EDGE && c->tree_episodes.include_prefix != 1)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: config->tree_episodes.include_prefix: must be 1 (the batch holds "
                           "full sequences)", fn);
    }
    return SEGRL_OK;
}

static segrl_status check_prompts(const char *fn, const segrl_rollout_prompts *p) {
    if (!p) return sg_fail(SEGRL_ERR_INVALID, "%s: prompts: is NULL", fn);
    if (p->num_prompts < 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: prompts->num_prompts: must be >= 1, got %lld", fn,
                       (long long)p->num_prompts);
    if (!p->offsets) return sg_fail(SEGRL_ERR_INVALID, "%s: prompts->offsets: is NULL", fn);
    if (p->offsets[0] != 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: prompts->offsets: offsets[0] must be 0, got %lld", fn,
                       (long long)p->offsets[0]);
    for (int64_t i = 0; i < p->num_prompts; i++)
        if (p->offsets[i + 1] < p->offsets[i])
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: prompts->offsets: decreases at %lld (%lld after %lld)", fn,
                           (long long)(i + 1), (long long)p->offsets[i + 1],
                           (long long)p->offsets[i]);
    int64_t n = p->offsets[p->num_prompts];
    if (n > 0 && !p->tokens)
        return sg_fail(SEGRL_ERR_INVALID, "%s: prompts->tokens: is NULL", fn);
    for (int64_t i = 0; i < n; i++)
        if (p->tokens[i] < 0)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: prompts->tokens: element %lld is %d (token ids are >= 0)", fn,
                           (long long)i, p->tokens[i]);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// rounds

static void round_free(ro_round *rd) {
    segrl_free(rd->req);
    segrl_free(rd->tok);
    segrl_free(rd->key);
    segrl_free(rd->slot0);
    segrl_free(rd->s_off);
    segrl_free(rd->s_len);
    segrl_free(rd->s_fin);
    segrl_free(rd->s_given);
    ro_vec_free(&rd->s_tok);
    ro_vec_free(&rd->s_lp);
    memset(rd, 0, sizeof *rd);
}

static segrl_status oom(const char *fn, const char *what) {
    return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory (%s)", fn, what);
}

static segrl_status round_new(ro_round *rd, int64_t n, const char *fn) {
    memset(rd, 0, sizeof *rd);
    rd->n = n;
    rd->req = ro_zalloc(n, sizeof(segrl_gen_request));
    rd->key = ro_zalloc(n, sizeof(int64_t));
    if (!rd->req || !rd->key) {
        round_free(rd);
        return oom(fn, "requests");
    }
    return SEGRL_OK;
}

/* Request seeds (rollout.h, segrl_rollout_seed_scope), after every req[i].prompt is set.
 *   POSITION: ro_mix(ro_mix(seed ^ ro_mix(round)) + i), i the request's position in the round
 *   PROMPT:   h0 = ro_mix(seed ^ ro_mix(round)); h1 = ro_mix(h0 ^ ro_mix(~g)); ro_mix(h1 + k)
 *             g = prompt_base + prompt (the global prompt), k = the number of EARLIER requests
 *             of the same prompt in this round (counted, so it holds whatever the order). */
static segrl_status round_seeds(const segrl_rollout *r, ro_round *rd, int64_t round,
                                const char *fn) {
    uint64_t h0 = ro_mix(r->cfg.seed ^ ro_mix((uint64_t)round));
    if (r->cfg.seed_scope == SEGRL_ROLLOUT_SEED_POSITION) {
        for (int64_t i = 0; i < rd->n; i++) rd->req[i].seed = ro_mix(h0 + (uint64_t)i);
        return SEGRL_OK;
    }
    int64_t *seen = ro_zalloc(r->P, sizeof(int64_t));
    if (!seen) return oom(fn, "request seeds");
    for (int64_t i = 0; i < rd->n; i++) {
        segrl_gen_request *q = &rd->req[i];
        uint64_t g = (uint64_t)(r->cfg.prompt_base + q->prompt);
        uint64_t k = (uint64_t)seen[q->prompt]++;
        q->seed = ro_mix(ro_mix(h0 ^ ro_mix(~g)) + k);
    }
    segrl_free(seen);
    return SEGRL_OK;
}

/* After every req[i] is filled in (but its seed): the seeds and the sample slots. */
static segrl_status round_slots(const segrl_rollout *r, ro_round *rd, int64_t round,
                                const char *fn) {
    SG_TRY(round_seeds(r, rd, round, fn));
    rd->slot0 = ro_zalloc(rd->n + 1, sizeof(int64_t));
    if (!rd->slot0) return oom(fn, "request slots");
    for (int64_t i = 0; i < rd->n; i++) rd->slot0[i + 1] = rd->slot0[i] + rd->req[i].n;
    int64_t S = rd->slot0[rd->n];
    rd->s_off = ro_zalloc(S, sizeof(int64_t));
    rd->s_len = ro_zalloc(S, sizeof(int64_t));
    rd->s_fin = ro_zalloc(S, 1);
    rd->s_given = ro_zalloc(S, 1);
    if (!rd->s_off || !rd->s_len || !rd->s_fin || !rd->s_given) return oom(fn, "sample slots");
    return SEGRL_OK;
}

static void req_common(const segrl_rollout *r, segrl_gen_request *q, int64_t i) {
    q->index = i;
    q->stop = r->stop;
    q->n_stop = r->cfg.n_stop;
    q->parent_id = -1;
}

// ----------------------------------------------------------------------------
// scoring

static segrl_status score_one(segrl_rollout *r, const char *fn, int64_t prompt,
                              const int32_t *tok, int64_t n, int64_t plen, float *out) {
    float v = NAN;
    segrl_clear_error();
    segrl_status st = r->score(r->score_user, prompt, tok, n, plen, &v);
    if (st != SEGRL_OK) {
        if (segrl_last_error()[0] == '\0')
            return sg_fail(st, "%s: score: callback returned %s (prompt %lld)", fn,
                           segrl_status_str(st), (long long)prompt);
        return st;
    }
    if (!isfinite(v))
        return sg_fail(SEGRL_ERR_INVALID, "%s: score: reward %g for prompt %lld is not finite", fn,
                       (double)v, (long long)prompt);
    *out = v;
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// Monte Carlo values: finishing SPO_CHAIN / VINEPPO

static segrl_view v1(void *p, segrl_dtype dt, int64_t n) { return segrl_view_1d(p, dt, segrl_cpu(), n); }

/* Values V(u) = sum / cnt at every segment, then the method's advantages; attached to b only on
 * success. */
static segrl_status mc_finish(segrl_rollout *r, ro_batch *b, const double *sum,
                              const int64_t *cnt, const char *fn) {
    int64_t B = b->B, N = b->N, S = b->S;
    float *val = ro_zalloc(S, sizeof(float)), *sadv = ro_zalloc(S, sizeof(float));
    float *adv = ro_zalloc(N, sizeof(float)), *aux = ro_zalloc(S > N ? S : N, sizeof(float));
    int64_t *mcn = ro_zalloc(S, sizeof(int64_t));
    uint8_t *pm = NULL;
    int chain = r->cfg.method == SEGRL_ROLLOUT_SPO_CHAIN;
    if (chain) pm = ro_zalloc(N, 1);
    segrl_status st = SEGRL_OK;
    if (!val || !sadv || !adv || !aux || !mcn || (chain && !pm)) {
        st = oom(fn, "advantages");
        goto done;
    }
    for (int64_t k = 0; k < S; k++) {
        int64_t u = b->seg_prefix[k] - r->P;
        val[k] = (float)(sum[u] / (double)cnt[u]);
        mcn[k] = cnt[u];
    }
    segrl_layout lay = segrl_layout_packed(v1(b->offsets, SEGRL_DTYPE_I64, B + 1));
    segrl_segments segs = {v1(b->seg_off, SEGRL_DTYPE_I64, B + 1),
                           v1(b->seg_start, SEGRL_DTYPE_I64, S), v1(b->seg_end, SEGRL_DTYPE_I64, S)};
    segrl_view mask = v1(b->mask, SEGRL_DTYPE_U8, N);
    if (chain) {
        st = segrl_spo_chain(&lay, mask, &segs, v1(val, SEGRL_DTYPE_F32, S),
                             v1(b->rewards, SEGRL_DTYPE_F32, B), segrl_view_none(), NULL,
                             v1(adv, SEGRL_DTYPE_F32, N), v1(sadv, SEGRL_DTYPE_F32, S));
        if (st) goto done;
        /* probabilities of the sampled tokens (1 at context tokens, masked anyway) */
        for (int64_t t = 0; t < N; t++) aux[t] = b->mask[t] ? expf(b->logprobs[t]) : 1.0f;
        st = segrl_prob_mask(&lay, v1(aux, SEGRL_DTYPE_F32, N), mask, r->cfg.prob_mask_tau, NULL,
                             v1(pm, SEGRL_DTYPE_U8, N));
        if (st) goto done;
    } else {
        /* VinePPO step rewards: the outcome reward on each sequence's last step, 0 elsewhere */
        for (int64_t k = 0; k < S; k++) aux[k] = 0.0f;
        for (int64_t i = 0; i < B; i++)
            if (b->seg_off[i + 1] > b->seg_off[i]) aux[b->seg_off[i + 1] - 1] = b->rewards[i];
        st = segrl_vineppo(&lay, mask, &segs, v1(aux, SEGRL_DTYPE_F32, S),
                           v1(val, SEGRL_DTYPE_F32, S), r->cfg.gamma, NULL,
                           v1(adv, SEGRL_DTYPE_F32, N), v1(sadv, SEGRL_DTYPE_F32, S));
        if (st) goto done;
    }
    b->seg_val = val;
    b->seg_adv = sadv;
    b->adv = adv;
    b->pmask = pm;
    b->seg_mc = mcn;
    val = sadv = adv = NULL;
    pm = NULL;
    mcn = NULL;
done:
    segrl_free(val);
    segrl_free(sadv);
    segrl_free(adv);
    segrl_free(aux);
    segrl_free(mcn);
    segrl_free(pm);
    return st;
}

/* The Monte Carlo round giving add[u] continuations to each distinct prefix (skipping zeros). */
static segrl_status mc_plan(const segrl_rollout *r, const ro_batch *b, const int64_t *u_seq,
                            const int64_t *u_len, int64_t U, const int64_t *add, int64_t round,
                            ro_round *out, const char *fn) {
    int64_t n = 0;
    for (int64_t u = 0; u < U; u++) n += add[u] > 0;
    ro_round rd;
    SG_TRY(round_new(&rd, n, fn));
    int64_t i = 0;
    for (int64_t u = 0; u < U; u++) {
        if (add[u] <= 0) continue;
        segrl_gen_request *q = &rd.req[i];
        req_common(r, q, i);
        int64_t s = u_seq[u];
        q->prompt = b->prompt[s];
        q->prefix_id = r->P + u;
        q->prefix = b->tokens + b->offsets[s];
        q->prefix_len = u_len[u];
        q->prompt_len = b->ctx[s];
        q->n = (int32_t)add[u];
        q->max_new_tokens = (int32_t)(r->cfg.max_new_tokens - (u_len[u] - b->ctx[s]));
        rd.key[i] = u;
        i++;
    }
    segrl_status st = round_slots(r, &rd, round, fn);
    if (st) {
        round_free(&rd);
        return st;
    }
    *out = rd;
    return SEGRL_OK;
}

static segrl_status mc_first_add(const segrl_rollout *r, int64_t U, int64_t **out_add,
                                 const char *fn) {
    int64_t *add = ro_zalloc(U, sizeof(int64_t));
    if (!add) return oom(fn, "Monte Carlo plan");
    int64_t k = r->cfg.mc_adaptive ? r->cfg.mc_initial : r->cfg.mc_samples;
    for (int64_t u = 0; u < U; u++) add[u] = k;
    *out_add = add;
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// round 0 of GROUP / SPO_CHAIN / VINEPPO: the trajectories

typedef struct ro_mc_state {
    int64_t U;
    int64_t *u_seq, *u_len, *u_cnt;
    double *u_sum;
} ro_mc_state;

static void mc_state_free(ro_mc_state *m) {
    segrl_free(m->u_seq);
    segrl_free(m->u_len);
    segrl_free(m->u_cnt);
    segrl_free(m->u_sum);
    memset(m, 0, sizeof *m);
}

/* Segments of the trajectories (cutpoints or delimiters) and the distinct boundary prefixes. */
static segrl_status chain_segments(const segrl_rollout *r, ro_batch *b, ro_mc_state *m,
                                   const char *fn) {
    int64_t B = b->B, N = b->N;
    segrl_status st = SEGRL_OK;
    float *probs = NULL;
    int64_t *slot = NULL;
    uint64_t *hash = NULL;
    memset(m, 0, sizeof *m);
    b->seg_off = ro_zalloc(B + 1, sizeof(int64_t));
    if (!b->seg_off) return oom(fn, "segments");
    segrl_layout lay = segrl_layout_packed(v1(b->offsets, SEGRL_DTYPE_I64, B + 1));
    segrl_view mask = v1(b->mask, SEGRL_DTYPE_U8, N);
    segrl_segments segs = {v1(b->seg_off, SEGRL_DTYPE_I64, B + 1), segrl_view_none(),
                           segrl_view_none()};
    int chain = r->cfg.method == SEGRL_ROLLOUT_SPO_CHAIN;
    segrl_view dl = v1(r->delims, SEGRL_DTYPE_I32, r->cfg.n_delimiters);
    segrl_view ids = v1(b->tokens, SEGRL_DTYPE_I32, N);
    if (chain) {
        probs = ro_zalloc(N, sizeof(float));
        if (!probs) return oom(fn, "probabilities");
        for (int64_t t = 0; t < N; t++) probs[t] = b->mask[t] ? expf(b->logprobs[t]) : 1.0f;
    }
#define RO_PART()                                                                                 \
    (chain ? segrl_partition_cutpoints(&lay, v1(probs, SEGRL_DTYPE_F32, N), mask,                 \
                                       &r->cfg.cutpoints, NULL, &segs)                            \
           : segrl_partition_delimiters(&lay, ids, mask, dl, NULL, &segs))
    st = RO_PART();
    if (st) goto done;
    int64_t S = b->seg_off[B];
    b->S = S;
    b->seg_start = ro_zalloc(S, sizeof(int64_t));
    b->seg_end = ro_zalloc(S, sizeof(int64_t));
    b->seg_prefix = ro_zalloc(S, sizeof(int64_t));
    if (!b->seg_start || !b->seg_end || !b->seg_prefix) {
        st = oom(fn, "segments");
        goto done;
    }
    segs.start = v1(b->seg_start, SEGRL_DTYPE_I64, S);
    segs.end = v1(b->seg_end, SEGRL_DTYPE_I64, S);
    st = RO_PART();
    if (st) goto done;
#undef RO_PART

    /* Distinct prefixes: key (prompt, tokens[0 .. start)), open addressing on a polynomial hash
     * built along each sequence (its segments' starts increase), full comparison on a hit. */
    int64_t cap = 16;
    while (cap < 2 * S) cap *= 2;
    slot = ro_zalloc(cap, sizeof(int64_t));
    hash = ro_zalloc(S, sizeof(uint64_t));
    m->u_seq = ro_zalloc(S, sizeof(int64_t));
    m->u_len = ro_zalloc(S, sizeof(int64_t));
    if (!slot || !hash || !m->u_seq || !m->u_len) {
        st = oom(fn, "prefix table");
        goto done;
    }
    for (int64_t i = 0; i < cap; i++) slot[i] = -1;
    int64_t U = 0;
    for (int64_t s = 0; s < B; s++) {
        const int32_t *tk = b->tokens + b->offsets[s];
        uint64_t h = ro_mix((uint64_t)b->prompt[s]);
        int64_t pos = 0;
        for (int64_t k = b->seg_off[s]; k < b->seg_off[s + 1]; k++) {
            int64_t len = b->seg_start[k];
            for (; pos < len; pos++) h = h * 0x100000001b3ull + (uint64_t)(uint32_t)tk[pos] + 1;
            uint64_t hk = ro_mix(h ^ (uint64_t)len);
            int64_t at = (int64_t)(hk & (uint64_t)(cap - 1)), u = -1;
            for (;; at = (at + 1) & (cap - 1)) {
                int64_t c = slot[at];
                if (c < 0) break;
                int64_t cs = m->u_seq[c];
                if (hash[c] == hk && m->u_len[c] == len && b->prompt[cs] == b->prompt[s] &&
                    memcmp(b->tokens + b->offsets[cs], tk, (size_t)len * sizeof(int32_t)) == 0) {
                    u = c;
                    break;
                }
            }
            if (u < 0) {
                u = U++;
                slot[at] = u;
                hash[u] = hk;
                m->u_seq[u] = s;
                m->u_len[u] = len;
            }
            b->seg_prefix[k] = r->P + u;
        }
    }
    m->U = U;
    m->u_cnt = ro_zalloc(U, sizeof(int64_t));
    m->u_sum = ro_zalloc(U, sizeof(double));
    if (!m->u_cnt || !m->u_sum) st = oom(fn, "Monte Carlo sums");
done:
    segrl_free(probs);
    segrl_free(slot);
    segrl_free(hash);
    if (st) mc_state_free(m);
    return st;
}

static segrl_status advance_traj(segrl_rollout *r, const char *fn) {
    ro_round *rd = &r->rd;
    int64_t P = r->P, G = r->cfg.group_size, B = P * G, N = 0;
    for (int64_t p = 0; p < P; p++) {
        N += G * (r->p_off[p + 1] - r->p_off[p]);
        for (int64_t j = 0; j < G; j++) N += rd->s_len[rd->slot0[p] + j];
    }
    ro_batch nb;
    SG_TRY(ro_batch_alloc(&nb, B, N, fn));
    nb.G = P;
    int64_t t = 0, scored = 0, tokens = 0;
    const int32_t *stok = rd->s_tok.p;
    const float *slp = rd->s_lp.p;
    for (int64_t p = 0; p < P; p++) {
        int64_t pl = r->p_off[p + 1] - r->p_off[p];
        for (int64_t j = 0; j < G; j++) {
            int64_t b = p * G + j, s = rd->slot0[p] + j, len = rd->s_len[s];
            nb.offsets[b] = t;
            memcpy(nb.tokens + t, r->p_tok + r->p_off[p], (size_t)pl * sizeof(int32_t));
            t += pl; /* logprobs and mask already 0 */
            memcpy(nb.tokens + t, stok + rd->s_off[s], (size_t)len * sizeof(int32_t));
            memcpy(nb.logprobs + t, slp + rd->s_off[s], (size_t)len * sizeof(float));
            memset(nb.mask + t, 1, (size_t)len);
            t += len;
            tokens += len;
            nb.ctx[b] = pl;
            nb.prompt[b] = p;
            nb.question[b] = r->qid[p];
            nb.finished[b] = rd->s_fin[s];
        }
    }
    nb.offsets[B] = t;
    segrl_status st = SEGRL_OK;
    for (int64_t b = 0; b < B; b++) {
        st = score_one(r, fn, nb.prompt[b], nb.tokens + nb.offsets[b],
                       nb.offsets[b + 1] - nb.offsets[b], nb.ctx[b], &nb.rewards[b]);
        if (st) goto fail;
        scored++;
    }
    if (r->cfg.method == SEGRL_ROLLOUT_GROUP) {
        round_free(rd);
        ro_batch_free(&r->batch);
        r->batch = nb;
        r->phase = RO_DONE;
    } else {
        ro_mc_state m;
        st = chain_segments(r, &nb, &m, fn);
        if (st) goto fail;
        if (m.U == 0) { /* no boundary anywhere (empty responses): advantages are 0 */
            st = mc_finish(r, &nb, m.u_sum, m.u_cnt, fn);
            if (st) {
                mc_state_free(&m);
                goto fail;
            }
            mc_state_free(&m);
            round_free(rd);
            r->batch = nb;
            r->phase = RO_DONE;
        } else {
            int64_t *add = NULL;
            ro_round next;
            st = mc_first_add(r, m.U, &add, fn);
            if (!st) st = mc_plan(r, &nb, m.u_seq, m.u_len, m.U, add, r->st.rounds + 1, &next, fn);
            segrl_free(add);
            if (st) {
                mc_state_free(&m);
                goto fail;
            }
            round_free(rd);
            *rd = next;
            r->batch = nb;
            r->U = m.U;
            r->u_seq = m.u_seq;
            r->u_len = m.u_len;
            r->u_cnt = m.u_cnt;
            r->u_sum = m.u_sum;
            r->mc_total = (int64_t)r->cfg.mc_samples * m.U;
            r->mc_spent = 0;
            r->st.mc_boundaries = nb.S;
            r->st.mc_prefixes = m.U;
            r->phase = RO_MC;
        }
    }
    r->st.scored += scored;
    r->st.tokens += tokens;
    return SEGRL_OK;
fail:
    ro_batch_free(&nb);
    return st;
}

// ----------------------------------------------------------------------------
// Monte Carlo rounds

static segrl_status advance_mc(segrl_rollout *r, const char *fn) {
    ro_round *rd = &r->rd;
    ro_batch *b = &r->batch;
    int64_t U = r->U;
    double *sum = ro_zalloc(U, sizeof(double));
    int64_t *cnt = ro_zalloc(U, sizeof(int64_t)), *add = NULL;
    float *mean = NULL;
    int32_t *buf = NULL;
    segrl_status st = SEGRL_OK;
    if (!sum || !cnt) {
        st = oom(fn, "Monte Carlo sums");
        goto done;
    }
    memcpy(sum, r->u_sum, (size_t)U * sizeof(double));
    memcpy(cnt, r->u_cnt, (size_t)U * sizeof(int64_t));
    int64_t longest = 1;
    for (int64_t i = 0; i < rd->n; i++)
        for (int64_t s = rd->slot0[i]; s < rd->slot0[i + 1]; s++)
            if (rd->req[i].prefix_len + rd->s_len[s] > longest)
                longest = rd->req[i].prefix_len + rd->s_len[s];
    buf = ro_zalloc(longest, sizeof(int32_t));
    if (!buf) {
        st = oom(fn, "scoring buffer");
        goto done;
    }
    int64_t scored = 0, tokens = 0, samples = 0;
    const int32_t *stok = rd->s_tok.p;
    for (int64_t i = 0; i < rd->n; i++) {
        const segrl_gen_request *q = &rd->req[i];
        int64_t u = rd->key[i];
        memcpy(buf, q->prefix, (size_t)q->prefix_len * sizeof(int32_t));
        for (int64_t s = rd->slot0[i]; s < rd->slot0[i + 1]; s++) {
            memcpy(buf + q->prefix_len, stok + rd->s_off[s], (size_t)rd->s_len[s] * sizeof(int32_t));
            float v;
            st = score_one(r, fn, q->prompt, buf, q->prefix_len + rd->s_len[s], q->prompt_len, &v);
            if (st) goto done;
            sum[u] += v;
            cnt[u]++;
            scored++;
            tokens += rd->s_len[s];
            samples++;
        }
    }
    int64_t spent = r->mc_spent + samples;
    if (r->cfg.mc_adaptive && spent < r->mc_total) {
        int64_t batch = r->cfg.mc_batch > 0 ? r->cfg.mc_batch : U;
        if (batch > r->mc_total - spent) batch = r->mc_total - spent;
        mean = ro_zalloc(U, sizeof(float));
        add = ro_zalloc(U, sizeof(int64_t));
        if (!mean || !add) {
            st = oom(fn, "Monte Carlo plan");
            goto done;
        }
        for (int64_t u = 0; u < U; u++) mean[u] = (float)(sum[u] / (double)cnt[u]);
        st = ro_mc_allocate(mean, cnt, U, batch, r->cfg.mc_z, r->cfg.mc_rule, add, fn);
        if (st) goto done;
        ro_round next;
        st = mc_plan(r, b, r->u_seq, r->u_len, U, add, r->st.rounds + 1, &next, fn);
        if (st) goto done;
        round_free(rd);
        *rd = next;
    } else {
        st = mc_finish(r, b, sum, cnt, fn);
        if (st) goto done;
        round_free(rd);
        r->phase = RO_DONE;
    }
    /* commit */
    memcpy(r->u_sum, sum, (size_t)U * sizeof(double));
    memcpy(r->u_cnt, cnt, (size_t)U * sizeof(int64_t));
    r->mc_spent = spent;
    r->st.scored += scored;
    r->st.tokens += tokens;
    r->st.mc_rollouts += samples;
done:
    segrl_free(sum);
    segrl_free(cnt);
    segrl_free(add);
    segrl_free(mean);
    segrl_free(buf);
    return st;
}

// ----------------------------------------------------------------------------
// trees

#define T64(v) ((int64_t *)(v).p)
#define TU8(v) ((uint8_t *)(v).p)
#define TF(v) ((float *)(v).p)
#define TI32(v) ((int32_t *)(v).p)

static segrl_status tree_reserve(segrl_rollout *r, int64_t nodes, int64_t tokens, const char *fn) {
    ro_vec *v64[] = {&r->t_parent, &r->t_depth, &r->t_prompt, &r->t_s0, &r->t_s1, &r->t_glen};
    for (size_t i = 0; i < 6; i++) SG_TRY(ro_reserve(v64[i], nodes, sizeof(int64_t), fn));
    SG_TRY(ro_reserve(&r->t_fin, nodes, 1, fn));
    SG_TRY(ro_reserve(&r->t_leaf, nodes, 1, fn));
    SG_TRY(ro_reserve(&r->t_reward, nodes, sizeof(float), fn));
    SG_TRY(ro_reserve(&r->t_tok, tokens, sizeof(int32_t), fn));
    SG_TRY(ro_reserve(&r->t_lp, tokens, sizeof(float), fn));
    return SEGRL_OK;
}

/* Writes the root-to-node tokens of `node` into out (NULL: only counts); returns the count. */
static int64_t tree_path(const segrl_rollout *r, int64_t node, int32_t *out) {
    int64_t n = 0;
    for (int64_t x = node; x >= 0; x = T64(r->t_parent)[x]) n += T64(r->t_s1)[x] - T64(r->t_s0)[x];
    if (out) {
        int64_t at = n;
        for (int64_t x = node; x >= 0; x = T64(r->t_parent)[x]) {
            int64_t len = T64(r->t_s1)[x] - T64(r->t_s0)[x];
            at -= len;
            memcpy(out + at, TI32(r->t_tok) + T64(r->t_s0)[x], (size_t)len * sizeof(int32_t));
        }
    }
    return n;
}

/* The round expanding the open nodes among [lo, hi) (all of depth `level`). */
static segrl_status tree_plan(const segrl_rollout *r, int64_t lo, int64_t hi, int32_t level,
                              int64_t round, ro_round *out, const char *fn) {
    int64_t n = 0, ntok = 0;
    for (int64_t x = lo; x < hi; x++)
        if (!TU8(r->t_leaf)[x]) {
            n++;
            ntok += tree_path(r, x, NULL);
        }
    ro_round rd;
    SG_TRY(round_new(&rd, n, fn));
    rd.tok = ro_zalloc(ntok, sizeof(int32_t));
    if (!rd.tok) {
        round_free(&rd);
        return oom(fn, "request prefixes");
    }
    int last = level == r->cfg.tree_levels - 1;
    int64_t i = 0, at = 0;
    for (int64_t x = lo; x < hi; x++) {
        if (TU8(r->t_leaf)[x]) continue;
        segrl_gen_request *q = &rd.req[i];
        req_common(r, q, i);
        int64_t len = tree_path(r, x, rd.tok + at);
        int64_t p = T64(r->t_prompt)[x];
        q->prompt = p;
        q->prefix_id = x;
        q->parent_id = T64(r->t_parent)[x];
        q->prefix = rd.tok + at;
        q->prefix_len = len;
        q->prompt_len = r->p_off[p + 1] - r->p_off[p];
        q->n = r->cfg.branching[level];
        int64_t left = r->cfg.max_new_tokens - T64(r->t_glen)[x];
        if (!last && r->cfg.segment_len[level] < left) left = r->cfg.segment_len[level];
        q->max_new_tokens = (int32_t)left;
        rd.key[i] = x;
        at += len;
        i++;
    }
    segrl_status st = round_slots(r, &rd, round, fn);
    if (st) {
        round_free(&rd);
        return st;
    }
    *out = rd;
    return SEGRL_OK;
}

static segrl_status tree_init(segrl_rollout *r, const char *fn) {
    int64_t P = r->P;
    SG_TRY(tree_reserve(r, P, r->p_off[P], fn));
    for (int64_t p = 0; p < P; p++) {
        int64_t a = r->p_off[p], e = r->p_off[p + 1];
        T64(r->t_parent)[p] = -1;
        T64(r->t_depth)[p] = 0;
        T64(r->t_prompt)[p] = p;
        T64(r->t_s0)[p] = a;
        T64(r->t_s1)[p] = e;
        T64(r->t_glen)[p] = 0;
        TU8(r->t_fin)[p] = 0;
        TU8(r->t_leaf)[p] = 0;
        TF(r->t_reward)[p] = NAN;
    }
    memcpy(r->t_tok.p, r->p_tok, (size_t)r->p_off[P] * sizeof(int32_t));
    memset(r->t_lp.p, 0, (size_t)r->p_off[P] * sizeof(float));
    r->M = P;
    r->t_tok.n = r->p_off[P];
    r->lvl_lo = 0;
    r->lvl_hi = P;
    r->level = 0;
    return tree_plan(r, 0, P, 0, 0, &r->rd, fn);
}

/* Values, advantages and episodes of the finished forest -> the batch. */
static segrl_status tree_finish(segrl_rollout *r, const char *fn) {
    int64_t M = r->M, T = r->t_tok.n;
    segrl_status st = SEGRL_OK;
    float *val = ro_zalloc(M, sizeof(float)), *adv = ro_zalloc(M, sizeof(float));
    float *ladv = ro_zalloc(M, sizeof(float)), *eadv = NULL;
    uint8_t *nmask = ro_zalloc(M, 1), *emask = NULL;
    int64_t *eoff = NULL, *eidx = NULL, *enode = NULL;
    void *ws = NULL;
    ro_batch nb;
    memset(&nb, 0, sizeof nb);
    size_t wsb = 0;
    if (!val || !adv || !ladv || !nmask) {
        st = oom(fn, "tree values");
        goto done;
    }
    st = segrl_tree_workspace_size(segrl_cpu(), M, &wsb);
    if (st) goto done;
    ws = segrl_malloc(wsb ? wsb : 1);
    if (!ws) {
        st = oom(fn, "tree workspace");
        goto done;
    }
    segrl_exec ex;
    memset(&ex, 0, sizeof ex);
    ex.workspace = ws;
    ex.workspace_bytes = wsb;
    segrl_tree tr;
    tr.parent = v1(r->t_parent.p, SEGRL_DTYPE_I64, M);
    tr.span_start = v1(r->t_s0.p, SEGRL_DTYPE_I64, M);
    tr.span_end = v1(r->t_s1.p, SEGRL_DTYPE_I64, M);
    tr.num_tokens = T;
    tr.leaf_reward = v1(r->t_reward.p, SEGRL_DTYPE_F32, M);
    tr.depth = v1(r->t_depth.p, SEGRL_DTYPE_I64, M);
    st = segrl_tree_values(&tr, r->cfg.tree_value, &ex, v1(val, SEGRL_DTYPE_F32, M),
                           segrl_view_none());
    if (st) goto done;
    segrl_view vv = v1(val, SEGRL_DTYPE_F32, M), nm = v1(nmask, SEGRL_DTYPE_U8, M);
    st = segrl_tree_advantages(&tr, vv, &r->cfg.tree_adv, &ex, v1(adv, SEGRL_DTYPE_F32, M),
                               v1(ladv, SEGRL_DTYPE_F32, M), nm);
    if (st) goto done;
    int64_t E = 0, NT = 0;
    const segrl_tree_episode_opts *eo = &r->cfg.tree_episodes;
    st = segrl_tree_episodes_size(&tr, nm, eo, &ex, &E, &NT);
    if (st) goto done;
    eoff = ro_zalloc(E + 1, sizeof(int64_t));
    eidx = ro_zalloc(NT, sizeof(int64_t));
    enode = ro_zalloc(E, sizeof(int64_t));
    eadv = ro_zalloc(NT, sizeof(float));
    emask = ro_zalloc(NT, 1);
    if (!eoff || !eidx || !enode || !eadv || !emask) {
        st = oom(fn, "episodes");
        goto done;
    }
    st = segrl_tree_episodes(&tr, v1(adv, SEGRL_DTYPE_F32, M), v1(ladv, SEGRL_DTYPE_F32, M), nm,
                             eo, &ex, v1(eoff, SEGRL_DTYPE_I64, E + 1),
                             v1(eidx, SEGRL_DTYPE_I64, NT), v1(eadv, SEGRL_DTYPE_F32, NT),
                             v1(emask, SEGRL_DTYPE_U8, NT), v1(enode, SEGRL_DTYPE_I64, E));
    if (st) goto done;
    st = ro_batch_alloc(&nb, E, NT, fn);
    if (st) goto done;
    nb.G = r->P;
    int edge = eo->kind == SEGRL_TREE_EPISODE_EDGE;
    for (int64_t e = 0; e <= E; e++) nb.offsets[e] = eoff[e];
    for (int64_t t = 0; t < NT; t++) {
        nb.tokens[t] = TI32(r->t_tok)[eidx[t]];
        nb.logprobs[t] = TF(r->t_lp)[eidx[t]];
        nb.mask[t] = emask[t];
    }
    for (int64_t e = 0; e < E; e++) {
        int64_t x = enode[e], p = T64(r->t_prompt)[x];
        nb.prompt[e] = p;
        nb.question[e] = r->qid[p];
        nb.finished[e] = TU8(r->t_fin)[x];
        nb.rewards[e] = edge ? val[x] : TF(r->t_reward)[x];
        nb.ctx[e] = edge ? (eoff[e + 1] - eoff[e]) - (T64(r->t_s1)[x] - T64(r->t_s0)[x])
                         : r->p_off[p + 1] - r->p_off[p];
    }
    nb.adv = eadv;
    eadv = NULL;
    /* commit */
    ro_batch_free(&r->batch);
    r->batch = nb;
    memset(&nb, 0, sizeof nb);
    r->t_val = val;
    r->t_adv = adv;
    r->t_ladv = ladv;
    val = adv = ladv = NULL;
done:
    ro_batch_free(&nb);
    segrl_free(val);
    segrl_free(adv);
    segrl_free(ladv);
    segrl_free(nmask);
    segrl_free(eoff);
    segrl_free(eidx);
    segrl_free(enode);
    segrl_free(eadv);
    segrl_free(emask);
    segrl_free(ws);
    return st;
}

static segrl_status advance_tree(segrl_rollout *r, const char *fn) {
    ro_round *rd = &r->rd;
    int64_t C = rd->slot0[rd->n], NT = 0, M0 = r->M, T0 = r->t_tok.n;
    int32_t level = r->level, L = r->cfg.tree_levels;
    for (int64_t s = 0; s < C; s++) NT += rd->s_len[s];
    SG_TRY(tree_reserve(r, M0 + C, T0 + NT, fn));
    /* score the leaves first (nothing appended yet) */
    float *rew = ro_zalloc(C, sizeof(float));
    uint8_t *leaf = ro_zalloc(C, 1);
    int64_t longest = 1;
    for (int64_t i = 0; i < rd->n; i++)
        for (int64_t s = rd->slot0[i]; s < rd->slot0[i + 1]; s++)
            if (rd->req[i].prefix_len + rd->s_len[s] > longest)
                longest = rd->req[i].prefix_len + rd->s_len[s];
    int32_t *buf = ro_zalloc(longest, sizeof(int32_t));
    segrl_status st = SEGRL_OK;
    int64_t scored = 0;
    const int32_t *stok = rd->s_tok.p;
    const float *slp = rd->s_lp.p;
    if (!rew || !leaf || !buf) {
        st = oom(fn, "tree level");
        goto done;
    }
    for (int64_t i = 0; i < rd->n; i++) {
        const segrl_gen_request *q = &rd->req[i];
        int64_t x = rd->key[i];
        memcpy(buf, q->prefix, (size_t)q->prefix_len * sizeof(int32_t));
        for (int64_t s = rd->slot0[i]; s < rd->slot0[i + 1]; s++) {
            int64_t glen = T64(r->t_glen)[x] + rd->s_len[s];
            leaf[s] = rd->s_fin[s] || level == L - 1 || glen >= r->cfg.max_new_tokens;
            rew[s] = NAN;
            if (!leaf[s]) continue;
            memcpy(buf + q->prefix_len, stok + rd->s_off[s], (size_t)rd->s_len[s] * sizeof(int32_t));
            st = score_one(r, fn, q->prompt, buf, q->prefix_len + rd->s_len[s], q->prompt_len,
                           &rew[s]);
            if (st) goto done;
            scored++;
        }
    }
    /* append the children (capacity reserved above: cannot fail) */
    int64_t t = T0, any_open = 0;
    for (int64_t i = 0; i < rd->n; i++) {
        int64_t x = rd->key[i];
        for (int64_t s = rd->slot0[i]; s < rd->slot0[i + 1]; s++) {
            int64_t c = M0 + s, len = rd->s_len[s];
            T64(r->t_parent)[c] = x;
            T64(r->t_depth)[c] = level + 1;
            T64(r->t_prompt)[c] = T64(r->t_prompt)[x];
            T64(r->t_s0)[c] = t;
            T64(r->t_s1)[c] = t + len;
            T64(r->t_glen)[c] = T64(r->t_glen)[x] + len;
            TU8(r->t_fin)[c] = rd->s_fin[s];
            TU8(r->t_leaf)[c] = leaf[s];
            TF(r->t_reward)[c] = rew[s];
            memcpy(TI32(r->t_tok) + t, stok + rd->s_off[s], (size_t)len * sizeof(int32_t));
            memcpy(TF(r->t_lp) + t, slp + rd->s_off[s], (size_t)len * sizeof(float));
            t += len;
            any_open += !leaf[s];
        }
    }
    r->M = M0 + C;
    r->t_tok.n = t;
    if (any_open && level + 1 < L) {
        ro_round next;
        st = tree_plan(r, M0, M0 + C, level + 1, r->st.rounds + 1, &next, fn);
        if (st) goto rollback;
        round_free(rd);
        *rd = next;
        r->lvl_lo = M0;
        r->lvl_hi = M0 + C;
        r->level = level + 1;
    } else {
        st = tree_finish(r, fn);
        if (st) goto rollback;
        round_free(rd);
        r->phase = RO_DONE;
    }
    r->st.scored += scored;
    r->st.tokens += NT;
    goto done;
rollback:
    r->M = M0;
    r->t_tok.n = T0;
done:
    segrl_free(rew);
    segrl_free(leaf);
    segrl_free(buf);
    return st;
}

// ----------------------------------------------------------------------------
// public entry points

static void commit_round_stats(segrl_rollout *r) {
    if (r->phase == RO_DONE) return;
    r->st.requests += r->rd.n;
    r->st.samples += r->rd.slot0[r->rd.n];
}

segrl_status segrl_rollout_init(const segrl_rollout_config *config,
                                const segrl_rollout_prompts *prompts, segrl_score_fn score,
                                void *score_user, segrl_rollout **out) {
    static const char fn[] = "segrl_rollout_init";
    SG_TRY(check_config(fn, config));
    SG_TRY(check_prompts(fn, prompts));
    if (!score) return sg_fail(SEGRL_ERR_INVALID, "%s: score: is NULL", fn);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: is NULL", fn);
    int64_t P = prompts->num_prompts, NP = prompts->offsets[P];
    if (config->prompt_base > INT64_MAX - P)
        return sg_fail(SEGRL_ERR_INVALID, "%s: config->prompt_base: %lld + %lld prompts overflows "
                       "int64", fn, (long long)config->prompt_base, (long long)P);
    if (config->method != SEGRL_ROLLOUT_SPO_TREE && P > RO_MAX_SAMPLES / config->group_size)
        return sg_fail(SEGRL_ERR_INVALID, "%s: prompts->num_prompts: %lld prompts x group_size %d "
                       "is more than %lld samples", fn, (long long)P, config->group_size,
                       (long long)RO_MAX_SAMPLES);
    segrl_rollout *r = ro_zalloc(1, sizeof *r);
    if (!r) return oom(fn, "driver");
    r->cfg = *config;
    r->P = P;
    r->score = score;
    r->score_user = score_user;
    r->stop = ro_zalloc(config->n_stop, sizeof(int32_t));
    r->delims = ro_zalloc(config->n_delimiters > 0 ? config->n_delimiters : 1, sizeof(int32_t));
    r->p_off = ro_zalloc(P + 1, sizeof(int64_t));
    r->p_tok = ro_zalloc(NP, sizeof(int32_t));
    r->qid = ro_zalloc(P, sizeof(int64_t));
    segrl_status st = SEGRL_OK;
    if (!r->stop || !r->delims || !r->p_off || !r->p_tok || !r->qid) {
        st = oom(fn, "prompts");
        goto fail;
    }
    if (config->n_stop > 0)
        memcpy(r->stop, config->stop_ids, (size_t)config->n_stop * sizeof(int32_t));
    if (config->method == SEGRL_ROLLOUT_VINEPPO)
        memcpy(r->delims, config->delimiters, (size_t)config->n_delimiters * sizeof(int32_t));
    r->cfg.stop_ids = config->n_stop > 0 ? r->stop : NULL;
    r->cfg.delimiters = config->method == SEGRL_ROLLOUT_VINEPPO ? r->delims : NULL;
    memcpy(r->p_off, prompts->offsets, (size_t)(P + 1) * sizeof(int64_t));
    if (NP > 0) memcpy(r->p_tok, prompts->tokens, (size_t)NP * sizeof(int32_t));
    for (int64_t p = 0; p < P; p++) r->qid[p] = prompts->question_ids ? prompts->question_ids[p] : p;
    if (config->method == SEGRL_ROLLOUT_SPO_TREE) {
        r->phase = RO_TREE;
        st = tree_init(r, fn);
        if (st) goto fail;
    } else {
        r->phase = RO_TRAJ;
        st = round_new(&r->rd, P, fn);
        if (st) goto fail;
        for (int64_t p = 0; p < P; p++) {
            segrl_gen_request *q = &r->rd.req[p];
            req_common(r, q, p);
            q->prompt = p;
            q->prefix_id = p;
            q->prefix = r->p_tok + r->p_off[p];
            q->prefix_len = q->prompt_len = r->p_off[p + 1] - r->p_off[p];
            q->n = config->group_size;
            q->max_new_tokens = config->max_new_tokens;
            r->rd.key[p] = p;
        }
        st = round_slots(r, &r->rd, 0, fn);
        if (st) goto fail;
    }
    commit_round_stats(r);
    *out = r;
    return SEGRL_OK;
fail:
    segrl_rollout_free(r);
    return st;
}

void segrl_rollout_free(segrl_rollout *r) {
    if (!r) return;
    round_free(&r->rd);
    ro_batch_free(&r->batch);
    segrl_free(r->stop);
    segrl_free(r->delims);
    segrl_free(r->p_off);
    segrl_free(r->p_tok);
    segrl_free(r->qid);
    segrl_free(r->u_seq);
    segrl_free(r->u_len);
    segrl_free(r->u_cnt);
    segrl_free(r->u_sum);
    ro_vec *vs[] = {&r->t_parent, &r->t_depth, &r->t_prompt, &r->t_s0, &r->t_s1, &r->t_glen,
                    &r->t_fin, &r->t_leaf, &r->t_reward, &r->t_tok, &r->t_lp};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) ro_vec_free(vs[i]);
    segrl_free(r->t_val);
    segrl_free(r->t_adv);
    segrl_free(r->t_ladv);
    segrl_free(r);
}

int segrl_rollout_done(const segrl_rollout *r) { return r && r->phase == RO_DONE; }

segrl_status segrl_rollout_pending(const segrl_rollout *r, const segrl_gen_request **out_requests,
                                   int64_t *out_n) {
    static const char fn[] = "segrl_rollout_pending";
    if (!r) return sg_fail(SEGRL_ERR_INVALID, "%s: r: is NULL", fn);
    if (!out_requests) return sg_fail(SEGRL_ERR_INVALID, "%s: out_requests: is NULL", fn);
    if (!out_n) return sg_fail(SEGRL_ERR_INVALID, "%s: out_n: is NULL", fn);
    *out_requests = r->phase == RO_DONE ? NULL : r->rd.req;
    *out_n = r->phase == RO_DONE ? 0 : r->rd.n;
    return SEGRL_OK;
}

segrl_status segrl_rollout_put(segrl_rollout *r, int64_t request, int32_t sample,
                               const int32_t *tokens, const float *logprobs, int64_t len,
                               int32_t finished) {
    static const char fn[] = "segrl_rollout_put";
    if (!r) return sg_fail(SEGRL_ERR_INVALID, "%s: r: is NULL", fn);
    if (r->phase == RO_DONE)
        return sg_fail(SEGRL_ERR_INVALID, "%s: r: no round is pending (the driver is done)", fn);
    ro_round *rd = &r->rd;
    if (request < 0 || request >= rd->n)
        return sg_fail(SEGRL_ERR_INVALID, "%s: request: %lld is not in [0, %lld)", fn,
                       (long long)request, (long long)rd->n);
    const segrl_gen_request *q = &rd->req[request];
    if (sample < 0 || sample >= q->n)
        return sg_fail(SEGRL_ERR_INVALID, "%s: sample: %d is not in [0, %d) for request %lld", fn,
                       sample, q->n, (long long)request);
    int64_t s = rd->slot0[request] + sample;
    if (rd->s_given[s])
        return sg_fail(SEGRL_ERR_INVALID, "%s: sample: %d of request %lld was already put", fn,
                       sample, (long long)request);
    if (len < 0 || len > q->max_new_tokens)
        return sg_fail(SEGRL_ERR_INVALID, "%s: len: %lld is not in [0, max_new_tokens = %d]", fn,
                       (long long)len, q->max_new_tokens);
    if (len > 0 && !tokens) return sg_fail(SEGRL_ERR_INVALID, "%s: tokens: is NULL", fn);
    if (len > 0 && !logprobs) return sg_fail(SEGRL_ERR_INVALID, "%s: logprobs: is NULL", fn);
    if (finished != 0 && finished != 1)
        return sg_fail(SEGRL_ERR_INVALID, "%s: finished: must be 0 or 1, got %d", fn, finished);
    for (int64_t i = 0; i < len; i++) {
        if (tokens[i] < 0)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: tokens: element %lld is %d (token ids are >= 0)", fn,
                           (long long)i, tokens[i]);
        if (!isfinite(logprobs[i]))
            return sg_fail(SEGRL_ERR_INVALID, "%s: logprobs: element %lld is %g (not finite)", fn,
                           (long long)i, (double)logprobs[i]);
    }
    SG_TRY(ro_reserve(&rd->s_tok, rd->s_tok.n + len, sizeof(int32_t), fn));
    SG_TRY(ro_reserve(&rd->s_lp, rd->s_lp.n + len, sizeof(float), fn));
    int64_t at = rd->s_tok.n;
    if (len > 0) {
        memcpy((int32_t *)rd->s_tok.p + at, tokens, (size_t)len * sizeof(int32_t));
        memcpy((float *)rd->s_lp.p + at, logprobs, (size_t)len * sizeof(float));
    }
    rd->s_tok.n += len;
    rd->s_lp.n += len;
    rd->s_off[s] = at;
    rd->s_len[s] = len;
    rd->s_fin[s] = (uint8_t)finished;
    rd->s_given[s] = 1;
    rd->n_given++;
    return SEGRL_OK;
}

segrl_status segrl_rollout_advance(segrl_rollout *r) {
    static const char fn[] = "segrl_rollout_advance";
    if (!r) return sg_fail(SEGRL_ERR_INVALID, "%s: r: is NULL", fn);
    if (r->phase == RO_DONE)
        return sg_fail(SEGRL_ERR_INVALID, "%s: r: no round is pending (the driver is done)", fn);
    ro_round *rd = &r->rd;
    if (rd->n_given < rd->slot0[rd->n])
        for (int64_t i = 0; i < rd->n; i++)
            for (int64_t s = rd->slot0[i]; s < rd->slot0[i + 1]; s++)
                if (!rd->s_given[s])
                    return sg_fail(SEGRL_ERR_INVALID,
                                   "%s: r: sample %lld of request %lld was not put (%lld of %lld "
                                   "samples in)", fn, (long long)(s - rd->slot0[i]), (long long)i,
                                   (long long)rd->n_given, (long long)rd->slot0[rd->n]);
    segrl_status st;
    switch (r->phase) {
    case RO_TRAJ: st = advance_traj(r, fn); break;
    case RO_MC: st = advance_mc(r, fn); break;
    default: st = advance_tree(r, fn); break;
    }
    if (st) return st;
    r->st.rounds++;
    commit_round_stats(r);
    return SEGRL_OK;
}

segrl_status segrl_rollout_run(segrl_rollout *r, segrl_generate_fn generate, void *user) {
    static const char fn[] = "segrl_rollout_run";
    if (!r) return sg_fail(SEGRL_ERR_INVALID, "%s: r: is NULL", fn);
    if (!generate) return sg_fail(SEGRL_ERR_INVALID, "%s: generate: is NULL", fn);
    while (r->phase != RO_DONE) {
        segrl_clear_error();
        segrl_status st = generate(user, r, r->rd.req, r->rd.n);
        if (st != SEGRL_OK) {
            if (segrl_last_error()[0] == '\0')
                return sg_fail(st, "%s: generate: callback returned %s", fn, segrl_status_str(st));
            return st;
        }
        SG_TRY(segrl_rollout_advance(r));
    }
    return SEGRL_OK;
}

segrl_status segrl_rollout_batch_get(const segrl_rollout *r, segrl_rollout_batch *out) {
    static const char fn[] = "segrl_rollout_batch_get";
    if (!r) return sg_fail(SEGRL_ERR_INVALID, "%s: r: is NULL", fn);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: is NULL", fn);
    if (r->phase != RO_DONE)
        return sg_fail(SEGRL_ERR_INVALID, "%s: r: not done (rounds are still pending)", fn);
    ro_batch_view(&r->batch, out);
    return SEGRL_OK;
}

segrl_status segrl_rollout_tree_get(const segrl_rollout *r, segrl_rollout_tree *out) {
    static const char fn[] = "segrl_rollout_tree_get";
    if (!r) return sg_fail(SEGRL_ERR_INVALID, "%s: r: is NULL", fn);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: is NULL", fn);
    if (r->cfg.method != SEGRL_ROLLOUT_SPO_TREE)
        return sg_fail(SEGRL_ERR_INVALID, "%s: r: method %d is not SEGRL_ROLLOUT_SPO_TREE", fn,
                       r->cfg.method);
    if (r->phase != RO_DONE)
        return sg_fail(SEGRL_ERR_INVALID, "%s: r: not done (rounds are still pending)", fn);
    memset(out, 0, sizeof *out);
    out->num_nodes = r->M;
    out->num_tokens = r->t_tok.n;
    out->parent = T64(r->t_parent);
    out->depth = T64(r->t_depth);
    out->prompt = T64(r->t_prompt);
    out->span_start = T64(r->t_s0);
    out->span_end = T64(r->t_s1);
    out->tokens = TI32(r->t_tok);
    out->logprobs = TF(r->t_lp);
    out->finished = TU8(r->t_fin);
    out->is_leaf = TU8(r->t_leaf);
    out->leaf_reward = TF(r->t_reward);
    out->values = r->t_val;
    out->advantages = r->t_adv;
    out->leaf_advantages = r->t_ladv;
    return SEGRL_OK;
}

segrl_status segrl_rollout_stats_get(const segrl_rollout *r, segrl_rollout_stats *out) {
    static const char fn[] = "segrl_rollout_stats_get";
    if (!r) return sg_fail(SEGRL_ERR_INVALID, "%s: r: is NULL", fn);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: is NULL", fn);
    *out = r->st;
    return SEGRL_OK;
}
