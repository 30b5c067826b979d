// rewardgen train: post-train a generator with a method (the training job of methods/train_job.h).
#include <iostream>

#include "cli/commands.h"
#include "cli/validators.h"
#include "core/error.h"
#include "methods/method.h"
#include "methods/train_job.h"

namespace rewardgen::cli {

namespace {

// `train` and `distill` are the same training job; distill offers the distillation methods only.
// `methods` empty: every registered method (an unknown name is the training job's error).
void add_job_command(CLI::App& app, Context& context, Commands& commands, const std::string& name, const std::string& help,
                     const std::string& default_method, const std::vector<std::string>& methods) {
  auto o = std::make_shared<TrainJobOptions>();
  o->method = default_method;
  auto no_eval = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand(name, help);
  std::vector<std::string> shown = methods;
  if (shown.empty())
    for (const MethodEntry& m : method_registry()) shown.push_back(m.name);
  std::string listed;
  for (const std::string& m : shown) listed += (listed.empty() ? "" : " | ") + m;
  sub->add_option("--method", o->method, listed + " (default " + default_method + "); their config keys are listed below")
      ->check(CLI::IsMember(shown))  // a misspelt method is a bad command line (exit 2), found before anything starts
      ->capture_default_str();
  sub->add_option("--config", o->config_file, "JSON object with the method's keys (default: the defaults below)");
  sub->add_option("--model", o->model_dir, "pipeline folder to start from (default: the shipped world teacher, models/world; rlcm, distar, distar-kl: its LCM, models/world/lcm)");
  sub->add_option("--out", o->out, "run folder: config.json, metrics.jsonl, checkpoints/, generator/, eval/")->required();
  sub->add_option("--minutes", o->minutes, "wall-clock budget of the training, over all resumes (0: the config's max_steps)")
      ->check(finite_range(0.0, 1e6))
      ->capture_default_str();
  sub->add_option("--skip-nonfinite", o->skip_nonfinite,
                  "steps with a NaN or infinite loss, gradient or metric to skip (no update, a warning) before the next stops the "
                  "run (default: the config's trainer.skip_nonfinite, 0)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  sub->add_flag("--resume", o->resume, "continue the run in --out from its newest checkpoint, with its own config");
  sub->add_option("--eval-limit", o->eval_limit, "task-balanced evaluation prompts after training (0: all 504)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}))
      ->capture_default_str();
  sub->add_flag("--no-eval", *no_eval, "export the generator without evaluating it");
  sub->add_option("--device", o->device,
                  "cpu | cuda | cuda:N: where the models train (fp32 master weights; the config's precision bf16 "
                  "runs the forward passes under autocast) and the final evaluation samples; a run may resume on another device")
      ->capture_default_str();
  sub->add_option("--dist-timeout", o->dist_timeout_s,
                  "under a torchrun-style launch (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set; docs/distributed.md): seconds a "
                  "rank waits for the others (rendezvous, each all-reduce; rank 0's evaluations and checkpoints must fit) before "
                  "it ends with an error")
      ->check(finite_range(1.0, 86400.0))
      ->capture_default_str();
  sub->footer("Methods:\n" + describe_methods(methods));
  commands.push_back({sub, [o, no_eval, &context] {
                        TrainJobOptions options = *o;
                        options.evaluate = !*no_eval;
                        const TrainJobResult result = run_train_job(options, context.log);
                        if (!result.exported) return;  // a rank other than 0 of a data-parallel launch: rank 0 reports
                        std::cout << "run: " << result.run_dir << "\ngenerator: " << result.generator_dir << "\n";
                        if (!result.eval.is_null()) std::cout << "eval: " << result.eval_dir << "/eval.json\n" << result.eval.dump(2) << "\n";
                      }});
}

}  // namespace

void add_train_command(CLI::App& app, Context& context, Commands& commands) {
  add_job_command(app, context, commands, "train",
                  "Post-train a fast generator with a method: run folder -> train -> export generator/ -> eval/", "r0", {});
  add_job_command(app, context, commands, "distill",
                  "Distil the teacher into a few-step model (LCD: a latent consistency model): run folder -> train -> "
                  "export generator/ -> eval/",
                  "lcd", {"lcd"});
}

}  // namespace rewardgen::cli
