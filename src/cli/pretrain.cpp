// rewardgen pretrain {vae,clip,teacher,verifier}: trains the embedded world's models (docs/world.md) in a run
// directory (resumable, with metrics and progress), then exports the result in diffusers layout
// as fp16 and evaluates the exported files.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/validators.h"
#include "core/error.h"
#include "dist/collective.h"
#include "io/atomic_file.h"
#include "io/json_config.h"
#include "io/output_paths.h"
#include "io/run_dir.h"
#include "models/diffusers_io.h"
#include "sampling/pipeline.h"
#include "pretrain/clip.h"
#include "pretrain/teacher.h"
#include "eval/world_eval.h"
#include "pretrain/vae.h"
#include "pretrain/verifier.h"
#include "pretrain/world_models.h"
#include "text/bpe_trainer.h"

namespace rewardgen::cli {
namespace {

struct PretrainArgs {
  std::string out, config_file, export_dir;
  bool resume = false;
  int64_t steps = 0;        // overrides trainer.max_steps when > 0
  int64_t stop_at = 0;      // stop (resumably) after this many steps
  int64_t eval_limit = 0;   // evaluation lines (0 = all 504)
  int64_t skip_nonfinite = -1;  // overrides trainer.skip_nonfinite when >= 0
  double dist_timeout_s = 1800;  // under a torchrun-style launch: how long a rank waits for the others
  std::string pool_file;        // verifier: an earlier run's pool.safetensors to train on instead of sampling one
};

// The run's config file (or an empty object), read by `read` into the task's config; unknown keys
// are errors here (a typo would silently train something else for hours).
// On resume, the run's own config.json (so a resumed run trains what it started with).
template <class Read>
auto load_config(const PretrainArgs& a, Read read) {
  const std::string path = a.resume ? a.out + "/config.json" : a.config_file;
  if (a.resume && !a.config_file.empty()) throw Error("--config and --resume exclude each other: a resumed run keeps its config.json");
  const Json object = path.empty() ? Json::object() : load_json_file(path);
  ConfigReader reader(object, path.empty() ? "<defaults>" : path);
  auto config = read(reader);
  reader.reject_unknown();
  if (a.steps > 0) config.trainer.max_steps = a.steps;
  if (a.skip_nonfinite >= 0) config.trainer.skip_nonfinite = a.skip_nonfinite;
  return config;
}

RunDir open_run(const PretrainArgs& a, const Json& resolved, Collective* collective = nullptr) {
  // config.json on resume too: --steps may have extended the run.
  return open_shared_run_dir(a.out, a.resume, collective, [&](const RunDir& run) { run.write_config(resolved); });
}

// Under a torchrun-style launch (VAE and teacher: each rank trains on its shard of every batch,
// rank 0 writes the run folder, exports and evaluates; docs/distributed.md): the process group,
// once the ranks agree on the job. Null when the process runs alone.
std::unique_ptr<Collective> join_pretrain_launch(const char* model, const PretrainArgs& a, const Json& resolved,
                                                 const Context& context) {
  const Json job = {{"command", str("pretrain ", model)}, {"config", resolved}, {"out", std::filesystem::absolute(a.out).string()},
                    {"export", std::filesystem::absolute(a.export_dir).string()}, {"resume", a.resume}, {"stop_at", a.stop_at}};
  return join_launch(job.dump(), std::chrono::milliseconds(static_cast<int64_t>(a.dist_timeout_s * 1000)), context.log);
}

bool writes(const std::unique_ptr<Collective>& collective) { return collective == nullptr || collective->rank() == 0; }

// CLIP's contrastive loss compares every image with every prompt of the whole batch, which a rank
// holding its shard alone cannot compute (it would need the embeddings gathered with their
// gradients): refused under a launch before anything is written (docs/distributed.md).
void refuse_a_launch(const char* model) {
  const LaunchEnv launch = read_launch_env();
  if (launch.distributed())
    throw Error(str("this is rank ", launch.rank, " of a ", launch.world_size, "-process launch (WORLD_SIZE), but `pretrain ", model,
                    "` does not train data-parallel (its contrastive loss needs the whole batch): run it as one process"));
}

// A run stopped before its last step (--stop-at) exports nothing; says how to go on.
bool stopped_early(const TrainSummary& summary, const TrainerConfig& trainer) {
  if (summary.last_step >= trainer.max_steps) return false;
  std::cout << "stopped at step " << summary.last_step << "; continue with --resume\n";
  return true;
}

// eval.json in the run directory: the evaluation of the exported files and how the run went.
void write_report(const RunDir& run, Json report, const TrainSummary& summary, const std::string& exported) {
  report["wall_time_s"] = summary.wall_time;
  report["steps"] = summary.last_step;
  report["export"] = exported;
  save_json_file(run.file("eval.json"), report);
  std::cout << report.dump(2) << "\n";
}

void add_common_options(CLI::App* sub, PretrainArgs& a) {
  sub->add_option("--out", a.out, "run directory (config.json, metrics.jsonl, checkpoints/)")->required();
  sub->add_option("--config", a.config_file, "JSON config overriding the defaults (see docs/world.md)");
  sub->add_flag("--resume", a.resume, "continue the run in --out from its newest checkpoint");
  sub->add_option("--steps", a.steps, "total training steps (overrides trainer.max_steps)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  sub->add_option("--stop-at", a.stop_at, "stop after this many steps, resumable later (0: run to the end)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  sub->add_option("--skip-nonfinite", a.skip_nonfinite,
                  "steps with a NaN or infinite loss, gradient or metric to skip before the next stops the run (overrides trainer.skip_nonfinite)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  sub->add_option("--export", a.export_dir, "pipeline folder the trained components are written into (diffusers layout, fp16)")
      ->default_val("models/world");
  sub->add_option("--eval-limit", a.eval_limit, "evaluation prompts, task-balanced (0: all 504)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}))
      ->capture_default_str();
  sub->add_option("--dist-timeout", a.dist_timeout_s,
                  "under a torchrun-style launch (vae, teacher; docs/distributed.md): seconds a rank waits for the others")
      ->check(finite_range(1.0, 86400.0))
      ->capture_default_str();
}

void run_pretrain_vae(const PretrainArgs& a, const Context& context) {
  refuse_output_over_inputs(a.out, {a.export_dir, a.config_file});
  const pretrain::VaePretrainConfig config = load_config(a, pretrain::read_vae_pretrain_config);
  const Json resolved = pretrain::vae_pretrain_config_json(config);
  const std::unique_ptr<Collective> collective = join_pretrain_launch("vae", a, resolved, context);
  RunDir run = open_run(a, resolved, collective.get());
  pretrain::VaePretrainTask task(config);
  Trainer trainer(config.trainer, run, context.log, collective.get());
  const TrainSummary summary = trainer.run(task, a.resume, a.stop_at);
  if (!writes(collective) || stopped_early(summary, config.trainer)) return;
  // LDM §4.3.2: scale latents to unit variance for the diffusion model.
  const pretrain::VaeEvaluation before = pretrain::evaluate_vae(*task.vae(), 64);
  task.vae()->set_scaling_factor(1.0 / before.latent_std);
  save_vae(a.export_dir + "/vae", *task.vae(), at::kHalf);
  const auto exported = load_vae(a.export_dir + "/vae", {}, context.log);
  const pretrain::VaeEvaluation evaluation = pretrain::evaluate_vae(*exported, a.eval_limit);
  Json report = pretrain::to_json(evaluation);
  report["scaling_factor"] = exported->config().scaling_factor;
  write_report(run, report, summary, a.export_dir + "/vae");
}

void run_pretrain_clip(const PretrainArgs& a, const Context& context) {
  refuse_output_over_inputs(a.out, {a.export_dir, a.config_file});
  pretrain::ClipPretrainConfig config = load_config(a, pretrain::read_clip_pretrain_config);
  // The world's tokenizer is learnt from the grammar (deterministic); the text tower's vocabulary
  // size and end token follow it. It lives in the run folder and reaches the export only with the
  // trained towers: a run that fails or stops early leaves the export (the shipped models/world by
  // default) untouched.
  const BpeVocabulary vocabulary = train_bpe(world::grammar_words());
  config.text.vocab_size = static_cast<int64_t>(vocabulary.tokens.size());
  config.text.eos_token_id = config.text.vocab_size - 1;  // <|endoftext|> comes last (text/bpe_trainer.h)
  RunDir run = open_run(a, pretrain::clip_pretrain_config_json(config));
  const std::string tokenizer_dir = run.file("tokenizer");
  save_tokenizer_folder(tokenizer_dir, vocabulary, pretrain::kWorldTextLength);
  ClipTokenizer tokenizer = ClipTokenizer::from_directory(tokenizer_dir);
  if (tokenizer.vocab_size() != config.text.vocab_size || tokenizer.end_id() != config.text.eos_token_id)
    throw Error(str(tokenizer_dir, ": the written tokenizer has ", tokenizer.vocab_size(), " tokens and end id ", tokenizer.end_id(),
                    ", the text tower was built for ", config.text.vocab_size, " and ", config.text.eos_token_id));
  pretrain::ClipPretrainTask task(config, std::move(tokenizer));
  Trainer trainer(config.trainer, run, context.log);
  const TrainSummary summary = trainer.run(task, a.resume, a.stop_at);
  if (stopped_early(summary, config.trainer)) return;
  copy_folder_files(tokenizer_dir, a.export_dir + "/tokenizer");
  save_clip_text(a.export_dir + "/text_encoder", *task.clip().text, at::kHalf);
  save_component(a.export_dir + "/image_encoder", clip_vision_config_json(task.clip().vision->config(), true),
                 *task.clip().vision, "model.safetensors", at::kHalf);
  pretrain::WorldClip exported{load_clip_text(a.export_dir + "/text_encoder", {}, context.log),
                               load_clip_vision(a.export_dir + "/image_encoder", {}, context.log)};
  const pretrain::RetrievalEvaluation evaluation =
      pretrain::evaluate_retrieval(exported, ClipTokenizer::from_directory(a.export_dir + "/tokenizer"), a.eval_limit);
  Json report = pretrain::to_json(evaluation);
  write_report(run, report, summary, a.export_dir);
}

void run_pretrain_teacher(const PretrainArgs& a, const Context& context) {
  refuse_output_over_inputs(a.out, {a.export_dir, a.config_file});
  const pretrain::TeacherPretrainConfig config = load_config(a, pretrain::read_teacher_pretrain_config);
  // init is read only by a run that starts: a resumed one's checkpoint holds the weights.
  const bool resumes = a.resume && RunDir::holds_checkpoint(a.out);
  if (!resumes) pretrain::check_teacher_init(config);
  const Json resolved = pretrain::teacher_pretrain_config_json(config);
  const std::unique_ptr<Collective> collective = join_pretrain_launch("teacher", a, resolved, context);
  RunDir run = open_run(a, resolved, collective.get());
  pretrain::TeacherPretrainTask task(config, a.export_dir, context.log, /*from_init=*/!resumes);
  Trainer trainer(config.trainer, run, context.log, collective.get());
  const TrainSummary summary = trainer.run(task, a.resume, a.stop_at);
  if (!writes(collective) || stopped_early(summary, config.trainer)) return;
  save_pipeline(a.export_dir, task.ema_pipeline(), at::kHalf);
  // Evaluate what was written (fp16 weights), as `rewardgen eval` would.
  const Pipeline exported = load_pipeline(a.export_dir, {}, context.log);
  const TextToImage model(exported, ClipTokenizer::from_directory(exported.tokenizer_dir));
  WorldEvalOptions options;
  options.sampler.steps = config.eval_steps;
  options.sampler.guidance_scale = config.eval_guidance;
  options.diversity_prompts = 0;
  const WorldEvalResult result = evaluate_world(model, world::balanced_subset(world::eval_prompts(), a.eval_limit), options, nullptr);
  Json report = result.to_json();
  report["sampler"] = {{"name", "ddim"}, {"steps", config.eval_steps}, {"guidance_scale", config.eval_guidance}};
  write_report(run, report, summary, a.export_dir);
}

void run_pretrain_verifier(const PretrainArgs& a, const Context& context) {
  refuse_output_over_inputs(a.out, {a.export_dir, a.config_file, a.pool_file});
  if (a.resume && !a.pool_file.empty()) throw Error("--pool and --resume exclude each other: a resumed run keeps its pool.safetensors");
  const pretrain::VerifierPretrainConfig config = load_config(a, pretrain::read_verifier_pretrain_config);
  pretrain::check_verifier_folders(config);
  // A given pool is read and checked before the run folder is written.
  std::optional<pretrain::VerifierPool> given;
  if (!a.pool_file.empty()) {
    given = pretrain::load_verifier_pool(a.pool_file);
    pretrain::check_verifier_pool_prompts(*given, a.pool_file);
  }
  RunDir run = open_run(a, pretrain::verifier_pretrain_config_json(config));
  // The pool is sampled (or copied from --pool) once and kept in the run folder, so a resumed run
  // trains on the same images.
  const std::string pool_path = run.file("pool.safetensors");
  pretrain::VerifierPool pool;
  if (given) {
    pool = std::move(*given);
    pretrain::save_verifier_pool(pool_path, pool);
    context.log.info(str("verifier pool: ", pool.prompts.size(), " images from ", a.pool_file, " (the config's sources are not sampled)"));
  } else if (std::filesystem::exists(pool_path)) {
    pool = pretrain::load_verifier_pool(pool_path);
    context.log.info(str("verifier pool: ", pool.prompts.size(), " images from ", pool_path));
  } else {
    pool = pretrain::build_verifier_pool(config, context.log);
    pretrain::save_verifier_pool(pool_path, pool);
  }
  pretrain::VerifierPretrainTask task(config, std::move(pool), context.log);
  Trainer trainer(config.trainer, run, context.log);
  const TrainSummary summary = trainer.run(task, a.resume, a.stop_at);
  if (stopped_early(summary, config.trainer)) return;
  task.export_to(a.export_dir);
  const Json report = {{"kind", config.kind},
                       {"reward", pretrain::verifier_reward_spec(config.kind, a.export_dir)},
                       {"spearman_on_held_out_prompts",
                        pretrain::evaluate_verifier(config.kind, a.export_dir, task.init_dir(), a.eval_limit, context.log)}};
  write_report(run, report, summary, a.export_dir);
}

}  // namespace

void add_pretrain_command(CLI::App& app, Context& context, Commands& commands) {
  auto* pretrain_app = app.add_subcommand("pretrain", "Train the embedded world's models (VAE, CLIP, teacher UNet, the learned verifier)");
  pretrain_app->require_subcommand(1);

  auto vae_args = std::make_shared<PretrainArgs>();
  auto* vae = pretrain_app->add_subcommand("vae", "AutoencoderKL f=4 on rendered scenes (L1 + L2 + KL)");
  add_common_options(vae, *vae_args);
  commands.push_back({vae, [vae_args, &context] { run_pretrain_vae(*vae_args, context); }});

  auto clip_args = std::make_shared<PretrainArgs>();
  auto* clip = pretrain_app->add_subcommand(
      "clip", "CLIP text + vision towers, contrastive on scene/prompt pairs with hard negatives; writes the world tokenizer too");
  add_common_options(clip, *clip_args);
  commands.push_back({clip, [clip_args, &context] {
                        refuse_a_launch("clip");
                        run_pretrain_clip(*clip_args, context);
                      }});

  auto teacher_args = std::make_shared<PretrainArgs>();
  auto* teacher = pretrain_app->add_subcommand(
      "teacher", "UNet teacher in the VAE's latents, conditioned on the world CLIP text (needs vae/, text_encoder/, tokenizer/ in --export)");
  add_common_options(teacher, *teacher_args);
  commands.push_back({teacher, [teacher_args, &context] { run_pretrain_teacher(*teacher_args, context); }});

  auto verifier_args = std::make_shared<PretrainArgs>();
  auto* verifier = pretrain_app->add_subcommand(
      "verifier",
      "a learned verifier of the checker on generated images (a pool sampled from the shipped models for training prompts): "
      "the world CLIP's vision tower for world.clip_contrast:DIR (kind contrast), or a network of its own for world.verifier:DIR (kind net)");
  add_common_options(verifier, *verifier_args);
  verifier->get_option("--export")->default_val("models/world/verifier");
  verifier->add_option("--pool", verifier_args->pool_file,
                       "an earlier run's pool.safetensors to train on instead of sampling the config's sources (about 6 minutes "
                       "for the default 14,000 images); copied into --out")
      ->check(CLI::ExistingFile);
  commands.push_back({verifier, [verifier_args, &context] {
                        refuse_a_launch("verifier");
                        run_pretrain_verifier(*verifier_args, context);
                      }});
}

}  // namespace rewardgen::cli
