#pragma once
// The arithmetic precision models run in: fp32, or bf16 where the CPU multiplies bf16 natively
// (AMX, AVX512-BF16: oneDNN's bf16 convolutions and matmuls are 2-7x faster than fp32 there).
// Two ways to use bf16, chosen by what the caller does:
//   - inference (sample, eval, frozen reward models): load the model in bf16 (LoadOptions::dtype);
//     the models cast their inputs to their weights' dtype, callers cast outputs back to fp32;
//   - training: fp32 master weights, and the forward passes inside an AutocastScope, where ATen runs
//     convolutions, matmuls and what follows them in bf16 (the optimizer keeps updating fp32).
#include <ATen/ATen.h>

#include <string>

#include "core/blas.h"

namespace rewardgen {

enum class Precision { fp32, bf16 };

// True when the CPU has bf16 dot-product instructions (AMX-BF16 or AVX512-BF16).
bool has_fast_bf16(const CpuFeatures& features);
// "fp32", "bf16", or "auto": bf16 on a CPU device with has_fast_bf16(features), else fp32
// (on CUDA "auto" is fp32 too; ask for bf16 by name). Error naming the value otherwise.
Precision parse_precision(const std::string& name, const c10::Device& device, const CpuFeatures& features);
Precision parse_precision(const std::string& name, const c10::Device& device);  // this CPU's features
std::string to_string(Precision precision);
at::ScalarType dtype_of(Precision precision);  // kFloat or kBFloat16
bool autocast_on();  // ATen's autocast is enabled on the CPU or on CUDA (either LibTorch API)

// While alive, and when `precision` is bf16: ATen's autocast to bf16 on `device`'s type. Casts of
// the fp32 weights are cached until the outermost scope closes, so one scope around a whole
// training step casts each weight once. fp32: does nothing.
class AutocastScope {
 public:
  AutocastScope(Precision precision, const c10::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false, cuda_ = false, was_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};

}  // namespace rewardgen
