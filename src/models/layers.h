#pragma once
// The leaf layers every model is built from, with PyTorch's parameter names ("weight", "bias")
// and PyTorch's default initialisation. They are ours rather than torch::nn's so that a model can
// be created directly in its dtype, or on the meta device (shapes and names only, no memory, no
// initialisation): parameter counts of SD-sized models, and loading weights without first paying
// for a random initialisation.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include <memory>
#include <string>
#include <vector>

namespace rewardgen {

struct LoraAdapter;  // models/lora.h

struct ModelOptions {
  at::TensorOptions tensor = at::TensorOptions().dtype(at::kFloat);  // dtype + device of parameters
  bool skip_init = false;  // leave parameters uninitialised: weights are about to be loaded
  bool initialize() const { return !skip_init && tensor.device().type() != at::kMeta; }
};

// x Wᵀ + b (weight [out, in], bias [out] or undefined) for x [..., in]. On the CPU in fp32 (outside
// autocast), from 2^22 multiply-adds on, as oneDNN's 1×1 convolution over the rows instead of
// at::linear's BLAS GEMM: on the 2-core Zen 5 machine of docs/performance.md, whose OpenBLAS runs
// its AVX2 kernel, 2.3-3.7x faster at the world UNet's shapes (8192 rows, widths 32-256) and
// 1.7-2x at SD1.5's, forward and backward; below 2^22 (the world's 512-row cross-attention keys) the
// GEMM was faster. Results agree with at::linear to ~1e-6 relative (summation order).
constexpr double kDenseConvMinMacs = 4194304.0;
at::Tensor dense(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// y = x Wᵀ + b. weight [out, in], bias [out]. Linear and Conv2d cast their input to the weights'
// dtype (outside autocast), so bf16 layers take the fp32 outputs of the normalisations.
// With `lora` set (models/lora.h): y = x Wᵀ + b + (α/r)·B A x. The adapter is a plain member,
// not a registered child, so its tensors stay out of named_parameters(): the module's state dict
// keeps exactly the base keys and base checkpoints load strictly whether or not adapters exist.
// The price: Module::to() does not move the adapter; lora.h creates it on the weight's device.
class Linear : public torch::nn::Module {
 public:
  Linear(int64_t in, int64_t out, bool bias, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x) const;  // [..., in] -> [..., out]
  at::Tensor weight, bias;
  std::shared_ptr<LoraAdapter> lora;  // null: the plain layer
};

// 2-D convolution, weight [out, in, k, k].
class Conv2d : public torch::nn::Module {
 public:
  Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, bool bias,
         const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x) const;  // [B, in, H, W] -> [B, out, H', W']
  at::Tensor weight, bias;
  int64_t stride, padding;
};

class GroupNorm : public torch::nn::Module {
 public:
  GroupNorm(int64_t groups, int64_t channels, double eps, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x) const;  // [B, C, ...]; bf16/fp16 in or weights: computed in fp32, fp32 out
  at::Tensor weight, bias;
  int64_t groups;
  double eps;
};

class LayerNorm : public torch::nn::Module {
 public:
  LayerNorm(int64_t dim, double eps, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x) const;  // [..., D]; computed in fp32 as GroupNorm
  at::Tensor weight, bias;
  double eps;
};

class Embedding : public torch::nn::Module {
 public:
  Embedding(int64_t count, int64_t dim, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& ids) const;  // int64 [...] -> [..., D]
  at::Tensor weight;
};

// Activations by their diffusers/transformers config names: "silu"/"swish", "gelu", "quick_gelu", "relu".
enum class Activation { silu, gelu, quick_gelu, relu };
Activation parse_activation(const std::string& name);
at::Tensor activate(Activation activation, const at::Tensor& x);

// Registers `items` as a ModuleList child named `name` (so their parameters are "name.0.weight",
// ...) and returns them, typed, for the forward pass.
template <class T>
std::vector<std::shared_ptr<T>> register_list(torch::nn::Module& parent, const std::string& name,
                                              std::vector<std::shared_ptr<T>> items) {
  torch::nn::ModuleList list;
  for (const auto& item : items) list->push_back(item);
  parent.register_module(name, list);
  return items;
}

// Number of parameter elements of a module (works on the meta device).
int64_t parameter_count(const torch::nn::Module& module);

}  // namespace rewardgen
