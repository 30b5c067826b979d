#include "eval/op_profile.h"

#include <ATen/record_function.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "core/error.h"

namespace rewardgen {
namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

struct OpProfileState {
  // One open operator: when it started and how much of its time its callees took.
  struct Frame {
    Clock::time_point start;
    double callee_s = 0;
  };
  std::map<std::string, OpTime> table;
  std::vector<Frame> open;
};

namespace {

// The profile of this thread, if one is running. RecordFunction callbacks are plain function
// pointers, so they find their state here; OpProfile's constructor and destructor own its lifetime.
thread_local OpProfileState* active = nullptr;

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction&) {
  if (active != nullptr) active->open.push_back({Clock::now(), 0.0});
  return nullptr;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext*) {
  if (active == nullptr || active->open.empty()) return;
  const OpProfileState::Frame frame = active->open.back();
  active->open.pop_back();
  const double total = std::chrono::duration<double>(Clock::now() - frame.start).count();
  OpTime& row = active->table[fn.name()];
  row.self_s += total - frame.callee_s;
  row.total_s += total;
  row.calls += 1;
  if (!active->open.empty()) active->open.back().callee_s += total;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

bool is_one_of(const std::string& op, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (op == std::string("aten::") + n) return true;
  return false;
}

std::vector<OpTime> sorted(std::vector<OpTime> rows) {
  std::sort(rows.begin(), rows.end(), [](const OpTime& a, const OpTime& b) { return a.self_s > b.self_s; });
  return rows;
}

}  // namespace

std::string op_category(const std::string& op) {
  // Autograd's own frames: the engine's evaluate_function wrapper, the nodes (ConvolutionBackward0)
  // and gradient accumulation. Their self time is bookkeeping; the arithmetic is in the aten:: ops they call.
  if (op.rfind("autograd::", 0) == 0 || op.rfind("torch::autograd::", 0) == 0 ||
      (op.rfind("aten::", 0) != 0 && contains(op, "Backward")))
    return "autograd";
  if (op.rfind("rewardgen::dense", 0) == 0) return "matmul";  // models/onednn.h's dense layers
  if (contains(op, "conv")) return "convolution";
  if (contains(op, "norm")) return "normalization";
  if (contains(op, "softmax")) return "softmax";
  if (is_one_of(op, {"mm", "bmm", "addmm", "baddbmm", "linear", "matmul", "addmv", "mv", "dot", "addbmm"})) return "matmul";
  if (is_one_of(op, {"empty", "empty_strided", "empty_like", "zeros", "zeros_like", "ones", "ones_like", "zero_",
                     "fill_", "new_empty", "new_zeros", "resize_", "full", "scalar_tensor"}))
    return "allocation";
  if (is_one_of(op, {"copy_", "contiguous", "clone", "cat", "_cat", "to", "_to_copy", "stack", "constant_pad_nd",
                     "upsample_nearest2d", "upsample_nearest2d_backward", "to_dense", "to_mkldnn", "index_select",
                     "embedding", "embedding_backward", "embedding_dense_backward"}))
    return "layout";
  if (is_one_of(op, {"view", "reshape", "_reshape_alias", "permute", "transpose", "t", "expand", "slice", "narrow",
                     "select", "unsqueeze", "squeeze", "flatten", "as_strided", "chunk", "split", "unflatten",
                     "detach", "alias", "unbind", "view_as", "expand_as", "numpy_T", "lift_fresh", "resolve_conj",
                     "resolve_neg", "_unsafe_view"}))
    return "view";
  if (is_one_of(op, {"sum", "mean", "max", "min", "amax", "var", "std", "norm", "prod"})) return "reduction";
  if (op.rfind("aten::", 0) == 0) return "elementwise";  // add, mul, silu, gelu, their backward, ...
  return "other";
}

OpProfile::OpProfile() {
  if (active != nullptr) throw Error("OpProfile: a profile is already running on this thread");
  state_ = std::make_unique<OpProfileState>();
  active = state_.get();
  handle_ = at::addThreadLocalCallback(
      at::RecordFunctionCallback(on_start, on_end).scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
}

OpProfile::~OpProfile() {
  at::removeCallback(handle_);
  active = nullptr;
}

std::vector<OpTime> OpProfile::operators() const {
  std::vector<OpTime> rows;
  for (const auto& [name, row] : state_->table) {
    rows.push_back(row);
    rows.back().name = name;
  }
  return sorted(rows);
}

std::vector<OpTime> OpProfile::categories() const {
  std::map<std::string, OpTime> groups;
  for (const auto& [name, row] : state_->table) {
    OpTime& g = groups[op_category(name)];
    g.self_s += row.self_s;
    g.calls += row.calls;
  }
  std::vector<OpTime> rows;
  for (const auto& [name, row] : groups) {
    rows.push_back(row);
    rows.back().name = name;
    rows.back().total_s = row.self_s;
  }
  return sorted(rows);
}

void OpProfile::reset() {
  state_->table.clear();
}

}  // namespace rewardgen
