#include "models/attention.h"

#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <array>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace rewardgen {
namespace {

// The slow twin: one head at a time, straight from the definition softmax(q kᵀ/√d) v.
at::Tensor attention_per_head(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads) {
  const int64_t d = q.size(2) / heads;
  std::vector<at::Tensor> outs;
  for (int64_t h = 0; h < heads; ++h) {
    const at::Tensor qh = q.slice(2, h * d, (h + 1) * d), kh = k.slice(2, h * d, (h + 1) * d), vh = v.slice(2, h * d, (h + 1) * d);
    outs.push_back(at::softmax(at::matmul(qh, kh.transpose(1, 2)) / std::sqrt(static_cast<double>(d)), -1).matmul(vh));
  }
  return at::cat(outs, 2);
}

TEST(Attention, BatchedHeadsMatchThePerHeadDefinitionIncludingTinyShapes) {
  at::manual_seed(0);
  // Tiny shapes included on purpose: LibTorch 1.13's baddbmm(beta=0) returns garbage for some (docs/models.md).
  for (auto [B, L, S, heads, d] : std::vector<std::array<int64_t, 5>>{{1, 1, 1, 1, 1}, {2, 1, 3, 1, 4}, {1, 4, 4, 1, 4},
                                                                      {3, 5, 7, 2, 3}, {2, 16, 9, 8, 8},
                                                                      {1, 600, 1100, 2, 4},  // blocked queries
                                                                      {4, 256, 256, 4, 8},   // the world UNet's 16x16
                                                                      {2, 77, 16, 2, 40}, {1, 13, 300, 1, 160}}) {
    const at::Tensor q = at::randn({B, L, heads * d}), k = at::randn({B, S, heads * d}), v = at::randn({B, S, heads * d});
    const at::Tensor fast = multi_head_attention(q, k, v, heads);
    EXPECT_TRUE(at::allclose(fast, attention_per_head(q, k, v, heads), 1e-5, 1e-6)) << B << L << S << heads << d;
    EXPECT_TRUE(at::allclose(multi_head_attention(q, k, v, heads, {}, true), fast, 1e-5, 1e-6));
  }
}

TEST(Attention, FusedGradientsEqualTheDefinitionsInDoublePrecision) {
  // fp32 CPU attention without a mask runs the fused kernels (attention_kernels.h) and their own
  // backward; its gradients must be autograd's through softmax(q kᵀ/√d) v computed in double.
  // Shapes: odd widths (padding of d and S to the vector width), one query row, fewer heads than
  // threads (rows split), the world's 256 tokens, SD-like widths 40 and 160.
  at::manual_seed(4);
  for (auto [B, L, S, heads, d] : std::vector<std::array<int64_t, 5>>{{1, 1, 1, 1, 1}, {2, 5, 7, 3, 3}, {1, 37, 9, 1, 8},
                                                                      {3, 256, 256, 2, 8}, {2, 77, 16, 2, 40},
                                                                      {1, 13, 300, 1, 160}}) {
    const at::Tensor q = at::randn({B, L, heads * d}).requires_grad_(), k = at::randn({B, S, heads * d}).requires_grad_(),
                     v = at::randn({B, S, heads * d}).requires_grad_();
    const at::Tensor d_out = at::randn({B, L, heads * d});
    const at::Tensor out = multi_head_attention(q, k, v, heads);
    const auto grads = torch::autograd::grad({out}, {q, k, v}, {d_out});
    const at::Tensor qd = q.detach().to(at::kDouble).requires_grad_(), kd = k.detach().to(at::kDouble).requires_grad_(),
                     vd = v.detach().to(at::kDouble).requires_grad_();
    const at::Tensor expected = attention_per_head(qd, kd, vd, heads);
    const auto expected_grads = torch::autograd::grad({expected}, {qd, kd, vd}, {d_out.to(at::kDouble)});
    EXPECT_TRUE(at::allclose(out.to(at::kDouble), expected, 1e-5, 1e-6)) << B << " " << L << " " << S << " " << d;
    for (int i = 0; i < 3; ++i)
      EXPECT_TRUE(at::allclose(grads[i].to(at::kDouble), expected_grads[i], 1e-4, 1e-5))
          << "gradient " << i << " at " << B << " " << L << " " << S << " " << heads << " " << d << ": max diff "
          << (grads[i].to(at::kDouble) - expected_grads[i]).abs().max().item<double>();
  }
}

TEST(Attention, FusedResultsDoNotDependOnTheThreadCount) {
  // Heads are spread over the threads and, with fewer heads than twice the threads, each head's
  // rows too; every row's arithmetic is the same wherever it runs, so the results are bitwise equal.
  at::manual_seed(6);
  const int previous = at::get_num_threads();
  const at::Tensor q = at::randn({1, 45, 16}).requires_grad_(), k = at::randn({1, 19, 16}).requires_grad_(),
                   v = at::randn({1, 19, 16}).requires_grad_();
  std::vector<std::vector<at::Tensor>> results;
  for (int threads : {1, 2, 5}) {
    at::set_num_threads(threads);
    const at::Tensor out = multi_head_attention(q, k, v, 2);
    std::vector<at::Tensor> r = torch::autograd::grad({out}, {q, k, v}, {at::ones_like(out)});
    r.push_back(out.detach());
    results.push_back(r);
  }
  at::set_num_threads(previous);
  for (size_t run = 1; run < results.size(); ++run)
    for (size_t i = 0; i < 4; ++i) EXPECT_TRUE(at::equal(results[run][i], results[0][i])) << "run " << run << " tensor " << i;
}

TEST(Attention, Bf16InputsGiveBf16OutputsAndGradientsCloseToFp32) {
  // bf16 heads of width 8 run the fused kernels in fp32 (converted in and out), width 40 the unfused
  // bf16 path; both must return bf16 and agree with the fp32 definition to bf16's precision.
  at::manual_seed(7);
  for (int64_t d : {8, 40}) {
    const int64_t B = 2, L = 20, S = 12, heads = 2;
    const at::Tensor q32 = at::randn({B, L, heads * d}), k32 = at::randn({B, S, heads * d}), v32 = at::randn({B, S, heads * d});
    const at::Tensor q = q32.to(at::kBFloat16).requires_grad_(), k = k32.to(at::kBFloat16).requires_grad_(),
                     v = v32.to(at::kBFloat16).requires_grad_();
    const at::Tensor out = multi_head_attention(q, k, v, heads);
    ASSERT_EQ(out.scalar_type(), at::kBFloat16);
    const auto grads = torch::autograd::grad({out.to(at::kFloat).sum()}, {q, k, v});
    const at::Tensor qf = q.detach().to(at::kFloat).requires_grad_(), kf = k.detach().to(at::kFloat).requires_grad_(),
                     vf = v.detach().to(at::kFloat).requires_grad_();
    const at::Tensor expected = attention_per_head(qf, kf, vf, heads);
    const auto expected_grads = torch::autograd::grad({expected.sum()}, {qf, kf, vf});
    EXPECT_TRUE(at::allclose(out.to(at::kFloat), expected, 2e-2, 2e-2)) << "d " << d;
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(grads[i].scalar_type(), at::kBFloat16);
      EXPECT_TRUE(at::allclose(grads[i].to(at::kFloat), expected_grads[i], 5e-2, 5e-2)) << "d " << d << " gradient " << i;
    }
  }
}

