/* test-torch-tensor — the tensor handles of the ATen bridge, through the C header only:
 * host copies in and out for every dtype, zero-copy views both ways (same memory, strides kept,
 * contiguity and dtype checked), metadata, conversions, autograd flags, errors with messages. */
#include "harness.h"

#include "segrl/core.h"
#include "segrl/torch.h"

#define OK(expr)                                                                             \
    do {                                                                                     \
        segrl_status st_ = (expr);                                                           \
        if (st_ != SEGRL_OK) {                                                               \
            printf("FAIL %s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr,                  \
                   segrl_status_str(st_), segrl_last_error());                               \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

static void test_host_round_trip(void) {
    segrl_dtype dts[6] = {SEGRL_DTYPE_F32, SEGRL_DTYPE_F16, SEGRL_DTYPE_BF16,
                          SEGRL_DTYPE_I32, SEGRL_DTYPE_I64, SEGRL_DTYPE_U8};
    int64_t shape[3] = {2, 3, 5};
    unsigned char src[2 * 3 * 5 * 8], dst[2 * 3 * 5 * 8];
    h_seed(1);
    for (size_t i = 0; i < sizeof src; i++) src[i] = (unsigned char)h_next();
    for (int d = 0; d < 6; d++) {
        size_t bytes = 30 * segrl_dtype_size(dts[d]);
        /* f16/bf16/f32 bit patterns may be NaN: copies must still keep the bits */
        segrl_tensor *t;
        OK(segrl_tensor_from_host(src, dts[d], 3, shape, segrl_cpu(), &t));
        memset(dst, 0, sizeof dst);
        OK(segrl_tensor_to_host(t, dst, bytes));
        CHECK(memcmp(src, dst, bytes) == 0, "%s round trip", segrl_dtype_name(dts[d]));
        segrl_dtype got;
        OK(segrl_tensor_dtype(t, &got));
        CHECK(got == dts[d], "dtype %s", segrl_dtype_name(dts[d]));
        int64_t sh[8], n;
        int32_t nd;
        OK(segrl_tensor_shape(t, 8, sh, &nd));
        CHECK(nd == 3 && sh[0] == 2 && sh[1] == 3 && sh[2] == 5, "shape");
        OK(segrl_tensor_shape(t, 0, NULL, &nd));
        CHECK(nd == 3, "ndim with capacity 0");
        OK(segrl_tensor_numel(t, &n));
        CHECK(n == 30, "numel");
        segrl_device dev;
        OK(segrl_tensor_device(t, &dev));
        CHECK(dev.type == SEGRL_DEVICE_CPU && dev.index == 0, "device");
        CHECK(segrl_tensor_to_host(t, dst, bytes - 1) == SEGRL_ERR_INVALID &&
                  strstr(segrl_last_error(), "segrl_tensor_to_host: dst_bytes"),
              "wrong dst size: %s", segrl_last_error());
        segrl_tensor_free(t);
    }
    segrl_tensor *z;
    OK(segrl_tensor_zeros(SEGRL_DTYPE_F32, 2, shape, segrl_cpu(), &z));
    float zf[6] = {1, 1, 1, 1, 1, 1};
    OK(segrl_tensor_to_host(z, zf, sizeof zf));
    CHECK(zf[0] == 0 && zf[5] == 0, "zeros");
    double item;
    CHECK(segrl_tensor_item(z, &item) == SEGRL_ERR_INVALID, "item of 6 elements refused");
    segrl_tensor_free(z);
    float one = 2.5f;
    OK(segrl_tensor_from_host(&one, SEGRL_DTYPE_F32, 0, NULL, segrl_cpu(), &z));
    OK(segrl_tensor_item(z, &item));
    CHECK(item == 2.5, "item of a scalar");
    segrl_tensor_free(z);
    int64_t neg[1] = {-1};
    CHECK(segrl_tensor_from_host(NULL, SEGRL_DTYPE_F32, 1, neg, segrl_cpu(), &z) ==
                  SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "segrl_tensor_zeros: shape: dim 0 is negative"),
          "negative dim: %s", segrl_last_error());
    CHECK(segrl_tensor_from_host(NULL, (segrl_dtype)42, 1, shape, segrl_cpu(), &z) ==
              SEGRL_ERR_INVALID,
          "unknown dtype");
    CHECK(segrl_tensor_from_host(NULL, SEGRL_DTYPE_F32, 9, shape, segrl_cpu(), &z) ==
              SEGRL_ERR_INVALID,
          "ndim 9");
    if (!segrl_built_with_cuda()) {
        segrl_status st = segrl_tensor_zeros(SEGRL_DTYPE_F32, 1, shape, segrl_cuda(0), &z);
        CHECK(st == SEGRL_ERR_NO_DEVICE || st == SEGRL_OK, "CUDA without CUDA: %s",
              segrl_last_error());
        if (st == SEGRL_OK) segrl_tensor_free(z);
    }
}

static void test_views(void) {
    /* view -> tensor: same memory; writes through the host array show in the tensor */
    float buf[12];
    for (int i = 0; i < 12; i++) buf[i] = (float)i;
    segrl_view v = segrl_view_2d(buf, SEGRL_DTYPE_F32, segrl_cpu(), 3, 4);
    segrl_tensor *t;
    OK(segrl_tensor_from_view(v, &t));
    segrl_view back;
    OK(segrl_tensor_view(t, &back));
    CHECK(back.data == (void *)buf && back.ndim == 2 && back.shape[0] == 3 && back.shape[1] == 4 &&
              back.strides[0] == 4 && back.strides[1] == 1 && back.dtype == SEGRL_DTYPE_F32,
          "tensor -> view gives the same memory and geometry");
    buf[5] = 42.0f;
    float out[12];
    OK(segrl_tensor_to_host(t, out, sizeof out));
    CHECK(out[5] == 42.0f, "zero-copy: host writes are visible");
    segrl_tensor_free(t);

    /* a strided view (every other column): the tensor keeps the strides, is not contiguous,
     * so segrl_tensor_view refuses it until segrl_tensor_contiguous */
    int64_t shape[2] = {3, 2}, strides[2] = {4, 2};
    segrl_view sv = segrl_view_nd(buf, SEGRL_DTYPE_F32, segrl_cpu(), 2, shape, strides);
    OK(segrl_tensor_from_view(sv, &t));
    float six[6];
    OK(segrl_tensor_to_host(t, six, sizeof six));
    CHECK(six[0] == 0 && six[1] == 2 && six[2] == 4 && six[3] == 6 && six[4] == 8 &&
              six[5] == 10,
          "strided view read");
    segrl_view bad;
    memset(&bad, 0x5a, sizeof bad);
    segrl_view bad_copy = bad;
    CHECK(segrl_tensor_view(t, &bad) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "not contiguous") && !memcmp(&bad, &bad_copy, sizeof bad),
          "non-contiguous tensor refused, output untouched: %s", segrl_last_error());
    segrl_tensor *c;
    OK(segrl_tensor_contiguous(t, &c));
    OK(segrl_tensor_view(c, &back));
    CHECK(back.data != (void *)buf && ((float *)back.data)[3] == 6, "contiguous copy");
    segrl_tensor_free(c);
    segrl_tensor_free(t);

    /* conversions: f32 -> bf16 -> f32 rounds to 8 bits of mantissa; f64 has no segrl view */
    OK(segrl_tensor_from_view(v, &t));
    segrl_tensor *b16, *f32;
    OK(segrl_tensor_to(t, SEGRL_DTYPE_BF16, segrl_cpu(), &b16));
    OK(segrl_tensor_to(b16, SEGRL_DTYPE_F32, segrl_cpu(), &f32));
    OK(segrl_tensor_to_host(f32, out, sizeof out));
    CHECK(out[11] == 11.0f && out[5] == 42.0f, "bf16 keeps small integers");
    segrl_tensor *r;
    OK(segrl_tensor_ref(t, &r));
    segrl_tensor_free(t);
    OK(segrl_tensor_view(r, &back));
    CHECK(back.data == (void *)buf, "a reference outlives the first handle");
    segrl_tensor_free(r);
    segrl_tensor_free(b16);
    segrl_tensor_free(f32);

    /* bad views */
    segrl_view nv = segrl_view_1d(NULL, SEGRL_DTYPE_F32, segrl_cpu(), 3);
    CHECK(segrl_tensor_from_view(nv, &t) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "data is NULL"),
          "NULL data: %s", segrl_last_error());
    segrl_view empty = segrl_view_1d(NULL, SEGRL_DTYPE_I64, segrl_cpu(), 0);
    OK(segrl_tensor_from_view(empty, &t));
    int64_t n;
    OK(segrl_tensor_numel(t, &n));
    CHECK(n == 0, "empty view");
    segrl_tensor_free(t);
    CHECK(segrl_tensor_view(NULL, &back) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "segrl_tensor_view: t: is NULL"),
          "NULL tensor: %s", segrl_last_error());
}

