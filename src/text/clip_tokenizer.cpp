#include "text/clip_tokenizer.h"

#include <torch/torch.h>
#include <zlib.h>

#include <array>
#include <climits>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_set>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/json_config.h"
#include "text/unicode.h"

namespace rewardgen {

namespace {

constexpr const char* kStartToken = "<|startoftext|>";
constexpr const char* kEndToken = "<|endoftext|>";
constexpr const char* kEndOfWord = "</w>";
// CLIP simple_tokenizer.py: merges[1 : 49152-256-2+1], the vocabulary size less the 256 bytes,
// the 256 bytes + "</w>", and the two special tokens.
constexpr size_t kClipMergeCount = 49152 - 256 - 2;
// Memo entries kept before the cache is emptied; CLIP's dict grows without bound, which a long
// training run over many prompts should not.
constexpr size_t kCacheLimit = 100000;

bool is_printable_latin1(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); }

// The UTF-8 text of each byte's stand-in character, built once.
const std::array<std::string, 256>& byte_symbols() {
  static const std::array<std::string, 256> symbols = [] {
    std::array<std::string, 256> table;
    for (int b = 0; b < 256; ++b) text::append_utf8(table[b], byte_to_unicode(static_cast<uint8_t>(b)));
    return table;
  }();
  return symbols;
}

std::string read_gzip_file(const std::string& path) {
  require_regular_file(path);
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw Error(str("cannot open '", path, "'"));
  std::string content;
  std::array<char, 1 << 16> buffer;
  int read = 0;
  while ((read = gzread(file, buffer.data(), static_cast<unsigned>(buffer.size()))) > 0)
    content.append(buffer.data(), static_cast<size_t>(read));
  int code = Z_OK;
  const std::string reason = read < 0 ? gzerror(file, &code) : "";
  const bool plain = gzdirect(file) != 0;  // zlib reads non-gzip input transparently; we do not want that
  const int close_code = gzclose_r(file);
  if (read < 0) throw Error(str("'", path, "': corrupt gzip data (", reason, ")"));
  if (plain) throw Error(str("'", path, "': not a gzip file"));
  if (close_code != Z_OK) throw Error(str("'", path, "': corrupt or truncated gzip data (zlib code ", close_code, ")"));
  return content;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

// A merges line "first second" (Python's line.split() must give exactly two symbols).
std::pair<std::string, std::string> parse_merge(const std::string& line, const std::string& path, size_t line_no) {
  std::istringstream in(line);
  std::string first, second, extra;
  if (!(in >> first >> second) || (in >> extra))
    throw Error(str("'", path, "' line ", line_no, ": expected two symbols separated by a space, got '", line, "'"));
  return {first, second};
}

// The pad token of a tokenizer_config.json / special_tokens_map.json: a string or {"content": ...}.
std::string pad_token_of(const Json& config, const std::string& path) {
  const Json& pad = config.at("pad_token");
  if (pad.is_string()) return pad.get<std::string>();
  if (pad.is_object() && pad.contains("content") && pad["content"].is_string()) return pad["content"].get<std::string>();
  throw Error(str("'", path, "': pad_token must be a string or an object with a string \"content\""));
}

std::unordered_map<std::string, int64_t> read_vocab_json(const std::string& path) {
  const Json vocab = load_json_file(path);
  if (!vocab.is_object()) throw Error(str("'", path, "': expected a JSON object mapping tokens to ids"));
  std::unordered_map<std::string, int64_t> token_ids;
  std::unordered_map<int64_t, std::string> seen;
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0)
      throw Error(str("'", path, "': token '", token, "' has id ", id.dump(), ", expected a non-negative integer"));
    const int64_t value = id.get<int64_t>();
    if (auto [it, fresh] = seen.emplace(value, token); !fresh)
      throw Error(str("'", path, "': id ", value, " is given to both '", it->second, "' and '", token, "'"));
    token_ids.emplace(token, value);
  }
  return token_ids;
}

std::vector<std::pair<std::string, std::string>> read_merges_txt(const std::string& path) {
  const std::vector<std::string> lines = split_lines(read_text_file(path));
  std::vector<std::pair<std::string, std::string>> merges;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i == 0 && lines[i].rfind("#version", 0) == 0) continue;  // HF's optional header
    if (lines[i].empty()) continue;
    merges.push_back(parse_merge(lines[i], path, i + 1));
  }
  return merges;
}

