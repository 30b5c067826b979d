#include "models/recompute.h"

#include <torch/autograd.h>
#include <torch/custom_class.h>

namespace rewardgen {

namespace {

// The function travels through the autograd context as a capsule (IValues hold no std::function).
struct FunctionHolder : torch::CustomClassHolder {
  explicit FunctionHolder(TensorFunction f) : fn(std::move(f)) {}
  TensorFunction fn;
};

struct Recompute : torch::autograd::Function<Recompute> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, c10::intrusive_ptr<FunctionHolder> holder,
                            at::TensorList input_list) {
    const std::vector<at::Tensor> inputs = input_list.vec();
    ctx->saved_data["fn"] = c10::IValue::make_capsule(holder);
    ctx->save_for_backward(inputs);
    at::NoGradGuard no_grad;  // (the Function machinery already disables grad; be explicit)
    return holder->fn(inputs);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto holder = ctx->saved_data["fn"].toCapsule();
    const TensorFunction& fn = static_cast<FunctionHolder*>(holder.get())->fn;
    const std::vector<at::Tensor> saved = ctx->get_saved_variables();
    std::vector<at::Tensor> inputs;
    for (const at::Tensor& x : saved) {
      if (!x.defined()) {
        inputs.push_back(x);
        continue;
      }
      at::Tensor leaf = x.detach();
      if (x.requires_grad()) leaf.requires_grad_(true);
      inputs.push_back(leaf);
    }
    at::Tensor output;
    {
      at::AutoGradMode enable(true);
      output = fn(inputs);
    }
    // Parameters read by fn receive their gradient here, as they would have without recomputation.
    if (output.requires_grad()) torch::autograd::backward({output}, {grad_outputs[0]});
    torch::autograd::variable_list grads;
    grads.emplace_back();  // the holder argument has no gradient
    for (const at::Tensor& x : inputs) grads.push_back(x.defined() && x.requires_grad() ? x.grad() : at::Tensor());
    return grads;
  }
};

}  // namespace

at::Tensor recompute_in_backward(const TensorFunction& fn, const std::vector<at::Tensor>& inputs) {
  if (!at::GradMode::is_enabled()) return fn(inputs);
  // An autograd Function's output requires grad only if an input does; when only the parameters
  // inside fn do (the first sampler step: x_T is a constant), an anchor input keeps the node in
  // the graph. fn never sees it.
  // Undefined inputs (an absent timestep_cond) cannot enter autograd: they are put back by position.
  std::vector<bool> defined;
  std::vector<at::Tensor> with_anchor;
  for (const at::Tensor& x : inputs) {
    defined.push_back(x.defined());
    if (x.defined()) with_anchor.push_back(x);
  }
  with_anchor.push_back(at::zeros({}).requires_grad_(true));  // (ATen factories ignore TensorOptions::requires_grad)
  const TensorFunction without_anchor = [fn, defined](const std::vector<at::Tensor>& all) {
    std::vector<at::Tensor> original;
    size_t next = 0;
    for (const bool d : defined) original.push_back(d ? all[next++] : at::Tensor());
    return fn(original);
  };
  // A TensorList (not a std::vector) so that autograd counts each tensor as an input.
  return Recompute::apply(c10::make_intrusive<FunctionHolder>(without_anchor), at::TensorList(with_anchor));
}

}  // namespace rewardgen
