#pragma once
// Reward throughput: images scored per second at a batch size and image size, and for a
// differentiable reward the time of score + backward to the pixels (what gradient methods pay).
#include "models/clip_model.h"
#include "rewards/reward.h"

namespace rewardgen {

struct RewardBenchOptions {
  int64_t batch = 32, size = 64;
  int repeats = 3;        // timed repetitions after one warm-up; the median is reported
  bool backward = false;  // also time score + backward (differentiable rewards only)
  std::string prompt = "a photo of a cat";  // every image's prompt
};

struct RewardBenchResult {
  double score_s = 0, backward_s = 0;  // median seconds per batch
  int64_t batch = 0;
  double images_per_s() const { return static_cast<double>(batch) / score_s; }
  double backward_images_per_s() const { return backward_s > 0 ? static_cast<double>(batch) / backward_s : 0.0; }
};

// Scores seeded random images in [-1, 1], each with options.prompt.
RewardBenchResult bench_reward(Reward& reward, const RewardBenchOptions& options);

// transformers CLIPModel with openai/clip-vit-large-patch14's architecture (the SD 1.x text
// encoder's family): vision hidden 1024, 24 layers, 16 heads, patch 14, 224², text hidden 768,
// 12 layers, 12 heads, projection 768, quick_gelu. Random weights.
ClipModel random_clip_vit_l14(const at::TensorOptions& options);

// ImageReward with the release's architecture (BLIP ViT-L/16 at 224², BERT-base with
// cross-attention, 768 -> ... -> 1 head), random weights, and a WordPiece vocabulary of just the
// benchmark prompt's words (every prompt is padded to 35 tokens, so the cost is the real one).
std::unique_ptr<Reward> random_image_reward(const RewardContext& context);

}  // namespace rewardgen
