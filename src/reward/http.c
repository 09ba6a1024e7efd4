/* http.c — a remote reward model over HTTP: batches of samples POSTed as JSON, one score per
 * sample read back (protocol in docs/rewards.md); up to `concurrency` requests in flight, each
 * worker thread with its own curl handle. libcurl for transport with whole-request and
 * connect timeouts, retries with exponential backoff on connection failures, timeouts, HTTP 429
 * and 5xx; cJSON for both bodies. A reply that is not the documented JSON is an error at once
 * (retrying a server that answers garbage does not help), with the start of the body in the
 * message. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep, sysconf */
#include "rw.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

enum { HTTP_MAX_BODY = 64 << 20 };

typedef struct httpr {
    segrl_http_opts o;
    char *url;
} httpr;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct body {
    char *p;
    size_t n;
    int over;
} body;

static size_t on_data(char *ptr, size_t size, size_t nm, void *ud) {
    body *b = ud;
    size_t k = size * nm;
    if (b->n + k > HTTP_MAX_BODY) {
        b->over = 1;
        return 0;
    }
    char *p = segrl_realloc(b->p, b->n + k + 1);
    if (!p) return 0;
    memcpy(p + b->n, ptr, k);
    b->p = p;
    b->n += k;
    b->p[b->n] = '\0';
    return k;
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* the printable start of a body for messages */
static void snippet(const char *p, size_t n, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < cap && i < 80; i++)
        out[k++] = (p[i] >= 32 && p[i] < 127) ? p[i] : '?';
    if (n > 80 && k + 4 < cap) out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = '\0';
}

/* POST json, retrying; on success *resp holds the parsed reply */
static segrl_status http_post(const httpr *h, const char *json, cJSON **resp) {
    static const char *fn = "segrl_reward_http";
    pthread_once(&curl_once, curl_init_once);
    CURL *c = curl_easy_init();
    if (!c) return sg_fail(SEGRL_ERR_ALLOC, "%s: %s: curl_easy_init failed", fn, h->url);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Expect:");
    segrl_status st = SEGRL_OK;
    int attempts = 1 + (h->o.retries > 0 ? h->o.retries : 0);
    double wait = h->o.backoff_s;
    char last[300] = "";
    for (int a = 0; a < attempts; a++) {
        if (a > 0) {
            sleep_s(wait);
            wait *= 2;
        }
        body b = {0};
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, h->url);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json));
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(h->o.timeout_s * 1000));
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(h->o.connect_timeout_s * 1000));
        CURLcode rc = curl_easy_perform(c);
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (rc != CURLE_OK) {
            if (b.over)
                snprintf(last, sizeof last, "response larger than %d bytes", HTTP_MAX_BODY);
            else if (rc == CURLE_OPERATION_TIMEDOUT)
                snprintf(last, sizeof last, "timed out after %g s", h->o.timeout_s);
            else
                snprintf(last, sizeof last, "%s", curl_easy_strerror(rc));
            segrl_free(b.p);
            if (b.over) break;
            continue; /* connection refused, reset, timeout: retry */
        }
        if (code != 200) {
            char sn[100];
            snippet(b.p ? b.p : "", b.n, sn, sizeof sn);
            snprintf(last, sizeof last, "HTTP %ld: %s", code, sn);
            segrl_free(b.p);
            if (code == 429 || code >= 500) continue;
            break; /* 4xx: the request itself is wrong */
        }
        cJSON *j = b.p ? cJSON_ParseWithLength(b.p, b.n) : NULL;
        if (!j || !cJSON_IsObject(j)) {
            char sn[100];
            snippet(b.p ? b.p : "", b.n, sn, sizeof sn);
            cJSON_Delete(j);
            segrl_free(b.p);
            st = sg_fail(SEGRL_ERR_INVALID, "%s: %s: response is not a JSON object: \"%s\"", fn,
                         h->url, sn);
            goto done;
        }
        segrl_free(b.p);
        *resp = j;
        goto done;
    }
    st = sg_fail(SEGRL_ERR_INVALID, "%s: %s: %s (%d attempt%s)", fn, h->url, last, attempts,
                 attempts == 1 ? "" : "s");
done:
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    return st;
}

