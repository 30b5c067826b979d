#include "eval/periodic_eval.h"

#include <cstdio>

#include "eval/eval_report.h"
#include "eval/world_eval.h"
#include "io/image.h"

namespace rewardgen {

MetricsWriter::Values periodic_world_eval(const TextToImage& model, const PeriodicEvalOptions& o) {
  at::NoGradGuard no_grad;
  WorldEvalOptions options;
  options.sampler = o.sampler;
  options.diversity_prompts = 0;
  const std::vector<world::EvalPrompt> lines = world::balanced_subset(world::eval_prompts(), o.prompts);
  const WorldEvalResult result = evaluate_world(model, lines, options, o.encoder);
  if (!o.grid_path.empty()) save_png(o.grid_path, eval_grid(result, lines));
  MetricsWriter::Values values;
  for (const auto& [task, accuracy] : result.accuracy) values.emplace_back(o.prefix + "accuracy/" + task, accuracy);
  if (result.frechet_distance >= 0) values.emplace_back(o.prefix + "eval/fd", result.frechet_distance);
  // The position task's control (docs/world.md): position accuracy means the relation is followed
  // only where it stands above this.
  if (result.position_reversed >= 0) values.emplace_back(o.prefix + "eval/position_reversed", result.position_reversed);
  return values;
}

std::string eval_grid_path(const std::string& samples_dir, int64_t steps_done, const std::string& suffix) {
  char name[40];
  std::snprintf(name, sizeof name, "/step_%08lld", static_cast<long long>(steps_done));
  return samples_dir + name + suffix + ".png";
}

}  // namespace rewardgen