size_t utf8_code_points(const std::string& text) {
  size_t count = 0;
  for (unsigned char c : text) count += (c & 0xC0) != 0x80;
  return count;
}

// A byte-level BPE vocabulary holds the byte symbols (alone or with "</w>"), one token per merge
// and special tokens in angle brackets. A longer token that no merge makes is one the tokenizer
// can never produce: an empty or cut-short merges.txt leaves a character-level tokenizer whose
// ids the text encoder was never trained on. Returns that token (the lowest id), or "".
std::string first_token_no_merge_makes(const std::unordered_map<std::string, int64_t>& token_ids,
                                       const std::vector<std::pair<std::string, std::string>>& merges) {
  std::unordered_set<std::string> made;
  for (const auto& [first, second] : merges) made.insert(first + second);
  std::string unmade;
  int64_t unmade_id = INT64_MAX;
  for (const auto& [token, id] : token_ids) {
    std::string symbols = token;
    if (symbols.size() > 4 && symbols.compare(symbols.size() - 4, 4, kEndOfWord) == 0) symbols.resize(symbols.size() - 4);
    const bool special = token.size() >= 2 && token.front() == '<' && token.back() == '>';
    if (utf8_code_points(symbols) <= 1 || special || made.count(token) != 0 || id >= unmade_id) continue;
    unmade = token;
    unmade_id = id;
  }
  return unmade;
}

// Python's str.strip() then `regex.sub(r"\s+", " ", ...)` then strip() again (whitespace_clean).
std::u32string collapse_whitespace(const std::u32string& text) {
  std::u32string out;
  bool in_space = false;
  for (char32_t c : text) {
    if (text::is_regex_space(c)) {
      in_space = true;
      continue;
    }
    if (in_space && !out.empty()) out.push_back(U' ');
    in_space = false;
    out.push_back(c);
  }
  if (in_space && !out.empty()) out.push_back(U' ');
  return out;
}

std::u32string strip_python_space(const std::u32string& text) {
  size_t begin = 0, end = text.size();
  while (begin < end && text::is_python_space(text[begin])) ++begin;
  while (end > begin && text::is_python_space(text[end - 1])) --end;
  return text.substr(begin, end - begin);
}

// U+0345 COMBINING GREEK YPOGEGRAMMENI is in none of the pattern's classes under IGNORECASE: it is
// not \p{L}, but its case fold (ι) is, which excludes it from [^\s\p{L}\p{N}] in `regex` (checked
// by enumerating all code points with regex 2026.5.9). findall therefore skips it.
constexpr char32_t kYpogegrammeni = 0x0345;

bool is_other(char32_t c) {
  return !text::is_regex_space(c) && !text::is_letter(c) && !text::is_number(c) && c != kYpogegrammeni;
}

// Length of `literal` matched case-insensitively (simple case folding, as `regex` IGNORECASE) at
// text[pos], or 0.
size_t match_literal(const std::u32string& text, size_t pos, const std::u32string& literal) {
  if (text.size() - pos < literal.size()) return 0;
  for (size_t i = 0; i < literal.size(); ++i)
    if (text::fold_case(text[pos + i]) != text::fold_case(literal[i])) return 0;
  return literal.size();
}

// The length of the CLIP pattern's match starting at text[pos], trying its alternatives in order
// (alternation takes the first that matches, not the longest); 0 when none matches there.
size_t match_at(const std::u32string& text, size_t pos) {
  static const std::u32string literals[] = {U"<|startoftext|>", U"<|endoftext|>", U"'s", U"'t", U"'re",
                                            U"'ve", U"'m", U"'ll", U"'d"};
  for (const std::u32string& literal : literals)
    if (size_t length = match_literal(text, pos, literal)) return length;
  size_t end = pos;
  if (text::is_letter(text[pos])) {
    while (end < text.size() && text::is_letter(text[end])) ++end;
  } else if (text::is_number(text[pos])) {
    end = pos + 1;
  } else {
    while (end < text.size() && is_other(text[end])) ++end;
  }
  return end - pos;
}

}  // namespace

