// torch/generate.cpp — batched sampling with a KV cache, and forkable generation states.
//
// A state holds tokens[0 .. n) and the keys/values of tokens[0 .. n-1) for every layer, as
// (KV, n-1, D) tensors; the last token is "pending": the next extension feeds it. So a prompt is
// prefilled once, and K forks of a state share its cache tensors (reference counted, never
// written: an extension copies them into a fresh batch buffer and gives each state a view of its
// own row afterwards).
//
// One extension of n states: their caches are copied right-aligned into a (n, KV, C + L, D)
// buffer per layer (C = longest cache, L = max_new_tokens), padding columns masked; then each
// step feeds every row's pending token at column C + t (position = the row's own length), and
// samples the next one for all rows at once. Random numbers come from each state's
// (seed, counter) through splitmix64 (Steele et al. 2014), so a row's draws do not depend on
// which other rows share its batch.
#include "internal.hpp"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace segrl_torch;

struct segrl_gen_state {
    const segrl_model *model;
    std::vector<int32_t> tokens;
    int64_t prompt_len;
    std::vector<float> logprobs;          // one per generated token
    std::vector<at::Tensor> k, v;         // per layer (KV, tokens - 1, D); views allowed
    std::string text;                     // bytes of the generated tokens (for stop strings)
    int32_t text_ok = 1;                  // text covers every generated token
    uint64_t seed, counter = 0;
    int32_t finish = SEGRL_FINISH_NONE;
};

