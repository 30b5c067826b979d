#include "eval/world_eval.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include "core/error.h"
#include "core/progress.h"
#include "models/clip_preprocess.h"
#include "rewards/composite.h"
#include "world/render.h"
#include "world/checker.h"

namespace rewardgen {

namespace {

at::Tensor image_features(const ClipVisionModel& encoder, const at::Tensor& images) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> rows;
  for (int64_t start = 0; start < images.size(0); start += 128) {
    const at::Tensor chunk = images.narrow(0, start, std::min<int64_t>(128, images.size(0) - start));
    rows.push_back(clip_image_embeddings(encoder, chunk).to(at::kCPU, at::kDouble));
  }
  return at::cat(rows);
}

// Symmetric PSD square root through an eigendecomposition (negative round-off clipped).
at::Tensor sqrt_psd(const at::Tensor& matrix) {
  const auto [values, vectors] = at::linalg_eigh(matrix);
  return vectors.matmul(at::diag(values.clamp_min(0).sqrt())).matmul(vectors.t());
}

at::Tensor covariance(const at::Tensor& rows) {
  const at::Tensor centred = rows - rows.mean(0, true);
  return centred.t().matmul(centred) / static_cast<double>(rows.size(0) - 1);
}

// Ranks 1..N, tied values sharing the mean of the ranks they span.
std::vector<double> ranks(const std::vector<double>& values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return values[i] < values[j]; });
  std::vector<double> rank(values.size());
  for (size_t start = 0; start < order.size();) {
    size_t end = start + 1;
    while (end < order.size() && values[order[end]] == values[order[start]]) ++end;
    const double mean_rank = 0.5 * static_cast<double>(start + 1 + end);  // mean of start+1 .. end
    for (size_t k = start; k < end; ++k) rank[order[k]] = mean_rank;
    start = end;
  }
  return rank;
}

RewardSummary summarise_reward(std::vector<double> scores, const std::vector<bool>& passed,
                               const std::vector<double>& clauses_passed) {
  RewardSummary summary;
  RunningStats stats;  // population mean/std, as composites log them
  stats.update(at::tensor(scores, at::kDouble));
  summary.mean = stats.mean();
  summary.std = stats.stddev();
  const std::vector<double> verdicts(passed.begin(), passed.end());
  const bool enough = scores.size() >= 2;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  summary.spearman_passed = enough ? spearman_correlation(scores, verdicts) : nan;
  summary.spearman_clauses = enough ? spearman_correlation(scores, clauses_passed) : nan;
  summary.scores = std::move(scores);
  return summary;
}

std::vector<double> score_images(Reward& reward, const at::Tensor& images, const std::vector<world::EvalPrompt>& lines,
                                 int64_t batch) {
  at::NoGradGuard no_grad;
  std::vector<double> scores;
  for (int64_t start = 0; start < images.size(0); start += batch) {
    const int64_t count = std::min(batch, images.size(0) - start);
    std::vector<std::string> prompts;
    for (int64_t i = start; i < start + count; ++i) prompts.push_back(lines[static_cast<size_t>(i)].text);
    const at::Tensor values = reward.score(images.narrow(0, start, count), prompts).to(at::kCPU, at::kDouble).contiguous();
    if (!at::isfinite(values).all().item<bool>())
      throw Error(str("reward '", reward.name(), "' gave a NaN or Inf score on evaluation images ", start, "..", start + count - 1));
    scores.insert(scores.end(), values.data_ptr<double>(), values.data_ptr<double>() + count);
  }
  return scores;
}

Json finite_or_null(double value) { return std::isfinite(value) ? Json(value) : Json(nullptr); }

// Lines [start, start + texts.size()) sampled in one call. The noise comes from the generator of
// the batch (seed + its first line), so texts sampled again in the same batch layout get the same
// noise line for line.
at::Tensor sample_batch(const TextToImage& model, const std::vector<std::string>& texts, size_t start,
                        const WorldEvalOptions& options, int64_t* nfe) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed + start);
  return model.generate(texts, options.sampler, generator, nullptr, nfe).to(at::kCPU, at::kFloat);
}

world::Prompt reversed_relation(world::Prompt prompt) {
  prompt.relation = world::opposite(prompt.relation);
  return prompt;
}

bool holds_position_line(const std::vector<world::EvalPrompt>& lines, size_t start, size_t end) {
  for (size_t i = start; i < end; ++i)
    if (lines[i].task == world::Task::position) return true;
  return false;
}

