/* test-rollout.c — the rollout drivers against a fake deterministic generator.
 *
 * The fake generator's continuation of a prefix is a pure function of (prefix tokens, sample
 * index j, and — when use_seed — the request seed), and the reward is a known function of the
 * response tokens. With use_seed = 0 the whole rollout is a function of the prompts and the
 * config, so the test rebuilds it independently (its own cutpoint / delimiter rules, its own
 * Monte Carlo means, its own tree growth and recursive values) and compares every number.
 *
 *   1. SPO-chain, VinePPO, SPO-tree (EDGE and PATH, 3-2-2 and 6-6-6) vs the brute force
 *   2. callback form == request/response form (samples handed back in reverse order), all methods
 *   3. prefix dedup counts; early-finishing tree children are leaves
 *   4. replay buffer: age limit and per-question cap
 *   5. adaptive Monte Carlo budget vs fixed K on a coin task with known values (MSE printed)
 *   6. bad input, callback failures and allocation failures: clear errors, nothing changed
 *   7. data-parallel shards: with seed_scope PROMPT and prompt_base, drivers on [0,3) [3,5) [5,7)
 *      issue each prompt's requests and give its rows exactly as one driver on all 7 does;
 *      position seeds (the default, checked against the seeds of before) do not */
#include "segrl/segrl.h"
#include "harness.h"

#define EOS 2
#define DELIM 3
#define MAXT 1024

// ----------------------------------------------------------------------------
// the fake generator and reward

typedef struct fake {
    int use_seed;     /* mix the request seed into each continuation */
    int vocab;        /* tokens 3 .. 3 + vocab - 1 (3 is the step delimiter) */
    int eos_permille; /* chance per token (after the first) of EOS */
    int shared;       /* the first `shared` tokens of a continuation do not depend on j / seed */
    int64_t calls;
} fake;

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t hash_tokens(const int32_t *t, int64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int64_t i = 0; i < n; i++) h = (h ^ (uint32_t)t[i]) * 0x100000001b3ull;
    return mix(h ^ (uint64_t)n);
}

static int64_t gen_one(const fake *f, const int32_t *prefix, int64_t plen, int64_t j,
                       uint64_t seed, int32_t max_new, int32_t *tok, float *lp, int32_t *fin) {
    uint64_t hp = hash_tokens(prefix, plen);
    uint64_t hj = mix((uint64_t)j + 1 + (f->use_seed ? mix(seed) : 0));
    *fin = 0;
    for (int64_t i = 0; i < max_new; i++) {
        uint64_t h = mix(hp ^ mix((uint64_t)i + 77) ^ (i < f->shared ? 0 : hj));
        if (i > 0 && (int)(h % 1000) < f->eos_permille) {
            tok[i] = EOS;
            lp[i] = -0.05f;
            *fin = 1;
            return i + 1;
        }
        tok[i] = 3 + (int32_t)((h >> 10) % (uint64_t)f->vocab);
        lp[i] = -(float)((h >> 24) % 300) / 100.0f;
    }
    return max_new;
}

static segrl_status gen_cb(void *user, segrl_rollout *r, const segrl_gen_request *q, int64_t n) {
    fake *f = user;
    int32_t tok[MAXT];
    float lp[MAXT];
    f->calls++;
    for (int64_t i = 0; i < n; i++)
        for (int32_t j = 0; j < q[i].n; j++) {
            int32_t fin;
            int64_t len = gen_one(f, q[i].prefix, q[i].prefix_len, j, q[i].seed,
                                  q[i].max_new_tokens, tok, lp, &fin);
            segrl_status st = segrl_rollout_put(r, q[i].index, j, tok, lp, len, fin);
            if (st) return st;
        }
    return SEGRL_OK;
}

/* Request/response form: take the requests, answer them in reverse order, advance. */
static segrl_status drive_rr(segrl_rollout *r, fake *f) {
    int32_t tok[MAXT];
    float lp[MAXT];
    while (!segrl_rollout_done(r)) {
        const segrl_gen_request *q;
        int64_t n;
        segrl_status st = segrl_rollout_pending(r, &q, &n);
        if (st) return st;
        for (int64_t i = n - 1; i >= 0; i--)
            for (int32_t j = q[i].n - 1; j >= 0; j--) {
                int32_t fin;
                int64_t len = gen_one(f, q[i].prefix, q[i].prefix_len, j, q[i].seed,
                                      q[i].max_new_tokens, tok, lp, &fin);
                st = segrl_rollout_put(r, i, j, tok, lp, len, fin);
                if (st) return st;
            }
        st = segrl_rollout_advance(r);
        if (st) return st;
    }
    return SEGRL_OK;
}

static float ref_reward(int64_t prompt, const int32_t *resp, int64_t n) {
    int64_t s = 3 * prompt;
    for (int64_t i = 0; i < n; i++) s += resp[i];
    return (float)(s % 7) / 6.0f;
}

typedef struct scorer {
    int fail_next, nan_next;
    int64_t calls;
} scorer;

