#pragma once
// 3×3 convolutions through oneDNN's Winograd kernel (F(4×4, 3×3), Lavin & Gray, arXiv 1509.09308):
// a 6×6 input tile and the 3×3 filter are transformed so that a 4×4 output tile costs 36
// multiplications per channel pair instead of 144. LibTorch's own oneDNN calls (aten::
// mkldnn_convolution) always ask for the direct algorithm; Debian's LibTorch links the system's
// oneDNN 2.x (libdnnl.so.2), so this build can call the same library with the Winograd algorithm,
// forward and both backward passes. Measured at the UNets' shapes (docs/performance.md, "Winograd
// convolutions"): 2.2–2.7× faster than the direct kernel at SD1.5's, 1.2–1.6× at the world's.
//
// Numerics: the transforms reorder the sums; outputs differ from the direct convolution by a few
// units in the last place of fp32 (max error ~3e-6 of the output's magnitude at SD's widths), as any
// other blocking of the same sums would.
#include <ATen/ATen.h>

#include <string>

namespace rewardgen {

// True when this build calls oneDNN itself (REWARDGEN_WITH_DNNL: Debian's LibTorch and the
// libdnnl-dev headers), the CPU has the kernel (AVX-512), and the user has not turned oneDNN off
// (at::globalContext().setUserEnabledMkldnn(false), or REWARDGEN_WINOGRAD=0 in the environment).
bool winograd_available();

// Whether convolution() asks oneDNN for a Winograd kernel: fp32 CPU tensors outside autocast, a
// 4-D input, a [out, in, 3, 3] weight, stride 1, padding 1, and at least 32 output tiles of 4×4
// over the batch (fewer do not pay for the per-call filter transform; winograd_conv.cpp).
bool winograd_applies(const at::Tensor& x, const at::Tensor& weight, int64_t stride, int64_t padding);

// at::conv2d(x, weight, bias, {stride, stride}, {padding, padding}): by Winograd where
// winograd_applies() and oneDNN has a Winograd kernel for the channel counts (it refuses some
// narrow ones), else ATen's. Differentiable in x, weight and bias either way; the Winograd path's
// backward runs oneDNN's Winograd backward passes and is first order only (no method
// differentiates a gradient through a UNet). bias may be undefined.
at::Tensor convolution(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, int64_t stride,
                       int64_t padding);

// Which kernels 3×3 convolutions get here, and why (for --version and the benchmarks' headers).
std::string convolution_kernels();

// Whether convolution() runs this one by Winograd (for tests and benchmarks).
bool winograd_runs(const at::Tensor& x, const at::Tensor& weight, int64_t stride, int64_t padding);

}  // namespace rewardgen
