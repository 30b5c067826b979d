// rewardgen bench: with no sub-command every figure in one run (eval/bench_suite.h: bench.json and
// bench.md in --out); bench gemm: the machine's fp32 GEMM GFLOP/s on 1 and N threads, the peak that
// MFU figures of later benchmarks are divided by.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/validators.h"
#include "core/blas.h"
#include "core/device.h"
#include "core/error.h"
#include "core/version.h"
#include "eval/bench_suite.h"
#include "eval/gemm_peak.h"
#include "io/atomic_file.h"
#include "io/json_config.h"
#include "io/output_paths.h"
#include "eval/unet_bench.h"
#include "methods/method.h"
#include "methods/train_job.h"
#include "models/onednn.h"

namespace rewardgen::cli {

void add_unet_bench_command(CLI::App& bench, Context& context, Commands& commands);
void add_reward_bench_command(CLI::App& bench, Context& context, Commands& commands);
void add_sample_bench_command(CLI::App& bench, Context& context, Commands& commands);
void add_speed_bench_command(CLI::App& bench, Context& context, Commands& commands);

void add_bench_command(CLI::App& app, Context& context, Commands& commands) {
  auto* bench = app.add_subcommand("bench", "Speed figures, measured as ratios in one run (no sub-command: all of them, into --out)");
  bench->require_subcommand(0, 1);
  struct SuiteArgs {
    BenchSuiteOptions suite;
    int64_t method_steps = 3;
    std::string out, configs = kSourceBenchConfigsDir;
    std::vector<std::string> extra_generators;
    bool no_methods = false;
  };
  auto suite = std::make_shared<SuiteArgs>();
  bench->add_option("--out", suite->out, "(all) the folder for bench.json and bench.md");
  bench->add_option("--configs", suite->configs, "(all) folder of the UNet configs")->capture_default_str();
  bench->add_option("--generator", suite->extra_generators,
                    "(all) also time this generator folder (repeatable; the shipped ones under models/world are always timed)");
  bench->add_option("--methods", suite->suite.methods, "(all) methods to time one training step of (default: every method)");
  bench->add_flag("--no-methods", suite->no_methods, "(all) skip the method steps");
  bench->add_option("--method-steps", suite->method_steps, "(all) training steps per method (the first is a warm-up)")
      ->capture_default_str()->check(CLI::Range(int64_t{2}, int64_t{1000}));
  bench->add_option("--images", suite->suite.sample_images, "(all) images per sampling repetition")
      ->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{100000}));
  bench->add_option("--repeats", suite->suite.repeats, "(all) timed repetitions per UNet / sampling figure")
      ->capture_default_str()->check(CLI::Range(1, 100));

  struct GemmArgs {
    int64_t n = 1024;
    double seconds = 2.0;
    bool json = false;
  };
  auto args = std::make_shared<GemmArgs>();
  auto* gemm = bench->add_subcommand("gemm", "fp32 GEMM GFLOP/s on 1 thread and on --threads threads");
  gemm->add_option("--size", args->n, "matrix size n of C[n,n] = A[n,n] B[n,n]")->default_val(1024)->check(CLI::Range(16, 16384));
  gemm->add_option("--seconds", args->seconds, "time spent per thread count")->default_val(2.0)->check(finite_range(0.1, 600.0));
  gemm->add_flag("--json", args->json, "print JSON");
  add_unet_bench_command(*bench, context, commands);
  add_reward_bench_command(*bench, context, commands);
  add_sample_bench_command(*bench, context, commands);
  add_speed_bench_command(*bench, context, commands);
  commands.push_back({gemm, [args, &context] {
                        std::vector<GemmMeasurement> results{measure_gemm(1, args->n, args->seconds)};
                        if (context.threads > 1) results.push_back(measure_gemm(context.threads, args->n, args->seconds));
                        if (args->json) {
                          nlohmann::ordered_json out = nlohmann::ordered_json::array();
                          for (const auto& m : results)
                            out.push_back({{"threads", m.threads}, {"n", m.n}, {"repeats", m.repeats},
                                           {"best_gflops", m.best_gflops}, {"median_gflops", m.median_gflops},
                                           {"blas", blas_info().library}, {"blas_core", blas_info().core}});
                          std::printf("%s\n", out.dump(2).c_str());
                          return;
                        }
                        std::printf("fp32 GEMM %lld x %lld (at::mm), BLAS: %s\n", static_cast<long long>(args->n),
                                    static_cast<long long>(args->n), to_string(blas_info()).c_str());
                        for (const auto& m : results)
                          std::printf("  threads %2d: best %8.2f GFLOP/s, median %8.2f GFLOP/s (%d repeats)\n",
                                      m.threads, m.best_gflops, m.median_gflops, m.repeats);
                        if (results.size() == 2)
                          std::printf("  scaling %d threads / 1 thread: %.2fx\n", results[1].threads,
                                      results[1].best_gflops / results[0].best_gflops);
                      }});
  // Last, so that a parsed sub-command (which leaves `bench` parsed too) is found first.
  commands.push_back({bench, [suite, &context] {
                        SuiteArgs& a = *suite;
                        if (a.out.empty()) throw Error("bench: with no sub-command every benchmark runs; name its output folder with --out");
                        a.suite.unets = bench_suite_unet_rows(a.configs);
                        a.suite.generators = shipped_generators();
                        for (const std::string& g : a.extra_generators) a.suite.generators.push_back(g);
                        if (a.no_methods) a.suite.methods.clear();
                        else if (a.suite.methods.empty())
                          for (const MethodEntry& m : method_registry()) a.suite.methods.push_back(m.name);
                        for (const std::string& m : a.suite.methods) find_method(m);  // a bad name before any timing
                        refuse_output_over_inputs(a.out, a.suite.generators);
                        prepare_output_folder(a.out);  // an unwritable --out before the minutes of timing, not after
                        const std::string work_dir = a.out + "/method_runs";
                        const int64_t steps = a.method_steps;
                        a.suite.time_method = [work_dir, steps](const std::string& method) {
                          const Logger quiet(LogLevel::warn);  // the runs' own info lines are noise here
                          return time_method_steps(method, steps, work_dir, "", quiet);
                        };
                        const Json result = run_bench_suite(a.suite, context.threads, context.log);
                        std::error_code ignored;
                        std::filesystem::remove(work_dir, ignored);  // empty by now: each timing removes its run
                        const std::string markdown = bench_suite_markdown(result);
                        save_json_file(a.out + "/bench.json", result);
                        write_file_atomic(a.out + "/bench.md", markdown);
                        std::printf("%s\nwrote %s/bench.json and %s/bench.md\n", markdown.c_str(), a.out.c_str(), a.out.c_str());
                      }});
}

