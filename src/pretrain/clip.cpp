#include "pretrain/clip.h"

#include <cmath>
#include <set>

#include "pretrain/world_models.h"
#include "models/clip_preprocess.h"
#include "world/render.h"
#include "train/checkpoint.h"
#include "world/checker.h"

namespace rewardgen::pretrain {

ClipPretrainConfig::ClipPretrainConfig()
    : trainer(cosine_trainer(2500, 5e-4, 100, 0.05)), text(world_clip_text_config(0)), vision(world_clip_vision_config()) {
  trainer.adam.weight_decay = 0.1;
}

ClipPretrainConfig read_clip_pretrain_config(ConfigReader& reader) {
  ClipPretrainConfig config;
  ConfigReader trainer = reader.child("trainer");
  read_trainer_config(trainer, config.trainer);
  reader.optional("batch_size", config.batch_size, at_least(2)).optional("hard_negatives", config.hard_negatives);
  if (reader.has("text")) {
    ConfigReader text = reader.child("text");
    read_clip_text_config(text, config.text);
  }
  if (reader.has("vision")) {
    ConfigReader vision = reader.child("vision");
    read_clip_vision_config(vision, config.vision);
  }
  return config;
}

Json clip_pretrain_config_json(const ClipPretrainConfig& config) {
  return {{"trainer", trainer_config_json(config.trainer)},
          {"batch_size", config.batch_size},
          {"hard_negatives", config.hard_negatives},
          {"text", clip_text_config_json(config.text, true)},
          {"vision", clip_vision_config_json(config.vision, true)}};
}

at::Tensor WorldClip::embed_texts(const ClipTokenizer& tokenizer, const std::vector<std::string>& prompts) const {
  const at::Tensor ids = tokenizer.encode_batch(prompts, text->config().max_position_embeddings);
  const at::Tensor embeds = text->forward(ids.to(text->token_embedding->weight.device())).text_embeds;
  return embeds / embeds.norm(2, -1, true);
}

at::Tensor WorldClip::embed_images(const at::Tensor& images) const {
  return clip_image_embeddings(*vision, images);
}

ClipPretrainTask::ClipPretrainTask(const ClipPretrainConfig& config, ClipTokenizer tokenizer)
    : config_(config), tokenizer_(std::move(tokenizer)) {
  config_.text.vocab_size = tokenizer_.vocab_size();
  config_.text.eos_token_id = tokenizer_.end_id();
  at::manual_seed(static_cast<uint64_t>(config.trainer.seed));  // the initial weights
  clip_.text = std::make_shared<ClipTextModel>(config_.text, true);
  clip_.vision = std::make_shared<ClipVisionModel>(config_.vision, true);
  logit_scale_ = at::full({}, std::log(1 / 0.07)).set_requires_grad(true);  // CLIP's initial temperature
}

NamedTensors ClipPretrainTask::trainable_parameters() {
  NamedTensors out;
  for (const auto& p : clip_.text->named_parameters()) out.emplace_back("text_model/" + p.key(), p.value());
  for (const auto& p : clip_.vision->named_parameters()) out.emplace_back("vision_model/" + p.key(), p.value());
  out.emplace_back("logit_scale", logit_scale_);
  return out;
}

void ClipPretrainTask::save_state(TensorMap& out) const {
  add_module_state(out, "text/", *clip_.text);
  add_module_state(out, "vision/", *clip_.vision);
  out["logit_scale"] = logit_scale_.detach().clone();
}

void ClipPretrainTask::load_state(const TensorMap& in) {
  load_module_state(in, "text/", *clip_.text);
  load_module_state(in, "vision/", *clip_.vision);
  at::NoGradGuard no_grad;
  logit_scale_.copy_(in.at("logit_scale"));
}

MetricsWriter::Values ClipPretrainTask::train_step(StepContext& context) {
  const WorldBatch batch = sample_world_batch(prompts_, config_.batch_size, context.generator());
  std::vector<std::string> texts = batch.prompts;
  if (config_.hard_negatives) {
    const int64_t seed = at::randint(0, int64_t{1} << 62, {1}, context.generator()).item<int64_t>();
    world::Rng rng(static_cast<uint64_t>(seed));
    for (const world::Prompt& prompt : batch.parsed) texts.push_back(world::hard_negative(prompt, rng).text());
  }
  const at::Tensor text_embeds = clip_.embed_texts(tokenizer_, texts);   // [B or 2B, E]
  const at::Tensor image_embeds = clip_.embed_images(batch.images);       // [B, E]
  const at::Tensor scale = logit_scale_.clamp_max(std::log(100.0)).exp();  // CLIP caps the scale at 100
  const int64_t b = config_.batch_size;
  const at::Tensor targets = at::arange(b, at::kLong);
  // Images choose among every prompt of the batch and the hard negatives; prompts among images.
  const at::Tensor image_logits = scale * image_embeds.matmul(text_embeds.t());
  const at::Tensor text_logits = scale * text_embeds.narrow(0, 0, b).matmul(image_embeds.t());
  const at::Tensor loss = (at::cross_entropy_loss(image_logits, targets) + at::cross_entropy_loss(text_logits, targets)) / 2;
  context.optimize(loss);
  const double accuracy = image_logits.argmax(1).eq(targets).to(at::kFloat).mean().item<double>();
  return {{"loss", loss.item<double>()}, {"batch_top1", accuracy}, {"logit_scale", scale.item<double>()}};
}

RetrievalEvaluation evaluate_retrieval(const WorldClip& clip, const ClipTokenizer& tokenizer, int64_t limit) {
  at::NoGradGuard no_grad;
  const std::vector<world::EvalPrompt> all = world::eval_prompts();
  const std::vector<world::EvalPrompt> lines = world::balanced_subset(all, limit);
  RetrievalEvaluation evaluation;
  std::map<world::Task, std::vector<std::string>> candidates;
  for (const world::EvalPrompt& line : all) {
    auto& list = candidates[line.task];
    if (std::find(list.begin(), list.end(), line.text) == list.end()) list.push_back(line.text);
  }
  std::map<world::Task, at::Tensor> candidate_embeds;
  for (const auto& [task, texts] : candidates) candidate_embeds[task] = clip.embed_texts(tokenizer, texts).to(at::kCPU, at::kFloat);
  const at::Tensor images = world::render_eval_scenes(lines);
  const at::Tensor image_embeds = clip.embed_images(images).to(at::kCPU, at::kFloat);
  std::map<world::Task, std::pair<int64_t, int64_t>> hits;  // task -> (hits, total)
  for (size_t i = 0; i < lines.size(); ++i) {
    const world::Task task = lines[i].task;
    const int64_t best = image_embeds[static_cast<int64_t>(i)].matmul(candidate_embeds[task].t()).argmax().item<int64_t>();
    const world::Prompt top = world::parse_prompt(candidates[task][static_cast<size_t>(best)]);
    hits[task].first += world::check(images[static_cast<int64_t>(i)], top).passed;
    hits[task].second += 1;
  }
  int64_t total_hits = 0;
  for (const auto& [task, counts] : hits) {
    evaluation.top1[world::name(task)] = static_cast<double>(counts.first) / static_cast<double>(counts.second);
    total_hits += counts.first;
  }
  evaluation.images = static_cast<int64_t>(lines.size());
  evaluation.top1["overall"] = static_cast<double>(total_hits) / static_cast<double>(evaluation.images);
  return evaluation;
}

Json to_json(const RetrievalEvaluation& evaluation) {
  return {{"retrieval_top1", evaluation.top1}, {"images", evaluation.images}};
}

}  // namespace rewardgen::pretrain
