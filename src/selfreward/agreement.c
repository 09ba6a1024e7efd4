/* agreement.c — how good is a reward: pairwise accuracy on preference pairs (RewardBench, Lambert
 * et al. 2024, arXiv 2403.13787), rank correlation of two rewards (Spearman rho, Kendall tau-b)
 * and the STARC-style distance of two rewards on a fixed sample set (Skalse et al. 2023,
 * arXiv 2309.15257). */
#include "sr.h"

#include <math.h>
#include <stdlib.h>

static segrl_status finite_arr(const char *fn, const char *name, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: not finite at [%lld]", fn, name, (long long)i);
    return SEGRL_OK;
}

segrl_status segrl_pairwise_accuracy(const float *chosen, const float *rejected, int64_t n,
                                     const int32_t *subset, int32_t num_subsets,
                                     int64_t *out_correct, int64_t *out_ties, int64_t *out_total) {
    static const char *FN = "segrl_pairwise_accuracy";
    if (n < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: n: negative", FN);
    if (num_subsets < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: num_subsets: negative", FN);
    if (n > 0 && (!chosen || !rejected))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL", FN, chosen ? "rejected" : "chosen");
    if (!out_correct || !out_ties || !out_total)
        return sg_fail(SEGRL_ERR_INVALID, "%s: out_correct/out_ties/out_total: NULL", FN);
    if (subset && num_subsets == 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: num_subsets: 0 with a subset array", FN);
    SG_TRY(finite_arr(FN, "chosen", chosen, n));
    SG_TRY(finite_arr(FN, "rejected", rejected, n));
    if (subset)
        for (int64_t i = 0; i < n; i++)
            if (subset[i] < 0 || subset[i] >= num_subsets)
                return sg_fail(SEGRL_ERR_INVALID, "%s: subset: [%lld] = %d outside [0, %d)", FN,
                               (long long)i, (int)subset[i], (int)num_subsets);
    for (int32_t s = 0; s <= num_subsets; s++) out_correct[s] = out_ties[s] = out_total[s] = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t s = subset ? subset[i] : num_subsets;
        int right = chosen[i] > rejected[i], tie = chosen[i] == rejected[i];
        if (subset) out_correct[s] += right, out_ties[s] += tie, out_total[s]++;
        out_correct[num_subsets] += right, out_ties[num_subsets] += tie, out_total[num_subsets]++;
    }
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// rank correlation

typedef struct rk {
    float v;
    int64_t i;
} rk;

static int cmp_rk(const void *a, const void *b) {
    const rk *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* average ranks (1-based; ties share the mean of their positions) */
static void ranks(const float *x, int64_t n, rk *tmp, double *out) {
    for (int64_t i = 0; i < n; i++) tmp[i].v = x[i], tmp[i].i = i;
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_rk);
    for (int64_t a = 0; a < n;) {
        int64_t b = a;
        while (b + 1 < n && tmp[b + 1].v == tmp[a].v) b++;
        double r = 0.5 * (double)(a + b) + 1.0;
        for (int64_t k = a; k <= b; k++) out[tmp[k].i] = r;
        a = b + 1;
    }
}

static double pearson(const double *a, const double *b, int64_t n) {
    double ma = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) ma += a[i], mb += b[i];
    ma /= (double)n, mb /= (double)n;
    double sab = 0, saa = 0, sbb = 0;
    for (int64_t i = 0; i < n; i++) {
        double da = a[i] - ma, db = b[i] - mb;
        sab += da * db, saa += da * da, sbb += db * db;
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0.0;
}

segrl_status segrl_rank_correlation(const float *x, const float *y, int64_t n,
                                    double *out_spearman, double *out_kendall) {
    static const char *FN = "segrl_rank_correlation";
    if (n < 2) return sg_fail(SEGRL_ERR_INVALID, "%s: n: must be >= 2", FN);
    if (!x || !y) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL", FN, x ? "y" : "x");
    SG_TRY(finite_arr(FN, "x", x, n));
    SG_TRY(finite_arr(FN, "y", y, n));
    size_t bytes = (size_t)n * (sizeof(rk) + 2 * sizeof(double));
    void *mem = segrl_malloc(bytes);
    if (!mem) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory (%zu bytes)", FN, bytes);
    double *rx = mem, *ry = rx + n;
    rk *tmp = (rk *)(ry + n);
    ranks(x, n, tmp, rx);
    ranks(y, n, tmp, ry);
    double rho = pearson(rx, ry, n);
    segrl_free(mem);
    /* Kendall tau-b over all pairs: concordant, discordant, tied in x only, tied in y only */
    double C = 0, D = 0, Tx = 0, Ty = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++) {
            double dx = (double)x[i] - x[j], dy = (double)y[i] - y[j];
            if (dx == 0 && dy == 0) continue;
            if (dx == 0) Tx += 1;
            else if (dy == 0) Ty += 1;
            else if ((dx > 0) == (dy > 0)) C += 1;
            else D += 1;
        }
    double den = sqrt((C + D + Tx) * (C + D + Ty));
    double tau = den > 0 ? (C - D) / den : 0.0;
    if (out_spearman) *out_spearman = rho;
    if (out_kendall) *out_kendall = tau;
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// STARC-style distance

segrl_status segrl_starc_distance(const float *x, const float *y, int64_t n,
                                  double *out_distance) {
    static const char *FN = "segrl_starc_distance";
    if (n < 1) return sg_fail(SEGRL_ERR_INVALID, "%s: n: must be >= 1", FN);
    if (!x || !y) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: NULL", FN, x ? "y" : "x");
    if (!out_distance) return sg_fail(SEGRL_ERR_INVALID, "%s: out_distance: NULL", FN);
    SG_TRY(finite_arr(FN, "x", x, n));
    SG_TRY(finite_arr(FN, "y", y, n));
    /* canonicalize: c(r) = r - mean(r); normalize: c / ||c||_2 (0 stays 0); metric: L2 */
    double mx = 0, my = 0;
    for (int64_t i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= (double)n, my /= (double)n;
    double nx = 0, ny = 0;
    for (int64_t i = 0; i < n; i++) {
        nx += (x[i] - mx) * (x[i] - mx);
        ny += (y[i] - my) * (y[i] - my);
    }
    nx = sqrt(nx), ny = sqrt(ny);
    double d2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = nx > 0 ? (x[i] - mx) / nx : 0.0, b = ny > 0 ? (y[i] - my) / ny : 0.0;
        d2 += (a - b) * (a - b);
    }
    *out_distance = sqrt(d2);
    return SEGRL_OK;
}
