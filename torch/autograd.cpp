// torch/autograd.cpp — segrl's loss kernels (include/segrl/loss.h) as custom autograd functions
// (torch::autograd::Function): the forward runs segrl's forward kernel, the backward node runs
// segrl's backward kernel, so a libtorch trainer gets differentiable log-probs and policy losses
// (include/segrl/train.h, "autograd-aware losses").
#include "internal.hpp"
#include "segrl/loss.h"
#include "segrl/train.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstring>
#include <stdexcept>
#include <string>

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

// ----------------------------------------------------------------------------
// tensors <-> segrl views, the execution context

// thrown inside the forward and backward with the segrl call's message
struct SegrlError : std::runtime_error {
    segrl_status status;
    SegrlError(segrl_status s, const std::string &m) : std::runtime_error(m), status(s) {}
};

void ok(segrl_status st) {
    if (st != SEGRL_OK) throw SegrlError(st, segrl_last_error());
}

segrl_view view_of(const at::Tensor &t) {
    if (!t.defined()) return segrl_view_none();
    segrl_view v;
    std::memset(&v, 0, sizeof v);
    segrl_dtype d;
    if (!segrl_torch::from_scalar_type(t.scalar_type(), &d))
        throw SegrlError(SEGRL_ERR_INVALID, std::string("dtype ") + c10::toString(t.scalar_type()) +
                                                " has no segrl_dtype");
    if (t.dim() > SEGRL_MAX_DIMS) throw SegrlError(SEGRL_ERR_INVALID, "more than 4 dimensions");
    v.data = t.data_ptr();
    v.dtype = d;
    v.device = t.is_cuda() ? segrl_cuda((int32_t)t.get_device()) : segrl_cpu();
    v.ndim = (int32_t)t.dim();
    for (int64_t i = 0; i < t.dim(); i++) v.shape[i] = t.size(i), v.strides[i] = t.stride(i);
    return v;
}

// a 1-element view of a 0-dim or 1-element tensor
segrl_view scalar_view(const at::Tensor &t) {
    segrl_view v = view_of(t.reshape({1}));
    v.data = t.data_ptr();
    return v;
}

// The current stream's cudaStream_t: c10::Stream::stream_handle() (recent libtorch), else
// native_handle() (some 2.x releases), else NULL, the default stream (libtorch 1.x: correct
// unless the caller made another stream current)
template <int N> struct rank : rank<N - 1> {};
template <> struct rank<0> {};
template <typename S>
auto stream_handle(const S &s, rank<2>) -> decltype((void *)s.stream_handle()) {
    return (void *)s.stream_handle();
}
template <typename S>
auto stream_handle(const S &s, rank<1>) -> decltype((void *)s.native_handle()) {
    return (void *)s.native_handle();
}
template <typename S>
void *stream_handle(const S &, rank<0>) {
    return nullptr;
}

// exec with a workspace of `bytes` on t's device (the tensor keeps it alive) and t's stream
struct Exec {
    segrl_exec e;
    at::Tensor ws;
    Exec(const at::Tensor &t, size_t bytes, int32_t checks) {
        std::memset(&e, 0, sizeof e);
        e.checks = checks;
        if (t.is_cuda()) {
            c10::Stream s = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(t.device());
            e.stream = stream_handle(s, rank<2>{});
        }
        if (bytes) {
            ws = at::empty({(int64_t)bytes}, t.options().dtype(at::kByte).requires_grad(false));
            e.workspace = ws.data_ptr();
            e.workspace_bytes = bytes;
        }
    }
};

segrl_device seg_device(const at::Tensor &t) {
    return t.is_cuda() ? segrl_cuda((int32_t)t.get_device()) : segrl_cpu();
}

// options structs travel through ctx->saved_data as bytes
template <typename T>
std::string pack(const T &v) {
    return std::string(reinterpret_cast<const char *>(&v), sizeof v);
}
template <typename T>
T unpack(const at::IValue &v) {
    T r;
    const std::string &s = v.toStringRef();
    std::memcpy(&r, s.data(), sizeof r);
    return r;
}

at::Tensor f32_or_none(const at::Tensor &g) {
    return g.defined() ? g.to(at::kFloat).contiguous() : at::Tensor();
}

// ----------------------------------------------------------------------------
// fused log-probs from logits (N, V)

