#include "models/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

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
                                                                      {1, 600, 1100, 2, 4}}) {  // blocked queries
    const at::Tensor q = at::randn({B, L, heads * d}), k = at::randn({B, S, heads * d}), v = at::randn({B, S, heads * d});
    const at::Tensor fast = multi_head_attention(q, k, v, heads);
    EXPECT_TRUE(at::allclose(fast, attention_per_head(q, k, v, heads), 1e-5, 1e-6)) << B << L << S << heads << d;
    EXPECT_TRUE(at::allclose(multi_head_attention(q, k, v, heads, {}, true), fast, 1e-5, 1e-6));
  }
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
