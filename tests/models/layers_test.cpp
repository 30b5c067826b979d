#include "models/layers.h"

#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <string>

#include "eval/op_profile.h"
#include "models/onednn.h"

namespace rewardgen {
namespace {

int64_t calls(const OpProfile& profile, const std::string& op) {
  for (const OpTime& t : profile.operators())
    if (t.name == op) return t.calls;
  return 0;
}

// The operator an fp32 CPU dense above kDenseConvMinMacs runs, forward and backward: our own oneDNN
// matmuls where this build has them (models/onednn.h), else ATen's 1×1 convolution through oneDNN.
const char* dense_forward_op() { return onednn_available() ? "rewardgen::dense" : "aten::mkldnn_convolution"; }
const char* dense_backward_op() { return onednn_available() ? "rewardgen::dense_backward" : "aten::convolution_backward"; }

TEST(Dense, OneDnnPathEqualsLinearWithGradients) {
  // Above kDenseConvMinMacs an fp32 CPU dense runs oneDNN (our matmul, or ATen's 1×1 convolution
  // with 2 threads whatever the row count): values and the gradients of input, weight and bias must
  // be at::linear's in double, for a 3-D input, without a bias, and for a non-contiguous input (a
  // transposed view).
  if (!at::hasMKLDNN()) GTEST_SKIP() << "LibTorch without oneDNN: dense is at::linear";
  at::manual_seed(21);
  const int previous = at::get_num_threads();
  at::set_num_threads(2);
  struct Case {
    std::vector<int64_t> shape;
    int64_t out;
    bool bias, transposed;
  };
  for (const Case& c : {Case{{32, 256, 32}, 256, true, false}, Case{{4, 77, 96}, 640, false, false},
                        Case{{1000, 64}, 96, true, true}}) {
    const at::Tensor base = at::randn(c.shape);
    const at::Tensor x = (c.transposed ? base.t().contiguous().t() : base).requires_grad_();
    const int64_t in = c.shape.back();
    ASSERT_GE(static_cast<double>(x.numel()) * c.out, kDenseConvMinMacs);
    const at::Tensor w = at::randn({c.out, in}).requires_grad_();
    const at::Tensor b = c.bias ? at::randn({c.out}).requires_grad_() : at::Tensor();
    OpProfile profile;
    const at::Tensor y = dense(x, w, b);
    EXPECT_EQ(calls(profile, dense_forward_op()), 1);
    std::vector<int64_t> expected_shape = c.shape;
    expected_shape.back() = c.out;
    ASSERT_EQ(y.sizes().vec(), expected_shape);
    const at::Tensor d_y = at::randn(y.sizes());
    std::vector<at::Tensor> inputs{x, w};
    if (c.bias) inputs.push_back(b);
    const auto grads = torch::autograd::grad({y}, inputs, {d_y});
    std::vector<at::Tensor> doubles;
    for (const at::Tensor& t : inputs) doubles.push_back(t.detach().to(at::kDouble).requires_grad_());
    const at::Tensor y64 = at::linear(doubles[0], doubles[1], c.bias ? doubles[2] : at::Tensor());
    const auto grads64 = torch::autograd::grad({y64}, doubles, {d_y.to(at::kDouble)});
    EXPECT_TRUE(at::allclose(y.to(at::kDouble), y64, 1e-5, 1e-4));
    for (size_t i = 0; i < grads.size(); ++i)
      EXPECT_TRUE(at::allclose(grads[i].to(at::kDouble), grads64[i], 1e-5, 1e-3))
          << "gradient " << i << ": max diff " << (grads[i].to(at::kDouble) - grads64[i]).abs().max().item<double>();
  }
  at::set_num_threads(previous);
}

TEST(Dense, OneDnnRunsOnlyAboveTheThresholdInFp32) {
  at::manual_seed(23);
  if (!at::hasMKLDNN()) GTEST_SKIP() << "LibTorch without oneDNN: dense is at::linear";
  const at::Tensor x = at::randn({8192, 32}).requires_grad_(), w = at::randn({32, 32}).requires_grad_();
  const int previous = at::get_num_threads();
  for (int threads : {1, 2}) {  // ATen's choice of oneDNN depends on the thread count
    at::set_num_threads(threads);
    OpProfile profile;
    const at::Tensor y = dense(x, w, {});
    torch::autograd::grad({y.sum()}, {x, w});
    EXPECT_EQ(calls(profile, dense_forward_op()), 1) << threads << " threads";
    EXPECT_EQ(calls(profile, dense_backward_op()), 1) << threads << " threads";
    EXPECT_EQ(calls(profile, "aten::_slow_conv2d_forward"), 0) << threads << " threads";
  }
  at::set_num_threads(1);  // 4098 rows: 2 images, one thread -> ATen's fallback, so at::linear
  {                         // (our matmul takes any row count)
    OpProfile profile;
    dense(at::randn({4098, 32}), w, {});
    EXPECT_EQ(calls(profile, "aten::convolution"), 0);
    EXPECT_EQ(calls(profile, "rewardgen::dense"), onednn_available() ? 1 : 0);
  }
  at::set_num_threads(previous);
  {
    OpProfile profile;
    dense(x.narrow(0, 0, 16), w, {});  // 16·32·32 multiply-adds
    dense(x.to(at::kDouble), w.to(at::kDouble), {});
    EXPECT_EQ(calls(profile, "aten::mkldnn_convolution"), 0);
    EXPECT_EQ(calls(profile, "rewardgen::dense"), 0);
  }
}

TEST(Dense, SmallProductsAndOtherDtypesRunAtLinear) {
  at::manual_seed(22);
  const at::Tensor x = at::randn({16, 32}), w = at::randn({8, 32}), b = at::randn({8});
  EXPECT_TRUE(at::equal(dense(x, w, b), at::linear(x, w, b)));  // 4096 multiply-adds: the GEMM
  const at::Tensor xd = at::randn({512, 256}, at::kDouble), wd = at::randn({128, 256}, at::kDouble);
  EXPECT_TRUE(at::equal(dense(xd, wd, {}), at::linear(xd, wd, {})));  // double: at::linear itself
}

}  // namespace
}  // namespace rewardgen
