#include "models/autoencoder_kl.h"

#include "core/device.h"
#include "core/error.h"
#include "models/config_bounds.h"

namespace rewardgen {

void read_autoencoder_config(ConfigReader& r, AutoencoderKLConfig& c) {
  r.optional("in_channels", c.in_channels, config_bounds::kWidth)
      .optional("out_channels", c.out_channels, config_bounds::kWidth)
      .optional("latent_channels", c.latent_channels, config_bounds::kWidth)
      .optional("down_block_types", c.down_block_types)
      .optional("up_block_types", c.up_block_types)
      .optional("block_out_channels", c.block_out_channels, config_bounds::kWidth)
      .optional("layers_per_block", c.layers_per_block, config_bounds::kLayers)
      .optional_choice("act_fn", c.act_fn, config_bounds::kActivations)
      .optional("norm_num_groups", c.norm_num_groups, config_bounds::kWidth)
      .optional("sample_size", c.sample_size, config_bounds::kPositions)
      .optional("scaling_factor", c.scaling_factor, Range{0, 100, true})  // published: 0.13 to 1; 1e300 decoded grey
      .optional("use_quant_conv", c.use_quant_conv)
      .optional("use_post_quant_conv", c.use_post_quant_conv)
      .optional("mid_block_add_attention", c.mid_block_add_attention);
  for (const char* key : {"shift_factor", "latents_mean", "latents_std"}) {
    if (r.has(key)) throw Error(str(r.file(), ": VAE option '", key, "' is not supported (SD 1.x/2.x VAEs only)"));
    r.mark_read(key);
  }
  r.mark_read("force_upcast");  // a dtype hint for fp16 pipelines; rewardgen decodes in the compute dtype
  const size_t n = c.block_out_channels.size();
  if (n > 8) throw Error(str(r.file(), ": ", n, " blocks (block_out_channels) halve the image ", n - 1, " times; at most 8 are supported"));
  if (n == 0 || c.down_block_types.size() != n || c.up_block_types.size() != n)
    throw Error(str(r.file(), ": block_out_channels, down_block_types and up_block_types must have the same "
                              "non-zero length"));
  for (const auto& t : c.down_block_types)
    if (t != "DownEncoderBlock2D") throw Error(str(r.file(), ": unsupported VAE down block type '", t, "'"));
  for (const auto& t : c.up_block_types)
    if (t != "UpDecoderBlock2D") throw Error(str(r.file(), ": unsupported VAE up block type '", t, "'"));
  for (int64_t ch : c.block_out_channels)
    if (ch % c.norm_num_groups != 0)
      throw Error(str(r.file(), ": block_out_channels entry ", ch, " is not a multiple of norm_num_groups ", c.norm_num_groups));
  parse_activation(c.act_fn);
}

Json autoencoder_config_json(const AutoencoderKLConfig& c) {
  return {{"_class_name", "AutoencoderKL"},     {"in_channels", c.in_channels},
          {"out_channels", c.out_channels},       {"latent_channels", c.latent_channels},
          {"down_block_types", c.down_block_types}, {"up_block_types", c.up_block_types},
          {"block_out_channels", c.block_out_channels}, {"layers_per_block", c.layers_per_block},
          {"act_fn", c.act_fn},                   {"norm_num_groups", c.norm_num_groups},
          {"sample_size", c.sample_size},         {"scaling_factor", c.scaling_factor},
          {"use_quant_conv", c.use_quant_conv},   {"use_post_quant_conv", c.use_post_quant_conv},
          {"mid_block_add_attention", c.mid_block_add_attention}};
}

namespace {

constexpr double kVaeEps = 1e-6;  // diffusers builds every VAE norm with eps 1e-6

ResnetOptions vae_resnet(const AutoencoderKLConfig& c, int64_t in, int64_t out) {
  ResnetOptions r;
  r.in_channels = in;
  r.out_channels = out;
  r.groups = c.norm_num_groups;
  r.eps = kVaeEps;
  r.activation = parse_activation(c.act_fn);
  return r;
}

}  // namespace

VaeMidBlock::VaeMidBlock(int64_t channels, const AutoencoderKLConfig& c, const ModelOptions& o) {
  const ResnetOptions r = vae_resnet(c, channels, channels);
  resnets = register_list(*this, "resnets", std::vector{std::make_shared<ResnetBlock2D>(r, o), std::make_shared<ResnetBlock2D>(r, o)});
  if (c.mid_block_add_attention) {
    // One head of width C (attention_head_dim = C), biased projections, GroupNorm inside, residual.
    AttentionOptions a{channels, 1, channels};
    a.bias = true;
    a.upcast_softmax = true;
    a.norm_num_groups = c.norm_num_groups;
    a.norm_eps = kVaeEps;
    a.residual_connection = true;
    attentions = register_list(*this, "attentions", std::vector{std::make_shared<Attention>(a, o)});
  }
}

at::Tensor VaeMidBlock::forward(at::Tensor x) const {
  x = resnets[0]->forward(x);
  if (!attentions.empty()) x = attentions[0]->forward(x);
  return resnets[1]->forward(x);
}

VaeBlock::VaeBlock(int64_t in, int64_t out, int64_t num_layers, bool down, bool resample, const AutoencoderKLConfig& c,
                   const ModelOptions& o) {
  std::vector<std::shared_ptr<ResnetBlock2D>> res;
  for (int64_t i = 0; i < num_layers; ++i) res.push_back(std::make_shared<ResnetBlock2D>(vae_resnet(c, i == 0 ? in : out, out), o));
  resnets = register_list(*this, "resnets", res);
  if (resample && down) downsampler = register_list(*this, "downsamplers", std::vector{std::make_shared<Downsample2D>(out, 0, o)})[0];
  if (resample && !down) upsampler = register_list(*this, "upsamplers", std::vector{std::make_shared<Upsample2D>(out, o)})[0];
}

at::Tensor VaeBlock::forward(at::Tensor x) const {
  for (const auto& r : resnets) x = r->forward(x);
  if (downsampler) x = downsampler->forward(x);
  if (upsampler) x = upsampler->forward(x);
  return x;
}

VaeEncoder::VaeEncoder(const AutoencoderKLConfig& c, const ModelOptions& o) {
  const auto& ch = c.block_out_channels;
  conv_in = register_module("conv_in", std::make_shared<Conv2d>(c.in_channels, ch[0], 3, 1, 1, true, o));
  std::vector<std::shared_ptr<VaeBlock>> blocks;
  for (size_t i = 0; i < ch.size(); ++i)
    blocks.push_back(std::make_shared<VaeBlock>(i == 0 ? ch[0] : ch[i - 1], ch[i], c.layers_per_block, true, i + 1 < ch.size(), c, o));
  down_blocks = register_list(*this, "down_blocks", blocks);
  mid_block = register_module("mid_block", std::make_shared<VaeMidBlock>(ch.back(), c, o));
  conv_norm_out = register_module("conv_norm_out", std::make_shared<GroupNorm>(c.norm_num_groups, ch.back(), kVaeEps, o));
  conv_out = register_module("conv_out", std::make_shared<Conv2d>(ch.back(), 2 * c.latent_channels, 3, 1, 1, true, o));
}

at::Tensor VaeEncoder::forward(const at::Tensor& image) const {
  at::Tensor x = conv_in->forward(image);
  for (const auto& b : down_blocks) x = b->forward(x);
  x = mid_block->forward(x);
  return conv_out->forward(at::silu(conv_norm_out->forward(x)));  // [B, 2·latent, h, w]
}

VaeDecoder::VaeDecoder(const AutoencoderKLConfig& c, const ModelOptions& o) {
  const auto& ch = c.block_out_channels;
  const size_t n = ch.size();
  conv_in = register_module("conv_in", std::make_shared<Conv2d>(c.latent_channels, ch.back(), 3, 1, 1, true, o));
  mid_block = register_module("mid_block", std::make_shared<VaeMidBlock>(ch.back(), c, o));
  std::vector<std::shared_ptr<VaeBlock>> blocks;
  for (size_t i = 0; i < n; ++i)  // reversed channels; layers_per_block + 1 resnets each
    blocks.push_back(std::make_shared<VaeBlock>(i == 0 ? ch[n - 1] : ch[n - i], ch[n - 1 - i], c.layers_per_block + 1,
                                                false, i + 1 < n, c, o));
  up_blocks = register_list(*this, "up_blocks", blocks);
  conv_norm_out = register_module("conv_norm_out", std::make_shared<GroupNorm>(c.norm_num_groups, ch[0], kVaeEps, o));
  conv_out = register_module("conv_out", std::make_shared<Conv2d>(ch[0], c.out_channels, 3, 1, 1, true, o));
}

at::Tensor VaeDecoder::forward(const at::Tensor& latents) const {
  at::Tensor x = mid_block->forward(conv_in->forward(latents));
  for (const auto& b : up_blocks) x = b->forward(x);
  return conv_out->forward(at::silu(conv_norm_out->forward(x)));  // [B, 3, H, W]
}

at::Tensor DiagonalGaussian::sample(at::Generator& generator) const {
  return mean + std() * randn_from(generator, mean.sizes(), mean.options());  // drawn on the CPU
}

at::Tensor DiagonalGaussian::sample(at::Generator& generator, const BatchShard& shard) const {
  return mean + std() * shard.randn(generator, mean.sizes(), mean.options());
}

at::Tensor DiagonalGaussian::kl() const {
  // KL(N(μ, σ²) ‖ N(0, 1)) = ½ (μ² + σ² − 1 − log σ²), summed over C·h·w.
  return (0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)).flatten(1).sum(1);
}

