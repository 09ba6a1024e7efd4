/* comm.c — the communicator: start-up from mpirun or torchrun-style environment variables,
 * argument checks of the public collectives, and dispatch to the transports (mpi.c, tcp.c,
 * nccl.c). A world of one process ("self") needs no transport: collectives are copies. */
#define _POSIX_C_SOURCE 200809L

#include "dist-impl.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ----------------------------------------------------------------------------
// small helpers

double sd_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sd_backoff(double waited_s) {
    /* MPI progresses only inside MPI_Test: sleeping between polls throttles a large transfer
     * (measured: 64 MB all-reduces 4x slower with 1 ms naps). So poll continuously, yielding the
     * core to oversubscribed peers, as MPI_Wait itself does; only a collective still pending
     * after 10 s (a stuck peer, or a very large transfer) is polled with 1 ms naps between
     * bursts of 4 ms. */
    if (waited_s < 10.0 || fmod(waited_s, 0.005) < 0.004) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
}

segrl_status sd_break(segrl_comm *c) {
    c->broken = 1;
    snprintf(c->broken_msg, sizeof c->broken_msg, "%s", segrl_last_error());
    return SEGRL_ERR_COMM;
}

static segrl_status sd_usable(const segrl_comm *c, const char *fn) {
    if (!c) return SD_ERR(SEGRL_ERR_INVALID, "%s: comm: NULL", fn);
    if (c->broken)
        return SD_ERR(SEGRL_ERR_COMM,
                      "%s: comm: unusable after an earlier failure (%s); end the process", fn,
                      c->broken_msg);
    return SEGRL_OK;
}

#define SD_TRY(expr)                                                                              \
    do {                                                                                          \
        segrl_status sd_st_ = (expr);                                                             \
        if (sd_st_ != SEGRL_OK) return sd_st_;                                                    \
    } while (0)

// ----------------------------------------------------------------------------
// element-wise reduction (TCP and self paths)

#define SD_RED_LOOP(T)                                                                            \
    do {                                                                                          \
        T *a = (T *)acc;                                                                          \
        const T *b = (const T *)x;                                                                \
        if (op == SEGRL_REDUCE_SUM)                                                               \
            for (int64_t i = 0; i < n; i++) a[i] += b[i];                                         \
        else if (op == SEGRL_REDUCE_MAX)                                                          \
            for (int64_t i = 0; i < n; i++) a[i] = b[i] > a[i] ? b[i] : a[i];                     \
        else                                                                                      \
            for (int64_t i = 0; i < n; i++) a[i] = b[i] < a[i] ? b[i] : a[i];                     \
    } while (0)

void sd_reduce_into(void *acc, const void *x, int64_t n, int32_t dtype, int32_t op) {
    switch (dtype) {
    case SEGRL_DTYPE_F32: SD_RED_LOOP(float); break;
    case SEGRL_DTYPE_F64: SD_RED_LOOP(double); break;
    case SEGRL_DTYPE_I32: SD_RED_LOOP(int32_t); break;
    case SEGRL_DTYPE_I64: SD_RED_LOOP(int64_t); break;
    case SEGRL_DTYPE_U8: SD_RED_LOOP(uint8_t); break;
    default: break; /* the callers admit only the dtypes above */
    }
}

// ----------------------------------------------------------------------------
// options and start-up

static double sd_env_seconds(const char *name, double dflt) {
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v > 0) || !isfinite(v)) return NAN; /* segrl_comm_init names it */
    return v;
}

segrl_comm_opts segrl_comm_opts_default(void) {
    segrl_comm_opts o;
    o.launch = SEGRL_COMM_LAUNCH_AUTO;
    o.cuda_device = SEGRL_COMM_CPU_ONLY;
    o.timeout_s = sd_env_seconds("SEGRL_DIST_TIMEOUT", 300.0);
    o.connect_timeout_s = sd_env_seconds("SEGRL_DIST_CONNECT_TIMEOUT", 120.0);
    return o;
}

/* An integer environment variable in [lo, hi]; *out untouched and SEGRL_OK when unset and not
 * required. */
