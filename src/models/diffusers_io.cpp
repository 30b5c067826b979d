#include "models/diffusers_io.h"

#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"

namespace rewardgen {

namespace fs = std::filesystem;

TensorMap module_state(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& p : module.named_parameters(true)) out[p.key()] = p.value();
  for (const auto& b : module.named_buffers(true)) out[b.key()] = b.value();
  return out;
}

namespace {

std::string first_few(const std::vector<std::string>& names) {
  std::string text;
  for (size_t i = 0; i < names.size() && i < 5; ++i) text += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > 5) text += str(", ... (", names.size(), " in all)");
  return text;
}

}  // namespace

void load_module_weights(torch::nn::Module& module, const TensorMap& tensors, const std::string& source,
                         const std::vector<std::string>& ignorable) {
  at::NoGradGuard no_grad;
  TensorMap targets = module_state(module);
  std::vector<std::string> missing, unexpected;
  for (const auto& [name, target] : targets)
    if (!tensors.count(name)) missing.push_back(name);
  for (const auto& [name, t] : tensors)
    if (!targets.count(name) && std::find(ignorable.begin(), ignorable.end(), name) == ignorable.end())
      unexpected.push_back(name);
  if (!missing.empty()) throw Error(str(source, ": missing tensors ", first_few(missing)));
  if (!unexpected.empty()) throw Error(str(source, ": unexpected tensors ", first_few(unexpected)));
  for (auto& [name, target] : targets) {
    const at::Tensor& value = tensors.at(name);
    if (value.sizes() != target.sizes())
      throw Error(str(source, ": tensor '", name, "' has shape ", value.sizes(), ", the model expects ", target.sizes()));
    if (!value.is_floating_point() && target.is_floating_point())
      throw Error(str(source, ": tensor '", name, "' has dtype ", value.scalar_type(), ", expected floating point"));
    target.copy_(value);  // converts fp16/bf16 -> compute dtype and moves to the device
  }
}

namespace {

Json read_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  if (!fs::exists(path)) throw Error(str("'", dir, "' is not a model folder: it has no config.json"));
  return load_json_file(path);
}

ModelOptions loading_options(const LoadOptions& o) {
  ModelOptions m;
  m.tensor = at::TensorOptions().dtype(o.dtype).device(o.device);
  m.skip_init = true;
  return m;
}

template <class Model>
std::shared_ptr<Model> finish_load(std::shared_ptr<Model> model, const std::string& dir,
                                   const std::vector<std::string>& ignorable = {}) {
  load_module_weights(*model, read_component_weights(dir), dir, ignorable);
  model->eval();
  return model;
}

// transformers' checkpoints from before position_ids became non-persistent carry it as a tensor.
const std::vector<std::string> kClipIgnorable{"text_model.embeddings.position_ids", "vision_model.embeddings.position_ids"};

}  // namespace

namespace {

// The component class named by a parsed config.json of folder `dir`.
ComponentKind kind_of(const Json& config, const std::string& dir) {
  std::string name;
  if (config.contains("_class_name") && config["_class_name"].is_string()) name = config["_class_name"];
  else if (config.contains("architectures") && config["architectures"].is_array() && !config["architectures"].empty() &&
           config["architectures"][0].is_string())
    name = config["architectures"][0];
  if (name == "UNet2DConditionModel") return ComponentKind::unet;
  if (name == "AutoencoderKL") return ComponentKind::vae;
  if (name == "CLIPTextModel") return ComponentKind::clip_text;
  if (name == "CLIPTextModelWithProjection") return ComponentKind::clip_text_projection;
  if (name == "CLIPVisionModel") return ComponentKind::clip_vision;
  if (name == "CLIPVisionModelWithProjection") return ComponentKind::clip_vision_projection;
  throw Error(str(dir, "/config.json: unsupported model class '", name,
                  "' (supported: UNet2DConditionModel, AutoencoderKL, CLIPTextModel[WithProjection], "
                  "CLIPVisionModel[WithProjection])"));
}

}  // namespace

ComponentKind component_kind(const std::string& dir) { return kind_of(read_config(dir), dir); }

std::string to_string(ComponentKind kind) {
  switch (kind) {
    case ComponentKind::unet: return "UNet2DConditionModel";
    case ComponentKind::vae: return "AutoencoderKL";
    case ComponentKind::clip_text: return "CLIPTextModel";
    case ComponentKind::clip_text_projection: return "CLIPTextModelWithProjection";
    case ComponentKind::clip_vision: return "CLIPVisionModel";
    case ComponentKind::clip_vision_projection: return "CLIPVisionModelWithProjection";
  }
  return "?";
}

