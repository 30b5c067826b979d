// BERT's WordPiece tokenizer: hand-made cases for each step, and transformers' BertTokenizer (with
// BLIP's added tokens) on tests/data/rewards/bert_tokens.json (tools/make_image_reward_fixtures.py).
#include "text/bert_tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace rewardgen {
namespace {

using testing::throws_error_containing;

BertTokenizer hand_tokenizer() {
  return BertTokenizer({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "unaff", "a", "red", "##dish", "##red",
                        "!", ",", "cafe", "的", "[", "]"},
                       {}, "hand");
}

TEST(BertTokenizer, WordPieceIsGreedyLongestMatchFirst) {
  const BertTokenizer t = hand_tokenizer();
  // "unaff" is in the vocabulary and longer than "un": it wins, then "##able".
  EXPECT_EQ(t.tokenize("unaffable"), (std::vector<std::string>{"unaff", "##able"}));
  EXPECT_EQ(t.tokenize("reddish"), (std::vector<std::string>{"red", "##dish"}));
  // No complete cover ("##x" is missing): the whole word is [UNK], not a partial split.
  EXPECT_EQ(t.tokenize("redx a"), (std::vector<std::string>{"[UNK]", "a"}));
  // Words over 100 characters are [UNK] whole: "red"·33 (99 characters) splits, "red"·34 (102) does not.
  std::string word;
  for (int i = 0; i < 33; ++i) word += "red";
  EXPECT_EQ(t.tokenize(word).size(), 33u);
  EXPECT_EQ(t.tokenize(word).back(), "##red");
  EXPECT_EQ(t.tokenize(word + "red"), (std::vector<std::string>{"[UNK]"}));
}

TEST(BertTokenizer, BasicStepsLowerStripAccentsAndSplitPunctuation) {
  const BertTokenizer t = hand_tokenizer();
  EXPECT_EQ(t.tokenize("Café, RED!"), (std::vector<std::string>{"cafe", ",", "red", "!"}));
  EXPECT_EQ(t.tokenize("a\tred\n\aa"), (std::vector<std::string>{"a", "red", "a"}));  // BEL dropped, tab/newline split
  EXPECT_EQ(t.tokenize("a的red"), (std::vector<std::string>{"a", "的", "red"}));          // spaces around CJK ideographs
  EXPECT_EQ(t.tokenize("a[SEP]red"), (std::vector<std::string>{"a", "[SEP]", "red"}));    // special tokens kept whole
  EXPECT_EQ(t.tokenize("a [sep] red"), (std::vector<std::string>{"a", "[", "[UNK]", "]", "red"}));  // exact case only
  EXPECT_TRUE(t.tokenize(" \t ").empty());
}

TEST(BertTokenizer, BatchesAreClsTextSepThenPaddingWithTheMask) {
  const BertTokenizer t = hand_tokenizer();
  const BertTokenizer::Batch b = t.encode_batch({"a red", "red a red a red a"}, 6);
  // [CLS]=2 a=9 red=10 [SEP]=3, [PAD]=0; the second is truncated to 4 tokens between [CLS] and [SEP].
  EXPECT_TRUE(b.input_ids.equal(at::tensor({2, 9, 10, 3, 0, 0, 2, 10, 9, 10, 9, 3}, at::kLong).view({2, 6})));
  EXPECT_TRUE(b.attention_mask.equal(at::tensor({1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1}, at::kLong).view({2, 6})));
  EXPECT_TRUE(throws_error_containing([&] { t.encode_batch({"a"}, 1); }, "max_length >= 2"));
}

TEST(BertTokenizer, AddedSpecialTokensFollowTheVocabulary) {
  const BertTokenizer t({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"}, {"[DEC]", "[ENC]", "a"}, "hand");
  EXPECT_EQ(t.vocab_size(), 7);  // "a" is already there
  EXPECT_EQ(t.token_id("[DEC]"), 5);
  EXPECT_EQ(t.token_id("[ENC]"), 6);
  EXPECT_EQ(t.encode("a[ENC]"), (std::vector<int64_t>{4, 6}));
}

TEST(BertTokenizer, BadVocabulariesAreNamed) {
  EXPECT_TRUE(throws_error_containing([] { BertTokenizer({"[PAD]", "[UNK]", "[SEP]"}, {}, "v.txt"); }, "'v.txt' has no [CLS]"));
  EXPECT_TRUE(throws_error_containing([] { BertTokenizer::from_vocab_file("/nonexistent/vocab.txt"); }, "/nonexistent/vocab.txt"));
  EXPECT_TRUE(throws_error_containing([] { hand_tokenizer().tokenize("a \xff red"); }, "prompt"));  // not UTF-8
}

TEST(BertTokenizer, MatchesTransformersBertTokenizer) {
  const std::string data = std::string(REWARDGEN_TEST_DATA) + "/rewards";
  std::ifstream in(data + "/bert_tokens.json");
  const nlohmann::json fixture = nlohmann::json::parse(in);
  const BertTokenizer t = BertTokenizer::from_vocab_file(data + "/image_reward/vocab.txt", {"[DEC]", "[ENC]"});
  EXPECT_EQ(t.vocab_size(), fixture["vocab_size"].get<int64_t>());
  const int64_t length = fixture["max_length"];
  ASSERT_GE(fixture["cases"].size(), 10u);
  for (const auto& c : fixture["cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(t.tokenize(text), c["tokens"].get<std::vector<std::string>>()) << text;
    const BertTokenizer::Batch b = t.encode_batch({text}, length);
    const auto ids = c["input_ids"].get<std::vector<int64_t>>();
    const auto mask = c["attention_mask"].get<std::vector<int64_t>>();
    EXPECT_TRUE(b.input_ids[0].equal(at::tensor(ids, at::kLong))) << text;
    EXPECT_TRUE(b.attention_mask[0].equal(at::tensor(mask, at::kLong))) << text;
  }
}

}  // namespace
}  // namespace rewardgen
