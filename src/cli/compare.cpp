// rewardgen compare: eval.json files side by side as one Markdown table (accuracy per task, FD,
// diversity, NFE, images/s).
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "eval/eval_report.h"

namespace rewardgen::cli {

void add_compare_command(CLI::App& app, Context& context, Commands& commands) {
  struct Args {
    std::vector<std::string> files, names;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("compare", "Print eval.json files side by side as a Markdown table");
  sub->add_option("files", a->files, "eval.json files (or eval folders)")->required();
  sub->add_option("--name", a->names, "a row label per file, in order (default: each file's model)");
  commands.push_back({sub, [a] {
                        std::vector<std::string> files;
                        for (const std::string& f : a->files) files.push_back(std::filesystem::is_directory(f) ? f + "/eval.json" : f);
                        std::cout << eval_comparison_table(files, a->names);
                      }});
}

}  // namespace rewardgen::cli
