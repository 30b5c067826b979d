#include "models/flops.h"

#include <gtest/gtest.h>

#include "models/attention.h"
#include "models/unet_2d_condition.h"

namespace rewardgen {
namespace {

TEST(Flops, LayersCountTheirMatrixProductsOnlyInsideAScope) {
  const Linear linear(8, 3, true, ModelOptions{});
  const Conv2d conv(4, 6, 3, 1, 1, true, ModelOptions{});
  FlopCounter counter;
  linear.forward(at::randn({2, 5, 8}));  // outside any scope: not counted
  EXPECT_EQ(counter.flops, 0);
  {
    FlopCountScope scope(counter);
    linear.forward(at::randn({2, 5, 8}));                 // 2 · (2·5 tokens) · 8 · 3 = 480
    conv.forward(at::randn({1, 4, 7, 7}));                // 2 · (4·3·3) · (6·7·7 outputs) = 21168
    multi_head_attention(at::randn({2, 5, 12}), at::randn({2, 9, 12}), at::randn({2, 9, 12}), 3);  // 2·2·(2·5·9·12) = 4320
  }
  EXPECT_DOUBLE_EQ(counter.flops, 480 + 21168 + 4320);
  linear.forward(at::randn({1, 8}));
  EXPECT_DOUBLE_EQ(counter.flops, 480 + 21168 + 4320);  // scope ended
}

TEST(Flops, TheSd15FifthWidthUnetMatchesTheDesignFigure) {
  // docs/performance.md: SD1.5 layout at 1/5 width, batch 2, 32×32 latents, 77 tokens: ≈18.1 GFLOP per forward.
  UNet2DConditionConfig c;
  c.block_out_channels = {64, 128, 256, 256};
  c.cross_attention_dim = {768};
  const UNet2DConditionModel unet(c);
  FlopCounter counter;
  {
    at::NoGradGuard no_grad;
    FlopCountScope scope(counter);
    unet.forward(at::randn({2, 4, 32, 32}), at::tensor({1, 500}), at::randn({2, 77, 768}));
  }
  EXPECT_NEAR(counter.flops / 1e9, 18.1, 0.05);
}

}  // namespace
}  // namespace rewardgen
