// LCD, docs/lcd.md. Each training step is Algorithm 1 of arXiv 2310.04378:
//   1. world latents x₀ with their prompts c, n ~ U{1..N}, t_{n+k} = n·k − 1, t_n = max(t_{n+k} − k, 0),
//      w ~ U[w_min, w_max]
//   2. x_{t_{n+k}} = √ᾱ x₀ + √(1−ᾱ) ε                                            (forward noise)
//   3. x̂_{t_n} = one DDIM step of the frozen teacher from t_{n+k} with the guided x̂₀, ε̂
//      (x̂₀ = x̂₀_c + w (x̂₀_c − x̂₀_u): CFG of scale w + 1)                        (Eq. (8))
//   4. L = d(f_θ(x_{t_{n+k}}, w, c, t_{n+k}), f_θ⁻(x̂_{t_n}, w, c, t_n)), θ⁻ under no-grad  (Eq. (10))
//   5. an AdamW step on θ; θ⁻ ← EMA of θ (the trainer's EmaPair); optionally a slower EMA of θ to export
#include "methods/lcd.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <filesystem>
#include <optional>

#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "eval/eval_report.h"
#include "io/atomic_file.h"
#include "eval/periodic_eval.h"
#include "models/diffusers_io.h"
#include "models/lora.h"
#include "pretrain/world_models.h"
#include "schedulers/steps.h"
#include "schedulers/timesteps.h"
#include "train/checkpoint.h"
#include "train/ema.h"

namespace rewardgen {

LcdConfig::LcdConfig() {
  // diffusers' LCD defaults: AdamW lr 1e-4, weight decay 1e-2, clip 1, constant lr.
  trainer.max_steps = 100000;  // bounded by the job's --minutes in practice
  trainer.lr = 1e-4;
  trainer.adam.weight_decay = 1e-2;
  trainer.grad_clip = 1.0;
  trainer.checkpoint_every = 100;
  trainer.eval_every = 500;
}

LcdConfig read_lcd_config(ConfigReader& r) {
  LcdConfig c;
  ConfigReader trainer = r.child("trainer");
  read_trainer_config(trainer, c.trainer);
  r.optional("batch_size", c.batch_size, Range{1, 4096})
      .optional("w_min", c.w_min, Range{0, 100})
      .optional("w_max", c.w_max, Range{0, 100})
      .optional("skip", c.skip, Range{1, 500})
      .optional_choice("loss", c.loss, {"l2", "huber"})
      .optional("huber_c", c.huber_c, Range{0, 10, true, false})
      .optional("ema_decay", c.ema_decay, Range{0, 1, false, true})
      .optional("export_ema_decay", c.export_ema_decay, Range{0, 1, false, true})
      .optional("time_cond_proj_dim", c.time_cond_proj_dim, Range{2, 4096})
      .optional_choice("cond_proj_init", c.cond_proj_init, {"zero", "random"})
      .optional("sample_steps", c.sample_steps, Range{1, 500})
      .optional("sample_guidance", c.sample_guidance, Range{1, 100})
      .optional_choice("timestep_rule", c.timestep_rule, {"diffusers", "rlcm"})
      .optional("first_timestep", c.first_timestep, Range{-1, 100000})
      .optional("eval_steps", c.eval_steps)
      .optional("eval_limit", c.eval_limit, Range{1, 504})
      .optional_choice("precision", c.precision, {"fp32", "bf16", "auto"});
  if (c.w_min > c.w_max) throw Error(str(r.file(), ": w_min ", c.w_min, " > w_max ", c.w_max));
  if (c.time_cond_proj_dim % 2 != 0)
    throw Error(str(r.file(), ": time_cond_proj_dim must be even (a [sin | cos] embedding), got ", c.time_cond_proj_dim));
  if (c.eval_steps.empty() || c.eval_steps.size() > 8)
    throw Error(str(r.file(), ": eval_steps must list 1 to 8 step counts, got ", c.eval_steps.size()));
  for (const int64_t s : c.eval_steps)
    if (s < 1 || s > 500) throw Error(str(r.file(), ": eval_steps entries must lie in [1, 500], got ", s));
  return c;
}

Json lcd_config_json(const LcdConfig& c) {
  return {{"trainer", trainer_config_json(c.trainer)},
          {"batch_size", c.batch_size},
          {"w_min", c.w_min},
          {"w_max", c.w_max},
          {"skip", c.skip},
          {"loss", c.loss},
          {"huber_c", c.huber_c},
          {"ema_decay", c.ema_decay},
          {"export_ema_decay", c.export_ema_decay},
          {"time_cond_proj_dim", c.time_cond_proj_dim},
          {"cond_proj_init", c.cond_proj_init},
          {"sample_steps", c.sample_steps},
          {"sample_guidance", c.sample_guidance},
          {"timestep_rule", c.timestep_rule},
          {"first_timestep", c.first_timestep},
          {"eval_steps", c.eval_steps},
          {"eval_limit", c.eval_limit},
          {"precision", c.precision}};
}

std::shared_ptr<UNet2DConditionModel> make_lcm_student(const UNet2DConditionModel& teacher, int64_t dim, bool zero_init,
                                                       at::Generator& generator) {
  if (teacher.config().time_cond_proj_dim > 0)
    throw Error("LCD distils a UNet without a guidance embedding; this one already has time_cond_proj_dim");
  UNet2DConditionConfig config = teacher.config();
  config.time_cond_proj_dim = dim;
  ModelOptions options;
  options.tensor = teacher.conv_in->weight.options();
  options.skip_init = true;
  auto student = std::make_shared<UNet2DConditionModel>(config, options);
  TensorMap weights = module_state(teacher);
  // cond_proj maps the guidance embedding to the sinusoidal timestep features (width block_out[0]).
  const int64_t features = config.block_out_channels.at(0);
  at::Tensor projection = at::zeros({features, dim}, options.tensor);
  if (!zero_init) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(dim));  // torch.nn.Linear's default
    projection = (at::rand({features, dim}, generator, at::kFloat) * (2 * bound) - bound).to(options.tensor);
  }
  weights["time_embedding.cond_proj.weight"] = projection;
  load_module_weights(*student, weights, "the teacher UNet");
  return student;
}

