/* segrl/torch.h — the ATen bridge (libsegrl_torch): a C API over libtorch.
 *
 * Built when CMake finds Torch (Debian's libtorch-dev 1.13 CPU, or a libtorch 2.x from pip or a
 * zip); link segrl::torch (CMake) and it brings segrl::segrl. Only pointers, integers and floats
 * cross this header; tensors are opaque handles. Every function returns segrl_status and sets
 * segrl_last_error() on failure; no C++ exception crosses it. Outputs are written only on success.
 *
 * Ownership: a function returning a segrl_tensor* through an out_ parameter gives a NEW reference
 * (free it with segrl_tensor_free) unless its comment says "borrowed". The same holds for models
 * (segrl_model_free) and generation states (segrl_gen_free).
 *
 * Three parts:
 *   tensors      create, copy in/out, zero-copy views to and from segrl_view, autograd
 *   model        a Llama / Qwen2 decoder loaded from a Hugging Face directory (docs/torch.md)
 *   generation   batched sampling with a KV cache, and forkable generation states */
#ifndef SEGRL_TORCH_H
#define SEGRL_TORCH_H

#include "segrl/core.h"
#include "segrl/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// tensors

/* An opaque reference to one at::Tensor. */
typedef struct segrl_tensor segrl_tensor;

/* Drops the reference (NULL is ignored). */
SEGRL_API void segrl_tensor_free(segrl_tensor *t);

/* A new tensor of `dtype` on `device` with `ndim` dims of `shape` (ndim 0 ... 8), filled with a
 * copy of `data` (host memory, row-major, product(shape) elements; NULL: zeros). */
SEGRL_API segrl_status segrl_tensor_from_host(const void *data, segrl_dtype dtype, int32_t ndim,
                                              const int64_t *shape, segrl_device device,
                                              segrl_tensor **out);

/* A new zero-filled tensor (segrl_tensor_from_host with data == NULL). */
SEGRL_API segrl_status segrl_tensor_zeros(segrl_dtype dtype, int32_t ndim, const int64_t *shape,
                                          segrl_device device, segrl_tensor **out);

/* Copies the tensor's elements (row-major, in its own dtype, from any device) into host memory
 * `dst` of `dst_bytes` bytes, which must equal numel * dtype size. */
SEGRL_API segrl_status segrl_tensor_to_host(const segrl_tensor *t, void *dst, size_t dst_bytes);

/* A new tensor that ALIASES the memory of `view` (zero-copy: same data pointer, shape and
 * strides). The caller keeps that memory alive and unchanged in size for as long as the tensor
 * (and anything viewing it) lives. CUDA views need a CUDA-enabled libtorch. */
SEGRL_API segrl_status segrl_tensor_from_view(segrl_view view, segrl_tensor **out);

/* A segrl_view of the tensor's memory (zero-copy). The tensor must be contiguous (row-major),
 * have at most SEGRL_MAX_DIMS dims and one of segrl_dtype's dtypes; the view is valid while the
 * tensor lives and is not resized. Use segrl_tensor_contiguous first for other tensors. */
SEGRL_API segrl_status segrl_tensor_view(const segrl_tensor *t, segrl_view *out);

/* A new reference to the same tensor (shares memory and autograd identity). */
SEGRL_API segrl_status segrl_tensor_ref(const segrl_tensor *t, segrl_tensor **out);
/* A new contiguous tensor with the same values (the same tensor when already contiguous). */
SEGRL_API segrl_status segrl_tensor_contiguous(const segrl_tensor *t, segrl_tensor **out);
/* A new tensor converted to `dtype` on `device` (a copy unless nothing changes; differentiable). */
SEGRL_API segrl_status segrl_tensor_to(const segrl_tensor *t, segrl_dtype dtype,
                                       segrl_device device, segrl_tensor **out);
/* A new tensor sharing memory with `t` but cut from the autograd graph. */
SEGRL_API segrl_status segrl_tensor_detach(const segrl_tensor *t, segrl_tensor **out);

/* Metadata. segrl_tensor_shape writes min(ndim, capacity) sizes to out_shape (which may be NULL
 * when capacity is 0) and ndim to *out_ndim. */