namespace {

struct GenError {
    segrl_status status;
    std::string msg;
};

[[noreturn]] void gfail(segrl_status s, const std::string &m) { throw GenError{s, m}; }

#define GEN_CATCH                                                                  \
    catch (const GenError &e) {                                                    \
        return segrl_set_error(e.status, "%s: %s", segrl_torch_fn_, e.msg.c_str()); \
    }                                                                              \
    SEGRL_TORCH_CATCH

uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// uniform in [0, 1) from (seed, counter)
double uniform(uint64_t seed, uint64_t counter) {
    uint64_t r = splitmix64(splitmix64(seed) ^ (counter * 0xd1342543de82ef95ull));
    return (double)(r >> 11) * (1.0 / 9007199254740992.0);
}

void check_sampling(const segrl_sampling *s, const segrl_model &m) {
    if (!s) gfail(SEGRL_ERR_INVALID, "sampling: is NULL");
    if (!(s->temperature >= 0) || !std::isfinite(s->temperature))
        gfail(SEGRL_ERR_INVALID, "sampling: temperature must be finite and >= 0");
    if (!(s->top_p > 0 && s->top_p <= 1))
        gfail(SEGRL_ERR_INVALID, "sampling: top_p must be in (0, 1]");
    if (s->top_k < 0) gfail(SEGRL_ERR_INVALID, "sampling: top_k must be >= 0");
    if (s->max_new_tokens < 0) gfail(SEGRL_ERR_INVALID, "sampling: max_new_tokens must be >= 0");
    if (s->num_stop_token_ids < 0 || (s->num_stop_token_ids > 0 && !s->stop_token_ids))
        gfail(SEGRL_ERR_INVALID, "sampling: stop_token_ids is NULL or its count negative");
    for (int32_t i = 0; i < s->num_stop_token_ids; i++)
        if (s->stop_token_ids[i] < 0 || s->stop_token_ids[i] >= m.cfg.vocab_size)
            gfail(SEGRL_ERR_INVALID, "sampling: stop_token_ids[" + std::to_string(i) +
                                         "] outside the vocabulary");
    if (s->num_stop_strings < 0 || (s->num_stop_strings > 0 && !s->stop_strings))
        gfail(SEGRL_ERR_INVALID, "sampling: stop_strings is NULL or its count negative");
    for (int32_t i = 0; i < s->num_stop_strings; i++)
        if (!s->stop_strings[i] || !s->stop_strings[i][0])
            gfail(SEGRL_ERR_INVALID,
                  "sampling: stop_strings[" + std::to_string(i) + "] is NULL or empty");
    if (s->num_stop_strings > 0 && !s->tokenizer)
        gfail(SEGRL_ERR_INVALID, "sampling: stop strings need a tokenizer");
}

// Samples one token per row of logits (n, V) f32. u: (n) f64 uniforms. Returns the tokens (n)
// i64 and their log-probs (n) f32 under log_softmax(logits / temperature).
void sample(const at::Tensor &logits, const segrl_sampling &s, const at::Tensor &u,
            at::Tensor *out_tok, at::Tensor *out_lp) {
    int64_t V = logits.size(1);
    bool greedy = s.temperature == 0;
    at::Tensor logp = at::log_softmax(greedy ? logits : logits / (double)s.temperature, -1);
    at::Tensor tok;
    if (greedy) {
        tok = logits.argmax(-1);
    } else {
        at::Tensor p = logp.to(at::kDouble).exp();
        bool topk = s.top_k > 0 && s.top_k < V, topp = s.top_p < 1;
        at::Tensor idx;
        if (topk || topp) {
            // sorted descending (stable: equal probabilities keep id order); keep rank < top_k,
            // then the shortest prefix whose mass reaches top_p (the first token always stays)
            std::tuple<at::Tensor, at::Tensor> sorted = at::sort(p, true, -1, true);
            p = std::get<0>(sorted);
            idx = std::get<1>(sorted);
            if (topk) p = p.narrow(1, 0, s.top_k), idx = idx.narrow(1, 0, s.top_k);
            if (topp) {
                at::Tensor before = p.cumsum(1) - p;
                before = before / p.sum(1, true);  // mass of the kept set before this token
                p = at::where(before < (double)s.top_p, p, at::zeros_like(p));
            }
        }
        // inverse CDF: the first index whose cumulative mass exceeds u * total; the target
        // stays strictly below the total, so the chosen entry has probability > 0
        at::Tensor c = p.cumsum(1);
        at::Tensor total = c.select(1, c.size(1) - 1);
        at::Tensor target = at::minimum(u * total, total * (1.0 - 1e-12)).unsqueeze(1);
        at::Tensor j = at::searchsorted(c, target, false, true).clamp_max(c.size(1) - 1);
        tok = idx.defined() ? idx.gather(1, j).squeeze(1) : j.squeeze(1);
    }
    *out_tok = tok;
    *out_lp = logp.gather(1, tok.unsqueeze(1)).squeeze(1);
}

// a state's cache length (= tokens - 1)
int64_t cache_len(const segrl_gen_state &s) { return (int64_t)s.tokens.size() - 1; }

struct NoGrad {
    bool prev;
    NoGrad() : prev(at::GradMode::is_enabled()) { at::GradMode::set_enabled(false); }
    ~NoGrad() { at::GradMode::set_enabled(prev); }
};

void check_stop(segrl_gen_state &st, int32_t tok, const segrl_sampling &s) {
    for (int32_t i = 0; i < s.num_stop_token_ids; i++)
        if (s.stop_token_ids[i] == tok) {
            st.finish = SEGRL_FINISH_STOP_TOKEN;
            return;
        }
    if (s.num_stop_strings > 0) {
        const char *b = nullptr;
        size_t n = 0;
        if (segrl_tokenizer_token_bytes(s.tokenizer, tok, &b, &n) != SEGRL_OK)
            gfail(SEGRL_ERR_INVALID, "sampling: the tokenizer has no token " +
                                         std::to_string(tok) + " (vocabulary mismatch?)");
        size_t before = st.text.size();
        st.text.append(b, n);
        for (int32_t i = 0; i < s.num_stop_strings; i++) {
            size_t L = std::strlen(s.stop_strings[i]);
            // only matches that end inside the new bytes are new
            size_t from = before >= L ? before - L + 1 : 0;
            if (st.text.find(s.stop_strings[i], from) != std::string::npos) {
                st.finish = SEGRL_FINISH_STOP_STRING;
                return;
            }
        }
    }
    if ((int64_t)st.tokens.size() >= st.model->cfg.max_position_embeddings)
        st.finish = SEGRL_FINISH_CONTEXT;
}

void extend(segrl_model &m, const std::vector<segrl_gen_state *> &all, const segrl_sampling &s) {
    NoGrad ng;
    std::vector<segrl_gen_state *> rows;
    for (segrl_gen_state *st : all)
        if (st->finish == SEGRL_FINISH_NONE) rows.push_back(st);
    if (rows.empty() || s.max_new_tokens == 0) return;
    // stop strings scan the generated text: fill it for states that have none yet
    if (s.num_stop_strings > 0)
        for (segrl_gen_state *st : rows)
            if (!st->text_ok || st->text.size() == 0) {
                st->text.clear();
                for (int64_t i = st->prompt_len; i < (int64_t)st->tokens.size(); i++) {
                    const char *b;
                    size_t n;
                    if (segrl_tokenizer_token_bytes(s.tokenizer, st->tokens[i], &b, &n) != SEGRL_OK)
                        gfail(SEGRL_ERR_INVALID, "sampling: the tokenizer has no token " +
                                                     std::to_string(st->tokens[i]));
                    st->text.append(b, n);
                }
                st->text_ok = 1;
            }
    const segrl_model_config &c = m.cfg;
    int64_t n = (int64_t)rows.size(), C = 0, minlen = INT64_MAX;
    for (segrl_gen_state *st : rows) {
        C = std::max(C, cache_len(*st));
        minlen = std::min(minlen, (int64_t)st->tokens.size());
    }
    // no row can take more steps than the shortest one before the context limit finishes it
    int64_t L = std::min<int64_t>(s.max_new_tokens, c.max_position_embeddings - minlen);
    if (L < 1) L = 1;  // (open rows are below the limit)
    int64_t KV = c.num_key_value_heads, D = c.head_dim, cap = C + L;
    at::TensorOptions o = at::TensorOptions().dtype(m.dtype).device(m.device);
    KVCache cache;
    cache.len = C;
    for (size_t l = 0; l < m.layers.size(); l++) {
        at::Tensor K = at::zeros({n, KV, cap, D}, o), Vv = at::zeros({n, KV, cap, D}, o);
        for (int64_t b = 0; b < n; b++) {
            int64_t cl = cache_len(*rows[b]);
            if (cl == 0) continue;
            K[b].narrow(1, C - cl, cl).copy_(rows[b]->k[l]);
            Vv[b].narrow(1, C - cl, cl).copy_(rows[b]->v[l]);
        }
        cache.k.push_back(K);
        cache.v.push_back(Vv);
    }
    // key validity: row b's cache sits at columns [C - cl_b, C); every new column is valid
    std::vector<int64_t> first(n), pos0(n), tok0(n);
    for (int64_t b = 0; b < n; b++) {
        first[b] = C - cache_len(*rows[b]);
        pos0[b] = cache_len(*rows[b]);
        tok0[b] = rows[b]->tokens.back();
    }
    at::Tensor firstT = at::tensor(first, at::kLong).to(m.device).unsqueeze(1);
    at::Tensor cols = at::arange(cap, at::TensorOptions().dtype(at::kLong).device(m.device));
    at::Tensor bias_all = at::where(cols.unsqueeze(0) >= firstT, 0.0f, -1e30f)
                              .to(at::kFloat)
                              .view({n, 1, 1, cap});
    Fused fused = fuse(m);
    at::Tensor pos = at::tensor(pos0, at::kLong).to(m.device).unsqueeze(1);  // (n, 1)
    at::Tensor cur = at::tensor(tok0, at::kLong).to(m.device).unsqueeze(1);  // (n, 1)
    std::vector<int64_t> steps(n, 0);
    // batch position -> row; rows that finish keep a view of their part of the buffers
    // (columns [first, C + steps): later steps write other columns), and once half the batch has
    // finished, the open rows are gathered into smaller buffers
    std::vector<int64_t> map(n);
    for (int64_t b = 0; b < n; b++) map[b] = b;
    auto keep_views = [&](int64_t i, int64_t b) {
        segrl_gen_state &st = *rows[b];
        int64_t len = C - first[b] + steps[b];
        for (size_t l = 0; l < m.layers.size(); l++) {
            st.k[l] = cache.k[l][i].narrow(1, first[b], len);
            st.v[l] = cache.v[l][i].narrow(1, first[b], len);
        }
    };
    std::vector<double> uh;
    int64_t open = n;
    for (int64_t t = 0; t < L && open > 0; t++) {
        int64_t nb = (int64_t)map.size();
        at::Tensor bias = bias_all.narrow(3, 0, C + t + 1);
        at::Tensor h = trunk(m, cur, pos, bias, &cache, &fused);  // (nb, 1, d)
        at::Tensor logits = logits_of(m, h).squeeze(1);             // (nb, V)
        uh.resize(nb);
        for (int64_t i = 0; i < nb; i++) {
            const segrl_gen_state &st = *rows[map[i]];
            uh[i] = st.finish == SEGRL_FINISH_NONE ? uniform(st.seed, st.counter) : 0.5;
        }
        at::Tensor u = at::tensor(uh, at::kDouble).to(m.device);
        at::Tensor tok, lp;
        sample(logits, s, u, &tok, &lp);
        at::Tensor tok_h = tok.to(at::kCPU).contiguous(), lp_h = lp.to(at::kCPU).contiguous();
        const int64_t *tp = tok_h.data_ptr<int64_t>();
        const float *lpp = lp_h.data_ptr<float>();
        for (int64_t i = 0; i < nb; i++) {
            int64_t b = map[i];
            segrl_gen_state &st = *rows[b];
            if (st.finish != SEGRL_FINISH_NONE) continue;
            st.tokens.push_back((int32_t)tp[i]);
            st.logprobs.push_back(lpp[i]);
            st.counter++;
            steps[b]++;
            check_stop(st, (int32_t)tp[i], s);
            if (st.finish != SEGRL_FINISH_NONE) {
                open--;
                // its cache: the columns fed so far, [first, C + t + 1) with steps[b] == t + 1
                // (its last token stays pending, never fed)
                keep_views(i, b);
            }
        }
        cur = tok.unsqueeze(1);
        pos = pos + 1;
        if (open > 0 && open * 2 <= nb && t + 1 < L) {
            std::vector<int64_t> keep, map2;
            for (int64_t i = 0; i < nb; i++)
                if (rows[map[i]]->finish == SEGRL_FINISH_NONE) keep.push_back(i), map2.push_back(map[i]);
            at::Tensor kt = at::tensor(keep, at::kLong).to(m.device);
            for (size_t l = 0; l < m.layers.size(); l++) {
                cache.k[l] = cache.k[l].index_select(0, kt);
                cache.v[l] = cache.v[l].index_select(0, kt);
            }
            cur = cur.index_select(0, kt);
            pos = pos.index_select(0, kt);
            bias_all = bias_all.index_select(0, kt);
            map.swap(map2);
        }
    }
    for (int64_t i = 0; i < (int64_t)map.size(); i++)
        if (rows[map[i]]->finish == SEGRL_FINISH_NONE) keep_views(i, map[i]);
}

}  // namespace

