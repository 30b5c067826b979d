#include "sampling/text_to_image.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "io/atomic_file.h"
#include "io/image.h"
#include "sampling/pipeline.h"
#include "schedulers/timesteps.h"
#include "test_util.h"
#include "tiny_models.h"

namespace rewardgen {
namespace {

using testing::TempDir;
using testing::tiny_pipeline;
using testing::write_tiny_tokenizer;

at::Tensor run(const TextToImage& t2i, SamplerOptions o, uint64_t seed, int64_t* nfe = nullptr) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  return t2i.generate({"ab c", "abc"}, o, g, nullptr, nfe);
}

TEST(TextToImage, SamplersAreSeededCountTheirNetworkCallsAndStayInRange) {
  TempDir tmp;
  write_tiny_tokenizer(tmp.file("tok"));
  const TextToImage t2i(tiny_pipeline(tmp.file("tok")), ClipTokenizer::from_directory(tmp.file("tok")));
  SamplerOptions o;
  o.steps = 3;
  int64_t nfe = 0;
  const at::Tensor a = run(t2i, o, 1, &nfe);
  EXPECT_EQ(a.sizes(), (at::IntArrayRef{2, 3, 8, 8}));  // latent 4×4, VAE factor 2
  EXPECT_EQ(nfe, 6);                                    // CFG: two calls per step
  EXPECT_LE(a.abs().max().item<float>(), 1.0f);
  EXPECT_TRUE(at::equal(a, run(t2i, o, 1)));
  EXPECT_FALSE(at::allclose(a, run(t2i, o, 2)));
  o.guidance_scale = 1.0;
  nfe = 0;
  run(t2i, o, 1, &nfe);
  EXPECT_EQ(nfe, 3);  // no guidance: one call per step
  for (const char* sampler : {"ddpm", "lcm", "onestep"}) {
    o.sampler = sampler;
    EXPECT_TRUE(at::isfinite(run(t2i, o, 3)).all().item<bool>()) << sampler;
  }
  o.sampler = "euler";
  EXPECT_TRUE(testing::throws_error_containing([&] { run(t2i, o, 1); }, "unknown sampler 'euler'"));
}

TEST(TextToImage, OneStepIsTheX0PredictionAtTheLastTimestepDecoded) {
  TempDir tmp;
  write_tiny_tokenizer(tmp.file("tok"));
  const Pipeline p = tiny_pipeline(tmp.file("tok"));
  const TextToImage t2i(p, ClipTokenizer::from_directory(tmp.file("tok")));
  SamplerOptions o;
  o.sampler = "onestep";
  o.guidance_scale = 1.0;
  const at::Tensor images = run(t2i, o, 5);
  // By hand: x_T from the same generator, ε̂ = UNet(x_T, 999, c), x̂₀ = (x_T − √(1−ᾱ) ε̂)/√ᾱ, decode(x̂₀ / 0.5).
  at::NoGradGuard no_grad;
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor x = at::randn({2, 4, 4, 4}, g, at::kFloat);
  const at::Tensor eps = p.unet->forward(x, at::full({2}, 999, at::kLong), t2i.encode_prompts({"ab c", "abc"}));
  const double ab = make_noise_schedule().alpha_bar(999);
  const at::Tensor x0 = (x - std::sqrt(1 - ab) * eps) / std::sqrt(ab);
  EXPECT_TRUE(at::allclose(images, p.vae->decode(x0 / 0.5).clamp(-1, 1), 1e-5, 1e-5));
}

TEST(TextToImage, LcmUnetsTakeGuidanceThroughTheirEmbeddingInOneCall) {
  TempDir tmp;
  write_tiny_tokenizer(tmp.file("tok"));
  const TextToImage t2i(tiny_pipeline(tmp.file("tok"), 8), ClipTokenizer::from_directory(tmp.file("tok")));
  SamplerOptions o;
  o.sampler = "lcm";
  o.steps = 4;
  o.guidance_scale = 8.0;
  int64_t nfe = 0;
  const at::Tensor w8 = run(t2i, o, 1, &nfe);
  EXPECT_EQ(nfe, 4);
  o.guidance_scale = 2.0;
  EXPECT_FALSE(at::allclose(w8, run(t2i, o, 1)));  // w reaches the network
}

// Also leaves a tiny pipeline folder for the CLI test of `rewardgen sample` (tests/CMakeLists.txt).
TEST(TextToImage, WritesTheTinyPipelineFixture) {
  const std::string dir = std::string(REWARDGEN_TEST_OUTPUT) + "/tiny_pipeline";
  write_tiny_tokenizer(dir + "/tokenizer_src");
  save_pipeline(dir, tiny_pipeline(dir + "/tokenizer_src"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/model_index.json"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/tokenizer/merges.txt"));
}

TEST(Image, PngRoundTripIsExactAtEightBitsAndGridsPlaceImages) {
  TempDir tmp;
  at::manual_seed(0);
  const at::Tensor image = at::rand({3, 5, 7}) * 2 - 1;
  save_png(tmp.file("x.png"), image);
  const at::Tensor back = load_png(tmp.file("x.png"));
  EXPECT_EQ(back.sizes(), image.sizes());
  EXPECT_TRUE(at::equal(to_rgb8(back), to_rgb8(image)));          // lossless at 8 bits
  EXPECT_LE((back - image).abs().max().item<float>(), 1.0f / 127.5f);  // within one quantisation step
  const at::Tensor grid = make_grid(at::stack({image, -image, image}), 2, 1, 0.0);
  EXPECT_EQ(grid.sizes(), (at::IntArrayRef{3, 2 * (5 + 1) + 1, 2 * (7 + 1) + 1}));
  EXPECT_TRUE(at::equal(grid.slice(1, 1, 6).slice(2, 9, 16), -image));  // second image: row 0, column 1
  EXPECT_TRUE(at::equal(grid.slice(1, 7, 12).slice(2, 1, 8), image));   // third: row 1, column 0
  EXPECT_TRUE(testing::throws_error_containing([&] { load_png(tmp.file("missing.png")); }, "cannot read PNG"));
}

}  // namespace
}  // namespace rewardgen

namespace rewardgen {
namespace {

// A pipeline loaded in bf16 (sample/eval --precision bf16): the sampler state stays fp32, the
// images come out fp32, and they are close to the fp32 pipeline's for the same seed.
TEST(TextToImage, Bf16PipelineGivesFp32ImagesCloseToFp32) {
  testing::TempDir tmp;
  testing::write_tiny_tokenizer(tmp.file("tok"));
  const Pipeline full = testing::tiny_pipeline(tmp.file("tok"));
  Pipeline low = testing::tiny_pipeline(tmp.file("tok"));  // the same seed-0 weights
  low.unet->to(at::kBFloat16);
  low.vae->to(at::kBFloat16);
  low.text_encoder->to(at::kBFloat16);
  SamplerOptions o;
  o.steps = 3;
  const auto images = [&](const Pipeline& p) {
    const TextToImage t2i(p, ClipTokenizer::from_directory(tmp.file("tok")));
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
    return t2i.generate({"ab c", "abc"}, o, g);
  };
  const at::Tensor a = images(full), b = images(low);
  EXPECT_EQ(b.scalar_type(), at::kFloat);
  EXPECT_TRUE(b.isfinite().all().item<bool>());
  const double relative = (a - b).norm().item<double>() / a.norm().item<double>();
  EXPECT_LT(relative, 0.1);
  EXPECT_GT(relative, 0.0) << "the bf16 pipeline must really compute in bf16";
}

}  // namespace
}  // namespace rewardgen
