/* fuzz-http-reward — the remote reward's response parsing (src/reward/http.c: the JSON body,
 * "scores", "details", "segment_scores"), fed through a tiny HTTP server on 127.0.0.1 that
 * answers every request with the fuzz input as its 200 body. Byte 0 picks scores or segments
 * and the number of samples (1-3, one request: batch_size 4); the rest is the body.
 * The parser is static in http.c, so the whole client path runs (libcurl included). */
#define _POSIX_C_SOURCE 200809L
#include "fuzz_util.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <segrl/reward.h>
#include <sys/socket.h>

static int g_port;
/* the server's copy of the current body: a request that arrives late (after its call gave up)
 * still reads valid memory */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *g_body;
static size_t g_body_len;
static segrl_reward *g_score, *g_seg;

static void write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k <= 0) return;
        c += k, n -= (size_t)k;
    }
}

/* reads one request (headers, then Content-Length bytes) and answers with g_body */
static void *server(void *arg) {
    int ls = *(int *)arg;
    static char buf[1 << 20];
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) continue;
        size_t got = 0;
        char *hdr_end = NULL;
        while (got < sizeof buf - 1) {
            ssize_t k = recv(fd, buf + got, sizeof buf - 1 - got, 0);
            if (k <= 0) break;
            got += (size_t)k;
            buf[got] = '\0';
            if (!hdr_end) hdr_end = strstr(buf, "\r\n\r\n");
            if (hdr_end) {
                const char *cl = strcasestr(buf, "Content-Length:");
                size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0;
                if (got >= (size_t)(hdr_end + 4 - buf) + want) break;
            }
        }
        pthread_mutex_lock(&g_mu);
        char head[128];
        int hl = snprintf(head, sizeof head,
                          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                          g_body_len);
        write_all(fd, head, (size_t)hl);
        write_all(fd, g_body, g_body_len);
        pthread_mutex_unlock(&g_mu);
        shutdown(fd, SHUT_WR);
        while (recv(fd, buf, sizeof buf, 0) > 0) {
        }
        close(fd);
    }
    return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    static int ls;
    ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 16) != 0) abort();
    socklen_t al = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &al);
    g_port = ntohs(a.sin_port);
    pthread_t t;
    if (pthread_create(&t, NULL, server, &ls) != 0) abort();
    pthread_detach(t);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/score", g_port);
    segrl_http_opts o = {.url = url, .timeout_s = 5, .retries = -1, .batch_size = 4};
    if (segrl_reward_http(&o, &g_score) != SEGRL_OK) abort();
    o.segments = 1;
    if (segrl_reward_http(&o, &g_seg) != SEGRL_OK) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    pthread_mutex_lock(&g_mu);
    free(g_body);
    g_body = malloc(size);
    memcpy(g_body, data + 1, size - 1);
    g_body_len = size - 1;
    pthread_mutex_unlock(&g_mu);
    int64_t n = 1 + (data[0] >> 1) % 3;
    segrl_reward_sample s[3] = {{.prompt = "p", .response = "one two", .answer = "2"},
                                {.prompt = "q", .response = "x", .answer = "y"},
                                {.prompt = "", .response = "", .answer = ""}};
    segrl_reward_run run = {.threads = 1, .time_limit_s = -1, .fail_on_error = 1};
    float out[8];
    for (int i = 0; i < 8; i++) out[i] = -12345.f;
    if (!(data[0] & 1)) {
        segrl_reward_detail det[3];
        if (segrl_reward_score(g_score, s, n, &run, out, det) == SEGRL_OK) {
            for (int64_t i = 0; i < n; i++)
                if (!isfinite(out[i]) || !memchr(det[i].extracted, 0, SEGRL_REWARD_TEXT_MAX) ||
                    !memchr(det[i].normalized, 0, SEGRL_REWARD_TEXT_MAX))
                    abort();
        } else {
            for (int i = 0; i < 8; i++)
                if (out[i] != -12345.f) abort(); /* outputs untouched on failure */
        }
    } else {
        /* sample b has b + 1 segments */
        int64_t off[4] = {0, 1, 3, 6}, st[6] = {0, 0, 2, 0, 1, 2}, en[6] = {1, 2, 4, 1, 2, 3};
        if (segrl_reward_score_segments(g_seg, s, n, off, st, en, &run, out) == SEGRL_OK) {
            for (int64_t i = 0; i < off[n]; i++)
                if (!isfinite(out[i])) abort();
        } else {
            for (int i = 0; i < 8; i++)
                if (out[i] != -12345.f) abort();
        }
    }
    return 0;
}
