// torch/model.cpp — the Llama / Qwen2 decoder from ATen ops: configuration (config.json via
// cJSON), random initialization, loading and saving Hugging Face safetensors, the forward pass
// (RMSNorm, RoPE, grouped-query attention, SwiGLU), the value and score heads.
//
// Shapes: B batch, T tokens, H query heads, G = H / KV query heads per key/value head,
// D head_dim, d hidden_size, V vocab.
#include "internal.hpp"

#include "segrl/safetensors.h"

#include <ATen/CPUGeneratorImpl.h>
#include <cjson/cJSON.h>
#include <torch/version.h>

#include <cerrno>
#include <cstdarg>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sys/stat.h>

using namespace segrl_torch;

// libtorch >= 2.5: attention through at::scaled_dot_product_attention (fused CPU kernels, and
// memory-efficient kernels on CUDA that never hold the (T, Lk) score matrix), grouped-query heads
// included (enable_gqa). Older libtorch (Debian's 1.13): the same formula from matmul + softmax.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
#define SEGRL_TORCH_SDPA 1
#endif

// ----------------------------------------------------------------------------
// errors inside the bridge: thrown as ModelError, turned into a status at the boundary

namespace {

struct ModelError {
    segrl_status status;
    std::string msg;
};

[[noreturn]] void fail(segrl_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void fail(segrl_status s, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    throw ModelError{s, buf};
}

#define MODEL_CATCH                                                              \
    catch (const ModelError &e) {                                                \
        return segrl_set_error(e.status, "%s: %s", segrl_torch_fn_, e.msg.c_str()); \
    }                                                                            \
    SEGRL_TORCH_CATCH

// ----------------------------------------------------------------------------
// configuration

struct Json {
    cJSON *j = nullptr;
    ~Json() { cJSON_Delete(j); }
};

std::string read_file(const std::string &path, bool *exists) {
    FILE *f = std::fopen(path.c_str(), "rb");
    *exists = f != nullptr;
    if (!f) return {};
    std::string s;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        s.append(buf, n);
        if (s.size() > (64u << 20)) {
            std::fclose(f);
            fail(SEGRL_ERR_INVALID, "%s: larger than 64 MB", path.c_str());
        }
    }
    std::fclose(f);
    return s;
}

// an integer field: absent -> def (or an error when required); must be a number in [lo, hi]
int64_t get_int(const cJSON *o, const char *key, int64_t def, bool required, int64_t lo,
                int64_t hi, const char *file) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) fail(SEGRL_ERR_INVALID, "%s: \"%s\" is missing", file, key);
        return def;
    }
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0) v = cJSON_GetArrayItem(v, 0);  // eos lists
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v) ? 1 : 0;
    if (!cJSON_IsNumber(v)) fail(SEGRL_ERR_INVALID, "%s: \"%s\" is not a number", file, key);
    double d = v->valuedouble;
    if (d != std::floor(d) || d < (double)lo || d > (double)hi)
        fail(SEGRL_ERR_INVALID, "%s: \"%s\" = %g is not an integer in [%lld, %lld]", file, key, d,
             (long long)lo, (long long)hi);
    return (int64_t)d;
}

double get_num(const cJSON *o, const char *key, double def, const char *file) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsNumber(v) || !std::isfinite(v->valuedouble))
        fail(SEGRL_ERR_INVALID, "%s: \"%s\" is not a finite number", file, key);
    return v->valuedouble;
}

const int64_t kMaxDim = 1 << 20;

// fills the derived defaults and checks the architecture is consistent
void resolve_config(segrl_model_config *c, const char *where) {
    if (c->family != SEGRL_MODEL_LLAMA && c->family != SEGRL_MODEL_QWEN2)
        fail(SEGRL_ERR_INVALID, "%s: family %d unknown", where, (int)c->family);
    if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->num_hidden_layers < 0 ||
        c->num_attention_heads <= 0)
        fail(SEGRL_ERR_INVALID,
             "%s: vocab_size, hidden_size, num_attention_heads must be > 0, num_hidden_layers >= 0",
             where);
    if (c->num_key_value_heads <= 0) c->num_key_value_heads = c->num_attention_heads;
    if (c->head_dim <= 0) {
        if (c->hidden_size % c->num_attention_heads)
            fail(SEGRL_ERR_INVALID, "%s: hidden_size %d not divisible by num_attention_heads %d",
                 where, c->hidden_size, c->num_attention_heads);
        c->head_dim = c->hidden_size / c->num_attention_heads;
    }
    if (c->head_dim % 2) fail(SEGRL_ERR_INVALID, "%s: head_dim %d is odd", where, c->head_dim);
    if (c->num_attention_heads % c->num_key_value_heads)
        fail(SEGRL_ERR_INVALID,
             "%s: num_attention_heads %d not divisible by num_key_value_heads %d", where,
             c->num_attention_heads, c->num_key_value_heads);
    if (c->intermediate_size <= 0) {
        int64_t i = 8 * (int64_t)c->hidden_size / 3;
        c->intermediate_size = (int32_t)((i + 255) / 256 * 256);
    }
    if (c->max_position_embeddings <= 0) c->max_position_embeddings = 2048;
    if (!(c->rms_norm_eps > 0)) c->rms_norm_eps = 1e-6f;
    if (!(c->rope_theta > 0)) c->rope_theta = 10000.0f;
    if (c->rope_type < 0 || c->rope_type > 2)
        fail(SEGRL_ERR_INVALID, "%s: rope_type %d unknown", where, (int)c->rope_type);
    if (c->rope_type == 0) c->rope_scaling_factor = 1.0f;
    if (c->rope_type != 0 && !(c->rope_scaling_factor > 0))
        fail(SEGRL_ERR_INVALID, "%s: rope scaling factor must be > 0", where);
    if (c->rope_type == 2 &&
        (!(c->rope_low_freq_factor > 0) || !(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
         c->rope_original_max_position <= 0))
        fail(SEGRL_ERR_INVALID,
             "%s: llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor and "
             "original_max_position_embeddings > 0",
             where);
    if (!(c->initializer_range > 0)) c->initializer_range = 0.02f;
    if (c->hidden_size > kMaxDim || c->vocab_size > (1 << 24) || c->intermediate_size > kMaxDim ||
        c->num_hidden_layers > 4096 || c->num_attention_heads > 4096 || c->head_dim > 4096)
        fail(SEGRL_ERR_INVALID, "%s: implausibly large dimensions", where);
}