/* the request body for samples [b, e); segments when off != NULL */
static char *make_request(const segrl_reward_sample *s, int64_t b, int64_t e, const int64_t *off,
                          const int64_t *st, const int64_t *en) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "mode", off ? "segments" : "score");
    cJSON *arr = cJSON_AddArrayToObject(root, "samples");
    for (int64_t i = b; arr && i < e; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "prompt", s[i].prompt ? s[i].prompt : "");
        cJSON_AddStringToObject(o, "response", s[i].response ? s[i].response : "");
        cJSON_AddStringToObject(o, "answer", s[i].answer ? s[i].answer : "");
        cJSON_AddStringToObject(o, "metadata", s[i].metadata_json ? s[i].metadata_json : "");
        if (s[i].num_response_ids > 0 && s[i].response_ids) {
            cJSON *ids = cJSON_AddArrayToObject(o, "response_ids");
            for (int64_t k = 0; ids && k < s[i].num_response_ids; k++)
                cJSON_AddItemToArray(ids, cJSON_CreateNumber(s[i].response_ids[k]));
        }
        if (off) {
            cJSON *sg = cJSON_AddArrayToObject(o, "segments");
            for (int64_t k = off[i]; sg && k < off[i + 1]; k++) {
                cJSON *pair = cJSON_CreateArray();
                cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)st[k]));
                cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)en[k]));
                cJSON_AddItemToArray(sg, pair);
            }
        }
    }
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return txt;
}

/* reads count finite numbers from array `a` into out */
static int numbers(const cJSON *a, int64_t count, float *out) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != count) return 0;
    int64_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return 0;
        out[i++] = (float)x->valuedouble;
    }
    return 1;
}

static int32_t reason_code(const char *name) {
    for (int32_t r = 0; r <= SEGRL_REWARD_TOO_LONG_INPUT; r++)
        if (strcmp(segrl_reward_reason_name(r), name) == 0) return r;
    return SEGRL_REWARD_OK;
}

/* one request for samples [b, e) */
static segrl_status http_one(const httpr *h, const segrl_reward_sample *s, int64_t b, int64_t e,
                             const int64_t *off, const int64_t *st, const int64_t *en, float *out,
                             segrl_reward_detail *det) {
    static const char *fn = "segrl_reward_http";
    {
        char *req = make_request(s, b, e, off, st, en);
        if (!req) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory building the request", fn);
        cJSON *resp = NULL;
        segrl_status rs = http_post(h, req, &resp);
        cJSON_free(req);
        if (rs) return rs;
        int ok = 1;
        if (!off) {
            ok = numbers(cJSON_GetObjectItemCaseSensitive(resp, "scores"), e - b, out + b);
            const cJSON *dets = cJSON_GetObjectItemCaseSensitive(resp, "details");
            if (ok && det && cJSON_IsArray(dets) && cJSON_GetArraySize(dets) == e - b) {
                int64_t i = b;
                const cJSON *d;
                cJSON_ArrayForEach(d, dets) {
                    const cJSON *r = cJSON_GetObjectItemCaseSensitive(d, "reason");
                    const cJSON *x = cJSON_GetObjectItemCaseSensitive(d, "extracted");
                    const cJSON *y = cJSON_GetObjectItemCaseSensitive(d, "normalized");
                    if (cJSON_IsString(r)) det[i].reason = reason_code(r->valuestring);
                    if (cJSON_IsString(x)) rw_text(det[i].extracted, x->valuestring, strlen(x->valuestring));
                    if (cJSON_IsString(y)) rw_text(det[i].normalized, y->valuestring, strlen(y->valuestring));
                    i++;
                }
            }
        } else {
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(resp, "segment_scores");
            ok = cJSON_IsArray(a) && cJSON_GetArraySize(a) == e - b;
            int64_t i = b;
            const cJSON *row;
            if (ok) cJSON_ArrayForEach(row, a) {
                if (!numbers(row, off[i + 1] - off[i], out + off[i])) {
                    ok = 0;
                    break;
                }
                i++;
            }
        }
        if (!ok) {
            char *txt = cJSON_PrintUnformatted(resp);
            char sn[100];
            snippet(txt ? txt : "", txt ? strlen(txt) : 0, sn, sizeof sn);
            cJSON_free(txt);
            cJSON_Delete(resp);
            return sg_fail(SEGRL_ERR_INVALID,
                           off ? "%s: %s: response needs \"segment_scores\": %lld arrays of finite "
                                 "numbers, one per segment; got \"%s\""
                               : "%s: %s: response needs \"scores\": an array of %lld finite "
                                 "numbers; got \"%s\"",
                           fn, h->url, (long long)(e - b), sn);
        }
        cJSON_Delete(resp);
    }
    return SEGRL_OK;
}

/* the batches of [0, n), up to `concurrency` requests in flight (one thread and curl handle each);
 * the first failure stops the others from starting new requests */
typedef struct hjob {
    const httpr *h;
    const segrl_reward_sample *s;
    int64_t n;
    const int64_t *off, *st, *en;
    float *out;
    segrl_reward_detail *det;
    atomic_llong next;
    atomic_int failed;
    segrl_status err;
    char msg[512];
} hjob;