static segrl_status score_cb(void *user, int64_t prompt, const int32_t *tok, int64_t n,
                             int64_t plen, float *out) {
    scorer *s = user;
    s->calls++;
    if (s->fail_next) {
        s->fail_next = 0;
        return segrl_set_error(SEGRL_ERR_INVALID, "test_score: tokens: refused on purpose");
    }
    if (s->nan_next) {
        s->nan_next = 0;
        *out = NAN;
        return SEGRL_OK;
    }
    *out = ref_reward(prompt, tok + plen, n - plen);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// prompts

static const int64_t P_OFF[4] = {0, 2, 5, 6};
static const int32_t P_TOK[6] = {40, 41, 50, 51, 52, 60};

static segrl_rollout_prompts prompts3(void) {
    segrl_rollout_prompts p = {3, P_OFF, P_TOK, NULL};
    return p;
}

static segrl_rollout *make(const segrl_rollout_config *c, scorer *s) {
    segrl_rollout_prompts p = prompts3();
    segrl_rollout *r = NULL;
    segrl_status st = segrl_rollout_init(c, &p, score_cb, s, &r);
    CHECK(st == SEGRL_OK && r, "init: %s", segrl_last_error());
    return r;
}

// ----------------------------------------------------------------------------
// brute-force references

/* Segment starts (positions in the response) by SPO's cutpoint rule. */
static int64_t ref_cutpoints(const float *lp, int64_t n, float tau, int k, int64_t *starts) {
    int64_t S = 0, low = 0;
    for (int64_t t = 0; t < n; t++) {
        int is_low = expf(lp[t]) < tau;
        if (is_low) low++;
        if (t == 0) starts[S++] = 0;
        else if (is_low && low % k == 0) starts[S++] = t;
    }
    return S;
}

/* Segment starts at step delimiters: the token after a delimiter starts a step. */
static int64_t ref_steps(const int32_t *tok, int64_t n, int64_t *starts) {
    int64_t S = 0;
    for (int64_t t = 0; t < n; t++)
        if (t == 0 || tok[t - 1] == DELIM) starts[S++] = t;
    return S;
}

/* Monte Carlo value of prompt p + resp[0 .. s): mean reward of K continuations j = 0..K-1. */
static double ref_value(const fake *f, int64_t p, const int32_t *resp, int64_t s, int K,
                        int32_t max_new) {
    int32_t pre[MAXT], tok[MAXT];
    float lp[MAXT];
    int64_t pl = P_OFF[p + 1] - P_OFF[p];
    memcpy(pre, P_TOK + P_OFF[p], (size_t)pl * sizeof(int32_t));
    memcpy(pre + pl, resp, (size_t)s * sizeof(int32_t));
    double sum = 0;
    for (int j = 0; j < K; j++) {
        int32_t fin;
        int64_t len = gen_one(f, pre, pl + s, j, 0, (int32_t)(max_new - s), tok, lp, &fin);
        int32_t full[MAXT];
        memcpy(full, resp, (size_t)s * sizeof(int32_t));
        memcpy(full + s, tok, (size_t)len * sizeof(int32_t));
        sum += ref_reward(p, full, s + len);
    }
    return sum / K;
}

/* SPO-chain (vine = 0) or VinePPO (vine = 1) against the brute force. */
static void check_mc_method(int vine) {
    const char *name = vine ? "vineppo" : "spo-chain";
    fake f = {0, 6, 40, 3, 0};
    scorer sc = {0, 0, 0};
    segrl_rollout_config c =
        segrl_rollout_config_default(vine ? SEGRL_ROLLOUT_VINEPPO : SEGRL_ROLLOUT_SPO_CHAIN);
    int32_t delim = DELIM;
    c.group_size = 4;
    c.max_new_tokens = 24;
    c.mc_samples = 3;
    c.cutpoints.tau = 0.5f;
    c.cutpoints.k = 3;
    c.prob_mask_tau = 0.6f;
    c.delimiters = &delim;
    c.n_delimiters = 1;
    c.gamma = 1.0f;
    segrl_rollout *r = make(&c, &sc);
    if (!r) return;
    segrl_status st = segrl_rollout_run(r, gen_cb, &f);
    CHECK(st == SEGRL_OK, "%s run: %s", name, segrl_last_error());
    segrl_rollout_batch b;
    st = segrl_rollout_batch_get(r, &b);
    CHECK(st == SEGRL_OK, "%s batch: %s", name, segrl_last_error());
    if (st) {
        segrl_rollout_free(r);
        return;
    }
    CHECK(b.num_seqs == 12 && b.num_groups == 3, "%s: %lld sequences", name, (long long)b.num_seqs);
    /* distinct prefixes, by brute force over (prompt, tokens) */
    static int32_t seen[512][MAXT];
    static int64_t seen_len[512], seen_p[512];
    int64_t nseen = 0, nbound = 0, bad_tok = 0, bad_seg = 0, bad_mask = 0;
    int64_t nadv = 0;
    double *want = h_alloc((size_t)b.num_tokens * sizeof(double));
    double *want_val = h_alloc((size_t)(b.num_segments + 1) * sizeof(double));
    for (int64_t q = 0; q < b.num_seqs; q++) {
        int64_t p = q / 4, j = q % 4, pl = P_OFF[p + 1] - P_OFF[p];
        int32_t tok[MAXT], fin;
        float lp[MAXT];
        int64_t n = gen_one(&f, P_TOK + P_OFF[p], pl, j, 0, c.max_new_tokens, tok, lp, &fin);
        const int64_t o = b.offsets[q];
        if (b.offsets[q + 1] - o != pl + n || b.context_len[q] != pl || b.prompt[q] != p ||
            b.finished[q] != fin) {
            bad_tok++;
            continue;
        }
        for (int64_t t = 0; t < n; t++)
            if (b.tokens[o + pl + t] != tok[t] || b.logprobs[o + pl + t] != lp[t] ||
                b.mask[o + pl + t] != 1)
                bad_tok++;
        float R = ref_reward(p, tok, n);
        CHECK(b.rewards[q] == R, "%s: reward of sequence %lld: %g vs %g", name, (long long)q,
              b.rewards[q], R);
        int64_t starts[MAXT];
        int64_t S = vine ? ref_steps(tok, n, starts)
                         : ref_cutpoints(lp, n, c.cutpoints.tau, c.cutpoints.k, starts);
        if (b.seg_offsets[q + 1] - b.seg_offsets[q] != S) {
            bad_seg++;
            continue;
        }
        double V[MAXT];
        for (int64_t k = 0; k < S; k++) {
            int64_t g = b.seg_offsets[q] + k;
            int64_t e = k + 1 < S ? starts[k + 1] : n;
            if (b.seg_start[g] != pl + starts[k] || b.seg_end[g] != pl + e) bad_seg++;
            V[k] = ref_value(&f, p, tok, starts[k], c.mc_samples, c.max_new_tokens);
            want_val[g] = (double)(float)V[k];
            nbound++;
            int64_t u = 0;
            while (u < nseen && !(seen_p[u] == p && seen_len[u] == starts[k] &&
                                  memcmp(seen[u], tok, (size_t)starts[k] * sizeof(int32_t)) == 0))
                u++;
            if (u == nseen) {
                memcpy(seen[u], tok, (size_t)starts[k] * sizeof(int32_t));
                seen_len[u] = starts[k];
                seen_p[u] = p;
                nseen++;
            }
            CHECK(b.seg_mc_count[g] == c.mc_samples, "%s: mc count %lld", name,
                  (long long)b.seg_mc_count[g]);
        }
        /* expected token advantages */
        for (int64_t t = 0; t < pl; t++) want[o + t] = 0;
        for (int64_t k = 0; k < S; k++) {
            int64_t e = k + 1 < S ? starts[k + 1] : n;
            double a;
            if (vine) /* r_k + gamma V_{k+1} - V_k, V_{K+1} = 0, r_K = R (f64 in segrl_vineppo) */
                a = (k + 1 < S ? (double)(float)V[k + 1] : (double)R) - (double)(float)V[k];
            else /* f32 subtraction in segrl_spo_chain */
                a = (double)((k + 1 < S ? (float)V[k + 1] : R) - (float)V[k]);
            for (int64_t t = starts[k]; t < e; t++) want[o + pl + t] = a;
        }
        if (n == 0) continue;
        if (!vine)
            for (int64_t t = 0; t < n; t++)
                if (b.prob_mask[o + pl + t] != (expf(lp[t]) < c.prob_mask_tau)) bad_mask++;
        nadv += n;
    }
    CHECK(bad_tok == 0, "%s: %lld trajectory tokens differ from the generator", name,
          (long long)bad_tok);
    CHECK(bad_seg == 0, "%s: %lld segments differ from the reference partition", name,
          (long long)bad_seg);
    CHECK(bad_mask == 0, "%s: %lld probability-mask entries differ", name, (long long)bad_mask);
    h_close_f(vine ? "vineppo values" : "chain values", b.seg_values, want_val, b.num_segments,
              0, 0);
    h_close_f(vine ? "vineppo advantages" : "chain advantages", b.advantages, want, b.num_tokens,
              1e-6, 1e-6);
    segrl_rollout_stats s;
    segrl_rollout_stats_get(r, &s);
    CHECK(s.mc_boundaries == nbound && s.mc_prefixes == nseen,
          "%s: boundaries %lld (want %lld), distinct prefixes %lld (want %lld)", name,
          (long long)s.mc_boundaries, (long long)nbound, (long long)s.mc_prefixes, (long long)nseen);
    CHECK(s.mc_prefixes < s.mc_boundaries, "%s: dedup removed nothing (%lld of %lld)", name,
          (long long)s.mc_prefixes, (long long)s.mc_boundaries);
    CHECK(s.mc_rollouts == (int64_t)c.mc_samples * nseen, "%s: %lld Monte Carlo rollouts", name,
          (long long)s.mc_rollouts);
    CHECK(s.scored == b.num_seqs + s.mc_rollouts && s.scored == sc.calls,
          "%s: scored %lld, callback %lld", name, (long long)s.scored, (long long)sc.calls);
    CHECK(s.rounds == 2 && f.calls == 2, "%s: rounds %lld, generator calls %lld", name,
          (long long)s.rounds, (long long)f.calls);
    printf("%s: %lld trajectories, %lld boundaries, %lld distinct prefixes, %lld MC rollouts\n",
           name, (long long)b.num_seqs, (long long)s.mc_boundaries, (long long)s.mc_prefixes,
           (long long)s.mc_rollouts);
    free(want);
    free(want_val);
    segrl_rollout_free(r);
}

/* SPO-chain by hand: one prompt, G = 2, a scripted generator. */
typedef struct script {
    int64_t calls;
} script;

/* Trajectory j (from the prompt): tokens 10+j, 11, 12, 13 with log-probs making tokens 1 and 3
 * low-probability; continuations from a longer prefix: the single token (prefix length % 2 ?
 * 20 : 21). Rewards: 1 when the last token is 13 or 20, else 0. */
static segrl_status script_cb(void *user, segrl_rollout *r, const segrl_gen_request *q,
                              int64_t n) {
    script *s = user;
    s->calls++;
    for (int64_t i = 0; i < n; i++)
        for (int32_t j = 0; j < q[i].n; j++) {
            int32_t tok[4];
            float lp[4] = {-0.01f, -2.0f, -0.01f, -2.0f};
            int64_t len;
            if (q[i].prefix_len == q[i].prompt_len) { /* from the prompt */
                if (q[i].n == 2) {                    /* round 0: the two trajectories */
                    tok[0] = 10 + j, tok[1] = 11, tok[2] = 12, tok[3] = 13;
                    len = 4;
                } else { /* MC from the prompt: j even -> good, odd -> bad */
                    tok[0] = j % 2 ? 21 : 20;
                    len = 1;
                }
            } else {
                tok[0] = q[i].prefix_len % 2 ? 20 : 21;
                len = 1;
            }
            segrl_status st = segrl_rollout_put(r, q[i].index, j, tok, lp, len, 1);
            if (st) return st;
        }
    return SEGRL_OK;
}

static segrl_status script_score(void *user, int64_t prompt, const int32_t *tok, int64_t n,
                                 int64_t plen, float *out) {
    (void)user, (void)prompt, (void)plen;
    *out = (n > 0 && (tok[n - 1] == 13 || tok[n - 1] == 20)) ? 1.0f : 0.0f;
    return SEGRL_OK;
}

static void check_chain_by_hand(void) {
    /* prompt [7] (length 1). Trajectories: [10 11 12 13] and [11 11 12 13], both reward 1.
     * tau 0.5, k 1: low-probability tokens at positions 1 and 3 -> segments [0,1) [1,3) [3,4)
     * (response positions), prefixes: prompt (shared by both: 1 distinct), prompt+[10] (len 2),
     * prompt+[10 11 12] (len 4), prompt+[11], prompt+[11 11 12]: 5 distinct of 6 boundaries.
     * MC with K = 4: prompt: j = 0..3 -> 20 21 20 21 -> V = 0.5; a prefix of even length gets
     * token 21 (reward 0), odd length 20 (reward 1): prompt+[10] has length 2 -> V = 0;
     * prompt+[10 11 12] length 4 -> 0. Advantages of trajectory 0: segment 1 (token 10):
     * V2 - V1 = 0 - 0.5 = -0.5; segment 2 (11 12): V3 - V2 = 0; segment 3 (13): R - V3 = 1. */
    int64_t off[2] = {0, 1};
    int32_t pt[1] = {7};
    segrl_rollout_prompts p = {1, off, pt, NULL};
    segrl_rollout_config c = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_CHAIN);
    c.group_size = 2;
    c.max_new_tokens = 8;
    c.mc_samples = 4;
    c.cutpoints.tau = 0.5f;
    c.cutpoints.k = 1;
    c.prob_mask_tau = 0.5f;
    segrl_rollout *r = NULL;
    script s = {0};
    segrl_status st = segrl_rollout_init(&c, &p, script_score, NULL, &r);
    CHECK(st == SEGRL_OK, "hand init: %s", segrl_last_error());
    if (st) return;
    st = segrl_rollout_run(r, script_cb, &s);
    CHECK(st == SEGRL_OK, "hand run: %s", segrl_last_error());
    segrl_rollout_batch b;
    segrl_rollout_batch_get(r, &b);
    const double want_adv[10] = {0, -0.5, 0, 0, 1, 0, -0.5, 0, 0, 1};
    const double want_val[6] = {0.5, 0, 0, 0.5, 0, 0};
    CHECK(b.num_tokens == 10 && b.num_segments == 6, "hand: %lld tokens %lld segments",
          (long long)b.num_tokens, (long long)b.num_segments);
    if (b.num_tokens == 10 && b.num_segments == 6) {
        h_close_f("hand chain advantages", b.advantages, want_adv, 10, 0, 0);
        h_close_f("hand chain values", b.seg_values, want_val, 6, 0, 0);
        const uint8_t want_pm[10] = {0, 0, 1, 0, 1, 0, 0, 1, 0, 1};
        CHECK(memcmp(b.prob_mask, want_pm, 10) == 0, "hand: probability mask");
    }
    segrl_rollout_stats t;
    segrl_rollout_stats_get(r, &t);
    CHECK(t.mc_boundaries == 6 && t.mc_prefixes == 5 && t.mc_rollouts == 20,
          "hand: boundaries %lld prefixes %lld rollouts %lld", (long long)t.mc_boundaries,
          (long long)t.mc_prefixes, (long long)t.mc_rollouts);
    segrl_rollout_free(r);
}

// ----------------------------------------------------------------------------
// trees

typedef struct rnode {
    int64_t parent, depth, prompt, len, glen;
    int32_t tok[64];
    float lp[64];
    int fin, leaf;
    float reward;
} rnode;

static int64_t rpath(const rnode *nd, int64_t x, int32_t *out) {
    int64_t n = 0;
    for (int64_t y = x; y >= 0; y = nd[y].parent) n += nd[y].len;
    int64_t at = n;
    for (int64_t y = x; y >= 0; y = nd[y].parent) {
        at -= nd[y].len;
        memcpy(out + at, nd[y].tok, (size_t)nd[y].len * sizeof(int32_t));
    }
    return n;
}

/* child-mean value, recursively (the SPO-tree code's rule) */
static double rvalue(const rnode *nd, int64_t M, int64_t x) {
    if (nd[x].leaf) return nd[x].reward;
    double s = 0;
    int64_t k = 0;
    for (int64_t c = x + 1; c < M; c++)
        if (nd[c].parent == x) {
            s += rvalue(nd, M, c);
            k++;
        }
    return s / (double)k;
}

/* Grows the reference forest level by level (same order as the driver: level order, children
 * in parent order, samples in order). Returns M. */
