#include "schedulers/denoising_loss.h"

#include "core/error.h"

namespace rewardgen {

at::Tensor min_snr_weight(PredictionType type, const at::Tensor& alpha_bar, double snr_gamma) {
  const at::Tensor snr = (alpha_bar / (1 - alpha_bar)).flatten();  // [B]
  if (snr_gamma <= 0) return at::ones_like(snr);
  const at::Tensor clipped = snr.clamp_max(snr_gamma);
  switch (type) {
    case PredictionType::epsilon: return clipped / snr;
    case PredictionType::v_prediction: return clipped / (snr + 1);
    case PredictionType::sample: return clipped;
  }
  throw Error("unknown prediction type");
}

DenoisingLoss denoising_loss(PredictionType type, const at::Tensor& model_output, const at::Tensor& x0,
                             const at::Tensor& noise, const at::Tensor& alpha_bar, double snr_gamma) {
  const at::Tensor target = model_output_for(type, x0, noise, alpha_bar);
  const at::Tensor per_sample = (model_output - target).pow(2).flatten(1).mean(1);  // [B]
  return {(min_snr_weight(type, alpha_bar, snr_gamma) * per_sample).mean(), per_sample};
}

}  // namespace rewardgen
