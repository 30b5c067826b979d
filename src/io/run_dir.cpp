#include "io/run_dir.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/json_config.h"

namespace rewardgen {

namespace fs = std::filesystem;

namespace {

// A checkpoint file (checkpoints/step_<8 digits>.safetensors) in `dir`.
bool holds_a_checkpoint(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step_", 0) == 0 && entry.path().extension() == ".safetensors") return true;
  }
  return false;
}

}  // namespace

bool RunDir::holds_checkpoint(const std::string& root) { return holds_a_checkpoint(RunDir(root).checkpoints_dir()); }

RunDir RunDir::create(const std::string& root, bool resume) {
  if (root.empty()) throw Error("the run directory path is empty");
  RunDir dir(root);
  const bool has_config = fs::exists(dir.config_path());
  // A run that never reached its first checkpoint (it failed at start: a bad model path, a
  // rejected flag) has nothing to lose: a new start replaces it instead of asking for --resume.
  if (has_config && !resume && holds_a_checkpoint(dir.checkpoints_dir()))
    throw Error(str("'", root, "' already holds a run (config.json and checkpoints/); pass --resume to continue it, "
                    "or choose another output directory"));
  if (resume && !has_config) throw Error(str("cannot resume '", root, "': it holds no config.json"));
  std::error_code ec;
  for (const std::string& d : {root, dir.checkpoints_dir(), dir.samples_dir()}) {
    fs::create_directories(d, ec);
    if (ec) throw Error(str("cannot create directory '", d, "': ", ec.message()));
  }
  return dir;
}

RunDir RunDir::existing(const std::string& root) {
  RunDir dir(root);
  if (!fs::exists(dir.config_path())) throw Error(str("'", root, "' holds no run (no config.json)"));
  return dir;
}

void RunDir::write_config(const nlohmann::json& resolved) const { save_json_file(config_path(), resolved); }

std::vector<nlohmann::json> read_metrics(const std::string& path) {
  std::vector<nlohmann::json> rows;
  if (!fs::exists(path)) return rows;
  require_regular_file(path);
  std::ifstream in(path);
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    try {
      rows.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      throw Error(str(path, ":", number, ": not a JSON object: ", e.what()));
    }
  }
  return rows;
}

MetricsWriter::MetricsWriter(const std::string& path, bool resume, int64_t resumed_step) : path_(path) {
  if (resume && fs::exists(path)) {
    // A last line without its '\n' is a write that a crash cut short. Metrics are written before
    // the step's checkpoint, so it belongs to a step after the newest checkpoint: it goes, and the
    // resumed run writes that step again.
    const std::string text = read_text_file(path);
    if (!text.empty() && text.back() != '\n') {
      const size_t end = text.rfind('\n');
      write_file_atomic(path, end == std::string::npos ? std::string() : text.substr(0, end + 1));
    }
    // Keep the original lines (and their key order); read_metrics validated every one of them.
    const auto rows = read_metrics(path);
    std::ifstream in(path);
    std::string line, kept;
    for (size_t i = 0; std::getline(in, line);) {
      if (line.empty()) continue;
      if (rows[i++].value("step", int64_t{-1}) <= resumed_step) kept += line + "\n";
    }
    write_file_atomic(path, kept);
  }
  out_.open(path, resume ? std::ios::app : std::ios::trunc);
  if (!out_) throw Error(str("cannot open '", path, "' for writing"));
}

void MetricsWriter::write(int64_t step, double wall_time, const Values& values) {
  nlohmann::ordered_json row;  // keeps step and wall_time first for people reading the file
  row["step"] = step;
  row["wall_time"] = wall_time;
  for (const auto& [name, value] : values) row[name] = std::isfinite(value) ? nlohmann::ordered_json(value) : nullptr;
  out_ << row.dump() << '\n';
  out_.flush();
  if (!out_) throw Error(str("cannot write '", path_, "'"));
}

}  // namespace rewardgen
