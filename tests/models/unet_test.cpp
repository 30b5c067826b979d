#include <gtest/gtest.h>

#include "models/unet_2d_condition.h"
#include "test_util.h"
#include "tiny_models.h"

namespace rewardgen {
namespace {

using testing::throws_error_containing;

using testing::on_meta;

std::map<std::string, std::vector<int64_t>> shapes(const torch::nn::Module& m) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& p : m.named_parameters(true)) out[p.key()] = p.value().sizes().vec();
  return out;
}

UNet2DConditionConfig sd15_unet() {
  UNet2DConditionConfig c;  // diffusers' defaults are SD 1.x's layout
  c.cross_attention_dim = {768};
  return c;
}

TEST(UNet2DConditionModel, Sd15ParameterCountAndNamesMatchDiffusers) {
  const UNet2DConditionModel unet(sd15_unet(), on_meta());
  // diffusers docs (ModelMixin.num_parameters example): UNet2DConditionModel of
  // runwayml/stable-diffusion-v1-5 -> 859520964 parameters, in 686 tensors.
  EXPECT_EQ(parameter_count(unet), 859520964);
  const auto s = shapes(unet);
  EXPECT_EQ(s.size(), 686u);
  const std::map<std::string, std::vector<int64_t>> expected{
      {"conv_in.weight", {320, 4, 3, 3}},
      {"time_embedding.linear_1.weight", {1280, 320}},
      {"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight", {320, 320}},
      {"down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight", {2560, 320}},
      {"down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight", {320, 1280}},
      {"down_blocks.0.downsamplers.0.conv.weight", {320, 320, 3, 3}},
      {"down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight", {640, 768}},
      {"down_blocks.1.resnets.0.conv_shortcut.weight", {640, 320, 1, 1}},
      {"mid_block.attentions.0.proj_in.weight", {1280, 1280, 1, 1}},
      {"mid_block.resnets.1.time_emb_proj.weight", {1280, 1280}},
      {"up_blocks.0.resnets.0.conv1.weight", {1280, 2560, 3, 3}},
      {"up_blocks.0.upsamplers.0.conv.weight", {1280, 1280, 3, 3}},
      {"up_blocks.1.resnets.2.conv1.weight", {1280, 1920, 3, 3}},
      {"up_blocks.3.resnets.0.conv1.weight", {320, 960, 3, 3}},
      {"up_blocks.3.attentions.2.transformer_blocks.0.attn1.to_out.0.bias", {320}},
      {"conv_norm_out.weight", {320}},
      {"conv_out.weight", {4, 320, 3, 3}},
  };
  for (const auto& [name, shape] : expected) {
    ASSERT_TRUE(s.count(name)) << "missing " << name;
    EXPECT_EQ(s.at(name), shape) << name;
  }
  EXPECT_FALSE(s.count("up_blocks.3.upsamplers.0.conv.weight"));
  EXPECT_FALSE(s.count("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.bias"));
}

TEST(UNet2DConditionModel, Sd2AndLcmVariants) {
  UNet2DConditionConfig sd2;  // stabilityai/stable-diffusion-2-1: per-block head dims, linear projections
  sd2.attention_head_dim = {5, 10, 20, 20};
  sd2.cross_attention_dim = {1024};
  sd2.use_linear_projection = true;
  const UNet2DConditionModel unet2(sd2, on_meta());
  EXPECT_EQ(parameter_count(unet2), 865910724);  // published SD 2.x UNet count
  EXPECT_EQ(shapes(unet2).at("down_blocks.0.attentions.0.proj_in.weight"), (std::vector<int64_t>{320, 320}));
  // LCM (SimianLuo/LCM_Dreamshaper_v7): time_cond_proj_dim 256 adds cond_proj [320, 256], no bias.
  UNet2DConditionConfig lcm = sd15_unet();
  lcm.time_cond_proj_dim = 256;
  const UNet2DConditionModel unet_lcm(lcm, on_meta());
  EXPECT_EQ(parameter_count(unet_lcm), 859520964 + 320 * 256);
}

