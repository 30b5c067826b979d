// ImageReward against BLIP's own med.py/vit.py on a tiny model in the release's layout
// (tests/data/rewards/image_reward, tools/make_image_reward_fixtures.py), the image gradient by
// central differences, and the errors.
#include "rewards/image_reward.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "io/safetensors.h"
#include "io/torch_pickle.h"
#include "rewards/reward_test_util.h"
#include "test_util.h"

namespace rewardgen {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::throws_error_containing;

const std::string kRewardsData = std::string(REWARDGEN_TEST_DATA) + "/rewards";
const std::string kDir = kRewardsData + "/image_reward";
const std::vector<std::string> kImageRewardPrompts{"a red circle", "Two blue squares, left of the big circle!"};  // image_reward_prompts.txt

RewardContext quiet_double_context() {
  RewardContext c;
  c.dtype = at::kDouble;
  c.log = Logger(LogLevel::error);
  return c;
}

using testing::max_abs_diff;

void copy_folder(const std::string& from, const std::string& to) {
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from)) fs::copy_file(entry.path(), to + "/" + entry.path().filename().string());
}

TEST(ImageReward, MatchesBlipReferenceStepByStep) {
  const TensorMap f = SafetensorsFile::open(kRewardsData + "/image_reward_expected.safetensors").load_all();
  LoadOptions o;
  o.dtype = at::kDouble;
  const auto model = load_image_reward_model(kDir, o, Logger(LogLevel::error));
  EXPECT_EQ(model->visual_encoder->config().image_size, 32);  // from the weights' shapes
  EXPECT_EQ(model->visual_encoder->config().heads, 4);        // from vision_config.json
  at::NoGradGuard no_grad;
  const at::Tensor tokens = model->visual_encoder->forward(f.at("pixels"));
  EXPECT_LT(max_abs_diff(tokens, f.at("image_tokens")), 1e-9);
  const at::Tensor hidden = model->text_encoder->forward(f.at("input_ids"), f.at("attention_mask"), f.at("image_tokens"));
  EXPECT_LT(max_abs_diff(hidden, f.at("text_hidden")), 1e-9);
  // The whole reward from [-1, 1] images and prompt strings (our preprocessing and tokenizer).
  auto reward = builtin_reward_registry().make("imagereward:" + kDir, quiet_double_context());
  const at::Tensor scores = reward->score(f.at("images"), kImageRewardPrompts);
  EXPECT_LT(max_abs_diff(scores, f.at("scores")), 1e-9) << scores << f.at("scores");
  EXPECT_EQ(reward->name(), "imagereward:" + kDir);
}

TEST(ImageReward, GradientMatchesFiniteDifferences) {
  const TensorMap f = SafetensorsFile::open(kRewardsData + "/image_reward_expected.safetensors").load_all();
  auto reward = make_image_reward(kDir, quiet_double_context());
  testing::expect_gradient_matches_finite_differences(*reward, f.at("images"), kImageRewardPrompts);
}

TEST(ImageReward, ReadsSafetensorsLikeThePtFile) {
  TempDir tmp;
  const std::string dir = tmp.file("ir");
  copy_folder(kDir, dir);
  fs::remove(dir + "/ImageReward.pt");
  save_safetensors(dir + "/ImageReward.safetensors", read_tensor_file(kDir + "/ImageReward.pt"));
  const TensorMap f = SafetensorsFile::open(kRewardsData + "/image_reward_expected.safetensors").load_all();
  at::NoGradGuard no_grad;
  EXPECT_LT(max_abs_diff(make_image_reward(dir, quiet_double_context())->score(f.at("images"), kImageRewardPrompts), f.at("scores")), 1e-9);
}

TEST(ImageReward, BadFoldersAreNamed) {
  TempDir tmp;
  EXPECT_TRUE(throws_error_containing([&] { make_image_reward(tmp.file("none"), quiet_double_context()); }, "is not a folder"));
  const std::string dir = tmp.file("ir");
  copy_folder(kDir, dir);
  fs::remove(dir + "/vocab.txt");
  EXPECT_TRUE(throws_error_containing([&] { make_image_reward(dir, quiet_double_context()); }, "no vocab.txt"));
  copy_folder(kDir, tmp.file("ir2"));
  Json med = load_json_file(kDir + "/med_config.json");
  med["add_cross_attention"] = false;
  save_json_file(tmp.file("ir2") + "/med_config.json", med);
  EXPECT_TRUE(throws_error_containing([&] { make_image_reward(tmp.file("ir2"), quiet_double_context()); }, "add_cross_attention"));
  med["add_cross_attention"] = true;
  med["hidden_size"] = 64;  // the MLP reads 48
  save_json_file(tmp.file("ir2") + "/med_config.json", med);
  EXPECT_TRUE(throws_error_containing([&] { make_image_reward(tmp.file("ir2"), quiet_double_context()); }, "the MLP reads 48 features"));
  fs::remove(tmp.file("ir2") + "/ImageReward.pt");
  EXPECT_TRUE(throws_error_containing([&] { make_image_reward(tmp.file("ir2"), quiet_double_context()); }, "no ImageReward.safetensors or ImageReward.pt"));
  // Without vision_config.json the head count is width / 64 = 1, which also loads (and scores otherwise);
  // a count that does not divide the width is an error naming the file to add.
  copy_folder(kDir, tmp.file("ir3"));
  save_json_file(tmp.file("ir3") + "/vision_config.json", Json{{"num_attention_heads", 5}});
  EXPECT_TRUE(throws_error_containing([&] { make_image_reward(tmp.file("ir3"), quiet_double_context()); }, "does not split into 5 heads"));
  // Inputs are checked as for every reward.
  auto reward = make_image_reward(kDir, quiet_double_context());
  EXPECT_TRUE(throws_error_containing([&] { reward->score(at::zeros({2, 3, 40, 48}, at::kDouble) * 255 + 255, kImageRewardPrompts); },
                                      "imagereward:"));
}

}  // namespace
}  // namespace rewardgen