TensorMap read_component_weights(const std::string& dir) {
  for (const char* name : {"diffusion_pytorch_model.safetensors", "model.safetensors",
                           "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors"})
    if (fs::exists(dir + "/" + name)) return SafetensorsFile::open(dir + "/" + name).load_all();
  for (const char* index : {"diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json"}) {
    const std::string path = dir + "/" + index;
    if (!fs::exists(path)) continue;
    const Json j = load_json_file(path);
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(str(path, ": missing the 'weight_map' object"));
    std::set<std::string> shards;
    for (const auto& [tensor, file] : j["weight_map"].items()) {
      if (!file.is_string()) throw Error(str(path, ": weight_map entry '", tensor, "' is not a file name"));
      // A shard is a file of this folder: a path could read any file on the machine.
      const std::string shard = file.get<std::string>();
      if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos)
        throw Error(str(path, ": weight_map entry '", tensor, "' names '", shard, "', not a file of the model folder"));
      shards.insert(shard);
    }
    TensorMap all;
    for (const std::string& shard : shards) {
      TensorMap part = SafetensorsFile::open(dir + "/" + shard).load_all();
      for (auto& [name, t] : part)
        if (!all.emplace(name, std::move(t)).second) throw Error(str(dir, ": tensor '", name, "' appears in two shards"));
    }
    return all;
  }
  throw Error(str("'", dir, "' holds no weights (diffusion_pytorch_model.safetensors, model.safetensors, their fp16 "
                  "variants or a sharded index); .bin checkpoints are not read — convert them to safetensors"));
}

namespace {

// Builders from a parsed config.json: shared by loading (uninitialised, then weights copied in) and
// by model info (meta device: shapes only).
std::shared_ptr<UNet2DConditionModel> build_unet(const Json& j, const std::string& file, const ModelOptions& o,
                                                 const Logger& log) {
  ConfigReader r(j, file);
  UNet2DConditionConfig c;
  read_unet_config(r, c);
  r.warn_unknown(log);
  return std::make_shared<UNet2DConditionModel>(c, o);
}

std::shared_ptr<AutoencoderKL> build_vae(const Json& j, const std::string& file, const ModelOptions& o, const Logger& log) {
  ConfigReader r(j, file);
  AutoencoderKLConfig c;
  read_autoencoder_config(r, c);
  r.warn_unknown(log);
  return std::make_shared<AutoencoderKL>(c, o);
}

std::shared_ptr<ClipTextModel> build_clip_text(const Json& j, const std::string& file, bool projection,
                                               const ModelOptions& o, const Logger& log) {
  ConfigReader r(j, file);
  ClipTextConfig c;
  read_clip_text_config(r, c);
  r.warn_unknown(log);
  return std::make_shared<ClipTextModel>(c, projection, o);
}

std::shared_ptr<ClipVisionModel> build_clip_vision(const Json& j, const std::string& file, bool projection,
                                                   const ModelOptions& o, const Logger& log) {
  ConfigReader r(j, file);
  ClipVisionConfig c;
  read_clip_vision_config(r, c);
  r.warn_unknown(log);
  return std::make_shared<ClipVisionModel>(c, projection, o);
}

void expect_kind(const std::string& dir, ComponentKind kind, std::initializer_list<ComponentKind> wanted, const char* what) {
  for (ComponentKind w : wanted)
    if (kind == w) return;
  throw Error(str(dir, ": expected ", what, ", found ", to_string(kind)));
}

}  // namespace

std::shared_ptr<UNet2DConditionModel> load_unet(const std::string& dir, const LoadOptions& o, const Logger& log) {
  const Json j = read_config(dir);
  expect_kind(dir, kind_of(j, dir), {ComponentKind::unet}, "a UNet2DConditionModel");
  return finish_load(build_unet(j, dir + "/config.json", loading_options(o), log), dir);
}

std::shared_ptr<AutoencoderKL> load_vae(const std::string& dir, const LoadOptions& o, const Logger& log) {
  const Json j = read_config(dir);
  expect_kind(dir, kind_of(j, dir), {ComponentKind::vae}, "an AutoencoderKL");
  return finish_load(build_vae(j, dir + "/config.json", loading_options(o), log), dir);
}

std::shared_ptr<ClipTextModel> load_clip_text(const std::string& dir, const LoadOptions& o, const Logger& log) {
  const Json j = read_config(dir);
  const ComponentKind kind = kind_of(j, dir);
  expect_kind(dir, kind, {ComponentKind::clip_text, ComponentKind::clip_text_projection}, "a CLIP text model");
  return finish_load(build_clip_text(j, dir + "/config.json", kind == ComponentKind::clip_text_projection,
                                     loading_options(o), log),
                     dir, kClipIgnorable);
}

