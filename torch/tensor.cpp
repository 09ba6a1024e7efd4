// torch/tensor.cpp — tensor handles: creation, host copies, zero-copy views to and from
// segrl_view, metadata, autograd. Every exported function is one SEGRL_TORCH_TRY body.
#include "internal.hpp"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <cstring>
#include <dlfcn.h>

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

bool to_device(segrl_device d, at::Device *out) {
    if (d.type == SEGRL_DEVICE_CPU) {
        *out = at::Device(at::kCPU);
        return true;
    }
    if (d.type == SEGRL_DEVICE_CUDA && d.index >= 0 && d.index < 128) {
        *out = at::Device(at::kCUDA, (c10::DeviceIndex)d.index);
        return true;
    }
    return false;
}

segrl_device from_device(const at::Device &d) {
    segrl_device r;
    r.type = d.is_cuda() ? SEGRL_DEVICE_CUDA : SEGRL_DEVICE_CPU;
    r.index = d.is_cuda() ? (int32_t)d.index() : 0;
    if (r.index < 0) r.index = 0;
    return r;
}

segrl_status check_device(const char *fn, const char *arg, segrl_device d, at::Device *out) {
    if (!to_device(d, out))
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: %s: unknown device (type %d, index %d)", fn,
                               arg, (int)d.type, (int)d.index);
    if (out->is_cuda() && !at::hasCUDA())
        return segrl_set_error(SEGRL_ERR_NO_DEVICE, "%s: %s: this libtorch has no usable CUDA", fn,
                               arg);
    return SEGRL_OK;
}

}  // namespace segrl_torch

using namespace segrl_torch;

#define NEED(ptr, fn, name)                                                                   \
    do {                                                                                      \
        if (!(ptr)) return segrl_set_error(SEGRL_ERR_INVALID, "%s: %s: is NULL", fn, name);   \
    } while (0)

static segrl_status make_shape(const char *fn, int32_t ndim, const int64_t *shape,
                               std::vector<int64_t> *out) {
    if (ndim < 0 || ndim > 8)
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: ndim: %d not in [0, 8]", fn, (int)ndim);
    if (ndim > 0 && !shape) return segrl_set_error(SEGRL_ERR_INVALID, "%s: shape: is NULL", fn);
    out->assign(shape, shape + ndim);
    for (int32_t i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: shape: dim %d is negative (%lld)", fn,
                                   (int)i, (long long)shape[i]);
    return SEGRL_OK;
}

extern "C" void segrl_tensor_free(segrl_tensor *t) { delete t; }

