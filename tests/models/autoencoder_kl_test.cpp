#include "models/autoencoder_kl.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

namespace rewardgen {
namespace {

TEST(AutoencoderKL, Sd15ParameterCountAndNamesMatchDiffusers) {
  AutoencoderKLConfig sd;  // stable-diffusion-v1-5/vae
  sd.block_out_channels = {128, 256, 512, 512};
  sd.down_block_types.assign(4, "DownEncoderBlock2D");
  sd.up_block_types.assign(4, "UpDecoderBlock2D");
  sd.layers_per_block = 2;
  sd.sample_size = 512;
  ModelOptions meta;
  meta.tensor = at::TensorOptions().device(at::kMeta);
  const AutoencoderKL vae(sd, meta);
  EXPECT_EQ(parameter_count(vae), 83653863);  // published AutoencoderKL (SD 1.x VAE) count
  std::map<std::string, std::vector<int64_t>> s;
  for (const auto& p : vae.named_parameters()) s[p.key()] = p.value().sizes().vec();
  EXPECT_EQ(s.at("encoder.down_blocks.0.downsamplers.0.conv.weight"), (std::vector<int64_t>{128, 128, 3, 3}));
  EXPECT_EQ(s.at("encoder.down_blocks.1.resnets.0.conv_shortcut.weight"), (std::vector<int64_t>{256, 128, 1, 1}));
  EXPECT_EQ(s.at("encoder.mid_block.attentions.0.to_q.weight"), (std::vector<int64_t>{512, 512}));
  EXPECT_EQ(s.at("encoder.mid_block.attentions.0.group_norm.weight"), (std::vector<int64_t>{512}));
  EXPECT_EQ(s.at("encoder.conv_out.weight"), (std::vector<int64_t>{8, 512, 3, 3}));
  EXPECT_EQ(s.at("quant_conv.weight"), (std::vector<int64_t>{8, 8, 1, 1}));
  EXPECT_EQ(s.at("decoder.up_blocks.3.resnets.0.conv_shortcut.weight"), (std::vector<int64_t>{128, 256, 1, 1}));
  EXPECT_EQ(s.at("decoder.up_blocks.2.upsamplers.0.conv.weight"), (std::vector<int64_t>{256, 256, 3, 3}));
  EXPECT_FALSE(s.count("decoder.up_blocks.3.upsamplers.0.conv.weight"));
  EXPECT_EQ(s.at("decoder.up_blocks.0.resnets.2.conv1.weight"), (std::vector<int64_t>{512, 512, 3, 3}));
}

TEST(AutoencoderKL, TinyEncodeDecodeShapesAndPosterior) {
  at::manual_seed(0);
  AutoencoderKLConfig c;  // the embedded world's shape: f = 4, 64×64×3 -> 16×16×4
  c.block_out_channels = {8, 16, 16};
  c.down_block_types.assign(3, "DownEncoderBlock2D");
  c.up_block_types.assign(3, "UpDecoderBlock2D");
  c.norm_num_groups = 4;
  const AutoencoderKL vae(c);
  EXPECT_EQ(c.downsampling_factor(), 4);
  const at::Tensor image = at::rand({2, 3, 64, 64}) * 2 - 1;
  const DiagonalGaussian q = vae.encode(image);
  EXPECT_EQ(q.mean.sizes(), (at::IntArrayRef{2, 4, 16, 16}));
  EXPECT_EQ(vae.decode(q.mean).sizes(), image.sizes());
  // KL by hand for one element pattern: μ = 0, logvar = 0 gives 0.
  const DiagonalGaussian standard{at::zeros({1, 4, 2, 2}), at::zeros({1, 4, 2, 2})};
  EXPECT_NEAR(standard.kl().item<float>(), 0.f, 1e-7);
  const DiagonalGaussian shifted{at::ones({1, 4, 2, 2}), at::zeros({1, 4, 2, 2})};
  EXPECT_NEAR(shifted.kl().item<float>(), 0.5f * 16, 1e-5);  // ½ μ² per element, 16 elements
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor z = q.sample(g);
  EXPECT_FALSE(at::allclose(z, q.mean));
  // Decoding is differentiable with respect to the latents (reward backprop needs it).
  at::Tensor latents = q.mean.detach().requires_grad_();
  vae.decode(latents).mean().backward();
  EXPECT_TRUE(latents.grad().defined());
  EXPECT_GT(latents.grad().abs().sum().item<float>(), 0.f);
}

}  // namespace
}  // namespace rewardgen
