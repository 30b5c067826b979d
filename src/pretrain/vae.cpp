#include "pretrain/vae.h"

#include <cmath>

#include "pretrain/world_models.h"
#include "world/render.h"
#include "train/checkpoint.h"
#include "world/checker.h"

namespace rewardgen::pretrain {

VaePretrainConfig::VaePretrainConfig() : trainer(cosine_trainer(3000, 1e-3, 100, 0.05)), model(world_vae_config()) {}

VaePretrainConfig read_vae_pretrain_config(ConfigReader& reader) {
  VaePretrainConfig config;
  ConfigReader trainer = reader.child("trainer");
  read_trainer_config(trainer, config.trainer);
  reader.optional("batch_size", config.batch_size, at_least(1)).optional("kl_weight", config.kl_weight, at_least(0));
  if (reader.has("model")) {
    ConfigReader model = reader.child("model");
    read_autoencoder_config(model, config.model);
  }
  return config;
}

Json vae_pretrain_config_json(const VaePretrainConfig& config) {
  return {{"trainer", trainer_config_json(config.trainer)},
          {"batch_size", config.batch_size},
          {"kl_weight", config.kl_weight},
          {"model", autoencoder_config_json(config.model)}};
}

VaePretrainTask::VaePretrainTask(const VaePretrainConfig& config) : config_(config) {
  at::manual_seed(static_cast<uint64_t>(config.trainer.seed));  // the initial weights
  vae_ = std::make_shared<AutoencoderKL>(config.model);
}

NamedTensors VaePretrainTask::trainable_parameters() {
  NamedTensors out;
  for (const auto& p : vae_->named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

void VaePretrainTask::save_state(TensorMap& out) const { add_module_state(out, "vae/", *vae_); }
void VaePretrainTask::load_state(const TensorMap& in) { load_module_state(in, "vae/", *vae_); }

namespace {
double psnr_of_mse(double mse_pm1) { return 10 * std::log10(4.0 / mse_pm1); }  // [-1,1] MSE -> [0,1] PSNR
}  // namespace

MetricsWriter::Values VaePretrainTask::train_step(StepContext& context) {
  // Data-parallel: the scenes and draws of the global batch, this rank's rows of them.
  const BatchShard& shard = context.shard();
  const at::Tensor images = shard.slice(sample_world_batch(prompts_, shard.global(config_.batch_size), context.generator()).images);
  const DiagonalGaussian posterior = vae_->encode(images);
  const at::Tensor reconstruction = vae_->decode(posterior.sample(context.generator(), shard));
  const at::Tensor error = reconstruction - images;
  const at::Tensor mse = error.pow(2).mean();
  const at::Tensor kl = posterior.kl().mean();
  const at::Tensor loss = error.abs().mean() + mse + config_.kl_weight * kl;
  context.optimize(loss);
  return {{"loss", loss.item<double>()}, {"psnr", psnr_of_mse(mse.item<double>())}, {"kl", kl.item<double>()}};
}

VaeEvaluation evaluate_vae(const AutoencoderKL& vae, int64_t limit) {
  at::NoGradGuard no_grad;
  const std::vector<world::EvalPrompt> lines = world::balanced_subset(world::eval_prompts(), limit);
  VaeEvaluation evaluation;
  double squared_error = 0;
  int64_t passed = 0, passed_real = 0;
  std::vector<at::Tensor> means;
  constexpr int64_t kChunk = 64;
  for (size_t start = 0; start < lines.size(); start += kChunk) {
    const std::vector<world::EvalPrompt> chunk(lines.begin() + start, lines.begin() + std::min(lines.size(), start + kChunk));
    const at::Tensor images = world::render_eval_scenes(chunk, /*seed=*/start);
    const DiagonalGaussian posterior = vae.encode(images.to(vae.encoder->conv_in->weight.device()));
    const at::Tensor reconstruction = vae.decode(posterior.mean).to(at::kCPU, at::kFloat).clamp(-1, 1);
    squared_error += (reconstruction - images).pow(2).sum().item<double>();
    means.push_back(posterior.mean.to(at::kCPU, at::kFloat));
    for (size_t i = 0; i < chunk.size(); ++i) {
      const world::Prompt prompt = world::parse_prompt(chunk[i].text);
      passed += world::check(reconstruction[static_cast<int64_t>(i)], prompt).passed;
      passed_real += world::check(images[static_cast<int64_t>(i)], prompt).passed;
    }
  }
  evaluation.images = static_cast<int64_t>(lines.size());
  const double elements = static_cast<double>(evaluation.images) * 3 * world::kImageSize * world::kImageSize;
  evaluation.psnr = psnr_of_mse(squared_error / elements);
  evaluation.checker_accuracy = static_cast<double>(passed) / static_cast<double>(evaluation.images);
  evaluation.checker_accuracy_real = static_cast<double>(passed_real) / static_cast<double>(evaluation.images);
  evaluation.latent_std = at::cat(means).std().item<double>();
  return evaluation;
}

Json to_json(const VaeEvaluation& e) {
  return {{"psnr_db", e.psnr},
          {"checker_accuracy_reconstructed", e.checker_accuracy},
          {"checker_accuracy_original", e.checker_accuracy_real},
          {"latent_std", e.latent_std},
          {"images", e.images}};
}

}  // namespace rewardgen::pretrain
