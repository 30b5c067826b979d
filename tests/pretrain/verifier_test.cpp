// The learned verifier's pretraining (pretrain/verifier.h): its loss is the binary cross-entropy of
// world.clip_contrast's probability, the pool round-trips and keeps held-out prompts out, the
// config is range-checked, training lowers the loss and a resumed run equals the uninterrupted one.
#include "pretrain/verifier.h"

#include <gtest/gtest.h>

#include "io/run_dir.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "world/render.h"
#include "world_models.h"

namespace rewardgen {
namespace {

using testing::TempDir;
using testing::max_abs_diff;
using testing::throws_error_containing;

class VerifierTest : public testing::TinyWorldTest {
 protected:
  pretrain::VerifierPretrainConfig tiny_config(int64_t images) const {
    pretrain::VerifierPretrainConfig config;
    config.init = dir_->path();
    config.batch_size = 8;
    config.rendered_fraction = 0.25;
    config.trainer.max_steps = 4;
    config.trainer.warmup_steps = 0;
    config.trainer.checkpoint_every = 2;
    pretrain::VerifierSource source;
    source.name = "tiny";
    source.model = dir_->path();
    source.sampler.sampler = "ddim";
    source.sampler.steps = 1;
    source.sampler.guidance_scale = 1;
    source.images = images;
    config.sources = {source};
    return config;
  }
  std::unique_ptr<ClipContrastReward> tiny_contrast() const {
    RewardContext context;
    return std::make_unique<ClipContrastReward>("c", load_world_clip("c", dir_->path(), context));
  }
};

TEST_F(VerifierTest, LossIsTheCrossEntropyOfTheContrastProbabilityWithTheChecker) {
  const std::vector<world::EvalPrompt> lines = world::balanced_subset(world::eval_prompts(), 6);
  const at::Tensor images = world::render_eval_scenes(lines);
  std::vector<std::string> anchors;
  for (const world::EvalPrompt& line : lines) anchors.push_back(line.text);
  const std::vector<bool> labels = {true, false, true, true, false, false};
  auto contrast = tiny_contrast();
  const pretrain::VerifierLoss loss = pretrain::verifier_loss(*contrast, images, anchors, labels);
  // By hand: p = exp(score), the reward's own log-probability.
  const at::Tensor log_p = contrast->score(images, anchors);
  double expected = 0, agree = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const double lp = log_p[static_cast<int64_t>(i)].item<double>();
    expected += labels[i] ? -lp : -std::log1p(-std::exp(lp));
    agree += ((lp > std::log(0.5)) == labels[i]) ? 1 : 0;
  }
  EXPECT_NEAR(loss.loss.item<double>(), expected / 6, 1e-4);
  EXPECT_DOUBLE_EQ(loss.accuracy, agree / 6);
  EXPECT_DOUBLE_EQ(loss.positives, 0.5);
  // Its gradient reaches the vision tower.
  for (at::Tensor p : contrast->clip().model().vision->parameters()) p.set_requires_grad(true);  // as the task sets them
  loss.loss.backward();
  EXPECT_TRUE(contrast->clip().model().vision->parameters()[0].grad().defined());
  EXPECT_TRUE(throws_error_containing([&] { pretrain::verifier_loss(*contrast, images, anchors, {true}); }, "6 anchors, 1 labels"));
}

TEST_F(VerifierTest, PoolRoundTripsAndHoldsTrainingPromptsOnly) {
  pretrain::VerifierPretrainConfig config = tiny_config(10);
  const pretrain::VerifierPool pool = pretrain::build_verifier_pool(config, log_);
  ASSERT_EQ(pool.images.sizes(), (std::vector<int64_t>{10, 3, 64, 64}));
  EXPECT_EQ(pool.images.scalar_type(), at::kByte);
  ASSERT_EQ(pool.prompts.size(), 10u);
  std::set<std::string> held_out;
  for (const world::EvalPrompt& line : world::eval_prompts()) held_out.insert(line.text);
  for (const std::string& p : pool.prompts) EXPECT_EQ(held_out.count(p), 0u) << p;
  EXPECT_EQ(pool.sources, std::vector<std::string>(10, "tiny"));
  // The same config gives the same pool (seeded by the source's name).
  EXPECT_TRUE(at::equal(pretrain::build_verifier_pool(config, log_).images, pool.images));
  TempDir tmp;
  pretrain::save_verifier_pool(tmp.file("pool.safetensors"), pool);
  const pretrain::VerifierPool back = pretrain::load_verifier_pool(tmp.file("pool.safetensors"));
  EXPECT_TRUE(at::equal(back.images, pool.images));
  EXPECT_EQ(back.prompts, pool.prompts);
  EXPECT_EQ(back.sources, pool.sources);
  // [-1, 1] back from bytes.
  const at::Tensor pixels = pretrain::pool_pixels(pool.images);
  EXPECT_GE(pixels.min().item<double>(), -1.0);
  EXPECT_LE(pixels.max().item<double>(), 1.0);
  save_safetensors(tmp.file("bad.safetensors"), {{"images", pool.images}});
  EXPECT_TRUE(throws_error_containing([&] { pretrain::load_verifier_pool(tmp.file("bad.safetensors")); }, "not a verifier pool"));
  pretrain::check_verifier_folders(config);  // the tiny world holds what a run needs
  pretrain::VerifierPretrainConfig missing = config;
  missing.sources[0].model = tmp.file("no_such_pipeline");
  EXPECT_TRUE(throws_error_containing([&] { pretrain::check_verifier_folders(missing); }, "is not a pipeline folder (no model_index.json)"));
  missing = config;
  missing.init = tmp.path();
  EXPECT_TRUE(throws_error_containing([&] { pretrain::check_verifier_folders(missing); }, "has no tokenizer/"));
  // A pool holding a held-out prompt is refused.
  pretrain::VerifierPool leaky = pool;
  leaky.prompts[3] = world::eval_prompts()[0].text;
  EXPECT_TRUE(throws_error_containing([&] { pretrain::VerifierPretrainTask(config, leaky, log_); }, "held-out evaluation prompt"));
  // The same check on a pool given by file (`pretrain verifier --pool`), before a run folder is written.
  EXPECT_NO_THROW(pretrain::check_verifier_pool_prompts(pool, "pool.safetensors"));
  EXPECT_TRUE(throws_error_containing([&] { pretrain::check_verifier_pool_prompts(leaky, "given.safetensors"); },
                                      "given.safetensors: '" + leaky.prompts[3] + "' is a held-out evaluation prompt"));
}

TEST(VerifierConfig, RangeChecksAndRoundTrips) {
  const pretrain::VerifierPretrainConfig defaults;
  EXPECT_EQ(defaults.sources.size(), 7u);
  const Json json = pretrain::verifier_pretrain_config_json(defaults);
  ConfigReader reader(json, "defaults");
  EXPECT_EQ(pretrain::verifier_pretrain_config_json(pretrain::read_verifier_pretrain_config(reader)), json);
  auto read = [](const Json& object) {
    ConfigReader r(object, "c.json");
    pretrain::read_verifier_pretrain_config(r);
  };
  EXPECT_TRUE(throws_error_containing([&] { read({{"rendered_fraction", 1.0}}); }, "leaves no generated image"));
  EXPECT_TRUE(throws_error_containing([&] { read({{"rendered_fraction", 1.5}}); }, "rendered_fraction"));
  EXPECT_TRUE(throws_error_containing([&] { read({{"batch_size", 1}}); }, "batch_size"));
  EXPECT_TRUE(throws_error_containing([&] { read({{"sources", Json::object()}}); }, "non-empty object"));
  EXPECT_TRUE(throws_error_containing([&] { read({{"sources", {{"a", {{"images", 3}}}}}}); }, "model"));
  EXPECT_TRUE(throws_error_containing([&] { read({{"sources", {{"a", {{"model", "m"}, {"images", 0}}}}}}); }, "images"));
  EXPECT_TRUE(throws_error_containing([&] { read({{"sources", {{"a", {{"model", "m"}, {"sampler", "euler"}}}}}}); }, "sampler"));
  EXPECT_TRUE(throws_error_containing([&] { read({{"sources", {{"a", {{"model", "m"}, {"steps", 2}, {"timesteps", {999}}}}}}}); },
                                      "sources.a"));
}

class VerifierKindTest : public VerifierTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(VerifierKindTest, TrainingLowersTheLossOnAFixedBatchResumesExactlyAndExportsTheReward) {
  pretrain::VerifierPretrainConfig config = tiny_config(16);
  config.kind = GetParam();
  config.net.channels = {8, 16};
  config.net.head_width = 16;
  config.net.embed_dim = 16;
  config.net.head_channels = 4;
  const pretrain::VerifierPool pool = pretrain::build_verifier_pool(config, log_);
  // Fixed anchors and labels on the pool's images: the loss a few steps of training must lower.
  pretrain::VerifierBatch fixed;
  fixed.images = pretrain::pool_pixels(pool.images);
  fixed.anchors = pool.prompts;
  for (int64_t i = 0; i < fixed.images.size(0); ++i)
    fixed.labels.push_back(world::check(fixed.images[i], world::parse_prompt(pool.prompts[static_cast<size_t>(i)])).passed);
  auto fixed_loss = [&](pretrain::VerifierPretrainTask& task) {
    at::NoGradGuard no_grad;
    return task.loss(fixed).loss.item<double>();
  };
  config.trainer.max_steps = 12;
  config.trainer.lr = 3e-3;
  config.rendered_fraction = 0;
  pretrain::VerifierPretrainTask trained(config, pool, log_);
  const double before = fixed_loss(trained);
  TempDir runs;
  Trainer(config.trainer, RunDir::create(runs.file("lowers"), false), log_).run(trained, false, 0);
  EXPECT_LT(fixed_loss(trained), before);