struct LogprobFn : torch::autograd::Function<LogprobFn> {
    static variable_list forward(AutogradContext *ctx, at::Tensor logits, at::Tensor targets,
                                 std::string opts) {
        segrl_logprob_opts o = unpack<segrl_logprob_opts>(at::IValue(opts));
        if (logits.stride(1) != 1) logits = logits.contiguous();
        targets = targets.contiguous();
        const int64_t N = logits.size(0), V = logits.size(1);
        auto f32 = logits.options().dtype(at::kFloat);
        at::Tensor logp = at::empty({N}, f32), ent = at::empty({N}, f32), lse = at::empty({N}, f32);
        size_t bytes = 0;
        ok(segrl_logprobs_workspace_size(seg_device(logits), N, V, &bytes));
        Exec ex(logits, bytes, SEGRL_CHECKS_FULL);
        segrl_logprob_out out;
        std::memset(&out, 0, sizeof out);
        out.logp = view_of(logp);
        out.entropy = view_of(ent);
        out.lse = view_of(lse);
        out.p_target = segrl_view_none();
        out.sum_p2 = segrl_view_none();
        ok(segrl_logprobs_forward(view_of(logits), view_of(targets), &o, &ex.e, &out));
        ctx->save_for_backward({logits, targets, lse, ent});
        ctx->saved_data["opts"] = opts;
        ctx->set_materialize_grads(false);
        return {logp, ent};
    }

    static variable_list backward(AutogradContext *ctx, variable_list grads) {
        variable_list s = ctx->get_saved_variables();
        const at::Tensor &logits = s[0], &targets = s[1], &lse = s[2], &ent = s[3];
        at::Tensor gl = f32_or_none(grads[0]), ge = f32_or_none(grads[1]);
        if (!ctx->needs_input_grad(0) || (!gl.defined() && !ge.defined()))
            return {at::Tensor(), at::Tensor(), at::Tensor()};
        segrl_logprob_opts o = unpack<segrl_logprob_opts>(ctx->saved_data["opts"]);
        at::Tensor dlogits = at::empty(logits.sizes(), logits.options().requires_grad(false));
        size_t bytes = 0;
        ok(segrl_logprobs_workspace_size(seg_device(logits), logits.size(0), logits.size(1), &bytes));
        Exec ex(logits, bytes, SEGRL_CHECKS_SHAPES);
        ok(segrl_logprobs_backward(view_of(logits), view_of(targets), view_of(lse), view_of(ent),
                                   view_of(gl), view_of(ge), &o, &ex.e, view_of(dlogits)));
        return {dlogits, at::Tensor(), at::Tensor()};
    }
};

// ----------------------------------------------------------------------------
// fused linear log-probs from hidden (N, D) and weight (V, D)

struct LinearFn : torch::autograd::Function<LinearFn> {
    static variable_list forward(AutogradContext *ctx, at::Tensor hidden, at::Tensor weight,
                                 at::Tensor targets, std::string opts) {
        segrl_logprob_opts o = unpack<segrl_logprob_opts>(at::IValue(opts));
        o.accumulate = 0;
        if (hidden.stride(1) != 1) hidden = hidden.contiguous();
        if (weight.stride(1) != 1) weight = weight.contiguous();
        targets = targets.contiguous();
        const int64_t N = hidden.size(0), D = hidden.size(1), V = weight.size(0);
        segrl_dtype dt = SEGRL_DTYPE_F32;
        segrl_torch::from_scalar_type(hidden.scalar_type(), &dt);
        auto f32 = hidden.options().dtype(at::kFloat);
        at::Tensor logp = at::empty({N}, f32), ent = at::empty({N}, f32), lse = at::empty({N}, f32);
        size_t bytes = 0;
        ok(segrl_linear_logprobs_workspace_size(seg_device(hidden), N, D, V, dt, &o, 0, &bytes));
        Exec ex(hidden, bytes, SEGRL_CHECKS_FULL);
        segrl_logprob_out out;
        std::memset(&out, 0, sizeof out);
        out.logp = view_of(logp);
        out.entropy = view_of(ent);
        out.lse = view_of(lse);
        out.p_target = segrl_view_none();
        out.sum_p2 = segrl_view_none();
        ok(segrl_linear_logprobs_forward(view_of(hidden), view_of(weight), view_of(targets), &o,
                                         &ex.e, &out));
        ctx->save_for_backward({hidden, weight, targets, lse, ent});
        ctx->saved_data["opts"] = pack(o);
        ctx->set_materialize_grads(false);
        return {logp, ent};
    }

