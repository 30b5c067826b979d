#pragma once
// The sampler flags `sample` and `eval` share, and how they combine with a generator's recipe: a
// folder whose scheduler_config.json carries "rewardgen_recipe" samples as it says with no flags;
// each flag given on the command line overrides its part of the recipe.
#include <CLI/CLI.hpp>

#include <string>

#include "sampling/text_to_image.h"

namespace rewardgen {
class Logger;
}

namespace rewardgen::cli {

struct SamplerFlags {
  SamplerOptions values;  // the flags' values (their defaults where not given)
  CLI::Option *sampler = nullptr, *steps = nullptr, *cfg = nullptr, *eta = nullptr, *spacing = nullptr, *output = nullptr,
              *timesteps = nullptr, *first_timestep = nullptr;
};

// Adds --sampler, --steps, --timesteps, --first-timestep, --cfg, --eta, --spacing, --output with
// `defaults` as the values without a recipe.
void add_sampler_flags(CLI::App& command, SamplerFlags& flags, const SamplerOptions& defaults);

// Adds --precision (auto | fp32 | bf16: the dtype the models are loaded in) into `precision`.
void add_precision_flag(CLI::App& command, std::string& precision);

// The recipe (scheduler.recipe) with the given flags applied over it, or the flags alone when the model
// has none. Changing the sampler, the steps, the spacing or the first timestep drops the recipe's
// explicit timestep list (a changed sampler also its first_timestep); --timesteps replaces it and sets
// the steps. Error on a list outside the scheduler's [0, T) or not strictly descending, on --steps that
// disagrees with --timesteps, and on options the sampler refuses (validate).
SamplerOptions resolve_sampler(const SamplerFlags& flags, const SchedulerConfig& scheduler, const std::string& model,
                               const Logger& log);

}  // namespace rewardgen::cli