static int64_t ref_tree(const fake *f, const segrl_rollout_config *c, rnode *nd) {
    int64_t M = 0;
    for (int64_t p = 0; p < 3; p++) {
        rnode *x = &nd[M++];
        memset(x, 0, sizeof *x);
        x->parent = -1;
        x->prompt = p;
        x->len = P_OFF[p + 1] - P_OFF[p];
        memcpy(x->tok, P_TOK + P_OFF[p], (size_t)x->len * sizeof(int32_t));
        x->reward = NAN;
    }
    int64_t lo = 0, hi = M;
    for (int l = 0; l < c->tree_levels; l++) {
        int last = l == c->tree_levels - 1;
        for (int64_t x = lo; x < hi; x++) {
            if (nd[x].leaf) continue;
            int32_t pre[MAXT];
            int64_t pl = rpath(nd, x, pre);
            for (int j = 0; j < c->branching[l]; j++) {
                int32_t left = c->max_new_tokens - (int32_t)nd[x].glen;
                if (!last && c->segment_len[l] < left) left = c->segment_len[l];
                rnode *y = &nd[M];
                memset(y, 0, sizeof *y);
                int32_t fin;
                y->len = gen_one(f, pre, pl, j, 0, left, y->tok, y->lp, &fin);
                y->fin = fin;
                y->parent = x;
                y->depth = l + 1;
                y->prompt = nd[x].prompt;
                y->glen = nd[x].glen + y->len;
                y->leaf = fin || last || y->glen >= c->max_new_tokens;
                y->reward = NAN;
                if (y->leaf) {
                    int32_t full[MAXT];
                    int64_t n = rpath(nd, x, full);
                    memcpy(full + n, y->tok, (size_t)y->len * sizeof(int32_t));
                    int64_t ppl = P_OFF[y->prompt + 1] - P_OFF[y->prompt];
                    y->reward = ref_reward(y->prompt, full + ppl, n + y->len - ppl);
                }
                M++;
            }
        }
        lo = hi;
        hi = M;
    }
    return M;
}

static void check_tree(int b0, int b1, int b2, int s0, int s1, int path) {
    char name[64];
    snprintf(name, sizeof name, "tree %d-%d-%d %s", b0, b1, b2, path ? "path" : "edge");
    fake f = {0, 6, 60, 0, 0};
    scorer sc = {0, 0, 0};
    segrl_rollout_config c = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_TREE);
    c.tree_levels = 3;
    c.branching[0] = b0, c.branching[1] = b1, c.branching[2] = b2;
    c.segment_len[0] = s0, c.segment_len[1] = s1;
    c.max_new_tokens = 14;
    if (path) c.tree_episodes.kind = SEGRL_TREE_EPISODE_PATH;
    segrl_rollout *r = make(&c, &sc);
    if (!r) return;
    segrl_status st = segrl_rollout_run(r, gen_cb, &f);
    CHECK(st == SEGRL_OK, "%s run: %s", name, segrl_last_error());
    segrl_rollout_tree t;
    segrl_rollout_batch b;
    st = segrl_rollout_tree_get(r, &t);
    if (!st) st = segrl_rollout_batch_get(r, &b);
    CHECK(st == SEGRL_OK, "%s get: %s", name, segrl_last_error());
    if (st) {
        segrl_rollout_free(r);
        return;
    }
    static rnode nd[4096];
    int64_t M = ref_tree(&f, &c, nd);
    CHECK(t.num_nodes == M, "%s: %lld nodes, want %lld", name, (long long)t.num_nodes, (long long)M);
    if (t.num_nodes != M) {
        segrl_rollout_free(r);
        return;
    }
    int64_t bad = 0, early = 0, leaves = 0;
    double *wv = h_alloc((size_t)M * sizeof(double)), *wa = h_alloc((size_t)M * sizeof(double));
    for (int64_t x = 0; x < M; x++) {
        int64_t len = t.span_end[x] - t.span_start[x];
        if (t.parent[x] != nd[x].parent || t.depth[x] != nd[x].depth || len != nd[x].len ||
            t.finished[x] != nd[x].fin || t.is_leaf[x] != nd[x].leaf || t.prompt[x] != nd[x].prompt ||
            memcmp(t.tokens + t.span_start[x], nd[x].tok, (size_t)len * sizeof(int32_t)) != 0)
            bad++;
        if (nd[x].leaf && !(t.leaf_reward[x] == nd[x].reward)) bad++;
        wv[x] = rvalue(nd, M, x);
        wa[x] = nd[x].parent < 0 ? 0 : wv[x] - rvalue(nd, M, nd[x].parent);
        if (nd[x].leaf) {
            leaves++;
            if (nd[x].depth < c.tree_levels) {
                early++;
                if (!nd[x].fin) bad++; /* only EOS / the length limit ends a branch early */
                for (int64_t y = x + 1; y < M; y++)
                    if (t.parent[y] == x) bad++; /* a leaf has no children */
            }
        }
    }
    CHECK(bad == 0, "%s: %lld node fields differ from the reference", name, (long long)bad);
    CHECK(early > 0, "%s: no child finished early (test needs some)", name);
    h_close_f("tree values", t.values, wv, M, 1e-6, 1e-6);
    h_close_f("tree advantages", t.advantages, wa, M, 1e-6, 1e-6);
    /* episodes */
    int64_t E = path ? leaves : M - 3, ebad = 0;
    CHECK(b.num_seqs == E, "%s: %lld episodes, want %lld", name, (long long)b.num_seqs, (long long)E);
    if (b.num_seqs == E) {
        int64_t e = 0;
        for (int64_t x = 3; x < M; x++) {
            if (path && !nd[x].leaf) continue;
            int32_t full[MAXT];
            int64_t n = rpath(nd, x, full), o = b.offsets[e];
            int64_t ctx = path ? P_OFF[nd[x].prompt + 1] - P_OFF[nd[x].prompt] : n - nd[x].len;
            if (b.offsets[e + 1] - o != n || b.context_len[e] != ctx || b.prompt[e] != nd[x].prompt ||
                memcmp(b.tokens + o, full, (size_t)n * sizeof(int32_t)) != 0) {
                ebad++;
                e++;
                continue;
            }
            if (b.rewards[e] != (path ? nd[x].reward : t.values[x])) ebad++;
            /* advantage of each token: EDGE: A(x) on x's own tokens; PATH: A(node of token) */
            int64_t pos = n;
            for (int64_t y = x; y >= 0; y = nd[y].parent) {
                pos -= nd[y].len;
                for (int64_t i = 0; i < nd[y].len; i++) {
                    int own = path ? nd[y].parent >= 0 : y == x;
                    float wadv = own ? t.advantages[y] : 0.0f;
                    if (b.mask[o + pos + i] != own || b.advantages[o + pos + i] != wadv) ebad++;
                    if (own && b.logprobs[o + pos + i] != nd[y].lp[i]) ebad++;
                }
            }
            e++;
        }
    }
    CHECK(ebad == 0, "%s: %lld episode entries differ", name, (long long)ebad);
    segrl_rollout_stats s;
    segrl_rollout_stats_get(r, &s);
    CHECK(s.scored == leaves && s.samples == M - 3 && s.rounds == 3,
          "%s: scored %lld (leaves %lld), samples %lld, rounds %lld", name, (long long)s.scored,
          (long long)leaves, (long long)s.samples, (long long)s.rounds);
    printf("%s: %lld nodes, %lld leaves (%lld finished before the last level), %lld episodes\n",
           name, (long long)M, (long long)leaves, (long long)early, (long long)b.num_seqs);
    free(wv);
    free(wa);
    segrl_rollout_free(r);
}

/* A tree whose requests carry node ids: prefix_id = the node, parent_id = its parent. */
static void check_tree_request_ids(void) {
    fake f = {1, 6, 60, 0, 0};
    scorer sc = {0, 0, 0};
    segrl_rollout_config c = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_TREE);
    c.branching[0] = 2, c.branching[1] = 2, c.branching[2] = 2;
    c.segment_len[0] = 3, c.segment_len[1] = 3;
    c.max_new_tokens = 12;
    segrl_rollout *r = make(&c, &sc);
    if (!r) return;
    int64_t bad = 0, level = 0;
    int32_t tok[MAXT];
    float lp[MAXT];
    /* remember the prefix of every node id seen in a request */
    static int32_t pre[512][MAXT];
    static int64_t pre_len[512];
    for (int i = 0; i < 512; i++) pre_len[i] = -1;
    while (!segrl_rollout_done(r)) {
        const segrl_gen_request *q;
        int64_t n;
        segrl_rollout_pending(r, &q, &n);
        for (int64_t i = 0; i < n; i++) {
            if (q[i].prefix_id < 0 || q[i].prefix_id >= 512) {
                bad++;
                continue;
            }
            if (q[i].n != c.branching[level]) bad++;
            if (q[i].index != i) bad++;
            memcpy(pre[q[i].prefix_id], q[i].prefix, (size_t)q[i].prefix_len * sizeof(int32_t));
            pre_len[q[i].prefix_id] = q[i].prefix_len;
            /* the node's prefix extends its parent's */
            if (q[i].parent_id >= 0) {
                int64_t pl = pre_len[q[i].parent_id];
                if (pl < 0 || pl > q[i].prefix_len ||
                    memcmp(pre[q[i].parent_id], q[i].prefix, (size_t)pl * sizeof(int32_t)) != 0)
                    bad++;
            } else if (level != 0)
                bad++;
            for (int32_t j = 0; j < q[i].n; j++) {
                int32_t fin;
                int64_t len = gen_one(&f, q[i].prefix, q[i].prefix_len, j, q[i].seed,
                                      q[i].max_new_tokens, tok, lp, &fin);
                segrl_rollout_put(r, i, j, tok, lp, len, fin);
            }
        }
        CHECK(segrl_rollout_advance(r) == SEGRL_OK, "ids advance: %s", segrl_last_error());
        level++;
    }
    CHECK(bad == 0, "tree requests: %lld bad prefix/parent ids", (long long)bad);
    segrl_rollout_tree t;
    segrl_rollout_tree_get(r, &t);
    for (int64_t x = 0; x < t.num_nodes; x++)
        if (!t.is_leaf[x] && pre_len[x] < 0) bad++; /* every inner node was requested by its id */
    CHECK(bad == 0, "tree requests: an inner node was never requested under its id");
    segrl_rollout_free(r);
}

// ----------------------------------------------------------------------------
// callback form == request/response form

static int same_batch(const segrl_rollout_batch *a, const segrl_rollout_batch *b) {
    if (a->num_seqs != b->num_seqs || a->num_tokens != b->num_tokens ||
        a->num_groups != b->num_groups || a->num_segments != b->num_segments)
        return 0;
    int64_t B = a->num_seqs, N = a->num_tokens, S = a->num_segments;
#define SAME(f, n) (((a->f == NULL) == (b->f == NULL)) && (!a->f || memcmp(a->f, b->f, (n) * sizeof(*a->f)) == 0))
    return SAME(offsets, B + 1) && SAME(tokens, N) && SAME(logprobs, N) && SAME(mask, N) &&
           SAME(context_len, B) && SAME(prompt, B) && SAME(question, B) && SAME(rewards, B) &&
           SAME(finished, B) && SAME(advantages, N) && SAME(prob_mask, N) &&
           (S == 0 || (SAME(seg_offsets, B + 1) && SAME(seg_start, S) && SAME(seg_end, S) &&
                       SAME(seg_values, S) && SAME(seg_advantages, S) && SAME(seg_prefix, S) &&
                       SAME(seg_mc_count, S)));
#undef SAME
}

