// Precision: the choice per CPU, the autocast scope, and bf16 models that take and give fp32 at
// their boundaries (close to fp32, not equal: bf16 keeps 8 bits of mantissa).
#include "models/precision.h"

#include <gtest/gtest.h>
#include <ATen/autocast_mode.h>

#include "test_util.h"
#include "tiny_models.h"

namespace rewardgen {
namespace {

TEST(Precision, AutoIsBf16OnlyWhereTheCpuMultipliesBf16) {
  CpuFeatures plain;
  plain.avx2 = plain.fma = plain.avx512f = true;
  CpuFeatures avx512_bf16 = plain, amx = plain;
  avx512_bf16.avx512_bf16 = true;
  amx.amx_bf16 = true;
  EXPECT_EQ(parse_precision("auto", at::kCPU, plain), Precision::fp32);
  EXPECT_EQ(parse_precision("auto", at::kCPU, avx512_bf16), Precision::bf16);
  EXPECT_EQ(parse_precision("auto", at::kCPU, amx), Precision::bf16);
  EXPECT_EQ(parse_precision("auto", c10::Device("cuda:0"), amx), Precision::fp32);
  EXPECT_EQ(parse_precision("fp32", at::kCPU, amx), Precision::fp32);
  EXPECT_EQ(parse_precision("bf16", at::kCPU, plain), Precision::bf16);  // asked for by name: slow but allowed
  EXPECT_TRUE(testing::throws_error_containing([&] { parse_precision("fp16", at::kCPU, plain); }, "unknown precision 'fp16'"));
  EXPECT_EQ(dtype_of(Precision::bf16), at::kBFloat16);
  EXPECT_EQ(to_string(Precision::fp32), "fp32");
}

TEST(Precision, AutocastScopeRunsMatmulsInBf16AndRestores) {
  const at::Tensor a = at::randn({8, 8}), b = at::randn({8, 8});
  {
    AutocastScope fp32(Precision::fp32, at::kCPU);
    EXPECT_EQ(at::mm(a, b).scalar_type(), at::kFloat);
  }
  {
    AutocastScope outer(Precision::bf16, at::kCPU);
    EXPECT_EQ(at::mm(a, b).scalar_type(), at::kBFloat16);
    {
      AutocastScope inner(Precision::bf16, at::kCPU);
      EXPECT_EQ(at::mm(a, b).scalar_type(), at::kBFloat16);
    }
    EXPECT_TRUE(at::autocast::is_cpu_enabled()) << "the inner scope must not switch off the outer one";
  }
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
  EXPECT_EQ(at::mm(a, b).scalar_type(), at::kFloat);
}

TEST(Precision, Bf16UNetTakesFp32InputsAndStaysCloseToFp32) {
  at::manual_seed(3);
  UNet2DConditionModel unet(testing::tiny_unet_config());
  const auto& c = unet.config();
  const at::Tensor x = at::randn({2, c.in_channels, 8, 8}), t = at::tensor({10, 700});
  const at::Tensor context = at::randn({2, 5, c.cross_dim(0)});
  at::NoGradGuard no_grad;
  const at::Tensor reference = unet.forward(x, t, context);
  unet.to(at::kBFloat16);
  const at::Tensor low = unet.forward(x, t, context);
  EXPECT_EQ(low.scalar_type(), at::kBFloat16);
  const double relative = (low.to(at::kFloat) - reference).norm().item<double>() / reference.norm().item<double>();
  EXPECT_LT(relative, 0.05) << "bf16 keeps ~3 significant digits per op";
  EXPECT_GT(relative, 0.0) << "the model must really have run in bf16";
}

}  // namespace
}  // namespace rewardgen
