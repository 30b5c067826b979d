#pragma once
// A batch's per-sample values [B] laid out to scale or shift the batch itself [B, ...].
#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

namespace rewardgen {

// `values` [B] as a [B, 1, ..., 1] factor in `like`'s dtype and device (one dimension at least).
inline at::Tensor per_sample_factor(const at::Tensor& values, const at::Tensor& like) {
  std::vector<int64_t> shape(static_cast<size_t>(std::max<int64_t>(like.dim(), 1)), 1);
  shape[0] = values.numel();
  return values.to(like.options()).view(shape);
}

}  // namespace rewardgen
