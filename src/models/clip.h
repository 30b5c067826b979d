#pragma once
// transformers' CLIP text and vision towers (CLIPTextModel[WithProjection],
// CLIPVisionModel[WithProjection]) with their parameter names ("text_model.encoder.layers.0.
// self_attn.q_proj.weight", "vision_model.pre_layrnorm.weight" — sic, transformers' spelling).
// Letters: B batch, L tokens, D width, P patch size, N patches.
#include <string>
#include <vector>

#include "io/json_config.h"
#include "models/layers.h"

namespace rewardgen {

struct ClipTowerConfig {  // the keys CLIPTextConfig and CLIPVisionConfig share
  int64_t hidden_size = 512, intermediate_size = 2048, num_hidden_layers = 12, num_attention_heads = 8;
  int64_t projection_dim = 512;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;
};

struct ClipTextConfig : ClipTowerConfig {  // = text_encoder/config.json
  int64_t vocab_size = 49408, max_position_embeddings = 77;
  int64_t eos_token_id = 2;  // 2 (the legacy default): pool at argmax(input_ids); else at the first EOS
};

struct ClipVisionConfig : ClipTowerConfig {
  int64_t image_size = 224, patch_size = 32, num_channels = 3;
  // transformers CLIPVisionConfig defaults (12 heads, unlike the text tower's 8)
  ClipVisionConfig() { hidden_size = 768, intermediate_size = 3072, num_attention_heads = 12; }
};

void read_clip_text_config(ConfigReader& reader, ClipTextConfig& config);
// Marks the generic PretrainedConfig keys (generation settings, labels, ...) that transformers writes
// into every config.json as read, so that they are not reported as unknown.
void mark_transformers_common_keys(ConfigReader& reader);
void read_clip_vision_config(ConfigReader& reader, ClipVisionConfig& config);
Json clip_text_config_json(const ClipTextConfig& config, bool with_projection);
Json clip_vision_config_json(const ClipVisionConfig& config, bool with_projection);

// One pre-LayerNorm transformer layer: x + attn(ln1(x)), then x + mlp(ln2(x)).
class ClipEncoderLayer : public torch::nn::Module {
 public:
  ClipEncoderLayer(const ClipTowerConfig& c, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask) const;  // [B, L, D]; mask additive or undefined

  std::shared_ptr<Linear> q_proj, k_proj, v_proj, out_proj, fc1, fc2;  // under self_attn. and mlp.
  std::shared_ptr<LayerNorm> layer_norm1, layer_norm2;
  int64_t heads;
  Activation activation;
};

class ClipEncoder : public torch::nn::Module {
 public:
  ClipEncoder(const ClipTowerConfig& c, const ModelOptions& options);
  at::Tensor forward(at::Tensor x, const at::Tensor& mask) const;
  std::vector<std::shared_ptr<ClipEncoderLayer>> layers;
};

struct ClipTextOutput {
  at::Tensor last_hidden_state;  // [B, L, D] after final_layer_norm: the UNet's conditioning
  at::Tensor pooler_output;      // [B, D] at the EOS token
  at::Tensor text_embeds;        // [B, projection_dim] when the model has text_projection
};

// CLIPTextModel; `with_projection` adds text_projection (CLIPTextModelWithProjection / CLIPModel).
class ClipTextModel : public torch::nn::Module {
 public:
  ClipTextModel(ClipTextConfig config, bool with_projection, const ModelOptions& options = {});
  ClipTextOutput forward(const at::Tensor& input_ids) const;  // int64 [B, L], L <= max_position_embeddings
  const ClipTextConfig& config() const { return config_; }

  std::shared_ptr<Embedding> token_embedding, position_embedding;  // text_model.embeddings.*
  std::shared_ptr<ClipEncoder> encoder;                            // text_model.encoder
  std::shared_ptr<LayerNorm> final_layer_norm;                     // text_model.final_layer_norm
  std::shared_ptr<Linear> text_projection;                         // no bias

 private:
  ClipTextConfig config_;
};

struct ClipVisionOutput {
  at::Tensor last_hidden_state;  // [B, 1 + N, D], before post_layernorm
  at::Tensor pooler_output;      // [B, D] = post_layernorm(class token)
  at::Tensor image_embeds;       // [B, projection_dim] when the model has visual_projection
};

class ClipVisionModel : public torch::nn::Module {
 public:
  ClipVisionModel(ClipVisionConfig config, bool with_projection, const ModelOptions& options = {});
  // pixel_values [B, 3, image_size, image_size], already CLIP-normalised.
  ClipVisionOutput forward(const at::Tensor& pixel_values) const;
  const ClipVisionConfig& config() const { return config_; }

  at::Tensor class_embedding;                      // vision_model.embeddings.class_embedding [D]
  std::shared_ptr<Conv2d> patch_embedding;         // [D, 3, P, P], stride P, no bias
  std::shared_ptr<Embedding> position_embedding;   // [1 + N, D]
  std::shared_ptr<LayerNorm> pre_layrnorm, post_layernorm;
  std::shared_ptr<ClipEncoder> encoder;
  std::shared_ptr<Linear> visual_projection;       // no bias

 private:
  ClipVisionConfig config_;
};

}  // namespace rewardgen
