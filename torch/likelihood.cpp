// torch/likelihood.cpp — likelihood rewards (include/segrl/likelihood.h): the policy's own
// log-probability of a reference answer appended after the response, teacher-forced through
// segrl_model_forward in right-padded batches (arXiv 2602.03979 compares the variants; VeriFree,
// arXiv 2505.21493, uses the probability), the per-turn means IGPO needs (arXiv 2510.14967), and
// the segrl_reward that wraps them so the batch scorer and the trainers' configs can use them.
#include "internal.hpp"

#include "segrl/likelihood.h"
#include "segrl/selfreward.h"

#include <cjson/cJSON.h>

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct LikError {
    segrl_status status;
    std::string msg;
};

[[noreturn]] void lfail(segrl_status st, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    throw LikError{st, buf};
}

// One teacher-forced row: context then target; out receives the target's log-probs.
struct Row {
    const int32_t *ctx;
    int64_t nctx;
    const int32_t *tgt;
    int64_t ntgt;
    float *out;
};

// Runs the rows `bs` at a time: one HIDDEN pass over the padded chunk, then lm_head on the
// positions that predict target tokens only (position p predicts token p + 1).
void run_rows(segrl_model *m, const std::vector<Row> &rows, int32_t bs) {
    at::NoGradGuard no_grad;
    const int64_t maxpos = m->cfg.max_position_embeddings > 0 ? m->cfg.max_position_embeddings
                                                               : INT64_MAX;
    const int64_t V = m->cfg.vocab_size;
    if (bs <= 0) bs = 8;
    for (size_t c0 = 0; c0 < rows.size(); c0 += (size_t)bs) {
        size_t c1 = std::min(rows.size(), c0 + (size_t)bs);
        int64_t nb = (int64_t)(c1 - c0), T = 1, P = 0;
        std::vector<int64_t> keep(nb);
        for (int64_t r = 0; r < nb; r++) {
            const Row &w = rows[c0 + r];
            if (w.nctx < 1) lfail(SEGRL_ERR_INVALID, "row %lld: empty context", (long long)(c0 + r));
            if (w.ntgt + 1 > maxpos)
                lfail(SEGRL_ERR_INVALID, "row %lld: %lld target tokens do not fit %lld positions",
                      (long long)(c0 + r), (long long)w.ntgt, (long long)maxpos);
            keep[r] = std::min(w.nctx, maxpos - w.ntgt);  // context cut from the left
            T = std::max(T, keep[r] + w.ntgt);
            P += w.ntgt;
        }
        if (P == 0) continue;
        at::Tensor tok = at::zeros({nb, T}, at::kLong), mask = at::zeros({nb, T}, at::kByte);
        at::Tensor ri = at::empty({P}, at::kLong), pi = at::empty({P}, at::kLong),
                   ti = at::empty({P}, at::kLong);
        int64_t *tp = tok.data_ptr<int64_t>(), *rp = ri.data_ptr<int64_t>(),
                *pp = pi.data_ptr<int64_t>(), *xp = ti.data_ptr<int64_t>();
        uint8_t *mp = mask.data_ptr<uint8_t>();
        int64_t q = 0;
        for (int64_t r = 0; r < nb; r++) {
            const Row &w = rows[c0 + r];
            const int32_t *cx = w.ctx + (w.nctx - keep[r]);
            for (int64_t t = 0; t < keep[r]; t++) tp[r * T + t] = cx[t], mp[r * T + t] = 1;
            for (int64_t j = 0; j < w.ntgt; j++) {
                int64_t id = w.tgt[j];
                if (id < 0 || id >= V)
                    lfail(SEGRL_ERR_INVALID, "row %lld: target id %lld outside [0, %lld)",
                          (long long)(c0 + r), (long long)id, (long long)V);
                tp[r * T + keep[r] + j] = id, mp[r * T + keep[r] + j] = 1;
                rp[q] = r, pp[q] = keep[r] + j - 1, xp[q] = id;
                q++;
            }
        }
        segrl_tensor th{tok}, mh{mask};
        segrl_tensor *hid = nullptr, *lg = nullptr;
        segrl_status st = segrl_model_forward(m, &th, &mh, SEGRL_OUTPUT_HIDDEN, &hid);
        if (st) lfail(st, "%s", segrl_last_error());
        at::Tensor h = hid->t;
        segrl_tensor_free(hid);
        at::Tensor dev_r = ri.to(h.device()), dev_p = pi.to(h.device());
        segrl_tensor sel{h.index({dev_r, dev_p}).unsqueeze(0)};  // (1, P, hidden)
        st = segrl_model_head(m, &sel, nullptr, SEGRL_OUTPUT_LOGITS, &lg);
        if (st) lfail(st, "%s", segrl_last_error());
        at::Tensor logits = lg->t.squeeze(0).to(at::kFloat);  // (P, V)
        segrl_tensor_free(lg);
        at::Tensor lp = at::log_softmax(logits, -1)
                            .gather(1, ti.to(logits.device()).unsqueeze(1))
                            .squeeze(1)
                            .to(at::kCPU)
                            .contiguous();
        const float *lpp = lp.data_ptr<float>();
        q = 0;
        for (int64_t r = 0; r < nb; r++) {
            const Row &w = rows[c0 + r];
            for (int64_t j = 0; j < w.ntgt; j++) w.out[j] = lpp[q++];
        }
    }
}

