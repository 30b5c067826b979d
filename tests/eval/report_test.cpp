// `rewardgen report` over a tiny fake world: two runs' worth of inputs (a run folder with metrics,
// config, eval and generator; a bare eval folder), the teacher's references (one given as an input,
// one left by an earlier report), the table's values and best marks, every linked file, the plots'
// sizes, and that writing it again reuses the finished parts.
#include "eval/report.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "io/atomic_file.h"
#include "io/image.h"
#include "io/json_config.h"
#include "test_util.h"
#include "world_models.h"

namespace rewardgen {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::throws_error_containing;

class ReportTest : public testing::TinyWorldTest {
 protected:
  // An eval.json as `rewardgen eval` writes it, with the given overall accuracy, FD and reward mean.
  Json fake_eval(const std::string& model, const std::string& sampler, int64_t steps, double guidance, double overall, double fd,
                 double reward) {
    return {{"accuracy",
             {{"single_object", 0.9}, {"two_object", 0.5}, {"counting", 0.4}, {"colors", 0.6}, {"position", 0.2},
              {"color_attr", 0.1}, {"overall", overall}}},
            {"frechet_distance", fd},
            {"diversity", 0.8},
            {"images", 12},
            {"images_per_second", 2.0 * steps},
            {"nfe_per_image", guidance == 1 ? steps : 2 * steps},
            {"model", model},
            {"prompts", "world:eval"},
            {"precision", "fp32"},
            {"rewards", {{"world.compositional", {{"mean", reward}, {"std", 0.1}}}}},
            {"sampler", {{"name", sampler}, {"steps", steps}, {"guidance_scale", guidance}, {"eta", 0.0},
                         {"timestep_spacing", "trailing"}, {"timesteps", Json::array()}, {"output", "sample"}}},
            {"seed", 0}};
  }

  void SetUp() override {
    const std::string teacher = dir_->path();
    // A run: metrics with per-step rewards and a periodic evaluation, its config, its eval, its generator.
    run_ = inputs_.file("r0_run");
    fs::create_directories(run_ + "/eval");
    fs::copy(teacher, run_ + "/generator", fs::copy_options::recursive);
    save_json_file(run_ + "/config.json", {{"method", "r0"}, {"config", {{"alpha", 1}}}});
    std::string metrics;
    for (int step = 1; step <= 30; ++step) {
      Json row = {{"step", step}, {"wall_time", 6.0 * step}, {"reward", 0.01 * step}, {"reward/world.compositional", 0.01 * step}};
      if (step % 10 == 0) row["accuracy/overall"] = 0.3 + 0.01 * step;
      metrics += row.dump() + "\n";
    }
    write_file_atomic(run_ + "/metrics.jsonl", metrics);
    Json run_eval = fake_eval(run_ + "/generator", "ddim", 2, 1, 0.615, 0.120, 0.71);
    run_eval["training"] = {{"steps", 30}, {"wall_time_s", 180}};
    run_eval["position_reversed"] = 0.35;
    run_eval["relation_control"] = {{"followed", 0.125}, {"lines", 8}};
    save_json_file(run_ + "/eval/eval.json", run_eval);
    // A bare evaluation of the teacher at 4 steps, and the teacher's DDIM 25 + CFG 3 reference.
    bare_ = inputs_.file("teacher_4step");
    fs::create_directories(bare_);
    save_json_file(bare_ + "/eval.json", fake_eval(teacher, "ddim", 4, 1, 0.33, 0.4, 0.30));
    reference25_ = inputs_.file("teacher_ddim25");
    fs::create_directories(reference25_);
    save_json_file(reference25_ + "/eval.json", fake_eval(teacher, "ddim", 25, 3, 0.583, 0.046, 0.66));
    // The DDIM 50 reference, as an earlier report left it.
    out_ = output_.file("report");
    fs::create_directories(out_ + "/reference/teacher_ddim50_cfg3.0");
    save_json_file(out_ + "/reference/teacher_ddim50_cfg3.0/eval.json", fake_eval(teacher, "ddim", 50, 3, 0.579, 0.041, 0.65));

    options_.inputs = {run_, bare_, reference25_};
    options_.names = {"R0, 2 steps", "teacher, DDIM 4", "ignored: the reference's own name"};
    options_.out = out_;
    options_.teacher = teacher;
    options_.reference_limit = 12;
    options_.grid_prompts_per_task = 1;
    options_.grid_seeds = 1;
  }

