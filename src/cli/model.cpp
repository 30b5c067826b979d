// rewardgen model info | forward: the model zoo as a user meets it.
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "core/device.h"
#include "core/error.h"
#include "io/output_paths.h"
#include "models/component_forward.h"

namespace rewardgen::cli {
namespace {

void print_info(const std::string& path, const Logger& log) {
  namespace fs = std::filesystem;
  // A config.json file stands for its folder.
  const std::string dir = fs::is_regular_file(path) ? fs::path(path).parent_path().string() : path;
  std::vector<std::pair<std::string, std::string>> parts;  // (label, folder)
  if (fs::exists(dir + "/model_index.json")) {
    for (const char* component : {"unet", "vae", "text_encoder"})
      if (fs::exists(dir + "/" + component + "/config.json")) parts.emplace_back(component, dir + "/" + component);
  } else {
    parts.emplace_back(fs::path(dir).filename().string(), dir);
  }
  if (parts.empty()) throw Error(str("'", path, "' holds no model configs"));
  int64_t total = 0;
  std::printf("%-14s %-30s %16s %8s\n", "component", "class", "parameters", "tensors");
  for (const auto& [label, folder] : parts) {
    const ComponentSummary s = summarize_component(folder, log);
    std::printf("%-14s %-30s %16lld %8lld\n", label.c_str(), to_string(s.kind).c_str(),
                static_cast<long long>(s.parameters), static_cast<long long>(s.tensors));
    total += s.parameters;
  }
  if (parts.size() > 1) std::printf("%-14s %-30s %16lld\n", "total", "", static_cast<long long>(total));
}

}  // namespace

void add_model_command(CLI::App& app, Context& context, Commands& commands) {
  auto* model = app.add_subcommand("model", "Inspect and run diffusers/transformers model folders");
  model->require_subcommand(1);

  auto info_path = std::make_shared<std::string>();
  auto* info = model->add_subcommand("info", "Per-component parameter counts from config.json alone (no weights read)");
  info->add_option("path", *info_path, "a pipeline folder (model_index.json), a component folder or its config.json")
      ->required();
  commands.push_back({info, [info_path, &context] { print_info(*info_path, context.log); }});

  struct ForwardArgs {
    std::string model, inputs, out, device = "cpu";
  };
  auto args = std::make_shared<ForwardArgs>();
  auto* forward = model->add_subcommand(
      "forward",
      "Run one component folder on named input tensors and write named fp32 outputs:\n"
      "  UNet2DConditionModel: sample, timestep (int64), encoder_hidden_states[, timestep_cond] -> sample\n"
      "  AutoencoderKL: image -> posterior_mean, posterior_logvar; latents (unscaled) -> decoded\n"
      "  CLIPTextModel[WithProjection]: input_ids (int64) -> last_hidden_state, pooler_output[, text_embeds]\n"
      "  CLIPVisionModel[WithProjection]: pixel_values -> last_hidden_state, pooler_output[, image_embeds]");
  forward->add_option("--model", args->model, "component folder (config.json + weights)")->required();
  forward->add_option("--inputs", args->inputs, "safetensors file of named inputs")->required();
  forward->add_option("--out", args->out, "safetensors file to write the outputs to")->required();
  forward->add_option("--device", args->device, "cpu or cuda (when LibTorch has CUDA)")->default_val("cpu");
  commands.push_back({forward, [args, &context] {
                        refuse_output_over_inputs(args->out, {args->inputs, args->model});
                        LoadOptions options;
                        options.device = parse_device(args->device);
                        const TensorMap inputs = SafetensorsFile::open(args->inputs).load_all();
                        const TensorMap outputs = forward_component(args->model, inputs, options, context.log);
                        save_safetensors(args->out, outputs);
                        for (const auto& [name, t] : outputs) context.log.info(str(name, " ", t.sizes()));
                      }});
}

}  // namespace rewardgen::cli