    static variable_list backward(AutogradContext *ctx, variable_list grads) {
        variable_list s = ctx->get_saved_variables();
        const at::Tensor &hidden = s[0], &weight = s[1], &targets = s[2], &lse = s[3], &ent = s[4];
        at::Tensor gl = f32_or_none(grads[0]), ge = f32_or_none(grads[1]);
        const bool want_h = ctx->needs_input_grad(0), want_w = ctx->needs_input_grad(1);
        if ((!want_h && !want_w) || (!gl.defined() && !ge.defined()))
            return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
        segrl_logprob_opts o = unpack<segrl_logprob_opts>(ctx->saved_data["opts"]);
        const int64_t N = hidden.size(0), D = hidden.size(1), V = weight.size(0);
        segrl_dtype dt = SEGRL_DTYPE_F32;
        segrl_torch::from_scalar_type(hidden.scalar_type(), &dt);
        auto f32 = hidden.options().dtype(at::kFloat).requires_grad(false);
        at::Tensor dh = want_h ? at::empty({N, D}, f32) : at::Tensor();
        at::Tensor dw = want_w ? at::empty({V, D}, f32) : at::Tensor();
        size_t bytes = 0;
        ok(segrl_linear_logprobs_workspace_size(seg_device(hidden), N, D, V, dt, &o, 1, &bytes));
        Exec ex(hidden, bytes, SEGRL_CHECKS_SHAPES);
        ok(segrl_linear_logprobs_backward(view_of(hidden), view_of(weight), view_of(targets), view_of(lse),
                                          view_of(ent), view_of(gl), view_of(ge), &o, &ex.e, view_of(dh),
                                          view_of(dw)));
        if (dh.defined()) dh = dh.to(hidden.scalar_type());
        if (dw.defined()) dw = dw.to(weight.scalar_type());
        return {dh, dw, at::Tensor(), at::Tensor()};
    }
};

// ----------------------------------------------------------------------------
// policy loss

// the segrl inputs over the (contiguous) tensors: logp, entropy, values, old_logp, advantages,
// ref_logp, old_values, returns, mask, prob_mask, offsets (in this order)
struct PolicyViews {
    segrl_policy_loss_inputs in;
    segrl_layout layout;
    explicit PolicyViews(const variable_list &t) {
        std::memset(&in, 0, sizeof in);
        in.logp = view_of(t[0]);
        in.entropy = view_of(t[1]);
        in.values = view_of(t[2]);
        in.old_logp = view_of(t[3]);
        in.advantages = view_of(t[4]);
        in.ref_logp = view_of(t[5]);
        in.old_values = view_of(t[6]);
        in.returns = view_of(t[7]);
        in.mask = view_of(t[8]);
        in.prob_mask = view_of(t[9]);
        layout = t[10].defined() ? segrl_layout_packed(view_of(t[10])) : segrl_layout_padded();
    }
};

int64_t batch_of(const variable_list &t) {
    return t[10].defined() ? t[10].numel() - 1 : (t[0].dim() == 2 ? t[0].size(0) : 1);
}

// libtorch 1.13's Function::apply cannot take undefined tensors: an absent input travels as a
// 0-element placeholder and bit i of `present` says whether input i is real
variable_list drop_absent(variable_list t, int64_t present) {
    for (size_t i = 0; i < t.size(); i++)
        if (!((present >> i) & 1)) t[i] = at::Tensor();
    return t;
}

struct PolicyFn : torch::autograd::Function<PolicyFn> {
    static variable_list forward(AutogradContext *ctx, at::Tensor logp, at::Tensor entropy,
                                 at::Tensor values, at::Tensor old_logp, at::Tensor advantages,
                                 at::Tensor ref_logp, at::Tensor old_values, at::Tensor returns,
                                 at::Tensor mask, at::Tensor prob_mask, at::Tensor offsets,
                                 int64_t present, std::string opts, int64_t stats_addr) {
        variable_list saved = {logp, entropy, values, old_logp, advantages, ref_logp,
                               old_values, returns, mask, prob_mask, offsets};
        for (size_t i = 0; i < saved.size(); i++)
            if ((present >> i) & 1) saved[i] = saved[i].contiguous();
        variable_list t = drop_absent(saved, present);
        segrl_policy_loss_opts o = unpack<segrl_policy_loss_opts>(at::IValue(opts));
        PolicyViews pv(t);
        size_t bytes = 0;
        ok(segrl_policy_loss_workspace_size(seg_device(t[0]), batch_of(t), t[0].numel(), &bytes));
        Exec ex(t[0], bytes, SEGRL_CHECKS_FULL);
        at::Tensor loss = at::empty({}, t[0].options().dtype(at::kFloat));
        auto *stats = reinterpret_cast<segrl_policy_loss_stats *>((intptr_t)stats_addr);
        ok(segrl_policy_loss_forward(&pv.layout, &pv.in, &o, &ex.e, scalar_view(loss), stats));
        ctx->save_for_backward(saved);
        ctx->saved_data["opts"] = opts;
        ctx->saved_data["present"] = present;
        return {loss};
    }

