#pragma once
// Where the time of a forward or backward pass goes, per ATen operator: while an OpProfile lives,
// every operator and autograd node this thread runs is timed (ATen's RecordFunction callbacks), and
// each gets its *self* time (its own time less that of the operators it called), so the rows add up
// to the wall-clock of the profiled code. Categories group the operators the way a reader asks
// "convolutions or GroupNorm?" (docs/performance.md).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rewardgen {

struct OpProfileState;

struct OpTime {
  std::string name;      // "aten::mkldnn_convolution", "autograd::engine::evaluate_function: ..."
  double self_s = 0;     // time in this operator, less its callees'
  double total_s = 0;    // including callees (summed over calls; nested calls of one name count twice)
  int64_t calls = 0;
};

// The group an operator's self time is reported in: "convolution", "matmul", "normalization",
// "softmax", "elementwise", "layout" (copies, concatenation, reorders), "allocation", "reduction",
// "autograd" (engine and node bookkeeping) or "other".
std::string op_category(const std::string& op_name);

class OpProfile {
 public:
  OpProfile();   // starts timing this thread's operators; one OpProfile per thread at a time
  ~OpProfile();  // stops
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;

  // Rows so far, largest self time first.
  std::vector<OpTime> operators() const;
  // Self time per op_category(), largest first (name = the category).
  std::vector<OpTime> categories() const;
  void reset();  // forget what was timed so far (e.g. a warm-up), keep timing

 private:
  std::unique_ptr<OpProfileState> state_;
  uint64_t handle_ = 0;
};

}  // namespace rewardgen