segrl_model_config parse_config(const std::string &dir) {
    std::string path = dir + "/config.json";
    bool exists;
    std::string text = read_file(path, &exists);
    if (!exists) fail(SEGRL_ERR_INVALID, "%s: cannot open (%s)", path.c_str(), std::strerror(errno));
    Json js;
    js.j = cJSON_ParseWithLength(text.data(), text.size());
    if (!js.j || !cJSON_IsObject(js.j)) fail(SEGRL_ERR_INVALID, "%s: not a JSON object", path.c_str());
    const char *f = path.c_str();
    const cJSON *o = js.j;
    segrl_model_config c;
    std::memset(&c, 0, sizeof c);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(o, "model_type");
    if (!cJSON_IsString(mt)) fail(SEGRL_ERR_INVALID, "%s: \"model_type\" is missing", f);
    if (!std::strcmp(mt->valuestring, "llama"))
        c.family = SEGRL_MODEL_LLAMA;
    else if (!std::strcmp(mt->valuestring, "qwen2"))
        c.family = SEGRL_MODEL_QWEN2;
    else
        fail(SEGRL_ERR_UNSUPPORTED, "%s: model_type \"%s\" (supported: llama, qwen2)", f,
             mt->valuestring);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "hidden_act");
    if (act && cJSON_IsString(act) && std::strcmp(act->valuestring, "silu"))
        fail(SEGRL_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" (supported: silu)", f, act->valuestring);
    c.vocab_size = (int32_t)get_int(o, "vocab_size", 0, true, 1, 1 << 24, f);
    c.hidden_size = (int32_t)get_int(o, "hidden_size", 0, true, 1, kMaxDim, f);
    c.intermediate_size = (int32_t)get_int(o, "intermediate_size", 0, true, 1, kMaxDim, f);
    c.num_hidden_layers = (int32_t)get_int(o, "num_hidden_layers", 0, true, 0, 4096, f);
    c.num_attention_heads = (int32_t)get_int(o, "num_attention_heads", 0, true, 1, 4096, f);
    c.num_key_value_heads = (int32_t)get_int(o, "num_key_value_heads", 0, false, 1, 4096, f);
    c.head_dim = (int32_t)get_int(o, "head_dim", 0, false, 1, 4096, f);
    c.max_position_embeddings =
        (int32_t)get_int(o, "max_position_embeddings", 2048, false, 1, INT32_MAX, f);
    c.tie_word_embeddings = (int32_t)get_int(o, "tie_word_embeddings", 0, false, 0, 1, f);
    c.attention_bias = (int32_t)get_int(o, "attention_bias", 0, false, 0, 1, f);
    if (get_int(o, "mlp_bias", 0, false, 0, 1, f))
        fail(SEGRL_ERR_UNSUPPORTED, "%s: mlp_bias true", f);
    if (c.family == SEGRL_MODEL_QWEN2 && get_int(o, "use_sliding_window", 0, false, 0, 1, f))
        fail(SEGRL_ERR_UNSUPPORTED, "%s: use_sliding_window true", f);
    c.bos_token_id = (int32_t)get_int(o, "bos_token_id", -1, false, -1, INT32_MAX, f);
    c.eos_token_id = (int32_t)get_int(o, "eos_token_id", -1, false, -1, INT32_MAX, f);
    c.rms_norm_eps = (float)get_num(o, "rms_norm_eps", 1e-6, f);
    c.initializer_range = (float)get_num(o, "initializer_range", 0.02, f);
    c.rope_theta = (float)get_num(o, "rope_theta", 10000.0, f);
    // rope: transformers < 5 "rope_scaling" (null or {"type"/"rope_type", "factor", ...});
    // transformers 5 "rope_parameters" {"rope_type", "rope_theta", ...}
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "rope_scaling");
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(o, "rope_parameters");
    if (cJSON_IsObject(rp)) {
        c.rope_theta = (float)get_num(rp, "rope_theta", c.rope_theta, f);
        if (!cJSON_IsObject(rs)) rs = rp;
    }
    c.rope_type = 0;
    c.rope_scaling_factor = 1.0f;
    if (cJSON_IsObject(rs)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
        if (!cJSON_IsString(t)) t = cJSON_GetObjectItemCaseSensitive(rs, "type");
        const char *ty = cJSON_IsString(t) ? t->valuestring : "default";
        if (!std::strcmp(ty, "default")) {
            c.rope_type = 0;
        } else if (!std::strcmp(ty, "linear")) {
            c.rope_type = 1;
            c.rope_scaling_factor = (float)get_num(rs, "factor", 0.0, f);
        } else if (!std::strcmp(ty, "llama3")) {
            c.rope_type = 2;
            c.rope_scaling_factor = (float)get_num(rs, "factor", 0.0, f);
            c.rope_low_freq_factor = (float)get_num(rs, "low_freq_factor", 0.0, f);
            c.rope_high_freq_factor = (float)get_num(rs, "high_freq_factor", 0.0, f);
            c.rope_original_max_position = (int32_t)get_int(
                rs, "original_max_position_embeddings", 0, true, 1, INT32_MAX, f);
        } else {
            fail(SEGRL_ERR_UNSUPPORTED, "%s: rope scaling type \"%s\" (supported: linear, llama3)",
                 f, ty);
        }
    }
    resolve_config(&c, f);
    return c;
}

