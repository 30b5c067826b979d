#include "models/clip.h"

#include <limits>

#include "core/error.h"
#include "models/attention.h"
#include "models/config_bounds.h"

namespace rewardgen {
namespace {

constexpr const char* kTransformersCommonKeys[] = {
    "attention_dropout", "dropout", "initializer_range", "initializer_factor", "torch_dtype", "transformers_version",
    "architectures", "model_type", "bos_token_id", "pad_token_id", "eos_token_id", "hidden_dropout_prob",
    "attention_probs_dropout_prob", "add_cross_attention", "bad_words_ids", "begin_suppress_tokens",
    "chunk_size_feed_forward", "cross_attention_hidden_size", "decoder_start_token_id", "diversity_penalty", "do_sample",
    "early_stopping", "encoder_no_repeat_ngram_size", "exponential_decay_length_penalty", "finetuning_task",
    "forced_bos_token_id", "forced_eos_token_id", "id2label", "is_decoder", "is_encoder_decoder", "label2id",
    "length_penalty", "max_length", "min_length", "no_repeat_ngram_size", "num_beam_groups", "num_beams",
    "num_return_sequences", "output_attentions", "output_hidden_states", "output_scores", "prefix", "problem_type",
    "pruned_heads", "remove_invalid_values", "repetition_penalty", "return_dict", "return_dict_in_generate",
    "sep_token_id", "suppress_tokens", "task_specific_params", "temperature", "tf_legacy_loss", "tie_encoder_decoder",
    "tie_word_embeddings", "tokenizer_class", "top_k", "top_p", "torchscript", "typical_p", "use_bfloat16",
    "name_or_path", "gradient_checkpointing"};

void read_tower(ConfigReader& r, ClipTowerConfig& c) {
  r.optional("hidden_size", c.hidden_size, config_bounds::kWidth)
      .optional("intermediate_size", c.intermediate_size, config_bounds::kWidth)
      .optional("num_hidden_layers", c.num_hidden_layers, config_bounds::kLayers)
      .optional("num_attention_heads", c.num_attention_heads, config_bounds::kHeads)
      .optional("projection_dim", c.projection_dim, config_bounds::kWidth)
      .optional_choice("hidden_act", c.hidden_act, config_bounds::kActivations)
      .optional("layer_norm_eps", c.layer_norm_eps, Range{0, 1, true});
  if (c.hidden_size % c.num_attention_heads != 0)
    throw Error(str(r.file(), ": hidden_size ", c.hidden_size, " is not divisible by num_attention_heads ",
                    c.num_attention_heads));
  mark_transformers_common_keys(r);
}

Json tower_json(const ClipTowerConfig& c) {
  return {{"hidden_size", c.hidden_size},         {"intermediate_size", c.intermediate_size},
          {"num_hidden_layers", c.num_hidden_layers}, {"num_attention_heads", c.num_attention_heads},
          {"projection_dim", c.projection_dim},   {"hidden_act", c.hidden_act},
          {"layer_norm_eps", c.layer_norm_eps}};
}

}  // namespace

void mark_transformers_common_keys(ConfigReader& r) {
  // Keys that only matter for training in transformers, or are bookkeeping, and the generic
  // PretrainedConfig keys (generation settings, labels, ...) that to_dict() writes for every model.
  for (const char* key : kTransformersCommonKeys) r.mark_read(key);
}

void read_clip_text_config(ConfigReader& r, ClipTextConfig& c) {
  read_tower(r, c);
  r.optional("vocab_size", c.vocab_size, config_bounds::kVocabulary)
      .optional("max_position_embeddings", c.max_position_embeddings, config_bounds::kPositions)
      .optional("eos_token_id", c.eos_token_id, at_least(0));
  if (c.eos_token_id >= c.vocab_size)
    throw Error(str(r.file(), ": eos_token_id ", c.eos_token_id, " is not a token id (vocab_size ", c.vocab_size, ")"));
}

void read_clip_vision_config(ConfigReader& r, ClipVisionConfig& c) {
  read_tower(r, c);
  r.optional("image_size", c.image_size, config_bounds::kPositions)
      .optional("patch_size", c.patch_size, config_bounds::kPositions)
      .optional("num_channels", c.num_channels, config_bounds::kWidth);
  if (c.image_size % c.patch_size != 0)
    throw Error(str(r.file(), ": image_size ", c.image_size, " is not a multiple of patch_size ", c.patch_size));
}

Json clip_text_config_json(const ClipTextConfig& c, bool with_projection) {
  Json j = tower_json(c);
  j["architectures"] = {with_projection ? "CLIPTextModelWithProjection" : "CLIPTextModel"};
  j["model_type"] = "clip_text_model";
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["eos_token_id"] = c.eos_token_id;
  return j;
}

Json clip_vision_config_json(const ClipVisionConfig& c, bool with_projection) {
  Json j = tower_json(c);
  j["architectures"] = {with_projection ? "CLIPVisionModelWithProjection" : "CLIPVisionModel"};
  j["model_type"] = "clip_vision_model";
  j["image_size"] = c.image_size;
  j["patch_size"] = c.patch_size;
  j["num_channels"] = c.num_channels;
  return j;
}

ClipEncoderLayer::ClipEncoderLayer(const ClipTowerConfig& c, const ModelOptions& o)
    : heads(c.num_attention_heads), activation(parse_activation(c.hidden_act)) {
  const int64_t D = c.hidden_size;
  auto self_attn = register_module("self_attn", std::make_shared<torch::nn::Module>());
  k_proj = self_attn->register_module("k_proj", std::make_shared<Linear>(D, D, true, o));
  v_proj = self_attn->register_module("v_proj", std::make_shared<Linear>(D, D, true, o));
  q_proj = self_attn->register_module("q_proj", std::make_shared<Linear>(D, D, true, o));
  out_proj = self_attn->register_module("out_proj", std::make_shared<Linear>(D, D, true, o));
  layer_norm1 = register_module("layer_norm1", std::make_shared<LayerNorm>(D, c.layer_norm_eps, o));
  auto mlp = register_module("mlp", std::make_shared<torch::nn::Module>());
  fc1 = mlp->register_module("fc1", std::make_shared<Linear>(D, c.intermediate_size, true, o));
  fc2 = mlp->register_module("fc2", std::make_shared<Linear>(c.intermediate_size, D, true, o));
  layer_norm2 = register_module("layer_norm2", std::make_shared<LayerNorm>(D, c.layer_norm_eps, o));
}

at::Tensor ClipEncoderLayer::forward(const at::Tensor& x, const at::Tensor& mask) const {
  const at::Tensor h = layer_norm1->forward(x);
  at::Tensor y = x + out_proj->forward(multi_head_attention(q_proj->forward(h), k_proj->forward(h), v_proj->forward(h),
                                                            heads, mask));  // [B, L, D]
  return y + fc2->forward(activate(activation, fc1->forward(layer_norm2->forward(y))));
}

ClipEncoder::ClipEncoder(const ClipTowerConfig& c, const ModelOptions& o) {
  std::vector<std::shared_ptr<ClipEncoderLayer>> list;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) list.push_back(std::make_shared<ClipEncoderLayer>(c, o));
  layers = register_list(*this, "layers", list);
}