    static variable_list backward(AutogradContext *ctx, variable_list grads) {
        variable_list t = drop_absent(ctx->get_saved_variables(), ctx->saved_data["present"].toInt());
        variable_list r(14);
        const bool want[3] = {ctx->needs_input_grad(0) && t[0].defined(),
                              ctx->needs_input_grad(1) && t[1].defined(),
                              ctx->needs_input_grad(2) && t[2].defined()};
        if (!grads[0].defined() || !(want[0] || want[1] || want[2])) return r;
        segrl_policy_loss_opts o = unpack<segrl_policy_loss_opts>(ctx->saved_data["opts"]);
        PolicyViews pv(t);
        at::Tensor gloss = grads[0].to(at::kFloat).contiguous();
        for (int i = 0; i < 3; i++)
            if (want[i]) r[i] = at::empty(t[i].sizes(), t[i].options().requires_grad(false));
        size_t bytes = 0;
        ok(segrl_policy_loss_workspace_size(seg_device(t[0]), batch_of(t), t[0].numel(), &bytes));
        Exec ex(t[0], bytes, SEGRL_CHECKS_SHAPES);
        ok(segrl_policy_loss_backward(&pv.layout, &pv.in, &o, scalar_view(gloss), &ex.e, view_of(r[0]),
                                      view_of(r[1]), view_of(r[2])));
        return r;
    }
};

// ----------------------------------------------------------------------------
// argument checks

// the inputs of PolicyFn: absent ones as 0-element placeholders on `like`'s device
struct PolicyArgs {
    at::Tensor t[11];
    int64_t present = 0;
    PolicyArgs(const segrl_autograd_policy_inputs *in) {
        const segrl_tensor *h[11] = {in->logp,       in->entropy,  in->values,  in->old_logp,
                                     in->advantages, in->ref_logp, in->old_values, in->returns,
                                     in->mask,       in->prob_mask, in->offsets};
        const at::Tensor &like = in->logp->t;
        for (int i = 0; i < 11; i++) {
            if (h[i] && h[i]->t.defined()) {
                t[i] = h[i]->t;
                present |= int64_t(1) << i;
            } else {
                t[i] = at::empty({0}, like.options().requires_grad(false));
            }
        }
    }
};

}  // namespace

#define AUTOGRAD_CATCH                                                                      \
    catch (const SegrlError &e) {                                                           \
        return segrl_set_error(e.status, "%s", e.what());                                   \
    }                                                                                       \
    SEGRL_TORCH_CATCH

extern "C" segrl_status segrl_autograd_logprobs(const segrl_tensor *logits, const segrl_tensor *targets,
                                                const segrl_logprob_opts *opts, segrl_tensor **out_logp,
                                                segrl_tensor **out_entropy) {
    SEGRL_TORCH_TRY("segrl_autograd_logprobs") {
        const char *fn = segrl_torch_fn_;
        if (!logits || !logits->t.defined()) return segrl_set_error(SEGRL_ERR_INVALID, "%s: logits: is NULL", fn);
        if (!targets || !targets->t.defined()) return segrl_set_error(SEGRL_ERR_INVALID, "%s: targets: is NULL", fn);
        if (!out_logp) return segrl_set_error(SEGRL_ERR_INVALID, "%s: out_logp: is NULL", fn);
        const at::Tensor &L = logits->t, &Y = targets->t;
        if (L.dim() < 1 || L.dim() - 1 != Y.dim() || !L.sizes().slice(0, Y.dim()).equals(Y.sizes()))
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: targets: shape must be logits' shape without the last dim",
                                   fn);
        segrl_logprob_opts o = opts ? *opts : segrl_logprob_opts_default();
        at::Tensor L2 = L.reshape({-1, L.size(-1)});
        variable_list r = LogprobFn::apply(L2, Y.reshape({-1}), pack(o));
        segrl_tensor *a = segrl_torch::wrap(r[0].view(Y.sizes()));
        segrl_tensor *b = nullptr;
        if (out_entropy) {
            try {
                b = segrl_torch::wrap(r[1].view(Y.sizes()));
            } catch (...) {
                delete a;
                throw;
            }
        }
        *out_logp = a;
        if (out_entropy) *out_entropy = b;
        return SEGRL_OK;
    }
    AUTOGRAD_CATCH
}

