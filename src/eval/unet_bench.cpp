#include "eval/unet_bench.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>

#include "core/error.h"
#include "models/flops.h"
#include "models/lora.h"
#include "models/precision.h"

namespace rewardgen {
namespace {

// Waits until `device` has run everything queued on it: a copy to host memory follows the queued
// kernels on the current stream (no CUDA headers needed, so CPU-only builds compile this too).
void wait_for(const c10::Device& device) {
  if (device.is_cuda()) at::zeros({1}, at::TensorOptions().device(device)).cpu();
}

struct PassSeconds {
  double mean = 0, best = 0;
};

PassSeconds seconds_of(const std::function<void()>& body, int repeats, const c10::Device& device) {
  body();  // warm-up: allocator, thread pool, caches
  wait_for(device);
  PassSeconds s{0, std::numeric_limits<double>::infinity()};
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    wait_for(device);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    s.mean += seconds / repeats;
    s.best = std::min(s.best, seconds);
  }
  return s;
}

}  // namespace

UnetBenchResult bench_unet(const UNet2DConditionConfig& config, const UnetBenchOptions& o) {
  if (o.repeats < 1) throw Error(str("bench unet: repeats must be >= 1, got ", o.repeats));
  if (o.lora_rank < 0) throw Error(str("bench unet: LoRA rank must be >= 0, got ", o.lora_rank));
  if (o.lora_rank > 0 && o.profile) throw Error("bench unet: --profile times full training only; drop --lora-rank");
  at::manual_seed(0);
  UnetBenchResult result;
  const int64_t B = o.batch, size = o.latent_size, temb = config.block_out_channels[0] * 4;
  const at::TensorOptions on_device = at::TensorOptions().device(o.device);
  const at::Tensor context = at::randn({B, o.text_tokens, config.cross_dim(0)}, on_device);
  std::function<at::Tensor()> forward;
  std::shared_ptr<torch::nn::Module> model;
  if (o.first_down_block_only) {
    auto block = std::make_shared<UNetDownBlock>(config, 0, config.block_out_channels[0], temb, ModelOptions{});
    const at::Tensor x = at::randn({B, config.block_out_channels[0], size, size}, on_device);
    const at::Tensor t_emb = at::randn({B, temb}, on_device);
    forward = [block, x, t_emb, context] {
      std::vector<at::Tensor> skips;
      const at::ScalarType dtype = block->resnets[0]->conv1->weight.scalar_type();  // the block does not cast
      return block->forward(x.to(dtype), t_emb.to(dtype), context.to(dtype), skips);
    };
    model = block;
  } else {
    auto unet = std::make_shared<UNet2DConditionModel>(config);
    const at::Tensor x = at::randn({B, config.in_channels, size, size}, on_device);
    const at::Tensor t = at::randint(0, 1000, {B}, on_device.dtype(at::kLong));
    forward = [unet, x, t, context] { return unet->forward(x, t, context); };
    model = unet;
  }
  result.parameters = parameter_count(*model);
  model->to(o.device);
  // Inference in the precision asked for: the weights themselves in bf16 (as sample and eval load
  // them); training below keeps fp32 weights and autocasts.
  model->to(dtype_of(o.precision));
  FlopCounter counter;
  {
    at::NoGradGuard no_grad;
    FlopCountScope scope(counter);
    forward();
  }
  result.forward_gflop = counter.flops / 1e9;
  const auto inference_pass = [&] {
    at::NoGradGuard no_grad;
    forward();
  };
  const PassSeconds forward_seconds = seconds_of(inference_pass, o.repeats, o.device);
  result.forward_s = forward_seconds.mean;
  result.forward_best_s = forward_seconds.best;
  const auto train_step = [&] {
    model->zero_grad();
    at::Tensor loss;
    {
      AutocastScope autocast(o.precision, o.device);
      loss = forward().to(at::kFloat).square().mean();
    }
    loss.backward();
  };
  if (!o.forward_only) {
    model->to(at::kFloat);
    if (o.lora_rank > 0) {
      // Adapters on the attention projections of a frozen base (the default targets); added after
      // the forward timing, which stands for sampling with merged adapters. Kept to the end.
      freeze_base(*model);
      at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(0);
      LoraConfig lora;
      lora.rank = o.lora_rank;
      lora.alpha = static_cast<double>(o.lora_rank);
      result.lora_parameters = 0;
      for (const auto& [name, tensor] : lora_parameters(add_lora(*model, lora, generator))) result.lora_parameters += tensor.numel();
    }
    const PassSeconds step_seconds = seconds_of(train_step, o.repeats, o.device);
    result.train_step_s = step_seconds.mean;
    result.train_step_best_s = step_seconds.best;
    model->to(dtype_of(o.precision));
  }
  if (o.profile) {
    // Times per pass, averaged over `repeats` passes.
    const auto profiled = [&](const std::function<void()>& body, std::vector<OpTime>& ops, std::vector<OpTime>& categories) {
      OpProfile profile;
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < o.repeats; ++i) body();
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / o.repeats;
      ops = profile.operators();
      categories = profile.categories();
      for (auto* rows : {&ops, &categories})
        for (OpTime& row : *rows) {
          row.self_s /= o.repeats;
          row.total_s /= o.repeats;
          row.calls /= o.repeats;
        }
      return seconds;
    };
    result.profiled_forward_s = profiled(inference_pass, result.forward_ops, result.forward_categories);
    if (!o.forward_only) {
      model->to(at::kFloat);
      result.profiled_train_step_s = profiled(train_step, result.train_ops, result.train_categories);
    }
  }
  return result;
}

}  // namespace rewardgen
