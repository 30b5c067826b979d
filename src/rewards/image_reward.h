#pragma once
// ImageReward (Xu et al., arXiv 2304.05977): a human-preference reward. BLIP's ViT-L/16 encodes
// the image at 224²; BLIP's BERT reads "[CLS] prompt [SEP]" (35 tokens) cross-attending to the
// image tokens; an affine MLP (the aesthetic head's form: Linear layers at mlp.layers.0, 2, 4, 6,
// 7, no activations, 768 -> 1024 -> 128 -> 64 -> 16 -> 1) maps the [CLS] state to a score, which
// is normalised: (r − 0.16717362830052426) / 1.0333394966054072. Differentiable in the image.
//
// The folder of "imagereward:DIR" holds the release's files:
//   ImageReward.pt (or ImageReward.safetensors)  the state dict, keys "blip.visual_encoder.*",
//                                                "blip.text_encoder.*", "mlp.layers.*"; others
//                                                (blip.vision_proj, blip.text_proj) are ignored
//   med_config.json                              the BERT config
//   vocab.txt                                    bert-base-uncased's WordPiece vocabulary
//   vision_config.json (optional)                {"num_attention_heads": h}; else width / 64
// The image encoder's other sizes come from the weights' shapes.
#include <memory>

#include "models/blip.h"
#include "models/diffusers_io.h"
#include "models/clip_preprocess.h"
#include "rewards/clip_rewards.h"
#include "rewards/reward.h"
#include "text/bert_tokenizer.h"

namespace rewardgen {

inline constexpr double kImageRewardMean = 0.16717362830052426;
inline constexpr double kImageRewardStd = 1.0333394966054072;
inline constexpr int64_t kImageRewardTextLength = 35;  // tokenizer(..., padding="max_length", max_length=35)

class ImageRewardModel : public torch::nn::Module {
 public:
  ImageRewardModel(BlipVisionConfig vision, BlipTextConfig text, const std::vector<int64_t>& head_widths,
                   const ModelOptions& options = {});
  // pixels [B, 3, S, S] (CLIP-normalised), tokens [B, L] -> the normalised score [B].
  at::Tensor forward(const at::Tensor& pixels, const at::Tensor& input_ids, const at::Tensor& attention_mask) const;

  std::shared_ptr<BlipVisionTransformer> visual_encoder;  // blip.visual_encoder
  std::shared_ptr<BlipTextEncoder> text_encoder;          // blip.text_encoder
  std::shared_ptr<AestheticHead> mlp;                     // mlp.layers.*
};

// Reads DIR as described above; Error naming the file and what is missing or mismatched.
std::shared_ptr<ImageRewardModel> load_image_reward_model(const std::string& dir, const LoadOptions& options, const Logger& log);

class ImageReward : public Reward {
 public:
  ImageReward(std::string name, std::shared_ptr<ImageRewardModel> model, BertTokenizer tokenizer, const RewardContext& context);
  at::Tensor score(const at::Tensor& images, const std::vector<std::string>& prompts) override;
  bool differentiable() const override { return true; }
  std::string name() const override { return name_; }

 private:
  std::string name_;
  std::shared_ptr<ImageRewardModel> model_;
  BertTokenizer tokenizer_;
  ClipPreprocessOptions preprocess_;
  RewardContext context_;
};

std::unique_ptr<Reward> make_image_reward(const std::string& dir, const RewardContext& context);

}  // namespace rewardgen
