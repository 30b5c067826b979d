#include "models/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "core/error.h"

namespace rewardgen {
namespace {

// LibTorch 2.4 replaced the per-device autocast setters with ones taking the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool autocast_enabled(bool cuda) { return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU); }
void set_autocast_enabled(bool cuda, bool on) { at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, on); }
at::ScalarType autocast_dtype(bool cuda) { return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU); }
void set_autocast_dtype(bool cuda, at::ScalarType t) { at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, t); }
#else
bool autocast_enabled(bool cuda) { return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled(); }
void set_autocast_enabled(bool cuda, bool on) { cuda ? at::autocast::set_enabled(on) : at::autocast::set_cpu_enabled(on); }
at::ScalarType autocast_dtype(bool cuda) {
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
void set_autocast_dtype(bool cuda, at::ScalarType t) {
  cuda ? at::autocast::set_autocast_gpu_dtype(t) : at::autocast::set_autocast_cpu_dtype(t);
}
#endif

}  // namespace

bool autocast_on() { return autocast_enabled(false) || autocast_enabled(true); }

bool has_fast_bf16(const CpuFeatures& f) { return f.amx_bf16 || f.avx512_bf16; }

Precision parse_precision(const std::string& name, const c10::Device& device, const CpuFeatures& features) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  if (name == "auto") return device.is_cpu() && has_fast_bf16(features) ? Precision::bf16 : Precision::fp32;
  throw Error(str("unknown precision '", name, "' (allowed: auto, fp32, bf16)"));
}

Precision parse_precision(const std::string& name, const c10::Device& device) {
  return parse_precision(name, device, detect_cpu_features());
}

std::string to_string(Precision p) { return p == Precision::bf16 ? "bf16" : "fp32"; }

at::ScalarType dtype_of(Precision p) { return p == Precision::bf16 ? at::kBFloat16 : at::kFloat; }

AutocastScope::AutocastScope(Precision precision, const c10::Device& device) {
  if (precision != Precision::bf16) return;
  active_ = true;
  cuda_ = device.is_cuda();
  was_enabled_ = autocast_enabled(cuda_);
  previous_dtype_ = autocast_dtype(cuda_);
  set_autocast_enabled(cuda_, true);
  set_autocast_dtype(cuda_, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();  // the weights' bf16 copies
  set_autocast_dtype(cuda_, previous_dtype_);
  set_autocast_enabled(cuda_, was_enabled_);
}

}  // namespace rewardgen