void check_offsets(const char *name, const int64_t *off, int64_t n) {
    if (!off) lfail(SEGRL_ERR_INVALID, "%s: NULL", name);
    if (off[0] != 0) lfail(SEGRL_ERR_INVALID, "%s: [0] must be 0", name);
    for (int64_t i = 0; i < n; i++)
        if (off[i + 1] < off[i])
            lfail(SEGRL_ERR_INVALID, "%s: decreasing at [%lld]", name, (long long)(i + 1));
}

double reduce(const float *lp, int64_t m, int32_t kind) {
    double s = 0;
    switch (kind) {
    case SEGRL_LIKELIHOOD_LOGPROB:
        for (int64_t j = 0; j < m; j++) s += lp[j];
        return s;
    case SEGRL_LIKELIHOOD_MEAN_LOGPROB:
        for (int64_t j = 0; j < m; j++) s += lp[j];
        return m ? s / (double)m : 0.0;
    case SEGRL_LIKELIHOOD_PROB:
        for (int64_t j = 0; j < m; j++) s += lp[j];
        return std::exp(s);
    default:  // MEAN_PROB
        for (int64_t j = 0; j < m; j++) s += std::exp((double)lp[j]);
        return m ? s / (double)m : 0.0;
    }
}

}  // namespace

#define LIK_CATCH                                                                        \
    catch (const LikError &e) {                                                          \
        return segrl_set_error(e.status, "%s: %s", segrl_torch_fn_, e.msg.c_str());      \
    }                                                                                    \
    SEGRL_TORCH_CATCH

extern "C" const char *segrl_likelihood_kind_name(int32_t kind) {
    switch (kind) {
    case SEGRL_LIKELIHOOD_LOGPROB: return "log_prob";
    case SEGRL_LIKELIHOOD_MEAN_LOGPROB: return "mean_log_prob";
    case SEGRL_LIKELIHOOD_PROB: return "prob";
    case SEGRL_LIKELIHOOD_MEAN_PROB: return "mean_prob";
    default: return "unknown";
    }
}

