#include "rewards/reward.h"

#include "core/error.h"
#include "rewards/composite.h"
#include "rewards/world_rewards.h"

namespace rewardgen {

void check_reward_inputs(const std::string& reward, const at::Tensor& images, const std::vector<std::string>& prompts) {
  if (!images.defined()) throw Error(str("reward '", reward, "': no images"));
  if (images.dim() != 4 || images.size(1) != 3)
    throw Error(str("reward '", reward, "': images must be [B, 3, H, W], got ", images.sizes()));
  if (!images.is_floating_point())
    throw Error(str("reward '", reward, "': images must be floating point in [-1, 1], got ", images.scalar_type()));
  if (images.size(0) == 0 || images.size(2) == 0 || images.size(3) == 0)
    throw Error(str("reward '", reward, "': empty image batch ", images.sizes()));
  if (static_cast<int64_t>(prompts.size()) != images.size(0))
    throw Error(str("reward '", reward, "': ", prompts.size(), " prompts for ", images.size(0), " images"));
  const at::Tensor x = images.detach();
  if (!at::isfinite(x).all().item<bool>())
    throw Error(str("reward '", reward, "': images hold NaN or Inf pixels (",
                    at::isnan(x).sum().item<int64_t>(), " NaN)"));
  const double lo = x.min().item<double>(), hi = x.max().item<double>();
  if (lo < -1 - kRewardRangeSlack || hi > 1 + kRewardRangeSlack)
    throw Error(str("reward '", reward, "': pixel values span [", lo, ", ", hi,
                    "], expected [-1, 1] (a [0, 1] or [0, 255] image must be mapped to [-1, 1] first)"));
}

void RewardRegistry::add(RewardEntry entry) {
  if (entry.name.empty() || entry.name.find(':') != std::string::npos)
    throw Error(str("reward name '", entry.name, "' must be non-empty and hold no ':'"));
  if (!entry.make) throw Error(str("reward '", entry.name, "' has no factory"));
  const std::string name = entry.name;
  if (!entries_.emplace(name, std::move(entry)).second) throw Error(str("reward '", name, "' is registered twice"));
}

std::unique_ptr<Reward> RewardRegistry::make(const std::string& spec, const RewardContext& context) const {
  const size_t start = spec.find_first_not_of(" \t\n");
  if (start != std::string::npos && (spec[start] == '{' || spec[start] == '['))
    return make_composite_reward(spec, *this, context);
  const size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const std::string argument = colon == std::string::npos ? "" : spec.substr(colon + 1);
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    std::string known;
    for (const auto& [n, e] : entries_) known += (known.empty() ? "" : ", ") + n + (e.argument.empty() ? "" : ":" + e.argument);
    throw Error(str("unknown reward '", name, "' (known: ", known, ")"));
  }
  const RewardEntry& entry = it->second;
  if (entry.argument.empty() && colon != std::string::npos)
    throw Error(str("reward '", name, "' takes no argument, got '", spec, "'"));
  const bool optional_argument = !entry.argument.empty() && entry.argument.front() == '[';  // "[DIR]"
  if (!entry.argument.empty() && !optional_argument && argument.empty())
    throw Error(str("reward '", name, "' needs an argument: '", name, ":", entry.argument, "'"));
  return entry.make(argument, context);
}

std::vector<RewardEntry> RewardRegistry::entries() const {
  std::vector<RewardEntry> out;
  for (const auto& [name, entry] : entries_) out.push_back(entry);
  return out;
}

RewardRegistry builtin_reward_registry() {
  RewardRegistry registry;
  register_builtin_rewards(registry);
  register_world_rewards(registry);
  return registry;
}

}  // namespace rewardgen
