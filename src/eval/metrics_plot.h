#pragma once
// Training curves a person can look at: metric series read from runs' metrics.jsonl, drawn as one
// line plot, as SVG (text: it diffs and renders on any browser and on GitHub) or as PNG (cairo: the
// report's plots, the same pixels in every viewer).
#include <optional>
#include <string>
#include <vector>

namespace rewardgen {

class Canvas;

struct PlotSeries {
  std::string label;
  std::vector<double> x, y;
  // Empty: a plain line. Else one per point: each point is marked and labelled (a trade-off plot,
  // e.g. accuracy against FD, one point per α).
  std::vector<std::string> point_labels = {};
};

// The (x, y) pairs of the rows of a metrics.jsonl that hold both keys, in file order. A key matches
// a row's key exactly, or as the one key of the file that starts with `key` followed by ':' (so
// "reward/world.clip" finds "reward/world.clip:/path/to/models/world"). Error naming the file when
// no row has both, or when the prefix fits several keys.
PlotSeries read_metric_series(const std::string& metrics_file, const std::string& x_key, const std::string& y_key,
                              const std::string& label);

// The trailing moving average over `window` points (1: unchanged), so a noisy per-step reward shows
// its trend; point i averages points max(0, i − window + 1) … i.
std::vector<double> moving_average(const std::vector<double>& values, int window);

struct PlotOptions {
  std::string title, x_label, y_label;
  int width = 760, height = 440;  // pixels
};

// Axes with rounded ticks spanning every series, one coloured polyline per series (with a marker and
// its label at each point when the series has point labels), a legend. Error on no series, an empty
// or non-finite one, or point labels that are not one per point.
void draw_line_plot(Canvas& canvas, const std::vector<PlotSeries>& series, const PlotOptions& options);
// The same plot as an SVG document / as the bytes of a PNG file.
std::string line_plot_svg(const std::vector<PlotSeries>& series, const PlotOptions& options);
std::string line_plot_png(const std::vector<PlotSeries>& series, const PlotOptions& options);

// How fast a run reaches a value (RLCM's claim against DDPO): the first x at which the mean of the
// last `window` y values is >= target (only once `window` points exist; all of them when the series
// is shorter); nullopt when it never does.
std::optional<double> first_reach(const PlotSeries& series, double target, int window);
// A run's final value: the mean of its last `window` y values (all of them when fewer); its initial
// value, of its first `window`. Error on an empty series.
double final_value(const PlotSeries& series, int window);
double initial_value(const PlotSeries& series, int window);

// "Nice" tick positions covering [low, high]: steps of 1, 2 or 5 × 10^k, about `count` of them.
std::vector<double> nice_ticks(double low, double high, int count);

}  // namespace rewardgen
