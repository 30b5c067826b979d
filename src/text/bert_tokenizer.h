#pragma once
// BERT's WordPiece tokenizer as transformers' BertTokenizer runs it (bert-base-uncased: lower case,
// accents stripped), which BLIP and so ImageReward use. Steps (each matches its Python function):
//  1. special tokens written in the text ("[SEP]", exact case) are cut out first and kept whole;
//  2. BasicTokenizer: drop NUL, U+FFFD and control characters, whitespace -> ' ', spaces around CJK
//     ideographs, NFC, split on whitespace, lower-case, NFD and drop non-spacing marks, split off
//     every punctuation character (ASCII symbols count as punctuation);
//  3. WordpieceTokenizer: greedy longest match, continuation pieces prefixed "##"; a word with no
//     complete cover, or longer than 100 characters, becomes [UNK].
#include <ATen/ATen.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace rewardgen {

class BertTokenizer {
 public:
  // vocab.txt: one token a line, id = line number. `extra_special_tokens` are appended after the
  // vocabulary unless already in it, as `tokenizer.add_special_tokens` does (BLIP: [DEC], [ENC]).
  static BertTokenizer from_vocab_file(const std::string& path, const std::vector<std::string>& extra_special_tokens = {});
  BertTokenizer(std::vector<std::string> tokens, const std::vector<std::string>& extra_special_tokens, std::string source);

  std::vector<std::string> tokenize(const std::string& text) const;  // word pieces, no [CLS]/[SEP]
  std::vector<int64_t> encode(const std::string& text) const;       // ids of tokenize(text)
  // The model input, as tokenizer(texts, padding="max_length", truncation=True, max_length=L):
  // [CLS] + ids truncated to L − 2 + [SEP], then [PAD] up to L; mask 1 on real tokens.
  struct Batch {
    at::Tensor input_ids, attention_mask;  // int64 [B, L]
  };
  Batch encode_batch(const std::vector<std::string>& texts, int64_t max_length) const;

  int64_t token_id(const std::string& token) const;  // Error if absent
  int64_t vocab_size() const { return static_cast<int64_t>(tokens_.size()); }  // incl. added special tokens
  const std::string& source() const { return source_; }

 private:
  std::vector<std::u32string> basic_tokenize(const std::string& text) const;  // steps 2, on one segment
  void wordpiece(const std::u32string& word, std::vector<std::string>& out) const;

  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> ids_;
  std::vector<std::string> special_tokens_;  // longest first, for step 1
  std::string source_;
  int64_t cls_ = 0, sep_ = 0, pad_ = 0, unk_ = 0;
};

}  // namespace rewardgen