at::Tensor ClipEncoder::forward(at::Tensor x, const at::Tensor& mask) const {
  for (const auto& layer : layers) x = layer->forward(x, mask);
  return x;
}

ClipTextModel::ClipTextModel(ClipTextConfig c, bool with_projection, const ModelOptions& o) : config_(std::move(c)) {
  auto text_model = register_module("text_model", std::make_shared<torch::nn::Module>());
  auto embeddings = text_model->register_module("embeddings", std::make_shared<torch::nn::Module>());
  token_embedding = embeddings->register_module("token_embedding", std::make_shared<Embedding>(config_.vocab_size, config_.hidden_size, o));
  position_embedding = embeddings->register_module(
      "position_embedding", std::make_shared<Embedding>(config_.max_position_embeddings, config_.hidden_size, o));
  encoder = text_model->register_module("encoder", std::make_shared<ClipEncoder>(config_, o));
  final_layer_norm = text_model->register_module("final_layer_norm", std::make_shared<LayerNorm>(config_.hidden_size, config_.layer_norm_eps, o));
  if (with_projection)
    text_projection = register_module("text_projection", std::make_shared<Linear>(config_.hidden_size, config_.projection_dim, false, o));
}

ClipTextOutput ClipTextModel::forward(const at::Tensor& input_ids) const {
  if (input_ids.dim() != 2 || input_ids.scalar_type() != at::kLong)
    throw Error(str("CLIP text model: input_ids must be int64 [B, L], got ", input_ids.sizes(), " ", input_ids.scalar_type()));
  const int64_t B = input_ids.size(0), L = input_ids.size(1);
  if (L > config_.max_position_embeddings)
    throw Error(str("CLIP text model: ", L, " tokens exceed max_position_embeddings ", config_.max_position_embeddings));
  const auto ids_max = input_ids.max().item<int64_t>();
  if (input_ids.min().item<int64_t>() < 0 || ids_max >= config_.vocab_size)
    throw Error(str("CLIP text model: token id ", ids_max, " is outside the vocabulary of ", config_.vocab_size));
  at::Tensor x = token_embedding->forward(input_ids) +
                 position_embedding->forward(at::arange(L, input_ids.options())).unsqueeze(0);  // [B, L, D]
  // Causal mask: token i attends to tokens <= i.
  const at::Tensor mask = at::full({L, L}, -std::numeric_limits<float>::infinity(), x.options()).triu(1);  // [L, L]
  x = final_layer_norm->forward(encoder->forward(x, mask));
  // Pooled output at the EOS token: argmax(ids) for the legacy eos_token_id 2 (CLIP's EOS is the
  // largest id), else the first position holding eos_token_id — transformers' rule.
  const at::Tensor eos = config_.eos_token_id == 2 ? input_ids.argmax(-1)
                                                   : (input_ids == config_.eos_token_id).to(at::kInt).argmax(-1);
  ClipTextOutput out;
  out.last_hidden_state = x;
  out.pooler_output = x.index({at::arange(B, input_ids.options()), eos.to(at::kLong)});  // [B, D]
  if (text_projection) out.text_embeds = text_projection->forward(out.pooler_output);
  return out;
}