SEGRL_API segrl_status segrl_tensor_shape(const segrl_tensor *t, int32_t capacity,
                                          int64_t *out_shape, int32_t *out_ndim);
SEGRL_API segrl_status segrl_tensor_numel(const segrl_tensor *t, int64_t *out);
/* SEGRL_ERR_UNSUPPORTED for a dtype outside segrl_dtype (e.g. f64, bool). */
SEGRL_API segrl_status segrl_tensor_dtype(const segrl_tensor *t, segrl_dtype *out);
SEGRL_API segrl_status segrl_tensor_device(const segrl_tensor *t, segrl_device *out);
/* The value of a one-element tensor, as a double. */
SEGRL_API segrl_status segrl_tensor_item(const segrl_tensor *t, double *out);

// ---- autograd

/* Marks a floating-point leaf tensor as requiring gradients (or not). */
SEGRL_API segrl_status segrl_tensor_set_requires_grad(segrl_tensor *t, int32_t requires_grad);
SEGRL_API segrl_status segrl_tensor_requires_grad(const segrl_tensor *t, int32_t *out);
/* Backpropagates from `t`: a one-element tensor when `grad` is NULL, otherwise `grad` (same
 * shape) is the incoming gradient. Gradients accumulate into the leaves' .grad. */
SEGRL_API segrl_status segrl_tensor_backward(segrl_tensor *t, const segrl_tensor *grad);
/* A new reference to t's accumulated gradient; *out = NULL (and SEGRL_OK) when it has none. */
SEGRL_API segrl_status segrl_tensor_grad(const segrl_tensor *t, segrl_tensor **out);
/* Sets t's accumulated gradient to zero (nothing when it has none). */
SEGRL_API segrl_status segrl_tensor_zero_grad(segrl_tensor *t);

/* Sets t's accumulated gradient to `grad` (shared, not copied: later backward passes accumulate
 * into grad's memory), or drops it when grad is NULL. grad: the same shape, dtype and device as
 * t; t must require gradients. Used by data-parallel trainers to give a gradient to a parameter
 * that saw no data on this process before the gradients are all-reduced. */
SEGRL_API segrl_status segrl_tensor_set_grad(segrl_tensor *t, const segrl_tensor *grad);

/* Gradient recording on the calling thread (like torch.no_grad): segrl_set_grad_enabled(0, &prev)
 * opens a no-grad scope, segrl_set_grad_enabled(prev, NULL) closes it. out_previous may be NULL. */
SEGRL_API segrl_status segrl_set_grad_enabled(int32_t enabled, int32_t *out_previous);
/* 1 when gradients are being recorded on this thread. */
SEGRL_API int32_t segrl_grad_enabled(void);

/* libtorch's intra-op CPU threads (at::set_num_threads; n >= 1; also OpenBLAS's own pool when
 * libtorch runs on a threaded OpenBLAS) and their current number. */
SEGRL_API segrl_status segrl_torch_set_num_threads(int32_t n);
SEGRL_API int32_t segrl_torch_num_threads(void);
/* 1 when this libtorch can use CUDA device `index` now. */
SEGRL_API int32_t segrl_torch_cuda_available(int32_t index);

/* Seeds libtorch's global generators (parameter initialization draws from segrl's own seeds;
 * this is for the caller's own ATen use). */
SEGRL_API void segrl_torch_manual_seed(uint64_t seed);

// ----------------------------------------------------------------------------
// model: Llama / Qwen2 decoder

/* A decoder-only transformer of the Llama family (docs/torch.md):
 *   h_0 = embed(tokens)
 *   h_l = h_{l-1} + Attn(RMSNorm(h_{l-1}));  h_l += MLP(RMSNorm(h_l))   (pre-norm)
 *   Attn: grouped-query attention with rotary position embeddings (RoFormer, arXiv 2104.09864),
 *         optional q/k/v bias (Qwen2); MLP: down(silu(gate(x)) * up(x)) (SwiGLU, arXiv 2002.05202)
 *   RMSNorm(x) = x / sqrt(mean(x^2) + eps) * w            (arXiv 1910.07467)
 *   logits = lm_head(RMSNorm(h_L)); lm_head is embed's matrix when the embeddings are tied. */
