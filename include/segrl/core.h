/* segrl/core.h — conventions shared by every segrl call.
 *
 *   status codes + thread-local last-error message naming the argument at fault
 *   segrl_view: a non-owning tensor view {data, dtype, device, ndim, shape, strides}
 *   segrl_layout: padded (B,T) or packed (N) token layouts
 *   segrl_exec: CUDA stream, caller-provided workspace, validation level
 *   allocator hooks, version
 *
 * No CUDA, torch or cJSON types appear in public headers: streams are `void *`. */
#ifndef SEGRL_CORE_H
#define SEGRL_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(SEGRL_SHARED)
#  ifdef SEGRL_BUILD
#    define SEGRL_API __declspec(dllexport)
#  else
#    define SEGRL_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__)
#  define SEGRL_API __attribute__((visibility("default")))
#else
#  define SEGRL_API
#endif

// ----------------------------------------------------------------------------
// version

#define SEGRL_VERSION_MAJOR 0
#define SEGRL_VERSION_MINOR 1
#define SEGRL_VERSION_PATCH 0
#define SEGRL_VERSION_STRING "0.1.0"
/* major * 10000 + minor * 100 + patch */
#define SEGRL_VERSION_NUMBER \
    (SEGRL_VERSION_MAJOR * 10000 + SEGRL_VERSION_MINOR * 100 + SEGRL_VERSION_PATCH)

/* The version of the library actually linked (compare with the macros above). */
SEGRL_API const char *segrl_version(void);
SEGRL_API int segrl_version_number(void);

// ----------------------------------------------------------------------------
// status and errors

/* Values are appended only, never renumbered. */
typedef enum segrl_status {
    SEGRL_OK = 0,
    SEGRL_ERR_INVALID = 1,     /* bad argument; segrl_last_error() names it */
    SEGRL_ERR_NO_DEVICE = 2,   /* a CUDA view was given but no usable GPU (or built without CUDA) */
    SEGRL_ERR_CUDA = 3,        /* a CUDA runtime call failed; message has the CUDA error */
    SEGRL_ERR_ALLOC = 4,       /* the allocator returned NULL */
    SEGRL_ERR_UNSUPPORTED = 5, /* valid request this build does not implement (e.g. dtype) */
    SEGRL_ERR_WORKSPACE = 6,   /* workspace missing or smaller than the size query returned */
    SEGRL_ERR_COMM = 7,        /* a collective failed or timed out (a peer died or is stuck);
                                * the communicator is unusable afterwards (segrl/dist.h) */
} segrl_status;

/* Static string for a status ("ok", "invalid argument", ...). Never NULL. */
SEGRL_API const char *segrl_status_str(segrl_status status);

/* Message of the last failed call on this thread, e.g.
 * "segrl_gae: rewards: dtype bf16 not supported, f32 required". "" when none.
 * Borrowed: valid until the next segrl call on this thread. */
SEGRL_API const char *segrl_last_error(void);
SEGRL_API void segrl_clear_error(void);
/* Sets this thread's last-error message (printf format) and returns `status`: for code built on
 * segrl outside the core library (the ATen bridge, reward plugins, tools), so that their errors
 * read like the core's: "<function>: <argument>: <problem>". */