ClipVisionModel::ClipVisionModel(ClipVisionConfig c, bool with_projection, const ModelOptions& o) : config_(std::move(c)) {
  const int64_t D = config_.hidden_size, patches = (config_.image_size / config_.patch_size) * (config_.image_size / config_.patch_size);
  auto vision_model = register_module("vision_model", std::make_shared<torch::nn::Module>());
  auto embeddings = vision_model->register_module("embeddings", std::make_shared<torch::nn::Module>());
  class_embedding = embeddings->register_parameter("class_embedding", o.initialize() ? at::randn({D}, o.tensor) : at::empty({D}, o.tensor));
  patch_embedding = embeddings->register_module(
      "patch_embedding", std::make_shared<Conv2d>(config_.num_channels, D, config_.patch_size, config_.patch_size, 0, false, o));
  position_embedding = embeddings->register_module("position_embedding", std::make_shared<Embedding>(patches + 1, D, o));
  pre_layrnorm = vision_model->register_module("pre_layrnorm", std::make_shared<LayerNorm>(D, config_.layer_norm_eps, o));
  encoder = vision_model->register_module("encoder", std::make_shared<ClipEncoder>(config_, o));
  post_layernorm = vision_model->register_module("post_layernorm", std::make_shared<LayerNorm>(D, config_.layer_norm_eps, o));
  if (with_projection)
    visual_projection = register_module("visual_projection", std::make_shared<Linear>(D, config_.projection_dim, false, o));
}

ClipVisionOutput ClipVisionModel::forward(const at::Tensor& pixel_values) const {
  const int64_t size = config_.image_size;
  if (pixel_values.dim() != 4 || pixel_values.size(1) != config_.num_channels || pixel_values.size(2) != size ||
      pixel_values.size(3) != size)
    throw Error(str("CLIP vision model: pixel_values must be [B, ", config_.num_channels, ", ", size, ", ", size, "], got ",
                    pixel_values.sizes()));
  const int64_t B = pixel_values.size(0);
  const at::Tensor pixels = pixel_values.to(patch_embedding->weight.scalar_type());  // a bf16 model takes fp32 images
  const at::Tensor patches = patch_embedding->forward(pixels).flatten(2).transpose(1, 2);  // [B, N, D]
  at::Tensor x = at::cat({class_embedding.expand({B, 1, -1}), patches}, 1) + position_embedding->weight.unsqueeze(0);  // [B, 1+N, D]
  x = encoder->forward(pre_layrnorm->forward(x), at::Tensor());
  ClipVisionOutput out;
  out.last_hidden_state = x;
  out.pooler_output = post_layernorm->forward(x.select(1, 0));  // class token, [B, D]
  if (visual_projection) out.image_embeds = visual_projection->forward(out.pooler_output);
  return out;
}

}  // namespace rewardgen
