// rewardgen ascent: gradient ascent on a model's images with a reward, pixel by pixel, judged by the
// world's checker along the way (eval/reward_ascent.h): does the reward's gradient lead to images
// the checker passes, or does the reward climb while the checker's accuracy stays?
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/sampler_flags.h"
#include "cli/validators.h"
#include "core/device.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/eval_report.h"
#include "eval/reward_ascent.h"
#include "eval/world_eval.h"
#include "io/image.h"
#include "io/json_config.h"
#include "io/output_paths.h"
#include "models/diffusers_io.h"
#include "sampling/pipeline.h"

namespace rewardgen::cli {
namespace {

struct AscentArgs {
  std::string model, reward, out, device = "cpu";
  WorldPromptFlags prompts{"", 96};
  SamplerFlags flags;
  uint64_t seed = 0;
  RewardAscentOptions ascent;
};

// One line per judged step: the reward's mean and the checker's accuracy per task (%).
void print_points(const RewardAscentResult& result) {
  std::printf("%6s %12s", "step", "reward");
  for (const auto& [task, accuracy] : result.points.front().accuracy) std::printf(" %14s", task.c_str());
  std::printf("\n");
  for (const RewardAscentPoint& point : result.points) {
    std::printf("%6lld %12.4f", static_cast<long long>(point.step), point.reward);
    for (const auto& [task, accuracy] : point.accuracy) std::printf(" %14.1f", 100 * accuracy);
    std::printf("\n");
  }
}

void run_ascent(const AscentArgs& a, const Context& context) {
  validate(a.ascent);  // every number checked before anything is loaded or written
  refuse_output_over_inputs(a.out, {a.model, a.prompts.file});
  const std::vector<world::EvalPrompt> lines = a.prompts.lines();
  LoadOptions load;
  load.device = parse_device(a.device);
  RewardContext reward_context;
  reward_context.device = load.device;
  reward_context.log = context.log;
  const std::unique_ptr<Reward> reward = builtin_reward_registry().make(a.reward, reward_context);
  if (!reward->differentiable()) throw Error(str("--reward: '", a.reward, "' is not differentiable: it has no gradient to climb"));
  const Pipeline pipeline = load_pipeline(a.model, load, context.log);
  const SamplerOptions sampler = resolve_sampler(a.flags, pipeline.scheduler, a.model, context.log);
  prepare_output_folder(a.out);
  const TextToImage model(pipeline, ClipTokenizer::from_directory(pipeline.tokenizer_dir));
  const std::shared_ptr<ClipVisionModel> image_encoder = load_eval_image_encoder(a.model, load, context.log);

  WorldEvalOptions eval_options;
  eval_options.sampler = sampler;
  eval_options.seed = a.seed;
  eval_options.diversity_prompts = 0;
  ProgressBar sampling("sample", static_cast<int64_t>(lines.size()));
  // The starting images, their FD measured with them (none for fewer than 2 lines or no encoder).
  const WorldEvalResult start = evaluate_world(model, lines, eval_options, image_encoder.get(), &sampling);
  sampling.finish();
  ProgressBar climbing("ascent", a.ascent.steps);
  const RewardAscentResult result = ascend_reward(*reward, start.generated.to(load.device), lines, a.ascent, &climbing);
  climbing.finish();

  Json points = Json::array();
  for (const RewardAscentPoint& point : result.points)
    points.push_back({{"step", point.step}, {"reward", point.reward}, {"accuracy", point.accuracy}});
  Json report{{"model", a.model},
              {"prompts", a.prompts.source()},
              {"images", lines.size()},
              {"sampler", sampler_to_eval_json(sampler)},
              {"seed", a.seed},
              {"reward", reward->name()},
              {"steps", a.ascent.steps},
              {"lr", a.ascent.lr},
              {"points", points}};
  const at::Tensor after = result.images.to(at::kCPU);
  if (start.frechet_distance >= 0)
    report["frechet_distance"] = {{"start", start.frechet_distance},
                                  {"end", world_frechet_distance(*image_encoder, after, lines, a.seed)}};
  save_json_file(a.out + "/ascent.json", report);
  save_png(a.out + "/start.png", eval_grid(start.generated.to(at::kCPU), lines));
  save_png(a.out + "/end.png", eval_grid(after, lines));
  print_points(result);
  if (report.contains("frechet_distance"))
    std::printf("FD %.4f -> %.4f\n", report["frechet_distance"]["start"].get<double>(), report["frechet_distance"]["end"].get<double>());
  std::printf("wrote %s/ascent.json, start.png and end.png (a row of 8 per task)\n", a.out.c_str());
}

}  // namespace

void add_ascent_command(CLI::App& app, Context& context, Commands& commands) {
  auto a = std::make_shared<AscentArgs>();
  auto* sub = app.add_subcommand(
      "ascent",
      "Climb a reward by gradient ascent on a model's images, pixel by pixel, and judge them with the world's checker "
      "as they change: is the reward's gradient a way to better images or a way to hack it?");
  sub->add_option("--model", a->model, "pipeline folder whose samples are the starting images, e.g. models/world/lcm")->required();
  sub->add_option("--reward", a->reward, "a differentiable reward spec (see `reward --list`), e.g. world.compositional:log")->required();
  sub->add_option("--out", a->out, "output folder: ascent.json, start.png and end.png")->required();
  add_world_prompt_flags(*sub, a->prompts);
  SamplerOptions defaults;
  defaults.guidance_scale = 4.0;
  add_sampler_flags(*sub, a->flags, defaults);
  sub->add_option("--seed", a->seed, "noise seed: the batch that starts at prompt i draws its noise from seed + i (the same --batch, the same images)")->check(CLI::NonNegativeNumber)->capture_default_str();
  sub->add_option("--iterations", a->ascent.steps, "Adam steps on the pixels (--steps is the sampler's)")->check(CLI::Range(int64_t{1}, int64_t{100000}))->capture_default_str();
  sub->add_option("--lr", a->ascent.lr, "Adam's step size in the [-1, 1] pixel scale, in (0, 10]")
      ->check(finite_range(0.0, 10.0))  // 0 passes here and is refused with the other options (validate)
      ->capture_default_str();
  sub->add_option("--report-every", a->ascent.report_every, "judge with the checker every this many steps")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}))
      ->capture_default_str();
  sub->add_option("--batch", a->ascent.batch, "images per reward call")->check(CLI::Range(int64_t{1}, int64_t{4096}))->capture_default_str();
  sub->add_option("--device", a->device, "cpu | cuda | cuda:N")->capture_default_str();
  commands.push_back({sub, [a, &context] { run_ascent(*a, context); }});
}

}  // namespace rewardgen::cli
