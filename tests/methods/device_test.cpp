// Training on a GPU (`train --device cuda`): every method's first steps on CUDA equal the same steps
// on the CPU — each metric of each step, and the parameters' update — through checkpoints that
// cross devices both ways (step 1 on CUDA, step 2 resumed on the CPU, step 3 resumed on CUDA,
// against three steps on the CPU). TF32 is off, so the two devices differ by fp32 rounding only.
// Skipped where LibTorch has no CUDA; REWARDGEN_TEST_DEVICE=cpu runs the same harness CPU
// against CPU (a check of the harness itself, where no GPU is at hand).
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "io/run_dir.h"
#include "methods/method.h"
#include "world_models.h"

namespace rewardgen {
namespace {

using testing::TempDir;

std::string test_device() {
  const char* name = std::getenv("REWARDGEN_TEST_DEVICE");
  return name != nullptr && *name != '\0' ? name : "cuda";
}

// fp32 on CUDA as on the CPU while alive: no TF32 in matmuls and convolutions.
class NoTf32 {
 public:
  NoTf32() : cublas_(at::globalContext().allowTF32CuBLAS()), cudnn_(at::globalContext().allowTF32CuDNN()) {
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
  ~NoTf32() {
    at::globalContext().setAllowTF32CuBLAS(cublas_);
    at::globalContext().setAllowTF32CuDNN(cudnn_);
  }

 private:
  bool cublas_, cudnn_;
};

class TrainOnDevice : public testing::TinyWorldWithLcmTest {
 protected:
  void SetUp() override {
    if (test_device() != "cpu" && !at::hasCUDA()) GTEST_SKIP() << "this LibTorch has no CUDA (or no GPU is visible)";
  }

  // The method's resolved config from `overrides` (three steps, a checkpoint after each).
  static Json resolved(const MethodEntry& method, Json overrides) {
    overrides["trainer"]["max_steps"] = 3;
    overrides["trainer"]["checkpoint_every"] = 1;
    overrides["trainer"]["eval_every"] = 0;
    ConfigReader reader(overrides, "test");
    const Json config = method.resolve(reader);
    reader.reject_unknown();
    return config;
  }

  // Trains `method` in `root` on `devices[i]` for step i + 1 (each a resume of the last), and returns
  // the final state (TrainTask::save_state) on the CPU.
  TensorMap train(const std::string& name, const Json& overrides, const std::string& model, const std::string& root,
                  const std::vector<std::string>& devices) {
    const MethodEntry method = find_method(name);
    const Json config = resolved(method, overrides);
    const TrainerConfig trainer = method.trainer(config);
    TensorMap state;
    for (size_t i = 0; i < devices.size(); ++i) {
      const bool resume = i > 0;
      const RunDir run = RunDir::create(root, resume);
      if (!resume) run.write_config(config);
      const std::unique_ptr<MethodTask> task = method.make(config, model, log_, c10::Device(devices[i]));
      Trainer(trainer, run, log_).run(*task, resume, i + 1 < devices.size() ? static_cast<int64_t>(i) + 1 : 0);
      state.clear();
      task->save_state(state);
    }
    for (auto& [key, tensor] : state) tensor = tensor.cpu();
    return state;
  }

