/* test-torch-train.c — the training utilities of libsegrl_torch (include/segrl/train.h), through
 * the C API only: schedules, clipping, AdamW against a double-precision reference written here,
 * bf16 parameters with f32 masters, gradient accumulation, non-finite steps, a linear
 * regression that must converge, and checkpoints (bit-identical resume, checksums, latest,
 * list / prune, the torch generator state). Gradients are put into the parameters the way
 * autograd would: backward of the leaf itself with the gradient as the upstream gradient. */
#define _GNU_SOURCE /* mkdtemp */
#include "harness.h"

#include "segrl/torch.h"
#include "segrl/train.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define PI 3.14159265358979323846

// ----------------------------------------------------------------------------
// helpers

static segrl_tensor *make_param(const float *data, int32_t ndim, const int64_t *shape,
                                segrl_dtype dtype) {
    segrl_tensor *t = NULL;
    if (segrl_tensor_from_host(data, SEGRL_DTYPE_F32, ndim, shape, segrl_cpu(), &t) != SEGRL_OK) {
        printf("from_host: %s\n", segrl_last_error());
        exit(2);
    }
    if (dtype != SEGRL_DTYPE_F32) {
        segrl_tensor *c = NULL;
        if (segrl_tensor_to(t, dtype, segrl_cpu(), &c) != SEGRL_OK) exit(2);
        segrl_tensor_free(t);
        t = c;
    }
    if (segrl_tensor_set_requires_grad(t, 1) != SEGRL_OK) {
        printf("set_requires_grad: %s\n", segrl_last_error());
        exit(2);
    }
    return t;
}

/* adds `g` (f32 host, numel values) to p's accumulated gradient, as one backward would */
static void add_grad(segrl_tensor *p, const float *g) {
    int64_t shape[8];
    int32_t nd = 0;
    segrl_dtype dt;
    segrl_tensor_shape(p, 8, shape, &nd);
    segrl_tensor_dtype(p, &dt);
    segrl_tensor *t = NULL, *c = NULL;
    if (segrl_tensor_from_host(g, SEGRL_DTYPE_F32, nd, shape, segrl_cpu(), &t) != SEGRL_OK) exit(2);
    if (segrl_tensor_to(t, dt, segrl_cpu(), &c) != SEGRL_OK) exit(2);
    if (segrl_tensor_backward(p, c) != SEGRL_OK) {
        printf("backward: %s\n", segrl_last_error());
        exit(2);
    }
    segrl_tensor_free(t);
    segrl_tensor_free(c);
}

static int64_t numel(const segrl_tensor *t) {
    int64_t n = 0;
    segrl_tensor_numel(t, &n);
    return n;
}

/* the values as f32 (converted from the tensor's dtype) */
static void get_f32(const segrl_tensor *t, float *out) {
    segrl_tensor *c = NULL;
    if (segrl_tensor_to(t, SEGRL_DTYPE_F32, segrl_cpu(), &c) != SEGRL_OK) exit(2);
    if (segrl_tensor_to_host(c, out, (size_t)numel(t) * sizeof(float)) != SEGRL_OK) {
        printf("to_host: %s\n", segrl_last_error());
        exit(2);
    }
    segrl_tensor_free(c);
}

static void get_grad(const segrl_tensor *t, float *out) {
    segrl_tensor *g = NULL;
    segrl_tensor_grad(t, &g);
    if (!g) {
        memset(out, 0, (size_t)numel(t) * sizeof(float));
        return;
    }
    get_f32(g, out);
    segrl_tensor_free(g);
}

static int has_grad(const segrl_tensor *t) {
    segrl_tensor *g = NULL;
    segrl_tensor_grad(t, &g);
    segrl_tensor_free(g);
    return g != NULL;
}

/* the reference schedule, written from the formula of train.h */
static double ref_lr(const segrl_lr_schedule *s, double base, int64_t t) {
    if (s->kind == SEGRL_LR_CONSTANT) return base;
    if (t < s->warmup_steps) return base * (double)(t + 1) / (double)s->warmup_steps;
    if (s->kind == SEGRL_LR_WARMUP_CONSTANT) return base;
    double span = (double)(s->total_steps - s->warmup_steps);
    if (span < 1) span = 1;
    double p = (double)(t - s->warmup_steps) / span;
    if (p > 1) p = 1;
    return base * (s->min_ratio + (1 - s->min_ratio) * 0.5 * (1 + cos(PI * p)));
}