// ----------------------------------------------------------------------------
// building the parameter list


// The parameters in their fixed order, with HF names, shapes, and their initializer kind
// (0 normal(0, std), 1 ones, 2 zeros).
struct Spec {
    std::string name;
    std::vector<int64_t> shape;
    int init;
    at::Tensor *slot;
};

std::vector<Spec> specs(segrl_model &m) {
    const segrl_model_config &c = m.cfg;
    int64_t d = c.hidden_size, H = c.num_attention_heads, KV = c.num_key_value_heads,
            D = c.head_dim, I = c.intermediate_size, V = c.vocab_size;
    bool qkv_bias = c.family == SEGRL_MODEL_QWEN2 || c.attention_bias;
    bool o_bias = c.family == SEGRL_MODEL_LLAMA && c.attention_bias;
    std::vector<Spec> s;
    s.push_back({"model.embed_tokens.weight", {V, d}, 0, &m.embed});
    m.layers.resize(c.num_hidden_layers);
    for (int32_t l = 0; l < c.num_hidden_layers; l++) {
        Layer &L = m.layers[l];
        std::string p = "model.layers." + std::to_string(l) + ".";
        s.push_back({p + "input_layernorm.weight", {d}, 1, &L.ln1});
        s.push_back({p + "self_attn.q_proj.weight", {H * D, d}, 0, &L.q_w});
        if (qkv_bias) s.push_back({p + "self_attn.q_proj.bias", {H * D}, 2, &L.q_b});
        s.push_back({p + "self_attn.k_proj.weight", {KV * D, d}, 0, &L.k_w});
        if (qkv_bias) s.push_back({p + "self_attn.k_proj.bias", {KV * D}, 2, &L.k_b});
        s.push_back({p + "self_attn.v_proj.weight", {KV * D, d}, 0, &L.v_w});
        if (qkv_bias) s.push_back({p + "self_attn.v_proj.bias", {KV * D}, 2, &L.v_b});
        s.push_back({p + "self_attn.o_proj.weight", {d, H * D}, 0, &L.o_w});
        if (o_bias) s.push_back({p + "self_attn.o_proj.bias", {d}, 2, &L.o_b});
        s.push_back({p + "post_attention_layernorm.weight", {d}, 1, &L.ln2});
        s.push_back({p + "mlp.gate_proj.weight", {I, d}, 0, &L.gate_w});
        s.push_back({p + "mlp.up_proj.weight", {I, d}, 0, &L.up_w});
        s.push_back({p + "mlp.down_proj.weight", {d, I}, 0, &L.down_w});
    }
    s.push_back({"model.norm.weight", {d}, 1, &m.norm});
    if (!c.tie_word_embeddings) s.push_back({"lm_head.weight", {V, d}, 0, &m.lm_head});
    return s;
}

// the heads, when present or requested
std::vector<Spec> head_specs(segrl_model &m, bool value, bool score) {
    int64_t d = m.cfg.hidden_size;
    std::vector<Spec> s;
    if (value) {
        s.push_back({"v_head.summary.weight", {1, d}, 0, &m.v_head_w});
        s.push_back({"v_head.summary.bias", {1}, 2, &m.v_head_b});
    }
    if (score) s.push_back({"score.weight", {1, d}, 0, &m.score_w});
    return s;
}

void register_param(segrl_model &m, const std::string &name, at::Tensor *slot) {
    if (m.dtype == at::kFloat || at::isFloatingType(m.dtype)) slot->set_requires_grad(true);
    m.params.emplace_back(new segrl_tensor{*slot});
    m.names.push_back(name);
}

// RoPE inverse frequencies (head_dim / 2), f32, as Hugging Face computes them:
//   inv_freq_i = 1 / theta^(2i / D)
//   linear:  inv_freq_i / factor
//   llama3:  wavelen_i = 2 pi / inv_freq_i; low = orig / low_freq_factor, high = orig / high_ff;
//            wavelen > low: inv/factor; wavelen < high: inv;
//            else (1 - s) inv/factor + s inv with s = (orig / wavelen - lff) / (hff - lff)
void make_rope(segrl_model &m) {
    const segrl_model_config &c = m.cfg;
    int64_t D = c.head_dim;
    at::Tensor ex = at::arange(0, D, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) /
                    (float)D;
    at::Tensor inv = 1.0 / at::pow((double)c.rope_theta, ex);
    inv = inv.to(at::kFloat);
    if (c.rope_type == 1) {
        inv = inv / c.rope_scaling_factor;
    } else if (c.rope_type == 2) {
        double orig = c.rope_original_max_position, lff = c.rope_low_freq_factor,
               hff = c.rope_high_freq_factor, factor = c.rope_scaling_factor;
        double low_wl = orig / lff, high_wl = orig / hff;
        at::Tensor wl = 2 * M_PI / inv;
        at::Tensor scaled = at::where(wl > low_wl, inv / factor, inv);
        at::Tensor smooth = (orig / wl - lff) / (hff - lff);
        at::Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
        at::Tensor medium = (wl >= high_wl).logical_and(wl <= low_wl);
        inv = at::where(medium, smoothed, scaled);
    }
    m.inv_freq = inv.to(m.device);
}

void finish_model(segrl_model &m, std::vector<Spec> &all) {
    for (Spec &s : all) register_param(m, s.name, s.slot);
    make_rope(m);
}

// ----------------------------------------------------------------------------
// the forward pass

