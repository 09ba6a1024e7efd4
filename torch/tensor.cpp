// torch/tensor.cpp — tensor handles: wrapping, freeing, dtype mapping.
#include "internal.hpp"

namespace segrl_torch {

segrl_tensor *wrap(at::Tensor t) { return new segrl_tensor{std::move(t)}; }

bool to_scalar_type(segrl_dtype d, at::ScalarType *out) {
    switch (d) {
    case SEGRL_DTYPE_F32: *out = at::kFloat; return true;
    case SEGRL_DTYPE_F16: *out = at::kHalf; return true;
    case SEGRL_DTYPE_BF16: *out = at::kBFloat16; return true;
    case SEGRL_DTYPE_I32: *out = at::kInt; return true;
    case SEGRL_DTYPE_I64: *out = at::kLong; return true;
    case SEGRL_DTYPE_U8: *out = at::kByte; return true;
    default: return false;
    }
}

bool from_scalar_type(at::ScalarType s, segrl_dtype *out) {
    switch (s) {
    case at::kFloat: *out = SEGRL_DTYPE_F32; return true;
    case at::kHalf: *out = SEGRL_DTYPE_F16; return true;
    case at::kBFloat16: *out = SEGRL_DTYPE_BF16; return true;
    case at::kInt: *out = SEGRL_DTYPE_I32; return true;
    case at::kLong: *out = SEGRL_DTYPE_I64; return true;
    case at::kByte: *out = SEGRL_DTYPE_U8; return true;
    default: return false;
    }
}

}  // namespace segrl_torch

extern "C" void segrl_tensor_free(segrl_tensor *t) { delete t; }
