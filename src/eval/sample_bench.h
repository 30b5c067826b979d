#pragma once
// Sampling throughput of several generators measured in one run, so that their ratios are fair on
// a noisy machine: images/s of each at its own sampling options, the same prompts, batch and
// thread count, interleaved repetitions (A, B, A, B, ...) and the best of them kept.
#include <string>
#include <vector>

#include "sampling/text_to_image.h"

namespace rewardgen {

struct SampleBenchEntry {
  std::string label;
  const TextToImage* model = nullptr;
  SamplerOptions sampler;
};

struct SampleBenchResult {
  std::string label;
  double images_per_second = 0;  // best repetition
  double nfe_per_image = 0;
};

// `images` per repetition (in batches of `batch`), `repeats` interleaved repetitions after a warm-up.
std::vector<SampleBenchResult> bench_sampling(const std::vector<SampleBenchEntry>& entries, int64_t images, int64_t batch,
                                              int repeats);

}  // namespace rewardgen
