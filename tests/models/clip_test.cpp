#include "models/clip.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace rewardgen {
namespace {

using testing::on_meta;

TEST(ClipTextModel, Sd15TextEncoderCountAndNames) {
  ClipTextConfig c;  // openai/clip-vit-large-patch14 text tower = SD 1.x text_encoder
  c.hidden_size = 768;
  c.intermediate_size = 3072;
  c.num_attention_heads = 12;
  c.projection_dim = 768;
  const ClipTextModel model(c, false, on_meta());
  EXPECT_EQ(parameter_count(model), 123060480);  // published CLIPTextModel (ViT-L/14) count
  std::map<std::string, std::vector<int64_t>> s;
  for (const auto& p : model.named_parameters()) s[p.key()] = p.value().sizes().vec();
  EXPECT_EQ(s.size(), 196u);  // 2 embeddings + 12 layers × 16 + final_layer_norm × 2
  EXPECT_EQ(s.at("text_model.embeddings.token_embedding.weight"), (std::vector<int64_t>{49408, 768}));
  EXPECT_EQ(s.at("text_model.encoder.layers.11.self_attn.out_proj.bias"), (std::vector<int64_t>{768}));
  EXPECT_EQ(s.at("text_model.encoder.layers.0.mlp.fc1.weight"), (std::vector<int64_t>{3072, 768}));
  EXPECT_EQ(s.at("text_model.final_layer_norm.weight"), (std::vector<int64_t>{768}));
  const ClipTextModel projected(c, true, on_meta());
  EXPECT_EQ(parameter_count(projected), 123060480 + 768 * 768);
}

TEST(ClipVisionModel, VitL14CountAndNames) {
  ClipVisionConfig v;  // openai/clip-vit-large-patch14 vision tower
  v.hidden_size = 1024;
  v.intermediate_size = 4096;
  v.num_hidden_layers = 24;
  v.num_attention_heads = 16;
  v.patch_size = 14;
  v.projection_dim = 768;
  const ClipVisionModel model(v, true, on_meta());
  // By hand: 24 layers × (attention 4·(1024² + 1024) + MLP 2·1024·4096 + 4096 + 1024 + two LayerNorms 4096)
  // = 24 × 12,596,224 = 302,309,376; + patch 1024·3·14·14 = 602,112, positions 257·1024 = 263,168,
  // class 1,024, pre/post LayerNorm 4,096 -> 303,179,776 (transformers' CLIPVisionModel, ViT-L/14);
  // + visual_projection 1024×768.
  EXPECT_EQ(parameter_count(model), 303179776 + 1024 * 768);
  std::map<std::string, std::vector<int64_t>> s;
  for (const auto& p : model.named_parameters()) s[p.key()] = p.value().sizes().vec();
  EXPECT_EQ(s.at("vision_model.embeddings.class_embedding"), (std::vector<int64_t>{1024}));
  EXPECT_EQ(s.at("vision_model.embeddings.patch_embedding.weight"), (std::vector<int64_t>{1024, 3, 14, 14}));
  EXPECT_EQ(s.at("vision_model.embeddings.position_embedding.weight"), (std::vector<int64_t>{257, 1024}));
  EXPECT_TRUE(s.count("vision_model.pre_layrnorm.weight"));
  EXPECT_EQ(s.at("visual_projection.weight"), (std::vector<int64_t>{768, 1024}));
}

TEST(ClipTextModel, CausalMaskAndPooling) {
  at::manual_seed(0);
  ClipTextConfig c;
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.max_position_embeddings = 8;
  c.projection_dim = 6;
  const ClipTextModel model(c, true);
  const at::Tensor ids = at::tensor(std::vector<int64_t>{3, 7, 49, 0, 0}).view({1, 5});  // 49: the largest id = EOS
  const ClipTextOutput out = model.forward(ids);
  EXPECT_EQ(out.last_hidden_state.sizes(), (at::IntArrayRef{1, 5, 16}));
  // Causal: changing a later token leaves earlier positions unchanged.
  const at::Tensor ids2 = at::tensor(std::vector<int64_t>{3, 7, 49, 5, 9}).view({1, 5});
  const ClipTextOutput out2 = model.forward(ids2);
  EXPECT_TRUE(at::allclose(out.last_hidden_state.slice(1, 0, 3), out2.last_hidden_state.slice(1, 0, 3), 1e-5, 1e-6));
  EXPECT_FALSE(at::allclose(out.last_hidden_state.slice(1, 3), out2.last_hidden_state.slice(1, 3)));
  // Pooled at argmax(ids) = position 2 for the legacy eos_token_id 2, and projected.
  EXPECT_TRUE(at::allclose(out.pooler_output, out.last_hidden_state.select(1, 2)));
  EXPECT_TRUE(at::allclose(out.text_embeds, model.text_projection->forward(out.pooler_output)));
  EXPECT_TRUE(testing::throws_error_containing([&] { model.forward(at::tensor({int64_t{50}}).view({1, 1})); },
                                               "token id 50 is outside the vocabulary of 50"));
  EXPECT_TRUE(testing::throws_error_containing([&] { model.forward(at::zeros({1, 9}, at::kLong)); },
                                               "9 tokens exceed max_position_embeddings 8"));
}

TEST(ClipVisionConfig, DefaultsAreTransformers) {
  // CLIPVisionConfig(): hidden 768, intermediate 3072, 12 layers, 12 heads (the text tower has 8),
  // image 224, patch 32 — a config.json that omits num_attention_heads relies on them.
  const ClipVisionConfig v;
  EXPECT_EQ(v.num_attention_heads, 12);
  EXPECT_EQ(v.hidden_size, 768);
  EXPECT_EQ(ClipTextConfig{}.num_attention_heads, 8);
}

}  // namespace
}  // namespace rewardgen