char32_t byte_to_unicode(uint8_t byte) {
  // CLIP simple_tokenizer.py bytes_to_unicode: printable bytes keep their code point, the n-th
  // non-printable byte (in byte order) becomes U+0100 + n.
  if (is_printable_latin1(byte)) return byte;
  int n = 0;
  for (int b = 0; b < byte; ++b) n += is_printable_latin1(b) ? 0 : 1;
  return static_cast<char32_t>(256 + n);
}

std::vector<uint8_t> bytes_in_vocab_order() {
  std::vector<uint8_t> order;
  for (int b = 0; b < 256; ++b)
    if (is_printable_latin1(b)) order.push_back(static_cast<uint8_t>(b));
  for (int b = 0; b < 256; ++b)
    if (!is_printable_latin1(b)) order.push_back(static_cast<uint8_t>(b));
  return order;
}

struct ClipTokenizer::Cache {
  std::mutex mutex;
  std::unordered_map<std::string, std::vector<int64_t>> word_ids;
};

ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;
ClipTokenizer::~ClipTokenizer() = default;

ClipTokenizer::ClipTokenizer(std::string source, std::unordered_map<std::string, int64_t> token_ids,
                             std::vector<std::pair<std::string, std::string>> merges, const std::string& merges_file)
    : source_(std::move(source)), token_ids_(std::move(token_ids)), cache_(std::make_unique<Cache>()) {
  for (const auto& [token, id] : token_ids_) id_tokens_[id] = token;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [first, second] = merges[rank];
    for (const std::string& symbol : {first, second, first + second})
      if (token_ids_.count(symbol) == 0)
        throw Error(str("'", merges_file, "': merge ", rank + 1, " '", first, " ", second, "' names '", symbol,
                        "', which is not in the vocabulary"));
    merge_ranks_[first + " " + second] = static_cast<int32_t>(rank);  // a repeat takes the later rank, as a dict does
  }
  for (const char* special : {kStartToken, kEndToken})
    if (token_ids_.count(special) == 0) throw Error(str("'", source_, "': the vocabulary has no '", special, "' token"));
  start_id_ = token_ids_.at(kStartToken);
  end_id_ = token_ids_.at(kEndToken);
  pad_id_ = end_id_;  // the SD 1.x tokenizer pads with <|endoftext|>; a config may say otherwise
}

ClipTokenizer ClipTokenizer::from_gzip_merges(const std::string& path) {
  const std::vector<std::string> lines = split_lines(read_gzip_file(path));
  if (lines.size() < kClipMergeCount + 1)
    throw Error(str("'", path, "': only ", lines.empty() ? 0 : lines.size() - 1, " merge lines after the header, CLIP needs ",
                    kClipMergeCount));
  std::vector<std::pair<std::string, std::string>> merges;
  for (size_t i = 1; i <= kClipMergeCount; ++i) merges.push_back(parse_merge(lines[i], path, i + 1));

  // CLIP simple_tokenizer.py: bytes, bytes + "</w>", each merge joined, then the special tokens;
  // a token listed twice keeps its last id, as dict(zip(vocab, range(len(vocab)))) does.
  std::vector<std::string> vocab;
  for (uint8_t b : bytes_in_vocab_order()) vocab.push_back(byte_symbols()[b]);
  for (uint8_t b : bytes_in_vocab_order()) vocab.push_back(byte_symbols()[b] + kEndOfWord);
  for (const auto& [first, second] : merges) vocab.push_back(first + second);
  vocab.push_back(kStartToken);
  vocab.push_back(kEndToken);
  std::unordered_map<std::string, int64_t> token_ids;
  for (size_t id = 0; id < vocab.size(); ++id) token_ids[vocab[id]] = static_cast<int64_t>(id);
  return ClipTokenizer(path, std::move(token_ids), std::move(merges), path);
}

