#pragma once
// diffusers' AutoencoderKL (the LDM "KL-f8" VAE; the embedded world's f=4) with its parameter
// names: Encoder (DownEncoderBlock2D…, UNetMidBlock2D with attention), quant_conv, the diagonal
// Gaussian posterior, post_quant_conv, Decoder (UpDecoderBlock2D…). Images [B, 3, H, W] in [-1, 1];
// latents [B, 4, H/f, W/f] are *unscaled* here: multiply by scaling_factor for the diffusion model.
#include <string>
#include <vector>

#include "dist/batch_shard.h"
#include "io/json_config.h"
#include "models/attention.h"
#include "models/resnet.h"

namespace rewardgen {

struct AutoencoderKLConfig {  // = vae/config.json (defaults: diffusers')
  int64_t in_channels = 3, out_channels = 3, latent_channels = 4;
  std::vector<std::string> down_block_types{"DownEncoderBlock2D"};
  std::vector<std::string> up_block_types{"UpDecoderBlock2D"};
  std::vector<int64_t> block_out_channels{64};
  int64_t layers_per_block = 1;
  std::string act_fn = "silu";
  int64_t norm_num_groups = 32;
  int64_t sample_size = 32;
  double scaling_factor = 0.18215;
  bool use_quant_conv = true, use_post_quant_conv = true, mid_block_add_attention = true;
  int64_t downsampling_factor() const { return int64_t{1} << (block_out_channels.size() - 1); }
};
void read_autoencoder_config(ConfigReader& reader, AutoencoderKLConfig& config);
Json autoencoder_config_json(const AutoencoderKLConfig& config);

// UNetMidBlock2D without time embedding: resnets.0, then (attentions.i, resnets.i+1), eps 1e-6.
class VaeMidBlock : public torch::nn::Module {
 public:
  VaeMidBlock(int64_t channels, const AutoencoderKLConfig& c, const ModelOptions& options);
  at::Tensor forward(at::Tensor x) const;
  std::vector<std::shared_ptr<ResnetBlock2D>> resnets;
  std::vector<std::shared_ptr<Attention>> attentions;
};

// DownEncoderBlock2D / UpDecoderBlock2D: resnets, then downsamplers.0 (padding 0) or upsamplers.0.
class VaeBlock : public torch::nn::Module {
 public:
  VaeBlock(int64_t in_channels, int64_t out_channels, int64_t num_layers, bool down, bool resample,
           const AutoencoderKLConfig& c, const ModelOptions& options);
  at::Tensor forward(at::Tensor x) const;
  std::vector<std::shared_ptr<ResnetBlock2D>> resnets;
  std::shared_ptr<Downsample2D> downsampler;
  std::shared_ptr<Upsample2D> upsampler;
};

class VaeEncoder : public torch::nn::Module {
 public:
  VaeEncoder(const AutoencoderKLConfig& c, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& image) const;  // [B, 3, H, W] -> [B, 2·latent, H/f, W/f]
  std::shared_ptr<Conv2d> conv_in, conv_out;
  std::vector<std::shared_ptr<VaeBlock>> down_blocks;
  std::shared_ptr<VaeMidBlock> mid_block;
  std::shared_ptr<GroupNorm> conv_norm_out;
};

class VaeDecoder : public torch::nn::Module {
 public:
  VaeDecoder(const AutoencoderKLConfig& c, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& latents) const;  // [B, latent, h, w] -> [B, 3, h·f, w·f]
  std::shared_ptr<Conv2d> conv_in, conv_out;
  std::shared_ptr<VaeMidBlock> mid_block;
  std::vector<std::shared_ptr<VaeBlock>> up_blocks;
  std::shared_ptr<GroupNorm> conv_norm_out;
};

// The posterior q(z|x) = N(mean, exp(logvar)), logvar clamped to [−30, 20] as diffusers does.
struct DiagonalGaussian {
  at::Tensor mean, logvar;  // [B, latent, h, w]
  at::Tensor std() const { return (0.5 * logvar).exp(); }
  at::Tensor sample(at::Generator& generator) const;  // mean + std · ε
  // The same with ε drawn for the global batch of a data-parallel step and sliced to `shard`'s rows
  // (this posterior's); {0, 1}: as sample(generator).
  at::Tensor sample(at::Generator& generator, const BatchShard& shard) const;
  at::Tensor kl() const;  // KL(q ‖ N(0, I)) per sample, summed over latent dims: [B]
};

class AutoencoderKL : public torch::nn::Module {
 public:
  explicit AutoencoderKL(AutoencoderKLConfig config, const ModelOptions& options = {});
  DiagonalGaussian encode(const at::Tensor& image) const;  // image [B, 3, H, W] in [-1, 1]
  at::Tensor decode(const at::Tensor& latents) const;      // unscaled latents -> image (differentiable)
  const AutoencoderKLConfig& config() const { return config_; }
  // Set once after training from the latents' spread (LDM §4.3.2); saved with the config.
  void set_scaling_factor(double scaling_factor) { config_.scaling_factor = scaling_factor; }

  std::shared_ptr<VaeEncoder> encoder;
  std::shared_ptr<VaeDecoder> decoder;
  std::shared_ptr<Conv2d> quant_conv, post_quant_conv;

 private:
  AutoencoderKLConfig config_;
};

}  // namespace rewardgen
