#include "eval/bench_suite.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "core/blas.h"
#include "core/error.h"
#include "core/format.h"
#include "core/log.h"
#include "eval/gemm_peak.h"
#include "eval/reward_bench.h"
#include "eval/sample_bench.h"
#include "eval/unet_bench.h"
#include "models/precision.h"
#include "models/unet_2d_condition.h"
#include "rewards/reward.h"
#include "rewards/world_rewards.h"
#include "sampling/pipeline.h"

namespace rewardgen {

namespace fs = std::filesystem;

namespace {

void validate_options(const BenchSuiteOptions& o) {
  if (o.teacher_steps.empty()) throw Error("bench: at least one teacher step count is needed");
  for (int64_t s : o.teacher_steps)
    if (s < 1 || s > 1000) throw Error(str("bench: a teacher step count must be in 1..1000, got ", s));
  if (!std::isfinite(o.teacher_guidance) || o.teacher_guidance < 0 || o.teacher_guidance > 1000)
    throw Error(str("bench: the teacher's guidance must be finite and in [0, 1000], got ", o.teacher_guidance));
  if (o.sample_images < 1 || o.sample_batch < 1) throw Error("bench: sample images and batch must be >= 1");
  if (o.repeats < 1 || o.repeats > 100) throw Error(str("bench: repeats must be in 1..100, got ", o.repeats));
  if (!std::isfinite(o.gemm_seconds) || o.gemm_seconds < 0.1 || o.gemm_seconds > 600)
    throw Error(str("bench: GEMM seconds must be in [0.1, 600], got ", o.gemm_seconds));
  for (const BenchUnetRow& row : o.unets)
    if (!fs::is_regular_file(row.config_file)) throw Error(str("bench: UNet config '", row.config_file, "' (", row.name, ") does not exist"));
  for (const std::string& g : o.generators)
    if (!fs::exists(fs::path(g) / "model_index.json")) throw Error(str("bench: '", g, "' is not a pipeline folder (no model_index.json)"));
  if (!o.methods.empty() && !o.time_method) throw Error("bench: methods to time but no way to time them");
}

Json gemm_part(int threads, double seconds) {
  const GemmMeasurement m = measure_gemm(threads, 1024, seconds);
  return {{"threads", m.threads}, {"n", m.n}, {"best_gflops", m.best_gflops}, {"median_gflops", m.median_gflops},
          {"blas", blas_info().library}, {"blas_core", blas_info().core}};
}

Json unet_part(const std::vector<BenchUnetRow>& rows, int repeats, double peak_gflops, const Logger& log) {
  Json out = Json::array();
  std::vector<Precision> precisions{Precision::fp32};
  if (parse_precision("auto", at::kCPU) == Precision::bf16) precisions.push_back(Precision::bf16);
  for (const BenchUnetRow& row : rows) {
    const UNet2DConditionConfig config = load_unet_config(row.config_file, log);
    for (Precision precision : precisions) {
      UnetBenchOptions o;
      o.batch = row.batch;
      o.latent_size = row.latent_size;
      o.text_tokens = row.text_tokens;
      o.repeats = repeats;
      o.precision = precision;
      log.info(str("bench: UNet ", row.name, ", ", to_string(precision)));
      const UnetBenchResult r = bench_unet(config, o);
      out.push_back({{"name", row.name}, {"precision", to_string(precision)}, {"batch", row.batch},
                     {"latent_size", row.latent_size}, {"text_tokens", row.text_tokens}, {"parameters", r.parameters},
                     {"forward_gflop", r.forward_gflop}, {"forward_s", r.forward_s}, {"forward_gflops", r.forward_gflops_per_s()},
                     {"forward_mfu", r.forward_gflops_per_s() / peak_gflops}, {"train_step_s", r.train_step_s},
                     {"train_gflops", r.train_gflops_per_s()}, {"train_mfu", r.train_gflops_per_s() / peak_gflops}});
    }
  }
  return out;
}

Json sampling_part(const BenchSuiteOptions& o, const std::string& teacher, const Logger& log) {
  // fp32, as `eval` judges the shipped generators.
  std::vector<std::string> labels;
  std::vector<std::unique_ptr<TextToImage>> models;
  std::vector<SampleBenchEntry> entries;
  auto add = [&](const std::string& label, const std::string& dir, std::optional<SamplerOptions> sampler) {
    const Pipeline p = load_pipeline(dir, LoadOptions{at::kFloat, at::kCPU}, log);
    models.push_back(std::make_unique<TextToImage>(p, ClipTokenizer::from_directory(p.tokenizer_dir)));
    SamplerOptions s = sampler ? *sampler : sampler_options(p.scheduler.recipe);
    validate(s);
    entries.push_back({label, models.back().get(), s});
  };
  for (int64_t steps : o.teacher_steps) {
    SamplerOptions s;
    s.steps = steps;
    s.guidance_scale = o.teacher_guidance;
    add(str("teacher, DDIM ", steps, " + CFG ", o.teacher_guidance), teacher, s);
  }
  for (const std::string& g : o.generators) {
    // Labelled as the user would type it: relative to the working folder when below it.
    const fs::path relative = fs::path(g).lexically_relative(fs::current_path());
    const bool below = !relative.empty() && *relative.begin() != "..";
    add(below ? relative.string() : g, g, std::nullopt);
  }
  log.info(str("bench: sampling ", entries.size(), " models, ", o.sample_images, " images each, best of ", o.repeats));
  const std::vector<SampleBenchResult> results = bench_sampling(entries, o.sample_images, o.sample_batch, o.repeats);
  Json out = Json::array();
  for (size_t i = 0; i < results.size(); ++i) {
    const SamplerOptions& s = entries[i].sampler;
    out.push_back({{"model", results[i].label}, {"sampler", s.sampler}, {"steps", s.steps}, {"guidance_scale", s.guidance_scale},
                   {"nfe_per_image", results[i].nfe_per_image}, {"images_per_second", results[i].images_per_second},
                   {"vs_teacher", results[i].images_per_second / results[0].images_per_second}});
  }
  return out;
}

Json reward_part(const std::vector<std::string>& specs, int repeats, const Logger& log) {
  const RewardRegistry registry = builtin_reward_registry();
  RewardContext context;
  context.log = log;
  Json out = Json::array();
  for (const std::string& spec : specs) {
    const std::unique_ptr<Reward> reward = registry.make(spec, context);
    RewardBenchOptions o;
    o.repeats = repeats;
    o.backward = reward->differentiable();
    o.prompt = "a red circle above a blue square";
    const RewardBenchResult r = bench_reward(*reward, o);
    Json row = {{"reward", spec}, {"batch", r.batch}, {"images_per_second", r.images_per_s()}};
    row["backward_images_per_second"] = o.backward ? Json(r.backward_images_per_s()) : Json(nullptr);
    out.push_back(row);
  }
  return out;
}

Json method_part(const BenchSuiteOptions& o, const Logger& log) {
  Json out = Json::array();
  for (const std::string& name : o.methods) {
    log.info(str("bench: training steps of ", name));
    out.push_back({{"method", name}, {"seconds_per_step", o.time_method(name)}});
  }
  return out;
}

}  // namespace

std::vector<BenchUnetRow> bench_suite_unet_rows(const std::string& dir) {
  return {{"world teacher", dir + "/unet_world_teacher.json", 32, 16, 16}, {"SD1.5 fifth width", dir + "/unet_sd15_fifth_width.json", 2, 32, 77}};
}

std::vector<std::string> shipped_generators() {
  std::vector<std::string> out;
  const std::string world = world_model_dir();
  if (!fs::is_directory(world)) return out;
  for (const fs::directory_entry& entry : fs::directory_iterator(world))
    if (entry.is_directory() && fs::exists(entry.path() / "model_index.json")) out.push_back(entry.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

Json run_bench_suite(const BenchSuiteOptions& o, int threads, const Logger& log) {
  validate_options(o);
  const std::string teacher = o.teacher.empty() ? world_model_dir() : o.teacher;
  if (!fs::exists(fs::path(teacher) / "model_index.json")) throw Error(str("bench: the teacher '", teacher, "' is not a pipeline folder"));
  Json result;
  result["threads"] = threads;
  log.info("bench: fp32 GEMM peak");
  result["gemm"] = gemm_part(threads, o.gemm_seconds);
  const double peak = result["gemm"]["best_gflops"].get<double>();
  result["unet"] = unet_part(o.unets, o.repeats, peak, log);
  result["sampling"] = sampling_part(o, teacher, log);
  result["rewards"] = reward_part(o.rewards, std::max(o.repeats, 3), log);
  result["methods"] = o.methods.empty() ? Json::array() : method_part(o, log);
  return result;
}

std::string bench_suite_markdown(const Json& r) {
  std::string md;
  const Json& g = r.at("gemm");
  md += str("fp32 GEMM peak: ", fixed_digits(g.at("best_gflops").get<double>(), 1), " GFLOP/s (1024³, ", g.at("threads").get<int>(),
            " threads, BLAS ", g.at("blas").get<std::string>(), ", core ", g.at("blas_core").get<std::string>(), "); MFU below is against it.\n\n");
  if (!r.at("unet").empty()) {
    md += "| UNet | precision | batch, latents, tokens | forward s | forward GFLOP/s | forward MFU | train step s | train GFLOP/s | train MFU |\n"
          "|---|---|---|---|---|---|---|---|---|\n";
    for (const Json& u : r.at("unet"))
      md += str("| ", u.at("name").get<std::string>(), " | ", u.at("precision").get<std::string>(), " | ", u.at("batch").get<int64_t>(),
                ", ", u.at("latent_size").get<int64_t>(), "², ", u.at("text_tokens").get<int64_t>(), " | ",
                fixed_digits(u.at("forward_s").get<double>(), 4), " | ", fixed_digits(u.at("forward_gflops").get<double>(), 1), " | ",
                fixed_digits(100 * u.at("forward_mfu").get<double>(), 0), " % | ", fixed_digits(u.at("train_step_s").get<double>(), 4), " | ",
                fixed_digits(u.at("train_gflops").get<double>(), 1), " | ", fixed_digits(100 * u.at("train_mfu").get<double>(), 0), " % |\n");
    md += "\n";
  }
  md += str("| sampling (fp32) | sampler | NFE/image | images/s | × ", r.at("sampling").at(0).at("model").get<std::string>(),
            " |\n|---|---|---|---|---|\n");
  for (const Json& s : r.at("sampling"))
    md += str("| ", s.at("model").get<std::string>(), " | ", s.at("sampler").get<std::string>(), " ", s.at("steps").get<int64_t>(),
              ", w ", s.at("guidance_scale").get<double>(), " | ", fixed_digits(s.at("nfe_per_image").get<double>(), 0), " | ",
              fixed_digits(s.at("images_per_second").get<double>(), 2), " | ", fixed_digits(s.at("vs_teacher").get<double>(), 2), " |\n");
  md += "\n| reward (batch 32, 64²) | images/s | score + backward images/s |\n|---|---|---|\n";
  for (const Json& w : r.at("rewards")) {
    const Json& b = w.at("backward_images_per_second");
    md += str("| ", w.at("reward").get<std::string>(), " | ", fixed_digits(w.at("images_per_second").get<double>(), 1), " | ",
              b.is_number() ? fixed_digits(b.get<double>(), 1) : std::string("–"), " |\n");
  }
  if (!r.at("methods").empty()) {
    md += "\n| method (defaults) | s / step | steps / min |\n|---|---|---|\n";
    for (const Json& m : r.at("methods")) {
      const double s = m.at("seconds_per_step").get<double>();
      md += str("| ", m.at("method").get<std::string>(), " | ", fixed_digits(s, 2), " | ", fixed_digits(60 / s, 1), " |\n");
    }
  }
  md += str("\n(", r.at("threads").get<int>(), " threads; every figure above from this one run)\n");
  return md;
}

}  // namespace rewardgen
