#pragma once
// Each subcommand lives in its own file and registers itself here through an add_* function; the
// CLI only parses arguments and calls the library. Unimplemented commands are simply not added.
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "core/log.h"

namespace rewardgen::cli {

// Settings every command shares, filled by the global options before a command runs.
struct Context {
  Logger log;
  int threads = 0;  // in force after the global options are applied
};

struct Command {
  CLI::App* app;                // the (sub)subcommand whose parse selects it
  std::function<void()> run;    // throws rewardgen::Error on user errors
};
using Commands = std::vector<Command>;

// The whole command line: the global options (--threads into `context`, --log-level into
// `log_level`) and every command. main() parses and runs it; tests walk it to check the flags.
void build_app(CLI::App& app, Context& context, Commands& commands, std::string& log_level);

void add_inspect_command(CLI::App& app, Context& context, Commands& commands);
void add_bench_command(CLI::App& app, Context& context, Commands& commands);
void add_tokenize_command(CLI::App& app, Context& context, Commands& commands);
void add_model_command(CLI::App& app, Context& context, Commands& commands);
void add_sample_command(CLI::App& app, Context& context, Commands& commands);
void add_world_command(CLI::App& app, Context& context, Commands& commands);
void add_pretrain_command(CLI::App& app, Context& context, Commands& commands);
void add_eval_command(CLI::App& app, Context& context, Commands& commands);
void add_reward_command(CLI::App& app, Context& context, Commands& commands);
void add_ascent_command(CLI::App& app, Context& context, Commands& commands);
void add_train_command(CLI::App& app, Context& context, Commands& commands);
void add_compare_command(CLI::App& app, Context& context, Commands& commands);
void add_plot_command(CLI::App& app, Context& context, Commands& commands);
void add_reach_command(CLI::App& app, Context& context, Commands& commands);
void add_report_command(CLI::App& app, Context& context, Commands& commands);

}  // namespace rewardgen::cli