namespace {

struct UnetArgs {
  std::string config, precision = "fp32", device = "cpu";
  UnetBenchOptions bench;
  int profile_rows = 25;
};

// Markdown tables of one profiled pass: the categories, then the `rows` largest operators.
void print_profile(const char* pass, double seconds, const std::vector<OpTime>& categories,
                   const std::vector<OpTime>& ops, int rows) {
  std::printf("\n%s, profiled: %.3f s per pass (self time per operator; profiling adds its own overhead)\n\n", pass, seconds);
  std::printf("| category | self s | share | calls |\n|---|---|---|---|\n");
  for (const OpTime& c : categories)
    std::printf("| %s | %.4f | %.1f %% | %lld |\n", c.name.c_str(), c.self_s, 100 * c.self_s / seconds,
                static_cast<long long>(c.calls));
  std::printf("\n| operator | category | self s | share | calls |\n|---|---|---|---|---|\n");
  for (size_t i = 0; i < ops.size() && static_cast<int>(i) < rows; ++i)
    std::printf("| %s | %s | %.4f | %.1f %% | %lld |\n", ops[i].name.c_str(), op_category(ops[i].name).c_str(),
                ops[i].self_s, 100 * ops[i].self_s / seconds, static_cast<long long>(ops[i].calls));
}

void run_unet_bench(const UnetArgs& a, const Context& context) {
  UNet2DConditionConfig config;
  config.cross_attention_dim = {768};  // the SD 1.5 layout (diffusers' default class config has 1280)
  if (!a.config.empty()) config = load_unet_config(a.config, context.log);
  UnetBenchOptions options = a.bench;
  options.device = parse_device(a.device);
  options.precision = parse_precision(a.precision, options.device);
  // MFU against the CPU's own GEMM peak; on CUDA the times and FLOP/s alone.
  const bool on_cpu = options.device.is_cpu();
  const GemmMeasurement peak = on_cpu ? measure_gemm(context.threads, 1024, 2.0) : GemmMeasurement{};
  const auto of_peak = [&](double gflops) { return on_cpu ? str(" (", static_cast<int>(100 * gflops / peak.best_gflops + 0.5), "% of GEMM peak)") : std::string(); };
  const UnetBenchResult r = bench_unet(config, options);
  std::printf("%s, %s, batch %lld, latents %lldx%lld, %lld text tokens, %s, %d threads, %s\n",
              a.config.empty() ? "SD1.5 UNet layout" : a.config.c_str(),
              a.bench.first_down_block_only ? "down_blocks.0 only" : "whole UNet", static_cast<long long>(a.bench.batch),
              static_cast<long long>(a.bench.latent_size), static_cast<long long>(a.bench.latent_size),
              static_cast<long long>(a.bench.text_tokens), options.device.str().c_str(), context.threads,
              options.precision == Precision::bf16 ? "bf16 (forward: bf16 weights; training: fp32 weights, autocast)" : "fp32");
  std::printf("  parameters           %lld\n", static_cast<long long>(r.parameters));
  std::printf("  forward              %.2f GFLOP, %.4f s (best %.4f s), %.1f GFLOP/s%s\n", r.forward_gflop, r.forward_s,
              r.forward_best_s, r.forward_gflops_per_s(), of_peak(r.forward_gflops_per_s()).c_str());
  if (!a.bench.forward_only && options.lora_rank > 0)
    // No FLOP/s: a frozen base skips its weight gradients, so 3x the forward would overcount.
    std::printf("  LoRA training step   rank %lld, %lld trained parameters, %.4f s (best %.4f s), %.2f steps/s\n",
                static_cast<long long>(options.lora_rank), static_cast<long long>(r.lora_parameters), r.train_step_s,
                r.train_step_best_s, 1.0 / r.train_step_s);
  else if (!a.bench.forward_only)
    std::printf("  forward + backward   %.2f GFLOP, %.4f s (best %.4f s), %.1f GFLOP/s%s\n", 3 * r.forward_gflop, r.train_step_s,
                r.train_step_best_s, r.train_gflops_per_s(), of_peak(r.train_gflops_per_s()).c_str());
  if (on_cpu) std::printf("  GEMM peak            %.1f GFLOP/s (fp32 1024^3, %d threads, same run)\n", peak.best_gflops, peak.threads);
  if (on_cpu) std::printf("  3x3 convolutions     %s\n", convolution_kernels().c_str());
  if (options.profile) {
    print_profile("forward", r.profiled_forward_s, r.forward_categories, r.forward_ops, a.profile_rows);
    if (!a.bench.forward_only)
      print_profile("forward + backward", r.profiled_train_step_s, r.train_categories, r.train_ops, a.profile_rows);
  }
}

}  // namespace

