#include "models/clip_model.h"

#include <filesystem>

#include "core/error.h"
#include "core/log.h"

namespace rewardgen {

at::Tensor ClipModel::text_features(const at::Tensor& input_ids) const {
  if (!text) throw Error("CLIP model: loaded without its text tower");
  return text->forward(input_ids).text_embeds;
}

at::Tensor ClipModel::image_features(const at::Tensor& pixel_values) const {
  return vision->forward(pixel_values).image_embeds;
}

TensorMap ClipModel::state() const {
  TensorMap out = module_state(*vision);
  if (text)
    for (auto& [name, t] : module_state(*text)) out[name] = t;
  out["logit_scale"] = logit_scale;
  return out;
}

ClipModel make_clip_model(const ClipTextConfig& text, const ClipVisionConfig& vision, const ModelOptions& options) {
  if (text.projection_dim != vision.projection_dim)
    throw Error(str("CLIP model: text projection_dim ", text.projection_dim, " differs from vision projection_dim ",
                    vision.projection_dim));
  ClipModel m;
  m.text = std::make_shared<ClipTextModel>(text, true, options);
  m.vision = std::make_shared<ClipVisionModel>(vision, true, options);
  m.logit_scale = at::full({}, std::log(1 / 0.07), options.tensor);  // transformers' logit_scale_init_value 2.6592
  m.text->eval();
  m.vision->eval();
  return m;
}

namespace {

bool is_text_key(const std::string& name) {
  return name.rfind("text_model.", 0) == 0 || name == "text_projection.weight";
}

}  // namespace

void load_clip_model_weights(ClipModel& m, const TensorMap& tensors, const std::string& source) {
  TensorMap text, vision;
  std::vector<std::string> unexpected;
  for (const auto& [name, t] : tensors) {
    if (is_text_key(name)) text[name] = t;
    else if (name.rfind("vision_model.", 0) == 0 || name == "visual_projection.weight") vision[name] = t;
    else if (name != "logit_scale") unexpected.push_back(name);
  }
  if (!unexpected.empty()) throw Error(str(source, ": unexpected tensor '", unexpected.front(), "' (", unexpected.size(), " in all)"));
  auto scale = tensors.find("logit_scale");
  if (scale == tensors.end()) throw Error(str(source, ": missing tensor 'logit_scale'"));
  if (scale->second.numel() != 1) throw Error(str(source, ": 'logit_scale' must be a scalar, got ", scale->second.sizes()));
  // transformers' checkpoints from before position_ids became non-persistent carry it as a tensor.
  load_module_weights(*m.vision, vision, source, {"vision_model.embeddings.position_ids"});
  if (m.text) load_module_weights(*m.text, text, source, {"text_model.embeddings.position_ids"});
  m.logit_scale = scale->second.reshape({}).to(m.vision->class_embedding.options()).clone();
}

bool is_clip_model_folder(const std::string& dir) {
  const std::string path = dir + "/config.json";
  if (!std::filesystem::exists(path)) return false;
  const Json j = load_json_file(path);
  if (j.contains("architectures") && j["architectures"].is_array())
    for (const auto& a : j["architectures"])
      if (a.is_string() && a.get<std::string>() == "CLIPModel") return true;
  return j.contains("model_type") && j["model_type"].is_string() && j["model_type"].get<std::string>() == "clip";
}

void read_clip_model_config(const std::string& dir, ClipTextConfig& text, ClipVisionConfig& vision, const Logger& log) {
  const std::string path = dir + "/config.json";
  if (!std::filesystem::exists(path)) throw Error(str("'", dir, "' is not a model folder: it has no config.json"));
  const Json j = load_json_file(path);
  if (!is_clip_model_folder(dir))
    throw Error(str(path, ": not a CLIPModel config (architectures [\"CLIPModel\"] or model_type \"clip\")"));
  ConfigReader r(j, path);
  // The top-level projection_dim is the one CLIPModel uses for both towers.
  int64_t projection_dim = 512;
  r.optional("projection_dim", projection_dim, at_least(1)).mark_read("logit_scale_init_value");
  // transformers < 4.20 also wrote the tower configs as "*_config_dict" (a copy): ignored.
  r.mark_read("text_config_dict");
  r.mark_read("vision_config_dict");
  mark_transformers_common_keys(r);
  ConfigReader t = r.child("text_config");
  read_clip_text_config(t, text);
  ConfigReader v = r.child("vision_config");
  read_clip_vision_config(v, vision);
  text.projection_dim = vision.projection_dim = projection_dim;
  r.warn_unknown(log);
}

ClipModel load_clip_model(const std::string& dir, const LoadOptions& o, const Logger& log, bool with_text) {
  ClipTextConfig text;
  ClipVisionConfig vision;
  read_clip_model_config(dir, text, vision, log);
  ModelOptions m;
  m.tensor = at::TensorOptions().dtype(o.dtype).device(o.device);
  m.skip_init = true;
  ClipModel model = make_clip_model(text, vision, m);
  TensorMap tensors = read_component_weights(dir);
  if (!with_text) {
    model.text.reset();
    for (auto it = tensors.begin(); it != tensors.end();) it = is_text_key(it->first) ? tensors.erase(it) : std::next(it);
  }
  load_clip_model_weights(model, tensors, dir);
  return model;
}

}  // namespace rewardgen