// ----------------------------------------------------------------------------
// the C API

extern "C" segrl_sampling segrl_sampling_default(void) {
    segrl_sampling s;
    std::memset(&s, 0, sizeof s);
    s.temperature = 1.0f;
    s.top_p = 1.0f;
    s.top_k = 0;
    s.max_new_tokens = 64;
    return s;
}

extern "C" segrl_status segrl_gen_create(segrl_model *model, int64_t n, const int32_t *tokens,
                                         const int64_t *offsets, const uint64_t *seeds,
                                         segrl_gen_state **out_states) {
    SEGRL_TORCH_TRY("segrl_gen_create") {
        if (!model) gfail(SEGRL_ERR_INVALID, "model: is NULL");
        if (n < 1) gfail(SEGRL_ERR_INVALID, "n: must be >= 1");
        if (!offsets) gfail(SEGRL_ERR_INVALID, "offsets: is NULL");
        if (!out_states) gfail(SEGRL_ERR_INVALID, "out_states: is NULL");
        const segrl_model_config &c = model->cfg;
        if (offsets[0] != 0) gfail(SEGRL_ERR_INVALID, "offsets: offsets[0] must be 0");
        int64_t C = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t len = offsets[i + 1] - offsets[i];
            if (len < 1)
                gfail(SEGRL_ERR_INVALID,
                      "offsets: prompt " + std::to_string(i) + " is empty or offsets decrease");
            if (len > c.max_position_embeddings)
                gfail(SEGRL_ERR_INVALID, "offsets: prompt " + std::to_string(i) +
                                             " is longer than max_position_embeddings");
            C = std::max(C, len - 1);
        }
        if (!tokens) gfail(SEGRL_ERR_INVALID, "tokens: is NULL");
        for (int64_t i = 0; i < offsets[n]; i++)
            if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
                gfail(SEGRL_ERR_INVALID, "tokens: tokens[" + std::to_string(i) + "] = " +
                                             std::to_string(tokens[i]) + " outside [0, " +
                                             std::to_string(c.vocab_size) + ")");
        NoGrad ng;
        std::vector<std::unique_ptr<segrl_gen_state>> out(n);
        for (int64_t i = 0; i < n; i++) {
            out[i].reset(new segrl_gen_state);
            segrl_gen_state &st = *out[i];
            st.model = model;
            st.tokens.assign(tokens + offsets[i], tokens + offsets[i + 1]);
            st.prompt_len = (int64_t)st.tokens.size();
            st.seed = seeds ? seeds[i] : (uint64_t)i;
            st.k.resize(model->layers.size());
            st.v.resize(model->layers.size());
        }
        at::TensorOptions o = at::TensorOptions().dtype(model->dtype).device(model->device);
        int64_t KV = c.num_key_value_heads, D = c.head_dim;
        if (C == 0) {
            for (int64_t i = 0; i < n; i++)
                for (size_t l = 0; l < model->layers.size(); l++) {
                    out[i]->k[l] = at::zeros({KV, 0, D}, o);
                    out[i]->v[l] = at::zeros({KV, 0, D}, o);
                }
        } else {
            // prefill all but the last token of every prompt, left-padded to C columns
            std::vector<int64_t> tok(n * C, 0);
            std::vector<uint8_t> valid(n * C, 0);
            for (int64_t i = 0; i < n; i++) {
                int64_t cl = offsets[i + 1] - offsets[i] - 1;
                for (int64_t j = 0; j < cl; j++) {
                    tok[i * C + C - cl + j] = tokens[offsets[i] + j];
                    valid[i * C + C - cl + j] = 1;
                }
            }
            at::Tensor tt = at::tensor(tok, at::kLong).view({n, C}).to(model->device);
            at::Tensor vv = at::tensor(valid, at::kByte).view({n, C}).to(model->device).ne(0);
            at::Tensor pos = (vv.to(at::kLong).cumsum(1) - 1).clamp_min(0);
            at::Tensor causal = at::ones({C, C}, vv.options()).tril();
            at::Tensor allowed = causal.unsqueeze(0).logical_and(vv.unsqueeze(1));
            at::Tensor bias = at::where(allowed, 0.0f, -1e30f).to(at::kFloat).unsqueeze(1);
            KVCache cache;
            for (size_t l = 0; l < model->layers.size(); l++) {
                cache.k.push_back(at::zeros({n, KV, C, D}, o));
                cache.v.push_back(at::zeros({n, KV, C, D}, o));
            }
            Fused fused = fuse(*model);
            trunk(*model, tt, pos, bias, &cache, &fused);
            for (int64_t i = 0; i < n; i++) {
                int64_t cl = offsets[i + 1] - offsets[i] - 1;
                for (size_t l = 0; l < model->layers.size(); l++) {
                    out[i]->k[l] = cache.k[l][i].narrow(1, C - cl, cl);
                    out[i]->v[l] = cache.v[l][i].narrow(1, C - cl, cl);
                }
            }
        }
        for (int64_t i = 0; i < n; i++) {
            if ((int64_t)out[i]->tokens.size() >= c.max_position_embeddings)
                out[i]->finish = SEGRL_FINISH_CONTEXT;
            out_states[i] = out[i].release();
        }
        return SEGRL_OK;
    }
    GEN_CATCH
}

