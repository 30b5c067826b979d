#include "text/bpe_trainer.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"
#include "text/clip_tokenizer.h"
#include "text/unicode.h"

namespace rewardgen {

namespace {

std::string byte_symbol(uint8_t byte) { std::string symbol;
  text::append_utf8(symbol, byte_to_unicode(byte));
  return symbol;
}

// A word as its initial symbols: one per byte, the last with the end-of-word mark.
std::vector<std::string> initial_symbols(const std::string& word) {
  std::vector<std::string> symbols;
  for (unsigned char byte : word) symbols.push_back(byte_symbol(byte));
  if (!symbols.empty()) symbols.back() += "</w>";
  return symbols;
}

}  // namespace

BpeVocabulary train_bpe(const std::vector<std::string>& words) {
  BpeVocabulary vocabulary;
  for (uint8_t byte : bytes_in_vocab_order()) vocabulary.tokens.push_back(byte_symbol(byte));
  for (uint8_t byte : bytes_in_vocab_order()) vocabulary.tokens.push_back(byte_symbol(byte) + "</w>");
  std::set<std::string> unique(words.begin(), words.end());
  std::vector<std::vector<std::string>> segmented;
  for (const std::string& word : unique)
    if (!word.empty()) segmented.push_back(initial_symbols(word));
  while (true) {
    // Most frequent adjacent pair over the current segmentations; ties go to the smaller pair so
    // the result does not depend on iteration order.
    std::map<std::pair<std::string, std::string>, int> counts;
    for (const auto& symbols : segmented)
      for (size_t i = 0; i + 1 < symbols.size(); ++i) ++counts[{symbols[i], symbols[i + 1]}];
    if (counts.empty()) break;
    auto best = counts.begin();
    for (auto it = counts.begin(); it != counts.end(); ++it)
      if (it->second > best->second) best = it;
    const auto [first, second] = best->first;
    vocabulary.merges.push_back({first, second});
    vocabulary.tokens.push_back(first + second);
    for (auto& symbols : segmented) symbols = merge_symbol_pair(symbols, first, second);
  }
  vocabulary.tokens.push_back("<|startoftext|>");
  vocabulary.tokens.push_back("<|endoftext|>");
  return vocabulary;
}

void save_tokenizer_folder(const std::string& dir, const BpeVocabulary& vocabulary, int64_t model_max_length) {
  std::filesystem::create_directories(dir);
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t id = 0; id < vocabulary.tokens.size(); ++id) vocab[vocabulary.tokens[id]] = id;
  write_file_atomic(dir + "/vocab.json", vocab.dump() + "\n");
  std::string merges = "#version: 0.2\n";
  for (const auto& [first, second] : vocabulary.merges) merges += first + " " + second + "\n";
  write_file_atomic(dir + "/merges.txt", merges);
  const nlohmann::ordered_json special = {{"bos_token", "<|startoftext|>"},
                                          {"eos_token", "<|endoftext|>"},
                                          {"pad_token", "<|endoftext|>"},
                                          {"unk_token", "<|endoftext|>"}};
  nlohmann::ordered_json config = special;
  config["model_max_length"] = model_max_length;
  config["tokenizer_class"] = "CLIPTokenizer";
  config["do_lower_case"] = true;
  write_file_atomic(dir + "/tokenizer_config.json", config.dump(2) + "\n");
  write_file_atomic(dir + "/special_tokens_map.json", special.dump(2) + "\n");
}

}  // namespace rewardgen
