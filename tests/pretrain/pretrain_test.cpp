// Pretraining the world's models on tiny configurations: the world tokenizer, EMA, and each task
// running through the one trainer loop (the teacher's resume is exact, EMA included).
#include <gtest/gtest.h>

#include <sstream>

#include "core/log.h"
#include "io/run_dir.h"
#include "pretrain/clip.h"
#include "pretrain/teacher.h"
#include "pretrain/vae.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/ema.h"
#include "world_models.h"

namespace rewardgen {
namespace {

using testing::TempDir;

TEST(WorldTokenizer, EveryGrammarWordIsOneTokenAndTheFolderLoads) {
  TempDir tmp;
  const BpeVocabulary vocabulary = train_bpe(world::grammar_words());
  save_tokenizer_folder(tmp.file("tok"), vocabulary, 16);
  const ClipTokenizer tokenizer = ClipTokenizer::from_directory(tmp.file("tok"));
  EXPECT_EQ(tokenizer.vocab_size(), static_cast<int64_t>(vocabulary.tokens.size()));
  EXPECT_EQ(tokenizer.model_max_length(), 16);
  EXPECT_EQ(tokenizer.end_id(), tokenizer.vocab_size() - 1);
  for (const std::string& word : world::grammar_words()) EXPECT_EQ(tokenizer.encode(word).size(), 1u) << word;
  const std::string prompt = "a large yellow square to the left of a small purple triangle";
  const std::vector<int64_t> ids = tokenizer.encode_padded(prompt, 16);
  EXPECT_EQ(ids[0], tokenizer.start_id());
  EXPECT_EQ(ids[13], tokenizer.end_id());  // 12 words, one token each
  EXPECT_EQ(tokenizer.decode(tokenizer.encode(prompt)), prompt + " ");
  // Text outside the grammar still tokenizes, from the byte-level symbols.
  EXPECT_GT(tokenizer.encode("zebra 42").size(), 2u);
}

TEST(Ema, FollowsTheWarmedUpDecay) {
  torch::nn::Linear model(2, 1), ema(2, 1);
  ema_copy(*ema, *model);
  EXPECT_TRUE(at::equal(ema->weight, model->weight));
  const at::Tensor before = ema->weight.detach().clone();
  {
    at::NoGradGuard no_grad;
    model->weight.add_(1.0);
  }
  // step 0: d = min(0.999, 1/10) = 0.1 -> ema = 0.1·old + 0.9·new
  ema_update(*ema, *model, 0.999, 0);
  EXPECT_TRUE(at::allclose(ema->weight, 0.1 * before + 0.9 * model->weight.detach()));
  const at::Tensor middle = ema->weight.detach().clone();
  ema_update(*ema, *model, 0.5, 1000);  // late: d = decay
  EXPECT_TRUE(at::allclose(ema->weight, 0.5 * middle + 0.5 * model->weight.detach()));
  torch::nn::Linear other(3, 1);
  EXPECT_TRUE(testing::throws_error_containing([&] { ema_update(*ema, *other, 0.9, 0); }, "another shape"));
}

TrainSummary run_task(TrainTask& task, const TrainerConfig& config, const std::string& root, bool resume, int64_t stop_at = 0) {
  std::ostringstream quiet;
  Logger log(LogLevel::warn, quiet);
  const RunDir run = RunDir::create(root, resume);
  if (!resume) run.write_config(trainer_config_json(config));
  Trainer trainer(config, run, log);
  return trainer.run(task, resume, stop_at);
}

TEST(PretrainVae, TrainsAndEvaluatesOnHeldOutScenes) {
  TempDir tmp;
  pretrain::VaePretrainConfig config;
  config.model = testing::tiny_world_vae_config();
  config.batch_size = 4;
  config.trainer.max_steps = 3;
  config.trainer.checkpoint_every = 3;
  pretrain::VaePretrainTask task(config);
  run_task(task, config.trainer, tmp.file("run"), false);
  const auto rows = read_metrics(tmp.file("run") + "/metrics.jsonl");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_TRUE(std::isfinite(rows[2]["psnr"].get<double>()));
  const pretrain::VaeEvaluation evaluation = pretrain::evaluate_vae(*task.vae(), 6);
  EXPECT_EQ(evaluation.images, 6);
  EXPECT_DOUBLE_EQ(evaluation.checker_accuracy_real, 1.0);  // the originals satisfy their prompts
  EXPECT_GT(evaluation.psnr, 0.0);
  EXPECT_GT(evaluation.latent_std, 0.0);
}

TEST(PretrainClip, TrainsWithHardNegativesAndRetrieves) {
  TempDir tmp;
  save_tokenizer_folder(tmp.file("tok"), train_bpe(world::grammar_words()), 16);
  pretrain::ClipPretrainConfig config;
  config.text = testing::tiny_world_text_config(0, 0);
  config.vision = testing::tiny_world_vision_config();
  config.batch_size = 4;
  config.trainer.max_steps = 2;
  pretrain::ClipPretrainTask task(config, ClipTokenizer::from_directory(tmp.file("tok")));
  run_task(task, config.trainer, tmp.file("run"), false);
  const auto rows = read_metrics(tmp.file("run") + "/metrics.jsonl");
  ASSERT_EQ(rows.size(), 2u);
  // Each image chooses among 4 prompts and 4 hard negatives: chance loss is ln 8 for that half.
  EXPECT_GT(rows[0]["loss"].get<double>(), 0.5 * std::log(4.0));
  const pretrain::RetrievalEvaluation evaluation =
      pretrain::evaluate_retrieval(task.clip(), ClipTokenizer::from_directory(tmp.file("tok")), 6);
  EXPECT_EQ(evaluation.images, 6);
  EXPECT_EQ(evaluation.top1.size(), 7u);
  for (const auto& [task_name, value] : evaluation.top1) EXPECT_TRUE(value >= 0 && value <= 1) << task_name;
}

TensorMap teacher_state(const pretrain::TeacherPretrainTask& task) {
  TensorMap state;
  task.save_state(state);
  return state;
}

TEST(PretrainTeacher, ResumedRunEqualsTheUninterruptedOneAndTracksAccuracy) {
  TempDir tmp;
  testing::write_tiny_world(tmp.file("world"), false);
  pretrain::TeacherPretrainConfig config;
  config.model = testing::tiny_world_unet_config();
  config.batch_size = 4;
  config.trainer.eval_every = 2;
  config.eval_limit = 6;
  config.eval_steps = 2;
  config.trainer.max_steps = 4;
  config.trainer.checkpoint_every = 2;
  std::ostringstream quiet;
  Logger log(LogLevel::warn, quiet);
  pretrain::TeacherPretrainTask straight(config, tmp.file("world"), log);
  run_task(straight, config.trainer, tmp.file("straight"), false);
  {
    pretrain::TeacherPretrainTask first(config, tmp.file("world"), log);
    run_task(first, config.trainer, tmp.file("split"), false, /*stop_at=*/2);
  }
  pretrain::TeacherPretrainTask resumed(config, tmp.file("world"), log);
  run_task(resumed, config.trainer, tmp.file("split"), true);
  const TensorMap a = teacher_state(straight), b = teacher_state(resumed);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) EXPECT_TRUE(at::equal(tensor, b.at(name))) << name;
  const auto rows = read_metrics(tmp.file("straight") + "/metrics.jsonl");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_TRUE(rows[1].contains("accuracy/overall"));
  EXPECT_FALSE(rows[0].contains("accuracy/overall"));
  // The EMA copy moved away from the initial weights but is not the trained model.
  EXPECT_FALSE(at::equal(a.at("unet/conv_in.weight"), a.at("ema_unet/conv_in.weight")));
}

TEST(PretrainTeacher, RejectsATextEncoderOfAnotherWidth) {
  TempDir tmp;
  testing::write_tiny_world(tmp.file("world"), false);
  pretrain::TeacherPretrainConfig config;  // cross-attention width 128, the text encoder's is 16
  std::ostringstream quiet;
  Logger log(LogLevel::warn, quiet);
  EXPECT_TRUE(testing::throws_error_containing([&] { pretrain::TeacherPretrainTask(config, tmp.file("world"), log); },
                                               "differs from the text encoder's hidden_size 16"));
}

}  // namespace
}  // namespace rewardgen
