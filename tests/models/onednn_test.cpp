#include "models/onednn.h"

#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <cstdlib>
#include <vector>

namespace rewardgen {
namespace {

// max |a − b| over max |b|: the error relative to the output's magnitude.
double relative_error(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b).abs().max().item<double>() / b.abs().max().item<double>();
}

struct Case {
  int64_t n, c, h, w, k;
  bool bias;
};

// Values and the gradients of input, weight and bias against ATen's convolution in double.
void expect_matches_double(const Case& c, bool x_requires_grad) {
  const at::Tensor x = at::randn({c.n, c.c, c.h, c.w}).requires_grad_(x_requires_grad);
  const at::Tensor w = (at::randn({c.k, c.c, 3, 3}) / std::sqrt(9.0 * c.c)).requires_grad_();
  const at::Tensor b = c.bias ? at::randn({c.k}).requires_grad_() : at::Tensor();
  const at::Tensor y = convolution(x, w, b, 1, 1);
  std::vector<at::Tensor> inputs{w};
  if (x_requires_grad) inputs.push_back(x);
  if (c.bias) inputs.push_back(b);
  const at::Tensor d_y = at::randn(y.sizes());
  const auto grads = torch::autograd::grad({y}, inputs, {d_y});

  std::vector<at::Tensor> doubles;
  for (const at::Tensor& t : inputs) doubles.push_back(t.detach().to(at::kDouble).requires_grad_());
  const at::Tensor& w64 = doubles[0];
  const at::Tensor x64 = x_requires_grad ? doubles[1] : x.detach().to(at::kDouble);
  const at::Tensor b64 = c.bias ? doubles.back() : at::Tensor();
  const at::Tensor y64 = at::conv2d(x64, w64, b64, {1, 1}, {1, 1});
  const auto grads64 = torch::autograd::grad({y64}, doubles, {d_y.to(at::kDouble)});

  ASSERT_EQ(y.sizes(), y64.sizes());
  // fp32 sums of up to 9·C·(tiles) terms, reordered by the transforms: a few 1e-6 of the magnitude
  // (measured 2–3e-6 at SD's widths); a wrong tap, transform or layout gives O(1).
  EXPECT_LT(relative_error(y, y64), 2e-5) << "output, C=" << c.c << " K=" << c.k;
  for (size_t i = 0; i < grads.size(); ++i)
    EXPECT_LT(relative_error(grads[i], grads64[i]), 2e-5) << "gradient " << i << ", C=" << c.c << " K=" << c.k;
}

TEST(WinogradConvolution, MatchesTheDirectConvolutionInDoubleWithGradients) {
  if (!winograd_available()) GTEST_SKIP() << "no Winograd kernel in this build or on this CPU";
  at::manual_seed(5);
  const int previous = at::get_num_threads();
  at::set_num_threads(2);
  // The world UNet's shapes (channels not a multiple of 16 among them), an odd plane, no bias.
  for (const Case& c : {Case{4, 32, 16, 16, 32, true}, Case{4, 96, 16, 16, 32, true}, Case{8, 64, 8, 8, 64, false},
                        Case{3, 24, 13, 11, 40, true}}) {
    SCOPED_TRACE(::testing::Message() << c.n << "x" << c.c << "x" << c.h << "x" << c.w << " -> " << c.k);
    const at::Tensor probe = at::empty({c.n, c.c, c.h, c.w});
    EXPECT_TRUE(winograd_applies(probe, at::empty({c.k, c.c, 3, 3}), 1, 1));
    EXPECT_TRUE(winograd_runs(probe, at::empty({c.k, c.c, 3, 3}), 1, 1));
    expect_matches_double(c, true);
    expect_matches_double(c, false);  // weight and bias gradients only (a frozen input, as LoRA-free layers see)
  }
  at::set_num_threads(previous);
}

TEST(WinogradConvolution, RunsWhereItPaysAndOnlyThere) {
  const at::Tensor x = at::randn({2, 32, 16, 16}), w = at::randn({32, 32, 3, 3});
  EXPECT_TRUE(winograd_applies(x, w, 1, 1));  // 2·4·4 = 32 tiles
  EXPECT_FALSE(winograd_applies(at::randn({1, 32, 16, 16}), w, 1, 1));  // 16 tiles: the transform does not pay
  EXPECT_FALSE(winograd_applies(x, w, 2, 1));                             // strided (the downsamplers)
  EXPECT_FALSE(winograd_applies(x, w, 1, 0));                             // unpadded
  EXPECT_FALSE(winograd_applies(x, at::randn({32, 32, 1, 1}), 1, 1));     // 1×1 (shortcuts, dense layers)
  EXPECT_FALSE(winograd_applies(x.to(at::kBFloat16), w.to(at::kBFloat16), 1, 1));
  EXPECT_FALSE(winograd_applies(x.to(at::kDouble), w.to(at::kDouble), 1, 1));
  EXPECT_FALSE(winograd_applies(x, at::randn({32, 16, 3, 3}), 1, 1));     // channel mismatch: ATen's error
  if (winograd_available()) {
    EXPECT_TRUE(winograd_runs(x, w, 1, 1));
  }
  // Whatever path it takes, convolution() is at::conv2d's convolution.
  for (int64_t stride : {1, 2}) {
    const at::Tensor y = convolution(x, w, at::Tensor(), stride, 1);
    const at::Tensor expected = at::conv2d(x, w, {}, {stride, stride}, {1, 1});
    EXPECT_TRUE(at::allclose(y, expected, 1e-4, 1e-4)) << "stride " << stride;
  }
  EXPECT_THROW(convolution(x, at::randn({32, 16, 3, 3}), at::Tensor(), 1, 1), c10::Error);
  EXPECT_THROW(convolution(x, w, at::randn({31}), 1, 1), c10::Error);  // a wrong bias: ATen's error, no stray read
}

TEST(OneDnnDense, MatchesLinearInDoubleAndRefusesAWrongBias) {
  if (!onednn_available()) GTEST_SKIP() << "no oneDNN calls in this build";
  at::manual_seed(6);
  const at::Tensor x = at::randn({3, 700, 48}).requires_grad_(), w = at::randn({80, 48}).requires_grad_();
  const at::Tensor b = at::randn({80}).requires_grad_();
  const at::Tensor y = onednn_dense(x, w, b);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{3, 700, 80}));
  const at::Tensor d_y = at::randn(y.sizes());
  const auto grads = torch::autograd::grad({y}, {x, w, b}, {d_y});
  std::vector<at::Tensor> doubles;
  for (const at::Tensor& t : {x, w, b}) doubles.push_back(t.detach().to(at::kDouble).requires_grad_());
  const at::Tensor y64 = at::linear(doubles[0], doubles[1], doubles[2]);
  const auto grads64 = torch::autograd::grad({y64}, doubles, {d_y.to(at::kDouble)});
  EXPECT_LT(relative_error(y, y64), 1e-5);
  for (size_t i = 0; i < grads.size(); ++i) EXPECT_LT(relative_error(grads[i], grads64[i]), 1e-5) << "gradient " << i;
  EXPECT_THROW(onednn_dense(x, w, at::randn({79})), c10::Error);
}

TEST(WinogradConvolution, TheEnvironmentTurnsItOff) {
  if (!winograd_available()) GTEST_SKIP() << "no Winograd kernel in this build or on this CPU";
  const at::Tensor x = at::randn({2, 32, 16, 16}), w = at::randn({32, 32, 3, 3});
  ::setenv("REWARDGEN_WINOGRAD", "0", 1);
  EXPECT_FALSE(winograd_available());
  EXPECT_FALSE(winograd_runs(x, w, 1, 1));
  // ATen's direct kernel: the same numbers as at::conv2d, bit for bit.
  EXPECT_TRUE(at::equal(convolution(x, w, at::Tensor(), 1, 1), at::conv2d(x, w, {}, {1, 1}, {1, 1})));
  ::unsetenv("REWARDGEN_WINOGRAD");
  EXPECT_TRUE(winograd_available());
}

}  // namespace
}  // namespace rewardgen
