#pragma once
// Learns a small byte-level BPE vocabulary in CLIP's format from a word list, the way BPE is
// trained: repeatedly merge the most frequent adjacent pair until every word is one token. The
// embedded world uses it for its own tokenizer (a few hundred tokens instead of CLIP's 49408), so
// that the same ClipTokenizer code and HF folder layout serve tiny and real models.
#include <string>
#include <utility>
#include <vector>

namespace rewardgen {

struct BpeVocabulary {
  std::vector<std::string> tokens;  // id order: 256 bytes, 256 bytes + "</w>", merges, <|startoftext|>, <|endoftext|>
  std::vector<std::pair<std::string, std::string>> merges;  // by rank
};

// `words` are lower-case pieces as CLIP's pre-tokeniser yields them (ASCII or UTF-8).
BpeVocabulary train_bpe(const std::vector<std::string>& words);

// Writes a Hugging Face tokenizer folder (vocab.json, merges.txt, tokenizer_config.json,
// special_tokens_map.json) that ClipTokenizer::from_directory and transformers' CLIPTokenizer read.
void save_tokenizer_folder(const std::string& dir, const BpeVocabulary& vocabulary, int64_t model_max_length);

}  // namespace rewardgen