static void check_forms(int method, int adaptive) {
    char name[64];
    snprintf(name, sizeof name, "forms method %d%s", method, adaptive ? " adaptive" : "");
    fake f1 = {1, 6, 50, 2, 0}, f2 = f1;
    scorer s1 = {0, 0, 0}, s2 = s1;
    int32_t delim = DELIM, stop = EOS;
    segrl_rollout_config c = segrl_rollout_config_default(method);
    c.group_size = 3;
    c.max_new_tokens = 20;
    c.seed = 1234;
    c.stop_ids = &stop;
    c.n_stop = 1;
    c.delimiters = &delim;
    c.n_delimiters = 1;
    c.cutpoints.tau = 0.5f;
    c.cutpoints.k = 2;
    c.mc_samples = 4;
    c.mc_adaptive = adaptive;
    c.mc_initial = 1;
    c.mc_batch = 3;
    c.branching[0] = 3, c.branching[1] = 2, c.branching[2] = 2;
    c.segment_len[0] = 4, c.segment_len[1] = 4;
    segrl_rollout *a = make(&c, &s1), *b = make(&c, &s2);
    if (!a || !b) {
        segrl_rollout_free(a);
        segrl_rollout_free(b);
        return;
    }
    segrl_status st1 = segrl_rollout_run(a, gen_cb, &f1);
    segrl_status st2 = drive_rr(b, &f2);
    CHECK(st1 == SEGRL_OK && st2 == SEGRL_OK, "%s: %d %d %s", name, st1, st2, segrl_last_error());
    segrl_rollout_batch ba, bb;
    segrl_rollout_batch_get(a, &ba);
    segrl_rollout_batch_get(b, &bb);
    CHECK(same_batch(&ba, &bb), "%s: batches differ", name);
    segrl_rollout_stats sa, sb;
    segrl_rollout_stats_get(a, &sa);
    segrl_rollout_stats_get(b, &sb);
    CHECK(memcmp(&sa, &sb, sizeof sa) == 0, "%s: stats differ", name);
    if (method == SEGRL_ROLLOUT_SPO_TREE) {
        segrl_rollout_tree ta, tb;
        segrl_rollout_tree_get(a, &ta);
        segrl_rollout_tree_get(b, &tb);
        CHECK(ta.num_nodes == tb.num_nodes &&
                  memcmp(ta.parent, tb.parent, (size_t)ta.num_nodes * 8) == 0 &&
                  memcmp(ta.values, tb.values, (size_t)ta.num_nodes * 4) == 0 &&
                  memcmp(ta.tokens, tb.tokens, (size_t)ta.num_tokens * 4) == 0,
              "%s: trees differ", name);
    }
    if (adaptive) {
        CHECK(sa.mc_rollouts == 4 * sa.mc_prefixes && sa.rounds > 2,
              "%s: adaptive budget %lld rollouts for %lld prefixes in %lld rounds", name,
              (long long)sa.mc_rollouts, (long long)sa.mc_prefixes, (long long)sa.rounds);
        /* every prefix got at least mc_initial */
        int64_t lo = INT64_MAX, hi = 0;
        for (int64_t k = 0; k < ba.num_segments; k++) {
            if (ba.seg_mc_count[k] < lo) lo = ba.seg_mc_count[k];
            if (ba.seg_mc_count[k] > hi) hi = ba.seg_mc_count[k];
        }
        CHECK(lo >= 1 && hi >= lo, "%s: Monte Carlo counts from %lld to %lld", name,
              (long long)lo, (long long)hi);
    }
    /* GROUP: packed outputs straight into segrl_grpo */
    if (method == SEGRL_ROLLOUT_GROUP) {
        CHECK(ba.advantages == NULL && ba.num_seqs == 9, "group: batch shape");
        float *adv = h_alloc((size_t)ba.num_tokens * sizeof(float));
        segrl_outcome in;
        memset(&in, 0, sizeof in);
        in.scores = segrl_view_1d((void *)ba.rewards, SEGRL_DTYPE_F32, segrl_cpu(), ba.num_seqs);
        in.token_rewards = segrl_view_none();
        in.mask = segrl_view_1d((void *)ba.mask, SEGRL_DTYPE_U8, segrl_cpu(), ba.num_tokens);
        in.group_index = segrl_view_1d((void *)ba.prompt, SEGRL_DTYPE_I64, segrl_cpu(), ba.num_seqs);
        in.num_groups = ba.num_groups;
        segrl_layout lay = segrl_layout_packed(
            segrl_view_1d((void *)ba.offsets, SEGRL_DTYPE_I64, segrl_cpu(), ba.num_seqs + 1));
        segrl_outcome_opts o = segrl_outcome_opts_default();
        size_t wsb = 0;
        segrl_workspace_size(SEGRL_OP_GRPO, segrl_cpu(), ba.num_seqs, ba.num_tokens, ba.num_groups,
                             &wsb);
        void *ws = h_alloc(wsb + 64);
        segrl_exec ex;
        memset(&ex, 0, sizeof ex);
        ex.workspace = ws;
        ex.workspace_bytes = wsb;
        segrl_status st = segrl_grpo(&lay, &in, &o, &ex,
                                     segrl_view_1d(adv, SEGRL_DTYPE_F32, segrl_cpu(), ba.num_tokens),
                                     segrl_view_none());
        CHECK(st == SEGRL_OK, "group -> segrl_grpo: %s", segrl_last_error());
        /* prompt tokens get 0, each response token its sequence's advantage */
        int64_t bad = 0;
        for (int64_t q = 0; q < ba.num_seqs; q++)
            for (int64_t t = ba.offsets[q]; t < ba.offsets[q + 1]; t++)
                bad += ba.mask[t] != (t - ba.offsets[q] >= ba.context_len[q]) ||
                       (!ba.mask[t] && adv[t] != 0.0f);
        CHECK(bad == 0, "group: mask / context layout");
        free(adv);
        free(ws);
    }
    segrl_rollout_free(a);
    segrl_rollout_free(b);
}

// ----------------------------------------------------------------------------
// data-parallel shards: seed_scope PROMPT + prompt_base

/* 7 prompts of different lengths; question id of global prompt g: 100 + g. */
static const int64_t P7_OFF[8] = {0, 2, 5, 6, 9, 10, 12, 15};
static const int32_t P7_TOK[15] = {40, 41, 50, 51, 52, 60, 61, 62, 63, 70, 80, 81, 90, 91, 92};
static const int64_t P7_QID[7] = {100, 101, 102, 103, 104, 105, 106};

/* Every request a driver issued, with its GLOBAL prompt and round. */
typedef struct rq_log {
    int64_t n, ntok;
    int64_t g[512], round[512], prefix_len[512], prompt_len[512], tok0[512];
    uint64_t seed[512];
    int32_t nsamp[512], max_new[512];
    int32_t tok[65536];
} rq_log;

typedef struct shard_gen {
    fake f;
    int64_t base, round;
    rq_log *log;
} shard_gen;

static segrl_status shard_gen_cb(void *user, segrl_rollout *r, const segrl_gen_request *q,
                                 int64_t n) {
    shard_gen *s = user;
    rq_log *L = s->log;
    for (int64_t i = 0; i < n; i++) {
        if (L->n >= 512 || L->ntok + q[i].prefix_len > 65536)
            return segrl_set_error(SEGRL_ERR_INVALID, "shard_gen: log full");
        int64_t k = L->n++;
        L->g[k] = s->base + q[i].prompt;
        L->round[k] = s->round;
        L->prefix_len[k] = q[i].prefix_len;
        L->prompt_len[k] = q[i].prompt_len;
        L->seed[k] = q[i].seed;
        L->nsamp[k] = q[i].n;
        L->max_new[k] = q[i].max_new_tokens;
        L->tok0[k] = L->ntok;
        memcpy(L->tok + L->ntok, q[i].prefix, (size_t)q[i].prefix_len * sizeof(int32_t));
        L->ntok += q[i].prefix_len;
    }
    s->round++;
    return gen_cb(&s->f, r, q, n);
}

/* The reward of a global prompt (the score callback sees local prompt indices). */
static segrl_status shard_score(void *user, int64_t prompt, const int32_t *tok, int64_t n,
                                int64_t plen, float *out) {
    *out = ref_reward(*(const int64_t *)user + prompt, tok + plen, n - plen);
    return SEGRL_OK;
}

/* Runs one driver on global prompts [lo, hi). */
static segrl_rollout *shard_run(const segrl_rollout_config *c0, int64_t lo, int64_t hi,
                                rq_log *log, int64_t *base) {
    int64_t off[8];
    for (int64_t p = lo; p <= hi; p++) off[p - lo] = P7_OFF[p] - P7_OFF[lo];
    segrl_rollout_prompts pr = {hi - lo, off, P7_TOK + P7_OFF[lo], P7_QID + lo};
    segrl_rollout_config c = *c0;
    c.prompt_base = lo;
    *base = lo;
    segrl_rollout *r = NULL;
    segrl_status st = segrl_rollout_init(&c, &pr, shard_score, base, &r);
    CHECK(st == SEGRL_OK, "shard [%lld, %lld) init: %s", (long long)lo, (long long)hi,
          segrl_last_error());
    if (st) return NULL;
    shard_gen sg = {{1, 6, 50, 2, 0}, lo, 0, log};
    st = segrl_rollout_run(r, shard_gen_cb, &sg);
    CHECK(st == SEGRL_OK, "shard [%lld, %lld) run: %s", (long long)lo, (long long)hi,
          segrl_last_error());
    if (st) {
        segrl_rollout_free(r);
        return NULL;
    }
    return r;
}

/* Requests of global prompt g, in order: a's == b's (round, seed, prefix, n, max_new_tokens). */
static int64_t requests_differ(const rq_log *a, const rq_log *b, int64_t g) {
    int64_t i = 0, j = 0, bad = 0;
    for (;;) {
        while (i < a->n && a->g[i] != g) i++;
        while (j < b->n && b->g[j] != g) j++;
        if (i == a->n || j == b->n) return bad + (i != a->n) + (j != b->n);
        bad += a->round[i] != b->round[j] || a->seed[i] != b->seed[j] ||
               a->nsamp[i] != b->nsamp[j] || a->max_new[i] != b->max_new[j] ||
               a->prompt_len[i] != b->prompt_len[j] || a->prefix_len[i] != b->prefix_len[j] ||
               memcmp(a->tok + a->tok0[i], b->tok + b->tok0[j],
                      (size_t)a->prefix_len[i] * sizeof(int32_t)) != 0;
        i++, j++;
    }
}

