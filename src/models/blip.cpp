#include "models/blip.h"

#include "core/error.h"
#include "models/attention.h"
#include "models/config_bounds.h"

namespace rewardgen {

BlipTextConfig read_blip_text_config(const std::string& path) {
  const Json json = load_json_file(path);
  ConfigReader r(json, path);
  BlipTextConfig c;
  r.optional("vocab_size", c.vocab_size, config_bounds::kVocabulary)
      .optional("hidden_size", c.hidden_size, config_bounds::kWidth)
      .optional("num_hidden_layers", c.num_hidden_layers, config_bounds::kLayers)
      .optional("num_attention_heads", c.num_attention_heads, config_bounds::kHeads)
      .optional("intermediate_size", c.intermediate_size, config_bounds::kWidth)
      .optional("max_position_embeddings", c.max_position_embeddings, config_bounds::kPositions)
      .optional("encoder_width", c.encoder_width, config_bounds::kWidth)
      .optional("layer_norm_eps", c.layer_norm_eps, Range{0, 1, true})
      .optional_choice("hidden_act", c.hidden_act, config_bounds::kActivations);
  bool cross_attention = false;
  r.optional("add_cross_attention", cross_attention);
  if (!cross_attention)
    throw Error(str(path, ": add_cross_attention must be true (BLIP's text encoder attends to the image in every layer)"));
  if (json.contains("position_embedding_type") && json["position_embedding_type"] != "absolute")
    throw Error(str(path, ": position_embedding_type ", json["position_embedding_type"].dump(), " is not supported (only \"absolute\")"));
  if (c.hidden_size % c.num_attention_heads != 0)
    throw Error(str(path, ": hidden_size ", c.hidden_size, " is not a multiple of num_attention_heads ", c.num_attention_heads));
  parse_activation(c.hidden_act);  // Error now rather than at the first forward
  return c;
}

VitBlock::VitBlock(const BlipVisionConfig& c, const ModelOptions& o) : heads(c.heads) {
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(c.width, c.layer_norm_eps, o));
  auto attn = register_module("attn", std::make_shared<torch::nn::Module>());
  qkv = attn->register_module("qkv", std::make_shared<Linear>(c.width, 3 * c.width, true, o));
  proj = attn->register_module("proj", std::make_shared<Linear>(c.width, c.width, true, o));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(c.width, c.layer_norm_eps, o));
  auto mlp = register_module("mlp", std::make_shared<torch::nn::Module>());
  fc1 = mlp->register_module("fc1", std::make_shared<Linear>(c.width, c.mlp_width, true, o));
  fc2 = mlp->register_module("fc2", std::make_shared<Linear>(c.mlp_width, c.width, true, o));
}

at::Tensor VitBlock::forward(const at::Tensor& x) const {
  // qkv's output is [q | k | v] along the last axis, each heads × head_dim (timm's reshape order).
  const std::vector<at::Tensor> q_k_v = qkv->forward(norm1->forward(x)).chunk(3, -1);
  const at::Tensor y = x + proj->forward(multi_head_attention(q_k_v[0], q_k_v[1], q_k_v[2], heads));
  return y + fc2->forward(at::gelu(fc1->forward(norm2->forward(y))));
}

BlipVisionTransformer::BlipVisionTransformer(BlipVisionConfig c, const ModelOptions& o) : config_(std::move(c)) {
  if (config_.image_size % config_.patch_size != 0 || config_.width % config_.heads != 0)
    throw Error(str("BLIP image encoder: image_size ", config_.image_size, " must be a multiple of patch_size ",
                    config_.patch_size, " and width ", config_.width, " of heads ", config_.heads));
  const int64_t E = config_.width, side = config_.image_size / config_.patch_size;
  auto make = [&](at::IntArrayRef shape) { return o.initialize() ? 0.02 * at::randn(shape, o.tensor) : at::empty(shape, o.tensor); };
  cls_token = register_parameter("cls_token", make({1, 1, E}));
  pos_embed = register_parameter("pos_embed", make({1, side * side + 1, E}));
  auto patch = register_module("patch_embed", std::make_shared<torch::nn::Module>());
  patch_embed = patch->register_module("proj", std::make_shared<Conv2d>(3, E, config_.patch_size, config_.patch_size, 0, true, o));
  std::vector<std::shared_ptr<VitBlock>> list;
  for (int64_t i = 0; i < config_.layers; ++i) list.push_back(std::make_shared<VitBlock>(config_, o));
  blocks = register_list(*this, "blocks", list);
  norm = register_module("norm", std::make_shared<LayerNorm>(E, config_.layer_norm_eps, o));
}

at::Tensor BlipVisionTransformer::forward(const at::Tensor& pixels) const {
  const int64_t S = config_.image_size;
  if (pixels.dim() != 4 || pixels.size(1) != 3 || pixels.size(2) != S || pixels.size(3) != S)
    throw Error(str("BLIP image encoder: pixels must be [B, 3, ", S, ", ", S, "], got ", pixels.sizes()));
  const at::Tensor patches = patch_embed->forward(pixels).flatten(2).transpose(1, 2);  // [B, N − 1, E]
  at::Tensor x = at::cat({cls_token.expand({pixels.size(0), 1, -1}), patches}, 1) + pos_embed;
  for (const auto& block : blocks) x = block->forward(x);
  return norm->forward(x);  // [B, N, E]
}

