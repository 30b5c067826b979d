// bench unet's LoRA training step: the adapters it trains, counted by hand, and its option errors.
#include "eval/unet_bench.h"

#include <gtest/gtest.h>

#include "test_util.h"
#include "tiny_models.h"

namespace rewardgen {
namespace {

using testing::throws_error_containing;

UnetBenchOptions tiny_options() {
  UnetBenchOptions o;
  o.batch = 1;
  o.latent_size = 4;
  o.text_tokens = 3;
  o.repeats = 1;
  return o;
}

TEST(UnetBench, LoraStepCountsTheAttentionAdapters) {
  UnetBenchOptions o = tiny_options();
  o.lora_rank = 2;
  const UnetBenchResult r = bench_unet(testing::tiny_unet_config(), o);
  // Four transformer blocks: down (32 ch), two up (32 ch), mid (64 ch); cross-attention width 16.
  // A rank-r adapter of an in→out projection has r·(in + out) weights. At 32 channels, attn1's
  // q, k, v, out: 4·r·64; attn2's q, out: 2·r·64 and k, v: 2·r·(16 + 32) — 480 r in all. At 64
  // channels: 4·r·128 + 2·r·128 + 2·r·(16 + 64) = 928 r. Total 3·480 r + 928 r = 2368 r.
  EXPECT_EQ(r.lora_parameters, 2368 * 2);
  EXPECT_GT(r.train_step_s, 0.0);
  // The best repetition is one of the timed ones: positive and no slower than their mean.
  EXPECT_GT(r.forward_best_s, 0.0);
  EXPECT_LE(r.forward_best_s, r.forward_s * (1 + 1e-9));
  EXPECT_GT(r.train_step_best_s, 0.0);
  EXPECT_LE(r.train_step_best_s, r.train_step_s * (1 + 1e-9));
  EXPECT_GT(r.forward_gflop, 0.0);
}

TEST(UnetBench, FullTrainingCountsNoAdapters) {
  const UnetBenchResult r = bench_unet(testing::tiny_unet_config(), tiny_options());
  EXPECT_EQ(r.lora_parameters, 0);
  EXPECT_GT(r.parameters, 0);
}

TEST(UnetBench, RejectsNoRepeatsNegativeRankAndLoraWithProfile) {
  UnetBenchOptions o = tiny_options();
  o.repeats = 0;  // no timed pass: no mean, no best
  EXPECT_TRUE(throws_error_containing([&] { bench_unet(testing::tiny_unet_config(), o); }, "repeats must be >= 1, got 0"));
  o.repeats = 1;
  o.lora_rank = -1;
  EXPECT_TRUE(throws_error_containing([&] { bench_unet(testing::tiny_unet_config(), o); }, "LoRA rank must be >= 0"));
  o.lora_rank = 2;
  o.profile = true;
  EXPECT_TRUE(throws_error_containing([&] { bench_unet(testing::tiny_unet_config(), o); }, "--profile"));
}

}  // namespace
}  // namespace rewardgen
