#include "train/checkpoint.h"

#include <torch/nn/module.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "core/error.h"
#include "core/log.h"
#include "io/json_config.h"

namespace rewardgen {

namespace fs = std::filesystem;

void add_module_state(TensorMap& out, const std::string& prefix, const torch::nn::Module& module) {
  for (const auto& item : module.named_parameters(/*recurse=*/true)) out[prefix + item.key()] = item.value().detach();
  for (const auto& item : module.named_buffers(/*recurse=*/true)) out[prefix + item.key()] = item.value().detach();
}

void load_module_state(const TensorMap& in, const std::string& prefix, torch::nn::Module& module) {
  at::NoGradGuard no_grad;
  auto restore = [&](const std::string& name, at::Tensor& target) {
    const auto it = in.find(prefix + name);
    if (it == in.end()) throw Error(str("checkpoint: missing tensor '", prefix, name, "'"));
    if (it->second.sizes() != target.sizes())
      throw Error(str("checkpoint: tensor '", prefix, name, "' has shape ", it->second.sizes(), ", the model expects ",
                      target.sizes()));
    target.copy_(it->second);
  };
  for (auto& item : module.named_parameters(true)) restore(item.key(), item.value());
  for (auto& item : module.named_buffers(true)) restore(item.key(), item.value());
}

at::Tensor string_list_tensor(const std::vector<std::string>& strings) {
  const std::string text = Json(strings).dump();
  return at::tensor(std::vector<uint8_t>(text.begin(), text.end()), at::kByte);
}

std::vector<std::string> string_list_from_tensor(const at::Tensor& bytes, const std::string& what) {
  const at::Tensor b = bytes.to(at::kByte).contiguous();
  const std::string text(reinterpret_cast<const char*>(b.data_ptr<uint8_t>()), static_cast<size_t>(b.numel()));
  const Json list = Json::parse(text, nullptr, false);
  std::vector<std::string> out;
  if (list.is_array())
    for (const Json& item : list) {
      if (!item.is_string()) break;
      out.push_back(item.get<std::string>());
    }
  if (!list.is_array() || out.size() != list.size()) throw Error(str("checkpoint: ", what, " is not a JSON list of strings"));
  return out;
}

CheckpointManager::CheckpointManager(std::string dir, int keep_last) : dir_(std::move(dir)), keep_last_(keep_last) {
  if (keep_last_ < 1) throw Error(str("keep_last must be >= 1, got ", keep_last_));
}

std::string CheckpointManager::save(int64_t step, const TensorMap& tensors, Metadata metadata) const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw Error(str("cannot create checkpoint folder '", dir_, "': ", ec.message()));
  char name[64];
  std::snprintf(name, sizeof name, "step_%08lld.safetensors", static_cast<long long>(step));
  const std::string path = dir_ + "/" + name;
  metadata["rewardgen.format"] = kCheckpointFormat;
  metadata["rewardgen.step"] = std::to_string(step);
  save_safetensors(path, tensors, metadata);
  const auto all = list();
  for (size_t i = 0; i + keep_last_ < all.size(); ++i) fs::remove(all[i].second, ec);
  return path;
}

std::vector<std::pair<int64_t, std::string>> CheckpointManager::list() const {
  std::vector<std::pair<int64_t, std::string>> found;
  if (!fs::is_directory(dir_)) return found;
  static const std::regex kName(R"(step_(\d+)\.safetensors)");
  for (const auto& entry : fs::directory_iterator(dir_)) {
    std::smatch m;
    const std::string file = entry.path().filename().string();
    if (entry.is_regular_file() && std::regex_match(file, m, kName))
      found.emplace_back(std::stoll(m[1].str()), entry.path().string());
  }
  std::sort(found.begin(), found.end());
  return found;
}

int CheckpointManager::remove_unfinished_saves() const {
  if (!fs::is_directory(dir_)) return 0;
  static const std::regex kTemporary(R"(step_\d+\.safetensors\.tmp\.\d+\.\d+)");
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_))
    if (std::regex_match(entry.path().filename().string(), kTemporary) && fs::remove(entry.path(), ec)) ++removed;
  return removed;
}

Checkpoint CheckpointManager::load(const std::string& path) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  Checkpoint c;
  c.path = path;
  c.metadata = file.metadata();
  const auto format = c.metadata.find("rewardgen.format");
  const auto step = c.metadata.find("rewardgen.step");
  if (format == c.metadata.end() || format->second != kCheckpointFormat || step == c.metadata.end())
    throw Error(str(path, ": not a rewardgen checkpoint (metadata lacks rewardgen.format = ", kCheckpointFormat,
                    " or rewardgen.step)"));
  try {
    c.step = std::stoll(step->second);
  } catch (const std::exception&) {
    throw Error(str(path, ": metadata rewardgen.step = '", step->second, "' is not an integer"));
  }
  c.tensors = file.load_all();
  return c;
}

std::optional<Checkpoint> CheckpointManager::load_latest(const Logger& log) const {
  const auto all = list();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      return load(it->second);
    } catch (const Error& e) {
      log.warn(str("skipping unreadable checkpoint: ", e.what()));
    }
  }
  return std::nullopt;
}

}  // namespace rewardgen
