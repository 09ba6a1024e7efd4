/* test-reward-remote.c — rewards that live outside the process: the example plugin (built by
 * tests/reward.cmake, plus a copy claiming a wrong ABI version that must be refused), and the HTTP
 * reward against a tiny HTTP/1.1 server this program runs on 127.0.0.1 (an ephemeral port, one
 * thread per connection): success and batching, a server slower than the timeout, HTTP 500, a
 * server recovering after 503s (retries), malformed JSON, a wrong number of scores, and a port
 * nobody listens on (connection refused). */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <segrl/reward.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef PLUGIN_PATH
#error "PLUGIN_PATH must name the example plugin (tests/reward.cmake)"
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ----------------------------------------------------------------------------
// plugins

static void test_plugin(void) {
    segrl_reward *r = NULL;
    CHECK(segrl_reward_plugin(PLUGIN_PATH, "{\"keyword\": \"so\", \"cap\": 2}", &r) == SEGRL_OK,
          "plugin: %s", segrl_last_error());
    if (!r) return;
    CHECK(strcmp(segrl_reward_name(r), "keyword") == 0, "plugin name %s", segrl_reward_name(r));
    segrl_reward_sample s[3] = {{0}};
    s[0].response = "so so so";
    s[1].response = "and so";
    s[2].response = "nothing";
    float sc[3];
    segrl_reward_detail d[3];
    segrl_reward_run run = {2, 0, 0, 0};
    CHECK(segrl_reward_score(r, s, 3, &run, sc, d) == SEGRL_OK, "plugin score");
    CHECK(sc[0] == 1.0f && sc[1] == 0.5f && sc[2] == 0.0f && d[2].reason == SEGRL_REWARD_NO_ANSWER,
          "plugin scores %g %g %g", sc[0], sc[1], sc[2]);
    int64_t off[2] = {0, 2}, st[2] = {0, 6}, en[2] = {4, 10};
    float seg[2];
    CHECK(segrl_reward_score_segments(r, s, 1, off, st, en, NULL, seg) == SEGRL_OK &&
              seg[0] == 1.0f && seg[1] == 0.5f, "plugin segments %g %g", seg[0], seg[1]);
    segrl_reward_free(r);

    /* through segrl_reward_create, options passed on */
    r = NULL;
    CHECK(segrl_reward_create("plugin", "{\"path\": \"" PLUGIN_PATH "\", \"options\": {\"keyword\": \"and\"}}",
                              &r) == SEGRL_OK, "create plugin: %s", segrl_last_error());
    if (r) {
        segrl_reward_score(r, s, 3, &run, sc, NULL);
        CHECK(sc[1] > 0 && sc[0] == 0, "created plugin keyword: %g %g", sc[0], sc[1]);
        segrl_reward_free(r);
    }
    /* the plugin's own errors come through */
    r = NULL;
    CHECK(segrl_reward_plugin(PLUGIN_PATH, "{\"cap\": 0}", &r) == SEGRL_ERR_INVALID && !r &&
              strstr(segrl_last_error(), "\"cap\" must be >= 1"), "plugin init error: %s",
          segrl_last_error());
    /* wrong ABI: refused before anything runs */
    CHECK(segrl_reward_plugin(PLUGIN_BAD_ABI_PATH, "", &r) == SEGRL_ERR_INVALID && !r &&
              strstr(segrl_last_error(), "plugin ABI version 999, this segrl expects 1"),
          "wrong ABI: %s", segrl_last_error());
    CHECK(segrl_reward_plugin("/nonexistent/libnothing.so", "", &r) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "cannot load"), "missing: %s", segrl_last_error());
    /* a shared object that is not a plugin (this test links libsegrl: no plugin symbols) */
    CHECK(segrl_reward_plugin(SEGRL_LIB_PATH, "", &r) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "not a segrl reward plugin"), "not a plugin: %s",
          segrl_last_error());
}

// ----------------------------------------------------------------------------
// a tiny HTTP server

static atomic_int srv_requests, srv_flaky;

static void reply(int fd, int code, const char *body) {
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     code, strlen(body));
    if (write(fd, head, (size_t)n) < 0) return;
    if (write(fd, body, strlen(body)) < 0) return;
}