/* Row x of a == row y of b, bit for bit (prompt ids compared as global ones). */
static int same_row(const segrl_rollout_batch *a, int64_t x, int64_t abase,
                    const segrl_rollout_batch *b, int64_t y, int64_t bbase) {
    int64_t oa = a->offsets[x], ob = b->offsets[y], n = a->offsets[x + 1] - oa;
    if (b->offsets[y + 1] - ob != n || a->context_len[x] != b->context_len[y] ||
        a->prompt[x] + abase != b->prompt[y] + bbase || a->question[x] != b->question[y] ||
        memcmp(&a->rewards[x], &b->rewards[y], sizeof(float)) != 0 ||
        a->finished[x] != b->finished[y])
        return 0;
#define ROW(f) (((a->f == NULL) == (b->f == NULL)) && (!a->f || memcmp(a->f + oa, b->f + ob, (size_t)n * sizeof(*a->f)) == 0))
    if (!(ROW(tokens) && ROW(logprobs) && ROW(mask) && ROW(advantages) && ROW(prob_mask)))
        return 0;
#undef ROW
    if ((a->num_segments == 0) != (b->num_segments == 0)) return 0;
    if (a->num_segments == 0) return 1;
    int64_t sa = a->seg_offsets[x], sb = b->seg_offsets[y], S = a->seg_offsets[x + 1] - sa;
    if (b->seg_offsets[y + 1] - sb != S) return 0;
#define SEG(f) (memcmp(a->f + sa, b->f + sb, (size_t)S * sizeof(*a->f)) == 0)
    return SEG(seg_start) && SEG(seg_end) && SEG(seg_values) && SEG(seg_advantages) &&
           SEG(seg_mc_count); /* seg_prefix: local ids */
#undef SEG
}

static segrl_rollout_config shard_config(int method, int32_t scope) {
    static int32_t delim = DELIM, stop = EOS;
    segrl_rollout_config c = segrl_rollout_config_default(method);
    c.seed_scope = scope;
    c.group_size = 3;
    c.max_new_tokens = 20;
    c.seed = 99;
    c.stop_ids = &stop;
    c.n_stop = 1;
    c.delimiters = &delim;
    c.n_delimiters = 1;
    c.cutpoints.tau = 0.5f;
    c.cutpoints.k = 2;
    c.mc_samples = 3;
    c.branching[0] = 3, c.branching[1] = 2, c.branching[2] = 2;
    c.segment_len[0] = 4, c.segment_len[1] = 4;
    return c;
}

/* One driver on the 7 prompts vs drivers on [0, 3), [3, 5), [5, 7). Returns the number of
 * global prompts whose requests or batch rows differ (0 expected with SEED_PROMPT). */
static int64_t check_shards(int method, int32_t scope) {
    static const int64_t cut[4] = {0, 3, 5, 7};
    const char *name = scope == SEGRL_ROLLOUT_SEED_PROMPT ? "shards (prompt seeds)"
                                                          : "shards (position seeds)";
    segrl_rollout_config c = shard_config(method, scope);
    static rq_log full, part[3];
    memset(&full, 0, sizeof full);
    memset(part, 0, sizeof part);
    int64_t base_full, base[3];
    segrl_rollout *rf = shard_run(&c, 0, 7, &full, &base_full), *rs[3] = {NULL, NULL, NULL};
    int ok = rf != NULL;
    for (int s = 0; s < 3; s++) {
        rs[s] = shard_run(&c, cut[s], cut[s + 1], &part[s], &base[s]);
        ok = ok && rs[s];
    }
    int64_t differ = -1;
    if (ok) {
        segrl_rollout_batch bf, bs[3];
        segrl_rollout_batch_get(rf, &bf);
        int64_t rows = 0, max_rank = 0, bad_req = 0, bad_row = 0, bad_order = 0;
        differ = 0;
        for (int s = 0; s < 3; s++) {
            segrl_rollout_batch_get(rs[s], &bs[s]);
            rows += bs[s].num_seqs;
            CHECK(bs[s].num_groups == cut[s + 1] - cut[s], "%s method %d: shard %d has %lld "
                  "groups", name, method, s, (long long)bs[s].num_groups);
        }
        for (int64_t g = 0; g < 7; g++) {
            int s = g < 3 ? 0 : g < 5 ? 1 : 2;
            int64_t nreq = 0, rank[8] = {0};
            for (int64_t i = 0; i < full.n; i++)
                if (full.g[i] == g && full.round[i] < 8 && ++rank[full.round[i]] - 1 > max_rank)
                    max_rank = rank[full.round[i]] - 1;
            for (int64_t i = 0; i < full.n; i++) nreq += full.g[i] == g;
            int64_t dr = requests_differ(&full, &part[s], g);
            /* this prompt's rows, in order, in both batches */
            int64_t x = 0, y = 0, dx = 0;
            for (;;) {
                while (x < bf.num_seqs && bf.prompt[x] != g) x++;
                while (y < bs[s].num_seqs && bs[s].prompt[y] + base[s] != g) y++;
                if (x == bf.num_seqs || y == bs[s].num_seqs) {
                    dx += (x != bf.num_seqs) + (y != bs[s].num_seqs);
                    break;
                }
                dx += !same_row(&bf, x, 0, &bs[s], y, base[s]);
                x++, y++;
            }
            bad_req += dr;
            bad_row += dx;
            differ += dr + dx > 0;
            if (scope == SEGRL_ROLLOUT_SEED_PROMPT)
                CHECK(dr == 0 && dx == 0 && nreq > 0, "%s method %d: prompt %lld: %lld requests "
                      "(of %lld) and %lld rows differ", name, method, (long long)g, (long long)dr,
                      (long long)nreq, (long long)dx);
        }
        /* GROUP / SPO_CHAIN / VINEPPO: the shards' batches concatenate to the full one */
        if (method != SEGRL_ROLLOUT_SPO_TREE) {
            int64_t x = 0;
            for (int s = 0; s < 3; s++)
                for (int64_t y = 0; y < bs[s].num_seqs; y++, x++)
                    bad_order += x >= bf.num_seqs || !same_row(&bf, x, 0, &bs[s], y, base[s]);
            if (scope == SEGRL_ROLLOUT_SEED_PROMPT)
                CHECK(bad_order == 0, "%s method %d: %lld concatenated rows differ", name, method,
                      (long long)bad_order);
        }
        if (scope == SEGRL_ROLLOUT_SEED_PROMPT)
            CHECK(rows == bf.num_seqs, "%s method %d: %lld rows in the shards, %lld in one batch",
                  name, method, (long long)rows, (long long)bf.num_seqs);
        /* the test must see several requests of one prompt in one round (rank k > 0) */
        if (method != SEGRL_ROLLOUT_GROUP)
            CHECK(max_rank > 0, "%s method %d: every prompt has one request per round", name,
                  method);
        printf("%s method %d: %lld requests, %lld rows, %lld of 7 prompts differ (%lld "
               "requests, %lld rows)\n", name, method, (long long)full.n, (long long)bf.num_seqs,
               (long long)differ, (long long)bad_req, (long long)bad_row);
    }
    segrl_rollout_free(rf);
    for (int s = 0; s < 3; s++) segrl_rollout_free(rs[s]);
    return differ;
}

static uint64_t doc_seed_position(uint64_t seed, int64_t round, int64_t i) {
    return mix(mix(seed ^ mix((uint64_t)round)) + (uint64_t)i);
}

static uint64_t doc_seed_prompt(uint64_t seed, int64_t round, int64_t g, int64_t k) {
    return mix(mix(mix(seed ^ mix((uint64_t)round)) ^ mix(~(uint64_t)g)) + (uint64_t)k);
}

/* Seeds as documented in rollout.h; POSITION (the default) gives the seeds of before. */
static void check_seed_formulas(void) {
    /* recorded from the library before seed_scope existed: GROUP, seed 1234, prompts3() */
    static const uint64_t before[3] = {0xff30e146df168de4ull, 0x2121e6aec44833adull,
                                       0xd56b22409b8e20d2ull};
    scorer sc = {0, 0, 0};
    segrl_rollout_config c = segrl_rollout_config_default(SEGRL_ROLLOUT_GROUP);
    CHECK(c.seed_scope == SEGRL_ROLLOUT_SEED_POSITION && c.prompt_base == 0,
          "defaults: seed_scope %d, prompt_base %lld", c.seed_scope, (long long)c.prompt_base);
    c.seed = 1234;
    segrl_rollout *r = make(&c, &sc);
    if (r) {
        const segrl_gen_request *q;
        int64_t n = 0;
        segrl_rollout_pending(r, &q, &n);
        CHECK(n == 3 && q[0].seed == before[0] && q[1].seed == before[1] &&
                  q[2].seed == before[2], "default seeds changed");
        segrl_rollout_free(r);
    }
    /* every round of a Monte Carlo method and of a tree, both scopes, prompt_base 5 */
    for (int m = SEGRL_ROLLOUT_SPO_CHAIN; m <= SEGRL_ROLLOUT_VINEPPO; m++)
        for (int32_t scope = 0; scope <= 1; scope++) {
            fake f = {1, 6, 50, 2, 0};
            c = shard_config(m, scope);
            c.prompt_base = 5;
            r = make(&c, &sc);
            if (!r) continue;
            int64_t round = 0, bad = 0, nreq = 0;
            while (!segrl_rollout_done(r)) {
                const segrl_gen_request *q;
                int64_t n = 0, rank[3] = {0, 0, 0};
                segrl_rollout_pending(r, &q, &n);
                for (int64_t i = 0; i < n; i++) {
                    uint64_t want = scope == SEGRL_ROLLOUT_SEED_POSITION
                                        ? doc_seed_position(c.seed, round, i)
                                        : doc_seed_prompt(c.seed, round, 5 + q[i].prompt,
                                                          rank[q[i].prompt]++);
                    bad += q[i].seed != want;
                    for (int64_t j = 0; j < i; j++) bad += q[j].seed == q[i].seed;
                    nreq++;
                }
                if (gen_cb(&f, r, q, n) || segrl_rollout_advance(r)) {
                    bad++;
                    break;
                }
                round++;
            }
            CHECK(bad == 0 && round >= 2, "seeds method %d scope %d: %lld of %lld differ from "
                  "the documented formula (or repeat), %lld rounds", m, scope, (long long)bad,
                  (long long)nreq, (long long)round);
            segrl_rollout_free(r);
        }
}

static void check_data_parallel(void) {
    check_seed_formulas();
    for (int m = SEGRL_ROLLOUT_GROUP; m <= SEGRL_ROLLOUT_VINEPPO; m++)
        check_shards(m, SEGRL_ROLLOUT_SEED_PROMPT);
    /* position seeds move with the split: the check above can fail */
    for (int m = SEGRL_ROLLOUT_GROUP; m <= SEGRL_ROLLOUT_VINEPPO; m++) {
        int64_t d = check_shards(m, SEGRL_ROLLOUT_SEED_POSITION);
        CHECK(d >= 4, "position seeds, method %d: only %lld of 7 prompts differ between one "
              "driver and three shards", m, (long long)d);
    }
}

// ----------------------------------------------------------------------------
// replay buffer

/* A hand-made batch: n episodes of 3 tokens (1 context + 2 trained), question q[i], advantage
 * tag[i] on the trained tokens; train[i] == 0 gives an all-masked episode. */
