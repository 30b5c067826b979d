// Randomized mutations of a valid file: every mutant must either load cleanly or fail with a
// rewardgen::Error; nothing may crash, hang or throw anything else. Truncations must always fail
// (the data section has to be covered exactly).
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/error.h"
#include "io/safetensors.h"

namespace rewardgen {
namespace {

std::string valid_file() {
  at::manual_seed(3);
  return serialize_safetensors({{"a.weight", at::randn({4, 3})},
                                {"a.bias", at::randn({3}).to(at::kHalf)},
                                {"ids", at::arange(5)},
                                {"flags", at::tensor({1, 0}).to(at::kBool)},
                                {"empty", at::zeros({0})}},
                               {{"format", "pt"}});
}

enum class Outcome { loaded, rejected };

Outcome try_load(const std::string& bytes) {
  try {
    const SafetensorsFile file = SafetensorsFile::from_bytes(bytes, "mutant");
    double checksum = 0;
    for (const TensorInfo& t : file.tensors()) checksum += file.tensor(t.name).to(at::kDouble).sum().item<double>();
    (void)checksum;  // touching every byte makes out-of-bounds reads visible to sanitizers
    return Outcome::loaded;
  } catch (const Error&) {
    return Outcome::rejected;
  }
  // Any other exception type escapes and fails the test.
}

std::string mutate(const std::string& original, std::mt19937_64& rng, int kind) {
  std::string m = original;
  uint64_t header_length = 0;
  std::memcpy(&header_length, m.data(), 8);
  const size_t header_end = 8 + header_length;
  auto pick = [&](size_t lo, size_t hi) { return std::uniform_int_distribution<size_t>(lo, hi)(rng); };
  switch (kind) {
    case 0:  // flip 1-4 random bits in the header (most structure lives there)
      for (size_t i = 0, n = pick(1, 4); i < n; ++i) m[pick(8, header_end - 1)] ^= static_cast<char>(1u << pick(0, 7));
      break;
    case 1:  // random byte anywhere
      m[pick(0, m.size() - 1)] = static_cast<char>(pick(0, 255));
      break;
    case 2: {  // a new header length: small, near the real one, or huge
      const uint64_t choices[] = {pick(0, 16), header_length + pick(0, 16) - 8, pick(0, UINT64_MAX),
                                  uint64_t{100'000'000} + pick(0, 1)};
      const uint64_t n = choices[pick(0, 3)];
      std::memcpy(m.data(), &n, 8);
      break;
    }
    case 3:  // replace a digit of the header by another digit (offsets, shapes)
      for (int tries = 0; tries < 64; ++tries) {
        const size_t i = pick(8, header_end - 1);
        if (m[i] >= '0' && m[i] <= '9') {
          m[i] = static_cast<char>('0' + pick(0, 9));
          break;
        }
      }
      break;
    case 4:  // delete or insert a byte inside the header
      if (pick(0, 1))
        m.erase(pick(8, header_end - 1), 1);
      else
        m.insert(pick(8, header_end - 1), 1, static_cast<char>(pick(0, 255)));
      break;
    default:  // swap two header bytes
      std::swap(m[pick(8, header_end - 1)], m[pick(8, header_end - 1)]);
  }
  return m;
}

TEST(SafetensorsFuzz, EveryTruncationIsRejected) {
  const std::string original = valid_file();
  ASSERT_EQ(try_load(original), Outcome::loaded);
  for (size_t length = 0; length < original.size(); ++length)
    EXPECT_EQ(try_load(original.substr(0, length)), Outcome::rejected) << "truncated to " << length << " bytes";
}

TEST(SafetensorsFuzz, ThousandsOfMutantsLoadOrFailCleanly) {
  const std::string original = valid_file();
  std::mt19937_64 rng(12345);
  int rejected = 0, loaded = 0;
  constexpr int kMutants = 6000;
  for (int i = 0; i < kMutants; ++i) {
    const std::string mutant = mutate(original, rng, i % 6);
    (try_load(mutant) == Outcome::rejected ? rejected : loaded)++;
  }
  EXPECT_EQ(rejected + loaded, kMutants);
  // Most header mutations break the format; some (a flipped data byte) leave a valid file.
  EXPECT_GT(rejected, kMutants / 2);
  EXPECT_GT(loaded, 0);
}

}  // namespace
}  // namespace rewardgen
