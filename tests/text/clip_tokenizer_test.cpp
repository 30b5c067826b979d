// The CLIP tokenizer against (1) ids derived by hand from a tiny vocabulary and from CLIP's
// vocabulary construction, (2) ids published by other projects, (3) tests/data/clip_tokens.json,
// written by the independent Python reference tools/clip_tokenizer_reference.py, and (4) bad files.
#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/paths.h"
#include "test_util.h"
#include "text/clip_tokenizer.h"
#include "text/unicode.h"

namespace rewardgen {
namespace {

using rewardgen::testing::TempDir;
using rewardgen::testing::throws_error_containing;
using Ids = std::vector<int64_t>;

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

void write_gzip(const std::string& path, const std::string& content) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  ASSERT_EQ(gzwrite(file, content.data(), static_cast<unsigned>(content.size())), static_cast<int>(content.size()));
  ASSERT_EQ(gzclose(file), Z_OK);
}

const ClipTokenizer& clip() {
  static const ClipTokenizer tokenizer =
      ClipTokenizer::from_gzip_merges(shipped_file("clip/bpe_simple_vocab_16e6.txt.gz"));
  return tokenizer;
}

// A vocabulary small enough to follow each merge by hand. Byte characters of ASCII letters are the
// letters themselves (bytes_to_unicode keeps printable bytes), so the tokens read as plain text.
//   rank 0: a b       -> ab
//   rank 1: ab c</w>  -> abc</w>
//   rank 2: b c</w>   -> bc</w>
//   rank 3: a b</w>   -> ab</w>
//   rank 4: c a       -> ca
constexpr const char* kTinyVocab = R"({"a": 0, "b": 1, "c": 2, "a</w>": 3, "b</w>": 4, "c</w>": 5, "ab": 6,
  "abc</w>": 7, "bc</w>": 8, "ab</w>": 9, "<|startoftext|>": 10, "<|endoftext|>": 11, "!": 12, "!</w>": 13, "ca": 14})";
constexpr const char* kTinyMerges = "#version: 0.2\na b\nab c</w>\nb c</w>\na b</w>\nc a\n";

struct TinyTokenizer {
  TempDir dir;
  TinyTokenizer(const std::string& extra_file = "", const std::string& extra_content = "") {
    write_file(dir.file("vocab.json"), kTinyVocab);
    write_file(dir.file("merges.txt"), kTinyMerges);
    if (!extra_file.empty()) write_file(dir.file(extra_file), extra_content);
  }
  ClipTokenizer load() const { return ClipTokenizer::from_directory(dir.path()); }
};

TEST(ClipTokenizerTiny, MergesFollowRankOrder) {
  const ClipTokenizer tok = TinyTokenizer().load();
  // "abc" = [a, b, c</w>]; pairs (a,b) rank 0 and (b,c</w>) rank 2: rank 0 first -> [ab, c</w>];
  // then (ab,c</w>) rank 1 -> [abc</w>] = 7. Merging (b,c</w>) first would give [a, bc</w>] = [0, 8].
  EXPECT_EQ(tok.encode("abc"), (Ids{7}));
  // "bc" = [b, c</w>] -> rank 2 -> [bc</w>] = 8.
  EXPECT_EQ(tok.encode("bc"), (Ids{8}));
  // "abab" = [a, b, a, b</w>]: rank 0 merges the first (a,b) only, since the second b is "b</w>"
  // -> [ab, a, b</w>]; then (a,b</w>) rank 3 -> [ab, ab</w>] = [6, 9].
  EXPECT_EQ(tok.encode("abab"), (Ids{6, 9}));
  // "cab" = [c, a, b</w>]: (c,a) rank 4 is leftmost, but (a,b</w>) rank 3 is lower -> [c, ab</w>]
  // = [2, 9]; (c,ab</w>) is no merge, done. Taking the leftmost pair would give [ca, b</w>] = [14, 4].
  EXPECT_EQ(tok.encode("cab"), (Ids{2, 9}));
  // Lower-cased, split into words and punctuation: "abc", "!" -> [7, 13].
  EXPECT_EQ(tok.encode("  ABC! "), (Ids{7, 13}));
}

TEST(ClipTokenizerTiny, SpecialIdsComeFromTheVocabulary) {
  const ClipTokenizer tok = TinyTokenizer().load();
  EXPECT_EQ(tok.start_id(), 10);
  EXPECT_EQ(tok.end_id(), 11);
  EXPECT_EQ(tok.pad_id(), 11);  // no config: pad with <|endoftext|>, as the SD 1.x tokenizer
  EXPECT_EQ(tok.encode_padded("abc bc", 6), (Ids{10, 7, 8, 11, 11, 11}));
  // Truncation keeps length - 2 ids and still ends with EOT.
  EXPECT_EQ(tok.encode_padded("abc bc abc", 3), (Ids{10, 7, 11}));
  EXPECT_EQ(tok.encode_padded("", 2), (Ids{10, 11}));
  EXPECT_TRUE(throws_error_containing([&] { tok.encode_padded("abc", 1); }, "at least 2"));
}

