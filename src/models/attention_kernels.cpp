#include "models/attention_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace rewardgen::attention_kernels {

namespace generic {
#include "models/attention_kernels.inc"
}  // namespace generic

// The x86 copies (cpu_kernels_avx2.cpp, cpu_kernels_avx512.cpp), compiled with their flags.
#define RG_DECLARE_KERNELS(isa)                                                                                   \
  namespace isa {                                                                                                 \
  void forward(const HeadShape&, ConstRows, ConstRows, ConstRows, int64_t, int64_t, Rows, float*, Workspace&);    \
  void backward(const HeadShape&, ConstRows, ConstRows, ConstRows, ConstRows, ConstRows, const float*, Rows, Rows, \
                Rows, Workspace&);                                                                                \
  }
#if defined(REWARDGEN_KERNELS_X86)
RG_DECLARE_KERNELS(avx2)
RG_DECLARE_KERNELS(avx512)
#endif
#undef RG_DECLARE_KERNELS

void forward(const HeadShape& shape, ConstRows q, ConstRows k, ConstRows v, int64_t row_begin, int64_t row_end,
             Rows out, float* lse, Workspace& workspace, Isa isa) {
  switch (isa) {
#if defined(REWARDGEN_KERNELS_X86)
    case Isa::avx512: return avx512::forward(shape, q, k, v, row_begin, row_end, out, lse, workspace);
    case Isa::avx2: return avx2::forward(shape, q, k, v, row_begin, row_end, out, lse, workspace);
#endif
    default: return generic::forward(shape, q, k, v, row_begin, row_end, out, lse, workspace);
  }
}

void backward(const HeadShape& shape, ConstRows q, ConstRows k, ConstRows v, ConstRows out, ConstRows d_out,
              const float* lse, Rows dq, Rows dk, Rows dv, Workspace& workspace, Isa isa) {
  switch (isa) {
#if defined(REWARDGEN_KERNELS_X86)
    case Isa::avx512: return avx512::backward(shape, q, k, v, out, d_out, lse, dq, dk, dv, workspace);
    case Isa::avx2: return avx2::backward(shape, q, k, v, out, d_out, lse, dq, dk, dv, workspace);
#endif
    default: return generic::backward(shape, q, k, v, out, d_out, lse, dq, dk, dv, workspace);
  }
}

}  // namespace rewardgen::attention_kernels
