#include "models/onednn.h"

#include <ATen/Context.h>
#include <ATen/record_function.h>
#include <torch/autograd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "models/precision.h"

#ifdef REWARDGEN_WITH_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace rewardgen {

// Every call transforms the filter bank (36 values per channel pair) and the kernel's GEMMs run over
// the 4×4 output tiles, so a plane of few tiles pays the transform without amortising it. Measured
// (2 threads, forward and both backward passes alike, docs/performance.md): 1280 → 1280 channels
// at 16 tiles (SD1.5's 16×16 at batch 1) 1.2× slower than the direct kernel, at 32 tiles (batch 2)
// 1.7× faster; 4 tiles (8×8, batch 1) 2× slower; 64 tiles and more 2–2.5× faster.
constexpr int64_t kWinogradMinTiles = 32;

bool winograd_applies(const at::Tensor& x, const at::Tensor& weight, int64_t stride, int64_t padding) {
  if (stride != 1 || padding != 1 || x.dim() != 4 || weight.dim() != 4) return false;
  if (!x.device().is_cpu() || !weight.device().is_cpu() || x.scalar_type() != at::kFloat ||
      weight.scalar_type() != at::kFloat || autocast_on())
    return false;
  if (weight.size(2) != 3 || weight.size(3) != 3 || weight.size(1) != x.size(1)) return false;
  const int64_t tiles = x.size(0) * ((x.size(2) + 3) / 4) * ((x.size(3) + 3) / 4);
  return tiles >= kWinogradMinTiles;
}

#ifdef REWARDGEN_WITH_DNNL
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
constexpr memory::data_type kF32 = memory::data_type::f32;
constexpr auto kWinograd = dnnl::algorithm::convolution_winograd;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);  // a handle to the CPU, as ATen keeps its own
  return engine;
}

// The primitives of one convolution shape, made once per thread and shape: a primitive descriptor
// is a search over oneDNN's implementations each time one is created (its own cache keeps
// primitives, not descriptors). `training` plans add the backward passes, built from the forward
// descriptor.
struct WinogradPlan {
  dnnl::convolution_forward::primitive_desc forward_pd;
  dnnl::convolution_forward forward;
  dnnl::convolution_backward_data::primitive_desc backward_data_pd;
  dnnl::convolution_backward_data backward_data;
  dnnl::convolution_backward_weights::primitive_desc backward_weights_pd;
  dnnl::convolution_backward_weights backward_weights;
};

struct ConvShape {
  int64_t n, c, h, w, k;
  bool bias, training;
  bool operator<(const ConvShape& o) const {
    return std::tie(n, c, h, w, k, bias, training) < std::tie(o.n, o.c, o.h, o.w, o.k, o.bias, o.training);
  }
  memory::dims src() const { return {n, c, h, w}; }
  memory::dims weights() const { return {k, c, 3, 3}; }
  memory::dims dst() const { return {n, k, h, w}; }
};

ConvShape shape_of(const at::Tensor& x, const at::Tensor& weight, bool bias, bool training) {
  return {x.size(0), x.size(1), x.size(2), x.size(3), weight.size(0), bias, training};
}

memory::desc any(const memory::dims& dims) { return memory::desc(dims, kF32, Tag::any); }

std::unique_ptr<WinogradPlan> make_winograd_plan(const ConvShape& s) {
  const memory::dims unit{1, 1}, pad{1, 1};
  // forward_training even without a backward: for inference oneDNN wants the weights already in
  // its Winograd domain (6×6 per filter), and its reorder into that layout runs single-threaded and
  // reference-slow (~1 s for a 1280 → 1280 filter bank); the training kernel transforms them itself.
  const auto kind = dnnl::prop_kind::forward_training;
  auto forward_desc = s.bias ? dnnl::convolution_forward::desc(kind, kWinograd, any(s.src()), any(s.weights()),
                                                               any({s.k}), any(s.dst()), unit, pad, pad)
                             : dnnl::convolution_forward::desc(kind, kWinograd, any(s.src()), any(s.weights()),
                                                               any(s.dst()), unit, pad, pad);
  auto plan = std::make_unique<WinogradPlan>();
  plan->forward_pd = dnnl::convolution_forward::primitive_desc(forward_desc, cpu_engine());
  plan->forward = dnnl::convolution_forward(plan->forward_pd);
  if (!s.training) return plan;
  plan->backward_data_pd = dnnl::convolution_backward_data::primitive_desc(
      dnnl::convolution_backward_data::desc(kWinograd, any(s.src()), any(s.weights()), any(s.dst()), unit, pad, pad),
      cpu_engine(), plan->forward_pd);
  plan->backward_data = dnnl::convolution_backward_data(plan->backward_data_pd);
  auto weights_desc = s.bias ? dnnl::convolution_backward_weights::desc(kWinograd, any(s.src()), any(s.weights()),
                                                                         any({s.k}), any(s.dst()), unit, pad, pad)
                             : dnnl::convolution_backward_weights::desc(kWinograd, any(s.src()), any(s.weights()),
                                                                         any(s.dst()), unit, pad, pad);
  plan->backward_weights_pd =
      dnnl::convolution_backward_weights::primitive_desc(weights_desc, cpu_engine(), plan->forward_pd);
  plan->backward_weights = dnnl::convolution_backward_weights(plan->backward_weights_pd);
  return plan;
}

