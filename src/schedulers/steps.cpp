#include "schedulers/steps.h"

#include <cmath>

#include "core/error.h"

namespace rewardgen {

at::Tensor gaussian_log_prob(const at::Tensor& x, const at::Tensor& mean, double std) {
  if (!(std > 0)) throw Error(str("gaussian_log_prob needs std > 0, got ", std));
  // log N(x; μ, σ²) = −(x−μ)²/(2σ²) − log σ − log √(2π), per element, then mean over C·h·w.
  const at::Tensor per_element = -(x - mean).pow(2) / (2 * std * std) - std::log(std) - 0.5 * std::log(2 * M_PI);
  return per_element.flatten(1).mean(1);
}

namespace {

void check_step(const NoiseSchedule& s, int64_t t, int64_t t_prev) {
  if (t < 0 || t >= s.num_timesteps()) throw Error(str("timestep ", t, " is outside [0, ", s.num_timesteps(), ")"));
  if (t_prev >= t) throw Error(str("a sampler step must go down in time: t = ", t, ", t_prev = ", t_prev));
}

StepOutput sample_transition(const GaussianTransition& g, const at::Tensor& noise) {
  if (g.std == 0) return {g.mean, g.x0, at::Tensor()};
  if (!noise.defined()) throw Error("a stochastic sampler step needs noise");
  const at::Tensor prev = g.mean + g.std * noise;
  return {prev, g.x0, gaussian_log_prob(prev.detach(), g.mean, g.std)};
}

}  // namespace

GaussianTransition ddim_transition(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                                   const at::Tensor& sample, double eta) {
  check_step(s, t, t_prev);
  const double a_t = s.alpha_bar(t), a_p = s.alpha_bar(t_prev);
  // 1. x̂₀, ε̂ from the model output, Eq. (12) (or its v / x₀ equivalents).
  const X0Eps pred = x0_and_eps(s.config.prediction_type, model_output, sample, a_t);
  // 2. σ_t(η), Eq. (16).
  const double variance = (1 - a_p) / (1 - a_t) * (1 - a_t / a_p);
  const double std = eta * std::sqrt(std::max(variance, 0.0));
  // 3. Mean: "predicted x₀" plus "direction pointing to x_t", Eq. (12).
  const at::Tensor mean = std::sqrt(a_p) * pred.x0 + std::sqrt(std::max(1 - a_p - std * std, 0.0)) * pred.eps;
  return {mean, pred.x0, pred.eps, std};
}

StepOutput ddim_step(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                     const at::Tensor& sample, double eta, const at::Tensor& noise) {
  return sample_transition(ddim_transition(s, t, t_prev, model_output, sample, eta), noise);
}

at::Tensor ddim_log_prob(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                         const at::Tensor& sample, double eta, const at::Tensor& prev_sample) {
  const GaussianTransition g = ddim_transition(s, t, t_prev, model_output, sample, eta);
  return gaussian_log_prob(prev_sample, g.mean, g.std);
}

GaussianTransition ddpm_transition(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                                   const at::Tensor& sample) {
  check_step(s, t, t_prev);
  const double a_t = s.alpha_bar(t), a_p = t_prev < 0 ? 1.0 : s.alpha_bar(t_prev);
  const double alpha = a_t / a_p, beta = 1 - alpha;
  const X0Eps pred = x0_and_eps(s.config.prediction_type, model_output, sample, a_t);
  // Posterior q(x_prev | x_t, x̂₀), Eq. (7), for a step of the strided chain.
  const at::Tensor mean = (std::sqrt(a_p) * beta / (1 - a_t)) * pred.x0 + (std::sqrt(alpha) * (1 - a_p) / (1 - a_t)) * sample;
  const double variance = t_prev < 0 ? 0.0 : std::max(beta * (1 - a_p) / (1 - a_t), 1e-20);
  return {mean, pred.x0, pred.eps, std::sqrt(variance)};
}

StepOutput ddpm_step(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                     const at::Tensor& sample, const at::Tensor& noise) {
  return sample_transition(ddpm_transition(s, t, t_prev, model_output, sample), noise);
}

LcmScalings lcm_boundary_scalings(int64_t t, double timestep_scaling, double sigma_data) {
  const double scaled = static_cast<double>(t) * timestep_scaling;
  const double d2 = sigma_data * sigma_data;
  return {d2 / (scaled * scaled + d2), scaled / std::sqrt(scaled * scaled + d2)};
}

GaussianTransition lcm_transition(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                                  const at::Tensor& sample) {
  check_step(s, t, t_prev);
  const double a_t = s.alpha_bar(t);
  // 1. x̂₀ from the model output; 2. consistency function f = c_skip x_t + c_out x̂₀ (LCM Eq. (9)).
  const X0Eps pred = x0_and_eps(s.config.prediction_type, model_output, sample, a_t);
  const LcmScalings c = lcm_boundary_scalings(t, s.config.timestep_scaling);
  const at::Tensor f = c.c_out * pred.x0 + c.c_skip * sample;
  if (t_prev < 0) return {f, f, pred.eps, 0.0};  // last step: output f itself
  // 3. Re-noise f to t_prev (Algorithm 3, line 6): N(√a_p f, (1−a_p) I).
  const double a_p = s.alpha_bar(t_prev);
  return {std::sqrt(a_p) * f, f, pred.eps, std::sqrt(1 - a_p)};
}

StepOutput lcm_step(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                    const at::Tensor& sample, const at::Tensor& noise) {
  return sample_transition(lcm_transition(s, t, t_prev, model_output, sample), noise);
}

at::Tensor lcm_log_prob(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                        const at::Tensor& sample, const at::Tensor& prev_sample) {
  if (t_prev < 0) throw Error("the last LCM step is deterministic: it has no log-prob");
  const GaussianTransition g = lcm_transition(s, t, t_prev, model_output, sample);
  return gaussian_log_prob(prev_sample, g.mean, g.std);
}

}  // namespace rewardgen
