#include "models/clip_preprocess.h"

#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "test_util.h"

namespace rewardgen {
namespace {

const std::string kFixture = std::string(REWARDGEN_TEST_DATA) + "/rewards/resize.safetensors";

using testing::max_abs_diff;

TEST(BicubicResize, KernelByHand) {
  // a = −0.5: 1 − 2.5x² + 1.5x³ on [0, 1), −0.5(x³ − 5x² + 8x − 4) on [1, 2)
  EXPECT_DOUBLE_EQ(pil_bicubic(0.0), 1.0);
  EXPECT_DOUBLE_EQ(pil_bicubic(0.5), 1 - 2.5 * 0.25 + 1.5 * 0.125);       // 0.5625
  EXPECT_DOUBLE_EQ(pil_bicubic(-1.5), -0.5 * (3.375 - 11.25 + 12 - 4));  // −0.0625
  EXPECT_DOUBLE_EQ(pil_bicubic(1.0), 0.0);
  EXPECT_DOUBLE_EQ(pil_bicubic(2.5), 0.0);
}

TEST(BicubicResize, MatrixByHand) {
  // 4 -> 2: scale 2, support 4, output 0 centred at 1.0 sees inputs 0..3 at kernel positions
  // (x + 0.5 − 1) / 2 = −0.25, 0.25, 0.75, 1.25: weights k(0.25), k(0.25), k(0.75), k(1.25), normalised.
  const at::Tensor r = bicubic_resample_matrix(4, 2);
  const double w[4] = {pil_bicubic(0.25), pil_bicubic(0.25), pil_bicubic(0.75), pil_bicubic(1.25)};
  const double total = w[0] + w[1] + w[2] + w[3];
  for (int x = 0; x < 4; ++x) EXPECT_NEAR(r[0][x].item<double>(), w[x] / total, 1e-15) << x;
  EXPECT_NEAR(r[1][3].item<double>(), w[0] / total, 1e-15);  // mirror image
  // Same size: the identity (k(0) = 1, k(±1) = k(±2) = 0).
  EXPECT_TRUE(at::allclose(bicubic_resample_matrix(5, 5), at::eye(5, at::kDouble), 0, 1e-15));
  // Every row sums to 1 (flat images stay flat).
  EXPECT_TRUE(at::allclose(bicubic_resample_matrix(517, 224).sum(1), at::ones({224}, at::kDouble), 0, 1e-12));
}

// Reference: torch 1.13's interpolate(mode="bicubic", antialias=True) in double, which the fixture
// script checked against PIL's BICUBIC resize of float images.
TEST(BicubicResize, MatchesTorchAndPil) {
  const TensorMap f = SafetensorsFile::open(kFixture).load_all();
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{4, 5}, {10, 12}, {3, 9}, {7, 4}, {2, 2}}) {
    SCOPED_TRACE(str(h, "x", w));
    const at::Tensor expected = f.at(str("out_", h, "x", w));
    EXPECT_LT(max_abs_diff(resize_bicubic_antialias(f.at("input"), h, w), expected), 1e-12);
    EXPECT_LT(max_abs_diff(resize_bicubic_antialias(f.at("input").to(at::kFloat), h, w).to(at::kDouble), expected), 1e-5);
  }
}

TEST(ClipPreprocess, MatchesTheReferencePipeline) {
  const TensorMap f = SafetensorsFile::open(kFixture).load_all();
  ClipPreprocessOptions o;
  o.size = 8;
  // 12x18 -> 8x12 -> crop columns 2..9
  EXPECT_LT(max_abs_diff(clip_preprocess(f.at("pre_input"), o), f.at("pre_8")), 1e-12);
  // 19x10 -> 15x8: margin 7 -> transformers crops from row 3, torchvision from round(3.5) = 4
  EXPECT_LT(max_abs_diff(clip_preprocess(f.at("pre_tall_input"), o), f.at("pre_tall_8_floor")), 1e-12);
  o.torchvision_crop = true;
  EXPECT_LT(max_abs_diff(clip_preprocess(f.at("pre_tall_input"), o), f.at("pre_tall_8_round")), 1e-12);
  EXPECT_GT(max_abs_diff(f.at("pre_tall_8_floor"), f.at("pre_tall_8_round")), 1e-3);  // the rules differ here
}

TEST(ClipPreprocess, NormalisesWithClipMeanStd) {
  ClipPreprocessOptions o;
  o.size = 4;
  const at::Tensor gray = clip_preprocess(at::zeros({1, 3, 6, 6}, at::kDouble), o);  // 0 -> 0.5 in [0, 1]
  EXPECT_NEAR(gray[0][0][1][2].item<double>(), (0.5 - 0.48145466) / 0.26862954, 1e-12);
  EXPECT_NEAR(gray[0][2][3][3].item<double>(), (0.5 - 0.40821073) / 0.27577711, 1e-12);
}

TEST(ClipPreprocess, IsDifferentiable) {
  ClipPreprocessOptions o;
  o.size = 5;
  at::Tensor x = (at::rand({1, 3, 9, 7}, at::kDouble) * 2 - 1).requires_grad_();
  // The output is linear in x: its gradient w.r.t. a pixel is the product of the two matrix entries / std.
  clip_preprocess(x, o)[0][1][2][3].backward();
  // 9x7 -> 6x5 (int(5 · 9 / 7) = 6), crop rows from (6 − 5) / 2 = 0
  const at::Tensor rh = bicubic_resample_matrix(9, 6).narrow(0, 0, 5), rw = bicubic_resample_matrix(7, 5);
  EXPECT_NEAR(x.grad()[0][1][4][3].item<double>(), 0.5 * rh[2][4].item<double>() * rw[3][3].item<double>() / 0.26130258,
              1e-12);
  EXPECT_EQ(x.grad()[0][0].abs().sum().item<double>(), 0.0);
}

}  // namespace
}  // namespace rewardgen