extern "C" segrl_status segrl_likelihood_logprobs(segrl_model *model, int64_t n,
                                                  const int32_t *context_tokens,
                                                  const int64_t *context_offsets,
                                                  const int32_t *target_tokens,
                                                  const int64_t *target_offsets,
                                                  int32_t batch_size, float *out_logprobs) {
    SEGRL_TORCH_TRY("segrl_likelihood_logprobs") {
        if (!model) lfail(SEGRL_ERR_INVALID, "model: NULL");
        if (n < 0) lfail(SEGRL_ERR_INVALID, "n: negative");
        check_offsets("context_offsets", context_offsets, n);
        check_offsets("target_offsets", target_offsets, n);
        if (context_offsets[n] > 0 && !context_tokens) lfail(SEGRL_ERR_INVALID, "context_tokens: NULL");
        int64_t M = target_offsets[n];
        if (M > 0 && (!target_tokens || !out_logprobs))
            lfail(SEGRL_ERR_INVALID, "%s: NULL", target_tokens ? "out_logprobs" : "target_tokens");
        std::vector<float> tmp((size_t)M);  // outputs written only on success
        std::vector<Row> rows;
        rows.reserve((size_t)n);
        for (int64_t i = 0; i < n; i++) {
            int64_t nc = context_offsets[i + 1] - context_offsets[i];
            if (nc < 1) lfail(SEGRL_ERR_INVALID, "context_offsets: context %lld is empty", (long long)i);
            rows.push_back(Row{context_tokens + context_offsets[i], nc,
                               target_tokens + target_offsets[i],
                               target_offsets[i + 1] - target_offsets[i], tmp.data() + target_offsets[i]});
        }
        run_rows(model, rows, batch_size);
        if (M) std::memcpy(out_logprobs, tmp.data(), (size_t)M * sizeof(float));
        return SEGRL_OK;
    }
    LIK_CATCH
}

extern "C" segrl_status segrl_likelihood_reduce(const float *logprobs, int64_t m, int32_t kind,
                                                double *out) {
    if (m < 0) return segrl_set_error(SEGRL_ERR_INVALID, "segrl_likelihood_reduce: m: negative");
    if (m > 0 && !logprobs)
        return segrl_set_error(SEGRL_ERR_INVALID, "segrl_likelihood_reduce: logprobs: NULL");
    if (!out) return segrl_set_error(SEGRL_ERR_INVALID, "segrl_likelihood_reduce: out: NULL");
    if (kind < SEGRL_LIKELIHOOD_LOGPROB || kind > SEGRL_LIKELIHOOD_MEAN_PROB)
        return segrl_set_error(SEGRL_ERR_INVALID, "segrl_likelihood_reduce: kind: %d unknown",
                               (int)kind);
    *out = reduce(logprobs, m, kind);
    return SEGRL_OK;
}