TEST(ClipTokenizerTiny, PadTokenFromConfigFiles) {
  EXPECT_EQ(TinyTokenizer("tokenizer_config.json", R"({"pad_token": "!", "model_max_length": 8})").load().pad_id(), 12);
  EXPECT_EQ(TinyTokenizer("tokenizer_config.json", R"({"model_max_length": 8})").load().model_max_length(), 8);
  const ClipTokenizer tok = TinyTokenizer("special_tokens_map.json", R"({"pad_token": {"content": "a"}})").load();
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.encode_padded("bc", 5), (Ids{10, 8, 11, 0, 0}));
  // transformers' "no limit" (1e30) leaves CLIP's 77.
  EXPECT_EQ(TinyTokenizer("tokenizer_config.json", R"({"model_max_length": 1e30})").load().model_max_length(), 77);
}

TEST(ClipTokenizerTiny, SymbolOutsideTheVocabularyIsAnError) {
  const ClipTokenizer tok = TinyTokenizer().load();
  EXPECT_TRUE(throws_error_containing([&] { tok.encode("d"); }, "'d</w>' is not in the vocabulary"));
  EXPECT_TRUE(throws_error_containing([&] { tok.encode("a\xff"); }, "not valid UTF-8"));
}

TEST(ClipTokenizerReal, VocabularyConstruction) {
  // 188 printable bytes ('!'..'~' 94, '¡'..'¬' 12, '®'..'ÿ' 82) come first, then the 68 others.
  const std::vector<uint8_t> order = bytes_in_vocab_order();
  ASSERT_EQ(order.size(), 256u);
  EXPECT_EQ(order[0], '!');
  EXPECT_EQ(order[188], 0x00);
  EXPECT_EQ(byte_to_unicode(0x00), U'\u0100');
  EXPECT_EQ(byte_to_unicode(' '), U'\u0120');  // space is the 33rd non-printable byte: U+0100 + 32
  EXPECT_EQ(byte_to_unicode('a'), U'a');
  // 256 bytes + 256 bytes</w> + 48894 merges, then SOT 49406 and EOT 49407.
  EXPECT_EQ(clip().vocab_size(), 49408);
  EXPECT_EQ(clip().start_id(), 49406);
  EXPECT_EQ(clip().end_id(), 49407);
  EXPECT_EQ(clip().pad_id(), 49407);
}

TEST(ClipTokenizerReal, SingleCharacterWordsByHand) {
  // A one-character word is one symbol "<char></w>": no pair, no merge. Its id is 256 + the byte's
  // index in vocabulary order: 'a' = 0x61 is printable, index 0x61 - 0x21 = 64 -> 320.
  EXPECT_EQ(clip().encode("a"), (Ids{320}));
  EXPECT_EQ(clip().encode("A"), (Ids{320}));  // lower-cased first
  // '!' is the first printable byte: 256 + 0. '7' = 0x37: 256 + 22 = 278.
  EXPECT_EQ(clip().encode("!"), (Ids{256}));
  EXPECT_EQ(clip().encode("7"), (Ids{278}));
  // Digits are one token each ([\p{N}] matches a single character): "77" -> [7</w>, 7</w>].
  EXPECT_EQ(clip().encode("77"), (Ids{278, 278}));
  // U+0001 is a control character (not space, letter or number): a one-byte word of byte 0x01,
  // the second non-printable byte -> index 188 + 1 = 189 -> 256 + 189 = 445.
  EXPECT_EQ(clip().encode("\x01"), (Ids{445}));
}

TEST(ClipTokenizerReal, PublishedIds) {
  // elixir-nx/bumblebee test/bumblebee/text/clip_tokenizer_test.exs (Hugging Face
  // openai/clip-vit-base-patch32 tokenizer): "a photo of a cat" / "a photo of a dog".
  EXPECT_EQ(clip().encode_padded("a photo of a cat", 7), (Ids{49406, 320, 1125, 539, 320, 2368, 49407}));
  EXPECT_EQ(clip().encode_padded("a photo of a dog", 7), (Ids{49406, 320, 1125, 539, 320, 1929, 49407}));
  // huggingface/transformers issue #37699: "my" as a whole word is 607 ("my</w>").
  EXPECT_EQ(clip().encode("my"), (Ids{607}));
}