typedef struct segrl_model segrl_model;

/* Values are appended only. */
typedef enum segrl_model_family {
    SEGRL_MODEL_LLAMA = 0, /* model_type "llama" (Llama 2/3, SmolLM, TinyLlama, ...) */
    SEGRL_MODEL_QWEN2 = 1, /* model_type "qwen2" (Qwen2, Qwen2.5): q/k/v bias */
} segrl_model_family;

/* The architecture, as config.json spells it. segrl_model_config_default() gives a small Llama;
 * a field that is 0 takes its derived default (head_dim = hidden_size / num_attention_heads,
 * num_key_value_heads = num_attention_heads, intermediate_size = the Llama rule
 * 256 * ceil(8 * hidden / 3 / 256)). */
typedef struct segrl_model_config {
    int32_t family; /* segrl_model_family */
    int32_t vocab_size;
    int32_t hidden_size;
    int32_t intermediate_size;
    int32_t num_hidden_layers;
    int32_t num_attention_heads;
    int32_t num_key_value_heads;
    int32_t head_dim;
    int32_t max_position_embeddings;
    int32_t tie_word_embeddings; /* 1: lm_head shares embed_tokens' matrix */
    int32_t attention_bias;      /* 1: q/k/v (and for Llama o) projections have a bias; Qwen2: always q/k/v */
    int32_t bos_token_id;        /* -1: none */
    int32_t eos_token_id;        /* -1: none */
    float rms_norm_eps;
    float rope_theta;
    /* "rope_scaling" (or transformers 5's "rope_parameters"): rope_type 0 none ("default"),
     * 1 "linear" (positions / factor), 2 "llama3" (Llama 3.1's frequency-dependent factor with
     * low_freq_factor, high_freq_factor, original_max_position_embeddings) */
    int32_t rope_type;
    float rope_scaling_factor;
    float rope_low_freq_factor;
    float rope_high_freq_factor;
    int32_t rope_original_max_position;
    float initializer_range; /* std of the normal initialization (segrl_model_init) */
} segrl_model_config;

SEGRL_API segrl_model_config segrl_model_config_default(void);

/* A new model with random weights: every matrix ~ N(0, initializer_range^2), norms 1, biases 0,
 * drawn from a generator seeded with `seed` (the same seed gives the same weights on every
 * machine with the same libtorch). Parameters are f32 (dtype F32) or bf16/f16, on `device`. */
SEGRL_API segrl_status segrl_model_init(const segrl_model_config *config, uint64_t seed,
                                        segrl_dtype dtype, segrl_device device,
                                        segrl_model **out);

/* Loads a Hugging Face model directory: config.json (model_type "llama" or "qwen2") and
 * model.safetensors or model.safetensors.index.json + shards, any of f32/bf16/f16, converted to
 * `dtype` on `device`. Extra heads found in the file are loaded too ("v_head.summary.weight/bias":
 * value head; "score.weight": sequence-score head). Errors: SEGRL_ERR_INVALID naming the file and
 * the field or tensor (missing, wrong shape, malformed); SEGRL_ERR_UNSUPPORTED (another
 * model_type or hidden_act, another rope_scaling type, sliding-window attention, MLP bias). */
SEGRL_API segrl_status segrl_model_load(const char *dir, segrl_dtype dtype, segrl_device device,
                                        segrl_model **out);

/* Writes config.json and model.safetensors (Hugging Face names, the parameters' dtype) into
 * `dir` (created when missing), each through a temporary file and a rename. */
SEGRL_API segrl_status segrl_model_save(const segrl_model *model, const char *dir);

SEGRL_API void segrl_model_free(segrl_model *model);

SEGRL_API segrl_status segrl_model_config_get(const segrl_model *model,
                                              segrl_model_config *out);

/* Borrowed handles to the model's trainable parameter tensors (requires_grad, f32 on CPU) and their
 * Hugging Face names; valid while the model lives. Call with capacity 0 / NULL arrays to get the
 * count. The order is fixed: embeddings, then layer by layer, final norm, lm_head (when untied),
 * then the heads. */