static int contains(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

// ----------------------------------------------------------------------------
// schedules

static void test_schedules(void) {
    segrl_lr_schedule s = {SEGRL_LR_WARMUP_COSINE, 10, 110, 0.1};
    double lr = 0;
    CHECK(segrl_lr_schedule_value(&s, 1e-3, 0, &lr) == SEGRL_OK && fabs(lr - 1e-4) < 1e-15,
          "cosine t=0: %g", lr);
    segrl_lr_schedule_value(&s, 1e-3, 9, &lr);
    CHECK(fabs(lr - 1e-3) < 1e-15, "cosine end of warmup: %g", lr);
    segrl_lr_schedule_value(&s, 1e-3, 10, &lr);
    CHECK(fabs(lr - 1e-3) < 1e-15, "cosine start: %g", lr);
    segrl_lr_schedule_value(&s, 1e-3, 60, &lr); /* half way: r + (1-r)/2 */
    CHECK(fabs(lr - 1e-3 * 0.55) < 1e-15, "cosine half way: %g", lr);
    segrl_lr_schedule_value(&s, 1e-3, 110, &lr);
    CHECK(fabs(lr - 1e-4) < 1e-15, "cosine end: %g", lr);
    segrl_lr_schedule_value(&s, 1e-3, 100000, &lr);
    CHECK(fabs(lr - 1e-4) < 1e-15, "cosine after the end: %g", lr);
    int bad = 0;
    for (int64_t t = 0; t < 130; t++) {
        segrl_lr_schedule_value(&s, 2.5e-4, t, &lr);
        if (fabs(lr - ref_lr(&s, 2.5e-4, t)) > 1e-18) bad++;
    }
    CHECK(bad == 0, "cosine: %d steps differ from the reference", bad);

    segrl_lr_schedule c = {SEGRL_LR_WARMUP_CONSTANT, 4, 0, 0};
    segrl_lr_schedule_value(&c, 1.0, 1, &lr);
    CHECK(lr == 0.5, "warmup_constant t=1: %g", lr);
    segrl_lr_schedule_value(&c, 1.0, 1000, &lr);
    CHECK(lr == 1.0, "warmup_constant late: %g", lr);
    segrl_lr_schedule k = {SEGRL_LR_CONSTANT, 0, 0, 0};
    segrl_lr_schedule_value(&k, 0.3, 7, &lr);
    CHECK(lr == 0.3, "constant: %g", lr);
    segrl_lr_schedule z = {SEGRL_LR_WARMUP_COSINE, 0, 0, 0.0}; /* no warmup, T = W: at the floor */
    segrl_lr_schedule_value(&z, 1.0, 0, &lr);
    CHECK(lr == 1.0, "cosine W=T=0 at t=0: %g", lr);
    segrl_lr_schedule_value(&z, 1.0, 1, &lr);
    CHECK(lr == 0.0, "cosine W=T=0 at t=1: %g", lr);

    segrl_lr_schedule b = {SEGRL_LR_WARMUP_COSINE, 10, 5, 0.1};
    lr = -1;
    CHECK(segrl_lr_schedule_value(&b, 1.0, 0, &lr) == SEGRL_ERR_INVALID && lr == -1 &&
              contains(segrl_last_error(), "total_steps"),
          "T < W rejected: %s", segrl_last_error());
    b = s;
    b.min_ratio = 1.5;
    CHECK(segrl_lr_schedule_value(&b, 1.0, 0, &lr) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "min_ratio"),
          "min_ratio rejected: %s", segrl_last_error());
    b = s;
    b.kind = 9;
    CHECK(segrl_lr_schedule_value(&b, 1.0, 0, &lr) == SEGRL_ERR_INVALID, "bad kind rejected");
    CHECK(segrl_lr_schedule_value(&s, 1.0, -1, &lr) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "step"),
          "negative step rejected");
    CHECK(segrl_lr_schedule_value(&s, NAN, 0, &lr) == SEGRL_ERR_INVALID, "NaN base rejected");
}

// ----------------------------------------------------------------------------
// clipping

static void test_clip(void) {
    int64_t s2[2] = {3, 4}, s1[1] = {5};
    float a[12], b[5], ga[12], gb[5];
    for (int i = 0; i < 12; i++) a[i] = h_normal(), ga[i] = h_normal();
    for (int i = 0; i < 5; i++) b[i] = h_normal(), gb[i] = h_normal();
    segrl_tensor *pa = make_param(a, 2, s2, SEGRL_DTYPE_F32);
    segrl_tensor *pb = make_param(b, 1, s1, SEGRL_DTYPE_F32);
    segrl_tensor *pc = make_param(b, 1, s1, SEGRL_DTYPE_F32); /* never gets a gradient */
    add_grad(pa, ga);
    add_grad(pb, gb);
    double want = 0;
    for (int i = 0; i < 12; i++) want += (double)ga[i] * ga[i];
    for (int i = 0; i < 5; i++) want += (double)gb[i] * gb[i];
    want = sqrt(want);
    segrl_tensor *ps[3] = {pa, pb, pc};
    double norm = 0;
    CHECK(segrl_clip_grad_norm(ps, 3, 0.0, &norm) == SEGRL_OK && fabs(norm - want) < 1e-5 * want,
          "norm %g want %g", norm, want);
    float got[12];
    get_grad(pa, got);
    CHECK(memcmp(got, ga, sizeof ga) == 0, "max_norm 0 only measures");
    CHECK(!has_grad(pc), "a parameter without gradient stays without");
    CHECK(segrl_clip_grad_norm(ps, 3, want * 2, &norm) == SEGRL_OK, "clip above the norm");
    get_grad(pa, got);
    CHECK(memcmp(got, ga, sizeof ga) == 0, "a norm under max_norm is not scaled");
    double max_norm = want / 3;
    CHECK(segrl_clip_grad_norm(ps, 3, max_norm, &norm) == SEGRL_OK && fabs(norm - want) < 1e-5 * want,
          "pre-clip norm returned: %g", norm);
    double coef = max_norm / (want + 1e-6), ref[12];
    for (int i = 0; i < 12; i++) ref[i] = ga[i] * coef;
    get_grad(pa, got);
    h_close_f("clipped grad", got, ref, 12, 1e-6, 1e-5);
    CHECK(segrl_clip_grad_norm(ps, 3, 0.0, &norm) == SEGRL_OK && fabs(norm - max_norm) < 1e-5 * max_norm,
          "norm after clipping %g want %g", norm, max_norm);

    /* an inf gradient: the norm says so, nothing is scaled */
    float gi[5] = {1, 2, INFINITY, 3, 4}, gbk[5];
    get_grad(pb, gbk);
    segrl_tensor *pd = make_param(b, 1, s1, SEGRL_DTYPE_F32);
    add_grad(pd, gi);
    segrl_tensor *ps2[2] = {pb, pd};
    CHECK(segrl_clip_grad_norm(ps2, 2, 1.0, &norm) == SEGRL_OK && isinf(norm), "inf norm: %g", norm);
    float after[5];
    get_grad(pb, after);
    CHECK(memcmp(after, gbk, sizeof after) == 0, "non-finite norm: gradients untouched");
    float gn[5] = {1, NAN, 0, 0, 0};
    segrl_tensor *pe = make_param(b, 1, s1, SEGRL_DTYPE_F32);
    add_grad(pe, gn);
    CHECK(segrl_clip_grad_norm(&pe, 1, 1.0, &norm) == SEGRL_OK && isnan(norm), "nan norm: %g", norm);

    segrl_tensor *nul[2] = {pa, NULL};
    CHECK(segrl_clip_grad_norm(nul, 2, 1.0, &norm) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "params[1]"),
          "NULL parameter named: %s", segrl_last_error());
    CHECK(segrl_clip_grad_norm(ps, 3, 1.0, NULL) == SEGRL_ERR_INVALID, "NULL out_norm");
    segrl_tensor_free(pa);
    segrl_tensor_free(pb);
    segrl_tensor_free(pc);
    segrl_tensor_free(pd);
    segrl_tensor_free(pe);
}