ClipTokenizer ClipTokenizer::from_directory(const std::string& dir) {
  if (!std::filesystem::is_directory(dir)) throw Error(str("cannot open tokenizer folder '", dir, "': not a directory"));
  const std::string vocab_path = dir + "/vocab.json", merges_path = dir + "/merges.txt";
  for (const std::string& required : {vocab_path, merges_path})
    if (!std::filesystem::exists(required)) throw Error(str("cannot open '", required, "': no such file"));
  std::unordered_map<std::string, int64_t> token_ids = read_vocab_json(vocab_path);
  std::vector<std::pair<std::string, std::string>> merges = read_merges_txt(merges_path);
  const std::string unmade = first_token_no_merge_makes(token_ids, merges);
  const int64_t unmade_id = unmade.empty() ? -1 : token_ids.at(unmade);
  ClipTokenizer tokenizer(dir, std::move(token_ids), std::move(merges), merges_path);
  // After the constructor, whose checks of each merge name the line at fault.
  if (!unmade.empty())
    throw Error(str("'", merges_path, "': no merge makes the vocabulary's token '", unmade, "' (id ", unmade_id,
                    "), so it could never be produced; is the file empty or cut short?"));

  // special_tokens_map.json is read last so that it wins, as in transformers' from_pretrained.
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
    const std::string path = dir + "/" + name;
    if (!std::filesystem::exists(path)) continue;
    const Json config = load_json_file(path);
    if (!config.is_object()) throw Error(str("'", path, "': expected a JSON object"));
    if (config.contains("pad_token") && !config["pad_token"].is_null()) {
      const std::string pad = pad_token_of(config, path);
      if (tokenizer.token_ids_.count(pad) == 0)
        throw Error(str("'", path, "': pad_token '", pad, "' is not in the vocabulary"));
      tokenizer.pad_id_ = tokenizer.token_ids_.at(pad);
    }
    // transformers writes a huge number (1e30) for "no limit"; keep CLIP's 77 then.
    if (config.contains("model_max_length")) {
      const Json& limit = config["model_max_length"];
      if (!limit.is_number() || limit.get<double>() < 2)
        throw Error(str("'", path, "': model_max_length must be a number >= 2, got ", limit.dump()));
      if (limit.get<double>() <= 1e6) tokenizer.model_max_length_ = limit.get<int64_t>();
    }
  }
  return tokenizer;
}

std::string ClipTokenizer::clean_text(const std::string& text) {
  // CLIP simple_tokenizer.py: whitespace_clean(basic_clean(text)).lower(), where basic_clean is
  // ftfy.fix_text (here its documented subset), html.unescape twice, strip.
  const std::u32string fixed = text::fix_text_subset(text::utf8_to_utf32(text, "text to tokenize"));
  const std::u32string unescaped = strip_python_space(text::html_unescape(text::html_unescape(fixed)));
  return text::utf32_to_utf8(text::lower(strip_python_space(collapse_whitespace(unescaped))));
}

std::vector<std::string> ClipTokenizer::pre_tokenize(const std::string& cleaned) {
  const std::u32string text = text::utf8_to_utf32(cleaned, "text to tokenize");
  std::vector<std::string> pieces;
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = match_at(text, pos);
    if (length == 0) {
      ++pos;  // whitespace, or U+0345 (see kYpogegrammeni)
      continue;
    }
    pieces.push_back(text::utf32_to_utf8(text.substr(pos, length)));
    pos += length;
  }
  return pieces;
}

std::vector<std::string> ClipTokenizer::bpe(const std::string& word) const {
  // One symbol per byte, "</w>" on the last (CLIP simple_tokenizer.py bpe); then repeatedly merge
  // every occurrence of the adjacent pair with the lowest rank until no listed pair remains.
  std::vector<std::string> symbols;
  for (unsigned char byte : word) symbols.push_back(byte_symbols()[byte]);
  symbols.back() += kEndOfWord;
  while (symbols.size() > 1) {
    int32_t best_rank = INT32_MAX;
    size_t best = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto rank = merge_ranks_.find(symbols[i] + " " + symbols[i + 1]);
      if (rank != merge_ranks_.end() && rank->second < best_rank) best_rank = rank->second, best = i;
    }
    if (best_rank == INT32_MAX) break;
    const std::string first = symbols[best], second = symbols[best + 1];
    symbols = merge_symbol_pair(symbols, first, second);
  }
  return symbols;
}

int64_t ClipTokenizer::id_of(const std::string& token) const {
  const auto it = token_ids_.find(token);
  if (it == token_ids_.end()) throw Error(str(source_, ": BPE symbol '", token, "' is not in the vocabulary"));
  return it->second;
}