extern "C" segrl_status segrl_gen_extend(segrl_model *model, segrl_gen_state *const *states,
                                         int64_t n, const segrl_sampling *sampling) {
    SEGRL_TORCH_TRY("segrl_gen_extend") {
        if (!model) gfail(SEGRL_ERR_INVALID, "model: is NULL");
        if (n < 0) gfail(SEGRL_ERR_INVALID, "n: negative");
        if (n > 0 && !states) gfail(SEGRL_ERR_INVALID, "states: is NULL");
        check_sampling(sampling, *model);
        std::vector<segrl_gen_state *> v(states, states + n);
        for (int64_t i = 0; i < n; i++) {
            if (!v[i]) gfail(SEGRL_ERR_INVALID, "states: states[" + std::to_string(i) + "] is NULL");
            if (v[i]->model != model)
                gfail(SEGRL_ERR_INVALID,
                      "states: states[" + std::to_string(i) + "] belongs to another model");
        }
        std::vector<segrl_gen_state *> sorted(v);
        std::sort(sorted.begin(), sorted.end());
        if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
            gfail(SEGRL_ERR_INVALID, "states: a state appears twice");
        // on failure mid-way nothing is half-written: work on copies, then swap in
        std::vector<segrl_gen_state> copies;
        copies.reserve(n);
        std::vector<segrl_gen_state *> work;
        for (segrl_gen_state *st : v) {
            copies.push_back(*st);
            work.push_back(&copies.back());
        }
        extend(*model, work, *sampling);
        for (int64_t i = 0; i < n; i++) *v[i] = std::move(copies[i]);
        return SEGRL_OK;
    }
    GEN_CATCH
}