// Every batch that holds a position line sampled again with those lines' relations reversed (other
// lines as they were, so that the batch draws the same noise); the control on the position lines.
// `progress` counts on from `done` images.
void sample_relation_control(const TextToImage& model, const std::vector<world::EvalPrompt>& lines,
                             const WorldEvalOptions& options, WorldEvalResult& result, ProgressBar* progress,
                             int64_t done) {
  std::vector<world::Prompt> prompts;
  std::vector<at::Tensor> reversed;
  for (size_t start = 0; start < lines.size(); start += static_cast<size_t>(options.batch)) {
    const size_t end = std::min(lines.size(), start + static_cast<size_t>(options.batch));
    if (!holds_position_line(lines, start, end)) continue;
    std::vector<std::string> texts;
    std::vector<size_t> position_lines;
    for (size_t i = start; i < end; ++i) {
      if (lines[i].task != world::Task::position) {
        texts.push_back(lines[i].text);
        continue;
      }
      prompts.push_back(world::parse_prompt(lines[i].text));
      texts.push_back(reversed_relation(prompts.back()).text());
      position_lines.push_back(i);
    }
    const at::Tensor images = sample_batch(model, texts, start, options, nullptr).clamp(-1, 1);
    for (size_t i : position_lines) reversed.push_back(images[static_cast<int64_t>(i - start)]);
    result.reversed_lines.insert(result.reversed_lines.end(), position_lines.begin(), position_lines.end());
    done += static_cast<int64_t>(end - start);
    if (progress) progress->update(done);
  }
  if (prompts.empty()) return;
  result.reversed_generated = at::stack(reversed);
  const at::Tensor index = at::tensor(std::vector<int64_t>(result.reversed_lines.begin(), result.reversed_lines.end()), at::kLong);
  result.relation_control = relation_control(result.generated.index_select(0, index), result.reversed_generated, prompts);
}

}  // namespace

RelationControl relation_control(const at::Tensor& images, const at::Tensor& reversed_images,
                                 const std::vector<world::Prompt>& prompts) {
  const int64_t count = static_cast<int64_t>(prompts.size());
  if (count == 0 || images.dim() != 4 || images.size(0) != count || reversed_images.sizes() != images.sizes())
    throw Error(str("the relation control needs one image and one reversed image per prompt: ", images.sizes(), " and ",
                    reversed_images.sizes(), " for ", count, " prompts"));
  RelationControl out;
  out.lines = count;
  std::vector<double> moves;
  int64_t followed = 0, ignored = 0;
  for (int64_t k = 0; k < count; ++k) {
    const world::Prompt& asked = prompts[static_cast<size_t>(k)];
    if (asked.task != world::Task::position)
      throw Error(str("the relation control takes position prompts, got '", asked.text(), "'"));
    const world::Prompt reversed = reversed_relation(asked);
    const world::CheckResult first = world::check(images[k], asked);
    const world::CheckResult second = world::check(reversed_images[k], reversed);
    followed += first.passed && second.passed;
    ignored += (first.passed && world::check(reversed_images[k], asked).passed) ||
               (second.passed && world::check(images[k], reversed).passed);
    for (const world::Detection& a : first.detections) {
      double nearest = std::numeric_limits<double>::infinity();
      for (const world::Detection& b : second.detections)
        if (a.colour == b.colour && a.shape == b.shape) nearest = std::min(nearest, std::hypot(double(a.cx - b.cx), double(a.cy - b.cy)));
      if (std::isfinite(nearest)) moves.push_back(nearest);
    }
  }
  out.followed = static_cast<double>(followed) / static_cast<double>(count);
  out.ignored = static_cast<double>(ignored) / static_cast<double>(count);
  out.objects_matched = static_cast<int64_t>(moves.size());
  if (!moves.empty()) {
    std::sort(moves.begin(), moves.end());
    const size_t half = moves.size() / 2;
    out.median_move = moves.size() % 2 ? moves[half] : 0.5 * (moves[half - 1] + moves[half]);
    out.moved_under_3px = static_cast<double>(std::count_if(moves.begin(), moves.end(), [](double m) { return m < 3; })) /
                          static_cast<double>(moves.size());
  }
  return out;
}

Json RelationControl::to_json() const {
  return {{"lines", lines},
          {"followed", followed},
          {"ignored", ignored},
          {"objects_matched", objects_matched},
          {"median_move_px", median_move >= 0 ? Json(median_move) : Json(nullptr)},
          {"moved_under_3px", moved_under_3px}};
}

