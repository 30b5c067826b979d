#include "eval/metrics_plot.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <set>
#include <sstream>

#include "core/error.h"
#include "eval/canvas.h"
#include "io/json_config.h"
#include "io/run_dir.h"

namespace rewardgen {

namespace {

// The file's key that `key` names: itself, or the single "key:..." one.
std::string resolve_key(const std::string& file, const std::set<std::string>& keys, const std::string& key) {
  if (keys.count(key)) return key;
  std::vector<std::string> found;
  for (const std::string& k : keys)
    if (k.rfind(key + ":", 0) == 0) found.push_back(k);
  if (found.size() == 1) return found[0];
  if (found.empty()) throw Error(str(file, ": no metric '", key, "'"));
  throw Error(str(file, ": '", key, "' fits ", found.size(), " metrics (", found[0], ", ", found[1], ", ...): name one"));
}

// Colours that stay apart for the colour-blind (Okabe–Ito), then repeated.
const std::vector<std::string> kLineColours = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                               "#E69F00", "#56B4E9", "#000000", "#F0E442"};

}  // namespace

PlotSeries read_metric_series(const std::string& metrics_file, const std::string& x_key, const std::string& y_key,
                              const std::string& label) {
  if (!std::filesystem::exists(metrics_file)) throw Error(str("cannot read '", metrics_file, "'"));
  const std::vector<Json> rows = read_metrics(metrics_file);  // Error naming the line that is not JSON
  std::set<std::string> keys;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!rows[i].is_object()) throw Error(str(metrics_file, ": row ", i + 1, " is not a JSON object"));
    for (const auto& item : rows[i].items()) keys.insert(item.key());
  }
  const std::string x = resolve_key(metrics_file, keys, x_key), y = resolve_key(metrics_file, keys, y_key);
  PlotSeries series{label, {}, {}};
  for (const Json& row : rows) {
    if (!row.contains(x) || !row.contains(y) || !row[x].is_number() || !row[y].is_number()) continue;
    series.x.push_back(row[x].get<double>());
    series.y.push_back(row[y].get<double>());
  }
  if (series.x.empty()) throw Error(str(metrics_file, ": no row holds both '", x, "' and '", y, "'"));
  return series;
}

std::vector<double> moving_average(const std::vector<double>& values, int window) {
  if (window < 1) throw Error(str("moving average: the window must be >= 1, got ", window));
  std::vector<double> out(values.size());
  double sum = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    sum += values[i];
    if (i >= static_cast<size_t>(window)) sum -= values[i - static_cast<size_t>(window)];
    out[i] = sum / static_cast<double>(std::min(i + 1, static_cast<size_t>(window)));
  }
  return out;
}

std::optional<double> first_reach(const PlotSeries& s, double target, int window) {
  if (window < 1) throw Error(str("first_reach: the window must be >= 1, got ", window));
  const size_t n = s.y.size(), w = std::min(n, static_cast<size_t>(window));
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    sum += s.y[i];
    if (i >= w) sum -= s.y[i - w];
    if (i + 1 >= w && sum / static_cast<double>(w) >= target) return s.x[i];
  }
  return std::nullopt;
}

namespace {

// The mean of `window` y values (all of them when fewer) at the end of the series or at its start.
double window_mean(const PlotSeries& s, int window, bool at_end, const char* what) {
  if (s.y.empty()) throw Error(str(what, ": the series '", s.label, "' is empty"));
  if (window < 1) throw Error(str(what, ": the window must be >= 1, got ", window));
  const size_t w = std::min(s.y.size(), static_cast<size_t>(window)), first = at_end ? s.y.size() - w : 0;
  double sum = 0;
  for (size_t i = first; i < first + w; ++i) sum += s.y[i];
  return sum / static_cast<double>(w);
}

}  // namespace

double final_value(const PlotSeries& s, int window) { return window_mean(s, window, true, "final_value"); }

double initial_value(const PlotSeries& s, int window) { return window_mean(s, window, false, "initial_value"); }