static segrl_status sd_env_int(const char *fn, const char *name, int required, long lo, long hi,
                               long *out) {
    const char *s = getenv(name);
    if (!s || !*s) {
        if (required)
            return SD_ERR(SEGRL_ERR_INVALID,
                          "%s: %s: not set (torchrun-style launch needs RANK, WORLD_SIZE, "
                          "MASTER_ADDR, MASTER_PORT)",
                          fn, name);
        return SEGRL_OK;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: '%s' is not an integer in [%ld, %ld]", fn, name,
                      s, lo, hi);
    *out = v;
    return SEGRL_OK;
}

static segrl_status sd_check_opts(const char *fn, const segrl_comm_opts *o) {
    if (o->launch < SEGRL_COMM_LAUNCH_AUTO || o->launch > SEGRL_COMM_LAUNCH_ENV)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: opts->launch: %d is not a segrl_comm_launch", fn,
                      o->launch);
    if (o->cuda_device < SEGRL_COMM_LOCAL_RANK)
        return SD_ERR(SEGRL_ERR_INVALID,
                      "%s: opts->cuda_device: %d (an ordinal, SEGRL_COMM_CPU_ONLY or "
                      "SEGRL_COMM_LOCAL_RANK)",
                      fn, o->cuda_device);
    if (!(o->timeout_s > 0) || !isfinite(o->timeout_s))
        return SD_ERR(SEGRL_ERR_INVALID,
                      "%s: opts->timeout_s: %g, must be a positive number of seconds (from "
                      "SEGRL_DIST_TIMEOUT='%s' when the defaults were used)",
                      fn, o->timeout_s, getenv("SEGRL_DIST_TIMEOUT") ? getenv("SEGRL_DIST_TIMEOUT") : "");
    if (!(o->connect_timeout_s > 0) || !isfinite(o->connect_timeout_s))
        return SD_ERR(SEGRL_ERR_INVALID,
                      "%s: opts->connect_timeout_s: %g, must be a positive number of seconds "
                      "(from SEGRL_DIST_CONNECT_TIMEOUT='%s' when the defaults were used)",
                      fn, o->connect_timeout_s,
                      getenv("SEGRL_DIST_CONNECT_TIMEOUT") ? getenv("SEGRL_DIST_CONNECT_TIMEOUT") : "");
    return SEGRL_OK;
}

/* torchrun-style environment: RANK, WORLD_SIZE (required), LOCAL_RANK, LOCAL_WORLD_SIZE
 * (optional), MASTER_ADDR, MASTER_PORT (required when WORLD_SIZE > 1) */
static segrl_status sd_env_launch(segrl_comm *c, const char *fn, const char **addr, int *port) {
    long size = 1, rank = 0, lrank = -1, lsize = -1, p = 0;
    SD_TRY(sd_env_int(fn, "WORLD_SIZE", 1, 1, INT_MAX, &size));
    SD_TRY(sd_env_int(fn, "RANK", 1, 0, size - 1, &rank));
    SD_TRY(sd_env_int(fn, "LOCAL_WORLD_SIZE", 0, 1, size, &lsize));
    SD_TRY(sd_env_int(fn, "LOCAL_RANK", 0, 0, (lsize > 0 ? lsize : size) - 1, &lrank));
    c->rank = (int32_t)rank;
    c->size = (int32_t)size;
    /* without LOCAL_RANK: one machine is assumed (local rank = rank) */
    c->local_rank = (int32_t)(lrank >= 0 ? lrank : rank);
    c->local_size = (int32_t)(lsize > 0 ? lsize : size);
    *addr = NULL;
    *port = 0;
    if (size > 1) {
        /* SEGRL_DIST_PORT, when set, replaces MASTER_PORT. Without it, under torchrun's agent
         * store (TORCHELASTIC_USE_AGENT_STORE=True: torchrun's own TCPStore already listens on
         * MASTER_PORT) rank 0 listens on MASTER_PORT + 1. */
        const char *agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
        if (getenv("SEGRL_DIST_PORT") && *getenv("SEGRL_DIST_PORT")) {
            SD_TRY(sd_env_int(fn, "SEGRL_DIST_PORT", 1, 1, 65535, &p));
        } else if (agent && (!strcmp(agent, "True") || !strcmp(agent, "true") || !strcmp(agent, "1"))) {
            SD_TRY(sd_env_int(fn, "MASTER_PORT", 1, 1, 65534, &p));
            p += 1;
        } else {
            SD_TRY(sd_env_int(fn, "MASTER_PORT", 1, 1, 65535, &p));
        }
        const char *a = getenv("MASTER_ADDR");
        if (!a || !*a)
            return SD_ERR(SEGRL_ERR_INVALID,
                          "%s: MASTER_ADDR: not set (torchrun-style launch needs RANK, "
                          "WORLD_SIZE, MASTER_ADDR, MASTER_PORT)",
                          fn);
        *addr = a;
        *port = (int)p;
    }
    return SEGRL_OK;
}

