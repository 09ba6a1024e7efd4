/* nccl.c — CUDA views through NCCL (built only with CUDA).
 *
 * libnccl.so.2 is opened with dlopen when a communicator asks for a CUDA device, so that
 * libsegrl_dist loads (and serves CPU views) on machines without NCCL or a GPU, as libsegrl links
 * the static CUDA runtime for the same reason. nccl.h gives the types and constants only.
 *
 * The NCCL communicator is created non-blocking (ncclConfig_t.blocking = 0): its initialization
 * and every enqueue are polled with ncclCommGetAsyncError against a deadline, and
 * segrl_comm_wait polls the stream the same way, aborting the communicator (ncclCommAbort) when a
 * peer stops answering. Unique id: made by rank 0, carried by the TCP rendezvous (torchrun-style
 * launch) or broadcast over MPI. Variable-size all-gather: one ncclBroadcast per rank inside a
 * group (ncclGroupStart/End), the usual NCCL idiom. */
#define _POSIX_C_SOURCE 200809L

#include "dist-impl.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef struct sd_nccl_lib {
    void *handle;
    ncclResult_t (*get_unique_id)(ncclUniqueId *);
    ncclResult_t (*init_rank_config)(ncclComm_t *, int, ncclUniqueId, int, ncclConfig_t *);
    ncclResult_t (*get_async_error)(ncclComm_t, ncclResult_t *);
    ncclResult_t (*abort)(ncclComm_t);
    ncclResult_t (*destroy)(ncclComm_t);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t,
                               ncclComm_t, cudaStream_t);
    ncclResult_t (*all_gather)(const void *, void *, size_t, ncclDataType_t, ncclComm_t,
                               cudaStream_t);
    ncclResult_t (*broadcast)(const void *, void *, size_t, ncclDataType_t, int, ncclComm_t,
                              cudaStream_t);
    ncclResult_t (*group_start)(void);
    ncclResult_t (*group_end)(void);
    const char *(*error_string)(ncclResult_t);
    const char *(*last_error)(ncclComm_t);
    char why[256]; /* dlopen / dlsym failure, "" when loaded */
} sd_nccl_lib;

static sd_nccl_lib sd_nl;
static pthread_once_t sd_nl_once = PTHREAD_ONCE_INIT;

struct sd_nccl {
    ncclComm_t comm;
};

#define SD_SYM(field, name)                                                                       \
    do {                                                                                          \
        *(void **)&sd_nl.field = dlsym(sd_nl.handle, name);                                       \
        if (!sd_nl.field) {                                                                       \
            snprintf(sd_nl.why, sizeof sd_nl.why,                                                 \
                     "libnccl.so.2 has no %s (NCCL >= 2.14 is needed)", name);                    \
            return;                                                                               \
        }                                                                                         \
    } while (0)

static void sd_nl_load(void) {
    sd_nl.handle = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!sd_nl.handle) sd_nl.handle = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    if (!sd_nl.handle) {
        const char *e = dlerror();
        snprintf(sd_nl.why, sizeof sd_nl.why,
                 "cannot load libnccl.so.2 (%s); install NCCL or add its folder to "
                 "LD_LIBRARY_PATH",
                 e ? e : "not found");
        return;
    }
    SD_SYM(get_unique_id, "ncclGetUniqueId");
    SD_SYM(init_rank_config, "ncclCommInitRankConfig");
    SD_SYM(get_async_error, "ncclCommGetAsyncError");
    SD_SYM(abort, "ncclCommAbort");
    SD_SYM(destroy, "ncclCommDestroy");
    SD_SYM(all_reduce, "ncclAllReduce");
    SD_SYM(all_gather, "ncclAllGather");
    SD_SYM(broadcast, "ncclBroadcast");
    SD_SYM(group_start, "ncclGroupStart");
    SD_SYM(group_end, "ncclGroupEnd");
    SD_SYM(error_string, "ncclGetErrorString");
    SD_SYM(last_error, "ncclGetLastError");
}

static segrl_status sd_nl_ready(const char *fn) {
    pthread_once(&sd_nl_once, sd_nl_load);
    if (sd_nl.why[0]) return SD_ERR(SEGRL_ERR_CUDA, "%s: opts->cuda_device: %s", fn, sd_nl.why);
    return SEGRL_OK;
}

static ncclDataType_t sd_nccl_type(int32_t dtype) {
    switch (dtype) {
    case SEGRL_DTYPE_F32: return ncclFloat32;
    case SEGRL_DTYPE_F64: return ncclFloat64;
    case SEGRL_DTYPE_F16: return ncclFloat16;
    case SEGRL_DTYPE_BF16: return ncclBfloat16;
    case SEGRL_DTYPE_I32: return ncclInt32;
    case SEGRL_DTYPE_I64: return ncclInt64;
    default: return ncclUint8;
    }
}

