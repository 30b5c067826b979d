#include "cli/sampler_flags.h"
#include "cli/validators.h"

#include "core/error.h"
#include "core/log.h"
#include "core/paths.h"
#include "schedulers/timesteps.h"

namespace rewardgen::cli {
namespace {

std::string comma_list(const std::vector<int64_t>& values) {
  std::string out;
  for (const int64_t v : values) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return out;
}

}  // namespace

void add_sampler_flags(CLI::App& sub, SamplerFlags& f, const SamplerOptions& d) {
  f.values = d;
  f.sampler = sub.add_option("--sampler", f.values.sampler, "ddim, ddpm, lcm or onestep (default: the model's recipe, else " + d.sampler + ")")
                  ->check(CLI::IsMember({"ddim", "ddpm", "lcm", "onestep"}));
  f.steps = sub.add_option("--steps", f.values.steps, "sampling steps (default: the recipe's, else " + std::to_string(d.steps) + ")")
                ->check(CLI::Range(int64_t{1}, int64_t{10000}));
  f.timesteps = sub.add_option("--timesteps", f.values.timesteps,
                                "explicit descending timesteps, comma-separated (e.g. 759,499,259,19); sets the steps and "
                                "replaces the spacing rule (default: the recipe's, else the rule's)")
                    ->delimiter(',')
                    ->expected(1, 10000)
                    ->check(CLI::Range(int64_t{0}, int64_t{1000000}));  // and below the scheduler's T, once it is read
  f.first_timestep = sub.add_option("--first-timestep", f.values.first_timestep,
                                     "LCM: the rule picks its steps from the grid cut to entries <= this timestep, the first "
                                     "drawn from pure noise (e.g. 759: 759, 579, 379, 199); -1: the whole grid (default: the recipe's, else -1)")
                         ->check(CLI::Range(int64_t{-1}, int64_t{1000000}))
                         ->excludes(f.timesteps);
  f.cfg = sub.add_option("--cfg", f.values.guidance_scale,
                         "guidance scale w (CFG; LCM: its w embedding); 1 = none (default: the recipe's, else " +
                             str(d.guidance_scale) + ")")
              ->check(finite_range(0.0, 1000.0));
  f.eta = sub.add_option("--eta", f.values.eta, "DDIM stochasticity η (default: the recipe's, else 0)")->check(finite_range(0.0, 1000.0));
  f.spacing = sub.add_option("--spacing", f.values.timestep_spacing,
                                 "DDIM/DDPM timestep spacing: leading, trailing, linspace; LCM: rlcm for RLCM's rule "
                                 "(999, 759, 519, 279), else diffusers' (999, 759, 499, 259) (default: the recipe's, else leading)")
                  ->check(CLI::IsMember({"leading", "trailing", "linspace", "rlcm"}))
                  ->excludes(f.timesteps);
  f.output = sub.add_option("--output", f.values.output, "sample: the last step's x_prev | x0: its x̂₀ (default: the recipe's, else sample)")
                 ->check(CLI::IsMember({"sample", "x0"}));
}

void add_precision_flag(CLI::App& command, std::string& precision) {
  command.add_option("--precision", precision,
                     "auto | fp32 | bf16: the dtype of the models (auto: bf16 where the CPU has AMX or AVX512-BF16)")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}))
      ->capture_default_str();
}

SamplerOptions resolve_sampler(const SamplerFlags& f, const SchedulerConfig& scheduler, const std::string& model, const Logger& log) {
  if (f.first_timestep->count() > 0) check_first_timestep(f.values.first_timestep, scheduler.num_train_timesteps, "--first-timestep");
  if (f.timesteps->count() > 0) {
    check_timestep_list(f.values.timesteps, scheduler.num_train_timesteps, "--timesteps");
    const auto listed = static_cast<int64_t>(f.values.timesteps.size());
    if (f.steps->count() > 0 && f.values.steps != listed)
      throw Error(str("--steps ", f.values.steps, " disagrees with the ", listed, " entries of --timesteps (give one of the two)"));
  }
  const SamplerRecipe& recipe = scheduler.recipe;
  // Validated once resolved: a flag alone can be valid only with the recipe under it (e.g.
  // `--spacing rlcm` over an LCM's recipe, where the flags' own default sampler is DDIM).
  SamplerOptions o = f.values;
  if (!recipe.sampler.empty()) {
    o = sampler_options(recipe);
    o.height = f.values.height;
    o.width = f.values.width;
    if (f.sampler->count() > 0 && f.values.sampler != o.sampler) {
      o.sampler = f.values.sampler;
      o.timesteps.clear();
      o.first_timestep = -1;
    }
    if (f.steps->count() > 0 && f.values.steps != o.steps) {
      o.steps = f.values.steps;
      o.timesteps.clear();
    }
    if (f.cfg->count() > 0) o.guidance_scale = f.values.guidance_scale;
    if (f.eta->count() > 0) o.eta = f.values.eta;
    if (f.output->count() > 0) o.output = f.values.output;
    if (f.spacing->count() > 0) {
      o.timestep_spacing = f.values.timestep_spacing;
      o.timesteps.clear();
    }
    if (f.first_timestep->count() > 0) {
      o.first_timestep = f.values.first_timestep;
      o.timesteps.clear();
    }
  }
  if (f.timesteps->count() > 0) {
    o.timesteps = f.values.timesteps;
    o.steps = static_cast<int64_t>(o.timesteps.size());
  }
  const size_t given = f.sampler->count() + f.steps->count() + f.timesteps->count() + f.first_timestep->count() +
                       f.cfg->count() + f.eta->count() + f.spacing->count() + f.output->count();
  const RolloutOptions rollout = rollout_options(o, scheduler);  // validates; the timesteps it will sample
  if (!recipe.sampler.empty())
    log.info(str("sampling as ", model, "'s recipe", given > 0 ? " with the given flags over it" : "", ": ", o.sampler, ", ",
                 o.steps, o.steps == 1 ? " step at " : " steps at ", comma_list(rollout.timesteps), ", guidance ",
                 o.guidance_scale, ", eta ", o.eta, ", output ", o.output));
  return o;
}

std::vector<world::EvalPrompt> WorldPromptFlags::lines() const {
  const std::string path = file.empty() ? shipped_file("world/eval_prompts.jsonl") : file;
  return world::balanced_subset(world::read_prompts_file(path), limit);
}

void add_world_prompt_flags(CLI::App& command, WorldPromptFlags& flags) {
  command.add_option("--prompts", flags.file, "prompts file (JSON lines or one prompt a line); default: the shipped eval set");
  command.add_option("--limit", flags.limit, "task-balanced subset of this many prompts (0: all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}))
      ->capture_default_str();
}

}  // namespace rewardgen::cli
