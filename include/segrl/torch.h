/* segrl/torch.h — the ATen bridge (libsegrl_torch): a C API over libtorch.
 *
 * Built when CMake finds Torch (Debian's libtorch-dev 1.13 CPU, or a libtorch 2.x from pip or a
 * zip); link segrl::torch (CMake) and it brings segrl::segrl. Only pointers, integers and floats
 * cross this header; tensors are opaque handles. Every function returns segrl_status and sets
 * segrl_last_error() on failure; no C++ exception crosses it.
 *
 * Ownership: a function returning a segrl_tensor* through an out_ parameter gives a NEW reference
 * (free it with segrl_tensor_free) unless its comment says "borrowed". */
#ifndef SEGRL_TORCH_H
#define SEGRL_TORCH_H

#include "segrl/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An opaque reference to one at::Tensor. */
typedef struct segrl_tensor segrl_tensor;

/* Drops the reference (NULL is ignored). */
SEGRL_API void segrl_tensor_free(segrl_tensor *t);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_TORCH_H */