double spearman_correlation(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2)
    throw Error(str("Spearman correlation needs two sequences of the same length >= 2, got ", a.size(), " and ", b.size()));
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double mean = 0.5 * static_cast<double>(a.size() + 1);  // the mean rank, ties or not
  double cross = 0, square_a = 0, square_b = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    cross += (ra[i] - mean) * (rb[i] - mean);
    square_a += (ra[i] - mean) * (ra[i] - mean);
    square_b += (rb[i] - mean) * (rb[i] - mean);
  }
  if (square_a == 0 || square_b == 0) return std::numeric_limits<double>::quiet_NaN();
  return cross / std::sqrt(square_a * square_b);
}

double frechet_distance(const at::Tensor& features_a, const at::Tensor& features_b) {
  if (features_a.dim() != 2 || features_b.dim() != 2 || features_a.size(1) != features_b.size(1) ||
      features_a.size(0) < 2 || features_b.size(0) < 2)
    throw Error(str("Fréchet distance needs two [N >= 2, D] feature sets of the same D, got ", features_a.sizes(), " and ",
                    features_b.sizes()));
  const at::Tensor a = features_a.to(at::kDouble), b = features_b.to(at::kDouble);
  const at::Tensor cov_a = covariance(a), cov_b = covariance(b);
  const at::Tensor root_a = sqrt_psd(cov_a);
  const at::Tensor cross = sqrt_psd(root_a.matmul(cov_b).matmul(root_a));
  const double mean_term = (a.mean(0) - b.mean(0)).pow(2).sum().item<double>();
  return mean_term + (cov_a.trace() + cov_b.trace() - 2 * cross.trace()).item<double>();
}

Json WorldEvalResult::to_json() const {
  Json out = {{"accuracy", accuracy},
              {"images", images},
              {"images_per_second", images_per_second},
              {"ms_per_image", ms_per_image},
              {"nfe_per_image", nfe_per_image}};
  out["frechet_distance"] = frechet_distance >= 0 ? Json(frechet_distance) : Json(nullptr);
  out["diversity"] = diversity >= 0 ? Json(diversity) : Json(nullptr);
  if (position_reversed >= 0) out["position_reversed"] = position_reversed;
  if (relation_control) out["relation_control"] = relation_control->to_json();
  if (!rewards.empty()) {
    Json summaries = Json::object();
    for (const auto& [name, r] : rewards)
      summaries[name] = {{"mean", r.mean}, {"std", r.std}, {"spearman_vs_checker", finite_or_null(r.spearman_passed)},
                         {"spearman_vs_clauses", finite_or_null(r.spearman_clauses)}};
    out["rewards"] = summaries;
  }
  return out;
}

WorldVerdicts judge_world_images(const at::Tensor& images, const std::vector<world::EvalPrompt>& lines) {
  if (images.dim() != 4 || images.size(0) != static_cast<int64_t>(lines.size()))
    throw Error(str("judging needs one image per prompt line: ", images.sizes(), " for ", lines.size(), " lines"));
  WorldVerdicts out;
  out.passed.reserve(lines.size());
  std::map<std::string, std::pair<int64_t, int64_t>> counts;
  int64_t total = 0, position_lines = 0, reversed_passed = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const world::Prompt prompt = world::parse_prompt(lines[i].text);
    const world::CheckResult verdict = world::check(images[static_cast<int64_t>(i)], prompt);
    const bool passed = verdict.passed;
    int64_t clauses = 0;
    for (const world::ClauseResult& clause : verdict.clauses) clauses += clause.passed;
    out.passed.push_back(passed);
    out.clauses_passed.push_back(verdict.clauses.empty() ? double(passed) : double(clauses) / double(verdict.clauses.size()));
    auto& [hits, seen] = counts[world::name(lines[i].task)];
    hits += passed, ++seen, total += passed;
    if (lines[i].task == world::Task::position) {
      ++position_lines;
      world::Prompt reversed = prompt;
      reversed.relation = world::opposite(reversed.relation);
      reversed_passed += world::check(images[static_cast<int64_t>(i)], reversed).passed;
    }
  }
  if (position_lines > 0) out.position_reversed = static_cast<double>(reversed_passed) / static_cast<double>(position_lines);
  for (const auto& [task, c] : counts) out.accuracy[task] = static_cast<double>(c.first) / static_cast<double>(c.second);
  out.accuracy["overall"] = lines.empty() ? 0.0 : static_cast<double>(total) / static_cast<double>(lines.size());
  return out;
}

