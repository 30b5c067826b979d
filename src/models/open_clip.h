#pragma once
// OpenCLIP checkpoints (github mlfoundations/open_clip; HPSv2 ships one) read into our CLIP towers.
// The key mapping (docs/rewards.md has the table): visual.conv1 -> vision_model.embeddings.
// patch_embedding, visual.transformer.resblocks.N.attn.in_proj_{weight,bias} [3D, D] split into
// q_proj/k_proj/v_proj, ln_1/ln_2 -> layer_norm1/2, mlp.c_fc/c_proj -> mlp.fc1/fc2, visual.proj
// [D, E] (a matrix applied as x @ proj) -> visual_projection.weight = projᵀ, and the text tower
// likewise from the top-level names (token_embedding, positional_embedding, transformer, ln_final,
// text_projection). Numerics: OpenCLIP's text tower pools at argmax(ids) (the EOT id is the
// largest), as ClipTextModel does for eos_token_id 2; its MLP uses exact GELU unless the model
// config says quick_gelu (OpenAI's own weights).
#include <string>

#include "models/clip_model.h"

namespace rewardgen {

struct OpenClipArchitecture {
  ClipTextConfig text;
  ClipVisionConfig vision;
};

// The architecture from an open_clip model config JSON (open_clip/model_configs/*.json, or an
// open_clip_config.json from the hub with it under "model_cfg"): embed_dim, quick_gelu,
// vision_cfg {image_size, layers, width, head_width, patch_size, mlp_ratio},
// text_cfg {context_length, vocab_size, width, heads, layers, mlp_ratio}.
OpenClipArchitecture read_open_clip_config(const std::string& path, const Logger& log);
// The architecture from the tensors' shapes: widths, patch and image size, vocabulary, context
// and layer counts. Heads are not recorded in a checkpoint: OpenCLIP's defaults are used, text
// width / 64 and vision width / head_width with head_width 80 for ViT-H (width 1280), 88 for ViT-g
// (1408), 104 for ViT-bigG (1664), else 64. Activation: GELU.
OpenClipArchitecture infer_open_clip_architecture(const TensorMap& state, const std::string& source);

// OpenCLIP names -> transformers CLIPModel names (in_proj split into three); Error naming `source`
// and the key for a tensor it does not know.
TensorMap open_clip_to_clip_model_state(const TensorMap& state, const std::string& source);

// Loads an OpenCLIP checkpoint (.safetensors, or a torch.save'd .pt/.pth/.bin state dict, possibly
// under "state_dict"). The architecture comes from `config_path` when not empty, else from shapes.
ClipModel load_open_clip(const std::string& path, const std::string& config_path, const LoadOptions& options,
                         const Logger& log);

}  // namespace rewardgen
