#pragma once
// A run directory (docs/runs.md): config.json (resolved), metrics.jsonl (one JSON object per step),
// checkpoints/, samples/. Creating one refuses to overwrite an earlier run unless resuming it.
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace rewardgen {

class RunDir {
 public:
  // Creates `root` and its subfolders. A `root` that holds a run (config.json and a checkpoint) is
  // an Error unless `resume` is true; one whose run failed before its first checkpoint is started
  // afresh. Resuming a directory without config.json is an Error too.
  static RunDir create(const std::string& root, bool resume);
  // A run another process created (rank 0 of a data-parallel launch): nothing is created or
  // written; an Error if `root` holds no config.json.
  static RunDir existing(const std::string& root);
  // Whether `root`'s checkpoints/ holds a checkpoint file: what `--resume` continues from (a run
  // without one starts over).
  static bool holds_checkpoint(const std::string& root);

  const std::string& root() const { return root_; }
  std::string file(const std::string& name) const { return root_ + "/" + name; }
  std::string config_path() const { return file("config.json"); }
  std::string metrics_path() const { return file("metrics.jsonl"); }
  std::string checkpoints_dir() const { return file("checkpoints"); }
  std::string samples_dir() const { return file("samples"); }

  void write_config(const nlohmann::json& resolved) const;  // atomically

 private:
  explicit RunDir(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

// Appends one JSON object per line, flushed at once so that a crash loses at most one line.
class MetricsWriter {
 public:
  using Values = std::vector<std::pair<std::string, double>>;

  // A new run starts the file afresh. A resumed run keeps the rows with step <= resumed_step and
  // drops those written after the checkpoint it resumes from, so the file reads as one run.
  explicit MetricsWriter(const std::string& path, bool resume = false, int64_t resumed_step = 0);

  // {"step": step, "wall_time": seconds, <values...>}; non-finite values are written as null.
  void write(int64_t step, double wall_time, const Values& values);

 private:
  std::string path_;
  std::ofstream out_;
};

// Reads metrics.jsonl back (reports, tests); throws Error naming the file and line.
std::vector<nlohmann::json> read_metrics(const std::string& path);

}  // namespace rewardgen