namespace {

at::Tensor lcm_output(const UNet2DConditionModel& unet, const NoiseSchedule& s, const at::Tensor& x, const at::Tensor& t,
                      const at::Tensor& cond, const at::Tensor& w) {
  // guided_model_output embeds guidance − 1 = w (the LCM pipeline's convention).
  const at::Tensor out = guided_model_output(unet, x, t, Conditioning{cond, {}}, w + 1.0);
  const X0Eps pred = x0_and_eps(s.config.prediction_type, out, x, s.alpha_bar(t, x));
  return lcm_consistency(s, t, pred.x0, x);  // f = c_skip x_t + c_out x̂₀
}

}  // namespace

LcdLoss lcd_loss(const UNet2DConditionModel& student, const UNet2DConditionModel& target, const UNet2DConditionModel& teacher,
                 const NoiseSchedule& s, const LcdBatch& b, const std::string& loss, double huber_c) {
  LcdLoss out;
  // 2. Forward noise to t_{n+k}.
  const at::Tensor x = add_noise(s, b.latents, b.noise, b.t_start);
  {
    at::NoGradGuard no_grad;
    // 3. One deterministic DDIM step of the teacher with CFG of scale w + 1 (η = 0: the mean).
    const at::Tensor guided = guided_model_output(teacher, x, b.t_start, b.conditioning, b.w + 1.0);
    out.x_prev = ddim_transition(s, b.t_start, b.t_end, guided, x, at::zeros({}, at::kDouble)).mean;
    // 4. The target's consistency output at t_n.
    out.target = lcm_output(target, s, out.x_prev, b.t_end, b.conditioning.cond, b.w);
  }
  out.student = lcm_output(student, s, x, b.t_start, b.conditioning.cond, b.w);
  const at::Tensor d = out.student.to(at::kFloat) - out.target.to(at::kFloat);
  out.loss = loss == "huber" ? ((d.pow(2) + huber_c * huber_c).sqrt() - huber_c).mean() : d.pow(2).mean();
  return out;
}

