#include "methods/ppo.h"

#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "dist/collective.h"
#include "models/precision.h"
#include "train/checkpoint.h"

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
  std::vector<std::string> prompts;
  for (const auto& [prompt, buffer] : buffers_) {
    out[str(prefix, prompts.size())] = at::tensor(std::vector<double>(buffer.begin(), buffer.end()), at::kDouble);
    prompts.push_back(prompt);
  }
  out[prefix + "prompts"] = string_list_tensor(prompts);
}

void PromptStatTracker::load_state(const TensorMap& in, const std::string& prefix) {
  const auto it = in.find(prefix + "prompts");
  if (it == in.end()) throw Error(str("checkpoint: missing the stat tracker's '", prefix, "prompts'"));
  const std::vector<std::string> prompts = string_list_from_tensor(it->second, str("the stat tracker's '", prefix, "prompts'"));
  buffers_.clear();
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto b = in.find(str(prefix, i));
    if (b == in.end()) throw Error(str("checkpoint: missing the stat tracker's buffer '", prefix, i, "'"));
    const at::Tensor values = b->second.to(at::kDouble).contiguous();
    buffers_[prompts[i]] = std::deque<double>(values.data_ptr<double>(), values.data_ptr<double>() + values.numel());
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

void read_ppo_config(ConfigReader& r, PpoConfig& c) {
  read_reward_backprop_config(r, c);
  r.optional("updates_per_round", c.updates_per_round, Range{1, 4096})
      .optional("inner_epochs", c.inner_epochs, Range{1, 100})
      .optional("micro_batch", c.micro_batch, Range{1, 4096})
      .optional("clip_range", c.clip_range, Range{0, 10, true, false})
      .optional("advantage_clip", c.advantage_clip, Range{0, 1e6, true, false})
      .optional("per_prompt_stat_tracking", c.per_prompt_stat_tracking)
      .optional("stat_buffer", c.stat_buffer, Range{1, 1e6})
      .optional("stat_min_count", c.stat_min_count, Range{1, 1e6});
  if (c.batch_size % c.updates_per_round != 0)
    throw Error(str(r.file(), ": batch_size ", c.batch_size, " (trajectories per round) must be a multiple of updates_per_round ",
                    c.updates_per_round));
  if (c.stat_min_count > c.stat_buffer)
    throw Error(str(r.file(), ": stat_min_count ", c.stat_min_count, " > stat_buffer ", c.stat_buffer,
                    ": no prompt would ever use its own statistics"));
  if (c.rewards.empty()) throw Error(str(r.file(), ": PPO needs a reward ('rewards': {\"spec\": weight})"));
}

Json ppo_config_json(const PpoConfig& c) {
  Json j = reward_backprop_config_json(c);
  j.update({{"updates_per_round", c.updates_per_round},
            {"inner_epochs", c.inner_epochs},
            {"micro_batch", c.micro_batch},
            {"clip_range", c.clip_range},
            {"advantage_clip", c.advantage_clip},
            {"per_prompt_stat_tracking", c.per_prompt_stat_tracking},
            {"stat_buffer", c.stat_buffer},
            {"stat_min_count", c.stat_min_count}});
  return j;
}

PpoTask::PpoTask(const PpoConfig& config, const std::string& model_dir, const Logger& log, const std::string& method,
                 const at::Device& device)
    : RewardBackpropTask(config, model_dir, log, device),
      config_(config),
      method_(method),
      tracker_(config.stat_buffer, config.stat_min_count) {
  if (rewards_.empty()) throw Error(str(method, " needs a reward with a weight > 0"));
  log.info(str(method, ": PPO on the ", config.generator.sampler, " sampler's ", generator_.steps(), " steps (guidance ",
               config.generator.guidance, config.generator.lora ? ", LoRA" : ", full fine-tune", "), ", config.batch_size,
               " trajectories per round, ", config.updates_per_round, " update(s) per round"));
}

namespace {

// Data-parallel: every rank's rows of a round, in rank order, on every rank (one process: as is).
at::Tensor gather_rows(Collective* collective, const at::Tensor& local) {
  if (collective == nullptr) return local;
  return collective->all_gather(local.cpu()).to(local.device());
}

}  // namespace

PpoRound PpoTask::sample_round(StepContext& context) {
  at::NoGradGuard no_grad;
  at::Generator& rng = context.generator();
  const BatchShard& shard = context.shard();
  const int64_t N = shard.global(config_.batch_size);  // the round's trajectories over all ranks
  PpoRound round;
  // 1. Prompts and the policy's trajectories, every transition stored with its log π_old. Each rank
  //    samples its shard of the round; the round is then gathered, so that every rank holds all of
  //    it (the statistics see every rank's rewards, and rank 0's checkpoint the whole round).
  round.prompts = sample_prompts(N, rng);
  const std::vector<std::string> prompts = shard.slice(round.prompts);
  const Conditioning c = generator_.conditioning(prompts, false);
  const at::Tensor x_T = shard.slice(generator_.initial_noise(N, rng));
  std::optional<AutocastScope> autocast(std::in_place, precision_, generator_.device());
  const at::Tensor eta = at::scalar_tensor(config_.generator.eta, at::kDouble);
  const Rollout r = generator_.rollout(c, x_T, eta, GradientMode::none, 0, 0, rng, /*keep_states=*/true, shard);
  const at::Tensor images = generator_.decode(generator_.output_latents(r)).to(at::kFloat).clamp(-1, 1);  // [N, 3, H, W]
  autocast.reset();
  std::vector<at::Tensor> states, log_probs;
  for (size_t k = 0; k < r.steps.size(); ++k) {
    if (!r.steps[k].log_prob.defined())
      throw Error(str(method_, ": step ", k + 1, " of the policy is deterministic (σ = 0), so PPO has no log-prob to train; "
                      "use eta > 0 (ddim) and last_step 'zero' (ddim) or 'stay' (lcm)"));
    states.push_back(r.steps[k].x_t);
    log_probs.push_back(r.steps[k].log_prob.to(at::kFloat));
  }
  states.push_back(r.steps.back().x_prev);
  round.states = gather_rows(context.collective(), at::stack(states, 1));        // [N, K + 1, C, h, w]
  round.log_probs = gather_rows(context.collective(), at::stack(log_probs, 1));  // [N, K]
  // The reward of the decoded output: Σ wᵢ rᵢ.
  at::Tensor reward = at::zeros({N}, at::kDouble);
  for (const WeightedReward& wr : rewards_) {
    const at::Tensor scores = gather_rows(context.collective(), wr.reward->score(images, prompts).to(at::kDouble).cpu());
    round.reward_parts.push_back(scores.mean().item<double>());
    reward = reward + wr.weight * scores;
  }
  if (!at::isfinite(reward).all().item<bool>()) throw NonFiniteError("a reward of the sampling round is not finite");
  round.reward_mean = reward.mean().item<double>();
  round.reward_std = reward.std(/*unbiased=*/false).item<double>();
  // 2. Advantages per prompt (DDPO's stat tracking) or over the round.
  round.advantages = config_.per_prompt_stat_tracking ? tracker_.advantages(round.prompts, reward)
                                                      : (reward - round.reward_mean) / (round.reward_std + 1e-6);
  return round;
}

void PpoTask::shuffle(at::Generator& rng) {
  const int64_t N = static_cast<int64_t>(round_->prompts.size()), K = generator_.steps();
  round_->sample_order = at::randperm(N, rng, at::kLong);
  std::vector<at::Tensor> orders;
  for (int64_t i = 0; i < N; ++i) orders.push_back(at::randperm(K, rng, at::kLong));
  round_->step_order = at::stack(orders);  // [N, K]
}

PpoLoss PpoTask::update(const at::Tensor& samples, StepContext& context) {
  const PpoRound& round = *round_;
  const int64_t M = samples.numel(), K = generator_.steps();
  const RolloutOptions policy = generator_.policy_options();
  const at::Tensor timesteps = at::tensor(policy.timesteps, at::kLong), prev_timesteps = at::tensor(policy.prev_timesteps, at::kLong);
  const at::Tensor eta = at::scalar_tensor(config_.generator.eta, at::kDouble);
  // The orders and advantages live on the CPU, the trajectories on the generator's device.
  const at::Device device = generator_.device();
  PpoLoss total;
  total.loss = at::zeros({}, at::kDouble);
  for (int64_t start = 0; start < M; start += config_.micro_batch) {
    const int64_t m = std::min(config_.micro_batch, M - start);
    const at::Tensor index = samples.narrow(0, start, m);  // [m]
    std::vector<std::string> prompts;
    for (int64_t i = 0; i < m; ++i) prompts.push_back(round.prompts[static_cast<size_t>(index[i].item<int64_t>())]);
    const Conditioning c = generator_.conditioning(prompts, false);
    const at::Tensor states = round.states.index_select(0, index.to(device)).flatten(0, 1);  // [m (K + 1), C, h, w]
    const at::Tensor order = round.step_order.index_select(0, index), old = round.log_probs.index_select(0, index.to(device));  // [m, K]
    const at::Tensor advantages = round.advantages.index_select(0, index).to(device);
    for (int64_t j = 0; j < K; ++j) {
      const at::Tensor step = order.select(1, j);                                    // each trajectory's j-th timestep index [m]
      const at::Tensor row = (at::arange(m, at::kLong) * (K + 1) + step).to(device);  // its x_t in `states`
      const at::Tensor x_t = states.index_select(0, row), x_prev = states.index_select(0, row + 1);  // [m, C, h, w]
      std::optional<AutocastScope> autocast(std::in_place, precision_, generator_.device());
      const at::Tensor log_prob = transition_log_prob(generator_.unet(), generator_.schedule(), policy.sampler, c, policy.guidance,
                                                      timesteps.index_select(0, step), prev_timesteps.index_select(0, step),
                                                      x_t, x_prev, eta);
      autocast.reset();
      const PpoLoss l = ppo_clipped_loss(log_prob.to(at::kFloat), old.gather(1, step.unsqueeze(1).to(device)).squeeze(1), advantages,
                                         config_.clip_range, config_.advantage_clip);
      // The update's loss is the mean over its M trajectories and K timesteps (DDPO's accumulation).
      const double share = static_cast<double>(m) / static_cast<double>(M * K);
      context.backward(l.loss * share);
      total.loss = total.loss + l.loss.detach().to(at::kDouble) * share;
      total.clip_fraction += l.clip_fraction * share;
      total.approx_kl += l.approx_kl * share;
    }
  }
  return total;
}

MetricsWriter::Values PpoTask::train_step(StepContext& context) {
  at::Generator& rng = context.generator();
  const int64_t per_epoch = config_.updates_per_round, N = context.shard().global(config_.batch_size);
  if (round_ && static_cast<int64_t>(round_->prompts.size()) != N)
    throw Error(str(method_, ": the sampling round in the checkpoint holds ", round_->prompts.size(), " trajectories, but ",
                    context.shard().count, " process(es) × batch_size ", config_.batch_size, " make ", N,
                    ": resume with as many processes as the run started with"));
  const bool new_round = !round_ || round_->updates_done == per_epoch * config_.inner_epochs;
  if (new_round) round_ = sample_round(context);            // steps 1–2
  if (round_->updates_done % per_epoch == 0) shuffle(rng);  // step 3
  // 4. This update's share of the round: every timestep of N / updates_per_round trajectories, of
  //    which each rank takes its equal part (the mean of their losses is the update's).
  const int64_t M = N / per_epoch, u = round_->updates_done % per_epoch;
  context.zero_grad();
  const PpoLoss l = update(context.shard().slice(round_->sample_order.narrow(0, u * M, M)), context);
  context.optimizer_step();
  round_->updates_done += 1;

  const at::Tensor a = round_->advantages.clamp(-config_.advantage_clip, config_.advantage_clip);
  MetricsWriter::Values values;
  // The round's rewards once, on its first update: a reward curve has one point per round.
  if (new_round) {
    values.emplace_back("reward", round_->reward_mean);  // the progress bar's figure
    values.emplace_back("reward_std", round_->reward_std);
    for (size_t i = 0; i < rewards_.size(); ++i) values.emplace_back("reward/" + rewards_[i].key(), round_->reward_parts[i]);
  }
  values.emplace_back("advantage_abs_mean", a.abs().mean().item<double>());
  values.emplace_back("advantage_max", a.max().item<double>());
  values.emplace_back("advantage_min", a.min().item<double>());
  values.emplace_back("loss", l.loss.item<double>());
  values.emplace_back("clip_fraction", l.clip_fraction);
  values.emplace_back("approx_kl", l.approx_kl);
  values.emplace_back("new_round", new_round ? 1.0 : 0.0);
  return values;
}

void PpoTask::save_state(TensorMap& out) const {
  RewardBackpropTask::save_state(out);
  tracker_.save_state(out, "ppo/tracker/");
  if (!round_) return;
  const PpoRound& r = *round_;
  out["ppo/round/prompts"] = string_list_tensor(r.prompts);
  out["ppo/round/states"] = r.states;
  out["ppo/round/log_probs"] = r.log_probs;
  out["ppo/round/advantages"] = r.advantages;
  out["ppo/round/sample_order"] = r.sample_order;
  out["ppo/round/step_order"] = r.step_order;
  out["ppo/round/updates_done"] = at::scalar_tensor(r.updates_done, at::kLong);
  std::vector<double> rewards{r.reward_mean, r.reward_std};
  rewards.insert(rewards.end(), r.reward_parts.begin(), r.reward_parts.end());
  out["ppo/round/rewards"] = at::tensor(rewards, at::kDouble);
}

void PpoTask::load_state(const TensorMap& in) {
  RewardBackpropTask::load_state(in);
  tracker_.load_state(in, "ppo/tracker/");
  round_.reset();
  if (in.find("ppo/round/prompts") == in.end()) return;
  auto get = [&](const std::string& name) {
    const auto it = in.find("ppo/round/" + name);
    if (it == in.end()) throw Error(str("checkpoint: missing the PPO round's 'ppo/round/", name, "'"));
    return it->second;
  };
  PpoRound r;
  r.prompts = string_list_from_tensor(get("prompts"), "the PPO round's prompts");
  r.states = get("states").to(generator_.device());
  r.log_probs = get("log_probs").to(generator_.device());
  r.advantages = get("advantages");
  r.sample_order = get("sample_order");
  r.step_order = get("step_order");
  r.updates_done = get("updates_done").item<int64_t>();
  const at::Tensor rewards = get("rewards").to(at::kDouble).contiguous();
  // N: batch_size × the processes of the launch that sampled it (train_step checks it against this one).
  const int64_t N = static_cast<int64_t>(r.prompts.size()), K = generator_.steps();
  if (N == 0 || N % config_.batch_size != 0 || r.states.dim() != 5 || r.states.size(0) != N || r.states.size(1) != K + 1 ||
      r.log_probs.sizes() != at::IntArrayRef{N, K} || r.step_order.sizes() != at::IntArrayRef{N, K} ||
      rewards.numel() != 2 + static_cast<int64_t>(rewards_.size()))
    throw Error(str("checkpoint: the PPO round does not match this config (a multiple of ", config_.batch_size, " trajectories of ", K, " steps, ",
                    rewards_.size(), " rewards)"));
  r.reward_mean = rewards[0].item<double>();
  r.reward_std = rewards[1].item<double>();
  for (int64_t i = 2; i < rewards.numel(); ++i) r.reward_parts.push_back(rewards[i].item<double>());
  round_ = std::move(r);
}

}  // namespace rewardgen
