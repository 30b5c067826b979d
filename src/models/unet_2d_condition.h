#pragma once
// diffusers' UNet2DConditionModel (Stable Diffusion 1.x/2.x layout, LCM's guidance embedding),
// built from its config.json keys with its parameter names.
// Letters: B batch, C channels, h×w latent, S text tokens, Dc cross-attention width.
#include <string>
#include <vector>

#include "models/attention.h"
#include "models/resnet.h"
#include "io/json_config.h"

namespace rewardgen {

class Logger;

struct UNet2DConditionConfig {  // = unet/config.json (defaults: diffusers')
  int64_t sample_size = 64, in_channels = 4, out_channels = 4;
  bool center_input_sample = false, flip_sin_to_cos = true;
  double freq_shift = 0;
  std::vector<std::string> down_block_types{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                           "DownBlock2D"};
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";
  std::vector<std::string> up_block_types{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                         "CrossAttnUpBlock2D"};
  std::vector<int64_t> block_out_channels{320, 640, 1280, 1280};
  std::vector<int64_t> layers_per_block{2};  // one value or one per block
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1.0;
  std::string act_fn = "silu";
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  std::vector<int64_t> cross_attention_dim{1280};
  // diffusers' naming quirk: SD configs give the number of *heads* as "attention_head_dim";
  // "num_attention_heads", when present, wins. One value or one per block.
  std::vector<int64_t> attention_head_dim{8};
  std::vector<int64_t> num_attention_heads;
  std::vector<int64_t> transformer_layers_per_block{1};
  bool use_linear_projection = false, upcast_attention = false;
  int64_t time_cond_proj_dim = 0;  // LCM guidance embedding width; 0 = none

  // Per-block values, expanded from one-or-list keys.
  int64_t heads(size_t block) const;
  int64_t layers(size_t block) const;
  int64_t transformer_layers(size_t block) const;
  int64_t cross_dim(size_t block) const;
};
// Reads unet/config.json keys; options rewardgen does not implement (class embeddings, SDXL's added
// conditions, dual cross-attention, ...) with non-default values are an Error naming key and file.
void read_unet_config(ConfigReader& reader, UNet2DConditionConfig& config);
Json unet_config_json(const UNet2DConditionConfig& config);
// A UNet config.json file read into a config (unknown keys: warnings in `log`).
UNet2DConditionConfig load_unet_config(const std::string& file, const Logger& log);

// CrossAttnDownBlock2D (with attentions) or DownBlock2D: resnets[, attentions][, downsamplers].
class UNetDownBlock : public torch::nn::Module {
 public:
  UNetDownBlock(const UNet2DConditionConfig& c, size_t index, int64_t in_channels, int64_t temb_channels,
                const ModelOptions& options);
  // Returns the output and appends every intermediate state to `skips` (for the up path).
  at::Tensor forward(at::Tensor x, const at::Tensor& temb, const at::Tensor& context, std::vector<at::Tensor>& skips) const;

  std::vector<std::shared_ptr<ResnetBlock2D>> resnets;
  std::vector<std::shared_ptr<Transformer2DModel>> attentions;
  std::shared_ptr<Downsample2D> downsampler;
};

// UNetMidBlock2DCrossAttn: resnets.0, then (attentions.i, resnets.i+1).
class UNetMidBlock2DCrossAttn : public torch::nn::Module {
 public:
  UNetMidBlock2DCrossAttn(const UNet2DConditionConfig& c, int64_t temb_channels, const ModelOptions& options);
  at::Tensor forward(at::Tensor x, const at::Tensor& temb, const at::Tensor& context) const;

  std::vector<std::shared_ptr<ResnetBlock2D>> resnets;
  std::vector<std::shared_ptr<Transformer2DModel>> attentions;
};

// CrossAttnUpBlock2D or UpBlock2D: each resnet takes the concatenation of the running state and
// the matching skip; upsamplers.0 at the end unless it is the last block.
class UNetUpBlock : public torch::nn::Module {
 public:
  UNetUpBlock(const UNet2DConditionConfig& c, size_t index, int64_t prev_output_channels, int64_t temb_channels,
              const ModelOptions& options);
  // Consumes skips from the back of `skips`; `upsample_size` is the next skip's spatial size.
  at::Tensor forward(at::Tensor x, const at::Tensor& temb, const at::Tensor& context, std::vector<at::Tensor>& skips) const;

  std::vector<std::shared_ptr<ResnetBlock2D>> resnets;
  std::vector<std::shared_ptr<Transformer2DModel>> attentions;
  std::shared_ptr<Upsample2D> upsampler;
};

class UNet2DConditionModel : public torch::nn::Module {
 public:
  UNet2DConditionModel(UNet2DConditionConfig config, const ModelOptions& options = {});

  // sample [B, in, h, w], timesteps [B] or [] (int or float), encoder_hidden_states [B, S, Dc],
  // timestep_cond [B, time_cond_proj_dim] or undefined -> [B, out, h, w]. Inputs of any floating dtype
  // are cast to the weights' dtype, which the output has (a bf16 model returns bf16).
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& timesteps, const at::Tensor& encoder_hidden_states,
                     const at::Tensor& timestep_cond = {}) const;

  const UNet2DConditionConfig& config() const { return config_; }

  std::shared_ptr<Conv2d> conv_in, conv_out;
  std::shared_ptr<TimestepEmbedding> time_embedding;
  std::vector<std::shared_ptr<UNetDownBlock>> down_blocks;
  std::shared_ptr<UNetMidBlock2DCrossAttn> mid_block;
  std::vector<std::shared_ptr<UNetUpBlock>> up_blocks;
  std::shared_ptr<GroupNorm> conv_norm_out;

 private:
  UNet2DConditionConfig config_;
};

}  // namespace rewardgen