// The plan under `key`, made by make(key) on first use; null (remembered as well) when oneDNN
// refuses it. One cache per thread and kind of plan, so each shape is asked once per thread.
template <typename Key, typename Plan, typename Make>
const Plan* cached_plan(std::map<Key, std::unique_ptr<Plan>>& plans, const Key& key, Make make) {
  auto found = plans.find(key);
  if (found != plans.end()) return found->second.get();
  std::unique_ptr<Plan> plan;
  try {
    plan = make(key);
  } catch (const dnnl::error&) {
    plan = nullptr;
  }
  if (plans.size() >= 512) plans.clear();  // shapes are few in a run; bound the cache anyway
  return plans.emplace(key, std::move(plan)).first->second.get();
}

// The Winograd plan of a shape, or null when oneDNN has no Winograd kernel for it (an older CPU;
// channel counts its kernel refuses).
const WinogradPlan* winograd_plan_for(const ConvShape& s) {
  thread_local std::map<ConvShape, std::unique_ptr<WinogradPlan>> plans;
  return cached_plan(plans, s, make_winograd_plan);
}

// A contiguous fp32 tensor as oneDNN memory of layout `desc` (no copy).
memory wrap(const at::Tensor& t, const memory::desc& desc) {
  return memory(desc, cpu_engine(), const_cast<float*>(t.data_ptr<float>()));
}

// The same in its plain layout `tag` over `dims`.
memory plain(const at::Tensor& t, const memory::dims& dims, Tag tag) { return wrap(t, {dims, kF32, tag}); }

// `user` in the layout `wanted` (the kernel's blocked one): itself when the layouts agree, else a copy.
memory as(const memory& user, const memory::desc& wanted, dnnl::stream& stream) {
  if (user.get_desc() == wanted) return user;
  memory converted(wanted, cpu_engine());
  dnnl::reorder(user, converted).execute(stream, const_cast<memory&>(user), converted);
  return converted;
}

// Runs `compute` into a memory of layout `produced`, then copies it into `out` (plain) if the two differ.
template <typename Compute>
void into(const memory& out, const memory::desc& produced, dnnl::stream& stream, Compute compute) {
  if (out.get_desc() == produced) {
    compute(out);
    return;
  }
  memory result(produced, cpu_engine());
  compute(result);
  dnnl::reorder(result, out).execute(stream, result, const_cast<memory&>(out));
}

at::Tensor winograd_forward(const WinogradPlan& plan, const ConvShape& s, const at::Tensor& x,
                            const at::Tensor& weight, const at::Tensor& bias) {
  RECORD_FUNCTION("rewardgen::winograd_convolution", std::vector<c10::IValue>());  // seen by `bench unet --profile`
  dnnl::stream stream(cpu_engine());
  const auto& pd = plan.forward_pd;
  memory src = as(plain(x, s.src(), Tag::nchw), pd.src_desc(), stream);
  memory wei = as(plain(weight, s.weights(), Tag::oihw), pd.weights_desc(), stream);
  at::Tensor y = at::empty({s.n, s.k, s.h, s.w}, x.options());
  into(plain(y, s.dst(), Tag::nchw), pd.dst_desc(), stream, [&](const memory& dst) {
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
    if (s.bias) args.emplace(DNNL_ARG_BIAS, as(plain(bias, {s.k}, Tag::x), pd.bias_desc(), stream));
    plan.forward.execute(stream, args);
  });
  stream.wait();
  return y;
}