static ncclRedOp_t sd_nccl_op(int32_t op) {
    return op == SEGRL_REDUCE_SUM ? ncclSum : op == SEGRL_REDUCE_MAX ? ncclMax : ncclMin;
}

/* Waits while the communicator reports ncclInProgress (non-blocking mode), then turns an error
 * into SEGRL_ERR_COMM and breaks the communicator. */
static segrl_status sd_nccl_settle(segrl_comm *c, const char *fn, const char *what,
                                   ncclResult_t r, double timeout_s) {
    const double start = sd_now(), deadline = start + timeout_s;
    while (r == ncclInProgress) {
        if (sd_now() > deadline) {
            sd_nl.abort(c->nccl->comm);
            c->nccl->comm = NULL;
            SD_ERR(SEGRL_ERR_COMM,
                   "%s: NCCL %s on rank %d of %d did not complete within %g s: a peer died, "
                   "hangs, or is not calling the same collective (communicator aborted)",
                   fn, what, c->rank, c->size, timeout_s);
            return sd_break(c);
        }
        sd_backoff(sd_now() - start);
        if (sd_nl.get_async_error(c->nccl->comm, &r) != ncclSuccess) r = ncclInternalError;
    }
    if (r != ncclSuccess) {
        const char *last = sd_nl.last_error(c->nccl->comm);
        SD_ERR(SEGRL_ERR_COMM, "%s: NCCL %s failed on rank %d of %d: %s%s%s", fn, what, c->rank,
               c->size, sd_nl.error_string(r), last && *last ? ": " : "", last ? last : "");
        return sd_break(c);
    }
    return SEGRL_OK;
}

segrl_status sd_nccl_get_id(const char *fn, unsigned char id[128]) {
    if (sd_nl_ready(fn) != SEGRL_OK) return SEGRL_ERR_CUDA;
    ncclUniqueId u;
    ncclResult_t r = sd_nl.get_unique_id(&u);
    if (r != ncclSuccess)
        return SD_ERR(SEGRL_ERR_CUDA, "%s: ncclGetUniqueId failed: %s", fn, sd_nl.error_string(r));
    memcpy(id, u.internal, sizeof u.internal < 128 ? sizeof u.internal : 128);
    return SEGRL_OK;
}