// ----------------------------------------------------------------------------
// AdamW against a double-precision reference

typedef struct ref_param {
    int64_t n;
    double *p, *m, *v;
    int decay;
} ref_param;

/* one reference AdamW update with gradient g (already divided and clipped) */
static void ref_adamw(ref_param *r, const double *g, const segrl_adamw_config *c, double lr, int64_t t) {
    double bc1 = 1 - pow(c->beta1, (double)t), bc2 = 1 - pow(c->beta2, (double)t);
    for (int64_t i = 0; i < r->n; i++) {
        if (r->decay) r->p[i] *= 1 - lr * c->weight_decay;
        r->m[i] = c->beta1 * r->m[i] + (1 - c->beta1) * g[i];
        r->v[i] = c->beta2 * r->v[i] + (1 - c->beta2) * g[i] * g[i];
        r->p[i] -= (lr / bc1) * r->m[i] / (sqrt(r->v[i]) / sqrt(bc2) + c->eps);
    }
}

static void test_adamw_reference(void) {
    enum { NP = 3, STEPS = 8 };
    int64_t shapes[NP][2] = {{4, 6}, {6, 0}, {3, 5}};
    int32_t ndims[NP] = {2, 1, 2};
    int64_t ns[NP] = {24, 6, 15};
    segrl_tensor *ps[NP];
    ref_param ref[NP];
    for (int k = 0; k < NP; k++) {
        float init[24];
        ref[k].n = ns[k];
        ref[k].p = calloc((size_t)ns[k], sizeof(double));
        ref[k].m = calloc((size_t)ns[k], sizeof(double));
        ref[k].v = calloc((size_t)ns[k], sizeof(double));
        ref[k].decay = ndims[k] >= 2; /* decay_1d = 0 */
        for (int64_t i = 0; i < ns[k]; i++) init[i] = h_normal(), ref[k].p[i] = init[i];
        ps[k] = make_param(init, ndims[k], shapes[k], SEGRL_DTYPE_F32);
    }
    segrl_adamw_config c = segrl_adamw_default();
    c.lr = 3e-2;
    c.weight_decay = 0.1;
    c.max_grad_norm = 2.0; /* active on some steps (gradient scales vary below) */
    c.schedule = (segrl_lr_schedule){SEGRL_LR_WARMUP_COSINE, 3, STEPS, 0.2};
    const char *names[NP] = {"a.weight", "norm.weight", "b.weight"};
    segrl_optimizer *opt = NULL;
    CHECK(segrl_adamw_create(ps, names, NP, &c, &opt) == SEGRL_OK, "create: %s", segrl_last_error());
    if (!opt) return;
    CHECK(segrl_optimizer_count(opt) == NP, "count");
    int clipped_steps = 0, worst_bad = 0;
    double worst = 0;
    for (int64_t t = 1; t <= STEPS; t++) {
        segrl_optimizer_zero_grad(opt);
        double divisor = t % 2 ? 1.0 : 4.0;
        double scale = (t % 3 == 0) ? 5.0 : 0.3; /* some steps above max_grad_norm */
        double *g[NP], sq = 0;
        for (int k = 0; k < NP; k++) {
            float gf[24];
            g[k] = calloc((size_t)ns[k], sizeof(double));
            for (int64_t i = 0; i < ns[k]; i++) gf[i] = (float)(scale * h_normal());
            add_grad(ps[k], gf);
            for (int64_t i = 0; i < ns[k]; i++) {
                g[k][i] = gf[i] / divisor;
                sq += g[k][i] * g[k][i];
            }
        }
        double norm = sqrt(sq), clip = c.max_grad_norm / (norm + 1e-6);
        if (clip > 1) clip = 1;
        double lr = ref_lr(&c.schedule, c.lr, t - 1);
        CHECK(fabs(segrl_optimizer_lr(opt) - lr) < 1e-15, "next lr at %lld", (long long)t);
        for (int k = 0; k < NP; k++) {
            for (int64_t i = 0; i < ns[k]; i++) g[k][i] *= clip;
            ref_adamw(&ref[k], g[k], &c, lr, t);
            free(g[k]);
        }
        segrl_step_info info;
        CHECK(segrl_optimizer_step(opt, divisor, &info) == SEGRL_OK, "step: %s", segrl_last_error());
        CHECK(fabs(info.grad_norm - norm) < 1e-5 * norm && info.step == t && !info.skipped &&
                  fabs(info.lr - lr) < 1e-15 && info.clipped == (clip < 1),
              "step %lld info: norm %g/%g lr %g/%g clipped %d", (long long)t, info.grad_norm, norm,
              info.lr, lr, info.clipped);
        clipped_steps += info.clipped;
        for (int k = 0; k < NP; k++) {
            float got[24];
            get_f32(ps[k], got);
            for (int64_t i = 0; i < ns[k]; i++) {
                double d = fabs(got[i] - ref[k].p[i]);
                if (d > worst) worst = d;
                if (d > 2e-6 + 2e-5 * fabs(ref[k].p[i])) worst_bad++;
            }
        }
    }
    CHECK(worst_bad == 0, "AdamW vs double reference: %d values off (max abs diff %.3g)", worst_bad, worst);
    printf("  AdamW vs f64 reference, %d steps: max abs diff %.3g (%d steps clipped)\n", STEPS, worst,
           clipped_steps);
    CHECK(clipped_steps > 0 && clipped_steps < STEPS, "clipping was active on some steps only");
    CHECK(segrl_optimizer_steps(opt) == STEPS, "steps");
    for (int k = 0; k < NP; k++) {
        segrl_tensor *m = NULL, *v = NULL;
        CHECK(segrl_optimizer_moments(opt, k, &m, &v) == SEGRL_OK, "moments");
        float mf[24], vf[24];
        get_f32(m, mf);
        get_f32(v, vf);
        h_close_f("exp_avg", mf, ref[k].m, ns[k], 1e-7, 1e-5);
        h_close_f("exp_avg_sq", vf, ref[k].v, ns[k], 1e-9, 1e-5);
        segrl_tensor_free(m);
        segrl_tensor_free(v);
        free(ref[k].p), free(ref[k].m), free(ref[k].v);
    }
    segrl_tensor *m = NULL;
    CHECK(segrl_optimizer_moments(opt, NP, &m, NULL) == SEGRL_ERR_INVALID && !m, "index out of range");

    /* a step without any gradient changes nothing but the count */
    float before[24], after[24];
    segrl_optimizer_zero_grad(opt);
    CHECK(!has_grad(ps[0]), "zero_grad drops the gradient");
    get_f32(ps[0], before);
    segrl_step_info info;
    CHECK(segrl_optimizer_step(opt, 1.0, &info) == SEGRL_OK && info.grad_norm == 0, "empty step");
    get_f32(ps[0], after);
    CHECK(memcmp(before, after, sizeof(float) * 24) == 0, "no gradient: parameter unchanged");
    CHECK(segrl_optimizer_step(opt, 0.0, &info) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "grad_divisor"),
          "grad_divisor 0 rejected");
    segrl_optimizer_free(opt);

    /* argument checks */
    segrl_adamw_config bad = segrl_adamw_default();
    bad.beta2 = 1.0;
    CHECK(segrl_adamw_create(ps, names, NP, &bad, &opt) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "beta2"),
          "beta2 1 rejected: %s", segrl_last_error());
    const char *dup[NP] = {"x", "y", "x"};
    c = segrl_adamw_default();
    CHECK(segrl_adamw_create(ps, dup, NP, &c, &opt) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "names[2]"),
          "duplicate names rejected: %s", segrl_last_error());
    segrl_tensor *twice[2] = {ps[0], ps[0]};
    CHECK(segrl_adamw_create(twice, NULL, 2, &c, &opt) == SEGRL_ERR_INVALID, "one tensor twice rejected");
    int64_t s1[1] = {3};
    float z[3] = {0};
    segrl_tensor *nograd = NULL;
    segrl_tensor_from_host(z, SEGRL_DTYPE_F32, 1, s1, segrl_cpu(), &nograd);
    CHECK(segrl_adamw_create(&nograd, NULL, 1, &c, &opt) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "require"),
          "no requires_grad rejected: %s", segrl_last_error());
    segrl_tensor_free(nograd);
    for (int k = 0; k < NP; k++) segrl_tensor_free(ps[k]);
}

