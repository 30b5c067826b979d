#include "models/open_clip.h"

#include <regex>

#include "core/error.h"
#include "core/log.h"
#include "models/config_bounds.h"
#include "io/torch_pickle.h"

namespace rewardgen {
namespace {

const at::Tensor& get(const TensorMap& state, const std::string& name, const std::string& source, int64_t dim) {
  auto it = state.find(name);
  if (it == state.end()) throw Error(str(source, ": missing tensor '", name, "' (is this an OpenCLIP ViT checkpoint?)"));
  if (it->second.dim() != dim)
    throw Error(str(source, ": tensor '", name, "' has shape ", it->second.sizes(), ", expected ", dim, " dimensions"));
  return it->second;
}

int64_t count_blocks(const TensorMap& state, const std::string& prefix) {
  int64_t n = 0;
  while (state.count(str(prefix, n, ".ln_1.weight"))) ++n;
  return n;
}

int64_t vision_head_width(int64_t width) {
  switch (width) {  // open_clip/model_configs: ViT-H-14, ViT-g-14, ViT-bigG-14
    case 1280: return 80;
    case 1408: return 88;
    case 1664: return 104;
    default: return 64;
  }
}

int64_t heads_for(int64_t width, int64_t head_width, const std::string& what, const std::string& source) {
  if (head_width < 1 || width % head_width != 0)
    throw Error(str(source, ": ", what, " width ", width, " is not a multiple of the head width ", head_width));
  return width / head_width;
}

}  // namespace

OpenClipArchitecture infer_open_clip_architecture(const TensorMap& s, const std::string& source) {
  OpenClipArchitecture a;
  ClipVisionConfig& v = a.vision;
  const at::Tensor& conv = get(s, "visual.conv1.weight", source, 4);  // [D, 3, P, P]
  v.hidden_size = conv.size(0);
  v.num_channels = conv.size(1);
  v.patch_size = conv.size(2);
  const int64_t positions = get(s, "visual.positional_embedding", source, 2).size(0);  // 1 + (S/P)²
  const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(positions - 1))));
  if (grid * grid != positions - 1)
    throw Error(str(source, ": visual.positional_embedding has ", positions, " rows, not 1 + a square number of patches"));
  v.image_size = grid * v.patch_size;
  v.num_hidden_layers = count_blocks(s, "visual.transformer.resblocks.");
  v.intermediate_size = get(s, "visual.transformer.resblocks.0.mlp.c_fc.weight", source, 2).size(0);
  v.projection_dim = get(s, "visual.proj", source, 2).size(1);
  v.num_attention_heads = heads_for(v.hidden_size, vision_head_width(v.hidden_size), "vision", source);
  v.hidden_act = "gelu";

  ClipTextConfig& t = a.text;
  const at::Tensor& tokens = get(s, "token_embedding.weight", source, 2);  // [V, W]
  t.vocab_size = tokens.size(0);
  t.hidden_size = tokens.size(1);
  t.max_position_embeddings = get(s, "positional_embedding", source, 2).size(0);
  t.num_hidden_layers = count_blocks(s, "transformer.resblocks.");
  t.intermediate_size = get(s, "transformer.resblocks.0.mlp.c_fc.weight", source, 2).size(0);
  t.projection_dim = get(s, "text_projection", source, 2).size(1);
  t.num_attention_heads = heads_for(t.hidden_size, 64, "text", source);
  t.hidden_act = "gelu";
  t.eos_token_id = 2;  // pool at argmax(ids), OpenCLIP's rule
  if (v.num_hidden_layers == 0 || t.num_hidden_layers == 0)
    throw Error(str(source, ": no transformer blocks found (visual.transformer.resblocks.0.*, transformer.resblocks.0.*)"));
  return a;
}

OpenClipArchitecture read_open_clip_config(const std::string& path, const Logger& log) {
  const Json file = load_json_file(path);
  const bool wrapped = file.contains("model_cfg");  // open_clip_config.json from the hub
  const Json& j = wrapped ? file["model_cfg"] : file;
  ConfigReader r(j, wrapped ? path + " (model_cfg)" : path);
  OpenClipArchitecture a;
  int64_t embed_dim = 512;
  bool quick_gelu = false;
  r.required("embed_dim", embed_dim, config_bounds::kWidth).optional("quick_gelu", quick_gelu);
  for (const char* key : {"hf_model_name", "timm_model_name"})
    if (r.child("text_cfg").has(key) || r.child("vision_cfg").has(key))
      throw Error(str(path, ": '", key, "' towers (Hugging Face / timm) are not supported, only OpenCLIP's own ViT"));
  const std::string act = quick_gelu ? "quick_gelu" : "gelu";

  ConfigReader v = r.child("vision_cfg");
  ClipVisionConfig& vc = a.vision;
  int64_t head_width = 64;
  double mlp_ratio = 4.0;
  v.required("width", vc.hidden_size, config_bounds::kWidth)
      .required("layers", vc.num_hidden_layers, config_bounds::kLayers)
      .required("patch_size", vc.patch_size, config_bounds::kPositions)
      .optional("image_size", vc.image_size, config_bounds::kPositions)
      .optional("head_width", head_width, config_bounds::kWidth)
      .optional("mlp_ratio", mlp_ratio, Range{0, 64, true, false});
  if (vc.image_size % vc.patch_size != 0)
    throw Error(str(path, ": vision_cfg.image_size ", vc.image_size, " is not a multiple of patch_size ", vc.patch_size));
  vc.num_attention_heads = heads_for(vc.hidden_size, head_width, "vision", path);
  vc.intermediate_size = static_cast<int64_t>(static_cast<double>(vc.hidden_size) * mlp_ratio);
  vc.projection_dim = embed_dim;
  vc.hidden_act = act;

  ConfigReader t = r.child("text_cfg");
  ClipTextConfig& tc = a.text;
  double text_mlp_ratio = 4.0;
  tc.num_attention_heads = 8;  // open_clip's CLIPTextCfg default
  t.required("width", tc.hidden_size, config_bounds::kWidth)
      .required("layers", tc.num_hidden_layers, config_bounds::kLayers)
      .optional("heads", tc.num_attention_heads, config_bounds::kHeads)
      .optional("context_length", tc.max_position_embeddings, config_bounds::kPositions)
      .optional("vocab_size", tc.vocab_size, config_bounds::kVocabulary)
      .optional("mlp_ratio", text_mlp_ratio, Range{0, 64, true, false});
  if (tc.hidden_size % tc.num_attention_heads != 0)
    throw Error(str(path, ": text_cfg.width ", tc.hidden_size, " is not a multiple of its ", tc.num_attention_heads, " heads"));
  tc.intermediate_size = static_cast<int64_t>(static_cast<double>(tc.hidden_size) * text_mlp_ratio);
  if (vc.intermediate_size < 1 || tc.intermediate_size < 1)
    throw Error(str(path, ": mlp_ratio gives an MLP narrower than one unit (vision ", vc.intermediate_size, ", text ",
                    tc.intermediate_size, ")"));
  tc.projection_dim = embed_dim;
  tc.hidden_act = act;
  tc.eos_token_id = 2;
  r.warn_unknown(log);
  return a;
}

