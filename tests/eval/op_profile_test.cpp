// The per-operator profile: rows for the operators run, self times that add up to the top-level
// operators' totals, backward nodes seen, categories by name.
#include "eval/op_profile.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "test_util.h"

namespace rewardgen {
namespace {

const OpTime* find_row(const std::vector<OpTime>& rows, const std::string& name) {
  const auto it = std::find_if(rows.begin(), rows.end(), [&](const OpTime& r) { return r.name == name; });
  return it == rows.end() ? nullptr : &*it;
}

TEST(OpProfile, CountsCallsAndSelfTimesAddUpToTheTopLevelOperators) {
  const at::Tensor x = at::randn({64, 96}), w = at::randn({128, 96}), b = at::randn({128});
  at::NoGradGuard no_grad;
  OpProfile profile;
  for (int i = 0; i < 3; ++i) at::linear(x, w, b);
  const std::vector<OpTime> rows = profile.operators();
  const OpTime* linear = find_row(rows, "aten::linear");
  ASSERT_NE(linear, nullptr);
  EXPECT_EQ(linear->calls, 3);
  EXPECT_GE(linear->total_s, linear->self_s);
  EXPECT_GT(linear->total_s, 0);
  // linear is the only top-level operator, so every row's self time is part of its total.
  double self_sum = 0;
  for (const OpTime& r : rows) self_sum += r.self_s;
  EXPECT_NEAR(self_sum, linear->total_s, 1e-9 + 1e-9 * linear->total_s);
  EXPECT_GT(rows.size(), 1u) << "linear calls at least one operator (addmm or matmul)";
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_GE(rows[i - 1].self_s, rows[i].self_s) << "largest first";
  profile.reset();
  EXPECT_TRUE(profile.operators().empty());
}

TEST(OpProfile, SeesTheBackwardPassAndGroupsByCategory) {
  const at::Tensor x = at::randn({2, 8, 6, 6});
  const at::Tensor w = at::randn({16, 8, 3, 3}).requires_grad_(true);
  OpProfile profile;
  at::conv2d(x, w, {}, 1, 1).square().sum().backward();
  const std::vector<OpTime> categories = profile.categories();
  EXPECT_NE(find_row(categories, "convolution"), nullptr);
  EXPECT_NE(find_row(categories, "autograd"), nullptr);
  double ops_sum = 0, categories_sum = 0;
  for (const OpTime& r : profile.operators()) ops_sum += r.self_s;
  for (const OpTime& r : categories) categories_sum += r.self_s;
  EXPECT_NEAR(ops_sum, categories_sum, 1e-12 + 1e-9 * ops_sum);
  EXPECT_TRUE(w.grad().defined());
}

TEST(OpProfile, OneAtATimePerThread) {
  OpProfile first;
  EXPECT_TRUE(testing::throws_error_containing([] { OpProfile second; }, "already running"));
}

TEST(OpProfile, CategoriesByOperatorName) {
  EXPECT_EQ(op_category("aten::mkldnn_convolution"), "convolution");
  EXPECT_EQ(op_category("aten::convolution_backward"), "convolution");
  EXPECT_EQ(op_category("aten::native_group_norm"), "normalization");
  EXPECT_EQ(op_category("aten::native_layer_norm_backward"), "normalization");
  EXPECT_EQ(op_category("aten::_softmax"), "softmax");
  EXPECT_EQ(op_category("aten::_softmax_backward_data"), "softmax");
  EXPECT_EQ(op_category("aten::bmm"), "matmul");
  EXPECT_EQ(op_category("aten::addmm"), "matmul");
  EXPECT_EQ(op_category("rewardgen::dense"), "matmul");  // models/onednn.h's own oneDNN calls
  EXPECT_EQ(op_category("rewardgen::dense_backward"), "matmul");
  EXPECT_EQ(op_category("rewardgen::winograd_convolution"), "convolution");
  EXPECT_EQ(op_category("rewardgen::winograd_convolution_backward_weights"), "convolution");
  EXPECT_EQ(op_category("aten::empty"), "allocation");
  EXPECT_EQ(op_category("aten::copy_"), "layout");
  EXPECT_EQ(op_category("aten::cat"), "layout");
  EXPECT_EQ(op_category("aten::transpose"), "view");
  EXPECT_EQ(op_category("aten::sum"), "reduction");
  EXPECT_EQ(op_category("aten::silu_backward"), "elementwise");
  EXPECT_EQ(op_category("aten::add"), "elementwise");
  EXPECT_EQ(op_category("autograd::engine::evaluate_function: ConvolutionBackward0"), "autograd");
  EXPECT_EQ(op_category("ConvolutionBackward0"), "autograd");
  EXPECT_EQ(op_category("torch::autograd::AccumulateGrad"), "autograd");
  EXPECT_EQ(op_category("my_scope"), "other");
}

}  // namespace
}  // namespace rewardgen
