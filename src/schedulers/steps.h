#pragma once
// Sampler steps as stateless functions (style rule 5): the caller owns the timestep list and the
// noise. Each stochastic step is a Gaussian policy π(x_prev | x_t) and reports its log-prob, which
// is what DDPO (DDIM policy) and RLCM (LCM policy) optimise.
// Notation: a_t = ᾱ_t, a_p = ᾱ_{t_prev}; x [B, C, h, w]; log-probs [B].
#include <ATen/ATen.h>

#include <cstdint>

#include "schedulers/noise_schedule.h"

namespace rewardgen {

struct StepOutput {
  at::Tensor prev_sample;           // x_{t_prev}                          [B, C, h, w]
  at::Tensor pred_original_sample;  // x̂₀ (LCM: the consistency output f)  [B, C, h, w]
  at::Tensor log_prob;              // log π(prev_sample | sample), mean over C·h·w  [B]; undefined if deterministic
};

// A Gaussian transition N(mean, std² I) and the predictions it was built from.
struct GaussianTransition {
  at::Tensor mean, x0, eps;
  double std = 0.0;
};

// log N(x; mean, std² I), averaged over the non-batch dims as DDPO reports it: [B].
at::Tensor gaussian_log_prob(const at::Tensor& x, const at::Tensor& mean, double std);

// DDIM (arXiv 2010.02502). t_prev < 0 means "after the last step" (ᾱ = final_alpha_cumprod).
// σ = η √((1−a_p)/(1−a_t)) √(1 − a_t/a_p)                                   Eq. (16)
// mean = √a_p x̂₀ + √(1 − a_p − σ²) ε̂                                       Eq. (12)
GaussianTransition ddim_transition(const NoiseSchedule& schedule, int64_t t, int64_t t_prev,
                                   const at::Tensor& model_output, const at::Tensor& sample, double eta);
// x_prev = mean + σ z. `noise` z ~ N(0, I) may be undefined when eta == 0 (then deterministic).
StepOutput ddim_step(const NoiseSchedule& schedule, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                     const at::Tensor& sample, double eta, const at::Tensor& noise);
// log π(prev_sample | sample) under the current model output (PPO's ratio numerator).
at::Tensor ddim_log_prob(const NoiseSchedule& schedule, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                         const at::Tensor& sample, double eta, const at::Tensor& prev_sample);

// DDPM ancestral step (arXiv 2006.11239 Eq. (7)) over a strided chain: with α = a_t/a_p, β = 1−α,
// mean = √a_p β/(1−a_t) x̂₀ + √α (1−a_p)/(1−a_t) x_t, variance = β (1−a_p)/(1−a_t) ("fixed_small").
GaussianTransition ddpm_transition(const NoiseSchedule& schedule, int64_t t, int64_t t_prev,
                                   const at::Tensor& model_output, const at::Tensor& sample);
StepOutput ddpm_step(const NoiseSchedule& schedule, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                     const at::Tensor& sample, const at::Tensor& noise);

// LCM boundary-condition scalings (arXiv 2310.04378 Eq. (9), discrete form of diffusers):
// s = t · timestep_scaling, c_skip = σ_d² / (s² + σ_d²), c_out = s / √(s² + σ_d²); c_skip(0) = 1, c_out(0) = 0.
struct LcmScalings {
  double c_skip, c_out;
};
LcmScalings lcm_boundary_scalings(int64_t t, double timestep_scaling = 10.0, double sigma_data = 0.5);

// LCM multistep sampling (Algorithm 3): f = c_skip x_t + c_out x̂₀; x_prev = √a_p f + √(1−a_p) z,
// a Gaussian policy with σ = √(1−a_p) (docs/design.md). t_prev < 0 marks the last step: the output is f,
// deterministically, and `noise` is not used.
GaussianTransition lcm_transition(const NoiseSchedule& schedule, int64_t t, int64_t t_prev,
                                  const at::Tensor& model_output, const at::Tensor& sample);
StepOutput lcm_step(const NoiseSchedule& schedule, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                    const at::Tensor& sample, const at::Tensor& noise);
at::Tensor lcm_log_prob(const NoiseSchedule& schedule, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                        const at::Tensor& sample, const at::Tensor& prev_sample);

// ---- Per-sample steps ---------------------------------------------------------------------------
// The same transitions with a timestep, a previous timestep and an η per sample: t, t_prev int64
// [B] (t_prev < 0: after the last step), eta [B] or one value. Every coefficient is computed in
// double and cast to the sample's dtype, as the scalar steps above do (they call these), so both
// give the same numbers. Methods draw timesteps per sample (LCD, DI*'s fake score, R0+'s k*) and η
// per step and per sample (R0's random η regulariser).
struct Transition {
  at::Tensor mean, x0, eps;  // [B, C, h, w]; x0: x̂₀ (LCM: the consistency output f)
  at::Tensor std;            // σ per sample [B], float64; 0 where the step is deterministic
};
// log N(x; mean, σ_b² I) averaged over C·h·w: [B]; 0 where σ_b = 0 (a deterministic step has no density).
at::Tensor gaussian_log_prob(const at::Tensor& x, const at::Tensor& mean, const at::Tensor& std);
// mean + σ z per sample; the log-prob of that draw ([B]; undefined when every σ is 0, then z may be undefined).
StepOutput sample_transition(const Transition& transition, const at::Tensor& noise);

Transition ddim_transition(const NoiseSchedule& schedule, const at::Tensor& t, const at::Tensor& t_prev,
                           const at::Tensor& model_output, const at::Tensor& sample, const at::Tensor& eta);
// DDIM's σ at η = 1 per sample, √((1−a_p)/(1−a_t)) √(1 − a_t/a_p) (Eq. (16)): [B] float64; σ(η) = η·σ(1).
at::Tensor ddim_unit_sigma(const NoiseSchedule& schedule, const at::Tensor& t, const at::Tensor& t_prev);
Transition ddpm_transition(const NoiseSchedule& schedule, const at::Tensor& t, const at::Tensor& t_prev,
                           const at::Tensor& model_output, const at::Tensor& sample);
Transition lcm_transition(const NoiseSchedule& schedule, const at::Tensor& t, const at::Tensor& t_prev,
                          const at::Tensor& model_output, const at::Tensor& sample);
// LCM's consistency function f = c_skip(t) x_t + c_out(t) x̂₀ per sample (Eq. (9)).
at::Tensor lcm_consistency(const NoiseSchedule& schedule, const at::Tensor& t, const at::Tensor& x0,
                           const at::Tensor& sample);
// ᾱ per sample [B] in float64: alphas_cumprod[t], final_alpha_cumprod where t < 0.
at::Tensor alpha_bar_or_final(const NoiseSchedule& schedule, const at::Tensor& t);

}  // namespace rewardgen
