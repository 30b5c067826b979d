#pragma once
// The reward interface every method optimises and every evaluation reports (docs/rewards.md), and the
// registry that turns a config string ("aesthetic:DIR", "jpeg_compressibility", ...) into a reward.
// Images are [B, 3, H, W] in [-1, 1] (the convention across rooms); a score is one number per image.
#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/log.h"

namespace rewardgen {

class Reward {
 public:
  virtual ~Reward() = default;
  // images [B, 3, H, W] in [-1, 1], one prompt per image -> scores [B] on the images' device.
  // A differentiable reward keeps the autograd graph from `images` to the scores.
  virtual at::Tensor score(const at::Tensor& images, const std::vector<std::string>& prompts) = 0;
  virtual bool differentiable() const = 0;
  virtual std::string name() const = 0;  // the spec it was made from, e.g. "clip:/models/clip-vit-l"
};

// Checks what every reward needs of its inputs; Error naming `reward` and the problem: rank or
// channels, values far outside [-1, 1] (a [0, 255] image; a little overshoot, as decoders produce,
// is allowed), NaN or Inf pixels, a prompt count different from B.
void check_reward_inputs(const std::string& reward, const at::Tensor& images, const std::vector<std::string>& prompts);
inline constexpr double kRewardRangeSlack = 0.5;  // accepted: [-1.5, 1.5]

// What a reward is built with: where its models run and in which dtype (double for gradient checks).
struct RewardContext {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  Logger log{LogLevel::warn};
};

using RewardFactory = std::function<std::unique_ptr<Reward>(const std::string& argument, const RewardContext& context)>;

struct RewardEntry {
  std::string name;      // "aesthetic", "world.compositional"
  std::string argument;  // what follows "name:" ("DIR", "FILE"; "[DIR]" when optional), empty when the reward takes none
  std::string help;      // one line for `rewardgen reward --list`
  RewardFactory make;
};

// Reward names -> factories. A spec is "name" or "name:ARGUMENT" (the argument may itself hold ':'),
// or a JSON composite ({"spec": weight, ...} or [{"spec": weight}, ...]; see rewards/composite.h).
// Rooms that define rewards add them with add(); the CLI builds the registry it needs.
class RewardRegistry {
 public:
  void add(RewardEntry entry);  // Error when the name is taken
  std::unique_ptr<Reward> make(const std::string& spec, const RewardContext& context) const;
  std::vector<RewardEntry> entries() const;  // sorted by name
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }

 private:
  std::map<std::string, RewardEntry> entries_;
};

// The rewards of this room: jpeg_compressibility, jpeg_incompressibility, aesthetic:DIR, clip:DIR,
// pickscore:DIR, hpsv2:FILE, imagereward:DIR. (world.* rewards: register_world_rewards in rewards/world_rewards.h.)
void register_builtin_rewards(RewardRegistry& registry);
// Every reward of the project: these and the world's.
RewardRegistry builtin_reward_registry();

}  // namespace rewardgen