TEST(Attention, FusedGradientMatchesFiniteDifferences) {
  // A directional finite difference in double of the definition against the fused gradient's
  // inner product with the same direction: catches a wrong formula that a shared mistake in the
  // reference could hide.
  at::manual_seed(5);
  const int64_t B = 2, L = 6, S = 5, heads = 2, d = 3;
  const at::Tensor q = at::randn({B, L, heads * d}).requires_grad_(), k = at::randn({B, S, heads * d}).requires_grad_(),
                   v = at::randn({B, S, heads * d}).requires_grad_();
  const at::Tensor weight = at::randn({B, L, heads * d});
  const auto grads = torch::autograd::grad({(multi_head_attention(q, k, v, heads) * weight).sum()}, {q, k, v});
  const double eps = 1e-6;
  for (int i = 0; i < 3; ++i) {
    std::vector<at::Tensor> x{q.detach().to(at::kDouble), k.detach().to(at::kDouble), v.detach().to(at::kDouble)};
    const at::Tensor direction = at::randn(x[i].sizes(), x[i].options());
    auto loss = [&](double step) {
      std::vector<at::Tensor> y = x;
      y[i] = x[i] + step * direction;
      return (attention_per_head(y[0], y[1], y[2], heads) * weight.to(at::kDouble)).sum().item<double>();
    };
    const double numeric = (loss(eps) - loss(-eps)) / (2 * eps);
    const double analytic = (grads[i].to(at::kDouble) * direction).sum().item<double>();
    EXPECT_NEAR(analytic, numeric, 1e-4 * std::max(1.0, std::abs(numeric))) << "input " << i;
  }
}

