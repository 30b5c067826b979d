#include "pretrain/teacher.h"

#include <filesystem>

#include "eval/periodic_eval.h"
#include "pretrain/world_models.h"
#include "schedulers/denoising_loss.h"
#include "text/clip_tokenizer.h"
#include "train/checkpoint.h"
#include "train/ema.h"

namespace rewardgen::pretrain {

TeacherPretrainConfig::TeacherPretrainConfig()
    : trainer(cosine_trainer(9000, 5e-4, 200, 0.1)), model(world_teacher_config(128)) {
  trainer.eval_every = 1000;  // the loop calls evaluate(); the config file names it at the top level
}

TeacherPretrainConfig read_teacher_pretrain_config(ConfigReader& reader) {
  TeacherPretrainConfig config;
  ConfigReader trainer = reader.child("trainer");
  read_trainer_config(trainer, config.trainer);
  reader.optional("batch_size", config.batch_size, at_least(1))
      .optional("prompt_dropout", config.prompt_dropout, between(0, 1))
      .optional("snr_gamma", config.snr_gamma, at_least(0))
      .optional("ema_decay", config.ema_decay, between(0, 1))
      .optional_choice("prediction_type", config.prediction_type, {"epsilon", "v_prediction", "sample"})
      .optional("eval_every", config.trainer.eval_every, at_least(0))
      .optional("eval_limit", config.eval_limit, at_least(1))
      .optional("eval_steps", config.eval_steps, at_least(1))
      .optional("eval_guidance", config.eval_guidance, at_least(0))
      .optional("init", config.init);
  ConfigReader weights = reader.child("task_weights");
  double total = 0;
  for (world::Task task : world::kTasks) {
    double& weight = config.task_weights[static_cast<size_t>(task)];
    weights.optional(world::name(task), weight, at_least(0));
    total += weight;
  }
  if (!(total > 0)) throw Error("teacher config task_weights: every task's weight is 0; some task must be drawn");
  if (reader.has("model")) {
    ConfigReader model = reader.child("model");
    read_unet_config(model, config.model);
  }
  return config;
}

void check_teacher_init(const TeacherPretrainConfig& config) {
  if (!config.init.empty() && !std::filesystem::is_regular_file(config.init + "/unet/config.json"))
    throw Error(str("teacher config init: ", config.init, "/unet/config.json not found (init names a pipeline folder)"));
}

namespace {
Json task_weights_json(const world::TaskWeights& weights) {
  Json out = Json::object();
  for (world::Task task : world::kTasks) out[world::name(task)] = weights[static_cast<size_t>(task)];
  return out;
}
}  // namespace

Json teacher_pretrain_config_json(const TeacherPretrainConfig& c) {
  return {{"trainer", trainer_config_json(c.trainer)},
          {"batch_size", c.batch_size},
          {"prompt_dropout", c.prompt_dropout},
          {"snr_gamma", c.snr_gamma},
          {"ema_decay", c.ema_decay},
          {"prediction_type", c.prediction_type},
          {"eval_every", c.trainer.eval_every},
          {"eval_limit", c.eval_limit},
          {"eval_steps", c.eval_steps},
          {"eval_guidance", c.eval_guidance},
          {"init", c.init},
          {"task_weights", task_weights_json(c.task_weights)},
          {"model", unet_config_json(c.model)}};
}

TeacherPretrainTask::TeacherPretrainTask(const TeacherPretrainConfig& config, const std::string& world_dir,
                                         const Logger& log, bool from_init)
    : config_(config), tokenizer_dir_(world_dir + "/tokenizer"), prompts_(config.task_weights) {
  frozen_.vae = load_vae(world_dir + "/vae", {}, log);
  frozen_.text_encoder = load_clip_text(world_dir + "/text_encoder", {}, log);
  frozen_.tokenizer_dir = tokenizer_dir_;
  frozen_.scheduler.prediction_type = parse_prediction_type(config.prediction_type);
  frozen_.vae->eval();
  frozen_.text_encoder->eval();
  if (config_.model.cross_dim(0) != frozen_.text_encoder->config().hidden_size)
    throw Error(str("teacher model.cross_attention_dim ", config_.model.cross_dim(0), " differs from the text encoder's hidden_size ",
                    frozen_.text_encoder->config().hidden_size, " (", world_dir, "/text_encoder)"));
  schedule_ = make_noise_schedule(frozen_.scheduler);
  at::manual_seed(static_cast<uint64_t>(config.trainer.seed));  // the initial weights
  unet_ = std::make_shared<UNet2DConditionModel>(config_.model);
  if (from_init && !config_.init.empty()) load_init_weights(log);
  ema_unet_ = std::make_shared<UNet2DConditionModel>(config_.model);
  ema_copy(*ema_unet_, *unet_);

  // The text encoder is frozen and the training prompts are finite: encode each once.
  at::NoGradGuard no_grad;
  const ClipTokenizer tokenizer = ClipTokenizer::from_directory(tokenizer_dir_);
  std::vector<std::string> texts = {""};
  for (world::Task task : world::kTasks)
    for (const world::Prompt& prompt : prompts_.of(task)) texts.push_back(prompt.text());
  const int64_t length = frozen_.text_encoder->config().max_position_embeddings;
  for (size_t start = 0; start < texts.size(); start += 256) {
    const std::vector<std::string> chunk(texts.begin() + start, texts.begin() + std::min(texts.size(), start + 256));
    const at::Tensor states = frozen_.text_encoder->forward(tokenizer.encode_batch(chunk, length)).last_hidden_state;
    for (size_t i = 0; i < chunk.size(); ++i) text_cache_[chunk[i]] = states[static_cast<int64_t>(i)].clone();
  }
}

void TeacherPretrainTask::load_init_weights(const Logger& log) {
  check_teacher_init(config_);
  const std::string dir = config_.init + "/unet";
  const std::shared_ptr<UNet2DConditionModel> start = load_unet(dir, {}, log);
  const Json wanted = unet_config_json(config_.model), found = unet_config_json(start->config());
  for (const auto& [key, value] : wanted.items())
    if (!found.contains(key) || found[key] != value)
      throw Error(str("teacher config init: ", dir, "/config.json has ", key, " = ",
                      found.contains(key) ? found[key].dump() : std::string("(none)"), ", the run's model has ", value.dump()));
  load_module_weights(*unet_, module_state(*start), dir);
  log.info(str("teacher: initial weights from ", dir));
}

NamedTensors TeacherPretrainTask::trainable_parameters() {
  NamedTensors out;
  for (const auto& p : unet_->named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

void TeacherPretrainTask::save_state(TensorMap& out) const {
  add_module_state(out, "unet/", *unet_);
  add_module_state(out, "ema_unet/", *ema_unet_);
}

void TeacherPretrainTask::load_state(const TensorMap& in) {
  load_module_state(in, "unet/", *unet_);
  load_module_state(in, "ema_unet/", *ema_unet_);
}

at::Tensor TeacherPretrainTask::text_states(const std::vector<std::string>& prompts) const {
  std::vector<at::Tensor> rows;
  for (const std::string& prompt : prompts) rows.push_back(text_cache_.at(prompt));
  return at::stack(rows);
}

Pipeline TeacherPretrainTask::ema_pipeline() const {
  Pipeline pipeline = frozen_;
  pipeline.unet = ema_unet_;
  return pipeline;
}

MetricsWriter::Values TeacherPretrainTask::train_step(StepContext& context) {
  at::Generator& generator = context.generator();
  // Data-parallel: the scenes and draws of the global batch, this rank's rows of them.
  const BatchShard& shard = context.shard();
  const int64_t B = shard.global(config_.batch_size);
  const WorldBatch batch = sample_world_batch(prompts_, B, generator);
  at::Tensor latents;
  {
    at::NoGradGuard no_grad;
    latents = frozen_.vae->encode(shard.slice(batch.images)).sample(generator, shard) * frozen_.vae->config().scaling_factor;
  }
  // CFG training: a random tenth of the prompts become the empty prompt.
  std::vector<std::string> prompts = shard.slice(batch.prompts);
  const at::Tensor dropped = shard.slice(at::rand({B}, generator).lt(config_.prompt_dropout));
  for (size_t i = 0; i < prompts.size(); ++i)
    if (dropped[static_cast<int64_t>(i)].item<bool>()) prompts[i].clear();
  const at::Tensor context_states = text_states(prompts);

  const at::Tensor timesteps = shard.slice(at::randint(0, schedule_.num_timesteps(), {B}, generator));
  const at::Tensor noise = shard.randn(generator, latents.sizes(), latents.options());
  const at::Tensor noisy = add_noise(schedule_, latents, noise, timesteps);
  const at::Tensor alpha_bar = schedule_.alpha_bar(timesteps, latents);
  const at::Tensor output = unet_->forward(noisy, timesteps, context_states);
  const DenoisingLoss dsm =
      denoising_loss(frozen_.scheduler.prediction_type, output, latents, noise, alpha_bar, config_.snr_gamma);
  context.optimize(dsm.loss);
  return {{"loss", dsm.loss.item<double>()}, {"mse", dsm.per_sample.mean().item<double>()}};
}

std::vector<EmaPair> TeacherPretrainTask::ema_pairs() { return {{ema_unet_.get(), unet_.get(), config_.ema_decay}}; }

MetricsWriter::Values TeacherPretrainTask::evaluate(int64_t, const std::string&) {
  const TextToImage model(ema_pipeline(), ClipTokenizer::from_directory(tokenizer_dir_));
  PeriodicEvalOptions options;
  options.sampler.steps = config_.eval_steps;
  options.sampler.guidance_scale = config_.eval_guidance;
  options.prompts = config_.eval_limit;
  return periodic_world_eval(model, options);  // no image encoder: accuracy per task and the position control
}

}  // namespace rewardgen::pretrain
