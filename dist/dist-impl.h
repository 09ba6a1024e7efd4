/* dist-impl.h — private to libsegrl_dist: the communicator object and the transports' entry
 * points (mpi.c, tcp.c, nccl.c). comm.c validates the public arguments and dispatches here, so a
 * transport sees contiguous buffers, element counts and a known dtype only. */
#ifndef SEGRL_DIST_IMPL_H
#define SEGRL_DIST_IMPL_H

#include "segrl/dist.h"

#include <stddef.h>
#include <stdint.h>

#define SD_ERR(st, ...) segrl_set_error((st), __VA_ARGS__)

/* A collective's kind; also tags the TCP messages so mismatched calls are caught. */
enum {
    SD_ALLREDUCE = 1,
    SD_ALLGATHER = 2,
    SD_ALLGATHERV = 3,
    SD_BCAST = 4,
    SD_BARRIER = 5,
};

enum { SD_SELF = 0, SD_MPI = 1, SD_TCP = 2 };

typedef struct sd_tcp sd_tcp;   /* tcp.c */
typedef struct sd_mpi sd_mpi;   /* mpi.c */
typedef struct sd_nccl sd_nccl; /* nccl.c */

struct segrl_comm {
    int kind; /* SD_SELF / SD_MPI / SD_TCP */
    int32_t rank, size, local_rank, local_size;
    double timeout_s, connect_timeout_s;
    int broken;          /* a collective failed: every later call fails */
    char broken_msg[256];
    int32_t cuda_device; /* -1: no NCCL */
    sd_mpi *mpi;
    sd_tcp *tcp;
    sd_nccl *nccl;
    uint64_t seq; /* collectives issued so far */
};

/* seconds on a monotonic clock */
double sd_now(void);
/* between two polls of a pending operation that has waited waited_s seconds: yields the core
 * (and after 10 s also naps 1 ms in 5) */
void sd_backoff(double waited_s);

/* Marks the communicator broken with the message already set by segrl_set_error; returns
 * SEGRL_ERR_COMM. */
segrl_status sd_break(segrl_comm *c);

// ----------------------------------------------------------------------------
// CPU transports: buffers in host memory, count elements of `dtype` (a segrl_dtype).
// in == out means in place. `fn` names the public call for messages.

/* mpi.c */
int sd_mpi_launched(void); /* the environment of an MPI launcher, or MPI already initialized */
segrl_status sd_mpi_init(segrl_comm *c, const char *fn);
void sd_mpi_free(segrl_comm *c);
void sd_mpi_abort(segrl_comm *c, int code);
segrl_status sd_mpi_allreduce(segrl_comm *c, const char *fn, const void *in, void *out,
                              int64_t count, int32_t dtype, int32_t op);
segrl_status sd_mpi_allgatherv(segrl_comm *c, const char *fn, const void *in, int64_t count,
                               void *out, const int64_t *counts, int32_t dtype);
segrl_status sd_mpi_bcast(segrl_comm *c, const char *fn, void *buf, int64_t count, int32_t dtype,
                          int32_t root);
segrl_status sd_mpi_barrier(segrl_comm *c, const char *fn);

/* tcp.c: the rendezvous (blob: 128 bytes rank 0 hands every rank, e.g. the NCCL unique id,
 * and *blob_ok whether rank 0 could make it; on rank 0 both are read, on the others written)
 * and the star collectives through rank 0 */
segrl_status sd_tcp_init(segrl_comm *c, const char *fn, const char *addr, int port,
                         unsigned char blob[128], int *blob_ok);
void sd_tcp_free(segrl_comm *c);
segrl_status sd_tcp_allreduce(segrl_comm *c, const char *fn, const void *in, void *out,
                              int64_t count, int32_t dtype, int32_t op);
segrl_status sd_tcp_allgatherv(segrl_comm *c, const char *fn, const void *in, int64_t count,
                               void *out, const int64_t *counts, int32_t dtype);
segrl_status sd_tcp_bcast(segrl_comm *c, const char *fn, void *buf, int64_t count, int32_t dtype,
                          int32_t root);
segrl_status sd_tcp_barrier(segrl_comm *c, const char *fn);

/* Element-wise acc = acc op x over n elements of dtype (shared by the TCP and self paths). */
void sd_reduce_into(void *acc, const void *x, int64_t n, int32_t dtype, int32_t op);

/* The CPU transport of the communicator, whatever it is (comm.c): used by the estimators and by
 * the NCCL start-up. */
segrl_status sd_cpu_allreduce(segrl_comm *c, const char *fn, const void *in, void *out,
                              int64_t count, int32_t dtype, int32_t op);
segrl_status sd_cpu_allgather(segrl_comm *c, const char *fn, const void *in, void *out,
                              int64_t count, int32_t dtype);
segrl_status sd_cpu_bcast(segrl_comm *c, const char *fn, void *buf, int64_t count, int32_t dtype,
                          int32_t root);

// ----------------------------------------------------------------------------
// NCCL (nccl.c; only in CUDA builds)

#ifdef SEGRL_WITH_CUDA
/* Loads libnccl.so.2 and creates the NCCL communicator on c->cuda_device. Rank 0 makes the
 * unique id; `id_ready` is set on TCP launches where the rendezvous already carried it in
 * `id`; otherwise it goes over the CPU transport. */
segrl_status sd_nccl_get_id(const char *fn, unsigned char id[128]);
segrl_status sd_nccl_init(segrl_comm *c, const char *fn, unsigned char id[128], int id_ready);
void sd_nccl_free(segrl_comm *c, int abort);
segrl_status sd_nccl_allreduce(segrl_comm *c, const char *fn, const void *in, void *out,
                               int64_t count, int32_t dtype, int32_t op, void *stream);
segrl_status sd_nccl_allgatherv(segrl_comm *c, const char *fn, const void *in, int64_t count,
                                void *out, const int64_t *counts, int32_t dtype, void *stream);
segrl_status sd_nccl_bcast(segrl_comm *c, const char *fn, void *buf, int64_t count,
                           int32_t dtype, int32_t root, void *stream);
segrl_status sd_nccl_wait(segrl_comm *c, const char *fn, void *stream);
#endif

#endif /* SEGRL_DIST_IMPL_H */
