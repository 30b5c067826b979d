#pragma once
// GEGLU (Shazeer 2020), the activation of diffusers' transformer feed-forward, fused on the CPU in
// fp32 on raw rows (no torch here): a projected row h = [a, g] of width 2F gives
//   out = a · GELU(g),  GELU(g) = g·Φ(g) = ½·g·(1 + erf(g/√2))   (exact GELU, as torch's default),
// and the backward gives both halves of dh in one pass from h and d_out:
//   da = d_out · GELU(g),  dg = d_out · a · GELU'(g),  GELU'(g) = Φ(g) + g·φ(g).
// Unfused, torch runs chunk, gelu, mul forward and mul, gelu_backward, cat backward, each a pass
// through memory with its own temporary (docs/performance.md: 36 ms of the world UNet's 0.34 s
// training step).
#include <cstdint>

#include "models/cpu_kernels.h"

namespace rewardgen::geglu_kernels {

using cpu_kernels::best_isa;
using cpu_kernels::Isa;

// out [rows, F] from h [rows, 2F], both contiguous.
void forward(const float* h, int64_t rows, int64_t F, float* out, Isa isa = best_isa());

// d_h [rows, 2F] from h [rows, 2F] and d_out [rows, F], all contiguous.
void backward(const float* h, const float* d_out, int64_t rows, int64_t F, float* d_h, Isa isa = best_isa());

// The same on bf16 rows (each value's bits, the upper half of a float's), computed in fp32 and
// rounded to nearest even: no fp32 copy of the tensors.
void forward_bf16(const std::uint16_t* h, int64_t rows, int64_t F, std::uint16_t* out, Isa isa = best_isa());
void backward_bf16(const std::uint16_t* h, const std::uint16_t* d_out, int64_t rows, int64_t F, std::uint16_t* d_h,
                   Isa isa = best_isa());

}  // namespace rewardgen::geglu_kernels
