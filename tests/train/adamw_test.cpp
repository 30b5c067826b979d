#include "train/adamw.h"

#include <gtest/gtest.h>
#include <torch/optim.h>

#include "test_util.h"

namespace rewardgen {
namespace {

// A fixed quadratic-plus-sine loss so that gradients change from step to step.
at::Tensor loss_of(const at::Tensor& w, const at::Tensor& b) { return (w.sin() * 3 + w * w).sum() + (b * b * b).sum(); }

void compare_with_torch(bool decoupled) {
  at::manual_seed(0);
  const at::Tensor w0 = at::randn({4, 3}), b0 = at::randn({3});
  at::Tensor w1 = w0.clone().requires_grad_(), b1 = b0.clone().requires_grad_();
  at::Tensor w2 = w0.clone().requires_grad_(), b2 = b0.clone().requires_grad_();

  AdamWOptions o;
  o.lr = 0.05;
  o.beta1 = 0.8;
  o.beta2 = 0.95;
  o.eps = 1e-6;
  o.weight_decay = 0.1;
  o.decoupled_weight_decay = decoupled;
  AdamW ours({{"w", w1}, {"b", b1}}, o);
  std::unique_ptr<torch::optim::Optimizer> reference;
  if (decoupled)
    reference = std::make_unique<torch::optim::AdamW>(
        std::vector<at::Tensor>{w2, b2},
        torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay));
  else
    reference = std::make_unique<torch::optim::Adam>(
        std::vector<at::Tensor>{w2, b2},
        torch::optim::AdamOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(o.weight_decay));

  for (int step = 0; step < 6; ++step) {
    ours.zero_grad();
    loss_of(w1, b1).backward();
    ours.step();
    reference->zero_grad();
    loss_of(w2, b2).backward();
    reference->step();
  }
  EXPECT_TRUE(at::allclose(w1, w2, 1e-6, 1e-7)) << (w1 - w2).abs().max();
  EXPECT_TRUE(at::allclose(b1, b2, 1e-6, 1e-7)) << (b1 - b2).abs().max();
  EXPECT_FALSE(at::allclose(w1, w0)) << "the parameters must have moved";
}

TEST(AdamW, MatchesTorchOptimAdamW) { compare_with_torch(true); }
TEST(AdamW, MatchesTorchOptimAdamWithL2) { compare_with_torch(false); }

TEST(AdamW, FirstStepMovesEachCoordinateByLr) {
  // Step 1: m̂ = g, v̂ = g², so Δθ = -lr · g / (|g| + ε) = -lr · sign(g) (ε negligible).
  at::Tensor w = at::tensor({1.0, -2.0, 0.5}, at::kDouble).requires_grad_();
  AdamWOptions o;
  o.lr = 0.1;
  o.eps = 1e-12;
  AdamW opt({{"w", w}}, o);
  (w * at::tensor({3.0, -4.0, 0.25}, at::kDouble)).sum().backward();  // g = (3, -4, 0.25)
  opt.step();
  EXPECT_TRUE(at::allclose(w, at::tensor({0.9, -1.9, 0.4}, at::kDouble), 0, 1e-10)) << w;
}

TEST(AdamW, SavedStateContinuesIdentically) {
  at::manual_seed(1);
  const at::Tensor w0 = at::randn({5});
  at::Tensor a = w0.clone().requires_grad_(), b = w0.clone().requires_grad_();
  AdamW first({{"w", a}}, {});
  for (int i = 0; i < 3; ++i) {
    first.zero_grad();
    (a * a * a).sum().backward();
    first.step();
  }
  TensorMap state;
  first.save_state(state, "opt/");
  EXPECT_EQ(state.at("opt/w.step").item<int64_t>(), 3);
  {
    at::NoGradGuard no_grad;
    b.copy_(a);
  }
  AdamW second({{"w", b}}, {});
  second.load_state(state, "opt/");
  for (AdamW* opt : {&first, &second}) {
    at::Tensor& p = opt == &first ? a : b;
    opt->zero_grad();
    (p * p * p).sum().backward();
    opt->step();
  }
  EXPECT_TRUE(at::equal(a, b));
  state.erase("opt/w.exp_avg");
  EXPECT_TRUE(testing::throws_error_containing([&] { second.load_state(state, "opt/"); }, "missing tensor 'opt/w.exp_avg'"));
}

TEST(ClipGradNorm, ScalesToTheMaximumAndReturnsTheNormBefore) {
  at::Tensor p = at::zeros({2}).requires_grad_(), q = at::zeros({1}).requires_grad_();
  p.mutable_grad() = at::tensor({3.f, 0.f});
  q.mutable_grad() = at::tensor({4.f});
  const NamedTensors params{{"p", p}, {"q", q}};
  EXPECT_NEAR(clip_grad_norm(params, 1.0), 5.0, 1e-6);  // √(3² + 4²)
  EXPECT_NEAR(p.grad()[0].item<float>(), 0.6f, 1e-6);   // 3 · 1/5
  EXPECT_NEAR(q.grad()[0].item<float>(), 0.8f, 1e-6);
  EXPECT_NEAR(clip_grad_norm(params, 10.0), 1.0, 1e-5);  // below the bound: unchanged
  EXPECT_NEAR(q.grad()[0].item<float>(), 0.8f, 1e-6);
  q.mutable_grad() = at::tensor({NAN});
  EXPECT_TRUE(std::isnan(clip_grad_norm(params, 1.0)));
}

}  // namespace
}  // namespace rewardgen