SEGRL_API segrl_status segrl_set_error(segrl_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

// ----------------------------------------------------------------------------
// dtypes and devices

typedef enum segrl_dtype {
    SEGRL_DTYPE_F32 = 0,
    SEGRL_DTYPE_F16 = 1,
    SEGRL_DTYPE_BF16 = 2,
    SEGRL_DTYPE_I32 = 3,
    SEGRL_DTYPE_I64 = 4,
    SEGRL_DTYPE_U8 = 5,
    SEGRL_DTYPE_F64 = 6, /* only the communicator (segrl/dist.h) accepts it so far */
} segrl_dtype;

/* Bytes per element; 0 for an unknown dtype. */
SEGRL_API size_t segrl_dtype_size(segrl_dtype dtype);
/* "f32", "bf16", ...; "?" for an unknown dtype. */
SEGRL_API const char *segrl_dtype_name(segrl_dtype dtype);

typedef enum segrl_device_type {
    SEGRL_DEVICE_CPU = 0,
    SEGRL_DEVICE_CUDA = 1,
} segrl_device_type;

typedef struct segrl_device {
    int32_t type;  /* segrl_device_type */
    int32_t index; /* CUDA ordinal; 0 for CPU */
} segrl_device;

SEGRL_API segrl_device segrl_cpu(void);
SEGRL_API segrl_device segrl_cuda(int32_t index);

/* 1 when this build contains CUDA kernels. */
SEGRL_API int segrl_built_with_cuda(void);
/* Number of usable CUDA devices now: 0 without a driver, a GPU, or CUDA support in the build. */
SEGRL_API int segrl_cuda_device_count(void);

// ----------------------------------------------------------------------------
// views

#define SEGRL_MAX_DIMS 4

/* A non-owning view of a tensor. Strides are in elements. Element i of a 1-D view is
 * data + i * strides[0]; element (i, j) of a 2-D view is data + i * strides[0] + j * strides[1].
 * A view with data == NULL and ndim == 0 is "none": an absent optional argument. */
typedef struct segrl_view {
    void *data;
    int32_t dtype; /* segrl_dtype */
    segrl_device device;
    int32_t ndim;
    int64_t shape[SEGRL_MAX_DIMS];
    int64_t strides[SEGRL_MAX_DIMS];
} segrl_view;

/* An absent optional argument. */
SEGRL_API segrl_view segrl_view_none(void);
SEGRL_API int segrl_view_is_none(segrl_view v);
/* Contiguous views. */
SEGRL_API segrl_view segrl_view_1d(void *data, segrl_dtype dtype, segrl_device device, int64_t n);
SEGRL_API segrl_view segrl_view_2d(void *data, segrl_dtype dtype, segrl_device device,
                                   int64_t rows, int64_t cols);
/* General view; strides == NULL means contiguous (row-major). ndim in [0, SEGRL_MAX_DIMS]. */
SEGRL_API segrl_view segrl_view_nd(void *data, segrl_dtype dtype, segrl_device device,
                                   int32_t ndim, const int64_t *shape, const int64_t *strides);

// ----------------------------------------------------------------------------
// token layouts

/* Token-level tensors (rewards, values, masks, advantages...) come in one of two layouts:
 *   padded: 2-D (B, T); row b is sequence b. Validity comes from the mask.
 *           The innermost stride must be 1; the row stride may be anything >= T.
 *   packed: 1-D (N), contiguous; sequence b is tokens [offsets[b], offsets[b+1]).
 *           offsets: i32 or i64 (B + 1), on the same device as the tokens, offsets[0] == 0,
 *           non-decreasing, offsets[B] == N. A mask may still mark tokens inside a sequence
 *           invalid (e.g. observation tokens of multi-turn rollouts).
 * A NULL segrl_layout pointer means padded. */
typedef struct segrl_layout {
    segrl_view offsets; /* none: padded; else packed */
} segrl_layout;

SEGRL_API segrl_layout segrl_layout_padded(void);
SEGRL_API segrl_layout segrl_layout_packed(segrl_view offsets);

// ----------------------------------------------------------------------------
// execution context: stream, workspace, validation

typedef enum segrl_checks {
    /* Default. Shapes, dtypes, devices AND contents: offsets monotone, group indices in range,
     * rewards/values finite at valid tokens. On CUDA the content checks run as one small kernel
     * followed by a stream synchronization. */
    SEGRL_CHECKS_FULL = 0,
    /* Only metadata (shapes, dtypes, devices, workspace). No pass over the data, no
     * synchronization: non-finite inputs propagate as IEEE arithmetic gives, and out-of-range
     * offsets or group indices are undefined behaviour. For trusted inputs on hot paths. */
    SEGRL_CHECKS_SHAPES = 1,
} segrl_checks;

/* Passed to every compute call; NULL or a zeroed struct means: default stream, no workspace,
 * full checks. */
typedef struct segrl_exec {
    void *stream;           /* cudaStream_t for CUDA views; NULL: the default stream. Ignored on CPU */
    void *workspace;        /* memory on the views' device (host memory for CPU views) */
    size_t workspace_bytes; /* at least what segrl_workspace_size() returned for the call */
    int32_t checks;         /* segrl_checks */
} segrl_exec;

/* Ops that have a workspace size query. Values are appended only. */
typedef enum segrl_op {
    SEGRL_OP_GAE = 0,
    SEGRL_OP_DISCOUNTED_RETURNS = 1,
    SEGRL_OP_WHITEN = 2,
    SEGRL_OP_GRPO = 3,
    SEGRL_OP_RLOO = 4,
    SEGRL_OP_REINFORCE_PP_BASELINE = 5,
    SEGRL_OP_REMAX = 6,
    SEGRL_OP_OPO = 7,
    SEGRL_OP_GRPO_PASSK = 8,
    SEGRL_OP_GPG = 9,
} segrl_op;

/* Workspace bytes `op` needs for `batch` sequences, `tokens` token slots (B*T padded, N packed)
 * and `num_groups` groups (0 where the op has no groups) on `device`. The size depends only on
 * these numbers, so one query can size a buffer reused across calls. 0 means no workspace. */
SEGRL_API segrl_status segrl_workspace_size(segrl_op op, segrl_device device, int64_t batch,
                                            int64_t tokens, int64_t num_groups,
                                            size_t *out_bytes);

// ----------------------------------------------------------------------------
// allocator hooks

/* The library's own host allocations (none of the compute calls allocate) go through these.
 * Any NULL member falls back to the C library. segrl_set_allocator(NULL) restores the defaults.
 * Set it before other segrl calls; it is process-wide, like cJSON_InitHooks. */
typedef struct segrl_allocator {
    void *(*malloc_fn)(size_t size, void *user);
    void *(*realloc_fn)(void *ptr, size_t size, void *user);
    void (*free_fn)(void *ptr, void *user);
    void *user;
} segrl_allocator;

SEGRL_API void segrl_set_allocator(const segrl_allocator *allocator);
/* Host memory through the hooks. segrl_free(NULL) does nothing. */
SEGRL_API void *segrl_malloc(size_t size);
SEGRL_API void *segrl_realloc(void *ptr, size_t size);
SEGRL_API void segrl_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_CORE_H */
