// rewardgen plot: one metric of several training runs against wall-clock (or step), as an SVG or a PNG.
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "eval/metrics_plot.h"
#include "io/atomic_file.h"
#include "io/output_paths.h"

namespace rewardgen::cli {

void add_plot_command(CLI::App& app, Context& context, Commands& commands) {
  struct Args {
    std::vector<std::string> runs, names;
    std::string y = "reward", x = "wall_time", out, title;
    int smooth = 25;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("plot", "Draw one metric of training runs (their metrics.jsonl) as a line plot (SVG, or PNG for a .png --out)");
  sub->add_option("runs", a->runs, "run folders (or metrics.jsonl files)")->required();
  sub->add_option("--y", a->y, "the metric to draw, e.g. reward/world.compositional or accuracy/overall; a prefix"
                               " before ':' is enough when it names one metric")->capture_default_str();
  sub->add_option("--x", a->x, "wall_time (drawn in minutes) or step")->capture_default_str()->check(CLI::IsMember({"wall_time", "step"}));
  sub->add_option("--smooth", a->smooth, "trailing moving average over this many points (1: raw)")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  sub->add_option("--name", a->names, "a legend label per run, in order (default: the run folder's name)");
  sub->add_option("--title", a->title, "the plot's title (default: the metric)");
  sub->add_option("--out", a->out, "the file to write: PNG when it ends in .png, else SVG")->required();
  commands.push_back({sub, [a, &context] {
                        if (!a->names.empty() && a->names.size() != a->runs.size())
                          throw Error(str("plot: ", a->names.size(), " --name for ", a->runs.size(), " runs"));
                        std::vector<std::string> files;
                        for (const std::filesystem::path run : a->runs)
                          files.push_back(std::filesystem::is_directory(run) ? (run / "metrics.jsonl").string() : run.string());
                        refuse_output_over_inputs(a->out, files);
                        std::vector<PlotSeries> series;
                        for (size_t i = 0; i < a->runs.size(); ++i) {
                          const std::filesystem::path run = a->runs[i];
                          const std::string& file = files[i];
                          const std::string label = a->names.empty() ? (std::filesystem::is_directory(run) ? run.filename() : run.parent_path().filename()).string()
                                                                     : a->names[i];
                          PlotSeries s = read_metric_series(file, a->x, a->y, label);
                          if (a->x == "wall_time")
                            for (double& x : s.x) x /= 60;
                          s.y = moving_average(s.y, a->smooth);
                          series.push_back(std::move(s));
                        }
                        PlotOptions options;
                        options.title = a->title.empty() ? a->y : a->title;
                        options.x_label = a->x == "wall_time" ? "training wall-clock (min)" : "step";
                        options.y_label = a->y + (a->smooth > 1 ? str(" (mean of ", a->smooth, ")") : "");
                        const bool png = std::filesystem::path(a->out).extension() == ".png";
                        write_file_atomic(a->out, png ? line_plot_png(series, options) : line_plot_svg(series, options));
                        context.log.info(str("wrote ", a->out));
                      }});
}

}  // namespace rewardgen::cli
