/* tcp.c — torchrun-style start-up: the TCP rendezvous on MASTER_ADDR:MASTER_PORT and a small CPU
 * transport over the same connections.
 *
 * Rendezvous: rank 0 listens on MASTER_PORT (all interfaces); ranks 1..W-1 connect (retrying
 * until connect_timeout_s: rank 0 may start last) and send {magic, version, rank, world size};
 * rank 0 checks that every rank in [1, W) arrives once with the same W, then answers each with a
 * 128-byte blob (the NCCL unique id when NCCL is used). A rank with a wrong WORLD_SIZE or a
 * duplicate RANK is refused with a message saying so, on both sides.
 *
 * Collectives: a star through rank 0. Every rank sends a 40-byte header {magic, kind, collective
 * number, count, dtype, op/root} and its payload; rank 0 checks the headers agree (a rank calling
 * a different collective is an error reported to every rank), combines the payloads in rank order
 * and sends the result back. Time and bytes: rank 0 moves 2 (W-1) n bytes per all-reduce, so this
 * is for small data (estimator statistics, metrics, counts) — gradients go through NCCL or MPI.
 * Failures: every wait is a poll() against the deadline; a connection closed by a peer is seen at
 * once (its process ended), and rank 0 relays the failure to the other ranks, so every rank
 * returns SEGRL_ERR_COMM with a message naming the rank at fault. */
#define _POSIX_C_SOURCE 200809L

#include "dist-impl.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define SD_MAGIC 0x5e6d1571u
#define SD_VERSION 1u
#define SD_ERRMSG 99 /* a header carrying an error text instead of data */

struct sd_tcp {
    int fd;   /* ranks > 0: the connection to rank 0 */
    int *fds; /* rank 0: fds[r] for r in [1, W) */
    char *tmp;
    size_t tmp_cap;
};

typedef struct sd_hdr {
    uint32_t magic, kind;
    uint64_t seq;
    int64_t count; /* elements (SD_ERRMSG: bytes of text) */
    int32_t dtype, aux;
    int64_t bytes; /* payload bytes that follow */
} sd_hdr;

typedef struct sd_hello {
    uint32_t magic, version;
    int32_t rank, size;
} sd_hello;

typedef struct sd_welcome {
    uint32_t magic, ok;
    uint32_t refused; /* non-zero: text follows in why */
    unsigned char blob[128];
    char why[200];
} sd_welcome;

// ----------------------------------------------------------------------------
// socket I/O against a deadline: 0 done, 1 timeout, 2 closed by the peer, 3 error (errno)

static int sd_poll(int fd, short ev, double deadline) {
    for (;;) {
        double left = deadline - sd_now();
        if (left <= 0) return 1;
        struct pollfd p = {fd, ev, 0};
        int ms = left > 1000.0 ? 1000000 : (int)(left * 1000.0) + 1;
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return 3;
        if (r == 0) continue;
        return 0;
    }
}