at::Tensor rms_norm(const at::Tensor &x, const at::Tensor &w, double eps) {
    // HF: computed in f32, cast back to the input dtype, then scaled by the weight
    at::Tensor xf = x.to(at::kFloat);
    at::Tensor r = at::rsqrt(xf.pow(2).mean(-1, true) + eps);
    return w * (xf * r).to(x.scalar_type());
}

at::Tensor linear(const at::Tensor &x, const at::Tensor &w, const at::Tensor &b) {
    return b.defined() ? at::linear(x, w, b) : at::matmul(x, w.t());
}

// x (B, heads, T, D); cos, sin (B, 1, T, D): x * cos + rotate_half(x) * sin,
// rotate_half(x) = cat(-x[D/2:], x[:D/2])
at::Tensor rope(const at::Tensor &x, const at::Tensor &cos, const at::Tensor &sin) {
    int64_t h = x.size(-1) / 2;
    at::Tensor x1 = x.narrow(-1, 0, h), x2 = x.narrow(-1, h, h);
    return x * cos + at::cat({-x2, x1}, -1) * sin;
}

}  // namespace

namespace segrl_torch {

Fused fuse(const segrl_model &m) {
    Fused f;
    for (const Layer &L : m.layers) {
        f.qkv_w.push_back(at::cat({L.q_w, L.k_w, L.v_w}, 0).detach());
        f.qkv_b.push_back(L.q_b.defined() ? at::cat({L.q_b, L.k_b, L.v_b}, 0).detach()
                                          : at::Tensor());
        f.gu_w.push_back(at::cat({L.gate_w, L.up_w}, 0).detach());
    }
    return f;
}

at::Tensor trunk(const segrl_model &m, const at::Tensor &tokens, const at::Tensor &positions,
                 const at::Tensor &bias, KVCache *cache, const Fused *fused) {
    const segrl_model_config &c = m.cfg;
    int64_t B = tokens.size(0), T = tokens.size(1);
    int64_t H = c.num_attention_heads, KV = c.num_key_value_heads, D = c.head_dim, G = H / KV;
    double scale = 1.0 / std::sqrt((double)D);
    at::Tensor h = at::embedding(m.embed, tokens);  // (B, T, d)
    // rotary tables (B, 1, T, D): freqs = pos * inv_freq, emb = cat(freqs, freqs)
    at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * m.inv_freq;  // (B, T, D/2)
    at::Tensor emb = at::cat({freqs, freqs}, -1).unsqueeze(1);
    at::Tensor cos = emb.cos().to(m.dtype), sin = emb.sin().to(m.dtype);
#ifdef SEGRL_TORCH_SDPA
    // the additive bias in the model's dtype, kept finite (-1e30 is -inf in f16): a row with
    // every key masked (a padding query) then averages instead of producing NaN
    at::Tensor bias_d =
        bias.clamp_min((double)std::numeric_limits<float>::lowest()).to(m.dtype);
    if (m.dtype == at::kHalf) bias_d = bias.clamp_min(-65504.0).to(m.dtype);
#else
    at::Tensor bias5 = bias.unsqueeze(2);  // (B, 1, 1, T, Lk)
#endif
    for (size_t l = 0; l < m.layers.size(); l++) {
        const Layer &L = m.layers[l];
        at::Tensor x = rms_norm(h, L.ln1, c.rms_norm_eps);
        at::Tensor q, k, v;
        if (fused) {
            at::Tensor qkv = linear(x, fused->qkv_w[l], fused->qkv_b[l]);  // (B, T, (H+2KV) D)
            q = qkv.narrow(-1, 0, H * D).reshape({B, T, H, D}).transpose(1, 2);
            k = qkv.narrow(-1, H * D, KV * D).reshape({B, T, KV, D}).transpose(1, 2);
            v = qkv.narrow(-1, (H + KV) * D, KV * D).reshape({B, T, KV, D}).transpose(1, 2);
        } else {
            q = linear(x, L.q_w, L.q_b).view({B, T, H, D}).transpose(1, 2);
            k = linear(x, L.k_w, L.k_b).view({B, T, KV, D}).transpose(1, 2);
            v = linear(x, L.v_w, L.v_b).view({B, T, KV, D}).transpose(1, 2);
        }
        q = rope(q, cos, sin);
        k = rope(k, cos, sin);
        if (cache) {
            int64_t len = cache->len;
            cache->k[l].narrow(2, len, T).copy_(k);
            cache->v[l].narrow(2, len, T).copy_(v);
            k = cache->k[l].narrow(2, 0, len + T);
            v = cache->v[l].narrow(2, 0, len + T);
        }
#ifdef SEGRL_TORCH_SDPA
        at::Tensor a = at::scaled_dot_product_attention(q, k, v, bias_d, 0.0, false, scale, G > 1)
                           .transpose(1, 2)
                           .reshape({B, T, H * D});
#else
        int64_t Lk = k.size(2);
        // grouped-query attention without repeating K/V: query head h uses kv head h / G
        at::Tensor qg = q.reshape({B, KV, G * T, D});
        at::Tensor s = at::matmul(qg, k.transpose(2, 3)).to(at::kFloat) * scale;  // (B,KV,GT,Lk)
        s = s.view({B, KV, G, T, Lk}) + bias5;
        at::Tensor p = at::softmax(s, -1).to(m.dtype).view({B, KV, G * T, Lk});
        at::Tensor a = at::matmul(p, v).view({B, H, T, D}).transpose(1, 2).reshape({B, T, H * D});
#endif
        h = h + linear(a, L.o_w, L.o_b);
        x = rms_norm(h, L.ln2, c.rms_norm_eps);
        at::Tensor gu;
        if (fused) {
            int64_t I = L.gate_w.size(0);
            at::Tensor both = at::matmul(x, fused->gu_w[l].t());  // (B, T, 2I)
            gu = at::silu(both.narrow(-1, 0, I)) * both.narrow(-1, I, I);
        } else {
            gu = at::silu(at::matmul(x, L.gate_w.t())) * at::matmul(x, L.up_w.t());
        }
        h = h + at::matmul(gu, L.down_w.t());
    }
    if (cache) cache->len += T;
    return rms_norm(h, m.norm, c.rms_norm_eps);
}

at::Tensor logits_of(const segrl_model &m, const at::Tensor &hidden) {
    const at::Tensor &w = m.cfg.tie_word_embeddings ? m.embed : m.lm_head;
    return at::matmul(hidden, w.t()).to(at::kFloat);
}

}  // namespace segrl_torch