static void test_autograd_flags(void) {
    float x[4] = {1, 2, 3, 4};
    int64_t sh[1] = {4};
    segrl_tensor *t, *g;
    OK(segrl_tensor_from_host(x, SEGRL_DTYPE_F32, 1, sh, segrl_cpu(), &t));
    int32_t rg = 7;
    OK(segrl_tensor_requires_grad(t, &rg));
    CHECK(rg == 0, "fresh tensors do not require grad");
    OK(segrl_tensor_set_requires_grad(t, 1));
    OK(segrl_tensor_requires_grad(t, &rg));
    CHECK(rg == 1, "requires grad set");
    OK(segrl_tensor_grad(t, &g));
    CHECK(g == NULL, "no grad before backward");
    /* backward with an incoming gradient on a leaf: the leaf's grad is that gradient */
    float gin[4] = {0.5f, -1, 2, 0};
    segrl_tensor *gt;
    OK(segrl_tensor_from_host(gin, SEGRL_DTYPE_F32, 1, sh, segrl_cpu(), &gt));
    OK(segrl_tensor_backward(t, gt));
    OK(segrl_tensor_grad(t, &g));
    float got[4];
    OK(segrl_tensor_to_host(g, got, sizeof got));
    CHECK(!memcmp(got, gin, sizeof got), "leaf gradient");
    segrl_tensor_free(g);
    OK(segrl_tensor_backward(t, gt));
    OK(segrl_tensor_grad(t, &g));
    OK(segrl_tensor_to_host(g, got, sizeof got));
    CHECK(got[0] == 1.0f && got[2] == 4.0f, "gradients accumulate");
    segrl_tensor_free(g);
    OK(segrl_tensor_zero_grad(t));
    OK(segrl_tensor_grad(t, &g));
    OK(segrl_tensor_to_host(g, got, sizeof got));
    CHECK(got[0] == 0 && got[2] == 0, "zero_grad");
    segrl_tensor_free(g);
    /* set_grad: a given gradient is shared, later backward passes accumulate into it */
    {
        float gv[4] = {10, 20, 30, 40};
        int64_t s4[1] = {4};
        segrl_tensor *ng, *bad, *g2;
        OK(segrl_tensor_from_host(gv, SEGRL_DTYPE_F32, 1, s4, segrl_cpu(), &ng));
        OK(segrl_tensor_set_grad(t, ng));
        OK(segrl_tensor_backward(t, gt));
        OK(segrl_tensor_to_host(ng, got, sizeof got));
        CHECK(got[0] == 10 + gin[0] && got[3] == 40 + gin[3], "set_grad shares memory: %g %g",
              (double)got[0], (double)got[3]);
        OK(segrl_tensor_set_grad(t, NULL));
        OK(segrl_tensor_grad(t, &g2));
        CHECK(g2 == NULL, "set_grad(NULL) drops the gradient");
        int64_t s3[1] = {3};
        OK(segrl_tensor_zeros(SEGRL_DTYPE_F32, 1, s3, segrl_cpu(), &bad));
        CHECK(segrl_tensor_set_grad(t, bad) == SEGRL_ERR_INVALID &&
                  strstr(segrl_last_error(), "grad: shape"),
              "set_grad shape mismatch: %s", segrl_last_error());
        CHECK(segrl_tensor_set_grad(bad, ng) == SEGRL_ERR_INVALID &&
                  strstr(segrl_last_error(), "t: does not require"),
              "set_grad on a tensor without gradients: %s", segrl_last_error());
        segrl_tensor_free(bad);
        segrl_tensor_free(ng);
    }
    CHECK(segrl_tensor_backward(t, NULL) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "one-element"),
          "backward without grad on 4 elements: %s", segrl_last_error());
    segrl_tensor *d;
    OK(segrl_tensor_detach(t, &d));
    OK(segrl_tensor_requires_grad(d, &rg));
    CHECK(rg == 0, "detach");
    segrl_tensor_free(d);
    segrl_tensor_free(gt);
    segrl_tensor_free(t);
    int32_t ix[2] = {1, 2};
    int64_t s2[1] = {2};
    OK(segrl_tensor_from_host(ix, SEGRL_DTYPE_I32, 1, s2, segrl_cpu(), &t));
    CHECK(segrl_tensor_set_requires_grad(t, 1) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "cannot require gradients"),
          "integer tensors cannot require grad: %s", segrl_last_error());
    segrl_tensor_free(t);
    segrl_tensor_free(NULL);
}

int main(void) {
    test_host_round_trip();
    test_views();
    test_autograd_flags();
    return h_finish();
}