extern "C" segrl_status segrl_likelihood_turn_means(
    segrl_model *model, int64_t B, const int32_t *tokens, const int64_t *token_offsets,
    const int64_t *prompt_lens, const int64_t *seg_offsets, const int64_t *turn_ends,
    const int32_t *answer_tokens, const int64_t *answer_offsets, int32_t batch_size,
    float *out_prior, float *out_turn_mean) {
    SEGRL_TORCH_TRY("segrl_likelihood_turn_means") {
        if (!model) lfail(SEGRL_ERR_INVALID, "model: NULL");
        if (B < 0) lfail(SEGRL_ERR_INVALID, "B: negative");
        check_offsets("token_offsets", token_offsets, B);
        check_offsets("seg_offsets", seg_offsets, B);
        check_offsets("answer_offsets", answer_offsets, B);
        int64_t S = seg_offsets[B];
        if (B > 0 && (!tokens || !prompt_lens || !answer_tokens || !out_prior))
            lfail(SEGRL_ERR_INVALID, "tokens, prompt_lens, answer_tokens and out_prior are required");
        if (S > 0 && (!turn_ends || !out_turn_mean))
            lfail(SEGRL_ERR_INVALID, "%s: NULL", turn_ends ? "out_turn_mean" : "turn_ends");
        std::vector<Row> rows;
        std::vector<int64_t> rows_m;
        int64_t total = 0;
        for (int64_t b = 0; b < B; b++) total += (answer_offsets[b + 1] - answer_offsets[b]) *
                                                 (1 + seg_offsets[b + 1] - seg_offsets[b]);
        std::vector<float> lp((size_t)total);
        std::vector<float *> starts;
        int64_t q = 0;
        for (int64_t b = 0; b < B; b++) {
            const int32_t *tk = tokens + token_offsets[b];
            int64_t len = token_offsets[b + 1] - token_offsets[b];
            int64_t m = answer_offsets[b + 1] - answer_offsets[b];
            if (m < 1) lfail(SEGRL_ERR_INVALID, "answer_offsets: answer %lld is empty", (long long)b);
            if (prompt_lens[b] < 1 || prompt_lens[b] > len)
                lfail(SEGRL_ERR_INVALID, "prompt_lens: [%lld] = %lld outside [1, %lld]", (long long)b,
                      (long long)prompt_lens[b], (long long)len);
            const int32_t *a = answer_tokens + answer_offsets[b];
            rows.push_back(Row{tk, prompt_lens[b], a, m, lp.data() + q});
            q += m;
            int64_t prev = prompt_lens[b];
            for (int64_t k = seg_offsets[b]; k < seg_offsets[b + 1]; k++) {
                if (turn_ends[k] <= prev || turn_ends[k] > len)
                    lfail(SEGRL_ERR_INVALID,
                          "turn_ends: [%lld] = %lld must be in (%lld, %lld] (increasing, after the prompt)",
                          (long long)k, (long long)turn_ends[k], (long long)prev, (long long)len);
                prev = turn_ends[k];
                rows.push_back(Row{tk, turn_ends[k], a, m, lp.data() + q});
                q += m;
            }
        }
        run_rows(model, rows, batch_size);
        size_t r = 0;
        for (int64_t b = 0; b < B; b++) {
            out_prior[b] = (float)reduce(rows[r].out, rows[r].ntgt, SEGRL_LIKELIHOOD_MEAN_LOGPROB);
            r++;
            for (int64_t k = seg_offsets[b]; k < seg_offsets[b + 1]; k++, r++)
                out_turn_mean[k] = (float)reduce(rows[r].out, rows[r].ntgt, SEGRL_LIKELIHOOD_MEAN_LOGPROB);
        }
        return SEGRL_OK;
    }
    LIK_CATCH
}

// ----------------------------------------------------------------------------
// the reward

extern "C" segrl_likelihood_opts segrl_likelihood_opts_default(void) {
    segrl_likelihood_opts o;
    o.kind = SEGRL_LIKELIHOOD_LOGPROB;
    o.batch_size = 8;
    o.separator = "\n";
    o.target = SEGRL_LIKELIHOOD_TARGET_ANSWER;
    return o;
}