std::vector<double> nice_ticks(double low, double high, int count) {
  if (!(high > low)) high = low + 1;  // one value: a unit span around it
  const double raw = (high - low) / std::max(count, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * magnitude >= raw) { step = m * magnitude; break; }
  // Tick k is k·step, computed as k / (1/step) for steps below 1 so that 0.3 prints as 0.3.
  const double inverse = step < 1 ? std::round(1 / step) : 0;
  auto tick = [&](double k) {
    const double t = inverse > 0 ? k / inverse : k * step;
    return t == 0 ? 0.0 : t;  // never "-0"
  };
  std::vector<double> ticks;
  for (double k = std::floor(low / step + 1e-9); tick(k) <= high + 1e-9 * step; ++k) ticks.push_back(tick(k));
  if (ticks.back() < high) ticks.push_back(tick(std::round(ticks.back() / step) + 1));
  return ticks;
}

void draw_line_plot(Canvas& canvas, const std::vector<PlotSeries>& series, const PlotOptions& options) {
  if (series.empty()) throw Error("plot: no series to draw");
  double x_low = INFINITY, x_high = -INFINITY, y_low = INFINITY, y_high = -INFINITY;
  for (const PlotSeries& s : series) {
    if (s.x.empty() || s.x.size() != s.y.size()) throw Error(str("plot: series '", s.label, "' is empty or uneven"));
    if (!s.point_labels.empty() && s.point_labels.size() != s.x.size())
      throw Error(str("plot: series '", s.label, "' has ", s.point_labels.size(), " point labels for ", s.x.size(), " points"));
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) throw Error(str("plot: series '", s.label, "' holds a non-finite value"));
      x_low = std::min(x_low, s.x[i]), x_high = std::max(x_high, s.x[i]);
      y_low = std::min(y_low, s.y[i]), y_high = std::max(y_high, s.y[i]);
    }
  }
  const std::vector<double> x_ticks = nice_ticks(x_low, x_high, 6), y_ticks = nice_ticks(y_low, y_high, 5);
  const double left = 70, right = options.width - 200.0, top = 40, bottom = options.height - 55.0;
  const double x0 = x_ticks.front(), x1 = x_ticks.back(), y0 = y_ticks.front(), y1 = y_ticks.back();
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (right - left); };
  auto py = [&](double y) { return bottom - (y - y0) / (y1 - y0) * (bottom - top); };
  using Anchor = Canvas::Anchor;

  canvas.rect(0, 0, options.width, options.height, "#ffffff", "");
  canvas.text((left + right) / 2, 22, options.title, Anchor::middle, 14);
  for (double t : x_ticks) {
    canvas.line(px(t), top, px(t), bottom, "#e4e4e4", 1);
    canvas.text(px(t), bottom + 16, number_text(t), Anchor::middle, 12);
  }
  for (double t : y_ticks) {
    canvas.line(left, py(t), right, py(t), "#e4e4e4", 1);
    canvas.text(left - 6, py(t) + 4, number_text(t), Anchor::end, 12);
  }
  canvas.rect(left, top, right - left, bottom - top, "", "#444444");
  canvas.text((left + right) / 2, options.height - 14, options.x_label, Anchor::middle, 12);
  canvas.text(18, (top + bottom) / 2, options.y_label, Anchor::middle, 12, /*vertical=*/true);
  for (size_t k = 0; k < series.size(); ++k) {
    const std::string& colour = kLineColours[k % kLineColours.size()];
    std::vector<std::pair<double, double>> points;
    for (size_t i = 0; i < series[k].x.size(); ++i) points.emplace_back(px(series[k].x[i]), py(series[k].y[i]));
    canvas.polyline(points, colour, 1.6);
    for (size_t i = 0; i < series[k].point_labels.size(); ++i) {
      const auto [x, y] = points[i];
      canvas.rect(x - 3.5, y - 3.5, 7, 7, colour, "");
      canvas.text(x + 7, y - 6, series[k].point_labels[i], Anchor::start, 11);
    }
    const double ly = top + 10 + 18.0 * static_cast<double>(k);
    canvas.line(right + 12, ly, right + 32, ly, colour, 3);
    canvas.text(right + 38, ly + 4, series[k].label, Anchor::start, 12);
  }
}

std::string line_plot_svg(const std::vector<PlotSeries>& series, const PlotOptions& options) {
  return draw_svg(options.width, options.height, [&](Canvas& canvas) { draw_line_plot(canvas, series, options); });
}

std::string line_plot_png(const std::vector<PlotSeries>& series, const PlotOptions& options) {
  return draw_png(options.width, options.height, [&](Canvas& canvas) { draw_line_plot(canvas, series, options); });
}

}  // namespace rewardgen
