#pragma once
// What the training job (methods/train_job.h) asks of a post-training method: a TrainTask that
// can also export what it trained as a generator folder that samples with no flags. Methods are
// found by name in the registry; `rewardgen train --help` lists them with their config keys.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/json_config.h"
#include "train/trainer.h"

namespace rewardgen {

class Logger;

class MethodTask : public TrainTask {
 public:
  // A diffusers-layout pipeline folder whose scheduler config carries the sampling recipe.
  virtual void export_generator(const std::string& dir) const = 0;
};

struct MethodEntry {
  std::string name;  // "r0", "refl"
  std::string help;  // one line
  std::string default_model;  // the shipped folder it starts from, under models/world ("": the teacher itself)
  // The method's resolved config from a JSON object (unknown keys are errors), as JSON again.
  std::function<Json(ConfigReader& reader)> resolve;
  // The trainer settings inside a resolved config.
  std::function<TrainerConfig(const Json& resolved)> trainer;
  // Builds the task from a resolved config and the pipeline folder it starts from, its models on `device`.
  std::function<std::unique_ptr<MethodTask>(const Json& resolved, const std::string& model_dir, const Logger& log,
                                            const at::Device& device)>
      make;
};

std::vector<MethodEntry> method_registry();  // sorted by name
MethodEntry find_method(const std::string& name);  // Error naming the known methods

}  // namespace rewardgen
