#include "mutator.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "io/atomic_file.h"

namespace rewardgen::fuzz {
namespace {

using Rng = std::mt19937_64;

size_t below(Rng& rng, size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % n); }

void put_u64_le(std::string& s, size_t at, uint64_t v) {
  for (int i = 0; i < 8 && at + i < s.size(); ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// One random edit of `s`; `other` is another seed for splices.
void mutate_once(std::string& s, const std::string& other, Rng& rng) {
  static const char kBytes[] = {0, 1, 0x7f, static_cast<char>(0x80), static_cast<char>(0xff), '"', '{', '}', '[', ']', ',', ':', '\n'};
  static const uint64_t kLengths[] = {0, 1, 0x7fffffffULL, 0x80000000ULL, 0xffffffffULL, 1ULL << 40, 0x7fffffffffffffffULL, ~0ULL};
  static const char* kTokens[] = {"-1", "0", "1e308", "-1e308", "nan", "null", "true", "[]", "{}", "\"\"", "4294967296",
                                  "18446744073709551616", "\xe2\x80\x8b", "\xf0\x9f\x98\x80", "\xc3", "&amp;", "<|endoftext|>"};
  switch (below(rng, 8)) {
    case 0:  // flip a bit
      if (!s.empty()) s[below(rng, s.size())] ^= static_cast<char>(1 << below(rng, 8));
      break;
    case 1:  // an interesting byte
      if (!s.empty()) s[below(rng, s.size())] = kBytes[below(rng, sizeof kBytes)];
      break;
    case 2: {  // insert random bytes
      std::string bytes(1 + below(rng, 8), '\0');
      for (char& c : bytes) c = static_cast<char>(rng());
      s.insert(below(rng, s.size() + 1), bytes);
      break;
    }
    case 3:  // delete a range
      if (!s.empty()) {
        const size_t at = below(rng, s.size());
        s.erase(at, 1 + below(rng, std::min<size_t>(s.size() - at, 64)));
      }
      break;
    case 4:  // repeat a chunk
      if (!s.empty()) {
        const size_t at = below(rng, s.size()), n = 1 + below(rng, std::min<size_t>(s.size() - at, 256));
        const std::string chunk = s.substr(at, n);
        for (size_t k = 1 + below(rng, 16); k > 0; --k) s.insert(at, chunk);
      }
      break;
    case 5:  // splice with another seed
      if (!other.empty()) s = s.substr(0, below(rng, s.size() + 1)) + other.substr(below(rng, other.size()));
      break;
    case 6:  // an interesting 64-bit length (safetensors' header size, zip offsets, ...)
      if (s.size() >= 8) put_u64_le(s, below(rng, s.size() - 7), kLengths[below(rng, sizeof kLengths / sizeof *kLengths)]);
      break;
    default: {  // a number-like or special token
      const char* token = kTokens[below(rng, sizeof kTokens / sizeof *kTokens)];
      s.insert(below(rng, s.size() + 1), token);
      break;
    }
  }
}

}  // namespace

std::vector<std::string> read_corpus(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw Error(str("fuzz corpus '", dir, "' is not a folder"));
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error(str("fuzz corpus '", dir, "' holds no file"));
  std::vector<std::string> seeds;
  for (const std::string& f : files) seeds.push_back(read_text_file(f));
  return seeds;
}

MutationStats run_mutations(TargetFunction target, const std::vector<std::string>& seeds, const MutationOptions& o) {
  if (seeds.empty()) throw Error("run_mutations: no seed inputs");
  Rng rng(o.seed);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  auto more = [&](int64_t done) { return o.max_inputs > 0 ? done < o.max_inputs : elapsed() < o.seconds; };
  MutationStats stats;
  auto run = [&](const std::string& input) {
    target(reinterpret_cast<const uint8_t*>(input.data()), input.size());
    ++stats.inputs;
  };
  for (const std::string& seed : seeds) run(seed);
  while (more(stats.inputs)) {
    std::string input = seeds[below(rng, seeds.size())];
    const std::string& other = seeds[below(rng, seeds.size())];
    for (size_t edits = 1 + below(rng, 4); edits > 0; --edits) mutate_once(input, other, rng);
    if (input.size() > o.max_size) input.resize(o.max_size);
    run(input);
  }
  stats.seconds = elapsed();
  return stats;
}

}  // namespace rewardgen::fuzz