namespace {

// tokens / mask handles -> (tokens i64, valid bool) on the model's device, checked
void prepare_inputs(const segrl_model &m, const segrl_tensor *tokens, const segrl_tensor *mask,
                    at::Tensor *tok, at::Tensor *valid) {
    if (!tokens) fail(SEGRL_ERR_INVALID, "tokens: is NULL");
    const at::Tensor &t = tokens->t;
    if (t.dim() != 2 || t.size(0) < 1 || t.size(1) < 1)
        fail(SEGRL_ERR_INVALID, "tokens: must be (B, T) with B, T >= 1");
    if (t.scalar_type() != at::kLong && t.scalar_type() != at::kInt)
        fail(SEGRL_ERR_INVALID, "tokens: dtype %s, i64 or i32 required",
             c10::toString(t.scalar_type()));
    *tok = t.to(m.device, at::kLong);
    if (tok->numel() > 0) {
        int64_t lo = tok->min().item<int64_t>(), hi = tok->max().item<int64_t>();
        if (lo < 0 || hi >= m.cfg.vocab_size)
            fail(SEGRL_ERR_INVALID, "tokens: id %lld outside [0, %d)",
                 (long long)(lo < 0 ? lo : hi), m.cfg.vocab_size);
    }
    if (mask) {
        const at::Tensor &k = mask->t;
        if (!k.sizes().equals(t.sizes())) fail(SEGRL_ERR_INVALID, "mask: shape differs from tokens'");
        at::ScalarType s = k.scalar_type();
        if (s != at::kByte && s != at::kInt && s != at::kLong && s != at::kFloat && s != at::kBool)
            fail(SEGRL_ERR_INVALID, "mask: dtype %s, u8/i32/i64/f32 required", c10::toString(s));
        *valid = k.to(m.device).ne(0);
    } else {
        *valid = at::ones(t.sizes(), at::TensorOptions().dtype(at::kBool).device(m.device));
    }
}

// position ids cumsum(valid) - 1 (clamped at 0) and the additive bias (B, 1, T, T):
// 0 where key j <= query i and key j is valid, -1e30 elsewhere
void positions_and_bias(const at::Tensor &valid, at::Tensor *pos, at::Tensor *bias) {
    int64_t T = valid.size(1);
    *pos = (valid.to(at::kLong).cumsum(1) - 1).clamp_min(0);
    at::Tensor causal = at::ones({T, T}, valid.options()).tril();
    at::Tensor allowed = causal.unsqueeze(0).logical_and(valid.unsqueeze(1));  // (B, T, T)
    *bias = at::where(allowed, 0.0f, -1e30f).to(at::kFloat).unsqueeze(1);
}

at::Tensor head_output(segrl_model &m, const at::Tensor &hidden, const at::Tensor &valid,
                       segrl_model_output what) {
    if (what == SEGRL_OUTPUT_LOGITS) return logits_of(m, hidden);
    if (what == SEGRL_OUTPUT_VALUES) {
        if (!m.v_head_w.defined())
            fail(SEGRL_ERR_INVALID, "what: the model has no value head (segrl_model_add_head)");
        return at::linear(hidden, m.v_head_w, m.v_head_b).squeeze(-1).to(at::kFloat);
    }
    if (what == SEGRL_OUTPUT_SCORES) {
        if (!m.score_w.defined())
            fail(SEGRL_ERR_INVALID, "what: the model has no score head (segrl_model_add_head)");
        int64_t B = hidden.size(0), T = hidden.size(1);
        // each row's last valid position (the last column for a row without valid tokens)
        at::Tensor idx = at::arange(T, valid.options().dtype(at::kLong)).unsqueeze(0).expand({B, T});
        at::Tensor last = at::where(valid, idx, at::full_like(idx, -1)).amax(1);
        last = at::where(last < 0, at::full_like(last, T - 1), last);
        at::Tensor hsel = hidden.gather(
            1, last.view({B, 1, 1}).expand({B, 1, hidden.size(2)}));  // (B, 1, d)
        return at::matmul(hsel.squeeze(1), m.score_w.t()).squeeze(-1).to(at::kFloat);
    }
    fail(SEGRL_ERR_INVALID, "what: %d is not LOGITS, VALUES or SCORES", (int)what);
}

void init_tensor(at::Tensor *slot, const std::vector<int64_t> &shape, int kind, float std_,
                 at::Generator &gen, const segrl_model &m) {
    at::Tensor t;
    if (kind == 0)
        t = at::normal(0.0, (double)std_, shape, gen, at::TensorOptions().dtype(at::kFloat));
    else if (kind == 1)
        t = at::ones(shape, at::TensorOptions().dtype(at::kFloat));
    else
        t = at::zeros(shape, at::TensorOptions().dtype(at::kFloat));
    *slot = t.to(m.device, m.dtype).detach();
}

bool is_float_dtype(segrl_dtype d) {
    return d == SEGRL_DTYPE_F32 || d == SEGRL_DTYPE_BF16 || d == SEGRL_DTYPE_F16;
}

void mkdir_p(const std::string &dir) {
    std::string cur;
    size_t i = 0;
    while (i <= dir.size()) {
        size_t j = dir.find('/', i);
        if (j == std::string::npos) j = dir.size();
        cur = dir.substr(0, j);
        if (!cur.empty() && ::mkdir(cur.c_str(), 0777) != 0 && errno != EEXIST)
            fail(SEGRL_ERR_INVALID, "%s: cannot create directory (%s)", cur.c_str(),
                 std::strerror(errno));
        i = j + 1;
    }
}

segrl_st_dtype st_of(at::ScalarType s) {
    switch (s) {
    case at::kFloat: return SEGRL_ST_F32;
    case at::kBFloat16: return SEGRL_ST_BF16;
    case at::kHalf: return SEGRL_ST_F16;
    default: fail(SEGRL_ERR_UNSUPPORTED, "parameter dtype %s", c10::toString(s));
    }
}

const char *dtype_json(at::ScalarType s) {
    return s == at::kBFloat16 ? "bfloat16" : s == at::kHalf ? "float16" : "float32";
}

std::string config_json(const segrl_model &m) {
    const segrl_model_config &c = m.cfg;
    cJSON *o = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    bool qwen = c.family == SEGRL_MODEL_QWEN2;
    cJSON_AddItemToArray(arch, cJSON_CreateString(qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
    cJSON_AddStringToObject(o, "model_type", qwen ? "qwen2" : "llama");
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddNumberToObject(o, "vocab_size", c.vocab_size);
    cJSON_AddNumberToObject(o, "hidden_size", c.hidden_size);
    cJSON_AddNumberToObject(o, "intermediate_size", c.intermediate_size);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c.num_hidden_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", c.num_attention_heads);
    cJSON_AddNumberToObject(o, "num_key_value_heads", c.num_key_value_heads);
    cJSON_AddNumberToObject(o, "head_dim", c.head_dim);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c.max_position_embeddings);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c.tie_word_embeddings != 0);
    if (!qwen) {
        cJSON_AddBoolToObject(o, "attention_bias", c.attention_bias != 0);
        cJSON_AddBoolToObject(o, "mlp_bias", 0);
    } else {
        cJSON_AddBoolToObject(o, "use_sliding_window", 0);
    }
    if (c.bos_token_id >= 0) cJSON_AddNumberToObject(o, "bos_token_id", c.bos_token_id);
    if (c.eos_token_id >= 0) cJSON_AddNumberToObject(o, "eos_token_id", c.eos_token_id);
    cJSON_AddNumberToObject(o, "rms_norm_eps", c.rms_norm_eps);
    cJSON_AddNumberToObject(o, "rope_theta", c.rope_theta);
    cJSON_AddNumberToObject(o, "initializer_range", c.initializer_range);
    if (c.rope_type == 0) {
        cJSON_AddNullToObject(o, "rope_scaling");
    } else {
        cJSON *r = cJSON_AddObjectToObject(o, "rope_scaling");
        cJSON_AddStringToObject(r, "rope_type", c.rope_type == 1 ? "linear" : "llama3");
        cJSON_AddNumberToObject(r, "factor", c.rope_scaling_factor);
        if (c.rope_type == 2) {
            cJSON_AddNumberToObject(r, "low_freq_factor", c.rope_low_freq_factor);
            cJSON_AddNumberToObject(r, "high_freq_factor", c.rope_high_freq_factor);
            cJSON_AddNumberToObject(r, "original_max_position_embeddings",
                                    c.rope_original_max_position);
        }
    }
    cJSON_AddStringToObject(o, "torch_dtype", dtype_json(m.dtype));
    cJSON_AddBoolToObject(o, "use_cache", 1);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) throw std::bad_alloc();
    std::string r(s);
    cJSON_free(s);
    return r + "\n";
}

