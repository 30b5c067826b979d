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
  // 6 task-balanced prompts hold one position prompt: its control is logged beside the accuracy.
  ASSERT_TRUE(rows[1].contains("eval/position_reversed"));
  const double reversed = rows[1]["eval/position_reversed"].get<double>();
  EXPECT_TRUE(reversed == 0.0 || reversed == 1.0) << reversed;
  // The EMA copy moved away from the initial weights but is not the trained model.
  EXPECT_FALSE(at::equal(a.at("unet/conv_in.weight"), a.at("ema_unet/conv_in.weight")));
}

TEST(PretrainTeacher, InitStartsBothCopiesFromAPipelinesUNetOfTheSameConfig) {
  TempDir tmp;
  testing::write_tiny_world(tmp.file("world"), true);
  std::ostringstream quiet;
  Logger log(LogLevel::warn, quiet);
  pretrain::TeacherPretrainConfig config;
  config.model = testing::tiny_world_unet_config();
  config.init = tmp.file("world");
  config.trainer.seed = 7;  // a random draw would differ from the folder's weights (seed 0)
  const TensorMap state = teacher_state(pretrain::TeacherPretrainTask(config, tmp.file("world"), log));
  const TensorMap folder = module_state(*load_unet(tmp.file("world/unet"), {}, log));
  ASSERT_FALSE(folder.empty());
  for (const auto& [name, tensor] : folder) {
    EXPECT_TRUE(at::equal(state.at("unet/" + name), tensor)) << name;
    EXPECT_TRUE(at::equal(state.at("ema_unet/" + name), tensor)) << name;
  }
  // Without init the same seed draws other weights: the check above can fail.
  config.init.clear();
  const TensorMap drawn = teacher_state(pretrain::TeacherPretrainTask(config, tmp.file("world"), log));
  EXPECT_FALSE(at::equal(drawn.at("unet/conv_in.weight"), folder.at("conv_in.weight")));

  // A folder whose UNet is not the run's model is refused, naming the key.
  config.init = tmp.file("world");
  config.model.norm_eps = 1e-3;
  EXPECT_TRUE(testing::throws_error_containing([&] { pretrain::TeacherPretrainTask(config, tmp.file("world"), log); },
                                               "unet/config.json has norm_eps"));
  // A folder without a UNet is refused before anything is built by a run that starts from it, and
  // not read by one that resumes (its checkpoint holds the weights; the folder may have moved).
  const Json no_unet = {{"init", tmp.file("nowhere")}};
  ConfigReader reader(no_unet, "teacher.json");
  config = pretrain::read_teacher_pretrain_config(reader);
  config.model = testing::tiny_world_unet_config();
  config.trainer.seed = 7;
  EXPECT_TRUE(testing::throws_error_containing([&] { pretrain::check_teacher_init(config); }, "nowhere/unet/config.json not found"));
  EXPECT_TRUE(testing::throws_error_containing([&] { pretrain::TeacherPretrainTask(config, tmp.file("world"), log); },
                                               "nowhere/unet/config.json not found"));
  const TensorMap resumed = teacher_state(pretrain::TeacherPretrainTask(config, tmp.file("world"), log, /*from_init=*/false));
  EXPECT_TRUE(at::equal(resumed.at("unet/conv_in.weight"), drawn.at("unet/conv_in.weight")));  // the seed's draw, to be overwritten
  const Json ok = {{"init", tmp.file("world")}};
  ConfigReader ok_reader(ok, "teacher.json");
  EXPECT_NO_THROW(pretrain::check_teacher_init(pretrain::read_teacher_pretrain_config(ok_reader)));
}

TEST(PretrainTeacher, TaskWeightsAreReadByTaskNameAndChecked) {
  const Json config = {{"task_weights", {{"position", 3}, {"single_object", 0}}}};
  ConfigReader reader(config, "teacher.json");
  const pretrain::TeacherPretrainConfig read = pretrain::read_teacher_pretrain_config(reader);
  EXPECT_EQ(read.task_weights, (world::TaskWeights{0, 1, 1, 1, 3, 1}));  // the others keep 1
  EXPECT_EQ(pretrain::teacher_pretrain_config_json(read)["task_weights"]["position"], 3.0);
  const Json misspelt = {{"task_weights", {{"positon", 3}}}};
  ConfigReader misspelt_reader(misspelt, "teacher.json");
  pretrain::read_teacher_pretrain_config(misspelt_reader);
  EXPECT_TRUE(testing::throws_error_containing([&] { misspelt_reader.reject_unknown(); }, "task_weights.positon"));
  const Json negative = {{"task_weights", {{"counting", -1}}}};
  ConfigReader negative_reader(negative, "teacher.json");
  EXPECT_TRUE(testing::throws_error_containing([&] { pretrain::read_teacher_pretrain_config(negative_reader); }, "counting"));
  const Json none = {{"task_weights", {{"single_object", 0}, {"two_object", 0}, {"counting", 0}, {"colors", 0}, {"position", 0}, {"color_attr", 0}}}};
  ConfigReader none_reader(none, "teacher.json");
  EXPECT_TRUE(testing::throws_error_containing([&] { pretrain::read_teacher_pretrain_config(none_reader); },
                                               "every task's weight is 0"));
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
