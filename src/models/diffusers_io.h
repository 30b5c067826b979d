#pragma once
// Loading and saving models in the layouts users already have: a diffusers component folder
// (config.json + diffusion_pytorch_model[.fp16].safetensors, or transformers' model.safetensors,
// optionally sharded with an *.index.json), and a whole pipeline folder (model_index.json with
// unet/, vae/, text_encoder/, tokenizer/, scheduler/). Loading is a strict key-for-key copy:
// missing, unexpected and mis-shaped tensors are errors naming them. fp16/bf16 files are converted
// to the compute dtype on load.
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "models/autoencoder_kl.h"
#include "models/clip.h"
#include "models/unet_2d_condition.h"
#include "schedulers/noise_schedule.h"

namespace rewardgen {

class Logger;

struct LoadOptions {
  at::ScalarType dtype = at::kFloat;  // compute dtype of the parameters
  at::Device device = at::kCPU;
};

// Parameters and buffers by their dotted names.
TensorMap module_state(const torch::nn::Module& module);
// Copies `tensors` into `module` (converting dtype/device). Every parameter and buffer must be
// present with its shape; tensors the module lacks are errors, except `ignorable` names.
void load_module_weights(torch::nn::Module& module, const TensorMap& tensors, const std::string& source,
                         const std::vector<std::string>& ignorable = {});

// The kinds of component folders rewardgen reads, from config.json's "_class_name" (diffusers) or
// "architectures" (transformers).
enum class ComponentKind { unet, vae, clip_text, clip_text_projection, clip_vision, clip_vision_projection };
ComponentKind component_kind(const std::string& dir);
std::string to_string(ComponentKind kind);

// Reads the weights of a component folder: the single safetensors file or all shards.
TensorMap read_component_weights(const std::string& dir);

std::shared_ptr<UNet2DConditionModel> load_unet(const std::string& dir, const LoadOptions& options, const Logger& log);
std::shared_ptr<AutoencoderKL> load_vae(const std::string& dir, const LoadOptions& options, const Logger& log);
std::shared_ptr<ClipTextModel> load_clip_text(const std::string& dir, const LoadOptions& options, const Logger& log);
std::shared_ptr<ClipVisionModel> load_clip_vision(const std::string& dir, const LoadOptions& options, const Logger& log);
SchedulerConfig load_scheduler_config(const std::string& dir, const Logger& log);

// Parameter counts from config.json alone (the model is built on the meta device: no weights read).
struct ComponentSummary {
  ComponentKind kind;
  int64_t parameters = 0, tensors = 0;
};
ComponentSummary summarize_component(const std::string& dir, const Logger& log);
// The same from a component's parsed config.json; `dir` names it in errors.
ComponentSummary summarize_component_config(const nlohmann::json& config, const std::string& dir, const Logger& log);

// Writes config.json and the weights (in `dtype`, default: as they are) into `dir`, atomically per file.
void save_component(const std::string& dir, const Json& config, const torch::nn::Module& module,
                    const std::string& weights_file, at::ScalarType dtype = at::ScalarType::Undefined);
void save_unet(const std::string& dir, const UNet2DConditionModel& unet, at::ScalarType dtype = at::ScalarType::Undefined);
void save_vae(const std::string& dir, const AutoencoderKL& vae, at::ScalarType dtype = at::ScalarType::Undefined);
void save_clip_text(const std::string& dir, const ClipTextModel& model, at::ScalarType dtype = at::ScalarType::Undefined);
void save_scheduler_config(const std::string& dir, const SchedulerConfig& config);

}  // namespace rewardgen