BertAttention::BertAttention(int64_t width, int64_t key_width, int64_t heads, double eps, const ModelOptions& o)
    : heads(heads) {
  auto self = register_module("self", std::make_shared<torch::nn::Module>());
  query = self->register_module("query", std::make_shared<Linear>(width, width, true, o));
  key = self->register_module("key", std::make_shared<Linear>(key_width, width, true, o));
  value = self->register_module("value", std::make_shared<Linear>(key_width, width, true, o));
  auto output = register_module("output", std::make_shared<torch::nn::Module>());
  dense = output->register_module("dense", std::make_shared<Linear>(width, width, true, o));
  layer_norm = output->register_module("LayerNorm", std::make_shared<LayerNorm>(width, eps, o));
}

at::Tensor BertAttention::forward(const at::Tensor& x, const at::Tensor& context, const at::Tensor& mask) const {
  const at::Tensor attended = multi_head_attention(query->forward(x), key->forward(context), value->forward(context), heads, mask);
  return layer_norm->forward(dense->forward(attended) + x);  // post-norm residual (BertSelfOutput)
}

BertLayer::BertLayer(const BlipTextConfig& c, const ModelOptions& o) : activation(parse_activation(c.hidden_act)) {
  const int64_t D = c.hidden_size;
  attention = register_module("attention", std::make_shared<BertAttention>(D, D, c.num_attention_heads, c.layer_norm_eps, o));
  crossattention = register_module(
      "crossattention", std::make_shared<BertAttention>(D, c.encoder_width, c.num_attention_heads, c.layer_norm_eps, o));
  auto inter = register_module("intermediate", std::make_shared<torch::nn::Module>());
  intermediate = inter->register_module("dense", std::make_shared<Linear>(D, c.intermediate_size, true, o));
  auto out = register_module("output", std::make_shared<torch::nn::Module>());
  output = out->register_module("dense", std::make_shared<Linear>(c.intermediate_size, D, true, o));
  output_norm = out->register_module("LayerNorm", std::make_shared<LayerNorm>(D, c.layer_norm_eps, o));
}

at::Tensor BertLayer::forward(const at::Tensor& x, const at::Tensor& self_mask, const at::Tensor& image_tokens) const {
  at::Tensor h = attention->forward(x, x, self_mask);
  h = crossattention->forward(h, image_tokens, at::Tensor());  // every image token is attended (mask of ones)
  return output_norm->forward(output->forward(activate(activation, intermediate->forward(h))) + h);
}

BlipTextEncoder::BlipTextEncoder(BlipTextConfig c, const ModelOptions& o) : config_(std::move(c)) {
  auto embeddings = register_module("embeddings", std::make_shared<torch::nn::Module>());
  word_embeddings = embeddings->register_module("word_embeddings", std::make_shared<Embedding>(config_.vocab_size, config_.hidden_size, o));
  position_embeddings = embeddings->register_module(
      "position_embeddings", std::make_shared<Embedding>(config_.max_position_embeddings, config_.hidden_size, o));
  embeddings_norm = embeddings->register_module("LayerNorm", std::make_shared<LayerNorm>(config_.hidden_size, config_.layer_norm_eps, o));
  auto encoder = register_module("encoder", std::make_shared<torch::nn::Module>());
  std::vector<std::shared_ptr<BertLayer>> list;
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) list.push_back(std::make_shared<BertLayer>(config_, o));
  layers = register_list(*encoder, "layer", list);
}

at::Tensor BlipTextEncoder::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                    const at::Tensor& image_tokens) const {
  if (input_ids.dim() != 2 || attention_mask.sizes() != input_ids.sizes() || input_ids.size(1) > config_.max_position_embeddings)
    throw Error(str("BLIP text encoder: input_ids and attention_mask must be [B, L <= ", config_.max_position_embeddings,
                    "], got ", input_ids.sizes(), " and ", attention_mask.sizes()));
  if (image_tokens.dim() != 3 || image_tokens.size(0) != input_ids.size(0) || image_tokens.size(2) != config_.encoder_width)
    throw Error(str("BLIP text encoder: image tokens must be [", input_ids.size(0), ", N, ", config_.encoder_width, "], got ",
                    image_tokens.sizes()));
  const at::Tensor positions = at::arange(input_ids.size(1), input_ids.options());
  at::Tensor x = embeddings_norm->forward(word_embeddings->forward(input_ids) + position_embeddings->forward(positions));
  // med.py's extended mask: 0 where attended, −10000 on padding, broadcast over heads and queries.
  const at::Tensor mask = ((1 - attention_mask.to(x.scalar_type())) * -10000.0).unsqueeze(1).unsqueeze(1);  // [B, 1, 1, L]
  for (const auto& layer : layers) x = layer->forward(x, mask, image_tokens);
  return x;  // [B, L, D]
}

}  // namespace rewardgen