typedef struct hb {
    int64_t off[16], ctx[16], q[16];
    int32_t tok[48];
    float lp[48], adv[48], rew[16];
    uint8_t mask[48], fin[16];
    segrl_rollout_batch b;
} hb;

static void make_hb(hb *h, int n, const int64_t *q, const float *tag, const int *train) {
    memset(h, 0, sizeof *h);
    for (int i = 0; i < n; i++) {
        h->off[i + 1] = 3 * (i + 1);
        h->ctx[i] = 1;
        h->q[i] = q[i];
        h->rew[i] = tag[i];
        for (int t = 0; t < 3; t++) {
            h->tok[3 * i + t] = 100 + i;
            h->mask[3 * i + t] = t > 0 && train[i];
            h->adv[3 * i + t] = t > 0 ? tag[i] : 0;
        }
    }
    segrl_rollout_batch *b = &h->b;
    memset(b, 0, sizeof *b);
    b->num_seqs = n;
    b->num_tokens = 3 * n;
    b->offsets = h->off;
    b->tokens = h->tok;
    b->logprobs = h->lp;
    b->mask = h->mask;
    b->context_len = h->ctx;
    b->question = h->q;
    b->prompt = h->q;
    b->rewards = h->rew;
    b->finished = h->fin;
    b->advantages = h->adv;
}

static int replay_is(segrl_replay *rb, int n, const float *tags, const int64_t *groups) {
    segrl_rollout_batch b;
    if (segrl_replay_batch_get(rb, &b) != SEGRL_OK || b.num_seqs != n) {
        printf("  replay holds %lld, want %d\n", (long long)b.num_seqs, n);
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (b.rewards[i] != tags[i] || b.advantages[b.offsets[i] + 1] != tags[i] ||
            b.prompt[i] != groups[i]) {
            printf("  replay[%d]: tag %g want %g, group %lld want %lld\n", i, b.rewards[i], tags[i],
                   (long long)b.prompt[i], (long long)groups[i]);
            return 0;
        }
    return 1;
}

static void check_replay(void) {
    segrl_replay *rb = NULL;
    CHECK(segrl_replay_init(1, 2, &rb) == SEGRL_OK, "replay init: %s", segrl_last_error());
    if (!rb) return;
    hb h;
    int all[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    /* step 0: questions 7 7 7 9; cap 2 keeps the first two of question 7 */
    int64_t q0[4] = {7, 7, 7, 9};
    float t0[4] = {1, 2, 3, 4};
    make_hb(&h, 4, q0, t0, all);
    CHECK(segrl_replay_add(rb, &h.b, 0) == SEGRL_OK, "replay add 0: %s", segrl_last_error());
    {
        float w[3] = {1, 2, 4};
        int64_t g[3] = {0, 0, 1};
        CHECK(replay_is(rb, 3, w, g), "replay after step 0 (cap 2 per question)");
    }
    /* step 1: question 9 twice (one all-masked: skipped), question 5 once */
    int64_t q1[3] = {9, 9, 5};
    float t1[3] = {11, 12, 13};
    int tr1[3] = {1, 0, 1};
    make_hb(&h, 3, q1, t1, tr1);
    CHECK(segrl_replay_add(rb, &h.b, 1) == SEGRL_OK, "replay add 1: %s", segrl_last_error());
    {
        /* newest first: 11 (q9) 13 (q5), then step 0: 1 2 (q7) 4 (q9): q9 holds 2 <= cap */
        float w[5] = {11, 13, 1, 2, 4};
        int64_t g[5] = {0, 1, 2, 2, 0};
        CHECK(replay_is(rb, 5, w, g), "replay after step 1");
    }
    /* step 2 (max_age 1): step 0 entries are evicted; question 9 gets two new ones: cap 2
     * keeps them and drops step 1's */
    int64_t q2[2] = {9, 9};
    float t2[2] = {21, 22};
    make_hb(&h, 2, q2, t2, all);
    CHECK(segrl_replay_add(rb, &h.b, 2) == SEGRL_OK, "replay add 2: %s", segrl_last_error());
    {
        float w[3] = {21, 22, 13};
        int64_t g[3] = {0, 0, 1};
        CHECK(replay_is(rb, 3, w, g), "replay after step 2 (age and cap)");
    }
    /* step 4: everything from step 2 and before is older than 1 step */
    make_hb(&h, 1, q2, t2, all);
    h.mask[1] = h.mask[2] = 0; /* nothing to train on: not added */
    CHECK(segrl_replay_add(rb, &h.b, 4) == SEGRL_OK, "replay add 4: %s", segrl_last_error());
    CHECK(replay_is(rb, 0, NULL, NULL), "replay after step 4: empty");
    /* bad input: nothing changes */
    make_hb(&h, 2, q2, t2, all);
    CHECK(segrl_replay_add(rb, &h.b, 3) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "step"),
          "replay: an older step: %s", segrl_last_error());
    h.b.advantages = NULL;
    CHECK(segrl_replay_add(rb, &h.b, 5) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "batch->advantages"),
          "replay: no advantages: %s", segrl_last_error());
    h.b.advantages = h.adv;
    h.off[1] = 7;
    CHECK(segrl_replay_add(rb, &h.b, 5) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "batch->offsets"),
          "replay: bad offsets: %s", segrl_last_error());
    CHECK(segrl_replay_add(rb, NULL, 5) == SEGRL_ERR_INVALID, "replay: NULL batch");
    CHECK(replay_is(rb, 0, NULL, NULL), "replay unchanged by failed adds");
    segrl_replay *x = (segrl_replay *)&h;
    CHECK(segrl_replay_init(-1, 2, &x) == SEGRL_ERR_INVALID && x == (segrl_replay *)&h &&
              strstr(segrl_last_error(), "max_age"),
          "replay init: negative age: %s", segrl_last_error());
    CHECK(segrl_replay_init(1, -2, &x) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "per_question_cap"),
          "replay init: negative cap");
    segrl_replay_free(rb);

    /* a real SPO-tree batch through the buffer */
    fake f = {1, 6, 60, 0, 0};
    scorer sc = {0, 0, 0};
    segrl_rollout_config c = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_TREE);
    c.branching[0] = 2, c.branching[1] = 2, c.branching[2] = 2;
    c.segment_len[0] = 3, c.segment_len[1] = 3;
    c.max_new_tokens = 12;
    segrl_rollout *r = make(&c, &sc);
    if (!r) return;
    segrl_rollout_run(r, gen_cb, &f);
    segrl_rollout_batch b, rbb;
    segrl_rollout_batch_get(r, &b);
    segrl_replay_init(0, 3, &rb);
    CHECK(segrl_replay_add(rb, &b, 10) == SEGRL_OK, "replay tree add: %s", segrl_last_error());
    segrl_replay_batch_get(rb, &rbb);
    int64_t perq[3] = {0, 0, 0}, avail[3] = {0, 0, 0}, ok = 1;
    for (int64_t i = 0; i < rbb.num_seqs; i++) perq[rbb.question[i]]++;
    for (int64_t i = 0; i < b.num_seqs; i++) avail[b.question[i]]++;
    for (int i = 0; i < 3; i++) ok &= perq[i] == (avail[i] < 3 ? avail[i] : 3);
    CHECK(ok && rbb.num_groups == 3, "replay tree: %lld %lld %lld per question",
          (long long)perq[0], (long long)perq[1], (long long)perq[2]);
    /* the kept episodes are the batch's first three per question, token for token */
    int64_t k = 0;
    int64_t seen[3] = {0, 0, 0};
    for (int64_t i = 0; i < b.num_seqs && k < rbb.num_seqs; i++) {
        if (seen[b.question[i]]++ >= 3) continue;
        int64_t n = b.offsets[i + 1] - b.offsets[i];
        ok &= rbb.offsets[k + 1] - rbb.offsets[k] == n &&
              memcmp(rbb.tokens + rbb.offsets[k], b.tokens + b.offsets[i], (size_t)n * 4) == 0 &&
              memcmp(rbb.advantages + rbb.offsets[k], b.advantages + b.offsets[i], (size_t)n * 4) == 0;
        k++;
    }
    CHECK(ok && k == perq[0] + perq[1] + perq[2], "replay tree: kept episodes differ from the batch's");
    segrl_replay_free(rb);
    segrl_rollout_free(r);
}

// ----------------------------------------------------------------------------
// adaptive Monte Carlo budget vs fixed K

/* Coin task: response = [t, 5, 5, 5, 5, answer]. t in 11..18 uniform (p = 1/8); fillers p ~ 1;
 * the answer is 20 (correct, reward 1) with probability q[prompt][t], else 21; its logprob is
 * reported as -1 so it is low-probability too. With cutpoints tau 0.9, k 1 each trajectory has
 * boundaries at the prompt (true value mean_t q[p][t]) and before the answer (q[p][t]). */
#define COIN_P 16
static double coin_q[COIN_P][8];
static int coin_uneven; /* some adaptive run gave prefixes different counts */

static segrl_status coin_cb(void *user, segrl_rollout *r, const segrl_gen_request *q, int64_t n) {
    (void)user;
    for (int64_t i = 0; i < n; i++) {
        int64_t pos = q[i].prefix_len - q[i].prompt_len, p = q[i].prompt;
        for (int32_t j = 0; j < q[i].n; j++) {
            int32_t tok[6];
            float lp[6];
            int64_t len = 0;
            uint64_t h = mix(q[i].seed ^ mix((uint64_t)j + 1));
            int t = pos > 0 ? q[i].prefix[q[i].prompt_len] - 11 : (int)(h % 8);
            for (int64_t k = pos; k < 6; k++) {
                h = mix(h + (uint64_t)k);
                if (k == 0) tok[len] = 11 + t, lp[len] = logf(0.125f);
                else if (k < 5) tok[len] = 5, lp[len] = -0.01f;
                else tok[len] = (double)(h >> 11) / 9007199254740992.0 < coin_q[p][t] ? 20 : 21,
                     lp[len] = -1.0f;
                len++;
            }
            segrl_status st = segrl_rollout_put(r, q[i].index, j, tok, lp, len, 1);
            if (st) return st;
        }
    }
    return SEGRL_OK;
}

static segrl_status coin_score(void *user, int64_t prompt, const int32_t *tok, int64_t n,
                               int64_t plen, float *out) {
    (void)user, (void)prompt, (void)plen;
    *out = n > 0 && tok[n - 1] == 20 ? 1.0f : 0.0f;
    return SEGRL_OK;
}

