/* segrl/dist.h — data-parallel scale-out: a communicator and the group-aware estimators across
 * processes. Link segrl::segrl_dist (its own library, libsegrl_dist; built when CMake finds MPI).
 *
 * Transports (none of their types appear here):
 *   CPU views:   MPI (OpenMPI) when the job was started by mpirun/srun; under a torchrun-style
 *                launch without MPI, a TCP star through rank 0 (meant for the small estimator
 *                statistics and metrics, not for gradients: use NCCL or mpirun for those).
 *   CUDA views:  NCCL on the caller's stream (libnccl.so.2 is loaded with dlopen when a
 *                communicator asks for a CUDA device, so libsegrl_dist loads without it).
 * Launch: `mpirun -np N prog` (MPI environment), or torchrun-style environment variables RANK,
 * WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT: rank 0 listens on MASTER_PORT, the others
 * connect (the NCCL unique id travels over this connection). torchrun's own store holds
 * MASTER_PORT when it exports TORCHELASTIC_USE_AGENT_STORE=True: rank 0 then listens on
 * MASTER_PORT + 1. SEGRL_DIST_PORT, when set on every rank, overrides both. No launcher: a world
 * of one.
 *
 * Every call: segrl_status; on failure segrl_last_error() reads "<function>: <argument>:
 * <problem>"; outputs are written only on success, with one exception: the buffer of a collective
 * that fails with SEGRL_ERR_COMM may be partly written (the transfer had begun).
 *
 * Collectives are matched by call order: every rank calls the same collectives in the same order
 * with the same counts (allgatherv: its own count), dtypes and devices. A communicator is used by
 * one thread at a time.
 *
 * Failures (what is guaranteed):
 *   - Every CPU collective returns within opts.timeout_s: SEGRL_OK, or SEGRL_ERR_COMM naming the
 *     call and what was seen (a peer that closed its connection, an MPI error, or a timeout: a
 *     peer that died, hangs, or is not calling the same collective). After SEGRL_ERR_COMM the
 *     communicator is broken: every later call fails at once with SEGRL_ERR_COMM. End the process
 *     (or call segrl_comm_abort) — the job cannot continue in step.
 *   - Argument errors (SEGRL_ERR_INVALID) are found before any communication, so the failing rank
 *     does not enter the collective and its peers fail with SEGRL_ERR_COMM at their timeout.
 *     Treat any error as fatal to the job.
 *   - CUDA collectives are queued on the stream and return at once; segrl_comm_wait() waits for
 *     them with the same timeout and aborts the NCCL communicator when it expires.
 *   - Under mpirun, a process that exits without MPI_Finalize makes mpirun end the whole job
 *     (OpenMPI's default); the timeout covers the rest.
 * See docs/distributed.md. */
#ifndef SEGRL_DIST_H
#define SEGRL_DIST_H

#include "segrl/advantage.h"
#include "segrl/core.h"
#include "segrl/segment.h"
#include "segrl/tree.h"

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// communicator

/* An opaque communicator: one per process, created by every rank together. */
typedef struct segrl_comm segrl_comm;

typedef enum segrl_comm_launch {
    /* MPI when MPI is already initialized or mpirun started the process (OMPI_COMM_WORLD_SIZE);
     * else the torchrun-style environment when WORLD_SIZE is set; else MPI when a scheduler's
     * PMI variables are set (PMI_SIZE, PMIX_RANK, PMI_RANK: srun); else a world of one. */
    SEGRL_COMM_LAUNCH_AUTO = 0,
    SEGRL_COMM_LAUNCH_MPI = 1, /* MPI_Init_thread (unless the program initialized MPI already) */
    SEGRL_COMM_LAUNCH_ENV = 2, /* RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT */
} segrl_comm_launch;

/* Values of segrl_comm_opts.cuda_device other than an ordinal. */
#define SEGRL_COMM_CPU_ONLY (-1)   /* no NCCL: CUDA views are SEGRL_ERR_UNSUPPORTED */
#define SEGRL_COMM_LOCAL_RANK (-2) /* the CUDA device numbered like the local rank */

typedef struct segrl_comm_opts {
    int32_t launch;           /* segrl_comm_launch */
    int32_t cuda_device;      /* SEGRL_COMM_CPU_ONLY, SEGRL_COMM_LOCAL_RANK or an ordinal */
    double timeout_s;         /* every collective (and segrl_comm_wait); > 0 */
    double connect_timeout_s; /* start-up: the TCP rendezvous and the NCCL initialization; > 0 */
} segrl_comm_opts;

/* AUTO, CPU only, timeout_s 300 (or the environment variable SEGRL_DIST_TIMEOUT, in seconds),
 * connect_timeout_s 120 (SEGRL_DIST_CONNECT_TIMEOUT). */
SEGRL_API segrl_comm_opts segrl_comm_opts_default(void);