SEGRL_API segrl_status segrl_model_parameters(segrl_model *model, int64_t capacity,
                                              segrl_tensor **out_params, const char **out_names,
                                              int64_t *out_count);

/* What segrl_model_forward returns. Values are appended only. */
typedef enum segrl_model_output {
    SEGRL_OUTPUT_HIDDEN = 0, /* (B, T, hidden): the final-norm hidden states (lm_head's input) */
    SEGRL_OUTPUT_LOGITS = 1, /* (B, T, vocab) f32 */
    SEGRL_OUTPUT_VALUES = 2, /* (B, T) f32: the value head at every position */
    SEGRL_OUTPUT_SCORES = 3, /* (B) f32: the score head at each row's last valid token */
} segrl_model_output;

/* One forward pass. tokens: i64 or i32 (B, T). mask: NULL (every token valid) or (B, T) u8/i32/
 * i64/f32, 1 for a real token and 0 for padding (left or right). Padding keys are never attended
 * to; position ids are the running count of valid tokens (cumsum(mask) - 1, as Hugging Face
 * generate() derives them), so a left-padded row gets the same values as the unpadded sequence.
 * Values at padded positions are unspecified. Records autograd unless grad is disabled.
 * VALUES and SCORES need the head (segrl_model_add_head or loaded). *out: a new reference. */
SEGRL_API segrl_status segrl_model_forward(segrl_model *model, const segrl_tensor *tokens,
                                           const segrl_tensor *mask, segrl_model_output what,
                                           segrl_tensor **out);

/* Applies the model's head to hidden states from SEGRL_OUTPUT_HIDDEN (so one trunk pass can feed
 * logits and values): what = LOGITS (B, T, V), VALUES (B, T), or SCORES (B) (needs `mask` to
 * find each row's last valid token; NULL: the last column). */
SEGRL_API segrl_status segrl_model_head(segrl_model *model, const segrl_tensor *hidden,
                                        const segrl_tensor *mask, segrl_model_output what,
                                        segrl_tensor **out);

/* Adds a value head (what = SEGRL_OUTPUT_VALUES: Linear(hidden, 1) with bias, named
 * "v_head.summary.weight/bias" as TRL's AutoModelForCausalLMWithValueHead names it) or a
 * sequence-score head (SEGRL_OUTPUT_SCORES: Linear(hidden, 1) without bias, "score.weight", as
 * Hugging Face's *ForSequenceClassification with num_labels = 1), weights ~ N(0, std^2) from
 * `seed`, bias 0. SEGRL_ERR_INVALID when the model already has it. */
SEGRL_API segrl_status segrl_model_add_head(segrl_model *model, segrl_model_output what,
                                            float std, uint64_t seed);

// ----------------------------------------------------------------------------
// generation

/* Sampling parameters. segrl_sampling_default(): temperature 1, top_p 1, top_k 0 (off),
 * max_new_tokens 64, no stops. temperature 0 means greedy (argmax; ties: lowest id).
 * A sampled token is drawn from softmax(logits / temperature) restricted to the top_k most likely
 * tokens and then to the smallest set whose probability reaches top_p (nucleus sampling, Holtzman
 * et al. 2019, arXiv 1904.09751), renormalized. The log-probability recorded for each token is
 * log softmax(logits / temperature) (log softmax(logits) when greedy), before the top-k/top-p
 * truncation: what a trainer recomputes from the same weights and temperature.
 * A sequence stops after emitting a stop token id (kept in the output), after its decoded
 * generated text contains a stop string (the token that completed it is kept; needs `tokenizer`),
 * or after max_new_tokens new tokens in this call. */
typedef struct segrl_sampling {
    float temperature;
    float top_p;
    int32_t top_k;
    int32_t max_new_tokens;
    const int32_t *stop_token_ids;
    int32_t num_stop_token_ids;
    int32_t num_stop_strings;
    const char *const *stop_strings;
    const segrl_tokenizer *tokenizer; /* borrowed for the call; NULL when there are no stop strings */
} segrl_sampling;

SEGRL_API segrl_sampling segrl_sampling_default(void);

