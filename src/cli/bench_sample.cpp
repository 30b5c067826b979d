// rewardgen bench sample: images/s of several generators in one run, each at its own recipe (or the
// flags given for it), and each one's speed as a ratio to the first.
#include <cstdio>

#include "cli/commands.h"
#include "cli/validators.h"
#include "core/device.h"
#include "core/error.h"
#include "eval/sample_bench.h"
#include "models/precision.h"
#include "sampling/pipeline.h"

namespace rewardgen::cli {

void add_sample_bench_command(CLI::App& bench, Context& context, Commands& commands) {
  struct Args {
    std::vector<std::string> models, labels;
    std::vector<int64_t> steps;
    std::vector<double> cfg;
    int64_t images = 64, batch = 32;
    int repeats = 3;
    std::string device = "cpu", precision = "fp32";
  };
  auto a = std::make_shared<Args>();
  auto* sub = bench.add_subcommand("sample", "Sampling images/s of several models in one run, as ratios to the first");
  sub->add_option("--model", a->models, "pipeline folder (repeatable; sampled with its recipe, else DDIM)")->required();
  sub->add_option("--label", a->labels, "a row label per --model, in order");
  sub->add_option("--steps", a->steps, "per --model in order: override the steps (0: the recipe's)")
      ->check(CLI::Range(int64_t{0}, int64_t{10000}));
  sub->add_option("--cfg", a->cfg, "per --model in order: override the guidance scale (-1: the recipe's)")
      ->check(finite_range(-1.0, 1000.0));
  sub->add_option("--images", a->images, "images per repetition")->check(CLI::Range(int64_t{1}, int64_t{100000}))->capture_default_str();
  sub->add_option("--batch", a->batch, "images per sampler call")->check(CLI::Range(int64_t{1}, int64_t{4096}))->capture_default_str();
  sub->add_option("--repeats", a->repeats, "interleaved timed repetitions (the best is kept)")->check(CLI::Range(1, 100))->capture_default_str();
  sub->add_option("--device", a->device, "cpu, cuda or cuda:N")->capture_default_str();
  sub->add_option("--precision", a->precision, "fp32 | bf16 | auto (bf16 on a CPU with AMX or AVX512-BF16)")
      ->capture_default_str()->check(CLI::IsMember({"fp32", "bf16", "auto"}));
  commands.push_back({sub, [a, &context] {
                        const size_t n = a->models.size();
                        if ((!a->labels.empty() && a->labels.size() != n) || (!a->steps.empty() && a->steps.size() != n) ||
                            (!a->cfg.empty() && a->cfg.size() != n))
                          throw Error("--label, --steps and --cfg, when given, need one value per --model");
                        LoadOptions load;
                        load.device = parse_device(a->device);
                        load.dtype = dtype_of(parse_precision(a->precision, load.device));
                        std::vector<TextToImage> models;
                        std::vector<SampleBenchEntry> entries;
                        models.reserve(n);
                        for (size_t i = 0; i < n; ++i) {
                          const Pipeline p = load_pipeline(a->models[i], load, context.log);
                          models.emplace_back(p, ClipTokenizer::from_directory(p.tokenizer_dir));
                          SamplerOptions o = sampler_options(p.scheduler.recipe);
                          if (!a->steps.empty() && a->steps[i] > 0) {
                            o.steps = a->steps[i];
                            o.timesteps.clear();
                          }
                          if (!a->cfg.empty() && a->cfg[i] >= 0) o.guidance_scale = a->cfg[i];
                          validate(o);
                          entries.push_back({a->labels.empty() ? a->models[i] : a->labels[i], nullptr, o});
                        }
                        for (size_t i = 0; i < n; ++i) entries[i].model = &models[i];
                        const std::vector<SampleBenchResult> r = bench_sampling(entries, a->images, a->batch, a->repeats);
                        std::printf("| model | NFE/image | images/s | × the first |\n|---|---|---|---|\n");
                        for (const SampleBenchResult& x : r)
                          std::printf("| %s | %.0f | %.2f | %.2f |\n", x.label.c_str(), x.nfe_per_image, x.images_per_second,
                                      x.images_per_second / r[0].images_per_second);
                        std::printf("(%lld images per repetition, batch %lld, best of %d interleaved repetitions, %s, %s, %d threads)\n",
                                    static_cast<long long>(a->images), static_cast<long long>(a->batch), a->repeats,
                                    load.device.str().c_str(), c10::toString(load.dtype), context.threads);
                      }});
}

}  // namespace rewardgen::cli
