#pragma once
// CLIP-family rewards, differentiable end to end (images -> rewards/clip_preprocess.h -> towers):
//  - CLIP score: 100 · cos(image embedding, text embedding)       (docs/rewards.md; no clamp at 0)
//  - PickScore (arXiv 2305.01569): exp(logit_scale) · cos, a CLIP-H fine-tune in CLIPModel layout
//  - HPSv2 / v2.1 (arXiv 2306.09341): 100 · cos with the fine-tuned OpenCLIP ViT-H/14. The
//    official `hpsv2.score` prints cos itself (0.2–0.3); ×100 puts it on the CLIP-score scale.
//    v2 and v2.1 weights give incomparable numbers: the reward's name carries the file.
//  - LAION aesthetic predictor (improved-aesthetic-predictor): MLP(image embedding / ‖·‖).
// Letters: B batch, E embedding width.
#include <functional>
#include <map>
#include <memory>

#include "models/clip_model.h"
#include "models/clip_preprocess.h"
#include "rewards/reward.h"
#include "text/clip_tokenizer.h"

namespace rewardgen {

// Unit text embeddings by prompt, for rewards whose prompts repeat across batches; bounded (cleared
// when it would pass its size). A missing text is embedded alone: its embedding must not depend on
// which others missed the cache with it (a batched GEMM's rounding does), or a resumed run, whose
// cache starts empty, would score differently from the uninterrupted one.
class TextEmbeddingCache {
 public:
  using EmbedOne = std::function<at::Tensor(const std::string&)>;  // one text -> [E], not normalised
  at::Tensor rows(const std::vector<std::string>& prompts, const EmbedOne& embed_one);  // [B, E] unit length, no grad

 private:
  std::map<std::string, at::Tensor> entries_;
};

// cos(image, text) scaled: a fixed multiplier (CLIP score, HPSv2) or exp(logit_scale) (PickScore).
class ClipSimilarityReward : public Reward {
 public:
  enum class Scale { hundred, logit_scale };
  ClipSimilarityReward(std::string name, ClipModel model, ClipTokenizer tokenizer, ClipPreprocessOptions preprocess,
                       Scale scale, const RewardContext& context);
  at::Tensor score(const at::Tensor& images, const std::vector<std::string>& prompts) override;
  bool differentiable() const override { return true; }
  std::string name() const override { return name_; }
  const ClipModel& model() const { return model_; }
  // The unit embeddings the score compares, for rewards built on the same towers.
  at::Tensor image_embeddings(const at::Tensor& images);                // [B, E] on the model's device, differentiable
  at::Tensor text_embeddings(const std::vector<std::string>& prompts);  // [B, E], unit length, no grad

 private:
  std::string name_;
  ClipModel model_;
  ClipTokenizer tokenizer_;
  ClipPreprocessOptions preprocess_;
  Scale scale_;
  RewardContext context_;
  TextEmbeddingCache text_cache_;
};

// The aesthetic MLP: Linear layers at "layers.0", "layers.2", "layers.4", "layers.6", "layers.7"
// (nn.Sequential indices; the odd ones are Dropout, inactive at inference), no activations. The
// original is 768 -> 1024 -> 128 -> 64 -> 16 -> 1; widths here come from the weights' shapes.
class AestheticHead : public torch::nn::Module {
 public:
  explicit AestheticHead(const std::vector<int64_t>& widths, const ModelOptions& options = {});  // e.g. {768, 1024, 128, 64, 16, 1}
  at::Tensor forward(const at::Tensor& embedding) const;  // [B, widths[0]] -> [B]
  int64_t input_width() const { return widths_.front(); }
  std::vector<std::shared_ptr<Linear>> linears;

 private:
  std::vector<int64_t> widths_;
};
inline constexpr int64_t kAestheticLinearIndices[] = {0, 2, 4, 6, 7};
// The widths of such a head from its weights "<prefix>layers.N.weight" (prefix "" for the LAION
// files, "mlp." inside ImageReward's state dict); Error naming `source` if one is missing.
std::vector<int64_t> aesthetic_head_widths(const TensorMap& tensors, const std::string& prefix, const std::string& source);
// Reads the head from a state dict file (.safetensors, or the original .pth), widths from its shapes.
std::shared_ptr<AestheticHead> load_aesthetic_head(const std::string& path, const LoadOptions& options);

class AestheticReward : public Reward {
 public:
  AestheticReward(std::string name, ClipModel clip, std::shared_ptr<AestheticHead> head, const RewardContext& context);
  at::Tensor score(const at::Tensor& images, const std::vector<std::string>& prompts) override;
  bool differentiable() const override { return true; }
  std::string name() const override { return name_; }

 private:
  std::string name_;
  ClipModel clip_;  // vision tower only
  std::shared_ptr<AestheticHead> head_;
  ClipPreprocessOptions preprocess_;
  RewardContext context_;
};

// Factories for the registry (argument = the DIR or FILE of the spec); docs/rewards.md describes
// each layout.
std::unique_ptr<Reward> make_clip_score_reward(const std::string& dir, const RewardContext& context);
std::unique_ptr<Reward> make_pickscore_reward(const std::string& dir, const RewardContext& context);
std::unique_ptr<Reward> make_hpsv2_reward(const std::string& file, const RewardContext& context);
std::unique_ptr<Reward> make_aesthetic_reward(const std::string& dir, const RewardContext& context);

}  // namespace rewardgen
