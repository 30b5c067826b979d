#include "methods/reward_backprop.h"

#include "core/error.h"
#include "io/atomic_file.h"
#include "core/log.h"
#include "eval/eval_report.h"
#include "eval/periodic_eval.h"
#include "text/prompt_lines.h"

namespace rewardgen {

void read_reward_backprop_config(ConfigReader& r, RewardBackpropConfig& c) {
  ConfigReader trainer = r.child("trainer");
  read_trainer_config(trainer, c.trainer);
  ConfigReader generator = r.child("generator");
  read_generator_config(generator, c.generator);
  r.optional("batch_size", c.batch_size, Range{1, 4096})
      .optional("eval_limit", c.eval_limit, Range{1, 504})
      .optional("prompts_file", c.prompts_file)
      .optional_choice("precision", c.precision, {"fp32", "bf16", "auto"});
  if (r.has("rewards")) {
    const Json& rewards = r.object().at("rewards");
    if (!rewards.is_object() || rewards.empty())
      throw Error(str(r.file(), ": 'rewards' must be a non-empty object {\"reward spec\": weight, ...}"));
    c.rewards.clear();
    const RewardRegistry registry = builtin_reward_registry();
    for (const auto& [spec, weight] : rewards.items()) {
      if (!weight.is_number() || !std::isfinite(weight.get<double>()) || weight.get<double>() < 0)
        throw Error(str(r.file(), ": rewards.", spec, " must be a finite weight >= 0, got ", weight.dump()));
      // Known names are checked here, before a run folder is written; a spec's argument (a folder)
      // is checked when the reward is built.
      if (!registry.contains(spec.substr(0, spec.find(':'))))
        throw Error(str(r.file(), ": rewards: unknown reward '", spec, "' (see rewardgen reward --list)"));
      c.rewards.emplace_back(spec, weight.get<double>());
    }
    r.mark_read("rewards");
  }
  // Read once here too, so that a missing or malformed file stops the run before anything is written.
  if (!c.prompts_file.empty() && text::read_prompt_texts(c.prompts_file).empty())
    throw Error(str(r.file(), ": prompts_file '", c.prompts_file, "' holds no prompt"));
}

GradientNormalization GradientNormalizationConfig::mode() const {
  if (!enabled) return GradientNormalization::none;
  return scope == "batch" ? GradientNormalization::per_batch : GradientNormalization::per_sample;
}

void read_gradient_normalization(ConfigReader& r, GradientNormalizationConfig& c) {
  r.optional("normalize_gradients", c.enabled)
      .optional_choice("normalize_scope", c.scope, {"sample", "batch"})
      .optional("normalize_eps", c.eps, Range{0, 1, true, false});
}

void add_gradient_normalization_json(Json& out, const GradientNormalizationConfig& c) {
  out.update({{"normalize_gradients", c.enabled}, {"normalize_scope", c.scope}, {"normalize_eps", c.eps}});
}

Json reward_backprop_config_json(const RewardBackpropConfig& c) {
  Json rewards = Json::object();
  for (const auto& [spec, weight] : c.rewards) rewards[spec] = weight;
  return {{"trainer", trainer_config_json(c.trainer)}, {"generator", generator_config_json(c.generator)},
          {"batch_size", c.batch_size}, {"rewards", rewards}, {"eval_limit", c.eval_limit},
          {"prompts_file", c.prompts_file}, {"precision", c.precision}};
}

RewardBackpropTask::RewardBackpropTask(const RewardBackpropConfig& config, const std::string& model_dir, const Logger& log,
                                       const at::Device& device)
    : base_config_(config), precision_(parse_precision(config.precision, device)), generator_(config.generator, model_dir, log, device) {
  const RewardRegistry registry = builtin_reward_registry();
  RewardContext context;
  context.device = device;
  context.log = log;
  for (const auto& [spec, weight] : config.rewards) {
    // The world CLIP rewards judge with the CLIP of the model folder trained from, unless the spec names one.
    const std::string resolved = spec == "world.clip" || spec == "world.clip_contrast" ? spec + ":" + model_dir : spec;
    std::shared_ptr<Reward> reward = registry.make(resolved, context);
    if (weight > 0) rewards_.push_back({reward, weight, spec});  // logged as `reward/<spec>`, not the resolved path
  }
  if (!config.prompts_file.empty()) {
    for (text::PromptLine& line : text::read_prompt_texts(config.prompts_file)) file_prompts_.push_back(std::move(line.text));
    if (file_prompts_.empty()) throw Error(str("prompts_file '", config.prompts_file, "' holds no prompt"));
  }
  image_encoder_ = load_eval_image_encoder(model_dir, LoadOptions{at::kFloat, device}, log);
}

std::vector<std::string> RewardBackpropTask::sample_prompts(int64_t count, at::Generator& generator) const {
  // The training split is skewed (1,140 position prompts, 14 single_object): a task uniformly, then a prompt.
  world::Rng rng(static_cast<uint64_t>(at::randint(0, int64_t{1} << 62, {1}, generator).item<int64_t>()));
  std::vector<std::string> prompts;
  for (int64_t i = 0; i < count; ++i)
    prompts.push_back(file_prompts_.empty() ? prompts_.sample(rng).text()
                                            : file_prompts_[static_cast<size_t>(rng.next() % file_prompts_.size())]);
  return prompts;
}

void RewardBackpropTask::add_reward_means(const RewardDirection& d, MetricsWriter::Values& values) {
  for (const auto& [name, scores] : d.scores) values.emplace_back("reward/" + name, scores.mean().item<double>());
  // ‖∂rᵢ/∂x‖ before any normalisation: what sets a raw reward's pull against the other terms.
  for (const auto& [name, norms] : d.norms) values.emplace_back("reward_grad_norm/" + name, norms.mean().item<double>());
  for (const auto& [name, gains] : d.gains) values.emplace_back("lookahead_gain/" + name, gains.mean().item<double>());
}

MetricsWriter::Values RewardBackpropTask::evaluate(int64_t steps_done, const std::string& samples_dir) {
  const TextToImage model(generator_.sampling_pipeline(), ClipTokenizer::from_directory(generator_.tokenizer_dir()));
  PeriodicEvalOptions options;
  options.sampler = generator_.sampler_options();
  options.prompts = base_config_.eval_limit;
  options.encoder = image_encoder_.get();
  options.grid_path = eval_grid_path(samples_dir, steps_done);
  return periodic_world_eval(model, options);
}

}  // namespace rewardgen
