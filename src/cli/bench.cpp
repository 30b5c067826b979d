// rewardgen bench gemm: the machine's fp32 GEMM GFLOP/s on 1 and N threads, the peak that MFU
// figures of later benchmarks are divided by.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "eval/gemm_peak.h"

namespace rewardgen::cli {

void add_bench_command(CLI::App& app, Context& context, Commands& commands) {
  auto* bench = app.add_subcommand("bench", "Speed figures, measured as ratios in one run");
  bench->require_subcommand(1);

  struct GemmArgs {
    int64_t n = 1024;
    double seconds = 2.0;
    bool json = false;
  };
  auto args = std::make_shared<GemmArgs>();
  auto* gemm = bench->add_subcommand("gemm", "fp32 GEMM GFLOP/s on 1 thread and on --threads threads");
  gemm->add_option("--size", args->n, "matrix size n of C[n,n] = A[n,n] B[n,n]")->default_val(1024)->check(CLI::Range(16, 16384));
  gemm->add_option("--seconds", args->seconds, "time spent per thread count")->default_val(2.0)->check(CLI::Range(0.1, 600.0));
  gemm->add_flag("--json", args->json, "print JSON");
  commands.push_back({gemm, [args, &context] {
                        std::vector<GemmMeasurement> results{measure_gemm(1, args->n, args->seconds)};
                        if (context.threads > 1) results.push_back(measure_gemm(context.threads, args->n, args->seconds));
                        if (args->json) {
                          nlohmann::ordered_json out = nlohmann::ordered_json::array();
                          for (const auto& m : results)
                            out.push_back({{"threads", m.threads}, {"n", m.n}, {"repeats", m.repeats},
                                           {"best_gflops", m.best_gflops}, {"median_gflops", m.median_gflops}});
                          std::printf("%s\n", out.dump(2).c_str());
                          return;
                        }
                        std::printf("fp32 GEMM %lld x %lld (at::mm)\n", static_cast<long long>(args->n),
                                    static_cast<long long>(args->n));
                        for (const auto& m : results)
                          std::printf("  threads %2d: best %8.2f GFLOP/s, median %8.2f GFLOP/s (%d repeats)\n",
                                      m.threads, m.best_gflops, m.median_gflops, m.repeats);
                        if (results.size() == 2)
                          std::printf("  scaling %d threads / 1 thread: %.2fx\n", results[1].threads,
                                      results[1].best_gflops / results[0].best_gflops);
                      }});
}

}  // namespace rewardgen::cli
