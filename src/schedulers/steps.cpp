#include "schedulers/steps.h"

#include <cmath>

#include "core/error.h"
#include "core/per_sample.h"

namespace rewardgen {

namespace {

at::Tensor per_sample(int64_t value, int64_t batch) { return at::full({batch}, value, at::kLong); }

void check_steps(const NoiseSchedule& s, const at::Tensor& t, const at::Tensor& t_prev, const at::Tensor& sample) {
  const int64_t B = sample.size(0);
  if (t.dim() != 1 || t.size(0) != B || t_prev.dim() != 1 || t_prev.size(0) != B)
    throw Error(str("per-sample timesteps must be [", B, "], got t ", t.sizes(), " and t_prev ", t_prev.sizes()));
  const at::Tensor tc = t.to(at::kLong).cpu(), pc = t_prev.to(at::kLong).cpu();
  if (tc.min().item<int64_t>() < 0 || tc.max().item<int64_t>() >= s.num_timesteps())
    throw Error(str("timestep ", tc.lt(0).any().item<bool>() ? tc.min().item<int64_t>() : tc.max().item<int64_t>(),
                    " is outside [0, ", s.num_timesteps(), ")"));
  // t_prev == t is allowed: RLCM re-noises its last LCM step to the same timestep (docs/rlcm.md), and
  // the DDIM/DDPM step from t to t is the identity (σ = 0).
  if (pc.gt(tc).any().item<bool>()) {
    const int64_t i = pc.gt(tc).nonzero()[0][0].item<int64_t>();
    throw Error(str("a sampler step must go down in time: t = ", tc[i].item<int64_t>(), ", t_prev = ", pc[i].item<int64_t>()));
  }
}

// η as [B] float64 from one value or [B].
at::Tensor eta_per_sample(const at::Tensor& eta, int64_t batch) {
  const at::Tensor e = eta.to(at::kDouble).cpu().flatten();
  if (e.numel() == 1) return e.expand({batch}).contiguous();
  if (e.numel() != batch) throw Error(str("eta must be one value or [", batch, "], got ", eta.sizes()));
  return e;
}

GaussianTransition scalar(const Transition& tr) { return {tr.mean, tr.x0, tr.eps, tr.std[0].item<double>()}; }

}  // namespace

at::Tensor alpha_bar_or_final(const NoiseSchedule& s, const at::Tensor& t) {
  const at::Tensor tc = t.to(at::kLong).cpu();
  const at::Tensor table = s.alphas_cumprod.index_select(0, tc.clamp_min(0));
  return at::where(tc.lt(0), at::full_like(table, s.final_alpha_cumprod), table);  // [B] float64
}

at::Tensor gaussian_log_prob(const at::Tensor& x, const at::Tensor& mean, double std) {
  if (!(std > 0)) throw Error(str("gaussian_log_prob needs std > 0, got ", std));
  // log N(x; μ, σ²) = −(x−μ)²/(2σ²) − log σ − log √(2π), per element, then mean over C·h·w.
  const at::Tensor per_element = -(x - mean).pow(2) / (2 * std * std) - std::log(std) - 0.5 * std::log(2 * M_PI);
  return per_element.flatten(1).mean(1);
}

at::Tensor gaussian_log_prob(const at::Tensor& x, const at::Tensor& mean, const at::Tensor& std) {
  // The same formula with σ_b per sample; a σ_b of 0 is replaced by 1 and its row zeroed.
  const at::Tensor deterministic = std.le(0);
  const at::Tensor safe = at::where(deterministic, at::ones_like(std), std);
  const at::Tensor sigma = per_sample_factor(safe, x);
  const at::Tensor per_element = -(x - mean).pow(2) / (2 * sigma * sigma) - sigma.log() - 0.5 * std::log(2 * M_PI);
  const at::Tensor log_prob = per_element.flatten(1).mean(1);
  return at::where(deterministic.to(log_prob.device()), at::zeros_like(log_prob), log_prob);
}

StepOutput sample_transition(const Transition& g, const at::Tensor& noise) {
  if (!g.std.gt(0).any().item<bool>()) return {g.mean, g.x0, at::Tensor()};
  if (!noise.defined()) throw Error("a stochastic sampler step needs noise");
  const at::Tensor prev = g.mean + per_sample_factor(g.std, g.mean) * noise;
  return {prev, g.x0, gaussian_log_prob(prev.detach(), g.mean, g.std)};
}

at::Tensor ddim_unit_sigma(const NoiseSchedule& s, const at::Tensor& t, const at::Tensor& t_prev) {
  const at::Tensor a_t = alpha_bar_or_final(s, t), a_p = alpha_bar_or_final(s, t_prev);
  return ((1 - a_p) / (1 - a_t) * (1 - a_t / a_p)).clamp_min(0).sqrt();
}

Transition ddim_transition(const NoiseSchedule& s, const at::Tensor& t, const at::Tensor& t_prev,
                           const at::Tensor& model_output, const at::Tensor& sample, const at::Tensor& eta) {
  check_steps(s, t, t_prev, sample);
  const at::Tensor a_t = alpha_bar_or_final(s, t), a_p = alpha_bar_or_final(s, t_prev);  // [B] float64
  // 1. x̂₀, ε̂ from the model output, Eq. (12) (or its v / x₀ equivalents).
  const X0Eps pred = x0_and_eps(s.config.prediction_type, model_output, sample, per_sample_factor(a_t, sample));
  // 2. σ_t(η) = η √((1−a_p)/(1−a_t)) √(1 − a_t/a_p), Eq. (16).
  const at::Tensor std = eta_per_sample(eta, sample.size(0)) * ddim_unit_sigma(s, t, t_prev);
  // 3. Mean: "predicted x₀" plus "direction pointing to x_t", Eq. (12).
  const at::Tensor direction = (1 - a_p - std * std).clamp_min(0).sqrt();
  const at::Tensor mean = per_sample_factor(a_p.sqrt(), sample) * pred.x0 + per_sample_factor(direction, sample) * pred.eps;
  return {mean, pred.x0, pred.eps, std};
}

GaussianTransition ddim_transition(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                                   const at::Tensor& sample, double eta) {
  const int64_t B = sample.size(0);
  return scalar(ddim_transition(s, per_sample(t, B), per_sample(t_prev, B), model_output, sample, at::scalar_tensor(eta, at::kDouble)));
}

StepOutput ddim_step(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                     const at::Tensor& sample, double eta, const at::Tensor& noise) {
  const int64_t B = sample.size(0);
  return sample_transition(
      ddim_transition(s, per_sample(t, B), per_sample(t_prev, B), model_output, sample, at::scalar_tensor(eta, at::kDouble)), noise);
}

at::Tensor ddim_log_prob(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                         const at::Tensor& sample, double eta, const at::Tensor& prev_sample) {
  const GaussianTransition g = ddim_transition(s, t, t_prev, model_output, sample, eta);
  return gaussian_log_prob(prev_sample, g.mean, g.std);
}

Transition ddpm_transition(const NoiseSchedule& s, const at::Tensor& t, const at::Tensor& t_prev,
                           const at::Tensor& model_output, const at::Tensor& sample) {
  check_steps(s, t, t_prev, sample);
  const at::Tensor last = t_prev.to(at::kLong).cpu().lt(0);
  const at::Tensor a_t = alpha_bar_or_final(s, t);
  const at::Tensor a_p = at::where(last, at::ones_like(a_t), alpha_bar_or_final(s, t_prev));  // the chain ends at x₀
  const at::Tensor alpha = a_t / a_p, beta = 1 - alpha;
  const X0Eps pred = x0_and_eps(s.config.prediction_type, model_output, sample, per_sample_factor(a_t, sample));
  // Posterior q(x_prev | x_t, x̂₀), Eq. (7), for a step of the strided chain.
  const at::Tensor mean = per_sample_factor(a_p.sqrt() * beta / (1 - a_t), sample) * pred.x0 +
                          per_sample_factor(alpha.sqrt() * (1 - a_p) / (1 - a_t), sample) * sample;
  const at::Tensor variance = at::where(last, at::zeros_like(a_t), (beta * (1 - a_p) / (1 - a_t)).clamp_min(1e-20));
  return {mean, pred.x0, pred.eps, variance.sqrt()};
}

GaussianTransition ddpm_transition(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                                   const at::Tensor& sample) {
  const int64_t B = sample.size(0);
  return scalar(ddpm_transition(s, per_sample(t, B), per_sample(t_prev, B), model_output, sample));
}

StepOutput ddpm_step(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                     const at::Tensor& sample, const at::Tensor& noise) {
  const int64_t B = sample.size(0);
  return sample_transition(ddpm_transition(s, per_sample(t, B), per_sample(t_prev, B), model_output, sample), noise);
}

LcmScalings lcm_boundary_scalings(int64_t t, double timestep_scaling, double sigma_data) {
  const double scaled = static_cast<double>(t) * timestep_scaling;
  const double d2 = sigma_data * sigma_data;
  return {d2 / (scaled * scaled + d2), scaled / std::sqrt(scaled * scaled + d2)};
}

at::Tensor lcm_consistency(const NoiseSchedule& s, const at::Tensor& t, const at::Tensor& x0, const at::Tensor& sample) {
  // c_skip = σ_d² / (s² + σ_d²), c_out = s / √(s² + σ_d²), s = t · timestep_scaling, σ_d = 0.5.
  const double d2 = 0.25;
  const at::Tensor scaled = t.to(at::kDouble).cpu() * s.config.timestep_scaling;
  const at::Tensor c_skip = d2 / (scaled * scaled + d2), c_out = scaled / (scaled * scaled + d2).sqrt();
  return per_sample_factor(c_out, x0) * x0 + per_sample_factor(c_skip, sample) * sample;
}

Transition lcm_transition(const NoiseSchedule& s, const at::Tensor& t, const at::Tensor& t_prev,
                          const at::Tensor& model_output, const at::Tensor& sample) {
  check_steps(s, t, t_prev, sample);
  const at::Tensor a_t = alpha_bar_or_final(s, t);
  // 1. x̂₀ from the model output; 2. consistency function f = c_skip x_t + c_out x̂₀ (LCM Eq. (9)).
  const X0Eps pred = x0_and_eps(s.config.prediction_type, model_output, sample, per_sample_factor(a_t, sample));
  const at::Tensor f = lcm_consistency(s, t, pred.x0, sample);
  // 3. Re-noise f to t_prev (Algorithm 3, line 6): N(√a_p f, (1−a_p) I); the last step (t_prev < 0) outputs f.
  const at::Tensor last = t_prev.to(at::kLong).cpu().lt(0);
  const at::Tensor a_p = at::where(last, at::ones_like(a_t), alpha_bar_or_final(s, t_prev));
  return {per_sample_factor(a_p.sqrt(), f) * f, f, pred.eps, (1 - a_p).sqrt()};
}

GaussianTransition lcm_transition(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                                  const at::Tensor& sample) {
  const int64_t B = sample.size(0);
  return scalar(lcm_transition(s, per_sample(t, B), per_sample(t_prev, B), model_output, sample));
}

StepOutput lcm_step(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                    const at::Tensor& sample, const at::Tensor& noise) {
  const int64_t B = sample.size(0);
  return sample_transition(lcm_transition(s, per_sample(t, B), per_sample(t_prev, B), model_output, sample), noise);
}

at::Tensor lcm_log_prob(const NoiseSchedule& s, int64_t t, int64_t t_prev, const at::Tensor& model_output,
                        const at::Tensor& sample, const at::Tensor& prev_sample) {
  if (t_prev < 0) throw Error("the last LCM step is deterministic: it has no log-prob");
  const GaussianTransition g = lcm_transition(s, t, t_prev, model_output, sample);
  return gaussian_log_prob(prev_sample, g.mean, g.std);
}

}  // namespace rewardgen
