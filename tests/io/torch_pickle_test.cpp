#include "io/torch_pickle.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace rewardgen {
namespace {

const std::string kData = std::string(REWARDGEN_TEST_DATA) + "/rewards/";

// tools/make_reward_fixtures.py: torch.save of an OrderedDict {f32 = arange(12).reshape(3, 4),
// transposed = f32.t() (same storage), f16 = [0.5, -1.25, 3], i64 = [7, -8, 9], scalar = 2.5 (f64)}.
void expect_fixture_tensors(const TensorMap& t) {
  ASSERT_EQ(t.size(), 5u);
  EXPECT_TRUE(at::equal(t.at("f32"), at::arange(12, at::kFloat).reshape({3, 4})));
  EXPECT_TRUE(at::equal(t.at("transposed"), at::arange(12, at::kFloat).reshape({3, 4}).t()));
  EXPECT_EQ(t.at("f16").scalar_type(), at::kHalf);
  EXPECT_TRUE(at::equal(t.at("f16").to(at::kFloat), at::tensor({0.5f, -1.25f, 3.0f})));
  EXPECT_TRUE(at::equal(t.at("i64"), at::tensor({7, -8, 9}, at::kLong)));
  EXPECT_EQ(t.at("scalar").dim(), 0);
  EXPECT_DOUBLE_EQ(t.at("scalar").item<double>(), 2.5);
}

TEST(TorchCheckpoint, ReadsAnOrderedDictOfTensors) { expect_fixture_tensors(read_torch_checkpoint(kData + "pth_tensors.pth")); }

TEST(TorchCheckpoint, UnwrapsStateDictAndSkipsBookkeeping) {
  expect_fixture_tensors(read_torch_checkpoint(kData + "pth_wrapped.pth"));  // {"state_dict": ..., "epoch": 3}
}

TEST(TorchCheckpoint, ClearErrors) {
  EXPECT_TRUE(testing::throws_error_containing([] { read_torch_checkpoint(kData + "pth_legacy.pth"); },
                                               "pth_legacy.pth: not a zip-format PyTorch checkpoint"));
  EXPECT_TRUE(testing::throws_error_containing([] { read_torch_checkpoint(kData + "missing.pth"); },
                                               "cannot open '" + kData + "missing.pth'"));
  // A zip that is not a torch archive (a safetensors file is not a zip; use the jpeg fixture's bytes).
  EXPECT_TRUE(testing::throws_error_containing([] { read_torch_checkpoint(kData + "jpeg.safetensors"); }, "not a zip-format"));
}

TEST(TorchCheckpoint, ReadTensorFileDispatchesOnExtension) {
  const TensorMap head_st = read_tensor_file(kData + "aesthetic_head.safetensors");
  const TensorMap head_pth = read_tensor_file(kData + "aesthetic_head.pth");
  ASSERT_EQ(head_st.size(), head_pth.size());
  for (const auto& [name, t] : head_st) EXPECT_TRUE(at::equal(t, head_pth.at(name))) << name;
}

}  // namespace
}  // namespace rewardgen
