// test-torch-autograd.cpp — the autograd wrappers of include/segrl/train.h against libtorch's own
// autograd of the same formulas written with ATen ops (log_softmax, gather, clamp, ...), in f64.
// C++ because the reference needs ATen; the wrappers are called through their C API.
//
// For each case: the same leaves in f32 go through the wrapper (segrl forward + segrl backward)
// and, converted to f64, through the ATen formula (ATen autograd); the values and the gradients
// must agree. The max abs differences are printed.
#include "internal.hpp" /* struct segrl_tensor, to hand ATen tensors to the C API */
#include "segrl/loss.h"
#include "segrl/train.h"

#include <torch/csrc/autograd/autograd.h>

#undef CHECK /* glog's (Debian's c10 logs through glog); the harness has its own */
#include "harness.h"

#include <cmath>
#include <string>
#include <vector>

namespace {

segrl_tensor *H(const at::Tensor &t) { return new segrl_tensor{t}; }

at::Tensor take(segrl_tensor *h) {
    at::Tensor t = h->t;
    segrl_tensor_free(h);
    return t;
}

double max_abs(const at::Tensor &a, const at::Tensor &b) {
    if (!a.defined() || !b.defined()) return INFINITY;
    return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

/* |got - want| <= atol + rtol |want| everywhere; prints and returns the max abs difference */
double agree(const std::string &what, const at::Tensor &got, const at::Tensor &want, double atol,
             double rtol) {
    double d = max_abs(got, want);
    bool ok = got.defined() && want.defined() && got.sizes().equals(want.sizes());
    if (ok) {
        at::Tensor g = got.to(at::kDouble), w = want.to(at::kDouble);
        ok = ((g - w).abs() <= atol + rtol * w.abs()).all().item<bool>();
    }
    CHECK(ok, "%s: max abs diff %.3g", what.c_str(), d);
    CHECK(want.defined() && want.abs().max().item<double>() > 0, "%s: the reference is all zero", what.c_str());
    printf("  %-52s max abs diff %.3g\n", what.c_str(), d);
    return d;
}

at::Tensor leaf(const at::Tensor &t) { return t.detach().clone().set_requires_grad(true); }

at::Tensor randn(at::IntArrayRef s, double scale = 1.0) { return at::randn(s, at::kDouble) * scale; }

// ----------------------------------------------------------------------------
// fused log-probs

// reference: logp = log_softmax(z)[y], entropy = -sum softmax(z) log_softmax(z), z = logits / T;
// rows with a negative target get logp 0
void ref_logprobs(const at::Tensor &logits, const at::Tensor &targets, double T, at::Tensor *logp,
                  at::Tensor *ent) {
    at::Tensor z = logits / T;
    at::Tensor ls = at::log_softmax(z, -1);
    at::Tensor valid = targets.ge(0);
    at::Tensor y = targets.clamp_min(0).to(at::kLong).unsqueeze(-1);
    *logp = ls.gather(-1, y).squeeze(-1) * valid.to(ls.scalar_type());
    *ent = -(ls.exp() * ls).sum(-1);
}

void test_logprobs(at::ScalarType dtype, double T, bool use_entropy) {
    const int64_t B = 3, Tn = 5, V = 37;
    at::Tensor logits0 = randn({B, Tn, V}, 2.0);
    at::Tensor targets = at::randint(0, V, {B, Tn}, at::kLong);
    targets.index_put_({1, 2}, -1); /* a row without target */
    at::Tensor wl = randn({B, Tn}), we = randn({B, Tn});

    at::Tensor x = leaf(logits0.to(dtype));
    segrl_logprob_opts o = segrl_logprob_opts_default();
    o.temperature = (float)T;
    o.vocab_chunk = 8; /* several chunks of the online softmax */
    segrl_tensor *hx = H(x), *hy = H(targets), *lp = nullptr, *en = nullptr;
    segrl_status st = segrl_autograd_logprobs(hx, hy, &o, &lp, use_entropy ? &en : nullptr);
    CHECK(st == SEGRL_OK, "segrl_autograd_logprobs: %s", segrl_last_error());
    if (st != SEGRL_OK) return;
    at::Tensor logp = take(lp), ent = use_entropy ? take(en) : at::Tensor();
    at::Tensor loss = (logp * wl.to(at::kFloat)).sum();
    if (use_entropy) loss = loss + (ent * we.to(at::kFloat)).sum();
    loss.backward();

    at::Tensor r = leaf(x.detach().to(at::kDouble)), rlogp, rent;
    ref_logprobs(r, targets, T, &rlogp, &rent);
    at::Tensor rloss = (rlogp * wl).sum();
    if (use_entropy) rloss = rloss + (rent * we).sum();
    rloss.backward();

    std::string tag = std::string("logprobs ") + c10::toString(dtype) + " T=" + std::to_string(T).substr(0, 4) +
                      (use_entropy ? " logp+entropy" : " logp only");
    agree(tag + ": logp", logp, rlogp, 1e-5, 1e-5);
    if (use_entropy) agree(tag + ": entropy", ent, rent, 1e-5, 1e-5);
    double tol = dtype == at::kFloat ? 1e-6 : 1e-2; /* bf16 gradients are rounded to bf16 */
    agree(tag + ": d logits", x.grad(), r.grad(), tol, dtype == at::kFloat ? 1e-5 : 1e-2);
    CHECK(x.grad().scalar_type() == dtype, "gradient dtype follows logits");
    segrl_tensor_free(hx);
    segrl_tensor_free(hy);
}

void test_linear(bool want_weight_grad, at::ScalarType dtype = at::kFloat) {
    const int64_t D = 16, V = 50;
    /* the reference starts from the same (rounded) values as the wrapper */
    at::Tensor h0 = randn({3, 3, D}).to(dtype).to(at::kDouble), w0 = (randn({V, D}) * 0.3).to(dtype).to(at::kDouble);
    at::Tensor targets = at::randint(0, V, {3, 3}, at::kInt);
    at::Tensor wl = randn({3, 3}), we = randn({3, 3});
    at::Tensor h = leaf(h0.to(dtype)), w = w0.to(dtype).detach();
    if (want_weight_grad) w.set_requires_grad(true);
    segrl_logprob_opts o = segrl_logprob_opts_default();
    o.vocab_chunk = 16;
    o.token_chunk = 4;
    segrl_tensor *hh = H(h), *hw = H(w), *hy = H(targets), *lp = nullptr, *en = nullptr;
    segrl_status st = segrl_autograd_linear_logprobs(hh, hw, hy, &o, &lp, &en);
    CHECK(st == SEGRL_OK, "segrl_autograd_linear_logprobs: %s", segrl_last_error());
    if (st != SEGRL_OK) return;
    at::Tensor logp = take(lp), ent = take(en);
    ((logp * wl.to(at::kFloat)).sum() + (ent * we.to(at::kFloat)).sum()).backward();

    at::Tensor rh = leaf(h0), rw = leaf(w0), rlogp, rent;
    ref_logprobs(at::matmul(rh, rw.t()), targets, 1.0, &rlogp, &rent);
    ((rlogp * wl).sum() + (rent * we).sum()).backward();
    std::string tag = std::string(want_weight_grad ? "linear logprobs " : "linear logprobs hidden only ") +
                      c10::toString(dtype);
    const bool f32 = dtype == at::kFloat;
    agree(tag + ": logp", logp, rlogp, 1e-5, 1e-5);
    agree(tag + ": entropy", ent, rent, 1e-5, 1e-5);
    /* bf16: the gradients are returned in bf16 (8 significant bits) */
    agree(tag + ": d hidden", h.grad(), rh.grad(), f32 ? 1e-5 : 1e-3, f32 ? 1e-4 : 1e-2);
    CHECK(h.grad().scalar_type() == dtype, "d hidden in hidden's dtype");
    if (want_weight_grad) agree(tag + ": d weight", w.grad(), rw.grad(), f32 ? 1e-5 : 1e-3, f32 ? 1e-4 : 1e-2);
    else CHECK(!w.grad().defined(), "no weight gradient when weight does not require grad");
    segrl_tensor_free(hh);
    segrl_tensor_free(hw);
    segrl_tensor_free(hy);
}

// ----------------------------------------------------------------------------
// policy loss

struct Case {
    const char *name;
    segrl_policy_loss_opts o;
    bool packed;
    bool prob_mask;
};

// sum over valid tokens of w * x, per the aggregation; m: 0/1 mask (B, T) f64
at::Tensor agg(const at::Tensor &x, const at::Tensor &m, const segrl_policy_loss_opts &o, int64_t T) {
    at::Tensor nb = m.sum(1);                 /* valid tokens per sequence */
    at::Tensor S = nb.gt(0).sum().to(at::kDouble);
    at::Tensor NT = m.sum();
    at::Tensor xm = x * m;
    switch (o.agg) {
    case SEGRL_AGG_TOKEN_MEAN: return xm.sum() / NT;
    case SEGRL_AGG_SEQ_MEAN_TOKEN_MEAN: return (xm.sum(1) / nb.clamp_min(1)).sum() / S;
    case SEGRL_AGG_SEQ_MEAN_TOKEN_SUM: return xm.sum() / S;
    default: return xm.sum() / (double)T; /* Dr.GRPO, C = T (padded) */
    }
}

// the formula of loss.h, written with ATen ops (f64); returns L
at::Tensor ref_policy(const segrl_policy_loss_opts &o, const at::Tensor &logp, const at::Tensor &old,
                      const at::Tensor &A, const at::Tensor &ref, const at::Tensor &ent, const at::Tensor &v,
                      const at::Tensor &oldv, const at::Tensor &R, const at::Tensor &m) {
    const int64_t T = logp.size(1);
    const double lrc = o.log_ratio_clamp, el = o.clip_low, eh = o.clip_high;
    at::Tensor l;
    if (o.mode == SEGRL_PG_REINFORCE) {
        l = -A * logp;
    } else if (o.mode == SEGRL_PG_CISPO) {
        at::Tensor r = at::exp(at::clamp(logp - old, -lrc, lrc)).detach();
        at::Tensor rc = el > 0 ? r.clamp(1 - el, 1 + eh) : r.clamp_max(1 + eh);
        l = -rc * A * logp;
    } else {
        at::Tensor r;
        if (o.mode == SEGRL_PG_GSPO) {
            at::Tensor nb = m.sum(1, true).clamp_min(1);
            at::Tensor sb = at::exp(at::clamp(((logp - old) * m).sum(1, true) / nb, -lrc, lrc));
            r = sb.detach() * at::exp(logp - logp.detach());
        } else {
            r = at::exp(at::clamp(logp - old, -lrc, lrc));
        }
        l = at::max(-A * r, -A * at::clamp(r, 1 - el, 1 + eh));
        if (o.mode == SEGRL_PG_PPO && o.clip_c > 0)
            l = at::where(A.lt(0), at::min(l, -A * (double)o.clip_c), l);
    }
    at::Tensor L = agg(l, m, o, T);
    if (o.kl_type != SEGRL_KL_NONE && o.kl_coef != 0) {
        at::Tensor d = logp - ref, kl;
        switch (o.kl_type) {
        case SEGRL_KL_K1: kl = d; break;
        case SEGRL_KL_ABS: kl = d.abs(); break;
        case SEGRL_KL_K2: kl = 0.5 * d * d; break;
        default: {
            at::Tensor dc = d.clamp(-20, 20);
            kl = (at::exp(-dc) + dc - 1).clamp(-10, 10);
        }
        }
        L = L + (double)o.kl_coef * agg(kl, m, o, T);
    }
    if (o.entropy_coef != 0) L = L - (double)o.entropy_coef * agg(ent, m, o, T);
    if (o.value_coef != 0) {
        at::Tensor vt;
        if (o.value_clip > 0) {
            at::Tensor vc = oldv + at::clamp(v - oldv, -(double)o.value_clip, (double)o.value_clip);
            vt = 0.5 * at::max((v - R).pow(2), (vc - R).pow(2));
        } else {
            vt = 0.5 * (v - R).pow(2);
        }
        L = L + (double)o.value_coef * agg(vt, m, o, T);
    }
    return L;
}

void test_policy(const Case &c) {
    const int64_t B = 4, T = 7;
    at::Tensor lens = at::tensor(std::vector<int64_t>{7, 3, 5, 1});
    at::Tensor m = at::arange(T).unsqueeze(0).lt(lens.unsqueeze(1)).to(at::kDouble); /* right padding */
    at::Tensor old = randn({B, T}, 0.5) - 2.0;
    at::Tensor logp0 = old + randn({B, T}, 0.4); /* ratios in ~[0.3, 3]: clipping active */
    at::Tensor A = randn({B, T});
    if (c.o.mode == SEGRL_PG_GSPO) A = randn({B, 1}).expand({B, T}).contiguous();
    at::Tensor ref = logp0 + randn({B, T}, 0.3);
    at::Tensor ent0 = randn({B, T}).abs() + 0.5;
    /* values on a 2^-10 grid, so that old_v + (v - old_v) == v exactly in f32: where the value
     * clip is inactive both branches of max((v - R)^2, (v_clip - R)^2) are then equal. (With
     * arbitrary floats, rounding can make the clipped branch win by an ulp while the clamp is
     * inactive; src/loss then gives d/dv = 0 where ATen's autograd gives v_clip - R, a difference
     * seen as 1.3e-3 on one token of one draw, reported to the loss area.) */
    auto grid = [](const at::Tensor &t) { return at::round(t * 1024.0) / 1024.0; };
    at::Tensor v0 = grid(randn({B, T})), oldv = grid(v0 + randn({B, T}, 0.3)), R = grid(randn({B, T}));
    at::Tensor pm = at::ones({B, T}, at::kDouble);
    if (c.prob_mask) pm.index_put_({0, 2}, 0.0), pm.index_put_({2, 0}, 0.0);
    at::Tensor mm = m * pm; /* the tokens that count */

    // the wrapper, f32
    at::Tensor logp = leaf(logp0.to(at::kFloat)), ent = leaf(ent0.to(at::kFloat)), v = leaf(v0.to(at::kFloat));
    auto f = [](const at::Tensor &t) { return t.to(at::kFloat).contiguous(); };
    at::Tensor t_old = f(old), t_A = f(A), t_ref = f(ref), t_oldv = f(oldv), t_R = f(R), t_mask = m.to(at::kByte),
               t_pm = f(pm), offsets;
    // packed: the valid tokens of each row, concatenated (mask then all ones)
    at::Tensor sel;
    if (c.packed) {
        sel = m.to(at::kBool).flatten();
        std::vector<int64_t> off{0};
        for (int64_t b = 0; b < B; b++) off.push_back(off.back() + lens[b].item<int64_t>());
        offsets = at::tensor(off, at::kLong);
    }
    auto P = [&](const at::Tensor &t) { return c.packed ? t.flatten().index({sel}) : t; };
    at::Tensor in_logp = P(logp), in_ent = P(ent), in_v = P(v); /* differentiable through the gather */
    at::Tensor a_old = P(t_old), a_A = P(t_A), a_ref = P(t_ref), a_oldv = P(t_oldv), a_R = P(t_R),
               a_pm = P(t_pm), a_mask = c.packed ? at::Tensor() : t_mask;
    segrl_tensor *h[11] = {H(in_logp), H(a_old), H(a_A), H(a_ref), H(in_ent), H(in_v), H(a_oldv), H(a_R),
                           a_mask.defined() ? H(a_mask) : nullptr, c.prob_mask ? H(a_pm) : nullptr,
                           c.packed ? H(offsets) : nullptr};
    segrl_autograd_policy_inputs in = {h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10]};
    segrl_policy_loss_stats stats;
    segrl_tensor *hl = nullptr;
    segrl_status st = segrl_autograd_policy_loss(&in, &c.o, &hl, &stats);
    CHECK(st == SEGRL_OK, "%s: segrl_autograd_policy_loss: %s", c.name, segrl_last_error());
    for (segrl_tensor *x : h) segrl_tensor_free(x);
    if (st != SEGRL_OK) return;
    at::Tensor loss = take(hl);
    CHECK(loss.dim() == 0 && loss.scalar_type() == at::kFloat, "%s: a 0-dim f32 loss", c.name);
    (loss * 1.5).backward(); /* an upstream gradient other than 1 */

    // the reference, f64
    at::Tensor rlogp = leaf(logp.detach().to(at::kDouble)), rent = leaf(ent.detach().to(at::kDouble)),
               rv = leaf(v.detach().to(at::kDouble));
    auto D = [](const at::Tensor &t) { return t.to(at::kDouble); };
    at::Tensor rL = ref_policy(c.o, rlogp, D(t_old), D(t_A), D(t_ref), rent, rv, D(t_oldv), D(t_R), mm);
    (rL * 1.5).backward();

    std::string tag = std::string("policy ") + c.name;
    agree(tag + ": loss", loss, rL, 1e-6, 1e-5);
    CHECK(std::fabs(stats.loss - rL.item<double>()) <= 1e-6 + 1e-5 * std::fabs(rL.item<double>()),
          "%s: stats.loss %g", c.name, stats.loss);
    agree(tag + ": d logp", logp.grad(), rlogp.grad(), 1e-6, 1e-4);
    if (c.o.entropy_coef != 0) agree(tag + ": d entropy", ent.grad(), rent.grad(), 1e-7, 1e-4);
    if (c.o.value_coef != 0) agree(tag + ": d values", v.grad(), rv.grad(), 1e-7, 1e-4);
}

// the whole chain: logits -> (logp, entropy) wrapper -> policy-loss wrapper -> d logits
void test_chain() {
    const int64_t B = 2, T = 6, V = 23;
    at::Tensor logits0 = randn({B, T, V}, 1.5);
    at::Tensor y = at::randint(0, V, {B, T}, at::kLong);
    at::Tensor m = at::ones({B, T}, at::kDouble);
    m.index_put_({1, 5}, 0.0);
    at::Tensor old = randn({B, T}, 0.2) - 3.0, A = randn({B, T});
    segrl_policy_loss_opts o = segrl_policy_loss_opts_default();
    o.entropy_coef = 0.01f;
    o.agg = SEGRL_AGG_SEQ_MEAN_TOKEN_MEAN;

    at::Tensor x = leaf(logits0.to(at::kFloat));
    segrl_tensor *hx = H(x), *hy = H(y), *lp = nullptr, *en = nullptr, *hl = nullptr;
    CHECK(segrl_autograd_logprobs(hx, hy, nullptr, &lp, &en) == SEGRL_OK, "chain logprobs: %s", segrl_last_error());
    at::Tensor t_old = old.to(at::kFloat), t_A = A.to(at::kFloat), t_m = m.to(at::kFloat);
    segrl_tensor *ho = H(t_old), *ha = H(t_A), *hm = H(t_m);
    segrl_autograd_policy_inputs in = {lp, ho, ha, nullptr, en, nullptr, nullptr, nullptr, hm, nullptr, nullptr};
    CHECK(segrl_autograd_policy_loss(&in, &o, &hl, nullptr) == SEGRL_OK, "chain loss: %s", segrl_last_error());
    CHECK(segrl_tensor_backward(hl, nullptr) == SEGRL_OK, "chain backward: %s", segrl_last_error());

    at::Tensor r = leaf(logits0), rlogp, rent;
    ref_logprobs(r, y, 1.0, &rlogp, &rent);
    at::Tensor none;
    at::Tensor rL = ref_policy(o, rlogp, old.to(at::kFloat).to(at::kDouble), A.to(at::kFloat).to(at::kDouble),
                               none, rent, none, none, none, m);
    rL.backward();
    agree("chain logits -> logp, entropy -> PPO loss: d logits", x.grad(), r.grad(), 1e-7, 1e-4);
    for (segrl_tensor *t : {hx, hy, lp, en, hl, ho, ha, hm}) segrl_tensor_free(t);
}

void test_errors() {
    at::Tensor x = at::randn({4, 10}), y = at::randint(0, 10, {3}, at::kLong);
    segrl_tensor *hx = H(x), *hy = H(y), *out = reinterpret_cast<segrl_tensor *>(0x1);
    CHECK(segrl_autograd_logprobs(hx, hy, nullptr, &out, nullptr) == SEGRL_ERR_INVALID &&
              out == reinterpret_cast<segrl_tensor *>(0x1) && std::strstr(segrl_last_error(), "targets"),
          "targets shape rejected: %s", segrl_last_error());
    segrl_tensor_free(hy);
    at::Tensor big = at::full({4}, 10, at::kLong);
    hy = H(big);
    CHECK(segrl_autograd_logprobs(hx, hy, nullptr, &out, nullptr) == SEGRL_ERR_INVALID &&
              std::strstr(segrl_last_error(), "targets"),
          "target >= V: the kernel's message: %s", segrl_last_error());
    at::Tensor nanx = x.clone();
    nanx.index_put_({2, 3}, NAN);
    segrl_tensor *hn = H(nanx);
    segrl_tensor_free(hy);
    at::Tensor y4 = at::zeros({4}, at::kLong);
    hy = H(y4);
    CHECK(segrl_autograd_logprobs(hn, hy, nullptr, &out, nullptr) == SEGRL_ERR_INVALID &&
              std::strstr(segrl_last_error(), "logits"),
          "NaN logits rejected: %s", segrl_last_error());
    segrl_autograd_policy_inputs in{};
    CHECK(segrl_autograd_policy_loss(&in, nullptr, &out, nullptr) == SEGRL_ERR_INVALID &&
              std::strstr(segrl_last_error(), "logp"),
          "missing logp: %s", segrl_last_error());
    at::Tensor w = at::randn({10, 5});
    segrl_tensor *hw = H(w);
    CHECK(segrl_autograd_linear_logprobs(hx, hw, hy, nullptr, &out, nullptr) == SEGRL_ERR_INVALID &&
              std::strstr(segrl_last_error(), "weight"),
          "weight shape rejected: %s", segrl_last_error());
    for (segrl_tensor *t : {hx, hy, hn, hw}) segrl_tensor_free(t);
}

}  // namespace