// ----------------------------------------------------------------------------
// bf16 parameters, f32 masters

static void test_bf16_master(void) {
    int64_t s1[1] = {64};
    float ones[64];
    for (int i = 0; i < 64; i++) ones[i] = 1.0f + (float)i / 64.0f * 0.0f;
    segrl_tensor *pm = make_param(ones, 1, s1, SEGRL_DTYPE_BF16);
    segrl_tensor *pn = make_param(ones, 1, s1, SEGRL_DTYPE_BF16);
    segrl_adamw_config c = segrl_adamw_default();
    c.lr = 1e-4; /* Adam moves ~lr per step: 1e-4 is far under bf16's spacing 2^-7 at 1.0 */
    c.weight_decay = 0;
    c.max_grad_norm = 0;
    segrl_optimizer *om = NULL, *on = NULL;
    CHECK(segrl_adamw_create(&pm, NULL, 1, &c, &om) == SEGRL_OK, "bf16 create");
    c.master_weights = 0;
    CHECK(segrl_adamw_create(&pn, NULL, 1, &c, &on) == SEGRL_OK, "bf16 create without masters");
    float g[64];
    for (int i = 0; i < 64; i++) g[i] = 1.0f; /* constant gradient: every step moves -lr */
    for (int t = 0; t < 200; t++) {
        segrl_optimizer_zero_grad(om);
        segrl_optimizer_zero_grad(on);
        add_grad(pm, g);
        add_grad(pn, g);
        segrl_optimizer_step(om, 1.0, NULL);
        segrl_optimizer_step(on, 1.0, NULL);
    }
    float vm[64], vn[64];
    get_f32(pm, vm);
    get_f32(pn, vn);
    /* f32 master: 1 - 200 * 1e-4 = 0.98, rounded to bf16 (spacing 2^-8 under 1) */
    CHECK(fabsf(vm[0] - 0.98f) <= 0.004f, "bf16 with master weights: %g, want ~0.98", vm[0]);
    CHECK(vn[0] == 1.0f, "bf16 without master weights: the updates round away (%g)", vn[0]);
    segrl_dtype dt;
    segrl_tensor_dtype(pm, &dt);
    CHECK(dt == SEGRL_DTYPE_BF16, "the parameter stays bf16");
    segrl_optimizer_free(om);
    segrl_optimizer_free(on);
    segrl_tensor_free(pm);
    segrl_tensor_free(pn);
}