namespace {

struct LikReward {
    segrl_model *model;
    const segrl_tokenizer *tok;
    int32_t kind, batch_size, target;
    std::string sep;
};

std::vector<int32_t> encode(const segrl_tokenizer *tok, const std::string &s) {
    int32_t *ids = nullptr;
    int64_t n = 0;
    segrl_status st = segrl_tokenizer_encode(tok, s.data(), s.size(), 0, &ids, &n);
    if (st) lfail(st, "%s", segrl_last_error());
    std::vector<int32_t> v(ids, ids + n);
    segrl_free(ids);
    return v;
}

segrl_status lik_score(void *user, const segrl_reward_sample *smp, int64_t n,
                       const segrl_reward_run *run, float *out_scores,
                       segrl_reward_detail *out_details) {
    SEGRL_TORCH_TRY("likelihood") {
        LikReward *L = static_cast<LikReward *>(user);
        std::vector<std::vector<int32_t>> ctx((size_t)n), tgt((size_t)n);
        std::vector<int> state((size_t)n, 0);  // 0 scored, 1 empty target, 2 no context
        int32_t bos = L->model->cfg.bos_token_id;
        for (int64_t i = 0; i < n; i++) {
            const char *p = smp[i].prompt ? smp[i].prompt : "";
            const char *y = smp[i].response ? smp[i].response : "";
            const char *a = smp[i].answer ? smp[i].answer : "";
            std::string c = L->target == SEGRL_LIKELIHOOD_TARGET_ANSWER
                                ? std::string(p) + y + L->sep
                                : std::string(p);
            ctx[i] = encode(L->tok, c);
            tgt[i] = encode(L->tok, L->target == SEGRL_LIKELIHOOD_TARGET_ANSWER ? a : y);
            if (ctx[i].empty() && bos >= 0) ctx[i].push_back(bos);
            if (tgt[i].empty()) state[i] = 1;
            else if (ctx[i].empty()) {
                if (run->fail_on_error)
                    lfail(SEGRL_ERR_INVALID, "sample %lld: empty context and the model has no "
                          "bos_token_id", (long long)i);
                state[i] = 2;
            }
        }
        std::vector<std::vector<float>> lp((size_t)n);
        std::vector<Row> rows;
        for (int64_t i = 0; i < n; i++) {
            if (state[i]) continue;
            lp[i].resize(tgt[i].size());
            rows.push_back(Row{ctx[i].data(), (int64_t)ctx[i].size(), tgt[i].data(),
                               (int64_t)tgt[i].size(), lp[i].data()});
        }
        run_rows(L->model, rows, L->batch_size);
        for (int64_t i = 0; i < n; i++) {
            segrl_reward_detail d;
            std::memset(&d, 0, sizeof d);
            if (state[i] == 1) {
                out_scores[i] = run->failure_score;
                d.reason = L->target == SEGRL_LIKELIHOOD_TARGET_ANSWER ? SEGRL_REWARD_BAD_REFERENCE
                                                                       : SEGRL_REWARD_EMPTY_RESPONSE;
            } else if (state[i] == 2) {
                out_scores[i] = run->failure_score;
                d.reason = SEGRL_REWARD_ERROR;
                std::snprintf(d.message, sizeof d.message, "empty context, no bos_token_id");
            } else {
                out_scores[i] = (float)reduce(lp[i].data(), (int64_t)lp[i].size(), L->kind);
                d.reason = SEGRL_REWARD_OK;
                std::snprintf(d.message, sizeof d.message, "m=%lld", (long long)lp[i].size());
            }
            if (out_details) out_details[i] = d;
        }
        return SEGRL_OK;
    }
    LIK_CATCH
}

void lik_release(void *user) { delete static_cast<LikReward *>(user); }

}  // namespace

extern "C" segrl_status segrl_reward_likelihood(segrl_model *model, const segrl_tokenizer *tokenizer,
                                                const segrl_likelihood_opts *opts,
                                                segrl_reward **out) {
    SEGRL_TORCH_TRY("segrl_reward_likelihood") {
        if (!model) lfail(SEGRL_ERR_INVALID, "model: NULL");
        if (!tokenizer) lfail(SEGRL_ERR_INVALID, "tokenizer: NULL");
        if (!out) lfail(SEGRL_ERR_INVALID, "out: NULL");
        segrl_likelihood_opts o = opts ? *opts : segrl_likelihood_opts_default();
        if (o.kind < SEGRL_LIKELIHOOD_LOGPROB || o.kind > SEGRL_LIKELIHOOD_MEAN_PROB)
            lfail(SEGRL_ERR_INVALID, "opts->kind: %d unknown", (int)o.kind);
        if (o.target != SEGRL_LIKELIHOOD_TARGET_ANSWER && o.target != SEGRL_LIKELIHOOD_TARGET_RESPONSE)
            lfail(SEGRL_ERR_INVALID, "opts->target: %d unknown", (int)o.target);
        if (segrl_tokenizer_vocab_size(tokenizer) > model->cfg.vocab_size)
            lfail(SEGRL_ERR_INVALID, "tokenizer: %lld ids, the model has %d",
                  (long long)segrl_tokenizer_vocab_size(tokenizer), model->cfg.vocab_size);
        LikReward *L = new LikReward{model, tokenizer, o.kind, o.batch_size > 0 ? o.batch_size : 8,
                                     o.target, o.separator ? o.separator : ""};
        char name[64];
        std::snprintf(name, sizeof name, "likelihood:%s", segrl_likelihood_kind_name(o.kind));
        segrl_reward_impl impl;
        std::memset(&impl, 0, sizeof impl);
        impl.abi_version = SEGRL_REWARD_ABI_VERSION;
        impl.flags = 0;
        impl.name = name;
        impl.user = L;
        impl.score = lik_score;
        impl.release = lik_release;
        segrl_status st = segrl_reward_custom(&impl, out);
        if (st) delete L;
        return st;
    }
    LIK_CATCH
}

