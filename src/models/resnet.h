#pragma once
// Convolutional pieces shared by the UNet and the VAE, with diffusers' names: ResnetBlock2D,
// Downsample2D, Upsample2D, and the sinusoidal timestep embedding.
#include "models/layers.h"

namespace rewardgen {

struct ResnetOptions {
  int64_t in_channels = 0, out_channels = 0;
  int64_t temb_channels = 0;  // 0: no time embedding (the VAE)
  int64_t groups = 32;
  double eps = 1e-5;
  Activation activation = Activation::silu;
  double output_scale_factor = 1.0;
};

// norm1 → act → conv1 (+ time_emb_proj(act(temb))) → norm2 → act → conv2, plus the input
// (through conv_shortcut, 1×1, when the channel count changes), over output_scale_factor.
class ResnetBlock2D : public torch::nn::Module {
 public:
  ResnetBlock2D(const ResnetOptions& resnet, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb = {}) const;  // [B, Cin, H, W] -> [B, Cout, H, W]

  std::shared_ptr<GroupNorm> norm1, norm2;
  std::shared_ptr<Conv2d> conv1, conv2, conv_shortcut;
  std::shared_ptr<Linear> time_emb_proj;
  ResnetOptions config;
};

// Stride-2 3×3 conv "conv". padding 0 (the VAE) pads right and bottom by one first.
class Downsample2D : public torch::nn::Module {
 public:
  Downsample2D(int64_t channels, int64_t padding, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x) const;  // [B, C, H, W] -> [B, C, H/2, W/2]
  std::shared_ptr<Conv2d> conv;
  int64_t padding;
};

// Nearest-neighbour ×2 (or to `size`) then a 3×3 conv "conv".
class Upsample2D : public torch::nn::Module {
 public:
  Upsample2D(int64_t channels, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x, at::IntArrayRef size = {}) const;  // [B, C, H, W] -> [B, C, 2H, 2W]
  std::shared_ptr<Conv2d> conv;
};

// diffusers' get_timestep_embedding: [B] -> [B, dim] in fp32,
// exponent_i = −log(10000)·i / (dim/2 − freq_shift), emb = [sin(t·e^exponent) | cos(…)] (flipped to
// [cos | sin] when flip_sin_to_cos), zero-padded when dim is odd.
at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos, double freq_shift);

// linear_1 → act → linear_2; with cond_proj (LCM's guidance embedding, no bias) added to the input.
class TimestepEmbedding : public torch::nn::Module {
 public:
  TimestepEmbedding(int64_t in_channels, int64_t time_embed_dim, Activation activation, int64_t cond_proj_dim,
                    const ModelOptions& options);
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& condition = {}) const;  // [B, in] -> [B, time_embed_dim]
  std::shared_ptr<Linear> linear_1, linear_2, cond_proj;
  Activation activation;
};

}  // namespace rewardgen
