#include "methods/generator.h"

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>

#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"
#include "train/checkpoint.h"
#include "train/ema.h"

namespace rewardgen {

void read_generator_config(ConfigReader& r, GeneratorConfig& c) {
  r.optional("timesteps", c.timesteps)
      .optional_choice("sampler", c.sampler, {"ddim", "lcm"})
      .optional("guidance", c.guidance, Range{0, 100})
      .optional("eta", c.eta, Range{0, 10})
      .optional_choice("last_step", c.last_step, {"end", "zero", "stay"})
      .optional_choice("output", c.output, {"x0", "sample"})
      .optional("lora", c.lora)
      .optional("lora_rank", c.lora_config.rank, Range{1, 1024})
      .optional("lora_alpha", c.lora_config.alpha, Range{0, 1e4, true, false})
      .optional("ema_decay", c.ema_decay, Range{0, 1, false, true})
      .optional("recompute", c.recompute);
  if (c.timesteps.empty() || c.timesteps.size() > 64)
    throw Error(str(r.file(), ": timesteps must list 1 to 64 timesteps, got ", c.timesteps.size()));
  for (size_t i = 0; i < c.timesteps.size(); ++i) {
    if (c.timesteps[i] < 0 || c.timesteps[i] > 999)
      throw Error(str(r.file(), ": timesteps[", i, "] = ", c.timesteps[i], " is outside [0, 999]"));
    if (i > 0 && c.timesteps[i] >= c.timesteps[i - 1])
      throw Error(str(r.file(), ": timesteps must be strictly descending, got ", c.timesteps[i - 1], " then ", c.timesteps[i]));
  }
  if (c.last_step == "stay" && c.sampler != "lcm")
    throw Error(str(r.file(), ": last_step 'stay' re-noises an LCM's last step (sampler lcm); a ", c.sampler,
                    " step from t to t is the identity"));
  if (c.last_step == "zero" && c.sampler == "lcm")
    throw Error(str(r.file(), ": last_step 'zero' is DDPO's DDIM convention; an LCM ends with 'end' or 'stay'"));
  // An EMA of LoRA adapters is not implemented: a LoRA run drops the method's default EMA, and an
  // explicit ema_decay with lora is an error.
  if (c.lora && c.ema_decay > 0) {
    if (r.has("ema_decay")) throw Error(str(r.file(), ": ema_decay needs a full fine-tune (lora: false)"));
    c.ema_decay = 0;
  }
}

Json generator_config_json(const GeneratorConfig& c) {
  return {{"timesteps", c.timesteps}, {"sampler", c.sampler}, {"guidance", c.guidance}, {"eta", c.eta},
          {"last_step", c.last_step}, {"output", c.output}, {"lora", c.lora}, {"lora_rank", c.lora_config.rank},
          {"lora_alpha", c.lora_config.alpha}, {"ema_decay", c.ema_decay}, {"recompute", c.recompute}};
}

FewStepGenerator::FewStepGenerator(const GeneratorConfig& config, const std::string& model_dir, const Logger& log,
                                   const at::Device& device)
    : config_(config), model_dir_(model_dir), device_(device) {
  const LoadOptions on_device{at::kFloat, device};
  base_ = load_pipeline(model_dir, on_device, log);
  base_.vae->eval();
  base_.text_encoder->eval();
  freeze_base(*base_.vae);
  freeze_base(*base_.text_encoder);
  schedule_ = make_noise_schedule(base_.scheduler);
  for (const int64_t t : config_.timesteps)
    if (t >= schedule_.num_timesteps()) throw Error(str("generator timestep ", t, " is outside the model's schedule"));
  if (config_.sampler == "lcm" && base_.unet->config().time_cond_proj_dim <= 0)
    throw Error(str("the lcm sampler needs a latent consistency model; the UNet of '", model_dir,
                    "' has no guidance embedding (time_cond_proj_dim): distil one with `rewardgen distill`, or train this model ",
                    "with the ddim sampler (\"generator\": {\"sampler\": \"ddim\"})"));
  teacher_ = base_.unet;  // frozen: the CFG implicit reward's network and θ₀
  freeze_base(*teacher_);
  if (config_.lora) {
    unet_ = teacher_;  // the adapters are the only trained tensors: the teacher is the UNet without them
    lora_generator_ = std::make_unique<at::Generator>(at::make_generator<at::CPUGeneratorImpl>(0));
    adapters_ = add_lora(*unet_, config_.lora_config, *lora_generator_);
  } else {
    unet_ = load_unet(model_dir + "/unet", on_device, log);
    for (const auto& p : unet_->named_parameters()) initial_[p.key()] = p.value().detach().clone();
  }
  if (config_.ema_decay > 0) {
    ema_unet_ = load_unet(model_dir + "/unet", on_device, log);
    freeze_base(*ema_unet_);
    ema_copy(*ema_unet_, *unet_);
  }
  prompt_states_ = std::make_unique<PromptStates>(base_.text_encoder, ClipTokenizer::from_directory(base_.tokenizer_dir));
}

TeacherHandle FewStepGenerator::teacher() const {
  return TeacherHandle(*teacher_, config_.lora ? std::make_unique<LoraBypass>(adapters_) : nullptr);
}

NamedTensors FewStepGenerator::trainable_parameters() const {
  if (config_.lora) return lora_parameters(adapters_);
  NamedTensors out;
  for (const auto& p : unet_->named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

at::Tensor FewStepGenerator::distance_to_initial() const {
  at::Tensor total = at::zeros({}, at::TensorOptions().device(device_));
  if (config_.lora) {
    // ‖ΔW‖² with ΔW = (α/r) B A: the adapters' distance from the teacher's weights.
    for (const LoraModule& m : adapters_.modules)
      total = total + (m.adapter->scale() * at::matmul(m.adapter->B, m.adapter->A)).pow(2).sum();
    return total;
  }
  for (const auto& p : unet_->named_parameters()) total = total + (p.value() - initial_.at(p.key())).pow(2).sum();
  return total;
}

bool FewStepGenerator::needs_uncond() const { return config_.sampler == "ddim" && config_.guidance != 1.0; }

Conditioning FewStepGenerator::conditioning(const std::vector<std::string>& prompts, bool with_uncond) const {
  return prompt_states_->conditioning(prompts, with_uncond || needs_uncond());
}

at::Tensor FewStepGenerator::initial_noise(int64_t batch, at::Generator& generator) const {
  const UNet2DConditionConfig& u = unet_->config();
  return randn_from(generator, {batch, u.in_channels, u.sample_size, u.sample_size}, at::TensorOptions().device(device_));
}

RolloutOptions FewStepGenerator::policy_options() const {
  RolloutOptions o;
  o.sampler = config_.sampler;
  o.timesteps = config_.timesteps;
  // t_prev: the next timestep, and after the last one the config's convention.
  for (size_t i = 0; i < o.timesteps.size(); ++i) {
    const bool last = i + 1 == o.timesteps.size();
    o.prev_timesteps.push_back(!last                           ? o.timesteps[i + 1]
                               : config_.last_step == "zero" ? 0
                               : config_.last_step == "stay" ? o.timesteps[i]
                                                             : -1);
  }
  if (config_.guidance != 1.0) o.guidance = at::scalar_tensor(config_.guidance, at::kDouble);
  o.recompute = config_.recompute;
  return o;
}

Rollout FewStepGenerator::rollout(const Conditioning& c, const at::Tensor& x_T, const at::Tensor& eta, GradientMode gradient,
                                  int64_t gradient_k, int64_t stop_after, at::Generator& generator, bool keep_states,
                                  const BatchShard& shard) const {
  RolloutOptions o = policy_options();
  o.eta = eta;
  o.gradient = gradient;
  o.gradient_k = gradient_k;
  o.stop_after = stop_after;
  o.keep_states = keep_states;
  o.shard = shard;
  return rewardgen::rollout(*unet_, schedule_, c, x_T, o, generator);
}

const at::Tensor& FewStepGenerator::output_latents(const Rollout& r) const {
  return config_.output == "x0" || config_.sampler == "lcm" ? r.x0 : r.sample;
}

at::Tensor FewStepGenerator::decode(const at::Tensor& latents) const { return decode_latents(*base_.vae, latents); }

void FewStepGenerator::save_state(TensorMap& out) const {
  if (config_.lora) {
    for (const auto& [name, tensor] : lora_parameters(adapters_)) out["generator/lora/" + name] = tensor;
  } else {
    add_module_state(out, "generator/unet/", *unet_);
  }
  if (ema_unet_) add_module_state(out, "generator/ema/", *ema_unet_);
}

void FewStepGenerator::load_state(const TensorMap& in) {
  if (config_.lora) {
    at::NoGradGuard no_grad;
    for (const auto& [name, tensor] : lora_parameters(adapters_)) {
      const auto it = in.find("generator/lora/" + name);
      if (it == in.end()) throw Error(str("checkpoint: missing LoRA tensor 'generator/lora/", name, "'"));
      at::Tensor target = tensor;
      target.copy_(it->second);
    }
  } else {
    load_module_state(in, "generator/unet/", *unet_);
  }
  if (ema_unet_) load_module_state(in, "generator/ema/", *ema_unet_);
}

std::vector<EmaPair> FewStepGenerator::ema_pairs() {
  if (!ema_unet_) return {};
  return {{ema_unet_.get(), unet_.get(), config_.ema_decay}};
}

Pipeline FewStepGenerator::sampling_pipeline() const {
  Pipeline p = base_;
  p.unet = ema_unet_ ? ema_unet_ : unet_;
  return p;
}

SamplerOptions FewStepGenerator::sampler_options() const {
  // The recipe's explicit timesteps step to the next one and end at ᾱ_final ("end"). DDPO's "zero"
  // samples the same there when set_alpha_to_one is false (ᾱ_final = ᾱ_0, the world's and SD's
  // schedulers); RLCM's "stay" only re-noises f after the image is made.
  const std::string output = config_.sampler == "lcm" ? "sample" : config_.output;  // an LCM's last sample is f
  return rewardgen::sampler_options(SamplerRecipe{config_.sampler, steps(), config_.timesteps, "trailing", config_.eta,
                                                  config_.guidance, output});
}

void FewStepGenerator::export_pipeline(const std::string& dir) const {
  Pipeline p = base_;
  if (ema_unet_) {
    p.unet = ema_unet_;
  } else if (config_.lora) {
    // A merged copy: the same adapters on a fresh base UNet, folded in by merge_lora, so that the
    // exported UNet needs no adapters at sampling time and the trained one keeps its own.
    p.unet = load_unet(model_dir_ + "/unet", {}, Logger(LogLevel::warn));
    at::Generator unused = at::make_generator<at::CPUGeneratorImpl>(0);
    LoraAdapters copy = add_lora(*p.unet, config_.lora_config, unused);
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < copy.modules.size(); ++i) {
      copy.modules[i].adapter->A.copy_(adapters_.modules[i].adapter->A);
      copy.modules[i].adapter->B.copy_(adapters_.modules[i].adapter->B);
    }
    merge_lora(copy);
  } else {
    p.unet = unet_;
  }
  p.scheduler.recipe = sampler_recipe(sampler_options());
  save_pipeline(dir, p, at::kHalf);
  // The adapters themselves too (PEFT naming, diffusers' file name), for use on the base model.
  if (config_.lora) save_lora(dir + "/pytorch_lora_weights.safetensors", adapters_);
  // The world CLIP's vision tower travels along so that `eval` measures FD and diversity.
  if (std::filesystem::exists(model_dir_ + "/image_encoder")) copy_folder_files(model_dir_ + "/image_encoder", dir + "/image_encoder");
}

}  // namespace rewardgen
