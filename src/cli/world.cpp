// rewardgen world {prompts,render,check,tokenizer}: the embedded world from the command line —
// list prompts, render scenes for a prompt, ask the checker about an image, write the world's
// tokenizer folder.
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "io/image.h"
#include "text/bpe_trainer.h"
#include "world/checker.h"
#include "world/prompts.h"
#include "world/render.h"

namespace rewardgen::cli {
namespace {

void print_prompts(const std::string& split, const std::string& task_name) {
  std::optional<world::Task> only;
  if (!task_name.empty()) only = world::task_named(task_name);
  if (split == "eval") {
    std::vector<world::EvalPrompt> lines;
    for (const world::EvalPrompt& line : world::eval_prompts())
      if (!only || line.task == *only) lines.push_back(line);
    std::cout << world::eval_prompts_jsonl(lines);
    return;
  }
  const world::TrainingPrompts training;
  for (world::Task task : world::kTasks) {
    if (only && task != *only) continue;
    for (const world::Prompt& prompt : split == "train" ? training.of(task) : world::all_prompts(task))
      std::cout << world::eval_prompts_jsonl({{task, prompt.text()}});
  }
}

void render_prompt(const std::string& text, uint64_t seed, int64_t count, const std::string& out) {
  const world::Prompt prompt = world::parse_prompt(text);
  std::vector<world::Scene> scenes;
  for (int64_t i = 0; i < count; ++i) {
    world::Rng rng(seed + static_cast<uint64_t>(i));
    scenes.push_back(world::scene_for_prompt(prompt, rng));
  }
  const at::Tensor images = world::render_batch(scenes);
  const std::filesystem::path parent = std::filesystem::path(out).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  save_png(out, count == 1 ? images[0] : make_grid(images, std::min<int64_t>(count, 8)));
  if (count > 1) {
    // Each scene on its own too, beside the grid: <out stem>_NNN.png (scene i has seed + i).
    const std::filesystem::path base(out);
    for (int64_t i = 0; i < count; ++i) {
      char suffix[32];
      std::snprintf(suffix, sizeof suffix, "_%03lld.png", static_cast<long long>(i));
      save_png((base.parent_path() / (base.stem().string() + suffix)).string(), images[i]);
    }
  }
  std::cout << "wrote " << out << (count > 1 ? " and one PNG per scene" : "") << " (" << count << " scene" << (count == 1 ? "" : "s") << " of '" << prompt.text()
            << "', task " << world::name(prompt.task) << ")\n";
}

}  // namespace

void add_world_command(CLI::App& app, Context& context, Commands& commands) {
  auto* world_app = app.add_subcommand("world", "The embedded world: prompts, scenes, checker, tokenizer");
  world_app->require_subcommand(1);

  auto* prompts = world_app->add_subcommand("prompts", "Print prompts as JSON lines {\"task\", \"prompt\"}");
  auto split = std::make_shared<std::string>("eval");
  auto task = std::make_shared<std::string>();
  prompts->add_option("--split", *split, "eval (the held-out set, 84 lines a task), train (the rest), all")
      ->check(CLI::IsMember({"eval", "train", "all"}))
      ->capture_default_str();
  prompts->add_option("--task", *task, "only this task (single_object, two_object, counting, colors, position, color_attr)");
  commands.push_back({prompts, [split, task] { print_prompts(*split, *task); }});

  auto* render_app = world_app->add_subcommand("render", "Render scenes that satisfy a prompt to a PNG (a grid for --count > 1)");
  auto text = std::make_shared<std::string>();
  auto seed = std::make_shared<uint64_t>(0);
  auto count = std::make_shared<int64_t>(1);
  auto out = std::make_shared<std::string>("scene.png");
  render_app->add_option("prompt", *text, "a prompt of the world's grammar, e.g. 'a red circle above a blue square'")->required();
  render_app->add_option("--seed", *seed, "scene seed (scene i uses seed + i)")->check(CLI::NonNegativeNumber)->capture_default_str();
  render_app->add_option("--count", *count, "number of scenes")->check(CLI::Range(int64_t{1}, int64_t{4096}))->capture_default_str();
  render_app->add_option("--out", *out, "PNG file")->capture_default_str();
  commands.push_back({render_app, [text, seed, count, out] { render_prompt(*text, *seed, *count, *out); }});

  auto* check_app = world_app->add_subcommand("check", "Detect the objects of a 64x64 image and decide each clause of a prompt");
  auto image = std::make_shared<std::string>();
  auto check_prompt = std::make_shared<std::string>();
  check_app->add_option("image", *image, "PNG or JPEG image, 64x64")->required();
  check_app->add_option("prompt", *check_prompt, "the prompt to check")->required();
  commands.push_back({check_app, [image, check_prompt] {
                        const world::CheckResult result = world::check(load_image(*image), world::parse_prompt(*check_prompt));
                        std::cout << result.explain();
                      }});

  auto* tokenizer_app = world_app->add_subcommand("tokenizer", "Write the world's BPE tokenizer folder (learnt from the grammar's words)");
  auto dir = std::make_shared<std::string>();
  auto length = std::make_shared<int64_t>(16);
  tokenizer_app->add_option("dir", *dir, "output folder (vocab.json, merges.txt, tokenizer_config.json)")->required();
  tokenizer_app->add_option("--length", *length, "model_max_length: start + tokens + end")
      ->check(CLI::Range(int64_t{3}, int64_t{1} << 16))
      ->capture_default_str();
  commands.push_back({tokenizer_app, [dir, length] {
                        const BpeVocabulary vocabulary = train_bpe(world::grammar_words());
                        save_tokenizer_folder(*dir, vocabulary, *length);
                        std::cout << "wrote " << *dir << ": " << vocabulary.tokens.size() << " tokens, "
                                  << vocabulary.merges.size() << " merges\n";
                      }});
  (void)context;
}

}  // namespace rewardgen::cli