LcdTask::LcdTask(const LcdConfig& config, const std::string& model_dir, const Logger& log,
                 const at::Device& device)
    : config_(config), model_dir_(model_dir), device_(device), precision_(parse_precision(config.precision, device)) {
  const LoadOptions on_device{at::kFloat, device};
  base_ = load_pipeline(model_dir, on_device, log);
  for (auto* m : std::initializer_list<torch::nn::Module*>{base_.unet.get(), base_.vae.get(), base_.text_encoder.get()}) {
    m->eval();
    freeze_base(*m);
  }
  schedule_ = make_noise_schedule(base_.scheduler);
  const int64_t T = schedule_.num_timesteps();
  if (T % config_.skip != 0) throw Error(str("LCD skip ", config_.skip, " does not divide the schedule's ", T, " timesteps"));
  if (config_.first_timestep >= T || (config_.first_timestep >= 0 && config_.first_timestep < config_.skip - 1))
    throw Error(str("LCD first_timestep ", config_.first_timestep, " must be -1 (T - 1) or in [", config_.skip - 1, ", ", T - 1,
                    "] (the grid's lowest entry k - 1 to T - 1)"));
  const int64_t grid = grid_size();
  for (const int64_t steps : config_.eval_steps)
    if (steps > grid) throw Error(str("eval_steps entry ", steps, " exceeds the distillation grid's ", grid, " timesteps"));
  if (config_.sample_steps > grid)
    throw Error(str("sample_steps ", config_.sample_steps, " exceeds the distillation grid's ", grid, " timesteps"));
  at::Generator init = at::make_generator<at::CPUGeneratorImpl>(config_.trainer.seed);
  student_ = make_lcm_student(*base_.unet, config_.time_cond_proj_dim, config_.cond_proj_init == "zero", init);
  target_ = make_lcm_student(*base_.unet, config_.time_cond_proj_dim, true, init);
  freeze_base(*target_);
  ema_copy(*target_, *student_);
  if (config_.export_ema_decay > 0) {
    export_ema_ = make_lcm_student(*base_.unet, config_.time_cond_proj_dim, true, init);
    freeze_base(*export_ema_);
    ema_copy(*export_ema_, *student_);
  }
  prompt_states_ = std::make_unique<PromptStates>(base_.text_encoder, ClipTokenizer::from_directory(base_.tokenizer_dir));
  image_encoder_ = load_eval_image_encoder(model_dir, on_device, log);
  log.info(str("LCD: student = the teacher + a ", config_.time_cond_proj_dim, "-d guidance embedding (", config_.cond_proj_init,
               " init), w ~ U[", config_.w_min, ", ", config_.w_max, "], k = ", config_.skip, ", ", config_.loss, " loss; exports ",
               export_ema_ ? str("an EMA of the student (decay ", config_.export_ema_decay, ")") : std::string("the target")));
}

