#include "models/geglu_kernels.h"

#include <cstring>

namespace rewardgen::geglu_kernels {

namespace generic {
#include "models/geglu_kernels.inc"
}  // namespace generic

// The x86 copies (cpu_kernels_avx2.cpp, cpu_kernels_avx512.cpp), compiled with their flags.
#define RG_DECLARE_KERNELS(isa)                                                                     \
  namespace isa {                                                                                   \
  void forward(const float*, int64_t, int64_t, float*);                                             \
  void backward(const float*, const float*, int64_t, int64_t, float*);                              \
  void forward_bf16(const std::uint16_t*, int64_t, int64_t, std::uint16_t*);                        \
  void backward_bf16(const std::uint16_t*, const std::uint16_t*, int64_t, int64_t, std::uint16_t*); \
  }
#if defined(REWARDGEN_KERNELS_X86)
RG_DECLARE_KERNELS(avx2)
RG_DECLARE_KERNELS(avx512)
#endif
#undef RG_DECLARE_KERNELS

void forward(const float* h, int64_t rows, int64_t F, float* out, Isa isa) {
  switch (isa) {
#if defined(REWARDGEN_KERNELS_X86)
    case Isa::avx512: return avx512::forward(h, rows, F, out);
    case Isa::avx2: return avx2::forward(h, rows, F, out);
#endif
    default: return generic::forward(h, rows, F, out);
  }
}

void backward(const float* h, const float* d_out, int64_t rows, int64_t F, float* d_h, Isa isa) {
  switch (isa) {
#if defined(REWARDGEN_KERNELS_X86)
    case Isa::avx512: return avx512::backward(h, d_out, rows, F, d_h);
    case Isa::avx2: return avx2::backward(h, d_out, rows, F, d_h);
#endif
    default: return generic::backward(h, d_out, rows, F, d_h);
  }
}

void forward_bf16(const std::uint16_t* h, int64_t rows, int64_t F, std::uint16_t* out, Isa isa) {
  switch (isa) {
#if defined(REWARDGEN_KERNELS_X86)
    case Isa::avx512: return avx512::forward_bf16(h, rows, F, out);
    case Isa::avx2: return avx2::forward_bf16(h, rows, F, out);
#endif
    default: return generic::forward_bf16(h, rows, F, out);
  }
}

void backward_bf16(const std::uint16_t* h, const std::uint16_t* d_out, int64_t rows, int64_t F, std::uint16_t* d_h,
                   Isa isa) {
  switch (isa) {
#if defined(REWARDGEN_KERNELS_X86)
    case Isa::avx512: return avx512::backward_bf16(h, d_out, rows, F, d_h);
    case Isa::avx2: return avx2::backward_bf16(h, d_out, rows, F, d_h);
#endif
    default: return generic::backward_bf16(h, d_out, rows, F, d_h);
  }
}

}  // namespace rewardgen::geglu_kernels