extern "C" segrl_status segrl_gen_fork(const segrl_gen_state *state, int64_t k,
                                       const uint64_t *seeds, segrl_gen_state **out_children) {
    SEGRL_TORCH_TRY("segrl_gen_fork") {
        if (!state) gfail(SEGRL_ERR_INVALID, "state: is NULL");
        if (k < 1) gfail(SEGRL_ERR_INVALID, "k: must be >= 1");
        if (!out_children) gfail(SEGRL_ERR_INVALID, "out_children: is NULL");
        std::vector<std::unique_ptr<segrl_gen_state>> ch(k);
        for (int64_t i = 0; i < k; i++) {
            ch[i].reset(new segrl_gen_state(*state));  // shares the cache tensors
            ch[i]->seed = seeds ? seeds[i] : splitmix64(state->seed ^ splitmix64((uint64_t)i + 1));
            ch[i]->counter = 0;
        }
        for (int64_t i = 0; i < k; i++) out_children[i] = ch[i].release();
        return SEGRL_OK;
    }
    GEN_CATCH
}

extern "C" segrl_status segrl_gen_set_seed(segrl_gen_state *state, uint64_t seed) {
    if (!state) return segrl_set_error(SEGRL_ERR_INVALID, "segrl_gen_set_seed: state: is NULL");
    state->seed = seed;
    state->counter = 0;
    return SEGRL_OK;
}

