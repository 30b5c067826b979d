#include "sampling/rollout.h"

#include "core/error.h"
#include "models/recompute.h"
#include "schedulers/steps.h"
#include "schedulers/timesteps.h"

namespace rewardgen {

namespace {

// One value or [B] -> [B] in `like`'s options; undefined -> 1 (no guidance).
at::Tensor per_sample_guidance(const at::Tensor& guidance, const at::Tensor& like) {
  const int64_t B = like.size(0);
  if (!guidance.defined()) return at::ones({B}, like.options());
  const at::Tensor g = guidance.to(like.options()).flatten();
  if (g.numel() == 1) return g.expand({B});
  if (g.numel() != B) throw Error(str("guidance must be one value or [", B, "], got ", guidance.sizes()));
  return g;
}

at::Tensor unet_call(const UNet2DConditionModel& unet, const at::Tensor& x, const at::Tensor& t, const at::Tensor& context,
                     const at::Tensor& timestep_cond, bool recompute) {
  // The output in the dtype of x: a bf16 UNet (or one under autocast) computes in bf16, the
  // sampler's arithmetic stays in x's fp32.
  if (!recompute) return unet.forward(x, t, context, timestep_cond).to(x.scalar_type());
  return recompute_in_backward(
      [&unet](const std::vector<at::Tensor>& in) { return unet.forward(in[0], in[1], in[2], in[3]).to(in[0].scalar_type()); },
      {x, t, context, timestep_cond});
}

Transition transition(const NoiseSchedule& s, const std::string& sampler, const at::Tensor& t, const at::Tensor& t_prev,
                      const at::Tensor& out, const at::Tensor& x, const at::Tensor& eta) {
  if (sampler == "ddim") return ddim_transition(s, t, t_prev, out, x, eta);
  if (sampler == "ddpm") return ddpm_transition(s, t, t_prev, out, x);
  if (sampler == "lcm") return lcm_transition(s, t, t_prev, out, x);
  throw Error(str("unknown rollout sampler '", sampler, "' (allowed: ddim, ddpm, lcm)"));
}

// η as [K, B] float64.
at::Tensor eta_table(const at::Tensor& eta, int64_t K, int64_t B) {
  if (!eta.defined()) return at::zeros({K, B}, at::kDouble);
  const at::Tensor e = eta.to(at::kDouble).cpu();
  if (e.numel() == 1) return e.reshape({1, 1}).expand({K, B}).contiguous();
  if (e.dim() == 1 && e.size(0) == K) return e.unsqueeze(1).expand({K, B}).contiguous();
  if (e.dim() == 2 && e.size(0) == K && e.size(1) == B) return e;
  throw Error(str("rollout eta must be one value, [K] or [K, B] with K = ", K, ", B = ", B, "; got ", eta.sizes()));
}

bool step_has_grad(const RolloutOptions& o, int64_t i, int64_t steps_run) {
  switch (o.gradient) {
    case GradientMode::none: return false;
    case GradientMode::all: return true;
    case GradientMode::from_step: return i >= o.gradient_k;
    case GradientMode::last_k: return i >= steps_run - o.gradient_k;
  }
  return false;
}

// Whether any sample of the global batch draws noise at this step: every rank must draw (or not)
// alike, or their generators part. DDPM's and the LCM's σ are the same for every sample; DDIM's is
// η_b·σ(1), so it is stochastic for some sample of the global batch iff σ(1) > 0 and some η_b > 0.
bool step_is_stochastic(const RolloutOptions& o, const NoiseSchedule& s, const Transition& tr, const at::Tensor& t,
                        const at::Tensor& t_prev, const at::Tensor& global_eta_row) {
  if (o.shard.whole() || o.sampler != "ddim") return tr.std.gt(0).any().item<bool>();
  return global_eta_row.gt(0).any().item<bool>() && ddim_unit_sigma(s, t.cpu(), t_prev.cpu()).gt(0).any().item<bool>();
}

}  // namespace

at::Tensor guided_model_output(const UNet2DConditionModel& unet, const at::Tensor& x, const at::Tensor& t,
                               const Conditioning& c, const at::Tensor& guidance, int64_t* nfe, bool recompute) {
  const int64_t B = x.size(0);
  if (!c.cond.defined() || c.cond.size(0) != B)
    throw Error(str("guided_model_output: the conditioning must be [", B, ", L, D]"));
  const at::Tensor g = per_sample_guidance(guidance, x);  // [B]
  if (unet.config().time_cond_proj_dim > 0) {
    // LCM: w = guidance − 1 through the guidance embedding; one call.
    const at::Tensor embedding = guidance_scale_embedding(g - 1.0, unet.config().time_cond_proj_dim).to(x.options());
    if (nfe) *nfe += 1;
    return unet_call(unet, x, t, c.cond, embedding, recompute);
  }
  if (!c.uncond.defined() || g.eq(1).all().item<bool>()) {
    if (nfe) *nfe += 1;
    return unet_call(unet, x, t, c.cond, at::Tensor(), recompute);
  }
  if (c.uncond.size(0) != B) throw Error(str("guided_model_output: the unconditional states must be [", B, ", L, D]"));
  // CFG: one batched call for [unconditional; conditional], then ε̂ = ε_u + w (ε_c − ε_u).
  if (nfe) *nfe += 2;
  const at::Tensor both = unet_call(unet, at::cat({x, x}), at::cat({t, t}), at::cat({c.uncond, c.cond}), at::Tensor(), recompute);
  const auto parts = both.chunk(2);
  return classifier_free_guidance(parts[0], parts[1], g);
}

void validate(const RolloutOptions& o, const NoiseSchedule& s, int64_t batch) {
  if (o.sampler != "ddim" && o.sampler != "ddpm" && o.sampler != "lcm")
    throw Error(str("unknown rollout sampler '", o.sampler, "' (allowed: ddim, ddpm, lcm)"));
  const int64_t K = static_cast<int64_t>(o.timesteps.size());
  if (K < 1) throw Error("a rollout needs at least one timestep");
  for (int64_t i = 0; i < K; ++i) {
    const int64_t t = o.timesteps[static_cast<size_t>(i)];
    if (t < 0 || t >= s.num_timesteps()) throw Error(str("rollout timestep ", t, " is outside [0, ", s.num_timesteps(), ")"));
    if (i > 0 && t >= o.timesteps[static_cast<size_t>(i - 1)]) throw Error("rollout timesteps must be strictly descending");
  }
  if (!o.prev_timesteps.empty() && o.prev_timesteps.size() != o.timesteps.size())
    throw Error(str("rollout prev_timesteps has ", o.prev_timesteps.size(), " entries for ", K, " timesteps"));
  if (o.stop_after < 0 || o.stop_after > K) throw Error(str("rollout stop_after must lie in [0, ", K, "], got ", o.stop_after));
  const int64_t run = o.stop_after > 0 ? o.stop_after : K;
  if (o.gradient == GradientMode::from_step && (o.gradient_k < 0 || o.gradient_k >= run))
    throw Error(str("rollout from_step needs 0 <= k < ", run, ", got ", o.gradient_k));
  if (o.gradient == GradientMode::last_k && (o.gradient_k < 1 || o.gradient_k > run))
    throw Error(str("rollout last_k needs 1 <= k <= ", run, ", got ", o.gradient_k));
  if (o.eta.defined()) {
    eta_table(o.eta, K, o.shard.global(batch));
    if (!at::isfinite(o.eta).all().item<bool>() || o.eta.lt(0).any().item<bool>()) throw Error("rollout eta must be finite and >= 0");
  }
  if (o.guidance.defined() && !at::isfinite(o.guidance).all().item<bool>()) throw Error("rollout guidance must be finite");
}

Rollout rollout(const UNet2DConditionModel& unet, const NoiseSchedule& s, const Conditioning& c, const at::Tensor& x_T,
                const RolloutOptions& o, at::Generator& generator) {
  const int64_t B = x_T.size(0), K = static_cast<int64_t>(o.timesteps.size());
  validate(o, s, B);
  const int64_t run = o.stop_after > 0 ? o.stop_after : K;
  const at::Tensor global_eta = eta_table(o.eta, K, o.shard.global(B));  // [K, global B]
  const at::Tensor eta = o.shard.slice(global_eta, 1);                     // [K, B]
  const bool grad_enabled = at::GradMode::is_enabled();
  const auto long_options = at::TensorOptions().dtype(at::kLong).device(x_T.device());

  Rollout result;
  at::Tensor x = x_T;
  for (int64_t i = 0; i < run; ++i) {
    const size_t k = static_cast<size_t>(i);
    const int64_t t = o.timesteps[k];
    const int64_t t_prev = !o.prev_timesteps.empty() ? o.prev_timesteps[k] : (i + 1 < K ? o.timesteps[k + 1] : -1);
    const bool with_grad = grad_enabled && step_has_grad(o, i, run);
    at::AutoGradMode mode(with_grad);
    if (!with_grad) x = x.detach();
    const at::Tensor t_batch = at::full({B}, t, long_options), prev_batch = at::full({B}, t_prev, long_options);
    // 1. The guided network output at (x_t, t).
    const at::Tensor out = guided_model_output(unet, x, t_batch, c, o.guidance, &result.nfe, o.recompute && with_grad);
    // 2. The sampler's Gaussian transition, and a draw from it (docs/design.md).
    const Transition tr = transition(s, o.sampler, t_batch, prev_batch, out, x, eta[i]);
    at::Tensor noise;
    if (step_is_stochastic(o, s, tr, t_batch, prev_batch, global_eta[i])) {
      std::vector<int64_t> sizes = x.sizes().vec();
      sizes[0] = o.shard.global(B);
      noise = o.shard.slice(at::randn(sizes, generator, x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat)).to(x.options());
    }
    const StepOutput step = sample_transition(tr, noise);
    RolloutStep record{t, t_prev, {}, {}, {}, step.log_prob, with_grad};
    if (o.keep_states) {
      record.x_t = x;
      record.x_prev = step.prev_sample;
      record.x0 = step.pred_original_sample;
    }
    result.steps.push_back(record);
    result.x0 = step.pred_original_sample;
    x = step.prev_sample;
  }
  result.sample = x;
  return result;
}

at::Tensor transition_log_prob(const UNet2DConditionModel& unet, const NoiseSchedule& s, const std::string& sampler,
                               const Conditioning& c, const at::Tensor& guidance, const at::Tensor& t,
                               const at::Tensor& t_prev, const at::Tensor& x_t, const at::Tensor& x_prev,
                               const at::Tensor& eta, int64_t* nfe) {
  const at::Tensor out = guided_model_output(unet, x_t, t.to(x_t.device()), c, guidance, nfe);
  const Transition tr = transition(s, sampler, t, t_prev, out, x_t, eta.defined() ? eta : at::zeros({}, at::kDouble));
  return gaussian_log_prob(x_prev, tr.mean, tr.std);
}

}  // namespace rewardgen
