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

}  // namespace
}  // namespace rewardgen
