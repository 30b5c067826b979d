#pragma once
// The files an evaluation leaves in its folder, written the same way by `rewardgen eval` and by the
// training job: eval.json (every metric, the sampler and seed), verdicts.jsonl (one line per
// prompt: task, prompt, verdict, clause fraction, rewards), grid.png (a row of 8 per task), and with
// save_images one PNG per line under images/ (and images/reversed_NNNNN.png for the relation
// control's second image of line NNNNN).
#include <string>
#include <vector>

#include "eval/metrics_plot.h"
#include "eval/world_eval.h"

namespace rewardgen {

struct EvalReportInfo {
  std::string model, prompts = "world:eval";
  SamplerOptions sampler;
  uint64_t seed = 0;
  bool save_images = false;
  Json extra = Json::object();  // more keys for eval.json (the training job: its steps and wall-clock)
};

// The sampler as eval.json records it ("sampler": name, steps, guidance_scale, eta, timestep_spacing,
// timesteps, output), and back.
Json sampler_to_eval_json(const SamplerOptions& sampler);
// Read back and validated; Error
// naming `file` and the key when one is missing or malformed.
SamplerOptions sampler_from_eval_json(const Json& sampler, const std::string& file);

// Writes the files into `dir` (which must exist); returns eval.json's content.
Json write_eval_report(const std::string& dir, const WorldEvalResult& result, const std::vector<world::EvalPrompt>& lines,
                       const EvalReportInfo& info);

// The evaluated images as a grid, one row of 8 per task (grid.png).
at::Tensor eval_grid(const WorldEvalResult& result, const std::vector<world::EvalPrompt>& lines);
at::Tensor eval_grid(const at::Tensor& images, const std::vector<world::EvalPrompt>& lines);  // images [N, 3, H, W], one per line

// Loads what `eval` needs next to a pipeline folder: the world CLIP's vision tower from
// <model>/image_encoder (null, with a warning, when absent: no FD or diversity).
std::shared_ptr<ClipVisionModel> load_eval_image_encoder(const std::string& model, const LoadOptions& load, const Logger& log);

// A Markdown table of eval.json files side by side, one row per model: accuracy per task and
// overall (%), the position controls (position_reversed, relation_control.followed), FD, diversity,
// NFE and images/s; `names` label the rows (default: each file's model).
std::string eval_comparison_table(const std::vector<std::string>& eval_files, const std::vector<std::string>& names = {});

// One figure of an eval.json by its path of keys, e.g. "accuracy/overall", "frechet_distance",
// "rewards/world.compositional/mean"; Error naming `file` and the path when it is missing or not a
// number.
double eval_metric(const Json& eval, const std::string& path, const std::string& file);

// The points of a trade-off plot (accuracy against FD, say): one per eval.json at (x_path, y_path),
// accuracies in %. `series` names each file's series (files of one series joined in the order given;
// empty: all in one, "evaluations"); `names` label the points (default: each file's model).
std::vector<PlotSeries> eval_tradeoff_series(const std::vector<std::string>& eval_files, const std::vector<std::string>& names,
                                             const std::vector<std::string>& series, const std::string& x_path,
                                             const std::string& y_path);

}  // namespace rewardgen
