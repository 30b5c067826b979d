// rewardgen compare: eval.json files side by side as one Markdown table (accuracy per task, the
// position controls, FD, diversity, NFE, images/s), and with --plot one figure against another as a
// trade-off plot (accuracy against FD, one point per file, one line per --series).
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "eval/eval_report.h"
#include "io/atomic_file.h"
#include "io/output_paths.h"

namespace rewardgen::cli {

void add_compare_command(CLI::App& app, Context& context, Commands& commands) {
  struct Args {
    std::vector<std::string> files, names, series;
    std::string plot, x = "frechet_distance", y = "accuracy/overall", title;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("compare", "Print eval.json files side by side as a Markdown table; --plot draws one figure against another");
  sub->add_option("files", a->files, "eval.json files (or eval folders)")->required();
  sub->add_option("--name", a->names, "a row label per file, in order (default: each file's model); the points' labels in --plot");
  auto* plot = sub->add_option("--plot", a->plot, "also draw --y against --x, one point per file: SVG, or PNG for a .png path");
  sub->add_option("--x", a->x, "the plot's x: a path of keys in eval.json, e.g. frechet_distance, diversity")
      ->capture_default_str()->needs(plot);
  sub->add_option("--y", a->y, "the plot's y, e.g. accuracy/overall (drawn in %) or rewards/world.compositional/mean")
      ->capture_default_str()->needs(plot);
  sub->add_option("--series", a->series, "the plot's line per file, in order (files of one series joined in the order given)")
      ->needs(plot);
  sub->add_option("--title", a->title, "the plot's title (default: y against x)")->needs(plot);
  commands.push_back({sub, [a, &context] {
                        std::vector<std::string> files;
                        for (const std::string& f : a->files) files.push_back(std::filesystem::is_directory(f) ? f + "/eval.json" : f);
                        if (!a->plot.empty()) refuse_output_over_inputs(a->plot, files, "--plot");
                        const std::string table = eval_comparison_table(files, a->names);
                        if (!a->plot.empty()) {
                          const std::vector<PlotSeries> series = eval_tradeoff_series(files, a->names, a->series, a->x, a->y);
                          PlotOptions options;
                          options.x_label = a->x;
                          options.y_label = a->y + (a->y.rfind("accuracy/", 0) == 0 ? " (%)" : "");
                          options.title = a->title.empty() ? str(options.y_label, " against ", a->x) : a->title;
                          const bool png = std::filesystem::path(a->plot).extension() == ".png";
                          write_file_atomic(a->plot, png ? line_plot_png(series, options) : line_plot_svg(series, options));
                          context.log.info(str("wrote ", a->plot));
                        }
                        std::cout << table;
                      }});
}

}  // namespace rewardgen::cli
