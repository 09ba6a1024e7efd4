// torch/train.cpp — AdamW, global gradient-norm clipping and learning-rate schedules over
// segrl_tensor parameters (include/segrl/train.h). Plain ATen ops on the parameters' device:
// the same code serves CPU and CUDA, f32 and bf16/f16 parameters (f32 master copies).
#include "train_impl.hpp"

#include <cmath>
#include <new>
#include <unordered_set>

namespace segrl_torch {

// ----------------------------------------------------------------------------
// schedules

std::string schedule_problem(const segrl_lr_schedule &s) {
    if (s.kind != SEGRL_LR_CONSTANT && s.kind != SEGRL_LR_WARMUP_COSINE &&
        s.kind != SEGRL_LR_WARMUP_CONSTANT)
        return "kind: " + std::to_string(s.kind) + " is not a segrl_lr_kind";
    if (s.kind == SEGRL_LR_CONSTANT) return "";
    if (s.warmup_steps < 0) return "warmup_steps: must be >= 0";
    if (s.kind == SEGRL_LR_WARMUP_COSINE) {
        if (s.total_steps < s.warmup_steps) return "total_steps: must be >= warmup_steps";
        if (!(s.min_ratio >= 0.0 && s.min_ratio <= 1.0)) return "min_ratio: must be in [0, 1]";
    }
    return "";
}

double lr_at(const segrl_lr_schedule &s, double base, int64_t t) {
    if (s.kind == SEGRL_LR_CONSTANT) return base;
    const int64_t W = s.warmup_steps;
    if (t < W) return base * (double)(t + 1) / (double)W;  // linear warmup, first update > 0
    if (s.kind == SEGRL_LR_WARMUP_CONSTANT) return base;
    // cosine from base (t = W) down to min_ratio * base (t >= T)
    const int64_t span = s.total_steps - W > 1 ? s.total_steps - W : 1;
    double p = (double)(t - W) / (double)span;
    if (p > 1.0) p = 1.0;
    const double r = s.min_ratio;
    return base * (r + (1.0 - r) * 0.5 * (1.0 + std::cos(M_PI * p)));
}

// ----------------------------------------------------------------------------
// gradient norm

// sqrt(sum_i ||g_i||^2): each norm in f32 on the gradient's device, the sum in f64 on the host.
// One device->host transfer for the whole list (the norms are stacked first).
static double global_norm(const std::vector<at::Tensor> &grads) {
    if (grads.empty()) return 0.0;
    std::vector<at::Tensor> norms;
    norms.reserve(grads.size());
    const at::Device dev = grads[0].device();
    for (const at::Tensor &g : grads)
        norms.push_back(at::linalg_vector_norm(g, 2, c10::nullopt, false, at::kFloat).to(dev));
    at::Tensor n = at::stack(norms).to(at::kDouble).cpu();
    const double *v = n.data_ptr<double>();
    double sum = 0.0;
    for (int64_t i = 0; i < n.numel(); i++) sum += v[i] * v[i];
    return std::sqrt(sum);
}

}  // namespace segrl_torch

using namespace segrl_torch;

// ----------------------------------------------------------------------------
// C API

extern "C" segrl_status segrl_lr_schedule_value(const segrl_lr_schedule *schedule, double base_lr,
                                                int64_t step, double *out_lr) {
    static const char *fn = "segrl_lr_schedule_value";
    if (!schedule) return segrl_set_error(SEGRL_ERR_INVALID, "%s: schedule: is NULL", fn);
    if (!out_lr) return segrl_set_error(SEGRL_ERR_INVALID, "%s: out_lr: is NULL", fn);
    if (!(std::isfinite(base_lr) && base_lr >= 0.0))
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: base_lr: must be finite and >= 0", fn);
    if (step < 0) return segrl_set_error(SEGRL_ERR_INVALID, "%s: step: must be >= 0", fn);
    std::string p = schedule_problem(*schedule);
    if (!p.empty()) return segrl_set_error(SEGRL_ERR_INVALID, "%s: schedule->%s", fn, p.c_str());
    *out_lr = lr_at(*schedule, base_lr, step);
    return SEGRL_OK;
}

