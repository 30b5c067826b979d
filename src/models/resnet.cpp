#include "models/resnet.h"

#include <cmath>

#include "core/error.h"

namespace rewardgen {

ResnetBlock2D::ResnetBlock2D(const ResnetOptions& r, const ModelOptions& o) : config(r) {
  norm1 = register_module("norm1", std::make_shared<GroupNorm>(r.groups, r.in_channels, r.eps, o));
  conv1 = register_module("conv1", std::make_shared<Conv2d>(r.in_channels, r.out_channels, 3, 1, 1, true, o));
  if (r.temb_channels > 0)
    time_emb_proj = register_module("time_emb_proj", std::make_shared<Linear>(r.temb_channels, r.out_channels, true, o));
  norm2 = register_module("norm2", std::make_shared<GroupNorm>(r.groups, r.out_channels, r.eps, o));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(r.out_channels, r.out_channels, 3, 1, 1, true, o));
  if (r.in_channels != r.out_channels)
    conv_shortcut = register_module("conv_shortcut", std::make_shared<Conv2d>(r.in_channels, r.out_channels, 1, 1, 0, true, o));
}

at::Tensor ResnetBlock2D::forward(const at::Tensor& x, const at::Tensor& temb) const {
  at::Tensor h = conv1->forward(activate(config.activation, norm1->forward(x)));  // [B, Cout, H, W]
  if (time_emb_proj && temb.defined())
    h = h + time_emb_proj->forward(activate(config.activation, temb)).unsqueeze(-1).unsqueeze(-1);  // [B, Cout, 1, 1]
  h = conv2->forward(activate(config.activation, norm2->forward(h)));
  const at::Tensor shortcut = conv_shortcut ? conv_shortcut->forward(x) : x;
  const at::Tensor out = shortcut + h;
  return config.output_scale_factor == 1.0 ? out : out / config.output_scale_factor;
}

Downsample2D::Downsample2D(int64_t channels, int64_t padding_, const ModelOptions& o) : padding(padding_) {
  conv = register_module("conv", std::make_shared<Conv2d>(channels, channels, 3, 2, padding, true, o));
}

at::Tensor Downsample2D::forward(const at::Tensor& x) const {
  if (padding == 0) return conv->forward(at::constant_pad_nd(x, {0, 1, 0, 1}));  // asymmetric, as LDM's VAE
  return conv->forward(x);
}

Upsample2D::Upsample2D(int64_t channels, const ModelOptions& o) {
  conv = register_module("conv", std::make_shared<Conv2d>(channels, channels, 3, 1, 1, true, o));
}

at::Tensor Upsample2D::forward(const at::Tensor& x, at::IntArrayRef size) const {
  const std::vector<int64_t> out_size = size.empty() ? std::vector<int64_t>{x.size(2) * 2, x.size(3) * 2} : size.vec();
  return conv->forward(at::upsample_nearest2d(x, out_size));
}

at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos, double freq_shift) {
  if (timesteps.dim() != 1) throw Error(str("timesteps must have shape [B], got ", timesteps.sizes()));
  const int64_t half = dim / 2;
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(timesteps.device());
  const at::Tensor exponent = at::arange(half, f32) * (-std::log(10000.0) / (static_cast<double>(half) - freq_shift));
  const at::Tensor angles = timesteps.to(at::kFloat).unsqueeze(1) * exponent.exp().unsqueeze(0);  // [B, half]
  at::Tensor emb = flip_sin_to_cos ? at::cat({angles.cos(), angles.sin()}, 1) : at::cat({angles.sin(), angles.cos()}, 1);
  if (dim % 2 == 1) emb = at::constant_pad_nd(emb, {0, 1});
  return emb;  // [B, dim]
}

TimestepEmbedding::TimestepEmbedding(int64_t in, int64_t time_embed_dim, Activation act, int64_t cond_proj_dim,
                                     const ModelOptions& o)
    : activation(act) {
  if (cond_proj_dim > 0) cond_proj = register_module("cond_proj", std::make_shared<Linear>(cond_proj_dim, in, false, o));
  linear_1 = register_module("linear_1", std::make_shared<Linear>(in, time_embed_dim, true, o));
  linear_2 = register_module("linear_2", std::make_shared<Linear>(time_embed_dim, time_embed_dim, true, o));
}

at::Tensor TimestepEmbedding::forward(const at::Tensor& sample, const at::Tensor& condition) const {
  at::Tensor x = sample;
  if (condition.defined()) {
    if (!cond_proj) throw Error("a timestep condition was given to a UNet without time_cond_proj_dim");
    x = x + cond_proj->forward(condition);
  }
  return linear_2->forward(activate(activation, linear_1->forward(x)));
}

}  // namespace rewardgen
