#include "rewards/composite.h"

#include <cmath>
#include <set>

#include "core/error.h"

namespace rewardgen {

void RunningStats::update(const at::Tensor& values) {
  const at::Tensor v = values.detach().to(at::kCPU, at::kDouble).reshape({-1});
  if (v.numel() == 0) return;
  if (at::isnan(v).any().item<bool>()) throw Error("running reward statistics: NaN score");
  const auto n_b = static_cast<double>(v.numel());
  const double mean_b = v.mean().item<double>();
  const double m2_b = (v - mean_b).pow(2).sum().item<double>();
  const auto n_a = static_cast<double>(count_);
  const double n = n_a + n_b, delta = mean_b - mean_;
  mean_ += delta * n_b / n;
  m2_ += m2_b + delta * delta * n_a * n_b / n;
  count_ += v.numel();
}

double RunningStats::stddev() const { return std::sqrt(variance()); }

void RunningStats::save(TensorMap& out, const std::string& prefix) const {
  out[prefix + "count"] = at::tensor(count_, at::kLong);
  out[prefix + "mean"] = at::tensor(mean_, at::kDouble);
  out[prefix + "m2"] = at::tensor(m2_, at::kDouble);
}

void RunningStats::load(const TensorMap& in, const std::string& prefix, const std::string& source) {
  for (const char* key : {"count", "mean", "m2"}) {
    auto it = in.find(prefix + key);
    if (it == in.end()) throw Error(str(source, ": missing tensor '", prefix, key, "'"));
    if (it->second.numel() != 1) throw Error(str(source, ": tensor '", prefix, key, "' must be a scalar, got ", it->second.sizes()));
  }
  const auto count = in.at(prefix + "count").item<int64_t>();
  const auto m2 = in.at(prefix + "m2").item<double>();
  if (count < 0 || m2 < 0) throw Error(str(source, ": '", prefix, "' statistics are negative (count ", count, ", m2 ", m2, ")"));
  count_ = count;
  mean_ = in.at(prefix + "mean").item<double>();
  m2_ = m2;
}

CompositeReward::CompositeReward(std::vector<Part> parts) : parts_(std::move(parts)) {
  if (parts_.empty()) throw Error("a composite reward needs at least one part");
  std::set<std::string> seen;
  for (const Part& p : parts_) {
    if (!p.reward) throw Error("a composite reward part has no reward");
    if (!std::isfinite(p.weight)) throw Error(str("composite reward: weight of '", p.reward->name(), "' is not finite"));
    if (!seen.insert(p.reward->name()).second)
      throw Error(str("composite reward: '", p.reward->name(), "' appears twice"));
  }
}

at::Tensor CompositeReward::score(const at::Tensor& images, const std::vector<std::string>& prompts) {
  check_reward_inputs(name(), images, prompts);
  at::Tensor total;
  for (Part& p : parts_) {
    p.last = p.reward->score(images, prompts);  // [B]
    p.stats.update(p.last);
    const at::Tensor weighted = p.weight * p.last;
    total = total.defined() ? total + weighted : weighted;
  }
  return total;
}

bool CompositeReward::differentiable() const {
  for (const Part& p : parts_)
    if (p.weight != 0 && !p.reward->differentiable()) return false;
  return true;
}

std::string CompositeReward::name() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const Part& p : parts_) j[p.reward->name()] = p.weight;
  return j.dump();
}

nlohmann::ordered_json CompositeReward::stats_json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const Part& p : parts_) {
    const std::string n = p.reward->name();
    j[n + "/mean"] = p.stats.mean();
    j[n + "/std"] = p.stats.stddev();
    if (p.last.defined()) j[n + "/batch_mean"] = p.last.detach().to(at::kDouble).mean().item<double>();
  }
  return j;
}

TensorMap CompositeReward::state() const {
  TensorMap out;
  for (const Part& p : parts_) p.stats.save(out, "reward_stats/" + p.reward->name() + "/");
  return out;
}

void CompositeReward::load_state(const TensorMap& state, const std::string& source) {
  std::set<std::string> expected;
  for (Part& p : parts_) {
    const std::string prefix = "reward_stats/" + p.reward->name() + "/";
    p.stats.load(state, prefix, source);
    for (const char* key : {"count", "mean", "m2"}) expected.insert(prefix + key);
  }
  for (const auto& [key, t] : state)
    if (key.rfind("reward_stats/", 0) == 0 && !expected.count(key))
      throw Error(str(source, ": statistics '", key, "' belong to a reward this composite does not have"));
}

namespace {

double weight_of(const nlohmann::ordered_json& value, const std::string& spec, const std::string& text) {
  if (!value.is_number() || !std::isfinite(value.get<double>()))
    throw Error(str("composite reward ", text, ": the weight of '", spec, "' must be a finite number, got ", value.dump()));
  return value.get<double>();
}

}  // namespace

std::unique_ptr<CompositeReward> make_composite_reward(const std::string& text, const RewardRegistry& registry,
                                                       const RewardContext& context) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // a syntax error, or a number beyond a double (1e999)
    throw Error(str("composite reward ", text, ": not valid JSON (", e.what(), ")"));
  }
  std::vector<std::pair<std::string, double>> specs;
  if (j.is_object()) {
    for (const auto& [spec, w] : j.items()) specs.emplace_back(spec, weight_of(w, spec, text));
  } else if (j.is_array()) {
    for (const auto& item : j) {
      if (item.is_object() && item.size() == 1)
        specs.emplace_back(item.begin().key(), weight_of(item.begin().value(), item.begin().key(), text));
      else if (item.is_array() && item.size() == 2 && item[0].is_string())
        specs.emplace_back(item[0].get<std::string>(), weight_of(item[1], item[0].get<std::string>(), text));
      else
        throw Error(str("composite reward ", text, ": list items must be {\"spec\": weight} or [\"spec\", weight], got ",
                        item.dump()));
    }
  } else {
    throw Error(str("composite reward ", text, ": expected a JSON object or list of {spec: weight}"));
  }
  if (specs.empty()) throw Error(str("composite reward ", text, ": no rewards"));
  std::vector<CompositeReward::Part> parts;
  for (const auto& [spec, weight] : specs) {
    const size_t start = spec.find_first_not_of(" \t\n");
    if (start != std::string::npos && (spec[start] == '{' || spec[start] == '['))
      throw Error(str("composite reward ", text, ": parts must be single rewards, not composites"));
    CompositeReward::Part part;
    part.reward = registry.make(spec, context);
    part.weight = weight;
    parts.push_back(std::move(part));
  }
  return std::make_unique<CompositeReward>(std::move(parts));
}

}  // namespace rewardgen
