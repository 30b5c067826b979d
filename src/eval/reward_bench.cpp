#include "eval/reward_bench.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "rewards/image_reward.h"

namespace rewardgen {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class F>
double median_seconds(int repeats, F&& body) {
  body();  // warm-up: allocations, text-embedding cache, first-call dispatch
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(times);
}

}  // namespace

RewardBenchResult bench_reward(Reward& reward, const RewardBenchOptions& o) {
  if (o.batch < 1 || o.size < 1 || o.repeats < 1) throw Error("reward bench: batch, size and repeats must be >= 1");
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(0);
  const at::Tensor images = at::rand({o.batch, 3, o.size, o.size}, generator) * 2 - 1;  // [B, 3, S, S]
  const std::vector<std::string> prompts(static_cast<size_t>(o.batch), o.prompt);
  RewardBenchResult r;
  r.batch = o.batch;
  r.score_s = median_seconds(o.repeats, [&] {
    at::NoGradGuard no_grad;
    reward.score(images, prompts);
  });
  if (o.backward) {
    if (!reward.differentiable()) throw Error(str("reward bench: '", reward.name(), "' is not differentiable (drop --backward)"));
    r.backward_s = median_seconds(o.repeats, [&] {
      at::Tensor x = images.clone().requires_grad_();
      reward.score(x, prompts).sum().backward();
    });
  }
  return r;
}

ClipModel random_clip_vit_l14(const at::TensorOptions& options) {
  ClipTextConfig text;
  text.hidden_size = 768;
  text.intermediate_size = 3072;
  text.num_hidden_layers = 12;
  text.num_attention_heads = 12;
  text.projection_dim = 768;
  ClipVisionConfig vision;
  vision.hidden_size = 1024;
  vision.intermediate_size = 4096;
  vision.num_hidden_layers = 24;
  vision.num_attention_heads = 16;
  vision.patch_size = 14;
  vision.image_size = 224;
  vision.projection_dim = 768;
  ModelOptions m;
  m.tensor = options;
  return make_clip_model(text, vision, m);
}

std::unique_ptr<Reward> random_image_reward(const RewardContext& context) {
  ModelOptions m;
  m.tensor = at::TensorOptions().dtype(context.dtype).device(context.device);
  BlipTextConfig text;  // defaults: med_config.json of the release
  text.encoder_width = BlipVisionConfig{}.width;
  auto model = std::make_shared<ImageRewardModel>(BlipVisionConfig{}, text, std::vector<int64_t>{768, 1024, 128, 64, 16, 1}, m);
  model->eval();
  BertTokenizer tokenizer({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "photo", "of", "cat"}, {}, "benchmark words");
  return std::make_unique<ImageReward>("imagereward:random ViT-L/16 + BERT-base", std::move(model), std::move(tokenizer), context);
}

}  // namespace rewardgen
