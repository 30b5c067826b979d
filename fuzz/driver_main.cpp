// rewardgen_fuzz TARGET CORPUS_DIR [--runs N | --seconds S] [--seed K]: the mutation driver of
// fuzz/mutator.h for builds without libFuzzer (scripts/fuzz.sh uses libFuzzer when clang has it).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "mutator.h"

int main(int argc, char** argv) {
  using namespace rewardgen;
  try {
    if (argc < 3) throw Error("usage: rewardgen_fuzz TARGET CORPUS_DIR [--runs N | --seconds S] [--seed K]");
    const std::string name = argv[1];
    fuzz::MutationOptions options;
    for (int i = 3; i + 1 < argc; i += 2) {
      const std::string flag = argv[i];
      const double value = std::strtod(argv[i + 1], nullptr);
      if (!(value >= 1 && value <= 1e12)) throw Error(str(flag, " must be a number in [1, 1e12], got '", argv[i + 1], "'"));
      if (flag == "--runs") options.max_inputs = static_cast<int64_t>(value);
      else if (flag == "--seconds") options.seconds = value;
      else if (flag == "--seed") options.seed = static_cast<uint64_t>(value);
      else throw Error(str("unknown flag '", flag, "' (allowed: --runs, --seconds, --seed)"));
    }
    for (const fuzz::Target& target : fuzz::targets())
      if (target.name == name) {
        const fuzz::MutationStats stats = fuzz::run_mutations(target.run, fuzz::read_corpus(argv[2]), options);
        std::printf("%s: %lld inputs in %.1f s, no crash\n", name.c_str(), static_cast<long long>(stats.inputs), stats.seconds);
        return 0;
      }
    std::string names;
    for (const fuzz::Target& target : fuzz::targets()) names += (names.empty() ? "" : ", ") + target.name;
    throw Error(str("unknown fuzz target '", name, "' (targets: ", names, ")"));
  } catch (const rewardgen::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
