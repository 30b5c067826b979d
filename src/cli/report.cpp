// rewardgen report: runs and evaluations as one HTML page (metrics table beside the teacher's
// references, PNG training curves, the same prompts and seeds drawn by every model).
#include <iostream>

#include "cli/commands.h"
#include "cli/validators.h"
#include "eval/report.h"

namespace rewardgen::cli {

void add_report_command(CLI::App& app, Context& context, Commands& commands) {
  auto o = std::make_shared<ReportOptions>();
  auto* sub = app.add_subcommand(
      "report",
      "Write one self-contained HTML page (index.html) of training runs and evaluations: every metric in a table beside "
      "the teacher at DDIM 25 and 50 + CFG, reward and accuracy curves, the same prompts and seeds from every model");
  sub->add_option("inputs", o->inputs, "run folders (train/distill --out) or eval folders (eval --out)")->required();
  sub->add_option("--out", o->out, "the report folder: index.html, plots/, grids/, configs/, reference/")->required();
  sub->add_option("--name", o->names, "a label per input, in order (default: the folder's name)");
  sub->add_option("--teacher", o->teacher, "the reference pipeline (default: the shipped world teacher, models/world)");
  sub->add_option("--reference-steps", o->reference_steps, "DDIM step counts of the teacher's reference rows")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000}));
  sub->add_option("--reference-cfg", o->reference_guidance, "the references' classifier-free guidance scale")
      ->capture_default_str()
      ->check(finite_range(0.0, 1000.0));
  sub->add_option("--reference-limit", o->reference_limit,
                  "task-balanced prompts for the references (0: the whole held-out set; reused only when it matches the inputs')")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  sub->add_option("--grid-prompts", o->grid_prompts_per_task, "held-out prompts per task in the image grids")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{8}));
  sub->add_option("--grid-seeds", o->grid_seeds, "seeds per prompt in the image grids")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{8}));
  sub->add_option("--device", o->device, "cpu | cuda | cuda:N (reference evaluations and grids)")->capture_default_str();
  commands.push_back({sub, [o, &context] {
                        const ReportResult result = write_report(*o, context.log);
                        std::cout << result.index_html << "\n";
                      }});
}

}  // namespace rewardgen::cli