extern "C" segrl_status segrl_gen_length(const segrl_gen_state *state, int64_t *out_prompt_len,
                                         int64_t *out_total_len) {
    if (!state) return segrl_set_error(SEGRL_ERR_INVALID, "segrl_gen_length: state: is NULL");
    if (out_prompt_len) *out_prompt_len = state->prompt_len;
    if (out_total_len) *out_total_len = (int64_t)state->tokens.size();
    return SEGRL_OK;
}

extern "C" segrl_status segrl_gen_tokens(const segrl_gen_state *state, int64_t capacity,
                                         int32_t *out_tokens, int64_t *out_count) {
    if (!state) return segrl_set_error(SEGRL_ERR_INVALID, "segrl_gen_tokens: state: is NULL");
    if (!out_count) return segrl_set_error(SEGRL_ERR_INVALID, "segrl_gen_tokens: out_count: is NULL");
    if (capacity < 0 || (capacity > 0 && !out_tokens))
        return segrl_set_error(SEGRL_ERR_INVALID,
                               "segrl_gen_tokens: out_tokens: NULL or capacity negative");
    int64_t n = (int64_t)state->tokens.size();
    if (capacity > 0) std::memcpy(out_tokens, state->tokens.data(), sizeof(int32_t) * std::min(n, capacity));
    *out_count = n;
    return SEGRL_OK;
}