  // The exported folder's reward scores log p of the verdict as the trained task computes it.
  trained.export_to(runs.file("export"));
  RewardContext context;
  const std::shared_ptr<Reward> reward = pretrain::verifier_reward(config.kind, runs.file("export"), context);
  const at::Tensor scores = reward->score(fixed.images, fixed.anchors);
  ASSERT_EQ(scores.size(0), fixed.images.size(0));
  EXPECT_LE(scores.max().item<double>(), 0.0);  // log-probabilities
  double mean_log_p = 0;  // BCE of the labels against the reward's p, from fp16 weights: near the task's
  for (int64_t i = 0; i < scores.size(0); ++i) {
    const double lp = scores[i].item<double>();
    mean_log_p += fixed.labels[static_cast<size_t>(i)] ? -lp : -std::log1p(-std::exp(lp));
  }
  EXPECT_NEAR(mean_log_p / static_cast<double>(scores.size(0)), fixed_loss(trained), 2e-2 * (1 + fixed_loss(trained)));

  config.trainer.max_steps = 4;
  config.trainer.lr = 1e-4;
  config.rendered_fraction = 0.25;
  const auto [straight, resumed] = straight_and_resumed(
      [&] { return std::make_unique<pretrain::VerifierPretrainTask>(config, pool, log_); }, config.trainer,
      pretrain::verifier_pretrain_config_json(config), runs.file("resume"), 2);
  ASSERT_EQ(straight.size(), resumed.size());
  for (const auto& [name, tensor] : straight) EXPECT_TRUE(at::equal(tensor, resumed.at(name))) << name;
}

INSTANTIATE_TEST_SUITE_P(Kinds, VerifierKindTest, ::testing::Values("contrast", "net"));

TEST(WorldVerifierNet, ShapesSaveLoadAndErrors) {
  WorldVerifierConfig config;
  config.channels = {8, 16, 16};
  config.text_dim = 12;
  config.embed_dim = 8;
  config.head_channels = 4;
  config.head_width = 8;
  at::manual_seed(0);
  const WorldVerifierNet net(config);
  const at::Tensor images = at::rand({3, 3, 64, 64}) * 2 - 1, text = at::randn({3, 12});
  const at::Tensor logits = net.forward(images, text);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3}));
  // The logit depends on the prompt: the text enters the blocks and the head.
  EXPECT_GT(max_abs_diff(logits, net.forward(images, at::randn({3, 12}))), 1e-6);
  TempDir tmp;
  save_world_verifier(tmp.file("v"), net);
  const auto back = load_world_verifier(tmp.file("v"), {});
  EXPECT_TRUE(at::allclose(back->forward(images, text), logits, 1e-6, 1e-6));
  EXPECT_TRUE(throws_error_containing([&] { net.forward(images, at::randn({3, 5})); }, "text must be [3, 12]"));
  EXPECT_TRUE(throws_error_containing([&] { net.forward(at::rand({3, 3, 32, 32}), text); }, "images must be [B, 3, 64, 64]"));
  config.channels = {8, 12};
  EXPECT_TRUE(throws_error_containing([&] { WorldVerifierNet bad(config); }, "multiple of groups"));
  EXPECT_TRUE(throws_error_containing([&] { load_world_verifier(tmp.file("nothing"), {}); }, "config.json' is missing"));
}

}  // namespace
}  // namespace rewardgen