void write_file_atomic(const std::string &path, const std::string &data) {
    std::string tmp = path + ".tmp";
    FILE *f = std::fopen(tmp.c_str(), "wb");
    if (!f) fail(SEGRL_ERR_INVALID, "%s: cannot write (%s)", tmp.c_str(), std::strerror(errno));
    bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
    ok = (std::fflush(f) == 0) && ok;
    ok = (std::fclose(f) == 0) && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        std::remove(tmp.c_str());
        fail(SEGRL_ERR_INVALID, "%s: cannot write (%s)", path.c_str(), std::strerror(e));
    }
}

struct StHandle {
    segrl_safetensors *st = nullptr;
    ~StHandle() { segrl_safetensors_close(st); }
};

// a tensor of the file, converted to the model's dtype and device (a copy: the mapping closes)
at::Tensor load_tensor(const segrl_model &m, const segrl_safetensors *st, const Spec &s,
                       const char *dir) {
    segrl_st_tensor t;
    if (segrl_safetensors_find(st, s.name.c_str(), &t) != SEGRL_OK)
        fail(SEGRL_ERR_INVALID, "%s: tensor \"%s\" is missing", dir, s.name.c_str());
    bool shape_ok = t.ndim == (int32_t)s.shape.size();
    for (int32_t i = 0; shape_ok && i < t.ndim; i++) shape_ok = t.shape[i] == s.shape[i];
    if (!shape_ok) {
        std::string want, got;
        for (int64_t x : s.shape) want += (want.empty() ? "" : ", ") + std::to_string(x);
        for (int32_t i = 0; i < t.ndim; i++)
            got += (i ? ", " : "") + std::to_string(t.shape[i]);
        fail(SEGRL_ERR_INVALID, "%s: tensor \"%s\" has shape (%s), the config needs (%s)", dir,
             s.name.c_str(), got.c_str(), want.c_str());
    }
    at::ScalarType src;
    switch (t.dtype) {
    case SEGRL_ST_F32: src = at::kFloat; break;
    case SEGRL_ST_BF16: src = at::kBFloat16; break;
    case SEGRL_ST_F16: src = at::kHalf; break;
    default:
        fail(SEGRL_ERR_UNSUPPORTED, "%s: tensor \"%s\" has dtype %s (F32, BF16, F16 supported)",
             dir, s.name.c_str(), segrl_st_dtype_name((segrl_st_dtype)t.dtype));
    }
    at::Tensor x = at::from_blob(const_cast<void *>(t.data), s.shape,
                                 at::TensorOptions().dtype(src));
    // `to` may return x itself when nothing changes: clone so nothing points into the mapping
    at::Tensor y = x.to(m.device, m.dtype);
    if (y.data_ptr() == x.data_ptr()) y = y.clone();
    return y.contiguous();
}

}  // namespace

