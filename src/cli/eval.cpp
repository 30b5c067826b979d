// rewardgen eval: a model on the embedded world's held-out prompts (design §8): checker accuracy
// per task, Fréchet distance and diversity in tiny-CLIP image space, speed; eval.json, a grid and
// per-image verdicts in --out.
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "core/device.h"
#include "core/error.h"
#include "core/paths.h"
#include "core/progress.h"
#include "eval/world_eval.h"
#include "io/image.h"
#include "io/atomic_file.h"
#include "io/json_config.h"
#include "models/diffusers_io.h"
#include "rewards/reward.h"

namespace rewardgen::cli {
namespace {

struct EvalArgs {
  std::string model, prompts_file, out, device = "cpu";
  SamplerOptions sampler;
  int64_t limit = 0;
  std::vector<std::string> rewards;
  WorldEvalOptions options;
};

// One row of the grid per task (its first 8 images), so that a person sees every task at once.
at::Tensor task_grid(const WorldEvalResult& result, const std::vector<world::EvalPrompt>& lines) {
  std::vector<at::Tensor> rows;
  for (world::Task task : world::kTasks) {
    std::vector<at::Tensor> row;
    for (size_t i = 0; i < lines.size() && row.size() < 8; ++i)
      if (lines[i].task == task) row.push_back(result.generated[static_cast<int64_t>(i)]);
    while (!row.empty() && row.size() < 8) row.push_back(at::ones_like(row[0]));
    if (!row.empty()) rows.push_back(at::stack(row));
  }
  return make_grid(at::cat(rows), 8);
}

void run_eval(const EvalArgs& a, const Context& context) {
  validate(a.sampler);
  const std::vector<world::EvalPrompt> all =
      a.prompts_file.empty() ? world::read_prompts_file(shipped_file("world/eval_prompts.jsonl")) : world::read_prompts_file(a.prompts_file);
  const std::vector<world::EvalPrompt> lines = world::balanced_subset(all, a.limit);
  LoadOptions load;
  load.device = parse_device(a.device);
  const Pipeline pipeline = load_pipeline(a.model, load, context.log);
  const TextToImage model(pipeline, ClipTokenizer::from_directory(pipeline.tokenizer_dir));
  std::shared_ptr<ClipVisionModel> image_encoder;
  if (std::filesystem::exists(a.model + "/image_encoder/config.json"))
    image_encoder = load_clip_vision(a.model + "/image_encoder", load, context.log);
  else
    context.log.warn(str("no image_encoder/ in '", a.model, "': Fréchet distance and diversity are not measured"));
  WorldEvalOptions options = a.options;
  options.sampler = a.sampler;
  const RewardRegistry registry = builtin_reward_registry();
  RewardContext reward_context;
  reward_context.device = load.device;
  reward_context.log = context.log;
  for (const std::string& spec : a.rewards) options.rewards.push_back(registry.make(spec, reward_context));
  ProgressBar bar("eval", static_cast<int64_t>(lines.size()));
  const WorldEvalResult result = evaluate_world(model, lines, options, image_encoder.get(), &bar);
  bar.finish();

  std::filesystem::create_directories(a.out);
  Json report = result.to_json();
  report["model"] = a.model;
  report["prompts"] = a.prompts_file.empty() ? "world:eval" : a.prompts_file;
  report["sampler"] = {{"name", a.sampler.sampler}, {"steps", a.sampler.steps}, {"guidance_scale", a.sampler.guidance_scale},
                       {"eta", a.sampler.eta}, {"timestep_spacing", a.sampler.timestep_spacing}};
  report["seed"] = options.seed;
  save_json_file(a.out + "/eval.json", report);
  std::string verdicts;
  for (size_t i = 0; i < lines.size(); ++i) {
    Json line{{"index", i}, {"task", world::name(lines[i].task)}, {"prompt", lines[i].text}, {"passed", result.passed[i]},
              {"clauses_passed", result.clauses_passed[i]}};
    for (const auto& [name, summary] : result.rewards) line["rewards"][name] = summary.scores[i];
    verdicts += line.dump() + "\n";
  }
  write_file_atomic(a.out + "/verdicts.jsonl", verdicts);
  save_png(a.out + "/grid.png", task_grid(result, lines));
  std::cout << report.dump(2) << "\n";
}

}  // namespace

void add_eval_command(CLI::App& app, Context& context, Commands& commands) {
  auto a = std::make_shared<EvalArgs>();
  auto* sub = app.add_subcommand("eval", "Evaluate a model on the world's held-out prompts: checker accuracy per task, FD, diversity, speed");
  sub->add_option("--model", a->model, "pipeline folder, e.g. models/world")->required();
  sub->add_option("--out", a->out, "output folder: eval.json, grid.png (a row per task), verdicts.jsonl")->required();
  sub->add_option("--prompts", a->prompts_file, "prompts file (JSON lines or one prompt a line); default: the shipped eval set");
  sub->add_option("--limit", a->limit, "task-balanced subset of this many prompts (0: all)")->capture_default_str();
  sub->add_option("--sampler", a->sampler.sampler, "ddim | ddpm | lcm | onestep")->capture_default_str();
  sub->add_option("--steps", a->sampler.steps, "sampling steps")->capture_default_str();
  sub->add_option("--cfg", a->sampler.guidance_scale, "guidance weight (CFG, or LCM's w embedding)")->default_val(4.0);
  sub->add_option("--eta", a->sampler.eta, "DDIM stochasticity")->capture_default_str();
  sub->add_option("--seed", a->options.seed, "noise seed of the first prompt (prompt i: seed + i)")->capture_default_str();
  sub->add_option("--batch", a->options.batch, "images per sampler call")->check(CLI::PositiveNumber)->capture_default_str();
  sub->add_option("--diversity-prompts", a->options.diversity_prompts, "prompts sampled with several seeds for diversity (0: off)")
      ->capture_default_str();
  sub->add_option("--reward", a->rewards,
                  "reward to score every image with (repeatable; see `reward --list`): mean/std and Spearman vs the checker");
  sub->add_option("--device", a->device, "cpu | cuda | cuda:N")->capture_default_str();
  commands.push_back({sub, [a, &context] { run_eval(*a, context); }});
}

}  // namespace rewardgen::cli
