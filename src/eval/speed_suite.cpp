#include "eval/speed_suite.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "core/allocator.h"
#include "core/error.h"

namespace rewardgen {
namespace {

// A shell word in single quotes (paths with spaces or quotes stay one argument).
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs `command` through the shell; returns its stdout and exit status.
std::pair<std::string, int> run_command(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((command + " 2>&1").c_str(), "r"), pclose);
  if (!pipe) throw Error(str("cannot run '", command, "'"));
  std::string output;
  std::array<char, 4096> buffer{};
  while (fgets(buffer.data(), static_cast<int>(buffer.size()), pipe.get()) != nullptr) output += buffer.data();
  const int status = pclose(pipe.release());
  return {output, status};
}

}  // namespace

std::vector<SpeedRow> speed_rows(const std::string& dir) {
  return {
      {"world", "world teacher", dir + "/unet_world_teacher.json", 32, 16, 16, true},
      {"fifth", "SD1.5 fifth width", dir + "/unet_sd15_fifth_width.json", 2, 32, 77, true},
      {"sd15", "SD1.5", dir + "/unet_sd15.json", 1, 64, 77, false},
  };
}

void RoundTimes::add(double mean_s, double best_s) {
  if (mean_s <= 0 || best_s <= 0) return;
  best_ = rounds_ == 0 ? best_s : std::min(best_, best_s);
  sum_of_means_ += mean_s;
  ++rounds_;
}

DiffusersTimes time_diffusers(const std::string& script, const SpeedRow& row, int threads, int iters, int warmup) {
  if (!std::filesystem::exists(script)) throw Error(str("diffusers timing script '", script, "' does not exist"));
  // diffusers runs under our malloc settings (core/allocator.h): on a machine with costly page faults
  // its multi-MiB attention temporaries would otherwise measure the kernel's mmap, not diffusers.
  const std::string command = str("GLIBC_TUNABLES=", quoted(allocator_tunables()), " /usr/bin/python3 ", quoted(script), " ", quoted(row.config_file), " --batch ", row.batch,
                                  " --latent ", row.latent_size, " --seq-len ", row.text_tokens, " --threads ", threads,
                                  " --iters ", iters, " --warmup ", warmup, " --no-flops");
  const auto [output, status] = run_command(command);
  // The script prints one JSON line last; anything before it is warnings.
  const size_t start = output.rfind("\n{");
  const std::string line = output.substr(start == std::string::npos ? 0 : start + 1);
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (status != 0 || j.is_discarded() || !j.contains("forward_ms"))
    throw Error(str("the diffusers timing failed (", command, "):\n", output));
  DiffusersTimes t;
  t.forward_s = j["forward_ms"].get<double>() / 1e3;
  t.forward_best_s = j.value("forward_ms_min", 0.0) / 1e3;
  if (row.train) {
    t.train_step_s = j["train_step_ms"].get<double>() / 1e3;
    t.train_step_best_s = j.value("train_step_ms_min", 0.0) / 1e3;
  }
  return t;
}

}  // namespace rewardgen
