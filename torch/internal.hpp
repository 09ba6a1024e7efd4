// torch/internal.hpp — what every file of the ATen bridge (libsegrl_torch) shares: the tensor
// handle behind the opaque C type, and the boundary macro that turns every C++ exception into a
// status plus the thread-local last-error message (no exception ever crosses the C API).
#pragma once

#include "segrl/segrl.h"
#include "segrl/torch.h"

#include <ATen/ATen.h>

#include <exception>
#include <string>

// The opaque handle of include/segrl/torch.h: owns one reference to an at::Tensor.
struct segrl_tensor {
    at::Tensor t;
};

namespace segrl_torch {

// wrap a tensor in a new handle (a new reference: the caller frees it with segrl_tensor_free)
segrl_tensor *wrap(at::Tensor t);

// library enums <-> ATen (the numbering of neither is part of the other's ABI)
bool to_scalar_type(segrl_dtype d, at::ScalarType *out);
bool from_scalar_type(at::ScalarType s, segrl_dtype *out);

}  // namespace segrl_torch

// Body of every exported bridge function:
//   SEGRL_TORCH_TRY("segrl_model_forward") { ... return SEGRL_OK; } SEGRL_TORCH_CATCH
// c10::Error and std::bad_alloc become statuses (ERR_INVALID / ERR_ALLOC) with the message
// "<fn>: <what()>" (first line only: c10 appends a C++ backtrace).
#define SEGRL_TORCH_TRY(fn)         \
    const char *segrl_torch_fn_ = fn; \
    try
#define SEGRL_TORCH_CATCH                                                                   \
    catch (const std::bad_alloc &) {                                                        \
        return segrl_set_error(SEGRL_ERR_ALLOC, "%s: out of memory", segrl_torch_fn_);      \
    }                                                                                       \
    catch (const std::exception &e) {                                                       \
        std::string m = e.what();                                                           \
        size_t nl = m.find('\n');                                                           \
        if (nl != std::string::npos) m.resize(nl);                                          \
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: %s", segrl_torch_fn_, m.c_str());    \
    }                                                                                       \
    catch (...) {                                                                           \
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: unknown C++ exception", segrl_torch_fn_); \
    }
