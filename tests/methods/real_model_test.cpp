// R0 on a model outside the world, as a real Stable Diffusion folder is handled: a tiny random
// SD-layout pipeline, LoRA on the attention projections, a CLIP-family reward from a tiny random
// CLIPModel folder, prompts from a file. A few steps must train with finite losses, export a
// pipeline that samples with no flags, and a LoRA file that loads back.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "core/log.h"
#include "io/atomic_file.h"
#include "io/run_dir.h"
#include "methods/generator.h"
#include "methods/train_job.h"
#include "models/lora.h"
#include "sampling/pipeline.h"
#include "test_util.h"
#include "tiny_models.h"

namespace rewardgen {
namespace {

using testing::TempDir;

TEST(R0RealModel, LoraTrainsOnASdLayoutPipelineWithAClipReward) {
  TempDir tmp;
  testing::write_tiny_tokenizer(tmp.file("tokenizer_src"));
  save_pipeline(tmp.file("sd"), testing::tiny_pipeline(tmp.file("tokenizer_src")));
  write_file_atomic(tmp.file("prompts.txt"), "ab c\nabc\nc ab\n");
  const std::string clip = std::string(REWARDGEN_TEST_DATA) + "/rewards/clip_hf";
  save_json_file(tmp.file("r0.json"),
                 {{"batch_size", 2},
                  {"prompts_file", tmp.file("prompts.txt")},
                  {"rewards", {{"clip:" + clip, 1.0}}},
                  {"generator", {{"lora", true}, {"lora_rank", 4}, {"lora_alpha", 4}, {"timesteps", {999, 499}}, {"recompute", true}}},
                  {"trainer", {{"max_steps", 3}, {"eval_every", 0}, {"lr", 1e-3}}}});
  std::ostringstream quiet;
  Logger log(LogLevel::warn, quiet);
  TrainJobOptions o;
  o.config_file = tmp.file("r0.json");
  o.model_dir = tmp.file("sd");
  o.out = tmp.file("run");
  o.evaluate = false;
  const TrainJobResult result = run_train_job(o, log);
  const std::vector<nlohmann::json> rows = read_metrics(tmp.file("run/metrics.jsonl"));
  ASSERT_EQ(rows.size(), 3u);
  for (const auto& row : rows) {
    ASSERT_TRUE(row["loss"].is_number());
    EXPECT_TRUE(std::isfinite(row["loss"].get<double>()));
    EXPECT_GT(row["grad_norm"].get<double>(), 0.0);  // the adapters received gradient through the recomputed calls
  }
  // The adapters load back into a fresh copy of the base UNet, and merged they give the exported UNet.
  Pipeline base = load_pipeline(tmp.file("sd"), {}, log);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
  LoraConfig lc;
  lc.rank = 4;
  lc.alpha = 4;
  LoraAdapters adapters = add_lora(*base.unet, lc, g);
  load_lora(result.generator_dir + "/pytorch_lora_weights.safetensors", adapters);
  double trained = 0;
  for (const LoraModule& m : adapters.modules) trained += m.adapter->B.abs().sum().item<double>();
  EXPECT_GT(trained, 0.0);  // B starts at zero: a trained adapter moved
  merge_lora(adapters);
  const Pipeline exported = load_pipeline(result.generator_dir, {}, log);
  EXPECT_EQ(exported.scheduler.recipe.timesteps, (std::vector<int64_t>{999, 499}));
  const TensorMap merged = module_state(*base.unet), saved = module_state(*exported.unet);
  for (const auto& [name, t] : saved)  // exported in fp16: equal to fp16 precision
    EXPECT_TRUE(at::allclose(t.to(at::kFloat), merged.at(name), 2e-3, 2e-3)) << name;
}

// With LoRA the teacher is the trained UNet itself with its adapters bypassed: one copy of the
// weights, and the teacher still computes what the base model does after the adapters moved.
TEST(R0RealModel, LoraGeneratorKeepsOneUnetAndItsTeacherIsTheBase) {
  TempDir tmp;
  testing::write_tiny_tokenizer(tmp.file("tokenizer_src"));
  save_pipeline(tmp.file("sd"), testing::tiny_pipeline(tmp.file("tokenizer_src")));
  std::ostringstream quiet;
  Logger log(LogLevel::warn, quiet);
  GeneratorConfig config;
  config.lora = true;
  config.lora_config.rank = 4;
  config.lora_config.alpha = 4;
  config.timesteps = {999, 499};
  FewStepGenerator generator(config, tmp.file("sd"), log);
  const Pipeline trained = generator.sampling_pipeline();
  EXPECT_EQ(&generator.teacher().unet(), trained.unet.get());  // one UNet in memory

  const UNet2DConditionConfig& u = trained.unet->config();
  at::manual_seed(3);
  const at::Tensor x = at::randn({2, u.in_channels, u.sample_size, u.sample_size});
  const at::Tensor t = at::tensor({999, 499}, at::kLong);
  const at::Tensor context = at::randn({2, 5, u.cross_attention_dim[0]});
  at::NoGradGuard no_grad;
  const at::Tensor base = load_pipeline(tmp.file("sd"), {}, log).unet->forward(x, t, context);
  for (const auto& [name, tensor] : generator.trainable_parameters())
    if (name.find("lora_B") != std::string::npos) tensor.normal_(0, 0.5);  // move the adapters
  const at::Tensor adapted = trained.unet->forward(x, t, context);
  ASSERT_FALSE(at::allclose(adapted, base, 1e-4, 1e-4));
  EXPECT_TRUE(at::allclose(generator.teacher().unet().forward(x, t, context), base, 1e-6, 1e-6));
  EXPECT_TRUE(at::equal(trained.unet->forward(x, t, context), adapted));  // the adapters are back
}

}  // namespace
}  // namespace rewardgen