extern "C" segrl_status segrl_tensor_from_host(const void *data, segrl_dtype dtype, int32_t ndim,
                                               const int64_t *shape, segrl_device device,
                                               segrl_tensor **out) {
    SEGRL_TORCH_TRY(data ? "segrl_tensor_from_host" : "segrl_tensor_zeros") {
        NEED(out, segrl_torch_fn_, "out");
        at::ScalarType st;
        if (!to_scalar_type(dtype, &st))
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: dtype: unknown (%d)", segrl_torch_fn_,
                                   (int)dtype);
        std::vector<int64_t> sh;
        segrl_status s = make_shape(segrl_torch_fn_, ndim, shape, &sh);
        if (s != SEGRL_OK) return s;
        at::Device dev(at::kCPU);
        s = check_device(segrl_torch_fn_, "device", device, &dev);
        if (s != SEGRL_OK) return s;
        at::Tensor t = at::zeros(sh, at::TensorOptions().dtype(st));
        if (data && t.numel() > 0) std::memcpy(t.data_ptr(), data, t.nbytes());
        if (!dev.is_cpu()) t = t.to(dev);
        *out = wrap(std::move(t));
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_zeros(segrl_dtype dtype, int32_t ndim, const int64_t *shape,
                                           segrl_device device, segrl_tensor **out) {
    return segrl_tensor_from_host(NULL, dtype, ndim, shape, device, out);
}

extern "C" segrl_status segrl_tensor_to_host(const segrl_tensor *t, void *dst, size_t dst_bytes) {
    SEGRL_TORCH_TRY("segrl_tensor_to_host") {
        NEED(t, segrl_torch_fn_, "t");
        at::Tensor c = t->t.detach().to(at::kCPU).contiguous();
        if ((size_t)c.nbytes() != dst_bytes)
            return segrl_set_error(SEGRL_ERR_INVALID,
                                   "%s: dst_bytes: %zu, the tensor has %zu bytes", segrl_torch_fn_,
                                   dst_bytes, (size_t)c.nbytes());
        if (dst_bytes == 0) return SEGRL_OK;
        NEED(dst, segrl_torch_fn_, "dst");
        std::memcpy(dst, c.data_ptr(), dst_bytes);
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_from_view(segrl_view view, segrl_tensor **out) {
    SEGRL_TORCH_TRY("segrl_tensor_from_view") {
        NEED(out, segrl_torch_fn_, "out");
        at::ScalarType st;
        if (!to_scalar_type((segrl_dtype)view.dtype, &st))
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: view: unknown dtype (%d)",
                                   segrl_torch_fn_, (int)view.dtype);
        if (view.ndim < 0 || view.ndim > SEGRL_MAX_DIMS)
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: view: ndim %d not in [0, %d]",
                                   segrl_torch_fn_, (int)view.ndim, SEGRL_MAX_DIMS);
        int64_t numel = 1;
        for (int32_t i = 0; i < view.ndim; i++) {
            if (view.shape[i] < 0)
                return segrl_set_error(SEGRL_ERR_INVALID, "%s: view: shape[%d] is negative",
                                       segrl_torch_fn_, (int)i);
            numel *= view.shape[i];
        }
        if (!view.data && numel > 0)
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: view: data is NULL", segrl_torch_fn_);
        at::Device dev(at::kCPU);
        segrl_status s = check_device(segrl_torch_fn_, "view.device", view.device, &dev);
        if (s != SEGRL_OK) return s;
        std::vector<int64_t> sh(view.shape, view.shape + view.ndim);
        std::vector<int64_t> str(view.strides, view.strides + view.ndim);
        at::Tensor t;
        if (numel == 0) {
            t = at::empty(sh, at::TensorOptions().dtype(st).device(dev));
        } else {
            t = at::from_blob(view.data, sh, str, at::TensorOptions().dtype(st).device(dev));
        }
        *out = wrap(std::move(t));
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_view(const segrl_tensor *t, segrl_view *out) {
    SEGRL_TORCH_TRY("segrl_tensor_view") {
        NEED(t, segrl_torch_fn_, "t");
        NEED(out, segrl_torch_fn_, "out");
        const at::Tensor &x = t->t;
        segrl_dtype d;
        if (!from_scalar_type(x.scalar_type(), &d))
            return segrl_set_error(SEGRL_ERR_UNSUPPORTED, "%s: t: dtype %s has no segrl_dtype",
                                   segrl_torch_fn_, c10::toString(x.scalar_type()));
        if (x.dim() > SEGRL_MAX_DIMS)
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: t: %d dims, at most %d",
                                   segrl_torch_fn_, (int)x.dim(), SEGRL_MAX_DIMS);
        if (!x.is_contiguous())
            return segrl_set_error(SEGRL_ERR_INVALID,
                                   "%s: t: not contiguous (use segrl_tensor_contiguous)",
                                   segrl_torch_fn_);
        if (!x.is_cpu() && !x.is_cuda())
            return segrl_set_error(SEGRL_ERR_UNSUPPORTED, "%s: t: device is neither CPU nor CUDA",
                                   segrl_torch_fn_);
        std::vector<int64_t> sh(x.sizes().begin(), x.sizes().end());
        std::vector<int64_t> str(x.strides().begin(), x.strides().end());
        *out = segrl_view_nd(x.numel() ? x.data_ptr() : nullptr, d, from_device(x.device()),
                             (int32_t)x.dim(), sh.data(), str.data());
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_ref(const segrl_tensor *t, segrl_tensor **out) {
    SEGRL_TORCH_TRY("segrl_tensor_ref") {
        NEED(t, segrl_torch_fn_, "t");
        NEED(out, segrl_torch_fn_, "out");
        *out = wrap(t->t);
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_contiguous(const segrl_tensor *t, segrl_tensor **out) {
    SEGRL_TORCH_TRY("segrl_tensor_contiguous") {
        NEED(t, segrl_torch_fn_, "t");
        NEED(out, segrl_torch_fn_, "out");
        *out = wrap(t->t.contiguous());
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_to(const segrl_tensor *t, segrl_dtype dtype,
                                        segrl_device device, segrl_tensor **out) {
    SEGRL_TORCH_TRY("segrl_tensor_to") {
        NEED(t, segrl_torch_fn_, "t");
        NEED(out, segrl_torch_fn_, "out");
        at::ScalarType st;
        if (!to_scalar_type(dtype, &st))
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: dtype: unknown (%d)", segrl_torch_fn_,
                                   (int)dtype);
        at::Device dev(at::kCPU);
        segrl_status s = check_device(segrl_torch_fn_, "device", device, &dev);
        if (s != SEGRL_OK) return s;
        *out = wrap(t->t.to(dev, st));
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_detach(const segrl_tensor *t, segrl_tensor **out) {
    SEGRL_TORCH_TRY("segrl_tensor_detach") {
        NEED(t, segrl_torch_fn_, "t");
        NEED(out, segrl_torch_fn_, "out");
        *out = wrap(t->t.detach());
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_shape(const segrl_tensor *t, int32_t capacity,
                                           int64_t *out_shape, int32_t *out_ndim) {
    SEGRL_TORCH_TRY("segrl_tensor_shape") {
        NEED(t, segrl_torch_fn_, "t");
        NEED(out_ndim, segrl_torch_fn_, "out_ndim");
        if (capacity < 0)
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: capacity: negative", segrl_torch_fn_);
        if (capacity > 0) NEED(out_shape, segrl_torch_fn_, "out_shape");
        int32_t nd = (int32_t)t->t.dim();
        for (int32_t i = 0; i < nd && i < capacity; i++) out_shape[i] = t->t.size(i);
        *out_ndim = nd;
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_numel(const segrl_tensor *t, int64_t *out) {
    SEGRL_TORCH_TRY("segrl_tensor_numel") {
        NEED(t, segrl_torch_fn_, "t");
        NEED(out, segrl_torch_fn_, "out");
        *out = t->t.numel();
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_dtype(const segrl_tensor *t, segrl_dtype *out) {
    SEGRL_TORCH_TRY("segrl_tensor_dtype") {
        NEED(t, segrl_torch_fn_, "t");
        NEED(out, segrl_torch_fn_, "out");
        segrl_dtype d;
        if (!from_scalar_type(t->t.scalar_type(), &d))
            return segrl_set_error(SEGRL_ERR_UNSUPPORTED, "%s: t: dtype %s has no segrl_dtype",
                                   segrl_torch_fn_, c10::toString(t->t.scalar_type()));
        *out = d;
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_device(const segrl_tensor *t, segrl_device *out) {
    SEGRL_TORCH_TRY("segrl_tensor_device") {
        NEED(t, segrl_torch_fn_, "t");
        NEED(out, segrl_torch_fn_, "out");
        *out = from_device(t->t.device());
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_item(const segrl_tensor *t, double *out) {
    SEGRL_TORCH_TRY("segrl_tensor_item") {
        NEED(t, segrl_torch_fn_, "t");
        NEED(out, segrl_torch_fn_, "out");
        if (t->t.numel() != 1)
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: t: has %lld elements, not 1",
                                   segrl_torch_fn_, (long long)t->t.numel());
        *out = t->t.item<double>();
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_set_requires_grad(segrl_tensor *t, int32_t requires_grad) {
    SEGRL_TORCH_TRY("segrl_tensor_set_requires_grad") {
        NEED(t, segrl_torch_fn_, "t");
        if (requires_grad && !at::isFloatingType(t->t.scalar_type()))
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: t: dtype %s cannot require gradients",
                                   segrl_torch_fn_, c10::toString(t->t.scalar_type()));
        if (!t->t.is_leaf())
            return segrl_set_error(SEGRL_ERR_INVALID,
                                   "%s: t: not a leaf (computed by recorded operations)",
                                   segrl_torch_fn_);
        t->t.set_requires_grad(requires_grad != 0);
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_requires_grad(const segrl_tensor *t, int32_t *out) {
    SEGRL_TORCH_TRY("segrl_tensor_requires_grad") {
        NEED(t, segrl_torch_fn_, "t");
        NEED(out, segrl_torch_fn_, "out");
        *out = t->t.requires_grad() ? 1 : 0;
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_backward(segrl_tensor *t, const segrl_tensor *grad) {
    SEGRL_TORCH_TRY("segrl_tensor_backward") {
        NEED(t, segrl_torch_fn_, "t");
        if (!t->t.requires_grad())
            return segrl_set_error(SEGRL_ERR_INVALID,
                                   "%s: t: does not require gradients (no recorded graph)",
                                   segrl_torch_fn_);
        if (!grad && t->t.numel() != 1)
            return segrl_set_error(SEGRL_ERR_INVALID,
                                   "%s: grad: NULL needs a one-element t (t has %lld)",
                                   segrl_torch_fn_, (long long)t->t.numel());
        if (grad && !grad->t.sizes().equals(t->t.sizes()))
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: grad: shape differs from t's",
                                   segrl_torch_fn_);
        if (grad)
            t->t.backward(grad->t);
        else
            t->t.backward();
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_grad(const segrl_tensor *t, segrl_tensor **out) {
    SEGRL_TORCH_TRY("segrl_tensor_grad") {
        NEED(t, segrl_torch_fn_, "t");
        NEED(out, segrl_torch_fn_, "out");
        const at::Tensor &g = t->t.grad();
        *out = g.defined() ? wrap(g) : nullptr;
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_zero_grad(segrl_tensor *t) {
    SEGRL_TORCH_TRY("segrl_tensor_zero_grad") {
        NEED(t, segrl_torch_fn_, "t");
        at::Tensor g = t->t.mutable_grad();
        if (g.defined()) g.detach().zero_();
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_tensor_set_grad(segrl_tensor *t, const segrl_tensor *grad) {
    SEGRL_TORCH_TRY("segrl_tensor_set_grad") {
        const char *fn = segrl_torch_fn_;
        NEED(t, fn, "t");
        if (!t->t.requires_grad())
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: t: does not require gradients", fn);
        if (!grad) {
            t->t.mutable_grad().reset();
            return SEGRL_OK;
        }
        const at::Tensor &g = grad->t;
        if (g.sizes() != t->t.sizes())
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: grad: shape differs from t's", fn);
        if (g.scalar_type() != t->t.scalar_type())
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: grad: dtype %s, t is %s", fn,
                                   c10::toString(g.scalar_type()),
                                   c10::toString(t->t.scalar_type()));
        if (g.device() != t->t.device())
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: grad: on another device than t", fn);
        t->t.mutable_grad() = g.detach();
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" segrl_status segrl_set_grad_enabled(int32_t enabled, int32_t *out_previous) {
    SEGRL_TORCH_TRY("segrl_set_grad_enabled") {
        int32_t prev = at::GradMode::is_enabled() ? 1 : 0;
        at::GradMode::set_enabled(enabled != 0);
        if (out_previous) *out_previous = prev;
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" int32_t segrl_grad_enabled(void) { return at::GradMode::is_enabled() ? 1 : 0; }

extern "C" void segrl_torch_manual_seed(uint64_t seed) {
    try {
        at::manual_seed(seed);
    } catch (...) {
    }
}

extern "C" segrl_status segrl_torch_set_num_threads(int32_t n) {
    SEGRL_TORCH_TRY("segrl_torch_set_num_threads") {
        if (n < 1)
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: n: %d, must be >= 1", segrl_torch_fn_,
                                   (int)n);
        at::set_num_threads(n);
        // a libtorch built on a threaded OpenBLAS (Debian's) runs its matrix products on
        // OpenBLAS's own pool, which at::set_num_threads does not reach
        using set_fn = void (*)(int);
        if (void *f = dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))
            reinterpret_cast<set_fn>(f)(n);
        return SEGRL_OK;
    }
    SEGRL_TORCH_CATCH
}

extern "C" int32_t segrl_torch_num_threads(void) {
    try {
        return (int32_t)at::get_num_threads();
    } catch (...) {
        return 1;
    }
}

extern "C" int32_t segrl_torch_cuda_available(int32_t index) {
    try {
        return at::hasCUDA() && index >= 0 && index < (int32_t)at::getNumGPUs() ? 1 : 0;
    } catch (...) {
        return 0;
    }
}
