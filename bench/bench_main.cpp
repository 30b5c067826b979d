// rewardgen_bench: Google Benchmark figures for the foundation (GEMM peak, safetensors IO) and the
// fused attention against the unfused one. Run: build/bench/rewardgen_bench [--benchmark_filter=attention]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/autograd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <tuple>
#include <vector>

#include "core/allocator.h"
#include "core/blas.h"
#include "core/libstdcxx.h"
#include "core/log.h"
#include "core/threads.h"
#include "io/safetensors.h"
#include "models/attention.h"
#include "models/attention_kernels.h"
#include "models/onednn.h"

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

// The timed loop of the attention and GEGLU benchmarks: `run` alone without gradients, or with the
// gradients of `inputs` (returned, not accumulated into .grad across iterations).
template <class Run>
void time_passes(benchmark::State& state, const Run& run, bool backward, const std::vector<at::Tensor>& inputs) {
  for (auto _ : state) {
    if (backward) {
      const at::Tensor out = run();
      benchmark::DoNotOptimize(torch::autograd::grad({out}, inputs, {at::ones_like(out)})[0].data_ptr());
    } else {
      at::NoGradGuard no_grad;
      benchmark::DoNotOptimize(run().data_ptr());
    }
  }
}

// One multi-head attention on all cores: multi_head_attention (the fused kernels of
// models/attention_kernels.h where it takes them, see attention.cpp) or the unfused one (bmm),
// forward alone (no gradient) or forward + backward, on fp32 or bf16 tensors.
// Args: fused, backward, bf16, B, L, S, heads, d.
void attention(benchmark::State& state) {
  const bool fused = state.range(0) != 0, backward = state.range(1) != 0;
  const at::ScalarType dtype = state.range(2) != 0 ? at::kBFloat16 : at::kFloat;
  const int64_t B = state.range(3), L = state.range(4), S = state.range(5), heads = state.range(6), d = state.range(7);
  at::set_num_threads(rewardgen::hardware_cores());
  const auto input = [&](int64_t n) { return at::randn({B, n, heads * d}).to(dtype).requires_grad_(backward); };
  const at::Tensor q = input(L), k = input(S), v = input(S);
  const auto run = [&] {
    return fused ? rewardgen::multi_head_attention(q, k, v, heads) : rewardgen::unfused_multi_head_attention(q, k, v, heads);
  };
  time_passes(state, run, backward, {q, k, v});
  state.SetLabel(fused ? std::string("fused kernels where taken: ") + rewardgen::cpu_kernels::instruction_set()
                       : std::string("bmm"));
}

void register_attention_benchmarks() {
  struct Shape {
    const char* name;
    int64_t B, L, S, heads, d;
  };
  // The world teacher's three shapes at batch 32 (bench/configs/unet_world_teacher.json) and SD1.5's
  // self-attention at 512² (64×64 latents, head width 40) and at 16×16 (width 160), batch 2.
  for (const Shape& s : {Shape{"world_16x16_self", 32, 256, 256, 4, 8}, Shape{"world_8x8_self", 32, 64, 64, 4, 16},
                         Shape{"world_16x16_cross", 32, 256, 16, 4, 8}, Shape{"sd15_64x64_self", 2, 4096, 4096, 8, 40},
                         Shape{"sd15_16x16_self", 2, 256, 256, 8, 160}})
    for (int bf16 : {0, 1})
      for (int backward : {0, 1})
        for (int fused : {0, 1})
          benchmark::RegisterBenchmark(("attention/" + std::string(s.name) + (bf16 ? "/bf16" : "/fp32") +
                                        (backward ? "/fwd+bwd/" : "/fwd/") + (fused ? "fused" : "unfused"))
                                           .c_str(),
                                       attention)
              ->Args({fused, backward, bf16, s.B, s.L, s.S, s.heads, s.d})
              ->Unit(benchmark::kMillisecond);
}

// The feed-forward's GEGLU on [B, L, 2F]: geglu (the fused kernels of models/geglu_kernels.h) or
// unfused_geglu (chunk, gelu, mul), forward alone or forward + backward, fp32 or bf16.
// Args: fused, backward, bf16, B, L, F.
void geglu(benchmark::State& state) {
  const bool fused = state.range(0) != 0, backward = state.range(1) != 0;
  const at::ScalarType dtype = state.range(2) != 0 ? at::kBFloat16 : at::kFloat;
  at::set_num_threads(rewardgen::hardware_cores());
  const at::Tensor x = at::randn({state.range(3), state.range(4), 2 * state.range(5)}).to(dtype).requires_grad_(backward);
  const auto run = [&] { return fused ? rewardgen::geglu(x) : rewardgen::unfused_geglu(x); };
  time_passes(state, run, backward, {x});
  state.SetLabel(fused ? std::string("fused kernels: ") + rewardgen::cpu_kernels::instruction_set() : "chunk, gelu, mul");
}