at::Tensor winograd_backward_data(const WinogradPlan& plan, const ConvShape& s, const at::Tensor& d_y,
                                  const at::Tensor& weight) {
  RECORD_FUNCTION("rewardgen::winograd_convolution_backward_data", std::vector<c10::IValue>());
  dnnl::stream stream(cpu_engine());
  const auto& pd = plan.backward_data_pd;
  memory d_dst = as(plain(d_y, s.dst(), Tag::nchw), pd.diff_dst_desc(), stream);
  memory wei = as(plain(weight, s.weights(), Tag::oihw), pd.weights_desc(), stream);
  at::Tensor d_x = at::empty({s.n, s.c, s.h, s.w}, d_y.options());
  into(plain(d_x, s.src(), Tag::nchw), pd.diff_src_desc(), stream, [&](const memory& d_src) {
    plan.backward_data.execute(stream,
                               {{DNNL_ARG_DIFF_DST, d_dst}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DIFF_SRC, d_src}});
  });
  stream.wait();
  return d_x;
}

// The weight's and the bias's gradients (the bias's undefined without one).
std::pair<at::Tensor, at::Tensor> winograd_backward_weights(const WinogradPlan& plan, const ConvShape& s,
                                                            const at::Tensor& d_y, const at::Tensor& x) {
  RECORD_FUNCTION("rewardgen::winograd_convolution_backward_weights", std::vector<c10::IValue>());
  dnnl::stream stream(cpu_engine());
  const auto& pd = plan.backward_weights_pd;
  memory src = as(plain(x, s.src(), Tag::nchw), pd.src_desc(), stream);
  memory d_dst = as(plain(d_y, s.dst(), Tag::nchw), pd.diff_dst_desc(), stream);
  at::Tensor d_w = at::empty({s.k, s.c, 3, 3}, x.options());
  at::Tensor d_b = s.bias ? at::empty({s.k}, x.options()) : at::Tensor();
  into(plain(d_w, s.weights(), Tag::oihw), pd.diff_weights_desc(), stream, [&](const memory& d_wei) {
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, d_dst}, {DNNL_ARG_DIFF_WEIGHTS, d_wei}};
    if (!s.bias) {
      plan.backward_weights.execute(stream, args);
      return;
    }
    into(plain(d_b, {s.k}, Tag::x), pd.diff_bias_desc(), stream, [&](const memory& d_bias) {
      args.emplace(DNNL_ARG_DIFF_BIAS, d_bias);
      plan.backward_weights.execute(stream, args);
    });
  });
  stream.wait();
  return {d_w, d_b};
}

// The Winograd convolution as an autograd function: saves x and the weight (what both backward
// passes read), not the blocked copies.
struct WinogradConvolution : public torch::autograd::Function<WinogradConvolution> {
  // `bias` is an empty tensor for none: LibTorch 1.13's Function::apply refuses undefined inputs.
  static at::Tensor forward(torch::autograd::AutogradContext* context, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias) {
    const bool has_bias = bias.numel() > 0;
    const ConvShape s = shape_of(x, weight, has_bias, true);
    context->save_for_backward({x, weight});
    context->saved_data["bias"] = has_bias;
    return winograd_forward(*winograd_plan_for(s), s, x, weight, bias);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list grads) {
    const auto saved = context->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1];
    const ConvShape s = shape_of(x, weight, context->saved_data["bias"].toBool(), true);
    const WinogradPlan* found = winograd_plan_for(s);  // the forward made it (on this thread or another)
    if (found == nullptr) throw Error("Winograd convolution: oneDNN refused in backward the shape it took in forward");
    const WinogradPlan& plan = *found;
    const at::Tensor d_y = grads[0].contiguous();
    at::Tensor d_x, d_w, d_b;
    if (context->needs_input_grad(0)) d_x = winograd_backward_data(plan, s, d_y, weight);
    if (context->needs_input_grad(1) || context->needs_input_grad(2))
      std::tie(d_w, d_b) = winograd_backward_weights(plan, s, d_y, x);
    return {d_x, d_w, d_b};
  }
};

// ---- Dense layers: y = x Wᵀ + b as oneDNN matmuls on [rows, in] ----

struct DenseShape {
  int64_t rows, in, out;
  bool bias;
  bool operator<(const DenseShape& o) const {
    return std::tie(rows, in, out, bias) < std::tie(o.rows, o.in, o.out, o.bias);
  }
};

// A row-major [r, c] matrix, or (`transposed`) the transpose of the row-major [c, r] one.
memory::desc matrix(int64_t r, int64_t c, bool transposed = false) {
  return memory::desc({r, c}, kF32, transposed ? Tag::ba : Tag::ab);
}

