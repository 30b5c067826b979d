#include "io/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include "io/atomic_file.h"

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

// A torch.save-like archive (zip) holding `pickle` as its data.pkl.
std::string archive_with_pickle(const std::string& pickle) {
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) {
    out.append(static_cast<const char*>(data), n);
    return n;
  });
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  writer.writeEndOfFile();
  return out;
}

TEST(TorchCheckpoint, MalformedPicklesEndInErrorsNotCrashes) {
  using testing::throws_error_containing;
  // BINPUT on an empty stack: the fuzzer's crash (back() of an empty vector).
  EXPECT_TRUE(throws_error_containing([] { read_torch_checkpoint_bytes(archive_with_pickle(std::string("\x80\x02q\x00.", 5)), "a.pt"); },
                                      "a.pt: malformed pickle (BINPUT on an empty stack"));
  // A dict stored in itself through the memo: {"a": <itself>}; flattening it would recurse forever.
  const std::string self_dict = std::string("\x80\x02}q\x00X\x01\x00\x00\x00", 10) + "ah" + std::string("\x00s.", 3);
  EXPECT_TRUE(throws_error_containing([&] { read_torch_checkpoint_bytes(archive_with_pickle(self_dict), "b.pt"); },
                                      "b.pt: dicts nested more than 64 deep"));
  EXPECT_TRUE(throws_error_containing([] { read_torch_checkpoint_bytes("PK\x03\x04 not really a zip", "c.pt"); },
                                      "c.pt: cannot read the PyTorch checkpoint"));
  EXPECT_TRUE(throws_error_containing([] { read_torch_checkpoint_bytes("plain text", "d.pt"); }, "d.pt: not a zip-format"));
}

TEST(TorchCheckpoint, TheBytesOfAFileReadAsTheFile) {
  expect_fixture_tensors(read_torch_checkpoint_bytes(read_text_file(kData + "pth_tensors.pth"), "memory"));
}

TEST(TorchCheckpoint, ReadTensorFileDispatchesOnExtension) {
  const TensorMap head_st = read_tensor_file(kData + "aesthetic_head.safetensors");
  const TensorMap head_pth = read_tensor_file(kData + "aesthetic_head.pth");
  ASSERT_EQ(head_st.size(), head_pth.size());
  for (const auto& [name, t] : head_st) EXPECT_TRUE(at::equal(t, head_pth.at(name))) << name;
}

}  // namespace
}  // namespace rewardgen