int main() {
    at::manual_seed(7);
    test_logprobs(at::kFloat, 1.0, true);
    test_logprobs(at::kFloat, 0.7, false);
    test_logprobs(at::kBFloat16, 1.0, true);
    test_linear(true);
    test_linear(false);
    test_linear(true, at::kBFloat16);

    std::vector<Case> cases;
    auto base = segrl_policy_loss_opts_default();
    Case c{"PPO token-mean", base, false, false};
    cases.push_back(c);
    c = {"PPO dual-clip 3, clip-higher 0.28, seq-mean-token-mean", base, false, false};
    c.o.clip_c = 3.0f, c.o.clip_high = 0.28f, c.o.agg = SEGRL_AGG_SEQ_MEAN_TOKEN_MEAN;
    cases.push_back(c);
    c = {"PPO + K3 KL + entropy + clipped value, packed", base, true, false};
    c.o.kl_type = SEGRL_KL_K3, c.o.kl_coef = 0.1f, c.o.entropy_coef = 0.01f, c.o.value_coef = 0.5f,
    c.o.value_clip = 0.2f;
    cases.push_back(c);
    c = {"PPO + K1 KL, seq-mean-token-sum, prob_mask", base, false, true};
    c.o.kl_type = SEGRL_KL_K1, c.o.kl_coef = 0.05f, c.o.agg = SEGRL_AGG_SEQ_MEAN_TOKEN_SUM;
    cases.push_back(c);
    c = {"PPO + K2 KL + unclipped value, Dr.GRPO sum-norm", base, false, false};
    c.o.kl_type = SEGRL_KL_K2, c.o.kl_coef = 0.2f, c.o.value_coef = 1.0f, c.o.value_clip = 0.0f,
    c.o.agg = SEGRL_AGG_SEQ_MEAN_TOKEN_SUM_NORM;
    cases.push_back(c);
    c = {"GSPO seq-mean-token-mean", base, false, false};
    /* a wider range than GSPO's 3e-4 / 4e-4, so that some sequences are clipped and some not */
    c.o.mode = SEGRL_PG_GSPO, c.o.clip_low = 0.1f, c.o.clip_high = 0.15f, c.o.agg = SEGRL_AGG_SEQ_MEAN_TOKEN_MEAN;
    cases.push_back(c);
    c = {"CISPO + ABS KL", base, false, false};
    c.o.mode = SEGRL_PG_CISPO, c.o.clip_low = 0.0f, c.o.clip_high = 0.3f, c.o.kl_type = SEGRL_KL_ABS,
    c.o.kl_coef = 0.1f;
    cases.push_back(c);
    c = {"REINFORCE + entropy, packed", base, true, false};
    c.o.mode = SEGRL_PG_REINFORCE, c.o.entropy_coef = 0.05f;
    cases.push_back(c);
    for (const Case &k : cases) test_policy(k);
    test_chain();
    test_errors();
    return h_finish();
}
