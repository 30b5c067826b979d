#include "eval/unet_bench.h"

#include <chrono>
#include <functional>

#include "models/flops.h"

namespace rewardgen {
namespace {

double seconds_of(const std::function<void()>& body, int repeats) {
  body();  // warm-up: allocator, thread pool, caches
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i) body();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / repeats;
}

}  // namespace

UnetBenchResult bench_unet(const UNet2DConditionConfig& config, const UnetBenchOptions& o) {
  at::manual_seed(0);
  UnetBenchResult result;
  const int64_t B = o.batch, size = o.latent_size, temb = config.block_out_channels[0] * 4;
  const at::Tensor context = at::randn({B, o.text_tokens, config.cross_dim(0)});
  std::function<at::Tensor()> forward;
  std::shared_ptr<torch::nn::Module> model;
  if (o.first_down_block_only) {
    auto block = std::make_shared<UNetDownBlock>(config, 0, config.block_out_channels[0], temb, ModelOptions{});
    const at::Tensor x = at::randn({B, config.block_out_channels[0], size, size}), t_emb = at::randn({B, temb});
    forward = [block, x, t_emb, context] {
      std::vector<at::Tensor> skips;
      return block->forward(x, t_emb, context, skips);
    };
    model = block;
  } else {
    auto unet = std::make_shared<UNet2DConditionModel>(config);
    const at::Tensor x = at::randn({B, config.in_channels, size, size}), t = at::randint(0, 1000, {B});
    forward = [unet, x, t, context] { return unet->forward(x, t, context); };
    model = unet;
  }
  result.parameters = parameter_count(*model);
  FlopCounter counter;
  {
    at::NoGradGuard no_grad;
    FlopCountScope scope(counter);
    forward();
  }
  result.forward_gflop = counter.flops / 1e9;
  result.forward_s = seconds_of([&] {
    at::NoGradGuard no_grad;
    forward();
  }, o.repeats);
  if (o.forward_only) return result;
  result.train_step_s = seconds_of([&] {
    model->zero_grad();
    forward().square().mean().backward();
  }, o.repeats);
  return result;
}

}  // namespace rewardgen
