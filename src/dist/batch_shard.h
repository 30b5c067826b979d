#pragma once
// This rank's part of a data-parallel step's batch (docs/distributed.md). Every rank draws the
// randomness of the whole global batch (prompts, noise, η, timesteps) from the run's generator,
// which is the same on every rank, and keeps its own rows. So the ranks' generators never diverge (one
// checkpoint resumes them all), and N ranks × B samples see exactly the data of one process ×
// N·B: averaging their gradients gives that process's gradient, up to float rounding.
// One process is the shard {0, 1}: its draws and slices are the identity.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"

namespace rewardgen {

struct BatchShard {
  int64_t index = 0;  // this rank
  int64_t count = 1;  // the ranks

  bool whole() const { return count == 1; }
  // The global batch of `local` samples per rank.
  int64_t global(int64_t local) const { return local * count; }
  // This rank's rows of a tensor whose dimension `dim` is the global batch.
  at::Tensor slice(const at::Tensor& global_batch, int64_t dim = 0) const {
    if (whole()) return global_batch;
    const int64_t size = global_batch.size(dim);
    if (size % count != 0)
      throw Error(str("a global batch of ", size, " does not split over ", count, " ranks"));
    const int64_t local = size / count;
    return global_batch.narrow(dim, index * local, local);
  }
  // N(0, I) for the global batch — `local_sizes` with dimension 0 times `count`, drawn as
  // randn_from draws — and this rank's rows of it.
  at::Tensor randn(at::Generator& generator, at::IntArrayRef local_sizes, const at::TensorOptions& options) const {
    std::vector<int64_t> sizes = local_sizes.vec();
    sizes.at(0) = global(sizes.at(0));
    return slice(randn_from(generator, sizes, options));
  }
  template <class T>
  std::vector<T> slice(const std::vector<T>& global_batch) const {
    if (whole()) return global_batch;
    if (global_batch.size() % static_cast<size_t>(count) != 0)
      throw Error(str("a global batch of ", global_batch.size(), " does not split over ", count, " ranks"));
    const size_t local = global_batch.size() / static_cast<size_t>(count), first = static_cast<size_t>(index) * local;
    return std::vector<T>(global_batch.begin() + static_cast<std::ptrdiff_t>(first),
                          global_batch.begin() + static_cast<std::ptrdiff_t>(first + local));
  }
};

}  // namespace rewardgen