// ----------------------------------------------------------------------------
// the C API

extern "C" segrl_model_config segrl_model_config_default(void) {
    segrl_model_config c;
    std::memset(&c, 0, sizeof c);
    c.family = SEGRL_MODEL_LLAMA;
    c.vocab_size = 256;
    c.hidden_size = 128;
    c.intermediate_size = 384;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 0;
    c.max_position_embeddings = 2048;
    c.tie_word_embeddings = 1;
    c.attention_bias = 0;
    c.bos_token_id = -1;
    c.eos_token_id = -1;
    c.rms_norm_eps = 1e-6f;
    c.rope_theta = 10000.0f;
    c.rope_type = 0;
    c.rope_scaling_factor = 1.0f;
    c.initializer_range = 0.02f;
    return c;
}

extern "C" segrl_status segrl_model_init(const segrl_model_config *config, uint64_t seed,
                                         segrl_dtype dtype, segrl_device device,
                                         segrl_model **out) {
    SEGRL_TORCH_TRY("segrl_model_init") {
        if (!config) fail(SEGRL_ERR_INVALID, "config: is NULL");
        if (!out) fail(SEGRL_ERR_INVALID, "out: is NULL");
        if (!is_float_dtype(dtype)) fail(SEGRL_ERR_INVALID, "dtype: must be f32, bf16 or f16");
        at::Device dev(at::kCPU);
        segrl_status s = check_device(segrl_torch_fn_, "device", device, &dev);
        if (s != SEGRL_OK) return s;
        std::unique_ptr<segrl_model> m(new segrl_model);
        m->cfg = *config;
        resolve_config(&m->cfg, "config");
        to_scalar_type(dtype, &m->dtype);
        m->device = dev;
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
        std::vector<Spec> all = specs(*m);
        for (Spec &sp : all) init_tensor(sp.slot, sp.shape, sp.init, m->cfg.initializer_range, gen, *m);
        finish_model(*m, all);
        *out = m.release();
        return SEGRL_OK;
    }
    MODEL_CATCH
}

extern "C" segrl_status segrl_model_load(const char *dir, segrl_dtype dtype, segrl_device device,
                                         segrl_model **out) {
    SEGRL_TORCH_TRY("segrl_model_load") {
        if (!dir) fail(SEGRL_ERR_INVALID, "dir: is NULL");
        if (!out) fail(SEGRL_ERR_INVALID, "out: is NULL");
        if (!is_float_dtype(dtype)) fail(SEGRL_ERR_INVALID, "dtype: must be f32, bf16 or f16");
        at::Device dev(at::kCPU);
        segrl_status s = check_device(segrl_torch_fn_, "device", device, &dev);
        if (s != SEGRL_OK) return s;
        std::unique_ptr<segrl_model> m(new segrl_model);
        m->cfg = parse_config(dir);
        to_scalar_type(dtype, &m->dtype);
        m->device = dev;
        StHandle st;
        if (segrl_safetensors_open_dir(dir, &st.st) != SEGRL_OK) {
            std::string msg = segrl_last_error();
            fail(SEGRL_ERR_INVALID, "%s", msg.c_str());
        }
        std::vector<Spec> all = specs(*m);
        bool value = segrl_safetensors_index(st.st, "v_head.summary.weight") >= 0;
        bool score = segrl_safetensors_index(st.st, "score.weight") >= 0;
        std::vector<Spec> heads = head_specs(*m, value, score);
        all.insert(all.end(), heads.begin(), heads.end());
        for (Spec &sp : all) *sp.slot = load_tensor(*m, st.st, sp, dir);
        finish_model(*m, all);
        *out = m.release();
        return SEGRL_OK;
    }
    MODEL_CATCH
}

extern "C" segrl_status segrl_model_save(const segrl_model *model, const char *dir) {
    SEGRL_TORCH_TRY("segrl_model_save") {
        if (!model) fail(SEGRL_ERR_INVALID, "model: is NULL");
        if (!dir || !dir[0]) fail(SEGRL_ERR_INVALID, "dir: is NULL or empty");
        mkdir_p(dir);
        std::vector<at::Tensor> host;
        std::vector<segrl_st_tensor> ts;
        host.reserve(model->params.size());
        for (size_t i = 0; i < model->params.size(); i++) {
            at::Tensor h = model->params[i]->t.detach().to(at::kCPU).contiguous();
            host.push_back(h);
            segrl_st_tensor t;
            std::memset(&t, 0, sizeof t);
            t.name = model->names[i].c_str();
            t.dtype = st_of(h.scalar_type());
            t.ndim = (int32_t)h.dim();
            for (int64_t j = 0; j < h.dim(); j++) t.shape[j] = h.size(j);
            t.data = h.data_ptr();
            t.nbytes = h.nbytes();
            ts.push_back(t);
        }
        const char *keys[] = {"format"}, *vals[] = {"pt"};
        std::string path = std::string(dir) + "/model.safetensors";
        if (segrl_safetensors_write(path.c_str(), ts.data(), (int64_t)ts.size(), keys, vals, 1) !=
            SEGRL_OK) {
            std::string msg = segrl_last_error();
            fail(SEGRL_ERR_INVALID, "%s", msg.c_str());
        }
        write_file_atomic(std::string(dir) + "/config.json", config_json(*model));
        return SEGRL_OK;
    }
    MODEL_CATCH
}

