#include "io/run_dir.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "io/atomic_file.h"
#include "test_util.h"

namespace rewardgen {
namespace {

using testing::TempDir;
using testing::throws_error_containing;

TEST(RunDir, CreatesItsFoldersAndRefusesToOverwriteARunWithCheckpoints) {
  TempDir tmp;
  const std::string root = tmp.file("run");
  const RunDir run = RunDir::create(root, /*resume=*/false);
  EXPECT_TRUE(std::filesystem::is_directory(run.checkpoints_dir()));
  EXPECT_TRUE(std::filesystem::is_directory(run.samples_dir()));
  run.write_config({{"lr", 0.1}});
  EXPECT_EQ(nlohmann::json::parse(read_text_file(run.config_path()))["lr"], 0.1);
  // No checkpoint yet: the run failed at its start, and a corrected retry replaces it.
  EXPECT_NO_THROW(RunDir::create(root, false));
  write_file_atomic(run.checkpoints_dir() + "/step_00000001.safetensors.tmp.7.0", "x");  // an unfinished save
  EXPECT_FALSE(RunDir::holds_checkpoint(root));
  write_file_atomic(run.checkpoints_dir() + "/step_00000001.safetensors", "x");
  EXPECT_TRUE(RunDir::holds_checkpoint(root));
  EXPECT_FALSE(RunDir::holds_checkpoint(tmp.file("other")));
  EXPECT_TRUE(throws_error_containing([&] { RunDir::create(root, false); }, "already holds a run"));
  EXPECT_NO_THROW(RunDir::create(root, true));
  EXPECT_TRUE(throws_error_containing([&] { RunDir::create(tmp.file("other"), true); }, "holds no config.json"));
}

TEST(MetricsWriter, WritesOneObjectPerLineAndNullForNonFinite) {
  TempDir tmp;
  {
    MetricsWriter metrics(tmp.file("m.jsonl"));
    metrics.write(1, 0.5, {{"loss", 2.0}, {"reward", NAN}});
    metrics.write(2, 1.0, {{"loss", 1.5}, {"reward", 0.25}});
  }
  EXPECT_EQ(read_text_file(tmp.file("m.jsonl")),
            "{\"step\":1,\"wall_time\":0.5,\"loss\":2.0,\"reward\":null}\n"
            "{\"step\":2,\"wall_time\":1.0,\"loss\":1.5,\"reward\":0.25}\n");
}

TEST(MetricsWriter, ResumingDropsRowsWrittenAfterTheCheckpoint) {
  TempDir tmp;
  {
    MetricsWriter metrics(tmp.file("m.jsonl"));
    for (int step = 1; step <= 5; ++step) metrics.write(step, step, {{"loss", 1.0 / step}});
  }
  {
    MetricsWriter metrics(tmp.file("m.jsonl"), /*resume=*/true, /*resumed_step=*/3);  // crashed after 5, saved at 3
    metrics.write(4, 9, {{"loss", 7.0}});
  }
  const auto rows = read_metrics(tmp.file("m.jsonl"));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[2]["step"], 3);
  EXPECT_EQ(rows[3]["step"], 4);
  EXPECT_EQ(rows[3]["loss"], 7.0);
}

// A crash during a metrics write leaves a last line without its '\n': resuming drops it (its step
// comes after the checkpoint and is trained again); a corrupt line that was finished stays an error.
TEST(MetricsWriter, ResumingDropsALineACrashCutShort) {
  TempDir tmp;
  write_file_atomic(tmp.file("m.jsonl"), "{\"step\":1}\n{\"step\":2}\n{\"step\":3,\"rew");
  {
    MetricsWriter metrics(tmp.file("m.jsonl"), /*resume=*/true, /*resumed_step=*/2);
    metrics.write(3, 3.0, {{"reward", 0.5}});
  }
  const auto rows = read_metrics(tmp.file("m.jsonl"));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2]["step"], 3);
  EXPECT_EQ(rows[2]["reward"], 0.5);
  write_file_atomic(tmp.file("cut.jsonl"), "{\"step\":1,\"rew");  // cut inside the first line
  { MetricsWriter metrics(tmp.file("cut.jsonl"), true, 0); }
  EXPECT_TRUE(read_metrics(tmp.file("cut.jsonl")).empty());
  write_file_atomic(tmp.file("bad.jsonl"), "{\"step\":1}\nnot json\n");
  EXPECT_TRUE(throws_error_containing([&] { MetricsWriter(tmp.file("bad.jsonl"), true, 1); }, "bad.jsonl:2: not a JSON object"));
}

TEST(MetricsWriter, ReadingACorruptLineNamesIt) {
  TempDir tmp;
  write_file_atomic(tmp.file("m.jsonl"), "{\"step\":1}\nnot json\n");
  EXPECT_TRUE(throws_error_containing([&] { read_metrics(tmp.file("m.jsonl")); }, "m.jsonl:2: not a JSON object"));
}

}  // namespace
}  // namespace rewardgen