TEST(UNet2DConditionModel, TinyForwardShapesAndTimestepConditioning) {
  at::manual_seed(0);
  const UNet2DConditionModel unet(testing::tiny_unet_config(/*time_cond_proj_dim=*/8));
  const at::Tensor x = at::randn({2, 4, 8, 8}), ctx = at::randn({2, 5, 16});
  const at::Tensor y = unet.forward(x, at::tensor({10, 500}), ctx);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_TRUE(at::isfinite(y).all().item<bool>());
  // A scalar timestep broadcasts; different t, context or guidance embedding change the output.
  EXPECT_TRUE(at::allclose(unet.forward(x, at::scalar_tensor(10, at::kLong), ctx)[0], unet.forward(x, at::tensor({10, 10}), ctx)[0]));
  EXPECT_FALSE(at::allclose(unet.forward(x, at::tensor({11, 500}), ctx), y));
  EXPECT_FALSE(at::allclose(unet.forward(x, at::tensor({10, 500}), ctx * 2), y));
  EXPECT_FALSE(at::allclose(unet.forward(x, at::tensor({10, 500}), ctx, at::randn({2, 8})), y));
  // Odd latent sizes: the up path upsamples to each skip's size.
  EXPECT_EQ(unet.forward(at::randn({1, 4, 7, 9}), at::tensor({3}), ctx.slice(0, 0, 1)).sizes(), (at::IntArrayRef{1, 4, 7, 9}));
}

TEST(UNet2DConditionModel, ConfigErrorsNameTheKey) {
  auto read = [](const char* text) {
    const Json j = Json::parse(text);
    ConfigReader r(j, "unet/config.json");
    UNet2DConditionConfig c;
    read_unet_config(r, c);
    return c;
  };
  EXPECT_EQ(read(R"({"_class_name": "UNet2DConditionModel", "attention_head_dim": [5, 10, 20, 20], "time_cond_proj_dim": null})")
                .heads(2), 20);
  EXPECT_TRUE(throws_error_containing([&] { read(R"({"class_embed_type": "timestep"})"); },
                                      "unet/config.json: UNet option 'class_embed_type' = \"timestep\" is not supported"));
  EXPECT_TRUE(throws_error_containing([&] { read(R"({"down_block_types": ["SimpleCrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"]})"); },
                                      "unsupported down block type 'SimpleCrossAttnDownBlock2D'"));
  EXPECT_TRUE(throws_error_containing([&] { read(R"({"block_out_channels": [320, 640]})"); }, "must have the same"));
  EXPECT_TRUE(throws_error_containing([&] { read(R"({"norm_num_groups": 7})"); }, "not a multiple of norm_num_groups"));
  // Counts: zero heads once divided by zero (SIGFPE); negative layers built another model.
  EXPECT_TRUE(throws_error_containing([&] { read(R"({"attention_head_dim": 0})"); }, "key 'attention_head_dim' must be [1, 4096], got 0"));
  EXPECT_TRUE(throws_error_containing([&] { read(R"({"num_attention_heads": [8, 0, 8, 8]})"); },
                                      "key 'num_attention_heads[1]' must be [1, 4096], got 0"));
  EXPECT_TRUE(throws_error_containing([&] { read(R"({"layers_per_block": -2})"); }, "key 'layers_per_block' must be [1, 128]"));
  EXPECT_TRUE(throws_error_containing([&] { read(R"({"block_out_channels": [320, 0, 1280, 1280]})"); },
                                      "key 'block_out_channels[1]' must be [1, 131072], got 0"));
  EXPECT_TRUE(throws_error_containing([&] { read(R"({"cross_attention_dim": 1000000000000})"); }, "key 'cross_attention_dim' must be"));
}

}  // namespace
}  // namespace rewardgen
