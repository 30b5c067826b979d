#pragma once
// transformers' CLIPModel: a text and a vision tower with projections into one embedding space,
// and logit_scale (stored as a log; the logits are exp(logit_scale)·cos). On disk: a folder with
// config.json (architectures ["CLIPModel"], text_config, vision_config, projection_dim) and
// model.safetensors with "text_model.*", "vision_model.*", "text_projection.weight",
// "visual_projection.weight", "logit_scale". OpenCLIP checkpoints map onto the same towers
// (models/open_clip.h). Letters: B batch, L tokens, E embedding width.
#include <memory>
#include <string>

#include "models/clip.h"
#include "models/diffusers_io.h"

namespace rewardgen {

struct ClipModel {
  std::shared_ptr<ClipTextModel> text;      // with text_projection; null when loaded vision-only
  std::shared_ptr<ClipVisionModel> vision;  // with visual_projection
  at::Tensor logit_scale;                   // scalar, log of the logit multiplier

  at::Tensor text_features(const at::Tensor& input_ids) const;      // int64 [B, L] -> [B, E], not normalised
  at::Tensor image_features(const at::Tensor& pixel_values) const;  // [B, 3, S, S] CLIP-normalised -> [B, E]
  // The state dict in transformers' CLIPModel names.
  TensorMap state() const;
};

// Builds a model with uninitialised (or random, when options.skip_init is false) weights.
ClipModel make_clip_model(const ClipTextConfig& text, const ClipVisionConfig& vision, const ModelOptions& options);
// Copies a state dict in CLIPModel names into `model`, strictly (missing, unexpected, mis-shaped:
// Error naming `source` and the tensors). Without a text tower, text_* tensors are skipped.
void load_clip_model_weights(ClipModel& model, const TensorMap& tensors, const std::string& source);

// True when dir/config.json names a CLIPModel (architectures or model_type "clip").
bool is_clip_model_folder(const std::string& dir);
// Reads config.json (text_config, vision_config, projection_dim) of a CLIPModel folder.
void read_clip_model_config(const std::string& dir, ClipTextConfig& text, ClipVisionConfig& vision, const Logger& log);
// Loads a CLIPModel folder; `with_text` false skips the text tower (an image-only reward).
ClipModel load_clip_model(const std::string& dir, const LoadOptions& options, const Logger& log, bool with_text = true);

}  // namespace rewardgen
