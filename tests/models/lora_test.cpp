#include "models/lora.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "models/diffusers_io.h"
#include "models/unet_2d_condition.h"
#include "test_util.h"
#include "tiny_models.h"
#include "train/adamw.h"

namespace rewardgen {
namespace {

using testing::TempDir;
using testing::throws_error_containing;

at::Generator generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

// A UNet, its inputs, and the output before any adapter.
struct Tiny {
  std::shared_ptr<UNet2DConditionModel> unet;
  at::Tensor x, t, ctx;
  explicit Tiny(uint64_t seed) {
    at::manual_seed(seed);
    unet = std::make_shared<UNet2DConditionModel>(testing::tiny_unet_config());
    x = at::randn({2, 4, 8, 8});
    t = at::tensor({10, 500});
    ctx = at::randn({2, 5, 16});
  }
  at::Tensor forward() const { return unet->forward(x, t, ctx); }
};

void randomize_b(LoraAdapters& adapters, uint64_t seed) {
  at::Generator g = generator(seed);
  at::NoGradGuard no_grad;
  for (auto& m : adapters.modules) m.adapter->B.normal_(0, 0.1, g);
}

std::vector<std::string> keys(const TensorMap& map) {
  std::vector<std::string> out;
  for (const auto& [k, v] : map) out.push_back(k);
  return out;
}

TEST(Lora, TargetsMatchLastNameComponents) {
  const std::vector<std::string> targets{"to_q", "to_out.0", "ff.net.2"};
  EXPECT_TRUE(lora_targets("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", targets));
  EXPECT_TRUE(lora_targets("mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0", targets));
  EXPECT_TRUE(lora_targets("a.ff.net.2", targets));
  EXPECT_TRUE(lora_targets("to_q", targets));
  EXPECT_FALSE(lora_targets("a.to_qk", targets));
  EXPECT_FALSE(lora_targets("a.xto_q", targets));
  EXPECT_FALSE(lora_targets("a.off.net.2", targets));
  EXPECT_FALSE(lora_targets("a.to_out", targets));
}

TEST(Lora, FreshAdaptersLeaveOutputAndStateDictUnchanged) {
  Tiny tiny(0);
  const at::Tensor before = tiny.forward();
  const TensorMap base = module_state(*tiny.unet);
  at::Generator g = generator(1);
  LoraAdapters adapters = add_lora(*tiny.unet, LoraConfig{}, g);
  ASSERT_EQ(adapters.modules.size(), 32u);  // 4 transformer blocks × 2 attentions × 4 projections
  for (const auto& m : adapters.modules) {
    EXPECT_TRUE(lora_targets(m.name, adapters.config.target_modules)) << m.name;
    EXPECT_EQ(m.adapter->A.size(0), 16);
    EXPECT_EQ(m.adapter->A.size(1), m.linear->weight.size(1));
    EXPECT_EQ(m.adapter->B.sizes(), (at::IntArrayRef{m.linear->weight.size(0), 16}));
    EXPECT_TRUE(m.adapter->B.eq(0).all().item<bool>());
    EXPECT_GT(m.adapter->A.abs().max().item<float>(), 0.0f);
    EXPECT_LE(m.adapter->A.abs().max().item<double>(), 1.0001 / std::sqrt(static_cast<double>(m.adapter->A.size(1))));
  }
  EXPECT_TRUE(at::equal(tiny.forward(), before));
  // The adapters are not parameters: the state dict has exactly the base keys, and base weights load strictly.
  EXPECT_EQ(keys(module_state(*tiny.unet)), keys(base));
  EXPECT_NO_THROW(load_module_weights(*tiny.unet, base, "base"));
  EXPECT_TRUE(throws_error_containing([&] { add_lora(*tiny.unet, LoraConfig{}, g); }, "already has an adapter"));
  LoraConfig nothing;
  nothing.target_modules = {"no_such_layer"};
  EXPECT_TRUE(throws_error_containing([&] { add_lora(*tiny.unet, nothing, g); }, "no Linear module matches"));
}

TEST(Lora, MergedAndUnmergedOutputsMatch) {
  Tiny tiny(0);
  const at::Tensor base_output = tiny.forward();
  const TensorMap base = module_state(*tiny.unet);
  std::map<std::string, at::Tensor> base_copy;
  for (const auto& [k, v] : base) base_copy[k] = v.clone();
  at::Generator g = generator(1);
  LoraAdapters adapters = add_lora(*tiny.unet, LoraConfig{}, g);
  randomize_b(adapters, 2);
  const at::Tensor adapted = tiny.forward();
  ASSERT_FALSE(at::allclose(adapted, base_output, 1e-4, 1e-4));  // the adapters do something
  merge_lora(adapters);
  for (const auto& m : adapters.modules) EXPECT_EQ(m.linear->lora, nullptr);
  EXPECT_TRUE(at::allclose(tiny.forward(), adapted, 1e-5, 1e-5));
  EXPECT_TRUE(throws_error_containing([&] { merge_lora(adapters); }, "already merged"));
  unmerge_lora(adapters);
  EXPECT_TRUE(at::allclose(tiny.forward(), adapted, 1e-5, 1e-5));
  for (const auto& [k, v] : module_state(*tiny.unet)) EXPECT_TRUE(at::allclose(v, base_copy.at(k), 1e-6, 1e-6)) << k;
}

TEST(Lora, BypassComputesTheBaseModelAndRestoresTheAdapters) {
  Tiny tiny(0);
  const at::Tensor base_output = tiny.forward();
  at::Generator g = generator(1);
  LoraAdapters adapters = add_lora(*tiny.unet, LoraConfig{}, g);
  randomize_b(adapters, 2);
  const at::Tensor adapted = tiny.forward();
  ASSERT_FALSE(at::allclose(adapted, base_output, 1e-4, 1e-4));
  {
    LoraBypass bypass(adapters);
    EXPECT_TRUE(at::equal(tiny.forward(), base_output));  // bit-exact: the adapters are simply not run
  }
  EXPECT_TRUE(at::equal(tiny.forward(), adapted));
  for (const auto& m : adapters.modules) EXPECT_EQ(m.linear->lora, m.adapter);
}

TEST(Lora, ScaleIsAlphaOverRank) {
  Tiny tiny(0);
  at::Generator g = generator(1);
  LoraConfig config;
  config.rank = 4;
  config.alpha = 10;  // scale 2.5
  LoraAdapters adapters = add_lora(*tiny.unet, config, g);
  randomize_b(adapters, 2);
  const LoraModule& m = adapters.modules.at(3);
  ASSERT_TRUE(lora_targets(m.name, {"to_out.0"})) << m.name;  // has a bias
  const at::Tensor x = at::randn({3, m.linear->weight.size(1)});
  const at::Tensor& W = m.linear->weight;
  const at::Tensor& A = m.adapter->A;
  const at::Tensor& B = m.adapter->B;
  const at::Tensor expected = at::matmul(x, W.t()) + m.linear->bias + 2.5 * at::matmul(at::matmul(x, A.t()), B.t());
  EXPECT_DOUBLE_EQ(m.adapter->scale(), 2.5);
  EXPECT_TRUE(at::allclose(m.linear->forward(x), expected, 1e-5, 1e-5));
}

TEST(Lora, OneAdamWStepChangesOnlyLoraParameters) {
  Tiny tiny(0);
  at::Generator g = generator(1);
  LoraAdapters adapters = add_lora(*tiny.unet, LoraConfig{}, g);
  randomize_b(adapters, 2);  // with B = 0 the gradient of A would be zero
  freeze_base(*tiny.unet);
  std::map<std::string, at::Tensor> base_before, lora_before;
  for (const auto& [k, v] : module_state(*tiny.unet)) base_before[k] = v.clone();
  const auto trainable = lora_parameters(adapters);
  ASSERT_EQ(trainable.size(), 64u);
  for (const auto& [k, v] : trainable) lora_before[k] = v.detach().clone();
  AdamWOptions options;
  options.lr = 1e-2;
  options.weight_decay = 0.01;
  AdamW optimizer(trainable, options);
  tiny.forward().square().mean().backward();
  optimizer.step();
  for (const auto& [k, v] : module_state(*tiny.unet)) {
    EXPECT_TRUE(at::equal(v, base_before.at(k))) << k;
    EXPECT_FALSE(v.grad().defined()) << k;
  }
  for (const auto& [k, v] : trainable) EXPECT_FALSE(at::equal(v, lora_before.at(k))) << k;
}

TEST(Lora, DropoutOnlyInTrainingFromTheGivenGenerator) {
  Tiny tiny(0);
  at::Generator g = generator(1);
  LoraConfig config;
  config.dropout = 0.5;
  LoraAdapters adapters = add_lora(*tiny.unet, config, g);
  randomize_b(adapters, 2);
  tiny.unet->eval();
  const at::Tensor eval_output = tiny.forward();
  EXPECT_TRUE(at::equal(tiny.forward(), eval_output));
  tiny.unet->train();
  const auto state = g.get_state();
  const at::Tensor first = tiny.forward();
  EXPECT_FALSE(at::allclose(first, eval_output, 1e-4, 1e-4));
  g.set_state(state);  // same generator state, same masks
  EXPECT_TRUE(at::equal(tiny.forward(), first));
}

TEST(Lora, SaveLoadRoundTripInPeftNaming) {
  TempDir dir;
  const std::string path = dir.file("lora.safetensors");
  Tiny tiny(0);
  at::Generator g = generator(1);
  LoraAdapters adapters = add_lora(*tiny.unet, LoraConfig{}, g);
  randomize_b(adapters, 2);
  save_lora(path, adapters);

  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.tensors().size(), 64u);
  EXPECT_EQ(file.info("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight").shape,
            (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(file.info("unet.up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k.lora_B.weight").shape,
            (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(file.metadata().at("format"), "rewardgen-lora-peft");
  EXPECT_EQ(file.metadata().at("lora_rank"), "16");
  EXPECT_EQ(file.metadata().at("lora_alpha"), "32");

  Tiny other(5);
  at::Generator g2 = generator(7);
  LoraConfig config;
  config.alpha = 3;  // replaced by the file's alpha
  LoraAdapters loaded = add_lora(*other.unet, config, g2);
  load_lora(path, loaded);
  ASSERT_EQ(loaded.modules.size(), adapters.modules.size());
  for (size_t i = 0; i < loaded.modules.size(); ++i) {
    EXPECT_EQ(loaded.modules[i].name, adapters.modules[i].name);
    EXPECT_TRUE(at::equal(loaded.modules[i].adapter->A, adapters.modules[i].adapter->A));
    EXPECT_TRUE(at::equal(loaded.modules[i].adapter->B, adapters.modules[i].adapter->B));
    EXPECT_EQ(loaded.modules[i].adapter->alpha, 32);
    EXPECT_TRUE(loaded.modules[i].adapter->A.requires_grad());
  }
}

TEST(Lora, ReadsKohyaNaming) {
  TempDir dir;
  Tiny tiny(0);
  at::Generator g = generator(1);
  LoraConfig config;
  config.rank = 4;
  config.alpha = 4;
  LoraAdapters adapters = add_lora(*tiny.unet, config, g);
  randomize_b(adapters, 2);
  TensorMap kohya;
  for (const auto& m : adapters.modules) {
    std::string stem = "lora_unet_" + m.name;
    std::replace(stem.begin(), stem.end(), '.', '_');
    kohya[stem + ".lora_down.weight"] = m.adapter->A.detach().to(at::kHalf).to(at::kFloat);
    kohya[stem + ".lora_up.weight"] = m.adapter->B.detach().to(at::kHalf).to(at::kFloat);
    kohya[stem + ".alpha"] = at::scalar_tensor(2.0);
  }
  ASSERT_TRUE(kohya.count("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight"));
  ASSERT_TRUE(kohya.count("lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_out_0.alpha"));
  save_safetensors(dir.file("kohya.safetensors"), kohya);

  Tiny other(5);
  at::Generator g2 = generator(7);
  LoraAdapters loaded = add_lora(*other.unet, config, g2);
  load_lora(dir.file("kohya.safetensors"), loaded);
  for (size_t i = 0; i < loaded.modules.size(); ++i) {
    std::string stem = "lora_unet_" + loaded.modules[i].name;
    std::replace(stem.begin(), stem.end(), '.', '_');
    EXPECT_TRUE(at::equal(loaded.modules[i].adapter->A, kohya.at(stem + ".lora_down.weight")));
    EXPECT_TRUE(at::equal(loaded.modules[i].adapter->B, kohya.at(stem + ".lora_up.weight")));
    EXPECT_DOUBLE_EQ(loaded.modules[i].adapter->scale(), 0.5);
  }
}

TEST(Lora, LoadErrorsNameTheKey) {
  TempDir dir;
  Tiny tiny(0);
  at::Generator g = generator(1);
  LoraConfig config;
  config.rank = 4;
  LoraAdapters adapters = add_lora(*tiny.unet, config, g);
  TensorMap good;
  for (const auto& [k, v] : lora_parameters(adapters)) good[k] = v.detach().clone();
  const std::string q = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";
  ASSERT_TRUE(good.count(q + ".lora_A.weight"));
  EXPECT_NO_THROW(load_lora_tensors(good, {}, "ok.safetensors", adapters));
  EXPECT_EQ(adapters.modules[0].adapter->alpha, 4);  // no alpha in the file: alpha = rank, as diffusers

  TensorMap unknown = good;
  unknown["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_x.lora_A.weight"] = at::zeros({4, 32});
  EXPECT_TRUE(throws_error_containing([&] { load_lora_tensors(unknown, {}, "f.safetensors", adapters); },
                                      "f.safetensors: LoRA tensor 'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_x.lora_A.weight' names no adapted module"));
  TensorMap stray = good;
  stray["unet.conv_in.weight"] = at::zeros({1});
  EXPECT_TRUE(throws_error_containing([&] { load_lora_tensors(stray, {}, "f.safetensors", adapters); },
                                      "'unet.conv_in.weight' is not a LoRA tensor"));
  TensorMap shape = good;
  shape[q + ".lora_A.weight"] = at::zeros({4, 33});
  EXPECT_TRUE(throws_error_containing([&] { load_lora_tensors(shape, {}, "f.safetensors", adapters); },
                                      "'" + q + ".lora_A.weight' has shape [4, 33], the module expects [4, 32]"));
  TensorMap missing = good;
  missing.erase(q + ".lora_B.weight");
  EXPECT_TRUE(throws_error_containing([&] { load_lora_tensors(missing, {}, "f.safetensors", adapters); },
                                      "missing LoRA tensors for module 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q'"));
  // A rank-8 file into rank-4 adapters.
  at::Generator g8 = generator(3);
  Tiny other(5);
  LoraConfig rank8;
  rank8.rank = 8;
  LoraAdapters adapters8 = add_lora(*other.unet, rank8, g8);
  save_lora(dir.file("r8.safetensors"), adapters8);
  const std::string path8 = dir.file("r8.safetensors");
  EXPECT_TRUE(throws_error_containing([&] { load_lora(path8, adapters); },
                                      path8 + ": LoRA tensor '" + q + ".lora_A.weight' has rank 8, the adapter has rank 4"));
  EXPECT_TRUE(throws_error_containing([&] { load_lora_tensors(good, {{"lora_rank", "8"}}, "f.safetensors", adapters); },
                                      "metadata 'lora_rank' = 8, the adapters have rank 4"));
  // A failed load leaves the adapters untouched.
  EXPECT_TRUE(at::equal(adapters.modules[0].adapter->A, good.at(q + ".lora_A.weight")));
}

}  // namespace
}  // namespace rewardgen
