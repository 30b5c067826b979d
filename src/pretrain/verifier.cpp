#include "pretrain/verifier.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "eval/world_eval.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "models/diffusers_io.h"
#include "pretrain/world_models.h"
#include "sampling/pipeline.h"
#include "schedulers/timesteps.h"
#include "train/checkpoint.h"
#include "world/checker.h"

namespace rewardgen::pretrain {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kPoolBatch = 64;

VerifierSource source(const std::string& name, const std::string& model, const std::string& sampler, int64_t steps,
                      double guidance, std::vector<int64_t> timesteps, const std::string& spacing, const std::string& output,
                      int64_t images) {
  VerifierSource s;
  s.name = name;
  s.model = model;
  s.sampler.sampler = sampler;
  s.sampler.steps = steps;
  s.sampler.guidance_scale = guidance;
  s.sampler.timesteps = std::move(timesteps);
  s.sampler.timestep_spacing = spacing;
  s.sampler.output = output;
  s.images = images;
  return s;
}

// The shipped generators at the settings they are used at, weighted toward R0's starting point (the
// teacher's 4-step x̂₀, which R0 moves away from) and the few-step models whose artefacts resemble
// what a post-trained generator makes.
std::vector<VerifierSource> default_sources() {
  return {source("teacher_r0_start", "world", "ddim", 4, 1.0, {999, 749, 499, 249}, "leading", "x0", 4000),
          source("teacher_ddim4_cfg3", "world", "ddim", 4, 3.0, {}, "leading", "sample", 2000),
          source("teacher_ddim10_cfg3", "world", "ddim", 10, 3.0, {}, "leading", "sample", 1000),
          // The LCM's recipe: its grid cut where it was distilled (docs/lcd.md).
          source("lcm4", "world/lcm", "lcm", 4, 3.0, lcm_timesteps(SchedulerConfig{}, 4, "diffusers", kWorldLcmFirstTimestep),
                 "leading", "sample", 2000),
          source("lcm2", "world/lcm", "lcm", 2, 3.0, lcm_timesteps(SchedulerConfig{}, 2, "diffusers", kWorldLcmFirstTimestep),
                 "leading", "sample", 1000),
          source("rlcm4", "world/rlcm", "lcm", 4, 3.0, {999, 759, 519, 279}, "trailing", "sample", 2000),
          // DI*'s one-step generator at its t* (trained there from the LCM, docs/distar.md).
          source("distar1", "world/distar", "lcm", 1, 3.0, {kWorldLcmFirstTimestep}, "trailing", "sample", 2000)};
}

VerifierSource read_source(ConfigReader& reader, const std::string& name) {
  VerifierSource s;
  s.name = name;
  reader.required("model", s.model)
      .optional("images", s.images, between(1, 10000000))
      .optional_choice("sampler", s.sampler.sampler, {"ddim", "ddpm", "lcm", "onestep"})
      .optional("steps", s.sampler.steps, between(1, 1000))
      .optional("guidance_scale", s.sampler.guidance_scale, between(0, 1000))
      .optional("eta", s.sampler.eta, between(0, 1000))
      .optional_choice("timestep_spacing", s.sampler.timestep_spacing, {"leading", "trailing", "linspace", "rlcm"})
      .optional("timesteps", s.sampler.timesteps, between(0, 100000))
      .optional_choice("output", s.sampler.output, {"sample", "x0"});
  if (s.model.empty()) throw Error(str(reader.file(), ": sources.", name, ".model is empty"));
  try {
    validate(s.sampler);
  } catch (const Error& e) {
    throw Error(str(reader.file(), ": sources.", name, ": ", e.what()));
  }
  return s;
}

Json source_json(const VerifierSource& s) {
  return {{"model", s.model},
          {"images", s.images},
          {"sampler", s.sampler.sampler},
          {"steps", s.sampler.steps},
          {"guidance_scale", s.sampler.guidance_scale},
          {"eta", s.sampler.eta},
          {"timestep_spacing", s.sampler.timestep_spacing},
          {"timesteps", s.sampler.timesteps},
          {"output", s.sampler.output}};
}

// A relative folder that is not there from the working directory is looked up beside the shipped
// models/world (so the defaults "world", "world/lcm" work from any directory).
std::string resolve_model_dir(const std::string& model) {
  if (fs::path(model).is_absolute() || fs::is_directory(model)) return model;
  const std::string shipped = (fs::path(world_model_dir()).parent_path() / model).string();
  if (fs::is_directory(shipped)) return shipped;
  throw Error(str("verifier source model '", model, "' is neither a folder nor one under ", fs::path(world_model_dir()).parent_path().string()));
}

uint64_t name_hash(const std::string& name) {  // FNV-1a, 48 bits: stable across runs and platforms
  uint64_t h = 14695981039346656037ull;
  for (const unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h >> 16;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

VerifierPretrainConfig::VerifierPretrainConfig() : trainer(cosine_trainer(1500, 5e-5, 50, 0.1)), sources(default_sources()) {
  trainer.adam.weight_decay = 0.01;
}

VerifierPretrainConfig read_verifier_pretrain_config(ConfigReader& reader) {
  VerifierPretrainConfig config;
  ConfigReader trainer = reader.child("trainer");
  read_trainer_config(trainer, config.trainer);
  int64_t pool_seed = static_cast<int64_t>(config.pool_seed);
  reader.optional_choice("kind", config.kind, {"contrast", "net"});
  if (reader.has("net")) {
    ConfigReader net = reader.child("net");
    read_world_verifier_config(net, config.net);
  }
  reader.optional("batch_size", config.batch_size, between(2, 100000))
      .optional("rendered_fraction", config.rendered_fraction, between(0, 1))
      .optional("neighbour_anchor", config.neighbour_anchor, between(0, 1))
      .optional("init", config.init)
      .optional("pool_seed", pool_seed, between(0, 1e15));
  config.pool_seed = static_cast<uint64_t>(pool_seed);
  if (reader.has("sources")) {
    ConfigReader sources = reader.child("sources");
    if (!sources.object().is_object() || sources.object().empty())
      throw Error(str(reader.file(), ": sources must be a non-empty object of name -> {\"model\", ...}"));
    config.sources.clear();
    for (const auto& item : sources.object().items()) {
      ConfigReader one = sources.child(item.key());
      config.sources.push_back(read_source(one, item.key()));
    }
  }
  if (std::llround(static_cast<double>(config.batch_size) * config.rendered_fraction) >= config.batch_size)
    throw Error(str(reader.file(), ": rendered_fraction ", config.rendered_fraction, " leaves no generated image in a batch of ",
                    config.batch_size));
  return config;
}

Json verifier_pretrain_config_json(const VerifierPretrainConfig& config) {
  Json sources = Json::object();
  for (const VerifierSource& s : config.sources) sources[s.name] = source_json(s);
  Json net = world_verifier_config_json(config.net);
  net.erase("_class_name");
  return {{"kind", config.kind},
          {"net", net},
          {"trainer", trainer_config_json(config.trainer)},
          {"batch_size", config.batch_size},
          {"rendered_fraction", config.rendered_fraction},
          {"neighbour_anchor", config.neighbour_anchor},
          {"init", config.init},
          {"pool_seed", config.pool_seed},
          {"sources", sources}};
}

void check_verifier_folders(const VerifierPretrainConfig& config) {
  for (const VerifierSource& s : config.sources) {
    std::string dir;
    try {
      dir = resolve_model_dir(s.model);
    } catch (const Error& e) {
      throw Error(str("sources.", s.name, ": ", e.what()));
    }
    if (!fs::exists(dir + "/model_index.json"))
      throw Error(str("sources.", s.name, ": '", dir, "' is not a pipeline folder (no model_index.json)"));
  }
  const std::string init = config.init.empty() ? world_model_dir() : config.init;
  std::vector<std::string> needed = {"tokenizer", "text_encoder"};
  if (config.kind == "contrast") needed.push_back("image_encoder");
  for (const std::string& sub : needed)
    if (!fs::is_directory(init + "/" + sub))
      throw Error(str("init: '", init, "' has no ", sub, "/ (a verifier starts from a world CLIP folder)"));
}

at::Tensor pool_pixels(const at::Tensor& images_uint8) { return images_uint8.to(at::kFloat) / 127.5 - 1.0; }

VerifierPool build_verifier_pool(const VerifierPretrainConfig& config, const Logger& log) {
  at::NoGradGuard no_grad;
  const world::TrainingPrompts training;
  int64_t total = 0;
  for (const VerifierSource& s : config.sources) total += s.images;
  VerifierPool pool;
  std::vector<at::Tensor> images;
  ProgressBar progress("verifier pool", total);
  int64_t done = 0;
  for (size_t i = 0; i < config.sources.size(); ++i) {
    const VerifierSource& s = config.sources[i];
    const std::string dir = resolve_model_dir(s.model);
    const Pipeline pipeline = load_pipeline(dir, {}, log);
    const TextToImage model(pipeline, ClipTokenizer::from_directory(pipeline.tokenizer_dir));
    // Each source its own streams, seeded by its name: adding, removing or reordering sources leaves
    // the others' images as they were.
    const uint64_t seed = config.pool_seed * 1000003 + name_hash(s.name);
    world::Rng rng(seed);
    at::Generator noise = at::make_generator<at::CPUGeneratorImpl>(seed);
    log.info(str("verifier pool: ", s.images, " images from ", s.name, " (", dir, ", ", s.sampler.sampler, " ", s.sampler.steps,
                 " steps, guidance ", s.sampler.guidance_scale, ")"));
    for (int64_t begin = 0; begin < s.images; begin += kPoolBatch) {
      std::vector<std::string> prompts;
      for (int64_t k = begin; k < std::min(s.images, begin + kPoolBatch); ++k) prompts.push_back(training.sample(rng).text());
      const at::Tensor batch = model.generate(prompts, s.sampler, noise);
      images.push_back(((batch.to(at::kFloat) + 1.0) * 127.5).round().clamp(0, 255).to(at::kByte));
      for (const std::string& p : prompts) {
        pool.prompts.push_back(p);
        pool.sources.push_back(s.name);
      }
      done += static_cast<int64_t>(prompts.size());
      progress.update(done, s.name);
    }
  }
  progress.finish();
  pool.images = at::cat(images);
  return pool;
}

void save_verifier_pool(const std::string& path, const VerifierPool& pool) {
  save_safetensors(path, {{"images", pool.images}}, {{"prompts", join_lines(pool.prompts)}, {"sources", join_lines(pool.sources)}});
}

VerifierPool load_verifier_pool(const std::string& path) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  VerifierPool pool;
  if (!file.contains("images") || !file.metadata().count("prompts") || !file.metadata().count("sources"))
    throw Error(str(path, ": not a verifier pool (needs the tensor 'images' and the metadata 'prompts' and 'sources')"));
  pool.images = file.tensor("images").clone();
  pool.prompts = split_lines(file.metadata().at("prompts"));
  pool.sources = split_lines(file.metadata().at("sources"));
  const auto n = static_cast<size_t>(pool.images.size(0));
  if (pool.images.dim() != 4 || pool.images.scalar_type() != at::kByte || pool.images.size(1) != 3 || n == 0 ||
      pool.prompts.size() != n || pool.sources.size() != n)
    throw Error(str(path, ": a verifier pool holds [N, 3, H, W] uint8 images with N prompts and sources; found images ",
                    pool.images.sizes(), " ", pool.images.scalar_type(), ", ", pool.prompts.size(), " prompts, ",
                    pool.sources.size(), " sources"));
  return pool;
}

namespace {

// The held-out evaluation prompts' texts: never in a pool, never an anchor.
std::set<std::string> held_out_texts() {
  std::set<std::string> texts;
  for (const world::EvalPrompt& line : world::eval_prompts()) texts.insert(line.text);
  return texts;
}

void refuse_held_out(const VerifierPool& pool, const std::set<std::string>& held_out, const std::string& where) {
  for (const std::string& p : pool.prompts)
    if (held_out.count(p)) throw Error(str(where, ": '", p, "' is a held-out evaluation prompt"));
}

}  // namespace

void check_verifier_pool_prompts(const VerifierPool& pool, const std::string& where) {
  refuse_held_out(pool, held_out_texts(), where);
}

VerifierLoss verifier_loss(ClipContrastReward& contrast, const at::Tensor& images, const std::vector<std::string>& anchors,
                           const std::vector<bool>& labels) {
  if (labels.size() != anchors.size()) throw Error(str("verifier_loss: ", anchors.size(), " anchors, ", labels.size(), " labels"));
  const std::vector<at::Tensor> logits = contrast.candidate_logits(images, anchors);
  std::vector<at::Tensor> terms;
  VerifierLoss out;
  for (size_t i = 0; i < logits.size(); ++i) {
    const at::Tensor& l = logits[i];  // [1 + N]: the anchor first
    if (l.size(0) < 2) throw Error(str("verifier_loss: '", anchors[i], "' has no one-edit negative to contrast with"));
    const at::Tensor all = at::logsumexp(l, 0);
    const at::Tensor log_p = l[0] - all;                                         // log p(anchor | x)
    const at::Tensor log_not_p = at::logsumexp(l.slice(0, 1), 0) - all;         // log (1 − p), stable
    terms.push_back(labels[i] ? -log_p : -log_not_p);
    out.accuracy += ((log_p.item<double>() > std::log(0.5)) == labels[i]) ? 1 : 0;
    out.positives += labels[i] ? 1 : 0;
  }
  out.loss = at::stack(terms).mean();
  out.accuracy /= static_cast<double>(logits.size());
  out.positives /= static_cast<double>(logits.size());
  return out;
}

std::string verifier_reward_spec(const std::string& kind, const std::string& dir) {
  if (kind == "contrast") return "world.clip_contrast:" + dir;
  if (kind == "net") return "world.verifier:" + dir;
  throw Error(str("verifier kind '", kind, "' (known: contrast, net)"));
}

std::shared_ptr<Reward> verifier_reward(const std::string& kind, const std::string& dir, const RewardContext& context) {
  const std::string spec = verifier_reward_spec(kind, dir);
  if (kind == "contrast") return std::make_shared<ClipContrastReward>(spec, load_world_clip("world.clip_contrast", dir, context));
  return std::make_shared<WorldVerifierReward>(spec, dir, context);
}

Json evaluate_verifier(const std::string& kind, const std::string& verifier_dir, const std::string& init_dir, int64_t limit,
                       const Logger& log) {
  at::NoGradGuard no_grad;
  RewardContext context;
  context.log = log;
  WorldEvalOptions options;
  options.diversity_prompts = 0;
  options.rewards = {std::make_shared<ClipContrastReward>("world.clip_contrast", load_world_clip("world.clip_contrast", init_dir, context)),
                     verifier_reward(kind, verifier_dir, context), std::make_shared<CompositionalReward>()};
  const std::vector<world::EvalPrompt> lines = world::balanced_subset(world::eval_prompts(), limit);
  Json report = Json::object();
  for (const VerifierSource& s : default_sources()) {
    if (s.name != "teacher_r0_start" && s.name != "lcm4") continue;
    const Pipeline pipeline = load_pipeline(resolve_model_dir(s.model), {}, log);
    const TextToImage model(pipeline, ClipTokenizer::from_directory(pipeline.tokenizer_dir));
    options.sampler = s.sampler;
    const WorldEvalResult result = evaluate_world(model, lines, options, nullptr);
    Json row = {{"accuracy", result.accuracy.at("overall")}, {"images", result.images}};
    for (const auto& [name, summary] : result.rewards)
      row["spearman_passed"][name] = std::isfinite(summary.spearman_passed) ? Json(summary.spearman_passed) : Json(nullptr);
    report[s.name] = row;
  }
  return report;
}

VerifierPretrainTask::VerifierPretrainTask(const VerifierPretrainConfig& config, VerifierPool pool, const Logger& log)
    : config_(config), pool_(std::move(pool)), init_dir_(config.init.empty() ? world_model_dir() : config.init) {
  RewardContext context;
  context.log = log;
  if (config_.kind == "contrast") {
    contrast_ = std::make_unique<ClipContrastReward>("world.clip_contrast", load_world_clip("world.clip_contrast", init_dir_, context));
    const ClipModel& model = contrast_->clip().model();
    for (at::Tensor p : model.text->parameters()) p.set_requires_grad(false);
    for (at::Tensor p : model.vision->parameters()) p.set_requires_grad(true);
  } else {
    text_ = std::make_unique<WorldTextEmbedder>(init_dir_, context);
    config_.net.text_dim = text_->width();
    at::manual_seed(static_cast<uint64_t>(config_.trainer.seed));  // the initial weights
    net_ = std::make_shared<WorldVerifierNet>(config_.net);
  }
  held_out_ = held_out_texts();
  refuse_held_out(pool_, held_out_, "verifier pool");
}

NamedTensors VerifierPretrainTask::trainable_parameters() {
  NamedTensors out;
  if (net_) {
    for (const auto& p : net_->named_parameters()) out.emplace_back("verifier/" + p.key(), p.value());
  } else {
    for (const auto& p : contrast_->clip().model().vision->named_parameters()) out.emplace_back("vision_model/" + p.key(), p.value());
  }
  return out;
}

void VerifierPretrainTask::save_state(TensorMap& out) const {
  if (net_)
    add_module_state(out, "verifier/", *net_);
  else
    add_module_state(out, "vision/", *contrast_->clip().model().vision);
}

void VerifierPretrainTask::load_state(const TensorMap& in) {
  if (net_)
    load_module_state(in, "verifier/", *net_);
  else
    load_module_state(in, "vision/", *contrast_->clip().model().vision);
}

VerifierBatch VerifierPretrainTask::draw_batch(at::Generator& generator) const {
  const int64_t b = config_.batch_size;
  const int64_t rendered = std::llround(static_cast<double>(b) * config_.rendered_fraction);
  const at::Tensor index = at::randint(0, pool_.images.size(0), {b - rendered}, generator);
  std::vector<std::string> prompts;
  const auto* rows = index.data_ptr<int64_t>();
  for (int64_t i = 0; i < b - rendered; ++i) prompts.push_back(pool_.prompts[static_cast<size_t>(rows[i])]);
  VerifierBatch batch;
  batch.images = pool_pixels(pool_.images.index_select(0, index));
  if (rendered > 0) {
    const WorldBatch scenes = sample_world_batch(prompts_, rendered, generator);
    batch.images = at::cat({batch.images, scenes.images});
    prompts.insert(prompts.end(), scenes.prompts.begin(), scenes.prompts.end());
  }
  // Anchors: the image's own prompt, or a training prompt one edit away from it (which the image
  // may well satisfy: a failed "red triangle" is often a fine "purple triangle"). The checker labels
  // each pair on the very pixels the verifier sees.
  const int64_t seed = at::randint(0, int64_t{1} << 62, {1}, generator).item<int64_t>();
  world::Rng rng(static_cast<uint64_t>(seed));
  for (int64_t i = 0; i < b; ++i) {
    const world::Prompt prompt = world::parse_prompt(prompts[static_cast<size_t>(i)]);
    world::Prompt anchor = prompt;
    if (rng.uniform() < config_.neighbour_anchor) {
      std::vector<world::Prompt> neighbours;
      for (world::Prompt& n : world::one_edit_negatives(prompt))
        if (!held_out_.count(n.text())) neighbours.push_back(std::move(n));
      if (!neighbours.empty()) anchor = neighbours[static_cast<size_t>(rng.below(static_cast<int64_t>(neighbours.size())))];
    }
    batch.anchors.push_back(anchor.text());
    batch.labels.push_back(world::check(batch.images[i], anchor).passed);
  }
  return batch;
}

VerifierLoss VerifierPretrainTask::loss(const VerifierBatch& batch) {
  if (contrast_) return verifier_loss(*contrast_, batch.images, batch.anchors, batch.labels);
  const at::Tensor logits = net_->forward(batch.images, text_->embed(batch.anchors));
  std::vector<float> labels(batch.labels.begin(), batch.labels.end());
  const at::Tensor targets = at::tensor(labels);
  VerifierLoss out;
  out.loss = at::binary_cross_entropy_with_logits(logits, targets);
  out.accuracy = logits.detach().gt(0).eq(targets.gt(0.5)).to(at::kDouble).mean().item<double>();
  out.positives = targets.mean().item<double>();
  return out;
}

MetricsWriter::Values VerifierPretrainTask::train_step(StepContext& context) {
  const VerifierLoss l = loss(draw_batch(context.generator()));
  context.optimize(l.loss);
  return {{"loss", l.loss.item<double>()}, {"batch_accuracy", l.accuracy}, {"positives", l.positives}};
}

void VerifierPretrainTask::export_to(const std::string& dir) const {
  copy_folder_files(init_dir_ + "/tokenizer", dir + "/tokenizer");
  copy_folder_files(init_dir_ + "/text_encoder", dir + "/text_encoder");
  if (net_) {
    save_world_verifier(dir + "/verifier", *net_, at::kHalf);
  } else {
    const ClipVisionModel& vision = *contrast_->clip().model().vision;
    save_component(dir + "/image_encoder", clip_vision_config_json(vision.config(), true), vision, "model.safetensors", at::kHalf);
  }
}

}  // namespace rewardgen::pretrain