/* Why a state stopped. Values are appended only. */
typedef enum segrl_finish {
    SEGRL_FINISH_NONE = 0,        /* still open: can be extended */
    SEGRL_FINISH_STOP_TOKEN = 1,  /* emitted a stop token id */
    SEGRL_FINISH_STOP_STRING = 2, /* generated text contains a stop string */
    SEGRL_FINISH_CONTEXT = 3,     /* reached the model's max_position_embeddings */
} segrl_finish;

/* A generation state: one sequence (prompt + generated tokens), its KV cache, the log-probs of
 * its generated tokens and its own random stream. States are nodes of a rollout tree: extending
 * one appends tokens to it in place; forking one gives K new states that share its KV cache
 * (nothing recomputed, nothing copied until they are extended). Each state draws its random
 * numbers from (seed, number of tokens it has generated since that seed was set): a state's
 * continuation depends only on its tokens and its seed, never on the batch it is extended in. */
typedef struct segrl_gen_state segrl_gen_state;

/* Creates `n` states from `n` prompts, packed: prompt i is tokens[offsets[i] .. offsets[i+1])
 * (offsets: n + 1 entries, offsets[0] = 0, each prompt >= 1 token, ids < vocab_size), with
 * seeds[i] (NULL: seed i). The prompts are run through the model in one batched pass (all but
 * their last token, which the first extension feeds). out_states: n new states. */
SEGRL_API segrl_status segrl_gen_create(segrl_model *model, int64_t n, const int32_t *tokens,
                                        const int64_t *offsets, const uint64_t *seeds,
                                        segrl_gen_state **out_states);

/* Samples up to sampling->max_new_tokens tokens for each of the `n` states, all in one batch
 * (states already finished are left as they are; a state may not appear twice). The states must
 * come from `model`. Gradients are never recorded. */
SEGRL_API segrl_status segrl_gen_extend(segrl_model *model, segrl_gen_state *const *states,
                                        int64_t n, const segrl_sampling *sampling);

/* K new states continuing `state` (same tokens, log-probs, finish state and shared KV cache),
 * child k with random stream seeds[k] (NULL: seeds k of the parent's seed mixed with k). */
SEGRL_API segrl_status segrl_gen_fork(const segrl_gen_state *state, int64_t k,
                                      const uint64_t *seeds, segrl_gen_state **out_children);

/* Sets a state's random stream: `seed`, counter 0. */
SEGRL_API segrl_status segrl_gen_set_seed(segrl_gen_state *state, uint64_t seed);

/* Token counts: the prompt's and all of them (prompt + generated). */
SEGRL_API segrl_status segrl_gen_length(const segrl_gen_state *state, int64_t *out_prompt_len,
                                        int64_t *out_total_len);
/* Copies min(total, capacity) tokens (prompt then generated) to out_tokens; *out_count = total. */
SEGRL_API segrl_status segrl_gen_tokens(const segrl_gen_state *state, int64_t capacity,
                                        int32_t *out_tokens, int64_t *out_count);
/* Copies the log-probs of the generated tokens (total - prompt of them), likewise. */
SEGRL_API segrl_status segrl_gen_logprobs(const segrl_gen_state *state, int64_t capacity,
                                          float *out_logprobs, int64_t *out_count);
SEGRL_API segrl_status segrl_gen_finish_reason(const segrl_gen_state *state,
                                               segrl_finish *out);

SEGRL_API void segrl_gen_free(segrl_gen_state *state);

/* Batched generation in one call: `num_samples` continuations of each of `n` packed prompts
 * (the prompt is prefilled once and forked), sample j of prompt i seeded with seed + i *
 * num_samples + j. Row r = i * num_samples + j of the outputs (n * num_samples rows of
 * max_new_tokens columns): out_tokens (i32) and out_logprobs (f32, may be NULL) hold the
 * generated tokens, padded with -1 / 0 after out_lengths[r]; out_finish (may be NULL) the
 * segrl_finish of each row. */
SEGRL_API segrl_status segrl_generate(segrl_model *model, int64_t n, const int32_t *tokens,
                                      const int64_t *offsets, int64_t num_samples,
                                      const segrl_sampling *sampling, uint64_t seed,
                                      int32_t *out_tokens, float *out_logprobs,
                                      int32_t *out_lengths, int32_t *out_finish);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_TORCH_H */
