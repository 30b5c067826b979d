#pragma once
// The embedded world's rewards (docs/rewards.md):
//   world.compositional  a differentiable, soft counterpart of the checker: soft palette-colour
//                        masks give each named colour a mass and a centroid; each clause of the
//                        prompt becomes a score in [0, 1] (present, size, count, relation) and the
//                        reward is their product, like the checker's "every clause holds". Shapes
//                        and counts cannot be read off soft masses: there the checker's hard
//                        detections scale the value, so the reward ranks like the checker while its
//                        gradient comes from the masses (shapes: the checker's factor with a
//                        straight-through gradient from a soft shape match of the object's box;
//                        counts: the hard count with one through the colour's mass).
//                        world.compositional:log is its logarithm.
//   world.clip[:DIR]     100·cos of the world CLIP's image and prompt embeddings (DIR: a folder
//                        with tokenizer/, text_encoder/, image_encoder/; default the shipped
//                        models/world)
//   world.clip_contrast[:DIR]
//                        the world CLIP's log-probability of the prompt against every prompt one
//                        edit away from it that the prompt's scenes do not satisfy
//                        (world::one_edit_negatives): log softmax over {prompt, negatives} of
//                        100·cos. world.clip rewards looking like the prompt in general; this one
//                        only the attributes that tell the prompt from its near misses (the other
//                        colour, the reversed relation, the other count, the swapped sizes), which
//                        the CLIP was trained on as hard negatives.
//   world.verifier:DIR   log σ of a learned verifier's logit that the checker passes (rewards/world_verifier.h)
//   world.jpeg           JPEG compressibility (−kB at quality 95) of the 64×64 images
#include <memory>

#include "rewards/clip_rewards.h"
#include "rewards/reward.h"
#include "world/checker.h"
#include "world/prompts.h"

namespace rewardgen {

struct SoftCheckerOptions {
  double colour_sigma = 20;     // RGB 0..255: width of the soft colour assignment
  double reject_distance = 70;  // the checker's threshold: a pixel this far is half colour, half background
  double relation_margin = 3;   // pixels, as the checker
  double relation_softness = 2; // pixels
  double shape_miss = 0.25;      // factor when no detection of the object's colour has its shape
  double shape_temperature = 0.05;  // of the softmax over the three shapes' soft IoUs
  // Scale of the shape factor's straight-through gradient (1: the soft shape match's own slope; 0: the
  // factor is a constant, world.compositional:no_shape_gradient; world.compositional:shape_gradient=S).
  double shape_gradient = 1;
  double count_sigma = 0.5;      // objects: the count factor is exp(−½((found − asked)/σ)²)
  // true: the reward is log of the product, Σ of the clauses' log-scores (world.compositional:log). Same
  // ranking; its gradient is Σ ∇fᵢ/fᵢ, so the clause that fails dominates (log σ(z) is linear in z
  // where σ(z) is flat) and satisfied clauses add almost nothing.
  bool log_score = false;
  // Scale of the presence gradient (0: off; world.compositional:presence_gradient=S): an object's mass
  // also gets the slope of the wide masks on the pixels of every object, so a missing colour says
  // "recolour an object" where the sharp masks are flat (blob_of in world_rewards.cpp).
  double presence_gradient = 0;
  // Scale of the growth gradient (0: off; world.compositional:size_gradient=S): a "large" object's
  // mass also gets the slope of the wide mask of its colour on the background pixels within a large
  // object's reach of it, so a small object can grow where the sharp masks are flat on the background
  // (the commonest way a colour_attr prompt fails: the large object drawn small).
  double size_gradient = 0;
  // Scale of the removal gradient (0: off; world.compositional:count_gradient=S): when the checker finds
  // more objects than a count prompt asks for, the count clause's straight-through gradient goes through
  // the colour's mass inside the boxes of the smallest surplus detections alone, so it says "erase that
  // one" instead of "less of this colour everywhere", which shrinks every object and removes none (the
  // commonest way R0's generators fail a count: "two blue circles" drawn as three).
  double count_gradient = 0;
};

class CompositionalReward : public Reward {
 public:
  explicit CompositionalReward(SoftCheckerOptions options = {}) : options_(options) {}
  at::Tensor score(const at::Tensor& images, const std::vector<std::string>& prompts) override;
  bool differentiable() const override { return true; }
  std::string name() const override;

  // Per-pixel soft membership of each palette colour: [B, 6, H, W], each in [0, 1].
  at::Tensor colour_masks(const at::Tensor& images) const;
  // Wide per-pixel colour memberships for the shape gradient: [B, 6, H, W], 1/(1 + d²/r²) with d the
  // pixel's RGB distance to the colour and r the checker's threshold (half at the threshold, like the
  // masks above). Its heavy tail keeps a slope on background pixels 130-270 away, where the softmax
  // masks are flat (e^-20), so the gradient can say "fill this corner".
  at::Tensor shape_masks(const at::Tensor& images) const;
  // The score of one image's masks [6, H, W] (and wide masks; undefined: no shape or presence gradient) for a
  // prompt, given the checker's detections.
  at::Tensor prompt_score(const at::Tensor& masks, const at::Tensor& shape_masks, const world::Prompt& prompt,
                          const std::vector<world::Detection>& detections) const;
  // Its logarithm, computed as the sum of the clauses' log-scores (finite where the product underflows).
  at::Tensor prompt_log_score(const at::Tensor& masks, const at::Tensor& shape_masks, const world::Prompt& prompt,
                              const std::vector<world::Detection>& detections) const;

 private:
  at::Tensor shape_factor(const at::Tensor& shape_masks, const world::ObjectSpec& spec,
                          const std::vector<world::Detection>& detections, const at::TensorOptions& options) const;
  at::Tensor size_mass(const at::Tensor& masks, const at::Tensor& shape_masks, const world::ObjectSpec& spec,
                       const at::Tensor& mass, const std::vector<world::Detection>& detections) const;
  SoftCheckerOptions options_;
};

class ClipContrastReward : public Reward {
 public:
  ClipContrastReward(std::string name, std::unique_ptr<ClipSimilarityReward> clip);
  at::Tensor score(const at::Tensor& images, const std::vector<std::string>& prompts) override;
  bool differentiable() const override { return true; }
  std::string name() const override { return name_; }
  // Per image, the logits 100·cos over its prompt (first) and the prompt's one-edit negatives: the
  // score is log_softmax of them at 0. Differentiable in the images (and the vision tower).
  std::vector<at::Tensor> candidate_logits(const at::Tensor& images, const std::vector<std::string>& prompts);
  ClipSimilarityReward& clip() { return *clip_; }

 private:
  std::string name_;
  std::unique_ptr<ClipSimilarityReward> clip_;  // the towers, preprocessing and text cache
};

// The world CLIP in `dir` (empty: world_model_dir()) as the 100·cos reward named `name`[:dir]: the
// towers world.clip, world.clip_contrast and the verifier's pretraining (pretrain/verifier.h) share.
std::unique_ptr<ClipSimilarityReward> load_world_clip(const std::string& name, const std::string& dir,
                                                      const RewardContext& context);

// Adds world.compositional, world.clip, world.clip_contrast, world.verifier and world.jpeg to `registry`.
void register_world_rewards(RewardRegistry& registry);

// The shipped world pipeline folder: $REWARDGEN_MODELS_DIR/world, else the source tree's models/world.
std::string world_model_dir();

}  // namespace rewardgen
