#pragma once
// Counting the matrix-multiply FLOPs a forward pass performs (linear layers, convolutions, the two
// attention products), for MFU figures: FLOP/s divided by the measured GEMM peak. Normalisations
// and activations are not counted (the usual MFU convention). A FlopCountScope makes the layers on
// this thread add to a counter while it lives; without one, counting costs a null check.
#include <cstdint>

namespace rewardgen {

struct FlopCounter {
  double flops = 0;  // multiply-adds count as 2
};

class FlopCountScope {
 public:
  explicit FlopCountScope(FlopCounter& counter);
  ~FlopCountScope();
  FlopCountScope(const FlopCountScope&) = delete;
  FlopCountScope& operator=(const FlopCountScope&) = delete;

 private:
  FlopCounter* previous_;
};

// Called by the layers: adds to the innermost active counter of this thread, if any.
void count_flops(double flops);

}  // namespace rewardgen
