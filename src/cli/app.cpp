#include "cli/commands.h"

namespace rewardgen::cli {

void build_app(CLI::App& app, Context& context, Commands& commands, std::string& log_level) {
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  app.add_option("--threads", context.threads,
                 "intra-op CPU threads; 0 = all cores (more than the machine's cores are lowered to them, with a warning)")
      ->default_val(0)
      ->check(CLI::NonNegativeNumber);
  app.add_option("--log-level", log_level, "debug, info, warn, error or quiet")
      ->default_val("info")
      ->check(CLI::IsMember({"debug", "info", "warn", "error", "quiet"}));

  add_inspect_command(app, context, commands);
  add_bench_command(app, context, commands);
  add_tokenize_command(app, context, commands);
  add_model_command(app, context, commands);
  add_sample_command(app, context, commands);
  add_world_command(app, context, commands);
  add_pretrain_command(app, context, commands);
  add_eval_command(app, context, commands);
  add_reward_command(app, context, commands);
  add_ascent_command(app, context, commands);
  add_train_command(app, context, commands);
  add_compare_command(app, context, commands);
  add_plot_command(app, context, commands);
  add_reach_command(app, context, commands);
  add_report_command(app, context, commands);
}

}  // namespace rewardgen::cli
