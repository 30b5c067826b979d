#pragma once
// Fuzz targets: each feeds arbitrary bytes to one reader of user input. Bad bytes must end in a
// rewardgen::Error (a clear message); anything else (a crash, a hang, another exception, a leak or
// a sanitizer report) is a bug, and a target aborts on a foreign exception so that fuzzers see it.
// They run under libFuzzer with ASan + UBSan (scripts/fuzz.sh, 10^6 inputs each) and under the
// mutation driver of fuzz/mutator.h (the CI's 10-second smoke of each, in the test binary).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace rewardgen::fuzz {

using TargetFunction = void (*)(const uint8_t* data, size_t size);

struct Target {
  std::string name;         // also the folder of its seed corpus: fuzz/corpus/<name>/
  TargetFunction run;
};

void safetensors(const uint8_t* data, size_t size);       // SafetensorsFile::from_bytes, then every tensor
void torch_checkpoint(const uint8_t* data, size_t size);  // torch.save archives: the zip, the pickle, the storages
void model_config(const uint8_t* data, size_t size);      // a config.json through its reader to the model, built on the meta device
void clip_tokenizer(const uint8_t* data, size_t size);    // the shipped CLIP BPE: encode, pad, decode
void bert_tokenizer(const uint8_t* data, size_t size);    // BLIP's WordPiece (the test data's vocabulary)
void png(const uint8_t* data, size_t size);               // decode_png, the mutant's chunk CRCs made right first
void jpeg(const uint8_t* data, size_t size);              // decode_jpeg

const std::vector<Target>& targets();

}  // namespace rewardgen::fuzz