extern "C" segrl_status segrl_clip_grad_norm(segrl_tensor *const *params, int64_t n,
                                             double max_norm, double *out_norm) {
    SEGRL_TORCH_TRY("segrl_clip_grad_norm") {
        if (n < 0) return segrl_set_error(SEGRL_ERR_INVALID, "%s: n: must be >= 0", segrl_torch_fn_);
        if (n > 0 && !params)
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: params: is NULL", segrl_torch_fn_);
        if (!out_norm)
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: out_norm: is NULL", segrl_torch_fn_);
        if (std::isnan(max_norm))
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: max_norm: is NaN", segrl_torch_fn_);
        std::vector<at::Tensor> grads;
        for (int64_t i = 0; i < n; i++) {
            if (!params[i] || !params[i]->t.defined())
                return segrl_set_error(SEGRL_ERR_INVALID, "%s: params[%lld]: is NULL",
                                       segrl_torch_fn_, (long long)i);
            const at::Tensor &g = params[i]->t.grad();
            if (!g.defined()) continue;
            if (!grads.empty() && g.device() != grads[0].device())
                return segrl_set_error(SEGRL_ERR_INVALID,
                                       "%s: params[%lld]: gradient on %s, the first on %s",
                                       segrl_torch_fn_, (long long)i, g.device().str().c_str(),
                                       grads[0].device().str().c_str());
            grads.push_back(g);
        }
        at::NoGradGuard no_grad;
        const double norm = global_norm(grads);
        if (std::isfinite(norm) && max_norm > 0.0) {
            const double coef = max_norm / (norm + 1e-6);
            if (coef < 1.0)
                for (at::Tensor &g : grads) g.mul_(coef);
        }
        *out_norm = norm;
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_adamw_config segrl_adamw_default(void) {
    segrl_adamw_config c;
    c.lr = 1e-5;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.weight_decay = 0.01;
    c.decay_1d = 0;
    c.max_grad_norm = 1.0;
    c.skip_nonfinite = 1;
    c.master_weights = 1;
    c.schedule.kind = SEGRL_LR_CONSTANT;
    c.schedule.warmup_steps = 0;
    c.schedule.total_steps = 0;
    c.schedule.min_ratio = 0.0;
    return c;
}

static segrl_status check_config(const char *fn, const segrl_adamw_config *c) {
    auto bad = [fn](const char *field, const char *what) {
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: config->%s: %s", fn, field, what);
    };
    if (!(std::isfinite(c->lr) && c->lr >= 0.0)) return bad("lr", "must be finite and >= 0");
    if (!(c->beta1 >= 0.0 && c->beta1 < 1.0)) return bad("beta1", "must be in [0, 1)");
    if (!(c->beta2 >= 0.0 && c->beta2 < 1.0)) return bad("beta2", "must be in [0, 1)");
    if (!(std::isfinite(c->eps) && c->eps > 0.0)) return bad("eps", "must be finite and > 0");
    if (!(std::isfinite(c->weight_decay) && c->weight_decay >= 0.0))
        return bad("weight_decay", "must be finite and >= 0");
    if (!(std::isfinite(c->max_grad_norm) && c->max_grad_norm >= 0.0))
        return bad("max_grad_norm", "must be finite and >= 0 (0: no clipping)");
    if (c->decay_1d != 0 && c->decay_1d != 1) return bad("decay_1d", "must be 0 or 1");
    if (c->skip_nonfinite != 0 && c->skip_nonfinite != 1) return bad("skip_nonfinite", "must be 0 or 1");
    if (c->master_weights != 0 && c->master_weights != 1) return bad("master_weights", "must be 0 or 1");
    std::string p = schedule_problem(c->schedule);
    if (!p.empty())
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: config->schedule.%s", fn, p.c_str());
    return SEGRL_OK;
}

extern "C" segrl_status segrl_adamw_create(segrl_tensor *const *params, const char *const *names,
                                           int64_t n, const segrl_adamw_config *config,
                                           segrl_optimizer **out) {
    SEGRL_TORCH_TRY("segrl_adamw_create") {
        const char *fn = segrl_torch_fn_;
        if (!out) return segrl_set_error(SEGRL_ERR_INVALID, "%s: out: is NULL", fn);
        if (n < 1) return segrl_set_error(SEGRL_ERR_INVALID, "%s: n: must be >= 1", fn);
        if (!params) return segrl_set_error(SEGRL_ERR_INVALID, "%s: params: is NULL", fn);
        if (!config) return segrl_set_error(SEGRL_ERR_INVALID, "%s: config: is NULL", fn);
        segrl_status st = check_config(fn, config);
        if (st != SEGRL_OK) return st;
        std::unordered_set<std::string> seen_names;
        std::unordered_set<const void *> seen_impl;
        for (int64_t i = 0; i < n; i++) {
            if (!params[i] || !params[i]->t.defined())
                return segrl_set_error(SEGRL_ERR_INVALID, "%s: params[%lld]: is NULL", fn, (long long)i);
            const at::Tensor &p = params[i]->t;
            at::ScalarType s = p.scalar_type();
            if (s != at::kFloat && s != at::kBFloat16 && s != at::kHalf)
                return segrl_set_error(SEGRL_ERR_INVALID, "%s: params[%lld]: dtype %s, f32/bf16/f16 required",
                                       fn, (long long)i, c10::toString(s));
            if (!p.requires_grad())
                return segrl_set_error(SEGRL_ERR_INVALID, "%s: params[%lld]: does not require grad", fn,
                                       (long long)i);
            if (!seen_impl.insert(p.unsafeGetTensorImpl()).second)
                return segrl_set_error(SEGRL_ERR_INVALID, "%s: params[%lld]: the same tensor is listed twice",
                                       fn, (long long)i);
            if (names) {
                if (!names[i] || !names[i][0])
                    return segrl_set_error(SEGRL_ERR_INVALID, "%s: names[%lld]: is NULL or empty", fn,
                                           (long long)i);
                if (!seen_names.insert(names[i]).second)
                    return segrl_set_error(SEGRL_ERR_INVALID, "%s: names[%lld]: \"%s\" is given twice", fn,
                                           (long long)i, names[i]);
            }
        }
        auto *o = new segrl_optimizer();
        try {
            o->config = *config;
            at::NoGradGuard no_grad;
            for (int64_t i = 0; i < n; i++) {
                const at::Tensor &p = params[i]->t;
                o->params.push_back(p);
                o->names.push_back(names ? std::string(names[i]) : "param." + std::to_string(i));
                auto f32 = p.options().dtype(at::kFloat).requires_grad(false);
                o->exp_avg.push_back(at::zeros(p.sizes(), f32));
                o->exp_avg_sq.push_back(at::zeros(p.sizes(), f32));
                bool low = p.scalar_type() != at::kFloat;
                o->master.push_back(low && config->master_weights
                                        ? p.detach().to(at::kFloat).contiguous()
                                        : at::Tensor());
                o->decay.push_back(p.dim() >= 2 || config->decay_1d);
            }
        } catch (...) {
            delete o;
            throw;
        }
        *out = o;
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" void segrl_optimizer_free(segrl_optimizer *opt) { delete opt; }

extern "C" segrl_status segrl_optimizer_zero_grad(segrl_optimizer *opt) {
    SEGRL_TORCH_TRY("segrl_optimizer_zero_grad") {
        if (!opt) return segrl_set_error(SEGRL_ERR_INVALID, "%s: opt: is NULL", segrl_torch_fn_);
        for (at::Tensor &p : opt->params) p.mutable_grad().reset();
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_optimizer_step(segrl_optimizer *opt, double grad_divisor,
                                             segrl_step_info *info) {
    SEGRL_TORCH_TRY("segrl_optimizer_step") {
        const char *fn = segrl_torch_fn_;
        if (!opt) return segrl_set_error(SEGRL_ERR_INVALID, "%s: opt: is NULL", fn);
        if (!(std::isfinite(grad_divisor) && grad_divisor > 0.0))
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: grad_divisor: must be finite and > 0", fn);
        const segrl_adamw_config &c = opt->config;
        const size_t n = opt->params.size();
        std::vector<size_t> idx;
        std::vector<at::Tensor> grads;
        for (size_t i = 0; i < n; i++) {
            const at::Tensor &p = opt->params[i];
            const at::Tensor &g = p.grad();
            if (!g.defined()) continue;
            if (!g.sizes().equals(p.sizes()) || g.device() != p.device())
                return segrl_set_error(SEGRL_ERR_INVALID, "%s: %s: gradient shape or device differs from the parameter",
                                       fn, opt->names[i].c_str());
            if (!grads.empty() && g.device() != grads[0].device())
                return segrl_set_error(SEGRL_ERR_INVALID, "%s: %s: parameters on more than one device",
                                       fn, opt->names[i].c_str());
            idx.push_back(i);
            grads.push_back(g);
        }
        at::NoGradGuard no_grad;
        const double lr = lr_at(c.schedule, c.lr, opt->steps);
        const double norm = global_norm(grads) / grad_divisor;
        segrl_step_info r{};
        r.grad_norm = norm;
        r.lr = lr;
        if (!std::isfinite(norm) && c.skip_nonfinite) {
            r.skipped = 1;
            r.step = opt->steps;
            if (info) *info = r;
            return SEGRL_OK;
        }
        double clip = 1.0;
        if (c.max_grad_norm > 0.0 && std::isfinite(norm)) {
            double coef = c.max_grad_norm / (norm + 1e-6);
            if (coef < 1.0) clip = coef, r.clipped = 1;
        }
        const int64_t t = opt->steps + 1;
        const double bc1 = 1.0 - std::pow(c.beta1, (double)t);
        const double bc2_sqrt = std::sqrt(1.0 - std::pow(c.beta2, (double)t));
        const double step_size = lr / bc1;
        for (size_t k = 0; k < idx.size(); k++) {
            const size_t i = idx[k];
            // the scaling in f32 (a bf16/f16 gradient is converted first), written back into the
            // gradient so that it is left as the update saw it
            at::Tensor &g = grads[k];
            at::Tensor g32 = g.to(at::kFloat);
            if (grad_divisor != 1.0) g32.div_(grad_divisor);
            if (clip != 1.0) g32.mul_(clip);
            if (!g32.is_same(g) && (grad_divisor != 1.0 || clip != 1.0)) g.copy_(g32);
            at::Tensor &p = opt->params[i];
            at::Tensor w = opt->master[i].defined() ? opt->master[i]
                          : p.scalar_type() == at::kFloat ? p
                                                          : p.detach().to(at::kFloat);
            if (opt->decay[i] && c.weight_decay != 0.0) w.mul_(1.0 - lr * c.weight_decay);
            at::Tensor &m = opt->exp_avg[i], &v = opt->exp_avg_sq[i];
            m.mul_(c.beta1).add_(g32, 1.0 - c.beta1);
            v.mul_(c.beta2).addcmul_(g32, g32, 1.0 - c.beta2);
            at::Tensor denom = (v.sqrt() / bc2_sqrt).add_(c.eps);
            w.addcdiv_(m, denom, -step_size);
            if (!w.is_same(p)) p.copy_(w);
        }
        opt->steps = t;
        r.step = t;
        if (info) *info = r;
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" int64_t segrl_optimizer_steps(const segrl_optimizer *opt) { return opt ? opt->steps : 0; }

extern "C" double segrl_optimizer_lr(const segrl_optimizer *opt) {
    return opt ? lr_at(opt->config.schedule, opt->config.lr, opt->steps) : 0.0;
}

extern "C" int64_t segrl_optimizer_count(const segrl_optimizer *opt) {
    return opt ? (int64_t)opt->params.size() : 0;
}

extern "C" segrl_status segrl_optimizer_sync_master(segrl_optimizer *opt) {
    SEGRL_TORCH_TRY("segrl_optimizer_sync_master") {
        if (!opt) return segrl_set_error(SEGRL_ERR_INVALID, "%s: opt: is NULL", segrl_torch_fn_);
        at::NoGradGuard no_grad;
        for (size_t i = 0; i < opt->params.size(); i++)
            if (opt->master[i].defined()) opt->master[i].copy_(opt->params[i]);
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_optimizer_moments(const segrl_optimizer *opt, int64_t index,
                                                segrl_tensor **out_exp_avg,
                                                segrl_tensor **out_exp_avg_sq) {
    SEGRL_TORCH_TRY("segrl_optimizer_moments") {
        if (!opt) return segrl_set_error(SEGRL_ERR_INVALID, "%s: opt: is NULL", segrl_torch_fn_);
        if (index < 0 || index >= (int64_t)opt->params.size())
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: index: %lld not in [0, %lld)", segrl_torch_fn_,
                                   (long long)index, (long long)opt->params.size());
        segrl_tensor *a = out_exp_avg ? wrap(opt->exp_avg[index]) : nullptr;
        segrl_tensor *b = nullptr;
        try {
            b = out_exp_avg_sq ? wrap(opt->exp_avg_sq[index]) : nullptr;
        } catch (...) {
            delete a;
            throw;
        }
        if (out_exp_avg) *out_exp_avg = a;
        if (out_exp_avg_sq) *out_exp_avg_sq = b;
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}