TensorMap open_clip_to_clip_model_state(const TensorMap& state, const std::string& source) {
  // Per-block names: OpenCLIP suffix -> transformers suffix (in_proj handled apart).
  static const std::vector<std::pair<std::string, std::string>> kBlock{
      {"ln_1.", "layer_norm1."}, {"ln_2.", "layer_norm2."}, {"attn.out_proj.", "self_attn.out_proj."},
      {"mlp.c_fc.", "mlp.fc1."}, {"mlp.c_proj.", "mlp.fc2."}};
  static const std::map<std::string, std::string> kPlain{
      {"visual.class_embedding", "vision_model.embeddings.class_embedding"},
      {"visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"},
      {"visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"},
      {"visual.ln_pre.weight", "vision_model.pre_layrnorm.weight"},
      {"visual.ln_pre.bias", "vision_model.pre_layrnorm.bias"},
      {"visual.ln_post.weight", "vision_model.post_layernorm.weight"},
      {"visual.ln_post.bias", "vision_model.post_layernorm.bias"},
      {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
      {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
      {"ln_final.weight", "text_model.final_layer_norm.weight"},
      {"ln_final.bias", "text_model.final_layer_norm.bias"},
      {"logit_scale", "logit_scale"}};
  static const std::regex kBlockName(R"(^(visual\.)?transformer\.resblocks\.(\d+)\.(.+)$)");
  TensorMap out;
  for (const auto& [name, t] : state) {
    if (auto it = kPlain.find(name); it != kPlain.end()) {
      out[it->second] = t;
      continue;
    }
    if (name == "visual.proj" || name == "text_projection") {  // x @ P with P [D, E]: Linear weight = Pᵀ
      out[name == "visual.proj" ? "visual_projection.weight" : "text_projection.weight"] = t.t();
      continue;
    }
    if (name == "attn_mask" || name == "visual.attn_mask") continue;  // the causal mask, rebuilt by the model
    std::smatch m;
    if (!std::regex_match(name, m, kBlockName))
      throw Error(str(source, ": OpenCLIP tensor '", name, "' has no counterpart in the CLIP towers "
                      "(supported: OpenCLIP ViT image and text towers without attention pooling or layer scale)"));
    const std::string layer = str(m[1].matched ? "vision_model" : "text_model", ".encoder.layers.", m[2].str(), ".");
    const std::string rest = m[3].str();
    if (rest == "attn.in_proj_weight" || rest == "attn.in_proj_bias") {
      // [3D, ...] stacked q, k, v (nn.MultiheadAttention's layout)
      const std::vector<at::Tensor> qkv = t.chunk(3, 0);
      const std::string suffix = rest == "attn.in_proj_weight" ? "weight" : "bias";
      out[layer + "self_attn.q_proj." + suffix] = qkv[0];
      out[layer + "self_attn.k_proj." + suffix] = qkv[1];
      out[layer + "self_attn.v_proj." + suffix] = qkv[2];
      continue;
    }
    bool mapped = false;
    for (const auto& [from, to] : kBlock)
      if (rest.rfind(from, 0) == 0) {
        out[layer + to + rest.substr(from.size())] = t;
        mapped = true;
        break;
      }
    if (!mapped)
      throw Error(str(source, ": OpenCLIP tensor '", name, "' has no counterpart in the CLIP towers (layer scale and "
                      "other block variants are not supported)"));
  }
  return out;
}

ClipModel load_open_clip(const std::string& path, const std::string& config_path, const LoadOptions& o, const Logger& log) {
  const TensorMap state = read_tensor_file(path);
  const OpenClipArchitecture a = config_path.empty() ? infer_open_clip_architecture(state, path)
                                                     : read_open_clip_config(config_path, log);
  ModelOptions m;
  m.tensor = at::TensorOptions().dtype(o.dtype).device(o.device);
  m.skip_init = true;
  ClipModel model = make_clip_model(a.text, a.vision, m);
  load_clip_model_weights(model, open_clip_to_clip_model_state(state, path), path);
  return model;
}

}  // namespace rewardgen
