#pragma once
// The sampler flags `sample`, `eval` and `ascent` share, and how they combine with a generator's
// recipe: a folder whose scheduler_config.json carries "rewardgen_recipe" samples as it says with no
// flags; each flag given on the command line overrides its part of the recipe. Also the prompt
// flags of the commands that sample the world's evaluation prompts (`eval`, `ascent`).
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "sampling/text_to_image.h"
#include "world/prompts.h"

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

// --prompts FILE and --limit N: the world's held-out evaluation prompts (or a file's), and a
// task-balanced subset of them.
struct WorldPromptFlags {
  std::string file;   // "" = the shipped evaluation set
  int64_t limit = 0;  // 0 = all; its value when the flags are added is the default shown
  std::vector<world::EvalPrompt> lines() const;  // read (Error naming the file and line) and subset
  std::string source() const { return file.empty() ? "world:eval" : file; }  // as eval.json records it
};
void add_world_prompt_flags(CLI::App& command, WorldPromptFlags& flags);

}  // namespace rewardgen::cli