static int sd_send_all(int fd, const void *buf, size_t n, double deadline) {
    const char *p = (const char *)buf;
    while (n > 0) {
        int w = sd_poll(fd, POLLOUT, deadline);
        if (w) return w;
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k < 0) return errno == EPIPE || errno == ECONNRESET ? 2 : 3;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int sd_recv_all(int fd, void *buf, size_t n, double deadline) {
    char *p = (char *)buf;
    while (n > 0) {
        int w = sd_poll(fd, POLLIN, deadline);
        if (w) return w;
        ssize_t k = recv(fd, p, n, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k < 0) return errno == ECONNRESET ? 2 : 3;
        if (k == 0) return 2;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static const char *sd_io_what(int w) {
    return w == 1 ? "timed out" : w == 2 ? "connection closed (the process ended or crashed)"
                                         : strerror(errno);
}

static void sd_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// ----------------------------------------------------------------------------
// rendezvous

static segrl_status sd_listen(const char *fn, int port, int backlog, int *out_fd) {
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int e = getaddrinfo(NULL, ps, &hints, &res);
    if (e) return SD_ERR(SEGRL_ERR_COMM, "%s: MASTER_PORT: %s", fn, gai_strerror(e));
    int err = 0;
    /* IPv6 first (dual stack where available), then IPv4 */
    for (int pass = 0; pass < 2; pass++)
        for (struct addrinfo *a = res; a; a = a->ai_next) {
            if ((pass == 0) != (a->ai_family == AF_INET6)) continue;
            int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
            if (fd < 0) {
                err = errno;
                continue;
            }
            int one = 1, zero = 0;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (a->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
            if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, backlog) == 0) {
                freeaddrinfo(res);
                *out_fd = fd;
                return SEGRL_OK;
            }
            err = errno;
            close(fd);
        }
    freeaddrinfo(res);
    return SD_ERR(SEGRL_ERR_COMM,
                  "%s: MASTER_PORT: rank 0 cannot listen on port %d: %s%s", fn, port,
                  strerror(err),
                  err == EADDRINUSE ? " (if the launcher itself listens there, set SEGRL_DIST_PORT "
                                      "to a free port on every rank)"
                                    : "");
    /* (torchrun's agent store is handled before: see sd_env_launch in comm.c) */
}

static segrl_status sd_connect(const char *fn, const char *addr, int port, double deadline,
                               int *out_fd) {
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int err = 0;
    for (;;) {
        int e = getaddrinfo(addr, ps, &hints, &res);
        if (e == 0) {
            for (struct addrinfo *a = res; a; a = a->ai_next) {
                int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
                if (fd < 0) {
                    err = errno;
                    continue;
                }
                if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
                    freeaddrinfo(res);
                    *out_fd = fd;
                    return SEGRL_OK;
                }
                err = errno;
                close(fd);
            }
            freeaddrinfo(res);
            res = NULL;
        } else if (e != EAI_AGAIN) {
            return SD_ERR(SEGRL_ERR_INVALID, "%s: MASTER_ADDR: '%s': %s", fn, addr, gai_strerror(e));
        }
        if (sd_now() > deadline)
            return SD_ERR(SEGRL_ERR_COMM,
                          "%s: MASTER_ADDR: could not connect to rank 0 at %s:%d within the "
                          "connect timeout: %s",
                          fn, addr, port, err ? strerror(err) : "no address");
        struct timespec ts = {0, 100000000L}; /* rank 0 may not listen yet: retry every 0.1 s */
        nanosleep(&ts, NULL);
    }
}

segrl_status sd_tcp_init(segrl_comm *c, const char *fn, const char *addr, int port,
                         unsigned char blob[128], int *blob_ok) {
    sd_tcp *t = (sd_tcp *)segrl_malloc(sizeof *t);
    if (!t) return SD_ERR(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    memset(t, 0, sizeof *t);
    t->fd = -1;
    c->tcp = t;
    const double deadline = sd_now() + c->connect_timeout_s;
    if (c->rank != 0) {
        segrl_status st = sd_connect(fn, addr, port, deadline, &t->fd);
        if (st != SEGRL_OK) return st;
        sd_nodelay(t->fd);
        sd_hello h = {SD_MAGIC, SD_VERSION, c->rank, c->size};
        sd_welcome w;
        int io = sd_send_all(t->fd, &h, sizeof h, deadline);
        if (!io) io = sd_recv_all(t->fd, &w, sizeof w, deadline);
        if (io)
            return SD_ERR(SEGRL_ERR_COMM,
                          "%s: rendezvous with rank 0 at %s:%d: %s (waiting for all %d ranks "
                          "to connect)",
                          fn, addr, port, sd_io_what(io), c->size);
        if (w.magic != SD_MAGIC)
            return SD_ERR(SEGRL_ERR_COMM,
                          "%s: MASTER_PORT: %s:%d answered, but not as a segrl rank 0", fn, addr,
                          port);
        if (w.refused) {
            w.why[sizeof w.why - 1] = '\0';
            return SD_ERR(SEGRL_ERR_INVALID, "%s: rank 0 refused this rank: %s", fn, w.why);
        }
        memcpy(blob, w.blob, 128);
        *blob_ok = (int)w.ok;
        return SEGRL_OK;
    }
    /* rank 0 */
    t->fds = (int *)segrl_malloc((size_t)c->size * sizeof(int));
    if (!t->fds) return SD_ERR(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    for (int32_t r = 0; r < c->size; r++) t->fds[r] = -1;
    int lfd = -1;
    segrl_status st = sd_listen(fn, port, c->size, &lfd);
    if (st != SEGRL_OK) return st;
    int32_t joined = 0;
    while (joined < c->size - 1) {
        if (sd_poll(lfd, POLLIN, deadline)) {
            close(lfd);
            return SD_ERR(SEGRL_ERR_COMM,
                          "%s: rendezvous: only %d of %d ranks connected to port %d within the "
                          "connect timeout (%g s)",
                          fn, joined + 1, c->size, port, c->connect_timeout_s);
        }
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) continue;
        sd_nodelay(fd);
        sd_hello h;
        if (sd_recv_all(fd, &h, sizeof h, deadline) || h.magic != SD_MAGIC) {
            close(fd); /* not one of ours (a port scanner, a stale client) */
            continue;
        }
        sd_welcome w;
        memset(&w, 0, sizeof w);
        w.magic = SD_MAGIC;
        if (h.version != SD_VERSION)
            snprintf(w.why, sizeof w.why, "protocol version %u, rank 0 speaks %u", h.version,
                     SD_VERSION);
        else if (h.size != c->size)
            snprintf(w.why, sizeof w.why, "rank %d has WORLD_SIZE=%d, rank 0 has %d", h.rank,
                     h.size, c->size);
        else if (h.rank <= 0 || h.rank >= c->size || t->fds[h.rank] >= 0)
            snprintf(w.why, sizeof w.why, "RANK=%d is out of range or already taken", h.rank);
        if (w.why[0]) {
            w.refused = 1;
            sd_send_all(fd, &w, sizeof w, deadline);
            close(fd);
            close(lfd);
            return SD_ERR(SEGRL_ERR_INVALID, "%s: rendezvous: refused a rank: %s", fn, w.why);
        }
        t->fds[h.rank] = fd;
        joined++;
    }
    close(lfd);
    sd_welcome w;
    memset(&w, 0, sizeof w);
    w.magic = SD_MAGIC;
    w.ok = (uint32_t)*blob_ok;
    memcpy(w.blob, blob, 128);
    for (int32_t r = 1; r < c->size; r++) {
        int io = sd_send_all(t->fds[r], &w, sizeof w, deadline);
        if (io)
            return SD_ERR(SEGRL_ERR_COMM, "%s: rendezvous: answering rank %d: %s", fn, r,
                          sd_io_what(io));
    }
    return SEGRL_OK;
}

void sd_tcp_free(segrl_comm *c) {
    sd_tcp *t = c->tcp;
    if (!t) return;
    if (t->fd >= 0) close(t->fd);
    if (t->fds)
        for (int32_t r = 1; r < c->size; r++)
            if (t->fds[r] >= 0) close(t->fds[r]);
    segrl_free(t->fds);
    segrl_free(t->tmp);
    segrl_free(t);
    c->tcp = NULL;
}

// ----------------------------------------------------------------------------
// the star

static const char *sd_kind_name(uint32_t k) {
    switch (k) {
    case SD_ALLREDUCE: return "allreduce";
    case SD_ALLGATHER: return "allgather";
    case SD_ALLGATHERV: return "allgatherv";
    case SD_BCAST: return "broadcast";
    case SD_BARRIER: return "barrier";
    }
    return "?";
}

static void sd_hdr_str(const sd_hdr *h, char *buf, size_t n) {
    snprintf(buf, n, "collective #%llu, %s of %lld %s", (unsigned long long)h->seq,
             sd_kind_name(h->kind), (long long)h->count, segrl_dtype_name((segrl_dtype)h->dtype));
}

/* rank 0: tells every peer still connected that the collective failed, then breaks */
static segrl_status sd_fail0(segrl_comm *c) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s", segrl_last_error());
    sd_hdr h = {SD_MAGIC, SD_ERRMSG, c->seq, (int64_t)strlen(msg), 0, 0, (int64_t)strlen(msg)};
    const double deadline = sd_now() + 1.0; /* best effort */
    for (int32_t r = 1; r < c->size; r++) {
        int fd = c->tcp->fds[r];
        if (fd < 0) continue;
        if (sd_send_all(fd, &h, sizeof h, deadline) == 0)
            sd_send_all(fd, msg, (size_t)h.bytes, deadline);
    }
    SD_ERR(SEGRL_ERR_COMM, "%s", msg);
    return sd_break(c);
}

static char *sd_tmp(sd_tcp *t, size_t n) {
    if (n > t->tmp_cap) {
        char *p = (char *)segrl_realloc(t->tmp, n);
        if (!p) return NULL;
        t->tmp = p;
        t->tmp_cap = n;
    }
    return t->tmp;
}

/* One star collective. `mine` (mine_bytes) is this rank's contribution; `result` (result_bytes)
 * what every rank ends with. On rank 0, `take(r, hdr)` returns where rank r's payload goes (NULL:
 * into scratch, then `fold` combines it). */
typedef struct sd_star {
    uint32_t kind;
    int64_t count;
    int32_t dtype, aux;
    const void *mine;
    int64_t mine_bytes;
    void *result;
    int64_t result_bytes;
    /* rank 0 */
    const int64_t *counts; /* allgatherv: expected count per rank */
    char *gather_base;     /* allgatherv: payload of rank r at gather_base + displ */
    int32_t op;            /* allreduce */
} sd_star;

static segrl_status sd_star_run(segrl_comm *c, const char *fn, sd_star *s) {
    sd_tcp *t = c->tcp;
    const size_t es = segrl_dtype_size((segrl_dtype)s->dtype);
    const double deadline = sd_now() + c->timeout_s;
    sd_hdr h = {SD_MAGIC, s->kind, c->seq, s->count, s->dtype, s->aux, s->mine_bytes};
    char what[160];
    sd_hdr_str(&h, what, sizeof what);
    if (c->rank != 0) {
        int io = sd_send_all(t->fd, &h, sizeof h, deadline);
        if (!io && s->mine_bytes) io = sd_send_all(t->fd, s->mine, (size_t)s->mine_bytes, deadline);
        sd_hdr r;
        if (!io) io = sd_recv_all(t->fd, &r, sizeof r, deadline);
        if (!io && r.kind == SD_ERRMSG) {
            char msg[400];
            size_t n = r.bytes < (int64_t)sizeof msg - 1 ? (size_t)r.bytes : sizeof msg - 1;
            if (sd_recv_all(t->fd, msg, n, sd_now() + 1.0)) n = 0;
            msg[n] = '\0';
            SD_ERR(SEGRL_ERR_COMM, "%s: rank %d of %d, %s: rank 0 reports: %s", fn, c->rank,
                   c->size, what, n ? msg : "a failure");
            return sd_break(c);
        }
        if (!io && (r.magic != SD_MAGIC || r.bytes != s->result_bytes)) {
            SD_ERR(SEGRL_ERR_COMM, "%s: rank %d of %d, %s: rank 0 answered with %lld bytes, "
                                   "expected %lld", fn, c->rank, c->size, what,
                   (long long)r.bytes, (long long)s->result_bytes);
            return sd_break(c);
        }
        if (!io && s->result_bytes)
            io = sd_recv_all(t->fd, s->result, (size_t)s->result_bytes, deadline);
        if (io) {
            SD_ERR(SEGRL_ERR_COMM,
                   "%s: rank %d of %d, %s, waiting for rank 0 (timeout %g s): %s%s", fn, c->rank,
                   c->size, what, c->timeout_s, sd_io_what(io),
                   io == 1 ? ": a rank died, hangs, or is not calling the same collective" : "");
            return sd_break(c);
        }
        return SEGRL_OK;
    }
    /* rank 0: its own part first */
    if (s->kind == SD_ALLREDUCE && s->result != s->mine && s->result_bytes)
        memcpy(s->result, s->mine, (size_t)s->result_bytes);
    if (s->kind == SD_ALLGATHERV && s->mine_bytes)
        memcpy(s->gather_base, s->mine, (size_t)s->mine_bytes);
    int64_t displ = s->kind == SD_ALLGATHERV ? s->counts[0] : 0;
    for (int32_t r = 1; r < c->size; r++) {
        int fd = t->fds[r];
        sd_hdr p;
        int io = sd_recv_all(fd, &p, sizeof p, deadline);
        if (io) {
            if (io == 2) {
                close(fd);
                t->fds[r] = -1;
            }
            SD_ERR(SEGRL_ERR_COMM, "%s: rank 0 of %d, %s, waiting for rank %d (timeout %g s): %s%s",
                   fn, c->size, what, r, c->timeout_s, sd_io_what(io),
                   io == 1 ? ": it died, hangs, or is not calling the same collective" : "");
            return sd_fail0(c);
        }
        /* the same collective, with a count that fits */
        int64_t want_count = s->kind == SD_ALLGATHERV ? s->counts[r] : s->count;
        int64_t want_bytes = s->kind == SD_BARRIER                      ? 0
                             : s->kind == SD_BCAST && r != s->aux       ? 0
                             : s->kind == SD_BCAST                      ? s->count * (int64_t)es
                                                                        : want_count * (int64_t)es;
        if (p.magic != SD_MAGIC || p.kind != s->kind || p.seq != c->seq || p.count != want_count ||
            p.dtype != s->dtype || p.aux != s->aux || p.bytes != want_bytes) {
            char theirs[160];
            sd_hdr_str(&p, theirs, sizeof theirs);
            SD_ERR(SEGRL_ERR_COMM,
                   "%s: collectives do not match: rank %d called %s (op/root %d), rank 0 called "
                   "%s (op/root %d)",
                   fn, r, theirs, p.aux, what, s->aux);
            return sd_fail0(c);
        }
        void *dst = NULL;
        if (s->kind == SD_ALLREDUCE) {
            dst = sd_tmp(t, (size_t)p.bytes);
            if (!dst && p.bytes) {
                SD_ERR(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
                return sd_fail0(c);
            }
        } else if (s->kind == SD_ALLGATHERV) {
            dst = s->gather_base + displ * (int64_t)es;
            displ += s->counts[r];
        } else if (s->kind == SD_BCAST) {
            dst = s->result;
        }
        if (p.bytes) io = sd_recv_all(fd, dst, (size_t)p.bytes, deadline);
        if (io) {
            SD_ERR(SEGRL_ERR_COMM, "%s: rank 0 of %d, %s, receiving from rank %d: %s", fn,
                   c->size, what, r, sd_io_what(io));
            return sd_fail0(c);
        }
        if (s->kind == SD_ALLREDUCE) sd_reduce_into(s->result, dst, s->count, s->dtype, s->op);
    }
    sd_hdr out = {SD_MAGIC, s->kind, c->seq, s->count, s->dtype, s->aux, s->result_bytes};
    for (int32_t r = 1; r < c->size; r++) {
        int io = sd_send_all(t->fds[r], &out, sizeof out, deadline);
        if (!io && s->result_bytes)
            io = sd_send_all(t->fds[r], s->result, (size_t)s->result_bytes, deadline);
        if (io) {
            SD_ERR(SEGRL_ERR_COMM, "%s: rank 0 of %d, %s, answering rank %d: %s", fn, c->size,
                   what, r, sd_io_what(io));
            return sd_fail0(c);
        }
    }
    return SEGRL_OK;
}

segrl_status sd_tcp_allreduce(segrl_comm *c, const char *fn, const void *in, void *out,
                              int64_t count, int32_t dtype, int32_t op) {
    const int64_t bytes = count * (int64_t)segrl_dtype_size((segrl_dtype)dtype);
    sd_star s;
    memset(&s, 0, sizeof s);
    s.kind = SD_ALLREDUCE;
    s.count = count;
    s.dtype = dtype;
    s.aux = op;
    s.op = op;
    s.mine = in;
    s.mine_bytes = bytes;
    s.result = out;
    s.result_bytes = bytes;
    return sd_star_run(c, fn, &s);
}

segrl_status sd_tcp_allgatherv(segrl_comm *c, const char *fn, const void *in, int64_t count,
                               void *out, const int64_t *counts, int32_t dtype) {
    const int64_t es = (int64_t)segrl_dtype_size((segrl_dtype)dtype);
    int64_t total = 0;
    for (int32_t r = 0; r < c->size; r++) total += counts[r];
    sd_star s;
    memset(&s, 0, sizeof s);
    s.kind = SD_ALLGATHERV;
    s.count = count;
    s.dtype = dtype;
    s.mine = in;
    s.mine_bytes = count * es;
    s.result = out;
    s.result_bytes = total * es;
    s.counts = counts;
    s.gather_base = (char *)out;
    return sd_star_run(c, fn, &s);
}

segrl_status sd_tcp_bcast(segrl_comm *c, const char *fn, void *buf, int64_t count, int32_t dtype,
                          int32_t root) {
    const int64_t bytes = count * (int64_t)segrl_dtype_size((segrl_dtype)dtype);
    sd_star s;
    memset(&s, 0, sizeof s);
    s.kind = SD_BCAST;
    s.count = count;
    s.dtype = dtype;
    s.aux = root;
    s.mine = buf;
    s.mine_bytes = c->rank == root && root != 0 ? bytes : 0;
    s.result = buf;
    s.result_bytes = bytes;
    return sd_star_run(c, fn, &s);
}

segrl_status sd_tcp_barrier(segrl_comm *c, const char *fn) {
    sd_star s;
    memset(&s, 0, sizeof s);
    s.kind = SD_BARRIER;
    s.dtype = SEGRL_DTYPE_U8;
    return sd_star_run(c, fn, &s);
}
