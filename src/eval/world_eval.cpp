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

}  // namespace

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
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed + start);
    const auto t0 = std::chrono::steady_clock::now();
    generated.push_back(model.generate(prompts, options.sampler, generator, nullptr, &nfe).to(at::kCPU, at::kFloat));
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