NamedTensors LcdTask::trainable_parameters() {
  NamedTensors out;
  for (const auto& p : student_->named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

std::vector<EmaPair> LcdTask::ema_pairs() {
  std::vector<EmaPair> pairs{{target_.get(), student_.get(), config_.ema_decay}};
  if (export_ema_) pairs.push_back({export_ema_.get(), student_.get(), config_.export_ema_decay});
  return pairs;
}

MetricsWriter::Values LcdTask::train_step(StepContext& context) {
  at::Generator& rng = context.generator();
  const BatchShard& shard = context.shard();  // data-parallel: draw the global batch, keep this rank's rows
  const int64_t B = shard.global(config_.batch_size), k = config_.skip, grid = grid_size();
  // 1. World latents and their prompts (the rendered scenes play LAION's part), timesteps, w.
  const pretrain::WorldBatch world = pretrain::sample_world_batch(prompts_, B, rng);
  LcdBatch batch;
  {
    at::NoGradGuard no_grad;
    const DiagonalGaussian posterior = base_.vae->encode(shard.slice(world.images).to(device_));
    batch.latents = posterior.sample(rng, shard) * base_.vae->config().scaling_factor;
  }
  // Drawn on the CPU (the run's generator), then moved: a seed trains the same on every device.
  batch.t_start = shard.slice(at::randint(1, grid + 1, {B}, rng) * k - 1).to(device_);  // t_{n+k} ∈ {k−1, 2k−1, …, grid·k−1}
  batch.t_end = (batch.t_start - k).clamp_min(0);                                        // t_n
  batch.w = shard.slice(at::rand({B}, rng, at::kDouble) * (config_.w_max - config_.w_min) + config_.w_min).to(device_);
  batch.noise = shard.randn(rng, batch.latents.sizes(), batch.latents.options().dtype(at::kFloat));
  batch.conditioning = prompt_states_->conditioning(shard.slice(world.prompts), true);
  // 2-4 under bf16 autocast when the config asks; the loss and the update in fp32.
  std::optional<AutocastScope> autocast(std::in_place, precision_, device_);
  const LcdLoss l = lcd_loss(*student_, *target_, *base_.unet, schedule_, batch, config_.loss, config_.huber_c);
  autocast.reset();
  context.optimize(l.loss);
  return {{"loss", l.loss.item<double>()}};
}

Pipeline LcdTask::with_unet(std::shared_ptr<UNet2DConditionModel> unet) const {
  Pipeline p = base_;
  p.unet = std::move(unet);
  // The skipping-step sampler's grid must be the distillation grid.
  p.scheduler.original_inference_steps = schedule_.num_timesteps() / config_.skip;
  p.scheduler.recipe = sampler_recipe(sampler(p.scheduler, config_.sample_steps));
  return p;
}

int64_t LcdTask::grid_size() const {
  const int64_t top = config_.first_timestep >= 0 ? config_.first_timestep + 1 : schedule_.num_timesteps();
  return top / config_.skip;  // t_{n+k} = n·k − 1 ≤ top − 1
}

SamplerOptions LcdTask::sampler(const SchedulerConfig& scheduler, int64_t steps) const {
  SamplerOptions o;
  o.sampler = "lcm";
  o.steps = steps;
  o.guidance_scale = config_.sample_guidance;
  o.timestep_spacing = config_.timestep_rule == "rlcm" ? "rlcm" : "leading";
  o.first_timestep = config_.first_timestep;  // `--steps N` over the recipe samples the cut grid too
  if (config_.first_timestep >= 0) o.timesteps = lcm_timesteps(scheduler, steps, config_.timestep_rule, config_.first_timestep);
  return o;
}

MetricsWriter::Values LcdTask::evaluate(int64_t steps_done, const std::string& samples_dir) {
  MetricsWriter::Values values = evaluate_unet(exported(), "", steps_done, samples_dir);
  if (export_ema_)
    for (auto& value : evaluate_unet(target_, "target/", steps_done, samples_dir)) values.push_back(std::move(value));
  return values;
}

MetricsWriter::Values LcdTask::evaluate_unet(std::shared_ptr<UNet2DConditionModel> unet, const std::string& prefix,
                                             int64_t steps_done, const std::string& samples_dir) const {
  const Pipeline pipeline = with_unet(std::move(unet));
  const TextToImage model(pipeline, ClipTokenizer::from_directory(pipeline.tokenizer_dir));
  MetricsWriter::Values values;
  for (const int64_t steps : config_.eval_steps) {
    PeriodicEvalOptions options;
    options.sampler = sampler(pipeline.scheduler, steps);
    options.prompts = config_.eval_limit;
    options.encoder = image_encoder_.get();
    const bool recipe = steps == config_.sample_steps;
    options.prefix = prefix + (recipe ? "" : str("steps", steps, "/"));
    if (prefix.empty()) options.grid_path = eval_grid_path(samples_dir, steps_done, str("_", steps, "step"));
    for (auto& value : periodic_world_eval(model, options)) values.push_back(std::move(value));
  }
  return values;
}

void LcdTask::save_state(TensorMap& out) const {
  add_module_state(out, "lcd/student/", *student_);
  add_module_state(out, "lcd/target/", *target_);
  if (export_ema_) add_module_state(out, "lcd/export_ema/", *export_ema_);
}

void LcdTask::load_state(const TensorMap& in) {
  load_module_state(in, "lcd/student/", *student_);
  load_module_state(in, "lcd/target/", *target_);
  if (export_ema_) load_module_state(in, "lcd/export_ema/", *export_ema_);
}

void LcdTask::export_generator(const std::string& dir) const {
  save_pipeline(dir, with_unet(exported()), at::kHalf);
  if (std::filesystem::exists(model_dir_ + "/image_encoder")) copy_folder_files(model_dir_ + "/image_encoder", dir + "/image_encoder");
}

}  // namespace rewardgen
