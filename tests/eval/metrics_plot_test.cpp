// Training-curve plots: series read from metrics.jsonl, the moving average, tick choice, and the SVG.
#include "eval/metrics_plot.h"

#include <gtest/gtest.h>

#include "io/atomic_file.h"
#include "io/image.h"
#include "test_util.h"

namespace rewardgen {
namespace {

using testing::TempDir;
using testing::throws_error_containing;

TEST(MetricsPlot, ReadsTheRowsThatHoldBothKeysAndResolvesAPrefix) {
  TempDir dir;
  const std::string file = dir.path() + "/metrics.jsonl";
  write_file_atomic(file,
                    "{\"step\":1,\"wall_time\":1.5,\"reward/world.clip:/m/world\":60.0,\"loss\":2}\n"
                    "{\"step\":2,\"wall_time\":3.0,\"loss\":1}\n"  // no reward: skipped
                    "\n"
                    "{\"step\":3,\"wall_time\":4.5,\"reward/world.clip:/m/world\":62.5,\"accuracy/overall\":0.5}\n");
  const PlotSeries s = read_metric_series(file, "wall_time", "reward/world.clip", "run");
  EXPECT_EQ(s.label, "run");
  EXPECT_EQ(s.x, (std::vector<double>{1.5, 4.5}));
  EXPECT_EQ(s.y, (std::vector<double>{60.0, 62.5}));
  const PlotSeries sparse = read_metric_series(file, "step", "accuracy/overall", "run");
  EXPECT_EQ(sparse.x, (std::vector<double>{3}));
  EXPECT_TRUE(throws_error_containing([&] { read_metric_series(file, "step", "reward/world.jpeg", ""); }, "no metric 'reward/world.jpeg'"));
  write_file_atomic(file, "{\"step\":1,\"reward/a:x\":1,\"reward/a:y\":2}\n");
  EXPECT_TRUE(throws_error_containing([&] { read_metric_series(file, "step", "reward/a", ""); }, "fits 2 metrics"));
  write_file_atomic(file, "{\"step\":1}\nnot json\n");
  EXPECT_TRUE(throws_error_containing([&] { read_metric_series(file, "step", "step", ""); }, "metrics.jsonl:2: not a JSON object"));
}

TEST(MetricsPlot, MovingAverageIsTrailing) {
  EXPECT_EQ(moving_average({1, 2, 3, 4, 5}, 1), (std::vector<double>{1, 2, 3, 4, 5}));
  // window 2: 1, (1+2)/2, (2+3)/2, ...; window 3 starts with the partial means 1 and 1.5.
  EXPECT_EQ(moving_average({1, 2, 3, 4, 5}, 2), (std::vector<double>{1, 1.5, 2.5, 3.5, 4.5}));
  EXPECT_EQ(moving_average({1, 2, 3, 4, 5}, 3), (std::vector<double>{1, 1.5, 2, 3, 4}));
  EXPECT_TRUE(throws_error_containing([&] { moving_average({1}, 0); }, "window must be >= 1"));
}

TEST(MetricsPlot, NiceTicksCoverTheRangeInRoundSteps) {
  EXPECT_EQ(nice_ticks(0, 10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(nice_ticks(0.13, 0.58, 5), (std::vector<double>{0.1, 0.2, 0.3, 0.4, 0.5, 0.6}));
  const std::vector<double> negative = nice_ticks(-13, -6.2, 4);  // step 2: -14 ... -6
  EXPECT_DOUBLE_EQ(negative.front(), -14);
  EXPECT_DOUBLE_EQ(negative.back(), -6);
  EXPECT_EQ(nice_ticks(3, 3, 5).size(), 6u);  // a constant series still gets an axis
}

TEST(MetricsPlot, SvgHoldsOnePolylinePerSeriesAndTheLabels) {
  const std::vector<PlotSeries> series = {{"full <R0>", {0, 5, 10}, {0.4, 0.5, 0.55}}, {"teacher", {0, 10}, {0.33, 0.33}}};
  PlotOptions options;
  options.title = "reward";
  const std::string svg = line_plot_svg(series, options);
  EXPECT_EQ(svg.rfind("<svg ", 0), 0u);
  size_t polylines = 0;
  for (size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++polylines;
  EXPECT_EQ(polylines, 2u);
  EXPECT_NE(svg.find("full &lt;R0&gt;"), std::string::npos);  // escaped
  // The first point sits on the left edge of the frame (x = 0 is the first tick), the highest at its top.
  EXPECT_NE(svg.find("points=\"70,"), std::string::npos);
  EXPECT_TRUE(throws_error_containing([&] { line_plot_svg({}, options); }, "no series"));
  EXPECT_TRUE(throws_error_containing([&] { line_plot_svg({{"bad", {0, 1}, {0, NAN}}}, options); }, "non-finite"));
}

// A series with point labels (a trade-off plot) marks each point and writes its label; labels that
// are not one per point are refused.
TEST(MetricsPlot, PointLabelsMarkAndNameEachPoint) {
  PlotOptions options;
  const std::string plain = line_plot_svg({{"line", {0, 1}, {0, 1}}}, options);
  PlotSeries marked{"score", {0.05, 0.14}, {30, 35.5}, {"alpha=1", "alpha=10"}};
  const std::string svg = line_plot_svg({marked}, options);
  auto count = [](const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(svg, "<rect"), count(plain, "<rect") + 2);  // one marker per point
  EXPECT_NE(svg.find(">alpha=1<"), std::string::npos);
  EXPECT_NE(svg.find(">alpha=10<"), std::string::npos);
  marked.point_labels.pop_back();
  EXPECT_TRUE(throws_error_containing([&] { line_plot_svg({marked}, options); }, "1 point labels for 2 points"));
}

// The same plot through cairo: a PNG of the asked size, white where nothing is drawn, each series in
// its legend colour (Okabe–Ito blue #0072B2, then vermilion #D55E00), dark text.
TEST(MetricsPlot, PngIsDrawnInTheSeriesColours) {
  const std::vector<PlotSeries> series = {{"R0", {0, 5, 10}, {0.4, 0.5, 0.55}}, {"teacher", {0, 10}, {0.33, 0.33}}};
  PlotOptions options;
  options.title = "reward";
  options.width = 500;
  options.height = 300;
  TempDir dir;
  write_file_atomic(dir.file("plot.png"), line_plot_png(series, options));
  const at::Tensor rgb = to_rgb8(load_png(dir.file("plot.png"))).to(at::kInt);  // [H, W, 3]
  ASSERT_EQ(rgb.sizes(), (at::IntArrayRef{300, 500, 3}));
  EXPECT_EQ(rgb[0][0].sum().item<int>(), 3 * 255);
  auto pixels_near = [&](int r, int g, int b) {
    const at::Tensor distance = (rgb - at::tensor({r, g, b}, at::kInt)).abs().amax(-1);
    return (distance <= 12).sum().item<int64_t>();
  };
  EXPECT_GT(pixels_near(0, 114, 178), 200);  // a 1.6-px line across the frame, and its legend
  EXPECT_GT(pixels_near(213, 94, 0), 200);
  EXPECT_GT(pixels_near(26, 26, 26), 50);    // the title, ticks and labels
  EXPECT_TRUE(throws_error_containing([&] { line_plot_png({}, options); }, "no series"));
  options.width = 0;
  EXPECT_TRUE(throws_error_containing([&] { line_plot_png(series, options); }, "size 0x300"));
}

// first_reach waits for a full window: 1, 5 (mean 3), 2 (3.5), 6 (4): target 3.5 is reached at x = 30,
// not at the single point 5; final_value is the mean of the last window.
TEST(MetricsPlot, FirstReachAndFinalValueUseTheWindowMean) {
  PlotSeries s{"run", {10, 20, 30, 40}, {1, 5, 2, 6}};
  EXPECT_EQ(first_reach(s, 3.5, 2), 30.0);
  EXPECT_EQ(first_reach(s, 5.0, 1), 20.0);
  EXPECT_FALSE(first_reach(s, 4.5, 2).has_value());
  EXPECT_EQ(first_reach(s, 3.5, 100), 40.0);  // shorter than the window: the mean of all of it, 3.5
  EXPECT_DOUBLE_EQ(final_value(s, 2), 4.0);
  EXPECT_DOUBLE_EQ(final_value(s, 10), 3.5);
  EXPECT_DOUBLE_EQ(initial_value(s, 2), 3.0);
  EXPECT_DOUBLE_EQ(initial_value(s, 10), 3.5);
  EXPECT_TRUE(throws_error_containing([&] { final_value(PlotSeries{"empty", {}, {}}, 2); }, "'empty' is empty"));
  EXPECT_TRUE(throws_error_containing([&] { first_reach(s, 1, 0); }, "window must be >= 1"));
}

}  // namespace
}  // namespace rewardgen
