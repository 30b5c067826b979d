#include "models/unet_2d_condition.h"

#include "core/error.h"
#include "core/log.h"
#include "models/config_bounds.h"

namespace rewardgen {
namespace {

int64_t per_block(const std::vector<int64_t>& values, size_t block, const char* key) {
  if (values.size() == 1) return values[0];
  if (block < values.size()) return values[block];
  throw Error(str("UNet config: '", key, "' has ", values.size(), " entries, block ", block, " needs one"));
}

// Keys of diffusers' UNet2DConditionModel that select features rewardgen does not implement: each
// must hold its default (or null).
void reject_unsupported(ConfigReader& r, const std::string& file) {
  const Json& j = r.object();
  auto must_be = [&](const char* key, const Json& allowed) {
    if (!j.contains(key)) return;
    r.mark_read(key);
    if (!j[key].is_null() && j[key] != allowed)
      throw Error(str(file, ": UNet option '", key, "' = ", j[key].dump(), " is not supported (only ",
                      allowed.dump(), ")"));
  };
  for (const char* key : {"class_embed_type", "addition_embed_type", "encoder_hid_dim", "encoder_hid_dim_type",
                          "num_class_embeds", "timestep_post_act", "projection_class_embeddings_input_dim",
                          "mid_block_only_cross_attention", "cross_attention_norm", "time_embedding_dim",
                          "addition_time_embed_dim", "reverse_transformer_layers_per_block", "time_embedding_act_fn"})
    must_be(key, nullptr);
  for (const char* key : {"dual_cross_attention", "only_cross_attention", "class_embeddings_concat", "resnet_skip_time_act"})
    must_be(key, false);
  must_be("time_embedding_type", "positional");
  must_be("resnet_time_scale_shift", "default");
  must_be("attention_type", "default");
  must_be("conv_in_kernel", 3);
  must_be("conv_out_kernel", 3);
  must_be("resnet_out_scale_factor", 1.0);
  must_be("dropout", 0.0);
  // Only read by diffusers when addition_embed_type is set, which must_be() above rejects.
  r.mark_read("addition_embed_type_num_heads");
}

}  // namespace

int64_t UNet2DConditionConfig::heads(size_t b) const {
  return per_block(num_attention_heads.empty() ? attention_head_dim : num_attention_heads, b, "attention_head_dim");
}
int64_t UNet2DConditionConfig::layers(size_t b) const { return per_block(layers_per_block, b, "layers_per_block"); }
int64_t UNet2DConditionConfig::transformer_layers(size_t b) const {
  return per_block(transformer_layers_per_block, b, "transformer_layers_per_block");
}
int64_t UNet2DConditionConfig::cross_dim(size_t b) const { return per_block(cross_attention_dim, b, "cross_attention_dim"); }

void read_unet_config(ConfigReader& r, UNet2DConditionConfig& c) {
  r.optional("sample_size", c.sample_size, config_bounds::kPositions)
      .optional("in_channels", c.in_channels, config_bounds::kWidth)
      .optional("out_channels", c.out_channels, config_bounds::kWidth)
      .optional("center_input_sample", c.center_input_sample)
      .optional("flip_sin_to_cos", c.flip_sin_to_cos)
      .optional("freq_shift", c.freq_shift, between(0, 1))
      .optional("down_block_types", c.down_block_types)
      .optional_choice("mid_block_type", c.mid_block_type, {"UNetMidBlock2DCrossAttn"})
      .optional("up_block_types", c.up_block_types)
      .optional("block_out_channels", c.block_out_channels, config_bounds::kWidth)
      .optional_int_or_list("layers_per_block", c.layers_per_block, config_bounds::kLayers)
      .optional("downsample_padding", c.downsample_padding, between(0, 16))
      .optional("mid_block_scale_factor", c.mid_block_scale_factor, Range{0, 100, true})
      .optional_choice("act_fn", c.act_fn, config_bounds::kActivations)
      .optional("norm_num_groups", c.norm_num_groups, config_bounds::kWidth)
      .optional("norm_eps", c.norm_eps, Range{0, 1, true})  // a huge eps would flatten every activation to grey
      .optional_int_or_list("cross_attention_dim", c.cross_attention_dim, config_bounds::kWidth)
      .optional_int_or_list("attention_head_dim", c.attention_head_dim, config_bounds::kHeads)
      .optional_int_or_list("num_attention_heads", c.num_attention_heads, config_bounds::kHeads)
      .optional_int_or_list("transformer_layers_per_block", c.transformer_layers_per_block, config_bounds::kLayers)
      .optional("use_linear_projection", c.use_linear_projection)
      .optional("upcast_attention", c.upcast_attention)
      .optional("time_cond_proj_dim", c.time_cond_proj_dim, between(0, 1 << 17));
  reject_unsupported(r, r.file());
  const size_t n = c.block_out_channels.size();
  if (n > 8) throw Error(str(r.file(), ": ", n, " blocks (block_out_channels) halve the latents ", n - 1, " times; at most 8 are supported"));
  if (n == 0 || c.down_block_types.size() != n || c.up_block_types.size() != n)
    throw Error(str(r.file(), ": block_out_channels, down_block_types and up_block_types must have the same "
                              "non-zero length, got ", n, ", ", c.down_block_types.size(), ", ", c.up_block_types.size()));
  for (const std::string& t : c.down_block_types)
    if (t != "CrossAttnDownBlock2D" && t != "DownBlock2D")
      throw Error(str(r.file(), ": unsupported down block type '", t, "' (supported: CrossAttnDownBlock2D, DownBlock2D)"));
  for (const std::string& t : c.up_block_types)
    if (t != "CrossAttnUpBlock2D" && t != "UpBlock2D")
      throw Error(str(r.file(), ": unsupported up block type '", t, "' (supported: CrossAttnUpBlock2D, UpBlock2D)"));
  parse_activation(c.act_fn);
  for (size_t b = 0; b < n; ++b) {
    if (c.block_out_channels[b] % c.norm_num_groups != 0)
      throw Error(str(r.file(), ": block_out_channels[", b, "] = ", c.block_out_channels[b],
                      " is not a multiple of norm_num_groups = ", c.norm_num_groups));
    if (c.block_out_channels[b] % c.heads(b) != 0)
      throw Error(str(r.file(), ": block_out_channels[", b, "] = ", c.block_out_channels[b], " is not divisible by ",
                      c.heads(b), " attention heads"));
  }
}

UNet2DConditionConfig load_unet_config(const std::string& file, const Logger& log) {
  const Json j = load_json_file(file);
  ConfigReader reader(j, file);
  UNet2DConditionConfig config;
  read_unet_config(reader, config);
  reader.warn_unknown(log);
  return config;
}

Json unet_config_json(const UNet2DConditionConfig& c) {
  auto one_or_list = [](const std::vector<int64_t>& v) { return v.size() == 1 ? Json(v[0]) : Json(v); };
  Json j = {{"_class_name", "UNet2DConditionModel"},
            {"sample_size", c.sample_size},
            {"in_channels", c.in_channels},
            {"out_channels", c.out_channels},
            {"center_input_sample", c.center_input_sample},
            {"flip_sin_to_cos", c.flip_sin_to_cos},
            {"freq_shift", c.freq_shift},
            {"down_block_types", c.down_block_types},
            {"mid_block_type", c.mid_block_type},
            {"up_block_types", c.up_block_types},
            {"block_out_channels", c.block_out_channels},
            {"layers_per_block", one_or_list(c.layers_per_block)},
            {"downsample_padding", c.downsample_padding},
            {"mid_block_scale_factor", c.mid_block_scale_factor},
            {"act_fn", c.act_fn},
            {"norm_num_groups", c.norm_num_groups},
            {"norm_eps", c.norm_eps},
            {"cross_attention_dim", one_or_list(c.cross_attention_dim)},
            {"attention_head_dim", one_or_list(c.attention_head_dim)},
            {"transformer_layers_per_block", one_or_list(c.transformer_layers_per_block)},
            {"use_linear_projection", c.use_linear_projection},
            {"upcast_attention", c.upcast_attention},
            {"time_cond_proj_dim", c.time_cond_proj_dim > 0 ? Json(c.time_cond_proj_dim) : Json(nullptr)}};
  if (!c.num_attention_heads.empty()) j["num_attention_heads"] = one_or_list(c.num_attention_heads);
  return j;
}

namespace {

ResnetOptions unet_resnet(const UNet2DConditionConfig& c, int64_t in, int64_t out, int64_t temb) {
  ResnetOptions r;
  r.in_channels = in;
  r.out_channels = out;
  r.temb_channels = temb;
  r.groups = c.norm_num_groups;
  r.eps = c.norm_eps;
  r.activation = parse_activation(c.act_fn);
  return r;
}

std::shared_ptr<Transformer2DModel> unet_transformer(const UNet2DConditionConfig& c, size_t block, int64_t channels,
                                                     const ModelOptions& o) {
  Transformer2DOptions t;
  t.heads = c.heads(block);
  t.dim_head = channels / t.heads;
  t.in_channels = channels;
  t.norm_num_groups = c.norm_num_groups;
  t.cross_attention_dim = c.cross_dim(block);
  t.num_layers = c.transformer_layers(block);
  t.use_linear_projection = c.use_linear_projection;
  t.upcast_attention = c.upcast_attention;
  return std::make_shared<Transformer2DModel>(t, o);
}

}  // namespace

UNetDownBlock::UNetDownBlock(const UNet2DConditionConfig& c, size_t b, int64_t in, int64_t temb, const ModelOptions& o) {
  const int64_t out = c.block_out_channels[b];
  const bool cross = c.down_block_types[b] == "CrossAttnDownBlock2D";
  std::vector<std::shared_ptr<ResnetBlock2D>> res;
  std::vector<std::shared_ptr<Transformer2DModel>> attn;
  for (int64_t i = 0; i < c.layers(b); ++i) {
    res.push_back(std::make_shared<ResnetBlock2D>(unet_resnet(c, i == 0 ? in : out, out, temb), o));
    if (cross) attn.push_back(unet_transformer(c, b, out, o));
  }
  resnets = register_list(*this, "resnets", res);
  if (cross) attentions = register_list(*this, "attentions", attn);
  if (b + 1 < c.block_out_channels.size())
    downsampler = register_list(*this, "downsamplers", std::vector{std::make_shared<Downsample2D>(out, c.downsample_padding, o)})[0];
}

at::Tensor UNetDownBlock::forward(at::Tensor x, const at::Tensor& temb, const at::Tensor& context,
                                  std::vector<at::Tensor>& skips) const {
  for (size_t i = 0; i < resnets.size(); ++i) {
    x = resnets[i]->forward(x, temb);
    if (!attentions.empty()) x = attentions[i]->forward(x, context);
    skips.push_back(x);
  }
  if (downsampler) {
    x = downsampler->forward(x);  // [B, C, h/2, w/2]
    skips.push_back(x);
  }
  return x;
}

UNetMidBlock2DCrossAttn::UNetMidBlock2DCrossAttn(const UNet2DConditionConfig& c, int64_t temb, const ModelOptions& o) {
  const size_t last = c.block_out_channels.size() - 1;
  const int64_t channels = c.block_out_channels[last];
  ResnetOptions r = unet_resnet(c, channels, channels, temb);
  r.output_scale_factor = c.mid_block_scale_factor;
  resnets = register_list(*this, "resnets", std::vector{std::make_shared<ResnetBlock2D>(r, o), std::make_shared<ResnetBlock2D>(r, o)});
  attentions = register_list(*this, "attentions", std::vector{unet_transformer(c, last, channels, o)});
}

at::Tensor UNetMidBlock2DCrossAttn::forward(at::Tensor x, const at::Tensor& temb, const at::Tensor& context) const {
  x = resnets[0]->forward(x, temb);
  for (size_t i = 0; i < attentions.size(); ++i) x = resnets[i + 1]->forward(attentions[i]->forward(x, context), temb);
  return x;
}

UNetUpBlock::UNetUpBlock(const UNet2DConditionConfig& c, size_t i, int64_t prev_out, int64_t temb, const ModelOptions& o) {
  // Up block i mirrors down block n−1−i: its per-block settings come from there.
  const size_t n = c.block_out_channels.size(), mirror = n - 1 - i;
  const int64_t out = c.block_out_channels[mirror];
  const int64_t in = c.block_out_channels[mirror == 0 ? 0 : mirror - 1];  // channels of the deepest skip it takes
  const bool cross = c.up_block_types[i] == "CrossAttnUpBlock2D";
  const int64_t num_layers = c.layers(mirror) + 1;
  std::vector<std::shared_ptr<ResnetBlock2D>> res;
  std::vector<std::shared_ptr<Transformer2DModel>> attn;
  for (int64_t j = 0; j < num_layers; ++j) {
    const int64_t skip = j == num_layers - 1 ? in : out;
    const int64_t running = j == 0 ? prev_out : out;
    res.push_back(std::make_shared<ResnetBlock2D>(unet_resnet(c, running + skip, out, temb), o));
    if (cross) attn.push_back(unet_transformer(c, mirror, out, o));
  }
  resnets = register_list(*this, "resnets", res);
  if (cross) attentions = register_list(*this, "attentions", attn);
  if (i + 1 < n) upsampler = register_list(*this, "upsamplers", std::vector{std::make_shared<Upsample2D>(out, o)})[0];
}

at::Tensor UNetUpBlock::forward(at::Tensor x, const at::Tensor& temb, const at::Tensor& context,
                                std::vector<at::Tensor>& skips) const {
  for (size_t i = 0; i < resnets.size(); ++i) {
    x = at::cat({x, skips.back()}, 1);  // [B, C + C_skip, h, w]
    skips.pop_back();
    x = resnets[i]->forward(x, temb);
    if (!attentions.empty()) x = attentions[i]->forward(x, context);
  }
  // Upsample to the next skip's size: ×2 normally, and right for odd latent sizes too.
  if (upsampler) x = upsampler->forward(x, skips.back().sizes().slice(2));
  return x;
}

UNet2DConditionModel::UNet2DConditionModel(UNet2DConditionConfig c, const ModelOptions& o) : config_(std::move(c)) {
  const auto& channels = config_.block_out_channels;
  const int64_t temb = channels[0] * 4;
  conv_in = register_module("conv_in", std::make_shared<Conv2d>(config_.in_channels, channels[0], 3, 1, 1, true, o));
  time_embedding = register_module("time_embedding", std::make_shared<TimestepEmbedding>(
                                                         channels[0], temb, parse_activation(config_.act_fn),
                                                         config_.time_cond_proj_dim, o));
  std::vector<std::shared_ptr<UNetDownBlock>> downs;
  for (size_t b = 0; b < channels.size(); ++b)
    downs.push_back(std::make_shared<UNetDownBlock>(config_, b, b == 0 ? channels[0] : channels[b - 1], temb, o));
  down_blocks = register_list(*this, "down_blocks", downs);
  mid_block = register_module("mid_block", std::make_shared<UNetMidBlock2DCrossAttn>(config_, temb, o));
  std::vector<std::shared_ptr<UNetUpBlock>> ups;
  for (size_t i = 0; i < channels.size(); ++i) {
    const int64_t prev_out = i == 0 ? channels.back() : channels[channels.size() - i];
    ups.push_back(std::make_shared<UNetUpBlock>(config_, i, prev_out, temb, o));
  }
  up_blocks = register_list(*this, "up_blocks", ups);
  conv_norm_out = register_module("conv_norm_out", std::make_shared<GroupNorm>(config_.norm_num_groups, channels[0],
                                                                               config_.norm_eps, o));
  conv_out = register_module("conv_out", std::make_shared<Conv2d>(channels[0], config_.out_channels, 3, 1, 1, true, o));
}

at::Tensor UNet2DConditionModel::forward(const at::Tensor& sample, const at::Tensor& timesteps,
                                         const at::Tensor& encoder_hidden_states, const at::Tensor& timestep_cond) const {
  const int64_t B = sample.size(0);
  // Inputs in the dtype of the weights (a bf16 model takes fp32 latents); the output stays in it.
  const at::ScalarType dtype = conv_in->weight.scalar_type();
  const at::Tensor context = encoder_hidden_states.to(dtype);
  // 1. Time: sinusoidal embedding of t (broadcast to the batch), then the MLP (+ LCM's w embedding).
  const at::Tensor t = timesteps.dim() == 0 ? timesteps.reshape({1}).expand({B}) : timesteps;
  const at::Tensor t_emb = timestep_embedding(t, config_.block_out_channels[0], config_.flip_sin_to_cos,
                                              config_.freq_shift).to(dtype);                          // [B, C0]
  const at::Tensor emb = time_embedding->forward(
      t_emb, timestep_cond.defined() ? timestep_cond.to(dtype) : timestep_cond);                    // [B, 4·C0]
  // 2. Down path, keeping every intermediate state for the skips.
  at::Tensor x = sample.to(dtype);
  if (config_.center_input_sample) x = 2 * x - 1.0;
  x = conv_in->forward(x);                                                                           // [B, C0, h, w]
  std::vector<at::Tensor> skips{x};
  for (const auto& block : down_blocks) x = block->forward(x, emb, context, skips);
  // 3. Middle, 4. up path consuming the skips, 5. output head.
  x = mid_block->forward(x, emb, context);
  for (const auto& block : up_blocks) x = block->forward(x, emb, context, skips);
  return conv_out->forward(at::silu(conv_norm_out->forward(x)));                                     // [B, out, h, w]
}

}  // namespace rewardgen
