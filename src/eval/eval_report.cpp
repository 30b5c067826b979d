#include "eval/eval_report.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"
#include "io/image.h"

namespace rewardgen {

// One row of the grid per task (its first 8 images), so that a person sees every task at once.
at::Tensor eval_grid(const WorldEvalResult& result, const std::vector<world::EvalPrompt>& lines) {
  return eval_grid(result.generated, lines);
}

at::Tensor eval_grid(const at::Tensor& images, const std::vector<world::EvalPrompt>& lines) {
  std::vector<at::Tensor> rows;
  for (world::Task task : world::kTasks) {
    std::vector<at::Tensor> row;
    for (size_t i = 0; i < lines.size() && row.size() < 8; ++i)
      if (lines[i].task == task) row.push_back(images[static_cast<int64_t>(i)]);
    while (!row.empty() && row.size() < 8) row.push_back(at::ones_like(row[0]));
    if (!row.empty()) rows.push_back(at::stack(row));
  }
  return make_grid(at::cat(rows), 8);
}

Json write_eval_report(const std::string& dir, const WorldEvalResult& result, const std::vector<world::EvalPrompt>& lines,
                       const EvalReportInfo& info) {
  Json report = result.to_json();
  report["model"] = info.model;
  report["prompts"] = info.prompts;
  report["sampler"] = sampler_to_eval_json(info.sampler);
  report["seed"] = info.seed;
  report.update(info.extra);
  save_json_file(dir + "/eval.json", report);
  std::string verdicts;
  for (size_t i = 0; i < lines.size(); ++i) {
    Json line{{"index", i}, {"task", world::name(lines[i].task)}, {"prompt", lines[i].text}, {"passed", result.passed[i]},
              {"clauses_passed", result.clauses_passed[i]}};
    for (const auto& [name, summary] : result.rewards) line["rewards"][name] = summary.scores[i];
    verdicts += line.dump() + "\n";
  }
  write_file_atomic(dir + "/verdicts.jsonl", verdicts);
  save_png(dir + "/grid.png", eval_grid(result, lines));
  if (info.save_images) {
    // One PNG per evaluated image, named by its line in the prompt set (verdicts.jsonl's "index").
    std::filesystem::create_directories(dir + "/images");
    for (size_t i = 0; i < lines.size(); ++i) {
      char name[48];
      std::snprintf(name, sizeof name, "/images/%05zu.png", i);
      save_png(dir + name, result.generated[static_cast<int64_t>(i)]);
    }
    // The relation control's second images, named by the line they reverse.
    for (size_t k = 0; k < result.reversed_lines.size(); ++k) {
      char name[48];
      std::snprintf(name, sizeof name, "/images/reversed_%05zu.png", result.reversed_lines[k]);
      save_png(dir + name, result.reversed_generated[static_cast<int64_t>(k)]);
    }
  }
  return report;
}

Json sampler_to_eval_json(const SamplerOptions& s) {
  Json j = {{"name", s.sampler}, {"steps", s.steps},         {"guidance_scale", s.guidance_scale}, {"eta", s.eta},
            {"timestep_spacing", s.timestep_spacing}, {"timesteps", s.timesteps}, {"output", s.output}};
  if (s.first_timestep >= 0) j["first_timestep"] = s.first_timestep;
  return j;
}

SamplerOptions sampler_from_eval_json(const Json& sampler, const std::string& file) {
  if (!sampler.is_object()) throw Error(str(file, ": 'sampler' is not an object"));
  SamplerOptions o;
  try {
    o.sampler = sampler.at("name").get<std::string>();
    o.steps = sampler.at("steps").get<int64_t>();
    o.guidance_scale = sampler.at("guidance_scale").get<double>();
    o.eta = sampler.value("eta", 0.0);
    o.timestep_spacing = sampler.value("timestep_spacing", o.timestep_spacing);
    o.timesteps = sampler.value("timesteps", std::vector<int64_t>{});
    o.first_timestep = sampler.value("first_timestep", int64_t{-1});
    o.output = sampler.value("output", o.output);
  } catch (const nlohmann::json::exception& e) {
    throw Error(str(file, ": sampler: ", e.what()));
  }
  try {
    validate(o);
  } catch (const Error& e) {
    throw Error(str(file, ": sampler: ", e.what()));
  }
  return o;
}

std::shared_ptr<ClipVisionModel> load_eval_image_encoder(const std::string& model, const LoadOptions& load, const Logger& log) {
  if (std::filesystem::exists(model + "/image_encoder/config.json")) return load_clip_vision(model + "/image_encoder", load, log);
  log.warn(str("no image_encoder/ in '", model, "': Fréchet distance and diversity are not measured"));
  return nullptr;
}

std::string eval_comparison_table(const std::vector<std::string>& files, const std::vector<std::string>& names) {
  if (!names.empty() && names.size() != files.size())
    throw Error(str(names.size(), " row names for ", files.size(), " evaluation files: give one --name per file, or none"));
  const std::vector<std::string> tasks = {"single_object", "two_object", "counting", "colors", "position", "color_attr", "overall"};
  std::string out = "| model |";
  for (const std::string& t : tasks) out += " " + t + " |";
  // The position task's control (docs/world.md) beside the accuracies: position is the relation
  // only as far as it stands above it.
  out += " position reversed | relation followed | FD | diversity | NFE | images/s |\n|---|";
  for (size_t i = 0; i < tasks.size() + 6; ++i) out += "---|";
  out += "\n";
  // A cell: the number at `key` of `j` with `digits` decimals (scaled by `scale`), or a dash where it
  // is missing, not a number, or negative when `negative_is_missing` (position_reversed's −1: no
  // position line was evaluated).
  auto cell = [](const Json& j, const char* key, int digits, double scale = 1, bool negative_is_missing = false) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number() || (negative_is_missing && j[key].get<double>() < 0))
      return std::string(" – |");
    char text[32];
    std::snprintf(text, sizeof text, " %.*f |", digits, scale * j[key].get<double>());
    return std::string(text);
  };
  for (size_t i = 0; i < files.size(); ++i) {
    const Json j = load_json_file(files[i]);
    if (!j.is_object() || !j.contains("accuracy") || !j["accuracy"].is_object())
      throw Error(str(files[i], ": not an evaluation (an eval.json is a JSON object with an \"accuracy\" object)"));
    const bool named = j.contains("model") && j["model"].is_string();
    out += "| " + (!names.empty() ? names[i] : named ? j["model"].get<std::string>() : files[i]) + " |";
    for (const std::string& t : tasks) out += cell(j["accuracy"], t.c_str(), 1, 100);
    out += cell(j, "position_reversed", 1, 100, true);
    // The control with the noise fixed, when the evaluation ran it (eval --relation-control).
    out += j.contains("relation_control") ? cell(j["relation_control"], "followed", 1, 100) : std::string(" – |");
    out += cell(j, "frechet_distance", 3) + cell(j, "diversity", 3) + cell(j, "nfe_per_image", 0) + cell(j, "images_per_second", 1) + "\n";
  }
  return out;
}

