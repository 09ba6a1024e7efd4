/* fuzz-tree — rollout-tree descriptors: fuzzed parents, spans, depths, leaf rewards (NaN and
 * Inf included) and num_tokens through every tree call (values, advantages, episode size query
 * and expansion, ReST-MCTS* targets). Checked: no crash; outputs written only on success (guard
 * values); finite outputs; the expansion writes exactly what the size query announced. */
#include "fuzz_reader.h"
#include "fuzz_util.h"

#include <segrl/tree.h>

#define GUARD (-7777.0f)
enum { MAXM = 48 };

static int all_guard(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (x[i] != GUARD) return 0;
    return 1;
}
static int all_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}
static int moderate_values(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!(fabsf(x[i]) <= 1e6f)) return 0;
    return 1;
}
static void fill(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = GUARD;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reader r = {data, size, 0};
    uint8_t hdr = fz_u8(&r);
    int64_t M = fz_u8(&r) % (MAXM + 1);
    int wide = hdr & 1;            /* i64 index views */
    int with_spans = (hdr >> 1) & 1;
    int with_depth = (hdr >> 2) & 1;
    int64_t parent[MAXM], ss[MAXM], se[MAXM], depth[MAXM];
    int32_t parent32[MAXM], ss32[MAXM], se32[MAXM], depth32[MAXM];
    float reward[MAXM];
    int64_t pos = 0;
    for (int64_t i = 0; i < M; i++) {
        uint8_t b = fz_u8(&r);
        /* mostly well-formed: parent among the earlier nodes; sometimes anything */
        if (b >= 240) parent[i] = fz_index(&r);
        else parent[i] = (i == 0 || b % 5 == 0) ? -1 : (int64_t)(b % i);
        uint8_t len = fz_u8(&r);
        if (len >= 240) {
            ss[i] = fz_index(&r), se[i] = fz_index(&r);
        } else {
            ss[i] = pos, se[i] = pos + len % 6;
            pos = se[i];
        }
        depth[i] = parent[i] < 0 || parent[i] >= i || depth[parent[i]] > 1000 ? 0 : depth[parent[i]] + 1;
        if (fz_u8(&r) == 7) depth[i] = fz_index(&r);
        reward[i] = fz_float(&r);
        parent32[i] = (int32_t)parent[i], ss32[i] = (int32_t)ss[i], se32[i] = (int32_t)se[i];
        depth32[i] = (int32_t)depth[i];
    }
    int64_t num_tokens = pos;
    if (hdr & 8) num_tokens = fz_index(&r);
    segrl_device cpu = segrl_cpu();
    segrl_dtype it = wide ? SEGRL_DTYPE_I64 : SEGRL_DTYPE_I32;
    segrl_tree t = {0};
    t.parent = segrl_view_1d(wide ? (void *)parent : (void *)parent32, it, cpu, M);
    t.span_start = with_spans ? segrl_view_1d(wide ? (void *)ss : (void *)ss32, it, cpu, M)
                              : segrl_view_none();
    t.span_end = with_spans ? segrl_view_1d(wide ? (void *)se : (void *)se32, it, cpu, M)
                            : segrl_view_none();
    t.num_tokens = num_tokens;
    t.leaf_reward = segrl_view_1d(reward, SEGRL_DTYPE_F32, cpu, M);
    t.depth = with_depth ? segrl_view_1d(wide ? (void *)depth : (void *)depth32, it, cpu, M)
                         : segrl_view_none();

    size_t wsb = 0;
    if (segrl_tree_workspace_size(cpu, M, &wsb) != SEGRL_OK) abort();
    void *ws = aligned_alloc(16, wsb + 16);
    segrl_exec ex = {.workspace = ws, .workspace_bytes = wsb, .checks = SEGRL_CHECKS_FULL};

    float values[MAXM + 1], adv[MAXM + 1], ladv[MAXM + 1], nmask[MAXM + 1];
    int64_t counts[MAXM + 1];
    int32_t kind = fz_u8(&r) % 3;
    fill(values, M + 1);
    segrl_status st = segrl_tree_values(&t, kind, &ex, segrl_view_1d(values, SEGRL_DTYPE_F32, cpu, M),
                                        segrl_view_1d(counts, SEGRL_DTYPE_I64, cpu, M));
    if (st != SEGRL_OK) {
        if (!all_guard(values, M + 1)) abort();
        for (int64_t i = 0; i < M; i++) values[i] = fz_float(&r); /* caller's own estimate */
    } else if (!all_finite(values, M) || values[M] != GUARD) {
        abort();
    }

    segrl_tree_adv_opts ao = segrl_tree_adv_opts_default();
    ao.kind = fz_u8(&r) % 3;
    ao.drop_zero = fz_u8(&r) & 1;
    if (fz_u8(&r) == 9) ao.eps = fz_float(&r);
    fill(adv, M + 1), fill(ladv, M + 1), fill(nmask, M + 1);
    st = segrl_tree_advantages(&t, segrl_view_1d(values, SEGRL_DTYPE_F32, cpu, M), &ao, &ex,
                               segrl_view_1d(adv, SEGRL_DTYPE_F32, cpu, M),
                               segrl_view_1d(ladv, SEGRL_DTYPE_F32, cpu, M),
                               segrl_view_1d(nmask, SEGRL_DTYPE_F32, cpu, M));
    if (st != SEGRL_OK) {
        if (!all_guard(adv, M + 1) || !all_guard(ladv, M + 1) || !all_guard(nmask, M + 1)) abort();
        for (int64_t i = 0; i < M; i++) adv[i] = fz_float(&r), ladv[i] = 0, nmask[i] = 1;
    } else if (adv[M] != GUARD ||
               (moderate_values(values, M) && ao.eps >= 1e-6f &&
                (!all_finite(adv, M) || !all_finite(ladv, M)))) {
        /* finite advantages when values are moderate (|V| <= 1e6) and eps >= 1e-6: a value
         * difference of two finite 3e38 overflows as IEEE arithmetic gives */
        fprintf(stderr, "advantages: kind %d eps %g\n", ao.kind, ao.eps);
        for (int64_t k = 0; k < M; k++) fprintf(stderr, "%g/%g/%g ", values[k], adv[k], ladv[k]);
        abort();
    }

    segrl_tree_episode_opts eo = segrl_tree_episode_opts_default();
    eo.kind = fz_u8(&r) % 2;
    eo.include_prefix = fz_u8(&r) & 1;
    eo.traj_weight = (fz_u8(&r) % 4) / 3.0f;
    eo.rose = fz_u8(&r) & 1;
    if (fz_u8(&r) == 3) eo.rose_lambda = fz_float(&r);
    eo.correct_threshold = fz_float(&r);
    int64_t E = -5, N = -5;
    st = segrl_tree_episodes_size(&t, segrl_view_1d(nmask, SEGRL_DTYPE_F32, cpu, M), &eo, &ex, &E, &N);
    if (st != SEGRL_OK) {
        if (E != -5 || N != -5) abort();
    } else if (E >= 0 && N >= 0 && E < 100000 && N < 1000000) {
        int64_t *off = malloc(sizeof(int64_t) * (size_t)(E + 2));
        int64_t *tix = malloc(sizeof(int64_t) * (size_t)(N + 1));
        float *tadv = malloc(sizeof(float) * (size_t)(N + 1));
        float *tmask = malloc(sizeof(float) * (size_t)(N + 1));
        int64_t *enode = malloc(sizeof(int64_t) * (size_t)(E + 1));
        fill(tadv, N + 1);
        st = segrl_tree_episodes(&t, segrl_view_1d(adv, SEGRL_DTYPE_F32, cpu, M),
                                 segrl_view_1d(ladv, SEGRL_DTYPE_F32, cpu, M),
                                 segrl_view_1d(nmask, SEGRL_DTYPE_F32, cpu, M), &eo, &ex,
                                 segrl_view_1d(off, SEGRL_DTYPE_I64, cpu, E + 1),
                                 segrl_view_1d(tix, SEGRL_DTYPE_I64, cpu, N),
                                 segrl_view_1d(tadv, SEGRL_DTYPE_F32, cpu, N),
                                 segrl_view_1d(tmask, SEGRL_DTYPE_F32, cpu, N),
                                 segrl_view_1d(enode, SEGRL_DTYPE_I64, cpu, E));
        if (st == SEGRL_OK) {
            /* finite outputs when the advantages are moderate (|A| <= 1e6): ROSE's shaping of a
             * finite 3e38 may overflow, as IEEE arithmetic gives */
            int moderate = 1;
            for (int64_t k = 0; k < M; k++)
                moderate &= fabsf(adv[k]) <= 1e6f && fabsf(ladv[k]) <= 1e6f;
            if (off[0] != 0 || off[E] != N || (moderate && !all_finite(tadv, N)) || tadv[N] != GUARD) {
                fprintf(stderr, "episodes: E %lld N %lld off[E] %lld kind %d w %g rose %d lambda %g\n",
                        (long long)E, (long long)N, (long long)off[E], eo.kind, eo.traj_weight,
                        eo.rose, eo.rose_lambda);
                for (int64_t k = 0; k < N; k++) fprintf(stderr, "%g ", tadv[k]);
                fprintf(stderr, "\nadv: ");
                for (int64_t k = 0; k < M; k++) fprintf(stderr, "%g/%g ", adv[k], ladv[k]);
                abort();
            }
            for (int64_t k = 0; k < N; k++)
                if (tix[k] < 0 || tix[k] >= t.num_tokens) abort();
        } else if (!all_guard(tadv, N + 1)) {
            abort();
        }
        free(off), free(tix), free(tadv), free(tmask), free(enode);
    }

    fill(values, M + 1);
    float thr = fz_float(&r), v0 = fz_float(&r);
    st = segrl_tree_rest_values(&t, thr, v0, &ex, segrl_view_1d(values, SEGRL_DTYPE_F32, cpu, M));
    if (st != SEGRL_OK ? !all_guard(values, M + 1) : (!all_finite(values, M) || values[M] != GUARD)) {
        fprintf(stderr, "rest_values: status %d thr %g v0 %g: %s\n", (int)st, thr, v0,
                segrl_last_error());
        for (int64_t i = 0; i < M + 1; i++) fprintf(stderr, "%g ", values[i]);
        abort();
    }
    free(ws);
    return 0;
}