std::vector<int64_t> ClipTokenizer::word_ids(const std::string& piece) const {
  std::lock_guard<std::mutex> lock(cache_->mutex);
  if (auto hit = cache_->word_ids.find(piece); hit != cache_->word_ids.end()) return hit->second;
  std::vector<int64_t> ids;
  // CLIP's cache is seeded with the two special tokens, so in text they map to their own ids.
  if (piece == kStartToken || piece == kEndToken) {
    ids.push_back(id_of(piece));
  } else {
    for (const std::string& symbol : bpe(piece)) ids.push_back(id_of(symbol));
  }
  if (cache_->word_ids.size() >= kCacheLimit) cache_->word_ids.clear();
  return cache_->word_ids.emplace(piece, std::move(ids)).first->second;
}

std::vector<int64_t> ClipTokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const std::string& piece : pre_tokenize(clean_text(text))) {
    const std::vector<int64_t> piece_ids = word_ids(piece);
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  }
  return ids;
}

std::vector<int64_t> ClipTokenizer::encode_padded(const std::string& text, int64_t length) const {
  if (length < 2) throw Error(str("token sequence length must be at least 2 (start and end), got ", length));
  const std::vector<int64_t> body = encode(text);
  std::vector<int64_t> ids{start_id_};
  const size_t kept = std::min(body.size(), static_cast<size_t>(length - 2));
  ids.insert(ids.end(), body.begin(), body.begin() + static_cast<std::ptrdiff_t>(kept));
  ids.push_back(end_id_);
  ids.resize(static_cast<size_t>(length), pad_id_);
  return ids;
}

at::Tensor ClipTokenizer::encode_batch(const std::vector<std::string>& texts, int64_t length) const {
  if (length < 2) throw Error(str("token sequence length must be at least 2 (start and end), got ", length));
  at::Tensor batch = torch::empty({static_cast<int64_t>(texts.size()), length}, torch::kInt64);
  auto rows = batch.accessor<int64_t, 2>();
  for (size_t row = 0; row < texts.size(); ++row) {
    const std::vector<int64_t> ids = encode_padded(texts[row], length);
    for (int64_t col = 0; col < length; ++col) rows[static_cast<int64_t>(row)][col] = ids[static_cast<size_t>(col)];
  }
  return batch;
}

std::string ClipTokenizer::decode(const std::vector<int64_t>& ids) const {
  static const std::unordered_map<char32_t, uint8_t> unicode_bytes = [] {
    std::unordered_map<char32_t, uint8_t> table;
    for (int b = 0; b < 256; ++b) table[byte_to_unicode(static_cast<uint8_t>(b))] = static_cast<uint8_t>(b);
    return table;
  }();
  std::string joined;
  for (int64_t id : ids) {
    const auto token = id_tokens_.find(id);
    if (token == id_tokens_.end()) throw Error(str(source_, ": cannot decode id ", id, ": not in the vocabulary"));
    joined += token->second;
  }
  std::string bytes;
  for (char32_t c : text::utf8_to_utf32(joined, "vocabulary token")) {
    const auto byte = unicode_bytes.find(c);
    if (byte == unicode_bytes.end())
      throw Error(str(source_, ": cannot decode: token character U+", std::hex, static_cast<uint32_t>(c),
                      " is not a byte's stand-in"));
    bytes.push_back(static_cast<char>(byte->second));
  }
  std::string text = text::utf8_with_replacement(bytes);
  for (size_t at = text.find(kEndOfWord); at != std::string::npos; at = text.find(kEndOfWord, at + 1))
    text.replace(at, 4, " ");
  return text;
}

std::vector<std::string> merge_symbol_pair(const std::vector<std::string>& symbols, const std::string& first,
                                           const std::string& second) {
  std::vector<std::string> merged;
  for (size_t i = 0; i < symbols.size(); ++i) {
    if (i + 1 < symbols.size() && symbols[i] == first && symbols[i + 1] == second) {
      merged.push_back(first + second);
      ++i;
    } else {
      merged.push_back(symbols[i]);
    }
  }
  return merged;
}

}  // namespace rewardgen
