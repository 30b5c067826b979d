#pragma once
// world.verifier:DIR — a learned verifier of the embedded world: a small convolutional network that
// reads a 64×64 image and a prompt's world-CLIP text embedding and gives the logit that the checker
// passes the image for that prompt. The reward is log σ(logit), the log-probability of the verdict.
// `rewardgen pretrain verifier` with {"kind": "net"} trains it on the checker's labels of generated
// images (pretrain/verifier.h, docs/rewards.md "A learned verifier").
//
// Network: a stride-2 3×3 stem to 32×32, then per level a ResnetBlock2D conditioned on the text
// (the text embedding enters every block as the UNet's time embedding does: a per-channel shift)
// and a stride-2 downsample, down to 8×8; a 1×1 convolution and a dense layer over the whole map (so
// positions, which relations and counts need, are not pooled away), concatenated with the text
// embedding, then two dense layers to one logit.
//
// Folder: tokenizer/ and text_encoder/ (the world CLIP's text side, frozen) and verifier/ with
// config.json and model.safetensors.
#include <memory>
#include <string>
#include <vector>

#include "io/json_config.h"
#include "models/clip.h"
#include "models/diffusers_io.h"
#include "models/resnet.h"
#include "rewards/clip_rewards.h"
#include "rewards/reward.h"
#include "text/clip_tokenizer.h"

namespace rewardgen {

struct WorldVerifierConfig {
  int64_t image_size = 64;
  std::vector<int64_t> channels = {32, 64, 128};  // per level, from 32×32 down
  int64_t text_dim = 128;                         // the text tower's projection width
  int64_t embed_dim = 128;                        // width of the conditioning the blocks receive
  int64_t head_channels = 32;                     // 1×1 convolution before the dense layer over the map
  int64_t head_width = 256;
  int64_t groups = 8;                             // GroupNorm groups
};
void read_world_verifier_config(ConfigReader& reader, WorldVerifierConfig& config);  // Error naming the key
Json world_verifier_config_json(const WorldVerifierConfig& config);

class WorldVerifierNet : public torch::nn::Module {
 public:
  explicit WorldVerifierNet(const WorldVerifierConfig& config, const ModelOptions& options = {});
  // images [B, 3, S, S] in [-1, 1], text [B, text_dim] -> logits [B]
  at::Tensor forward(const at::Tensor& images, const at::Tensor& text) const;
  const WorldVerifierConfig& config() const { return config_; }

 private:
  WorldVerifierConfig config_;
  std::shared_ptr<Conv2d> conv_in_;
  std::shared_ptr<Linear> text_in_;
  std::vector<std::shared_ptr<ResnetBlock2D>> blocks_;
  std::vector<std::shared_ptr<Downsample2D>> downsamplers_;
  std::shared_ptr<GroupNorm> head_norm_;
  std::shared_ptr<Conv2d> head_conv_;
  std::shared_ptr<Linear> head_map_, head_joint_, head_out_;
};

void save_world_verifier(const std::string& dir, const WorldVerifierNet& net, at::ScalarType dtype = at::ScalarType::Undefined);
std::shared_ptr<WorldVerifierNet> load_world_verifier(const std::string& dir, const LoadOptions& options);

// The world CLIP's text side: unit text embeddings, no gradient, through a TextEmbeddingCache.
class WorldTextEmbedder {
 public:
  WorldTextEmbedder(const std::string& dir, const RewardContext& context);  // dir/tokenizer, dir/text_encoder
  at::Tensor embed(const std::vector<std::string>& prompts);                 // [B, text_dim]
  int64_t width() const;

 private:
  std::shared_ptr<ClipTextModel> text_;
  ClipTokenizer tokenizer_;
  RewardContext context_;
  TextEmbeddingCache cache_;
};

class WorldVerifierReward : public Reward {
 public:
  WorldVerifierReward(std::string name, const std::string& dir, const RewardContext& context);
  at::Tensor score(const at::Tensor& images, const std::vector<std::string>& prompts) override;  // log σ(logit)
  bool differentiable() const override { return true; }
  std::string name() const override { return name_; }

 private:
  std::string name_;
  std::shared_ptr<WorldVerifierNet> net_;
  WorldTextEmbedder text_;
  RewardContext context_;
};

}  // namespace rewardgen
