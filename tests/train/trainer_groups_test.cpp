// Two parameter groups with their own optimizers, an EMA kept by the loop, periodic evaluation:
// what DI* and every EMA'd method ask of the trainer, resumed bit-exactly.
#include <gtest/gtest.h>
#include <torch/nn.h>

#include <limits>
#include <sstream>

#include "core/log.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/ema.h"
#include "train/trainer.h"

namespace rewardgen {
namespace {

using testing::TempDir;

class TwoGroupTask : public TrainTask {
 public:
  TwoGroupTask() {
    at::manual_seed(5);
    generator_ = torch::nn::Linear(3, 3);
    critic_ = torch::nn::Linear(3, 1);
    ema_ = torch::nn::Linear(3, 3);
    ema_copy(*ema_, *generator_);
  }
  std::vector<ParamGroup> parameter_groups() override {
    AdamWOptions critic_adam;
    critic_adam.beta1 = 0.0;  // SiD's (0, 0.999)
    return {ParamGroup{"generator", named(*generator_), std::nullopt, 1.0, 0.5},
            ParamGroup{"critic", named(*critic_), critic_adam, 2.0, -1}};
  }
  std::vector<EmaPair> ema_pairs() override { return {{ema_.get(), generator_.get(), 0.9}}; }
  MetricsWriter::Values evaluate(int64_t, const std::string&) override { return {{"eval/ema_norm", ema_->weight.norm().item<double>()}}; }
  void save_state(TensorMap& out) const override {
    add_module_state(out, "generator/", *generator_);
    add_module_state(out, "critic/", *critic_);
    add_module_state(out, "ema/", *ema_);
  }
  void load_state(const TensorMap& in) override {
    load_module_state(in, "generator/", *generator_);
    load_module_state(in, "critic/", *critic_);
    load_module_state(in, "ema/", *ema_);
  }
  MetricsWriter::Values train_step(StepContext& ctx) override {
    const at::Tensor z = at::randn({8, 3}, ctx.generator());
    // The critic learns on detached samples; the generator against the critic (two losses, two steps).
    const at::Tensor critic_loss = critic_->forward(generator_->forward(z).detach()).pow(2).mean();
    ctx.zero_grad();
    ctx.backward(critic_loss);
    ctx.optimizer_step("critic");
    const at::Tensor generator_loss = -critic_->forward(generator_->forward(z)).mean() + generator_->weight.pow(2).sum();
    ctx.zero_grad();
    ctx.backward(generator_loss);
    ctx.optimizer_step("generator");
    return {{"loss", generator_loss.item<double>()}, {"critic_loss", critic_loss.item<double>()}};
  }
  TensorMap state() const {
    TensorMap out;
    save_state(out);
    return out;
  }

 private:
  static NamedTensors named(torch::nn::Module& m) {
    NamedTensors out;
    for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value());
    return out;
  }
  torch::nn::Linear generator_{nullptr}, critic_{nullptr}, ema_{nullptr};
};

TensorMap train_two_groups(const std::string& root, bool resume, int64_t stop_at) {
  std::ostringstream quiet;
  Logger log(LogLevel::warn, quiet);
  TrainerConfig c;
  c.max_steps = 10;
  c.checkpoint_every = 3;
  c.lr = 1e-2;
  c.eval_every = 4;
  const RunDir run = RunDir::create(root, resume);
  if (!resume) run.write_config(trainer_config_json(c));
  TwoGroupTask task;
  Trainer(c, run, log).run(task, resume, stop_at);
  return task.state();
}

TEST(TrainerGroups, TwoOptimizersAndAnEmaResumeExactly) {
  TempDir tmp;
  const TensorMap straight = train_two_groups(tmp.file("straight"), false, 0);
  train_two_groups(tmp.file("split"), false, 5);
  const TensorMap resumed = train_two_groups(tmp.file("split"), true, 0);
  for (const auto& [name, t] : straight) EXPECT_TRUE(at::equal(t, resumed.at(name))) << name;
  const std::vector<nlohmann::json> a = read_metrics(tmp.file("straight/metrics.jsonl")), b = read_metrics(tmp.file("split/metrics.jsonl"));
  ASSERT_EQ(a.size(), 10u);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["loss"], b[i]["loss"]) << i;
    EXPECT_EQ(a[i]["critic_loss"], b[i]["critic_loss"]) << i;
  }
  // Per-group gradient norms are logged; the evaluation ran at steps 4, 8 and the last (10), and
  // after the planned stop at 5 (a run's end is always evaluated).
  EXPECT_TRUE(a[0].contains("grad_norm/generator") && a[0].contains("grad_norm/critic"));
  EXPECT_TRUE(a[3].contains("eval/ema_norm"));
  EXPECT_FALSE(a[4].contains("eval/ema_norm"));
  EXPECT_TRUE(a[9].contains("eval/ema_norm"));
  // The EMA moved away from its start and differs from the trained weights.
  EXPECT_FALSE(at::equal(straight.at("ema/weight"), straight.at("generator/weight")));
}

// DI*'s backward: the loss's gradient at an intermediate output, sent on from there, gives the
// parameters the gradient of loss.backward(); a non-finite loss stops before any gradient is made.
TEST(TrainerGroups, BackwardFromAnOutputGradientIsTheLossGradientAndGuardsTheLoss) {
  at::Generator rng = at::detail::createCPUGenerator(1);
  StepContext context({}, rng, 0);
  const at::Tensor p = at::tensor({0.5, -1.0, 2.0}, at::kDouble).requires_grad_(true);
  const at::Tensor output = 3.0 * p;
  const at::Tensor loss = output.pow(2).sum();
  context.backward(loss, output, 2.0 * output.detach());  // ∂loss/∂output = 2·output
  EXPECT_TRUE(at::allclose(p.grad(), 18.0 * p.detach(), 0, 1e-15)) << p.grad();

  const at::Tensor q = at::tensor({1.0, 2.0}, at::kDouble).requires_grad_(true);
  const at::Tensor q_output = 2.0 * q;
  const at::Tensor nan_loss = q_output.sum() * std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(context.backward(nan_loss, q_output, at::ones_like(q_output)), NonFiniteError);
  EXPECT_FALSE(q.grad().defined());
}

}  // namespace
}  // namespace rewardgen