extern "C" segrl_status segrl_gen_logprobs(const segrl_gen_state *state, int64_t capacity,
                                           float *out_logprobs, int64_t *out_count) {
    if (!state) return segrl_set_error(SEGRL_ERR_INVALID, "segrl_gen_logprobs: state: is NULL");
    if (!out_count)
        return segrl_set_error(SEGRL_ERR_INVALID, "segrl_gen_logprobs: out_count: is NULL");
    if (capacity < 0 || (capacity > 0 && !out_logprobs))
        return segrl_set_error(SEGRL_ERR_INVALID,
                               "segrl_gen_logprobs: out_logprobs: NULL or capacity negative");
    int64_t n = (int64_t)state->logprobs.size();
    if (capacity > 0)
        std::memcpy(out_logprobs, state->logprobs.data(), sizeof(float) * std::min(n, capacity));
    *out_count = n;
    return SEGRL_OK;
}

extern "C" segrl_status segrl_gen_finish_reason(const segrl_gen_state *state, segrl_finish *out) {
    if (!state || !out)
        return segrl_set_error(SEGRL_ERR_INVALID, "segrl_gen_finish_reason: %s: is NULL",
                               state ? "out" : "state");
    *out = (segrl_finish)state->finish;
    return SEGRL_OK;
}

extern "C" void segrl_gen_free(segrl_gen_state *state) { delete state; }

extern "C" segrl_status segrl_generate(segrl_model *model, int64_t n, const int32_t *tokens,
                                       const int64_t *offsets, int64_t num_samples,
                                       const segrl_sampling *sampling, uint64_t seed,
                                       int32_t *out_tokens, float *out_logprobs,
                                       int32_t *out_lengths, int32_t *out_finish) {
    SEGRL_TORCH_TRY("segrl_generate") {
        if (!model) gfail(SEGRL_ERR_INVALID, "model: is NULL");
        if (num_samples < 1) gfail(SEGRL_ERR_INVALID, "num_samples: must be >= 1");
        check_sampling(sampling, *model);
        if (!out_tokens) gfail(SEGRL_ERR_INVALID, "out_tokens: is NULL");
        if (!out_lengths) gfail(SEGRL_ERR_INVALID, "out_lengths: is NULL");
        struct Owned {
            std::vector<segrl_gen_state *> v;
            ~Owned() {
                for (segrl_gen_state *s : v) delete s;
            }
        } parents, kids;
        if (n < 1) gfail(SEGRL_ERR_INVALID, "n: must be >= 1");
        parents.v.assign(n, nullptr);
        segrl_status st = segrl_gen_create(model, n, tokens, offsets, nullptr, parents.v.data());
        if (st != SEGRL_OK) {
            parents.v.clear();
            std::string m = segrl_last_error();
            gfail(st, m);
        }
        kids.v.assign(n * num_samples, nullptr);
        std::vector<uint64_t> seeds(num_samples);
        for (int64_t i = 0; i < n; i++) {
            for (int64_t j = 0; j < num_samples; j++) seeds[j] = seed + (uint64_t)(i * num_samples + j);
            segrl_gen_fork(parents.v[i], num_samples, seeds.data(), kids.v.data() + i * num_samples);
        }
        st = segrl_gen_extend(model, kids.v.data(), n * num_samples, sampling);
        if (st != SEGRL_OK) {
            std::string m = segrl_last_error();
            gfail(st, m);
        }
        int64_t L = sampling->max_new_tokens;
        for (int64_t r = 0; r < n * num_samples; r++) {
            const segrl_gen_state &s = *kids.v[r];
            int64_t g = (int64_t)s.logprobs.size();
            for (int64_t t = 0; t < L; t++) {
                out_tokens[r * L + t] = t < g ? s.tokens[s.prompt_len + t] : -1;
                if (out_logprobs) out_logprobs[r * L + t] = t < g ? s.logprobs[t] : 0.0f;
            }
            out_lengths[r] = (int32_t)g;
            if (out_finish) out_finish[r] = s.finish;
        }
        return SEGRL_OK;
    }
    GEN_CATCH
}