double eval_metric(const Json& eval, const std::string& path, const std::string& file) {
  const Json* at = &eval;
  size_t begin = 0;
  while (true) {
    const size_t end = path.find('/', begin);
    const std::string key = path.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    if (!at->is_object() || !at->contains(key))
      throw Error(str(file, ": no '", path, "' (", key.empty() ? "an empty key" : "'" + key + "'", " is missing)"));
    at = &(*at)[key];
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  if (!at->is_number()) throw Error(str(file, ": '", path, "' is not a number"));
  return at->get<double>();
}

std::vector<PlotSeries> eval_tradeoff_series(const std::vector<std::string>& files, const std::vector<std::string>& names,
                                             const std::vector<std::string>& series, const std::string& x_path,
                                             const std::string& y_path) {
  if (!names.empty() && names.size() != files.size())
    throw Error(str(names.size(), " point names for ", files.size(), " evaluation files: give one --name per file, or none"));
  if (!series.empty() && series.size() != files.size())
    throw Error(str(series.size(), " series names for ", files.size(), " evaluation files: give one --series per file, or none"));
  auto scaled = [](const std::string& path, double value) { return path.rfind("accuracy/", 0) == 0 ? 100 * value : value; };
  std::vector<PlotSeries> out;
  for (size_t i = 0; i < files.size(); ++i) {
    const Json j = load_json_file(files[i]);
    const std::string series_name = series.empty() ? "evaluations" : series[i];
    auto found = std::find_if(out.begin(), out.end(), [&](const PlotSeries& s) { return s.label == series_name; });
    if (found == out.end()) found = out.insert(out.end(), PlotSeries{series_name, {}, {}, {}});
    found->x.push_back(scaled(x_path, eval_metric(j, x_path, files[i])));
    found->y.push_back(scaled(y_path, eval_metric(j, y_path, files[i])));
    const bool named = j.is_object() && j.contains("model") && j["model"].is_string();
    found->point_labels.push_back(!names.empty() ? names[i] : named ? j["model"].get<std::string>() : files[i]);
  }
  return out;
}

}  // namespace rewardgen
