/* segrl/safetensors.h — read and write the safetensors format (Hugging Face), single files and
 * sharded model directories.
 *
 * File layout (https://github.com/huggingface/safetensors, "Format"):
 *   [8 bytes: N, unsigned little-endian]  [N bytes: JSON header]  [the data buffer]
 *   header: {"__metadata__": {"k": "v", ...},
 *            "<tensor name>": {"dtype": "BF16", "shape": [d0, d1, ...], "data_offsets": [b, e]}, ...}
 *   data_offsets are byte offsets into the data buffer (relative to 8 + N); tensors are
 *   row-major, little-endian.
 *
 * Reading maps the file read-only (mmap): tensor data pointers point into the mapping and stay
 * valid until segrl_safetensors_close. Everything in the header is checked against the file size
 * before open returns: dtypes, shapes, offsets inside the data buffer, begin <= end, byte size
 * == product(shape) * dtype size (overflow-checked), no two tensors overlapping, header length
 * below 100 MB and inside the file, __metadata__ a map of strings, no duplicate names. A bad file
 * gives SEGRL_ERR_INVALID with a message naming the file and the tensor.
 *
 * Writing goes to "<path>.tmp", is fsync'ed and renamed over <path>, so a crash never leaves a
 * half-written file under <path>. */
#ifndef SEGRL_SAFETENSORS_H
#define SEGRL_SAFETENSORS_H

#include "segrl/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The format's element types. The first six values equal segrl_dtype's (F32 ... U8), so
 * `t <= SEGRL_ST_U8` means "usable directly as a segrl_dtype". Values are appended only. */
typedef enum segrl_st_dtype {
    SEGRL_ST_F32 = 0,
    SEGRL_ST_F16 = 1,
    SEGRL_ST_BF16 = 2,
    SEGRL_ST_I32 = 3,
    SEGRL_ST_I64 = 4,
    SEGRL_ST_U8 = 5,
    SEGRL_ST_F64 = 6,
    SEGRL_ST_BOOL = 7, /* one byte per element */
    SEGRL_ST_I8 = 8,
    SEGRL_ST_I16 = 9,
    SEGRL_ST_U16 = 10,
    SEGRL_ST_U32 = 11,
    SEGRL_ST_U64 = 12,
    SEGRL_ST_F8_E4M3 = 13,
    SEGRL_ST_F8_E5M2 = 14,
} segrl_st_dtype;

/* Bytes per element (0 for an unknown value) and the format's name ("BF16", "F32", ...; "?"). */
SEGRL_API size_t segrl_st_dtype_size(segrl_st_dtype dtype);
SEGRL_API const char *segrl_st_dtype_name(segrl_st_dtype dtype);

#define SEGRL_ST_MAX_DIMS 8

/* One tensor. Filled by the reader (name and data borrowed from the open handle); filled by the
 * caller for the writer (name, dtype, ndim, shape, data; nbytes is ignored and recomputed). */
typedef struct segrl_st_tensor {
    const char *name;
    int32_t dtype; /* segrl_st_dtype */
    int32_t ndim;  /* 0 (a scalar) ... SEGRL_ST_MAX_DIMS */
    int64_t shape[SEGRL_ST_MAX_DIMS];
    const void *data; /* row-major, little-endian; may be NULL for a tensor of 0 bytes */
    size_t nbytes;    /* product(shape) * segrl_st_dtype_size(dtype) */
} segrl_st_tensor;

/* An open file, or an open model directory of several shards. Opaque. */
typedef struct segrl_safetensors segrl_safetensors;

/* Opens one .safetensors file. *out is written only on success; free with
 * segrl_safetensors_close. Errors: SEGRL_ERR_INVALID (path, a malformed file: the message names
 * the tensor), SEGRL_ERR_ALLOC. */
SEGRL_API segrl_status segrl_safetensors_open(const char *path, segrl_safetensors **out);

/* Opens a Hugging Face model directory: "<dir>/model.safetensors" when it exists, otherwise
 * "<dir>/model.safetensors.index.json", whose "weight_map" {tensor: shard file} names the shards
 * (files inside <dir>; every shard is opened and checked; each weight_map entry must be in its
 * shard; a name in two shards is an error). The handle then serves every tensor of every shard
 * through the calls below, in shard order. Metadata: the first file's __metadata__. */
SEGRL_API segrl_status segrl_safetensors_open_dir(const char *dir, segrl_safetensors **out);

/* Unmaps and frees. NULL does nothing. Borrowed names and data pointers die with the handle. */
SEGRL_API void segrl_safetensors_close(segrl_safetensors *st);

/* Number of tensors (0 for NULL). */
SEGRL_API int64_t segrl_safetensors_count(const segrl_safetensors *st);

/* Tensor number `index` in [0, count), in file order (ascending data offset, shard by shard). */
SEGRL_API segrl_status segrl_safetensors_get(const segrl_safetensors *st, int64_t index,
                                             segrl_st_tensor *out);

/* The index of the tensor called `name`, or -1 when there is none (sets no error). */
SEGRL_API int64_t segrl_safetensors_index(const segrl_safetensors *st, const char *name);

/* The tensor called `name`; SEGRL_ERR_INVALID "... not found" when there is none. */
SEGRL_API segrl_status segrl_safetensors_find(const segrl_safetensors *st, const char *name,
                                              segrl_st_tensor *out);

/* __metadata__: the value for `key`, or NULL (borrowed). Entry i of count, in file order. */
SEGRL_API const char *segrl_safetensors_metadata(const segrl_safetensors *st, const char *key);
SEGRL_API int64_t segrl_safetensors_metadata_count(const segrl_safetensors *st);
SEGRL_API segrl_status segrl_safetensors_metadata_at(const segrl_safetensors *st, int64_t index,
                                                     const char **out_key,
                                                     const char **out_value);

/* Writes `n` tensors and `n_meta` metadata pairs (meta_keys[i] -> meta_values[i]; both may be
 * NULL when n_meta == 0) to `path` through "<path>.tmp" + fsync + rename. Names must be unique,
 * non-empty and not "__metadata__"; dtype a segrl_st_dtype; data non-NULL unless nbytes is 0.
 * The data buffer is laid out by descending element size, then name, so every tensor starts at
 * a multiple of its element size (the header is padded with spaces to a multiple of 8 bytes).
 * Errors: SEGRL_ERR_INVALID (names the tensor), SEGRL_ERR_ALLOC, and SEGRL_ERR_INVALID with the
 * OS error when the file cannot be written (the .tmp file is removed). */
SEGRL_API segrl_status segrl_safetensors_write(const char *path, const segrl_st_tensor *tensors,
                                               int64_t n, const char *const *meta_keys,
                                               const char *const *meta_values, int64_t n_meta);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_SAFETENSORS_H */
