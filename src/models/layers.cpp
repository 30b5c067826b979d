#include "models/layers.h"

#include <ATen/Context.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "models/flops.h"
#include "models/lora.h"
#include "models/onednn.h"
#include "models/precision.h"

namespace rewardgen {
namespace {

// PyTorch's default for Linear and Conv: weight ~ kaiming_uniform(a = √5), i.e. U(±1/√fan_in),
// bias ~ U(±1/√fan_in).
void init_uniform_fan_in(at::Tensor& weight, at::Tensor* bias, int64_t fan_in) {
  at::NoGradGuard no_grad;
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  weight.uniform_(-bound, bound);
  if (bias != nullptr && bias->defined()) bias->uniform_(-bound, bound);
}

// The input in the weights' dtype, so that a bf16 model takes fp32 activations (and the fp32
// outputs of the normalisations, below). Under autocast ATen casts both itself.
at::Tensor in_weight_dtype(const at::Tensor& x, const at::Tensor& weight) {
  if (x.scalar_type() == weight.scalar_type() || autocast_on()) return x;
  return x.to(weight.scalar_type());
}

// Normalisations compute in fp32 whatever the model's dtype: LibTorch 1.13's bf16 CPU kernels for
// GroupNorm and LayerNorm are 12-14x slower than its fp32 ones (measured in the world teacher's
// forward: 20 against 1.7 ms, 29 against 2.1 ms) and refuse bf16 input with fp32 weights (autocast),
// and fp32 statistics are what autocast keeps for normalisations on CUDA as well.
at::Tensor fp32(const at::Tensor& t) {
  return t.defined() && (t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf) ? t.to(at::kFloat) : t;
}

}  // namespace

at::Tensor dense(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t in = weight.size(1), out = weight.size(0);
  const int64_t rows = in > 0 && x.dim() >= 1 ? x.numel() / in : 0;
  const bool fp32_cpu = x.device().is_cpu() && x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat;
  const bool one_dnn = at::hasMKLDNN() && at::globalContext().userEnabledMkldnn() && !autocast_on();
  const bool large = static_cast<double>(rows) * in * out >= kDenseConvMinMacs && x.size(-1) == in;
  if (!fp32_cpu || !one_dnn || !large) return at::linear(x, weight, bias);  // (a wrong width gets at::linear's error)
  // Our own oneDNN matmuls where this build has them (models/onednn.h): primitives kept per shape.
  if (onednn_available()) return onednn_dense(x, weight, bias);
  // The rows as `images` channels-last images [images, in, rows/images, 1] (memory: rows × in, as
  // x is), the weight as 1×1 filters: no copy in or out, and the convolution's own backward.
  // ATen hands a 1×1 convolution to oneDNN with ≥ 16 images or more than one thread, and with more
  // than one image or over 20480 input values; anything else would take its slower fallback.
  const int64_t images = rows % 16 == 0 ? 16 : rows % 2 == 0 ? 2 : 1;
  const bool taken_by_one_dnn = (images >= 16 || at::get_num_threads() > 1) && (images > 1 || rows * in > 20480);
  if (!taken_by_one_dnn) return at::linear(x, weight, bias);
  const at::Tensor image = x.reshape({images, rows / images, 1, in}).permute({0, 3, 1, 2});
  const at::Tensor y = at::conv2d(image, weight.reshape({out, in, 1, 1}), bias);  // [images, out, rows/images, 1]
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = out;
  return y.permute({0, 2, 3, 1}).reshape(shape);
}

Linear::Linear(int64_t in, int64_t out, bool has_bias, const ModelOptions& o) {
  weight = register_parameter("weight", at::empty({out, in}, o.tensor));
  if (has_bias) bias = register_parameter("bias", at::empty({out}, o.tensor));
  if (o.initialize()) init_uniform_fan_in(weight, &bias, in);
}

at::Tensor Linear::forward(const at::Tensor& x) const {
  count_flops(2.0 * static_cast<double>(x.numel()) * static_cast<double>(weight.size(0)));  // 2·tokens·in·out
  const at::Tensor input = in_weight_dtype(x, weight);
  at::Tensor y = dense(input, weight, bias);  // [..., out]
  if (lora) y = y + lora->delta(input, is_training());
  return y;
}

Conv2d::Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride_, int64_t padding_, bool has_bias,
               const ModelOptions& o)
    : stride(stride_), padding(padding_) {
  weight = register_parameter("weight", at::empty({out, in, kernel, kernel}, o.tensor));
  if (has_bias) bias = register_parameter("bias", at::empty({out}, o.tensor));
  if (o.initialize()) init_uniform_fan_in(weight, &bias, in * kernel * kernel);
}