extern "C" segrl_status segrl_likelihood_reward_create(const char *name, const char *options_json,
                                                       segrl_model *model,
                                                       const segrl_tokenizer *tokenizer,
                                                       segrl_reward **out) {
    SEGRL_TORCH_TRY("segrl_likelihood_reward_create") {
        if (!name) lfail(SEGRL_ERR_INVALID, "name: NULL");
        segrl_likelihood_opts o = segrl_likelihood_opts_default();
        static const char *const kinds[] = {"log_prob", "mean_log_prob", "prob", "mean_prob"};
        int shorthand = -1;
        for (int k = 0; k < 4; k++)
            if (std::strcmp(name, kinds[k]) == 0) shorthand = k;
        if (shorthand < 0 && std::strcmp(name, "likelihood") != 0)
            return segrl_selfreward_create(name, options_json, out);
        if (shorthand >= 0) o.kind = shorthand;
        std::string sep;
        if (options_json && options_json[0]) {
            cJSON *j = cJSON_Parse(options_json);
            if (!j || !cJSON_IsObject(j)) {
                cJSON_Delete(j);
                lfail(SEGRL_ERR_INVALID, "%s: options are not a JSON object", name);
            }
            std::string err;
            const cJSON *it;
            cJSON_ArrayForEach(it, j) {
                const char *k = it->string;
                if (std::strcmp(k, "kind") == 0 && cJSON_IsString(it)) {
                    int f = -1;
                    for (int q = 0; q < 4; q++)
                        if (std::strcmp(it->valuestring, kinds[q]) == 0) f = q;
                    if (f < 0) err = "option \"kind\" must be log_prob, mean_log_prob, prob or mean_prob";
                    else o.kind = f;
                } else if (std::strcmp(k, "batch_size") == 0 && cJSON_IsNumber(it)) {
                    o.batch_size = (int32_t)it->valuedouble;
                } else if (std::strcmp(k, "separator") == 0 && cJSON_IsString(it)) {
                    sep = it->valuestring;
                    o.separator = nullptr;  // set below from sep
                } else if (std::strcmp(k, "target") == 0 && cJSON_IsString(it) &&
                           (std::strcmp(it->valuestring, "answer") == 0 ||
                            std::strcmp(it->valuestring, "response") == 0)) {
                    o.target = std::strcmp(it->valuestring, "answer") == 0
                                   ? SEGRL_LIKELIHOOD_TARGET_ANSWER
                                   : SEGRL_LIKELIHOOD_TARGET_RESPONSE;
                } else if (std::strcmp(k, "kind") == 0 || std::strcmp(k, "batch_size") == 0 ||
                           std::strcmp(k, "separator") == 0 || std::strcmp(k, "target") == 0) {
                    err = std::string("option \"") + k + "\" has the wrong type or value";
                } else {
                    err = std::string("unknown option \"") + k +
                          "\" (known: kind, batch_size, separator, target)";
                }
                if (!err.empty()) break;
            }
            bool had_sep = cJSON_GetObjectItemCaseSensitive(j, "separator") != nullptr;
            cJSON_Delete(j);
            if (!err.empty()) lfail(SEGRL_ERR_INVALID, "%s: %s", name, err.c_str());
            if (had_sep) o.separator = sep.c_str();
        }
        if (!model || !tokenizer)
            lfail(SEGRL_ERR_INVALID, "%s: needs a model and a tokenizer", name);
        return segrl_reward_likelihood(model, tokenizer, &o, out);
    }
    LIK_CATCH
}