extern "C" void segrl_model_free(segrl_model *model) { delete model; }

extern "C" segrl_status segrl_model_config_get(const segrl_model *model,
                                               segrl_model_config *out) {
    SEGRL_TORCH_TRY("segrl_model_config_get") {
        if (!model) fail(SEGRL_ERR_INVALID, "model: is NULL");
        if (!out) fail(SEGRL_ERR_INVALID, "out: is NULL");
        *out = model->cfg;
        return SEGRL_OK;
    }
    MODEL_CATCH
}

extern "C" segrl_status segrl_model_parameters(segrl_model *model, int64_t capacity,
                                               segrl_tensor **out_params, const char **out_names,
                                               int64_t *out_count) {
    SEGRL_TORCH_TRY("segrl_model_parameters") {
        if (!model) fail(SEGRL_ERR_INVALID, "model: is NULL");
        if (!out_count) fail(SEGRL_ERR_INVALID, "out_count: is NULL");
        if (capacity < 0) fail(SEGRL_ERR_INVALID, "capacity: negative");
        int64_t n = (int64_t)model->params.size();
        for (int64_t i = 0; i < n && i < capacity; i++) {
            if (out_params) out_params[i] = model->params[i].get();
            if (out_names) out_names[i] = model->names[i].c_str();
        }
        *out_count = n;
        return SEGRL_OK;
    }
    MODEL_CATCH
}

extern "C" segrl_status segrl_model_forward(segrl_model *model, const segrl_tensor *tokens,
                                            const segrl_tensor *mask, segrl_model_output what,
                                            segrl_tensor **out) {
    SEGRL_TORCH_TRY("segrl_model_forward") {
        if (!model) fail(SEGRL_ERR_INVALID, "model: is NULL");
        if (!out) fail(SEGRL_ERR_INVALID, "out: is NULL");
        if (what < SEGRL_OUTPUT_HIDDEN || what > SEGRL_OUTPUT_SCORES)
            fail(SEGRL_ERR_INVALID, "what: %d unknown", (int)what);
        at::Tensor tok, valid, pos, bias;
        prepare_inputs(*model, tokens, mask, &tok, &valid);
        positions_and_bias(valid, &pos, &bias);
        at::Tensor h = trunk(*model, tok, pos, bias, nullptr);
        at::Tensor r = what == SEGRL_OUTPUT_HIDDEN ? h : head_output(*model, h, valid, what);
        *out = wrap(std::move(r));
        return SEGRL_OK;
    }
    MODEL_CATCH
}

extern "C" segrl_status segrl_model_head(segrl_model *model, const segrl_tensor *hidden,
                                         const segrl_tensor *mask, segrl_model_output what,
                                         segrl_tensor **out) {
    SEGRL_TORCH_TRY("segrl_model_head") {
        if (!model) fail(SEGRL_ERR_INVALID, "model: is NULL");
        if (!hidden) fail(SEGRL_ERR_INVALID, "hidden: is NULL");
        if (!out) fail(SEGRL_ERR_INVALID, "out: is NULL");
        const at::Tensor &h = hidden->t;
        if (h.dim() != 3 || h.size(2) != model->cfg.hidden_size)
            fail(SEGRL_ERR_INVALID, "hidden: must be (B, T, %d)", model->cfg.hidden_size);
        at::Tensor valid;
        if (mask) {
            if (mask->t.dim() != 2 || mask->t.size(0) != h.size(0) || mask->t.size(1) != h.size(1))
                fail(SEGRL_ERR_INVALID, "mask: must be (B, T) like hidden");
            valid = mask->t.to(model->device).ne(0);
        } else {
            valid = at::ones({h.size(0), h.size(1)},
                             at::TensorOptions().dtype(at::kBool).device(model->device));
        }
        at::Tensor hh = h.to(model->device, model->dtype);
        *out = wrap(head_output(*model, hh, valid, what));
        return SEGRL_OK;
    }
    MODEL_CATCH
}

extern "C" segrl_status segrl_model_add_head(segrl_model *model, segrl_model_output what,
                                             float std_, uint64_t seed) {
    SEGRL_TORCH_TRY("segrl_model_add_head") {
        if (!model) fail(SEGRL_ERR_INVALID, "model: is NULL");
        if (what != SEGRL_OUTPUT_VALUES && what != SEGRL_OUTPUT_SCORES)
            fail(SEGRL_ERR_INVALID, "what: must be SEGRL_OUTPUT_VALUES or SEGRL_OUTPUT_SCORES");
        if (!(std_ >= 0) || !std::isfinite(std_)) fail(SEGRL_ERR_INVALID, "std: must be >= 0");
        bool value = what == SEGRL_OUTPUT_VALUES;
        if (value ? model->v_head_w.defined() : model->score_w.defined())
            fail(SEGRL_ERR_INVALID, "what: the model already has a %s head",
                 value ? "value" : "score");
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
        std::vector<Spec> hs = head_specs(*model, value, !value);
        for (Spec &sp : hs) {
            if (sp.init == 0 && std_ == 0)
                init_tensor(sp.slot, sp.shape, 2, 0, gen, *model);
            else
                init_tensor(sp.slot, sp.shape, sp.init, std_, gen, *model);
        }
        for (Spec &sp : hs) register_param(*model, sp.name, sp.slot);
        return SEGRL_OK;
    }
    MODEL_CATCH
}