TEST(Geglu, FusedValuesAndGradientEqualTheUnfusedInDoublePrecision) {
  // fp32 CPU runs the fused kernels (geglu_kernels.h) and their own backward; both must match
  // autograd through chunk, exact GELU and mul in double. Widths with a tail (F = 5, 20) and the
  // world's (F = 128); a non-contiguous input (a transposed view) is made contiguous first.
  at::manual_seed(11);
  for (int64_t F : {5, 20, 128}) {
    const at::Tensor x = (2.0 * at::randn({3, 7, 2 * F})).requires_grad_();
    const at::Tensor d_out = at::randn({3, 7, F});
    const at::Tensor out = geglu(x);
    const at::Tensor grad = torch::autograd::grad({out}, {x}, {d_out})[0];
    const at::Tensor xd = x.detach().to(at::kDouble).requires_grad_();
    const at::Tensor expected = unfused_geglu(xd);
    const at::Tensor expected_grad = torch::autograd::grad({expected}, {xd}, {d_out.to(at::kDouble)})[0];
    EXPECT_TRUE(at::allclose(out.to(at::kDouble), expected, 1e-5, 1e-6)) << "F " << F;
    EXPECT_TRUE(at::allclose(grad.to(at::kDouble), expected_grad, 1e-5, 1e-6))
        << "F " << F << ": max diff " << (grad.to(at::kDouble) - expected_grad).abs().max().item<double>();
  }
  const at::Tensor t = at::randn({6, 4}).requires_grad_();  // t.t() is [4, 6], not contiguous
  const at::Tensor grad = torch::autograd::grad({(geglu(t.t()) * at::arange(12).reshape({4, 3})).sum()}, {t})[0];
  const at::Tensor td = t.detach().to(at::kDouble).requires_grad_();
  const at::Tensor expected =
      torch::autograd::grad({(unfused_geglu(td.t()) * at::arange(12).reshape({4, 3})).sum()}, {td})[0];
  EXPECT_TRUE(at::allclose(grad.to(at::kDouble), expected, 1e-5, 1e-6));
}

TEST(Geglu, ResultsDoNotDependOnTheThreadCountAndBf16RoundsTheFp32Results) {
  at::manual_seed(12);
  const int previous = at::get_num_threads();
  const at::Tensor x = at::randn({300, 2 * 40}).requires_grad_();
  std::vector<at::Tensor> outs, grads;
  for (int threads : {1, 2, 3}) {
    at::set_num_threads(threads);
    outs.push_back(geglu(x));
    grads.push_back(torch::autograd::grad({outs.back()}, {x}, {at::ones_like(outs.back())})[0]);
  }
  at::set_num_threads(previous);
  for (size_t run = 1; run < outs.size(); ++run) {
    EXPECT_TRUE(at::equal(outs[run], outs[0])) << "run " << run;
    EXPECT_TRUE(at::equal(grads[run], grads[0])) << "run " << run;
  }
  // bf16 runs the kernels' bf16 rows: the fp32 arithmetic on its values, each result rounded to
  // nearest even as torch converts (equal to the fp32 path converted); double runs the unfused ops.
  const at::Tensor half = x.detach().to(at::kBFloat16).requires_grad_();
  const at::Tensor half_out = geglu(half);
  EXPECT_EQ(half_out.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(half_out, geglu(half.detach().to(at::kFloat)).to(at::kBFloat16)));
  EXPECT_TRUE(at::allclose(half_out.to(at::kFloat), unfused_geglu(half.detach()).to(at::kFloat), 2e-2, 2e-2));
  // The backward as well: the fp32 gradient at the same bf16 values, rounded to nearest even.
  const at::Tensor d_half = at::randn(half_out.sizes()).to(at::kBFloat16);
  const at::Tensor half_grad = torch::autograd::grad({half_out}, {half}, {d_half})[0];
  const at::Tensor single = half.detach().to(at::kFloat).requires_grad_();
  const at::Tensor single_grad = torch::autograd::grad({geglu(single)}, {single}, {d_half.to(at::kFloat)})[0];
  EXPECT_EQ(half_grad.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(half_grad, single_grad.to(at::kBFloat16)));
  const at::Tensor wide = x.detach().to(at::kDouble);
  EXPECT_TRUE(at::equal(geglu(wide), unfused_geglu(wide)));
  EXPECT_THROW(geglu(at::randn({2, 5})), Error);
}