/* {"scores": [len(response) ...]} or segment lengths; NULL on a bad request */
static char *ok_body(const char *req) {
    cJSON *j = cJSON_Parse(req);
    if (!j) return NULL;
    const cJSON *mode = cJSON_GetObjectItem(j, "mode");
    int seg = cJSON_IsString(mode) && strcmp(mode->valuestring, "segments") == 0;
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(out, seg ? "segment_scores" : "scores");
    cJSON *dets = seg ? NULL : cJSON_AddArrayToObject(out, "details");
    const cJSON *smp;
    cJSON_ArrayForEach(smp, cJSON_GetObjectItem(j, "samples")) {
        const cJSON *resp = cJSON_GetObjectItem(smp, "response");
        if (seg) {
            cJSON *row = cJSON_CreateArray();
            const cJSON *pair;
            cJSON_ArrayForEach(pair, cJSON_GetObjectItem(smp, "segments")) {
                double a = cJSON_GetArrayItem(pair, 0)->valuedouble, b = cJSON_GetArrayItem(pair, 1)->valuedouble;
                cJSON_AddItemToArray(row, cJSON_CreateNumber(b - a));
            }
            cJSON_AddItemToArray(arr, row);
        } else {
            cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)strlen(resp->valuestring)));
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "reason", strlen(resp->valuestring) ? "ok" : "empty_response");
            cJSON_AddStringToObject(d, "extracted", resp->valuestring);
            cJSON_AddItemToArray(dets, d);
        }
    }
    char *txt = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
    cJSON_Delete(j);
    return txt;
}

static void *conn_main(void *arg) {
    int fd = (int)(intptr_t)arg;
    char *buf = malloc(1 << 20);
    size_t n = 0;
    long clen = -1;
    char *body = NULL;
    while (n < (1 << 20) - 1) {
        ssize_t k = read(fd, buf + n, (1 << 20) - 1 - n);
        if (k <= 0) break;
        n += (size_t)k;
        buf[n] = '\0';
        char *h = strstr(buf, "\r\n\r\n");
        if (h && clen < 0) {
            char *cl = strstr(buf, "Content-Length:");
            if (!cl) cl = strstr(buf, "content-length:");
            clen = cl ? atol(cl + 15) : 0;
        }
        if (h && (long)(n - (size_t)(h + 4 - buf)) >= clen) {
            body = h + 4;
            break;
        }
    }
    atomic_fetch_add(&srv_requests, 1);
    char path[64] = "";
    sscanf(buf, "POST %63s", path);
    if (!body) {
        reply(fd, 400, "{}");
    } else if (strcmp(path, "/ok") == 0 || strcmp(path, "/slow") == 0 || strcmp(path, "/flaky") == 0) {
        if (path[1] == 's') {
            struct timespec ts = {1, 500000000L};
            nanosleep(&ts, NULL);
        }
        if (path[1] == 'f' && atomic_fetch_add(&srv_flaky, 1) < 2) {
            reply(fd, 503, "busy");
        } else {
            char *b = ok_body(body);
            if (b) reply(fd, 200, b);
            else reply(fd, 400, "{\"error\": \"bad json\"}");
            cJSON_free(b);
        }
    } else if (strcmp(path, "/500") == 0) {
        reply(fd, 500, "internal oops");
    } else if (strcmp(path, "/garbage") == 0) {
        reply(fd, 200, "<html>this is not json");
    } else if (strcmp(path, "/count") == 0) {
        reply(fd, 200, "{\"scores\": [1]}");
    } else if (strcmp(path, "/nan") == 0) {
        reply(fd, 200, "{\"scores\": [\"x\", 1]}");
    } else {
        reply(fd, 404, "no such path");
    }
    free(buf);
    close(fd);
    return NULL;
}

static void *srv_main(void *arg) {
    int ls = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) continue;
        pthread_t t;
        if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)fd) == 0) pthread_detach(t);
        else close(fd);
    }
    return NULL;
}

/* a socket bound to 127.0.0.1 on an ephemeral port */
static int bind_local(int *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) return -1;
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return s;
}

static segrl_reward *http(int port, const char *path, double timeout, int retries, int batch) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    segrl_http_opts o;
    memset(&o, 0, sizeof o);
    o.url = url;
    o.timeout_s = timeout;
    o.retries = retries;
    o.backoff_s = 0.05;
    o.batch_size = batch;
    o.segments = 1;
    segrl_reward *r = NULL;
    CHECK(segrl_reward_http(&o, &r) == SEGRL_OK, "http: %s", segrl_last_error());
    return r;
}

