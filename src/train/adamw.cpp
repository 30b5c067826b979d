#include "train/adamw.h"

#include <cmath>

#include "core/error.h"

namespace rewardgen {

AdamW::AdamW(NamedTensors parameters, AdamWOptions options)
    : parameters_(std::move(parameters)), state_(parameters_.size()), options_(options) {
  for (const auto& [name, p] : parameters_)
    if (!p.defined() || !p.is_floating_point())
      throw Error(str("optimizer: parameter '", name, "' must be a defined floating-point tensor"));
}

void AdamW::zero_grad() {
  for (auto& [name, p] : parameters_) p.mutable_grad() = at::Tensor();
}

void AdamW::step() {
  at::NoGradGuard no_grad;
  const double lr = options_.lr, b1 = options_.beta1, b2 = options_.beta2;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    at::Tensor& p = parameters_[i].second;
    if (!p.grad().defined()) continue;
    at::Tensor grad = p.grad();
    State& s = state_[i];
    if (!s.exp_avg.defined()) {
      s.exp_avg = at::zeros_like(p, at::MemoryFormat::Preserve);
      s.exp_avg_sq = at::zeros_like(p, at::MemoryFormat::Preserve);
    }
    s.step += 1;
    if (options_.weight_decay != 0) {
      if (options_.decoupled_weight_decay)
        p.mul_(1 - lr * options_.weight_decay);  // AdamW, Algorithm 2 line 12
      else
        grad = grad.add(p, options_.weight_decay);  // Adam with L2: g += λθ
    }
    // m_t = β1 m + (1-β1) g;  v_t = β2 v + (1-β2) g²  (Adam, Algorithm 1)
    s.exp_avg.mul_(b1).add_(grad, 1 - b1);
    s.exp_avg_sq.mul_(b2).addcmul_(grad, grad, 1 - b2);
    // θ -= lr/(1-β1^t) · m / (√v/√(1-β2^t) + ε), the bias corrections folded as in torch.optim.
    const double bias_correction1 = 1 - std::pow(b1, static_cast<double>(s.step));
    const double bias_correction2 = 1 - std::pow(b2, static_cast<double>(s.step));
    at::Tensor denom = (s.exp_avg_sq.sqrt() / std::sqrt(bias_correction2)).add_(options_.eps);
    p.addcdiv_(s.exp_avg, denom, -lr / bias_correction1);
  }
}

void AdamW::save_state(TensorMap& out, const std::string& prefix) const {
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const State& s = state_[i];
    if (s.step == 0) continue;  // never stepped: nothing to restore
    const std::string key = prefix + parameters_[i].first;
    out[key + ".exp_avg"] = s.exp_avg;
    out[key + ".exp_avg_sq"] = s.exp_avg_sq;
    out[key + ".step"] = at::scalar_tensor(s.step, at::kLong);
  }
}

void AdamW::load_state(const TensorMap& in, const std::string& prefix) {
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const auto& [name, p] = parameters_[i];
    const std::string key = prefix + name;
    State& s = state_[i];
    const auto step = in.find(key + ".step");
    if (step == in.end()) {  // saved before this parameter was ever stepped
      s = State{};
      continue;
    }
    for (const char* part : {".exp_avg", ".exp_avg_sq"}) {
      const auto it = in.find(key + part);
      if (it == in.end()) throw Error(str("optimizer state: missing tensor '", key, part, "'"));
      if (it->second.sizes() != p.sizes())
        throw Error(str("optimizer state: tensor '", key, part, "' has shape ", it->second.sizes(),
                        ", parameter has ", p.sizes()));
    }
    s.exp_avg = in.at(key + ".exp_avg").to(p.options()).clone();
    s.exp_avg_sq = in.at(key + ".exp_avg_sq").to(p.options()).clone();
    s.step = step->second.item<int64_t>();
  }
}

double clip_grad_norm(const NamedTensors& parameters, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (const auto& [name, p] : parameters)
    if (p.grad().defined()) norms.push_back(p.grad().detach().to(at::kFloat).norm(2));
  if (norms.empty()) return 0.0;
  const double total = at::stack(norms).norm(2).item<double>();
  if (max_norm > 0 && std::isfinite(total)) {
    const double coef = max_norm / (total + 1e-6);  // as torch.nn.utils.clip_grad_norm_
    if (coef < 1)
      for (const auto& [name, p] : parameters)
        if (p.grad().defined()) p.grad().mul_(coef);
  }
  return total;
}

}  // namespace rewardgen