TEST(Attention, BlockedQueriesApplyTheMaskRowsOfTheirBlock) {
  // 600 queries over 1100 keys run in blocks of 262144/1100 = 238 rows; a causal-style mask must
  // follow each block's rows. Compare with the unblocked computation by hand.
  at::manual_seed(2);
  const at::Tensor q = at::randn({1, 600, 4}), k = at::randn({1, 1100, 4}), v = at::randn({1, 1100, 4});
  const at::Tensor mask = at::full({600, 1100}, -std::numeric_limits<float>::infinity()).triu(1);
  const at::Tensor expected = at::softmax(at::matmul(q, k.transpose(1, 2)) / 2.0 + mask, -1).matmul(v);
  EXPECT_TRUE(at::allclose(multi_head_attention(q, k, v, 1, mask), expected, 1e-5, 1e-6));
}

TEST(Attention, HeadGroupsApplyTheMaskOfTheirOwnBatchElement) {
  // 20 batch elements x 4 heads of 256x256 scores run in groups of 2^20 / 65536 = 16 heads, so a
  // group spans several batch elements; a per-element key mask [B, 1, 1, S] (padding) must follow.
  at::manual_seed(3);
  const int64_t B = 20, L = 256, S = 256, heads = 4, d = 2;
  const at::Tensor q = at::randn({B, L, heads * d}), k = at::randn({B, S, heads * d}), v = at::randn({B, S, heads * d});
  at::Tensor mask = at::zeros({B, 1, 1, S});
  for (int64_t b = 0; b < B; ++b) mask[b].narrow(-1, S - 8 * b - 1, 8 * b + 1).fill_(-1e9);  // element b hides its last 8b+1 keys
  const at::Tensor fast = multi_head_attention(q, k, v, heads, mask);
  std::vector<at::Tensor> rows;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t keep = S - 8 * b - 1;  // the keys element b may see
    rows.push_back(attention_per_head(q.narrow(0, b, 1), k.narrow(0, b, 1).narrow(1, 0, keep), v.narrow(0, b, 1).narrow(1, 0, keep), heads));
  }
  EXPECT_TRUE(at::allclose(fast, at::cat(rows, 0), 1e-5, 1e-6));
}

TEST(Attention, SpatialInputWithGroupNormAndResidualAsTheVae) {
  at::manual_seed(1);
  AttentionOptions a{8, 1, 8};
  a.bias = true;
  a.norm_num_groups = 2;
  a.norm_eps = 1e-6;
  a.residual_connection = true;
  const Attention attention(a, ModelOptions{});
  const at::Tensor x = at::randn({2, 8, 3, 3});
  const at::Tensor y = attention.forward(x);
  // By hand: tokens = group_norm(x) as [B, 9, 8]; out = to_out(attn(to_q, to_k, to_v)) back to [B, 8, 3, 3] + x.
  const at::Tensor tokens = attention.group_norm->forward(x).flatten(2).transpose(1, 2);
  const at::Tensor q = attention.to_q->forward(tokens), k = attention.to_k->forward(tokens), v = attention.to_v->forward(tokens);
  const at::Tensor expected = attention.to_out->forward(attention_per_head(q, k, v, 1)).transpose(1, 2).reshape({2, 8, 3, 3}) + x;
  EXPECT_TRUE(at::allclose(y, expected, 1e-5, 1e-6));
  EXPECT_EQ(attention.named_parameters().size(), 10u);  // group_norm, to_q/k/v, to_out.0: weight + bias each
}

}  // namespace
}  // namespace rewardgen
