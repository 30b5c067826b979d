// The rewards of this room, by the names configs and the CLI use.
#include "rewards/brightness.h"
#include "rewards/clip_rewards.h"
#include "rewards/image_reward.h"
#include "rewards/jpeg.h"

namespace rewardgen {

void register_builtin_rewards(RewardRegistry& r) {
  r.add({"jpeg_compressibility", "", "−(JPEG size in kB) at quality 95 (DDPO); not differentiable",
         [](const std::string&, const RewardContext& c) { return std::make_unique<JpegReward>(true, c); }});
  r.add({"jpeg_incompressibility", "", "+(JPEG size in kB) at quality 95 (DDPO); not differentiable",
         [](const std::string&, const RewardContext& c) { return std::make_unique<JpegReward>(false, c); }});
  r.add({"brightness", "", "mean pixel value in [-1, 1]: a sanity-check reward for method tests; differentiable",
         [](const std::string&, const RewardContext&) { return std::make_unique<BrightnessReward>(); }});
  r.add({"aesthetic", "DIR", "LAION aesthetic predictor: CLIP folder (CLIPModel or CLIPVisionModelWithProjection) + aesthetic head",
         make_aesthetic_reward});
  r.add({"clip", "DIR", "CLIP score 100·cos(image, prompt), HF CLIPModel folder", make_clip_score_reward});
  r.add({"pickscore", "DIR", "PickScore exp(logit_scale)·cos(image, prompt), HF CLIPModel folder", make_pickscore_reward});
  r.add({"hpsv2", "FILE", "HPSv2 100·cos(image, prompt), OpenCLIP ViT-H/14 checkpoint (.pt/.pth/.safetensors)",
         make_hpsv2_reward});
  r.add({"imagereward", "DIR",
         "ImageReward (BLIP ViT-L + BERT + MLP), normalised; ImageReward.pt|.safetensors + med_config.json + vocab.txt",
         make_image_reward});
}

}  // namespace rewardgen
