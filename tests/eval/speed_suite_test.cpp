// The speed table's rows and its reading of the diffusers timing script's output (a stand-in script
// here: the real one needs torch and a diffusers checkout).
#include "eval/speed_suite.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "io/atomic_file.h"
#include "test_util.h"

namespace rewardgen {
namespace {

using testing::TempDir;
using testing::throws_error_containing;

TEST(SpeedSuite, RowsNameTheirConfigs) {
  const std::vector<SpeedRow> rows = speed_rows("cfg");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].config_file, "cfg/unet_world_teacher.json");
  EXPECT_EQ(rows[0].key, "world");
  EXPECT_EQ(rows[2].key, "sd15");
  EXPECT_EQ(rows[0].batch, 32);
  EXPECT_FALSE(rows[2].train) << "full SD1.5 at 64x64: forward only";
  for (const SpeedRow& r : speed_rows(REWARDGEN_TEST_DATA "/../../bench/configs"))
    EXPECT_TRUE(std::filesystem::exists(r.config_file)) << r.config_file;
}

TEST(SpeedSuite, RoundsMergeAsTheMeanOfMeansAndTheBestOfBests) {
  RoundTimes t;
  EXPECT_EQ(t.mean_s(), 0.0);  // nothing measured: the table prints "–"
  EXPECT_EQ(t.best_s(), 0.0);
  t.add(0.30, 0.20);
  t.add(0.10, 0.08);
  t.add(0.0, 0.0);  // a row without a training step, or no diffusers: skipped, not a round of zeros
  t.add(0.20, 0.15);
  EXPECT_DOUBLE_EQ(t.mean_s(), 0.20);  // (0.30 + 0.10 + 0.20) / 3
  EXPECT_DOUBLE_EQ(t.best_s(), 0.08);
}

TEST(SpeedSuite, ReadsTheTimerScriptsLastJsonLine) {
  if (!std::filesystem::exists("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3";
  TempDir dir;
  const std::string script = dir.file("timer.py");
  // Echoes its arguments into the JSON so that the test sees what it was called with.
  write_file_atomic(script,
                    "import sys, json\n"
                    "print('a warning line')\n"
                    "print(json.dumps({'forward_ms': 150.0, 'train_step_ms': 360.0, 'forward_ms_min': 140.0, 'train_step_ms_min': 350.0, 'argv': sys.argv[1:]}))\n");
  SpeedRow row{"world", "world teacher", "some config.json", 32, 16, 16, true};
  const DiffusersTimes t = time_diffusers(script, row, 2, 5, 1);
  EXPECT_DOUBLE_EQ(t.forward_s, 0.150);
  EXPECT_DOUBLE_EQ(t.train_step_s, 0.360);
  EXPECT_DOUBLE_EQ(t.forward_best_s, 0.140);
  EXPECT_DOUBLE_EQ(t.train_step_best_s, 0.350);
  row.train = false;
  EXPECT_DOUBLE_EQ(time_diffusers(script, row, 2, 5, 1).train_step_s, 0.0);

  write_file_atomic(script, "import sys\nprint('ImportError: no torch')\nsys.exit(1)\n");
  EXPECT_TRUE(throws_error_containing([&] { time_diffusers(script, row, 2, 5, 1); }, "ImportError: no torch"));
  EXPECT_TRUE(throws_error_containing([&] { time_diffusers(dir.file("none.py"), row, 2, 5, 1); }, "does not exist"));
}

}  // namespace
}  // namespace rewardgen
