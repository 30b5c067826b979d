#include "text/bert_tokenizer.h"

#include <algorithm>
#include <fstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "text/unicode.h"

namespace rewardgen {

namespace {

constexpr size_t kMaxWordCharacters = 100;  // WordpieceTokenizer.max_input_chars_per_word
const char* const kStandardSpecialTokens[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

bool is_bert_whitespace(char32_t c) { return c == U' ' || c == U'\t' || c == U'\n' || c == U'\r' || text::is_space_separator(c); }
bool is_bert_control(char32_t c) { return c != U'\t' && c != U'\n' && c != U'\r' && text::is_other(c); }
bool is_bert_punctuation(char32_t c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) ||
         text::is_punctuation(c);
}
// The CJK Unified Ideographs blocks BasicTokenizer._is_chinese_char lists (not all of CJK: kana and
// hangul are written with spaces).
bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// str.split(): runs of Python whitespace separate words.
std::vector<std::u32string> split_whitespace(const std::u32string& text) {
  std::vector<std::u32string> words;
  std::u32string word;
  for (char32_t c : text) {
    if (text::is_python_space(c)) {
      if (!word.empty()) words.push_back(std::move(word)), word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

std::u32string strip_accents(const std::u32string& word) {
  std::u32string out;
  for (char32_t c : text::nfd(word))
    if (!text::is_nonspacing_mark(c)) out += c;
  return out;
}

}  // namespace

BertTokenizer BertTokenizer::from_vocab_file(const std::string& path, const std::vector<std::string>& extra_special_tokens) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(str("cannot open the WordPiece vocabulary '", path, "'"));
  std::vector<std::string> tokens;
  for (std::string line; std::getline(in, line);) tokens.push_back(line);  // transformers strips only "\n"
  return BertTokenizer(std::move(tokens), extra_special_tokens, path);
}

BertTokenizer::BertTokenizer(std::vector<std::string> tokens, const std::vector<std::string>& extra_special_tokens,
                             std::string source)
    : tokens_(std::move(tokens)), source_(std::move(source)) {
  for (size_t i = 0; i < tokens_.size(); ++i) ids_.emplace(tokens_[i], static_cast<int64_t>(i));  // first line wins
  for (const std::string& extra : extra_special_tokens)
    if (!ids_.count(extra)) {
      ids_.emplace(extra, static_cast<int64_t>(tokens_.size()));
      tokens_.push_back(extra);
    }
  for (const char* required : {"[CLS]", "[SEP]", "[PAD]", "[UNK]"})
    if (!ids_.count(required)) throw Error(str("WordPiece vocabulary '", source_, "' has no ", required, " token"));
  cls_ = ids_.at("[CLS]"), sep_ = ids_.at("[SEP]"), pad_ = ids_.at("[PAD]"), unk_ = ids_.at("[UNK]");
  for (const char* special : kStandardSpecialTokens)
    if (ids_.count(special)) special_tokens_.push_back(special);
  special_tokens_.insert(special_tokens_.end(), extra_special_tokens.begin(), extra_special_tokens.end());
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

int64_t BertTokenizer::token_id(const std::string& token) const {
  auto it = ids_.find(token);
  if (it == ids_.end()) throw Error(str("WordPiece vocabulary '", source_, "' has no token '", token, "'"));
  return it->second;
}

std::vector<std::u32string> BertTokenizer::basic_tokenize(const std::string& utf8) const {
  std::u32string cleaned;
  for (char32_t c : text::utf8_to_utf32(utf8, "prompt")) {
    if (c == 0 || c == 0xFFFD || is_bert_control(c)) continue;
    if (is_bert_whitespace(c)) {
      cleaned += U' ';
    } else if (is_cjk_ideograph(c)) {
      cleaned += U' ', cleaned += c, cleaned += U' ';
    } else {
      cleaned += c;
    }
  }
  std::vector<std::u32string> pieces;
  for (const std::u32string& word : split_whitespace(text::nfc(cleaned))) {
    const std::u32string normalised = strip_accents(text::lower(word));
    std::u32string run;
    for (char32_t c : normalised) {
      if (is_bert_punctuation(c)) {
        if (!run.empty()) pieces.push_back(run), run.clear();
        pieces.push_back(std::u32string(1, c));
      } else {
        run += c;
      }
    }
    if (!run.empty()) pieces.push_back(run);
  }
  // transformers re-splits the joined pieces on whitespace; lower-casing, NFD and mark removal
  // never produce whitespace, so the pieces are already the words.
  return pieces;
}

void BertTokenizer::wordpiece(const std::u32string& word, std::vector<std::string>& out) const {
  if (word.size() > kMaxWordCharacters) {
    out.push_back("[UNK]");
    return;
  }
  std::vector<std::string> pieces;
  for (size_t start = 0; start < word.size();) {
    std::string found;
    size_t end = word.size();
    for (; end > start; --end) {  // greedy: the longest piece in the vocabulary
      const std::string candidate = (start > 0 ? "##" : "") + text::utf32_to_utf8(word.substr(start, end - start));
      if (ids_.count(candidate)) {
        found = candidate;
        break;
      }
    }
    if (found.empty()) {  // no cover: the whole word is unknown
      out.push_back("[UNK]");
      return;
    }
    pieces.push_back(std::move(found));
    start = end;
  }
  out.insert(out.end(), pieces.begin(), pieces.end());
}

std::vector<std::string> BertTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  auto tokenize_plain = [&](const std::string& segment) {
    for (const std::u32string& word : basic_tokenize(segment)) wordpiece(word, out);
  };
  size_t done = 0;
  for (size_t pos = 0; pos < text.size();) {
    const auto special = std::find_if(special_tokens_.begin(), special_tokens_.end(),
                                      [&](const std::string& s) { return text.compare(pos, s.size(), s) == 0; });
    if (special == special_tokens_.end()) {
      ++pos;
      continue;
    }
    tokenize_plain(text.substr(done, pos - done));
    out.push_back(*special);
    pos += special->size();
    done = pos;
  }
  tokenize_plain(text.substr(done));
  return out;
}

std::vector<int64_t> BertTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const std::string& piece : tokenize(text)) ids.push_back(ids_.count(piece) ? ids_.at(piece) : unk_);
  return ids;
}

BertTokenizer::Batch BertTokenizer::encode_batch(const std::vector<std::string>& texts, int64_t max_length) const {
  if (max_length < 2) throw Error(str("BERT inputs need max_length >= 2 ([CLS] and [SEP]), got ", max_length));
  Batch batch;
  batch.input_ids = at::full({static_cast<int64_t>(texts.size()), max_length}, pad_, at::kLong);
  batch.attention_mask = at::zeros({static_cast<int64_t>(texts.size()), max_length}, at::kLong);
  auto ids = batch.input_ids.accessor<int64_t, 2>();
  auto mask = batch.attention_mask.accessor<int64_t, 2>();
  for (size_t row = 0; row < texts.size(); ++row) {
    std::vector<int64_t> sequence{cls_};
    std::vector<int64_t> body = encode(texts[row]);
    body.resize(std::min<size_t>(body.size(), static_cast<size_t>(max_length - 2)));  // truncation: keep the start
    sequence.insert(sequence.end(), body.begin(), body.end());
    sequence.push_back(sep_);
    for (size_t i = 0; i < sequence.size(); ++i) {
      ids[static_cast<int64_t>(row)][static_cast<int64_t>(i)] = sequence[i];
      mask[static_cast<int64_t>(row)][static_cast<int64_t>(i)] = 1;
    }
  }
  return batch;
}

}  // namespace rewardgen
