// The CI's smoke run of every fuzz target (fuzz/harnesses.h): its seed corpus, then mutants for a
// few seconds, under the mutation driver; a crash or a foreign exception fails the test binary.
// The long runs (10^6 inputs a target, ASan + UBSan, libFuzzer) are scripts/fuzz.sh's.
#include <gtest/gtest.h>

#include <cstdlib>
#include <ostream>
#include <string>

#include "harnesses.h"
#include "mutator.h"

namespace rewardgen {
namespace fuzz {
void PrintTo(const Target& target, std::ostream* out) { *out << target.name; }  // GoogleTest's name for a parameter
}  // namespace fuzz

namespace {

class FuzzSmoke : public ::testing::TestWithParam<fuzz::Target> {};

double smoke_seconds() {
  const char* text = std::getenv("REWARDGEN_FUZZ_SECONDS");
  const double seconds = text == nullptr ? 10.0 : std::strtod(text, nullptr);
  return seconds > 0 && seconds < 1e6 ? seconds : 10.0;
}

TEST_P(FuzzSmoke, SeedsAndMutantsEndCleanly) {
  const std::vector<std::string> seeds = fuzz::read_corpus(std::string(REWARDGEN_FUZZ_CORPUS) + "/" + GetParam().name);
  fuzz::MutationOptions options;
  options.seconds = smoke_seconds();
  const fuzz::MutationStats stats = fuzz::run_mutations(GetParam().run, seeds, options);
  EXPECT_GT(stats.inputs, static_cast<int64_t>(seeds.size()));
  std::printf("%s: %lld inputs in %.1f s\n", GetParam().name.c_str(), static_cast<long long>(stats.inputs), stats.seconds);
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzSmoke, ::testing::ValuesIn(fuzz::targets()),
                         [](const ::testing::TestParamInfo<fuzz::Target>& info) { return info.param.name; });

TEST(FuzzMutator, IsDeterministicForASeedAndRunsTheSeedsFirst) {
  static std::vector<std::string> seen;
  seen.clear();
  const fuzz::TargetFunction record = [](const uint8_t* data, size_t size) { seen.emplace_back(reinterpret_cast<const char*>(data), size); };
  fuzz::MutationOptions options;
  options.max_inputs = 200;
  fuzz::run_mutations(record, {"alpha", "{\"k\": [1, 2]}"}, options);
  ASSERT_EQ(seen.size(), 200u);
  EXPECT_EQ(seen[0], "alpha");
  EXPECT_EQ(seen[1], "{\"k\": [1, 2]}");
  const std::vector<std::string> first = seen;
  seen.clear();
  fuzz::run_mutations(record, {"alpha", "{\"k\": [1, 2]}"}, options);
  EXPECT_EQ(seen, first);
  size_t changed = 0;
  for (size_t i = 2; i < first.size(); ++i) changed += first[i] != "alpha" && first[i] != "{\"k\": [1, 2]}";
  EXPECT_GT(changed, 150u);  // mutants, not copies
}

}  // namespace
}  // namespace rewardgen