  TempDir inputs_, output_;
  std::string run_, bare_, reference25_, out_;
  ReportOptions options_;
};

TEST_F(ReportTest, TableValuesBestMarksLinksPlotsAndResume) {
  const ReportResult result = write_report(options_, log_);
  EXPECT_EQ(result.references_evaluated, 0);  // one given, one kept from the earlier report
  EXPECT_EQ(result.grid_rows_sampled, 3);     // the teacher (DDIM 25 + CFG), the run, the bare eval's model
  const std::string html = read_text_file(result.index_html);

  // Every row, the references first, named for what they are.
  const size_t r25 = html.find("teacher, DDIM 25, CFG 3"), r50 = html.find("teacher, DDIM 50, CFG 3"), run = html.find("R0, 2 steps"),
               bare = html.find("teacher, DDIM 4");
  ASSERT_NE(r25, std::string::npos);
  ASSERT_NE(r50, std::string::npos);
  ASSERT_NE(run, std::string::npos);
  ASSERT_NE(bare, std::string::npos);
  EXPECT_LT(r25, r50);
  EXPECT_LT(r50, run);
  EXPECT_EQ(html.find("ignored: the reference"), std::string::npos);
  // Best per column: overall accuracy (↑) is the run's 61.5; FD (↓) the DDIM 50 reference's 0.041;
  // the reward (↑) the run's 0.710; images/s (↑) the DDIM 50 reference's 100.0; NFE (↓) the run's 2.
  EXPECT_NE(html.find("<td class=\"best\">61.5</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>58.3</td>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"best\">0.041</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>0.046</td>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"best\">0.710</td>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"best\">100.0</td>"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"best\">2</td>"), std::string::npos);
  EXPECT_NE(html.find("world.<wbr>compositional ↑"), std::string::npos);  // a reward's name, breakable after its dot
  EXPECT_NE(html.find("<td>3.0</td><td>30</td><td>12</td>"), std::string::npos);
  // The position control beside the accuracies, a dash where an evaluation predates it.
  EXPECT_NE(html.find("position reversed"), std::string::npos);
  EXPECT_NE(html.find("<td class=\"best\">61.5</td><td>35.0</td><td class=\"best\">12.5</td>"), std::string::npos);  // overall, then the controls
  EXPECT_NE(html.find("<td>58.3</td><td>–</td>"), std::string::npos);  // training: 3.0 min, 30 steps, 12 prompts
  // Every file the page links lies in the report folder.
  const std::regex link("(?:href|src)=\"([^\"]+)\"");
  int links = 0;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), link); it != std::sregex_iterator(); ++it, ++links)
    EXPECT_TRUE(fs::is_regular_file(out_ + "/" + (*it)[1].str())) << (*it)[1].str();
  EXPECT_EQ(links, 3 + 3 + 3 * 6);  // 3 configs, 3 plots, 3 grid rows × 6 tasks × 1 prompt × 1 seed
  EXPECT_NE(html.find("href=\"configs/R0__2_steps.json\""), std::string::npos);
  EXPECT_EQ(load_json_file(out_ + "/configs/R0__2_steps.json")["method"], "r0");
  // The plots: the reward against wall-clock and step, the periodic accuracy; 760 × 440 pixels.
  ASSERT_EQ(result.plots.size(), 3u);
  for (const std::string& plot : result.plots) {
    const at::Tensor image = load_png(plot);
    EXPECT_EQ(image.sizes(), (at::IntArrayRef{3, 440, 760})) << plot;
    EXPECT_LT(image.min().item<float>(), -0.5) << plot;  // something dark was drawn on the white
  }
  // Each grid image carries the checker's verdict.
  const Json verdicts = load_json_file(out_ + "/grids/R0__2_steps/verdicts.json");
  ASSERT_EQ(verdicts["images"].size(), 6u);
  EXPECT_TRUE(verdicts["images"][0]["passed"].is_boolean());
  EXPECT_NE(html.find("pass "), std::string::npos);

  // Written again: nothing evaluated or sampled anew, the same page.
  const ReportResult again = write_report(options_, log_);
  EXPECT_EQ(again.references_evaluated, 0);
  EXPECT_EQ(again.grid_rows_sampled, 0);
  EXPECT_EQ(read_text_file(again.index_html), html);
}

TEST_F(ReportTest, BadOptionsAreRefusedBeforeAnythingIsWritten) {
  ReportOptions o = options_;
  o.out = output_.file("refused");
  o.names.pop_back();
  EXPECT_TRUE(throws_error_containing([&] { write_report(o, log_); }, "2 --name for 3 inputs"));
  o = options_;
  o.out = output_.file("refused");
  o.inputs.push_back(output_.path());
  o.names.clear();
  EXPECT_TRUE(throws_error_containing([&] { write_report(o, log_); }, "overlap"));
  o.inputs = {inputs_.path()};  // neither a run nor an evaluation
  EXPECT_TRUE(throws_error_containing([&] { write_report(o, log_); }, "holds neither a run"));
  o.inputs = {run_};
  o.grid_seeds = 0;
  EXPECT_TRUE(throws_error_containing([&] { write_report(o, log_); }, "grid seeds must be in 1..8, got 0"));
  o.grid_seeds = 1;
  o.reference_guidance = NAN;
  EXPECT_TRUE(throws_error_containing([&] { write_report(o, log_); }, "finite"));
  EXPECT_FALSE(fs::exists(output_.file("refused")));
}

}  // namespace
}  // namespace rewardgen