void register_geglu_benchmarks() {
  // The world teacher's 16×16 feed-forward at batch 32 (F = 4·32) and SD1.5's at 64×64, batch 2 (F = 4·320).
  for (const auto& [name, B, L, F] : {std::tuple<const char*, int64_t, int64_t, int64_t>{"world_16x16", 32, 256, 128},
                                      {"sd15_64x64", 2, 4096, 1280}})
    for (int bf16 : {0, 1})
      for (int backward : {0, 1})
        for (int fused : {0, 1})
          benchmark::RegisterBenchmark(("geglu/" + std::string(name) + (bf16 ? "/bf16" : "/fp32") +
                                        (backward ? "/fwd+bwd/" : "/fwd/") + (fused ? "fused" : "unfused"))
                                           .c_str(),
                                       geglu)
              ->Args({fused, backward, bf16, B, L, F})
              ->Unit(benchmark::kMillisecond);
}

// One 3×3 convolution (stride 1, padding 1, with bias): rewardgen::convolution (oneDNN's Winograd
// kernel where it runs, models/onednn.h) or at::conv2d (ATen's call of oneDNN's direct
// kernel), forward alone or forward + backward (input, weight and bias gradients), fp32.
// Args: winograd, backward, N, C, H (= W), K.
void conv3x3(benchmark::State& state) {
  const bool winograd = state.range(0) != 0, backward = state.range(1) != 0;
  const int64_t N = state.range(2), C = state.range(3), H = state.range(4), K = state.range(5);
  at::set_num_threads(rewardgen::hardware_cores());
  const at::Tensor x = at::randn({N, C, H, H}).requires_grad_(backward);
  const at::Tensor w = (at::randn({K, C, 3, 3}) / std::sqrt(9.0 * C)).requires_grad_(backward);
  const at::Tensor b = at::randn({K}).requires_grad_(backward);
  if (winograd && !rewardgen::winograd_runs(x, w, 1, 1)) {
    state.SkipWithError("convolution() takes ATen's kernel here (a build without oneDNN's headers, a CPU without "
                        "AVX-512, or fewer than 32 tiles of 4x4)");
    return;
  }
  const auto run = [&] { return winograd ? rewardgen::convolution(x, w, b, 1, 1) : at::conv2d(x, w, b, {1, 1}, {1, 1}); };
  time_passes(state, run, backward, {x, w, b});
  state.SetLabel(winograd ? "oneDNN Winograd" : "ATen (oneDNN direct)");
}

void register_conv3x3_benchmarks() {
  // The world teacher's convolutions at batch 32 (16×16 at 32 and 96 → 32 channels, 8×8 at 64) and
  // SD1.5's at 512², batch 1 (64×64 at 320, 32×32 at 640) and at 16×16, 1280 channels, batch 2 (the
  // fewest tiles Winograd takes; at batch 1 convolution() gives 16×16 and 8×8 to ATen).
  for (const auto& [name, N, C, H, K] :
       {std::tuple<const char*, int64_t, int64_t, int64_t, int64_t>{"world_16x16_32", 32, 32, 16, 32},
        {"world_16x16_96to32", 32, 96, 16, 32}, {"world_8x8_64", 32, 64, 8, 64}, {"sd15_64x64_320", 1, 320, 64, 320},
        {"sd15_32x32_640", 1, 640, 32, 640}, {"sd15_16x16_1280_batch2", 2, 1280, 16, 1280}})
    for (int backward : {0, 1})
      for (int winograd : {0, 1})
        benchmark::RegisterBenchmark(("conv3x3/" + std::string(name) + (backward ? "/fwd+bwd/" : "/fwd/") +
                                      (winograd ? "winograd" : "aten"))
                                         .c_str(),
                                     conv3x3)
            ->Args({winograd, backward, N, C, H, K})
            ->Unit(benchmark::kMillisecond);
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
  register_attention_benchmarks();
  register_geglu_benchmarks();
  register_conv3x3_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
