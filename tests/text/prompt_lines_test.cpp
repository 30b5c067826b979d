// Files of one prompt a line: blank lines, Windows line ends, and bytes that are not text, refused
// naming the file and line before any model is loaded.
#include "text/prompt_lines.h"

#include <gtest/gtest.h>

#include "io/atomic_file.h"
#include "test_util.h"

namespace rewardgen::text {
namespace {

using rewardgen::testing::TempDir;
using rewardgen::testing::throws_error_containing;

TEST(PromptLines, SkipOrKeepBlankLinesAndDropWindowsLineEnds) {
  TempDir dir;
  const std::string file = dir.file("prompts.txt");
  write_file_atomic(file, "a red circle\r\n\n \t \na blue square\n\tthree green triangles");
  const std::vector<PromptLine> skipped = read_prompt_lines(file);
  ASSERT_EQ(skipped.size(), 3u);
  EXPECT_EQ(skipped[0].text, "a red circle");  // "\r" gone
  EXPECT_EQ(skipped[0].number, 1);
  EXPECT_EQ(skipped[1].text, "a blue square");
  EXPECT_EQ(skipped[1].number, 4);
  EXPECT_EQ(skipped[2].text, "\tthree green triangles");  // no line end at the end of the file
  EXPECT_EQ(skipped[2].number, 5);
  const std::vector<PromptLine> kept = read_prompt_lines(file, BlankLines::keep);
  ASSERT_EQ(kept.size(), 5u);
  EXPECT_EQ(kept[1].text, "");
  EXPECT_EQ(kept[2].text, " \t ");
  write_file_atomic(file, "");
  EXPECT_TRUE(read_prompt_lines(file).empty());
  write_file_atomic(file, "caf\xc3\xa9 \xe2\x98\x95\n");  // UTF-8 beyond ASCII is text
  EXPECT_EQ(read_prompt_lines(file).at(0).text, "caf\xc3\xa9 \xe2\x98\x95");
}

TEST(PromptLines, BytesThatAreNotTextAreRefusedNamingFileAndLine) {
  TempDir dir;
  const std::string file = dir.file("bad.txt");
  write_file_atomic(file, "a red circle\n\xff\xfe" "a\n");
  EXPECT_TRUE(throws_error_containing([&] { read_prompt_lines(file); }, "bad.txt' line 2: not valid UTF-8 (ill-formed sequence at byte 0)"));
  write_file_atomic(file, std::string("a red\0circle\n", 13));
  EXPECT_TRUE(throws_error_containing([&] { read_prompt_lines(file); }, "bad.txt' line 1: control character U+0000 at character 5"));
  write_file_atomic(file, "ok\n\x1b[31mred\n");
  EXPECT_TRUE(throws_error_containing([&] { read_prompt_lines(file, BlankLines::keep); }, "line 2: control character U+001B at character 0"));
  EXPECT_TRUE(throws_error_containing([&] { read_prompt_lines(dir.file("missing.txt")); }, "missing.txt"));
  EXPECT_TRUE(throws_error_containing([&] { read_prompt_lines(dir.path()); }, "not a regular file"));
}

TEST(PromptLines, JsonLinesGiveTheirPromptForTrainingFiles) {
  TempDir dir;
  const std::string file = dir.file("p.jsonl");
  write_file_atomic(file, "{\"task\": \"counting\", \"prompt\": \"two red circles\"}\na blue square\n  {\"prompt\": \"a red circle\"}\n");
  const std::vector<PromptLine> lines = read_prompt_texts(file);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].text, "two red circles");
  EXPECT_EQ(lines[1].text, "a blue square");
  EXPECT_EQ(lines[2].text, "a red circle");
  EXPECT_EQ(lines[2].number, 3);
  write_file_atomic(file, "a red circle\n{\"text\": \"a red circle\"}\n");
  EXPECT_TRUE(throws_error_containing([&] { read_prompt_texts(file); }, "p.jsonl' line 2: a line starting with '{' must be a JSON object"));
  write_file_atomic(file, "{\"prompt\": \" \"}\n");
  EXPECT_TRUE(throws_error_containing([&] { read_prompt_texts(file); }, "line 1: \"prompt\" is empty"));
  write_file_atomic(file, "{\"prompt\": \"a\\u001b red circle\"}\n");
  EXPECT_TRUE(throws_error_containing([&] { read_prompt_texts(file); }, "control character U+001B"));
}

}  // namespace
}  // namespace rewardgen::text
