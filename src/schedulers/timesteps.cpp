#include "schedulers/timesteps.h"

#include <cmath>

#include "core/error.h"
#include "core/per_sample.h"

namespace rewardgen {
namespace {

void check_steps(const SchedulerConfig& c, int64_t steps) {
  if (steps < 1 || steps > c.num_train_timesteps)
    throw Error(str("the number of sampling steps must be in [1, ", c.num_train_timesteps, "], got ", steps));
}

}  // namespace

std::vector<int64_t> ddim_timesteps(const SchedulerConfig& c, int64_t steps, const std::string& spacing) {
  check_steps(c, steps);
  const int64_t T = c.num_train_timesteps;
  std::vector<int64_t> out;
  if (spacing == "leading") {
    const int64_t ratio = T / steps;
    for (int64_t k = steps - 1; k >= 0; --k) out.push_back(k * ratio + c.steps_offset);
  } else if (spacing == "trailing") {
    const double ratio = static_cast<double>(T) / static_cast<double>(steps);
    for (int64_t k = 0; k < steps; ++k) out.push_back(static_cast<int64_t>(std::nearbyint(static_cast<double>(T) - k * ratio)) - 1);
  } else if (spacing == "linspace") {
    for (int64_t k = steps - 1; k >= 0; --k)
      out.push_back(steps == 1 ? 0 : static_cast<int64_t>(std::nearbyint(static_cast<double>(T - 1) * k / static_cast<double>(steps - 1))));
  } else {
    throw Error(str("unknown timestep spacing '", spacing, "' (allowed: leading, trailing, linspace)"));
  }
  for (int64_t t : out)
    if (t >= T) throw Error(str("steps_offset ", c.steps_offset, " pushes timestep ", t, " past ", T - 1));
  return out;
}

int64_t ddim_prev_timestep(const SchedulerConfig& c, int64_t t, int64_t steps) {
  check_steps(c, steps);
  return t - c.num_train_timesteps / steps;
}

std::vector<int64_t> lcm_timesteps(const SchedulerConfig& c, int64_t steps, const std::string& rule, int64_t first_timestep) {
  if (rule != "diffusers" && rule != "rlcm") throw Error(str("unknown LCM timestep rule '", rule, "' (allowed: diffusers, rlcm)"));
  const int64_t original = c.original_inference_steps;
  if (original < 1 || original > c.num_train_timesteps)
    throw Error(str("original_inference_steps must be in [1, ", c.num_train_timesteps, "], got ", original));
  if (steps < 1 || steps > original)
    throw Error(str("LCM sampling steps must be in [1, original_inference_steps = ", original, "], got ", steps));
  const int64_t k = c.num_train_timesteps / original;
  std::vector<int64_t> grid;  // the distillation grid, descending
  for (int64_t i = original; i >= 1; --i)
    if (first_timestep < 0 || i * k - 1 <= first_timestep) grid.push_back(i * k - 1);
  if (static_cast<int64_t>(grid.size()) < steps)
    throw Error(str("LCM sampling from timestep ", first_timestep, " has ", grid.size(), " grid entries (", k,
                    "i − 1) for ", steps, " steps"));
  std::vector<int64_t> out;
  const int64_t stride = static_cast<int64_t>(grid.size()) / steps;
  if (rule == "rlcm") {
    for (int64_t i = 0; i < steps; ++i) out.push_back(grid[static_cast<size_t>(i * stride)]);
    return out;
  }
  for (int64_t i = 0; i < steps; ++i)  // ⌊linspace(0, len, n, endpoint=False)⌋
    out.push_back(grid[static_cast<size_t>(std::floor(static_cast<double>(i) * static_cast<double>(grid.size()) /
                                                      static_cast<double>(steps)))]);
  return out;
}

void check_first_timestep(int64_t first_timestep, int64_t T, const std::string& what) {
  if (first_timestep < -1 || first_timestep >= T)
    throw Error(str(what, " ", first_timestep, " must be -1 (the whole grid) or in [0, ", T, ")"));
}

void check_timestep_list(const std::vector<int64_t>& timesteps, int64_t T, const std::string& what) {
  if (timesteps.empty()) throw Error(str(what, " is empty"));
  for (size_t i = 0; i < timesteps.size(); ++i) {
    if (timesteps[i] < 0 || timesteps[i] >= T)
      throw Error(str(what, " holds ", timesteps[i], ", outside [0, ", T, ")"));
    if (i > 0 && timesteps[i] >= timesteps[i - 1])
      throw Error(str(what, " must be strictly descending, got ", timesteps[i - 1], " then ", timesteps[i]));
  }
}

at::Tensor classifier_free_guidance(const at::Tensor& eps_uncond, const at::Tensor& eps_cond, double w) {
  return eps_uncond + w * (eps_cond - eps_uncond);
}

at::Tensor classifier_free_guidance(const at::Tensor& eps_uncond, const at::Tensor& eps_cond, const at::Tensor& w) {
  return eps_uncond + per_sample_factor(w, eps_cond) * (eps_cond - eps_uncond);
}

at::Tensor guidance_scale_embedding(const at::Tensor& w, int64_t dim) {
  if (w.dim() != 1) throw Error(str("guidance_scale_embedding takes w of shape [B], got ", w.sizes()));
  if (dim < 4) throw Error(str("guidance embedding dim must be >= 4, got ", dim));
  const int64_t half = dim / 2;
  const auto options = w.options().dtype(at::kFloat);
  // frequencies exp(−log(10000) · i / (half − 1)), i = 0 .. half−1
  const at::Tensor freqs = at::exp(at::arange(half, options) * (-std::log(10000.0) / static_cast<double>(half - 1)));
  const at::Tensor angles = (w.to(at::kFloat) * 1000.0).unsqueeze(1) * freqs.unsqueeze(0);  // [B, half]
  at::Tensor emb = at::cat({angles.sin(), angles.cos()}, 1);                                 // [B, 2·half]
  if (dim % 2 == 1) emb = at::constant_pad_nd(emb, {0, 1});
  return emb;
}

}  // namespace rewardgen