static void *http_worker(void *arg) {
    hjob *j = arg;
    int64_t bs = j->h->o.batch_size;
    while (!atomic_load(&j->failed)) {
        int64_t b = atomic_fetch_add(&j->next, 1) * bs;
        if (b >= j->n) break;
        int64_t e = b + bs < j->n ? b + bs : j->n;
        segrl_status rs = http_one(j->h, j->s, b, e, j->off, j->st, j->en, j->out, j->det);
        int expect = 0;
        if (rs != SEGRL_OK && atomic_compare_exchange_strong(&j->failed, &expect, 1)) {
            j->err = rs;
            snprintf(j->msg, sizeof j->msg, "%s", segrl_last_error());
        }
    }
    return NULL;
}

static segrl_status http_batches(const httpr *h, const segrl_reward_sample *s, int64_t n,
                                 const int64_t *off, const int64_t *st, const int64_t *en,
                                 float *out, segrl_reward_detail *det) {
    hjob j;
    memset(&j, 0, sizeof j);
    j.h = h, j.s = s, j.n = n, j.off = off, j.st = st, j.en = en, j.out = out, j.det = det;
    atomic_init(&j.next, 0);
    atomic_init(&j.failed, 0);
    int64_t batches = (n + h->o.batch_size - 1) / h->o.batch_size;
    int nt = h->o.concurrency < batches ? h->o.concurrency : (int)batches;
    pthread_t tid[64];
    int started = 0;
    for (int t = 0; t < nt - 1 && t < 64; t++)
        if (pthread_create(&tid[started], NULL, http_worker, &j) == 0) started++;
    http_worker(&j);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
    if (atomic_load(&j.failed)) return sg_fail(j.err, "%s", j.msg);
    return SEGRL_OK;
}

static segrl_status http_score(void *user, const segrl_reward_sample *s, int64_t n,
                               const segrl_reward_run *run, float *out, segrl_reward_detail *det) {
    (void)run;
    return http_batches(user, s, n, NULL, NULL, NULL, out, det);
}

static segrl_status http_segments(void *user, const segrl_reward_sample *s, int64_t n,
                                  const int64_t *off, const int64_t *st, const int64_t *en,
                                  const segrl_reward_run *run, float *out) {
    (void)run;
    return http_batches(user, s, n, off, st, en, out, NULL);
}

static void http_release(void *user) {
    httpr *h = user;
    segrl_free(h->url);
    segrl_free(h);
}

segrl_status segrl_reward_http(const segrl_http_opts *opts, segrl_reward **out) {
    static const char *fn = "segrl_reward_http";
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    if (!opts) return sg_fail(SEGRL_ERR_INVALID, "%s: opts: NULL", fn);
    segrl_http_opts o = *opts;
    if (!o.url || (strncmp(o.url, "http://", 7) != 0 && strncmp(o.url, "https://", 8) != 0))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->url: must start with http:// or https://", fn);
    if (o.timeout_s == 0) o.timeout_s = 30;
    if (o.connect_timeout_s == 0) o.connect_timeout_s = 10;
    if (o.retries == 0) o.retries = 3;
    if (o.retries < 0) o.retries = 0;
    if (o.backoff_s == 0) o.backoff_s = 0.5;
    if (o.batch_size == 0) o.batch_size = 64;
    if (o.concurrency == 0) o.concurrency = 1;
    if (!(o.timeout_s > 0 && o.timeout_s < 1e6) || !(o.connect_timeout_s > 0 && o.connect_timeout_s < 1e6))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->timeout_s: must be in (0, 1e6)", fn);
    if (!(o.backoff_s >= 0 && o.backoff_s < 3600))
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->backoff_s: must be in [0, 3600)", fn);
    if (o.retries > 100) return sg_fail(SEGRL_ERR_INVALID, "%s: opts->retries: at most 100", fn);
    if (o.batch_size < 1) return sg_fail(SEGRL_ERR_INVALID, "%s: opts->batch_size: must be >= 1", fn);
    if (o.concurrency < 1 || o.concurrency > 64)
        return sg_fail(SEGRL_ERR_INVALID, "%s: opts->concurrency: %d not in [1, 64]", fn, o.concurrency);
    httpr *h = segrl_malloc(sizeof *h);
    size_t ul = strlen(o.url);
    char *url = segrl_malloc(ul + 1);
    if (!h || !url) {
        segrl_free(h);
        segrl_free(url);
        return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    }
    memcpy(url, o.url, ul + 1);
    h->o = o;
    h->o.url = url;
    h->url = url;
    segrl_reward_impl impl = {SEGRL_REWARD_ABI_VERSION, 0, "http", h, http_score,
                              o.segments ? http_segments : NULL, http_release};
    return rw_new_owned(&impl, RW_KIND_OTHER, out);
}