  // Three steps on the CPU against steps on cuda, cpu, cuda: the same metrics row by row, and the
  // same parameter update (relative to its size), where the run started from `model`.
  void expect_same_training(const std::string& name, const Json& overrides, const std::string& model) {
    const NoTf32 no_tf32;
    TempDir runs;
    const std::string device = test_device();
    const TensorMap cpu = train(name, overrides, model, runs.file("cpu"), {"cpu", "cpu", "cpu"});
    const TensorMap other = train(name, overrides, model, runs.file("other"), {device, "cpu", device});

    const std::vector<Json> a = read_metrics(runs.file("cpu") + "/metrics.jsonl"), b = read_metrics(runs.file("other") + "/metrics.jsonl");
    ASSERT_EQ(a.size(), 3u);
    ASSERT_EQ(b.size(), 3u);
    for (size_t row = 0; row < a.size(); ++row)
      for (const auto& [key, value] : a[row].items()) {
        if (key == "wall_time" || !value.is_number()) continue;
        ASSERT_TRUE(b[row].contains(key)) << name << " step " << row + 1 << ": " << key;
        const double x = value.get<double>(), y = b[row].at(key).get<double>();
        EXPECT_NEAR(x, y, 2e-3 * std::max(1.0, std::abs(x))) << name << " step " << row + 1 << ": " << key;
      }

    // θ − θ₀ of every trained tensor: the update on the other device matches the CPU's.
    const MethodEntry method = find_method(name);
    const Json config = resolved(method, overrides);
    TensorMap initial;
    method.make(config, model, log_, c10::kCPU)->save_state(initial);
    ASSERT_EQ(cpu.size(), other.size()) << name;
    double difference = 0, update = 0;
    for (const auto& [key, tensor] : cpu) {
      ASSERT_TRUE(other.count(key)) << name << ": " << key;
      if (!tensor.is_floating_point() || !initial.count(key)) continue;
      const at::Tensor delta_cpu = (tensor - initial.at(key)).to(at::kDouble);
      const at::Tensor delta_other = (other.at(key) - initial.at(key)).to(at::kDouble);
      difference += (delta_other - delta_cpu).pow(2).sum().item<double>();
      update += delta_cpu.pow(2).sum().item<double>();
    }
    ASSERT_GT(update, 0) << name << ": three steps changed no parameter";
    EXPECT_LT(std::sqrt(difference / update), 2e-2) << name << ": the update on " << device << " differs from the CPU's";
  }
};

TEST_F(TrainOnDevice, R0) {
  expect_same_training("r0", {{"batch_size", 2}, {"generator", {{"timesteps", {999, 499}}}}, {"rewards", {{"world.compositional", 1.0}}},
                              {"trainer", {{"lr", 1e-3}}}},
                       dir_->path());
}

TEST_F(TrainOnDevice, ReflAndDraft) {
  for (const char* variant : {"refl", "draft"})
    expect_same_training("refl", {{"variant", variant}, {"batch_size", 2}, {"generator", {{"timesteps", {999, 666, 333}}}},
                                  {"rewards", {{"brightness", 1.0}}}, {"trainer", {{"lr", 1e-3}}}},
                         dir_->path());
}

TEST_F(TrainOnDevice, Ddpo) {
  // A non-differentiable reward scored on the CPU (JPEG), the policy and its round on the device.
  expect_same_training("ddpo", {{"batch_size", 2}, {"updates_per_round", 1}, {"micro_batch", 2},
                                {"generator", {{"timesteps", {951, 501, 1}}}}, {"rewards", {{"jpeg_compressibility", 1.0}}},
                                {"trainer", {{"lr", 1e-3}}}},
                       dir_->path());
}

TEST_F(TrainOnDevice, Rlcm) {
  // Two updates per round: step 2 (on the CPU) re-scores a round sampled on CUDA, from the checkpoint.
  expect_same_training("rlcm", {{"batch_size", 4}, {"updates_per_round", 2}, {"micro_batch", 2}, {"rewards", {{"brightness", 1.0}}},
                                {"trainer", {{"lr", 1e-3}}}},
                       lcm_dir());
}

TEST_F(TrainOnDevice, DistarAndKl) {
  for (const char* method : {"distar", "distar-kl"})
    expect_same_training(method, {{"batch_size", 2}, {"reference_model", dir_->path()}, {"rewards", {{"world.compositional", 1.0}}},
                                  {"trainer", {{"lr", 1e-3}}}},
                         lcm_dir());
}

TEST_F(TrainOnDevice, Lcd) {
  expect_same_training("lcd", {{"batch_size", 2}, {"trainer", {{"lr", 1e-3}}}}, dir_->path());
}

}  // namespace
}  // namespace rewardgen