// ----------------------------------------------------------------------------
// gradient accumulation; non-finite steps

static void test_accumulation(void) {
    enum { N = 40, K = 4 };
    int64_t s1[1] = {N};
    float init[N], g[K][N];
    for (int i = 0; i < N; i++) init[i] = h_normal();
    for (int k = 0; k < K; k++)
        for (int i = 0; i < N; i++) g[k][i] = h_normal() * 3; /* token-sum gradient of micro-batch k */
    const double tokens = 123; /* the full batch's normalizer */
    segrl_tensor *pa = make_param(init, 1, s1, SEGRL_DTYPE_F32);
    segrl_tensor *pb = make_param(init, 1, s1, SEGRL_DTYPE_F32);
    segrl_adamw_config c = segrl_adamw_default();
    c.lr = 1e-2;
    c.decay_1d = 1;
    c.max_grad_norm = 0.05; /* clipping must see the full-batch gradient */
    segrl_optimizer *oa = NULL, *ob = NULL;
    segrl_adamw_create(&pa, NULL, 1, &c, &oa);
    segrl_adamw_create(&pb, NULL, 1, &c, &ob);
    segrl_step_info ia, ib;
    for (int rep = 0; rep < 3; rep++) {
        /* K micro-batches, one step with the full normalizer */
        segrl_optimizer_zero_grad(oa);
        for (int k = 0; k < K; k++) add_grad(pa, g[k]);
        segrl_optimizer_step(oa, tokens, &ia);
        /* one big batch: the mean-loss gradient directly */
        float full[N];
        for (int i = 0; i < N; i++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += g[k][i];
            full[i] = (float)(s / tokens);
        }
        segrl_optimizer_zero_grad(ob);
        add_grad(pb, full);
        segrl_optimizer_step(ob, 1.0, &ib);
    }
    float va[N], vb[N];
    double want[N];
    get_f32(pa, va);
    get_f32(pb, vb);
    for (int i = 0; i < N; i++) want[i] = vb[i];
    h_close_f("K micro-batches vs one batch", va, want, N, 1e-6, 1e-5);
    CHECK(fabs(ia.grad_norm - ib.grad_norm) < 1e-5 * ib.grad_norm && ia.clipped && ib.clipped,
          "same norm (%g vs %g), both clipped", ia.grad_norm, ib.grad_norm);

    /* a non-finite gradient: step skipped, nothing changes */
    float before[N], after[N], m0[N], m1[N];
    get_f32(pa, before);
    segrl_tensor *m = NULL;
    segrl_optimizer_moments(oa, 0, &m, NULL);
    get_f32(m, m0);
    segrl_optimizer_zero_grad(oa);
    float bad[N];
    memcpy(bad, g[0], sizeof bad);
    bad[7] = NAN;
    add_grad(pa, bad);
    int64_t steps = segrl_optimizer_steps(oa);
    CHECK(segrl_optimizer_step(oa, 1.0, &ia) == SEGRL_OK && ia.skipped && isnan(ia.grad_norm) &&
              ia.step == steps,
          "NaN gradient: skipped %d norm %g", ia.skipped, ia.grad_norm);
    get_f32(pa, after);
    get_f32(m, m1);
    CHECK(memcmp(before, after, sizeof before) == 0 && memcmp(m0, m1, sizeof m0) == 0 &&
              segrl_optimizer_steps(oa) == steps,
          "skipped step: parameters, moments and count unchanged");
    segrl_tensor_free(m);
    segrl_optimizer_free(oa);
    segrl_optimizer_free(ob);
    segrl_tensor_free(pa);
    segrl_tensor_free(pb);
}

// ----------------------------------------------------------------------------
// linear regression: y = X w* + b* + noise; AdamW must find w*, b*

