// rewardgen eval: a model on the embedded world's held-out prompts (docs/world.md): checker accuracy
// per task, Fréchet distance and diversity in tiny-CLIP image space, speed; eval.json, a grid and
// per-image verdicts in --out.
#include <iostream>

#include "cli/commands.h"
#include "models/precision.h"
#include "cli/sampler_flags.h"
#include "core/device.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/eval_report.h"
#include "eval/world_eval.h"
#include "io/image.h"
#include "io/atomic_file.h"
#include "io/json_config.h"
#include "io/output_paths.h"
#include "models/diffusers_io.h"
#include "sampling/pipeline.h"
#include "rewards/reward.h"

namespace rewardgen::cli {
namespace {

struct EvalArgs {
  std::string model, out, device = "cpu", precision = "auto";
  WorldPromptFlags prompts;
  SamplerFlags flags;
  bool save_images = false;
  std::vector<std::string> rewards;
  WorldEvalOptions options;
};

void run_eval(const EvalArgs& a, const Context& context) {
  refuse_output_over_inputs(a.out, {a.model, a.prompts.file});
  const std::vector<world::EvalPrompt> lines = a.prompts.lines();
  LoadOptions load;
  load.device = parse_device(a.device);
  const Precision precision = parse_precision(a.precision, load.device);
  load.dtype = dtype_of(precision);
  const Pipeline pipeline = load_pipeline(a.model, load, context.log);
  const SamplerOptions sampler = resolve_sampler(a.flags, pipeline.scheduler, a.model, context.log);
  // The output folder before any sampling: an unwritable target fails now, not after the evaluation.
  prepare_output_folder(a.out);
  const TextToImage model(pipeline, ClipTokenizer::from_directory(pipeline.tokenizer_dir));
  const std::shared_ptr<ClipVisionModel> image_encoder = load_eval_image_encoder(a.model, load, context.log);
  WorldEvalOptions options = a.options;
  options.sampler = sampler;
  const RewardRegistry registry = builtin_reward_registry();
  RewardContext reward_context;
  reward_context.device = load.device;
  reward_context.log = context.log;
  for (const std::string& spec : a.rewards) options.rewards.push_back(registry.make(spec, reward_context));
  ProgressBar bar("eval", world_eval_sampled_images(lines, options));
  const WorldEvalResult result = evaluate_world(model, lines, options, image_encoder.get(), &bar);
  bar.finish();

  const Json report = write_eval_report(a.out, result, lines,
                                        {a.model, a.prompts.source(), sampler, options.seed,
                                         a.save_images, Json{{"precision", to_string(precision)}}});
  std::cout << report.dump(2) << "\n";
}

}  // namespace

void add_eval_command(CLI::App& app, Context& context, Commands& commands) {
  auto a = std::make_shared<EvalArgs>();
  auto* sub = app.add_subcommand("eval", "Evaluate a model on the world's held-out prompts: checker accuracy per task, FD, diversity, speed");
  sub->add_option("--model", a->model, "pipeline folder, e.g. models/world")->required();
  sub->add_option("--out", a->out, "output folder: eval.json, grid.png (a row per task), verdicts.jsonl")->required();
  add_world_prompt_flags(*sub, a->prompts);
  SamplerOptions defaults;
  defaults.guidance_scale = 4.0;
  add_sampler_flags(*sub, a->flags, defaults);
  add_precision_flag(*sub, a->precision);
  sub->add_flag("--save-images", a->save_images, "also write images/NNNNN.png, one per evaluated line (verdicts.jsonl's index)");
  sub->add_flag("--relation-control", a->options.relation_control,
                "sample each position prompt again from the same noise with its relation reversed and report whether the "
                "drawing turned with the word (eval.json's relation_control: followed, ignored, how far the objects moved)");
  sub->add_option("--seed", a->options.seed, "noise seed: the batch that starts at prompt i draws its noise from seed + i (the same --batch, the same images)")
      ->check(CLI::NonNegativeNumber)  // CLI11 would wrap -5 around to 2^64 - 5
      ->capture_default_str();
  sub->add_option("--batch", a->options.batch, "images per sampler call")->check(CLI::Range(int64_t{1}, int64_t{4096}))->capture_default_str();
  sub->add_option("--diversity-prompts", a->options.diversity_prompts, "prompts sampled with several seeds for diversity (0: off)")
      ->check(CLI::Range(int64_t{0}, int64_t{100000}))
      ->capture_default_str();
  sub->add_option("--reward", a->rewards,
                  "reward to score every image with (repeatable; see `reward --list`): mean/std and Spearman vs the checker");
  sub->add_option("--device", a->device, "cpu | cuda | cuda:N")->capture_default_str();
  commands.push_back({sub, [a, &context] { run_eval(*a, context); }});
}

}  // namespace rewardgen::cli
