#pragma once
// BLIP's two encoders as ImageReward uses them (arXiv 2201.12086, 2304.05977), with the parameter
// names of their checkpoints:
//  - the image encoder, a timm-style VisionTransformer ("visual_encoder.patch_embed.proj",
//    "visual_encoder.blocks.N.attn.qkv", "visual_encoder.norm"): pre-LayerNorm blocks (eps 1e-6),
//    fused qkv, exact GELU; its output is every token after the final norm;
//  - the text encoder, BERT from BLIP's med.py ("text_encoder.embeddings.word_embeddings",
//    "text_encoder.encoder.layer.N.attention.self.query", ".crossattention.self.key", ...):
//    post-LayerNorm layers, each self-attention, then cross-attention to the image tokens, then the
//    MLP; word + absolute position embeddings (no token types, unlike transformers' BertModel).
// Letters: B batch, L text tokens, N image tokens (1 + patches), D/E widths (text/image), P patch.
#include <string>

#include "io/json_config.h"
#include "models/layers.h"

namespace rewardgen {

struct BlipVisionConfig {
  int64_t image_size = 224, patch_size = 16, width = 1024, layers = 24, heads = 16, mlp_width = 4096;
  double layer_norm_eps = 1e-6;
};

// med_config.json (a transformers BertConfig); encoder_width is set to the image encoder's width,
// as BLIP does after reading the file.
struct BlipTextConfig {
  int64_t vocab_size = 30524, hidden_size = 768, num_hidden_layers = 12, num_attention_heads = 12;
  int64_t intermediate_size = 3072, max_position_embeddings = 512, encoder_width = 768;
  double layer_norm_eps = 1e-12;
  std::string hidden_act = "gelu";
};
// Reads the keys above (others, such as dropout rates, are inference no-ops and ignored); Error if
// add_cross_attention is false, since ImageReward scores through the cross-attention.
BlipTextConfig read_blip_text_config(const std::string& path);

class VitBlock : public torch::nn::Module {
 public:
  VitBlock(const BlipVisionConfig& c, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x) const;  // [B, N, E]
  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<Linear> qkv, proj, fc1, fc2;  // attn.qkv, attn.proj, mlp.fc1, mlp.fc2
  int64_t heads;
};

class BlipVisionTransformer : public torch::nn::Module {
 public:
  BlipVisionTransformer(BlipVisionConfig config, const ModelOptions& options = {});
  // pixels [B, 3, S, S], CLIP-normalised -> image tokens [B, N, E] (class token first).
  at::Tensor forward(const at::Tensor& pixels) const;
  const BlipVisionConfig& config() const { return config_; }

  at::Tensor cls_token, pos_embed;  // [1, 1, E], [1, N, E]
  std::shared_ptr<Conv2d> patch_embed;  // patch_embed.proj, stride P, with bias
  std::vector<std::shared_ptr<VitBlock>> blocks;
  std::shared_ptr<LayerNorm> norm;

 private:
  BlipVisionConfig config_;
};

// BertAttention of med.py: "self.query/key/value" then "output.dense" + residual + "output.LayerNorm".
class BertAttention : public torch::nn::Module {
 public:
  BertAttention(int64_t width, int64_t key_width, int64_t heads, double eps, const ModelOptions& options);
  // x [B, L, D]; keys/values from `context` [B, S, key_width]; mask additive, broadcast to [B, h, L, S], or undefined.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context, const at::Tensor& mask) const;
  std::shared_ptr<Linear> query, key, value, dense;
  std::shared_ptr<LayerNorm> layer_norm;
  int64_t heads;
};

class BertLayer : public torch::nn::Module {
 public:
  BertLayer(const BlipTextConfig& c, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& self_mask, const at::Tensor& image_tokens) const;
  std::shared_ptr<BertAttention> attention, crossattention;
  std::shared_ptr<Linear> intermediate, output;  // intermediate.dense, output.dense
  std::shared_ptr<LayerNorm> output_norm;        // output.LayerNorm
  Activation activation;
};

class BlipTextEncoder : public torch::nn::Module {
 public:
  BlipTextEncoder(BlipTextConfig config, const ModelOptions& options = {});
  // input_ids, attention_mask int64 [B, L]; image_tokens [B, N, encoder_width] -> last hidden state [B, L, D].
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask, const at::Tensor& image_tokens) const;
  const BlipTextConfig& config() const { return config_; }

  std::shared_ptr<Embedding> word_embeddings, position_embeddings;  // embeddings.*
  std::shared_ptr<LayerNorm> embeddings_norm;                       // embeddings.LayerNorm
  std::vector<std::shared_ptr<BertLayer>> layers;                   // encoder.layer.N

 private:
  BlipTextConfig config_;
};

}  // namespace rewardgen
