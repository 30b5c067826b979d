#pragma once
// Pretraining the world's CLIP (text + vision towers with projections) contrastively on
// (scene, prompt) pairs, with one hard negative prompt per scene (same objects, colours swapped,
// relation reversed, sizes swapped or count changed): CLIP's symmetric InfoNCE where each image
// also has to reject its hard negative. The text tower then conditions the teacher; both towers
// give the world.clip reward and the Fréchet distance's embedding space.
#include <memory>

#include "io/json_config.h"
#include "models/clip.h"
#include "text/clip_tokenizer.h"
#include "train/trainer.h"
#include "world/prompts.h"

namespace rewardgen::pretrain {

struct ClipPretrainConfig {
  TrainerConfig trainer;
  int64_t batch_size = 64;
  bool hard_negatives = true;
  ClipTextConfig text;      // vocab_size and eos_token_id follow the tokenizer
  ClipVisionConfig vision;
  ClipPretrainConfig();
};
ClipPretrainConfig read_clip_pretrain_config(ConfigReader& reader);  // keys: trainer, batch_size, hard_negatives, text, vision
Json clip_pretrain_config_json(const ClipPretrainConfig& config);

struct WorldClip {
  std::shared_ptr<ClipTextModel> text;
  std::shared_ptr<ClipVisionModel> vision;
  // L2-normalised embeddings.
  at::Tensor embed_texts(const ClipTokenizer& tokenizer, const std::vector<std::string>& prompts) const;
  at::Tensor embed_images(const at::Tensor& images) const;  // [B, 3, 64, 64] in [-1, 1]
};

class ClipPretrainTask : public TrainTask {
 public:
  ClipPretrainTask(const ClipPretrainConfig& config, ClipTokenizer tokenizer);
  NamedTensors trainable_parameters() override;
  void save_state(TensorMap& out) const override;
  void load_state(const TensorMap& in) override;
  MetricsWriter::Values train_step(StepContext& context) override;
  const WorldClip& clip() const { return clip_; }

 private:
  ClipPretrainConfig config_;
  ClipTokenizer tokenizer_;
  WorldClip clip_;
  at::Tensor logit_scale_;  // log of the softmax temperature's inverse, learnt (CLIP)
  world::TrainingPrompts prompts_;
};

// Held-out image -> prompt retrieval: each evaluation scene ranks the unique evaluation prompts of
// its task; a hit when the top prompt is true of the scene (by the checker, so that equivalent
// wordings such as "A left of B" / "B right of A" both count).
struct RetrievalEvaluation {
  std::map<std::string, double> top1;  // per task and "overall"
  int64_t images = 0;
};
RetrievalEvaluation evaluate_retrieval(const WorldClip& clip, const ClipTokenizer& tokenizer, int64_t limit = 0);
Json to_json(const RetrievalEvaluation& evaluation);

}  // namespace rewardgen::pretrain
