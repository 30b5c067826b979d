#include "rewards/clip_rewards.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "models/open_clip.h"
#include "rewards/reward_test_util.h"
#include "test_util.h"

namespace rewardgen {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::throws_error_containing;

const std::string kData = std::string(REWARDGEN_TEST_DATA) + "/rewards";
const std::string kClipDir = kData + "/clip_hf";
const std::vector<std::string> kPrompts{"abc", "ab c"};  // = PROMPTS of tools/make_reward_fixtures.py

RewardContext in_double() {
  RewardContext c;
  c.dtype = at::kDouble;
  return c;
}

using testing::max_abs_diff;

// A reward folder: the tiny CLIPModel files plus `extra` files from the fixtures.
void make_reward_dir(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& extra) {
  fs::create_directories(dir);
  for (const auto& entry : fs::directory_iterator(kClipDir)) fs::copy_file(entry.path(), dir + "/" + entry.path().filename().string());
  for (const auto& [from, to] : extra) fs::copy_file(kData + "/" + from, dir + "/" + to);
}

TEST(ClipModelFolder, MatchesTransformersClipModel) {
  const TensorMap f = SafetensorsFile::open(kData + "/clip_hf_expected.safetensors").load_all();
  LoadOptions o;
  o.dtype = at::kDouble;
  const ClipModel m = load_clip_model(kClipDir, o, Logger(LogLevel::error));
  EXPECT_DOUBLE_EQ(m.logit_scale.item<double>(), 3.2f);
  EXPECT_EQ(m.text->config().projection_dim, 16);  // the top-level projection_dim, not text_config's default 512
  EXPECT_TRUE(at::equal(ClipTokenizer::from_directory(kClipDir).encode_batch(kPrompts, 8), f.at("input_ids")));
  EXPECT_LT(max_abs_diff(m.image_features(f.at("pixel_values")), f.at("image_embeds")), 1e-10);
  EXPECT_LT(max_abs_diff(m.text_features(f.at("input_ids")), f.at("text_embeds")), 1e-10);
}

TEST(ClipScoreReward, MatchesReferenceInDoubleAndFloat) {
  const TensorMap f = SafetensorsFile::open(kData + "/clip_hf_expected.safetensors").load_all();
  const RewardRegistry registry = builtin_reward_registry();
  auto clip = registry.make("clip:" + kClipDir, in_double());
  EXPECT_EQ(clip->name(), "clip:" + kClipDir);
  EXPECT_LT(max_abs_diff(clip->score(f.at("images"), kPrompts), f.at("clip_score")), 1e-9);
  auto pick = registry.make("pickscore:" + kClipDir, in_double());
  EXPECT_LT(max_abs_diff(pick->score(f.at("images"), kPrompts), f.at("pickscore")), 1e-9);
  // PickScore = exp(3.2) · cos, CLIP score = 100 · cos
  EXPECT_NEAR(f.at("pickscore")[0].item<double>(), std::exp(3.2f) * f.at("clip_score")[0].item<double>() / 100, 1e-6);
  auto clip_float = registry.make("clip:" + kClipDir, {});
  const at::Tensor s = clip_float->score(f.at("images").to(at::kFloat), kPrompts);
  EXPECT_EQ(s.scalar_type(), at::kFloat);
  EXPECT_LT(max_abs_diff(s, f.at("clip_score")), 1e-3);
  // The cached text embeddings give the same scores a second time, in another order.
  const at::Tensor again = clip_float->score(f.at("images").to(at::kFloat).flip(0), {"ab c", "abc"});
  EXPECT_LT(max_abs_diff(again.flip(0), f.at("clip_score")), 1e-3);
}

TEST(AestheticReward, HeadMatchesAHandComputation) {
  AestheticHead head({2, 2, 1, 1, 1, 1});
  at::NoGradGuard no_grad;
  auto set = [](Linear& l, std::vector<double> w, std::vector<double> b) {
    l.weight.copy_(at::tensor(w).view(l.weight.sizes()));
    l.bias.copy_(at::tensor(b));
  };
  set(*head.linears[0], {1, 2, 3, 4}, {0.5, -1});
  set(*head.linears[1], {2, -1}, {0.25});
  set(*head.linears[2], {3}, {-1});
  set(*head.linears[3], {-2}, {0});
  set(*head.linears[4], {0.5}, {1});
  // x = (1, −1): layers.0 -> (1 − 2 + 0.5, 3 − 4 − 1) = (−0.5, −2); layers.2 -> −1 + 2 + 0.25 = 1.25;
  // layers.4 -> 3.75 − 1 = 2.75; layers.6 -> −5.5; layers.7 -> −2.75 + 1 = −1.75 (no activations).
  EXPECT_NEAR(head.forward(at::tensor({1.0f, -1.0f}).view({1, 2}))[0].item<double>(), -1.75, 1e-6);
  std::vector<std::string> names;
  for (const auto& p : head.named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names.front(), "layers.0.weight");
  EXPECT_EQ(names.back(), "layers.7.bias");
}

TEST(AestheticReward, LoadsTheHeadFromSafetensorsAndPth) {
  const TensorMap f = SafetensorsFile::open(kData + "/clip_hf_expected.safetensors").load_all();
  TempDir tmp;
  const std::string st = tmp.file("st"), pth = tmp.file("pth");
  make_reward_dir(st, {{"aesthetic_head.safetensors", "aesthetic_head.safetensors"}});
  make_reward_dir(pth, {{"aesthetic_head.pth", "sac+logos+ava1-l14-linearMSE.pth"}});  // the original file name
  const RewardRegistry registry = builtin_reward_registry();
  for (const std::string& dir : {st, pth}) {
    auto reward = registry.make("aesthetic:" + dir, in_double());
    EXPECT_LT(max_abs_diff(reward->score(f.at("images"), kPrompts), f.at("aesthetic")), 1e-9) << dir;
  }
}

TEST(AestheticReward, ClearErrors) {
  TempDir tmp;
  const RewardRegistry registry = builtin_reward_registry();
  make_reward_dir(tmp.file("nohead"), {});
  EXPECT_TRUE(throws_error_containing([&] { registry.make("aesthetic:" + tmp.file("nohead"), {}); }, "no aesthetic head in"));
  // A head for 8-wide embeddings in front of a CLIP with 16-wide ones.
  make_reward_dir(tmp.file("mismatch"), {});
  AestheticHead small({8, 4, 4, 4, 4, 1});
  save_safetensors(tmp.file("mismatch/aesthetic_head.safetensors"), module_state(small));
  EXPECT_TRUE(throws_error_containing([&] { registry.make("aesthetic:" + tmp.file("mismatch"), {}); },
                                      "the CLIP image embedding has width 16, the aesthetic head expects 8"));
  EXPECT_TRUE(throws_error_containing([&] { registry.make("aesthetic:/nonexistent/a", {}); },
                                      "reward 'aesthetic:/nonexistent/a': '/nonexistent/a' is not a folder"));
  EXPECT_TRUE(throws_error_containing([&] { registry.make("clip:" + tmp.path(), {}); }, "has no config.json"));
}

TEST(Hpsv2Reward, OpenClipCheckpointMatchesOpenClip) {
  const TensorMap f = SafetensorsFile::open(kData + "/open_clip_expected.safetensors").load_all();
  LoadOptions o;
  o.dtype = at::kDouble;
  const ClipModel m = load_open_clip(kData + "/open_clip/hpsv2_tiny.pt", kData + "/open_clip/open_clip_config.json", o,
                                     Logger(LogLevel::error));
  EXPECT_EQ(m.vision->config().num_attention_heads, 2);  // width 32 / head_width 16
  EXPECT_EQ(m.text->config().hidden_act, "gelu");
  const at::Tensor image = m.image_features(f.at("pixel_values")), text = m.text_features(f.at("input_ids"));
  EXPECT_LT(max_abs_diff(image / image.norm(2, {-1}, true), f.at("image_embeds")), 1e-10);
  EXPECT_LT(max_abs_diff(text / text.norm(2, {-1}, true), f.at("text_embeds")), 1e-10);
  EXPECT_DOUBLE_EQ(m.logit_scale.item<double>(), 4.0);
  const RewardRegistry registry = builtin_reward_registry();
  for (const char* file : {"hpsv2_tiny.pt", "hpsv2_tiny.safetensors"}) {
    auto reward = registry.make(str("hpsv2:", kData, "/open_clip/", file), in_double());
    EXPECT_LT(max_abs_diff(reward->score(f.at("images"), kPrompts), f.at("hpsv2")), 1e-9) << file;
  }
  EXPECT_TRUE(throws_error_containing([&] { registry.make("hpsv2:" + kData + "/open_clip/none.pt", {}); }, "no file"));
}

TEST(OpenClip, InfersVitH14FromShapes) {
  TensorMap s;  // shapes only, on the meta device
  auto add = [&](const std::string& name, std::vector<int64_t> shape) { s[name] = at::empty(shape, at::kMeta); };
  add("visual.conv1.weight", {1280, 3, 14, 14});
  add("visual.positional_embedding", {257, 1280});
  add("visual.proj", {1280, 1024});
  for (int i = 0; i < 32; ++i) add(str("visual.transformer.resblocks.", i, ".ln_1.weight"), {1280});
  add("visual.transformer.resblocks.0.mlp.c_fc.weight", {5120, 1280});
  add("token_embedding.weight", {49408, 1024});
  add("positional_embedding", {77, 1024});
  add("text_projection", {1024, 1024});
  for (int i = 0; i < 24; ++i) add(str("transformer.resblocks.", i, ".ln_1.weight"), {1024});
  add("transformer.resblocks.0.mlp.c_fc.weight", {4096, 1024});
  const OpenClipArchitecture a = infer_open_clip_architecture(s, "vit-h");
  // open_clip/model_configs/ViT-H-14.json: embed 1024; vision 224/14, 32 layers, width 1280, head_width 80;
  // text 77 tokens, 49408 ids, width 1024, 16 heads, 24 layers.
  EXPECT_EQ(a.vision.image_size, 224);
  EXPECT_EQ(a.vision.patch_size, 14);
  EXPECT_EQ(a.vision.num_hidden_layers, 32);
  EXPECT_EQ(a.vision.num_attention_heads, 16);
  EXPECT_EQ(a.vision.intermediate_size, 5120);
  EXPECT_EQ(a.vision.projection_dim, 1024);
  EXPECT_EQ(a.text.num_hidden_layers, 24);
  EXPECT_EQ(a.text.num_attention_heads, 16);
  EXPECT_EQ(a.text.max_position_embeddings, 77);
  EXPECT_EQ(a.text.vocab_size, 49408);
  EXPECT_EQ(a.text.hidden_act, "gelu");
  s.erase("visual.proj");
  EXPECT_TRUE(throws_error_containing([&] { infer_open_clip_architecture(s, "vit-h"); }, "vit-h: missing tensor 'visual.proj'"));
}

TEST(OpenClip, UnknownTensorsAreErrors) {
  TensorMap s = SafetensorsFile::open(kData + "/open_clip/hpsv2_tiny.safetensors").load_all();
  const TensorMap mapped = open_clip_to_clip_model_state(s, "tiny");
  // in_proj [3D, D] split in three; visual.proj [D, E] transposed into a Linear weight [E, D].
  EXPECT_TRUE(at::equal(mapped.at("vision_model.encoder.layers.1.self_attn.k_proj.weight"),
                        s.at("visual.transformer.resblocks.1.attn.in_proj_weight").narrow(0, 32, 32)));
  EXPECT_TRUE(at::equal(mapped.at("text_model.encoder.layers.0.self_attn.v_proj.bias"),
                        s.at("transformer.resblocks.0.attn.in_proj_bias").narrow(0, 48, 24)));
  EXPECT_TRUE(at::equal(mapped.at("visual_projection.weight"), s.at("visual.proj").t()));
  s["visual.transformer.resblocks.0.ls_1.gamma"] = at::ones({32});
  EXPECT_TRUE(throws_error_containing([&] { open_clip_to_clip_model_state(s, "tiny"); },
                                      "tiny: OpenCLIP tensor 'visual.transformer.resblocks.0.ls_1.gamma' has no counterpart"));
}

TEST(ClipRewards, GradientsMatchFiniteDifferences) {
  const at::Tensor images = SafetensorsFile::open(kData + "/clip_hf_expected.safetensors").tensor("images");
  TempDir tmp;
  make_reward_dir(tmp.file("aesthetic"), {{"aesthetic_head.safetensors", "aesthetic_head.safetensors"}});
  const RewardRegistry registry = builtin_reward_registry();
  for (const std::string& spec : {"clip:" + kClipDir, "pickscore:" + kClipDir, "aesthetic:" + tmp.file("aesthetic"),
                                  "hpsv2:" + kData + "/open_clip/hpsv2_tiny.safetensors"}) {
    SCOPED_TRACE(spec);
    auto reward = registry.make(spec, in_double());
    testing::expect_gradient_matches_finite_differences(*reward, images, kPrompts);
  }
}

}  // namespace
}  // namespace rewardgen
