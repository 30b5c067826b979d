#include "eval/report.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include "core/device.h"
#include "core/error.h"
#include "core/format.h"
#include "core/log.h"
#include "core/progress.h"
#include "eval/canvas.h"
#include "eval/eval_report.h"
#include "eval/metrics_plot.h"
#include "eval/world_eval.h"
#include "io/atomic_file.h"
#include "io/image.h"
#include "io/json_config.h"
#include "io/output_paths.h"
#include "io/run_dir.h"
#include "core/paths.h"
#include "rewards/reward.h"
#include "rewards/world_rewards.h"
#include "sampling/pipeline.h"
#include "world/checker.h"

namespace rewardgen {

namespace fs = std::filesystem;

namespace {

// One row of the report: a training run, an evaluation folder, or a teacher reference.
struct Entry {
  std::string name, id;     // the label; a file-safe name for its files in the report
  std::string run_dir;      // "" for a bare evaluation folder or a reference
  Json eval;                // eval.json, null when the run has none yet
  std::string eval_file;
  std::string model;        // the pipeline its grid row samples ("" : no row)
  std::optional<SamplerOptions> sampler;  // how (absent: the model's own recipe)
  bool reference = false;
};

std::string file_safe(const std::string& text) {
  std::string out;
  for (char c : text) out += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '_';
  return out.empty() ? "_" : out;
}

bool same_path(const std::string& a, const std::string& b) {
  std::error_code ea, eb;
  const fs::path pa = fs::weakly_canonical(a, ea), pb = fs::weakly_canonical(b, eb);
  return !ea && !eb && pa == pb;
}

// `inside` is `folder` or lies under it.
bool is_within(const std::string& inside, const std::string& folder) {
  std::error_code ea, eb;
  const fs::path child = fs::weakly_canonical(inside, ea), parent = fs::weakly_canonical(folder, eb);
  if (ea || eb) return false;
  auto c = child.begin(), p = parent.begin();
  for (; p != parent.end(); ++p, ++c)
    if (c == child.end() || *c != *p) return false;
  return true;
}

Entry read_input(const std::string& input, const std::string& label) {
  if (!fs::is_directory(input)) throw Error(str("report: '", input, "' is not a folder (give run folders or eval folders)"));
  Entry e;
  fs::path dir = fs::path(input).lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();  // "runs/r0/" names the folder r0
  const std::string folder = dir.filename().string();
  if (fs::exists(dir / "metrics.jsonl") || fs::exists(dir / "config.json")) {
    e.run_dir = dir.string();
    e.name = folder;
    if (fs::exists(dir / "eval" / "eval.json")) e.eval_file = (dir / "eval" / "eval.json").string();
    if (fs::exists(dir / "generator" / "model_index.json")) e.model = (dir / "generator").string();
  } else if (fs::exists(dir / "eval.json")) {
    e.eval_file = (dir / "eval.json").string();
    // An eval folder named "eval" is a run's: name it after the run.
    e.name = folder == "eval" ? fs::absolute(dir).parent_path().filename().string() : folder;
  } else {
    throw Error(str("report: '", input, "' holds neither a run (metrics.jsonl, config.json) nor an evaluation (eval.json)"));
  }
  if (!e.eval_file.empty()) {
    e.eval = load_json_file(e.eval_file);
    if (!e.eval.is_object()) throw Error(str(e.eval_file, ": not a JSON object"));
    if (e.eval.contains("sampler")) e.sampler = sampler_from_eval_json(e.eval["sampler"], e.eval_file);
    // A bare evaluation is sampled again from the model it names, when that folder is here.
    if (e.model.empty() && e.eval.contains("model") && e.eval["model"].is_string()) {
      const std::string model = e.eval["model"].get<std::string>();
      if (fs::exists(fs::path(model) / "model_index.json")) e.model = model;
    }
  }
  if (!label.empty()) e.name = label;
  return e;
}

void validate_options(const ReportOptions& o) {
  if (o.inputs.empty()) throw Error("report: give at least one run or eval folder");
  if (!o.names.empty() && o.names.size() != o.inputs.size())
    throw Error(str("report: ", o.names.size(), " --name for ", o.inputs.size(), " inputs"));
  if (o.out.empty()) throw Error("report: --out is required");
  if (o.reference_steps.empty()) throw Error("report: at least one reference step count is needed");
  for (int64_t steps : o.reference_steps)
    if (steps < 1 || steps > 1000) throw Error(str("report: a reference step count must be in 1..1000, got ", steps));
  if (!std::isfinite(o.reference_guidance) || o.reference_guidance < 0 || o.reference_guidance > 1000)
    throw Error(str("report: the reference guidance must be finite and in [0, 1000], got ", o.reference_guidance));
  if (o.reference_limit < 0) throw Error(str("report: the reference prompt limit must be >= 0, got ", o.reference_limit));
  if (o.grid_prompts_per_task < 1 || o.grid_prompts_per_task > 8)
    throw Error(str("report: grid prompts per task must be in 1..8, got ", o.grid_prompts_per_task));
  if (o.grid_seeds < 1 || o.grid_seeds > 8) throw Error(str("report: grid seeds must be in 1..8, got ", o.grid_seeds));
  for (const std::string& input : o.inputs)
    if (is_within(input, o.out) || is_within(o.out, input))
      throw Error(str("report: the output folder '", o.out, "' and the input '", input,
                      "' overlap; write the report into a folder of its own"));
}

std::string reference_name(int64_t steps, double guidance) {
  return str("teacher, DDIM ", steps, ", CFG ", fixed_digits(guidance, guidance == std::round(guidance) ? 0 : 1));
}

SamplerOptions reference_sampler(int64_t steps, double guidance) {
  SamplerOptions s;
  s.sampler = "ddim";
  s.steps = steps;
  s.guidance_scale = guidance;
  return s;
}

// An evaluation is the reference when it is the teacher at that sampler on the same prompts.
bool is_reference_eval(const Json& eval, const std::string& teacher, int64_t steps, double guidance, int64_t images) {
  if (!eval.is_object() || !eval.contains("sampler") || !eval["sampler"].is_object()) return false;
  const Json& s = eval["sampler"];
  return eval.value("model", std::string()) != "" && same_path(eval.value("model", std::string()), teacher) &&
         s.value("name", std::string()) == "ddim" && s.value("steps", int64_t{0}) == steps &&
         std::abs(s.value("guidance_scale", -1.0) - guidance) < 1e-9 && eval.value("prompts", std::string()) == "world:eval" &&
         eval.value("images", int64_t{0}) == images && eval.value("precision", std::string("fp32")) == "fp32";
}

std::set<std::string> eval_reward_names(const Json& eval) {
  std::set<std::string> names;
  if (eval.is_object() && eval.contains("rewards") && eval["rewards"].is_object())
    for (const auto& item : eval["rewards"].items()) names.insert(item.key());
  return names;
}

// The models one report samples, loaded once each.
class ModelCache {
 public:
  ModelCache(at::Device device, const Logger& log) : device_(device), log_(log) {}
  const TextToImage& get(const std::string& dir) {
    auto found = models_.find(dir);
    if (found == models_.end()) {
      const Pipeline pipeline = load_pipeline(dir, LoadOptions{at::kFloat, device_}, log_);
      found = models_.emplace(dir, std::make_unique<TextToImage>(pipeline, ClipTokenizer::from_directory(pipeline.tokenizer_dir))).first;
    }
    return *found->second;
  }