segrl_status sd_nccl_init(segrl_comm *c, const char *fn, unsigned char id[128], int id_ready) {
    /* every rank checks what it can, and all agree before NCCL starts: a rank without NCCL or
     * without the device must not leave the others waiting in ncclCommInitRankConfig */
    char why[400] = "";
    int32_t ok = 1;
    if (sd_nl_ready(fn) != SEGRL_OK) {
        ok = 0;
        snprintf(why, sizeof why, "%s", segrl_last_error());
    }
    int ndev = 0;
    if (ok && (cudaGetDeviceCount(&ndev) != cudaSuccess || c->cuda_device >= ndev)) {
        ok = 0;
        snprintf(why, sizeof why, "%s: opts->cuda_device: CUDA device %d not available (%d found)",
                 fn, c->cuda_device, ndev);
    }
    if (ok && cudaSetDevice(c->cuda_device) != cudaSuccess) {
        ok = 0;
        snprintf(why, sizeof why, "%s: opts->cuda_device: cudaSetDevice(%d) failed", fn,
                 c->cuda_device);
    }
    if (ok && !id_ready && c->rank == 0 && sd_nccl_get_id(fn, id) != SEGRL_OK) {
        ok = 0;
        snprintf(why, sizeof why, "%s", segrl_last_error());
    }
    int32_t all = ok;
    if (c->size > 1) {
        segrl_status st = sd_cpu_allreduce(c, fn, &ok, &all, 1, SEGRL_DTYPE_I32, SEGRL_REDUCE_MIN);
        if (st != SEGRL_OK) return st;
    }
    if (!ok) return SD_ERR(SEGRL_ERR_NO_DEVICE, "%s", why);
    if (!all)
        return SD_ERR(SEGRL_ERR_NO_DEVICE,
                      "%s: opts->cuda_device: another rank could not start NCCL (see its error)",
                      fn);
    if (!id_ready && c->size > 1) {
        segrl_status st = sd_cpu_bcast(c, fn, id, 128, SEGRL_DTYPE_U8, 0);
        if (st != SEGRL_OK) return st;
    }
    sd_nccl *n = (sd_nccl *)segrl_malloc(sizeof *n);
    if (!n) return SD_ERR(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    n->comm = NULL;
    c->nccl = n;
    ncclUniqueId u;
    memset(&u, 0, sizeof u);
    memcpy(u.internal, id, sizeof u.internal < 128 ? sizeof u.internal : 128);
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclResult_t r = sd_nl.init_rank_config(&n->comm, c->size, u, c->rank, &cfg);
    if (r != ncclSuccess && r != ncclInProgress) {
        c->nccl = NULL;
        segrl_free(n);
        return SD_ERR(SEGRL_ERR_CUDA, "%s: ncclCommInitRankConfig failed: %s", fn,
                      sd_nl.error_string(r));
    }
    segrl_status st = sd_nccl_settle(c, fn, "ncclCommInitRankConfig", r, c->connect_timeout_s);
    if (st != SEGRL_OK) {
        c->broken = 0; /* the communicator is being destroyed anyway */
        return st;
    }
    return SEGRL_OK;
}

void sd_nccl_free(segrl_comm *c, int abort) {
    sd_nccl *n = c->nccl;
    if (!n) return;
    if (n->comm) {
        if (abort) sd_nl.abort(n->comm);
        else sd_nl.destroy(n->comm);
    }
    segrl_free(n);
    c->nccl = NULL;
}

static segrl_status sd_nccl_live(segrl_comm *c, const char *fn) {
    if (!c->nccl || !c->nccl->comm)
        return SD_ERR(SEGRL_ERR_COMM, "%s: the NCCL communicator was aborted", fn);
    return SEGRL_OK;
}

segrl_status sd_nccl_allreduce(segrl_comm *c, const char *fn, const void *in, void *out,
                               int64_t count, int32_t dtype, int32_t op, void *stream) {
    if (sd_nccl_live(c, fn) != SEGRL_OK) return SEGRL_ERR_COMM;
    ncclResult_t r = sd_nl.all_reduce(in, out, (size_t)count, sd_nccl_type(dtype), sd_nccl_op(op),
                                      c->nccl->comm, (cudaStream_t)stream);
    return sd_nccl_settle(c, fn, "ncclAllReduce", r, c->timeout_s);
}

segrl_status sd_nccl_allgatherv(segrl_comm *c, const char *fn, const void *in, int64_t count,
                                void *out, const int64_t *counts, int32_t dtype, void *stream) {
    if (sd_nccl_live(c, fn) != SEGRL_OK) return SEGRL_ERR_COMM;
    int equal = 1;
    for (int32_t r = 0; r < c->size; r++) equal &= counts[r] == count;
    const ncclDataType_t t = sd_nccl_type(dtype);
    const size_t es = segrl_dtype_size((segrl_dtype)dtype);
    ncclResult_t res;
    if (equal) {
        res = sd_nl.all_gather(in, out, (size_t)count, t, c->nccl->comm, (cudaStream_t)stream);
        return sd_nccl_settle(c, fn, "ncclAllGather", res, c->timeout_s);
    }
    res = sd_nl.group_start();
    int64_t displ = 0;
    for (int32_t r = 0; r < c->size && (res == ncclSuccess || res == ncclInProgress); r++) {
        res = sd_nl.broadcast(r == c->rank ? in : NULL, (char *)out + (size_t)displ * es,
                              (size_t)counts[r], t, r, c->nccl->comm, (cudaStream_t)stream);
        displ += counts[r];
    }
    ncclResult_t e = sd_nl.group_end();
    if (res == ncclSuccess || res == ncclInProgress) res = e;
    return sd_nccl_settle(c, fn, "grouped ncclBroadcast (all-gather of unequal sizes)", res,
                          c->timeout_s);
}

segrl_status sd_nccl_bcast(segrl_comm *c, const char *fn, void *buf, int64_t count,
                           int32_t dtype, int32_t root, void *stream) {
    if (sd_nccl_live(c, fn) != SEGRL_OK) return SEGRL_ERR_COMM;
    ncclResult_t r = sd_nl.broadcast(buf, buf, (size_t)count, sd_nccl_type(dtype), root,
                                     c->nccl->comm, (cudaStream_t)stream);
    return sd_nccl_settle(c, fn, "ncclBroadcast", r, c->timeout_s);
}

segrl_status sd_nccl_wait(segrl_comm *c, const char *fn, void *stream) {
    if (sd_nccl_live(c, fn) != SEGRL_OK) return SEGRL_ERR_COMM;
    const double start = sd_now(), deadline = start + c->timeout_s;
    for (;;) {
        cudaError_t q = cudaStreamQuery((cudaStream_t)stream);
        if (q == cudaSuccess) return SEGRL_OK;
        if (q != cudaErrorNotReady) {
            SD_ERR(SEGRL_ERR_CUDA, "%s: stream: %s", fn, cudaGetErrorString(q));
            return sd_break(c);
        }
        ncclResult_t a = ncclSuccess;
        sd_nl.get_async_error(c->nccl->comm, &a);
        if (a != ncclSuccess && a != ncclInProgress)
            return sd_nccl_settle(c, fn, "collective", a, c->timeout_s);
        if (sd_now() > deadline) {
            sd_nl.abort(c->nccl->comm);
            c->nccl->comm = NULL;
            SD_ERR(SEGRL_ERR_COMM,
                   "%s: the stream's NCCL work on rank %d of %d did not finish within %g s: a "
                   "peer died or hangs (NCCL communicator aborted)",
                   fn, c->rank, c->size, c->timeout_s);
            return sd_break(c);
        }
        sd_backoff(sd_now() - start);
    }
}