/* Creates this process's communicator; collective over the whole job (every rank calls it).
 * opts NULL: the defaults. *out_comm is a new communicator (free with segrl_comm_free).
 * Errors: SEGRL_ERR_INVALID (bad options or environment variables, naming them), SEGRL_ERR_COMM
 * (rendezvous or MPI start-up failed or timed out), SEGRL_ERR_UNSUPPORTED (a CUDA device asked
 * of a build without CUDA), SEGRL_ERR_NO_DEVICE, SEGRL_ERR_CUDA (NCCL not loadable or failed),
 * SEGRL_ERR_ALLOC. */
SEGRL_API segrl_status segrl_comm_init(const segrl_comm_opts *opts, segrl_comm **out_comm);

/* Releases the communicator (MPI_Finalize when segrl_comm_init initialized MPI and this was its
 * last communicator: MPI cannot be started again in this process afterwards). Not collective over
 * TCP; under MPI every rank should call it. A broken communicator (after SEGRL_ERR_COMM) leaves
 * MPI to the process exit, since finalizing could wait for a dead peer. NULL does nothing. */
SEGRL_API void segrl_comm_free(segrl_comm *comm);

/* Ends the whole job with exit code `code`: MPI_Abort under MPI; otherwise closes the
 * connections (peers waiting in a collective fail at once with SEGRL_ERR_COMM) and exits. */
SEGRL_API void segrl_comm_abort(segrl_comm *comm, int code);

/* This process's rank in [0, size), the number of processes, and its rank and process count on
 * its machine. -1 for a NULL communicator. */
SEGRL_API int32_t segrl_comm_rank(const segrl_comm *comm);
SEGRL_API int32_t segrl_comm_size(const segrl_comm *comm);
SEGRL_API int32_t segrl_comm_local_rank(const segrl_comm *comm);
SEGRL_API int32_t segrl_comm_local_size(const segrl_comm *comm);
/* The CPU transport, "mpi", "tcp" or "self" (one process), followed by "+nccl" when CUDA views
 * are served. Static string; "" for NULL. */
SEGRL_API const char *segrl_comm_backend(const segrl_comm *comm);

/* Reductions: segrl_reduce_op of segrl/segment.h, SEGRL_REDUCE_SUM, SEGRL_REDUCE_MAX or
 * SEGRL_REDUCE_MIN (the others are SEGRL_ERR_INVALID for collectives). */

/* Views given to the collectives are contiguous, of any ndim; their element count is what is
 * sent. CPU views: f32, f64, i32, i64, u8 (and f16/bf16 for all-gather and broadcast). CUDA
 * views (NCCL): also f16 and bf16 everywhere. `stream` is the cudaStream_t for CUDA views (NULL:
 * the default stream), ignored on the CPU. CPU calls return when the data is in place; CUDA calls
 * return once queued. */

/* out = x[rank 0] op x[rank 1] op ... element-wise, on every rank. out: same dtype, device and
 * element count as x; may be x itself (in place). */
SEGRL_API segrl_status segrl_comm_allreduce(segrl_comm *comm, segrl_view x, int32_t op,
                                            void *stream, segrl_view out);

/* out = the x of every rank concatenated in rank order; every rank gives the same count n and
 * out holds size * n elements. out must not overlap x. */
SEGRL_API segrl_status segrl_comm_allgather(segrl_comm *comm, segrl_view x, void *stream,
                                            segrl_view out);

/* Variable sizes: rank r gives n_r elements; out receives all of them in rank order, so
 * out needs sum(n_r) elements (at least: the rest is left untouched). The counts are exchanged
 * first (one small collective), so a rank need not know the others' counts; out_counts (size
 * entries, may be NULL) receives n_r. When some rank's out is too small every rank fails with
 * SEGRL_ERR_INVALID naming the rank and the count needed. */
SEGRL_API segrl_status segrl_comm_allgatherv(segrl_comm *comm, segrl_view x, void *stream,
                                             segrl_view out, int64_t *out_counts);

/* x of rank `root` is copied into x of every other rank (same count everywhere). */
SEGRL_API segrl_status segrl_comm_broadcast(segrl_comm *comm, segrl_view x, int32_t root,
                                            void *stream);

/* Returns when every rank has entered it (or SEGRL_ERR_COMM at the timeout). */
SEGRL_API segrl_status segrl_comm_barrier(segrl_comm *comm);

/* Waits until the CUDA work queued on `stream` (with the NCCL collectives) has finished, or
 * fails with SEGRL_ERR_COMM after timeout_s (the NCCL communicator is aborted: a peer died or
 * hangs). SEGRL_OK at once for a communicator without CUDA. */
SEGRL_API segrl_status segrl_comm_wait(segrl_comm *comm, void *stream);

