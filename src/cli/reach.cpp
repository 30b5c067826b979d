// rewardgen reach: how much sooner runs reach a baseline run's final value of a metric (RLCM's
// claim against DDPO), as a Markdown table.
#include <cmath>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "eval/metrics_plot.h"

namespace rewardgen::cli {

namespace {

std::string minutes(const std::optional<double>& seconds) {
  return seconds ? str(std::round(*seconds / 6) / 10, " min") : std::string("not reached");
}

}  // namespace

void add_reach_command(CLI::App& app, Context& context, Commands& commands) {
  struct Args {
    std::vector<std::string> runs, names;
    std::string y = "reward";
    int window = 10;
    bool gain = false;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand(
      "reach", "Wall-clock each training run needs to reach the first run's final value of a metric, and the speed-up");
  sub->add_option("runs", a->runs, "run folders (or metrics.jsonl files); the first is the baseline")->required();
  sub->add_option("--y", a->y, "the metric, e.g. reward/world.jpeg (a prefix before ':' is enough when it names one metric)")
      ->capture_default_str();
  sub->add_option("--window", a->window, "points averaged: the final value is the mean of the last N, a run reaches it when "
                                         "the mean of its last N points does")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  sub->add_option("--name", a->names, "a label per run, in order (default: the run folder's name)");
  sub->add_flag("--gain", a->gain, "each run's target is its own initial value (mean of its first N points) plus the baseline's "
                                   "gain, instead of the baseline's final value (for runs that start from different models)");
  commands.push_back({sub, [a] {
                        if (a->runs.size() < 2) throw Error("reach: give a baseline run and at least one other");
                        if (!a->names.empty() && a->names.size() != a->runs.size())
                          throw Error(str("reach: ", a->names.size(), " --name for ", a->runs.size(), " runs"));
                        std::vector<PlotSeries> series;
                        for (size_t i = 0; i < a->runs.size(); ++i) {
                          const std::filesystem::path run = a->runs[i];
                          const bool folder = std::filesystem::is_directory(run);
                          const std::string label = !a->names.empty() ? a->names[i]
                                                    : folder          ? run.filename().string()
                                                                      : run.parent_path().filename().string();
                          series.push_back(read_metric_series(folder ? (run / "metrics.jsonl").string() : run.string(), "wall_time",
                                                              a->y, label));
                        }
                        const PlotSeries& base = series.front();
                        const double gain = final_value(base, a->window) - initial_value(base, a->window);
                        auto target = [&](const PlotSeries& s) {
                          return a->gain ? initial_value(s, a->window) + gain : final_value(base, a->window);
                        };
                        const std::optional<double> baseline = first_reach(base, target(base), a->window);
                        std::cout << (a->gain ? str("Target: each run's initial ", a->y, " + ", base.label, "'s gain ", gain)
                                              : str("Target: ", base.label, "'s final ", a->y, " = ", target(base)))
                                  << " (means of " << a->window << " points)\n\n| run | initial | final | target | wall-clock to the target | speed-up |\n"
                                  << "|---|---|---|---|---|---|\n";
                        for (const PlotSeries& s : series) {
                          const std::optional<double> reach = first_reach(s, target(s), a->window);
                          const std::string speedup = reach && baseline && *reach > 0 ? str(std::round(*baseline / *reach * 10) / 10, "x") : "-";
                          std::cout << "| " << s.label << " | " << initial_value(s, a->window) << " | " << final_value(s, a->window) << " | "
                                    << target(s) << " | " << minutes(reach) << " | " << speedup << " |\n";
                        }
                      }});
}

}  // namespace rewardgen::cli
