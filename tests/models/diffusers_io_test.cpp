#include "models/diffusers_io.h"
#include "sampling/pipeline.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "core/log.h"
#include "core/paths.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "tiny_models.h"

namespace rewardgen {
namespace {

using testing::TempDir;
using testing::throws_error_containing;
using testing::tiny_pipeline;

void expect_same_weights(const torch::nn::Module& a, const torch::nn::Module& b) {
  const TensorMap sa = module_state(a), sb = module_state(b);
  ASSERT_EQ(sa.size(), sb.size());
  for (const auto& [name, t] : sa) EXPECT_TRUE(at::equal(t, sb.at(name))) << name;
}

TEST(DiffusersIo, ATinyPipelineRoundTrips) {
  TempDir tmp;
  write_file_atomic(tmp.file("vocab.json"), "{}");  // any tokenizer folder content is copied verbatim
  Pipeline p = tiny_pipeline(tmp.path());
  p.scheduler.prediction_type = PredictionType::v_prediction;
  save_pipeline(tmp.file("pipe"), p);
  for (const char* f : {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                        "vae/config.json", "text_encoder/model.safetensors", "scheduler/scheduler_config.json",
                        "tokenizer/vocab.json"})
    EXPECT_TRUE(std::filesystem::exists(tmp.file(std::string("pipe/") + f))) << f;
  std::ostringstream sink;
  const Logger log(LogLevel::warn, sink);
  const Pipeline q = load_pipeline(tmp.file("pipe"), LoadOptions{}, log);
  EXPECT_EQ(sink.str(), "") << "our own configs must load without warnings";
  expect_same_weights(*p.unet, *q.unet);
  expect_same_weights(*p.vae, *q.vae);
  expect_same_weights(*p.text_encoder, *q.text_encoder);
  EXPECT_EQ(q.scheduler.prediction_type, PredictionType::v_prediction);
  // Same outputs, and saving the loaded pipeline again gives the same bytes.
  at::NoGradGuard no_grad;
  const at::Tensor x = at::randn({1, 4, 8, 8}), ctx = at::randn({1, 3, 16});
  EXPECT_TRUE(at::equal(p.unet->forward(x, at::tensor({5}), ctx), q.unet->forward(x, at::tensor({5}), ctx)));
  save_pipeline(tmp.file("again"), q);
  EXPECT_EQ(read_text_file(tmp.file("pipe/unet/diffusion_pytorch_model.safetensors")),
            read_text_file(tmp.file("again/unet/diffusion_pytorch_model.safetensors")));
}

TEST(DiffusersIo, HalfPrecisionFilesLoadIntoTheComputeDtype) {
  TempDir tmp;
  const Pipeline p = tiny_pipeline("");
  save_unet(tmp.file("unet"), *p.unet, at::kHalf);
  EXPECT_EQ(SafetensorsFile::open(tmp.file("unet/diffusion_pytorch_model.safetensors")).info("conv_in.weight").dtype, at::kHalf);
  std::ostringstream sink;
  const auto unet = load_unet(tmp.file("unet"), LoadOptions{}, Logger(LogLevel::warn, sink));
  EXPECT_EQ(unet->conv_in->weight.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::allclose(unet->conv_in->weight, p.unet->conv_in->weight, 1e-3, 1e-3));
}

TEST(DiffusersIo, MissingUnexpectedAndMisShapedTensorsAreNamed) {
  TempDir tmp;
  const Pipeline p = tiny_pipeline("");
  save_unet(tmp.file("unet"), *p.unet);
  const std::string weights = tmp.file("unet/diffusion_pytorch_model.safetensors");
  std::ostringstream sink;
  const Logger log(LogLevel::warn, sink);
  TensorMap tensors = SafetensorsFile::open(weights).load_all();
  for (auto& [name, t] : tensors) t = t.clone();  // detach from the mapping before rewriting the file
  auto rewrite = [&](const TensorMap& m) { save_safetensors(weights, m); };

  TensorMap missing = tensors;
  missing.erase("conv_out.bias");
  rewrite(missing);
  EXPECT_TRUE(throws_error_containing([&] { load_unet(tmp.file("unet"), {}, log); }, "missing tensors 'conv_out.bias'"));
  TensorMap extra = tensors;
  extra["conv_out.lora_A"] = at::zeros({1});
  rewrite(extra);
  EXPECT_TRUE(throws_error_containing([&] { load_unet(tmp.file("unet"), {}, log); }, "unexpected tensors 'conv_out.lora_A'"));
  TensorMap wrong = tensors;
  wrong["conv_in.weight"] = at::zeros({32, 4, 1, 1});
  rewrite(wrong);
  EXPECT_TRUE(throws_error_containing([&] { load_unet(tmp.file("unet"), {}, log); },
                                      "tensor 'conv_in.weight' has shape [32, 4, 1, 1], the model expects [32, 4, 3, 3]"));
  std::filesystem::remove(weights);
  EXPECT_TRUE(throws_error_containing([&] { load_unet(tmp.file("unet"), {}, log); }, "holds no weights"));
  EXPECT_TRUE(throws_error_containing([&] { load_vae(tmp.file("unet"), {}, log); }, "expected an AutoencoderKL, found UNet2DConditionModel"));
  EXPECT_TRUE(throws_error_containing([&] { load_unet(tmp.file("nowhere"), {}, log); }, "has no config.json"));
}

TEST(DiffusersIo, ShardedWeightsStayInsideTheModelFolder) {
  TempDir dir;
  const std::string component = dir.file("unet");
  std::filesystem::create_directories(component);
  save_safetensors(component + "/part-1.safetensors", {{"a", at::ones({2})}});
  save_safetensors(dir.file("outside.safetensors"), {{"b", at::ones({2})}});
  const std::string index = component + "/diffusion_pytorch_model.safetensors.index.json";
  write_file_atomic(index, R"({"weight_map": {"a": "part-1.safetensors"}})");
  EXPECT_EQ(read_component_weights(component).count("a"), 1u);
  for (const char* shard : {"../outside.safetensors", "/etc/passwd", "..", ""}) {
    write_file_atomic(index, str(R"({"weight_map": {"a": "part-1.safetensors", "b": ")", shard, R"("}})"));
    EXPECT_TRUE(throws_error_containing([&] { read_component_weights(component); }, "not a file of the model folder")) << shard;
  }
}

TEST(DiffusersIo, ModelInfoCountsFromTheConfigAlone) {
  std::ostringstream sink;
  const ComponentSummary s = summarize_component(std::string(REWARDGEN_TEST_DATA) + "/parity/clip_text", Logger(LogLevel::warn, sink));
  EXPECT_EQ(s.kind, ComponentKind::clip_text_projection);
  // vocab 100·32 + positions 16·32 + 2 layers × (4·(32·32+32) + 32·37+37 + 37·32+32 + 2·64) + final LN 64 + projection 32·20
  EXPECT_EQ(s.parameters, 100 * 32 + 16 * 32 + 2 * (4 * (32 * 32 + 32) + 32 * 37 + 37 + 37 * 32 + 32 + 2 * 64) + 64 + 32 * 20);
}

}  // namespace
}  // namespace rewardgen