/* Mean squared error of the distinct-prefix values of one run, and its rollout count. */
static double coin_run(int adaptive, int K, int k0, int batch, float z, int rule, uint64_t seed,
                       int64_t *rollouts) {
    int64_t off[COIN_P + 1];
    int32_t pt[COIN_P];
    for (int p = 0; p <= COIN_P; p++) off[p] = p;
    for (int p = 0; p < COIN_P; p++) pt[p] = 100 + p;
    segrl_rollout_prompts pr = {COIN_P, off, pt, NULL};
    segrl_rollout_config c = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_CHAIN);
    c.group_size = 8;
    c.max_new_tokens = 6;
    c.seed = seed;
    c.cutpoints.tau = 0.9f;
    c.cutpoints.k = 1;
    c.mc_samples = K;
    c.mc_adaptive = adaptive;
    c.mc_initial = k0;
    c.mc_batch = batch;
    c.mc_z = z;
    c.mc_rule = rule;
    segrl_rollout *r = NULL;
    if (segrl_rollout_init(&c, &pr, coin_score, NULL, &r) != SEGRL_OK ||
        segrl_rollout_run(r, coin_cb, NULL) != SEGRL_OK) {
        printf("coin run failed: %s\n", segrl_last_error());
        segrl_rollout_free(r);
        return NAN;
    }
    segrl_rollout_batch b;
    segrl_rollout_batch_get(r, &b);
    segrl_rollout_stats s;
    segrl_rollout_stats_get(r, &s);
    *rollouts = s.mc_rollouts;
    for (int64_t k = 1; k < b.num_segments; k++)
        coin_uneven |= b.seg_mc_count[k] != b.seg_mc_count[0];
    /* one term per distinct prefix (the first segment that has it) */
    char *done = calloc((size_t)(s.mc_prefixes + COIN_P + 1), 1);
    double se = 0;
    int64_t n = 0;
    for (int64_t q = 0; q < b.num_seqs; q++)
        for (int64_t k = b.seg_offsets[q]; k < b.seg_offsets[q + 1]; k++) {
            if (done[b.seg_prefix[k]]++) continue;
            int64_t p = b.prompt[q], pos = b.seg_start[k] - b.context_len[q];
            double truth = 0;
            if (pos == 0)
                for (int t = 0; t < 8; t++) truth += coin_q[p][t] / 8;
            else
                truth = coin_q[p][b.tokens[b.offsets[q] + b.context_len[q]] - 11];
            se += (b.seg_values[k] - truth) * (b.seg_values[k] - truth);
            n++;
        }
    free(done);
    segrl_rollout_free(r);
    return se / (double)n;
}

static void check_adaptive(void) {
    h_seed(77);
    for (int p = 0; p < COIN_P; p++)
        for (int t = 0; t < 8; t++) {
            double u = h_unif();
            /* many values near 0 or 1 (little variance), some in the middle */
            coin_q[p][t] = (t + p) % 3 == 0 ? 0.3 + 0.4 * u : (h_unif() < 0.5 ? 0.03 * u : 1 - 0.03 * u);
        }
    const int reps = 200;
    struct { int adaptive, K, k0, batch; float z; int rule; const char *name; } v[] = {
        {0, 4, 0, 0, 0, 0, "fixed K = 4"},
        {1, 4, 2, 0, 1.96f, 0, "adaptive K = 4: k0 2, batch U"},
        {1, 4, 1, 0, 1.96f, 0, "adaptive K = 4: k0 1, batch U"},
        {1, 4, 2, 8, 1.96f, 0, "adaptive K = 4: k0 2, batch 8"},
        {1, 4, 2, 0, 5.0f, 0, "adaptive K = 4: k0 2, batch U, z 5"},
        {1, 4, 2, 0, 1.96f, 1, "adaptive K = 4: widest interval rule"},
        {0, 8, 0, 0, 0, 0, "fixed K = 8"},
        {1, 8, 2, 0, 1.96f, 0, "adaptive K = 8: k0 2, batch U"},
        {1, 8, 2, 0, 5.0f, 0, "adaptive K = 8: k0 2, batch U, z 5"},
        {1, 8, 2, 0, 1.96f, 1, "adaptive K = 8: widest interval rule"},
    };
    enum { NV = sizeof v / sizeof v[0] };
    double mse[NV];
    int64_t budget[NV];
    int same_budget = 1;
    for (int i = 0; i < NV; i++) {
        double s = 0;
        int64_t tot = 0;
        for (int rep = 0; rep < reps; rep++) {
            int64_t ro = 0, ro_fixed = 0;
            s += coin_run(v[i].adaptive, v[i].K, v[i].k0, v[i].batch, v[i].z, v[i].rule,
                          1000 + (uint64_t)rep, &ro);
            if (v[i].adaptive && rep < 5) { /* equal budget: the same trajectories, K * U rollouts */
                coin_run(0, v[i].K, 0, 0, 1.96f, 0, 1000 + (uint64_t)rep, &ro_fixed);
                same_budget &= ro == ro_fixed;
            }
            tot += ro;
        }
        mse[i] = s / reps;
        budget[i] = tot;
        printf("adaptive MC: %-38s MSE %.5f  (%lld rollouts over %d batches)\n", v[i].name,
               mse[i], (long long)tot, reps);
    }
    int eq = same_budget;
    for (int i = 1; i < NV; i++) eq &= budget[i] == budget[v[i].K == 4 ? 0 : 6];
    CHECK(eq, "adaptive and fixed runs spent different budgets");
    CHECK(coin_uneven, "adaptive runs never gave prefixes different counts");
    /* the default rule (z 1.96) at equal budget: lower MSE than fixed K, at K = 4 and K = 8 */
    CHECK(mse[1] < mse[0] && mse[7] < mse[6],
          "adaptive budget did not lower the value MSE at equal budget (%.5f vs %.5f, %.5f vs %.5f)",
          mse[1], mse[0], mse[7], mse[6]);

    /* segrl_mc_allocate on its own */
    float mean[4] = {0.0f, 0.5f, 1.0f, 0.25f};
    int64_t cnt[4] = {4, 4, 4, 4}, add[4] = {9, 9, 9, 9};
    CHECK(segrl_mc_allocate(mean, cnt, 4, 6, 1.96f, add) == SEGRL_OK, "mc_allocate");
    CHECK(add[0] + add[1] + add[2] + add[3] == 6 && add[1] >= add[3] && add[3] >= add[0] &&
              add[0] == add[2],
          "mc_allocate: %lld %lld %lld %lld", (long long)add[0], (long long)add[1],
          (long long)add[2], (long long)add[3]);
    int64_t keep[4] = {9, 9, 9, 9};
    cnt[2] = 0;
    CHECK(segrl_mc_allocate(mean, cnt, 4, 6, 1.96f, keep) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "count") && keep[0] == 9,
          "mc_allocate: zero count: %s", segrl_last_error());
    cnt[2] = 4;
    mean[1] = NAN;
    CHECK(segrl_mc_allocate(mean, cnt, 4, 6, 1.96f, keep) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "mean") && keep[0] == 9,
          "mc_allocate: NaN mean");
    mean[1] = 0.5f;
    CHECK(segrl_mc_allocate(mean, cnt, 4, 6, 0.0f, keep) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "z"),
          "mc_allocate: z 0");
    CHECK(segrl_mc_allocate(mean, cnt, 0, 6, 1.0f, keep) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "n:"),
          "mc_allocate: n 0");
    CHECK(segrl_mc_allocate(mean, cnt, 4, -1, 1.0f, keep) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "batch"),
          "mc_allocate: batch -1");
}

// ----------------------------------------------------------------------------
// bad input

#define EXPECT_ERR(call, arg)                                                                     \
    do {                                                                                          \
        segrl_status st_ = (call);                                                                \
        CHECK(st_ == SEGRL_ERR_INVALID && strstr(segrl_last_error(), arg),                        \
              "%s: want INVALID naming %s, got %d \"%s\"", #call, arg, st_, segrl_last_error());  \
    } while (0)

static void check_bad_init(void) {
    scorer sc = {0, 0, 0};
    segrl_rollout_prompts p = prompts3();
    segrl_rollout *guard = (segrl_rollout *)&sc, *r = guard;
    segrl_rollout_config c = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_CHAIN);
    EXPECT_ERR(segrl_rollout_init(NULL, &p, score_cb, &sc, &r), "config");
    c.method = 9;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->method");
    c = segrl_rollout_config_default(SEGRL_ROLLOUT_GROUP);
    c.group_size = 0;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->group_size");
    c.group_size = 2;
    c.max_new_tokens = 0;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->max_new_tokens");
    c.max_new_tokens = 8;
    c.n_stop = 2;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->stop_ids");
    c.n_stop = 0;
    c.seed_scope = 2;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->seed_scope");
    c.seed_scope = -1;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->seed_scope");
    c.seed_scope = SEGRL_ROLLOUT_SEED_PROMPT;
    c.prompt_base = -1;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->prompt_base");
    c.prompt_base = INT64_MAX - 2; /* + 3 prompts overflows */
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->prompt_base");
    c.prompt_base = INT64_MAX - 3; /* the last prompt is INT64_MAX - 1: fine */
    {
        segrl_rollout *ok = NULL;
        CHECK(segrl_rollout_init(&c, &p, score_cb, &sc, &ok) == SEGRL_OK && ok,
              "prompt_base INT64_MAX - 3: %s", segrl_last_error());
        segrl_rollout_free(ok);
    }
    c = segrl_rollout_config_default(SEGRL_ROLLOUT_GROUP);
    c.group_size = 2;
    c.max_new_tokens = 8;
    c = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_CHAIN);
    c.mc_samples = 0;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->mc_samples");
    c.mc_samples = 4;
    c.mc_adaptive = 1;
    c.mc_initial = 5;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->mc_initial");
    c.mc_initial = 2;
    c.mc_z = NAN;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->mc_z");
    c.mc_z = 2;
    c.mc_rule = 7;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->mc_rule");
    c.mc_rule = SEGRL_MC_RULE_WIDEST;
    c.cutpoints.k = 0;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->cutpoints.k");
    c.cutpoints.k = 5;
    c.cutpoints.tau = INFINITY;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->cutpoints.tau");
    c = segrl_rollout_config_default(SEGRL_ROLLOUT_VINEPPO);
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->delimiters");
    c = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_TREE);
    c.tree_levels = 0;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->tree_levels");
    c.tree_levels = 17;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->tree_levels");
    c.tree_levels = 3;
    c.branching[1] = 0;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->branching[1]");
    c.branching[1] = 6;
    c.segment_len[0] = 0;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->segment_len[0]");
    c.segment_len[0] = 30;
    c.tree_episodes.include_prefix = 0;
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, &r), "config->tree_episodes.include_prefix");
    c = segrl_rollout_config_default(SEGRL_ROLLOUT_GROUP);
    EXPECT_ERR(segrl_rollout_init(&c, NULL, score_cb, &sc, &r), "prompts");
    segrl_rollout_prompts bp = p;
    bp.num_prompts = 0;
    EXPECT_ERR(segrl_rollout_init(&c, &bp, score_cb, &sc, &r), "prompts->num_prompts");
    int64_t boff[4] = {0, 3, 2, 6};
    bp = p;
    bp.offsets = boff;
    EXPECT_ERR(segrl_rollout_init(&c, &bp, score_cb, &sc, &r), "prompts->offsets");
    int32_t btok[6] = {1, 2, 3, -4, 5, 6};
    bp = p;
    bp.tokens = btok;
    EXPECT_ERR(segrl_rollout_init(&c, &bp, score_cb, &sc, &r), "prompts->tokens");
    EXPECT_ERR(segrl_rollout_init(&c, &p, NULL, &sc, &r), "score");
    EXPECT_ERR(segrl_rollout_init(&c, &p, score_cb, &sc, NULL), "out");
    CHECK(r == guard, "failed inits wrote *out");
}