void add_unet_bench_command(CLI::App& bench, Context& context, Commands& commands) {
  auto a = std::make_shared<UnetArgs>();
  auto* unet = bench.add_subcommand("unet", "UNet training-step FLOP/s and MFU against the GEMM peak measured in the same run");
  unet->add_option("--config", a->config, "a UNet config.json (default: the SD1.5 layout); e.g. bench/configs/unet_sd15_fifth_width.json");
  unet->add_option("--batch", a->bench.batch, "batch size")->default_val(2)->check(CLI::Range(int64_t{1}, int64_t{4096}));
  unet->add_option("--size", a->bench.latent_size, "latent height = width")->default_val(32)->check(CLI::Range(int64_t{1}, int64_t{1024}));
  unet->add_option("--tokens", a->bench.text_tokens, "text tokens of the conditioning")->default_val(77)->check(CLI::Range(int64_t{1}, int64_t{4096}));
  unet->add_option("--repeats", a->bench.repeats, "timed repetitions after a warm-up")->default_val(3)->check(CLI::Range(1, 1000));
  unet->add_flag("--first-down-block", a->bench.first_down_block_only, "time down_blocks.0 alone");
  unet->add_flag("--forward-only", a->bench.forward_only, "time the forward pass only (no training step)");
  unet->add_option("--precision", a->precision, "fp32 | bf16 | auto (bf16 where the CPU has AMX or AVX512-BF16)")
      ->capture_default_str()->check(CLI::IsMember({"fp32", "bf16", "auto"}));
  unet->add_option("--device", a->device, "cpu, cuda or cuda:N (CUDA: times only, no MFU)")->capture_default_str();
  unet->add_option("--lora-rank", a->bench.lora_rank, "train LoRA adapters of this rank (alpha = rank) on the attention projections of a frozen base; 0: full training")
      ->default_val(0)->check(CLI::Range(int64_t{0}, int64_t{4096}));
  unet->add_flag("--profile", a->bench.profile,
                 "then profile --repeats more passes per operator (ATen's RecordFunction) and print markdown tables");
  unet->add_option("--profile-rows", a->profile_rows, "operators listed per profiled pass")->default_val(25)->check(CLI::Range(1, 1000));
  commands.push_back({unet, [a, &context] { run_unet_bench(*a, context); }});
}

}  // namespace rewardgen::cli
