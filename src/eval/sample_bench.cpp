#include "eval/sample_bench.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "world/prompts.h"

namespace rewardgen {

std::vector<SampleBenchResult> bench_sampling(const std::vector<SampleBenchEntry>& entries, int64_t images, int64_t batch,
                                              int repeats) {
  if (entries.empty() || images < 1 || batch < 1 || repeats < 1)
    throw Error("bench_sampling needs at least one model, images >= 1, batch >= 1, repeats >= 1");
  at::NoGradGuard no_grad;
  // The held-out world prompts in order, as the evaluation samples them.
  std::vector<std::string> prompts;
  const std::vector<world::EvalPrompt> lines = world::eval_prompts();
  for (int64_t i = 0; i < images; ++i) prompts.push_back(lines[static_cast<size_t>(i) % lines.size()].text);
  auto run = [&](const SampleBenchEntry& e, int64_t* nfe) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t start = 0; start < images; start += batch) {
      const std::vector<std::string> chunk(prompts.begin() + start, prompts.begin() + std::min(images, start + batch));
      at::Generator g = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(start));
      // The images to host memory: on CUDA this waits for the queued kernels, so the time is real.
      e.model->generate(chunk, e.sampler, g, nullptr, nfe).cpu();
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<SampleBenchResult> results;
  for (const SampleBenchEntry& e : entries) {
    int64_t nfe = 0;
    run(e, &nfe);  // warm-up (and the NFE count)
    const int64_t batches = (images + batch - 1) / batch;
    results.push_back({e.label, 0.0, static_cast<double>(nfe) / static_cast<double>(batches)});
  }
  for (int r = 0; r < repeats; ++r)
    for (size_t i = 0; i < entries.size(); ++i)
      results[i].images_per_second = std::max(results[i].images_per_second, static_cast<double>(images) / run(entries[i], nullptr));
  return results;
}

}  // namespace rewardgen