// ----------------------------------------------------------------------------
// group-aware estimators across ranks
//
// The global batch is the concatenation of every rank's local batch in rank order. Each rank
// gives its own sequences; group_index holds GLOBAL group ids in [0, num_groups), num_groups the
// same on every rank, so a group's samples may sit on several ranks (and a rank may hold none of
// a group, or no sequence at all: B = 0). Each call equals the single-process call on the global
// batch, rank r receiving its own slice: group and batch statistics are all-reduced (per-group
// count, sum and sum of squared deviations, in f64), then every rank finishes its own samples with
// the single-process formulas. The per-sequence outcome R is summed in the same order as the
// single-process call, so the results agree to the rounding of the cross-rank sums.
// CPU views only (SEGRL_ERR_UNSUPPORTED for CUDA views); collective (every rank calls).
// Traffic per call: a few arrays of num_groups doubles (see docs/distributed.md).
// Errors: as the single-process call, plus SEGRL_ERR_COMM.

/* segrl_grpo on the global batch (opts: std_scope GROUP, BATCH or NONE; unbiased; singleton). */
SEGRL_API segrl_status segrl_dist_grpo(segrl_comm *comm, const segrl_layout *layout,
                                       const segrl_outcome *in, const segrl_outcome_opts *opts,
                                       segrl_view out_token_advantages,
                                       segrl_view out_seq_advantages);

/* segrl_rloo on the global batch. */
SEGRL_API segrl_status segrl_dist_rloo(segrl_comm *comm, const segrl_layout *layout,
                                       const segrl_outcome *in, const segrl_outcome_opts *opts,
                                       segrl_view out_token_advantages,
                                       segrl_view out_seq_advantages);

/* segrl_reinforce_pp_baseline on the global batch: the token whitening uses the valid tokens of
 * every rank. */
SEGRL_API segrl_status segrl_dist_reinforce_pp_baseline(segrl_comm *comm,
                                                        const segrl_layout *layout,
                                                        const segrl_outcome *in,
                                                        const segrl_outcome_opts *opts,
                                                        segrl_view out_token_advantages,
                                                        segrl_view out_seq_advantages);

/* segrl_opo on the global batch: the length-weighted baseline of each group over every rank. */
SEGRL_API segrl_status segrl_dist_opo(segrl_comm *comm, const segrl_layout *layout,
                                      const segrl_outcome *in, const segrl_outcome_opts *opts,
                                      segrl_view out_token_advantages,
                                      segrl_view out_seq_advantages);

/* segrl_gpg on the global batch: alpha = global B / global count of non-zero advantages. */
SEGRL_API segrl_status segrl_dist_gpg(segrl_comm *comm, const segrl_layout *layout,
                                      const segrl_outcome *in, const segrl_outcome_opts *opts,
                                      segrl_view out_token_advantages,
                                      segrl_view out_seq_advantages);

/* ReMax needs no communication (no groups): segrl_remax on each rank's own batch is already its
 * slice of the global result. GRPO pass@k has no distributed form yet. */

/* segrl_whiten on the global batch: statistics over the valid tokens of every rank (group_index
 * none) or of each global group (group_index (B) in [0, num_groups)). */
SEGRL_API segrl_status segrl_dist_whiten(segrl_comm *comm, const segrl_layout *layout,
                                         segrl_view x, segrl_view mask, segrl_view group_index,
                                         int64_t num_groups, const segrl_whiten_opts *opts,
                                         segrl_view out);

/* Global number of valid tokens (mask != 0; mask none: every token slot) and, when
 * out_sequences is not NULL, of sequences, summed over the ranks: the normalizer of a
 * token-mean (or sequence-mean) loss. `ref` is any token tensor of the local batch (it gives the
 * geometry; may be the mask itself). */
SEGRL_API segrl_status segrl_dist_token_count(segrl_comm *comm, const segrl_layout *layout,
                                              segrl_view ref, segrl_view mask,
                                              int64_t *out_tokens, int64_t *out_sequences);

/* segrl_tree_values when a tree's rollouts were generated on several ranks. Every rank gives the
 * same node arrays (tree->parent, and depth if any: the global numbering, checked to agree) and
 * sets leaf_reward at the leaves it generated, marked by leaf_owned (u8/i32/i64/f32 (M), non-zero
 * at those leaves; leaf_reward elsewhere is ignored). Every leaf must be owned by exactly one
 * rank. The owned rewards and ownership counts are all-reduced (two arrays of M doubles), then
 * every rank computes the values of all M nodes, equal to segrl_tree_values on the assembled
 * tree. exec: as segrl_tree_values (CPU workspace of segrl_tree_workspace_size bytes). */
SEGRL_API segrl_status segrl_dist_tree_values(segrl_comm *comm, const segrl_tree *tree,
                                              segrl_view leaf_owned, int32_t kind,
                                              const segrl_exec *exec, segrl_view out_values,
                                              segrl_view out_leaf_counts);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_DIST_H */