static const char *sd_nccl_missing =
    "opts->cuda_device: this build of segrl has no CUDA support (configure with nvcc on PATH)";

segrl_status segrl_comm_init(const segrl_comm_opts *opts, segrl_comm **out_comm) {
    static const char *fn = "segrl_comm_init";
    if (!out_comm) return SD_ERR(SEGRL_ERR_INVALID, "%s: out_comm: NULL", fn);
    segrl_comm_opts o = opts ? *opts : segrl_comm_opts_default();
    SD_TRY(sd_check_opts(fn, &o));
#ifndef SEGRL_WITH_CUDA
    if (o.cuda_device != SEGRL_COMM_CPU_ONLY)
        return SD_ERR(SEGRL_ERR_UNSUPPORTED, "%s: %s", fn, sd_nccl_missing);
#else
    (void)sd_nccl_missing;
#endif
    int launch = o.launch;
    if (launch == SEGRL_COMM_LAUNCH_AUTO) {
        const char *ws = getenv("WORLD_SIZE");
        launch = sd_mpi_launched() ? SEGRL_COMM_LAUNCH_MPI
                 : (ws && *ws)     ? SEGRL_COMM_LAUNCH_ENV
                                   : -1; /* a world of one */
    }
    segrl_comm *c = (segrl_comm *)segrl_malloc(sizeof *c);
    if (!c) return SD_ERR(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    memset(c, 0, sizeof *c);
    c->timeout_s = o.timeout_s;
    c->connect_timeout_s = o.connect_timeout_s;
    c->cuda_device = -1;
    c->size = c->local_size = 1;
    segrl_status st = SEGRL_OK;
    unsigned char id[128];
    int id_ready = 0;
    memset(id, 0, sizeof id);
    if (launch == SEGRL_COMM_LAUNCH_MPI) {
        c->kind = SD_MPI;
        st = sd_mpi_init(c, fn);
    } else if (launch == SEGRL_COMM_LAUNCH_ENV) {
        const char *addr;
        int port;
        st = sd_env_launch(c, fn, &addr, &port);
        if (st == SEGRL_OK && c->size > 1) {
            c->kind = SD_TCP;
            int ok = 1; /* rank 0: whether it could make the NCCL id the others need */
#ifdef SEGRL_WITH_CUDA
            if (o.cuda_device != SEGRL_COMM_CPU_ONLY && c->rank == 0)
                ok = sd_nccl_get_id(fn, id) == SEGRL_OK;
            char why[256];
            snprintf(why, sizeof why, "%s", segrl_last_error());
#endif
            st = sd_tcp_init(c, fn, addr, port, id, &ok);
#ifdef SEGRL_WITH_CUDA
            if (st == SEGRL_OK && !ok)
                st = c->rank == 0 ? SD_ERR(SEGRL_ERR_CUDA, "%s", why)
                                  : SD_ERR(SEGRL_ERR_CUDA,
                                           "%s: opts->cuda_device: rank 0 could not create the "
                                           "NCCL unique id (see rank 0's error)",
                                           fn);
            id_ready = o.cuda_device != SEGRL_COMM_CPU_ONLY;
#else
            (void)ok;
#endif
        }
    }
#ifdef SEGRL_WITH_CUDA
    if (st == SEGRL_OK && o.cuda_device != SEGRL_COMM_CPU_ONLY) {
        c->cuda_device = o.cuda_device == SEGRL_COMM_LOCAL_RANK ? c->local_rank : o.cuda_device;
        st = sd_nccl_init(c, fn, id, id_ready);
    }
#else
    (void)id_ready;
#endif
    if (st != SEGRL_OK) {
        segrl_comm_free(c);
        return st;
    }
    *out_comm = c;
    return SEGRL_OK;
}

void segrl_comm_free(segrl_comm *c) {
    if (!c) return;
#ifdef SEGRL_WITH_CUDA
    if (c->nccl) sd_nccl_free(c, c->broken);
#endif
    if (c->kind == SD_MPI) sd_mpi_free(c);
    if (c->kind == SD_TCP) sd_tcp_free(c);
    segrl_free(c);
}

void segrl_comm_abort(segrl_comm *c, int code) {
    fflush(stdout);
    fflush(stderr);
    if (c && c->kind == SD_MPI) sd_mpi_abort(c, code); /* does not return */
#ifdef SEGRL_WITH_CUDA
    if (c && c->nccl) sd_nccl_free(c, 1);
#endif
    if (c && c->kind == SD_TCP) sd_tcp_free(c); /* peers see their connection close */
    exit(code);
}

int32_t segrl_comm_rank(const segrl_comm *c) { return c ? c->rank : -1; }
int32_t segrl_comm_size(const segrl_comm *c) { return c ? c->size : -1; }
int32_t segrl_comm_local_rank(const segrl_comm *c) { return c ? c->local_rank : -1; }
int32_t segrl_comm_local_size(const segrl_comm *c) { return c ? c->local_size : -1; }

const char *segrl_comm_backend(const segrl_comm *c) {
    if (!c) return "";
    static const char *names[3][2] = {{"self", "self+nccl"}, {"mpi", "mpi+nccl"}, {"tcp", "tcp+nccl"}};
    return names[c->kind][c->nccl != NULL];
}

// ----------------------------------------------------------------------------
// CPU dispatch

segrl_status sd_cpu_allreduce(segrl_comm *c, const char *fn, const void *in, void *out,
                              int64_t count, int32_t dtype, int32_t op) {
    SD_TRY(sd_usable(c, fn));
    c->seq++;
    if (c->kind == SD_MPI) return sd_mpi_allreduce(c, fn, in, out, count, dtype, op);
    if (c->kind == SD_TCP) return sd_tcp_allreduce(c, fn, in, out, count, dtype, op);
    if (in != out) memcpy(out, in, (size_t)count * segrl_dtype_size((segrl_dtype)dtype));
    return SEGRL_OK;
}

static segrl_status sd_cpu_allgatherv(segrl_comm *c, const char *fn, const void *in,
                                      int64_t count, void *out, const int64_t *counts,
                                      int32_t dtype) {
    SD_TRY(sd_usable(c, fn));
    c->seq++;
    if (c->kind == SD_MPI) return sd_mpi_allgatherv(c, fn, in, count, out, counts, dtype);
    if (c->kind == SD_TCP) return sd_tcp_allgatherv(c, fn, in, count, out, counts, dtype);
    memcpy(out, in, (size_t)count * segrl_dtype_size((segrl_dtype)dtype));
    return SEGRL_OK;
}

segrl_status sd_cpu_allgather(segrl_comm *c, const char *fn, const void *in, void *out,
                              int64_t count, int32_t dtype) {
    int64_t *counts = (int64_t *)segrl_malloc((size_t)c->size * sizeof(int64_t));
    if (!counts) return SD_ERR(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    for (int32_t r = 0; r < c->size; r++) counts[r] = count;
    segrl_status st = sd_cpu_allgatherv(c, fn, in, count, out, counts, dtype);
    segrl_free(counts);
    return st;
}

segrl_status sd_cpu_bcast(segrl_comm *c, const char *fn, void *buf, int64_t count, int32_t dtype,
                          int32_t root) {
    SD_TRY(sd_usable(c, fn));
    c->seq++;
    if (c->kind == SD_MPI) return sd_mpi_bcast(c, fn, buf, count, dtype, root);
    if (c->kind == SD_TCP) return sd_tcp_bcast(c, fn, buf, count, dtype, root);
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// argument checks of the public collectives

typedef struct sd_buf {
    void *data;
    int64_t count;
    int32_t dtype;
    int cuda;
} sd_buf;

static segrl_status sd_view(const segrl_comm *c, const char *fn, const char *name, segrl_view v,
                            int reduce, sd_buf *out) {
    if (v.ndim < 0 || v.ndim > SEGRL_MAX_DIMS)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: ndim %d not in [0, %d]", fn, name, v.ndim,
                      SEGRL_MAX_DIMS);
    int64_t n = 1, expect = 1;
    for (int d = v.ndim - 1; d >= 0; d--) {
        if (v.shape[d] < 0)
            return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: negative shape[%d] = %lld", fn, name, d,
                          (long long)v.shape[d]);
        if (v.shape[d] > 1 && v.strides[d] != expect)
            return SD_ERR(SEGRL_ERR_INVALID,
                          "%s: %s: must be contiguous (strides[%d] = %lld, expected %lld)", fn,
                          name, d, (long long)v.strides[d], (long long)expect);
        expect *= v.shape[d];
        n *= v.shape[d];
    }
    if (v.ndim == 0 && v.data == NULL) n = 0; /* none: nothing to send */
    if (n > 0 && v.data == NULL)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: data is NULL", fn, name);
    const int cuda = v.device.type == SEGRL_DEVICE_CUDA;
    if (v.device.type != SEGRL_DEVICE_CPU && !cuda)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: unknown device type %d", fn, name,
                      v.device.type);
    int ok;
    switch (v.dtype) {
    case SEGRL_DTYPE_F32:
    case SEGRL_DTYPE_F64:
    case SEGRL_DTYPE_I32:
    case SEGRL_DTYPE_I64:
    case SEGRL_DTYPE_U8: ok = 1; break;
    case SEGRL_DTYPE_F16:
    case SEGRL_DTYPE_BF16: ok = cuda || !reduce; break;
    default:
        return SD_ERR(SEGRL_ERR_INVALID, "%s: %s: unknown dtype %d", fn, name, v.dtype);
    }
    if (!ok)
        return SD_ERR(SEGRL_ERR_UNSUPPORTED,
                      "%s: %s: %s reductions on CPU views are not supported (f32, f64, i32, i64, "
                      "u8; %s is reduced on CUDA views through NCCL)",
                      fn, name, segrl_dtype_name((segrl_dtype)v.dtype),
                      segrl_dtype_name((segrl_dtype)v.dtype));
    if (cuda) {
        if (!c->nccl)
            return SD_ERR(SEGRL_ERR_UNSUPPORTED,
                          "%s: %s: a CUDA view, but the communicator was created without a CUDA "
                          "device (opts.cuda_device)",
                          fn, name);
        if (v.device.index != c->cuda_device)
            return SD_ERR(SEGRL_ERR_INVALID,
                          "%s: %s: on CUDA device %d, the communicator's device is %d", fn, name,
                          v.device.index, c->cuda_device);
    }
    out->data = v.data;
    out->count = n;
    out->dtype = v.dtype;
    out->cuda = cuda;
    return SEGRL_OK;
}

