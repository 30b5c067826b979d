#pragma once
// LoRA adapters (Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", arXiv 2106.09685,
// Eq. (3)): a frozen Linear W₀ gets a trainable low-rank update, h = W₀x + (α/r)·B A x, with
// A [r, in], B [out, r]. B starts at zero, so a freshly adapted model computes exactly what the
// base model does; A starts Kaiming-uniform as PEFT does. Adapters attach to the `Linear`s of an
// existing module tree (models/layers.h) whose dotted names end with a target ("to_q", "to_out.0",
// ...), are saved and loaded as safetensors in diffusers'/PEFT naming (kohya's naming is also
// read), and can be merged into the base weights and unmerged again. See docs/lora.md.
#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"
#include "models/layers.h"

namespace rewardgen {

struct LoraConfig {
  int64_t rank = 16;
  double alpha = 32;
  double dropout = 0;  // on the adapter's input, training mode only
  // Matched against the last components of a Linear's dotted name: "to_out.0" matches
  // "...attn1.to_out.0", "to_q" does not match "...to_qk". Feed-forward: "ff.net.0.proj", "ff.net.2".
  std::vector<std::string> target_modules{"to_q", "to_k", "to_v", "to_out.0"};
};

// The low-rank update of one Linear. A and B are leaf tensors with requires_grad.
struct LoraAdapter {
  at::Tensor A, B;  // [r, in], [out, r]
  int64_t rank = 0;
  double alpha = 0, dropout = 0;
  at::Generator generator;  // dropout's randomness (set when dropout > 0)
  bool merged = false;      // true: B A is folded into the Linear's weight, the Linear has no adapter
  double scale() const { return alpha / static_cast<double>(rank); }
  at::Tensor delta(const at::Tensor& x, bool training) const;  // (α/r)·B A x: [..., in] -> [..., out]
};

struct LoraModule {
  std::string name;  // dotted module path inside the root, e.g. "mid_block.attentions.0.transformer_blocks.0.attn1.to_q"
  std::shared_ptr<Linear> linear;
  std::shared_ptr<LoraAdapter> adapter;
};

struct LoraAdapters {
  LoraConfig config;
  std::vector<LoraModule> modules;  // in named_modules() order
};

// How the adapters of one model are named in files: PEFT/diffusers "<peft_prefix><path>.lora_A.weight",
// kohya "<kohya_prefix><path with '.' -> '_'>.lora_down.weight". The defaults are the UNet's.
struct LoraNaming {
  std::string peft_prefix = "unet.";
  std::string kohya_prefix = "lora_unet_";
};

// True when `name`'s last dotted components equal one of `targets`.
bool lora_targets(const std::string& name, const std::vector<std::string>& targets);

// Attaches an adapter to every matching Linear under `root`; A is drawn from `generator`, which
// dropout (if any) also uses, so it must stay alive as long as the adapters. Throws Error when
// nothing matches, a Linear already has an adapter, or the config is invalid.
LoraAdapters add_lora(torch::nn::Module& root, const LoraConfig& config, at::Generator& generator);

// The adapters' tensors (the trainable parameters), named as save_lora writes them.
std::vector<std::pair<std::string, at::Tensor>> lora_parameters(const LoraAdapters& adapters,
                                                                const LoraNaming& naming = {});
// requires_grad(false) on every parameter of `root`: adapters are not parameters, they stay trainable.
void freeze_base(torch::nn::Module& root);

// W ← W + (α/r)·B A for every adapter, which is then detached from its Linear (no extra cost at
// inference). unmerge_lora subtracts it again and re-attaches (exact up to rounding).
void merge_lora(LoraAdapters& adapters);
void unmerge_lora(LoraAdapters& adapters);

// While it lives, every (unmerged) adapter is detached from its Linear, so the model computes exactly
// what its base does: the frozen teacher without a second copy of its weights. The destructor
// re-attaches them. Graphs recorded before keep using the adapters (autograd saved what it needs);
// a recomputed (checkpointed) call must not run inside its scope.
class LoraBypass {
 public:
  explicit LoraBypass(const LoraAdapters& adapters);
  ~LoraBypass();
  LoraBypass(const LoraBypass&) = delete;
  LoraBypass& operator=(const LoraBypass&) = delete;

 private:
  const LoraAdapters& adapters_;
};

// PEFT-named tensors and metadata {"format": "rewardgen-lora-peft", "lora_rank", "lora_alpha",
// "target_modules"}. Throws Error when adapters disagree on rank or alpha (the file has one of each).
void save_lora(const std::string& path, const LoraAdapters& adapters, const LoraNaming& naming = {});
// Reads PEFT/diffusers or kohya naming into existing adapters (strict: every adapter must be in the
// file and every key must name an adapter). Errors name the file and key.
void load_lora(const std::string& path, LoraAdapters& adapters, const LoraNaming& naming = {});
void load_lora_tensors(const TensorMap& tensors, const Metadata& metadata, const std::string& source,
                       LoraAdapters& adapters, const LoraNaming& naming = {});

}  // namespace rewardgen