struct DensePlan {
  dnnl::matmul forward;           // y[rows, out] = x[rows, in] · Wᵀ (W [out, in] read transposed) + b
  dnnl::matmul backward_data;     // dx[rows, in] = dy[rows, out] · W[out, in]
  dnnl::matmul backward_weights;  // dW[out, in] = dyᵀ (dy read transposed) · x[rows, in]
};

std::unique_ptr<DensePlan> make_dense_plan(const DenseShape& s) {
  auto plan = std::make_unique<DensePlan>();
  const memory::desc x = matrix(s.rows, s.in), w_t = matrix(s.in, s.out, true), y = matrix(s.rows, s.out);
  plan->forward = dnnl::matmul(
      s.bias ? dnnl::matmul::primitive_desc(dnnl::matmul::desc(x, w_t, matrix(1, s.out), y), cpu_engine())
             : dnnl::matmul::primitive_desc(dnnl::matmul::desc(x, w_t, y), cpu_engine()));
  plan->backward_data =
      dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(y, matrix(s.out, s.in), x), cpu_engine()));
  plan->backward_weights = dnnl::matmul(dnnl::matmul::primitive_desc(
      dnnl::matmul::desc(matrix(s.out, s.rows, true), x, matrix(s.out, s.in)), cpu_engine()));
  return plan;
}

const DensePlan* dense_plan_for(const DenseShape& s) {
  thread_local std::map<DenseShape, std::unique_ptr<DensePlan>> plans;
  return cached_plan(plans, s, make_dense_plan);
}

at::Tensor dense_forward(const DensePlan& plan, const DenseShape& s, const at::Tensor& x, const at::Tensor& weight,
                         const at::Tensor& bias) {
  RECORD_FUNCTION("rewardgen::dense", std::vector<c10::IValue>());
  at::Tensor y = at::empty({s.rows, s.out}, x.options());
  dnnl::stream stream(cpu_engine());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, wrap(x, matrix(s.rows, s.in))},
                                       {DNNL_ARG_WEIGHTS, wrap(weight, matrix(s.in, s.out, true))},
                                       {DNNL_ARG_DST, wrap(y, matrix(s.rows, s.out))}};
  if (s.bias) args.emplace(DNNL_ARG_BIAS, wrap(bias, matrix(1, s.out)));
  plan.forward.execute(stream, args);
  stream.wait();
  return y;
}

// The dense layer as an autograd function: saves x and the weight. `bias` is an empty tensor for
// none, as for WinogradConvolution.
struct Dense : public torch::autograd::Function<Dense> {
  static at::Tensor forward(torch::autograd::AutogradContext* context, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias) {
    const DenseShape s{x.size(0), x.size(1), weight.size(0), bias.numel() > 0};
    context->save_for_backward({x, weight});
    context->saved_data["bias"] = s.bias;
    return dense_forward(*dense_plan_for(s), s, x, weight, bias);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list grads) {
    RECORD_FUNCTION("rewardgen::dense_backward", std::vector<c10::IValue>());
    const auto saved = context->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1];
    const DenseShape s{x.size(0), x.size(1), weight.size(0), context->saved_data["bias"].toBool()};
    const DensePlan* found = dense_plan_for(s);  // the forward made it (on this thread or another)
    if (found == nullptr) throw Error("dense layer: oneDNN refused in backward the matmuls it took in forward");
    const DensePlan& plan = *found;
    const at::Tensor d_y = grads[0].contiguous();
    const memory d_y_memory = wrap(d_y, matrix(s.rows, s.out));
    dnnl::stream stream(cpu_engine());
    at::Tensor d_x, d_w, d_b;
    if (context->needs_input_grad(0)) {
      d_x = at::empty({s.rows, s.in}, x.options());
      plan.backward_data.execute(stream, {{DNNL_ARG_SRC, d_y_memory},
                                          {DNNL_ARG_WEIGHTS, wrap(weight, matrix(s.out, s.in))},
                                          {DNNL_ARG_DST, wrap(d_x, matrix(s.rows, s.in))}});
    }
    if (context->needs_input_grad(1)) {
      d_w = at::empty({s.out, s.in}, x.options());
      plan.backward_weights.execute(stream, {{DNNL_ARG_SRC, wrap(d_y, matrix(s.out, s.rows, true))},
                                             {DNNL_ARG_WEIGHTS, wrap(x, matrix(s.rows, s.in))},
                                             {DNNL_ARG_DST, wrap(d_w, matrix(s.out, s.in))}});
    }
    stream.wait();
    if (s.bias && context->needs_input_grad(2)) d_b = d_y.sum(0);
    return {d_x, d_w, d_b};
  }
};

