#pragma once
// Evaluation of a text-to-image model on the embedded world (docs/world.md): checker accuracy per
// task and overall on the held-out prompts, Fréchet distance to real scenes and per-prompt
// diversity in tiny-CLIP image-embedding space, speed (images/s, ms/image) and network
// evaluations per image.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/json_config.h"
#include "models/clip.h"
#include "rewards/reward.h"
#include "sampling/text_to_image.h"
#include "world/prompts.h"

namespace rewardgen {

class ProgressBar;

struct WorldEvalOptions {
  SamplerOptions sampler;
  uint64_t seed = 0;              // the batch that starts at line i draws its noise from seed + i
  int64_t batch = 32;
  int64_t diversity_prompts = 12;  // distinct prompts sampled with several seeds; 0 disables
  int64_t diversity_seeds = 4;
  // Scored on every generated image (no gradient): mean/std, and Spearman against the checker.
  std::vector<std::shared_ptr<Reward>> rewards;
  // Sample every position line again from the same noise with its relation reversed (RelationControl).
  bool relation_control = false;
};

// The relation control with the noise fixed: each position line sampled twice from the same noise,
// once as asked and once with its relation reversed (left ↔ right, above ↔ below). A model that
// follows the relation turns the drawing round, so each image passes its own prompt; one that puts
// the objects where the noise puts them draws the same picture twice, so both pass the same one of
// the two prompts (or neither). Unlike WorldVerdicts::position_reversed this separates following the
// word from the noise's luck on each line.
struct RelationControl {
  int64_t lines = 0;            // position lines
  double followed = 0;          // share whose two images each pass their own prompt
  double ignored = 0;           // share whose two images both pass the prompt as asked, or both the reversed one
  int64_t objects_matched = 0;  // objects of the first image with one of the same colour and shape in the second
  double median_move = -1;      // px, from each matched object to the nearest such object; < 0: none matched
  double moved_under_3px = 0;   // share of the matched objects
  Json to_json() const;
};
// Images [P, 3, 64, 64] in [-1, 1] sampled for position prompts and [P, ...] for the same prompts
// with the relation reversed, line k from the same noise in both; Error on other tasks or sizes, or
// on no prompt.
RelationControl relation_control(const at::Tensor& images, const at::Tensor& reversed_images,
                                 const std::vector<world::Prompt>& prompts);

// A reward over the evaluated images, and how well it ranks them the way the checker does.
struct RewardSummary {
  std::vector<double> scores;     // per line
  double mean = 0, std = 0;       // std: population (divides by N)
  double spearman_passed = 0;     // Spearman ρ with the checker's verdict (0/1); NaN if either is constant
  double spearman_clauses = 0;    // ... with the fraction of the prompt's clauses that passed
};

struct WorldEvalResult {
  std::map<std::string, double> accuracy;  // per task present, and "overall" (mean over lines)
  std::vector<bool> passed;                // per line
  std::vector<double> clauses_passed;      // per line: the fraction of its clauses that passed
  double position_reversed = -1;           // see WorldVerdicts; < 0: no position line
  // With WorldEvalOptions::relation_control and some position line: the control, the lines it
  // sampled again and their images with the relation reversed ([P, 3, 64, 64], line order).
  std::optional<RelationControl> relation_control;
  std::vector<size_t> reversed_lines;
  at::Tensor reversed_generated;
  std::map<std::string, RewardSummary> rewards;  // by reward name
  at::Tensor generated;                    // [N, 3, 64, 64], the images in line order
  double frechet_distance = -1;            // < 0: not measured (no image encoder)
  double diversity = -1;                   // mean pairwise L2 distance of normalised embeddings
  double images_per_second = 0, ms_per_image = 0, nfe_per_image = 0;
  int64_t images = 0;
  Json to_json() const;
};

// The checker's verdicts on images [N, 3, 64, 64] in [-1, 1], image i judged against lines[i].
struct WorldVerdicts {
  std::map<std::string, double> accuracy;  // per task present, and "overall"
  std::vector<bool> passed;                // per line
  std::vector<double> clauses_passed;      // per line: the fraction of its clauses that passed
  // The control of the position task: the fraction of its images that pass their prompt with the
  // relation reversed (left ↔ right, above ↔ below). A model that draws the two objects without
  // regard to the relation passes the reversed prompt as often as its own, so position accuracy
  // means the relation was followed only as far as it exceeds this. < 0: no position line.
  double position_reversed = -1;
};
WorldVerdicts judge_world_images(const at::Tensor& images, const std::vector<world::EvalPrompt>& lines);

// FD of images [N, 3, 64, 64] (one per line) against real scenes rendered for the same lines
// (world::render_eval_scenes with `seed`), in the image encoder's embedding space.
double world_frechet_distance(const ClipVisionModel& image_encoder, const at::Tensor& images,
                              const std::vector<world::EvalPrompt>& lines, uint64_t seed);

// The images evaluate_world samples for `lines` and, with the relation control, samples again (every
// batch that holds a position line): what its `progress` counts to.
int64_t world_eval_sampled_images(const std::vector<world::EvalPrompt>& lines, const WorldEvalOptions& options);

// `image_encoder` (the world CLIP's vision tower with projection) may be null: no FD or diversity.
// `progress` is updated with the images sampled so far, the relation control's included.
WorldEvalResult evaluate_world(const TextToImage& model, const std::vector<world::EvalPrompt>& lines,
                               const WorldEvalOptions& options, const ClipVisionModel* image_encoder,
                               ProgressBar* progress = nullptr);

// Spearman's rank correlation: Pearson's correlation of the ranks, ties given their mean rank.
// NaN when either sequence is constant; Error on sizes that differ or fewer than 2 values.
double spearman_correlation(const std::vector<double>& a, const std::vector<double>& b);

// Fréchet distance between Gaussians fitted to two sets of feature rows [N, D] (FID's formula):
// ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½), computed in float64 through eigendecompositions.
double frechet_distance(const at::Tensor& features_a, const at::Tensor& features_b);

}  // namespace rewardgen
