// The whole-bench run on the tiny world: every part present, ratios taken against the first teacher
// row, the NFE of each sampler, one method's timed steps (the training job's time_method_steps),
// the Markdown, and bad options refused.
#include "eval/bench_suite.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "methods/train_job.h"
#include "test_util.h"
#include "world_models.h"

namespace rewardgen {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::throws_error_containing;

class BenchSuiteTest : public testing::TinyWorldTest {
 protected:
  BenchSuiteOptions tiny_options(const TempDir& work) {
    BenchSuiteOptions o;
    o.unets = {{"tiny", dir_->file("unet/config.json"), 2, 8, 16}};
    o.teacher = dir_->path();
    o.teacher_steps = {2, 4};
    o.generators = {dir_->path()};  // no recipe: DDIM 25, CFG 7.5
    o.rewards = {"world.jpeg"};
    o.methods = {"refl"};
    const std::string work_dir = work.file("method_runs"), model = dir_->path();
    o.time_method = [this, work_dir, model](const std::string& method) { return time_method_steps(method, 3, work_dir, model, log_); };
    o.sample_images = 2;
    o.sample_batch = 2;
    o.repeats = 1;
    o.gemm_seconds = 0.1;
    return o;
  }
};

TEST_F(BenchSuiteTest, EveryPartInOneRunWithRatiosToTheFirstTeacherRow) {
  TempDir work;
  const Json r = run_bench_suite(tiny_options(work), 2, log_);
  EXPECT_GT(r["gemm"]["best_gflops"].get<double>(), 0);
  ASSERT_GE(r["unet"].size(), 1u);
  EXPECT_EQ(r["unet"][0]["name"], "tiny");
  EXPECT_GT(r["unet"][0]["train_mfu"].get<double>(), 0);
  EXPECT_NEAR(r["unet"][0]["forward_mfu"].get<double>(),
              r["unet"][0]["forward_gflops"].get<double>() / r["gemm"]["best_gflops"].get<double>(), 1e-12);
  ASSERT_EQ(r["sampling"].size(), 3u);
  EXPECT_DOUBLE_EQ(r["sampling"][0]["vs_teacher"].get<double>(), 1.0);
  EXPECT_EQ(r["sampling"][0]["nfe_per_image"].get<double>(), 4);   // DDIM 2 with CFG: two calls a step
  EXPECT_EQ(r["sampling"][1]["nfe_per_image"].get<double>(), 8);
  EXPECT_EQ(r["sampling"][2]["nfe_per_image"].get<double>(), 50);  // no recipe: DDIM 25 with CFG 7.5
  EXPECT_NEAR(r["sampling"][2]["vs_teacher"].get<double>(),
              r["sampling"][2]["images_per_second"].get<double>() / r["sampling"][0]["images_per_second"].get<double>(), 1e-12);
  ASSERT_EQ(r["rewards"].size(), 1u);
  EXPECT_TRUE(r["rewards"][0]["backward_images_per_second"].is_null());  // JPEG size is not differentiable
  ASSERT_EQ(r["methods"].size(), 1u);
  EXPECT_EQ(r["methods"][0]["method"], "refl");
  EXPECT_GT(r["methods"][0]["seconds_per_step"].get<double>(), 0);
  EXPECT_FALSE(fs::exists(work.file("method_runs/refl")));  // a timing, not a result: removed
  EXPECT_FALSE(fs::exists(work.file("method_runs/refl.json")));
  const std::string md = bench_suite_markdown(r);
  EXPECT_NE(md.find("| tiny | fp32 | 2, 8², 16 |"), std::string::npos) << md;
  EXPECT_NE(md.find("× teacher, DDIM 2 + CFG 3"), std::string::npos) << md;
  EXPECT_NE(md.find("| refl | "), std::string::npos) << md;
  EXPECT_NE(md.find("| world.jpeg | "), std::string::npos) << md;
}

TEST_F(BenchSuiteTest, BadOptionsAreRefusedBeforeAnyTiming) {
  TempDir work;
  BenchSuiteOptions o = tiny_options(work);
  o.time_method = nullptr;
  EXPECT_TRUE(throws_error_containing([&] { run_bench_suite(o, 2, log_); }, "no way to time them"));
  EXPECT_TRUE(throws_error_containing([&] { time_method_steps("refl", 1, work.file("method_runs"), dir_->path(), log_); },
                                      "steps must be in 2..1000"));
  EXPECT_TRUE(throws_error_containing([&] { time_method_steps("no-such-method", 3, work.file("method_runs"), dir_->path(), log_); },
                                      "no-such-method"));
  o = tiny_options(work);
  o.unets[0].config_file = work.file("missing.json");
  EXPECT_TRUE(throws_error_containing([&] { run_bench_suite(o, 2, log_); }, "missing.json"));
  o = tiny_options(work);
  o.teacher_guidance = INFINITY;
  EXPECT_TRUE(throws_error_containing([&] { run_bench_suite(o, 2, log_); }, "finite"));
  EXPECT_FALSE(fs::exists(work.file("method_runs")));
}

}  // namespace
}  // namespace rewardgen