static int sd_overlap(const sd_buf *a, const sd_buf *b) {
    if (!a->count || !b->count) return 0;
    const char *p = (const char *)a->data, *q = (const char *)b->data;
    size_t sa = (size_t)a->count * segrl_dtype_size((segrl_dtype)a->dtype);
    size_t sb = (size_t)b->count * segrl_dtype_size((segrl_dtype)b->dtype);
    return p < q + sb && q < p + sa;
}

static segrl_status sd_same_kind(const char *fn, const sd_buf *x, const sd_buf *o) {
    if (x->dtype != o->dtype)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: out: dtype %s, x is %s", fn,
                      segrl_dtype_name((segrl_dtype)o->dtype), segrl_dtype_name((segrl_dtype)x->dtype));
    if (x->cuda != o->cuda)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: out: on %s, x is on %s", fn, o->cuda ? "CUDA" : "CPU",
                      x->cuda ? "CUDA" : "CPU");
    return SEGRL_OK;
}

segrl_status segrl_comm_allreduce(segrl_comm *c, segrl_view x, int32_t op, void *stream,
                                  segrl_view out) {
    static const char *fn = "segrl_comm_allreduce";
    SD_TRY(sd_usable(c, fn));
    sd_buf bx = {NULL, 0, 0, 0}, bo = {NULL, 0, 0, 0};
    SD_TRY(sd_view(c, fn, "x", x, 1, &bx));
    SD_TRY(sd_view(c, fn, "out", out, 1, &bo));
    SD_TRY(sd_same_kind(fn, &bx, &bo));
    if (op != SEGRL_REDUCE_SUM && op != SEGRL_REDUCE_MAX && op != SEGRL_REDUCE_MIN)
        return SD_ERR(SEGRL_ERR_INVALID,
                      "%s: op: %d, collectives reduce with SEGRL_REDUCE_SUM, SEGRL_REDUCE_MAX or "
                      "SEGRL_REDUCE_MIN",
                      fn, op);
    if (bo.count != bx.count)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: out: %lld elements, x has %lld", fn,
                      (long long)bo.count, (long long)bx.count);
    if (bx.data != bo.data && sd_overlap(&bx, &bo))
        return SD_ERR(SEGRL_ERR_INVALID, "%s: out: overlaps x without being x (in place)", fn);
    if (bx.cuda) {
#ifdef SEGRL_WITH_CUDA
        c->seq++;
        return sd_nccl_allreduce(c, fn, bx.data, bo.data, bx.count, bx.dtype, op, stream);
#endif
    }
    (void)stream;
    return sd_cpu_allreduce(c, fn, bx.data, bo.data, bx.count, bx.dtype, op);
}

