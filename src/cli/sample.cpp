// rewardgen sample: images from a pipeline folder, as PNGs and a grid.
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/sampler_flags.h"
#include "core/device.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "core/progress.h"
#include "models/precision.h"
#include "io/image.h"
#include "io/json_config.h"
#include "io/output_paths.h"
#include "sampling/pipeline.h"
#include "sampling/text_to_image.h"
#include "text/prompt_lines.h"

namespace rewardgen::cli {
namespace {

struct SampleArgs {
  std::string model, prompts_file, out = "samples", device = "cpu", precision = "auto";
  std::vector<std::string> prompts;
  SamplerFlags flags;
  int64_t seed = 0, images_per_prompt = 1, batch = 4, grid_columns = 0;
};

std::vector<std::string> read_prompts(const SampleArgs& a) {
  std::vector<std::string> prompts = a.prompts;
  if (!a.prompts_file.empty()) {
    const std::vector<text::PromptLine> lines = text::read_prompt_lines(a.prompts_file);
    if (lines.empty()) throw Error(str("prompts file '", a.prompts_file, "' holds no prompt (blank lines are skipped)"));
    for (const text::PromptLine& line : lines) prompts.push_back(line.text);
  }
  if (prompts.empty()) throw Error("no prompts: give --prompt TEXT (repeatable) or --prompts FILE (one per line)");
  return prompts;
}

void run_sample(const SampleArgs& a, const Context& context) {
  const std::vector<std::string> prompts = read_prompts(a);
  refuse_output_over_inputs(a.out, {a.model, a.prompts_file});
  LoadOptions load;
  load.device = parse_device(a.device);
  load.dtype = dtype_of(parse_precision(a.precision, load.device));
  Pipeline pipeline = load_pipeline(a.model, load, context.log);
  const SamplerOptions sampler = resolve_sampler(a.flags, pipeline.scheduler, a.model, context.log);
  const TextToImage t2i(pipeline, ClipTokenizer::from_directory(pipeline.tokenizer_dir));
  prepare_output_folder(a.out, /*must_be_empty=*/true);  // 00000.png... of an earlier call would mix with these

  std::vector<std::string> all;  // every image's prompt, prompt-major
  for (const auto& p : prompts)
    for (int64_t k = 0; k < a.images_per_prompt; ++k) all.push_back(p);
  const int64_t n = static_cast<int64_t>(all.size()), batches = (n + a.batch - 1) / a.batch;
  const int64_t steps_per_batch = sampler.sampler == "onestep" ? 1 : sampler.steps;
  ProgressBar bar("sample", batches * steps_per_batch);
  std::vector<at::Tensor> images;
  nlohmann::ordered_json files = nlohmann::ordered_json::array();
  int64_t nfe = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t b = 0; b < batches; ++b) {
    const std::vector<std::string> chunk(all.begin() + b * a.batch, all.begin() + std::min(n, (b + 1) * a.batch));
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(a.seed + b));
    const at::Tensor batch = t2i.generate(chunk, sampler, generator, nullptr, &nfe).to(at::kCPU);  // [b, 3, H, W]
    for (int64_t i = 0; i < batch.size(0); ++i) {
      const int64_t index = b * a.batch + i;
      char name[32];
      std::snprintf(name, sizeof name, "%05lld.png", static_cast<long long>(index));
      save_png(a.out + "/" + name, batch[i]);
      files.push_back({{"file", name}, {"prompt", chunk[i]}, {"batch_seed", a.seed + b}});
      images.push_back(batch[i]);
    }
    bar.update((b + 1) * steps_per_batch);
  }
  bar.finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t columns = a.grid_columns > 0 ? a.grid_columns : a.images_per_prompt > 1 ? a.images_per_prompt : std::min<int64_t>(n, 8);
  save_png(a.out + "/grid.png", make_grid(at::stack(images), columns));
  save_json_file(a.out + "/samples.json",
                 {{"model", a.model}, {"sampler", sampler.sampler}, {"steps", sampler.steps},
                  {"guidance_scale", sampler.guidance_scale}, {"eta", sampler.eta}, {"output", sampler.output}, {"seed", a.seed},
                  {"batch", a.batch}, {"images", n}, {"nfe_per_image", static_cast<double>(nfe) / static_cast<double>(batches)},
                  {"seconds", seconds}, {"images_per_second", static_cast<double>(n) / seconds}, {"files", files}});
  context.log.info(str("wrote ", n, " images and grid.png to ", a.out, " (", static_cast<double>(n) / seconds, " images/s)"));
}

}  // namespace

void add_sample_command(CLI::App& app, Context& context, Commands& commands) {
  auto a = std::make_shared<SampleArgs>();
  auto* sub = app.add_subcommand("sample", "Generate images from a pipeline folder (model_index.json): PNGs, grid.png, samples.json");
  sub->add_option("--model", a->model, "pipeline folder (diffusers layout)")->required();
  sub->add_option("--prompt", a->prompts, "a prompt (repeatable)");
  sub->add_option("--prompts", a->prompts_file, "a file with one prompt per line");
  SamplerOptions defaults;
  defaults.guidance_scale = 7.5;
  add_sampler_flags(*sub, a->flags, defaults);
  sub->add_option("--height", a->flags.values.height, "image height in pixels (default: the model's)")
      ->check(CLI::Range(int64_t{8}, int64_t{16384}));
  sub->add_option("--width", a->flags.values.width, "image width in pixels (default: the model's)")
      ->check(CLI::Range(int64_t{8}, int64_t{16384}));
  sub->add_option("--seed", a->seed, "batch k uses seed + k")->default_val(0)->check(CLI::NonNegativeNumber);
  sub->add_option("--images-per-prompt", a->images_per_prompt, "images per prompt")->default_val(1)->check(CLI::Range(int64_t{1}, int64_t{100000}));
  sub->add_option("--batch", a->batch, "images per network batch")->default_val(4)->check(CLI::Range(int64_t{1}, int64_t{4096}));
  sub->add_option("--grid-columns", a->grid_columns, "columns of grid.png (default: images per prompt, or up to 8)")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}));
  sub->add_option("--out", a->out, "output folder, new or empty (the images of two calls would mix)")->default_val("samples");
  sub->add_option("--device", a->device, "cpu or cuda (when LibTorch has CUDA)")->default_val("cpu");
  add_precision_flag(*sub, a->precision);
  commands.push_back({sub, [a, &context] { run_sample(*a, context); }});
}

}  // namespace rewardgen::cli
