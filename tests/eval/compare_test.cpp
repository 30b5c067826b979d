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
                                            "frechet_distance": 0.0461, "nfe_per_image": 50, "position_reversed": 0.238,
                                            "relation_control": {"followed": 0.0238, "lines": 84}})");
  write_file_atomic(dir.file("b.json"), R"({"model": 7, "accuracy": {"overall": null}, "position_reversed": -1})");
  const std::string table = eval_comparison_table({dir.file("a.json"), dir.file("b.json")});
  EXPECT_NE(table.find("| teacher | – | – | – | – | – | – | 58.3 | 23.8 | 2.4 | 0.046 | – | 50 | – |"), std::string::npos) << table;
  // A model name that is not text: the row is named by its file.
  EXPECT_NE(table.find("| " + dir.file("b.json") + " | – |"), std::string::npos) << table;
  // No position line evaluated (the control is −1) and no fixed-noise control: dashes, not −100 %.
  EXPECT_NE(table.find("| – | – | – | – | – | – | – | – | – | – | – | – | – |\n"), std::string::npos) << table;
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

// A trade-off plot's points: one per file at (x, y) by key paths, accuracies in %, files grouped into
// series in the order given and labelled by --name.
TEST(Compare, TradeoffSeriesGroupTheFilesAndReadTheirFigures) {
  TempDir dir;
  auto eval = [&](const std::string& name, double overall, double fd, double reward) {
    write_file_atomic(dir.file(name), Json{{"model", name},
                                           {"accuracy", {{"overall", overall}}},
                                           {"frechet_distance", fd},
                                           {"rewards", {{"world.compositional", {{"mean", reward}}}}}}
                                          .dump());
    return dir.file(name);
  };
  const std::vector<std::string> files = {eval("s1", 0.30, 0.05, 0.35), eval("k1", 0.36, 0.07, 0.36), eval("s10", 0.355, 0.14, 0.36)};
  const std::vector<PlotSeries> s =
      eval_tradeoff_series(files, {"α=1", "α=1 KL", "α=10"}, {"score", "kl", "score"}, "frechet_distance", "accuracy/overall");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].label, "score");
  EXPECT_EQ(s[0].x, (std::vector<double>{0.05, 0.14}));
  EXPECT_NEAR(s[0].y[0], 30.0, 1e-12);
  EXPECT_NEAR(s[0].y[1], 35.5, 1e-12);
  EXPECT_EQ(s[0].point_labels, (std::vector<std::string>{"α=1", "α=10"}));
  EXPECT_EQ(s[1].label, "kl");
  EXPECT_EQ(s[1].point_labels, (std::vector<std::string>{"α=1 KL"}));
  // No --series: one line; no --name: the models label the points; a reward is not scaled.
  const std::vector<PlotSeries> one = eval_tradeoff_series(files, {}, {}, "frechet_distance", "rewards/world.compositional/mean");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].y, (std::vector<double>{0.35, 0.36, 0.36}));
  EXPECT_EQ(one[0].point_labels, (std::vector<std::string>{"s1", "k1", "s10"}));

  EXPECT_TRUE(throws_error_containing([&] { eval_tradeoff_series(files, {}, {}, "diversity", "accuracy/overall"); },
                                      "s1: no 'diversity' ('diversity' is missing)"));
  EXPECT_TRUE(throws_error_containing([&] { eval_tradeoff_series(files, {}, {}, "frechet_distance", "accuracy"); },
                                      "s1: 'accuracy' is not a number"));
  EXPECT_TRUE(throws_error_containing([&] { eval_tradeoff_series(files, {}, {}, "frechet_distance", "accuracy//overall"); },
                                      "an empty key"));
  EXPECT_TRUE(throws_error_containing([&] { eval_tradeoff_series(files, {}, {"score"}, "frechet_distance", "accuracy/overall"); },
                                      "1 series names for 3 evaluation files"));
}

}  // namespace
}  // namespace rewardgen