segrl_status segrl_comm_allgather(segrl_comm *c, segrl_view x, void *stream, segrl_view out) {
    static const char *fn = "segrl_comm_allgather";
    SD_TRY(sd_usable(c, fn));
    sd_buf bx = {NULL, 0, 0, 0}, bo = {NULL, 0, 0, 0};
    SD_TRY(sd_view(c, fn, "x", x, 0, &bx));
    SD_TRY(sd_view(c, fn, "out", out, 0, &bo));
    SD_TRY(sd_same_kind(fn, &bx, &bo));
    if (bo.count != bx.count * c->size)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: out: %lld elements, expected size * n = %d * %lld",
                      fn, (long long)bo.count, c->size, (long long)bx.count);
    if (sd_overlap(&bx, &bo)) return SD_ERR(SEGRL_ERR_INVALID, "%s: out: overlaps x", fn);
    int64_t *counts = (int64_t *)segrl_malloc((size_t)c->size * sizeof(int64_t));
    if (!counts) return SD_ERR(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    for (int32_t r = 0; r < c->size; r++) counts[r] = bx.count;
    segrl_status st;
    if (bx.cuda) {
#ifdef SEGRL_WITH_CUDA
        c->seq++;
        st = sd_nccl_allgatherv(c, fn, bx.data, bx.count, bo.data, counts, bx.dtype, stream);
#else
        st = SEGRL_ERR_UNSUPPORTED; /* sd_view refused CUDA views already */
#endif
    } else {
        (void)stream;
        st = sd_cpu_allgatherv(c, fn, bx.data, bx.count, bo.data, counts, bx.dtype);
    }
    segrl_free(counts);
    return st;
}

