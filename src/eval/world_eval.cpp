#include "eval/world_eval.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <set>

#include "core/error.h"
#include "core/progress.h"
#include "rewards/clip_preprocess.h"
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

}  // namespace

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
  return out;
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
  result.passed.reserve(lines.size());
  std::map<std::string, std::pair<int64_t, int64_t>> counts;
  int64_t total = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const bool passed = world::check(images[static_cast<int64_t>(i)], world::parse_prompt(lines[i].text)).passed;
    result.passed.push_back(passed);
    auto& [hits, seen] = counts[world::name(lines[i].task)];
    hits += passed, ++seen, total += passed;
  }
  for (const auto& [task, c] : counts) result.accuracy[task] = static_cast<double>(c.first) / static_cast<double>(c.second);
  result.accuracy["overall"] = static_cast<double>(total) / static_cast<double>(lines.size());
  if (image_encoder != nullptr) {
    if (lines.size() >= 2) {
      const at::Tensor real = world::render_eval_scenes(lines, options.seed);
      result.frechet_distance = frechet_distance(image_features(*image_encoder, images), image_features(*image_encoder, real));
    }
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
