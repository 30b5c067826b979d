#pragma once
// A tiny random pipeline in the embedded world's shapes (64×64 images, f = 4 VAE, 16×16 latents,
// the world tokenizer, an image encoder), for evaluation and pretraining tests that must run in
// seconds.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/log.h"
#include "io/run_dir.h"
#include "methods/lcd.h"

#include "models/diffusers_io.h"
#include "sampling/pipeline.h"
#include "text/bpe_trainer.h"
#include "text/clip_tokenizer.h"
#include "train/trainer.h"
#include "test_util.h"
#include "tiny_models.h"
#include "world/prompts.h"

namespace rewardgen::testing {

inline AutoencoderKLConfig tiny_world_vae_config() {
  AutoencoderKLConfig v = tiny_vae_config();
  v.block_out_channels = {8, 8, 16};  // f = 4
  v.down_block_types.assign(3, "DownEncoderBlock2D");
  v.up_block_types.assign(3, "UpDecoderBlock2D");
  v.sample_size = 64;
  return v;
}

inline ClipTextConfig tiny_world_text_config(int64_t vocab_size, int64_t eos_id) {
  ClipTextConfig t = tiny_text_config();
  t.vocab_size = vocab_size;
  t.eos_token_id = eos_id;
  t.max_position_embeddings = 16;
  t.projection_dim = 8;
  return t;
}

inline ClipVisionConfig tiny_world_vision_config() {
  ClipVisionConfig v;
  v.image_size = 64, v.patch_size = 16;
  v.hidden_size = 16, v.intermediate_size = 32, v.num_hidden_layers = 1, v.num_attention_heads = 2;
  v.projection_dim = 8;
  return v;
}

inline UNet2DConditionConfig tiny_world_unet_config() {
  UNet2DConditionConfig c = tiny_unet_config();
  c.sample_size = 16;
  return c;
}

// Writes models in the layout `rewardgen pretrain` exports: tokenizer/, vae/, text_encoder/,
// image_encoder/, and with `with_unet` unet/, scheduler/ and model_index.json.
inline void write_tiny_world(const std::string& dir, bool with_unet) {
  save_tokenizer_folder(dir + "/tokenizer", train_bpe(world::grammar_words()), 16);
  const ClipTokenizer tokenizer = ClipTokenizer::from_directory(dir + "/tokenizer");
  at::manual_seed(0);
  Pipeline p;
  p.vae = std::make_shared<AutoencoderKL>(tiny_world_vae_config());
  p.text_encoder = std::make_shared<ClipTextModel>(tiny_world_text_config(tokenizer.vocab_size(), tokenizer.end_id()), true);
  p.tokenizer_dir = dir + "/tokenizer";
  const ClipVisionModel vision(tiny_world_vision_config(), true);
  save_component(dir + "/image_encoder", clip_vision_config_json(vision.config(), true), vision, "model.safetensors");
  if (with_unet) {
    p.unet = std::make_shared<UNet2DConditionModel>(tiny_world_unet_config());
    save_pipeline(dir, p);
  } else {
    save_vae(dir + "/vae", *p.vae);
    save_clip_text(dir + "/text_encoder", *p.text_encoder);
  }
}

// A test suite over one tiny world pipeline folder (write_tiny_world with a UNet), written once per
// suite into dir_, and a quiet logger.
class TinyWorldTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_tiny_world(dir_->path(), true);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // The resume tests: a run of trainer.max_steps straight (in <runs>_straight), and one stopped after
  // `stop_at` steps and resumed in a fresh task (<runs>_split); the final states of both tasks
  // (TrainTask::save_state), straight first.
  std::pair<TensorMap, TensorMap> straight_and_resumed(const std::function<std::unique_ptr<TrainTask>()>& make_task,
                                                       const TrainerConfig& trainer, const nlohmann::json& config,
                                                       const std::string& runs, int64_t stop_at) {
    auto train = [&](const std::string& root, bool resume, int64_t stop) {
      const RunDir run = RunDir::create(root, resume);
      if (!resume) run.write_config(config);
      const std::unique_ptr<TrainTask> task = make_task();
      Trainer(trainer, run, log_).run(*task, resume, stop);
      TensorMap state;
      task->save_state(state);
      return state;
    };
    TensorMap straight = train(runs + "_straight", false, 0);
    train(runs + "_split", false, stop_at);
    return {std::move(straight), train(runs + "_split", true, 0)};
  }

  std::ostringstream quiet_;
  Logger log_{LogLevel::warn, quiet_};
  static inline TempDir* dir_ = nullptr;
};

// The mean of metric `key` over the first `n` and over the last `n` rows of a run's metrics: a
// short run's start and end, for tests that a reward went up.
inline std::pair<double, double> first_and_last_means(const std::vector<nlohmann::json>& rows, const std::string& key, size_t n) {
  double first = 0, last = 0;
  for (size_t i = 0; i < n; ++i) {
    first += rows.at(i).at(key).get<double>() / static_cast<double>(n);
    last += rows.at(rows.size() - 1 - i).at(key).get<double>() / static_cast<double>(n);
  }
  return {first, last};
}

// The tiny world teacher, and beside it (lcm/) an LCM made from it with a random guidance
// projection (8-d): what RLCM and DI* start from.
class TinyWorldWithLcmTest : public TinyWorldTest {
 protected:
  static void SetUpTestSuite() {
    TinyWorldTest::SetUpTestSuite();
    Logger quiet(LogLevel::error);
    Pipeline p = load_pipeline(dir_->path(), {}, quiet);
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
    p.unet = make_lcm_student(*p.unet, 8, /*zero_init=*/false, g);
    save_pipeline(lcm_dir(), p);
  }
  static std::string lcm_dir() { return dir_->file("lcm"); }
};

}  // namespace rewardgen::testing
