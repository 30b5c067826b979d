#pragma once
// A mutation fuzzer for builds without libFuzzer (g++, the CI): each seed of the corpus as it is,
// then inputs made from them by bit flips, interesting bytes and 64-bit lengths, insertions,
// deletions, repeated chunks, splices of two seeds and number-like tokens, through the target.
// Deterministic for a seed: a crash reproduces by running again with the same seed.
#include <cstdint>
#include <string>
#include <vector>

#include "harnesses.h"

namespace rewardgen::fuzz {

struct MutationOptions {
  uint64_t seed = 1;
  int64_t max_inputs = 0;     // 0: until `seconds` pass
  double seconds = 10;        // ignored when max_inputs > 0
  size_t max_size = 1 << 20;  // mutants are cut to this many bytes
};

struct MutationStats {
  int64_t inputs = 0;
  double seconds = 0;
};

// Every regular file of `dir`, in name order; Error when there is none.
std::vector<std::string> read_corpus(const std::string& dir);

// `seeds` must not be empty.
MutationStats run_mutations(TargetFunction target, const std::vector<std::string>& seeds, const MutationOptions& options);

}  // namespace rewardgen::fuzz
