#include "sampling/pipeline.h"

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/json_config.h"

namespace fs = std::filesystem;

namespace rewardgen {

at::Tensor decode_latents(const AutoencoderKL& vae, const at::Tensor& latents) {
  return vae.decode(latents / vae.config().scaling_factor).to(latents.scalar_type());  // fp32 images from a bf16 VAE
}

Pipeline load_pipeline(const std::string& dir, const LoadOptions& o, const Logger& log) {
  const std::string index = dir + "/model_index.json";
  if (!fs::exists(index)) throw Error(str("'", dir, "' is not a pipeline folder: it has no model_index.json"));
  const Json j = load_json_file(index);
  for (const char* part : {"unet", "vae", "text_encoder", "tokenizer", "scheduler"})
    if (!j.contains(part)) throw Error(str(index, ": missing component '", part, "'"));
  Pipeline p;
  p.unet = load_unet(dir + "/unet", o, log);
  p.vae = load_vae(dir + "/vae", o, log);
  p.text_encoder = load_clip_text(dir + "/text_encoder", o, log);
  p.tokenizer_dir = dir + "/tokenizer";
  p.scheduler = load_scheduler_config(dir + "/scheduler", log);
  return p;
}

void save_pipeline(const std::string& dir, const Pipeline& p, at::ScalarType dtype) {
  if (!p.unet || !p.vae || !p.text_encoder) throw Error("save_pipeline: the pipeline lacks a unet, vae or text encoder");
  save_unet(dir + "/unet", *p.unet, dtype);
  save_vae(dir + "/vae", *p.vae, dtype);
  save_clip_text(dir + "/text_encoder", *p.text_encoder, dtype);
  save_scheduler_config(dir + "/scheduler", p.scheduler);
  // Copied file by file through atomic writes, so that a reader never sees a half-copied vocabulary.
  if (p.tokenizer_dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir + "/tokenizer", ec);
  } else {
    copy_folder_files(p.tokenizer_dir, dir + "/tokenizer");
  }
  save_json_file(dir + "/model_index.json",
                 {{"_class_name", "StableDiffusionPipeline"},
                  {"unet", {"diffusers", "UNet2DConditionModel"}},
                  {"vae", {"diffusers", "AutoencoderKL"}},
                  {"text_encoder", {"transformers", p.text_encoder->text_projection ? "CLIPTextModelWithProjection" : "CLIPTextModel"}},
                  {"tokenizer", {"transformers", "CLIPTokenizer"}},
                  {"scheduler", {"diffusers", "DDIMScheduler"}},
                  {"safety_checker", {nullptr, nullptr}},
                  {"feature_extractor", {nullptr, nullptr}},
                  {"requires_safety_checker", false}});
}

}  // namespace rewardgen
