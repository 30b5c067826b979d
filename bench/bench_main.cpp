// rewardgen_bench: Google Benchmark figures for the foundation (GEMM peak, safetensors IO).
// Later issues add model, sampler and reward benchmarks here. Run: build/bench/rewardgen_bench
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "core/allocator.h"
#include "core/blas.h"
#include "core/libstdcxx.h"
#include "core/log.h"
#include "core/threads.h"
#include "io/safetensors.h"

namespace {

// fp32 GEMM, n×n; counters report GFLOP/s so that runs on different thread counts compare.
void gemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  at::set_num_threads(static_cast<int>(state.range(1)));
  const at::Tensor a = at::randn({n, n}), b = at::randn({n, n});
  at::Tensor c = at::empty({n, n});
  for (auto _ : state) {
    at::mm_out(c, a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

// Save + mmap-open + touch a 64 MiB file of F32 tensors: the cost of a checkpoint round trip.
void safetensors_round_trip(benchmark::State& state) {
  const std::string path = (std::filesystem::temp_directory_path() / "rewardgen_bench.safetensors").string();
  rewardgen::TensorMap tensors;
  for (int i = 0; i < 16; ++i) tensors["layer." + std::to_string(i)] = at::randn({1024, 1024});
  for (auto _ : state) {
    rewardgen::save_safetensors(path, tensors);
    const auto file = rewardgen::SafetensorsFile::open(path);
    double sum = 0;
    for (const auto& t : file.tensors()) sum += file.tensor(t.name).sum().item<double>();
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(state.iterations() * 16 * 1024 * 1024 * 4);
  std::filesystem::remove(path);
}

}  // namespace

int main(int argc, char** argv) {
  rewardgen::preload_libstdcxx_if_shadowed(argv);  // PyTorch's LibTorch shadows std::filesystem (core/libstdcxx.h)
  rewardgen::choose_blas_core(argv);  // a faster OpenBLAS kernel where Debian's picks a generic one
  rewardgen::tune_allocator();  // large temporaries from the heap, not mmap (core/allocator.h)
  rewardgen::report_blas_core_choice(rewardgen::Logger());
  rewardgen::report_libstdcxx_preload(rewardgen::Logger());
  std::fprintf(stderr, "BLAS: %s\n", rewardgen::to_string(rewardgen::blas_info()).c_str());
  const int cores = rewardgen::hardware_cores();
  for (int threads : {1, cores}) {
    benchmark::RegisterBenchmark(("gemm_fp32/n=1024/threads=" + std::to_string(threads)).c_str(), gemm)
        ->Args({1024, threads})
        ->Unit(benchmark::kMillisecond);
    if (cores == 1) break;
  }
  benchmark::RegisterBenchmark("safetensors_save_open_read_64MiB", safetensors_round_trip)->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
