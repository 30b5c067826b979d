#include "train/ema.h"

#include <algorithm>

#include "core/error.h"

namespace rewardgen {

namespace {
template <class Apply>
void for_each_pair(torch::nn::Module& ema, const torch::nn::Module& model, Apply apply) {
  at::NoGradGuard no_grad;
  const auto targets = ema.named_parameters(), sources = model.named_parameters();
  if (targets.size() != sources.size()) throw Error("EMA: the two modules have different parameters");
  for (const auto& source : sources) {
    const at::Tensor* target = targets.find(source.key());
    if (target == nullptr || target->sizes() != source.value().sizes())
      throw Error(str("EMA: parameter '", source.key(), "' is missing or has another shape in the EMA copy"));
    apply(*target, source.value());
  }
  const auto target_buffers = ema.named_buffers();
  for (const auto& source : model.named_buffers())
    if (const at::Tensor* target = target_buffers.find(source.key())) target->copy_(source.value());
}
}  // namespace

void ema_update(torch::nn::Module& ema, const torch::nn::Module& model, double decay, int64_t step) {
  const double d = std::min(decay, (1.0 + static_cast<double>(step)) / (10.0 + static_cast<double>(step)));
  for_each_pair(ema, model, [d](at::Tensor target, const at::Tensor& source) { target.mul_(d).add_(source, 1 - d); });
}

void ema_copy(torch::nn::Module& ema, const torch::nn::Module& model) {
  for_each_pair(ema, model, [](at::Tensor target, const at::Tensor& source) { target.copy_(source); });
}

}  // namespace rewardgen
