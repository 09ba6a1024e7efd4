/* cuda_harness.h — what the CUDA tests share: the two devices, and device buffers through the
 * CUDA runtime (the tests allocate their own device memory; any failure exits with code 2).
 * Include after harness.h. */
#ifndef SEGRL_TEST_CUDA_HARNESS_H
#define SEGRL_TEST_CUDA_HARNESS_H

#include <cuda_runtime_api.h>
#include <segrl/segrl.h>
#include <stdio.h>
#include <stdlib.h>

static const segrl_device CPU = {SEGRL_DEVICE_CPU, 0};
static const segrl_device GPU = {SEGRL_DEVICE_CUDA, 0};

/* n bytes of device memory (at least 1, so an empty buffer is still a non-NULL pointer) */
static inline void *d_alloc(size_t n) {
    void *p = NULL;
    if (cudaMalloc(&p, n ? n : 1) != cudaSuccess) {
        printf("cudaMalloc(%zu) failed\n", n);
        exit(2);
    }
    return p;
}

static inline void d_put(void *d, const void *h, size_t n) {
    if (n && cudaMemcpy(d, h, n, cudaMemcpyHostToDevice) != cudaSuccess) {
        printf("cudaMemcpy to device failed\n");
        exit(2);
    }
}

/* a device copy of n host bytes; always a new buffer */
static inline void *d_up(const void *h, size_t n) {
    void *p = d_alloc(n);
    d_put(p, h, n);
    return p;
}

/* as d_up, but an absent host buffer (NULL) stays absent */
static inline void *d_up_opt(const void *h, size_t n) { return h ? d_up(h, n) : NULL; }

static inline void d_down(void *h, const void *d, size_t n) {
    if (n && cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost) != cudaSuccess) {
        printf("cudaMemcpy to host failed\n");
        exit(2);
    }
}

static inline void d_free(void *p) {
    if (p) cudaFree(p);
}

#endif /* SEGRL_TEST_CUDA_HARNESS_H */