TEST(ClipTokenizerReal, NfcAndNfdGiveTheSameIds) {
  EXPECT_EQ(clip().encode("caf\u00e9"), clip().encode("cafe\u0301"));
  EXPECT_EQ(ClipTokenizer::clean_text("Cafe\u0301 \u201cX\u201d  &amp;  "), "caf\u00e9 \"x\" &");
}

TEST(ClipTokenizerReal, PreTokenizerUsesUnicodeClasses) {
  using Pieces = std::vector<std::string>;
  EXPECT_EQ(ClipTokenizer::pre_tokenize("don't"), (Pieces{"don", "'t"}));
  EXPECT_EQ(ClipTokenizer::pre_tokenize("caf\u00e9!?"), (Pieces{"caf\u00e9", "!?"}));  // é is \p{L}
  EXPECT_EQ(ClipTokenizer::pre_tokenize("\u732b\u306e"), (Pieces{"\u732b\u306e"}));     // CJK letters
  EXPECT_EQ(ClipTokenizer::pre_tokenize("\u0663\u0664"), (Pieces{"\u0663", "\u0664"}));  // Arabic-Indic digits
}

TEST(ClipTokenizerReal, Decode) {
  EXPECT_EQ(clip().decode(clip().encode_padded("a photo of a cat", 7)),
            "<|startoftext|>a photo of a cat <|endoftext|>");
  EXPECT_EQ(clip().decode(clip().encode("caf\u00e9 \u732b")), "caf\u00e9 \u732b ");
  // 163 is byte 0xE7 alone: the first byte of a 3-byte sequence, decoded as U+FFFD.
  EXPECT_EQ(clip().decode({163}), "\uFFFD");
  EXPECT_TRUE(throws_error_containing([] { clip().decode({49408}); }, "cannot decode id 49408"));
}

TEST(ClipTokenizerReal, EncodeBatch) {
  const at::Tensor batch = clip().encode_batch({"a photo of a cat", "a"}, 77);
  ASSERT_EQ(batch.sizes(), (c10::IntArrayRef{2, 77}));
  EXPECT_EQ(batch.scalar_type(), at::kLong);
  EXPECT_EQ(batch[0][5].item<int64_t>(), 2368);
  EXPECT_EQ(batch[1][1].item<int64_t>(), 320);
  EXPECT_EQ(batch[1][2].item<int64_t>(), 49407);
  EXPECT_EQ(batch[1][76].item<int64_t>(), 49407);
}

TEST(ClipTokenizerReal, MatchesThePythonReference) {
  const nlohmann::json reference = [] {
    std::ifstream in(std::string(REWARDGEN_TEST_DATA) + "/clip_tokens.json");
    return nlohmann::json::parse(in);
  }();
  const int64_t length = reference.at("context_length").get<int64_t>();
  ASSERT_GE(reference.at("cases").size(), 20u);
  for (const auto& c : reference.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    EXPECT_EQ(clip().encode(text), c.at("ids").get<Ids>()) << c.at("name");
    EXPECT_EQ(clip().encode_padded(text, length), c.at("padded").get<Ids>()) << c.at("name");
  }
}

TEST(ClipTokenizerReal, LongInputIsTruncatedWithEotLast) {
  std::string text;
  for (int i = 0; i < 30; ++i) text += "a photo of a cat ";
  const Ids ids = clip().encode_padded(text, 77);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids.front(), 49406);
  EXPECT_EQ(ids[75], 2368);  // 75 kept ids: 15 repeats of the 5-token sentence, ending in "cat"
  EXPECT_EQ(ids.back(), 49407);
}

TEST(ClipTokenizerErrors, MissingFiles) {
  EXPECT_TRUE(throws_error_containing([] { ClipTokenizer::from_gzip_merges("/nonexistent/bpe.txt.gz"); },
                                      "cannot open '/nonexistent/bpe.txt.gz': No such file or directory"));
  TempDir dir;
  write_file(dir.file("vocab.json"), kTinyVocab);
  EXPECT_TRUE(throws_error_containing([&] { ClipTokenizer::from_directory(dir.path()); }, "merges.txt': no such file"));
  EXPECT_TRUE(throws_error_containing([] { ClipTokenizer::from_directory("/nonexistent/tok"); }, "/nonexistent/tok"));
}