std::shared_ptr<ClipVisionModel> load_clip_vision(const std::string& dir, const LoadOptions& o, const Logger& log) {
  const Json j = read_config(dir);
  const ComponentKind kind = kind_of(j, dir);
  expect_kind(dir, kind, {ComponentKind::clip_vision, ComponentKind::clip_vision_projection}, "a CLIP vision model");
  return finish_load(build_clip_vision(j, dir + "/config.json",
                                       kind == ComponentKind::clip_vision_projection, loading_options(o), log),
                     dir, kClipIgnorable);
}

ComponentSummary summarize_component(const std::string& dir, const Logger& log) {
  return summarize_component_config(read_config(dir), dir, log);
}

ComponentSummary summarize_component_config(const Json& j, const std::string& dir, const Logger& log) {
  const ComponentKind kind = kind_of(j, dir);
  const std::string file = dir + "/config.json";
  ModelOptions meta;
  meta.tensor = at::TensorOptions().dtype(at::kFloat).device(at::kMeta);
  std::shared_ptr<torch::nn::Module> model;
  switch (kind) {
    case ComponentKind::unet: model = build_unet(j, file, meta, log); break;
    case ComponentKind::vae: model = build_vae(j, file, meta, log); break;
    case ComponentKind::clip_text:
    case ComponentKind::clip_text_projection:
      model = build_clip_text(j, file, kind == ComponentKind::clip_text_projection, meta, log);
      break;
    case ComponentKind::clip_vision:
    case ComponentKind::clip_vision_projection:
      model = build_clip_vision(j, file, kind == ComponentKind::clip_vision_projection, meta, log);
      break;
  }
  return {kind, parameter_count(*model), static_cast<int64_t>(model->parameters().size())};
}

SchedulerConfig load_scheduler_config(const std::string& dir, const Logger& log) {
  const std::string diffusers_name = dir + "/scheduler_config.json";
  const std::string path = fs::exists(diffusers_name) ? diffusers_name : dir + "/config.json";
  const Json j = load_json_file(path);
  ConfigReader r(j, path);
  SchedulerConfig c;
  read_scheduler_config(r, c);
  // Scheduler configs carry many sampler-specific keys rewardgen's stateless samplers do not use.
  log.debug(str("scheduler keys not used: ", r.unknown_keys().size()));
  return c;
}

void save_component(const std::string& dir, const Json& config, const torch::nn::Module& module,
                    const std::string& weights_file, at::ScalarType dtype) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(str("cannot create '", dir, "': ", ec.message()));
  TensorMap tensors = module_state(module);
  if (dtype != at::ScalarType::Undefined)
    for (auto& [name, t] : tensors)
      if (t.is_floating_point()) t = t.to(dtype);
  save_safetensors(dir + "/" + weights_file, tensors, {{"format", "pt"}});
  save_json_file(dir + "/config.json", config);
}

void save_unet(const std::string& dir, const UNet2DConditionModel& unet, at::ScalarType dtype) {
  save_component(dir, unet_config_json(unet.config()), unet, "diffusion_pytorch_model.safetensors", dtype);
}

void save_vae(const std::string& dir, const AutoencoderKL& vae, at::ScalarType dtype) {
  save_component(dir, autoencoder_config_json(vae.config()), vae, "diffusion_pytorch_model.safetensors", dtype);
}

void save_clip_text(const std::string& dir, const ClipTextModel& model, at::ScalarType dtype) {
  save_component(dir, clip_text_config_json(model.config(), model.text_projection != nullptr), model, "model.safetensors", dtype);
}

void save_scheduler_config(const std::string& dir, const SchedulerConfig& c) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  Json j = {{"_class_name", c.recipe.sampler == "lcm" ? "LCMScheduler" : "DDIMScheduler"},
            {"num_train_timesteps", c.num_train_timesteps},
            {"beta_start", c.beta_start}, {"beta_end", c.beta_end}, {"beta_schedule", c.beta_schedule},
            {"prediction_type", to_string(c.prediction_type)}, {"set_alpha_to_one", c.set_alpha_to_one},
            {"steps_offset", c.steps_offset}, {"clip_sample", false}, {"timestep_scaling", c.timestep_scaling},
            {"original_inference_steps", c.original_inference_steps}};
  if (!c.recipe.sampler.empty()) {
    const SamplerRecipe& r = c.recipe;
    j["rewardgen_recipe"] = {{"sampler", r.sampler}, {"steps", r.steps}, {"timesteps", r.timesteps},
                             {"timestep_spacing", r.timestep_spacing}, {"eta", r.eta},
                             {"guidance_scale", r.guidance_scale}, {"output", r.output}};
    if (r.first_timestep >= 0) j["rewardgen_recipe"]["first_timestep"] = r.first_timestep;
  }
  save_json_file(dir + "/scheduler_config.json", j);
}

}  // namespace rewardgen