extern "C" segrl_status segrl_autograd_linear_logprobs(const segrl_tensor *hidden, const segrl_tensor *weight,
                                                       const segrl_tensor *targets, const segrl_logprob_opts *opts,
                                                       segrl_tensor **out_logp, segrl_tensor **out_entropy) {
    SEGRL_TORCH_TRY("segrl_autograd_linear_logprobs") {
        const char *fn = segrl_torch_fn_;
        if (!hidden || !hidden->t.defined()) return segrl_set_error(SEGRL_ERR_INVALID, "%s: hidden: is NULL", fn);
        if (!weight || !weight->t.defined()) return segrl_set_error(SEGRL_ERR_INVALID, "%s: weight: is NULL", fn);
        if (!targets || !targets->t.defined()) return segrl_set_error(SEGRL_ERR_INVALID, "%s: targets: is NULL", fn);
        if (!out_logp) return segrl_set_error(SEGRL_ERR_INVALID, "%s: out_logp: is NULL", fn);
        const at::Tensor &H = hidden->t, &W = weight->t, &Y = targets->t;
        if (H.dim() < 1 || H.dim() - 1 != Y.dim() || !H.sizes().slice(0, Y.dim()).equals(Y.sizes()))
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: targets: shape must be hidden's shape without the last dim",
                                   fn);
        if (W.dim() != 2 || W.size(1) != H.size(-1))
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: weight: must be (V, D) with D = hidden's last dim (%lld)",
                                   fn, (long long)H.size(-1));
        segrl_logprob_opts o = opts ? *opts : segrl_logprob_opts_default();
        variable_list r = LinearFn::apply(H.reshape({-1, H.size(-1)}), W, Y.reshape({-1}), pack(o));
        segrl_tensor *a = segrl_torch::wrap(r[0].view(Y.sizes()));
        segrl_tensor *b = nullptr;
        if (out_entropy) {
            try {
                b = segrl_torch::wrap(r[1].view(Y.sizes()));
            } catch (...) {
                delete a;
                throw;
            }
        }
        *out_logp = a;
        if (out_entropy) *out_entropy = b;
        return SEGRL_OK;
    }
    AUTOGRAD_CATCH
}

extern "C" segrl_status segrl_autograd_policy_loss(const segrl_autograd_policy_inputs *in,
                                                   const segrl_policy_loss_opts *opts, segrl_tensor **out_loss,
                                                   segrl_policy_loss_stats *out_stats) {
    SEGRL_TORCH_TRY("segrl_autograd_policy_loss") {
        const char *fn = segrl_torch_fn_;
        if (!in) return segrl_set_error(SEGRL_ERR_INVALID, "%s: in: is NULL", fn);
        if (!out_loss) return segrl_set_error(SEGRL_ERR_INVALID, "%s: out_loss: is NULL", fn);
        if (!in->logp || !in->logp->t.defined()) return segrl_set_error(SEGRL_ERR_INVALID, "%s: in->logp: is NULL", fn);
        segrl_policy_loss_opts o = opts ? *opts : segrl_policy_loss_opts_default();
        segrl_policy_loss_stats st;
        PolicyArgs a(in);
        variable_list r = PolicyFn::apply(a.t[0], a.t[1], a.t[2], a.t[3], a.t[4], a.t[5], a.t[6], a.t[7], a.t[8],
                                          a.t[9], a.t[10], a.present, pack(o), (int64_t)(intptr_t)&st);
        *out_loss = segrl_torch::wrap(r[0]);
        if (out_stats) *out_stats = st;
        return SEGRL_OK;
    }
    AUTOGRAD_CATCH
}
