// torch/internal.hpp — what every file of the ATen bridge (libsegrl_torch) shares: the tensor
// handle behind the opaque C type, and the boundary macro that turns every C++ exception into a
// status plus the thread-local last-error message (no exception ever crosses the C API).
#pragma once

#include "segrl/core.h"
#include "segrl/torch.h"

#include <ATen/ATen.h>
// at::NoGradGuard (libtorch 2.x no longer brings it in through ATen.h)
#include <ATen/core/grad_mode.h>

#include <exception>
#include <memory>
#include <string>
#include <vector>

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
bool to_device(segrl_device d, at::Device *out);
segrl_device from_device(const at::Device &d);
// to_device plus "this libtorch can use it"; sets the error "<fn>: <arg>: ..." otherwise
segrl_status check_device(const char *fn, const char *arg, segrl_device d, at::Device *out);

// ---- the model (model.cpp), used by generation (generate.cpp)

struct Layer {
    at::Tensor ln1, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, ln2, gate_w, up_w, down_w;
};

// Per-layer key/value cache of a batch: k[l], v[l] are (B, kv_heads, capacity, head_dim);
// columns [0, len) are filled. Rows share `len` (generation left-aligns them, padding masked).
struct KVCache {
    std::vector<at::Tensor> k, v;
    int64_t len = 0;
};

}  // namespace segrl_torch

struct segrl_model {
    segrl_model_config cfg;
    at::ScalarType dtype;
    at::Device device{at::kCPU};
    at::Tensor embed, norm, lm_head;  // lm_head: undefined when tied
    std::vector<segrl_torch::Layer> layers;
    at::Tensor v_head_w, v_head_b, score_w;  // undefined when absent
    at::Tensor inv_freq;                      // (head_dim / 2) f32 on device: RoPE frequencies
    // parameter handles (borrowed by callers of segrl_model_parameters) and their HF names;
    // the handles share their TensorImpl with the fields above
    std::vector<std::unique_ptr<segrl_tensor>> params;
    std::vector<std::string> names;
};

namespace segrl_torch {

// Inference-only copies of each layer's projections concatenated, so one matmul computes q, k
// and v, and one computes gate and up (built per generation call from the current parameters).
struct Fused {
    std::vector<at::Tensor> qkv_w, qkv_b, gu_w;  // (H*D + 2*KV*D, d), its bias or undefined, (2I, d)
};
Fused fuse(const segrl_model &m);

// The decoder trunk: tokens (B, T) i64, positions (B, T) i64, bias (B, 1, T, Lk) f32 additive
// attention bias over the Lk = cache->len + T keys (or over T keys without a cache). With a
// cache, the new keys/values are written at columns [len, len + T) and len advances.
// Returns the final-norm hidden states (B, T, hidden) in the model's dtype.
// `fused` (optional) replaces the separate projections (same values, fewer calls).
at::Tensor trunk(const segrl_model &m, const at::Tensor &tokens, const at::Tensor &positions,
                 const at::Tensor &bias, KVCache *cache, const Fused *fused = nullptr);
// lm_head: (.., hidden) -> (.., vocab) f32
at::Tensor logits_of(const segrl_model &m, const at::Tensor &hidden);

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