TEST(ClipTokenizerErrors, MalformedVocabJson) {
  TinyTokenizer syntax;
  write_file(syntax.dir.file("vocab.json"), "{\"a\": 0,");
  EXPECT_TRUE(throws_error_containing([&] { syntax.load(); }, "vocab.json"));
  TinyTokenizer wrong_type;
  write_file(wrong_type.dir.file("vocab.json"), R"({"a": "zero"})");
  EXPECT_TRUE(throws_error_containing([&] { wrong_type.load(); }, "vocab.json': token 'a' has id \"zero\""));
  TinyTokenizer duplicate;
  write_file(duplicate.dir.file("vocab.json"), R"({"a": 0, "b": 0})");
  EXPECT_TRUE(throws_error_containing([&] { duplicate.load(); }, "id 0 is given to both"));
  TinyTokenizer no_specials;
  write_file(no_specials.dir.file("vocab.json"), R"({"a": 0, "b": 1, "c</w>": 2, "ab": 3, "abc</w>": 4, "bc</w>": 5,
    "b</w>": 6, "ab</w>": 7, "c": 8, "ca": 9})");
  EXPECT_TRUE(throws_error_containing([&] { no_specials.load(); }, "has no '<|startoftext|>' token"));
  EXPECT_TRUE(throws_error_containing([] { TinyTokenizer("tokenizer_config.json", R"({"pad_token": "zz"})").load(); },
                                      "tokenizer_config.json': pad_token 'zz' is not in the vocabulary"));
}

TEST(ClipTokenizerErrors, MergesNamingUnknownSymbols) {
  TinyTokenizer unknown;
  write_file(unknown.dir.file("merges.txt"), "#version: 0.2\na b\nb z\n");
  EXPECT_TRUE(throws_error_containing([&] { unknown.load(); }, "merges.txt': merge 2 'b z' names 'z'"));
  TinyTokenizer three;
  write_file(three.dir.file("merges.txt"), "a b c\n");
  EXPECT_TRUE(throws_error_containing([&] { three.load(); }, "merges.txt' line 1: expected two symbols"));
}

// An empty merges.txt used to load as a character-level tokenizer: "abc" became [a, b, c</w>],
// ids the text encoder was never trained on. Every multi-symbol token must be some merge's result.
TEST(ClipTokenizerErrors, MergesThatCannotMakeTheVocabularyAreRefused) {
  TinyTokenizer empty("merges.txt", "");
  EXPECT_TRUE(throws_error_containing([&] { empty.load(); },
                                      "merges.txt': no merge makes the vocabulary's token 'ab' (id 6)"));
  TinyTokenizer header_only("merges.txt", "#version: 0.2\n");
  EXPECT_TRUE(throws_error_containing([&] { header_only.load(); }, "is the file empty or cut short?"));
  TinyTokenizer cut("merges.txt", "#version: 0.2\na b\nab c</w>\nb c</w>\na b</w>\n");  // the last merge lost
  EXPECT_TRUE(throws_error_containing([&] { cut.load(); }, "no merge makes the vocabulary's token 'ca' (id 14)"));
  // Byte symbols, with or without </w>, and bracketed special tokens need no merge.
  TinyTokenizer special("vocab.json", R"({"a": 0, "b": 1, "c": 2, "a</w>": 3, "b</w>": 4, "c</w>": 5, "ab": 6,
    "abc</w>": 7, "bc</w>": 8, "ab</w>": 9, "<|startoftext|>": 10, "<|endoftext|>": 11, "<pad>": 12, "ca": 14})");
  EXPECT_EQ(special.load().encode("abc"), (Ids{7}));
}

TEST(ClipTokenizerErrors, CorruptOrShortGzip) {
  TempDir dir;
  // A gzip header (magic 1f 8b, deflate) followed by bytes that are not a deflate stream.
  write_file(dir.file("corrupt.gz"), std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10) + "garbage!garbage!");
  EXPECT_TRUE(throws_error_containing([&] { ClipTokenizer::from_gzip_merges(dir.file("corrupt.gz")); }, "corrupt.gz'"));
  write_file(dir.file("plain.gz"), "#version: 0.2\na b\n");
  EXPECT_TRUE(throws_error_containing([&] { ClipTokenizer::from_gzip_merges(dir.file("plain.gz")); },
                                      "plain.gz': not a gzip file"));
  write_gzip(dir.file("short.gz"), "#version: 0.2\na b\n");
  EXPECT_TRUE(throws_error_containing([&] { ClipTokenizer::from_gzip_merges(dir.file("short.gz")); },
                                      "short.gz': only 1 merge lines after the header, CLIP needs 48894"));
}

TEST(Unicode, HtmlUnescapeMatchesPythonRules) {
  using text::html_unescape;
  EXPECT_EQ(html_unescape(U"&amp;amp; &lt;&gt; &#39;&#x41;&apos; &nbsp;"), U"&amp; <> 'A' \u00a0");
  EXPECT_EQ(html_unescape(U"&ampx &apos &#65 &unknown; &#xZ"), U"&x &apos A &unknown; &#xZ");
  EXPECT_EQ(html_unescape(U"&#150;&#1;&#0;&#xD800;&#99999999999;"), U"\u2013\uFFFD\uFFFD\uFFFD");
}

}  // namespace
}  // namespace rewardgen