bool kernel_on_this_cpu() {
  static const bool present = winograd_plan_for(ConvShape{1, 16, 8, 8, 16, true, true}) != nullptr;  // asked once
  return present;
}

// None, or an fp32 CPU vector of `outputs` values (anything else goes to ATen, which names the error).
bool usable_bias(const at::Tensor& bias, int64_t outputs) {
  return !bias.defined() || (bias.scalar_type() == at::kFloat && bias.device().is_cpu() && bias.dim() == 1 &&
                             bias.size(0) == outputs);
}

// No autograd graph to record: gradients off, or nothing here requires one.
bool without_graph(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const bool any_requires = x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad());
  return !at::GradMode::is_enabled() || !any_requires;
}


bool turned_off_by_environment() {
  const char* setting = std::getenv("REWARDGEN_WINOGRAD");
  return setting != nullptr && std::strcmp(setting, "0") == 0;
}

}  // namespace

bool onednn_available() { return at::globalContext().userEnabledMkldnn(); }

bool winograd_available() { return !turned_off_by_environment() && onednn_available() && kernel_on_this_cpu(); }

at::Tensor onednn_dense(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t in = weight.size(1), out = weight.size(0);
  const at::Tensor rows = x.reshape({-1, in}).contiguous(), filter = weight.contiguous();
  const bool has_bias = bias.defined();
  const DenseShape s{rows.size(0), in, out, has_bias};
  const DensePlan* plan = rows.size(0) > 0 && usable_bias(bias, out) ? dense_plan_for(s) : nullptr;
  if (plan == nullptr) return at::linear(x, weight, bias);
  const at::Tensor b = has_bias ? bias.contiguous() : at::empty({0}, x.options());
  const at::Tensor y = without_graph(x, weight, bias) ? dense_forward(*plan, s, rows, filter, b)
                                                      : Dense::apply(rows, filter, b);
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = out;
  return y.view(shape);
}

std::string convolution_kernels() {
  if (turned_off_by_environment()) return "ATen's (REWARDGEN_WINOGRAD=0)";
  if (!onednn_available()) return "ATen's (oneDNN turned off)";
  if (!kernel_on_this_cpu()) return "ATen's (oneDNN has no Winograd kernel for this CPU)";
  return "oneDNN Winograd F(4x4,3x3) for fp32 3x3 stride-1 convolutions of >= 32 tiles, ATen's otherwise";
}

bool winograd_runs(const at::Tensor& x, const at::Tensor& weight, int64_t stride, int64_t padding) {
  if (!winograd_available() || !winograd_applies(x, weight, stride, padding)) return false;
  return winograd_plan_for(shape_of(x, weight, true, at::GradMode::is_enabled())) != nullptr;
}

at::Tensor convolution(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, int64_t stride,
                       int64_t padding) {
  if (usable_bias(bias, weight.size(0)) && winograd_available() && winograd_applies(x, weight, stride, padding)) {
    const bool inference = without_graph(x, weight, bias);
    const at::Tensor input = x.contiguous(), filter = weight.contiguous();
    const ConvShape s = shape_of(input, filter, bias.defined(), !inference);
    if (const WinogradPlan* plan = winograd_plan_for(s)) {
      const at::Tensor b = bias.defined() ? bias.contiguous() : at::empty({0}, x.options());  // empty: none
      return inference ? winograd_forward(*plan, s, input, filter, b) : WinogradConvolution::apply(input, filter, b);
    }
  }
  return at::conv2d(x, weight, bias, {stride, stride}, {padding, padding});
}

#else  // built without oneDNN's headers: ATen's convolution throughout

bool onednn_available() { return false; }

bool winograd_available() { return false; }

at::Tensor onednn_dense(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return at::linear(x, weight, bias);
}

std::string convolution_kernels() { return "ATen's (built without oneDNN's headers, or with a LibTorch that has its own)"; }

bool winograd_runs(const at::Tensor&, const at::Tensor&, int64_t, int64_t) { return false; }

at::Tensor convolution(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, int64_t stride,
                       int64_t padding) {
  return at::conv2d(x, weight, bias, {stride, stride}, {padding, padding});
}

#endif

}  // namespace rewardgen
