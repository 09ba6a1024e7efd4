/* internal.h — private to libsegrl: resolved token geometry, validated tensor handles, error
 * helpers, workspace layouts, and the backend entry points that kernels/ implement for CUDA.
 * Plain C with extern "C" guards so the kernels/ .cu files (CUDA C++) can include it. */
#ifndef SEGRL_INTERNAL_H
#define SEGRL_INTERNAL_H

#include "segrl/segrl.h"

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// errors

/* Records a printf-style message in the thread-local error buffer and returns `status`. */
segrl_status sg_fail(segrl_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

// ----------------------------------------------------------------------------
// geometry

/* The token geometry of one call, resolved from the layout and a reference token tensor. */
typedef struct sg_geom {
    int32_t packed;        /* 0: padded (B, T); 1: packed (N) with offsets */
    int32_t offsets_dtype; /* packed: SEGRL_DTYPE_I32 or SEGRL_DTYPE_I64 */
    int64_t B;             /* sequences */
    int64_t T;             /* padded: columns; packed: 0 */
    int64_t N;             /* token slots: B * T padded, offsets[B] packed */
    const void *offsets;   /* packed: B + 1 entries on `device` */
    segrl_device device;
} sg_geom;

/* A validated token tensor. Token t of sequence b lives at
 *   padded: data + b * row_stride + t          (t < T)
 *   packed: data + offsets[b] + t              (t < offsets[b+1] - offsets[b])
 * data == NULL means absent (an absent mask means every token is valid). */
typedef struct sg_tok {
    void *data;
    int32_t dtype;
    int64_t row_stride; /* padded only */
} sg_tok;

// ----------------------------------------------------------------------------
// workspace layouts (shared by CPU and CUDA so one size query serves both)

#define SG_WS_ALIGN 256
#define SG_WS_CHECK_BYTES 256 /* scratch for content checks (CUDA: result flags) */
#define SG_GROUP_STATS 8      /* doubles per group; see outcome.c */

static inline size_t sg_align(size_t n) { return (n + SG_WS_ALIGN - 1) / SG_WS_ALIGN * SG_WS_ALIGN; }

/* Outcome estimators: [check scratch][R: B doubles][len: B doubles][A: B doubles]
 *                     [batch stats: 8 doubles][group stats: G * SG_GROUP_STATS doubles] */
typedef struct sg_outcome_ws {
    void *check;
    double *R, *len, *A;
    double *batch; /* 8 doubles */
    double *group; /* G * SG_GROUP_STATS */
} sg_outcome_ws;

size_t sg_outcome_ws_size(int64_t B, int64_t G);
sg_outcome_ws sg_outcome_ws_carve(void *ws, int64_t B, int64_t G);

/* Whitening: [check scratch][stats: (G + 1) * SG_GROUP_STATS doubles] */
size_t sg_whiten_ws_size(int64_t G);

// ----------------------------------------------------------------------------
// the CPU references (src/advantage/*.c): the semantics of record

void sg_cpu_gae(const sg_geom *g, sg_tok rewards, sg_tok values, sg_tok mask, float gamma,
                float lambda, sg_tok adv, sg_tok ret);

/* kl: segrl_kl_estimator; beta 0 or kl NONE: no penalty (logp/ref may be absent). */
void sg_cpu_returns(const sg_geom *g, sg_tok rewards, sg_tok mask, sg_tok logp, sg_tok ref,
                    float gamma, float beta, int32_t kl, sg_tok out);

/* gidx NULL: one global group. stats: (G + 1) * SG_GROUP_STATS doubles of workspace. */
void sg_cpu_whiten(const sg_geom *g, sg_tok x, sg_tok mask, const void *gidx, int32_t gidx_dtype,
                   int64_t G, const segrl_whiten_opts *o, double *stats, sg_tok out);

/* Arguments shared by the outcome estimators once validated. */
typedef struct sg_outcome_args {
    int32_t op;               /* SEGRL_OP_GRPO ... SEGRL_OP_GPG */
    const float *scores;      /* (B) or NULL: sum token_rewards over valid tokens */
    sg_tok token_rewards;
    sg_tok mask;
    const void *gidx;         /* (B) or NULL (ReMax) */
    int32_t gidx_dtype;
    int64_t G;
    const float *baseline;    /* ReMax greedy scores (B) */
    segrl_outcome_opts opts;
} sg_outcome_args;

void sg_cpu_outcome(const sg_geom *g, const sg_outcome_args *a, sg_outcome_ws ws, sg_tok out_tok,
                    float *out_seq);

// ----------------------------------------------------------------------------
// content checks: each returns the index of the first offending element, or -1.

/* offsets non-decreasing from 0 to N */
int64_t sg_cpu_bad_offset(const void *offsets, int32_t dtype, int64_t B, int64_t N);
/* an index outside [0, G) */
int64_t sg_cpu_bad_index(const void *idx, int32_t dtype, int64_t n, int64_t G);
/* a non-finite f32 at a valid token; returns the flat token number (b * T + t, or packed index) */
int64_t sg_cpu_bad_token(const sg_geom *g, sg_tok x, sg_tok mask);
/* a non-finite f32 in a contiguous vector */
int64_t sg_cpu_bad_float(const float *x, int64_t n);

// ----------------------------------------------------------------------------
// CUDA backend (kernels/*.cu). Present only when SEGRL_WITH_CUDA; the dispatcher checks first.
// Every function: returns SEGRL_OK or SEGRL_ERR_CUDA (message set), queues work on `stream`.

#ifdef SEGRL_WITH_CUDA
/* Number of devices; 0 on any error (no driver, no GPU). */
int sg_cuda_device_count(void);
/* Makes `device` current (cudaSetDevice). */
segrl_status sg_cuda_set_device(int32_t device);

/* Content checks on device data. Each writes to *out_bad the smallest (or any) offending
 * index or -1, using `scratch` (SG_WS_CHECK_BYTES of device memory), and synchronizes `stream`. */
segrl_status sg_cuda_bad_offset(const void *offsets, int32_t dtype, int64_t B, int64_t N,
                                void *scratch, void *stream, int64_t *out_bad);
segrl_status sg_cuda_bad_index(const void *idx, int32_t dtype, int64_t n, int64_t G,
                               void *scratch, void *stream, int64_t *out_bad);
segrl_status sg_cuda_bad_token(const sg_geom *g, sg_tok x, sg_tok mask, void *scratch,
                               void *stream, int64_t *out_bad);
segrl_status sg_cuda_bad_float(const float *x, int64_t n, void *scratch, void *stream,
                               int64_t *out_bad);

segrl_status sg_cuda_gae(const sg_geom *g, sg_tok rewards, sg_tok values, sg_tok mask,
                         float gamma, float lambda, sg_tok adv, sg_tok ret, void *stream);
segrl_status sg_cuda_returns(const sg_geom *g, sg_tok rewards, sg_tok mask, sg_tok logp,
                             sg_tok ref, float gamma, float beta, int32_t kl, sg_tok out,
                             void *stream);
segrl_status sg_cuda_whiten(const sg_geom *g, sg_tok x, sg_tok mask, const void *gidx,
                            int32_t gidx_dtype, int64_t G, const segrl_whiten_opts *o,
                            double *stats, sg_tok out, void *stream);
segrl_status sg_cuda_outcome(const sg_geom *g, const sg_outcome_args *a, sg_outcome_ws ws,
                             sg_tok out_tok, float *out_seq, void *stream);
#endif

#ifdef SEGRL_WITH_CUDA
// ----------------------------------------------------------------------------
// CUDA backend: rollout trees (kernels/tree.cu)

/* A tree whose views were validated by src/tree/tree.c; every pointer is device memory.
 * ws: the caller's workspace, segrl_tree_workspace_size(cuda, M) bytes
 * ([check scratch][8 slots]). */
typedef struct sg_tree_dev {
    int64_t M;
    const void *parent;
    int32_t parent_dt;
    const void *s0, *s1; /* or NULL */
    int32_t s0_dt, s1_dt;
    int64_t num_tokens;
    const float *reward; /* or NULL */
    const void *depth;   /* or NULL */
    int32_t depth_dt;
    void *ws;
    void *stream;
} sg_tree_dev;

enum { SG_TREE_BAD_NONE = 0, SG_TREE_BAD_PARENT, SG_TREE_BAD_DEPTH, SG_TREE_BAD_SPAN,
       SG_TREE_BAD_REWARD };

/* The first failed content check, in the CPU's order (parent, depth, spans, leaf rewards), its
 * smallest offending node and what the message needs: PARENT a = parent; DEPTH a = depth,
 * b = expected; SPAN a = start, b = end; REWARD r = the reward. */
typedef struct sg_tree_bad {
    int what;
    int64_t node, a, b;
    double r;
} sg_tree_bad;

/* Runs the content checks (check_reward: also finite rewards at leaves); synchronizes. */
segrl_status sg_cuda_tree_check(const sg_tree_dev *t, int check_reward, sg_tree_bad *out);
/* kind: segrl_tree_value; lc NULL or i32/i64 (lc_dt). */
segrl_status sg_cuda_tree_values(const sg_tree_dev *t, int32_t kind, float *out, void *lc,
                                 int32_t lc_dt);
/* leaf_out, nm may be NULL; out may alias V. */
segrl_status sg_cuda_tree_advantages(const sg_tree_dev *t, const float *V,
                                     const segrl_tree_adv_opts *o, float *out, float *leaf_out,
                                     void *nm, int32_t nm_dt);
#endif

#ifdef SEGRL_WITH_CUDA
// ----------------------------------------------------------------------------
// CUDA backend: segments (kernels/segment.cu)

/* Validated segment spans (CSR per sequence), device pointers. */
typedef struct sg_dspans {
    const void *off, *st, *en; /* offsets (B + 1), start, end (S) */
    int32_t odt, sdt, edt;
    int64_t S;
} sg_dspans;

/* The first bad span in CPU order (what: 0 none, 1 start before prev, 2 empty, 3 past len). */
typedef struct sg_span_bad {
    int what;
    int64_t k, b, st, en, prev, len;
    int first; /* k is the first span of its sequence */
} sg_span_bad;

/* Span contents (spans' offsets already checked): scratch SG_WS_CHECK_BYTES; synchronizes. */
segrl_status sg_cuda_span_check(const sg_geom *g, const sg_dspans *s, void *scratch,
                                void *stream, sg_span_bad *out);
segrl_status sg_cuda_seg_reduce(const sg_geom *g, sg_tok x, sg_tok m, const sg_dspans *s,
                                int32_t op, float *out, void *stream);
segrl_status sg_cuda_seg_scatter(const sg_geom *g, const float *v, sg_tok m, const sg_dspans *s,
                                 int32_t mode, sg_tok o, void *stream);
/* V0, oseg may be NULL */
segrl_status sg_cuda_spo_chain(const sg_geom *g, sg_tok m, const sg_dspans *s, const float *V,
                               const float *R, const float *V0, sg_tok o, float *oseg,
                               void *stream);
segrl_status sg_cuda_vineppo(const sg_geom *g, sg_tok m, const sg_dspans *s, const float *r,
                             const float *V, float gamma, sg_tok o, float *ostep, void *stream);
segrl_status sg_cuda_prob_mask(const sg_geom *g, sg_tok probs, sg_tok m, float tau, sg_tok o,
                               void *stream);

/* A partitioner, validated (kinds as in src/segment/partition.c). */
enum { SG_SPART_PARTS = 0, SG_SPART_EVERY = 1, SG_SPART_CUT = 2, SG_SPART_DELIM = 3 };
typedef struct sg_dpart {
    int kind;
    int64_t K, M;
    float tau;
    int64_t k, cap;
    sg_tok probs, ids, mask;
    const void *delims;
    int32_t ddt;
    int64_t D;
} sg_dpart;

/* Counting pass: ws = [check scratch][B + 1 i64]; leaves the exclusive prefix of the counts in
 * the i64 part, returns S and the longest sequence; synchronizes. */
segrl_status sg_cuda_part_count(const sg_geom *g, const sg_dpart *p, void *ws, void *stream,
                                int64_t *S, int64_t *maxlen);
/* Writes offsets (from the prefix) and, when st/en non-NULL, the spans. */
segrl_status sg_cuda_part_write(const sg_geom *g, const sg_dpart *p, void *ws, void *off,
                                int32_t odt, void *st, int32_t sdt, void *en, int32_t edt,
                                void *stream);
#endif

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_INTERNAL_H */