static void test_regression(void) {
    enum { R = 256, D = 8 };
    static float X[R][D], y[R];
    float wstar[D], bstar = 0.7f;
    for (int j = 0; j < D; j++) wstar[j] = h_normal();
    for (int r = 0; r < R; r++) {
        double s = bstar;
        for (int j = 0; j < D; j++) X[r][j] = h_normal(), s += X[r][j] * wstar[j];
        y[r] = (float)(s + 0.01 * h_normal());
    }
    int64_t sw[2] = {1, D}, sb[1] = {1};
    float w0[D] = {0}, b0[1] = {0};
    segrl_tensor *w = make_param(w0, 2, sw, SEGRL_DTYPE_F32);
    segrl_tensor *b = make_param(b0, 1, sb, SEGRL_DTYPE_F32);
    segrl_tensor *ps[2] = {w, b};
    segrl_adamw_config c = segrl_adamw_default();
    c.lr = 0.1;
    c.weight_decay = 0;
    c.max_grad_norm = 10;
    c.schedule = (segrl_lr_schedule){SEGRL_LR_WARMUP_COSINE, 20, 400, 0.01};
    segrl_optimizer *opt = NULL;
    segrl_adamw_create(ps, NULL, 2, &c, &opt);
    double loss0 = -1, loss = 0;
    for (int t = 0; t < 400; t++) {
        float wv[D], bv;
        get_f32(w, wv);
        get_f32(b, &bv);
        /* token-sum style: gradients of sum_r (pred - y)^2 / 2, divided by R in step */
        double gw[D] = {0}, gb = 0;
        loss = 0;
        for (int r = 0; r < R; r++) {
            double pred = bv;
            for (int j = 0; j < D; j++) pred += X[r][j] * wv[j];
            double e = pred - y[r];
            loss += e * e / (2.0 * R);
            for (int j = 0; j < D; j++) gw[j] += e * X[r][j];
            gb += e;
        }
        if (loss0 < 0) loss0 = loss;
        float gwf[D], gbf = (float)gb;
        for (int j = 0; j < D; j++) gwf[j] = (float)gw[j];
        segrl_optimizer_zero_grad(opt);
        add_grad(w, gwf);
        add_grad(b, &gbf);
        segrl_optimizer_step(opt, R, NULL);
    }
    float wv[D], bv;
    get_f32(w, wv);
    get_f32(b, &bv);
    double err = fabs(bv - bstar);
    for (int j = 0; j < D; j++) err = fmax(err, fabs(wv[j] - wstar[j]));
    printf("  linear regression: loss %.3g -> %.3g, max |w - w*| %.3g\n", loss0, loss, err);
    CHECK(loss < 1e-3 && err < 5e-3, "regression converges: loss %g, err %g", loss, err);
    segrl_optimizer_free(opt);
    segrl_tensor_free(w);
    segrl_tensor_free(b);
}

// ----------------------------------------------------------------------------
// checkpoints

typedef struct run {
    segrl_tensor *p[3];
    segrl_optimizer *opt;
    uint64_t rng; /* the trainer's own RNG: picks each step's minibatch */
} run;

static const int64_t run_shapes[3][2] = {{5, 7}, {7, 0}, {3, 7}};
static const int32_t run_ndims[3] = {2, 1, 2};
static const char *run_names[3] = {"model.layers.0.w", "model.norm.weight", "lm_head.weight"};

static void run_init(run *r, uint64_t seed, segrl_dtype dtype) {
    h_seed(seed);
    for (int k = 0; k < 3; k++) {
        float v[35];
        for (int i = 0; i < 35; i++) v[i] = h_normal();
        r->p[k] = make_param(v, run_ndims[k], run_shapes[k], dtype);
    }
    segrl_adamw_config c = segrl_adamw_default();
    c.lr = 1e-2;
    c.schedule = (segrl_lr_schedule){SEGRL_LR_WARMUP_COSINE, 2, 20, 0.1};
    if (segrl_adamw_create(r->p, run_names, 3, &c, &r->opt) != SEGRL_OK) exit(2);
    r->rng = seed * 7 + 1;
}

static void run_free(run *r) {
    segrl_optimizer_free(r->opt);
    for (int k = 0; k < 3; k++) segrl_tensor_free(r->p[k]);
}

/* one step: a gradient that depends on the parameters and on the trainer's RNG */
static void run_step(run *r) {
    segrl_optimizer_zero_grad(r->opt);
    h_seed(r->rng);
    r->rng = h_next();
    for (int k = 0; k < 3; k++) {
        float v[35], g[35];
        int64_t n = numel(r->p[k]);
        get_f32(r->p[k], v);
        for (int64_t i = 0; i < n; i++) g[i] = v[i] * 0.5f + h_normal() * 0.1f + 0.2f;
        add_grad(r->p[k], g);
    }
    segrl_optimizer_step(r->opt, 1.0, NULL);
}

static int same_bits(run *a, run *b) {
    int ok = 1;
    for (int k = 0; k < 3; k++) {
        float x[35], y2[35];
        int64_t n = numel(a->p[k]);
        get_f32(a->p[k], x);
        get_f32(b->p[k], y2);
        ok &= memcmp(x, y2, (size_t)n * sizeof(float)) == 0;
        segrl_tensor *ma, *va, *mb, *vb;
        segrl_optimizer_moments(a->opt, k, &ma, &va);
        segrl_optimizer_moments(b->opt, k, &mb, &vb);
        get_f32(ma, x), get_f32(mb, y2);
        ok &= memcmp(x, y2, (size_t)n * sizeof(float)) == 0;
        get_f32(va, x), get_f32(vb, y2);
        ok &= memcmp(x, y2, (size_t)n * sizeof(float)) == 0;
        segrl_tensor_free(ma), segrl_tensor_free(va), segrl_tensor_free(mb), segrl_tensor_free(vb);
    }
    return ok && segrl_optimizer_steps(a->opt) == segrl_optimizer_steps(b->opt);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = h_alloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    fclose(f);
    s[got] = 0;
    if (len) *len = got;
    return s;
}

