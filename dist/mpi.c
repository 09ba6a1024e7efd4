/* mpi.c — the MPI transport for CPU buffers (OpenMPI; any MPI-3 library).
 *
 * The communicator is a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN, so an MPI failure is
 * a status here rather than an abort inside MPI. Every collective is the non-blocking MPI-3 form
 * (MPI_Iallreduce, MPI_Iallgatherv, MPI_Ibcast, MPI_Ibarrier) completed by polling MPI_Test
 * against a deadline: a peer that died or hangs gives SEGRL_ERR_COMM after timeout_s instead of a
 * process blocked for ever. The request that timed out is abandoned (MPI cannot cancel a
 * collective), which is why the communicator is marked broken. */
#define _POSIX_C_SOURCE 200809L

#include "dist-impl.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sd_mpi {
    MPI_Comm comm;
    int we_initialized; /* MPI_Init_thread was called here: finalize with the last communicator */
};

static int sd_mpi_live; /* communicators alive in this process */
static int sd_mpi_we_init;

int sd_mpi_launched(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) return 1;
    /* mpirun (OpenMPI) first; a torchrun-style WORLD_SIZE wins over a scheduler's PMI variables
     * (srun starting one torchrun per machine sets both) */
    if (getenv("OMPI_COMM_WORLD_SIZE")) return 1;
    if (getenv("WORLD_SIZE")) return 0;
    return getenv("PMI_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

static MPI_Datatype sd_mpi_type(int32_t dtype) {
    switch (dtype) {
    case SEGRL_DTYPE_F32: return MPI_FLOAT;
    case SEGRL_DTYPE_F64: return MPI_DOUBLE;
    case SEGRL_DTYPE_I32: return MPI_INT32_T;
    case SEGRL_DTYPE_I64: return MPI_INT64_T;
    case SEGRL_DTYPE_U8: return MPI_UINT8_T;
    default: return MPI_UINT16_T; /* f16 / bf16: moved, never reduced */
    }
}

static MPI_Op sd_mpi_op(int32_t op) {
    return op == SEGRL_REDUCE_SUM ? MPI_SUM : op == SEGRL_REDUCE_MAX ? MPI_MAX : MPI_MIN;
}

static segrl_status sd_mpi_fail(segrl_comm *c, const char *fn, const char *what, int rc) {
    char msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = '\0';
    SD_ERR(SEGRL_ERR_COMM, "%s: MPI %s failed on rank %d of %d: %s (error %d)", fn, what, c->rank,
           c->size, len ? msg : "unknown error", rc);
    return sd_break(c);
}

/* Completes a started non-blocking collective before the deadline. */
static segrl_status sd_mpi_wait(segrl_comm *c, const char *fn, const char *what, int rc,
                                MPI_Request *req, int64_t count, int32_t dtype) {
    if (rc != MPI_SUCCESS) return sd_mpi_fail(c, fn, what, rc);
    const double start = sd_now(), deadline = start + c->timeout_s;
    for (;;) {
        int done = 0;
        rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return sd_mpi_fail(c, fn, what, rc);
        if (done) return SEGRL_OK;
        const double t = sd_now();
        if (t > deadline) {
            SD_ERR(SEGRL_ERR_COMM,
                   "%s: timed out after %g s on rank %d of %d in collective #%llu (MPI %s of "
                   "%lld %s): a peer died, hangs, or is not calling the same collective",
                   fn, c->timeout_s, c->rank, c->size, (unsigned long long)c->seq, what,
                   (long long)count, segrl_dtype_name((segrl_dtype)dtype));
            return sd_break(c);
        }
        sd_backoff(t - start);
    }
}

segrl_status sd_mpi_init(segrl_comm *c, const char *fn) {
    int init = 0, fin = 0, rc;
    MPI_Finalized(&fin);
    if (fin) return SD_ERR(SEGRL_ERR_COMM, "%s: MPI was already finalized in this process", fn);
    MPI_Initialized(&init);
    if (!init) {
        int provided = 0;
        rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS)
            return SD_ERR(SEGRL_ERR_COMM, "%s: MPI_Init_thread failed (error %d)", fn, rc);
        sd_mpi_we_init = 1;
    }
    sd_mpi *m = (sd_mpi *)segrl_malloc(sizeof *m);
    if (!m) return SD_ERR(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    m->we_initialized = sd_mpi_we_init;
    c->mpi = m;
    sd_mpi_live++;
    rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
    if (rc != MPI_SUCCESS) {
        m->comm = MPI_COMM_NULL;
        return sd_mpi_fail(c, fn, "MPI_Comm_dup", rc);
    }
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    int rank = 0, size = 1, lrank = 0, lsize = 1;
    MPI_Comm_rank(m->comm, &rank);
    MPI_Comm_size(m->comm, &size);
    c->rank = rank;
    c->size = size;
    /* the processes of this machine: MPI-3 shared-memory split */
    MPI_Comm node;
    rc = MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    if (rc != MPI_SUCCESS) return sd_mpi_fail(c, fn, "MPI_Comm_split_type", rc);
    MPI_Comm_rank(node, &lrank);
    MPI_Comm_size(node, &lsize);
    MPI_Comm_free(&node);
    c->local_rank = lrank;
    c->local_size = lsize;
    return SEGRL_OK;
}

void sd_mpi_free(segrl_comm *c) {
    sd_mpi *m = c->mpi;
    if (!m) return;
    c->mpi = NULL;
    sd_mpi_live--;
    /* after a failure a peer may be gone: freeing or finalizing could wait for it, so a broken
     * communicator is left to the process exit */
    if (!c->broken) {
        if (m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
        int fin = 0;
        MPI_Finalized(&fin);
        if (m->we_initialized && sd_mpi_live == 0 && !fin) {
            MPI_Finalize();
            sd_mpi_we_init = 0;
        }
    }
    segrl_free(m);
}

void sd_mpi_abort(segrl_comm *c, int code) {
    MPI_Abort(c->mpi && c->mpi->comm != MPI_COMM_NULL ? c->mpi->comm : MPI_COMM_WORLD, code);
    exit(code); /* not reached with a conforming MPI */
}

segrl_status sd_mpi_allreduce(segrl_comm *c, const char *fn, const void *in, void *out,
                              int64_t count, int32_t dtype, int32_t op) {
    const size_t es = segrl_dtype_size((segrl_dtype)dtype);
    /* counts are C ints in MPI: chunks of at most INT_MAX elements */
    for (int64_t off = 0; off < count || (count == 0 && off == 0); off += INT_MAX) {
        const int n = (int)(count - off < INT_MAX ? count - off : INT_MAX);
        MPI_Request req;
        const void *src = in == out ? MPI_IN_PLACE : (const char *)in + (size_t)off * es;
        int rc = MPI_Iallreduce(src, (char *)out + (size_t)off * es, n, sd_mpi_type(dtype),
                                sd_mpi_op(op), c->mpi->comm, &req);
        segrl_status st = sd_mpi_wait(c, fn, "allreduce", rc, &req, count, dtype);
        if (st != SEGRL_OK) return st;
        if (count == 0) break;
    }
    return SEGRL_OK;
}

segrl_status sd_mpi_allgatherv(segrl_comm *c, const char *fn, const void *in, int64_t count,
                               void *out, const int64_t *counts, int32_t dtype) {
    int *rc_counts = (int *)segrl_malloc((size_t)c->size * 2 * sizeof(int));
    if (!rc_counts) return SD_ERR(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    int *displs = rc_counts + c->size;
    int64_t total = 0;
    for (int32_t r = 0; r < c->size; r++) {
        if (total + counts[r] > INT_MAX) {
            segrl_free(rc_counts);
            return SD_ERR(SEGRL_ERR_UNSUPPORTED,
                          "%s: x: more than %d elements gathered in one call over MPI; split it", fn,
                          INT_MAX);
        }
        rc_counts[r] = (int)counts[r];
        displs[r] = (int)total;
        total += counts[r];
    }
    MPI_Request req;
    MPI_Datatype t = sd_mpi_type(dtype);
    int rc = MPI_Iallgatherv(in, (int)count, t, out, rc_counts, displs, t, c->mpi->comm, &req);
    segrl_status st = sd_mpi_wait(c, fn, "allgatherv", rc, &req, count, dtype);
    segrl_free(rc_counts);
    return st;
}

segrl_status sd_mpi_bcast(segrl_comm *c, const char *fn, void *buf, int64_t count, int32_t dtype,
                          int32_t root) {
    const size_t es = segrl_dtype_size((segrl_dtype)dtype);
    for (int64_t off = 0; off < count || (count == 0 && off == 0); off += INT_MAX) {
        const int n = (int)(count - off < INT_MAX ? count - off : INT_MAX);
        MPI_Request req;
        int rc = MPI_Ibcast((char *)buf + (size_t)off * es, n, sd_mpi_type(dtype), root,
                            c->mpi->comm, &req);
        segrl_status st = sd_mpi_wait(c, fn, "broadcast", rc, &req, count, dtype);
        if (st != SEGRL_OK) return st;
        if (count == 0) break;
    }
    return SEGRL_OK;
}

segrl_status sd_mpi_barrier(segrl_comm *c, const char *fn) {
    MPI_Request req;
    int rc = MPI_Ibarrier(c->mpi->comm, &req);
    return sd_mpi_wait(c, fn, "barrier", rc, &req, 0, SEGRL_DTYPE_U8);
}
