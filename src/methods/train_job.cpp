#include "methods/train_job.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "core/paths.h"
#include "core/progress.h"
#include "dist/collective.h"
#include "eval/eval_report.h"
#include "eval/world_eval.h"
#include "io/output_paths.h"
#include "io/run_dir.h"
#include "methods/method.h"
#include "rewards/reward.h"
#include "rewards/world_rewards.h"
#include "sampling/pipeline.h"

namespace fs = std::filesystem;

namespace rewardgen {

namespace {

struct ResolvedJob {
  MethodEntry method;
  Json config;  // the method's resolved config
  std::string model_dir;
  at::Device device = at::kCPU;
};

ResolvedJob resolve(const TrainJobOptions& o) {
  if (!std::isfinite(o.minutes) || o.minutes < 0 || o.minutes > 1e6)
    throw Error(str("--minutes must be a finite number in [0, 1e6], got ", o.minutes));
  if (o.eval_limit < 0) throw Error(str("--eval-limit must be >= 0, got ", o.eval_limit));
  if (o.out.empty()) throw Error("the training job needs an output folder (--out)");
  if (!std::isfinite(o.dist_timeout_s) || o.dist_timeout_s < 1 || o.dist_timeout_s > 86400)
    throw Error(str("--dist-timeout must be a number of seconds in [1, 86400], got ", o.dist_timeout_s));
  const at::Device device = parse_device(o.device);
  const MethodEntry method = find_method(o.method);
  const LaunchEnv launch = read_launch_env();
  // Every method's step trains on its shard of the global batch (StepContext::shard), on the CPU.
  if (launch.distributed() && !device.is_cpu())
    throw Error(str("this is rank ", launch.rank, " of a ", launch.world_size, "-process launch, which trains on the CPU (Gloo); --device ",
                    o.device, " needs NCCL, not built yet"));
  const std::string shipped = world_model_dir() + (method.default_model.empty() ? "" : "/" + method.default_model);
  ResolvedJob job{method, Json::object(), o.model_dir.empty() ? shipped : o.model_dir, device};
  if (!fs::exists(job.model_dir + "/model_index.json"))
    throw Error(str("'", job.model_dir, "' is not a pipeline folder (no model_index.json)",
                    o.model_dir.empty() && !method.default_model.empty()
                        ? str("; ", method.name, " starts from it by default: pass --model DIR (e.g. the generator/ of a `rewardgen distill` run)")
                        : std::string()));
  const Json file = o.config_file.empty() ? Json::object() : load_json_file(o.config_file);
  if (!file.is_object()) throw Error(str(o.config_file, ": a method config must be a JSON object"));
  ConfigReader reader(file, o.config_file.empty() ? "(defaults)" : o.config_file);
  job.config = job.method.resolve(reader);
  reader.reject_unknown();
  refuse_output_over_inputs(o.out, {job.model_dir, o.config_file});  // the model trained from, or its config
  return job;
}

// A resumed run trains with the config it started with; a different one now is an error.
void check_resume_config(const RunDir& run, const Json& saved, const ResolvedJob& job, const TrainJobOptions& o) {
  if (saved.value("method", "") != job.method.name)
    throw Error(str(run.config_path(), ": the run was started with --method ", saved.value("method", "?"), ", not ", job.method.name));
  if (!o.config_file.empty() && saved.value("config", Json()) != job.config)
    throw Error(str(run.config_path(), ": the run was started with another config than '", o.config_file,
                    "'; resume without --config, or start a new run folder"));
}

// The rewards the run trained on ("rewards": {"spec": weight, ...} in every method's config), each
// scored on the evaluation's images beside the checker; none for a method without rewards (LCD).
std::vector<std::shared_ptr<Reward>> trained_rewards(const Json& config, at::Device device, const Logger& log) {
  std::vector<std::shared_ptr<Reward>> rewards;
  if (!config.contains("rewards") || !config["rewards"].is_object()) return rewards;
  const RewardRegistry registry = builtin_reward_registry();
  RewardContext context;
  context.device = device;
  context.log = log;
  for (const auto& item : config["rewards"].items()) rewards.push_back(registry.make(item.key(), context));
  return rewards;
}

// The data-parallel process group of a torchrun-style launch (null: one process), after checking
// that every rank resolved the same job.
std::unique_ptr<Collective> join_training_launch(const TrainJobOptions& o, const ResolvedJob& job, const Logger& log) {
  const Json resolved = {{"command", "train"}, {"method", job.method.name}, {"model", job.model_dir}, {"config", job.config},
                         {"out", fs::absolute(o.out).string()}, {"minutes", o.minutes}, {"skip_nonfinite", o.skip_nonfinite}, {"resume", o.resume}};
  return join_launch(resolved.dump(), std::chrono::milliseconds(static_cast<int64_t>(o.dist_timeout_s * 1000)), log);
}

}  // namespace

TrainJobResult run_train_job(const TrainJobOptions& o, const Logger& log) {
  ResolvedJob job = resolve(o);
  const std::unique_ptr<Collective> collective = join_training_launch(o, job, log);
  const bool writer = collective == nullptr || collective->rank() == 0;
  // --resume continues a finished or interrupted run; its own config stands.
  const bool resume = o.resume;
  const RunDir run = open_shared_run_dir(o.out, resume, collective.get(), [&](const RunDir& made) {
    if (!resume) made.write_config({{"method", job.method.name}, {"model", job.model_dir}, {"config", job.config}});
  });
  if (resume) {
    const Json saved = load_json_file(run.config_path());
    check_resume_config(run, saved, job, o);
    job.config = saved.at("config");
    job.model_dir = saved.value("model", job.model_dir);
  }
  TrainerConfig trainer = job.method.trainer(job.config);
  if (o.minutes > 0) trainer.max_minutes = o.minutes;
  if (o.skip_nonfinite >= 0) trainer.skip_nonfinite = o.skip_nonfinite;

  TrainJobResult result;
  result.run_dir = run.root();
  if (writer)
    log.info(str("training ", job.method.name, " from ", job.model_dir, " into ", run.root(), " on ", job.device.str(),
                 trainer.max_minutes > 0 ? str(" for ", trainer.max_minutes, " min of wall-clock") : std::string()));
  std::unique_ptr<MethodTask> task = job.method.make(job.config, job.model_dir, log, job.device);
  result.summary = Trainer(trainer, run, log, collective.get()).run(*task, resume);
  if (!writer) return result;

  result.exported = true;
  result.generator_dir = run.file("generator");
  task->export_generator(result.generator_dir);
  log.info(str("exported the generator to ", result.generator_dir));
  if (!o.evaluate) return result;

  // Judge the exported files, as `rewardgen eval --model <run>/generator` would.
  result.eval_dir = run.file("eval");
  fs::create_directories(result.eval_dir);
  const LoadOptions on_device{at::kFloat, job.device};
  const Pipeline pipeline = load_pipeline(result.generator_dir, on_device, log);
  const TextToImage model(pipeline, ClipTokenizer::from_directory(pipeline.tokenizer_dir));
  const std::vector<world::EvalPrompt> lines =
      world::balanced_subset(world::read_prompts_file(shipped_file("world/eval_prompts.jsonl")), o.eval_limit);
  WorldEvalOptions options;
  options.sampler = sampler_options(pipeline.scheduler.recipe);
  options.rewards = trained_rewards(job.config, job.device, log);
  // Whether the generator follows the position relation or the noise's layout (docs/world.md);
  // sampled after the timed images, about a quarter more images on all 504 prompts.
  options.relation_control = true;
  const std::shared_ptr<ClipVisionModel> encoder = load_eval_image_encoder(result.generator_dir, on_device, log);
  ProgressBar bar("eval", world_eval_sampled_images(lines, options));
  const WorldEvalResult evaluation = evaluate_world(model, lines, options, encoder.get(), &bar);
  bar.finish();
  const Json training = {{"training", {{"steps", result.summary.last_step}, {"wall_time_s", result.summary.wall_time}}}};
  result.eval = write_eval_report(result.eval_dir, evaluation, lines, {result.generator_dir, "world:eval", options.sampler, 0, false, training});
  return result;
}

double time_method_steps(const std::string& method, int64_t steps, const std::string& work_dir, const std::string& model_dir,
                         const Logger& log) {
  if (steps < 2 || steps > 1000) throw Error(str("timing ", method, ": steps must be in 2..1000 (the first is a warm-up), got ", steps));
  find_method(method);  // an unknown name before anything is written
  TrainJobOptions job;
  job.method = method;
  job.model_dir = model_dir;
  job.out = work_dir + "/" + method;
  job.config_file = work_dir + "/" + method + ".json";
  job.evaluate = false;
  fs::remove_all(job.out);
  fs::create_directories(work_dir);
  save_json_file(job.config_file,
                 {{"trainer", {{"max_steps", steps}, {"checkpoint_every", 1000000}, {"eval_every", 0}, {"log_every", 1}}}});
  run_train_job(job, log);
  const std::vector<Json> rows = read_metrics(job.out + "/metrics.jsonl");
  fs::remove_all(job.out);
  fs::remove(job.config_file);
  if (rows.size() < 2) throw Error(str("timing ", method, ": ", rows.size(), " steps logged, need 2"));
  return (rows.back().at("wall_time").get<double>() - rows.front().at("wall_time").get<double>()) /
         static_cast<double>(rows.size() - 1);
}

std::string describe_methods(const std::vector<std::string>& only) {
  std::string text;
  for (const MethodEntry& m : method_registry()) {
    if (!only.empty() && std::find(only.begin(), only.end(), m.name) == only.end()) continue;
    const Json empty = Json::object();
    ConfigReader reader(empty, "(defaults)");
    text += str("  ", m.name, ": ", m.help, "\n    config keys with their defaults:\n");
    std::string dump = m.resolve(reader).dump(2);
    std::string indented = "    ";
    for (char ch : dump) {
      indented += ch;
      if (ch == '\n') indented += "    ";
    }
    text += indented + "\n";
  }
  return text;
}

}  // namespace rewardgen
