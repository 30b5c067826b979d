#pragma once
// Checkpoints: one safetensors file per save, checkpoints/step_<8 digits>.safetensors, written
// atomically (temp + fsync + rename); the oldest beyond keep_last are deleted after a save.
// Tensor names are prefixed by owner: "task/<module>/<param>", "optimizer/<param>.exp_avg",
// "rng/cpu", "extra/<name>"; metadata holds "rewardgen.step" and anything the caller adds.
#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace torch::nn {
class Module;
}

namespace rewardgen {

class Logger;

inline constexpr const char* kCheckpointFormat = "rewardgen-checkpoint-1";

struct Checkpoint {
  int64_t step = 0;
  std::string path;
  TensorMap tensors;
  Metadata metadata;
};

// Parameters and buffers of `module` under "<prefix><dotted name>", e.g. "task/unet/conv_in.weight".
void add_module_state(TensorMap& out, const std::string& prefix, const torch::nn::Module& module);
// Copies them back in place; every parameter and buffer must be present with its shape (strict).
void load_module_state(const TensorMap& in, const std::string& prefix, torch::nn::Module& module);

// A list of strings (prompts) as a checkpoint tensor: the UTF-8 bytes of a JSON list, uint8 [N]
// (checkpoints hold tensors only); and back, Error naming `what` when the bytes are no such list.
at::Tensor string_list_tensor(const std::vector<std::string>& strings);
std::vector<std::string> string_list_from_tensor(const at::Tensor& bytes, const std::string& what);

class CheckpointManager {
 public:
  CheckpointManager(std::string dir, int keep_last);

  // Writes step_<step>.safetensors and prunes; returns its path.
  std::string save(int64_t step, const TensorMap& tensors, Metadata metadata = {}) const;
  // (step, path) of every checkpoint file in the folder, ascending.
  std::vector<std::pair<int64_t, std::string>> list() const;
  // The newest checkpoint that reads back valid; an invalid newer one is skipped with a warning.
  std::optional<Checkpoint> load_latest(const Logger& log) const;
  static Checkpoint load(const std::string& path);  // throws Error
  // Deletes the temporary files of saves that never finished (a SIGKILL skips the writer's own
  // clean-up): step_<N>.safetensors.tmp.<pid>.<n>. Returns how many.
  int remove_unfinished_saves() const;

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  int keep_last_;
};

}  // namespace rewardgen