/* Errors in put / advance / the callbacks leave the driver unchanged: after them the run goes on
 * and gives exactly the clean run's batch. */
static void check_bad_driving(void) {
    fake f = {1, 6, 50, 2, 0};
    scorer sc = {0, 0, 0};
    segrl_rollout_config c = segrl_rollout_config_default(SEGRL_ROLLOUT_SPO_CHAIN);
    c.group_size = 2;
    c.max_new_tokens = 10;
    c.cutpoints.tau = 0.5f;
    c.cutpoints.k = 2;
    c.mc_samples = 2;
    segrl_rollout *clean = make(&c, &sc), *r = make(&c, &sc);
    if (!clean || !r) {
        segrl_rollout_free(clean);
        segrl_rollout_free(r);
        return;
    }
    fake f0 = f;
    CHECK(segrl_rollout_run(clean, gen_cb, &f0) == SEGRL_OK, "clean run");
    segrl_rollout_batch bc;
    segrl_rollout_batch_get(clean, &bc);
    segrl_rollout_batch b;
    EXPECT_ERR(segrl_rollout_batch_get(r, &b), "not done");
    EXPECT_ERR(segrl_rollout_tree_get(clean, (segrl_rollout_tree *)&b), "SPO_TREE");
    const segrl_gen_request *q;
    int64_t n;
    segrl_rollout_pending(r, &q, &n);
    CHECK(n == 3 && q[0].n == 2 && q[1].prompt_len == 3 && q[0].n_stop == 0, "pending: %lld", (long long)n);
    int32_t tok[16] = {5, 6, 7};
    float lp[16] = {-1, -1, -1};
    EXPECT_ERR(segrl_rollout_advance(r), "sample 0 of request 0 was not put");
    EXPECT_ERR(segrl_rollout_put(r, 3, 0, tok, lp, 3, 0), "request");
    EXPECT_ERR(segrl_rollout_put(r, -1, 0, tok, lp, 3, 0), "request");
    EXPECT_ERR(segrl_rollout_put(r, 0, 2, tok, lp, 3, 0), "sample");
    EXPECT_ERR(segrl_rollout_put(r, 0, 0, tok, lp, 11, 0), "len");
    EXPECT_ERR(segrl_rollout_put(r, 0, 0, NULL, lp, 3, 0), "tokens");
    EXPECT_ERR(segrl_rollout_put(r, 0, 0, tok, NULL, 3, 0), "logprobs");
    EXPECT_ERR(segrl_rollout_put(r, 0, 0, tok, lp, 3, 2), "finished");
    lp[1] = NAN;
    EXPECT_ERR(segrl_rollout_put(r, 0, 0, tok, lp, 3, 0), "logprobs: element 1");
    lp[1] = -1;
    tok[2] = -3;
    EXPECT_ERR(segrl_rollout_put(r, 0, 0, tok, lp, 3, 0), "tokens: element 2");
    /* the real samples, request 0 sample 0 twice */
    int32_t gt[MAXT];
    float gl[MAXT];
    int32_t fin;
    int64_t len = gen_one(&f, q[0].prefix, q[0].prefix_len, 0, q[0].seed, q[0].max_new_tokens, gt, gl, &fin);
    CHECK(segrl_rollout_put(r, 0, 0, gt, gl, len, fin) == SEGRL_OK, "put");
    EXPECT_ERR(segrl_rollout_put(r, 0, 0, gt, gl, len, fin), "already put");
    EXPECT_ERR(segrl_rollout_advance(r), "sample 1 of request 0 was not put");
    for (int64_t i = 0; i < n; i++)
        for (int32_t j = (i == 0); j < q[i].n; j++) {
            len = gen_one(&f, q[i].prefix, q[i].prefix_len, j, q[i].seed, q[i].max_new_tokens, gt, gl, &fin);
            segrl_rollout_put(r, i, j, gt, gl, len, fin);
        }
    /* the scoring callback fails, then returns NaN: the round stays pending, then goes on */
    sc.fail_next = 1;
    EXPECT_ERR(segrl_rollout_advance(r), "test_score: tokens: refused on purpose");
    sc.nan_next = 1;
    EXPECT_ERR(segrl_rollout_advance(r), "score: reward nan");
    CHECK(segrl_rollout_advance(r) == SEGRL_OK, "advance after callback errors: %s", segrl_last_error());
    /* a failing generator stops the run with its message */
    CHECK(segrl_rollout_run(r, NULL, NULL) == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "generate"),
          "run: NULL generate");
    CHECK(drive_rr(r, &f) == SEGRL_OK, "rest of the run: %s", segrl_last_error());
    segrl_rollout_batch_get(r, &b);
    CHECK(same_batch(&b, &bc), "errors changed the result");
    EXPECT_ERR(segrl_rollout_put(r, 0, 0, gt, gl, 1, 0), "done");
    EXPECT_ERR(segrl_rollout_advance(r), "done");
    segrl_rollout_pending(r, &q, &n);
    CHECK(n == 0 && q == NULL, "pending when done");
    EXPECT_ERR(segrl_rollout_pending(NULL, &q, &n), "r");
    EXPECT_ERR(segrl_rollout_put(NULL, 0, 0, gt, gl, 1, 0), "r");
    EXPECT_ERR(segrl_rollout_stats_get(r, NULL), "out");
    segrl_rollout_free(r);
    segrl_rollout_free(clean);
    segrl_rollout_free(NULL);
}

/* Allocation failures: an allocator that fails the k-th call. Every call either succeeds or
 * returns SEGRL_ERR_ALLOC and changes nothing (the retry with a working allocator gives the
 * clean result); every allocation is freed at the end. */
static int64_t a_count, a_fail_at, a_live;
static void *a_malloc(size_t n, void *u) {
    (void)u;
    if (a_count++ == a_fail_at) return NULL;
    a_live++;
    return malloc(n);
}
static void *a_realloc(void *p, size_t n, void *u) {
    (void)u;
    if (a_count++ == a_fail_at) return NULL;
    if (!p) a_live++;
    return realloc(p, n);
}
static void a_free(void *p, void *u) {
    (void)u;
    if (p) a_live--;
    free(p);
}

static void check_alloc_failures(int method) {
    segrl_rollout_config c = segrl_rollout_config_default(method);
    int32_t delim = DELIM;
    c.group_size = 2;
    c.max_new_tokens = 10;
    c.cutpoints.tau = 0.5f;
    c.cutpoints.k = 2;
    c.mc_samples = 2;
    c.mc_adaptive = method == SEGRL_ROLLOUT_SPO_CHAIN;
    c.mc_initial = 1;
    c.delimiters = &delim;
    c.n_delimiters = 1;
    c.branching[0] = 2, c.branching[1] = 2, c.branching[2] = 2;
    c.segment_len[0] = 3, c.segment_len[1] = 3;
    segrl_rollout_prompts p = prompts3();
    scorer sc = {0, 0, 0};
    fake f = {1, 6, 60, 2, 0};
    segrl_allocator al = {a_malloc, a_realloc, a_free, NULL};
    /* the clean run, counting allocations */
    a_fail_at = -1;
    a_count = a_live = 0;
    segrl_set_allocator(&al);
    segrl_rollout *clean = NULL;
    segrl_rollout_init(&c, &p, score_cb, &sc, &clean);
    drive_rr(clean, &f);
    int64_t total = a_count;
    segrl_rollout_batch bc;
    segrl_rollout_batch_get(clean, &bc);
    int64_t failures = 0, bad = 0;
    for (int64_t k = 0; k < total; k++) {
        a_fail_at = k;
        a_count = 0;
        int64_t live0 = a_live;
        segrl_rollout *r = NULL;
        segrl_status st = segrl_rollout_init(&c, &p, score_cb, &sc, &r);
        if (st == SEGRL_ERR_ALLOC) {
            failures++;
            if (r != NULL || a_live != live0) bad++;
            st = segrl_rollout_init(&c, &p, score_cb, &sc, &r);
        }
        int32_t tok[MAXT];
        float lp[MAXT];
        while (st == SEGRL_OK && !segrl_rollout_done(r)) {
            const segrl_gen_request *q;
            int64_t n;
            segrl_rollout_pending(r, &q, &n);
            for (int64_t i = 0; i < n && !st; i++)
                for (int32_t j = 0; j < q[i].n && !st; j++) {
                    int32_t fin;
                    int64_t len = gen_one(&f, q[i].prefix, q[i].prefix_len, j, q[i].seed,
                                          q[i].max_new_tokens, tok, lp, &fin);
                    st = segrl_rollout_put(r, i, j, tok, lp, len, fin);
                    if (st == SEGRL_ERR_ALLOC) {
                        failures++;
                        st = segrl_rollout_put(r, i, j, tok, lp, len, fin);
                    }
                }
            if (st) break;
            st = segrl_rollout_advance(r);
            if (st == SEGRL_ERR_ALLOC) {
                failures++;
                st = segrl_rollout_advance(r);
            }
        }
        segrl_rollout_batch b;
        if (st != SEGRL_OK || segrl_rollout_batch_get(r, &b) != SEGRL_OK || !same_batch(&b, &bc)) {
            if (bad < 3) printf("  fail at allocation %lld: %d %s\n", (long long)k, st, segrl_last_error());
            bad++;
        }
        segrl_rollout_free(r);
        if (a_live != live0) bad++;
    }
    segrl_rollout_free(clean);
    int64_t leaked = a_live;
    segrl_set_allocator(NULL);
    CHECK(bad == 0 && leaked == 0 && failures == total,
          "method %d: allocation failures: %lld bad of %lld (%lld reported), %lld leaked", method,
          (long long)bad, (long long)total, (long long)failures, (long long)leaked);
    printf("allocation failures, method %d: each of %lld allocations failed once, all recovered\n",
           method, (long long)total);
}

int main(void) {
    check_chain_by_hand();
    check_mc_method(0);
    check_mc_method(1);
    check_tree(3, 2, 2, 4, 3, 0);
    check_tree(3, 2, 2, 4, 3, 1);
    check_tree(6, 6, 6, 3, 3, 0);
    check_tree_request_ids();
    for (int m = SEGRL_ROLLOUT_GROUP; m <= SEGRL_ROLLOUT_VINEPPO; m++) check_forms(m, 0);
    check_forms(SEGRL_ROLLOUT_SPO_CHAIN, 1);
    check_forms(SEGRL_ROLLOUT_VINEPPO, 1);
    check_data_parallel();
    check_replay();
    check_bad_init();
    check_bad_driving();
    for (int m = SEGRL_ROLLOUT_GROUP; m <= SEGRL_ROLLOUT_VINEPPO; m++) check_alloc_failures(m);
    check_adaptive();
    return h_finish();
}
