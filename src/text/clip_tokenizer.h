#pragma once
// CLIP's byte-level BPE tokenizer (OpenAI CLIP clip/simple_tokenizer.py, as used by Stable
// Diffusion 1.x/2.x text encoders): text clean-up, Unicode pre-tokenisation, byte-to-unicode
// mapping, BPE merges by rank, SOT/EOT framing and padding. docs/tokenizer.md describes what is
// reproduced exactly and where the clean-up is a documented subset of ftfy.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace rewardgen {

class ClipTokenizer {
 public:
  // The original bpe_simple_vocab_16e6.txt.gz: a header line, then merges "a b" one a line, of
  // which CLIP uses the first 49152 - 256 - 2 = 48894. Throws Error naming the file on any fault.
  static ClipTokenizer from_gzip_merges(const std::string& path);
  // A Hugging Face tokenizer folder: vocab.json + merges.txt, and when present
  // tokenizer_config.json / special_tokens_map.json for pad_token and model_max_length.
  static ClipTokenizer from_directory(const std::string& dir);

  // BPE ids of `text`, without start/end tokens.
  std::vector<int64_t> encode(const std::string& text) const;
  // [SOT] + encode(text) truncated to length - 2 + [EOT], then pad_id() up to `length`.
  std::vector<int64_t> encode_padded(const std::string& text, int64_t length = 77) const;
  // encode_padded of each text, as an int64 tensor [texts.size(), length].
  at::Tensor encode_batch(const std::vector<std::string>& texts, int64_t length = 77) const;
  // Ids back to text; "</w>" becomes a space, invalid UTF-8 becomes U+FFFD (as CLIP's decode).
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t start_id() const { return start_id_; }
  int64_t end_id() const { return end_id_; }
  int64_t pad_id() const { return pad_id_; }
  int64_t vocab_size() const { return static_cast<int64_t>(token_ids_.size()); }
  int64_t model_max_length() const { return model_max_length_; }
  const std::string& source() const { return source_; }

  // CLIP's whole clean-up (subset of ftfy, html unescape twice, strip, collapse whitespace,
  // lower), then the pre-tokeniser's pieces; exposed for tests and diagnostics.
  static std::string clean_text(const std::string& text);
  static std::vector<std::string> pre_tokenize(const std::string& cleaned);

  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;
  ~ClipTokenizer();

 private:
  struct Cache;
  ClipTokenizer(std::string source, std::unordered_map<std::string, int64_t> token_ids,
                std::vector<std::pair<std::string, std::string>> merges, const std::string& merges_file);

  std::vector<std::string> bpe(const std::string& word) const;
  std::vector<int64_t> word_ids(const std::string& piece) const;
  int64_t id_of(const std::string& token) const;

  std::string source_;                               // the file or folder, for messages
  std::unordered_map<std::string, int64_t> token_ids_;  // token (byte-unicode text) -> id
  std::unordered_map<int64_t, std::string> id_tokens_;
  std::unordered_map<std::string, int32_t> merge_ranks_;  // "first second" -> rank
  int64_t start_id_ = -1, end_id_ = -1, pad_id_ = -1;
  int64_t model_max_length_ = 77;
  std::unique_ptr<Cache> cache_;  // per-instance memo of word -> ids, guarded by its own mutex
};

// Every adjacent (first, second) in `symbols` merged into one symbol, left to right: one BPE merge
// step, shared by the tokenizer and the BPE trainer.
std::vector<std::string> merge_symbol_pair(const std::vector<std::string>& symbols, const std::string& first,
                                           const std::string& second);

// CLIP simple_tokenizer.py bytes_to_unicode: byte b -> the code point standing for it in the
// vocabulary. Printable Latin-1 bytes stand for themselves; the 68 others map to U+0100.. in order.
char32_t byte_to_unicode(uint8_t byte);
// The 256 bytes in the order CLIP lists them in the vocabulary (printable ones first).
std::vector<uint8_t> bytes_in_vocab_order();

}  // namespace rewardgen