static void spit(const char *path, const char *s, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) exit(2);
    fwrite(s, 1, n, f);
    fclose(f);
}

/* the "torch_cpu" hex string of a trainer_state.json (a new string) */
static char *torch_rng_of(const char *state_path) {
    char *s = slurp(state_path, NULL);
    if (!s) return NULL;
    char *k = strstr(s, "\"torch_cpu\"");
    char *q = k ? strchr(k + 11, '"') : NULL;
    char *e = q ? strchr(q + 1, '"') : NULL;
    char *r = NULL;
    if (e) {
        r = h_alloc((size_t)(e - q));
        memcpy(r, q + 1, (size_t)(e - q - 1));
    }
    free(s);
    return r;
}

static void test_checkpoints(const char *root, segrl_dtype dtype) {
    const int N = 5, M = 6;
    char path[512], path2[512];
    run a;
    run_init(&a, 11, dtype);
    for (int i = 0; i < N; i++) run_step(&a);
    segrl_torch_manual_seed(1234);
    CHECK(segrl_checkpoint_save(root, a.p, run_names, 3, a.opt, N, a.rng, "{\"epoch\": 2, \"tag\": \"x\"}") ==
              SEGRL_OK,
          "save: %s", segrl_last_error());
    for (int i = 0; i < M; i++) run_step(&a);

    /* a fresh run with other weights, resumed from the checkpoint */
    run b;
    run_init(&b, 99, dtype);
    CHECK(!same_bits(&a, &b), "runs differ before the load");
    segrl_torch_manual_seed(777);
    segrl_checkpoint_info info;
    memset(&info, 0, sizeof info);
    CHECK(segrl_checkpoint_load(root, b.p, run_names, 3, b.opt, &info) == SEGRL_OK, "load: %s",
          segrl_last_error());
    CHECK(info.step == N && info.optimizer_step == N && segrl_optimizer_steps(b.opt) == N,
          "steps restored: %lld %lld", (long long)info.step, (long long)info.optimizer_step);
    CHECK(info.user_json && strcmp(info.user_json, "{\"epoch\":2,\"tag\":\"x\"}") == 0, "user json: %s",
          info.user_json ? info.user_json : "(null)");
    segrl_free(info.user_json);
    b.rng = info.user_rng;
    for (int i = 0; i < M; i++) run_step(&b);
    CHECK(same_bits(&a, &b), "resumed run bit-identical to the uninterrupted one (%s)",
          dtype == SEGRL_DTYPE_BF16 ? "bf16 + masters" : "f32");

    /* the torch CPU generator: seeded 1234 at save, 777 before the load; the load restores the
     * state saved with the checkpoint, so saving again records the same state */
    snprintf(path, sizeof path, "%s/step-%012d/trainer_state.json", root, N);
    char *saved = torch_rng_of(path);
    segrl_checkpoint_save(root, b.p, run_names, 3, NULL, 1000, 0, NULL);
    snprintf(path2, sizeof path2, "%s/step-%012d/trainer_state.json", root, 1000);
    char *again = torch_rng_of(path2);
    CHECK(saved && again && strcmp(saved, again) == 0, "torch CPU generator state restored");
    free(again);
    segrl_torch_manual_seed(777);
    segrl_checkpoint_save(root, b.p, run_names, 3, NULL, 1000, 0, NULL); /* replaces step 1000 */
    again = torch_rng_of(path2);
    CHECK(saved && again && strcmp(saved, again) != 0, "another seed: another recorded state");
    free(again);
    free(saved);
    run_free(&a);
    run_free(&b);
}

