// `rewardgen compare`: eval.json files side by side; files that are not evaluations are refused by
// name, and entries that are missing or not numbers show as dashes rather than as garbage.
#include <gtest/gtest.h>

#include "eval/eval_report.h"
#include "io/atomic_file.h"
#include "test_util.h"

namespace rewardgen {
namespace {

using testing::TempDir;
using testing::throws_error_containing;

TEST(Compare, RowsFromEvaluationsAndDashesForWhatIsMissing) {
  TempDir dir;
  write_file_atomic(dir.file("a.json"), R"({"model": "teacher", "accuracy": {"overall": 0.583, "colors": "high"},
                                            "frechet_distance": 0.0461, "nfe_per_image": 50})");
  write_file_atomic(dir.file("b.json"), R"({"model": 7, "accuracy": {"overall": null}})");
  const std::string table = eval_comparison_table({dir.file("a.json"), dir.file("b.json")});
  EXPECT_NE(table.find("| teacher | – | – | – | – | – | – | 58.3 | 0.046 | – | 50 | – |"), std::string::npos) << table;
  // A model name that is not text: the row is named by its file.
  EXPECT_NE(table.find("| " + dir.file("b.json") + " | – |"), std::string::npos) << table;
  EXPECT_NE(eval_comparison_table({dir.file("a.json")}, {"mine"}).find("| mine |"), std::string::npos);
}

TEST(Compare, FilesThatAreNotEvaluationsAreRefusedByName) {
  TempDir dir;
  write_file_atomic(dir.file("array.json"), "[]");
  EXPECT_TRUE(throws_error_containing([&] { eval_comparison_table({dir.file("array.json")}); }, "array.json: not an evaluation"));
  write_file_atomic(dir.file("odd.json"), R"({"model": 5, "accuracy": [1, 2]})");
  EXPECT_TRUE(throws_error_containing([&] { eval_comparison_table({dir.file("odd.json")}); }, "odd.json: not an evaluation"));
  write_file_atomic(dir.file("huge.json"), R"({"frechet_distance": 1e999})");
  EXPECT_TRUE(throws_error_containing([&] { eval_comparison_table({dir.file("huge.json")}); }, "huge.json: invalid JSON"));
  EXPECT_TRUE(throws_error_containing([&] { eval_comparison_table({dir.file("array.json")}, {"a", "b"}); }, "2 row names for 1 evaluation files"));
}

}  // namespace
}  // namespace rewardgen