segrl_status segrl_comm_allgatherv(segrl_comm *c, segrl_view x, void *stream, segrl_view out,
                                   int64_t *out_counts) {
    static const char *fn = "segrl_comm_allgatherv";
    SD_TRY(sd_usable(c, fn));
    sd_buf bx = {NULL, 0, 0, 0}, bo = {NULL, 0, 0, 0};
    SD_TRY(sd_view(c, fn, "x", x, 0, &bx));
    SD_TRY(sd_view(c, fn, "out", out, 0, &bo));
    SD_TRY(sd_same_kind(fn, &bx, &bo));
    if (sd_overlap(&bx, &bo)) return SD_ERR(SEGRL_ERR_INVALID, "%s: out: overlaps x", fn);
    /* counts[r] = n_r, then counts[size + r] = out capacity of rank r */
    int64_t *all = (int64_t *)segrl_malloc((size_t)c->size * 2 * sizeof(int64_t));
    if (!all) return SD_ERR(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    int64_t mine[2] = {bx.count, bo.count}, *pairs = all;
    segrl_status st = sd_cpu_allgather(c, fn, mine, pairs, 2, SEGRL_DTYPE_I64);
    if (st == SEGRL_OK) {
        int64_t total = 0;
        for (int32_t r = 0; r < c->size; r++) total += pairs[2 * r];
        for (int32_t r = 0; r < c->size && st == SEGRL_OK; r++)
            if (pairs[2 * r + 1] < total)
                st = SD_ERR(SEGRL_ERR_INVALID,
                            "%s: out: rank %d gave %lld elements, the gathered total is %lld", fn,
                            r, (long long)pairs[2 * r + 1], (long long)total);
    }
    if (st == SEGRL_OK) {
        /* compact n_r to the front, in place (all[r] is written after pairs[2r] >= r is read) */
        int64_t *counts = all;
        for (int32_t r = 0; r < c->size; r++) counts[r] = pairs[2 * r];
        if (bx.cuda) {
#ifdef SEGRL_WITH_CUDA
            c->seq++;
            st = sd_nccl_allgatherv(c, fn, bx.data, bx.count, bo.data, counts, bx.dtype, stream);
#endif
        } else {
            (void)stream;
            st = sd_cpu_allgatherv(c, fn, bx.data, bx.count, bo.data, counts, bx.dtype);
        }
        if (st == SEGRL_OK && out_counts)
            memcpy(out_counts, counts, (size_t)c->size * sizeof(int64_t));
    }
    segrl_free(all);
    return st;
}

segrl_status segrl_comm_broadcast(segrl_comm *c, segrl_view x, int32_t root, void *stream) {
    static const char *fn = "segrl_comm_broadcast";
    SD_TRY(sd_usable(c, fn));
    sd_buf bx = {NULL, 0, 0, 0};
    SD_TRY(sd_view(c, fn, "x", x, 0, &bx));
    if (root < 0 || root >= c->size)
        return SD_ERR(SEGRL_ERR_INVALID, "%s: root: %d not in [0, %d)", fn, root, c->size);
    if (bx.cuda) {
#ifdef SEGRL_WITH_CUDA
        c->seq++;
        return sd_nccl_bcast(c, fn, bx.data, bx.count, bx.dtype, root, stream);
#endif
    }
    (void)stream;
    return sd_cpu_bcast(c, fn, bx.data, bx.count, bx.dtype, root);
}

segrl_status segrl_comm_barrier(segrl_comm *c) {
    static const char *fn = "segrl_comm_barrier";
    SD_TRY(sd_usable(c, fn));
    c->seq++;
    if (c->kind == SD_MPI) return sd_mpi_barrier(c, fn);
    if (c->kind == SD_TCP) return sd_tcp_barrier(c, fn);
    return SEGRL_OK;
}

segrl_status segrl_comm_wait(segrl_comm *c, void *stream) {
    static const char *fn = "segrl_comm_wait";
    SD_TRY(sd_usable(c, fn));
#ifdef SEGRL_WITH_CUDA
    if (c->nccl) return sd_nccl_wait(c, fn, stream);
#endif
    (void)stream;
    return SEGRL_OK;
}