static void test_checkpoint_files(const char *root) {
    char path[600], dir[520];
    run a;
    run_init(&a, 5, SEGRL_DTYPE_F32);
    for (int s = 1; s <= 4; s++) {
        run_step(&a);
        CHECK(segrl_checkpoint_save(root, a.p, run_names, 3, a.opt, s * 10, 42, NULL) == SEGRL_OK,
              "save %d: %s", s, segrl_last_error());
    }
    snprintf(path, sizeof path, "%s/latest", root);
    char *latest = slurp(path, NULL);
    CHECK(latest && strcmp(latest, "step-000000000040\n") == 0, "latest names the last save: %s", latest);
    free(latest);
    int64_t steps[8], count = 0;
    CHECK(segrl_checkpoint_list(root, steps, 8, &count) == SEGRL_OK && count == 4 && steps[0] == 10 &&
              steps[3] == 40,
          "list: %lld", (long long)count);

    /* a clean copy to corrupt: the state of step 40 */
    float p40[35];
    get_f32(a.p[0], p40);
    snprintf(dir, sizeof dir, "%s/step-000000000040", root);

    /* load through `latest` without an optimizer, user_json absent */
    run b;
    run_init(&b, 6, SEGRL_DTYPE_F32);
    segrl_checkpoint_info info;
    CHECK(segrl_checkpoint_load(root, b.p, run_names, 3, NULL, &info) == SEGRL_OK && info.step == 40 &&
              info.user_rng == 42 && info.user_json == NULL,
          "load without optimizer: %s", segrl_last_error());
    float got[35], before[35];
    get_f32(b.p[0], got);
    CHECK(memcmp(got, p40, sizeof got) == 0, "weights loaded through latest");

    /* corruptions: each must fail with a clear message and change nothing */
    run_free(&b);
    run_init(&b, 6, SEGRL_DTYPE_F32);
    get_f32(b.p[0], before);
    const char *files[3] = {"model.safetensors", "optimizer.safetensors", "trainer_state.json"};
    for (int f = 0; f < 3; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        size_t n = 0;
        char *orig = slurp(path, &n);
        char *bad = h_alloc(n + 1);
        memcpy(bad, orig, n);
        bad[f < 2 ? n - 20 : n / 2] ^= 0x01; /* one bit: tensor data; the JSON's RNG hex digits */
        spit(path, bad, n);
        segrl_status st = segrl_checkpoint_load(root, b.p, run_names, 3, b.opt, &info);
        CHECK(st == SEGRL_ERR_INVALID && contains(segrl_last_error(), files[f]) &&
                  contains(segrl_last_error(), "checksum mismatch"),
              "bit flip in %s: %s", files[f], segrl_last_error());
        spit(path, orig, n / 2); /* truncated */
        st = segrl_checkpoint_load(root, b.p, run_names, 3, b.opt, &info);
        CHECK(st == SEGRL_ERR_INVALID && contains(segrl_last_error(), files[f]),
              "truncated %s: %s", files[f], segrl_last_error());
        spit(path, orig, n);
        free(orig);
        free(bad);
    }
    get_f32(b.p[0], got);
    CHECK(memcmp(got, before, sizeof got) == 0 && segrl_optimizer_steps(b.opt) == 0,
          "failed loads changed nothing");
    CHECK(segrl_checkpoint_load(root, b.p, run_names, 3, b.opt, &info) == SEGRL_OK, "restored files load");

    /* names and shapes */
    const char *wrong[3] = {"model.layers.0.w", "model.norm.weight", "missing.weight"};
    CHECK(segrl_checkpoint_load(root, b.p, wrong, 3, NULL, NULL) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "missing.weight"),
          "missing tensor named: %s", segrl_last_error());
    segrl_tensor *swapped[3] = {b.p[2], b.p[1], b.p[0]};
    CHECK(segrl_checkpoint_load(root, swapped, run_names, 3, NULL, NULL) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "shape"),
          "shape mismatch: %s", segrl_last_error());
    snprintf(path, sizeof path, "%s/nowhere", root);
    CHECK(segrl_checkpoint_load(path, b.p, run_names, 3, NULL, NULL) == SEGRL_ERR_INVALID,
          "missing directory");
    CHECK(segrl_checkpoint_save(root, a.p, run_names, 3, a.opt, 50, 0, "{not json") == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "user_json"),
          "bad user_json rejected");
    /* a checkpoint saved without optimizer cannot fill one */
    segrl_checkpoint_save(root, a.p, run_names, 3, NULL, 60, 0, NULL);
    CHECK(segrl_checkpoint_load(root, b.p, run_names, 3, b.opt, NULL) == SEGRL_ERR_INVALID &&
              contains(segrl_last_error(), "optimizer"),
          "no optimizer state: %s", segrl_last_error());

    /* an interrupted save leaves a .tmp directory: invisible to list, removed by prune */
    snprintf(path, sizeof path, "%s/.tmp-step-000000000070-1", root);
    mkdir(path, 0755);
    CHECK(segrl_checkpoint_list(root, steps, 8, &count) == SEGRL_OK && count == 5, "list: %lld",
          (long long)count);
    int64_t removed = -1;
    CHECK(segrl_checkpoint_prune(root, 2, &removed) == SEGRL_OK && removed == 3, "prune: %lld",
          (long long)removed);
    CHECK(segrl_checkpoint_list(root, steps, 8, &count) == SEGRL_OK && count == 2 && steps[0] == 40 &&
              steps[1] == 60,
          "kept the last 2: %lld", (long long)count);
    struct stat sb;
    CHECK(stat(path, &sb) != 0, "leftover .tmp directory removed");
    CHECK(segrl_checkpoint_prune(root, 0, NULL) == SEGRL_ERR_INVALID, "keep_last 0 rejected");
    count = -1;
    snprintf(path, sizeof path, "%s/none", root);
    CHECK(segrl_checkpoint_list(path, NULL, 0, &count) == SEGRL_OK && count == 0, "missing root: 0");
    run_free(&a);
    run_free(&b);
}

int main(void) {
    h_seed(2024);
    test_schedules();
    test_clip();
    test_adamw_reference();
    test_bf16_master();
    test_accumulation();
    test_regression();

    char tmpl[] = "/tmp/segrl-train-XXXXXX";
    char *tmp = mkdtemp(tmpl);
    if (!tmp) return 2;
    char root[300];
    snprintf(root, sizeof root, "%s/f32", tmp);
    test_checkpoints(root, SEGRL_DTYPE_F32);
    snprintf(root, sizeof root, "%s/bf16", tmp);
    test_checkpoints(root, SEGRL_DTYPE_BF16);
    snprintf(root, sizeof root, "%s/files", tmp);
    test_checkpoint_files(root);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) printf("could not remove %s\n", tmp);
    return h_finish();
}