double world_frechet_distance(const ClipVisionModel& image_encoder, const at::Tensor& images,
                              const std::vector<world::EvalPrompt>& lines, uint64_t seed) {
  const at::Tensor real = world::render_eval_scenes(lines, seed);
  return frechet_distance(image_features(image_encoder, images), image_features(image_encoder, real));
}

int64_t world_eval_sampled_images(const std::vector<world::EvalPrompt>& lines, const WorldEvalOptions& options) {
  int64_t images = static_cast<int64_t>(lines.size());
  if (!options.relation_control) return images;
  for (size_t start = 0; start < lines.size(); start += static_cast<size_t>(options.batch)) {
    const size_t end = std::min(lines.size(), start + static_cast<size_t>(options.batch));
    if (holds_position_line(lines, start, end)) images += static_cast<int64_t>(end - start);
  }
  return images;
}

WorldEvalResult evaluate_world(const TextToImage& model, const std::vector<world::EvalPrompt>& lines,
                               const WorldEvalOptions& options, const ClipVisionModel* image_encoder,
                               ProgressBar* progress) {
  if (lines.empty()) throw Error("evaluation needs at least one prompt");
  WorldEvalResult result;
  std::vector<at::Tensor> generated;
  int64_t nfe = 0;
  double seconds = 0;
  for (size_t start = 0; start < lines.size(); start += static_cast<size_t>(options.batch)) {
    const size_t end = std::min(lines.size(), start + static_cast<size_t>(options.batch));
    std::vector<std::string> prompts;
    for (size_t i = start; i < end; ++i) prompts.push_back(lines[i].text);
    const auto t0 = std::chrono::steady_clock::now();
    generated.push_back(sample_batch(model, prompts, start, options, &nfe));
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (progress) progress->update(static_cast<int64_t>(end));
  }
  result.images = static_cast<int64_t>(lines.size());
  result.images_per_second = static_cast<double>(result.images) / seconds;
  result.ms_per_image = 1000 * seconds / static_cast<double>(result.images);
  // The sampler counts network calls per batch (each call evaluates every image of the batch).
  result.nfe_per_image = static_cast<double>(nfe) / static_cast<double>(generated.size());
  const at::Tensor images = at::cat(generated).clamp(-1, 1);
  result.generated = images;
  WorldVerdicts verdicts = judge_world_images(images, lines);
  result.accuracy = std::move(verdicts.accuracy);
  result.passed = std::move(verdicts.passed);
  result.clauses_passed = std::move(verdicts.clauses_passed);
  result.position_reversed = verdicts.position_reversed;
  // After the timed loop: the second sampling does not count in images/s.
  if (options.relation_control)
    sample_relation_control(model, lines, options, result, progress, static_cast<int64_t>(lines.size()));
  for (const std::shared_ptr<Reward>& reward : options.rewards)
    result.rewards[reward->name()] =
        summarise_reward(score_images(*reward, images, lines, options.batch), result.passed, result.clauses_passed);
  if (image_encoder != nullptr) {
    if (lines.size() >= 2) result.frechet_distance = world_frechet_distance(*image_encoder, images, lines, options.seed);
    if (options.diversity_prompts > 0 && options.diversity_seeds > 1) {
      std::vector<std::string> distinct;
      for (const world::EvalPrompt& line : lines) {
        if (static_cast<int64_t>(distinct.size()) == options.diversity_prompts) break;
        if (std::find(distinct.begin(), distinct.end(), line.text) == distinct.end()) distinct.push_back(line.text);
      }
      double distance_sum = 0;
      int64_t pairs = 0;
      for (size_t p = 0; p < distinct.size(); ++p) {
        const std::vector<std::string> same(static_cast<size_t>(options.diversity_seeds), distinct[p]);
        at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed + 1000003 * (p + 1));
        const at::Tensor features = image_features(*image_encoder, model.generate(same, options.sampler, generator).clamp(-1, 1));
        const at::Tensor distances = at::cdist(features, features);  // [S, S], zero diagonal
        distance_sum += distances.sum().item<double>();
        pairs += options.diversity_seeds * (options.diversity_seeds - 1);
      }
      result.diversity = distance_sum / static_cast<double>(pairs);
    }
  }
  return result;
}

}  // namespace rewardgen
