#pragma once
// Direct calls of the oneDNN that Debian's LibTorch links (libdnnl.so.2, oneDNN 2.x): what ATen 1.13
// does not ask of it.
//
// 1. 3×3 convolutions by oneDNN's Winograd kernel (F(4×4, 3×3), Lavin & Gray, arXiv 1509.09308): a
// 6×6 input tile and the 3×3 filter are transformed so that a 4×4 output tile costs 36
// multiplications per channel pair instead of 144. aten::mkldnn_convolution always asks for the
// direct algorithm. Forward and both backward passes. Measured at the UNets' shapes
// (docs/performance.md, "Winograd convolutions"): 2.4× faster than the direct kernel at SD1.5's
// 64×64, 1.75× at 32×32, 1.2–1.6× at the world's. Numerics: the transforms reorder the sums;
// outputs differ from the direct convolution by a few units in the last place of fp32 (max error
// ~3e-6 of the output's magnitude at SD's widths), as any other blocking of the same sums would.
//
// 2. Dense layers (x Wᵀ + b) by oneDNN's matmul with the primitives kept per shape: ATen's path for
// them (a 1×1 convolution through ideep, layers.cpp) re-derives its primitive and reorders the
// weight on every call, which at the world's widths (32–256) costs more than the product itself.
#include <ATen/ATen.h>

#include <string>

namespace rewardgen {

// True when this build calls oneDNN itself (REWARDGEN_WITH_DNNL: Debian's LibTorch and the
// libdnnl-dev headers) and the user has not turned oneDNN off (at::globalContext().
// setUserEnabledMkldnn(false)).
bool onednn_available();

// True when onednn_available(), the CPU has the Winograd kernel (AVX-512), and REWARDGEN_WINOGRAD=0
// is not in the environment.
bool winograd_available();

// Whether convolution() asks oneDNN for a Winograd kernel: fp32 CPU tensors outside autocast, a
// 4-D input, a [out, in, 3, 3] weight, stride 1, padding 1, and at least 32 output tiles of 4×4
// over the batch (fewer do not pay for the per-call filter transform; onednn.cpp).
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

// x Wᵀ + b for fp32 CPU tensors by oneDNN's matmul (x [..., in], weight [out, in], bias [out] or
// undefined), differentiable in all three (first order). Call only where onednn_available().
at::Tensor onednn_dense(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace rewardgen