 private:
  at::Device device_;
  const Logger& log_;
  std::map<std::string, std::unique_ptr<TextToImage>> models_;
};

// The teacher at DDIM `steps` + CFG: an input that is it (whatever rewards it scored), the report's
// earlier evaluation (when it scored every reward of the inputs), or a new one.
Entry reference_entry(const ReportOptions& o, const std::string& teacher, int64_t steps, std::vector<Entry>& inputs,
                      const std::vector<world::EvalPrompt>& lines, const std::set<std::string>& reward_names,
                      ModelCache& models, ReportResult& result, const Logger& log) {
  const int64_t images = static_cast<int64_t>(lines.size());
  const auto has_rewards = [&](const Json& eval) {
    const std::set<std::string> have = eval_reward_names(eval);
    return std::includes(have.begin(), have.end(), reward_names.begin(), reward_names.end());
  };
  Entry e;
  e.reference = true;
  e.name = reference_name(steps, o.reference_guidance);
  e.model = teacher;
  e.sampler = reference_sampler(steps, o.reference_guidance);
  for (auto it = inputs.begin(); it != inputs.end(); ++it)
    if (it->run_dir.empty() && is_reference_eval(it->eval, teacher, steps, o.reference_guidance, images)) {
      e.eval = it->eval;
      e.eval_file = it->eval_file;
      e.id = it->id;
      inputs.erase(it);  // shown once, as the reference
      return e;
    }
  e.id = file_safe(str("teacher_ddim", steps, "_cfg", fixed_digits(o.reference_guidance, 1)));
  const std::string dir = o.out + "/reference/" + e.id;
  e.eval_file = dir + "/eval.json";
  if (fs::exists(e.eval_file)) {
    const Json cached = load_json_file(e.eval_file);
    if (is_reference_eval(cached, teacher, steps, o.reference_guidance, images) && has_rewards(cached)) {
      e.eval = cached;
      return e;
    }
  }
  log.info(str("report: evaluating the reference, ", e.name, ", on ", images, " prompts"));
  const RewardRegistry registry = builtin_reward_registry();
  RewardContext reward_context;
  reward_context.device = parse_device(o.device);
  WorldEvalOptions options;
  options.sampler = *e.sampler;
  options.relation_control = true;  // as the training job evaluates its generators
  for (const std::string& name : reward_names) options.rewards.push_back(registry.make(name, reward_context));
  const std::shared_ptr<ClipVisionModel> encoder = load_eval_image_encoder(teacher, LoadOptions{at::kFloat, parse_device(o.device)}, log);
  ProgressBar bar(str("reference ddim", steps), world_eval_sampled_images(lines, options));
  const WorldEvalResult evaluation = evaluate_world(models.get(teacher), lines, options, encoder.get(), &bar);
  bar.finish();
  fs::create_directories(dir);
  e.eval = write_eval_report(dir, evaluation, lines, {teacher, "world:eval", options.sampler, 0, false, Json{{"precision", "fp32"}}});
  ++result.references_evaluated;
  return e;
}

// ---- the table ----

struct Column {
  std::string title, hint;  // hint: ↑ or ↓ (best marked), "" (not compared)
  std::function<std::optional<double>(const Entry&)> value;
  int digits;
  std::string unit;  // shown in the header ("" for accuracy: the note says %)
};

std::optional<double> number_at(const Json& j, std::initializer_list<const char*> path) {
  const Json* at = &j;
  for (const char* key : path) {
    if (!at->is_object() || !at->contains(key)) return std::nullopt;
    at = &(*at)[key];
  }
  if (!at->is_number()) return std::nullopt;
  const double v = at->get<double>();
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

// A share at `path` as a percentage.
std::optional<double> percent_at(const Json& j, std::initializer_list<const char*> path) {
  const std::optional<double> v = number_at(j, path);
  return v ? std::optional<double>(100 * *v) : std::nullopt;
}

std::vector<Column> table_columns(const std::set<std::string>& reward_names) {
  std::vector<Column> columns;
  for (const std::string task : {"single_object", "two_object", "counting", "colors", "position", "color_attr", "overall"})
    columns.push_back({task, "↑",
                       [task](const Entry& e) { return percent_at(e.eval, {"accuracy", task.c_str()}); }, 1, ""});
  // The position task's control (eval.json's position_reversed): no better or worse, read beside position.
  columns.push_back({"position reversed", "",
                     [](const Entry& e) { return percent_at(e.eval, {"position_reversed"}); }, 1, ""});
  // The control with the noise fixed (eval.json's relation_control.followed): the share of position
  // lines whose drawing turned with the relation word.
  columns.push_back({"relation followed", "↑",
                     [](const Entry& e) { return percent_at(e.eval, {"relation_control", "followed"}); }, 1, ""});
  for (const std::string& reward : reward_names)
    columns.push_back({reward.substr(0, reward.find(':')), "↑",
                       [reward](const Entry& e) { return number_at(e.eval, {"rewards", reward.c_str(), "mean"}); }, 3, ""});
  columns.push_back({"FD", "↓", [](const Entry& e) { return number_at(e.eval, {"frechet_distance"}); }, 3, ""});
  columns.push_back({"diversity", "↑", [](const Entry& e) { return number_at(e.eval, {"diversity"}); }, 3, ""});
  columns.push_back({"NFE", "↓", [](const Entry& e) { return number_at(e.eval, {"nfe_per_image"}); }, 0, ""});
  columns.push_back({"images/s", "↑", [](const Entry& e) { return number_at(e.eval, {"images_per_second"}); }, 1, ""});
  columns.push_back({"training", "",
                     [](const Entry& e) {
                       const std::optional<double> s = number_at(e.eval, {"training", "wall_time_s"});
                       return s ? std::optional<double>(*s / 60) : std::nullopt;
                     },
                     1, "min"});
  columns.push_back({"steps", "", [](const Entry& e) { return number_at(e.eval, {"training", "steps"}); }, 0, ""});
  columns.push_back({"prompts", "", [](const Entry& e) { return number_at(e.eval, {"images"}); }, 0, ""});
  return columns;
}

std::string sampler_text(const Entry& e) {
  if (!e.sampler) return "–";
  const SamplerOptions& s = *e.sampler;
  return str(s.sampler, " ", s.steps, s.steps == 1 ? " step" : " steps", s.guidance_scale != 1 ? str(", w ", s.guidance_scale) : "");
}

std::string metrics_table(const std::vector<Entry>& entries, const std::vector<Column>& columns,
                          const std::map<std::string, std::string>& config_links) {
  // The best value per compared column, among the rows that have one.
  std::vector<std::optional<double>> best(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) {
    if (columns[c].hint.empty()) continue;
    for (const Entry& e : entries)
      if (const std::optional<double> v = columns[c].value(e)) {
        const double rounded = std::stod(fixed_digits(*v, columns[c].digits));  // equal as shown: both marked
        if (!best[c] || (columns[c].hint == "↑" ? rounded > *best[c] : rounded < *best[c])) best[c] = rounded;
      }
  }
  std::ostringstream html;
  html << "<table class=\"metrics\">\n<tr><th>model</th><th>sampler</th>";
  for (const Column& c : columns) {
    // Headers may wrap: single_object -> "single object"; a reward's name (world.clip_contrast) keeps
    // its spelling and may break after its dots and underscores (<wbr>).
    std::string title = c.title;
    if (title.find('.') == std::string::npos) std::replace(title.begin(), title.end(), '_', ' ');
    std::string shown;
    for (char ch : escape_markup(title)) shown += ch == '.' || ch == '_' ? std::string(1, ch) + "<wbr>" : std::string(1, ch);
    html << "<th>" << shown << (c.hint.empty() ? "" : " " + c.hint) << (c.unit.empty() ? "" : " (" + c.unit + ")") << "</th>";
  }
  html << "</tr>\n";
  for (const Entry& e : entries) {
    html << "<tr" << (e.reference ? " class=\"reference\"" : "") << "><td class=\"name\">";
    const auto link = config_links.find(e.id);
    if (link != config_links.end()) html << "<a href=\"" << escape_markup(link->second) << "\">" << escape_markup(e.name) << "</a>";
    else html << escape_markup(e.name);
    html << "</td><td>" << escape_markup(sampler_text(e)) << "</td>";
    for (size_t c = 0; c < columns.size(); ++c) {
      const std::optional<double> v = columns[c].value(e);
      if (!v) {
        html << "<td>–</td>";
        continue;
      }
      const std::string shown = fixed_digits(*v, columns[c].digits);
      const bool is_best = best[c] && std::stod(shown) == *best[c];
      html << "<td" << (is_best ? " class=\"best\"" : "") << ">" << shown << "</td>";
    }
    html << "</tr>\n";
  }
  html << "</table>\n";
  return html.str();
}

// ---- the plots ----

struct RunSeries {
  std::string label;
  std::vector<Json> rows;
};

// The run's rows' keys, each cut at ':' (a reward's argument), mapped to the full key.
std::map<std::string, std::string> base_keys(const std::vector<Json>& rows) {
  std::map<std::string, std::string> keys;
  for (const Json& row : rows)
    if (row.is_object())
      for (const auto& item : row.items()) keys.emplace(item.key().substr(0, item.key().find(':')), item.key());
  return keys;
}

std::optional<PlotSeries> series_of(const RunSeries& run, const std::string& base, const std::string& x_key, bool smooth) {
  const std::map<std::string, std::string> keys = base_keys(run.rows);
  const auto found = keys.find(base);
  if (found == keys.end()) return std::nullopt;
  PlotSeries s{run.label, {}, {}};
  for (const Json& row : run.rows) {
    if (!row.is_object() || !row.contains(found->second) || !row.contains(x_key)) continue;
    const Json &x = row[x_key], &y = row[found->second];
    if (!x.is_number() || !y.is_number() || !std::isfinite(x.get<double>()) || !std::isfinite(y.get<double>())) continue;
    s.x.push_back(x_key == "wall_time" ? x.get<double>() / 60 : x.get<double>());
    s.y.push_back(y.get<double>());
  }
  if (s.x.empty()) return std::nullopt;
  // Per-step rewards are noisy: a trailing mean over about 1/40 of the run shows the trend.
  if (smooth) s.y = moving_average(s.y, std::clamp(static_cast<int>(s.y.size() / 40), 1, 50));
  return s;
}

struct Plot {
  std::string file, caption;
};

std::vector<Plot> write_plots(const std::vector<RunSeries>& runs, const std::string& out) {
  std::set<std::string> rewards;
  bool accuracy = false;
  for (const RunSeries& run : runs)
    for (const auto& [base, full] : base_keys(run.rows)) {
      if (base.rfind("reward/", 0) == 0) rewards.insert(base);
      if (base == "accuracy/overall") accuracy = true;
    }
  // A run that logs no per-reward key still has its total.
  if (rewards.empty())
    for (const RunSeries& run : runs)
      if (base_keys(run.rows).count("reward")) rewards.insert("reward");
  std::vector<std::tuple<std::string, std::string, bool>> wanted;  // metric, x, smooth
  for (const std::string& r : rewards) {
    wanted.emplace_back(r, "wall_time", true);
    wanted.emplace_back(r, "step", true);
  }
  if (accuracy) wanted.emplace_back("accuracy/overall", "wall_time", false);
  std::vector<Plot> plots;
  for (const auto& [metric, x_key, smooth] : wanted) {
    std::vector<PlotSeries> series;
    for (const RunSeries& run : runs)
      if (std::optional<PlotSeries> s = series_of(run, metric, x_key, smooth)) series.push_back(std::move(*s));
    if (series.empty()) continue;
    PlotOptions options;
    const std::string x_text = x_key == "wall_time" ? "training wall-clock (min)" : "training step";
    const std::string what = metric == "accuracy/overall" ? "checker accuracy, periodic evaluation" : metric;
    options.title = str(what, " against ", x_key == "wall_time" ? "wall-clock" : "step");
    options.x_label = x_text;
    options.y_label = metric == "accuracy/overall" ? "accuracy (fraction of prompts)" : metric + (smooth ? " (trailing mean)" : "");
    const std::string file = str("plots/", file_safe(metric), "_", x_key == "wall_time" ? "wall" : "step", ".png");
    write_file_atomic(out + "/" + file, line_plot_png(series, options));
    plots.push_back({file, options.title});
  }
  return plots;
}

// ---- the grids ----

struct GridPrompt {
  world::Task task;
  std::string text;
};

std::vector<GridPrompt> grid_prompts(const std::vector<world::EvalPrompt>& lines, int64_t per_task) {
  std::vector<GridPrompt> prompts;
  for (world::Task task : world::kTasks) {
    int64_t taken = 0;
    for (const world::EvalPrompt& line : lines)
      if (line.task == task && taken < per_task) {
        prompts.push_back({task, line.text});
        ++taken;
      }
  }
  return prompts;
}

Json sampler_json(const std::optional<SamplerOptions>& s) { return s ? sampler_to_eval_json(*s) : Json("recipe"); }

// One model's row of every grid: grid_seeds images per prompt, each checked. Kept from an earlier
// report when the model, sampler, prompts and seeds are the same.
Json grid_row(const Entry& e, const std::vector<GridPrompt>& prompts, int64_t seeds, const std::string& out, ModelCache& models,
              ReportResult& result) {
  const std::string dir = out + "/grids/" + e.id;
  std::vector<std::string> texts;
  for (const GridPrompt& p : prompts) texts.push_back(p.text);
  const Json key = {{"model", fs::absolute(e.model).lexically_normal().string()}, {"sampler", sampler_json(e.sampler)},
                    {"prompts", texts}, {"seeds", seeds}};
  if (fs::exists(dir + "/verdicts.json")) {
    const Json cached = load_json_file(dir + "/verdicts.json");
    bool complete = cached.is_object() && cached.value("key", Json()) == key && cached.contains("images");
    if (complete)
      for (const Json& image : cached["images"]) complete = complete && fs::exists(out + "/" + image.value("file", std::string("?")));
    if (complete) return cached;
  }
  const TextToImage& model = models.get(e.model);
  const SamplerOptions sampler = e.sampler ? *e.sampler : sampler_options(model.pipeline().scheduler.recipe);
  fs::create_directories(dir);
  Json row = {{"key", key}, {"images", Json::array()}};
  for (int64_t seed = 0; seed < seeds; ++seed) {
    // Seed s draws the same noise for prompt i in every model (same batch, same latent shape).
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(1000 + seed));
    const at::Tensor images = model.generate(texts, sampler, generator).to(at::kCPU, at::kFloat).clamp(-1, 1);
    for (size_t i = 0; i < prompts.size(); ++i) {
      const at::Tensor image = images[static_cast<int64_t>(i)];
      const world::CheckResult verdict = world::check(image, world::parse_prompt(texts[i]));
      int64_t passed = 0;
      for (const world::ClauseResult& clause : verdict.clauses) passed += clause.passed;
      const std::string file = str("grids/", e.id, "/p", i, "_s", seed, ".png");
      save_png(out + "/" + file, image);
      row["images"].push_back({{"prompt", i}, {"seed", seed}, {"file", file}, {"passed", verdict.passed},
                               {"clauses_passed", passed}, {"clauses", verdict.clauses.size()}});
    }
  }
  save_json_file(dir + "/verdicts.json", row);
  ++result.grid_rows_sampled;
  return row;
}

std::string grids_html(const std::vector<Entry>& rows, const std::vector<Json>& verdicts, const std::vector<GridPrompt>& prompts,
                       int64_t seeds) {
  std::ostringstream html;
  for (world::Task task : world::kTasks) {
    std::vector<size_t> in_task;
    for (size_t i = 0; i < prompts.size(); ++i)
      if (prompts[i].task == task) in_task.push_back(i);
    if (in_task.empty()) continue;
    html << "<h3>" << escape_markup(world::name(task)) << "</h3>\n<table class=\"grid\">\n<tr><th></th>";
    for (size_t i : in_task) html << "<th colspan=\"" << seeds << "\">“" << escape_markup(prompts[i].text) << "”</th>";
    html << "</tr>\n";
    for (size_t r = 0; r < rows.size(); ++r) {
      html << "<tr><td class=\"name\">" << escape_markup(rows[r].name) << "</td>";
      for (size_t i : in_task)
        for (int64_t s = 0; s < seeds; ++s) {
          const Json* image = nullptr;
          for (const Json& candidate : verdicts[r]["images"])
            if (candidate["prompt"] == i && candidate["seed"] == s) image = &candidate;
          if (image == nullptr) {
            html << "<td></td>";
            continue;
          }
          const bool passed = (*image)["passed"].get<bool>();
          html << "<td><img src=\"" << escape_markup((*image)["file"].get<std::string>()) << "\" width=\"96\" height=\"96\" alt=\"\">"
               << "<div class=\"" << (passed ? "pass" : "fail") << "\">" << (passed ? "✓ pass" : "✗ fail") << " "
               << (*image)["clauses_passed"].get<int64_t>() << "/" << (*image)["clauses"].get<int64_t>() << "</div></td>";
        }
      html << "</tr>\n";
    }
    html << "</table>\n";
  }
  return html.str();
}

const char* kStyle = R"(body { font-family: "DejaVu Sans", sans-serif; margin: 24px; color: #1a1a1a; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ccc; } h3 { font-size: 15px; }
table { border-collapse: collapse; font-size: 13px; }
table.metrics td, table.metrics th { border: 1px solid #ccc; padding: 3px 4px; text-align: right; white-space: nowrap; }
table.metrics th { white-space: normal; font-size: 12px; max-width: 90px; vertical-align: bottom; }
table.metrics td.name, table.metrics td:nth-child(2) { text-align: left; }
tr.reference { background: #f3f3f3; }
td.best { font-weight: bold; background: #d8f0dc; }
table.grid td { text-align: center; padding: 2px; vertical-align: top; }
table.grid th { font-weight: normal; font-size: 12px; padding: 2px 6px; }
table.grid td.name { text-align: right; padding-right: 8px; vertical-align: middle; white-space: nowrap; }
table.grid img { image-rendering: pixelated; display: block; }
div.pass { color: #1b7f37; font-size: 11px; } div.fail { color: #b3261e; font-size: 11px; }
img.plot { margin: 4px; border: 1px solid #ddd; }
p.note { font-size: 13px; color: #444; max-width: 1000px; }
)";

}  // namespace

ReportResult write_report(const ReportOptions& o, const Logger& log) {
  validate_options(o);
  const std::string teacher = o.teacher.empty() ? world_model_dir() : o.teacher;
  if (!fs::exists(fs::path(teacher) / "model_index.json"))
    throw Error(str("report: the teacher '", teacher, "' is not a pipeline folder (no model_index.json)"));
  const at::Device device = parse_device(o.device);
  // Every input read before anything is written.
  std::vector<Entry> inputs;
  std::set<std::string> ids;
  for (size_t i = 0; i < o.inputs.size(); ++i) {
    Entry e = read_input(o.inputs[i], o.names.empty() ? "" : o.names[i]);
    e.id = file_safe(e.name);
    while (!ids.insert(e.id).second) e.id += "_";
    inputs.push_back(std::move(e));
  }
  const std::vector<world::EvalPrompt> lines =
      world::balanced_subset(world::read_prompts_file(shipped_file("world/eval_prompts.jsonl")), o.reference_limit);
  std::set<std::string> reward_names;
  for (const Entry& e : inputs)
    for (const std::string& name : eval_reward_names(e.eval)) reward_names.insert(name);

  std::vector<std::string> read_from = o.inputs;
  read_from.push_back(o.teacher);
  refuse_output_over_inputs(o.out, read_from);
  prepare_output_folder(o.out);
  ReportResult result;
  ModelCache models(device, log);
  std::vector<Entry> entries;
  for (int64_t steps : o.reference_steps)
    entries.push_back(reference_entry(o, teacher, steps, inputs, lines, reward_names, models, result, log));
  for (Entry& e : inputs) entries.push_back(std::move(e));

  // Each run's resolved config (a reference's: the eval.json that records its recipe), copied beside
  // the page so that the link survives moving the folder.
  std::map<std::string, std::string> config_links;
  for (const Entry& e : entries) {
    std::string source, file;
    if (!e.run_dir.empty() && fs::exists(e.run_dir + "/config.json")) {
      source = e.run_dir + "/config.json";
      file = "configs/" + e.id + ".json";
    } else if (e.reference && !e.eval_file.empty()) {
      source = e.eval_file;
      file = "configs/" + e.id + ".eval.json";
    } else {
      continue;
    }
    fs::create_directories(o.out + "/configs");
    write_file_atomic(o.out + "/" + file, read_text_file(source));
    config_links[e.id] = file;
  }

  std::vector<RunSeries> runs;
  for (const Entry& e : entries)
    if (!e.run_dir.empty() && fs::exists(e.run_dir + "/metrics.jsonl")) runs.push_back({e.name, read_metrics(e.run_dir + "/metrics.jsonl")});
  fs::create_directories(o.out + "/plots");
  const std::vector<Plot> plots = write_plots(runs, o.out);
  for (const Plot& p : plots) result.plots.push_back(o.out + "/" + p.file);

  // Grid rows: the first reference (the teacher), then every entry with a model to sample.
  const std::vector<GridPrompt> prompts = grid_prompts(lines, o.grid_prompts_per_task);
  std::vector<Entry> grid_entries;
  for (const Entry& e : entries)
    if (!e.model.empty() && (!e.reference || grid_entries.empty())) grid_entries.push_back(e);
  std::vector<Json> verdicts;
  {
    ProgressBar bar("grids", static_cast<int64_t>(grid_entries.size()));
    for (const Entry& e : grid_entries) {
      verdicts.push_back(grid_row(e, prompts, o.grid_seeds, o.out, models, result));
      bar.update(static_cast<int64_t>(verdicts.size()));
    }
    bar.finish();
  }
  for (const Entry& e : entries)
    if (e.model.empty() && !e.reference) log.warn(str("report: no model folder for '", e.name, "': it has no row in the grids"));

  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>rewardgen report</title>\n<style>" << kStyle
       << "</style></head><body>\n<h1>rewardgen report</h1>\n"
       << "<p class=\"note\">" << entries.size() - o.reference_steps.size() << " model(s) beside the teacher ("
       << escape_markup(teacher) << ") at DDIM";
  for (size_t i = 0; i < o.reference_steps.size(); ++i) html << (i ? " and " : " ") << o.reference_steps[i];
  html << " steps with classifier-free guidance " << fixed_digits(o.reference_guidance, 1) << ".</p>\n"
       << "<h2 id=\"metrics\">Metrics</h2>\n<p class=\"note\">Accuracy: the world checker's verdict on the held-out prompts, per task and "
          "overall (%). FD: Fréchet distance to rendered scenes in the world CLIP's image space; diversity: mean distance "
          "between one prompt's images over seeds; NFE: network calls an image; images/s: sampling speed on the machine "
          "that evaluated (compare rows evaluated on the same one). ↑/↓: the better direction, the best value in bold on "
          "green. A model's name links to its run's config (the teacher's: its eval.json).</p>\n"
       << metrics_table(entries, table_columns(reward_names), config_links) << "<h2 id=\"curves\">Training curves</h2>\n";
  if (plots.empty()) html << "<p class=\"note\">No training run among the inputs logged metrics.</p>\n";
  for (const Plot& p : plots)
    html << "<img class=\"plot\" src=\"" << escape_markup(p.file) << "\" width=\"760\" height=\"440\" alt=\"" << escape_markup(p.caption)
         << "\">\n";
  html << "<h2 id=\"grids\">Same prompts, same seeds</h2>\n<p class=\"note\">" << o.grid_prompts_per_task << " held-out prompt(s) per task × "
       << o.grid_seeds << " seeds; the same noise for every model. Under each image the checker's verdict and the clauses "
       << "that passed.</p>\n"
       << grids_html(grid_entries, verdicts, prompts, o.grid_seeds) << "</body></html>\n";
  result.index_html = o.out + "/index.html";
  write_file_atomic(result.index_html, html.str());
  return result;
}

}  // namespace rewardgen
