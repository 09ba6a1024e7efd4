/* test-core.c — the conventions: version, status strings, thread-local errors, views, layouts,
 * allocator hooks, workspace sizes, the no-device path. */
#include "harness.h"

#include <pthread.h>
#include <segrl/segrl.h>

static int n_malloc, n_free;
static void *my_malloc(size_t n, void *u) { (*(int *)u)++; n_malloc++; return malloc(n); }
static void my_free(void *p, void *u) { (void)u; n_free++; free(p); }

static void *other_thread(void *arg) {
    (void)arg;
    /* a fresh thread sees no error from the main thread */
    return (void *)(intptr_t)(segrl_last_error()[0] == '\0');
}

int main(void) {
    CHECK(strcmp(segrl_version(), SEGRL_VERSION_STRING) == 0, "version string");
    CHECK(segrl_version_number() == SEGRL_VERSION_NUMBER, "version number");
    CHECK(strcmp(segrl_status_str(SEGRL_OK), "ok") == 0, "status ok");
    CHECK(strcmp(segrl_status_str(SEGRL_ERR_INVALID), "invalid argument") == 0, "status invalid");
    CHECK(strcmp(segrl_status_str((segrl_status)999), "unknown status") == 0, "status unknown");
    CHECK(segrl_dtype_size(SEGRL_DTYPE_BF16) == 2 && segrl_dtype_size(SEGRL_DTYPE_I64) == 8,
          "dtype sizes");
    CHECK(strcmp(segrl_dtype_name(SEGRL_DTYPE_U8), "u8") == 0, "dtype name");

    /* views */
    float buf[12];
    segrl_view v = segrl_view_2d(buf, SEGRL_DTYPE_F32, segrl_cpu(), 3, 4);
    CHECK(v.ndim == 2 && v.shape[0] == 3 && v.strides[0] == 4 && v.strides[1] == 1, "view_2d");
    CHECK(segrl_view_is_none(segrl_view_none()) && !segrl_view_is_none(v), "view none");
    int64_t shp[3] = {2, 3, 4};
    segrl_view w = segrl_view_nd(buf, SEGRL_DTYPE_F32, segrl_cpu(), 3, shp, NULL);
    CHECK(w.strides[0] == 12 && w.strides[1] == 4 && w.strides[2] == 1, "view_nd strides");
    CHECK(segrl_view_nd(buf, SEGRL_DTYPE_F32, segrl_cpu(), 9, shp, NULL).ndim == -1,
          "view_nd rejects ndim > SEGRL_MAX_DIMS");

    /* thread-local last error, naming the argument */
    float out[12];
    segrl_status st = segrl_gae(NULL, v, segrl_view_none(), segrl_view_none(), 1, 1, NULL,
                                segrl_view_2d(out, SEGRL_DTYPE_F32, segrl_cpu(), 3, 4), v);
    CHECK(st == SEGRL_ERR_INVALID && strstr(segrl_last_error(), "values"), "error names values: %s",
          segrl_last_error());
    pthread_t th;
    void *res = NULL;
    pthread_create(&th, NULL, other_thread, NULL);
    pthread_join(th, &res);
    CHECK(res == (void *)1, "last error is thread-local");
    segrl_clear_error();
    CHECK(segrl_last_error()[0] == '\0', "clear_error");
    CHECK(segrl_set_error(SEGRL_ERR_UNSUPPORTED, "f: %s: %d", "arg", 7) == SEGRL_ERR_UNSUPPORTED &&
              !strcmp(segrl_last_error(), "f: arg: 7"),
          "set_error: %s", segrl_last_error());
    segrl_clear_error();

    /* allocator hooks */
    int calls = 0;
    segrl_allocator a = {my_malloc, NULL, my_free, &calls};
    segrl_set_allocator(&a);
    void *p = segrl_malloc(64);
    p = segrl_realloc(p, 128); /* NULL realloc_fn falls back to the C library */
    segrl_free(p);
    segrl_free(NULL);
    CHECK(calls == 1 && n_malloc == 1 && n_free == 1, "allocator hooks used (%d %d)", n_malloc,
          n_free);
    segrl_set_allocator(NULL);
    segrl_free(segrl_malloc(8));
    CHECK(n_malloc == 1 && n_free == 1, "allocator reset");

    /* workspace sizes */
    size_t n = 1;
    CHECK(segrl_workspace_size(SEGRL_OP_GAE, segrl_cpu(), 512, 512 * 4096, 0, &n) == SEGRL_OK &&
              n == 0, "gae needs no CPU workspace");
    CHECK(segrl_workspace_size(SEGRL_OP_GRPO, segrl_cpu(), 512, 512 * 4096, 64, &n) == SEGRL_OK &&
              n >= 512 * 3 * sizeof(double) + 64 * 8 * sizeof(double), "grpo workspace %zu", n);
    CHECK(segrl_workspace_size((segrl_op)99, segrl_cpu(), 1, 1, 1, &n) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "op"), "unknown op");
    CHECK(segrl_workspace_size(SEGRL_OP_GRPO, segrl_cpu(), -1, 1, 1, &n) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "batch"), "negative batch");

    /* CUDA views: NO_DEVICE when the build or the machine has no GPU */
    if (segrl_cuda_device_count() == 0) {
        segrl_view c = segrl_view_2d(buf, SEGRL_DTYPE_F32, segrl_cuda(0), 3, 4);
        st = segrl_gae(NULL, c, c, segrl_view_none(), 1, 1, NULL, c, c);
        CHECK(st == SEGRL_ERR_NO_DEVICE && strstr(segrl_last_error(), "rewards"),
              "cuda view without a GPU: %s", segrl_last_error());
    }
    printf("built with CUDA: %d, CUDA devices: %d\n", segrl_built_with_cuda(),
           segrl_cuda_device_count());
    return h_finish();
}