static void test_http(void) {
    int port;
    int ls = bind_local(&port);
    CHECK(ls >= 0 && listen(ls, 64) == 0, "listen");
    if (ls < 0) return;
    pthread_t t;
    pthread_create(&t, NULL, srv_main, (void *)(intptr_t)ls);
    pthread_detach(t);

    segrl_reward_sample s[5] = {{0}};
    const char *texts[5] = {"a", "bb", "ccc \"quoted\" \\ and \xc3\xa9", "", "eeeee"};
    for (int i = 0; i < 5; i++) {
        s[i].response = texts[i];
        s[i].prompt = "p";
        s[i].answer = "x";
        s[i].metadata_json = "{\"k\": 1}";
    }
    float sc[5];
    segrl_reward_detail d[5];
    segrl_reward_run strict = {1, 1, 0, -1.0f}, lenient = {1, 0, 0, -1.0f};

    /* success, batched 2 per request: 3 requests */
    segrl_reward *r = http(port, "/ok", 5, 0, 2);
    atomic_store(&srv_requests, 0);
    CHECK(segrl_reward_score(r, s, 5, &strict, sc, d) == SEGRL_OK, "ok: %s", segrl_last_error());
    CHECK(sc[0] == 1 && sc[1] == 2 && sc[2] == (float)strlen(texts[2]) && sc[3] == 0 && sc[4] == 5,
          "ok scores %g %g %g %g %g", sc[0], sc[1], sc[2], sc[3], sc[4]);
    CHECK(atomic_load(&srv_requests) == 3, "batches: %d requests", atomic_load(&srv_requests));
    CHECK(strcmp(d[1].extracted, "bb") == 0 && d[3].reason == SEGRL_REWARD_EMPTY_RESPONSE,
          "details from the server: \"%s\" %d", d[1].extracted, d[3].reason);
    int64_t off[3] = {0, 2, 3}, st[3] = {0, 3, 1}, en[3] = {3, 4, 9};
    float seg[3];
    CHECK(segrl_reward_score_segments(r, s, 2, off, st, en, NULL, seg) == SEGRL_OK && seg[0] == 3 &&
              seg[1] == 1 && seg[2] == 8, "segments %g %g %g: %s", seg[0], seg[1], seg[2], segrl_last_error());
    segrl_reward_free(r);

    /* concurrency: one sample per request, 4 requests in flight */
    {
        char url[128];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", port);
        segrl_http_opts o;
        memset(&o, 0, sizeof o);
        o.url = url;
        o.batch_size = 1;
        o.concurrency = 4;
        o.retries = -1;
        segrl_reward *rc = NULL;
        CHECK(segrl_reward_http(&o, &rc) == SEGRL_OK, "http concurrency: %s", segrl_last_error());
        atomic_store(&srv_requests, 0);
        float cs[5] = {0};
        CHECK(segrl_reward_score(rc, s, 5, &strict, cs, d) == SEGRL_OK && cs[0] == 1 && cs[1] == 2 &&
                  cs[2] == (float)strlen(texts[2]) && cs[3] == 0 && cs[4] == 5 &&
                  strcmp(d[4].extracted, "eeeee") == 0,
              "concurrent scores %g %g %g %g %g", cs[0], cs[1], cs[2], cs[3], cs[4]);
        CHECK(atomic_load(&srv_requests) == 5, "concurrent: %d requests", atomic_load(&srv_requests));
        segrl_reward_free(rc);
        snprintf(url, sizeof url, "http://127.0.0.1:%d/500", port);
        o.concurrency = 3;
        CHECK(segrl_reward_http(&o, &rc) == SEGRL_OK, "http concurrency 500");
        CHECK(segrl_reward_score(rc, s, 5, &strict, cs, NULL) == SEGRL_ERR_INVALID &&
                  strstr(segrl_last_error(), "HTTP 500"), "concurrent 500: %s", segrl_last_error());
        segrl_reward_free(rc);
        o.concurrency = 65;
        CHECK(segrl_reward_http(&o, &rc) == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "concurrency"),
              "concurrency range");
    }

    /* slow server: past the timeout, retried once, then a clear error */
    r = http(port, "/slow", 0.3, 1, 8);
    double t0 = now_s();
    sc[0] = 42;
    segrl_status stt = segrl_reward_score(r, s, 2, &strict, sc, NULL);
    double dt = now_s() - t0;
    CHECK(stt == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "timed out") &&
              strstr(segrl_last_error(), "2 attempts"), "slow: %s", segrl_last_error());
    CHECK(dt < 1.4, "slow: gave up after %.2f s", dt);
    CHECK(sc[0] == 42, "slow: outputs untouched");
    /* lenient: failure score + reason on every sample */
    CHECK(segrl_reward_score(r, s, 2, &lenient, sc, d) == SEGRL_OK && sc[0] == -1.0f &&
              sc[1] == -1.0f && d[0].reason == SEGRL_REWARD_ERROR && strstr(d[0].message, "timed out"),
          "slow lenient: %g %s", sc[0], d[0].message);
    segrl_reward_free(r);

    /* HTTP 500, retried */
    r = http(port, "/500", 2, 2, 8);
    atomic_store(&srv_requests, 0);
    CHECK(segrl_reward_score(r, s, 2, &strict, sc, NULL) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "HTTP 500: internal oops") &&
              strstr(segrl_last_error(), "3 attempts"), "500: %s", segrl_last_error());
    CHECK(atomic_load(&srv_requests) == 3, "500: %d requests", atomic_load(&srv_requests));
    segrl_reward_free(r);

    /* 503 twice then fine: retries with backoff succeed */
    r = http(port, "/flaky", 2, 3, 8);
    CHECK(segrl_reward_score(r, s, 2, &strict, sc, NULL) == SEGRL_OK && sc[1] == 2.0f,
          "flaky: %s", segrl_last_error());
    segrl_reward_free(r);

    /* garbage: not retried, the body's start in the message */
    r = http(port, "/garbage", 2, 3, 8);
    atomic_store(&srv_requests, 0);
    CHECK(segrl_reward_score(r, s, 2, &strict, sc, NULL) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "not a JSON object") &&
              strstr(segrl_last_error(), "<html>this is not json"), "garbage: %s", segrl_last_error());
    CHECK(atomic_load(&srv_requests) == 1, "garbage: %d requests", atomic_load(&srv_requests));
    segrl_reward_free(r);
    r = http(port, "/count", 2, 0, 8);
    CHECK(segrl_reward_score(r, s, 2, &strict, sc, NULL) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "an array of 2 finite numbers"), "count: %s", segrl_last_error());
    segrl_reward_free(r);
    r = http(port, "/nan", 2, 0, 8);
    CHECK(segrl_reward_score(r, s, 2, &strict, sc, NULL) == SEGRL_ERR_INVALID, "non-number: %s",
          segrl_last_error());
    segrl_reward_free(r);
    r = http(port, "/missing", 2, 3, 8);
    atomic_store(&srv_requests, 0);
    CHECK(segrl_reward_score(r, s, 2, &strict, sc, NULL) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "HTTP 404"), "404: %s", segrl_last_error());
    CHECK(atomic_load(&srv_requests) == 1, "404 not retried: %d", atomic_load(&srv_requests));
    segrl_reward_free(r);

    /* connection refused: a port bound but not listening */
    int dead_port;
    int dead = bind_local(&dead_port);
    r = http(dead_port, "/", 2, 1, 8);
    CHECK(segrl_reward_score(r, s, 2, &strict, sc, NULL) == SEGRL_ERR_INVALID &&
              (strstr(segrl_last_error(), "connect") || strstr(segrl_last_error(), "Couldn't")),
          "refused: %s", segrl_last_error());
    segrl_reward_free(r);
    close(dead);

    /* the HTTP reward inside a weighted sum with a local verifier */
    segrl_reward *g, *sum;
    segrl_reward_gsm8k(NULL, &g);
    segrl_reward *parts[2] = {http(port, "/ok", 5, 0, 64), g};
    float w[2] = {0.5f, 1.0f};
    CHECK(segrl_reward_weighted_sum(parts, w, 2, &sum) == SEGRL_OK, "sum");
    s[0].response = "#### 7";
    s[0].answer = "7";
    segrl_reward_run four = {4, 0, 0, 0};
    CHECK(segrl_reward_score(sum, s, 2, &four, sc, d) == SEGRL_OK && sc[0] == 4.0f &&
              d[0].num_sources == 2 && d[0].sources[0] == 6.0f && d[0].sources[1] == 1.0f,
          "http + gsm8k: %g (%g, %g)", sc[0], d[0].sources[0], d[0].sources[1]);
    segrl_reward_free(sum);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* the server writes to clients that already gave up */
    test_plugin();
    test_http();
    return h_finish();
}