at::Tensor Conv2d::forward(const at::Tensor& x) const {
  at::Tensor y = convolution(in_weight_dtype(x, weight), weight, bias, stride, padding);  // Winograd where it applies
  // 2 · (Cin·k·k) · (every output element)
  count_flops(2.0 * static_cast<double>(weight[0].numel()) * static_cast<double>(y.numel()));
  return y;
}

GroupNorm::GroupNorm(int64_t groups_, int64_t channels, double eps_, const ModelOptions& o) : groups(groups_), eps(eps_) {
  if (groups <= 0 || channels % groups != 0)
    throw Error(str("GroupNorm: ", channels, " channels cannot be split into ", groups, " groups"));
  weight = register_parameter("weight", o.initialize() ? at::ones({channels}, o.tensor) : at::empty({channels}, o.tensor));
  bias = register_parameter("bias", o.initialize() ? at::zeros({channels}, o.tensor) : at::empty({channels}, o.tensor));
}

at::Tensor GroupNorm::forward(const at::Tensor& x) const {  // fp32 out for bf16 in: see fp32() above
  return at::group_norm(fp32(x), groups, fp32(weight), fp32(bias), eps);
}

LayerNorm::LayerNorm(int64_t dim, double eps_, const ModelOptions& o) : eps(eps_) {
  weight = register_parameter("weight", o.initialize() ? at::ones({dim}, o.tensor) : at::empty({dim}, o.tensor));
  bias = register_parameter("bias", o.initialize() ? at::zeros({dim}, o.tensor) : at::empty({dim}, o.tensor));
}

at::Tensor LayerNorm::forward(const at::Tensor& x) const {
  return at::layer_norm(fp32(x), {weight.size(0)}, fp32(weight), fp32(bias), eps);  // fp32, as GroupNorm
}

Embedding::Embedding(int64_t count, int64_t dim, const ModelOptions& o) {
  weight = register_parameter("weight", at::empty({count, dim}, o.tensor));
  if (o.initialize()) {
    at::NoGradGuard no_grad;
    weight.normal_();  // PyTorch's default for nn.Embedding
  }
}

at::Tensor Embedding::forward(const at::Tensor& ids) const { return at::embedding(weight, ids); }

Activation parse_activation(const std::string& name) {
  if (name == "silu" || name == "swish") return Activation::silu;
  if (name == "gelu") return Activation::gelu;
  if (name == "quick_gelu") return Activation::quick_gelu;
  if (name == "relu") return Activation::relu;
  throw Error(str("unsupported activation '", name, "' (supported: silu, swish, gelu, quick_gelu, relu)"));
}

at::Tensor activate(Activation activation, const at::Tensor& x) {
  switch (activation) {
    case Activation::silu: return at::silu(x);
    case Activation::gelu: return at::gelu(x);  // exact (erf) GELU, as nn.GELU() and ACT2FN["gelu"]
    case Activation::quick_gelu: return x * at::sigmoid(1.702 * x);  // CLIP's approximation
    case Activation::relu: return at::relu(x);
  }
  throw Error("unknown activation");
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters(true)) n += p.numel();
  return n;
}

}  // namespace rewardgen
