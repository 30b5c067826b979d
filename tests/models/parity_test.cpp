// Numerical parity with diffusers 0.30.3 / transformers 4.42 on small random configurations
// (tests/data/parity, made by tools/make_parity_fixtures.py; see its README): every parameter
// perturbed, mixed block types, per-block heads, LCM's time_cond_proj_dim, freq_shift, linear
// projections, upcast attention, odd latent sizes, both pooled-output rules.
// Criterion: fp32 max |ours − reference| ≤ 1e-4 · max |reference|.
#include <gtest/gtest.h>

#include <sstream>

#include "core/log.h"
#include "models/component_forward.h"

namespace rewardgen {
namespace {

class Parity : public ::testing::TestWithParam<std::string> {};

TEST_P(Parity, MatchesTheReferenceImplementation) {
  const std::string dir = std::string(REWARDGEN_TEST_DATA) + "/parity/" + GetParam();
  std::ostringstream sink;
  const Logger log(LogLevel::warn, sink);
  const TensorMap inputs = SafetensorsFile::open(dir + "/inputs.safetensors").load_all();
  const TensorMap expected = SafetensorsFile::open(dir + "/outputs.safetensors").load_all();
  const TensorMap actual = forward_component(dir, inputs, LoadOptions{}, log);
  EXPECT_EQ(sink.str(), "") << "the reference config.json produced warnings";
  ASSERT_EQ(actual.size(), expected.size());
  for (const auto& [name, reference] : expected) {
    ASSERT_TRUE(actual.count(name)) << name;
    ASSERT_EQ(actual.at(name).sizes(), reference.sizes()) << name;
    const double scale = reference.abs().max().item<double>();
    const double error = (actual.at(name) - reference).abs().max().item<double>();
    EXPECT_LE(error, 1e-4 * scale) << GetParam() << " output '" << name << "': max error " << error << ", scale " << scale;
  }
}

INSTANTIATE_TEST_SUITE_P(DiffusersAndTransformers, Parity,
                         ::testing::Values("unet_mixed", "unet_sd_like", "vae", "clip_text", "clip_text_gelu", "clip_vision"));

}  // namespace
}  // namespace rewardgen
