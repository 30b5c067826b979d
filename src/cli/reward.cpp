// rewardgen reward: scores the PNG and JPEG images of a folder with a reward, one prompt per image.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/device.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "rewards/reward.h"
#include "text/prompt_lines.h"

namespace rewardgen::cli {
namespace {

namespace fs = std::filesystem;

struct RewardArgs {
  std::string reward, images, prompts, device = "cpu";
  int64_t batch = 16;
  bool list = false;
};

bool is_image_name(const fs::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return std::tolower(c); });
  return extension == ".png" || extension == ".jpg" || extension == ".jpeg";
}

std::vector<std::string> image_files(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error(str("--images: '", dir, "' is not a folder"));
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && is_image_name(entry.path())) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  if (names.empty()) throw Error(str("--images: '", dir, "' holds no .png, .jpg or .jpeg files"));
  return names;
}

std::vector<std::string> prompt_lines(const std::string& file) {
  std::vector<std::string> lines;
  for (text::PromptLine& line : text::read_prompt_lines(file, text::BlankLines::keep)) lines.push_back(std::move(line.text));
  return lines;
}

void list_rewards(const RewardRegistry& registry) {
  for (const RewardEntry& e : registry.entries()) {
    const std::string spec = e.argument.empty() ? e.name : e.name + ":" + e.argument;
    std::printf("%-24s %s\n", spec.c_str(), e.help.c_str());
  }
}

void run_reward(const RewardArgs& a, const Context& context) {
  const RewardRegistry registry = builtin_reward_registry();
  if (a.list) return list_rewards(registry);
  if (a.reward.empty() || a.images.empty() || a.prompts.empty())
    throw Error("give --reward NAME, --images DIR and --prompts FILE (or --list)");
  const std::vector<std::string> files = image_files(a.images);
  const std::vector<std::string> prompts = prompt_lines(a.prompts);
  if (prompts.size() != files.size())
    throw Error(str("'", a.prompts, "' has ", prompts.size(), " prompts for ", files.size(), " images in '", a.images,
                    "' (one prompt a line, images in name order)"));
  RewardContext rc;
  rc.device = parse_device(a.device);
  rc.log = context.log;
  std::unique_ptr<Reward> reward = registry.make(a.reward, rc);
  at::NoGradGuard no_grad;
  double total = 0.0;
  // Batches of consecutive images of one size (a batch tensor needs one size).
  for (size_t start = 0; start < files.size();) {
    std::vector<at::Tensor> images{load_image(a.images + "/" + files[start])};
    size_t end = start + 1;
    for (; end < files.size() && end - start < static_cast<size_t>(a.batch); ++end) {
      at::Tensor next = load_image(a.images + "/" + files[end]);
      if (next.sizes() != images.front().sizes()) break;
      images.push_back(next);
    }
    const std::vector<std::string> chunk(prompts.begin() + static_cast<std::ptrdiff_t>(start),
                                         prompts.begin() + static_cast<std::ptrdiff_t>(end));
    const at::Tensor scores = reward->score(at::stack(images), chunk).to(at::kCPU, at::kDouble);
    for (size_t i = start; i < end; ++i) {
      const double s = scores[static_cast<int64_t>(i - start)].item<double>();
      total += s;
      std::printf("%s\t%.6f\n", files[i].c_str(), s);
    }
    start = end;
  }
  std::printf("mean\t%.6f\t(%zu images, %s)\n", total / static_cast<double>(files.size()), files.size(), reward->name().c_str());
}

}  // namespace

void add_reward_command(CLI::App& app, Context& context, Commands& commands) {
  auto a = std::make_shared<RewardArgs>();
  auto* cmd = app.add_subcommand("reward", "Score the PNG and JPEG images of a folder with a reward (one prompt per image)");
  cmd->add_option("--reward", a->reward, "reward spec, e.g. jpeg_compressibility, aesthetic:DIR, or a JSON composite");
  cmd->add_option("--images", a->images, "folder of .png/.jpg/.jpeg images, scored in name order");
  cmd->add_option("--prompts", a->prompts, "text file, one prompt a line, one line per image");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N")->default_val("cpu");
  cmd->add_option("--batch", a->batch, "images scored together")->default_val(16)->check(CLI::Range(int64_t{1}, int64_t{4096}));
  cmd->add_flag("--list", a->list, "list the registered rewards and exit");
  commands.push_back({cmd, [a, &context] { run_reward(*a, context); }});
}

}  // namespace rewardgen::cli
