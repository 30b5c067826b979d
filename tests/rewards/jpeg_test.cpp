#include "rewards/jpeg.h"

#include <gtest/gtest.h>

#include "io/image.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace rewardgen {
namespace {

const std::string kFixture = std::string(REWARDGEN_TEST_DATA) + "/rewards/jpeg.safetensors";

// tools/make_reward_fixtures.py saved each image with PIL, `img.save(buf, format="JPEG", quality=95)`
// (the DDPO/RLCM call, libjpeg-turbo underneath): our sizes must agree byte for byte.
TEST(JpegReward, SizesMatchPilQuality95ByteForByte) {
  const TensorMap f = SafetensorsFile::open(kFixture).load_all();
  for (const char* name : {"flat", "gradient", "noise"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(jpeg_size_bytes(f.at(name)), f.at(std::string(name) + "_bytes").item<int64_t>());
  }
}

TEST(JpegReward, ScoresAreSignedKilobytes) {
  const TensorMap f = SafetensorsFile::open(kFixture).load_all();
  // 16x16 flat and noise cropped to 16x16, as [-1, 1] images
  const at::Tensor flat = from_rgb8(f.at("flat"));
  const at::Tensor noise = from_rgb8(f.at("noise").narrow(0, 0, 16).narrow(1, 0, 16).contiguous());
  const at::Tensor images = at::stack({flat, noise});
  const int64_t flat_bytes = jpeg_size_bytes(to_rgb8(flat)), noise_bytes = jpeg_size_bytes(to_rgb8(noise));
  EXPECT_EQ(flat_bytes, f.at("flat_bytes").item<int64_t>());  // from_rgb8 -> to_rgb8 is exact
  EXPECT_TRUE(at::equal(to_rgb8(images)[1], to_rgb8(noise)));  // the batch form, image by image
  JpegReward compressibility(true, {}), incompressibility(false, {});
  const at::Tensor c = compressibility.score(images, {"", ""});
  const at::Tensor i = incompressibility.score(images, {"", ""});
  EXPECT_DOUBLE_EQ(c[0].item<double>(), static_cast<float>(-flat_bytes / 1000.0));  // kB = bytes / 1000, as DDPO
  EXPECT_DOUBLE_EQ(i[1].item<double>(), static_cast<float>(noise_bytes / 1000.0));
  EXPECT_GT(c[0].item<double>(), c[1].item<double>());  // a flat image compresses better than noise
  EXPECT_GT(noise_bytes, flat_bytes + 200);  // 16x16: 933 vs 634 bytes
  EXPECT_FALSE(compressibility.differentiable());
  EXPECT_EQ(compressibility.name(), "jpeg_compressibility");
}

TEST(JpegReward, QualityChangesTheSizeAndBadInputsAreErrors) {
  const at::Tensor noise = SafetensorsFile::open(kFixture).tensor("noise");
  EXPECT_LT(jpeg_size_bytes(noise, 50), jpeg_size_bytes(noise, 95));
  EXPECT_TRUE(testing::throws_error_containing([&] { jpeg_size_bytes(noise, 0); }, "quality 0 is outside [1, 100]"));
  EXPECT_TRUE(testing::throws_error_containing([&] { jpeg_size_bytes(noise.to(at::kFloat)); }, "expected uint8 [H, W, 3]"));
  JpegReward reward(true, {});
  EXPECT_TRUE(testing::throws_error_containing([&] { reward.score(at::full({1, 3, 8, 8}, 100.0), {""}); },
                                               "reward 'jpeg_compressibility': pixel values span"));
}

}  // namespace
}  // namespace rewardgen
