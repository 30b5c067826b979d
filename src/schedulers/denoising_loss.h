#pragma once
// The denoising (DSM) loss every network trained on the noise schedule shares: the world teacher
// now, DI*'s fake score and LCD's consistency targets later. For x_t = √ᾱ x₀ + √(1−ᾱ) ε the network
// predicts ε, v or x₀ (prediction_type); the per-sample squared error is weighted by Min-SNR-γ
// (Hang et al., arXiv 2303.09556): the x₀-error weighted by min(SNR, γ), which is min(SNR, γ)/SNR
// on the ε-error and min(SNR, γ)/(SNR + 1) on the v-error (eq. 6 and §3.4). γ = 0: plain MSE.
#include <ATen/ATen.h>

#include "schedulers/noise_schedule.h"

namespace rewardgen {

struct DenoisingLoss {
  at::Tensor loss;        // the weighted mean over the batch (scalar, with graph)
  at::Tensor per_sample;  // unweighted mean squared error per sample [B]
};

// model_output [B, C, h, w] at x_t; x0, noise as drawn; alpha_bar [B, 1, 1, 1] (NoiseSchedule::alpha_bar).
DenoisingLoss denoising_loss(PredictionType type, const at::Tensor& model_output, const at::Tensor& x0,
                             const at::Tensor& noise, const at::Tensor& alpha_bar, double snr_gamma);

// The Min-SNR-γ weight per sample [B] for ᾱ [B, 1, 1, 1] (ones when γ = 0).
at::Tensor min_snr_weight(PredictionType type, const at::Tensor& alpha_bar, double snr_gamma);

}  // namespace rewardgen
