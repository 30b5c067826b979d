#include "methods/ppo.h"

#include <cmath>

#include "core/error.h"
#include "io/json_config.h"

namespace rewardgen {

PromptStatTracker::PromptStatTracker(int64_t buffer_size, int64_t min_count) : buffer_size_(buffer_size), min_count_(min_count) {
  if (buffer_size < 1 || min_count < 1) throw Error(str("stat tracking needs buffer_size and min_count >= 1, got ", buffer_size, ", ", min_count));
}

namespace {

struct MeanStd {
  double mean, std;
};
template <class Values>
MeanStd mean_std(const Values& values) {
  double sum = 0, squares = 0;
  for (double v : values) sum += v;
  const double mean = sum / static_cast<double>(values.size());
  for (double v : values) squares += (v - mean) * (v - mean);
  return {mean, std::sqrt(squares / static_cast<double>(values.size()))};
}

}  // namespace

at::Tensor PromptStatTracker::advantages(const std::vector<std::string>& prompts, const at::Tensor& rewards) {
  const at::Tensor r = rewards.to(at::kDouble).cpu().contiguous();
  if (r.dim() != 1 || r.size(0) != static_cast<int64_t>(prompts.size()) || prompts.empty())
    throw Error(str("stat tracking needs one reward per prompt, got ", r.sizes(), " for ", prompts.size(), " prompts"));
  if (!at::isfinite(r).all().item<bool>()) throw Error("stat tracking got a non-finite reward");
  const double* values = r.data_ptr<double>();
  const std::vector<double> batch(values, values + r.size(0));
  const MeanStd whole = mean_std(batch);
  // 1. The current rewards join their prompts' buffers (oldest dropped beyond buffer_size).
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::deque<double>& buffer = buffers_[prompts[i]];
    buffer.push_back(batch[i]);
    while (static_cast<int64_t>(buffer.size()) > buffer_size_) buffer.pop_front();
  }
  // 2. Per prompt: its buffer's statistics, or the batch's below min_count.
  at::Tensor out = at::empty({r.size(0)}, at::kDouble);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::deque<double>& buffer = buffers_.at(prompts[i]);
    const MeanStd s = static_cast<int64_t>(buffer.size()) < min_count_ ? whole : mean_std(buffer);
    out[static_cast<int64_t>(i)] = (batch[i] - s.mean) / (s.std + 1e-6);
  }
  return out;
}

int64_t PromptStatTracker::count(const std::string& prompt) const {
  const auto it = buffers_.find(prompt);
  return it == buffers_.end() ? 0 : static_cast<int64_t>(it->second.size());
}

void PromptStatTracker::save_state(TensorMap& out, const std::string& prefix) const {
  Json names = Json::array();
  int64_t index = 0;
  for (const auto& [prompt, buffer] : buffers_) {
    names.push_back(prompt);
    out[str(prefix, index++)] = at::tensor(std::vector<double>(buffer.begin(), buffer.end()), at::kDouble);
  }
  // The prompts travel as UTF-8 bytes of a JSON list (a tensor: checkpoints hold tensors only).
  const std::string text = names.dump();
  out[prefix + "prompts"] = at::tensor(std::vector<uint8_t>(text.begin(), text.end()), at::kByte);
}

void PromptStatTracker::load_state(const TensorMap& in, const std::string& prefix) {
  const auto it = in.find(prefix + "prompts");
  if (it == in.end()) throw Error(str("checkpoint: missing the stat tracker's '", prefix, "prompts'"));
  const at::Tensor bytes = it->second.to(at::kByte).contiguous();
  const std::string text(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), static_cast<size_t>(bytes.numel()));
  const Json names = Json::parse(text, nullptr, false);
  if (!names.is_array()) throw Error(str("checkpoint: the stat tracker's '", prefix, "prompts' is not a JSON list"));
  buffers_.clear();
  for (size_t i = 0; i < names.size(); ++i) {
    const auto b = in.find(str(prefix, i));
    if (b == in.end() || !names[i].is_string()) throw Error(str("checkpoint: missing the stat tracker's buffer '", prefix, i, "'"));
    const at::Tensor values = b->second.to(at::kDouble).contiguous();
    buffers_[names[i].get<std::string>()] = std::deque<double>(values.data_ptr<double>(), values.data_ptr<double>() + values.numel());
  }
}

PpoLoss ppo_clipped_loss(const at::Tensor& log_prob, const at::Tensor& old_log_prob, const at::Tensor& advantages,
                         double clip_range, double advantage_clip) {
  if (log_prob.sizes() != old_log_prob.sizes() || log_prob.sizes() != advantages.sizes() || log_prob.dim() != 1)
    throw Error(str("the PPO loss needs [B] log-probs and advantages, got ", log_prob.sizes(), ", ", old_log_prob.sizes(), ", ",
                    advantages.sizes()));
  const at::Tensor a = advantages.to(log_prob.scalar_type()).clamp(-advantage_clip, advantage_clip);
  const at::Tensor ratio = (log_prob - old_log_prob.detach()).exp();  // ρ
  const at::Tensor unclipped = -a * ratio, clipped = -a * ratio.clamp(1 - clip_range, 1 + clip_range);
  PpoLoss out;
  out.loss = at::maximum(unclipped, clipped).mean();
  at::NoGradGuard no_grad;
  out.clip_fraction = (ratio - 1).abs().gt(clip_range).to(at::kDouble).mean().item<double>();
  out.approx_kl = 0.5 * (log_prob - old_log_prob).pow(2).mean().item<double>();
  return out;
}

}  // namespace rewardgen