AutoencoderKL::AutoencoderKL(AutoencoderKLConfig c, const ModelOptions& o) : config_(std::move(c)) {
  encoder = register_module("encoder", std::make_shared<VaeEncoder>(config_, o));
  decoder = register_module("decoder", std::make_shared<VaeDecoder>(config_, o));
  const int64_t z = config_.latent_channels;
  if (config_.use_quant_conv) quant_conv = register_module("quant_conv", std::make_shared<Conv2d>(2 * z, 2 * z, 1, 1, 0, true, o));
  if (config_.use_post_quant_conv)
    post_quant_conv = register_module("post_quant_conv", std::make_shared<Conv2d>(z, z, 1, 1, 0, true, o));
}

DiagonalGaussian AutoencoderKL::encode(const at::Tensor& image) const {
  at::Tensor moments = encoder->forward(image.to(encoder->conv_in->weight.scalar_type()));
  if (quant_conv) moments = quant_conv->forward(moments);
  const auto parts = moments.chunk(2, 1);  // mean, logvar: [B, latent, h, w] each
  return {parts[0], parts[1].clamp(-30.0, 20.0)};
}

at::Tensor AutoencoderKL::decode(const at::Tensor& latents) const {
  const at::Tensor z = latents.to(decoder->conv_in->weight.scalar_type());
  return decoder->forward(post_quant_conv ? post_quant_conv->forward(z) : z);
}

}  // namespace rewardgen
