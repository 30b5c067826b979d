// rewardgen bench reward: images/s of a reward on random images (and of score + backward).
#include <cstdio>

#include "cli/commands.h"
#include "core/device.h"
#include "core/error.h"
#include "core/paths.h"
#include "eval/reward_bench.h"
#include "rewards/clip_rewards.h"

namespace rewardgen::cli {
namespace {

struct RewardBenchArgs {
  std::string reward, device = "cpu";
  bool random_vit_l14 = false, random_image_reward = false;
  RewardBenchOptions bench;
};

void run_reward_bench(const RewardBenchArgs& a, const Context& context) {
  if (int(!a.reward.empty()) + int(a.random_vit_l14) + int(a.random_image_reward) != 1)
    throw Error("give exactly one of --reward SPEC, --random-clip-vit-l14 and --random-image-reward");
  RewardContext rc;
  rc.device = parse_device(a.device);
  rc.log = context.log;
  std::unique_ptr<Reward> reward;
  if (a.random_vit_l14) {
    reward = std::make_unique<ClipSimilarityReward>(
        "clip:random ViT-L/14", random_clip_vit_l14(at::TensorOptions().dtype(rc.dtype).device(rc.device)),
        ClipTokenizer::from_gzip_merges(shipped_file("clip/bpe_simple_vocab_16e6.txt.gz")), ClipPreprocessOptions{},
        ClipSimilarityReward::Scale::hundred, rc);
  } else if (a.random_image_reward) {
    reward = random_image_reward(rc);
  } else {
    reward = builtin_reward_registry().make(a.reward, rc);
  }
  const RewardBenchResult r = bench_reward(*reward, a.bench);
  std::printf("%s, batch %lld, %lldx%lld images, %d threads, median of %d\n", reward->name().c_str(),
              static_cast<long long>(a.bench.batch), static_cast<long long>(a.bench.size),
              static_cast<long long>(a.bench.size), context.threads, a.bench.repeats);
  std::printf("  score              %.4f s/batch, %.1f images/s\n", r.score_s, r.images_per_s());
  if (a.bench.backward)
    std::printf("  score + backward   %.4f s/batch, %.1f images/s\n", r.backward_s, r.backward_images_per_s());
}

}  // namespace

void add_reward_bench_command(CLI::App& bench, Context& context, Commands& commands) {
  auto a = std::make_shared<RewardBenchArgs>();
  auto* cmd = bench.add_subcommand("reward", "Reward throughput (images/s) on random images");
  cmd->add_option("--reward", a->reward, "reward spec (see `rewardgen reward --list`)");
  cmd->add_flag("--random-clip-vit-l14", a->random_vit_l14, "CLIP score with a randomly initialised ViT-L/14 CLIPModel (224²)");
  cmd->add_flag("--random-image-reward", a->random_image_reward,
                "ImageReward with a randomly initialised BLIP ViT-L/16 + BERT-base (224²)");
  cmd->add_option("--batch", a->bench.batch, "images per batch")->default_val(32)->check(CLI::Range(1, 4096));
  cmd->add_option("--size", a->bench.size, "image height = width")->default_val(64)->check(CLI::Range(8, 4096));
  cmd->add_option("--repeats", a->bench.repeats, "timed repetitions after a warm-up")->default_val(3)->check(CLI::Range(1, 1000));
  cmd->add_option("--prompt", a->bench.prompt, "every image's prompt (world.compositional needs one of the world's)")
      ->capture_default_str();
  cmd->add_flag("--backward", a->bench.backward, "also time score + backward to the pixels");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N")->default_val("cpu");
  commands.push_back({cmd, [a, &context] { run_reward_bench(*a, context); }});
}

}  // namespace rewardgen::cli
