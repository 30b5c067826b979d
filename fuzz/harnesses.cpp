#include "harnesses.h"

#include <c10/util/Exception.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "core/paths.h"
#include "io/image.h"
#include "io/json_config.h"
#include "io/safetensors.h"
#include "io/torch_pickle.h"
#include "models/diffusers_io.h"
#include "text/bert_tokenizer.h"
#include "text/clip_tokenizer.h"

#ifndef REWARDGEN_TEST_DATA
#error "REWARDGEN_TEST_DATA (tests/data) must be defined: the BERT target reads its vocabulary"
#endif

namespace rewardgen::fuzz {
namespace {

std::string bytes_of(const uint8_t* data, size_t size) { return std::string(reinterpret_cast<const char*>(data), size); }

// Runs `body`; a rewardgen::Error is the expected end for bad input, anything else aborts.
template <class Body>
void expect_clean(const char* target, Body body) {
  try {
    body();
  } catch (const Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz target %s: not a rewardgen::Error: %s\n", target, e.what());
    std::abort();
  }
}

// The mutant with every chunk's CRC recomputed: otherwise nearly every mutant would end at the
// first CRC check and the decoder behind it would go unexercised. Chunks are walked as
// length (4 bytes, big-endian), type (4), data, CRC (4) until one runs past the end.
std::string with_png_crcs_fixed(std::string file) {
  size_t at = 8;
  while (at + 12 <= file.size()) {
    const auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(file[i])); };
    const uint64_t length = byte(at) << 24 | byte(at + 1) << 16 | byte(at + 2) << 8 | byte(at + 3);
    if (length > file.size() - at - 12) break;
    const size_t crc_at = at + 8 + static_cast<size_t>(length);
    const uint32_t crc = static_cast<uint32_t>(
        crc32(0, reinterpret_cast<const Bytef*>(file.data() + at + 4), static_cast<uInt>(length + 4)));
    for (int i = 0; i < 4; ++i) file[crc_at + i] = static_cast<char>(crc >> (24 - 8 * i));
    at = crc_at + 4;
  }
  return file;
}

}  // namespace

void safetensors(const uint8_t* data, size_t size) {
  expect_clean("safetensors", [&] {
    const SafetensorsFile file = SafetensorsFile::from_bytes(bytes_of(data, size), "fuzz.safetensors");
    for (const auto& [name, tensor] : file.load_all()) (void)tensor.sum();  // touch every byte it maps
  });
}

void torch_checkpoint(const uint8_t* data, size_t size) {
  expect_clean("torch_checkpoint", [&] {
    for (const auto& [name, tensor] : read_torch_checkpoint_bytes(bytes_of(data, size), "fuzz.pt")) (void)tensor.sum();
  });
}

void model_config(const uint8_t* data, size_t size) {
  expect_clean("model_config", [&] {
    Json config;
    try {
      config = Json::parse(bytes_of(data, size));
    } catch (const Json::exception& e) {
      throw Error(e.what());  // the CLI's load_json_file turns this into a message naming file and line
    }
    std::ostringstream sink;
    const Logger log(LogLevel::quiet, sink);
    if (config.is_object() && config.contains("num_train_timesteps")) {
      ConfigReader reader(config, "fuzz/scheduler_config.json");
      SchedulerConfig scheduler;
      read_scheduler_config(reader, scheduler);
      return;
    }
    summarize_component_config(config, "fuzz", log);  // UNet, VAE or CLIP towers, by _class_name
  });
}

void clip_tokenizer(const uint8_t* data, size_t size) {
  static const ClipTokenizer tokenizer = ClipTokenizer::from_gzip_merges(shipped_file("clip/bpe_simple_vocab_16e6.txt.gz"));
  expect_clean("clip_tokenizer", [&] {
    const std::string text = bytes_of(data, size);
    const std::vector<int64_t> ids = tokenizer.encode(text);
    (void)tokenizer.encode_padded(text, 77);
    (void)tokenizer.decode(ids);
  });
}

void bert_tokenizer(const uint8_t* data, size_t size) {
  static const BertTokenizer tokenizer =
      BertTokenizer::from_vocab_file(std::string(REWARDGEN_TEST_DATA) + "/rewards/image_reward/vocab.txt", {"[DEC]", "[ENC]"});
  expect_clean("bert_tokenizer", [&] {
    const std::string text = bytes_of(data, size);
    (void)tokenizer.encode(text);
    (void)tokenizer.encode_batch({text, text.substr(0, text.size() / 2)}, 35);
  });
}

void png(const uint8_t* data, size_t size) {
  expect_clean("png", [&] { (void)decode_png(with_png_crcs_fixed(bytes_of(data, size)), "fuzz.png").sum(); });
}

void jpeg(const uint8_t* data, size_t size) {
  expect_clean("jpeg", [&] { (void)decode_jpeg(bytes_of(data, size), "fuzz.jpg").sum(); });
}

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {{"safetensors", safetensors},     {"torch_checkpoint", torch_checkpoint},
                                          {"model_config", model_config},   {"clip_tokenizer", clip_tokenizer},
                                          {"bert_tokenizer", bert_tokenizer}, {"png", png},
                                          {"jpeg", jpeg}};
  return all;
}

}  // namespace rewardgen::fuzz
